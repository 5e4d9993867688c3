/**
 * Volume benchmark: `npm run bench -- volume [options]`.
 *
 * 1. Peer baseline, same run, same filesystem: append 4 KiB to a
 *    preallocated file + fdatasyncSync in the main thread (ops/s, p50/p99).
 *    Measured before the volume is opened and again after it is closed.
 * 2. Durable MTRs: each MTR writes 2 records of 256 random bytes to 2 random
 *    pages of a 2,000-page working set spread over 4 protection groups.
 *    Concurrency 1 and 64 (tinybench `concurrency: 'task'`, a pool of N
 *    loops each awaiting its own write), healthy and with AZ 0 stopped, in
 *    one or more rounds (healthy c1, c64, stop AZ 0, c1, c64, restart AZ 0
 *    and time its catch-up). Reported, pooled over the rounds: MTRs/s
 *    (completed / wall time of the run phase), MB/s of redo payload, commit
 *    latency p50/p99 (tinybench samples, one per write); per round MTRs/s to
 *    show the spread; and for diagnosis, from vol.stats()/segmentStats() and
 *    process.cpuUsage(): MTRs per frame, fsyncs/s per segment, frames per
 *    fsync, CPU cores kept busy (writer + six workers).
 * 3. Recovery: fill a volume with ~100 MB of redo (64 KiB MTRs, 16
 *    full-page records each), close it, time openVolume (and close) a few
 *    times; fill on to ~1 GB and time again. Nothing should be replayed, so
 *    the time should stay flat (target: 1 GB <= 1.5x 100 MB).
 *
 * Options (flags or environment):
 *   --quick            | HEXAD_BENCH_QUICK=1         1 s runs, one round, recovery at 20 MB and 200 MB
 *   --duration=MS      | HEXAD_BENCH_DURATION_MS     run phase of each throughput scenario (default 3000, quick 1000)
 *   --no-recovery      | HEXAD_BENCH_NO_RECOVERY=1   skip part 3
 *   --no-big           | HEXAD_BENCH_NO_BIG=1        recovery at the small size only (no 1 GB fill)
 *   --rounds=N         | HEXAD_BENCH_ROUNDS=N        rounds of part 2 (default 3, quick 1)
 *   --recovery-only                                 skip parts 1 and 2
 *
 * The machine's load average is printed and saved: six segment workers and
 * the writer share the CPUs, so other work on the machine moves the numbers.
 * Results go to bench/results/volume.json. Everything else lives in temp
 * directories under os.tmpdir(), removed at the end.
 */
import crypto from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { Bench } from 'tinybench'
import { openVolume, type PageWrite, type SegmentStats, type Volume } from '../engine/index.js'
import { cleanupTempDirs, diskUsage, fmt, freeBytes, gitInfo, hostInfo, makeTempDir, MB, median, MiB, optionValue, refuseUnknownOptions, removeTempDir, repoRoot, table, writeResults } from './util.js'

// ------------------------------------------------------------------ config

interface Config {
  quick: boolean
  durationMs: number
  warmupMs: number
  throughput: boolean
  recovery: boolean
  recoverySizesMB: number[]
  recoveryReps: number
  rounds: number
  command: string
}

const KNOWN_FLAGS = ['--quick', '--no-recovery', '--no-big', '--recovery-only']

function parseConfig(args: string[]): Config {
  const env = process.env
  refuseUnknownOptions('volume', args, [...KNOWN_FLAGS, '--duration=', '--rounds='])
  const quick = args.includes('--quick') || env.HEXAD_BENCH_QUICK === '1'
  const durArg = optionValue(args, 'duration') ?? env.HEXAD_BENCH_DURATION_MS
  const durationMs = durArg !== undefined && durArg !== '' ? Number(durArg) : quick ? 1000 : 3000
  if (!Number.isFinite(durationMs) || durationMs <= 0) throw new Error(`volume: bad duration ${durArg}`)
  const roundsArg = optionValue(args, 'rounds') ?? env.HEXAD_BENCH_ROUNDS
  const rounds = roundsArg !== undefined && roundsArg !== '' ? Number(roundsArg) : quick ? 1 : 3
  if (!Number.isInteger(rounds) || rounds < 1) throw new Error(`volume: bad rounds ${roundsArg}`)
  const noBig = args.includes('--no-big') || env.HEXAD_BENCH_NO_BIG === '1'
  const sizes = quick ? [20, 200] : [100, 1000]
  const envPart = Object.entries(env).filter(([k]) => k.startsWith('HEXAD_BENCH_')).map(([k, v]) => `${k}=${v} `).join('')
  return {
    quick,
    durationMs,
    warmupMs: Math.min(500, Math.max(100, durationMs / 4)),
    throughput: !args.includes('--recovery-only'),
    recovery: !args.includes('--no-recovery') && env.HEXAD_BENCH_NO_RECOVERY !== '1',
    recoverySizesMB: noBig ? sizes.slice(0, 1) : sizes,
    recoveryReps: quick ? 2 : 3,
    rounds,
    command: `${envPart}node dist/bench/index.js volume${args.length ? ' ' + args.join(' ') : ''}`,
  }
}

