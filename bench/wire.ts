/**
 * Wire benchmark: `npm run bench -- wire [options]`.
 *
 * pgbench's built-in TPC-B script (scale 1, 16 clients, 2 threads, 30 s,
 * `--max-tries 10` so serialization failures are retried) against two
 * servers in the same run, one after the other:
 *
 *   hexad       `serve(cluster, { pg })` in this process (the same code as
 *               `hexad serve`), a fresh cluster in a temp directory; a commit
 *               is acknowledged once 4 of 6 segments have fsynced its redo.
 *   postgresql  a PostgreSQL 15 server (Debian's package; installed with
 *               apt-get when initdb is missing) started from a temp directory
 *               as the postgres user, `fsync=on`, `synchronous_commit=on`:
 *               a commit is acknowledged once its WAL is fsynced.
 *
 * For each: `pgbench -i -s 1` (timed, reported), a warm-up TPC-B run of
 * 10 s (reported, not counted), then the measured TPC-B run. The warm-up
 * makes the measured run a steady state on both servers, and every round
 * alike: hexad runs in this process, so without it round 1 measured hexad
 * with its JIT cold and later rounds with the main thread's code already
 * compiled (each round's segment workers start cold either way). Measured
 * on this 2-vCPU VM (10 s runs, fresh servers, two pairs): hexad 1,178 /
 * 1,320 TPS after 10 s of warm-up against 904 / 695 without, its JIT and
 * GC threads 106-123 us a transaction against 295-355; PostgreSQL 914 / 936
 * against 1,099 / 962 (no gain). TPS
 * (without initial connection time), latency average, failed and retried
 * transactions are parsed from pgbench's report; the ratio hexad/PostgreSQL
 * is taken within one round (the two ran back to back, so load drift on a
 * shared machine mostly cancels); with --rounds=N the order alternates and
 * the median ratio is reported (3 rounds by default, as the sql and kv
 * benchmarks: one round's ratio moved 0.72-1.19x on this 2-vCPU VM, with
 * both servers' TPS swinging with the machine's noise). Target: hexad
 * TPS >= 1x PostgreSQL's.
 *
 * PostgreSQL is stopped and its directory removed at the end, on error and
 * on Ctrl-C. Results go to bench/results/wire.json.
 *
 * Options: --quick (or HEXAD_BENCH_QUICK=1: -T 5, warm-up 2 s, one round), --duration=S,
 * --warmup=S (0: none), --clients=N, --jobs=N, --scale=N, --rounds=N,
 * --only=hexad|postgresql, --unix (both servers over their Unix-domain sockets instead of TCP;
 * the results then go to bench/results/wire-unix.json)
 */
