/**
 * A cluster: one volume, the writer instance that runs in the application's
 * thread, up to 15 read replicas (each in its own worker thread), endpoints
 * that route connections to them, and failover.
 *
 * Failover (`cluster.faults.crashWriter()` or a planned `switchover()`): the
 * best replica (lowest tier, then largest cache, then least lag) is
 * promoted: the volume is opened again under a new epoch (recovery decides
 * what is durable; the old writer's handle is fenced), a new writer engine
 * starts in this thread, and the replica's cache becomes its cache when the
 * replica had applied everything the recovery kept (else the new writer
 * starts cold: pages the replica held may predate MTRs it never received).
 * Transactions in flight on the old writer fail with HEXAD_FENCED (retry on
 * the new writer: `cluster.writer`, or a 'writer' endpoint connection, which
 * follows it). The other replicas restart on the new writer (cold caches).
 *
 * Auto-scaling (`setAutoScaling`) adds replicas while a load metric is above
 * its target and removes the ones it added when it falls below half of it,
 * within [minReaders, maxReaders], at most once per cooldown; each change is
 * a 'scaling' event.
 */
import { EventEmitter } from 'node:events'
import { badInput, HexadError } from '../common/errors.js'
import { destroyVolume, openVolume, type Volume, type VolumeOptions } from '../volume/volume.js'
import { Database } from './database.js'
import { Endpoints, type Connection, type EndpointSpec } from './endpoints.js'
import { Engine } from './kv.js'
import { Reader, readerOptions, type ReaderOptions } from './reader.js'
import { configureSql, type Dialect } from '../sql/index.js'
import { startBackup, type BackupAgent, type BackupOptions } from '../backup/agent.js'

export interface ClusterOptions extends VolumeOptions {
  /** bytes of pages the writer's buffer cache holds (default 64 MiB) */
  cacheBytes?: number
  /** SQL dialect of `writer.sql()` and sessions unless a call says otherwise: 'postgres' (default) or 'mysql' */
  dialect?: Dialect
  /** continuous backup to a store (point-in-time restore with `restore()`); see `cluster.backup` */
  backup?: BackupOptions
}

export interface AutoScalingPolicy {
  minReaders: number
  maxReaders: number
  /**
   * 'connections': open connections through the 'reader' endpoint per
   * replica; 'utilization': the replicas' mean event-loop utilization (0..1)
   * since the last evaluation.
   */
  target: { metric: 'connections' | 'utilization'; value: number }
  /** least time between two changes (default 60 s) */
  cooldownMs?: number
  /** how often the metric is evaluated (default 1 s) */
  evaluateEveryMs?: number
  /** cache of the replicas it adds (default 64 MiB) */
  cacheBytes?: number
}

export interface ScalingEvent {
  action: 'add' | 'remove'
  reader: string
  metric: AutoScalingPolicy['target']['metric']
  /** the metric's value that caused the change */
  value: number
  readers: number
}

export interface FailoverReport {
  /** the replica promoted, or null when there was none (a new writer instance started) */
  promoted: string | null
  oldEpoch: number
  newEpoch: number
  /** the VDL recovery kept */
  vdl: number
  /** whether the promoted replica's cache became the new writer's cache */
  cacheKept: boolean
  pagesKept: number
  /** from the start of failover to the new writer accepting writes */
  ms: number
}

export interface BacktrackReport {
  /** the VDL before and the LSN rewound to */
  from: number
  to: number
  /** pages written again with their image at `to` */
  pages: number
  /** the LSN of the rewound state (new redo on top of the history) */
  lsn: number
  /** from the pause to the new writer accepting writes */
  ms: number
}

export interface CloneOptions {
  /** directory of the clone (must not exist, or be empty) */
  dir: string
  /** the clone writer's buffer cache (default: the parent's) */
  cacheBytes?: number
  dialect?: Dialect
  /** the clone's own backtrack window (default: the parent's) */
  backtrackWindowMs?: number
  /** the clone's own continuous backup (a store of its own) */
  backup?: BackupOptions
}

