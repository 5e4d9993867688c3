/**
 * Crash recovery of the built-in compute node: transactions of the
 * key-value store across SIGKILLs of the writer process (DESIGN.md
 * invariants 1, 3 and 6, seen through the B+tree, the catalog and the
 * transaction layer).
 *
 * A child process (helpers/kv-crash-child.ts) opens the cluster and runs one
 * deterministic history of transactions (transfers among 32 accounts whose
 * total never changes, a log key `tx:<i>` per transaction, puts and deletes
 * of small and overflow-page values in a second keyspace), keeping up to
 * `window` transactions in flight, and prints `ack <i>` for each commit that
 * resolved. Transactions that share a key commit in i order (the child
 * requests each transaction's locks up front, in i order; see the child's
 * header), so the state after any set S of committed transactions is the
 * plans of S applied in ascending i. The parent kills the child with SIGKILL
 * at a seeded moment (after a seeded number of acks plus a seeded delay, or
 * a few hundred ms after the spawn, inside open and recovery), then opens
 * the cluster itself (the child is dead; the parent never holds the
 * directory while a child runs), reads both keyspaces and finds S from the
 * `tx:<i>` keys present, and checks:
 *
 *   - every acked transaction is in S: no acknowledged commit is lost;
 *   - S below the previous cycle's highest transaction is exactly the
 *     previous S (nothing recovered before disappears, no abandoned
 *     transaction comes back), and the child reported that same highest
 *     transaction when it opened after the parent's clean close;
 *   - S is closed under commit order: a present transaction's predecessors
 *     that share a key with it are present, and so is the transaction
 *     `window` before it (it was acked before this one began);
 *   - both keyspaces equal, key for key and byte for byte, the model built
 *     by applying S in order: no transaction partially present, no stray
 *     key, no lost delete, overflow values whole — by scan and by point get;
 *   - the balances add up to the constant total and none is negative;
 *   - `verify()` finds every B+tree invariant intact and reports the key
 *     counts of the model.
 *
 * Then the parent closes, and the next child continues the history from
 * the recovered state (transactions lost in the crash stay holes). The
 * volume uses small log files, a low checkpoint threshold and 16-page
 * protection groups; each cycle draws the window (1..32) and the buffer
 * cache size (64 KiB: constant eviction, to the default).
 *
 * A second test runs the same kind of history on a clone: three cycles on
 * a parent, then a clone of the recovered parent, then five cycles on the
 * clone (each child opens the parent itself to read through it, and the
 * clone's segments ask for the parent's images again after every kill);
 * the parent ends exactly as it was when cloned.
 *
 * Seeded: the seed is printed; HEXAD_SEED=<n> replays the same history and
 * the same kill schedule (the exact moment a kill lands still depends on
 * the machine's timing).
 */
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { openCluster } from '../engine/index.js'
import { describeKill, runCrashChild, type ChildRun, type Kill } from './helpers/crash-harness.js'
import {
  ACCOUNTS, KV_CRASH_OPTIONS, SIDE_KEYSPACE, TOTAL, acctKey, applyPlan, balanceOf, emptyState, mix, mulberry32, plan, planKeys,
  presentTxs, readState, txKey, type Plan, type State,
} from './helpers/kv-crash-child.js'

const CHILD = fileURLToPath(new URL('./helpers/kv-crash-child.js', import.meta.url))
const SEED = process.env.HEXAD_SEED !== undefined ? Number(process.env.HEXAD_SEED) >>> 0 : (Math.random() * 2 ** 32) >>> 0
const CHILD_ACK_TIMEOUT_MS = 30_000
const CYCLES = 24
const WINDOWS = [1, 4, 8, 32]
const CACHE_BYTES = [64 << 10, 256 << 10, 64 << 20]

console.log(`# kv-crash: seed ${SEED} (replay with HEXAD_SEED=${SEED} node test/run.mjs kv-crash)`)

interface Model {
  seed: number
  /** the state after applying `present` in order */
  state: State
  /** transactions recovered so far, ascending */
  present: number[]
  /** the highest transaction recovered so far (0: none) */
  max: number
}

