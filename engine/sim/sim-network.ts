/**
 * The simulated network between the writer(s) and the six segments, and
 * between segments: every message is structured-cloned (as postMessage
 * would), then dropped, duplicated, delayed (which reorders it) or
 * corrupted in transit by the rates of the current seed, or held back by a
 * partition. A message arrives as a clock event of its receiver.
 *
 * Endpoints are named ('w1', 's3'); a partition cuts a set of endpoints off
 * from everyone outside it (an AZ whose network is lost: its two segments
 * still talk to each other).
 */
import type { PortLike } from '../storage/segment-node.js'
import type { NodeClock, SimClock } from './sim-clock.js'
import type { Rng } from './rng.js'

export interface NetFaults {
  drop: number
  duplicate: number
  /** chance that a message is held back by up to delayMaxMs (others take 0.02..0.2 ms) */
  delay: number
  delayMaxMs: number
  /** chance that a checksummed payload (a frame, a version entry) gets one bit flipped in transit */
  corrupt: number
}

export const CALM: NetFaults = { drop: 0, duplicate: 0, delay: 0, delayMaxMs: 0, corrupt: 0 }

/** Fields of messages that carry checksummed bytes (a receiver must check them before keeping anything). */
const CHECKSUMMED = new Set(['frame', 'entry'])

export class SimNetwork {
  readonly #clock: SimClock
  readonly #rng: Rng
  faults: NetFaults = { ...CALM }
  readonly #cut = new Set<string>()
  stats = { sent: 0, dropped: 0, duplicated: 0, corrupted: 0, partitioned: 0 }
  /** sees every message a writer sends, before any fault (the simulator's model learns LSNs from it) */
  tap: ((from: string, to: string, msg: unknown) => void) | null = null
  /** told of every payload corrupted in transit */
  onCorrupt: ((from: string, to: string, msg: unknown) => void) | null = null

  constructor(clock: SimClock, rng: Rng) { this.#clock = clock; this.#rng = rng }

  /** Cuts `names` off from every endpoint outside the set; `heal` reconnects them. */
  partition(names: string[]): void { for (const n of names) this.#cut.add(n) }
  heal(names?: string[]): void { if (names) for (const n of names) this.#cut.delete(n); else this.#cut.clear() }
  isCut(a: string, b: string): boolean { return this.#cut.has(a) !== this.#cut.has(b) }

  send(from: string, to: string, msg: unknown, receiver: NodeClock, deliver: (m: unknown) => void): void {
    this.stats.sent++
    this.tap?.(from, to, msg)
    if (this.isCut(from, to)) { this.stats.partitioned++; return }
    const f = this.faults
    if (this.#rng.bool(f.drop)) { this.stats.dropped++; return }
    const copies = this.#rng.bool(f.duplicate) ? 2 : 1
    if (copies === 2) this.stats.duplicated++
    for (let i = 0; i < copies; i++) {
      const m = structuredClone(msg)
      if (f.corrupt > 0 && this.#rng.bool(f.corrupt)) this.#corrupt(from, to, m)
      const delay = this.#rng.bool(f.delay) ? this.#rng.float() * f.delayMaxMs : 0.02 + this.#rng.float() * 0.18
      // Checked again on arrival: a partition that started meanwhile loses it too.
      this.#clock.schedule(() => { if (!this.isCut(from, to)) deliver(m); else this.stats.partitioned++ }, delay, 0, receiver)
    }
  }

  #corrupt(from: string, to: string, m: unknown): void {
    if (!m || typeof m !== 'object') return
    for (const [k, v] of Object.entries(m as Record<string, unknown>)) {
      if (CHECKSUMMED.has(k) && v instanceof Uint8Array && v.length > 0) {
        // A frame in shared memory is the sender's (and every other receiver's) too: flip a bit in a copy.
        const w = v.buffer instanceof SharedArrayBuffer ? ((m as Record<string, unknown>)[k] = new Uint8Array(v)) as Uint8Array : v
        w[this.#rng.int(0, w.length - 1)] ^= 1 << this.#rng.int(0, 7)
        this.stats.corrupted++
        this.onCorrupt?.(from, to, m)
        return
      }
      if (k === 'versions' && Array.isArray(v) && v.length && v[0] instanceof Uint8Array) {
        const e = this.#rng.pick(v as Uint8Array[])
        e[this.#rng.int(0, e.length - 1)] ^= 1 << this.#rng.int(0, 7)
        this.stats.corrupted++
        this.onCorrupt?.(from, to, m)
        return
      }
    }
  }
}

/** One end of a simulated channel; `pair` makes both ends. */
export class SimPort implements PortLike {
  readonly owner: string
  readonly clock: NodeClock
  other!: SimPort
  closed = false
  readonly #net: SimNetwork
  readonly #handlers: Array<(m: never) => void> = []

  constructor(net: SimNetwork, owner: string, clock: NodeClock) { this.#net = net; this.owner = owner; this.clock = clock }

  static pair(net: SimNetwork, a: string, aClock: NodeClock, b: string, bClock: NodeClock): [SimPort, SimPort] {
    const pa = new SimPort(net, a, aClock)
    const pb = new SimPort(net, b, bClock)
    pa.other = pb
    pb.other = pa
    return [pa, pb]
  }

  postMessage(m: unknown): void {
    if (this.closed) return
    const to = this.other
    this.#net.send(this.owner, to.owner, m, to.clock, copy => {
      if (to.closed) return
      for (const h of to.#handlers) (h as (m: unknown) => void)(copy)
    })
  }

  on(_event: 'message', fn: (m: never) => void): this { this.#handlers.push(fn); return this }

  close(): void { this.closed = true; this.other.closed = true }

  unref(): void {}
}