export class Cluster extends EventEmitter {
  #volume: Volume
  #writer: Database
  #engine: Engine
  readonly #volumeOptions: VolumeOptions
  readonly #cacheBytes: number
  readonly #dialect: Dialect | undefined
  #closing: Promise<void> | null = null
  /** a failover or a backtrack under way (one at a time) */
  #failing: Promise<FailoverReport | BacktrackReport> | null = null
  /** closes of volume handles left behind by failovers */
  readonly #retired: Array<Promise<void>> = []
  readonly #readers = new Map<string, Reader>()
  readonly #endpoints: Endpoints
  #backup: BackupAgent | null = null
  failovers = 0

  /** Fault injection for the compute tier. */
  readonly faults = {
    /** The writer crashes: it stops at once, and the best replica is promoted. Resolves when the new writer accepts writes. */
    crashWriter: (): Promise<FailoverReport> => this.#failover('crash'),
  }

  /** @internal */
  constructor(volume: Volume, engine: Engine, volumeOptions: VolumeOptions, cacheBytes: number, dialect: Dialect | undefined) {
    super()
    this.#volume = volume
    this.#engine = engine
    this.#volumeOptions = volumeOptions
    this.#cacheBytes = cacheBytes
    this.#dialect = dialect
    this.#writer = this.#makeWriter(engine, volume)
    this.#endpoints = new Endpoints(this)
  }

