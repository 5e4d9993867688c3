/**
 * INSERT, UPDATE and DELETE: compiled once per cached statement, run inside
 * the statement's transaction. Every write maintains the table's secondary
 * indexes and checks PRIMARY KEY / UNIQUE (23505), NOT NULL (23502) and
 * types (22P02, 22001, 22003). UPDATE and DELETE first collect the rows
 * they change, then write (a row moved by its own update is not visited
 * again); a point lookup by primary key takes the row's lock
 * (getForUpdate), so concurrent increments of one row queue instead of
 * failing validation.
 */
import {
  decodeRow, describeKey, encodeRow, indexKey, indexKeyspace, pkKey, tableKeyspace, type IndexDef, type TableDef,
} from './catalog.js'
import { SqlError, SQLSTATE, unsupported } from './errors.js'
import { castTo, checkCancel, colName, compile, exprName, Scope, tableName, truthy, type ColBind, type CompileCtx, type Fn, type Row, type SubPlan } from './expr.js'
import { accessAll, compileSelect, conjuncts, planAccess, prepare, runSelect, type Access, type Exec, type Field, type PlanCtx, type SelectPlan } from './select.js'
import { coerce, type SqlType } from './values.js'

/** Allocates row ids and AUTO_INCREMENT / serial values (supplied by the engine). */
export interface Sequences {
  next(t: TableDef, col: number | null): Promise<number>
}

interface Returning { outputs: Fn[]; fields: Field[] }

export interface InsertPlan {
  kind: 'insert'
  subs: SubPlan[]
  table: TableDef
  targets: number[]
  values: Fn[][] | null
  select: SelectPlan | null
  defaults: Array<Fn | null>
  conflict: { action: 'nothing' | 'update'; target: 'pk' | IndexDef | null; set: Array<{ col: number; fn: Fn }>; where: Fn | null } | null
  returning: Returning | null
  mysql: boolean
  explain: string[]
}

export interface UpdatePlan {
  kind: 'update'
  subs: SubPlan[]
  table: TableDef
  access: Access
  where: Fn | null
  set: Array<{ col: number; fn: Fn }>
  returning: Returning | null
  explain: string[]
}

export interface DeletePlan {
  kind: 'delete'
  subs: SubPlan[]
  table: TableDef
  access: Access
  where: Fn | null
  returning: Returning | null
  explain: string[]
}

function tableScope(t: TableDef, alias: string, parent: Scope | null = null, extra: ColBind[] = []): Scope {
  return new Scope([...t.columns.map((c, i) => ({ table: alias, name: c.name, index: i, type: c.type })), ...extra], parent)
}

function columnIndex(t: TableDef, name: string): number {
  const i = t.columns.findIndex(c => c.name.toLowerCase() === name.toLowerCase())
  if (i < 0) throw new SqlError(SQLSTATE.undefinedColumn, `column "${name}" of relation "${t.name}" does not exist`)
  return i
}

function compileReturning(node: any, t: TableDef, scope: Scope, cx: CompileCtx): Returning | null {
  const cols = node?.columns
  if (!cols || !cols.length) return null
  const outputs: Fn[] = []
  const fields: Field[] = []
  for (const c of cols) {
    const e = c.expr
    if (e?.type === 'column_ref' && e.column === '*') {
      t.columns.forEach((col, i) => { outputs.push(r => r[i]); fields.push({ name: col.name, type: col.type }) })
      continue
    }
    const cc = compile(e, scope, cx)
    outputs.push(cc.fn)
    fields.push({ name: c.as ? String(c.as) : exprName(e), type: cc.type })
  }
  return { outputs, fields }
}

function setList(set: any[], t: TableDef, scope: Scope, cx: CompileCtx): Array<{ col: number; fn: Fn }> {
  return set.map((s: any) => {
    const col = columnIndex(t, typeof s.column === 'string' ? s.column : colName(s))
    if (s.table && String(tableName(s.table)).toLowerCase() !== t.name.toLowerCase() && s.table !== null) {
      // SET t.col = ...: the table qualifier must be the target
    }
    const v = s.value
    if (v?.type === 'origin' && String(v.value).toUpperCase() === 'DEFAULT') throw unsupported('SET col = DEFAULT')
    return { col, fn: castTo(compile(v, scope, cx), t.columns[col].type, 'assign').fn }
  })
}

