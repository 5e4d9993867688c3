/**
 * The B+tree of the built-in compute node: an ordered map from byte-string
 * keys to byte-string values over slotted pages (page-format.ts), reached
 * only through the PageAccess of the caller's mini-transaction.
 *
 * Model:
 * - Keys are compared bytewise, unsigned, a prefix before its extensions.
 *   Keys are 1..pageSize/8 bytes; values 0..16 MiB, those longer than
 *   pageSize/4 in a chain of overflow pages.
 * - The root page id never changes: a root split moves the root's content
 *   into two new children, and a root left with one child takes that
 *   child's content back.
 * - Leaves are linked both ways. Separators in internal pages are the
 *   shortest byte strings between the neighbouring leaves' keys (suffix
 *   truncation), so internal pages stay wide.
 * - Every operation runs inside one MTR; a split or merge touches several
 *   pages, and the caller's MTR makes the whole operation atomic. One
 *   operation at a time per PageAccess: operations of one MTR must not
 *   interleave, and concurrent MTRs on one tree are the MTR layer's to
 *   order (latching); between MTRs, {@link BTree.scanLeaf} re-descends from
 *   the root, so iteration stays correct across other MTRs' changes.
 *
 * Invariants (all checked by {@link BTree.verify}):
 * - keys strictly ascending inside every page, and across leaves along the
 *   sibling links; every key of child c of an internal page lies in
 *   [key(c - 1), key(c));
 * - all leaves at the same depth; an internal page's level is its
 *   children's level + 1;
 * - left/right links of the leaves are each other's inverse and follow the
 *   tree's order; the first leaf has no left, the last no right sibling;
 * - no page is reachable twice; no non-root page is empty (a leaf has an
 *   entry, an internal page a separator); the root is never an internal
 *   page with a single child;
 * - an overflow chain holds exactly the value's length in exactly
 *   ceil(length / capacity) pages, and a value is in a chain iff it is
 *   longer than the inline limit.
 *
 * Rebalancing: a put that does not fit splits the page (an append at the
 * right end of the rightmost leaf leaves the old page full, so ascending
 * loads fill pages); a delete that leaves a non-root page under a quarter
 * full merges it with a sibling when both fit in one page, else
 * redistributes the two pages' cells; pages emptied this way are freed.
 *
 * Hot path: descents binary-search each page without decoding it; an
 * insert moves only the slot array tail and writes one cell into the page
 * (compacting only when fragmented space is needed); a same-size replace
 * overwrites the value in place. Whole pages are re-encoded only by splits,
 * merges and redistributions, using per-page-size scratch pages that are
 * never held across an await.
 */
import { HexadError, assert, badInput } from '../common/errors.js'
import { allocate, free } from './allocator.js'
import type { PageAccess } from './page-access.js'
import {
  INTERNAL_CELL_HEADER_BYTES, LEAF_CELL_HEADER_BYTES, LEAF_FLAG_OVERFLOW, MAX_VALUE_BYTES, OVERFLOW_HEADER_BYTES, PAGE_TYPE_INTERNAL,
  PAGE_TYPE_LEAF, PAGE_TYPE_OVERFLOW, SLOT_BYTES, TREE_LEVELS_MAX, appendCellBytes, cellBytesAt, cellKeyLength, checkPage, childAt,
  initNode, initOverflowPage, insertCellBytes, internalCellChild, isNodeType, leafBodyOffset, leafCellBytes, leafCellFlags, leafLeft,
  leafOverflowHead, leafRight, leafValueLength, leftmostChild, makeInternalCell, maxInlineValueBytes, maxKeyBytes,
  nodeCapacityBytes, nodeFits, nodeLevel, nodeUsedBytes, overflowCapacityBytes, overflowLength, overflowNext, pageType, pageTypeName,
  removeCell, reserveCell, scratchPage, setLeafLeft, shrinkLeafValue, setLeafRight, setLeftmostChild, slotCount, slotOffset, writeLeafCell,
} from './page-format.js'

export { MAX_VALUE_BYTES, maxInlineValueBytes, maxKeyBytes } from './page-format.js'

/** Key bounds of a scan; at most one lower (gt | gte) and one upper (lt | lte) bound. */
export interface ScanBounds {
  gt?: Uint8Array
  gte?: Uint8Array
  lt?: Uint8Array
  lte?: Uint8Array
  /** Descending key order. */
  reverse?: boolean
}

export interface RangeOptions extends ScanBounds {
  /** Most entries to return (a non-negative integer; unlimited when absent). */
  limit?: number
}

export type Entry = [key: Uint8Array, value: Uint8Array]

/** One leaf's worth of a scan: the entries in scan order, and whether anything can follow them. */
export interface LeafScan {
  entries: Entry[]
  done: boolean
}

/** A non-root page with fewer used bytes than capacity / this is rebalanced after a delete. */
const UNDERFULL_DIVISOR = 4

/** Bytewise comparison, unsigned, a prefix before its extensions. Negative, zero or positive. */
export function compareKeys(a: Uint8Array, b: Uint8Array): number {
  return compareBytes(a, 0, a.length, b, 0, b.length)
}

function compareBytes(a: Uint8Array, aOff: number, aLen: number, b: Uint8Array, bOff: number, bLen: number): number {
  const n = aLen < bLen ? aLen : bLen
  for (let i = 0; i < n; i++) {
    const d = a[aOff + i] - b[bOff + i]
    if (d !== 0) return d
  }
  return aLen - bLen
}

export class BTree {
  /** The root page id: fixed for the tree's whole life. */
  readonly rootPageId: number

  constructor(rootPageId: number) {
    assert(Number.isInteger(rootPageId) && rootPageId > 0, `BTree: root page id must be a positive integer, got ${rootPageId}`)
    this.rootPageId = rootPageId
  }

  /** Allocates an empty root leaf and returns its page id (the new tree's id). */
  static async create(pa: PageAccess): Promise<number> {
    const { pageId, page } = await allocate(pa)
    initNode(page, PAGE_TYPE_LEAF, 0)
    return pageId
  }

  /** The value stored under `key`, or undefined. The result is the caller's own copy. */
  async get(pa: PageAccess, key: Uint8Array): Promise<Uint8Array | undefined> {
    checkKey(key, pa.pageSize, 'key')
    let id = this.rootPageId
    let page = await pa.read(id)
    for (let depth = 0; pageType(page) !== PAGE_TYPE_LEAF; depth++) {
      this.#checkInternal(page, id, depth)
      id = childAt(page, childIndex(page, key))
      page = await pa.read(id)
    }
    const pos = leafSearch(page, key)
    if (pos < 0) return undefined
    return await readValue(pa, page, slotOffset(page, pos))
  }

