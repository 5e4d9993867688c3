/**
 * Key-value benchmark: `npm run bench -- kv [options]`.
 *
 * hexad's key-value store (`openCluster(...).writer`) beside three embedded
 * peers, all opened in this process, in temp directories on the same
 * filesystem, fed the same seeded keys (16 random bytes) and values (100
 * random bytes), one workload at a time, every store in turn:
 *
 *   (a) 100k puts in transactions of 100 rows, one client    ops = rows/s (commit latency per 100-row transaction)
 *   (b) 20k single-put transactions from 64 concurrent       ops = commits/s
 *       clients (new keys: no lock contention)
 *   (c) 200k random point gets, warm cache                   ops = gets/s (after a full scan and a warm-up)
 *   (e) random range scans of 1,000 rows (gte + limit),      ops = scans/s (x 1,000 = rows/s)
 *       warm cache
 *   (d) 200k random point gets with a cache of 1/10 of the   ops = gets/s (every store closed and reopened first)
 *       data (keys + values bytes, at least 64 KiB)
 *
 * Stores and their durability settings:
 *   hexad           openCluster({ dir, cacheBytes: 64 MiB }); `batch()` / `put()` resolve once durable
 *                   (redo on 4 of 6 segments, fdatasync'd); reads `await db.get()`; (d) reopened with
 *                   cacheBytes = data / 10.
 *   better-sqlite3  table (k BLOB PRIMARY KEY, v BLOB) WITHOUT ROWID, journal_mode=WAL,
 *                   synchronous=FULL (fsync of the WAL at each commit), cache_size 64 MiB, (d): data / 10.
 *                   It is synchronous: in (b) its "64 clients" are 20k commits one after the other.
 *   lmdb            open({ path }) with binary keys and values, default overlappingSync (on for Linux):
 *                   each write awaits its transaction, then `await db.flushed` (resolves once the
 *                   commit is fsynced) - "commit awaited until flushed". lmdb batches the writes of
 *                   one event turn into one transaction (its group commit). Reads: sync `db.get()`.
 *   lmdb ovs:false  the same with overlappingSync: false (the fsync happens inside the commit):
 *                   in (a) and (b) only, on its own environment.
 *   classic-level   keyEncoding/valueEncoding 'buffer', `batch(ops, { sync: true })`,
 *                   `put(k, v, { sync: true })`, cacheSize 64 MiB ((d): data / 10); reads both as
 *                   `await db.get()` and `db.getSync()` (two rows).
 * In (d) every peer still reads through the OS page cache (which cannot be limited from here; the
 * whole data set fits in it): only hexad's, SQLite's and LevelDB's own caches are limited, and
 * lmdb has none but the page cache.
 *
 * Before (a) every store runs 100 untimed transactions of 100 rows (20 with --quick), with
 * keys and values of their own, into a namespace of its own (hexad: keyspace 'warmup';
 * SQLite: table warmup; lmdb and LevelDB: a second directory), so (a) measures a running
 * store, not its start: hexad's writer and six segment threads otherwise spend the first
 * seconds compiling their code (a fresh 50k-row run of (a) took 7.5 ms a commit cold and
 * 6.25 warm). The workloads never read those rows.
 *
 * Measured with tinybench. Write workloads: one run of exactly N iterations (one transaction
 * each; (b) with `concurrency: 'task'`, 64 in flight), ops/s = rows or commits / wall time of
 * the run; latency = per commit. Reads and scans: N iterations of one get or scan each, after
 * a warm-up; ops/s = 1 / mean latency (the time inside the operation, so tinybench's per-
 * iteration bookkeeping does not dilute the sub-microsecond gets of the peers; the wall-clock
 * rate is saved beside it). Ratios are hexad / peer within each round. Targets (issue):
 * (b) >= 10x better-sqlite3, (a) >= 0.7x better-sqlite3, (c) >= 1x lmdb.
 *
 * Every store is checked (not timed) after loading: 1,000 random keys read back equal to
 * what was written (with each read API), three scans compared row by row with the sorted
 * data; and every timed get must find its key, every timed scan return 1,000 rows.
 *
 * Options (flags or environment):
 *   --quick        | HEXAD_BENCH_QUICK=1   20k rows in (a), 4k in (b), 40k gets in (c), 20k in (d), 100 scans; 1 round
 *   --rounds=N     | HEXAD_BENCH_ROUNDS    rounds, each on fresh stores in a fresh directory, each starting with
 *                                         the next store in turn (default 3, quick 1); figures are medians over
 *                                         the rounds, ratios the median of the ratios within each round
 *   --stores=LIST  | HEXAD_BENCH_STORES    comma list of hexad, better-sqlite3, lmdb, lmdb-ovs-false, classic-level
 *   --seed=N       | HEXAD_BENCH_SEED      data and access-pattern seed (default 1)
 *
 * For hexad the report adds what explains its figures: redo and shipped bytes per commit,
 * transactions per shipped frame (group commit), fsyncs per segment, cache hits and misses,
 * volume page reads, CPU cores kept busy (the writer thread + six segment workers).
 * Results go to bench/results/kv.json; temp directories are removed at the end.
 */
import fs from 'node:fs'
import { createRequire } from 'node:module'
import os from 'node:os'
import path from 'node:path'
import { Bench } from 'tinybench'
import type { ClassicLevel } from 'classic-level'
import type { RootDatabase } from 'lmdb'
import { openCluster, type Cluster, type DatabaseStats, type SegmentStats, type VolumeStats } from '../engine/index.js'
import { replicationFloor, type FloorResult } from './floor.js'
import { cleanupTempDirs, fmt, gitInfo, hostInfo, makeTempDir, median, MiB, optionValue, refuseUnknownOptions, removeTempDir, repoRoot, table, writeResults } from './util.js'

// ------------------------------------------------------------------ config

interface Config {
  quick: boolean
  seed: number
  loadRows: number
  txRows: number
  /** untimed transactions of txRows rows each store runs before (a), into a namespace of their own */
  warmupTxs: number
  singlePuts: number
  clients: number
  gets: number
  getWarmup: number
  coldGets: number
  coldWarmup: number
  scans: number
  scanRows: number
  scanWarmup: number
  verifyKeys: number
  /** the warm cache of hexad, SQLite and LevelDB */
  cacheBytes: number
  stores: StoreId[]
  rounds: number
  command: string
}

const STORE_IDS = ['hexad', 'better-sqlite3', 'lmdb', 'lmdb-ovs-false', 'classic-level'] as const
type StoreId = typeof STORE_IDS[number]

const KEY_BYTES = 16
const VALUE_BYTES = 100

