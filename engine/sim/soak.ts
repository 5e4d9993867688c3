/**
 * The soak: `npm run soak -- --seeds 10000 [--from 1] [--bug ackAt3of6]`
 * runs the simulator over many seeds with a progress bar, prints each
 * failing seed with its fault schedule and failures, and a summary at the
 * end. `--seed N` (or HEXAD_SEED=N) replays one seed and prints its
 * schedule whatever the outcome. Exits non-zero if any seed failed.
 */
import { PLANTED_BUG_NAMES, type PlantedBugs } from '../storage/planted-bugs.js'
import { runSeed } from './simulator.js'

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 ? process.argv[i + 1] : undefined
}

async function main(): Promise<void> {
  const bugName = arg('bug')
  if (bugName && !PLANTED_BUG_NAMES.includes(bugName as keyof PlantedBugs)) throw new Error(`--bug must be one of ${PLANTED_BUG_NAMES.join(', ')}`)
  const bugs: Partial<PlantedBugs> = bugName ? { [bugName]: true } : {}
  const one = arg('seed') ?? process.env.HEXAD_SEED
  if (one !== undefined && one !== '') {
    const r = await runSeed(Number(one), { bugs })
    console.log(r.schedule.join('\n'))
    console.log(r.ok ? `seed ${r.seed}: ok ${JSON.stringify(r.counts)}` : `seed ${r.seed}: FAILED\n  ${r.failures.join('\n  ')}`)
    process.exit(r.ok ? 0 : 1)
  }
  const seeds = Number(arg('seeds') ?? 1000)
  const from = Number(arg('from') ?? 1)
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
