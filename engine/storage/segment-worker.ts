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

/** the segment this thread runs; null while parked after a close */
let seg: SegmentNode | null = start(cfg)

function start(c: SegmentConfig): SegmentNode {
  try {
    const s = openSegmentNode(c)
    parent.postMessage({ t: 'ready' })
    return s
  } catch (err) {
    parent.postMessage({ t: 'failed', message: (err as Error).stack ?? String(err) })
    process.exit(1)
  }
}

parent.on('message', (m: ControlMessage | { t: 'start'; cfg: SegmentConfig }) => {
  switch (m.t) {
    case 'start':
      // A thread parked by storage.ts after a clean close, given the next segment to run (its own files closed).
      seg = start(m.cfg)
      return
    case 'client': {
      // Each port is bound to the segment it was given to, never to a later one in this thread.
      const node = seg
      if (!node) { m.port.close(); return }
      node.clients.add(m.port)
      m.port.on('message', (req: ClientRequest) => node.onClient(m.port, req))
      m.port.on('close', () => node.clients.delete(m.port))
      return
    }
    case 'peer': {
      const node = seg
      if (!node) { m.port.close(); return }
      const old = node.peers.get(m.peer)
      if (old) old.close()
      node.peers.set(m.peer, m.port)
      m.port.on('message', (g: GossipMessage) => node.onPeer(g))
      return
    }
    case 'peer-gone':
      seg?.peers.get(m.peer)?.close()
      seg?.peers.delete(m.peer)
      return
    case 'close':
      // The files are closed and the ports with them; the thread waits for a 'start' or its end.
      seg?.close()
      seg = null
      parent.postMessage({ t: 'closed' })
      return
  }
})