function parseConfig(args: string[]): Config {
  const env = process.env
  refuseUnknownOptions('kv', args, ['--quick', '--rounds=', '--stores=', '--seed='])
  const quick = args.includes('--quick') || env.HEXAD_BENCH_QUICK === '1'
  const storesArg = optionValue(args, 'stores') ?? env.HEXAD_BENCH_STORES
  const stores = storesArg ? storesArg.split(',').map(s => s.trim()).filter(Boolean) : [...STORE_IDS]
  for (const s of stores) if (!(STORE_IDS as readonly string[]).includes(s)) throw new Error(`kv: unknown store ${s} (known: ${STORE_IDS.join(', ')})`)
  const seedArg = optionValue(args, 'seed') ?? env.HEXAD_BENCH_SEED
  const seed = seedArg ? Number(seedArg) : 1
  if (!Number.isInteger(seed) || seed <= 0 || seed >= 2 ** 32) throw new Error(`kv: bad seed ${seedArg} (a positive 32-bit integer)`)
  const roundsArg = optionValue(args, 'rounds') ?? env.HEXAD_BENCH_ROUNDS
  const rounds = roundsArg !== undefined && roundsArg !== '' ? Number(roundsArg) : quick ? 1 : 3
  if (!Number.isInteger(rounds) || rounds < 1) throw new Error(`kv: bad rounds ${roundsArg}`)
  const envPart = Object.entries(env).filter(([k]) => k.startsWith('HEXAD_BENCH_')).map(([k, v]) => `${k}=${v} `).join('')
  return {
    quick,
    seed,
    loadRows: quick ? 20_000 : 100_000,
    txRows: 100,
    warmupTxs: quick ? 20 : 100,
    singlePuts: quick ? 4_000 : 20_000,
    clients: 64,
    gets: quick ? 40_000 : 200_000,
    getWarmup: quick ? 2_000 : 10_000,
    coldGets: quick ? 20_000 : 200_000,
    coldWarmup: quick ? 2_000 : 10_000,
    scans: quick ? 100 : 1_000,
    scanRows: 1_000,
    scanWarmup: quick ? 10 : 50,
    verifyKeys: 1_000,
    cacheBytes: 64 * MiB,
    stores: stores as StoreId[],
    rounds,
    command: `${envPart}node dist/bench/index.js kv${args.length ? ' ' + args.join(' ') : ''}`,
  }
}

// ------------------------------------------------------------------ data

/** xorshift32: the same keys, values and access patterns for every store and every run of a seed. */
function rng(seed: number): () => number {
  let s = seed >>> 0 || 1
  return () => {
    s ^= s << 13; s >>>= 0
    s ^= s >>> 17
    s ^= s << 5; s >>>= 0
    return s
  }
}

interface Data {
  rows: number
  keys: Buffer
  values: Buffer
  /** row indices in key order */
  sorted: Uint32Array
  /** logical bytes of the loaded rows (keys + values) */
  bytes: number
}

function makeData(rows: number, seed: number): Data {
  const next = rng(seed)
  const keys = Buffer.alloc(rows * KEY_BYTES)
  const values = Buffer.alloc(rows * VALUE_BYTES)
  const seen = new Set<string>()
  for (let i = 0; i < rows; i++) {
    for (;;) {
      for (let j = 0; j < KEY_BYTES; j += 4) keys.writeUInt32LE(next(), i * KEY_BYTES + j)
      const id = keys.toString('latin1', i * KEY_BYTES, (i + 1) * KEY_BYTES)
      if (!seen.has(id)) { seen.add(id); break }
    }
    for (let j = 0; j < VALUE_BYTES; j += 4) {
      const x = next()
      for (let b = 0; b < 4 && j + b < VALUE_BYTES; b++) values[i * VALUE_BYTES + j + b] = (x >>> (8 * b)) & 0xff
    }
  }
  const sorted = new Uint32Array(rows)
  for (let i = 0; i < rows; i++) sorted[i] = i
  sorted.sort((a, b) => Buffer.compare(keys.subarray(a * KEY_BYTES, (a + 1) * KEY_BYTES), keys.subarray(b * KEY_BYTES, (b + 1) * KEY_BYTES)))
  return { rows, keys, values, sorted, bytes: rows * (KEY_BYTES + VALUE_BYTES) }
}

let DATA: Data
const K = (i: number): Buffer => DATA.keys.subarray(i * KEY_BYTES, (i + 1) * KEY_BYTES)
const V = (i: number): Buffer => DATA.values.subarray(i * VALUE_BYTES, (i + 1) * VALUE_BYTES)
/** the warm-up rows (their own seed; written to a namespace of their own, never read by a workload) */
let WARM: Data
const WK = (i: number): Buffer => WARM.keys.subarray(i * KEY_BYTES, (i + 1) * KEY_BYTES)
const WV = (i: number): Buffer => WARM.values.subarray(i * VALUE_BYTES, (i + 1) * VALUE_BYTES)
type PutOp = { type: 'put'; key: Buffer; value: Buffer }
/** Put ops for rows [from, to) of the data (`warm`: of the warm-up rows). */
function putOps(from: number, to: number, warm = false): PutOp[] {
  const ops: PutOp[] = []
  for (let i = from; i < to; i++) ops.push({ type: 'put', key: warm ? WK(i) : K(i), value: warm ? WV(i) : V(i) })
  return ops
}

/** `n` random row indices below `rows` (uniform). */
function accessPattern(n: number, rows: number, seed: number): Uint32Array {
  const next = rng(seed)
  const out = new Uint32Array(n)
  for (let i = 0; i < n; i++) out[i] = next() % rows
  return out
}

// ------------------------------------------------------------------ stores

type MaybePromise<T> = T | Promise<T>
type OnRow = (k: Uint8Array, v: Uint8Array) => void

interface Getter {
  /** row label, e.g. "classic-level getSync()" */
  label: string
  async: boolean
  get(k: Buffer): MaybePromise<Uint8Array | undefined>
}

interface Store {
  id: StoreId
  label: string
  setting: string
  version: string
  writesOnly: boolean
  /** one durable transaction putting rows [from, to) */
  writeTx(from: number, to: number): MaybePromise<void>
  /** the same for warm-up rows [from, to), into a namespace of its own (a keyspace, a table or a directory) */
  warmupTx(from: number, to: number): MaybePromise<void>
  /** one durable single-put transaction */
  put(i: number): MaybePromise<void>
  getters: Getter[]
  /** scans `n` rows from `k` (gte), in key order, materialising keys and values; returns the row count (`onRow`: verification only) */
  scan(k: Buffer, n: number, onRow?: OnRow): MaybePromise<number>
  /** close and reopen with its own cache limited to `bytes` (where the store has one) */
  reopenSmallCache(bytes: number): Promise<string>
  close(): Promise<void>
}

const require = createRequire(import.meta.url)

