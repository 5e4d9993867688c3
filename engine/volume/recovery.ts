/**
 * Recovery: from the reports of a read quorum (3 of 6 segments, or more),
 * the point the volume is durable to, and what to truncate.
 *
 * Why it finds every acknowledged record: a record acknowledged to a writer
 * had 4 of 6 segments with an SCL at or above it; any 3 reports include at
 * least one of those (4 + 3 > 6). Taking, per PG, the report with the
 * highest SCL therefore yields every acknowledged record of that PG.
 *
 * Decision table (written once here, and once as code below):
 *   F   = max vdlKnown of the reports      every LSN <= F was durable (a VDL a writer shipped)
 *   K   = per PG, the chained records above F of its best report, plus truncated ranges
 *   VCL = walk up from F while the next LSN is in K             (LSNs are dense)
 *   VDL = the highest CPL in K at or below VCL, else F           (never half an MTR)
 *   truncate (VDL, max(VCL + LAL, highest LSN seen, last truncation's end + LAL)]
 *                                       (covers anything an old writer could have allocated: it never
 *                                        ran more than LAL past max(its VDL, its own truncation's end))
 *   new LSNs start above the truncation
 *   ...unless the last handle closed cleanly at VDL = C (`cleanLsn`: every LSN it allocated
 *   was durable) and this recovery finds VDL = C and no record above it: then nothing can
 *   lie past the VDL, no range is added, and new LSNs start above max(VDL, last truncation's end)
 *   tail(g) = last record of PG g at or below VDL                (prevLsn of g's next record)
 */
import type { RecoverReport, Truncation } from '../storage/protocol.js'

export interface RecoveryResult {
  vcl: number
  vdl: number
  truncation: Truncation | null
  nextLsn: number
  tails: Map<number, number>
}

export function computeRecovery(reports: RecoverReport[], truncations: Truncation[], lal: number, cleanLsn: number | null = null): RecoveryResult {
  let floor = 0
  let maxSeen = 0
  for (const r of reports) { floor = Math.max(floor, r.vdlKnown); maxSeen = Math.max(maxSeen, r.maxLsn) }
  const inTrunc = (lsn: number) => truncations.find(([a, b]) => lsn > a && lsn <= b)
  const best = new Map<number, RecoverReport['pgs'][number]>()
  for (const r of reports) for (const p of r.pgs) {
    const b = best.get(p.pg)
    if (!b || p.scl > b.scl) best.set(p.pg, p)
  }
  const known = new Map<number, { pg: number; cpl: boolean }>()
  const tails = new Map<number, number>()
  for (const [pg, p] of best) {
    let tail = p.tail
    for (const [lsn, cpl] of p.records) {
      if (inTrunc(lsn)) continue
      if (lsn <= floor) { if (lsn > tail) tail = lsn; continue }
      known.set(lsn, { pg, cpl: cpl !== 0 })
    }
    tails.set(pg, tail)
  }
  let vcl = floor
  for (;;) {
    const t = inTrunc(vcl + 1)
    if (t) { vcl = t[1]; continue }
    if (known.has(vcl + 1)) { vcl++; continue }
    break
  }
  let vdl = floor
  for (const [lsn, k] of known) if (k.cpl && lsn <= vcl && lsn > vdl) vdl = lsn
  for (const [lsn, k] of known) if (lsn <= vdl && lsn > (tails.get(k.pg) ?? 0)) tails.set(k.pg, lsn)
  let lastEnd = 0
  for (const [, b] of truncations) lastEnd = Math.max(lastEnd, b)
  if (cleanLsn !== null && vdl === cleanLsn && maxSeen <= vdl) return { vcl: vdl, vdl, truncation: null, nextLsn: Math.max(vdl, lastEnd) + 1, tails }
  const end = Math.max(vcl + lal, maxSeen, vdl, lastEnd ? lastEnd + lal : 0)
  const truncation: Truncation | null = end > vdl ? [vdl, end] : null
  return { vcl: vdl, vdl, truncation, nextLsn: end + 1, tails }
}
