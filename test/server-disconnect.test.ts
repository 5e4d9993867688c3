/**
 * Clients that disconnect in the middle of a transaction, on both wire
 * protocols: a `pg` client and a `mysql2` client each BEGIN, insert rows
 * and hold a row lock (UPDATE), then drop their socket without COMMIT (a
 * FIN for pg, a TCP reset for mysql2). Another connection already waiting
 * for that row lock gets it once the server notices the disconnect; the
 * inserted rows and the update are gone (the same keys can be inserted
 * again), the server's connection count goes back down, and the server
 * keeps serving new clients on both ports.
 *
 * The same with raw sockets that end inside a message (half a PostgreSQL
 * message, half a MySQL packet) while a transaction is open; and bad bytes
 * before authentication (a start-up packet with an unknown protocol
 * version, a truncated MySQL handshake response), which close only their
 * own connection. Authentication failures and malformed messages after
 * start-up are in server-pg.test.ts and server-mysql.test.ts.
 *
 * Waits are bounded (a lock never released fails the test instead of
 * hanging it); no timing is asserted.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import net from 'node:net'
import mysql from 'mysql2/promise'
import pg from 'pg'
import { startServer, type Harness } from './helpers/server-harness.js'
import { cstr, errorCode, RawPg } from './helpers/server-raw.js'
import { mysqlError, RawMysql } from './helpers/server-mysql-raw.js'

let h: Harness

test.before(async () => {
  h = await startServer({ pg: { port: 0, auth: 'trust' }, mysql: { port: 0 } })
})
test.after(async () => { await h.stop() })

const WAIT_MS = 20_000

/** `p`, or a rejection saying what did not happen within WAIT_MS. */
function bounded<T>(p: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout
  const limit = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`${what}: not within ${WAIT_MS} ms`)), WAIT_MS) })
  return Promise.race([p, limit]).finally(() => clearTimeout(timer))
}

