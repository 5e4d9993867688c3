/**
 * The compute node's page format: what the bytes of a page mean. Storage
 * never looks inside a page; everything here is the built-in compute node's
 * own business. Every constant of the format lives in this file.
 *
 * Every number is little-endian. A page that was never written reads as all
 * zeros (type 0); page 0 all zeros means "no superblock yet".
 *
 * ```
 * page          := common body
 * common        := checksum:u32   crc32c of the whole page computed with this field zeroed
 *                  type:u8        1 superblock | 2 leaf | 3 internal | 4 overflow | 5 free
 *                  reserved:u8[3] = 0
 *
 * superblock    := common                                   (page 0 only)
 *                  magic:u32 = 0x42535848 ('HXSB' on disk)
 *                  formatVersion:u32 = 1
 *                  pageSize:u32
 *                  highWater:u32    next never-used page id (ids >= highWater were never allocated)
 *                  freeHead:u32     first page of the free list, 0 = empty
 *                  catalogRoot:u32  root page of the catalog B+tree, 0 = none yet
 *                  zero*
 *
 * node          := common                                   (leaf and internal pages: slotted)
 *                  slotCount:u16
 *                  level:u16        0 for a leaf, height above the leaves for an internal page
 *                  cellStart:u32    lowest byte of the cell area (pageSize when it is empty)
 *                  fragmented:u32   bytes of dead cells inside the cell area
 *                  link0:u32        leaf: left sibling | internal: leftmost child
 *                  link1:u32        leaf: right sibling | internal: 0
 *                  slot:u16 * slotCount    cell offsets, sorted by the cells' keys
 *                  free-space
 *                  cell-area            cells in any order, dead cells among them; grows downward
 * leaf-cell     := keyLen:u16 flags:u8 valueLen:u32 key:u8[keyLen] body
 *                  body := value:u8[valueLen]              flags = 0 (inline)
 *                        | overflowHead:u32                flags = 1 (value in an overflow chain)
 * internal-cell := keyLen:u16 child:u32 key:u8[keyLen]
 *
 * overflow      := common next:u32 length:u32 data:u8[length] zero*    next = 0 ends the chain
 * free          := common next:u32 stale*                               next = 0 ends the free list;
 *                  the body keeps whatever the page held (freeing rewrites 8 bytes, not a page of redo)
 * ```
 *
 * Node invariants (checked by {@link checkPage}, relied on by the B+tree):
 * - `NODE_HEADER_BYTES + 2 * slotCount <= cellStart <= pageSize`;
 * - every slot points at a whole cell inside `[cellStart, pageSize)`;
 * - the live cells plus `fragmented` account for exactly `pageSize - cellStart`
 *   bytes, so free space is `cellStart - slotEnd + fragmented`;
 * - page id 0 is never a sibling or child, so 0 means "none" in links.
 *
 * An internal page with n cells has n + 1 children: child 0 is `link0`,
 * child c (c >= 1) is the child of cell c - 1. A key k belongs to child c
 * when key(c - 1) <= k < key(c) (the missing ends are unbounded).
 *
 * The checksum is written by {@link sealPage}; the MTR layer seals every
 * dirty page before shipping it, so a page inside an MTR that changed it
 * carries a stale checksum until then. {@link checkPage} is meant for pages
 * as published or as read from the volume.
 */
import { crc32c } from '../../native-bindings/index.js'
import { HexadError, assert } from '../common/errors.js'

// ------------------------------------------------------------------ common header

export const CHECKSUM_OFFSET = 0
export const TYPE_OFFSET = 4
export const COMMON_HEADER_BYTES = 8

export const PAGE_TYPE_NONE = 0 // never written (all zeros)
export const PAGE_TYPE_SUPERBLOCK = 1
export const PAGE_TYPE_LEAF = 2
export const PAGE_TYPE_INTERNAL = 3
export const PAGE_TYPE_OVERFLOW = 4
export const PAGE_TYPE_FREE = 5

