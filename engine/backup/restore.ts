/**
 * Point-in-time restore: a new volume (a cluster directory) holding the
 * backed-up volume as it was at an upload point, an LSN or "latest".
 *
 * How: the newest base at or below the target LSN T gives every page at the
 * base's LSN B; the log objects from B to T give every record in (B, T].
 * Every log object on the way is read and checked first (nothing is written
 * before the log is known to be whole), then the pages are rebuilt one
 * protection group at a time: the base's pages of that PG (a streaming pass
 * over the chunks, which hold pages in ascending order), then that PG's
 * records with B < lsn <= T in LSN order. Memory stays bounded by one PG's
 * pages, one chunk and one log object (plus a bounded cache of decoded log
 * objects, so a log touching many PGs is not decoded once per PG). Pages go
 * into the new volume as `init` MTRs, several in flight.
 *
 * A target is a state the volume had: T must be the end of an MTR (every
 * upload point and base is). Moments before the oldest base, after the
 * latest upload point or inside a gap are refused (HEXAD_BAD_INPUT naming the
 * bounds); a missing or damaged object is HEXAD_CORRUPTION naming it.
 */
import fs from 'node:fs'
import path from 'node:path'
import { applyEncodedOp } from '../common/page-ops.js'
import { badInput, HexadError } from '../common/errors.js'
import { R_FLAGS, R_LSN, R_PAGE, RECORD_FLAG_CPL, recordOps, type FramePayload } from '../storage/format.js'
import { openVolume, type Volume } from '../volume/volume.js'
import { baseManifestName, chunkPages, corruption, decodeLogObject, decodeRecord, getRequired, HEAD_NAME, listCatalog, logChain, padLsn, type BaseManifest, type Catalog, type GapRecord, type HeadRecord, type LogHeader } from './objects.js'
import { describeObject, toStore, type BackupStore } from './store.js'

export interface RestoreProgress {
  /** protection groups rebuilt so far, and in all */
  groupsDone: number
  groupsTotal: number
  pagesWritten: number
  /** bytes read from the store so far */
  bytesRead: number
}

export interface RestoreOptions {
  /** the backup: a BackupStore or a directory */
  from: BackupStore | string
  /** the new cluster's directory: must not exist, or be empty */
  to: string
  /** a moment (resolved to the last upload point at or before it) or an LSN; default: the latest */
  at?: Date | number
  onProgress?: (p: RestoreProgress) => void
  /** init MTRs in flight at once (default 4) */
  mtrsInFlight?: number
}

export interface RestoreResult {
  /** the LSN of the source volume the restored state is */
  lsn: number
  /** when the source volume was at that LSN (for an LSN target: the last upload point at or before it) */
  time: Date
  pages: number
  /** bytes of pages written (pages x page size) */
  bytes: number
  /** bytes read from the store */
  bytesRead: number
  ms: number
}

export interface RestorePoint { time: Date; lsn: number }

export interface RestorableWindow {
  oldest: RestorePoint
  latest: RestorePoint
  /** stretches of log that were never backed up: LSNs and moments inside them cannot be restored */
  gaps: Array<{ from: number; to: number; fromTime: Date; toTime: Date; reason: string }>
}

/** bytes of decoded log payloads kept between protection groups */
const LOG_CACHE_RAW_BYTES = 64 << 20
/** pages per init MTR: ~1 MiB of images */
const MTR_BYTES = 1 << 20

/** What a store holds, read and checked: manifests, head, gaps. */
interface StoreState {
  cat: Catalog
  bases: BaseManifest[]
  head: HeadRecord | null
  gaps: GapRecord[]
  oldest: { lsn: number; time: number }
  latest: { lsn: number; time: number }
}

async function readState(store: BackupStore): Promise<StoreState | null> {
  const cat = await listCatalog(store)
  if (cat.bases.length === 0) return null
  const bases: BaseManifest[] = []
  for (const lsn of cat.bases) {
    const name = baseManifestName(lsn)
    const m = decodeRecord<BaseManifest>(store, name, await getRequired(store, name, 'listed a moment ago'), 'base').value
    if (m.lsn !== lsn) throw corruption(store, name, `bad header: it describes a base at LSN ${m.lsn}, its name says ${lsn}`)
    bases.push(m)
  }
  const head = cat.head ? decodeRecord<HeadRecord>(store, HEAD_NAME, await getRequired(store, HEAD_NAME, 'listed a moment ago'), 'head').value : null
  const gaps: GapRecord[] = []
  for (const g of cat.gaps) gaps.push(decodeRecord<GapRecord>(store, g.name, await getRequired(store, g.name, 'listed a moment ago'), 'gap').value)
  const first = bases[0]
  const newest = bases[bases.length - 1]
  const latest = head && head.lsn >= newest.lsn ? { lsn: head.lsn, time: head.time } : { lsn: newest.lsn, time: newest.time }
  return { cat, bases, head, gaps, oldest: { lsn: first.lsn, time: first.time }, latest }
}

