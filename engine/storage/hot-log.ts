/**
 * The hot log: a segment worker's append-only, preallocated redo log.
 *
 * Model: a directory of numbered files `NNNNNNNN.hxl`, each preallocated with
 * zeros to `fileBytes` so an append overwrites allocated blocks and
 * fdatasync has no size change to record (ECOSYSTEM.md: 1.5-1.9x faster).
 * Frames (format.ts) are appended back to back; the first all-zero header
 * marks the end of a file's data.
 *
 * Invariants:
 * - `append` only buffers into the page cache; nothing is durable until
 *   `sync()` returns. Callers ack only after `sync()` (group commit: many
 *   appends, one fdatasync).
 * - On open, a torn tail (a frame that fails its checks with nothing valid
 *   after it, in the last file) is cut and zeroed; a damaged frame with valid
 *   frames after it is skipped and counted as corruption: its records are
 *   missing here and come back by gap fill from peers.
 * - A file is deleted only when the caller says every record in it is
 *   covered elsewhere (page versions on this segment and every peer's SCL).
 */
import fs from 'node:fs'
import path from 'node:path'
import { checkFrameHeader, decodeFramePayload, FRAME_HEADER_BYTES, type FramePayload } from './format.js'

export interface LogFileInfo {
  seq: number
  /** highest LSN per PG of the records in this file */
  maxLsnByPg: Map<number, number>
  bytes: number
}

export interface ScanResult {
  frames: number
  corruptFrames: number
  corruptBytes: number
  tornTailBytes: number
}

const ZERO_CHUNK = Buffer.alloc(1 << 20)

export class HotLog {
  readonly dir: string
  readonly fileBytes: number
  readonly files: LogFileInfo[] = []
  #fd = -1
  #pos = 0
  #size = 0
  #dirtyFds = new Set<number>()
  #retiredFds: number[] = []
  bytesWritten = 0
  fsyncs = 0

  constructor(dir: string, fileBytes: number) {
    this.dir = dir
    this.fileBytes = fileBytes
    fs.mkdirSync(dir, { recursive: true })
  }

