/**
 * Helpers shared by the benchmarks: temp directories that are removed at the
 * end (and on Ctrl-C), free-space checks, result files and plain-text tables.
 */
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const tempDirs = new Set<string>()
let signalHooked = false

/** A fresh directory under os.tmpdir(); removed by removeTempDir / cleanupTempDirs or on SIGINT/SIGTERM. */
export function makeTempDir(prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `hexad-bench-${prefix}-`))
  tempDirs.add(dir)
  if (!signalHooked) {
    signalHooked = true
    for (const sig of ['SIGINT', 'SIGTERM'] as const) {
      process.once(sig, () => {
        cleanupTempDirs()
        process.exit(130)
      })
    }
  }
  return dir
}

export function removeTempDir(dir: string): void {
  fs.rmSync(dir, { recursive: true, force: true })
  tempDirs.delete(dir)
}

export function cleanupTempDirs(): void {
  for (const dir of [...tempDirs]) {
    try { removeTempDir(dir) } catch (err) { console.error(`could not remove ${dir}: ${(err as Error).message}`) }
  }
}

/** Bytes available to this user on the filesystem holding `dir`. */
export function freeBytes(dir: string): number {
  const s = fs.statfsSync(dir)
  return s.bavail * s.bsize
}

/** Bytes allocated on disk under `dir` (st_blocks, so preallocated-but-sparse space is not counted twice). */
export function diskUsage(dir: string): number {
  let total = 0
  const walk = (p: string) => {
    let st: fs.Stats
    try { st = fs.lstatSync(p) } catch { return }
    if (st.isDirectory()) {
      let names: string[] = []
      try { names = fs.readdirSync(p) } catch { return }
      for (const n of names) walk(path.join(p, n))
    } else {
      total += st.blocks * 512
    }
  }
  walk(dir)
  return total
}

/** The repository root (this file runs from dist/bench/). */
export function repoRoot(): string {
  return path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..')
}

export function writeResults(name: string, data: unknown): string {
  const dir = path.join(repoRoot(), 'bench', 'results')
  fs.mkdirSync(dir, { recursive: true })
  const file = path.join(dir, `${name}.json`)
  fs.writeFileSync(file, JSON.stringify(data, null, 2) + '\n')
  return file
}