// ------------------------------------------------------------------ workload

const PG_COUNT = 4
const PAGES_PER_PG_USED = 500 // 2,000 pages in all
const MTR_RECORDS = 2
const MTR_RECORD_BYTES = 256
const MTR_PAYLOAD = MTR_RECORDS * MTR_RECORD_BYTES
const CONCURRENCY = [1, 64]

const FILL_RECORDS = 16 // one MTR of the recovery fill: 16 full-page writes
const FILL_CONCURRENCY = 16

/** Random, incompressible bytes to slice payloads from (lz4 must not shrink the log). */
const RANDOM = crypto.randomBytes(4 * MiB)

let rngState = 0x9e3779b9
function rand(n: number): number {
  rngState ^= rngState << 13; rngState >>>= 0
  rngState ^= rngState >>> 17
  rngState ^= rngState << 5; rngState >>>= 0
  return rngState % n
}

function workingSet(pagesPerGroup: number): number[] {
  const ids: number[] = []
  for (let pg = 0; pg < PG_COUNT; pg++) for (let i = 0; i < PAGES_PER_PG_USED; i++) ids.push(pg * pagesPerGroup + i)
  return ids
}

function randomSlice(len: number): Uint8Array {
  const off = rand(RANDOM.length - len)
  return RANDOM.subarray(off, off + len)
}

/** `records` distinct random pages of the working set. */
function pickPages(pages: number[], records: number): number[] {
  const out: number[] = []
  while (out.length < records) {
    const p = pages[rand(pages.length)]
    if (!out.includes(p)) out.push(p)
  }
  return out
}

function smallMtr(pages: number[], pageSize: number): PageWrite[] {
  return pickPages(pages, MTR_RECORDS).map(pageId => ({
    pageId,
    ops: [{ op: 'write' as const, offset: rand(pageSize / MTR_RECORD_BYTES) * MTR_RECORD_BYTES, bytes: randomSlice(MTR_RECORD_BYTES) }],
  }))
}

function fillMtr(pages: number[], pageSize: number): PageWrite[] {
  return pickPages(pages, FILL_RECORDS).map(pageId => ({ pageId, ops: [{ op: 'write' as const, offset: 0, bytes: randomSlice(pageSize) }] }))
}

// ------------------------------------------------------------------ measurements

interface LatencyStats { samples: number; p50: number; p99: number; p999: number; mean: number; max: number }

interface RawResult { label: string; ops: number; seconds: number; opsPerSec: number; mbPerSec: number; latencyMs: LatencyStats; cpuCores: number }

interface Snapshot {
  /** process CPU time (all threads: writer + six segment workers), microseconds */
  cpuUs: number
  framesShipped: number
  bytesShipped: number
  seg: Array<Pick<SegmentStats, 'fsyncs' | 'framesAppended' | 'bytesWritten'> | null>
}

interface MtrResult {
  scenario: string
  concurrency: number
  azDown: boolean
  /** totals over every round */
  mtrs: number
  seconds: number
  mtrPerSec: number
  payloadMBps: number
  /** percentiles of every commit latency of every round, pooled */
  latencyMs: LatencyStats
  /** each round on its own, to show the run-to-run spread */
  rounds: Array<{ mtrPerSec: number; p50: number; p99: number; cpuCores: number }>
  diag: {
    framesShipped: number
    mtrsPerFrame: number
    wireMBps: number
    segmentsUp: number
    /** mean over the segments that were up */
    fsyncsPerSecPerSegment: number
    framesPerFsync: number
    /** CPU cores kept busy by this process (writer + segment workers): CPU time / wall time */
    cpuCores: number
  }
}

interface MtrRound {
  mtrs: number
  seconds: number
  /** commit latencies in ms, sorted */
  samples: number[]
  frames: number
  wireBytes: number
  segmentsUp: number
  fsyncs: number
  appended: number
  cpuUs: number
}

/** Linear interpolation between order statistics of sorted `s` (as tinybench does). */
function percentile(s: ArrayLike<number>, q: number): number {
  if (s.length === 0) return NaN
  const i = (s.length - 1) * q
  const lo = Math.floor(i)
  const hi = Math.ceil(i)
  return s[lo] + (s[hi] - s[lo]) * (i - lo)
}

function statsOf(sorted: number[]): LatencyStats {
  let sum = 0
  for (const x of sorted) sum += x
  return { samples: sorted.length, p50: percentile(sorted, 0.5), p99: percentile(sorted, 0.99), p999: percentile(sorted, 0.999), mean: sum / sorted.length, max: sorted[sorted.length - 1] }
}

