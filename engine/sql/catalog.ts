/**
 * The SQL catalog, stored in the volume: keyspace `sql:catalog` holds one
 * key per table (`t/<name>`, a MessagePack TableDef) and the id counter
 * (`meta/next-id`). Being ordinary keys, the catalog is durable, recovered
 * and replicated exactly like data. Each table's rows live in keyspace
 * `t:<id>` and each index in `i:<id>`; ids are never reused, so a dropped
 * table's leftover keys (if a crash interrupted their removal) are never
 * seen again.
 *
 * Rows: key = the memcomparable primary-key tuple (keys.ts), or a hidden
 * 8-byte row id when the table has no primary key; value = a MessagePack
 * array of the column values in column order (per type: numbers, strings
 * for bigints outside 2^53 and numerics, booleans, Buffers, ms since epoch
 * for timestamps, days for dates, JSON text). A row written before ALTER
 * TABLE ADD COLUMN is shorter: the missing columns read as the value the
 * column was added with.
 *
 * Secondary index entries: key = index tuple + primary key (non-unique, or
 * a unique index tuple holding a NULL: NULLs are distinct), or the index
 * tuple alone (unique); value = the primary key.
 */
import { pack, unpack, unpackOwned } from '../../native-bindings/index.js'
import { SqlError, SQLSTATE } from './errors.js'
import { encodeValue, KeyWriter } from './keys.js'
import { Decimal, Json, normInt, SqlDate, type SqlType } from './values.js'

export const CATALOG_KEYSPACE = 'sql:catalog'

export interface ColumnDef {
  name: string
  type: SqlType
  notNull: boolean
  /** the DEFAULT expression's AST (compiled when used) */
  default?: unknown
  /** serial / AUTO_INCREMENT: a missing or NULL value takes the next number */
  auto?: boolean
  /** the stored-form value rows written before this column existed read as */
  fill?: unknown
}

export interface IndexDef {
  id: number
  name: string
  columns: number[]
  desc: boolean[]
  unique: boolean
  /** created by a UNIQUE constraint (dropped with its table) */
  constraint?: boolean
}

export interface TableDef {
  id: number
  name: string
  columns: ColumnDef[]
  /** primary key column indexes; empty: a hidden row id is the key */
  pk: number[]
  indexes: IndexDef[]
}

export function tableKeyspace(t: TableDef): string { return `t:${t.id}` }
export function indexKeyspace(ix: IndexDef): string { return `i:${ix.id}` }
export function catalogKey(name: string): string { return `t/${name.toLowerCase()}` }

export function encodeDef(t: TableDef): Buffer { return pack(t) }
export function decodeDef(b: Uint8Array): TableDef { return unpack<TableDef>(b) }

// ------------------------------------------------------------------ rows

/** A value in its stored form. */
export function toStored(v: unknown, t: SqlType): unknown {
  if (v === null || v === undefined) return null
  switch (t.kind) {
    case 'float8': return Object.is(v, -0) ? '-0' : v // MessagePack would store -0 as the integer 0
    case 'int4': case 'bool': case 'text': return v
    case 'int8': return typeof v === 'bigint' ? v.toString() : v
    case 'numeric': return (v as Decimal).toString()
    case 'bytea': return v
    case 'timestamp': return (v as Date).getTime()
    case 'date': return (v as SqlDate).days
    case 'json': return (v as Json).text
  }
  return v
}

export function fromStored(v: unknown, t: SqlType): unknown {
  if (v === null || v === undefined) return null
  switch (t.kind) {
    case 'int8': return typeof v === 'string' ? normInt(BigInt(v)) : v
    case 'float8': return typeof v === 'string' ? Number(v) : v
    case 'numeric': return Decimal.parse(v as string)
    case 'bytea': return Buffer.isBuffer(v) ? v : Buffer.from(v as Uint8Array)
    case 'timestamp': return new Date(v as number)
    case 'date': return new SqlDate(v as number)
    case 'json': return new Json(v as string)
  }
  return v
}

export function encodeRow(t: TableDef, row: unknown[]): Buffer {
  const out = new Array(t.columns.length)
  for (let i = 0; i < t.columns.length; i++) out[i] = toStored(row[i], t.columns[i].type)
  return pack(out)
}

export function decodeRow(t: TableDef, bytes: Uint8Array): unknown[] {
  const a = unpackOwned<unknown[]>(bytes)
  const cols = t.columns
  if (a.length === cols.length) {
    // the decoded array is the row's own: convert in place
    for (let i = 0; i < cols.length; i++) { const v = a[i]; if (v !== null) a[i] = fromStored(v, cols[i].type) }
    return a
  }
  const row = new Array(cols.length)
  for (let i = 0; i < cols.length; i++) row[i] = fromStored(i < a.length ? a[i] : cols[i].fill ?? null, cols[i].type)
  return row
}

const MAX_KEY = 512

function checkKeySize(b: Buffer, what: string): Buffer {
  if (b.length > MAX_KEY) throw new SqlError(SQLSTATE.programLimit, `${what} of ${b.length} bytes exceeds the ${MAX_KEY}-byte key limit`)
  return b
}

/** The primary key of a row (row id tables: `rowid`). */
export function pkKey(t: TableDef, row: unknown[], rowid?: number | bigint): Buffer {
  const w = new KeyWriter()
  if (t.pk.length === 0) encodeValue(w, rowid!, 'int8')
  else for (const c of t.pk) encodeValue(w, row[c], t.columns[c].type.kind)
  return checkKeySize(w.result(), `primary key of table ${t.name}`)
}

/** An index entry's key: the tuple, and the primary key after it unless it is a unique tuple without NULLs. */
export function indexKey(t: TableDef, ix: IndexDef, row: unknown[], pk: Uint8Array): { key: Buffer; uniqueKey: Buffer | null } {
  const w = new KeyWriter()
  let hasNull = false
  for (let i = 0; i < ix.columns.length; i++) {
    const c = ix.columns[i]
    if (row[c] === null) hasNull = true
    encodeValue(w, row[c], t.columns[c].type.kind, ix.desc[i])
  }
  if (ix.unique && !hasNull) {
    const k = checkKeySize(w.result(), `index ${ix.name} entry`)
    return { key: k, uniqueKey: k }
  }
  w.bytes(pk)
  return { key: checkKeySize(w.result(), `index ${ix.name} entry`), uniqueKey: null }
}

export function describeKey(t: TableDef, cols: number[], row: unknown[]): string {
  const names = cols.map(c => t.columns[c].name).join(', ')
  const vals = cols.map(c => row[c] === null ? 'null' : String(row[c] instanceof Decimal || row[c] instanceof SqlDate ? row[c]!.toString() : row[c])).join(', ')
  return `Key (${names})=(${vals}) already exists.`
}
