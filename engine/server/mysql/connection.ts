/**
 * One MySQL client connection: the handshake (protocol 10,
 * mysql_native_password, an auth switch for clients that start with
 * another plugin), then commands one at a time on a SqlSession in the
 * MySQL dialect:
 *
 *   COM_QUERY          text protocol; several statements with CLIENT_MULTI_STATEMENTS
 *   COM_STMT_PREPARE   the statement is parsed and planned now (errors here), its
 *                      parameters counted and its result columns described
 *   COM_STMT_EXECUTE   binary protocol: NULL bitmap, parameter types (kept from the
 *                      last execute when not re-sent), binary result rows
 *   COM_STMT_SEND_LONG_DATA / COM_STMT_RESET / COM_STMT_CLOSE
 *   COM_INIT_DB, COM_PING, COM_STATISTICS, COM_SET_OPTION, COM_RESET_CONNECTION, COM_QUIT
 *
 * Transactions: BEGIN / START TRANSACTION, COMMIT, ROLLBACK and
 * `SET autocommit`. As in MySQL, DDL and BEGIN inside a transaction commit
 * it first, autocommit=0 opens a transaction at the next statement, and a
 * deadlock / serialization failure (1213) rolls the transaction back.
 * Unlike MySQL, any other error inside a transaction aborts it (the SQL
 * layer's rule, as in PostgreSQL): later statements fail until ROLLBACK,
 * and a COMMIT of it answers error 1180 (SQLSTATE 40000) after rolling back.
 *
 * A malformed packet, or one over `packetBytesMax`, gets an error packet
 * and closes this connection only.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import type net from 'node:net'
import tls from 'node:tls'
import type { SqlEngine, SqlSession } from '../../sql/session.js'
import { splitStatements } from '../../sql/session.js'
import { tokenize } from '../../sql/lexer.js'
import { CLIENT, COM, PacketReader, PacketWriter, ProtocolError, STATUS, eofPacket, errPacket, okPacket } from './packets.js'
import { binaryRow, columnDefinition, columnTypes, longDataParam, MysqlServerError, mysqlErrorOf, paramDefinition, readParam, textValue, type Col } from './types.js'
import { answer, defaultVariables, SERVER_VERSION, stripStatement, type MysqlSessionState, type Result } from './variables.js'
import { statementTurns } from '../turns.js'

export interface MysqlLimits {
  /** largest client packet (max_allowed_packet) */
  packetBytesMax: number
  /** a connection idle this long is closed (error 4031); 0: never */
  idleTimeoutMs: number
  /** prepared statements a connection may hold */
  statementsMax: number
  /** the handshake must finish within this */
  authTimeoutMs: number
  /** offered to clients (CLIENT_SSL): after an SSL request the connection goes on inside TLS */
  tls?: tls.SecureContext
}

/** A configured user: the SHA1(SHA1(password)) that mysql_native_password checks against, or null for any password. */
export type Credentials = Map<string, Buffer | null> | null

const SERVER_CAPS = CLIENT.LONG_PASSWORD | CLIENT.FOUND_ROWS | CLIENT.LONG_FLAG | CLIENT.CONNECT_WITH_DB | CLIENT.PROTOCOL_41 |
  CLIENT.INTERACTIVE | CLIENT.TRANSACTIONS | CLIENT.SECURE_CONNECTION | CLIENT.MULTI_STATEMENTS | CLIENT.MULTI_RESULTS |
  CLIENT.PS_MULTI_RESULTS | CLIENT.PLUGIN_AUTH | CLIENT.CONNECT_ATTRS | CLIENT.PLUGIN_AUTH_LENENC_CLIENT_DATA
const NATIVE = 'mysql_native_password'
const FLUSH_BYTES = 64 * 1024
const DDL = new Set(['create', 'drop', 'alter', 'truncate', 'rename'])
/** statements the SQL session (or variables.ts) recognises before node-sql-parser sees them */
const NOT_PARSED = new Set(['begin', 'start', 'commit', 'rollback', 'end', 'abort', 'savepoint', 'release', 'set', 'show', 'use', 'describe', 'desc', 'explain', 'vacuum', 'analyze', 'analyse', 'alter', 'xa', 'do', 'lock', 'unlock', 'flush', 'kill', 'create'])
const DML = new Set(['select', 'insert', 'update', 'delete', 'replace', 'with', 'values', 'table'])

