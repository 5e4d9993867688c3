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
 * where its packed ops lie), found by LSN through an open-addressing table
 * of typed arrays (the LSN is the key, so no slot keeps it); the ops stay
 * in the memory they arrived in (a frame in the writer's shared arena, or a
 * decompressed frame), one reference per distinct buffer, counted, and let
 * go when its last record is dropped. `get` builds a tuple on demand: it
 * dies young.
 *
 * The LSN table replaced a Map<number, number>: a segment holds up to the
 * checkpoint threshold of records (TPC-B: ~400k by 30 s), and the Map's
 * growth (a fresh FixedArray, rehash, page faults) and lookups were most of
 * a record's insert cost in a segment worker's perf profile. The table lives
 * off the JS heap, grows by one typed-array copy, and the GC never scans it.
 *
 * Records whose ops are an array (frames written before ops were packed,
 * see format.ts) are kept as given, beside the slots.
 */
import { applyEncodedOp } from '../common/page-ops.js'
import { applyPackedOps, R_FLAGS, R_LSN, R_OPS, R_PAGE, R_PAGE_PREV, R_PREV, recordOps, type RecordTuple } from './format.js'

const INITIAL_SLOTS = 1024
/** LSN table size at start and its floor when it shrinks (a power of two) */
const INITIAL_TABLE = 2048
/** 2^32 */
const HI = 4294967296

export class RecordStore {
  /** LSN → slot, linear probing, load factor at most 1/2; key 0 marks an empty cell (LSN 0 is never a record) */
  #keys = new Float64Array(INITIAL_TABLE)
  #vals = new Int32Array(INITIAL_TABLE)
  #mask = INITIAL_TABLE - 1
  #shift = 32 - Math.log2(INITIAL_TABLE)
  #count = 0
  #page = new Float64Array(INITIAL_SLOTS)
  #prev = new Float64Array(INITIAL_SLOTS)
  #pagePrev = new Float64Array(INITIAL_SLOTS)
  #flags = new Int32Array(INITIAL_SLOTS)
  /** index into #views of the memory holding the ops; -1: the ops are an array in #legacy */
  #buf = new Int32Array(INITIAL_SLOTS)
  #off = new Float64Array(INITIAL_SLOTS)
  #len = new Float64Array(INITIAL_SLOTS)
  #used = 0
  #capacity = INITIAL_SLOTS
  #free: number[] = []
  /** the memory records' ops lie in, each as one byte view over all of it (made once: applyOps reads through it) */
  readonly #views: Array<Uint8Array | null> = []
  readonly #bufRefs: number[] = []
  readonly #bufIndex = new Map<ArrayBufferLike, number>()
  #freeBufs: number[] = []
  #lastBuf: ArrayBufferLike | null = null
  #lastBufIndex = -1
  readonly #legacy = new Map<number, RecordTuple>()

