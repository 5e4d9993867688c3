/**
 * Expression compiler: a node-sql-parser expression AST becomes a closure
 * `(row, env) => value`, once per plan (plans are cached, so nothing is
 * recompiled per execution). Rows are flat arrays (the columns of every
 * source of a FROM, side by side); column references are resolved to an
 * index at compile time. NULL is `null`, and every operator follows SQL's
 * three-valued logic.
 *
 * Subqueries (IN, EXISTS, scalar) compile to a SubPlan; the executor runs
 * uncorrelated ones once per statement and correlated ones per outer row
 * over tables it read into memory beforehand (see select.ts).
 */
import { SqlError, SQLSTATE, unsupported } from './errors.js'
import type { Dialect } from './lexer.js'
import {
  coerce, compare, compareText, Decimal, isInt, Json, kindOf, normInt, parseType, SqlDate, T, toDecimal, toText, type Kind, type SqlType,
} from './values.js'

export type Row = unknown[]
export type Fn = (row: Row, env: Env) => unknown

/** What a running statement carries: its parameter values, outer rows of correlated subqueries, subquery results. */
export interface Env {
  params: unknown[]
  /** outer rows, innermost first (for correlated subqueries) */
  outer: Row[]
  /** per-execution state of subqueries */
  subs: Map<object, unknown>
  now: Date
  /** runs a correlated subquery synchronously over prefetched rows (set by the executor) */
  runSub: (sub: SubPlan, row: Row, env: Env) => unknown[][]
  /** aborted when the client cancels the statement (a PostgreSQL CancelRequest): row loops stop with 57014 */
  signal?: AbortSignal
  /** rows read or written since the statement last yielded to the event loop */
  rowsSinceYield?: number
}

/** rows a statement handles between two yields to the event loop */
const ROWS_PER_YIELD = 256

/**
 * Called once per row read or written: throws 57014 when the statement was
 * cancelled, and every ROWS_PER_YIELD rows yields to the event loop. Reads
 * of cached pages and writes buffered in a transaction resolve as
 * microtasks, so without this a statement over a million rows would hold
 * the thread to the end: no other connection served, and no cancel request
 * even read.
 */
export function checkCancel(env: Env, rows = 1): Promise<void> | undefined {
  if (env.signal?.aborted) throw cancelled()
  env.rowsSinceYield = (env.rowsSinceYield ?? 0) + rows
  if (env.rowsSinceYield < ROWS_PER_YIELD) return undefined // the common case costs no await
  env.rowsSinceYield = 0
  return new Promise<void>((resolve, reject) => setImmediate(() => { if (env.signal?.aborted) reject(cancelled()); else resolve() }))
}

function cancelled(): SqlError {
  return new SqlError(SQLSTATE.queryCanceled, 'canceling statement due to user request')
}

export interface Compiled { fn: Fn; type: SqlType; constant?: boolean }

export interface ColBind { table: string | null; name: string; index: number; type: SqlType; hidden?: boolean }

export interface SubPlan {
  /** the compiled SELECT (opaque here: select.ts owns it) */
  plan: unknown
  correlated: boolean
  mode: 'rows'
}

/** Aggregation context: post-aggregate expressions read group rows [keys..., aggregates...]. */
export interface AggCtx {
  keyCols: Map<number, number>
  keyExprs: Map<string, number>
  nKeys: number
  aggs: AggSpec[]
  inputScope: Scope
  keyTypes?: SqlType[]
}

export interface AggSpec {
  name: 'COUNT' | 'SUM' | 'AVG' | 'MIN' | 'MAX'
  arg: Fn | null // null: count(*)
  argType: SqlType
  distinct: boolean
  type: SqlType
  mysql: boolean
}

export class Scope {
  constructor(readonly cols: ColBind[], readonly parent: Scope | null = null) {}
}

/** Compiles subqueries: supplied by select.ts (avoids an import cycle). */
export type SubCompiler = (ast: any, scope: Scope, cx: CompileCtx) => { plan: unknown; correlated: boolean; type: SqlType }

export class CompileCtx {
  /** correlated-subquery markers, one per enclosing subquery being compiled */
  readonly subStack: Array<{ correlated: boolean; depthBase: number }> = []
  agg: AggCtx | null = null
  /** the subqueries of the SELECT being compiled (its executor prepares them) */
  planSubs: SubPlan[] | null = null
  constructor(readonly dialect: Dialect, readonly slotTypes: SqlType[], readonly compileSub: SubCompiler) {}
}

// ------------------------------------------------------------------ AST helpers

/** The name of a column reference (both dialects' AST shapes). */
export function colName(ref: any): string {
  const c = ref.column
  if (typeof c === 'string') return c
  if (c && typeof c === 'object' && c.expr) return String(c.expr.value)
  throw unsupported(`column reference ${JSON.stringify(ref).slice(0, 80)}`)
}

export function tableName(t: any): string | null {
  if (t === null || t === undefined) return null
  if (typeof t === 'string') return t
  if (typeof t === 'object' && 'value' in t) return String(t.value)
  return String(t)
}

export function funcName(node: any): string {
  const n = node.name
  if (typeof n === 'string') return n.toUpperCase()
  if (n && Array.isArray(n.name)) return n.name.map((x: any) => x.value).join('.').toUpperCase()
  return String(n).toUpperCase()
}

export function argList(node: any): any[] {
  const a = node.args
  if (!a) return []
  if (Array.isArray(a)) return a
  if (a.type === 'expr_list') return a.value ?? []
  if (Array.isArray(a.value)) return a.value
  return [a]
}

export function isSubquery(node: any): boolean {
  return !!node && typeof node === 'object' && (node.ast !== undefined || (node.type === 'select' && node.columns !== undefined))
}

function subAst(node: any): any { return node.ast ?? node }

/** The output name PostgreSQL gives an unaliased expression. */
export function exprName(node: any): string {
  if (!node) return '?column?'
  if (node.type === 'column_ref') return colName(node)
  if (node.type === 'aggr_func') return String(node.name).toLowerCase()
  if (node.type === 'function') return funcName(node).toLowerCase().split('.').pop()!
  if (node.type === 'cast') return exprName(node.expr) === '?column?' ? String(node.target?.[0]?.dataType ?? '?column?').toLowerCase() : exprName(node.expr)
  if (node.type === 'case') return 'case'
  return '?column?'
}

