/**
 * SQL types and values.
 *
 * Internal representation of a non-NULL value, by type kind:
 *   int4, int8   number (a safe integer), or bigint outside +-2^53
 *   float8       number (real/float4 are stored as float8)
 *   numeric      Decimal: an exact decimal (bigint mantissa, scale)
 *   text         string (varchar(n) checks its length on assignment)
 *   bool         boolean
 *   bytea        Buffer
 *   timestamp    Date (millisecond precision, no time zone: read and printed as UTC)
 *   date         SqlDate (days since 1970-01-01)
 *   json         Json (its text; jsonb is json here)
 * NULL is `null`. A value whose static type is not known (a parameter, a
 * quoted literal) is coerced to the type its context needs, as PostgreSQL
 * does with literals of type `unknown`.
 */
import { SqlError, SQLSTATE } from './errors.js'

export type Kind = 'int4' | 'int8' | 'float8' | 'numeric' | 'text' | 'bool' | 'bytea' | 'timestamp' | 'date' | 'json' | 'unknown'

export interface SqlType {
  kind: Kind
  /** varchar(n) length, numeric precision */
  len?: number
  /** numeric scale */
  scale?: number
  /** the name it was declared with, for messages and fields ('varchar', 'jsonb', ...) */
  name: string
}

export const T = {
  int4: { kind: 'int4', name: 'int4' } as SqlType,
  int8: { kind: 'int8', name: 'int8' } as SqlType,
  float8: { kind: 'float8', name: 'float8' } as SqlType,
  numeric: { kind: 'numeric', name: 'numeric' } as SqlType,
  text: { kind: 'text', name: 'text' } as SqlType,
  bool: { kind: 'bool', name: 'bool' } as SqlType,
  bytea: { kind: 'bytea', name: 'bytea' } as SqlType,
  timestamp: { kind: 'timestamp', name: 'timestamp' } as SqlType,
  date: { kind: 'date', name: 'date' } as SqlType,
  json: { kind: 'json', name: 'json' } as SqlType,
  unknown: { kind: 'unknown', name: 'unknown' } as SqlType,
}

/** PostgreSQL type OIDs for result fields (the wire layer maps these; MySQL column types from `name`). */
export const PG_OID: Record<string, number> = {
  int4: 23, int8: 20, float8: 701, float4: 700, numeric: 1700, text: 25, varchar: 1043, bool: 16, bytea: 17,
  timestamp: 1114, date: 1082, json: 114, jsonb: 3802, unknown: 25,
}

/** Parses a type name as node-sql-parser gives it (dataType, length, scale). */
export function parseType(def: { dataType: string; length?: number; scale?: number }, dialect: string): SqlType {
  const dt = String(def.dataType).toUpperCase().replace(/\s+/g, ' ')
  switch (dt) {
    case 'INT': case 'INTEGER': case 'INT4': case 'SMALLINT': case 'INT2': case 'MEDIUMINT': case 'TINYINT': case 'SERIAL': case 'SMALLSERIAL':
      return T.int4
    case 'BIGINT': case 'INT8': case 'BIGSERIAL': case 'SIGNED': case 'UNSIGNED': case 'SIGNED INTEGER': case 'UNSIGNED INTEGER':
      return T.int8
    case 'DOUBLE': case 'DOUBLE PRECISION': case 'FLOAT': case 'FLOAT8': case 'REAL': case 'FLOAT4':
      return T.float8
    case 'NUMERIC': case 'DECIMAL': case 'DEC':
      return def.length !== undefined ? { kind: 'numeric', name: 'numeric', len: def.length, scale: def.scale ?? 0 } : T.numeric
    case 'TEXT': case 'MEDIUMTEXT': case 'LONGTEXT': case 'TINYTEXT': case 'STRING':
      return T.text
    case 'VARCHAR': case 'CHARACTER VARYING': case 'CHAR': case 'CHARACTER': case 'NVARCHAR': case 'BPCHAR':
      return def.length !== undefined ? { kind: 'text', name: 'varchar', len: def.length } : { kind: 'text', name: 'varchar' }
    case 'BOOLEAN': case 'BOOL':
      return T.bool
    case 'BYTEA': case 'BLOB': case 'LONGBLOB': case 'MEDIUMBLOB': case 'TINYBLOB': case 'VARBINARY': case 'BINARY':
      return T.bytea
    case 'TIMESTAMP': case 'DATETIME': case 'TIMESTAMP WITHOUT TIME ZONE':
      return T.timestamp
    case 'DATE':
      return T.date
    case 'JSON':
      return T.json
    case 'JSONB':
      return { kind: 'json', name: 'jsonb' }
  }
  throw new SqlError(SQLSTATE.featureNotSupported, `not supported: type ${def.dataType}${dialect === 'mysql' ? '' : ''} (supported: integer, bigint, double precision/real, numeric, text/varchar(n), boolean, bytea/blob, timestamp, date, json/jsonb)`)
}