/** Polls `cond` until it holds (bounded). */
async function until(cond: () => boolean | Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + WAIT_MS
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${WAIT_MS} ms`)
    await new Promise(r => setTimeout(r, 20))
  }
}

/** Whether `p` is still pending after the event loop has gone round a few times. */
async function pending(p: Promise<unknown>): Promise<boolean> {
  let settled = false
  p.then(() => { settled = true }, () => { settled = true })
  for (let i = 0; i < 5; i++) await new Promise(r => setImmediate(r))
  return !settled
}

/** Ends a client without waiting for a query it may still have queued (a failed check can leave one blocked on a lock). */
function dropPg(c: pg.Client): void { (c as unknown as { connection: { stream: net.Socket } }).connection.stream.destroy() }
function dropMy(c: mysql.Connection): void { c.destroy() }

function pgClient(): pg.Client {
  const c = new pg.Client({ host: '127.0.0.1', port: h.pgPort, user: 'app', database: 'app' })
  c.on('error', () => {}) // clients this test drops (or whose server side goes away) report it here
  return c
}
const myClient = () => mysql.createConnection({ host: '127.0.0.1', port: h.mysqlPort, user: 'app', database: 'app' })

test('pg: a client that drops its socket mid-transaction: its rows and update roll back, its row lock is released, the server goes on', async () => {
  const admin = pgClient()
  await admin.connect()
  const victim = pgClient()
  try {
    await admin.query('CREATE TABLE dpg (id int PRIMARY KEY, v int NOT NULL)')
    await admin.query('INSERT INTO dpg VALUES (1, 0), (2, 0)')
    const before = h.endpoints.pg!.connections

    await victim.connect()
    await victim.query('BEGIN')
    await victim.query('INSERT INTO dpg VALUES (100, 1), (101, 1), (102, 1)')
    assert.is((await victim.query('UPDATE dpg SET v = 99 WHERE id = 1')).rowCount, 1)
    assert.equal((await victim.query('SELECT count(*)::int AS n FROM dpg')).rows, [{ n: 5 }], 'the victim sees its own rows')
    await until(() => h.endpoints.pg!.connections === before + 1, 'the victim counted as a connection')

    // another connection wants the same row: it waits for the victim's lock
    const waiter = pgClient()
    await waiter.connect()
    try {
      const blocked = waiter.query('UPDATE dpg SET v = v + 5 WHERE id = 1')
      blocked.catch(() => {})
      await victim.query('SELECT 1') // a round trip on the victim's connection while the waiter waits
      assert.ok(await pending(blocked), 'the UPDATE of a row locked by an open transaction waits')
      assert.equal((await admin.query('SELECT count(*)::int AS n FROM dpg WHERE id >= 100')).rows, [{ n: 0 }], 'uncommitted rows are not visible to others')

      // the victim goes away without COMMIT (FIN, no Terminate message)
      ;(victim as unknown as { connection: { stream: net.Socket } }).connection.stream.destroy()

      const r = await bounded(blocked, 'the waiting UPDATE after the lock holder disconnected')
      assert.is(r.rowCount, 1)
    } finally { dropPg(waiter) }

    await until(() => h.endpoints.pg!.connections === before, 'the server noticed the disconnect')
    assert.equal((await admin.query('SELECT id, v FROM dpg ORDER BY id')).rows, [{ id: 1, v: 5 }, { id: 2, v: 0 }],
      'the inserts and the update of the disconnected transaction rolled back')
    // no lock is left on row 1 and the keys are free
    assert.is((await bounded(admin.query('UPDATE dpg SET v = v + 1 WHERE id = 1'), 'UPDATE of the released row')).rowCount, 1)
    assert.is((await bounded(admin.query('INSERT INTO dpg VALUES (100, 7), (101, 7), (102, 7)'), 'INSERT of the rolled-back keys')).rowCount, 3)

    // the server keeps serving: a new client on each protocol
    const fresh = pgClient()
    await fresh.connect()
    assert.equal((await fresh.query('SELECT sum(v)::int AS s FROM dpg')).rows, [{ s: 27 }])
    await fresh.end()
    const my = await myClient()
    const [rows] = await my.query('SELECT COUNT(*) AS n FROM dpg') as [Array<{ n: unknown }>, unknown]
    assert.is(Number(rows[0].n), 5)
    await my.end()
  } finally {
    dropPg(admin)
  }
})

test('mysql: a client whose connection is reset mid-transaction: its rows and update roll back, its row lock is released, the server goes on', async () => {
  const admin = await myClient()
  const victim = await myClient()
  victim.on('error', () => {})
  try {
    await admin.query('CREATE TABLE dmy (id INT PRIMARY KEY, v INT NOT NULL)')
    await admin.query('INSERT INTO dmy VALUES (1, 0), (2, 0)')
    const before = h.endpoints.mysql!.connections

    await victim.query('BEGIN')
    await victim.query('INSERT INTO dmy VALUES (100, 1), (101, 1), (102, 1)')
    const [upd] = await victim.query('UPDATE dmy SET v = 99 WHERE id = 1') as [{ affectedRows: number }, unknown]
    assert.is(upd.affectedRows, 1)
    const [own] = await victim.query('SELECT COUNT(*) AS n FROM dmy') as [Array<{ n: unknown }>, unknown]
    assert.is(Number(own[0].n), 5, 'the victim sees its own rows')

    const waiter = await myClient()
    try {
      const blocked = waiter.query('UPDATE dmy SET v = v + 5 WHERE id = 1')
      blocked.catch(() => {})
      await victim.query('SELECT 1')
      assert.ok(await pending(blocked), 'the UPDATE of a row locked by an open transaction waits')
      const [seen] = await admin.query('SELECT COUNT(*) AS n FROM dmy WHERE id >= 100') as [Array<{ n: unknown }>, unknown]
      assert.is(Number(seen[0].n), 0, 'uncommitted rows are not visible to others')

      // the victim's connection is reset (RST, no COM_QUIT)
      ;(victim as unknown as { connection: { stream: net.Socket } }).connection.stream.resetAndDestroy()

      const [r] = await bounded(blocked, 'the waiting UPDATE after the lock holder disconnected') as [{ affectedRows: number }, unknown]
      assert.is(r.affectedRows, 1)
    } finally { dropMy(waiter) }

    await until(() => h.endpoints.mysql!.connections === before, 'the server noticed the reset')
    const [rows] = await admin.query('SELECT id, v FROM dmy ORDER BY id') as [Array<{ id: number; v: number }>, unknown]
    assert.equal(rows.map(x => [Number(x.id), Number(x.v)]), [[1, 5], [2, 0]], 'the inserts and the update of the reset transaction rolled back')
    const [u] = await bounded(admin.query('UPDATE dmy SET v = v + 1 WHERE id = 1'), 'UPDATE of the released row') as [{ affectedRows: number }, unknown]
    assert.is(u.affectedRows, 1)
    const [ins] = await bounded(admin.query('INSERT INTO dmy VALUES (100, 7), (101, 7), (102, 7)'), 'INSERT of the rolled-back keys') as [{ affectedRows: number }, unknown]
    assert.is(ins.affectedRows, 3)

    const fresh = await myClient()
    const [s] = await fresh.query('SELECT SUM(v) AS s FROM dmy') as [Array<{ s: unknown }>, unknown]
    assert.is(Number(s[0].s), 27)
    await fresh.end()
    const p = pgClient()
    await p.connect()
    assert.equal((await p.query('SELECT count(*)::int AS n FROM dmy')).rows, [{ n: 5 }])
    await p.end()
  } finally {
    dropMy(admin)
  }
})

test('pg raw: a connection that ends inside a message mid-transaction rolls back and releases its lock', async () => {
  const admin = pgClient()
  await admin.connect()
  try {
    await admin.query('CREATE TABLE dpr (id int PRIMARY KEY, v int NOT NULL)')
    await admin.query('INSERT INTO dpr VALUES (1, 0)')
    const raw = await RawPg.connect(h.pgPort)
    for (const q of ['BEGIN', 'INSERT INTO dpr VALUES (50, 1)', 'UPDATE dpr SET v = 99 WHERE id = 1']) {
      raw.send('Q', cstr(q))
      const ms = await raw.until('Z')
      assert.ok(!ms.some(m => m.type === 'E'), `${q}: ${ms.map(m => m.type).join('')}`)
      assert.is(ms[ms.length - 1].body.toString('latin1'), 'T', `${q}: ReadyForQuery in a transaction`)
    }
    const blocked = admin.query('UPDATE dpr SET v = v + 5 WHERE id = 1')
    blocked.catch(() => {})
    // half a Query message: the header announces 100 bytes, 10 arrive, then the socket ends
    const head = Buffer.alloc(5)
    head[0] = 0x51
    head.writeInt32BE(100, 1)
    raw.socket.write(Buffer.concat([head, Buffer.from('COMMIT; --')]))
    assert.ok(await pending(blocked), 'the UPDATE waits while the raw client holds the lock')
    raw.socket.end()
    assert.is((await bounded(blocked, 'the waiting UPDATE after the raw client left')).rowCount, 1)
    assert.equal((await admin.query('SELECT id, v FROM dpr ORDER BY id')).rows, [{ id: 1, v: 5 }])
  } finally {
    dropPg(admin)
  }
})

test('mysql raw: a connection that ends inside a packet mid-transaction rolls back and releases its lock', async () => {
  const admin = await myClient()
  try {
    await admin.query('CREATE TABLE dmr (id INT PRIMARY KEY, v INT NOT NULL)')
    await admin.query('INSERT INTO dmr VALUES (1, 0)')
    const { c } = await RawMysql.connect(h.mysqlPort)
    for (const q of ['BEGIN', 'INSERT INTO dmr VALUES (50, 1)', 'UPDATE dmr SET v = 99 WHERE id = 1']) {
      c.send(0, Buffer.concat([Buffer.from([0x03]), Buffer.from(q)]))
      const p = await c.next()
      assert.is(p?.payload[0], 0x00, `${q}: OK packet (${mysqlError(p)?.message ?? ''})`)
    }
    const blocked = admin.query('UPDATE dmr SET v = v + 5 WHERE id = 1')
    blocked.catch(() => {})
    // a packet header announcing 100 bytes, 8 of them sent, then the socket ends
    const head = Buffer.from([100, 0, 0, 0])
    c.socket.write(Buffer.concat([head, Buffer.from([0x03]), Buffer.from('COMMIT ')]))
    assert.ok(await pending(blocked), 'the UPDATE waits while the raw client holds the lock')
    c.socket.end()
    const [r] = await bounded(blocked, 'the waiting UPDATE after the raw client left') as [{ affectedRows: number }, unknown]
    assert.is(r.affectedRows, 1)
    const [rows] = await admin.query('SELECT id, v FROM dmr ORDER BY id') as [Array<{ id: number; v: number }>, unknown]
    assert.equal(rows.map(x => [Number(x.id), Number(x.v)]), [[1, 5]])
  } finally {
    dropMy(admin)
  }
})

/** Sends `bytes` on a fresh connection to the PG port; the SQLSTATE of the ErrorResponse the server sent before closing. */
async function pgStartupRefusal(bytes: Buffer): Promise<string> {
  const s = net.connect(h.pgPort, '127.0.0.1')
  await new Promise<void>((resolve, reject) => { s.once('connect', resolve); s.once('error', reject) })
  s.on('error', () => {})
  const got: Buffer[] = []
  s.on('data', d => got.push(d))
  const closed = new Promise<void>(resolve => s.once('close', () => resolve()))
  s.write(bytes)
  await bounded(closed, `the server closing after ${JSON.stringify(bytes.toString('latin1'))}`)
  const reply = Buffer.concat(got)
  assert.ok(reply.length > 5 && reply[0] === 0x45, `an ErrorResponse before the close, got ${JSON.stringify(reply.toString('latin1'))}`)
  return errorCode({ type: 'E', body: reply.subarray(5, reply.readInt32BE(1) + 1) })
}

test('bad bytes before authentication get an error and close only that connection: pg start-up with an unknown protocol version or a bad length, an HTTP request; a truncated mysql handshake response', async () => {
  // PostgreSQL: a StartupMessage claiming protocol 9.9 (PostgreSQL answers 0A000 "unsupported frontend protocol")
  const params = Buffer.from('user\0app\0\0')
  const start = Buffer.alloc(8)
  start.writeInt32BE(8 + params.length, 0)
  start.writeInt32BE((9 << 16) | 9, 4)
  assert.is(await pgStartupRefusal(Buffer.concat([start, params])), '0A000')
  // a length field below the 8-byte minimum, and an HTTP request (its first four bytes read as a length of ~1.2 GB)
  assert.is(await pgStartupRefusal(Buffer.from([0, 0, 0, 4, 0, 3, 0, 0])), '08P01')
  assert.is(await pgStartupRefusal(Buffer.from('GET / HTTP/1.1\r\nHost: localhost\r\n\r\n')), '08P01')

  // MySQL: the greeting is answered with 6 bytes (a HandshakeResponse41 needs at least 32)
  const { c } = await RawMysql.connect(h.mysqlPort, false)
  c.send(1, Buffer.from([0x05, 0xa2, 0x0a, 0x00, 0x00, 0x00]))
  const packets = await c.closedBy()
  assert.is(mysqlError(packets[packets.length - 1])?.errno, 1835, 'Malformed communication packet, then closed')
  assert.ok(c.closed)

  // both listeners still serve
  const p = pgClient()
  await p.connect()
  assert.equal((await p.query('SELECT 6 * 7 AS x')).rows, [{ x: 42 }])
  await p.end()
  const my = await myClient()
  const [r] = await my.query('SELECT 6 * 7 AS x') as [Array<{ x: unknown }>, unknown]
  assert.is(Number(r[0].x), 42)
  await my.end()
})

test.run()
