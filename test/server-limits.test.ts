/**
 * Limits of the PostgreSQL endpoint: the connection after `maxConnections`
 * gets FATAL 53300 while the others keep working; an idle session is
 * closed with FATAL 57P05 after `idleTimeoutMs`; a client that stops
 * reading a large result stalls only itself; start-up that never finishes
 * is dropped after `authTimeoutMs`.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import net from 'node:net'
import { startServer } from './helpers/server-harness.js'
import { cstr, errorCode, RawPg } from './helpers/server-raw.js'

test('max connections: the next client gets 53300, the others keep working', async () => {
  const t = await startServer({ pg: { port: 0, auth: 'trust', maxConnections: 2 } })
  try {
    const a = await RawPg.connect(t.pgPort)
    const b = await RawPg.connect(t.pgPort)
    const err = await RawPg.connect(t.pgPort).then(() => null, e => e as { messages: Array<{ type: string; body: Buffer }> })
    assert.ok(err, 'the third connection is refused')
    assert.is(errorCode(err!.messages[0]), '53300')
    a.send('Q', cstr('SELECT 1 AS x'))
    assert.equal((await a.until('Z')).map(m => m.type), ['T', 'D', 'C', 'Z'])
    a.end(); b.end()
    // a slot is free again once a client leaves
    for (let i = 0; i < 50 && t.endpoints.pg!.connections >= 2; i++) await new Promise(r => setTimeout(r, 20))
    const c = await RawPg.connect(t.pgPort)
    c.end()
  } finally { await t.stop() }
})

test('idle timeout: an idle session is closed with 57P05; a busy one is not', async () => {
  const t = await startServer({ pg: { port: 0, auth: 'trust', idleTimeoutMs: 300 } })
  try {
    const idle = await RawPg.connect(t.pgPort)
    const busy = await RawPg.connect(t.pgPort)
    busy.send('Q', cstr('SELECT pg_sleep(0.8)'))
    const got = await idle.closedBy()
    assert.ok(idle.closed)
    assert.is(errorCode(got[got.length - 1]), '57P05')
    const ms = await busy.until('Z')
    assert.equal(ms.map(m => m.type), ['T', 'D', 'C', 'Z'])
    busy.end()
  } finally { await t.stop() }
})

test('a client that does not read its large result stalls only itself', async () => {
  const t = await startServer({ pg: { port: 0, auth: 'trust' } })
  try {
    const setup = await RawPg.connect(t.pgPort)
    setup.send('Q', cstr('CREATE TABLE big (id int PRIMARY KEY, pad text)'))
    await setup.until('Z')
    setup.send('Q', cstr(`INSERT INTO big VALUES ${Array.from({ length: 400 }, (_, i) => `(${i}, '${'x'.repeat(1000)}')`).join(',')}`))
    assert.ok(!(await setup.until('Z')).some(m => m.type === 'E'))
    setup.end()
    const slow = await RawPg.connect(t.pgPort)
    slow.socket.pause() // reads nothing from now on
    for (let i = 0; i < 10; i++) slow.send('Q', cstr('SELECT * FROM big'))
    await new Promise(r => setTimeout(r, 300))
    const other = await RawPg.connect(t.pgPort)
    for (let i = 0; i < 5; i++) {
      other.send('Q', cstr('SELECT count(*) AS n FROM big'))
      const ms = await other.until('Z', 5000)
      assert.ok(ms.some(m => m.type === 'D'))
    }
    other.end(); slow.end()
  } finally { await t.stop() }
})

test('start-up that never completes is dropped after authTimeoutMs', async () => {
  const t = await startServer({ pg: { port: 0, auth: 'trust', authTimeoutMs: 300 } })
  try {
    const s = net.connect(t.pgPort, '127.0.0.1')
    s.on('error', () => {})
    await new Promise(r => s.once('connect', r))
    s.write(Buffer.from([0, 0, 0, 100])) // a start-up message that never arrives in full
    await new Promise<void>(resolve => s.once('close', () => resolve()))
    assert.ok(s.destroyed)
  } finally { await t.stop() }
})

test.run()