// ------------------------------------------------------------------ value classes

/** An exact decimal: m * 10^-s. */
export class Decimal {
  constructor(readonly m: bigint, readonly s: number) {}
  static parse(text: string): Decimal | null {
    const t = text.trim()
    const x = /^([+-]?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/.exec(t)
    if (!x || (x[2] === '' && (x[3] === undefined || x[3] === ''))) return null
    const frac = x[3] ?? ''
    let m = BigInt((x[2] || '0') + frac)
    let s = frac.length
    const e = x[4] ? Number(x[4]) : 0
    if (e > 0) { if (e >= s) { m *= 10n ** BigInt(e - s); s = 0 } else s -= e } else if (e < 0) s -= e
    if (x[1] === '-') m = -m
    return new Decimal(m, s)
  }
  static fromNumber(n: number): Decimal {
    if (!Number.isFinite(n)) throw new SqlError(SQLSTATE.badInput, `cannot convert ${n} to numeric`)
    return Decimal.parse(String(n))!
  }
  static fromInt(n: number | bigint): Decimal { return new Decimal(BigInt(n), 0) }
  toString(): string {
    const neg = this.m < 0n
    let d = (neg ? -this.m : this.m).toString()
    if (this.s > 0) {
      if (d.length <= this.s) d = '0'.repeat(this.s - d.length + 1) + d
      d = d.slice(0, d.length - this.s) + '.' + d.slice(d.length - this.s)
    }
    return (neg ? '-' : '') + d
  }
  toNumber(): number { return Number(this.toString()) }
  rescale(s: number): Decimal {
    if (s === this.s) return this
    if (s > this.s) return new Decimal(this.m * 10n ** BigInt(s - this.s), s)
    // round half away from zero
    const f = 10n ** BigInt(this.s - s)
    const neg = this.m < 0n
    const a = neg ? -this.m : this.m
    let q = a / f
    if ((a % f) * 2n >= f) q += 1n
    return new Decimal(neg ? -q : q, s)
  }
  /** strips trailing zeros of the fraction */
  normalized(): Decimal {
    let m = this.m, s = this.s
    while (s > 0 && m % 10n === 0n) { m /= 10n; s-- }
    return new Decimal(m, s)
  }
  cmp(o: Decimal): number {
    const s = Math.max(this.s, o.s)
    const a = this.rescale(s).m, b = o.rescale(s).m
    return a < b ? -1 : a > b ? 1 : 0
  }
  add(o: Decimal): Decimal { const s = Math.max(this.s, o.s); return new Decimal(this.rescale(s).m + o.rescale(s).m, s) }
  sub(o: Decimal): Decimal { const s = Math.max(this.s, o.s); return new Decimal(this.rescale(s).m - o.rescale(s).m, s) }
  mul(o: Decimal): Decimal { return new Decimal(this.m * o.m, this.s + o.s) }
  div(o: Decimal, minScale = 16): Decimal {
    if (o.m === 0n) throw new SqlError(SQLSTATE.divisionByZero, 'division by zero')
    const s = Math.max(minScale, this.s, o.s)
    // (a/10^sa) / (b/10^sb) = a*10^(sb + s + 1 - sa) / b / 10^(s+1)
    const num = this.m * 10n ** BigInt(o.s + s + 1 - this.s)
    const q = new Decimal(num / o.m, s + 1)
    return q.rescale(s)
  }
  mod(o: Decimal): Decimal {
    if (o.m === 0n) throw new SqlError(SQLSTATE.divisionByZero, 'division by zero')
    const s = Math.max(this.s, o.s)
    return new Decimal(this.rescale(s).m % o.rescale(s).m, s)
  }
  neg(): Decimal { return new Decimal(-this.m, this.s) }
}

/** A calendar date: days since 1970-01-01. */
export class SqlDate {
  constructor(readonly days: number) {}
  toString(): string { return new Date(this.days * 86400000).toISOString().slice(0, 10) }
}

/** A JSON value, kept as its text. */
export class Json {
  constructor(readonly text: string) {}
  value(): unknown { return JSON.parse(this.text) }
}

// ------------------------------------------------------------------ helpers

export function isInt(v: unknown): v is number | bigint {
  return typeof v === 'bigint' || (typeof v === 'number' && Number.isInteger(v))
}

/** A bigint as a number when it is safe, else kept as bigint. */
export function normInt(v: bigint): number | bigint {
  return v >= -9007199254740991n && v <= 9007199254740991n ? Number(v) : v
}

const INT4_MIN = -2147483648, INT4_MAX = 2147483647
const INT8_MIN = -(2n ** 63n), INT8_MAX = 2n ** 63n - 1n

function outOfRange(what: string): SqlError {
  return new SqlError(SQLSTATE.numericOutOfRange, `${what} out of range`)
}

export function checkInt8(v: number | bigint): number | bigint {
  if (typeof v === 'number') {
    if (Number.isSafeInteger(v)) return v
    return checkInt8(BigInt(v))
  }
  if (v < INT8_MIN || v > INT8_MAX) throw outOfRange('bigint')
  return normInt(v)
}

function badText(type: string, text: unknown): SqlError {
  return new SqlError(SQLSTATE.badInput, `invalid input syntax for type ${type}: ${JSON.stringify(String(text))}`)
}

function describe(v: unknown): string {
  if (v instanceof Decimal) return 'numeric'
  if (v instanceof SqlDate) return 'date'
  if (v instanceof Json) return 'json'
  if (v instanceof Date) return 'timestamp'
  if (v instanceof Uint8Array) return 'bytea'
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'double precision'
  if (typeof v === 'bigint') return 'bigint'
  if (typeof v === 'string') return 'text'
  if (typeof v === 'boolean') return 'boolean'
  return typeof v
}

function roundHalfEven(n: number): number {
  const r = Math.round(n)
  return Math.abs(n % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r
}

function parseTimestamp(s: string): Date | null {
  const x = /^\s*(\d{4})-(\d{2})-(\d{2})(?:[ T](\d{2}):(\d{2})(?::(\d{2})(\.\d+)?)?)?\s*(Z|[+-]\d{2}(?::?\d{2})?)?\s*$/i.exec(s)
  if (!x) return null
  const ms = x[7] ? Math.round(Number('0' + x[7]) * 1000) : 0
  let t = Date.UTC(Number(x[1]), Number(x[2]) - 1, Number(x[3]), Number(x[4] ?? 0), Number(x[5] ?? 0), Number(x[6] ?? 0), ms)
  if (Number(x[2]) < 1 || Number(x[2]) > 12 || Number(x[3]) < 1 || Number(x[3]) > 31) return null
  if (x[8] && x[8].toUpperCase() !== 'Z') {
    const z = /([+-])(\d{2}):?(\d{2})?/.exec(x[8])!
    const off = (Number(z[2]) * 60 + Number(z[3] ?? 0)) * 60000
    t -= z[1] === '+' ? off : -off
  }
  const d = new Date(t)
  return Number.isNaN(d.getTime()) ? null : d
}

export function formatTimestamp(d: Date): string {
  const iso = d.toISOString() // YYYY-MM-DDTHH:MM:SS.mmmZ
  const ms = iso.slice(20, 23)
  return iso.slice(0, 10) + ' ' + iso.slice(11, 19) + (ms === '000' ? '' : '.' + ms.replace(/0+$/, ''))
}

function bytesFromText(s: string): Buffer {
  if (/^\\x/i.test(s)) {
    const hex = s.slice(2)
    if (!/^([0-9a-f]{2})*$/i.test(hex)) throw badText('bytea', s)
    return Buffer.from(hex, 'hex')
  }
  return Buffer.from(s, 'utf8')
}

/** A value as text, as PostgreSQL prints it. */
export function toText(v: unknown): string {
  if (typeof v === 'string') return v
  if (typeof v === 'number') return Number.isFinite(v) ? String(v) : Number.isNaN(v) ? 'NaN' : v > 0 ? 'Infinity' : '-Infinity'
  if (typeof v === 'bigint') return v.toString()
  if (typeof v === 'boolean') return v ? 'true' : 'false'
  if (v instanceof Decimal) return v.toString()
  if (v instanceof SqlDate) return v.toString()
  if (v instanceof Json) return v.text
  if (v instanceof Date) return formatTimestamp(v)
  if (v instanceof Uint8Array) return '\\x' + Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('hex')
  return String(v)
}

/**
 * Converts a non-null value to type `t`. `assign` is an assignment (INSERT,
 * UPDATE: too-long strings fail with 22001) rather than an explicit CAST
 * (which truncates, as PostgreSQL's varchar cast does).
 */
export function coerce(v: unknown, t: SqlType, assign = false): unknown {
  if (v === null || v === undefined) return null
  switch (t.kind) {
    case 'unknown': return v
    case 'int4': case 'int8': {
      let r: number | bigint
      if (typeof v === 'number') {
        if (!Number.isFinite(v)) throw outOfRange(t.kind === 'int4' ? 'integer' : 'bigint')
        r = Number.isInteger(v) ? v : roundHalfEven(v)
      } else if (typeof v === 'bigint') r = v
      else if (v instanceof Decimal) r = normInt(v.rescale(0).m)
      else if (typeof v === 'string') {
        const s = v.trim()
        if (!/^[+-]?\d+$/.test(s)) throw badText(t.kind === 'int4' ? 'integer' : 'bigint', v)
        r = normInt(BigInt(s))
      } else if (typeof v === 'boolean') r = v ? 1 : 0
      else throw mismatch(v, t)
      if (t.kind === 'int4') {
        if (typeof r === 'bigint' || r < INT4_MIN || r > INT4_MAX) throw outOfRange('integer')
        return r
      }
      return checkInt8(r)
    }
    case 'float8': {
      if (typeof v === 'number') return v
      if (typeof v === 'bigint') return Number(v)
      if (v instanceof Decimal) return v.toNumber()
      if (typeof v === 'string') {
        const s = v.trim()
        if (/^[+-]?(nan)$/i.test(s)) return NaN
        if (/^[+-]?(inf|infinity)$/i.test(s)) return s.startsWith('-') ? -Infinity : Infinity
        if (!/^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i.test(s)) throw badText('double precision', v)
        return Number(s)
      }
      throw mismatch(v, t)
    }
    case 'numeric': {
      let d: Decimal
      if (v instanceof Decimal) d = v
      else if (typeof v === 'number') d = Decimal.fromNumber(v)
      else if (typeof v === 'bigint') d = Decimal.fromInt(v)
      else if (typeof v === 'string') { const p = Decimal.parse(v); if (!p) throw badText('numeric', v); d = p }
      else throw mismatch(v, t)
      if (t.len !== undefined) {
        d = d.rescale(t.scale ?? 0)
        const digits = (d.m < 0n ? -d.m : d.m).toString().length
        if (d.m !== 0n && digits - d.s > t.len - (t.scale ?? 0)) throw new SqlError(SQLSTATE.numericOutOfRange, `numeric field overflow: ${d} does not fit numeric(${t.len},${t.scale ?? 0})`)
      }
      return d
    }
    case 'text': {
      const s = toText(v)
      if (t.len !== undefined && [...s].length > t.len) {
        if (assign) throw new SqlError(SQLSTATE.stringTooLong, `value too long for type character varying(${t.len})`)
        return [...s].slice(0, t.len).join('')
      }
      return s
    }
    case 'bool': {
      if (typeof v === 'boolean') return v
      if (typeof v === 'number' || typeof v === 'bigint') return Number(v) !== 0
      if (typeof v === 'string') {
        const s = v.trim().toLowerCase()
        if (['t', 'true', 'yes', 'y', 'on', '1'].includes(s)) return true
        if (['f', 'false', 'no', 'n', 'off', '0'].includes(s)) return false
        throw badText('boolean', v)
      }
      throw mismatch(v, t)
    }
    case 'bytea': {
      if (Buffer.isBuffer(v)) return v
      if (v instanceof Uint8Array) return Buffer.from(v)
      if (typeof v === 'string') return bytesFromText(v)
      throw mismatch(v, t)
    }
    case 'timestamp': {
      if (v instanceof Date) { if (Number.isNaN(v.getTime())) throw badText('timestamp', 'Invalid Date'); return v }
      if (v instanceof SqlDate) return new Date(v.days * 86400000)
      if (typeof v === 'string') { const d = parseTimestamp(v); if (!d) throw badText('timestamp', v); return d }
      throw mismatch(v, t)
    }
    case 'date': {
      if (v instanceof SqlDate) return v
      if (v instanceof Date) return new SqlDate(Math.floor(v.getTime() / 86400000))
      if (typeof v === 'string') {
        const d = parseTimestamp(v)
        if (!d || !/^\s*\d{4}-\d{2}-\d{2}\s*$/.test(v)) throw badText('date', v)
        return new SqlDate(Math.floor(d.getTime() / 86400000))
      }
      throw mismatch(v, t)
    }
    case 'json': {
      if (v instanceof Json) return v
      if (typeof v === 'string') {
        try { JSON.parse(v) } catch { throw badText('json', v) }
        return new Json(v)
      }
      if (typeof v === 'number' || typeof v === 'boolean') return new Json(JSON.stringify(v))
      if (v instanceof Decimal) return new Json(v.toString())
      throw mismatch(v, t)
    }
  }
}

function mismatch(v: unknown, t: SqlType): SqlError {
  return new SqlError(SQLSTATE.datatypeMismatch, `cannot convert a value of type ${describe(v)} to ${t.name}`)
}

/** A JS value passed as a parameter, in the internal representation (type still unknown). */
export function fromParam(v: unknown, i: number): unknown {
  if (v === null || v === undefined) return null
  if (typeof v === 'string' || typeof v === 'boolean') return v
  if (typeof v === 'number') return v
  if (typeof v === 'bigint') return normInt(v)
  if (v instanceof Date) return v
  if (Buffer.isBuffer(v)) return v
  if (v instanceof Uint8Array) return Buffer.from(v)
  if (typeof v === 'object') return new Json(JSON.stringify(v))
  throw new SqlError(SQLSTATE.invalidParameter, `parameter $${i + 1} has unsupported JS type ${typeof v}`)
}

/** An internal value as the JS value handed to the caller. */
export function toJs(v: unknown): unknown {
  if (v instanceof Decimal) return v.toString()
  if (v instanceof SqlDate) return v.toString()
  if (v instanceof Json) return JSON.parse(v.text)
  return v
}

/** The kind a value has at run time (for parameters of unknown static type). */
export function kindOf(v: unknown): Kind {
  if (typeof v === 'number') return Number.isInteger(v) ? 'int8' : 'float8'
  if (typeof v === 'bigint') return 'int8'
  if (typeof v === 'string') return 'text'
  if (typeof v === 'boolean') return 'bool'
  if (v instanceof Decimal) return 'numeric'
  if (v instanceof SqlDate) return 'date'
  if (v instanceof Json) return 'json'
  if (v instanceof Date) return 'timestamp'
  if (v instanceof Uint8Array) return 'bytea'
  return 'unknown'
}

/** Code-point order of two strings (JS `<` compares UTF-16 units, which differs for astral characters). */
export function compareText(a: string, b: string): number {
  if (a === b) return 0
  const n = Math.min(a.length, b.length)
  for (let i = 0; i < n; i++) {
    let x = a.charCodeAt(i), y = b.charCodeAt(i)
    if (x !== y) {
      if (x >= 0xd800 && y >= 0xd800) {
        x = x >= 0xe000 ? x - 0x800 : x + 0x2000
        y = y >= 0xe000 ? y - 0x800 : y + 0x2000
      }
      return x < y ? -1 : 1
    }
  }
  return a.length < b.length ? -1 : a.length > b.length ? 1 : 0
}

/**
 * Order of two non-null values. Values of different types are converted the
 * way PostgreSQL would (a string meets a number: the string is read as that
 * number's type); incomparable types fail with 42883.
 */
export function compare(a: unknown, b: unknown): number {
  const ta = typeof a, tb = typeof b
  if (ta === 'number' && tb === 'number') {
    const x = a as number, y = b as number
    if (x < y) return -1
    if (x > y) return 1
    if (x === y) return 0
    // NaN sorts above everything and equals itself (PostgreSQL)
    return Number.isNaN(x) ? (Number.isNaN(y) ? 0 : 1) : -1
  }
  if (ta === 'string' && tb === 'string') return compareText(a as string, b as string)
  if ((ta === 'number' || ta === 'bigint') && (tb === 'number' || tb === 'bigint')) {
    if (Number.isInteger(a) || ta === 'bigint') {
      if (Number.isInteger(b) || tb === 'bigint') { const x = BigInt(a as number), y = BigInt(b as number); return x < y ? -1 : x > y ? 1 : 0 }
    }
    const x = Number(a), y = Number(b)
    return x < y ? -1 : x > y ? 1 : 0
  }
  if (a instanceof Decimal || b instanceof Decimal) {
    if ((a instanceof Decimal || ta === 'number' || ta === 'bigint') && (b instanceof Decimal || tb === 'number' || tb === 'bigint')) {
      if (ta === 'number' && !Number.isInteger(a)) return compare(a, (b as Decimal).toNumber())
      if (tb === 'number' && !Number.isInteger(b)) return compare((a as Decimal).toNumber(), b)
      return toDecimal(a).cmp(toDecimal(b))
    }
  }
  if (ta === 'boolean' && tb === 'boolean') return a === b ? 0 : a ? 1 : -1
  if (a instanceof Uint8Array && b instanceof Uint8Array) return Buffer.compare(a, b)
  if (a instanceof Date && b instanceof Date) return cmpNum(a.getTime(), b.getTime())
  if (a instanceof SqlDate && b instanceof SqlDate) return cmpNum(a.days, b.days)
  if (a instanceof SqlDate && b instanceof Date) return cmpNum(a.days * 86400000, b.getTime())
  if (a instanceof Date && b instanceof SqlDate) return cmpNum(a.getTime(), b.days * 86400000)
  if (a instanceof Json && b instanceof Json) return compareText(a.text, b.text)
  // a string meets a typed value: read the string as that type (an untyped literal or parameter)
  if (ta === 'string' && tb !== 'string') return compare(coerce(a, typeFor(b)), b)
  if (tb === 'string' && ta !== 'string') return compare(a, coerce(b, typeFor(a)))
  throw new SqlError(SQLSTATE.undefinedFunction, `operator does not exist: ${describe(a)} compared with ${describe(b)}`)
}

function cmpNum(x: number, y: number): number { return x < y ? -1 : x > y ? 1 : 0 }

export function typeFor(v: unknown): SqlType {
  const k = kindOf(v)
  return k === 'int8' ? T.int8 : k === 'float8' ? T.float8 : (T as Record<string, SqlType>)[k] ?? T.unknown
}

export function toDecimal(v: unknown): Decimal {
  if (v instanceof Decimal) return v
  if (typeof v === 'bigint') return Decimal.fromInt(v)
  if (typeof v === 'number') return Number.isInteger(v) ? Decimal.fromInt(v) : Decimal.fromNumber(v)
  if (typeof v === 'string') { const d = Decimal.parse(v); if (!d) throw badText('numeric', v); return d }
  throw mismatch(v, T.numeric)
}

/** Equality for grouping, DISTINCT and hashing: a string key for a non-null value. */
export function hashKey(v: unknown): string {
  if (v === null || v === undefined) return 'N'
  if (typeof v === 'number') return Number.isInteger(v) ? 'i' + v : 'f' + v
  if (typeof v === 'bigint') return 'i' + v
  if (typeof v === 'string') return 's' + v
  if (typeof v === 'boolean') return v ? 'T' : 'F'
  if (v instanceof Decimal) { const n = v.normalized(); return n.s === 0 ? 'i' + n.m : 'd' + n.toString() }
  if (v instanceof Uint8Array) return 'b' + Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('latin1')
  if (v instanceof Date) return 't' + v.getTime()
  if (v instanceof SqlDate) return 'D' + v.days
  if (v instanceof Json) return 'j' + v.text
  return 'o' + String(v)
}
