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
import path from 'node:path'
import { realDisk, type CorruptionReport, type Disk } from './disk.js'
import { checkFrame, checkFrameHeader, crc32cOf, decodeFramePayload, FRAME_FLAG_DEAD, FRAME_HEADER_BYTES, FRAME_MAGIC, R_LSN, R_PAGE, type FramePayload, type RecordTuple } from './format.js'

/**
 * Where one frame lies in its file, and which records it holds (filled once
 * the frame is decoded): what the scrubber checks and, when the frame fails,
 * asks a peer for again.
 */
export interface FrameExtent {
  off: number
  len: number
  /** the records' LSNs and page ids, as flat pairs (lsn, pageId, lsn, pageId, ...): one object per frame for as long as its file lives (see {@link frameRecs}) */
  recs: Float64Array | null
  /** the frame was found damaged and its records written again elsewhere; its header now says so */
  dead: boolean
}

export interface LogFileInfo {
  seq: number
  /** highest LSN per PG of the records in this file */
  maxLsnByPg: Map<number, number>
  bytes: number
  frames: FrameExtent[]
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
  readonly #disk: Disk
  readonly #onCorrupt: (r: CorruptionReport) => void

  constructor(dir: string, fileBytes: number, disk: Disk = realDisk, onCorrupt: (r: CorruptionReport) => void = () => {}) {
    this.dir = dir
    this.fileBytes = fileBytes
    this.#disk = disk
    this.#onCorrupt = onCorrupt
    disk.mkdirp(dir)
  }

