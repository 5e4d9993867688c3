/**
 * A segment worker: one long-lived worker thread that holds one segment of
 * every protection group, owns its directory, and runs three loops.
 *
 * - Foreground: a frame arrives from the writer, it is checked (crc32c),
 *   appended to the hot log and indexed; every frame that arrived in the same
 *   turn of the event loop shares one fdatasync (group commit, flushed from
 *   setImmediate, which runs after the poll phase has drained the port);
 *   then each is acked with the SCLs of the PGs it touched.
 * - Background: pages whose chain of records grows past a threshold are
 *   coalesced into a new page version; when the live log grows, a checkpoint
 *   folds every record that all peers hold and no read point needs into
 *   versions, syncs them, and deletes the log files they came from.
 * - Gossip: SCLs are exchanged with the five peers over direct
 *   MessageChannels; a segment that sees a peer ahead of it asks it for the
 *   missing records of that PG (gap fill), without the writer's help.
 *
 * Why raw worker_threads and not piscina: a segment is stateful, pushes
 * acks and gossip without being asked, and runs background loops. piscina
 * has no task affinity, and its default `atomics: 'sync'` freezes the event
 * loop between tasks (ECOSYSTEM.md measured zero timer ticks), which would
 * stop gossip and coalescing. piscina is for stateless CPU work (building pages, compressing, backup) and is
 * added when such work leaves the segment (it is not a dependency until then).
 *
 * Fencing: every request carries the writer's epoch; a request of an older
 * epoch is refused with `fenced`, after which that writer can no longer
 * change anything here.
 */
import fs from 'node:fs'
import path from 'node:path'
import { parentPort, workerData, type MessagePort } from 'node:worker_threads'
import { applyEncodedOp } from '../common/page-ops.js'
import { checkFrame, decodeCheckedFrame, decodeMeta, encodeFrame, encodeMeta, R_LSN, R_OPS, R_PAGE, type RecordTuple } from './format.js'
import { fsyncDir, HotLog, noteRecord, type LogFileInfo } from './hot-log.js'
import { PageStore } from './page-store.js'
import type { ClientReply, ClientRequest, ControlMessage, GossipMessage, PgReport, SclList, SegmentConfig, SegmentStats, Truncation } from './protocol.js'
import { inRanges, PgSegment } from './segment.js'

const cfg = workerData as SegmentConfig
if (!parentPort) throw new Error('segment-worker must run in a worker thread')
const parent = parentPort

interface Meta { epoch: number; truncations: Truncation[]; vdlKnown: number; base: Array<[number, number]> }

const GAP_FILL_RECORDS_MAX = 4096
const GAP_FILL_TIMEOUT_MS = 500

class Segment {
  epoch = 0
  truncations: Truncation[] = []
  vdlKnown = 0
  /** lowest read point the writer still needs (PGMRPL); nothing at or above it is collected */
  horizon = 0
  readonly pgs = new Map<number, PgSegment>()
  readonly log: HotLog
  readonly pages: PageStore
  readonly clients = new Set<MessagePort>()
  readonly peers = new Map<number, MessagePort>()
  readonly peerScl = new Map<number, Map<number, number>>()
  readonly gapRequests = new Map<number, number>() // pg -> time requested
  /** pages with records not yet in a version, and how many */
  readonly dirtyPages = new Map<number, number>()
  /** the pages of dirtyPages whose count reached coalesceThreshold: the coalescer's work list */
  readonly #coalesceReady = new Set<number>()
  /**
   * Pages with a version that failed its checksum, and the LSN from which
   * this segment can build them again. Records older than the bad version may
   * already be folded away, so until a peer sends an intact image (repair)
   * the value is Infinity and the page is refused here (another segment
   * serves it); after repair, reads at or above the repaired LSN are served.
   */
  readonly damagedPages = new Map<number, number>()
  /**
   * Set when a page-version file holds a damaged entry whose page is unknown
   * (its header failed), or the meta file is lost: any page may be missing a
   * version here, so this segment serves no page reads until it is rebuilt
   * (other segments serve them); it still takes writes and gossips.
   */
  pagesSuspect = false
  readonly metaPath: string
  /** frames appended since the last flush: synced, then decoded and indexed, then acked */
  #pendingFrames: Array<{ port: MessagePort; seq: number; bytes: Buffer; h: ReturnType<typeof checkFrame> & {}; file: LogFileInfo }> = []
  #touched = new Set<number>()
  #flushScheduled = false
  #coalesceScheduled = false
  #gossipTimer: NodeJS.Timeout | undefined
  #checkpointTimer: NodeJS.Timeout | undefined
  #closed = false
  readonly #cache = new Map<number, { lsn: number; image: Uint8Array }>()
  #cacheBytes = 0
  #repairTurn = 0
  #repairAskedAt = 0
  s = { framesAppended: 0, coalesced: 0, gapFillRecords: 0, gcLogFiles: 0, corruptFrames: 0, tornTailBytes: 0, readsServed: 0, metaCorrupt: 0, repairedPages: 0, cacheHits: 0 }

