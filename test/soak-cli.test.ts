/**
 * `npm run soak`'s options, spawned as a user runs them (node
 * dist/engine/sim/soak.js): `--help` prints the usage, a bad option (unknown,
 * missing its value, not an integer, out of range, a positional, a seed
 * replay mixed with a range) exits 2 with the reason and runs nothing, and
 * good ones run the seeds they name.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { spawnSync } from 'node:child_process'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const SOAK = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'engine', 'sim', 'soak.js')
/** the environment without HEXAD_SEED (which replays one seed), plus `extra` */
const envWith = (extra: Record<string, string> = {}): NodeJS.ProcessEnv => {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extra }
  if (!('HEXAD_SEED' in extra)) delete env.HEXAD_SEED
  return env
}
const soak = (args: string[], extra?: Record<string, string>) =>
  spawnSync(process.execPath, [SOAK, ...args], { encoding: 'utf8', timeout: 120_000, env: envWith(extra) })

test('--help prints the usage and runs nothing', () => {
  for (const flag of ['--help', '-h']) {
    const r = soak([flag])
    assert.is(r.status, 0, r.stderr)
    assert.match(r.stdout, /^usage: npm run soak -- \[--seeds N\] \[--from N\] \[--bug NAME\]/)
    assert.match(r.stdout, /ackAt3of6/)
    assert.not.match(r.stdout, /seeds from/)
  }
})

test('bad options exit 2 with the reason and run no seed', () => {
  const cases: Array<[string[], RegExp, Record<string, string>?]> = [
    [['--bogus'], /Unknown option '--bogus'/],
    [['--seeds'], /'--seeds <value>' argument missing/],
    [['--seeds', 'abc'], /--seeds must be an integer from 1 to 4294967295, got "abc"/],
    [['--seeds', '0'], /--seeds must be an integer from 1/],
    [['--seeds', '2.5'], /--seeds must be an integer/],
    [['--from', '-3'], /--from/],
    [['--seed', 'x'], /--seed must be an integer from 0/],
    [['--from', '4294967295', '--seeds', '2'], /runs past the last seed, 4294967295/],
    [['--bug', 'nope'], /--bug must be one of ackAt3of6, .*got "nope"/],
    [['10'], /Unexpected argument '10'/],
    [['--seed', '7', '--seeds', '3'], /--seed replays one seed: it does not go with --seeds or --from/],
    [['--seeds', '3'], /HEXAD_SEED=5 \(set in the environment\) replays one seed/, { HEXAD_SEED: '5' }],
    [[], /HEXAD_SEED must be an integer from 0 to 4294967295, got "five"/, { HEXAD_SEED: 'five' }],
  ]
  for (const [args, reason, env] of cases) {
    const r = soak(args, env)
    assert.is(r.status, 2, `${args.join(' ')}: exit ${r.status}\n${r.stdout}${r.stderr}`)
    assert.match(r.stderr, reason, args.join(' '))
    assert.match(r.stderr, /usage: npm run soak/)
    assert.is(r.stdout, '', `${args.join(' ')} ran something: ${r.stdout}`)
  }
})

test('--seeds and --from (in both spellings) run exactly those seeds; --seed and HEXAD_SEED replay one', () => {
  const range = soak(['--seeds=2', '--from', '5'])
  assert.is(range.status, 0, range.stdout + range.stderr)
  assert.match(range.stdout, /soak: 2 seeds from 5 in [\d.]+ s: 2 passed, 0 failed/)
  assert.match(range.stdout, /\[#+\] 2\/2 seeds, 0 failed/)

  const one = soak(['--seed', '5'])
  assert.is(one.status, 0, one.stdout + one.stderr)
  assert.match(one.stdout, /seed 5: ok \{/)
  assert.not.match(one.stdout, /seeds from/)

  const env = soak([], { HEXAD_SEED: '6' })
  assert.is(env.status, 0, env.stdout + env.stderr)
  assert.match(env.stdout, /seed 6: ok \{/)
})

test.run()
