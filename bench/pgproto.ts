/**
 * PostgreSQL protocol cost on the server thread: `npm run bench -- pgproto [options]`.
 *
 * The wire benchmark's limit is hexad's main thread, which runs every
 * connection's protocol, SQL and commit; its runs swing with the machine
 * (sockets, pgbench and the disk all share 2 cores), so a change to the
 * protocol path does not show there. This benchmark takes the sockets and
 * pgbench out: N in-process clients (default 16) run pgbench's TPC-B
 * transaction (scale 1, the same seven statements with literals, simple
 * query protocol) in two modes, on one cluster:
 *
 *   protocol  each client's Query messages go through a PgConnection (the pg
 *             endpoint's per-connection code) over an in-memory transport:
 *             framing, answer(), COPY and statement splitting, the SQL
 *             session, RowDescription/DataRow/CommandComplete/ReadyForQuery.
 *   direct    the same statement texts go to a SQL session (session.sql).
 *
 * Reported per mode: transactions/s, and CPU a transaction of the main
 * thread (Linux: /proc/self/task/<pid>/schedstat; elsewhere the whole process)
 * and of the whole process (segments included). The rounds alternate which
 * mode goes first; the ratio protocol/direct of main-thread CPU a
 * transaction is taken within each round and its median reported. A
 * transaction that fails (a serialization conflict) is rolled back and
 * counted, not retried. Results go to bench/results/pgproto.json.
 *
 * Options: --quick (or HEXAD_BENCH_QUICK=1: 2 s runs, one round), --duration=MS
 * (default 5000), --rounds=N (default 3), --clients=N (default 16)
 */
import os from 'node:os'
import path from 'node:path'
import { openCluster, type Cluster } from '../engine/index.js'
import { SERVE_SEGMENT_NICE } from '../engine/server/index.js'
import { PgConnection, type Transport } from '../engine/server/pg/connection.js'
import { endpointSource, type SessionSource } from '../engine/server/source.js'
import { cleanupTempDirs, fmt, gitInfo, hostInfo, intOption, makeTempDir, median, PGBENCH_DDL, refuseUnknownOptions, removeTempDir, table, threadTimes, writeResults } from './util.js'

type Mode = 'protocol' | 'direct'
interface Config { quick: boolean; durationMs: number; rounds: number; clients: number; command: string }
interface RunResult { mode: Mode; round: number; tps: number; transactions: number; failed: number; mainUsPerTx: number; processUsPerTx: number }

const ACCOUNTS = 100_000
const TELLERS = 10

function parseConfig(args: string[]): Config {
  const known = ['--quick', '--duration=', '--rounds=', '--clients=']
  refuseUnknownOptions('pgproto', args, known)
  const quick = args.includes('--quick') || process.env.HEXAD_BENCH_QUICK === '1'
  return {
    quick,
    durationMs: intOption('pgproto', args, 'duration', quick ? 2000 : 5000),
    rounds: intOption('pgproto', args, 'rounds', quick ? 1 : 3),
    clients: intOption('pgproto', args, 'clients', 16),
    command: `npm run bench -- pgproto${args.length ? ' ' + args.join(' ') : ''}`,
  }
}

/** pgbench's TPC-B transaction for scale 1, as the texts its simple protocol sends. */
function tpcbTexts(): string[] {
  const aid = 1 + Math.floor(Math.random() * ACCOUNTS)
  const tid = 1 + Math.floor(Math.random() * TELLERS)
  const delta = Math.floor(Math.random() * 10001) - 5000
  return [
    'BEGIN;',
    `UPDATE pgbench_accounts SET abalance = abalance + ${delta} WHERE aid = ${aid};`,
    `SELECT abalance FROM pgbench_accounts WHERE aid = ${aid};`,
    `UPDATE pgbench_tellers SET tbalance = tbalance + ${delta} WHERE tid = ${tid};`,
    `UPDATE pgbench_branches SET bbalance = bbalance + ${delta} WHERE bid = 1;`,
    `INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (${tid}, 1, ${aid}, ${delta}, CURRENT_TIMESTAMP);`,
    'END;',
  ]
}

async function load(source: SessionSource): Promise<void> {
  const { session, release } = source.open('postgres')
  try {
    for (const ddl of PGBENCH_DDL) await session.sql(ddl)
    await session.sql('INSERT INTO pgbench_branches VALUES (1, 0, NULL)')
    await session.sql(`INSERT INTO pgbench_tellers VALUES ${Array.from({ length: TELLERS }, (_, i) => `(${i + 1}, 1, 0, NULL)`).join(', ')}`)
    for (let from = 1; from <= ACCOUNTS; from += 1000) {
      await session.sql(`INSERT INTO pgbench_accounts VALUES ${Array.from({ length: 1000 }, (_, i) => `(${from + i}, 1, 0, '')`).join(', ')}`)
    }
  } finally {
    await session.close()
    release()
  }
}