  /** The continuous backup agent (`status()`, `flush()`), or null when the cluster was opened without `backup`. */
  get backup(): BackupAgent | null { return this.#backup }

  /** @internal */
  async _startBackup(options: BackupOptions): Promise<void> {
    this.#backup = await startBackup(() => this.#volume, options)
  }

  /** The volume under the current writer. */
  get volume(): Volume { return this.#volume }
  /** The current writer's database handle (a new one after failover; the old one answers HEXAD_FENCED). */
  get writer(): Database { return this.#writer }

  stats() {
    return { writer: this.writer.stats(), volume: this.volume.stats(), readers: [...this.#readers.keys()], failovers: this.failovers, endpoints: this.#endpoints.names() }
  }

  /**
   * Starts a read replica in its own worker thread. It serves reads at its
   * own read point, which follows the writer's durable MTRs (replica lag:
   * `reader.stats()`); it never sees half an MTR or half a transaction.
   */
  addReader(options: ReaderOptions): Reader {
    this.#checkOpen()
    const o = readerOptions(options, this.#readers.keys(), this.#readers.size)
    const r = new Reader(this.#engine, this.#volume, o)
    this.#readers.set(o.name, r)
    return r
  }

  /** Stops and forgets the reader `name`. */
  async removeReader(name: string): Promise<void> {
    const r = this.#readers.get(name)
    if (!r) throw badInput(`no reader named ${JSON.stringify(name)}`)
    this.#readers.delete(name)
    await r.close()
  }

  /** The running readers. */
  get readers(): Reader[] { return [...this.#readers.values()] }

  /** The reader `name`, if running. */
  reader(name: string): Reader | undefined { return this.#readers.get(name) }

  /**
   * A connection through an endpoint: 'writer' (follows the current writer),
   * 'reader' (one of the healthy replicas, the least used; the writer when
   * there is none), a custom endpoint's name, or an instance ('writer' or a
   * replica's name, as `{ instance }`). A replica connection whose replica
   * goes away moves to another member on its next call.
   */
  connect(endpoint: string | { instance: string }): Connection {
    this.#checkOpen()
    return this.#endpoints.connect(endpoint)
  }

  /**
   * A custom endpoint: `{ name, type: 'READER' | 'ANY', members: [...] }`
   * (a static list) or `{ name, type, excluded: [...] }` (every instance but
   * those, including ones added later). 'ANY' may route to the writer too.
   */
  createEndpoint(spec: EndpointSpec): void {
    this.#checkOpen()
    this.#endpoints.create(spec)
  }

  deleteEndpoint(name: string): void { this.#endpoints.delete(name) }

  #scaling: { policy: Required<AutoScalingPolicy>; timer: NodeJS.Timeout; last: number; added: string[]; seq: number } | null = null

  /**
   * Turns replica auto-scaling on (or off with null). Replicas it adds are
   * named `auto-<n>`, tier 15 (promoted last); it removes only those.
   */
  setAutoScaling(policy: AutoScalingPolicy | null): void {
    this.#checkOpen()
    if (this.#scaling) { clearInterval(this.#scaling.timer); this.#scaling = null }
    if (policy === null) return
    if (!policy || typeof policy !== 'object') throw badInput('setAutoScaling takes { minReaders, maxReaders, target: { metric, value }, cooldownMs? } or null')
    const { minReaders, maxReaders, target } = policy
    if (!Number.isInteger(minReaders) || minReaders < 0 || !Number.isInteger(maxReaders) || maxReaders < minReaders || maxReaders > 15) {
      throw badInput(`auto-scaling needs integers 0 <= minReaders <= maxReaders <= 15, got ${String(minReaders)} and ${String(maxReaders)}`)
    }
    if (!target || (target.metric !== 'connections' && target.metric !== 'utilization') || typeof target.value !== 'number' || !(target.value > 0)) {
      throw badInput(`auto-scaling target must be { metric: 'connections' | 'utilization', value > 0 }, got ${JSON.stringify(target)}`)
    }
    const full: Required<AutoScalingPolicy> = { cooldownMs: 60_000, evaluateEveryMs: 1000, cacheBytes: 64 << 20, ...policy }
    for (const k of ['cooldownMs', 'evaluateEveryMs', 'cacheBytes'] as const) {
      if (!Number.isInteger(full[k]) || full[k] < 0) throw badInput(`auto-scaling ${k} must be a non-negative integer, got ${String(full[k])}`)
    }
    const timer = setInterval(() => this.#evaluateScaling(), Math.max(10, full.evaluateEveryMs))
    timer.unref()
    this.#scaling = { policy: full, timer, last: -Infinity, added: [], seq: 0 }
    this.#evaluateScaling()
  }

  /** The metric auto-scaling looks at, now. */
  scalingMetric(metric: AutoScalingPolicy['target']['metric']): number {
    const readers = this.readers
    if (metric === 'connections') return this.#endpoints.readerEndpointConnections / Math.max(1, readers.length)
    if (readers.length === 0) return 0
    return readers.reduce((s, r) => s + r.utilization(), 0) / readers.length
  }

  #evaluateScaling(): void {
    const sc = this.#scaling
    if (!sc || this.#closing || this.#failing) return
    const { policy } = sc
    sc.added = sc.added.filter(n => this.#readers.has(n))
    const count = this.#readers.size
    const value = this.scalingMetric(policy.target.metric)
    const now = performance.now()
    let action: 'add' | 'remove' | null = null
    if (count < policy.minReaders) action = 'add'
    else if (count > policy.maxReaders && sc.added.length) action = 'remove'
    else if (now - sc.last >= policy.cooldownMs) {
      if (value > policy.target.value && count < policy.maxReaders) action = 'add'
      else if (value < policy.target.value / 2 && count > policy.minReaders && sc.added.length) action = 'remove'
    }
    if (!action) return
    sc.last = now
    let name: string
    if (action === 'add') {
      do { name = `auto-${++sc.seq}` } while (this.#readers.has(name))
      try { this.addReader({ name, tier: 15, cacheBytes: policy.cacheBytes }) } catch { return }
      sc.added.push(name)
    } else {
      name = sc.added.pop()!
      void this.removeReader(name).catch(() => {})
    }
    this.emit('scaling', { action, reader: name, metric: policy.target.metric, value, readers: this.#readers.size } satisfies ScalingEvent)
  }

  // ---------------------------------------------------------------- snapshots

  /**
   * A named snapshot of the cluster as of now (the VDL: every commit
   * acknowledged so far, whole transactions only). It is kept in the volume
   * (across restarts and failovers) until deleteSnapshot; read it with
   * openSnapshot. Returns its LSN.
   */
  snapshot(name: string): number {
    this.#checkOpen()
    return this.#volume.createSnapshot(name)
  }

  /** The snapshots, oldest first. */
  snapshots(): Array<{ name: string; lsn: number }> { return this.#volume.snapshots() }

  /** Deletes a snapshot (its pages may then be collected). */
  deleteSnapshot(name: string): void { this.#volume.deleteSnapshot(name) }

  /**
   * Reads a snapshot: a read-only instance (its own worker thread, like a
   * replica) fixed at the snapshot's LSN. Close it when done.
   */
  openSnapshot(name: string, options: { cacheBytes?: number } = {}): Reader {
    this.#checkOpen()
    const snap = this.#volume.snapshots().find(s => s.name === name)
    if (!snap) throw badInput(`no snapshot named ${JSON.stringify(name)}`)
    const o = readerOptions({ name: `snapshot:${name}`, tier: 15, cacheBytes: options.cacheBytes }, [], 0)
    return new Reader(this.#engine, this.#volume, o, snap.lsn)
  }

  // ---------------------------------------------------------------- clones, backtrack

  /**
   * A copy-on-write clone of the cluster as of now (everything acknowledged
   * so far), opened: a new cluster in `options.dir` whose volume shares
   * every page with this one until one side writes it. Creation copies
   * nothing (two small metadata files). Writes on either side are invisible
   * to the other. The clone reads through this volume, so this directory
   * stays (even after `destroy()`) until the clone is destroyed.
   */
  async clone(options: CloneOptions): Promise<Cluster> {
    this.#checkOpen()
    if (!options || typeof options !== 'object' || typeof options.dir !== 'string') throw badInput('clone() needs { dir }')
    const { dir, cacheBytes = this.#cacheBytes, dialect = this.#dialect, backtrackWindowMs, backup } = options
    this.#volume.createClone(dir)
    const { dir: _ignored, ...inherited } = this.#volumeOptions
    return openCluster({ ...inherited, ...(backtrackWindowMs !== undefined ? { backtrackWindowMs } : {}), dir, cacheBytes, dialect, backup })
  }

  /** The clones reading through this cluster's volume. */
  clones(): Array<{ dir: string; lsn: number }> { return this.#volume.clones() }

  /**
   * Closes the cluster and deletes its files; while clones still read
   * through it, it is only marked destroyed (it cannot be opened again) and
   * its files go with its last clone.
   */
  async destroy(): Promise<{ removed: string[]; kept: string[] }> {
    const dir = this.#volume.dir
    await this.close()
    return destroyVolume(dir)
  }

  /** How far back `backtrack()` can go now; null when backtrack is off (`backtrackWindowMs`). */
  backtrackWindow(): { earliest: Date; earliestLsn: number; latest: Date; latestLsn: number } | null {
    this.#checkOpen()
    return this.#volume.backtrackWindow()
  }

  /**
   * Rewinds the cluster in place to its state at moment `to` (a Date) or
   * LSN `to` (a VDL or a commit's LSN), within the backtrack window. It
   * pauses: wire connections are closed ('backtrack-start' event),
   * transactions not yet committed fail with HEXAD_CLOSED, commits in flight
   * settle; then every page changed since is written again as it was, and a
   * new writer starts (replicas restart). Later moments stay in the window,
   * so a backtrack can be undone by backtracking forward. Emits 'backtrack'.
   */
  async backtrack(to: Date | number, options: { onProgress?: (done: number, total: number) => void } = {}): Promise<BacktrackReport> {
    this.#checkOpen()
    if (this.#failing) throw new HexadError('HEXAD_CONFLICT', 'a failover or backtrack is already in progress')
    const vol = this.#volume
    const w = vol.backtrackWindow()
    if (!w) throw badInput('backtrack is off for this cluster: open it with backtrackWindowMs (how far back it may rewind)')
    let lsn: number
    if (to instanceof Date) {
      const t = to.getTime()
      if (Number.isNaN(t)) throw badInput('backtrack: invalid Date')
      if (t < w.earliest.getTime() || t > w.latest.getTime()) {
        throw badInput(`backtrack: ${to.toISOString()} is outside the window ${w.earliest.toISOString()} .. ${w.latest.toISOString()} (LSN ${w.earliestLsn} .. ${w.latestLsn})`)
      }
      lsn = Math.max(vol.lsnAt(to) ?? w.earliestLsn, w.earliestLsn)
    } else if (typeof to === 'number') {
      if (!Number.isInteger(to) || to < w.earliestLsn || to > w.latestLsn) {
        throw badInput(`backtrack: LSN ${String(to)} is outside the window: LSN ${w.earliestLsn} (${w.earliest.toISOString()}) .. ${w.latestLsn} (now)`)
      }
      lsn = to
    } else throw badInput('backtrack(to) takes a Date or an LSN')
    const run = (async (): Promise<BacktrackReport> => {
      const t0 = performance.now()
      this.emit('backtrack-start', { to: lsn })
      this.#engine.crash(new HexadError('HEXAD_CLOSED', `the cluster is backtracking to LSN ${lsn}; work not committed before it was dropped: retry on cluster.writer`))
      // Commits already shipped settle first (they are part of the history the rewind covers).
      await vol.whenDurable(vol.lastLsn).catch(() => {})
      const readers = [...this.#readers.values()]
      await Promise.all(readers.map(r => r.close()))
      const r = await vol.backtrack(lsn, options)
      const engine = await Engine.open(vol, this.#cacheBytes)
      this.#engine = engine
      this.#writer = this.#makeWriter(engine, vol)
      for (const old of readers) this.#readers.set(old.name, new Reader(engine, vol, old._options))
      return { ...r, ms: performance.now() - t0 }
    })()
    this.#failing = run
    let report: BacktrackReport
    try { report = await run } finally { this.#failing = null }
    this.emit('backtrack', report)
    return report
  }

  /** Planned switchover: commits in flight finish, then the best replica (or `target`) becomes the writer. */
  switchover(target?: string): Promise<FailoverReport> { return this.#failover('planned', target) }

  async #failover(kind: 'crash' | 'planned', target?: string): Promise<FailoverReport> {
    this.#checkOpen()
    if (this.#failing) throw new HexadError('HEXAD_CONFLICT', 'a failover or backtrack is already in progress')
    const run = (async (): Promise<FailoverReport> => {
      const t0 = performance.now()
      const oldEngine = this.#engine, oldVolume = this.#volume, oldEpoch = oldVolume.epoch
      if (kind === 'crash') oldEngine.crash(new HexadError('HEXAD_FENCED', `the writer (epoch ${oldEpoch}) crashed; a replica is being promoted: retry on cluster.writer or a 'writer' endpoint`))
      else await oldEngine.close()
      // The best replica: lowest tier, then largest cache, then least lag.
      let best: Reader | undefined = target !== undefined ? this.#readers.get(target) : undefined
      if (target !== undefined && !best) throw badInput(`no reader named ${JSON.stringify(target)} to promote`)
      if (!best && this.#readers.size) {
        const ranked = await Promise.all([...this.#readers.values()].map(async r => ({ r, lag: (await r.stats().catch(() => null))?.lagLsn ?? Infinity })))
        ranked.sort((a, b) => a.r.tier - b.r.tier || b.r._options.cacheBytes - a.r._options.cacheBytes || a.lag - b.lag)
        best = ranked[0].r
      }
      let dump: { applied: number; pages: Array<[number, Uint8Array]> } | null = null
      if (best) {
        try { dump = await best._dump() } catch { dump = null }
        this.#readers.delete(best.name)
        await best.close()
      }
      // Recovery under a new epoch: the old handle is fenced from here.
      const volume = await openVolume(this.#volumeOptions)
      const recovered = volume.vdl
      let engine: Engine
      try {
        engine = await Engine.open(volume, this.#cacheBytes)
      } catch (err) {
        await volume.close()
        throw err
      }
      let pagesKept = 0
      const cacheKept = !!dump && dump.applied === recovered && volume.vdl === recovered
      if (cacheKept) for (const [id, image] of dump!.pages) { engine.cache.seed(id, image); pagesKept++ }
      this.#volume = volume
      this.#engine = engine
      this.#writer = this.#makeWriter(engine, volume)
      this.failovers++
      const ms = performance.now() - t0
      // The other replicas follow the new writer (cold: the old stream ended where recovery cut).
      for (const r of [...this.#readers.values()]) {
        await r.close()
        this.#readers.set(r.name, new Reader(engine, volume, r._options))
      }
      // The old handle is fenced; it closes in the background once its last writes are settled
      // (the new writer does not wait for it; cluster.close() does).
      this.#retired.push(oldVolume.close().catch(() => {}))
      return { promoted: best?.name ?? null, oldEpoch, newEpoch: volume.epoch, vdl: recovered, cacheKept, pagesKept, ms }
    })()
    this.#failing = run
    let report: FailoverReport
    try { report = await run } finally { this.#failing = null }
    this.emit('failover', report)
    return report
  }

  #makeWriter(engine: Engine, volume: Volume): Database {
    const db = new Database(engine)
    configureSql(db, { volume, crash: () => this.faults.crashWriter(), onFault: e => this.emit('fault', e) })
    if (this.#dialect) configureSql(db, { dialect: this.#dialect })
    return db
  }

  #checkOpen(): void {
    if (this.#closing) throw new HexadError('HEXAD_CLOSED', 'the cluster is closed')
  }

  /** Waits for commits in flight, then closes the readers, the writer, the volume and its segment workers. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      if (this.#scaling) { clearInterval(this.#scaling.timer); this.#scaling = null }
      await this.#failing?.catch(() => {})
      // The backup uploads what is durable up to now, then stops (before the volume goes).
      await this.#backup?.stop().catch(() => {})
      await Promise.all([...this.#readers.values()].map(r => r.close()))
      this.#readers.clear()
      await this.#engine.close()
      await this.#volume.close()
      await Promise.all(this.#retired)
    })()
    return this.#closing
  }

  async [Symbol.asyncDispose](): Promise<void> { await this.close() }
}

/** Destroys a closed cluster's files (kept, marked destroyed, while clones read through it). */
export function destroyCluster(dir: string): Promise<{ removed: string[]; kept: string[] }> {
  return destroyVolume(dir)
}

/** Opens (or creates) the cluster in `options.dir`: the volume, recovered, and its writer. */
export async function openCluster(options: ClusterOptions): Promise<Cluster> {
  if (!options || typeof options !== 'object') throw badInput('openCluster needs an options object with a dir')
  const { cacheBytes = 64 << 20, dialect, backup, ...volumeOptions } = options
  if (dialect !== undefined && dialect !== 'postgres' && dialect !== 'mysql') throw badInput(`dialect must be 'postgres' or 'mysql', got ${JSON.stringify(dialect)}`)
  if (!Number.isInteger(cacheBytes) || cacheBytes < 64 * 1024) throw badInput(`cacheBytes must be an integer of at least 65536, got ${String(cacheBytes)}`)
  const volume = await openVolume(volumeOptions)
  try {
    // A backtrack cut short by a crash is finished before anything reads the pages.
    if (volume.pendingBacktrack !== null) await volume.backtrack(volume.pendingBacktrack)
    const engine = await Engine.open(volume, cacheBytes)
    const cluster = new Cluster(volume, engine, volumeOptions, cacheBytes, dialect)
    if (backup) {
      try { await cluster._startBackup(backup) } catch (err) { await cluster.close(); throw err }
    }
    return cluster
  } catch (err) {
    if (volume.usable) await volume.close()
    throw err
  }
}
