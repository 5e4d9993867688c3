/**
 * hexad SQL values on the MySQL wire: column definitions for result
 * fields, values in the text protocol (COM_QUERY rows) and the binary
 * protocol (COM_STMT_EXECUTE rows), parameters of COM_STMT_EXECUTE, and
 * SqlError → MySQL error number + SQLSTATE.
 *
 * Types (hexad → MySQL): int4 LONG, int8 LONGLONG, float8 DOUBLE, numeric
 * NEWDECIMAL, text BLOB (utf8mb4), varchar VAR_STRING, bool TINY (1/0),
 * bytea BLOB (binary), timestamp DATETIME(3) (no time zone, as stored),
 * date DATE, json/jsonb JSON.
 */
import { CHARSET, FLAG, PacketReader, PacketWriter, ProtocolError, TYPE } from './packets.js'

/** A result column: its name and hexad type name (SqlField.type). */
export interface Col { name: string; type: string; table?: string }

export interface ColType { type: number; charset: number; length: number; flags: number; decimals: number }

const COLTYPE: Record<string, ColType> = {
  int4: { type: TYPE.LONG, charset: CHARSET.binary, length: 11, flags: FLAG.NUM, decimals: 0 },
  int8: { type: TYPE.LONGLONG, charset: CHARSET.binary, length: 20, flags: FLAG.NUM, decimals: 0 },
  float8: { type: TYPE.DOUBLE, charset: CHARSET.binary, length: 22, flags: FLAG.NUM, decimals: 31 },
  numeric: { type: TYPE.NEWDECIMAL, charset: CHARSET.binary, length: 67, flags: FLAG.NUM, decimals: 30 },
  text: { type: TYPE.BLOB, charset: CHARSET.utf8mb4, length: 0xffffffff, flags: FLAG.BLOB, decimals: 0 },
  varchar: { type: TYPE.VAR_STRING, charset: CHARSET.utf8mb4, length: 0xffffff, flags: 0, decimals: 0 },
  bool: { type: TYPE.TINY, charset: CHARSET.binary, length: 1, flags: FLAG.NUM, decimals: 0 },
  bytea: { type: TYPE.BLOB, charset: CHARSET.binary, length: 0xffffffff, flags: FLAG.BLOB | FLAG.BINARY, decimals: 0 },
  timestamp: { type: TYPE.DATETIME, charset: CHARSET.binary, length: 23, flags: FLAG.BINARY, decimals: 3 },
  date: { type: TYPE.DATE, charset: CHARSET.binary, length: 10, flags: FLAG.BINARY, decimals: 0 },
  json: { type: TYPE.JSON, charset: CHARSET.binary, length: 0xffffffff, flags: FLAG.BLOB | FLAG.BINARY, decimals: 0 },
  jsonb: { type: TYPE.JSON, charset: CHARSET.binary, length: 0xffffffff, flags: FLAG.BLOB | FLAG.BINARY, decimals: 0 },
}

const INT32_MIN = -(2 ** 31), INT32_MAX = 2 ** 31 - 1

/**
 * The MySQL type of each column. The declared type is checked against the
 * values (a computed column typed by its first value may hold other kinds):
 * integers too wide for LONG are sent as LONGLONG, non-integers in an
 * integer column as DOUBLE.
 */
export function columnTypes(cols: Col[], rows: unknown[][]): ColType[] {
  return cols.map((c, i) => {
    let t = COLTYPE[c.type] ?? COLTYPE.varchar
    if (t.type === TYPE.LONG || t.type === TYPE.LONGLONG) {
      for (const r of rows) {
        const v = r[i]
        if (v === null || v === undefined) continue
        if (typeof v === 'number' && !Number.isInteger(v)) return COLTYPE.float8
        if (typeof v !== 'number' && typeof v !== 'bigint') return COLTYPE.varchar
        if (t.type === TYPE.LONG && (v < INT32_MIN || v > INT32_MAX)) t = COLTYPE.int8
      }
    }
    return t
  })
}

export function columnDefinition(w: PacketWriter, col: Col, t: ColType, db: string): void {
  w.lenencStr('def').lenencStr(col.table ? db : '').lenencStr(col.table ?? '').lenencStr(col.table ?? '')
    .lenencStr(col.name).lenencStr(col.name)
    .lenenc(0x0c).u16(t.charset).u32(t.length).u8(t.type).u16(t.flags).u8(t.decimals).u16(0)
}

/** A parameter's definition in the COM_STMT_PREPARE answer: its type is not known before it is bound. */
export function paramDefinition(w: PacketWriter): void {
  columnDefinition(w, { name: '?', type: 'varchar' }, { type: TYPE.VAR_STRING, charset: CHARSET.binary, length: 0, flags: FLAG.BINARY, decimals: 0 }, '')
}

