/**
 * The version store (engine/compute/version-store.ts): reads at a snapshot
 * see the newest version at or below it; prune keeps every version a held
 * snapshot can still read, whether that snapshot is the newest one handed
 * out (counted apart from the others) or an older one; and through a
 * database, every read and transaction gives its snapshot back.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { VersionStore } from '../engine/compute/version-store.js'
import { withTempCluster } from './helpers/kv-helpers.js'

const b = (s: string) => new TextEncoder().encode(s)
const text = (r: ReturnType<VersionStore['resolve']>) => !r.found ? 'tree' : r.value === null ? 'deleted' : new TextDecoder().decode(r.value)

test('snapshots read their versions; prune keeps what a held snapshot needs, hot or not', () => {
  const vs = new VersionStore()
  const k = b('k')
  const commit = (value: string | null, before: string | null) => {
    const seq = vs.nextSeq()
    vs.record(1, k, seq, value === null ? null : b(value), before === null ? null : b(before))
    vs.markDurable(seq)
    return seq
  }
  const s0 = vs.acquire() // 0, the hot snapshot
  const s0b = vs.acquire()
  assert.is(s0, 0); assert.is(s0b, 0)
  assert.is(vs.snapshotsHeld, 2)
  commit('v1', 'v0')
  const s1 = vs.acquire() // 1: snapshot 0 (held twice) moves out of the hot slot
  commit('v2', null)
  commit(null, null)
  assert.is(text(vs.resolve(1, k, s0)), 'v0')
  assert.is(text(vs.resolve(1, k, s1)), 'v1')
  assert.is(text(vs.resolve(1, k, 3)), 'deleted')
  assert.is(vs.snapshotsHeld, 3)
  vs.prune()
  assert.is(text(vs.resolve(1, k, s0)), 'v0', 'snapshot 0 is still held (twice): its base is kept')
  vs.release(s0)
  vs.prune()
  assert.is(text(vs.resolve(1, k, s0b)), 'v0', 'snapshot 0 is still held once')
  vs.release(s0b)
  vs.prune()
  assert.is(text(vs.resolve(1, k, s1)), 'v1', 'snapshot 1 (the hot one) keeps v1')
  assert.is(vs.size, 1)
  const s3 = vs.acquire() // 3: the hot slot moves on, snapshot 1 goes to the map
  vs.release(s1)
  vs.prune()
  assert.is(vs.size, 0, 'nothing held below the newest version: the entry leaves the store')
  assert.is(text(vs.resolve(1, k, s3)), 'tree')
  vs.release(s3)
  vs.release(s3) // a second release of the same snapshot changes nothing
  assert.is(vs.snapshotsHeld, 0)
})

test('a database gives back every snapshot: gets, scans cut short, transactions, SQL', async () => {
  await withTempCluster('version-store', {}, async cluster => {
    const db = cluster.writer
    for (let i = 0; i < 300; i++) await db.put(`k${String(i).padStart(4, '0')}`, 'x'.repeat(200))
    await Promise.all([db.get('k0001'), db.get('nope'), db.getString('k0002')])
    for await (const _ of db.scan({ limit: 5 })) { /* read a few */ }
    for await (const _ of db.scan()) break // cut short
    await db.transaction(async tx => { await tx.get('k0003'); for await (const _ of tx.scanBatches()) break; await tx.put('k0004', 'y') })
    await db.transaction(async tx => { await tx.get('k0005'); throw new Error('rolled back') }).catch(() => {})
    await db.sql('CREATE TABLE t (id INT PRIMARY KEY, v TEXT)')
    await db.sql('INSERT INTO t VALUES (1, $1), (2, $2)', ['a', 'b'])
    await db.sql('SELECT * FROM t WHERE id = 1')
    await db.sql('SELECT COUNT(*) FROM t')
    assert.is(db.stats().snapshotsHeld, 0, 'no snapshot left held once every read has finished')
    const s = db.session()
    await s.sql('BEGIN')
    await s.sql('SELECT * FROM t')
    assert.ok(db.stats().snapshotsHeld >= 1, 'an open SQL transaction holds its snapshot')
    await s.sql('COMMIT')
    await s.close()
    assert.is(db.stats().snapshotsHeld, 0)
  })
})

test.run()