  constructor() {
    const root = cfg.dir
    fs.mkdirSync(root, { recursive: true })
    this.metaPath = path.join(root, 'meta')
    this.log = new HotLog(path.join(root, 'log'), cfg.logFileBytes)
    this.pages = new PageStore(path.join(root, 'pages'), cfg.logFileBytes)
  }

  open(): void {
    const meta = this.#readMeta()
    if (meta) {
      this.epoch = meta.epoch
      this.truncations = meta.truncations
      this.vdlKnown = meta.vdlKnown
      for (const [pg, base] of meta.base) this.pgs.set(pg, new PgSegment(pg, base))
    }
    this.pages.open()
    if (this.pages.damagedEntries > 0) this.pagesSuspect = true
    const scan = this.log.open((p, file) => {
      if (p.vdl > this.vdlKnown) this.vdlKnown = p.vdl
      for (const r of p.records) this.#insert(r, file)
    })
    this.s.corruptFrames += scan.corruptFrames
    this.s.tornTailBytes += scan.tornTailBytes
    for (const st of this.pgs.values()) {
      st.rebuildChain()
      st.sclSynced = st.scl
    }
    // Versions collected before the restart are still in their files: drop them again.
    if (this.pgs.size) for (const pageId of [...this.pages.index.keys()]) {
      const st = this.pgs.get(Math.floor(pageId / cfg.pagesPerGroup))
      if (st && st.base > 0) this.pages.collectPage(pageId, st.base)
    }
    for (const st of this.pgs.values()) for (const [page, chain] of st.chains) this.#noteDirty(page, chain)
    this.#gossipTimer = setInterval(() => this.#gossip(), cfg.gossipIntervalMs)
    this.#checkpointTimer = setInterval(() => this.#checkpoint(), Math.max(20, cfg.gossipIntervalMs * 2))
  }

  // ---------------------------------------------------------------- records

