/**
 * Read replicas, seen from the writer's thread: `cluster.addReader()` starts
 * one (a worker thread running reader-worker.ts), feeds it every durable MTR
 * in LSN order, serves the pages it misses from the volume at its read
 * point, and keeps that read point pinned so storage does not collect what
 * the replica may still read. The handle reads like a Keyspace, without
 * writes.
 *
 * Pages a replica misses travel through the writer's volume client (one
 * thread hop more than Aurora's replicas, which read storage directly): the
 * segments' ports belong to the writer's volume here.
 */
import { Worker } from 'node:worker_threads'
import { badInput, HexadError } from '../common/errors.js'
import type { ReadPoint, Volume } from '../volume/volume.js'
import { maxKeyBytes } from './btree.js'
import { checkKeyspaceName, DEFAULT_KEYSPACE, toBytes, type Engine, type Key, type ScanOptions } from './kv.js'
import type { DurableMtr } from './mtr.js'
import type { ReaderInit, ReaderReply, ReaderRequest, ReaderWorkerStats, WireBounds } from './reader-protocol.js'

export const READERS_MAX = 15

export interface ReaderOptions {
  /** unique among the cluster's readers */
  name: string
  /** failover priority 0 (first) .. 15 (default 1) */
  tier?: number
  /** bytes of pages its cache holds (default 64 MiB) */
  cacheBytes?: number
}

export interface ReaderStats extends ReaderWorkerStats {
  name: string
  tier: number
  /** LSNs between the writer's VDL and what this replica has applied */
  lagLsn: number
}

const dec = new TextDecoder()

/** A read replica's handle: reads of its default keyspace; `keyspace(name)` for others. */
export class Reader {
  readonly name: string
  readonly tier: number
  readonly #vol: Volume
  readonly #engine: Engine
  readonly #worker: Worker
  readonly #listener: (m: DurableMtr) => void
  #pin: ReadPoint
  #seq = 0
  readonly #pending = new Map<number, { resolve: (m: ReaderReply) => void; reject: (e: Error) => void }>()
  #closed: HexadError | null = null
  #closing: Promise<void> | null = null

