/**
 * What a PostgreSQL server answers that the SQL front does not know:
 * session settings (SET, RESET, SHOW, current_setting, set_config), the
 * server's identity (version(), current_database(), pg_backend_pid()),
 * pg_sleep, and the pg_catalog queries that common clients send on start-up
 * and that psql sends for `\dt` and `\d table` — answered from the SQL
 * engine's catalog (TableDef: columns, primary key, indexes).
 *
 * A statement is answered here only when it matches one of these forms
 * exactly; everything else goes to the SQL front.
 */
import { SqlError } from '../../sql/errors.js'
import type { SqlEngine } from '../../sql/session.js'
import type { TableDef } from '../../sql/catalog.js'
import { PG_OID } from '../../sql/values.js'
import { OID, TYPE_NAME } from './types.js'

export interface Field { name: string; oid: number; type?: string }
export interface Answer { command: string; rowCount: number; rows: unknown[][]; fields: Field[] }

/** The connection-level state the answers read and change. */
export interface SessionInfo {
  settings: Map<string, string>
  user: string
  database: string
  pid: number
  engine: SqlEngine
  /** waits ms, rejecting if the query is cancelled */
  sleep(ms: number): Promise<void>
  /** a ParameterStatus the client must hear about (client_encoding, DateStyle, ...) */
  reportSetting(name: string, value: string): void
}

export const SERVER_VERSION = '15.0'
export const VERSION_STRING = `PostgreSQL ${SERVER_VERSION} (hexad 0.1.0) on ${process.arch}-${process.platform}, compiled by TypeScript, 64-bit`

/** Settings a session starts with; the ones marked REPORTED are sent as ParameterStatus. */
export function defaultSettings(user: string, database: string, application: string): Map<string, string> {
  return new Map([
    ['server_version', SERVER_VERSION], ['server_version_num', '150000'], ['server_encoding', 'UTF8'], ['client_encoding', 'UTF8'],
    ['datestyle', 'ISO, MDY'], ['timezone', 'UTC'], ['intervalstyle', 'postgres'], ['integer_datetimes', 'on'],
    ['standard_conforming_strings', 'on'], ['application_name', application], ['is_superuser', 'on'],
    ['session_authorization', user], ['default_transaction_isolation', 'serializable'], ['transaction_isolation', 'serializable'],
    ['default_transaction_read_only', 'off'], ['transaction_read_only', 'off'], ['search_path', '"$user", public'],
    ['statement_timeout', '0'], ['lock_timeout', '0'], ['idle_in_transaction_session_timeout', '0'], ['extra_float_digits', '1'],
    ['max_identifier_length', '63'], ['lc_messages', 'C'], ['lc_monetary', 'C'], ['lc_numeric', 'C'], ['lc_time', 'C'],
    ['bytea_output', 'hex'], ['client_min_messages', 'notice'], ['synchronous_commit', 'on'], ['max_connections', '100'],
    ['block_size', '4096'], ['server_encoding', 'UTF8'], ['database', database],
  ])
}

/** Settings PostgreSQL reports with ParameterStatus when they change (their display names). */
export const REPORTED: Record<string, string> = {
  server_version: 'server_version', server_encoding: 'server_encoding', client_encoding: 'client_encoding',
  application_name: 'application_name', datestyle: 'DateStyle', timezone: 'TimeZone', intervalstyle: 'IntervalStyle',
  integer_datetimes: 'integer_datetimes', standard_conforming_strings: 'standard_conforming_strings',
  is_superuser: 'is_superuser', session_authorization: 'session_authorization', default_transaction_read_only: 'default_transaction_read_only',
}

const text = (name: string): Field => ({ name, oid: OID.text })
const one = (command: string, fields: Field[], row: unknown[]): Answer => ({ command, rowCount: 1, rows: [row], fields })
const done = (command: string): Answer => ({ command, rowCount: 0, rows: [], fields: [] })