/** Whether an expression contains an aggregate call (not looking into subqueries). */
export function hasAggregate(node: any): boolean {
  if (!node || typeof node !== 'object') return false
  if (Array.isArray(node)) return node.some(hasAggregate)
  if (node.type === 'aggr_func') return true
  if (isSubquery(node)) return false
  for (const k of Object.keys(node)) {
    if (k === 'over') continue
    const v = node[k]
    if (v && typeof v === 'object' && hasAggregate(v)) return true
  }
  return false
}

// ------------------------------------------------------------------ resolution

function resolve(scope: Scope, table: string | null, name: string): { depth: number; bind: ColBind } | null {
  const lname = name.toLowerCase()
  const ltable = table?.toLowerCase() ?? null
  let depth = 0
  for (let s: Scope | null = scope; s; s = s.parent, depth++) {
    let found: ColBind | null = null
    for (const c of s.cols) {
      if (c.name.toLowerCase() !== lname) continue
      if (ltable !== null ? c.table?.toLowerCase() !== ltable : c.hidden) continue
      if (found) throw new SqlError(SQLSTATE.ambiguousColumn, `column reference "${name}" is ambiguous`)
      found = c
    }
    if (found) return { depth, bind: found }
  }
  return null
}

export function resolveColumn(scope: Scope, table: string | null, name: string): { depth: number; bind: ColBind } {
  const r = resolve(scope, table, name)
  if (!r) {
    if (table !== null) {
      let known = false
      for (let s: Scope | null = scope; s; s = s.parent) if (s.cols.some(c => c.table?.toLowerCase() === table.toLowerCase())) known = true
      if (!known) throw new SqlError(SQLSTATE.undefinedTable, `missing FROM-clause entry for table "${table}"`)
      throw new SqlError(SQLSTATE.undefinedColumn, `column ${table}.${name} does not exist`)
    }
    throw new SqlError(SQLSTATE.undefinedColumn, `column "${name}" does not exist`)
  }
  return r
}

// ------------------------------------------------------------------ compile

const NUMERIC_KINDS = new Set<Kind>(['int4', 'int8', 'float8', 'numeric'])

function isTrue(v: unknown): boolean | null {
  if (v === null) return null
  if (typeof v === 'boolean') return v
  if (typeof v === 'number') return v !== 0
  if (typeof v === 'bigint') return v !== 0n
  if (typeof v === 'string') return coerce(v, T.bool) as boolean
  if (v instanceof Decimal) return v.m !== 0n
  throw new SqlError(SQLSTATE.datatypeMismatch, `argument of a condition must be boolean, not ${kindOf(v)}`)
}
export { isTrue as truthy }

export function compile(node: any, scope: Scope, cx: CompileCtx): Compiled {
  if (cx.agg) {
    const agg = cx.agg
    if (node && node.type === 'aggr_func') return compileAggRef(node, agg, cx)
    const key = JSON.stringify(node)
    const ki = agg.keyExprs.get(key)
    if (ki !== undefined) {
      const spec = agg.keyTypes?.[ki]
      return { fn: r => r[ki], type: spec ?? T.unknown }
    }
    if (node && node.type === 'column_ref' && node.column !== '*') {
      const r = resolveColumn(agg.inputScope, tableName(node.table), colName(node))
      if (r.depth === 0) {
        const k = agg.keyCols.get(r.bind.index)
        if (k === undefined) throw new SqlError(SQLSTATE.groupingError, `column "${r.bind.table ? r.bind.table + '.' : ''}${r.bind.name}" must appear in the GROUP BY clause or be used in an aggregate function`)
        const type = r.bind.type
        return { fn: row => row[k], type }
      }
      return compileNode(node, agg.inputScope, cx)
    }
  }
  return compileNode(node, scope, cx)
}

function compileAggRef(node: any, agg: AggCtx, cx: CompileCtx): Compiled {
  if (node.over) throw unsupported('window functions (OVER)')
  const name = String(node.name).toUpperCase() as AggSpec['name']
  if (!['COUNT', 'SUM', 'AVG', 'MIN', 'MAX'].includes(name)) throw unsupported(`aggregate function ${node.name}`)
  const a = node.args ?? {}
  const saved = cx.agg
  cx.agg = null
  let arg: Compiled | null = null
  try {
    if (!(a.expr && a.expr.type === 'star')) {
      if (!a.expr) throw new SqlError(SQLSTATE.syntax, `${name} needs an argument`)
      if (hasAggregate(a.expr)) throw new SqlError(SQLSTATE.groupingError, 'aggregate function calls cannot be nested')
      arg = compile(a.expr, agg.inputScope, cx)
    }
  } finally { cx.agg = saved }
  const at = arg?.type ?? T.int8
  let type: SqlType
  switch (name) {
    case 'COUNT': type = T.int8; break
    case 'SUM': type = at.kind === 'int4' || at.kind === 'int8' ? T.int8 : at.kind === 'float8' ? T.float8 : at.kind === 'unknown' ? T.unknown : T.numeric; break
    case 'AVG': type = at.kind === 'float8' ? T.float8 : at.kind === 'unknown' ? T.unknown : T.numeric; break
    default: type = at
  }
  const idx = agg.nKeys + agg.aggs.length
  agg.aggs.push({ name, arg: arg?.fn ?? null, argType: at, distinct: !!a.distinct, type, mysql: cx.dialect === 'mysql' })
  return { fn: r => r[idx], type }
}

function param(i: number, cx: CompileCtx): Compiled {
  const t = cx.slotTypes[i] ?? T.unknown
  return { fn: (_r, e) => e.params[i], type: t, constant: true }
}

function lit(v: unknown, type: SqlType): Compiled {
  return { fn: () => v, type, constant: true }
}

