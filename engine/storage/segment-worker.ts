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
import { parentPort, workerData } from 'node:worker_threads'
import type { ClientRequest, ControlMessage, GossipMessage, SegmentConfig } from './protocol.js'
import { openSegmentNode, type SegmentNode } from './segment-node.js'

const cfg = workerData as SegmentConfig
if (!parentPort) throw new Error('segment-worker must run in a worker thread')
const parent = parentPort

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
