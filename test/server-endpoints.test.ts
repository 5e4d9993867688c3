/**
 * Wire listeners per cluster endpoint, and SQL on read replicas.
 *
 * - SQL through a 'reader' connection runs on a replica: SELECTs see the
 *   replica's state (after it catches up), writes and FOR UPDATE get 25006,
 *   a BEGIN ... COMMIT block reads one snapshot while the writer changes
 *   the table.
 * - A PostgreSQL listener on the 'reader' endpoint (its own port) serves
 *   read-only sessions on the replicas, spread over them; one on the
 *   'writer' endpoint reaches the new writer after a failover.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import pg from 'pg'
import { startServer } from './helpers/server-harness.js'
import { serve } from '../engine/server/index.js'
import { codeOf } from './helpers/kv-helpers.js'

const sqlstate = (err: unknown) => (err as { sqlstate?: string; code?: string }).sqlstate ?? (err as { code?: string }).code

test('SQL on a replica: reads at its state, writes refused with 25006, a transaction block is one snapshot', async () => {
  const h = await startServer({ pg: { port: 0 } })
  try {
    const { cluster } = h
    const db = cluster.writer
    await db.sql('CREATE TABLE t (id INT PRIMARY KEY, v TEXT)')
    await db.sql("INSERT INTO t VALUES (1, 'one'), (2, 'two')")
    const r = cluster.addReader({ name: 'r1' })
    await r.caughtUp()
    const conn = cluster.connect('reader')
    assert.is(conn.instance, 'r1')
    const res = await conn.sql<{ id: number; v: string }>('SELECT id, v FROM t ORDER BY id')
    assert.equal(res.rows, [{ id: 1, v: 'one' }, { id: 2, v: 'two' }])
    assert.is((await conn.sql('SELECT v FROM t WHERE id = $1', [2])).rows[0].v, 'two')
    for (const stmt of ["INSERT INTO t VALUES (3, 'x')", "UPDATE t SET v = 'y'", 'DELETE FROM t', 'SELECT * FROM t WHERE id = 1 FOR UPDATE', 'CREATE TABLE u (a INT)']) {
      try { await conn.sql(stmt); assert.unreachable(stmt) } catch (err) {
        if ((err as Error).name === 'Assertion') throw err
        assert.is(sqlstate(err), '25006', `${stmt}: ${String(err)}`)
      }
    }
    assert.is((await db.sql('SELECT count(*) AS n FROM t')).rows[0].n, 2, 'the refused writes changed nothing')
    const s = conn.session()
    await s.sql('BEGIN')
    assert.is(s.status, 'T')
    assert.is((await s.sql('SELECT count(*) AS n FROM t')).rows[0].n, 2)
    await db.sql("INSERT INTO t VALUES (3, 'three')")
    await new Promise(res => setTimeout(res, 50))
    assert.is((await s.sql('SELECT count(*) AS n FROM t')).rows[0].n, 2, 'the block reads one snapshot')
    await s.sql('COMMIT')
    await r.caughtUp()
    assert.is((await s.sql('SELECT count(*) AS n FROM t')).rows[0].n, 3, 'after COMMIT the session reads the replica as it is now')
    await s.close()
    // A bad statement inside a block aborts it (25P02 until ROLLBACK), as on the writer.
    const s2 = conn.session()
    await s2.sql('BEGIN')
    try { await s2.sql('SELECT nope FROM t'); assert.unreachable() } catch (err) { assert.is(sqlstate(err), '42703') }
    try { await s2.sql('SELECT 1'); assert.unreachable() } catch (err) { assert.is(sqlstate(err), '25P02') }
    await s2.sql('ROLLBACK')
    assert.is((await s2.sql('SELECT count(*) AS n FROM t')).rows[0].n, 3)
    await s2.close()
  } finally {
    await h.stop()
  }
})

test('a PostgreSQL listener per endpoint: reader port spreads read-only sessions over replicas; writer port follows failover', async () => {
  const h = await startServer({ pg: { port: 0 } })
  const { cluster } = h
  const readers = await serve(cluster, { pg: { port: 0, endpoint: 'reader' } })
  try {
    const client = (port: number) => { const c = new pg.Client({ host: '127.0.0.1', port, user: 'app', database: 'app' }); c.on('error', () => {}); return c }
    const w = client(h.pgPort)
    await w.connect()
    await w.query('CREATE TABLE kv (k TEXT PRIMARY KEY, v INT)')
    await w.query("INSERT INTO kv VALUES ('a', 1), ('b', 2)")
    const r1 = cluster.addReader({ name: 'r1' }), r2 = cluster.addReader({ name: 'r2', tier: 0 })
    await r1.caughtUp(); await r2.caughtUp()
    const rc = [client(readers.pg!.port), client(readers.pg!.port)]
    for (const c of rc) await c.connect()
    for (const c of rc) assert.equal((await c.query('SELECT k, v FROM kv ORDER BY k')).rows, [{ k: 'a', v: 1 }, { k: 'b', v: 2 }])
    try { await rc[0].query("INSERT INTO kv VALUES ('c', 3)"); assert.unreachable() } catch (err) {
      if ((err as Error).name === 'Assertion') throw err
      assert.is((err as { code?: string }).code, '25006')
    }
    // The two connections went to the two replicas: each read the table's pages into its own cache.
    const served = await Promise.all([r1.stats(), r2.stats()])
    assert.ok(served.every(s => s.cache.misses > 0), JSON.stringify(served.map(s => s.cache)))
    for (const c of rc) await c.end()
    // Failover: the writer listener's next connection reaches the promoted replica.
    await w.end().catch(() => {})
    const report = await cluster.faults.crashWriter()
    assert.is(report.promoted, 'r2')
    const w2 = client(h.pgPort)
    await w2.connect()
    await w2.query("INSERT INTO kv VALUES ('after', 9)")
    assert.equal((await w2.query('SELECT v FROM kv WHERE k = $1', ['after'])).rows, [{ v: 9 }])
    assert.equal((await w2.query('SELECT count(*)::int AS n FROM kv')).rows, [{ n: 3 }], 'every acknowledged row survived the failover')
    await w2.end()
    try { await serve(cluster, { pg: { port: 0, endpoint: 'nope' } }); assert.unreachable() } catch (err) { assert.is(codeOf(err), 'HEXAD_BAD_INPUT') }
  } finally {
    await readers.close()
    await h.stop()
  }
})

test.run()
