export { openVolume, destroyVolume, Volume, VolumeFaults } from './volume.js'
export type { VolumeOptions, PageWrite, WriteResult, VolumeStats, SegmentView, ReadPoint } from './volume.js'
export type { QuorumSet } from './quorum.js'
