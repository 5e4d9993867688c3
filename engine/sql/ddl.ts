/**
 * DDL: CREATE/DROP TABLE, CREATE/DROP INDEX, ALTER TABLE ADD COLUMN. Each
 * statement is its own serializable transaction over the catalog keyspace
 * (so two sessions creating one table conflict and one retries, then sees
 * it). Index builds and the removal of a dropped table's rows run in the
 * same transaction as the catalog change, so they are atomic with it.
 *
 * The KV layer has no "drop keyspace": a dropped table's or index's
 * keyspace is emptied key by key (its name is never reused).
 */
import {
  CATALOG_KEYSPACE, catalogKey, decodeRow, describeKey, encodeDef, encodeRow, indexKey, indexKeyspace, pkKey, tableKeyspace,
  toStored, type ColumnDef, type IndexDef, type TableDef,
} from './catalog.js'
import { SqlError, SQLSTATE, unsupported } from './errors.js'
import { castTo, colName, compile, CompileCtx, Scope } from './expr.js'
import type { Dialect } from './lexer.js'
import type { TxLike } from './select.js'
import { parseType } from './values.js'

export interface DdlHost {
  dialect: Dialect
  tables: Map<string, TableDef>
  /** runs `fn` in an autocommit transaction with retries */
  transaction<T>(fn: (tx: TxLike) => Promise<T>): Promise<T>
  /** after a successful DDL commit: replace or drop the cached definition */
  publish(name: string, def: TableDef | null): void
}

const NEXT_ID_KEY = 'meta/next-id'

async function nextId(tx: TxLike): Promise<number> {
  const ks = tx.keyspace(CATALOG_KEYSPACE)
  const cur = await ks.getForUpdate(NEXT_ID_KEY)
  const id = cur ? Number(Buffer.from(cur).toString()) : 1
  await ks.put(NEXT_ID_KEY, String(id + 1))
  return id
}

function ident(x: any): string {
  if (typeof x === 'string') return x
  if (x && typeof x === 'object') {
    if (x.type === 'column_ref') return colName(x)
    if ('value' in x) return String(x.value)
    if (x.expr) return ident(x.expr)
  }
  return String(x)
}

function checkDefault(def: unknown, type: ColumnDef['type'], dialect: Dialect): void {
  // compile once now, so a bad default fails at CREATE rather than at the first INSERT
  const cx = new CompileCtx(dialect, [], () => { throw unsupported('subqueries in DEFAULT') })
  const c = castTo(compile(def, new Scope([]), cx), type, 'assign')
  if (c.constant) c.fn([], { params: [], outer: [], subs: new Map(), now: new Date(), runSub: () => [] })
}

function evalDefault(def: unknown, type: ColumnDef['type'], dialect: Dialect): unknown {
  const cx = new CompileCtx(dialect, [], () => { throw unsupported('subqueries in DEFAULT') })
  const c = castTo(compile(def, new Scope([]), cx), type, 'assign')
  return c.fn([], { params: [], outer: [], subs: new Map(), now: new Date(), runSub: () => [] })
}

function columnDef(d: any, dialect: Dialect): { col: ColumnDef; pk: boolean; unique: boolean } {
  const name = colName(d.column)
  const dt = String(d.definition?.dataType ?? '').toUpperCase()
  const type = parseType(d.definition, dialect)
  const auto = dt.endsWith('SERIAL') || !!d.auto_increment
  const col: ColumnDef = { name, type, notNull: !!d.nullable && d.nullable.type === 'not null' }
  if (auto) { col.auto = true; col.notNull = true }
  if (d.default_val) {
    const v = d.default_val.value
    col.default = v
    checkDefault(v, type, dialect)
  }
  const pk = !!(d.primary_key || (d.unique_or_primary && String(d.unique_or_primary).toLowerCase().includes('primary')))
  const unique = !!(d.unique || (d.unique_or_primary && String(d.unique_or_primary).toLowerCase() === 'unique'))
  if (d.check || d.reference_definition) throw unsupported(`${d.check ? 'CHECK' : 'REFERENCES'} constraints (column ${name})`)
  return { col, pk, unique }
}

