export { Storage, SEGMENTS, AZS, azOf } from './storage.js'
export type { SegmentStats, Truncation } from './protocol.js'
