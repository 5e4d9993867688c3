/**
 * The six segments of a simulated volume: the real SegmentNode code on the
 * simulated disk, wired by simulated ports (writer ↔ segment, segment ↔
 * segment) over the simulated network, each with its own NodeClock.
 *
 * `crash(id)` is a worker that dies: its timers stop, its ports close, its
 * directory loses what was not synced (SimDisk.crash). `start(id)` opens it
 * again on what is left. An exception thrown by a segment's code (an
 * invariant that broke, a disk error it does not handle) kills it the same
 * way, as it would kill its worker thread; the simulator records it and
 * restarts the segment later, as an operator would.
 *
 * Each writer gets its own view (`viewFor`), which implements the
 * StorageLike seam the volume runs on.
 */
import { EventEmitter } from 'node:events'
import path from 'node:path'
import { SEGMENTS, azOf, type ClientPort, type StorageLike, type StorageOptions } from '../storage/storage.js'
import type { ClientRequest, GossipMessage, SegmentConfig } from '../storage/protocol.js'
import type { CorruptionReport } from '../storage/disk.js'
import { openSegmentNode, type SegmentNode } from '../storage/segment-node.js'
import { NodeClock, type SimClock } from './sim-clock.js'
import type { SimDisk } from './sim-disk.js'
import { SimNetwork, SimPort } from './sim-network.js'

export interface SimStorageHooks {
  onCorrupt(segment: number, r: CorruptionReport): void
  /** a segment's code threw: it is dead now */
  onNodeError(segment: number, err: unknown): void
  log(line: string): void
}

export class SimStorage extends EventEmitter {
  readonly dir: string
  readonly options: StorageOptions
  readonly nodes: Array<SegmentNode | null> = new Array(SEGMENTS).fill(null)
  readonly clocks: Array<NodeClock | null> = new Array(SEGMENTS).fill(null)
  readonly #clientPorts: Array<Set<SimPort>> = Array.from({ length: SEGMENTS }, () => new Set())
  readonly #peerPorts: Array<Map<number, SimPort>> = Array.from({ length: SEGMENTS }, () => new Map())
  /** AZ of each slot beyond the first six (membership changes) */
  readonly #az = new Map<number, number>()
  readonly #clock: SimClock
  readonly #disk: SimDisk
  readonly #net: SimNetwork
  readonly #hooks: SimStorageHooks
  starts = 0

  constructor(dir: string, options: StorageOptions, clock: SimClock, disk: SimDisk, net: SimNetwork, hooks: SimStorageHooks) {
    super()
    this.setMaxListeners(100)
    this.dir = dir
    this.options = options
    this.#clock = clock
    this.#disk = disk
    this.#net = net
    this.#hooks = hooks
  }

  segDir(id: number): string { return path.join(this.dir, `segment-${id}`) }
  isUp(id: number): boolean { return this.nodes[id] !== null }

  /** Opens segment `id` on its files and connects it to every running peer. */
  start(id: number): boolean {
    if (this.nodes[id]) return true
    const clock = new NodeClock(this.#clock, `s${id}`, (_n, err) => this.#failed(id, err))
    const { extraSlots: _extra, ...o } = this.options
    const cfg: SegmentConfig = { id, az: this.#az.get(id) ?? azOf(id), dir: this.segDir(id), ...o }
    let node: SegmentNode
    try {
      node = openSegmentNode(cfg, { disk: this.#disk, clock, onCorrupt: (s, r) => this.#hooks.onCorrupt(s, r) })
    } catch (err) {
      clock.kill()
      this.#hooks.log(`segment ${id} failed to open: ${(err as Error).message}`)
      return false
    }
    this.starts++
    this.nodes[id] = node
    this.clocks[id] = clock
    for (let peer = 0; peer < this.nodes.length; peer++) {
      const other = this.nodes[peer]
      if (peer === id || !other) continue
      const [mine, theirs] = SimPort.pair(this.#net, `s${id}`, clock, `s${peer}`, this.clocks[peer]!)
      this.#wirePeer(id, node, peer, mine)
      this.#wirePeer(peer, other, id, theirs)
    }
    if (process.env.SIM_TRACE) console.log(`${this.#clock.now.toFixed(1)} start ${id}`)
    this.emit('up', id)
    return true
  }

  #wirePeer(id: number, node: SegmentNode, peer: number, port: SimPort): void {
    this.#peerPorts[id].get(peer)?.close()
    this.#peerPorts[id].set(peer, port)
    node.peers.set(peer, port)
    port.on('message', (g: GossipMessage) => node.onPeer(g))
  }

  /** Segment `id` dies: timers stop, ports close, its directory loses what was not synced. */
  crash(id: number): void {
    const node = this.nodes[id]
    if (!node) return
    this.clocks[id]!.kill()
    node.abandon()
    this.nodes[id] = null
    this.clocks[id] = null
    for (const p of this.#clientPorts[id]) p.close()
    this.#clientPorts[id].clear()
    for (const [peer, p] of this.#peerPorts[id]) {
      p.close()
      this.#peerPorts[peer].delete(id)
      this.nodes[peer]?.peers.delete(id)
    }
    this.#peerPorts[id].clear()
    this.#disk.crash(this.segDir(id))
    if (process.env.SIM_TRACE) console.log(`${this.#clock.now.toFixed(1)} crash ${id}`)
    this.emit('down', id)
  }

  #failed(id: number, err: unknown): void {
    this.#hooks.onNodeError(id, err)
    this.crash(id)
  }

  /** A new, empty segment in a new slot (a membership change's replacement). */
  addSegment(id: number, az: number): void {
    this.#az.set(id, az)
    while (this.nodes.length <= id) { this.nodes.push(null); this.clocks.push(null); this.#clientPorts.push(new Set()); this.#peerPorts.push(new Map()) }
    this.start(id)
  }

  /** A new channel from writer `writer` (whose clock is `clock`) to segment `id`. */
  connect(id: number, writer: string, clock: NodeClock): ClientPort | null {
    const node = this.nodes[id]
    if (!node) return null
    const [mine, theirs] = SimPort.pair(this.#net, writer, clock, `s${id}`, this.clocks[id]!)
    if (process.env.SIM_TRACE) console.log(`${this.#clock.now.toFixed(1)} connect ${writer} -> ${id}`)
    this.#clientPorts[id].add(theirs)
    node.clients.add(theirs)
    theirs.on('message', (req: ClientRequest) => node.onClient(theirs, req))
    return mine as unknown as ClientPort
  }

  /** The StorageLike a writer named `writer` opens its volume on. */
  viewFor(writer: string, clock: NodeClock): StorageLike {
    const s = this
    return {
      connect: id => s.connect(id, writer, clock),
      isUp: id => s.isUp(id),
      on: (ev, fn) => s.on(ev, fn),
      off: (ev, fn) => s.off(ev, fn),
      release: async () => {},
      stopWorker: async id => s.crash(id),
      restartWorker: async id => { s.start(id) },
      stopAZ: async az => { s.crash(az * 2); s.crash(az * 2 + 1) },
      restartAZ: async az => { s.start(az * 2); s.start(az * 2 + 1) },
      addSegment: async (id, az) => s.addSegment(id, az),
    }
  }
}