  /**
   * @internal use cluster.addReader (or cluster.openSnapshot: `frozenAt`
   * starts it at that LSN and feeds it no redo, so it reads one fixed state)
   */
  constructor(engine: Engine, vol: Volume, options: Required<ReaderOptions>, frozenAt?: number) {
    this.name = options.name
    this.tier = options.tier
    this._options = options
    this.#engine = engine
    this.#vol = vol
    this.#pin = vol.pinReadPoint(frozenAt)
    const init: ReaderInit = { name: options.name, pageSize: vol.pageSize, start: this.#pin.lsn, cacheBytes: options.cacheBytes }
    this.#worker = new Worker(new URL('./reader-worker.js', import.meta.url), { workerData: init, name: `hexad-reader-${options.name}` })
    this.#worker.unref()
    this.#listener = m => this.#send({ t: 'mtr', mtr: m })
    this.frozen = frozenAt !== undefined
    if (!this.frozen) engine.runner.durableListeners.add(this.#listener)
    this.#worker.on('message', (m: ReaderReply) => this.#onMessage(m))
    this.#worker.on('error', err => this.#fail(new HexadError('HEXAD_IO', `read replica ${this.name} failed: ${err.message}`)))
    this.#worker.on('exit', code => this.#fail(new HexadError('HEXAD_CLOSED', `read replica ${this.name} stopped (exit code ${code})`)))
  }

  /** A view of another keyspace on this replica. */
  keyspace(name: string): ReaderKeyspace { return new ReaderKeyspace(this, checkKeyspaceName(name)) }

  get(key: Key): Promise<Uint8Array | undefined> { return this._get(DEFAULT_KEYSPACE, key) }
  async getString(key: Key): Promise<string | undefined> { const v = await this.get(key); return v && dec.decode(v) }
  scan(options: ScanOptions = {}): AsyncGenerator<[Uint8Array, Uint8Array]> { return this._scan(DEFAULT_KEYSPACE, options) }
  /** The entries of scan(), a batch at a time (one await per batch). */
  scanBatches(options: ScanOptions = {}): AsyncGenerator<Array<[Uint8Array, Uint8Array]>> { return this._scanBatches(DEFAULT_KEYSPACE, options) }

  /**
   * One read point for several reads (a read-only transaction): until
   * `close()`, every read through the snapshot sees the same state, and the
   * replica holds back redo (close it promptly).
   */
  async snapshot(): Promise<ReaderSnapshot> {
    this.#check()
    const r = await this.#request({ t: 'snap-open', id: 0 })
    if (r.t !== 'snap') throw new HexadError('HEXAD_IO', `read replica ${this.name}: unexpected reply ${r.t}`)
    return new ReaderSnapshot(this, r.id, r.at)
  }

  /** @internal */
  _closeSnapshot(id: number): void {
    if (!this.#closed) this.#worker.postMessage({ t: 'snap-close', id } satisfies ReaderRequest)
  }

  /** @internal */
  async _get(ks: string, key: Key, snap?: number): Promise<Uint8Array | undefined> {
    this.#check()
    const k = checkKey(toBytes(key, 'key'), this.#vol.pageSize)
    const r = await this.#request({ t: 'get', id: 0, ks, key: k, snap })
    return r.t === 'value' ? r.value ?? undefined : undefined
  }

  /**
   * @internal Entries in key order (or reverse) at one read point: the
   * replica holds back redo until the scan ends (or the loop breaks), so a
   * scan left open delays this replica.
   */
  async *_scan(ks: string, options: ScanOptions, snap?: number): AsyncGenerator<[Uint8Array, Uint8Array]> {
    for await (const batch of this._scanBatches(ks, options, snap)) yield* batch
  }

  /** @internal The entries of _scan, a batch from the replica's worker at a time (each non-empty). */
  async *_scanBatches(ks: string, options: ScanOptions, snap?: number): AsyncGenerator<Array<[Uint8Array, Uint8Array]>> {
    this.#check()
    const { b, limit } = scanBounds(options)
    if (limit === 0) return
    const first = await this.#request({ t: 'scan-open', id: 0, ks, bounds: b, limit: limit === Infinity ? undefined : limit, snap })
    let batch = first
    const id = (first as { id: number }).id
    let done = false
    try {
      for (;;) {
        if (batch.t !== 'batch') return
        if (batch.entries.length) yield batch.entries
        if (batch.done) { done = true; return }
        batch = await this.#request({ t: 'scan-next', id })
      }
    } finally {
      if (!done && !this.#closed) this.#worker.postMessage({ t: 'scan-close', id } satisfies ReaderRequest)
    }
  }

  /** Read point, lag (LSNs behind the writer's VDL, and ms from durable to applied), cache. */
  async stats(): Promise<ReaderStats> {
    this.#check()
    const r = await this.#request({ t: 'stats', id: 0 })
    if (r.t !== 'stats') throw new HexadError('HEXAD_IO', `read replica ${this.name}: unexpected reply ${r.t}`)
    return { name: this.name, tier: this.tier, lagLsn: Math.max(0, this.#vol.vdl - r.stats.appliedLsn), ...r.stats }
  }

  /** Whether this instance reads one fixed state (a snapshot) and follows no redo. */
  readonly frozen: boolean

  /** Resolves once this replica has applied everything durable at the writer when called (at once for a snapshot). */
  async caughtUp(): Promise<void> {
    if (this.frozen) return
    const target = this.#vol.vdl
    for (;;) {
      const s = await this.stats()
      if (s.appliedLsn >= target || s.appliedLsn >= this.#vol.vdl) return
      await new Promise(r => setTimeout(r, 2))
    }
  }

  #elu: ReturnType<Worker['performance']['eventLoopUtilization']> | null = null
  /** Share of time the replica's thread was busy since the last call (0..1); an auto-scaling metric. */
  utilization(): number {
    if (this.#closed) return 0
    const now = this.#worker.performance.eventLoopUtilization()
    const d = this.#elu ? this.#worker.performance.eventLoopUtilization(now, this.#elu) : now
    this.#elu = now
    return d.utilization
  }

  /** @internal For promotion: everything received applied, then the cache handed over; the replica serves nothing after. */
  async _dump(): Promise<{ applied: number; pages: Array<[number, Uint8Array]> }> {
    this.#check()
    const r = await this.#request({ t: 'dump', id: 0 })
    if (r.t !== 'dump') throw new HexadError('HEXAD_IO', `read replica ${this.name}: unexpected reply ${r.t}`)
    return { applied: r.applied, pages: r.pages }
  }

  /** @internal the options it was started with (failover restarts replicas on the new writer) */
  _options!: Required<ReaderOptions>

  /** Stops the replica: its worker ends, its read point is released. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#engine.runner.durableListeners.delete(this.#listener)
      this.#fail(new HexadError('HEXAD_CLOSED', `read replica ${this.name} is closed`))
      await this.#worker.terminate()
    })()
    return this.#closing
  }

  async [Symbol.asyncDispose](): Promise<void> { await this.close() }

  #onMessage(m: ReaderReply): void {
    switch (m.t) {
      case 'read':
        this.#vol.readPage(m.pageId, { at: m.at }).then(
          image => this.#send({ t: 'page', id: m.id, image }),
          (err: HexadError) => this.#send({ t: 'page', id: m.id, message: err.message, code: err.code }))
        return
      case 'applied':
        // Once the writer's volume handle is fenced (a failover opened a new one) or closed, there
        // is nothing to pin through it: the reader keeps its point until it is moved to the new
        // writer or closed. (pinReadPoint would throw, and out of this listener that ends the process.)
        if (m.lsn > this.#pin.lsn && !this.#closed && this.#vol.usable) {
          // Pin the new point before releasing the old one: storage never passes what we may read.
          const next = this.#vol.pinReadPoint(Math.min(m.lsn, this.#vol.vdl))
          this.#pin.release()
          this.#pin = next
        }
        return
      default: {
        const p = this.#pending.get(m.id)
        if (!p) return
        this.#pending.delete(m.id)
        if (m.t === 'error') p.reject(new HexadError((m.code as never) ?? 'HEXAD_IO', `read replica ${this.name}: ${m.message}`))
        else p.resolve(m)
      }
    }
  }

  #request(m: ReaderRequest & { id: number }): Promise<ReaderReply> {
    return new Promise((resolve, reject) => {
      if (this.#closed) return reject(this.#closed)
      // scan-next keeps the scan's id; everything else gets a fresh one
      const id = m.t === 'scan-next' ? m.id : ++this.#seq
      this.#pending.set(id, { resolve, reject })
      this.#worker.postMessage({ ...m, id })
    })
  }

  #send(m: ReaderRequest): void {
    if (!this.#closed) this.#worker.postMessage(m)
  }

  #fail(err: HexadError): void {
    if (this.#closed) return
    this.#closed = err
    this.#engine.runner.durableListeners.delete(this.#listener)
    this.#pin.release()
    for (const p of this.#pending.values()) p.reject(err)
    this.#pending.clear()
  }

  #check(): void {
    if (this.#closed) throw this.#closed
  }
}

/** Several reads at one read point of a replica; see Reader.snapshot(). */
export class ReaderSnapshot {
  readonly #r: Reader
  readonly #id: number
  /** the LSN every read of this snapshot sees */
  readonly at: number
  #closed = false
  /** @internal */
  constructor(r: Reader, id: number, at: number) { this.#r = r; this.#id = id; this.at = at }
  get(key: Key) { return this.keyspace(DEFAULT_KEYSPACE).get(key) }
  scan(options: ScanOptions = {}) { return this.keyspace(DEFAULT_KEYSPACE).scan(options) }
  keyspace(name: string) {
    checkKeyspaceName(name)
    const check = () => { if (this.#closed) throw new HexadError('HEXAD_CLOSED', 'the replica snapshot is closed') }
    return {
      get: async (key: Key) => { check(); return this.#r._get(name, key, this.#id) },
      scan: (options: ScanOptions = {}) => { check(); return this.#r._scan(name, options, this.#id) },
      /** the entries of scan(), a batch at a time */
      scanBatches: (options: ScanOptions = {}) => { check(); return this.#r._scanBatches(name, options, this.#id) },
    }
  }
  /** Releases the read point: the replica applies redo again. */
  close(): void {
    if (this.#closed) return
    this.#closed = true
    this.#r._closeSnapshot(this.#id)
  }
  [Symbol.dispose](): void { this.close() }
}

/** A replica's view of one keyspace. */
export class ReaderKeyspace {
  readonly #r: Reader
  readonly name: string
  constructor(r: Reader, name: string) { this.#r = r; this.name = name }
  get(key: Key) { return this.#r._get(this.name, key) }
  async getString(key: Key) { const v = await this.get(key); return v && dec.decode(v) }
  scan(options: ScanOptions = {}) { return this.#r._scan(this.name, options) }
  /** The entries of scan(), a batch at a time (one await per batch). */
  scanBatches(options: ScanOptions = {}) { return this.#r._scanBatches(this.name, options) }
}

/** Validates reader options; fills defaults. */
export function readerOptions(o: ReaderOptions, taken: Iterable<string>, count: number): Required<ReaderOptions> {
  if (!o || typeof o !== 'object') throw badInput('addReader needs an options object { name, tier?, cacheBytes? }')
  if (typeof o.name !== 'string' || o.name.length === 0 || o.name.length > 64) throw badInput(`reader name must be a non-empty string of at most 64 characters, got ${JSON.stringify(o.name)}`)
  for (const n of taken) if (n === o.name) throw badInput(`a reader named ${JSON.stringify(o.name)} already exists`)
  if (count >= READERS_MAX) throw badInput(`a cluster has at most ${READERS_MAX} readers`)
  const tier = o.tier ?? 1
  if (!Number.isInteger(tier) || tier < 0 || tier > 15) throw badInput(`reader tier must be an integer 0..15, got ${String(o.tier)}`)
  const cacheBytes = o.cacheBytes ?? 64 << 20
  if (!Number.isInteger(cacheBytes) || cacheBytes < 64 * 1024) throw badInput(`reader cacheBytes must be an integer of at least 65536, got ${String(o.cacheBytes)}`)
  return { name: o.name, tier, cacheBytes }
}

function checkKey(k: Uint8Array, pageSize: number): Uint8Array {
  const max = maxKeyBytes(pageSize)
  if (k.length === 0) throw badInput(`key is empty; keys are 1..${max} bytes`)
  if (k.length > max) throw badInput(`key of ${k.length} bytes exceeds the ${max}-byte key limit (pageSize ${pageSize} / 8)`)
  return k
}

function scanBounds(o: ScanOptions): { b: WireBounds; limit: number } {
  if (o === null || typeof o !== 'object') throw badInput('scan options must be an object')
  const b: WireBounds = { reverse: !!o.reverse }
  for (const k of ['gt', 'gte', 'lt', 'lte'] as const) if (o[k] !== undefined) b[k] = toBytes(o[k]!, `scan bound ${k}`)
  if (b.gt && b.gte) throw badInput('scan: give gt or gte, not both')
  if (b.lt && b.lte) throw badInput('scan: give lt or lte, not both')
  const limit = o.limit
  if (limit !== undefined && (typeof limit !== 'number' || !Number.isInteger(limit) || limit < 0)) throw badInput(`scan limit must be a non-negative integer, got ${String(limit)}`)
  return { b, limit: limit ?? Infinity }
}
