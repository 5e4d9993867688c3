/**
 * The storage tier as the main thread sees it: six segment workers, two per
 * availability zone, wired to each other for gossip, and the fault controls
 * that stop and restart them.
 *
 * One Storage exists per directory per process; every volume handle opened
 * on that directory in this process talks to the same workers (as Aurora's
 * compute instances share one storage fleet), which is what lets a newer
 * handle fence an older one through the epoch. A LOCK file with the owner's
 * pid keeps a second live process out (HEXAD_LOCKED); a dead owner's lock is
 * taken over, which is what crash recovery needs.
 */
import { EventEmitter } from 'node:events'
import fs from 'node:fs'
import path from 'node:path'
import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads'
import { HexadError } from '../common/errors.js'
import type { ClientReply, ClientRequest, SegmentConfig } from './protocol.js'
import type { WorkerData } from './segment-worker.js'

export const SEGMENTS = 6
export const AZS = 3
export const azOf = (segment: number) => Math.floor(segment / 2)
/** Worker slots a volume may use over its life: the first six, then replacements (membership changes). */
export const SLOTS_MAX = 16

export interface StorageOptions {
  pageSize: number
  pagesPerGroup: number
  logFileBytes: number
  coalesceThreshold: number
  checkpointLogBytes: number
  gossipIntervalMs: number
  pageCacheBytes: number
  scrubBytesPerSecond: number
  scrubIntervalMs: number
  /** an idle segment's timer period (0: never slow; see SegmentConfig) */
  idleTickMs?: number
  /** the LSN a clone volume was cloned at (0 or absent: not a clone); see SegmentConfig */
  cloneLsn?: number
  /** niceness of the worker threads (0..19; 0 or absent: left as the process is; Linux only) */
  nice?: number
  /** slots beyond the first six that the volume's membership uses, as [id, az] */
  extraSlots?: Array<[number, number]>
}

/** The writer's end of a channel to one segment (a MessagePort, or the simulator's port). */
export interface ClientPort {
  postMessage(m: ClientRequest, transfer?: ArrayBuffer[]): void
  on(event: 'message', fn: (m: ClientReply) => void): unknown
  close(): void
  unref?(): void
}

/**
 * The six segments as a volume sees them: connect to one, hear when one
 * goes down or comes up ('down' / 'up' events with its id), stop and
 * restart them (faults), let go. Storage (worker threads) is the real one;
 * engine/sim/sim-storage.ts runs the same segment code in this thread.
 */
export interface StorageLike {
  connect(id: number): ClientPort | null
  isUp(id: number): boolean
  on(event: 'up' | 'down', fn: (id: number) => void): unknown
  off(event: 'up' | 'down', fn: (id: number) => void): unknown
  release(): Promise<void>
  stopWorker(id: number): Promise<void>
  restartWorker(id: number): Promise<void>
  stopAZ(az: number): Promise<void>
  restartAZ(az: number): Promise<void>
  /** Starts a new, empty segment in slot `id` of AZ `az` (a membership change's replacement). */
  addSegment(id: number, az: number): Promise<void>
}

interface Slot {
  id: number
  az: number
  worker: Worker | null
  up: boolean
  /** set while a planned stop or close is in progress, so the exit is not reported as a crash */
  stopping: boolean
  crashes: number
  lastError?: string
}

const registry = new Map<string, Storage>()

/**
 * Segment threads parked after a clean close, for the next open in this
 * process. A thread's start (its isolate, Node's bootstrap, the engine's
 * modules) is most of a volume open's CPU: reopening a small cluster took
 * 63-68 ms of CPU on parked threads against 849-866 ms on new ones (2
 * cores), and processes that reopen volumes (tests, crash checks, clone
 * checks) paid that every time. A parked thread holds no file
 * and does not keep the process alive; it ends PARK_MS after it was parked.
 * Threads are reused by opens only (a restart after a stopped segment
 * starts a new one), and only at the same niceness (a thread is never reniced
 * back).
 */
const PARK_MS = 2000
const parked: Array<{ worker: Worker; nice: number; timer: NodeJS.Timeout }> = []

/** Drops the listeners a Storage added (not all: the Worker's own newListener hooks ref and unref its port). */
function forget(worker: Worker): void {
  for (const e of ['message', 'error', 'exit'] as const) worker.removeAllListeners(e)
}

function park(worker: Worker, nice: number): void {
  forget(worker)
  worker.unref()
  const entry = {
    worker, nice,
    timer: setTimeout(() => { drop(entry); void worker.terminate() }, PARK_MS).unref(),
  }
  worker.once('exit', () => drop(entry))
  parked.push(entry)
}

function drop(entry: (typeof parked)[number]): void {
  const i = parked.indexOf(entry)
  if (i >= 0) parked.splice(i, 1)
  clearTimeout(entry.timer)
}

function unpark(nice: number): Worker | null {
  const entry = parked.find(p => p.nice === nice)
  if (!entry) return null
  drop(entry)
  forget(entry.worker)
  entry.worker.ref()
  return entry.worker
}

