/**
 * A read replica: runs in its own worker thread with its own buffer cache.
 *
 * It receives the writer's redo stream (every MTR once durable, in LSN
 * order), applies each MTR whole, and only to pages it already caches (a page
 * it does not hold is read later at its read point, which includes the MTR).
 * A miss is read from the volume at the replica's read point (the CPL of the
 * last MTR it applied); the writer pins that point so storage keeps it.
 *
 * Consistency: reads and redo application never interleave. While any read
 * (a get, or a scan from open to close) is in progress, arriving MTRs queue;
 * once reads drain they are applied, and reads that arrive while MTRs are
 * queued wait for them (the redo stream has priority, so a steady read load
 * cannot stall the replica). A read therefore sees exactly the state after
 * some whole MTR: never half an MTR, never half a transaction (a transaction
 * commits in one MTR).
 */
import { parentPort, workerData } from 'node:worker_threads'
import { applyEncodedOp, encodeOp } from '../common/page-ops.js'
import { BTree, type Entry } from './btree.js'
import { BufferCache } from './buffer-cache.js'
import { nowMs, type DurableMtr } from './mtr.js'
import type { PageAccess } from './page-access.js'
import { readSuperblock } from './page-format.js'
import type { ReaderReply, ReaderRequest, ReaderInit } from './reader-protocol.js'

const init = workerData as ReaderInit
const port = parentPort!
const enc = new TextEncoder()

let applied = init.start
const queued: DurableMtr[] = []
let activeReads = 0
let readWaiters: Array<() => void> = []
let reqSeq = 0
const pageReqs = new Map<number, { resolve: (p: Uint8Array) => void; reject: (e: Error) => void }>()
const lagSamples: number[] = []
let lagLast = 0
let mtrsApplied = 0
let reportTimer: NodeJS.Timeout | null = null
const roots = new Map<string, number>()
const scans = new Map<number, { gen: AsyncGenerator<Entry>; inSnap: boolean }>()
/** open snapshots: each holds the read gate until closed */
const snaps = new Set<number>()

const cache = new BufferCache({
  readPage: (pageId: number) => new Promise<Uint8Array>((resolve, reject) => {
    const id = ++reqSeq
    pageReqs.set(id, { resolve, reject })
    post({ t: 'read', id, pageId, at: applied })
  }),
}, init.cacheBytes)

const pa: PageAccess = {
  pageSize: init.pageSize,
  read: (id: number) => cache.get(id),
  write: () => { throw new Error('a read replica does not write pages') },
  create: () => { throw new Error('a read replica does not write pages') },
}

function post(m: ReaderReply): void { port.postMessage(m) }

function applyQueued(): void {
  if (activeReads > 0 || queued.length === 0) return
  const now = nowMs()
  for (const m of queued) {
    if (m.cpl <= applied) continue // already in what this replica read at its start
    for (const w of m.writes) {
      // Only pages held; no read holds a reference while we apply, so apply in place.
      const img = cache.peek(w.pageId)
      if (!img) continue
      for (const op of w.ops) applyEncodedOp(img, encodeOp(op))
    }
    applied = m.cpl
    mtrsApplied++
    lagLast = now - m.durableAt
    lagSamples.push(lagLast)
    if (lagSamples.length > 4096) lagSamples.splice(0, 2048)
  }
  queued.length = 0
  const waiters = readWaiters
  readWaiters = []
  for (const w of waiters) w()
  if (!reportTimer) reportTimer = setTimeout(() => { reportTimer = null; post({ t: 'applied', lsn: applied }) }, 5)
}

async function beginRead(): Promise<void> {
  applyQueued()
  while (queued.length) await new Promise<void>(r => readWaiters.push(r))
  activeReads++
}

function endRead(): void {
  if (--activeReads === 0) applyQueued()
}

async function rootOf(ks: string): Promise<number | undefined> {
  const known = roots.get(ks)
  if (known !== undefined) return known
  const sb = readSuperblock(await cache.get(0))
  if (!sb || !sb.catalogRoot) return undefined
  const v = await new BTree(sb.catalogRoot).get(pa, enc.encode(ks))
  if (!v) return undefined // not created as of this read point: reads as empty
  const root = Buffer.from(v.buffer, v.byteOffset, v.byteLength).readUInt32LE(0)
  roots.set(ks, root) // a keyspace's root never changes
  return root
}