function storeName(store: BackupStore): string {
  return describeObject(store, '')
}

/** The newest moment a restore can go to (the store's last upload point), or null when it holds no complete base. */
export async function latestRestorable(from: BackupStore | string): Promise<RestorePoint | null> {
  const st = await readState(toStore(from, 'latestRestorable: from'))
  return st ? { time: new Date(st.latest.time), lsn: st.latest.lsn } : null
}

/** The oldest and latest moments a restore can go to, and the gaps between; null when the store holds no complete base. */
export async function restorableWindow(from: BackupStore | string): Promise<RestorableWindow | null> {
  const st = await readState(toStore(from, 'restorableWindow: from'))
  if (!st) return null
  return {
    oldest: { time: new Date(st.oldest.time), lsn: st.oldest.lsn },
    latest: { time: new Date(st.latest.time), lsn: st.latest.lsn },
    gaps: st.gaps.map(g => ({ from: g.from, to: g.to, fromTime: new Date(g.fromTime), toTime: new Date(g.toTime), reason: g.reason })),
  }
}

const iso = (ms: number) => new Date(ms).toISOString()

/** Resolves `at` to a target LSN (and the moment it stands for), refusing what the store cannot give. */
async function resolveTarget(store: BackupStore, st: StoreState, at: Date | number | undefined): Promise<{ lsn: number; time: number | null }> {
  const bounds = `LSN ${st.oldest.lsn} (${iso(st.oldest.time)}) to LSN ${st.latest.lsn} (${iso(st.latest.time)})`
  if (at === undefined) return { lsn: st.latest.lsn, time: st.latest.time }
  if (typeof at === 'number') {
    if (!Number.isInteger(at) || at < 0) throw badInput(`restore: at must be a Date or a non-negative integer LSN, got ${String(at)}`)
    if (at < st.oldest.lsn || at > st.latest.lsn) throw badInput(`restore: LSN ${at} is outside what ${storeName(store)} can restore: ${bounds}`)
    const gap = st.gaps.find(g => g.from < at && at < g.to)
    if (gap) throw badInput(`restore: LSN ${at} lies in a gap of the backup in ${storeName(store)}: the log from LSN ${gap.from} (${iso(gap.fromTime)}) to LSN ${gap.to} (${iso(gap.toTime)}) was never backed up (${gap.reason})`)
    return { lsn: at, time: null }
  }
  if (!(at instanceof Date) || Number.isNaN(at.getTime())) throw badInput(`restore: at must be a valid Date or an LSN, got ${String(at)}`)
  const t = at.getTime()
  if (t < st.oldest.time || t > st.latest.time) throw badInput(`restore: ${at.toISOString()} is outside what ${storeName(store)} can restore: ${bounds}`)
  const gap = st.gaps.find(g => g.fromTime < t && t < g.toTime)
  if (gap) throw badInput(`restore: ${at.toISOString()} lies in a gap of the backup in ${storeName(store)}: the log from LSN ${gap.from} (${iso(gap.fromTime)}) to LSN ${gap.to} (${iso(gap.toTime)}) was never backed up (${gap.reason})`)
  // The last upload point at or before t: a base, the head, or the target of a log object
  // (binary search: their times grow with their LSNs).
  let best = { lsn: -1, time: 0 }
  const consider = (lsn: number, time: number) => { if (time <= t && lsn > best.lsn) best = { lsn, time } }
  for (const b of st.bases) consider(b.lsn, b.time)
  if (st.head) consider(st.head.lsn, st.head.time)
  const logs = st.cat.logs
  let lo = 0
  let hi = logs.length - 1
  while (lo <= hi) {
    const mid = (lo + hi) >> 1
    const name = logs[mid].name
    const h = decodeRecord<LogHeader>(store, name, await getRequired(store, name, 'listed a moment ago'), 'log').value
    if (h.time <= t) { consider(h.target, h.time); lo = mid + 1 } else hi = mid - 1
  }
  if (best.lsn < st.oldest.lsn) best = { ...st.oldest }
  return best
}

/**
 * Restores the backup in `options.from` into a new cluster directory
 * `options.to` as of `options.at`, closes it and reports what it wrote.
 * Open the result with `openCluster({ dir: to })`. On failure the target
 * directory is left as it was found (removed, or emptied).
 */