/** @internal segment threads parked in this process now (tests) */
export function parkedSegmentThreads(): number { return parked.length }

/** Events: 'up' (id), 'down' (id, reason). */
export class Storage extends EventEmitter implements StorageLike {
  readonly dir: string
  readonly options: StorageOptions
  readonly slots: Slot[]
  #refs = 0
  #closing: Promise<void> | null = null

  private constructor(dir: string, options: StorageOptions) {
    super()
    this.setMaxListeners(100)
    this.dir = dir
    this.options = options
    this.slots = Array.from({ length: SEGMENTS }, (_, id) => ({ id, az: azOf(id), worker: null, up: false, stopping: false, crashes: 0 }))
    for (const [id, az] of options.extraSlots ?? []) if (id >= SEGMENTS && id < SLOTS_MAX) this.slots[id] = { id, az, worker: null, up: false, stopping: false, crashes: 0 }
  }

  /** Gets the running storage for `dir`, starting its workers on first use. */
  static async acquire(dir: string, options: StorageOptions): Promise<Storage> {
    const key = path.resolve(dir)
    let s = registry.get(key)
    if (s && s.#closing) { await s.#closing; s = undefined }
    if (!s) {
      s = new Storage(key, options)
      registry.set(key, s)
      try {
        takeLock(key)
        await Promise.all(s.#live().map(slot => s!.#start(slot, true)))
      } catch (err) {
        registry.delete(key)
        await s.#shutdown().catch(() => {})
        throw err
      }
      const up = s.#live().filter(x => x.up).length
      if (up < 3) {
        registry.delete(key)
        await s.#shutdown()
        const why = s.#live().filter(x => !x.up).map(x => `segment ${x.id}: ${x.lastError}`).join('; ')
        throw new HexadError('HEXAD_QUORUM_LOST', `only ${up} of 6 segment workers started in ${key} (3 are needed to recover): ${why}`)
      }
    }
    s.#refs++
    return s
  }

  /** A new client port to segment `id`, or null when it is down. */
  connect(id: number): MessagePort | null {
    const slot = this.slots[id]
    if (!slot || !slot.up || !slot.worker) return null
    const { port1, port2 } = new MessageChannel()
    slot.worker.postMessage({ t: 'client', port: port2 }, [port2])
    return port1
  }

  isUp(id: number): boolean { return this.slots[id]?.up ?? false }

  async addSegment(id: number, az: number): Promise<void> {
    if (!Number.isInteger(id) || id < SEGMENTS || id >= SLOTS_MAX) throw new HexadError('HEXAD_BAD_INPUT', `a new segment's slot must be an integer ${SEGMENTS}..${SLOTS_MAX - 1}, got ${String(id)}`)
    this.#az(az)
    if (!this.slots[id]) this.slots[id] = { id, az, worker: null, up: false, stopping: false, crashes: 0 }
    await this.restartWorker(id)
  }

  /** Slots that exist (the first six and any replacement added). */
  #live(): Slot[] { return this.slots.filter(Boolean) }

  async stopWorker(id: number): Promise<void> {
    const slot = this.#slot(id)
    if (!slot.worker) return
    slot.stopping = true
    const w = slot.worker
    slot.worker = null
    slot.up = false
    for (const other of this.#live()) other.worker?.postMessage({ t: 'peer-gone', peer: id })
    this.emit('down', id, 'stopped')
    await w.terminate()
    slot.stopping = false
  }

  async restartWorker(id: number): Promise<void> {
    const slot = this.#slot(id)
    if (slot.worker) return
    await this.#start(slot)
    if (!slot.up) throw new HexadError('HEXAD_IO', `segment ${id} failed to restart: ${slot.lastError}`)
  }

  async stopAZ(az: number): Promise<void> {
    this.#az(az)
    await Promise.all(this.#live().filter(s => s.az === az).map(s => this.stopWorker(s.id)))
  }

  async restartAZ(az: number): Promise<void> {
    this.#az(az)
    await Promise.all(this.#live().filter(s => s.az === az).map(s => this.restartWorker(s.id)))
  }

  async release(): Promise<void> {
    if (--this.#refs > 0) return
    registry.delete(this.dir)
    this.#closing = this.#shutdown()
    await this.#closing
  }

  #slot(id: number): Slot {
    if (!Number.isInteger(id) || id < 0 || id >= SLOTS_MAX || !this.slots[id]) throw new HexadError('HEXAD_BAD_INPUT', `segment id must be an integer 0..5 (or a replacement's slot), got ${String(id)}`)
    return this.slots[id]
  }

  #az(az: number): void {
    if (!Number.isInteger(az) || az < 0 || az >= AZS) throw new HexadError('HEXAD_BAD_INPUT', `availability zone must be 0, 1 or 2, got ${String(az)}`)
  }

  get #nice(): number { return this.options.nice ?? 0 }

  /** Starts slot's segment: on a parked thread when `reuse` (a volume's open) and one is parked, else on a new thread. */
  async #start(slot: Slot, reuse = false): Promise<void> {
    const cfg: SegmentConfig = {
      id: slot.id, az: slot.az, dir: path.join(this.dir, `segment-${slot.id}`),
      pageSize: this.options.pageSize, pagesPerGroup: this.options.pagesPerGroup, logFileBytes: this.options.logFileBytes,
      coalesceThreshold: this.options.coalesceThreshold, checkpointLogBytes: this.options.checkpointLogBytes,
      gossipIntervalMs: this.options.gossipIntervalMs, pageCacheBytes: this.options.pageCacheBytes, scrubBytesPerSecond: this.options.scrubBytesPerSecond,
      scrubIntervalMs: this.options.scrubIntervalMs,
      ...(this.options.idleTickMs !== undefined ? { idleTickMs: this.options.idleTickMs } : {}),
      cloneLsn: this.options.cloneLsn ?? 0,
    }
    const nice = this.#nice
    let worker = reuse ? unpark(nice) : null
    if (worker) {
      worker.postMessage({ t: 'start', cfg })
    } else {
      worker = new Worker(new URL('./segment-worker.js', import.meta.url), {
        workerData: { ...cfg, nice } satisfies WorkerData,
        // msgpackr's native add-on only speeds up decoding strings, and a segment decodes numbers and
        // bytes (frames, metas); loading it cost 12 ms of CPU a thread (682 against 609 ms for six).
        env: { ...process.env, MSGPACKR_NATIVE_ACCELERATION_DISABLED: 'true' },
      })
    }
    slot.worker = worker
    const ready = await new Promise<boolean>(resolve => {
      const onMsg = (m: { t: string; message?: string }) => {
        if (m.t === 'ready') { worker.off('message', onMsg); resolve(true) }
        if (m.t === 'failed') { slot.lastError = m.message; worker.off('message', onMsg); resolve(false) }
      }
      worker.on('message', onMsg)
      worker.once('error', err => { slot.lastError = err.stack ?? String(err); resolve(false) })
      worker.once('exit', () => resolve(false))
    })
    if (!ready) {
      slot.worker = null
      slot.up = false
      await worker.terminate().catch(() => {})
      return
    }
    worker.on('error', err => { slot.lastError = err.stack ?? String(err) })
    worker.on('exit', () => {
      if (slot.worker !== worker) return
      slot.worker = null
      slot.up = false
      slot.crashes++
      for (const other of this.#live()) other.worker?.postMessage({ t: 'peer-gone', peer: slot.id })
      this.emit('down', slot.id, slot.lastError ?? 'exited')
    })
    slot.up = true
    // Gossip: one direct channel to each running peer.
    for (const peer of this.#live()) {
      if (peer === slot || !peer.worker || !peer.up) continue
      const { port1, port2 } = new MessageChannel()
      worker.postMessage({ t: 'peer', peer: peer.id, port: port1 }, [port1])
      peer.worker.postMessage({ t: 'peer', peer: slot.id, port: port2 }, [port2])
    }
    this.emit('up', slot.id)
  }

  async #shutdown(): Promise<void> {
    await Promise.all(this.#live().map(async slot => {
      const w = slot.worker
      if (!w) return
      slot.stopping = true
      slot.worker = null
      slot.up = false
      const closed = await new Promise<boolean>(resolve => {
        const t = setTimeout(() => resolve(false), 5000)
        w.on('message', (m: { t: string }) => { if (m.t === 'closed') { clearTimeout(t); resolve(true) } })
        w.once('exit', () => { clearTimeout(t); resolve(false) })
        w.postMessage({ t: 'close' })
      })
      if (closed) park(w, this.#nice)
      else await w.terminate()
    }))
    releaseLock(this.dir)
  }
}

function takeLock(dir: string): void {
  fs.mkdirSync(dir, { recursive: true })
  assertNoOtherProcess(dir)
  fs.writeFileSync(path.join(dir, 'LOCK'), String(process.pid))
}

/** Throws HEXAD_LOCKED when another living process has `dir` open, or its storage runs in this one. */
export function assertNotLocked(dir: string): void {
  const key = path.resolve(dir)
  if (registry.has(key)) throw new HexadError('HEXAD_LOCKED', `${key} is open in this process; close it first`)
  assertNoOtherProcess(key)
}

function assertNoOtherProcess(key: string): void {
  try {
    const pid = Number.parseInt(fs.readFileSync(path.join(key, 'LOCK'), 'utf8'), 10)
    if (pid && pid !== process.pid && alive(pid)) {
      throw new HexadError('HEXAD_LOCKED', `${key} is in use by process ${pid}; close it there first`)
    }
  } catch (err) {
    if ((err as HexadError).code === 'HEXAD_LOCKED') throw err
  }
}

function releaseLock(dir: string): void {
  const lock = path.join(dir, 'LOCK')
  try {
    if (Number.parseInt(fs.readFileSync(lock, 'utf8'), 10) === process.pid) fs.rmSync(lock)
  } catch { /* already gone */ }
}

function alive(pid: number): boolean {
  try { process.kill(pid, 0); return true } catch (e) { return (e as NodeJS.ErrnoException).code === 'EPERM' }
}
