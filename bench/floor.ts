/**
 * The replication floor: what a 4-of-6 durable write costs on this machine
 * with no engine code at all. Six worker threads each own a preallocated
 * file; a frame is posted to all six, each appends it and fdatasyncs, and
 * the write is "durable" at the fourth ack. Frames go one at a time (as a
 * single client's commits do). hexad's commit latency can approach this,
 * never beat it; a peer that commits with one fsync in its own thread pays
 * only the fsync.
 */
import fs from 'node:fs'
import path from 'node:path'
import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads'

export interface FloorResult { frameBytes: number; frames: number; p50Ms: number; p99Ms: number; meanMs: number }

const WORKER = `
const { parentPort, workerData } = require('node:worker_threads')
const fs = require('node:fs')
const fd = fs.openSync(workerData.file, 'w+')
const zero = Buffer.alloc(1 << 20)
for (let o = 0; o < workerData.bytes; o += zero.length) fs.writeSync(fd, zero, 0, zero.length, o)
fs.fdatasyncSync(fd)
let pos = 0
parentPort.once('message', port => {
  port.on('message', m => {
    if (m === 'close') { fs.closeSync(fd); port.close(); return }
    if (pos + m.frame.length > workerData.bytes) pos = 0
    fs.writeSync(fd, m.frame, 0, m.frame.length, pos)
    pos += m.frame.length
    setImmediate(() => { fs.fdatasyncSync(fd); port.postMessage(m.seq) })
  })
  port.postMessage('ready')
})
`

/** Measures `frames` sequential 4-of-6 appends of each size in `dir` (files removed after). */
export async function replicationFloor(dir: string, sizes: number[], frames: number): Promise<FloorResult[]> {
  const fileBytes = 32 << 20
  const workers: Worker[] = []
  const ports: MessagePort[] = []
  try {
    for (let i = 0; i < 6; i++) {
      const w = new Worker(WORKER, { eval: true, workerData: { file: path.join(dir, `floor-${i}.bin`), bytes: fileBytes } })
      const { port1, port2 } = new MessageChannel()
      w.postMessage(port2, [port2])
      await new Promise<void>(r => port1.once('message', () => r()))
      workers.push(w)
      ports.push(port1)
    }
    const out: FloorResult[] = []
    let cur: { seq: number; acks: number; done: () => void } | null = null
    for (const p of ports) p.on('message', (seq: number) => { if (cur && seq === cur.seq && ++cur.acks === 4) { const d = cur.done; cur = null; d() } })
    let seq = 0
    for (const size of sizes) {
      const lat: number[] = []
      const frame = new Uint8Array(size)
      for (let i = 0; i < frames; i++) {
        for (let j = 0; j < size; j += 97) frame[j] = (i + j) & 0xff
        const t = performance.now()
        await new Promise<void>(done => { cur = { seq: ++seq, acks: 0, done }; for (const p of ports) p.postMessage({ seq, frame }) })
        lat.push(performance.now() - t)
      }
      lat.sort((a, b) => a - b)
      out.push({ frameBytes: size, frames, p50Ms: lat[lat.length >> 1], p99Ms: lat[Math.min(lat.length - 1, Math.floor(lat.length * 0.99))], meanMs: lat.reduce((a, b) => a + b, 0) / lat.length })
    }
    return out
  } finally {
    for (const p of ports) { try { p.postMessage('close') } catch { /* closed */ } }
    await Promise.all(workers.map(w => w.terminate()))
    for (let i = 0; i < 6; i++) fs.rmSync(path.join(dir, `floor-${i}.bin`), { force: true })
  }
}