function latencyOf(task: { result: unknown }, label: string): LatencyStats {
  const r = task.result as { state: string; latency?: { samplesCount: number; p50: number; p99: number; p999: number; mean: number; max: number }; error?: Error }
  if (r.state !== 'completed' || !r.latency) throw new Error(`${label}: tinybench task ended in state ${r.state}${r.error ? ': ' + r.error.message : ''}`)
  const l = r.latency
  return { samples: l.samplesCount, p50: l.p50, p99: l.p99, p999: l.p999, mean: l.mean, max: l.max }
}

/** Peer baseline: append 4 KiB to a preallocated file + fdatasync, one at a time, main thread. */
async function measureRawFsync(dir: string, label: string, cfg: Config): Promise<RawResult> {
  const file = path.join(dir, `raw-fdatasync-${label}.dat`)
  const size = 64 * MiB
  const fd = fs.openSync(file, 'w+')
  const zeros = Buffer.alloc(MiB)
  for (let off = 0; off < size; off += zeros.length) fs.writeSync(fd, zeros, 0, zeros.length, off)
  fs.fsyncSync(fd)
  const block = Buffer.from(randomSlice(4096))
  let pos = 0
  let ops = 0
  let t0 = 0
  let t1 = 0
  let cpu0 = 0
  let cpu1 = 0
  const name = `raw append 4KiB + fdatasync (${label})`
  const bench = new Bench({ name, time: cfg.durationMs, iterations: 16, warmupTime: cfg.warmupMs, throws: true })
  bench.add(name, () => {
    fs.writeSync(fd, block, 0, block.length, pos)
    fs.fdatasyncSync(fd)
    pos += block.length
    if (pos >= size) pos = 0
    ops++
  }, {
    async: false,
    beforeAll: mode => { if (mode === 'run') { ops = 0; const c = process.cpuUsage(); cpu0 = c.user + c.system; t0 = performance.now() } },
    afterAll: mode => { if (mode === 'run') { t1 = performance.now(); const c = process.cpuUsage(); cpu1 = c.user + c.system } },
  })
  try {
    await bench.run()
  } finally {
    fs.closeSync(fd)
    fs.rmSync(file, { force: true })
  }
  const latencyMs = latencyOf(bench.getTask(name)!, name)
  const seconds = (t1 - t0) / 1000
  return { label: name, ops, seconds, opsPerSec: ops / seconds, mbPerSec: ops * 4096 / seconds / MB, latencyMs, cpuCores: (cpu1 - cpu0) / 1e6 / seconds }
}

async function snapshot(vol: Volume): Promise<Snapshot> {
  const s = vol.stats()
  const seg = await vol.segmentStats()
  const cpu = process.cpuUsage()
  return {
    cpuUs: cpu.user + cpu.system,
    framesShipped: s.framesShipped,
    bytesShipped: s.bytesShipped,
    seg: seg.map(x => x ? { fsyncs: x.fsyncs, framesAppended: x.framesAppended, bytesWritten: x.bytesWritten } : null),
  }
}

async function measureMtrRound(vol: Volume, pages: number[], scenario: string, concurrency: number, cfg: Config): Promise<MtrRound> {
  let mtrs = 0
  let t0 = 0
  let t1 = 0
  let before: Snapshot | null = null
  let after: Snapshot | null = null
  const bench = new Bench({
    name: scenario, time: cfg.durationMs, iterations: 0, warmupTime: cfg.warmupMs, warmupIterations: 0,
    concurrency: 'task', threshold: concurrency, throws: true, retainSamples: true,
  })
  bench.add(scenario, async () => {
    await vol.write(smallMtr(pages, vol.pageSize))
    mtrs++
  }, {
    async: true,
    beforeAll: async mode => {
      if (mode !== 'run') return
      before = await snapshot(vol)
      mtrs = 0
      t0 = performance.now()
    },
    afterAll: async mode => {
      if (mode !== 'run') return
      t1 = performance.now()
      after = await snapshot(vol)
    },
  })
  await bench.run()
  const task = bench.getTask(scenario)!
  latencyOf(task, scenario) // throws unless completed
  const samples = Array.from((task.result as { latency: { samples?: ArrayLike<number> } }).latency.samples ?? [])
  samples.sort((x, y) => x - y)
  const b = before as Snapshot | null
  const a = after as Snapshot | null
  if (!b || !a) throw new Error(`${scenario}: run phase hooks did not run`)
  let up = 0
  let fsyncs = 0
  let appended = 0
  for (let i = 0; i < a.seg.length; i++) {
    const x = a.seg[i]
    const y = b.seg[i]
    if (!x || !y) continue
    up++
    fsyncs += x.fsyncs - y.fsyncs
    appended += x.framesAppended - y.framesAppended
  }
  return {
    mtrs, seconds: (t1 - t0) / 1000, samples, frames: a.framesShipped - b.framesShipped,
    wireBytes: a.bytesShipped - b.bytesShipped, segmentsUp: up, fsyncs, appended, cpuUs: a.cpuUs - b.cpuUs,
  }
}

