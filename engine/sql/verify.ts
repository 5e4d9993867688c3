/**
 * The SQL layer's consistency check: `verifySql(db)` (also
 * `sqlEngine(db).verify()`, and part of `db.verify()`).
 *
 * Reads everything at one snapshot (one KV transaction, rolled back at the
 * end) and checks:
 *   - the stored catalog: every definition decodes, is filed under its own
 *     name, its columns, primary key and index columns are in range, and
 *     table and index ids are distinct and below the id counter;
 *   - every row of every table decodes against its TableDef (a MessagePack
 *     array no longer than the column list, each value in its column's
 *     stored form and range), NOT NULL and primary-key columns hold values,
 *     and the row's key is the encoding of its primary key (or a row id);
 *   - every row has exactly its entry in every index (key = the index
 *     tuple [+ primary key], value = the primary key), every index entry
 *     points at an existing row whose indexed values give that entry, and
 *     no two rows share a tuple of a unique index;
 *   - keyspaces named like table or index keyspaces (`t:<id>`, `i:<id>`)
 *     that the catalog does not name hold no keys (a dropped table's or
 *     index's keys are removed in the transaction that drops it).
 * A table or index keyspace the catalog names but the store has never
 * written is an empty one (keyspaces are created on first write); its
 * existence is reported per table and index.
 *
 * Problems name the table, the index and the key (hex), and the first
 * MAX_PROBLEMS are kept (the count of the rest is reported).
 */
import type { Database } from '../compute/database.js'
import type { Transaction } from '../compute/kv.js'
import { unpack } from '../../native-bindings/index.js'
import { CATALOG_KEYSPACE, catalogKey, decodeDef, decodeRow, indexKey, indexKeyspace, pkKey, tableKeyspace, type TableDef } from './catalog.js'
import { Decimal } from './values.js'
import type { SqlType } from './values.js'

export interface SqlVerifyReport {
  ok: boolean
  problems: string[]
  tables: Array<{ name: string; id: number; keyspace: string; exists: boolean; rows: number; indexes: Array<{ name: string; id: number; keyspace: string; exists: boolean; unique: boolean; entries: number }> }>
}

const MAX_PROBLEMS = 200
const NEXT_ID_KEY = 'meta/next-id'
const INT4_MIN = -2147483648, INT4_MAX = 2147483647

const hex = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex')
const latin1 = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('latin1')

/** Why a stored value is not in `t`'s stored form, or null when it is. */
function badStored(v: unknown, t: SqlType): string | null {
  if (v === null || v === undefined) return null
  const is = (ok: boolean, want: string) => ok ? null : `${want} expected, found ${typeof v === 'object' ? (v as object).constructor?.name ?? 'object' : typeof v} ${JSON.stringify(typeof v === 'bigint' ? String(v) : v)?.slice(0, 40)}`
  switch (t.kind) {
    case 'int4': return is(typeof v === 'number' && Number.isInteger(v) && v >= INT4_MIN && v <= INT4_MAX, 'an int4')
    case 'int8': return is((typeof v === 'number' && Number.isSafeInteger(v)) || typeof v === 'bigint' || (typeof v === 'string' && /^-?\d+$/.test(v)), 'an int8')
    case 'float8': return is(typeof v === 'number' || v === '-0', 'a float8')
    case 'numeric': {
      if (typeof v !== 'string') return is(false, 'a numeric string')
      try { Decimal.parse(v) } catch { return `a numeric expected, found ${JSON.stringify(v.slice(0, 40))}` }
      return null
    }
    case 'text':
      if (typeof v !== 'string') return is(false, 'a string')
      return t.len !== undefined && [...v].length > t.len ? `${[...v].length} characters in a varchar(${t.len})` : null
    case 'bool': return is(typeof v === 'boolean', 'a boolean')
    case 'bytea': return is(v instanceof Uint8Array, 'bytes')
    case 'timestamp': return is(typeof v === 'number' && Number.isFinite(v), 'a timestamp (ms)')
    case 'date': return is(typeof v === 'number' && Number.isInteger(v), 'a date (days)')
    case 'json':
      if (typeof v !== 'string') return is(false, 'JSON text')
      try { JSON.parse(v) } catch { return `JSON text expected, found ${JSON.stringify(v.slice(0, 40))}` }
      return null
  }
  return null
}

