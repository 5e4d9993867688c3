/**
 * SQL sessions, transactions, errors, the statement cache and fault
 * injection:
 * - BEGIN ... COMMIT / ROLLBACK map to one engine transaction: own writes
 *   (DDL and TRUNCATE too) visible inside, invisible to other sessions until
 *   COMMIT, gone after ROLLBACK; status I / T / E; MySQL's implicit commit.
 * - A failed statement aborts the transaction block: later statements get
 *   25P02 until ROLLBACK; COMMIT then rolls back.
 * - Write skew between two sessions: one COMMIT fails with 40001 and the
 *   session stays usable; autocommit increments from 24 concurrent callers
 *   all land (point UPDATEs lock the row: no conflict, no retry).
 * - Statements differing only in literals share one parse and one plan
 *   (pgbench-style inlined literals); DDL invalidates plans.
 * - ALTER SYSTEM SIMULATE AZ / DISK FAILURE stops segments and restarts
 *   them after the interval, while writes keep committing; the cluster
 *   emits 'fault' for each restart, and a restart that fails is reported
 *   and tried again; ALTER SYSTEM
 *   CRASH crashes the writer (57P01 after) and fails the cluster over to a
 *   new writer that has every committed row; a reopen recovers every
 *   committed row and none of the open transaction's.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { openCluster, splitStatements, type FaultEvent, type SqlError } from '../engine/index.js'
import { sqlEngine } from '../engine/sql/index.js'
import { literalShape } from '../engine/sql/lexer.js'
import { kvOptions } from './helpers/kv-helpers.js'
import { sclsConverged } from './helpers/volume-helpers.js'
import { cleanupTempDirs, withSql } from './helpers/sql-helpers.js'

test.after(() => cleanupTempDirs())

async function fails(p: Promise<unknown>, state: string, what: string, match?: RegExp): Promise<SqlError> {
  try { await p } catch (e) {
    const se = e as SqlError
    assert.is(se.sqlstate, state, `${what}: expected ${state}, got ${se.sqlstate}: ${se.message}`)
    assert.is(se.code, 'HEXAD_SQL', `${what}: HexadError code`)
    if (match) assert.match(se.message, match, what)
    return se
  }
  assert.unreachable(`${what}: expected SQLSTATE ${state}, but it succeeded`)
  throw new Error('unreachable')
}

test('BEGIN / COMMIT / ROLLBACK: isolation between sessions, status, own writes', async () => {
  await withSql('sql-tx', async cluster => {
    const db = cluster.writer
    await db.sql('CREATE TABLE t (id INT PRIMARY KEY, v TEXT)')
    const s1 = db.session(), s2 = db.session()
    assert.is(s1.status, 'I')
    assert.is((await s1.sql('BEGIN')).command, 'BEGIN')
    assert.is(s1.status, 'T')
    assert.ok(s1.inTransaction)
    await s1.sql("INSERT INTO t VALUES (1, 'a'), (2, 'b')")
    await s1.sql("UPDATE t SET v = 'bb' WHERE id = 2")
    assert.equal((await s1.sql('SELECT v FROM t ORDER BY id')).rows, [{ v: 'a' }, { v: 'bb' }], 'own writes visible inside')
    assert.equal((await s2.sql('SELECT COUNT(*) AS n FROM t')).rows, [{ n: 0 }], 'invisible to another session before COMMIT')
    assert.equal((await db.sql('SELECT COUNT(*) AS n FROM t')).rows, [{ n: 0 }], 'invisible to autocommit before COMMIT')
    assert.is((await s1.sql('COMMIT')).command, 'COMMIT')
    assert.is(s1.status, 'I')
    assert.equal((await s2.sql('SELECT v FROM t ORDER BY id')).rows, [{ v: 'a' }, { v: 'bb' }], 'visible after COMMIT')
    // ROLLBACK drops everything
    await s2.sql('START TRANSACTION')
    await s2.sql('DELETE FROM t WHERE id = 1')
    await s2.sql("INSERT INTO t VALUES (3, 'c')")
    assert.is((await s2.sql('SELECT COUNT(*) AS n FROM t')).rows[0].n, 2)
    assert.is((await s2.sql('ROLLBACK')).command, 'ROLLBACK')
    assert.equal((await db.sql('SELECT id FROM t ORDER BY id')).rows, [{ id: 1 }, { id: 2 }])
    // db.sql() is autocommit only
    await fails(db.sql('BEGIN'), '0A000', 'BEGIN through db.sql()', /session/)
    // transactional DDL (PostgreSQL): visible inside the block, to others at COMMIT, gone with ROLLBACK
    await s1.sql('BEGIN')
    await s1.sql('CREATE TABLE u (a INT PRIMARY KEY, b TEXT)')
    await s1.sql("INSERT INTO u VALUES (1, 'x')")
    await s1.sql('CREATE INDEX u_b ON u (b)')
    assert.equal((await s1.sql("SELECT a FROM u WHERE b = 'x'")).rows, [{ a: 1 }])
    await fails(s2.sql('SELECT * FROM u'), '42P01', 'an uncommitted table is invisible to other sessions')
    await s1.sql('COMMIT')
    assert.equal((await s2.sql("SELECT a FROM u WHERE b = 'x'")).rows, [{ a: 1 }])
    assert.match((await db.sql("EXPLAIN SELECT a FROM u WHERE b = 'x'")).rows.map(r => r['QUERY PLAN']).join('\n'), /index u_b/)
    await s1.sql('BEGIN')
    await s1.sql('CREATE TABLE v (a INT)')
    await s1.sql('DROP TABLE u')
    await fails(s1.sql('SELECT * FROM u'), '42P01', 'dropped inside the block')
    await s1.sql('ROLLBACK')
    assert.equal((await db.sql('SELECT a, b FROM u')).rows, [{ a: 1, b: 'x' }], 'the DROP was rolled back')
    await fails(db.sql('SELECT * FROM v'), '42P01', 'the CREATE was rolled back')
    await db.sql('CREATE TABLE v (a INT)')
    await s1.sql('BEGIN')
    await fails(s1.sql('CREATE TABLE v (a INT)'), '42P07', 'a failing DDL aborts the block')
    assert.is(s1.status, 'E')
    await s1.sql('ROLLBACK')
    // TRUNCATE is transactional (PostgreSQL): rolled back with its block
    await s2.sql('BEGIN')
    await s2.sql('TRUNCATE TABLE t')
    assert.equal((await s2.sql('SELECT COUNT(*) AS n FROM t')).rows, [{ n: 0 }])
    await s2.sql("INSERT INTO t VALUES (7, 'g')")
    await s2.sql('ROLLBACK')
    assert.equal((await db.sql('SELECT id FROM t ORDER BY id')).rows, [{ id: 1 }, { id: 2 }])
    await s2.sql('BEGIN')
    await s2.sql('TRUNCATE t')
    await s2.sql("INSERT INTO t VALUES (7, 'g')")
    await s2.sql('COMMIT')
    assert.equal((await db.sql('SELECT id FROM t ORDER BY id')).rows, [{ id: 7 }])
    await db.sql("INSERT INTO t VALUES (1, 'a'), (2, 'bb')")
    await db.sql('DELETE FROM t WHERE id = 7')
    // MySQL: DDL commits the open transaction first (an implicit commit)
    const m = db.session({ dialect: 'mysql' })
    await m.sql('START TRANSACTION')
    await m.sql("INSERT INTO t VALUES (5, 'before ddl')")
    await m.sql('CREATE TABLE w (a INT)')
    assert.is(m.status, 'I')
    assert.equal((await db.sql('SELECT v FROM t WHERE id = 5')).rows, [{ v: 'before ddl' }])
    await m.close()
    // close() rolls back an open transaction
    await s1.sql('BEGIN')
    await s1.sql("INSERT INTO t VALUES (9, 'z')")
    await s1.close()
    assert.equal((await db.sql('SELECT COUNT(*) AS n FROM t WHERE id = 9')).rows, [{ n: 0 }])
    await fails(s1.sql('SELECT 1'), '57P01', 'a closed session')
    await s2.close()
  })
})

test('a failed statement aborts the block: 25P02 until ROLLBACK; COMMIT of a failed block rolls back', async () => {
  await withSql('sql-tx-fail', async cluster => {
    const db = cluster.writer
    await db.sql('CREATE TABLE t (id INT PRIMARY KEY, v INT NOT NULL)')
    const s = db.session()
    await s.sql('BEGIN')
    await s.sql('INSERT INTO t VALUES (1, 1)')
    await fails(s.sql('INSERT INTO t VALUES (1, 2)'), '23505', 'duplicate inside the block')
    assert.is(s.status, 'E')
    assert.ok(s.inTransaction)
    await fails(s.sql('SELECT 1'), '25P02', 'statement after the failure', /aborted/)
    await fails(s.sql('INSERT INTO t VALUES (2, 2)'), '25P02', 'a write after the failure')
    assert.is((await s.sql('COMMIT')).command, 'ROLLBACK', 'COMMIT of a failed block reports ROLLBACK')
    assert.is(s.status, 'I')
    assert.equal((await s.sql('SELECT COUNT(*) AS n FROM t')).rows, [{ n: 0 }], 'nothing of the failed block was committed')
    // a syntax error aborts too; ROLLBACK recovers
    await s.sql('BEGIN')
    await s.sql('INSERT INTO t VALUES (5, 5)')
    await fails(s.sql('SELEC oops'), '42601', 'syntax error in the block')
    await fails(s.sql('SELECT 1'), '25P02', 'after the syntax error')
    await s.sql('ROLLBACK')
    assert.equal((await s.sql('SELECT COUNT(*) AS n FROM t')).rows, [{ n: 0 }])
    // outside a block, errors leave the session and database usable
    await fails(s.sql('INSERT INTO t VALUES (6, NULL)'), '23502', 'not null', /"v"/)
    await fails(s.sql('SELECT * FROM missing'), '42P01', 'undefined table', /missing/)
    await fails(s.sql('SELECT nope FROM t'), '42703', 'undefined column', /nope/)
    await fails(s.sql("SELECT * FROM t WHERE id = 'x'"), '22P02', 'bad input', /invalid input syntax .*"x"/)
    await fails(s.sql('SELECT 1; SELECT 2'), '0A000', 'two statements', /several statements/)
    await fails(s.sql('SELECT $1::int', []), '08P01', 'a missing parameter', /\$1/)
    await fails(s.sql('SELECT 1', 'x' as unknown as unknown[]), '22023', 'parameters not an array')
    await fails(s.sql('SAVEPOINT a'), '0A000', 'savepoints')
    assert.equal((await s.sql('INSERT INTO t VALUES (7, 7) RETURNING id')).rows, [{ id: 7 }])
    await s.close()
  })
})

test('serialization failures surface as 40001; point UPDATEs from many autocommit callers all land', async () => {
  await withSql('sql-tx-40001', async cluster => {
    const db = cluster.writer
    await db.sql('CREATE TABLE acct (id INT PRIMARY KEY, bal INT NOT NULL)')
    await db.sql('INSERT INTO acct VALUES (1, 100), (2, 100)')
    // write skew: both read the sum, each withdraws from a different account
    const s1 = db.session(), s2 = db.session()
    await s1.sql('BEGIN'); await s2.sql('BEGIN')
    assert.equal((await s1.sql('SELECT SUM(bal) AS s FROM acct')).rows, [{ s: 200 }])
    assert.equal((await s2.sql('SELECT SUM(bal) AS s FROM acct')).rows, [{ s: 200 }])
    await s1.sql('UPDATE acct SET bal = bal - 150 WHERE id = 1')
    await s2.sql('UPDATE acct SET bal = bal - 150 WHERE id = 2')
    await s1.sql('COMMIT')
    await fails(s2.sql('COMMIT'), '40001', 'the second of a write skew', /serialize/)
    assert.is(s2.status, 'I')
    assert.equal((await s2.sql('SELECT bal FROM acct ORDER BY id')).rows, [{ bal: -50 }, { bal: 100 }], 'only the first committed')
    await s1.close(); await s2.close()
    // 24 concurrent autocommit increments of one row
    await db.sql('CREATE TABLE counter (id INT PRIMARY KEY, n INT NOT NULL)')
    await db.sql('INSERT INTO counter VALUES (1, 0)')
    const before = db.stats()
    await Promise.all(Array.from({ length: 24 }, (_, i) => db.sql('UPDATE counter SET n = n + 1 WHERE id = 1', [], { dialect: i % 2 ? 'mysql' : 'postgres' })))
    assert.equal((await db.sql('SELECT n FROM counter WHERE id = 1')).rows, [{ n: 24 }])
    const after = db.stats()
    assert.is(after.conflicts - before.conflicts, 0, 'a point UPDATE locks its row (getForUpdate) instead of failing validation')
  })
})

test('concurrent transfers in sessions: deadlocks and conflicts surface as 40001, retried transactions keep the total', async () => {
  await withSql('sql-transfers', async cluster => {
    const db = cluster.writer
    await db.sql('CREATE TABLE acct (id INT PRIMARY KEY, bal INT NOT NULL)')
    await db.sql(`INSERT INTO acct VALUES ${Array.from({ length: 6 }, (_, i) => `(${i}, 1000)`).join(', ')}`)
    let retries = 0
    const states = new Set<string>()
    await Promise.all(Array.from({ length: 8 }, async (_, w) => {
      const s = db.session({ dialect: w % 2 ? 'mysql' : 'postgres' })
      for (let k = 0; k < 12; k++) {
        const from = (w + k) % 6, to = (w * 5 + k * 7 + 1) % 6
        if (from === to) continue
        for (;;) {
          try {
            await s.sql('BEGIN')
            await s.sql(`UPDATE acct SET bal = bal - ${k + 1} WHERE id = ${from}`)
            await s.sql(`UPDATE acct SET bal = bal + ${k + 1} WHERE id = ${to}`)
            await s.sql('COMMIT')
            break
          } catch (e) {
            const se = e as SqlError
            states.add(se.sqlstate)
            if (se.sqlstate !== '40001') throw e
            retries++
            if (s.inTransaction) await s.sql('ROLLBACK')
          }
        }
      }
      await s.close()
    }))
    assert.equal([...states].filter(x => x !== '40001'), [], 'only serialization failures')
    assert.equal((await db.sql('SELECT SUM(bal) AS total, COUNT(*) AS n FROM acct')).rows, [{ total: 6000, n: 6 }])
    console.log(`  transfers: ${retries} retries after 40001`)
  })
})

test('statement cache: literals are normalised (one parse, one plan); DDL recompiles plans', async () => {
  await withSql('sql-cache', async cluster => {
    const db = cluster.writer
    const eng = sqlEngine(db)
    await db.sql('CREATE TABLE acc (aid INT PRIMARY KEY, bid INT, abalance INT, filler TEXT)')
    for (let i = 1; i <= 20; i++) await db.sql(`INSERT INTO acc VALUES (${i}, ${i % 3}, 0, 'x')`)
    const p0 = eng.stats.parses, c0 = eng.stats.plans
    for (let i = 1; i <= 20; i++) {
      const delta = (i * 7919) % 10000 - 5000
      await db.sql(`UPDATE acc SET abalance = abalance + ${delta} WHERE aid = ${i}`)
      await db.sql(`SELECT abalance FROM acc WHERE aid = ${i}`)
    }
    assert.is(eng.stats.parses - p0, 2, 'two statement shapes, parsed once each')
    assert.is(eng.stats.plans - c0, 2, 'and planned once each')
    const total = (await db.sql('SELECT SUM(abalance) AS s FROM acc')).rows[0].s
    let want = 0
    for (let i = 1; i <= 20; i++) want += (i * 7919) % 10000 - 5000
    assert.is(total, want)
    // the same shape with a parameter and with literals share the plan when types agree
    const p1 = eng.stats.parses
    await db.sql("SELECT filler FROM acc WHERE aid = 3 AND filler = 'x'")
    await db.sql("SELECT filler FROM acc WHERE aid = 4 AND filler = 'y'")
    assert.is(eng.stats.parses - p1, 1)
    // a string literal is not the same statement as an integer literal (types differ)
    await db.sql("SELECT filler FROM acc WHERE aid = '4'")
    assert.is(eng.stats.parses - p1, 2)
    // DDL bumps the catalog version: the cached statement is planned again, not parsed again
    const p2 = eng.stats.parses, c2 = eng.stats.plans
    await db.sql('CREATE INDEX acc_bid ON acc (bid)')
    assert.equal((await db.sql('SELECT COUNT(*) AS n FROM acc WHERE bid = 1')).rows, [{ n: 7 }])
    const plan = (await db.sql('EXPLAIN SELECT COUNT(*) AS n FROM acc WHERE bid = 1')).rows.map(r => r['QUERY PLAN'])
    assert.ok(plan.some(l => /Index Range Scan on acc using index acc_bid/.test(String(l))), plan.join('\n'))
    await db.sql('UPDATE acc SET abalance = 0 WHERE aid = 1')
    assert.is(eng.stats.parses - p2, 3, 'CREATE INDEX, the COUNT and its EXPLAIN were new; the UPDATE shape was cached')
    assert.ok(eng.stats.plans - c2 >= 2)
    // describe(): fields and parameter count without running the statement
    assert.equal(await eng.describe('SELECT abalance, aid + 1 AS x, filler FROM acc WHERE aid = $2 AND bid = $1'), {
      command: 'SELECT', params: 2,
      fields: [{ name: 'abalance', type: 'int4', oid: 23 }, { name: 'x', type: 'int4', oid: 23 }, { name: 'filler', type: 'text', oid: 25 }],
    })
    assert.equal(await eng.describe('UPDATE acc SET abalance = 0 WHERE aid = $1 RETURNING aid'), { command: 'UPDATE', params: 1, fields: [{ name: 'aid', type: 'int4', oid: 23 }] })
    assert.equal((await eng.describe('DELETE FROM acc WHERE aid = 1')).fields, [])
    assert.equal(await eng.describe('EXPLAIN SELECT 1'), { command: 'EXPLAIN', params: 0, fields: [{ name: 'QUERY PLAN', type: 'text', oid: 25 }] })
    assert.equal((await db.sql('SELECT COUNT(*) AS n FROM acc WHERE aid = 1')).rows, [{ n: 1 }], 'describe ran nothing')
    // ORDER BY ordinals and type modifiers stay literals
    assert.equal((await db.sql("SELECT aid, CAST(filler AS VARCHAR(1)) AS f FROM acc WHERE aid < 3 ORDER BY 1 DESC")).rows, [{ aid: 2, f: 'x' }, { aid: 1, f: 'x' }])
  })
})

test('literalShape: integer literals cut out; quotes, comments, parameters and non-integers give null', () => {
  assert.equal(literalShape('UPDATE t1 SET c2 = c2 + -41 WHERE id = 007;'), { skeleton: 'UPDATE t1 SET c2 = c2 + -\u0001 WHERE id = \u0001;', nums: [41, 7] })
  assert.equal(literalShape('SELECT 3-2,x9 FROM t'), { skeleton: 'SELECT \u0001-\u0001,x9 FROM t', nums: [3, 2] })
  assert.equal(literalShape('SELECT 999999999'), { skeleton: 'SELECT \u0001', nums: [999999999] })
  for (const t of ['SELECT a FROM t', "SELECT 'a', 1", 'SELECT "x1", 1', 'SELECT `x`, 1', 'SELECT 1.5', 'SELECT .5', 'SELECT 1e5', 'SELECT 12abc',
    'SELECT 1234567890', 'SELECT $1, 2', 'SELECT ?, 2', 'SELECT 1 -- 2', 'SELECT 1 /* 2 */', 'SELECT 1 # 2', 'SELECT E\'\\n\', 1', 'SELECT 1\u0001']) {
    assert.is(literalShape(t), null, t)
  }
})

