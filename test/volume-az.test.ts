/**
 * Availability-zone faults: with one AZ down the volume writes and reads;
 * with a third segment of the group down a write fails with
 * HEXAD_QUORUM_LOST (and stays all-or-nothing), reads of durable state still
 * answer; restarted segments catch up by gap fill (invariant 8) and the data
 * equals the model (invariant 1).
 *
 * Replay a failure with HEXAD_SEED=<seed printed on failure>.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { openVolume, type Volume, type PageWrite } from '../engine/index.js'
import {
  baseSeed, checkAllPages, cleanupTempDirs, makeTempDir, modelAt, PageModel, pagesEqual, pool, randomMtr, rejectsWith,
  rmTempDir, sclsConverged, smallOptions, waitFor, withSeed, type MtrRecord, type Rng,
} from './helpers/volume-helpers.js'

const FILE = 'volume-az'
const SEED = baseSeed()
const PAGE_SIZE = 4096
const PAGES = Array.from({ length: 32 }, (_, i) => i)
const QUORUM_TIMEOUT_MS = 1500

test.after(() => cleanupTempDirs())

async function writeBatch(vol: Volume, rng: Rng, n: number, history: MtrRecord[]): Promise<void> {
  const batch: MtrRecord[] = Array.from({ length: n }, () => ({ mtr: randomMtr(rng, PAGES, PAGE_SIZE), lsn: 0 }))
  await pool(batch, 8, async h => { h.lsn = (await vol.write(h.mtr)).lsn })
  history.push(...batch)
}

/** Waits until every segment is up and at the highest SCL of every PG; fails with the SCLs seen. */
async function assertConverged(vol: Volume, what: string, timeoutMs = 15_000): Promise<void> {
  const ok = await waitFor(() => sclsConverged(vol), timeoutMs)
  const view = vol.stats().segments.map(s => `seg ${s.id} up=${s.up} scl=${s.scl} pg=${JSON.stringify(s.pgScl)}`).join('\n')
  assert.ok(ok, `${what}: segments did not converge within ${timeoutMs} ms\n${view}`)
  // The workers' own view agrees: every segment holds the same SCL for every PG.
  const ok2 = await waitFor(async () => {
    const st = await vol.segmentStats()
    if (st.some(s => s === null)) return false
    const key = (s: NonNullable<typeof st[number]>) => JSON.stringify([...s.pgScl].sort((a, b) => a[0] - b[0]))
    return st.every(s => key(s!) === key(st[0]!))
  }, timeoutMs)
  assert.ok(ok2, `${what}: segment workers report different per-PG SCLs: ${JSON.stringify((await vol.segmentStats()).map(s => s?.pgScl))}`)
}

test('one AZ down: writes succeed and reads answer; the AZ catches up by gap fill after restart', async () => {
  await withSeed(FILE, 'one-az', SEED, 0, async rng => {
    const dir = makeTempDir('az-one')
    const vol = await openVolume(smallOptions(dir, { quorumTimeoutMs: QUORUM_TIMEOUT_MS }))
    try {
      const history: MtrRecord[] = []
      await writeBatch(vol, rng, 200, history)
      const az = rng.int(0, 2)
      await vol.faults.stopAZ(az)
      const down = [az * 2, az * 2 + 1]
      const view = vol.stats().segments
      for (const id of down) assert.is(view[id].up, false, `segment ${id} reported down`)
      assert.is(view.filter(s => s.up).length, 4)
      const st = await vol.segmentStats()
      for (const id of down) assert.is(st[id], null, `segmentStats of stopped segment ${id} is null`)

      const vdlBefore = vol.vdl
      await writeBatch(vol, rng, 300, history)
      assert.ok(vol.vdl > vdlBefore, 'the VDL moves with one AZ down')
      await checkAllPages(vol, modelAt(history, Infinity), PAGES, `AZ ${az} down`)

      await vol.faults.restartAZ(az)
      await assertConverged(vol, `after restarting AZ ${az}`)
      const after = await vol.segmentStats()
      for (const id of down) {
        assert.ok(after[id], `segment ${id} answers after restart`)
        assert.ok(after[id]!.gapFillRecords > 0, `segment ${id} filled the records it missed from peers (gapFillRecords ${after[id]!.gapFillRecords})`)
      }
      // Stop the other AZs one at a time, so the restarted AZ has to count toward the quorum and serve.
      for (const other of [0, 1, 2].filter(a => a !== az)) {
        await vol.faults.stopAZ(other)
        await writeBatch(vol, rng, 100, history)
        await checkAllPages(vol, modelAt(history, Infinity), PAGES, `AZ ${other} down after AZ ${az} came back`)
        await vol.faults.restartAZ(other)
        await assertConverged(vol, `after restarting AZ ${other}`)
      }
      await checkAllPages(vol, modelAt(history, Infinity), PAGES, 'all AZs back')
    } finally {
      await vol.close()
      rmTempDir(dir)
    }
  })
})

