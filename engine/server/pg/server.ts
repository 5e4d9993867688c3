/**
 * The PostgreSQL endpoint: a TCP listener whose connections pg-gateway
 * starts (SSLRequest and TLS, StartupMessage, trust or SCRAM-SHA-256
 * against the configured users). Right after AuthenticationOk the
 * connection is detached from pg-gateway and served by PgConnection
 * (queries are ours).
 *
 * Limits: at most `maxConnections` clients (the next one gets FATAL 53300),
 * start-up must finish within `authTimeoutMs` and `startupBytesMax` bytes,
 * messages are at most `messageBytesMax`, an idle session ends after
 * `idleTimeoutMs`. CancelRequest (its own short connection) carries the
 * process id and secret of BackendKeyData.
 */
import { randomInt } from 'node:crypto'
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { createScramSha256Data, type ScramSha256Data } from 'pg-gateway'
import { fromDuplexStream } from 'pg-gateway/node'
import type { Database } from '../../compute/database.js'
import { toSource, type SessionSource } from '../source.js'
import { PgConnection } from './connection.js'
import { socketTransport, StartupDuplex, webTransport } from './socket.js'
import { SERVER_VERSION } from './catalog.js'
import { MessageWriter } from './wire.js'

export interface PgUser { name: string; password?: string }

export interface PgServerOptions {
  port?: number
  host?: string
  /**
   * A directory to listen in as well, on a Unix-domain socket named as
   * PostgreSQL names it (`DIR/.s.PGSQL.PORT`), so `psql -h DIR -p PORT` and
   * libpq's PGHOST=DIR reach it.
   */
  socketDir?: string
  /** 'scram-sha-256' (default when users have passwords) or 'trust' (no password; local development) */
  auth?: 'trust' | 'scram-sha-256'
  /** who may connect; with trust and no list, anyone */
  users?: PgUser[]
  /** PEM key and certificate: clients may (and with `tlsRequired` must) use TLS */
  tls?: { key: string | Buffer; cert: string | Buffer; ca?: string | Buffer }
  maxConnections?: number
  idleTimeoutMs?: number
  authTimeoutMs?: number
  messageBytesMax?: number
  statementsMax?: number
  /** called for connection-level events worth a log line */
  log?: (line: string) => void
}

const CANCEL_CODE = 80877102
const GSSENC_CODE = 80877104
const SSL_CODE = 80877103
const PROTOCOL_3_0 = 196608

export interface PgServer {
  readonly port: number
  readonly host: string
  /** the Unix-domain socket's file when `socketDir` was given, else null */
  readonly socketPath: string | null
  readonly connections: number
  /** Ends every open connection (the listener stays): a backtrack does this before it rewinds. */
  dropConnections(): void
  close(): Promise<void>
}

function fatal(code: string, message: string): Buffer {
  return new MessageWriter().error({ severity: 'FATAL', code, message }).take()
}