/** The smallest and largest page sizes the format supports (slot offsets are u16). */
export const PAGE_BYTES_MIN = 512
export const PAGE_BYTES_MAX = 65536

// ------------------------------------------------------------------ superblock (page 0)

export const SUPERBLOCK_PAGE_ID = 0
export const SUPERBLOCK_MAGIC = 0x42535848 // 'HXSB'
export const FORMAT_VERSION = 1
const SB_MAGIC = 8
const SB_VERSION = 12
const SB_PAGE_SIZE = 16
const SB_HIGH_WATER = 20
const SB_FREE_HEAD = 24
const SB_CATALOG_ROOT = 28
export const SUPERBLOCK_BYTES = 32

// ------------------------------------------------------------------ nodes (leaf and internal)

const NODE_SLOT_COUNT = 8
const NODE_LEVEL = 10
const NODE_CELL_START = 12
const NODE_FRAGMENTED = 16
const NODE_LINK0 = 20
const NODE_LINK1 = 24
export const NODE_HEADER_BYTES = 28
export const SLOT_BYTES = 2

/** keyLen:u16 flags:u8 valueLen:u32 */
export const LEAF_CELL_HEADER_BYTES = 7
export const LEAF_FLAG_OVERFLOW = 1
/** keyLen:u16 child:u32 */
export const INTERNAL_CELL_HEADER_BYTES = 6
export const OVERFLOW_POINTER_BYTES = 4
/** Deeper than this is corruption: even 512-byte pages with 64-byte keys reach 2^32 pages long before. */
export const TREE_LEVELS_MAX = 32

// ------------------------------------------------------------------ overflow and free pages

const OVERFLOW_NEXT = 8
const OVERFLOW_LENGTH = 12
export const OVERFLOW_HEADER_BYTES = 16
const FREE_NEXT = 8
export const FREE_HEADER_BYTES = 12

// ------------------------------------------------------------------ limits

/** Largest value a key-value pair may carry. */
export const MAX_VALUE_BYTES = 16 * 1024 * 1024

/**
 * Largest key: an eighth of a page (512 bytes at 4 KiB). Keys and inline
 * values are bounded so that two largest cells always fit in one page: any
 * full page plus one cell splits into two pages that both fit.
 */
export function maxKeyBytes(pageSize: number): number {
  return pageSize >>> 3
}

/** Values longer than a quarter page (1 KiB at 4 KiB) live in overflow chains. */
export function maxInlineValueBytes(pageSize: number): number {
  return pageSize >>> 2
}

/** Data bytes one overflow page carries. */
export function overflowCapacityBytes(pageSize: number): number {
  return pageSize - OVERFLOW_HEADER_BYTES
}

/** Bytes a node has for slots and cells. */
export function nodeCapacityBytes(pageSize: number): number {
  return pageSize - NODE_HEADER_BYTES
}

// ------------------------------------------------------------------ integers

export function readU16(p: Uint8Array, o: number): number {
  return p[o] | (p[o + 1] << 8)
}

export function readU32(p: Uint8Array, o: number): number {
  return (p[o] | (p[o + 1] << 8) | (p[o + 2] << 16) | (p[o + 3] << 24)) >>> 0
}

export function writeU16(p: Uint8Array, o: number, v: number): void {
  p[o] = v
  p[o + 1] = v >>> 8
}

export function writeU32(p: Uint8Array, o: number, v: number): void {
  p[o] = v
  p[o + 1] = v >>> 8
  p[o + 2] = v >>> 16
  p[o + 3] = v >>> 24
}

// ------------------------------------------------------------------ checksum

/** crc32c of four zero bytes: the checksum field's contribution when it is zeroed. */
const ZERO_FIELD_CRC = crc32c(new Uint8Array(4))

/** crc32c of the page with its checksum field taken as zero. */
export function pageChecksum(page: Uint8Array): number {
  return crc32c(page.subarray(CHECKSUM_OFFSET + 4), ZERO_FIELD_CRC)
}