const pad = (n: number, w = 2) => String(n).padStart(w, '0')

function datetimeText(d: Date): string {
  const iso = d.toISOString() // YYYY-MM-DDTHH:MM:SS.mmmZ (UTC: timestamps carry no zone)
  if (Number.isNaN(d.getTime())) return 'invalid'
  return iso.slice(0, 10) + ' ' + iso.slice(11, 23)
}

/** A value in the text protocol (NULL is null). */
export function textValue(v: unknown): Buffer | null {
  if (v === null || v === undefined) return null
  if (typeof v === 'string') return Buffer.from(v, 'utf8')
  if (typeof v === 'boolean') return Buffer.from(v ? '1' : '0')
  if (typeof v === 'number' || typeof v === 'bigint') return Buffer.from(String(v))
  if (v instanceof Date) return Buffer.from(datetimeText(v))
  if (Buffer.isBuffer(v)) return v
  if (v instanceof Uint8Array) return Buffer.from(v)
  return Buffer.from(JSON.stringify(v), 'utf8')
}

/** A binary-protocol result row: header 0x00, NULL bitmap (offset 2), then the non-NULL values. */
export function binaryRow(w: PacketWriter, row: unknown[], types: ColType[]): void {
  w.u8(0x00)
  const bitmap = Buffer.alloc((row.length + 7 + 2) >> 3)
  for (let i = 0; i < row.length; i++) if (row[i] === null || row[i] === undefined) bitmap[(i + 2) >> 3] |= 1 << ((i + 2) & 7)
  w.bytes(bitmap)
  for (let i = 0; i < row.length; i++) {
    const v = row[i]
    if (v === null || v === undefined) continue
    switch (types[i].type) {
      case TYPE.LONG: w.i32(Number(v)); break
      case TYPE.LONGLONG: w.i64(BigInt(v as number | bigint)); break
      case TYPE.DOUBLE: w.f64(Number(v)); break
      case TYPE.TINY: w.u8(v === true ? 1 : v === false ? 0 : Number(v)); break
      case TYPE.DATETIME: {
        const d = v instanceof Date ? v : new Date(String(v))
        const ms = d.getUTCMilliseconds()
        w.u8(ms ? 11 : 7).u16(d.getUTCFullYear()).u8(d.getUTCMonth() + 1).u8(d.getUTCDate()).u8(d.getUTCHours()).u8(d.getUTCMinutes()).u8(d.getUTCSeconds())
        if (ms) w.u32(ms * 1000)
        break
      }
      case TYPE.DATE: {
        const m = /^(\d{1,4})-(\d\d)-(\d\d)/.exec(String(v))
        if (m) w.u8(4).u16(Number(m[1])).u8(Number(m[2])).u8(Number(m[3]))
        else w.u8(0)
        break
      }
      default: w.lenencBytes(textValue(v)!)
    }
  }
}

/** Reads one bound parameter of COM_STMT_EXECUTE as the JS value the SQL session takes. */
export function readParam(r: PacketReader, type: number, unsigned: boolean): unknown {
  switch (type) {
    case TYPE.NULL: return null
    case TYPE.TINY: return unsigned ? r.u8() : r.i8()
    case TYPE.SHORT: case TYPE.YEAR: return unsigned ? r.u16() : r.i16()
    case TYPE.LONG: case TYPE.INT24: return unsigned ? r.u32() : r.i32()
    case TYPE.LONGLONG: {
      const v = unsigned ? r.u64() : r.i64()
      return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v
    }
    case TYPE.FLOAT: return r.f32()
    case TYPE.DOUBLE: return r.f64()
    case TYPE.DATE: case TYPE.DATETIME: case TYPE.TIMESTAMP: case TYPE.NEWDATE: {
      const len = r.u8()
      if (len === 0) return type === TYPE.DATE ? '0000-00-00' : '0000-00-00 00:00:00'
      if (len !== 4 && len !== 7 && len !== 11) throw new ProtocolError(`invalid date/time parameter length ${len}`)
      const y = r.u16(), mo = r.u8(), d = r.u8()
      let h = 0, mi = 0, s = 0, us = 0
      if (len >= 7) { h = r.u8(); mi = r.u8(); s = r.u8() }
      if (len === 11) us = r.u32()
      if (type === TYPE.DATE) return `${pad(y, 4)}-${pad(mo)}-${pad(d)}`
      const date = new Date(Date.UTC(y, mo - 1, d, h, mi, s, Math.floor(us / 1000)))
      if (y < 100) date.setUTCFullYear(y)
      return date
    }
    case TYPE.TIME: {
      const len = r.u8()
      if (len === 0) return '00:00:00'
      if (len !== 8 && len !== 12) throw new ProtocolError(`invalid time parameter length ${len}`)
      const neg = r.u8(), days = r.u32(), h = r.u8(), mi = r.u8(), s = r.u8()
      const us = len === 12 ? r.u32() : 0
      return `${neg ? '-' : ''}${pad(days * 24 + h)}:${pad(mi)}:${pad(s)}${us ? '.' + pad(us, 6) : ''}`
    }
    case TYPE.TINY_BLOB: case TYPE.MEDIUM_BLOB: case TYPE.LONG_BLOB: case TYPE.BLOB: case TYPE.GEOMETRY: case TYPE.BIT:
      return Buffer.from(r.lenencBytes())
    case TYPE.DECIMAL: case TYPE.NEWDECIMAL: case TYPE.VARCHAR: case TYPE.VAR_STRING: case TYPE.STRING:
    case TYPE.ENUM: case TYPE.SET: case TYPE.JSON:
      return r.lenencBytes().toString('utf8')
    default:
      throw new ProtocolError(`unknown parameter type 0x${type.toString(16)}`)
  }
}

