/**
 * SELECT: planner and executor.
 *
 * Planning (once per cached statement): FROM sources (tables, CTEs, derived
 * tables) are laid side by side in one flat row; every expression is
 * compiled against that layout (expr.ts). For each table the planner picks
 * an access path from the WHERE (or LEFT JOIN ON) conjuncts that compare
 * one of its columns with a constant or parameter: equality and IN on every
 * primary-key column (point gets), an equality prefix plus a range on the
 * next column of the primary key or of a secondary index (one range scan
 * per IN combination), or a full scan; an ORDER BY that the chosen key
 * order already gives is not sorted again, and with a LIMIT it may pick the
 * index that gives it. The full WHERE is always evaluated on each row, so
 * an access path only narrows what is read.
 *
 * Execution: a single-table query that needs no sort, grouping or DISTINCT
 * streams (a LIMIT stops reading); anything else reads each source into
 * memory, joins (hash join on an equality, else nested loops; LEFT JOIN
 * pads with NULLs), filters, groups, sorts, removes duplicates and cuts.
 * Uncorrelated subqueries run once per execution; correlated ones run per
 * outer row over their tables, read once beforehand.
 */
import type { TxKeyspace } from '../compute/kv.js'
import { decodeRow, indexKeyspace, tableKeyspace, type IndexDef, type TableDef } from './catalog.js'
import { SqlError, SQLSTATE, unsupported } from './errors.js'
import {
  checkCancel, checkCollate, colName, compile, CompileCtx, exprName, hasAggregate, isSubquery, Scope, tableName, truthy,
  type AggCtx, type AggSpec, type ColBind, type Compiled, type Env, type Fn, type Row, type SubPlan,
} from './expr.js'
import { encodeValue, KeyWriter, prefixEnd } from './keys.js'
import { coerce, compare, Decimal, hashKey, isInt, kindOf, normInt, T, toDecimal, type SqlType } from './values.js'

/** What SQL statements call on a keyspace: a writer transaction's, or a replica snapshot's (whose writes refuse). */
export type SqlKeyspace = Pick<TxKeyspace, 'get' | 'getForUpdate' | 'put' | 'del' | 'scan' | 'scanBatches'>
export interface TxLike { keyspace(name: string): SqlKeyspace }

export interface CatalogView {
  table(name: string): TableDef
  maybeTable(name: string): TableDef | undefined
}

export interface Field { name: string; type: SqlType }

/** Execution context of one statement. */
export interface Exec {
  tx: TxLike
  env: Env
  /** locking reads for point gets (UPDATE, DELETE, SELECT ... FOR UPDATE) */
  lock: boolean
}

// ------------------------------------------------------------------ access paths

export interface Access {
  table: TableDef
  kind: 'get' | 'range' | 'full'
  /** the key: pk, or a secondary index */
  index: IndexDef | null
  /** per leading key column: the values it must equal (several: IN) */
  eq: Fn[][]
  lo: { fn: Fn; inclusive: boolean } | null
  hi: { fn: Fn; inclusive: boolean } | null
  reverse: boolean
  /** key column count (pk or index) */
  keyCols: number[]
  describe: string
}

interface Pred { col: number; op: '=' | '<' | '<=' | '>' | '>=' | 'IN'; values: any[] }

const FLIP: Record<string, Pred['op']> = { '=': '=', '<': '>', '<=': '>=', '>': '<', '>=': '<=' }

/** Whether an expression references no column at any depth (a constant or parameter expression). */
export function isConstant(node: any): boolean {
  if (node === null || typeof node !== 'object') return true
  if (Array.isArray(node)) return node.every(isConstant)
  if (node.type === 'column_ref' || node.type === 'aggr_func' || isSubquery(node)) return false
  if (node.type === 'double_quote_string') return false
  for (const k of Object.keys(node)) { const v = node[k]; if (v && typeof v === 'object' && !isConstant(v)) return false }
  return true
}

export function conjuncts(node: any): any[] {
  if (!node) return []
  if (node.type === 'binary_expr' && String(node.operator).toUpperCase() === 'AND') return [...conjuncts(node.left), ...conjuncts(node.right)]
  return [node]
}

/** `col op constant` conjuncts on the source named `alias` (with columns `cols` at flat offset `offset`). */
function predicatesFor(conj: any[], scope: Scope, source: { alias: string; offset: number; width: number }): Pred[] {
  const out: Pred[] = []
  const colOf = (n: any): number | null => {
    if (!n || n.type !== 'column_ref' || n.column === '*') return null
    const t = tableName(n.table)
    const name = colName(n).toLowerCase()
    const matches = scope.cols.filter(c => c.name.toLowerCase() === name && (t === null ? !c.hidden : c.table?.toLowerCase() === t.toLowerCase()))
    if (matches.length !== 1) return null
    const i = matches[0].index - source.offset
    return i >= 0 && i < source.width ? i : null
  }
  for (const c of conj) {
    if (c.type !== 'binary_expr') continue
    const op = String(c.operator).toUpperCase()
    if (op in FLIP) {
      const l = colOf(c.left), r = colOf(c.right)
      if (l !== null && isConstant(c.right)) out.push({ col: l, op: op as Pred['op'], values: [c.right] })
      else if (r !== null && isConstant(c.left)) out.push({ col: r, op: FLIP[op], values: [c.left] })
    } else if (op === 'IN') {
      const l = colOf(c.left)
      const items = c.right?.type === 'expr_list' ? c.right.value : null
      if (l !== null && items && items.length <= 1000 && items.every((x: any) => !isSubquery(x) && isConstant(x))) out.push({ col: l, op: 'IN', values: items })
    } else if (op === 'BETWEEN') {
      const l = colOf(c.left)
      const items = c.right?.value
      if (l !== null && items?.length === 2 && isConstant(items[0]) && isConstant(items[1])) {
        out.push({ col: l, op: '>=', values: [items[0]] })
        out.push({ col: l, op: '<=', values: [items[1]] })
      }
    }
  }
  return out
}

export interface OrderWant { cols: number[]; desc: boolean[]; nullsOk: boolean[] }

/**
 * Chooses an access path for `table`. `order` (source-relative columns) is
 * an ORDER BY the caller would like for free; `preferOrder` (a LIMIT is
 * present) lets an ordered full scan win over a full scan plus sort.
 */
