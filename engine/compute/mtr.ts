/**
 * Mini-transactions of the compute node: copy-on-write page access, redo
 * generation by diffing, and atomic publication.
 *
 * Model: an MTR reads pages through the buffer cache and writes private
 * copies. When it finishes, every dirty page is sealed (its checksum set),
 * diffed against its image before the MTR, and the diffs become one redo
 * record per page (`write` ops of the changed byte ranges; `init` for a new
 * page): one volume MTR whose last record is the CPL. In the same
 * synchronous step the new images are published to the cache and the redo
 * is handed to the volume, which allocates LSNs in call order; so the order
 * in which MTRs become visible is the order of their LSNs, and a reader (in
 * this process, or a replica rebuilding pages from redo) never sees half of
 * one.
 *
 * MTRs that modify the B+tree run one at a time (MtrRunner's queue): the
 * building of an MTR is short and in memory except for page misses; the wait
 * for durability happens outside the queue, so concurrent commits share
 * shipments (group commit).
 */
import { assert } from '../common/errors.js'
import type { PageOp } from '../common/page-ops.js'
import type { PageWrite, Volume, WriteOptions } from '../volume/volume.js'
import type { BufferCache } from './buffer-cache.js'
import type { PageAccess } from './page-access.js'
import { sealPage, setMoveSink } from './page-format.js'

type MoveOp = Extract<PageOp, { op: 'move' }>

/** Moves kept per page and MTR; later ones are left to the diff. */
const MOVES_PER_PAGE_MAX = 64

/** The MTR and page id of every private page copy an MTR is writing (until it finishes). */
const owners = new WeakMap<Uint8Array, { mtr: Mtr; pageId: number }>()
setMoveSink((page, src, dst, len) => {
  const o = owners.get(page)
  if (o) o.mtr.noteMove(o.pageId, src, dst, len)
})

/** Changed ranges closer than this are shipped as one write (each op costs ~16 bytes of framing). */
const DIFF_GAP_BYTES = 16

export class Mtr implements PageAccess {
  readonly pageSize: number
  readonly #cache: BufferCache
  readonly #before = new Map<number, Uint8Array | null>()
  readonly #after = new Map<number, Uint8Array>()
  /** per page, the memmoves made on its copy (in order): shipped as `move` ops ahead of the diff */
  readonly #moves = new Map<number, MoveOp[]>()
  #finished = false

  constructor(cache: BufferCache, pageSize: number) {
    this.#cache = cache
    this.pageSize = pageSize
  }

  read(pageId: number): Uint8Array | Promise<Uint8Array> {
    return this.#after.get(pageId) ?? this.#cache.get(pageId)
  }

