/**
 * The volume client: what a compute node (the writer) programs against.
 *
 * It allocates LSNs, turns each `write()` into one mini-transaction (MTR) of
 * redo records whose last record is the CPL, ships them to the six segments
 * as a boxcar (a frame leaves as soon as the first record is queued, and
 * records keep filling the next frame while frames are in flight), tracks
 * the quorum (VCL, VDL), resolves each write once its CPL <= VDL, and routes
 * page reads to one segment whose SCL covers them (no quorum).
 *
 * Limits (backpressure from the first day): a writer may not allocate more
 * than `lalLsns` beyond the VDL (LAL), nor hold more than `inflightBytesMax`
 * of undurable redo, nor have more than `shipmentsInflightMax` frames
 * undurable; a segment more than `segmentLagBytesMax` behind is not sent
 * frames (it catches up by gossip), so a slow segment looks like a slow node
 * to the quorum and nothing more.
 *
 * Invariants (asserted or tested):
 * - write() resolves only when its CPL <= VDL (4/6 of every PG it touched,
 *   and everything before it, durable).
 * - VCL and VDL never go backward for a living writer.
 * - A read at read point R returns the page with every record <= R applied.
 */
import path from 'node:path'
import { badInput, HexadError } from '../common/errors.js'
import { validateOp, type EncodedOp, type PageOp } from '../common/page-ops.js'
import { decodeFrame, decodeMeta, encodeFrame, encodeMeta, packOps, R_FLAGS, R_LSN, R_OPS, RECORD_FLAG_CPL, type RecordTuple } from '../storage/format.js'
import type { ClientReply, ClientRequest, RecoverReport, SegmentStats, SclList, Truncation } from '../storage/protocol.js'
import { realClock, type Clock, type TimerHandle } from '../storage/clock.js'
import { realDisk, writeFileDurable, type Disk } from '../storage/disk.js'
import { assertNotLocked, azOf, SEGMENTS, Storage, type ClientPort, type StorageLike, type StorageOptions } from '../storage/storage.js'
import { DEFAULT_SETS, QuorumTracker, SLOTS_MAX, type QuorumSet } from './quorum.js'
import { computeRecovery } from './recovery.js'
import { FrameArena } from './frame-arena.js'
import { liveVolume, ParentLink, registerLive, unregisterLive } from './lineage.js'
import { Timeline, TIMELINE_SAMPLE_MS } from './timeline.js'

export interface VolumeOptions {
  /** directory holding the volume (created if missing) */
  dir: string
  /** bytes per page (power of two, 512..65536; default 4096); fixed when the volume is created */
  pageSize?: number
  /** pages per protection group (default 16384); fixed when the volume is created */
  pagesPerGroup?: number
  /** highest number of protection groups the volume may grow to (default 65536) */
  maxGroups?: number
  /** LSN allocation limit: how far the writer may run ahead of the VDL, in LSNs (default 1,000,000) */
  lalLsns?: number
  /** bytes of redo not yet durable before writers wait (default 64 MiB) */
  inflightBytesMax?: number
  /**
   * frames not yet durable before records wait for the next boxcar (default 1:
   * one frame in flight while the next fills, as Aurora's boxcar; measured on 2
   * cores, 1 against 4: TPC-B in SQL +16%, 64 single-put clients +12%, volume
   * MTRs at 1 and 64 writers unchanged, since fewer, fuller frames leave the
   * CPU to the writer)
   */
  shipmentsInflightMax?: number
  /** redo bytes per frame at most (default 1 MiB) */
  frameBytesMax?: number
  /**
   * Group commit's wait, as PostgreSQL's commit_delay: when a frame could
   * ship but holds fewer MTRs than its writers said are coming (`write()`'s
   * `siblings`, counted only from `commitSiblings` up; at most 8), it waits up
   * to this long for them (default 4 ms; 0: ship at once). A writer alone
   * (no siblings) never waits. Measured on 2 cores, pgbench TPC-B over the
   * pg endpoint, whose 16 sessions commit one after another through the
   * branch row: 1.5-1.9 transactions a frame at 0, 4.6-6.5 with the wait,
   * the segments' CPU per transaction 38-55% lower in 2 of 3 pairs; 64
   * single-put clients: 64 commits a frame instead of 32 (README, Wire and
   * Key-value store).
   */
  commitDelayMs?: number
  /** the fewest siblings a write must report for its frame to wait (default 4, as PostgreSQL's commit_siblings 5 counts the writer too) */
  commitSiblings?: number
  /**
   * lz4-compress the frames shipped to the segments where that saves an
   * eighth (default false). Each of the six segments decompresses every
   * frame it is sent, to index its records, while the bytes saved are hot
   * log that a checkpoint deletes; measured on 2 cores, TPC-B in SQL (whose
   * redo lz4 halves) ran 1.03-1.09x faster with it off. Turn it on to halve the
   * hot log's disk use for compressible redo. Frames are read either way.
   */
  compressFrames?: boolean
  /** a segment this many bytes behind is not sent frames; it catches up by gossip (default 32 MiB) */
  segmentLagBytesMax?: number
  /** how long a write waits for 4/6 before failing with HEXAD_QUORUM_LOST (default 30 s) */
  quorumTimeoutMs?: number
  /** how long a read waits for a segment that can serve it (default 30 s) */
  readTimeoutMs?: number
  /** size of each preallocated hot-log file (default 16 MiB) */
  logFileBytes?: number
  /** a page chain this long is coalesced into a page version (default 64) */
  coalesceThreshold?: number
  /** live log bytes per segment above which a checkpoint folds and deletes log files (default 64 MiB) */
  checkpointLogBytes?: number
  /** gossip period between segments (default 25 ms) */
  gossipIntervalMs?: number
  /** bytes of built page images each segment worker keeps in memory (default 16 MiB) */
  segmentCacheBytes?: number
  /** bytes per second each segment re-reads and verifies in the background (scrub; default 4 MiB/s, a quarter of it while writes keep arriving) */
  scrubBytesPerSecond?: number
  /**
   * the least time from the start of one scrub pass to the start of the next
   * (default 60 s; 0: back to back). Every open starts a pass. A pass over a
   * small volume takes a tick, so back to back it re-verified everything 20
   * times a second on every segment.
   */
  scrubIntervalMs?: number
  /**
   * a segment with nothing to do for 40 ticks in a row (converged with its
   * peers, no write, request or peer news, no scrub pass under way) ticks
   * this slowly until anything arrives (default 500 ms; 0: never slows).
   * Measured on 2 vCPUs: an idle cluster used 12-14 ms of CPU a second
   * against 49-66 at full pace, and the first put after 2 s of idleness took
   * 4.4-4.8 ms (medians of 15) against 3.3-3.7 ms at full pace: the threads
   * wake from deeper sleep. Set 0 where that millisecond matters more than
   * the CPU.
   */
  idleTickMs?: number
  /**
   * scheduling niceness of the segment worker threads, 0..19 (default 0:
   * left as the process is). A nicer segment gives way to the other threads
   * of the process. Measured on 2 cores at 10: when the writer's thread is
   * what competes, TPC-B in SQL +12% and pgbench over the wire +20-25%; when
   * two CPU-bound application threads compete, commits fall to 0.30x (one
   * writer) and 0.41x (64 writers), since every commit waits on segments.
   * Opt in where the writer's thread is the busy one. Linux only (elsewhere
   * a thread cannot be reniced alone, and it is left).
   */
  segmentNice?: number
  /** a member segment down this long is replaced by a new one in its AZ (membership change; default: never) */
  replaceAfterMs?: number
  /**
   * how far back `backtrack()` may rewind, in ms (default 0: backtrack off).
   * The volume keeps a timeline (moment -> LSN) and every page version and
   * log record the window needs.
   */
  backtrackWindowMs?: number
}

export interface PageWrite {
  pageId: number
  ops: PageOp[]
}

export interface WriteOptions {
  /**
   * how many other writers are expected to write soon (open transactions
   * that have written, say): from `commitSiblings` up, the frame this write
   * joins may wait up to `commitDelayMs` for that many more MTRs (at most 8
   * in all) before it ships. Omitted or 0: ship as soon as a frame slot is free.
   */
  siblings?: number
}

export interface WriteResult {
  /** the CPL of the MTR: durable (<= VDL) when the promise resolves */
  lsn: number
}

export interface SegmentView {
  id: number
  az: number
  up: boolean
  /** in a quorum set (a replaced segment is not; during a change both the old and the new are) */
  member: boolean
  /** volume-level SCL: every record of every PG at or below it is on this segment */
  scl: number
  /** SCL per protection group, as [pg, scl] */
  pgScl: SclList
  /** frame bytes this segment has acknowledged */
  bytesWritten: number
  /** smoothed read latency in ms (0 before the first read) */
  readLatencyMs: number
  readErrors: number
}

export interface VolumeStats {
  epoch: number
  vcl: number
  vdl: number
  nextLsn: number
  groups: number
  pageSize: number
  pagesPerGroup: number
  writes: number
  reads: number
  readsReissued: number
  framesShipped: number
  /** frames that waited for sibling writers (commitDelayMs) before they shipped */
  framesHeld: number
  bytesShipped: number
  inflightBytes: number
  segments: SegmentView[]
}

export interface ReadPoint {
  readonly lsn: number
  release(): void
  [Symbol.dispose](): void
}

interface VolumeMeta {
  pageSize: number; pagesPerGroup: number; epoch: number; truncations: Truncation[]
  /** the quorum sets (two during a membership change); absent: the first six, 4/6 */
  sets?: QuorumSet[]
  /** slots beyond the first six, as [id, az] */
  slots?: Array<[number, number]>
  /** the slots an AZ had when the volume moved to 3/4 without it, as [az, slots] */
  degraded?: Array<[number, number[]]>
  /** named snapshots: read points kept (their versions never collected) until deleted, as [name, lsn] */
  snapshots?: Array<[string, number]>
  /** this volume is a clone: pages it never wrote are the parent's at `lsn` */
  parent?: { dir: string; lsn: number }
  /** the clones reading through this volume, as [clone dir, clone LSN]: read points kept until they are destroyed */
  clones?: Array<[string, number]>
  /** destroyed, kept only because clones still read through it */
  retired?: boolean
  /** a backtrack under way (redone at the next open if it was cut short) */
  backtrack?: { to: number }
  /** named read points kept by features (the backup's next log start), as [name, lsn] */
  kept?: Array<[string, number]>
  /** the handle of `epoch` closed cleanly: every LSN it allocated was durable, up to `lsn` (its VDL); the next recovery adds no truncation */
  closed?: { epoch: number; lsn: number }
}

interface Shipment { seq: number; frame: Uint8Array; lastLsn: number; sentAt: number }
interface CommitWaiter { cpl: number; bytes: number; resolve: (r: WriteResult) => void; reject: (e: Error) => void; deadline: number; settled: boolean }
interface AllocWaiter { n: number; bytes: number; resolve: () => void; reject: (e: Error) => void }
interface ReadReq {
  id: number; pageId: number; at: number; need: number; pg: number
  tried: Set<number>; sentAt: Map<number, number>; pinId: number
  resolve: (b: Uint8Array) => void; reject: (e: Error) => void
  hedge?: TimerHandle; deadline: number; done: boolean
}