/** A Query message. */
function query(text: string): Buffer {
  const n = Buffer.byteLength(text)
  const b = Buffer.allocUnsafe(6 + n)
  b[0] = 0x51 // 'Q'
  b.writeInt32BE(5 + n, 1)
  b.write(text, 5)
  b[5 + n] = 0
  return b
}

/** One client on a PgConnection: sends a Query, reads backend messages up to ReadyForQuery. */
class ProtocolClient {
  readonly #inbox: Array<Buffer | null> = []
  #reader: ((b: Buffer | null) => void) | null = null
  #reply: ((failed: boolean) => void) | null = null
  #failed = false
  readonly #done: Promise<void>
  readonly #release: () => void

  constructor(source: SessionSource, pid: number) {
    const { session, engine, release } = source.open('postgres')
    this.#release = release
    const io: Transport = {
      read: () => {
        if (this.#inbox.length) return Promise.resolve(this.#inbox.shift()!)
        return new Promise(resolve => { this.#reader = resolve })
      },
      write: b => { this.#onBackend(b); return Promise.resolve() },
      close: () => {},
    }
    const c = new PgConnection(io, session, engine, 'bench', 'postgres', pid, 1, { messageBytesMax: 64 << 20, idleTimeoutMs: 0, statementsMax: 100 }, 'pgproto')
    this.#done = c.run()
  }

  #onBackend(b: Buffer): void {
    for (let at = 0; at + 5 <= b.length;) {
      const type = b[at]
      if (type === 0x45) this.#failed = true // ErrorResponse
      if (type === 0x5a && this.#reply) { const r = this.#reply; this.#reply = null; r(this.#failed); this.#failed = false } // ReadyForQuery
      at += 1 + b.readInt32BE(at + 1)
    }
  }

  #send(b: Buffer | null): void {
    const r = this.#reader
    this.#reader = null
    if (r) r(b)
    else this.#inbox.push(b)
  }

  /** Runs `text`; resolves true when the server answered with an error. */
  run(text: string): Promise<boolean> {
    return new Promise(resolve => { this.#reply = resolve; this.#send(query(text)) })
  }

  async close(): Promise<void> {
    this.#send(null)
    await this.#done
    this.#release()
  }
}

/** CPU time of the main thread so far, in µs (Linux: its schedstat, in ns); null without /proc. */
function mainThreadCpuUs(): number | null {
  const t = threadTimes()?.get(process.pid)
  return t ? t.runNs / 1000 : null
}

async function runMode(source: SessionSource, mode: Mode, cfg: Config, ms: number, round: number): Promise<RunResult> {
  let transactions = 0
  let failed = 0
  const main0 = mainThreadCpuUs()
  const cpu0 = process.cpuUsage()
  const t0 = performance.now()
  const end = t0 + ms
  await Promise.all(Array.from({ length: cfg.clients }, async (_, i) => {
    if (mode === 'protocol') {
      const c = new ProtocolClient(source, 1000 + i)
      try {
        while (performance.now() < end) {
          let bad = false
          for (const text of tpcbTexts()) if (await c.run(text)) { bad = true; break }
          if (bad) { await c.run('ROLLBACK'); failed++ } else transactions++
        }
      } finally { await c.close() }
    } else {
      const { session, release } = source.open('postgres')
      try {
        while (performance.now() < end) {
          try {
            for (const text of tpcbTexts()) await session.sql(text, [], { rowMode: 'array' })
            transactions++
          } catch {
            await session.sql('ROLLBACK').catch(() => {})
            failed++
          }
        }
      } finally { await session.close(); release() }
    }
  }))
  const seconds = (performance.now() - t0) / 1000
  const cpu = process.cpuUsage(cpu0)
  const main1 = mainThreadCpuUs()
  const processUs = cpu.user + cpu.system
  const mainUs = main0 !== null && main1 !== null ? main1 - main0 : processUs
  const n = Math.max(1, transactions)
  return { mode, round, tps: transactions / seconds, transactions, failed, mainUsPerTx: mainUs / n, processUsPerTx: processUs / n }
}

export async function run(args: string[]): Promise<unknown> {
  const cfg = parseConfig(args)
  const host = hostInfo()
  const git = gitInfo()
  const perThread = mainThreadCpuUs() !== null
  console.log('hexad pgproto benchmark: the pg endpoint\'s per-connection code against SQL sessions, on the main thread')
  console.log(`command: ${cfg.command}`)
  console.log(`host: ${host.cpus} x ${host.cpuModel}, node ${host.node}, ${host.platform}; load average ${host.loadavg.join(' ')}`)
  if (git) console.log(`engine at commit ${git.commit}${git.engineDirty ? ' + uncommitted changes in engine/' : ''}`)
  console.log(`workload: pgbench TPC-B (scale 1) statements, ${cfg.clients} in-process clients, ${cfg.rounds} round(s) of ${cfg.durationMs / 1000} s per mode, a warm-up run of each first`)
  if (!perThread) console.log('(no /proc: CPU figures are the whole process\'s)')
  const dir = makeTempDir('pgproto')
  let cluster: Cluster | null = null
  const results: RunResult[] = []
  try {
    cluster = await openCluster({ dir, segmentNice: SERVE_SEGMENT_NICE })
    const source = endpointSource(cluster, 'writer')
    const t0 = performance.now()
    await load(source)
    console.log(`loaded ${ACCOUNTS.toLocaleString('en-US')} accounts in ${fmt((performance.now() - t0) / 1000)} s`)
    for (const mode of ['protocol', 'direct'] as const) {
      const w = await runMode(source, mode, cfg, Math.max(1000, cfg.durationMs / 2), 0)
      console.log(`  warm-up ${mode.padEnd(8)} ${fmt(w.tps)} tx/s (not counted)`)
    }
    for (let round = 1; round <= cfg.rounds; round++) {
      const order: Mode[] = round % 2 === 1 ? ['protocol', 'direct'] : ['direct', 'protocol']
      for (const mode of order) {
        const r = await runMode(source, mode, cfg, cfg.durationMs, round)
        results.push(r)
        console.log(`  round ${round} ${mode.padEnd(8)} ${fmt(r.tps)} tx/s, main thread ${fmt(r.mainUsPerTx)} us/tx, process ${fmt(r.processUsPerTx)} us/tx, ${r.failed} failed`)
      }
    }
  } finally {
    await cluster?.close()
    removeTempDir(dir)
    cleanupTempDirs()
  }
  const ratios: number[] = []
  for (let round = 1; round <= cfg.rounds; round++) {
    const p = results.find(r => r.round === round && r.mode === 'protocol')!
    const d = results.find(r => r.round === round && r.mode === 'direct')!
    ratios.push(p.mainUsPerTx / d.mainUsPerTx)
  }
  const summary = (['protocol', 'direct'] as const).map(mode => {
    const rs = results.filter(r => r.mode === mode)
    return { mode, tps: median(rs.map(r => r.tps)), mainUsPerTx: median(rs.map(r => r.mainUsPerTx)), processUsPerTx: median(rs.map(r => r.processUsPerTx)), failed: rs.reduce((n, r) => n + r.failed, 0) }
  })
  const rows: Array<Array<string | number>> = [['mode', 'tx/s', `${perThread ? 'main thread' : 'process'} us/tx`, 'process us/tx', 'failed']]
  for (const s of summary) rows.push([s.mode, fmt(s.tps), fmt(s.mainUsPerTx), fmt(s.processUsPerTx), s.failed])
  console.log(`\n================ medians of ${cfg.rounds} round(s) ================`)
  console.log(table(rows))
  const ratio = median(ratios)
  console.log(`\nprotocol / direct, ${perThread ? 'main-thread' : 'process'} CPU a transaction: ${fmt(ratio)}x (rounds ${ratios.map(x => fmt(x)).join(' / ')}); ` +
    `the pg endpoint's own cost ${fmt(summary[0].mainUsPerTx - summary[1].mainUsPerTx)} us a transaction (${fmt((summary[0].mainUsPerTx - summary[1].mainUsPerTx) / 7)} us a statement)`)
  const out = {
    benchmark: 'pgproto', date: new Date().toISOString(), command: cfg.command, git, host: { ...host, loadavgEnd: os.loadavg() },
    config: { durationMs: cfg.durationMs, rounds: cfg.rounds, clients: cfg.clients, perThreadCpu: perThread },
    summary, ratio: { mainCpuProtocolOverDirect: ratio, perRound: ratios }, results,
  }
  const file = writeResults('pgproto', out)
  console.log(`results written to ${path.relative(process.cwd(), file) || file}`)
  return out
}