test('a third segment down: write → HEXAD_QUORUM_LOST, durable reads answer, restart converges, the failed MTR is all-or-nothing', async () => {
  await withSeed(FILE, 'quorum-lost', SEED, 1, async rng => {
    const dir = makeTempDir('az-quorum')
    let vol = await openVolume(smallOptions(dir, { quorumTimeoutMs: QUORUM_TIMEOUT_MS }))
    try {
      const history: MtrRecord[] = []
      await writeBatch(vol, rng, 150, history)
      await vol.faults.stopAZ(0)
      await writeBatch(vol, rng, 150, history)
      await vol.faults.stopWorker(2)
      assert.is(vol.stats().segments.filter(s => s.up).length, 3)

      // One MTR over four PGs; every record carries a marker the model knows.
      const failed: PageWrite[] = [0, 5, 10, 31].map(pageId => ({ pageId, ops: [{ op: 'fill', offset: 100, len: 200, byte: 0xee }, { op: 'write', offset: 4000, bytes: rng.bytes(96) }] }))
      const vdlBefore = vol.vdl
      await rejectsWith(vol.write(failed), 'HEXAD_QUORUM_LOST', /4 of 6|quorum/i, 'write with 3 of 6 segments up')
      assert.is(vol.vdl, vdlBefore, 'the VDL did not move while only 3 segments were up')

      // Reads of durable state still answer (no quorum needed), including pages the failed MTR touched.
      const durable = modelAt(history, Infinity)
      await checkAllPages(vol, durable, PAGES, 'with 3 segments up')

      // Bring everyone back: restarted segments catch up by gap fill, new writes succeed.
      await vol.faults.restartAZ(0)
      await vol.faults.restartWorker(2)
      await assertConverged(vol, 'after restarting AZ 0 and segment 2')
      const st = await vol.segmentStats()
      assert.ok([0, 1, 2].some(id => st[id]!.gapFillRecords > 0), `restarted segments filled gaps (gapFillRecords ${[0, 1, 2].map(id => st[id]!.gapFillRecords)})`)

      await writeBatch(vol, rng, 100, history)

      // The failed MTR may have become durable after all (it stayed queued), but only as a whole.
      const lsnOfFailed = Math.max(...history.filter(h => h.lsn <= vdlBefore).map(h => h.lsn)) + 0.5 // sorts right after the last durable MTR
      const checkAllOrNothing = async (what: string): Promise<'with' | 'without'> => {
        const without = modelAt(history, Infinity)
        const withIt = modelAt([...history, { mtr: failed, lsn: lsnOfFailed }], Infinity)
        const got = await Promise.all(PAGES.map(p => vol.readPage(p)))
        const matchesWith = PAGES.every((p, i) => pagesEqual(got[i], withIt.get(p)))
        const matchesWithout = PAGES.every((p, i) => pagesEqual(got[i], without.get(p)))
        if (!matchesWith && !matchesWithout) {
          const per = PAGES.map((p, i) => `${p}:${pagesEqual(got[i], withIt.get(p)) ? 'with' : pagesEqual(got[i], without.get(p)) ? 'without' : 'neither'}`)
          assert.unreachable(`${what}: pages match neither the model with the failed MTR nor the one without it: ${per.join(' ')}`)
        }
        return matchesWith ? 'with' : 'without'
      }
      const first = await checkAllOrNothing('after restart and new writes')

      // And across a reopen the outcome stays the same (what was read as durable stays durable).
      await vol.close()
      vol = await openVolume(smallOptions(dir, { quorumTimeoutMs: QUORUM_TIMEOUT_MS }))
      const second = await checkAllOrNothing('after reopen')
      assert.is(second, first, `the failed MTR was ${first === 'with' ? 'present' : 'absent'} before the reopen and ${second === 'with' ? 'present' : 'absent'} after`)
      await writeBatch(vol, rng, 50, history)
      await checkAllOrNothing('after reopen and more writes')
    } finally {
      await vol.close()
      rmTempDir(dir)
    }
  })
})

