/**
 * The seam between the B+tree (which knows what a page means) and the
 * mini-transaction layer (which knows how pages reach the volume).
 *
 * Every B+tree operation runs inside one mini-transaction (MTR) and touches
 * pages only through a PageAccess. The MTR gives copy-on-write pages: a
 * `write()` returns this MTR's private copy, and nothing becomes visible to
 * other readers until the MTR publishes all its pages at once (atomically,
 * in one synchronous step) and ships their redo (a diff of each page against
 * its image before the MTR) to the volume as one MTR. A reader therefore
 * never sees half a split.
 *
 * Contract for implementations and callers:
 * - `read(id)` returns the page as this MTR sees it (its own changes
 *   included). Callers must not modify the returned bytes.
 * - `write(id)` returns a writable copy (the same copy on every call within
 *   the MTR) and marks the page dirty.
 * - Both return the page itself when it is at hand (cached, or already this
 *   MTR's) and a promise only when it must be read: a hot path tests for a
 *   Uint8Array and awaits only a miss (an `await` of a value still costs a
 *   microtask turn). `await pa.read(id)` is always right.
 * - `create(id)` returns a zeroed writable page for a page id that is not in
 *   use (just allocated), marks it dirty, and does not read the volume.
 * - Page ids are integers >= 0. Page 0 is the superblock (allocator state);
 *   its layout belongs to page-format.ts.
 */
export interface PageAccess {
  readonly pageSize: number
  read(pageId: number): Uint8Array | Promise<Uint8Array>
  write(pageId: number): Uint8Array | Promise<Uint8Array>
  create(pageId: number): Uint8Array
}
