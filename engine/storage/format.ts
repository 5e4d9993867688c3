/**
 * On-disk and on-wire formats of the storage tier, and every constant they
 * use. FORMAT.md beside this file is the same thing as a grammar; keep the
 * two in step.
 *
 * A frame is the unit the writer ships and the unit a segment appends to its
 * hot log: the bytes that arrive are the bytes that are written, checked by
 * crc32c on both sides. A page version is one materialized page image.
 */
import { crc32c, lz4Compress, lz4Uncompress, pack, unpack, unpackViews } from '../../native-bindings/index.js'
import type { EncodedOp } from '../common/page-ops.js'

export const FRAME_MAGIC = 0x484c5846 // 'HXLF'
export const FRAME_HEADER_BYTES = 32
export const FRAME_FLAG_LZ4 = 1
/** The frame failed a scrub and its records were written again in a later frame: skip it (its payload is not checked). */
export const FRAME_FLAG_DEAD = 2
/** Frames whose payload is larger than this are lz4-compressed (if that pays: see COMPRESS_KEEP_RATIO). */
export const COMPRESS_THRESHOLD_BYTES = 2048
/**
 * A frame stays compressed only if lz4 saves at least 1/8 of it: every one
 * of the six segments pays a decompression (and lz4-napi's fresh output
 * buffer) for it. The kv bench's random keys and values save ~8%; storing
 * those frames raw made 64-client single puts and 100-row commits
 * 1.07-1.09x faster (A/B against 1a63478). Redo of rows like TPC-B's load
 * (lz4 to 0.48 of the size) stays compressed.
 */
export const COMPRESS_KEEP_RATIO = 7 / 8
/** A frame larger than this is malformed (the writer never builds one). */
export const FRAME_PAYLOAD_BYTES_MAX = 64 * 1024 * 1024

export const VERSION_MAGIC = 0x48505856 // 'HXPV'
export const VERSION_HEADER_BYTES = 40
export const VERSION_FLAG_LZ4 = 1
/** The version failed its checksum and was replaced by an intact one from a peer: skipped at open. */
export const VERSION_FLAG_DEAD = 2

export const META_MAGIC = 0x484d4554 // 'HMET'

/** flags bit 0 of a record: the record is a consistency point (the last record of its MTR). */
export const RECORD_FLAG_CPL = 1

/**
 * A redo record in its compact form:
 * [lsn, pageId, prevLsn, pagePrevLsn, flags, ops].
 * prevLsn links to the previous record of the same protection group (0 for
 * the first); pagePrevLsn to the previous record of the same page as the
 * writer knew it (-1 when it did not know, e.g. the first write after
 * recovery).
 *
 * `ops` is the record's ops packed as one MessagePack value (a `bin`): a
 * segment decodes a frame into one small tuple and one view per record and
 * unpacks the ops only when it builds a page (see {@link recordOps}), which
 * made decoding and holding a 107-record frame 2.4x cheaper and its heap a
 * third. Frames written before that carry the ops array itself. A segment
 * holds records in slots, not tuples (record-store.ts).
 */
export type RecordTuple = [number, number, number, number, number, Uint8Array | EncodedOp[]]

/** The ops of a record, unpacked (see {@link RecordTuple}). */
export function recordOps(r: RecordTuple): EncodedOp[] {
  const o = r[R_OPS]
  if (Array.isArray(o)) return o
  let ops: unknown
  try { ops = unpack(o) } catch { ops = null }
  if (!Array.isArray(ops)) throw new Error(`record ${r[R_LSN]} (page ${r[R_PAGE]}): its ops do not decode`)
  return ops as EncodedOp[]
}

/** the parsed ops of one record, 6 numbers each: kind, a, b, c, bin start, bin end (-1: none) */
let scratch = new Float64Array(6 * 16)
/** applyPackedOps's read position, and the end of the last bin it read */
let pos = 0
let binEnd = -1