  #pg(pg: number): PgSegment {
    let st = this.pgs.get(pg)
    if (!st) { st = new PgSegment(pg, 0); this.pgs.set(pg, st) }
    return st
  }

  #insert(r: RecordTuple, file: LogFileInfo | null): boolean {
    const lsn = r[R_LSN]
    if (inRanges(lsn, this.truncations)) return false
    const pg = Math.floor(r[R_PAGE] / cfg.pagesPerGroup)
    const st = this.#pg(pg)
    if (file) noteRecord(file, pg, lsn)
    if (!st.insert(r)) return false
    this.#touched.add(pg)
    const newest = this.pages.newest(r[R_PAGE])
    if (!newest || newest.lsn < lsn) this.#setDirty(r[R_PAGE], (this.dirtyPages.get(r[R_PAGE]) ?? 0) + 1)
    return true
  }

  /** Recounts the records of `page` above its newest version. */
  #noteDirty(page: number, chain: number[]): void {
    const newest = this.pages.newest(page)
    this.#setDirty(page, newest ? chain.length - firstAbove(chain, newest.lsn) : chain.length)
  }

  #setDirty(page: number, n: number): void {
    if (n > 0) this.dirtyPages.set(page, n)
    else this.dirtyPages.delete(page)
    if (n >= cfg.coalesceThreshold) this.#coalesceReady.add(page)
    else this.#coalesceReady.delete(page)
  }

  #sclList(pgs?: Iterable<number>): SclList {
    const out: SclList = []
    if (pgs) { for (const pg of pgs) { const st = this.pgs.get(pg); if (st) out.push([pg, st.sclSynced]) } }
    else for (const st of this.pgs.values()) out.push([st.pg, st.sclSynced])
    return out
  }

  // ---------------------------------------------------------------- writer requests

  onClient(port: MessagePort, m: ClientRequest): void {
    if (this.#closed) return
    const reply = (msg: ClientReply, transfer?: ArrayBuffer[]) => port.postMessage(msg, transfer ?? [])
    switch (m.t) {
      case 'frame': {
        if (m.epoch < this.epoch) return reply({ t: 'fenced', seq: m.seq, epoch: this.epoch })
        if (m.epoch > this.epoch) return reply({ t: 'error', message: `frame of epoch ${m.epoch} before hello (segment at epoch ${this.epoch})` })
        const bytes = Buffer.from(m.frame.buffer, m.frame.byteOffset, m.frame.byteLength)
        if (m.horizon !== undefined && m.horizon > this.horizon) this.horizon = m.horizon
        const h = checkFrame(bytes)
        if (!h) { this.s.corruptFrames++; return reply({ t: 'error', message: `frame ${m.seq} failed its checksum in transit` }) }
        // Appended now, decoded and indexed in #flush after the fdatasync: the
        // decode of one segment overlaps the disk wait of the others.
        const file = this.log.append(bytes, null)
        this.s.framesAppended++
        this.#pendingFrames.push({ port, seq: m.seq, bytes, h, file })
        this.#scheduleFlush()
        return
      }
      case 'horizon':
        if (m.epoch === this.epoch && m.lsn > this.horizon) this.horizon = m.lsn
        return
      case 'read': {
        if (m.epoch < this.epoch) return reply({ t: 'fenced', id: m.id, epoch: this.epoch })
        const r = this.#read(m.pageId, m.at, m.need)
        if (typeof r === 'string') return reply({ t: 'read-fail', id: m.id, reason: r as 'not-ready', detail: `segment ${cfg.id}: ${r} for page ${m.pageId} at ${m.at} (need ${m.need})` })
        this.s.readsServed++
        const ab = r.buffer.byteLength === r.byteLength && r.byteOffset === 0 && !(r.buffer instanceof SharedArrayBuffer) ? r.buffer as ArrayBuffer : new Uint8Array(r).buffer
        return reply({ t: 'page', id: m.id, image: new Uint8Array(ab) }, [ab])
      }
      case 'hello':
      case 'recover':
      case 'truncate': {
        if (m.epoch < this.epoch) return reply({ t: 'fenced', id: m.id, epoch: this.epoch })
        // Everything appended so far is made durable and acked first, so that a
        // recovery report includes every record any writer was told is durable here.
        if (this.#flushScheduled) this.#flush()
        this.#adopt(m.epoch, m.truncations)
        if (m.t === 'recover') return reply({ t: 'recover-ok', id: m.id, report: this.#report() })
        if (m.t === 'hello') return reply({ t: 'hello-ok', id: m.id, scl: this.#sclList() })
        return reply({ t: 'truncate-ok', id: m.id, scl: this.#sclList() })
      }
      case 'stats':
        return reply({ t: 'stats-ok', id: m.id, stats: this.stats() })
    }
  }

  /** Takes a newer epoch and its truncation ranges, durably, before anything else is accepted. */
  #adopt(epoch: number, truncations: Truncation[]): void {
    const fresh = truncations.filter(t => !this.truncations.some(u => u[0] === t[0] && u[1] === t[1]))
    if (epoch === this.epoch && fresh.length === 0) return
    this.epoch = Math.max(epoch, this.epoch)
    if (fresh.length) {
      this.#cache.clear()
      this.#cacheBytes = 0
      this.truncations = [...this.truncations, ...fresh].sort((a, b) => a[0] - b[0])
      for (const st of this.pgs.values()) st.truncate(fresh)
      for (const st of this.pgs.values()) for (const [page, chain] of st.chains) this.#noteDirty(page, chain)
    }
    this.#writeMeta()
  }

  #report() {
    const pgs: PgReport[] = []
    let maxLsn = 0
    for (const st of this.pgs.values()) {
      if (st.maxLsn > maxLsn) maxLsn = st.maxLsn
      pgs.push({ pg: st.pg, scl: st.sclSynced, tail: st.tailAtOrBelow(this.vdlKnown), records: st.chainedAbove(this.vdlKnown) })
    }
    return { vdlKnown: this.vdlKnown, maxLsn, pgs }
  }

  // ---------------------------------------------------------------- reads and pages

  /**
   * Page `pageId` as of read point `at`: the newest version at or below `at`
   * with every later record of the page up to `at` applied. `need` is the
   * page's "not modified since" LSN: holding every record of the PG up to it
   * is enough, whatever else is still in flight.
   */
  #read(pageId: number, at: number, need: number): Uint8Array | 'not-ready' | 'corrupt' | 'below-horizon' {
    const pg = Math.floor(pageId / cfg.pagesPerGroup)
    const st = this.pgs.get(pg)
    if ((st ? st.scl : 0) < need) return 'not-ready'
    if (st && at < st.base && !this.pages.versionAtOrBelow(pageId, at) && this.pages.index.has(pageId)) return 'below-horizon'
    const built = this.#build(pageId, at, st)
    if (built === null) return 'corrupt'
    if (built.applied >= cfg.coalesceThreshold && built.last <= this.vdlKnown && st && built.last <= st.sclSynced) {
      this.pages.append(pageId, built.last, built.image) // lazy materialization on read
      this.s.coalesced++
      this.#noteDirty(pageId, st.chains.get(pageId) ?? [])
    }
    return built.image
  }

  #build(pageId: number, at: number, st: PgSegment | undefined): { image: Uint8Array; applied: number; last: number } | null {
    if (this.pagesSuspect || at < (this.damagedPages.get(pageId) ?? -1)) return null
    const v = this.pages.versionAtOrBelow(pageId, at)
    const cached = this.#cache.get(pageId)
    let image: Uint8Array
    let from = -1
    if (cached && cached.lsn <= at && (!v || cached.lsn >= v.lsn)) {
      // The newest image built here is at least as new as any version that could serve: no disk read.
      image = new Uint8Array(cached.image)
      from = cached.lsn
      this.s.cacheHits++
    } else if (v) {
      const img = this.pages.read(pageId, v)
      if (!img) {
        // Never return a version that failed its checksum (invariant 7).
        this.pages.discard(pageId, v)
        this.#cacheDrop(pageId)
        this.damagedPages.set(pageId, Infinity)
        this.#requestRepair(pageId)
        return null
      }
      image = img
      from = v.lsn
    } else {
      image = new Uint8Array(cfg.pageSize)
    }
    let applied = 0
    let last = from
    const chain = st?.chains.get(pageId)
    if (chain) {
      let i = firstAbove(chain, from)
      for (; i < chain.length && chain[i] <= at; i++) {
        const r = st!.records.get(chain[i])!
        for (const op of r[R_OPS]) applyEncodedOp(image, op)
        applied++
        last = chain[i]
      }
    }
    last = Math.max(last, 0)
    if (!cached || last > cached.lsn) this.#cachePut(pageId, last, image)
    return { image, applied, last }
  }

  /**
   * A bounded cache of the newest image built of each page (LRU by bytes).
   * An entry at LSN c is the page with every record at or below c applied;
   * records are only ever truncated above a VDL and images are built only
   * at read points at or below one, so an entry never goes stale except by
   * truncation, which clears the cache.
   */
  #cachePut(pageId: number, lsn: number, image: Uint8Array): void {
    if (cfg.pageCacheBytes <= 0) return
    const old = this.#cache.get(pageId)
    if (old) { this.#cache.delete(pageId); this.#cacheBytes -= old.image.length }
    this.#cache.set(pageId, { lsn, image: new Uint8Array(image) })
    this.#cacheBytes += image.length
    for (const [id, e] of this.#cache) {
      if (this.#cacheBytes <= cfg.pageCacheBytes) break
      this.#cache.delete(id)
      this.#cacheBytes -= e.image.length
    }
  }

  #cacheDrop(pageId: number): void {
    const e = this.#cache.get(pageId)
    if (e) { this.#cache.delete(pageId); this.#cacheBytes -= e.image.length }
  }

  /** Folds long chains into page versions, a bounded number of pages per turn. */
  #coalesce(): void {
    this.#coalesceScheduled = false
    if (this.#closed) return
    let budget = 64
    let progress = false
    for (const page of [...this.#coalesceReady]) {
      if (budget <= 0) break
      const st = this.pgs.get(Math.floor(page / cfg.pagesPerGroup))
      if (!st) { this.#setDirty(page, 0); continue }
      if (this.#materialize(page, st, Math.min(st.sclSynced, this.vdlKnown))) { budget--; progress = true }
      this.#noteDirty(page, st.chains.get(page) ?? [])
    }
    // Pages whose records are not yet below the known VDL wait for the next flush to retry.
    if (progress && this.#coalesceReady.size) this.#scheduleCoalesce()
  }

  /** Builds a version of `page` at its last record at or below `limit`, if that is newer than its newest version. */
  #materialize(page: number, st: PgSegment, limit: number): boolean {
    const newest = this.pages.newest(page)
    const chain = st.chains.get(page)
    if (!chain) return false
    let last = -1
    for (const l of chain) if (l <= limit) last = l; else break
    if (last < 0) return false
    // A version exactly at `last` is what a fold to `last` needs; a newer one
    // does not help a reader whose read point lies between the two.
    if (newest && newest.lsn >= last && this.pages.versionAtOrBelow(page, last)?.lsn === last) return false
    const built = this.#build(page, last, st)
    if (!built) return false
    this.pages.append(page, built.last, built.image)
    this.s.coalesced++
    return true
  }

  #scheduleCoalesce(): void {
    if (this.#coalesceScheduled) return
    this.#coalesceScheduled = true
    setTimeout(() => this.#coalesce(), 1)
  }

  // ---------------------------------------------------------------- durability

  #scheduleFlush(): void {
    if (this.#flushScheduled) return
    this.#flushScheduled = true
    setImmediate(() => this.#flush())
  }

  #flush(): void {
    this.#flushScheduled = false
    if (this.#closed) return
    this.log.sync()
    const frames = this.#pendingFrames
    this.#pendingFrames = []
    const acks: Array<{ port: MessagePort; seq: number }> = []
    for (const f of frames) {
      const payload = decodeCheckedFrame(f.bytes, f.h)
      // Checksums passed but the payload does not decode: not acked (on replay the frame is skipped as damaged).
      if (!payload) { this.s.corruptFrames++; f.port.postMessage({ t: 'error', message: `frame ${f.seq} does not decode` } satisfies ClientReply); continue }
      if (payload.vdl > this.vdlKnown) this.vdlKnown = payload.vdl
      for (const r of payload.records) this.#insert(r, f.file)
      acks.push(f)
    }
    const touched = [...this.#touched]
    this.#touched.clear()
    for (const pg of touched) { const st = this.pgs.get(pg)!; st.sclSynced = st.scl }
    const scl = this.#sclList(touched)
    const byPort = new Map<MessagePort, number[]>()
    for (const a of acks) {
      let seqs = byPort.get(a.port)
      if (!seqs) { seqs = []; byPort.set(a.port, seqs) }
      seqs.push(a.seq)
    }
    for (const [port, seqs] of byPort) port.postMessage({ t: 'ack', seqs, scl } satisfies ClientReply)
    // SCLs that moved without a frame (gap fill) are pushed to every writer.
    if (scl.length) for (const port of this.clients) if (!byPort.has(port)) port.postMessage({ t: 'scl', scl } satisfies ClientReply)
    if (this.#coalesceReady.size) this.#scheduleCoalesce()
  }

  /**
   * Checkpoint: fold what everyone has into durable versions and delete the
   * log files that held it. For PG g the fold point is
   *   C_g = min(own SCL, every peer's last reported SCL, known VDL, read horizon),
   * so no peer can still need the records for gap fill and no reader can
   * still need them to build an older page.
   */
  #checkpoint(): void {
    if (this.#closed || this.log.files.length < 2) return
    if (this.log.liveBytes < cfg.checkpointLogBytes) return
    if (this.peerScl.size < 5) return // every peer must have spoken at least once
    const foldTo = new Map<number, number>()
    for (const st of this.pgs.values()) {
      let c = Math.min(st.sclSynced, this.vdlKnown, this.horizon)
      for (const m of this.peerScl.values()) c = Math.min(c, m.get(st.pg) ?? 0)
      foldTo.set(st.pg, c)
    }
    const victims = this.log.files.slice(0, -1).filter(f => {
      for (const [pg, max] of f.maxLsnByPg) if (max > (foldTo.get(pg) ?? 0)) return false
      return true
    })
    if (victims.length === 0) return
    const newBase = new Map<number, number>()
    for (const st of this.pgs.values()) {
      const c = foldTo.get(st.pg)!
      const tail = st.tailAtOrBelow(c)
      newBase.set(st.pg, tail)
      for (const [page] of st.chains) this.#materialize(page, st, tail)
    }
    this.pages.sync()
    const meta = this.#metaValue()
    meta.base = [...this.pgs.values()].map(st => [st.pg, Math.max(st.base, newBase.get(st.pg)!)])
    this.#writeMeta(meta)
    this.log.remove(victims.map(f => f.seq))
    this.s.gcLogFiles += victims.length
    for (const st of this.pgs.values()) {
      st.fold(newBase.get(st.pg)!)
      for (const [page, chain] of st.chains) this.#noteDirty(page, chain)
    }
    this.pages.collect(Math.min(this.horizon, this.vdlKnown))
    const emptied = this.pages.compact()
    if (emptied.length) { this.pages.sync(); this.pages.removeFiles(emptied) }
  }

  #metaValue(): Meta {
    return { epoch: this.epoch, truncations: this.truncations, vdlKnown: this.vdlKnown, base: [...this.pgs.values()].map(st => [st.pg, st.base]) }
  }

  /**
   * The meta file is written twice (`meta`, then `meta.2`), each by
   * temp-file + fsync + rename, so one damaged copy is never the only one.
   */
  #writeMeta(meta: Meta = this.#metaValue()): void {
    const bytes = encodeMeta(meta)
    for (const p of [this.metaPath, this.metaPath + '.2']) {
      const tmp = p + '.tmp'
      const fd = fs.openSync(tmp, 'w')
      fs.writeSync(fd, bytes)
      fs.fsyncSync(fd)
      fs.closeSync(fd)
      fs.renameSync(tmp, p)
      fsyncDir(cfg.dir)
    }
  }

  #readMeta(): Meta | null {
    let found = false
    for (const p of [this.metaPath, this.metaPath + '.2']) {
      if (!fs.existsSync(p)) continue
      found = true
      const m = decodeMeta<Meta>(fs.readFileSync(p))
      if (m) return m
      this.s.metaCorrupt++
    }
    if (found) this.pagesSuspect = true // both copies lost: fold bases unknown, serve nothing until rebuilt
    return null
  }

  // ---------------------------------------------------------------- gossip

  #gossip(): void {
    if (this.#closed) return
    const msg: GossipMessage = { t: 'g-scl', from: cfg.id, epoch: this.epoch, truncations: this.truncations, scl: this.#sclList() }
    for (const port of this.peers.values()) port.postMessage(msg)
    if (this.damagedPages.size && Date.now() - this.#repairAskedAt > GAP_FILL_TIMEOUT_MS) {
      this.#repairAskedAt = Date.now()
      for (const [pageId, from] of this.damagedPages) if (from === Infinity) this.#requestRepair(pageId)
    }
  }

  /** Asks a peer (a different one each time) for an intact image of a damaged page at this segment's fold point. */
  #requestRepair(pageId: number): void {
    const peers = [...this.peers.entries()]
    if (peers.length === 0) return
    const [, port] = peers[(this.#repairTurn++) % peers.length]
    const st = this.pgs.get(Math.floor(pageId / cfg.pagesPerGroup))
    port.postMessage({ t: 'g-page-req', from: cfg.id, epoch: this.epoch, pageId, after: st?.base ?? 0 } satisfies GossipMessage)
  }

  onPeer(m: GossipMessage): void {
    if (this.#closed) return
    const port = this.peers.get(m.from)
    if (!port) return
    if (m.epoch < this.epoch) {
      port.postMessage({ t: 'g-scl', from: cfg.id, epoch: this.epoch, truncations: this.truncations, scl: this.#sclList() } satisfies GossipMessage)
      return
    }
    if (m.t === 'g-scl') {
      if (m.epoch > this.epoch || m.truncations.length > this.truncations.length) this.#adopt(m.epoch, m.truncations)
      this.peerScl.set(m.from, new Map(m.scl))
      const now = Date.now()
      for (const [pg, scl] of m.scl) {
        const st = this.#pg(pg)
        if (scl <= st.scl) continue
        const asked = this.gapRequests.get(pg)
        if (asked !== undefined && now - asked < GAP_FILL_TIMEOUT_MS) continue
        this.gapRequests.set(pg, now)
        port.postMessage({ t: 'g-req', from: cfg.id, epoch: this.epoch, pg, after: st.scl, upto: scl } satisfies GossipMessage)
      }
      return
    }
    if (m.epoch > this.epoch) return // wait for its g-scl, which carries the truncations
    if (m.t === 'g-req') {
      const st = this.pgs.get(m.pg)
      const records = st ? st.range(m.after, Math.min(m.upto, st.sclSynced), GAP_FILL_RECORDS_MAX) : []
      port.postMessage({ t: 'g-rec', from: cfg.id, epoch: this.epoch, pg: m.pg, records } satisfies GossipMessage)
      return
    }
    if (m.t === 'g-page-req') {
      // Build the page at the requester's fold point, or at ours if we folded further:
      // the requester holds every record of the PG above its own fold point.
      const st = this.pgs.get(Math.floor(m.pageId / cfg.pagesPerGroup))
      const lsn = Math.max(m.after, st?.base ?? 0)
      let image: Uint8Array | null = null
      if (!this.pagesSuspect && (st ? st.sclSynced : 0) >= lsn && lsn <= this.vdlKnown) image = this.#build(m.pageId, lsn, st)?.image ?? null
      port.postMessage({ t: 'g-page', from: cfg.id, epoch: this.epoch, pageId: m.pageId, lsn, image } satisfies GossipMessage)
      return
    }
    if (m.t === 'g-page') {
      const st = this.pgs.get(Math.floor(m.pageId / cfg.pagesPerGroup))
      if (!m.image || this.damagedPages.get(m.pageId) !== Infinity || m.lsn < (st?.base ?? 0) || m.image.length !== cfg.pageSize) return
      this.pages.append(m.pageId, m.lsn, m.image)
      this.pages.sync()
      this.damagedPages.set(m.pageId, m.lsn)
      this.s.repairedPages++
      return
    }
    if (m.t === 'g-rec') {
      this.gapRequests.delete(m.pg)
      const fresh = m.records.filter(r => !inRanges(r[R_LSN], this.truncations) && !(this.pgs.get(m.pg)?.records.has(r[R_LSN])) && r[R_LSN] > (this.pgs.get(m.pg)?.base ?? 0))
      if (fresh.length === 0) return
      const frame = encodeFrame({ epoch: this.epoch, vdl: this.vdlKnown, records: fresh })
      const file = this.log.append(frame, null)
      for (const r of fresh) this.#insert(r, file)
      this.s.gapFillRecords += fresh.length
      this.#scheduleFlush()
    }
  }

  // ---------------------------------------------------------------- lifecycle

  stats(): SegmentStats {
    let records = 0
    for (const st of this.pgs.values()) records += st.records.size
    return {
      id: cfg.id, az: cfg.az, epoch: this.epoch, vdlKnown: this.vdlKnown, pgScl: this.#sclList(),
      bytesWritten: this.log.bytesWritten, logBytesLive: this.log.liveBytes, logFiles: this.log.files.length,
      pageVersions: this.pages.versions, pageStoreBytes: this.pages.bytes, recordsInMemory: records,
      framesAppended: this.s.framesAppended, fsyncs: this.log.fsyncs, coalesced: this.s.coalesced,
      gapFillRecords: this.s.gapFillRecords, gcLogFiles: this.s.gcLogFiles, gcVersions: this.pages.gcVersions, compactedPageFiles: this.pages.compactedFiles,
      corruptFrames: this.s.corruptFrames, corruptVersions: this.pages.corruptVersions, tornTailBytes: this.s.tornTailBytes,
      readsServed: this.s.readsServed, damagedPages: [...this.damagedPages.values()].filter(v => v === Infinity).length, repairedPages: this.s.repairedPages, cacheHits: this.s.cacheHits, pagesSuspect: this.pagesSuspect, metaCorrupt: this.s.metaCorrupt,
    }
  }

  close(): void {
    if (this.#closed) return
    if (this.#flushScheduled) this.#flush()
    this.#closed = true
    clearInterval(this.#gossipTimer)
    clearInterval(this.#checkpointTimer)
    this.log.close()
    this.pages.close()
    for (const p of this.clients) p.close()
    for (const p of this.peers.values()) p.close()
  }
}

const seg = new Segment()
try {
  seg.open()
  parent.postMessage({ t: 'ready' })
} catch (err) {
  parent.postMessage({ t: 'failed', message: (err as Error).stack ?? String(err) })
  process.exit(1)
}

parent.on('message', (m: ControlMessage) => {
  switch (m.t) {
    case 'client':
      seg.clients.add(m.port)
      m.port.on('message', (req: ClientRequest) => seg.onClient(m.port, req))
      m.port.on('close', () => seg.clients.delete(m.port))
      return
    case 'peer': {
      const old = seg.peers.get(m.peer)
      if (old) old.close()
      seg.peers.set(m.peer, m.port)
      m.port.on('message', (g: GossipMessage) => seg.onPeer(g))
      return
    }
    case 'peer-gone':
      seg.peers.get(m.peer)?.close()
      seg.peers.delete(m.peer)
      return
    case 'close':
      seg.close()
      parent.postMessage({ t: 'closed' })
      parent.close()
      return
  }
})

/** Index of the first element of an ascending array greater than `x`. */
function firstAbove(xs: number[], x: number): number {
  let lo = 0
  let hi = xs.length
  while (lo < hi) { const mid = (lo + hi) >> 1; if (xs[mid] <= x) lo = mid + 1; else hi = mid }
  return lo
}
