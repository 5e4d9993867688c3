/**
 * What MySQL clients send besides SQL proper, answered from the
 * connection's state: system variables (`SELECT @@version_comment LIMIT 1`,
 * `SELECT @@session.transaction_isolation, DATABASE()`), `SET` (NAMES,
 * CHARACTER SET, autocommit, sql_mode, TRANSACTION ISOLATION LEVEL, user
 * variables), `SHOW VARIABLES / WARNINGS / ERRORS / DATABASES / TABLES /
 * COLUMNS`, `DESCRIBE t` and `USE db`. Anything else returns null and goes
 * to the SQL engine.
 *
 * Every transaction is serializable here, so the isolation variables say
 * SERIALIZABLE whatever a client sets.
 */
import type { SqlEngine } from '../../sql/session.js'
import type { Col } from './types.js'
import { MysqlServerError } from './types.js'

export const SERVER_VERSION = '8.0.36-hexad'

export interface Result {
  cols: Col[]
  rows: unknown[][]
  affected: number
  info?: string
}

export interface MysqlSessionState {
  readonly engine: SqlEngine
  readonly connectionId: number
  readonly user: string
  readonly host: string
  database: string
  readonly vars: Map<string, string | number>
  readonly userVars: Map<string, string | number | null>
  /** autocommit on or off; turning it on commits an open transaction */
  setAutocommit(on: boolean): Promise<void>
  autocommit: boolean
}

export function defaultVariables(maxPacket: number): Map<string, string | number> {
  return new Map<string, string | number>([
    ['version', SERVER_VERSION],
    ['version_comment', 'hexad (an Aurora-like storage engine for Node.js)'],
    ['version_compile_os', process.platform],
    ['protocol_version', 10],
    ['character_set_client', 'utf8mb4'],
    ['character_set_connection', 'utf8mb4'],
    ['character_set_results', 'utf8mb4'],
    ['character_set_server', 'utf8mb4'],
    ['character_set_database', 'utf8mb4'],
    ['collation_connection', 'utf8mb4_general_ci'],
    ['collation_server', 'utf8mb4_general_ci'],
    ['collation_database', 'utf8mb4_general_ci'],
    ['transaction_isolation', 'SERIALIZABLE'],
    ['tx_isolation', 'SERIALIZABLE'],
    ['transaction_read_only', 0],
    ['tx_read_only', 0],
    ['max_allowed_packet', maxPacket],
    ['net_buffer_length', 16384],
    ['sql_mode', 'ONLY_FULL_GROUP_BY,STRICT_TRANS_TABLES,NO_ZERO_IN_DATE,NO_ZERO_DATE,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION'],
    ['time_zone', '+00:00'],
    ['system_time_zone', 'UTC'],
    ['lower_case_table_names', 1],
    ['interactive_timeout', 28800],
    ['wait_timeout', 28800],
    ['net_write_timeout', 60],
    ['license', 'MIT'],
    ['init_connect', ''],
    ['performance_schema', 0],
    ['query_cache_size', 0],
    ['query_cache_type', 'OFF'],
    ['have_ssl', 'DISABLED'],
    ['default_storage_engine', 'hexad'],
    ['storage_engine', 'hexad'],
    ['sql_select_limit', '18446744073709551615'],
    ['warning_count', 0],
    ['error_count', 0],
    ['default_authentication_plugin', 'mysql_native_password'],
  ])
}

const text = (name: string): Col => ({ name, type: 'text' })
const rowsOf = (cols: Col[], rows: unknown[][]): Result => ({ cols, rows, affected: 0 })
const ok = (): Result => ({ cols: [], rows: [], affected: 0 })

