/**
 * Clone, restore and backtrack benchmark: `npm run bench -- clone [--quick] [--sizes=10,100,1000]`.
 *
 * For each volume size (MB of values; default 10, 100 and 1,000; --quick:
 * 10 and 100) a cluster is loaded with 60 KB values, then:
 *
 * 1. Clone creation (`volume.createClone(dir)`: the clone's volume.meta and
 *    the parent's pin), measured with tinybench, each iteration a new clone
 *    directory. Target (issue): under 50 ms at every size, i.e. flat.
 *    Opening the clone (`openCluster` on it: six segment workers start and
 *    recover, as for any cluster) is reported beside it, one-shot x3.
 * 2. First-read latency: 200 random gets on a freshly opened clone (every
 *    page is a first read: the clone's segments answer 'absent' and the
 *    page comes from the parent at the clone LSN), beside the same gets on
 *    the parent freshly reopened (cold cache, its own segments): p50/p99
 *    and the ratio clone/parent.
 * 3. Restore throughput (sizes up to 100 MB): the cluster runs a continuous
 *    backup to a directory store; `restore()` of the latest moment into a
 *    new directory, in MB of pages per second, beside the rate the same data
 *    was loaded at through the cluster (restore/load), and copying the
 *    source's directory tree with fs.cpSync (from the page cache: a bound no
 *    six-way replicated write reaches, shown for scale).
 * 4. Backtrack time: 500 random values rewritten after a recorded moment,
 *    then `cluster.backtrack(moment)`: ms and pages written (it grows with
 *    the pages changed since the moment, not with the volume).
 *
 * Results go to bench/results/clone.json.
 */
import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { Bench } from 'tinybench'
import { destroyCluster, openCluster, restore, type Cluster } from '../engine/index.js'
import { cleanupTempDirs, diskUsage, fmt, gitInfo, hostInfo, makeTempDir, MB, optionValue, refuseUnknownOptions, removeTempDir, table, writeResults } from './util.js'

const VALUE_BYTES = 60_000

function pct(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b)
  return s.length ? s[Math.min(s.length - 1, Math.floor(q * s.length))] : 0
}

const key = (i: number) => `v/${String(i).padStart(7, '0')}`
const sleep = (ms: number) => new Promise(r => setTimeout(r, ms))

async function load(c: Cluster, values: number): Promise<number> {
  const t0 = performance.now()
  let last = t0
  for (let i = 0; i < values; i += 16) {
    await c.writer.batch(Array.from({ length: Math.min(16, values - i) }, (_, j) => ({ type: 'put' as const, key: key(i + j), value: crypto.randomBytes(VALUE_BYTES) })))
    if (performance.now() - last > 5000) { last = performance.now(); process.stdout.write(`  loaded ${fmt(((i + 16) * VALUE_BYTES) / MB, 3)} MB\n`) }
  }
  return performance.now() - t0
}

async function timedGets(c: Cluster, keys: string[]): Promise<number[]> {
  const out: number[] = []
  for (const k of keys) {
    const t = performance.now()
    const v = await c.writer.get(k)
    out.push(performance.now() - t)
    if (!v || v.length !== VALUE_BYTES) throw new Error(`get ${k}: wrong value`)
  }
  return out
}

interface SizeRow {
  mb: number; loadMs: number; diskMB: number
  createP50: number; createP99: number; createMean: number; createSamples: number
  openMs: number[]
  cloneReadP50: number; cloneReadP99: number; parentReadP50: number; parentReadP99: number
  restore: { mb: number; ms: number; mbPerSec: number; copyMbPerSec: number } | null
  backtrack: { ms: number; pages: number }
}