  /**
   * The same lookup as `get`, synchronously, through pages that `peek`
   * already has in memory: the value (the caller's own copy, see
   * {@link copyOut}), null when the key is absent, or undefined when a page
   * on the way is not cached or the value lives in overflow pages (then call
   * `get`). The hot path of a warm point read: no promise per level.
   */
  getCached(peek: (pageId: number) => Uint8Array | undefined, key: Uint8Array, pageSize: number): Uint8Array | null | undefined {
    checkKey(key, pageSize, 'key')
    let id = this.rootPageId
    let page = peek(id)
    if (!page) return undefined
    for (let depth = 0; pageType(page) !== PAGE_TYPE_LEAF; depth++) {
      if (pageType(page) !== PAGE_TYPE_INTERNAL || depth >= TREE_LEVELS_MAX) this.#checkInternal(page, id, depth)
      id = childAt(page, childIndex(page, key))
      page = peek(id)
      if (!page) return undefined
    }
    const pos = leafSearch(page, key)
    if (pos < 0) return null
    const off = slotOffset(page, pos)
    if ((leafCellFlags(page, off) & LEAF_FLAG_OVERFLOW) !== 0) return undefined
    return copyOut(page, leafBodyOffset(page, off), leafValueLength(page, off))
  }

  /** Inserts `key` or replaces its value. */
  /**
   * Inserts or replaces `key`. With `old`, also reports the value it had
   * (`old.value`, undefined when the key was absent), found by the same
   * descent.
   */
  async put(pa: PageAccess, key: Uint8Array, value: Uint8Array, old?: { value?: Uint8Array }): Promise<void> {
    checkKey(key, pa.pageSize, 'key')
    checkValue(value)
    const ids: number[] = []
    const idx: number[] = []
    const found = await this.#descendPath(pa, key, ids, idx)
    const leafId = ids[ids.length - 1]
    const pos = leafSearch(found, key)
    if (old) old.value = pos >= 0 ? await readValue(pa, found, slotOffset(found, pos)) : undefined
    const overflow = value.length > maxInlineValueBytes(pa.pageSize)
    if (pos >= 0 && !overflow) {
      const off = slotOffset(found, pos)
      if ((leafCellFlags(found, off) & LEAF_FLAG_OVERFLOW) === 0 && leafValueLength(found, off) >= value.length) {
        // A replace by a value no longer than the old one happens where the cell is.
        const got = pa.write(leafId)
        const leaf = got instanceof Uint8Array ? got : await got
        shrinkLeafValue(leaf, slotOffset(leaf, pos), value)
        return
      }
    }
    const head = overflow ? await writeOverflow(pa, value) : 0
    const got = pa.write(leafId)
    const leaf = got instanceof Uint8Array ? got : await got
    let oldHead = 0
    let i: number
    if (pos >= 0) {
      i = pos
      const off = slotOffset(leaf, i)
      if ((leafCellFlags(leaf, off) & LEAF_FLAG_OVERFLOW) !== 0) oldHead = leafOverflowHead(leaf, off)
      removeCell(leaf, i)
    } else {
      i = ~pos
    }
    const cellBytes = leafCellBytes(key.length, value.length, overflow)
    if (nodeFits(leaf, cellBytes)) {
      writeLeafCell(leaf, reserveCell(leaf, i, cellBytes), key, value.length, overflow ? null : value, head)
    } else {
      const cell = new Uint8Array(cellBytes)
      writeLeafCell(cell, 0, key, value.length, overflow ? null : value, head)
      await this.#insertCell(pa, ids, idx, ids.length - 1, i, cell)
    }
    if (oldHead !== 0) await freeOverflow(pa, oldHead)
  }

  /** Removes `key`; true when it was there. */
  async delete(pa: PageAccess, key: Uint8Array): Promise<boolean> {
    checkKey(key, pa.pageSize, 'key')
    const ids: number[] = []
    const idx: number[] = []
    const found = await this.#descendPath(pa, key, ids, idx)
    const pos = leafSearch(found, key)
    if (pos < 0) return false
    const leafId = ids[ids.length - 1]
    const leaf = await pa.write(leafId)
    const off = slotOffset(leaf, pos)
    const oldHead = (leafCellFlags(leaf, off) & LEAF_FLAG_OVERFLOW) !== 0 ? leafOverflowHead(leaf, off) : 0
    removeCell(leaf, pos)
    if (oldHead !== 0) await freeOverflow(pa, oldHead)
    if (ids.length > 1 && isUnderfull(leaf)) await this.#rebalance(pa, ids, idx, ids.length - 1)
    return true
  }

  /**
   * The building block of iteration: descends from the root and returns the
   * entries of one leaf that lie within `bounds` and strictly after `after`
   * in scan direction (null: from the start), in scan order. `done` is true
   * when nothing can follow. When `done` is false, `entries` is not empty;
   * continue with `after` = the last returned key, in this MTR or a later
   * one: every key present throughout is returned once, in order.
   * `pooled`: small keys and values are copied out with {@link copyOut}
   * (several may share one ArrayBuffer) instead of each into its own.
   */
  async scanLeaf(pa: PageAccess, bounds: ScanBounds, after: Uint8Array | null, pooled = false): Promise<LeafScan> {
    checkBounds(bounds)
    if (after !== null && !(after instanceof Uint8Array)) throw badInput(`scanLeaf: after must be a Uint8Array or null, got ${describe(after)}`)
    return bounds.reverse === true ? await this.#scanBackward(pa, bounds, after, pooled) : await this.#scanForward(pa, bounds, after, pooled)
  }

  /** Entries within `options`, in scan order, up to `limit`; one leaf descent per leaf (see {@link scanLeaf}). */
  async *range(pa: PageAccess, options: RangeOptions = {}): AsyncGenerator<Entry, void, undefined> {
    const limit = options.limit ?? Infinity
    if (limit !== Infinity && (!Number.isInteger(limit) || limit < 0)) throw badInput(`range: limit must be a non-negative integer, got ${String(limit)}`)
    checkBounds(options)
    let left = limit
    if (left === 0) return
    let after: Uint8Array | null = null
    for (;;) {
      const { entries, done } = await this.scanLeaf(pa, options, after)
      if (after !== null && entries.length > 0) {
        const c = compareKeys(entries[0][0], after)
        assert(options.reverse === true ? c < 0 : c > 0, 'scanLeaf returned a key that is not beyond the previous leaf\'s last key')
      }
      for (const e of entries) {
        yield e
        if (--left === 0) return
      }
      if (done) return
      assert(entries.length > 0, 'scanLeaf returned no entries without being done')
      after = entries[entries.length - 1][0]
    }
  }