/** The statement without leading comments and a trailing semicolon. */
export function stripStatement(sql: string): string {
  return sql.replace(/^(?:\s+|--[^\n]*(?:\n|$)|#[^\n]*(?:\n|$)|\/\*(?!!)[\s\S]*?\*\/)+/, '').replace(/[\s;]+$/, '')
}

/** Splits at commas outside quotes and parentheses. */
function splitTop(s: string): string[] {
  const out: string[] = []
  let depth = 0, cur = '', q = ''
  for (let i = 0; i < s.length; i++) {
    const c = s[i]
    if (q) {
      cur += c
      if (c === '\\' && q !== '`') { cur += s[++i] ?? ''; continue }
      if (c === q) q = ''
      continue
    }
    if (c === "'" || c === '"' || c === '`') { q = c; cur += c; continue }
    if (c === '(') depth++
    if (c === ')') depth--
    if (c === ',' && depth === 0) { out.push(cur.trim()); cur = ''; continue }
    cur += c
  }
  if (cur.trim()) out.push(cur.trim())
  return out
}

function unquote(s: string): string {
  const t = s.trim()
  if (t.length >= 2 && (t[0] === "'" || t[0] === '"') && t[t.length - 1] === t[0]) return t.slice(1, -1).replace(/\\(.)/g, '$1').replace(new RegExp(t[0] + t[0], 'g'), t[0])
  if (t.length >= 2 && t[0] === '`' && t[t.length - 1] === '`') return t.slice(1, -1)
  return t
}

/** A SET value: a quoted string, a number, ON/OFF/TRUE/FALSE, NULL, DEFAULT or a word. */
function setValue(raw: string): string | number | null {
  const t = raw.trim()
  if (/^[+-]?\d+(\.\d+)?$/.test(t)) return Number(t)
  if (/^null$/i.test(t)) return null
  if (/^(on|true)$/i.test(t)) return 1
  if (/^(off|false)$/i.test(t)) return 0
  return unquote(t)
}

function likeToRegExp(pattern: string): RegExp {
  let re = ''
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]
    if (c === '\\' && i + 1 < pattern.length) { re += pattern[++i].replace(/[.*+?^${}()|[\]\\]/g, '\\$&'); continue }
    re += c === '%' ? '.*' : c === '_' ? '.' : c.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
  }
  return new RegExp(`^${re}$`, 'i')
}

async function set(body: string, s: MysqlSessionState): Promise<Result> {
  let m = /^(?:(global|session|local|persist)\s+)?transaction\s+([\s\S]+)$/i.exec(body)
  if (m) {
    const what = m[2].toLowerCase().replace(/\s+/g, ' ')
    if (!/^(isolation level (read uncommitted|read committed|repeatable read|serializable)|read write|read only)(\s*,\s*(isolation level (read uncommitted|read committed|repeatable read|serializable)|read write|read only))*$/.test(what)) {
      throw new MysqlServerError(1064, '42000', `You have an error in your SQL syntax near 'TRANSACTION ${m[2]}'`)
    }
    if (/read only/.test(what)) throw new MysqlServerError(1235, '42000', 'not supported: READ ONLY transactions (every transaction here is read-write and serializable)')
    return ok() // every transaction is serializable: a weaker level is a stronger guarantee than asked for
  }
  for (const part of splitTop(body)) {
    m = /^names\s+('[^']*'|"[^"]*"|[\w]+)(?:\s+collate\s+('[^']*'|"[^"]*"|[\w]+))?$/i.exec(part)
    if (m) {
      const cs = String(setValue(m[1])).toLowerCase()
      if (!/^(utf8mb4|utf8mb3|utf8|ascii|latin1|binary|default)$/.test(cs)) throw new MysqlServerError(1115, '42000', `Unknown character set: '${cs}' (this server speaks utf8mb4)`)
      for (const k of ['character_set_client', 'character_set_connection', 'character_set_results']) s.vars.set(k, cs === 'default' ? 'utf8mb4' : cs)
      if (m[2]) s.vars.set('collation_connection', String(setValue(m[2])))
      continue
    }
    m = /^(?:character\s+set|charset)\s+('[^']*'|"[^"]*"|\w+)$/i.exec(part)
    if (m) {
      const cs = String(setValue(m[1])).toLowerCase()
      s.vars.set('character_set_client', cs); s.vars.set('character_set_results', cs)
      continue
    }
    m = /^@(?!@)(`[^`]+`|'[^']+'|"[^"]+"|[\w$.]+)\s*(?::=|=)\s*([\s\S]+)$/.exec(part)
    if (m) { s.userVars.set(unquote(m[1]).toLowerCase(), setValue(m[2])); continue }
    m = /^(?:(?:(global|session|local|persist|persist_only)\s+)|@@(?:(global|session|local|persist)\.)?)?(`?[a-z_][\w]*`?)\s*(?::=|=)\s*([\s\S]+)$/i.exec(part)
    if (!m) throw new MysqlServerError(1064, '42000', `You have an error in your SQL syntax; check the SET statement near '${part.slice(0, 80)}'`)
    const scope = (m[1] ?? m[2] ?? 'session').toLowerCase()
    const name = unquote(m[3]).toLowerCase()
    const value = setValue(m[4])
    if (name === 'autocommit') {
      if (value !== 0 && value !== 1) throw new MysqlServerError(1231, '42000', `Variable 'autocommit' can't be set to the value of '${m[4].trim()}'`)
      await s.setAutocommit(value === 1)
      continue
    }
    if (name === 'transaction_isolation' || name === 'tx_isolation') continue // always SERIALIZABLE (see above)
    if (name === 'transaction_read_only' || name === 'tx_read_only') {
      if (value !== 0) throw new MysqlServerError(1235, '42000', 'not supported: READ ONLY transactions')
      continue
    }
    if (scope === 'global' || scope === 'persist' || scope === 'persist_only') throw new MysqlServerError(1227, '42000', `Access denied; you need (at least one of) the SUPER or SYSTEM_VARIABLES_ADMIN privilege(s) for this operation (SET GLOBAL ${name})`)
    s.vars.set(name, value === null ? '' : value)
  }
  return ok()
}