export function planAccess(table: TableDef, conj: any[], scope: Scope, source: { alias: string; offset: number; width: number }, cx: CompileCtx, order: OrderWant | null, preferOrder: boolean): { access: Access; ordered: boolean } {
  const preds = predicatesFor(conj, scope, source)
  const constScope = new Scope([], null)
  const compileConst = (n: any): Fn => compile(n, constScope, cx).fn
  const keys: Array<{ index: IndexDef | null; cols: number[]; desc: boolean[]; unique: boolean }> = []
  if (table.pk.length) keys.push({ index: null, cols: table.pk, desc: table.pk.map(() => false), unique: true })
  for (const ix of table.indexes) keys.push({ index: ix, cols: ix.columns, desc: ix.desc, unique: ix.unique })
  let best: { score: number; access: Access; ordered: boolean } | null = null
  for (const k of keys) {
    const eq: Fn[][] = []
    const eqDesc: string[] = []
    let combos = 1
    let singleCombo = true
    for (const col of k.cols) {
      const p = preds.find(x => x.col === col && x.op === '=') ?? preds.find(x => x.col === col && x.op === 'IN')
      if (!p) break
      if (p.op === 'IN') { combos *= p.values.length; singleCombo = singleCombo && p.values.length === 1 }
      if (combos > 1000) break
      eq.push(p.values.map(compileConst))
      eqDesc.push(`${table.columns[col].name} ${p.op === 'IN' ? `IN (${p.values.length} values)` : '= ?'}`)
    }
    let lo: Access['lo'] = null, hi: Access['hi'] = null
    const rangeCol = k.cols[eq.length]
    if (rangeCol !== undefined && !k.desc[eq.length]) {
      for (const p of preds) {
        if (p.col !== rangeCol) continue
        if ((p.op === '>' || p.op === '>=') && !lo) lo = { fn: compileConst(p.values[0]), inclusive: p.op === '>=' }
        if ((p.op === '<' || p.op === '<=') && !hi) hi = { fn: compileConst(p.values[0]), inclusive: p.op === '<=' }
      }
    }
    const full = eq.length === k.cols.length
    // does the key order give the wanted ORDER BY?
    let ordered = false
    let reverse = false
    if (order && (singleCombo || eq.length === 0)) {
      const rest = order.cols.map((c, i) => ({ c, d: order.desc[i], ok: order.nullsOk[i] })).filter(o => !k.cols.slice(0, eq.length).includes(o.c))
      if (full && k.unique && singleCombo) ordered = true
      else if (rest.every((o, i) => k.cols[eq.length + i] === o.c && o.ok)) {
        const dirs = rest.map((o, i) => o.d !== k.desc[eq.length + i])
        if (dirs.every(d => d === dirs[0])) { ordered = true; reverse = rest.length > 0 && dirs[0] }
      }
    }
    let score: number
    if (full && k.unique) score = k.index ? 2 : 1
    else if (eq.length || lo || hi) score = 20 - eq.length * 2 - (lo ? 1 : 0) - (hi ? 1 : 0) + (k.index ? 1 : 0)
    else if (ordered && preferOrder) score = k.index ? 60 : 50
    else continue
    if (ordered && score > 2) score -= 0.5
    const bounds = [lo && `${table.columns[rangeCol].name} ${lo.inclusive ? '>=' : '>'} ?`, hi && `${table.columns[rangeCol].name} ${hi.inclusive ? '<=' : '<'} ?`].filter(Boolean)
    const keyName = k.index ? `index ${k.index.name}` : `primary key (${table.pk.map(c => table.columns[c].name).join(', ')})`
    const kind: Access['kind'] = full && k.unique ? 'get' : 'range'
    const what = kind === 'get' ? (k.index ? 'Index Point Get' : 'Point Get') : eq.length || lo || hi ? (k.index ? 'Index Range Scan' : 'Primary Key Range Scan') : (k.index ? 'Index Scan' : 'Primary Key Scan')
    const cond = [...eqDesc, ...bounds].join(' AND ')
    const access: Access = { table, kind, index: k.index, eq, lo, hi, reverse, keyCols: k.cols, describe: `${what} on ${table.name} using ${keyName}${cond ? ` (${cond})` : ''}${reverse ? ' backward' : ''}` }
    if (!best || score < best.score) best = { score, access, ordered }
  }
  if (best) return { access: best.access, ordered: best.ordered }
  return { access: { table, kind: 'full', index: null, eq: [], lo: null, hi: null, reverse: false, keyCols: table.pk, describe: `Full Scan on ${table.name}` }, ordered: false }
}

const NO_MATCH = Symbol('no match')

/**
 * A lookup value as the key column's type. For a range bound, `exact` is
 * false when the value had to be rounded or converted (an integer column
 * against 2.5, a text bound on a number): the bound is then made inclusive,
 * which can only read more; the WHERE, evaluated on every row, drops the
 * extra rows.
 */
function keyValue(v: unknown, t: SqlType, mode: 'eq' | 'lo' | 'hi'): { v: unknown; exact: boolean } | typeof NO_MATCH | typeof UNBOUNDED {
  try {
    return keyValue1(v, t, mode)
  } catch (err) {
    if ((err as SqlError).sqlstate !== SQLSTATE.numericOutOfRange || mode === 'eq') { if (mode === 'eq' && (err as SqlError).sqlstate === SQLSTATE.numericOutOfRange) return NO_MATCH; throw err }
    // beyond the column type's range: no bound on that side, or nothing at all
    const neg = compare(v, 0) < 0
    return (mode === 'lo') === neg ? UNBOUNDED : NO_MATCH
  }
}

const UNBOUNDED = Symbol('unbounded')

function keyValue1(v: unknown, t: SqlType, mode: 'eq' | 'lo' | 'hi'): { v: unknown; exact: boolean } | typeof NO_MATCH {
  if (v === null) return NO_MATCH
  if ((t.kind === 'int4' || t.kind === 'int8') && !isInt(v) && (typeof v === 'number' || v instanceof Decimal || typeof v === 'string')) {
    const d = typeof v === 'number' ? v : toDecimal(v).toNumber()
    if (Number.isNaN(d)) return NO_MATCH
    if (Number.isInteger(d)) return { v: coerce(d, t), exact: typeof v !== 'string' }
    if (mode === 'eq') return NO_MATCH
    const r = mode === 'lo' ? Math.ceil(d) : Math.floor(d)
    return { v: coerce(r, t), exact: false }
  }
  const c = coerce(v, t)
  return { v: c, exact: kindOf(c) === kindOf(v) }
}

export interface KeyedRow { key: Uint8Array; row: Row }

/** Every combination of an access path's equality values, as encoded key prefixes, in key order (none: nothing can match). */
function eqPrefixes(a: Access, env: Env): Buffer[] {
  const t = a.table
  const descs = a.index ? a.index.desc : null
  let prefixes: Buffer[] = [EMPTY_KEY]
  for (let i = 0; i < a.eq.length; i++) {
    const type = t.columns[a.keyCols[i]].type
    const vals: Buffer[] = []
    const seen = a.eq[i].length > 1 ? new Set<string>() : null
    for (const f of a.eq[i]) {
      const kv = keyValue(f([], env), type, 'eq')
      if (kv === NO_MATCH || kv === UNBOUNDED) continue
      const w = new KeyWriter(16)
      encodeValue(w, kv.v, type.kind, descs ? descs[i] : false)
      const b = w.result()
      if (!seen) { vals.push(b); continue }
      const s = b.toString('latin1')
      if (!seen.has(s)) { seen.add(s); vals.push(b) }
    }
    const next: Buffer[] = []
    for (const p of prefixes) for (const v of vals) next.push(p.length ? Buffer.concat([p, v]) : v)
    prefixes = next
    if (!prefixes.length) return prefixes
  }
  if (a.eq.length && prefixes.length > 1) {
    prefixes.sort(Buffer.compare)
    if (a.reverse) prefixes.reverse()
  }
  return prefixes
}
const EMPTY_KEY = Buffer.alloc(0)