import { spawn, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { openCluster } from '../engine/index.js'
import { serve, SERVE_SEGMENT_NICE } from '../engine/server/index.js'
import { cleanupTempDirs, fmt, gitInfo, hostInfo, idleShare, intOption, machineTimes, makeTempDir, median, optionValue, ProcessTreeCpu, refuseUnknownOptions, removeTempDir, table, threadDelta, threadTimes, writeResults } from './util.js'

const PG_BIN = '/usr/lib/postgresql/15/bin'
const TARGET = 1

type System = 'hexad' | 'postgresql'

interface Config {
  quick: boolean
  durationS: number
  /** seconds of TPC-B run before the measured one, on each server in each round (0: none) */
  warmupS: number
  clients: number
  jobs: number
  scale: number
  rounds: number
  systems: System[]
  /** how pgbench reaches both servers: TCP on 127.0.0.1 (the default), or their Unix-domain sockets (`--unix`, pgbench's own default for a local server) */
  transport: 'tcp' | 'unix'
  command: string
}

export interface PgbenchResult {
  system: System
  round: number
  tps: number
  latencyMs: number
  processed: number
  failed: number
  retried: number
  initSeconds: number
  /** TPS of the warm-up run (not counted); absent without one */
  warmupTps?: number
  runSeconds: number
  /** CPU this process used during the TPC-B run, in cores (hexad only: the server runs here) */
  cpuCores?: number
  /**
   * Linux: the server's CPU a transaction in the TPC-B run, µs: hexad's
   * process (the bench's own share of it is small), or PostgreSQL's
   * postmaster and every process under it
   */
  serverUsPerTx?: number
  /** Linux: the share of the whole machine's CPU time that was idle during the TPC-B run */
  machineIdleShare?: number
  /**
   * hexad only, Linux: where its CPU went in the TPC-B run, from the threads'
   * schedstat. The main thread runs every connection's protocol, SQL, B-tree
   * and commit; the other threads are the six segment workers and V8's and
   * libuv's helpers.
   */
  threads?: {
    /** the main thread's CPU a transaction, µs */
    mainUsPerTx: number
    /** share of the run's wall time the main thread ran */
    mainRunShare: number
    /** share of the run's wall time it was runnable but waited for a CPU */
    mainWaitShare: number
    /** all other threads' CPU a transaction, µs */
    otherUsPerTx: number
  }
  setting: string
}

/** The median of the values present; undefined when none is. */
function medianOf(xs: Array<number | undefined>): number | undefined {
  const v = xs.filter((x): x is number => x !== undefined)
  return v.length ? median(v) : undefined
}

function parseConfig(args: string[]): Config {
  const known = ['--quick', '--unix', '--duration=', '--warmup=', '--clients=', '--jobs=', '--scale=', '--rounds=', '--only=']
  refuseUnknownOptions('wire', args, known)
  const quick = args.includes('--quick') || process.env.HEXAD_BENCH_QUICK === '1'
  const only = optionValue(args, 'only')
  if (only !== undefined && only !== 'hexad' && only !== 'postgresql') throw new Error(`--only must be hexad or postgresql, got ${only}`)
  return {
    quick,
    durationS: intOption('wire', args, 'duration', quick ? 5 : 30),
    warmupS: intOption('wire', args, 'warmup', quick ? 2 : 10, 0),
    clients: intOption('wire', args, 'clients', 16),
    jobs: intOption('wire', args, 'jobs', 2),
    scale: intOption('wire', args, 'scale', 1),
    rounds: intOption('wire', args, 'rounds', quick ? 1 : 3),
    systems: only ? [only] : ['hexad', 'postgresql'],
    transport: args.includes('--unix') ? 'unix' : 'tcp',
    command: `npm run bench -- wire${args.length ? ' ' + args.join(' ') : ''}`,
  }
}

// ------------------------------------------------------------------ tools

/** PostgreSQL 15's binaries, installing Debian's package when initdb or pgbench is missing. */
function pgBinaries(): { initdb: string; pgCtl: string; pgbench: string; psql: string } {
  const bins = { initdb: path.join(PG_BIN, 'initdb'), pgCtl: path.join(PG_BIN, 'pg_ctl'), pgbench: path.join(PG_BIN, 'pgbench'), psql: path.join(PG_BIN, 'psql') }
  const missing = () => Object.values(bins).filter(b => !fs.existsSync(b))
  if (missing().length) {
    console.log(`PostgreSQL 15 is not installed (${missing().join(', ')} missing): apt-get install postgresql-15 ...`)
    const r = spawnSync('sh', ['-c', 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-15'], { stdio: 'inherit', timeout: 10 * 60_000 })
    if (missing().length) throw new Error(`could not install postgresql-15 (exit ${r.status}): ${missing().join(', ')} still missing`)
  }
  return bins
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port
      s.close(() => resolve(port))
    })
  })
}

