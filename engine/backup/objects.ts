/**
 * The objects of a backup store, their names and their checked encodings
 * (FORMAT.md, "Backup store"). Everything the agent writes and restore
 * reads goes through here, and every decoder says exactly what is wrong with
 * an object (missing, bad header, checksum mismatch, truncated) and names it
 * (for a directory store: the file path) in a HEXAD_CORRUPTION error.
 *
 *   base/<B>/<n>.hxv      a chunk of page-version entries: the pages at LSN B
 *   base/<B>/manifest     the base's manifest, written LAST: a base without one does not exist
 *   log/<from>-<to>.hxl   the redo records with from < lsn <= to, plus the moment the VDL was `target`
 *   gap/<from>-<to>       the log between from and to was lost (never backed up): moments inside are refused
 *   head                  the newest upload point: the store holds everything up to `lsn`, checked at `time`
 *
 * LSNs in names are 16-digit zero-padded decimals, so names sort in LSN order.
 */
import { crc32c, unpack } from '../../native-bindings/index.js'
import { HexadError } from '../common/errors.js'
import { decodeFrame, decodeVersionBody, encodeMeta, META_MAGIC, readVersionHeader, VERSION_HEADER_BYTES, type FramePayload } from '../storage/format.js'
import { describeObject, type BackupStore } from './store.js'

export const LSN_DIGITS = 16
export const HEAD_NAME = 'head'
const META_HEADER_BYTES = 12

export const padLsn = (lsn: number): string => String(lsn).padStart(LSN_DIGITS, '0')
export const baseChunkName = (lsn: number, n: number): string => `base/${padLsn(lsn)}/${String(n).padStart(6, '0')}.hxv`
export const baseManifestName = (lsn: number): string => `base/${padLsn(lsn)}/manifest`
export const logObjectName = (from: number, to: number): string => `log/${padLsn(from)}-${padLsn(to)}.hxl`
export const gapObjectName = (from: number, to: number): string => `gap/${padLsn(from)}-${padLsn(to)}`

const BASE_RE = /^base\/(\d{16})\/(manifest|\d{6}\.hxv)$/
const LOG_RE = /^log\/(\d{16})-(\d{16})\.hxl$/
const GAP_RE = /^gap\/(\d{16})-(\d{16})$/

// ------------------------------------------------------------------ object bodies

/** One chunk of a base: its name, bytes and crc32c, and the page ids it holds (ascending). */
export interface ChunkRef { name: string; bytes: number; crc: number; first: number; last: number; pages: number }

/** A base backup: every page of the volume at LSN `lsn` (the VDL at `time`). */
export interface BaseManifest {
  kind: 'base'
  v: 1
  lsn: number
  /** ms since the epoch at which the VDL was `lsn` */
  time: number
  pageSize: number
  pagesPerGroup: number
  pages: number
  objects: ChunkRef[]
}

/** The header of a log object: what its frame holds and when. */
export interface LogHeader {
  kind: 'log'
  v: 1
  /** records with from < lsn <= to */
  from: number
  to: number
  /** the VDL the upload that wrote this object went to (>= to; = to for its last object) */
  target: number
  /** ms since the epoch at which the VDL was `target` */
  time: number
  records: number
  frameBytes: number
  frameCrc: number
}

/** The newest upload point: the store holds every record up to `lsn`; at `time` the VDL was `lsn`. */
export interface HeadRecord { kind: 'head'; v: 1; lsn: number; time: number; pageSize: number; pagesPerGroup: number }

/** A stretch of log that was never backed up (it was folded away before the agent could read it). */
export interface GapRecord { kind: 'gap'; v: 1; from: number; to: number; fromTime: number; toTime: number; reason: string }

// ------------------------------------------------------------------ errors

export function corruption(store: BackupStore, name: string, what: string): HexadError {
  return new HexadError('HEXAD_CORRUPTION', `backup object ${describeObject(store, name)}: ${what}`)
}

/** Gets an object or fails with HEXAD_CORRUPTION naming it as missing (`why`: what needed it). */
export async function getRequired(store: BackupStore, name: string, why: string): Promise<Uint8Array> {
  const bytes = await store.get(name)
  if (!bytes) throw corruption(store, name, `missing (${why})`)
  return bytes
}

// ------------------------------------------------------------------ checked metadata

/** A small checked record: magic, length, crc32c, msgpack (the volume.meta encoding). */
export function encodeRecord(value: BaseManifest | HeadRecord | GapRecord | LogHeader): Buffer {
  return encodeMeta(value)
}