function aggregate(scenario: string, concurrency: number, azDown: boolean, rounds: MtrRound[]): MtrResult {
  let mtrs = 0, seconds = 0, frames = 0, wire = 0, fsyncs = 0, appended = 0, cpuUs = 0, segSeconds = 0
  const all: number[] = []
  for (const r of rounds) {
    mtrs += r.mtrs; seconds += r.seconds; frames += r.frames; wire += r.wireBytes; fsyncs += r.fsyncs
    appended += r.appended; cpuUs += r.cpuUs; segSeconds += r.segmentsUp * r.seconds
    for (const x of r.samples) all.push(x)
  }
  all.sort((x, y) => x - y)
  return {
    scenario, concurrency, azDown, mtrs, seconds,
    mtrPerSec: mtrs / seconds,
    payloadMBps: mtrs * MTR_PAYLOAD / seconds / MB,
    latencyMs: statsOf(all),
    rounds: rounds.map(r => ({ mtrPerSec: r.mtrs / r.seconds, p50: percentile(r.samples, 0.5), p99: percentile(r.samples, 0.99), cpuCores: r.cpuUs / 1e6 / r.seconds })),
    diag: {
      framesShipped: frames,
      mtrsPerFrame: frames ? mtrs / frames : 0,
      wireMBps: wire / seconds / MB,
      segmentsUp: rounds[0]?.segmentsUp ?? 0,
      fsyncsPerSecPerSegment: segSeconds ? fsyncs / segSeconds : 0,
      framesPerFsync: fsyncs ? appended / fsyncs : 0,
      cpuCores: cpuUs / 1e6 / seconds,
    },
  }
}

/** After restartAZ(0): how long until both of its segments hold everything up to the VDL again. */
async function waitCaughtUp(vol: Volume, ids: number[], timeoutMs = 60_000): Promise<number | null> {
  const t0 = performance.now()
  const target = vol.vdl
  while (performance.now() - t0 < timeoutMs) {
    const s = vol.stats()
    if (ids.every(id => s.segments[id].up && s.segments[id].scl >= target)) return performance.now() - t0
    await new Promise(r => setTimeout(r, 5))
  }
  return null
}

function segTable(stats: Array<SegmentStats | null>): string {
  const rows: Array<Array<string | number>> = [['seg', 'AZ', 'fsyncs', 'frames', 'logFiles', 'logLive MB', 'gcLogFiles', 'recordsInMem', 'pageVersions', 'pageStore MB', 'coalesced', 'gapFill']]
  stats.forEach((s, id) => {
    if (!s) { rows.push([id, Math.floor(id / 2), 'down', '', '', '', '', '', '', '', '', '']); return }
    rows.push([id, Math.floor(id / 2), s.fsyncs, s.framesAppended, s.logFiles, fmt(s.logBytesLive / MB), s.gcLogFiles, s.recordsInMemory, s.pageVersions, fmt(s.pageStoreBytes / MB), s.coalesced, s.gapFillRecords])
  })
  return table(rows)
}

function compactSeg(s: SegmentStats | null) {
  if (!s) return null
  return {
    id: s.id, az: s.az, fsyncs: s.fsyncs, framesAppended: s.framesAppended, logFiles: s.logFiles, logBytesLive: s.logBytesLive,
    gcLogFiles: s.gcLogFiles, recordsInMemory: s.recordsInMemory, pageVersions: s.pageVersions, pageStoreBytes: s.pageStoreBytes,
    coalesced: s.coalesced, gapFillRecords: s.gapFillRecords, gcVersions: s.gcVersions, bytesWritten: s.bytesWritten,
  }
}

// ------------------------------------------------------------------ throughput part

interface ThroughputResults {
  raw: RawResult[]
  scenarios: MtrResult[]
  /** per round: restartAZ(0) until segments 0 and 1 reach the VDL (null: not within 60 s) */
  catchUpMs: Array<number | null>
  segmentsAtEnd: Array<ReturnType<typeof compactSeg>>
}

