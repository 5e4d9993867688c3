/**
 * hexad: an embeddable log-structured page store for Node.js, built the way
 * Amazon Aurora builds its storage. See README.md and shared DESIGN.md.
 */
export { openVolume, destroyVolume, Volume, VolumeFaults } from './volume/index.js'
export type { VolumeOptions, PageWrite, WriteResult, VolumeStats, SegmentView, ReadPoint } from './volume/index.js'
export type { SegmentStats } from './storage/index.js'
export type { PageOp } from './common/page-ops.js'
export { openCluster, destroyCluster, Cluster, Database, Keyspace, Transaction, TxKeyspace, Reader, ReaderKeyspace, Connection } from './compute/index.js'
export type { ClusterOptions, CloneOptions, BacktrackReport, VerifyReport, Key, Value, ScanOptions, BatchOp, TransactionOptions, DatabaseStats, ReaderOptions, ReaderStats, FailoverReport, EndpointSpec, AutoScalingPolicy, ScalingEvent } from './compute/index.js'
export { HexadError } from './common/errors.js'
export { SqlError, SqlSession, splitStatements } from './sql/index.js'
export type { SqlOptions, SqlResult, SqlField, Dialect, FaultEvent } from './sql/index.js'
export type { HexadErrorCode } from './common/errors.js'
export { serve } from './server/index.js'
export { restore, latestRestorable, restorableWindow, startBackup, BackupAgent, DirectoryBackupStore } from './backup/index.js'
export type { BackupOptions, BackupStatus, BackupStore, RestoreOptions, RestoreResult, RestoreProgress, RestorePoint, RestorableWindow } from './backup/index.js'
export type { ServeOptions, Endpoints, PgServerOptions, PgUser, PgServer } from './server/index.js'
