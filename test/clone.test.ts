/**
 * Copy-on-write clones (issue 8): `cluster.clone({ dir })` is a new cluster
 * whose volume is (parent, clone LSN); pages it never wrote are read from
 * the parent at that LSN.
 *
 * - Isolation under concurrent writes on both sides: eight writers (four
 *   per side) update, delete and add keys, small and overflow values, in two
 *   keyspaces, long enough for the clone's segments to checkpoint (which
 *   needs the parent's images under their records); each side ends equal to
 *   its own model, and the other side's writes never show.
 * - The parent's segments keep collecting their log while the clone lives
 *   (they fold each page at the clone LSN too).
 * - The clone reopens with its parent closed (it opens the parent itself),
 *   and after a clone segment restarts (gap fill, bases asked again).
 * - Clone of a clone; destroying the parents keeps them (marked destroyed,
 *   not openable) while a clone reads through them; the last clone's
 *   destroy removes the whole chain.
 * - SQL tables clone too.
 * - Bad input: a non-empty target, the parent's own directory, destroying
 *   an open or a missing cluster.
 */
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { destroyCluster, openCluster, openVolume, type Cluster } from '../engine/index.js'
import { cleanupTempDirs, closeGuarded, collect, kvOptions, makeTempDir, Rng, rejectsWith, sleep, throwsWith, utf8 } from './helpers/kv-helpers.js'
import { waitFor } from './helpers/volume-helpers.js'

test.after(() => cleanupTempDirs())

const key = (i: number) => `k/${String(i).padStart(5, '0')}`
const big = (tag: string, n = 6000) => tag.repeat(Math.ceil(n / tag.length)).slice(0, n)

async function dump(c: Cluster, ks?: string): Promise<Map<string, string>> {
  const db = ks ? c.writer.keyspace(ks) : c.writer
  return new Map((await collect(db.scan({}))).map(([k, v]) => [utf8(k), utf8(v)]))
}

function assertSame(got: Map<string, string>, want: Map<string, string>, what: string): void {
  for (const [k, v] of want) if (got.get(k) !== v) assert.unreachable(`${what}: ${k} is ${JSON.stringify(got.get(k)?.slice(0, 40))}, expected ${JSON.stringify(v.slice(0, 40))}`)
  for (const k of got.keys()) if (!want.has(k)) assert.unreachable(`${what}: ${k} should not exist`)
}

async function load(c: Cluster, n: number): Promise<{ main: Map<string, string>; other: Map<string, string> }> {
  const main = new Map<string, string>()
  const other = new Map<string, string>()
  for (let i = 0; i < n; i += 200) {
    const batch = Array.from({ length: Math.min(200, n - i) }, (_, j) => ({ type: 'put' as const, key: key(i + j), value: `base-${i + j}` }))
    await c.writer.batch(batch)
    for (const b of batch) main.set(b.key, b.value)
  }
  for (let i = 0; i < 20; i++) { const v = big(`ov${i}-`); await c.writer.keyspace('other').put(`o${i}`, v); other.set(`o${i}`, v) }
  return { main, other }
}

