/**
 * The page store: materialized page versions of one segment worker.
 *
 * Model: append-only files `NNNNNNNN.hxp` of version entries (format.ts).
 * An in-memory index maps each page to its versions, oldest first. Versions
 * are written in the background and made durable by `sync()` before the log
 * that they replace is deleted, so a crash between the two loses nothing:
 * the log still holds the records.
 *
 * Invariants:
 * - A version at LSN v of page P equals P with every record of P at or below
 *   v applied (invariant 5); it is built only from records at or below the
 *   segment's known VDL, so recovery never truncates below it.
 * - A version is verified (crc32c) every time it is read; a failing one is
 *   reported, never returned (invariant 7).
 * - A version is dropped only when a newer version of the same page lies at
 *   or below the oldest read point still in use; a file is deleted when all
 *   of its versions are dropped.
 */
import path from 'node:path'
import { realDisk, type CorruptionReport, type Disk } from './disk.js'
import { plantedBugs } from './planted-bugs.js'
import { decodeVersionBody, decodeVersionBodyUnchecked, encodeDeadVersionHeader, encodeVersion, readVersionHeader, VERSION_FLAG_DEAD, VERSION_HEADER_BYTES, type VersionHeader } from './format.js'

export interface Version {
  lsn: number
  file: number
  off: number
  len: number
}

interface PageFile { seq: number; fd: number; size: number; live: number; liveBytes: number }

export class PageStore {
  readonly dir: string
  readonly fileBytes: number
  readonly index = new Map<number, Version[]>()
  #files = new Map<number, PageFile>()
  #active!: PageFile
  #dirty = false
  versions = 0
  corruptVersions = 0
  /** entries found damaged at open whose page could not be told */
  damagedEntries = 0
  /** entries past the synced length torn by a crash, dropped at open */
  tornEntries = 0
  /** per file, the length made durable by the last sync */
  readonly #synced = new Map<number, number>()
  gcVersions = 0
  compactedFiles = 0
  readonly #disk: Disk
  readonly #onCorrupt: (r: CorruptionReport) => void

  constructor(dir: string, fileBytes: number, disk: Disk = realDisk, onCorrupt: (r: CorruptionReport) => void = () => {}) {
    this.dir = dir
    this.fileBytes = fileBytes
    this.#disk = disk
    this.#onCorrupt = onCorrupt
    disk.mkdirp(dir)
  }