/** Spawns the writer, kills it as `kill` says, and returns what it printed. */
function runChild(dir: string, seed: number, window: number, cacheBytes: number, kill: Kill): Promise<ChildRun> {
  return runCrashChild([CHILD, dir, String(seed), String(window), String(cacheBytes)], kill, CHILD_ACK_TIMEOUT_MS)
}

function show(v: Buffer | undefined): string {
  if (v === undefined) return 'absent'
  if (v.length <= 48) return JSON.stringify(v.toString('latin1'))
  return `${v.length} B starting ${JSON.stringify(v.subarray(0, 24).toString('latin1'))}`
}

/** For a key whose value differs from the model: the transactions of this cycle that touch it, present or not. */
function explainKey(ks: string, key: string, plans: Map<number, Plan>, present: Set<number>): string {
  const touching: string[] = []
  for (const [i, p] of plans) if (planKeys(p).includes(`${ks} ${key}`)) touching.push(`${i}${present.has(i) ? '' : ' (absent)'}`)
  return `transactions of this cycle that write it: [${touching.slice(-12).join(', ') || 'none'}]`
}

interface CheckResult { max: number; added: number; holes: number; keys: number; vdl: number; ms: number }

/** Opens the cluster the killed child left behind and checks it against the model; advances the model. */
async function check(dir: string, m: Model, run: ChildRun, window: number, where: string): Promise<CheckResult> {
  const t0 = performance.now()
  const cluster = await openCluster({ dir, ...KV_CRASH_OPTIONS })
  try {
    const db = cluster.writer
    if (run.start !== null) {
      assert.is(run.start, m.max, `${where}: the child found transaction ${run.start} as the last one after a clean close at transaction ${m.max} (a clean reopen must recover exactly what was there)`)
    }
    const actual = await readState(db)
    const s = presentTxs(actual)
    const present = new Set(s)
    const max = s.length ? s[s.length - 1] : 0
    for (const i of run.acked) {
      assert.ok(present.has(i), `${where}: acknowledged commit lost: transaction ${i} was acked (of ${run.acks} acks, max ${run.maxAck}) but tx:${i} is not in the recovered state (recovered up to ${max}, VDL ${cluster.volume.vdl}, epoch ${cluster.volume.epoch})`)
    }
    // Nothing recovered before is gone, and no transaction abandoned before came back.
    const old = s.filter(i => i <= m.max)
    if (old.length !== m.present.length || old.some((i, j) => i !== m.present[j])) {
      const gone = m.present.filter(i => !present.has(i))
      const back = old.filter(i => !m.present.includes(i))
      assert.unreachable(`${where}: the transactions up to ${m.max} changed since the last recovery: lost [${gone.slice(0, 10).join(', ')}], came back [${back.slice(0, 10).join(', ')}]`)
    }
    // Commit order: every plan of this cycle's transactions, present or not.
    const plans = new Map<number, Plan>()
    for (let i = m.max + 1; i <= max; i++) plans.set(i, plan(m.seed, i))
    const added = s.filter(i => i > m.max)
    const lastWriter = new Map<string, number>()
    for (let i = m.max + 1; i <= max; i++) {
      const p = plans.get(i)!
      if (present.has(i)) {
        if (i - window > m.max) {
          assert.ok(present.has(i - window), `${where}: transaction ${i} is durable but ${i - window} is not, although the child began ${i} only after ${i - window} was acked (window ${window})`)
        }
        for (const k of planKeys(p)) {
          const j = lastWriter.get(k)
          if (j !== undefined && !present.has(j)) {
            assert.unreachable(`${where}: transaction ${i} is durable but ${j} is not, although both lock ${k} and ${j} held it first (so committed first; durability follows commit order)`)
          }
        }
      }
      for (const k of planKeys(p)) lastWriter.set(k, i)
    }
    // The state: the model after applying this cycle's present transactions in order.
    for (const i of added) applyPlan(m.state, plans.get(i)!)
    for (const [ks, want, got] of [['default', m.state.main, actual.main], [SIDE_KEYSPACE, m.state.side, actual.side]] as const) {
      const wrong: string[] = []
      for (const k of new Set([...want.keys(), ...got.keys()])) {
        const a = got.get(k), b = want.get(k)
        if (a === undefined || b === undefined || !a.equals(b)) wrong.push(`${k}: read ${show(a)}, expected ${show(b)}; ${explainKey(ks, k, plans, present)}`)
      }
      if (wrong.length) {
        assert.unreachable(`${where}: keyspace ${ks} differs from the model after transactions [..${m.max}] + [${added.slice(0, 8).join(', ')}${added.length > 8 ? ', ...' : ''}] (${added.length} new; acks max ${run.maxAck}) in ${wrong.length} keys:\n    ${wrong.slice(0, 12).join('\n    ')}`)
      }
    }
    // Point gets agree with the scans (a different path through the tree, and the overflow chains).
    for (const [k, v] of m.state.side) {
      const got = await db.keyspace(SIDE_KEYSPACE).get(k)
      assert.ok(got !== undefined && Buffer.from(got).equals(v), `${where}: get(${k}) in keyspace ${SIDE_KEYSPACE} read ${show(got && Buffer.from(got))}, the scan read ${show(v)}`)
    }
    for (let a = 0; a < ACCOUNTS; a++) {
      const want = m.state.main.get(acctKey(a))
      const got = await db.get(acctKey(a))
      assert.ok(want === undefined ? got === undefined : got !== undefined && Buffer.from(got).equals(want), `${where}: get(${acctKey(a)}) read ${show(got && Buffer.from(got))}, expected ${show(want)}`)
    }
    for (const i of [...added.slice(-3), ...[...plans.keys()].filter(i => !present.has(i)).slice(0, 3)]) {
      const got = await db.getString(txKey(i))
      assert.is(got, present.has(i) ? plans.get(i)!.txValue : undefined, `${where}: get(${txKey(i)})`)
    }
    // The money: constant total, no negative balance (once transaction 1 is in).
    if (max > 0) {
      let total = 0
      for (let a = 0; a < ACCOUNTS; a++) {
        const b = balanceOf(actual, a)
        assert.ok(b !== undefined && Number.isInteger(b) && b >= 0, `${where}: account ${a} has balance ${b}`)
        total += b!
      }
      assert.is(total, TOTAL, `${where}: the balances add up to ${total}, not ${TOTAL}`)
    }
    const report = await db.verify()
    assert.ok(report.ok, `${where}: verify() found problems:\n    ${report.problems.slice(0, 12).join('\n    ')}`)
    const counts = Object.fromEntries(report.keyspaces.map(k => [k.name, k.keys]))
    assert.is(counts.default ?? 0, m.state.main.size, `${where}: verify() counts ${counts.default} keys in the default keyspace, the model ${m.state.main.size}`)
    assert.is(counts[SIDE_KEYSPACE] ?? 0, m.state.side.size, `${where}: verify() counts ${counts[SIDE_KEYSPACE]} keys in keyspace ${SIDE_KEYSPACE}, the model ${m.state.side.size}`)
    const holes = max - m.max - added.length
    m.present.push(...added)
    m.max = max
    return { max, added: added.length, holes, keys: m.state.main.size + m.state.side.size, vdl: cluster.volume.vdl, ms: performance.now() - t0 }
  } finally {
    await cluster.close()
  }
}