  get size(): number { return this.#count }

  /** cells in the LSN table (twice the records at most; it shrinks as a fold drops them) */
  get tableCells(): number { return this.#keys.length }

  /** distinct buffers the held records' ops lie in (each is let go with its last record) */
  get buffersHeld(): number { return this.#bufIndex.size }

  has(lsn: number): boolean { return this.#cell(lsn) >= 0 }

  /** LSNs held, in no particular order (a live view: copy it before deleting while iterating). */
  *lsns(): IterableIterator<number> {
    const keys = this.#keys
    for (let i = 0; i < keys.length; i++) if (keys[i] !== 0) yield keys[i]
  }

  /** Adds a record (its LSN must not be held yet). */
  add(r: RecordTuple): void {
    const lsn = r[R_LSN]
    const s = this.#free.length ? this.#free.pop()! : this.#grab()
    this.#put(lsn, s)
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
    const c = this.#cell(lsn)
    if (c < 0) return undefined
    const s = this.#vals[c]
    const b = this.#buf[s]
    if (b < 0) return this.#legacy.get(lsn)
    return [lsn, this.#page[s], this.#prev[s], this.#pagePrev[s], this.#flags[s], new Uint8Array(this.#views[b]!.buffer, this.#off[s], this.#len[s])]
  }

  /**
   * Applies a held record's ops to `page`, as `recordOps` and `applyEncodedOp`
   * would, read from the memory they arrived in (`applyPackedOps`): no tuple,
   * view or unpacked op is made. Ops in another shape are unpacked. Returns
   * false when `lsn` is not held.
   */
  applyOps(lsn: number, page: Uint8Array): boolean {
    const c = this.#cell(lsn)
    if (c < 0) return false
    const s = this.#vals[c]
    const b = this.#buf[s]
    if (b >= 0 && applyPackedOps(page, this.#views[b]!, this.#off[s], this.#off[s] + this.#len[s])) return true
    for (const op of recordOps(this.get(lsn)!)) applyEncodedOp(page, op)
    return true
  }

  /** Fields of a held record, without building it (undefined-free: check `has` first). */
  page(lsn: number): number { return this.#page[this.#vals[this.#cell(lsn)]] }
  prev(lsn: number): number { return this.#prev[this.#vals[this.#cell(lsn)]] }
  flags(lsn: number): number { return this.#flags[this.#vals[this.#cell(lsn)]] }

  delete(lsn: number): boolean {
    const c = this.#cell(lsn)
    if (c < 0) return false
    const s = this.#vals[c]
    this.#remove(c)
    const b = this.#buf[s]
    if (b < 0) this.#legacy.delete(lsn)
    else if (--this.#bufRefs[b] === 0) this.#releaseBuf(b)
    this.#free.push(s)
    return true
  }

  /** The LSN's home cell (Fibonacci hashing of its two 32-bit halves). */
  #home(lsn: number): number {
    return Math.imul((lsn >>> 0) ^ ((lsn / HI) >>> 0), 0x9e3779b1) >>> this.#shift
  }

  /** The cell holding `lsn`, or -1. */
  #cell(lsn: number): number {
    const keys = this.#keys
    const mask = this.#mask
    for (let i = this.#home(lsn); ; i = (i + 1) & mask) {
      const k = keys[i]
      if (k === lsn) return i
      if (k === 0) return -1
    }
  }

  /** Adds `lsn` → `slot` (`lsn` is not in the table). */
  #put(lsn: number, slot: number): void {
    if ((this.#count + 1) * 2 > this.#keys.length) this.#resize(this.#keys.length * 2)
    const keys = this.#keys
    const mask = this.#mask
    let i = this.#home(lsn)
    while (keys[i] !== 0) i = (i + 1) & mask
    keys[i] = lsn
    this.#vals[i] = slot
    this.#count++
  }

  /** Empties cell `c`, moving later cells of its probe run back (no tombstones: Knuth's algorithm R). */
  #remove(c: number): void {
    const keys = this.#keys
    const vals = this.#vals
    const mask = this.#mask
    let hole = c
    for (let j = (c + 1) & mask; keys[j] !== 0; j = (j + 1) & mask) {
      const home = this.#home(keys[j])
      // The entry at j may fill the hole unless its home lies cyclically in (hole, j].
      const stays = hole <= j ? hole < home && home <= j : hole < home || home <= j
      if (stays) continue
      keys[hole] = keys[j]
      vals[hole] = vals[j]
      hole = j
    }
    keys[hole] = 0
    this.#count--
    // Shrink as a fold drops most records: halved below 1/8 full, so below 1/4 after it and
    // a long way (to 1/2) from growing again.
    if (this.#keys.length > INITIAL_TABLE && this.#count * 8 < this.#keys.length) this.#resize(this.#keys.length / 2)
  }

  #resize(size: number): void {
    const oldKeys = this.#keys
    const oldVals = this.#vals
    this.#keys = new Float64Array(size)
    this.#vals = new Int32Array(size)
    this.#mask = size - 1
    this.#shift = 32 - Math.log2(size)
    this.#count = 0
    for (let i = 0; i < oldKeys.length; i++) if (oldKeys[i] !== 0) this.#put(oldKeys[i], oldVals[i])
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
      b = this.#freeBufs.length ? this.#freeBufs.pop()! : this.#views.length
      this.#views[b] = new Uint8Array(buffer)
      this.#bufRefs[b] = 0
      this.#bufIndex.set(buffer, b)
    }
    this.#lastBuf = buffer
    this.#lastBufIndex = b
    return b
  }

  #releaseBuf(b: number): void {
    const buffer = this.#views[b]!.buffer
    this.#bufIndex.delete(buffer)
    this.#views[b] = null
    this.#freeBufs.push(b)
    if (this.#lastBuf === buffer) { this.#lastBuf = null; this.#lastBufIndex = -1 }
  }
}
