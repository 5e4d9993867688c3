/**
 * The SIGKILL harness the crash tests share: spawn a child that prints
 * `start <n>` once it has recovered and `ack <n>` after each acknowledged
 * write or commit, kill it as told, and return what it printed (only whole
 * lines count: an ack line is printed after its write resolved).
 */
import { spawn } from 'node:child_process'

export type Kill = { mode: 'acks'; minAcks: number; extraMs: number } | { mode: 'early'; afterMs: number }

export interface ChildRun {
  acks: number
  maxAck: number
  /** every acknowledged number, in the order printed */
  acked: number[]
  /** what the child recovered when it opened, or null if it died before saying */
  start: number | null
  stderr: string
}

export function describeKill(k: Kill): string {
  return k.mode === 'acks' ? `after >=${k.minAcks} acks +${k.extraMs} ms` : `${k.afterMs} ms after spawn`
}

/** Runs `node <args>`; rejects if the child exits on its own or is not killed within `timeoutMs`. */
export function runCrashChild(args: string[], kill: Kill, timeoutMs: number, what = 'the writer child'): Promise<ChildRun> {
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] })
  const run: ChildRun = { acks: 0, maxAck: 0, acked: [], start: null, stderr: '' }
  let killed = false
  let timedOut = false
  let killTimer: NodeJS.Timeout | undefined
  const doKill = () => { if (!killed) { killed = true; child.kill('SIGKILL') } }
  const deadline = setTimeout(() => { timedOut = true; doKill() }, timeoutMs)
  if (kill.mode === 'early') killTimer = setTimeout(doKill, kill.afterMs)
  let buf = ''
  child.stdout.setEncoding('utf8')
  child.stdout.on('data', (chunk: string) => {
    buf += chunk
    for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
      const [word, a] = buf.slice(0, nl).split(' ')
      buf = buf.slice(nl + 1)
      if (word === 'ack') {
        run.acks++
        run.acked.push(Number(a))
        run.maxAck = Math.max(run.maxAck, Number(a))
        if (kill.mode === 'acks' && run.acks >= kill.minAcks && !killTimer) killTimer = setTimeout(doKill, kill.extraMs)
      } else if (word === 'start') {
        run.start = Number(a)
      }
    }
  })
  child.stderr.setEncoding('utf8')
  child.stderr.on('data', (chunk: string) => { run.stderr += chunk })
  return new Promise((resolve, reject) => {
    child.on('error', reject)
    child.on('close', (code, signal) => {
      clearTimeout(deadline)
      clearTimeout(killTimer)
      if (!killed) return reject(new Error(`${what} exited on its own (code ${code}, signal ${signal}) after ${run.acks} acks; stderr:\n${run.stderr}`))
      if (timedOut) return reject(new Error(`${what} was not killed within ${timeoutMs} ms (${run.acks} acks, kill ${describeKill(kill)}); stderr:\n${run.stderr}`))
      resolve(run)
    })
  })
}
