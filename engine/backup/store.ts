/**
 * Where backups go: a flat namespace of named, immutable byte objects. The
 * agent and restore speak only this interface, so an object store (S3, GCS,
 * an HTTP blob service) can stand in for the directory implementation here.
 *
 * Contract, the one an object store gives:
 * - `put` replaces the whole object atomically and resolves only once it is
 *   durable (a reader sees the old object, the new one, or nothing; never a
 *   part). The agent writes every object once, except `head`.
 * - `get` of a missing object resolves to null, not an error.
 * - `list(prefix)` returns every name that starts with `prefix`, ascending.
 * - `delete` of a missing object is not an error.
 * - `describe(name)` (optional) says where an object lives, for messages
 *   (a directory store answers with the file path).
 * - `size(name)` (optional) the object's bytes without reading it (status).
 *
 * Names are '/'-separated words of letters, digits, '.', '_' and '-'.
 */
import fs from 'node:fs'
import fsp from 'node:fs/promises'
import path from 'node:path'
import { randomBytes } from 'node:crypto'
import { badInput, HexadError } from '../common/errors.js'

export interface BackupStore {
  put(name: string, bytes: Uint8Array): Promise<void>
  get(name: string): Promise<Uint8Array | null>
  list(prefix: string): Promise<string[]>
  delete(name: string): Promise<void>
  describe?(name: string): string
  size?(name: string): Promise<number | null>
}

const NAME_RE = /^[A-Za-z0-9._-]+(\/[A-Za-z0-9._-]+)*$/
/** Temporary files of an unfinished put carry this in their name; they are never listed. */
const TMP_MARK = '.tmp-'

/** Throws HEXAD_BAD_INPUT unless `name` is a valid object name. */
export function checkName(name: string): void {
  if (typeof name !== 'string' || !NAME_RE.test(name) || name.split('/').some(w => w === '.' || w === '..') || name.includes(TMP_MARK)) {
    throw badInput(`backup object name must be '/'-separated words of letters, digits, '.', '_' and '-' (no '.', '..' or '${TMP_MARK}'), got ${JSON.stringify(name)}`)
  }
}

/** Where `name` lives in `store`, for messages. */
export function describeObject(store: BackupStore, name: string): string {
  return store.describe ? store.describe(name) : name
}

/**
 * A backup store in a local directory: one file per object, names with '/'
 * become subdirectories. A put writes a temporary file, fsyncs it, renames
 * it over the name and fsyncs the directory (and the directories it had to
 * create), so an object is there whole or not at all, also after a crash.
 */
export class DirectoryBackupStore implements BackupStore {
  readonly dir: string
  /** directories known to exist durably (their creation was fsynced in the parent) */
  readonly #dirs = new Set<string>()

  constructor(dir: string) {
    if (typeof dir !== 'string' || dir.length === 0) throw badInput('DirectoryBackupStore: dir must be a non-empty string')
    this.dir = path.resolve(dir)
  }

  describe(name: string): string {
    return path.join(this.dir, ...name.split('/'))
  }

  async put(name: string, bytes: Uint8Array): Promise<void> {
    checkName(name)
    if (!(bytes instanceof Uint8Array)) throw badInput(`put ${name}: bytes must be a Uint8Array`)
    const file = this.describe(name)
    const parent = path.dirname(file)
    await this.#mkdirDurable(parent)
    const tmp = `${file}${TMP_MARK}${randomBytes(4).toString('hex')}`
    try {
      const fh = await fsp.open(tmp, 'w')
      try {
        let off = 0
        while (off < bytes.length) off += (await fh.write(bytes, off, bytes.length - off)).bytesWritten
        await fh.sync()
      } finally {
        await fh.close()
      }
      await fsp.rename(tmp, file)
      await fsyncDir(parent)
    } catch (err) {
      await fsp.rm(tmp, { force: true }).catch(() => {})
      throw ioError(`writing backup object ${file}`, err)
    }
  }

