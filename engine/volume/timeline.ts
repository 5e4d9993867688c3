/**
 * The timeline: which durable LSN a volume was at, when. Backtrack turns a
 * moment into an LSN with it ("the VDL at that time"), and it bounds the
 * backtrack window. Kept in `<dir>/timeline` as fixed-size entries:
 *
 *   entry := magic:u32 = 0x454E4C54 ('TLNE')  crc:u32 (crc32c of bytes 8..23)  ms:f64  lsn:f64
 *
 * Entries are appended in time order; a damaged or torn entry ends the file
 * (what follows it is dropped at open). A sample is taken at most every
 * `TIMELINE_SAMPLE_MS` while the VDL moves, and once more when it stops, so
 * the LSN of any moment is at most that far behind the VDL it really had.
 */
import path from 'node:path'
import { crc32c } from '../../native-bindings/index.js'
import type { Disk } from '../storage/disk.js'
import { writeFileDurable } from '../storage/disk.js'

const MAGIC = 0x454e4c54
export const TIMELINE_ENTRY_BYTES = 24
export const TIMELINE_SAMPLE_MS = 50

export class Timeline {
  /** [ms since the epoch, lsn], ascending in both */
  readonly entries: Array<[number, number]> = []
  readonly path: string
  readonly #disk: Disk
  #fd = -1
  #size = 0

  constructor(disk: Disk, dir: string) {
    this.#disk = disk
    this.path = path.join(dir, 'timeline')
    if (!disk.exists(this.path)) return
    const bytes = disk.readFile(this.path)
    const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    let off = 0
    for (; off + TIMELINE_ENTRY_BYTES <= bytes.length; off += TIMELINE_ENTRY_BYTES) {
      if (dv.getUint32(off, true) !== MAGIC || dv.getUint32(off + 4, true) !== crc32c(bytes.subarray(off + 8, off + TIMELINE_ENTRY_BYTES))) break
      const ms = dv.getFloat64(off + 8, true)
      const lsn = dv.getFloat64(off + 16, true)
      const last = this.entries[this.entries.length - 1]
      if (last && (ms < last[0] || lsn < last[1])) break
      this.entries.push([ms, lsn])
    }
    // A torn or damaged tail is cut so the next append follows the last good entry.
    if (off !== bytes.length) this.#rewrite()
  }

  get last(): [number, number] | undefined { return this.entries[this.entries.length - 1] }
  get first(): [number, number] | undefined { return this.entries[0] }

  /** Appends a sample and makes it durable. */
  append(ms: number, lsn: number): void {
    const last = this.last
    if (last && lsn < last[1]) throw new Error(`timeline: LSN ${lsn} is below the last sample's ${last[1]}`)
    ms = Math.max(ms, last?.[0] ?? 0)
    if (last && last[1] === lsn) return
    this.entries.push([ms, lsn])
    if (this.#fd < 0) {
      this.#fd = this.#disk.open(this.path, this.#disk.exists(this.path) ? 'r+' : 'w+')
      this.#size = this.#disk.size(this.#fd)
    }
    const b = encodeEntry(ms, lsn)
    this.#disk.write(this.#fd, b, 0, b.length, this.#size)
    this.#size += b.length
    this.#disk.fdatasync(this.#fd)
  }

  /** The LSN the volume was at at time `ms` (the last sample at or before it), or undefined before the first. */
  lsnAt(ms: number): number | undefined {
    let lo = 0
    let hi = this.entries.length - 1
    if (hi < 0 || this.entries[0][0] > ms) return undefined
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1
      if (this.entries[mid][0] <= ms) lo = mid; else hi = mid - 1
    }
    return this.entries[lo][1]
  }

  /** The first time the volume was at `lsn` or beyond, or undefined. */
  timeOf(lsn: number): number | undefined {
    for (const [ms, l] of this.entries) if (l >= lsn) return ms
    return undefined
  }

  /**
   * Forgets samples older than `ms`, keeping the last one before it (the
   * state at `ms` itself). The file is rewritten once half of it is stale.
   */
  trimBefore(ms: number): void {
    let i = 0
    while (i + 1 < this.entries.length && this.entries[i + 1][0] <= ms) i++
    if (i === 0) return
    this.entries.splice(0, i)
    if (i * 2 > this.entries.length) this.#rewrite()
  }

  close(): void {
    if (this.#fd >= 0) { this.#disk.close(this.#fd); this.#fd = -1 }
  }

  #rewrite(): void {
    this.close()
    const out = new Uint8Array(this.entries.length * TIMELINE_ENTRY_BYTES)
    this.entries.forEach(([ms, lsn], i) => out.set(encodeEntry(ms, lsn), i * TIMELINE_ENTRY_BYTES))
    writeFileDurable(this.#disk, this.path, out, path.dirname(this.path))
  }
}

function encodeEntry(ms: number, lsn: number): Uint8Array {
  const b = new Uint8Array(TIMELINE_ENTRY_BYTES)
  const dv = new DataView(b.buffer)
  dv.setUint32(0, MAGIC, true)
  dv.setFloat64(8, ms, true)
  dv.setFloat64(16, lsn, true)
  dv.setUint32(4, crc32c(b.subarray(8)), true)
  return b
}
