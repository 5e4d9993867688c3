/**
 * A segment node: one storage node that holds one segment of every
 * protection group, owns its directory, and runs three loops. It runs inside
 * a worker thread (segment-worker.ts wires it to MessagePorts, node:fs and
 * the process clock) or inside the simulator (engine/sim: an in-memory disk,
 * a lossy network and virtual time); the code is the same.
 *
 * - Foreground: a frame arrives from the writer, it is checked (crc32c),
 *   appended to the hot log and indexed; every frame that arrived in the same
 *   turn of the event loop shares one fdatasync (group commit, flushed from
 *   setImmediate, which runs after the poll phase has drained the port);
 *   then each is acked with the SCLs of the PGs it touched.
 * - Background: pages whose chain of records grows past a threshold are
 *   coalesced into a new page version; when the live log grows, a checkpoint
 *   folds every record that all peers hold and no read point needs into
 *   versions, syncs them, and deletes the log files they came from. The
 *   scrubber re-reads and verifies frames and versions at a bounded rate and
 *   repairs what fails from a peer.
 * - Gossip: SCLs are exchanged with the five peers over direct channels; a
 *   segment that sees a peer ahead of it asks it for the missing records of
 *   that PG (gap fill), or, when every peer ahead has folded those records
 *   away, copies the PG's pages from one (rebuild), without the writer's help.
 *
 * Fencing: every request carries the writer's epoch; a request of an older
 * epoch is refused with `fenced`, after which that writer can no longer
 * change anything here.
 */
import path from 'node:path'
import { realClock, type Clock, type TimerHandle } from './clock.js'
import { realDisk, writeFileDurable, type CorruptionReport, type Disk } from './disk.js'
import { plantedBugs } from './planted-bugs.js'
import { checkFrame, decodeCheckedFrame, decodeFrame, decodeFrameUnchecked, decodeMeta, decodeVersionBody, encodeFrame, encodeMeta, encodeVersion, R_LSN, R_PAGE, readVersionHeader, recordOps, VERSION_HEADER_BYTES, type RecordTuple } from './format.js'
import { frameRecs, HotLog, noteRecord, recPairs, type FrameExtent, type LogFileInfo } from './hot-log.js'
import { PageStore, type Version } from './page-store.js'
import type { ClientReply, ClientRequest, GossipMessage, PgReport, SclList, SegmentConfig, SegmentStats, Truncation } from './protocol.js'
import { inRanges, PgSegment } from './segment.js'

/** One end of a message channel, as the segment uses it (a worker_threads MessagePort, or the simulator's). */
export interface PortLike {
  postMessage(m: unknown, transfer?: ArrayBuffer[]): void
  close(): void
}

/** What a segment node runs on. */
export interface SegmentEnv {
  disk: Disk
  clock: Clock
  /** told of every checksum failure found, with where (the simulator checks every flipped bit is found) */
  onCorrupt?: (segment: number, r: CorruptionReport) => void
}

interface Meta { epoch: number; truncations: Truncation[]; vdlKnown: number; base: Array<[number, number]>; pagesSynced?: Array<[number, number]>; pins?: number[] }

const GAP_FILL_RECORDS_MAX = 4096
const GAP_FILL_TIMEOUT_MS = 500
/** how long a peer's "checkpointing" word holds when no later gossip from it clears it (it may have died) */
const CHECKPOINT_WORD_MS = 10_000
/** a clone's base asked of the writers and not received is asked again after this long */
const BASE_ASK_AGAIN_MS = 1000
/** the scrubber wakes this often and verifies scrubBytesPerSecond * SCRUB_TICK_MS / 1000 bytes */
const SCRUB_TICK_MS = 50
/**
 * While writes arrive the scrubber verifies 1/SCRUB_BUSY_SHARE of its rate:
 * background work gives way to the foreground, as in Aurora's storage nodes.
 * (TPC-B in process, 16 clients, before the one-read-per-tick change: six
 * segments scrubbing 4 MiB/s each against 1 KiB/s cost 5-13% of its
 * transactions on 2 cores.)
 */
const SCRUB_BUSY_SHARE = 4
/** pages per rebuild chunk (a chunk is one message and one synchronous build on the peer) */
const REBUILD_CHUNK_PAGES = 64
/** every this many gossip periods (gossipIntervalMs), each writer is sent every SCL again */
const SCL_REFRESH_PERIODS = 20
/**
 * A segment whose SCLs, fold bases, epoch and truncations have not changed
 * since it last gossiped, and whose peers all last reported the SCLs it has,
 * skips its gossip for up to this many gossip periods (gossipIntervalMs), at
 * full pace or slow; a heartbeat then repeats it, so a message lost on a
 * lossy transport is sent again. An idle cluster of six otherwise posts 1,200
 * messages a second among its segments.
 */
const QUIET_GOSSIP_PERIODS = 20
/**
 * One timer drives the gossip, the checkpoints and the scrubber, each at its
 * own period. A segment with nothing to do (no write, request or news from a
 * peer; converged with every peer; no scrub pass, repair or rebuild under
 * way) for this many ticks in a row slows it to IDLE_TICK_MS; anything that
 * arrives speeds it up again at once. An idle cluster of six otherwise wakes
 * 480 times a second (gossip every 25 ms, checkpoint check every 50, scrub
 * tick every 50: ~9 ms of CPU a second per segment on this VM).
 */
const IDLE_TICKS_BEFORE_SLOW = 40
/** an idle segment's tick by default (openVolume's idleTickMs): its heartbeats, SCL refreshes and scrub pass starts wait up to this long */
const IDLE_TICK_MS = 500

export class SegmentNode {
  epoch = 0
  truncations: Truncation[] = []
  vdlKnown = 0
  /** lowest read point the writer still needs (PGMRPL); nothing at or above it is collected */
  horizon = 0
  /**
   * Durable read points below the horizon (snapshots, clones), ascending, as
   * the writer last said (kept in the meta file): a checkpoint folds each
   * page at every pin it passes, so the log can go while a read at a pin
   * still finds a version holding every record of the page at or below it.
   */
  pins: number[] = []
  readonly pgs = new Map<number, PgSegment>()
  readonly log: HotLog
  readonly pages: PageStore
  readonly clients = new Set<PortLike>()
  readonly peers = new Map<number, PortLike>()
  readonly peerScl = new Map<number, Map<number, number>>()
  readonly peerBase = new Map<number, Map<number, number>>()
  /** the segments of the quorum sets, as the writer last said (the first six until it says otherwise) */
  members = new Set<number>([0, 1, 2, 3, 4, 5])
  /**
   * Rebuilds in progress, per PG: the peer copying to us, its fold base (the
   * LSN of every image it sends), the last page received, when we asked.
   */
  readonly rebuilds = new Map<number, { peer: number; base: number; afterPage: number; askedAt: number; pages: number }>()
  filesSetAside: string | null = null
  readonly gapRequests = new Map<number, number>() // pg -> time requested
  /**
   * pg -> the first peer SCL seen ahead of ours in the current episode, and
   * when. Under load a peer is ahead all the time (the frame is on its way
   * from the writer), so a gap is asked for only once it outlived two gossip
   * rounds; asking at once made every segment scan, encode and send records
   * the writer was already delivering.
   */
  readonly #behind = new Map<number, { target: number; since: number }>()
  /**
   * peer id -> when it said it starts a checkpoint. A checkpoint runs in one
   * synchronous stretch (hundreds of ms on a big log) during which the
   * segment acks nothing; six segments fed the same frames reach their
   * threshold together, and six stalled at once stalled every write (seen:
   * a 0.75 s pause at 64 writers). So a segment waits while a peer
   * checkpoints (see #checkpoint for how long at most), and four are
   * usually left to ack.
   */
  readonly #peerCheckpoint = new Map<number, number>()
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
  #pendingFrames: Array<{ port: PortLike; seq: number; bytes: Buffer; h: ReturnType<typeof checkFrame> & {}; file: LogFileInfo; ext: FrameExtent }> = []
  #touched = new Set<number>()
  #flushScheduled = false
  #coalesceScheduled = false
  /** the one timer (see IDLE_TICKS_BEFORE_SLOW) */
  #timer: TimerHandle | undefined
  #slow = false
  #idleTicks = 0
  /** something arrived or changed since the last tick */
  #active = true
  #lastGossipAt = -Infinity
  #lastCheckpointAt = -Infinity
  #lastScrubAt = -Infinity
  /**
   * The scrubber's cursor: a pass walks every log frame (in file order, up to
   * where the log ended when the pass began), then every page version in the
   * index (a snapshot taken when the log part ends).
   */
  /** where the scrubber is; 'rest': the pass ended and the next starts scrubIntervalMs after `startedAt` */
  #scrub = { phase: 'log' as 'log' | 'pages' | 'rest', file: 0, frame: 0, endFile: 0, endFrame: 0, pages: [] as Array<[number, Version]>, page: 0, startedAt: 0 }
  /** frames arrived since the scrubber's last tick: it then does a quarter of its share (foreground first) */
  #framesSinceScrub = false
  /** damaged frames waiting for a peer to send their records again, by "file:offset" */
  readonly #frameRepairs = new Map<string, { file: LogFileInfo; ext: FrameExtent; askedAt: number; turn: number }>()
  #closed = false
  /**
   * A clone's pages whose records here start with no base under them (no
   * version, first record not an init): the parent's image at the clone LSN
   * is asked of the writer; until it comes they are neither built nor folded.
   * Value: when it was last asked (0: not yet).
   */
  readonly #needBase = new Map<number, number>()
  readonly #cache = new Map<number, { lsn: number; image: Uint8Array }>()
  #cacheBytes = 0
  #repairTurn = 0
  #repairAskedAt = 0
  s = {
    framesAppended: 0, coalesced: 0, gapFillRecords: 0, gcLogFiles: 0, corruptFrames: 0, tornTailBytes: 0, readsServed: 0, metaCorrupt: 0, repairedPages: 0, cacheHits: 0,
    scrubPasses: 0, scrubBytes: 0, scrubFrames: 0, scrubVersions: 0, scrubCorruptFrames: 0, scrubCorruptVersions: 0, scrubRepairedFrames: 0, buriedVersions: 0,
    rebuildPgsDone: 0, rebuildPagesCopied: 0, rebuildRestarts: 0, ioErrors: 0, basesReceived: 0, gossipSent: 0, gossipSkipped: 0, slowTicks: 0,
  }

