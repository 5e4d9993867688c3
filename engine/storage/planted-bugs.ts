/**
 * Known bugs that tests plant on purpose, to prove the simulator's checkers
 * catch them (a checker that cannot fail proves nothing). All are off unless
 * a test turns them on, and they only take effect in the thread that set
 * them: the simulator runs the writer and all six segments in its own thread.
 *
 * - ackAt3of6: the writer counts a record durable at 3 acks instead of 4.
 * - skipReadCrc: a page version's body is returned without checking its crc32c.
 * - ackBeforeFsync: a segment acks appended frames without fdatasync.
 * - gapFillUnverified: records arriving by gap fill are decoded without checking their checksums.
 */
export interface PlantedBugs {
  ackAt3of6: boolean
  skipReadCrc: boolean
  ackBeforeFsync: boolean
  gapFillUnverified: boolean
}

export const plantedBugs: PlantedBugs = { ackAt3of6: false, skipReadCrc: false, ackBeforeFsync: false, gapFillUnverified: false }

export const PLANTED_BUG_NAMES = Object.keys(plantedBugs) as Array<keyof PlantedBugs>

/** Turns every planted bug off, then on the ones named. */
export function setPlantedBugs(on: Partial<PlantedBugs> = {}): void {
  for (const k of PLANTED_BUG_NAMES) plantedBugs[k] = on[k] === true
}
