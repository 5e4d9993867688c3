/**
 * Named snapshots (issue 8, first part): cluster.snapshot(name) keeps the
 * state as of its VDL in the volume until deleteSnapshot; openSnapshot reads
 * it (a read-only instance fixed at that LSN).
 *
 * - A snapshot reads the state at its creation while the writer changes,
 *   deletes and adds keys (gets and scans, named keyspaces, overflow values).
 * - It survives a restart and megabytes of later writes (past the checkpoint
 *   threshold many times). It does not hold the log: checkpoints fold every
 *   page at its LSN as well (a version per pin) and collect the log after
 *   it. A segment rebuilt from a peer gets the pages as of the snapshot too
 *   and alone serves it; once the snapshot is deleted its versions go.
 * - list, delete, bad names, duplicates, unknown names: typed errors.
 */
import { randomBytes } from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { openCluster } from '../engine/index.js'
import { cleanupTempDirs, codeOf, collect, kvOptions, makeTempDir, rmTempDir, utf8, withTempCluster } from './helpers/kv-helpers.js'
import { waitFor } from './helpers/volume-helpers.js'

test.after(() => cleanupTempDirs())

const big = (tag: string) => tag.repeat(Math.ceil(9000 / tag.length)).slice(0, 9000)

test('a snapshot reads the state at its creation while the writer goes on', async () => {
  await withTempCluster('snap-basic', {}, async cluster => {
    const db = cluster.writer
    await db.batch(Array.from({ length: 300 }, (_, i) => ({ type: 'put' as const, key: `k/${String(i).padStart(3, '0')}`, value: `v1-${i}` })))
    await db.keyspace('other').put('x', big('old'))
    const lsn = cluster.snapshot('before')
    assert.ok(lsn > 0)
    for (let i = 0; i < 300; i += 3) await db.put(`k/${String(i).padStart(3, '0')}`, `v2-${i}`)
    await db.batch([{ type: 'del', key: 'k/001' }, { type: 'put', key: 'k/999', value: 'new' }])
    await db.keyspace('other').put('x', big('new'))
    await db.keyspace('later').put('y', 'y')
    const snap = cluster.openSnapshot('before')
    try {
      assert.is(await snap.getString('k/000'), 'v1-0')
      assert.is(await snap.getString('k/001'), 'v1-1', 'a key deleted since is still in the snapshot')
      assert.is(await snap.get('k/999'), undefined, 'a key added since is not')
      const rows = await collect(snap.scan())
      assert.is(rows.length, 300)
      assert.ok(rows.every(([k, v], i) => utf8(k) === `k/${String(i).padStart(3, '0')}` && utf8(v) === `v1-${i}`), 'the scan is the state at the snapshot')
      assert.is(await snap.keyspace('other').getString('x'), big('old'), 'an overflow value as it was')
      assert.is(await snap.keyspace('later').get('y'), undefined, 'a keyspace created since is empty')
      assert.is(await db.getString('k/000'), 'v2-0', 'the writer sees its own state')
    } finally {
      await snap.close()
    }
  })
})