/**
 * The rows of a 'get' access path, in key order: whole primary keys, or
 * whole tuples of a unique index (whose entry, for a tuple without NULLs,
 * is the tuple alone and holds the primary key). A point read needs no
 * generator; the keys returned are primary keys.
 */
async function pointRows(a: Access, ex: Exec): Promise<KeyedRow[]> {
  const t = a.table
  const tks = ex.tx.keyspace(tableKeyspace(t))
  const iks = a.index ? ex.tx.keyspace(indexKeyspace(a.index)) : null
  const out: KeyedRow[] = []
  for (const p of eqPrefixes(a, ex.env)) {
    const pk = iks ? await iks.get(p) : p
    const v = pk ? (ex.lock ? await tks.getForUpdate(pk) : await tks.get(pk)) : null
    const y = checkCancel(ex.env)
    if (y) await y
    if (v) out.push({ key: pk!, row: decodeRow(t, v) })
  }
  return out
}

/** Every row an access path reads, in order, as `pick` keeps it (a point read through no generator or async iterator). */
async function collectAccess<T>(a: Access, ex: Exec, pick: (r: KeyedRow) => T): Promise<T[]> {
  if (a.kind === 'get') return (await pointRows(a, ex)).map(pick)
  const out: T[] = []
  for await (const batch of scanBatches(a, ex)) for (let i = 0; i < batch.length; i++) out.push(pick(batch[i]))
  return out
}

/** Every row an access path reads with its primary key, in order (UPDATE and DELETE: they write by key). */
export function accessAll(a: Access, ex: Exec): Promise<KeyedRow[]> { return collectAccess(a, ex, r => r) }

/**
 * Every row an access path reads, in order, without their keys: the
 * batches' {key, row} pairs die young (kept, 100k of them outlive the
 * young generation: a GROUP BY over 100k rows took 1.5x as long).
 */
function accessRowsAll(a: Access, ex: Exec): Promise<Row[]> { return collectAccess(a, ex, r => r.row) }

/** A batch of a table's entries, decoded. */
function decodeBatch(t: TableDef, batch: Array<[Uint8Array, Uint8Array]>): KeyedRow[] {
  const out: KeyedRow[] = new Array(batch.length)
  for (let i = 0; i < batch.length; i++) out[i] = { key: batch[i][0], row: decodeRow(t, batch[i][1]) }
  return out
}

/**
 * The rows a scanning access path ('full' or 'range') reads, with their
 * primary keys, in key order (reversed if asked), a batch at a time: a
 * table scan yields a B+tree leaf's rows at once, so a long read costs one
 * await per leaf, not per row (a read through an index yields its rows one
 * at a time). `rowsWanted`: the consumer stops after that many rows (a scan
 * then reads no further, per prefix). Every yielded array is non-empty.
 */
async function* scanBatches(a: Access, ex: Exec, rowsWanted?: number): AsyncGenerator<KeyedRow[]> {
  const t = a.table
  const env = ex.env
  const tks = ex.tx.keyspace(tableKeyspace(t))
  if (a.kind === 'full') {
    for await (const batch of tks.scanBatches({ reverse: a.reverse, limit: rowsWanted })) {
      const y = checkCancel(env, batch.length)
      if (y) await y
      yield decodeBatch(t, batch)
    }
    return
  }
  const prefixes = eqPrefixes(a, env)
  if (!prefixes.length) return
  const rangeType = a.keyCols[a.eq.length] !== undefined ? t.columns[a.keyCols[a.eq.length]].type : null
  let loV: unknown = undefined, hiV: unknown = undefined
  let loInc = false, hiInc = false
  let lo = a.lo, hi = a.hi
  if (lo) { const k = keyValue(lo.fn([], env), rangeType!, 'lo'); if (k === NO_MATCH) return; if (k === UNBOUNDED) lo = null; else { loV = k.v; loInc = lo.inclusive || !k.exact } }
  if (hi) { const k = keyValue(hi.fn([], env), rangeType!, 'hi'); if (k === NO_MATCH) return; if (k === UNBOUNDED) hi = null; else { hiV = k.v; hiInc = hi.inclusive || !k.exact } }
  const ks = a.index ? ex.tx.keyspace(indexKeyspace(a.index)) : tks
  for (const p of prefixes) {
    const opts: { gte?: Uint8Array; lt?: Uint8Array; reverse: boolean; limit?: number } = { reverse: a.reverse, limit: a.index ? undefined : rowsWanted }
    const enc = (v: unknown) => { const w = new KeyWriter(32); w.bytes(p); encodeValue(w, v, rangeType!.kind); return w.result() }
    opts.gte = lo ? (loInc ? enc(loV) : prefixEnd(enc(loV))) : p
    opts.lt = hi ? (hiInc ? prefixEnd(enc(hiV)) : enc(hiV)) : prefixEnd(p)
    if (lo && hi && Buffer.compare(Buffer.from(opts.gte), Buffer.from(opts.lt)) >= 0) continue
    if (p.length === 0 && !lo) delete opts.gte
    if (p.length === 0 && !hi) delete opts.lt
    for await (const batch of ks.scanBatches(opts)) {
      const y = checkCancel(env, batch.length)
      if (y) await y
      if (!a.index) { yield decodeBatch(t, batch); continue }
      // Through an index, a row at a time: each is a read (a locking one under FOR UPDATE
      // or in an UPDATE), and a consumer that stops early must not have read further.
      for (const [, pk] of batch) {
        const rv = ex.lock ? await tks.getForUpdate(pk) : await tks.get(pk)
        if (rv) yield [{ key: pk, row: decodeRow(t, rv) }]
      }
    }
  }
}

// ------------------------------------------------------------------ plans

interface Source {
  kind: 'table' | 'rows' | 'series' | 'union'
  /** UNION [ALL] members; all[i]: the operator between member i and i + 1 keeps duplicates */
  union?: { plans: SelectPlan[]; all: boolean[] }
  /** generate_series(start, stop[, step]) */
  series?: Fn[]
  alias: string
  table?: TableDef
  access?: Access
  rows?: SelectPlan
  /** a CTE's plan is materialised once per execution */
  shared?: boolean
  offset: number
  width: number
  join: 'inner' | 'left'
  on: Fn | null
  /** hash join: an equality between a column of this source and an expression over earlier sources */
  hash: { col: number; outer: Fn } | null
  /**
   * Index lookup join: when the hash join's outer expression reads only the
   * first source and this table's primary key or an index starts with the
   * join column, the rows are fetched by key for each distinct outer value
   * (up to LOOKUP_JOIN_MAX_KEYS of them) instead of reading the whole table.
   */
  lookup?: { index: IndexDef | null; cols: number[] } | null
}

const LOOKUP_JOIN_MAX_KEYS = 2000

interface OrderKey { fn: (src: Row, out: Row, env: Env) => unknown; desc: boolean; nullsFirst: boolean }

