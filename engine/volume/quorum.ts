/**
 * Quorum tracking: from the SCLs that segments report, which records are
 * durable, and so the VCL and the VDL.
 *
 * A record of PG g is durable once 4 of g's 6 segments have an SCL at or
 * above it (a segment's SCL covers every record of g up to it, so an SCL is
 * an ack of the whole prefix). LSNs are dense (every LSN is exactly one
 * record, except truncated ranges, which are never allocated), so
 *   VCL = (lowest LSN not yet durable) - 1, or the last allocated LSN,
 *   VDL = the highest CPL at or below VCL.
 * Both only ever move forward while a writer lives.
 */
import { assert } from '../common/errors.js'
import { plantedBugs } from '../storage/planted-bugs.js'

export const WRITE_QUORUM = 4
export const SEGMENTS = 6

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
  readonly scl: Array<Map<number, number>> = Array.from({ length: SEGMENTS }, () => new Map())
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

  #quorumScl(pg: number): number {
    const v: number[] = []
    for (let s = 0; s < SEGMENTS; s++) v.push(this.scl[s].get(pg) ?? 0)
    v.sort((a, b) => b - a)
    return v[(plantedBugs.ackAt3of6 ? 3 : WRITE_QUORUM) - 1]
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
