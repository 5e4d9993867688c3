/**
 * The segment worker thread: a {@link SegmentNode} on node:fs and the
 * process clock, wired to the coordinator (storage.ts) through its parent
 * port, to the writer through client MessagePorts and to its five peers
 * through direct MessageChannels.
 *
 * Why raw worker_threads and not piscina: a segment is stateful, pushes
 * acks and gossip without being asked, and runs background loops. piscina
 * has no task affinity, and its default `atomics: 'sync'` freezes the event
 * loop between tasks (ECOSYSTEM.md measured zero timer ticks), which would
 * stop gossip and coalescing. piscina is for stateless CPU work (building
 * pages, compressing, backup) and is added when such work leaves the segment.
 */
import fs from 'node:fs'
import os from 'node:os'
import { parentPort, workerData } from 'node:worker_threads'
import type { ClientRequest, ControlMessage, GossipMessage, SegmentConfig } from './protocol.js'
import { openSegmentNode, type SegmentNode } from './segment-node.js'

/** What storage.ts starts a worker with: the segment's config and the thread's niceness. */
export interface WorkerData extends SegmentConfig { nice: number }

const cfg = workerData as WorkerData
if (!parentPort) throw new Error('segment-worker must run in a worker thread')
const parent = parentPort
if (cfg.nice > 0) renice(cfg.nice)

/**
 * Lowers this thread's scheduling priority (and only this thread's). Linux
 * gives every thread its own nice value, set through its thread id, which
 * /proc/thread-self names; elsewhere setpriority() on that id would touch a
 * whole process, so nothing is done.
 */
function renice(nice: number): void {
  if (process.platform !== 'linux') return
  try {
    const [pid, , tid] = fs.readlinkSync('/proc/thread-self').split('/')
    if (Number(pid) !== process.pid || !tid) return
    if (os.getPriority(Number(tid)) < nice) os.setPriority(Number(tid), nice) // never raise a priority the process was given lower
  } catch { /* no /proc, or not allowed: run at the process's priority */ }
}

let seg: SegmentNode
try {
  seg = openSegmentNode(cfg)
  parent.postMessage({ t: 'ready' })
} catch (err) {
  parent.postMessage({ t: 'failed', message: (err as Error).stack ?? String(err) })
  process.exit(1)
}

parent.on('message', (m: ControlMessage) => {
  switch (m.t) {
    case 'client':
      seg.clients.add(m.port)
      m.port.on('message', (req: ClientRequest) => seg.onClient(m.port, req))
      m.port.on('close', () => seg.clients.delete(m.port))
      return
    case 'peer': {
      const old = seg.peers.get(m.peer)
      if (old) old.close()
      seg.peers.set(m.peer, m.port)
      m.port.on('message', (g: GossipMessage) => seg.onPeer(g))
      return
    }
    case 'peer-gone':
      seg.peers.get(m.peer)?.close()
      seg.peers.delete(m.peer)
      return
    case 'close':
      seg.close()
      parent.postMessage({ t: 'closed' })
      parent.close()
      return
  }
})
