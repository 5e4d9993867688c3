/**
 * A bare MySQL client for tests that need exact control of the packets
 * (malformed input, a packet over the limit): it frames packets, reads the
 * server's packets, and logs in with no password (a server without a user list).
 */
import net from 'node:net'

export interface ServerPacket { seq: number; payload: Buffer }

export class RawMysql {
  readonly socket: net.Socket
  #buf = Buffer.alloc(0)
  #queue: ServerPacket[] = []
  #waiters: Array<() => void> = []
  closed = false

  private constructor(socket: net.Socket) {
    this.socket = socket
    socket.on('data', d => {
      this.#buf = Buffer.concat([this.#buf, d])
      while (this.#buf.length >= 4) {
        const len = this.#buf.readUIntLE(0, 3)
        if (this.#buf.length < 4 + len) break
        this.#queue.push({ seq: this.#buf[3], payload: this.#buf.subarray(4, 4 + len) })
        this.#buf = this.#buf.subarray(4 + len)
      }
      this.#wake()
    })
    socket.on('close', () => { this.closed = true; this.#wake() })
    socket.on('error', () => {})
  }

  #wake(): void { const w = this.#waiters; this.#waiters = []; for (const f of w) f() }

  /** The next packet from the server, or null once the connection is closed. */
  async next(timeoutMs = 5000): Promise<ServerPacket | null> {
    const deadline = Date.now() + timeoutMs
    while (this.#queue.length === 0) {
      if (this.closed) return null
      if (Date.now() > deadline) throw new Error('no packet from the server in time')
      await new Promise<void>(resolve => { this.#waiters.push(resolve); setTimeout(resolve, 50) })
    }
    return this.#queue.shift()!
  }

  send(seq: number, payload: Buffer): void {
    const h = Buffer.alloc(4)
    h.writeUIntLE(payload.length, 0, 3)
    h[3] = seq
    this.socket.write(Buffer.concat([h, payload]))
  }

  /** Connects; with `login`, answers the greeting as user `user` with an empty password and expects OK. */
  static async connect(port: number, login = true, user = 'raw'): Promise<{ c: RawMysql; greeting: ServerPacket }> {
    const socket = net.connect(port, '127.0.0.1')
    await new Promise<void>((resolve, reject) => { socket.once('connect', resolve); socket.once('error', reject) })
    socket.setNoDelay(true)
    const c = new RawMysql(socket)
    const greeting = await c.next()
    if (!greeting) throw new Error('closed before the greeting')
    if (login) {
      // HandshakeResponse41: PROTOCOL_41 | SECURE_CONNECTION | PLUGIN_AUTH
      const caps = 0x200 | 0x8000 | 0x80000
      const head = Buffer.alloc(32)
      head.writeUInt32LE(caps, 0)
      head.writeUInt32LE(1 << 24, 4)
      head[8] = 45
      c.send(1, Buffer.concat([head, Buffer.from(user + '\0'), Buffer.from([0]), Buffer.from('mysql_native_password\0')]))
      const ok = await c.next()
      if (!ok || ok.payload[0] !== 0x00) throw new Error(`login failed: ${ok?.payload.toString('latin1')}`)
    }
    return { c, greeting }
  }

  /** Reads packets until the connection closes; returns them. */
  async closedBy(timeoutMs = 5000): Promise<ServerPacket[]> {
    const got: ServerPacket[] = []
    for (;;) {
      const p = await this.next(timeoutMs)
      if (!p) return got
      got.push(p)
    }
  }

  end(): void { this.socket.end() }
}

/** The error number and SQLSTATE of an ERR packet (0xff). */
export function mysqlError(p: ServerPacket | undefined | null): { errno: number; sqlstate: string; message: string } | null {
  if (!p || p.payload[0] !== 0xff) return null
  return { errno: p.payload.readUInt16LE(1), sqlstate: p.payload.toString('latin1', 4, 9), message: p.payload.toString('utf8', 9) }
}