  /** Number of entries (walks the leaves). */
  async count(pa: PageAccess): Promise<number> {
    let page = await this.#descendRead(pa, null, false)
    let total = 0
    for (let hops = 0; ; hops++) {
      total += slotCount(page)
      const next = leafRight(page)
      if (next === 0) return total
      page = await readLeaf(pa, next, 'right sibling')
    }
  }

  /** Every page the tree uses: its nodes (root first, depth first) and its overflow pages. */
  async pageIds(pa: PageAccess): Promise<number[]> {
    const out: number[] = []
    const visit = async (id: number, depth: number): Promise<void> => {
      const page = await pa.read(id)
      if (!isNodeType(pageType(page)) || depth > TREE_LEVELS_MAX) throw corruption(`pageIds: page ${id} at depth ${depth} has type ${pageTypeName(pageType(page))}`)
      out.push(id)
      const n = slotCount(page)
      if (pageType(page) === PAGE_TYPE_INTERNAL) {
        const children: number[] = []
        for (let c = 0; c <= n; c++) children.push(childAt(page, c))
        for (const c of children) await visit(c, depth + 1)
        return
      }
      const chains: number[] = []
      for (let i = 0; i < n; i++) {
        const off = slotOffset(page, i)
        if ((leafCellFlags(page, off) & LEAF_FLAG_OVERFLOW) !== 0) chains.push(leafOverflowHead(page, off))
      }
      for (const head of chains) {
        const pagesMax = Math.ceil(MAX_VALUE_BYTES / overflowCapacityBytes(pa.pageSize))
        for (let o = head, k = 0; o !== 0; k++) {
          const op = await pa.read(o)
          if (pageType(op) !== PAGE_TYPE_OVERFLOW || k >= pagesMax) throw corruption(`pageIds: overflow chain from page ${head} reaches page ${o} of type ${pageTypeName(pageType(op))} after ${k} pages`)
          out.push(o)
          o = overflowNext(op)
        }
      }
    }
    await visit(this.rootPageId, 0)
    return out
  }

  /** Frees every page of the tree, its root and its overflow chains included; the caller forgets the tree. */
  async drop(pa: PageAccess): Promise<void> {
    const visit = async (id: number, depth: number): Promise<void> => {
      const page = await pa.read(id)
      if (!isNodeType(pageType(page)) || depth > TREE_LEVELS_MAX) throw corruption(`drop: page ${id} at depth ${depth} has type ${pageTypeName(pageType(page))}`)
      // Collect first: freeing rewrites pages, and `page` may be this MTR's copy.
      const children: number[] = []
      const chains: number[] = []
      const n = slotCount(page)
      if (pageType(page) === PAGE_TYPE_INTERNAL) {
        for (let c = 0; c <= n; c++) children.push(childAt(page, c))
      } else {
        for (let i = 0; i < n; i++) {
          const off = slotOffset(page, i)
          if ((leafCellFlags(page, off) & LEAF_FLAG_OVERFLOW) !== 0) chains.push(leafOverflowHead(page, off))
        }
      }
      for (const c of children) await visit(c, depth + 1)
      for (const h of chains) await freeOverflow(pa, h)
      await free(pa, id)
    }
    await visit(this.rootPageId, 0)
  }

