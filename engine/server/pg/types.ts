/**
 * SQL values on the PostgreSQL wire, in text and binary format.
 *
 * Result values arrive as the SQL front hands them to callers
 * (`rowMode: 'array'`, see engine/sql/values.ts toJs): int4/int8 a number
 * or a bigint, float8 a number, numeric a decimal string, text a string,
 * bool a boolean, bytea a Buffer, timestamp a Date (UTC, no zone), date a
 * 'YYYY-MM-DD' string, json/jsonb the parsed JSON value. The field's OID
 * says how to print it. Parameters in text format are passed on as strings
 * (the SQL front reads an untyped string as the type its context needs, as
 * PostgreSQL does with literals of type unknown); binary parameters are
 * decoded by the OID the client declared.
 */
import { formatTimestamp } from '../../sql/values.js'
import { ProtocolError } from './wire.js'

export const OID = {
  bool: 16, bytea: 17, char: 18, name: 19, int8: 20, int2: 21, int4: 23, text: 25, oid: 26,
  json: 114, float4: 700, float8: 701, unknown: 705, bpchar: 1042, varchar: 1043,
  date: 1082, time: 1083, timestamp: 1114, timestamptz: 1184, numeric: 1700, uuid: 2950, jsonb: 3802,
} as const

/** Type names for pg_type / format_type answers. */
export const TYPE_NAME: Record<number, string> = {
  16: 'boolean', 17: 'bytea', 19: 'name', 20: 'bigint', 21: 'smallint', 23: 'integer', 25: 'text', 26: 'oid',
  114: 'json', 700: 'real', 701: 'double precision', 1042: 'character', 1043: 'character varying',
  1082: 'date', 1114: 'timestamp without time zone', 1184: 'timestamp with time zone', 1700: 'numeric', 3802: 'jsonb',
}

/** Days from 1970-01-01 to 2000-01-01 (PostgreSQL's binary epoch). */
const PG_EPOCH_DAYS = 10957
const PG_EPOCH_MS = PG_EPOCH_DAYS * 86400000

// ------------------------------------------------------------------ results

function floatText(v: number): string {
  if (Number.isNaN(v)) return 'NaN'
  if (v === Infinity) return 'Infinity'
  if (v === -Infinity) return '-Infinity'
  if (Object.is(v, -0)) return '-0'
  return String(v)
}

/** A non-null result value as PostgreSQL prints it for a field of type `oid`. */
export function textOf(v: unknown, oid: number): string {
  if (oid === OID.json || oid === OID.jsonb) return JSON.stringify(v)
  if (typeof v === 'string') return v
  if (typeof v === 'number') return floatText(v)
  if (typeof v === 'bigint') return v.toString()
  if (typeof v === 'boolean') return v ? 't' : 'f'
  if (v instanceof Date) return oid === OID.date ? v.toISOString().slice(0, 10) : formatTimestamp(v)
  if (v instanceof Uint8Array) return '\\x' + Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('hex')
  if (v !== null && typeof v === 'object') return JSON.stringify(v)
  return String(v)
}

export function encodeText(v: unknown, oid: number): Buffer | null {
  if (v === null || v === undefined) return null
  if (oid === OID.bytea && v instanceof Uint8Array) return Buffer.from('\\x' + Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('hex'))
  return Buffer.from(textOf(v, oid), 'utf8')
}

function toBigInt(v: unknown): bigint {
  if (typeof v === 'bigint') return v
  if (typeof v === 'number') return BigInt(Math.trunc(v))
  if (typeof v === 'boolean') return v ? 1n : 0n
  return BigInt(String(v).trim().split('.')[0])
}

/** Days since 1970-01-01 of a date value (a 'YYYY-MM-DD' string or a Date). */
function daysOf(v: unknown): number {
  const t = v instanceof Date ? v.getTime() : Date.parse(String(v).slice(0, 10) + 'T00:00:00Z')
  if (Number.isNaN(t)) throw new Error(`not a date: ${String(v)}`)
  return Math.floor(t / 86400000)
}

/** A non-null result value in PostgreSQL's binary format for type `oid` (text bytes for types without one here). */
export function encodeBinary(v: unknown, oid: number): Buffer | null {
  if (v === null || v === undefined) return null
  switch (oid) {
    case OID.bool: return Buffer.from([v === true || v === 't' || v === 1 ? 1 : 0])
    case OID.bytea: return v instanceof Uint8Array ? Buffer.from(v) : Buffer.from(String(v))
    case OID.int2: { const b = Buffer.allocUnsafe(2); b.writeInt16BE(Number(v)); return b }
    case OID.int4: case OID.oid: { const b = Buffer.allocUnsafe(4); if (oid === OID.oid) b.writeUInt32BE(Number(v)); else b.writeInt32BE(Number(v)); return b }
    case OID.int8: { const b = Buffer.allocUnsafe(8); b.writeBigInt64BE(toBigInt(v)); return b }
    case OID.float4: { const b = Buffer.allocUnsafe(4); b.writeFloatBE(Number(v)); return b }
    case OID.float8: { const b = Buffer.allocUnsafe(8); b.writeDoubleBE(Number(v)); return b }
    case OID.numeric: return encodeNumeric(typeof v === 'string' ? v : textOf(v, oid))
    case OID.date: { const b = Buffer.allocUnsafe(4); b.writeInt32BE(daysOf(v) - PG_EPOCH_DAYS); return b }
    case OID.timestamp: case OID.timestamptz: {
      const ms = v instanceof Date ? v.getTime() : Date.parse(String(v))
      const b = Buffer.allocUnsafe(8)
      b.writeBigInt64BE(BigInt(ms - PG_EPOCH_MS) * 1000n)
      return b
    }
    case OID.jsonb: return Buffer.concat([Buffer.from([1]), Buffer.from(textOf(v, oid))])
    default: return Buffer.from(textOf(v, oid), 'utf8')
  }
}