  /**
   * Reads every file in order and hands each intact frame to `onFrame`.
   * Leaves the log open for appending after the last intact frame.
   */
  open(onFrame: (p: FramePayload, file: LogFileInfo) => void): ScanResult {
    const result: ScanResult = { frames: 0, corruptFrames: 0, corruptBytes: 0, tornTailBytes: 0 }
    const disk = this.#disk
    const names = disk.readdir(this.dir).filter(n => n.endsWith('.hxl')).sort()
    for (let i = 0; i < names.length; i++) {
      const seq = Number.parseInt(names[i], 10)
      const file: LogFileInfo = { seq, maxLsnByPg: new Map(), bytes: 0, frames: [] }
      this.files.push(file)
      const log = readLogFile(disk, path.join(this.dir, names[i]))
      let buf = log.buf
      const isLast = i === names.length - 1
      let off = 0
      let end = 0
      while (off + FRAME_HEADER_BYTES <= log.size) {
        if (off >= log.nonZeroEnd) break // zeros from here on: the end of the data
        // Only the file's non-zero prefix was read; a frame whose last bytes are zeros reaches past it.
        if (off + FRAME_HEADER_BYTES > buf.length) buf = log.grow(off + FRAME_HEADER_BYTES)
        const h = checkFrameHeader(buf, off)
        if (h.ok && off + FRAME_HEADER_BYTES + h.storedLen > buf.length) buf = log.grow(off + FRAME_HEADER_BYTES + h.storedLen)
        if (h.ok && (h.flags & FRAME_FLAG_DEAD) && off + FRAME_HEADER_BYTES + h.storedLen <= buf.length) {
          // A frame the scrubber replaced: its records live in a later frame.
          file.frames.push({ off, len: FRAME_HEADER_BYTES + h.storedLen, recs: NO_RECS, dead: true })
          off += FRAME_HEADER_BYTES + h.storedLen
          end = off
          continue
        }
        let payload: FramePayload | null = null
        if (h.ok && off + FRAME_HEADER_BYTES + h.storedLen <= buf.length) {
          payload = decodeFramePayload(buf, h.storedLen, h.flags, h.payloadCrc, off)
        }
        if (payload && h.ok) {
          file.frames.push({ off, len: FRAME_HEADER_BYTES + h.storedLen, recs: frameRecs(payload.records), dead: false })
          onFrame(payload, file)
          result.frames++
          off += FRAME_HEADER_BYTES + h.storedLen
          end = off
          continue
        }
        if (!h.ok && h.reason === 'zero') break
        // A damaged frame: look for the next intact one (anywhere in the file).
        buf = log.grow(log.size)
        const next = findNextFrame(buf, off + 1)
        if (next < 0) break // nothing valid after it: a torn tail (or garbage at the end)
        result.corruptFrames++
        result.corruptBytes += next - off
        this.#onCorrupt({ path: path.join(this.dir, names[i]), off, len: next - off, kind: 'frame' })
        off = next
      }
      file.bytes = end
      const garbage = Math.max(end, log.nonZeroEnd)
      if (isLast) {
        if (garbage > end) {
          result.tornTailBytes += garbage - end
          this.#onCorrupt({ path: path.join(this.dir, names[i]), off: end, len: garbage - end, kind: 'torn-tail' })
          const fd = disk.open(path.join(this.dir, names[i]), 'r+')
          zeroRange(disk, fd, end, garbage - end)
          disk.fdatasync(fd)
          disk.close(fd)
        }
      } else if (garbage > end) {
        result.corruptFrames++
        result.corruptBytes += garbage - end
        this.#onCorrupt({ path: path.join(this.dir, names[i]), off: end, len: garbage - end, kind: 'frame' })
      }
    }
    if (this.files.length === 0) {
      this.#roll(1)
    } else {
      const last = this.files[this.files.length - 1]
      const p = this.#path(last.seq)
      this.#fd = disk.open(p, 'r+')
      this.#size = disk.size(this.#fd)
      if (this.#size < this.fileBytes) { zeroRange(disk, this.#fd, this.#size, this.fileBytes - this.#size); this.#size = this.fileBytes; disk.fdatasync(this.#fd) }
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

  /**
   * Appends one frame; returns the file it landed in and its extent (whose
   * `recs` the caller fills once it has decoded the frame). Not durable
   * until sync().
   */
  append(frame: Uint8Array): { file: LogFileInfo; ext: FrameExtent } {
    if (this.#pos + frame.length > this.#size) this.#roll(this.current.seq + 1, frame.length)
    const ext: FrameExtent = { off: this.#pos, len: frame.length, recs: null, dead: false }
    this.#disk.write(this.#fd, frame, 0, frame.length, this.#pos)
    this.#pos += frame.length
    this.#dirtyFds.add(this.#fd)
    const file = this.current
    file.bytes = this.#pos
    file.frames.push(ext)
    this.bytesWritten += frame.length
    return { file, ext }
  }

  /** Where a frame lies on disk (the simulator flips bits there). */
  locate(file: LogFileInfo, ext: FrameExtent): { path: string; off: number; len: number } {
    return { path: this.#path(file.seq), off: ext.off, len: ext.len }
  }

  /**
   * The scrubber's check: reads `exts`, frames of `file` in file order, back
   * with one open and one read of the span they cover (an open, a read and a
   * close per frame cost three syscalls a frame at ~57 frames a tick), and
   * checks both checksums of each. Returns the frames that failed; each is
   * reported to the corruption listener.
   */
  verify(file: LogFileInfo, exts: FrameExtent[]): FrameExtent[] {
    if (exts.length === 0) return []
    const from = exts[0].off
    const to = exts[exts.length - 1].off + exts[exts.length - 1].len
    const buf = Buffer.allocUnsafe(to - from)
    const fd = this.#disk.open(this.#path(file.seq), 'r')
    let got: number
    try {
      got = this.#disk.read(fd, buf, 0, buf.length, from)
    } finally {
      this.#disk.close(fd)
    }
    const failed: FrameExtent[] = []
    for (const ext of exts) {
      const at = ext.off - from
      let ok = at + ext.len <= got
      if (ok) {
        const frame = buf.subarray(at, at + ext.len)
        if (ext.dead) {
          const h = checkFrameHeader(frame, 0)
          ok = h.ok && (h.flags & FRAME_FLAG_DEAD) !== 0 && FRAME_HEADER_BYTES + h.storedLen === ext.len
        } else {
          ok = checkFrame(frame) !== null
        }
      }
      if (!ok) {
        failed.push(ext)
        this.#onCorrupt({ path: this.#path(file.seq), off: ext.off, len: ext.len, kind: 'frame' })
      }
    }
    return failed
  }

  /**
   * Marks a damaged frame dead once its records are durable in another
   * frame: its header is rewritten (flag DEAD, its own extent, a fresh
   * header checksum) so that a later open skips it cleanly instead of
   * counting it as corruption again. Synced before it returns.
   */
  markDead(file: LogFileInfo, ext: FrameExtent): void {
    const h = Buffer.alloc(FRAME_HEADER_BYTES)
    writeDeadHeader(h, ext.len - FRAME_HEADER_BYTES)
    const fd = this.#disk.open(this.#path(file.seq), 'r+')
    try {
      this.#disk.write(fd, h, 0, h.length, ext.off)
      this.#disk.fdatasync(fd)
    } finally {
      this.#disk.close(fd)
    }
    ext.dead = true
    ext.recs = NO_RECS
  }

  /** One fdatasync for everything appended since the last call (group commit). */
  sync(): void {
    for (const fd of this.#dirtyFds) { this.#disk.fdatasync(fd); this.fsyncs++ }
    this.#dirtyFds.clear()
    for (const fd of this.#retiredFds) this.#disk.close(fd)
    this.#retiredFds = []
  }

  /** Deletes the given (non-current) files. */
  remove(seqs: number[]): void {
    for (const seq of seqs) {
      const i = this.files.findIndex(f => f.seq === seq)
      if (i < 0 || i === this.files.length - 1) continue
      this.files.splice(i, 1)
      this.#disk.rm(this.#path(seq))
    }
  }

  close(): void {
    this.sync()
    if (this.#fd >= 0) this.#disk.close(this.#fd)
    this.#fd = -1
  }

  #path(seq: number): string {
    return path.join(this.dir, String(seq).padStart(8, '0') + '.hxl')
  }

  #roll(seq: number, need = 0): void {
    // The new file is made (preallocated, synced) before the current one is let go, so
    // that a full disk leaves the log as it was: the append fails, nothing else does.
    const size = Math.max(this.fileBytes, need)
    const disk = this.#disk
    const fd = disk.open(this.#path(seq), 'w+')
    try {
      zeroRange(disk, fd, 0, size)
      disk.fdatasync(fd)
    } catch (err) {
      disk.close(fd)
      disk.rm(this.#path(seq))
      throw err
    }
    if (this.#fd >= 0) {
      if (this.#dirtyFds.has(this.#fd)) this.#retiredFds.push(this.#fd)
      else disk.close(this.#fd)
    }
    this.#fd = fd
    this.#size = size
    this.#pos = 0
    this.files.push({ seq, maxLsnByPg: new Map(), bytes: 0, frames: [] })
    disk.fsyncDir(this.dir)
  }
}

/** A dead frame's header: magic, FRAME_FLAG_DEAD, its payload length, no payload checksum, a header checksum. */
function writeDeadHeader(h: Buffer, storedLen: number): void {
  h.writeUInt32LE(FRAME_MAGIC, 0)
  h.writeUInt16LE(FRAME_FLAG_DEAD, 4)
  h.writeUInt16LE(0, 6)
  h.writeUInt32LE(storedLen, 8)
  h.writeUInt32LE(0, 12)
  h.writeDoubleLE(0, 16)
  h.writeUInt32LE(0, 24)
  h.writeUInt32LE(crc32cOf(h.subarray(0, 28)), 28)
}

const NO_RECS = new Float64Array(0)

/** The (lsn, pageId) pairs of a frame's records, flat (see {@link FrameExtent}). */
export function frameRecs(records: RecordTuple[]): Float64Array {
  const out = new Float64Array(records.length * 2)
  for (let i = 0; i < records.length; i++) { out[2 * i] = records[i][R_LSN]; out[2 * i + 1] = records[i][R_PAGE] }
  return out
}

/** The pairs of {@link frameRecs} as [lsn, pageId] tuples. */
export function recPairs(recs: Float64Array | null): Array<[number, number]> {
  const out: Array<[number, number]> = []
  if (recs) for (let i = 0; i + 1 < recs.length; i += 2) out.push([recs[i], recs[i + 1]])
  return out
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

/**
 * A log file as open() reads it: only up to its last non-zero byte, found by
 * reading the zero tail backwards through one reused chunk. A log file is
 * preallocated (16 MiB by default) and mostly zeros; reading all of it gave
 * each segment a fresh 16 MiB buffer a file at every open, and the records
 * read at open keep their ops as views of this buffer for as long as they
 * live (a small cluster's RSS after open: 246 MiB, against 134 read this way).
 */
interface LogFileRead {
  /** the file's bytes from 0, at least up to `nonZeroEnd` */
  buf: Buffer
  size: number
  /** one past the last non-zero byte (0: all zeros) */
  nonZeroEnd: number
  /** a buffer holding at least the first `n` bytes (capped at the size); earlier views stay valid */
  grow(n: number): Buffer
}

/** read through when looking for the last non-zero byte; one per thread, kept (a fresh 1 MiB buffer per 16 MiB file cost its page faults: 7-12 ms against 1.2-2.2 reused) */
let tailChunk: Buffer | null = null
const TAIL_CHUNK_BYTES = 256 << 10

function readLogFile(disk: Disk, p: string): LogFileRead {
  const fd = disk.open(p, 'r')
  try {
    const size = disk.size(fd)
    const chunk = (tailChunk ??= Buffer.allocUnsafeSlow(TAIL_CHUNK_BYTES))
    let nonZeroEnd = 0
    for (let hi = size; hi > 0 && nonZeroEnd === 0;) {
      const lo = Math.max(0, hi - chunk.length)
      const got = readFully(disk, fd, chunk, hi - lo, lo)
      if (!chunk.subarray(0, got).equals(ZERO_CHUNK.subarray(0, got))) {
        for (let i = got - 1; i >= 0; i--) if (chunk[i] !== 0) { nonZeroEnd = lo + i + 1; break }
      }
      hi = lo
    }
    const first = Buffer.allocUnsafe(nonZeroEnd)
    const log: LogFileRead = {
      buf: first.subarray(0, readFully(disk, fd, first, nonZeroEnd, 0)),
      size,
      nonZeroEnd,
      grow(n: number): Buffer {
        if (n <= log.buf.length) return log.buf
        const want = Math.min(size, Math.max(n, log.buf.length + (64 << 10)))
        const next = Buffer.allocUnsafe(want)
        log.buf.copy(next)
        const rfd = disk.open(p, 'r')
        try {
          log.buf = next.subarray(0, log.buf.length + readFully(disk, rfd, next.subarray(log.buf.length), want - log.buf.length, log.buf.length))
        } finally { disk.close(rfd) }
        return log.buf
      },
    }
    return log
  } finally {
    disk.close(fd)
  }
}

/** Reads up to `len` bytes at `pos` into the start of `buf`; returns how many there were (less only at the end of the file). */
function readFully(disk: Disk, fd: number, buf: Uint8Array, len: number, pos: number): number {
  let got = 0
  while (got < len) {
    const n = disk.read(fd, buf.subarray(got), 0, len - got, pos + got)
    if (n <= 0) break
    got += n
  }
  return got
}

function zeroRange(disk: Disk, fd: number, start: number, len: number): void {
  let off = start
  const end = start + len
  while (off < end) {
    const n = Math.min(ZERO_CHUNK.length, end - off)
    disk.write(fd, ZERO_CHUNK, 0, n, off)
    off += n
  }
}

export function fsyncDir(dir: string): void {
  realDisk.fsyncDir(dir)
}