const DEFAULTS = {
  pageSize: 4096, pagesPerGroup: 16384, maxGroups: 65536, lalLsns: 1_000_000,
  inflightBytesMax: 64 << 20, shipmentsInflightMax: 1, frameBytesMax: 1 << 20, segmentLagBytesMax: 32 << 20,
  commitDelayMs: 4, commitSiblings: 4,
  quorumTimeoutMs: 30_000, readTimeoutMs: 30_000, logFileBytes: 16 << 20, coalesceThreshold: 64,
  checkpointLogBytes: 64 << 20, gossipIntervalMs: 25, segmentCacheBytes: 16 << 20,
  scrubBytesPerSecond: 4 << 20, scrubIntervalMs: 60_000, idleTickMs: 500, segmentNice: 0, replaceAfterMs: 0, backtrackWindowMs: 0,
  compressFrames: false,
}
type Resolved = typeof DEFAULTS

const RECORD_OVERHEAD_BYTES = 24
/** how long a moved read horizon may wait for a frame to carry it before it is sent alone */
const HORIZON_DELAY_MS = 5
/** a hello that got no answer is sent again after this long */
const HELLO_RETRY_MS = 50
/** a frame still not durable after this long is sent again to every ready segment (a lost message) */
const RESEND_AFTER_MS = 250
/** the most MTRs a frame waits for (commitDelayMs): beyond it a frame is full enough */
const COMMIT_GROUP_MAX = 8
/** frames in flight at most while the queue holds full frames (see #pump) */
const BULK_SHIPMENTS_MAX = 4

/**
 * Opens (or creates) the volume in `options.dir`: starts the six segment
 * workers, recovers from a 3/6 read quorum under a new epoch (fencing any
 * older handle), truncates everything above the recovered VDL, and returns a
 * handle ready to write.
 */
export async function openVolume(options: VolumeOptions): Promise<Volume> {
  return openVolumeOn(options, { disk: realDisk, clock: realClock, acquire: (dir, so) => Storage.acquire(dir, so) })
}

/** Opens a destroyed volume that is kept for its clones (only clones read it). */
function openRetained(dir: string): Promise<Volume> {
  return openVolumeOn({ dir }, { disk: realDisk, clock: realClock, acquire: (d, so) => Storage.acquire(d, so), allowRetired: true })
}

/**
 * What a volume runs on: the disk its meta file lives on, the clock of its
 * timers, and how it reaches its six segments. openVolume uses node:fs, the
 * process clock and worker threads; the simulator (engine/sim) an in-memory
 * disk, virtual time and segments in the same thread behind a lossy network.
 */
export interface VolumeEnv {
  /** open a destroyed volume kept for its clones */
  allowRetired?: boolean
  disk: Disk
  clock: Clock
  acquire(dir: string, options: StorageOptions): Promise<StorageLike>
}

/** @internal openVolume on a given environment (the simulation seam). */
export async function openVolumeOn(options: VolumeOptions, env: VolumeEnv): Promise<Volume> {
  const o = resolveOptions(options)
  const dir = path.resolve(options.dir)
  const disk = env.disk
  disk.mkdirp(dir)
  const metaPath = path.join(dir, 'volume.meta')
  let meta: VolumeMeta | null = null
  if (disk.exists(metaPath)) {
    meta = decodeMeta<VolumeMeta>(disk.readFile(metaPath))
    if (!meta) throw new HexadError('HEXAD_CORRUPTION', `${metaPath} fails its checksum; the volume's epoch and truncations cannot be trusted`)
    if (options.pageSize !== undefined && options.pageSize !== meta.pageSize) throw badInput(`pageSize ${options.pageSize} does not match the volume's ${meta.pageSize} (${dir})`)
    if (options.pagesPerGroup !== undefined && options.pagesPerGroup !== meta.pagesPerGroup) throw badInput(`pagesPerGroup ${options.pagesPerGroup} does not match the volume's ${meta.pagesPerGroup} (${dir})`)
    o.pageSize = meta.pageSize
    o.pagesPerGroup = meta.pagesPerGroup
    if (meta.retired && !env.allowRetired) {
      throw badInput(`${dir} was destroyed; it is kept only because its clones read through it (${(meta.clones ?? []).map(([d]) => d).join(', ')})`)
    }
  }
  const storageOptions: StorageOptions = {
    pageSize: o.pageSize, pagesPerGroup: o.pagesPerGroup, logFileBytes: o.logFileBytes,
    coalesceThreshold: o.coalesceThreshold, checkpointLogBytes: o.checkpointLogBytes,
    gossipIntervalMs: o.gossipIntervalMs, pageCacheBytes: o.segmentCacheBytes, scrubBytesPerSecond: o.scrubBytesPerSecond,
    scrubIntervalMs: o.scrubIntervalMs, idleTickMs: o.idleTickMs,
    extraSlots: meta?.slots ?? [], cloneLsn: meta?.parent?.lsn ?? 0, nice: o.segmentNice,
  }
  const storage = await env.acquire(dir, storageOptions)
  try {
    const m: VolumeMeta = meta ?? { pageSize: o.pageSize, pagesPerGroup: o.pagesPerGroup, epoch: 0, truncations: [] }
    // Good for this open only: the epoch it names is over once the new one is on disk.
    const clean = m.closed && m.closed.epoch === m.epoch ? m.closed.lsn : null
    delete m.closed
    m.epoch += 1
    writeMeta(disk, metaPath, m)
    const vol = new Volume(dir, metaPath, o, m, storage, env)
    await vol._recover(clean)
    return vol
  } catch (err) {
    await storage.release()
    throw err
  }
}

/**
 * Destroys the volume in `dir`, which must be closed: its files are removed.
 * A volume that clones still read through is only marked destroyed (it can
 * no longer be opened) and goes when its last clone is destroyed. A
 * destroyed clone lets go of its parent's read point. Returns the
 * directories removed and the ones kept for clones.
 */
export async function destroyVolume(dir: string): Promise<{ removed: string[]; kept: string[] }> {
  if (typeof dir !== 'string' || dir.length === 0) throw badInput('destroyVolume: dir must be a non-empty string')
  const d = path.resolve(dir)
  const metaPath = path.join(d, 'volume.meta')
  if (!realDisk.exists(metaPath)) throw badInput(`destroyVolume: ${d} holds no volume (no volume.meta)`)
  if (liveVolume(d)) throw badInput(`destroyVolume: ${d} is open in this process; close it first (cluster.destroy() closes and destroys)`)
  assertNotLocked(d)
  const meta = decodeMeta<VolumeMeta>(realDisk.readFile(metaPath))
  if (!meta) throw new HexadError('HEXAD_CORRUPTION', `${metaPath} fails its checksum; not destroying what cannot be read (its clones are unknown)`)
  if (meta.clones?.length) {
    if (!meta.retired) writeMeta(realDisk, metaPath, { ...meta, retired: true })
    return { removed: [], kept: [d] }
  }
  realDisk.rm(d, true)
  const out = { removed: [d], kept: [] as string[] }
  const parentDir = meta.parent?.dir
  if (parentDir && realDisk.exists(path.join(parentDir, 'volume.meta'))) {
    const open = liveVolume(parentDir)
    const pv = open ?? await openRetained(parentDir)
    let lastGone = false
    try { lastGone = pv._dropClone(d) } finally { if (!open) await pv.close() }
    if (lastGone) {
      const r = await destroyVolume(parentDir)
      out.removed.push(...r.removed)
      out.kept.push(...r.kept)
    }
  }
  return out
}

function resolveOptions(options: VolumeOptions): Resolved {
  if (!options || typeof options !== 'object') throw badInput('openVolume needs an options object with a dir')
  if (typeof options.dir !== 'string' || options.dir.length === 0) throw badInput('openVolume: dir must be a non-empty string')
  const o = { ...DEFAULTS }
  for (const [k, v] of Object.entries(options)) {
    if (k === 'dir' || v === undefined) continue
    if (!(k in DEFAULTS)) throw badInput(`openVolume: unknown option ${k}`)
    if ((k === 'backtrackWindowMs' || k === 'scrubIntervalMs' || k === 'idleTickMs' || k === 'commitDelayMs') && v === 0) { o[k] = 0; continue }
    if (k === 'compressFrames') {
      if (typeof v !== 'boolean') throw badInput(`openVolume: compressFrames must be true or false, got ${String(v)}`)
      o.compressFrames = v
      continue
    }
    if (k === 'segmentNice') {
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 19) throw badInput(`openVolume: segmentNice must be an integer 0..19, got ${String(v)}`)
      o.segmentNice = v
      continue
    }
    if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) throw badInput(`openVolume: ${k} must be a positive integer, got ${String(v)}`)
    ;(o as Record<string, number | boolean>)[k] = v
  }
  if (o.pageSize < 512 || o.pageSize > 65536 || (o.pageSize & (o.pageSize - 1)) !== 0) throw badInput(`openVolume: pageSize must be a power of two in 512..65536, got ${o.pageSize}`)
  return o
}

function writeMeta(disk: Disk, p: string, m: VolumeMeta): void {
  writeFileDurable(disk, p, encodeMeta(m), path.dirname(p))
}