export interface SelectPlan {
  sources: Source[]
  width: number
  where: Fn | null
  agg: { keys: Fn[]; specs: AggSpec[] } | null
  having: Fn | null
  outputs: Fn[]
  fields: Field[]
  order: OrderKey[] | null
  distinct: boolean
  limit: Fn | null
  offset: Fn | null
  stream: boolean
  subs: SubPlan[]
  explain: string[]
}

export interface CteDef { plan: SelectPlan; cols: Field[] }
export type Ctes = Map<string, CteDef> | null

/** State shared while compiling one statement. */
export interface PlanCtx {
  cat: CatalogView
  cx: CompileCtx
}

function starCols(scope: Scope, table: string | null): ColBind[] {
  const cols = scope.cols.filter(c => !c.hidden && (table === null || c.table?.toLowerCase() === table.toLowerCase()))
  if (table !== null && !cols.length) throw new SqlError(SQLSTATE.undefinedTable, `missing FROM-clause entry for table "${table}"`)
  return cols
}

/** Compiles a SELECT AST. `outer` is the scope of an enclosing query (correlated subqueries). */
export function compileSelect(ast: any, outer: Scope | null, pc: PlanCtx, ctes: Ctes): SelectPlan {
  const cx = pc.cx
  if (ast.into && ast.into.position) throw unsupported('SELECT ... INTO')
  if (ast.window) throw unsupported('window functions')
  // CTEs
  if (ast.with && ast.with.length) {
    const m = new Map(ctes ?? [])
    for (const w of ast.with) {
      if (w.recursive) throw unsupported('WITH RECURSIVE')
      const name = String(w.name?.value ?? w.name).toLowerCase()
      const plan = compileSelect(w.stmt?.ast ?? w.stmt, outer, pc, m)
      let cols = plan.fields
      if (w.columns && w.columns.length) cols = plan.fields.map((f, i) => ({ name: String(w.columns[i]?.value ?? w.columns[i] ?? f.name), type: f.type }))
      m.set(name, { plan, cols })
    }
    ctes = m
  }
  if (ast._next) return compileUnion(ast, outer, pc, ctes)
  const savedSubs = cx.planSubs
  const subs: SubPlan[] = []
  cx.planSubs = subs
  try {
    return compileSelectBody(ast, outer, pc, ctes, subs)
  } finally {
    cx.planSubs = savedSubs
  }
}

/**
 * A chain of SELECTs joined by UNION [ALL]: each member is planned on its
 * own; the ORDER BY and LIMIT the parser attaches to the last member apply
 * to the whole result, which is planned as a SELECT * over the union.
 */
function compileUnion(ast: any, outer: Scope | null, pc: PlanCtx, ctes: Ctes): SelectPlan {
  const members: any[] = []
  const all: boolean[] = []
  for (let n = ast; n; n = n._next) {
    members.push(n)
    if (n._next) {
      const op = String(n.set_op ?? '').toLowerCase().trim()
      if (op !== 'union' && op !== 'union all' && op !== 'union distinct') throw unsupported(`${op.toUpperCase() || 'this set operation'} (UNION and UNION ALL are supported)`)
      all.push(op === 'union all')
    }
  }
  const last = members[members.length - 1]
  const plans = members.map((m, i) => {
    const { _next, set_op, ...rest } = m
    void _next; void set_op
    if (i === members.length - 1) { rest.orderby = null; rest.limit = null }
    return compileSelect({ ...rest, with: null }, outer, pc, ctes)
  })
  const width = plans[0].fields.length
  for (const p of plans) if (p.fields.length !== width) throw new SqlError(SQLSTATE.syntax, 'each UNION query must have the same number of columns')
  const wrapper = { type: 'select', columns: [{ expr: { type: 'column_ref', table: null, column: '*' } }], from: [{ __union: { plans, all }, as: 'union' }], orderby: last.orderby, limit: last.limit, where: null, groupby: null, having: null, distinct: null }
  const savedSubs = pc.cx.planSubs
  const subs: SubPlan[] = []
  pc.cx.planSubs = subs
  try {
    const plan = compileSelectBody(wrapper, outer, pc, ctes, subs)
    plans.forEach((p, i) => plan.explain.push(`Member ${i + 1}${i ? (all[i - 1] ? ' (UNION ALL)' : ' (UNION)') : ''}`, ...p.explain.map(l => '  ' + l)))
    return plan
  } finally {
    pc.cx.planSubs = savedSubs
  }
}

