/**
 * The compute node's buffer cache: page images bounded by bytes, evicted by
 * CLOCK (an LRU approximation), filled from the volume on a miss.
 *
 * Invariants:
 * - The cache holds the newest published image of each page it holds (an
 *   MTR publishes its pages here, all at once, when it ships its redo).
 * - A page whose redo is not yet durable (a published MTR whose write has
 *   not resolved) is pinned: evicting it would lose the only copy of a state
 *   that the volume cannot serve yet. It becomes evictable once durable
 *   (page LSN <= VDL); a miss then reads it back at the VDL.
 * - Concurrent misses on one page share one volume read, and a load never
 *   installs or hands out an image older than one published while it was in
 *   flight (even if that published entry was evicted before the load ended):
 *   such a load is repeated.
 */
import { HexadError } from '../common/errors.js'
import type { Volume } from '../volume/volume.js'
import { checkPage } from './page-format.js'

interface Entry {
  image: Uint8Array
  /** publications whose redo is not yet durable */
  pins: number
  /** used since the eviction hand last passed (CLOCK's second chance) */
  ref: boolean
}

export interface BufferCacheStats {
  pages: number
  bytes: number
  capacityBytes: number
  hits: number
  misses: number
  evictions: number
  pinned: number
}

/** Where misses are read from: the volume, or (on a read replica) the writer's volume by message. */
export type PageSource = Pick<Volume, 'readPage'>

export class BufferCache {
  readonly #vol: PageSource
  readonly capacityBytes: number
  readonly #pages = new Map<number, Entry>()
  /**
   * The image of every page in #pages, indexed by page id (ids are dense:
   * the allocator hands them out from 1 up), for peek: an array index instead
   * of a hash lookup on the warm read path.
   */
  readonly #images: Array<Uint8Array | undefined> = []
  readonly #loading = new Map<number, Promise<Uint8Array>>()
  /** pages published while a load of them was in flight: that load's image is older than the page */
  readonly #staleLoads = new Set<number>()
  #bytes = 0
  /** bumped at every publication: a reader that saw it change during an async descent starts over */
  publishes = 0
  #hits = 0
  #misses = 0
  #evictions = 0

  constructor(vol: PageSource, capacityBytes: number) {
    this.#vol = vol
    this.capacityBytes = capacityBytes
  }

  /** The page's current image (shared: callers must not modify it). */
  get(pageId: number): Promise<Uint8Array> | Uint8Array {
    const e = this.#pages.get(pageId)
    if (e) {
      this.#hits++
      e.ref = true
      return e.image
    }
    let p = this.#loading.get(pageId)
    if (!p) {
      this.#misses++
      p = this.#vol.readPage(pageId).then(image => {
        this.#loading.delete(pageId)
        if (this.#staleLoads.delete(pageId)) {
          // An MTR published this page while we read it (at an older VDL); that entry may
          // even be evicted again by now. Our image is stale: read again.
          return this.get(pageId)
        }
        // A page the volume returns went through storage checksums; this checks the compute's own
        // format and seal (a page never written is all zeros, which is fine).
        const problem = isZero(image) ? null : checkPage(image)
        if (problem) throw new HexadError('HEXAD_CORRUPTION', `page ${pageId} read from the volume is not a valid page: ${problem}`)
        const now = this.#pages.get(pageId)
        if (now) return now.image // published while we read: the published image is newer
        this.#insert(pageId, { image, pins: 0, ref: false })
        return image
      }, err => { this.#loading.delete(pageId); throw err })
      this.#loading.set(pageId, p)
    }
    return p
  }

  /** The page's image if it is cached (no LRU touch, no load): for synchronous fast paths. */
  peek(pageId: number): Uint8Array | undefined {
    const image = this.#images[pageId]
    if (image !== undefined) this.#hits++
    return image
  }

  /** Installs an image known to be current and durable (unpinned), e.g. a promoted replica's cache. */
  seed(pageId: number, image: Uint8Array): void {
    if (this.#pages.has(pageId) || this.#bytes + image.length > this.capacityBytes) return
    this.#insert(pageId, { image, pins: 0, ref: false })
  }

  /** Every cached page (for handing a replica's cache to a promoted writer). */
  entries(): Array<[number, Uint8Array]> {
    return [...this.#pages].map(([id, e]) => [id, e.image])
  }

  /** Installs an MTR's image of a page and pins it until `unpin` (its redo is durable). */
  publish(pageId: number, image: Uint8Array): void {
    this.publishes++
    if (this.#loading.has(pageId)) this.#staleLoads.add(pageId)
    const e = this.#pages.get(pageId)
    if (e) {
      this.#bytes += image.length - e.image.length
      e.image = image
      this.#images[pageId] = image
      e.pins++
      e.ref = true
    } else {
      this.#insert(pageId, { image, pins: 1, ref: false })
    }
  }

  unpin(pageId: number): void {
    const e = this.#pages.get(pageId)
    if (e && e.pins > 0) e.pins--
    this.#evict()
  }

  stats(): BufferCacheStats {
    let pinned = 0
    for (const e of this.#pages.values()) if (e.pins > 0) pinned++
    return { pages: this.#pages.size, bytes: this.#bytes, capacityBytes: this.capacityBytes, hits: this.#hits, misses: this.#misses, evictions: this.#evictions, pinned }
  }

  #insert(pageId: number, e: Entry): void {
    this.#pages.set(pageId, e)
    this.#images[pageId] = e.image
    this.#bytes += e.image.length
    this.#evict()
  }

  /**
   * CLOCK (second chance), an approximation of LRU that costs a hit nothing
   * but a flag: the map's insertion order is the clock; the hand takes the
   * oldest entry, evicts it if it was not used since the hand last passed
   * (and is not pinned), else clears its flag and moves it to the back.
   */
  #evict(): void {
    if (this.#bytes <= this.capacityBytes) return
    // Every entry is looked at most twice per call (once to clear its flag, once to evict it).
    let budget = this.#pages.size * 2
    for (const [id, e] of this.#pages) {
      if (this.#bytes <= this.capacityBytes || budget-- <= 0) break
      this.#pages.delete(id)
      if (e.pins > 0 || e.ref) {
        e.ref = false
        this.#pages.set(id, e) // second chance: to the back of the clock
        continue
      }
      this.#images[id] = undefined
      this.#bytes -= e.image.length
      this.#evictions++
    }
  }
}

function isZero(page: Uint8Array): boolean {
  for (let i = 0; i < page.length; i++) if (page[i] !== 0) return false
  return true
}
