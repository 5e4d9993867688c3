/**
 * Messages between the volume client (writer) and segment workers, and
 * between segment workers (gossip). Every request that expects an answer
 * carries an `id`; answers echo it.
 *
 * Ordering: a MessagePort delivers in order, so a `hello` or `recover` sent
 * before a frame is processed before it. Epoch checks make every message
 * from an older writer harmless once a newer one has spoken.
 */

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
  /** bytes of log frames and page versions the scrubber re-reads and verifies per second */
  scrubBytesPerSecond: number
  /** the least time from the start of one scrub pass to the start of the next (0: back to back) */
  scrubIntervalMs: number
  /** an idle segment's timer period in ms (0: never slow; absent: IDLE_TICK_MS) */
  idleTickMs?: number
  /**
   * A clone's segment: the LSN its volume was cloned at (0: not a clone). A
   * page this segment holds no version and no record of is 'absent' (the
   * volume reads it from the parent at this LSN); a page whose first record
   * here is not an init needs the parent's image as its base version at this
   * LSN, which the segment asks its writer for ('need-base').
   */
  cloneLsn?: number
}

// ---- writer -> segment
export type ClientRequest =
  | { t: 'hello'; id: number; epoch: number; truncations: Truncation[]; members?: number[]; pins?: number[] }
  | { t: 'recover'; id: number; epoch: number; truncations: Truncation[]; members?: number[]; pins?: number[] }
  | { t: 'truncate'; id: number; epoch: number; truncations: Truncation[]; members?: number[]; pins?: number[] }
  /** the durable read points below the horizon (snapshots, clones): checkpoints fold at each, GC keeps them */
  | { t: 'pins'; epoch: number; pins: number[] }
  /** the segments of the PGs' quorum sets (all sets during a change): only their SCLs gate checkpoints */
  | { t: 'members'; epoch: number; members: number[] }
  /** `pins` ride with every horizon: a segment never folds past a pin it was not told of (a lost 'pins' message) */
  | { t: 'frame'; seq: number; epoch: number; frame: Uint8Array; /** the writer's read horizon, when it moved */ horizon?: number; pins?: number[] }
  | { t: 'horizon'; epoch: number; lsn: number; pins?: number[] }
  | { t: 'read'; id: number; epoch: number; pageId: number; at: number; need: number }
  | { t: 'stats'; id: number }
  /** a clone's base: the parent's image of `pageId` at the clone LSN `lsn`, kept as a page version */
  | { t: 'base'; epoch: number; pageId: number; lsn: number; image: Uint8Array }
  /** the pages this segment holds a version or a record of with an LSN above `since` (-1: every page) */
  | { t: 'page-ids'; id: number; since: number }
  /**
   * Every record with from < lsn <= to (all PGs), ascending, as one frame, at
   * most `maxRecords` of them (then `upto` says where the frame ends).
   * Refused when this segment folded records above `from` away.
   */
  | { t: 'log-range'; id: number; from: number; to: number; maxRecords: number }

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
  /** SCL gossip rounds sent to the peers, and skipped because there was nothing new to tell */
  gossipSent: number
  gossipSkipped: number
  /** timer ticks taken at the idle pace (IDLE_TICK_MS): the segment had nothing to do */
  slowTicks: number
  gcLogFiles: number
  gcVersions: number
  /** page-version files rewritten because most of their versions were collected */
  compactedPageFiles: number
  /** a clone's pages waiting for the parent's image under their records, and the images received */
  basesPending: number
  basesReceived: number
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
  /** completed scrub passes (every log frame and page version re-read and verified once) */
  scrubPasses: number
  /** bytes the scrubber re-read and verified */
  scrubBytes: number
  scrubFrames: number
  scrubVersions: number
  /** frames and versions the scrubber found failing their checksum (also counted in corruptFrames/corruptVersions) */
  scrubCorruptFrames: number
  scrubCorruptVersions: number
  /** damaged frames whose records were fetched from a peer, written again, and the damaged frame marked dead */
  scrubRepairedFrames: number
  /** damaged versions marked dead on disk after an intact image from a peer was made durable */
  buriedVersions: number
  /** PGs being rebuilt from a peer's page versions (their SCL lies below every peer's fold base) */
  rebuildPgsActive: number
  rebuildPgsDone: number
  /** page images copied from peers by rebuilds */
  rebuildPagesCopied: number
  /** rebuilds started over (the peer folded further meanwhile, failed, or did not answer) */
  rebuildRestarts: number
  /** appends refused by the disk (full): those frames were not acked */
  ioErrors: number
  /** where this segment's unreadable files were moved at start (it then started empty and rebuilt), or null */
  filesSetAside: string | null
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
  /**
   * SCLs carry the segment's epoch: after a newer writer's recovery truncated
   * the log, an SCL means "every record up to L of the new history", which an
   * older writer must not count as acks of its own records.
   */
  | { t: 'ack'; seqs: number[]; scl: SclList; epoch: number }
  | { t: 'scl'; scl: SclList; epoch: number }
  | { t: 'page'; id: number; image: Uint8Array }
  /**
   * 'absent': a clone's segment holds nothing of the page at that read point
   * (read it from the parent); 'need-base': it holds records of the page but
   * not yet the parent's image under them.
   */
  | { t: 'read-fail'; id: number; reason: 'not-ready' | 'corrupt' | 'below-horizon' | 'absent' | 'need-base'; detail: string }
  /** a clone's segment asks for the parent's images of these pages (see 'base') */
  | { t: 'need-base'; pageIds: number[] }
  | { t: 'page-ids-ok'; id: number; pageIds: number[] }
  | { t: 'log-range-ok'; id: number; frame: Uint8Array | null; upto: number; records: number; detail?: string }
  | { t: 'stats-ok'; id: number; stats: SegmentStats }
  | { t: 'error'; id?: number; message: string }

