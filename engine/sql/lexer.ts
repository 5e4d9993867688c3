/**
 * Statement normalisation before the parse cache, as pg_stat_statements
 * does: every literal (string, number, X'..' bytes) and every parameter
 * placeholder ($n, ?) becomes a named placeholder :p1, :p2, ... in order of
 * appearance, so `UPDATE t SET v = v + -4134 WHERE id = 52883` and the same
 * statement with other numbers share one parse and one plan. Each slot
 * records where its value comes from (a literal, or user parameter i).
 *
 * Literals are kept where the grammar needs a literal: in DDL (not
 * normalised at all), ordinals after ORDER BY / GROUP BY, type modifiers
 * (varchar(20)) and the operands of typed literals (DATE '...' becomes
 * CAST(:p AS DATE)). A normalised text that fails to parse is parsed again
 * unnormalised by the caller.
 */
import { SqlError, SQLSTATE } from './errors.js'
import { Decimal, normInt } from './values.js'

export type Dialect = 'postgres' | 'mysql'

/** Where a placeholder's value comes from: a literal (its value), or user parameter `param` (0-based). */
export type Slot = { lit: unknown; kind: 'int' | 'num' | 'str' | 'bytes' } | { param: number }

export interface Normalized {
  /** the text with placeholders (the cache key, with `sig`) */
  text: string
  /** per slot: i (integer literal), n (decimal literal), s (string literal), b (bytes literal), u (user parameter) */
  sig: string
  slots: Slot[]
  /** whether the statement was rewritten at all */
  changed: boolean
}

const TYPE_WORDS = new Set(['date', 'timestamp', 'time', 'json', 'jsonb', 'numeric', 'decimal', 'int', 'integer', 'bigint', 'text', 'boolean', 'bytea', 'interval', 'varchar', 'char', 'character', 'double', 'float', 'real', 'smallint', 'datetime'])
const TYPE_MOD_WORDS = new Set(['varchar', 'char', 'character', 'numeric', 'decimal', 'varying', 'float', 'binary', 'varbinary', 'time', 'timestamp', 'datetime'])
/** keywords after which a '-' is a sign, not a subtraction */
const SIGN_AFTER = new Set(['select', 'where', 'and', 'or', 'not', 'then', 'else', 'when', 'by', 'values', 'set', 'in', 'between', 'like', 'is', 'case', 'limit', 'offset', 'on', 'having', 'return', 'returning'])
const NORMALISED_FIRST = new Set(['select', 'insert', 'update', 'delete', 'with', 'values', 'replace'])

export interface Tok { t: 'id' | 'qid' | 'num' | 'str' | 'op' | 'ws' | 'param' | 'bytes'; s: string; v?: unknown }

/** a dollar quote's opening tag, as PostgreSQL reads it: $$ or $name$ (a name does not start with a digit) */
const DOLLAR_TAG = /\$(?:[A-Za-z_\u0080-\uffff][A-Za-z0-9_\u0080-\uffff]*)?\$/y

/** The dollar-quote tag opening at `i`, or null. */
function dollarTag(sql: string, i: number): string | null {
  DOLLAR_TAG.lastIndex = i
  return DOLLAR_TAG.exec(sql)?.[0] ?? null
}

