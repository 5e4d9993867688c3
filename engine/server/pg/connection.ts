/**
 * One PostgreSQL client connection after authentication: the simple and
 * extended query protocols, COPY, cancel, on one SqlSession.
 *
 * Messages are handled one at a time in arrival order. Output is gathered
 * in a MessageWriter and written at Sync, Flush, the end of a simple query,
 * or when it passes FLUSH_BYTES (each write waits for the socket to drain,
 * so a client that does not read stalls only itself). After an error in the
 * extended protocol every message up to Sync is discarded, as PostgreSQL
 * does. A malformed message closes the connection with FATAL 08P01.
 */
import { SqlError } from '../../sql/errors.js'
import { splitStatements } from '../../sql/session.js'
import type { SqlEngine, SqlSession } from '../../sql/session.js'
import { answer, defaultSettings, mayAnswer, REPORTED, type Answer, type Field, type SessionInfo } from './catalog.js'
import { CopyParser, formatCsvRow, formatTextRow, parseCopy, type CopyStatement } from './copy.js'
import { describe } from './describe.js'
import { decodeBinaryParam, decodeTextParam, encodeBinary, encodeText, OID, textOf } from './types.js'
import { MessageReader, MessageWriter, ProtocolError } from './wire.js'
import { statementTurns } from '../turns.js'

/** statements that manage transactions themselves, or that PostgreSQL refuses inside a transaction block */
const TX_CONTROL = /^\s*(begin|start|commit|end|rollback|abort|savepoint|release|prepare\s+transaction)\b/i
const NO_TX_BLOCK = /^\s*(vacuum|alter\s+system|create\s+database|drop\s+database)\b/i

export interface ConnectionLimits {
  /** largest frontend message accepted (bytes) */
  messageBytesMax: number
  /** a connection idle this long (no message, no query running) is closed; 0: never */
  idleTimeoutMs: number
  /** prepared statements a connection may hold */
  statementsMax: number
}

const FLUSH_BYTES = 64 * 1024
const COPY_BATCH_ROWS = 500

interface Statement { name: string; text: string; paramOids: number[]; fields?: Field[] | null }
interface Portal {
  name: string
  stmt: Statement
  params: unknown[]
  formats: number[]
  result: Answer | null
  sent: number
  /** RowDescription was sent for this portal (Describe P) */
  described: boolean
}

export interface Transport {
  read(): Promise<Uint8Array | null>
  write(b: Buffer): Promise<void>
  close(): void
}

function sqlErrorOf(err: unknown): { code: string; message: string; detail?: string } {
  const e = err as { sqlstate?: string; code?: string; message?: string; detail?: string }
  if (e && typeof e.sqlstate === 'string') return { code: e.sqlstate, message: e.message ?? String(err), detail: e.detail }
  return { code: 'XX000', message: `internal error: ${e?.message ?? String(err)}` }
}

function commandTag(r: Answer): string {
  switch (r.command) {
    case 'INSERT': return `INSERT 0 ${r.rowCount}`
    case 'SELECT': case 'UPDATE': case 'DELETE': case 'COPY': case 'MOVE': case 'FETCH': return `${r.command} ${r.rowCount}`
    default: return r.command
  }
}

export class PgConnection implements SessionInfo {
  readonly settings: Map<string, string>
  readonly #out = new MessageWriter()
  #buf: Buffer = Buffer.alloc(0)
  readonly #statements = new Map<string, Statement>()
  readonly #portals = new Map<string, Portal>()
  #skipToSync = false
  #closed = false
  #busy = false
  #cancelled = false
  /** aborts the running statement's row loops (writes included: its changes are then not committed) */
  #abort: AbortController | null = null
  #cancelWaiters = new Set<(err: Error) => void>()
  /** a statement read from the client waits for its turn (turns.ts) */
  #turnWait = false
  /** a CancelRequest came while it waited: it fails with 57014 when it starts, as a running one would */
  #cancelQueued = false
  #idleTimer: NodeJS.Timeout | null = null

  constructor(
    readonly io: Transport,
    readonly session: SqlSession,
    readonly engine: SqlEngine,
    readonly user: string,
    readonly database: string,
    readonly pid: number,
    readonly secret: number,
    readonly limits: ConnectionLimits,
    application: string,
  ) {
    this.settings = defaultSettings(user, database, application)
  }

