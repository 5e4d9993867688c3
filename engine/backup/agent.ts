/**
 * The backup agent: continuous backup of a volume into a BackupStore, from
 * which `restore()` rebuilds the volume as it was at any moment of the
 * retention window (point-in-time restore).
 *
 * What it writes (FORMAT.md, "Backup store"):
 * - a base: every page at one LSN B, read at read point B (pinned in
 *   volume.meta as 'backup-base' while it is read, so no segment collects
 *   what it needs), rate-limited, in ~4 MiB chunks of page-version entries,
 *   then its manifest LAST: a base without a manifest does not exist. One at
 *   start when the store has no usable base for the volume, then one every
 *   `baseEveryMs`, and one after a gap.
 * - the log: every `intervalMs` the redo records up to the VDL (`logRange`),
 *   as log objects that also carry the moment the VDL was there; then the
 *   persistent pin 'backup-log' moves to the new end, so segments keep every
 *   record the next upload needs, across restarts and failovers.
 * - `head`: the newest upload point (LSN, time), rewritten every tick; it is
 *   what "latest restorable" means.
 * - a gap record when the log could no longer be read from where the store
 *   ends (the pin was let go and segments folded it): moments inside the gap
 *   cannot be restored, and a new base starts after it.
 * - retention: what no moment inside [now - retentionMs, now] needs goes
 *   (bases older than the newest base at or before the window's start, and
 *   the logs and gaps before that base).
 *
 * Nothing here is on the commit path: the agent only reads (logRange,
 * readPage at pinned read points) on timers, does bounded work per tick, and
 * reports errors through `onError` and `status()`; it never throws into the
 * writer. A failover is invisible to it: it asks `getVolume()` each time.
 *
 * One store holds the backup of one volume; one agent writes to it at a time.
 */
import { badInput, HexadError } from '../common/errors.js'
import { checkFrame, encodeVersion } from '../storage/format.js'
import type { Volume } from '../volume/volume.js'
import { baseChunkName, baseManifestName, baseObjectNames, decodeRecord, encodeLogObject, encodeRecord, gapObjectName, HEAD_NAME, listCatalog, logChain, logObjectName, type BaseManifest, type ChunkRef, type GapRecord, type HeadRecord } from './objects.js'
import { describeObject, toStore, type BackupStore } from './store.js'
import { crc32c } from '../../native-bindings/index.js'

export interface BackupOptions {
  /** where the backup goes: a BackupStore, or a directory (a DirectoryBackupStore) */
  store: BackupStore | string
  /** how often the log is uploaded, in ms (default 1000): the restore granularity */
  intervalMs?: number
  /** how far back a restore can go, in ms (default 24 h) */
  retentionMs?: number
  /** pages read for a base, in bytes per second at most (default 32 MiB) */
  bytesPerSecond?: number
  /** a new base every this many ms (default 6 h): bounds the log a restore replays */
  baseEveryMs?: number
  /** called with every error the agent meets (it goes on; status().lastError keeps the last) */
  onError?: (err: Error) => void
}

export interface BackupStatus {
  running: boolean
  /** the newest moment a restore can go to, and its LSN (null until the first base is complete) */
  latestTime: Date | null
  latestLsn: number | null
  /** the oldest moment a restore can go to (the oldest base), and its LSN */
  oldestTime: Date | null
  oldestLsn: number | null
  /** the LSN up to which the store holds the log */
  uploadedLsn: number
  /** bytes of the objects the agent knows in the store */
  bytesStored: number
  /** complete bases in the store */
  bases: number
  logObjects: number
  /** stretches of log that were never backed up */
  gaps: Array<{ from: number; to: number }>
  /** the base being written, if any */
  base: { lsn: number; pagesDone: number; pagesTotal: number } | null
  lastError: Error | null
}

const DEFAULTS = { intervalMs: 1000, retentionMs: 86_400_000, bytesPerSecond: 32 << 20, baseEveryMs: 6 * 3_600_000 }

