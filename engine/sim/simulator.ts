/**
 * The simulator: one whole volume (writers and six segments) in one thread,
 * on a simulated disk and network, in virtual time, from one seed. Like
 * FoundationDB's simulation and TigerBeetle's VOPR, the seed decides
 * everything: the fault rates, the fault schedule, the workload, and every
 * drop, delay and torn write; the same seed replays the same run.
 *
 * A run: open a writer; for FAULT_MS of virtual time write and read while
 * the schedule injects faults (segment and AZ crashes that lose unsynced
 * writes and tear some, AZ partitions, flipped bits on disk and in transit,
 * a full disk, a second writer that takes over while the first one keeps
 * sending, a segment down long enough to be replaced through two quorum
 * sets, an AZ lost until healing with the volume moved to 3-of-4 and back);
 * then heal everything, let writes settle, wait (bounded) for the
 * segments to converge, and check:
 *
 *  1. no acknowledged write is lost: every acked MTR's CPL is at or below
 *     the VDL a fresh writer recovers, outside every truncation; and when a
 *     write is acked, each of its records is on the write quorum of every
 *     set of a configuration the writer had (4 of 6, both sets during a
 *     change, 3 of 4 when degraded);
 *  2. every read returned exactly the model at its read point (never data
 *     above it, never half an MTR);
 *  3. each writer's VDL never went backward, and a new writer starts at or
 *     above every CPL acked before it; each segment's SCL never went
 *     backward except by a truncation;
 *  4. after healing, within CONVERGE_MS, all six segments hold the same
 *     records of every PG up to the VDL (same hash) and each alone builds
 *     every page equal to the model;
 *  5. every bit flipped on disk was reported by a checksum (or its file was
 *     deleted, or it was overwritten by a crash's replay);
 *  6. the old writer was fenced (HEXAD_FENCED) once the new one opened.
 *
 * The model never uses engine code to compute pages: it applies the MTRs
 * it issued, in the LSN order it learned by watching frames on the wire.
 */
import { createHash } from 'node:crypto'
import { pack } from '../../native-bindings/index.js'
import type { PageOp } from '../common/page-ops.js'
import { decodeFrame, decodeMeta, R_FLAGS, R_LSN, R_PAGE, RECORD_FLAG_CPL, recordOps } from '../storage/format.js'
import { setPlantedBugs, type PlantedBugs } from '../storage/planted-bugs.js'
import type { CorruptionReport } from '../storage/disk.js'
import type { Truncation } from '../storage/protocol.js'
import { SEGMENTS, SLOTS_MAX } from '../storage/storage.js'
import type { QuorumSet } from '../volume/quorum.js'
import { openVolumeOn, type PageWrite, type Volume, type VolumeOptions } from '../volume/volume.js'
import { Rng } from './rng.js'
import { NodeClock, SimClock } from './sim-clock.js'
import { SimDisk } from './sim-disk.js'
import { CALM, SimNetwork, type NetFaults } from './sim-network.js'
import { SimStorage } from './sim-storage.js'

const DIR = '/sim/volume'
const PAGE_SIZE = 512
const PAGES_PER_GROUP = 4
const PAGES = 16
const STAMP_OFFSET = PAGE_SIZE - 8
const STAMP_MAGIC = 0x5a17c0de
/** virtual ms: faults are injected before this */
export const FAULT_MS = 2500
/** writes stop here */
const WORK_MS = 3000
/** after the writes settle, the segments must converge within this */
export const CONVERGE_MS = 10_000

const OPTIONS: VolumeOptions = {
  dir: DIR, pageSize: PAGE_SIZE, pagesPerGroup: PAGES_PER_GROUP, logFileBytes: 16 * 1024, checkpointLogBytes: 40 * 1024,
  coalesceThreshold: 4, gossipIntervalMs: 20, quorumTimeoutMs: 1000, readTimeoutMs: 1000, segmentCacheBytes: 16 * 1024,
  // Scrub passes rest between them, as on a real volume (there for 60 s); a pass over a simulated
  // volume fits in a tick or two, and back to back they were half the simulator's CPU.
  scrubBytesPerSecond: 1 << 20, scrubIntervalMs: 200, lalLsns: 100_000, segmentLagBytesMax: 1 << 20,
  // A segment down this long is replaced through two quorum sets (some crashes of the schedule last longer).
  replaceAfterMs: 700,
}

export interface SimRunOptions {
  /** planted bugs to turn on for this run (all off otherwise) */
  bugs?: Partial<PlantedBugs>
  /** MTRs the workload tries to write (default: drawn from the seed, 60..160) */
  mtrs?: number
}

export interface SimResult {
  seed: number
  ok: boolean
  failures: string[]
  /** the fault schedule and the seed's fault rates, one line each */
  schedule: string[]
  /** what happened, for a summary line */
  counts: Record<string, number>
}

interface MtrModel { id: number; writer: string; mtr: PageWrite[]; cpl: number; acked: boolean; error: string | null; issuedAt: number }
interface Writer {
  name: string; clock: NodeClock; vol: Volume | null; fenced: boolean; opening: boolean; lastVdl: number; inflight: number; openedAt: number; retired: boolean
  /** this handle's framesHeld when last looked at */
  heldSeen?: number
  /** every quorum-set configuration this writer was seen with (a record may have become durable under any of them) */
  configs: Map<string, QuorumSet[]>
}
interface ReadSeen { writer: string; pageId: number; at: number; image: Uint8Array }
interface Flip { segment: number; path: string; off: number; kind: string; at: number; detected: boolean }

/** Runs one seed to the end and returns what every checker found. */
export async function runSeed(seed: number, opts: SimRunOptions = {}): Promise<SimResult> {
  setPlantedBugs(opts.bugs)
  try {
    return await new Simulation(seed >>> 0, opts).run()
  } finally {
    setPlantedBugs({})
  }
}