function compileSelectBody(ast: any, outer: Scope | null, pc: PlanCtx, ctes: Ctes, subs: SubPlan[]): SelectPlan {
  const cx = pc.cx
  const cols: ColBind[] = []
  const sources: Source[] = []
  const scope = new Scope(cols, outer)
  const from = (ast.from ?? []).filter((f: any) => f.type !== 'dual')
  for (const f of from) {
    const offset = cols.length
    let alias: string
    let src: Source
    const join = f.join ? String(f.join).toUpperCase() : null
    if (join && !['INNER JOIN', 'JOIN', 'LEFT JOIN', 'LEFT OUTER JOIN', 'CROSS JOIN'].includes(join)) throw unsupported(join)
    const kind: Source['join'] = join && join.startsWith('LEFT') ? 'left' : 'inner'
    if (f.as && String(f.as).toUpperCase() === 'NATURAL') throw unsupported('NATURAL JOIN')
    let rawAlias: string | null = f.as && String(f.as).toUpperCase() !== 'CROSS' ? String(f.as) : null
    if (rawAlias && rawAlias.includes('(')) throw unsupported('column aliases on a FROM item')
    if (f.__union) {
      alias = 'union'
      const u = f.__union as { plans: SelectPlan[]; all: boolean[] }
      u.plans[0].fields.forEach((fl, i) => cols.push({ table: alias, name: fl.name, index: offset + i, type: fl.type.kind === 'unknown' ? (u.plans.map(p => p.fields[i].type).find(t => t.kind !== 'unknown') ?? fl.type) : fl.type }))
      src = { kind: 'union', union: u, alias, offset, width: u.plans[0].fields.length, join: kind, on: null, hash: null }
    } else if (f.expr && f.expr.type === 'function') {
      const fname = String(f.expr.name?.name?.[0]?.value ?? '').toLowerCase()
      if (fname !== 'generate_series') throw unsupported(`table function ${fname}()`)
      const args = (f.expr.args?.value ?? []).map((a: any) => compile(a, new Scope([], outer), cx).fn)
      if (args.length < 2 || args.length > 3) throw new SqlError(SQLSTATE.undefinedFunction, 'generate_series takes 2 or 3 integer arguments')
      alias = rawAlias ?? 'generate_series'
      cols.push({ table: alias, name: alias, index: offset, type: T.int8 })
      src = { kind: 'series', series: args, alias, offset, width: 1, join: kind, on: null, hash: null }
    } else if (f.expr && (f.expr.ast || f.expr.type === 'select')) {
      const plan = compileSelect(f.expr.ast ?? f.expr, outer, pc, ctes)
      alias = rawAlias ?? 'subquery'
      plan.fields.forEach((fl, i) => cols.push({ table: alias, name: fl.name, index: offset + i, type: fl.type }))
      src = { kind: 'rows', alias, rows: plan, offset, width: plan.fields.length, join: kind, on: null, hash: null }
    } else if (f.table) {
      const name = String(f.table)
      const cte = ctes?.get(name.toLowerCase())
      alias = rawAlias ?? name
      if (cte) {
        cte.cols.forEach((fl, i) => cols.push({ table: alias, name: fl.name, index: offset + i, type: fl.type }))
        src = { kind: 'rows', alias, rows: cte.plan, shared: true, offset, width: cte.cols.length, join: kind, on: null, hash: null }
      } else {
        const t = pc.cat.table(name)
        t.columns.forEach((c, i) => cols.push({ table: alias, name: c.name, index: offset + i, type: c.type }))
        src = { kind: 'table', alias, table: t, offset, width: t.columns.length, join: kind, on: null, hash: null }
      }
    } else throw unsupported(`FROM item ${JSON.stringify(f).slice(0, 60)}`)
    if (sources.some(s => s.alias.toLowerCase() === alias.toLowerCase())) throw new SqlError(SQLSTATE.duplicateObject, `table name "${alias}" specified more than once`)
    sources.push(src)
    if (f.using) throw unsupported('JOIN ... USING')
    if (f.on) {
      // ON sees this source and the earlier ones
      src.on = compile(f.on, scope, cx).fn
      // hash join on `this.col = <expr over earlier sources>`
      for (const c of conjuncts(f.on)) {
        if (c.type !== 'binary_expr' || c.operator !== '=') continue
        for (const [mine, other] of [[c.left, c.right], [c.right, c.left]]) {
          if (mine?.type !== 'column_ref' || mine.column === '*') continue
          let r
          try { r = resolveIn(scope, mine) } catch { continue }
          if (!r || r.index < offset || r.index >= offset + src.width) continue
          if (!refsOnlyBefore(other, scope, offset)) continue
          src.hash = { col: r.index - offset, outer: compile(other, scope, cx).fn }
          if (src.kind === 'table' && sources.length > 1 && refsOnlyBefore(other, scope, sources[0].width)) {
            const t = src.table!, col = src.hash.col
            if (t.pk[0] === col) src.lookup = { index: null, cols: t.pk }
            else {
              const ix = t.indexes.find(x => x.columns[0] === col && !x.desc[0])
              if (ix) src.lookup = { index: ix, cols: ix.columns }
            }
          }
          break
        }
        if (src.hash) break
      }
    }
  }
  const width = cols.length
  const whereAst = ast.where
  const where = whereAst ? compile(whereAst, scope, cx).fn : null

  // select list
  const items: Array<{ node: any; name: string }> = []
  for (const c of ast.columns === '*' ? [{ expr: { type: 'column_ref', table: null, column: '*' } }] : ast.columns ?? []) {
    const e = c.expr
    if (e?.type === 'column_ref' && e.column === '*') {
      const tn = tableName(e.table)
      for (const b of starCols(scope, tn)) items.push({ node: { type: 'column_ref', table: b.table, column: b.name }, name: b.name })
      continue
    }
    if (e?.type === 'column_ref' && typeof e.column === 'object' && e.column?.expr?.type === 'star') { for (const b of starCols(scope, tableName(e.table))) items.push({ node: { type: 'column_ref', table: b.table, column: b.name }, name: b.name }); continue }
    items.push({ node: e, name: c.as ? String(typeof c.as === 'object' ? c.as.value : c.as) : exprName(e) })
  }
  if (!items.length) throw new SqlError(SQLSTATE.syntax, 'SELECT needs at least one output column')

  const groupNodes: any[] = (ast.groupby?.columns ?? (Array.isArray(ast.groupby) ? ast.groupby : null)) ?? []
  const aggregated = groupNodes.length > 0 || items.some(i => hasAggregate(i.node)) || (ast.having && hasAggregate(ast.having)) || !!ast.having
  let agg: SelectPlan['agg'] = null
  let having: Fn | null = null
  const outputs: Compiled[] = []
  const selectNodeFor = (n: any): any => {
    // GROUP BY / ORDER BY by ordinal or by output alias
    if (n?.type === 'number' && Number.isInteger(n.value)) {
      const it = items[n.value - 1]
      if (!it) throw new SqlError(SQLSTATE.invalidColumnReference, `position ${n.value} is not in select list`)
      return it.node
    }
    if (n?.type === 'column_ref' && !n.table && n.column !== '*') {
      const name = colName(n).toLowerCase()
      const it = items.find(i => i.name.toLowerCase() === name)
      if (it && !cols.some(c => c.name.toLowerCase() === name)) return it.node
    }
    return n
  }
  if (aggregated) {
    const keyNodes = groupNodes.map(selectNodeFor)
    const actx: AggCtx & { keyTypes: SqlType[] } = { keyCols: new Map(), keyExprs: new Map(), nKeys: keyNodes.length, aggs: [], inputScope: scope, keyTypes: [] }
    const keys: Fn[] = []
    keyNodes.forEach((n: any, i: number) => {
      const c = compile(n, scope, cx)
      keys.push(c.fn)
      actx.keyTypes.push(c.type)
      actx.keyExprs.set(JSON.stringify(n), i)
      if (n?.type === 'column_ref') { const r = resolveIn(scope, n); if (r && r.depth === 0) actx.keyCols.set(r.index, i) }
    })
    cx.agg = actx
    try {
      for (const it of items) outputs.push(compile(it.node, scope, cx))
      if (ast.having) having = compile(ast.having, scope, cx).fn
    } finally { cx.agg = null }
    agg = { keys, specs: actx.aggs }
    ;(agg as any).ctx = actx
  } else {
    for (const it of items) outputs.push(compile(it.node, scope, cx))
  }
  const fields: Field[] = items.map((it, i) => ({ name: it.name, type: outputs[i].type }))

  // ORDER BY
  let order: OrderKey[] | null = null
  const orderSpec: Array<{ col: number | null; desc: boolean; nullsFirst: boolean; explicitNulls: boolean }> = []
  if (ast.orderby && ast.orderby.length) {
    order = []
    for (const o of ast.orderby) {
      checkCollate(o.collate)
      checkCollate(o.expr?.collate)
      const desc = String(o.type ?? 'ASC').toUpperCase() === 'DESC'
      const nulls = o.nulls ? String(o.nulls).toUpperCase() : null
      const nullsFirst = nulls ? nulls.includes('FIRST') : cx.dialect === 'mysql' ? !desc : desc
      const n = o.expr
      let fn: OrderKey['fn']
      let col: number | null = null
      if (n?.type === 'number' && Number.isInteger(n.value)) {
        const i = n.value - 1
        if (!items[i]) throw new SqlError(SQLSTATE.invalidColumnReference, `ORDER BY position ${n.value} is not in select list`)
        fn = (_s, out) => out[i]
        if (items[i].node?.type === 'column_ref' && !aggregated) { const r = resolveIn(scope, items[i].node); if (r && r.depth === 0) col = r.index }
      } else {
        const aliasIdx = n?.type === 'column_ref' && !n.table ? items.findIndex(i => i.name.toLowerCase() === colName(n).toLowerCase() && (i.node?.type !== 'column_ref' || !cols.some(c => c.name.toLowerCase() === colName(n).toLowerCase()) || colName(i.node).toLowerCase() === colName(n).toLowerCase())) : -1
        if (aliasIdx >= 0) {
          fn = (_s, out) => out[aliasIdx]
          if (items[aliasIdx].node?.type === 'column_ref' && !aggregated) { const r = resolveIn(scope, items[aliasIdx].node); if (r && r.depth === 0) col = r.index }
        } else {
          if (aggregated) cx.agg = (agg as any).ctx
          let c: Compiled
          try { c = compile(n, scope, cx) } finally { cx.agg = null }
          const f = c.fn
          fn = (s, _out, e) => f(s, e)
          if (n?.type === 'column_ref' && !aggregated) { const r = resolveIn(scope, n); if (r && r.depth === 0) col = r.index }
        }
      }
      order.push({ fn, desc, nullsFirst })
      orderSpec.push({ col, desc, nullsFirst, explicitNulls: !!nulls })
    }
  }

  const distinct = !!(ast.distinct && (ast.distinct.type === 'DISTINCT' || ast.distinct === 'DISTINCT'))
  if (ast.distinct?.type && String(ast.distinct.type).toUpperCase() === 'DISTINCT ON') throw unsupported('DISTINCT ON')
  // LIMIT / OFFSET
  let limit: Fn | null = null, offsetFn: Fn | null = null
  const lv = ast.limit?.value ?? []
  if (lv.length) {
    const constScope = new Scope([], null)
    const c0 = compile(lv[0], constScope, cx).fn
    const c1 = lv[1] ? compile(lv[1], constScope, cx).fn : null
    if (ast.limit.seperator === ',') { offsetFn = c0; limit = c1 } // MySQL LIMIT offset, count
    else if (ast.limit.seperator === 'offset' && lv.length === 2) { limit = c0; offsetFn = c1 }
    else if (ast.limit.seperator === 'offset' && lv.length === 1 && /^\s*$/.test('')) { limit = c0 }
    else limit = c0
    if (lv[0]?.type === 'origin' && String(lv[0].value).toUpperCase() === 'ALL') limit = null
  }

  // access paths
  const whereConj = conjuncts(whereAst)
  const explain: string[] = []
  let stream = false
  const single = sources.length === 1 && sources[0].kind === 'table'
  for (const s of sources) {
    if (s.kind !== 'table') continue
    const pushable = s.join === 'left' ? [] : whereConj
    const onConj = s.join === 'left' && s.on ? conjuncts(from[sources.indexOf(s)].on) : []
    const conj = [...pushable, ...onConj]
    let want: OrderWant | null = null
    if (single && order && !aggregated && orderSpec.every(o => o.col !== null)) {
      const ok = orderSpec.map(o => {
        const col = o.col! - s.offset
        const notNull = s.table!.columns[col].notNull || s.table!.pk.includes(col)
        // key order puts NULLs last ascending / first descending
        return notNull || o.nullsFirst === o.desc
      })
      want = { cols: orderSpec.map(o => o.col! - s.offset), desc: orderSpec.map(o => o.desc), nullsOk: ok }
    }
    const { access, ordered } = planAccess(s.table!, conj, scope, s, cx, want, !!limit)
    s.access = access
    if (single && !aggregated && !distinct) stream = !order || ordered
    if (single && order && ordered) order = null
  }
  if (distinct && single && !aggregated && !order) stream = true

  // EXPLAIN text
  if (limit) explain.push('Limit')
  if (order) explain.push('Sort')
  if (distinct) explain.push('Unique')
  if (agg) explain.push(agg.keys.length ? `HashAggregate (group by ${agg.keys.length} key${agg.keys.length > 1 ? 's' : ''})` : 'Aggregate')
  if (where) explain.push('Filter')
  sources.forEach((s, i) => {
    const label = s.kind === 'table' ? s.access!.describe : s.kind === 'union' ? `Append of ${s.union!.plans.length} queries${s.union!.all.every(x => x) ? '' : ' (duplicates removed)'}` : s.kind === 'series' ? `Function Scan on generate_series` : s.shared ? `CTE Scan on ${s.alias}` : `Subquery Scan on ${s.alias}`
    if (i === 0) explain.push(label)
    else if (s.lookup) explain.push(`${s.join === 'left' ? 'Left ' : ''}Hash Join with ${s.table!.name} rows looked up by ${s.lookup.index ? `index ${s.lookup.index.name}` : 'primary key'} (${s.table!.columns[s.hash!.col].name} = each outer value; ${label} beyond ${LOOKUP_JOIN_MAX_KEYS} values)`)
    else explain.push(`${s.join === 'left' ? 'Left ' : ''}${s.hash ? 'Hash Join' : 'Nested Loop'} with ${label}`)
  })
  const depthed = explain.map((l, i) => '  '.repeat(i) + (i ? '-> ' : '') + l)
  for (const sp of subs) depthed.push(`SubPlan (${sp.correlated ? 'correlated, per outer row' : 'run once'})`, ...(sp.plan as SelectPlan).explain.map(l => '  ' + l))

  return { sources, width, where, agg, having, outputs: outputs.map(o => o.fn), fields, order, distinct, limit, offset: offsetFn, stream, subs, explain: depthed }
}

