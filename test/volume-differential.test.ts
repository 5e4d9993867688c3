/**
 * Differential tests: random MTRs against the volume and against a plain
 * model, compared byte for byte at the current VDL and at many past read
 * points (invariant 5: lazy materialization is invisible), with small log
 * files so checkpoints and coalescing run underneath, and across a reopen.
 *
 * Replay a failure with HEXAD_SEED=<seed printed on failure>.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { openVolume } from '../engine/index.js'
import {
  assertPage, baseSeed, checkAllPages, cleanupTempDirs, makeTempDir, modelAt, modelsAt, PageModel, pool, randomMtr, Rng,
  rejectsWith, rmTempDir, smallOptions, waitFor, withSeed, type MtrRecord,
} from './helpers/volume-helpers.js'

const FILE = 'volume-differential'
const SEED = baseSeed()
const PAGE_SIZE = 4096
const PAGES = Array.from({ length: 32 }, (_, i) => i) // 8 PGs of 4 pages

test.after(() => cleanupTempDirs())

test('(a) 3000 random MTRs, 8 in flight: every page at many past read points equals the model', async () => {
  await withSeed(FILE, 'a', SEED, 0, async rng => {
    const dir = makeTempDir('diff-a')
    const vol = await openVolume(smallOptions(dir))
    try {
      const pin = vol.pinReadPoint()
      const start = pin.lsn
      const history: MtrRecord[] = Array.from({ length: 3000 }, () => ({ mtr: randomMtr(rng, PAGES, PAGE_SIZE), lsn: 0 }))
      // Reads issued while writes run: verified after the fact, once the LSN order is known.
      const during: Array<{ pageId: number; at: number; image: Uint8Array }> = []
      const acked: number[] = []
      const sideRng = new Rng(rng.seed ^ 0x9e3779b9) // for choices made in completion order, so the MTRs stay replayable
      await pool(history, 8, async (h, i) => {
        const { lsn } = await vol.write(h.mtr)
        assert.ok(Number.isInteger(lsn) && lsn > start, `write #${i} returned lsn ${lsn}, not above the start ${start}`)
        assert.ok(lsn <= vol.vdl, `write #${i} resolved with lsn ${lsn} above the VDL ${vol.vdl}`)
        h.lsn = lsn
        acked.push(lsn)
        if (i % 97 === 0) {
          const at = sideRng.pick(acked)
          const pageId = sideRng.pick(PAGES)
          during.push({ pageId, at, image: await vol.readPage(pageId, { at }) })
        }
      })
      const lsns = history.map(h => h.lsn)
      assert.is(new Set(lsns).size, lsns.length, 'every MTR got its own CPL LSN')

      // Records of one MTR are contiguous, so the MTR ranges [cpl - records + 1, cpl] must not overlap.
      const ranges = history.map(h => [h.lsn - h.mtr.length + 1, h.lsn]).sort((a, b) => a[0] - b[0])
      for (let i = 1; i < ranges.length; i++) assert.ok(ranges[i][0] > ranges[i - 1][1], `MTR LSN ranges overlap: ${ranges[i - 1]} and ${ranges[i]}`)

      const points = [start, vol.vdl, ...rng.sample(lsns, 40), ...during.map(d => d.at)]
      const models = modelsAt(history, points, PAGE_SIZE)

      for (const d of during) assertPage(d.image, models.get(d.at)!.get(d.pageId), `read during writes: page ${d.pageId} at ${d.at}`)
      for (const at of [...new Set(points)]) {
        const m = models.get(at)!
        await checkAllPages(vol, m, PAGES, 'past read point', at)
      }
      // a fresh volume reads all zeros at the pinned start
      for (const p of PAGES) assert.ok(models.get(start)!.get(p).every(b => b === 0))

      const st = (await vol.segmentStats()).filter(s => s !== null)
      assert.is(st.length, 6, 'all six segments answer stats')
      assert.ok(st.some(s => s!.coalesced > 0), 'coalescing ran while the read point was pinned')
      pin.release()
    } finally {
      await vol.close()
      rmTempDir(dir)
    }
  })
})

test('(b) without pins: current reads equal the model, checkpoints collect log files, chains coalesce', async () => {
  await withSeed(FILE, 'b', SEED, 1, async rng => {
    const dir = makeTempDir('diff-b')
    const vol = await openVolume(smallOptions(dir))
    try {
      const model = new PageModel(PAGE_SIZE)
      const history: MtrRecord[] = []
      const firstVdl = vol.vdl
      let round = 0
      // Each segment folds its log and collects page versions; a page file that is left less than half
      // live is compacted. Whether a given segment's files ever fall below half depends on where its
      // folds cut them (a file whose versions all die is deleted without compaction), so compaction is
      // asked of the volume, not of every segment (storage-pages tests it deterministically), and
      // every segment's page store must stay bounded while the rounds write far more than it holds.
      const done = async () => {
        const st = await vol.segmentStats()
        return st.every(s => s !== null && s.gcLogFiles > 0 && s.coalesced > 0) && st.some(s => s!.compactedPageFiles > 0)
      }
      let storeMax = 0
      for (; round < 20; round++) {
        const batch: MtrRecord[] = Array.from({ length: 400 }, () => ({ mtr: randomMtr(rng, PAGES, PAGE_SIZE, { maxLen: 2048 }), lsn: 0 }))
        await pool(batch, 8, async h => { h.lsn = (await vol.write(h.mtr)).lsn })
        history.push(...batch)
        for (const h of [...batch].sort((a, b) => a.lsn - b.lsn)) model.applyMtr(h.mtr)
        await checkAllPages(vol, model, PAGES, `after round ${round}`)
        for (const s of await vol.segmentStats()) storeMax = Math.max(storeMax, s?.pageStoreBytes ?? 0)
        if (round >= 3 && await waitFor(done, 500)) break
      }
      // Segments take turns to fold; on a loaded machine the last may need longer than a round's wait.
      await waitFor(done, 10_000)
      const stats = await vol.segmentStats()
      const opts = smallOptions(dir)
      for (const s of stats) {
        assert.ok(s, 'segment answers stats')
        assert.ok(s!.gcLogFiles > 0, `segment ${s!.id}: a checkpoint collected log files (gcLogFiles ${s!.gcLogFiles}, logFiles ${s!.logFiles}, live ${s!.logBytesLive})`)
        assert.ok(s!.coalesced > 0, `segment ${s!.id}: page chains were coalesced (coalesced ${s!.coalesced})`)
        assert.ok(s!.gcVersions > 0, `segment ${s!.id}: page versions were collected (${s!.gcVersions})`)
        assert.is(s!.corruptFrames, 0, `segment ${s!.id}: no corrupt frames`)
      }
      const compacted = stats.map(s => s!.compactedPageFiles)
      assert.ok(compacted.some(n => n > 0), `a segment compacted page-version files (${compacted.join(', ')})`)
      // 32 pages of 4 KiB: a few page files' worth, however many rounds ran (each round builds several times that).
      assert.ok(storeMax <= 6 * opts.logFileBytes!, `page stores stayed bounded: at most ${storeMax} B after ${round + 1} rounds`)
      // Everything still reads correctly after the log it came from is gone.
      await checkAllPages(vol, model, PAGES, 'after checkpoints')
      // The state before the first write is no longer retained: reading it is refused, not answered wrongly.
      assert.ok(vol.vdl > firstVdl)
      await rejectsWith(vol.readPage(0, { at: firstVdl }), 'HEXAD_BAD_INPUT', /older than the oldest retained|below|horizon/, 'read below the retained horizon')
    } finally {
      await vol.close()
      rmTempDir(dir)
    }
  })
})

test('(c) close and reopen: every page equals the model, twice, with writes in between', async () => {
  await withSeed(FILE, 'c', SEED, 2, async rng => {
    const dir = makeTempDir('diff-c')
    const history: MtrRecord[] = []
    let lastLsn = 0
    try {
      for (let open = 0; open < 3; open++) {
        const vol = await openVolume(smallOptions(dir))
        try {
          assert.ok(vol.vdl >= lastLsn, `open #${open}: recovered VDL ${vol.vdl} is below the last acknowledged LSN ${lastLsn}`)
          const expected = modelAt(history, Infinity, PAGE_SIZE)
          await checkAllPages(vol, expected, PAGES, `after reopen #${open}`)
          // pages past the written range stay zero
          assertPage(await vol.readPage(1000), new Uint8Array(PAGE_SIZE), `open #${open}: page never written`)
          const batch: MtrRecord[] = Array.from({ length: 600 }, () => ({ mtr: randomMtr(rng, PAGES, PAGE_SIZE, { maxLen: 2048 }), lsn: 0 }))
          await pool(batch, 8, async h => {
            h.lsn = (await vol.write(h.mtr)).lsn
            assert.ok(h.lsn > lastLsn, `open #${open}: LSN ${h.lsn} not above the previous open's ${lastLsn}`)
          })
          history.push(...batch)
          await checkAllPages(vol, modelAt(history, Infinity, PAGE_SIZE), PAGES, `before close #${open}`)
          lastLsn = Math.max(...batch.map(h => h.lsn))
        } finally {
          await vol.close()
        }
      }
    } finally {
      rmTempDir(dir)
    }
  })
})

test('(d) a read point pinned before a checkpoint keeps reading its own state while checkpoints run (invariant 5)', async () => {
  await withSeed(FILE, 'd', SEED, 3, async rng => {
    const dir = makeTempDir('diff-d')
    const vol = await openVolume(smallOptions(dir))
    try {
      const history: MtrRecord[] = []
      const batch = async (n: number) => {
        const b: MtrRecord[] = Array.from({ length: n }, () => ({ mtr: randomMtr(rng, PAGES, PAGE_SIZE, { maxLen: 2048 }), lsn: 0 }))
        await pool(b, 8, async h => { h.lsn = (await vol.write(h.mtr)).lsn })
        history.push(...b)
      }
      // Fill each segment's first log file, but not enough live log for a checkpoint yet: the pinned
      // point then lies past a whole log file that the first checkpoint may delete.
      for (let i = 0; i < 40; i++) {
        if ((await vol.segmentStats()).every(s => s !== null && s.logFiles >= 2)) break
        await batch(20)
      }
      const st0 = await vol.segmentStats()
      assert.ok(st0.every(s => s !== null && s.logFiles >= 2), `setup: every segment rolled to a second log file (logFiles ${st0.map(s => s?.logFiles)})`)

      const pin = vol.pinReadPoint()
      const pinned = modelAt(history, pin.lsn, PAGE_SIZE)
      await checkAllPages(vol, pinned, PAGES, 'pinned point right after pinning', pin.lsn)
      for (let round = 0; round < 5; round++) {
        await batch(300)
        const st = await vol.segmentStats()
        await checkAllPages(vol, pinned, PAGES, `pinned point after ${round + 1} more rounds of writes (gcLogFiles ${st.map(s => s?.gcLogFiles)})`, pin.lsn)
        await checkAllPages(vol, modelAt(history, Infinity, PAGE_SIZE), PAGES, `current state after ${round + 1} more rounds`)
      }
      pin.release()
    } finally {
      await vol.close()
      rmTempDir(dir)
    }
  })
})

test.run()
