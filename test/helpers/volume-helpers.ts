/**
 * Shared helpers for the volume tests: a seeded PRNG, temporary directories,
 * an independent page model, random MTR generation, and small polling and
 * error-matching utilities.
 *
 * The model deliberately does not import engine/common/page-ops.ts: it
 * re-implements the four page ops with plain loops, so a bug in the engine's
 * op code cannot hide behind the same bug in the model.
 */
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import * as assert from 'uvu/assert'
import { HexadError, openVolume } from '../../engine/index.js'
import type { PageOp, PageWrite, Volume, VolumeOptions } from '../../engine/index.js'

// ------------------------------------------------------------------ seeds and PRNG

/** mulberry32: a tiny 32-bit seeded PRNG. Returns floats in [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

export class Rng {
  readonly seed: number
  readonly #next: () => number
  constructor(seed: number) { this.seed = seed >>> 0; this.#next = mulberry32(this.seed) }
  float(): number { return this.#next() }
  /** integer in [lo, hi] inclusive */
  int(lo: number, hi: number): number { return lo + Math.floor(this.#next() * (hi - lo + 1)) }
  bool(p = 0.5): boolean { return this.#next() < p }
  pick<T>(xs: readonly T[]): T { return xs[Math.floor(this.#next() * xs.length)] }
  bytes(n: number): Uint8Array {
    const b = new Uint8Array(n)
    for (let i = 0; i < n; i++) b[i] = Math.floor(this.#next() * 256)
    return b
  }
  /** n distinct items of xs, in random order */
  sample<T>(xs: readonly T[], n: number): T[] {
    const copy = [...xs]
    for (let i = copy.length - 1; i > 0; i--) { const j = Math.floor(this.#next() * (i + 1)); [copy[i], copy[j]] = [copy[j], copy[i]] }
    return copy.slice(0, Math.min(n, copy.length))
  }
}

/**
 * The base seed of a test file: HEXAD_SEED if set (to replay a failure),
 * otherwise a fresh random one. Each test derives its own seed from it.
 */
export function baseSeed(): number {
  const env = process.env.HEXAD_SEED
  if (env !== undefined && env !== '') {
    const n = Number(env)
    if (!Number.isInteger(n)) throw new Error(`HEXAD_SEED must be an integer, got ${env}`)
    return n >>> 0
  }
  return (Math.random() * 0x1_0000_0000) >>> 0
}

/**
 * Runs `fn` with an Rng seeded from the file's base seed and the test's
 * index k; on failure prints the seeds and how to replay (HEXAD_SEED is the
 * base seed, so every test of the file replays with its own seed), then
 * rethrows so uvu reports the failure.
 */
export async function withSeed(file: string, name: string, base: number, k: number, fn: (rng: Rng) => Promise<void>): Promise<void> {
  const seed = (base + k) >>> 0
  const rng = new Rng(seed)
  try {
    await fn(rng)
  } catch (err) {
    console.error(`\n[${file}] "${name}" failed (base seed ${base}, test seed ${seed}); replay with: HEXAD_SEED=${base} node test/run.mjs ${file}`)
    throw err
  }
}

// ------------------------------------------------------------------ temp dirs

const made: string[] = []

/** A fresh directory under os.tmpdir(), removed by cleanupTempDirs() or rmTempDir(). */
export function makeTempDir(tag: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `hexad-${tag}-`))
  made.push(dir)
  return dir
}

export function rmTempDir(dir: string): void {
  if (process.env.HEXAD_KEEP) { console.error(`kept ${dir}`); return }
  fs.rmSync(dir, { recursive: true, force: true })
  const i = made.indexOf(dir)
  if (i >= 0) made.splice(i, 1)
}

export function cleanupTempDirs(): void {
  for (const d of [...made]) rmTempDir(d)
}

// ------------------------------------------------------------------ options

/** Small settings so each test file runs quickly on two cores. */
export function smallOptions(dir: string, over: Partial<VolumeOptions> = {}): VolumeOptions {
  return {
    dir, pagesPerGroup: 4, logFileBytes: 256 * 1024, checkpointLogBytes: 512 * 1024, coalesceThreshold: 4,
    quorumTimeoutMs: 10_000, readTimeoutMs: 3000, gossipIntervalMs: 10, ...over,
  }
}

/** Opens, runs fn, always closes. */
export async function withVolume<T>(opts: VolumeOptions, fn: (vol: Volume) => Promise<T>): Promise<T> {
  const vol = await openVolume(opts)
  try {
    return await fn(vol)
  } finally {
    await vol.close()
  }
}

// ------------------------------------------------------------------ the model

/** Applies one page op to `page` in place, written independently of the engine's page-ops. */
export function modelApplyOp(page: Uint8Array, op: PageOp): void {
  const size = page.length
  switch (op.op) {
    case 'init': {
      for (let i = 0; i < size; i++) page[i] = 0
      if (op.image) for (let i = 0; i < op.image.length && i < size; i++) page[i] = op.image[i]
      return
    }
    case 'write': {
      for (let i = 0; i < op.bytes.length; i++) page[op.offset + i] = op.bytes[i]
      return
    }
    case 'move': {
      // memmove: take a copy of the source first, so overlap cannot matter.
      const tmp: number[] = []
      for (let i = 0; i < op.len; i++) tmp.push(page[op.src + i])
      for (let i = 0; i < op.len; i++) page[op.dst + i] = tmp[i]
      return
    }
    case 'fill': {
      for (let i = 0; i < op.len; i++) page[op.offset + i] = op.byte
      return
    }
  }
}

/** A plain map of page id to image; pages never written are zeros. */
export class PageModel {
  readonly pageSize: number
  readonly pages = new Map<number, Uint8Array>()
  constructor(pageSize = 4096) { this.pageSize = pageSize }

  get(pageId: number): Uint8Array {
    return this.pages.get(pageId) ?? new Uint8Array(this.pageSize)
  }

  applyMtr(mtr: PageWrite[]): void {
    for (const w of mtr) {
      let p = this.pages.get(w.pageId)
      if (!p) { p = new Uint8Array(this.pageSize); this.pages.set(w.pageId, p) }
      for (const op of w.ops) modelApplyOp(p, op)
    }
  }

  clone(): PageModel {
    const m = new PageModel(this.pageSize)
    for (const [k, v] of this.pages) m.pages.set(k, v.slice())
    return m
  }
}

/** An MTR and the CPL LSN the volume gave it (0 while unknown). */
export interface MtrRecord { mtr: PageWrite[]; lsn: number }

/** The model after every MTR with lsn <= at (MTRs applied in LSN order). */
export function modelAt(history: MtrRecord[], at: number, pageSize = 4096): PageModel {
  const m = new PageModel(pageSize)
  for (const h of [...history].filter(h => h.lsn > 0 && h.lsn <= at).sort((a, b) => a.lsn - b.lsn)) m.applyMtr(h.mtr)
  return m
}

/**
 * Models at each of the given read points, built in one pass over the
 * history sorted by LSN.
 */
export function modelsAt(history: MtrRecord[], points: number[], pageSize = 4096): Map<number, PageModel> {
  const sorted = [...history].filter(h => h.lsn > 0).sort((a, b) => a.lsn - b.lsn)
  const pts = [...new Set(points)].sort((a, b) => a - b)
  const out = new Map<number, PageModel>()
  const m = new PageModel(pageSize)
  let i = 0
  for (const p of pts) {
    while (i < sorted.length && sorted[i].lsn <= p) m.applyMtr(sorted[i++].mtr)
    out.set(p, m.clone())
  }
  return out
}

// ------------------------------------------------------------------ random MTRs

/** A random valid [start, start+len) range inside a page, biased to short ranges and the edges. */
function randomRange(rng: Rng, size: number, maxLen: number): [number, number] {
  const r = rng.float()
  let len: number
  if (r < 0.05) len = 0
  else if (r < 0.75) len = rng.int(1, Math.min(64, maxLen))
  else len = rng.int(1, Math.min(maxLen, size))
  const e = rng.float()
  let start: number
  if (e < 0.1) start = 0
  else if (e < 0.2) start = size - len
  else start = rng.int(0, size - len)
  return [start, len]
}

export function randomOp(rng: Rng, pageSize: number, maxLen = 1024): PageOp {
  const k = rng.float()
  if (k < 0.08) {
    const v = rng.float()
    if (v < 0.3) return { op: 'init' }
    if (v < 0.4) return { op: 'init', image: new Uint8Array(0) }
    if (v < 0.5) return { op: 'init', image: rng.bytes(pageSize) }
    return { op: 'init', image: rng.bytes(rng.int(1, Math.min(pageSize, maxLen))) }
  }
  if (k < 0.55) {
    const [offset, len] = randomRange(rng, pageSize, maxLen)
    return { op: 'write', offset, bytes: rng.bytes(len) }
  }
  if (k < 0.8) {
    // overlapping moves on purpose, both directions
    const [src, len] = randomRange(rng, pageSize, maxLen)
    let dst: number
    if (rng.bool(0.5)) dst = Math.max(0, Math.min(pageSize - len, src + rng.int(-Math.max(1, len), Math.max(1, len))))
    else dst = rng.int(0, pageSize - len)
    return { op: 'move', src, dst, len }
  }
  const [offset, len] = randomRange(rng, pageSize, maxLen)
  return { op: 'fill', offset, len, byte: rng.int(0, 255) }
}

/** An MTR of 1..maxRecords records over `pages`, each with 1..maxOps ops. */
export function randomMtr(rng: Rng, pages: readonly number[], pageSize: number, o: { maxRecords?: number; maxOps?: number; maxLen?: number } = {}): PageWrite[] {
  const n = rng.int(1, o.maxRecords ?? 4)
  const mtr: PageWrite[] = []
  for (let i = 0; i < n; i++) {
    const ops: PageOp[] = []
    const k = rng.int(1, o.maxOps ?? 3)
    for (let j = 0; j < k; j++) ops.push(randomOp(rng, pageSize, o.maxLen))
    mtr.push({ pageId: rng.pick(pages), ops })
  }
  return mtr
}

/** Runs `items` through `fn` with at most `limit` in flight. */
export async function pool<T>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const i = next++
      await fn(items[i], i)
    }
  }))
}

// ------------------------------------------------------------------ assertions

export function firstDiff(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length)
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i
  return a.length === b.length ? -1 : n
}

