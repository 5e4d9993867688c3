/**
 * One protection group's segment inside a segment worker: the records of the
 * PG that the hot log still holds, the chain that defines the SCL, and each
 * page's list of records not yet folded into a version.
 *
 * SCL: the highest LSN below which this segment has every record of its PG.
 * It is found by walking backlinks: a record whose prevLsn equals the SCL
 * extends it; a record whose prevLsn points elsewhere waits (a gap) until
 * the missing records arrive, from the writer or from a peer (gap fill).
 *
 * `base` is the last record of the PG that was folded into page versions and
 * dropped from the log (checkpoint); records at or below it are not held.
 */
import { R_LSN, R_PAGE, R_PREV, RECORD_FLAG_CPL, type RecordTuple } from './format.js'
import { RecordStore } from './record-store.js'
import type { Truncation } from './protocol.js'

export class PgSegment {
  readonly pg: number
  base: number
  scl: number
  /** SCL as of the last fdatasync: the only SCL ever reported to anyone. */
  sclSynced: number
  /** the records held, by LSN (compact: see record-store.ts) */
  readonly records = new RecordStore()
  /** records above the SCL, keyed by their prevLsn */
  readonly waiting = new Map<number, number>()
  /** per page, LSNs of held records, ascending */
  readonly chains = new Map<number, number[]>()
  maxLsn = 0

  constructor(pg: number, base: number) {
    this.pg = pg
    this.base = base
    this.scl = base
    this.sclSynced = base
  }

  /** Adds a record; returns false when it is a duplicate or already folded. */
  insert(r: RecordTuple): boolean {
    const lsn = r[R_LSN]
    if (lsn <= this.base || this.records.has(lsn)) return false
    this.records.add(r)
    if (lsn > this.maxLsn) this.maxLsn = lsn
    const page = r[R_PAGE]
    let chain = this.chains.get(page)
    if (!chain) { chain = []; this.chains.set(page, chain) }
    // Records mostly arrive in LSN order: an append is a push (a splice at the end cost 6x more).
    let i = chain.length
    while (i > 0 && chain[i - 1] > lsn) i--
    if (i === chain.length) chain.push(lsn)
    else chain.splice(i, 0, lsn)
    if (lsn > this.scl) {
      if (r[R_PREV] === this.scl) this.#advance(lsn)
      else this.waiting.set(r[R_PREV], lsn)
    }
    return true
  }

  #advance(lsn: number): void {
    this.scl = lsn
    for (let next = this.waiting.get(this.scl); next !== undefined; next = this.waiting.get(this.scl)) {
      this.waiting.delete(this.scl)
      this.scl = next
    }
  }

  /** Drops every record inside a truncation range and recomputes the chain. */
  truncate(ranges: Truncation[]): number {
    let dropped = 0
    for (const lsn of [...this.records.lsns()]) {
      if (inRanges(lsn, ranges)) { this.#drop(lsn); dropped++ }
    }
    if (dropped) this.rebuildChain()
    return dropped
  }

  rebuildChain(): void {
    this.waiting.clear()
    this.scl = this.base
    const byPrev = new Map<number, number>()
    for (const lsn of this.records.lsns()) if (lsn > this.base) byPrev.set(this.records.prev(lsn), lsn)
    for (let next = byPrev.get(this.scl); next !== undefined; next = byPrev.get(this.scl)) {
      byPrev.delete(this.scl)
      this.scl = next
    }
    for (const [prev, lsn] of byPrev) if (lsn > this.scl) this.waiting.set(prev, lsn)
    if (this.sclSynced > this.scl) this.sclSynced = this.scl
    this.maxLsn = 0
    for (const lsn of this.records.lsns()) if (lsn > this.maxLsn) this.maxLsn = lsn
  }

  /** Records of this PG with after < lsn <= upto, ascending, at most `limit`. */
  range(after: number, upto: number, limit: number): RecordTuple[] {
    const out: RecordTuple[] = []
    for (const lsn of this.records.lsns()) if (lsn > after && lsn <= upto) out.push(this.records.get(lsn)!)
    out.sort((a, b) => a[R_LSN] - b[R_LSN])
    return out.length > limit ? out.slice(0, limit) : out
  }

  /** Last held-or-folded record at or below `lsn` that lies on the complete chain. */
  tailAtOrBelow(lsn: number): number {
    let tail = this.base
    for (const l of this.records.lsns()) if (l <= lsn && l <= this.scl && l > tail) tail = l
    return tail
  }

  /** [lsn, isCpl] of chained records with after < lsn <= sclSynced, ascending. */
  chainedAbove(after: number): Array<[number, number]> {
    const out: Array<[number, number]> = []
    for (const lsn of this.records.lsns()) if (lsn > after && lsn <= this.sclSynced) out.push([lsn, this.records.flags(lsn) & RECORD_FLAG_CPL])
    out.sort((a, b) => a[0] - b[0])
    return out
  }

  /** Forgets records at or below `newBase` (they are folded into durable versions). */
  fold(newBase: number): void {
    if (newBase <= this.base) return
    for (const lsn of [...this.records.lsns()]) if (lsn <= newBase) this.#drop(lsn)
    this.base = newBase
  }

  #drop(lsn: number): void {
    if (!this.records.has(lsn)) return
    const page = this.records.page(lsn)
    this.records.delete(lsn)
    const chain = this.chains.get(page)
    if (chain) {
      const i = chain.indexOf(lsn)
      if (i >= 0) chain.splice(i, 1)
      if (chain.length === 0) this.chains.delete(page)
    }
  }
}

/** Whether `lsn` lies in one of `ranges` (sorted by start, disjoint: truncations are). Binary search. */
export function inRanges(lsn: number, ranges: Truncation[]): boolean {
  let lo = 0
  let hi = ranges.length - 1
  while (lo <= hi) {
    const mid = (lo + hi) >> 1
    const [from, to] = ranges[mid]
    if (lsn <= from) hi = mid - 1
    else if (lsn > to) lo = mid + 1
    else return true
  }
  return false
}
