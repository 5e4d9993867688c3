/**
 * COPY: the statement's options and the text and CSV row formats.
 *
 *   COPY table [(col, ...)] FROM STDIN [[WITH] (option [, ...]) | WITH CSV [HEADER]]
 *   COPY {table [(col, ...)] | (query)} TO STDOUT [[WITH] (option [, ...]) | WITH CSV [HEADER]]
 *   option := FORMAT {text | csv} | HEADER [bool] | DELIMITER 'c' | NULL 's' | QUOTE 'c' | ESCAPE 'c' | FREEZE [bool]
 *
 * Text format: one line a row, fields split by the delimiter (tab), `\N`
 * is NULL, backslash escapes (\t \n \r \b \f \v \\ \ooo \xhh), a line `\.`
 * ends the data. CSV: RFC 4180 quoting, an unquoted empty field is NULL.
 */
import { SqlError } from '../../sql/errors.js'

export interface CopyStatement {
  direction: 'from' | 'to'
  table: string | null
  columns: string[] | null
  query: string | null
  csv: boolean
  header: boolean
  delimiter: string
  null: string
  quote: string
  escape: string
}

const bad = (msg: string) => new SqlError('42601', msg)

function unquoteIdent(s: string): string {
  return s.startsWith('"') ? s.slice(1, -1).replace(/""/g, '"') : s.toLowerCase()
}