export function pagesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return firstDiff(a, b) < 0
}

/** Byte-for-byte comparison with a message that says where they differ. */
export function assertPage(actual: Uint8Array, expected: Uint8Array, what: string): void {
  assert.ok(actual instanceof Uint8Array, `${what}: expected a Uint8Array, got ${typeof actual}`)
  const d = firstDiff(actual, expected)
  if (d >= 0) {
    const show = (x: Uint8Array) => Array.from(x.subarray(d, d + 8)).map(b => b.toString(16).padStart(2, '0')).join(' ')
    assert.unreachable(`${what}: differs from the model at byte ${d} (length ${actual.length} vs ${expected.length}): got [${show(actual)}] expected [${show(expected)}]`)
  }
}

/** Awaits `p` and asserts it rejects with a HexadError of `code` whose message matches `pattern`. */
export async function rejectsWith(p: Promise<unknown> | (() => Promise<unknown>), code: string, pattern?: RegExp, what = ''): Promise<HexadError> {
  let result: unknown
  try {
    result = await (typeof p === 'function' ? p() : p)
  } catch (err) {
    assert.ok(err instanceof HexadError, `${what}: expected a HexadError, got ${String(err)}`)
    const e = err as HexadError
    assert.is(e.code, code, `${what}: expected code ${code}, got ${e.code}: ${e.message}`)
    if (pattern) assert.match(e.message, pattern, `${what}: message "${e.message}" should match ${pattern}`)
    return e
  }
  assert.unreachable(`${what}: expected rejection with ${code}, but it resolved to ${JSON.stringify(result)?.slice(0, 200)}`)
  throw new Error('unreachable')
}

