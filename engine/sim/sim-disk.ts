/**
 * An in-memory disk behind the engine's Disk seam, with the faults the
 * simulator injects.
 *
 * Model: each file has its current bytes (what reads see: the page cache)
 * and its durable bytes (as of its last fsync/fdatasync), plus the writes
 * made since, in order. A crash of a directory tree replaces every file's
 * bytes under it by the durable bytes with each pending write independently
 * kept or lost, and a kept one possibly torn (only a prefix of it lands).
 * Creating, renaming, truncating and removing files is durable at once (a
 * simplification: real file systems want a directory fsync, which the engine
 * does after each of these).
 *
 * Faults: `flip` XORs one bit into both the current and the durable bytes
 * (bit rot on the medium); `limit` makes writes under a directory fail with
 * ENOSPC once its files hold more than a number of bytes (a full disk).
 */
import path from 'node:path'
import type { Disk, OpenFlags } from '../storage/disk.js'
import type { Rng } from './rng.js'

/**
 * A file: its current bytes, its durable bytes, the writes since the last
 * sync; and where flipped bits still lie in each (a flip is gone once new
 * bytes are written over it and that write is kept).
 */
interface Inode { data: Buffer; len: number; durable: Buffer; pending: Array<{ pos: number; bytes: Buffer; flips?: Set<number> }>; durableFlips?: Set<number> }

function errno(code: string, what: string): Error {
  return Object.assign(new Error(`${code}: ${what}`), { code })
}

export class SimDisk implements Disk {
  readonly #files = new Map<string, Inode>()
  readonly #dirs = new Set<string>(['/'])
  readonly #fds = new Map<number, { p: string; ino: Inode }>()
  readonly #limits = new Map<string, number>()
  readonly #rng: Rng
  #nextFd = 3
  fsyncs = 0
  /** pending writes a crash kept whole, kept torn, or lost */
  crashStats = { kept: 0, torn: 0, lost: 0 }