interface Totals { acks: number; holes: number }

/** Runs `cycles` kill-and-check cycles of the history on the cluster in `dir`, advancing the model. */
async function crashCycles(dir: string, m: Model, cycles: number, int: (lo: number, hi: number) => number, label: string, totals: Totals): Promise<void> {
  for (let cycle = 0; cycle < cycles; cycle++) {
    const window = WINDOWS[int(0, WINDOWS.length - 1)]
    const cacheBytes = CACHE_BYTES[int(0, CACHE_BYTES.length - 1)]
    // About one cycle in six dies early: during node startup, open, recovery or the first transactions.
    const kill: Kill = int(0, 5) === 0 ? { mode: 'early', afterMs: int(100, 700) } : { mode: 'acks', minAcks: int(1, 60), extraMs: int(0, 250) }
    const where = `seed ${SEED}, ${label}cycle ${cycle} (window ${window}, cache ${cacheBytes >> 10} KiB, kill ${describeKill(kill)})`
    const t0 = performance.now()
    const run = await runChild(dir, m.seed, window, cacheBytes, kill).catch((err: Error) => {
      throw new Error(`${where}: ${err.message}`)
    })
    const childMs = performance.now() - t0
    const r = await check(dir, m, run, window, where)
    totals.acks += run.acks
    totals.holes += r.holes
    console.log(`  ${label}cycle ${String(cycle).padStart(2)}: window ${String(window).padStart(2)}, cache ${String(cacheBytes >> 10).padStart(5)} KiB, kill ${describeKill(kill)}; ` +
      `child ${childMs.toFixed(0)} ms, start ${run.start ?? '-'}, ${run.acks} acks (max ${run.maxAck}); recovered up to tx ${r.max} (+${r.added}, ${r.holes} lost unacked), ` +
      `${r.keys} keys, VDL ${r.vdl}; check ${r.ms.toFixed(0)} ms; cycle ${(performance.now() - t0).toFixed(0)} ms`)
  }
}