/** Writes the page's checksum. The MTR layer calls this on every dirty page before shipping it. */
export function sealPage(page: Uint8Array): void {
  assert(page.length >= PAGE_BYTES_MIN, `sealPage: a page of ${page.length} bytes is below the ${PAGE_BYTES_MIN}-byte minimum`)
  writeU32(page, CHECKSUM_OFFSET, pageChecksum(page))
}

export function isAllZero(page: Uint8Array): boolean {
  for (let i = 0; i < page.length; i++) if (page[i] !== 0) return false
  return true
}

export function pageType(page: Uint8Array): number {
  return page[TYPE_OFFSET]
}

export function pageTypeName(type: number): string {
  switch (type) {
    case PAGE_TYPE_NONE: return 'never written'
    case PAGE_TYPE_SUPERBLOCK: return 'superblock'
    case PAGE_TYPE_LEAF: return 'leaf'
    case PAGE_TYPE_INTERNAL: return 'internal'
    case PAGE_TYPE_OVERFLOW: return 'overflow'
    case PAGE_TYPE_FREE: return 'free'
    default: return `unknown type ${type}`
  }
}

function setCommonHeader(page: Uint8Array, type: number): void {
  page.fill(0, 0, COMMON_HEADER_BYTES)
  page[TYPE_OFFSET] = type
}

/**
 * Checks a published page: its checksum, then its header and (for nodes)
 * its slot array and cell accounting. Returns null when the page is sane,
 * else a sentence saying what is wrong. Never throws on any input.
 */
export function checkPage(page: Uint8Array): string | null {
  const size = page.length
  if (size < PAGE_BYTES_MIN || size > PAGE_BYTES_MAX) return `page of ${size} bytes is outside ${PAGE_BYTES_MIN}..${PAGE_BYTES_MAX}`
  const stored = readU32(page, CHECKSUM_OFFSET)
  const computed = pageChecksum(page)
  if (stored !== computed) {
    if (isAllZero(page)) return 'page was never written (all zeros)'
    return `checksum mismatch: stored 0x${stored.toString(16)}, computed 0x${computed.toString(16)}`
  }
  const type = page[TYPE_OFFSET]
  if (page[5] !== 0 || page[6] !== 0 || page[7] !== 0) return 'reserved header bytes are not zero'
  switch (type) {
    case PAGE_TYPE_SUPERBLOCK: return checkSuperblock(page)
    case PAGE_TYPE_LEAF:
    case PAGE_TYPE_INTERNAL: return checkNode(page)
    case PAGE_TYPE_OVERFLOW: {
      const len = readU32(page, OVERFLOW_LENGTH)
      if (len === 0 || len > overflowCapacityBytes(size)) return `overflow page holds ${len} bytes, outside 1..${overflowCapacityBytes(size)}`
      return null
    }
    case PAGE_TYPE_FREE: return null
    default: return `unknown page type ${type}`
  }
}

// ------------------------------------------------------------------ superblock

export interface Superblock {
  formatVersion: number
  pageSize: number
  /** Next never-used page id. */
  highWater: number
  /** First page of the free list; 0 when the list is empty. */
  freeHead: number
  /** Root page of the catalog B+tree; 0 before it exists. */
  catalogRoot: number
}

function checkSuperblock(page: Uint8Array): string | null {
  if (readU32(page, SB_MAGIC) !== SUPERBLOCK_MAGIC) return `superblock magic is 0x${readU32(page, SB_MAGIC).toString(16)}, expected 0x${SUPERBLOCK_MAGIC.toString(16)}`
  if (readU32(page, SB_VERSION) !== FORMAT_VERSION) return `superblock format version ${readU32(page, SB_VERSION)} is not the supported ${FORMAT_VERSION}`
  if (readU32(page, SB_PAGE_SIZE) !== page.length) return `superblock says pageSize ${readU32(page, SB_PAGE_SIZE)}, the page has ${page.length} bytes`
  const hw = readU32(page, SB_HIGH_WATER)
  if (hw < 1) return 'superblock high-water mark is 0 (page 0 itself is in use)'
  const free = readU32(page, SB_FREE_HEAD)
  if (free >= hw) return `superblock free-list head ${free} is at or above the high-water mark ${hw}`
  const cat = readU32(page, SB_CATALOG_ROOT)
  if (cat >= hw) return `superblock catalog root ${cat} is at or above the high-water mark ${hw}`
  return null
}

