/**
 * Shared helpers for the key-value (compute node) tests: temporary clusters
 * with small volume settings, an independent sorted model of a keyspace,
 * random keys and values, scan-bound generation, and small async utilities
 * (a gate, a liveness guard, collecting a scan).
 *
 * The model does not import engine code: it orders keys by their latin1
 * strings (one char per byte, so string order is unsigned byte order) and
 * applies scan bounds with its own comparisons.
 */
import * as assert from 'uvu/assert'
import { openCluster, type Cluster, type ClusterOptions } from '../../engine/index.js'
import { makeTempDir, rmTempDir, type Rng } from './volume-helpers.js'

export { baseSeed, cleanupTempDirs, makeTempDir, pool, rejectsWith, rmTempDir, sleep, throwsWith, withSeed, Rng } from './volume-helpers.js'

// ------------------------------------------------------------------ clusters

/** Small volume settings so each test file runs quickly on two cores. */
export function kvOptions(dir: string, over: Partial<ClusterOptions> = {}): ClusterOptions {
  return { dir, pagesPerGroup: 64, logFileBytes: 1 << 20, checkpointLogBytes: 2 << 20, ...over }
}

/**
 * Opens a cluster in `dir`, runs `fn`, always closes it. A close that does
 * not finish within `CLOSE_GUARD_MS` (it waits for commits in flight, and a
 * commit stuck behind a leaked lock never ends) fails the test instead of
 * hanging the file; the volume is then closed directly so its workers stop.
 */
export async function withCluster<T>(dir: string, over: Partial<ClusterOptions>, fn: (cluster: Cluster) => Promise<T>): Promise<T> {
  const cluster = await openCluster(kvOptions(dir, over))
  let result: T
  try {
    result = await fn(cluster)
  } catch (err) {
    await closeGuarded(cluster).catch(() => {})
    throw err
  }
  await closeGuarded(cluster)
  return result
}

const CLOSE_GUARD_MS = 10_000

/** cluster.close(), failing (after closing the volume directly) if it hangs. */
export async function closeGuarded(cluster: Cluster): Promise<void> {
  try {
    await settlesWithin(cluster.close(), CLOSE_GUARD_MS, 'cluster.close()')
  } catch (err) {
    await cluster.volume.close().catch(() => {})
    throw err
  }
}

/** A fresh temporary directory with a cluster in it for `fn`; the directory is removed afterwards (kept on failure with HEXAD_KEEP). */
export async function withTempCluster<T>(tag: string, over: Partial<ClusterOptions>, fn: (cluster: Cluster, dir: string) => Promise<T>): Promise<T> {
  const dir = makeTempDir(tag)
  const r = await withCluster(dir, over, c => fn(c, dir))
  rmTempDir(dir)
  return r
}

// ------------------------------------------------------------------ bytes

const enc = new TextEncoder()
const dec = new TextDecoder()

export function u8(v: string | Uint8Array): Uint8Array { return typeof v === 'string' ? enc.encode(v) : v }
export function utf8(v: Uint8Array): string { return dec.decode(v) }

/** One char per byte: string order of these equals unsigned byte order. */
export function latin1(b: Uint8Array): string { return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('latin1') }
export function fromLatin1(s: string): Uint8Array { return new Uint8Array(Buffer.from(s, 'latin1')) }

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

/** A short printable description of a key or value for messages. */
export function show(b: Uint8Array | undefined | null): string {
  if (b === undefined) return 'undefined'
  if (b === null) return 'null'
  const printable = b.length <= 48 && b.every(x => x >= 0x20 && x < 0x7f)
  if (printable) return JSON.stringify(latin1(b))
  const hex = Buffer.from(b.buffer, b.byteOffset, Math.min(b.byteLength, 24)).toString('hex')
  return `<${b.length} bytes ${hex}${b.length > 24 ? '…' : ''}>`
}

/** Asserts a value read back equals the expected one (undefined for absent). */
export function assertValue(got: Uint8Array | undefined, want: Uint8Array | undefined, what: string): void {
  if (want === undefined) {
    assert.ok(got === undefined, `${what}: expected absent, got ${show(got)}`)
    return
  }
  assert.ok(got instanceof Uint8Array, `${what}: expected ${show(want)}, got ${show(got)}`)
  assert.ok(bytesEqual(got!, want), `${what}: expected ${show(want)}, got ${show(got)}`)
}

// ------------------------------------------------------------------ the model

export interface Bounds { gt?: Uint8Array; gte?: Uint8Array; lt?: Uint8Array; lte?: Uint8Array; reverse?: boolean; limit?: number }

/** A plain sorted map of byte-string keys to byte-string values. */
export class SortedModel {
  readonly #m = new Map<string, Uint8Array>()
  #sorted: string[] | null = []