test('a clone and its parent are isolated under concurrent writes on both sides', async () => {
  const root = makeTempDir('clone-iso')
  // Small log files: the clone's segments checkpoint (fold over the parent's images) during the test.
  const small = { cacheBytes: 256 << 10, logFileBytes: 32 << 10, checkpointLogBytes: 32 << 10 }
  const parent = await openCluster(kvOptions(path.join(root, 'p'), small))
  let clone: Cluster | null = null
  try {
    const base = await load(parent, 3000)
    clone = await parent.clone({ dir: path.join(root, 'c') })
    assert.equal(parent.clones().map(c => c.dir), [path.join(root, 'c')])
    const models = { p: { main: new Map(base.main), other: new Map(base.other) }, c: { main: new Map(base.main), other: new Map(base.other) } }
    const sides: Array<['p' | 'c', Cluster]> = [['p', parent], ['c', clone]]
    // Four writers per side on disjoint key ranges (each model stays exact), racing the other side.
    await Promise.all(sides.flatMap(([side, c]) => [0, 1, 2, 3].map(async w => {
      const rng = new Rng(side === 'p' ? 100 + w : 200 + w)
      const m = models[side]
      for (let op = 0; op < 120; op++) {
        const i = w + 4 * rng.int(0, 899)
        const r = rng.int(0, 9)
        if (r < 6) { const v = `${side}${w}-${op}-${'x'.repeat(rng.int(0, 299))}`; await c.writer.put(key(i), v); m.main.set(key(i), v) }
        else if (r < 8) { await c.writer.del(key(i)); m.main.delete(key(i)) }
        else if (r < 9) { const k = `${side}-new/${w}/${op}`; await c.writer.put(k, side); m.main.set(k, side) }
        else { const k = `o${w * 5 + rng.int(0, 4)}`; const v = big(`${side}${w}${op}-`, 5000 + rng.int(0, 3999)); await c.writer.keyspace('other').put(k, v); m.other.set(k, v) }
      }
    })))
    for (const [side, c] of sides) {
      assertSame(await dump(c), models[side].main, `${side} main`)
      assertSame(await dump(c, 'other'), models[side].other, `${side} other`)
      const v = await c.writer.verify()
      assert.ok(v.ok, `${side} verify: ${JSON.stringify(v.problems)}`)
    }
    assert.is(await clone.writer.get('p-new/0/0'), undefined)
    // The clone's segments folded their logs over the parent's images (checkpoints ran).
    // Segments take turns to fold (one waits while a peer folds): the last may fold a few gossip rounds later.
    let stats = (await clone.volume.segmentStats()).filter(s => s !== null)
    await waitFor(async () => (stats = (await clone!.volume.segmentStats()).filter(s => s !== null)).every(s => s!.gcLogFiles > 0), 10_000, 50)
    assert.ok(stats.every(s => s!.gcLogFiles > 0), `every clone segment checkpointed: ${JSON.stringify(stats.map(s => s!.gcLogFiles))}`)
    // The clone's pin does not hold the parent's log: the parent folds at the clone LSN and collects it.
    let pstats = (await parent.volume.segmentStats()).filter(s => s !== null)
    await waitFor(async () => (pstats = (await parent.volume.segmentStats()).filter(s => s !== null)).every(s => s!.gcLogFiles > 0), 10_000, 50)
    assert.ok(pstats.every(s => s!.gcLogFiles > 0), `every parent segment collected log files while the clone lives: ${JSON.stringify(pstats.map(s => s!.gcLogFiles))}`)

    // Reopen the clone with its parent closed: it opens the parent itself.
    await closeGuarded(clone); clone = null
    await closeGuarded(parent)
    clone = await openCluster(kvOptions(path.join(root, 'c'), small))
    assertSame(await dump(clone), models.c.main, 'clone after reopen')
    assertSame(await dump(clone, 'other'), models.c.other, 'clone other after reopen')
    // A clone segment down while the clone writes, then back: it fills its gaps and gets its bases.
    await clone.volume.faults.stopWorker(2)
    for (let i = 0; i < 300; i += 3) { await clone.writer.put(key(i), `late-${i}`); models.c.main.set(key(i), `late-${i}`) }
    await clone.volume.faults.restartWorker(2)
    await clone.volume.faults.stopWorker(0)
    await clone.volume.faults.stopWorker(1)
    await clone.volume.faults.stopWorker(3)
    // Reads now come from segments 2, 4, 5 (2 caught up) and the cache is tiny: pages are read again.
    assertSame(await dump(clone), models.c.main, 'clone with three segments down')
    await clone.volume.faults.restartWorker(0)
    await clone.volume.faults.restartWorker(1)
    await clone.volume.faults.restartWorker(3)
    await closeGuarded(clone); clone = null
    const p2 = await openCluster(kvOptions(path.join(root, 'p'), small))
    assertSame(await dump(p2), models.p.main, 'parent after reopen')
    await closeGuarded(p2)
  } finally {
    if (clone) await closeGuarded(clone).catch(() => {})
    await closeGuarded(parent).catch(() => {})
  }
})

