/**
 * The wire benchmark's CPU accounting (bench/util.ts), Linux only:
 * - ProcessTreeCpu sums the CPU of a process and every process under it,
 *   keeps what a child used after it exited (PostgreSQL's backends exit when
 *   pgbench disconnects), and counts nothing outside the tree, even a
 *   process given the pid of one of the tree's that has gone; refresh()
 *   follows the processes a scan found, without scanning.
 * - machineTimes / idleShare: the machine's idle share between two readings.
 * - refuseUnknownOptions / intOption: the benchmarks' option checks.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { spawn, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { idleShare, intOption, machineTimes, ProcessTreeCpu, refuseUnknownOptions } from '../bench/util.js'
import { fileURLToPath } from 'node:url'

const linux = fs.existsSync('/proc/self/schedstat')

/** node code that burns `ms` of its own CPU time (not wall time: the machine may be busy) */
const burn = (ms: number) => `const t0 = process.cpuUsage(); while ((process.cpuUsage(t0).user + process.cpuUsage(t0).system) < ${ms * 1000}) {}`

test('ProcessTreeCpu: a child that burned 300 ms and exited is counted; a busy process outside the tree is not', async () => {
  if (!linux) return
  const outsider = spawn(process.execPath, ['-e', burn(3000)], { stdio: 'ignore' })
  // the root starts a child that burns 300 ms of CPU and exits, then the root sleeps 1 s and exits
  const rootCode = `const c = require('node:child_process').spawn(process.execPath, ['-e', ${JSON.stringify(burn(300))}], { stdio: 'ignore' }); c.on('exit', () => setTimeout(() => {}, 1000))`
  const root = spawn(process.execPath, ['-e', rootCode], { stdio: 'ignore' })
  try {
    const tree = new ProcessTreeCpu(root.pid!)
    const exited = new Promise<void>(r => root.once('exit', () => r()))
    let done = false
    void exited.then(() => { done = true })
    while (!done) { tree.sample(); await new Promise(r => setTimeout(r, 20)) }
    const ms = tree.totalNs() / 1e6
    assert.ok(ms >= 250, `the exited child's 300 ms are counted (got ${ms.toFixed(0)} ms)`)
    assert.ok(ms < 900, `the outsider's CPU is not (got ${ms.toFixed(0)} ms: the child's 300 and two node start-ups at most)`)
  } finally {
    outsider.kill('SIGKILL')
    root.kill('SIGKILL')
  }
})

test('ProcessTreeCpu.refresh reads the processes found without a scan: a child found once is followed to its exit', async () => {
  if (!linux) return
  // the child waits 200 ms (so a scan finds it before it burns), then burns 300 ms of CPU and exits
  const rootCode = `const c = require('node:child_process').spawn(process.execPath, ['-e', ${JSON.stringify('setTimeout(() => { ' + burn(300) + ' }, 200)')}], { stdio: 'ignore' }); c.on('exit', () => setTimeout(() => {}, 300))`
  const root = spawn(process.execPath, ['-e', rootCode], { stdio: 'ignore' })
  try {
    const tree = new ProcessTreeCpu(root.pid!)
    let done = false
    root.once('exit', () => { done = true })
    while (!done && tree.processes < 2) { tree.sample(); await new Promise(r => setTimeout(r, 5)) }
    assert.ok(tree.processes >= 2, 'the child was found by a scan')
    const found = tree.totalNs() / 1e6
    while (!done) { tree.refresh(); await new Promise(r => setTimeout(r, 20)) }
    const ms = tree.totalNs() / 1e6
    assert.ok(found < 200, `found before it burned (${found.toFixed(0)} ms then)`)
    assert.ok(ms >= 250, `its 300 ms are counted by refresh alone (got ${ms.toFixed(0)} ms)`)
  } finally {
    root.kill('SIGKILL')
  }
})

/** Sets the pid the next process gets (root only: /proc/sys/kernel/ns_last_pid); false when not allowed here. */
function nextPidIs(pid: number): boolean {
  try { fs.writeFileSync('/proc/sys/kernel/ns_last_pid', String(pid - 1)); return true } catch { return false }
}

