/**
 * Backtrack (issue 8): `cluster.backtrack(to)` rewinds the cluster in place
 * to a moment (or an LSN) inside `backtrackWindowMs`.
 *
 * - Back and forth: states recorded at several moments (every key and
 *   value, two keyspaces, overflow values, deletes, a SQL table) are equal
 *   to the data after backtracking to them in a shuffled order, including
 *   forward again past an earlier backtrack; writes after a backtrack go on;
 *   everything survives a restart (the timeline is on disk).
 * - A backtrack cut short (the process stops after its first batch) is
 *   finished by the next open.
 * - A transaction open across a backtrack fails with HEXAD_CLOSED and a wire
 *   connection is closed.
 * - Outside the window (before it, in the future, an LSN inside an MTR),
 *   backtrack off, and a clone before its creation: refused with the
 *   window's bounds.
 */
import path from 'node:path'
import pg from 'pg'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { HexadError, openCluster, serve, type Cluster } from '../engine/index.js'
import { cleanupTempDirs, closeGuarded, collect, kvOptions, makeTempDir, rejectsWith, sleep, utf8 } from './helpers/kv-helpers.js'

test.after(() => cleanupTempDirs())

const key = (i: number) => `k/${String(i).padStart(5, '0')}`
const big = (tag: string) => tag.repeat(Math.ceil(7000 / tag.length)).slice(0, 7000)
const WINDOW = { backtrackWindowMs: 10 * 60_000 }

interface State { at: Date; lsn: number; main: Map<string, string>; other: Map<string, string>; sql: string }

async function record(c: Cluster): Promise<State> {
  // The timeline samples the VDL every 50 ms: a pause on each side makes the moment unambiguous.
  await sleep(120)
  const at = new Date()
  const lsn = c.volume.vdl
  const main = new Map((await collect(c.writer.scan({}))).map(([k, v]) => [utf8(k), utf8(v)]))
  const other = new Map((await collect(c.writer.keyspace('other').scan({}))).map(([k, v]) => [utf8(k), utf8(v)]))
  const sql = JSON.stringify((await c.writer.sql('SELECT id, n FROM t ORDER BY id')).rows)
  await sleep(120)
  return { at, lsn, main, other, sql }
}

async function assertState(c: Cluster, s: State, what: string): Promise<void> {
  const main = new Map((await collect(c.writer.scan({}))).map(([k, v]) => [utf8(k), utf8(v)]))
  const other = new Map((await collect(c.writer.keyspace('other').scan({}))).map(([k, v]) => [utf8(k), utf8(v)]))
  assert.is(main.size, s.main.size, `${what}: key count`)
  for (const [k, v] of s.main) if (main.get(k) !== v) assert.unreachable(`${what}: ${k} is ${main.get(k)}, expected ${v}`)
  assert.equal([...other.entries()].sort(), [...s.other.entries()].sort(), `${what}: keyspace other`)
  assert.is(JSON.stringify((await c.writer.sql('SELECT id, n FROM t ORDER BY id')).rows), s.sql, `${what}: table t`)
  const v = await c.writer.verify()
  assert.ok(v.ok, `${what}: verify ${JSON.stringify(v.problems)}`)
}

async function round(c: Cluster, r: number): Promise<void> {
  await c.writer.batch(Array.from({ length: 150 }, (_, j) => ({ type: 'put' as const, key: key(r * 100 + j), value: `r${r}-${j}` })))
  await c.writer.del(key(r * 7))
  await c.writer.keyspace('other').put(`o${r % 3}`, big(`r${r}-`))
  await c.writer.sql('INSERT INTO t VALUES ($1, $2)', [r, r * 10])
  await c.writer.sql('UPDATE t SET n = n + 1')
}

test('back and forth: the data equals every recorded moment, across a restart', async () => {
  const dir = makeTempDir('backtrack')
  let c = await openCluster(kvOptions(dir, { ...WINDOW, cacheBytes: 256 << 10 }))
  try {
    await c.writer.sql('CREATE TABLE t (id int PRIMARY KEY, n int)')
    const states: State[] = []
    for (let r = 0; r < 5; r++) { await round(c, r); states.push(await record(c)) }
    const w = c.backtrackWindow()!
    assert.ok(w.earliest.getTime() <= states[0].at.getTime() && w.latestLsn >= states[4].lsn)
    for (const i of [2, 0, 4, 1, 3]) {
      const r = await c.backtrack(states[i].at)
      assert.is(r.to, states[i].lsn, `moment ${i} resolves to the LSN recorded with it`)
      await assertState(c, states[i], `after backtrack to moment ${i}`)
    }
    // Writes go on after a backtrack; that state is a moment too, and so is one before the first backtrack.
    await round(c, 9)
    states.push(await record(c))
    await c.backtrack(states[1].at)
    await assertState(c, states[1], 'back to moment 1')
    const r = await c.backtrack(states[5].lsn)
    assert.ok(r.pages > 0)
    await assertState(c, states[5], 'forward to the moment after the writes (by LSN)')
    await closeGuarded(c)
    c = await openCluster(kvOptions(dir, { ...WINDOW, cacheBytes: 256 << 10 }))
    await assertState(c, states[5], 'after a restart')
    await c.backtrack(states[3].at)
    await assertState(c, states[3], 'after a restart, back to moment 3')
  } finally { await closeGuarded(c).catch(() => {}) }
})