  /**
   * Reads every file in order and hands each intact frame to `onFrame`.
   * Leaves the log open for appending after the last intact frame.
   */
  open(onFrame: (p: FramePayload, file: LogFileInfo) => void): ScanResult {
    const result: ScanResult = { frames: 0, corruptFrames: 0, corruptBytes: 0, tornTailBytes: 0 }
    const names = fs.readdirSync(this.dir).filter(n => n.endsWith('.hxl')).sort()
    for (let i = 0; i < names.length; i++) {
      const seq = Number.parseInt(names[i], 10)
      const file: LogFileInfo = { seq, maxLsnByPg: new Map(), bytes: 0 }
      this.files.push(file)
      const buf = fs.readFileSync(path.join(this.dir, names[i]))
      const isLast = i === names.length - 1
      let off = 0
      let end = 0
      while (off + FRAME_HEADER_BYTES <= buf.length) {
        const h = checkFrameHeader(buf, off)
        let payload: FramePayload | null = null
        if (h.ok && off + FRAME_HEADER_BYTES + h.storedLen <= buf.length) {
          payload = decodeFramePayload(buf, h.storedLen, h.flags, h.payloadCrc, off)
        }
        if (payload && h.ok) {
          onFrame(payload, file)
          result.frames++
          off += FRAME_HEADER_BYTES + h.storedLen
          end = off
          continue
        }
        if (!h.ok && h.reason === 'zero') break
        // A damaged frame: look for the next intact one.
        const next = findNextFrame(buf, off + 1)
        if (next < 0) break // nothing valid after it: a torn tail (or garbage at the end)
        result.corruptFrames++
        result.corruptBytes += next - off
        off = next
      }
      file.bytes = end
      const garbage = nonZeroExtent(buf, end)
      if (isLast) {
        if (garbage > end) {
          result.tornTailBytes += garbage - end
          const fd = fs.openSync(path.join(this.dir, names[i]), 'r+')
          zeroRange(fd, end, garbage - end)
          fs.fdatasyncSync(fd)
          fs.closeSync(fd)
        }
      } else if (garbage > end) {
        result.corruptFrames++
        result.corruptBytes += garbage - end
      }
    }
    if (this.files.length === 0) {
      this.#roll(1)
    } else {
      const last = this.files[this.files.length - 1]
      const p = this.#path(last.seq)
      this.#fd = fs.openSync(p, 'r+')
      this.#size = fs.fstatSync(this.#fd).size
      if (this.#size < this.fileBytes) { zeroRange(this.#fd, this.#size, this.fileBytes - this.#size); this.#size = this.fileBytes; fs.fdatasyncSync(this.#fd) }
      this.#pos = last.bytes
    }
    return result
  }

  get current(): LogFileInfo { return this.files[this.files.length - 1] }

  get liveBytes(): number {
    let n = 0
    for (const f of this.files) n += f.bytes
    return n
  }

  /** Appends one frame; returns the file it landed in. Not durable until sync(). */
  append(frame: Uint8Array, records: ArrayLike<{ pg: number; lsn: number }> | null): LogFileInfo {
    if (this.#pos + frame.length > this.#size) this.#roll(this.current.seq + 1, frame.length)
    fs.writeSync(this.#fd, frame, 0, frame.length, this.#pos)
    this.#pos += frame.length
    this.#dirtyFds.add(this.#fd)
    const file = this.current
    file.bytes = this.#pos
    this.bytesWritten += frame.length
    if (records) for (let i = 0; i < records.length; i++) noteRecord(file, records[i].pg, records[i].lsn)
    return file
  }

  /** One fdatasync for everything appended since the last call (group commit). */
  sync(): void {
    for (const fd of this.#dirtyFds) { fs.fdatasyncSync(fd); this.fsyncs++ }
    this.#dirtyFds.clear()
    for (const fd of this.#retiredFds) fs.closeSync(fd)
    this.#retiredFds = []
  }

  /** Deletes the given (non-current) files. */
  remove(seqs: number[]): void {
    for (const seq of seqs) {
      const i = this.files.findIndex(f => f.seq === seq)
      if (i < 0 || i === this.files.length - 1) continue
      this.files.splice(i, 1)
      fs.rmSync(this.#path(seq), { force: true })
    }
  }

  close(): void {
    this.sync()
    if (this.#fd >= 0) fs.closeSync(this.#fd)
    this.#fd = -1
  }

  #path(seq: number): string {
    return path.join(this.dir, String(seq).padStart(8, '0') + '.hxl')
  }

  #roll(seq: number, need = 0): void {
    if (this.#fd >= 0) {
      if (this.#dirtyFds.has(this.#fd)) this.#retiredFds.push(this.#fd)
      else fs.closeSync(this.#fd)
    }
    const size = Math.max(this.fileBytes, need)
    const fd = fs.openSync(this.#path(seq), 'w+')
    zeroRange(fd, 0, size)
    fs.fdatasyncSync(fd)
    this.#fd = fd
    this.#size = size
    this.#pos = 0
    this.files.push({ seq, maxLsnByPg: new Map(), bytes: 0 })
    fsyncDir(this.dir)
  }
}

export function noteRecord(file: LogFileInfo, pg: number, lsn: number): void {
  const m = file.maxLsnByPg.get(pg)
  if (m === undefined || lsn > m) file.maxLsnByPg.set(pg, lsn)
}

function findNextFrame(buf: Buffer, from: number): number {
  for (let off = buf.indexOf(0x46, from); off >= 0 && off + FRAME_HEADER_BYTES <= buf.length; off = buf.indexOf(0x46, off + 1)) {
    const h = checkFrameHeader(buf, off)
    if (h.ok && off + FRAME_HEADER_BYTES + h.storedLen <= buf.length &&
        decodeFramePayload(buf, h.storedLen, h.flags, h.payloadCrc, off)) return off
  }
  return -1
}

/** End of the last non-zero byte at or after `from` (or `from` if all zeros). Compares 64 KiB blocks natively. */
function nonZeroExtent(buf: Buffer, from: number): number {
  const block = ZERO_CHUNK.subarray(0, 64 * 1024)
  let hi = buf.length
  while (hi > from) {
    const lo = Math.max(from, hi - block.length)
    if (!buf.subarray(lo, hi).equals(block.subarray(0, hi - lo))) {
      for (let i = hi - 1; i >= lo; i--) if (buf[i] !== 0) return i + 1
    }
    hi = lo
  }
  return from
}

function zeroRange(fd: number, start: number, len: number): void {
  let off = start
  const end = start + len
  while (off < end) {
    const n = Math.min(ZERO_CHUNK.length, end - off)
    fs.writeSync(fd, ZERO_CHUNK, 0, n, off)
    off += n
  }
}

export function fsyncDir(dir: string): void {
  const fd = fs.openSync(dir, 'r')
  try { fs.fsyncSync(fd) } finally { fs.closeSync(fd) }
}

