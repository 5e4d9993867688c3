/**
 * Order-preserving ("memcomparable") key encoding: the byte order of two
 * encoded tuples equals the SQL order of the tuples, so the KV store's byte
 * order serves ORDER BY, range predicates and prefix lookups.
 *
 * Each value: NULL is the single byte 0xFE (after every non-null value, as
 * PostgreSQL sorts NULLS LAST ascending); a non-null value is 0x05 and its
 * payload:
 *   int4/int8/timestamp/date  8 bytes big-endian two's complement with the sign bit flipped
 *   float8                    8 bytes IEEE 754, sign bit flipped (negatives: all bits flipped); -0 = 0; NaN last
 *   numeric                   0x80 for zero; 0xC0 + exponent (2 bytes) + digits + 0x00 for positive;
 *                             0x40 + the same, every byte inverted, for negative (1.5 = 1.50)
 *   text/bytea                the bytes with 0x00 escaped as 0x00 0xFF, ended by 0x00 0x01
 *   bool                      0x00 or 0x01
 * A descending column stores every byte of its encoding inverted. Composite
 * keys are the concatenation (every encoding is prefix-free).
 */
import { SqlError, SQLSTATE } from './errors.js'
import { Decimal, SqlDate, type Kind } from './values.js'

const EMPTY = Buffer.alloc(0)
const NULL_TAG = 0xfe
const VALUE_TAG = 0x05

export class KeyWriter {
  buf: Buffer
  len = 0
  constructor(size = 64) { this.buf = Buffer.allocUnsafe(size) }
  #room(n: number): void {
    if (this.len + n <= this.buf.length) return
    const b = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.len + n))
    this.buf.copy(b, 0, 0, this.len)
    this.buf = b
  }
  byte(x: number): void { this.#room(1); this.buf[this.len++] = x }
  bytes(b: Uint8Array): void { this.#room(b.length); this.buf.set(b, this.len); this.len += b.length }
  int64(v: number | bigint): void {
    this.#room(8)
    if (typeof v === 'number') {
      const hi = Math.floor(v / 4294967296)
      const lo = v - hi * 4294967296
      this.buf.writeUInt32BE(((hi | 0) ^ 0x80000000) >>> 0, this.len)
      this.buf.writeUInt32BE(lo >>> 0, this.len + 4)
    } else {
      this.buf.writeBigUInt64BE(BigInt.asUintN(64, v) ^ (1n << 63n), this.len)
    }
    this.len += 8
  }
  float64(v: number): void {
    this.#room(8)
    if (v === 0) v = 0
    if (Number.isNaN(v)) v = NaN
    this.buf.writeDoubleBE(v, this.len)
    if (this.buf[this.len] & 0x80) for (let i = 0; i < 8; i++) this.buf[this.len + i] ^= 0xff
    else this.buf[this.len] ^= 0x80
    this.len += 8
  }
  escaped(b: Uint8Array): void {
    this.#room(b.length * 2 + 2)
    for (let i = 0; i < b.length; i++) {
      const x = b[i]
      this.buf[this.len++] = x
      if (x === 0) this.buf[this.len++] = 0xff
    }
    this.buf[this.len++] = 0
    this.buf[this.len++] = 1
  }
  invertFrom(start: number): void { for (let i = start; i < this.len; i++) this.buf[i] ^= 0xff }
  /** The key written; the writer then starts over (empty), so the bytes returned are never written again. */
  result(): Buffer {
    const out = this.buf.subarray(0, this.len)
    this.buf = EMPTY
    this.len = 0
    return out
  }
}

/** Appends one value of kind `kind` (the value already has that type). */
export function encodeValue(w: KeyWriter, v: unknown, kind: Kind, desc = false): void {
  const start = w.len
  if (v === null || v === undefined) { w.byte(NULL_TAG) }
  else {
    w.byte(VALUE_TAG)
    switch (kind) {
      case 'int4': case 'int8': w.int64(v as number | bigint); break
      case 'timestamp': w.int64((v as Date).getTime()); break
      case 'date': w.int64((v as SqlDate).days); break
      case 'float8': w.float64(v as number); break
      case 'bool': w.byte(v ? 1 : 0); break
      case 'text': w.escaped(Buffer.from(v as string, 'utf8')); break
      case 'bytea': w.escaped(v as Uint8Array); break
      case 'numeric': encodeDecimal(w, v as Decimal); break
      default: throw new SqlError(SQLSTATE.featureNotSupported, `not supported: a ${kind} column in a primary key or index`)
    }
  }
  if (desc) w.invertFrom(start)
}

function encodeDecimal(w: KeyWriter, d: Decimal): void {
  const n = d.normalized()
  if (n.m === 0n) { w.byte(0x80); return }
  const neg = n.m < 0n
  const digits = (neg ? -n.m : n.m).toString()
  const exp = digits.length - n.s // value = 0.digits * 10^exp
  const start = w.len
  w.byte(neg ? 0x40 : 0xc0)
  const e = exp + 0x8000
  if (e < 0 || e > 0xffff) throw new SqlError(SQLSTATE.numericOutOfRange, 'numeric value out of range for a key')
  const body = w.len
  w.byte(e >> 8); w.byte(e & 0xff)
  const trimmed = digits.replace(/0+$/, '')
  for (let i = 0; i < trimmed.length; i++) w.byte(0x10 + trimmed.charCodeAt(i) - 48)
  w.byte(0)
  if (neg) for (let i = body; i < w.len; i++) w.buf[i] ^= 0xff
  void start
}

/** The smallest key greater than every key that starts with `prefix`: prefix + 0xFF... (keys here never end in a run of 0xFF that long). */
export function prefixEnd(prefix: Uint8Array): Buffer {
  const b = Buffer.allocUnsafe(prefix.length + 1)
  b.set(prefix, 0)
  b[prefix.length] = 0xff
  return b
}