test('a backtrack cut short is finished by the next open', async () => {
  const dir = makeTempDir('backtrack-cut')
  // A small inflightBytesMax: the rewind takes several batches (MTRs).
  const o = kvOptions(dir, { ...WINDOW, inflightBytesMax: 64 << 10 })
  let c = await openCluster(o)
  try {
    await c.writer.sql('CREATE TABLE t (id int PRIMARY KEY, n int)')
    await round(c, 0)
    const s0 = await record(c)
    for (let r = 1; r < 6; r++) await round(c, r)
    const vol = c.volume
    let batches = 0
    // Stop "the process" after the first batch: the writer is gone, the volume closes with the target recorded.
    await rejectsWith(vol.backtrack(s0.lsn, { onProgress: done => { if (done > 0 && ++batches === 1) throw new HexadError('HEXAD_IO', 'the process stopped') } }), 'HEXAD_IO')
    assert.is(vol.pendingBacktrack, s0.lsn)
    await closeGuarded(c).catch(() => {})
    c = await openCluster(o)
    assert.is(c.volume.pendingBacktrack, null)
    await assertState(c, s0, 'after the open finished the backtrack')
  } finally { await closeGuarded(c).catch(() => {}) }
})

test('a backtrack drops open transactions and closes wire connections', async () => {
  const dir = makeTempDir('backtrack-pause')
  const c = await openCluster(kvOptions(dir, WINDOW))
  const ep = await serve(c, { pg: { port: 0 } })
  try {
    await c.writer.put('a', '1')
    await sleep(120)
    const before = new Date()
    await sleep(120)
    await c.writer.put('a', '2')
    const client = new pg.Client({ host: ep.pg!.host, port: ep.pg!.port, user: 'hexad', database: 'hexad' })
    await client.connect()
    const ended = new Promise<void>(resolve => { client.on('error', () => resolve()); client.on('end', () => resolve()) })
    await client.query('SELECT 1')
    let txResult: unknown = null
    const tx = c.writer.transaction(async t => { await t.put('b', 'in-tx'); await sleep(300); await t.put('c', 'in-tx') }).catch(e => { txResult = e })
    await sleep(50)
    const r = await c.backtrack(before)
    await tx
    assert.is((txResult as { code?: string } | null)?.code, 'HEXAD_CLOSED', 'the open transaction failed')
    await ended
    assert.is(utf8((await c.writer.get('a'))!), '1')
    assert.is(await c.writer.get('b'), undefined)
    assert.ok(r.pages > 0, "the pages written after the moment were written again")
    // New connections work on the new writer.
    const again = new pg.Client({ host: ep.pg!.host, port: ep.pg!.port, user: 'hexad', database: 'hexad' })
    await again.connect()
    await again.query('SELECT 1')
    await again.end()
  } finally {
    await ep.close()
    await closeGuarded(c).catch(() => {})
  }
})

test('outside the window, backtrack off, a clone before its creation: refused with the bounds', async () => {
  const root = makeTempDir('backtrack-bad')
  const off = await openCluster(kvOptions(path.join(root, 'off')))
  try {
    await rejectsWith(off.backtrack(new Date()), 'HEXAD_BAD_INPUT', /backtrack is off/)
    assert.is(off.backtrackWindow(), null)
  } finally { await closeGuarded(off) }
  const c = await openCluster(kvOptions(path.join(root, 'p'), WINDOW))
  let clone: Cluster | null = null
  try {
    await c.writer.sql('CREATE TABLE t (id int PRIMARY KEY, n int)')
    await round(c, 0)
    const w = c.backtrackWindow()!
    await rejectsWith(c.backtrack(new Date(w.earliest.getTime() - 60_000)), 'HEXAD_BAD_INPUT', /outside the window .* \.\. .*LSN \d+ \.\. \d+/)
    await rejectsWith(c.backtrack(new Date(Date.now() + 60_000)), 'HEXAD_BAD_INPUT', /outside the window/)
    await rejectsWith(c.backtrack(c.volume.vdl + 10), 'HEXAD_BAD_INPUT', /outside the window/)
    await rejectsWith(c.backtrack(new Date('nope')), 'HEXAD_BAD_INPUT', /invalid Date/)
    await rejectsWith(c.backtrack('yesterday' as never), 'HEXAD_BAD_INPUT', /Date or an LSN/)
    // A multi-record MTR: its first record's LSN is not a state the volume had.
    await c.writer.batch(Array.from({ length: 200 }, (_, j) => ({ type: 'put' as const, key: key(j), value: 'x'.repeat(200) })))
    const end = c.volume.vdl
    await rejectsWith(c.backtrack(end - 1), 'HEXAD_BAD_INPUT', /not the end of a mini-transaction/)
    await sleep(120)
    const beforeClone = new Date()
    await sleep(120)
    clone = await c.clone({ dir: path.join(root, 'c') })
    const cw = clone.backtrackWindow()!
    assert.is(cw.earliestLsn, clone.volume.parent!.lsn, "a clone's window starts at its creation")
    await rejectsWith(clone.backtrack(beforeClone), 'HEXAD_BAD_INPUT', /outside the window/)
    await rejectsWith(clone.backtrack(cw.earliestLsn - 1), 'HEXAD_BAD_INPUT', /outside the window/)
    await clone.writer.put('x', 'y')
    await clone.backtrack(cw.earliestLsn)
    assert.is(await clone.writer.get('x'), undefined, 'the clone rewinds to its creation')
    assert.is(utf8((await clone.writer.get(key(5)))!), 'x'.repeat(200))
  } finally {
    if (clone) await closeGuarded(clone).catch(() => {})
    await closeGuarded(c)
  }
})

test.run()