/**
 * Checks and decodes the metadata record at the start of `bytes`: returns
 * it and the bytes after it. Fails naming what is wrong.
 */
export function decodeRecord<T extends { kind: string }>(store: BackupStore, name: string, bytes: Uint8Array, kind: T['kind']): { value: T; rest: Uint8Array } {
  if (bytes.length < META_HEADER_BYTES) throw corruption(store, name, `truncated: ${bytes.length} bytes, shorter than the ${META_HEADER_BYTES}-byte header`)
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const magic = dv.getUint32(0, true)
  if (magic !== META_MAGIC) throw corruption(store, name, `bad header: magic 0x${magic.toString(16)}, expected 0x${META_MAGIC.toString(16)}`)
  const len = dv.getUint32(4, true)
  if (META_HEADER_BYTES + len > bytes.length) throw corruption(store, name, `truncated: its header says ${len} bytes of metadata, ${bytes.length - META_HEADER_BYTES} are there`)
  const body = bytes.subarray(META_HEADER_BYTES, META_HEADER_BYTES + len)
  const crc = crc32c(body)
  if (crc !== dv.getUint32(8, true)) throw corruption(store, name, `checksum mismatch in its metadata (crc32c 0x${crc.toString(16)}, stored 0x${dv.getUint32(8, true).toString(16)})`)
  let value: T
  try {
    value = unpack<T>(body)
  } catch (err) {
    throw corruption(store, name, `bad header: its metadata does not decode (${(err as Error).message})`)
  }
  if (!value || typeof value !== 'object' || value.kind !== kind) throw corruption(store, name, `bad header: holds ${value && typeof value === 'object' ? `a ${String(value.kind)}` : 'no record'}, expected a ${kind}`)
  return { value, rest: bytes.subarray(META_HEADER_BYTES + len) }
}

// ------------------------------------------------------------------ log objects

/** A log object: its checked header, then the frame (hot-log frame format) exactly as logRange returned it. */
export function encodeLogObject(h: Omit<LogHeader, 'kind' | 'v' | 'frameBytes' | 'frameCrc'>, frame: Uint8Array): Buffer {
  const head = encodeRecord({ kind: 'log', v: 1, ...h, frameBytes: frame.length, frameCrc: crc32c(frame) })
  return Buffer.concat([head, frame])
}

/** Checks every byte of a log object and decodes its frame; the records must lie in (from, to]. */
export function decodeLogObject(store: BackupStore, name: string, bytes: Uint8Array): { header: LogHeader; payload: FramePayload } {
  const { value: header, rest } = decodeRecord<LogHeader>(store, name, bytes, 'log')
  if (rest.length < header.frameBytes) throw corruption(store, name, `truncated: ${rest.length} bytes of frame, its header says ${header.frameBytes}`)
  if (rest.length > header.frameBytes) throw corruption(store, name, `bad header: ${rest.length - header.frameBytes} bytes follow the ${header.frameBytes}-byte frame`)
  const crc = crc32c(rest)
  if (crc !== header.frameCrc) throw corruption(store, name, `checksum mismatch in its frame (crc32c 0x${crc.toString(16)}, header says 0x${header.frameCrc.toString(16)})`)
  const payload = decodeFrame(rest)
  if (!payload) throw corruption(store, name, 'bad header: its frame fails the frame checks')
  const m = LOG_RE.exec(name)
  if (m && (Number(m[1]) !== header.from || Number(m[2]) !== header.to)) throw corruption(store, name, `bad header: it says records ${header.from}..${header.to}, its name says ${Number(m[1])}..${Number(m[2])}`)
  let prev = header.from
  for (const r of payload.records) {
    if (r[0] <= prev || r[0] > header.to) throw corruption(store, name, `bad header: record LSN ${r[0]} out of order or outside (${header.from}, ${header.to}]`)
    prev = r[0]
  }
  return { header, payload }
}

// ------------------------------------------------------------------ base chunks

