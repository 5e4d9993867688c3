/**
 * The MySQL endpoint with the `mysql2` client: text queries and the
 * session queries clients send, prepared statements through `execute`
 * (every supported type and NULLs, re-executed with other values), a
 * transaction's commit and rollback as a second connection sees them,
 * autocommit and the IN_TRANS status flag, errors with MySQL numbers and
 * SQLSTATEs (a serialization failure as 1213), mysql_native_password
 * (right, wrong, unknown user; trust without users), limits (connections,
 * idle timeout), malformed and oversized packets closing only their own
 * connection, and `hexad serve --mysql`.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { execFileSync, spawn } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import tls from 'node:tls'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import mysql from 'mysql2/promise'
import pg from 'pg'
import { startServer, type Harness } from './helpers/server-harness.js'
import { mysqlError, RawMysql } from './helpers/server-mysql-raw.js'

let h: Harness

test.before(async () => {
  h = await startServer({ mysql: { port: 0, users: [{ name: 'alice', password: 'wonder land' }, { name: 'guest' }] } })
})
test.after(async () => { await h.stop() })

const IN_TRANS = 1, AUTOCOMMIT = 2

const connect = (over: mysql.ConnectionOptions = {}) => mysql.createConnection({
  host: '127.0.0.1', port: h.mysqlPort, user: 'alice', password: 'wonder land', database: 'app',
  timezone: 'Z', supportBigNumbers: true, bigNumberStrings: true, ...over,
})

const errorOf = async (p: Promise<unknown>): Promise<{ code: string; errno: number; sqlState: string; message: string }> => {
  try { await p } catch (e) { return e as { code: string; errno: number; sqlState: string; message: string } }
  throw new Error('expected an error')
}

test('text protocol: DDL, DML, SELECT, the session queries clients send, multi-statements', async () => {
  const c = await connect({ multipleStatements: true })
  try {
    const [vc] = await c.query('SELECT @@version_comment LIMIT 1') as [Array<Record<string, unknown>>, unknown]
    assert.match(String(vc[0]['@@version_comment']), /hexad/)
    await c.query('SET NAMES utf8mb4')
    await c.query("SET SESSION sql_mode = 'STRICT_TRANS_TABLES', @marker = 'm1'")
    const [vars] = await c.query('SELECT @@session.sql_mode AS mode, @@autocommit, DATABASE() AS db, CONNECTION_ID() AS id, @marker AS marker, @@transaction_isolation AS iso') as [Array<Record<string, unknown>>, unknown]
    assert.is(vars[0].mode, 'STRICT_TRANS_TABLES')
    assert.is(Number(vars[0]['@@autocommit']), 1)
    assert.is(vars[0].db, 'app')
    assert.ok(Number(vars[0].id) > 0)
    assert.is(vars[0].marker, 'm1')
    assert.is(vars[0].iso, 'SERIALIZABLE')
    const unknownVar = await errorOf(c.query('SELECT @@no_such_variable'))
    assert.is(unknownVar.errno, 1193)

    await c.query('CREATE TABLE pets (id INT PRIMARY KEY, name VARCHAR(40) NOT NULL, weight DOUBLE, born DATE)')
    const [ins] = await c.query("INSERT INTO pets VALUES (1, 'rex', 12.5, '2019-04-01'), (2, 'tom', NULL, NULL), (3, 'ada', 3.25, '2021-12-31')") as [mysql.ResultSetHeader, unknown]
    assert.is(ins.affectedRows, 3)
    const [upd] = await c.query('UPDATE pets SET weight = weight + 1 WHERE weight IS NOT NULL') as [mysql.ResultSetHeader, unknown]
    assert.is(upd.affectedRows, 2)
    const [rows, fields] = await c.query('SELECT id, name, weight, born FROM pets WHERE id <> 2 ORDER BY name') as [Array<Record<string, unknown>>, mysql.FieldPacket[]]
    assert.equal(rows.map(r => [r.id, r.name, r.weight]), [[3, 'ada', 4.25], [1, 'rex', 13.5]])
    assert.is((rows[0].born as Date).toISOString(), '2021-12-31T00:00:00.000Z')
    assert.equal(fields.map(f => f.name), ['id', 'name', 'weight', 'born'])
    const [warnings] = await c.query('SHOW WARNINGS') as [unknown[], unknown]
    assert.equal(warnings, [])
    const [tables] = await c.query('SHOW TABLES') as [Array<Record<string, unknown>>, unknown]
    assert.ok(tables.some(t => Object.values(t).includes('pets')))
    const [cols] = await c.query('DESCRIBE pets') as [Array<Record<string, unknown>>, unknown]
    assert.equal(cols.map(r => [r.Field, r.Type, r.Null, r.Key]), [['id', 'int', 'NO', 'PRI'], ['name', 'varchar(40)', 'NO', ''], ['weight', 'double', 'YES', ''], ['born', 'date', 'YES', '']])
    // several statements in one COM_QUERY: one result each
    const [multi] = await c.query('SELECT COUNT(*) AS n FROM pets; DELETE FROM pets WHERE id = 2; SELECT COUNT(*) AS n FROM pets') as [unknown[], unknown]
    assert.is(multi.length, 3)
    assert.equal([(multi[0] as Array<{ n: unknown }>)[0].n, (multi[1] as mysql.ResultSetHeader).affectedRows, (multi[2] as Array<{ n: unknown }>)[0].n].map(Number), [3, 1, 2])
    await c.ping()
    await c.changeUser({ database: 'other' }).catch(() => {}) // COM_CHANGE_USER is refused; the connection stays usable
    const [again] = await c.query('SELECT COUNT(*) AS n FROM pets') as [Array<{ n: unknown }>, unknown]
    assert.is(Number(again[0].n), 2)
  } finally { await c.end() }
})

test('AUTO_INCREMENT: insertId in the OK packet (query and execute), LAST_INSERT_ID() per connection', async () => {
  const c = await connect()
  const d = await connect()
  try {
    await c.query('CREATE TABLE notes (id INT AUTO_INCREMENT PRIMARY KEY, body TEXT)')
    const [a] = await c.query("INSERT INTO notes (body) VALUES ('a')") as [mysql.ResultSetHeader, unknown]
    assert.is(a.insertId, 1)
    const [b] = await c.query("INSERT INTO notes (body) VALUES ('b'), ('c'), ('d')") as [mysql.ResultSetHeader, unknown]
    assert.is(b.insertId, 2, 'a multi-row INSERT reports its first generated id, as MySQL does')
    const [e] = await c.execute('INSERT INTO notes (body) VALUES (?)', ['e']) as [mysql.ResultSetHeader, unknown]
    assert.is(e.insertId, 5, 'a prepared INSERT')
    const [f] = await d.query("INSERT INTO notes (body) VALUES ('f')") as [mysql.ResultSetHeader, unknown]
    assert.is(f.insertId, 6)
    const [plain] = await c.query("UPDATE notes SET body = 'A' WHERE id = 1") as [mysql.ResultSetHeader, unknown]
    assert.is(plain.insertId, 0)
    const [li] = await c.query('SELECT LAST_INSERT_ID() AS id, @@last_insert_id AS v') as [Array<Record<string, unknown>>, unknown]
    assert.equal([Number(li[0].id), Number(li[0].v)], [5, 5], "each connection keeps its own last insert id (not d's 6)")
    const [li2] = await d.query('SELECT LAST_INSERT_ID() AS id') as [Array<Record<string, unknown>>, unknown]
    assert.is(Number(li2[0].id), 6)
    await c.query('DROP TABLE notes')
  } finally { await c.end(); await d.end() }
})

test('prepared statements (execute): every type and NULLs round-trip in the binary protocol; re-executed with other values', async () => {
  const c = await connect()
  try {
    await c.query(`CREATE TABLE types (id INT PRIMARY KEY, i4 INT, i8 BIGINT, f8 DOUBLE, num DECIMAL(12,3), txt TEXT, vc VARCHAR(20),
      ok BOOLEAN, bin BLOB, ts DATETIME, d DATE, j JSON)`)
    const bytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i))
    const row = [1, -2147483648, 9223372036854775807n, 1.25e-7, '-12345.678', "it's \"quoted\"\n\ttabbed ✓ \\ back", 'short', true, bytes,
      new Date('1999-12-31T23:59:58.123Z'), '2024-02-29', { a: [1, 'two', null] }]
    const [ins] = await c.execute('INSERT INTO types VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)', row) as [mysql.ResultSetHeader, unknown]
    assert.is(ins.affectedRows, 1)
    // the same statement again (mysql2 reuses the prepared statement): every parameter NULL but the key
    await c.execute('INSERT INTO types VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)', [2, null, null, null, null, null, null, null, null, null, null, null])
    await c.execute('INSERT INTO types (id, i8, f8, ok) VALUES (?, ?, ?, ?)', [3, -9007199254740993n, -0.5, false])
    const check = (r: Record<string, unknown>) => {
      assert.is(r.i4, -2147483648)
      assert.is(r.i8, '9223372036854775807')
      assert.is(r.f8, 1.25e-7)
      assert.is(r.num, '-12345.678')
      assert.is(r.txt, row[5])
      assert.is(r.vc, 'short')
      assert.is(Number(r.ok), 1)
      assert.equal(r.bin, bytes)
      assert.is((r.ts as Date).toISOString(), '1999-12-31T23:59:58.123Z')
      assert.is((r.d as Date).toISOString().slice(0, 10), '2024-02-29')
      assert.equal(r.j, { a: [1, 'two', null] })
    }
    const [bin, fields] = await c.execute('SELECT * FROM types WHERE id >= ? ORDER BY id', [1]) as [Array<Record<string, unknown>>, mysql.FieldPacket[]]
    assert.is(bin.length, 3)
    check(bin[0])
    for (const k of Object.keys(bin[1]).filter(k => k !== 'id')) assert.is(bin[1][k], null, `NULL ${k}`)
    assert.equal([bin[2].i8, bin[2].f8, Number(bin[2].ok)], ['-9007199254740993', -0.5, 0])
    // MySQL column types: LONG LONGLONG DOUBLE NEWDECIMAL BLOB VAR_STRING TINY BLOB DATETIME DATE JSON
    assert.equal(fields.map(f => f.columnType), [3, 3, 8, 5, 246, 252, 253, 1, 252, 12, 10, 245])
    // the text protocol returns the same values
    const [txt] = await c.query('SELECT * FROM types WHERE id = 1') as [Array<Record<string, unknown>>, unknown]
    check(txt[0])
    // parameters in WHERE, typed by their column; a statement with no result set
    const [sel] = await c.execute('SELECT id FROM types WHERE num = ? AND ts = ? AND vc = ?', ['-12345.678', new Date('1999-12-31T23:59:58.123Z'), 'short']) as [Array<{ id: number }>, unknown]
    assert.equal(sel, [{ id: 1 }])
    const [upd] = await c.execute('UPDATE types SET i4 = ? WHERE id IN (?, ?)', [7, 2, 3]) as [mysql.ResultSetHeader, unknown]
    assert.is(upd.affectedRows, 2)
    const [sum] = await c.execute('SELECT SUM(i4) AS s, COUNT(*) AS n FROM types WHERE i4 = ?', [7]) as [Array<{ s: unknown; n: unknown }>, unknown]
    assert.equal([Number(sum[0].s), Number(sum[0].n)], [14, 2])
    // prepare fails on what MySQL's prepare fails on: syntax and unknown tables
    assert.is((await errorOf(c.prepare('SELEC 1'))).errno, 1064)
    assert.is((await errorOf(c.prepare('SELECT * FROM nowhere WHERE id = ?'))).errno, 1146)
    // an explicit prepare / execute / close cycle
    const st = await c.prepare('SELECT vc FROM types WHERE id = ?')
    const info = (st as unknown as { statement: { parameters: unknown[]; columns: Array<{ name: string; columnType: number }> } }).statement
    assert.is(info.parameters.length, 1)
    assert.equal(info.columns.map(col => [col.name, col.columnType]), [['vc', 253]], 'the result columns are described at prepare')
    const [one] = await st.execute([1]) as [Array<{ vc: string }>, unknown]
    assert.equal(one, [{ vc: 'short' }])
    const [none] = await st.execute([99]) as [unknown[], unknown]
    assert.equal(none, [])
    st.close()
    // a larger blob (1 MiB) as a parameter and back
    const big = Buffer.alloc(1 << 20, 7)
    big[12345] = 0
    await c.execute('INSERT INTO types (id, bin) VALUES (?, ?)', [4, big])
    const [b] = await c.execute('SELECT bin FROM types WHERE id = ?', [4]) as [Array<{ bin: Buffer }>, unknown]
    assert.ok(b[0].bin.equals(big))
  } finally { await c.end() }
})

test('transactions: commit and rollback as a second connection sees them; autocommit=0; IN_TRANS status', async () => {
  const a = await connect()
  const b = await connect()
  try {
    await a.query('CREATE TABLE acct (id INT PRIMARY KEY, bal INT NOT NULL)')
    await a.query('INSERT INTO acct VALUES (1, 100), (2, 100)')
    const bal = async (c: mysql.Connection) => ((await c.query('SELECT id, bal FROM acct ORDER BY id')) as [Array<{ bal: number }>, unknown])[0].map(r => r.bal)
    const [begin] = await a.query('START TRANSACTION') as [mysql.ResultSetHeader, unknown]
    assert.is(begin.serverStatus & IN_TRANS, IN_TRANS)
    await a.execute('UPDATE acct SET bal = bal - ? WHERE id = ?', [30, 1])
    await a.execute('UPDATE acct SET bal = bal + ? WHERE id = ?', [30, 2])
    assert.equal(await bal(b), [100, 100], 'uncommitted changes are not visible')
    const [commit] = await a.query('COMMIT') as [mysql.ResultSetHeader, unknown]
    assert.is(commit.serverStatus & IN_TRANS, 0)
    assert.equal(await bal(b), [70, 130])

    await a.beginTransaction()
    await a.query('DELETE FROM acct WHERE id = 1')
    assert.equal(await bal(a), [130])
    await a.rollback()
    assert.equal(await bal(b), [70, 130], 'rolled back')

    // autocommit=0: a transaction starts with the next statement and lasts until COMMIT
    const [off] = await a.query('SET autocommit = 0') as [mysql.ResultSetHeader, unknown]
    assert.is(off.serverStatus & AUTOCOMMIT, 0)
    const [u] = await a.query('UPDATE acct SET bal = 0 WHERE id = 1') as [mysql.ResultSetHeader, unknown]
    assert.is(u.serverStatus & IN_TRANS, IN_TRANS)
    assert.equal(await bal(b), [70, 130])
    await a.query('ROLLBACK')
    await a.query('UPDATE acct SET bal = 1 WHERE id = 1')
    const [on] = await a.query('SET autocommit = 1') as [mysql.ResultSetHeader, unknown] // commits the open transaction
    assert.is(on.serverStatus & (IN_TRANS | AUTOCOMMIT), AUTOCOMMIT)
    assert.equal(await bal(b), [1, 130])

    // write skew between two transactions: the second to commit fails with 1213 / 40001 and is rolled back
    await a.query('BEGIN'); await b.query('BEGIN')
    await a.query('SELECT bal FROM acct WHERE id = 2'); await b.query('SELECT bal FROM acct WHERE id = 1')
    await a.query('UPDATE acct SET bal = 10 WHERE id = 1'); await b.query('UPDATE acct SET bal = 20 WHERE id = 2')
    await a.query('COMMIT')
    const e = await errorOf(b.query('COMMIT'))
    assert.equal([e.errno, e.sqlState, e.code], [1213, '40001', 'ER_LOCK_DEADLOCK'])
    const [after] = await b.query('SELECT 1 AS x') as [unknown, unknown]
    assert.ok(after)
    assert.equal(await bal(b), [10, 130])
  } finally { await a.end(); await b.end() }
})

test('errors: MySQL error numbers and SQLSTATEs; a failed statement in a transaction aborts it', async () => {
  const c = await connect()
  try {
    await c.query('CREATE TABLE e (id INT PRIMARY KEY, v TEXT NOT NULL)')
    await c.query("INSERT INTO e VALUES (1, 'x')")
    const cases: Array<[string, number, string, string]> = [
      ['SELEC 1', 1064, '42000', 'ER_PARSE_ERROR'],
      ['SELECT * FROM missing', 1146, '42S02', 'ER_NO_SUCH_TABLE'],
      ['SELECT nope FROM e', 1054, '42S22', 'ER_BAD_FIELD_ERROR'],
      ["INSERT INTO e VALUES (1, 'y')", 1062, '23000', 'ER_DUP_ENTRY'],
      ['INSERT INTO e VALUES (2, NULL)', 1048, '23000', 'ER_BAD_NULL_ERROR'],
      ['CREATE TABLE e (id INT)', 1050, '42S01', 'ER_TABLE_EXISTS_ERROR'],
    ]
    for (const [sql, errno, state, code] of cases) {
      const e = await errorOf(c.query(sql))
      assert.equal([e.errno, e.sqlState, e.code], [errno, state, code], sql)
      const p = await errorOf(c.execute(sql))
      assert.equal([p.errno, p.sqlState], [errno, state], `execute ${sql}`)
    }
    // the connection is still fine
    const [ok] = await c.query('SELECT COUNT(*) AS n FROM e') as [Array<{ n: unknown }>, unknown]
    assert.is(Number(ok[0].n), 1)
    // in a transaction: the error aborts it; COMMIT then reports that it rolled back
    await c.query('BEGIN')
    await c.query("INSERT INTO e VALUES (5, 'five')")
    assert.is((await errorOf(c.query("INSERT INTO e VALUES (1, 'dup')"))).errno, 1062)
    assert.equal((await errorOf(c.query('SELECT 1'))).sqlState, '25P02')
    const commit = await errorOf(c.query('COMMIT'))
    assert.equal([commit.errno, commit.sqlState], [1180, '40000'])
    const [n] = await c.query('SELECT COUNT(*) AS n FROM e') as [Array<{ n: unknown }>, unknown]
    assert.is(Number(n[0].n), 1, 'the insert before the error was rolled back with it')
  } finally { await c.end() }
})

test('auth: mysql_native_password right and wrong, unknown user, a user without a password; no user list trusts anyone', async () => {
  const wrong = await errorOf(connect({ password: 'wrong' }))
  assert.equal([wrong.errno, wrong.sqlState, wrong.code], [1045, '28000', 'ER_ACCESS_DENIED_ERROR'])
  const none = await errorOf(connect({ password: '' }))
  assert.is(none.errno, 1045)
  const unknown = await errorOf(connect({ user: 'mallory', password: 'wonder land' }))
  assert.is(unknown.errno, 1045)
  const guest = await connect({ user: 'guest', password: 'anything' })
  const [r] = await guest.query('SELECT USER() AS u') as [Array<{ u: string }>, unknown]
  assert.match(r[0].u, /^guest@/)
  await guest.end()
  const t = await startServer({ mysql: { port: 0 } })
  try {
    const c = await mysql.createConnection({ host: '127.0.0.1', port: t.mysqlPort, user: 'whoever', password: 'whatever' })
    const [x] = await c.query('SELECT 1 + 1 AS two') as [Array<{ two: number }>, unknown]
    assert.is(Number(x[0].two), 2)
    await c.end()
  } finally { await t.stop() }
})

test('TLS: with a certificate, mysql2 switches to TLS in the handshake (then authenticates and queries inside it); without one, an SSL request is refused', async () => {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'hexad-mysql-tls-'))
  const key = path.join(work, 'key.pem'), cert = path.join(work, 'cert.pem')
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=localhost'], { stdio: 'ignore' })
  const t = await startServer({ mysql: { port: 0, users: [{ name: 'sec', password: 'pw' }], tls: { key: fs.readFileSync(key), cert: fs.readFileSync(cert) } } })
  try {
    const c = await mysql.createConnection({ host: '127.0.0.1', port: t.mysqlPort, user: 'sec', password: 'pw', ssl: { rejectUnauthorized: false } })
    try {
      const stream = (c as unknown as { connection: { stream: unknown } }).connection.stream
      assert.ok(stream instanceof tls.TLSSocket, 'the mysql2 client talks TLS')
      const [rows] = await c.query('SELECT 1 + 1 AS two') as [Array<Record<string, unknown>>, unknown]
      assert.is(Number(rows[0].two), 2)
      const [p] = await c.execute('SELECT ? AS v', ['x'.repeat(100_000)]) as [Array<Record<string, unknown>>, unknown]
      assert.is(String(p[0].v).length, 100_000, 'a large prepared round trip inside TLS')
    } finally { await c.end() }
    const wrong = await errorOf(mysql.createConnection({ host: '127.0.0.1', port: t.mysqlPort, user: 'sec', password: 'nope', ssl: { rejectUnauthorized: false } }))
    assert.is(wrong.errno, 1045)
    // a plain client still works on a TLS-capable server
    const plain = await mysql.createConnection({ host: '127.0.0.1', port: t.mysqlPort, user: 'sec', password: 'pw' })
    await plain.query('SELECT 1')
    await plain.end()
  } finally {
    await t.stop()
    fs.rmSync(work, { recursive: true, force: true })
  }
  // the shared server has no certificate: a client that insists on TLS is refused
  const refused = await errorOf(mysql.createConnection({ host: '127.0.0.1', port: h.mysqlPort, user: 'alice', password: 'wonder land', ssl: { rejectUnauthorized: false } }))
  assert.ok(/secure connection|TLS|SSL/i.test(refused.message), refused.message)
})

test('limits: max connections (1040), idle timeout (4031), malformed and oversized packets close only their connection', async () => {
  const t = await startServer({ mysql: { port: 0, maxConnections: 2, idleTimeoutMs: 400, packetBytesMax: 1 << 20 } })
  try {
    const a = await RawMysql.connect(t.mysqlPort)
    const b = await mysql.createConnection({ host: '127.0.0.1', port: t.mysqlPort, user: 'u' })
    const refused = await errorOf(mysql.createConnection({ host: '127.0.0.1', port: t.mysqlPort, user: 'u' }))
    assert.is(refused.errno, 1040)
    // a malformed COM_STMT_EXECUTE (truncated) on a: error 1835, a is closed; b keeps working
    a.c.send(0, Buffer.from([0x17, 1]))
    const got = await a.c.closedBy()
    assert.is(mysqlError(got[got.length - 1])?.errno, 1835)
    const [r] = await b.query('SELECT 2 AS two') as [Array<{ two: number }>, unknown]
    assert.is(Number(r[0].two), 2)
    await b.end()
    for (let i = 0; i < 50 && t.endpoints.mysql!.connections > 0; i++) await new Promise(r => setTimeout(r, 20))
    // a packet over packetBytesMax: error 1153, closed
    const big = await RawMysql.connect(t.mysqlPort)
    big.c.send(0, Buffer.concat([Buffer.from([0x03]), Buffer.alloc((1 << 20) + 10, 0x20)]))
    const gotBig = await big.c.closedBy()
    assert.is(mysqlError(gotBig[gotBig.length - 1])?.errno, 1153)
    // an unknown command is an error, not a disconnect
    const u = await RawMysql.connect(t.mysqlPort)
    u.c.send(0, Buffer.from([0x7a]))
    assert.is(mysqlError(await u.c.next())?.errno, 1047)
    // idle: closed with 4031 after idleTimeoutMs
    const idle = await u.c.closedBy()
    assert.is(mysqlError(idle[idle.length - 1])?.errno, 4031)
  } finally { await t.stop() }
})

test('raw binary protocol: COM_STMT_SEND_LONG_DATA, parameter types kept when not re-sent, COM_STMT_RESET and CLOSE', async () => {
  const t = await startServer({ mysql: { port: 0 } })
  try {
    const { c } = await RawMysql.connect(t.mysqlPort)
    const u32 = (n: number) => { const b = Buffer.alloc(4); b.writeUInt32LE(n); return b }
    c.send(0, Buffer.from('\x03CREATE TABLE ld (id INT PRIMARY KEY, body TEXT, bin BLOB)'))
    assert.is((await c.next())!.payload[0], 0x00)
    c.send(0, Buffer.from('\x16INSERT INTO ld VALUES (?, ?, ?)'))
    const prep = (await c.next())!.payload
    assert.is(prep[0], 0x00)
    const id = prep.readUInt32LE(1)
    assert.equal([prep.readUInt16LE(5), prep.readUInt16LE(7)], [0, 3], 'no columns, three parameters')
    for (let i = 0; i < 4; i++) await c.next() // three parameter definitions and an EOF
    // parameters 1 and 2 in pieces; no answers to these
    c.send(0, Buffer.concat([Buffer.from([0x18]), u32(id), Buffer.from([1, 0]), Buffer.from('hello ')]))
    c.send(0, Buffer.concat([Buffer.from([0x18]), u32(id), Buffer.from([1, 0]), Buffer.from('wörld')]))
    c.send(0, Buffer.concat([Buffer.from([0x18]), u32(id), Buffer.from([2, 0]), Buffer.from([0, 255])]))
    // execute: NULL bitmap 0, types LONG, VAR_STRING, BLOB, then only parameter 0's value
    c.send(0, Buffer.concat([Buffer.from([0x17]), u32(id), Buffer.from([0]), u32(1), Buffer.from([0, 1, 3, 0, 253, 0, 252, 0]), u32(1)]))
    const ok1 = (await c.next())!.payload
    assert.equal([ok1[0], ok1[1]], [0x00, 1], 'OK, one row')
    // again without types (new-params-bound 0): parameter 2 NULL, parameter 1 a length-encoded string
    c.send(0, Buffer.concat([Buffer.from([0x17]), u32(id), Buffer.from([0]), u32(1), Buffer.from([0b100, 0]), u32(2), Buffer.from([1]), Buffer.from('x')]))
    assert.equal([...(await c.next())!.payload.subarray(0, 2)], [0x00, 1])
    c.send(0, Buffer.concat([Buffer.from([0x1a]), u32(id)]))
    assert.is((await c.next())!.payload[0], 0x00, 'COM_STMT_RESET answers OK')
    c.send(0, Buffer.concat([Buffer.from([0x19]), u32(id)])) // COM_STMT_CLOSE: no answer
    c.send(0, Buffer.concat([Buffer.from([0x17]), u32(id), Buffer.from([0]), u32(1)]))
    assert.is(mysqlError(await c.next())?.errno, 1243, 'a closed statement is unknown')
    c.end()
    const m = await mysql.createConnection({ host: '127.0.0.1', port: t.mysqlPort, user: 'u' })
    const [rows] = await m.query('SELECT id, body, bin FROM ld ORDER BY id') as [Array<Record<string, unknown>>, unknown]
    assert.equal(rows, [{ id: 1, body: 'hello wörld', bin: Buffer.from([0, 255]) }, { id: 2, body: 'x', bin: null }])
    await m.end()
  } finally { await t.stop() }
})

test('hexad serve --pg 0 --mysql 0: one log line per listener; both protocols see the same tables', async () => {
  const BIN = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'engine', 'cli', 'hexad.js')
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hexad-cli-mysql-'))
  const child = spawn(process.execPath, [BIN, 'serve', '--dir', dir, '--pg', '0', '--mysql', '0', '--user', 'app:pw'], { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  child.stdout.on('data', d => { out += d })
  child.stderr.on('data', d => { out += d })
  const exited = new Promise<number | null>(resolve => child.on('exit', code => resolve(code)))
  try {
    const deadline = Date.now() + 30_000
    while (!/MySQL protocol listening on 127\.0\.0\.1:(\d+)/.test(out)) {
      if (Date.now() > deadline || child.exitCode !== null) throw new Error(`no listening line: ${out}`)
      await new Promise(r => setTimeout(r, 50))
    }
    assert.is(out.split('\n').filter(l => l.includes('listening')).length, 2, out)
    const myPort = Number(/MySQL protocol listening on 127\.0\.0\.1:(\d+)/.exec(out)![1])
    const pgPort = Number(/PostgreSQL protocol listening on 127\.0\.0\.1:(\d+)/.exec(out)![1])
    const m = await mysql.createConnection({ host: '127.0.0.1', port: myPort, user: 'app', password: 'pw' })
    await m.query('CREATE TABLE shared (k INT PRIMARY KEY, v VARCHAR(10))')
    await m.execute('INSERT INTO shared VALUES (?, ?)', [1, 'from my'])
    const p = new pg.Client({ host: '127.0.0.1', port: pgPort, user: 'app', password: 'pw' })
    await p.connect()
    assert.equal((await p.query('SELECT v FROM shared WHERE k = $1', [1])).rows, [{ v: 'from my' }])
    await p.end()
    assert.is((await errorOf(mysql.createConnection({ host: '127.0.0.1', port: myPort, user: 'app', password: 'nope' }))).errno, 1045)
    const ended = new Promise(resolve => m.on('error', resolve))
    child.kill('SIGTERM')
    assert.is(await exited, 0, out)
    await ended
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL')
    fs.rmSync(dir, { recursive: true, force: true })
  }
})

test.run()