export async function createTable(host: DdlHost, ast: any): Promise<'created' | 'exists'> {
  if (ast.temporary) throw unsupported('CREATE TEMPORARY TABLE')
  if (ast.as || ast.query_expr) throw unsupported('CREATE TABLE ... AS SELECT')
  if (ast.like) throw unsupported('CREATE TABLE ... LIKE')
  const name = String(ast.table[0].table)
  const ifNotExists = !!ast.if_not_exists
  if (host.tables.has(name.toLowerCase())) {
    if (ifNotExists) return 'exists'
    throw new SqlError(SQLSTATE.duplicateTable, `relation "${name}" already exists`)
  }
  const columns: ColumnDef[] = []
  let pk: number[] = []
  const uniques: number[][] = []
  const colIndex = (n: string) => {
    const i = columns.findIndex(c => c.name.toLowerCase() === n.toLowerCase())
    if (i < 0) throw new SqlError(SQLSTATE.undefinedColumn, `column "${n}" named in key does not exist`)
    return i
  }
  for (const d of ast.create_definitions ?? []) {
    if (d.resource === 'column') {
      const { col, pk: isPk, unique } = columnDef(d, host.dialect)
      if (columns.some(c => c.name.toLowerCase() === col.name.toLowerCase())) throw new SqlError(SQLSTATE.duplicateColumn, `column "${col.name}" specified more than once`)
      columns.push(col)
      if (isPk) {
        if (pk.length) throw new SqlError(SQLSTATE.invalidColumnReference, `multiple primary keys for table "${name}" are not allowed`)
        pk = [columns.length - 1]
      }
      if (unique) uniques.push([columns.length - 1])
    }
  }
  for (const d of ast.create_definitions ?? []) {
    if (d.resource === 'column') continue
    if (d.resource === 'constraint' || d.constraint_type) {
      const ct = String(d.constraint_type ?? '').toLowerCase()
      const cols = (d.definition ?? []).map((x: any) => colIndex(ident(x)))
      if (ct === 'primary key') {
        if (pk.length) throw new SqlError(SQLSTATE.invalidColumnReference, `multiple primary keys for table "${name}" are not allowed`)
        pk = cols
      } else if (ct === 'unique' || ct === 'unique key' || ct === 'unique index') uniques.push(cols)
      else throw unsupported(`${ct.toUpperCase() || 'this'} constraint`)
    } else if (d.resource === 'index') {
      // MySQL inline INDEX (cols): a non-unique index
      uniques.push([-1, ...(d.definition ?? []).map((x: any) => colIndex(ident(x)))])
    } else throw unsupported(`table element ${d.resource}`)
  }
  for (const c of pk) {
    columns[c].notNull = true
    if (columns[c].type.kind === 'json') throw unsupported(`a json column in a primary key (${columns[c].name})`)
  }
  const created = await host.transaction(async tx => {
    const cat = tx.keyspace(CATALOG_KEYSPACE)
    if (await cat.get(catalogKey(name))) throw new SqlError(SQLSTATE.duplicateTable, `relation "${name}" already exists`)
    const id = await nextId(tx)
    const def: TableDef = { id, name, columns, pk, indexes: [] }
    for (const u of uniques) {
      const nonUnique = u[0] === -1
      const cols = nonUnique ? u.slice(1) : u
      const ixName = `${name}_${cols.map(c => columns[c].name).join('_')}_${nonUnique ? 'idx' : 'key'}`
      def.indexes.push({ id: await nextId(tx), name: ixName, columns: cols, desc: cols.map(() => false), unique: !nonUnique, constraint: true })
    }
    await cat.put(catalogKey(name), encodeDef(def))
    return def
  })
  host.publish(name, created)
  return 'created'
}

/** Deletes every key of a keyspace, inside `tx`. */
async function emptyKeyspace(tx: TxLike, ks: string): Promise<void> {
  const k = tx.keyspace(ks)
  const keys: Uint8Array[] = []
  for await (const [key] of k.scan()) keys.push(key)
  for (const key of keys) await k.del(key)
}

export async function dropTable(host: DdlHost, ast: any): Promise<number> {
  const ifExists = String(ast.prefix ?? '').toUpperCase().includes('IF EXISTS')
  let n = 0
  for (const ref of ast.name) {
    const name = String(ref.table)
    const def = host.tables.get(name.toLowerCase())
    if (!def) {
      if (ifExists) continue
      throw new SqlError(SQLSTATE.undefinedTable, `table "${name}" does not exist`)
    }
    await host.transaction(async tx => {
      await tx.keyspace(CATALOG_KEYSPACE).del(catalogKey(def.name))
      await emptyKeyspace(tx, tableKeyspace(def))
      for (const ix of def.indexes) await emptyKeyspace(tx, indexKeyspace(ix))
    })
    host.publish(def.name, null)
    n++
  }
  return n
}

function findIndex(host: DdlHost, name: string): { table: TableDef; index: IndexDef } | null {
  for (const t of host.tables.values()) {
    const ix = t.indexes.find(i => i.name.toLowerCase() === name.toLowerCase())
    if (ix) return { table: t, index: ix }
  }
  return null
}

