/**
 * Continuous backup and point-in-time restore (see agent.ts and restore.ts;
 * the store's objects are described in engine/storage/FORMAT.md).
 */
export { startBackup, BackupAgent, KEEP_BASE, KEEP_LOG } from './agent.js'
export type { BackupOptions, BackupStatus } from './agent.js'
export { restore, latestRestorable, restorableWindow } from './restore.js'
export type { RestoreOptions, RestoreResult, RestoreProgress, RestorePoint, RestorableWindow } from './restore.js'
export { DirectoryBackupStore } from './store.js'
export type { BackupStore } from './store.js'