/** persistent read points in volume.meta (Volume.keep) */
export const KEEP_LOG = 'backup-log'
export const KEEP_BASE = 'backup-base'

/** a base chunk is cut once it holds this many bytes, or pages of this many bytes uncompressed (restore decodes one at a time) */
const CHUNK_BYTES = 4 << 20
const CHUNK_RAW_BYTES = 8 << 20
/** pages read at once for a base */
const READ_BATCH = 64
/** log bytes uploaded per tick at most; the rest goes on at once in the next tick */
const TICK_BYTES_MAX = 16 << 20
/** a log object aims at this size: maxRecords of logRange adapts to it */
const LOG_OBJECT_BYTES = 4 << 20
/** retention deletes at most this many objects per tick */
const DELETES_PER_TICK = 256
/** a base that failed is tried again after this long */
const BASE_RETRY_MS = 5000

interface BaseInfo { lsn: number; time: number; bytes: number }
interface LogInfo { name: string; from: number; to: number; bytes: number }
interface Resolved { intervalMs: number; retentionMs: number; bytesPerSecond: number; baseEveryMs: number }
interface FlushWaiter { lsn: number; after: number; resolve: (r: { lsn: number; time: Date }) => void; reject: (e: Error) => void }
interface BaseRun { lsn: number; time: number; pagesDone: number; pagesTotal: number; aborted: boolean; promise: Promise<void> }

/**
 * Starts continuous backup of the volume `getVolume()` returns (called each
 * time, so a cluster's failover is followed) into `options.store`. Reads the
 * store first: it goes on from where the store ends when the volume still
 * has the log from there, else takes a new base. Rejects with
 * HEXAD_BAD_INPUT when the store holds another volume's backup.
 */
export async function startBackup(getVolume: () => Volume, options: BackupOptions): Promise<BackupAgent> {
  if (typeof getVolume !== 'function') throw badInput('startBackup: the first argument must be a function returning the volume')
  if (!options || typeof options !== 'object') throw badInput('startBackup: options with a store are needed')
  const store = toStore(options.store, 'startBackup: store')
  const o: Resolved = { ...DEFAULTS }
  for (const k of Object.keys(DEFAULTS) as Array<keyof Resolved>) {
    const v = options[k]
    if (v === undefined) continue
    if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) throw badInput(`startBackup: ${k} must be a positive integer, got ${String(v)}`)
    o[k] = v
  }
  if (options.onError !== undefined && typeof options.onError !== 'function') throw badInput('startBackup: onError must be a function')
  const agent = new BackupAgent(getVolume, store, o, options.onError)
  await agent._open()
  return agent
}

export class BackupAgent {
  readonly store: BackupStore
  readonly #getVolume: () => Volume
  readonly #o: Resolved
  readonly #onError: ((err: Error) => void) | undefined
  /** complete bases, ascending by LSN */
  #bases: BaseInfo[] = []
  /** log objects, ascending */
  #logs: LogInfo[] = []
  #gaps: Array<{ name: string; from: number; to: number }> = []
  /** the store holds every record up to here */
  #last = 0
  /** when the VDL was #last (null: not known) */
  #lastTime: number | null = null
  /** the upload under way: up to `to`, which the VDL was at `time` */
  #pending: { to: number; time: number } | null = null
  #head: { lsn: number; time: number } | null = null
  #keptLog: number | null = null
  #base: BaseRun | null = null
  #baseWanted = false
  #baseRetryAt = 0
  #timer: NodeJS.Timeout | null = null
  #ticking: Promise<void> | null = null
  #kick = false
  #stopped = false
  /** stop() is making its last upload: no new tick, base or retention */
  #stopping = false
  #flushWaiters: FlushWaiter[] = []
  #lastError: Error | null = null
  #maxRecords = 4096
  #otherBytes = 0
  #pageSize = 0
  #pagesPerGroup = 0

