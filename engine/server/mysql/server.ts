/**
 * The MySQL endpoint: a TCP listener whose connections speak the MySQL
 * client/server protocol (connection.ts) on their own SQL session in the
 * MySQL dialect.
 *
 * Authentication: mysql_native_password against `users`; a user listed
 * without a password logs in with any; no `users` at all trusts every
 * login (local development), as the PostgreSQL endpoint's trust does.
 *
 * Limits: at most `maxConnections` clients (the next one gets error 1040
 * instead of the greeting), the handshake must finish within
 * `authTimeoutMs`, packets are at most `packetBytesMax` bytes, an idle
 * session ends after `idleTimeoutMs` (error 4031), a connection holds at
 * most `statementsMax` prepared statements.
 */
import net from 'node:net'
import tls from 'node:tls'
import type { Database } from '../../compute/database.js'
import { toSource, type SessionSource } from '../source.js'
import { MysqlConnection, nativeStage2, type Credentials } from './connection.js'
import { errPacket } from './packets.js'

export interface MysqlUser { name: string; password?: string }

export interface MysqlServerOptions {
  port?: number
  host?: string
  /** who may connect (mysql_native_password); without a list, anyone */
  users?: MysqlUser[]
  maxConnections?: number
  idleTimeoutMs?: number
  authTimeoutMs?: number
  /** largest packet a client may send (max_allowed_packet; default 64 MiB) */
  packetBytesMax?: number
  statementsMax?: number
  /** PEM key and certificate: clients may switch to TLS during the handshake (CLIENT_SSL) */
  tls?: { key: string | Buffer; cert: string | Buffer; ca?: string | Buffer }
  /** called for connection-level events worth a log line */
  log?: (line: string) => void
}

export interface MysqlServer {
  readonly port: number
  readonly host: string
  readonly connections: number
  /** Ends every open connection (the listener stays): a backtrack does this before it rewinds. */
  dropConnections(): void
  close(): Promise<void>
}

export async function startMysqlServer(target: Database | SessionSource, options: MysqlServerOptions = {}): Promise<MysqlServer> {
  const source = toSource(target)
  const {
    port = 3306, host = '127.0.0.1', users,
    maxConnections = 100, idleTimeoutMs = 0, authTimeoutMs = 10_000, packetBytesMax = 64 << 20, statementsMax = 1000,
    log = () => {}, tls: tlsOptions,
  } = options
  let secureContext: tls.SecureContext | undefined
  if (tlsOptions) {
    try {
      secureContext = tls.createSecureContext({ key: tlsOptions.key, cert: tlsOptions.cert, ...(tlsOptions.ca ? { ca: tlsOptions.ca } : {}) })
    } catch (err) {
      throw new TypeError(`mysql tls: the key and certificate do not load: ${(err as Error).message}`)
    }
  }
  let credentials: Credentials = null
  if (users) {
    if (!Array.isArray(users)) throw new TypeError('mysql users must be an array of { name, password? }')
    credentials = new Map()
    for (const u of users) {
      if (!u || typeof u.name !== 'string' || !u.name) throw new TypeError('a mysql user needs a name')
      if (u.password !== undefined && typeof u.password !== 'string') throw new TypeError(`mysql user ${u.name}: password must be a string`)
      credentials.set(u.name, u.password === undefined ? null : nativeStage2(u.password))
    }
  }
  const live = new Set<MysqlConnection>()
  const sockets = new Set<net.Socket>()
  let nextId = 0

  const server = net.createServer(socket => {
    socket.setNoDelay(true)
    socket.on('error', () => {})
    if (sockets.size >= maxConnections) {
      // instead of the greeting: ER_CON_COUNT_ERROR, packet sequence 0
      const p = errPacket(1040, '08004', `Too many connections (limit ${maxConnections})`)
      const h = Buffer.alloc(4)
      h.writeUIntLE(p.length, 0, 3)
      socket.end(Buffer.concat([h, p]))
      setTimeout(() => socket.destroy(), 1000).unref()
      return
    }
    sockets.add(socket)
    nextId = (nextId % 0x7fffffff) + 1
    let opened: ReturnType<SessionSource['open']>
    try { opened = source.open('mysql') } catch (err) { log(`mysql: cannot open a session: ${(err as Error).message}`); socket.destroy(); sockets.delete(socket); return }
    const c = new MysqlConnection(socket, opened.session, opened.engine, nextId, credentials,
      { packetBytesMax, idleTimeoutMs, statementsMax, authTimeoutMs, ...(secureContext ? { tls: secureContext } : {}) }, log)
    live.add(c)
    socket.once('close', () => { sockets.delete(socket); live.delete(c); c.close(); opened.release() })
    c.run().catch(err => { log(`mysql: connection error: ${(err as Error).message}`); socket.destroy() })
  })

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => { server.off('error', reject); resolve() })
  })
  server.on('error', err => log(`mysql: listener error: ${err.message}`))
  const addr = server.address() as net.AddressInfo
  let closing: Promise<void> | null = null
  return {
    port: addr.port,
    host,
    get connections() { return sockets.size },
    dropConnections() {
      for (const c of live) c.terminate()
      for (const s of sockets) s.destroy()
    },
    close() {
      closing ??= new Promise<void>(resolve => {
        server.close(() => resolve())
        for (const c of live) c.terminate()
        setTimeout(() => { for (const s of sockets) s.destroy() }, 200).unref()
      })
      return closing
    },
  }
}