/** An unsigned integer at `pos` (fixint, uint8/16/32), or -1. */
function packedUint(bytes: Uint8Array, end: number): number {
  if (pos >= end) return -1
  const x = bytes[pos++]
  if (x < 0x80) return x
  if (x === 0xcc && pos + 1 <= end) return bytes[pos++]
  if (x === 0xcd && pos + 2 <= end) { pos += 2; return (bytes[pos - 2] << 8) | bytes[pos - 1] }
  if (x === 0xce && pos + 4 <= end) { pos += 4; return bytes[pos - 4] * 0x1000000 + ((bytes[pos - 3] << 16) | (bytes[pos - 2] << 8) | bytes[pos - 1]) }
  return -1
}

/** A bin at `pos` (bin8/16/32): where its bytes start (binEnd: where they end), or -1. */
function packedBin(bytes: Uint8Array, end: number): number {
  if (pos >= end) return -1
  const x = bytes[pos++]
  let n = -1
  if (x === 0xc4 && pos + 1 <= end) n = bytes[pos++]
  else if (x === 0xc5 && pos + 2 <= end) { n = (bytes[pos] << 8) | bytes[pos + 1]; pos += 2 }
  else if (x === 0xc6 && pos + 4 <= end) { n = bytes[pos] * 0x1000000 + ((bytes[pos + 1] << 16) | (bytes[pos + 2] << 8) | bytes[pos + 3]); pos += 4 }
  if (n < 0 || pos + n > end) return -1
  const at = pos
  pos += n
  binEnd = pos
  return at
}

/**
 * Applies a record's packed ops (`bytes[start, end)`, as {@link packOps}
 * writes them) to `page` straight from the bytes, as `recordOps` and
 * `applyEncodedOp` would, without unpacking them into arrays and buffers.
 * A segment applies each record at least once, when it coalesces a page or
 * builds one for a read, and unpacking made a tuple, a view, the ops' arrays
 * and a buffer per write each time (in-process TPC-B, three alternating
 * pairs: 2,968 / 3,305 / 3,238 against 2,875 / 3,088 / 3,067 TPS, segment
 * user CPU 5-13% lower). Only the shapes `packOps` writes are read (an array
 * of 2- to 4-element arrays of unsigned integers, nil and bin, as msgpackr
 * encodes them); on anything else it returns false having changed nothing,
 * and the caller unpacks with msgpackr.
 */
export function applyPackedOps(page: Uint8Array, bytes: Uint8Array, start: number, end: number): boolean {
  pos = start
  if (pos >= end) return false
  const h = bytes[pos++]
  let count: number
  if ((h & 0xf0) === 0x90) count = h & 0x0f
  else if (h === 0xdc && pos + 2 <= end) { count = (bytes[pos] << 8) | bytes[pos + 1]; pos += 2 } else return false
  if (scratch.length < count * 6) scratch = new Float64Array(count * 6)
  const ops = scratch
  for (let i = 0; i < count; i++) {
    if (pos >= end) return false
    const oh = bytes[pos++]
    if ((oh & 0xf0) !== 0x90) return false
    const len = oh & 0x0f
    const kind = packedUint(bytes, end)
    const o = i * 6
    ops[o] = kind
    ops[o + 4] = ops[o + 5] = -1
    if (kind === 0 && len === 2) {
      if (pos < end && bytes[pos] === 0xc0) pos++
      else { const at = packedBin(bytes, end); if (at < 0) return false; ops[o + 4] = at; ops[o + 5] = binEnd }
    } else if (kind === 1 && len === 3) {
      const off = packedUint(bytes, end)
      const at = packedBin(bytes, end)
      if (off < 0 || at < 0) return false
      ops[o + 1] = off; ops[o + 4] = at; ops[o + 5] = binEnd
    } else if ((kind === 2 || kind === 3) && len === 4) {
      const a = packedUint(bytes, end), b = packedUint(bytes, end), c = packedUint(bytes, end)
      if (a < 0 || b < 0 || c < 0) return false
      ops[o + 1] = a; ops[o + 2] = b; ops[o + 3] = c
    } else return false
  }
  if (pos !== end) return false
  for (let i = 0; i < count; i++) {
    const o = i * 6
    switch (ops[o]) {
      case 0:
        page.fill(0)
        if (ops[o + 4] >= 0) page.set(bytes.subarray(ops[o + 4], Math.min(ops[o + 5], ops[o + 4] + page.length)), 0)
        break
      case 1: {
        const from = ops[o + 4], to = ops[o + 5], at = ops[o + 1]
        if (to - from <= 64) { if (at + to - from > page.length) throw new RangeError('offset is out of bounds'); for (let j = from; j < to; j++) page[at + j - from] = bytes[j] }
        else page.set(bytes.subarray(from, to), at)
        break
      }
      case 2: page.copyWithin(ops[o + 2], ops[o + 1], ops[o + 1] + ops[o + 3]); break
      case 3: page.fill(ops[o + 3], ops[o + 1], ops[o + 1] + ops[o + 2]); break
    }
  }
  return true
}

