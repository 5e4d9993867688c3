/**
 * An in-memory PageAccess for unit tests: the simulated side of the MTR seam.
 *
 * Model: `MemoryPages` holds the published pages (a Map; a missing page
 * reads as zeros). `begin()` starts an MTR with private copies: `write`
 * copies a published page on first use, `create` hands out a zeroed page,
 * `read` prefers the MTR's copy. `commit()` seals every dirty page (as the
 * real MTR layer does before shipping) and publishes them all at once;
 * `abort()` drops them. Published arrays are never written again, so a
 * page read earlier stays a consistent snapshot.
 */
import type { PageAccess } from '../../engine/compute/page-access.js'
import { sealPage } from '../../engine/compute/page-format.js'

export class MemoryPages {
  readonly pageSize: number
  /** Published pages. Tests may plant corruption here directly. */
  readonly pages = new Map<number, Uint8Array>()
  commits = 0
  /** Pages handed out by create() (allocations), over all MTRs. */
  creates = 0

  constructor(pageSize = 4096) {
    this.pageSize = pageSize
  }

  begin(): MemoryMtr {
    return new MemoryMtr(this)
  }

  /** Runs `fn` in one MTR: commits when it resolves, aborts when it throws. */
  async mtr<T>(fn: (pa: MemoryMtr) => Promise<T>): Promise<T> {
    const m = this.begin()
    try {
      const result = await fn(m)
      m.commit()
      return result
    } catch (err) {
      m.abort()
      throw err
    }
  }
}

export class MemoryMtr implements PageAccess {
  readonly pageSize: number
  readonly #store: MemoryPages
  readonly #dirty = new Map<number, Uint8Array>()
  #open = true

  constructor(store: MemoryPages) {
    this.#store = store
    this.pageSize = store.pageSize
  }

  async read(pageId: number): Promise<Uint8Array> {
    this.#check(pageId)
    return this.#dirty.get(pageId) ?? this.#store.pages.get(pageId) ?? new Uint8Array(this.pageSize)
  }

  async write(pageId: number): Promise<Uint8Array> {
    this.#check(pageId)
    let page = this.#dirty.get(pageId)
    if (page === undefined) {
      page = this.#store.pages.get(pageId)?.slice() ?? new Uint8Array(this.pageSize)
      this.#dirty.set(pageId, page)
    }
    return page
  }

  create(pageId: number): Uint8Array {
    this.#check(pageId)
    this.#store.creates++
    let page = this.#dirty.get(pageId)
    if (page === undefined) this.#dirty.set(pageId, (page = new Uint8Array(this.pageSize)))
    else page.fill(0)
    return page
  }

  get dirtyPages(): number {
    return this.#dirty.size
  }

  commit(): void {
    this.#check(0)
    for (const [id, page] of this.#dirty) {
      sealPage(page)
      this.#store.pages.set(id, page)
    }
    this.#open = false
    this.#store.commits++
  }

  abort(): void {
    this.#open = false
  }

  #check(pageId: number): void {
    if (!this.#open) throw new Error('MemoryMtr used after commit or abort')
    if (!Number.isInteger(pageId) || pageId < 0) throw new Error(`bad page id ${pageId}`)
  }
}
