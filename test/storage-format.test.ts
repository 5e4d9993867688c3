/**
 * Redo records in frames: the ops of a record travel packed apart (one
 * `bin` per record, unpacked when a page is built), and frames written
 * before that, which carry the ops array itself, still read the same.
 * The writer ships frames raw unless the volume's `compressFrames` is on.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { applyEncodedOp, type EncodedOp } from '../engine/common/page-ops.js'
import { randomBytes } from 'node:crypto'
import fs from 'node:fs'
import { openVolume } from '../engine/index.js'
import { applyPackedOps, COMPRESS_THRESHOLD_BYTES, decodeFrame, encodeFrame, FRAME_FLAG_LZ4, packOps, R_OPS, recordOps, type RecordTuple } from '../engine/storage/format.js'
import { pack } from '../native-bindings/index.js'
import { RecordStore } from '../engine/storage/record-store.js'
import { cleanupTempDirs, listFrames, logFiles, makeTempDir, rejectsWith, rmTempDir, smallOptions } from './helpers/volume-helpers.js'

test.after(() => cleanupTempDirs())

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

test('packed ops applied from their bytes build what unpacking builds: every op, every integer and bin width, two page sizes', () => {
  let seed = 11
  const rnd = (n: number) => { seed = (Math.imul(seed, 1103515245) + 12345) >>> 0; return seed % n }
  const bytes = (n: number) => Uint8Array.from({ length: n }, () => rnd(256))
  const widths = new Set<string>()
  for (const size of [4096, 1 << 17]) { // offsets past 65535 take a uint32
    for (let t = 0; t < 600; t++) {
      const list: EncodedOp[] = []
      for (let k = 1 + rnd(t % 50 === 0 ? 40 : 12); k > 0; k--) { // 16 ops or more take an array16 header
        const kind = rnd(4)
        if (kind === 0) list.push([0, rnd(3) === 0 ? null : bytes(1 + rnd(rnd(2) ? 200 : size))])
        else if (kind === 1) { const n = 1 + rnd(rnd(2) ? 60 : 700); list.push([1, rnd(size - n), bytes(n)]) }
        else if (kind === 2) { const len = rnd(600); list.push([2, rnd(size - len), rnd(size - len), len]) }
        else { const len = rnd(size); list.push([3, rnd(size - len), len, rnd(256)]) }
      }
      const packed = packOps(list)
      for (const b of packed) if (b === 0xcd || b === 0xce || b === 0xc5 || b === 0xdc) widths.add(b.toString(16))
      // the ops lie inside a larger buffer, as in a frame
      const frame = new Uint8Array(packed.length + 9)
      frame.set(packed, 4)
      const fast = Uint8Array.from({ length: size }, (_, i) => i * 7)
      const slow = fast.slice()
      assert.ok(applyPackedOps(fast, frame, 4, 4 + packed.length), `case ${t}: applied`)
      for (const op of recordOps([1, 1, 0, -1, 0, packed])) applyEncodedOp(slow, op)
      assert.ok(Buffer.compare(fast, slow) === 0, `case ${t} (page ${size}): the same page`)
    }
  }
  assert.equal([...widths].sort(), ['c5', 'cd', 'ce', 'dc'], 'uint16, uint32, bin16 and array16 all came up')
})

test('packed ops in a shape packOps does not write are left to msgpackr, and the page is untouched', () => {
  const odd = [
    pack(7), pack('x'), pack([[1, 1.5, new Uint8Array([1])]]), pack([[1, -1, new Uint8Array([1])]]), pack([[4, 0, 0, 0]]),
    pack([[1, 0, 'text']]), pack([[2, 0, 1]]), pack([{ op: 'write' }]), packOps(ops).subarray(0, 6), new Uint8Array([0xc1]),
    Buffer.concat([packOps(ops), Buffer.from([1])]), // a byte after the list
  ]
  for (const b of odd) {
    const p = new Uint8Array(512).fill(7)
    assert.not.ok(applyPackedOps(p, b, 0, b.length), `not read: ${Buffer.from(b).toString('hex')}`)
    assert.ok(p.every(x => x === 7), 'nothing applied')
  }
  // A valid op list followed by a bad op applies nothing either.
  const half = pack([[3, 0, 10, 1], [1, 0, 'no']])
  const p = new Uint8Array(512).fill(7)
  assert.not.ok(applyPackedOps(p, half, 0, half.length))
  assert.ok(p.every(x => x === 7))
})

test('a segment applies a held record from the frame it arrived in, or unpacks one in another shape', () => {
  const store = new RecordStore()
  const recs: RecordTuple[] = [[5, 3, 0, -1, 0, packOps(ops)], [6, 3, 5, 5, 0, ops], [7, 3, 6, 6, 1, pack([[1, 1.5, new Uint8Array([9])]])]]
  const payload = decodeFrame(encodeFrame({ epoch: 1, vdl: 0, records: recs.slice(0, 2) }))!
  store.add(payload.records[0])
  store.add(payload.records[1])
  store.add(recs[2])
  const fast = new Uint8Array(512).fill(7)
  assert.ok(store.applyOps(5, fast))
  assert.ok(store.applyOps(6, fast))
  assert.not.ok(store.applyOps(99, fast), 'an LSN not held')
  assert.equal(fast, page([...ops, ...ops]))
  // msgpackr reads 1.5 as a float; the fallback applies what it decodes
  const viaFallback = new Uint8Array(512)
  store.applyOps(7, viaFallback)
  const want = new Uint8Array(512)
  for (const op of recordOps(recs[2])) applyEncodedOp(want, op)
  assert.equal(viaFallback, want)
})

test('a frame is stored compressed only when lz4 saves at least an eighth of it', () => {
  const frameOf = (bytes: Uint8Array) => encodeFrame({ epoch: 1, vdl: 0, records: [[1, 0, 0, -1, 1, packOps([[1, 0, bytes]])]] })
  const flagsOf = (f: Buffer) => f.readUInt16LE(4)
  const size = COMPRESS_THRESHOLD_BYTES * 4
  // Random bytes with a twentieth of zeros: lz4 saves ~5%, too little to pay six decompressions for.
  const noise = randomBytes(size)
  noise.fill(0, size - Math.floor(size / 20))
  const raw = frameOf(noise)
  assert.is(flagsOf(raw) & FRAME_FLAG_LZ4, 0, 'a payload lz4 saves ~5% of is stored raw')
  // Repetitive bytes (rows of text): stored compressed, and much smaller.
  const text = Buffer.from('pgbench_accounts filler '.repeat(Math.ceil(size / 24)).slice(0, size))
  const packed = frameOf(text)
  assert.is(flagsOf(packed) & FRAME_FLAG_LZ4, FRAME_FLAG_LZ4, 'compressible payload stored compressed')
  assert.ok(packed.length < raw.length / 4, `compressed frame ${packed.length} B against ${raw.length} B raw`)
  // Both read back to the same ops.
  for (const [f, bytes] of [[raw, noise], [packed, text]] as const) {
    const got = decodeFrame(f)
    assert.ok(got, 'the frame decodes')
    assert.equal(Buffer.from((recordOps(got!.records[0])[0] as [number, number, Uint8Array])[2]), Buffer.from(bytes))
  }
})

test('the writer ships frames raw by default and lz4-compressed with compressFrames; both read back', async () => {
  const text = (page: number) => Buffer.from(`pgbench_accounts ${page} filler `.repeat(200).slice(0, 4000))
  const flags: Record<string, number[]> = {}
  for (const compressFrames of [undefined, true]) {
    const dir = makeTempDir('frames')
    const vol = await openVolume(smallOptions(dir, compressFrames ? { compressFrames } : {}))
    try {
      // Compressible redo, well over the compression threshold in each frame.
      await vol.write(Array.from({ length: 4 }, (_, i) => ({ pageId: 1 + i, ops: [{ op: 'write' as const, offset: 0, bytes: text(i) }] })))
      for (let i = 0; i < 4; i++) assert.equal(Buffer.from(await vol.readPage(1 + i)).subarray(0, 4000), text(i), `page ${1 + i} reads back`)
      const log = fs.readFileSync(logFiles(dir, 0)[0])
      flags[String(compressFrames ?? false)] = listFrames(log).filter(f => log.readUInt32LE(f.off + 12) > COMPRESS_THRESHOLD_BYTES).map(f => log.readUInt16LE(f.off + 4) & FRAME_FLAG_LZ4)
    } finally {
      await vol.close()
      rmTempDir(dir)
    }
  }
  assert.ok(flags.false.length > 0 && flags.false.every(f => f === 0), `default: every large frame raw (${flags.false})`)
  assert.ok(flags.true.length > 0 && flags.true.every(f => f === FRAME_FLAG_LZ4), `compressFrames: every large frame compressed (${flags.true})`)
  await rejectsWith(() => openVolume(smallOptions(makeTempDir('frames-bad'), { compressFrames: 1 as never })), 'HEXAD_BAD_INPUT', /compressFrames must be true or false/, 'a non-boolean compressFrames')
})

test.run()
