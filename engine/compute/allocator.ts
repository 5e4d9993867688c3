/**
 * Page allocation for the compute node: the superblock (page 0) records the
 * high-water mark (ids at or above it were never used) and the head of a
 * free list threaded through freed pages.
 *
 * Model: every page id below the high-water mark is in exactly one place —
 * the superblock (id 0), a B+tree (node or overflow page), or the free
 * list. `allocate` pops the free list, else bumps the high-water mark;
 * `free` pushes. Both run inside the caller's MTR, so an allocation is
 * undone with the MTR that made it, and a page freed and reallocated in the
 * same MTR is fine.
 *
 * Invariants: page 0 is never allocated or freed; a free page has type
 * free (its body is stale and never read: `allocate` returns a zeroed page,
 * and freeing rewrites only the header, a few bytes of redo); the free list
 * ends with 0 and has no cycles; freeing a page that is already free is a
 * programmer error (it would make a cycle) and crashes.
 */
import { HexadError, assert } from '../common/errors.js'
import type { PageAccess } from './page-access.js'
import type { Superblock } from './page-format.js'
import {
  PAGE_TYPE_FREE, PAGE_TYPE_LEAF, PAGE_BYTES_MAX, PAGE_BYTES_MIN, SUPERBLOCK_PAGE_ID, freeNext, initFreePage, initNode,
  pageType, pageTypeName, readSuperblock, setSuperblockCatalogRoot, setSuperblockFreeHead, setSuperblockHighWater, writeSuperblock,
} from './page-format.js'

export { readSuperblock } from './page-format.js'
export type { Superblock } from './page-format.js'

/** Page ids are u32 in the format. */
export const PAGE_ID_MAX = 0xffffffff

/**
 * Writes the superblock if page 0 is all zeros (a new volume) and creates
 * the catalog root as an empty leaf. Returns the catalog root's page id,
 * also when the superblock already existed (idempotent).
 */
export async function initSuperblock(pa: PageAccess): Promise<number> {
  checkPageSize(pa.pageSize)
  const existing = readSuperblock(await pa.read(SUPERBLOCK_PAGE_ID))
  if (existing !== null) {
    if (existing.catalogRoot === 0) throw new HexadError('HEXAD_CORRUPTION', 'superblock has no catalog root')
    return existing.catalogRoot
  }
  const sbPage = await pa.write(SUPERBLOCK_PAGE_ID)
  writeSuperblock(sbPage, { highWater: 1, freeHead: 0, catalogRoot: 0 })
  const { pageId, page } = await allocate(pa)
  initNode(page, PAGE_TYPE_LEAF, 0)
  setSuperblockCatalogRoot(await pa.write(SUPERBLOCK_PAGE_ID), pageId)
  return pageId
}

/**
 * Takes a page out of the free list, or a never-used id, and returns it
 * zeroed and writable (`pa.create`). The caller gives it a type.
 */
export async function allocate(pa: PageAccess): Promise<{ pageId: number; page: Uint8Array }> {
  const sbPage = await pa.write(SUPERBLOCK_PAGE_ID)
  const sb = superblockOf(sbPage)
  let pageId: number
  if (sb.freeHead !== 0) {
    pageId = sb.freeHead
    const freed = await pa.read(pageId)
    if (pageType(freed) !== PAGE_TYPE_FREE) throw new HexadError('HEXAD_CORRUPTION', `free-list page ${pageId} has type ${pageTypeName(pageType(freed))}, expected free`)
    const next = freeNext(freed)
    if (next >= sb.highWater || next === pageId) throw new HexadError('HEXAD_CORRUPTION', `free-list page ${pageId} links to ${next}, outside 1..${sb.highWater - 1} or itself`)
    setSuperblockFreeHead(sbPage, next)
  } else {
    pageId = sb.highWater
    assert(pageId < PAGE_ID_MAX, `page ids exhausted at ${pageId}`)
    setSuperblockHighWater(sbPage, pageId + 1)
  }
  return { pageId, page: pa.create(pageId) }
}

/** Returns a page to the free list: typed free, pushed on the head. */
export async function free(pa: PageAccess, pageId: number): Promise<void> {
  const sbPage = await pa.write(SUPERBLOCK_PAGE_ID)
  const sb = superblockOf(sbPage)
  assert(Number.isInteger(pageId) && pageId > 0 && pageId < sb.highWater, `free: page ${pageId} is not an allocated page (1..${sb.highWater - 1})`)
  const page = await pa.write(pageId)
  assert(pageType(page) !== PAGE_TYPE_FREE, `free: page ${pageId} is already free`)
  initFreePage(page, sb.freeHead)
  setSuperblockFreeHead(sbPage, pageId)
}

/** The free list, head first. Throws HEXAD_CORRUPTION on a cycle or a non-free page in it. */
export async function listFreePages(pa: PageAccess): Promise<number[]> {
  const sb = superblockOf(await pa.read(SUPERBLOCK_PAGE_ID))
  const out: number[] = []
  const seen = new Set<number>()
  for (let id = sb.freeHead; id !== 0;) {
    if (seen.has(id) || id >= sb.highWater) throw new HexadError('HEXAD_CORRUPTION', `free list revisits page ${id} or leaves the allocated range 1..${sb.highWater - 1}`)
    seen.add(id)
    const page = await pa.read(id)
    if (pageType(page) !== PAGE_TYPE_FREE) throw new HexadError('HEXAD_CORRUPTION', `free-list page ${id} has type ${pageTypeName(pageType(page))}, expected free`)
    out.push(id)
    id = freeNext(page)
  }
  return out
}

/** The superblock of a volume that has one (HEXAD_CORRUPTION when page 0 is all zeros or damaged). */
function superblockOf(page: Uint8Array): Superblock {
  const sb = readSuperblock(page)
  if (sb === null) throw new HexadError('HEXAD_CORRUPTION', 'page 0 is all zeros: the volume has no superblock (initSuperblock was never run)')
  return sb
}

function checkPageSize(pageSize: number): void {
  if (!Number.isInteger(pageSize) || pageSize < PAGE_BYTES_MIN || pageSize > PAGE_BYTES_MAX || (pageSize & (pageSize - 1)) !== 0) {
    throw new HexadError('HEXAD_BAD_INPUT', `page size ${pageSize} is not a power of two in ${PAGE_BYTES_MIN}..${PAGE_BYTES_MAX}`)
  }
}