function resolveIn(scope: Scope, n: any): { index: number; depth: number } | null {
  const t = tableName(n.table)
  const name = colName(n).toLowerCase()
  let depth = 0
  for (let s: Scope | null = scope; s; s = s.parent, depth++) {
    const m = s.cols.filter(c => c.name.toLowerCase() === name && (t === null ? !c.hidden : c.table?.toLowerCase() === t.toLowerCase()))
    if (m.length === 1) return { index: m[0].index, depth }
    if (m.length > 1) return null
  }
  return null
}

function refsOnlyBefore(node: any, scope: Scope, offset: number): boolean {
  if (node === null || typeof node !== 'object') return true
  if (Array.isArray(node)) return node.every(n => refsOnlyBefore(n, scope, offset))
  if (isSubquery(node) || node.type === 'aggr_func') return false
  if (node.type === 'column_ref') {
    const r = resolveIn(scope, node)
    return !!r && r.depth === 0 && r.index < offset
  }
  for (const k of Object.keys(node)) { const v = node[k]; if (v && typeof v === 'object' && !refsOnlyBefore(v, scope, offset)) return false }
  return true
}

// ------------------------------------------------------------------ execution

function limitValue(f: Fn | null, env: Env, what: string): number {
  const none = what === 'OFFSET' ? 0 : Infinity
  if (!f) return none
  const v = f([], env)
  if (v === null) return none
  const n = Number(coerce(v, T.int8))
  if (n < 0) throw new SqlError('2201W', `${what} must not be negative`)
  return n
}

/** Runs subqueries that do not depend on the outer row, and reads the tables of those that do. */
export async function prepare(plan: SelectPlan, ex: Exec): Promise<void> {
  for (const sub of plan.subs) {
    const sp = sub.plan as SelectPlan
    if (!sub.correlated) {
      if (!ex.env.subs.has(sub)) ex.env.subs.set(sub, await runSelect(sp, ex))
    } else {
      await prefetch(sp, ex)
    }
  }
}

