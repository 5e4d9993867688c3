/**
 * pgbench (PostgreSQL 15's, installed by pgTool when missing) against the
 * PostgreSQL endpoint: `pgbench -i -s 1` initialises the four tables, then
 * the built-in TPC-B script runs for 5 seconds with 4 clients (retrying
 * serialization failures, --max-tries). Asserts: no failed transactions,
 * one history row per transaction pgbench counted, and the money adds up
 * (accounts = tellers = branches = the sum of the history deltas). The TPS
 * is printed, never asserted.
 *
 * Initialisation is pgbench's own: its data step runs BEGIN; TRUNCATE ...;
 * COPY ... FROM STDIN; COMMIT, then VACUUM and the primary keys.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { spawn } from 'node:child_process'
import pg from 'pg'
import { pgTool, startServer } from './helpers/server-harness.js'

function run(bin: string, args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; out: string }> {
  return new Promise(resolve => {
    const child = spawn(bin, args, { env: { ...process.env, PGUSER: 'bench', PGDATABASE: 'bench', PGCONNECT_TIMEOUT: '10', ...env } })
    let out = ''
    child.stdout.on('data', d => { out += d })
    child.stderr.on('data', d => { out += d })
    const kill = setTimeout(() => child.kill('SIGKILL'), 120_000)
    child.on('close', code => { clearTimeout(kill); resolve({ code, out }) })
  })
}

test('pgbench -i -s 1, then TPC-B for 5 s with 4 clients: no failed transactions, balances equal the history', async () => {
  const pgbench = pgTool('pgbench')
  assert.ok(pgbench, 'pgbench is installed or installable (Debian package postgresql-15)')
  const h = await startServer({ pg: { port: 0, auth: 'trust' } })
  const c = new pg.Client({ host: '127.0.0.1', port: h.pgPort, user: 'bench', database: 'bench' })
  try {
    const conn = ['-h', '127.0.0.1', '-p', String(h.pgPort)]
    const init = await run(pgbench!, ['-i', '-s', '1', ...conn]) // BEGIN; TRUNCATE; COPY; COMMIT; VACUUM; primary keys
    assert.is(init.code, 0, init.out)
    await c.connect()
    const counts = await c.query('SELECT (SELECT count(*) FROM pgbench_branches) AS b, (SELECT count(*) FROM pgbench_tellers) AS t, (SELECT count(*) FROM pgbench_accounts) AS a, (SELECT count(*) FROM pgbench_history) AS h')
    assert.equal(counts.rows[0], { b: '1', t: '10', a: '100000', h: '0' })

    const bench = await run(pgbench!, ['-T', '5', '-c', '4', '-j', '2', '--max-tries', '10', ...conn])
    assert.is(bench.code, 0, bench.out)
    const num = (re: RegExp) => { const m = re.exec(bench.out); assert.ok(m, `${re} in:\n${bench.out}`); return Number(m![1]) }
    const processed = num(/number of transactions actually processed: (\d+)/)
    const failed = num(/number of failed transactions: (\d+)/)
    const retried = /number of transactions retried: (\d+)/.exec(bench.out)?.[1] ?? '0'
    const tps = num(/tps = ([\d.]+) \(without initial connection time\)/)
    console.log(`pgbench TPC-B scale 1, 4 clients, 5 s: ${processed} transactions, ${failed} failed, ${retried} retried, ${tps.toFixed(1)} TPS`)
    assert.ok(processed > 0)
    assert.is(failed, 0, bench.out)

    const sums = await c.query(`SELECT (SELECT sum(abalance) FROM pgbench_accounts) AS a, (SELECT sum(tbalance) FROM pgbench_tellers) AS t,
      (SELECT sum(bbalance) FROM pgbench_branches) AS b, (SELECT sum(delta) FROM pgbench_history) AS d, (SELECT count(*) FROM pgbench_history) AS n`)
    const s = sums.rows[0]
    assert.is(Number(s.n), processed, 'one history row per committed transaction')
    assert.is(String(s.a), String(s.d), 'accounts = sum of deltas')
    assert.is(String(s.t), String(s.d), 'tellers = sum of deltas')
    assert.is(String(s.b), String(s.d), 'branches = sum of deltas')
  } finally {
    await c.end().catch(() => {})
    await h.stop()
  }
})

test.run()