function compileNode(node: any, scope: Scope, cx: CompileCtx): Compiled {
  if (node === null || node === undefined) return lit(null, T.unknown)
  if (isSubquery(node)) return compileScalarSub(node, scope, cx)
  switch (node.type) {
    case 'column_ref': {
      if (node.column === '*') throw new SqlError(SQLSTATE.syntax, '* is only allowed in a select list or COUNT(*)')
      checkCollate(node.collate)
      const r = resolveColumn(scope, tableName(node.table), colName(node))
      const idx = r.bind.index
      if (r.depth === 0) return { fn: row => row[idx], type: r.bind.type }
      markCorrelated(cx, r.depth)
      const d = r.depth - 1
      return { fn: (_row, e) => e.outer[d][idx], type: r.bind.type }
    }
    case 'param': {
      const m = /^p(\d+)$/.exec(String(node.value))
      if (!m) throw new SqlError(SQLSTATE.syntax, `unknown parameter :${node.value}`)
      return param(Number(m[1]) - 1, cx)
    }
    case 'var':
      if (node.prefix === '$' && typeof node.name === 'number') return param(node.name - 1, cx)
      throw unsupported(`variable ${node.prefix ?? ''}${node.name}`)
    case 'origin':
      if (node.value === '?') throw new SqlError(SQLSTATE.syntax, 'unexpected ? placeholder')
      if (String(node.value).toUpperCase() === 'DEFAULT') throw unsupported('DEFAULT in this position')
      throw unsupported(`expression ${node.value}`)
    case 'number': {
      const v = node.value
      if (typeof v === 'number') return Number.isInteger(v) ? lit(v, Math.abs(v) <= 2147483647 ? T.int4 : T.int8) : lit(Decimal.fromNumber(v), T.numeric)
      return lit(Decimal.parse(String(v)), T.numeric)
    }
    case 'bigint': {
      const s = String(node.value)
      if (/^\d+$/.test(s)) return lit(normInt(BigInt(s)), T.int8)
      return lit(Decimal.parse(s), T.numeric)
    }
    case 'single_quote_string': case 'string': case 'natural_string': case 'regex_string':
      return lit(String(node.value), T.unknown)
    case 'double_quote_string':
      if (cx.dialect === 'mysql') return lit(String(node.value), T.unknown)
      return compileNode({ type: 'column_ref', table: null, column: String(node.value) }, scope, cx)
    case 'hex_string': case 'full_hex_string':
      return lit(Buffer.from(String(node.value), 'hex'), T.bytea)
    case 'bool': case 'boolean':
      return lit(!!node.value, T.bool)
    case 'null':
      return lit(null, T.unknown)
    case 'date': case 'timestamp': case 'datetime':
      return castTo(lit(String(node.value), T.unknown), node.type === 'date' ? T.date : T.timestamp, 'cast')
    case 'unary_expr': return compileUnary(node, scope, cx)
    case 'binary_expr': return compileBinary(node, scope, cx)
    case 'case': return compileCase(node, scope, cx)
    case 'cast': {
      const tgt = node.target?.[0] ?? node.target
      const t = parseType(tgt, cx.dialect)
      return castTo(compile(node.expr, scope, cx), t, 'cast')
    }
    case 'function': return compileFunction(node, scope, cx)
    case 'aggr_func':
      throw new SqlError(SQLSTATE.groupingError, `aggregate function ${node.name} is not allowed here`)
    case 'expr_list': {
      const v = node.value ?? []
      if (v.length === 1) return compile(v[0], scope, cx)
      throw unsupported('a row value (a parenthesised list) in this position')
    }
    case 'interval': throw unsupported('INTERVAL values')
    case 'extract': return compileExtract(node, scope, cx)
    default:
      throw unsupported(`expression of type ${node.type}`)
  }
}

/** Text compares by code point (PostgreSQL's "C" collation, MySQL's utf8mb4_bin); other collations are refused, not ignored. */
export function checkCollate(c: any): void {
  if (!c) return
  const name = String(c.collate?.name?.value ?? c.collate?.name ?? c.name ?? c.value ?? '').toLowerCase()
  if (!['c', 'posix', 'binary', 'utf8mb4_bin', 'ucs_basic'].includes(name)) throw unsupported(`COLLATE ${name || '(unknown)'} (text compares by code point, as COLLATE "C")`)
}

function markCorrelated(cx: CompileCtx, depth: number): void {
  // each enclosing subquery whose own scope the reference crosses becomes correlated
  const s = cx.subStack
  for (let i = s.length - 1, d = depth; i >= 0 && d > 0; i--, d--) s[i].correlated = true
}

export function castTo(c: Compiled, t: SqlType, how: 'cast' | 'assign'): Compiled {
  if (!c.constant && c.type.kind === t.kind && t.len === undefined && t.scale === undefined && t.name === c.type.name) return c
  const f = c.fn
  const assign = how === 'assign'
  if (c.constant && c.fn.length === 0) {
    const v = coerce(c.fn([], null as unknown as Env), t, assign)
    return { fn: () => v, type: t, constant: true }
  }
  return { fn: (r, e) => { const v = f(r, e); return v === null ? null : coerce(v, t, assign) }, type: t, constant: c.constant }
}

function compileUnary(node: any, scope: Scope, cx: CompileCtx): Compiled {
  const op = String(node.operator).toUpperCase()
  if (op === 'EXISTS' || op === 'NOT EXISTS') {
    const inner = node.expr?.type === 'expr_list' ? node.expr.value[0] : node.expr
    return compileFunction({ type: 'function', name: op, args: { type: 'expr_list', value: [inner] } }, scope, cx)
  }
  const a = compile(node.expr, scope, cx)
  const f = a.fn
  if (op === 'NOT' || op === '!') return { fn: (r, e) => { const v = isTrue(f(r, e)); return v === null ? null : !v }, type: T.bool }
  if (op === '-') return { fn: (r, e) => negate(f(r, e)), type: a.type.kind === 'unknown' ? T.unknown : a.type }
  if (op === '+') return a
  throw unsupported(`unary operator ${node.operator}`)
}

function negate(v: unknown): unknown {
  if (v === null) return null
  if (typeof v === 'number') return v === 0 ? 0 : -v
  if (typeof v === 'bigint') return normInt(-v)
  if (v instanceof Decimal) return v.neg()
  if (typeof v === 'string') return negate(toNumberish(v))
  throw new SqlError(SQLSTATE.undefinedFunction, `operator does not exist: - ${kindOf(v)}`)
}