function unquote(s: string): string {
  s = s.trim()
  if (s.startsWith("'") && s.endsWith("'")) return s.slice(1, -1).replace(/''/g, "'")
  if (s.startsWith('"') && s.endsWith('"')) return s.slice(1, -1).replace(/""/g, '"')
  return s
}

function normalizeName(s: string): string { return unquote(s).toLowerCase() }

function getSetting(info: SessionInfo, name: string, missingOk = false): string | null {
  const v = info.settings.get(name.toLowerCase())
  if (v === undefined) {
    if (missingOk) return null
    throw new SqlError('42704', `unrecognized configuration parameter "${name}"`)
  }
  return v
}

function setSetting(info: SessionInfo, name: string, value: string): void {
  const n = name.toLowerCase()
  if (['server_version', 'server_version_num', 'server_encoding', 'integer_datetimes', 'max_identifier_length', 'block_size', 'is_superuser', 'max_connections'].includes(n)) {
    throw new SqlError('55P02', `parameter "${name}" cannot be changed`)
  }
  if (n === 'client_encoding' && !['utf8', 'utf-8', 'unicode'].includes(value.toLowerCase())) throw new SqlError('22023', `client_encoding ${value} is not supported: only UTF8`)
  if (n === 'client_encoding') value = 'UTF8'
  if (n === 'timezone' && !['utc', 'gmt', 'etc/utc', 'z', '0', '+00', '+00:00', 'utc0'].includes(value.toLowerCase())) {
    throw new SqlError('22023', `time zone "${value}" is not supported: timestamps are UTC (only UTC is accepted)`)
  }
  if (n === 'timezone') value = 'UTC'
  info.settings.set(n, value)
  if (REPORTED[n]) info.reportSetting(REPORTED[n], value)
}

/** the first words of the statements answer() may answer */
const ANSWERED = new Set(['set', 'reset', 'show', 'discard', 'listen', 'unlisten', 'notify', 'select'])

/** A statement's first word after any white space (as trim() sees it), lower case ('' when it does not start with a letter or _). */
function firstWordOf(sqlText: string): string {
  const text = sqlText.charCodeAt(0) > 32 && sqlText.charCodeAt(0) < 0x80 ? sqlText : sqlText.trimStart()
  let j = 0
  for (; j < text.length; j++) {
    const c = text.charCodeAt(j)
    if (!((c >= 97 && c <= 122) || (c >= 65 && c <= 90) || c === 95)) break
  }
  return text.slice(0, j).toLowerCase()
}

/**
 * Whether answer() may answer `sqlText` (by its first word): the other
 * statements (UPDATE, INSERT, BEGIN, ...) skip it and its async step.
 */
export function mayAnswer(sqlText: string): boolean { return ANSWERED.has(firstWordOf(sqlText)) }

/**
 * The answer to `sqlText` when it is one of the statements this module
 * handles, else null (the SQL front runs it). `status` is the session's
 * transaction status: in a failed transaction only the SQL front answers.
 */
export async function answer(sqlText: string, info: SessionInfo): Promise<Answer | null> {
  const t = sqlText.trim().replace(/;\s*$/, '').trim()
  const first = firstWordOf(t)
  switch (first) {
    case 'set': return set(t, info)
    case 'reset': {
      const name = normalizeName(t.slice(5).trim())
      if (name === 'all') { for (const [k, v] of defaultSettings(info.user, info.database, '')) if (k !== 'application_name') info.settings.set(k, v) }
      else {
        const d = defaultSettings(info.user, info.database, '').get(name)
        if (d === undefined) getSetting(info, name)
        setSetting(info, name, d ?? '')
      }
      return done('RESET')
    }
    case 'show': {
      const name = normalizeName(t.slice(4).trim().replace(/\s+/g, ' '))
      if (name === 'all') {
        const rows = [...info.settings].sort().map(([k, v]) => [k, v, ''])
        return { command: 'SHOW', rowCount: rows.length, rows, fields: [text('name'), text('setting'), text('description')] }
      }
      const key = name === 'transaction isolation level' ? 'transaction_isolation' : name === 'time zone' ? 'timezone' : name
      return one('SHOW', [text(key)], [getSetting(info, key)])
    }
    case 'discard': return done('DISCARD ALL')
    case 'listen': case 'unlisten': case 'notify': throw new SqlError('0A000', `not supported: ${first.toUpperCase()}`)
    case 'select': break
    default: return null
  }
  const sel = await selectFunctions(t, info)
  if (sel) return sel
  if (/\bpg_catalog\.|\binformation_schema\.|\bpg_type\b|\bpg_class\b|\bpg_namespace\b|\bpg_attribute\b/i.test(t)) return catalogQuery(t, info)
  return null
}