  get size(): number { return this.#m.size }

  get(key: Uint8Array | string): Uint8Array | undefined { return this.#m.get(latin1(u8(key))) }

  put(key: Uint8Array | string, value: Uint8Array | string): void {
    const k = latin1(u8(key))
    if (!this.#m.has(k)) this.#sorted = null
    this.#m.set(k, u8(value).slice())
  }

  del(key: Uint8Array | string): void {
    const k = latin1(u8(key))
    if (this.#m.delete(k)) this.#sorted = null
  }

  #keys(): string[] {
    if (!this.#sorted) this.#sorted = [...this.#m.keys()].sort((a, b) => a < b ? -1 : a > b ? 1 : 0)
    return this.#sorted
  }

  /** Entries within `b`, in byte order (or reverse), up to `b.limit`. */
  entries(b: Bounds = {}): Array<[Uint8Array, Uint8Array]> {
    const gt = b.gt && latin1(b.gt), gte = b.gte && latin1(b.gte), lt = b.lt && latin1(b.lt), lte = b.lte && latin1(b.lte)
    let ks = this.#keys().filter(k => (gt === undefined || k > gt) && (gte === undefined || k >= gte) && (lt === undefined || k < lt) && (lte === undefined || k <= lte))
    if (b.reverse) ks = ks.reverse()
    if (b.limit !== undefined) ks = ks.slice(0, b.limit)
    return ks.map(k => [fromLatin1(k), this.#m.get(k)!])
  }

  keys(): Uint8Array[] { return this.#keys().map(fromLatin1) }

  clone(): SortedModel {
    const m = new SortedModel()
    for (const [k, v] of this.#m) m.#m.set(k, v)
    m.#sorted = null
    return m
  }
}

/** Collects an async iterator of [key, value] (copies nothing). */
export async function collect(it: AsyncIterable<[Uint8Array, Uint8Array]>): Promise<Array<[Uint8Array, Uint8Array]>> {
  const out: Array<[Uint8Array, Uint8Array]> = []
  for await (const e of it) out.push(e)
  return out
}

/** The entries of a batched scan, in order; checks that no batch is empty and hands the batch sizes to `sizes`. */
export async function collectBatches(it: AsyncIterable<Array<[Uint8Array, Uint8Array]>>, sizes?: (counts: number[]) => void): Promise<Array<[Uint8Array, Uint8Array]>> {
  const out: Array<[Uint8Array, Uint8Array]> = []
  const counts: number[] = []
  for await (const batch of it) {
    if (batch.length === 0) throw new Error(`batch ${counts.length} of a batched scan is empty`)
    counts.push(batch.length)
    out.push(...batch)
  }
  sizes?.(counts)
  return out
}

/** Compares a scan's entries with the model's, naming the first difference. */
export function assertEntries(got: Array<[Uint8Array, Uint8Array]>, want: Array<[Uint8Array, Uint8Array]>, what: string): void {
  const n = Math.min(got.length, want.length)
  for (let i = 0; i < n; i++) {
    if (!bytesEqual(got[i][0], want[i][0])) assert.unreachable(`${what}: entry ${i} has key ${show(got[i][0])}, expected ${show(want[i][0])} (got ${got.length} entries, expected ${want.length})`)
    if (!bytesEqual(got[i][1], want[i][1])) assert.unreachable(`${what}: entry ${i} (key ${show(got[i][0])}) has value ${show(got[i][1])}, expected ${show(want[i][1])}`)
  }
  if (got.length !== want.length) {
    const extra = got.length > want.length ? `extra key ${show(got[n][0])}` : `missing key ${show(want[n][0])}`
    assert.unreachable(`${what}: got ${got.length} entries, expected ${want.length} (first difference at ${n}: ${extra})`)
  }
}

/** A readable description of scan bounds for messages. */
export function showBounds(b: Bounds): string {
  const parts: string[] = []
  for (const k of ['gt', 'gte', 'lt', 'lte'] as const) if (b[k]) parts.push(`${k}: ${show(b[k])}`)
  if (b.reverse) parts.push('reverse')
  if (b.limit !== undefined) parts.push(`limit: ${b.limit}`)
  return `{ ${parts.join(', ')} }`
}

// ------------------------------------------------------------------ random keys and values

const PREFIXES = ['user/', 'user/a', 'user/ab', 'order/', 'o', 'z', '\u00ff', '\u0000', 'k']

/**
 * A pool of `n` distinct keys with shared prefixes: printable keys under a
 * few prefixes (some keys are prefixes of others), binary keys with 0x00 and
 * 0xff bytes, one-byte keys, and a few near the 512-byte limit.
 */
export function keyPool(rng: Rng, n: number, maxKeyBytes = 512): Uint8Array[] {
  const seen = new Set<string>()
  const out: Uint8Array[] = []
  const add = (k: Uint8Array) => {
    if (k.length === 0 || k.length > maxKeyBytes) return
    const s = latin1(k)
    if (seen.has(s)) return
    seen.add(s)
    out.push(k)
  }
  let guard = 0
  while (out.length < n && guard++ < n * 50) {
    const r = rng.float()
    if (r < 0.55) {
      const p = rng.pick(PREFIXES)
      const tail = Array.from({ length: rng.int(0, 6) }, () => rng.pick(['a', 'b', 'c', '0', '1', '/', '~'])).join('')
      add(fromLatin1(p + tail))
    } else if (r < 0.75) {
      // a key that extends an existing one (prefix relationships)
      if (out.length) { const base = rng.pick(out); add(concat(base, rng.bytes(rng.int(1, 3)))) }
    } else if (r < 0.93) {
      const b = rng.bytes(rng.int(1, 24))
      if (rng.bool(0.3)) b[0] = rng.pick([0x00, 0xff])
      add(b)
    } else if (r < 0.97) {
      add(new Uint8Array([rng.int(0, 255)]))
    } else {
      const b = rng.bytes(rng.int(maxKeyBytes - 8, maxKeyBytes))
      b[0] = 0x6d // 'm': keep long keys in the middle of the order
      add(b)
    }
  }
  return out
}

export function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length)
  out.set(a, 0)
  out.set(b, a.length)
  return out
}

/**
 * A random value: mostly small, some empty, some just around the inline
 * limit (1 KiB at 4 KiB pages), some up to ~20 KB (overflow chains).
 * Contents are cheap pseudo-random bytes derived from `rng`.
 */
export function randomValue(rng: Rng, maxBytes = 20_000): Uint8Array {
  const r = rng.float()
  let n: number
  if (r < 0.05) n = 0
  else if (r < 0.65) n = rng.int(1, 64)
  else if (r < 0.8) n = rng.int(65, 900)
  else if (r < 0.88) n = rng.int(1000, 1100)
  else n = rng.int(1100, maxBytes)
  return patternBytes(n, rng.int(0, 0xffffffff))
}

/** `n` bytes of a cheap xorshift pattern seeded by `seed` (fast for large values). */
export function patternBytes(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n)
  let x = (seed >>> 0) || 1
  for (let i = 0; i < n; i++) {
    x ^= x << 13; x >>>= 0
    x ^= x >>> 17
    x ^= x << 5; x >>>= 0
    b[i] = x & 0xff
  }
  return b
}

/**
 * Passes a key to the engine in one of several equal forms: the bytes, a
 * copy that is a view into a larger buffer (non-zero byteOffset), a Buffer,
 * or the string when the bytes are valid UTF-8 that round-trips.
 */
export function keyForm(rng: Rng, k: Uint8Array): string | Uint8Array {
  const r = rng.float()
  if (r < 0.25) {
    const s = dec.decode(k)
    if (bytesEqual(enc.encode(s), k)) return s
  }
  if (r < 0.5) {
    const big = new Uint8Array(k.length + 7)
    big.set(k, 3)
    return big.subarray(3, 3 + k.length)
  }
  if (r < 0.7) return Buffer.from(k)
  return k.slice()
}

/**
 * Random scan bounds over `keys`: each of lower (none | gt | gte) and upper
 * (none | lt | lte), at an existing key or at a random one; reverse and
 * limit (including 0 unless `zeroLimit: false`) sometimes.
 */
export function randomBounds(rng: Rng, keys: readonly Uint8Array[], o: { zeroLimit?: boolean } = {}): Bounds {
  const at = (): Uint8Array => keys.length > 0 && rng.bool(0.7) ? rng.pick(keys) : rng.bool(0.5) ? fromLatin1(rng.pick(PREFIXES)) : rng.bytes(rng.int(1, 4))
  const b: Bounds = {}
  const lo = rng.int(0, 2), hi = rng.int(0, 2)
  if (lo === 1) b.gt = at()
  if (lo === 2) b.gte = at()
  if (hi === 1) b.lt = at()
  if (hi === 2) b.lte = at()
  if (rng.bool(0.4)) b.reverse = true
  if (rng.bool(0.3)) b.limit = rng.pick(o.zeroLimit === false ? [1, 2, 5, 17, 100] : [0, 1, 2, 5, 17, 100])
  return b
}

// ------------------------------------------------------------------ async utilities

/** A one-shot gate: `wait()` resolves once `open()` was called. */
export class Gate {
  #open!: () => void
  readonly promise: Promise<void>
  opened = false
  constructor() { this.promise = new Promise<void>(r => { this.#open = r }) }
  open(): void { this.opened = true; this.#open() }
  wait(): Promise<void> { return this.promise }
}

/**
 * A liveness guard, not a timing assertion: fails the test instead of
 * hanging it forever when `p` never settles (a missed wake-up, a leaked
 * lock, an undetected deadlock). `ms` is generous.
 */
export async function settlesWithin<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const hang = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`${what}: did not settle within ${ms} ms (hang: lost wake-up, leaked lock or undetected deadlock?)`)), ms) })
  try {
    return await Promise.race([p, hang])
  } finally {
    clearTimeout(timer)
  }
}

/** Whether `p` has settled after letting pending callbacks run for `ms` (for "is still waiting" checks). */
export async function isSettled(p: Promise<unknown>, ms = 30): Promise<boolean> {
  let settled = false
  p.then(() => { settled = true }, () => { settled = true })
  await new Promise(r => setTimeout(r, ms))
  return settled
}

/** Error code of a rejection reason (undefined if it has none). */
export function codeOf(err: unknown): string | undefined {
  return (err as { code?: string } | null)?.code
}
