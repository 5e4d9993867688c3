/**
 * The soak: `npm run soak -- --seeds 10000 [--from 1] [--bug ackAt3of6]`
 * runs the simulator over many seeds with a progress bar, prints each
 * failing seed with its fault schedule and failures, and a summary at the
 * end. `--seed N` (or HEXAD_SEED=N) replays one seed and prints its
 * schedule whatever the outcome. Exits 1 if any seed failed, 2 on bad
 * options (unknown, missing a value, not an integer seed) or an error in
 * the simulator itself; `--help` prints the usage.
 */
import { parseArgs } from 'node:util'
import { PLANTED_BUG_NAMES, type PlantedBugs } from '../storage/planted-bugs.js'
import { runSeed } from './simulator.js'

const USAGE = `usage: npm run soak -- [--seeds N] [--from N] [--bug NAME]
       npm run soak -- --seed N [--bug NAME]        (or HEXAD_SEED=N npm run soak)

  --seeds N    how many seeds to run (default 1000), from --from on (default 1)
  --seed N     replay one seed and print its fault schedule whatever the outcome
  --bug NAME   plant a known bug, to see the checkers catch it: ${PLANTED_BUG_NAMES.join(', ')}
  --help       this text

A seed is an integer from 0 to ${2 ** 32 - 1}. Exits 1 if a seed failed, 2 on bad options.`

/** Bad options: the reason and the usage on stderr, exit 2 (nothing is run). */
function usageError(message: string): never {
  console.error(`soak: ${message}\n\n${USAGE}`)
  process.exit(2)
}

/** `text` as a seed-sized integer (0 .. 2^32-1, and at least `min`), or a usage error naming `what`. */
function intOption(what: string, text: string, min: number): number {
  const n = /^\d+$/.test(text.trim()) ? Number(text) : NaN
  if (!Number.isSafeInteger(n) || n < min || n > 2 ** 32 - 1) usageError(`${what} must be an integer from ${min} to ${2 ** 32 - 1}, got "${text}"`)
  return n
}

interface SoakOptions { seeds: number; from: number; seed: number | undefined; bugName: string | undefined }

function options(argv: string[]): SoakOptions {
  let values: { seeds?: string; from?: string; seed?: string; bug?: string; help?: boolean }
  try {
    ({ values } = parseArgs({
      args: argv,
      options: { seeds: { type: 'string' }, from: { type: 'string' }, seed: { type: 'string' }, bug: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
      strict: true,
      allowPositionals: false,
    }))
  } catch (err) {
    usageError((err as Error).message)
  }
  if (values.help) { console.log(USAGE); process.exit(0) }
  const bugName = values.bug
  if (bugName !== undefined && !PLANTED_BUG_NAMES.includes(bugName as keyof PlantedBugs)) usageError(`--bug must be one of ${PLANTED_BUG_NAMES.join(', ')}, got "${bugName}"`)
  const env = process.env.HEXAD_SEED
  const seed = values.seed !== undefined ? intOption('--seed', values.seed, 0)
    : env !== undefined && env !== '' ? intOption('HEXAD_SEED', env, 0) : undefined
  if (seed !== undefined && (values.seeds !== undefined || values.from !== undefined)) usageError(`${values.seed !== undefined ? '--seed' : `HEXAD_SEED=${env} (set in the environment)`} replays one seed: it does not go with --seeds or --from`)
  const seeds = values.seeds !== undefined ? intOption('--seeds', values.seeds, 1) : 1000
  const from = values.from !== undefined ? intOption('--from', values.from, 0) : 1
  if (from + seeds - 1 > 2 ** 32 - 1) usageError(`--from ${from} with --seeds ${seeds} runs past the last seed, ${2 ** 32 - 1}`)
  return { seeds, from, seed, bugName }
}

async function main(): Promise<void> {
  const { seeds, from, seed: one, bugName } = options(process.argv.slice(2))
  const bugs: Partial<PlantedBugs> = bugName ? { [bugName]: true } : {}
  if (one !== undefined) {
    const r = await runSeed(one, { bugs })
    console.log(r.schedule.join('\n'))
    console.log(r.ok ? `seed ${r.seed}: ok ${JSON.stringify(r.counts)}` : `seed ${r.seed}: FAILED\n  ${r.failures.join('\n  ')}`)
    process.exit(r.ok ? 0 : 1)
  }
  const started = Date.now()
  const failed: number[] = []
  const totals: Record<string, number> = {}
  let convergeMax = 0
  let converged = 0
  const tty = process.stdout.isTTY
  for (let i = 0; i < seeds; i++) {
    const seed = from + i
    const r = await runSeed(seed, { bugs })
    for (const [k, v] of Object.entries(r.counts)) totals[k] = (totals[k] ?? 0) + v
    if (r.counts.convergeMs !== undefined) { convergeMax = Math.max(convergeMax, r.counts.convergeMs); converged++ }
    if (!r.ok) {
      failed.push(seed)
      if (tty) process.stdout.write('\n')
      console.log(`seed ${seed} FAILED (replay: HEXAD_SEED=${seed} npm run soak${bugName ? ` -- --bug ${bugName}` : ''})\n${r.schedule.join('\n')}\n  ${r.failures.join('\n  ')}`)
    }
    const done = i + 1
    if (tty || done % 100 === 0 || done === seeds) {
      const width = 30
      const filled = Math.round((done / seeds) * width)
      const rate = done / ((Date.now() - started) / 1000)
      const line = `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${seeds} seeds, ${failed.length} failed, ${rate.toFixed(1)} seeds/s, ETA ${Math.round((seeds - done) / rate)} s`
      if (tty) process.stdout.write(`\r${line}`)
      else console.log(line)
    }
  }
  if (tty) process.stdout.write('\n')
  const secs = (Date.now() - started) / 1000
  console.log(`soak: ${seeds} seeds from ${from} in ${secs.toFixed(1)} s${bugName ? ` with planted bug ${bugName}` : ''}: ${seeds - failed.length} passed, ${failed.length} failed`)
  console.log(`  injected: ${totals.crashes ?? 0} crashes, ${totals.flips ?? 0} disk bit flips, ${totals.netCorrupt ?? 0} corrupted messages, ${totals.netDropped ?? 0} dropped messages, ${totals.tornWrites ?? 0} torn writes, ${totals.writers ?? 0} writer opens (${totals.cleanCloses ?? 0} after a clean close, ${totals.untruncatedOpens ?? 0} of them adding no truncation), ${totals.framesHeld ?? 0} frames that waited for announced siblings`)
  console.log(`  workload: ${totals.mtrs ?? 0} MTRs, ${totals.acked ?? 0} acknowledged, ${totals.failedWrites ?? 0} refused, ${totals.reads ?? 0} reads checked, ${totals.events ?? 0} events`)
  if (converged) console.log(`  convergence after the faults healed and writes settled (virtual time): mean ${((totals.convergeMs ?? 0) / converged).toFixed(0)} ms, max ${convergeMax.toFixed(0)} ms over ${converged} seeds`)
  if (failed.length) console.log(`  failing seeds: ${failed.slice(0, 50).join(' ')}${failed.length > 50 ? ' ...' : ''}`)
  process.exit(failed.length ? 1 : 0)
}

main().catch(err => { console.error(err); process.exit(2) })