export async function startPgServer(target: Database | SessionSource, options: PgServerOptions = {}): Promise<PgServer> {
  const source = toSource(target)
  const {
    port = 5432, host = '127.0.0.1', users, tls,
    maxConnections = 100, idleTimeoutMs = 0, authTimeoutMs = 10_000, messageBytesMax = 64 << 20, statementsMax = 1000,
    log = () => {},
  } = options
  const auth = options.auth ?? (users?.some(u => u.password !== undefined) ? 'scram-sha-256' : 'trust')
  if (auth !== 'trust' && auth !== 'scram-sha-256') throw new TypeError(`pg auth must be 'trust' or 'scram-sha-256', got ${JSON.stringify(auth)}`)
  if (auth === 'scram-sha-256' && !users?.length) throw new TypeError('pg auth scram-sha-256 needs users with passwords')
  const scram = new Map<string, ScramSha256Data>()
  for (const u of users ?? []) {
    if (auth === 'scram-sha-256') {
      if (typeof u.password !== 'string') throw new TypeError(`pg user ${u.name} has no password (needed for scram-sha-256)`)
      scram.set(u.name, await createScramSha256Data(u.password))
    }
  }
  // an unknown user is asked for a password all the same, checked against a secret nobody knows
  const nobody = await createScramSha256Data(randomInt(2 ** 47).toString(36) + Date.now())
  const live = new Map<number, PgConnection>()
  const sockets = new Set<net.Socket>()

  const onConnection = (socket: net.Socket) => {
    socket.setNoDelay(true) // a no-op on a Unix-domain socket
    socket.on('error', () => {})
    if (sockets.size >= maxConnections) {
      socket.end(fatal('53300', `sorry, too many clients already (limit ${maxConnections})`))
      setTimeout(() => socket.destroy(), 1000).unref()
      return
    }
    sockets.add(socket)
    socket.once('close', () => sockets.delete(socket))
    let started = false
    let received = 0
    let refused = false
    let conn: Awaited<ReturnType<typeof fromDuplexStream>> | undefined
    const startup = new StartupDuplex(socket)
    /** A FATAL error for bad start-up bytes, then the socket closes (the listener goes on). */
    const refuse = (code: string, message: string): undefined => {
      if (refused) return undefined
      refused = true
      log(`pg: start-up from ${socket.remoteAddress} refused: ${message}`)
      void conn?.detach()
      socket.end(fatal(code, message))
      setTimeout(() => socket.destroy(), 1000).unref()
      return undefined
    }
    const countStartup = (b: Buffer) => {
      // the first packet's length, as PostgreSQL checks it (an HTTP request, say, would claim ~1.2 GB)
      if (received === 0 && b.length >= 4) {
        const len = b.readInt32BE(0)
        if (len < 8 || len > 10_000) { received += b.length; refuse('08P01', 'invalid length of startup packet'); return }
      }
      received += b.length
      if (received > 64 * 1024) { log(`pg: start-up larger than 64 KiB from ${socket.remoteAddress}: closed`); socket.destroy() }
    }
    socket.on('data', countStartup)
    const authTimer = setTimeout(() => { if (!started) socket.destroy() }, authTimeoutMs)
    authTimer.unref()

    const handOver = async (user: string, params: Record<string, string>) => {
      const duplex = await conn!.detach()
      // pg-gateway lets go of the streams after its current step
      for (let i = 0; i < 1000 && (duplex.readable.locked || duplex.writable.locked); i++) await new Promise(r => setImmediate(r))
      clearTimeout(authTimer)
      socket.off('data', countStartup)
      let pid: number
      do pid = randomInt(1, 2 ** 31 - 1); while (live.has(pid))
      // plain: served on the socket from here on; TLS: through the streams pg-gateway's upgrade made
      const io = duplex === startup ? socketTransport(socket, startup.detach()) : webTransport(duplex, socket)
      let opened: ReturnType<SessionSource['open']>
      try { opened = source.open('postgres') } catch (err) { socket.end(fatal('57P03', `cannot open a session: ${(err as Error).message}`)); return }
      const c = new PgConnection(io, opened.session, opened.engine, user, params.database || user, pid, randomInt(0, 2 ** 31 - 1),
        { messageBytesMax, idleTimeoutMs, statementsMax }, params.application_name ?? '')
      live.set(pid, c)
      started = true
      socket.once('close', () => { live.delete(pid); c.close(); opened.release() })
      await c.run()
      live.delete(pid)
    }
    fromDuplexStream(startup, {
      auth: auth === 'trust'
        ? { method: 'trust' }
        : { method: 'scram-sha-256', getScramSha256Data: ({ username }) => scram.get(username) ?? nobody },
      tls: tls ? { key: toArrayBuffer(tls.key), cert: toArrayBuffer(tls.cert), ...(tls.ca ? { ca: toArrayBuffer(tls.ca) } : {}) } : undefined,
      serverVersion: SERVER_VERSION,
      onMessage(data, state) {
        if (state.hasStarted) return undefined
        // bad bytes before start-up are answered here, as PostgreSQL does (pg-gateway would only close the socket)
        if (data.length < 8) return refuse('08P01', 'invalid length of startup packet')
        const v = new DataView(data.buffer, data.byteOffset, data.byteLength)
        const code = v.getInt32(4)
        if (code === GSSENC_CODE && data.length === 8) return new Uint8Array([0x4e]) // 'N': no GSSAPI encryption
        if (code === CANCEL_CODE && data.length === 16) {
          void conn?.detach()
          live.get(v.getInt32(8))?.cancelIfSecret(v.getInt32(12))
          socket.destroy()
          return undefined
        }
        if (code === SSL_CODE && data.length === 8) return undefined
        if (code === PROTOCOL_3_0) {
          if (v.getInt32(0) !== data.length) return refuse('08P01', 'invalid length of startup packet')
          return undefined
        }
        if (code === CANCEL_CODE || code === SSL_CODE || code === GSSENC_CODE) return refuse('08P01', 'invalid length of startup packet')
        return refuse('0A000', `unsupported frontend protocol ${code >>> 16}.${code & 0xffff}: server supports 3.0 to 3.0`)
      },
      async onStartup(state) {
        const user = state.clientParams?.user ?? ''
        if (auth === 'trust' && users && !users.some(u => u.name === user)) {
          await conn!.detach()
          socket.end(fatal('28000', `role "${user}" is not permitted to log in`))
        }
      },
      async onAuthenticated(state) {
        const { user, ...params } = state.clientParams ?? { user: '' }
        handOver(user, params as Record<string, string>).catch(err => { log(`pg: connection error: ${(err as Error).message}`); socket.destroy() })
      },
    }).then(c => { conn = c }, err => { log(`pg: start-up failed: ${(err as Error).message}`); socket.destroy() })
  }
  const server = net.createServer(onConnection)
  await listen(server, { port, host })
  server.on('error', err => log(`pg: listener error: ${err.message}`))
  const addr = server.address() as net.AddressInfo
  let unix: net.Server | null = null
  let socketPath: string | null = null
  if (options.socketDir !== undefined) {
    socketPath = path.join(options.socketDir, `.s.PGSQL.${addr.port}`)
    unix = net.createServer(onConnection)
    try {
      await listenUnix(unix, socketPath)
    } catch (err) {
      await new Promise(resolve => server.close(resolve))
      throw err
    }
    unix.on('error', err => log(`pg: listener error: ${err.message}`))
  }
  let closing: Promise<void> | null = null
  const dropConnections = () => {
    for (const c of live.values()) c.terminate()
    for (const s of sockets) s.destroy()
  }
  return {
    port: addr.port,
    host,
    socketPath,
    get connections() { return sockets.size },
    dropConnections,
    close() {
      if (!closing) {
        closing = Promise.all([server, unix].map(l => l && new Promise(resolve => l.close(resolve)))).then(() => {})
        dropConnections()
      }
      return closing
    },
  }
}

function listen(server: net.Server, where: net.ListenOptions): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(where, () => { server.off('error', reject); resolve() })
  })
}

/**
 * Listens on a Unix-domain socket at `file`. A socket file left by a process
 * that is gone (nobody answers on it) is removed first, as PostgreSQL does;
 * one that answers is in use and refused.
 */
async function listenUnix(server: net.Server, file: string): Promise<void> {
  try {
    await listen(server, { path: file })
    return
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw new Error(`pg: cannot listen on ${file}: ${(err as Error).message}`)
  }
  const answered = await new Promise<boolean>(resolve => {
    const probe = net.connect(file)
    probe.once('connect', () => { probe.destroy(); resolve(true) })
    probe.once('error', () => resolve(false))
  })
  if (answered) throw new Error(`pg: ${file} is in use by another server`)
  fs.rmSync(file, { force: true })
  await listen(server, { path: file })
}

function toArrayBuffer(x: string | Buffer): ArrayBuffer {
  const b = Buffer.from(x)
  return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer
}