async function throughputPart(cfg: Config): Promise<ThroughputResults> {
  const root = makeTempDir('volume')
  const raw: RawResult[] = []
  const scenarios: MtrResult[] = []
  const catchUpMs: Array<number | null> = []
  let segmentsAtEnd: Array<SegmentStats | null> = []
  try {
    console.log(`\n[1/3] raw append 4KiB + fdatasync, main thread, ${cfg.durationMs} ms`)
    raw.push(await measureRawFsync(root, 'before', cfg))
    console.log(`  ${fmt(raw[0].opsPerSec)} ops/s, p50 ${fmt(raw[0].latencyMs.p50)} ms, p99 ${fmt(raw[0].latencyMs.p99)} ms`)

    console.log(`\n[2/3] durable MTRs (${MTR_RECORDS} x ${MTR_RECORD_BYTES} B records, ${PG_COUNT * PAGES_PER_PG_USED} pages in ${PG_COUNT} PGs), ` +
      `${cfg.rounds} round(s) of ${cfg.durationMs} ms per scenario after ${cfg.warmupMs} ms warmup`)
    const vol = await openVolume({ dir: path.join(root, 'vol') })
    const rounds = new Map<string, { concurrency: number; azDown: boolean; rounds: MtrRound[] }>()
    try {
      const pages = workingSet(vol.pagesPerGroup)
      for (let round = 1; round <= cfg.rounds; round++) {
        for (const azDown of [false, true]) {
          if (azDown) {
            await vol.faults.stopAZ(0)
            console.log('  stopped AZ 0 (segments 0 and 1)')
          }
          for (const c of CONCURRENCY) {
            const scenario = `${azDown ? 'AZ0 down' : 'healthy'} c${c}`
            const r = await measureMtrRound(vol, pages, scenario, c, cfg)
            let entry = rounds.get(scenario)
            if (!entry) { entry = { concurrency: c, azDown, rounds: [] }; rounds.set(scenario, entry) }
            entry.rounds.push(r)
            const a = aggregate(scenario, c, azDown, [r])
            console.log(`  ${cfg.rounds > 1 ? `round ${round}/${cfg.rounds} ` : ''}${scenario.padEnd(14)} ${fmt(a.mtrPerSec).padStart(8)} MTRs/s  p50 ${fmt(a.latencyMs.p50)} ms  p99 ${fmt(a.latencyMs.p99)} ms  ` +
              `(${fmt(a.diag.mtrsPerFrame)} MTRs/frame, ${fmt(a.diag.fsyncsPerSecPerSegment)} fsyncs/s/segment, ${fmt(a.diag.framesPerFsync)} frames/fsync, ${fmt(a.diag.cpuCores, 2)} CPU cores busy)`)
          }
        }
        await vol.faults.restartAZ(0)
        const ms = await waitCaughtUp(vol, [0, 1])
        catchUpMs.push(ms)
        console.log(`  restarted AZ 0: segments 0 and 1 caught up to the VDL in ${ms === null ? 'NOT within 60 s' : fmt(ms) + ' ms'}`)
      }
      segmentsAtEnd = await vol.segmentStats()
    } finally {
      await vol.close()
    }
    for (const [scenario, e] of rounds) scenarios.push(aggregate(scenario, e.concurrency, e.azDown, e.rounds))
    raw.push(await measureRawFsync(root, 'after', cfg))
    console.log(`  raw fdatasync again after the volume closed: ${fmt(raw[1].opsPerSec)} ops/s, p50 ${fmt(raw[1].latencyMs.p50)} ms, p99 ${fmt(raw[1].latencyMs.p99)} ms`)
  } finally {
    removeTempDir(root)
  }
  return { raw, scenarios, catchUpMs, segmentsAtEnd: segmentsAtEnd.map(compactSeg) }
}

// ------------------------------------------------------------------ recovery part

interface RecoveryPoint {
  /** 0 = the empty volume: the fixed cost of starting six workers and the recovery protocol */
  targetMB: number
  redoWrittenMB: number
  fillSeconds: number
  fillMBps: number
  diskUsageMB: number
  /** segment 0 just before the filling handle closed */
  segmentBeforeClose: ReturnType<typeof compactSeg>
  openMs: number[]
  closeMs: number[]
  openMsMedian: number
  /** what the six segments scanned and rebuilt on the last timed open */
  liveLogMB: number
  recordsInMemory: number
  pageVersions: number
  segmentsAfterOpen: Array<ReturnType<typeof compactSeg>>
}

interface RecoveryResults { points: RecoveryPoint[]; skipped?: string }

async function fill(vol: Volume, pages: number[], bytes: number, label: string): Promise<{ written: number; seconds: number }> {
  let written = 0
  const t0 = performance.now()
  let printing = false
  const timer = setInterval(() => {
    if (printing) return
    printing = true
    void (async () => {
      const now = performance.now()
      const s0 = (await vol.segmentStats())[0]
      const usage = diskUsage(vol.dir)
      console.log(`  ${label}: ${fmt(written / MB)} / ${fmt(bytes / MB)} MB (${fmt(written / MB / ((now - t0) / 1000))} MB/s); ` +
        `segment 0: ${s0?.logFiles} log files, ${fmt((s0?.logBytesLive ?? 0) / MB)} MB live, ${s0?.gcLogFiles} collected, ` +
        `${s0?.recordsInMemory} records in memory, ${s0?.pageVersions} page versions; disk ${fmt(usage / MB)} MB`)
    })().catch(() => {}).finally(() => { printing = false })
  }, 3000)
  try {
    await Promise.all(Array.from({ length: FILL_CONCURRENCY }, async () => {
      while (written < bytes) {
        written += FILL_RECORDS * vol.pageSize
        await vol.write(fillMtr(pages, vol.pageSize))
      }
    }))
  } finally {
    clearInterval(timer)
  }
  return { written, seconds: (performance.now() - t0) / 1000 }
}