  write(pageId: number): Uint8Array | Promise<Uint8Array> {
    assert(!this.#finished, 'write() on a finished MTR')
    const mine = this.#after.get(pageId)
    if (mine) return mine
    const base = this.#cache.get(pageId)
    if (base instanceof Uint8Array) return this.#copy(pageId, base)
    // another branch of this MTR may have copied it while it was read
    return base.then(b => this.#after.get(pageId) ?? this.#copy(pageId, b))
  }

  #copy(pageId: number, base: Uint8Array): Uint8Array {
    const copy = new Uint8Array(base)
    this.#before.set(pageId, base)
    this.#after.set(pageId, copy)
    owners.set(copy, { mtr: this, pageId })
    return copy
  }

  /**
   * A memmove inside one of this MTR's page copies (compactNode tells of
   * each). Moves are hints: the diff that follows them corrects whatever
   * they do not explain, so any list of moves yields the right page.
   */
  noteMove(pageId: number, src: number, dst: number, len: number): void {
    if (this.#finished || !this.#before.get(pageId)) return
    let list = this.#moves.get(pageId)
    if (!list) { list = []; this.#moves.set(pageId, list) }
    if (list.length < MOVES_PER_PAGE_MAX) list.push({ op: 'move', src, dst, len })
  }

  create(pageId: number): Uint8Array {
    assert(!this.#finished, 'create() on a finished MTR')
    const page = new Uint8Array(this.pageSize)
    if (!this.#before.has(pageId)) this.#before.set(pageId, null)
    this.#after.set(pageId, page)
    this.#moves.delete(pageId)
    return page
  }

  get dirtyPages(): number { return this.#after.size }

  /**
   * Seals and diffs every dirty page and publishes the new images. Returns
   * the redo, one entry per changed page (empty if nothing changed). The
   * caller must hand it to the volume in the same synchronous step.
   */
  finish(): { writes: PageWrite[]; pages: number[] } {
    assert(!this.#finished, 'MTR finished twice')
    this.#finished = true
    const writes: PageWrite[] = []
    const pages: number[] = []
    for (const [pageId, after] of this.#after) {
      owners.delete(after)
      sealPage(after)
      const before = this.#before.get(pageId) ?? null
      const moves = before ? this.#moves.get(pageId) : undefined
      let ops: PageOp[]
      if (moves && moves.length) {
        // The storage applies the moves first, then the writes: diff against what the moves make of `before`.
        const moved = new Uint8Array(before!)
        for (const m of moves) moved.copyWithin(m.dst, m.src, m.src + m.len)
        ops = [...moves, ...diff(moved, after)]
      } else {
        ops = before ? diff(before, after) : initOps(after)
      }
      // A page rewritten wholesale (e.g. freed: a header and zeros) ships smaller as an init;
      // only a diff of more than a quarter of the page can lose to one.
      if (before && ops.length && opBytes(ops) > after.length >> 2) {
        const init = initOps(after)
        if (opBytes(init) < opBytes(ops)) ops = init
      }
      if (ops.length === 0) continue
      writes.push({ pageId, ops })
      pages.push(pageId)
    }
    for (const pageId of pages) this.#cache.publish(pageId, this.#after.get(pageId)!)
    return { writes, pages }
  }
}

/** Write ops that turn `a` into `b`, for the changed ranges (merged across small gaps). */
export function diff(a: Uint8Array, b: Uint8Array): PageOp[] {
  const ops: PageOp[] = []
  const n = b.length
  // Equal stretches are skipped a 32-bit word at a time (4x fewer steps on the
  // mostly-unchanged pages an MTR dirties); the byte loop refines the edges.
  const words = (a.byteOffset & 3) === 0 && (b.byteOffset & 3) === 0 && (n & 3) === 0 && a.length === n
  const wa = words ? new Uint32Array(a.buffer, a.byteOffset, n >> 2) : null
  const wb = words ? new Uint32Array(b.buffer, b.byteOffset, n >> 2) : null
  let i = 0
  while (i < n) {
    if (wa && (i & 3) === 0) {
      let w = i >> 2
      const nw = n >> 2
      while (w < nw && wa[w] === wb![w]) w++
      i = w << 2
      if (i >= n) break
    }
    if (a[i] === b[i]) { i++; continue }
    const start = i
    let end = i + 1
    let j = end
    while (j < n) {
      if (a[j] !== b[j]) { end = j + 1; j++; continue }
      if (j - end >= DIFF_GAP_BYTES) break
      if (wa && (j & 3) === 0 && j + 4 <= n && wa[j >> 2] === wb![j >> 2]) { j += 4; continue }
      j++
    }
    ops.push({ op: 'write', offset: start, bytes: b.slice(start, end) })
    i = end
  }
  return ops
}

/** What `ops` cost on the wire, roughly (each op ~16 bytes of framing plus its bytes). */
export function opBytes(ops: PageOp[]): number {
  let n = 0
  for (const op of ops) n += 16 + (op.op === 'write' ? op.bytes.length : op.op === 'init' ? (op.image?.length ?? 0) : 0)
  return n
}

/**
 * Ops that make a page of `page` from nothing: an init with the image up to
 * its trailing zeros, or (smaller when the page's free space lies in its
 * middle, as in a slotted page) an empty init and the non-zero ranges.
 */
function initOps(page: Uint8Array): PageOp[] {
  let end = page.length
  while (end > 0 && page[end - 1] === 0) end--
  if (end === 0) return [{ op: 'init' }]
  const whole: PageOp[] = [{ op: 'init', image: page.slice(0, end) }]
  let zeros = zeroPages.get(page.length)
  if (!zeros) { zeros = new Uint8Array(page.length); zeroPages.set(page.length, zeros) }
  const sparse: PageOp[] = [{ op: 'init' }, ...diff(zeros, page)]
  return opBytes(sparse) < opBytes(whole) ? sparse : whole
}
const zeroPages = new Map<number, Uint8Array>()

/** Runs MTRs one at a time and ships each as one volume write. */
/** One MTR as read replicas receive it: its redo and its CPL, once durable. */
export interface DurableMtr {
  cpl: number
  writes: PageWrite[]
  /** when the writer saw it durable, in ms since the epoch with sub-ms precision (nowMs(); replica lag is measured from here) */
  durableAt: number
}

export class MtrRunner {
  readonly #vol: Volume
  readonly #cache: BufferCache
  #tail: Promise<unknown> = Promise.resolve()
  mtrs = 0
  redoBytes = 0
  /** Called with every shipped MTR once durable, in LSN order (read replicas feed on it). */
  readonly durableListeners = new Set<(m: DurableMtr) => void>()
  #feedSeq = 0
  #feedNext = 1
  readonly #feedReady = new Map<number, DurableMtr | null>()

  constructor(vol: Volume, cache: BufferCache) {
    this.#vol = vol
    this.#cache = cache
  }

  /**
   * Builds an MTR with `fn` (exclusively: no other MTR builds meanwhile),
   * publishes and ships it, and returns `fn`'s value and a promise of the
   * CPL that resolves once the MTR is durable. If `fn` throws, nothing is
   * published or shipped.
   */
  async run<T>(fn: (mtr: Mtr) => Promise<T>, afterPublish?: (value: T) => void, writeOptions?: WriteOptions): Promise<{ value: T; durable: Promise<number> }> {
    const prev = this.#tail
    let release!: () => void
    this.#tail = new Promise<void>(r => { release = r })
    await prev
    try {
      const mtr = new Mtr(this.#cache, this.#vol.pageSize)
      const value = await fn(mtr)
      const { writes, pages } = mtr.finish()
      // Runs in the same synchronous step as the publication: in-memory state that
      // points at the new pages (e.g. a new keyspace's root) appears with them.
      afterPublish?.(value)
      if (writes.length === 0) return { value, durable: Promise.resolve(this.#vol.vdl) }
      this.mtrs++
      for (const w of writes) for (const op of w.ops) this.redoBytes += op.op === 'write' ? op.bytes.length : op.op === 'init' ? (op.image?.length ?? 0) : 0
      const durable = this.#vol.write(writes, writeOptions).then(r => r.lsn)
      const unpin = () => { for (const p of pages) this.#cache.unpin(p) }
      durable.then(unpin, unpin)
      // The feed: in shipping order, which is LSN order. An MTR whose write timed out may
      // still become durable later; the ones after it wait for it (or for its loss).
      const seq = ++this.#feedSeq
      // With no replica listening (checked when durable, so one attached meanwhile still gets it) only the order is kept.
      const entry = (cpl: number) => this.durableListeners.size ? { cpl, writes, durableAt: nowMs() } : null
      durable.then(
        cpl => this.#feed(seq, entry(cpl)),
        (err: { lsn?: number }) => {
          if (err.lsn === undefined) return this.#feed(seq, null)
          this.#vol.whenDurable(err.lsn).then(() => this.#feed(seq, entry(err.lsn!)), () => this.#feed(seq, null))
        })
      return { value, durable }
    } finally {
      release()
    }
  }
  #feed(seq: number, m: DurableMtr | null): void {
    if (seq === this.#feedNext && this.#feedReady.size === 0) {
      // the usual case: durable in shipping order, nothing waiting before it
      this.#feedNext++
      if (m) for (const l of this.durableListeners) l(m)
      return
    }
    this.#feedReady.set(seq, m)
    while (this.#feedReady.has(this.#feedNext)) {
      const next = this.#feedReady.get(this.#feedNext)!
      this.#feedReady.delete(this.#feedNext++)
      if (next) for (const l of this.durableListeners) l(next)
    }
  }
}

/** Wall-clock ms with sub-ms precision, comparable across threads (each thread's timeOrigin is its own). */
export function nowMs(): number {
  return performance.timeOrigin + performance.now()
}