/** Runs every check on `db` at one snapshot. */
export async function verifySql(db: Database): Promise<SqlVerifyReport> {
  const tx = db.begin()
  try { return await verifyIn(tx, new Set(db.keyspaceNames())) } finally { tx.rollback() }
}

async function verifyIn(tx: Transaction, existing: Set<string>): Promise<SqlVerifyReport> {
  const problems: string[] = []
  let dropped = 0
  const problem = (p: string) => { if (problems.length < MAX_PROBLEMS) problems.push(p); else dropped++ }
  const report: SqlVerifyReport = { ok: true, problems, tables: [] }

  // ---- the stored catalog
  const cat = tx.keyspace(CATALOG_KEYSPACE)
  const nextRaw = await cat.get(NEXT_ID_KEY)
  const nextId = nextRaw ? Number(Buffer.from(nextRaw).toString()) : 1
  if (!Number.isInteger(nextId) || nextId < 1) problem(`catalog: ${NEXT_ID_KEY} holds ${JSON.stringify(nextRaw && Buffer.from(nextRaw).toString())}, not a positive integer`)
  const defs: TableDef[] = []
  const named = new Set<string>()
  const ids = new Map<number, string>()
  const claim = (id: number, what: string) => {
    if (!Number.isInteger(id) || id < 1) problem(`catalog: ${what} has id ${id}, not a positive integer`)
    else if (id >= nextId) problem(`catalog: ${what} has id ${id}, not below the id counter ${nextId}`)
    const prev = ids.get(id)
    if (prev) problem(`catalog: ${what} and ${prev} share id ${id}`)
    ids.set(id, what)
  }
  for await (const [k, v] of cat.scan({ gte: 't/', lt: 't0' })) {
    const key = Buffer.from(k).toString()
    let def: TableDef
    try { def = decodeDef(v) } catch (err) { problem(`catalog: entry ${key} does not decode: ${(err as Error).message}`); continue }
    if (!def || typeof def.name !== 'string' || !Array.isArray(def.columns) || !Array.isArray(def.pk) || !Array.isArray(def.indexes)) {
      problem(`catalog: entry ${key} is not a table definition`)
      continue
    }
    named.add(tableKeyspace(def))
    for (const ix of def.indexes) named.add(indexKeyspace(ix))
    if (catalogKey(def.name) !== key) problem(`catalog: table ${def.name} is filed under ${key}, expected ${catalogKey(def.name)}`)
    let sound = true
    const colOk = (c: unknown) => Number.isInteger(c) && (c as number) >= 0 && (c as number) < def.columns.length
    for (const c of def.pk) if (!colOk(c)) { sound = false; problem(`catalog: table ${def.name}: primary key column #${c} does not exist (${def.columns.length} columns)`) }
    claim(def.id, `table ${def.name}`)
    const ixNames = new Set<string>()
    for (const ix of def.indexes) {
      claim(ix.id, `index ${ix.name} of table ${def.name}`)
      if (ixNames.has(ix.name.toLowerCase())) problem(`catalog: table ${def.name} has two indexes named ${ix.name}`)
      ixNames.add(ix.name.toLowerCase())
      if (!ix.columns.length || ix.columns.length !== ix.desc.length) { sound = false; problem(`catalog: index ${ix.name} of table ${def.name}: ${ix.columns.length} columns, ${ix.desc.length} directions`) }
      for (const c of ix.columns) if (!colOk(c)) { sound = false; problem(`catalog: index ${ix.name} of table ${def.name}: column #${c} does not exist`) }
    }
    if (sound) defs.push(def)
  }

  // ---- rows and index entries, table by table
  for (const t of defs) {
    const tname = t.name
    const tks = tableKeyspace(t)
    const entry: SqlVerifyReport['tables'][number] = {
      name: tname, id: t.id, keyspace: tks, exists: existing.has(tks), rows: 0,
      indexes: t.indexes.map(ix => ({ name: ix.name, id: ix.id, keyspace: indexKeyspace(ix), exists: existing.has(indexKeyspace(ix)), unique: ix.unique, entries: 0 })),
    }
    report.tables.push(entry)
    // expected entries of each index: latin1(entry key) -> primary key; rows by latin1(primary key)
    const expected = t.indexes.map(() => new Map<string, Uint8Array>())
    const rows = new Map<string, unknown[] | null>()
    for await (const [key, bytes] of tx.keyspace(tks).scan()) {
      entry.rows++
      const where = `table ${tname}, row key ${hex(key)}`
      let raw: unknown
      try { raw = unpack(bytes) } catch (err) { problem(`${where}: the row does not decode: ${(err as Error).message}`); rows.set(latin1(key), null); continue }
      if (!Array.isArray(raw)) { problem(`${where}: the row is a ${typeof raw}, not an array of column values`); rows.set(latin1(key), null); continue }
      if (raw.length > t.columns.length) problem(`${where}: the row has ${raw.length} values for ${t.columns.length} columns`)
      let typesOk = true
      for (let i = 0; i < Math.min(raw.length, t.columns.length); i++) {
        const why = badStored(raw[i], t.columns[i].type)
        if (why) { typesOk = false; problem(`${where}: column ${t.columns[i].name} (${t.columns[i].type.name}): ${why}`) }
      }
      if (!typesOk) { rows.set(latin1(key), null); continue }
      let row: unknown[]
      try { row = decodeRow(t, bytes) } catch (err) { problem(`${where}: the row does not decode: ${(err as Error).message}`); rows.set(latin1(key), null); continue }
      rows.set(latin1(key), row)
      for (let i = 0; i < t.columns.length; i++) {
        if (row[i] === null && (t.columns[i].notNull || t.pk.includes(i))) problem(`${where}: NOT NULL column ${t.columns[i].name} is null`)
      }
      let keyOk = true
      try {
        if (t.pk.length) {
          const want = pkKey(t, row)
          if (Buffer.compare(want, key) !== 0) { keyOk = false; problem(`${where}: the key is not the row's primary key (${t.pk.map(c => t.columns[c].name).join(', ')}) ${hex(want)}`) }
        } else if (key.length !== 9 || key[0] !== 0x05) { keyOk = false; problem(`${where}: not a row id key (9 bytes, tag 05)`) }
      } catch (err) { keyOk = false; problem(`${where}: its primary key does not encode: ${(err as Error).message}`) }
      if (!keyOk) continue
      for (let j = 0; j < t.indexes.length; j++) {
        const ix = t.indexes[j]
        let k: Buffer
        try { k = indexKey(t, ix, row, key).key } catch (err) { problem(`${where}: its entry of index ${ix.name} does not encode: ${(err as Error).message}`); continue }
        const id = latin1(k)
        const other = expected[j].get(id)
        if (other) problem(`table ${tname}, index ${ix.name}: unique key ${hex(k)} is held by two rows: ${hex(other)} and ${hex(key)}`)
        else expected[j].set(id, key)
      }
    }
    for (let j = 0; j < t.indexes.length; j++) {
      const ix = t.indexes[j]
      const want = expected[j]
      const info = entry.indexes[j]
      for await (const [k, v] of tx.keyspace(indexKeyspace(ix)).scan()) {
        info.entries++
        const id = latin1(k)
        const pk = want.get(id)
        const where = `table ${tname}, index ${ix.name}, entry ${hex(k)}`
        if (pk) {
          want.delete(id)
          if (Buffer.compare(pk, v) !== 0) problem(`${where}: points at row ${hex(v)}, expected ${hex(pk)}`)
          continue
        }
        const target = rows.get(latin1(v))
        if (target === undefined) problem(`${where}: points at row ${hex(v)}, which does not exist (a dangling entry)`)
        else if (target === null) problem(`${where}: points at row ${hex(v)}, which does not decode`)
        else {
          let own = '?'
          try { own = hex(indexKey(t, ix, target, v).key) } catch { /* reported with the row */ }
          problem(`${where}: points at row ${hex(v)}, whose indexed values (${ix.columns.map(c => t.columns[c].name).join(', ')}) give entry ${own}`)
        }
      }
      for (const [id, pk] of want) problem(`table ${tname}, index ${ix.name}: row ${hex(pk)} has no entry (expected key ${Buffer.from(id, 'latin1').toString('hex')})`)
    }
  }

  // ---- leftovers: table and index keyspaces the catalog does not name
  for (const ks of [...existing].sort()) {
    if (!/^[ti]:\d+$/.test(ks) || named.has(ks)) continue
    let n = 0
    for await (const [k] of tx.keyspace(ks).scan({ limit: 3 })) { n++; if (n === 1) problem(`keyspace ${ks}: not in the catalog (a dropped ${ks[0] === 't' ? 'table' : 'index'}?) but holds keys, first ${hex(k)}`) }
  }
  if (dropped) problems.push(`... and ${dropped} more problems`)
  report.ok = problems.length === 0
  return report
}