  /**
   * Rebuilds the index from the version headers (bodies are checked when read).
   *
   * `synced` is each file's synced length as the segment's meta last
   * recorded it. Damage inside a synced prefix is corruption (a version that
   * may hold folded records is gone: the segment serves no page until
   * rebuilt); damage past it is an append a crash tore, possibly out of
   * order (a later entry landed, an earlier one did not): every entry there
   * was made after the last fold, from records the log still holds, so it is
   * dropped and reported as a torn tail; an entry there whose header is
   * intact has its body checked too, and one a crash tore is buried. Without
   * `synced` (an older meta), all damage in the middle counts as corruption.
   */
  open(synced?: Map<number, number>): void {
    const disk = this.#disk
    const names = disk.readdir(this.dir).filter(n => n.endsWith('.hxp')).sort()
    const header = Buffer.alloc(VERSION_HEADER_BYTES)
    for (const name of names) {
      const seq = Number.parseInt(name, 10)
      const fd = disk.open(path.join(this.dir, name), 'r+')
      const size = disk.size(fd)
      const file: PageFile = { seq, fd, size, live: 0, liveBytes: 0 }
      let off = 0
      let end = 0
      let buf: Buffer | null = null
      let buried = false
      while (off + VERSION_HEADER_BYTES <= size) {
        disk.read(fd, header, 0, VERSION_HEADER_BYTES, off)
        const h = readVersionHeader(header, 0)
        const len = h !== 'zero' && h !== null ? VERSION_HEADER_BYTES + h.storedLen : 0
        if (h !== 'zero' && h !== null && off + len <= size) {
          if (h.flags & VERSION_FLAG_DEAD) {
            // replaced from a peer after it failed its checksum: skipped
          } else if (synced && off + len > (synced.get(seq) ?? 0) && !plantedBugs.skipReadCrc && !bodyIntact(disk, fd, h, off)) {
            // An append past the synced length whose header landed and whose body a crash
            // tore: it was built after the last fold, from records the log still holds, so it
            // is buried (dead on disk, as buryDamaged does) and the page is built from them.
            // Kept, it would fail its checksum when read and the page would wait for a peer's
            // image, and every segment that crashed with the same unsynced version waits too.
            const dead = encodeDeadVersionHeader(h.pageId, h.lsn, h.storedLen, h.rawLen)
            disk.write(fd, dead, 0, dead.length, off)
            buried = true
            this.#onCorrupt({ path: path.join(this.dir, name), off, len, kind: 'torn-tail' })
            this.tornEntries++
          } else {
            this.#files.set(seq, file)
            this.#insert(h.pageId, { lsn: h.lsn, file: seq, off, len })
          }
          off += len
          end = off
          continue
        }
        // A header that fails: if an intact entry follows, this is damage in
        // the middle (the lost entry's page is unknown); otherwise a torn tail.
        buf ??= disk.readFile(path.join(this.dir, name))
        const next = findNextVersion(buf, off + 1)
        if (next < 0) break
        if (synced && off >= (synced.get(seq) ?? 0)) {
          this.#onCorrupt({ path: path.join(this.dir, name), off, len: next - off, kind: 'torn-tail' })
          this.tornEntries++
        } else {
          this.#onCorrupt({ path: path.join(this.dir, name), off, len: next - off, kind: 'version' })
          this.damagedEntries++
          this.corruptVersions++
        }
        off = next
      }
      if (buried) disk.fdatasync(fd)
      if (end < size && this.damagedEntries === 0) { // torn tail of an unsynced append
        this.#onCorrupt({ path: path.join(this.dir, name), off: end, len: size - end, kind: 'torn-tail' })
        disk.truncate(fd, end)
      }
      file.size = Math.max(end, this.damagedEntries ? size : end)
      this.#files.set(seq, file)
    }
    const last = names.length ? Number.parseInt(names[names.length - 1], 10) : 0
    if (last && this.#files.get(last)!.size < this.fileBytes) this.#active = this.#files.get(last)!
    else this.#newFile(last + 1)
  }

  /** Newest version of `pageId` at or below `lsn`, if any. */
  versionAtOrBelow(pageId: number, lsn: number): Version | undefined {
    const vs = this.index.get(pageId)
    if (!vs) return undefined
    for (let i = vs.length - 1; i >= 0; i--) if (vs[i].lsn <= lsn) return vs[i]
    return undefined
  }

  newest(pageId: number): Version | undefined {
    const vs = this.index.get(pageId)
    return vs ? vs[vs.length - 1] : undefined
  }

  append(pageId: number, lsn: number, image: Uint8Array): Version {
    const entry = encodeVersion(pageId, lsn, image)
    if (this.#active.size + entry.length > this.fileBytes && this.#active.size > 0) this.#newFile(this.#active.seq + 1)
    const f = this.#active
    this.#disk.write(f.fd, entry, 0, entry.length, f.size)
    const v: Version = { lsn, file: f.seq, off: f.size, len: entry.length }
    f.size += entry.length
    this.#dirty = true
    this.#insert(pageId, v)
    return v
  }

  /** Reads and verifies a version; null when its checksum fails (the caller counts and repairs). */
  read(pageId: number, v: Version): Uint8Array | null {
    const f = this.#files.get(v.file)
    if (!f) return null
    const buf = Buffer.allocUnsafe(v.len)
    this.#disk.read(f.fd, buf, 0, v.len, v.off)
    const h = readVersionHeader(buf, 0)
    const decode = plantedBugs.skipReadCrc ? decodeVersionBodyUnchecked : decodeVersionBody
    const img = h === null || h === 'zero' || h.pageId !== pageId || h.lsn !== v.lsn ? null : decode(h as VersionHeader, buf.subarray(VERSION_HEADER_BYTES))
    if (!img) {
      this.corruptVersions++
      this.#onCorrupt({ path: this.#name(v.file), off: v.off, len: v.len, kind: 'version' })
    }
    return img
  }

  /**
   * Forgets a version that failed its checksum so that it is rebuilt rather
   * than read again. Its entry stays on disk (its file is not deleted under
   * it) until `buryDamaged` is called once an intact replacement is durable:
   * until then a restart finds it again and refuses it again, where without
   * it the page could be built from an older base.
   */
  discard(pageId: number, v: Version): void {
    const vs = this.index.get(pageId)
    if (!vs) return
    const i = vs.indexOf(v)
    if (i >= 0) {
      vs.splice(i, 1)
      let list = this.damaged.get(pageId)
      if (!list) { list = []; this.damaged.set(pageId, list) }
      list.push(v)
    }
    if (vs.length === 0) this.index.delete(pageId)
  }

  /** Damaged versions discarded and not yet replaced, per page. */
  readonly damaged = new Map<number, Version[]>()

  /**
   * Marks the damaged versions of `pageId` dead on disk (header rewritten:
   * flag DEAD, fresh header checksum; a later open skips them) once the
   * caller has made an intact version durable; then they count as gone.
   */
  buryDamaged(pageId: number, rawLen: number): number {
    const list = this.damaged.get(pageId)
    if (!list) return 0
    this.damaged.delete(pageId)
    for (const v of list) {
      const f = this.#files.get(v.file)
      if (!f) continue
      const h = encodeDeadVersionHeader(pageId, v.lsn, v.len - VERSION_HEADER_BYTES, rawLen)
      this.#disk.write(f.fd, h, 0, h.length, v.off)
      this.#disk.fdatasync(f.fd)
      this.#dead(v)
    }
    return list.length
  }

  /** Makes every append durable; says whether there was any to sync. */
  sync(): boolean {
    if (!this.#dirty) return false
    for (const f of this.#files.values()) { this.#disk.fdatasync(f.fd); this.#synced.set(f.seq, f.size) }
    this.#dirty = false
    return true
  }

  /**
   * Drops versions no read point can need: for each page, everything older
   * than its newest version at or below `horizon`, except the newest version
   * at or below each of `pins` (durable read points below the horizon:
   * snapshots and clones, which checkpoints fold at).
   */
  collect(horizon: number, pins: readonly number[] = []): void {
    for (const [pageId, vs] of this.index) {
      const dropped = this.#collectVersions(vs, horizon, pins)
      if (dropped === 0) continue
      this.gcVersions += dropped
      if (vs.length === 0) this.index.delete(pageId)
    }
  }

  /**
   * Drops, for one page, every version older than its newest version at or
   * below `horizon` (used at open with the fold base, which no read point can
   * go below, so versions collected before a restart stay collected), except
   * the ones `pins` keep.
   */
  collectPage(pageId: number, horizon: number, pins: readonly number[] = []): void {
    const vs = this.index.get(pageId)
    if (vs) this.#collectVersions(vs, horizon, pins)
  }

  #collectVersions(vs: Version[], horizon: number, pins: readonly number[]): number {
    let keep = -1
    for (let i = vs.length - 1; i >= 0; i--) if (vs[i].lsn <= horizon) { keep = i; break }
    if (keep <= 0) return 0
    const pinned = new Set<number>()
    for (const p of pins) {
      if (p >= horizon) continue
      for (let i = keep - 1; i >= 0; i--) if (vs[i].lsn <= p) { pinned.add(i); break }
    }
    let dropped = 0
    for (let i = keep - 1; i >= 0; i--) {
      if (pinned.has(i)) continue
      this.#dead(vs[i])
      vs.splice(i, 1)
      dropped++
    }
    return dropped
  }

  /**
   * Compaction: a file (other than the active one) whose live bytes fell
   * below half of its size has its live versions copied to the active file.
   * Returns the files emptied; the caller syncs, then calls `removeFiles`, so
   * a crash in between leaves both copies (the index takes either).
   */
  compact(filesMax = 2): number[] {
    const victims = [...this.#files.values()]
      .filter(f => f !== this.#active && f.size > 0 && f.liveBytes * 2 < f.size && !this.#holdsDamaged(f.seq))
      .sort((a, b) => a.liveBytes / a.size - b.liveBytes / b.size)
      .slice(0, filesMax)
    if (victims.length === 0) return []
    const seqs = new Set(victims.map(f => f.seq))
    for (const [pageId, vs] of this.index) {
      for (let i = 0; i < vs.length; i++) {
        const v = vs[i]
        if (!seqs.has(v.file)) continue
        const src = this.#files.get(v.file)!
        const buf = Buffer.allocUnsafe(v.len)
        this.#disk.read(src.fd, buf, 0, v.len, v.off)
        if (this.#active.size + v.len > this.fileBytes && this.#active.size > 0) this.#newFile(this.#active.seq + 1)
        const dst = this.#active
        this.#disk.write(dst.fd, buf, 0, v.len, dst.size)
        src.live--
        src.liveBytes -= v.len
        vs[i] = { lsn: v.lsn, file: dst.seq, off: dst.size, len: v.len }
        dst.size += v.len
        dst.live++
        dst.liveBytes += v.len
        this.#dirty = true
        void pageId
      }
    }
    this.compactedFiles += victims.length
    return victims.map(f => f.seq)
  }

  /** Deletes files emptied by `compact` (after `sync`). */
  removeFiles(seqs: number[]): void {
    for (const seq of seqs) {
      const f = this.#files.get(seq)
      if (!f || f === this.#active) continue
      this.#disk.close(f.fd)
      this.#disk.rm(this.#name(seq))
      this.#files.delete(seq)
    }
  }

  get bytes(): number {
    let n = 0
    for (const f of this.#files.values()) n += f.size
    return n
  }

  close(): void {
    this.sync()
    for (const f of this.#files.values()) this.#disk.close(f.fd)
    this.#files.clear()
  }

  #holdsDamaged(seq: number): boolean {
    for (const list of this.damaged.values()) if (list.some(v => v.file === seq)) return true
    return false
  }

  #insert(pageId: number, v: Version): void {
    let vs = this.index.get(pageId)
    if (!vs) { vs = []; this.index.set(pageId, vs) }
    // Usually appended in LSN order; keep the list sorted either way.
    let i = vs.length
    while (i > 0 && vs[i - 1].lsn > v.lsn) i--
    const f = this.#files.get(v.file)
    if (f) { f.live++; f.liveBytes += v.len }
    if (i > 0 && vs[i - 1].lsn === v.lsn) { this.#dead(vs[i - 1]); vs[i - 1] = v; this.versions++; return }
    vs.splice(i, 0, v)
    this.versions++
  }

  #dead(v: Version): void {
    const f = this.#files.get(v.file)
    if (!f) return
    f.live--
    f.liveBytes -= v.len
    this.versions--
    if (f.live <= 0 && f !== this.#active) {
      this.#disk.close(f.fd)
      this.#disk.rm(this.#name(f.seq))
      this.#files.delete(f.seq)
    }
  }

  #name(seq: number): string {
    return path.join(this.dir, String(seq).padStart(8, '0') + '.hxp')
  }

  #newFile(seq: number): void {
    const fd = this.#disk.open(this.#name(seq), 'w+')
    const f: PageFile = { seq, fd, size: 0, live: 0, liveBytes: 0 }
    this.#files.set(seq, f)
    this.#active = f
    this.#disk.fsyncDir(this.dir)
  }

  /** Each file's durable length as of the last sync, as [seq, bytes] (recorded in the segment's meta). */
  syncedExtents(): Array<[number, number]> {
    return [...this.#files.keys()].map(seq => [seq, this.#synced.get(seq) ?? 0])
  }

  /** Where a version lies on disk (the simulator flips bits there). */
  locate(v: Version): { path: string; off: number; len: number } {
    return { path: this.#name(v.file), off: v.off, len: v.len }
  }
}

function findNextVersion(buf: Buffer, from: number): number {
  for (let off = buf.indexOf(0x56, from); off >= 0 && off + VERSION_HEADER_BYTES <= buf.length; off = buf.indexOf(0x56, off + 1)) {
    const h = readVersionHeader(buf, off)
    if (h !== null && h !== 'zero' && off + VERSION_HEADER_BYTES + h.storedLen <= buf.length) return off
  }
  return -1
}

/** Whether the body of the entry at `off` (header `h`, already read) is whole: checksum, and it decodes to rawLen bytes. */
function bodyIntact(disk: Disk, fd: number, h: VersionHeader, off: number): boolean {
  const body = Buffer.allocUnsafe(h.storedLen)
  if (disk.read(fd, body, 0, h.storedLen, off + VERSION_HEADER_BYTES) !== h.storedLen) return false
  return decodeVersionBody(h, body) !== null
}