async function nextBatch(id: number, gen: AsyncGenerator<Entry>, inSnap: boolean): Promise<void> {
  const entries: Array<[Uint8Array, Uint8Array]> = []
  let done = false
  try {
    while (entries.length < 512) {
      const r = await gen.next()
      if (r.done) { done = true; break }
      entries.push(r.value)
    }
  } catch (err) {
    scans.delete(id)
    if (!inSnap) endRead()
    return post({ t: 'error', id, message: (err as Error).message, code: (err as { code?: string }).code })
  }
  if (done) { scans.delete(id); if (!inSnap) endRead() }
  post({ t: 'batch', id, entries, done, at: applied })
}

port.on('message', (m: ReaderRequest) => {
  switch (m.t) {
    case 'mtr':
      queued.push(m.mtr)
      applyQueued()
      return
    case 'page': {
      const r = pageReqs.get(m.id)
      if (!r) return
      pageReqs.delete(m.id)
      if (m.image) r.resolve(m.image)
      else r.reject(Object.assign(new Error(m.message ?? 'page read failed'), { code: m.code }))
      return
    }
    case 'get':
      void (async () => {
        const inSnap = m.snap !== undefined
        if (inSnap && !snaps.has(m.snap!)) return post({ t: 'error', id: m.id, message: 'the snapshot is closed', code: 'HEXAD_CLOSED' })
        if (!inSnap) await beginRead()
        try {
          const root = await rootOf(m.ks)
          const value = root === undefined ? undefined : await new BTree(root).get(pa, m.key)
          post({ t: 'value', id: m.id, value: value ?? null, at: applied })
        } catch (err) {
          post({ t: 'error', id: m.id, message: (err as Error).message, code: (err as { code?: string }).code })
        } finally {
          if (!inSnap) endRead()
        }
      })()
      return
    case 'scan-open':
      void (async () => {
        const inSnap = m.snap !== undefined
        if (inSnap && !snaps.has(m.snap!)) return post({ t: 'error', id: m.id, message: 'the snapshot is closed', code: 'HEXAD_CLOSED' })
        if (!inSnap) await beginRead()
        let gen: AsyncGenerator<Entry>
        try {
          const root = await rootOf(m.ks)
          gen = root === undefined ? (async function* () {})() : new BTree(root).range(pa, { ...m.bounds, limit: m.limit })
        } catch (err) {
          if (!inSnap) endRead()
          return post({ t: 'error', id: m.id, message: (err as Error).message, code: (err as { code?: string }).code })
        }
        scans.set(m.id, { gen, inSnap })
        await nextBatch(m.id, gen, inSnap)
      })()
      return
    case 'scan-next': {
      const sc = scans.get(m.id)
      if (!sc) return post({ t: 'batch', id: m.id, entries: [], done: true, at: applied })
      void nextBatch(m.id, sc.gen, sc.inSnap)
      return
    }
    case 'scan-close': {
      const sc = scans.get(m.id)
      if (!sc) return
      scans.delete(m.id)
      void sc.gen.return(undefined)
      if (!sc.inSnap) endRead()
      return
    }
    case 'snap-open':
      void (async () => {
        await beginRead()
        snaps.add(m.id)
        post({ t: 'snap', id: m.id, at: applied })
      })()
      return
    case 'snap-close': {
      if (snaps.delete(m.id)) endRead()
      return
    }
    case 'dump':
      void (async () => {
        await beginRead() // everything received is applied first; nothing applies after
        const pages = cache.entries()
        post({ t: 'dump', id: m.id, applied, pages })
      })()
      return
    case 'stats': {
      const sorted = [...lagSamples].sort((a, b) => a - b)
      const pct = (q: number) => sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] : 0
      post({
        t: 'stats', id: m.id,
        stats: { appliedLsn: applied, mtrsApplied, queuedMtrs: queued.length, activeReads, lagMs: { last: lagLast, p50: pct(0.5), p99: pct(0.99), samples: sorted.length }, cache: cache.stats() },
      })
      return
    }
  }
})