  /**
   * Checks every invariant in the header and returns the problems found,
   * empty when all is well. Reads every page of the tree; expects sealed
   * pages (run it in an MTR that has not changed the tree, since an MTR's
   * dirty pages carry stale checksums until they are sealed).
   */
  async verify(pa: PageAccess): Promise<string[]> {
    const problems: string[] = []
    const seen = new Set<number>()
    const leaves: Array<{ id: number; left: number; right: number; first: Uint8Array | null; last: Uint8Array | null }> = []
    const pageSize = pa.pageSize
    const inlineMax = maxInlineValueBytes(pageSize)
    let leafDepth = -1

    const visit = async (id: number, depth: number, lo: Uint8Array | null, hi: Uint8Array | null, level: number | null, from: string): Promise<void> => {
      if (seen.has(id)) { problems.push(`page ${id} is reachable twice (again as ${from})`); return }
      seen.add(id)
      if (depth > TREE_LEVELS_MAX) { problems.push(`page ${id} (${from}) is deeper than ${TREE_LEVELS_MAX} levels`); return }
      const page = await pa.read(id)
      const bad = checkPage(page)
      if (bad !== null) { problems.push(`page ${id} (${from}): ${bad}`); return }
      const type = pageType(page)
      if (!isNodeType(type)) { problems.push(`page ${id} (${from}) has type ${pageTypeName(type)}, expected a leaf or internal page`); return }
      const lvl = nodeLevel(page)
      if (level !== null && lvl !== level) problems.push(`page ${id} (${from}) has level ${lvl}, expected ${level}`)
      const n = slotCount(page)
      const isRoot = id === this.rootPageId
      if (!isRoot && n === 0) problems.push(`page ${id} (${from}) is an empty non-root ${pageTypeName(type)} page`)
      if (isRoot && type === PAGE_TYPE_INTERNAL && n === 0) problems.push(`root page ${id} is an internal page with a single child`)
      const keyAt = type === PAGE_TYPE_LEAF ? LEAF_CELL_HEADER_BYTES : INTERNAL_CELL_HEADER_BYTES
      for (let i = 0; i < n; i++) {
        const off = slotOffset(page, i)
        const ko = off + keyAt
        const kl = cellKeyLength(page, off)
        if (i > 0) {
          const poff = slotOffset(page, i - 1)
          if (compareBytes(page, poff + keyAt, cellKeyLength(page, poff), page, ko, kl) >= 0) {
            problems.push(`page ${id}: keys out of order at slot ${i} (${hex(page, poff + keyAt, cellKeyLength(page, poff))} >= ${hex(page, ko, kl)})`)
          }
        }
        if (lo !== null && compareBytes(page, ko, kl, lo, 0, lo.length) < 0) problems.push(`page ${id}: key ${hex(page, ko, kl)} at slot ${i} is below its subtree's lower separator ${hex(lo, 0, lo.length)}`)
        if (hi !== null && compareBytes(page, ko, kl, hi, 0, hi.length) >= 0) problems.push(`page ${id}: key ${hex(page, ko, kl)} at slot ${i} is not below its subtree's upper separator ${hex(hi, 0, hi.length)}`)
      }
      if (type === PAGE_TYPE_LEAF) {
        if (leafDepth === -1) leafDepth = depth
        else if (leafDepth !== depth) problems.push(`leaf ${id} is at depth ${depth}, an earlier leaf at depth ${leafDepth}`)
        const firstOff = n > 0 ? slotOffset(page, 0) : 0
        const lastOff = n > 0 ? slotOffset(page, n - 1) : 0
        leaves.push({
          id, left: leafLeft(page), right: leafRight(page),
          first: n > 0 ? page.slice(firstOff + keyAt, firstOff + keyAt + cellKeyLength(page, firstOff)) : null,
          last: n > 0 ? page.slice(lastOff + keyAt, lastOff + keyAt + cellKeyLength(page, lastOff)) : null,
        })
        const chains: Array<[number, number, number]> = []
        for (let i = 0; i < n; i++) {
          const off = slotOffset(page, i)
          const len = leafValueLength(page, off)
          if ((leafCellFlags(page, off) & LEAF_FLAG_OVERFLOW) !== 0) {
            if (len <= inlineMax || len > MAX_VALUE_BYTES) problems.push(`page ${id} slot ${i}: overflow value of ${len} bytes is outside ${inlineMax + 1}..${MAX_VALUE_BYTES}`)
            else chains.push([i, leafOverflowHead(page, off), len])
          } else if (len > inlineMax) {
            problems.push(`page ${id} slot ${i}: inline value of ${len} bytes exceeds the ${inlineMax}-byte inline limit`)
          }
        }
        for (const [i, head, len] of chains) await verifyOverflow(pa, head, len, `page ${id} slot ${i}`, seen, problems)
        return
      }
      const seps: Uint8Array[] = []
      for (let i = 0; i < n; i++) {
        const off = slotOffset(page, i)
        seps.push(page.slice(off + keyAt, off + keyAt + cellKeyLength(page, off)))
      }
      const children: number[] = []
      for (let c = 0; c <= n; c++) children.push(childAt(page, c))
      for (let c = 0; c <= n; c++) {
        await visit(children[c], depth + 1, c === 0 ? lo : seps[c - 1], c === n ? hi : seps[c], lvl - 1, `child ${c} of page ${id}`)
      }
    }

    await visit(this.rootPageId, 0, null, null, null, 'root')
    for (let i = 0; i < leaves.length; i++) {
      const l = leaves[i]
      const left = i === 0 ? 0 : leaves[i - 1].id
      const right = i === leaves.length - 1 ? 0 : leaves[i + 1].id
      if (l.left !== left) problems.push(`leaf ${l.id}: left sibling link is ${l.left}, expected ${left}`)
      if (l.right !== right) problems.push(`leaf ${l.id}: right sibling link is ${l.right}, expected ${right}`)
      if (i > 0) {
        const prev = leaves[i - 1]
        if (prev.last !== null && l.first !== null && compareKeys(prev.last, l.first) >= 0) {
          problems.push(`leaves ${prev.id} and ${l.id} are out of key order (${hex(prev.last, 0, prev.last.length)} >= ${hex(l.first, 0, l.first.length)})`)
        }
      }
    }
    return problems
  }

  // ---------------------------------------------------------------- descent