function subExplain(subs: SubPlan[]): string[] {
  const out: string[] = []
  for (const sp of subs) out.push(`  SubPlan (${sp.correlated ? 'correlated, per row' : 'run once'})`, ...(sp.plan as SelectPlan).explain.map(l => '    ' + l))
  return out
}

export function compileInsert(ast: any, pc: PlanCtx): InsertPlan {
  const cx = pc.cx
  const savedSubs = cx.planSubs
  cx.planSubs = []
  try {
    return compileInsertBody(ast, pc)
  } finally { cx.planSubs = savedSubs }
}

function compileInsertBody(ast: any, pc: PlanCtx): InsertPlan {
  const cx = pc.cx
  const subs = cx.planSubs!
  const tref = ast.table?.[0]
  const t = pc.cat.table(String(tref.table))
  if (ast.partition) throw unsupported('INSERT ... PARTITION')
  const explicit = !!(ast.columns && ast.columns.length) && !ast.implicitColumns
  let targets: number[] = explicit
    ? ast.columns.map((c: any) => columnIndex(t, typeof c === 'string' ? c : String(c.value ?? colName(c))))
    : t.columns.map((_, i) => i)
  if (ast.implicitColumns && !explicit) targets = t.columns.map((_, i) => i)
  if (!explicit && ast.values?.type === 'values') {
    // INSERT INTO t VALUES (...) with fewer values than columns fills the first ones (PostgreSQL)
    const widest = Math.max(...ast.values.values.map((r: any) => (r.value ?? r).length))
    if (widest < targets.length) targets = targets.slice(0, widest)
  }
  if (new Set(targets).size !== targets.length) throw new SqlError(SQLSTATE.duplicateColumn, 'column specified more than once')
  const empty = new Scope([], null)
  let values: Fn[][] | null = null
  let select: SelectPlan | null = null
  const v = ast.values
  if (v && v.type === 'values') {
    values = v.values.map((row: any) => {
      const items = row.value ?? row
      if (items.length !== targets.length) throw new SqlError(SQLSTATE.syntax, `INSERT has ${items.length > targets.length ? 'more expressions than target columns' : 'more target columns than expressions'}`)
      return items.map((e: any, i: number) => {
        if (e?.type === 'origin' && String(e.value).toUpperCase() === 'DEFAULT') return null
        if (e?.type === 'default' && String(e.value).toUpperCase() === 'DEFAULT') return null
        return castTo(compile(e, empty, cx), t.columns[targets[i]].type, 'assign').fn
      })
    })
  } else if (v && (v.type === 'select' || v.ast)) {
    select = compileSelect(v.ast ?? v, null, pc, null)
    if (!explicit && select.fields.length < targets.length) targets = targets.slice(0, select.fields.length)
    if (select.fields.length !== targets.length) throw new SqlError(SQLSTATE.syntax, `INSERT has ${select.fields.length > targets.length ? 'more expressions than target columns' : 'more target columns than expressions'}`)
  } else if (ast.select) {
    select = compileSelect(ast.select, null, pc, null)
  } else throw unsupported('this form of INSERT')
  const defaults = t.columns.map(c => c.default !== undefined && c.default !== null ? castTo(compile(c.default, empty, cx), c.type, 'assign').fn : null)
  // ON CONFLICT / ON DUPLICATE KEY UPDATE
  let conflict: InsertPlan['conflict'] = null
  const alias = tref.as ? String(tref.as) : t.name
  const excluded: ColBind[] = t.columns.map((c, i) => ({ table: 'excluded', name: c.name, index: t.columns.length + i, type: c.type, hidden: true }))
  const upScope = tableScope(t, alias, null, excluded)
  if (ast.conflict) {
    const c = ast.conflict
    let target: 'pk' | IndexDef | null = null
    if (c.target) {
      const cols: number[] = (c.target.expr ?? []).map((e: any) => columnIndex(t, colName(e)))
      const same = (a: number[]) => a.length === cols.length && a.every(x => cols.includes(x))
      if (t.pk.length && same(t.pk)) target = 'pk'
      else target = t.indexes.find(ix => ix.unique && same(ix.columns)) ?? null
      if (!target) throw new SqlError(SQLSTATE.invalidColumnReference, 'there is no unique or exclusion constraint matching the ON CONFLICT specification')
    }
    const act = c.action
    if (act?.expr?.type === 'update') {
      if (!c.target) throw new SqlError(SQLSTATE.syntax, 'ON CONFLICT DO UPDATE requires inference specification or constraint name')
      conflict = { action: 'update', target, set: setList(act.expr.set, t, upScope, cx), where: act.expr.where ? compile(act.expr.where, upScope, cx).fn : null }
    } else conflict = { action: 'nothing', target, set: [], where: null }
  } else if (ast.on_duplicate_update) {
    conflict = { action: 'update', target: null, set: setList(ast.on_duplicate_update.set, t, upScope, cx), where: null }
  }
  const returning = compileReturning(ast.returning, t, tableScope(t, alias), cx)
  const explain = [`Insert on ${t.name}${conflict ? ` (on conflict: ${conflict.action})` : ''}`, ...(select ? select.explain.map(l => '  ' + l) : ['  Values'])]
  return { kind: 'insert', subs, table: t, targets, values, select, defaults, conflict, returning, mysql: cx.dialect === 'mysql', explain }
}