const sha1 = (...parts: Buffer[]) => { const h = createHash('sha1'); for (const p of parts) h.update(p); return h.digest() }

/** SHA1(SHA1(password)): what the server keeps for mysql_native_password. */
export function nativeStage2(password: string): Buffer { return sha1(sha1(Buffer.from(password, 'utf8'))) }

/** Checks a mysql_native_password token: token = SHA1(pw) XOR SHA1(scramble + SHA1(SHA1(pw))). */
export function nativeVerify(stage2: Buffer, scramble: Buffer, token: Buffer): boolean {
  if (token.length === 0) return stage2.equals(nativeStage2(''))
  if (token.length !== 20) return false
  const mask = sha1(scramble, stage2)
  const stage1 = Buffer.alloc(20)
  for (let i = 0; i < 20; i++) stage1[i] = token[i] ^ mask[i]
  return timingSafeEqual(sha1(stage1), stage2)
}

interface Stmt { id: number; sql: string; nparams: number; types: Array<{ type: number; unsigned: boolean }> | null; longData: Map<number, Buffer[]> }

function firstWord(sql: string): string {
  return /^[a-z]+/i.exec(stripStatement(sql))?.[0]?.toLowerCase() ?? ''
}

function typeName(t: { kind: string; name: string }): string {
  return t.name === 'varchar' || t.name === 'jsonb' ? t.name : t.kind === 'unknown' ? 'text' : t.kind
}

export class MysqlConnection implements MysqlSessionState {
  readonly vars: Map<string, string | number>
  readonly userVars = new Map<string, string | number | null>()
  database = ''
  user = ''
  autocommit = true
  lastInsertId = 0
  #caps = 0
  #seq = 0
  #buf: Buffer = Buffer.alloc(0)
  #it: AsyncIterator<Buffer>
  #out: Buffer[] = []
  #outBytes = 0
  #closed = false
  #busy = false
  #started = false
  #idleTimer: NodeJS.Timeout | null = null
  readonly #stmts = new Map<number, Stmt>()
  #nextStmt = 0
  #questions = 0
  readonly #since = Date.now()

  constructor(
    public socket: net.Socket,
    readonly session: SqlSession,
    readonly engine: SqlEngine,
    readonly connectionId: number,
    readonly credentials: Credentials,
    readonly limits: MysqlLimits,
    readonly log: (line: string) => void,
  ) {
    this.vars = defaultVariables(limits.packetBytesMax)
    this.#it = socket.iterator({ destroyOnReturn: false })[Symbol.asyncIterator]()
  }

  /**
   * The client sent an SSL request: the rest of the connection (from its
   * handshake response on) runs inside TLS on the same socket. Bytes the
   * client sent after the request (the start of its TLS handshake) are
   * handed to the TLS layer first.
   */
  async #startTls(context: tls.SecureContext): Promise<void> {
    const raw = this.socket
    await this.#it.return?.()
    if (this.#buf.length) { raw.unshift(this.#buf); this.#buf = Buffer.alloc(0) }
    const secure = new tls.TLSSocket(raw, { isServer: true, secureContext: context })
    secure.on('error', () => {})
    await new Promise<void>((resolve, reject) => {
      secure.once('secure', () => resolve())
      secure.once('error', reject)
      secure.once('close', () => reject(new ProtocolError('the client closed during the TLS handshake')))
    })
    this.socket = secure as unknown as net.Socket
    this.#it = secure.iterator({ destroyOnReturn: false })[Symbol.asyncIterator]()
  }


  get host(): string { return this.socket.remoteAddress ?? 'localhost' }
  /** the client switched to TLS during the handshake */
  tls = false
  get #serverCaps(): number { return SERVER_CAPS | (this.limits.tls ? CLIENT.SSL : 0) }