/** A parameter sent in pieces (COM_STMT_SEND_LONG_DATA), as its bound type reads it. */
export function longDataParam(type: number, data: Buffer): unknown {
  switch (type) {
    case TYPE.TINY_BLOB: case TYPE.MEDIUM_BLOB: case TYPE.LONG_BLOB: case TYPE.BLOB: case TYPE.GEOMETRY: case TYPE.BIT:
      return data
    default:
      return data.toString('utf8')
  }
}

/** SqlError SQLSTATE → MySQL error number and the SQLSTATE MySQL sends with it. */
const ERRORS: Record<string, [number, string]> = {
  '42601': [1064, '42000'], // ER_PARSE_ERROR
  '42P01': [1146, '42S02'], // ER_NO_SUCH_TABLE
  '42703': [1054, '42S22'], // ER_BAD_FIELD_ERROR
  '23505': [1062, '23000'], // ER_DUP_ENTRY
  '23502': [1048, '23000'], // ER_BAD_NULL_ERROR
  '40001': [1213, '40001'], // ER_LOCK_DEADLOCK (the transaction is rolled back)
  '40P01': [1213, '40001'],
  '42P07': [1050, '42S01'], // ER_TABLE_EXISTS_ERROR
  '42701': [1060, '42S21'], // ER_DUP_FIELDNAME
  '42702': [1052, '23000'], // ER_NON_UNIQ_ERROR
  '42704': [1091, '42000'], // ER_CANT_DROP_FIELD_OR_KEY (undefined object)
  '42883': [1305, '42000'], // ER_SP_DOES_NOT_EXIST (no such function)
  '42803': [1055, '42000'], // ER_WRONG_FIELD_WITH_GROUP
  '22001': [1406, '22001'], // ER_DATA_TOO_LONG
  '22003': [1264, '22003'], // ER_WARN_DATA_OUT_OF_RANGE
  '22012': [1365, '22012'], // ER_DIVISION_BY_ZERO
  '22P02': [1366, 'HY000'], // ER_TRUNCATED_WRONG_VALUE_FOR_FIELD
  '22007': [1292, '22007'], // ER_TRUNCATED_WRONG_VALUE (dates)
  '21000': [1242, '21000'], // ER_SUBQUERY_NO_1_ROW
  '0A000': [1235, '42000'], // ER_NOT_SUPPORTED_YET
  '57P01': [1053, '08S01'], // ER_SERVER_SHUTDOWN
  '53300': [1040, '08004'], // ER_CON_COUNT_ERROR
  '53400': [1461, '42000'], // ER_MAX_PREPARED_STMT_COUNT_REACHED
  '26000': [1243, 'HY000'], // ER_UNKNOWN_STMT_HANDLER
  '08P01': [1210, 'HY000'], // ER_WRONG_ARGUMENTS (parameter count)
}

export interface MysqlError { errno: number; sqlstate: string; message: string }

export function mysqlErrorOf(err: unknown): MysqlError {
  const e = err as { sqlstate?: string; message?: string; errno?: number }
  if (e && typeof e.errno === 'number' && typeof e.sqlstate === 'string') return { errno: e.errno, sqlstate: e.sqlstate, message: e.message ?? '' }
  if (e && typeof e.sqlstate === 'string') {
    const m = ERRORS[e.sqlstate]
    return m ? { errno: m[0], sqlstate: m[1], message: e.message ?? '' } : { errno: 1105, sqlstate: e.sqlstate, message: e.message ?? '' }
  }
  return { errno: 1105, sqlstate: 'HY000', message: `internal error: ${e?.message ?? String(err)}` }
}

/** An error raised by the MySQL layer itself, with its MySQL number. */
export class MysqlServerError extends Error {
  constructor(readonly errno: number, readonly sqlstate: string, message: string) { super(message) }
}