export function compileUpdate(ast: any, pc: PlanCtx): UpdatePlan {
  const cx = pc.cx
  if (ast.table.length !== 1 || ast.from) throw unsupported('UPDATE of several tables / UPDATE ... FROM')
  const tref = ast.table[0]
  const t = pc.cat.table(String(tref.table))
  const alias = tref.as ? String(tref.as) : t.name
  const scope = tableScope(t, alias)
  const savedSubs = cx.planSubs
  cx.planSubs = []
  try {
    const where = ast.where ? compile(ast.where, scope, cx).fn : null
    const set = setList(ast.set, t, scope, cx)
    const subs = cx.planSubs
    const { access } = planAccess(t, conjuncts(ast.where), scope, { alias, offset: 0, width: t.columns.length }, cx, null, false)
    const returning = compileReturning(ast.returning, t, scope, cx)
    if (ast.orderby || (ast.limit && ast.limit.value?.length)) throw unsupported('UPDATE ... ORDER BY / LIMIT')
    return { kind: 'update', subs, table: t, access, where, set, returning, explain: [`Update on ${t.name}`, `  -> ${access.describe}`, ...subExplain(subs)] }
  } finally { cx.planSubs = savedSubs }
}

export function compileDelete(ast: any, pc: PlanCtx): DeletePlan {
  const cx = pc.cx
  const tref = (ast.from ?? ast.table)[0]
  if ((ast.from ?? []).length > 1) throw unsupported('DELETE from several tables')
  const t = pc.cat.table(String(tref.table))
  const alias = tref.as ? String(tref.as) : t.name
  const scope = tableScope(t, alias)
  const savedSubs = cx.planSubs
  cx.planSubs = []
  try {
    const where = ast.where ? compile(ast.where, scope, cx).fn : null
    const subs = cx.planSubs
    const { access } = planAccess(t, conjuncts(ast.where), scope, { alias, offset: 0, width: t.columns.length }, cx, null, false)
    const returning = compileReturning(ast.returning, t, scope, cx)
    if (ast.orderby || (ast.limit && ast.limit.value?.length)) throw unsupported('DELETE ... ORDER BY / LIMIT')
    return { kind: 'delete', subs, table: t, access, where, returning, explain: [`Delete on ${t.name}`, `  -> ${access.describe}`, ...subExplain(subs)] }
  } finally { cx.planSubs = savedSubs }
}

// ------------------------------------------------------------------ execution

export interface DmlResult {
  rowCount: number; rows: Row[] | null; fields: Field[]
  /** INSERT: the first serial / AUTO_INCREMENT value this statement generated (MySQL's insert id), if any */
  insertId?: number
}