class Simulation {
  readonly seed: number
  /** seeds = 1 mod 5 announce siblings on their writes (no draw from the rng), so frames wait for them (commitDelayMs) through the faults */
  readonly #announces: boolean
  readonly rng: Rng
  readonly faultRng: Rng
  readonly clock = new SimClock()
  readonly disk: SimDisk
  readonly net: SimNetwork
  readonly storage: SimStorage
  readonly driver: NodeClock
  readonly failures: string[] = []
  readonly schedule: string[] = []
  readonly counts: Record<string, number> = { mtrs: 0, acked: 0, failedWrites: 0, reads: 0, crashes: 0, flips: 0, netCorrupt: 0, nodeErrors: 0, writers: 0, snapshots: 0, pinnedReads: 0 }
  /**
   * Named snapshots the writers made (durable read points that checkpoints
   * fold at); reads at them are checked against the model like any read.
   * Drawn from their own stream, so the main schedule's draws stay as they were.
   */
  readonly pinRng: Rng
  readonly snapshots: Array<{ name: string; lsn: number; deleted: boolean }> = []
  readonly mtrs = new Map<number, MtrModel>()
  readonly recordPg = new Map<number, number>()
  readonly reads: ReadSeen[] = []
  readonly writers: Writer[] = []
  readonly flips: Flip[] = []
  readonly reports: Array<{ segment: number; r: CorruptionReport }> = []
  readonly netFaults: NetFaults
  readonly mtrTarget: number
  readonly #framesSeen = new Set<string>()
  /** per segment, per PG: the highest SCL it ever reported to a writer (reported only after a sync: durable) */
  readonly #reportedScl = Array.from({ length: SLOTS_MAX }, () => new Map<number, number>())
  readonly #sclSeen = Array.from({ length: SLOTS_MAX }, () => ({ scl: new Map<number, number>(), truncs: 0, reports: 0 }))
  /** AZs left out by degradeAZ, to restore at healing */
  readonly #degraded = new Set<number>()
  #mtrSeq = 0
  #healed = false
  #ended = false
  #maxAckedCpl = 0
  #staleName: string | null = null
  /** the writer that took over from #staleName (it counts from when its recovery completed) */
  #newWriter: Writer | null = null