/**
 * Decodes page 0: null when it is all zeros ("no superblock yet"). Checks
 * the header fields but not the checksum (the page may be dirty in the
 * caller's MTR). Throws HEXAD_CORRUPTION when page 0 is neither all zeros
 * nor a sane superblock.
 */
export function readSuperblock(page: Uint8Array): Superblock | null {
  if (page[TYPE_OFFSET] === PAGE_TYPE_NONE && isAllZero(page)) return null
  const problem = page[TYPE_OFFSET] !== PAGE_TYPE_SUPERBLOCK ? `page 0 has type ${pageTypeName(page[TYPE_OFFSET])}, expected a superblock` : checkSuperblock(page)
  if (problem !== null) throw new HexadError('HEXAD_CORRUPTION', `superblock: ${problem}`)
  return {
    formatVersion: readU32(page, SB_VERSION),
    pageSize: readU32(page, SB_PAGE_SIZE),
    highWater: readU32(page, SB_HIGH_WATER),
    freeHead: readU32(page, SB_FREE_HEAD),
    catalogRoot: readU32(page, SB_CATALOG_ROOT),
  }
}

/** Writes a whole superblock (page 0 is rewritten: only its header fields ever change). */
export function writeSuperblock(page: Uint8Array, sb: Omit<Superblock, 'formatVersion' | 'pageSize'>): void {
  assert(sb.highWater >= 1 && sb.highWater <= 0xffffffff, `superblock high-water mark ${sb.highWater} out of range`)
  assert(sb.freeHead < sb.highWater && sb.catalogRoot < sb.highWater, 'superblock points above its high-water mark')
  setCommonHeader(page, PAGE_TYPE_SUPERBLOCK)
  writeU32(page, SB_MAGIC, SUPERBLOCK_MAGIC)
  writeU32(page, SB_VERSION, FORMAT_VERSION)
  writeU32(page, SB_PAGE_SIZE, page.length)
  writeU32(page, SB_HIGH_WATER, sb.highWater)
  writeU32(page, SB_FREE_HEAD, sb.freeHead)
  writeU32(page, SB_CATALOG_ROOT, sb.catalogRoot)
}

export function setSuperblockHighWater(page: Uint8Array, v: number): void { writeU32(page, SB_HIGH_WATER, v) }
export function setSuperblockFreeHead(page: Uint8Array, v: number): void { writeU32(page, SB_FREE_HEAD, v) }
export function setSuperblockCatalogRoot(page: Uint8Array, v: number): void { writeU32(page, SB_CATALOG_ROOT, v) }

// ------------------------------------------------------------------ overflow and free pages

export function initOverflowPage(page: Uint8Array, next: number, length: number): void {
  assert(length > 0 && length <= overflowCapacityBytes(page.length), `overflow length ${length} outside 1..${overflowCapacityBytes(page.length)}`)
  setCommonHeader(page, PAGE_TYPE_OVERFLOW)
  writeU32(page, OVERFLOW_NEXT, next)
  writeU32(page, OVERFLOW_LENGTH, length)
}
export function overflowNext(page: Uint8Array): number { return readU32(page, OVERFLOW_NEXT) }
export function overflowLength(page: Uint8Array): number { return readU32(page, OVERFLOW_LENGTH) }

/**
 * Turns a page into a free-list entry: typed free, linked to `next`. Only
 * the header changes, so a free costs a few bytes of redo; the stale body
 * is never read (allocation hands out a zeroed page).
 */
export function initFreePage(page: Uint8Array, next: number): void {
  setCommonHeader(page, PAGE_TYPE_FREE)
  writeU32(page, FREE_NEXT, next)
}
export function freeNext(page: Uint8Array): number { return readU32(page, FREE_NEXT) }

