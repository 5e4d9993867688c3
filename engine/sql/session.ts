/**
 * The SQL engine of one database handle, and sessions on it.
 *
 * `db.sql(text, params?)` runs one statement in autocommit: its own
 * serializable transaction, retried on HEXAD_CONFLICT / HEXAD_DEADLOCK.
 * `db.session()` gives a session whose BEGIN ... COMMIT spans calls (the
 * wire layer opens one per connection). Statements of one session run one
 * at a time, in call order.
 *
 * Every statement goes through the statement cache: its text is normalised
 * (lexer.ts: literals and parameters become placeholders), parsed once by
 * node-sql-parser, and compiled once into a plan against the current
 * catalog version; a DDL bumps the version, and plans compiled against an
 * older one are compiled again from the cached AST.
 */
import type { Database } from '../compute/database.js'
import type { Transaction } from '../compute/kv.js'
import type { Reader, ReaderSnapshot } from '../compute/reader.js'
import type { Volume } from '../volume/volume.js'
import { createRequire } from 'node:module'
import { CATALOG_KEYSPACE, decodeDef, tableKeyspace, type TableDef } from './catalog.js'
import { alterTable, createIndex, createTable, dropIndex, dropTable, truncateTables, type DdlHost } from './ddl.js'
import { compileDelete, compileInsert, compileUpdate, runDelete, runInsert, runUpdate, type DeletePlan, type InsertPlan, type UpdatePlan } from './dml.js'
import { SqlError, SQLSTATE, toSqlError, unsupported } from './errors.js'
import { CompileCtx, type Env, type Row } from './expr.js'
import { firstWord, literalShape, normalize, parserText, tokenize, type Dialect, type Slot } from './lexer.js'
import { compileSelect, runCorrelated, runSelect, type CatalogView, type Exec, type Field, type PlanCtx, type SelectPlan, type SqlKeyspace, type TxLike } from './select.js'
import { fromParam, kindOf, PG_OID, T, toJs, type SqlType } from './values.js'
import { verifySql, type SqlVerifyReport } from './verify.js'

export type { Dialect }

export interface SqlOptions {
  /** 'postgres' (default: the cluster's dialect) or 'mysql' */
  dialect?: Dialect
  /** rows as objects keyed by field name (default) or as arrays in field order */
  rowMode?: 'object' | 'array'
  /** cancels the statement when aborted: it fails with 57014 between rows, and its writes are not committed */
  signal?: AbortSignal
}

export interface SqlField {
  name: string
  /** PostgreSQL type name: int4, int8, float8, numeric, text, varchar, bool, bytea, timestamp, date, json, jsonb */
  type: string
  /** PostgreSQL type OID (23 int4, 20 int8, 701 float8, 1700 numeric, 25 text, 1043 varchar, 16 bool, 17 bytea, 1114 timestamp, 1082 date, 114 json, 3802 jsonb) */
  oid: number
}

export interface SqlResult<R = Record<string, unknown>> {
  /** command tag: SELECT, INSERT, UPDATE, DELETE, CREATE TABLE, DROP TABLE, CREATE INDEX, DROP INDEX, ALTER TABLE, BEGIN, COMMIT, ROLLBACK, EXPLAIN, ALTER SYSTEM */
  command: string
  /** rows returned (SELECT) or affected (INSERT, UPDATE, DELETE) */
  rowCount: number
  rows: R[]
  fields: SqlField[]
  /** INSERT into a table with a serial / AUTO_INCREMENT column: the first value it generated */
  insertId?: number
}

export interface SqlConfig {
  dialect?: Dialect
  volume?: Volume
  /** what ALTER SYSTEM CRASH does when the database belongs to a cluster: its failover (a replica, or a new writer instance, takes over) */
  crash?: () => Promise<unknown>
  /** told when a segment stopped by ALTER SYSTEM SIMULATE is restarted, or its restart fails (the cluster emits it as 'fault') */
  onFault?: (e: FaultEvent) => void
}

/**
 * The end of a simulated failure: its segments restarted (`restored`), or a
 * restart that failed (`restore-failed`; retried every RESTORE_RETRY_MS, up to
 * RESTORE_ATTEMPTS in all, unless the volume closed or the writer crashed).
 */
export interface FaultEvent {
  action: 'restored' | 'restore-failed'
  failure: 'az' | 'disk'
  segments: number[]
  /** 1 for the restart at the end of the interval */
  attempt: number
  /** restore-failed: why */
  error?: string
  /** restore-failed: the next attempt is due in this many ms (absent: no more attempts) */
  retryInMs?: number
}

const RESTORE_RETRY_MS = 1000
const RESTORE_ATTEMPTS = 30

type Prepared =
  | { kind: 'select'; plan: SelectPlan }
  | InsertPlan | UpdatePlan | DeletePlan

interface Entry {
  hits: number
  ast: any
  kind: string
  prepared: Prepared | null
  version: number
  slotTypes: SqlType[]
  /** its key in the statement cache (set when it is remembered there) */
  key?: string
}

const CACHE_MAX = 2000
/** statement texts remembered by Engine.lex, and the longest kept */
const TEXT_MEMO_MAX = 1024
const TEXT_MEMO_CHARS = 4096
/** characters of all remembered texts together (their tokens take several times that) */
const TEXT_MEMO_TOTAL_CHARS = 1 << 20

interface Lexed {
  key: string
  allToks: ReturnType<typeof tokenize>
  toks: ReturnType<typeof tokenize>
  w0: string
  words: string[]
  entry: { e: Entry; slots: Slot[] } | null
  /** the text's integer literals and its skeleton's memo key (lexer.ts literalShape), for SqlEngine.learnShape */
  shape?: { key: string; nums: number[] }
}

/** A statement seen with integer literals: any text with its skeleton runs as `e`, its literals as slots. */
interface Shape {
  lexed: Lexed
  e: Entry
  /** per literal: its slot is the literal negated (the skeleton's '-' is the literal's sign) */
  negate: boolean[]
}
/** skeletons remembered by SqlEngine.lex, and their characters together (as for TEXT_MEMO_*) */
const SHAPE_MEMO_MAX = 1024
const SHAPE_MEMO_TOTAL_CHARS = 1 << 20
const AUTOCOMMIT_RETRIES = 20
/** statement kinds (node-sql-parser's ast.type) that run as queries or DML */
const DML_KINDS = new Set(['select', 'insert', 'update', 'delete', 'replace'])