  #checkInternal(page: Uint8Array, id: number, depth: number): void {
    if (pageType(page) !== PAGE_TYPE_INTERNAL || depth >= TREE_LEVELS_MAX) {
      throw corruption(`page ${id} at depth ${depth} of the tree rooted at ${this.rootPageId} has type ${pageTypeName(pageType(page))}, expected a leaf or internal page`)
    }
  }

  /** Descends to the leaf for `key`, recording page ids and the child index taken at each internal page. */
  async #descendPath(pa: PageAccess, key: Uint8Array, ids: number[], idx: number[]): Promise<Uint8Array> {
    let id = this.rootPageId
    let got = pa.read(id)
    let page = got instanceof Uint8Array ? got : await got
    ids.push(id)
    for (let depth = 0; pageType(page) !== PAGE_TYPE_LEAF; depth++) {
      this.#checkInternal(page, id, depth)
      const c = childIndex(page, key)
      idx.push(c)
      id = childAt(page, c)
      got = pa.read(id)
      page = got instanceof Uint8Array ? got : await got
      ids.push(id)
    }
    return page
  }

  /** Descends to the leaf for `key`; with a null key, to the first (or, `last`, the last) leaf. */
  async #descendRead(pa: PageAccess, key: Uint8Array | null, last: boolean): Promise<Uint8Array> {
    let id = this.rootPageId
    let got = pa.read(id)
    let page = got instanceof Uint8Array ? got : await got
    for (let depth = 0; pageType(page) !== PAGE_TYPE_LEAF; depth++) {
      this.#checkInternal(page, id, depth)
      id = childAt(page, key !== null ? childIndex(page, key) : last ? slotCount(page) : 0)
      got = pa.read(id)
      page = got instanceof Uint8Array ? got : await got
    }
    return page
  }

  // ---------------------------------------------------------------- scans

  async #scanForward(pa: PageAccess, bounds: ScanBounds, after: Uint8Array | null, pooled: boolean): Promise<LeafScan> {
    const low = bounds.gt ?? bounds.gte
    let start: Uint8Array | null = low ?? null
    let exclusive = bounds.gt !== undefined
    if (after !== null && (low === undefined || compareKeys(after, low) >= 0)) { start = after; exclusive = true }
    const end = bounds.lt ?? bounds.lte
    const endInclusive = bounds.lte !== undefined
    let page = await this.#descendRead(pa, start, false)
    let pos = start === null ? 0 : exclusive ? upperBound(page, start) : lowerBound(page, start)
    for (;;) {
      const n = slotCount(page)
      const out = new EntryCollector(pooled)
      let stop = false
      for (let i = pos; i < n; i++) {
        const off = slotOffset(page, i)
        if (end !== undefined) {
          const c = compareBytes(page, off + LEAF_CELL_HEADER_BYTES, cellKeyLength(page, off), end, 0, end.length)
          if (c > 0 || (c === 0 && !endInclusive)) { stop = true; break }
        }
        out.add(page, off)
      }
      const next = leafRight(page)
      if (stop || out.entries.length > 0 || next === 0) return { entries: await out.finish(pa), done: stop || next === 0 }
      page = await readLeaf(pa, next, 'right sibling')
      pos = 0
    }
  }

  async #scanBackward(pa: PageAccess, bounds: ScanBounds, after: Uint8Array | null, pooled: boolean): Promise<LeafScan> {
    const high = bounds.lt ?? bounds.lte
    let start: Uint8Array | null = high ?? null
    let exclusive = bounds.lt !== undefined
    if (after !== null && (high === undefined || compareKeys(after, high) <= 0)) { start = after; exclusive = true }
    const end = bounds.gt ?? bounds.gte
    const endInclusive = bounds.gte !== undefined
    let page = await this.#descendRead(pa, start, true)
    let pos = start === null ? slotCount(page) - 1 : (exclusive ? lowerBound(page, start) : upperBound(page, start)) - 1
    for (;;) {
      const out = new EntryCollector(pooled)
      let stop = false
      for (let i = pos; i >= 0; i--) {
        const off = slotOffset(page, i)
        if (end !== undefined) {
          const c = compareBytes(page, off + LEAF_CELL_HEADER_BYTES, cellKeyLength(page, off), end, 0, end.length)
          if (c < 0 || (c === 0 && !endInclusive)) { stop = true; break }
        }
        out.add(page, off)
      }
      const next = leafLeft(page)
      if (stop || out.entries.length > 0 || next === 0) return { entries: await out.finish(pa), done: stop || next === 0 }
      page = await readLeaf(pa, next, 'left sibling')
      pos = slotCount(page) - 1
    }
  }

  // ---------------------------------------------------------------- structure changes

  /**
   * Inserts `cell` at slot `index` of the page at `ids[depth]`, splitting
   * pages upward as long as they do not fit.
   */
  async #insertCell(pa: PageAccess, ids: number[], idx: number[], depth: number, index: number, cell: Uint8Array): Promise<void> {
    for (;;) {
      const id = ids[depth]
      const got = pa.write(id)
      const page = got instanceof Uint8Array ? got : await got
      if (nodeFits(page, cell.length)) { insertCellBytes(page, index, cell, 0, cell.length); return }
      if (depth === 0) { await this.#splitRoot(pa, index, cell); return }
      const leaf = pageType(page) === PAGE_TYPE_LEAF
      const { pageId: rightId } = await allocate(pa)
      const oldLeft = leaf ? leafLeft(page) : 0
      const oldRight = leaf ? leafRight(page) : 0
      const farRight = oldRight !== 0 ? await pa.write(oldRight) : null
      const left = await pa.write(id)
      const right = await pa.write(rightId)
      // Synchronous from here: the scratch copy lives only until splitCells returns.
      const hint = !leaf ? null : index === slotCount(left) && oldRight === 0 ? 'append' : index === 0 && oldLeft === 0 ? 'prepend' : null
      const copy = scratchPage(left.length, 0)
      copy.set(left)
      const seq = new CellSeq()
      seq.pushNodeWith(copy, index, cell)
      const sep = splitCells(seq, leaf, nodeLevel(copy), left, right, leaf ? 0 : leftmostChild(copy), hint)
      if (leaf) {
        setLeafLeft(left, oldLeft)
        setLeafRight(left, rightId)
        setLeafLeft(right, id)
        setLeafRight(right, oldRight)
        if (farRight !== null) setLeafLeft(farRight, rightId)
      }
      cell = makeInternalCell(sep, rightId)
      index = idx[depth - 1]
      depth--
    }
  }

  /** The root does not fit `cell`: its content moves into two new children and it becomes their parent. */
  async #splitRoot(pa: PageAccess, index: number, cell: Uint8Array): Promise<void> {
    const { pageId: leftId } = await allocate(pa)
    const { pageId: rightId } = await allocate(pa)
    const root = await pa.write(this.rootPageId)
    const left = await pa.write(leftId)
    const right = await pa.write(rightId)
    const leaf = pageType(root) === PAGE_TYPE_LEAF
    const level = nodeLevel(root)
    assert(level < TREE_LEVELS_MAX, `tree rooted at ${this.rootPageId} would grow beyond ${TREE_LEVELS_MAX} levels`)
    const hint = !leaf ? null : index === slotCount(root) ? 'append' : index === 0 ? 'prepend' : null
    const copy = scratchPage(root.length, 0)
    copy.set(root)
    const seq = new CellSeq()
    seq.pushNodeWith(copy, index, cell)
    const sep = splitCells(seq, leaf, level, left, right, leaf ? 0 : leftmostChild(copy), hint)
    if (leaf) {
      setLeafRight(left, rightId)
      setLeafLeft(right, leftId)
    }
    initNode(root, PAGE_TYPE_INTERNAL, level + 1)
    setLeftmostChild(root, leftId)
    const sepCell = makeInternalCell(sep, rightId)
    appendCellBytes(root, sepCell, 0, sepCell.length)
  }

  /**
   * After a delete: while the page at `ids[depth]` is underfull, merge it
   * with a sibling (same parent) when both fit in one page, else
   * redistribute their cells; a merge removes a separator from the parent,
   * which may then be underfull in turn. Ends by collapsing a root left with
   * a single child.
   */
  async #rebalance(pa: PageAccess, ids: number[], idx: number[], depth: number): Promise<void> {
    while (depth > 0) {
      const node = await pa.write(ids[depth])
      if (!isUnderfull(node)) return
      const parent = await pa.write(ids[depth - 1])
      assert(slotCount(parent) >= 1, `page ${ids[depth - 1]} has a single child during rebalance`)
      const c = idx[depth - 1]
      const sepIndex = c > 0 ? c - 1 : 0
      const leftId = childAt(parent, sepIndex)
      const rightId = childAt(parent, sepIndex + 1)
      const left = await pa.write(leftId)
      const right = await pa.write(rightId)
      const leaf = pageType(left) === PAGE_TYPE_LEAF
      const farRightId = leaf ? leafRight(right) : 0
      const farRight = farRightId !== 0 ? await pa.write(farRightId) : null
      const sepOff = slotOffset(parent, sepIndex)
      const sepKey = leaf ? null : parent.slice(sepOff + INTERNAL_CELL_HEADER_BYTES, sepOff + INTERNAL_CELL_HEADER_BYTES + cellKeyLength(parent, sepOff))
      const newSep = rebalancePair(left, right, sepKey)
      removeCell(parent, sepIndex)
      if (newSep === null) {
        if (farRight !== null) setLeafLeft(farRight, leftId)
        await free(pa, rightId)
        depth--
        continue
      }
      await this.#insertCell(pa, ids, idx, depth - 1, sepIndex, makeInternalCell(newSep, rightId))
      return
    }
    await this.#collapseRoot(pa)
  }

  /** A root internal page with a single child takes that child's content (the root id never changes). */
  async #collapseRoot(pa: PageAccess): Promise<void> {
    for (;;) {
      const root = await pa.read(this.rootPageId)
      if (pageType(root) !== PAGE_TYPE_INTERNAL || slotCount(root) !== 0) return
      const childId = leftmostChild(root)
      const child = await pa.read(childId)
      assert(pageType(child) !== PAGE_TYPE_LEAF || (leafLeft(child) === 0 && leafRight(child) === 0), `only child ${childId} of root ${this.rootPageId} has siblings`)
      const writable = await pa.write(this.rootPageId)
      writable.set(child)
      await free(pa, childId)
    }
  }
}