test(`kv crash: SIGKILL the writer ${CYCLES} times with up to 32 transactions in flight; no acked commit lost, never half a transaction, total constant, verify ok`, async () => {
  const historySeed = mix(SEED, 1)
  const rnd = mulberry32(mix(SEED, 1001))
  const int = (lo: number, hi: number) => lo + Math.floor(rnd() * (hi - lo + 1))
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hexad-kv-crash-'))
  const m: Model = { seed: historySeed, state: emptyState(), present: [], max: 0 }
  const started = performance.now()
  const totals: Totals = { acks: 0, holes: 0 }
  let ok = false
  try {
    await crashCycles(dir, m, CYCLES, int, '', totals)
    assert.ok(m.max > 1, `seed ${SEED}: the history never got past transaction ${m.max}`)
    console.log(`  ${CYCLES} cycles, ${m.present.length} transactions recovered (${totals.acks} acked, ${totals.holes} lost unacked), ` +
      `${((performance.now() - started) / 1000).toFixed(1)} s`)
    ok = true
  } finally {
    if (ok) fs.rmSync(dir, { recursive: true, force: true })
    else console.log(`  FAILED with seed ${SEED}; replay with HEXAD_SEED=${SEED} node test/run.mjs kv-crash; cluster kept in ${dir}`)
  }
})

test('kv crash on a clone: the history goes on in a clone of a crashed parent across SIGKILLs (its segments ask the parent for bases again after each); the parent never changes', async () => {
  const historySeed = mix(SEED, 2)
  const rnd = mulberry32(mix(SEED, 2002))
  const int = (lo: number, hi: number) => lo + Math.floor(rnd() * (hi - lo + 1))
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'hexad-kv-crash-clone-'))
  const parentDir = path.join(root, 'parent')
  const cloneDir = path.join(root, 'clone')
  const m: Model = { seed: historySeed, state: emptyState(), present: [], max: 0 }
  const totals: Totals = { acks: 0, holes: 0 }
  let ok = false
  try {
    await crashCycles(parentDir, m, 3, int, 'parent ', totals)
    const parent = await openCluster({ dir: parentDir, ...KV_CRASH_OPTIONS })
    const atClone = await readState(parent.writer)
    parent.volume.createClone(cloneDir)
    await parent.close()
    await crashCycles(cloneDir, m, 5, int, 'clone ', totals)
    assert.ok(m.max > 1, `seed ${SEED}: the history never got past transaction ${m.max}`)
    const again = await openCluster({ dir: parentDir, ...KV_CRASH_OPTIONS })
    try {
      const now = await readState(again.writer)
      for (const [name, a, b] of [['default', atClone.main, now.main], [SIDE_KEYSPACE, atClone.side, now.side]] as const) {
        assert.is(b.size, a.size, `parent keyspace ${name}: key count changed`)
        for (const [k, v] of a) assert.ok(b.get(k)?.equals(v), `parent keyspace ${name}: ${k} changed after the clone`)
      }
      assert.equal(again.clones().map(c => c.dir), [cloneDir])
    } finally { await again.close() }
    ok = true
  } finally {
    if (ok) fs.rmSync(root, { recursive: true, force: true })
    else console.log(`  FAILED with seed ${SEED}; replay with HEXAD_SEED=${SEED} node test/run.mjs kv-crash; clusters kept in ${root}`)
  }
})

test.run()
