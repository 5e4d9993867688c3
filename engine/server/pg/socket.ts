/**
 * How a PostgreSQL connection's bytes move. Start-up (pg-gateway) reads and
 * writes web streams; after it, a plain connection is served on its socket
 * directly, a TLS one through the TLS streams pg-gateway made.
 *
 * Why not Node's Duplex.toWeb for the whole life: each message then crossed
 * a WritableStream, a Writable and a promise per write, and the read side a
 * ReadableStream queue: 11% of the main thread's samples under pgbench
 * (perf, 16 clients), where the server's main thread is what limits it.
 */
import type net from 'node:net'
import type { Transport } from './connection.js'

/** chunks queued before the socket is paused (a client sending faster than it is served) */
const QUEUE_PAUSE = 16
const QUEUE_RESUME = 4

/**
 * A plain socket as the web-stream pair pg-gateway starts a connection on.
 * A chunk stays here until pg-gateway pulls it, so what it has not read at
 * the hand-over (a client that sent ahead) is the connection's to read first.
 */
export class StartupDuplex {
  readonly readable: ReadableStream<Uint8Array>
  readonly writable: WritableStream<Uint8Array>
  readonly #socket: net.Socket
  readonly #pending: Buffer[] = []
  #notify: (() => void) | null = null
  #ended = false
  #detached = false

  constructor(socket: net.Socket) {
    this.#socket = socket
    socket.on('data', this.#onData)
    socket.on('end', this.#onEnd)
    socket.on('close', this.#onEnd)
    this.readable = new ReadableStream<Uint8Array>({
      pull: async controller => {
        while (this.#pending.length === 0 && !this.#ended && !this.#detached) await new Promise<void>(r => { this.#notify = r })
        if (this.#detached) return
        const b = this.#pending.shift()
        // pg-gateway reads a message's length through a DataView of the chunk's whole ArrayBuffer,
        // ignoring its byteOffset (MessageBuffer.processMessages): it must get chunks that start at 0.
        // A socket's chunks mostly do, but nothing promises it.
        if (b) controller.enqueue(b.byteOffset === 0 ? new Uint8Array(b.buffer, 0, b.byteLength) : new Uint8Array(b))
        else controller.close()
      },
    }, { highWaterMark: 0 })
    this.writable = new WritableStream<Uint8Array>({
      write: chunk => new Promise<void>((resolve, reject) => { socket.write(chunk, err => err ? reject(err) : resolve()) }),
      close: () => { socket.end() },
      abort: () => { socket.destroy() },
    })
  }

  #onData = (b: Buffer): void => {
    this.#pending.push(b)
    this.#wake()
  }

  #onEnd = (): void => {
    this.#ended = true
    this.#wake()
  }

  #wake(): void {
    const n = this.#notify
    this.#notify = null
    n?.()
  }

  /** Stops feeding pg-gateway; returns what it did not read. */
  detach(): Buffer[] {
    this.#detached = true
    this.#socket.off('data', this.#onData)
    this.#socket.off('end', this.#onEnd)
    this.#socket.off('close', this.#onEnd)
    this.#wake()
    return this.#pending.splice(0)
  }
}

/** A plain connection's socket as its Transport, starting with the bytes start-up left unread. */
export function socketTransport(socket: net.Socket, unread: Buffer[]): Transport {
  const queue: Buffer[] = unread
  let waiter: ((b: Buffer | null) => void) | null = null
  let ended = false
  /** Gives `b` (null: the end) to a read waiting for it; false when none waits. */
  const hand = (b: Buffer | null): boolean => {
    const w = waiter
    if (!w) return false
    waiter = null
    w(b)
    return true
  }
  socket.on('data', (b: Buffer) => {
    if (hand(b)) return
    queue.push(b)
    if (queue.length >= QUEUE_PAUSE) socket.pause()
  })
  const finish = () => {
    ended = true
    hand(null)
  }
  socket.on('end', finish)
  socket.on('close', finish)
  // the client may have gone (or half-closed) during the hand-over, before these listeners
  if (socket.destroyed || socket.readableEnded) ended = true
  return {
    read() {
      const b = queue.shift()
      if (b) {
        if (queue.length <= QUEUE_RESUME && socket.isPaused()) socket.resume()
        return Promise.resolve(b)
      }
      if (ended) return Promise.resolve(null)
      return new Promise(resolve => { waiter = resolve })
    },
    write(b) {
      if (socket.destroyed || socket.writableEnded) return Promise.reject(new Error('the connection is closed'))
      if (socket.write(b)) return Promise.resolve()
      // the kernel's buffer is full (a client not reading): wait until it drains or the socket goes
      return new Promise<void>((resolve, reject) => {
        const done = () => {
          socket.off('drain', done)
          socket.off('close', done)
          if (socket.destroyed) reject(new Error('the connection is closed'))
          else resolve()
        }
        socket.on('drain', done)
        socket.on('close', done)
      })
    },
    close() {
      socket.destroySoon()
      setTimeout(() => socket.destroy(), 2000).unref()
    },
  }
}

/** A TLS connection's web streams (pg-gateway's, after its upgrade) as its Transport. */
export function webTransport(duplex: { readable: ReadableStream<Uint8Array>; writable: WritableStream<Uint8Array> }, socket: net.Socket): Transport {
  const reader = duplex.readable.getReader()
  const writer = duplex.writable.getWriter()
  return {
    async read() {
      const { done, value } = await reader.read()
      return done ? null : value
    },
    async write(b) {
      await writer.ready
      await writer.write(b)
    },
    close() {
      reader.cancel().catch(() => {})
      writer.close().catch(() => {})
      socket.destroySoon()
      setTimeout(() => socket.destroy(), 2000).unref()
    },
  }
}