function pkgVersion(name: string): string {
  try {
    return (JSON.parse(fs.readFileSync(path.join(repoRoot(), 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version
  } catch {
    return 'unknown'
  }
}

// -- hexad

interface HexadStore extends Store {
  cluster(): Cluster
}

async function openHexad(dir: string, cacheBytes: number): Promise<HexadStore> {
  let cluster = await openCluster({ dir, cacheBytes })
  let db = cluster.writer
  const store: HexadStore = {
    id: 'hexad',
    label: 'hexad',
    setting: `openCluster, cacheBytes ${fmt(cacheBytes / MiB)} MiB; commits durable on 4 of 6 segments (fdatasync)`,
    version: (JSON.parse(fs.readFileSync(path.join(repoRoot(), 'package.json'), 'utf8')) as { version: string }).version,
    writesOnly: false,
    writeTx: (from, to) => db.batch(putOps(from, to)),
    warmupTx: (from, to) => db.keyspace('warmup').batch(putOps(from, to, true)),
    put: i => db.put(K(i), V(i)),
    getters: [{ label: 'hexad', async: true, get: k => db.get(k) }],
    async scan(k, n, onRow) {
      let rows = 0
      for await (const e of db.scan({ gte: k, limit: n })) { onRow?.(e[0], e[1]); rows++ }
      return rows
    },
    async reopenSmallCache(bytes) {
      await cluster.close()
      cluster = await openCluster({ dir, cacheBytes: bytes })
      db = cluster.writer
      return `reopened with cacheBytes ${fmt(bytes / 1024)} KiB`
    },
    close: () => cluster.close(),
    cluster: () => cluster,
  }
  return store
}

// -- better-sqlite3 (no bundled types: the few calls used here)

interface SqliteStatement {
  run(...params: unknown[]): unknown
  get(...params: unknown[]): unknown
  all(...params: unknown[]): unknown[]
  pluck(on?: boolean): SqliteStatement
  raw(on?: boolean): SqliteStatement
}
interface SqliteDb {
  pragma(source: string, options?: { simple?: boolean }): unknown
  exec(source: string): void
  prepare(source: string): SqliteStatement
  transaction<A extends unknown[]>(fn: (...args: A) => void): (...args: A) => void
  close(): void
}
type SqliteCtor = new (file: string) => SqliteDb

function openSqlite(dir: string, cacheBytes: number): Store {
  const Database = require('better-sqlite3') as SqliteCtor
  const file = path.join(dir, 'kv.sqlite')
  let db!: SqliteDb
  let ins!: SqliteStatement, sel!: SqliteStatement, range!: SqliteStatement
  let tx!: (from: number, to: number) => void
  let warmTx!: (from: number, to: number) => void
  let sqliteVersion = ''
  const open = (cache: number) => {
    db = new Database(file)
    db.pragma('journal_mode = WAL')
    db.pragma('synchronous = FULL')
    db.pragma(`cache_size = -${Math.floor(cache / 1024)}`)
    db.exec('CREATE TABLE IF NOT EXISTS kv (k BLOB PRIMARY KEY, v BLOB) WITHOUT ROWID')
    const mode = db.pragma('journal_mode', { simple: true })
    const sync = db.pragma('synchronous', { simple: true })
    if (mode !== 'wal' || sync !== 2) throw new Error(`better-sqlite3: journal_mode=${String(mode)} synchronous=${String(sync)}, expected wal / 2 (FULL)`)
    sqliteVersion = String(db.prepare('SELECT sqlite_version()').pluck().get())
    ins = db.prepare('INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)')
    sel = db.prepare('SELECT v FROM kv WHERE k = ?').pluck()
    range = db.prepare('SELECT k, v FROM kv WHERE k >= ? ORDER BY k LIMIT ?').raw()
    tx = db.transaction((from: number, to: number) => { for (let i = from; i < to; i++) ins.run(K(i), V(i)) })
    db.exec('CREATE TABLE IF NOT EXISTS warmup (k BLOB PRIMARY KEY, v BLOB) WITHOUT ROWID')
    const warmIns = db.prepare('INSERT OR REPLACE INTO warmup (k, v) VALUES (?, ?)')
    warmTx = db.transaction((from: number, to: number) => { for (let i = from; i < to; i++) warmIns.run(WK(i), WV(i)) })
  }
  open(cacheBytes)
  return {
    id: 'better-sqlite3',
    label: 'better-sqlite3',
    setting: `SQLite ${sqliteVersion}, WAL, synchronous=FULL, WITHOUT ROWID, cache_size ${fmt(cacheBytes / MiB)} MiB; synchronous API (in (b) its clients run one after the other)`,
    version: pkgVersion('better-sqlite3'),
    writesOnly: false,
    writeTx: (from, to) => tx(from, to),
    warmupTx: (from, to) => warmTx(from, to),
    put: i => { ins.run(K(i), V(i)) },
    getters: [{ label: 'better-sqlite3', async: false, get: k => sel.get(k) as Buffer | undefined }],
    scan: (k, n, onRow) => {
      const rows = range.all(k, n) as Array<[Buffer, Buffer]>
      if (onRow) for (const [rk, rv] of rows) onRow(rk, rv)
      return rows.length
    },
    async reopenSmallCache(bytes) {
      db.close()
      open(bytes)
      return `reopened with cache_size ${fmt(bytes / 1024)} KiB (plus the OS page cache)`
    },
    async close() { db.close() },
  }
}

// -- lmdb

async function openLmdb(dir: string, overlappingSync: boolean): Promise<Store> {
  const lmdb = await import('lmdb')
  const db: RootDatabase<Buffer, Buffer> = lmdb.open<Buffer, Buffer>({
    path: path.join(dir, 'kv.mdb'), keyEncoding: 'binary', encoding: 'binary', compression: false,
    ...(overlappingSync ? {} : { overlappingSync: false }),
  })
  const id: StoreId = overlappingSync ? 'lmdb' : 'lmdb-ovs-false'
  let warm: RootDatabase<Buffer, Buffer> | undefined
  return {
    id,
    label: overlappingSync ? 'lmdb' : 'lmdb ovs:false',
    setting: overlappingSync
      ? 'default overlappingSync (on for Linux): await each transaction / put, then await db.flushed (fsynced); batches one event turn per txn'
      : 'overlappingSync: false (fsync inside the commit): await each transaction / put, then await db.flushed; writes only',
    version: pkgVersion('lmdb'),
    writesOnly: !overlappingSync,
    async writeTx(from, to) {
      await db.transaction(() => { for (let i = from; i < to; i++) db.put(K(i), V(i)) })
      await db.flushed
    },
    async warmupTx(from, to) {
      warm ??= lmdb.open<Buffer, Buffer>({ path: path.join(dir, 'warmup.mdb'), keyEncoding: 'binary', encoding: 'binary', compression: false, ...(overlappingSync ? {} : { overlappingSync: false }) })
      const w = warm
      await w.transaction(() => { for (let i = from; i < to; i++) w.put(WK(i), WV(i)) })
      await w.flushed
    },
    async put(i) {
      await db.put(K(i), V(i))
      await db.flushed
    },
    getters: [{ label: overlappingSync ? 'lmdb' : 'lmdb ovs:false', async: false, get: k => db.get(k) }],
    scan(k, n, onRow) {
      let rows = 0
      for (const e of db.getRange({ start: k, limit: n })) { onRow?.(e.key, e.value); rows++ }
      return rows
    },
    async reopenSmallCache() { return 'unchanged: memory-mapped, no cache of its own to limit (the OS page cache holds the data)' },
    async close() { await warm?.close(); await db.close() },
  }
}

// -- classic-level

async function openLevel(dir: string, cacheBytes: number): Promise<Store> {
  const { ClassicLevel: Level } = await import('classic-level')
  const location = path.join(dir, 'kv.level')
  const open = async (cache: number) => {
    const d = new Level<Buffer, Buffer>(location, { keyEncoding: 'buffer', valueEncoding: 'buffer', cacheSize: cache })
    await d.open()
    return d
  }
  let db: ClassicLevel<Buffer, Buffer> = await open(cacheBytes)
  let warm: ClassicLevel<Buffer, Buffer> | null = null
  const hasGetSync = typeof (db as { getSync?: unknown }).getSync === 'function'
  const getters: Getter[] = [{ label: 'classic-level get()', async: true, get: k => db.get(k) }]
  if (hasGetSync) getters.push({ label: 'classic-level getSync()', async: false, get: k => db.getSync(k) })
  return {
    id: 'classic-level',
    label: 'classic-level',
    setting: `batch(ops, { sync: true }) / put(k, v, { sync: true }), cacheSize ${fmt(cacheBytes / MiB)} MiB; reads with await get()${hasGetSync ? ' and getSync()' : ' (no getSync in this version)'}`,
    version: pkgVersion('classic-level'),
    writesOnly: false,
    async writeTx(from, to) { await db.batch(putOps(from, to), { sync: true }) },
    async warmupTx(from, to) {
      if (!warm) { warm = new Level<Buffer, Buffer>(path.join(dir, 'warmup.level'), { keyEncoding: 'buffer', valueEncoding: 'buffer' }); await warm.open() }
      await warm.batch(putOps(from, to, true), { sync: true })
    },
    put: i => db.put(K(i), V(i), { sync: true }),
    getters,
    async scan(k, n, onRow) {
      const rows = await db.iterator({ gte: k, limit: n }).all()
      if (onRow) for (const [rk, rv] of rows) onRow(rk, rv)
      return rows.length
    },
    async reopenSmallCache(bytes) {
      await db.close()
      db = await open(bytes)
      return `reopened with cacheSize ${fmt(bytes / 1024)} KiB (plus the OS page cache)`
    },
    async close() { await db.close() },
  }
}

// ------------------------------------------------------------------ measurements

type WorkloadId = 'a' | 'b' | 'c' | 'd' | 'e'

interface LatencyStats { samples: number; p50: number; p99: number; mean: number; max: number }

interface HexadDiag {
  commits: number
  mtrs: number
  redoBytesPerCommit: number
  cacheHits: number
  cacheMisses: number
  cacheHitRate: number
  evictions: number
  cachePagesAtEnd: number
  cacheBytesAtEnd: number
  cacheCapacityBytes: number
  volumeWrites: number
  volumePageReads: number
  framesShipped: number
  commitsPerFrame: number
  wireBytesPerCommit: number
  fsyncsPerSecPerSegment: number
  segmentsUp: number
}

interface Result {
  workload: WorkloadId
  store: StoreId
  label: string
  /** what one op is */
  unit: string
  ops: number
  seconds: number
  /** the rate compared: writes: ops / wall time; reads and scans: 1 / mean latency */
  opsPerSec: number
  wallOpsPerSec: number
  rowsPerSec: number
  /** per op: per commit (a, b), per get (c, d), per scan (e) */
  latencyMs: LatencyStats
  /** CPU time of this process (all threads) / wall time */
  cpuCores: number
  note?: string
  hexad?: HexadDiag
}

interface HexadSnap { db: DatabaseStats; vol: VolumeStats; seg: Array<SegmentStats | null>; t: number }

async function hexadSnap(c: Cluster): Promise<HexadSnap> {
  return { db: c.writer.stats(), vol: c.volume.stats(), seg: await c.volume.segmentStats(), t: performance.now() }
}

function hexadDiag(a: HexadSnap, b: HexadSnap): HexadDiag {
  const commits = b.db.commits - a.db.commits
  const frames = b.vol.framesShipped - a.vol.framesShipped
  const hits = b.db.cache.hits - a.db.cache.hits
  const misses = b.db.cache.misses - a.db.cache.misses
  const seconds = (b.t - a.t) / 1000
  let up = 0, fsyncs = 0
  for (let i = 0; i < b.seg.length; i++) {
    const x = b.seg[i], y = a.seg[i]
    if (!x || !y) continue
    up++
    fsyncs += x.fsyncs - y.fsyncs
  }
  return {
    commits,
    mtrs: b.db.mtrs - a.db.mtrs,
    redoBytesPerCommit: commits ? (b.db.redoBytes - a.db.redoBytes) / commits : 0,
    cacheHits: hits,
    cacheMisses: misses,
    cacheHitRate: hits + misses ? hits / (hits + misses) : 0,
    evictions: b.db.cache.evictions - a.db.cache.evictions,
    cachePagesAtEnd: b.db.cache.pages,
    cacheBytesAtEnd: b.db.cache.bytes,
    cacheCapacityBytes: b.db.cache.capacityBytes,
    volumeWrites: b.vol.writes - a.vol.writes,
    volumePageReads: b.vol.reads - a.vol.reads,
    framesShipped: frames,
    commitsPerFrame: frames ? commits / frames : 0,
    wireBytesPerCommit: commits ? (b.vol.bytesShipped - a.vol.bytesShipped) / commits : 0,
    fsyncsPerSecPerSegment: up && seconds ? fsyncs / up / seconds : 0,
    segmentsUp: up,
  }
}

function latencyOf(task: { result: unknown }, label: string): LatencyStats {
  const r = task.result as { state: string; latency?: { samplesCount: number; p50: number; p99: number; mean: number; max: number }; error?: Error }
  if (r.state !== 'completed' || !r.latency) throw new Error(`${label}: tinybench task ended in state ${r.state}${r.error ? ': ' + r.error.message : ''}`)
  const l = r.latency
  return { samples: l.samplesCount, p50: l.p50, p99: l.p99, mean: l.mean, max: l.max }
}

/** Prints "label: done / total" every few seconds, from inside the loop (sync tasks never yield to timers). */
class Progress {
  #t0 = performance.now()
  #last = performance.now()
  done = 0
  constructor(readonly label: string, readonly total: number, readonly unit: string, readonly everyMs = 3000) {}
  tick(n = 1): void {
    this.done += n
    if ((this.done & 255) !== 0 && this.done !== this.total) return
    const now = performance.now()
    if (now - this.#last < this.everyMs) return
    this.#last = now
    const rate = this.done / ((now - this.#t0) / 1000)
    console.log(`      ... ${this.label}: ${this.done.toLocaleString('en-US')} / ${this.total.toLocaleString('en-US')} ${this.unit} (${fmt(rate)}/s so far)`)
  }
}

interface RunSpec {
  workload: WorkloadId
  store: Store
  label: string
  unit: string
  rowsPerOp: number
  iterations: number
  warmupIterations: number
  /** concurrent tasks ('task' concurrency in tinybench) */
  concurrency: number
  async: boolean
  /** writes: ops/s by wall time; reads: by mean latency */
  rate: 'wall' | 'latency'
  fn: () => MaybePromise<void>
  hexad?: Cluster
  note?: string
}

async function measure(spec: RunSpec): Promise<Result> {
  let t0 = 0, t1 = 0, cpu0 = 0, cpu1 = 0
  let before: HexadSnap | null = null
  let after: HexadSnap | null = null
  const progress = new Progress(spec.label, spec.iterations * spec.rowsPerOp, spec.rowsPerOp > 1 ? 'rows' : spec.unit)
  let running = false
  const name = `${spec.workload} ${spec.label}`
  const bench = new Bench({
    name, time: 0, iterations: spec.iterations,
    warmup: spec.warmupIterations > 0, warmupTime: 0, warmupIterations: spec.warmupIterations,
    throws: true,
    ...(spec.concurrency > 1 ? { concurrency: 'task' as const, threshold: spec.concurrency } : {}),
  })
  const fn = spec.fn
  const task = spec.async
    ? async () => { await fn(); if (running) progress.tick(spec.rowsPerOp) }
    : () => { fn(); if (running) progress.tick(spec.rowsPerOp) }
  bench.add(name, task, {
    async: spec.async,
    beforeAll: async mode => {
      if (mode !== 'run') return
      if (spec.hexad) before = await hexadSnap(spec.hexad)
      running = true
      const c = process.cpuUsage(); cpu0 = c.user + c.system
      t0 = performance.now()
    },
    afterAll: async mode => {
      if (mode !== 'run') return
      t1 = performance.now()
      const c = process.cpuUsage(); cpu1 = c.user + c.system
      running = false
      if (spec.hexad) after = await hexadSnap(spec.hexad)
    },
  })
  await bench.run()
  const latencyMs = latencyOf(bench.getTask(name)!, name)
  if (latencyMs.samples !== spec.iterations) throw new Error(`${name}: ${latencyMs.samples} samples, expected ${spec.iterations}`)
  const seconds = (t1 - t0) / 1000
  const wallOpsPerSec = spec.iterations / seconds
  const opsPerSec = spec.rate === 'wall' ? wallOpsPerSec : 1000 / latencyMs.mean
  const b = before as HexadSnap | null
  const a = after as HexadSnap | null
  return {
    workload: spec.workload, store: spec.store.id, label: spec.label, unit: spec.unit,
    ops: spec.iterations, seconds, opsPerSec, wallOpsPerSec, rowsPerSec: opsPerSec * spec.rowsPerOp,
    latencyMs, cpuCores: (cpu1 - cpu0) / 1e6 / seconds,
    ...(spec.note ? { note: spec.note } : {}),
    ...(b && a ? { hexad: hexadDiag(b, a) } : {}),
  }
}

function printResult(r: Result): void {
  const rows = r.rowsPerSec !== r.opsPerSec ? ` = ${fmt(r.rowsPerSec).padStart(9)} rows/s` : ''
  const extra = r.hexad ? '  ' + hexadLine(r) : ''
  console.log(`    ${r.label.padEnd(24)} ${fmt(r.opsPerSec).padStart(10)} ${r.unit}/s${rows}  p50 ${fmt(r.latencyMs.p50)} ms  p99 ${fmt(r.latencyMs.p99)} ms  ` +
    `${fmt(r.seconds)} s  ${fmt(r.cpuCores, 2)} CPU cores${extra}`)
}

function hexadLine(r: Result): string {
  const h = r.hexad!
  if (r.workload === 'a' || r.workload === 'b') {
    return `[${fmt(h.redoBytesPerCommit)} B redo/commit, ${fmt(h.commitsPerFrame)} commits/frame, ${fmt(h.fsyncsPerSecPerSegment)} fsyncs/s/segment, ${h.cacheMisses} cache misses]`
  }
  return `[cache hit rate ${fmt(h.cacheHitRate * 100)}%, ${h.volumePageReads} volume page reads, ${h.evictions} evictions]`
}

// ------------------------------------------------------------------ workloads

const same = (a: Uint8Array, b: Uint8Array) => Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.byteLength), b) === 0

/** Not timed: `n` random keys read back equal to what was written; scans return exactly the rows in key order. */
async function verify(store: Store, rows: number, n: number, seed: number): Promise<void> {
  const idx = accessPattern(n, rows, seed)
  for (const g of store.getters) {
    for (const i of idx) {
      const v = await g.get(K(i))
      if (!v || !same(v, V(i))) {
        throw new Error(`${g.label}: key #${i} read back ${v ? 'a different value' : 'nothing'}`)
      }
    }
  }
  // from the start, from the middle, and one running off the end
  for (const start of [0, rows >> 1, Math.max(0, rows - 500)]) {
    let pos = start
    const got = await store.scan(K(DATA.sorted[start]), 1000, (k, v) => {
      const i = pos < rows ? DATA.sorted[pos] : -1
      if (i < 0 || !same(k, K(i)) || !same(v, V(i))) throw new Error(`${store.label}: scan from sorted row ${start}: row ${pos - start} is not sorted row ${pos}`)
      pos++
    })
    if (got !== Math.min(1000, rows - start)) throw new Error(`${store.label}: scan from sorted row ${start} returned ${got} rows, expected ${Math.min(1000, rows - start)}`)
  }
}

/** Not timed: reads every row once in key order (warms every cache, hexad's included). */
async function fullScan(store: Store, rows: number): Promise<void> {
  let n = 0
  for (let i = 0; i < rows; i += 1000) n += await store.scan(K(DATA.sorted[i]), Math.min(1000, rows - i), (_k, v) => { if (v.length !== VALUE_BYTES) throw new Error(`${store.label}: a value of ${v.length} bytes in the full scan`) })
  if (n !== rows) throw new Error(`${store.label}: full scan returned ${n} rows, expected ${rows}`)
}

async function runWrites(cfg: Config, stores: Store[], hexad: HexadStore | null, results: Result[]): Promise<void> {
  const txs = cfg.loadRows / cfg.txRows
  console.log(`\n[a] ${cfg.loadRows.toLocaleString('en-US')} puts in ${txs.toLocaleString('en-US')} transactions of ${cfg.txRows} rows, one client (ops = rows; latency per commit)`)
  console.log(`    each store first runs ${cfg.warmupTxs} untimed transactions of ${cfg.txRows} rows into a namespace of its own (hexad keyspace, SQLite table, lmdb and LevelDB directory): steady state, not start-up (hexad's seven threads each compile their code)`)
  for (const s of stores) {
    for (let t = 0; t < cfg.warmupTxs; t++) await s.warmupTx(t * cfg.txRows, (t + 1) * cfg.txRows)
    let next = 0
    const r = await measure({
      workload: 'a', store: s, label: s.label, unit: 'rows', rowsPerOp: cfg.txRows, iterations: txs, warmupIterations: 0,
      concurrency: 1, async: true, rate: 'wall', hexad: s === hexad ? hexad.cluster() : undefined,
      fn: () => { const t = next++; return s.writeTx(t * cfg.txRows, (t + 1) * cfg.txRows) },
    })
    // ops/s in rows: the op of (a) is one row put; its latency is per transaction.
    r.ops = cfg.loadRows; r.opsPerSec = r.rowsPerSec; r.wallOpsPerSec *= cfg.txRows
    results.push(r)
    printResult(r)
  }

  console.log(`\n[b] ${cfg.singlePuts.toLocaleString('en-US')} single-put transactions (new keys), ${cfg.clients} concurrent clients (ops = commits)`)
  for (const s of stores) {
    let next = cfg.loadRows
    const r = await measure({
      workload: 'b', store: s, label: s.label, unit: 'commits', rowsPerOp: 1, iterations: cfg.singlePuts, warmupIterations: 0,
      concurrency: cfg.clients, async: true, rate: 'wall', hexad: s === hexad ? hexad.cluster() : undefined,
      note: s.id === 'better-sqlite3' ? 'synchronous API: the 64 clients are sequential commits' : undefined,
      fn: () => s.put(next++),
    })
    results.push(r)
    printResult(r)
  }
}

async function runGets(cfg: Config, workload: 'c' | 'd', stores: Store[], hexad: HexadStore | null, results: Result[], n: number, warmup: number): Promise<void> {
  const rows = cfg.loadRows + cfg.singlePuts
  const pattern = accessPattern(n + warmup, rows, cfg.seed * 7919 + (workload === 'c' ? 1 : 2))
  for (const s of stores) {
    for (const g of s.getters) {
      let pos = 0
      const missing = (i: number) => new Error(`${g.label}: key #${i} not found`)
      const r = await measure({
        workload, store: s, label: g.label, unit: 'gets', rowsPerOp: 1, iterations: n, warmupIterations: warmup,
        concurrency: 1, async: g.async, rate: 'latency', hexad: s === hexad ? hexad.cluster() : undefined,
        fn: g.async
          ? async () => { const i = pattern[pos++]; if (!(await g.get(K(i)))) throw missing(i) }
          : () => { const i = pattern[pos++]; if (!g.get(K(i))) throw missing(i) },
      })
      results.push(r)
      printResult(r)
    }
  }
}

async function runScans(cfg: Config, stores: Store[], hexad: HexadStore | null, results: Result[]): Promise<void> {
  const rows = cfg.loadRows + cfg.singlePuts
  const pattern = accessPattern(cfg.scans + cfg.scanWarmup, rows - cfg.scanRows + 1, cfg.seed * 7919 + 3)
  console.log(`\n[e] ${cfg.scans.toLocaleString('en-US')} range scans of ${cfg.scanRows.toLocaleString('en-US')} rows from random keys (gte + limit), warm cache (ops = scans)`)
  for (const s of stores) {
    let pos = 0
    const check = (got: number) => { if (got !== cfg.scanRows) throw new Error(`${s.label}: a scan returned ${got} rows, expected ${cfg.scanRows}`) }
    const r = await measure({
      workload: 'e', store: s, label: s.label, unit: 'scans', rowsPerOp: cfg.scanRows, iterations: cfg.scans, warmupIterations: cfg.scanWarmup,
      concurrency: 1, async: true, rate: 'latency', hexad: s === hexad ? hexad.cluster() : undefined,
      fn: async () => { check(await s.scan(K(DATA.sorted[pattern[pos++]]), cfg.scanRows)) },
    })
    results.push(r)
    printResult(r)
  }
}

// ------------------------------------------------------------------ rounds and report

interface Ratio { workload: WorkloadId; peer: string; value: number; perRound: number[]; target?: number; pass?: boolean }

const TARGETS: Array<{ workload: WorkloadId; peer: string; min: number }> = [
  { workload: 'a', peer: 'better-sqlite3', min: 0.7 },
  { workload: 'b', peer: 'better-sqlite3', min: 10 },
  { workload: 'c', peer: 'lmdb', min: 1 },
]

const WORKLOADS: WorkloadId[] = ['a', 'b', 'c', 'd', 'e']

/**
 * Ratios are taken within each round (hexad and the peer ran seconds apart,
 * so load drift on a shared machine mostly cancels); the value is the median
 * over the rounds.
 */
function ratios(rounds: Result[][]): Ratio[] {
  const out: Ratio[] = []
  const first = rounds[0] ?? []
  for (const w of WORKLOADS) {
    for (const p of first.filter(r => r.workload === w && r.store !== 'hexad')) {
      const perRound: number[] = []
      for (const rr of rounds) {
        const h = rr.find(r => r.workload === w && r.store === 'hexad')
        const q = rr.find(r => r.workload === w && r.label === p.label)
        if (h && q) perRound.push(h.opsPerSec / q.opsPerSec)
      }
      if (!perRound.length) continue
      const value = median(perRound)
      const t = TARGETS.find(x => x.workload === w && x.peer === p.label)
      out.push({ workload: w, peer: p.label, value, perRound, ...(t ? { target: t.min, pass: value >= t.min } : {}) })
    }
  }
  return out
}

interface Summary extends Result { perRound: number[] }

/** Per workload and store: the median over rounds of ops/s and of the latency figures; the hexad diagnosis of the median round. */
function summarize(rounds: Result[][]): Summary[] {
  const out: Summary[] = []
  for (const w of WORKLOADS) {
    for (const r0 of (rounds[0] ?? []).filter(r => r.workload === w)) {
      const all = rounds.map(rr => rr.find(r => r.workload === w && r.label === r0.label)).filter((x): x is Result => !!x)
      const ops = all.map(r => r.opsPerSec)
      const m = median(ops)
      const mid = all.reduce((best, r) => Math.abs(r.opsPerSec - m) < Math.abs(best.opsPerSec - m) ? r : best)
      out.push({
        ...mid,
        ops: all.reduce((n, r) => n + r.ops, 0),
        seconds: all.reduce((n, r) => n + r.seconds, 0),
        opsPerSec: m,
        wallOpsPerSec: median(all.map(r => r.wallOpsPerSec)),
        rowsPerSec: median(all.map(r => r.rowsPerSec)),
        latencyMs: {
          samples: all.reduce((n, r) => n + r.latencyMs.samples, 0),
          p50: median(all.map(r => r.latencyMs.p50)),
          p99: median(all.map(r => r.latencyMs.p99)),
          mean: median(all.map(r => r.latencyMs.mean)),
          max: Math.max(...all.map(r => r.latencyMs.max)),
        },
        cpuCores: median(all.map(r => r.cpuCores)),
        perRound: ops,
      })
    }
  }
  return out
}

function workloadTitles(cfg: Config): Record<WorkloadId, string> {
  const n = (x: number) => x >= 1000 && x % 1000 === 0 ? `${x / 1000}k` : String(x)
  return {
    a: `(a) ${n(cfg.loadRows)} puts, ${cfg.txRows}/tx, 1 client`,
    b: `(b) ${n(cfg.singlePuts)} 1-put tx, ${cfg.clients} clients`,
    c: `(c) ${n(cfg.gets)} gets, warm`,
    d: `(d) ${n(cfg.coldGets)} gets, cache 1/10`,
    e: `(e) ${n(cfg.scans)} scans of ${n(cfg.scanRows)} rows`,
  }
}

function printReport(cfg: Config, summary: Summary[], rs: Ratio[], stores: StoreInfo[], notes: string[]): void {
  console.log('\n================ hexad key-value benchmark ================')
  console.log('\nStores:')
  for (const s of stores) console.log(`  ${s.label.padEnd(15)} ${s.version.padEnd(8)} ${s.setting}`)
  const titles = workloadTitles(cfg)
  const multi = cfg.rounds > 1
  const header = ['workload', 'store', 'ops/s', 'op', 'rows/s', 'p50 ms', 'p99 ms', 'CPU cores', 'hexad/peer', 'target', 'result']
  if (multi) header.push('ratio per round')
  const rows: Array<Array<string | number>> = [header]
  let last: WorkloadId | null = null
  for (const r of summary) {
    const ratio = rs.find(x => x.workload === r.workload && x.peer === r.label)
    const row: Array<string | number> = [
      r.workload === last ? '' : titles[r.workload], r.label, fmt(r.opsPerSec), r.unit.replace(/s$/, ''),
      r.rowsPerSec === r.opsPerSec ? '' : fmt(r.rowsPerSec),
      fmt(r.latencyMs.p50), fmt(r.latencyMs.p99), fmt(r.cpuCores, 2),
      ratio ? `${fmt(ratio.value)}x` : '', ratio?.target !== undefined ? `>= ${ratio.target}x` : '',
      ratio?.pass === undefined ? '' : ratio.pass ? 'PASS' : 'FAIL',
    ]
    if (multi) row.push(ratio ? ratio.perRound.map(x => fmt(x)).join(' / ') : '')
    rows.push(row)
    last = r.workload
  }
  console.log(`\nResults${multi ? ` (median of ${cfg.rounds} rounds)` : ''} (ops/s: writes = rows or commits / wall time; gets and scans = 1 / mean latency; latency per commit, get or scan; CPU: this process, all threads):`)
  console.log(table(rows))
  const hx = summary.filter(r => r.hexad)
  if (hx.length) {
    console.log(`\nhexad, what explains the figures (deltas over each timed run${multi ? ', median round' : ''}):`)
    const hr: Array<Array<string | number>> = [['workload', 'commits', 'redo B/commit', 'wire B/commit', 'commits/frame', 'fsyncs/s/seg', 'cache hits', 'misses', 'hit rate', 'evictions', 'vol page reads', 'cache pages', 'cache MiB / capacity']]
    for (const r of hx) {
      const h = r.hexad!
      hr.push([titles[r.workload], h.commits, fmt(h.redoBytesPerCommit), fmt(h.wireBytesPerCommit), fmt(h.commitsPerFrame), fmt(h.fsyncsPerSecPerSegment),
        h.cacheHits, h.cacheMisses, `${fmt(h.cacheHitRate * 100)}%`, h.evictions, h.volumePageReads, h.cachePagesAtEnd, `${fmt(h.cacheBytesAtEnd / MiB)} / ${fmt(h.cacheCapacityBytes / MiB)}`])
    }
    console.log(table(hr))
  }
  if (rs.some(r => r.target !== undefined)) {
    console.log('\nTargets:')
    for (const r of rs.filter(x => x.target !== undefined)) {
      console.log(`  ${titles[r.workload]}: hexad / ${r.peer} = ${fmt(r.value)}x (target >= ${r.target}x) ${r.pass ? 'PASS' : 'FAIL'}${multi ? `   per round: ${r.perRound.map(x => fmt(x)).join(' / ')}` : ''}`)
    }
  }
  if (notes.length) {
    console.log('\nNotes:')
    for (const n of notes) console.log(`  - ${n}`)
  }
}

// ------------------------------------------------------------------ one round

interface StoreInfo { id: StoreId; label: string; version: string; setting: string }

interface RoundOut { results: Result[]; stores: StoreInfo[]; notes: string[]; hexadTreeBytes: number | null }

/** Fresh stores in a fresh directory, every workload, everything closed and removed at the end. */
async function oneRound(cfg: Config, round: number, smallCache: number): Promise<RoundOut> {
  const totalRows = cfg.loadRows + cfg.singlePuts
  const root = makeTempDir('kv')
  const open: Store[] = []
  const notes: string[] = []
  const results: Result[] = []
  const storeInfo: StoreInfo[] = []
  let hexad: HexadStore | null = null
  let hexadTreeBytes: number | null = null
  try {
    for (const id of cfg.stores) {
      const dir = path.join(root, id)
      fs.mkdirSync(dir)
      try {
        const s = id === 'hexad' ? (hexad = await openHexad(dir, cfg.cacheBytes))
          : id === 'better-sqlite3' ? openSqlite(dir, cfg.cacheBytes)
            : id === 'lmdb' ? await openLmdb(dir, true)
              : id === 'lmdb-ovs-false' ? await openLmdb(dir, false)
                : await openLevel(dir, cfg.cacheBytes)
        open.push(s)
        storeInfo.push({ id: s.id, label: s.label, version: s.version, setting: s.setting })
      } catch (err) {
        if (id === 'hexad') throw err
        const msg = `${id} could not be opened and is left out: ${(err as Error).message.split('\n')[0]}`
        console.log(`  ${msg}`)
        notes.push(msg)
      }
    }
    // Each round starts the workloads with a different store, so no store always runs first (or last).
    const shift = (round - 1) % open.length
    const stores = [...open.slice(shift), ...open.slice(0, shift)]
    if (cfg.rounds > 1) console.log(`\n---------------- round ${round} of ${cfg.rounds} (order: ${stores.map(s => s.label).join(', ')}) ----------------`)

    await runWrites(cfg, stores, hexad, results)

    // The writes-only variants are done: close them, free their space.
    for (const s of stores.filter(x => x.writesOnly)) {
      await s.close()
      open.splice(open.indexOf(s), 1)
      removeTempDir(path.join(root, s.id))
    }
    const readers = stores.filter(x => !x.writesOnly)

    console.log(`\nchecking every store (not timed): ${cfg.verifyKeys} random keys read back with each read API, three scans compared row by row; then one full scan each to warm the caches`)
    for (const s of readers) {
      const tv = performance.now()
      await verify(s, totalRows, cfg.verifyKeys, cfg.seed * 31 + 5)
      await fullScan(s, totalRows)
      console.log(`    ${s.label.padEnd(24)} ok (${fmt(performance.now() - tv)} ms)`)
    }
    if (hexad) {
      const st = hexad.cluster().writer.stats().cache
      hexadTreeBytes = st.bytes
      console.log(`    hexad's cache after the full scan: ${st.pages} pages, ${fmt(st.bytes / MiB)} MiB (about the size of its tree, plus the warm-up keyspace), ${st.misses} misses since open`)
    }

    console.log(`\n[c] ${cfg.gets.toLocaleString('en-US')} random point gets, warm cache, one client, after ${cfg.getWarmup.toLocaleString('en-US')} warm-up gets (ops = gets)`)
    await runGets(cfg, 'c', readers, hexad, results, cfg.gets, cfg.getWarmup)

    await runScans(cfg, readers, hexad, results)

    console.log(`\n[d] ${cfg.coldGets.toLocaleString('en-US')} random point gets with a cache of 1/10 of the data (${fmt(smallCache / 1024)} KiB), after ${cfg.coldWarmup.toLocaleString('en-US')} warm-up gets (ops = gets)`)
    for (const s of readers) {
      const tr = performance.now()
      const how = await s.reopenSmallCache(smallCache)
      console.log(`    ${s.label.padEnd(24)} ${how} (${fmt(performance.now() - tr)} ms)`)
    }
    console.log('    note: the peers still read through the OS page cache (it cannot be limited from here and holds all their data)')
    await runGets(cfg, 'd', readers, hexad, results, cfg.coldGets, cfg.coldWarmup)
  } finally {
    for (const s of open) { try { await s.close() } catch (err) { console.error(`closing ${s.label}: ${(err as Error).message}`) } }
    removeTempDir(root)
  }
  return { results, stores: storeInfo, notes, hexadTreeBytes }
}

// ------------------------------------------------------------------ entry

export async function run(args: string[]): Promise<unknown> {
  const cfg = parseConfig(args)
  const host = hostInfo()
  const git = gitInfo()
  console.log(`hexad key-value benchmark${cfg.quick ? ' (quick)' : ''}`)
  console.log(`command: ${cfg.command}   (npm: npm run bench -- kv${args.length ? ' ' + args.join(' ') : ''})`)
  console.log(`host: ${host.cpus} x ${host.cpuModel}, ${host.memGiB} GiB, node ${host.node}, ${host.platform}, temp dirs in ${host.tmpdir}`)
  if (git) console.log(`engine at commit ${git.commit}${git.engineDirty ? ' + uncommitted changes in engine/' : ''}`)
  console.log(`load average at start: ${host.loadavg.join(' ')}${host.loadavg[0] > host.cpus ? '  (busy machine: expect noisy numbers)' : ''}`)

  const totalRows = cfg.loadRows + cfg.singlePuts
  const t0 = performance.now()
  DATA = makeData(totalRows, cfg.seed)
  WARM = makeData(cfg.warmupTxs * cfg.txRows, cfg.seed + 1)
  const smallCache = Math.max(64 * 1024, Math.floor(DATA.bytes / 10))
  console.log(`data: ${totalRows.toLocaleString('en-US')} rows of ${KEY_BYTES} B random keys + ${VALUE_BYTES} B random values = ${fmt(DATA.bytes / MiB)} MiB ` +
    `(seed ${cfg.seed}, generated in ${fmt(performance.now() - t0)} ms); (d) cache = ${fmt(smallCache / 1024)} KiB; ${cfg.rounds} round(s), fresh stores each`)
  try {
    const rounds: RoundOut[] = []
    for (let round = 1; round <= cfg.rounds; round++) {
      const r = await oneRound(cfg, round, smallCache)
      rounds.push(r)
      if (round === 1) {
        console.log('stores:')
        for (const s of r.stores) console.log(`  ${s.label.padEnd(15)} ${s.version.padEnd(8)} ${s.setting}`)
      }
    }
    const storeInfo = rounds[0].stores
    const notes = [...new Set(rounds.flatMap(r => r.notes))]
    notes.push(`in (d) the peers still read through the OS page cache, which cannot be limited from here and holds all their data; only their own caches are limited ` +
      `(SQLite cache_size and LevelDB cacheSize = ${fmt(smallCache / 1024)} KiB; lmdb has none). hexad's misses go to a segment worker (a thread round trip), ` +
      `which reads its page store through the same OS page cache`)
    const treeBytes = rounds[0].hexadTreeBytes
    if (treeBytes) notes.push(`hexad's tree took ${fmt(treeBytes / MiB)} MiB of pages (its cache after a full scan; it also holds the ${(cfg.warmupTxs * cfg.txRows).toLocaleString('en-US')} rows of the warm-up keyspace) for ${fmt(DATA.bytes / MiB)} MiB of keys + values: the (d) cache is ${fmt(smallCache / treeBytes * 100)}% of its pages`)
    if (storeInfo.some(s => s.id === 'better-sqlite3')) notes.push(`better-sqlite3 is synchronous: in (b) its ${cfg.clients} "clients" are ${cfg.singlePuts.toLocaleString('en-US')} commits one after the other (one fsync each); the others overlap their commits (group commit)`)
    if (storeInfo.some(s => s.id.startsWith('lmdb'))) notes.push('lmdb "commit awaited until flushed": default overlappingSync, each write awaited and then `await db.flushed`; "lmdb ovs:false" = overlappingSync: false, the faster durable setting in ECOSYSTEM.md')

    // The floor of a replicated commit here, with no engine code: six threads append + fdatasync, fourth ack.
    const floorDir = makeTempDir('bench-kv-floor')
    let floor: FloorResult[] = []
    try { floor = await replicationFloor(floorDir, [400, 34_000], cfg.quick ? 100 : 300) } finally { removeTempDir(floorDir) }

    const perRound = rounds.map(r => r.results)
    const summary = summarize(perRound)
    const rs = ratios(perRound)
    const sqliteA = summary.find(x => x.workload === 'a' && x.store === 'better-sqlite3')
    if (floor.length) {
      notes.push(`replication floor on this machine (six threads, append + fdatasync, durable at the 4th ack, one frame at a time, no engine code): ` +
        floor.map(f => `${f.frameBytes.toLocaleString('en-US')} B frames p50 ${fmt(f.p50Ms)} ms (mean ${fmt(f.meanMs)} ms)`).join(', ') +
        (sqliteA ? `; better-sqlite3's whole 100-row commit in (a): p50 ${fmt(sqliteA.latencyMs.p50)} ms` : ''))
    }
    printReport(cfg, summary, rs, storeInfo, notes)
    const loadEnd = os.loadavg().map(x => Math.round(x * 100) / 100)
    console.log(`\nload average at start ${host.loadavg.join(' ')}, at end ${loadEnd.join(' ')} (${host.cpus} CPUs; hexad's six segment workers + the writer share them)`)
    const out = {
      benchmark: 'kv',
      date: new Date().toISOString(),
      command: cfg.command,
      git,
      host: { ...host, loadavgEnd: loadEnd },
      config: {
        quick: cfg.quick, rounds: cfg.rounds, seed: cfg.seed, keyBytes: KEY_BYTES, valueBytes: VALUE_BYTES,
        loadRows: cfg.loadRows, txRows: cfg.txRows, warmupTxs: cfg.warmupTxs, singlePuts: cfg.singlePuts, clients: cfg.clients,
        gets: cfg.gets, getWarmup: cfg.getWarmup, coldGets: cfg.coldGets, coldWarmup: cfg.coldWarmup,
        scans: cfg.scans, scanRows: cfg.scanRows, scanWarmup: cfg.scanWarmup,
        dataBytes: DATA.bytes, warmCacheBytes: cfg.cacheBytes, smallCacheBytes: smallCache, hexadTreeBytes: treeBytes,
      },
      stores: storeInfo,
      replicationFloor: floor,
      summary,
      ratios: rs,
      rounds: perRound,
      notes,
    }
    const file = writeResults('kv', out)
    console.log(`\nresults written to ${path.relative(process.cwd(), file) || file}`)
    console.log(`command: ${cfg.command}`)
    return out
  } finally {
    cleanupTempDirs()
  }
}
