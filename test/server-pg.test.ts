/**
 * The PostgreSQL endpoint with the two common Node clients, `pg` and
 * `postgres`: simple and parameterised queries, named prepared statements,
 * transactions (commit, rollback, failed block status), errors with their
 * SQLSTATE, NULLs and every supported type round-tripping in text and
 * binary result formats, SCRAM-SHA-256 (right and wrong password), trust
 * with a user list, SET / SHOW / version() / current_setting, portals with
 * a row limit (pg-cursor style), and a malformed message closing only its
 * own connection.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import net from 'node:net'
import pg from 'pg'
import postgres from 'postgres'
import { startServer, type Harness } from './helpers/server-harness.js'
import { cstr, errorCode, i16, i32, RawPg } from './helpers/server-raw.js'

let h: Harness

test.before(async () => {
  h = await startServer({ pg: { port: 0, users: [{ name: 'alice', password: 'wonder land' }, { name: 'bob', password: 'b0b' }] } })
})
test.after(async () => { await h.stop() })

const pgClient = (over: Partial<pg.ClientConfig> = {}) =>
  new pg.Client({ host: '127.0.0.1', port: h.pgPort, user: 'alice', password: 'wonder land', database: 'app', ...over })

const codeOf = async (p: Promise<unknown>): Promise<string> => {
  try { await p } catch (e) { return (e as { code: string }).code }
  throw new Error('expected an error')
}

const TYPES = `CREATE TABLE types (
  id int PRIMARY KEY, i4 integer, i8 bigint, f8 double precision, num numeric(12,3), txt text, vc varchar(20),
  ok boolean, bin bytea, ts timestamp, d date, j json, jb jsonb)`

const ROW = {
  id: 1, i4: -2147483648, i8: '9223372036854775807', f8: 1.25e-7, num: '-12345.678', txt: "it's \"quoted\"\n\ttabbed ✓",
  vc: 'short', ok: false, bin: Buffer.from([0, 1, 2, 254, 255]), ts: new Date('1999-12-31T23:59:58.123Z'), d: '2024-02-29',
  j: { a: [1, 'two', null], b: { c: true } }, jb: [1, 2, 3],
}

test('pg: SCRAM login, simple and parameterised queries, every type and NULLs round-trip', async () => {
  const c = pgClient()
  await c.connect()
  try {
    await c.query(TYPES)
    const cols = Object.keys(ROW)
    await c.query(`INSERT INTO types (${cols}) VALUES (${cols.map((_, i) => '$' + (i + 1))})`, cols.map(k => {
      const v = (ROW as Record<string, unknown>)[k]
      return k === 'j' || k === 'jb' ? JSON.stringify(v) : v
    }))
    await c.query('INSERT INTO types (id) VALUES (2)')
    const r = await c.query('SELECT * FROM types ORDER BY id')
    assert.is(r.rowCount, 2)
    const got = r.rows[0]
    assert.is(got.i4, ROW.i4)
    assert.is(got.i8, ROW.i8)
    assert.is(got.f8, ROW.f8)
    assert.is(got.num, ROW.num)
    assert.is(got.txt, ROW.txt)
    assert.is(got.vc, ROW.vc)
    assert.is(got.ok, false)
    assert.equal(got.bin, ROW.bin)
    assert.is(got.ts.toISOString(), ROW.ts.toISOString())
    assert.is(got.d.toISOString().slice(0, 10), ROW.d) // pg parses date as local midnight; the test runs in UTC
    assert.equal(got.j, ROW.j)
    assert.equal(got.jb, ROW.jb)
    for (const k of cols.slice(1)) assert.is(r.rows[1][k], null, `NULL ${k}`)
    assert.equal(r.fields.map((f: pg.FieldDef) => f.dataTypeID), [23, 23, 20, 701, 1700, 25, 1043, 16, 17, 1114, 1082, 114, 3802])
    // a literal query with no parameters, and a parameter typed by its column
    const s = await c.query("SELECT txt, num FROM types WHERE num = '-12345.678'")
    assert.equal(s.rows, [{ txt: ROW.txt, num: ROW.num }])
  } finally { await c.end() }
})

test('pg: named prepared statements, transactions and ReadyForQuery status, errors with SQLSTATE', async () => {
  const c = pgClient()
  await c.connect()
  try {
    await c.query('CREATE TABLE acct (id int PRIMARY KEY, bal int NOT NULL)')
    const ins = { name: 'ins', text: 'INSERT INTO acct VALUES ($1, $2) RETURNING id, bal' }
    assert.equal((await c.query({ ...ins, values: [1, 100] })).rows, [{ id: 1, bal: 100 }])
    assert.equal((await c.query({ ...ins, values: [2, 50] })).rows, [{ id: 2, bal: 50 }])
    assert.is(await codeOf(c.query({ ...ins, values: [1, 7] })), '23505')
    assert.is(await codeOf(c.query('INSERT INTO acct VALUES (3, NULL)')), '23502')
    assert.is(await codeOf(c.query('SELEC 1')), '42601')
    assert.is(await codeOf(c.query('SELECT nope FROM acct')), '42703')
    // commit
    await c.query('BEGIN')
    await c.query('UPDATE acct SET bal = bal - 10 WHERE id = 1')
    await c.query('UPDATE acct SET bal = bal + 10 WHERE id = 2')
    await c.query('COMMIT')
    // rollback, and a failed block: everything refused until ROLLBACK
    await c.query('BEGIN')
    await c.query('UPDATE acct SET bal = 0')
    assert.is(await codeOf(c.query('SELECT 1/0')), '22012')
    assert.is(await codeOf(c.query('SELECT 1')), '25P02')
    await c.query('ROLLBACK')
    assert.equal((await c.query('SELECT id, bal FROM acct ORDER BY id')).rows, [{ id: 1, bal: 90 }, { id: 2, bal: 60 }])
    // the connection still works after every error
    assert.equal((await c.query({ name: 'ins', text: ins.text, values: [3, 1] })).rowCount, 1)
  } finally { await c.end() }
})

test('pg: SET, SHOW, current_setting, version()', async () => {
  const c = pgClient({ user: 'bob', password: 'b0b' })
  await c.connect()
  try {
    await c.query("SET application_name = 'tester'")
    assert.equal((await c.query('SHOW application_name')).rows, [{ application_name: 'tester' }])
    assert.equal((await c.query("SELECT current_setting('application_name') AS a, current_user AS u")).rows, [{ a: 'tester', u: 'bob' }])
    assert.ok(/^PostgreSQL 15\.0 \(hexad/.test((await c.query('SELECT version()')).rows[0].version))
    assert.is(await codeOf(c.query('SHOW no_such_setting')), '42704')
    // the first word is matched in any case, after any leading whitespace
    await c.query("\ufeff  \n\tSet application_name TO 'mixed'")
    assert.equal((await c.query(' \n shOW application_name;')).rows, [{ application_name: 'mixed' }])
    assert.ok(/^PostgreSQL 15\.0/.test((await c.query('\n sElEcT version()')).rows[0].version))
    await c.query('RESET application_name')
    assert.equal((await c.query('show application_name')).rows, [{ application_name: '' }])
    // strings with non-ASCII characters in backend messages (an error's text) arrive intact
    let msg = ''
    try { await c.query('SELECT * FROM "tablé_✓"') } catch (e) { msg = (e as Error).message }
    assert.ok(msg.includes('tablé_✓'), msg)
    assert.is(await codeOf(c.query("SET TIME ZONE 'Europe/Paris'")), '22023')
    await c.query('CREATE TABLE nums (n int PRIMARY KEY)')
    await c.query(`INSERT INTO nums VALUES ${Array.from({ length: 25 }, (_, i) => `(${i})`).join(',')}`)
  } finally { await c.end() }
})

test('extended protocol by hand: a portal read in slices (PortalSuspended), errors skip to Sync', async () => {
  const t = await startServer({ pg: { port: 0, auth: 'trust' } })
  const c = await RawPg.connect(t.pgPort)
  try {
    c.send('Q', cstr(`CREATE TABLE nums (n int PRIMARY KEY)`))
    await c.until('Z')
    c.send('Q', cstr(`INSERT INTO nums VALUES ${Array.from({ length: 25 }, (_, i) => `(${i})`).join(',')}`))
    await c.until('Z')
    c.send('P', Buffer.concat([cstr(''), cstr('SELECT n FROM nums ORDER BY n'), i16(0)]))
    c.send('B', Buffer.concat([cstr('cur'), cstr(''), i16(0), i16(0), i16(0)]))
    const counts: number[] = []
    for (;;) {
      c.send('E', Buffer.concat([cstr('cur'), i32(10)]))
      c.send('H')
      const ms = await c.until(counts.length < 2 ? 's' : 'C')
      counts.push(ms.filter(m => m.type === 'D').length)
      if (ms[ms.length - 1].type === 'C') break
    }
    assert.equal(counts, [10, 10, 5])
    c.send('S')
    const z = await c.until('Z')
    assert.is(z[z.length - 1].body.toString(), 'I')
    // an error in Parse: Bind and Execute are skipped, one ErrorResponse, then ReadyForQuery
    c.send('P', Buffer.concat([cstr(''), cstr('SELECT FROM WHERE'), i16(0)]))
    c.send('B', Buffer.concat([cstr(''), cstr(''), i16(0), i16(0), i16(0)]))
    c.send('E', Buffer.concat([cstr(''), i32(0)]))
    c.send('S')
    const ms = await c.until('Z')
    assert.equal(ms.map(m => m.type), ['E', 'Z'])
    assert.is(errorCode(ms[0]), '42601')
    // binary results (pg's parser reads text only, so they are checked byte by byte here) and a binary parameter
    c.send('Q', cstr(`CREATE TABLE bin (id int PRIMARY KEY, i4 int, i8 bigint, f8 double precision, num numeric, ok boolean, b bytea, ts timestamp, d date, jb jsonb, t text)`))
    await c.until('Z')
    c.send('Q', cstr(`INSERT INTO bin VALUES (7, -2147483648, -9223372036854775808, 0.1, -12345.678, true, '\\x00ff', '2000-01-02 00:00:01.5', '1999-12-31', '{"a":1}', 'é'), (8, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)`))
    assert.equal((await c.until('Z')).map(m => m.type), ['C', 'Z'])
    const i64 = (n: bigint) => { const b = Buffer.alloc(8); b.writeBigInt64BE(n); return b }
    c.send('P', Buffer.concat([cstr('sb'), cstr('SELECT i4, i8, f8, num, ok, b, ts, d, jb, t FROM bin WHERE id = $1'), i16(1), i32(23)]))
    c.send('B', Buffer.concat([cstr(''), cstr('sb'), i16(1), i16(1), i16(1), i32(4), i32(7), i16(1), i16(1)]))
    c.send('D', Buffer.concat([Buffer.from('P'), cstr('')]))
    c.send('E', Buffer.concat([cstr(''), i32(0)]))
    c.send('S')
    const res = await c.until('Z')
    assert.equal(res.map(m => m.type), ['1', '2', 'T', 'D', 'C', 'Z'])
    const row = res[3].body
    const cols: Buffer[] = []
    for (let i = 0, off = 2; i < row.readInt16BE(0); i++) { const n = row.readInt32BE(off); cols.push(row.subarray(off + 4, off + 4 + n)); off += 4 + n }
    const f8 = Buffer.alloc(8); f8.writeDoubleBE(0.1)
    assert.equal(cols.map(x => x.toString('hex')), [
      '80000000', i64(-(2n ** 63n)).toString('hex'), f8.toString('hex'),
      '0003' + '0001' + '4000' + '0003' + '0001' + '0929' + '1a7c', // numeric: 3 digits, weight 1, negative, dscale 3: 1 2345 6780
      '01', '00ff', i64(1_500_000n + 86_400_000_000n).toString('hex'), 'ffffffff', '01' + Buffer.from('{"a":1}').toString('hex'), Buffer.from('é').toString('hex'),
    ])
    c.send('B', Buffer.concat([cstr(''), cstr('sb'), i16(1), i16(1), i16(1), i32(4), i32(8), i16(1), i16(1)]))
    c.send('E', Buffer.concat([cstr(''), i32(0)]))
    c.send('S')
    const nul = (await c.until('Z')).find(m => m.type === 'D')!.body
    assert.is(nul.readInt16BE(0), 10)
    for (let i = 0; i < 10; i++) assert.is(nul.readInt32BE(2 + i * 4), -1)
    // in a transaction block: status T, then E after an error, I after ROLLBACK
    const status = async (q: string) => { c.send('Q', cstr(q)); const r = await c.until('Z'); return r[r.length - 1].body.toString() }
    assert.is(await status('BEGIN'), 'T')
    assert.is(await status('SELECT 1/0'), 'E')
    assert.is(await status('ROLLBACK'), 'I')
  } finally { c.end(); await t.stop() }
})

test('postgres: tagged queries, describe-first prepared statements, every type, transactions, errors', async () => {
  const sql = postgres({ host: '127.0.0.1', port: h.pgPort, user: 'alice', password: 'wonder land', database: 'app', max: 2, onnotice: () => {} })
  try {
    await sql`CREATE TABLE pj (id int PRIMARY KEY, i8 bigint, num numeric, txt text, ok boolean, bin bytea, ts timestamp, d date, jb jsonb, f8 double precision)`
    const ts = new Date('2030-01-02T03:04:05.006Z')
    await sql`INSERT INTO pj VALUES (${1}, ${'-9223372036854775808'}, ${'0.000001'}, ${'ünïcode'}, ${true}, ${Buffer.from('hi\0there')}, ${ts}, ${'1970-01-01'}, ${sql.json({ k: 'v' })}, ${-0.5})`
    await sql`INSERT INTO pj (id) VALUES (${2})`
    const rows = await sql`SELECT * FROM pj WHERE id = ${1}`
    const r = rows[0]
    assert.is(r.i8, '-9223372036854775808')
    assert.is(r.num, '0.000001')
    assert.is(r.txt, 'ünïcode')
    assert.is(r.ok, true)
    assert.equal(Buffer.from(r.bin), Buffer.from('hi\0there'))
    assert.is(new Date(r.ts).getTime(), ts.getTime())
    assert.equal(r.jb, { k: 'v' })
    assert.is(r.f8, -0.5)
    // same statement again: postgres.js reuses its prepared statement (Bind/Execute only)
    for (const id of [2, 1, 2]) assert.is((await sql`SELECT id, txt FROM pj WHERE id = ${id}`)[0].id, id)
    const nulls = (await sql`SELECT * FROM pj WHERE id = ${2}`)[0]
    for (const [k, v] of Object.entries(nulls)) if (k !== 'id') assert.is(v, null, k)
    await sql.begin(async tx => { await tx`UPDATE pj SET txt = ${'in tx'} WHERE id = ${2}` })
    const err = await sql.begin(async tx => { await tx`UPDATE pj SET txt = ${'lost'} WHERE id = ${2}`; await tx`SELECT * FROM missing_table` }).catch(e => e)
    assert.is(err.code, '42P01')
    assert.is((await sql`SELECT txt FROM pj WHERE id = ${2}`)[0].txt, 'in tx')
    const unique = await sql`INSERT INTO pj (id) VALUES (${1})`.catch(e => e)
    assert.is(unique.code, '23505')
    const simple = await sql.unsafe('SELECT 1 AS one; SELECT 2 AS two')
    assert.equal(simple.map((x: any) => x[0]), [{ one: 1 }, { two: 2 }])
  } finally { await sql.end() }
})

test('several statements in one simple query run as one implicit transaction, as in PostgreSQL', async () => {
  const c = pgClient()
  await c.connect()
  try {
    await c.query('CREATE TABLE multi (id int PRIMARY KEY, v text)')
    // An error in the third statement rolls back the first two.
    assert.is(await codeOf(c.query("INSERT INTO multi VALUES (1, 'a'); INSERT INTO multi VALUES (2, 'b'); INSERT INTO multi VALUES (1, 'dup')")), '23505')
    assert.equal((await c.query('SELECT count(*)::int AS n FROM multi')).rows, [{ n: 0 }], 'nothing of the failed query is left')
    // Without an error all of them commit, and the session is idle again.
    await c.query("INSERT INTO multi VALUES (1, 'a'); UPDATE multi SET v = 'b' WHERE id = 1; INSERT INTO multi VALUES (2, 'c')")
    assert.equal((await c.query('SELECT id, v FROM multi ORDER BY id')).rows, [{ id: 1, v: 'b' }, { id: 2, v: 'c' }])
    // Explicit transaction control inside the string is left to the statements themselves.
    await c.query("BEGIN; INSERT INTO multi VALUES (3, 'd'); ROLLBACK")
    assert.equal((await c.query('SELECT count(*)::int AS n FROM multi')).rows, [{ n: 2 }])
    await c.query("BEGIN; INSERT INTO multi VALUES (3, 'd')")
    await c.query('COMMIT')
    assert.equal((await c.query('SELECT count(*)::int AS n FROM multi')).rows, [{ n: 3 }])
    await c.query('DROP TABLE multi')
  } finally {
    await c.end()
  }
})

test('auth: wrong password and unknown user get 28P01/28000; trust with a user list refuses others', async () => {
  const wrong = pgClient({ password: 'nope' })
  assert.ok(['28P01', '28000'].includes(await codeOf(wrong.connect())))
  const unknown = pgClient({ user: 'mallory', password: 'x' })
  assert.ok(['28P01', '28000'].includes(await codeOf(unknown.connect())))
  const t = await startServer({ pg: { port: 0, auth: 'trust', users: [{ name: 'dev' }] } })
  try {
    const ok = new pg.Client({ host: '127.0.0.1', port: t.pgPort, user: 'dev' })
    await ok.connect()
    assert.equal((await ok.query('SELECT current_user AS u')).rows, [{ u: 'dev' }])
    await ok.end()
    const other = new pg.Client({ host: '127.0.0.1', port: t.pgPort, user: 'eve' })
    assert.is(await codeOf(other.connect()), '28000')
  } finally { await t.stop() }
})

test('a malformed message closes only its connection, with FATAL 08P01', async () => {
  const t = await startServer({ pg: { port: 0, auth: 'trust' } })
  try {
    const bad = await RawPg.connect(t.pgPort)
    const good = await RawPg.connect(t.pgPort)
    // a Query message whose length field claims 2 bytes (less than its own 4)
    bad.socket.write(Buffer.from([0x51, 0, 0, 0, 2]))
    const got = await bad.closedBy()
    assert.ok(bad.closed)
    assert.equal(got.map(m => m.type), ['E'])
    assert.is(errorCode(got[0]), '08P01')
    // an unknown message type does the same
    const bad2 = await RawPg.connect(t.pgPort)
    bad2.send('@', Buffer.from('x'))
    const got2 = await bad2.closedBy()
    assert.ok(bad2.closed)
    assert.is(errorCode(got2[0]), '08P01')
    // the other connection is untouched
    good.send('Q', cstr('SELECT 41 + 1 AS x'))
    const ms = await good.until('Z')
    assert.equal(ms.map(m => m.type), ['T', 'D', 'C', 'Z'])
    good.end()
  } finally { await t.stop() }
})

test('a client that sends its first queries before ReadyForQuery is answered, in order', async () => {
  const t = await startServer({ pg: { port: 0, auth: 'trust' } })
  try {
    const q = (sql: string) => { const b = cstr(sql); const h = Buffer.alloc(5); h[0] = 0x51; h.writeInt32BE(b.length + 4, 1); return Buffer.concat([h, b]) }
    for (let round = 0; round < 5; round++) {
      const c = await RawPg.connect(t.pgPort, 'test', Buffer.concat([q(`SELECT ${round} AS a`), q('SELECT 2 AS b')]))
      const first = await c.until('Z')
      const second = await c.until('Z')
      assert.equal([...first, ...second].map(m => m.type), ['T', 'D', 'C', 'Z', 'T', 'D', 'C', 'Z'], `round ${round}`)
      assert.ok(first[1].body.includes(Buffer.from(String(round))), `round ${round}: the first answer is the first query's`)
      c.end()
    }
  } finally { await t.stop() }
})

test.run()