function toNumberish(v: string): unknown {
  const s = v.trim()
  if (/^[+-]?\d+$/.test(s)) return normInt(BigInt(s))
  const d = Decimal.parse(s)
  if (!d) throw new SqlError(SQLSTATE.badInput, `invalid input syntax for type numeric: ${JSON.stringify(v)}`)
  return d
}

function numType(a: SqlType, b: SqlType): SqlType {
  const ka = a.kind, kb = b.kind
  if (ka === 'float8' || kb === 'float8') return T.float8
  if (ka === 'numeric' || kb === 'numeric') return T.numeric
  if (ka === 'int8' || kb === 'int8') return T.int8
  if (ka === 'int4' && kb === 'int4') return T.int4
  if (ka === 'unknown' && kb === 'unknown') return T.unknown
  return ka === 'unknown' ? (kb === 'int4' ? T.int4 : b) : (ka === 'int4' ? T.int4 : a)
}

/** Arithmetic on two non-null values (numbers, bigints, decimals; strings read as numbers). */
export function arith(op: string, a: unknown, b: unknown, floatCtx: boolean, dialect: Dialect): unknown {
  if (typeof a === 'string') a = toNumberish(a)
  if (typeof b === 'string') b = toNumberish(b)
  const ta = typeof a, tb = typeof b
  if ((ta === 'number' || ta === 'bigint') && (tb === 'number' || tb === 'bigint')) {
    const ints = !floatCtx && isInt(a) && isInt(b)
    if (ints) {
      if (ta === 'number' && tb === 'number') {
        const x = a as number, y = b as number
        let r: number
        switch (op) {
          case '+': r = x + y; break
          case '-': r = x - y; break
          case '*': r = x * y; break
          case '/':
            if (y === 0) return divZero(dialect)
            if (dialect === 'mysql') return new Decimal(BigInt(x), 0).div(new Decimal(BigInt(y), 0), 4)
            r = Math.trunc(x / y); break
          case 'DIV': if (y === 0) return divZero(dialect); r = Math.trunc(x / y); break
          case '%': case 'MOD': if (y === 0) return divZero(dialect); r = x % y; if (r === 0) r = 0; break
          default: throw unsupported(`operator ${op}`)
        }
        if (Number.isSafeInteger(r)) return r
      }
      const x = BigInt(a as number), y = BigInt(b as number)
      let r: bigint
      switch (op) {
        case '+': r = x + y; break
        case '-': r = x - y; break
        case '*': r = x * y; break
        case '/':
          if (y === 0n) return divZero(dialect)
          if (dialect === 'mysql') return new Decimal(x, 0).div(new Decimal(y, 0), 4)
          r = x / y; break
        case 'DIV': if (y === 0n) return divZero(dialect); r = x / y; break
        case '%': case 'MOD': if (y === 0n) return divZero(dialect); r = x % y; break
        default: throw unsupported(`operator ${op}`)
      }
      if (r < -(2n ** 63n) || r > 2n ** 63n - 1n) throw new SqlError(SQLSTATE.numericOutOfRange, 'bigint out of range')
      return normInt(r)
    }
    const x = Number(a), y = Number(b)
    switch (op) {
      case '+': return x + y
      case '-': return x - y
      case '*': return x * y
      case '/': if (y === 0) return divZero(dialect); return x / y
      case 'DIV': if (y === 0) return divZero(dialect); return Math.trunc(x / y)
      case '%': case 'MOD': if (y === 0) return divZero(dialect); return x % y
    }
    throw unsupported(`operator ${op}`)
  }
  if (a instanceof Decimal || b instanceof Decimal) {
    if ((ta === 'number' && !Number.isInteger(a)) || (tb === 'number' && !Number.isInteger(b))) return arith(op, Number(toDecimal(a).toNumber()), Number(toDecimal(b).toNumber()), true, dialect)
    const x = toDecimal(a), y = toDecimal(b)
    switch (op) {
      case '+': return x.add(y)
      case '-': return x.sub(y)
      case '*': return x.mul(y)
      case '/': if (y.m === 0n) return divZero(dialect); return x.div(y, dialect === 'mysql' ? x.s + 4 : 16)
      case 'DIV': if (y.m === 0n) return divZero(dialect); return normInt(x.div(y, 0).rescale(0).m)
      case '%': case 'MOD': if (y.m === 0n) return divZero(dialect); return x.mod(y)
    }
  }
  throw new SqlError(SQLSTATE.undefinedFunction, `operator does not exist: ${kindOf(a)} ${op} ${kindOf(b)}`)
}

function divZero(dialect: Dialect): null {
  if (dialect === 'mysql') return null
  throw new SqlError(SQLSTATE.divisionByZero, 'division by zero')
}

const likeCache = new Map<string, RegExp>()
export function likeRegex(pattern: string, ci: boolean, esc = '\\'): RegExp {
  const key = (ci ? 'i' : 'c') + esc + '\u0000' + pattern
  let re = likeCache.get(key)
  if (!re) {
    let src = ''
    for (let i = 0; i < pattern.length; i++) {
      const c = pattern[i]
      if (esc !== '' && c === esc && i + 1 < pattern.length) { src += pattern[++i].replace(/[.*+?^${}()|[\]\\]/g, '\\$&'); continue }
      if (c === '%') src += '[\\s\\S]*'
      else if (c === '_') src += '[\\s\\S]'
      else src += c.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
    }
    re = new RegExp('^' + src + '$', ci ? 'isu' : 'su')
    if (likeCache.size > 1000) likeCache.clear()
    likeCache.set(key, re)
  }
  return re
}

function listItems(node: any): any[] {
  if (node && node.type === 'expr_list') return node.value ?? []
  return [node]
}

/**
 * A literal string or parameter (static type unknown) compared with a typed
 * value is read as that type, as PostgreSQL reads an untyped literal: so
 * `float_col = 'NaN'` and `date_col < '2020-01-01'` compare as float and
 * date. Only strings are converted (a JS number stays a number).
 */
function unknownTo(c: Compiled, t: SqlType): Compiled {
  if (c.type.kind !== 'unknown' || t.kind === 'unknown' || t.kind === 'text') return c
  const f = c.fn
  const tt: SqlType = { kind: t.kind, name: t.name }
  return { fn: (r, e) => { const v = f(r, e); return typeof v === 'string' ? coerce(v, tt) : v }, type: c.type, constant: c.constant }
}

