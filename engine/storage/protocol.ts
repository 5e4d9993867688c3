/**
 * Messages between the volume client (writer) and segment workers, and
 * between segment workers (gossip). Every request that expects an answer
 * carries an `id`; answers echo it.
 *
 * Ordering: a MessagePort delivers in order, so a `hello` or `recover` sent
 * before a frame is processed before it. Epoch checks make every message
 * from an older writer harmless once a newer one has spoken.
 */
import type { RecordTuple } from './format.js'

/** A truncation range (from, to]: records with from < lsn <= to are discarded everywhere. */
export type Truncation = [number, number]

export interface SegmentConfig {
  id: number
  az: number
  dir: string
  pageSize: number
  pagesPerGroup: number
  logFileBytes: number
  coalesceThreshold: number
  checkpointLogBytes: number
  gossipIntervalMs: number
  pageCacheBytes: number
}

// ---- writer -> segment
export type ClientRequest =
  | { t: 'hello'; id: number; epoch: number; truncations: Truncation[] }
  | { t: 'recover'; id: number; epoch: number; truncations: Truncation[] }
  | { t: 'truncate'; id: number; epoch: number; truncations: Truncation[] }
  | { t: 'frame'; seq: number; epoch: number; frame: Uint8Array; /** the writer's read horizon, when it moved */ horizon?: number }
  | { t: 'horizon'; epoch: number; lsn: number }
  | { t: 'read'; id: number; epoch: number; pageId: number; at: number; need: number }
  | { t: 'stats'; id: number }

/** Per-PG SCLs as [pg, scl] pairs. */
export type SclList = Array<[number, number]>

/** One PG as a segment reports it during recovery. */
export interface PgReport {
  pg: number
  scl: number
  /** the last record of this PG at or below the segment's vdlKnown (0 if none) */
  tail: number
  /** records above vdlKnown that are part of the complete chain (lsn <= scl), with their CPL flag */
  records: Array<[number, number]>
}

export interface RecoverReport {
  vdlKnown: number
  maxLsn: number
  pgs: PgReport[]
}

export interface SegmentStats {
  id: number
  az: number
  epoch: number
  vdlKnown: number
  pgScl: SclList
  bytesWritten: number
  logBytesLive: number
  logFiles: number
  pageVersions: number
  pageStoreBytes: number
  recordsInMemory: number
  framesAppended: number
  fsyncs: number
  coalesced: number
  gapFillRecords: number
  gcLogFiles: number
  gcVersions: number
  /** page-version files rewritten because most of their versions were collected */
  compactedPageFiles: number
  corruptFrames: number
  corruptVersions: number
  tornTailBytes: number
  readsServed: number
  /** pages this segment refuses to serve because a version failed its checksum */
  damagedPages: number
  /** damaged pages replaced by an intact image from a peer */
  repairedPages: number
  /** page builds that started from the in-memory image cache instead of a disk read */
  cacheHits: number
  /** a page file or the meta file is damaged beyond what the index can tell: no page reads served here */
  pagesSuspect: boolean
  /** meta file copies that failed their checksum at start */
  metaCorrupt: number
}

// ---- segment -> writer
export type ClientReply =
  | { t: 'hello-ok'; id: number; scl: SclList }
  | { t: 'recover-ok'; id: number; report: RecoverReport }
  | { t: 'truncate-ok'; id: number; scl: SclList }
  | { t: 'fenced'; id?: number; seq?: number; epoch: number }
  | { t: 'ack'; seqs: number[]; scl: SclList }
  | { t: 'scl'; scl: SclList }
  | { t: 'page'; id: number; image: Uint8Array }
  | { t: 'read-fail'; id: number; reason: 'not-ready' | 'corrupt' | 'below-horizon'; detail: string }
  | { t: 'stats-ok'; id: number; stats: SegmentStats }
  | { t: 'error'; id?: number; message: string }

// ---- segment <-> segment (gossip)
export type GossipMessage =
  | { t: 'g-scl'; from: number; epoch: number; truncations: Truncation[]; scl: SclList }
  | { t: 'g-req'; from: number; epoch: number; pg: number; after: number; upto: number }
  | { t: 'g-rec'; from: number; epoch: number; pg: number; records: RecordTuple[] }
  | { t: 'g-page-req'; from: number; epoch: number; pageId: number; after: number }
  | { t: 'g-page'; from: number; epoch: number; pageId: number; lsn: number; image: Uint8Array | null }

// ---- coordinator -> segment (control)
export type ControlMessage =
  | { t: 'client'; port: MessagePortLike }
  | { t: 'peer'; peer: number; port: MessagePortLike }
  | { t: 'peer-gone'; peer: number }
  | { t: 'close' }

// Avoid importing worker_threads types into protocol consumers that only need shapes.
export type MessagePortLike = import('node:worker_threads').MessagePort