test('random rolling faults: one segment or one AZ down at a time, writes never fail, data equals the model', async () => {
  await withSeed(FILE, 'rolling', SEED, 2, async rng => {
    const dir = makeTempDir('az-rolling')
    const vol = await openVolume(smallOptions(dir, { quorumTimeoutMs: 10_000 }))
    try {
      const history: MtrRecord[] = []
      const pin = vol.pinReadPoint()
      const points: number[] = [pin.lsn]
      for (let step = 0; step < 8; step++) {
        const az = rng.bool(0.5) ? rng.int(0, 2) : -1
        const seg = az < 0 ? rng.int(0, 5) : -1
        if (az >= 0) await vol.faults.stopAZ(az); else await vol.faults.stopWorker(seg)
        await writeBatch(vol, rng, 80, history)
        points.push(vol.vdl)
        await checkAllPages(vol, modelAt(history, Infinity), PAGES, `step ${step} (${az >= 0 ? `AZ ${az}` : `segment ${seg}`} down)`)
        if (az >= 0) await vol.faults.restartAZ(az); else await vol.faults.restartWorker(seg)
      }
      await assertConverged(vol, 'after rolling faults')
      for (const at of points) await checkAllPages(vol, modelAt(history, at), PAGES, 'past read point after rolling faults', at)
      // With every segment caught up, each one alone serves the latest state (stop the other five in turn).
      const model = modelAt(history, Infinity)
      for (const keep of [rng.int(0, 5)]) {
        const others = [0, 1, 2, 3, 4, 5].filter(i => i !== keep)
        for (const o of others) await vol.faults.stopWorker(o)
        await checkAllPages(vol, model, PAGES, `segment ${keep} alone`)
        for (const o of others) await vol.faults.restartWorker(o)
      }
      pin.release()
    } finally {
      await vol.close()
      rmTempDir(dir)
    }
  })
})

test('fault controls reject bad ids with HEXAD_BAD_INPUT and the volume stays usable', async () => {
  const dir = makeTempDir('az-bad')
  const vol = await openVolume(smallOptions(dir))
  try {
    for (const id of [-1, 6, 1.5, NaN, Infinity, '1' as unknown as number, undefined as unknown as number]) {
      await rejectsWith(() => vol.faults.stopWorker(id), 'HEXAD_BAD_INPUT', /segment id/, `stopWorker(${String(id)})`)
      await rejectsWith(() => vol.faults.restartWorker(id), 'HEXAD_BAD_INPUT', /segment id/, `restartWorker(${String(id)})`)
    }
    for (const az of [-1, 3, 0.5, NaN]) {
      await rejectsWith(() => vol.faults.stopAZ(az), 'HEXAD_BAD_INPUT', /availability zone/, `stopAZ(${az})`)
      await rejectsWith(() => vol.faults.restartAZ(az), 'HEXAD_BAD_INPUT', /availability zone/, `restartAZ(${az})`)
    }
    assert.is(vol.stats().segments.filter(s => s.up).length, 6, 'no segment was stopped by a bad call')
    const m = new PageModel()
    const mtr: PageWrite[] = [{ pageId: 3, ops: [{ op: 'fill', offset: 0, len: 10, byte: 7 }] }]
    await vol.write(mtr)
    m.applyMtr(mtr)
    await checkAllPages(vol, m, [3], 'after bad fault calls')
  } finally {
    await vol.close()
    rmTempDir(dir)
  }
})

test.run()
