/**
 * The writer process of the crash test (test/volume-crash.test.ts), and the
 * deterministic history both sides agree on.
 *
 * History: MTR i (i = 1, 2, 3, ...) is a pure function of (seed, i, profile).
 * It writes 2..4 distinct pages chosen from pages 0..PAGES-1 (which span
 * PAGES / pagesPerGroup protection groups), and ALWAYS writes i as a
 * little-endian uint32 at offset 0 of the stamp page (page 0). Data writes
 * never touch bytes 0..7 of any page, so the stamp page's first four bytes
 * name the last MTR applied; 0 means none (numbering starts at 1 so that a
 * fresh volume and "MTR 0 applied" cannot be confused).
 *
 * Child protocol (run as `node crash-child.js <dir> <seed> <inflight> <profile> [frameBytesMax]`):
 *   - opens the volume (taking over a dead owner's LOCK), reads the stamp
 *     page -> k, prints `start <k> <vdl>`, then issues MTRs k+1, k+2, ...
 *     keeping <inflight> writes outstanding. write() allocates LSNs at call
 *     time, and MTRs are issued strictly in i order, so LSN order = i order.
 *   - for each write that resolved (durable), prints `ack <i>`.
 *   - a small frameBytesMax makes the writer split MTRs across frames, so a
 *     kill can leave the first records of an MTR in the log without its CPL
 *     (the case where recovery must stop at the previous CPL, invariant 6).
 *   - any write or open error is printed to stderr and exits non-zero: the
 *     parent treats a child that stops on its own as a failure.
 * It runs until it is killed (SIGKILL, by the parent).
 */
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { openVolume, type PageWrite } from '../../engine/index.js'

export const PAGE_SIZE = 4096
export const PAGES = 24
export const STAMP_PAGE = 0
/** bytes 0..STAMP_BYTES-1 of every page are reserved: data writes start at or after it */
export const STAMP_BYTES = 8

/** Small files so that log rolls, coalescing, checkpoints and log GC happen across crashes. */
export const CRASH_VOLUME_OPTIONS = {
  pagesPerGroup: 4,
  logFileBytes: 256 << 10,
  checkpointLogBytes: 512 << 10,
  coalesceThreshold: 4,
  gossipIntervalMs: 10,
} as const

/**
 * 'small': every data write is 8..64 bytes (frames stay small).
 * 'heavy': as 'small', but half the MTRs carry one 512..3072-byte write, so
 *          frames span several file-system pages and a kill can land inside
 *          one append (a torn tail).
 */
export type Profile = 'small' | 'heavy'

export function mulberry32(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) | 0
    let t = Math.imul(a ^ (a >>> 15), 1 | a)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** A 32-bit hash of two 32-bit values (murmur3 finalizer). */
export function mix(a: number, b: number): number {
  let h = Math.imul((a ^ 0x9e3779b9) >>> 0, 0x85ebca6b) ^ (b >>> 0)
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d)
  h = Math.imul(h ^ (h >>> 15), 0x846ca68b)
  return (h ^ (h >>> 16)) >>> 0
}

/** MTR number i of the history of `seed`; a pure function. */
export function mtr(seed: number, i: number, profile: Profile): PageWrite[] {
  if (!Number.isInteger(i) || i < 1 || i > 0xffffffff) throw new Error(`MTR number must be an integer in 1..2^32-1, got ${i}`)
  const r = mulberry32(mix(seed, i))
  const int = (lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1))
  const n = int(2, 4)
  const pages: number[] = []
  while (pages.length < n) {
    const p = int(0, PAGES - 1)
    if (!pages.includes(p)) pages.push(p)
  }
  const entries: PageWrite[] = pages.map((pageId, j) => {
    const big = profile === 'heavy' && j === 0 && r() < 0.5
    const len = big ? int(512, 3072) : int(8, 64)
    const offset = int(STAMP_BYTES, PAGE_SIZE - len)
    const bytes = new Uint8Array(len)
    bytes[0] = i & 0xff
    for (let b = 1; b < len; b++) bytes[b] = (r() * 256) | 0
    return { pageId, ops: [{ op: 'write', offset, bytes }] }
  })
  const stampBytes = new Uint8Array(4)
  new DataView(stampBytes.buffer).setUint32(0, i, true)
  const stamp = { op: 'write' as const, offset: 0, bytes: stampBytes }
  const at = pages.indexOf(STAMP_PAGE)
  if (at >= 0) {
    // The stamp page is also a data page of this MTR: one record, two ops (they never overlap).
    if (r() < 0.5) entries[at].ops.unshift(stamp)
    else entries[at].ops.push(stamp)
  } else {
    // Its own record, anywhere in the MTR: sometimes the CPL, sometimes not.
    entries.splice(int(0, entries.length), 0, { pageId: STAMP_PAGE, ops: [stamp] })
  }
  return entries
}

/** Applies an MTR to a model of pages 0..PAGES-1 (only 'write' ops occur in this history). */
export function applyMtr(model: Uint8Array[], writes: PageWrite[]): void {
  for (const w of writes) {
    for (const op of w.ops) {
      if (op.op !== 'write') throw new Error(`the crash history only uses write ops, got ${op.op}`)
      model[w.pageId].set(op.bytes, op.offset)
    }
  }
}

export function readStamp(page: Uint8Array): number {
  return new DataView(page.buffer, page.byteOffset, page.byteLength).getUint32(0, true)
}

async function main(): Promise<void> {
  const [dir, seedArg, inflightArg, profileArg, frameArg] = process.argv.slice(2)
  const seed = Number(seedArg) >>> 0
  const inflight = Number(inflightArg)
  const profile = profileArg as Profile
  const frameBytesMax = frameArg ? Number(frameArg) : undefined
  if (!dir || !Number.isInteger(inflight) || inflight < 1 || (profile !== 'small' && profile !== 'heavy') ||
      (frameBytesMax !== undefined && !(Number.isInteger(frameBytesMax) && frameBytesMax > 0))) {
    throw new Error(`usage: crash-child.js <dir> <seed> <inflight> <small|heavy> [frameBytesMax], got ${process.argv.slice(2).join(' ')}`)
  }
  // A safety net for an orphaned child: the parent kills it long before this.
  setTimeout(() => { process.stderr.write('crash-child: not killed within 120 s, exiting\n'); process.exit(4) }, 120_000).unref()

  const vol = await openVolume({ dir, ...CRASH_VOLUME_OPTIONS, frameBytesMax })
  const k = readStamp(await vol.readPage(STAMP_PAGE))
  process.stdout.write(`start ${k} ${vol.vdl}\n`)
  let next = k + 1
  const issue = (): void => {
    const i = next++
    // write() allocates the MTR's LSNs synchronously, here: call order is LSN order.
    vol.write(mtr(seed, i, profile)).then(
      () => { process.stdout.write(`ack ${i}\n`); issue() },
      (err: Error) => {
        process.stderr.write(`crash-child: write of MTR ${i} failed: ${err.stack ?? String(err)}\n`)
        process.exit(3)
      },
    )
  }
  for (let j = 0; j < inflight; j++) issue()
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch(err => {
    process.stderr.write(`crash-child: ${(err as Error).stack ?? String(err)}\n`)
    process.exit(2)
  })
}
