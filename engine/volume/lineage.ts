/**
 * Clones and their parents, in one process.
 *
 * A clone's volume is metadata, `(parent dir, clone LSN)`, and segments of
 * its own that start empty. A page the clone never wrote is read from the
 * parent at the clone LSN (the parent pins that read point in its
 * volume.meta until the clone is destroyed); the first write of such a page
 * makes the clone's segments ask for the parent's image as their base
 * version. A write on either side is never visible to the other: the clone
 * reads the parent only at the clone LSN, and the parent never reads the
 * clone.
 *
 * The parent is read through whichever handle on its directory is live in
 * this process (the application's own cluster, when it has the parent
 * open), or through a handle the link opens itself; a handle that closes or
 * is fenced under a read is replaced and the read retried. A parent open in
 * another process cannot be read (its directory is locked there).
 */
import path from 'node:path'
import { HexadError } from '../common/errors.js'
import type { Volume } from './volume.js'

const live = new Map<string, Volume>()

/** The handle that most recently opened `dir` in this process, if it is still usable. */
export function liveVolume(dir: string): Volume | undefined {
  const v = live.get(path.resolve(dir))
  return v && v.usable ? v : undefined
}

export function registerLive(v: Volume): void { live.set(v.dir, v) }
export function unregisterLive(v: Volume): void { if (live.get(v.dir) === v) live.delete(v.dir) }

export class ParentLink {
  readonly dir: string
  readonly lsn: number
  readonly #open: (dir: string) => Promise<Volume>
  /** a handle this link opened (closed with the link) */
  #owned: Volume | null = null
  #opening: Promise<Volume> | null = null
  #closed = false

  constructor(dir: string, lsn: number, open: (dir: string) => Promise<Volume>) {
    this.dir = path.resolve(dir)
    this.lsn = lsn
    this.#open = open
  }

  /** The parent's image of `pageId` at the clone LSN. */
  async read(pageId: number): Promise<Uint8Array> {
    for (let attempt = 0; ; attempt++) {
      const v = await this.volume()
      try {
        return await v.readPage(pageId, { at: this.lsn })
      } catch (err) {
        const code = (err as HexadError).code
        // The handle closed or another one opened the parent meanwhile: take the live one and retry.
        if ((code === 'HEXAD_CLOSED' || code === 'HEXAD_FENCED') && attempt < 3 && !this.#closed) continue
        throw err
      }
    }
  }

  /** A usable handle on the parent: the live one in this process, or one this link opens. */
  async volume(): Promise<Volume> {
    if (this.#closed) throw new HexadError('HEXAD_CLOSED', 'the clone is closed')
    const v = liveVolume(this.dir)
    if (v) return v
    if (this.#owned && !this.#owned.usable) { const old = this.#owned; this.#owned = null; await old.close().catch(() => {}) }
    this.#opening ??= (async () => {
      try {
        const opened = await this.#open(this.dir)
        this.#owned = opened
        return opened
      } catch (err) {
        throw new HexadError((err as HexadError).code ?? 'HEXAD_IO', `cannot read the parent volume ${this.dir} of this clone: ${(err as Error).message}`)
      } finally {
        this.#opening = null
      }
    })()
    return this.#opening
  }

  async close(): Promise<void> {
    this.#closed = true
    await this.#opening?.catch(() => {})
    const o = this.#owned
    this.#owned = null
    await o?.close()
  }
}
