/**
 * Quorum tracking: from the SCLs that segments report, which records are
 * durable, and so the VCL and the VDL.
 *
 * A record of PG g is durable once 4 of g's 6 segments have an SCL at or
 * above it (a segment's SCL covers every record of g up to it, so an SCL is
 * an ack of the whole prefix). During a membership change (SIGMOD'18) there
 * are two quorum sets, the old and the new, and a record is durable only
 * when it reaches the write quorum of both; a set may also be a degraded
 * 3-of-4 set (an AZ lost for long). LSNs are dense (every LSN is exactly one
 * record, except truncated ranges, which are never allocated), so
 *   VCL = (lowest LSN not yet durable) - 1, or the last allocated LSN,
 *   VDL = the highest CPL at or below VCL.
 * Both only ever move forward while a writer lives.
 */
import { assert } from '../common/errors.js'
import { plantedBugs } from '../storage/planted-bugs.js'

export const WRITE_QUORUM = 4
export const SEGMENTS = 6
/** slot ids a membership may use (the first six and replacements) */
export const SLOTS_MAX = 16

/** A quorum set: its members (slot ids), how many acks a write needs, how many reports a recovery needs. */
export interface QuorumSet { members: number[]; write: number; read: number }

export const DEFAULT_SETS: QuorumSet[] = [{ members: [0, 1, 2, 3, 4, 5], write: WRITE_QUORUM, read: 3 }]

class Fifo<T> {
  items: T[] = []
  head = 0
  get length() { return this.items.length - this.head }
  push(v: T) { this.items.push(v) }
  peek(): T | undefined { return this.head < this.items.length ? this.items[this.head] : undefined }
  shift(): T | undefined {
    if (this.head >= this.items.length) return undefined
    const v = this.items[this.head++]
    if (this.head > 1024 && this.head * 2 > this.items.length) { this.items = this.items.slice(this.head); this.head = 0 }
    return v
  }
}

export class QuorumTracker {
  /** scl[segment][pg] as last reported */
  readonly scl: Array<Map<number, number>> = Array.from({ length: SLOTS_MAX }, () => new Map())
  /** the quorum sets a write must satisfy (one, or two during a membership change) */
  sets: QuorumSet[] = DEFAULT_SETS
  readonly durable = new Map<number, number>()
  readonly #outstanding = new Map<number, Fifo<number>>()
  readonly #cpls = new Fifo<number>()
  vcl: number
  vdl: number
  lastAllocated: number

  constructor(start: number) {
    this.vcl = start
    this.vdl = start
    this.lastAllocated = start
  }

  allocated(lsn: number, pg: number, cpl: boolean): void {
    assert(lsn > this.lastAllocated, `LSN ${lsn} allocated after ${this.lastAllocated}`)
    this.lastAllocated = lsn
    let q = this.#outstanding.get(pg)
    if (!q) { q = new Fifo(); this.#outstanding.set(pg, q) }
    q.push(lsn)
    if (cpl) this.#cpls.push(lsn)
  }

  /** Sets a segment's SCLs (e.g. after recovery) without assuming they only grow. */
  reset(segment: number, list: Array<[number, number]>): void {
    this.scl[segment] = new Map(list)
  }

  /** Applies an ack; returns true when the VDL moved. */
  report(segment: number, list: Array<[number, number]>): boolean {
    const m = this.scl[segment]
    let changed = false
    for (const [pg, s] of list) {
      if ((m.get(pg) ?? -1) >= s) continue
      m.set(pg, s)
      const d = this.#quorumScl(pg)
      if (d > (this.durable.get(pg) ?? -1)) { this.durable.set(pg, d); changed = true }
    }
    return changed ? this.#advance() : false
  }

  segmentScl(segment: number, pg: number): number {
    return this.scl[segment].get(pg) ?? 0
  }

  /** Changes the quorum sets; what was durable stays durable (it met the sets of its time). */
  setSets(sets: QuorumSet[]): void {
    this.sets = sets
    let changed = false
    for (const pg of this.#outstanding.keys()) {
      const d = this.#quorumScl(pg)
      if (d > (this.durable.get(pg) ?? -1)) { this.durable.set(pg, d); changed = true }
    }
    if (changed) this.#advance()
  }

  /** The highest LSN of `pg` that `set` alone holds at its write quorum. */
  setScl(set: QuorumSet, pg: number): number {
    const v: number[] = []
    for (const s of set.members) v.push(this.scl[s].get(pg) ?? 0)
    v.sort((a, b) => b - a)
    const w = plantedBugs.ackAt3of6 && set.write === WRITE_QUORUM ? 3 : set.write
    return v[w - 1] ?? 0
  }

  #quorumScl(pg: number): number {
    let d = Infinity
    for (const set of this.sets) d = Math.min(d, this.setScl(set, pg))
    return d
  }

  #advance(): boolean {
    let lowest = Infinity
    for (const [pg, q] of this.#outstanding) {
      const d = this.durable.get(pg) ?? 0
      while (q.length && q.peek()! <= d) q.shift()
      if (q.length) lowest = Math.min(lowest, q.peek()!)
      else this.#outstanding.delete(pg)
    }
    const vcl = lowest === Infinity ? this.lastAllocated : lowest - 1
    assert(vcl >= this.vcl, `VCL went back from ${this.vcl} to ${vcl}`)
    this.vcl = vcl
    let vdl = this.vdl
    while (this.#cpls.length && this.#cpls.peek()! <= vcl) vdl = this.#cpls.shift()!
    const moved = vdl !== this.vdl
    this.vdl = vdl
    return moved
  }
}
