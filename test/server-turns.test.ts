/**
 * Statement turns (engine/server/turns.ts): while a transaction waits for a
 * lock, a server's statements from sessions that hold no waited-for lock
 * take turns, one an event-loop turn, so the lock holder's statements are
 * served as they arrive.
 * - Turns: one waiter a loop turn, in order; input that arrives between two
 *   turns (a socket's data) is served before the next turn.
 * - SqlSession.behindLockHolders: false with no one waiting; while one
 *   session waits for another's row lock, true for every session but the
 *   holder's; false again once the lock passed on.
 * - A PgConnection (in-memory transport): with a row lock waited for, the
 *   holder's SELECT, sent one loop turn after three SELECTs of other
 *   sessions, is answered before them; with no one waiting they are
 *   answered first, before it is sent. Every session's statements complete.
 *   A statement waiting for its turn is not idle: the idle-session timeout
 *   does not end its connection. A CancelRequest while it waits fails it
 *   (57014) without running it.
 * - Over sockets, both endpoints: while a row lock is waited for, a
 *   bystander's statements (MySQL COM_QUERY and COM_STMT_EXECUTE, pg simple
 *   and extended) each take a turn and the holder's take none; with no one
 *   waiting, no one takes a turn.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import net from 'node:net'
import mysql from 'mysql2/promise'
import pg from 'pg'
import type { Database } from '../engine/index.js'
import { PgConnection, type Transport } from '../engine/server/pg/connection.js'
import { databaseSource } from '../engine/server/source.js'
import { statementTurns, Turns } from '../engine/server/turns.js'
import { startServer } from './helpers/server-harness.js'
import { cleanupTempDirs, withSql } from './helpers/sql-helpers.js'

test.after(() => cleanupTempDirs())

const within = <T>(p: Promise<T>, what: string): Promise<T> => Promise.race([p, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`timed out: ${what}`)), 10_000).unref())])

const until = async (cond: () => boolean, what: string): Promise<void> => {
  const end = Date.now() + 10_000
  while (!cond()) { if (Date.now() > end) throw new Error(`timed out: ${what}`); await new Promise(r => setTimeout(r, 2)) }
}

test('Turns: one waiter a loop turn, in order; a socket\'s data that arrives between turns is served before the next', async () => {
  let accepted!: (s: net.Socket) => void
  const got = new Promise<net.Socket>(r => { accepted = r })
  const server = net.createServer(s => accepted(s))
  await new Promise<void>(r => server.listen(0, '127.0.0.1', () => r()))
  const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1')
  client.setNoDelay(true)
  const s = await got
  try {
    const turns = new Turns()
    const order: string[] = []
    s.on('data', () => order.push('data'))
    const all = ['a', 'b', 'c'].map(name => turns.take().then(() => {
      order.push(name)
      if (name === 'a') client.write('x') // arrives before b's turn: the loop polls between turns
    }))
    assert.is(turns.waiting, 3)
    assert.equal(order, [], 'no one runs in the turn that took it')
    await within(Promise.all(all), 'three turns')
    await until(() => order.includes('data'), 'the data event')
    assert.equal(order, ['a', 'data', 'b', 'c'])
    assert.is(turns.waiting, 0)
  } finally {
    client.destroy()
    s.destroy()
    server.close()
  }
})

test('SqlSession.behindLockHolders: true for every session but the holder\'s while a row lock is waited for', async () => {
  await withSql('turns-session', async cluster => {
    const db = cluster.writer
    const h = db.session(), w = db.session(), n = db.session()
    await h.sql('CREATE TABLE t (id int PRIMARY KEY, v int)')
    await h.sql('INSERT INTO t VALUES (1, 0), (2, 0)')
    assert.not.ok(h.behindLockHolders || w.behindLockHolders || n.behindLockHolders, 'no one waits')
    await h.sql('BEGIN')
    await h.sql('UPDATE t SET v = v + 1 WHERE id = 1')
    await w.sql('BEGIN')
    await w.sql('UPDATE t SET v = v + 1 WHERE id = 2')
    assert.not.ok(h.behindLockHolders || w.behindLockHolders || n.behindLockHolders, 'locks held, none waited for')
    const waiting = w.sql('UPDATE t SET v = v + 1 WHERE id = 1')
    await until(() => db.lockWaiters === 1, 'w waits for h')
    assert.not.ok(h.behindLockHolders, 'the holder goes first')
    assert.ok(n.behindLockHolders, 'a session with no transaction waits its turn')
    assert.ok(w.behindLockHolders, 'the waiter holds a lock no one waits for')
    await h.sql('COMMIT')
    await within(waiting, 'w gets the lock')
    assert.not.ok(h.behindLockHolders || w.behindLockHolders || n.behindLockHolders, 'the lock passed on: no one waits')
    await w.sql('COMMIT')
    assert.equal((await n.sql('SELECT v FROM t ORDER BY id', [], { rowMode: 'array' })).rows, [[2], [1]])
    for (const s of [h, w, n]) await s.close()
  })
})

const query = (text: string): Buffer => {
  const n = Buffer.byteLength(text)
  const b = Buffer.alloc(6 + n)
  b[0] = 0x51 // 'Q'
  b.writeInt32BE(5 + n, 1)
  b.write(text, 5)
  return b
}

/** A client of a PgConnection over an in-memory transport: `run` resolves at ReadyForQuery, with whether an ErrorResponse came. */
interface MemClient { run(text: string): Promise<boolean>; close(): Promise<void>; conn: PgConnection; lastCode: () => string }