test('statement shapes: a text differing from one run before only in integers skips lexing, with its own values', async () => {
  await withSql('sql-shapes', async cluster => {
    const db = cluster.writer
    const eng = sqlEngine(db)
    await db.sql('CREATE TABLE acc (aid INT PRIMARY KEY, v INT, v2 INT)')
    for (let i = 1; i <= 12; i++) await db.sql(`INSERT INTO acc (aid, v, v2) VALUES (${i}, 0, ${i * 10})`)
    const h0 = eng.stats.shapeHits
    // a sign that belongs to the literal: learned on the first text, taken by the rest
    for (let i = 1; i <= 10; i++) await db.sql(`UPDATE acc SET v = v + -${i} WHERE aid = ${i}`)
    assert.ok(eng.stats.shapeHits - h0 >= 9, `shape hits ${eng.stats.shapeHits - h0}`)
    assert.equal((await db.sql('SELECT aid, v FROM acc WHERE aid <= 10 ORDER BY aid')).rows, Array.from({ length: 10 }, (_, i) => ({ aid: i + 1, v: -(i + 1) })))
    // and one that does not: subtraction
    const h1 = eng.stats.shapeHits
    for (const [a, b] of [[7, 3], [3, 7], [100, 1], [5, 5]]) assert.equal((await db.sql(`SELECT ${a} - ${b} AS d`)).rows, [{ d: a - b }])
    assert.is(eng.stats.shapeHits - h1, 3)
    // a 0 first does not tell whether a sign was taken: the shape is learned from the next text
    assert.equal((await db.sql('SELECT v2 FROM acc WHERE aid = 0')).rows, [])
    assert.equal((await db.sql('SELECT v2 FROM acc WHERE aid = 4')).rows, [{ v2: 40 }])
    assert.equal((await db.sql('SELECT v2 FROM acc WHERE aid = 11')).rows, [{ v2: 110 }])
    assert.equal((await db.sql('SELECT v2 FROM acc WHERE aid = 0')).rows, [])
    await db.sql('UPDATE acc SET v2 = v2 + -0 WHERE aid = 11')
    await db.sql('UPDATE acc SET v2 = v2 + -3 WHERE aid = 11')
    await db.sql('UPDATE acc SET v2 = v2 + -7 WHERE aid = 11')
    assert.equal((await db.sql('SELECT v2 FROM acc WHERE aid = 11')).rows, [{ v2: 100 }])
    await db.sql('UPDATE acc SET v2 = 110 WHERE aid = 11')
    // an ORDER BY ordinal stays a literal: texts with other ordinals are never taken for one another
    const h2 = eng.stats.shapeHits
    // (the first one's literals, 9 2 2, are its slots 9 and 2 at first sight)
    assert.equal((await db.sql('SELECT aid, v2 FROM acc WHERE aid > 9 ORDER BY 2 DESC LIMIT 2')).rows, [{ aid: 12, v2: 120 }, { aid: 11, v2: 110 }])
    assert.equal((await db.sql('SELECT aid, v2 FROM acc WHERE aid > 9 ORDER BY 1 DESC LIMIT 3')).rows, [{ aid: 12, v2: 120 }, { aid: 11, v2: 110 }, { aid: 10, v2: 100 }])
    assert.equal((await db.sql('SELECT aid, v2 FROM acc WHERE aid > 9 ORDER BY 2 LIMIT 1')).rows, [{ aid: 10, v2: 100 }])
    assert.is(eng.stats.shapeHits, h2, 'no shape taken')
    // in a transaction, and through INSERT ... VALUES with several rows
    const s = db.session()
    await s.sql('BEGIN')
    for (let i = 0; i < 5; i++) await s.sql(`INSERT INTO acc (aid, v, v2) VALUES (${100 + 2 * i}, ${i}, -${i}), (${101 + 2 * i}, ${i + 1}, 7)`)
    await s.sql('COMMIT')
    await s.close()
    assert.equal((await db.sql('SELECT COUNT(*) AS n, SUM(v) AS sv, SUM(v2) AS s2 FROM acc WHERE aid >= 100')).rows, [{ n: 10, sv: 25, s2: 25 }])
    // the memo is bounded (1,024 skeletons): past it, it starts over and keeps answering right
    for (let i = 0; i < 1100; i++) assert.equal((await db.sql(`SELECT v2 + ${i + 1} AS x${i} FROM acc WHERE aid = 2`)).rows, [{ [`x${i}`]: 21 + i }])
    assert.ok(eng.shapeMemo.size > 0 && eng.shapeMemo.size <= 1024, `memo size ${eng.shapeMemo.size}`)
    // (the last skeleton, learned after the memo started over, is there)
    const h3 = eng.stats.shapeHits
    for (const d of [5, 6]) assert.equal((await db.sql(`SELECT v2 + ${d} AS x1099 FROM acc WHERE aid = 3`)).rows, [{ x1099: 30 + d }])
    assert.is(eng.stats.shapeHits - h3, 2)
    // MySQL's dialect keeps its own shapes
    const m = db.session({ dialect: 'mysql' })
    for (let i = 1; i <= 3; i++) assert.equal((await m.sql(`SELECT v2 FROM acc WHERE aid = ${i}`)).rows, [{ v2: i * 10 }])
    await m.close()
  })
})