/** Calls a synchronous `fn` and asserts it throws a HexadError of `code`. */
export function throwsWith(fn: () => unknown, code: string, pattern?: RegExp, what = ''): HexadError {
  try {
    fn()
  } catch (err) {
    assert.ok(err instanceof HexadError, `${what}: expected a HexadError, got ${String(err)}`)
    const e = err as HexadError
    assert.is(e.code, code, `${what}: expected code ${code}, got ${e.code}: ${e.message}`)
    if (pattern) assert.match(e.message, pattern, `${what}: message "${e.message}" should match ${pattern}`)
    return e
  }
  assert.unreachable(`${what}: expected a throw with ${code}`)
  throw new Error('unreachable')
}

// ------------------------------------------------------------------ waiting

export const sleep = (ms: number) => new Promise<void>(r => setTimeout(r, ms))

/** Polls `check` every `everyMs` until it returns true or `timeoutMs` passes; returns whether it did. */
export async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs: number, everyMs = 25): Promise<boolean> {
  const end = Date.now() + timeoutMs
  for (;;) {
    if (await check()) return true
    if (Date.now() >= end) return false
    await sleep(everyMs)
  }
}

/**
 * Whether every segment in `ids` (from vol.stats()) has, for each PG, the
 * highest SCL any segment reports for it.
 */