// ------------------------------------------------------------------ node header

export function initNode(page: Uint8Array, type: number, level: number): void {
  assert(type === PAGE_TYPE_LEAF ? level === 0 : type === PAGE_TYPE_INTERNAL && level >= 1 && level <= TREE_LEVELS_MAX, `initNode: bad type ${type} / level ${level}`)
  page.fill(0, 0, NODE_HEADER_BYTES)
  page[TYPE_OFFSET] = type
  writeU16(page, NODE_LEVEL, level)
  writeU32(page, NODE_CELL_START, page.length)
}

export function isNodeType(type: number): boolean { return type === PAGE_TYPE_LEAF || type === PAGE_TYPE_INTERNAL }
export function slotCount(p: Uint8Array): number { return readU16(p, NODE_SLOT_COUNT) }
export function nodeLevel(p: Uint8Array): number { return readU16(p, NODE_LEVEL) }
export function cellStart(p: Uint8Array): number { return readU32(p, NODE_CELL_START) }
export function fragmentedBytes(p: Uint8Array): number { return readU32(p, NODE_FRAGMENTED) }
/** Leaf: left sibling (0 = none). */
export function leafLeft(p: Uint8Array): number { return readU32(p, NODE_LINK0) }
/** Leaf: right sibling (0 = none). */
export function leafRight(p: Uint8Array): number { return readU32(p, NODE_LINK1) }
export function setLeafLeft(p: Uint8Array, id: number): void { writeU32(p, NODE_LINK0, id) }
export function setLeafRight(p: Uint8Array, id: number): void { writeU32(p, NODE_LINK1, id) }
/** Internal: child 0. */
export function leftmostChild(p: Uint8Array): number { return readU32(p, NODE_LINK0) }
export function setLeftmostChild(p: Uint8Array, id: number): void { writeU32(p, NODE_LINK0, id) }

/** Offset of the cell of slot i. */
export function slotOffset(p: Uint8Array, i: number): number {
  const o = NODE_HEADER_BYTES + i * SLOT_BYTES
  return p[o] | (p[o + 1] << 8)
}

/** Child c of an internal page (0 <= c <= slotCount). */
export function childAt(p: Uint8Array, c: number): number {
  return c === 0 ? readU32(p, NODE_LINK0) : readU32(p, slotOffset(p, c - 1) + 2)
}

/** Bytes of slots and live cells. */
export function nodeUsedBytes(p: Uint8Array): number {
  return nodeCapacityBytes(p.length) - nodeFreeBytes(p)
}

/** Bytes a new slot plus cell may use, counting fragmented space (reclaimed by compaction). */
export function nodeFreeBytes(p: Uint8Array): number {
  return cellStart(p) - (NODE_HEADER_BYTES + slotCount(p) * SLOT_BYTES) + fragmentedBytes(p)
}

/** True when a cell of `cellBytes` (plus its slot) fits into the node. */
export function nodeFits(p: Uint8Array, cellBytes: number): boolean {
  return cellBytes + SLOT_BYTES <= nodeFreeBytes(p)
}

// ------------------------------------------------------------------ cells

/** Both cell kinds start with keyLen:u16. */
export function cellKeyLength(p: Uint8Array, off: number): number { return p[off] | (p[off + 1] << 8) }
export function leafKeyOffset(off: number): number { return off + LEAF_CELL_HEADER_BYTES }
export function internalKeyOffset(off: number): number { return off + INTERNAL_CELL_HEADER_BYTES }
export function leafCellFlags(p: Uint8Array, off: number): number { return p[off + 2] }
export function leafValueLength(p: Uint8Array, off: number): number { return readU32(p, off + 3) }
/** Where the inline value (or the overflow head pointer) starts. */
export function leafBodyOffset(p: Uint8Array, off: number): number { return off + LEAF_CELL_HEADER_BYTES + cellKeyLength(p, off) }
export function leafOverflowHead(p: Uint8Array, off: number): number { return readU32(p, leafBodyOffset(p, off)) }
export function internalCellChild(p: Uint8Array, off: number): number { return readU32(p, off + 2) }
export function setInternalCellChild(p: Uint8Array, off: number, id: number): void { writeU32(p, off + 2, id) }