function compileBinary(node: any, scope: Scope, cx: CompileCtx): Compiled {
  const op = String(node.operator).toUpperCase()
  switch (op) {
    case 'AND': case '&&': {
      const a = compile(node.left, scope, cx).fn, b = compile(node.right, scope, cx).fn
      return {
        fn: (r, e) => {
          const x = isTrue(a(r, e))
          if (x === false) return false
          const y = isTrue(b(r, e))
          if (y === false) return false
          return x === null || y === null ? null : true
        }, type: T.bool,
      }
    }
    case 'OR': {
      const a = compile(node.left, scope, cx).fn, b = compile(node.right, scope, cx).fn
      return {
        fn: (r, e) => {
          const x = isTrue(a(r, e))
          if (x === true) return true
          const y = isTrue(b(r, e))
          if (y === true) return true
          return x === null || y === null ? null : false
        }, type: T.bool,
      }
    }
    case '||':
      if (cx.dialect === 'mysql') return compileBinary({ ...node, operator: 'OR' }, scope, cx)
      {
        const a = compile(node.left, scope, cx).fn, b = compile(node.right, scope, cx).fn
        return { fn: (r, e) => { const x = a(r, e); if (x === null) return null; const y = b(r, e); if (y === null) return null; return toText(x) + toText(y) }, type: T.text }
      }
    case '=': case '<>': case '!=': case '<': case '<=': case '>': case '>=': case '<=>': {
      const l = node.right && (node.right.type === 'expr_list') && isSubquery(node.right.value?.[0]) ? null : null
      void l
      const A = compile(node.left, scope, cx), B = compile(node.right, scope, cx)
      const a = unknownTo(A, B.type).fn, b = unknownTo(B, A.type).fn
      const test = cmpTest(op)
      if (op === '<=>') return { fn: (r, e) => { const x = a(r, e), y = b(r, e); if (x === null || y === null) return x === y; return compare(x, y) === 0 }, type: T.bool }
      return { fn: (r, e) => { const x = a(r, e); if (x === null) return null; const y = b(r, e); if (y === null) return null; return test(compare(x, y)) }, type: T.bool }
    }
    case '+': case '-': case '*': case '/': case '%': case 'DIV': case 'MOD': {
      const A = compile(node.left, scope, cx), B = compile(node.right, scope, cx)
      const a = A.fn, b = B.fn
      let type = numType(A.type, B.type)
      if ((op === '/' && cx.dialect === 'mysql' && type.kind !== 'float8')) type = T.numeric
      if (op === 'DIV') type = T.int8
      for (const t of [A.type, B.type]) if (!NUMERIC_KINDS.has(t.kind) && t.kind !== 'unknown') throw new SqlError(SQLSTATE.undefinedFunction, `operator does not exist: ${A.type.name} ${node.operator} ${B.type.name}`)
      const floatCtx = type.kind === 'float8'
      const dialect = cx.dialect
      if (type.kind === 'int4' || type.kind === 'int8') {
        // fast path: both safe integers
        if (op === '+') return { fn: (r, e) => { const x = a(r, e); if (x === null) return null; const y = b(r, e); if (y === null) return null; if (typeof x === 'number' && typeof y === 'number') { const s = x + y; if (Number.isSafeInteger(s)) return s } return arith(op, x, y, false, dialect) }, type }
        if (op === '-') return { fn: (r, e) => { const x = a(r, e); if (x === null) return null; const y = b(r, e); if (y === null) return null; if (typeof x === 'number' && typeof y === 'number') { const s = x - y; if (Number.isSafeInteger(s)) return s } return arith(op, x, y, false, dialect) }, type }
      }
      return { fn: (r, e) => { const x = a(r, e); if (x === null) return null; const y = b(r, e); if (y === null) return null; return arith(op, x, y, floatCtx, dialect) }, type }
    }
    case 'LIKE': case 'NOT LIKE': case 'ILIKE': case 'NOT ILIKE': {
      const a = compile(node.left, scope, cx).fn
      const rightNode = node.right?.type === 'expr_list' ? node.right.value[0] : node.right
      const b = compile(rightNode, scope, cx).fn
      const escNode = rightNode?.escape?.value ?? node.right?.escape?.value
      const escFn = escNode ? compile(escNode, scope, cx).fn : null
      const ci = op.includes('ILIKE')
      const neg = op.startsWith('NOT')
      return {
        fn: (r, e) => {
          const x = a(r, e); if (x === null) return null
          const p = b(r, e); if (p === null) return null
          let esc = '\\'
          if (escFn) {
            const ev = escFn(r, e); if (ev === null) return null
            esc = toText(ev)
            if ([...esc].length > 1) throw new SqlError('22025', 'invalid escape string: it must be empty or one character')
          }
          const m = likeRegex(toText(p), ci, esc).test(toText(x))
          return neg ? !m : m
        }, type: T.bool,
      }
    }
    case 'IN': case 'NOT IN': {
      const A = compile(node.left, scope, cx)
      const a = A.fn
      const neg = op === 'NOT IN'
      const items = listItems(node.right)
      if (items.length === 1 && isSubquery(items[0])) {
        const sub = compileSubPlan(items[0], scope, cx)
        return { fn: (r, e) => inResult(a(r, e), subRows(sub, r, e), neg), type: T.bool }
      }
      const fs = items.map(x => unknownTo(compile(x, scope, cx), A.type).fn)
      return {
        fn: (r, e) => {
          const x = a(r, e)
          if (x === null) return null
          let sawNull = false
          for (const f of fs) {
            const y = f(r, e)
            if (y === null) { sawNull = true; continue }
            if (compare(x, y) === 0) return !neg
          }
          return sawNull ? null : neg
        }, type: T.bool,
      }
    }
    case 'BETWEEN': case 'NOT BETWEEN': {
      const A = compile(node.left, scope, cx)
      const a = A.fn
      const [lo, hi] = listItems(node.right).map(x => unknownTo(compile(x, scope, cx), A.type).fn)
      const neg = op === 'NOT BETWEEN'
      return {
        fn: (r, e) => {
          const x = a(r, e)
          if (x === null) return null
          const l = lo(r, e), h = hi(r, e)
          const ge = l === null ? null : compare(x, l) >= 0
          const le = h === null ? null : compare(x, h) <= 0
          let v: boolean | null
          if (ge === false || le === false) v = false
          else if (ge === null || le === null) v = null
          else v = true
          return v === null ? null : neg ? !v : v
        }, type: T.bool,
      }
    }
    case 'IS': case 'IS NOT': {
      const a = compile(node.left, scope, cx).fn
      const neg = op === 'IS NOT'
      const rt = node.right?.type
      if (rt === 'null') return { fn: (r, e) => (a(r, e) === null) !== neg, type: T.bool }
      if (rt === 'bool' || rt === 'boolean') {
        const want = !!node.right.value
        return { fn: (r, e) => (isTrue(a(r, e)) === want) !== neg, type: T.bool }
      }
      if (node.right?.type === 'origin' && String(node.right.value).toUpperCase() === 'UNKNOWN') return { fn: (r, e) => (isTrue(a(r, e)) === null) !== neg, type: T.bool }
      throw unsupported(`IS ${neg ? 'NOT ' : ''}${JSON.stringify(node.right?.value ?? rt)}`)
    }
    case 'IS DISTINCT FROM': case 'IS NOT DISTINCT FROM': {
      const a = compile(node.left, scope, cx).fn, b = compile(node.right, scope, cx).fn
      const neg = op === 'IS NOT DISTINCT FROM'
      return { fn: (r, e) => { const x = a(r, e), y = b(r, e); const same = x === null || y === null ? x === y : compare(x, y) === 0; return neg ? same : !same }, type: T.bool }
    }
    case 'XOR': {
      const a = compile(node.left, scope, cx).fn, b = compile(node.right, scope, cx).fn
      return { fn: (r, e) => { const x = isTrue(a(r, e)), y = isTrue(b(r, e)); return x === null || y === null ? null : x !== y }, type: T.bool }
    }
    case '->': case '->>': {
      const a = compile(node.left, scope, cx).fn, b = compile(node.right, scope, cx).fn
      const asText = op === '->>'
      return {
        fn: (r, e) => {
          const x = a(r, e); if (x === null) return null
          const k = b(r, e); if (k === null) return null
          const j = x instanceof Json ? x.value() : JSON.parse(toText(x))
          const v = (j as any)?.[typeof k === 'number' ? k : toText(k)]
          if (v === undefined || (asText && v === null)) return null
          return asText ? (typeof v === 'string' ? v : JSON.stringify(v)) : new Json(JSON.stringify(v))
        }, type: asText ? T.text : T.json,
      }
    }
  }
  throw unsupported(`operator ${node.operator}`)
}