function set(t: string, info: SessionInfo): Answer {
  let body = t.slice(3).trim()
  body = body.replace(/^(session|local)\s+/i, '')
  if (/^(transaction|session\s+characteristics)\b/i.test(body)) {
    if (/read\s+only/i.test(body)) throw new SqlError('0A000', 'not supported: read-only transactions (every transaction here is read-write and serializable)')
    return done('SET') // every transaction is SERIALIZABLE already; weaker levels are served as serializable, as PostgreSQL allows
  }
  let m = /^time\s+zone\s+(.+)$/i.exec(body)
  if (m) { setSetting(info, 'timezone', unquote(m[1])); return done('SET') }
  m = /^names\s+(.+)$/i.exec(body)
  if (m) { setSetting(info, 'client_encoding', unquote(m[1])); return done('SET') }
  m = /^("(?:[^"]|"")+"|[\w.]+)\s*(?:=|\bto\b)\s*([\s\S]+)$/i.exec(body)
  if (!m) throw new SqlError('42601', `syntax error in SET: ${t.slice(0, 100)}`)
  const name = normalizeName(m[1])
  const value = m[2].trim().toLowerCase() === 'default'
    ? defaultSettings(info.user, info.database, '').get(name) ?? ''
    : m[2].split(/,(?=(?:[^']*'[^']*')*[^']*$)/).map(unquote).join(', ')
  setSetting(info, name, value)
  return done('SET')
}

// ------------------------------------------------------------------ SELECT f(), g() AS x

interface Item { expr: string; alias: string | null }

/** Splits a select list at top-level commas (quotes and parentheses respected). */
function splitList(s: string): string[] {
  const out: string[] = []
  let depth = 0, q = '', cur = ''
  for (const c of s) {
    if (q) { cur += c; if (c === q) q = ''; continue }
    if (c === "'" || c === '"') { q = c; cur += c; continue }
    if (c === '(') depth++
    if (c === ')') depth--
    if (c === ',' && depth === 0) { out.push(cur.trim()); cur = ''; continue }
    cur += c
  }
  if (cur.trim()) out.push(cur.trim())
  return out
}

function argsOf(call: string): string[] {
  const open = call.indexOf('(')
  return splitList(call.slice(open + 1, call.lastIndexOf(')')))
}

async function selectFunctions(t: string, info: SessionInfo): Promise<Answer | null> {
  const m = /^select\s+([\s\S]+)$/i.exec(t)
  if (!m || /\bfrom\b/i.test(m[1].replace(/'(?:[^']|'')*'/g, "''"))) return null
  const items: Item[] = []
  for (const part of splitList(m[1])) {
    const a = /^([\s\S]+?)(?:\s+(?:as\s+)?("(?:[^"]|"")+"|[a-z_][\w]*))?$/i.exec(part)!
    let expr = a[1].trim()
    let alias = a[2] ? unquote(a[2]) : null
    // "current_user" alone is a keyword: the regex may have taken it as an alias of nothing
    if (!alias && /^(current_user|session_user|user|current_schema|current_catalog)$/i.test(expr)) alias = null
    expr = expr.replace(/^pg_catalog\./i, '')
    items.push({ expr, alias })
  }
  const fields: Field[] = []
  const row: unknown[] = []
  for (const { expr, alias } of items) {
    const fname = /^([a-z_]+)/i.exec(expr)?.[1]?.toLowerCase() ?? ''
    const call = /^[a-z_]+\s*\(([\s\S]*)\)$/i.test(expr)
    const args = call ? argsOf(expr) : []
    let value: unknown
    let oid: number = OID.text
    switch (call ? fname : expr.toLowerCase()) {
      case 'version': value = VERSION_STRING; break
      case 'current_database': case 'current_catalog': value = info.database; oid = OID.name; break
      case 'current_schema': value = 'public'; oid = OID.name; break
      case 'current_user': case 'session_user': case 'user': value = info.user; oid = OID.name; break
      case 'pg_backend_pid': value = info.pid; oid = OID.int4; break
      case 'current_setting': {
        if (args.length < 1 || args.length > 2) return null
        value = getSetting(info, unquote(args[0]), args[1]?.toLowerCase() === 'true')
        break
      }
      case 'set_config': {
        if (args.length !== 3) return null
        setSetting(info, unquote(args[0]), unquote(args[1]))
        value = unquote(args[1])
        break
      }
      case 'pg_sleep': {
        if (args.length !== 1) return null
        const s = Number(unquote(args[0]))
        if (!Number.isFinite(s)) throw new SqlError('22P02', `invalid input syntax for type double precision: "${args[0]}"`)
        await info.sleep(Math.max(0, s) * 1000)
        value = ''
        oid = 2278 // void
        break
      }
      default: return null
    }
    const name = alias ?? (call ? fname : expr.toLowerCase())
    fields.push({ name, oid })
    row.push(value)
  }
  return one('SELECT', fields, row)
}

// ------------------------------------------------------------------ pg_catalog

/** The relation OID of a table: its catalog id above PostgreSQL's first user OID. */
export const tableOid = (t: TableDef) => 16384 + t.id * 2
const indexOid = (t: TableDef, i: number) => 16384 + t.id * 2 + 1 + i * 100000

function typeOid(t: TableDef['columns'][number]['type']): number {
  const name = t.name === 'varchar' || t.name === 'jsonb' ? t.name : t.kind === 'unknown' ? 'text' : t.kind
  return PG_OID[name] ?? OID.text
}

/** format_type(): the column type as psql prints it. */
function formatType(t: TableDef['columns'][number]['type']): string {
  if (t.name === 'varchar') return t.len !== undefined ? `character varying(${t.len})` : 'character varying'
  if (t.kind === 'numeric' && t.len !== undefined) return `numeric(${t.len},${t.scale ?? 0})`
  return TYPE_NAME[typeOid(t)] ?? t.name
}

/** The table names a `relname OPERATOR(pg_catalog.~) '^(pattern)$'` filter selects. */
function relnameFilter(q: string): ((name: string) => boolean) {
  const m = /relname\s+OPERATOR\(pg_catalog\.~\)\s+'((?:[^']|'')*)'/i.exec(q)
  if (!m) return () => true
  const re = new RegExp(m[1].replace(/''/g, "'"))
  return name => re.test(name)
}

function tables(info: SessionInfo): TableDef[] {
  return [...info.engine.tables.values()].sort((a, b) => a.name.localeCompare(b.name))
}

function byOid(q: string, info: SessionInfo): TableDef | undefined {
  const m = /(?:c\.oid|attrelid|indrelid|conrelid|\w+\.\w*relid|objid|inhrelid|inhparent|partrelid|tgrelid|polrelid|stxrelid|prrelid|evtclass|confrelid)\s*=\s*'(\d+)'/i.exec(q)
  if (!m) return undefined
  const oid = Number(m[1])
  return tables(info).find(t => tableOid(t) === oid)
}

function indexDef(t: TableDef, cols: number[], unique: boolean, name: string, desc?: boolean[]): string {
  return `CREATE ${unique ? 'UNIQUE ' : ''}INDEX ${name} ON public.${t.name} USING btree (${cols.map((c, i) => t.columns[c].name + (desc?.[i] ? ' DESC' : '')).join(', ')})`
}

function catalogQuery(q: string, info: SessionInfo): Answer {
  const rows = (fields: Field[], data: unknown[][]): Answer => ({ command: 'SELECT', rowCount: data.length, rows: data, fields })
  const f = (name: string, oid: number = OID.text): Field => ({ name, oid })

  // postgres.js on connect: the array types of the element types
  if (/select b\.oid, b\.typarray/i.test(q)) {
    const arrays: Array<[number, number]> = [[16, 1000], [17, 1001], [20, 1016], [23, 1007], [25, 1009], [114, 199], [700, 1021], [701, 1022], [1043, 1015], [1082, 1182], [1114, 1115], [1700, 1231], [3802, 3807]]
    return rows([f('oid', OID.oid), f('typarray', OID.oid)], arrays.map(([a, b]) => [a, b]))
  }

  // psql \dt, \d (list of relations)
  if (/as "Schema"/.test(q) && /as "Name"/.test(q) && /pg_catalog\.pg_class c/.test(q)) {
    const kinds = /relkind IN \(([^)]*)\)/i.exec(q)?.[1] ?? "'r'"
    const want = relnameFilter(q)
    const list = kinds.includes("'r'") ? tables(info).filter(t => want(t.name)) : []
    const withIndexes: Array<[string, string]> = list.map(t => [t.name, 'table'])
    if (kinds.includes("'i'")) for (const t of tables(info)) for (const ix of t.indexes) if (want(ix.name)) withIndexes.push([ix.name, 'index'])
    withIndexes.sort((a, b) => a[0].localeCompare(b[0]))
    const hasOwner = /as "Owner"/.test(q)
    const fields = [f('Schema', OID.name), f('Name', OID.name), f('Type'), ...(hasOwner ? [f('Owner', OID.name)] : [])]
    return rows(fields, withIndexes.map(([n, k]) => ['public', n, k, ...(hasOwner ? [info.user] : [])]))
  }

  // psql \d NAME, step 1: which relations match
  if (/^SELECT c\.oid,\s*n\.nspname,\s*c\.relname/i.test(q)) {
    const want = relnameFilter(q)
    return rows([f('oid', OID.oid), f('nspname', OID.name), f('relname', OID.name)], tables(info).filter(t => want(t.name)).map(t => [tableOid(t), 'public', t.name]))
  }

  // psql \d, step 2: the relation's properties
  if (/^SELECT c\.relchecks, c\.relkind, c\.relhasindex/i.test(q)) {
    const t = byOid(q, info)
    const fields = ['relchecks', 'relkind', 'relhasindex', 'relhasrules', 'relhastriggers', 'relrowsecurity', 'relforcerowsecurity', 'relhasoids', 'relispartition', '?column?', 'reltablespace', 'reloftype', 'relpersistence', 'relreplident', 'amname'].map(n => f(n))
    if (!t) return rows(fields, [])
    const hasIndex = t.pk.length > 0 || t.indexes.length > 0
    return rows(fields, [['0', 'r', hasIndex ? 't' : 'f', 'f', 'f', 'f', 'f', 'f', 'f', '', '0', '', 'p', 'd', 'heap']])
  }

  // psql \d, step 3: the columns
  if (/FROM pg_catalog\.pg_attribute a/i.test(q) && /a\.attnum > 0/i.test(q)) {
    const t = byOid(q, info)
    const names = selectListNames(q)
    if (!t) return rows(names.map(n => f(n)), [])
    const data = t.columns.map((c, i) => names.map(n => {
      switch (n) {
        case 'attname': return c.name
        case 'format_type': return formatType(c.type)
        case 'attnotnull': return c.notNull || t.pk.includes(i) ? 't' : 'f'
        case 'attidentity': case 'attgenerated': case 'attcollation': return ''
        case 'attnum': return String(i + 1)
        default: return c.auto && n === 'pg_get_expr' ? `nextval('${t.name}_${c.name}_seq'::regclass)` : null
      }
    }))
    return rows(names.map(n => f(n)), data)
  }

  // psql \d, step 4: the indexes
  if (/FROM pg_catalog\.pg_class c, pg_catalog\.pg_class c2, pg_catalog\.pg_index i/i.test(q)) {
    const t = byOid(q, info)
    const fields = ['relname', 'indisprimary', 'indisunique', 'indisclustered', 'indisvalid', 'pg_get_indexdef', 'pg_get_constraintdef', 'contype', 'condeferrable', 'condeferred', 'indisreplident', 'reltablespace'].map(n => f(n))
    if (!t) return rows(fields, [])
    const data: unknown[][] = []
    if (t.pk.length > 0) {
      const name = `${t.name}_pkey`
      data.push([name, 't', 't', 'f', 't', indexDef(t, t.pk, true, name), `PRIMARY KEY (${t.pk.map(c => t.columns[c].name).join(', ')})`, 'p', 'f', 'f', 'f', '0'])
    }
    for (const ix of [...t.indexes].sort((a, b) => a.name.localeCompare(b.name))) {
      data.push([ix.name, 'f', ix.unique ? 't' : 'f', 'f', 't', indexDef(t, ix.columns, ix.unique, ix.name, ix.desc),
        ix.constraint ? `UNIQUE (${ix.columns.map(c => t.columns[c].name).join(', ')})` : null, ix.constraint ? 'u' : null, ix.constraint ? 'f' : null, ix.constraint ? 'f' : null, 'f', '0'])
    }
    return rows(fields, data)
  }

  // pgbench (before a run): is the table in the search path (o.n), and is it partitioned (partstrat, count of partitions)
  const rel = /current_schemas\(true\)[\s\S]*\bc\.relname\s*=\s*'((?:[^']|'')+)'/i.exec(q)
  if (rel && /\bo\.n\b/.test(q)) {
    const t = info.engine.maybeTable(rel[1].replace(/''/g, "'"))
    return rows([f('n', OID.int4), f('partstrat'), f('count', OID.int8)], t ? [[1, null, 0]] : [])
  }

  // anything else about the catalog (policies, triggers, foreign keys, publications, inheritance, statistics ...):
  // this server has none of those objects, so the honest answer is no rows, with the columns the query names
  return rows(selectListNames(q).map(n => f(n)), [])
}

