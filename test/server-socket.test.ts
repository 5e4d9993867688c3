/**
 * The pg endpoint's byte paths (engine/server/pg/socket.ts): what pg-gateway
 * has not pulled from the start-up streams when a connection is handed over
 * is the connection's to read first, in order with what arrives later; a
 * closed peer reads as the end; writes to a closed socket fail.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import net from 'node:net'
import { fromDuplexStream } from 'pg-gateway/node'
import { socketTransport, StartupDuplex } from '../engine/server/pg/socket.js'

/** A connected pair: [server side, client side]. */
async function pair(allowHalfOpen = false): Promise<[net.Socket, net.Socket, () => void]> {
  let accepted!: (s: net.Socket) => void
  const got = new Promise<net.Socket>(r => { accepted = r })
  const server = net.createServer({ allowHalfOpen }, s => accepted(s))
  await new Promise<void>(r => server.listen(0, '127.0.0.1', () => r()))
  const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1')
  client.setNoDelay(true)
  const s = await got
  return [s, client, () => server.close()]
}

/** `p`, or a failure after 5 s (a read that never ends must fail the test, not hang it) */
const within = <T>(p: Promise<T>, what: string): Promise<T> => Promise.race([p, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`timed out: ${what}`)), 5000).unref())])

const until = async (cond: () => boolean, what: string) => {
  const end = Date.now() + 5000
  while (!cond()) { if (Date.now() > end) throw new Error(`timed out: ${what}`); await new Promise(r => setTimeout(r, 5)) }
}

test('bytes start-up did not pull are read first after the hand-over, then the rest, in order', async () => {
  const [s, client, stop] = await pair()
  try {
    const startup = new StartupDuplex(s)
    let arrived = 0
    s.on('data', (b: Buffer) => { arrived += b.length })
    const reader = startup.readable.getReader()
    client.write('startup')
    const first = await reader.read()
    assert.is(Buffer.from(first.value!).toString(), 'startup', 'pg-gateway reads what it pulls')
    reader.releaseLock()
    // the client sends ahead while start-up is still going: nobody pulls it
    client.write('ahead-1')
    await until(() => arrived >= 'startup'.length + 'ahead-1'.length, 'the bytes sent ahead arrive')
    const unread = startup.detach()
    assert.is(Buffer.concat(unread).toString(), 'ahead-1', 'detach hands over what was not pulled')
    const io = socketTransport(s, unread)
    client.write('later-2')
    let all = ''
    while (all.length < 'ahead-1later-2'.length) all += Buffer.from((await within(io.read(), 'read'))!).toString()
    assert.is(all, 'ahead-1later-2')
    // writes reach the client
    const echoed = new Promise<string>(r => client.once('data', d => r(d.toString())))
    await io.write(Buffer.from('pong'))
    assert.is(await echoed, 'pong')
    // the client leaves: the transport reads the end, and a write then fails
    client.end()
    assert.is(await within(io.read(), 'read at the end'), null, 'end of stream')
    await until(() => s.destroyed || s.writableEnded || s.readableEnded, 'the socket ends')
    io.close()
    await until(() => s.destroyed, 'close destroys the socket')
    let err: unknown
    try { await io.write(Buffer.from('x')) } catch (e) { err = e }
    assert.ok(err instanceof Error && /closed/.test(err.message), `a write after close fails: ${String(err)}`)
  } finally {
    client.destroy()
    stop()
  }
})

test('a peer that half-closed before the hand-over reads as the end at once', async () => {
  // half-open allowed, so the socket is not destroyed by the end: only its readable side ended
  const [s, client, stop] = await pair(true)
  try {
    const startup = new StartupDuplex(s)
    client.end()
    await until(() => s.readableEnded, 'the end arrives')
    assert.not.ok(s.destroyed)
    const io = socketTransport(s, startup.detach())
    assert.is(await within(io.read(), 'read after the half-close'), null)
  } finally {
    client.destroy()
    stop()
  }
})

test('start-up answers a chunk that is a view into a larger buffer (pg-gateway reads lengths from offset 0)', async () => {
  const [s, client, stop] = await pair()
  try {
    const startup = new StartupDuplex(s)
    void fromDuplexStream(startup, { auth: { method: 'trust' } }).catch(() => {})
    const answer = new Promise<Buffer>(r => client.once('data', d => r(d)))
    // an SSLRequest (length 8, code 80877103) at byte 16 of its buffer, as a batch of several chunks would hold it
    const big = Buffer.alloc(64, 0xee)
    big.writeInt32BE(8, 16)
    big.writeInt32BE(80877103, 20)
    s.emit('data', big.subarray(16, 24))
    assert.is((await within(answer, 'the SSLRequest answered')).toString(), 'N', 'no TLS here: N')
  } finally {
    client.destroy()
    stop()
  }
})

test.run()