/** Checks a chunk against its manifest entry and yields its pages: [pageId, image]. */
export function* chunkPages(store: BackupStore, ref: ChunkRef, bytes: Uint8Array, pageSize: number, lsn: number): Generator<[number, Uint8Array]> {
  if (bytes.length < ref.bytes) throw corruption(store, ref.name, `truncated: ${bytes.length} bytes, the manifest says ${ref.bytes}`)
  if (bytes.length > ref.bytes) throw corruption(store, ref.name, `bad size: ${bytes.length} bytes, the manifest says ${ref.bytes}`)
  const crc = crc32c(bytes)
  if (crc !== ref.crc) throw corruption(store, ref.name, `checksum mismatch (crc32c 0x${crc.toString(16)}, the manifest says 0x${ref.crc.toString(16)})`)
  let off = 0
  let n = 0
  while (off < bytes.length) {
    if (off + VERSION_HEADER_BYTES > bytes.length) throw corruption(store, ref.name, `truncated: a page-version header at byte ${off} runs past the end`)
    const h = readVersionHeader(bytes, off)
    if (h === null || h === 'zero') throw corruption(store, ref.name, `bad header: the page-version entry at byte ${off} fails its header checks`)
    const end = off + VERSION_HEADER_BYTES + h.storedLen
    if (end > bytes.length) throw corruption(store, ref.name, `truncated: page ${h.pageId} at byte ${off} runs past the end`)
    if (h.lsn !== lsn || h.rawLen !== pageSize) throw corruption(store, ref.name, `bad header: page ${h.pageId} at byte ${off} is at LSN ${h.lsn} with ${h.rawLen} bytes, expected LSN ${lsn} and ${pageSize}`)
    const image = decodeVersionBody(h, bytes.subarray(off + VERSION_HEADER_BYTES, end))
    if (!image) throw corruption(store, ref.name, `checksum mismatch in page ${h.pageId} at byte ${off}`)
    yield [h.pageId, image]
    off = end
    n++
  }
  if (n !== ref.pages) throw corruption(store, ref.name, `holds ${n} pages, the manifest says ${ref.pages}`)
}

// ------------------------------------------------------------------ the catalog: what a store holds, from names only

export interface LogRef { name: string; from: number; to: number }
export interface GapRef { name: string; from: number; to: number }

export interface Catalog {
  /** bases with a manifest, ascending by LSN */
  bases: number[]
  /** base directories without a manifest (unfinished), ascending */
  partialBases: number[]
  /** log objects, ascending by `from` */
  logs: LogRef[]
  gaps: GapRef[]
  head: boolean
}

/** Lists the store and sorts its objects by kind; reads nothing. Unknown names are ignored. */
export async function listCatalog(store: BackupStore): Promise<Catalog> {
  const [baseNames, logNames, gapNames, headNames] = await Promise.all([store.list('base/'), store.list('log/'), store.list('gap/'), store.list(HEAD_NAME)])
  const complete = new Set<number>()
  const seen = new Set<number>()
  for (const n of baseNames) {
    const m = BASE_RE.exec(n)
    if (!m) continue
    const lsn = Number(m[1])
    seen.add(lsn)
    if (m[2] === 'manifest') complete.add(lsn)
  }
  const logs: LogRef[] = []
  for (const n of logNames) {
    const m = LOG_RE.exec(n)
    if (m) logs.push({ name: n, from: Number(m[1]), to: Number(m[2]) })
  }
  logs.sort((a, b) => a.from - b.from || a.to - b.to)
  const gaps: GapRef[] = []
  for (const n of gapNames) {
    const m = GAP_RE.exec(n)
    if (m) gaps.push({ name: n, from: Number(m[1]), to: Number(m[2]) })
  }
  gaps.sort((a, b) => a.from - b.from)
  return {
    bases: [...complete].sort((a, b) => a - b),
    partialBases: [...seen].filter(l => !complete.has(l)).sort((a, b) => a - b),
    logs, gaps, head: headNames.includes(HEAD_NAME),
  }
}

/** The names of every object of base `lsn` (chunks and manifest). */
export async function baseObjectNames(store: BackupStore, lsn: number): Promise<string[]> {
  return (await store.list(`base/${padLsn(lsn)}/`)).filter(n => BASE_RE.test(n))
}

/**
 * The log objects that carry the records (from, to], in order, from
 * `logs` (sorted by `from`); stops at the first hole and returns where.
 */
export function logChain(logs: LogRef[], from: number, to: number): { chain: LogRef[]; holeAt: number | null; nextFrom: number | null } {
  const chain: LogRef[] = []
  let cur = from
  let i = 0
  while (cur < to) {
    // The object that starts at or below cur and reaches furthest past it.
    let best: LogRef | null = null
    while (i < logs.length && logs[i].from <= cur) {
      if (logs[i].to > cur && (!best || logs[i].to > best.to)) best = logs[i]
      i++
    }
    if (!best) return { chain, holeAt: cur, nextFrom: i < logs.length ? logs[i].from : null }
    chain.push(best)
    cur = best.to
  }
  return { chain, holeAt: null, nextFrom: null }
}
