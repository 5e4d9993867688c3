/**
 * Benchmark dispatcher: `npm run bench -- <name> [options]`
 * (or `npx tsc -p . && node dist/bench/index.js <name> [options]`).
 *
 * Each benchmark lives in bench/<name>.ts and exports `run(args)`, where
 * `args` are the command-line arguments after the name. An unknown or
 * missing name prints the list.
 */
interface BenchModule { run(args: string[]): Promise<unknown> }

const BENCHMARKS: Record<string, { about: string; load: () => Promise<BenchModule> }> = {
  volume: {
    about: 'durable MTRs/s, MB/s, commit p50/p99 at concurrency 1 and 64, healthy and with AZ 0 down, ' +
      'beside raw append+fdatasync; openVolume recovery time as the log grows. ' +
      'Options: --quick (or HEXAD_BENCH_QUICK=1), --duration=MS, --rounds=N, --no-recovery, --no-big, --recovery-only',
    load: () => import('./volume.js'),
  },
  kv: {
    about: 'key-value store vs better-sqlite3, lmdb, classic-level on one workload: (a) 100k puts in 100-row transactions, ' +
      '(b) 20k single-put transactions from 64 clients, (c) 200k random gets warm, (d) 200k gets with a cache of 1/10 of the data, ' +
      '(e) scans of 1,000 rows; ops/s and hexad/peer ratios. Options: --quick (or HEXAD_BENCH_QUICK=1), --rounds=N, --stores=LIST, --seed=N',
    load: () => import('./kv.js'),
  },
  cluster: {
    about: 'read replicas: replica lag p50/p99 with single-put commits offered at 1k, 5k, 10k/s; read throughput with 0, 1, 2, 4 readers; ' +
      'failover time p50/p99 over 20 writer crashes under load. ' +
      'Options: --quick (or HEXAD_BENCH_QUICK=1), --duration=MS',
    load: () => import('./cluster.js'),
  },
  sql: {
    about: 'SQL front vs better-sqlite3 on the same SQL: pgbench TPC-B-like transactions (scale 1, hexad 16 concurrent sessions), ' +
      'point SELECT by primary key and by unique index, GROUP BY over 100k rows; ops/s, hexad/peer ratios, target TPC-B >= 1x. ' +
      'Options: --quick (or HEXAD_BENCH_QUICK=1), --rounds=N, --duration=MS, --warmup=MS (TPC-B warm-up per store, default 3000, 0: none), --clients=N, --seed=N',
    load: () => import('./sql.js'),
  },
  clone: {
    about: 'copy-on-write clones at 10 MB, 100 MB and 1 GB: clone creation time (target < 50 ms, flat) and open time, first-read latency ' +
      'clone vs parent (cold), restore throughput from the continuous backup vs cp -r, backtrack time. Options: --quick (10 and 100 MB), --sizes=MB,MB',
    load: () => import('./clone.js'),
  },
  wire: {
    about: 'pgbench TPC-B (scale 1, 16 clients, 30 s after a 10 s warm-up, --max-tries 10) against hexad serve\'s PostgreSQL endpoint and a PostgreSQL 15 server ' +
      'started from a temp dir (both durable): TPS, latency, failed/retried, hexad/PostgreSQL ratio (target >= 1x). ' +
      'Options: --quick (or HEXAD_BENCH_QUICK=1: one round of 5 s, 2 s warm-up), --duration=S, --warmup=S (0: none), --clients=N, --jobs=N, --rounds=N (default 3), --only=hexad|postgresql',
    load: () => import('./wire.js'),
  },
  pgproto: {
    about: 'the pg endpoint\'s per-connection code on the main thread, without sockets: in-process clients send pgbench\'s TPC-B statements through PgConnection, ' +
      'against the same statements sent to SQL sessions directly; tx/s and main-thread CPU a transaction. ' +
      'Options: --quick (or HEXAD_BENCH_QUICK=1), --duration=MS, --rounds=N, --clients=N',
    load: () => import('./pgproto.js'),
  },
}

function usage(): string {
  const lines = ['usage: npm run bench -- <name> [options]', '', 'benchmarks:']
  for (const [name, b] of Object.entries(BENCHMARKS)) lines.push(`  ${name.padEnd(10)} ${b.about}`)
  return lines.join('\n')
}

const [name, ...rest] = process.argv.slice(2)
if (!name || name === '--help' || name === '-h') {
  console.log(usage())
  process.exitCode = name ? 0 : 1
} else if (!Object.hasOwn(BENCHMARKS, name)) {
  console.error(`unknown benchmark "${name}"\n`)
  console.error(usage())
  process.exitCode = 1
} else {
  try {
    const mod = await BENCHMARKS[name].load()
    await mod.run(rest)
  } catch (err) {
    console.error(`benchmark ${name} failed:`, err)
    process.exitCode = 1
  }
}