function notNull(t: TableDef, row: Row): void {
  for (let i = 0; i < t.columns.length; i++) {
    const c = t.columns[i]
    if (row[i] === null && (c.notNull || t.pk.includes(i))) throw new SqlError(SQLSTATE.notNullViolation, `null value in column "${c.name}" of relation "${t.name}" violates not-null constraint`)
  }
}

function dup(t: TableDef, cons: 'pk' | IndexDef, row: Row): SqlError {
  const name = cons === 'pk' ? `${t.name}_pkey` : cons.name
  const cols = cons === 'pk' ? t.pk : cons.columns
  return new SqlError(SQLSTATE.uniqueViolation, `duplicate key value violates unique constraint "${name}": ${describeKey(t, cols, row)}`)
}

/** Finds a row that `row` would collide with: on the primary key or a unique index. */
async function findConflict(t: TableDef, ex: Exec, row: Row, key: Uint8Array, self: Uint8Array | null): Promise<{ cons: 'pk' | IndexDef; key: Uint8Array; bytes: Uint8Array } | null> {
  const tks = ex.tx.keyspace(tableKeyspace(t))
  if (t.pk.length && !(self && Buffer.compare(self, key) === 0)) {
    const got = await tks.get(key)
    if (got) return { cons: 'pk', key, bytes: got }
  }
  for (const ix of t.indexes) {
    if (!ix.unique) continue
    const { uniqueKey } = indexKey(t, ix, row, key)
    if (!uniqueKey) continue
    const owner = await ex.tx.keyspace(indexKeyspace(ix)).get(uniqueKey)
    if (owner && !(self && Buffer.compare(owner, self) === 0) && Buffer.compare(owner, key) !== 0) {
      const bytes = await tks.get(owner)
      if (bytes) return { cons: ix, key: owner, bytes }
    }
  }
  return null
}

async function writeNew(t: TableDef, ex: Exec, key: Uint8Array, row: Row): Promise<void> {
  await ex.tx.keyspace(tableKeyspace(t)).put(key, encodeRow(t, row))
  for (const ix of t.indexes) await ex.tx.keyspace(indexKeyspace(ix)).put(indexKey(t, ix, row, key).key, key)
}

/** Replaces row `old` (at `key`) with `row`; returns the row's key afterwards. */
async function writeUpdate(t: TableDef, ex: Exec, key: Uint8Array, old: Row, row: Row): Promise<Uint8Array> {
  notNull(t, row)
  const tks = ex.tx.keyspace(tableKeyspace(t))
  const newKey = t.pk.length && t.pk.some(c => row[c] !== old[c]) ? pkKey(t, row) : key
  const moved = Buffer.compare(newKey, key) !== 0
  if (moved) {
    if (await tks.get(newKey)) throw dup(t, 'pk', row)
    await tks.del(key)
  }
  for (const ix of t.indexes) {
    const a = indexKey(t, ix, old, key), b = indexKey(t, ix, row, newKey)
    if (Buffer.compare(a.key, b.key) === 0 && !moved) continue
    const iks = ex.tx.keyspace(indexKeyspace(ix))
    await iks.del(a.key)
    if (b.uniqueKey) {
      const owner = await iks.get(b.uniqueKey)
      if (owner && Buffer.compare(owner, newKey) !== 0) throw dup(t, ix, row)
    }
    await iks.put(b.key, newKey)
  }
  await tks.put(newKey, encodeRow(t, row))
  return newKey
}