export function sclsConverged(vol: Volume, ids: readonly number[] = [0, 1, 2, 3, 4, 5]): boolean {
  const segs = vol.stats().segments
  const best = new Map<number, number>()
  for (const s of segs) for (const [pg, scl] of s.pgScl) best.set(pg, Math.max(best.get(pg) ?? 0, scl))
  for (const id of ids) {
    const s = segs[id]
    if (!s.up) return false
    const mine = new Map(s.pgScl)
    for (const [pg, scl] of best) if ((mine.get(pg) ?? 0) < scl) return false
  }
  return true
}

/** Reads every page in `pages` at `at` (default VDL) and compares with `model`. */
export async function checkAllPages(vol: Volume, model: PageModel, pages: Iterable<number>, what: string, at?: number): Promise<void> {
  const ids = [...pages]
  const got = await Promise.all(ids.map(p => vol.readPage(p, at === undefined ? {} : { at })))
  ids.forEach((p, i) => assertPage(got[i], model.get(p), `${what}: page ${p}${at === undefined ? '' : ` at ${at}`}`))
}

// ------------------------------------------------------------------ on-disk layout (parsed here, not via engine code)

export const FRAME_MAGIC = 0x484c5846 // 'HXLF'
export const FRAME_HEADER = 32
export const VERSION_MAGIC = 0x48505856 // 'HXPV'
export const VERSION_HEADER = 40

export interface Extent { off: number; len: number }

/** Frames of one .hxl file, in order, as [offset, total length] (stops at the zero-filled end). */
export function listFrames(buf: Buffer): Extent[] {
  const out: Extent[] = []
  let off = 0
  while (off + FRAME_HEADER <= buf.length && buf.readUInt32LE(off) === FRAME_MAGIC) {
    const len = FRAME_HEADER + buf.readUInt32LE(off + 8)
    out.push({ off, len })
    off += len
  }
  return out
}

/** Version entries of one .hxp file, as [offset, total length]. */
export function listVersions(buf: Buffer): Array<Extent & { pageId: number; lsn: number }> {
  const out: Array<Extent & { pageId: number; lsn: number }> = []
  let off = 0
  while (off + VERSION_HEADER <= buf.length && buf.readUInt32LE(off) === VERSION_MAGIC) {
    const len = VERSION_HEADER + buf.readUInt32LE(off + 24)
    out.push({ off, len, pageId: buf.readDoubleLE(off + 8), lsn: buf.readDoubleLE(off + 16) })
    off += len
  }
  return out
}

export function segmentDir(dir: string, id: number): string { return path.join(dir, `segment-${id}`) }

export function logFiles(dir: string, id: number): string[] {
  const d = path.join(segmentDir(dir, id), 'log')
  return fs.readdirSync(d).filter(n => n.endsWith('.hxl')).sort().map(n => path.join(d, n))
}

export function pageFiles(dir: string, id: number): string[] {
  const d = path.join(segmentDir(dir, id), 'pages')
  return fs.existsSync(d) ? fs.readdirSync(d).filter(n => n.endsWith('.hxp')).sort().map(n => path.join(d, n)) : []
}

/** XORs `mask` (non-zero) into the byte at `off` of file `p`. */
export function flipByte(p: string, off: number, mask = 0x5a): void {
  const fd = fs.openSync(p, 'r+')
  try {
    const b = Buffer.alloc(1)
    fs.readSync(fd, b, 0, 1, off)
    b[0] ^= mask || 1
    fs.writeSync(fd, b, 0, 1, off)
  } finally {
    fs.closeSync(fd)
  }
}
