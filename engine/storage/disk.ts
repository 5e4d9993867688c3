/**
 * The disk seam: the few synchronous file calls the storage tier makes (the
 * hot log, the page store, the meta files, the volume's own meta). `realDisk`
 * is node:fs; engine/sim/sim-disk.ts is an in-memory disk with a page cache
 * that a crash throws away, torn writes, flipped bits and a size limit.
 *
 * Contract: calls are synchronous and either complete or throw (an
 * operating error such as ENOSPC is an exception with a `code`); nothing
 * written is durable until `fdatasync`/`fsync` of its fd returns, and a
 * create, rename or remove is durable once `fsyncDir` of its directory
 * returns.
 */
import fs from 'node:fs'

export type OpenFlags = 'r' | 'r+' | 'w' | 'w+'

export interface Disk {
  mkdirp(dir: string): void
  /** names in `dir` (throws when it is not a readable directory) */
  readdir(dir: string): string[]
  exists(p: string): boolean
  open(p: string, flags: OpenFlags): number
  close(fd: number): void
  read(fd: number, buf: Uint8Array, off: number, len: number, pos: number): number
  /** writes `len` bytes of `buf` from `off` at file position `pos` (at the end when pos is omitted) */
  write(fd: number, buf: Uint8Array, off: number, len: number, pos?: number): number
  fdatasync(fd: number): void
  fsync(fd: number): void
  size(fd: number): number
  truncate(fd: number, len: number): void
  readFile(p: string): Buffer
  rm(p: string, recursive?: boolean): void
  rename(from: string, to: string): void
  fsyncDir(dir: string): void
}

export const realDisk: Disk = {
  mkdirp: dir => { fs.mkdirSync(dir, { recursive: true }) },
  readdir: dir => fs.readdirSync(dir),
  exists: p => fs.existsSync(p),
  open: (p, flags) => fs.openSync(p, flags),
  close: fd => fs.closeSync(fd),
  read: (fd, buf, off, len, pos) => fs.readSync(fd, buf, off, len, pos),
  write: (fd, buf, off, len, pos) => pos === undefined ? fs.writeSync(fd, buf, off, len) : fs.writeSync(fd, buf, off, len, pos),
  fdatasync: fd => fs.fdatasyncSync(fd),
  fsync: fd => fs.fsyncSync(fd),
  size: fd => fs.fstatSync(fd).size,
  truncate: (fd, len) => fs.ftruncateSync(fd, len),
  readFile: p => fs.readFileSync(p),
  rm: (p, recursive = false) => fs.rmSync(p, { force: true, recursive }),
  rename: (from, to) => fs.renameSync(from, to),
  fsyncDir: dir => {
    const fd = fs.openSync(dir, 'r')
    try { fs.fsyncSync(fd) } finally { fs.closeSync(fd) }
  },
}

/** Writes a small file durably: temp name, fsync, rename over, directory fsync. */
export function writeFileDurable(disk: Disk, p: string, bytes: Uint8Array, dir: string): void {
  const tmp = p + '.tmp'
  const fd = disk.open(tmp, 'w')
  try {
    disk.write(fd, bytes, 0, bytes.length, 0)
    disk.fsync(fd)
  } finally {
    disk.close(fd)
  }
  disk.rename(tmp, p)
  disk.fsyncDir(dir)
}

/** Where a checksum failed: reported to the environment (the simulator checks that every flipped bit is found). */
export interface CorruptionReport { path: string; off: number; len: number; kind: 'frame' | 'version' | 'torn-tail' | 'meta' }