  /** @internal use startBackup */
  constructor(getVolume: () => Volume, store: BackupStore, o: Resolved, onError?: (err: Error) => void) {
    this.#getVolume = getVolume
    this.store = store
    this.#o = o
    this.#onError = onError
  }

  // ------------------------------------------------------------------ start

  /** @internal reads the store, decides whether to go on or take a new base, starts the timer */
  async _open(): Promise<void> {
    const vol = this.#getVolume()
    this.#pageSize = vol.pageSize
    this.#pagesPerGroup = vol.pagesPerGroup
    const cat = await listCatalog(this.store)
    for (const lsn of cat.bases) {
      const name = baseManifestName(lsn)
      try {
        const bytes = await this.store.get(name)
        if (!bytes) continue // deleted meanwhile
        const m = decodeRecord<BaseManifest>(this.store, name, bytes, 'base').value
        if (m.pageSize !== vol.pageSize || m.pagesPerGroup !== vol.pagesPerGroup) {
          throw badInput(`startBackup: ${describeObject(this.store, name)} is a base of a volume with pageSize ${m.pageSize} and pagesPerGroup ${m.pagesPerGroup}, this one has ${vol.pageSize} and ${vol.pagesPerGroup}: the store holds another volume's backup`)
        }
        this.#bases.push({ lsn, time: m.time, bytes: bytes.length + m.objects.reduce((s, c) => s + c.bytes, 0) })
      } catch (err) {
        if ((err as HexadError).code === 'HEXAD_BAD_INPUT') throw err
        this.#report(err as Error) // a damaged manifest: that base does not count; the next base replaces it
      }
    }
    for (let i = 0; i < cat.logs.length; i += 64) {
      const sizes = await Promise.all(cat.logs.slice(i, i + 64).map(l => this.store.size?.(l.name) ?? Promise.resolve(null)))
      sizes.forEach((n, k) => this.#logs.push({ ...cat.logs[i + k], bytes: n ?? 0 }))
    }
    for (const g of cat.gaps) this.#gaps.push(g)
    if (cat.head) {
      try {
        const bytes = await this.store.get(HEAD_NAME)
        if (bytes) {
          const h = decodeRecord<HeadRecord>(this.store, HEAD_NAME, bytes, 'head').value
          this.#head = { lsn: h.lsn, time: h.time }
        }
      } catch (err) { this.#report(err as Error) }
    }
    // Bases a crash cut short never got a manifest: their chunks go.
    for (const lsn of cat.partialBases) for (const n of await baseObjectNames(this.store, lsn)) await this.store.delete(n)
    // A base pin left by a run that stopped mid-base holds segments back for nothing.
    if (vol.kept(KEEP_BASE) !== null) vol.keep(KEEP_BASE, null)

    const vdl = vol.vdl
    const storeEnd = Math.max(0, ...this.#bases.map(b => b.lsn), ...this.#logs.map(l => l.to), ...this.#gaps.map(g => g.to), this.#head?.lsn ?? 0)
    if (storeEnd > vdl) {
      throw badInput(`startBackup: ${describeObject(this.store, '')} holds backup up to LSN ${storeEnd}, beyond this volume's VDL ${vdl}: it is another volume's backup (or of an earlier life of this directory); use an empty store`)
    }
    const newest = this.#bases[this.#bases.length - 1]
    if (newest) {
      const { holeAt } = logChain(this.#logs, newest.lsn, Infinity)
      const end = holeAt ?? newest.lsn
      if (!this.#logs.some(l => l.to > end)) {
        // Go on from the end of the store; the first tick finds out whether the volume still has the log from there.
        this.#last = end
        this.#lastTime = await this.#timeOf(end, newest)
        try {
          vol.keep(KEEP_LOG, end)
          this.#keptLog = end
          if (newest.time + this.#o.baseEveryMs <= Date.now()) this.#baseWanted = true
        } catch {
          // Below what the volume still retains: the log from there may be gone.
          await this.#restartAfterGap(vol, `the volume no longer retains its log from LSN ${end}`)
        }
        this.#schedule(0)
        return
      }
    }
    // No usable base: a new one at the VDL, and the log from there.
    const now = Date.now()
    if (newest && storeEnd < vdl) await this.#recordGap(storeEnd, vdl, this.#head?.lsn === storeEnd ? this.#head.time : newest.time, now, 'the backup was not running, or its log pin was let go')
    this.#last = vdl
    this.#lastTime = now
    vol.keep(KEEP_LOG, vdl)
    this.#keptLog = vdl
    this.#startBase(vdl, now)
    this.#schedule(0)
  }

  /** When the VDL was `lsn` (an upload point), from head or the log object ending there; else the base's time. */
  async #timeOf(lsn: number, base: BaseInfo): Promise<number> {
    if (this.#head?.lsn === lsn) return this.#head.time
    const log = this.#logs.find(l => l.to === lsn)
    if (log) {
      try {
        const bytes = await this.store.get(log.name)
        if (bytes) {
          const h = decodeRecord<{ kind: 'log'; target: number; time: number }>(this.store, log.name, bytes, 'log').value
          if (h.target === lsn) return h.time
        }
      } catch (err) { this.#report(err as Error) }
    }
    return base.time
  }

  // ------------------------------------------------------------------ the tick

  #schedule(ms: number): void {
    if (this.#stopped || this.#stopping) return
    if (this.#timer) clearTimeout(this.#timer)
    this.#timer = setTimeout(() => { this.#timer = null; this.#runTick() }, ms)
    // The agent alone keeps no process alive, except while someone waits for a flush.
    if (this.#flushWaiters.length === 0) this.#timer.unref()
  }

  #runTick(): void {
    if (this.#stopped || this.#stopping) return
    if (this.#ticking) { this.#kick = true; return }
    this.#kick = false
    this.#ticking = this.#tick().then(() => this.#settleFlushes(), err => {
      this.#report(err as Error)
      this.#rejectFlushes(err as Error)
    }).finally(() => {
      this.#ticking = null
      const behind = this.#pending !== null
      this.#schedule(this.#kick || behind ? 0 : this.#o.intervalMs)
    })
  }

  async #tick(): Promise<void> {
    const vol = this.#getVolume()
    if (!vol.usable) return // a failover under way: the next tick asks again
    const p = this.#pending ??= { to: vol.vdl, time: Date.now() }
    let budget = TICK_BYTES_MAX
    while (this.#last < p.to && budget > 0 && !this.#stopped) {
      let r: { frame: Uint8Array; upto: number; records: number }
      try {
        r = await vol.logRange(this.#last, p.to, this.#maxRecords)
      } catch (err) {
        if (isFolded(err)) return this.#restartAfterGap(vol, (err as Error).message)
        throw err
      }
      if (r.upto <= this.#last || r.upto > p.to) throw new HexadError('HEXAD_CORRUPTION', `backup: logRange(${this.#last}, ${p.to}) answered up to ${r.upto}`)
      // Checksums only (no decode on the application's thread): the frame goes to the store as it came.
      if (!checkFrame(r.frame)) throw new HexadError('HEXAD_CORRUPTION', `backup: the log from ${this.#last} to ${r.upto} came back as a frame that fails its checksums`)
      const name = logObjectName(this.#last, r.upto)
      const obj = encodeLogObject({ from: this.#last, to: r.upto, target: p.to, time: p.time, records: r.records }, r.frame)
      await this.store.put(name, obj)
      this.#logs.push({ name, from: this.#last, to: r.upto, bytes: obj.length })
      this.#last = r.upto
      budget -= obj.length
      // Aim each object at LOG_OBJECT_BYTES: fewer records when frames run large (page images), more when small.
      if (r.frame.length > LOG_OBJECT_BYTES * 2 && this.#maxRecords > 16) this.#maxRecords >>= 1
      else if (r.records === this.#maxRecords && r.frame.length < LOG_OBJECT_BYTES / 2 && this.#maxRecords < 65536) this.#maxRecords <<= 1
    }
    if (this.#last !== this.#keptLog && vol.usable) { vol.keep(KEEP_LOG, this.#last); this.#keptLog = this.#last }
    if (this.#last < p.to) return // more next tick, at once
    this.#pending = null
    this.#lastTime = p.time
    // head names a restorable point only once a complete base lies under it, after the newest gap.
    const newest = this.#bases[this.#bases.length - 1]
    const gapTo = this.#gaps.length ? this.#gaps[this.#gaps.length - 1].to : 0
    if (newest && newest.lsn >= gapTo && newest.lsn <= this.#last) {
      const head: HeadRecord = { kind: 'head', v: 1, lsn: this.#last, time: p.time, pageSize: this.#pageSize, pagesPerGroup: this.#pagesPerGroup }
      const bytes = encodeRecord(head)
      await this.store.put(HEAD_NAME, bytes)
      this.#head = { lsn: head.lsn, time: head.time }
      this.#otherBytes = bytes.length
    }
    if (this.#stopping) return
    const now = Date.now()
    if (!this.#base && now >= this.#baseRetryAt && (this.#baseWanted || !newest || newest.time + this.#o.baseEveryMs <= now)) {
      this.#baseWanted = false
      this.#startBase(this.#last, p.time)
    }
    await this.#retain(now)
  }

  /**
   * The log from #last is gone (folded by the segments): record the gap up
   * to the VDL, go on from there, and take a new base there.
   */
  async #restartAfterGap(vol: Volume, reason: string): Promise<void> {
    const to = vol.vdl
    const now = Date.now()
    const from = this.#last
    await this.#recordGap(from, to, this.#lastTime ?? now, now, reason)
    this.#last = to
    this.#lastTime = now
    this.#pending = null
    vol.keep(KEEP_LOG, to)
    this.#keptLog = to
    this.#report(new HexadError('HEXAD_QUORUM_LOST', `backup: the log from LSN ${from} could no longer be read (${reason}); recorded a gap up to LSN ${to} (moments inside it cannot be restored) and started a new base there`))
    if (this.#base || this.#stopping) this.#baseWanted = true
    else this.#startBase(to, now)
  }

  async #recordGap(from: number, to: number, fromTime: number, toTime: number, reason: string): Promise<void> {
    if (to <= from) return
    const name = gapObjectName(from, to)
    const gap: GapRecord = { kind: 'gap', v: 1, from, to, fromTime, toTime, reason }
    await this.store.put(name, encodeRecord(gap))
    this.#gaps.push({ name, from, to })
  }

  // ------------------------------------------------------------------ bases

  #startBase(lsn: number, time: number): void {
    const run: BaseRun = { lsn, time, pagesDone: 0, pagesTotal: 0, aborted: false, promise: Promise.resolve() }
    this.#base = run
    run.promise = this.#runBase(run).then(() => {
      if (this.#base === run) this.#base = null
      this.#runTick() // writes head now that a base lies under it
    }, err => {
      if (this.#base === run) this.#base = null
      if (run.aborted) return
      this.#report(err as Error)
      this.#rejectFlushes(err as Error)
      this.#baseWanted = true
      this.#baseRetryAt = Date.now() + BASE_RETRY_MS
    })
  }

  /** Reads every page at `run.lsn` under the base pin and writes the chunks, then the manifest. */
  async #runBase(run: BaseRun): Promise<void> {
    let vol = this.#getVolume()
    vol.keep(KEEP_BASE, run.lsn)
    try {
      const ids = await vol.allPageIds()
      run.pagesTotal = ids.length
      const objects: ChunkRef[] = []
      let parts: Buffer[] = []
      let partBytes = 0
      let first = -1
      let last = -1
      const cut = async () => {
        if (parts.length === 0) return
        const bytes = Buffer.concat(parts)
        const name = baseChunkName(run.lsn, objects.length)
        await this.store.put(name, bytes)
        objects.push({ name, bytes: bytes.length, crc: crc32c(bytes), first, last, pages: parts.length })
        parts = []
        partBytes = 0
      }
      const started = Date.now()
      let read = 0
      for (let i = 0; i < ids.length; i += READ_BATCH) {
        if (run.aborted || this.#stopped) throw new HexadError('HEXAD_CLOSED', 'backup: base stopped')
        const batch = ids.slice(i, i + READ_BATCH)
        let images: Uint8Array[]
        try {
          images = await Promise.all(batch.map(id => vol.readPage(id, { at: run.lsn })))
        } catch (err) {
          // A failover: the pin is in volume.meta, the new writer's volume reads the same point.
          const code = (err as HexadError).code
          if ((code !== 'HEXAD_FENCED' && code !== 'HEXAD_CLOSED') || this.#getVolume() === vol) throw err
          vol = this.#getVolume()
          i -= READ_BATCH
          continue
        }
        for (let k = 0; k < batch.length; k++) {
          if (parts.length === 0) first = batch[k]
          const v = encodeVersion(batch[k], run.lsn, images[k])
          parts.push(v)
          partBytes += v.length
          last = batch[k]
          if (partBytes >= CHUNK_BYTES || parts.length * this.#pageSize >= CHUNK_RAW_BYTES) await cut()
        }
        run.pagesDone += batch.length
        read += batch.length * this.#pageSize
        // Rate limit: never ahead of bytesPerSecond since the base began.
        const due = started + (read / this.#o.bytesPerSecond) * 1000
        for (let wait = due - Date.now(); wait > 0 && !run.aborted && !this.#stopped; wait = due - Date.now()) {
          await new Promise(r => setTimeout(r, Math.min(wait, 200)))
        }
      }
      await cut()
      const manifest: BaseManifest = { kind: 'base', v: 1, lsn: run.lsn, time: run.time, pageSize: this.#pageSize, pagesPerGroup: this.#pagesPerGroup, pages: ids.length, objects }
      const mbytes = encodeRecord(manifest)
      await this.store.put(baseManifestName(run.lsn), mbytes)
      this.#bases.push({ lsn: run.lsn, time: run.time, bytes: mbytes.length + objects.reduce((s, c) => s + c.bytes, 0) })
      this.#bases.sort((a, b) => a.lsn - b.lsn)
    } finally {
      try {
        const v = this.#getVolume()
        if (v.usable && v.kept(KEEP_BASE) === run.lsn) v.keep(KEEP_BASE, null)
      } catch (err) { this.#report(err as Error) }
    }
  }

  // ------------------------------------------------------------------ retention

  /** Deletes (bounded per tick) what no moment of [now - retentionMs, now] needs. */
  async #retain(now: number): Promise<void> {
    const windowStart = now - this.#o.retentionMs
    let keep: BaseInfo | undefined
    for (const b of this.#bases) if (b.time <= windowStart) keep = b
    if (!keep) return
    let budget = DELETES_PER_TICK
    while (this.#bases.length && this.#bases[0].lsn < keep.lsn && budget > 0) {
      const b = this.#bases[0]
      // The manifest first: from then on the base does not exist, whatever is left of it.
      await this.store.delete(baseManifestName(b.lsn))
      this.#bases.shift()
      for (const n of await baseObjectNames(this.store, b.lsn)) { await this.store.delete(n); budget-- }
    }
    while (this.#logs.length && this.#logs[0].to <= keep.lsn && budget-- > 0) {
      await this.store.delete(this.#logs[0].name)
      this.#logs.shift()
    }
    while (this.#gaps.length && this.#gaps[0].to <= keep.lsn && budget-- > 0) {
      await this.store.delete(this.#gaps[0].name)
      this.#gaps.shift()
    }
  }

  // ------------------------------------------------------------------ flush, status, stop

  /**
   * Uploads now and resolves once the store holds everything durable up to
   * the VDL at the call (and a complete base under it): a restore to "now"
   * works from then on. Resolves with that upload point. Rejects when an
   * upload fails meanwhile (call again to retry) or the agent stops.
   */
  flush(): Promise<{ lsn: number; time: Date }> {
    if (this.#stopped || this.#stopping) return Promise.reject(new HexadError('HEXAD_CLOSED', 'the backup agent is stopped'))
    const lsn = this.#getVolume().vdl
    const after = Date.now()
    return new Promise((resolve, reject) => {
      this.#flushWaiters.push({ lsn, after, resolve, reject })
      this.#runTick()
    })
  }

  #settleFlushes(): void {
    const h = this.#head
    if (!h || this.#flushWaiters.length === 0) return
    const still: FlushWaiter[] = []
    for (const w of this.#flushWaiters) {
      if (h.lsn >= w.lsn && h.time >= w.after) w.resolve({ lsn: h.lsn, time: new Date(h.time) })
      else still.push(w)
    }
    this.#flushWaiters = still
  }

  #rejectFlushes(err: Error): void {
    for (const w of this.#flushWaiters.splice(0)) w.reject(err)
  }

  #report(err: Error): void {
    this.#lastError = err
    try { this.#onError?.(err) } catch { /* a throwing onError must not stop the agent */ }
  }

  status(): BackupStatus {
    const oldest = this.#bases[0]
    const h = this.#head
    return {
      running: !this.#stopped,
      latestTime: h ? new Date(h.time) : null,
      latestLsn: h ? h.lsn : null,
      oldestTime: oldest ? new Date(oldest.time) : null,
      oldestLsn: oldest ? oldest.lsn : null,
      uploadedLsn: this.#last,
      bytesStored: this.#bases.reduce((s, b) => s + b.bytes, 0) + this.#logs.reduce((s, l) => s + l.bytes, 0) + this.#otherBytes,
      bases: this.#bases.length,
      logObjects: this.#logs.length,
      gaps: this.#gaps.map(g => ({ from: g.from, to: g.to })),
      base: this.#base ? { lsn: this.#base.lsn, pagesDone: this.#base.pagesDone, pagesTotal: this.#base.pagesTotal } : null,
      lastError: this.#lastError,
    }
  }

  /**
   * Stops the agent: the tick under way finishes, a base under way is
   * abandoned (its chunks are deleted at the next start). The log pin stays
   * in volume.meta so a later startBackup goes on without a gap; pass
   * `{ releasePins: true }` to stop backing up this volume for good (the
   * segments may then collect the log the store would need next).
   */
  async stop(options: { releasePins?: boolean } = {}): Promise<void> {
    if (this.#stopped || this.#stopping) return
    this.#stopping = true
    if (this.#timer) { clearTimeout(this.#timer); this.#timer = null }
    const base = this.#base
    if (base) base.aborted = true
    await this.#ticking
    await base?.promise.catch(() => {})
    // A last upload, so the store's head says the volume was still here a moment ago
    // (bounded: a backlog larger than a few ticks is left for the next start).
    for (let i = 0; i < 8 && this.#getVolume().usable; i++) {
      try { await this.#tick() } catch (err) { this.#report(err as Error); break }
      if (this.#pending === null) break
    }
    this.#settleFlushes()
    this.#stopped = true
    this.#rejectFlushes(new HexadError('HEXAD_CLOSED', 'the backup agent stopped'))
    if (options.releasePins) {
      const vol = this.#getVolume()
      if (vol.usable) { vol.keep(KEEP_LOG, null); if (vol.kept(KEEP_BASE) !== null) vol.keep(KEEP_BASE, null) }
    }
  }

  async [Symbol.asyncDispose](): Promise<void> { await this.stop() }
}

/** The segments folded the log below where the store ends: it is gone for good. */
function isFolded(err: unknown): boolean {
  return err instanceof HexadError && err.code === 'HEXAD_QUORUM_LOST' && /is folded to/.test(err.message)
}
