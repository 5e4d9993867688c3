/**
 * Redo records in frames: the ops of a record travel packed apart (one
 * `bin` per record, unpacked when a page is built), and frames written
 * before that, which carry the ops array itself, still read the same.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { applyEncodedOp, type EncodedOp } from '../engine/common/page-ops.js'
import { decodeFrame, encodeFrame, packOps, R_OPS, recordOps, type RecordTuple } from '../engine/storage/format.js'

const ops: EncodedOp[] = [
  [0, null],
  [1, 100, new Uint8Array([1, 2, 3, 4, 5])],
  [2, 100, 200, 5],
  [3, 300, 10, 0xab],
]

function page(list: EncodedOp[]): Uint8Array {
  const p = new Uint8Array(512).fill(7)
  for (const op of list) applyEncodedOp(p, op)
  return p
}

test('packed ops round-trip through a frame and build the same page', () => {
  const rec: RecordTuple = [5, 3, 4, -1, 1, packOps(ops)]
  const payload = decodeFrame(encodeFrame({ epoch: 1, vdl: 4, records: [rec] }))
  assert.ok(payload, 'the frame decodes')
  const got = payload!.records[0]
  assert.ok(got[R_OPS] instanceof Uint8Array, 'the ops stay packed until asked for')
  assert.equal(page(recordOps(got)), page(ops))
})

test('a frame whose records carry the ops array (the earlier form) reads the same', () => {
  const old: RecordTuple = [5, 3, 4, -1, 1, ops]
  const payload = decodeFrame(encodeFrame({ epoch: 1, vdl: 4, records: [old] }))
  assert.ok(payload)
  assert.ok(Array.isArray(payload!.records[0][R_OPS]))
  assert.equal(page(recordOps(payload!.records[0])), page(ops))
})

test('packed ops that do not decode are named, not applied', () => {
  const bad: RecordTuple = [9, 3, 4, -1, 0, new Uint8Array([0xc1])]
  assert.throws(() => recordOps(bad), /record 9 \(page 3\): its ops do not decode/)
  const notList: RecordTuple = [9, 3, 4, -1, 0, packOps(7 as never)]
  assert.throws(() => recordOps(notList), /its ops do not decode/)
})

test.run()