export function leafCellBytes(keyBytes: number, valueBytes: number, overflow: boolean): number {
  return LEAF_CELL_HEADER_BYTES + keyBytes + (overflow ? OVERFLOW_POINTER_BYTES : valueBytes)
}

export function internalCellBytes(keyBytes: number): number {
  return INTERNAL_CELL_HEADER_BYTES + keyBytes
}

/** Size of the cell at `off`, by the page's type (read from `p`). */
export function cellBytesAt(p: Uint8Array, off: number): number {
  const keyLen = p[off] | (p[off + 1] << 8)
  if (p[TYPE_OFFSET] === PAGE_TYPE_INTERNAL) return INTERNAL_CELL_HEADER_BYTES + keyLen
  return LEAF_CELL_HEADER_BYTES + keyLen + ((p[off + 2] & LEAF_FLAG_OVERFLOW) !== 0 ? OVERFLOW_POINTER_BYTES : readU32(p, off + 3))
}

/**
 * Writes a leaf cell at `off` of `dst` (a page or a cell buffer). `value` is
 * the inline value, or null with `overflowHead` set for an overflow value of
 * `valueBytes` bytes.
 */
export function writeLeafCell(dst: Uint8Array, off: number, key: Uint8Array, valueBytes: number, value: Uint8Array | null, overflowHead: number): void {
  writeU16(dst, off, key.length)
  dst[off + 2] = value === null ? LEAF_FLAG_OVERFLOW : 0
  writeU32(dst, off + 3, valueBytes)
  dst.set(key, off + LEAF_CELL_HEADER_BYTES)
  if (value === null) writeU32(dst, off + LEAF_CELL_HEADER_BYTES + key.length, overflowHead)
  else dst.set(value, off + LEAF_CELL_HEADER_BYTES + key.length)
}

/** Builds an internal cell (key, child) in a buffer of its own. */
export function makeInternalCell(key: Uint8Array, child: number): Uint8Array {
  const cell = new Uint8Array(INTERNAL_CELL_HEADER_BYTES + key.length)
  writeU16(cell, 0, key.length)
  writeU32(cell, 2, child)
  cell.set(key, INTERNAL_CELL_HEADER_BYTES)
  return cell
}

// ------------------------------------------------------------------ slotted-page edits

/**
 * Makes room for a cell of `cellBytes` at slot index `i` and returns the
 * cell's offset; the caller writes the cell there. Moves only the slot tail
 * (2 bytes per later slot) and compacts only when the contiguous gap is too
 * small but fragmented space makes up the difference.
 */
export function reserveCell(p: Uint8Array, i: number, cellBytes: number): number {
  const n = slotCount(p)
  assert(i >= 0 && i <= n, `reserveCell: slot index ${i} outside 0..${n}`)
  assert(nodeFits(p, cellBytes), `reserveCell: a ${cellBytes}-byte cell does not fit (${nodeFreeBytes(p)} bytes free)`)
  const slotEnd = NODE_HEADER_BYTES + n * SLOT_BYTES
  if (cellStart(p) - slotEnd < cellBytes + SLOT_BYTES) compactNode(p)
  const off = cellStart(p) - cellBytes
  writeU32(p, NODE_CELL_START, off)
  const at = NODE_HEADER_BYTES + i * SLOT_BYTES
  if (i < n) p.copyWithin(at + SLOT_BYTES, at, slotEnd)
  writeU16(p, at, off)
  writeU16(p, NODE_SLOT_COUNT, n + 1)
  return off
}