async function measureSize(mb: number, withRestore: boolean): Promise<SizeRow> {
  const root = makeTempDir(`bench-clone-${mb}`)
  const src = path.join(root, 'src')
  const store = path.join(root, 'store')
  const values = Math.max(16, Math.round((mb * MB) / VALUE_BYTES))
  const cacheBytes = 16 << 20
  let c = await openCluster({ dir: src, cacheBytes, backtrackWindowMs: 3_600_000, ...(withRestore ? { backup: { store, intervalMs: 200, bytesPerSecond: 256 << 20 } } : {}) })
  try {
    console.log(`\n${mb} MB: loading ${values} values of ${VALUE_BYTES} bytes`)
    const loadMs = await load(c, values)
    const diskMB = diskUsage(src) / MB

    // 1. Clone creation.
    const made: string[] = []
    let n = 0
    const bench = new Bench({ time: 1500, warmupIterations: 3, iterations: 20, retainSamples: true })
    bench.add('createClone', () => { const d = path.join(root, `clone-${n++}`); c.volume.createClone(d); made.push(d) })
    await bench.run()
    const samples = [...((bench.tasks[0].result as unknown as { latency: { samples?: number[] } }).latency.samples ?? [])]
    if (samples.length === 0) throw new Error(`createClone: no samples (${JSON.stringify(bench.tasks[0].result)})`)
    for (const d of made) await destroyCluster(d)

    // 2. First reads: a fresh clone beside the parent reopened cold.
    const rng = crypto.createHash('sha256')
    const picks = Array.from({ length: 200 }, (_, i) => key(rng.update(String(i)).copy().digest().readUInt32LE(0) % values))
    const openMs: number[] = []
    let cloneRead: number[] = []
    for (let i = 0; i < 3; i++) {
      const dir = path.join(root, `open-${i}`)
      c.volume.createClone(dir)
      const t = performance.now()
      const clone = await openCluster({ dir, cacheBytes })
      openMs.push(performance.now() - t)
      if (i === 0) cloneRead = await timedGets(clone, picks)
      await clone.destroy()
    }

    // 4. Backtrack (before the restart: the timeline is on disk either way).
    await sleep(150)
    const moment = new Date()
    await sleep(150)
    for (let i = 0; i < 500; i++) await c.writer.put(key(crypto.randomInt(values)), crypto.randomBytes(VALUE_BYTES))
    const bt = await c.backtrack(moment)

    // 3. Restore from the continuous backup.
    let restoreRow: SizeRow['restore'] = null
    if (withRestore) {
      await c.backup!.flush()
      await c.close()
      const t = performance.now()
      const r = await restore({ from: store, to: path.join(root, 'restored') })
      const ms = performance.now() - t
      const t2 = performance.now()
      fs.cpSync(src, path.join(root, 'copied'), { recursive: true })
      const copyMs = performance.now() - t2
      restoreRow = { mb: r.bytes / MB, ms, mbPerSec: r.bytes / MB / (ms / 1000), copyMbPerSec: diskUsage(src) / MB / (copyMs / 1000) }
      removeTempDir(path.join(root, 'restored'))
      removeTempDir(path.join(root, 'copied'))
    } else await c.close()
    c = await openCluster({ dir: src, cacheBytes, backtrackWindowMs: 3_600_000 })
    const parentRead = await timedGets(c, picks)
    return {
      mb, loadMs, diskMB,
      createP50: pct(samples, 0.5), createP99: pct(samples, 0.99), createMean: samples.reduce((a, b) => a + b, 0) / samples.length, createSamples: samples.length,
      openMs,
      cloneReadP50: pct(cloneRead, 0.5), cloneReadP99: pct(cloneRead, 0.99), parentReadP50: pct(parentRead, 0.5), parentReadP99: pct(parentRead, 0.99),
      restore: restoreRow,
      backtrack: { ms: bt.ms, pages: bt.pages },
    }
  } finally {
    await c.close().catch(() => {})
    removeTempDir(root)
  }
}

export async function run(args: string[]): Promise<unknown> {
  refuseUnknownOptions('clone', args, ['--quick', '--sizes='])
  const quick = args.includes('--quick') || process.env.HEXAD_BENCH_QUICK === '1'
  const sizes = (optionValue(args, 'sizes') ?? (quick ? '10,100' : '10,100,1000')).split(',').map(Number)
  if (sizes.some(s => !Number.isFinite(s) || s <= 0)) throw new Error('--sizes takes a comma-separated list of MB, e.g. --sizes=10,100')
  const host = hostInfo()
  const rows: SizeRow[] = []
  try {
    for (const mb of sizes) rows.push(await measureSize(mb, mb <= 100))
  } finally {
    cleanupTempDirs()
  }
  console.log('\nclone creation (createClone: metadata only) and open (openCluster on the clone: workers start, recovery)')
  console.log(table([['volume', 'on disk', 'create p50', 'create p99', 'target', 'open (x3)'],
    ...rows.map(r => [`${r.mb} MB`, `${fmt(r.diskMB, 3)} MB`, `${fmt(r.createP50)} ms`, `${fmt(r.createP99)} ms`, r.createP99 < 50 ? 'PASS (<50 ms)' : 'FAIL (<50 ms)', r.openMs.map(x => fmt(x, 3)).join(' / ') + ' ms'])]))
  console.log('\nfirst reads of 60 KB values (cold): clone (through the parent) vs parent (its own segments)')
  console.log(table([['volume', 'clone p50', 'clone p99', 'parent p50', 'parent p99', 'clone/parent p50'],
    ...rows.map(r => [`${r.mb} MB`, `${fmt(r.cloneReadP50)} ms`, `${fmt(r.cloneReadP99)} ms`, `${fmt(r.parentReadP50)} ms`, `${fmt(r.parentReadP99)} ms`, fmt(r.cloneReadP50 / r.parentReadP50, 2) + 'x'])]))
  console.log('\nrestore (latest moment, from the continuous backup) vs copying the source directory; backtrack after 500 rewritten values')
  console.log(table([['volume', 'load MB/s', 'restored', 'restore MB/s', 'restore/load', 'cp -r MB/s', 'backtrack', 'pages'],
    ...rows.map(r => {
      const loadRate = r.mb / (r.loadMs / 1000)
      return [`${r.mb} MB`, fmt(loadRate, 3), r.restore ? `${fmt(r.restore.mb, 3)} MB` : '-', r.restore ? fmt(r.restore.mbPerSec, 3) : '-', r.restore ? fmt(r.restore.mbPerSec / loadRate, 2) + 'x' : '-',
        r.restore ? fmt(r.restore.copyMbPerSec, 3) : '-', `${fmt(r.backtrack.ms, 3)} ms`, r.backtrack.pages]
    })]))
  const file = writeResults('clone', {
    benchmark: 'clone', date: new Date().toISOString(), command: `node dist/bench/index.js clone${args.length ? ' ' + args.join(' ') : ''}`,
    git: gitInfo(), host: { ...host, loadavgEnd: hostInfo().loadavg }, config: { quick, sizes, valueBytes: VALUE_BYTES },
    rows, target: { cloneCreateMs: 50, met: rows.every(r => r.createP99 < 50) },
  })
  console.log(`\nresults: ${file}`)
  return rows
}