function isSpace(c: number): boolean { return c === 32 || (c >= 9 && c <= 13) }
function isIdentStart(c: number): boolean { return (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || c === 95 || c >= 0x80 }
function isIdentPart(c: number): boolean { return isIdentStart(c) || (c >= 48 && c <= 57) || c === 36 }

/** Splits SQL into tokens; comments become whitespace. */
export function tokenize(sql: string, dialect: Dialect): Tok[] {
  const out: Tok[] = []
  const n = sql.length
  let i = 0
  while (i < n) {
    const c = sql[i]
    const start = i
    let tag: string | null
    const code = sql.charCodeAt(i)
    if (isSpace(code)) {
      while (i < n && isSpace(sql.charCodeAt(i))) i++
      out.push({ t: 'ws', s: ' ' })
    } else if (c === '-' && sql[i + 1] === '-' || (c === '#' && dialect === 'mysql')) {
      while (i < n && sql[i] !== '\n') i++
      out.push({ t: 'ws', s: ' ' })
    } else if (c === '/' && sql[i + 1] === '*') {
      const end = sql.indexOf('*/', i + 2)
      if (end < 0) throw new SqlError(SQLSTATE.syntax, 'syntax error: unterminated /* comment')
      i = end + 2
      out.push({ t: 'ws', s: ' ' })
    } else if (c === "'" || ((c === 'E' || c === 'e') && sql[i + 1] === "'" && dialect === 'postgres') || (c === '"' && dialect === 'mysql')) {
      const escapes = c !== "'" && c !== '"' ? true : dialect === 'mysql'
      const q = c === '"' ? '"' : "'"
      i += c === 'E' || c === 'e' ? 2 : 1
      let v = ''
      for (;;) {
        if (i >= n) throw new SqlError(SQLSTATE.syntax, 'syntax error: unterminated quoted string')
        const d = sql[i]
        if (d === q) {
          if (sql[i + 1] === q) { v += q; i += 2; continue }
          i++
          break
        }
        if (d === '\\' && escapes) {
          const e = sql[i + 1]
          v += e === 'n' ? '\n' : e === 't' ? '\t' : e === 'r' ? '\r' : e === '0' ? '\0' : e === 'b' ? '\b' : e === 'Z' ? '\x1a' : e
          i += 2
          continue
        }
        v += d
        i++
      }
      out.push({ t: 'str', s: sql.slice(start, i), v })
    } else if ((c === 'x' || c === 'X') && sql[i + 1] === "'") {
      const end = sql.indexOf("'", i + 2)
      if (end < 0) throw new SqlError(SQLSTATE.syntax, 'syntax error: unterminated hex string')
      const hex = sql.slice(i + 2, end)
      if (!/^([0-9a-fA-F]{2})*$/.test(hex)) throw new SqlError(SQLSTATE.badInput, `invalid hexadecimal literal X'${hex}'`)
      i = end + 1
      out.push({ t: 'bytes', s: sql.slice(start, i), v: Buffer.from(hex, 'hex') })
    } else if (c === '"' || c === '`') {
      const end = sql.indexOf(c, i + 1)
      if (end < 0) throw new SqlError(SQLSTATE.syntax, 'syntax error: unterminated quoted identifier')
      i = end + 1
      out.push({ t: 'qid', s: sql.slice(start, i) })
    } else if (c >= '0' && c <= '9' || (c === '.' && sql[i + 1] >= '0' && sql[i + 1] <= '9')) {
      while (i < n && sql[i] >= '0' && sql[i] <= '9') i++
      if (sql[i] === '.' && sql[i + 1] !== '.') { i++; while (i < n && sql[i] >= '0' && sql[i] <= '9') i++ }
      if ((sql[i] === 'e' || sql[i] === 'E') && /[+-]?\d/.test(sql.slice(i + 1, i + 3))) {
        i++
        if (sql[i] === '+' || sql[i] === '-') i++
        while (i < n && sql[i] >= '0' && sql[i] <= '9') i++
      }
      if (i < n && isIdentStart(sql.charCodeAt(i))) { // part of an identifier such as 1a? keep as-is
        while (i < n && isIdentPart(sql.charCodeAt(i))) i++
        out.push({ t: 'id', s: sql.slice(start, i) })
      } else out.push({ t: 'num', s: sql.slice(start, i) })
    } else if (c === '$' && dialect === 'postgres' && (tag = dollarTag(sql, i)) !== null) {
      // a dollar-quoted string: $tag$ ... $tag$ (tag empty or an identifier), nothing escaped inside
      const end = sql.indexOf(tag, i + tag.length)
      if (end < 0) throw new SqlError(SQLSTATE.syntax, `syntax error: unterminated dollar-quoted string at or near "${tag}"`)
      i = end + tag.length
      out.push({ t: 'str', s: sql.slice(start, i), v: sql.slice(start + tag.length, end) })
    } else if (c === '$' && dialect === 'mysql' && i + 1 < n && (isIdentStart(sql.charCodeAt(i + 1)) || sql[i + 1] === '$')) {
      // MySQL allows an unquoted name to begin with $ ($tmp); $ and a digit stays a parameter ($1)
      i++
      while (i < n && isIdentPart(sql.charCodeAt(i))) i++
      out.push({ t: 'id', s: sql.slice(start, i) })
    } else if (c === '$' && sql[i + 1] >= '0' && sql[i + 1] <= '9') {
      i++
      while (i < n && sql[i] >= '0' && sql[i] <= '9') i++
      out.push({ t: 'param', s: sql.slice(start, i), v: Number(sql.slice(start + 1, i)) - 1 })
    } else if (c === '?' && dialect === 'mysql') {
      i++
      out.push({ t: 'param', s: '?', v: -1 })
    } else if (isIdentStart(code)) {
      while (i < n && isIdentPart(sql.charCodeAt(i))) i++
      out.push({ t: 'id', s: sql.slice(start, i) })
    } else {
      // operators: keep multi-char ones together
      const two = sql.slice(i, i + 2)
      if (['::', '<=', '>=', '<>', '!=', '||', '->', '=>', '<<', '>>', '&&'].includes(two)) { i += 2; if (two === '->' && sql[i] === '>') i++ }
      else i++
      out.push({ t: 'op', s: sql.slice(start, i) })
    }
  }
  return out
}

/** A statement's text with its integer literals cut out ({@link literalShape}). */
export interface LiteralShape {
  /** the text with each integer literal replaced by U+0001 */
  skeleton: string
  /** the literals' values, in order (unsigned: a sign stays in the skeleton) */
  nums: number[]
}

/** the longest text {@link literalShape} looks at */
const SHAPE_CHARS_MAX = 4096

/**
 * The text's integer literals and what is left around them, or null when it
 * has none or holds anything whose tokens this scan cannot vouch for: a
 * quote of any kind, `$`, `?`, `#`, a backslash, a comment, a number with a
 * point or an exponent or more than 9 digits, a control character 0 or 1.
 * Two texts with the same skeleton tokenize alike but for those literals'
 * values, so they normalise alike too (same placeholders, same signature);
 * SqlEngine.lex uses this to skip tokenizing and normalizing a text that
 * differs from one seen before only in its numbers (pgbench's simple
 * protocol inlines every value). Digits inside a name (t1) are not literals.
 */
export function literalShape(sql: string): LiteralShape | null {
  const n = sql.length
  if (n > SHAPE_CHARS_MAX) return null
  let nums: number[] | null = null
  let skeleton = ''
  let from = 0
  for (let i = 0; i < n; i++) {
    const c = sql.charCodeAt(i)
    if (c >= 48 && c <= 57) {
      const before = i > 0 ? sql.charCodeAt(i - 1) : 32
      if (isIdentPart(before)) continue // a name's digits
      if (before === 46) return null // .5
      let j = i
      let v = 0
      for (let d = c; j < n && d >= 48 && d <= 57; d = sql.charCodeAt(++j)) v = v * 10 + (d - 48)
      if (j - i > 9) return null
      if (j < n) { const after = sql.charCodeAt(j); if (after === 46 || isIdentPart(after)) return null } // 1.5, 1e5, 12abc
      ;(nums ??= []).push(v)
      skeleton += sql.slice(from, i) + '\u0001'
      from = j
      i = j - 1
    } else if (c === 39 || c === 34 || c === 96 || c === 36 || c === 63 || c === 35 || c === 92 || c === 0 || c === 1) return null
    else if ((c === 45 && sql.charCodeAt(i + 1) === 45) || (c === 47 && sql.charCodeAt(i + 1) === 42)) return null
  }
  return nums && { skeleton: skeleton + sql.slice(from), nums }
}

/**
 * A token's text as the parser is given it. PostgreSQL and MySQL allow `$`
 * inside an unquoted identifier (`a$b`), MySQL at its start too (`$tmp`);
 * node-sql-parser's grammars do not,
 * so such a name goes to it quoted. No keyword holds a `$`, and names are
 * matched without regard to case quoted or not, so nothing else changes.
 */
export function parserText(tk: Tok, dialect: Dialect): string {
  if (tk.t !== 'id' || !tk.s.includes('$')) return tk.t === 'ws' ? ' ' : tk.s
  return dialect === 'mysql' ? '`' + tk.s + '`' : '"' + tk.s + '"'
}

/** The first keyword of a statement, lower case ('' if none). */
export function firstWord(toks: Tok[]): string {
  for (const t of toks) { if (t.t === 'ws') continue; return t.t === 'id' ? t.s.toLowerCase() : '' }
  return ''
}

/**
 * Normalises `sql`: literals and parameters to :pN placeholders. DDL and
 * other statements whose first keyword is not SELECT/INSERT/UPDATE/DELETE/
 * WITH/VALUES only get their parameters numbered.
 */
export function normalize(sql: string, dialect: Dialect, toks = tokenize(sql, dialect)): Normalized {
  const literals = NORMALISED_FIRST.has(firstWord(toks))
  const slots: Slot[] = []
  let sig = ''
  const parts: string[] = []
  let nextQ = 0
  let changed = false
  // ordinals after ORDER BY / GROUP BY stay literals: track "in a BY list at depth d"
  let depth = 0
  let byDepth = -1
  const typeModDepths: number[] = []
  let prev: Tok | null = null
  let prev2: Tok | null = null
  const slot = (s: Slot, k: string) => { slots.push(s); sig += k; changed = true; return `:p${slots.length}` }
  for (let idx = 0; idx < toks.length; idx++) {
    const tk = toks[idx]
    if (tk.t === 'ws') { parts.push(' '); continue }
    let text = tk.s
    if (tk.t === 'op') {
      if (tk.s === '(') {
        depth++
        if (prev && prev.t === 'id' && TYPE_MOD_WORDS.has(prev.s.toLowerCase())) typeModDepths.push(depth)
      } else if (tk.s === ')') {
        if (typeModDepths[typeModDepths.length - 1] === depth) typeModDepths.pop()
        if (byDepth === depth) byDepth = -1
        depth--
      }
    } else if (tk.t === 'id') {
      text = parserText(tk, dialect)
      if (text !== tk.s) changed = true
      const w = tk.s.toLowerCase()
      if (w === 'by' && prev && prev.t === 'id' && (prev.s.toLowerCase() === 'order' || prev.s.toLowerCase() === 'group')) byDepth = depth
      else if (byDepth === depth && ['limit', 'offset', 'having', 'for', 'union', 'window', 'fetch'].includes(w)) byDepth = -1
    } else if (tk.t === 'param') {
      const p = tk.v as number
      const param = p < 0 ? nextQ++ : p
      text = slot({ param }, 'u')
    } else if (literals && (tk.t === 'num' || tk.t === 'str' || tk.t === 'bytes')) {
      const inBy = byDepth === depth && tk.t === 'num' && prev && (prev.s.toLowerCase() === 'by' || prev.s === ',')
      const inTypeMod = typeModDepths[typeModDepths.length - 1] === depth && tk.t === 'num'
      if (!inBy && !inTypeMod) {
        if (tk.t === 'num') {
          // a sign belongs to the literal (pgbench writes "abalance + -4134")
          const signed = prev && prev.t === 'op' && prev.s === '-' && (!prev2 || (prev2.t === 'op' && prev2.s !== ')') || (prev2.t === 'id' && SIGN_AFTER.has(prev2.s.toLowerCase())))
          const src = signed ? '-' + tk.s : tk.s
          if (signed) { while (parts.length && parts[parts.length - 1] === ' ') parts.pop(); parts.pop() }
          if (/^-?\d+$/.test(src)) { const v = src.length <= 15 ? Number(src) : normInt(BigInt(src)); text = slot({ lit: v, kind: 'int' }, typeof v === 'number' && v >= -2147483648 && v <= 2147483647 ? 'i' : 'I') }
          else text = slot({ lit: Decimal.parse(src)!, kind: 'num' }, 'n')
        } else if (tk.t === 'bytes') text = slot({ lit: tk.v, kind: 'bytes' }, 'b')
        else {
          // a typed literal: DATE '2020-01-01' -> CAST(:p AS DATE)
          const typed = prev && prev.t === 'id' && TYPE_WORDS.has(prev.s.toLowerCase()) && !(prev2 && (prev2.t === 'id' && prev2.s.toLowerCase() === 'as'))
          const ph = slot({ lit: tk.v, kind: 'str' }, 's')
          if (typed) {
            // drop the type word (and the whitespace after it) already emitted
            while (parts.length && parts[parts.length - 1] === ' ') parts.pop()
            const typeWord = parts.pop()!
            text = `CAST(${ph} AS ${typeWord})`
          } else text = ph
        }
      }
    }
    // a dollar-quoted string left as text (DDL) goes to the parser as a standard one
    if (tk.t === 'str' && text === tk.s && tk.s[0] === '$') { text = `'${String(tk.v).replace(/'/g, "''")}'`; changed = true }
    parts.push(text)
    prev2 = prev
    prev = tk
  }
  return { text: parts.join('').trim(), sig, slots, changed }
}