/** Reads every source of a (correlated) subquery plan into memory, once per execution. */
async function prefetch(plan: SelectPlan, ex: Exec): Promise<void> {
  for (const s of plan.sources) if (!ex.env.subs.has(s)) ex.env.subs.set(s, await sourceRows(s, ex, true))
  for (const sub of plan.subs) {
    if (!sub.correlated) { if (!ex.env.subs.has(sub)) ex.env.subs.set(sub, await runSelect(sub.plan as SelectPlan, ex)) }
    else await prefetch(sub.plan as SelectPlan, ex)
  }
}

async function sourceRows(s: Source, ex: Exec, forCorrelated: boolean): Promise<Row[]> {
  if (s.kind === 'union') {
    const { plans, all } = s.union!
    let rows = await runSelect(plans[0], ex)
    for (let i = 1; i < plans.length; i++) {
      rows = rows.concat(await runSelect(plans[i], ex))
      if (!all[i - 1]) {
        const seen = new Set<string>()
        rows = rows.filter(r => { const k = r.map(v => hashKey(numKey(v))).join('\u0001'); if (seen.has(k)) return false; seen.add(k); return true })
      }
    }
    return rows
  }
  if (s.kind === 'series') {
    const [a, b, c] = s.series!.map(f => f([], ex.env))
    if (a === null || b === null || c === null) return []
    const start = Number(coerce(a, T.int8)), stop = Number(coerce(b, T.int8)), step = c === undefined ? 1 : Number(coerce(c, T.int8))
    if (step === 0) throw new SqlError(SQLSTATE.invalidParameter, 'step size cannot equal zero')
    const out: Row[] = []
    for (let v = start; step > 0 ? v <= stop : v >= stop; v += step) {
      out.push([v])
      if (out.length > 10_000_000) throw new SqlError(SQLSTATE.programLimit, 'generate_series: more than 10,000,000 rows')
    }
    return out
  }
  if (s.kind === 'rows') {
    if (s.shared) {
      const got = ex.env.subs.get(s.rows!) as Row[] | undefined
      if (got) return got
      const rows = await runSelect(s.rows!, ex)
      ex.env.subs.set(s.rows!, rows)
      return rows
    }
    return runSelect(s.rows!, ex)
  }
  // a correlated subquery's access path can only use constants: its table is read once for every outer row
  void forCorrelated
  return accessRowsAll(s.access!, ex)
}

/** Runs a compiled SELECT; returns output rows (internal values, in field order). */
export async function runSelect(plan: SelectPlan, ex: Exec): Promise<Row[]> {
  await prepare(plan, ex)
  const env = ex.env
  if (plan.sources.length === 0) return compute(plan, [], env)
  if (plan.stream) {
    const limit = limitValue(plan.limit, env, 'LIMIT')
    const skip = limitValue(plan.offset, env, 'OFFSET')
    const out: Row[] = []
    if (limit === 0) return out
    const seen = plan.distinct ? new Set<string>() : null
    let skipped = 0
    const s = plan.sources[0]
    // Takes a batch's rows; true once the limit is reached.
    const take = (batch: KeyedRow[]): boolean => {
      for (const { row } of batch) {
        if (plan.where && truthy(plan.where(row, env)) !== true) continue
        const o = plan.outputs.map(f => f(row, env))
        if (seen) { const k = o.map(hashKey).join('\u0001'); if (seen.has(k)) continue; seen.add(k) }
        if (skipped < skip) { skipped++; continue }
        out.push(o)
        if (out.length >= limit) return true
      }
      return false
    }
    // Without a filter, the rows wanted are known: the scan reads no more of the last leaf than that.
    const wanted = !plan.where && !seen && Number.isFinite(limit) ? skip + limit : undefined
    if (s.access!.kind === 'get') take(await pointRows(s.access!, ex)) // a point read: no generator or async iterator
    else for await (const batch of scanBatches(s.access!, ex, wanted)) if (take(batch)) break
    return out
  }
  const only = plan.sources.length === 1 ? plan.sources[0] : null
  if (plan.agg && only && only.kind === 'table' && only.access!.kind !== 'get') {
    // One table, grouped: each row goes into its group's state as the scan
    // reads it, and no row is kept (a GROUP BY over 100k rows held them all, then grouped them).
    const groups = new Aggregator(plan, env)
    const where = plan.where
    for await (const batch of scanBatches(only.access!, ex)) {
      for (let i = 0; i < batch.length; i++) {
        const row = batch[i].row
        if (!where || truthy(where(row, env)) === true) groups.add(row)
      }
    }
    return finishRows(plan, groups.rows(), env)
  }
  const inputs: Row[][] = []
  for (const s of plan.sources) {
    if (s.lookup && inputs.length > 0) {
      const rows = await lookupRows(s, inputs[0], ex)
      if (rows) { inputs.push(rows); continue }
    }
    inputs.push(await sourceRows(s, ex, false))
  }
  return compute(plan, inputs, env)
}

/** The rows of a lookup-joined table whose join column equals one of the outer values (null: too many values, read it all). */
async function lookupRows(s: Source, outerRows: Row[], ex: Exec): Promise<Row[] | null> {
  const seen = new Map<string, unknown>()
  for (const r of outerRows) {
    const v = s.hash!.outer(r, ex.env)
    if (v === null) continue
    seen.set(hashKey(numKey(v)), v)
    if (seen.size > LOOKUP_JOIN_MAX_KEYS) return null
  }
  if (!seen.size) return []
  const t = s.table!
  const ix = s.lookup!.index
  // one value names at most one row: the primary key, or a one-column unique index
  const unique = ix ? ix.unique && ix.columns.length === 1 : t.pk.length === 1
  const access: Access = {
    table: t, kind: unique ? 'get' : 'range', index: ix, eq: [[...seen.values()].map(v => () => v)], lo: null, hi: null,
    reverse: false, keyCols: s.lookup!.cols, describe: '',
  }
  return accessRowsAll(access, ex)
}

/** Runs a correlated subquery for one outer row, over the rows prefetched for it. */
export function runCorrelated(sub: SubPlan, outerRow: Row, env: Env): unknown[][] {
  const plan = sub.plan as SelectPlan
  const subEnv: Env = { ...env, outer: [outerRow, ...env.outer] }
  const inputs = plan.sources.map(s => {
    const rows = env.subs.get(s) as Row[] | undefined
    if (!rows) throw new SqlError(SQLSTATE.internal, 'internal error: correlated subquery rows were not prefetched')
    return rows
  })
  return compute(plan, inputs, subEnv)
}

