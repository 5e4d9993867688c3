/**
 * The PostgreSQL endpoint with Debian's `psql` (installed by the harness
 * when missing): `psql -c`, a script file with \set ON_ERROR_STOP, `\dt`
 * and `\d table` (answered from the SQL catalog), COPY FROM STDIN and
 * COPY TO STDOUT in text and CSV (through psql's \copy and COPY), a cancel
 * request stopping a running statement (postgres.js query.cancel()), a read
 * or a write (which then commits nothing), and
 * TLS with a self-signed certificate (pg client and psql sslmode=require),
 * and a Unix-domain socket named as PostgreSQL names it (psql -h DIR, the pg
 * client), taking over a stale socket file and refusing one in use.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { execFile, execFileSync, spawn } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import tls from 'node:tls'
import pg from 'pg'
import postgres from 'postgres'
import { pgTool, startServer, type Harness } from './helpers/server-harness.js'

let h: Harness
let psqlBin: string
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'hexad-psql-'))

test.before(async () => {
  const p = pgTool('psql')
  if (!p) throw new Error('psql is missing and could not be installed (apt-get install postgresql-client)')
  psqlBin = p
  h = await startServer({ pg: { port: 0, auth: 'trust' } })
})
test.after(async () => { await h.stop(); fs.rmSync(work, { recursive: true, force: true }) })

/** Runs psql without blocking the server's event loop (it lives in this process). */
function psql(args: string[], extraEnv: Record<string, string> = {}, port = h.pgPort): Promise<{ code: number; out: string; err: string }> {
  const env = { ...process.env, PGHOST: '127.0.0.1', PGPORT: String(port), PGUSER: 'tester', PGDATABASE: 'db', PGCONNECT_TIMEOUT: '10', PGSSLMODE: 'disable', ...extraEnv }
  return new Promise(resolve => {
    execFile(psqlBin, ['-X', ...args], { env, encoding: 'utf8', timeout: 60_000 }, (e, out, err) => {
      resolve({ code: e ? (typeof e.code === 'number' ? e.code : -1) : 0, out, err })
    })
  })
}

test('psql -c, and \\dt / \\d describe tables from the SQL catalog', async () => {
  let r = await psql(['-c', 'CREATE TABLE items (id serial PRIMARY KEY, name varchar(20) NOT NULL, price numeric(8,2), tags json, UNIQUE (price))'])
  assert.is(r.code, 0, r.err)
  assert.is(r.out.trim(), 'CREATE TABLE')
  assert.is((await psql(['-c', 'CREATE INDEX items_name ON items (name)'])).code, 0)
  r = await psql(['-c', "INSERT INTO items (name, price, tags) VALUES ('pen', 1.5, '[1,2]') RETURNING id"])
  assert.is(r.code, 0, r.err)
  assert.ok(/ id \n----\n  1\n\(1 row\)\n\nINSERT 0 1/.test(r.out), r.out)
  r = await psql(['-At', '-c', "SELECT name, price, tags FROM items"])
  assert.is(r.out, 'pen|1.50|[1,2]\n')
  r = await psql(['-c', '\\dt'])
  assert.is(r.code, 0, r.err)
  assert.ok(/ public \| items \| table \| tester/.test(r.out), r.out)
  r = await psql(['-c', '\\d items'])
  assert.is(r.code, 0, r.err)
  for (const line of [
    'Table "public.items"',
    " id     | integer               |           | not null | nextval('items_id_seq'::regclass)",
    ' name   | character varying(20) |           | not null |',
    ' price  | numeric(8,2)          |           |          |',
    ' tags   | json                  |           |          |',
    '"items_pkey" PRIMARY KEY, btree (id)',
    '"items_name" btree (name)',
    '"items_price_key" UNIQUE CONSTRAINT, btree (price)',
  ]) assert.ok(r.out.includes(line), `missing ${JSON.stringify(line)} in\n${r.out}`)
  r = await psql(['-c', '\\d nothere'])
  assert.is(r.code, 1)
  assert.ok(r.err.includes('Did not find any relation named "nothere"'), r.err)
})