/** Inserts a whole cell (bytes `src[srcOff, srcOff + len)`) at slot index i. */
export function insertCellBytes(p: Uint8Array, i: number, src: Uint8Array, srcOff: number, len: number): void {
  const off = reserveCell(p, i, len)
  if (src === p) p.copyWithin(off, srcOff, srcOff + len)
  else p.set(src.subarray(srcOff, srcOff + len), off)
}

/**
 * Appends a cell at the end of the slot array without compaction: for
 * rebuilding a freshly initialized node from sorted cells.
 */
export function appendCellBytes(p: Uint8Array, src: Uint8Array, srcOff: number, len: number): void {
  const n = slotCount(p)
  const off = cellStart(p) - len
  assert(off >= NODE_HEADER_BYTES + (n + 1) * SLOT_BYTES, `appendCellBytes: a ${len}-byte cell does not fit`)
  p.set(src.subarray(srcOff, srcOff + len), off)
  writeU32(p, NODE_CELL_START, off)
  writeU16(p, NODE_HEADER_BYTES + n * SLOT_BYTES, off)
  writeU16(p, NODE_SLOT_COUNT, n + 1)
}

/** Removes slot i; its cell becomes dead space (or returns to the gap when it is the lowest cell). */
export function removeCell(p: Uint8Array, i: number): void {
  const n = slotCount(p)
  assert(i >= 0 && i < n, `removeCell: slot index ${i} outside 0..${n - 1}`)
  const off = slotOffset(p, i)
  const bytes = cellBytesAt(p, off)
  if (off === cellStart(p)) writeU32(p, NODE_CELL_START, off + bytes)
  else writeU32(p, NODE_FRAGMENTED, fragmentedBytes(p) + bytes)
  const at = NODE_HEADER_BYTES + i * SLOT_BYTES
  p.copyWithin(at, at + SLOT_BYTES, NODE_HEADER_BYTES + n * SLOT_BYTES)
  writeU16(p, NODE_SLOT_COUNT, n - 1)
  if (n === 1) { // the node is empty: the whole cell area is free again
    writeU32(p, NODE_CELL_START, p.length)
    writeU32(p, NODE_FRAGMENTED, 0)
  }
}

/**
 * Per-page-size scratch pages for compaction and splits. Used only inside
 * synchronous sections (never across an await), so interleaved async
 * operations cannot see each other's scratch contents.
 */
const scratchPages = new Map<number, Uint8Array[]>()

export function scratchPage(pageSize: number, k: 0 | 1): Uint8Array {
  let list = scratchPages.get(pageSize)
  if (list === undefined) {
    list = [new Uint8Array(pageSize), new Uint8Array(pageSize)]
    scratchPages.set(pageSize, list)
  }
  return list[k]
}

/** Packs the live cells against the end of the page, dropping dead space. */
export function compactNode(p: Uint8Array): void {
  // Cells keep their physical order and slide toward the end of the page, highest first, so a
  // cell only ever moves up and never over one not yet moved: done in place, and each run of
  // adjacent cells is one memmove that the MTR can ship as a `move` op (a few bytes of redo
  // instead of a diff of the whole cell area).
  const n = slotCount(p)
  const offs: number[] = new Array(n)
  const lens: number[] = new Array(n)
  const order: number[] = new Array(n)
  for (let i = 0; i < n; i++) { offs[i] = slotOffset(p, i); lens[i] = cellBytesAt(p, offs[i]); order[i] = i }
  order.sort((a, b) => offs[b] - offs[a])
  let end = p.length
  let k = 0
  while (k < n) {
    // a run: cells contiguous in the page, each ending where the one above it starts
    const top = offs[order[k]] + lens[order[k]]
    let bottom = offs[order[k]]
    let j = k + 1
    while (j < n && offs[order[j]] + lens[order[j]] === bottom) bottom = offs[order[j++]]
    const len = top - bottom
    const delta = end - top
    if (delta !== 0) {
      p.copyWithin(bottom + delta, bottom, top)
      moveSink?.(p, bottom, bottom + delta, len)
      for (let r = k; r < j; r++) writeU16(p, NODE_HEADER_BYTES + order[r] * SLOT_BYTES, offs[order[r]] + delta)
    }
    end -= len
    k = j
  }
  writeU32(p, NODE_CELL_START, end)
  writeU32(p, NODE_FRAGMENTED, 0)
}

