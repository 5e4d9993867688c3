/**
 * The records a segment holds for one protection group, kept compact.
 *
 * A segment holds every record of its PG from the last checkpoint on: tens
 * of thousands of them, each alive for many seconds. Kept as decoded tuples
 * (an array, a view of its ops and a Map entry each), every one of them
 * survived the young generation and was copied by the scavenger (kv bench
 * (a), 100-row commits: 134 ms of GC over 701 frames that took 600-900 us of
 * user CPU each, against 39-43 ms with this store). Here a record
 * is a slot in growable typed arrays (page, prevLsn, pagePrevLsn, flags, and
 * where its packed ops lie), found by LSN through a Map of numbers (the LSN
 * is the key, so no slot keeps it); the ops stay
 * in the memory they arrived in (a frame in the writer's shared arena, or a
 * decompressed frame), one reference per distinct buffer, counted, and let
 * go when its last record is dropped. `get` builds a tuple on demand: it
 * dies young.
 *
 * Records whose ops are an array (frames written before ops were packed,
 * see format.ts) are kept as given, beside the slots.
 */
import { R_FLAGS, R_LSN, R_OPS, R_PAGE, R_PAGE_PREV, R_PREV, type RecordTuple } from './format.js'

const INITIAL_SLOTS = 1024

export class RecordStore {
  readonly #slot = new Map<number, number>()
  #page = new Float64Array(INITIAL_SLOTS)
  #prev = new Float64Array(INITIAL_SLOTS)
  #pagePrev = new Float64Array(INITIAL_SLOTS)
  #flags = new Int32Array(INITIAL_SLOTS)
  /** index into #bufs of the memory holding the ops; -1: the ops are an array in #legacy */
  #buf = new Int32Array(INITIAL_SLOTS)
  #off = new Float64Array(INITIAL_SLOTS)
  #len = new Float64Array(INITIAL_SLOTS)
  #used = 0
  #capacity = INITIAL_SLOTS
  #free: number[] = []
  readonly #bufs: Array<ArrayBufferLike | null> = []
  readonly #bufRefs: number[] = []
  readonly #bufIndex = new Map<ArrayBufferLike, number>()
  #freeBufs: number[] = []
  #lastBuf: ArrayBufferLike | null = null
  #lastBufIndex = -1
  readonly #legacy = new Map<number, RecordTuple>()

  get size(): number { return this.#slot.size }

  /** distinct buffers the held records' ops lie in (each is let go with its last record) */
  get buffersHeld(): number { return this.#bufIndex.size }

  has(lsn: number): boolean { return this.#slot.has(lsn) }

  /** LSNs held, in insertion order (a live view: copy it before deleting while iterating). */
  lsns(): IterableIterator<number> { return this.#slot.keys() }

  /** Adds a record (its LSN must not be held yet). */
  add(r: RecordTuple): void {
    const lsn = r[R_LSN]
    const s = this.#free.length ? this.#free.pop()! : this.#grab()
    this.#slot.set(lsn, s)
    this.#page[s] = r[R_PAGE]
    this.#prev[s] = r[R_PREV]
    this.#pagePrev[s] = r[R_PAGE_PREV]
    this.#flags[s] = r[R_FLAGS]
    const ops = r[R_OPS]
    if (Array.isArray(ops)) {
      this.#buf[s] = -1
      this.#legacy.set(lsn, r)
      return
    }
    const b = this.#bufFor(ops.buffer)
    this.#bufRefs[b]++
    this.#buf[s] = b
    this.#off[s] = ops.byteOffset
    this.#len[s] = ops.byteLength
  }

  /** The record as a tuple (built now; its ops a view of the memory they arrived in). */
  get(lsn: number): RecordTuple | undefined {
    const s = this.#slot.get(lsn)
    if (s === undefined) return undefined
    const b = this.#buf[s]
    if (b < 0) return this.#legacy.get(lsn)
    return [lsn, this.#page[s], this.#prev[s], this.#pagePrev[s], this.#flags[s], new Uint8Array(this.#bufs[b]!, this.#off[s], this.#len[s])]
  }

  /** Fields of a held record, without building it (undefined-free: check `has` first). */
  page(lsn: number): number { return this.#page[this.#slot.get(lsn)!] }
  prev(lsn: number): number { return this.#prev[this.#slot.get(lsn)!] }
  flags(lsn: number): number { return this.#flags[this.#slot.get(lsn)!] }

  delete(lsn: number): boolean {
    const s = this.#slot.get(lsn)
    if (s === undefined) return false
    this.#slot.delete(lsn)
    const b = this.#buf[s]
    if (b < 0) this.#legacy.delete(lsn)
    else if (--this.#bufRefs[b] === 0) this.#releaseBuf(b)
    this.#free.push(s)
    return true
  }

  #grab(): number {
    if (this.#used === this.#capacity) {
      const n = (this.#capacity *= 2)
      const grow = <T extends Float64Array | Int32Array>(a: T, make: new (n: number) => T): T => { const g = new make(n); g.set(a); return g }
      this.#page = grow(this.#page, Float64Array)
      this.#prev = grow(this.#prev, Float64Array)
      this.#pagePrev = grow(this.#pagePrev, Float64Array)
      this.#flags = grow(this.#flags, Int32Array)
      this.#buf = grow(this.#buf, Int32Array)
      this.#off = grow(this.#off, Float64Array)
      this.#len = grow(this.#len, Float64Array)
    }
    return this.#used++
  }

  #bufFor(buffer: ArrayBufferLike): number {
    if (buffer === this.#lastBuf) return this.#lastBufIndex
    let b = this.#bufIndex.get(buffer)
    if (b === undefined) {
      b = this.#freeBufs.length ? this.#freeBufs.pop()! : this.#bufs.length
      this.#bufs[b] = buffer
      this.#bufRefs[b] = 0
      this.#bufIndex.set(buffer, b)
    }
    this.#lastBuf = buffer
    this.#lastBufIndex = b
    return b
  }

  #releaseBuf(b: number): void {
    const buffer = this.#bufs[b]!
    this.#bufIndex.delete(buffer)
    this.#bufs[b] = null
    this.#freeBufs.push(b)
    if (this.#lastBuf === buffer) { this.#lastBuf = null; this.#lastBufIndex = -1 }
  }
}
