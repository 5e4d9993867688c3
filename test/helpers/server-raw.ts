/**
 * A bare PostgreSQL frontend for tests that need exact control of the
 * messages (row-limited Execute, malformed input, cancel): it frames
 * messages, reads backend messages and waits for a given type.
 */
import net from 'node:net'

export interface BackendMessage { type: string; body: Buffer }

export class RawPg {
  readonly socket: net.Socket
  #buf = Buffer.alloc(0)
  #queue: BackendMessage[] = []
  #waiters: Array<() => void> = []
  closed = false

  private constructor(socket: net.Socket) {
    this.socket = socket
    socket.on('data', d => {
      this.#buf = Buffer.concat([this.#buf, d])
      while (this.#buf.length >= 5) {
        const len = this.#buf.readInt32BE(1)
        if (this.#buf.length < len + 1) break
        this.#queue.push({ type: String.fromCharCode(this.#buf[0]), body: this.#buf.subarray(5, len + 1) })
        this.#buf = this.#buf.subarray(len + 1)
      }
      this.#wake()
    })
    socket.on('close', () => { this.closed = true; this.#wake() })
    socket.on('error', () => {})
  }

  #wake(): void { const w = this.#waiters; this.#waiters = []; for (const f of w) f() }

  /**
   * Connects and completes a trust start-up; resolves after the first
   * ReadyForQuery. `eager` is written as soon as AuthenticationOk arrives,
   * without waiting for ReadyForQuery (as a client that sends ahead would).
   */
  static async connect(port: number, user = 'test', eager?: Buffer): Promise<RawPg> {
    const socket = net.connect(port, '127.0.0.1')
    await new Promise<void>((resolve, reject) => { socket.once('connect', resolve); socket.once('error', reject) })
    socket.setNoDelay(true)
    const c = new RawPg(socket)
    const params = Buffer.from(`user\0${user}\0database\0test\0\0`)
    const start = Buffer.alloc(8)
    start.writeInt32BE(8 + params.length, 0)
    start.writeInt32BE(196608, 4)
    socket.write(Buffer.concat([start, params]))
    if (eager) {
      await c.until('R')
      socket.write(eager)
    }
    await c.until('Z')
    return c
  }

  send(type: string, body: Buffer = Buffer.alloc(0)): void {
    const head = Buffer.alloc(5)
    head[0] = type.charCodeAt(0)
    head.writeInt32BE(body.length + 4, 1)
    this.socket.write(Buffer.concat([head, body]))
  }

  /** Messages up to and including the first of `type` (rejects if the connection closes first). */
  async until(type: string, timeoutMs = 10_000): Promise<BackendMessage[]> {
    const deadline = Date.now() + timeoutMs
    const out: BackendMessage[] = []
    for (;;) {
      while (this.#queue.length) {
        const m = this.#queue.shift()!
        out.push(m)
        if (m.type === type) return out
      }
      if (this.closed) throw Object.assign(new Error(`connection closed before '${type}'`), { messages: out })
      if (Date.now() > deadline) throw new Error(`no '${type}' within ${timeoutMs} ms`)
      await new Promise<void>(resolve => { this.#waiters.push(resolve); setTimeout(resolve, 100) })
    }
  }

  /** Waits until the server closes the connection; returns what it sent before. */
  async closedBy(): Promise<BackendMessage[]> {
    const out: BackendMessage[] = []
    for (let i = 0; i < 200 && !this.closed; i++) await new Promise<void>(resolve => { this.#waiters.push(resolve); setTimeout(resolve, 50) })
    out.push(...this.#queue.splice(0))
    return out
  }

  end(): void { this.socket.destroy() }
}

export const cstr = (s: string) => Buffer.from(s + '\0')
export const i16 = (n: number) => { const b = Buffer.alloc(2); b.writeInt16BE(n); return b }
export const i32 = (n: number) => { const b = Buffer.alloc(4); b.writeInt32BE(n); return b }

/** The SQLSTATE field of an ErrorResponse body. */
export function errorCode(m: BackendMessage): string {
  let i = 0
  while (i < m.body.length && m.body[i] !== 0) {
    const end = m.body.indexOf(0, i + 1)
    if (m.body[i] === 0x43) return m.body.toString('utf8', i + 1, end)
    i = end + 1
  }
  return ''
}