// ------------------------------------------------------------------ page search

/** Slot of `key` in a leaf, or ~(its insertion point) when absent. */
function leafSearch(p: Uint8Array, key: Uint8Array): number {
  let lo = 0
  let hi = slotCount(p) - 1
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1
    const off = slotOffset(p, mid)
    const c = compareBytes(p, off + LEAF_CELL_HEADER_BYTES, cellKeyLength(p, off), key, 0, key.length)
    if (c < 0) lo = mid + 1
    else if (c > 0) hi = mid - 1
    else return mid
  }
  return ~lo
}

/** First slot whose key is >= key. */
function lowerBound(p: Uint8Array, key: Uint8Array): number {
  const s = leafSearch(p, key)
  return s >= 0 ? s : ~s
}

/** First slot whose key is > key. */
function upperBound(p: Uint8Array, key: Uint8Array): number {
  const s = leafSearch(p, key)
  return s >= 0 ? s + 1 : ~s
}

/** The child of an internal page that covers `key`: the number of separators <= key. */
function childIndex(p: Uint8Array, key: Uint8Array): number {
  let lo = 0
  let hi = slotCount(p)
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    const off = slotOffset(p, mid)
    if (compareBytes(p, off + INTERNAL_CELL_HEADER_BYTES, cellKeyLength(p, off), key, 0, key.length) <= 0) lo = mid + 1
    else hi = mid
  }
  return lo
}

function isUnderfull(p: Uint8Array): boolean {
  return slotCount(p) === 0 || nodeUsedBytes(p) < nodeCapacityBytes(p.length) / UNDERFULL_DIVISOR
}

async function readLeaf(pa: PageAccess, id: number, what: string): Promise<Uint8Array> {
  const page = await pa.read(id)
  if (pageType(page) !== PAGE_TYPE_LEAF) throw corruption(`${what} page ${id} has type ${pageTypeName(pageType(page))}, expected a leaf`)
  return page
}

// ------------------------------------------------------------------ splits, merges, redistribution

/** Cells being redistributed: byte ranges in scratch copies or in cell buffers of their own. */
class CellSeq {
  readonly bufs: Uint8Array[] = []
  readonly offs: number[] = []
  readonly lens: number[] = []

  push(buf: Uint8Array, off: number, len: number): void {
    this.bufs.push(buf)
    this.offs.push(off)
    this.lens.push(len)
  }

  pushNode(p: Uint8Array): void {
    const n = slotCount(p)
    for (let i = 0; i < n; i++) {
      const off = slotOffset(p, i)
      this.push(p, off, cellBytesAt(p, off))
    }
  }

  /** The node's cells with `cell` inserted at slot `index`. */
  pushNodeWith(p: Uint8Array, index: number, cell: Uint8Array): void {
    const n = slotCount(p)
    for (let i = 0; i <= n; i++) {
      if (i === index) this.push(cell, 0, cell.length)
      if (i < n) {
        const off = slotOffset(p, i)
        this.push(p, off, cellBytesAt(p, off))
      }
    }
  }

  /** Bytes cells [from, to) take in a page, slots included. */
  bytes(from: number, to: number): number {
    let total = 0
    for (let i = from; i < to; i++) total += this.lens[i] + SLOT_BYTES
    return total
  }

  fill(p: Uint8Array, from: number, to: number): void {
    for (let i = from; i < to; i++) appendCellBytes(p, this.bufs[i], this.offs[i], this.lens[i])
  }
}

/**
 * Chooses where a sequence splits into two pages. Leaves: left gets
 * [0, m), right [m, n). Internal: left [0, m), cell m moves up as the
 * separator, right (m, n). Picks the most balanced split where both sides
 * fit, unless the hint asks for the new cell alone at the right end
 * ('append') or left end ('prepend') and that fits. Because every cell is at
 * most 3/8 of a page, a split where both fit always exists.
 */
function chooseSplit(seq: CellSeq, leaf: boolean, capacity: number, hint: 'append' | 'prepend' | null): number {
  const n = seq.lens.length
  const total = seq.bytes(0, n)
  const lo = 1
  const hi = leaf ? n - 1 : n - 2
  const fits = (m: number, left: number) => left <= capacity && total - left - (leaf ? 0 : seq.lens[m] + SLOT_BYTES) <= capacity
  if (leaf && hint === 'append' && fits(n - 1, total - seq.lens[n - 1] - SLOT_BYTES)) return n - 1
  if (leaf && hint === 'prepend' && fits(1, seq.lens[0] + SLOT_BYTES)) return 1
  let best = -1
  let bestSkew = Infinity
  let left = seq.bytes(0, lo)
  for (let m = lo; m <= hi; m++) {
    if (fits(m, left)) {
      const right = total - left - (leaf ? 0 : seq.lens[m] + SLOT_BYTES)
      const skew = Math.abs(left - right)
      if (skew < bestSkew) { best = m; bestSkew = skew }
    }
    left += seq.lens[m] + SLOT_BYTES
  }
  assert(best >= 1, `no split of ${n} cells (${total} bytes) fits two ${capacity}-byte pages`)
  return best
}

/**
 * Writes `seq` into `left` and `right` (re-initialized; links are the
 * caller's) and returns the separator for the parent: for leaves the
 * shortest key between the two sides, for internal pages the promoted
 * cell's key (its child becomes right's leftmost child).
 */