const require = createRequire(import.meta.url)
const parsers: Partial<Record<Dialect, { astify(sql: string, opt: object): any }>> = {}
function parser(d: Dialect) {
  let p = parsers[d]
  if (!p) {
    const mod = require(d === 'mysql' ? 'node-sql-parser/build/mysql' : 'node-sql-parser/build/postgresql')
    p = parsers[d] = new mod.Parser()
  }
  return p!
}

function parse(text: string, d: Dialect): any {
  try {
    const ast = parser(d).astify(text, { database: d === 'mysql' ? 'mysql' : 'postgresql' })
    if (Array.isArray(ast)) {
      if (ast.length !== 1) throw new SqlError(SQLSTATE.featureNotSupported, 'not supported: several statements in one call (split them, e.g. with splitStatements())')
      return ast[0]
    }
    return ast
  } catch (err) {
    if (err instanceof SqlError) throw err
    const e = err as { message?: string; location?: { start?: { line: number; column: number } }; found?: string }
    const at = e.location?.start ? ` at line ${e.location.start.line}, column ${e.location.start.column}` : ''
    const near = e.found !== undefined && e.found !== null ? ` near "${e.found}"` : ' at end of input'
    throw new SqlError(SQLSTATE.syntax, `syntax error${near}${at}: ${text.length > 200 ? text.slice(0, 200) + '…' : text}`)
  }
}

function fieldOf(f: Field, rows: Row[], i: number): SqlField {
  let t = f.type
  if (t.kind === 'unknown') {
    const v = rows.find(r => r[i] !== null)?.[i]
    const k = v === undefined ? 'text' : kindOf(v)
    t = k === 'unknown' ? T.text : (T as Record<string, SqlType>)[k] ?? T.text
  }
  const type = t.name === 'varchar' || t.name === 'jsonb' ? t.name : t.kind === 'unknown' ? 'text' : t.kind
  return { name: f.name, type, oid: PG_OID[type] ?? 25 }
}

function shape(fields: Field[], rows: Row[], mode: 'object' | 'array'): { fields: SqlField[]; rows: any[] } {
  const fs = fields.map((f, i) => fieldOf(f, rows, i))
  if (mode === 'array') return { fields: fs, rows: rows.map(r => r.map(toJs)) }
  return {
    fields: fs,
    rows: rows.map(r => {
      const o: Record<string, unknown> = {}
      for (let i = 0; i < fs.length; i++) o[fs[i].name] = toJs(r[i])
      return o
    }),
  }
}

/** Splits a script into statements at top-level semicolons (quotes and comments respected). */
export function splitStatements(text: string, dialect: Dialect = 'postgres'): string[] {
  // One statement, at most a trailing semicolon, no comment: nothing to tokenize (a client's
  // simple query is usually this, and the statement is lexed again when it runs).
  const body = text.replace(/;\s*$/, '')
  if (!body.includes(';') && !body.includes('--') && !body.includes('/*') && !body.includes('#')) {
    const one = body.trim()
    return one ? [one] : []
  }
  const toks = tokenize(text, dialect)
  const out: string[] = []
  let cur = ''
  for (const t of toks) {
    if (t.t === 'op' && t.s === ';') { if (cur.trim()) out.push(cur.trim()); cur = ''; continue }
    cur += t.s
  }
  if (cur.trim()) out.push(cur.trim())
  return out
}