  readonly cfg: SegmentConfig
  readonly #disk: Disk
  readonly #clock: Clock
  readonly #env: SegmentEnv

  constructor(cfg: SegmentConfig, env: SegmentEnv = { disk: realDisk, clock: realClock }) {
    this.cfg = cfg
    this.#env = env
    this.#disk = env.disk
    this.#clock = env.clock
    const root = cfg.dir
    const onCorrupt = (r: CorruptionReport) => env.onCorrupt?.(cfg.id, r)
    env.disk.mkdirp(root)
    this.metaPath = path.join(root, 'meta')
    this.log = new HotLog(path.join(root, 'log'), cfg.logFileBytes, env.disk, onCorrupt)
    this.pages = new PageStore(path.join(root, 'pages'), cfg.logFileBytes, env.disk, onCorrupt)
  }

  open(): void {
    const meta = this.#readMeta()
    if (meta) {
      this.epoch = meta.epoch
      this.truncations = meta.truncations
      this.vdlKnown = meta.vdlKnown
      this.pins = meta.pins ?? []
      for (const [pg, base] of meta.base) this.pgs.set(pg, new PgSegment(pg, base))
    }
    this.pages.open(meta?.pagesSynced ? new Map(meta.pagesSynced) : undefined)
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
      const st = this.pgs.get(Math.floor(pageId / this.cfg.pagesPerGroup))
      if (st && st.base > 0) this.pages.collectPage(pageId, st.base, this.pins)
    }
    for (const st of this.pgs.values()) for (const [page, chain] of st.chains) this.#noteDirty(page, chain)
    if (this.cfg.cloneLsn) for (const st of this.pgs.values()) for (const page of st.chains.keys()) this.#checkBase(page, st)
    this.#scrubStartPass()
    // The first tick comes one period in (as the first of each former interval did).
    const now = this.#clock.now()
    this.#lastGossipAt = this.#lastCheckpointAt = this.#lastScrubAt = now
    this.#arm(this.#baseTickMs)
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
    const pg = Math.floor(r[R_PAGE] / this.cfg.pagesPerGroup)
    const st = this.#pg(pg)
    if (file) noteRecord(file, pg, lsn)
    if (!st.insert(r)) return false
    this.#touched.add(pg)
    if (this.cfg.cloneLsn) this.#checkBase(r[R_PAGE], st)
    const newest = this.pages.newest(r[R_PAGE])
    if (!newest || newest.lsn < lsn) this.#setDirty(r[R_PAGE], (this.dirtyPages.get(r[R_PAGE]) ?? 0) + 1)
    return true
  }

  /** A clone's page: whether its records here lack the parent's image under them (see #needBase). */
  #checkBase(page: number, st: PgSegment): void {
    const chain = st.chains.get(page)
    const first = chain?.length ? st.records.get(chain[0]) : undefined
    if (first && !this.pages.newest(page) && recordOps(first)[0]?.[0] !== 0) {
      if (!this.#needBase.has(page)) this.#needBase.set(page, 0)
    } else this.#needBase.delete(page)
  }

  /** Asks every writer for the bases still missing (again after a while: a writer may have gone). */
  #askBases(): void {
    if (this.#needBase.size === 0 || this.clients.size === 0) return
    const now = this.#clock.now()
    const ask: number[] = []
    for (const [page, at] of this.#needBase) if (at === 0 || now - at > BASE_ASK_AGAIN_MS) { ask.push(page); this.#needBase.set(page, now) }
    if (ask.length) for (const port of this.clients) port.postMessage({ t: 'need-base', pageIds: ask } satisfies ClientReply)
  }

  /** Recounts the records of `page` above its newest version. */
  #noteDirty(page: number, chain: number[]): void {
    const newest = this.pages.newest(page)
    this.#setDirty(page, newest ? chain.length - firstAbove(chain, newest.lsn) : chain.length)
  }

  #setDirty(page: number, n: number): void {
    if (n > 0) this.dirtyPages.set(page, n)
    else this.dirtyPages.delete(page)
    if (n >= this.cfg.coalesceThreshold) this.#coalesceReady.add(page)
    else this.#coalesceReady.delete(page)
  }

  #sclList(pgs?: Iterable<number>): SclList {
    const out: SclList = []
    if (pgs) { for (const pg of pgs) { const st = this.pgs.get(pg); if (st) out.push([pg, st.sclSynced]) } }
    else for (const st of this.pgs.values()) out.push([st.pg, st.sclSynced])
    return out
  }

  // ---------------------------------------------------------------- writer requests

  onClient(port: PortLike, m: ClientRequest): void {
    if (this.#closed) return
    // Reads, stats and the writer's unchanged pins tell the timer nothing new.
    if (m.t !== 'read' && m.t !== 'stats' && m.t !== 'pins' && !(m.t === 'horizon' && m.lsn <= this.horizon)) this.#wake()
    const reply = (msg: ClientReply, transfer?: ArrayBuffer[]) => port.postMessage(msg, transfer ?? [])
    switch (m.t) {
      case 'frame': {
        if (m.epoch < this.epoch) return reply({ t: 'fenced', seq: m.seq, epoch: this.epoch })
        if (m.epoch > this.epoch) return reply({ t: 'error', message: `frame of epoch ${m.epoch} before hello (segment at epoch ${this.epoch})` })
        const bytes = Buffer.from(m.frame.buffer, m.frame.byteOffset, m.frame.byteLength)
        if (m.pins) this.#setPins(m.pins)
        if (m.horizon !== undefined && m.horizon > this.horizon) this.horizon = m.horizon
        const h = checkFrame(bytes)
        if (!h) { this.s.corruptFrames++; return reply({ t: 'error', message: `frame ${m.seq} failed its checksum in transit` }) }
        // Appended now, decoded and indexed in #flush after the fdatasync: the
        // decode of one segment overlaps the disk wait of the others.
        let appended: ReturnType<HotLog['append']>
        try {
          appended = this.log.append(bytes)
        } catch (err) {
          // An operating error (a full disk): not appended, so not acked; the writer's quorum goes on without us.
          this.s.ioErrors++
          return reply({ t: 'error', message: `segment ${this.cfg.id}: frame ${m.seq} not appended: ${(err as Error).message}` })
        }
        const { file, ext } = appended
        this.s.framesAppended++
        this.#framesSinceScrub = true
        this.#pendingFrames.push({ port, seq: m.seq, bytes, h, file, ext })
        this.#scheduleFlush()
        return
      }
      case 'horizon':
        if (m.epoch !== this.epoch) return
        if (m.pins) this.#setPins(m.pins)
        if (m.lsn > this.horizon) this.horizon = m.lsn
        return
      case 'pins':
        if (m.epoch >= this.epoch) this.#setPins(m.pins)
        return
      case 'read': {
        if (m.epoch < this.epoch) return reply({ t: 'fenced', id: m.id, epoch: this.epoch })
        const r = this.#read(m.pageId, m.at, m.need)
        if (typeof r === 'string') return reply({ t: 'read-fail', id: m.id, reason: r as 'not-ready', detail: `segment ${this.cfg.id}: ${r} for page ${m.pageId} at ${m.at} (need ${m.need})` })
        this.s.readsServed++
        const ab = r.buffer.byteLength === r.byteLength && r.byteOffset === 0 && !(r.buffer instanceof SharedArrayBuffer) ? r.buffer as ArrayBuffer : new Uint8Array(r).buffer
        return reply({ t: 'page', id: m.id, image: new Uint8Array(ab) }, [ab])
      }
      case 'members':
        if (m.epoch === this.epoch) this.members = new Set(m.members)
        return
      case 'hello':
      case 'recover':
      case 'truncate': {
        if (m.epoch < this.epoch) return reply({ t: 'fenced', id: m.id, epoch: this.epoch })
        if (m.members) this.members = new Set(m.members)
        if (m.pins) this.#setPins(m.pins)
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
      case 'base': {
        if (m.epoch < this.epoch || !this.cfg.cloneLsn || m.lsn !== this.cfg.cloneLsn || m.image.length !== this.cfg.pageSize) return
        if (!this.#needBase.has(m.pageId) || this.pages.versionAtOrBelow(m.pageId, m.lsn)) return
        this.pages.append(m.pageId, m.lsn, m.image)
        this.#needBase.delete(m.pageId)
        this.s.basesReceived++
        const st = this.pgs.get(Math.floor(m.pageId / this.cfg.pagesPerGroup))
        if (st) this.#noteDirty(m.pageId, st.chains.get(m.pageId) ?? [])
        return
      }
      case 'page-ids': {
        const ids = new Set<number>()
        for (const [pageId, vs] of this.pages.index) if (vs.length && vs[vs.length - 1].lsn > m.since) ids.add(pageId)
        for (const st of this.pgs.values()) for (const [pageId, chain] of st.chains) if (chain.length && chain[chain.length - 1] > m.since) ids.add(pageId)
        return reply({ t: 'page-ids-ok', id: m.id, pageIds: [...ids].sort((a, b) => a - b) })
      }
      case 'log-range': {
        const folded = [...this.pgs.values()].find(st => st.base > m.from)
        if (folded) return reply({ t: 'log-range-ok', id: m.id, frame: null, upto: m.from, records: 0, detail: `segment ${this.cfg.id}: protection group ${folded.pg} is folded to ${folded.base}, above ${m.from}` })
        let records: RecordTuple[] = []
        for (const st of this.pgs.values()) for (const r of st.range(m.from, m.to, Infinity)) records.push(r)
        records.sort((a, b) => a[R_LSN] - b[R_LSN])
        let upto = m.to
        if (records.length > m.maxRecords) { records = records.slice(0, m.maxRecords); upto = records[records.length - 1][R_LSN] }
        const frame = encodeFrame({ epoch: this.epoch, vdl: upto, records })
        const ab = new Uint8Array(frame).buffer as ArrayBuffer
        return reply({ t: 'log-range-ok', id: m.id, frame: new Uint8Array(ab), upto, records: records.length }, [ab])
      }
    }
  }

  /** The writer's durable read points; kept in the meta file before anything is folded past them. */
  #setPins(pins: number[]): void {
    // They ride with every horizon: the usual case (unchanged) allocates nothing.
    if (pins.length === this.pins.length && pins.every((p, i) => p === this.pins[i])) return
    this.pins = [...new Set(pins)].sort((a, b) => a - b)
    this.#writeMeta()
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
  #read(pageId: number, at: number, need: number): Uint8Array | 'not-ready' | 'corrupt' | 'below-horizon' | 'absent' | 'need-base' {
    const pg = Math.floor(pageId / this.cfg.pagesPerGroup)
    const st = this.pgs.get(pg)
    if ((st ? st.scl : 0) < need) return 'not-ready'
    // Below the fold base the records are gone: only a read point older than the writer's
    // horizon is refused as such; a rebuilt segment's base can lie above a live read point,
    // and then another segment serves it.
    // A pinned read point below the fold base: the checkpoints folded at it (a page without a
    // version at or below it had no record there).
    if (st && at < st.base && !this.pins.includes(at)) {
      if (at < this.horizon && !this.pages.versionAtOrBelow(pageId, at) && this.pages.index.has(pageId)) return 'below-horizon'
      if (at >= this.horizon) return 'not-ready'
    }
    if (this.cfg.cloneLsn && !this.pagesSuspect && !this.damagedPages.has(pageId) && !this.pages.versionAtOrBelow(pageId, at)) {
      const chain = st?.chains.get(pageId)
      const cached = this.#cache.get(pageId)
      if ((!chain || !chain.length || chain[0] > at) && !(cached && cached.lsn <= at)) return 'absent'
      if (this.#needBase.has(pageId)) return 'need-base'
    }
    const built = this.#build(pageId, at, st)
    if (built === null) return 'corrupt'
    if (built.applied >= this.cfg.coalesceThreshold && built.last <= this.vdlKnown && st && built.last <= st.sclSynced) {
      this.pages.append(pageId, built.last, built.image) // lazy materialization on read
      this.s.coalesced++
      this.#noteDirty(pageId, st.chains.get(pageId) ?? [])
    }
    return built.image
  }

  #build(pageId: number, at: number, st: PgSegment | undefined): { image: Uint8Array; applied: number; last: number } | null {
    if (this.pagesSuspect || at < (this.damagedPages.get(pageId) ?? -1)) return null
    // A clone's page without the parent's image under its records cannot be built yet.
    if (this.#needBase.has(pageId)) return null
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
        this.#versionDamaged(pageId, v)
        return null
      }
      image = img
      from = v.lsn
    } else {
      image = new Uint8Array(this.cfg.pageSize)
    }
    let applied = 0
    let last = from
    const chain = st?.chains.get(pageId)
    if (chain) {
      let i = firstAbove(chain, from)
      for (; i < chain.length && chain[i] <= at; i++) {
        st!.records.applyOps(chain[i], image)
        applied++
        last = chain[i]
      }
    }
    last = Math.max(last, 0)
    if (!cached || last > cached.lsn) this.#cachePut(pageId, last, image)
    return { image, applied, last }
  }

  /** A version entry that came from a peer: both checksums, the page, the LSN and the size; null (counted) when any fails. */
  #checkEntry(entry: Uint8Array, pageId: number, lsn: number): Uint8Array | null {
    const bytes = Buffer.from(entry.buffer, entry.byteOffset, entry.byteLength)
    const h = bytes.length >= VERSION_HEADER_BYTES ? readVersionHeader(bytes, 0) : null
    const image = h && h !== 'zero' ? decodeVersionBody(h, bytes.subarray(VERSION_HEADER_BYTES)) : null
    if (!h || h === 'zero' || !image || h.pageId !== pageId || h.lsn !== lsn || image.length !== this.cfg.pageSize) {
      this.pages.corruptVersions++
      return null
    }
    return image
  }

  /** A version failed its checksum: forget it, refuse the page here until a peer sends an intact image. */
  #versionDamaged(pageId: number, v: Version): void {
    this.pages.discard(pageId, v)
    this.#cacheDrop(pageId)
    this.damagedPages.set(pageId, Infinity)
    this.#requestRepair(pageId)
  }

  /**
   * A bounded cache of the newest image built of each page (LRU by bytes).
   * An entry at LSN c is the page with every record at or below c applied;
   * records are only ever truncated above a VDL and images are built only
   * at read points at or below one, so an entry never goes stale except by
   * truncation, which clears the cache.
   */
  #cachePut(pageId: number, lsn: number, image: Uint8Array): void {
    if (this.cfg.pageCacheBytes <= 0) return
    const old = this.#cache.get(pageId)
    if (old) { this.#cache.delete(pageId); this.#cacheBytes -= old.image.length }
    this.#cache.set(pageId, { lsn, image: new Uint8Array(image) })
    this.#cacheBytes += image.length
    for (const [id, e] of this.#cache) {
      if (this.#cacheBytes <= this.cfg.pageCacheBytes) break
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
      const st = this.pgs.get(Math.floor(page / this.cfg.pagesPerGroup))
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
    // A hot page's chain holds every record since the last checkpoint (the TPC-B branch row: one a transaction).
    const at = firstAbove(chain, limit)
    if (at === 0) return false
    const last = chain[at - 1]
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
    this.#clock.setTimeout(() => this.#coalesce(), 1)
  }

  // ---------------------------------------------------------------- durability

  #scheduleFlush(): void {
    if (this.#flushScheduled) return
    this.#flushScheduled = true
    this.#clock.setImmediate(() => this.#flush())
  }

  #flush(): void {
    this.#flushScheduled = false
    if (this.#closed) return
    if (!plantedBugs.ackBeforeFsync) this.log.sync()
    const frames = this.#pendingFrames
    this.#pendingFrames = []
    const acks: Array<{ port: PortLike; seq: number }> = []
    for (const f of frames) {
      const payload = decodeCheckedFrame(f.bytes, f.h)
      // Checksums passed but the payload does not decode: not acked (on replay the frame is skipped as damaged).
      if (!payload) { this.s.corruptFrames++; f.port.postMessage({ t: 'error', message: `frame ${f.seq} does not decode` } satisfies ClientReply); continue }
      if (payload.vdl > this.vdlKnown) this.vdlKnown = payload.vdl
      for (const r of payload.records) this.#insert(r, f.file)
      f.ext.recs = frameRecs(payload.records)
      acks.push(f)
    }
    const touched = [...this.#touched]
    this.#touched.clear()
    for (const pg of touched) { const st = this.pgs.get(pg)!; st.sclSynced = st.scl }
    const scl = this.#sclList(touched)
    const byPort = new Map<PortLike, number[]>()
    for (const a of acks) {
      let seqs = byPort.get(a.port)
      if (!seqs) { seqs = []; byPort.set(a.port, seqs) }
      seqs.push(a.seq)
    }
    for (const [port, seqs] of byPort) port.postMessage({ t: 'ack', seqs, scl, epoch: this.epoch } satisfies ClientReply)
    if (this.#needBase.size) this.#askBases()
    // SCLs that moved without a frame (gap fill) are pushed to every writer.
    if (scl.length) for (const port of this.clients) if (!byPort.has(port)) port.postMessage({ t: 'scl', scl, epoch: this.epoch } satisfies ClientReply)
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
    // A clone's records with no base under them cannot be folded yet.
    if (this.#needBase.size) return
    if (this.log.liveBytes < this.cfg.checkpointLogBytes) return
    // Every other member must have spoken at least once: a record one of them still lacks is never folded away.
    const others = [...this.members].filter(id => id !== this.cfg.id)
    if (others.some(id => !this.peerScl.has(id))) return
    const foldTo = new Map<number, number>()
    for (const st of this.pgs.values()) {
      let c = Math.min(st.sclSynced, this.vdlKnown, this.horizon)
      for (const id of others) c = Math.min(c, this.peerScl.get(id)!.get(st.pg) ?? 0)
      foldTo.set(st.pg, c)
    }
    const victims = this.log.files.slice(0, -1).filter(f => {
      for (const [pg, max] of f.maxLsnByPg) if (max > (foldTo.get(pg) ?? 0)) return false
      return true
    })
    if (victims.length === 0) return
    const now = this.#clock.now()
    let busy = 0
    for (const [id, at] of this.#peerCheckpoint) {
      if (this.peers.has(id) && now - at < CHECKPOINT_WORD_MS) busy++
      else this.#peerCheckpoint.delete(id)
    }
    // Their turn first, while the log is not too far past the threshold; a log twice over goes
    // beside one other, four times over beside any (no segment waits for ever under a write load
    // that keeps every peer folding).
    const over = this.log.liveBytes / this.cfg.checkpointLogBytes
    if ((busy === 1 && over < 2) || (busy >= 2 && over < 4)) return
    this.#gossipScl(true)
    try {
      this.#fold(foldTo, victims)
    } finally {
      // Done: the next gossip clears the word; say it now so a waiting peer need not wait for it.
      if (!this.#closed) this.#gossipScl()
    }
  }

  #fold(foldTo: Map<number, number>, victims: LogFileInfo[]): void {
    const newBase = new Map<number, number>()
    for (const st of this.pgs.values()) {
      const c = foldTo.get(st.pg)!
      const tail = st.tailAtOrBelow(c)
      newBase.set(st.pg, tail)
      // Each pin the fold passes gets its own version of every page changed before it.
      for (const pin of this.pins) if (pin >= st.base && pin < tail) for (const [page] of st.chains) this.#materialize(page, st, pin)
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
    this.pages.collect(Math.min(this.horizon, this.vdlKnown), this.pins)
    const emptied = this.pages.compact()
    // The copies are synced and recorded as durable before the files they came from go.
    if (emptied.length) { this.pages.sync(); this.#writeMeta(); this.pages.removeFiles(emptied) }
  }

  #metaValue(): Meta {
    return { epoch: this.epoch, truncations: this.truncations, vdlKnown: this.vdlKnown, base: [...this.pgs.values()].map(st => [st.pg, st.base]), pagesSynced: this.pages.syncedExtents(), pins: this.pins }
  }

  /**
   * The meta file is written twice (`meta`, then `meta.2`), each by
   * temp-file + fsync + rename, so one damaged copy is never the only one.
   */
  #writeMeta(meta: Meta = this.#metaValue()): void {
    const bytes = encodeMeta(meta)
    for (const p of [this.metaPath, this.metaPath + '.2']) writeFileDurable(this.#disk, p, bytes, this.cfg.dir)
  }

  #readMeta(): Meta | null {
    let found = false
    for (const p of [this.metaPath, this.metaPath + '.2']) {
      if (!this.#disk.exists(p)) continue
      found = true
      const m = decodeMeta<Meta>(this.#disk.readFile(p))
      if (m) return m
      this.s.metaCorrupt++
      this.#env.onCorrupt?.(this.cfg.id, { path: p, off: 0, len: 0, kind: 'meta' })
    }
    if (found) this.pagesSuspect = true // both copies lost: fold bases unknown, serve nothing until rebuilt
    return null
  }

  // ---------------------------------------------------------------- timer

  get #checkpointEveryMs(): number { return Math.max(20, this.cfg.gossipIntervalMs * 2) }
  get #idleTickMs(): number { return this.cfg.idleTickMs ?? IDLE_TICK_MS }
  get #baseTickMs(): number { return Math.min(this.cfg.gossipIntervalMs, this.#checkpointEveryMs, SCRUB_TICK_MS) }

  /** (Re)sets the one timer: never two chains of ticks. */
  #arm(ms: number): void {
    this.#clock.clearTimeout(this.#timer)
    this.#timer = this.#clock.setTimeout(() => this.#tick(), ms)
  }

  #tick(): void {
    this.#timer = undefined
    if (this.#closed) return
    const now = this.#clock.now()
    const slack = this.#baseTickMs / 2
    const active = this.#active
    this.#active = false
    let done = false
    try {
      if (this.#slow || now - this.#lastGossipAt >= this.cfg.gossipIntervalMs - slack) { this.#lastGossipAt = now; this.#gossip() }
      if (!this.#closed && (this.#slow || now - this.#lastCheckpointAt >= this.#checkpointEveryMs - slack)) { this.#lastCheckpointAt = now; this.#checkpoint() }
      if (!this.#closed && (this.#slow || now - this.#lastScrubAt >= SCRUB_TICK_MS - slack)) { this.#lastScrubAt = now; this.#scrubTick() }
      done = true
    } finally {
      // A tick that threw (the environment reports it) does not stop the ones after it.
      if (!done && !this.#closed) this.#arm(this.#baseTickMs)
    }
    if (this.#closed) return
    this.#idleTicks = !active && !this.#active && this.#settled() ? this.#idleTicks + 1 : 0
    this.#slow = this.#idleTicks >= IDLE_TICKS_BEFORE_SLOW && this.#idleTickMs > 0
    this.s.slowTicks += this.#slow ? 1 : 0
    // A slow tick still comes in time for the next scrub pass.
    const passDue = this.#scrub.startedAt + this.cfg.scrubIntervalMs - now
    this.#arm(this.#slow ? Math.max(this.#baseTickMs, Math.min(this.#idleTickMs, passDue)) : this.#baseTickMs)
  }

  /** Something arrived or changed: tick at full speed again (now, if the timer is slow). */
  #wake(): void {
    this.#active = true
    this.#idleTicks = 0
    if (!this.#slow || this.#closed) return
    this.#slow = false
    this.#arm(this.#baseTickMs)
  }

  /** Nothing under way and nothing to tell: converged with every peer, no scrub pass, no pending flush or fold. */
  #settled(): boolean {
    if (this.#scrub.phase !== 'rest' || this.#flushScheduled || this.#coalesceScheduled || this.#pendingFrames.length || this.#coalesceReady.size) return false
    return this.#converged()
  }

  // ---------------------------------------------------------------- gossip

  #gossip(): void {
    this.#askBases()
    if (this.#closed) return
    // Every SCL, to every writer, now and then: a report lost on the way (a lossy transport) is
    // otherwise never repeated for a PG that nothing writes any more. Counted in time, so a
    // segment whose timer is slow repeats itself as often.
    const now = this.#clock.now()
    if (now - this.#lastRefreshAt >= SCL_REFRESH_PERIODS * this.cfg.gossipIntervalMs && this.clients.size) {
      this.#lastRefreshAt = now
      const scl = this.#sclList()
      for (const port of this.clients) port.postMessage({ t: 'scl', scl, epoch: this.epoch } satisfies ClientReply)
    }
    if (this.#quiet()) this.s.gossipSkipped++
    else this.#gossipScl()
    if (this.rebuilds.size) {
      const now = this.#clock.now()
      for (const [pg, rb] of this.rebuilds) if (now - rb.askedAt > GAP_FILL_TIMEOUT_MS * 4) this.#restartRebuild(pg, 'no answer')
    }
    if (this.#frameRepairs.size) {
      const now = this.#clock.now()
      for (const [key, r] of this.#frameRepairs) if (now - r.askedAt > GAP_FILL_TIMEOUT_MS) this.#askFrameFix(key)
    }
    if (this.damagedPages.size && this.#clock.now() - this.#repairAskedAt > GAP_FILL_TIMEOUT_MS) {
      this.#repairAskedAt = this.#clock.now()
      for (const [pageId, from] of this.damagedPages) if (from === Infinity) this.#requestRepair(pageId)
    }
  }

  /** This segment's SCLs, fold bases and truncations, for the peers; `ckpt`: it starts a checkpoint now. */
  #sclMessage(ckpt = false): Extract<GossipMessage, { t: 'g-scl' }> {
    const m: Extract<GossipMessage, { t: 'g-scl' }> = { t: 'g-scl', from: this.cfg.id, epoch: this.epoch, truncations: this.truncations, scl: this.#sclList(), bases: this.#baseList() }
    if (ckpt) m.ckpt = true
    return m
  }

  #gossipScl(ckpt = false): void {
    const msg = this.#sclMessage(ckpt)
    this.#lastGossip = { sig: gossipSig(msg), at: this.#clock.now() }
    this.s.gossipSent++
    for (const port of this.peers.values()) port.postMessage(msg)
  }

  #lastGossip = { sig: '', at: -Infinity }
  #lastRefreshAt = -Infinity

  /** Nothing to tell: see QUIET_GOSSIP_PERIODS. Never while repairing or rebuilding, nor while a peer is unheard or reported other SCLs (behind or ahead). */
  #quiet(): boolean {
    const last = this.#lastGossip
    if (this.#clock.now() - last.at >= QUIET_GOSSIP_PERIODS * this.cfg.gossipIntervalMs || !this.#converged()) return false
    return gossipSig(this.#sclMessage()) === last.sig
  }

  /** No repair, rebuild or checkpoint under way here or at a peer, and every peer last reported the SCLs this segment has. */
  #converged(): boolean {
    if (this.pagesSuspect) return false
    if (this.rebuilds.size || this.#frameRepairs.size || this.#needBase.size || this.#peerCheckpoint.size) return false
    for (const from of this.damagedPages.values()) if (from === Infinity) return false // a page waiting for a peer's image
    for (const id of this.members) {
      if (id === this.cfg.id) continue
      const theirs = this.peerScl.get(id)
      if (!theirs || theirs.size !== this.pgs.size) return false
      for (const st of this.pgs.values()) if (theirs.get(st.pg) !== st.sclSynced) return false
    }
    return true
  }

  /** Asks a peer (a different one each time) for an intact image of a damaged page at this segment's fold point. */
  #requestRepair(pageId: number): void {
    const peers = [...this.peers.entries()]
    if (peers.length === 0) return
    const [, port] = peers[(this.#repairTurn++) % peers.length]
    const st = this.pgs.get(Math.floor(pageId / this.cfg.pagesPerGroup))
    port.postMessage({ t: 'g-page-req', from: this.cfg.id, epoch: this.epoch, pageId, after: st?.base ?? 0 } satisfies GossipMessage)
  }

  onPeer(m: GossipMessage): void {
    if (this.#closed) return
    const port = this.peers.get(m.from)
    if (!port) return
    if (m.epoch < this.epoch) {
      port.postMessage(this.#sclMessage())
      return
    }
    if (m.t !== 'g-scl' || m.ckpt || m.epoch !== this.epoch || m.truncations.length !== this.truncations.length || !sameScl(this.peerScl.get(m.from), m.scl)) this.#wake()
    if (m.t === 'g-scl') {
      if (m.ckpt) this.#peerCheckpoint.set(m.from, this.#clock.now())
      else this.#peerCheckpoint.delete(m.from)
      if (m.epoch > this.epoch || m.truncations.length > this.truncations.length) this.#adopt(m.epoch, m.truncations)
      this.peerScl.set(m.from, new Map(m.scl))
      this.peerBase.set(m.from, new Map(m.bases ?? []))
      if (this.pagesSuspect) this.#rebuildSuspect(m.from, m.scl)
      const now = this.#clock.now()
      for (const [pg, scl] of m.scl) {
        const st = this.#pg(pg)
        if (scl <= st.scl) continue
        if (this.rebuilds.has(pg)) continue
        if (this.#needsRebuild(pg, st)) { this.#startRebuild(pg, m.from); continue }
        const behind = this.#behind.get(pg)
        if (!behind || behind.target <= st.scl) { this.#behind.set(pg, { target: scl, since: now }); continue }
        if (now - behind.since < 2 * this.cfg.gossipIntervalMs) continue
        const asked = this.gapRequests.get(pg)
        if (asked !== undefined && now - asked < GAP_FILL_TIMEOUT_MS) continue
        this.gapRequests.set(pg, now)
        port.postMessage({ t: 'g-req', from: this.cfg.id, epoch: this.epoch, pg, after: st.scl, upto: scl } satisfies GossipMessage)
      }
      return
    }
    if (m.epoch > this.epoch) return // wait for its g-scl, which carries the truncations
    if (m.t === 'g-req') {
      const st = this.pgs.get(m.pg)
      const records = st ? st.range(m.after, Math.min(m.upto, st.sclSynced), GAP_FILL_RECORDS_MAX) : []
      port.postMessage({ t: 'g-rec', from: this.cfg.id, epoch: this.epoch, pg: m.pg, frame: encodeFrame({ epoch: this.epoch, vdl: 0, records }) } satisfies GossipMessage)
      return
    }
    if (m.t === 'g-page-req') {
      // Build the page at the requester's fold point, or at ours if we folded further:
      // the requester holds every record of the PG above its own fold point.
      const st = this.pgs.get(Math.floor(m.pageId / this.cfg.pagesPerGroup))
      const lsn = Math.max(m.after, st?.base ?? 0)
      let image: Uint8Array | null = null
      if (!this.pagesSuspect && (st ? st.sclSynced : 0) >= lsn && lsn <= this.vdlKnown) image = this.#build(m.pageId, lsn, st)?.image ?? null
      port.postMessage({ t: 'g-page', from: this.cfg.id, epoch: this.epoch, pageId: m.pageId, lsn, entry: image ? encodeVersion(m.pageId, lsn, image) : null } satisfies GossipMessage)
      return
    }
    if (m.t === 'g-page') {
      const st = this.pgs.get(Math.floor(m.pageId / this.cfg.pagesPerGroup))
      if (!m.entry || this.damagedPages.get(m.pageId) !== Infinity || m.lsn < (st?.base ?? 0)) return
      const image = this.#checkEntry(m.entry, m.pageId, m.lsn)
      if (!image) return
      this.pages.append(m.pageId, m.lsn, image)
      this.pages.sync()
      this.damagedPages.set(m.pageId, m.lsn)
      this.s.repairedPages++
      // The intact image is durable: the damaged entries can go for good.
      this.s.buriedVersions += this.pages.buryDamaged(m.pageId, this.cfg.pageSize)
      this.#writeMeta() // its file length is recorded as synced: damage there later is corruption, not a torn append
      return
    }
    if (m.t === 'g-fix-req') {
      // Every asked record, from memory (verified when its frame was decoded), or nothing.
      const records: RecordTuple[] = []
      for (const [lsn, pageId] of m.recs) {
        const r = this.pgs.get(Math.floor(pageId / this.cfg.pagesPerGroup))?.records.get(lsn)
        if (!r || r[R_PAGE] !== pageId) { port.postMessage({ t: 'g-fix', from: this.cfg.id, epoch: this.epoch, key: m.key, frame: null } satisfies GossipMessage); return }
        records.push(r)
      }
      port.postMessage({ t: 'g-fix', from: this.cfg.id, epoch: this.epoch, key: m.key, frame: encodeFrame({ epoch: this.epoch, vdl: this.vdlKnown, records }) } satisfies GossipMessage)
      return
    }
    if (m.t === 'g-fix') {
      this.#onFrameFix(m.key, m.frame)
      return
    }
    if (m.t === 'g-rb-req') {
      port.postMessage(this.#rebuildChunk(m.pg, m.afterPage, m.at))
      return
    }
    if (m.t === 'g-rb-pages') {
      this.#onRebuildChunk(m)
      return
    }
    if (m.t === 'g-rec') {
      this.gapRequests.delete(m.pg)
      // Nothing that arrives is kept before its checksums pass (invariant 7).
      const payload = plantedBugs.gapFillUnverified ? decodeFrameUnchecked(m.frame) : decodeFrame(m.frame)
      if (!payload) { this.s.corruptFrames++; return }
      const fresh = payload.records.filter(r => !inRanges(r[R_LSN], this.truncations) && !(this.pgs.get(m.pg)?.records.has(r[R_LSN])) && r[R_LSN] > (this.pgs.get(m.pg)?.base ?? 0))
      if (fresh.length === 0) return
      const frame = encodeFrame({ epoch: this.epoch, vdl: this.vdlKnown, records: fresh })
      const { file, ext } = this.log.append(frame)
      ext.recs = frameRecs(fresh)
      for (const r of fresh) this.#insert(r, file)
      this.s.gapFillRecords += fresh.length
      this.#scheduleFlush()
    }
  }

  // ---------------------------------------------------------------- rebuild

  #baseList(): SclList {
    const out: SclList = []
    for (const st of this.pgs.values()) out.push([st.pg, st.base])
    return out
  }

  /**
   * A PG must be rebuilt from page versions when no peer can fill its gap
   * with records: every peer that is ahead of us has already folded (and
   * deleted the log of) the records just above our SCL. This is the case of
   * a segment whose files were lost, or that was down while its peers
   * checkpointed.
   */
  #needsRebuild(pg: number, st: PgSegment): boolean {
    let ahead = 0
    for (const [peer, scls] of this.peerScl) {
      if ((scls.get(pg) ?? 0) <= st.scl) continue
      ahead++
      if ((this.peerBase.get(peer)?.get(pg) ?? 0) <= st.scl) return false // this one still has the records
    }
    return ahead > 0
  }

  /**
   * A segment whose page files hold damage it cannot place (pagesSuspect)
   * serves no page until every PG has been rebuilt from a peer: the images
   * copied at the peer's point replace whatever its own versions said, and
   * reads below that point go to other segments.
   */
  #rebuildSuspect(peer: number, scl: SclList): void {
    for (const [pg] of scl) if (!this.#suspectRebuilt.has(pg) && !this.rebuilds.has(pg)) this.#startRebuild(pg, peer)
    for (const pg of this.pgs.keys()) if (!this.#suspectRebuilt.has(pg)) return
    for (const [pg] of scl) if (!this.#suspectRebuilt.has(pg)) return
    this.pagesSuspect = false
    this.#suspectRebuilt.clear()
  }

  readonly #suspectRebuilt = new Set<number>()

  #startRebuild(pg: number, peer: number): void {
    this.rebuilds.set(pg, { peer, base: -1, afterPage: -1, askedAt: this.#clock.now(), pages: 0 })
    this.peers.get(peer)?.postMessage({ t: 'g-rb-req', from: this.cfg.id, epoch: this.epoch, pg, afterPage: -1, at: -1 } satisfies GossipMessage)
  }

  /** Drops a rebuild in progress (the images copied so far stay as ordinary versions); gossip starts it again. */
  #restartRebuild(pg: number, _why: string): void {
    this.rebuilds.delete(pg)
    this.s.rebuildRestarts++
  }

  /**
   * Serves a rebuild: images of up to REBUILD_CHUNK_PAGES pages of `pg`
   * above `afterPage`, all as of one LSN `at` (on the first chunk, our
   * complete and durable point min(SCL, known VDL)). Fails when some page
   * can no longer be built there (we folded past `at`, or a version is
   * damaged): the requester starts over.
   */
  #rebuildChunk(pg: number, afterPage: number, at: number): GossipMessage {
    const st = this.pgs.get(pg)
    // The base must be a record of the PG (or its fold base): the requester's chain continues from it.
    const lsn = at >= 0 ? at : st ? st.tailAtOrBelow(Math.min(st.sclSynced, this.vdlKnown)) : 0
    const reply = { t: 'g-rb-pages' as const, from: this.cfg.id, epoch: this.epoch, pg, base: lsn, afterPage, versions: [] as Uint8Array[], done: true, failed: false }
    if (!st || this.pagesSuspect || this.rebuilds.has(pg) || lsn < st.base || lsn > st.sclSynced || lsn > this.vdlKnown) return { ...reply, failed: true }
    const lo = pg * this.cfg.pagesPerGroup
    const ids = new Set<number>()
    for (const id of this.pages.index.keys()) if (id > afterPage && id >= lo && id < lo + this.cfg.pagesPerGroup) ids.add(id)
    for (const id of st.chains.keys()) if (id > afterPage) ids.add(id)
    let last = afterPage
    for (const pageId of [...ids].sort((a, b) => a - b)) {
      if (reply.versions.length >= REBUILD_CHUNK_PAGES) { reply.done = false; break }
      last = pageId
      // With records folded away, a page is buildable at `lsn` only from a version at or below it.
      if (st.base > 0 && this.pages.index.has(pageId) && !this.pages.versionAtOrBelow(pageId, lsn)) return { ...reply, failed: true }
      // The page as of each pin below the base too: a read at a snapshot or a clone LSN must find it here.
      for (const pin of this.pins) {
        if (pin >= lsn) break
        if (pin < st.base && !this.pages.versionAtOrBelow(pageId, pin)) continue // the page did not exist there
        const old = this.#build(pageId, pin, st)
        if (!old) return { ...reply, failed: true }
        reply.versions.push(encodeVersion(pageId, pin, old.image))
      }
      const built = this.#build(pageId, lsn, st)
      if (!built) return { ...reply, failed: true }
      reply.versions.push(encodeVersion(pageId, lsn, built.image))
    }
    return { ...reply, afterPage: last }
  }

  /**
   * One chunk of a rebuild: every entry is checked (header and body
   * checksums, the PG, the base) and appended as a page version; after the
   * last chunk the versions are synced, the PG's fold base moves to the
   * peer's (records at or below it are dropped: the images hold them), the
   * meta file records it, and the SCL is recomputed from there, so ordinary
   * gap fill brings the records above it.
   */
  #onRebuildChunk(m: Extract<GossipMessage, { t: 'g-rb-pages' }>): void {
    const rb = this.rebuilds.get(m.pg)
    if (!rb || rb.peer !== m.from) return
    if (m.failed || (rb.base >= 0 && m.base !== rb.base)) return this.#restartRebuild(m.pg, m.failed ? 'peer failed' : 'peer folded further')
    // Images older than our own fold base would hide the records folded in between.
    if (m.base < (this.pgs.get(m.pg)?.base ?? 0)) return this.#restartRebuild(m.pg, 'peer behind our fold base')
    rb.base = m.base
    const lo = m.pg * this.cfg.pagesPerGroup
    for (const entry of m.versions) {
      const bytes = Buffer.from(entry.buffer, entry.byteOffset, entry.byteLength)
      const h = bytes.length >= VERSION_HEADER_BYTES ? readVersionHeader(bytes, 0) : null
      const image = h && h !== 'zero' ? decodeVersionBody(h, bytes.subarray(VERSION_HEADER_BYTES)) : null
      if (!h || h === 'zero' || !image || (h.lsn !== rb.base && !(h.lsn < rb.base && this.pins.includes(h.lsn))) || h.pageId < lo || h.pageId >= lo + this.cfg.pagesPerGroup || image.length !== this.cfg.pageSize) {
        this.pages.corruptVersions++
        return this.#restartRebuild(m.pg, 'bad image')
      }
      this.pages.append(h.pageId, h.lsn, image)
      this.#cacheDrop(h.pageId)
      rb.pages++
      this.s.rebuildPagesCopied++
    }
    if (!m.done) {
      rb.afterPage = m.afterPage
      rb.askedAt = this.#clock.now()
      this.peers.get(rb.peer)?.postMessage({ t: 'g-rb-req', from: this.cfg.id, epoch: this.epoch, pg: m.pg, afterPage: m.afterPage, at: rb.base } satisfies GossipMessage)
      return
    }
    this.pages.sync()
    const st = this.#pg(m.pg)
    if (this.pagesSuspect) this.#suspectRebuilt.add(m.pg)
    // The peer served images at rb.base only if rb.base was at or below the VDL it knew: so is ours now.
    if (rb.base > this.vdlKnown) this.vdlKnown = rb.base
    if (rb.base > st.base) {
      st.fold(rb.base)
      st.rebuildChain()
      for (const pageId of [...this.damagedPages.keys()]) if (Math.floor(pageId / this.cfg.pagesPerGroup) === m.pg) this.damagedPages.delete(pageId)
      for (const [page, chain] of st.chains) this.#noteDirty(page, chain)
    }
    this.#writeMeta() // the new base, and the copied images' file lengths as synced
    this.rebuilds.delete(m.pg)
    this.s.rebuildPgsDone++
    this.#touched.add(m.pg)
    this.#scheduleFlush() // the SCL it reports moves once the next sync covers it
  }

  // ---------------------------------------------------------------- scrub

  #scrubStartPass(): void {
    const sc = this.#scrub
    sc.phase = 'log'
    sc.file = 0
    sc.frame = 0
    const cur = this.log.current
    sc.endFile = cur.seq
    sc.endFrame = cur.frames.length
    sc.pages = []
    sc.page = 0
    sc.startedAt = this.#clock.now()
  }

  /**
   * One turn of the scrubber: re-reads and verifies about
   * scrubBytesPerSecond * SCRUB_TICK_MS / 1000 bytes, log frames first, then
   * page versions. A frame that fails is fetched again from a peer
   * (#askFrameFix); a version that fails is refused and repaired exactly as
   * when a read finds it (#versionDamaged). No read has to touch either.
   */
  #scrubTick(): void {
    if (this.#closed) return
    const sc = this.#scrub
    if (sc.phase === 'rest') {
      if (this.#clock.now() < sc.startedAt + this.cfg.scrubIntervalMs) return
      this.#scrubStartPass()
    }
    let budget = Math.max(1, Math.floor(this.cfg.scrubBytesPerSecond * SCRUB_TICK_MS / 1000 / (this.#framesSinceScrub ? SCRUB_BUSY_SHARE : 1)))
    this.#framesSinceScrub = false
    while (budget > 0) {
      if (sc.phase === 'log') {
        const f = this.log.files.find(x => x.seq >= sc.file)
        const pastEnd = !f || f.seq > sc.endFile || (f.seq === sc.endFile && sc.file === f.seq && sc.frame >= sc.endFrame)
        if (pastEnd) {
          sc.phase = 'pages'
          sc.pages = []
          for (const [pageId, vs] of this.pages.index) for (const v of vs) sc.pages.push([pageId, v])
          sc.page = 0
          continue
        }
        if (f.seq !== sc.file) { sc.file = f.seq; sc.frame = 0 }
        if (sc.frame >= f.frames.length) { sc.file = f.seq + 1; sc.frame = 0; continue }
        // This file's next frames, up to the budget, checked with one read.
        const run: FrameExtent[] = []
        const last = f.seq === sc.endFile ? Math.min(sc.endFrame, f.frames.length) : f.frames.length
        while (budget > 0 && sc.frame < last) {
          const ext = f.frames[sc.frame++]
          if (ext.recs === null) continue // appended, not yet decoded: checked on a later pass
          budget -= ext.len
          this.s.scrubBytes += ext.len
          this.s.scrubFrames++
          run.push(ext)
        }
        for (const ext of this.log.verify(f, run)) this.#frameDamaged(f, ext)
        continue
      }
      if (sc.page >= sc.pages.length) {
        this.s.scrubPasses++
        if (this.cfg.scrubIntervalMs > 0) {
          sc.phase = 'rest'
          sc.pages = []
        } else {
          this.#scrubStartPass()
        }
        break
      }
      const [pageId, v] = sc.pages[sc.page++]
      if (!this.pages.index.get(pageId)?.includes(v)) continue // collected or replaced since the snapshot
      budget -= v.len
      this.s.scrubBytes += v.len
      this.s.scrubVersions++
      if (!this.pages.read(pageId, v)) {
        this.s.scrubCorruptVersions++
        this.#versionDamaged(pageId, v)
      }
    }
  }

  #frameDamaged(file: LogFileInfo, ext: FrameExtent): void {
    const key = `${file.seq}:${ext.off}`
    if (this.#frameRepairs.has(key)) return // found again while its repair is on the way
    this.s.scrubCorruptFrames++
    this.s.corruptFrames++
    this.#frameRepairs.set(key, { file, ext, askedAt: 0, turn: 0 })
    this.#askFrameFix(key)
  }

  /** The records of a damaged frame that still matter here: not truncated, not folded. */
  #neededRecs(ext: FrameExtent): Array<[number, number]> {
    return recPairs(ext.recs).filter(([lsn, pageId]) => {
      if (inRanges(lsn, this.truncations)) return false
      const st = this.pgs.get(Math.floor(pageId / this.cfg.pagesPerGroup))
      return !!st && lsn > st.base
    })
  }

  #askFrameFix(key: string): void {
    const r = this.#frameRepairs.get(key)
    if (!r) return
    if (!this.log.files.includes(r.file)) { this.#frameRepairs.delete(key); return } // its file was collected meanwhile
    const recs = this.#neededRecs(r.ext)
    if (recs.length === 0) {
      // Nothing in it is needed any more (a dead frame's header, or every record truncated or folded).
      this.log.markDead(r.file, r.ext)
      this.#frameRepairs.delete(key)
      this.s.scrubRepairedFrames++
      return
    }
    const peers = [...this.peers.entries()]
    r.askedAt = this.#clock.now()
    if (peers.length === 0) return
    const [, port] = peers[(r.turn++) % peers.length]
    port.postMessage({ t: 'g-fix-req', from: this.cfg.id, epoch: this.epoch, key, recs } satisfies GossipMessage)
  }

  /**
   * A peer's answer to #askFrameFix: the frame is checked (both checksums)
   * and must hold exactly the records asked for; they are appended as a new
   * frame and synced, and only then is the damaged frame marked dead.
   */
  #onFrameFix(key: string, frame: Uint8Array | null): void {
    const r = this.#frameRepairs.get(key)
    if (!r) return
    if (!this.log.files.includes(r.file)) { this.#frameRepairs.delete(key); return }
    if (!frame) { r.askedAt = 0; return } // that peer no longer holds them all: the next gossip turn asks another
    const payload = decodeFrame(frame)
    const recs = this.#neededRecs(r.ext)
    const got = new Map(payload ? payload.records.map(x => [x[R_LSN], x]) : [])
    if (!payload || recs.some(([lsn, pageId]) => got.get(lsn)?.[R_PAGE] !== pageId)) { this.s.corruptFrames++; r.askedAt = 0; return }
    const records = recs.map(([lsn]) => got.get(lsn)!)
    const { file, ext } = this.log.append(encodeFrame({ epoch: this.epoch, vdl: this.vdlKnown, records }))
    ext.recs = frameRecs(records)
    for (const x of records) noteRecord(file, Math.floor(x[R_PAGE] / this.cfg.pagesPerGroup), x[R_LSN])
    this.log.sync()
    this.log.markDead(r.file, r.ext)
    this.#frameRepairs.delete(key)
    this.s.scrubRepairedFrames++
  }

  // ---------------------------------------------------------------- lifecycle

  stats(): SegmentStats {
    let records = 0
    for (const st of this.pgs.values()) records += st.records.size
    return {
      id: this.cfg.id, az: this.cfg.az, epoch: this.epoch, vdlKnown: this.vdlKnown, pgScl: this.#sclList(),
      bytesWritten: this.log.bytesWritten, logBytesLive: this.log.liveBytes, logFiles: this.log.files.length,
      pageVersions: this.pages.versions, pageStoreBytes: this.pages.bytes, recordsInMemory: records,
      framesAppended: this.s.framesAppended, fsyncs: this.log.fsyncs, coalesced: this.s.coalesced,
      gapFillRecords: this.s.gapFillRecords, gossipSent: this.s.gossipSent, gossipSkipped: this.s.gossipSkipped, slowTicks: this.s.slowTicks, gcLogFiles: this.s.gcLogFiles, gcVersions: this.pages.gcVersions, compactedPageFiles: this.pages.compactedFiles, basesPending: this.#needBase.size, basesReceived: this.s.basesReceived,
      corruptFrames: this.s.corruptFrames, corruptVersions: this.pages.corruptVersions, tornTailBytes: this.s.tornTailBytes,
      readsServed: this.s.readsServed, damagedPages: [...this.damagedPages.values()].filter(v => v === Infinity).length, repairedPages: this.s.repairedPages, cacheHits: this.s.cacheHits, pagesSuspect: this.pagesSuspect, metaCorrupt: this.s.metaCorrupt,
      scrubPasses: this.s.scrubPasses, scrubBytes: this.s.scrubBytes, scrubFrames: this.s.scrubFrames, scrubVersions: this.s.scrubVersions,
      rebuildPgsActive: this.rebuilds.size, rebuildPgsDone: this.s.rebuildPgsDone, rebuildPagesCopied: this.s.rebuildPagesCopied, rebuildRestarts: this.s.rebuildRestarts, ioErrors: this.s.ioErrors, filesSetAside: this.filesSetAside,
      scrubCorruptFrames: this.s.scrubCorruptFrames, scrubCorruptVersions: this.s.scrubCorruptVersions, scrubRepairedFrames: this.s.scrubRepairedFrames, buriedVersions: this.s.buriedVersions,
    }
  }

  // ---------------------------------------------------------------- inspection (checkers, tests)

  /** Per PG: SCL as last synced, fold base, and the LSNs of held records on the complete chain up to `upto`. */
  inspectPg(pg: number, upto: number): { scl: number; base: number; lsns: number[]; records: RecordTuple[] } | null {
    const st = this.pgs.get(pg)
    if (!st) return null
    const records = st.range(st.base, Math.min(upto, st.sclSynced), Number.MAX_SAFE_INTEGER)
    return { scl: st.sclSynced, base: st.base, lsns: records.map(r => r[R_LSN]), records }
  }

  /** The page as this segment alone would serve it at `at` (no SCL check): a checker's view of convergence. */
  inspectPage(pageId: number, at: number): Uint8Array | null {
    const r = this.#read(pageId, at, 0)
    return typeof r === 'string' ? null : r
  }

  /** Where each synced, live frame and each page version lies on disk (the simulator flips bits there). */
  dataExtents(): Array<{ path: string; off: number; len: number; kind: 'frame' | 'version' }> {
    const out: Array<{ path: string; off: number; len: number; kind: 'frame' | 'version' }> = []
    for (const f of this.log.files) for (const e of f.frames) if (e.recs !== null && !e.dead) out.push({ ...this.log.locate(f, e), kind: 'frame' })
    for (const vs of this.pages.index.values()) for (const v of vs) out.push({ ...this.pages.locate(v), kind: 'version' })
    return out
  }

  /** Gives up on a segment whose open failed: stops its timers; its files are left as they are. */
  abandon(): void {
    this.#closed = true
    this.#clock.clearTimeout(this.#timer)
  }

  close(): void {
    if (this.#closed) return
    if (this.#flushScheduled) this.#flush()
    // A clean close records the page files' synced lengths: the next open then checks the bodies
    // of only what a crash could have torn, not of every version built since the last checkpoint
    // (a volume reopened 30 times without a checkpoint spent more on that at each open).
    if (!this.pagesSuspect && this.rebuilds.size === 0) {
      try { if (this.pages.sync()) this.#writeMeta() } catch { /* the meta on disk stays valid; the next open checks more */ }
    }
    this.#closed = true
    this.#clock.clearTimeout(this.#timer)
    this.log.close()
    this.pages.close()
    for (const p of this.clients) p.close()
    for (const p of this.peers.values()) p.close()
  }
}


/**
 * Opens a segment node on its files; when they cannot be read at all (a
 * directory replaced by a file, I/O errors), sets them aside and starts
 * empty: the node then rebuilds from its peers (page versions, then gap
 * fill) while the other five serve.
 */
export function openSegmentNode(cfg: SegmentConfig, env: SegmentEnv = { disk: realDisk, clock: realClock }): SegmentNode {
  let first: SegmentNode | null = null
  try {
    first = new SegmentNode(cfg, env)
    first.open()
    return first
  } catch (err) {
    first?.abandon()
    if ((err as NodeJS.ErrnoException).code === 'ENOSPC') throw err // full, not unreadable: keep the files
    const aside = `${cfg.dir}.unreadable-${Math.floor(env.clock.now())}`
    env.disk.rename(cfg.dir, aside)
    const seg = new SegmentNode(cfg, env)
    seg.filesSetAside = `${aside} (${(err as Error).message})`
    seg.open()
    return seg
  }
}

/** Whether a peer's SCL list says what it said last time. */
function sameScl(before: Map<number, number> | undefined, scl: SclList): boolean {
  if (!before || before.size !== scl.length) return false
  for (const [pg, lsn] of scl) if (before.get(pg) !== lsn) return false
  return true
}

/** Index of the first element of an ascending array greater than `x`. */
function firstAbove(xs: number[], x: number): number {
  let lo = 0
  let hi = xs.length
  while (lo < hi) { const mid = (lo + hi) >> 1; if (xs[mid] <= x) lo = mid + 1; else hi = mid }
  return lo
}

/** What a g-scl message says, as one string (two messages with equal signatures tell peers the same). */
function gossipSig(m: Extract<GossipMessage, { t: 'g-scl' }>): string {
  return `${m.epoch}|${m.truncations.length}|${m.scl.join(';')}|${(m.bases ?? []).join(';')}`
}
