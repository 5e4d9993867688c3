/**
 * The segment's compact record store (record-store.ts) and the frame
 * extents' flat record pairs (hot-log.ts): records go in as decoded tuples
 * and come back equal, by LSN, field by field, after the store has grown
 * and reused slots; the memory the ops lie in is held while a record uses
 * it and let go with the last one; records whose ops are an array (old
 * frames) come back as given; and a PG segment built on the store keeps
 * its chain, ranges and folds as before.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { decodeFrame, encodeFrame, packOps, recordOps, type RecordTuple } from '../engine/storage/format.js'
import { frameRecs, recPairs } from '../engine/storage/hot-log.js'
import { RecordStore } from '../engine/storage/record-store.js'
import { PgSegment } from '../engine/storage/segment.js'
import type { EncodedOp } from '../engine/common/page-ops.js'

/** ops with their bytes as plain arrays (decoded bins are Buffers, the originals Uint8Arrays) */
const plain = (o: EncodedOp[]) => o.map(op => op.map(x => x instanceof Uint8Array ? [...x] : x))

function ops(lsn: number): EncodedOp[] {
  return [[1, lsn % 4000, new Uint8Array([lsn & 0xff, (lsn >> 8) & 0xff, 7])], [3, 10, 5, lsn & 0xff]]
}

/** `n` records from `first` on, chained one after the other, decoded from a real frame (ops are views of it). */
function frameOf(first: number, n: number, prev: number): RecordTuple[] {
  const records: RecordTuple[] = []
  for (let i = 0; i < n; i++) {
    const lsn = first + i
    records.push([lsn, 3 + (lsn % 7), i === 0 ? prev : lsn - 1, -1, i === n - 1 ? 1 : 0, packOps(ops(lsn))])
  }
  // each frame in memory of its own (as a large frame in the writer's arena; small ones share a chunk)
  const p = decodeFrame(encodeFrame({ epoch: 1, vdl: 0, records }, n => Buffer.from(new ArrayBuffer(n)), false))
  assert.ok(p, 'the frame decodes')
  return p!.records
}

test('records come back field by field, across growth and slot reuse', () => {
  const store = new RecordStore()
  const want = new Map<number, RecordTuple>()
  let prev = 0
  for (let f = 0; f < 30; f++) { // 3,000 records: past the initial 1,024 slots
    for (const r of frameOf(1 + f * 100, 100, prev)) { store.add(r); want.set(r[0], r) }
    prev = f * 100 + 100
  }
  assert.is(store.size, 3000)
  for (let lsn = 1; lsn <= 1500; lsn++) { assert.ok(store.delete(lsn)); want.delete(lsn) }
  assert.not.ok(store.delete(1), 'a second delete finds nothing')
  for (const r of frameOf(5001, 700, 3000)) { store.add(r); want.set(r[0], r) } // reuses freed slots
  assert.is(store.size, want.size)
  for (const [lsn, r] of want) {
    const got = store.get(lsn)!
    assert.ok(got, `record ${lsn} is held`)
    assert.equal(got.slice(0, 5), r.slice(0, 5), `fields of ${lsn}`)
    assert.equal(plain(recordOps(got)), plain(ops(lsn)), `ops of ${lsn}`)
    assert.is(store.page(lsn), r[1])
    assert.is(store.prev(lsn), r[2])
    assert.is(store.flags(lsn), r[4])
  }
  assert.is(store.get(1), undefined)
  assert.not.ok(store.has(1500))
  assert.equal([...store.lsns()].sort((a, b) => a - b), [...want.keys()].sort((a, b) => a - b))
})

