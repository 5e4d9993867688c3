/** Messages between a read replica's worker and the writer's thread. */
import type { BufferCacheStats } from './buffer-cache.js'
import type { DurableMtr } from './mtr.js'

export interface ReaderInit {
  name: string
  pageSize: number
  /** the read point it starts at (pinned by the writer): every MTR with a CPL above it is sent */
  start: number
  cacheBytes: number
}

export interface WireBounds { gt?: Uint8Array; gte?: Uint8Array; lt?: Uint8Array; lte?: Uint8Array; reverse?: boolean }

export interface ReaderWorkerStats {
  /** the CPL of the last MTR applied: reads see the state after it */
  appliedLsn: number
  mtrsApplied: number
  /** MTRs received and waiting for reads in progress to end */
  queuedMtrs: number
  activeReads: number
  /** time from the writer seeing an MTR durable to this replica applying it */
  lagMs: { last: number; p50: number; p99: number; samples: number }
  cache: BufferCacheStats
}

// writer thread -> replica
export type ReaderRequest =
  | { t: 'mtr'; mtr: DurableMtr }
  | { t: 'page'; id: number; image?: Uint8Array; message?: string; code?: string }
  | { t: 'get'; id: number; ks: string; key: Uint8Array; snap?: number }
  | { t: 'scan-open'; id: number; ks: string; bounds: WireBounds; limit?: number; snap?: number }
  /** holds one read point for several reads until snap-close */
  | { t: 'snap-open'; id: number }
  | { t: 'snap-close'; id: number }
  | { t: 'scan-next'; id: number }
  | { t: 'scan-close'; id: number }
  | { t: 'stats'; id: number }
  /** hand over the cache (on promotion): the replica stops serving */
  | { t: 'dump'; id: number }

// replica -> writer thread
export type ReaderReply =
  | { t: 'read'; id: number; pageId: number; at: number }
  | { t: 'applied'; lsn: number }
  | { t: 'value'; id: number; value: Uint8Array | null; at: number }
  | { t: 'batch'; id: number; entries: Array<[Uint8Array, Uint8Array]>; done: boolean; at: number }
  | { t: 'stats'; id: number; stats: ReaderWorkerStats }
  | { t: 'error'; id: number; message: string; code?: string }
  | { t: 'dump'; id: number; applied: number; pages: Array<[number, Uint8Array]> }
  | { t: 'snap'; id: number; at: number }