/** Times openVolume (and close) `reps` times on a closed volume. */
async function timeOpens(dir: string, label: string, reps: number) {
  const openMs: number[] = []
  const closeMs: number[] = []
  let segs: Array<SegmentStats | null> = []
  for (let rep = 0; rep < reps; rep++) {
    const t0 = performance.now()
    const v = await openVolume({ dir })
    const t1 = performance.now()
    try {
      segs = await v.segmentStats()
    } finally {
      const t2 = performance.now()
      await v.close()
      closeMs.push(performance.now() - t2)
    }
    openMs.push(t1 - t0)
    const live = segs.reduce((n, s) => n + (s?.logBytesLive ?? 0), 0)
    const recs = segs.reduce((n, s) => n + (s?.recordsInMemory ?? 0), 0)
    console.log(`  openVolume #${rep + 1} ${label}: ${fmt(t1 - t0)} ms (close ${fmt(closeMs[closeMs.length - 1])} ms); ` +
      `six segments loaded ${fmt(live / MB)} MB of live log, ${recs} records; segment 0: ${segs[0]?.logFiles} log files, ${segs[0]?.pageVersions} page versions`)
  }
  return {
    openMs, closeMs, openMsMedian: median(openMs),
    liveLogMB: segs.reduce((n, s) => n + (s?.logBytesLive ?? 0), 0) / MB,
    recordsInMemory: segs.reduce((n, s) => n + (s?.recordsInMemory ?? 0), 0),
    pageVersions: segs.reduce((n, s) => n + (s?.pageVersions ?? 0), 0),
    segmentsAfterOpen: segs.map(compactSeg),
  }
}

async function recoveryPart(cfg: Config): Promise<RecoveryResults> {
  const root = makeTempDir('recovery')
  const dir = path.join(root, 'vol')
  const points: RecoveryPoint[] = []
  try {
    const biggest = Math.max(...cfg.recoverySizesMB) * MB
    // Worst case (no log collected at all): six full copies of the redo, plus page versions.
    const need = biggest * 6.5 + 1024 * MiB
    const free = freeBytes(root)
    console.log(`\n[3/3] recovery time of openVolume at 0 (empty), ${cfg.recoverySizesMB.join(' and ')} MB of redo written ` +
      `(${FILL_RECORDS} x 4 KiB full-page records per MTR, ${FILL_CONCURRENCY} concurrent, default options); free space ${fmt(free / 2 ** 30)} GiB`)
    let sizes = cfg.recoverySizesMB
    if (free < need) {
      const fits = sizes.filter(mb => mb * MB * 6.5 + 1024 * MiB <= free)
      console.log(`  not enough free space for the worst case at ${Math.max(...sizes)} MB (${fmt(need / 2 ** 30)} GiB); running ${fits.length ? fits.join(', ') + ' MB' : 'nothing'}`)
      if (fits.length === 0) return { points, skipped: `not enough free space in ${os.tmpdir()}` }
      sizes = fits
    }
    // The empty volume: create it, then time opens.
    await (await openVolume({ dir })).close()
    const empty = await timeOpens(dir, 'empty volume', cfg.recoveryReps)
    points.push({ targetMB: 0, redoWrittenMB: 0, fillSeconds: 0, fillMBps: 0, diskUsageMB: diskUsage(dir) / MB, segmentBeforeClose: null, ...empty })
    let written = 0
    for (const mb of sizes) {
      const vol = await openVolume({ dir })
      let segBefore: SegmentStats | null = null
      let f: { written: number; seconds: number }
      try {
        const pages = workingSet(vol.pagesPerGroup)
        f = await fill(vol, pages, mb * MB - written, `filling to ${mb} MB`)
        written += f.written
        await new Promise(r => setTimeout(r, 500)) // let a due checkpoint finish, as a running system would
        segBefore = (await vol.segmentStats())[0]
      } finally {
        await vol.close()
      }
      const usage = diskUsage(dir)
      console.log(`  wrote ${fmt(written / MB)} MB of redo in all (${fmt(f.written / MB / f.seconds)} MB/s); disk use ${fmt(usage / MB)} MB; ` +
        `segment 0 before close: ${segBefore?.logFiles} log files, ${fmt((segBefore?.logBytesLive ?? 0) / MB)} MB live, ${segBefore?.gcLogFiles} log files collected, ${segBefore?.recordsInMemory} records in memory`)
      const t = await timeOpens(dir, `at ${mb} MB`, cfg.recoveryReps)
      points.push({
        targetMB: mb, redoWrittenMB: written / MB, fillSeconds: f.seconds, fillMBps: f.written / MB / f.seconds,
        diskUsageMB: usage / MB, segmentBeforeClose: compactSeg(segBefore), ...t,
      })
    }
  } finally {
    removeTempDir(root)
  }
  return { points }
}