test('a script file with \\set ON_ERROR_STOP stops at the first error (exit 3), keeping what ran before', async () => {
  const file = path.join(work, 'script.sql')
  fs.writeFileSync(file, [
    '\\set ON_ERROR_STOP on',
    'CREATE TABLE log (n int PRIMARY KEY, msg text);',
    "INSERT INTO log VALUES (1, 'one');",
    'BEGIN;',
    "INSERT INTO log VALUES (2, 'two');",
    'COMMIT;',
    "INSERT INTO log VALUES (1, 'duplicate');",
    "INSERT INTO log VALUES (3, 'never');",
  ].join('\n'))
  const r = await psql(['-f', file])
  assert.is(r.code, 3, r.out + r.err)
  assert.ok(/duplicate key|already exists/.test(r.err), r.err)
  assert.is((await psql(['-At', '-c', 'SELECT n FROM log ORDER BY n'])).out, '1\n2\n')
  // without ON_ERROR_STOP psql goes on after the error
  fs.writeFileSync(file, "INSERT INTO log VALUES (1, 'dup');\nINSERT INTO log VALUES (3, 'three');\n")
  const r2 = await psql(['-f', file])
  assert.is(r2.code, 0)
  assert.is((await psql(['-At', '-c', 'SELECT n FROM log ORDER BY n'])).out, '1\n2\n3\n')
})

test('COPY FROM STDIN and TO STDOUT, text and CSV, with NULLs, quotes and escapes', async () => {
  assert.is((await psql(['-c', 'CREATE TABLE cp (id int PRIMARY KEY, name text, price numeric(6,2), data bytea)'])).code, 0)
  const csv = path.join(work, 'in.csv')
  fs.writeFileSync(csv, 'id,name,price,data\n1,"comma, ""quoted""",2.25,\\x0001\n2,,,\n3,"multi\nline",0.5,\n')
  let r = await psql(['-c', `\\copy cp FROM '${csv}' WITH (FORMAT csv, HEADER)`])
  assert.is(r.code, 0, r.err)
  assert.is(r.out.trim(), 'COPY 3')
  const txt = path.join(work, 'in.txt')
  fs.writeFileSync(txt, '4\ttab\\there\t1.00\t\\N\n5\tback\\\\slash\t\\N\t\\N\n')
  r = await psql(['-c', `\\copy cp (id, name, price, data) FROM '${txt}'`])
  assert.is(r.code, 0, r.err)
  r = await psql(['-c', 'COPY cp TO STDOUT'])
  assert.is(r.out, [
    '1\tcomma, "quoted"\t2.25\t\\\\x0001',
    '2\t\\N\t\\N\t\\N',
    '3\tmulti\\nline\t0.50\t\\N',
    '4\ttab\\there\t1.00\t\\N',
    '5\tback\\\\slash\t\\N\t\\N',
    '',
  ].join('\n'))
  r = await psql(['-c', 'COPY (SELECT id, name FROM cp WHERE id <= 3 ORDER BY id) TO STDOUT WITH (FORMAT csv, HEADER)'])
  assert.is(r.out, 'id,name\n1,"comma, ""quoted"""\n2,\n3,"multi\nline"\n')
  // a bad row fails the whole COPY: nothing of it is kept
  fs.writeFileSync(txt, '6\tok\t1\t\\N\n1\tduplicate key\t1\t\\N\n')
  r = await psql(['-c', `\\copy cp FROM '${txt}'`])
  assert.is(r.code, 1)
  assert.is((await psql(['-At', '-c', 'SELECT count(*) FROM cp'])).out, '5\n')
})

test('a cancel request stops a running statement with 57014; the connection goes on', async () => {
  const sql = postgres({ host: '127.0.0.1', port: h.pgPort, user: 'tester', max: 1, onnotice: () => {} })
  try {
    const q = sql`SELECT pg_sleep(30)`
    const started = Date.now()
    setTimeout(() => q.cancel(), 300)
    const err = await q.catch(e => e)
    assert.is(err.code, '57014')
    assert.ok(Date.now() - started < 20_000)
    assert.equal([...(await sql`SELECT 1 AS one`)], [{ one: 1 }])
  } finally { await sql.end() }
})