  constructor(seed: number, opts: SimRunOptions) {
    this.seed = seed
    this.#announces = seed % 5 === 1
    this.rng = new Rng(seed)
    this.pinRng = new Rng((seed ^ 0x9e3779b9) >>> 0)
    this.faultRng = this.rng.fork()
    this.disk = new SimDisk(this.rng.fork())
    this.net = new SimNetwork(this.clock, this.rng.fork())
    const r = this.rng
    // Fault rates for this seed (some seeds calm, some harsh), as the VOPR draws them.
    this.netFaults = {
      drop: r.bool(0.3) ? 0 : r.float() * 0.05,
      duplicate: r.bool(0.3) ? 0 : r.float() * 0.05,
      delay: r.float() * 0.2,
      delayMaxMs: r.int(1, 40),
      corrupt: r.bool(0.5) ? 0 : r.float() * 0.02,
    }
    this.mtrTarget = opts.mtrs ?? r.int(60, 160)
    this.driver = new NodeClock(this.clock, 'driver', (_n, err) => this.fail(`simulator driver threw: ${(err as Error).stack ?? err}`))
    this.storage = new SimStorage(DIR, {
      pageSize: PAGE_SIZE, pagesPerGroup: PAGES_PER_GROUP, logFileBytes: OPTIONS.logFileBytes!, coalesceThreshold: OPTIONS.coalesceThreshold!,
      checkpointLogBytes: OPTIONS.checkpointLogBytes!, gossipIntervalMs: OPTIONS.gossipIntervalMs!, pageCacheBytes: OPTIONS.segmentCacheBytes!,
      scrubBytesPerSecond: OPTIONS.scrubBytesPerSecond!, scrubIntervalMs: OPTIONS.scrubIntervalMs!,
    }, this.clock, this.disk, this.net, {
      onCorrupt: (segment, r) => this.reports.push({ segment, r }),
      onNodeError: (segment, err) => {
        this.counts.nodeErrors++
        const e = err as Error & { code?: string }
        // An operating error (a full disk) kills a worker; an invariant that broke is a bug.
        if (e.code !== 'ENOSPC') this.fail(`segment ${segment} threw at ${this.clock.now.toFixed(1)} ms: ${e.stack ?? e}`)
        if (!this.#ended) this.driver.setTimeout(() => { if (!this.storage.isUp(segment)) this.storage.start(segment) }, 200)
      },
      log: () => {},
    })
    this.net.tap = (from, _to, msg) => { this.#tap(from, msg); this.#tapScl(from, msg) }
    this.net.onCorrupt = () => { this.counts.netCorrupt++ }
  }

  fail(msg: string): void { if (this.failures.length < 20) this.failures.push(msg) }

  // ------------------------------------------------------------------ the run

  async run(): Promise<SimResult> {
    const onUnhandled = (err: unknown) => this.fail(`unhandled rejection: ${(err as Error)?.stack ?? err}`)
    process.on('unhandledRejection', onUnhandled)
    try {
      this.schedule.push(`seed ${this.seed}: net drop ${pct(this.netFaults.drop)} dup ${pct(this.netFaults.duplicate)} delay ${pct(this.netFaults.delay)} up to ${this.netFaults.delayMaxMs} ms, corrupt ${pct(this.netFaults.corrupt)}; ${this.mtrTarget} MTRs`)
      for (let id = 0; id < SEGMENTS; id++) this.storage.start(id)
      this.#planFaults()
      this.net.faults = this.netFaults
      this.#openWriter()
      this.driver.setTimeout(() => this.#tick(), 1)
      this.driver.setInterval(() => this.#watchScl(), 20)
      await this.#runUntil(FAULT_MS)
      this.#heal()
      await this.#runUntil(WORK_MS)
      // Let outstanding writes settle (each resolves or fails within its quorum timeout).
      await this.#runUntil(WORK_MS + 4000, () => this.writers.every(w => w.inflight === 0 || w.fenced || !w.vol))
      const settledAt = this.clock.now
      const scrubsAtHeal = Array.from({ length: SLOTS_MAX }, (_, id) => this.storage.nodes[id]?.stats().scrubPasses ?? 0)
      const converged = await this.#runUntil(settledAt + CONVERGE_MS, () => this.#converged(scrubsAtHeal) === null)
      if (!converged) {
        const own = this.#members().map(id => { const n = this.storage.nodes[id]; return n ? `${id}: suspect ${n.pagesSuspect} rebuilds ${JSON.stringify([...n.rebuilds])} restarts ${n.stats().rebuildRestarts} pgs ${JSON.stringify([...n.pgs.values()].map(st => [st.pg, st.base, st.scl, st.sclSynced]))}` : `${id}: down` }).join('; ')
        this.fail(`segments did not converge within ${CONVERGE_MS} ms after the writes settled: ${this.#converged(scrubsAtHeal)} (members: ${JSON.stringify(this.#currentWriter()?.vol?.membership())}; ${own})`)
      }
      else {
        this.counts.convergeMs = this.clock.now - settledAt // virtual time from the writes settling to all segments equal
        this.#checkConvergedState()
      }
      this.#ended = true
      await this.#finalChecks()
    } catch (err) {
      this.fail(`simulation threw: ${(err as Error).stack ?? err}`)
    } finally {
      process.off('unhandledRejection', onUnhandled)
      this.#ended = true
      for (const c of this.storage.clocks) c?.kill()
      for (const w of this.writers) w.clock.kill()
      this.driver.kill()
    }
    this.counts.events = this.clock.events
    this.counts.netDropped = this.net.stats.dropped
    this.counts.tornWrites = this.disk.crashStats.torn
    return { seed: this.seed, ok: this.failures.length === 0, failures: this.failures, schedule: this.schedule, counts: this.counts }
  }

  /** Runs events until virtual time `t`, or until `done()` holds; returns whether done() held. */
  async #runUntil(t: number, done?: () => boolean): Promise<boolean> {
    let checkedAt = -Infinity
    for (;;) {
      // Conditions are checked every 5 ms of virtual time (some walk every record).
      if (done && this.clock.now - checkedAt >= 5) { checkedAt = this.clock.now; if (done()) return true }
      if (!this.clock.step(t)) { this.clock.advanceTo(t); return done ? done() : true }
      // Promise jobs started by the event run before the next event (no real I/O or timers: deterministic).
      // A nextTick callback runs only once the microtask queue is empty, chains included, and nothing
      // under simulation queues ticks of its own; a setImmediate here cost a turn of the event loop (an
      // epoll_wait) per event, a third of the simulator's time.
      await new Promise<void>(r => process.nextTick(r))
    }
  }

  // ------------------------------------------------------------------ faults

  #planFaults(): void {
    const r = this.faultRng
    const n = r.int(1, 7)
    const plan: Array<{ at: number; text: string; run: () => void }> = []
    let staleDone = false
    for (let i = 0; i < n; i++) {
      const at = r.int(100, FAULT_MS - 100)
      const k = r.float()
      if (k < 0.25) {
        const s = r.int(0, 5)
        const dur = r.int(30, 900)
        plan.push({ at, text: `crash segment ${s}, restart after ${dur} ms`, run: () => this.#crash([s], dur) })
      } else if (k < 0.35) {
        const az = r.int(0, 2)
        const dur = r.int(30, 900)
        plan.push({ at, text: `crash AZ ${az} (segments ${az * 2}, ${az * 2 + 1}), restart after ${dur} ms`, run: () => this.#crash([az * 2, az * 2 + 1], dur) })
      } else if (k < 0.5) {
        const az = r.int(0, 2)
        const dur = r.int(50, 1200)
        plan.push({ at, text: `partition AZ ${az} away for ${dur} ms`, run: () => this.#partition(az, dur) })
      } else if (k < 0.75) {
        const s = r.int(0, 5)
        const bits = r.int(1, 3)
        plan.push({ at, text: `flip ${bits} bit(s) on segment ${s}'s disk`, run: () => this.#flipDisk(s, bits) })
      } else if (k < 0.8) {
        const s = r.int(0, 5)
        const dur = r.int(50, 800)
        plan.push({ at, text: `disk of segment ${s} full for ${dur} ms`, run: () => this.#diskFull(s, dur) })
      } else if (k < 0.9) {
        const az = r.int(0, 2)
        plan.push({ at, text: `AZ ${az} lost until healing; the volume moves to 3/4 (and back to 4/6 at healing)`, run: () => this.#loseAZ(az) })
      } else if (!staleDone) {
        staleDone = true
        plan.push({ at, text: 'a new writer opens; the old one keeps writing (stale writer)', run: () => this.#takeOver() })
      }
    }
    // A third of the seeds also close the writer cleanly once and open a new one: the next
    // recovery may then skip its truncation, if the close found every allocated LSN durable.
    // Drawn from the seed, not faultRng, so the other seeds' schedules stay as they were.
    if (this.seed % 3 === 0) {
      const at = 100 + (this.seed >>> 2) % (FAULT_MS - 200)
      plan.push({ at, text: 'the writer closes cleanly; a new one opens', run: () => this.#cleanRestart() })
    }
    plan.sort((a, b) => a.at - b.at)
    for (const p of plan) {
      this.schedule.push(`  +${String(p.at).padStart(5)} ms  ${p.text}`)
      this.driver.setTimeout(() => { if (!this.#healed) p.run() }, p.at)
    }
  }

  #crash(ids: number[], dur: number): void {
    for (const id of ids) if (this.storage.isUp(id)) { this.storage.crash(id); this.counts.crashes++ }
    this.driver.setTimeout(() => { for (const id of ids) this.storage.start(id) }, dur)
  }

  #partition(az: number, dur: number): void {
    const names = [`s${az * 2}`, `s${az * 2 + 1}`]
    this.net.partition(names)
    this.driver.setTimeout(() => this.net.heal(names), dur)
  }

  #flipDisk(s: number, bits: number): void {
    const node = this.storage.nodes[s]
    if (!node) return
    const extents = node.dataExtents()
    for (let i = 0; i < bits && extents.length; i++) {
      const e = this.faultRng.pick(extents)
      const off = e.off + this.faultRng.int(0, e.len - 1)
      if (this.disk.flip(e.path, off, this.faultRng.int(0, 7))) {
        this.flips.push({ segment: s, path: e.path, off, kind: e.kind, at: this.clock.now, detected: false })
        this.counts.flips++
      }
    }
  }

  #diskFull(s: number, dur: number): void {
    const dir = this.storage.segDir(s)
    this.disk.limit(dir, this.disk.used(dir))
    this.driver.setTimeout(() => this.disk.limit(dir, null), dur)
  }

  #takeOver(): void {
    const old = this.#currentWriter()
    if (!old) return
    // The writer may still be opening (a lost recovery message waits out its timeout): take over once it is open.
    if (!old.vol || old.fenced) { if (!this.#healed && !old.fenced) this.driver.setTimeout(() => this.#takeOver(), 50); return }
    this.#staleName = old.name
    this.#newWriter = this.#openWriter()
  }

  #cleanRestart(): void {
    const old = this.#currentWriter()
    if (!old || old.fenced || this.#staleName) return
    // Still opening (a lost recovery message waits out its timeout): close once it is open.
    if (!old.vol) { if (!this.#healed) this.driver.setTimeout(() => this.#cleanRestart(), 50); return }
    old.retired = true // no new work; what it has in flight settles in close()
    this.counts.cleanCloses = (this.counts.cleanCloses ?? 0) + 1
    old.vol.close().then(() => {
      const before = this.#truncations().length
      const w = this.#openWriter()
      const counted = () => {
        if (w.vol) { if (this.#truncations().length === before) this.counts.untruncatedOpens = (this.counts.untruncatedOpens ?? 0) + 1 }
        else if (!this.#ended) this.driver.setTimeout(counted, 20)
      }
      counted()
    }, err => this.fail(`writer ${old.name} did not close: ${(err as Error).stack ?? err}`))
  }

  #loseAZ(az: number): void {
    for (const id of [az * 2, az * 2 + 1]) if (this.storage.isUp(id)) { this.storage.crash(id); this.counts.crashes++ }
    const w = this.#currentWriter()
    // Refused while another change is under way: then the AZ simply stays down until healing.
    w?.vol?.degradeAZ(az).then(() => { this.#degraded.add(az); this.counts.degraded = (this.counts.degraded ?? 0) + 1 }, () => {})
  }

  #heal(): void {
    this.#healed = true
    this.net.faults = { ...CALM, delay: this.netFaults.delay, delayMaxMs: Math.min(this.netFaults.delayMaxMs, 5) }
    this.net.heal()
    for (let id = 0; id < this.storage.nodes.length; id++) { this.disk.limit(this.storage.segDir(id), null); this.storage.start(id) }
    // From here on, a segment that dies (it should not) is restarted at once.
    this.driver.setInterval(() => { if (!this.#ended) for (let id = 0; id < this.storage.nodes.length; id++) if (!this.storage.isUp(id)) this.storage.start(id) }, 100)
    // AZs left out come back into the quorum sets (retried while another change is under way).
    const restore = () => {
      const w = this.#currentWriter()
      for (const az of this.#degraded) {
        const sets = w?.vol?.membership().sets
        if (!w?.vol || !sets || sets.length !== 1 || sets[0].members.length !== 4 || w.vol.membership().changing) continue
        this.#degraded.delete(az)
        w.vol.restoreAZ(az).then(() => { this.counts.restored = (this.counts.restored ?? 0) + 1 }, () => { this.#degraded.add(az) })
      }
      if (!this.#ended) this.driver.setTimeout(restore, 50)
    }
    restore()
  }

  // ------------------------------------------------------------------ writers and workload

  #currentWriter(): Writer | undefined {
    for (let i = this.writers.length - 1; i >= 0; i--) if (!this.writers[i].retired) return this.writers[i]
    return undefined
  }

  #openWriter(name = `w${this.writers.length + 1}`): Writer {
    const clock = new NodeClock(this.clock, name, (_n, err) => this.fail(`writer ${name} threw: ${(err as Error).stack ?? err}`))
    const w: Writer = { name, clock, vol: null, fenced: false, opening: true, lastVdl: 0, inflight: 0, openedAt: 0, retired: false, configs: new Map() }
    this.writers.push(w)
    this.counts.writers++
    const attempt = () => {
      openVolumeOn(OPTIONS, { disk: this.disk, clock, acquire: async () => this.storage.viewFor(name, clock) }).then(vol => {
        w.vol = vol
        w.opening = false
        w.openedAt = this.clock.now
        w.lastVdl = vol.vdl
        // Recovery finds every acknowledged write (4 + 3 > 6).
        if (vol.vdl < this.#maxAckedCpl) this.fail(`writer ${name} recovered VDL ${vol.vdl}, below CPL ${this.#maxAckedCpl} acknowledged earlier`)
      }, err => {
        if (process.env.SIM_TRACE) console.log(`${this.clock.now.toFixed(1)} open ${name} failed: ${(err as Error).message}`)
        if (this.#ended && name !== 'final') return
        if (this.clock.now > WORK_MS + CONVERGE_MS + 8000) { this.fail(`writer ${name} could not open: ${(err as Error).message}`); return }
        clock.setTimeout(attempt, 200)
      })
    }
    attempt()
    return w
  }

  #tick(): void {
    if (this.clock.now >= WORK_MS) return
    const r = this.rng
    for (const w of this.writers) {
      if (!w.vol || w.fenced || w.retired) continue
      if (w.vol.vdl < w.lastVdl) this.fail(`writer ${w.name}: VDL went back from ${w.lastVdl} to ${w.vol.vdl}`)
      this.#noteConfig(w)
      w.lastVdl = w.vol.vdl
      if (this.#announces) {
        const held = w.vol.stats().framesHeld
        this.counts.framesHeld = (this.counts.framesHeld ?? 0) + held - (w.heldSeen ?? 0)
        w.heldSeen = held
      }
      if (this.#mtrSeq < this.mtrTarget && w.inflight < 4 && r.bool(0.6)) this.#write(w)
      if (r.bool(0.4)) this.#read(w)
      this.#pins(w)
    }
    this.driver.setTimeout(() => this.#tick(), r.int(1, 8))
  }

  #write(w: Writer): void {
    const id = ++this.#mtrSeq
    const mtr = this.#randomMtr(id)
    const m: MtrModel = { id, writer: w.name, mtr, cpl: 0, acked: false, error: null, issuedAt: this.clock.now }
    this.mtrs.set(id, m)
    this.counts.mtrs++
    w.inflight++
    let p: Promise<{ lsn: number }>
    const opts = this.#announces ? { siblings: w.inflight + 3 } : undefined
    try { p = w.vol!.write(mtr, opts) } catch (err) { w.inflight--; this.#writeFailed(w, m, err); return }
    p.then(res => {
      w.inflight--
      m.acked = true
      this.counts.acked++
      if (m.cpl !== 0 && m.cpl !== res.lsn) this.fail(`MTR ${id}: acked at LSN ${res.lsn} but shipped with CPL ${m.cpl}`)
      m.cpl ||= res.lsn
      if (res.lsn > this.#maxAckedCpl) this.#maxAckedCpl = res.lsn
      this.#checkQuorum(m, res.lsn)
      if (w.vol && w.vol.vdl < res.lsn) this.fail(`MTR ${id}: acked at ${res.lsn} above the writer's VDL ${w.vol.vdl}`)
    }, err => { w.inflight--; this.#writeFailed(w, m, err) })
  }

  #writeFailed(w: Writer, m: MtrModel, err: unknown): void {
    const code = (err as { code?: string }).code ?? String(err)
    m.error = code
    this.counts.failedWrites++
    if (code === 'HEXAD_FENCED') w.fenced = true
    else if (code !== 'HEXAD_QUORUM_LOST' && code !== 'HEXAD_CLOSED') this.fail(`write of MTR ${m.id} by ${w.name} failed with ${code}: ${(err as Error).message}`)
  }

  #read(w: Writer): void {
    const vol = w.vol!
    const pageId = this.rng.int(0, PAGES - 1)
    const at = vol.vdl
    let p: Promise<Uint8Array>
    try { p = vol.readPage(pageId, { at }) } catch { return }
    p.then(image => { this.counts.reads++; this.reads.push({ writer: w.name, pageId, at, image: new Uint8Array(image) }) }, () => {})
  }

  /**
   * Snapshots: now and then the only live writer marks one at its VDL (a
   * stale writer must not write volume.meta), deletes the oldest, or reads
   * a page at a live one (pages change after it, checkpoints fold past it).
   */
  #pins(w: Writer): void {
    const pr = this.pinRng
    const vol = w.vol!
    const live = this.snapshots.filter(x => !x.deleted)
    const only = this.writers.filter(x => x.vol && !x.fenced && !x.retired).length === 1
    if (only && live.length < 3 && pr.bool(0.01)) {
      const name = `s${this.snapshots.length + 1}`
      try {
        const lsn = vol.createSnapshot(name)
        this.snapshots.push({ name, lsn, deleted: false })
        this.counts.snapshots++
        this.schedule.push(`${this.clock.now.toFixed(0)} ms: snapshot ${name} at ${lsn}`)
      } catch { /* fenced or closed meanwhile */ }
    }
    if (only && live.length && pr.bool(0.003)) {
      const x = live[0]
      try { vol.deleteSnapshot(x.name); x.deleted = true; this.schedule.push(`${this.clock.now.toFixed(0)} ms: snapshot ${x.name} deleted`) } catch { /* fenced or closed */ }
    }
    if (live.length && pr.bool(0.2)) {
      const x = live[pr.int(0, live.length - 1)]
      const pageId = pr.int(0, PAGES - 1)
      let p: Promise<Uint8Array>
      try { p = vol.readPage(pageId, { at: x.lsn }) } catch (err) {
        // A writer that opened before the snapshot existed does not know it: only that may refuse it.
        if (vol.snapshots().some(s => s.name === x.name)) this.fail(`read at snapshot ${x.name} (${x.lsn}) refused by ${w.name}: ${(err as Error).message}`)
        return
      }
      p.then(image => { this.counts.pinnedReads++; this.reads.push({ writer: w.name, pageId, at: x.lsn, image: new Uint8Array(image) }) }, () => {})
    }
  }

  /** 1..3 records over random pages; the CPL record also writes the MTR's id (the stamp the wire tap reads). */
  #randomMtr(id: number): PageWrite[] {
    const r = this.rng
    const n = r.int(1, 3)
    const out: PageWrite[] = []
    for (let i = 0; i < n; i++) {
      const ops: PageOp[] = []
      for (let j = r.int(1, 2); j > 0; j--) {
        const k = r.float()
        const len = r.int(1, 48)
        const off = r.int(0, STAMP_OFFSET - len)
        if (k < 0.6) ops.push({ op: 'write', offset: off, bytes: r.bytes(len) })
        else if (k < 0.8) ops.push({ op: 'fill', offset: off, len, byte: r.int(0, 255) })
        else if (k < 0.95) ops.push({ op: 'move', src: off, dst: r.int(0, STAMP_OFFSET - len), len })
        else ops.push({ op: 'init' })
      }
      out.push({ pageId: r.int(0, PAGES - 1), ops })
    }
    const stamp = Buffer.alloc(8)
    stamp.writeUInt32LE(id, 0)
    stamp.writeUInt32LE(STAMP_MAGIC, 4)
    out[n - 1].ops.push({ op: 'write', offset: STAMP_OFFSET, bytes: stamp })
    return out
  }

  /** Learns each MTR's CPL, and each record's PG, from the frames writers send (before any network fault). */
  #tap(from: string, msg: unknown): void {
    const m = msg as { t?: string; seq?: number; frame?: Uint8Array }
    if (!from.startsWith('w') || m.t !== 'frame' || !m.frame) return
    const key = `${from}:${m.seq}`
    if (this.#framesSeen.has(key)) return
    this.#framesSeen.add(key)
    const p = decodeFrame(m.frame)
    if (!p) { this.fail(`writer ${from} shipped frame ${m.seq} that does not decode`); return }
    for (const rec of p.records) {
      this.recordPg.set(rec[R_LSN], Math.floor(rec[R_PAGE] / PAGES_PER_GROUP))
      if (!(rec[R_FLAGS] & RECORD_FLAG_CPL)) continue
      const stamp = recordOps(rec).find(op => op[0] === 1 && op[1] === STAMP_OFFSET) as [1, number, Uint8Array] | undefined
      if (!stamp) { this.fail(`CPL record ${rec[R_LSN]} carries no MTR stamp`); continue }
      const b = Buffer.from(stamp[2])
      if (b.readUInt32LE(4) !== STAMP_MAGIC) { this.fail(`CPL record ${rec[R_LSN]} has a bad stamp`); continue }
      const mm = this.mtrs.get(b.readUInt32LE(0))
      if (!mm) { this.fail(`frame carries unknown MTR ${b.readUInt32LE(0)}`); continue }
      if (mm.cpl !== 0 && mm.cpl !== rec[R_LSN]) this.fail(`MTR ${mm.id} shipped at two CPLs ${mm.cpl} and ${rec[R_LSN]}`)
      mm.cpl = rec[R_LSN]
    }
  }

  #tapScl(from: string, msg: unknown): void {
    const m = msg as { t?: string; scl?: Array<[number, number]> }
    if (!from.startsWith('s') || !Array.isArray(m.scl) || !['ack', 'scl', 'hello-ok', 'truncate-ok'].includes(m.t ?? '')) return
    const rep = this.#reportedScl[Number(from.slice(1))]
    for (const [pg, scl] of m.scl) if (scl > (rep.get(pg) ?? 0)) rep.set(pg, scl)
  }

  /**
   * Invariant 2, checked at the moment a write is acknowledged: every record
   * of the MTR is covered by the reported (synced) SCL of at least 4 of the
   * 6 segments of its PG.
   */
  #noteConfig(w: Writer): void {
    const sets = w.vol?.membership().sets
    if (sets) w.configs.set(JSON.stringify(sets), sets)
  }

  #checkQuorum(m: MtrModel, cpl: number): void {
    // Each record must meet the write quorum of every set of one configuration the writer had
    // (both sets during a change; a record durable before a change began stays durable).
    const writer = this.writers.find(w => w.name === m.writer)!
    this.#noteConfig(writer)
    const holds = (set: QuorumSet, pg: number, lsn: number) => set.members.filter(id => (this.#reportedScl[id].get(pg) ?? 0) >= lsn).length
    for (let lsn = cpl - m.mtr.length + 1; lsn <= cpl; lsn++) {
      const pg = this.recordPg.get(lsn)
      if (pg === undefined) { this.fail(`MTR ${m.id} acked at ${cpl}, but record ${lsn} was never seen on the wire`); return }
      if ([...writer.configs.values()].some(sets => sets.every(set => holds(set, pg, lsn) >= set.write))) continue
      for (const set of writer.vol!.membership().sets) {
        const n = holds(set, pg, lsn)
        if (n < set.write) {
          const w = this.writers.find(x => x.name === m.writer)?.vol
          const why = process.env.SIM_TRACE ? ` [writer's view at ${this.clock.now.toFixed(1)} ms: ${w?.stats().segments.map(s => `${s.id}:${s.member ? 'm' : '-'}:${s.pgScl.find(([p]) => p === pg)?.[1]}`).join(' ')}; wire: ${this.#reportedScl.map((r, i) => `${i}:${r.get(pg)}`).join(' ')}; sets ${JSON.stringify(w?.membership())}]` : ''
          this.fail(`MTR ${m.id} acknowledged at ${cpl} while record ${lsn} (PG ${pg}) was on only ${n} of ${set.members.length} segments (needs ${set.write})${why}`)
          return
        }
      }
    }
  }

  /** Each segment's SCL per PG never goes back, except when it took a new truncation. */
  #watchScl(): void {
    for (let id = 0; id < this.storage.nodes.length; id++) {
      const node = this.storage.nodes[id]
      if (!node) continue
      const seen = this.#sclSeen[id]
      const truncs = node.truncations.length
      if (truncs !== seen.truncs) { seen.truncs = truncs; seen.scl.clear() }
      // A segment that found a damaged frame (a bit flipped on its disk) has lost those records
      // until gap fill brings them back: its SCL honestly goes back. A flip in the last frame of
      // the newest log file looks like a torn write and is cut as one ('torn-tail'). Nothing else
      // may lower it.
      const damage = this.reports.filter(x => x.segment === id && (x.r.kind === 'frame' || x.r.kind === 'torn-tail')).length
      if (damage !== seen.reports && this.flips.some(f => f.segment === id)) { seen.reports = damage; seen.scl.clear() }
      for (const [pg, st] of node.pgs) {
        const before = seen.scl.get(pg) ?? 0
        if (st.sclSynced < before) this.fail(`segment ${id} PG ${pg}: SCL went back from ${before} to ${st.sclSynced} at ${this.clock.now.toFixed(1)} ms`)
        seen.scl.set(pg, st.sclSynced)
      }
    }
  }

  // ------------------------------------------------------------------ checks

  /** null when converged, else what is missing. */
  #converged(scrubsAtHeal: number[]): string | null {
    const w = this.#currentWriter()
    if (!w?.vol) return 'no open writer'
    const vdl = w.vol.vdl
    const lastOfPg = new Map<number, number>()
    for (const [lsn, pg] of this.recordPg) if (lsn <= vdl && lsn > (lastOfPg.get(pg) ?? 0) && this.#survives(lsn, vdl, this.#truncations())) lastOfPg.set(pg, lsn)
    if (w.vol.membership().changing) {
      const sets = w.vol.membership().sets
      const view = w.vol.stats().segments.filter(s => s.member).map(s => `${s.id}:${s.up ? 'up' : 'down'}:${JSON.stringify(s.pgScl)}`).join(' ')
      const own = this.#members().map(id => { const n = this.storage.nodes[id]; return n ? `${id}: peers ${[...n.peers.keys()]} clients ${n.clients.size} epoch ${n.epoch} pgs ${JSON.stringify(n.stats().pgScl)}` : `${id}: down` }).join('; ')
      return `a membership change is under way (${JSON.stringify(sets)}; writer's view ${view}; segments' own: ${own})`
    }
    if (this.#degraded.size) return `AZ ${[...this.#degraded]} not yet back in the quorum sets`
    for (const id of this.#members()) {
      const node = this.storage.nodes[id]
      if (!node) return `segment ${id} is down`
      for (const [pg, last] of lastOfPg) {
        const scl = node.pgs.get(pg)?.sclSynced ?? 0
        if (scl < last) return `segment ${id} PG ${pg} SCL ${scl} < ${last}`
      }
      if (node.rebuilds.size) return `segment ${id} is rebuilding`
      if (node.pagesSuspect) return `segment ${id} still has page files it cannot trust (pagesSuspect)`
      for (const [pageId, from] of node.damagedPages) if (from === Infinity) return `segment ${id} waits for a peer to repair page ${pageId}`
      // One full scrub pass after healing, so every flipped bit had its chance to be found.
      if (node.stats().scrubPasses < scrubsAtHeal[id] + 2) return `segment ${id} has not finished a scrub pass since healing`
    }
    return null
  }

  /** The segments of the current writer's quorum sets. */
  #members(): number[] {
    const sets = this.#currentWriter()?.vol?.membership().sets ?? [{ members: [0, 1, 2, 3, 4, 5] }]
    return [...new Set(sets.flatMap(s => s.members))].sort((a, b) => a - b)
  }

  #truncations(): Truncation[] {
    const bytes = this.disk.exists(`${DIR}/volume.meta`) ? this.disk.readFile(`${DIR}/volume.meta`) : null
    return (bytes && decodeMeta<{ truncations: Truncation[] }>(bytes)?.truncations) || []
  }

  #survives(lsn: number, vdl: number, truncs: Truncation[]): boolean {
    return lsn > 0 && lsn <= vdl && !truncs.some(([a, b]) => lsn > a && lsn <= b)
  }

  /** The pages after every surviving MTR with CPL <= at, applied in CPL order. */
  #model(at: number, vdl: number, truncs: Truncation[]): Uint8Array[] {
    const pages = Array.from({ length: PAGES }, () => new Uint8Array(PAGE_SIZE))
    const live = [...this.mtrs.values()].filter(m => m.cpl <= at && this.#survives(m.cpl, vdl, truncs)).sort((a, b) => a.cpl - b.cpl)
    for (const m of live) for (const w of m.mtr) for (const op of w.ops) modelApply(pages[w.pageId], op)
    return pages
  }

  /** After convergence: every segment holds the same records of each PG up to the VDL, and alone builds every page right. */
  #checkConvergedState(): void {
    const vol = this.#currentWriter()!.vol!
    const vdl = vol.vdl
    const truncs = this.#truncations()
    const model = this.#model(vdl, vdl, truncs)
    for (let pg = 0; pg < PAGES / PAGES_PER_GROUP; pg++) {
      let from = 0
      const members = this.#members().map(id => this.storage.nodes[id])
      for (const node of members) from = Math.max(from, node!.pgs.get(pg)?.base ?? 0)
      const hashes = members.map(node => {
        const v = node!.inspectPg(pg, vdl)
        if (!v) return 'none'
        return createHash('sha256').update(pack(v.records.filter(r => r[R_LSN] > from))).digest('hex').slice(0, 12)
      })
      if (new Set(hashes).size > 1) this.fail(`PG ${pg}: segments hold different records in (${from}, ${vdl}]: ${hashes.join(' ')}`)
    }
    for (const id of this.#members()) {
      for (let p = 0; p < PAGES; p++) {
        const img = this.storage.nodes[id]!.inspectPage(p, vdl)
        if (!img) this.fail(`segment ${id} cannot build page ${p} at VDL ${vdl} after converging: ${JSON.stringify({ suspect: this.storage.nodes[id]!.pagesSuspect, base: this.storage.nodes[id]!.pgs.get(Math.floor(p / PAGES_PER_GROUP))?.base, horizon: this.storage.nodes[id]!.horizon, damaged: this.storage.nodes[id]!.damagedPages.get(p) })}`)
        else if (!equal(img, model[p])) this.fail(`segment ${id} builds page ${p} at VDL ${vdl} differently from the model (first difference at byte ${firstDiff(img, model[p])})`)
      }
    }
  }

  async #finalChecks(): Promise<void> {
    // A fresh writer recovers: every acknowledged MTR must be there.
    const fin = this.#openWriter('final')
    for (const w of this.writers) if (w !== fin) w.retired = true
    await this.#runUntil(this.clock.now + 20_000, () => fin.vol !== null)
    const vol = fin.vol
    if (!vol) { this.fail('the final writer could not open'); return }
    const vdl = vol.vdl
    const truncs = this.#truncations()
    for (const m of this.mtrs.values()) {
      if (!m.acked) continue
      if (!this.#survives(m.cpl, vdl, truncs)) this.fail(`acknowledged MTR ${m.id} (writer ${m.writer}, CPL ${m.cpl}) is lost: recovered VDL ${vdl}, truncations ${JSON.stringify(truncs)}`)
    }
    // Every page read by the fresh writer equals the model.
    const model = this.#model(vdl, vdl, truncs)
    const got = await this.#settle(Promise.all(Array.from({ length: PAGES }, (_, p) => vol.readPage(p))))
    if (got instanceof Error) this.fail(`final reads failed: ${got.message}`)
    else got.forEach((img, p) => { if (!equal(img, model[p])) this.fail(`final read of page ${p} at VDL ${vdl} differs from the model at byte ${firstDiff(img, model[p])}`) })
    // Every page at every live snapshot equals the model there (after all the checkpoints since).
    for (const x of this.snapshots.filter(y => !y.deleted)) {
      const want = this.#model(x.lsn, vdl, truncs)
      const imgs = await this.#settle(Promise.all(Array.from({ length: PAGES }, (_, p) => vol.readPage(p, { at: x.lsn }))))
      if (imgs instanceof Error) { this.fail(`final reads at snapshot ${x.name} (${x.lsn}) failed: ${imgs.message}`); continue }
      imgs.forEach((img, p) => { if (!equal(img, want[p])) this.fail(`final read of page ${p} at snapshot ${x.name} (${x.lsn}) differs from the model at byte ${firstDiff(img, want[p])}`) })
    }
    // Every read during the run returned the model at its read point.
    const cache = new Map<number, Uint8Array[]>()
    let bad = 0
    for (const r of this.reads) {
      let m = cache.get(r.at)
      if (!m) { m = this.#model(r.at, vdl, truncs); cache.set(r.at, m) }
      if (!equal(r.image, m[r.pageId]) && bad++ < 3) this.fail(`read of page ${r.pageId} at ${r.at} by ${r.writer} returned something other than the model at that read point (byte ${firstDiff(r.image, m[r.pageId])})`)
    }
    // Every flipped bit was found by a checksum, or is no longer there: its file is gone or cut
    // short, or new bytes were written over it (a torn tail truncated after a crash and appended
    // again, say), or the frame or version there was collected (garbage nothing reads; a live one
    // was scrubbed by the full pass convergence waited for). A segment down now counts as live.
    const live = (f: Flip) => {
      const node = this.storage.nodes[f.segment]
      return !node || node.dataExtents().some(e => e.path === f.path && f.off >= e.off && f.off < e.off + e.len)
    }
    for (const f of this.flips) {
      const found = this.reports.some(({ segment, r }) => segment === f.segment && r.path === f.path && f.off >= r.off && f.off < r.off + r.len)
      if (!found && this.disk.flipped(f.path, f.off) && live(f)) this.fail(`bit flipped at ${f.path}:${f.off} (${f.kind}, segment ${f.segment}, at ${f.at.toFixed(0)} ms) was never detected`)
    }
    // The stale writer was fenced.
    if (this.#staleName) {
      const old = this.writers.find(w => w.name === this.#staleName)!
      // Only once the new writer's recovery completed is the old one stale (until then it may write on).
      const since = this.#newWriter?.vol ? this.#newWriter.openedAt : Infinity
      const after = [...this.mtrs.values()].filter(m => m.writer === old.name && m.issuedAt > since + 500)
      if (!old.fenced && after.length > 0) {
        const st = old.vol?.stats()
        const view = st ? `epoch ${st.epoch}, VDL ${st.vdl}, in flight ${old.inflight}, frames shipped ${st.framesShipped}, segments ${st.segments.filter(s => s.member).map(s => `${s.id}:${s.up ? 'up' : 'down'}`).join(' ')}, sets ${JSON.stringify(old.vol?.membership().sets)}` : 'not open'
        this.fail(`the stale writer ${old.name} kept writing after a newer writer opened and was never fenced (${after.length} MTRs issued after; its view: ${view})`)
      }
    }
    await this.#settle(vol.close())
  }

  async #settle<T>(p: Promise<T>): Promise<T | Error> {
    let out: T | Error = new Error('did not settle within 20 s of virtual time')
    let done = false
    p.then(v => { out = v; done = true }, e => { out = e as Error; done = true })
    await this.#runUntil(this.clock.now + 20_000, () => done)
    return out
  }
}

function modelApply(page: Uint8Array, op: PageOp): void {
  switch (op.op) {
    case 'init': page.fill(0); if (op.image) page.set(op.image.subarray(0, page.length)); return
    case 'write': for (let i = 0; i < op.bytes.length; i++) page[op.offset + i] = op.bytes[i]; return
    case 'move': { const tmp = page.slice(op.src, op.src + op.len); page.set(tmp, op.dst); return }
    case 'fill': for (let i = 0; i < op.len; i++) page[op.offset + i] = op.byte; return
  }
}

function equal(a: Uint8Array, b: Uint8Array): boolean { return firstDiff(a, b) < 0 }
function firstDiff(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length)
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i
  return a.length === b.length ? -1 : n
}
function pct(x: number): string { return `${(x * 100).toFixed(1)}%` }