function cmpTest(op: string): (c: number) => boolean {
  switch (op) {
    case '=': return c => c === 0
    case '<>': case '!=': return c => c !== 0
    case '<': return c => c < 0
    case '<=': return c => c <= 0
    case '>': return c => c > 0
    default: return c => c >= 0
  }
}

function inResult(x: unknown, rows: unknown[][], neg: boolean): boolean | null {
  if (x === null) return rows.length === 0 ? neg : null
  let sawNull = false
  for (const row of rows) {
    const y = row[0]
    if (y === null) { sawNull = true; continue }
    if (compare(x, y) === 0) return !neg
  }
  return sawNull ? null : neg
}

// ------------------------------------------------------------------ subqueries

export function compileSubPlan(node: any, scope: Scope, cx: CompileCtx): SubPlan & { type: SqlType } {
  cx.subStack.push({ correlated: false, depthBase: 0 })
  const saved = cx.agg
  // an aggregate context's input scope is where a subquery's outer references resolve
  const outerScope = saved ? saved.inputScope : scope
  cx.agg = null
  let r: ReturnType<SubCompiler>
  try {
    r = cx.compileSub(subAst(node), outerScope, cx)
  } finally {
    cx.agg = saved
  }
  const mark = cx.subStack.pop()!
  if (saved && mark.correlated) throw unsupported('a correlated subquery in an aggregate query')
  const sp = { plan: r.plan, correlated: mark.correlated, mode: 'rows' as const, type: r.type }
  if (!cx.planSubs) throw unsupported('a subquery in this position')
  cx.planSubs.push(sp)
  return sp
}

/** The rows of a subquery: computed once per execution when uncorrelated, per outer row when correlated. */
export function subRows(sub: SubPlan, row: Row, env: Env): unknown[][] {
  if (!sub.correlated) {
    const got = env.subs.get(sub) as unknown[][] | undefined
    if (got) return got
  }
  return env.runSub(sub, row, env)
}

function compileScalarSub(node: any, scope: Scope, cx: CompileCtx): Compiled {
  const sub = compileSubPlan(node, scope, cx)
  return {
    fn: (r, e) => {
      const rows = subRows(sub, r, e)
      if (rows.length > 1) throw new SqlError(SQLSTATE.cardinality, 'more than one row returned by a subquery used as an expression')
      return rows.length ? rows[0][0] : null
    }, type: sub.type,
  }
}

// ------------------------------------------------------------------ CASE, functions

function compileCase(node: any, scope: Scope, cx: CompileCtx): Compiled {
  const subject = node.expr ? compile(node.expr, scope, cx).fn : null
  const whens: Array<[Fn, Fn]> = []
  let elseFn: Fn = () => null
  let type: SqlType = T.unknown
  for (const a of node.args) {
    if (a.type === 'when') {
      const res = compile(a.result, scope, cx)
      if (type.kind === 'unknown') type = res.type
      whens.push([compile(a.cond, scope, cx).fn, res.fn])
    } else {
      const res = compile(a.result, scope, cx)
      if (type.kind === 'unknown') type = res.type
      elseFn = res.fn
    }
  }
  if (subject) {
    return {
      fn: (r, e) => {
        const s = subject(r, e)
        for (const [c, v] of whens) { const w = c(r, e); if (s !== null && w !== null && compare(s, w) === 0) return v(r, e) }
        return elseFn(r, e)
      }, type,
    }
  }
  return { fn: (r, e) => { for (const [c, v] of whens) if (isTrue(c(r, e)) === true) return v(r, e); return elseFn(r, e) }, type }
}

