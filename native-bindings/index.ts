/**
 * The one place where native packages enter hexad.
 *
 * The engine imports only these small typed interfaces: a checksum (crc32c,
 * from @node-rs/crc32), block compression (lz4, from lz4-napi) and
 * serialization (MessagePack, from msgpackr). Keeping them behind one seam
 * means a platform without a prebuilt binary, or a simulated disk that wants
 * deterministic output, changes one file.
 *
 * All functions are synchronous on purpose: ECOSYSTEM.md measured the async
 * variants of lz4 at 5–6x the cost (a thread-pool hop), and everything here is
 * called from segment worker threads that may block.
 */
import { createRequire } from 'node:module'
import { Packr } from 'msgpackr'

// The two CommonJS packages are loaded with require, not import: an ESM
// import of a CommonJS module makes Node parse it for its export names with
// cjs-module-lexer, whose WebAssembly each thread compiles on first use;
// that was 44 ms of CPU of every segment thread's start (six threads a
// cluster open: 799 against 536 ms for six threads that load nothing).
// lz4-napi is also loaded only at its first use: a segment needs it only
// once it reads or writes a page version.
const require = createRequire(import.meta.url)
const { crc32c: nativeCrc32c } = require('@node-rs/crc32') as typeof import('@node-rs/crc32')
let lz4: typeof import('lz4-napi') | null = null
const lz4Module = (): typeof import('lz4-napi') => (lz4 ??= require('lz4-napi') as typeof import('lz4-napi'))

/** CRC-32C (Castagnoli) of `bytes`, continuing from `seed` (0 to start). */
export function crc32c(bytes: Uint8Array, seed = 0): number {
  return nativeCrc32c(asBuffer(bytes), seed) >>> 0
}

/** LZ4 block compression; the result carries its own uncompressed size. */
export function lz4Compress(bytes: Uint8Array): Buffer {
  return lz4Module().compressSync(asBuffer(bytes))
}

/** Inverse of {@link lz4Compress}. Throws on malformed input. */
export function lz4Uncompress(bytes: Uint8Array): Buffer {
  return lz4Module().uncompressSync(asBuffer(bytes))
}

// Records are encoded as arrays (tuples), so no shared structure table is
// needed: a frame written years ago decodes without any side state.
const packr = new Packr({ useRecords: false, moreTypes: false, bundleStrings: false })

/** MessagePack encoding. Uint8Array values become `bin`, decoded as Buffer. */
export function pack(value: unknown): Buffer {
  return packr.pack(value)
}

/**
 * MessagePack decoding that hands `bin` values back as plain Uint8Array views
 * of `bytes` (a Buffer view costs a subclass construction each: a segment's
 * frame holds a hundred records, each with its ops as a bin). The caller
 * must keep `bytes` unchanged as long as it keeps the views. Throws on
 * malformed input.
 */
export function unpackViews<T = unknown>(bytes: Uint8Array): T {
  return packr.unpack(Buffer.isBuffer(bytes) ? new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength) : bytes) as T
}

/** MessagePack decoding. Throws on malformed input. */
export function unpack<T = unknown>(bytes: Uint8Array): T {
  return packr.unpack(asBuffer(bytes)) as T
}

// Decoding into values that share no memory with the input (bin values are
// copied out). Inputs up to SCRATCH_BYTES are first copied into one scratch
// Buffer: a small Uint8Array lives on V8's heap, and viewing it as a Buffer
// would first move its bytes off the heap (measured: most of a row decode).
const owning = new Packr({ useRecords: false, moreTypes: false, bundleStrings: false, copyBuffers: true })
const SCRATCH_BYTES = 4096
const scratch = Buffer.allocUnsafeSlow(SCRATCH_BYTES)

/** MessagePack decoding whose result shares no memory with `bytes` (rows, whose bytes are transient). */
export function unpackOwned<T = unknown>(bytes: Uint8Array): T {
  const n = bytes.byteLength
  if (n === 0 || n > SCRATCH_BYTES || Buffer.isBuffer(bytes)) return owning.unpack(asBuffer(bytes)) as T
  scratch.set(bytes)
  return owning.unpack(scratch, { start: 0, end: n }) as T
}

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
}