test('ProcessTreeCpu: a process outside the tree that is given a gone child\'s pid is not counted', async () => {
  if (!linux) return
  // the root (a shell) runs a child `sleep 0.3`, then becomes a `sleep 5` itself (no new process)
  const root = spawn('sh', ['-c', 'sleep 0.3; exec sleep 5'], { stdio: 'ignore' })
  const tree = new ProcessTreeCpu(root.pid!)
  let outsider: ReturnType<typeof spawn> | null = null
  try {
    const childPid = (): number | undefined => {
      try { return Number(fs.readFileSync(`/proc/${root.pid}/task/${root.pid}/children`, 'utf8').trim().split(' ')[0]) || undefined } catch { return undefined }
    }
    let child: number | undefined
    while (!child) { child = childPid(); await new Promise(r => setTimeout(r, 5)) }
    tree.sample()
    assert.is(tree.processes, 2, 'the shell and its sleep were found')
    // the sleep exits and is reaped; then a busy process outside the tree is given its pid
    while (fs.existsSync(`/proc/${child}`)) { tree.refresh(); await new Promise(r => setTimeout(r, 10)) }
    for (let i = 0; i < 20 && !outsider; i++) {
      if (!nextPidIs(child)) { console.log('# (skipped the pid reuse check: /proc/sys/kernel/ns_last_pid is not writable here)'); return }
      const o = spawn(process.execPath, ['-e', burn(400)], { stdio: 'ignore' })
      if (o.pid === child) outsider = o
      else { o.kill('SIGKILL'); await new Promise(r => setTimeout(r, 10)) }
    }
    assert.ok(outsider, `a process was given pid ${child} again`)
    const exited = new Promise<void>(r => outsider!.once('exit', () => r()))
    let done = false
    void exited.then(() => { done = true })
    let ticks = 0
    while (!done) { if (++ticks % 5 === 0) tree.sample(); else tree.refresh(); await new Promise(r => setTimeout(r, 20)) }
    const ms = tree.totalNs() / 1e6
    assert.ok(ms < 150, `the outsider's 400 ms under the reused pid are not counted (got ${ms.toFixed(0)} ms)`)
    assert.is(tree.processes, 2, 'nothing new was found in the tree')
  } finally {
    tree.close()
    outsider?.kill('SIGKILL')
    root.kill('SIGKILL')
  }
})

test('refuseUnknownOptions / intOption: an unknown option or a bad number is refused with the known ones named', () => {
  const known = ['--quick', '--duration=']
  refuseUnknownOptions('x', ['--quick', '--duration=5'], known)
  assert.throws(() => refuseUnknownOptions('x', ['--quick', '--durations=5'], known), /x: unknown option --durations=5 \(known: --quick --duration=\.\.\.\)/)
  assert.throws(() => refuseUnknownOptions('x', ['--quick=1'], known), /unknown option --quick=1/)
  assert.is(intOption('x', ['--duration=250'], 'duration', 7, 100), 250)
  assert.is(intOption('x', [], 'duration', 7, 100), 7)
  for (const bad of ['q', '', '1.5', '99', '2e3', '0x10']) {
    assert.throws(() => intOption('x', [`--duration=${bad}`], 'duration', 7, 100), new RegExp(`x: --duration must be an integer of at least 100, got "${bad.replace('.', '\\.')}"`), bad)
  }
})

test('npm run bench: cluster and clone refuse unknown options and bad values before doing any work', () => {
  const index = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'bench', 'index.js')
  for (const [args, reason] of [
    [['cluster', '--bogus'], /cluster: unknown option --bogus \(known: --quick --duration=\.\.\.\)/],
    [['cluster', '--duration=q'], /cluster: --duration must be an integer of at least 100, got "q"/],
    [['clone', '--size=10'], /clone: unknown option --size=10 \(known: --quick --sizes=\.\.\.\)/],
  ] as Array<[string[], RegExp]>) {
    const r = spawnSync(process.execPath, [index, ...args], { encoding: 'utf8', timeout: 60_000 })
    assert.is(r.status, 1, `${args.join(' ')}: exit ${r.status}`)
    assert.match(r.stderr, reason)
    assert.not.match(r.stdout, /\[1\]|replica lag|clone of/, `${args.join(' ')} started its work: ${r.stdout}`)
  }
})

test('machineTimes / idleShare: the idle share lies in [0, 1] and follows the two readings', () => {
  assert.is(idleShare({ busy: 100, idle: 50 }, { busy: 130, idle: 60 }), 0.25)
  assert.is(idleShare({ busy: 1, idle: 1 }, { busy: 1, idle: 1 }), 0)
  if (!linux) return
  const a = machineTimes()!, b = machineTimes()!
  assert.ok(b.busy >= a.busy && b.idle >= a.idle && a.busy > 0)
  const s = idleShare(a, b)
  assert.ok(s >= 0 && s <= 1)
})

test.run()