/** Runs a command without blocking this event loop (the hexad server lives in it); lines of output go to `onLine`. */
function runAsync(bin: string, args: string[], env: Record<string, string>, onLine?: (line: string) => void, timeoutMs = 15 * 60_000): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, { env: { ...process.env, ...env } })
    let out = ''
    let partial = ''
    const feed = (d: Buffer) => {
      const s = d.toString()
      out += s
      if (!onLine) return
      partial += s
      const lines = partial.split('\n')
      partial = lines.pop() ?? ''
      for (const l of lines) if (l.trim()) onLine(l)
    }
    child.stdout.on('data', feed)
    child.stderr.on('data', feed)
    child.once('error', reject)
    const kill = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
    child.on('close', code => { clearTimeout(kill); if (onLine && partial.trim()) onLine(partial); resolve({ code, out }) })
  })
}

// ------------------------------------------------------------------ PostgreSQL

interface PgServerHandle { port: number; dir: string; setting: string; stop(): void }

const asRoot = typeof process.getuid === 'function' && process.getuid() === 0

/** argv that runs `bin args` as the postgres user when we are root (the server refuses to run as root). */
function asPostgres(bin: string, args: string[]): [string, string[]] {
  return asRoot ? ['runuser', ['-u', 'postgres', '--', bin, ...args]] : [bin, args]
}

function runSyncChecked(argv: [string, string[]], what: string, timeoutMs = 120_000): string {
  const r = spawnSync(argv[0], argv[1], { encoding: 'utf8', timeout: timeoutMs })
  const out = (r.stdout ?? '') + (r.stderr ?? '')
  if (r.status !== 0) throw new Error(`${what} failed (exit ${r.status}${r.error ? ', ' + r.error.message : ''}):\n${out}`)
  return out
}

let pgToStop: PgServerHandle | null = null