/** Told of every memmove compactNode makes (the MTR turns them into `move` ops); null: nobody listens. */
let moveSink: ((page: Uint8Array, src: number, dst: number, len: number) => void) | null = null

/** Sets the listener for compactNode's memmoves. */
export function setMoveSink(sink: typeof moveSink): void {
  moveSink = sink
}

/**
 * Replaces the inline value of the leaf cell at `off` with a value no longer
 * than the one there (same key, same size or shorter): the cell stays where
 * it is and the bytes it no longer uses count as fragmented. A few bytes of
 * redo instead of a cell removed and inserted (and maybe a page compacted).
 */
export function shrinkLeafValue(p: Uint8Array, off: number, value: Uint8Array): void {
  assert(p[TYPE_OFFSET] === PAGE_TYPE_LEAF && (leafCellFlags(p, off) & LEAF_FLAG_OVERFLOW) === 0, 'shrinkLeafValue: not an inline leaf cell')
  const old = leafValueLength(p, off)
  assert(value.length <= old, `shrinkLeafValue: a ${value.length}-byte value does not fit the ${old}-byte one`)
  writeU32(p, off + 3, value.length)
  p.set(value, leafBodyOffset(p, off))
  if (old !== value.length) writeU32(p, NODE_FRAGMENTED, fragmentedBytes(p) + old - value.length)
}

function checkNode(page: Uint8Array): string | null {
  const size = page.length
  const type = page[TYPE_OFFSET]
  const level = nodeLevel(page)
  if (type === PAGE_TYPE_LEAF && level !== 0) return `leaf has level ${level}, expected 0`
  if (type === PAGE_TYPE_INTERNAL && (level < 1 || level > TREE_LEVELS_MAX)) return `internal page has level ${level}, outside 1..${TREE_LEVELS_MAX}`
  const n = slotCount(page)
  const start = cellStart(page)
  const slotEnd = NODE_HEADER_BYTES + n * SLOT_BYTES
  if (start < slotEnd || start > size) return `cell area start ${start} is outside ${slotEnd}..${size} (${n} slots)`
  const frag = fragmentedBytes(page)
  if (frag > size - start) return `fragmented bytes ${frag} exceed the ${size - start}-byte cell area`
  if (type === PAGE_TYPE_INTERNAL && (leftmostChild(page) === 0 || readU32(page, NODE_LINK1) !== 0)) return 'internal page has no leftmost child or a non-zero second link'
  let live = 0
  const keyMax = maxKeyBytes(size)
  for (let i = 0; i < n; i++) {
    const off = slotOffset(page, i)
    const headerBytes = type === PAGE_TYPE_LEAF ? LEAF_CELL_HEADER_BYTES : INTERNAL_CELL_HEADER_BYTES
    if (off < start || off + headerBytes > size) return `slot ${i} points at ${off}, outside the cell area ${start}..${size}`
    const keyLen = cellKeyLength(page, off)
    if (keyLen < 1 || keyLen > keyMax) return `slot ${i}: key length ${keyLen} outside 1..${keyMax}`
    if (type === PAGE_TYPE_LEAF) {
      const flags = leafCellFlags(page, off)
      if ((flags & ~LEAF_FLAG_OVERFLOW) !== 0) return `slot ${i}: unknown cell flags ${flags}`
    }
    const bytes = cellBytesAt(page, off)
    if (off + bytes > size) return `slot ${i}: cell of ${bytes} bytes at ${off} runs past the page end`
    if (type === PAGE_TYPE_INTERNAL && internalCellChild(page, off) === 0) return `slot ${i}: child page id is 0`
    live += bytes
  }
  if (live + frag !== size - start) return `cell accounting is off: ${live} live + ${frag} fragmented != ${size - start} bytes of cell area`
  return null
}