/** Joins, filters, groups, sorts and cuts, in memory. */
export function compute(plan: SelectPlan, inputs: Row[][], env: Env): Row[] {
  // joins
  let rows: Row[]
  if (plan.sources.length === 0) rows = [[]]
  else if (plan.sources.length === 1) rows = inputs[0]
  else {
    rows = inputs[0].map(r => { const x = new Array(plan.width).fill(null); for (let i = 0; i < r.length; i++) x[i] = r[i]; return x })
    for (let si = 1; si < plan.sources.length; si++) {
      const s = plan.sources[si]
      const right = inputs[si]
      const next: Row[] = []
      let table: Map<string, Row[]> | null = null
      if (s.hash) {
        table = new Map()
        for (const r of right) {
          const v = r[s.hash.col]
          if (v === null) continue
          const k = hashKey(numKey(v))
          let l = table.get(k)
          if (!l) table.set(k, l = [])
          l.push(r)
        }
      }
      for (const l of rows) {
        let cands: Row[] = right
        if (table) { const v = s.hash!.outer(l, env); cands = v === null ? [] : table.get(hashKey(numKey(v))) ?? [] }
        let matched = false
        for (const r of cands) {
          const x = l.slice()
          for (let i = 0; i < r.length; i++) x[s.offset + i] = r[i]
          if (s.on && truthy(s.on(x, env)) !== true) continue
          matched = true
          next.push(x)
        }
        if (!matched && s.join === 'left') next.push(l.slice())
      }
      rows = next
    }
  }
  if (plan.where) { const w = plan.where; rows = rows.filter(r => truthy(w(r, env)) === true) }
  if (!plan.agg) return finishRows(plan, rows, env)
  const groups = new Aggregator(plan, env)
  for (const r of rows) groups.add(r)
  return finishRows(plan, groups.rows(), env)
}

/** HAVING, the outputs, ORDER BY, DISTINCT and LIMIT/OFFSET over the joined and filtered (and grouped) rows. */
function finishRows(plan: SelectPlan, srcRows: Row[], env: Env): Row[] {
  if (plan.having) { const h = plan.having; srcRows = srcRows.filter(r => truthy(h(r, env)) === true) }
  // outputs and sort keys
  let out: Array<{ o: Row; k: unknown[] | null }> = srcRows.map(r => {
    const o = plan.outputs.map(f => f(r, env))
    return { o, k: plan.order ? plan.order.map(ok => ok.fn(r, o, env)) : null }
  })
  if (plan.order) {
    const ord = plan.order
    out.sort((a, b) => {
      for (let i = 0; i < ord.length; i++) {
        const x = a.k![i], y = b.k![i]
        let c: number
        if (x === null || y === null) {
          if (x === y) continue
          c = (x === null) === ord[i].nullsFirst ? -1 : 1
          if (c) return c
          continue
        }
        c = compare(x, y)
        if (c) return ord[i].desc ? -c : c
      }
      return 0
    })
  }
  if (plan.distinct) {
    const seen = new Set<string>()
    out = out.filter(x => { const k = x.o.map(hashKey).join('\u0001'); if (seen.has(k)) return false; seen.add(k); return true })
  }
  const skip = limitValue(plan.offset, env, 'OFFSET')
  const limit = limitValue(plan.limit, env, 'LIMIT')
  if (skip || limit !== Infinity) out = out.slice(skip, limit === Infinity ? undefined : skip + limit)
  return out.map(x => x.o)
}

/** Join keys compare numbers by value across int, float and numeric. */
function numKey(v: unknown): unknown {
  if (v instanceof Decimal) { const n = v.normalized(); return n.s === 0 ? normInt(n.m) : n.toNumber() }
  return v
}

/** GROUP BY's groups, fed a row at a time: one state per group and aggregate, no row kept. */
class Aggregator {
  readonly #groups = new Map<string, { key: unknown[]; st: AggState[] }>()
  readonly #keys: Fn[]
  readonly #one: Fn | null
  readonly #specs: AggSpec[]
  readonly #env: Env

  constructor(plan: SelectPlan, env: Env) {
    const { keys, specs } = plan.agg!
    this.#keys = keys
    this.#one = keys.length === 1 ? keys[0] : null
    this.#specs = specs
    this.#env = env
    if (keys.length === 0) this.#groups.set('', { key: [], st: this.#states() })
  }

  #states(): AggState[] { return this.#specs.map(s => newState(s)) }

  add(r: Row): void {
    const env = this.#env
    let g: { key: unknown[]; st: AggState[] } | undefined
    if (this.#one) {
      // one grouping key (the usual case): no arrays per row
      const v = this.#one(r, env)
      const hk = hashKey(numKey(v))
      g = this.#groups.get(hk)
      if (!g) this.#groups.set(hk, g = { key: [v], st: this.#states() })
    } else {
      const kv = this.#keys.map(f => f(r, env))
      const hk = kv.length ? kv.map(v => hashKey(numKey(v))).join('\u0001') : ''
      g = this.#groups.get(hk)
      if (!g) this.#groups.set(hk, g = { key: kv, st: this.#states() })
    }
    const specs = this.#specs
    for (let i = 0; i < specs.length; i++) step(specs[i], g.st[i], r, env)
  }

  /** One row a group: its key values, then each aggregate's result. */
  rows(): Row[] {
    const out: Row[] = []
    for (const g of this.#groups.values()) out.push([...g.key, ...this.#specs.map((s, i) => finish(s, g.st[i], this.#env))])
    return out
  }
}

interface AggState { n: number; v: unknown; seen: Set<string> | null }

function newState(s: AggSpec): AggState { return { n: 0, v: null, seen: s.distinct ? new Set() : null } }

function step(s: AggSpec, st: AggState, r: Row, env: Env): void {
  if (!s.arg) { st.n++; return }
  const v = s.arg(r, env)
  if (v === null) return
  if (st.seen) { const k = hashKey(numKey(v)); if (st.seen.has(k)) return; st.seen.add(k) }
  st.n++
  switch (s.name) {
    case 'COUNT': return
    case 'SUM': case 'AVG': {
      let x: unknown = v
      if (typeof x === 'string') x = coerce(x, T.numeric)
      if (st.v === null) { st.v = x; return }
      const a = st.v
      if (typeof a === 'number' && typeof x === 'number') {
        const y = a + x
        if (Number.isSafeInteger(y) || !Number.isInteger(a) || !Number.isInteger(x)) { st.v = y; return }
      }
      if ((typeof a === 'number' && !Number.isInteger(a)) || (typeof x === 'number' && !Number.isInteger(x))) { st.v = Number(a instanceof Decimal ? a.toNumber() : a) + Number(x instanceof Decimal ? x.toNumber() : x); return }
      if (a instanceof Decimal || x instanceof Decimal) { st.v = toDecimal(a).add(toDecimal(x)); return }
      st.v = normInt(BigInt(a as number) + BigInt(x as number))
      return
    }
    case 'MIN': if (st.v === null || compare(v, st.v) < 0) st.v = v; return
    case 'MAX': if (st.v === null || compare(v, st.v) > 0) st.v = v; return
  }
}

function finish(s: AggSpec, st: AggState, _env: Env): unknown {
  switch (s.name) {
    case 'COUNT': return st.n
    case 'SUM':
      if (st.v === null) return null
      if (s.type.kind === 'numeric') return toDecimal(st.v)
      return st.v
    case 'AVG': {
      if (st.v === null) return null
      if (s.type.kind === 'float8' || (typeof st.v === 'number' && !Number.isInteger(st.v))) return Number(st.v) / st.n
      const mysql = s.mysql
      return toDecimal(st.v).div(Decimal.fromInt(st.n), mysql ? 4 : 16)
    }
    default: return st.v
  }
}