export async function restore(options: RestoreOptions): Promise<RestoreResult> {
  const started = Date.now()
  if (!options || typeof options !== 'object') throw badInput('restore needs options { from, to, at? }')
  const store = toStore(options.from, 'restore: from')
  if (typeof options.to !== 'string' || options.to.length === 0) throw badInput('restore: to must be a non-empty directory path')
  const to = path.resolve(options.to)
  const existed = fs.existsSync(to)
  if (existed) {
    if (!fs.statSync(to).isDirectory()) throw badInput(`restore: ${to} exists and is not a directory`)
    if (fs.readdirSync(to).length > 0) throw badInput(`restore: ${to} exists and is not empty; restore into a new or empty directory`)
  }
  const inFlight = options.mtrsInFlight ?? 4
  if (!Number.isInteger(inFlight) || inFlight < 1) throw badInput(`restore: mtrsInFlight must be a positive integer, got ${String(inFlight)}`)

  const st = await readState(store)
  if (!st) throw badInput(`restore: ${storeName(store)} holds no backup (no complete base: no base/<lsn>/manifest)`)
  const target = await resolveTarget(store, st, options.at)
  const T = target.lsn
  let base = st.bases[0]
  for (const b of st.bases) if (b.lsn <= T) base = b
  const B = base.lsn
  const ppg = base.pagesPerGroup

  // The log from B to T, every object read and checked before anything is written.
  const { chain, holeAt, nextFrom } = logChain(st.cat.logs, B, T)
  if (holeAt !== null) {
    const upTo = Math.min(nextFrom ?? T, T)
    const gap = st.gaps.find(g => g.from <= holeAt && holeAt < g.to)
    throw new HexadError('HEXAD_CORRUPTION', `backup object ${describeObject(store, `log/${padLsn(holeAt)}-*.hxl`)}: missing log between LSN ${holeAt} and ${upTo} (needed to restore LSN ${T} from the base at LSN ${B})${gap ? `; the store records a gap there and the base after it (LSN ${gap.to}) is missing` : ''}`)
  }
  let bytesRead = 0
  const logPgs = new Map<string, Set<number>>()
  const cache = new Map<string, FramePayload>()
  let cacheRaw = 0
  let lastRec: { lsn: number; cpl: boolean } | null = null
  let time = target.time ?? base.time
  for (const ref of chain) {
    const bytes = await getRequired(store, ref.name, `the log between LSN ${ref.from} and ${ref.to}, needed to restore LSN ${T}`)
    bytesRead += bytes.length
    const { header, payload } = decodeLogObject(store, ref.name, bytes)
    const pgs = new Set<number>()
    for (const r of payload.records) {
      if (r[R_LSN] <= B || r[R_LSN] > T) continue
      pgs.add(Math.floor(r[R_PAGE] / ppg))
      lastRec = { lsn: r[R_LSN], cpl: (r[R_FLAGS] & RECORD_FLAG_CPL) !== 0 }
    }
    logPgs.set(ref.name, pgs)
    if (target.time === null && header.target <= T) time = Math.max(time, header.time)
    const raw = header.frameBytes * 4
    if (cacheRaw + raw <= LOG_CACHE_RAW_BYTES) { cache.set(ref.name, payload); cacheRaw += raw }
  }
  if (target.time === null && st.head && st.head.lsn <= T) time = Math.max(time, st.head.time)
  if (lastRec && !lastRec.cpl) throw badInput(`restore: LSN ${T} is not the end of a mini-transaction (its last record, LSN ${lastRec.lsn}, is inside one), so it is not a state the volume had; use a moment, a VDL or a commit's LSN`)

  // Every protection group with a base page or a record, ascending.
  const groups = new Set<number>()
  for (const c of base.objects) for (let g = Math.floor(c.first / ppg); g <= Math.floor(c.last / ppg); g++) groups.add(g)
  for (const s of logPgs.values()) for (const g of s) groups.add(g)
  const order = [...groups].sort((a, b) => a - b)

  let vol: Volume | null = null
  let pages = 0
  try {
    fs.mkdirSync(to, { recursive: true })
    vol = await openVolume({ dir: to, pageSize: base.pageSize, pagesPerGroup: ppg })
    const out = new InitWriter(vol, inFlight, Math.max(1, Math.floor(MTR_BYTES / base.pageSize)))
    const basePages = new BasePageStream(store, base, n => { bytesRead += n })
    let done = 0
    for (const pg of order) {
      const lo = pg * ppg
      const hi = lo + ppg
      const images = new Map<number, Uint8Array>()
      await basePages.takeBelow(hi, (id, image) => { images.set(id, image) })
      for (const ref of chain) {
        if (!logPgs.get(ref.name)!.has(pg)) continue
        let payload = cache.get(ref.name)
        if (!payload) {
          const bytes = await getRequired(store, ref.name, `the log between LSN ${ref.from} and ${ref.to}, needed to restore LSN ${T}`)
          bytesRead += bytes.length
          payload = decodeLogObject(store, ref.name, bytes).payload
        }
        for (const r of payload.records) {
          const lsn = r[R_LSN]
          if (lsn <= B) continue
          if (lsn > T) break
          const id = r[R_PAGE]
          if (id < lo || id >= hi) continue
          let page = images.get(id)
          if (!page) { page = new Uint8Array(base.pageSize); images.set(id, page) }
          for (const op of recordOps(r)) applyEncodedOp(page, op)
        }
      }
      const ids = [...images.keys()].sort((a, b) => a - b)
      for (const id of ids) await out.add(id, images.get(id)!)
      await out.cut()
      pages += ids.length
      done++
      options.onProgress?.({ groupsDone: done, groupsTotal: order.length, pagesWritten: pages, bytesRead })
    }
    await out.drain()
    await vol.close()
    vol = null
  } catch (err) {
    if (vol) await vol.close().catch(() => {})
    // Leave the target as it was found: a half-restored volume must not look like a cluster.
    if (existed) for (const e of fs.readdirSync(to)) fs.rmSync(path.join(to, e), { recursive: true, force: true })
    else fs.rmSync(to, { recursive: true, force: true })
    throw err
  }
  return { lsn: T, time: new Date(time), pages, bytes: pages * base.pageSize, bytesRead, ms: Date.now() - started }
}