/** numeric's binary form: ndigits, weight, sign, dscale, then base-10000 digits. */
export function encodeNumeric(text: string): Buffer {
  const t = text.trim()
  if (/^nan$/i.test(t)) return Buffer.from([0, 0, 0, 0, 0xc0, 0, 0, 0])
  const m = /^([+-]?)(\d*)(?:\.(\d*))?$/.exec(t)
  if (!m) throw new Error(`not a numeric: ${text}`)
  const neg = m[1] === '-'
  let int = (m[2] || '').replace(/^0+/, '')
  const frac = m[3] ?? ''
  const dscale = frac.length
  int = '0'.repeat((4 - (int.length % 4)) % 4) + int
  const fracPadded = frac + '0'.repeat((4 - (frac.length % 4)) % 4)
  const groups: number[] = []
  for (let i = 0; i < int.length; i += 4) groups.push(Number(int.slice(i, i + 4)))
  for (let i = 0; i < fracPadded.length; i += 4) groups.push(Number(fracPadded.slice(i, i + 4)))
  let weight = int.length / 4 - 1
  let first = 0
  while (first < groups.length && groups[first] === 0) { first++; weight-- }
  let last = groups.length
  while (last > first && groups[last - 1] === 0) last--
  const digits = groups.slice(first, last)
  if (digits.length === 0) weight = 0
  const b = Buffer.allocUnsafe(8 + digits.length * 2)
  b.writeInt16BE(digits.length, 0)
  b.writeInt16BE(weight, 2)
  b.writeUInt16BE(neg && digits.length ? 0x4000 : 0, 4)
  b.writeInt16BE(dscale, 6)
  digits.forEach((d, i) => b.writeInt16BE(d, 8 + i * 2))
  return b
}

export function decodeNumeric(b: Buffer): string {
  if (b.length < 8) throw new ProtocolError('numeric parameter shorter than its header')
  const n = b.readInt16BE(0), weight = b.readInt16BE(2), sign = b.readUInt16BE(4), dscale = b.readInt16BE(6)
  if (sign === 0xc000) return 'NaN'
  if (b.length !== 8 + n * 2) throw new ProtocolError('numeric parameter length does not match its digit count')
  let int = ''
  let frac = ''
  for (let i = 0; i < n; i++) {
    const d = String(b.readInt16BE(8 + i * 2)).padStart(4, '0')
    if (weight - i >= 0) int += d
    else frac += d
  }
  // digits implied between the last stored digit and the decimal point, or before the first fraction digit
  if (weight >= n) int += '0000'.repeat(weight - n + 1)
  if (weight < -1) frac = '0000'.repeat(-weight - 1) + frac
  int = int.replace(/^0+/, '') || '0'
  frac = (frac + '0'.repeat(Math.max(0, dscale))).slice(0, dscale)
  return (sign === 0x4000 ? '-' : '') + int + (dscale > 0 ? '.' + frac : '')
}

// ------------------------------------------------------------------ parameters

/** A parameter in binary format, decoded by its declared type. */
export function decodeBinaryParam(b: Buffer, oid: number, i: number): unknown {
  const want = (n: number) => { if (b.length !== n) throw new ProtocolError(`parameter $${i + 1}: binary value of type ${TYPE_NAME[oid] ?? oid} must be ${n} bytes, got ${b.length}`) }
  switch (oid) {
    case OID.bool: want(1); return b[0] !== 0
    case OID.int2: want(2); return b.readInt16BE(0)
    case OID.int4: want(4); return b.readInt32BE(0)
    case OID.oid: want(4); return b.readUInt32BE(0)
    case OID.int8: { want(8); const v = b.readBigInt64BE(0); return v >= -(2n ** 53n) && v <= 2n ** 53n ? Number(v) : v }
    case OID.float4: want(4); return b.readFloatBE(0)
    case OID.float8: want(8); return b.readDoubleBE(0)
    case OID.numeric: return decodeNumeric(b)
    case OID.date: { want(4); return new Date((b.readInt32BE(0) + PG_EPOCH_DAYS) * 86400000).toISOString().slice(0, 10) }
    case OID.timestamp: case OID.timestamptz: { want(8); return new Date(Number(b.readBigInt64BE(0) / 1000n) + PG_EPOCH_MS) }
    case OID.jsonb: if (b[0] !== 1) throw new ProtocolError(`parameter $${i + 1}: unsupported jsonb version ${b[0]}`); return b.toString('utf8', 1)
    case OID.text: case OID.varchar: case OID.bpchar: case OID.name: case OID.json: case OID.char: case OID.unknown:
      return b.toString('utf8')
    // unspecified (0), bytea and anything else: the bytes as given
    default: return Buffer.from(b)
  }
}

/** A parameter in text format: the string (bytea's escape forms decoded when the type says bytea). */
export function decodeTextParam(b: Buffer, oid: number): unknown {
  const s = b.toString('utf8')
  if (oid === OID.bytea) {
    if (/^\\x/i.test(s)) return Buffer.from(s.slice(2), 'hex')
    return Buffer.from(s.replace(/\\(\\|[0-7]{3})/g, (_, x: string) => x === '\\' ? '\\' : String.fromCharCode(parseInt(x, 8))), 'latin1')
  }
  if (oid === OID.bool) return s === 't' || s === 'true' || s === '1' || s === 'on' || s === 'yes' ? true : s === 'f' || s === 'false' || s === '0' || s === 'off' || s === 'no' ? false : s
  return s
}