test('the LSN table agrees with a Map under random adds and deletes, dense and sparse, across growth and shrinking', () => {
  const store = new RecordStore()
  const want = new Map<number, number>()
  let seed = 7
  const rnd = (n: number) => { seed = (Math.imul(seed, 1103515245) + 12345) >>> 0; return seed % n }
  const add = (lsn: number) => { if (want.has(lsn)) return; const page = lsn % 97; store.add([lsn, page, lsn - 1, -1, 0, [[2, 0, 1, 0]]]); want.set(lsn, page) }
  const check = (what: string) => {
    assert.is(store.size, want.size, `${what}: size`)
    for (const [lsn, page] of want) assert.is(store.page(lsn), page, `${what}: ${lsn}`)
    assert.equal([...store.lsns()].sort((a, b) => a - b), [...want.keys()].sort((a, b) => a - b), `${what}: lsns`)
  }
  // dense (one PG alone), strided (one of many PGs), and past 2^32 (the hash takes both halves)
  for (let i = 1; i <= 20000; i++) add(i)
  for (let i = 0; i < 20000; i++) add(1e6 + i * 64)
  for (let i = 0; i < 5000; i++) add(2 ** 33 + i * 4096 + rnd(3))
  check('after growth')
  // random deletes move later cells of a probe run back: every held LSN must stay findable
  for (let i = 0; i < 30000; i++) {
    const lsn = i % 3 === 0 ? 1 + rnd(20000) : i % 3 === 1 ? 1e6 + rnd(20000) * 64 : 2 ** 33 + rnd(5000) * 4096
    const held = want.delete(lsn)
    assert.is(store.delete(lsn), held, `delete ${lsn}`)
    if (i % 7 === 0) add(5e6 + i)
  }
  check('after random deletes')
  const cells = store.tableCells
  assert.ok(cells >= 2 * store.size, `load at most 1/2 (${store.size} in ${cells})`)
  for (const lsn of [...want.keys()]) if (lsn < 4e6) { assert.ok(store.delete(lsn)); want.delete(lsn) }
  check('after a fold-like sweep')
  assert.ok(store.tableCells * 4 <= cells, `the table shrank (${cells} cells, then ${store.tableCells} for ${store.size})`)
  assert.ok(store.tableCells >= 2 * store.size)
  for (const lsn of [1, 2, 1e6, 2 ** 33]) assert.not.ok(store.has(lsn), `${lsn} is gone`)
  for (let i = 1; i <= 3000; i++) add(i)
  check('refilled after shrinking')
})

test('the memory of a frame is held while one of its records is, and let go with the last', () => {
  const store = new RecordStore()
  const a = frameOf(1, 10, 0)
  const b = frameOf(11, 10, 10)
  for (const r of [...a, ...b]) store.add(r)
  assert.is(store.buffersHeld, 2)
  for (let lsn = 1; lsn <= 9; lsn++) store.delete(lsn)
  assert.is(store.buffersHeld, 2, 'record 10 still uses the first frame')
  store.delete(10)
  assert.is(store.buffersHeld, 1)
  for (const r of frameOf(21, 5, 20)) store.add(r)
  assert.is(store.buffersHeld, 2)
  assert.equal(plain(recordOps(store.get(23)!)), plain(ops(23)))
})

test('records with their ops as an array (old frames) come back as given', () => {
  const store = new RecordStore()
  const old: RecordTuple = [7, 2, 0, -1, 1, ops(7)]
  store.add(old)
  store.add(frameOf(8, 1, 7)[0])
  assert.is(store.get(7), old)
  assert.equal(plain(recordOps(store.get(8)!)), plain(ops(8)))
  assert.is(store.buffersHeld, 1)
  assert.ok(store.delete(7))
  assert.is(store.get(7), undefined)
})

test('a PG segment on the store: chain, gaps, ranges, CPLs and folds', () => {
  const st = new PgSegment(0, 0)
  const recs = frameOf(1, 40, 0)
  // out of order, with a gap that closes last
  for (const r of recs) if (r[0] < 20 || r[0] > 25) assert.ok(st.insert(r))
  assert.is(st.scl, 19)
  for (const r of recs) if (r[0] >= 20 && r[0] <= 25) assert.ok(st.insert(r))
  assert.is(st.scl, 40)
  assert.not.ok(st.insert(recs[3]), 'a duplicate is refused')
  st.sclSynced = st.scl
  assert.equal(st.range(10, 15, 100).map(r => r[0]), [11, 12, 13, 14, 15])
  assert.equal(st.range(0, 40, 3).map(r => r[0]), [1, 2, 3])
  assert.equal(st.chainedAbove(38), [[39, 0], [40, 1]])
  for (const [page, chain] of st.chains) assert.equal(chain, recs.filter(r => r[1] === page).map(r => r[0]), `chain of page ${page}`)
  st.fold(30)
  assert.is(st.records.size, 10)
  assert.equal(st.range(0, 40, 100).map(r => r[0]), [31, 32, 33, 34, 35, 36, 37, 38, 39, 40])
  for (const chain of st.chains.values()) assert.ok(chain.every(lsn => lsn > 30))
  st.truncate([[35, 40]])
  assert.is(st.scl, 35)
  assert.equal(st.range(0, 40, 100).map(r => r[0]), [31, 32, 33, 34, 35])
})

test('frame extents keep their records as flat (lsn, page) pairs', () => {
  const recs = frameOf(100, 5, 99)
  const flat = frameRecs(recs)
  assert.ok(flat instanceof Float64Array)
  assert.equal(recPairs(flat), recs.map(r => [r[0], r[1]]))
  assert.equal(recPairs(null), [])
})

test.run()