async function startPostgres(bins: ReturnType<typeof pgBinaries>): Promise<PgServerHandle> {
  const dir = makeTempDir('wire-pg')
  const data = path.join(dir, 'data')
  if (asRoot) spawnSync('chown', ['-R', 'postgres:postgres', dir])
  let started = false
  const stop = () => {
    if (started) {
      const [bin, argv] = asPostgres(bins.pgCtl, ['-D', data, '-m', 'fast', '-w', '-t', '60', 'stop'])
      spawnSync(bin, argv, { stdio: 'ignore', timeout: 90_000 })
      started = false
    }
    pgToStop = null
    removeTempDir(dir)
  }
  try {
    runSyncChecked(asPostgres(bins.initdb, ['-D', data, '-A', 'trust', '-U', 'postgres', '-E', 'UTF8', '--no-sync']), 'initdb')
    const port = await freePort()
    const opts = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=on -c synchronous_commit=on -c full_page_writes=on -c max_connections=100`
    started = true
    pgToStop = { port, dir, setting: '', stop }
    runSyncChecked(asPostgres(bins.pgCtl, ['-D', data, '-l', path.join(dir, 'server.log'), '-o', opts, '-w', '-t', '60', 'start']), 'pg_ctl start')
    const show = runSyncChecked([bins.psql, ['-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', '-d', 'postgres', '-Atc',
      "SELECT setting FROM pg_settings WHERE name IN ('server_version', 'fsync', 'synchronous_commit', 'wal_sync_method', 'shared_buffers') ORDER BY name"]], 'psql SHOW')
    // ordered by name: fsync, server_version, shared_buffers (8 kB pages), synchronous_commit, wal_sync_method
    const [fsync, version, sharedBuffers, syncCommit, walSync] = show.trim().split('\n')
    if (fsync !== 'on' || syncCommit !== 'on') throw new Error(`PostgreSQL is not durable as configured: fsync=${fsync} synchronous_commit=${syncCommit}`)
    const setting = `PostgreSQL ${version}, fsync=${fsync}, synchronous_commit=${syncCommit}, wal_sync_method=${walSync}, shared_buffers=${Number(sharedBuffers) * 8 / 1024} MB`
    pgToStop.setting = setting
    return pgToStop
  } catch (err) {
    stop()
    throw err
  }
}

// ------------------------------------------------------------------ pgbench

function parsePgbench(out: string): { tps: number; latencyMs: number; processed: number; failed: number; retried: number } {
  const num = (re: RegExp, what: string, dflt?: number) => {
    const m = re.exec(out)
    if (!m) { if (dflt !== undefined) return dflt; throw new Error(`pgbench output has no ${what}:\n${out}`) }
    return Number(m[1])
  }
  return {
    tps: num(/tps = ([\d.]+) \(without initial connection time\)/, 'tps'),
    latencyMs: num(/latency average = ([\d.]+) ms/, 'latency average'),
    processed: num(/number of transactions actually processed: (\d+)/, 'transactions processed'),
    failed: num(/number of failed transactions: (\d+)/, 'failed transactions', 0),
    retried: num(/number of transactions retried: (\d+)/, 'retried transactions', 0),
  }
}

/** `host`: 127.0.0.1, or (--unix) the directory of the server's Unix-domain socket */
async function pgbenchOn(cfg: Config, pgbench: string, system: System, round: number, host: string, port: number, user: string, setting: string, serverTree?: ProcessTreeCpu): Promise<PgbenchResult> {
  const env = { PGUSER: user, PGDATABASE: 'postgres', PGCONNECT_TIMEOUT: '10', PGHOST: host, PGPORT: String(port) }
  const tag = `    [${system}]`
  console.log(`${tag} pgbench -i -s ${cfg.scale} ...`)
  const t0 = performance.now()
  const init = await runAsync(pgbench, ['-i', '-s', String(cfg.scale), '-q'], env)
  const initSeconds = (performance.now() - t0) / 1000
  if (init.code !== 0) throw new Error(`${system}: pgbench -i failed (exit ${init.code}):\n${init.out}`)
  console.log(`${tag} initialised in ${fmt(initSeconds)} s`)
  const tpcb = (seconds: number) => ['-c', String(cfg.clients), '-j', String(cfg.jobs), '-T', String(seconds), '--max-tries', '10']
  let warmupTps: number | undefined
  if (cfg.warmupS > 0) {
    const w = await runAsync(pgbench, tpcb(cfg.warmupS), env)
    if (w.code !== 0) throw new Error(`${system}: pgbench warm-up failed (exit ${w.code}):\n${w.out}`)
    const wp = parsePgbench(w.out)
    warmupTps = wp.tps
    console.log(`${tag} warm-up: pgbench -c ${cfg.clients} -j ${cfg.jobs} -T ${cfg.warmupS}: ${fmt(wp.tps)} TPS, ${wp.failed} failed (not counted)`)
  }
  console.log(`${tag} TPC-B: pgbench -c ${cfg.clients} -j ${cfg.jobs} -T ${cfg.durationS} --max-tries 10`)
  const progress = cfg.durationS >= 20 ? 5 : 1
  const cpu0 = process.cpuUsage()
  const th0 = system === 'hexad' ? threadTimes() : null
  const m0 = machineTimes()
  // a backend's counters go with it when pgbench disconnects: read the tree while the run lasts,
  // its known processes every 100 ms (at most 100 ms of a backend's work lost at its exit) and a
  // scan of /proc for new ones every second
  serverTree?.sample()
  let ticks = 0
  const sampler = serverTree ? setInterval(() => { if (++ticks % 10 === 0) serverTree.sample(); else serverTree.refresh() }, 100) : null
  const t1 = performance.now()
  let r: Awaited<ReturnType<typeof runAsync>>
  try {
    r = await runAsync(pgbench, [...tpcb(cfg.durationS), '-P', String(progress)], env,
      line => { if (/^progress:/.test(line)) console.log(`${tag} ${line}`) })
  } finally {
    if (sampler) clearInterval(sampler)
  }
  const runSeconds = (performance.now() - t1) / 1000
  const cpu = process.cpuUsage(cpu0)
  const th1 = th0 ? threadTimes() : null
  const m1 = machineTimes()
  if (r.code !== 0) throw new Error(`${system}: pgbench TPC-B failed (exit ${r.code}):\n${r.out}`)
  const p = parsePgbench(r.out)
  const res: PgbenchResult = { system, round, ...p, initSeconds, ...(warmupTps !== undefined ? { warmupTps } : {}), runSeconds, setting, ...(system === 'hexad' ? { cpuCores: (cpu.user + cpu.system) / 1e6 / runSeconds } : {}) }
  if (p.processed > 0) {
    if (system === 'hexad') res.serverUsPerTx = (cpu.user + cpu.system) / p.processed
    else if (serverTree && serverTree.totalNs() > 0) res.serverUsPerTx = serverTree.totalNs() / 1000 / p.processed
  }
  if (m0 && m1) res.machineIdleShare = idleShare(m0, m1)
  console.log(`${tag} ${fmt(p.tps)} TPS, latency average ${fmt(p.latencyMs)} ms, ${p.processed} transactions, ${p.failed} failed, ${p.retried} retried` +
    (res.cpuCores !== undefined ? `, this process used ${fmt(res.cpuCores, 2)} cores` : ''))
  if (res.serverUsPerTx !== undefined || res.machineIdleShare !== undefined) {
    console.log(`${tag} server CPU ${res.serverUsPerTx !== undefined ? `${fmt(res.serverUsPerTx)} us a transaction (${system === 'hexad' ? 'this process' : 'the postmaster and its backends'})` : 'not measured'}` +
      (res.machineIdleShare !== undefined ? `; the machine was ${(res.machineIdleShare * 100).toFixed(1)}% idle` : ''))
  }
  if (th0 && th1 && p.processed > 0) {
    const d = threadDelta(th0, th1)
    const wallNs = runSeconds * 1e9
    const t = res.threads = { mainUsPerTx: d.mainRunNs / 1000 / p.processed, mainRunShare: d.mainRunNs / wallNs, mainWaitShare: d.mainWaitNs / wallNs, otherUsPerTx: d.otherRunNs / 1000 / p.processed }
    console.log(`${tag} main thread ${fmt(t.mainUsPerTx)} us a transaction, ran ${(t.mainRunShare * 100).toFixed(0)}% of the run and waited for a CPU ${(t.mainWaitShare * 100).toFixed(0)}%; other threads ${fmt(t.otherUsPerTx)} us a transaction`)
  }
  return res
}

async function runHexad(cfg: Config, pgbench: string, round: number): Promise<PgbenchResult> {
  const dir = makeTempDir('wire-hexad')
  const sockets = cfg.transport === 'unix' ? makeTempDir('wire-sock') : null
  const cluster = await openCluster({ dir, segmentNice: SERVE_SEGMENT_NICE }) // as `hexad serve` opens it
  try {
    const endpoints = await serve(cluster, { pg: { port: 0, auth: 'trust', ...(sockets ? { socketDir: sockets } : {}) } })
    try {
      const setting = `hexad serve (in process), pg endpoint, trust, segment threads at nice ${SERVE_SEGMENT_NICE} (as hexad serve); commit acknowledged when 4 of 6 segments fsynced its redo`
      return await pgbenchOn(cfg, pgbench, 'hexad', round, sockets ?? '127.0.0.1', endpoints.pg!.port, 'bench', setting)
    } finally {
      await endpoints.close()
    }
  } finally {
    await cluster.close()
    removeTempDir(dir)
    if (sockets) removeTempDir(sockets)
  }
}

async function runPostgres(cfg: Config, bins: ReturnType<typeof pgBinaries>, round: number): Promise<PgbenchResult> {
  const pg = await startPostgres(bins)
  try {
    // the postmaster's pid is the first line of postmaster.pid
    let tree: ProcessTreeCpu | undefined
    try { tree = new ProcessTreeCpu(Number(fs.readFileSync(path.join(pg.dir, 'data', 'postmaster.pid'), 'utf8').split('\n')[0])) } catch { /* not measured */ }
    // the server listens on 127.0.0.1 and on a Unix-domain socket in its directory (-k)
    try {
      return await pgbenchOn(cfg, bins.pgbench, 'postgresql', round, cfg.transport === 'unix' ? pg.dir : '127.0.0.1', pg.port, 'postgres', pg.setting, tree)
    } finally {
      tree?.close()
    }
  } finally {
    pg.stop()
  }
}

// ------------------------------------------------------------------ entry

export async function run(args: string[]): Promise<unknown> {
  const cfg = parseConfig(args)
  // stop a running PostgreSQL on Ctrl-C before util's handler removes the temp dirs and exits
  // (registered first, so it runs first)
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => { try { pgToStop?.stop() } catch { /* exiting */ } })
  const host = hostInfo()
  const git = gitInfo()
  console.log(`hexad wire benchmark: pgbench TPC-B${cfg.quick ? ' (quick)' : ''}`)
  console.log(`command: ${cfg.command}`)
  console.log(`host: ${host.cpus} x ${host.cpuModel}, ${host.memGiB} GiB, node ${host.node}, ${host.platform}, temp dirs in ${host.tmpdir}`)
  if (git) console.log(`engine at commit ${git.commit}${git.engineDirty ? ' + uncommitted changes in engine/' : ''}`)
  console.log(`load average at start: ${host.loadavg.join(' ')}${host.loadavg[0] > host.cpus ? '  (busy machine: expect noisy numbers)' : ''}`)
  console.log(`workload: pgbench -i -s ${cfg.scale}, ${cfg.warmupS > 0 ? `a ${cfg.warmupS} s warm-up run (not counted), ` : ''}then pgbench -c ${cfg.clients} -j ${cfg.jobs} -T ${cfg.durationS} --max-tries 10 (built-in TPC-B, simple protocol), ${cfg.rounds} round(s), ${cfg.transport === 'unix' ? 'over Unix-domain sockets (--unix)' : 'over TCP on 127.0.0.1'}`)
  const bins = pgBinaries()
  const version = spawnSync(bins.pgbench, ['--version'], { encoding: 'utf8' }).stdout.trim()
  console.log(`client: ${version}`)
  const results: PgbenchResult[] = []
  try {
    for (let round = 1; round <= cfg.rounds; round++) {
      const order = round % 2 === 1 ? cfg.systems : [...cfg.systems].reverse()
      console.log(`\n---------------- round ${round} of ${cfg.rounds} (order: ${order.join(', ')}; load average ${os.loadavg().map(x => x.toFixed(2)).join(' ')}) ----------------`)
      for (const s of order) results.push(s === 'hexad' ? await runHexad(cfg, bins.pgbench, round) : await runPostgres(cfg, bins, round))
    }
  } finally {
    pgToStop?.stop()
    cleanupTempDirs()
  }

  const perRound: number[] = []
  const latRatio: number[] = []
  const cpuRatios: number[] = []
  for (let round = 1; round <= cfg.rounds; round++) {
    const h = results.find(r => r.round === round && r.system === 'hexad')
    const p = results.find(r => r.round === round && r.system === 'postgresql')
    if (!h || !p) continue
    perRound.push(h.tps / p.tps)
    latRatio.push(h.latencyMs / p.latencyMs)
    if (h.serverUsPerTx !== undefined && p.serverUsPerTx !== undefined) cpuRatios.push(h.serverUsPerTx / p.serverUsPerTx)
  }
  const ratio = perRound.length ? median(perRound) : null
  const pass = ratio === null ? null : ratio >= TARGET
  const summary = cfg.systems.map(system => {
    const rs = results.filter(r => r.system === system)
    return {
      system, tps: median(rs.map(r => r.tps)), latencyMs: median(rs.map(r => r.latencyMs)),
      processed: rs.reduce((n, r) => n + r.processed, 0), failed: rs.reduce((n, r) => n + r.failed, 0), retried: rs.reduce((n, r) => n + r.retried, 0),
      initSeconds: median(rs.map(r => r.initSeconds)), setting: rs[0]?.setting ?? '',
      serverUsPerTx: medianOf(rs.map(r => r.serverUsPerTx)), machineIdleShare: medianOf(rs.map(r => r.machineIdleShare)),
    }
  })
  const loadEnd = os.loadavg().map(x => Math.round(x * 100) / 100)
  console.log(`\n================ pgbench TPC-B, scale ${cfg.scale}, ${cfg.clients} clients, ${cfg.jobs} threads, ${cfg.durationS} s${cfg.warmupS > 0 ? ` after a ${cfg.warmupS} s warm-up` : ''}${cfg.rounds > 1 ? `, median of ${cfg.rounds} rounds` : ''} ================`)
  for (const s of summary) console.log(`  ${s.system.padEnd(11)} ${s.setting}`)
  const rows: Array<Array<string | number>> = [['server', 'TPS', 'latency avg ms', 'transactions', 'failed', 'retried', 'init s', 'server CPU us/tx', 'machine idle', 'hexad/PostgreSQL', 'target', 'result']]
  for (const s of summary) {
    const isH = s.system === 'hexad'
    rows.push([s.system, fmt(s.tps), fmt(s.latencyMs), s.processed, s.failed, s.retried, fmt(s.initSeconds),
      s.serverUsPerTx !== undefined ? fmt(s.serverUsPerTx) : '', s.machineIdleShare !== undefined ? `${(s.machineIdleShare * 100).toFixed(1)}%` : '',
      isH && ratio !== null ? `${fmt(ratio)}x` : '', isH && ratio !== null ? `>= ${TARGET}x` : '', isH && pass !== null ? (pass ? 'PASS' : 'FAIL') : ''])
  }
  console.log(table(rows))
  if (ratio !== null) {
    console.log(`\nTarget: hexad TPS / PostgreSQL TPS = ${fmt(ratio)}x (>= ${TARGET}x) ${pass ? 'PASS' : 'FAIL'}` +
      `${cfg.rounds > 1 ? `   per round: ${perRound.map(x => fmt(x)).join(' / ')}` : ''}; latency hexad/PostgreSQL = ${fmt(median(latRatio))}x`)
  }
  if (cpuRatios.length) {
    console.log(`server CPU a transaction, hexad/PostgreSQL = ${fmt(median(cpuRatios))}x${cfg.rounds > 1 ? ` (per round: ${cpuRatios.map(x => fmt(x)).join(' / ')})` : ''}`)
  }
  console.log(`load average at start ${host.loadavg.join(' ')}, at end ${loadEnd.join(' ')} (${host.cpus} CPUs; pgbench, the server and hexad's segment workers share them)`)
  const out = {
    benchmark: 'wire',
    date: new Date().toISOString(),
    command: cfg.command,
    git,
    host: { ...host, loadavgEnd: loadEnd },
    client: version,
    config: { quick: cfg.quick, durationS: cfg.durationS, warmupS: cfg.warmupS, clients: cfg.clients, jobs: cfg.jobs, scale: cfg.scale, rounds: cfg.rounds, maxTries: 10, protocol: 'simple', transport: cfg.transport },
    summary,
    ratio: ratio === null ? null : { tps: ratio, perRound, latency: median(latRatio), target: TARGET, pass, ...(cpuRatios.length ? { serverCpuPerTx: median(cpuRatios), serverCpuPerRound: cpuRatios } : {}) },
    results,
  }
  const file = writeResults(cfg.transport === 'unix' ? 'wire-unix' : 'wire', out)
  console.log(`results written to ${path.relative(process.cwd(), file) || file}`)
  return out
}