test('point and range access paths: EXPLAIN names the key, and results match', async () => {
  await withSql('sql-plan', async cluster => {
    const db = cluster.writer
    await db.sql('CREATE TABLE p (a INT, b TEXT, c INT, PRIMARY KEY (a, b))')
    await db.sql('CREATE UNIQUE INDEX p_c ON p (c)')
    const rows: string[] = []
    for (let a = 0; a < 10; a++) for (const b of ['x', 'y', 'z']) rows.push(`(${a - 5}, '${b}', ${a * 3 + rows.length % 3})`)
    await db.sql(`INSERT INTO p VALUES ${rows.join(', ')}`)
    const plan = async (sql: string) => (await db.sql('EXPLAIN ' + sql)).rows.map(r => String(r['QUERY PLAN'])).join('\n')
    assert.match(await plan("SELECT * FROM p WHERE a = 1 AND b = 'y'"), /Point Get on p using primary key \(a, b\)/)
    assert.match(await plan('SELECT * FROM p WHERE a = 1'), /Primary Key Range Scan on p using primary key \(a, b\) \(a = \?\)/)
    assert.match(await plan("SELECT * FROM p WHERE a IN (1, 2) AND b = 'x'"), /Point Get .*a IN \(2 values\) AND b = \?/)
    assert.match(await plan('SELECT * FROM p WHERE a > -2 AND a <= 1'), /Range Scan .*a > \? AND a <= \?/)
    assert.match(await plan('SELECT * FROM p WHERE c = 7'), /Index Point Get on p using index p_c \(c = \?\)/)
    assert.match(await plan('SELECT * FROM p WHERE c IN (7, 1)'), /Index Point Get on p using index p_c \(c IN \(2 values\)\)/)
    // through a unique index: the row by its primary key, in index order; writes land on that row
    assert.equal((await db.sql('SELECT a, b, c FROM p WHERE c = 7')).rows, [{ a: -3, b: 'y', c: 7 }])
    assert.equal((await db.sql('SELECT a, b FROM p WHERE c IN ($1, $2, $3)', [29, 1, 1000])).rows.map(r => `${r.a}${r.b}`), ['-5y', '4z'])
    assert.equal((await db.sql('SELECT a FROM p WHERE c = $1', [null])).rows, [])
    assert.equal((await db.sql("UPDATE p SET b = 'w' WHERE c = 7 RETURNING a, b")).rows, [{ a: -3, b: 'w' }])
    assert.equal((await db.sql('SELECT a, b FROM p WHERE c = 7')).rows, [{ a: -3, b: 'w' }])
    assert.equal((await db.sql("SELECT c FROM p WHERE a = -3 AND b = 'y'")).rows, [], 'the row moved to its new key')
    assert.equal((await db.sql('DELETE FROM p WHERE c = 7')).rowCount, 1)
    assert.equal((await db.sql('SELECT COUNT(*) AS n FROM p WHERE a = -3')).rows, [{ n: 2 }])
    await db.sql("INSERT INTO p VALUES (-3, 'y', 7)")
    await db.sql("INSERT INTO p VALUES (50, 'n', NULL), (51, 'n', NULL)")
    assert.equal((await db.sql('SELECT a FROM p WHERE c IS NULL ORDER BY a')).rows, [{ a: 50 }, { a: 51 }])
    await db.sql("DELETE FROM p WHERE b = 'n'")
    const viaUnique = 'SELECT child.id, p.a FROM child JOIN p ON p.c = child.pc ORDER BY child.id'
    await db.sql('CREATE TABLE child2 (id INT PRIMARY KEY, pc INT)')
    await db.sql('INSERT INTO child2 VALUES (1, 7), (2, 29), (3, 7), (4, NULL), (5, 1000)')
    const viaUnique2 = viaUnique.replace(/child/g, 'child2')
    assert.match(await plan(viaUnique2), /Hash Join with p rows looked up by index p_c/)
    assert.equal((await db.sql(viaUnique2)).rows.map(r => [r.id, r.a]), [[1, -3], [2, 4], [3, -3]])
    assert.match(await plan('SELECT * FROM p ORDER BY a DESC, b DESC LIMIT 2'), /Primary Key Scan on p using primary key \(a, b\) backward/)
    assert.not.match(await plan('SELECT * FROM p ORDER BY a DESC, b DESC LIMIT 2'), /Sort/)
    assert.match(await plan('SELECT * FROM p ORDER BY c LIMIT 2'), /Index Scan on p using index p_c/)
    assert.match(await plan('SELECT * FROM p WHERE b = \'x\''), /Full Scan on p/)
    assert.equal((await db.sql("SELECT c FROM p WHERE a = 1 AND b = 'y'")).rows, [{ c: 19 }])
    assert.equal((await db.sql('SELECT a, b FROM p WHERE a > -2 AND a <= -1 ORDER BY a, b')).rows.map(r => `${r.a}${r.b}`), ['-1x', '-1y', '-1z'])
    assert.equal((await db.sql('SELECT a, b FROM p ORDER BY a DESC, b DESC LIMIT 2')).rows.map(r => `${r.a}${r.b}`), ['4z', '4y'])
    assert.equal((await db.sql('SELECT c FROM p ORDER BY c LIMIT 3')).rows.map(r => r.c), [0, 1, 2])
    assert.equal((await db.sql("SELECT a FROM p WHERE a IN (3, -4, 3) AND b = 'z' ORDER BY a")).rows, [{ a: -4 }, { a: 3 }])
    // joins fetch the inner rows by key for each outer value when the join column leads a key
    await db.sql('CREATE TABLE child (id INT PRIMARY KEY, pa INT, pb TEXT)')
    await db.sql("INSERT INTO child VALUES (1, 1, 'y'), (2, 1, 'x'), (3, -5, 'z'), (4, NULL, 'x'), (5, 99, 'y')")
    await db.sql('CREATE INDEX child_pa ON child (pa)')
    const j = "SELECT p.a, p.b, child.id FROM p JOIN child ON child.pa = p.a WHERE p.b = 'x' ORDER BY child.id"
    assert.match(await plan(j), /Hash Join with child rows looked up by index child_pa \(pa = each outer value/)
    assert.equal((await db.sql(j)).rows, [{ a: 1, b: 'x', id: 1 }, { a: 1, b: 'x', id: 2 }, { a: -5, b: 'x', id: 3 }])
    const lj = 'SELECT child.id, p.c FROM child LEFT JOIN p ON p.a = child.pa AND p.b = child.pb ORDER BY child.id'
    assert.match(await plan(lj), /Left Hash Join with p rows looked up by primary key/)
    assert.equal((await db.sql(lj)).rows.map(r => [r.id, r.c]), [[1, 19], [2, 18], [3, 2], [4, null], [5, null]])
    // bounds that are not integers, or not numbers, on an integer key: rounded inward, never losing a row
    const distinct = async (sql: string, params: unknown[]) => (await db.sql(sql, params)).rows.map(r => r.a)
    assert.equal(await distinct('SELECT DISTINCT a FROM p WHERE a > $1 AND a < $2 ORDER BY a', [-2.5, 0.5]), [-2, -1, 0])
    assert.equal(await distinct('SELECT DISTINCT a FROM p WHERE a >= $1 AND a <= $2 ORDER BY a', [-2.5, 0.5]), [-2, -1, 0])
    assert.equal(await distinct('SELECT DISTINCT a FROM p WHERE a > $1 AND a <= $2 ORDER BY a', ['-1', '1']), [0, 1])
    assert.equal(await distinct('SELECT DISTINCT a FROM p WHERE a = $1', [1.5]), [])
    assert.equal(await distinct('SELECT DISTINCT a FROM p WHERE a = $1', ['2']), [2])
    assert.equal(await distinct('SELECT DISTINCT a FROM p WHERE a > $1 ORDER BY a', [3000000000]), [])
    assert.equal(await distinct('SELECT DISTINCT a FROM p WHERE a > $1 AND a < -3 ORDER BY a', [-3000000000]), [-5, -4])
  })
})

test('ALTER SYSTEM SIMULATE AZ / DISK FAILURE stops segments for the interval; writes keep committing', async () => {
  await withSql('sql-faults', async cluster => {
    const db = cluster.writer
    await db.sql('CREATE TABLE f (id INT PRIMARY KEY)')
    const events: FaultEvent[] = []
    cluster.on('fault', (e: FaultEvent) => events.push(e))
    const r = await db.sql('ALTER SYSTEM SIMULATE 100 PERCENT AZ FAILURE IN AZ 1 FOR INTERVAL 1 SECOND')
    assert.equal(r.rows, [{ failure: 'az', segments: '2,3', seconds: 1 }])
    const down = () => cluster.volume.stats().segments.filter(s => !s.up).map(s => s.id)
    assert.equal(down(), [2, 3])
    for (let i = 0; i < 20; i++) await db.sql(`INSERT INTO f VALUES (${i})`)
    assert.equal((await db.sql('SELECT COUNT(*) AS n FROM f')).rows, [{ n: 20 }])
    const t0 = Date.now()
    while (down().length && Date.now() - t0 < 15_000) await new Promise(res => setTimeout(res, 50))
    assert.equal(down(), [], 'the AZ was restarted after the interval')
    // the restarted segments catch up by gossip before a second failure (else only 3 could acknowledge)
    await db.sql('INSERT INTO f VALUES (99)')
    const t1 = Date.now()
    while (!sclsConverged(cluster.volume) && Date.now() - t1 < 30_000) await new Promise(res => setTimeout(res, 50))
    assert.ok(sclsConverged(cluster.volume), 'the restarted AZ caught up by gossip within 30 s')
    assert.equal(events, [{ action: 'restored', failure: 'az', segments: [2, 3], attempt: 1 }], 'the restart is reported')
    // A restart that fails is reported with its error and tried again a second later.
    const faults = cluster.volume.faults
    const real = faults.restartWorker.bind(faults)
    let refusals = 1
    faults.restartWorker = (id: number) => refusals-- > 0 ? Promise.reject(new Error(`injected: segment ${id} will not start`)) : real(id)
    await db.sql('ALTER SYSTEM SIMULATE 50 PERCENT DISK FAILURE IN DISK 5 FOR INTERVAL 1 SECOND')
    assert.equal(down(), [5])
    await db.sql('INSERT INTO f VALUES (100)')
    const t2 = Date.now()
    while (down().length && Date.now() - t2 < 15_000) await new Promise(res => setTimeout(res, 50))
    assert.equal(down(), [])
    assert.equal(events.slice(1), [
      { action: 'restore-failed', failure: 'disk', segments: [5], attempt: 1, error: 'injected: segment 5 will not start', retryInMs: 1000 },
      { action: 'restored', failure: 'disk', segments: [5], attempt: 2 },
    ])
    await fails(db.sql('ALTER SYSTEM SIMULATE AZ FAILURE IN AZ 7 FOR INTERVAL 1 SECOND'), '22023', 'AZ out of range')
    await fails(db.sql('ALTER SYSTEM SIMULATE AZ FAILURE FOR 3 SECONDS'), '42601', 'bad syntax', /ALTER SYSTEM/)
    await fails(db.sql('ALTER SYSTEM SIMULATE 0 PERCENT AZ FAILURE FOR INTERVAL 1 SECOND'), '22023', 'zero percent')
  })
})

test('ALTER SYSTEM CRASH: the writer stops; a reopen recovers committed rows and drops the open transaction', async () => {
  await withSql('sql-crash', async (cluster, dir) => {
    const db = cluster.writer
    await db.sql('CREATE TABLE c (id INT PRIMARY KEY, v TEXT)')
    await db.sql("INSERT INTO c VALUES (1, 'committed')")
    const s = db.session()
    await s.sql('BEGIN')
    await s.sql("INSERT INTO c VALUES (2, 'open')")
    await db.sql('ALTER SYSTEM CRASH')
    await fails(db.sql('SELECT * FROM c'), '57P01', 'a statement after the crash', /ALTER SYSTEM CRASH/)
    await fails(s.sql('COMMIT'), '57P01', 'the open transaction after the crash')
    // The cluster failed over: its new writer has the committed row, not the open transaction's.
    assert.ok(cluster.writer !== db && cluster.failovers === 1, 'ALTER SYSTEM CRASH failed the cluster over to a new writer')
    assert.equal((await cluster.writer.sql('SELECT id, v FROM c ORDER BY id')).rows, [{ id: 1, v: 'committed' }])
    await cluster.close().catch(() => {})
    const again = await openCluster(kvOptions(dir))
    try {
      assert.equal((await again.writer.sql('SELECT id, v FROM c ORDER BY id')).rows, [{ id: 1, v: 'committed' }])
      await again.writer.sql("INSERT INTO c VALUES (2, 'after')")
      assert.equal((await again.writer.sql('SELECT COUNT(*) AS n FROM c')).rows, [{ n: 2 }])
    } finally {
      await again.close()
    }
  })
})

test('splitStatements: top-level semicolons split; quoted strings, identifiers and comments are respected', () => {
  const cases: Array<[string, string[], ('postgres' | 'mysql')?]> = [
    ['BEGIN;', ['BEGIN']],
    ['  SELECT 1  ', ['SELECT 1']],
    ['', []], ['  ;  ', []], [';;', []],
    ['SELECT 1; SELECT 2;', ['SELECT 1', 'SELECT 2']],
    ["SELECT ';' AS s; SELECT 'a''b'", ["SELECT ';' AS s", "SELECT 'a''b'"]],
    ['SELECT $$a;b$$; SELECT $t$c;d$t$', ['SELECT $$a;b$$', 'SELECT $t$c;d$t$']],
    ['SELECT 1 -- one; two', ['SELECT 1']],
    ['SELECT 1 /* a; b */ + 1', ['SELECT 1   + 1']],
    ['-- only a comment', []],
    ['SELECT "x;y" FROM t', ['SELECT "x;y" FROM t']],
    ['SELECT 1 # mysql comment; SELECT 2', ['SELECT 1'], 'mysql'],
    ['SELECT `a;b` FROM t; SELECT 2', ['SELECT `a;b` FROM t', 'SELECT 2'], 'mysql'],
  ]
  for (const [text, want, dialect] of cases) assert.equal(splitStatements(text, dialect), want, JSON.stringify(text))
})

test('dollar-quoted strings ($$...$$, $tag$...$tag$) in queries, DML and DDL; unterminated is 42601', async () => {
  await withSql('sql-dollar', async cluster => {
    const db = cluster.writer
    assert.equal((await db.sql("SELECT $$a;b 'q'$$ AS x, $t$it's $$ here$t$ AS y")).rows, [{ x: "a;b 'q'", y: "it's $$ here" }])
    await db.sql('CREATE TABLE d (k INT PRIMARY KEY, v TEXT DEFAULT $$dflt$$)')
    await db.sql('INSERT INTO d (k, v) VALUES (1, $$one;1$$), (2, $x$$$x$)')
    await db.sql('INSERT INTO d (k) VALUES (3)')
    assert.equal((await db.sql('SELECT k, v FROM d ORDER BY k')).rows, [{ k: 1, v: 'one;1' }, { k: 2, v: '$' }, { k: 3, v: 'dflt' }])
    assert.equal((await db.sql('SELECT k FROM d WHERE v = $q$one;1$q$')).rows, [{ k: 1 }])
    assert.equal((await db.sql('SELECT $1::text AS p', ['param'])).rows, [{ p: 'param' }], '$1 is still a parameter')
    let err: SqlError | undefined
    try { await db.sql('SELECT $$never closed') } catch (e) { err = e as SqlError }
    assert.is(err?.sqlstate, '42601')
    assert.ok(/unterminated dollar-quoted string/.test(err!.message), err?.message)
  })
})

test('names with $ inside (a$b, x$1) work in DDL, DML, queries, indexes and both dialects; strings and $n parameters are untouched', async () => {
  await withSql('sql-dollar-names', async cluster => {
    const db = cluster.writer
    await db.sql('CREATE TABLE acct$2024 (id$ INT PRIMARY KEY, x$1 INT NOT NULL, note TEXT)')
    await db.sql('CREATE INDEX acct$x ON acct$2024 (x$1)')
    // x$1 is a name, $1 after it a parameter
    await db.sql('INSERT INTO acct$2024 (id$, x$1, note) VALUES ($1, $2, $3), (2, 20, \'a$b\')', [1, 10, 'x$1'])
    await db.sql('INSERT INTO acct$2024 (id$, x$1) VALUES (1, 99) ON CONFLICT (id$) DO UPDATE SET x$1 = acct$2024.x$1 + 1')
    await db.sql('UPDATE acct$2024 SET note = $1 WHERE x$1 = $2', ['$2', 20])
    assert.equal((await db.sql('SELECT t.id$, x$1 AS "v$", note FROM acct$2024 t WHERE t.x$1 >= $1 ORDER BY x$1', [0])).rows,
      [{ id$: 1, v$: 11, note: 'x$1' }, { id$: 2, v$: 20, note: '$2' }])
    const plan = (await db.sql('EXPLAIN SELECT id$ FROM acct$2024 WHERE x$1 = 20')).rows.map(r => Object.values(r).join(' ')).join('\n')
    assert.match(plan, /acct\$x/, 'the index on x$1 is used')
    assert.equal((await db.sql('SELECT COUNT(*) AS n FROM acct$2024 WHERE note LIKE \'%$%\'')).rows, [{ n: 2 }])
    await db.sql('CREATE TABLE m$t (k$ INT PRIMARY KEY, v INT)', [], { dialect: 'mysql' })
    await db.sql('INSERT INTO m$t (k$, v) VALUES (?, ?) ON DUPLICATE KEY UPDATE v = v + 1', [7, 1], { dialect: 'mysql' })
    await db.sql('INSERT INTO m$t (k$, v) VALUES (?, ?) ON DUPLICATE KEY UPDATE v = v + 1', [7, 1], { dialect: 'mysql' })
    assert.equal((await db.sql('SELECT k$, v FROM m$t WHERE k$ = ?', [7], { dialect: 'mysql' })).rows, [{ k$: 7, v: 2 }])
    await db.sql('DROP TABLE m$t')
    await fails(db.sql('SELECT * FROM m$t'), '42P01', 'a dropped $ table is gone', /m\$t/)
    // MySQL: a name may begin with $; $ and a digit is still a parameter
    const my = { dialect: 'mysql' as const }
    await db.sql('CREATE TABLE $tmp ($k INT PRIMARY KEY, $$v INT)', [], my)
    await db.sql('INSERT INTO $tmp ($k, $$v) VALUES (?, ?)', [1, 5], my)
    await db.sql('UPDATE $tmp SET $$v = $$v + 1 WHERE $k = ?', [1], my)
    assert.equal((await db.sql('SELECT $k, $$v AS `$out` FROM $tmp t WHERE t.$k = $1', [1], my)).rows, [{ $k: 1, $out: 6 }])
    await db.sql('DROP TABLE $tmp', [], my)
  })
})

test.run()