  /** SET autocommit: turning it on commits an open transaction (as MySQL does). */
  async setAutocommit(on: boolean): Promise<void> {
    if (on && !this.autocommit && this.session.status !== 'I') await this.#run('COMMIT', [])
    this.autocommit = on
  }
  get started(): boolean { return this.#started }

  // ---------------------------------------------------------------- I/O

  /** The next packet's payload (continuations joined) and sequence id, or null at end of stream. */
  async #packet(): Promise<{ seq: number; payload: Buffer } | null> {
    const parts: Buffer[] = []
    let total = 0
    let seq = 0
    for (;;) {
      while (this.#buf.length < 4) if (!(await this.#fill())) { if (parts.length || this.#buf.length) throw new ProtocolError('connection ended inside a packet'); return null }
      const len = this.#buf.readUIntLE(0, 3)
      seq = this.#buf[3]
      total += len
      if (total > this.limits.packetBytesMax) throw new MysqlServerError(1153, '08S01', `Got a packet bigger than 'max_allowed_packet' bytes (${this.limits.packetBytesMax})`)
      while (this.#buf.length < 4 + len) if (!(await this.#fill())) throw new ProtocolError('connection ended inside a packet')
      parts.push(this.#buf.subarray(4, 4 + len))
      this.#buf = this.#buf.subarray(4 + len)
      if (len < 0xffffff) break
    }
    return { seq, payload: parts.length === 1 ? parts[0] : Buffer.concat(parts) }
  }

  async #fill(): Promise<boolean> {
    const r = await this.#it.next()
    if (r.done || this.#closed) return false
    const chunk = r.value as Buffer
    this.#buf = this.#buf.length ? Buffer.concat([this.#buf, chunk]) : chunk
    return true
  }

  /** Queues one packet (split at 16 MiB) with the next sequence id. */
  #send(payload: Buffer): void {
    let off = 0
    for (;;) {
      const n = Math.min(0xffffff, payload.length - off)
      const h = Buffer.allocUnsafe(4)
      h.writeUIntLE(n, 0, 3)
      h[3] = this.#seq
      this.#seq = (this.#seq + 1) & 0xff
      this.#out.push(h, payload.subarray(off, off + n))
      this.#outBytes += 4 + n
      off += n
      if (n < 0xffffff) break
    }
  }

  async #flush(): Promise<void> {
    if (this.#out.length === 0) return
    const b = Buffer.concat(this.#out)
    this.#out = []
    this.#outBytes = 0
    if (this.#closed || this.socket.destroyed) return
    if (!this.socket.write(b)) {
      await new Promise<void>(resolve => {
        const done = () => { this.socket.off('drain', done); this.socket.off('close', done); resolve() }
        this.socket.on('drain', done)
        this.socket.on('close', done)
      })
    }
  }

  get #status(): number {
    return (this.session.status !== 'I' ? STATUS.IN_TRANS : 0) | (this.autocommit ? STATUS.AUTOCOMMIT : 0)
  }

  #sendError(err: unknown): void {
    const e = mysqlErrorOf(err)
    this.#send(errPacket(e.errno, e.sqlstate, e.message))
  }

  #armIdle(): void {
    if (this.#idleTimer) clearTimeout(this.#idleTimer)
    if (!this.limits.idleTimeoutMs) return
    this.#idleTimer = setTimeout(() => {
      if (this.#busy || this.#closed) return
      this.log(`mysql: connection ${this.connectionId} idle for ${this.limits.idleTimeoutMs} ms: closed`)
      this.#seq = 0
      this.#send(errPacket(4031, 'HY000', `The client was disconnected by the server because of inactivity (idle timeout ${this.limits.idleTimeoutMs} ms)`))
      void this.#flush().finally(() => this.close())
    }, this.limits.idleTimeoutMs)
    this.#idleTimer.unref()
  }

  close(): void {
    if (this.#closed) return
    this.#closed = true
    if (this.#idleTimer) clearTimeout(this.#idleTimer)
    this.socket.end()
    setTimeout(() => this.socket.destroy(), 1000).unref()
    void this.session.close().catch(() => {})
  }

  /** Server shutdown: tells the client (error 1053), then closes. */
  terminate(): void {
    if (this.#closed) return
    if (this.#started && !this.#busy) {
      this.#seq = 0
      this.#send(errPacket(1053, '08S01', 'Server shutdown in progress'))
      void this.#flush().catch(() => {}).finally(() => this.close())
    } else this.close()
  }

  // ---------------------------------------------------------------- handshake

  async run(): Promise<void> {
    try {
      if (!(await this.#handshake())) return
      this.#started = true
      for (;;) {
        this.#armIdle()
        const p = await this.#packet()
        if (this.#idleTimer) clearTimeout(this.#idleTimer)
        if (!p || this.#closed) break
        this.#seq = (p.seq + 1) & 0xff
        if (p.payload.length === 0) throw new ProtocolError('empty command packet')
        const cmd = p.payload[0]
        if (cmd === COM.QUIT) break
        // a statement waits its turn while others wait for a lock it does not hold (../turns.ts)
        if ((cmd === COM.QUERY || cmd === COM.STMT_EXECUTE) && this.session.behindLockHolders) {
          await statementTurns.take()
          if (this.#closed) break
        }
        const r = new PacketReader(p.payload)
        r.pos = 1
        this.#busy = true
        try {
          await this.#command(cmd, r)
        } finally {
          this.#busy = false
        }
        await this.#flush()
      }
    } catch (err) {
      if (!this.#closed) {
        if (err instanceof MysqlServerError) this.#sendError(err)
        else if (err instanceof ProtocolError) this.#send(errPacket(1835, '08S01', `Malformed communication packet: ${err.message}`))
        else this.#send(errPacket(2013, 'HY000', `connection error: ${(err as Error)?.message ?? String(err)}`))
        this.log(`mysql: connection ${this.connectionId} closed: ${(err as Error)?.message ?? String(err)}`)
        await Promise.race([this.#flush().catch(() => {}), new Promise(r => setTimeout(r, 1000).unref())])
      }
    } finally {
      this.close()
    }
  }

  /** Greeting, HandshakeResponse41, authentication. Returns whether the client is in. */
  async #handshake(): Promise<boolean> {
    const timer = setTimeout(() => { if (!this.#started) { this.log(`mysql: handshake from ${this.host} not finished in ${this.limits.authTimeoutMs} ms: closed`); this.socket.destroy() } }, this.limits.authTimeoutMs)
    timer.unref()
    try {
      // scramble: 20 printable bytes (no NUL: some clients read it as a C string)
      const scramble = Buffer.from(randomBytes(20).map(b => 0x21 + (b % 94)))
      this.#seq = 0
      this.#send(new PacketWriter()
        .u8(10).cstring(SERVER_VERSION).u32(this.connectionId).bytes(scramble.subarray(0, 8)).u8(0)
        .u16(this.#serverCaps & 0xffff).u8(45).u16(this.#status).u16(this.#serverCaps >>> 16)
        .u8(21).zeros(10).bytes(scramble.subarray(8)).u8(0).cstring(NATIVE).take())
      await this.#flush()
      let p = await this.#packet()
      if (!p) return false
      // An SSL request: the handshake response's first 32 bytes alone, then TLS, then the whole response.
      if (p.payload.length === 32 && (p.payload.readUInt32LE(0) & CLIENT.SSL)) {
        if (!this.limits.tls) throw new MysqlServerError(1043, '08S01', 'this server does not offer TLS (connect without SSL)')
        await this.#startTls(this.limits.tls)
        this.tls = true
        p = await this.#packet()
        if (!p) return false
      }
      this.#seq = (p.seq + 1) & 0xff
      const r = new PacketReader(p.payload)
      const clientCaps = r.u32()
      if (!(clientCaps & CLIENT.PROTOCOL_41)) throw new MysqlServerError(1251, '08004', 'Client does not support authentication protocol requested by server; consider upgrading MySQL client (protocol 4.1 needed)')
      r.u32() // max packet size
      r.u8() // character set
      r.bytes(23)
      if (r.remaining === 0 && (clientCaps & CLIENT.SSL)) throw new MysqlServerError(1043, '08S01', 'this server does not offer TLS (connect without SSL)')
      this.#caps = clientCaps & this.#serverCaps
      this.user = r.cstring()
      let token: Buffer
      if (clientCaps & CLIENT.PLUGIN_AUTH_LENENC_CLIENT_DATA) token = r.lenencBytes()
      else if (clientCaps & CLIENT.SECURE_CONNECTION) token = r.bytes(r.u8())
      else token = Buffer.from(r.cstring())
      if ((clientCaps & CLIENT.CONNECT_WITH_DB) && r.remaining > 0) this.database = r.cstring()
      let plugin = ''
      if ((clientCaps & CLIENT.PLUGIN_AUTH) && r.remaining > 0) plugin = r.cstring()
      // connection attributes (CLIENT_CONNECT_ATTRS) are not used

      if (this.credentials) {
        const deny = (usedPassword: boolean) => {
          this.log(`mysql: access denied for user '${this.user}' from ${this.host}`)
          this.#send(errPacket(1045, '28000', `Access denied for user '${this.user}'@'${this.host}' (using password: ${usedPassword ? 'YES' : 'NO'})`))
          return false
        }
        if (!this.credentials.has(this.user)) { deny(token.length > 0); await this.#flush(); return false }
        const stage2 = this.credentials.get(this.user)!
        if (stage2) {
          if (plugin && plugin !== NATIVE) {
            // the client answered for another plugin (caching_sha2_password): ask again with ours
            this.#send(new PacketWriter().u8(0xfe).cstring(NATIVE).bytes(scramble).u8(0).take())
            await this.#flush()
            const again = await this.#packet()
            if (!again) return false
            this.#seq = (again.seq + 1) & 0xff
            token = again.payload
          }
          if (!nativeVerify(stage2, scramble, token)) { deny(token.length > 0); await this.#flush(); return false }
        }
      }
      this.#send(okPacket(0, 0, this.#status))
      await this.#flush()
      return true
    } finally {
      clearTimeout(timer)
    }
  }

  // ---------------------------------------------------------------- commands

  async #command(cmd: number, r: PacketReader): Promise<void> {
    try {
      switch (cmd) {
        case COM.QUERY: return await this.#query(r.rest().toString('utf8'))
        case COM.STMT_PREPARE: return await this.#prepare(r.rest().toString('utf8'))
        case COM.STMT_EXECUTE: return await this.#execute(r)
        case COM.STMT_SEND_LONG_DATA: {
          const st = this.#stmts.get(r.u32())
          const i = r.u16()
          const data = Buffer.from(r.rest())
          if (st && i < st.nparams) {
            const list = st.longData.get(i) ?? []
            list.push(data)
            if (list.reduce((n, b) => n + b.length, 0) > this.limits.packetBytesMax) throw new MysqlServerError(1153, '08S01', `Parameter ${i} is bigger than 'max_allowed_packet' bytes (${this.limits.packetBytesMax})`)
            st.longData.set(i, list)
          }
          return // no answer
        }
        case COM.STMT_CLOSE: this.#stmts.delete(r.u32()); return // no answer
        case COM.STMT_RESET: {
          const id = r.u32()
          const st = this.#stmts.get(id)
          if (!st) throw new MysqlServerError(1243, 'HY000', `Unknown prepared statement handler (${id}) given to mysqld_stmt_reset`)
          st.longData.clear()
          this.#send(okPacket(0, 0, this.#status))
          return
        }
        case COM.INIT_DB: {
          this.database = r.rest().toString('utf8')
          this.#send(okPacket(0, 0, this.#status))
          return
        }
        case COM.PING: this.#send(okPacket(0, 0, this.#status)); return
        case COM.STATISTICS: {
          const up = Math.floor((Date.now() - this.#since) / 1000)
          this.#send(Buffer.from(`Uptime: ${up}  Threads: 1  Questions: ${this.#questions}  Slow queries: 0  Opens: ${this.engine.tables.size}  Open tables: ${this.engine.tables.size}`))
          return
        }
        case COM.SET_OPTION: {
          const opt = r.u16()
          if (opt === 0) this.#caps |= CLIENT.MULTI_STATEMENTS
          else if (opt === 1) this.#caps &= ~CLIENT.MULTI_STATEMENTS
          else throw new MysqlServerError(1047, '08S01', `Unknown COM_SET_OPTION option ${opt}`)
          this.#send(eofPacket(this.#status))
          return
        }
        case COM.RESET_CONNECTION: {
          if (this.session.status !== 'I') await this.session.sql('ROLLBACK')
          this.#stmts.clear()
          this.userVars.clear()
          this.autocommit = true
          for (const [k, v] of defaultVariables(this.limits.packetBytesMax)) this.vars.set(k, v)
          this.#send(okPacket(0, 0, this.#status))
          return
        }
        case COM.FIELD_LIST: case COM.PROCESS_KILL: case COM.STMT_FETCH: case COM.CHANGE_USER:
          throw new MysqlServerError(1235, '42000', `not supported: command 0x${cmd.toString(16)} (${cmd === COM.STMT_FETCH ? 'cursors' : cmd === COM.FIELD_LIST ? 'COM_FIELD_LIST: use SHOW COLUMNS' : cmd === COM.PROCESS_KILL ? 'KILL' : 'COM_CHANGE_USER: open a new connection'})`)
        default:
          throw new MysqlServerError(1047, '08S01', `Unknown command 0x${cmd.toString(16)}`)
      }
    } catch (err) {
      if (err instanceof ProtocolError || (err instanceof MysqlServerError && err.errno === 1153)) throw err
      this.#sendError(err)
    }
  }

  async #query(text: string): Promise<void> {
    const statements = splitStatements(text, 'mysql')
    if (statements.length === 0) throw new MysqlServerError(1065, '42000', 'Query was empty')
    if (statements.length > 1 && !(this.#caps & CLIENT.MULTI_STATEMENTS)) throw new MysqlServerError(1064, '42000', 'You have an error in your SQL syntax: several statements in one query need CLIENT_MULTI_STATEMENTS (mysql2: multipleStatements: true)')
    for (let i = 0; i < statements.length; i++) {
      this.#questions++
      const res = await this.#run(statements[i], [])
      await this.#result(res, false, i < statements.length - 1)
    }
  }

  /** Runs one statement: answered from the session state, or by the SQL session. */
  async #run(sql: string, params: unknown[]): Promise<Result> {
    const a = await answer(sql, this)
    if (a) return a
    const word = firstWord(sql)
    const s = this.session
    const isBegin = word === 'begin' || (word === 'start' && /^start\s+transaction\b/i.test(stripStatement(sql)))
    // MySQL commits an open transaction before DDL and before a new BEGIN
    if ((DDL.has(word) || isBegin) && s.status === 'T') await s.sql('COMMIT')
    if (word === 'commit' && s.status === 'E') {
      await s.sql('ROLLBACK')
      throw new MysqlServerError(1180, '40000', 'the transaction was rolled back, not committed: a statement in it failed (hexad aborts a transaction at its first error; ROLLBACK and retry)')
    }
    if (!this.autocommit && s.status === 'I' && DML.has(word)) await s.sql('BEGIN')
    let r
    try {
      r = await s.sql<unknown[]>(sql, params, { rowMode: 'array' })
    } catch (err) {
      // a deadlock or serialization failure ends the transaction (MySQL rolls it back: retry it whole)
      if ((err as { sqlstate?: string }).sqlstate === '40001' && s.status === 'E') await s.sql('ROLLBACK')
      throw err
    }
    const cols: Col[] = r.fields.map(f => ({ name: f.name, type: f.type }))
    const affected = r.command === 'INSERT' || r.command === 'UPDATE' || r.command === 'DELETE' ? r.rowCount : 0
    // MySQL keeps the connection's last insert id until an INSERT generates a new one.
    if (r.insertId !== undefined) this.lastInsertId = r.insertId
    return { cols, rows: r.rows, affected, info: r.command === 'UPDATE' ? `Rows matched: ${r.rowCount}  Changed: ${r.rowCount}  Warnings: 0` : undefined, insertId: r.insertId }
  }

  /** A result set (text or binary rows) or an OK packet. */
  async #result(res: Result, binary: boolean, more: boolean): Promise<void> {
    const status = this.#status | (more ? STATUS.MORE_RESULTS_EXISTS : 0)
    if (res.cols.length === 0) {
      this.#send(okPacket(res.affected, res.insertId ?? 0, status, 0, res.info ?? ''))
      return
    }
    const types = columnTypes(res.cols, res.rows)
    const w = new PacketWriter()
    this.#send(w.lenenc(res.cols.length).take())
    for (let i = 0; i < res.cols.length; i++) { columnDefinition(w, res.cols[i], types[i], this.database); this.#send(w.take()) }
    this.#send(eofPacket(this.#status))
    for (const row of res.rows) {
      if (binary) binaryRow(w, row, types)
      else for (const v of row) { const b = textValue(v); if (b === null) w.u8(0xfb); else w.lenencBytes(b) }
      this.#send(w.take())
      if (this.#outBytes >= FLUSH_BYTES) await this.#flush()
    }
    this.#send(eofPacket(status))
  }

  // ---------------------------------------------------------------- prepared statements

  async #prepare(sql: string): Promise<void> {
    this.#questions++
    if (this.#stmts.size >= this.limits.statementsMax) throw new MysqlServerError(1461, '42000', `Can't create more than max_prepared_stmt_count statements (current value: ${this.limits.statementsMax})`)
    if (splitStatements(sql, 'mysql').length > 1) throw new MysqlServerError(1064, '42000', 'You have an error in your SQL syntax: a prepared statement holds one statement')
    let q = 0, dollar = 0
    for (const t of tokenize(sql, 'mysql')) if (t.t === 'param') { if ((t.v as number) < 0) q++; else dollar = Math.max(dollar, (t.v as number) + 1) }
    const nparams = q + dollar
    const cols = await this.#describe(sql)
    const id = ++this.#nextStmt
    this.#stmts.set(id, { id, sql, nparams, types: null, longData: new Map() })
    this.#send(new PacketWriter().u8(0).u32(id).u16(cols.length).u16(nparams).u8(0).u16(0).take())
    const w = new PacketWriter()
    if (nparams > 0) {
      for (let i = 0; i < nparams; i++) { paramDefinition(w); this.#send(w.take()) }
      this.#send(eofPacket(this.#status))
    }
    if (cols.length > 0) {
      const types = columnTypes(cols, [])
      for (let i = 0; i < cols.length; i++) { columnDefinition(w, cols[i], types[i], this.database); this.#send(w.take()) }
      this.#send(eofPacket(this.#status))
    }
  }

  /** The columns a statement will return, planned without running it (errors surface here, as in MySQL). */
  async #describe(sql: string): Promise<Col[]> {
    const word = firstWord(sql)
    if (word === 'select' || word === 'show' || word === 'describe' || word === 'desc') {
      const a = await answer(sql, this) // read-only answers: safe to compute now
      if (a) return a.cols
    }
    if (!DML.has(word)) {
      // other statements run later as they are; what node-sql-parser would parse is checked for syntax now
      if (!NOT_PARSED.has(word)) { await this.engine.ready(); this.engine.entry(stripStatement(sql), 'mysql') }
      return []
    }
    const body = stripStatement(sql).replace(/\s+for\s+(update|share)(\s+nowait)?\s*$/i, '')
    await this.engine.ready()
    const { e } = this.engine.entry(body, 'mysql')
    const p = this.engine.prepare(e, 'mysql') as { kind: string; plan?: { fields: Array<{ name: string; type: { kind: string; name: string } }> }; returning?: { fields: Array<{ name: string; type: { kind: string; name: string } }> } | null }
    const fields = p.kind === 'select' ? p.plan?.fields : p.returning?.fields
    return (fields ?? []).map(f => ({ name: f.name, type: typeName(f.type) }))
  }

  async #execute(r: PacketReader): Promise<void> {
    const id = r.u32()
    r.u8() // cursor flags: no cursors, the result comes at once
    r.u32() // iteration count (always 1)
    const st = this.#stmts.get(id)
    if (!st) throw new MysqlServerError(1243, 'HY000', `Unknown prepared statement handler (${id}) given to mysqld_stmt_execute`)
    this.#questions++
    const params: unknown[] = []
    if (st.nparams > 0) {
      const nulls = r.bytes((st.nparams + 7) >> 3)
      if (r.u8() === 1) {
        st.types = []
        for (let i = 0; i < st.nparams; i++) { const type = r.u8(); st.types.push({ type, unsigned: (r.u8() & 0x80) !== 0 }) }
      }
      if (!st.types) throw new ProtocolError('COM_STMT_EXECUTE without parameter types (new-params-bound flag 0 on the first execute)')
      for (let i = 0; i < st.nparams; i++) {
        const long = st.longData.get(i)
        if (nulls[i >> 3] & (1 << (i & 7))) params.push(null)
        else if (long) params.push(longDataParam(st.types[i].type, Buffer.concat(long)))
        else params.push(readParam(r, st.types[i].type, st.types[i].unsigned))
      }
    }
    st.longData.clear()
    const res = await this.#run(st.sql, params)
    await this.#result(res, true, false)
  }
}