  constructor(rng: Rng) { this.#rng = rng }

  mkdirp(dir: string): void {
    for (let d = path.resolve(dir); ; d = path.dirname(d)) {
      if (this.#files.has(d)) throw errno('ENOTDIR', d)
      this.#dirs.add(d)
      if (d === path.dirname(d)) break
    }
  }

  readdir(dir: string): string[] {
    const d = path.resolve(dir)
    if (this.#files.has(d)) throw errno('ENOTDIR', d)
    if (!this.#dirs.has(d)) throw errno('ENOENT', d)
    const out = new Set<string>()
    for (const p of [...this.#files.keys(), ...this.#dirs]) if (path.dirname(p) === d && p !== d) out.add(path.basename(p))
    return [...out].sort()
  }

  exists(p: string): boolean { const r = path.resolve(p); return this.#files.has(r) || this.#dirs.has(r) }

  open(p: string, flags: OpenFlags): number {
    const r = path.resolve(p)
    if (this.#dirs.has(r)) {
      if (flags !== 'r') throw errno('EISDIR', r)
      const fd = this.#nextFd++
      this.#fds.set(fd, { p: r, ino: { data: Buffer.alloc(0), len: 0, durable: Buffer.alloc(0), pending: [] } })
      return fd
    }
    if (!this.#dirs.has(path.dirname(r))) throw errno('ENOENT', r)
    let ino = this.#files.get(r)
    if (flags === 'w' || flags === 'w+') {
      if (!ino) { ino = { data: Buffer.alloc(0), len: 0, durable: Buffer.alloc(0), pending: [] }; this.#files.set(r, ino) }
      ino.len = 0
      ino.durable = Buffer.alloc(0)
      ino.durableFlips = undefined
      ino.pending = []
    } else if (!ino) throw errno('ENOENT', r)
    const fd = this.#nextFd++
    this.#fds.set(fd, { p: r, ino })
    return fd
  }

  close(fd: number): void { if (!this.#fds.delete(fd)) throw errno('EBADF', String(fd)) }

  read(fd: number, buf: Uint8Array, off: number, len: number, pos: number): number {
    const { ino } = this.#fd(fd)
    const n = Math.max(0, Math.min(len, ino.len - pos))
    if (n > 0) buf.set(ino.data.subarray(pos, pos + n), off)
    return n
  }

  write(fd: number, buf: Uint8Array, off: number, len: number, pos?: number): number {
    const f = this.#fd(fd)
    const ino = f.ino
    const at = pos ?? ino.len
    const grow = Math.max(0, at + len - ino.len)
    if (grow > 0) this.#checkSpace(f.p, grow)
    if (at + len > ino.data.length) {
      const bigger = Buffer.alloc(Math.max(at + len, ino.data.length * 2, 4096))
      ino.data.copy(bigger, 0, 0, ino.len)
      ino.data = bigger
    }
    if (at > ino.len) ino.data.fill(0, ino.len, at)
    const bytes = Buffer.from(buf.subarray(off, off + len))
    bytes.copy(ino.data, at)
    ino.len = Math.max(ino.len, at + len)
    ino.pending.push({ pos: at, bytes })
    return len
  }

  fdatasync(fd: number): void { this.#sync(this.#fd(fd).ino) }
  fsync(fd: number): void { this.#sync(this.#fd(fd).ino) }

  size(fd: number): number { return this.#fd(fd).ino.len }

  truncate(fd: number, len: number): void {
    const ino = this.#fd(fd).ino
    if (len < ino.len) ino.len = len
    else this.write(fd, Buffer.alloc(len - ino.len), 0, len - ino.len, ino.len)
    this.#sync(ino)
  }

  readFile(p: string): Buffer {
    const r = path.resolve(p)
    if (this.#dirs.has(r)) throw errno('EISDIR', r)
    const ino = this.#files.get(r)
    if (!ino) throw errno('ENOENT', r)
    return Buffer.from(ino.data.subarray(0, ino.len))
  }

  rm(p: string, recursive = false): void {
    const r = path.resolve(p)
    if (this.#files.delete(r)) return
    if (!this.#dirs.has(r)) return
    const inside = [...this.#files.keys(), ...this.#dirs].filter(x => x.startsWith(r + '/'))
    if (inside.length && !recursive) throw errno('ENOTEMPTY', r)
    for (const x of inside) { this.#files.delete(x); this.#dirs.delete(x) }
    this.#dirs.delete(r)
  }

  rename(from: string, to: string): void {
    const a = path.resolve(from)
    const b = path.resolve(to)
    const ino = this.#files.get(a)
    if (ino) { this.#files.delete(a); this.#files.set(b, ino); return }
    if (!this.#dirs.has(a)) throw errno('ENOENT', a)
    for (const x of [...this.#files.keys()]) if (x.startsWith(a + '/')) { const i = this.#files.get(x)!; this.#files.delete(x); this.#files.set(b + x.slice(a.length), i) }
    for (const x of [...this.#dirs]) if (x === a || x.startsWith(a + '/')) { this.#dirs.delete(x); this.#dirs.add(b + x.slice(a.length)) }
  }

  fsyncDir(dir: string): void {
    if (!this.#dirs.has(path.resolve(dir))) throw errno('ENOENT', dir)
  }

  // ------------------------------------------------------------------ faults

  /**
   * Power loss under `dir`: each file keeps its durable bytes plus, for each
   * write since its last sync, in order, the whole write, a torn prefix of
   * it, or nothing. Open file descriptors under it are gone.
   */
  crash(dir: string): void {
    const root = path.resolve(dir)
    for (const [p, ino] of this.#files) {
      if (!p.startsWith(root + '/')) continue
      const data = Buffer.from(ino.durable)
      let len = data.length
      let buf = Buffer.alloc(Math.max(len, 4096))
      data.copy(buf)
      const kept = new Set(ino.durableFlips ?? [])
      for (const w of ino.pending) {
        const r = this.#rng.float()
        if (r < 0.45) { this.crashStats.lost++; continue }
        const n = r < 0.6 ? this.#rng.int(0, w.bytes.length) : w.bytes.length
        overlay(kept, w, n)
        if (n < w.bytes.length) this.crashStats.torn++; else this.crashStats.kept++
        if (w.pos + n > buf.length) { const b2 = Buffer.alloc(w.pos + n); buf.copy(b2); buf = b2 }
        if (w.pos > len) buf.fill(0, len, w.pos)
        w.bytes.copy(buf, w.pos, 0, n)
        if (n > 0) len = Math.max(len, w.pos + n)
      }
      ino.data = buf
      ino.len = len
      ino.durable = Buffer.from(buf.subarray(0, len))
      ino.durableFlips = kept.size ? kept : undefined
      ino.pending = []
    }
    for (const [fd, f] of this.#fds) if (f.p.startsWith(root + '/')) this.#fds.delete(fd)
  }

  /** Flips bit `bit` of byte `off` of file `p` in both its current and its durable bytes; false when out of range. */
  flip(p: string, off: number, bit: number): boolean {
    const ino = this.#files.get(path.resolve(p))
    if (!ino || off >= ino.len) return false
    ino.data[off] ^= 1 << bit
    if (off < ino.durable.length) { ino.durable[off] ^= 1 << bit; (ino.durableFlips ??= new Set()).add(off) }
    for (const w of ino.pending) if (off >= w.pos && off < w.pos + w.bytes.length) { w.bytes[off - w.pos] ^= 1 << bit; (w.flips ??= new Set()).add(off) }
    return true
  }

  /** Whether a bit flipped at byte `off` of file `p` is still there (not written over since, nor cut off, nor the file gone). */
  flipped(p: string, off: number): boolean {
    const ino = this.#files.get(path.resolve(p))
    return !!ino && off < ino.len && currentFlips(ino).has(off)
  }

  fileExists(p: string): boolean { return this.#files.has(path.resolve(p)) }
  fileSize(p: string): number { return this.#files.get(path.resolve(p))?.len ?? -1 }

  /** Bytes held by files under `dir`. */
  used(dir: string): number {
    const root = path.resolve(dir)
    let n = 0
    for (const [p, ino] of this.#files) if (p.startsWith(root + '/')) n += ino.len
    return n
  }

  /** Writes under `dir` fail with ENOSPC once its files would hold more than `bytes` (null: no limit). */
  limit(dir: string, bytes: number | null): void {
    if (bytes === null) this.#limits.delete(path.resolve(dir))
    else this.#limits.set(path.resolve(dir), bytes)
  }

  #checkSpace(p: string, grow: number): void {
    for (const [dir, max] of this.#limits) if (p.startsWith(dir + '/') && this.used(dir) + grow > max) throw errno('ENOSPC', `${p}: no space left (${max} bytes under ${dir})`)
  }

  #sync(ino: Inode): void {
    const flips = currentFlips(ino)
    ino.durableFlips = flips.size ? flips : undefined
    this.fsyncs++
    ino.durable = Buffer.from(ino.data.subarray(0, ino.len))
    ino.pending = []
  }

  #fd(fd: number): { p: string; ino: Inode } {
    const f = this.#fds.get(fd)
    if (!f) throw errno('EBADF', String(fd))
    return f
  }
}

/** Where flips lie after the first `n` bytes of write `w` landed on bytes flipped at `flips`. */
function overlay(flips: Set<number>, w: { pos: number; bytes: Buffer; flips?: Set<number> }, n: number): void {
  for (const off of [...flips]) if (off >= w.pos && off < w.pos + n) flips.delete(off)
  if (w.flips) for (const off of w.flips) if (off < w.pos + n) flips.add(off)
}

/** Flips in a file's current bytes: the durable ones, overlaid by every write since, in order. */
function currentFlips(ino: Inode): Set<number> {
  const flips = new Set(ino.durableFlips ?? [])
  for (const w of ino.pending) overlay(flips, w, w.bytes.length)
  for (const off of [...flips]) if (off >= ino.len) flips.delete(off)
  return flips
}