/** Packs a record's ops for a frame (see {@link RecordTuple}). */
export function packOps(ops: EncodedOp[]): Buffer {
  return pack(ops)
}

export const R_LSN = 0
export const R_PAGE = 1
export const R_PREV = 2
export const R_PAGE_PREV = 3
export const R_FLAGS = 4
export const R_OPS = 5

/** The decoded payload of a frame. `vdl` is the writer's VDL when it built the frame. */
export interface FramePayload {
  epoch: number
  vdl: number
  records: RecordTuple[]
}

/**
 * Builds a frame: header + msgpack payload, lz4-compressed when `compress`
 * and it pays, in a buffer from `alloc` when given (the writer places frames
 * in shared memory).
 */
export function encodeFrame(payload: FramePayload, alloc?: (bytes: number) => Buffer, compress = true): Buffer {
  const raw = pack([payload.epoch, payload.vdl, payload.records])
  let body: Buffer = raw
  let flags = 0
  if (compress && raw.length > COMPRESS_THRESHOLD_BYTES) {
    const c = lz4Compress(raw)
    if (c.length <= raw.length * COMPRESS_KEEP_RATIO) { body = c; flags |= FRAME_FLAG_LZ4 }
  }
  const frame = alloc ? alloc(FRAME_HEADER_BYTES + body.length) : Buffer.allocUnsafe(FRAME_HEADER_BYTES + body.length)
  frame.writeUInt32LE(FRAME_MAGIC, 0)
  frame.writeUInt16LE(flags, 4)
  frame.writeUInt16LE(0, 6)
  frame.writeUInt32LE(body.length, 8)
  frame.writeUInt32LE(raw.length, 12)
  frame.writeDoubleLE(payload.records.length ? payload.records[0][R_LSN] : 0, 16)
  frame.writeUInt32LE(crc32c(body), 24)
  frame.writeUInt32LE(crc32c(frame.subarray(0, 28)), 28)
  body.copy(frame, FRAME_HEADER_BYTES)
  return frame
}

export type HeaderCheck =
  | { ok: true; storedLen: number; rawLen: number; flags: number; firstLsn: number; payloadCrc: number }
  | { ok: false; reason: 'zero' | 'magic' | 'header-crc' | 'length' }

export const crc32cOf = (b: Uint8Array): number => crc32c(b)

/** Reads and checks a frame header at `off`. A run of zeros is the preallocated end of a log file. */
export function checkFrameHeader(buf: Uint8Array, off: number): HeaderCheck {
  const b = Buffer.from(buf.buffer, buf.byteOffset + off, FRAME_HEADER_BYTES)
  const magic = b.readUInt32LE(0)
  if (magic === 0 && b.readUInt32LE(28) === 0 && b.readUInt32LE(8) === 0) return { ok: false, reason: 'zero' }
  if (magic !== FRAME_MAGIC) return { ok: false, reason: 'magic' }
  if (crc32c(b.subarray(0, 28)) !== b.readUInt32LE(28)) return { ok: false, reason: 'header-crc' }
  const storedLen = b.readUInt32LE(8)
  const rawLen = b.readUInt32LE(12)
  if (storedLen > FRAME_PAYLOAD_BYTES_MAX || rawLen > FRAME_PAYLOAD_BYTES_MAX) return { ok: false, reason: 'length' }
  return { ok: true, storedLen, rawLen, flags: b.readUInt16LE(4), firstLsn: b.readDoubleLE(16), payloadCrc: b.readUInt32LE(24) }
}