test('clone of a clone; destroyed parents stay while a clone reads through them', async () => {
  const root = makeTempDir('clone-chain')
  const a = await openCluster(kvOptions(path.join(root, 'a')))
  await load(a, 1000)
  const b = await a.clone({ dir: path.join(root, 'b') })
  await b.writer.put(key(1), 'b1')
  const c = await b.clone({ dir: path.join(root, 'c') })
  await c.writer.put(key(2), 'c2')
  await a.writer.put(key(3), 'a3')
  await b.writer.put(key(4), 'b4')
  assert.is(utf8((await c.writer.get(key(1)))!), 'b1')
  assert.is(utf8((await c.writer.get(key(2)))!), 'c2')
  assert.is(utf8((await c.writer.get(key(3)))!), 'base-3', "a's write after b's clone is not in c")
  assert.is(utf8((await c.writer.get(key(4)))!), 'base-4', "b's write after c's clone is not in c")
  assert.is(utf8((await b.writer.get(key(2)))!), 'base-2', "c's write is not in b")
  assert.equal(await a.destroy(), { removed: [], kept: [path.join(root, 'a')] })
  assert.equal(await b.destroy(), { removed: [], kept: [path.join(root, 'b')] })
  await rejectsWith(openCluster(kvOptions(path.join(root, 'a'))), 'HEXAD_BAD_INPUT', /destroyed.*clones read through it/)
  // Everything still reads, with both parents closed and destroyed.
  const all = await dump(c)
  assert.is(all.size, 1000)
  assert.is(all.get(key(1)), 'b1')
  assert.is(all.get(key(999)), 'base-999')
  assert.is((await dump(c, 'other')).get('o7'), big('ov7-'))
  await c.close()
  const c2 = await openCluster(kvOptions(path.join(root, 'c')))
  assert.ok((await c2.writer.verify()).ok)
  assert.is((await dump(c2)).size, 1000)
  const r = await c2.destroy()
  assert.equal(r.removed.sort(), [path.join(root, 'a'), path.join(root, 'b'), path.join(root, 'c')].sort())
  assert.equal(fs.readdirSync(root), [])
})

test('SQL tables and indexes clone with their data', async () => {
  const root = makeTempDir('clone-sql')
  const p = await openCluster(kvOptions(path.join(root, 'p')))
  try {
    await p.writer.sql('CREATE TABLE t (id int PRIMARY KEY, name text UNIQUE, n int)')
    await p.writer.sql("INSERT INTO t SELECT g, 'n' || g, g * 2 FROM generate_series(1, 300) AS g")
    const c = await p.clone({ dir: path.join(root, 'c') })
    try {
      await c.writer.sql("UPDATE t SET n = -1 WHERE id <= 10")
      await c.writer.sql("INSERT INTO t VALUES (1000, 'clone-only', 0)")
      await p.writer.sql('DELETE FROM t WHERE id > 290')
      assert.is((await c.writer.sql('SELECT count(*) AS c FROM t')).rows[0].c, 301)
      assert.is((await p.writer.sql('SELECT count(*) AS c FROM t')).rows[0].c, 290)
      assert.is((await c.writer.sql('SELECT sum(n) AS s FROM t WHERE id <= 10')).rows[0].s, -10)
      assert.is((await p.writer.sql('SELECT sum(n) AS s FROM t WHERE id <= 10')).rows[0].s, 110)
      assert.is((await c.writer.sql("SELECT id FROM t WHERE name = 'clone-only'")).rows[0].id, 1000)
      assert.is((await p.writer.sql("SELECT id FROM t WHERE name = 'clone-only'")).rows.length, 0)
      assert.ok((await c.writer.verify()).ok)
    } finally { await c.destroy() }
    assert.equal(p.clones(), [])
  } finally { await closeGuarded(p) }
})