/** One item of a SELECT list the session answers, or undefined when the engine has to. */
function sessionItem(expr: string, s: MysqlSessionState): { value: string | number | null } | undefined {
  let m = /^@@(?:(global|session|local)\.)?`?([a-z_][\w]*)`?$/i.exec(expr)
  if (m) {
    const name = m[2].toLowerCase()
    if (name === 'autocommit') return { value: s.autocommit ? 1 : 0 }
    if (name === 'last_insert_id' || name === 'identity') return { value: 0 }
    if (!s.vars.has(name)) throw new MysqlServerError(1193, 'HY000', `Unknown system variable '${name}'`)
    return { value: s.vars.get(name)! }
  }
  m = /^@(`[^`]+`|'[^']+'|"[^"]+"|[\w$.]+)$/.exec(expr)
  if (m) return { value: s.userVars.get(unquote(m[1]).toLowerCase()) ?? null }
  m = /^([a-z_]+)\s*\(\s*\)$/i.exec(expr)
  if (m) {
    switch (m[1].toLowerCase()) {
      case 'database': case 'schema': return { value: s.database || null }
      case 'version': return { value: SERVER_VERSION }
      case 'connection_id': return { value: s.connectionId }
      case 'user': case 'session_user': case 'system_user': return { value: `${s.user}@${s.host}` }
      case 'current_user': return { value: `${s.user}@%` }
      case 'last_insert_id': return { value: 0 }
    }
  }
  if (/^current_user$/i.test(expr)) return { value: `${s.user}@%` }
  return undefined
}

async function select(body: string, s: MysqlSessionState): Promise<Result | null> {
  const m = /^select\s+([\s\S]+?)(?:\s+limit\s+\d+)?$/i.exec(body)
  if (!m || /\bfrom\b/i.test(m[1].replace(/'[^']*'|"[^"]*"|`[^`]*`/g, ''))) return null
  const items = splitTop(m[1])
  const cols: Col[] = []
  const row: unknown[] = []
  for (const item of items) {
    const a = /^([\s\S]+?)(?:\s+as)?\s+(`[^`]+`|'[^']+'|"[^"]+"|[a-z_][\w$]*)$/i.exec(item)
    let expr = item, alias: string | null = null
    if (a && !/^(from|limit)$/i.test(a[2])) { expr = a[1].trim(); alias = unquote(a[2]) }
    const v = sessionItem(expr, s)
    if (!v) return null
    cols.push({ name: alias ?? expr, type: typeof v.value === 'number' ? 'int8' : 'text' })
    row.push(v.value)
  }
  return rowsOf(cols, [row])
}

function show(body: string, s: MysqlSessionState): Result | null {
  let m = /^show\s+(?:(global|session)\s+)?variables(?:\s+like\s+('(?:[^']|'')*'|"[^"]*"))?$/i.exec(body)
  if (m) {
    const re = m[2] ? likeToRegExp(unquote(m[2])) : null
    const all: Array<[string, string | number]> = [...s.vars.entries(), ['autocommit', s.autocommit ? 'ON' : 'OFF']]
    const rows = all.filter(([k]) => !re || re.test(k)).sort((a, b) => a[0].localeCompare(b[0])).map(([k, v]) => [k, String(v)])
    return rowsOf([text('Variable_name'), text('Value')], rows)
  }
  if (/^show\s+(warnings|errors)(\s+limit\s+[\d\s,]+)?$/i.test(body)) {
    // statements that fail send their error at once; nothing is kept as a warning
    return rowsOf([text('Level'), { name: 'Code', type: 'int4' }, text('Message')], [])
  }
  if (/^show\s+count\(\*\)\s+(warnings|errors)$/i.test(body)) return rowsOf([{ name: body.replace(/^show\s+/i, '@@session.').replace(/count\(\*\)\s+/i, '').toLowerCase().replace(/s$/, '_count'), type: 'int8' }], [[0]])
  if (/^show\s+(databases|schemas)$/i.test(body)) return rowsOf([text('Database')], [[s.database || 'hexad']])
  m = /^show\s+(full\s+)?tables(?:\s+(?:from|in)\s+\S+)?(?:\s+like\s+('(?:[^']|'')*'))?$/i.exec(body)
  if (m) {
    const re = m[2] ? likeToRegExp(unquote(m[2])) : null
    const names = [...s.engine.tables.values()].map(t => t.name).filter(n => !re || re.test(n)).sort()
    const cols = [text(`Tables_in_${s.database || 'hexad'}`), ...(m[1] ? [text('Table_type')] : [])]
    return rowsOf(cols, names.map(n => m![1] ? [n, 'BASE TABLE'] : [n]))
  }
  m = /^(?:show\s+(full\s+)?(?:columns|fields)\s+(?:from|in)\s+(`[^`]+`|[\w$]+)(?:\s+(?:from|in)\s+\S+)?|(?:describe|desc|explain)\s+(`[^`]+`|[\w$]+))$/i.exec(body)
  if (m) {
    const name = unquote(m[2] ?? m[3])
    const t = s.engine.maybeTable(name)
    if (!t) throw new MysqlServerError(1146, '42S02', `Table '${s.database || 'hexad'}.${name}' doesn't exist`)
    const uniq = new Set(t.indexes.filter(ix => ix.unique && ix.columns.length === 1).map(ix => ix.columns[0]))
    const rows = t.columns.map((c, i) => [
      c.name, mysqlTypeName(c.type), c.notNull || t.pk.includes(i) ? 'NO' : 'YES',
      t.pk.includes(i) ? 'PRI' : uniq.has(i) ? 'UNI' : '', null, c.auto ? 'auto_increment' : '',
    ])
    return rowsOf(['Field', 'Type', 'Null', 'Key', 'Default', 'Extra'].map(text), rows)
  }
  return null
}