/** Checks the payload crc and decodes. Returns null when the payload is damaged. */
export function decodeFramePayload(frame: Uint8Array, storedLen: number, flags: number, payloadCrc: number, off = 0): FramePayload | null {
  const body = frame.subarray(off + FRAME_HEADER_BYTES, off + FRAME_HEADER_BYTES + storedLen)
  if (body.length !== storedLen || crc32c(body) !== payloadCrc) return null
  try {
    const raw = flags & FRAME_FLAG_LZ4 ? lz4Uncompress(body) : body
    const [epoch, vdl, records] = unpackViews<[number, number, RecordTuple[]]>(raw)
    if (!Array.isArray(records)) return null
    return { epoch, vdl, records }
  } catch {
    return null
  }
}

/**
 * Checks a whole frame held alone in `frame` (header and payload checksums)
 * without decoding it: a segment appends and syncs a frame that passed, and
 * decodes it while the disk works (see the worker's flush).
 */
export function checkFrame(frame: Uint8Array): (HeaderCheck & { ok: true }) | null {
  if (frame.length < FRAME_HEADER_BYTES) return null
  const h = checkFrameHeader(frame, 0)
  if (!h.ok || frame.length !== FRAME_HEADER_BYTES + h.storedLen) return null
  if (crc32c(frame.subarray(FRAME_HEADER_BYTES)) !== h.payloadCrc) return null
  return h
}

/** Decodes the payload of a frame that passed {@link checkFrame}; null if it does not decode. */
export function decodeCheckedFrame(frame: Uint8Array, h: HeaderCheck & { ok: true }): FramePayload | null {
  try {
    const body = frame.subarray(FRAME_HEADER_BYTES)
    const raw = h.flags & FRAME_FLAG_LZ4 ? lz4Uncompress(body) : body
    const [epoch, vdl, records] = unpackViews<[number, number, RecordTuple[]]>(raw)
    if (!Array.isArray(records)) return null
    return { epoch, vdl, records }
  } catch {
    return null
  }
}

/** Decodes a whole frame held alone in `frame`; null if any check fails. */
export function decodeFrame(frame: Uint8Array): FramePayload | null {
  if (frame.length < FRAME_HEADER_BYTES) return null
  const h = checkFrameHeader(frame, 0)
  if (!h.ok || frame.length !== FRAME_HEADER_BYTES + h.storedLen) return null
  return decodeFramePayload(frame, h.storedLen, h.flags, h.payloadCrc)
}

let incompressibleRun = 0
let skipped = 0

/** Builds one page-version entry: header + (possibly compressed) image. */
export function encodeVersion(pageId: number, lsn: number, image: Uint8Array): Buffer {
  let body: Uint8Array = image
  let flags = 0
  // Compression is tried on every version while it pays; after a run of
  // versions that did not compress, only every 16th tries (it costs CPU on the
  // segment's hot path for nothing on incompressible data).
  if (incompressibleRun < 8 || ++skipped % 16 === 0) {
    const c = lz4Compress(image)
    if (c.length < image.length * 0.9) { body = c; flags |= VERSION_FLAG_LZ4; incompressibleRun = 0 }
    else incompressibleRun++
  }
  const out = Buffer.allocUnsafe(VERSION_HEADER_BYTES + body.length)
  out.writeUInt32LE(VERSION_MAGIC, 0)
  out.writeUInt16LE(flags, 4)
  out.writeUInt16LE(0, 6)
  out.writeDoubleLE(pageId, 8)
  out.writeDoubleLE(lsn, 16)
  out.writeUInt32LE(body.length, 24)
  out.writeUInt32LE(image.length, 28)
  out.writeUInt32LE(crc32c(body), 32)
  out.writeUInt32LE(crc32c(out.subarray(0, 36)), 36)
  out.set(body, VERSION_HEADER_BYTES)
  return out
}

export type VersionHeader = { pageId: number; lsn: number; storedLen: number; rawLen: number; flags: number; payloadCrc: number }