function memClient(db: Database, pid: number, idleTimeoutMs = 0): MemClient {
  const { session, engine, release } = databaseSource(db).open('postgres')
  const inbox: Array<Buffer | null> = []
  let reader: ((b: Buffer | null) => void) | null = null
  const replies: Array<(failed: boolean) => void> = []
  let failed = false
  let lastCode = ''
  const send = (b: Buffer | null) => { const r = reader; reader = null; if (r) r(b); else inbox.push(b) }
  const io: Transport = {
    read: () => inbox.length ? Promise.resolve(inbox.shift()!) : new Promise(resolve => { reader = resolve }),
    write: b => {
      for (let at = 0; at + 5 <= b.length; at += 1 + b.readInt32BE(at + 1)) {
        if (b[at] === 0x45) { // ErrorResponse: its SQLSTATE is the 'C' field
          failed = true
          const c = b.indexOf(0x43, at + 5)
          lastCode = b.toString('latin1', c + 1, b.indexOf(0, c))
        }
        if (b[at] === 0x5a) { replies.shift()?.(failed); failed = false } // ReadyForQuery
      }
      return Promise.resolve()
    },
    close: () => {},
  }
  const c = new PgConnection(io, session, engine, 'test', 'postgres', pid, 1, { messageBytesMax: 1 << 20, idleTimeoutMs, statementsMax: 100 }, 'turns')
  const done = c.run()
  return {
    run: text => new Promise(resolve => { replies.push(resolve); send(query(text)) }),
    close: async () => { send(null); await done; release() },
    conn: c,
    lastCode: () => lastCode,
  }
}

/** `db` with table t holding one row (1, 0). */
async function oneRow(db: Database): Promise<Database> {
  const setup = db.session()
  await setup.sql('CREATE TABLE t (id int PRIMARY KEY, v int)')
  await setup.sql('INSERT INTO t VALUES (1, 0)')
  await setup.close()
  return db
}

/** `h` takes row 1's lock in a transaction; `w` then waits for it: resolves once it waits, with w's pending UPDATE. */
async function holdAndWait(db: Database, h: MemClient, w: MemClient): Promise<{ waiting: Promise<boolean> }> {
  assert.not.ok(await h.run('BEGIN'))
  assert.not.ok(await h.run('UPDATE t SET v = v + 1 WHERE id = 1'))
  assert.not.ok(await w.run('BEGIN'))
  const waiting = w.run('UPDATE t SET v = v + 10 WHERE id = 1')
  await until(() => db.lockWaiters === 1, 'w waits for h')
  return { waiting }
}

test('pg: with a row lock waited for, the holder\'s statement is answered before statements of others sent a loop turn before it', async () => {
  await withSql('turns-pg', async cluster => {
    const db = await oneRow(cluster.writer)
    const h = memClient(db, 1), w = memClient(db, 2)
    const others = [memClient(db, 3), memClient(db, 4), memClient(db, 5)]
    const race = async (): Promise<string[]> => {
      const order: string[] = []
      const sent = others.map((c, i) => c.run(`SELECT ${i}`).then(f => { assert.not.ok(f); order.push(`n${i}`) }))
      // the others' statements run (to the end, with no I/O to wait for) unless they wait for turns
      await new Promise(r => setImmediate(r))
      sent.push(h.run('SELECT v FROM t WHERE id = 1').then(f => { assert.not.ok(f); order.push('h') }))
      await within(Promise.all(sent), 'the four SELECTs')
      return order
    }
    assert.equal(await race(), ['n0', 'n1', 'n2', 'h'], 'no lock waited for: answered as they came')
    const { waiting } = await holdAndWait(db, h, w)
    assert.equal(await race(), ['h', 'n0', 'n1', 'n2'], 'the holder first, then the others in order')
    assert.not.ok(await h.run('COMMIT'))
    assert.not.ok(await within(waiting, 'w gets the lock'))
    assert.not.ok(await w.run('COMMIT'))
    assert.equal(await race(), ['n0', 'n1', 'n2', 'h'], 'the lock passed on: as they came again')
    const check = db.session()
    assert.equal((await check.sql('SELECT v FROM t', [], { rowMode: 'array' })).rows, [[11]])
    await check.close()
    for (const c of [h, w, ...others]) await c.close()
  })
})