function mysqlTypeName(t: { kind: string; name: string; len?: number; scale?: number }): string {
  switch (t.kind) {
    case 'int4': return 'int'
    case 'int8': return 'bigint'
    case 'float8': return 'double'
    case 'numeric': return t.len !== undefined ? `decimal(${t.len},${t.scale ?? 0})` : 'decimal(65,30)'
    case 'text': return t.name === 'varchar' ? (t.len !== undefined ? `varchar(${t.len})` : 'varchar(65535)') : 'text'
    case 'bool': return 'tinyint(1)'
    case 'bytea': return 'blob'
    case 'timestamp': return 'datetime(3)'
    case 'date': return 'date'
    case 'json': return 'json'
  }
  return t.name
}

/** Answers `sql` from the session state, or returns null for the SQL engine to run it. */
export async function answer(sql: string, s: MysqlSessionState): Promise<Result | null> {
  const body = stripStatement(sql)
  const first = /^[a-z]+/i.exec(body)?.[0]?.toLowerCase() ?? ''
  switch (first) {
    case 'set': return set(body.replace(/^set\s+/i, ''), s)
    case 'select': return select(body, s)
    case 'show': case 'describe': case 'desc': return show(body, s)
    case 'explain': return /^explain\s+(`[^`]+`|[\w$]+)$/i.test(body) && !/^explain\s+(select|insert|update|delete|with|analyze|verbose)$/i.test(body) ? show(body, s) : null
    case 'use': {
      const m = /^use\s+(`[^`]+`|[\w$]+)$/i.exec(body)
      if (!m) throw new MysqlServerError(1064, '42000', `You have an error in your SQL syntax near '${body}'`)
      s.database = unquote(m[1])
      return ok()
    }
  }
  return null
}