export class Volume {
  readonly dir: string
  readonly pageSize: number
  readonly pagesPerGroup: number
  readonly faults: VolumeFaults
  readonly #o: Resolved
  readonly #metaPath: string
  readonly #meta: VolumeMeta
  readonly #storage: StorageLike
  readonly #disk: Disk
  readonly #clock: Clock
  readonly #ports: Array<ClientPort | null> = new Array(SLOTS_MAX).fill(null)
  readonly #ready: boolean[] = new Array(SLOTS_MAX).fill(false)
  #quorum = new QuorumTracker(0)
  #nextLsn = 1
  /** LAL counts from max(VDL, this): the end of the truncation this handle's recovery made */
  #lalBase = 0
  readonly #pgTail = new Map<number, number>()
  readonly #pageLast = new Map<number, number>()
  /** per PG, ascending LSNs of its records from the oldest read point still possible */
  readonly #history = new Map<number, number[]>()
  #pending: RecordTuple[] = []
  /** estimate() of everything in #pending */
  #pendingBytes = 0
  #pumpQueued = false
  readonly #shipments: Shipment[] = []
  readonly #arena = new FrameArena()
  #shipSeq = 0
  readonly #sentBytes: Array<Map<number, number>> = Array.from({ length: SLOTS_MAX }, () => new Map())
  readonly #lagBytes: number[] = new Array(SLOTS_MAX).fill(0)
  readonly #ackedBytes: number[] = new Array(SLOTS_MAX).fill(0)
  #inflightBytes = 0
  readonly #commits: CommitWaiter[] = []
  #commitHead = 0
  readonly #allocWaiters: AllocWaiter[] = []
  #durableWaiters: Array<{ lsn: number; resolve: () => void; reject: (e: Error) => void }> = []
  readonly #reads = new Map<number, ReadReq>()
  readonly #readWaiters = new Set<ReadReq>()
  readonly #latency: number[] = new Array(SLOTS_MAX).fill(0)
  /** reads sent to each segment and not yet answered: a queue makes a fast segment slow */
  readonly #readsOut: number[] = new Array(SLOTS_MAX).fill(0)
  readonly #readErrors: number[] = new Array(SLOTS_MAX).fill(0)
  readonly #pins = new Map<number, number>()
  #pinSeq = 0
  #retainedFrom = 0
  #horizonSent = -1
  #reqSeq = 0
  readonly #requests = new Map<number, { resolve: (m: ClientReply) => void; segment: number }>()
  #fenced: HexadError | null = null
  #closed = false
  #closing: Promise<void> | null = null
  #groups = 0
  /** a clone's way to its parent's pages at the clone LSN */
  readonly #parent: ParentLink | null
  /** parent images fetched for this clone's segments (shared by the six asking for the same page) */
  readonly #basesInFlight = new Map<number, Promise<Uint8Array>>()
  /** moment -> LSN samples, kept when backtrack is on */
  readonly #timeline: Timeline | null
  /** the durable pins (snapshots, clones), ascending: see #durablePins */
  #metaPins: number[] = []
  /**
   * Whether pins ride with every horizon: once this handle has had one (so a
   * deleted pin's empty list still reaches every segment); a volume that
   * never had one sends nothing extra on its commit path.
   */
  #pinsRide = false
  #sampleTimer: TimerHandle | null = null
  #lastSampleAt = 0
  #counters = { writes: 0, reads: 0, readsReissued: 0, framesShipped: 0, framesHeld: 0, bytesShipped: 0 }
  readonly #onUp = (id: number) => {
    const t = this.#replaceTimers.get(id)
    if (t) { this.#clock.clearTimeout(t); this.#replaceTimers.delete(id) }
    if (this.#slots().includes(id)) void this.#connect(id)
  }
  readonly #onDown = (id: number) => { this.#disconnect(id); this.#armReplace(id) }

  /** @internal use openVolume */
  constructor(dir: string, metaPath: string, o: Resolved, meta: VolumeMeta, storage: StorageLike, env: { disk: Disk; clock: Clock } = { disk: realDisk, clock: realClock }) {
    this.#disk = env.disk
    this.#clock = env.clock
    this.dir = dir
    this.#o = o
    this.#metaPath = metaPath
    this.#meta = meta
    this.#storage = storage
    this.pageSize = o.pageSize
    this.pagesPerGroup = o.pagesPerGroup
    this.faults = new VolumeFaults(storage, () => this.#checkOpen())
    this.#parent = meta.parent ? new ParentLink(meta.parent.dir, meta.parent.lsn, openRetained) : null
    this.#timeline = o.backtrackWindowMs > 0 ? new Timeline(this.#disk, dir) : null
    this.#refreshPins()
  }

  /** Open, not fenced. */
  get usable(): boolean { return !this.#closed && !this.#fenced && !this.#closing }
  /** For a clone: its parent's directory and the LSN it was cloned at. */
  get parent(): { dir: string; lsn: number } | null { return this.#meta.parent ? { ...this.#meta.parent } : null }

  get epoch(): number { return this.#meta.epoch }
  /** volume durable LSN: every MTR at or below it is durable */
  get vdl(): number { return this.#quorum.vdl }
  /** volume complete LSN */
  get vcl(): number { return this.#quorum.vcl }
  /** the last LSN this handle allocated (or the VDL it recovered): whenDurable(lastLsn) waits for every write made so far */
  get lastLsn(): number { return Math.max(this.#quorum.vdl, this.#quorum.lastAllocated) }

  // ------------------------------------------------------------------ recovery

  /** @internal */
  async _recover(cleanLsn: number | null = null): Promise<void> {
    const epoch = this.#meta.epoch
    const replies: Array<{ id: number; report: RecoverReport }> = []
    this.#quorum.sets = this.#sets()
    // A segment that goes down while recovery waits is forgotten at the end (its port is dead) and
    // connected again if it is back; the volume's own up/down listeners start only after recovery.
    const wentDown = new Set<number>()
    const onDownEarly = (id: number) => { wentDown.add(id) }
    this.#storage.on('down', onDownEarly)
    try {
      await this.#recoverFromQuorum(epoch, replies, cleanLsn)
    } finally {
      this.#storage.off('down', onDownEarly)
    }
    for (const id of wentDown) this.#disconnect(id)
    this.#storage.on('up', this.#onUp)
    this.#storage.on('down', this.#onDown)
    // Segments that were down during recovery learn the epoch and truncations when they say hello.
    for (const id of this.#slots()) if (!this.#ready[id] && this.#storage.isUp(id)) void this.#connect(id)
    // A membership change that was under way goes on.
    const sets = this.#sets()
    if (sets.length === 2) this.#beginTransition(sets[1], this.#quorum.vdl)
    for (const id of this.#slots()) if (!this.#storage.isUp(id)) this.#armReplace(id)
    registerLive(this)
    if (this.#timeline) this.#sampleTimeline()
  }

  async #recoverFromQuorum(epoch: number, replies: Array<{ id: number; report: RecoverReport }>, cleanLsn: number | null): Promise<void> {
    await Promise.all(this.#slots().map(async id => {
      const port = this.#storage.connect(id)
      if (!port) return
      this.#attach(id, port)
      const r = await this.#request(id, { t: 'recover', id: 0, epoch, truncations: this.#meta.truncations, members: this.#slots(), pins: this.#durablePins() }, this.#o.readTimeoutMs)
      if (r?.t === 'recover-ok') replies.push({ id, report: r.report })
      else if (r?.t === 'fenced') throw new HexadError('HEXAD_FENCED', `segment ${id} is already at epoch ${r.epoch}, newer than this open's ${epoch}: another handle opened ${this.dir} meanwhile`)
    }))
    // A read quorum of the (old) set intersects every write quorum.
    if (!this.#readQuorum(replies.map(r => r.id))) throw new HexadError('HEXAD_QUORUM_LOST', `recovery needs 3 of 6 segments (${this.#describeSets()}), ${replies.length} answered in ${this.dir}`)
    const rec = computeRecovery(replies.map(r => r.report), this.#meta.truncations, this.#o.lalLsns, cleanLsn)
    // A clone's history starts at its clone LSN: the parent's state there is its first durable state.
    const floor = this.#meta.parent?.lsn ?? 0
    if (rec.vdl < floor) rec.vdl = floor
    if (rec.nextLsn <= floor) rec.nextLsn = floor + 1
    if (rec.truncation) {
      this.#meta.truncations.push(rec.truncation)
      this.#writeOwnMeta()
    }
    const truncated = await Promise.all(replies.map(async ({ id }) => {
      const r = await this.#request(id, { t: 'truncate', id: 0, epoch, truncations: this.#meta.truncations, members: this.#slots(), pins: this.#durablePins() }, this.#o.readTimeoutMs)
      if (r?.t === 'truncate-ok') { this.#quorum.reset(id, r.scl); this.#ready[id] = true; return id }
      return -1
    }))
    if (!this.#readQuorum(truncated.filter(id => id >= 0))) throw new HexadError('HEXAD_QUORUM_LOST', `recovery could not truncate at 3 of 6 segments in ${this.dir}`)
    const scls = this.#quorum.scl
    this.#quorum = new QuorumTracker(rec.vdl)
    this.#quorum.sets = this.#sets()
    for (let s = 0; s < SLOTS_MAX; s++) this.#quorum.reset(s, [...scls[s]])
    this.#nextLsn = rec.nextLsn
    this.#lalBase = rec.nextLsn - 1
    for (const [pg, tail] of rec.tails) {
      this.#pgTail.set(pg, tail)
      this.#history.set(pg, [tail])
      this.#groups = Math.max(this.#groups, pg + 1)
    }
    this.#retainedFrom = rec.vdl
    // Snapshots pin their read points across restarts: the horizon sent before held at or
    // below them, and segments collect nothing until they hear a horizon from this handle.
    for (const lsn of this.#keptLsns()) if (lsn < this.#retainedFrom) this.#retainedFrom = lsn
    // Segments fold at these instead of keeping the log after them (sent before any horizon).
    this.#sendPins()
  }

  /**
   * Durable read points below the horizon: snapshots and clones. They do not
   * hold the horizon back: segments fold each page at every one of them (a
   * version per pin), so the log after them can go, and reads at them stay
   * possible.
   */
  /**
   * Writes this handle's volume.meta, unless a newer handle (a higher epoch
   * on disk) has opened the volume meanwhile: then this one is fenced and
   * must not overwrite what the newer one recorded (its epoch, truncations,
   * snapshots, clones).
   */
  #writeOwnMeta(): void {
    const onDisk = this.#disk.exists(this.#metaPath) ? decodeMeta<VolumeMeta>(this.#disk.readFile(this.#metaPath)) : null
    if (onDisk && onDisk.epoch > this.#meta.epoch) {
      this.#fence(-1, onDisk.epoch)
      throw this.#fenced!
    }
    writeMeta(this.#disk, this.#metaPath, this.#meta)
  }

  #durablePins(): number[] { return this.#metaPins }

  /** Recomputes the pins from volume.meta (after a snapshot or clone came or went). */
  #refreshPins(): void {
    const out = new Set<number>()
    for (const [, lsn] of this.#meta.snapshots ?? []) out.add(lsn)
    for (const [, lsn] of this.#meta.clones ?? []) out.add(lsn)
    this.#metaPins = [...out].sort((a, b) => a - b)
    if (this.#metaPins.length) this.#pinsRide = true
  }

  #isDurablePin(at: number): boolean { return this.#metaPins.includes(at) }

  /** Tells every ready segment the pins as they are now. */
  #sendPins(): void {
    this.#refreshPins()
    const pins = this.#metaPins
    for (const id of this.#slots()) if (this.#ready[id]) this.#ports[id]!.postMessage({ t: 'pins', epoch: this.epoch, pins } satisfies ClientRequest)
  }

  /** Read points that hold the horizon: kept ones (backup), a backtrack under way, the backtrack window's start. */
  #keptLsns(): number[] {
    const out: number[] = []
    for (const [, lsn] of this.#meta.kept ?? []) out.push(lsn)
    if (this.#meta.backtrack) out.push(this.#meta.backtrack.to)
    const w = this.#windowStart()
    if (w !== undefined) out.push(w.lsn)
    return out
  }

  // ------------------------------------------------------------------ snapshots

  /**
   * Marks a named snapshot at `at` (default: the VDL): its read point is kept
   * (recorded in volume.meta, so across restarts and by later writers) until
   * deleteSnapshot. Returns its LSN.
   */
  createSnapshot(name: string, at: number = this.#quorum.vdl): number {
    this.#checkOpen()
    if (typeof name !== 'string' || !/^[A-Za-z0-9_.:-]{1,50}$/.test(name)) throw badInput(`snapshot name must be 1-50 letters, digits or _ . : -, got ${JSON.stringify(name)}`)
    const list = this.#meta.snapshots ?? []
    if (list.some(([n]) => n === name)) throw badInput(`a snapshot named ${JSON.stringify(name)} already exists`)
    if (!Number.isInteger(at) || at < this.#retainedFrom || at > this.#quorum.vdl) {
      throw badInput(`snapshot LSN ${String(at)} must be between the oldest retained ${this.#retainedFrom} and the VDL ${this.#quorum.vdl}`)
    }
    this.#meta.snapshots = [...list, [name, at]]
    this.#writeOwnMeta()
    this.#sendPins()
    return at
  }

  /** The named snapshots, oldest first. */
  snapshots(): Array<{ name: string; lsn: number }> {
    return (this.#meta.snapshots ?? []).map(([name, lsn]) => ({ name, lsn })).sort((a, b) => a.lsn - b.lsn || (a.name < b.name ? -1 : 1))
  }

  /** Deletes a snapshot: what only it needed may now be collected. */
  deleteSnapshot(name: string): void {
    this.#checkOpen()
    const list = this.#meta.snapshots ?? []
    if (!list.some(([n]) => n === name)) throw badInput(`no snapshot named ${JSON.stringify(name)}`)
    this.#meta.snapshots = list.filter(([n]) => n !== name)
    this.#writeOwnMeta()
    this.#sendPins()
    this.#scheduleHorizon()
  }

  // ------------------------------------------------------------------ clones

  /**
   * Creates a clone of this volume in `dir` (which must not exist or be
   * empty): a volume.meta naming this volume and the clone LSN (the VDL now),
   * after this volume's own meta pins that read point. Nothing is copied, so
   * the time does not grow with the volume. Open the clone with openVolume.
   */
  createClone(dir: string): { dir: string; lsn: number } {
    this.#checkOpen()
    if (typeof dir !== 'string' || dir.length === 0) throw badInput('clone: dir must be a non-empty string')
    const target = path.resolve(dir)
    if (target === this.dir || target.startsWith(this.dir + path.sep) || this.dir.startsWith(target + path.sep)) {
      throw badInput(`clone: ${target} must lie outside the volume's own directory ${this.dir} (and not contain it)`)
    }
    if (this.#disk.exists(target) && this.#disk.readdir(target).length > 0) throw badInput(`clone: ${target} exists and is not empty`)
    if ((this.#meta.clones ?? []).some(([d]) => d === target)) throw badInput(`clone: ${target} is already a clone of ${this.dir}`)
    const lsn = this.#quorum.vdl
    // The pin first: a crash in between leaves a pin without a clone (kept data), never a clone without its pin.
    this.#meta.clones = [...(this.#meta.clones ?? []), [target, lsn]]
    this.#writeOwnMeta()
    this.#sendPins()
    this.#disk.mkdirp(target)
    writeMeta(this.#disk, path.join(target, 'volume.meta'), { pageSize: this.pageSize, pagesPerGroup: this.pagesPerGroup, epoch: 0, truncations: [], parent: { dir: this.dir, lsn } })
    return { dir: target, lsn }
  }

  /**
   * Creates a clone in `options.dir` (createClone) and opens it: the handle a
   * custom compute node writes its clone through. Options other than `dir`
   * are the clone's own open options.
   */
  async clone(options: VolumeOptions): Promise<Volume> {
    if (!options || typeof options !== 'object') throw badInput('clone() needs { dir }')
    this.createClone(options.dir)
    return openVolume(options)
  }

  /** The clones reading through this volume, with their clone LSNs. */
  clones(): Array<{ dir: string; lsn: number }> {
    return (this.#meta.clones ?? []).map(([dir, lsn]) => ({ dir, lsn }))
  }

  /** @internal a clone was destroyed: its read point is let go. Returns whether this volume is retired and has no clone left. */
  _dropClone(dir: string): boolean {
    this.#checkOpen()
    const target = path.resolve(dir)
    this.#meta.clones = (this.#meta.clones ?? []).filter(([d]) => d !== target)
    if (this.#meta.clones.length === 0) delete this.#meta.clones
    this.#writeOwnMeta()
    this.#sendPins()
    this.#scheduleHorizon()
    return !!this.#meta.retired && !this.#meta.clones
  }

  /** @internal marks this volume destroyed but kept for its clones */
  _retire(): void {
    this.#meta.retired = true
    this.#writeOwnMeta()
  }

  /** A clone's segment lacks the parent's image under its records of these pages: fetch each once, send it. */
  #supplyBases(id: number, port: ClientPort, pageIds: number[]): void {
    const parent = this.#parent
    if (!parent) return
    for (const pageId of pageIds) {
      let p = this.#basesInFlight.get(pageId)
      if (!p) {
        p = parent.read(pageId)
        this.#basesInFlight.set(pageId, p)
        // Kept a moment so the other segments asking for the same page share the read.
        const drop = () => { this.#clock.setTimeout(() => this.#basesInFlight.delete(pageId), 200) }
        p.then(drop, drop)
      }
      p.then(image => {
        if (this.#ports[id] !== port || this.#closed) return
        const copy = new Uint8Array(image)
        port.postMessage({ t: 'base', epoch: this.epoch, pageId, lsn: parent.lsn, image: copy } satisfies ClientRequest, [copy.buffer as ArrayBuffer])
      }, () => { /* asked again by the segment later */ })
    }
  }

  // ------------------------------------------------------------------ timeline and backtrack

  /** Samples (now, VDL) into the timeline, at most every TIMELINE_SAMPLE_MS, and once more after the VDL stops. */
  #sampleTimeline(): void {
    const tl = this.#timeline
    if (!tl || this.#closed || this.#fenced || this.#meta.backtrack) return
    const now = Date.now()
    const wait = this.#lastSampleAt + TIMELINE_SAMPLE_MS - now
    if (wait > 0) {
      this.#sampleTimer ??= this.#clock.setTimeout(() => { this.#sampleTimer = null; this.#sampleTimeline() }, wait)
      return
    }
    this.#lastSampleAt = now
    try {
      tl.append(now, this.#quorum.vdl)
      if (tl.entries.length > 256) tl.trimBefore(now - this.#o.backtrackWindowMs)
    } catch { /* a sample that cannot be written leaves the window a little coarser */ }
  }

  /** The oldest moment backtrack may go to: the window's start (or the first sample within it). */
  #windowStart(): { ms: number; lsn: number } | undefined {
    const tl = this.#timeline
    if (!tl || tl.entries.length === 0) return undefined
    const start = Date.now() - this.#o.backtrackWindowMs
    let i = 0
    while (i + 1 < tl.entries.length && tl.entries[i + 1][0] <= start) i++
    const [ms, lsn] = tl.entries[i]
    return { ms: Math.max(ms, start), lsn }
  }

  /**
   * The backtrack window: the earliest and latest moments (and their LSNs)
   * `backtrack()` can go to; null when backtrack is off.
   */
  backtrackWindow(): { earliest: Date; earliestLsn: number; latest: Date; latestLsn: number } | null {
    this.#checkOpen()
    const w = this.#windowStart()
    if (!w) return null
    let earliestLsn = Math.max(w.lsn, this.#retainedFrom)
    let earliest = w.ms
    const floor = this.#meta.parent?.lsn
    if (floor !== undefined && earliestLsn < floor) earliestLsn = floor
    if (earliestLsn !== w.lsn) earliest = Math.max(earliest, this.#timeline!.timeOf(earliestLsn) ?? earliest)
    return { earliest: new Date(earliest), earliestLsn, latest: new Date(Date.now()), latestLsn: this.#quorum.vdl }
  }

  /** The LSN the volume was at at `when` (from the timeline), or undefined when backtrack is off or it is before the first sample. */
  lsnAt(when: Date): number | undefined {
    return this.#timeline?.lsnAt(when.getTime())
  }

  /**
   * Rewinds the volume in place to its state at LSN `to` (a state it had
   * within the backtrack window): every page that changed after `to` is
   * written again, as new redo on top, with its image at `to`. Later moments
   * stay in the LSN history, so a backtrack can go forward again within the
   * window. Pages are rewritten in one MTR when they fit in half of
   * inflightBytesMax (atomic), else in batches with the target recorded in
   * volume.meta, so an open after a crash finishes it (`pendingBacktrack`).
   * The caller stops writes first. Returns the pages written and the LSN
   * of the new state.
   */
  async backtrack(to: number, options: { onProgress?: (done: number, total: number) => void } = {}): Promise<{ from: number; to: number; pages: number; lsn: number }> {
    this.#checkOpen()
    const from = this.#quorum.vdl
    if (!Number.isInteger(to) || to < 0) throw badInput(`backtrack: target must be a non-negative integer LSN, got ${String(to)}`)
    const pending = this.#meta.backtrack
    if (!pending || pending.to !== to) {
      const w = this.backtrackWindow()
      if (!w) throw badInput('backtrack is off for this volume: open it with backtrackWindowMs > 0')
      if (to < w.earliestLsn || to > w.latestLsn) {
        throw badInput(`backtrack target LSN ${to} is outside the window: LSN ${w.earliestLsn} (${w.earliest.toISOString()}) to LSN ${w.latestLsn} (${w.latest.toISOString()})`)
      }
    }
    if (to === from && !pending) return { from, to, pages: 0, lsn: from }
    // Only a state the volume had: the end of an MTR (a CPL), or where a clone began.
    if (!pending && to !== (this.#meta.parent?.lsn ?? 0)) {
      const { frame } = await this.logRange(to - 1, to, 1)
      const rec = decodeFrame(frame)?.records[0]
      if (!rec || rec[R_LSN] !== to || !(rec[R_FLAGS] & RECORD_FLAG_CPL)) throw badInput(`backtrack target LSN ${to} is not the end of a mini-transaction (not a state the volume had); use a moment, a VDL or a commit's LSN`)
    }
    this.#meta.backtrack = { to }
    this.#writeOwnMeta()
    const pin = this.pinReadPoint(to)
    try {
      const ids = await this.pageIds(to)
      const perMtr = Math.max(1, Math.floor(this.#o.inflightBytesMax / 2 / this.pageSize))
      let done = 0
      options.onProgress?.(0, ids.length)
      for (let i = 0; i < ids.length; i += perMtr) {
        const chunk = ids.slice(i, i + perMtr)
        const images: Uint8Array[] = []
        // Reads in bounded parallel batches: a large rewind never holds every image at once.
        for (let j = 0; j < chunk.length; j += 256) images.push(...await Promise.all(chunk.slice(j, j + 256).map(id => this.readPage(id, { at: to }))))
        await this.write(chunk.map((pageId, k) => ({ pageId, ops: [{ op: 'init', image: images[k] }] })))
        done += chunk.length
        options.onProgress?.(done, ids.length)
      }
      delete this.#meta.backtrack
      this.#writeOwnMeta()
      this.#sampleTimeline()
      return { from, to, pages: ids.length, lsn: this.#quorum.vdl }
    } finally {
      pin.release()
    }
  }

  /**
   * Keeps read point `lsn` under `name` in volume.meta (across restarts and
   * failovers) so that what reading or listing the log from there needs is
   * never collected; `null` lets it go. Used by the backup, which must go on
   * from where it stopped. Returns the kept LSN (or null).
   */
  keep(name: string, lsn: number | null): number | null {
    this.#checkOpen()
    if (typeof name !== 'string' || !/^[A-Za-z0-9_.:-]{1,50}$/.test(name)) throw badInput(`keep: name must be 1-50 letters, digits or _ . : -, got ${JSON.stringify(name)}`)
    const rest = (this.#meta.kept ?? []).filter(([n]) => n !== name)
    if (lsn !== null) {
      const old = (this.#meta.kept ?? []).find(([n]) => n === name)?.[1]
      const floor = Math.min(old ?? this.#retainedFrom, this.#retainedFrom)
      if (!Number.isInteger(lsn) || lsn < floor || lsn > this.#quorum.vdl) throw badInput(`keep: LSN ${String(lsn)} must lie between the oldest retained ${floor} and the VDL ${this.#quorum.vdl}`)
      rest.push([name, lsn])
    }
    this.#meta.kept = rest.length ? rest : undefined
    if (!this.#meta.kept) delete this.#meta.kept
    this.#writeOwnMeta()
    this.#scheduleHorizon()
    return lsn
  }

  /** The read point kept under `name`, or null. */
  kept(name: string): number | null {
    return (this.#meta.kept ?? []).find(([n]) => n === name)?.[1] ?? null
  }

  /**
   * Every page of the volume as a reader sees it: the pages of its own
   * segments and, for a clone, its parents' pages (pageIds(-1) through the
   * lineage). Some may read as zeros (allocated later in a parent).
   */
  async allPageIds(): Promise<number[]> {
    const own = await this.pageIds(-1)
    if (!this.#parent) return own
    const up = await (await this.#parent.volume()).allPageIds()
    return [...new Set([...own, ...up])].sort((a, b) => a - b)
  }

  /** A backtrack that an earlier handle started and did not finish (its target LSN), or null. */
  get pendingBacktrack(): number | null { return this.#meta.backtrack?.to ?? null }

  /**
   * The pages that have a record or a version above `since` on any segment
   * (-1: every page), from a read quorum of segments, ascending: every
   * durable change is on at least one of any read quorum.
   */
  async pageIds(since = -1): Promise<number[]> {
    this.#checkOpen()
    const ids = new Set<number>()
    const answered: number[] = []
    await Promise.all(this.#slots().filter(id => this.#ready[id]).map(async id => {
      const r = await this.#request(id, { t: 'page-ids', id: 0, since }, this.#o.readTimeoutMs)
      if (r?.t !== 'page-ids-ok') return
      for (const p of r.pageIds) ids.add(p)
      answered.push(id)
    }))
    if (!this.#readQuorum(answered)) throw new HexadError('HEXAD_QUORUM_LOST', `listing pages needs a read quorum (${this.#describeSets()}); ${answered.length} segments answered`)
    return [...ids].sort((a, b) => a - b)
  }

  /**
   * The redo records with from < lsn <= to (to <= VDL), as one checked frame
   * (format.ts), from one segment that holds all of them; at most
   * `maxRecords` (then `upto` is where it ends). Needs `from` at or above the
   * oldest retained LSN (pin it to keep it).
   */
  async logRange(from: number, to: number, maxRecords = 65536): Promise<{ frame: Uint8Array; upto: number; records: number }> {
    this.#checkOpen()
    if (!Number.isInteger(from) || !Number.isInteger(to) || from < 0 || to < from || to > this.#quorum.vdl) {
      throw badInput(`logRange: need 0 <= from <= to <= VDL (${this.#quorum.vdl}), got (${String(from)}, ${String(to)}]`)
    }
    const complete = (id: number) => {
      for (const pg of this.#history.keys()) if (this.#quorum.segmentScl(id, pg) < this.#needFor(-1, pg, to)) return false
      return true
    }
    const reasons: string[] = []
    for (const id of this.#slots()) {
      if (!this.#ready[id] || !complete(id)) continue
      const r = await this.#request(id, { t: 'log-range', id: 0, from, to, maxRecords }, this.#o.readTimeoutMs)
      if (r?.t === 'log-range-ok' && r.frame) return { frame: r.frame, upto: r.upto, records: r.records }
      reasons.push(r?.t === 'log-range-ok' ? r.detail ?? 'refused' : `segment ${id}: no answer`)
    }
    throw new HexadError('HEXAD_QUORUM_LOST', `no segment could send the log from ${from} to ${to}${reasons.length ? ': ' + reasons.join('; ') : ''}`)
  }

  // ------------------------------------------------------------------ membership (quorum sets, SIGMOD'18)

  #sets(): QuorumSet[] { return this.#meta.sets ?? DEFAULT_SETS }

  /** Every slot of every quorum set, ascending: the segments this writer ships to and reads from. */
  #slots(): number[] {
    const out = new Set<number>()
    for (const s of this.#sets()) for (const m of s.members) out.add(m)
    return [...out].sort((a, b) => a - b)
  }

  #azOfSlot(id: number): number {
    return this.#meta.slots?.find(([s]) => s === id)?.[1] ?? azOf(id)
  }

  /**
   * Whether `ids` form a read quorum for recovery. During a change only the
   * old set counts: a write made before the change is on the old set's write
   * quorum but maybe on too few of the new set (a new member is still empty,
   * or the new set is a 3/4 set that 2 reports would satisfy), so a read
   * quorum of the new set alone could miss it (found by the simulator). After
   * the change the new set holds every durable record at its write quorum.
   */
  #readQuorum(ids: number[]): boolean {
    const set = this.#sets()[0]
    return set.members.filter(m => ids.includes(m)).length >= set.read
  }

  #describeSets(): string {
    return this.#sets().map(s => `${s.write}/${s.members.length} of [${s.members.join(',')}]`).join(' and ')
  }

  #transition: { target: QuorumSet; need: Map<number, number>; done: Promise<void>; resolve: () => void; reject: (err: Error) => void } | null = null
  readonly #replaceTimers = new Map<number, TimerHandle>()

  /** The quorum sets and whether a change is under way. */
  membership(): { sets: QuorumSet[]; changing: boolean } {
    return { sets: this.#sets().map(s => ({ ...s, members: [...s.members] })), changing: this.#transition !== null }
  }

  /**
   * Replaces member `id` (a segment that is down, or that an operator wants
   * gone) by a new, empty segment in a new slot of the same AZ: first the
   * writer writes to both quorum sets (4/6 of the old AND 4/6 of the new),
   * while the new segment rebuilds from its peers; once the new set alone
   * holds every durable record at 4/6, the old set is dropped. Reads and
   * writes go on throughout. Resolves with the new slot when the change is
   * complete.
   */
  async replaceSegment(id: number): Promise<number> {
    this.#checkOpen()
    const sets = this.#sets()
    if (this.#transition || sets.length !== 1) throw badInput('replaceSegment: a membership change is already under way')
    const current = sets[0]
    if (!current.members.includes(id)) throw badInput(`replaceSegment: segment ${String(id)} is not a member (${current.members.join(',')})`)
    const used = new Set([...current.members, ...(this.#meta.slots ?? []).map(([s]) => s), 0, 1, 2, 3, 4, 5])
    let slot = 6
    while (used.has(slot)) slot++
    if (slot >= SLOTS_MAX) throw badInput(`replaceSegment: no free slot left (${SLOTS_MAX} at most)`)
    const az = this.#azOfSlot(id)
    await this.#storage.addSegment(slot, az)
    this.#meta.slots = [...(this.#meta.slots ?? []), [slot, az]]
    const target: QuorumSet = { members: current.members.map(m => m === id ? slot : m), write: current.write, read: current.read }
    await this.#changeTo(target)
    if (this.#storage.isUp(id)) await this.#storage.stopWorker(id).catch(() => {})
    return slot
  }

  /**
   * An AZ lost for long: the PGs move to a 3-of-4 quorum of the four
   * segments of the other two AZs (reads and recovery: 2 of 4), through the
   * same two-set transition. `restoreAZ` moves back to 4/6.
   */
  async degradeAZ(az: number): Promise<void> {
    this.#checkOpen()
    const sets = this.#sets()
    if (this.#transition || sets.length !== 1) throw badInput('degradeAZ: a membership change is already under way')
    const current = sets[0]
    const lost = current.members.filter(m => this.#azOfSlot(m) === az)
    if (current.members.length !== 6 || lost.length !== 2) throw badInput(`degradeAZ: AZ ${String(az)} must have two of six members (${this.#describeSets()})`)
    this.#meta.degraded = [...(this.#meta.degraded ?? []).filter(([a]) => a !== az), [az, lost]]
    await this.#changeTo({ members: current.members.filter(m => !lost.includes(m)), write: 3, read: 2 })
  }

  async restoreAZ(az: number): Promise<void> {
    this.#checkOpen()
    const sets = this.#sets()
    const back = this.#meta.degraded?.find(([a]) => a === az)?.[1]
    if (this.#transition || sets.length !== 1 || !back || sets[0].members.length !== 4) throw badInput(`restoreAZ: AZ ${String(az)} was not left out by degradeAZ (${this.#describeSets()})`)
    for (const id of back) if (!this.#storage.isUp(id)) await this.#storage.restartWorker(id).catch(() => {})
    this.#meta.degraded = this.#meta.degraded!.filter(([a]) => a !== az)
    await this.#changeTo({ members: [...sets[0].members, ...back].sort((a, b) => a - b), write: 4, read: 3 })
  }

  /** Step 1: both sets, durably in volume.meta; step 2 (#checkTransition): the new set alone. */
  async #changeTo(target: QuorumSet): Promise<void> {
    const old = this.#sets()[0]
    this.#meta.sets = [old, target]
    this.#writeOwnMeta()
    this.#quorum.setSets(this.#meta.sets)
    this.#broadcastMembers()
    for (const id of target.members) if (!this.#ready[id] && this.#storage.isUp(id)) void this.#connect(id)
    const before = this.#quorum.vdl
    const done = this.#beginTransition(target, before)
    this.#checkTransition()
    // Commits the new sets made durable at once (a 3/4 set) resolve now, under the sets that made them so.
    this.#afterQuorum(before)
    await done
  }

  #beginTransition(target: QuorumSet, vdl: number): Promise<void> {
    const need = new Map<number, number>()
    for (const [pg, h] of this.#history) {
      let last = 0
      for (const lsn of h) if (lsn <= vdl && lsn > last) last = lsn
      need.set(pg, last)
    }
    let resolve!: () => void
    let reject!: (err: Error) => void
    const done = new Promise<void>((ok, fail) => { resolve = ok; reject = fail })
    this.#transition = { target, need, done, resolve, reject }
    return done
  }

  /**
   * Ends the change once the new set alone holds, at its own write quorum,
   * every record durable when it began, and each segment new to the set has
   * caught up to it.
   */
  #checkTransition(): void {
    const t = this.#transition
    if (!t || this.#closed || this.#fenced) return
    const old = this.#sets()[0]
    const fresh = t.target.members.filter(m => !old.members.includes(m))
    for (const [pg, lsn] of t.need) {
      if (this.#quorum.setScl(t.target, pg) < lsn) return
      for (const m of fresh) if (this.#quorum.segmentScl(m, pg) < lsn) return
    }
    this.#transition = null
    this.#meta.sets = [t.target]
    try {
      this.#writeOwnMeta()
    } catch (err) {
      // Runs from a segment's message: a newer handle opened the volume (this one is now fenced),
      // so the change fails for whoever asked for it; nothing is thrown into the message loop.
      t.reject(err as Error)
      return
    }
    this.#quorum.setSets(this.#meta.sets)
    this.#broadcastMembers()
    t.resolve()
  }

  #broadcastMembers(): void {
    const members = this.#slots()
    for (const id of members) if (this.#ready[id]) this.#ports[id]!.postMessage({ t: 'members', epoch: this.epoch, members } satisfies ClientRequest)
  }

  /** replaceAfterMs: a member that stays down that long is replaced (one change at a time). */
  #armReplace(id: number): void {
    if (!this.#o.replaceAfterMs || this.#replaceTimers.has(id) || !this.#slots().includes(id)) return
    this.#replaceTimers.set(id, this.#clock.setTimeout(() => {
      this.#replaceTimers.delete(id)
      if (this.#closed || this.#fenced || this.#storage.isUp(id) || !this.#slots().includes(id)) return
      if (this.#transition || this.#sets().length !== 1) { this.#armReplace(id); return }
      this.replaceSegment(id).catch(() => this.#armReplace(id))
    }, this.#o.replaceAfterMs))
  }

  // ------------------------------------------------------------------ writes

  /**
   * Writes one mini-transaction: every entry becomes one redo record, in
   * order, and the last is the CPL. Resolves once the CPL is durable
   * (<= VDL); rejects with HEXAD_QUORUM_LOST if 4/6 is not reached within
   * `quorumTimeoutMs` (the records stay queued and may still become durable).
   * `options.siblings`: see WriteOptions (group commit's wait).
   */
  async write(mtr: PageWrite[], options?: WriteOptions): Promise<WriteResult> {
    this.#checkOpen()
    const siblings = options?.siblings ?? 0
    if (typeof siblings !== 'number' || !Number.isInteger(siblings) || siblings < 0) throw badInput(`write(): siblings must be a non-negative integer, got ${String(siblings)}`)
    const encoded = this.#validate(mtr)
    let bytes = 0
    for (const e of encoded) bytes += e.bytes
    if (encoded.length > this.#o.lalLsns) throw badInput(`an MTR of ${encoded.length} records exceeds the LSN allocation limit of ${this.#o.lalLsns}`)
    if (bytes > this.#o.inflightBytesMax) throw badInput(`an MTR of ${bytes} bytes exceeds inflightBytesMax (${this.#o.inflightBytesMax})`)
    if (this.#allocWaiters.length || !this.#canAllocate(encoded.length, bytes)) {
      await new Promise<void>((resolve, reject) => this.#allocWaiters.push({ n: encoded.length, bytes, resolve, reject }))
      this.#checkOpen()
    }
    let cpl = 0
    for (let i = 0; i < encoded.length; i++) {
      const { pageId, ops } = encoded[i]
      const lsn = this.#nextLsn++
      const pg = Math.floor(pageId / this.pagesPerGroup)
      const last = i === encoded.length - 1
      const rec: RecordTuple = [lsn, pageId, this.#pgTail.get(pg) ?? 0, this.#pageLast.get(pageId) ?? -1, last ? RECORD_FLAG_CPL : 0, packOps(ops)]
      this.#pgTail.set(pg, lsn)
      this.#pageLast.set(pageId, lsn)
      let h = this.#history.get(pg)
      if (!h) { h = []; this.#history.set(pg, h); this.#groups = Math.max(this.#groups, pg + 1) }
      h.push(lsn)
      this.#quorum.allocated(lsn, pg, last)
      this.#pending.push(rec)
      this.#pendingBytes += estimate(rec)
      cpl = lsn
    }
    this.#inflightBytes += bytes
    this.#counters.writes++
    this.#pendingWrites++
    // The newest write speaks for what is still to come: a writer alone ships at once.
    this.#holdFor = siblings >= this.#o.commitSiblings ? Math.min(siblings + 1, COMMIT_GROUP_MAX) : 0
    const p = new Promise<WriteResult>((resolve, reject) => {
      const w: CommitWaiter = { cpl, bytes, resolve, reject, settled: false, deadline: this.#clock.now() + this.#o.quorumTimeoutMs }
      this.#commits.push(w)
      this.#armCommitTimer()
    })
    // Ship from a microtask: writers resumed by the same ack all join this frame.
    if (!this.#pumpQueued) { this.#pumpQueued = true; queueMicrotask(() => { this.#pumpQueued = false; this.#pump() }) }
    return p
  }

  #validate(mtr: PageWrite[]): Array<{ pageId: number; ops: EncodedOp[]; bytes: number }> {
    if (!Array.isArray(mtr) || mtr.length === 0) throw badInput('write() takes a non-empty array of { pageId, ops }')
    const maxPage = this.#o.maxGroups * this.pagesPerGroup
    return mtr.map((w, i) => {
      if (w === null || typeof w !== 'object') throw badInput(`write() entry #${i} must be an object { pageId, ops }`)
      const { pageId, ops } = w
      if (typeof pageId !== 'number' || !Number.isInteger(pageId) || pageId < 0 || pageId >= maxPage) {
        throw badInput(`write() entry #${i}: pageId must be an integer in 0..${maxPage - 1}, got ${String(pageId)}`)
      }
      if (!Array.isArray(ops) || ops.length === 0) throw badInput(`write() entry #${i} (page ${pageId}): ops must be a non-empty array`)
      let bytes = RECORD_OVERHEAD_BYTES
      const enc = ops.map((op, j) => {
        const e = validateOp(op, pageId, j, this.pageSize)
        bytes += 16 + (e[0] === 0 ? (e[1]?.length ?? 0) : e[0] === 1 ? e[2].length : 0)
        return e
      })
      return { pageId, ops: enc, bytes }
    })
  }

  #canAllocate(n: number, bytes: number): boolean {
    if (this.#nextLsn + n - 1 > Math.max(this.#quorum.vdl, this.#lalBase) + this.#o.lalLsns) return false
    return this.#inflightBytes === 0 || this.#inflightBytes + bytes <= this.#o.inflightBytesMax
  }

  /** The boxcar: ship what is queued as soon as a frame slot is free. */
  #pump(): void {
    const cap = Math.max(this.#o.shipmentsInflightMax, BULK_SHIPMENTS_MAX)
    while (this.#pending.length) {
      const undurable = this.#undurableShipments()
      if (undurable >= cap) break
      // A full frame gains nothing from waiting for more records: bulk writes keep up to
      // BULK_SHIPMENTS_MAX frames in flight (one 8 MB MTR 1.12x, eight 2 MB ones 1.31x against one).
      if (undurable >= this.#o.shipmentsInflightMax && this.#pendingBytes < this.#o.frameBytesMax) break
      // Group commit's wait: the writers said more MTRs are coming; a frame slot is free, but
      // a frame costs every segment a sync and a message whatever it carries.
      if (this.#holdFor > this.#pendingWrites && this.#pendingBytes < this.#o.frameBytesMax && this.#o.commitDelayMs > 0 && !this.#holdOver && !this.#closing) {
        this.#holdTimer ??= this.#clock.setTimeout(() => { if (!this.#closed) this.#shipHeld() }, this.#o.commitDelayMs)
        break
      }
      if (this.#holdTimer || this.#holdOver) {
        this.#counters.framesHeld++
        if (this.#holdTimer) { this.#clock.clearTimeout(this.#holdTimer); this.#holdTimer = null }
      }
      let n = 0
      let bytes = 0
      while (n < this.#pending.length && (n === 0 || bytes < this.#o.frameBytesMax)) bytes += estimate(this.#pending[n++])
      this.#pendingBytes -= bytes
      const records = n === this.#pending.length ? this.#pending : this.#pending.slice(0, n)
      // (a partial frame is a full one: what stays is counted as one write, which holds nothing back)
      this.#pendingWrites = n === this.#pending.length ? 0 : Math.min(this.#pendingWrites, 1)
      this.#pending = n === this.#pending.length ? [] : this.#pending.slice(n)
      // Placed once in shared memory and posted to every segment as a view (frame-arena.ts).
      const frame = encodeFrame({ epoch: this.epoch, vdl: this.#quorum.vdl, records }, this.#arena.alloc, this.#o.compressFrames)
      const s: Shipment = { seq: ++this.#shipSeq, frame, lastLsn: records[records.length - 1][0], sentAt: this.#clock.now() }
      this.#shipments.push(s)
      this.#counters.framesShipped++
      this.#counters.bytesShipped += frame.length
      const horizon = this.#advanceHorizon()
      for (const id of this.#slots()) this.#sendFrame(id, s, horizon)
    }
    if (this.#shipments.length && !this.#resendTimer && !this.#closed) this.#resendTimer = this.#clock.setTimeout(() => this.#resendStale(), RESEND_AFTER_MS)
  }

  #resendTimer: TimerHandle | null = null
  /** write() calls with records still in #pending */
  #pendingWrites = 0
  /** MTRs the pending frame may wait for (0: ship when a slot is free) */
  #holdFor = 0
  #holdTimer: TimerHandle | null = null
  /** set while #shipHeld's #pump runs: the wait is over */
  #holdOver = false

  /** Ends group commit's wait: what is pending ships now. */
  #shipHeld(): void {
    if (this.#holdTimer) { this.#clock.clearTimeout(this.#holdTimer); this.#holdTimer = null }
    this.#holdOver = true
    try { this.#pump() } finally { this.#holdOver = false }
  }

  /**
   * A frame not durable RESEND_AFTER_MS after it left is sent again to every
   * ready segment. Worker MessagePorts lose nothing, but a lossy transport
   * (the simulator's network) can drop a frame on the way to every segment,
   * and then no gossip can bring it back. Duplicates are harmless: a segment
   * indexes a record once.
   */
  #resendStale(): void {
    this.#resendTimer = null
    if (this.#closed || this.#fenced) return
    const now = this.#clock.now()
    const vcl = this.#quorum.vcl
    let waiting = false
    for (const s of this.#shipments) {
      if (s.lastLsn <= vcl) continue
      waiting = true
      if (now - s.sentAt < RESEND_AFTER_MS) continue
      s.sentAt = now
      for (const id of this.#slots()) {
        if (!this.#ready[id]) continue
        if (this.#sentBytes[id].has(s.seq)) this.#ports[id]!.postMessage({ t: 'frame', seq: s.seq, epoch: this.epoch, frame: s.frame } satisfies ClientRequest)
        else this.#sendFrame(id, s)
      }
    }
    if (waiting) this.#resendTimer = this.#clock.setTimeout(() => this.#resendStale(), RESEND_AFTER_MS)
  }

  // One timer for all commit deadlines (a timer per write cost more than the write's own
  // bookkeeping): deadlines grow in LSN order, so the first unsettled waiter is the next due.
  #commitTimer: TimerHandle | null = null
  /** no unsettled waiter before this index of #commits */
  #timeoutScan = 0

  #armCommitTimer(): void {
    if (this.#commitTimer || this.#closed) return
    let i = Math.max(this.#timeoutScan, this.#commitHead)
    while (i < this.#commits.length && this.#commits[i].settled) i++
    this.#timeoutScan = i
    if (i >= this.#commits.length) return
    this.#commitTimer = this.#clock.setTimeout(() => this.#onCommitTimer(), Math.max(0, this.#commits[i].deadline - this.#clock.now()) + 1)
  }

  #onCommitTimer(): void {
    this.#commitTimer = null
    if (this.#closed) return
    const now = this.#clock.now()
    let i = Math.max(this.#timeoutScan, this.#commitHead)
    for (; i < this.#commits.length; i++) {
      const w = this.#commits[i]
      if (w.settled) continue
      if (w.deadline > now) break
      w.settled = true
      const up = this.#ready.filter(Boolean).length
      const err = new HexadError('HEXAD_QUORUM_LOST', `write at LSN ${w.cpl} did not reach 4 of 6 segments within ${this.#o.quorumTimeoutMs} ms (${up} segments up, VDL ${this.vdl}); it is not acknowledged and may still become durable (whenDurable(err.lsn) tells when)`)
      w.reject(Object.assign(err, { lsn: w.cpl }))
    }
    this.#timeoutScan = i
    this.#armCommitTimer()
  }

  #undurableShipments(): number {
    let n = 0
    for (let i = this.#shipments.length - 1; i >= 0 && this.#shipments[i].lastLsn > this.#quorum.vcl; i--) n++
    return n
  }

  #sendFrame(id: number, s: Shipment, horizon?: number): void {
    const port = this.#ports[id]
    if (!port || !this.#ready[id]) return
    if (this.#lagBytes[id] > this.#o.segmentLagBytesMax) return // too far behind: gossip will catch it up
    this.#sentBytes[id].set(s.seq, s.frame.length)
    this.#lagBytes[id] += s.frame.length
    const m: Extract<ClientRequest, { t: 'frame' }> = { t: 'frame', seq: s.seq, epoch: this.epoch, frame: s.frame, horizon }
    if (horizon !== undefined && this.#pinsRide) m.pins = this.#metaPins
    port.postMessage(m)
  }

  /**
   * Moves the read horizon (min of VDL and pinned read points) and returns it
   * if segments have not been told it yet. Frames carry it; a standalone
   * message goes out only when no frame does ({@link #scheduleHorizon}), so a
   * commit costs six messages, not twelve. A late horizon only makes
   * segments keep versions a little longer.
   */
  #advanceHorizon(): number | undefined {
    let h = this.#quorum.vdl
    for (const lsn of this.#pins.values()) if (lsn < h) h = lsn
    if (this.#timeline || this.#meta.backtrack || this.#meta.kept) for (const lsn of this.#keptLsns()) if (lsn < h) h = lsn
    if (h > this.#retainedFrom) this.#retainedFrom = h
    if (this.#retainedFrom === this.#horizonSent) return undefined
    this.#horizonSent = this.#retainedFrom
    return this.#retainedFrom
  }

  #sendHorizon(): void {
    const h = this.#advanceHorizon()
    if (h === undefined) return
    const m: Extract<ClientRequest, { t: 'horizon' }> = { t: 'horizon', epoch: this.epoch, lsn: h }
    if (this.#pinsRide) m.pins = this.#metaPins
    for (const id of this.#slots()) if (this.#ready[id]) this.#ports[id]!.postMessage(m)
  }

  #horizonTimer: TimerHandle | null = null
  #scheduleHorizon(): void {
    if (this.#horizonTimer || this.#closed) return
    this.#horizonTimer = this.#clock.setTimeout(() => { this.#horizonTimer = null; if (!this.#closed && !this.#fenced) this.#sendHorizon() }, HORIZON_DELAY_MS)
    this.#clock.unref(this.#horizonTimer)
  }

  /** Called whenever SCLs arrive: moves VDL, resolves commits, frees slots. */
  #onScl(id: number, scl: SclList): void {
    const before = this.#quorum.vdl
    this.#quorum.report(id, scl)
    if (this.#transition) this.#checkTransition()
    this.#afterQuorum(before)
  }

  /** After the quorum state changed: moves reads, resolves commits the VDL now covers, frees slots. */
  #afterQuorum(vdlBefore: number): void {
    if (this.#readWaiters.size) for (const r of [...this.#readWaiters]) { this.#readWaiters.delete(r); this.#route(r) }
    if (this.#quorum.vdl === vdlBefore) { this.#pump(); return }
    const vdl = this.#quorum.vdl
    while (this.#commitHead < this.#commits.length && this.#commits[this.#commitHead].cpl <= vdl) {
      const w = this.#commits[this.#commitHead++]
      this.#inflightBytes -= w.bytes
      if (!w.settled) { w.settled = true; w.resolve({ lsn: w.cpl }) }
    }
    if (this.#commitHead >= this.#commits.length && this.#commitTimer) { this.#clock.clearTimeout(this.#commitTimer); this.#commitTimer = null }
    if (this.#commitHead > 1024 && this.#commitHead * 2 > this.#commits.length) {
      this.#commits.splice(0, this.#commitHead)
      this.#timeoutScan = Math.max(0, this.#timeoutScan - this.#commitHead)
      this.#commitHead = 0
    }
    const vcl = this.#quorum.vcl
    let drop = 0
    while (drop < this.#shipments.length && this.#shipments[drop].lastLsn <= vcl) drop++
    if (drop) this.#shipments.splice(0, drop)
    this.#trimHistory()
    if (this.#durableWaiters.length) {
      const still = []
      for (const w of this.#durableWaiters) if (w.lsn <= vdl) w.resolve(); else still.push(w)
      this.#durableWaiters = still
    }
    while (this.#allocWaiters.length && this.#canAllocate(this.#allocWaiters[0].n, this.#allocWaiters[0].bytes)) this.#allocWaiters.shift()!.resolve()
    this.#pump()
    this.#scheduleHorizon()
    if (this.#timeline) this.#sampleTimeline()
  }

  #trimHistory(): void {
    const from = this.#retainedFrom
    for (const h of this.#history.values()) {
      if (h.length < 64) continue
      let i = 0
      while (i + 1 < h.length && h[i + 1] <= from) i++
      if (i > 32) h.splice(0, i)
    }
  }

  // ------------------------------------------------------------------ reads

  /**
   * Reads a page as of read point `at` (default: the current VDL) from one
   * segment that holds every record it needs; no quorum. A read that a
   * segment answers slowly is re-issued to the next fastest one.
   */
  async readPage(pageId: number, options: { at?: number } = {}): Promise<Uint8Array> {
    this.#checkOpen()
    const maxPage = this.#o.maxGroups * this.pagesPerGroup
    if (typeof pageId !== 'number' || !Number.isInteger(pageId) || pageId < 0 || pageId >= maxPage) throw badInput(`readPage: pageId must be an integer in 0..${maxPage - 1}, got ${String(pageId)}`)
    const at = options?.at ?? this.#quorum.vdl
    if (typeof at !== 'number' || !Number.isInteger(at) || at < 0) throw badInput(`readPage: at must be a non-negative integer LSN, got ${String(at)}`)
    if (at > this.#quorum.vdl) throw badInput(`readPage: read point ${at} is above the VDL ${this.#quorum.vdl}; only durable state can be read`)
    if (at < this.#retainedFrom && !this.#isDurablePin(at)) throw badInput(`readPage: read point ${at} is older than the oldest retained LSN ${this.#retainedFrom}; pin a read point with pinReadPoint() to read it later`)
    const pg = Math.floor(pageId / this.pagesPerGroup)
    const need = this.#needFor(pageId, pg, at)
    this.#counters.reads++
    const pinId = ++this.#pinSeq
    this.#pins.set(pinId, at)
    return new Promise<Uint8Array>((resolve, reject) => {
      const req: ReadReq = { id: ++this.#reqSeq, pageId, at, need, pg, tried: new Set(), sentAt: new Map(), pinId, resolve, reject, deadline: this.#clock.now() + this.#o.readTimeoutMs, done: false }
      this.#reads.set(req.id, req)
      this.#route(req)
    })
  }

  /** The page's "not modified since" LSN at `at`: holding the PG up to it is enough. */
  #needFor(pageId: number, pg: number, at: number): number {
    const last = this.#pageLast.get(pageId)
    if (last !== undefined && last <= at) return last
    const h = this.#history.get(pg)
    if (!h || h.length === 0) return 0
    let lo = 0
    let hi = h.length - 1
    // Older than every write this handle knows of: a segment holding the PG up to the oldest one holds it up to `at`.
    if (h[0] > at) return h[0]
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1
      if (h[mid] <= at) lo = mid; else hi = mid - 1
    }
    return h[lo]
  }

  #route(req: ReadReq): void {
    if (req.done) return
    if (this.#fenced) return this.#finishRead(req, this.#fenced)
    if (this.#closed) return this.#finishRead(req, closedError())
    const candidates: number[] = []
    for (const id of this.#slots()) {
      if (this.#ready[id] && !req.tried.has(id) && this.#quorum.segmentScl(id, req.pg) >= req.need) candidates.push(id)
    }
    // Expected wait = smoothed latency x (reads already queued there + 1).
    const cost = (id: number) => Math.max(this.#latency[id], 0.05) * (this.#readsOut[id] + 1)
    candidates.sort((a, b) => cost(a) - cost(b))
    if (candidates.length === 0) {
      if (this.#clock.now() >= req.deadline) {
        return this.#finishRead(req, new HexadError('HEXAD_QUORUM_LOST', `no segment of protection group ${req.pg} could serve page ${req.pageId} at ${req.at} (needs SCL >= ${req.need}) within ${this.#o.readTimeoutMs} ms`))
      }
      // Wait for an SCL to move or a segment to come back; retry those already tried after a pause.
      this.#readWaiters.add(req)
      this.#clock.clearTimeout(req.hedge)
      req.hedge = this.#clock.setTimeout(() => { this.#readWaiters.delete(req); req.tried.clear(); this.#route(req) }, 20)
      return
    }
    const id = candidates[0]
    req.tried.add(id)
    req.sentAt.set(id, this.#clock.now())
    this.#readsOut[id]++
    if (req.tried.size > 1) this.#counters.readsReissued++
    this.#ports[id]!.postMessage({ t: 'read', id: req.id, epoch: this.epoch, pageId: req.pageId, at: req.at, need: req.need } satisfies ClientRequest)
    this.#clock.clearTimeout(req.hedge)
    const hedgeMs = Math.max(5, cost(id) * 4)
    req.hedge = this.#clock.setTimeout(() => this.#route(req), hedgeMs)
  }

  #onRead(id: number, m: Extract<ClientReply, { t: 'page' | 'read-fail' }>): void {
    const req = this.#reads.get(m.id)
    if (!req || req.done) { if (this.#readsOut[id] > 0) this.#readsOut[id]--; return }
    const sent = req.sentAt.get(id)
    if (sent !== undefined && this.#readsOut[id] > 0) this.#readsOut[id]--
    if (m.t === 'page') {
      if (sent !== undefined) {
        const ms = this.#clock.now() - sent
        this.#latency[id] = this.#latency[id] === 0 ? ms : this.#latency[id] * 0.8 + ms * 0.2
      }
      return this.#finishRead(req, null, m.image)
    }
    if (m.reason === 'corrupt') this.#readErrors[id]++
    if (m.reason === 'below-horizon') return this.#finishRead(req, badInput(m.detail))
    // A clone's segment, complete for this page, holds nothing of it: the parent's image at the clone LSN is the page.
    if (m.reason === 'absent' && this.#parent) {
      this.#parent.read(req.pageId).then(image => { if (!req.done) this.#finishRead(req, null, new Uint8Array(image)) }, err => { if (!req.done) this.#finishRead(req, err as Error) })
      return
    }
    this.#route(req)
  }

  #finishRead(req: ReadReq, err: Error | null, image?: Uint8Array): void {
    req.done = true
    this.#clock.clearTimeout(req.hedge)
    this.#readWaiters.delete(req)
    this.#reads.delete(req.id)
    this.#pins.delete(req.pinId)
    if (err) req.reject(err)
    else req.resolve(image!)
  }

  /**
   * Resolves once the VDL reaches `lsn` (at once if it has); rejects if the
   * handle is fenced or closed first. For a write that failed with
   * HEXAD_QUORUM_LOST (its error carries `lsn`), this tells when it did
   * become durable after all.
   */
  whenDurable(lsn: number): Promise<void> {
    this.#checkOpen()
    if (this.#quorum.vdl >= lsn) return Promise.resolve()
    return new Promise((resolve, reject) => this.#durableWaiters.push({ lsn, resolve, reject }))
  }

  /**
   * Keeps every page version needed to read at `at` (default: the VDL) until
   * released: the volume tells the segments the lowest read point in use, and
   * they collect nothing it needs.
   */
  pinReadPoint(at: number = this.#quorum.vdl): ReadPoint {
    this.#checkOpen()
    if (!Number.isInteger(at) || (at < this.#retainedFrom && !this.#isDurablePin(at)) || at > this.#quorum.vdl) {
      throw badInput(`pinReadPoint: ${String(at)} must be an LSN between the oldest retained ${this.#retainedFrom} and the VDL ${this.#quorum.vdl}`)
    }
    const id = ++this.#pinSeq
    this.#pins.set(id, at)
    const release = () => { this.#pins.delete(id) }
    return { lsn: at, release, [Symbol.dispose]: release }
  }

  // ------------------------------------------------------------------ segments

  #attach(id: number, port: ClientPort): void {
    this.#ports[id] = port
    this.#ready[id] = false
    this.#sentBytes[id].clear()
    this.#lagBytes[id] = 0
    port.on('message', (m: ClientReply) => this.#onMessage(id, port, m))
    port.unref?.()
  }

  async #connect(id: number): Promise<void> {
    if (this.#closed || this.#fenced) return
    const port = this.#storage.connect(id)
    if (!port) return
    this.#ports[id]?.close()
    this.#attach(id, port)
    const r = await this.#request(id, { t: 'hello', id: 0, epoch: this.epoch, truncations: this.#meta.truncations, members: this.#slots(), pins: this.#durablePins() }, this.#o.readTimeoutMs)
    if (r === null && this.#ports[id] === port && !this.#closed && !this.#fenced && this.#storage.isUp(id)) {
      // No answer (a lost message): say hello again on a fresh port.
      this.#clock.setTimeout(() => { if (this.#ports[id] === port && !this.#ready[id]) void this.#connect(id) }, HELLO_RETRY_MS)
      return
    }
    // A segment that already took a newer epoch: another handle opened the volume, this one is fenced.
    if (r?.t === 'fenced') return this.#fence(id, r.epoch)
    if (r?.t !== 'hello-ok' || this.#ports[id] !== port) return
    this.#ready[id] = true
    // The pins as they are now: a snapshot made while the hello was on its way is not in it.
    port.postMessage({ t: 'pins', epoch: this.epoch, pins: this.#durablePins() } satisfies ClientRequest)
    this.#horizonSent = -1
    this.#sendHorizon()
    // Frames not yet durable are sent again; anything older comes by gossip.
    for (const s of this.#shipments) if (s.lastLsn > this.#quorum.vcl) this.#sendFrame(id, s)
    this.#onScl(id, r.scl)
  }

  #disconnect(id: number): void {
    this.#ports[id]?.close()
    this.#ports[id] = null
    this.#ready[id] = false
    this.#sentBytes[id].clear()
    this.#lagBytes[id] = 0
    this.#readsOut[id] = 0
    for (const [reqId, r] of this.#requests) if (r.segment === id) { this.#requests.delete(reqId); r.resolve({ t: 'error', message: `segment ${id} went down` }) }
    for (const req of this.#reads.values()) if (req.sentAt.has(id) && !req.done) this.#route(req)
  }

  #request(id: number, msg: ClientRequest & { id: number }, timeoutMs: number): Promise<ClientReply | null> {
    const port = this.#ports[id]
    if (!port) return Promise.resolve(null)
    const reqId = ++this.#reqSeq
    return new Promise(resolve => {
      const timer = this.#clock.setTimeout(() => { this.#requests.delete(reqId); resolve(null) }, timeoutMs)
      this.#requests.set(reqId, { segment: id, resolve: m => { this.#clock.clearTimeout(timer); resolve(m) } })
      port.postMessage({ ...msg, id: reqId } as ClientRequest)
    })
  }

  #onMessage(id: number, port: ClientPort, m: ClientReply): void {
    if (this.#ports[id] !== port) return
    switch (m.t) {
      case 'ack': {
        // An SCL of a newer epoch describes the history after that writer's truncation: never an ack of ours.
        if (m.epoch > this.epoch) return this.#fence(id, m.epoch)
        for (const seq of m.seqs) {
          const b = this.#sentBytes[id].get(seq)
          if (b !== undefined) { this.#sentBytes[id].delete(seq); this.#lagBytes[id] -= b; this.#ackedBytes[id] += b }
        }
        return this.#onScl(id, m.scl)
      }
      case 'scl':
        if (m.epoch > this.epoch) return this.#fence(id, m.epoch)
        if (m.epoch < this.epoch) return // sent before this segment took our epoch: the old history's SCL
        return this.#onScl(id, m.scl)
      case 'page':
      case 'read-fail': return this.#onRead(id, m)
      case 'need-base': return this.#supplyBases(id, port, m.pageIds)
      case 'fenced':
        if (m.id !== undefined && this.#requests.has(m.id)) break
        return this.#fence(id, m.epoch)
      case 'error':
        if (m.id !== undefined && this.#requests.has(m.id)) break
        return
    }
    if ('id' in m && m.id !== undefined) {
      const r = this.#requests.get(m.id)
      if (r) { this.#requests.delete(m.id); r.resolve(m) }
    }
  }

  #fence(id: number, epoch: number): void {
    if (this.#fenced) return
    this.#fenced = new HexadError('HEXAD_FENCED', `this volume handle (epoch ${this.epoch}) was fenced: ${id >= 0 ? `segment ${id}` : 'volume.meta'} is at epoch ${epoch}, so another handle has opened ${this.dir}`)
    for (let i = this.#commitHead; i < this.#commits.length; i++) {
      const w = this.#commits[i]
      if (!w.settled) { w.settled = true; w.reject(this.#fenced) }
    }
    this.#commits.length = 0
    this.#commitHead = 0
    this.#timeoutScan = 0
    for (const a of this.#allocWaiters.splice(0)) a.reject(this.#fenced)
    for (const w of this.#durableWaiters.splice(0)) w.reject(this.#fenced)
    for (const r of [...this.#reads.values()]) this.#finishRead(r, this.#fenced)
    if (this.#transition) { this.#transition.reject(this.#fenced); this.#transition = null }
    this.#pending = []
    this.#pendingBytes = 0
    this.#pendingWrites = 0
    if (this.#holdTimer) { this.#clock.clearTimeout(this.#holdTimer); this.#holdTimer = null }
    unregisterLive(this)
  }

  #checkOpen(): void {
    if (this.#closed) throw closedError()
    if (this.#fenced) throw this.#fenced
  }

  // ------------------------------------------------------------------ stats and lifecycle

  stats(): VolumeStats {
    const segments: SegmentView[] = []
    const slots = this.#slots()
    // Indexed by slot id: the first six always, replacements after them.
    for (let id = 0; id < Math.max(SEGMENTS, slots[slots.length - 1] + 1); id++) {
      const member = slots.includes(id)
      segments.push({
        id, az: this.#azOfSlot(id), up: member && this.#ready[id], member, scl: this.#volumeScl(id), pgScl: [...this.#quorum.scl[id]],
        bytesWritten: this.#ackedBytes[id], readLatencyMs: round(this.#latency[id]), readErrors: this.#readErrors[id],
      })
    }
    return {
      epoch: this.epoch, vcl: this.#quorum.vcl, vdl: this.#quorum.vdl, nextLsn: this.#nextLsn, groups: this.#groups,
      pageSize: this.pageSize, pagesPerGroup: this.pagesPerGroup, ...this.#counters, inflightBytes: this.#inflightBytes, segments,
    }
  }

  /** Each segment worker's own counters (files, fsyncs, corruption found, gap fill), null for a segment that is down. */
  async segmentStats(): Promise<Array<SegmentStats | null>> {
    this.#checkOpen()
    const slots = this.#slots()
    return Promise.all(Array.from({ length: Math.max(SEGMENTS, slots[slots.length - 1] + 1) }, async (_, id) => {
      if (!this.#ports[id] || !slots.includes(id)) return null
      const r = await this.#request(id, { t: 'stats', id: 0 }, 5000)
      return r?.t === 'stats-ok' ? r.stats : null
    }))
  }

  /** Highest L such that this segment holds every record of every PG up to L. */
  #volumeScl(id: number): number {
    let scl = this.#quorum.lastAllocated
    for (const [pg, h] of this.#history) {
      const s = this.#quorum.segmentScl(id, pg)
      if (h.length === 0 || s >= h[h.length - 1]) continue
      if (s < h[0]) { scl = Math.min(scl, s); continue }
      let lo = 0
      let hi = h.length - 1
      while (lo < hi) { const mid = (lo + hi) >> 1; if (h[mid] > s) hi = mid; else lo = mid + 1 }
      scl = Math.min(scl, h[lo] - 1)
    }
    return scl
  }

  /**
   * Waits for acknowledged-pending writes to settle (up to the quorum
   * timeout), then stops this handle; the segment workers stop with the last
   * handle on the directory.
   */
  close(): Promise<void> {
    if (this.#closing) return this.#closing
    this.#closing = (async () => {
      // a frame waiting for sibling writers ships now: nothing more is coming
      if (this.#holdTimer) this.#shipHeld()
      const pendingWrites = this.#commits.slice(this.#commitHead).filter(w => !w.settled)
      await Promise.all(pendingWrites.map(w => new Promise<void>(resolve => {
        const orig = { res: w.resolve, rej: w.reject }
        w.resolve = r => { orig.res(r); resolve() }
        w.reject = e => { orig.rej(e); resolve() }
      })))
      this.#closed = true
      this.#recordCleanClose()
      unregisterLive(this)
      if (this.#sampleTimer) this.#clock.clearTimeout(this.#sampleTimer)
      this.#timeline?.close()
      for (const a of this.#allocWaiters.splice(0)) a.reject(closedError())
      for (const w of this.#durableWaiters.splice(0)) w.reject(closedError())
      for (const r of [...this.#reads.values()]) this.#finishRead(r, closedError())
      if (this.#commitTimer) this.#clock.clearTimeout(this.#commitTimer)
      if (this.#horizonTimer) this.#clock.clearTimeout(this.#horizonTimer)
      if (this.#resendTimer) this.#clock.clearTimeout(this.#resendTimer)
      if (this.#holdTimer) { this.#clock.clearTimeout(this.#holdTimer); this.#holdTimer = null }
      this.#storage.off('up', this.#onUp)
      this.#storage.off('down', this.#onDown)
      for (let id = 0; id < SLOTS_MAX; id++) { this.#ports[id]?.close(); this.#ports[id] = null; this.#ready[id] = false }
      for (const t of this.#replaceTimers.values()) this.#clock.clearTimeout(t)
      this.#replaceTimers.clear()
      for (const r of this.#requests.values()) r.resolve({ t: 'error', message: 'closed' })
      this.#requests.clear()
      await this.#storage.release()
      await this.#parent?.close()
    })()
    return this.#closing
  }

  /**
   * Every LSN this handle allocated is durable: say so in volume.meta, so the
   * next open need not truncate past the VDL (a range per open, kept in every
   * meta and gossip message for good, and new LSNs a LAL further on each
   * time). Not when fenced (the meta is a newer handle's), nor with a
   * backtrack to redo or a write that never became durable.
   */
  #recordCleanClose(): void {
    if (this.#fenced || this.#meta.backtrack || this.#quorum.lastAllocated > this.#quorum.vdl) return
    try {
      this.#meta.closed = { epoch: this.#meta.epoch, lsn: this.#quorum.vdl }
      this.#writeOwnMeta()
    } catch {
      delete this.#meta.closed // fenced meanwhile, or the disk refused: the next open truncates, as after a crash
    }
  }

  async [Symbol.asyncDispose](): Promise<void> { await this.close() }
}

/** Fault injection for tests and drills: stop and restart segment workers or whole AZs. */
export class VolumeFaults {
  readonly #storage: StorageLike
  readonly #check: () => void
  constructor(storage: StorageLike, check: () => void) { this.#storage = storage; this.#check = check }
  /** Stops segment worker `id` (0..5) as a crash would: its thread ends, its files stay. */
  stopWorker(id: number): Promise<void> { this.#check(); return this.#storage.stopWorker(id) }
  /** Stops both segment workers of availability zone `az` (0..2). */
  stopAZ(az: number): Promise<void> { this.#check(); return this.#storage.stopAZ(az) }
  /** Restarts a stopped segment worker on its files; it catches up by gap fill. */
  restartWorker(id: number): Promise<void> { this.#check(); return this.#storage.restartWorker(id) }
  restartAZ(az: number): Promise<void> { this.#check(); return this.#storage.restartAZ(az) }
}

/** Bytes a queued record adds to a frame (its ops are packed: see write()). */
function estimate(r: RecordTuple): number {
  return RECORD_OVERHEAD_BYTES + (r[R_OPS] as Uint8Array).length
}

function closedError(): HexadError {
  return new HexadError('HEXAD_CLOSED', 'the volume is closed')
}

function round(n: number): number { return Math.round(n * 1000) / 1000 }