/** Parses a COPY statement, or returns null when the text is not one. */
export function parseCopy(text: string): CopyStatement | null {
  if (!/^\s*copy\s/i.test(text)) return null
  const t = text.trim().replace(/;\s*$/, '')
  let rest = t.slice(4).trim()
  let table: string | null = null
  let query: string | null = null
  let columns: string[] | null = null
  if (rest.startsWith('(')) {
    let depth = 0, i = 0, q = ''
    for (; i < rest.length; i++) {
      const c = rest[i]
      if (q) { if (c === q) q = ''; continue }
      if (c === "'" || c === '"') { q = c; continue }
      if (c === '(') depth++
      else if (c === ')' && --depth === 0) break
    }
    if (depth !== 0) throw bad('syntax error in COPY: unbalanced parentheses')
    query = rest.slice(1, i).trim()
    rest = rest.slice(i + 1).trim()
  } else {
    const m = /^((?:"(?:[^"]|"")+"|[A-Za-z_][\w$]*)(?:\.(?:"(?:[^"]|"")+"|[A-Za-z_][\w$]*))?)\s*(?:\(([^)]*)\))?\s*/.exec(rest)
    if (!m) throw bad(`syntax error in COPY: expected a table name or (query), got "${rest.slice(0, 40)}"`)
    const parts = m[1].split('.')
    table = unquoteIdent(parts[parts.length - 1])
    if (parts.length === 2 && !['public', '"public"'].includes(parts[0].toLowerCase())) throw new SqlError('3F000', `schema "${unquoteIdent(parts[0])}" does not exist`)
    if (m[2] !== undefined) columns = m[2].split(',').map(c => unquoteIdent(c.trim())).filter(c => c)
    rest = rest.slice(m[0].length)
  }
  const dm = /^(from\s+stdin|to\s+stdout)\b\s*/i.exec(rest)
  if (!dm) {
    if (/^(from|to)\s+'/i.test(rest)) throw new SqlError('42501', 'COPY to or from a file is not supported by this server: use COPY ... FROM STDIN or TO STDOUT (psql: \\copy)')
    throw bad('syntax error in COPY: expected FROM STDIN or TO STDOUT')
  }
  const direction = dm[1].toLowerCase().startsWith('from') ? 'from' : 'to'
  if (direction === 'from' && query !== null) throw bad('COPY (query) FROM is not possible: COPY FROM needs a table')
  rest = rest.slice(dm[0].length).trim()
  const st: CopyStatement = { direction, table, columns, query, csv: false, header: false, delimiter: '\t', null: '\\N', quote: '"', escape: '"' }
  let delimiterSet = false, nullSet = false
  const lit = (s: string) => s.startsWith("'") ? s.slice(1, -1).replace(/''/g, "'") : s
  const setOption = (name: string, value: string | undefined) => {
    const v = value === undefined ? undefined : lit(value)
    switch (name.toLowerCase()) {
      case 'format':
        if (!v || !['text', 'csv'].includes(v.toLowerCase())) throw new SqlError('0A000', `COPY format "${v}" not supported (text, csv)`)
        st.csv = v.toLowerCase() === 'csv'
        break
      case 'csv': st.csv = true; break
      case 'header': st.header = v === undefined || ['true', 'on', '1'].includes(v.toLowerCase()); break
      case 'delimiter': if (!v || v.length !== 1) throw bad('COPY delimiter must be a single one-byte character'); st.delimiter = v; delimiterSet = true; break
      case 'null': if (v === undefined) throw bad('COPY NULL needs a string'); st.null = v; nullSet = true; break
      case 'quote': if (!v || v.length !== 1) throw bad('COPY quote must be a single one-byte character'); st.quote = v; break
      case 'escape': if (!v || v.length !== 1) throw bad('COPY escape must be a single one-byte character'); st.escape = v; break
      case 'freeze': case 'encoding': break
      case 'binary': throw new SqlError('0A000', 'COPY binary format is not supported (text, csv)')
      default: throw bad(`option "${name}" not recognized`)
    }
  }
  rest = rest.replace(/^with\b\s*/i, '')
  if (rest.startsWith('(')) {
    const body = rest.slice(1, rest.lastIndexOf(')'))
    for (const opt of body.split(/,(?=(?:[^']*'[^']*')*[^']*$)/)) {
      const m = /^\s*(\w+)(?:\s+('(?:[^']|'')*'|\w+))?\s*$/.exec(opt)
      if (!m) throw bad(`syntax error in COPY option "${opt.trim()}"`)
      setOption(m[1], m[2])
    }
  } else if (rest) {
    // the pre-9.0 form: WITH CSV HEADER DELIMITER ',' NULL ''
    const words = rest.match(/'(?:[^']|'')*'|\S+/g) ?? []
    for (let i = 0; i < words.length; i++) {
      const w = words[i].toLowerCase()
      if (w === 'delimiter' || w === 'null' || w === 'quote' || w === 'escape') { setOption(w, words[++i].replace(/^as$/i, '') || words[++i]); continue }
      if (w === 'as') continue
      setOption(w, undefined)
    }
  }
  if (st.csv) {
    if (!delimiterSet) st.delimiter = ','
    if (!nullSet) st.null = ''
  }
  return st
}

// ------------------------------------------------------------------ input

/** Splits COPY input into rows as data arrives (lines may cross CopyData messages). */
export class CopyParser {
  #pending = ''
  #headerSkipped = false
  ended = false
  constructor(readonly st: CopyStatement) {}

  /** Rows complete in `chunk` (and earlier chunks); each field a string or null. */
  push(chunk: string): Array<Array<string | null>> {
    this.#pending += chunk
    const rows: Array<Array<string | null>> = []
    for (;;) {
      if (this.ended) { this.#pending = ''; break }
      const cut = this.st.csv ? csvLineEnd(this.#pending, this.st.quote) : this.#pending.indexOf('\n')
      if (cut < 0) break
      const line = this.#pending.slice(0, cut).replace(/\r$/, '')
      this.#pending = this.#pending.slice(cut + 1)
      this.#line(line, rows)
    }
    return rows
  }

  /** The rows of a last line without its newline. */
  finish(): Array<Array<string | null>> {
    const rows: Array<Array<string | null>> = []
    if (!this.ended && this.#pending.length > 0) this.#line(this.#pending.replace(/\r$/, ''), rows)
    this.#pending = ''
    return rows
  }

  #line(line: string, rows: Array<Array<string | null>>): void {
    if (line === '\\.') { this.ended = true; return }
    if (this.st.header && !this.#headerSkipped) { this.#headerSkipped = true; return }
    rows.push(this.st.csv ? parseCsvLine(line, this.st) : parseTextLine(line, this.st))
  }
}

/** Index of the newline ending the first CSV record (newlines inside quotes belong to the field), or -1. */
function csvLineEnd(s: string, quote: string): number {
  let inQuote = false
  for (let i = 0; i < s.length; i++) {
    const c = s[i]
    if (c === quote) inQuote = !inQuote
    else if (c === '\n' && !inQuote) return i
  }
  return -1
}

const TEXT_ESCAPES: Record<string, string> = { b: '\b', f: '\f', n: '\n', r: '\r', t: '\t', v: '\v' }

function parseTextLine(line: string, st: CopyStatement): Array<string | null> {
  return line.split(st.delimiter).map(f => {
    if (f === st.null) return null
    if (!f.includes('\\')) return f
    return f.replace(/\\(x[0-9a-fA-F]{1,2}|[0-7]{1,3}|.)/g, (_, e: string) => {
      if (e[0] === 'x' && e.length > 1) return String.fromCharCode(parseInt(e.slice(1), 16))
      if (/^[0-7]/.test(e)) return String.fromCharCode(parseInt(e, 8))
      return TEXT_ESCAPES[e] ?? e
    })
  })
}

function parseCsvLine(line: string, st: CopyStatement): Array<string | null> {
  const out: Array<string | null> = []
  let i = 0
  for (;;) {
    let field = ''
    let quoted = false
    if (line[i] === st.quote) {
      quoted = true
      i++
      for (;;) {
        if (i >= line.length) throw new SqlError('22P04', 'unterminated CSV quoted field')
        const c = line[i]
        if (c === st.escape && line[i + 1] === st.quote) { field += st.quote; i += 2; continue }
        if (c === st.quote) { i++; break }
        field += c
        i++
      }
      while (i < line.length && line[i] !== st.delimiter) field += line[i++]
    } else {
      while (i < line.length && line[i] !== st.delimiter) field += line[i++]
    }
    out.push(!quoted && field === st.null ? null : field)
    if (i >= line.length) break
    i++ // delimiter
  }
  return out
}

// ------------------------------------------------------------------ output

export function formatTextRow(values: Array<string | null>, st: CopyStatement): string {
  return values.map(v => v === null ? st.null : v.replace(/[\\\n\r\t]/g, c => c === '\\' ? '\\\\' : c === '\n' ? '\\n' : c === '\r' ? '\\r' : '\\t')
    .split(st.delimiter).join('\\' + st.delimiter)).join(st.delimiter) + '\n'
}

export function formatCsvRow(values: Array<string | null>, st: CopyStatement): string {
  return values.map(v => {
    if (v === null) return st.null
    if (v === '' || v === st.null || v.includes(st.delimiter) || v.includes(st.quote) || v.includes('\n') || v.includes('\r') || v.includes(st.escape)) {
      return st.quote + v.split(st.quote).join(st.escape + st.quote) + st.quote
    }
    return v
  }).join(st.delimiter) + '\n'
}