test('a snapshot survives a restart and many checkpoints; deleting it lets its versions go', async () => {
  const dir = makeTempDir('snap-restart')
  const opts = kvOptions(dir, { logFileBytes: 256 << 10, checkpointLogBytes: 512 << 10 })
  let cluster = await openCluster(opts)
  try {
    const db = cluster.writer
    await db.batch(Array.from({ length: 200 }, (_, i) => ({ type: 'put' as const, key: `k/${String(i).padStart(3, '0')}`, value: `gen0-${i}` })))
    cluster.snapshot('gen0')
    // Overwrite every key many times: several MB of redo, far past the checkpoint threshold.
    for (let gen = 1; gen <= 12; gen++) {
      await db.batch(Array.from({ length: 200 }, (_, i) => ({ type: 'put' as const, key: `k/${String(i).padStart(3, '0')}`, value: `gen${gen}-${i}-` + randomBytes(150).toString('hex') })))
    }
    await cluster.close()
    cluster = await openCluster(opts)
    assert.equal(cluster.snapshots().map(s => s.name), ['gen0'], 'the snapshot is kept across the restart')
    for (let gen = 13; gen <= 24; gen++) {
      await cluster.writer.batch(Array.from({ length: 200 }, (_, i) => ({ type: 'put' as const, key: `k/${String(i).padStart(3, '0')}`, value: `gen${gen}-${i}-` + randomBytes(150).toString('hex') })))
    }
    // The snapshot does not hold the log: checkpoints fold every page at its LSN too and collect the log after it.
    // Segments take turns to fold (one waits while a peer folds), so the last may fold a few gossip rounds later.
    let held = await cluster.volume.segmentStats()
    await waitFor(async () => (held = await cluster.volume.segmentStats()).every(s => (s?.gcLogFiles ?? 0) > 0), 10_000, 50)
    assert.ok(held.every(s => (s?.gcLogFiles ?? 0) > 0), `logs collected while the snapshot exists (${JSON.stringify(held.map(s => s?.gcLogFiles))})`)
    const readSnapshot = async (what: string) => {
      const snap = cluster.openSnapshot('gen0', { cacheBytes: 64 * 1024 })
      try {
        const rows = await collect(snap.scan())
        assert.is(rows.length, 200, what)
        assert.ok(rows.every(([, v], i) => utf8(v) === `gen0-${i}`), `${what}: every key reads as it was at the snapshot`)
      } finally {
        await snap.close()
      }
    }
    await readSnapshot('after the logs went')
    // A segment that lost its files is rebuilt from a peer, with the pages as of the snapshot too:
    // alone (the five others stopped) it serves the snapshot.
    const vol = cluster.volume
    await vol.faults.stopWorker(0)
    fs.rmSync(path.join(dir, 'segment-0'), { recursive: true, force: true })
    await vol.faults.restartWorker(0)
    let rebuilt = false
    for (let i = 0; i < 200 && !rebuilt; i++) {
      await new Promise(r => setTimeout(r, 50))
      const s0 = (await vol.segmentStats())[0]
      rebuilt = !!s0 && s0.rebuildPgsActive === 0 && s0.rebuildPgsDone > 0
    }
    assert.ok(rebuilt, 'segment 0 rebuilt')
    for (const id of [1, 2, 3, 4, 5]) await vol.faults.stopWorker(id)
    await readSnapshot('from the rebuilt segment alone')
    for (const id of [1, 2, 3, 4, 5]) await vol.faults.restartWorker(id)
    assert.match((await cluster.writer.getString('k/007'))!, /^gen24-7-/)
    cluster.deleteSnapshot('gen0')
    assert.equal(cluster.snapshots(), [])
    // Once it is deleted the versions kept for it go at the next checkpoints.
    const gcBefore = (await cluster.volume.segmentStats()).reduce((n, s) => n + (s?.gcVersions ?? 0), 0)
    let gc = gcBefore
    for (let i = 0; i < 100 && gc === gcBefore; i++) {
      await cluster.writer.batch(Array.from({ length: 50 }, (_, j) => ({ type: 'put' as const, key: `tick/${i}/${j}`, value: randomBytes(500) })))
      await new Promise(r => setTimeout(r, 50))
      gc = (await cluster.volume.segmentStats()).reduce((n, s) => n + (s?.gcVersions ?? 0), 0)
    }
    assert.ok(gc > gcBefore, 'versions kept for the snapshot are collected once it is deleted')
    try { cluster.openSnapshot('gen0'); assert.unreachable() } catch (err) { assert.is(codeOf(err), 'HEXAD_BAD_INPUT') }
  } finally {
    await cluster.close()
    rmTempDir(dir)
  }
})

test('snapshot names: list in order, duplicates, bad and unknown names are refused', async () => {
  await withTempCluster('snap-input', {}, async cluster => {
    await cluster.writer.put('a', '1')
    const l1 = cluster.snapshot('one')
    await cluster.writer.put('a', '2')
    const l2 = cluster.snapshot('two')
    assert.ok(l2 > l1)
    assert.equal(cluster.snapshots(), [{ name: 'one', lsn: l1 }, { name: 'two', lsn: l2 }])
    for (const [what, fn] of [
      ['duplicate', () => cluster.snapshot('one')],
      ['empty name', () => cluster.snapshot('')],
      ['slash', () => cluster.snapshot('a/b')],
      ['not a string', () => cluster.snapshot(7 as never)],
      ['delete unknown', () => cluster.deleteSnapshot('nope')],
      ['open unknown', () => cluster.openSnapshot('nope')],
    ] as const) {
      try { fn(); assert.unreachable(what) } catch (err) {
        if ((err as Error).name === 'Assertion') throw err
        assert.is(codeOf(err), 'HEXAD_BAD_INPUT', `${what}: ${String(err)}`)
      }
    }
    const s1 = cluster.openSnapshot('one')
    assert.is(await s1.getString('a'), '1')
    await s1.close()
  })
})

test.run()
