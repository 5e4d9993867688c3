/**
 * The hot log at open. A log file is preallocated with zeros, so open()
 * reads only up to the file's last non-zero byte (found by reading the zero
 * tail backwards through one reused chunk) and reads on when a frame turns
 * out to end in zeros past that point. These tests pin what open() must
 * still find: every frame, frames whose last bytes are zeros (a raw frame
 * whose last record's ops end in zeros), garbage after the last frame (a
 * torn tail, cut and zeroed), and a damaged frame with intact ones after it.
 */
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { HotLog } from '../engine/storage/hot-log.js'
import { encodeFrame, FRAME_HEADER_BYTES, type FramePayload, type RecordTuple } from '../engine/storage/format.js'
import type { CorruptionReport } from '../engine/storage/disk.js'

const FILE_BYTES = 4 << 20

function withDir(fn: (dir: string) => void): void {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hexad-hotlog-'))
  try { fn(dir) } finally { fs.rmSync(dir, { recursive: true, force: true }) }
}

/** A raw frame of one record at `lsn` whose ops are `ops` (the last bytes of the frame are the last bytes of `ops`). */
function frame(lsn: number, ops: Uint8Array): Buffer {
  const rec: RecordTuple = [lsn, 1, lsn - 1, -1, 1, ops]
  return encodeFrame({ epoch: 1, vdl: lsn - 1, records: [rec] }, undefined, false)
}

function noisy(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n)
  for (let i = 0; i < n; i++) b[i] = ((seed * 131 + i * 17) % 251) + 1
  return b
}

/** A zero-tailed ops value: noise, then `zeros` zero bytes. */
function zeroTailed(n: number, zeros: number, seed: number): Uint8Array {
  const b = new Uint8Array(n + zeros)
  b.set(noisy(n, seed))
  return b
}

interface Opened { log: HotLog; lsns: number[]; ops: Uint8Array[]; scan: ReturnType<HotLog['open']>; reports: CorruptionReport[] }

function open(dir: string): Opened {
  const reports: CorruptionReport[] = []
  const log = new HotLog(dir, FILE_BYTES, undefined, r => reports.push(r))
  const lsns: number[] = []
  const ops: Uint8Array[] = []
  const scan = log.open((p: FramePayload) => {
    for (const r of p.records) { lsns.push(r[0]); ops.push(Uint8Array.from(r[5] as Uint8Array)) }
  })
  return { log, lsns, ops, scan, reports }
}

function write(dir: string, frames: Buffer[]): number[] {
  const { log } = open(dir)
  const offs = frames.map(f => log.append(f).ext.off)
  log.sync()
  log.close()
  return offs
}

const logFile = (dir: string) => path.join(dir, '00000001.hxl')

test('frames whose last bytes are zeros (past the last non-zero byte of the file) are read whole, and appends go after them', () => withDir(dir => {
  // 300 KiB of zeros ends the last frame: more than the 64 KiB open() reads on by at a time.
  const ops = [noisy(1000, 1), zeroTailed(500, 1000, 2), zeroTailed(100, 300 << 10, 3)]
  const frames = ops.map((o, i) => frame(10 + i, o))
  write(dir, frames)
  const a = open(dir)
  assert.equal(a.lsns, [10, 11, 12])
  for (let i = 0; i < ops.length; i++) assert.ok(Buffer.from(a.ops[i]).equals(Buffer.from(ops[i])), `frame ${i}'s ops read back whole`)
  assert.equal(a.scan, { frames: 3, corruptFrames: 0, corruptBytes: 0, tornTailBytes: 0 })
  assert.equal(a.reports, [])
  const end = frames.reduce((n, f) => n + f.length, 0)
  assert.is(a.log.current.bytes, end, 'the data ends after the zero-tailed frame')
  // The next append lands after it, and everything reads back on the next open.
  const next = frame(13, noisy(200, 4))
  assert.is(a.log.append(next).ext.off, end)
  a.log.sync()
  a.log.close()
  const b = open(dir)
  assert.equal(b.lsns, [10, 11, 12, 13])
  assert.is(b.scan.tornTailBytes, 0)
  b.log.close()
}))

test('garbage after the last frame is a torn tail: counted, reported, zeroed; the next open is clean', () => withDir(dir => {
  const frames = [frame(10, noisy(800, 1)), frame(11, zeroTailed(50, 2000, 2))]
  write(dir, frames)
  const end = frames[0].length + frames[1].length
  const fd = fs.openSync(logFile(dir), 'r+')
  fs.writeSync(fd, Buffer.from(noisy(300, 9)), 0, 300, end + 100) // a partial write, 100 bytes after the end
  fs.closeSync(fd)
  const a = open(dir)
  assert.equal(a.lsns, [10, 11])
  assert.is(a.scan.tornTailBytes, 400)
  assert.equal(a.reports.map(r => [r.kind, r.off, r.len]), [['torn-tail', end, 400]])
  assert.is(a.log.current.bytes, end)
  a.log.close()
  const tail = fs.readFileSync(logFile(dir)).subarray(end)
  assert.ok(tail.every(x => x === 0), 'the torn tail was zeroed on disk')
  const b = open(dir)
  assert.equal(b.lsns, [10, 11])
  assert.equal(b.scan, { frames: 2, corruptFrames: 0, corruptBytes: 0, tornTailBytes: 0 })
  b.log.close()
}))

test('a damaged frame with intact frames after it is skipped and reported; the frames after it, zero-tailed too, are read', () => withDir(dir => {
  const frames = [frame(10, noisy(700, 1)), frame(11, noisy(900, 2)), frame(12, noisy(600, 3)), frame(13, zeroTailed(40, 200 << 10, 4))]
  const offs = write(dir, frames)
  const fd = fs.openSync(logFile(dir), 'r+')
  fs.writeSync(fd, Buffer.from([0xde, 0xad]), 0, 2, offs[1] + FRAME_HEADER_BYTES + 50) // a flipped payload byte in frame 11
  fs.closeSync(fd)
  const a = open(dir)
  assert.equal(a.lsns, [10, 12, 13])
  assert.is(a.scan.corruptFrames, 1)
  assert.is(a.scan.corruptBytes, frames[1].length)
  assert.is(a.scan.tornTailBytes, 0)
  assert.equal(a.reports.map(r => [r.kind, r.off, r.len]), [['frame', offs[1], frames[1].length]])
  assert.is(a.log.current.bytes, offs[3] + frames[3].length)
  a.log.close()
}))

test('an all-zero file holds no frames; an empty directory starts its first file', () => withDir(dir => {
  const a = open(dir)
  assert.equal(a.scan, { frames: 0, corruptFrames: 0, corruptBytes: 0, tornTailBytes: 0 })
  assert.is(fs.statSync(logFile(dir)).size, FILE_BYTES)
  a.log.close()
  const b = open(dir)
  assert.equal(b.lsns, [])
  assert.equal(b.scan, { frames: 0, corruptFrames: 0, corruptBytes: 0, tornTailBytes: 0 })
  assert.is(b.log.current.bytes, 0)
  b.log.close()
}))

test.run()