/** The output column names of a SELECT, as PostgreSQL would name them (alias, column, or function name). */
function selectListNames(q: string): string[] {
  const head = /^\s*select\s+(?:distinct\s+)?/i.exec(q)
  if (!head) return []
  // the select list ends at the first FROM outside parentheses and quotes
  let depth = 0, quote = '', end = q.length
  for (let i = head[0].length; i < q.length; i++) {
    const c = q[i]
    if (quote) { if (c === quote) quote = ''; continue }
    if (c === "'" || c === '"') { quote = c; continue }
    if (c === '(') depth++
    else if (c === ')') depth--
    else if (depth === 0 && /\s/.test(c) && /^\s+from\s/i.test(q.slice(i, i + 7))) { end = i; break }
  }
  return splitList(q.slice(head[0].length, end)).map(item => {
    const a = /\s+as\s+("(?:[^"]|"")+"|\w+)\s*$/i.exec(item)
    if (a) return unquote(a[1])
    const sub = /^\(\s*select\s+(?:\w+\.)?(\w+)/i.exec(item)
    if (sub) return sub[1]
    const col = /(?:^|\.)(\w+)\s*$/.exec(item)
    if (col && !item.trim().endsWith(')')) return col[1]
    const fn = /^(?:pg_catalog\.)?(\w+)\s*\(/.exec(item.trim())
    return fn ? fn[1] : '?column?'
  })
}