function splitCells(seq: CellSeq, leaf: boolean, level: number, left: Uint8Array, right: Uint8Array, leftmost: number, hint: 'append' | 'prepend' | null): Uint8Array {
  const n = seq.lens.length
  const m = chooseSplit(seq, leaf, nodeCapacityBytes(left.length), hint)
  const type = leaf ? PAGE_TYPE_LEAF : PAGE_TYPE_INTERNAL
  initNode(left, type, level)
  initNode(right, type, level)
  if (leaf) {
    seq.fill(left, 0, m)
    seq.fill(right, m, n)
    return shortestSeparator(seq, m)
  }
  setLeftmostChild(left, leftmost)
  seq.fill(left, 0, m)
  const buf = seq.bufs[m]
  const off = seq.offs[m]
  setLeftmostChild(right, internalCellChild(buf, off))
  seq.fill(right, m + 1, n)
  return buf.slice(off + INTERNAL_CELL_HEADER_BYTES, off + INTERNAL_CELL_HEADER_BYTES + cellKeyLength(buf, off))
}

/** The shortest s with key(m - 1) < s <= key(m): a prefix of key(m) one byte past the common prefix. */
function shortestSeparator(seq: CellSeq, m: number): Uint8Array {
  const a = seq.bufs[m - 1]
  const aOff = seq.offs[m - 1] + LEAF_CELL_HEADER_BYTES
  const aLen = cellKeyLength(a, seq.offs[m - 1])
  const b = seq.bufs[m]
  const bOff = seq.offs[m] + LEAF_CELL_HEADER_BYTES
  const bLen = cellKeyLength(b, seq.offs[m])
  let cp = 0
  while (cp < aLen && cp < bLen && a[aOff + cp] === b[bOff + cp]) cp++
  assert(cp < bLen && (cp === aLen || a[aOff + cp] < b[bOff + cp]), 'leaf keys out of order at a split')
  return b.slice(bOff, bOff + cp + 1)
}

/**
 * Merges `right` into `left` when both fit in one page (returns null; the
 * caller frees `right` and drops the separator), else redistributes their
 * cells evenly and returns the new separator. `sepKey` is the parent's
 * separator between them for internal pages (it moves down), null for
 * leaves. Leaf links keep their outer ends; the caller fixes the far right
 * neighbour after a merge.
 */
function rebalancePair(left: Uint8Array, right: Uint8Array, sepKey: Uint8Array | null): Uint8Array | null {
  const size = left.length
  const leaf = pageType(left) === PAGE_TYPE_LEAF
  assert(leaf === (pageType(right) === PAGE_TYPE_LEAF) && nodeLevel(left) === nodeLevel(right), 'rebalancing pages of different kinds or levels')
  assert(leaf === (sepKey === null), 'rebalancePair: a separator moves down only between internal pages')
  const a = scratchPage(size, 0)
  const b = scratchPage(size, 1)
  a.set(left)
  b.set(right)
  const seq = new CellSeq()
  seq.pushNode(a)
  if (sepKey !== null) {
    const down = makeInternalCell(sepKey, leftmostChild(b))
    seq.push(down, 0, down.length)
  }
  seq.pushNode(b)
  const level = nodeLevel(a)
  const type = leaf ? PAGE_TYPE_LEAF : PAGE_TYPE_INTERNAL
  if (seq.bytes(0, seq.lens.length) <= nodeCapacityBytes(size)) {
    initNode(left, type, level)
    if (leaf) {
      setLeafLeft(left, leafLeft(a))
      setLeafRight(left, leafRight(b))
    } else {
      setLeftmostChild(left, leftmostChild(a))
    }
    seq.fill(left, 0, seq.lens.length)
    return null
  }
  const sep = splitCells(seq, leaf, level, left, right, leaf ? 0 : leftmostChild(a), null)
  if (leaf) {
    setLeafLeft(left, leafLeft(a))
    setLeafRight(left, leafRight(a))
    setLeafLeft(right, leafLeft(b))
    setLeafRight(right, leafRight(b))
  }
  return sep
}

// ------------------------------------------------------------------ values and overflow chains

/** Collects a leaf's entries synchronously; overflow values are read afterwards. */
class EntryCollector {
  readonly entries: Entry[] = []
  readonly #pending: Array<[index: number, head: number, length: number]> = []
  readonly #pooled: boolean