export async function runInsert(p: InsertPlan, ex: Exec, seq: Sequences): Promise<DmlResult> {
  const t = p.table
  const env = ex.env
  await prepare({ subs: p.subs } as SelectPlan, ex)
  let proposed: Row[]
  if (p.values) proposed = p.values.map(fs => fs.map(f => (f ? f([], env) : undefined)))
  else {
    const rows = await runSelect(p.select!, ex)
    proposed = rows.map(r => r.map((v, i) => coerce(v, t.columns[p.targets[i]].type, true)))
  }
  const out: Row[] = []
  let count = 0
  let insertId: number | undefined
  for (const vals of proposed) {
    const y = checkCancel(env)
    if (y) await y
    const row: Row = new Array(t.columns.length).fill(null)
    const given = new Array(t.columns.length).fill(false)
    for (let i = 0; i < p.targets.length; i++) {
      if (vals[i] === undefined) continue // DEFAULT
      row[p.targets[i]] = vals[i]
      given[p.targets[i]] = true
    }
    for (let c = 0; c < t.columns.length; c++) {
      const col = t.columns[c]
      if (!given[c] && p.defaults[c]) row[c] = p.defaults[c]!([], env)
      if (col.auto && row[c] === null) {
        row[c] = coerce(await seq.next(t, c), col.type)
        if (insertId === undefined && (typeof row[c] === 'number' || typeof row[c] === 'bigint')) insertId = Number(row[c])
      }
    }
    notNull(t, row)
    const key = t.pk.length ? pkKey(t, row) : pkKey(t, row, await seq.next(t, null))
    const hit = await findConflict(t, ex, row, key, null)
    if (hit) {
      const c = p.conflict
      const matches = c && (c.target === null || c.target === hit.cons)
      if (!c || !matches) throw dup(t, hit.cons, row)
      if (c.action === 'nothing') continue
      const old = decodeRow(t, hit.bytes)
      const both = [...old, ...row]
      if (c.where && truthy(c.where(both, env)) !== true) continue
      const next = old.slice()
      for (const s of c.set) next[s.col] = s.fn(both, env)
      let changed = false
      for (let i = 0; i < next.length; i++) if (next[i] !== old[i]) changed = true
      await writeUpdate(t, ex, hit.key, old, next)
      count += p.mysql ? (changed ? 2 : 0) : 1
      if (p.returning) out.push(p.returning.outputs.map(f => f(next, env)))
      continue
    }
    await writeNew(t, ex, key, row)
    count++
    if (p.returning) out.push(p.returning.outputs.map(f => f(row, env)))
  }
  return { rowCount: count, rows: p.returning ? out : null, fields: p.returning?.fields ?? [], insertId }
}

async function collect(access: Access, where: Fn | null, ex: Exec, subs: SubPlan[]): Promise<Array<{ key: Uint8Array; row: Row }>> {
  await prepare({ subs } as SelectPlan, ex)
  const hits: Array<{ key: Uint8Array; row: Row }> = []
  const lockEx: Exec = { ...ex, lock: true }
  for (const r of await accessAll(access, lockEx)) if (!where || truthy(where(r.row, ex.env)) === true) hits.push(r)
  return hits
}

export async function runUpdate(p: UpdatePlan, ex: Exec): Promise<DmlResult> {
  const t = p.table
  const hits = await collect(p.access, p.where, ex, p.subs)
  const out: Row[] = []
  for (const { key, row } of hits) {
    const y = checkCancel(ex.env)
    if (y) await y
    const next = row.slice()
    for (const s of p.set) next[s.col] = s.fn(row, ex.env)
    await writeUpdate(t, ex, key, row, next)
    if (p.returning) out.push(p.returning.outputs.map(f => f(next, ex.env)))
  }
  return { rowCount: hits.length, rows: p.returning ? out : null, fields: p.returning?.fields ?? [] }
}

export async function runDelete(p: DeletePlan, ex: Exec): Promise<DmlResult> {
  const t = p.table
  const hits = await collect(p.access, p.where, ex, p.subs)
  const out: Row[] = []
  const tks = ex.tx.keyspace(tableKeyspace(t))
  for (const { key, row } of hits) {
    const y = checkCancel(ex.env)
    if (y) await y
    await tks.del(key)
    for (const ix of t.indexes) await ex.tx.keyspace(indexKeyspace(ix)).del(indexKey(t, ix, row, key).key)
    if (p.returning) out.push(p.returning.outputs.map(f => f(row, ex.env)))
  }
  return { rowCount: hits.length, rows: p.returning ? out : null, fields: p.returning?.fields ?? [] }
}

export type { SqlType }