// ------------------------------------------------------------------ report

interface Ratio { name: string; value: number; perRound?: number[]; target?: string; pass?: boolean }

/**
 * Throughput ratios are taken within each round (the two runs compared are
 * seconds apart, so a shared machine's load drift mostly cancels) and the
 * median over rounds is the value; with one round it is that round's ratio.
 */
function ratios(t: ThroughputResults | null, rec: RecoveryResults | null): Ratio[] {
  const out: Ratio[] = []
  if (t && t.scenarios.length === 4) {
    const get = (az: boolean, c: number) => t.scenarios.find(s => s.azDown === az && s.concurrency === c)!
    const h1 = get(false, 1), h64 = get(false, 64), d1 = get(true, 1), d64 = get(true, 64)
    const raw = t.raw[0]
    const within = (name: string, num: MtrResult, den: MtrResult, target?: string, ok?: (v: number) => boolean) => {
      const perRound = num.rounds.map((r, i) => r.mtrPerSec / den.rounds[i].mtrPerSec)
      const value = median(perRound)
      out.push({ name, value, perRound, target, pass: ok ? ok(value) : undefined })
    }
    within('c64/c1 throughput, healthy (group commit)', h64, h1, '>= 10', v => v >= 10)
    within('c64/c1 throughput, AZ0 down', d64, d1, '>= 10', v => v >= 10)
    within('AZ0-down/healthy throughput, c1', d1, h1, '>= 0.90', v => v >= 0.9)
    within('AZ0-down/healthy throughput, c64', d64, h64, '>= 0.90', v => v >= 0.9)
    out.push({ name: 'hexad c1 commit p50 / raw fdatasync p50', value: h1.latencyMs.p50 / raw.latencyMs.p50 })
    out.push({ name: 'hexad c1 commit p99 / raw fdatasync p99', value: h1.latencyMs.p99 / raw.latencyMs.p99 })
    out.push({ name: 'hexad c1 MTRs/s / raw fdatasyncs/s', value: h1.mtrPerSec / raw.opsPerSec })
    out.push({ name: 'hexad c64 MTRs/s / raw fdatasyncs/s', value: h64.mtrPerSec / raw.opsPerSec })
  }
  const filled = rec?.points.filter(p => p.targetMB > 0) ?? []
  if (filled.length >= 2) {
    const [a, b] = [filled[0], filled[filled.length - 1]]
    const r = b.openMsMedian / a.openMsMedian
    out.push({ name: `recovery open time ${b.targetMB} MB / ${a.targetMB} MB`, value: r, target: '<= 1.5', pass: r <= 1.5 })
    out.push({ name: `live log scanned at open ${b.targetMB} MB / ${a.targetMB} MB`, value: b.liveLogMB / a.liveLogMB })
  }
  return out
}