/** The commit measured, and whether engine/ or native-bindings/ had uncommitted changes. */
export function gitInfo(): { commit: string; engineDirty: boolean } | null {
  try {
    const cwd = repoRoot()
    const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim()
    const dirty = execFileSync('git', ['status', '--porcelain', '--', 'engine', 'native-bindings'], { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim()
    return { commit, engineDirty: dirty.length > 0 }
  } catch {
    return null
  }
}

export function hostInfo() {
  const cpus = os.cpus()
  return {
    node: process.version,
    platform: `${os.platform()} ${os.release()} ${os.arch()}`,
    cpus: cpus.length,
    cpuModel: cpus[0]?.model ?? 'unknown',
    memGiB: Math.round(os.totalmem() / 2 ** 30),
    tmpdir: os.tmpdir(),
    loadavg: os.loadavg().map(x => Math.round(x * 100) / 100),
  }
}

/** A plain-text table: first row is the header; numbers are right-aligned. */
export function table(rows: Array<Array<string | number>>): string {
  const cells = rows.map(r => r.map(c => String(c)))
  const widths = cells[0].map((_, i) => Math.max(...cells.map(r => (r[i] ?? '').length)))
  const line = (r: string[], header: boolean) => r.map((c, i) => {
    const numeric = !header && /^[-+]?[\d.,]+(x|%| ms| MB)?$/.test(c)
    return numeric ? c.padStart(widths[i]) : c.padEnd(widths[i])
  }).join('  ').trimEnd()
  const out = [line(cells[0], true), widths.map(w => '-'.repeat(w)).join('  ')]
  for (const r of cells.slice(1)) out.push(line(r, false))
  return out.join('\n')
}

/** Formats with a fixed number of significant decimals: 12,345 / 123.4 / 1.234 / 0.123 */
export function fmt(n: number, digits = 3): string {
  if (!Number.isFinite(n)) return String(n)
  const a = Math.abs(n)
  if (a >= 1000) return Math.round(n).toLocaleString('en-US')
  if (a >= 100) return n.toFixed(Math.max(0, digits - 3))
  if (a >= 10) return n.toFixed(Math.max(0, digits - 2))
  return n.toFixed(digits)
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2
}

/** pgbench's four tables (as `pgbench -i` makes them, in the SQL both hexad and SQLite take): the sql and pgproto benchmarks' schema */
export const PGBENCH_DDL = [
  'CREATE TABLE pgbench_branches (bid INT PRIMARY KEY, bbalance INT NOT NULL, filler VARCHAR(88))',
  'CREATE TABLE pgbench_tellers (tid INT PRIMARY KEY, bid INT NOT NULL, tbalance INT NOT NULL, filler VARCHAR(84))',
  'CREATE TABLE pgbench_accounts (aid INT PRIMARY KEY, bid INT NOT NULL, abalance INT NOT NULL, filler VARCHAR(84))',
  'CREATE TABLE pgbench_history (tid INT, bid INT, aid INT, delta INT, mtime TIMESTAMP, filler VARCHAR(22))',
]

export const MB = 1e6
export const MiB = 2 ** 20

/** One thread's scheduler times so far (Linux /proc/self/task/<tid>/schedstat), in ns. */
export interface ThreadTimes { runNs: number; waitNs: number }

/**
 * Every thread of this process: its time on a CPU and its time waiting in
 * the run queue (runnable, not running), by thread id; null without /proc
 * (not Linux). The main thread's id is process.pid.
 */
export function threadTimes(): Map<number, ThreadTimes> | null {
  let tids: string[]
  try { tids = fs.readdirSync('/proc/self/task') } catch { return null }
  const out = new Map<number, ThreadTimes>()
  for (const t of tids) {
    try {
      const [run, wait] = fs.readFileSync(`/proc/self/task/${t}/schedstat`, 'utf8').split(' ').map(Number)
      out.set(Number(t), { runNs: run, waitNs: wait })
    } catch { /* the thread ended meanwhile */ }
  }
  return out.has(process.pid) ? out : null
}

/**
 * What the threads did between two threadTimes() snapshots: the main
 * thread's run and run-queue time, and the run time of all other threads
 * (threads that started meanwhile count from 0; ones that ended are lost).
 */
export function threadDelta(a: Map<number, ThreadTimes>, b: Map<number, ThreadTimes>): { mainRunNs: number; mainWaitNs: number; otherRunNs: number } {
  let otherRunNs = 0
  for (const [tid, t] of b) if (tid !== process.pid) otherRunNs += t.runNs - (a.get(tid)?.runNs ?? 0)
  const m0 = a.get(process.pid)!, m1 = b.get(process.pid)!
  return { mainRunNs: m1.runNs - m0.runNs, mainWaitNs: m1.waitNs - m0.waitNs, otherRunNs }
}

/** The whole machine's CPU time so far (Linux /proc/stat, all CPUs): busy (user, nice, system, irq, softirq, steal) and idle (idle, iowait), in clock ticks; null without /proc. */
export function machineTimes(): { busy: number; idle: number } | null {
  try {
    const f = fs.readFileSync('/proc/stat', 'utf8').split('\n', 1)[0].trim().split(/\s+/).slice(1).map(Number)
    const [user, nice, system, idle, iowait, irq, softirq, steal] = f
    return { busy: user + nice + system + irq + softirq + (steal || 0), idle: idle + iowait }
  } catch { return null }
}

/** The share of the machine's CPU time that was idle between two machineTimes() snapshots. */
export function idleShare(a: { busy: number; idle: number }, b: { busy: number; idle: number }): number {
  const busy = b.busy - a.busy, idle = b.idle - a.idle
  return busy + idle > 0 ? idle / (busy + idle) : 0
}

/** a process ProcessTreeCpu found: its pid, its schedstat descriptor (-1 once gone), its first and last readings (ns) */
interface TreeProc { pid: number; fd: number; first: number; last: number }

/**
 * The CPU time of a process and all its descendants (PostgreSQL's
 * postmaster and its backends), sampled while they run: a backend exits when
 * its client goes, taking its counters with it, so each process's last
 * reading is kept and `totalNs()` sums what each used since the first
 * sample (a process that appeared later counts from 0). What a process uses
 * between its last reading and its exit is lost: read often (`refresh`). From
 * /proc/<pid>/schedstat (ns on a CPU; each PostgreSQL process is one
 * thread); every call does nothing without /proc.
 *
 * Each process found is read through a descriptor of its own schedstat file,
 * opened when a scan finds it: a /proc descriptor stays bound to that
 * process, so once it exits reads fail, and a later process given the same
 * pid (pid_max may be 32,768) is never read through it, nor counted unless a
 * scan finds it in the tree. `close()` lets the descriptors go.
 */
export class ProcessTreeCpu {
  readonly #root: number
  /** every process found, gone ones included (their fd is -1) */
  readonly #procs: TreeProc[] = []
  /** the live ones by pid */
  readonly #live = new Map<number, TreeProc>()
  readonly #buf = Buffer.alloc(256)
  #sampled = false
  constructor(rootPid: number) { this.#root = rootPid }

  /** processes found so far (gone ones included) */
  get processes(): number { return this.#procs.length }

  /** Reads again the processes already found (cheap: one read each), so little of a process's last moments is lost. */
  refresh(): void {
    for (const p of this.#live.values()) this.#read(p)
  }

  /** Finds the tree's processes (a scan of /proc) and reads each. */
  sample(): void {
    let pids: string[]
    try { pids = fs.readdirSync('/proc').filter(p => /^\d+$/.test(p)) } catch { return }
    const parent = new Map<number, number>()
    for (const p of pids) {
      try {
        const st = fs.readFileSync(`/proc/${p}/stat`, 'utf8')
        parent.set(Number(p), Number(st.slice(st.lastIndexOf(')') + 2).split(' ')[1]))
      } catch { /* gone meanwhile */ }
    }
    const inTree = (pid: number): boolean => { for (let x: number | undefined = pid, n = 0; x !== undefined && x > 1 && n < 64; x = parent.get(x), n++) if (x === this.#root) return true; return false }
    for (const pid of parent.keys()) {
      if (!inTree(pid)) continue
      const known = this.#live.get(pid)
      // a known process that still reads is the same one; one that does not has gone, and this pid is a new process
      if (known && this.#read(known)) continue
      let fd: number
      try { fd = fs.openSync(`/proc/${pid}/schedstat`, 'r') } catch { continue /* gone meanwhile */ }
      const p: TreeProc = { pid, fd, first: 0, last: 0 }
      if (!this.#read(p)) continue
      // the processes there at the first sample count from then; later ones from their start
      p.first = this.#sampled ? 0 : p.last
      this.#procs.push(p)
      this.#live.set(pid, p)
    }
    this.#sampled = true
  }

  /** ns on a CPU since the first sample, summed over the tree. */
  totalNs(): number {
    let n = 0
    for (const p of this.#procs) n += p.last - p.first
    return n
  }

  /** Closes the descriptors (the readings stay: totalNs() still answers). */
  close(): void {
    for (const p of this.#live.values()) this.#gone(p)
  }

  /** Reads `p`'s run time into p.last; false (and `p` marked gone) once it has exited. */
  #read(p: TreeProc): boolean {
    if (p.fd < 0) return false
    let n = 0
    try { n = fs.readSync(p.fd, this.#buf, 0, this.#buf.length, 0) } catch { /* ESRCH: exited */ }
    const ns = n > 0 ? Number(this.#buf.toString('latin1', 0, n).split(' ')[0]) : NaN
    if (!Number.isFinite(ns)) { this.#gone(p); return false }
    p.last = ns
    return true
  }

  #gone(p: TreeProc): void {
    if (p.fd >= 0) { try { fs.closeSync(p.fd) } catch { /* already closed */ } p.fd = -1 }
    if (this.#live.get(p.pid) === p) this.#live.delete(p.pid)
  }
}

/**
 * Refuses an option a benchmark does not know. `known` lists the flags
 * (`--quick`) and the valued options with their `=` (`--rounds=`); the
 * error names them all.
 */
export function refuseUnknownOptions(bench: string, args: string[], known: string[]): void {
  for (const a of args) {
    if (!known.some(k => k.endsWith('=') ? a.startsWith(k) : a === k)) throw new Error(`${bench}: unknown option ${a} (known: ${known.map(k => k.endsWith('=') ? k + '...' : k).join(' ')})`)
  }
}

/** The value of `--name=...` in `args`, or undefined without one. */
export function optionValue(args: string[], name: string): string | undefined {
  const a = args.find(x => x.startsWith(`--${name}=`))
  return a === undefined ? undefined : a.slice(name.length + 3)
}

/** The integer value of `--name=` in `args` (at least `min`), `dflt` without one; a clear error otherwise. */
export function intOption(bench: string, args: string[], name: string, dflt: number, min = 1): number {
  const v = optionValue(args, name)
  if (v === undefined) return dflt
  const n = /^-?\d+$/.test(v) ? Number(v) : NaN
  if (!Number.isSafeInteger(n) || n < min) throw new Error(`${bench}: --${name} must be an integer of at least ${min}, got "${v}"`)
  return n
}