/**
 * The base's pages in ascending page order, one chunk in memory at a time:
 * each protection group takes the pages below its end.
 */
class BasePageStream {
  readonly #store: BackupStore
  readonly #base: BaseManifest
  readonly #onRead: (bytes: number) => void
  #chunk = 0
  #iter: Generator<[number, Uint8Array]> | null = null
  #peeked: [number, Uint8Array] | null = null

  constructor(store: BackupStore, base: BaseManifest, onRead: (bytes: number) => void) {
    this.#store = store
    this.#base = base
    this.#onRead = onRead
  }

  async #next(): Promise<[number, Uint8Array] | null> {
    if (this.#peeked) { const p = this.#peeked; this.#peeked = null; return p }
    for (;;) {
      if (this.#iter) {
        const n = this.#iter.next()
        if (!n.done) return n.value
        this.#iter = null
      }
      if (this.#chunk >= this.#base.objects.length) return null
      const ref = this.#base.objects[this.#chunk++]
      const bytes = await getRequired(this.#store, ref.name, `part of the base at LSN ${this.#base.lsn}`)
      this.#onRead(bytes.length)
      this.#iter = chunkPages(this.#store, ref, bytes, this.#base.pageSize, this.#base.lsn)
    }
  }

  /** Hands every page with id < hi to `fn` (groups go in ascending order, so none below this group's start remains). */
  async takeBelow(hi: number, fn: (id: number, image: Uint8Array) => void): Promise<void> {
    for (;;) {
      const p = await this.#next()
      if (!p) return
      if (p[0] >= hi) { this.#peeked = p; return }
      fn(p[0], p[1])
    }
  }
}

/** Writes pages as init MTRs of `perMtr` pages, at most `inFlight` MTRs undurable at once. */
class InitWriter {
  readonly #vol: Volume
  readonly #inFlight: number
  readonly #perMtr: number
  #batch: Array<{ pageId: number; ops: [{ op: 'init'; image: Uint8Array }] }> = []
  readonly #pending = new Set<Promise<void>>()
  #error: unknown = null

  constructor(vol: Volume, inFlight: number, perMtr: number) {
    this.#vol = vol
    this.#inFlight = inFlight
    this.#perMtr = perMtr
  }

  async add(pageId: number, image: Uint8Array): Promise<void> {
    this.#batch.push({ pageId, ops: [{ op: 'init', image }] })
    if (this.#batch.length >= this.#perMtr) await this.cut()
  }

  /** Sends what is batched as one MTR (waiting for a free slot first). */
  async cut(): Promise<void> {
    if (this.#error) throw this.#error
    if (this.#batch.length === 0) return
    while (this.#pending.size >= this.#inFlight) await Promise.race(this.#pending)
    if (this.#error) throw this.#error
    const mtr = this.#batch
    this.#batch = []
    const p: Promise<void> = this.#vol.write(mtr).then(() => { this.#pending.delete(p) }, err => { this.#pending.delete(p); this.#error ??= err })
    this.#pending.add(p)
  }

  async drain(): Promise<void> {
    await this.cut()
    while (this.#pending.size) await Promise.race(this.#pending)
    if (this.#error) throw this.#error
  }
}
