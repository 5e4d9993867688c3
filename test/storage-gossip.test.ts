/**
 * Quiet gossip: a segment whose SCLs, fold bases, epoch and truncations have
 * not changed since it last gossiped, and whose peers all reported the SCLs
 * it has, skips its SCL gossip (a heartbeat every 20 turns still goes out).
 * An idle cluster then posts a few messages a second among its segments
 * instead of 40 per segment and peer; and a segment that comes back behind
 * still catches up, because its peers hear its lower SCLs and speak again.
 * A segment with nothing to do for 40 ticks slows its one timer to 500 ms
 * (idle CPU), and speeds up at once when anything arrives.
 *
 * Replay a failure with HEXAD_SEED=<seed printed on failure>.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { openVolume, type Volume } from '../engine/index.js'
import {
  baseSeed, checkAllPages, cleanupTempDirs, makeTempDir, modelAt, pool, randomMtr, rmTempDir, sclsConverged, smallOptions, waitFor,
  rejectsWith, Rng, withSeed, type MtrRecord,
} from './helpers/volume-helpers.js'

const FILE = 'storage-gossip'
const SEED = baseSeed()
const PAGE_SIZE = 4096
const PAGES = Array.from({ length: 32 }, (_, i) => i)
const GOSSIP_MS = 10

test.after(() => cleanupTempDirs())

async function writeBatch(vol: Volume, rng: Rng, n: number, history: MtrRecord[]): Promise<void> {
  const batch: MtrRecord[] = Array.from({ length: n }, () => ({ mtr: randomMtr(rng, PAGES, PAGE_SIZE), lsn: 0 }))
  await pool(batch, 8, async h => { h.lsn = (await vol.write(h.mtr)).lsn })
  history.push(...batch)
}

/** gossip rounds sent and skipped, and ticks taken at the idle pace, by each segment over `ms` */
async function gossipOver(vol: Volume, ms: number): Promise<Array<{ sent: number; skipped: number; slow: number }>> {
  const a = await vol.segmentStats()
  await new Promise(r => setTimeout(r, ms))
  const b = await vol.segmentStats()
  return b.map((s, i) => ({ sent: s!.gossipSent - a[i]!.gossipSent, skipped: s!.gossipSkipped - a[i]!.gossipSkipped, slow: s!.slowTicks - a[i]!.slowTicks }))
}

test('an idle, converged cluster skips its gossip but for a heartbeat; a segment back from a stop still catches up', async () => {
  await withSeed(FILE, 'quiet', SEED, 0, async rng => {
    const dir = makeTempDir('gossip')
    const vol = await openVolume(smallOptions(dir, { gossipIntervalMs: GOSSIP_MS, scrubIntervalMs: 60_000 }))
    try {
      const history: MtrRecord[] = []
      await writeBatch(vol, rng, 60, history)
      assert.ok(await waitFor(async () => sclsConverged(vol), 5000), 'the six segments converged')
      // Settled: every segment has heard every peer say the same SCLs.
      await new Promise(r => setTimeout(r, 20 * GOSSIP_MS))
      // Then 40 idle ticks (0.4 s at 10 ms) slow each timer to 500 ms: in the next 1.5 s a
      // segment ticks about 3 times (each a heartbeat: 20 gossip periods have passed).
      await new Promise(r => setTimeout(r, 600))
      const idle = await gossipOver(vol, 1500)
      for (const [id, g] of idle.entries()) {
        assert.ok(g.slow >= 2, `segment ${id} ticked at the idle pace (${g.slow} slow ticks in 1.5 s)`)
        assert.ok(g.sent + g.skipped <= 6, `segment ${id}: idle, it took ${g.sent + g.skipped} gossip turns in 1.5 s`)
      }

      // A write moves every SCL: the segments wake and speak again at once.
      const t0 = performance.now()
      await writeBatch(vol, rng, 5, history)
      assert.ok(await waitFor(async () => sclsConverged(vol), 5000), 'converged after the write')
      const woke = performance.now() - t0
      assert.ok(woke < 2000, `the idle segments converged ${Math.round(woke)} ms after the write`)
      const busy = await gossipOver(vol, 200)
      for (const [id, g] of busy.entries()) assert.ok(g.slow === 0 && g.sent + g.skipped >= 5, `segment ${id} ticks at full pace after the write (${g.sent + g.skipped} turns in 200 ms, ${g.slow} slow)`)

      // A segment that missed writes while stopped catches up by gap fill from quiet peers.
      await vol.faults.stopWorker(4)
      await writeBatch(vol, rng, 40, history)
      await new Promise(r => setTimeout(r, 20 * GOSSIP_MS)) // the others settle and go quiet
      await vol.faults.restartWorker(4)
      assert.ok(await waitFor(async () => sclsConverged(vol), 10_000), 'the restarted segment caught up with its quiet peers')
      const st = (await vol.segmentStats())[4]!
      assert.ok(st.gapFillRecords > 0, `segment 4 filled its gap from peers (${st.gapFillRecords} records)`)
      await checkAllPages(vol, modelAt(history, Infinity), PAGES, 'after the catch-up')
    } finally {
      await vol.close()
      rmTempDir(dir)
    }
  })
})

test('idleTickMs: 0 keeps an idle segment at full pace, gossiping only a heartbeat; a negative one is refused', async () => {
  const dir = makeTempDir('gossip-fast')
  await rejectsWith(() => openVolume(smallOptions(dir, { idleTickMs: -1 })), 'HEXAD_BAD_INPUT', /idleTickMs/, 'openVolume({ idleTickMs: -1 })')
  const vol = await openVolume(smallOptions(dir, { gossipIntervalMs: GOSSIP_MS, scrubIntervalMs: 60_000, idleTickMs: 0 }))
  try {
    const rng = new Rng(SEED)
    await writeBatch(vol, rng, 20, [])
    assert.ok(await waitFor(async () => sclsConverged(vol), 5000), 'the six segments converged')
    await new Promise(r => setTimeout(r, 600)) // past the 40 idle ticks that would slow it
    const idle = await gossipOver(vol, 1000)
    for (const [id, g] of idle.entries()) {
      assert.ok(g.slow === 0 && g.sent + g.skipped >= 30, `segment ${id} stayed at full pace (${g.sent + g.skipped} turns in 1 s, ${g.slow} slow)`)
      // About 100 turns at 10 ms: quiet, it sends only a heartbeat every 20 (at most 1 in 10 allowed here).
      assert.ok(g.sent * 10 <= g.sent + g.skipped, `segment ${id}: idle at full pace, it sent ${g.sent} of ${g.sent + g.skipped} gossip rounds`)
    }
  } finally {
    await vol.close()
    rmTempDir(dir)
  }
})

test.run()