export function readVersionHeader(buf: Uint8Array, off: number): VersionHeader | 'zero' | null {
  const b = Buffer.from(buf.buffer, buf.byteOffset + off, VERSION_HEADER_BYTES)
  const magic = b.readUInt32LE(0)
  if (magic === 0 && b.readUInt32LE(36) === 0) return 'zero'
  if (magic !== VERSION_MAGIC) return null
  if (crc32c(b.subarray(0, 36)) !== b.readUInt32LE(36)) return null
  return { flags: b.readUInt16LE(4), pageId: b.readDoubleLE(8), lsn: b.readDoubleLE(16), storedLen: b.readUInt32LE(24), rawLen: b.readUInt32LE(28), payloadCrc: b.readUInt32LE(32) }
}

/** The header of a dead version entry of `storedLen` body bytes (its body is left as it is and never read). */
export function encodeDeadVersionHeader(pageId: number, lsn: number, storedLen: number, rawLen: number): Buffer {
  const out = Buffer.alloc(VERSION_HEADER_BYTES)
  out.writeUInt32LE(VERSION_MAGIC, 0)
  out.writeUInt16LE(VERSION_FLAG_DEAD, 4)
  out.writeDoubleLE(pageId, 8)
  out.writeDoubleLE(lsn, 16)
  out.writeUInt32LE(storedLen, 24)
  out.writeUInt32LE(rawLen, 28)
  out.writeUInt32LE(0, 32)
  out.writeUInt32LE(crc32c(out.subarray(0, 36)), 36)
  return out
}

/** Verifies and decodes a version body; null when the checksum fails. */
export function decodeVersionBody(h: VersionHeader, body: Uint8Array): Uint8Array | null {
  if (body.length !== h.storedLen || crc32c(body) !== h.payloadCrc) return null
  try {
    const img = h.flags & VERSION_FLAG_LZ4 ? lz4Uncompress(body) : body
    return img.length === h.rawLen ? new Uint8Array(img) : null
  } catch {
    return null
  }
}

/** Decodes a version body WITHOUT checking its checksum: only for the planted bug `skipReadCrc`. */
export function decodeVersionBodyUnchecked(h: VersionHeader, body: Uint8Array): Uint8Array | null {
  try {
    const img = h.flags & VERSION_FLAG_LZ4 ? lz4Uncompress(body) : body
    return img.length === h.rawLen ? new Uint8Array(img) : null
  } catch {
    return null
  }
}

/** Decodes a frame WITHOUT checking its checksums: only for the planted bug `gapFillUnverified`. */
export function decodeFrameUnchecked(frame: Uint8Array): FramePayload | null {
  if (frame.length < FRAME_HEADER_BYTES) return null
  try {
    const b = Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength)
    const body = b.subarray(FRAME_HEADER_BYTES, FRAME_HEADER_BYTES + b.readUInt32LE(8))
    const raw = b.readUInt16LE(4) & FRAME_FLAG_LZ4 ? lz4Uncompress(body) : body
    const [epoch, vdl, records] = unpackViews<[number, number, RecordTuple[]]>(raw)
    if (!Array.isArray(records)) return null
    return { epoch, vdl, records }
  } catch {
    return null
  }
}

/** Small metadata files: magic, length, crc32c, msgpack body. Written to a temp name, fsynced, renamed. */
export function encodeMeta(value: unknown): Buffer {
  const body = pack(value)
  const out = Buffer.allocUnsafe(12 + body.length)
  out.writeUInt32LE(META_MAGIC, 0)
  out.writeUInt32LE(body.length, 4)
  out.writeUInt32LE(crc32c(body), 8)
  body.copy(out, 12)
  return out
}

export function decodeMeta<T>(buf: Uint8Array): T | null {
  if (buf.length < 12) return null
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength)
  if (b.readUInt32LE(0) !== META_MAGIC) return null
  const len = b.readUInt32LE(4)
  const body = b.subarray(12, 12 + len)
  if (body.length !== len || crc32c(body) !== b.readUInt32LE(8)) return null
  return unpack<T>(body)
}