  async get(name: string): Promise<Uint8Array | null> {
    checkName(name)
    try {
      return new Uint8Array(await fsp.readFile(this.describe(name)))
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null
      throw ioError(`reading backup object ${this.describe(name)}`, err)
    }
  }

  async size(name: string): Promise<number | null> {
    checkName(name)
    try {
      return (await fsp.stat(this.describe(name))).size
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null
      throw ioError(`reading backup object ${this.describe(name)}`, err)
    }
  }

  async list(prefix: string): Promise<string[]> {
    if (typeof prefix !== 'string') throw badInput('list: prefix must be a string')
    // Walk only below the deepest directory the prefix names.
    const cut = prefix.lastIndexOf('/')
    const start = cut < 0 ? '' : prefix.slice(0, cut)
    if (start && !NAME_RE.test(start)) return []
    const out: string[] = []
    const walk = async (rel: string): Promise<void> => {
      let entries: fs.Dirent[]
      try {
        entries = await fsp.readdir(rel ? this.describe(rel) : this.dir, { withFileTypes: true })
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code
        if (code === 'ENOENT' || code === 'ENOTDIR') return
        throw ioError(`listing backup store ${this.dir}`, err)
      }
      for (const e of entries) {
        const name = rel ? `${rel}/${e.name}` : e.name
        if (e.isDirectory()) {
          // Descend only where names under it can still start with the prefix.
          if (prefix.startsWith(name + '/') || (name + '/').startsWith(prefix) || name.startsWith(prefix)) await walk(name)
        } else if (e.isFile() && name.startsWith(prefix) && !e.name.includes(TMP_MARK)) {
          out.push(name)
        }
      }
    }
    await walk(start)
    return out.sort()
  }

  async delete(name: string): Promise<void> {
    checkName(name)
    const file = this.describe(name)
    try {
      await fsp.rm(file, { force: true })
      let dir = path.dirname(file)
      await fsyncDir(dir).catch(() => {})
      // Empty directories a deletion leaves behind (a base's) go too, up to the store's root.
      while (dir !== this.dir && dir.startsWith(this.dir + path.sep)) {
        try { await fsp.rmdir(dir) } catch { break }
        this.#dirs.delete(dir)
        dir = path.dirname(dir)
      }
    } catch (err) {
      throw ioError(`deleting backup object ${file}`, err)
    }
  }

  async #mkdirDurable(dir: string): Promise<void> {
    if (this.#dirs.has(dir)) return
    // Create from the top down and fsync each parent that gained an entry.
    const missing: string[] = []
    for (let d = dir; !fs.existsSync(d); d = path.dirname(d)) missing.unshift(d)
    for (const d of missing) {
      await fsp.mkdir(d).catch(err => { if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw ioError(`creating ${d}`, err) })
      await fsyncDir(path.dirname(d)).catch(() => {})
    }
    this.#dirs.add(dir)
  }
}

async function fsyncDir(dir: string): Promise<void> {
  const fh = await fsp.open(dir, 'r')
  try { await fh.sync() } finally { await fh.close() }
}

function ioError(what: string, err: unknown): HexadError {
  if (err instanceof HexadError) return err
  const code = (err as NodeJS.ErrnoException)?.code
  return new HexadError('HEXAD_IO', `${what} failed${code ? ` (${code})` : ''}: ${(err as Error)?.message ?? String(err)}`, { cause: err })
}

/** A store given as a directory path becomes a DirectoryBackupStore. */
export function toStore(store: BackupStore | string, what: string): BackupStore {
  if (typeof store === 'string') return new DirectoryBackupStore(store)
  if (!store || typeof store !== 'object' || typeof store.put !== 'function' || typeof store.get !== 'function' || typeof store.list !== 'function' || typeof store.delete !== 'function') {
    throw badInput(`${what} must be a directory path or a BackupStore (put, get, list, delete)`)
  }
  return store
}