function printReport(cfg: Config, t: ThroughputResults | null, rec: RecoveryResults | null, rs: Ratio[]): void {
  console.log('\n================ hexad volume benchmark ================')
  if (t) {
    const rows: Array<Array<string | number>> = [['scenario', 'ops/s', 'per round', 'MB/s', 'p50 ms', 'p99 ms', 'p99.9 ms', 'max ms', 'n', 'MTRs/frame', 'fsyncs/s/seg', 'frames/fsync', 'CPU cores']]
    for (const r of t.raw) {
      rows.push([r.label, fmt(r.opsPerSec), '', fmt(r.mbPerSec), fmt(r.latencyMs.p50), fmt(r.latencyMs.p99), fmt(r.latencyMs.p999), fmt(r.latencyMs.max), r.ops, '', fmt(r.opsPerSec), 1, fmt(r.cpuCores, 2)])
    }
    for (const r of t.scenarios) {
      rows.push([`hexad ${r.scenario}`, fmt(r.mtrPerSec), r.rounds.map(x => fmt(x.mtrPerSec)).join(' / '), fmt(r.payloadMBps), fmt(r.latencyMs.p50), fmt(r.latencyMs.p99), fmt(r.latencyMs.p999), fmt(r.latencyMs.max), r.mtrs,
        fmt(r.diag.mtrsPerFrame), fmt(r.diag.fsyncsPerSecPerSegment), fmt(r.diag.framesPerFsync), fmt(r.diag.cpuCores, 2)])
    }
    console.log(`\nThroughput and commit latency (hexad: ${cfg.rounds} round(s) x ${cfg.durationMs} ms per scenario, pooled; ops = durable MTRs of ${MTR_PAYLOAD} B redo payload;` +
      ` raw: ${cfg.durationMs} ms, ops = 4 KiB append + fdatasync; MB/s = payload bytes):`)
    console.log(table(rows))
    console.log(`AZ 0 catch-up after restartAZ(0): ${t.catchUpMs.map(x => x === null ? 'timeout' : fmt(x) + ' ms').join(', ')}`)
    console.log('\nSegments at the end of the throughput part (counters since each worker started; AZ 0 was restarted):')
    console.log(segTable(t.segmentsAtEnd as Array<SegmentStats | null>))
  }
  if (rec) {
    if (rec.skipped) console.log(`\nRecovery: skipped (${rec.skipped})`)
    if (rec.points.length) {
      const rows: Array<Array<string | number>> = [['redo written', 'open ms (median)', 'open ms (all)', 'close ms', 'live log MB (6 seg)', 'records (6 seg)', 'page versions (6 seg)', 'disk MB', 'seg0 log files collected while filling']]
      for (const p of rec.points) {
        rows.push([p.targetMB === 0 ? 'empty' : `${fmt(p.redoWrittenMB)} MB`, fmt(p.openMsMedian), p.openMs.map(x => fmt(x)).join(' / '), fmt(median(p.closeMs)),
          fmt(p.liveLogMB), p.recordsInMemory, p.pageVersions, fmt(p.diskUsageMB), p.segmentBeforeClose?.gcLogFiles ?? ''])
      }
      console.log('\nRecovery (openVolume on a closed volume; warm page cache):')
      console.log(table(rows))
    }
  }
  if (rs.length) {
    console.log('\nRatios (throughput ratios: median over rounds of the ratio within each round; latency and raw ratios: pooled hexad vs the raw run before):')
    const rows: Array<Array<string | number>> = [['ratio', 'value', 'target', '', 'per round']]
    for (const r of rs) rows.push([r.name, `${fmt(r.value)}x`, r.target ?? '', r.pass === undefined ? '' : r.pass ? 'PASS' : 'FAIL', r.perRound && r.perRound.length > 1 ? r.perRound.map(x => fmt(x)).join(' / ') : ''])
    console.log(table(rows))
  }
}

// ------------------------------------------------------------------ entry

export async function run(args: string[]): Promise<unknown> {
  const cfg = parseConfig(args)
  const host = hostInfo()
  const git = gitInfo()
  console.log(`hexad volume benchmark${cfg.quick ? ' (quick)' : ''}`)
  console.log(`command: ${cfg.command}   (npm: npm run bench -- volume${args.length ? ' ' + args.join(' ') : ''})`)
  console.log(`host: ${host.cpus} x ${host.cpuModel}, ${host.memGiB} GiB, node ${host.node}, ${host.platform}, temp dirs in ${host.tmpdir}`)
  if (git) console.log(`engine at commit ${git.commit}${git.engineDirty ? ' + uncommitted changes in engine/' : ''}`)
  console.log(`load average at start: ${host.loadavg.join(' ')}${host.loadavg[0] > host.cpus ? '  (busy machine: expect noisy numbers)' : ''}`)
  try {
    const t = cfg.throughput ? await throughputPart(cfg) : null
    const rec = cfg.recovery ? await recoveryPart(cfg) : null
    const rs = ratios(t, rec)
    printReport(cfg, t, rec, rs)
    const loadEnd = os.loadavg().map(x => Math.round(x * 100) / 100)
    console.log(`\nload average at start ${host.loadavg.join(' ')}, at end ${loadEnd.join(' ')} (${host.cpus} CPUs; six segment workers + the writer share them)`)
    const results = {
      benchmark: 'volume',
      date: new Date().toISOString(),
      command: cfg.command,
      git,
      host: { ...host, loadavgEnd: os.loadavg().map(x => Math.round(x * 100) / 100) },
      config: {
        quick: cfg.quick, durationMs: cfg.durationMs, warmupMs: cfg.warmupMs, rounds: cfg.rounds,
        mtr: { records: MTR_RECORDS, recordBytes: MTR_RECORD_BYTES, pages: PG_COUNT * PAGES_PER_PG_USED, pgs: PG_COUNT },
        recovery: { sizesMB: cfg.recoverySizesMB, reps: cfg.recoveryReps, recordsPerMtr: FILL_RECORDS, concurrency: FILL_CONCURRENCY },
        volumeOptions: 'defaults',
      },
      throughput: t,
      recovery: rec,
      ratios: rs,
    }
    const file = writeResults('volume', results)
    console.log(`\nresults written to ${path.relative(process.cwd(), file) || file}`)
    console.log(`command: ${cfg.command}`)
    return results
  } finally {
    cleanupTempDirs()
  }
}
