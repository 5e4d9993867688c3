/**
 * The built-in compute node: a transactional, ordered key-value store on the
 * volume. Byte-string keys and values (strings are UTF-8), ordered by bytes,
 * in named keyspaces that share one volume through a catalog B+tree.
 *
 * Reads: a snapshot is the durable commit point when the read (or the
 * transaction) starts; the value of a key at a snapshot comes from the
 * version store when a newer commit changed it, else from the B+tree
 * (version-store.ts). Readers take no locks and never block writers.
 *
 * Writes: a transaction buffers its writes and takes the key's write lock at
 * each write (a second writer of a key waits; a cycle fails one victim with
 * HEXAD_DEADLOCK). Commit runs one MTR, exclusively: it validates that no key
 * the transaction read (point or range) was changed by a commit after its
 * snapshot (else HEXAD_CONFLICT: serializable, as backward-validating OCC),
 * applies the writes to the B+tree, records the versions, and ships the redo.
 * The commit resolves when the MTR is durable (its CPL <= VDL); concurrent
 * commits share the volume's shipments (group commit). Locks are released at
 * durability.
 *
 * Tree reads outside an MTR may cross a publication between two page loads
 * (a split or merge can move keys and free pages): every read notes the
 * cache's publication counter and starts over if it changed.
 */
import { badInput, HexadError } from '../common/errors.js'
import type { Volume } from '../volume/volume.js'
import { initSuperblock, readSuperblock } from './allocator.js'
import { BTree, MAX_VALUE_BYTES, maxKeyBytes } from './btree.js'
import { BufferCache } from './buffer-cache.js'
import { LockTable, type LockOwner } from './locks.js'
import { MtrRunner, type Mtr } from './mtr.js'
import type { PageAccess } from './page-access.js'
import { VersionStore, valueAt, type KeyVersions } from './version-store.js'

export type Key = string | Uint8Array
export type Value = string | Uint8Array

export interface ScanOptions {
  gt?: Key
  gte?: Key
  lt?: Key
  lte?: Key
  reverse?: boolean
  limit?: number
}

export type BatchOp = { type: 'put'; key: Key; value: Value } | { type: 'del'; key: Key }

export interface TransactionOptions {
  /** times to run `fn` again after HEXAD_CONFLICT or HEXAD_DEADLOCK (default 0) */
  retries?: number
}

export interface DatabaseStats {
  commits: number
  /** MTRs that committed transactions (a group commits many transactions as one MTR) */
  commitGroups: number
  conflicts: number
  deadlocks: number
  lockWaits: number
  retries: number
  mtrs: number
  redoBytes: number
  versionsKept: number
  /** snapshots held now by open transactions, scans and snapshot handles (one that never returns to 0 when idle is a leak) */
  snapshotsHeld: number
  keyspaces: number
  cache: ReturnType<BufferCache['stats']>
  vdl: number
}

export const DEFAULT_KEYSPACE = 'default'
const KEYSPACE_NAME_BYTES_MAX = 128

interface Bounds { gt?: Uint8Array; gte?: Uint8Array; lt?: Uint8Array; lte?: Uint8Array; reverse?: boolean }

const enc = new TextEncoder()
const dec = new TextDecoder()

export function toBytes(v: Key | Value, what: string): Uint8Array {
  if (typeof v === 'string') return enc.encode(v)
  if (v instanceof Uint8Array) return v
  throw badInput(`${what} must be a string or a Uint8Array, got ${v === null ? 'null' : typeof v}`)
}

export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = a.length < b.length ? a.length : b.length
  // Short keys (the common case) compare faster in a loop than through two Buffer views.
  if (n > 64) return Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.byteLength), Buffer.from(b.buffer, b.byteOffset, b.byteLength))
  for (let i = 0; i < n; i++) {
    const d = a[i] - b[i]
    if (d !== 0) return d < 0 ? -1 : 1
  }
  return a.length === b.length ? 0 : a.length < b.length ? -1 : 1
}

function inBounds(key: Uint8Array, b: Bounds): boolean {
  if (b.gt && compareBytes(key, b.gt) <= 0) return false
  if (b.gte && compareBytes(key, b.gte) < 0) return false
  if (b.lt && compareBytes(key, b.lt) >= 0) return false
  if (b.lte && compareBytes(key, b.lte) > 0) return false
  return true
}

function latin1(key: Uint8Array): string {
  return Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString('latin1')
}

/** Transactions committed as one MTR at most (a group), and the bytes of keys and values they may write. */
const GROUP_COMMITS_MAX = 256
const GROUP_BYTES_MAX = 4 << 20

interface TxWrite { ks: string; key: Uint8Array; value: Uint8Array | null }
/** what the members of a commit group before the current one wrote */
interface GroupWrites { ids: Map<string, number>; list: Array<{ w: TxWrite; seq: number }> }
interface PendingCommit {
  tx: Transaction
  writes: TxWrite[]
  resolve: (r: { seq: number; durable: Promise<number> }) => void
  reject: (err: unknown) => void
}