// ---- segment <-> segment (gossip)
export type GossipMessage =
  | { t: 'g-scl'; from: number; epoch: number; truncations: Truncation[]; scl: SclList; /** per PG fold base: records at or below it are no longer in this peer's log */ bases: SclList; /** the sender starts a checkpoint now (it answers nothing until it is done) */ ckpt?: boolean }
  | { t: 'g-req'; from: number; epoch: number; pg: number; after: number; upto: number }
  /** gap fill: the records as one frame (checked by the receiver before anything is kept) */
  | { t: 'g-rec'; from: number; epoch: number; pg: number; frame: Uint8Array }
  | { t: 'g-page-req'; from: number; epoch: number; pageId: number; after: number }
  /** page repair: an intact image as a version entry (its own checksums), or null */
  | { t: 'g-page'; from: number; epoch: number; pageId: number; lsn: number; entry: Uint8Array | null }
  /** scrub repair: the records of a damaged frame, as [lsn, pageId] */
  | { t: 'g-fix-req'; from: number; epoch: number; key: string; recs: Array<[number, number]> }
  /** the asked records as one frame (checked by the receiver), or null when this peer no longer holds them all */
  | { t: 'g-fix'; from: number; epoch: number; key: string; frame: Uint8Array | null }
  /**
   * rebuild: the next chunk of a PG's pages (page ids above `afterPage`) as
   * of LSN `at` (-1 on the first chunk: the peer picks its complete, durable
   * point and every later chunk uses the same)
   */
  | { t: 'g-rb-req'; from: number; epoch: number; pg: number; afterPage: number; at: number }
  /**
   * Page images at `base` (the `at` of the rebuild) as version entries (each
   * with its own checksums), or `failed` when the peer cannot build one
   * there; `done` when no page of the PG lies above the last one sent.
   */
  | { t: 'g-rb-pages'; from: number; epoch: number; pg: number; base: number; afterPage: number; versions: Uint8Array[]; done: boolean; failed: boolean }

// ---- coordinator -> segment (control)
export type ControlMessage =
  | { t: 'client'; port: MessagePortLike }
  | { t: 'peer'; peer: number; port: MessagePortLike }
  | { t: 'peer-gone'; peer: number }
  | { t: 'close' }

// Avoid importing worker_threads types into protocol consumers that only need shapes.
export type MessagePortLike = import('node:worker_threads').MessagePort