  // ---------------------------------------------------------------- SessionInfo

  reportSetting(name: string, value: string): void { this.#out.parameterStatus(name, value) }

  sleep(ms: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => { this.#cancelWaiters.delete(onCancel); resolve() }, ms)
      const onCancel = (err: Error) => { clearTimeout(t); reject(err) }
      this.#cancelWaiters.add(onCancel)
    })
  }

  /** A CancelRequest for this connection: stops the statement running now (if it can be stopped). */
  cancel(): void {
    if (this.#turnWait) { this.#cancelQueued = true; return }
    if (!this.#busy) return
    this.#cancelled = true
    this.#abort?.abort()
    const err = new SqlError('57014', 'canceling statement due to user request')
    for (const w of this.#cancelWaiters) w(err)
    this.#cancelWaiters.clear()
  }

  /** A CancelRequest names a connection by process id and proves itself by the secret. */
  cancelIfSecret(secret: number): void { if (secret === this.secret) this.cancel() }

  /** Server shutdown: tells the client, then closes. */
  terminate(): void {
    if (this.#closed) return
    this.#out.error({ severity: 'FATAL', code: '57P01', message: 'terminating connection due to administrator command' })
    void this.#flush().catch(() => {}).finally(() => this.close())
  }

  /** Races `p` against a cancel (for work whose result may be dropped: reads, sleeps). */
  #cancellable<T>(p: Promise<T>): Promise<T> {
    if (this.#cancelled) { p.catch(() => {}); return Promise.reject(new SqlError('57014', 'canceling statement due to user request')) }
    return new Promise<T>((resolve, reject) => {
      const onCancel = (err: Error) => { p.catch(() => {}); reject(err) }
      this.#cancelWaiters.add(onCancel)
      p.then(v => { this.#cancelWaiters.delete(onCancel); resolve(v) }, e => { this.#cancelWaiters.delete(onCancel); reject(e) })
    })
  }

  // ---------------------------------------------------------------- I/O

  async #flush(): Promise<void> {
    if (this.#out.length === 0 || this.#closed) return
    await this.io.write(this.#out.take())
  }

  #armIdle(): void {
    if (this.#idleTimer) clearTimeout(this.#idleTimer)
    if (!this.limits.idleTimeoutMs) return
    this.#idleTimer = setTimeout(() => {
      if (this.#busy || this.#closed) return
      this.#out.error({ severity: 'FATAL', code: '57P05', message: `terminating connection due to idle-session timeout (${this.limits.idleTimeoutMs} ms)` })
      void this.#flush().finally(() => this.close())
    }, this.limits.idleTimeoutMs)
    this.#idleTimer.unref()
  }

  /** The next frontend message, or null at end of stream. */
  async #next(): Promise<{ type: string; body: Buffer } | null> {
    for (;;) {
      if (this.#buf.length >= 5) {
        const len = this.#buf.readInt32BE(1)
        if (len < 4 || len > this.limits.messageBytesMax) throw new ProtocolError(`invalid message length ${len} (limit ${this.limits.messageBytesMax} bytes)`)
        if (this.#buf.length >= len + 1) {
          const type = String.fromCharCode(this.#buf[0])
          const body = this.#buf.subarray(5, len + 1)
          this.#buf = this.#buf.subarray(len + 1)
          return { type, body }
        }
      }
      const chunk = await this.io.read()
      if (chunk === null) return null
      this.#buf = this.#buf.length ? Buffer.concat([this.#buf, chunk]) : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength)
    }
  }

  close(): void {
    if (this.#closed) return
    this.#closed = true
    if (this.#idleTimer) clearTimeout(this.#idleTimer)
    this.cancel()
    this.io.close()
    void this.session.close().catch(() => {})
  }

  /** Greets the client and serves it until it leaves or breaks the protocol. */
  async run(): Promise<void> {
    try {
      for (const [k, v] of this.settings) if (REPORTED[k]) this.#out.parameterStatus(REPORTED[k], v)
      this.#out.backendKeyData(this.pid, this.secret)
      this.#out.readyForQuery('I')
      await this.#flush()
      for (;;) {
        this.#armIdle()
        const m = await this.#next()
        if (!m || this.#closed) break
        if (m.type === 'X') break
        // a statement waits its turn while others wait for a lock it does not hold (turns.ts);
        // it is not idle meanwhile
        if ((m.type === 'Q' || m.type === 'E') && this.session.behindLockHolders) {
          if (this.#idleTimer) clearTimeout(this.#idleTimer)
          this.#turnWait = true
          try { await statementTurns.take() } finally { this.#turnWait = false }
          if (this.#closed) break
        }
        await this.#handle(m.type, new MessageReader(m.body))
        this.#cancelQueued = false // for a message that ran no statement (a COPY, an empty query)
        if (this.#out.length >= FLUSH_BYTES) await this.#flush()
      }
    } catch (err) {
      if (!this.#closed) {
        const message = err instanceof ProtocolError ? `invalid frontend message: ${err.message}` : `connection error: ${(err as Error)?.message ?? String(err)}`
        this.#out.error({ severity: 'FATAL', code: '08P01', message })
        await Promise.race([this.#flush().catch(() => {}), new Promise(r => setTimeout(r, 1000).unref())])
      }
    } finally {
      this.close()
    }
  }

  async #handle(type: string, r: MessageReader): Promise<void> {
    if (this.#skipToSync && type !== 'S') {
      if (!'PBDECHdcf'.includes(type)) throw new ProtocolError(`unknown message type '${type}' (0x${type.charCodeAt(0).toString(16)})`)
      return
    }
    switch (type) {
      case 'Q': return this.#simpleQuery(r.cstring())
      case 'P': return this.#extended(() => this.#parse(r))
      case 'B': return this.#extended(() => this.#bind(r))
      case 'D': return this.#extended(() => this.#describe(r))
      case 'E': return this.#extended(() => this.#execute(r))
      case 'C': return this.#extended(async () => {
        const kind = String.fromCharCode(r.byte())
        const name = r.cstring()
        if (kind === 'S') this.#statements.delete(name)
        else if (kind === 'P') this.#portals.delete(name)
        else throw new ProtocolError(`Close of unknown kind '${kind}'`)
        this.#out.closeComplete()
      })
      case 'S':
        this.#skipToSync = false
        this.#portals.delete('')
        this.#out.readyForQuery(this.session.status)
        return this.#flush()
      case 'H': return this.#flush()
      case 'd': case 'c': case 'f': return // copy messages after the COPY ended (after an error): ignored, as PostgreSQL does
      case 'F': return this.#extended(async () => { throw new SqlError('0A000', 'not supported: the function call protocol') })
      default: throw new ProtocolError(`unknown message type '${type}' (0x${type.charCodeAt(0).toString(16)})`)
    }
  }

  async #extended(fn: () => Promise<void>): Promise<void> {
    try {
      await fn()
    } catch (err) {
      if (err instanceof ProtocolError) throw err
      this.#out.error({ severity: 'ERROR', ...sqlErrorOf(err) })
      this.#skipToSync = true
    }
  }

  // ---------------------------------------------------------------- running statements

  /** One statement: answered by catalog.ts or run by the SQL session. */
  async #run(text: string, params: unknown[]): Promise<Answer> {
    const status = this.session.status
    this.#busy = true
    this.#cancelled = false
    try {
      if (this.#cancelQueued) {
        this.#cancelQueued = false
        throw new SqlError('57014', 'canceling statement due to user request')
      }
      if (status !== 'E' && mayAnswer(text)) {
        const a = await answer(text, this)
        if (a) return a
      }
      const readOnly = status === 'I' && /^\s*(select|with|values|show|explain)\b/i.test(text)
      // A read's result can be dropped at once; a write stops between rows (57014) and is not committed.
      // One controller serves statement after statement until a cancel fires it (a new one per statement cost ~3% of a TPC-B run).
      if (!this.#abort || this.#abort.signal.aborted) this.#abort = new AbortController()
      const p = this.session.sql<unknown[]>(text, params, { rowMode: 'array', signal: this.#abort.signal }) as Promise<Answer>
      return await (readOnly ? this.#cancellable(p) : p)
    } finally {
      this.#busy = false
    }
  }

  /** DataRows for rows [from, to) of a result, in the given formats. */
  #rows(r: Answer, fields: Field[], formats: number[], from: number, to: number): void {
    const oids = fields.map(f => f.oid)
    for (let i = from; i < to; i++) {
      const row = r.rows[i]
      const vals = new Array<Buffer | null>(row.length)
      for (let c = 0; c < row.length; c++) {
        const oid = oids[c] ?? OID.text
        vals[c] = (formats.length === 1 ? formats[0] : formats[c] ?? 0) === 1 ? encodeBinary(row[c], oid) : encodeText(row[c], oid)
      }
      this.#out.dataRow(vals)
    }
  }

  /** Sends rows in slices, flushing between them (backpressure) and stopping on cancel. */
  async #sendRows(r: Answer, fields: Field[], formats: number[], from: number, to: number): Promise<void> {
    for (let i = from; i < to; i += 256) {
      if (this.#cancelled) throw new SqlError('57014', 'canceling statement due to user request')
      this.#rows(r, fields, formats, i, Math.min(to, i + 256))
      if (this.#out.length >= FLUSH_BYTES) await this.#flush()
    }
  }

  async #simpleQuery(text: string): Promise<void> {
    let statements: string[]
    try {
      statements = splitStatements(text, 'postgres')
    } catch (err) {
      this.#out.error({ severity: 'ERROR', ...sqlErrorOf(err) })
      this.#out.readyForQuery(this.session.status)
      return this.#flush()
    }
    if (statements.length === 0) this.#out.emptyQueryResponse()
    // As PostgreSQL does, several statements in one simple query outside a transaction block
    // run as one implicit transaction: an error rolls back the ones before it too.
    const implicit = statements.length > 1 && this.session.status === 'I' &&
      !statements.some(st => TX_CONTROL.test(st) || NO_TX_BLOCK.test(st) || parseCopy(st))
    let failed = false
    if (implicit) await this.session.sql('BEGIN')
    for (const s of statements) {
      try {
        const copy = parseCopy(s)
        if (copy) { await this.#copy(copy); continue }
        const r = await this.#run(s, [])
        if (r.command === 'EMPTY') { this.#out.emptyQueryResponse(); continue }
        if (r.fields.length > 0) {
          this.#out.rowDescription(r.fields, [])
          this.#busy = true
          try { await this.#sendRows(r, r.fields, [], 0, r.rows.length) } finally { this.#busy = false }
        }
        this.#out.commandComplete(commandTag(r))
      } catch (err) {
        if (err instanceof ProtocolError) { if (implicit) await this.session.sql('ROLLBACK').catch(() => {}); throw err }
        this.#out.error({ severity: 'ERROR', ...sqlErrorOf(err) })
        failed = true
        break
      }
    }
    if (implicit) {
      if (failed) await this.session.sql('ROLLBACK').catch(() => {})
      else {
        try { await this.session.sql('COMMIT') } catch (err) { this.#out.error({ severity: 'ERROR', ...sqlErrorOf(err) }) }
      }
    }
    this.#cancelled = false
    this.#out.readyForQuery(this.session.status)
    await this.#flush()
  }

  async #parse(r: MessageReader): Promise<void> {
    const name = r.cstring()
    const text = r.cstring()
    const n = r.count(65535, 'parameter type')
    const paramOids: number[] = []
    for (let i = 0; i < n; i++) paramOids.push(r.uint32())
    if (name && this.#statements.has(name)) throw new SqlError('42P05', `prepared statement "${name}" already exists`)
    if (name && this.#statements.size >= this.limits.statementsMax) throw new SqlError('53400', `too many prepared statements (limit ${this.limits.statementsMax}): close some`)
    if (splitStatements(text, 'postgres').length > 1) throw new SqlError('42601', 'cannot insert multiple commands into a prepared statement')
    // parameters the client left unspecified: count them from the text ($n)
    let max = paramOids.length
    for (const m of text.matchAll(/\$(\d+)/g)) max = Math.max(max, Number(m[1]))
    while (paramOids.length < max) paramOids.push(0)
    // parse and plan now, so that syntax errors and unknown tables are reported by Parse, as PostgreSQL does
    const fields = parseCopy(text) ? null : await describe(text, this)
    this.#statements.set(name, { name, text, paramOids, fields })
    this.#out.parseComplete()
  }

  async #bind(r: MessageReader): Promise<void> {
    const portalName = r.cstring()
    const stmtName = r.cstring()
    const nf = r.count(65535, 'parameter format')
    const pformats: number[] = []
    for (let i = 0; i < nf; i++) pformats.push(r.int16())
    const np = r.count(65535, 'parameter')
    const raw: Array<Buffer | null> = []
    for (let i = 0; i < np; i++) {
      const len = r.int32()
      raw.push(len === -1 ? null : r.bytes(len))
    }
    const nr = r.count(65535, 'result format')
    const formats: number[] = []
    for (let i = 0; i < nr; i++) formats.push(r.int16())
    if (r.remaining !== 0) throw new ProtocolError('Bind message has trailing bytes')
    for (const f of [...pformats, ...formats]) if (f !== 0 && f !== 1) throw new ProtocolError(`invalid format code ${f}`)
    if (nf > 1 && nf !== np) throw new ProtocolError(`Bind has ${nf} parameter formats for ${np} parameters`)
    const stmt = this.#statements.get(stmtName)
    if (!stmt) throw new SqlError('26000', `prepared statement "${stmtName}" does not exist`)
    if (np !== stmt.paramOids.length) throw new SqlError('08P01', `bind message supplies ${np} parameters, but prepared statement "${stmtName}" requires ${stmt.paramOids.length}`)
    if (portalName && this.#portals.has(portalName)) throw new SqlError('42P03', `cursor "${portalName}" already exists`)
    const params = raw.map((b, i) => {
      if (b === null) return null
      const fmt = nf === 0 ? 0 : nf === 1 ? pformats[0] : pformats[i]
      return fmt === 1 ? decodeBinaryParam(b, stmt.paramOids[i], i) : decodeTextParam(b, stmt.paramOids[i])
    })
    this.#portals.set(portalName, { name: portalName, stmt, params, formats, result: null, sent: 0, described: false })
    this.#out.bindComplete()
  }

  async #describe(r: MessageReader): Promise<void> {
    const kind = String.fromCharCode(r.byte())
    const name = r.cstring()
    if (kind === 'S') {
      const stmt = this.#statements.get(name)
      if (!stmt) throw new SqlError('26000', `prepared statement "${name}" does not exist`)
      const d = stmt.fields === undefined ? await describe(stmt.text, this) : stmt.fields
      stmt.fields = d
      this.#out.parameterDescription(stmt.paramOids.map(o => o === 0 ? OID.text : o))
      if (d && d.length) this.#out.rowDescription(d, [])
      else this.#out.noData()
      return
    }
    if (kind !== 'P') throw new ProtocolError(`Describe of unknown kind '${kind}'`)
    const portal = this.#portals.get(name)
    if (!portal) throw new SqlError('34000', `portal "${name}" does not exist`)
    // the portal runs now: its result's fields are what Execute sends
    await this.#materialize(portal)
    const fields = this.#portalFields(portal)
    portal.described = true
    if (fields.length) this.#out.rowDescription(fields, portal.formats)
    else this.#out.noData()
  }

  #portalFields(p: Portal): Field[] {
    const actual = p.result?.fields ?? []
    const stated = p.stmt.fields
    // a statement described before (Describe S) keeps the types it announced
    if (stated && stated.length === actual.length) return stated.map((f, i) => ({ ...actual[i], oid: f.oid }))
    return actual
  }

  async #materialize(p: Portal): Promise<void> {
    if (p.result) return
    if (parseCopy(p.stmt.text)) throw new SqlError('0A000', 'not supported: COPY in the extended query protocol (send it as a simple query)')
    p.result = await this.#run(p.stmt.text, p.params)
  }

  async #execute(r: MessageReader): Promise<void> {
    const name = r.cstring()
    const maxRows = r.int32()
    const portal = this.#portals.get(name)
    if (!portal) throw new SqlError('34000', `portal "${name}" does not exist`)
    await this.#materialize(portal)
    const res = portal.result!
    if (res.command === 'EMPTY') { this.#out.emptyQueryResponse(); return }
    const end = maxRows > 0 ? Math.min(res.rows.length, portal.sent + maxRows) : res.rows.length
    if (res.fields.length) {
      this.#busy = true
      try { await this.#sendRows(res, this.#portalFields(portal), portal.formats, portal.sent, end) } finally { this.#busy = false; this.#cancelled = false }
    }
    portal.sent = end
    if (maxRows > 0 && end < res.rows.length) { this.#out.portalSuspended(); return }
    this.#out.commandComplete(commandTag(res))
  }

  // ---------------------------------------------------------------- COPY

  async #copy(st: CopyStatement): Promise<void> {
    if (this.session.status === 'E') throw new SqlError('25P02', 'current transaction is aborted, commands ignored until end of transaction block')
    if (st.direction === 'to') return this.#copyOut(st)
    return this.#copyIn(st)
  }

  async #copyOut(st: CopyStatement): Promise<void> {
    const q = st.query ?? `SELECT ${st.columns ? st.columns.map(c => `"${c}"`).join(', ') : '*'} FROM "${st.table}"`
    const r = await this.#run(q, [])
    this.#out.copyOutResponse(r.fields.length)
    const row = (vals: Array<string | null>) => st.csv ? formatCsvRow(vals, st) : formatTextRow(vals, st)
    if (st.header) this.#out.copyData(Buffer.from(row(r.fields.map(f => f.name))))
    for (let i = 0; i < r.rows.length; i++) {
      const vals = r.rows[i].map((v, c) => v === null || v === undefined ? null : textOf(v, r.fields[c].oid))
      this.#out.copyData(Buffer.from(row(vals)))
      if (this.#out.length >= FLUSH_BYTES) await this.#flush()
    }
    this.#out.copyDone()
    this.#out.commandComplete(`COPY ${r.rows.length}`)
  }

  async #copyIn(st: CopyStatement): Promise<void> {
    const t = this.engine.maybeTable(st.table!)
    if (!t) { await this.engine.ready(); if (!this.engine.maybeTable(st.table!)) throw new SqlError('42P01', `relation "${st.table}" does not exist`) }
    const table = this.engine.table(st.table!)
    const cols = st.columns ?? table.columns.map(c => c.name)
    for (const c of cols) if (!table.columns.some(x => x.name.toLowerCase() === c.toLowerCase())) throw new SqlError('42703', `column "${c}" of relation "${table.name}" does not exist`)
    this.#out.copyInResponse(cols.length)
    await this.#flush()
    // the rows go in one transaction: the client's, or one opened here
    const own = this.session.status === 'I'
    if (own) await this.session.sql('BEGIN')
    const parser = new CopyParser(st)
    const decoder = new TextDecoder('utf-8', { fatal: false })
    let count = 0
    let failure: unknown = null
    let pending: Array<Array<string | null>> = []
    const insert = async (rows: Array<Array<string | null>>) => {
      if (rows.length === 0) return
      const params: Array<string | null> = []
      const tuples: string[] = []
      for (const row of rows) {
        if (row.length !== cols.length) throw new SqlError('22P04', `COPY row ${count + tuples.length + 1}: expected ${cols.length} columns, got ${row.length}`)
        tuples.push('(' + row.map(v => { params.push(v); return '$' + params.length }).join(', ') + ')')
      }
      await this.session.sql(`INSERT INTO "${table.name}" (${cols.map(c => `"${c}"`).join(', ')}) VALUES ${tuples.join(', ')}`, params)
      count += rows.length
    }
    for (;;) {
      const m = await this.#next()
      if (!m) throw new ProtocolError('connection ended during COPY')
      if (m.type === 'd') {
        if (failure) continue
        try {
          pending.push(...parser.push(decoder.decode(m.body, { stream: true })))
          while (pending.length >= COPY_BATCH_ROWS) { const batch = pending.slice(0, COPY_BATCH_ROWS); pending = pending.slice(COPY_BATCH_ROWS); await insert(batch) }
        } catch (err) { failure = err }
        continue
      }
      if (m.type === 'c') {
        if (!failure) {
          try { pending.push(...parser.push(decoder.decode())); pending.push(...parser.finish()); await insert(pending) } catch (err) { failure = err }
        }
        break
      }
      if (m.type === 'f') { failure = new SqlError('57014', `COPY from stdin failed: ${new MessageReader(m.body).cstring()}`); break }
      if (m.type === 'H' || m.type === 'S') continue
      throw new ProtocolError(`unexpected message type '${m.type}' during COPY`)
    }
    if (failure) {
      if (own) await this.session.sql('ROLLBACK').catch(() => {})
      throw failure
    }
    if (own) await this.session.sql('COMMIT')
    this.#out.commandComplete(`COPY ${count}`)
  }
}