/** The engine behind every Database handle and transaction of one writer. */
export class Engine {
  readonly vol: Volume
  readonly cache: BufferCache
  readonly runner: MtrRunner
  readonly store = new VersionStore()
  readonly locks = new LockTable()
  /** keyspace name -> root page id */
  readonly keyspaces = new Map<string, number>()
  catalog!: BTree
  #txSeq = 0
  #closed = false
  #inflight = new Set<Promise<unknown>>()
  counters = { commits: 0, conflicts: 0, retries: 0 }
  /**
   * Open transactions that have written and not yet published their commit:
   * what a committing group tells the volume is still to come (group
   * commit's wait, VolumeOptions.commitDelayMs).
   */
  writers = 0
  readonly readAccess: PageAccess
  /** B+tree handles by root page (a root never changes for a tree's life) */
  readonly #trees = new Map<number, BTree>()
  readonly #peek: (pageId: number) => Uint8Array | undefined

  private constructor(vol: Volume, cacheBytes: number) {
    this.vol = vol
    this.cache = new BufferCache(vol, cacheBytes)
    this.runner = new MtrRunner(vol, this.cache)
    const cache = this.cache
    this.#peek = id => cache.peek(id)
    this.readAccess = {
      pageSize: vol.pageSize,
      read: (id: number) => cache.get(id),
      write: () => { throw new Error('read-only page access') },
      create: () => { throw new Error('read-only page access') },
    }
  }

  static async open(vol: Volume, cacheBytes: number): Promise<Engine> {
    const e = new Engine(vol, cacheBytes)
    const { value: catalogRoot, durable } = await e.runner.run(async mtr => {
      const sb = readSuperblock(await mtr.read(0))
      return sb ? sb.catalogRoot : initSuperblock(mtr)
    })
    await durable
    e.catalog = new BTree(catalogRoot)
    for await (const [name, root] of e.catalog.range(e.readAccess, {})) {
      e.keyspaces.set(dec.decode(name), Buffer.from(root).readUInt32LE(0))
    }
    return e
  }