test('pg: a statement waiting for its turn is not idle: the idle timeout does not end the connection', async () => {
  await withSql('turns-idle', async cluster => {
    const db = await oneRow(cluster.writer)
    const h = memClient(db, 1), w = memClient(db, 2), n = memClient(db, 3, 40)
    const { waiting } = await holdAndWait(db, h, w)
    assert.not.ok(await n.run('SELECT 1'), 'n is served') // its idle timer starts again now
    const second = n.run('SELECT 2')
    // without leaving this loop turn: n reads it, starts its idle timer again (after SELECT 1) and waits for its turn
    for (let i = 0; i < 10_000 && statementTurns.waiting === 0; i++) await Promise.resolve()
    assert.is(statementTurns.waiting, 1, 'n\'s second SELECT waits for its turn')
    const until60 = Date.now() + 60
    while (Date.now() < until60) { /* the event loop is busy past n's 40 ms idle timeout */ }
    assert.not.ok(await within(second, 'n\'s second SELECT'), 'answered, not ended as idle')
    assert.not.ok(await n.run('SELECT 3'), 'the connection is still open')
    assert.not.ok(await h.run('COMMIT'))
    assert.not.ok(await within(waiting, 'w gets the lock'))
    assert.not.ok(await w.run('COMMIT'))
    for (const c of [h, w, n]) await c.close()
  })
})

test('pg: a CancelRequest for a statement waiting for its turn fails it with 57014 and it does not run; the next one runs', async () => {
  await withSql('turns-cancel', async cluster => {
    const db = await oneRow(cluster.writer)
    const setup = db.session()
    await setup.sql('CREATE TABLE u (id int PRIMARY KEY)')
    await setup.close()
    const h = memClient(db, 1), w = memClient(db, 2), n = memClient(db, 3)
    const { waiting } = await holdAndWait(db, h, w)
    const cancelled = n.run('INSERT INTO u VALUES (1)')
    for (let i = 0; i < 10_000 && statementTurns.waiting === 0; i++) await Promise.resolve()
    assert.is(statementTurns.waiting, 1, 'n\'s INSERT waits for its turn')
    n.conn.cancel()
    assert.ok(await within(cancelled, 'the cancelled INSERT'), 'an ErrorResponse')
    assert.is(n.lastCode(), '57014')
    assert.not.ok(await n.run('INSERT INTO u VALUES (2)'), 'the next statement runs')
    assert.not.ok(await h.run('COMMIT'))
    assert.not.ok(await within(waiting, 'w gets the lock'))
    assert.not.ok(await w.run('COMMIT'))
    const check = db.session()
    assert.equal((await check.sql('SELECT id FROM u', [], { rowMode: 'array' })).rows, [[2]], 'the cancelled INSERT did not run')
    await check.close()
    for (const c of [h, w, n]) await c.close()
  })
})

test('both endpoints over sockets: a bystander\'s statements take turns while a lock is waited for, the holder\'s do not', async () => {
  const h = await startServer({ pg: { port: 0, auth: 'trust' }, mysql: { port: 0 } })
  const my = (): Promise<mysql.Connection> => mysql.createConnection({ host: '127.0.0.1', port: h.mysqlPort, user: 'root', database: 'app' })
  const holder = await my(), waiter = await my(), bystander = await my()
  const pgc = new pg.Client({ host: '127.0.0.1', port: h.pgPort, user: 'app', database: 'app' })
  await pgc.connect()
  let taken = 0
  const take = statementTurns.take
  statementTurns.take = function (this: Turns) { taken++; return take.call(this) }
  try {
    await holder.query('CREATE TABLE t (id int PRIMARY KEY, v int)')
    await holder.query('INSERT INTO t VALUES (1, 0)')
    const all = async () => {
      await bystander.query('SELECT 1')
      await bystander.execute('SELECT ? + 1 AS x', [1])
      await pgc.query('SELECT 1')
      await pgc.query('SELECT $1::int + 1 AS x', [1])
    }
    await all()
    assert.is(taken, 0, 'no one waits: no turns')
    await holder.query('BEGIN')
    await holder.query('UPDATE t SET v = v + 1 WHERE id = 1')
    await waiter.query('BEGIN')
    const waiting = waiter.query('UPDATE t SET v = v + 10 WHERE id = 1')
    await until(() => h.cluster.writer.lockWaiters === 1, 'the waiter waits for the holder')
    await holder.query('SELECT v FROM t WHERE id = 1')
    await holder.execute('SELECT ? + 1 AS x', [1])
    assert.is(taken, 0, 'the holder\'s statements take no turn')
    await all()
    assert.is(taken, 4, 'each of the bystander\'s four statements took a turn')
    await holder.query('COMMIT')
    await within(waiting, 'the waiter gets the lock')
    await waiter.query('COMMIT')
    taken = 0
    await all()
    assert.is(taken, 0, 'the lock passed on: no turns')
    const [rows] = await bystander.query('SELECT v FROM t') as [Array<{ v: number }>, unknown]
    assert.is(Number(rows[0].v), 11)
  } finally {
    statementTurns.take = take
    await Promise.all([holder.end(), waiter.end(), bystander.end(), pgc.end()])
    await h.stop()
  }
})

test.run()