test('volume level: a custom compute node clones its volume; a partial write of an inherited page lands on the parent image', async () => {
  const root = makeTempDir('clone-vol')
  const vol = await openVolume({ dir: path.join(root, 'p'), pagesPerGroup: 64 })
  const img = (fill: number) => new Uint8Array(vol.pageSize).fill(fill)
  await vol.write(Array.from({ length: 200 }, (_, i) => ({ pageId: i, ops: [{ op: 'init' as const, image: img(i % 251) }] })))
  const clone = await vol.clone({ dir: path.join(root, 'c') })
  try {
    assert.is(clone.parent!.lsn, vol.vdl)
    assert.ok((await clone.readPage(77)).every(b => b === 77), 'an inherited page reads as the parent had it')
    // A write op of 4 bytes on a page the clone never wrote: the clone's segments need the parent's image under it.
    await clone.write([{ pageId: 77, ops: [{ op: 'write', offset: 10, bytes: new Uint8Array([1, 2, 3, 4]) }] }])
    await vol.write([{ pageId: 77, ops: [{ op: 'fill', offset: 0, len: 8, byte: 9 }] }])
    const c77 = await clone.readPage(77)
    assert.equal([...c77.subarray(0, 16)], [77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 1, 2, 3, 4, 77, 77])
    const p77 = await vol.readPage(77)
    assert.equal([...p77.subarray(0, 16)], [9, 9, 9, 9, 9, 9, 9, 9, 77, 77, 77, 77, 77, 77, 77, 77])
    // Every clone segment got the base (each builds the page itself).
    for (let i = 0; i < 100; i++) {
      const st = (await clone.segmentStats()).filter(s => s !== null)
      if (st.every(s => s!.basesPending === 0 && s!.basesReceived >= 1)) break
      await sleep(20)
    }
    const st = (await clone.segmentStats()).filter(s => s !== null)
    assert.ok(st.every(s => s!.basesPending === 0 && s!.basesReceived >= 1), JSON.stringify(st.map(s => [s!.basesPending, s!.basesReceived])))
    // A page beyond anything the parent wrote reads as zeros in the clone too.
    assert.ok((await clone.readPage(5000)).every(b => b === 0))
  } finally {
    await clone.close()
    await vol.close()
  }
})

test('bad input: clone targets, destroy of open or missing clusters', async () => {
  const root = makeTempDir('clone-bad')
  const p = await openCluster(kvOptions(path.join(root, 'p')))
  try {
    await p.writer.put('a', 'b')
    fs.mkdirSync(path.join(root, 'full'))
    fs.writeFileSync(path.join(root, 'full', 'x'), 'x')
    await rejectsWith(p.clone({ dir: path.join(root, 'full') }), 'HEXAD_BAD_INPUT', /not empty/)
    await rejectsWith(p.clone({ dir: path.join(root, 'p') }), 'HEXAD_BAD_INPUT', /outside the volume's own directory/)
    await rejectsWith(p.clone({ dir: path.join(root, 'p', 'inner') }), 'HEXAD_BAD_INPUT', /outside the volume's own directory/)
    await rejectsWith(p.clone({} as never), 'HEXAD_BAD_INPUT', /dir/)
    await rejectsWith(destroyCluster(path.join(root, 'p')), 'HEXAD_BAD_INPUT', /open in this process/)
    await rejectsWith(destroyCluster(path.join(root, 'nothing')), 'HEXAD_BAD_INPUT', /no volume/)
    throwsWith(() => p.volume.createClone(''), 'HEXAD_BAD_INPUT', /non-empty/)
    assert.equal(p.clones(), [], 'a refused clone leaves no pin')
    assert.is(utf8((await p.writer.get('a'))!), 'b')
  } finally { await closeGuarded(p) }
})

test.run()