  constructor(pooled: boolean) { this.#pooled = pooled }

  add(page: Uint8Array, off: number): void {
    const ko = off + LEAF_CELL_HEADER_BYTES
    const keyLen = cellKeyLength(page, off)
    const key = this.#pooled ? copyOut(page, ko, keyLen) : page.slice(ko, ko + keyLen)
    const len = leafValueLength(page, off)
    if ((leafCellFlags(page, off) & LEAF_FLAG_OVERFLOW) !== 0) {
      this.#pending.push([this.entries.length, leafOverflowHead(page, off), len])
      this.entries.push([key, EMPTY])
    } else {
      const vo = ko + keyLen
      this.entries.push([key, this.#pooled ? copyOut(page, vo, len) : page.slice(vo, vo + len)])
    }
  }

  async finish(pa: PageAccess): Promise<Entry[]> {
    for (const [i, head, len] of this.#pending) this.entries[i][1] = await readOverflow(pa, head, len)
    return this.entries
  }
}

const EMPTY = new Uint8Array(0)

/**
 * Copies `len` bytes of `src` from `start` into memory the caller owns (no
 * later change to `src`, a shared cache page, shows in it), for the hot read
 * paths of the writer's engine.
 *
 * A typed array of more than 64 bytes gets a backing store of its own outside
 * the JS heap, which V8 makes and collects slowly (most of the cost of a warm
 * get of a 100-byte value). So values of 65..{@link SLAB_COPY_MAX} bytes are
 * carved, 8-byte aligned, from a shared 8 KiB ArrayBuffer, as Node carves
 * small Buffers from its pool: each result is a plain Uint8Array whose bytes
 * nothing else writes, but whose `.buffer` may hold other results too (use
 * byteOffset/byteLength; transfer a copy, not `.buffer`). Shorter values stay
 * on the JS heap and longer ones get a buffer of their own.
 */
export function copyOut(src: Uint8Array, start: number, len: number): Uint8Array {
  if (len <= 64) {
    const out = new Uint8Array(len)
    for (let i = 0; i < len; i++) out[i] = src[start + i]
    return out
  }
  if (len > SLAB_COPY_MAX) {
    const out = new Uint8Array(len)
    out.set(src.subarray(start, start + len))
    return out
  }
  if (slabPos + len > SLAB_BYTES) { slab = new ArrayBuffer(SLAB_BYTES); slabPos = 0 }
  const out = new Uint8Array(slab, slabPos, len)
  slabPos = (slabPos + len + 7) & ~7
  out.set(src.subarray(start, start + len)) // one memcpy: faster than a byte loop from 100 bytes on
  return out
}

const SLAB_BYTES = 8192
/** Longest value copied into a shared slab (a value the caller keeps keeps its whole 8 KiB slab alive, as a pooled Buffer does). */
const SLAB_COPY_MAX = 1024
let slab = new ArrayBuffer(SLAB_BYTES)
let slabPos = 0

async function readValue(pa: PageAccess, page: Uint8Array, off: number): Promise<Uint8Array> {
  const len = leafValueLength(page, off)
  if ((leafCellFlags(page, off) & LEAF_FLAG_OVERFLOW) !== 0) return await readOverflow(pa, leafOverflowHead(page, off), len)
  const vo = leafBodyOffset(page, off)
  return page.slice(vo, vo + len)
}

/** Writes `value` into a new overflow chain and returns its head. Built back to front, so no page is held across an await. */
async function writeOverflow(pa: PageAccess, value: Uint8Array): Promise<number> {
  const capacity = overflowCapacityBytes(pa.pageSize)
  const pages = Math.ceil(value.length / capacity)
  let next = 0
  for (let j = pages - 1; j >= 0; j--) {
    const start = j * capacity
    const len = Math.min(capacity, value.length - start)
    const { pageId, page } = await allocate(pa)
    initOverflowPage(page, next, len)
    page.set(value.subarray(start, start + len), OVERFLOW_HEADER_BYTES)
    next = pageId
  }
  return next
}

async function readOverflow(pa: PageAccess, head: number, length: number): Promise<Uint8Array> {
  const out = new Uint8Array(length)
  let pos = 0
  let id = head
  while (pos < length) {
    if (id === 0) throw corruption(`overflow chain from page ${head} ends after ${pos} of ${length} bytes`)
    const page = await pa.read(id)
    if (pageType(page) !== PAGE_TYPE_OVERFLOW) throw corruption(`overflow chain from page ${head}: page ${id} has type ${pageTypeName(pageType(page))}`)
    const len = overflowLength(page)
    if (len === 0 || len > length - pos || len > overflowCapacityBytes(page.length)) throw corruption(`overflow chain from page ${head}: page ${id} holds ${len} bytes, ${length - pos} remain`)
    out.set(page.subarray(OVERFLOW_HEADER_BYTES, OVERFLOW_HEADER_BYTES + len), pos)
    pos += len
    id = overflowNext(page)
  }
  if (id !== 0) throw corruption(`overflow chain from page ${head} continues past its ${length} bytes`)
  return out
}

async function freeOverflow(pa: PageAccess, head: number): Promise<void> {
  const pagesMax = Math.ceil(MAX_VALUE_BYTES / overflowCapacityBytes(pa.pageSize))
  let id = head
  for (let n = 0; id !== 0; n++) {
    if (n >= pagesMax) throw corruption(`overflow chain from page ${head} is longer than ${pagesMax} pages`)
    const page = await pa.read(id)
    if (pageType(page) !== PAGE_TYPE_OVERFLOW) throw corruption(`overflow chain from page ${head}: page ${id} has type ${pageTypeName(pageType(page))}`)
    const next = overflowNext(page)
    await free(pa, id)
    id = next
  }
}

async function verifyOverflow(pa: PageAccess, head: number, length: number, where: string, seen: Set<number>, problems: string[]): Promise<void> {
  const expected = Math.ceil(length / overflowCapacityBytes(pa.pageSize))
  let total = 0
  let pages = 0
  for (let id = head; id !== 0;) {
    if (pages >= expected) { problems.push(`${where}: overflow chain is longer than the ${expected} pages its ${length} bytes need`); return }
    if (seen.has(id)) { problems.push(`page ${id} is reachable twice (again in the overflow chain of ${where})`); return }
    seen.add(id)
    const page = await pa.read(id)
    const bad = checkPage(page)
    if (bad !== null) { problems.push(`page ${id} (overflow chain of ${where}): ${bad}`); return }
    if (pageType(page) !== PAGE_TYPE_OVERFLOW) { problems.push(`page ${id} (overflow chain of ${where}) has type ${pageTypeName(pageType(page))}`); return }
    total += overflowLength(page)
    pages++
    id = overflowNext(page)
  }
  if (pages !== expected || total !== length) problems.push(`${where}: overflow chain has ${pages} pages holding ${total} bytes, expected ${expected} pages holding ${length}`)
}

// ------------------------------------------------------------------ input checks and errors

function checkKey(key: unknown, pageSize: number, what: string): asserts key is Uint8Array {
  if (!(key instanceof Uint8Array)) throw badInput(`${what} must be a Uint8Array, got ${describe(key)}`)
  const max = maxKeyBytes(pageSize)
  if (key.length === 0) throw badInput(`${what} is empty; keys are 1..${max} bytes`)
  if (key.length > max) throw badInput(`${what} of ${key.length} bytes exceeds the ${max}-byte key limit (pageSize ${pageSize} / 8)`)
}

function checkValue(value: unknown): asserts value is Uint8Array {
  if (!(value instanceof Uint8Array)) throw badInput(`value must be a Uint8Array, got ${describe(value)}`)
  if (value.length > MAX_VALUE_BYTES) throw badInput(`value of ${value.length} bytes exceeds the ${MAX_VALUE_BYTES}-byte (16 MiB) value limit`)
}

function checkBounds(b: unknown): asserts b is ScanBounds {
  if (b === null || typeof b !== 'object') throw badInput(`scan bounds must be an object, got ${describe(b)}`)
  const o = b as Record<string, unknown>
  for (const k of ['gt', 'gte', 'lt', 'lte']) {
    if (o[k] !== undefined && !(o[k] instanceof Uint8Array)) throw badInput(`scan bound ${k} must be a Uint8Array, got ${describe(o[k])}`)
  }
  if (o.gt !== undefined && o.gte !== undefined) throw badInput('scan bounds: give gt or gte, not both')
  if (o.lt !== undefined && o.lte !== undefined) throw badInput('scan bounds: give lt or lte, not both')
}

function describe(v: unknown): string {
  return v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v === 'object' ? (v as object).constructor?.name ?? 'object' : typeof v
}

function corruption(message: string): HexadError {
  return new HexadError('HEXAD_CORRUPTION', message)
}

function hex(p: Uint8Array, off: number, len: number): string {
  const shown = Math.min(len, 24)
  let s = ''
  for (let i = 0; i < shown; i++) s += p[off + i].toString(16).padStart(2, '0')
  return len > shown ? `${s}…(${len} bytes)` : s
}