export async function createIndex(host: DdlHost, ast: any): Promise<'created' | 'exists'> {
  const tname = String(ast.table?.table ?? ast.table?.[0]?.table)
  const t = host.tables.get(tname.toLowerCase())
  if (!t) throw new SqlError(SQLSTATE.undefinedTable, `relation "${tname}" does not exist`)
  const cols: number[] = []
  const desc: boolean[] = []
  for (const c of ast.index_columns ?? ast.columns ?? []) {
    const n = c.type === 'column_ref' ? colName(c) : ident(c.column ?? c)
    if (c.type && c.type !== 'column_ref' && !c.column) throw unsupported('indexes on expressions')
    const i = t.columns.findIndex(x => x.name.toLowerCase() === n.toLowerCase())
    if (i < 0) throw new SqlError(SQLSTATE.undefinedColumn, `column "${n}" does not exist`)
    if (t.columns[i].type.kind === 'json') throw unsupported(`an index on a json column (${n})`)
    cols.push(i)
    desc.push(String(c.order_by ?? '').toUpperCase() === 'DESC')
  }
  if (ast.where) throw unsupported('partial indexes (CREATE INDEX ... WHERE)')
  const unique = String(ast.index_type ?? '').toLowerCase() === 'unique'
  const name = ast.index ? String(ast.index) : `${t.name}_${cols.map(c => t.columns[c].name).join('_')}_idx`
  if (findIndex(host, name)) {
    if (ast.if_not_exists) return 'exists'
    throw new SqlError(SQLSTATE.duplicateTable, `relation "${name}" already exists`)
  }
  const built = await host.transaction(async tx => {
    const id = await nextId(tx)
    const ix: IndexDef = { id, name, columns: cols, desc, unique }
    const def: TableDef = { ...t, indexes: [...t.indexes, ix] }
    // build: one entry per row, checking uniqueness
    const iks = tx.keyspace(indexKeyspace(ix))
    for await (const [key, bytes] of tx.keyspace(tableKeyspace(t)).scan()) {
      const row = decodeRow(t, bytes)
      const { key: k, uniqueKey } = indexKey(def, ix, row, key)
      if (uniqueKey && await iks.get(uniqueKey)) throw new SqlError(SQLSTATE.uniqueViolation, `could not create unique index "${name}": key (${cols.map(c => t.columns[c].name).join(', ')}) is duplicated`)
      await iks.put(k, key)
    }
    await tx.keyspace(CATALOG_KEYSPACE).put(catalogKey(t.name), encodeDef(def))
    return def
  })
  host.publish(t.name, built)
  return 'created'
}

export async function dropIndex(host: DdlHost, ast: any): Promise<'dropped' | 'missing'> {
  const ifExists = String(ast.prefix ?? '').toUpperCase().includes('IF EXISTS')
  const name = ident(ast.name)
  const found = findIndex(host, name)
  if (!found) {
    if (ifExists) return 'missing'
    throw new SqlError(SQLSTATE.undefinedObject, `index "${name}" does not exist`)
  }
  const { table: t, index } = found
  const def: TableDef = { ...t, indexes: t.indexes.filter(i => i !== index) }
  await host.transaction(async tx => {
    await tx.keyspace(CATALOG_KEYSPACE).put(catalogKey(t.name), encodeDef(def))
    await emptyKeyspace(tx, indexKeyspace(index))
  })
  host.publish(t.name, def)
  return 'dropped'
}

/**
 * TRUNCATE: every row and index entry of each table goes, in one
 * transaction: the session's own when inside BEGIN ... COMMIT (TRUNCATE
 * changes no definition, so it is transactional here, as in PostgreSQL;
 * pgbench -i truncates and loads in one transaction), else its own.
 */
export async function truncateTables(host: DdlHost, ast: any, inTx?: TxLike): Promise<void> {
  const defs: TableDef[] = (ast.name ?? []).map((ref: any) => {
    const t = host.tables.get(String(ref.table).toLowerCase())
    if (!t) throw new SqlError(SQLSTATE.undefinedTable, `relation "${ref.table}" does not exist`)
    return t
  })
  const run = async (tx: TxLike) => {
    for (const t of defs) {
      await emptyKeyspace(tx, tableKeyspace(t))
      for (const ix of t.indexes) await emptyKeyspace(tx, indexKeyspace(ix))
    }
  }
  if (inTx) await run(inTx)
  else await host.transaction(run)
}

/**
 * ALTER TABLE ... ADD [CONSTRAINT name] PRIMARY KEY (cols): every row is
 * moved from its row id to its primary key (checking NOT NULL and
 * uniqueness), and every index entry is rewritten to point at the new key,
 * in one transaction. (pgbench -i adds its primary keys this way, after
 * loading.)
 */