test('a cancel request stops a running write: 57014, nothing of it committed, the connection goes on', async () => {
  const sql = postgres({ host: '127.0.0.1', port: h.pgPort, user: 'tester', max: 1, onnotice: () => {} })
  try {
    await sql`CREATE TABLE cancelled_writes (id bigint PRIMARY KEY)`
    // A million rows to insert in one statement: far longer than the 300 ms before the cancel.
    const q = sql`INSERT INTO cancelled_writes SELECT a * 1000 + b FROM generate_series(0, 999) AS a, generate_series(0, 999) AS b`
    setTimeout(() => q.cancel(), 300)
    const err = await q.catch(e => e)
    assert.is(err.code, '57014', String(err))
    assert.equal([...(await sql`SELECT count(*)::int AS n FROM cancelled_writes`)], [{ n: 0 }], 'nothing of the cancelled statement was committed')
    await sql`INSERT INTO cancelled_writes VALUES (1)`
    assert.equal([...(await sql`SELECT count(*)::int AS n FROM cancelled_writes`)], [{ n: 1 }])
    await sql`DROP TABLE cancelled_writes`
  } finally { await sql.end() }
})

test('TLS: with a certificate, clients can use TLS (pg with ssl, psql sslmode=require)', async () => {
  const key = path.join(work, 'key.pem'), cert = path.join(work, 'cert.pem')
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=localhost'], { stdio: 'ignore' })
  const t = await startServer({ pg: { port: 0, auth: 'trust', tls: { key: fs.readFileSync(key), cert: fs.readFileSync(cert) } } })
  try {
    const c = new pg.Client({ host: '127.0.0.1', port: t.pgPort, user: 'tls', ssl: { rejectUnauthorized: false } })
    await c.connect()
    const stream = (c as unknown as { connection: { stream: unknown } }).connection.stream
    assert.ok(stream instanceof tls.TLSSocket, 'the pg client talks TLS')
    assert.equal((await c.query('SELECT $1::int + 1 AS n', [41])).rows, [{ n: 42 }])
    await c.end()
    const r = await psql(['-At', '-c', 'SELECT 7'], { PGSSLMODE: 'require', PGUSER: 'tls' }, t.pgPort)
    assert.is(r.code, 0, r.err)
    assert.is(r.out, '7\n')
  } finally { await t.stop() }
})

test('a Unix-domain socket DIR/.s.PGSQL.PORT: psql -h DIR and pg reach it; a stale socket file is taken over, one in use refused', async () => {
  const dir = fs.mkdtempSync(path.join(work, 'sock-'))
  // a stale socket file: its listener was killed before it could remove it
  const port = await new Promise<number>(resolve => { const s = net.createServer().listen(0, '127.0.0.1', () => { const p = (s.address() as net.AddressInfo).port; s.close(() => resolve(p)) }) })
  const file = path.join(dir, `.s.PGSQL.${port}`)
  const child = spawn(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(file)}, () => console.log('up'))`], { stdio: ['ignore', 'pipe', 'inherit'] })
  await new Promise(resolve => child.stdout!.once('data', resolve))
  child.kill('SIGKILL')
  await new Promise(resolve => child.once('exit', resolve))
  assert.ok(fs.existsSync(file), 'the killed listener left its socket file')
  const t = await startServer({ pg: { port, auth: 'trust', socketDir: dir } })
  try {
    assert.is(t.endpoints.pg!.socketPath, file)
    let r = await psql(['-Atc', 'CREATE TABLE u (k int PRIMARY KEY); INSERT INTO u VALUES (1), (2); SELECT count(*) FROM u'], { PGHOST: dir }, port)
    assert.is(r.code, 0, r.err)
    assert.is(r.out, 'CREATE TABLE\nINSERT 0 2\n2\n')
    const c = new pg.Client({ host: dir, port, user: 'tester', database: 'db' })
    await c.connect()
    try {
      assert.equal((await c.query('SELECT k FROM u ORDER BY k')).rows, [{ k: 1 }, { k: 2 }])
    } finally { await c.end() }
    // a second server for the same directory and port (TCP on another loopback address): the socket answers, so it is in use
    const { startPgServer } = await import('../engine/server/pg/server.js')
    let err: unknown
    try { await (await startPgServer(t.cluster.writer, { port, host: '127.0.0.2', socketDir: dir })).close() } catch (e) { err = e }
    assert.ok(/is in use by another server/.test(String((err as Error)?.message)), `the live socket file is not taken over: ${String(err)}`)
    r = await psql(['-Atc', 'SELECT 1'], { PGHOST: dir }, port)
    assert.is(r.out, '1\n', 'the first server still answers on its socket')
  } finally {
    await t.stop()
  }
  assert.not.ok(fs.existsSync(file), 'close removes the socket file')
})

test.run()