function compileExtract(node: any, scope: Scope, cx: CompileCtx): Compiled {
  const field = String(node.args?.field ?? '').toLowerCase()
  const src = compile(node.args?.source, scope, cx).fn
  const get: Record<string, (d: Date) => number> = {
    year: d => d.getUTCFullYear(), month: d => d.getUTCMonth() + 1, day: d => d.getUTCDate(), hour: d => d.getUTCHours(),
    minute: d => d.getUTCMinutes(), second: d => d.getUTCSeconds() + d.getUTCMilliseconds() / 1000, dow: d => d.getUTCDay(), epoch: d => d.getTime() / 1000,
  }
  const g = get[field]
  if (!g) throw unsupported(`EXTRACT(${field} ...)`)
  return { fn: (r, e) => { const v = src(r, e); if (v === null) return null; const d = coerce(v, T.timestamp) as Date; return g(d) }, type: T.float8 }
}

function textArg(v: unknown): string { return toText(v) }

function compileFunction(node: any, scope: Scope, cx: CompileCtx): Compiled {
  const name = funcName(node)
  if (node.over) throw unsupported(`window functions (${name.toLowerCase()}(...) OVER)`)
  const argsAst = argList(node)
  if (name === 'EXISTS' || name === 'NOT EXISTS') {
    const sub = compileSubPlan(argsAst[0], scope, cx)
    const neg = name === 'NOT EXISTS'
    return { fn: (r, e) => (subRows(sub, r, e).length > 0) !== neg, type: T.bool }
  }
  if (name === 'VALUES' && cx.dialect === 'mysql') {
    // ON DUPLICATE KEY UPDATE ... VALUES(col): the row that was proposed for insertion
    const ref = argsAst[0]
    return compile({ type: 'column_ref', table: 'excluded', column: colName(ref) }, scope, cx)
  }
  const args = argsAst.map(a => compile(a, scope, cx))
  const f = args.map(a => a.fn)
  const n = f.length
  const need = (lo: number, hi = lo) => { if (n < lo || n > hi) throw new SqlError(SQLSTATE.undefinedFunction, `function ${name.toLowerCase()} takes ${lo === hi ? lo : `${lo} to ${hi}`} arguments, got ${n}`) }
  const strict1 = (g: (v: unknown) => unknown, type: SqlType): Compiled => { need(1); const a = f[0]; return { fn: (r, e) => { const v = a(r, e); return v === null ? null : g(v) }, type } }
  const firstType = () => args.find(a => a.type.kind !== 'unknown')?.type ?? T.unknown
  switch (name) {
    case 'NOT': need(1); return { fn: (r, e) => { const v = isTrue(f[0](r, e)); return v === null ? null : !v }, type: T.bool }
    case 'COALESCE': case 'IFNULL': case 'NVL':
      if (n < 1) need(1, 99)
      return { fn: (r, e) => { for (const g of f) { const v = g(r, e); if (v !== null) return v } return null }, type: firstType() }
    case 'NULLIF': need(2); return { fn: (r, e) => { const a = f[0](r, e); if (a === null) return null; const b = f[1](r, e); return b !== null && compare(a, b) === 0 ? null : a }, type: args[0].type }
    case 'IF': need(3); return { fn: (r, e) => isTrue(f[0](r, e)) === true ? f[1](r, e) : f[2](r, e), type: args[1].type.kind !== 'unknown' ? args[1].type : args[2].type }
    case 'GREATEST': case 'LEAST': {
      const sign = name === 'GREATEST' ? 1 : -1
      const mysql = cx.dialect === 'mysql'
      return { fn: (r, e) => { let best: unknown = null; for (const g of f) { const v = g(r, e); if (v === null) { if (mysql) return null; continue } if (best === null || compare(v, best) * sign > 0) best = v } return best }, type: firstType() }
    }
    case 'LOWER': case 'LCASE': return strict1(v => textArg(v).toLowerCase(), T.text)
    case 'UPPER': case 'UCASE': return strict1(v => textArg(v).toUpperCase(), T.text)
    case 'LENGTH': case 'CHAR_LENGTH': case 'CHARACTER_LENGTH':
      if (name === 'LENGTH' && cx.dialect === 'mysql') return strict1(v => v instanceof Uint8Array ? v.length : Buffer.byteLength(textArg(v)), T.int4)
      return strict1(v => v instanceof Uint8Array ? v.length : [...textArg(v)].length, T.int4)
    case 'OCTET_LENGTH': return strict1(v => v instanceof Uint8Array ? v.length : Buffer.byteLength(textArg(v)), T.int4)
    case 'ABS': return strict1(v => { const x = typeof v === 'string' ? toNumberish(v) : v; if (x instanceof Decimal) return x.m < 0n ? x.neg() : x; if (typeof x === 'bigint') return x < 0n ? normInt(-x) : x; return Math.abs(x as number) }, args[0]?.type ?? T.unknown)
    case 'SIGN': return strict1(v => { const c = compare(v, 0); return c }, T.int4)
    case 'ROUND': case 'TRUNC': case 'TRUNCATE': {
      need(1, 2)
      const trunc = name !== 'ROUND'
      const t = args[0].type
      return {
        fn: (r, e) => {
          const v = f[0](r, e); if (v === null) return null
          const d = n > 1 ? f[1](r, e) : 0; if (d === null) return null
          const digits = Number(d)
          if (typeof v === 'number' && t.kind !== 'numeric' && !Number.isInteger(v)) {
            const m = 10 ** digits
            if (trunc) return Math.trunc(v * m) / m
            // PostgreSQL rounds float8 half to even; numeric half away from zero
            const x = v * m
            let y = Math.round(x)
            if (Math.abs(x % 1) === 0.5 && y % 2 !== 0) y -= 1
            return y / m
          }
          if (isInt(v) && digits >= 0) return v
          const dec = toDecimal(v)
          if (trunc) { const f2 = 10n ** BigInt(Math.max(0, dec.s - digits)); return digits >= dec.s ? dec : new Decimal((dec.m / f2), Math.max(0, digits)) }
          return dec.rescale(Math.max(0, digits))
        }, type: t.kind === 'unknown' ? T.numeric : t,
      }
    }
    case 'FLOOR': case 'CEIL': case 'CEILING': {
      const up = name !== 'FLOOR'
      return strict1(v => {
        const x = typeof v === 'string' ? toNumberish(v) : v
        if (isInt(x)) return x
        if (x instanceof Decimal) { const q = x.m / 10n ** BigInt(x.s); const exact = q * 10n ** BigInt(x.s) === x.m; let r = q; if (!exact) { if (up && x.m > 0n) r = q + 1n; if (!up && x.m < 0n) r = q - 1n } return new Decimal(r, 0) }
        return up ? Math.ceil(x as number) : Math.floor(x as number)
      }, args[0]?.type ?? T.unknown)
    }
    case 'MOD': need(2); return { fn: (r, e) => { const a = f[0](r, e), b = f[1](r, e); return a === null || b === null ? null : arith('%', a, b, false, cx.dialect) }, type: numType(args[0].type, args[1].type) }
    case 'POWER': case 'POW': need(2); return { fn: (r, e) => { const a = f[0](r, e), b = f[1](r, e); return a === null || b === null ? null : Number(toDecimal(a).toNumber()) ** Number(toDecimal(b).toNumber()) }, type: T.float8 }
    case 'SQRT': return strict1(v => { const x = toDecimal(v).toNumber(); if (x < 0) throw new SqlError('2201F', 'cannot take square root of a negative number'); return Math.sqrt(x) }, T.float8)
    case 'RANDOM': case 'RAND': need(0); return { fn: () => Math.random(), type: T.float8 }
    case 'CONCAT': {
      const mysql = cx.dialect === 'mysql'
      return { fn: (r, e) => { let s = ''; for (const g of f) { const v = g(r, e); if (v === null) { if (mysql) return null; continue } s += toText(v) } return s }, type: T.text }
    }
    case 'CONCAT_WS': return { fn: (r, e) => { const sep = f[0](r, e); if (sep === null) return null; const parts: string[] = []; for (let i = 1; i < n; i++) { const v = f[i](r, e); if (v !== null) parts.push(toText(v)) } return parts.join(toText(sep)) }, type: T.text }
    case 'SUBSTR': case 'SUBSTRING': {
      need(2, 3)
      return {
        fn: (r, e) => {
          const s = f[0](r, e), st = f[1](r, e); if (s === null || st === null) return null
          const len = n > 2 ? f[2](r, e) : undefined; if (len === null) return null
          const chars = [...textArg(s)]
          let from = Number(st)
          if (from < 0 && cx.dialect === 'mysql') from = chars.length + from + 1
          let end = len === undefined ? chars.length + 1 : from + Number(len)
          if (len !== undefined && Number(len) < 0) throw new SqlError(SQLSTATE.invalidParameter, 'negative substring length not allowed')
          const a = Math.max(1, from)
          end = Math.min(end, chars.length + 1)
          return end <= a ? '' : chars.slice(a - 1, end - 1).join('')
        }, type: T.text,
      }
    }
    case 'LEFT': case 'RIGHT': need(2); return { fn: (r, e) => { const s = f[0](r, e), k = f[1](r, e); if (s === null || k === null) return null; const c = [...textArg(s)]; const m = Number(k); const take = m < 0 ? Math.max(0, c.length + m) : m; return (name === 'LEFT' ? c.slice(0, take) : c.slice(c.length - Math.min(take, c.length))).join('') }, type: T.text }
    case 'TRIM': case 'BTRIM': case 'LTRIM': case 'RTRIM': {
      need(1, 2)
      const mode = name === 'LTRIM' ? 'l' : name === 'RTRIM' ? 'r' : 'b'
      return {
        fn: (r, e) => {
          const s = f[0](r, e); if (s === null) return null
          const chars = n > 1 ? f[1](r, e) : ' '; if (chars === null) return null
          const set = new Set([...toText(chars)])
          const c = [...toText(s)]
          let i = 0, j = c.length
          if (mode !== 'r') while (i < j && set.has(c[i])) i++
          if (mode !== 'l') while (j > i && set.has(c[j - 1])) j--
          return c.slice(i, j).join('')
        }, type: T.text,
      }
    }
    case 'REPLACE': need(3); return { fn: (r, e) => { const s = f[0](r, e), a = f[1](r, e), b = f[2](r, e); if (s === null || a === null || b === null) return null; const from = toText(a); return from === '' ? toText(s) : toText(s).split(from).join(toText(b)) }, type: T.text }
    case 'REVERSE': return strict1(v => [...textArg(v)].reverse().join(''), T.text)
    case 'REPEAT': need(2); return { fn: (r, e) => { const s = f[0](r, e), k = f[1](r, e); return s === null || k === null ? null : toText(s).repeat(Math.max(0, Number(k))) }, type: T.text }
    case 'POSITION': case 'STRPOS': case 'INSTR': need(2); return { fn: (r, e) => { const s = f[0](r, e), sub = f[1](r, e); if (s === null || sub === null) return null; const i = toText(s).indexOf(toText(sub)); return i < 0 ? 0 : [...toText(s).slice(0, i)].length + 1 }, type: T.int4 }
    case 'NOW': case 'CURRENT_TIMESTAMP': case 'LOCALTIMESTAMP': case 'SYSDATE':
      return { fn: (_r, e) => e.now, type: T.timestamp }
    case 'CURRENT_DATE': case 'CURDATE':
      return { fn: (_r, e) => new SqlDate(Math.floor(e.now.getTime() / 86400000)), type: T.date }
    case 'TO_JSON': case 'TO_JSONB': return strict1(v => v instanceof Json ? v : new Json(JSON.stringify(v instanceof Decimal ? Number(v.toString()) : v instanceof SqlDate ? v.toString() : v instanceof Uint8Array ? toText(v) : v)), T.json)
    case 'VERSION': need(0); return lit('hexad SQL (PostgreSQL 15 / MySQL 8 dialects)', T.text)
  }
  throw new SqlError(SQLSTATE.undefinedFunction, `function ${name.toLowerCase()}(${args.map(a => a.type.name).join(', ')}) does not exist`)
}

export { compareText }