  nextTxId(): number { return ++this.#txSeq }

  checkOpen(): void {
    if (this.#crashed) throw this.#crashed
    if (this.#closed) throw new HexadError('HEXAD_CLOSED', 'the database is closed')
  }

  #crashed: HexadError | null = null

  /**
   * The writer stops at once, as a crash would (fault injection and
   * failover): every later call and every lock waiter gets `err`; commits in
   * flight are not acknowledged by this engine (their volume handle is
   * fenced by the new writer, which decides by recovery what is durable).
   */
  crash(err: HexadError): void {
    if (this.#crashed || this.#closed) return
    this.#crashed = err
    this.#closed = true
    this.locks.failAll(err)
    for (const p of this.#commitQueue.splice(0)) p.reject(err)
  }

  track<T>(p: Promise<T>): Promise<T> {
    this.#inflight.add(p)
    const done = () => { this.#inflight.delete(p) }
    p.then(done, done)
    return p
  }

  /**
   * The warm path of a point read at the durable point: synchronous, with no
   * snapshot registered (nothing can publish while it runs). Returns the
   * value (null when absent), or undefined when a page on the way is not
   * cached or the value lives in overflow pages (then use readAt).
   */
  readNow(ks: string, key: Uint8Array): Uint8Array | null | undefined {
    const root = this.keyspaces.get(ks)
    if (root === undefined) return null
    const r = this.store.resolve(root, key, this.store.durableSeq)
    if (r.found) return r.value && r.value.slice()
    let tree = this.#trees.get(root)
    if (!tree) { tree = new BTree(root); this.#trees.set(root, tree) }
    return tree.getCached(this.#peek, key, this.vol.pageSize)
  }

  /** Reads `key` of keyspace `ks` at `snapshot` (retrying a tree read that crossed a publication). */
  async readAt(ks: string, key: Uint8Array, snapshot: number): Promise<Uint8Array | null> {
    const root = this.keyspaces.get(ks)
    if (root === undefined) return null
    const tree = new BTree(root)
    for (;;) {
      const r = this.store.resolve(root, key, snapshot)
      if (r.found) return r.value && r.value.slice() // the caller owns what it gets
      // Warm path: every page on the way cached, synchronously (nothing can publish meanwhile).
      const hit = tree.getCached(this.#peek, key, this.vol.pageSize)
      if (hit !== undefined) return hit
      const seen = this.cache.publishes
      let v: Uint8Array | undefined
      try {
        v = await tree.get(this.readAccess, key)
      } catch (err) {
        if (this.cache.publishes !== seen) continue // crossed a publication (a freed page): start over
        throw err
      }
      if (this.cache.publishes === seen) return v ?? null
    }
  }

  /**
   * Entries of keyspace `ks` within `bounds` at `snapshot`, in order, one
   * leaf at a time (one non-empty array per leaf), each leaf merged with the
   * version store's entries for that span of keys (so a key changed after
   * the snapshot shows its value at the snapshot, and a key deleted since
   * still shows). The caller owns the arrays and the bytes in them.
   */
  async *scanAt(ks: string, b: Bounds, snapshot: number): AsyncGenerator<Array<[Uint8Array, Uint8Array]>> {
    const root = this.keyspaces.get(ks)
    if (root === undefined) return
    const tree = new BTree(root)
    const fwd = !b.reverse
    let after: Uint8Array | null = null
    for (;;) {
      const seen = this.cache.publishes
      let leaf: Awaited<ReturnType<BTree['scanLeaf']>>
      try {
        leaf = await tree.scanLeaf(this.readAccess, b, after, true)
      } catch (err) {
        if (this.cache.publishes !== seen) continue
        throw err
      }
      if (this.cache.publishes !== seen) continue
      // The span this leaf covers: (after, last key of the leaf], or to the end when done.
      const spanEnd = leaf.done ? null : leaf.entries.length ? leaf.entries[leaf.entries.length - 1][0] : null
      if (!leaf.done && spanEnd === null) continue
      // The version store's keys in the span, if any (none: the leaf's entries are the answer as they are).
      let changed: KeyVersions[] | null = null
      if (this.store.size > 0) {
        const from = after
        for (const e of this.store.entriesOf(root)) {
          const k = e.key
          if (!inBounds(k, b)) continue
          if (from && (fwd ? compareBytes(k, from) <= 0 : compareBytes(k, from) >= 0)) continue
          if (spanEnd && (fwd ? compareBytes(k, spanEnd) > 0 : compareBytes(k, spanEnd) < 0)) continue
          ;(changed ??= []).push(e)
        }
      }
      let out = leaf.entries
      if (changed !== null) {
        const merged = new Map<string, [Uint8Array, Uint8Array | null]>()
        for (const [k, v] of leaf.entries) merged.set(latin1(k), [k, v])
        for (const e of changed) {
          const v = valueAt(e, snapshot)
          merged.set(latin1(e.key), [e.key.slice(), v && v.slice()])
        }
        out = [...merged.values()].filter((x): x is [Uint8Array, Uint8Array] => x[1] !== null)
        out.sort((x, y) => fwd ? compareBytes(x[0], y[0]) : compareBytes(y[0], x[0]))
      }
      if (out.length) yield out
      if (leaf.done) return
      after = spanEnd
    }
  }

  /**
   * Resolves once commit `seq` is durable; rejects with HEXAD_QUORUM_LOST if
   * it is not within `ms` (its own writer then got that error too), or when
   * the engine stops.
   */
  whenDurable(seq: number, ms = 60_000): Promise<void> {
    if (seq <= this.store.durableSeq) return Promise.resolve()
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new HexadError('HEXAD_QUORUM_LOST', `this transaction read a commit (seq ${seq}) that did not become durable within ${ms} ms; it is not acknowledged`)), ms)
      this.store.whenDurable(seq).then(() => { clearTimeout(timer); resolve() })
    })
  }

  // ---------------------------------------------------------------- group commit

  readonly #commitQueue: PendingCommit[] = []
  #committing = false
  groups = 0

  /**
   * Commits `tx` (its writes sorted by keyspace and key) together with the
   * transactions that ask meanwhile: each group is ONE MTR (one set of page
   * copies and diffs, one volume write), built while the previous group's
   * redo is on its way. Members are validated in queue order, each also
   * against the members before it; one that fails validation is refused
   * alone. If building the MTR fails, nothing is published and the members
   * are retried one at a time, so only the culprit fails. Resolves with the
   * commit's seq and the group's durability promise.
   */
  groupCommit(tx: Transaction, writes: TxWrite[]): Promise<{ seq: number; durable: Promise<number> }> {
    return new Promise((resolve, reject) => {
      this.#commitQueue.push({ tx, writes, resolve, reject })
      if (!this.#committing) void this.#drainCommits()
    })
  }

  async #drainCommits(): Promise<void> {
    this.#committing = true
    try {
      while (this.#commitQueue.length) {
        let n = 0
        let bytes = 0
        while (n < this.#commitQueue.length && (n === 0 || (n < GROUP_COMMITS_MAX && bytes < GROUP_BYTES_MAX))) {
          for (const w of this.#commitQueue[n].writes) bytes += w.key.length + (w.value?.length ?? 0)
          n++
        }
        await this.#commitGroup(this.#commitQueue.splice(0, n))
      }
    } finally {
      this.#committing = false
    }
  }

  async #commitGroup(group: PendingCommit[]): Promise<void> {
    const created = new Map<string, number>()
    const refused = new Map<PendingCommit, unknown>()
    let r: { value: Array<{ p: PendingCommit; seq: number }>; durable: Promise<number> }
    try {
      r = await this.runner.run(async mtr => {
        const seen: GroupWrites = { ids: new Map(), list: [] }
        const applied: Array<{ p: PendingCommit; changes: Array<[number, Uint8Array, Uint8Array | null, Uint8Array | null]> }> = []
        for (const p of group) {
          try { p.tx._validate(group.length > 1 ? seen : undefined) } catch (err) { refused.set(p, err); continue }
          const changes: Array<[number, Uint8Array, Uint8Array | null, Uint8Array | null]> = []
          // The seq this member will get below (seqs are handed out only here, in member order).
          const seq = this.store.lastSeq + applied.length + 1
          for (const w of p.writes) {
            const root = await this.ensureKeyspace(mtr, w.ks, created)
            const tree = new BTree(root)
            let before: Uint8Array | null
            if (w.value) {
              const old: { value?: Uint8Array } = {}
              await tree.put(mtr, w.key, w.value, old) // one descent finds the old value and writes the new
              before = old.value ?? null
            } else {
              before = (await tree.get(mtr, w.key)) ?? null
              if (before) await tree.delete(mtr, w.key)
            }
            changes.push([root, w.key, w.value, before])
            if (group.length > 1) { seen.ids.set(w.ks + '\0' + latin1(w.key), seq); seen.list.push({ w, seq }) }
          }
          applied.push({ p, changes })
        }
        // Last, with no await after it: the versions become known in the same turn the pages are published.
        const out: Array<{ p: PendingCommit; seq: number }> = []
        for (const { p, changes } of applied) {
          const seq = this.store.nextSeq()
          for (const [root, key, value, before] of changes) this.store.record(root, key, seq, value, before)
          out.push({ p, seq })
        }
        return out
      }, () => { for (const [name, root] of created) this.keyspaces.set(name, root) },
      // every writer still open besides this group's members is a commit to come
      { siblings: Math.max(0, this.writers - group.length) })
    } catch (err) {
      if (group.length > 1) { for (const p of group) await this.#commitGroup([p]); return }
      group[0].reject(err)
      return
    }
    this.groups++
    for (const [p, err] of refused) p.reject(err)
    for (const { p, seq } of r.value) p.resolve({ seq, durable: r.durable })
  }

  /** Creates keyspace `name` inside `mtr` if it does not exist; returns its root. */
  async ensureKeyspace(mtr: Mtr, name: string, created: Map<string, number>): Promise<number> {
    const have = this.keyspaces.get(name) ?? created.get(name)
    if (have !== undefined) return have
    const root = await BTree.create(mtr)
    const v = Buffer.alloc(4)
    v.writeUInt32LE(root, 0)
    await this.catalog.put(mtr, enc.encode(name), v)
    created.set(name, root) // known to readers only once the MTR is published (see commit)
    return root
  }

  async close(): Promise<void> {
    if (this.#closed) return
    await Promise.allSettled([...this.#inflight])
    this.#closed = true
    this.locks.failAll(new HexadError('HEXAD_CLOSED', 'the database closed while this transaction waited for a lock'))
  }
}

/** A transaction: one snapshot for its reads, buffered writes, commit as one MTR. */
export class Transaction implements LockOwner {
  readonly id: number
  waitingFor: LockOwner | null = null
  readonly #e: Engine
  readonly snapshot: number
  readonly #writes = new Map<string, { ks: string; key: Uint8Array; value: Uint8Array | null }>()
  readonly #reads: Array<{ ks: string; key: Uint8Array }> = []
  readonly #ranges: Array<{ ks: string; b: Bounds }> = []
  readonly #lockKeys = new Set<string>()
  #state: 'active' | 'committing' | 'done' = 'active'
  /** counted in Engine.writers */
  #writer = false
  /** whether a locking read (latest value) was mixed with snapshot reads */
  #lockedRead = false
  /** the newest commit (seq) a locking read saw, maybe published but not yet durable */
  #dependsOn = 0

  /** @internal */
  constructor(e: Engine) {
    this.#e = e
    this.id = e.nextTxId()
    this.snapshot = e.store.acquire()
  }

  /** A view of this transaction on another keyspace. */
  keyspace(name: string): TxKeyspace {
    return new TxKeyspace(this, checkKeyspaceName(name))
  }

  get(key: Key): Promise<Uint8Array | undefined> { return this._get(DEFAULT_KEYSPACE, key) }
  /** Locking read: waits for the key's lock, then reads its latest committed value (no conflict on it at commit). */
  getForUpdate(key: Key): Promise<Uint8Array | undefined> { return this._getForUpdate(DEFAULT_KEYSPACE, key) }
  async getString(key: Key): Promise<string | undefined> { const v = await this.get(key); return v && dec.decode(v) }
  put(key: Key, value: Value): Promise<void> { return this._put(DEFAULT_KEYSPACE, key, value) }
  del(key: Key): Promise<void> { return this._del(DEFAULT_KEYSPACE, key) }
  scan(opts: ScanOptions = {}): AsyncGenerator<[Uint8Array, Uint8Array]> { return this._scan(DEFAULT_KEYSPACE, opts) }
  /** The entries of scan(), a leaf's worth at a time: one await per array of entries (for bulk reads). */
  scanBatches(opts: ScanOptions = {}): AsyncGenerator<Array<[Uint8Array, Uint8Array]>> { return this._scanBatches(DEFAULT_KEYSPACE, opts) }

  /** @internal */
  async _get(ks: string, key: Key): Promise<Uint8Array | undefined> {
    this.#check()
    const k = checkKey(toBytes(key, 'key'), this.#e.vol.pageSize)
    const id = ks + '\0' + latin1(k)
    const own = this.#writes.get(id)
    if (own) return own.value ?? undefined
    if (this.#lockKeys.has(id)) return this._getForUpdate(ks, key) // locked by us: latest value, no validation needed
    this.#reads.push({ ks, key: k })
    return (await this.#e.readAt(ks, k, this.snapshot)) ?? undefined
  }

  /**
   * @internal A locking read (SELECT ... FOR UPDATE): takes the key's write
   * lock first, then reads its latest committed value. The lock keeps it
   * current until commit, so it needs no validation: a read-modify-write of a
   * hot key queues instead of conflicting.
   */
  async _getForUpdate(ks: string, key: Key): Promise<Uint8Array | undefined> {
    this.#check()
    const k = checkKey(toBytes(key, 'key'), this.#e.vol.pageSize)
    const id = ks + '\0' + latin1(k)
    const own = this.#writes.get(id)
    if (own) return own.value ?? undefined
    await this.#lock(id, k, ks)
    this.#lockedRead = true
    // The newest published value: while we hold the lock nobody else can commit this key. The
    // previous holder released it when its commit was published, maybe before it was durable:
    // note that commit, so that this transaction is acknowledged only after it.
    const e = this.#e
    const root = e.keyspaces.get(ks)
    if (root !== undefined) {
      const newest = e.store.newestChange(root, k)
      if (newest > this.#dependsOn) this.#dependsOn = newest
    }
    return (await e.readAt(ks, k, Number.MAX_SAFE_INTEGER)) ?? undefined
  }

  async #lock(id: string, k: Uint8Array, ks: string): Promise<void> {
    if (this.#lockKeys.has(id)) return
    const wait = this.#e.locks.acquire(id, this, () => `key ${JSON.stringify(latin1(k).slice(0, 40))} of keyspace ${ks}`)
    this.#lockKeys.add(id)
    if (wait) {
      try { await wait } catch (err) { this.#lockKeys.delete(id); throw err }
    }
  }

  /** @internal */
  _put(ks: string, key: Key, value: Value): Promise<void> {
    return this._write(ks, key, copyValue(toBytes(value, 'value')))
  }

  /** @internal */
  _del(ks: string, key: Key): Promise<void> {
    return this._write(ks, key, null)
  }

  /** @internal */
  async _write(ks: string, key: Key, v: Uint8Array | null): Promise<void> {
    this.#check()
    const k = copyKey(key, this.#e.vol.pageSize)
    const id = ks + '\0' + latin1(k)
    if (!this.#writer) { this.#writer = true; this.#e.writers++ }
    await this.#lock(id, k, ks)
    this.#writes.set(id, { ks, key: k, value: v })
  }

  /** @internal */
  async *_scan(ks: string, opts: ScanOptions): AsyncGenerator<[Uint8Array, Uint8Array]> {
    for await (const batch of this._scanBatches(ks, opts)) yield* batch
  }

  /**
   * @internal The entries of scan(), a B+tree leaf's worth at a time (one
   * non-empty array per step), this transaction's own writes merged in.
   * A bulk reader pays one await per leaf instead of one per entry.
   */
  async *_scanBatches(ks: string, opts: ScanOptions): AsyncGenerator<Array<[Uint8Array, Uint8Array]>> {
    this.#check()
    const b = bounds(opts)
    const limit = checkLimit(opts.limit)
    if (limit === 0) return
    this.#ranges.push({ ks, b })
    // Own writes in range, merged over the snapshot.
    const own = [...this.#writes.values()].filter(w => w.ks === ks && inBounds(w.key, b))
    own.sort((x, y) => b.reverse ? compareBytes(y.key, x.key) : compareBytes(x.key, y.key))
    let oi = 0
    let n = 0
    const before = (x: Uint8Array, y: Uint8Array) => b.reverse ? compareBytes(x, y) > 0 : compareBytes(x, y) < 0
    for await (const batch of this.#e.scanAt(ks, b, this.snapshot)) {
      if (own.length === 0 && n + batch.length < limit) {
        // the usual case: nothing of this transaction's own in the range, the limit not reached
        n += batch.length
        yield batch
        continue
      }
      const out: Array<[Uint8Array, Uint8Array]> = []
      let full = false
      for (const [k, v] of batch) {
        while (oi < own.length && before(own[oi].key, k)) {
          const w = own[oi++]
          if (w.value) { out.push([w.key, w.value]); if (++n >= limit) { full = true; break } }
        }
        if (full) break
        if (oi < own.length && compareBytes(own[oi].key, k) === 0) {
          const w = own[oi++]
          if (w.value) { out.push([w.key, w.value]); if (++n >= limit) { full = true; break } }
          continue
        }
        out.push([k, v])
        if (++n >= limit) { full = true; break }
      }
      if (out.length) yield out
      if (full) return
    }
    const rest: Array<[Uint8Array, Uint8Array]> = []
    for (; oi < own.length && n < limit; oi++) if (own[oi].value) { rest.push([own[oi].key, own[oi].value!]); n++ }
    if (rest.length) yield rest
  }

  /** Commits; resolves once durable. Throws HEXAD_CONFLICT when serializability would break. */
  async commit(): Promise<void> {
    this.#check()
    this.#state = 'committing'
    const e = this.#e
    if (this.#writes.size === 0) {
      // A snapshot-only reader is serializable as of its snapshot; one that also took
      // locking reads (latest values) must check its snapshot reads are still current.
      if (this.#lockedRead) {
        try { this.#validate() } catch (err) { e.counters.conflicts++; this.#finish(); throw err }
      }
      // It may have read a commit that is published but not yet durable (locks are released
      // early): it is acknowledged only once that commit is durable, as a writer would be.
      const dep = this.#dependsOn
      this.#releaseLocks()
      try {
        if (dep > e.store.durableSeq) await e.whenDurable(dep)
      } finally {
        this.#finish()
      }
      return
    }
    let seq = 0
    let durable: Promise<number>
    try {
      const writes = [...this.#writes.values()].sort((x, y) => x.ks < y.ks ? -1 : x.ks > y.ks ? 1 : compareBytes(x.key, y.key))
      const r = await e.groupCommit(this, writes)
      this.#leaveWriters()
      seq = r.seq
      durable = r.durable
    } catch (err) {
      if ((err as HexadError).code === 'HEXAD_CONFLICT') e.counters.conflicts++
      this.#finish()
      throw err
    }
    // Early lock release: the writes are published (in the tree and the version store), so the
    // next transaction on these keys may go on now. Whatever it commits has a higher LSN and
    // becomes durable only after this commit (VDL is a prefix), so nothing acknowledged ever
    // depends on a commit that is not durable; a hot key is no longer held for a whole fsync.
    this.#releaseLocks()
    try {
      await durable
      e.counters.commits++
    } catch (err) {
      // Not acknowledged; if the volume still makes it durable later, it becomes visible then.
      const lsn = (err as { lsn?: number }).lsn
      if (lsn !== undefined) {
        e.vol.whenDurable(lsn).then(() => { e.store.markDurable(seq); e.store.prune() }, () => {})
        seq = 0
      }
      throw err
    } finally {
      if (seq) e.store.markDurable(seq)
      this.#finish()
      e.store.prune()
    }
  }

  /**
   * Whether this transaction holds a key lock another transaction waits
   * for (until it commits or aborts). A server serves such a transaction's
   * statements first: the waiters can go on only once it ends.
   */
  get blocksOthers(): boolean {
    // (a finished transaction has released its locks: #lockKeys is empty)
    for (const k of this.#lockKeys) if (this.#e.locks.heldAndWaited(k, this)) return true
    return false
  }

  /** Abandons the transaction: its writes are dropped and its locks released. */
  rollback(): void {
    if (this.#state === 'done') return
    this.#finish()
  }

  /** @internal Checks serializability against published commits and, in a commit group, the members before it. */
  _validate(group?: GroupWrites): void { this.#validate(group) }

  #validate(group?: GroupWrites): void {
    const e = this.#e
    for (const r of this.#reads) {
      const groupSeq = group?.ids.get(r.ks + '\0' + latin1(r.key))
      if (groupSeq !== undefined) {
        throw conflict(`serialization conflict: key ${JSON.stringify(latin1(r.key).slice(0, 40))} of keyspace ${r.ks}, read by transaction ${this.id}, was changed by a transaction committing in the same group before it; retry the transaction`, groupSeq)
      }
      const root = e.keyspaces.get(r.ks)
      if (root !== undefined && e.store.changedAfter(root, r.key, this.snapshot)) {
        throw conflict(`serialization conflict: key ${JSON.stringify(latin1(r.key).slice(0, 40))} of keyspace ${r.ks}, read by transaction ${this.id}, was changed by a transaction that committed after its snapshot; retry the transaction`, e.store.newestChange(root, r.key))
      }
    }
    for (const { ks, b } of this.#ranges) {
      if (group) for (const { w, seq } of group.list) {
        if (w.ks === ks && inBounds(w.key, b)) {
          throw conflict(`serialization conflict: a range of keyspace ${ks} scanned by transaction ${this.id} gained or lost key ${JSON.stringify(latin1(w.key).slice(0, 40))} in a transaction committing in the same group before it; retry the transaction`, seq)
        }
      }
      const root = e.keyspaces.get(ks)
      if (root === undefined) continue
      for (const entry of e.store.entriesOf(root)) {
        const last = entry.versions[entry.versions.length - 1]
        if (last && last.seq > this.snapshot && inBounds(entry.key, b)) {
          throw conflict(`serialization conflict: a range of keyspace ${ks} scanned by transaction ${this.id} gained or lost key ${JSON.stringify(latin1(entry.key).slice(0, 40))} in a transaction that committed after its snapshot; retry the transaction`, last.seq)
        }
      }
    }
  }

  #finish(): void {
    if (this.#state === 'done') return
    this.#state = 'done'
    this.#leaveWriters()
    this.#releaseLocks()
    this.#e.store.release(this.snapshot)
  }

  #leaveWriters(): void {
    if (!this.#writer) return
    this.#writer = false
    this.#e.writers--
  }

  #releaseLocks(): void {
    if (this.#lockKeys.size === 0) return
    this.#e.locks.releaseAll(this.#lockKeys, this)
    this.#lockKeys.clear()
  }

  #check(): void {
    this.#e.checkOpen()
    if (this.#state !== 'active') throw new HexadError('HEXAD_CLOSED', `transaction ${this.id} is ${this.#state === 'done' ? 'finished' : 'committing'}; start a new one`)
  }
}

/** A transaction's view of one keyspace. */
export class TxKeyspace {
  readonly #tx: Transaction
  readonly name: string
  constructor(tx: Transaction, name: string) { this.#tx = tx; this.name = name }
  get(key: Key) { return this.#tx._get(this.name, key) }
  /** Locking read: waits for the key's lock, then reads its latest committed value (no conflict on it at commit). */
  getForUpdate(key: Key) { return this.#tx._getForUpdate(this.name, key) }
  async getString(key: Key) { const v = await this.get(key); return v && dec.decode(v) }
  put(key: Key, value: Value) { return this.#tx._put(this.name, key, value) }
  del(key: Key) { return this.#tx._del(this.name, key) }
  scan(opts: ScanOptions = {}) { return this.#tx._scan(this.name, opts) }
  /** The entries of scan(), a leaf's worth at a time: one await per array of entries (for bulk reads). */
  scanBatches(opts: ScanOptions = {}) { return this.#tx._scanBatches(this.name, opts) }
}

/** A handle on one keyspace of the database: every call is its own transaction. */
export class Keyspace {
  readonly #e: Engine
  readonly name: string

  /** @internal */
  constructor(e: Engine, name: string) { this.#e = e; this.name = name }

  /**
   * The value of `key`, or undefined. The caller owns the returned bytes;
   * a small value may share its `.buffer` with other returned values (see
   * copyOut in btree.ts), so use byteOffset/byteLength and transfer a copy.
   */
  get(key: Key): Promise<Uint8Array | undefined> {
    let k: Uint8Array
    try {
      this.#e.checkOpen()
      k = checkKey(toBytes(key, 'key'), this.#e.vol.pageSize)
      const v = this.#e.readNow(this.name, k)
      if (v !== undefined) return Promise.resolve(v ?? undefined)
    } catch (err) {
      return Promise.reject(err)
    }
    return this.#getSlow(k)
  }

  async #getSlow(k: Uint8Array): Promise<Uint8Array | undefined> {
    const snap = this.#e.store.acquire()
    try { return (await this.#e.readAt(this.name, k, snap)) ?? undefined } finally { this.#e.store.release(snap) }
  }

  /** The value of `key` decoded as UTF-8, or undefined. */
  async getString(key: Key): Promise<string | undefined> {
    const v = await this.get(key)
    return v && dec.decode(v)
  }

  /** Writes one key; resolves once durable. Waits if another transaction holds the key's lock. */
  async put(key: Key, value: Value): Promise<void> { return this.batch([{ type: 'put', key, value }]) }

  /** Deletes one key (no error if absent); resolves once durable. */
  async del(key: Key): Promise<void> { return this.batch([{ type: 'del', key }]) }

  /** Applies every op as one atomic transaction. */
  async batch(ops: BatchOp[]): Promise<void> {
    this.#e.checkOpen()
    if (!Array.isArray(ops)) throw badInput('batch() takes an array of { type: "put" | "del", key, value? }')
    return this.#e.track(this.transaction(async tx => {
      for (const [i, op] of ops.entries()) {
        if (!op || typeof op !== 'object') throw badInput(`batch op #${i} must be an object`)
        if (op.type === 'put') await tx.put(op.key, op.value)
        else if (op.type === 'del') await tx.del(op.key)
        else throw badInput(`batch op #${i}: type must be "put" or "del", got ${JSON.stringify((op as { type?: unknown }).type)}`)
      }
    }))
  }

  /**
   * Starts an explicit transaction (for callers that cannot wrap their work
   * in one function, such as a SQL session between BEGIN and COMMIT). Call
   * `commit()` or `rollback()` on it; nothing is retried for you.
   */
  begin(): Transaction {
    this.#e.checkOpen()
    return new Transaction(this.#e)
  }

  /** Entries in key order (or reverse), within the bounds, at one snapshot. */
  async *scan(opts: ScanOptions = {}): AsyncGenerator<[Uint8Array, Uint8Array]> {
    for await (const batch of this.scanBatches(opts)) for (const e of batch) yield e
  }

  /**
   * The entries of scan(), a B+tree leaf's worth at a time (each array
   * non-empty, the caller's own): one await per leaf, for bulk reads.
   */
  async *scanBatches(opts: ScanOptions = {}): AsyncGenerator<Array<[Uint8Array, Uint8Array]>> {
    this.#e.checkOpen()
    const b = bounds(opts)
    const limit = checkLimit(opts.limit)
    if (limit === 0) return
    const snap = this.#e.store.acquire()
    try {
      let n = 0
      for await (const batch of this.#e.scanAt(this.name, b, snap)) {
        if (n + batch.length >= limit) { yield batch.length + n === limit ? batch : batch.slice(0, limit - n); return }
        n += batch.length
        yield batch
      }
    } finally {
      this.#e.store.release(snap)
    }
  }

  /**
   * Runs `fn` in a serializable transaction and commits it. On
   * HEXAD_CONFLICT or HEXAD_DEADLOCK it runs `fn` again, up to `retries`
   * times; any other error (or one thrown by `fn`) rolls back and rejects.
   */
  async transaction<T>(fn: (tx: TxKeyspace & { keyspace(name: string): TxKeyspace }) => Promise<T>, options: TransactionOptions = {}): Promise<T> {
    this.#e.checkOpen()
    if (typeof fn !== 'function') throw badInput(`transaction() takes an async function (tx) => ..., got ${typeof fn}`)
    if (options === null || typeof options !== 'object') throw badInput('transaction options must be an object')
    const retries = options.retries ?? 0
    if (!Number.isInteger(retries) || retries < 0) throw badInput(`transaction retries must be a non-negative integer, got ${String(retries)}`)
    for (let attempt = 0; ; attempt++) {
      const tx = new Transaction(this.#e)
      const view = Object.assign(new TxKeyspace(tx, this.name), { keyspace: (name: string) => tx.keyspace(name) })
      try {
        const value = await fn(view)
        await tx.commit()
        return value
      } catch (err) {
        tx.rollback()
        const code = (err as HexadError).code
        if ((code === 'HEXAD_CONFLICT' || code === 'HEXAD_DEADLOCK') && attempt < retries) {
          this.#e.counters.retries++
          // Retry on a snapshot that includes the commit we conflicted with, or we would conflict again.
          const seq = (err as { conflictSeq?: number }).conflictSeq
          if (seq) await this.#e.store.whenDurable(seq)
          continue
        }
        throw err
      }
    }
  }
}

function checkKey(k: Uint8Array, pageSize: number): Uint8Array {
  const max = maxKeyBytes(pageSize)
  if (k.length === 0) throw badInput(`key is empty; keys are 1..${max} bytes`)
  if (k.length > max) throw badInput(`key of ${k.length} bytes exceeds the ${max}-byte key limit (pageSize ${pageSize} / 8)`)
  return k
}

/** The store keeps its own copy: the caller may reuse its buffer. */
function copyKey(key: Key, pageSize: number): Uint8Array {
  const k = checkKey(toBytes(key, 'key'), pageSize)
  return typeof key === 'string' ? k : k.slice()
}

function copyValue(v: Uint8Array): Uint8Array {
  if (v.length > MAX_VALUE_BYTES) throw badInput(`value of ${v.length} bytes exceeds the ${MAX_VALUE_BYTES}-byte (16 MiB) limit`)
  return v.slice()
}

function conflict(message: string, seq: number): HexadError {
  return Object.assign(new HexadError('HEXAD_CONFLICT', message), { conflictSeq: seq })
}

function bounds(o: ScanOptions): Bounds {
  if (o === null || typeof o !== 'object') throw badInput('scan options must be an object')
  const b: Bounds = { reverse: !!o.reverse }
  for (const k of ['gt', 'gte', 'lt', 'lte'] as const) if (o[k] !== undefined) b[k] = toBytes(o[k]!, `scan bound ${k}`)
  if (b.gt && b.gte) throw badInput('scan: give gt or gte, not both')
  if (b.lt && b.lte) throw badInput('scan: give lt or lte, not both')
  return b
}

function checkLimit(limit: unknown): number {
  if (limit === undefined) return Infinity
  if (typeof limit !== 'number' || !Number.isInteger(limit) || limit < 0) throw badInput(`scan limit must be a non-negative integer, got ${String(limit)}`)
  return limit
}

export function checkKeyspaceName(name: unknown): string {
  // (a UTF-16 unit is at most 3 UTF-8 bytes: only a long name needs encoding to be measured)
  if (typeof name !== 'string' || name.length === 0 || (name.length * 3 > KEYSPACE_NAME_BYTES_MAX && enc.encode(name).length > KEYSPACE_NAME_BYTES_MAX)) {
    throw badInput(`keyspace name must be a non-empty string of at most ${KEYSPACE_NAME_BYTES_MAX} bytes, got ${JSON.stringify(name)}`)
  }
  return name
}