export class SqlEngine implements DdlHost, CatalogView {
  readonly db: Database
  dialect: Dialect
  volume: Volume | null
  readonly tables = new Map<string, TableDef>()
  version = 0
  readonly #cache = new Map<string, Entry>()
  /**
   * Statement texts seen before, with what their lexing decided (and, for a
   * text whose only variables are parameters, its cache entry): a repeated
   * text skips tokenizing and normalizing. Texts with literals are not kept
   * (pgbench-style inlined values would only churn it).
   */
  readonly texts = new Map<string, Lexed>()
  #textChars = 0
  /**
   * Statements with integer literals by skeleton (lexer.ts literalShape): a
   * text that differs from one run before only in its numbers gets that
   * one's entry, its numbers as the slots, without tokenizing or normalizing
   * (lexing and normalizing one of pgbench's statements took 3.2 us, a memo hit 1.15).
   */
  readonly #shapes = new Map<string, Shape>()
  #shapeChars = 0
  /** skeletons remembered now, and their characters */
  get shapeMemo(): { size: number; chars: number } { return { size: this.#shapes.size, chars: this.#shapeChars } }
  #ready: Promise<void> | null = null
  crashed = false
  readonly #seq = new Map<string, Promise<{ next: number }>>()
  readonly #timers = new Set<NodeJS.Timeout>()
  stats = { parses: 0, plans: 0, cacheHits: 0, statements: 0, shapeHits: 0 }

  constructor(db: Database, config: SqlConfig = {}) {
    this.db = db
    this.dialect = config.dialect ?? 'postgres'
    this.volume = config.volume ?? null
  }

  configure(config: SqlConfig): void {
    if (config.dialect) this.dialect = config.dialect
    if (config.volume) this.volume = config.volume
    if (config.crash) this.#crash = config.crash
    if (config.onFault) this.#onFault = config.onFault
  }

  #onFault: ((e: FaultEvent) => void) | null = null

  #crash: (() => Promise<unknown>) | null = null

  // ---------------------------------------------------------------- catalog

  ready(): Promise<void> {
    this.#ready ??= (async () => {
      for await (const [k, v] of this.db.keyspace(CATALOG_KEYSPACE).scan({ gte: 't/', lt: 't0' })) {
        void k
        const def = decodeDef(v)
        this.tables.set(def.name.toLowerCase(), def)
      }
    })().catch(err => { this.#ready = null; throw err })
    return this.#ready
  }

  table(name: string): TableDef {
    const t = this.tables.get(name.toLowerCase())
    if (!t) throw new SqlError(SQLSTATE.undefinedTable, `relation "${name}" does not exist`)
    return t
  }

  maybeTable(name: string): TableDef | undefined { return this.tables.get(name.toLowerCase()) }

  publish(name: string, def: TableDef | null): void {
    const k = name.toLowerCase()
    if (def) this.tables.set(k, def)
    else {
      const old = this.tables.get(k)
      this.tables.delete(k)
      if (old) for (const key of [...this.#seq.keys()]) if (key.startsWith(`${old.id}:`)) this.#seq.delete(key)
    }
    this.version++
  }

  transaction<T>(fn: (tx: TxLike) => Promise<T>): Promise<T> {
    return this.db.transaction(tx => fn(tx), { retries: AUTOCOMMIT_RETRIES })
  }

  /** The next row id (col null) or serial value of a table: one above the largest in use when first asked. */
  async next(t: TableDef, col: number | null): Promise<number> {
    const key = `${t.id}:${col ?? 'rowid'}`
    let p = this.#seq.get(key)
    if (!p) {
      p = (async () => {
        let max = 0
        const ks = this.db.keyspace(tableKeyspace(t))
        if (col === null) {
          for await (const [k] of ks.scan({ reverse: true, limit: 1 })) {
            const b = Buffer.from(k)
            max = Number(b.readBigUInt64BE(1) ^ (1n << 63n))
          }
        } else {
          const { decodeRow } = await import('./catalog.js')
          for await (const [, v] of ks.scan()) {
            const x = decodeRow(t, v)[col]
            if (x !== null && Number(x) > max) max = Number(x)
          }
        }
        return { next: max + 1 }
      })()
      this.#seq.set(key, p)
      p.catch(() => this.#seq.delete(key))
    }
    const s = await p
    return s.next++
  }

  // ---------------------------------------------------------------- statements

  /** The cached entry for a normalised statement (parsing only on a miss). */
  entry(text: string, dialect: Dialect, tokens?: ReturnType<typeof tokenize>): { e: Entry; slots: Slot[] } {
    const toks = tokens ?? tokenize(text, dialect)
    const n = normalize(text, dialect, toks)
    const key = dialect[0] + n.sig + '\0' + n.text
    let e = this.#cache.get(key)
    if (e) {
      this.touch(e)
      return { e, slots: n.slots }
    }
    let ast: any
    let slots = n.slots
    let sig = n.sig
    this.stats.parses++
    try {
      try {
        ast = parse(n.text, dialect)
      } catch (err) {
        // node-sql-parser's PostgreSQL grammar takes ON CONFLICT only after a column list: supply the table's columns
        const withCols = this.#withColumnList(n.text, dialect)
        if (!withCols) throw err
        ast = parse(withCols, dialect)
        ast.implicitColumns = true
      }
    } catch (err) {
      if (!n.changed) throw err
      // the normalised form did not parse (a literal where the grammar wants one): parse the text as given
      const plain = plainParams(text, dialect)
      ast = parse(plain.text, dialect)
      slots = plain.slots
      sig = plain.sig
      const rawKey = dialect[0] + 'R' + sig + '\0' + plain.text
      const hit = this.#cache.get(rawKey)
      if (hit) return { e: hit, slots }
      e = { hits: 0, ast, kind: String(ast.type), prepared: null, version: -1, slotTypes: slotTypes(sig) }
      this.#remember(rawKey, e)
      return { e, slots }
    }
    e = { hits: 0, ast, kind: String(ast.type), prepared: null, version: -1, slotTypes: slotTypes(sig) }
    this.#remember(key, e)
    return { e, slots }
  }

  #withColumnList(text: string, dialect: Dialect): string | null {
    const toks = tokenize(text, dialect)
    const sig = toks.map((t, i) => ({ t, i })).filter(x => x.t.t !== 'ws')
    if (sig.length < 4 || sig[0].t.s.toLowerCase() !== 'insert' || sig[1].t.s.toLowerCase() !== 'into' || sig[2].t.t !== 'id') return null
    const next = sig[3].t.s.toLowerCase()
    if (next !== 'values' && next !== 'select' && next !== 'with') return null
    const t = this.tables.get(sig[2].t.s.toLowerCase())
    if (!t) return null
    let n = t.columns.length
    if (next === 'values') {
      // as many columns as the first row has values (the parser checks the counts)
      let depth = 0
      let items = 0
      for (let k = 4; k < sig.length; k++) {
        const s = sig[k].t
        if (s.t !== 'op') { if (depth === 1 && items === 0) items = 1; continue }
        if (s.s === '(') { depth++; if (depth === 2 && items === 0) items = 1; continue }
        if (s.s === ')') { depth--; if (depth === 0) break; continue }
        if (s.s === ',' && depth === 1) items++
        else if (depth === 1 && items === 0) items = 1
      }
      if (items < 1 || items > n) return null
      n = items
    }
    const q = dialect === 'mysql' ? '`' : '"'
    const list = ` (${t.columns.slice(0, n).map(c => q + c.name + q).join(', ')}) `
    return toks.slice(0, sig[2].i + 1).map(x => x.s).join('') + list + toks.slice(sig[2].i + 1).map(x => x.s).join('')
  }

  /** Lexes `text` (memoised per dialect and text, see {@link texts}). */
  lex(text: string, dialect: Dialect): Lexed {
    const d = dialect === 'mysql' ? 'm' : 'p'
    const key = d + text
    const ls = literalShape(text)
    let shape: Lexed['shape']
    if (ls) {
      // (a text with literals is never in `texts`)
      shape = { key: d + ls.skeleton, nums: ls.nums }
      const known = this.#shapes.get(shape.key)
      if (known) {
        const slots: Slot[] = new Array(ls.nums.length)
        for (let i = 0; i < slots.length; i++) slots[i] = { lit: known.negate[i] ? -ls.nums[i] : ls.nums[i], kind: 'int' }
        this.stats.shapeHits++
        return { ...known.lexed, key, entry: { e: known.e, slots } }
      }
    } else {
      const hit = this.texts.get(key)
      if (hit) return hit
    }
    const allToks = tokenize(text, dialect)
    const toks = allToks.filter(t => t.t !== 'ws')
    while (toks.length && toks[toks.length - 1].s === ';') toks.pop()
    const lexed: Lexed = { key, allToks, toks, w0: toks[0]?.t === 'id' ? toks[0].s.toLowerCase() : '', words: toks.map(t => t.s.toLowerCase()), entry: null, shape }
    if (text.length <= TEXT_MEMO_CHARS && !allToks.some(t => t.t === 'num' || t.t === 'str' || t.t === 'bytes')) {
      if (this.texts.size >= TEXT_MEMO_MAX || this.#textChars + text.length > TEXT_MEMO_TOTAL_CHARS) { this.texts.clear(); this.#textChars = 0 }
      this.texts.set(key, lexed)
      this.#textChars += text.length
    }
    return lexed
  }

  /**
   * After `lexed` (a text with a shape) ran as `entry`: its skeleton is
   * remembered when each literal became one integer slot, in order, so that
   * the next text with this skeleton can take the entry as it is. A literal
   * kept in the text (ORDER BY 1), or a text parsed unnormalised, is not.
   */
  learnShape(lexed: Lexed, entry: { e: Entry; slots: Slot[] }): void {
    const { key, nums } = lexed.shape!
    const { slots } = entry
    if (slots.length !== nums.length || this.#shapes.has(key)) return
    const negate: boolean[] = new Array(nums.length)
    for (let i = 0; i < nums.length; i++) {
      const sl = slots[i]
      // (a 0 does not tell whether its slot took the sign: the next text will)
      if (!('lit' in sl) || sl.kind !== 'int' || nums[i] === 0) return
      if (sl.lit === nums[i]) negate[i] = false
      else if (sl.lit === -nums[i]) negate[i] = true
      else return
    }
    if (this.#shapes.size >= SHAPE_MEMO_MAX || this.#shapeChars + key.length > SHAPE_MEMO_TOTAL_CHARS) { this.#shapes.clear(); this.#shapeChars = 0 }
    this.#shapes.set(key, { lexed: { ...lexed, shape: undefined, entry: null }, e: entry.e, negate })
    this.#shapeChars += key.length
  }

  /** `e` is used again: counted as a cache hit, and hot statements kept young in the cache (LRU, cheaply). */
  touch(e: Entry): void {
    this.stats.cacheHits++
    if (++e.hits % 64 === 0 && e.key !== undefined && this.#cache.get(e.key) === e) { this.#cache.delete(e.key); this.#cache.set(e.key, e) }
  }

  #remember(key: string, e: Entry): void {
    e.key = key
    if (this.#cache.size >= CACHE_MAX) this.#cache.delete(this.#cache.keys().next().value!)
    this.#cache.set(key, e)
  }

  /** The plan of a cached statement; with `view` (a session's uncommitted DDL) it is planned against that view and not cached. */
  prepare(e: Entry, dialect: Dialect, view?: CatalogView): Prepared {
    if (!view && e.prepared && e.version === this.version) return e.prepared
    this.stats.plans++
    const cx = new CompileCtx(dialect, e.slotTypes, (ast, scope) => {
      const plan = compileSelect(ast, scope, pc, null)
      return { plan, correlated: false, type: plan.fields[0]?.type ?? T.unknown }
    })
    const pc: PlanCtx = { cat: view ?? this, cx }
    let p: Prepared
    switch (e.kind) {
      case 'select': cx.planSubs = []; p = { kind: 'select', plan: compileSelect(e.ast, null, pc, null) }; break
      case 'insert': case 'replace':
        if (e.kind === 'replace' || String(e.ast.prefix ?? '').toLowerCase().includes('ignore')) throw unsupported('REPLACE / INSERT IGNORE')
        p = compileInsert(e.ast, pc)
        break
      case 'update': p = compileUpdate(e.ast, pc); break
      case 'delete': p = compileDelete(e.ast, pc); break
      default: throw unsupported(`${e.kind.toUpperCase()} statements`)
    }
    if (!view) {
      e.prepared = p
      e.version = this.version
    }
    return p
  }

  /**
   * What a statement would return, without running it (for a wire
   * protocol's Describe): the result fields of a SELECT, or of INSERT /
   * UPDATE / DELETE ... RETURNING (empty for other statements), its command
   * tag and how many parameters it uses. Fields whose type depends on a
   * parameter's value are reported as text. Uses the statement cache.
   */
  async describe(text: string, dialect: Dialect = this.dialect): Promise<{ command: string; fields: SqlField[]; params: number }> {
    this.checkAlive()
    await this.ready()
    const toks = tokenize(text, dialect).filter(t => t.t !== 'ws')
    while (toks.length && toks[toks.length - 1].s === ';') toks.pop()
    const words = toks.map(t => t.s.toLowerCase())
    const { body, explain } = statementBody(text, dialect, words)
    const first = words[0] ?? ''
    if (explain) return { command: 'EXPLAIN', fields: [{ name: 'QUERY PLAN', type: 'text', oid: 25 }], params: 0 }
    if (!['select', 'with', 'values', 'insert', 'update', 'delete'].includes(first)) {
      return { command: first.toUpperCase(), fields: [], params: tokenize(body, dialect).filter(t => t.t === 'param').length }
    }
    const { e, slots } = this.entry(body, dialect)
    const p = this.prepare(e, dialect)
    const params = slots.reduce((m, s) => 'param' in s ? Math.max(m, s.param + 1) : m, 0)
    const fields = p.kind === 'select' ? p.plan.fields : p.returning?.fields ?? []
    const command = p.kind === 'select' ? 'SELECT' : p.kind.toUpperCase()
    return { command, fields: fields.map((f, i) => fieldOf(f, [], i)), params }
  }

  /** A session on the writer, or (with `replica`) a read-only one on a read replica, sharing this catalog. */
  session(options: { dialect?: Dialect; replica?: Reader } = {}): SqlSession {
    return new SqlSession(this, options.dialect ?? this.dialect, false, options.replica ?? null)
  }

  /** One statement in autocommit. */
  sql(text: string, params: unknown[] = [], options: SqlOptions & { replica?: Reader } = {}): Promise<SqlResult<any>> {
    return new SqlSession(this, options.dialect ?? this.dialect, true, options.replica ?? null).sql(text, params, options)
  }

  /**
   * Checks, at one snapshot, that every row decodes against its table's
   * definition and keeps NOT NULL, that every index holds exactly the
   * entries of the table's rows (none missing, none dangling, unique ones
   * without duplicates) and that the catalog is sound (verify.ts).
   */
  verify(): Promise<SqlVerifyReport> {
    return verifySql(this.db)
  }

  checkAlive(): void {
    if (this.crashed) throw new SqlError(SQLSTATE.adminShutdown, this.#crash ? 'the writer was crashed by ALTER SYSTEM CRASH and the cluster failed over: reconnect (through the writer endpoint) to reach the new writer' : 'the writer was crashed by ALTER SYSTEM CRASH: close the cluster and open it again (recovery brings back every committed transaction)')
  }

  // ---------------------------------------------------------------- fault injection

  async alterSystem(words: string[]): Promise<SqlResult<any>> {
    const w = words.map(x => x.toLowerCase())
    const vol = this.volume
    if (!vol) throw new SqlError(SQLSTATE.featureNotSupported, 'not supported: ALTER SYSTEM on a database opened without its cluster')
    const bad = () => new SqlError(SQLSTATE.syntax, `syntax error in ALTER SYSTEM ${words.join(' ')}: expected CRASH [INSTANCE | WRITER | NODE], or SIMULATE [n PERCENT] {AZ | DISK} FAILURE [IN {AZ | DISK} n] FOR INTERVAL n {SECOND | MINUTE | HOUR}[S]`)
    if (w[0] === 'crash') {
      if (w.length > 2 || (w[1] && !['instance', 'writer', 'node', 'dispatcher'].includes(w[1]))) throw bad()
      this.crashed = true
      for (const t of this.#timers) clearTimeout(t)
      if (this.#crash) await this.#crash() // the cluster fails over: new connections reach the new writer
      else await vol.close().catch(() => {})
      return { command: 'ALTER SYSTEM', rowCount: 0, rows: [], fields: [] }
    }
    if (w[0] !== 'simulate') throw bad()
    let i = 1
    let percent = 100
    if (/^\d+(\.\d+)?$/.test(w[i] ?? '') && w[i + 1] === 'percent') { percent = Number(w[i]); i += 2 }
    if (!(percent > 0 && percent <= 100)) throw new SqlError(SQLSTATE.invalidParameter, `failure percentage must be in (0, 100], got ${percent}`)
    const what = w[i++]
    if ((what !== 'az' && what !== 'disk') || w[i++] !== 'failure') throw bad()
    let target: number | null = null
    if (w[i] === 'in') {
      const unit = w[i + 1]
      if (!((what === 'az' && unit === 'az') || (what === 'disk' && (unit === 'disk' || unit === 'node')))) throw bad()
      target = Number(w[i + 2])
      if (!Number.isInteger(target)) throw bad()
      i += 3
    }
    if (w[i++] !== 'for' || w[i++] !== 'interval') throw bad()
    const qty = Number(w[i++])
    const unit = (w[i++] ?? '').replace(/s$/, '')
    const mult: Record<string, number> = { second: 1, minute: 60, hour: 3600 }
    if (!Number.isFinite(qty) || qty <= 0 || !(unit in mult) || i !== w.length) throw bad()
    const seconds = qty * mult[unit]
    let stopped: number[]
    let restart: () => Promise<void>
    if (what === 'az') {
      const az = target ?? Math.floor(Math.random() * 3)
      if (az < 0 || az > 2) throw new SqlError(SQLSTATE.invalidParameter, `AZ must be 0, 1 or 2, got ${az}`)
      if (percent > 50) { await vol.faults.stopAZ(az); stopped = [az * 2, az * 2 + 1]; restart = () => vol.faults.restartAZ(az) }
      else { await vol.faults.stopWorker(az * 2); stopped = [az * 2]; restart = () => vol.faults.restartWorker(az * 2) }
    } else {
      const id = target ?? Math.floor(Math.random() * 6)
      if (id < 0 || id > 5) throw new SqlError(SQLSTATE.invalidParameter, `disk (segment) must be 0..5, got ${id}`)
      await vol.faults.stopWorker(id); stopped = [id]; restart = () => vol.faults.restartWorker(id)
    }
    this.#later(seconds * 1000, () => this.#restore(restart, what, stopped, 1))
    const rows = [{ failure: what, segments: stopped.join(','), seconds }]
    return { command: 'ALTER SYSTEM', rowCount: 1, rows, fields: [{ name: 'failure', type: 'text', oid: 25 }, { name: 'segments', type: 'text', oid: 25 }, { name: 'seconds', type: 'float8', oid: 701 }] }
  }

  /** Runs `fn` after `ms` unless ALTER SYSTEM CRASH clears the timers first; does not keep the process alive. */
  #later(ms: number, fn: () => void): void {
    const timer = setTimeout(() => { this.#timers.delete(timer); fn() }, ms)
    timer.unref()
    this.#timers.add(timer)
  }

  /** Restarts what a simulated failure stopped; a failed restart is reported and tried again. */
  #restore(restart: () => Promise<void>, failure: 'az' | 'disk', segments: number[], attempt: number): void {
    restart().then(
      () => this.#onFault?.({ action: 'restored', failure, segments, attempt }),
      (err: Error & { code?: string }) => {
        const again = !this.crashed && err.code !== 'HEXAD_CLOSED' && attempt < RESTORE_ATTEMPTS
        this.#onFault?.({ action: 'restore-failed', failure, segments, attempt, error: err.message, ...(again ? { retryInMs: RESTORE_RETRY_MS } : {}) })
        if (again) this.#later(RESTORE_RETRY_MS, () => this.#restore(restart, failure, segments, attempt + 1))
      },
    ).catch(() => {}) // a listener that throws does not become an unhandled rejection
  }
}

function slotTypes(sig: string): SqlType[] {
  const out: SqlType[] = []
  for (const c of sig) out.push(c === 'i' ? T.int4 : c === 'I' ? T.int8 : c === 'n' ? T.numeric : c === 'b' ? T.bytea : T.unknown)
  return out
}

/** Only parameters renumbered (the fallback when the normalised text did not parse). */
function plainParams(text: string, dialect: Dialect): { text: string; slots: Slot[]; sig: string } {
  const toks = tokenize(text, dialect)
  const slots: Slot[] = []
  let nextQ = 0
  let sig = ''
  const parts = toks.map(t => {
    if (t.t !== 'param') return parserText(t, dialect)
    const p = t.v as number
    slots.push({ param: p < 0 ? nextQ++ : p })
    sig += 'u'
    return `:p${slots.length}`
  })
  return { text: parts.join('').trim(), slots, sig }
}

const TX_WORDS = new Set(['begin', 'start', 'commit', 'end', 'rollback', 'abort'])

/**
 * A SQL session: its own transaction state. Between BEGIN (or START
 * TRANSACTION) and COMMIT / ROLLBACK, statements share one serializable
 * engine transaction; a statement that fails inside it aborts it, and
 * every later statement fails with 25P02 until ROLLBACK (or COMMIT, which
 * then rolls back), as in PostgreSQL. Outside a transaction each statement
 * is its own transaction, retried on serialization conflicts.
 */
export class SqlSession {
  readonly #engine: SqlEngine
  readonly dialect: Dialect
  #tx: Transaction | null = null
  /** DDL of the open transaction block, not yet published: table name -> definition (null: dropped) */
  #overlay: Map<string, TableDef | null> | null = null
  #failed = false
  #closed = false
  #queue: Promise<unknown> = Promise.resolve()
  readonly #autocommitOnly: boolean
  /** a read replica this session reads from (read-only), or null for the writer */
  readonly #replica: Reader | null
  /** on a replica, the snapshot of an open BEGIN ... COMMIT block */
  #snap: ReplicaTx | null = null

  /** @internal */
  constructor(engine: SqlEngine, dialect: Dialect, autocommitOnly = false, replica: Reader | null = null) {
    if (dialect !== 'postgres' && dialect !== 'mysql') throw new SqlError(SQLSTATE.invalidParameter, `dialect must be 'postgres' or 'mysql', got ${JSON.stringify(dialect)}`)
    this.#engine = engine
    this.dialect = dialect
    this.#autocommitOnly = autocommitOnly
    this.#replica = replica
  }

  /** Whether this session reads from a read replica (and refuses writes). */
  get readOnly(): boolean { return this.#replica !== null }

  /** Whether a transaction block is open (also when it failed and awaits ROLLBACK). */
  get inTransaction(): boolean { return this.#tx !== null || this.#snap !== null || this.#failed }

  /** PostgreSQL's ReadyForQuery status: 'I' idle, 'T' in a transaction, 'E' in a failed transaction. */
  get status(): 'I' | 'T' | 'E' { return this.#failed ? 'E' : this.#tx || this.#snap ? 'T' : 'I' }

  /**
   * Whether this session's next statement should let lock holders go first:
   * true while some transaction waits for a key lock and this session's own
   * transaction holds none that is waited for. A server serving many
   * sessions on one thread lets such a statement wait a turn, so that a
   * statement of the transaction the others wait for is not queued behind
   * it (the holder's round trips are what the waiters wait out).
   */
  get behindLockHolders(): boolean {
    if (this.#replica || this.#engine.db.lockWaiters === 0) return false
    return !this.#tx?.blocksOthers
  }

  /** Runs one statement; statements of a session run in call order, one at a time. */
  sql<R = Record<string, unknown>>(text: string, params: unknown[] = [], options: SqlOptions = {}): Promise<SqlResult<R>> {
    const run = this.#queue.then(() => this.#run(text, params, options))
    this.#queue = run.catch(() => {})
    return run as Promise<SqlResult<R>>
  }

  /** Rolls back an open transaction and ends the session. */
  async close(): Promise<void> {
    await this.#queue
    this.#closed = true
    this.#tx?.rollback()
    this.#tx = null
    this.#snap?.rollback()
    this.#snap = null
    this.#overlay = null
    this.#failed = false
  }

  async #run(text: string, params: unknown[], options: SqlOptions): Promise<SqlResult<any>> {
    try {
      return await this.#statement(text, params, options)
    } catch (err) {
      const e = toSqlError(err)
      if (this.#tx) { this.#tx.rollback(); this.#tx = null; this.#overlay = null; this.#failed = true }
      if (this.#snap) { this.#snap.rollback(); this.#snap = null; this.#failed = true }
      throw e
    }
  }

  async #statement(text: string, params: unknown[], options: SqlOptions): Promise<SqlResult<any>> {
    const eng = this.#engine
    if (this.#closed) throw new SqlError(SQLSTATE.adminShutdown, 'the session is closed')
    if (typeof text !== 'string') throw new SqlError(SQLSTATE.invalidParameter, `sql() takes the statement text as a string, got ${typeof text}`)
    if (!Array.isArray(params)) throw new SqlError(SQLSTATE.invalidParameter, 'sql() parameters must be an array')
    eng.checkAlive()
    await eng.ready()
    eng.stats.statements++
    const dialect = options.dialect ?? this.dialect
    const mode = options.rowMode ?? 'object'
    // transaction control and the statements node-sql-parser does not know are recognised here
    const lexed = eng.lex(text, dialect)
    const { allToks, toks, w0, words } = lexed
    if (toks.some(t => t.t === 'op' && t.s === ';')) throw new SqlError(SQLSTATE.featureNotSupported, 'not supported: several statements in one call (split them, e.g. with splitStatements())')
    if (toks.length === 0) return { command: 'EMPTY', rowCount: 0, rows: [], fields: [] }
    if (TX_WORDS.has(w0) && (w0 !== 'start' || words[1] === 'transaction') && (w0 !== 'begin' || words.length === 1 || ['work', 'transaction', 'isolation', 'read'].includes(words[1]))) {
      return this.#txControl(w0)
    }
    if (w0 === 'savepoint' || w0 === 'release' || (w0 === 'rollback' && words.includes('to'))) throw unsupported('SAVEPOINT')
    if (this.#failed) throw new SqlError(SQLSTATE.inFailedTx, 'current transaction is aborted, commands ignored until end of transaction block')
    if (this.#replica && !['select', 'with', 'explain', 'values', '('].includes((toks[0]?.s ?? '').toLowerCase())) {
      throw readOnly(toks.slice(0, w0 === 'alter' || w0 === 'create' || w0 === 'drop' ? 2 : 1).map(t => t.s.toUpperCase()).join(' '))
    }
    if (w0 === 'alter' && words[1] === 'system') {
      if (this.#tx) throw new SqlError(SQLSTATE.activeTx, 'ALTER SYSTEM cannot run inside a transaction block')
      return eng.alterSystem(toks.slice(2).map(t => t.s))
    }
    if (w0 === 'vacuum' || w0 === 'analyze' || w0 === 'analyse') {
      // storage is reclaimed and statistics are not kept: nothing to do, but the tables must exist
      for (const t of toks.slice(1)) if (t.t === 'id' && !['verbose', 'analyze', 'analyse', 'full', 'freeze', 'table'].includes(t.s.toLowerCase())) eng.table(t.s)
      if (this.#tx && w0 === 'vacuum') throw new SqlError(SQLSTATE.activeTx, 'VACUUM cannot run inside a transaction block')
      return { command: w0 === 'vacuum' ? 'VACUUM' : 'ANALYZE', rowCount: 0, rows: [], fields: [] }
    }
    const { body, explain, lock } = statementBody(text, dialect, words)
    let entry = lexed.entry
    if (entry) eng.touch(entry.e)
    else {
      entry = eng.entry(body, dialect, body === text ? allToks : undefined)
      // Parameters only (no literal slots): the same text always yields this entry.
      if (eng.texts.get(lexed.key) === lexed && entry.slots.every(sl => 'param' in sl)) lexed.entry = entry
      else if (lexed.shape && body === text && DML_KINDS.has(entry.e.kind)) eng.learnShape(lexed, entry)
    }
    const { e, slots } = entry
    const kind = e.kind
    if (kind === 'truncate' && this.#tx && dialect !== 'mysql') {
      await truncateTables(eng, e.ast, this.#tx)
      return { command: 'TRUNCATE TABLE', rowCount: 0, rows: [], fields: [] }
    }
    if (kind === 'create' || kind === 'drop' || kind === 'alter' || kind === 'truncate') {
      if (explain) throw unsupported('EXPLAIN of DDL')
      if (this.#tx) {
        if (dialect === 'mysql') {
          // MySQL commits the open transaction before a DDL statement (an implicit commit)
          const tx = this.#tx
          this.#tx = null
          await this.#commit(tx)
        } else {
          // PostgreSQL: transactional DDL, in the session's transaction; other sessions see it at COMMIT
          return this.#ddl(e.ast, new TxDdlHost(eng, this.#tx, this.#overlay ??= new Map(), dialect))
        }
      }
      return this.#ddl(e.ast, eng)
    }
    if (kind === 'transaction') return this.#txControl(String(e.ast.expr?.action?.value ?? '').toLowerCase())
    if (!DML_KINDS.has(kind)) throw unsupported(`${kind.toUpperCase()} statements`)
    if (this.#replica && (kind !== 'select' || lock)) throw readOnly(lock ? 'SELECT ... FOR UPDATE' : kind.toUpperCase())
    const p = this.#overlay ? eng.prepare(e, dialect, overlayView(eng, this.#overlay)) : eng.prepare(e, dialect)
    if (explain) {
      const lines = p.kind === 'select' ? p.plan.explain : p.explain
      return { command: 'EXPLAIN', rowCount: lines.length, rows: lines.map(l => mode === 'array' ? [l] : { 'QUERY PLAN': l }), fields: [{ name: 'QUERY PLAN', type: 'text', oid: 25 }] }
    }
    const values = slots.map(s => ('lit' in s ? s.lit : fromParam(params[s.param], s.param)))
    for (const s of slots) if ('param' in s && s.param >= params.length) throw new SqlError('08P01', `statement uses parameter $${s.param + 1} but ${params.length} parameter${params.length === 1 ? ' was' : 's were'} given`)
    const exec = async (tx: TxLike) => {
      const env: Env = { params: values, outer: [], subs: new Map(), now: new Date(), runSub: runCorrelated, signal: options.signal }
      const ex: Exec = { tx, env, lock }
      switch (p.kind) {
        case 'select': {
          const rows = await runSelect(p.plan, ex)
          return { command: 'SELECT', rowCount: rows.length, rows, fields: p.plan.fields }
        }
        case 'insert': {
          const r = await runInsert(p, ex, eng)
          return { command: 'INSERT', rowCount: r.rowCount, rows: r.rows ?? [], fields: r.fields, ...(r.insertId !== undefined ? { insertId: r.insertId } : {}) }
        }
        case 'update': { const r = await runUpdate(p, ex); return { command: 'UPDATE', rowCount: r.rowCount, rows: r.rows ?? [], fields: r.fields } }
        case 'delete': { const r = await runDelete(p, ex); return { command: 'DELETE', rowCount: r.rowCount, rows: r.rows ?? [], fields: r.fields } }
      }
    }
    let r: Awaited<ReturnType<typeof exec>>
    if (this.#replica) {
      // A replica statement reads one snapshot of the replica (the block's, inside BEGIN ... COMMIT).
      const tx = this.#snap ?? new ReplicaTx(await this.#replica.snapshot())
      try { r = await exec(tx) } finally { if (tx !== this.#snap) tx.rollback() }
    } else {
      r = this.#tx ? await exec(this.#tx) : await eng.transaction(exec)
    }
    const s = shape(r.fields, r.rows, mode)
    return { command: r.command, rowCount: r.rowCount, rows: s.rows, fields: s.fields, ...(r.insertId !== undefined ? { insertId: r.insertId } : {}) }
  }

  async #txControl(word: string): Promise<SqlResult<any>> {
    const done = (command: string) => ({ command, rowCount: 0, rows: [], fields: [] })
    if (this.#replica) {
      // On a replica a transaction block is a read-only snapshot: BEGIN takes it, COMMIT / ROLLBACK release it.
      if (word === 'begin' || word === 'start') {
        if (this.#autocommitOnly) throw new SqlError(SQLSTATE.featureNotSupported, 'not supported: BEGIN through sql(); explicit transactions need a session')
        if (this.#failed) throw new SqlError(SQLSTATE.inFailedTx, 'current transaction is aborted, commands ignored until end of transaction block')
        this.#snap ??= new ReplicaTx(await this.#replica.snapshot())
        return done('BEGIN')
      }
      const wasFailed = this.#failed
      this.#snap?.rollback()
      this.#snap = null
      this.#failed = false
      return done(word === 'commit' || word === 'end' ? (wasFailed ? 'ROLLBACK' : 'COMMIT') : 'ROLLBACK')
    }
    if (word === 'begin' || word === 'start') {
      if (this.#autocommitOnly) throw new SqlError(SQLSTATE.featureNotSupported, 'not supported: BEGIN through db.sql(); explicit transactions need a session: db.session()')
      if (this.#failed) throw new SqlError(SQLSTATE.inFailedTx, 'current transaction is aborted, commands ignored until end of transaction block')
      if (!this.#tx) this.#tx = this.#engine.db.begin()
      return done('BEGIN')
    }
    if (word === 'commit' || word === 'end') {
      if (this.#failed) { this.#failed = false; return done('ROLLBACK') }
      const tx = this.#tx
      this.#tx = null
      if (tx) await this.#commit(tx)
      return done('COMMIT')
    }
    // rollback / abort
    this.#tx?.rollback()
    this.#tx = null
    this.#overlay = null
    this.#failed = false
    return done('ROLLBACK')
  }

  /** Commits; the block's DDL becomes visible to everyone once durable. */
  async #commit(tx: Transaction): Promise<void> {
    const overlay = this.#overlay
    this.#overlay = null
    await tx.commit()
    if (overlay) for (const [name, def] of overlay) this.#engine.publish(name, def)
  }

  async #ddl(ast: any, eng: DdlHost): Promise<SqlResult<any>> {
    const done = (command: string) => ({ command, rowCount: 0, rows: [], fields: [] })
    const kw = String(ast.keyword ?? '').toLowerCase()
    if (ast.type === 'create' && kw === 'table') { await createTable(eng, ast); return done('CREATE TABLE') }
    if (ast.type === 'create' && kw === 'index') { await createIndex(eng, ast); return done('CREATE INDEX') }
    if (ast.type === 'drop' && kw === 'table') { await dropTable(eng, ast); return done('DROP TABLE') }
    if (ast.type === 'drop' && kw === 'index') { await dropIndex(eng, ast); return done('DROP INDEX') }
    if (ast.type === 'alter' && (kw === 'table' || (kw === '' && ast.table))) { await alterTable(eng, ast); return done('ALTER TABLE') }
    if (ast.type === 'truncate') { await truncateTables(eng, ast); return done('TRUNCATE TABLE') }
    throw unsupported(`${String(ast.type).toUpperCase()} ${kw.toUpperCase()}`)
  }
}

/** The catalog as a session with uncommitted DDL sees it. */
function overlayView(eng: SqlEngine, overlay: Map<string, TableDef | null>): CatalogView {
  const maybeTable = (name: string) => { const k = name.toLowerCase(); return overlay.has(k) ? overlay.get(k) ?? undefined : eng.tables.get(k) }
  return {
    maybeTable,
    table: (name: string) => { const t = maybeTable(name); if (!t) throw new SqlError(SQLSTATE.undefinedTable, `relation "${name}" does not exist`); return t },
  }
}

/** DDL inside a transaction block: catalog writes go to the session's transaction, definitions to its overlay. */
class TxDdlHost implements DdlHost {
  constructor(readonly eng: SqlEngine, readonly tx: Transaction, readonly overlay: Map<string, TableDef | null>, readonly dialect: Dialect) {}
  get tables(): Map<string, TableDef> {
    const m = new Map(this.eng.tables)
    for (const [k, v] of this.overlay) { if (v) m.set(k, v); else m.delete(k) }
    return m
  }
  transaction<T>(fn: (tx: TxLike) => Promise<T>): Promise<T> { return fn(this.tx) }
  publish(name: string, def: TableDef | null): void { this.overlay.set(name.toLowerCase(), def) }
}

/** What is planned of a statement: without EXPLAIN [ANALYZE] [VERBOSE], a trailing FOR UPDATE / FOR SHARE [NOWAIT], or CREATE TABLE storage parameters. */
function statementBody(text: string, dialect: Dialect, words: string[]): { body: string; explain: boolean; lock: boolean } {
  let body = text
  const n = words.length
  if (words[0] === 'create' && words[1] === 'table' && words[n - 1] === ')') body = stripStorageParams(text, dialect)
  let explain = false
  let lock = false
  if (words[0] === 'explain') {
    explain = true
    let skip = 1
    while (['analyze', 'verbose'].includes(words[skip])) skip++
    body = cutTokens(text, dialect, skip)
  }
  if (n >= 2 && words[n - 2] === 'for' && (words[n - 1] === 'update' || words[n - 1] === 'share')) { lock = true; body = cutTail(body, dialect, 2) }
  else if (n >= 3 && words[n - 3] === 'for' && (words[n - 2] === 'update' || words[n - 2] === 'share') && words[n - 1] === 'nowait') { lock = true; body = cutTail(body, dialect, 3) }
  return { body, explain, lock }
}

/** CREATE TABLE ... WITH (fillfactor = 100): storage parameters have no meaning here; they are dropped. */
function stripStorageParams(text: string, dialect: Dialect): string {
  const toks = tokenize(text, dialect)
  while (toks.length && (toks[toks.length - 1].t === 'ws' || toks[toks.length - 1].s === ';')) toks.pop()
  let depth = 0
  for (let i = toks.length - 1; i >= 0; i--) {
    const t = toks[i]
    if (t.s === ')') depth++
    else if (t.s === '(') {
      depth--
      if (depth === 0) {
        let j = i - 1
        while (j >= 0 && toks[j].t === 'ws') j--
        if (j >= 0 && toks[j].t === 'id' && toks[j].s.toLowerCase() === 'with') return toks.slice(0, j).map(x => x.s).join('')
        return text
      }
    }
  }
  return text
}

function cutTokens(text: string, dialect: Dialect, words: number): string {
  const toks = tokenize(text, dialect)
  let seen = 0
  let i = 0
  for (; i < toks.length && seen < words; i++) if (toks[i].t !== 'ws') seen++
  return toks.slice(i).map(t => t.s).join('')
}

function cutTail(text: string, dialect: Dialect, words: number): string {
  const toks = tokenize(text, dialect)
  while (toks.length && (toks[toks.length - 1].t === 'ws' || toks[toks.length - 1].s === ';')) toks.pop()
  let seen = 0
  let i = toks.length
  while (i > 0 && seen < words) { i--; if (toks[i].t !== 'ws') seen++ }
  return toks.slice(0, i).map(t => t.s).join('')
}

/** 25006: a write (or a locking read) on a read replica. */
function readOnly(what: string): SqlError {
  return new SqlError('25006', `cannot execute ${what} on a read replica: it is read-only (write through the writer)`)
}

/**
 * A replica snapshot seen as the session's transaction: reads go to the
 * replica at one read point; commit and rollback release it.
 */
class ReplicaTx implements TxLike {
  readonly #snap: ReaderSnapshot
  constructor(snap: ReaderSnapshot) { this.#snap = snap }
  keyspace(name: string): SqlKeyspace {
    const ks = this.#snap.keyspace(name)
    const refuse = (): never => { throw readOnly('a write') }
    return {
      get: (key: Uint8Array | string) => ks.get(key),
      getForUpdate: () => refuse(),
      put: () => refuse(),
      del: () => refuse(),
      scan: (opts = {}) => ks.scan(opts),
      scanBatches: (opts = {}) => ks.scanBatches(opts),
    }
  }
  async commit(): Promise<void> { this.#snap.close() }
  rollback(): void { this.#snap.close() }
}