async function addPrimaryKey(host: DdlHost, t: TableDef, cols: number[]): Promise<TableDef> {
  if (t.pk.length) throw new SqlError(SQLSTATE.invalidColumnReference, `multiple primary keys for table "${t.name}" are not allowed`)
  for (const c of cols) if (t.columns[c].type.kind === 'json') throw unsupported(`a json column in a primary key (${t.columns[c].name})`)
  const def: TableDef = { ...t, pk: cols, columns: t.columns.map((c, i) => cols.includes(i) ? { ...c, notNull: true } : c) }
  await host.transaction(async tx => {
    const tks = tx.keyspace(tableKeyspace(t))
    const rows: Array<[Uint8Array, unknown[]]> = []
    for await (const [k, v] of tks.scan()) rows.push([k, decodeRow(t, v)])
    for (const ix of t.indexes) await emptyKeyspace(tx, indexKeyspace(ix))
    for (const [, row] of rows) for (const c of cols) if (row[c] === null) throw new SqlError(SQLSTATE.notNullViolation, `column "${t.columns[c].name}" of relation "${t.name}" contains null values`)
    for (const [k] of rows) await tks.del(k)
    for (const [, row] of rows) {
      const key = pkKey(def, row)
      if (await tks.get(key)) throw new SqlError(SQLSTATE.uniqueViolation, `could not create unique index "${t.name}_pkey": ${describeKey(def, cols, row)}`)
      await tks.put(key, encodeRow(def, row))
      for (const ix of def.indexes) await tx.keyspace(indexKeyspace(ix)).put(indexKey(def, ix, row, key).key, key)
    }
    await tx.keyspace(CATALOG_KEYSPACE).put(catalogKey(t.name), encodeDef(def))
  })
  return def
}

export async function alterTable(host: DdlHost, ast: any): Promise<void> {
  const tname = String(ast.table?.[0]?.table)
  const t = host.tables.get(tname.toLowerCase())
  if (!t) throw new SqlError(SQLSTATE.undefinedTable, `relation "${tname}" does not exist`)
  const exprs = ast.expr ?? []
  const cons = exprs.length === 1 && exprs[0].action === 'add' && exprs[0].resource === 'constraint' ? exprs[0].create_definitions : null
  if (cons) {
    const ct = String(cons.constraint_type ?? '').toLowerCase()
    const cols = (cons.definition ?? []).map((x: any) => {
      const n = ident(x)
      const i = t.columns.findIndex(c => c.name.toLowerCase() === n.toLowerCase())
      if (i < 0) throw new SqlError(SQLSTATE.undefinedColumn, `column "${n}" named in key does not exist`)
      return i
    })
    if (ct === 'primary key') { host.publish(t.name, await addPrimaryKey(host, t, cols)); return }
    if (ct.startsWith('unique')) {
      const name = cons.constraint ? String(cons.constraint) : `${t.name}_${cols.map((c: number) => t.columns[c].name).join('_')}_key`
      await createIndex(host, { index_type: 'unique', index: name, table: { table: t.name }, index_columns: cols.map((c: number) => ({ type: 'column_ref', column: t.columns[c].name })) })
      return
    }
    throw unsupported(`ALTER TABLE ADD ${ct.toUpperCase()} constraints`)
  }
  let def: TableDef = { ...t, columns: [...t.columns] }
  for (const e of exprs) {
    if (e.action !== 'add' || e.resource !== 'column') throw unsupported(`ALTER TABLE ${String(e.action ?? '').toUpperCase()} ${String(e.resource ?? e.keyword ?? '').toUpperCase()} (only ADD COLUMN)`)
    const { col, pk, unique } = columnDef(e, host.dialect)
    if (pk || unique) throw unsupported('ADD COLUMN with PRIMARY KEY or UNIQUE')
    if (def.columns.some(c => c.name.toLowerCase() === col.name.toLowerCase())) {
      if (e.if_not_exists) continue
      throw new SqlError(SQLSTATE.duplicateColumn, `column "${col.name}" of relation "${t.name}" already exists`)
    }
    if (col.auto) throw unsupported('ADD COLUMN of a serial / AUTO_INCREMENT column')
    // existing rows read the default the column was added with (evaluated once, as PostgreSQL does for constants)
    const fill = col.default !== undefined ? evalDefault(col.default, col.type, host.dialect) : null
    col.fill = toStored(fill, col.type)
    def = { ...def, columns: [...def.columns, col] }
  }
  const added = def.columns.slice(t.columns.length)
  await host.transaction(async tx => {
    if (added.some(c => c.notNull && (c.fill === null || c.fill === undefined))) {
      for await (const _ of tx.keyspace(tableKeyspace(t)).scan({ limit: 1 })) {
        const c = added.find(x => x.notNull && (x.fill === null || x.fill === undefined))!
        throw new SqlError(SQLSTATE.notNullViolation, `column "${c.name}" of relation "${t.name}" contains null values`)
      }
    }
    await tx.keyspace(CATALOG_KEYSPACE).put(catalogKey(t.name), encodeDef(def))
  })
  host.publish(t.name, def)
}
