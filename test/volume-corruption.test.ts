/**
 * Corrupt files (invariant 7: a checksum that fails is repaired from peers,
 * never returned; invariant 10: corrupt files get a clear error).
 *
 * Each test writes data, closes the volume, damages files of one segment on
 * disk (flipped bytes inside log frames, inside page versions, garbage after
 * the last frame, a torn last frame), reopens and checks that every page
 * read equals the model, that the damage shows in the counters, and, where
 * the segment can repair itself from peers, that it does.
 *
 * Replay a failure with HEXAD_SEED=<seed printed on failure>.
 */
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { HexadError, openVolume, type Volume, type VolumeOptions } from '../engine/index.js'
import {
  baseSeed, checkAllPages, cleanupTempDirs, flipByte, FRAME_HEADER, listFrames, listVersions, logFiles, makeTempDir,
  modelAt, PageModel, pageFiles, pagesEqual, pool, randomMtr, rejectsWith, rmTempDir, sclsConverged, segmentDir, smallOptions,
  VERSION_HEADER, waitFor, withSeed, type MtrRecord, type Rng,
} from './helpers/volume-helpers.js'

const FILE = 'volume-corruption'
const SEED = baseSeed()
const PAGE_SIZE = 4096
const PAGES = Array.from({ length: 32 }, (_, i) => i)

test.after(() => cleanupTempDirs())

/** No checkpoints: every record stays in every segment's log, so peers can always fill gaps. */
const keepLog = (dir: string) => smallOptions(dir, { checkpointLogBytes: 256 << 20 })

async function writeBatch(vol: Volume, rng: Rng, n: number, history: MtrRecord[], maxLen = 1024): Promise<void> {
  const batch: MtrRecord[] = Array.from({ length: n }, () => ({ mtr: randomMtr(rng, PAGES, PAGE_SIZE, { maxLen }), lsn: 0 }))
  await pool(batch, 8, async h => { h.lsn = (await vol.write(h.mtr)).lsn })
  history.push(...batch)
}

const COLD = PAGES.slice(0, 16)
const HOT = PAGES.slice(16)

/**
 * Writes `mtrs` MTRs over every page, then closes; returns the history. With
 * `fold`, it then keeps writing to the hot half of the pages only, until
 * every segment has checkpointed past all of the first phase: the cold pages
 * then live only in page versions (their records are folded and their log
 * files deleted), so a damaged version cannot be rebuilt from the local log.
 */
async function populate(opts: VolumeOptions, rng: Rng, mtrs: number, fold = false): Promise<MtrRecord[]> {
  const history: MtrRecord[] = []
  const vol = await openVolume(opts)
  try {
    await writeBatch(vol, rng, mtrs, history, fold ? 2048 : 1024)
    if (fold) {
      const first = await vol.segmentStats()
      const filesOfPhase1 = first.map(s => s!.logFiles + s!.gcLogFiles)
      const done = async () => (await vol.segmentStats()).every((s, i) => s !== null && s.gcLogFiles >= filesOfPhase1[i])
      for (let i = 0; i < 20 && !(await done()); i++) {
        const batch: MtrRecord[] = Array.from({ length: 200 }, () => ({ mtr: randomMtr(rng, HOT, PAGE_SIZE, { maxLen: 2048 }), lsn: 0 }))
        await pool(batch, 8, async h => { h.lsn = (await vol.write(h.mtr)).lsn })
        history.push(...batch)
        await waitFor(done, 300)
      }
      const st = await vol.segmentStats()
      assert.ok(await done(), `setup: every segment checkpointed past the first phase (gcLogFiles ${st.map(s => s?.gcLogFiles)}, needed ${filesOfPhase1})`)
    }
    await checkAllPages(vol, modelAt(history, Infinity), PAGES, 'setup before close')
  } finally {
    await vol.close()
  }
  return history
}

async function waitConverged(vol: Volume, what: string, timeoutMs = 15_000): Promise<void> {
  const ok = await waitFor(() => sclsConverged(vol), timeoutMs)
  assert.ok(ok, `${what}: segments did not converge within ${timeoutMs} ms: ${JSON.stringify(vol.stats().segments.map(s => [s.id, s.up, s.pgScl]))}`)
}

/** Stops every segment but `keep`, runs fn, restarts them. */
async function alone(vol: Volume, keep: number, fn: () => Promise<void>): Promise<void> {
  const others = [0, 1, 2, 3, 4, 5].filter(i => i !== keep)
  for (const o of others) await vol.faults.stopWorker(o)
  try {
    await fn()
  } finally {
    for (const o of others) await vol.faults.restartWorker(o)
  }
}

/**
 * Reads every page from whatever serves it; each read must equal the model
 * or fail with a HexadError (a segment that cannot serve correctly must not
 * answer). Returns how many reads failed.
 */
async function readCorrectOrFail(vol: Volume, model: PageModel, what: string): Promise<number> {
  let failed = 0
  const got = await Promise.all(PAGES.map(p => vol.readPage(p).then(b => b, (e: unknown) => e)))
  PAGES.forEach((p, i) => {
    const g = got[i]
    if (g instanceof Uint8Array) {
      assert.ok(pagesEqual(g, model.get(p)), `${what}: page ${p} was served with wrong content (a damaged or incomplete page was returned)`)
    } else {
      assert.ok(g instanceof HexadError, `${what}: page ${p}: expected a HexadError, got ${String(g)}`)
      failed++
    }
  })
  return failed
}

test('flipped bytes inside one segment\'s log frames: reads stay correct, the segment repairs by gap fill', async () => {
  await withSeed(FILE, 'log-frames', SEED, 0, async rng => {
    const dir = makeTempDir('corrupt-log')
    try {
      const history = await populate(keepLog(dir), rng, 600)
      const model = modelAt(history, Infinity)
      const x = rng.int(0, 5)
      const files = logFiles(dir, x)
      // Damage frames that have intact frames after them (a damaged last frame is a torn tail: its own test).
      let damaged = 0
      for (const f of files) {
        const frames = listFrames(fs.readFileSync(f))
        const candidates = frames.slice(0, -1)
        for (const fr of rng.sample(candidates, 2)) {
          const inPayload = rng.bool(0.7)
          const off = inPayload ? fr.off + FRAME_HEADER + rng.int(0, fr.len - FRAME_HEADER - 1) : fr.off + rng.int(0, FRAME_HEADER - 1)
          flipByte(f, off, rng.int(1, 255))
          damaged++
        }
      }
      assert.ok(damaged >= 2, `setup: damaged ${damaged} frames in segment ${x} (${files.length} log files)`)

      const vol = await openVolume(keepLog(dir))
      try {
        const st = (await vol.segmentStats())[x]!
        assert.ok(st.corruptFrames > 0, `segment ${x} counted corrupt frames (${st.corruptFrames}, damaged ${damaged})`)
        for (let round = 0; round < 3; round++) await checkAllPages(vol, model, PAGES, `round ${round} after reopen`)
        await waitConverged(vol, 'after reopen')
        const st2 = (await vol.segmentStats())[x]!
        assert.ok(st2.gapFillRecords > 0, `segment ${x} filled the damaged frames' records from peers (gapFillRecords ${st2.gapFillRecords})`)
        // Repaired: the damaged segment alone serves every page correctly.
        await alone(vol, x, () => checkAllPages(vol, model, PAGES, `segment ${x} alone after repair`))
        await writeBatch(vol, rng, 50, history)
        await checkAllPages(vol, modelAt(history, Infinity), PAGES, 'after new writes')
      } finally {
        await vol.close()
      }
      // The repair is durable: reopen again, and the damaged segment still serves alone.
      const vol2 = await openVolume(keepLog(dir))
      try {
        await waitConverged(vol2, 'second reopen')
        await alone(vol2, x, () => checkAllPages(vol2, modelAt(history, Infinity), PAGES, `segment ${x} alone after second reopen`))
      } finally {
        await vol2.close()
      }
    } finally {
      rmTempDir(dir)
    }
  })
})

interface StoredVersion { pageId: number; lsn: number; file: string; off: number; len: number }

function storedVersions(dir: string, x: number): StoredVersion[] {
  const out: StoredVersion[] = []
  for (const f of pageFiles(dir, x)) for (const v of listVersions(fs.readFileSync(f))) out.push({ ...v, file: f })
  return out
}

/**
 * Flips one byte in the body, or in the header's page id / LSN fields (which
 * the header checksum covers), of the given stored versions.
 */
function damage(rng: Rng, versions: StoredVersion[], where: 'body' | 'header'): void {
  for (const v of versions) {
    const off = where === 'body' ? v.off + VERSION_HEADER + rng.int(0, v.len - VERSION_HEADER - 1) : v.off + rng.int(8, 23)
    flipByte(v.file, off, rng.int(1, 255))
  }
}

/** The newest stored version of each of `pages` (the one a segment reads for the current state). */
function newestOf(all: StoredVersion[], pages: number[]): StoredVersion[] {
  return pages.map(p => all.filter(v => v.pageId === p).sort((a, b) => b.lsn - a.lsn)[0]).filter(v => v !== undefined)
}

/** Versions tests: a short read timeout, since a segment left alone must refuse (time out) rather than answer wrong. */
const foldOpts = (dir: string) => smallOptions(dir, { readTimeoutMs: 1500 })

test('flipped bytes inside one segment\'s page versions: every read with peers up equals the model and the fault shows', async () => {
  await withSeed(FILE, 'versions-peers', SEED, 1, async rng => {
    const dir = makeTempDir('corrupt-pv')
    try {
      const history = await populate(foldOpts(dir), rng, 300, true)
      const model = modelAt(history, Infinity)
      const x = rng.int(0, 5)
      const all = storedVersions(dir, x)
      // every stored version of two cold pages, and the newest of three more (cold or hot)
      const [a, b, ...rest] = rng.sample(COLD, 16)
      const whole = all.filter(v => v.pageId === a || v.pageId === b)
      const newest = newestOf(all, [...rest.slice(0, 2), rng.pick(HOT)])
      assert.ok(whole.length > 0 && newest.length > 0, `setup: segment ${x} has versions of pages ${a}, ${b} to damage`)
      damage(rng, [...whole, ...newest], 'body')
      const vol = await openVolume(foldOpts(dir))
      try {
        for (let round = 0; round < 3; round++) await checkAllPages(vol, model, PAGES, `round ${round} after reopen`)
        // Make sure the damaged segment is asked: keep it and one peer, so a refusal is re-routed to the peer.
        const y = (x + 2) % 6
        const others = [0, 1, 2, 3, 4, 5].filter(i => i !== x && i !== y)
        for (const o of others) await vol.faults.stopWorker(o)
        try {
          for (let round = 0; round < 4; round++) await checkAllPages(vol, model, PAGES, `round ${round} with only segments ${x} and ${y} up`)
        } finally {
          for (const o of others) await vol.faults.restartWorker(o)
        }
        const st = (await vol.segmentStats())[x]!
        const readErrors = vol.stats().segments[x].readErrors
        assert.ok(st.corruptVersions > 0 || readErrors > 0, `the damage shows: segment ${x} corruptVersions ${st.corruptVersions}, readErrors ${readErrors}`)
        for (let round = 0; round < 2; round++) await checkAllPages(vol, model, PAGES, `round ${round} with all segments back`)
      } finally {
        await vol.close()
      }
    } finally {
      rmTempDir(dir)
    }
  })
})

test('a page version that fails its checksum is never served, even by a segment left alone', async () => {
  await withSeed(FILE, 'versions-alone', SEED, 2, async rng => {
    const dir = makeTempDir('corrupt-pv-alone')
    try {
      const history = await populate(foldOpts(dir), rng, 300, true)
      const model = modelAt(history, Infinity)
      const x = rng.int(0, 5)
      const all = storedVersions(dir, x)
      const pages = rng.sample(COLD, 3)
      // Only the newest version of each: older (collected) entries are still in the file, intact but stale.
      const victims = newestOf(all, pages)
      assert.is(victims.length, pages.length, `setup: segment ${x} has a version of pages ${pages}`)
      damage(rng, victims, 'body')
      const vol = await openVolume(foldOpts(dir))
      try {
        await waitConverged(vol, 'after reopen')
        // Alone, the segment has no peer to repair from: each read is right or refused, twice over
        // (the second round is what a segment answers after it has noticed the damage).
        await alone(vol, x, async () => {
          await readCorrectOrFail(vol, model, `segment ${x} alone, first round (damaged newest versions of pages ${pages})`)
          await readCorrectOrFail(vol, model, `segment ${x} alone, second round (damaged newest versions of pages ${pages})`)
        })
        const st = (await vol.segmentStats())[x]
        assert.ok((st?.corruptVersions ?? 0) > 0 || vol.stats().segments[x].readErrors > 0, 'the damage shows in the counters')
        for (let round = 0; round < 2; round++) await checkAllPages(vol, model, PAGES, `round ${round} with peers back`)
      } finally {
        await vol.close()
      }
    } finally {
      rmTempDir(dir)
    }
  })
})

test('a page version that fails its checksum is repaired from peers (invariant 7)', async () => {
  await withSeed(FILE, 'versions-repair', SEED, 3, async rng => {
    const dir = makeTempDir('corrupt-pv-repair')
    try {
      const history = await populate(foldOpts(dir), rng, 300, true)
      const model = modelAt(history, Infinity)
      const x = rng.int(0, 5)
      const pages = rng.sample(COLD, 2)
      damage(rng, storedVersions(dir, x).filter(v => pages.includes(v.pageId)), 'body')
      const vol = await openVolume(foldOpts(dir))
      try {
        await waitConverged(vol, 'after reopen')
        // Let the segment find the damage (reads of those pages from it alone), then give it its peers back.
        await alone(vol, x, async () => { await readCorrectOrFail(vol, model, `segment ${x} alone, finding the damage in pages ${pages}`) })
        const noticed = (await vol.segmentStats())[x]!.corruptVersions + vol.stats().segments[x].readErrors
        assert.ok(noticed > 0, `segment ${x} noticed the damaged versions of pages ${pages}`)
        let repaired = false
        let last = ''
        for (let attempt = 0; attempt < 3 && !repaired; attempt++) {
          await waitConverged(vol, `attempt ${attempt}`)
          await new Promise(r => setTimeout(r, 500))
          await alone(vol, x, async () => {
            const got = await Promise.all(pages.map(p => vol.readPage(p).then(b => b, (e: unknown) => e)))
            repaired = got.every((g, i) => g instanceof Uint8Array && pagesEqual(g, model.get(pages[i])))
            last = got.map((g, i) => `page ${pages[i]}: ${g instanceof Uint8Array ? (pagesEqual(g, model.get(pages[i])) ? 'correct' : 'WRONG') : (g as Error).message}`).join('; ')
          })
        }
        assert.ok(repaired, `segment ${x} never got intact copies of the damaged pages back from its peers: ${last}`)
      } finally {
        await vol.close()
      }
    } finally {
      rmTempDir(dir)
    }
  })
})

test('a page version whose header is damaged is not silently dropped: never served wrong, and the fault shows', async () => {
  await withSeed(FILE, 'version-header', SEED, 4, async rng => {
    const dir = makeTempDir('corrupt-pv-header')
    try {
      const history = await populate(foldOpts(dir), rng, 300, true)
      const model = modelAt(history, Infinity)
      const x = rng.int(0, 5)
      const pages = rng.sample(COLD, 2)
      const victims = newestOf(storedVersions(dir, x), pages)
      assert.is(victims.length, pages.length, `setup: segment ${x} has a version of pages ${pages}`)
      damage(rng, victims, 'header')
      const vol = await openVolume(foldOpts(dir))
      try {
        await waitConverged(vol, 'after reopen')
        await alone(vol, x, async () => {
          await readCorrectOrFail(vol, model, `segment ${x} alone (damaged headers of the newest versions of pages ${pages})`)
        })
        const st = (await vol.segmentStats())[x]
        assert.ok((st?.corruptVersions ?? 0) > 0 || vol.stats().segments[x].readErrors > 0,
          `the damage shows in the counters (corruptVersions ${st?.corruptVersions}, readErrors ${vol.stats().segments[x].readErrors})`)
        for (let round = 0; round < 2; round++) await checkAllPages(vol, model, PAGES, `round ${round} with peers back`)
      } finally {
        await vol.close()
      }
    } finally {
      rmTempDir(dir)
    }
  })
})

test('a corrupt segment meta file: the segment never serves wrong data and catches up from its peers (invariant 8)', async () => {
  await withSeed(FILE, 'segment-meta', SEED, 5, async rng => {
    const dir = makeTempDir('corrupt-segmeta')
    try {
      const history = await populate(foldOpts(dir), rng, 300, true)
      const x = rng.int(0, 5)
      const metaPath = path.join(segmentDir(dir, x), 'meta')
      const size = fs.statSync(metaPath).size
      flipByte(metaPath, rng.int(12, size - 1), rng.int(1, 255))
      const vol = await openVolume(foldOpts(dir))
      try {
        // The damaged copy is reported; the second copy (meta.2) keeps the segment whole.
        assert.ok((await vol.segmentStats())[x]!.metaCorrupt > 0, `segment ${x} reports its damaged meta file`)
        await checkAllPages(vol, modelAt(history, Infinity), PAGES, 'after reopen')
        await writeBatch(vol, rng, 100, history)
        const model = modelAt(history, Infinity)
        await checkAllPages(vol, model, PAGES, 'after new writes')
        // Safety first: alone, the segment answers correctly or refuses.
        await alone(vol, x, async () => { await readCorrectOrFail(vol, model, `segment ${x} alone with a corrupt meta`) })
        // Then liveness: with its peers it catches up and holds every PG again.
        await waitConverged(vol, `segment ${x} with a corrupt meta file`, 10_000)
        await alone(vol, x, () => checkAllPages(vol, model, PAGES, `segment ${x} alone after catching up`))
      } finally {
        await vol.close()
      }
    } finally {
      rmTempDir(dir)
    }
  })
})

test('torn tail: garbage after the last frame of one segment\'s newest log file', async () => {
  await withSeed(FILE, 'torn-garbage', SEED, 6, async rng => {
    const dir = makeTempDir('torn-garbage')
    try {
      const history = await populate(keepLog(dir), rng, 300)
      const x = rng.int(0, 5)
      const files = logFiles(dir, x)
      const newest = files[files.length - 1]
      const frames = listFrames(fs.readFileSync(newest))
      const end = frames.length ? frames[frames.length - 1].off + frames[frames.length - 1].len : 0
      const garbage = Buffer.from(rng.bytes(rng.int(40, 3000)))
      garbage[0] = garbage[0] || 0x7f // not a zero header
      const fd = fs.openSync(newest, 'r+')
      fs.writeSync(fd, garbage, 0, garbage.length, end)
      fs.closeSync(fd)

      const vol = await openVolume(keepLog(dir))
      try {
        const st = (await vol.segmentStats())[x]!
        assert.ok(st.tornTailBytes > 0, `segment ${x} cut a torn tail (tornTailBytes ${st.tornTailBytes}, garbage ${garbage.length} bytes at ${end})`)
        assert.is(st.corruptFrames, 0, 'garbage after the last frame is a torn tail, not a corrupt frame')
        await checkAllPages(vol, modelAt(history, Infinity), PAGES, 'after reopen')
        // No frame was lost: the segment alone serves everything, without waiting for gap fill.
        await alone(vol, x, () => checkAllPages(vol, modelAt(history, Infinity), PAGES, `segment ${x} alone`))
        await writeBatch(vol, rng, 100, history)
      } finally {
        await vol.close()
      }
      // The cut tail was zeroed, and the frames appended over it are intact after another reopen.
      const vol2 = await openVolume(keepLog(dir))
      try {
        const st = (await vol2.segmentStats())[x]!
        assert.is(st.tornTailBytes, 0, 'no torn tail on the next open')
        assert.is(st.corruptFrames, 0, 'no corrupt frame on the next open')
        await alone(vol2, x, () => checkAllPages(vol2, modelAt(history, Infinity), PAGES, `segment ${x} alone after the second reopen`))
      } finally {
        await vol2.close()
      }
    } finally {
      rmTempDir(dir)
    }
  })
})

test('torn tail: the last frame of one segment cut short; its records come back by gap fill', async () => {
  await withSeed(FILE, 'torn-frame', SEED, 7, async rng => {
    const dir = makeTempDir('torn-frame')
    try {
      const history = await populate(keepLog(dir), rng, 300)
      const x = rng.int(0, 5)
      const files = logFiles(dir, x)
      let newest = files[files.length - 1]
      let frames = listFrames(fs.readFileSync(newest))
      if (frames.length === 0 && files.length > 1) { newest = files[files.length - 2]; frames = listFrames(fs.readFileSync(newest)) }
      assert.ok(frames.length > 0, 'setup: a frame to tear')
      const last = frames[frames.length - 1]
      // Zero the second half of the frame, as a write torn at a sector boundary leaves it.
      const keep = Math.max(FRAME_HEADER + 1, Math.floor(last.len / 2))
      const fd = fs.openSync(newest, 'r+')
      fs.writeSync(fd, Buffer.alloc(last.len - keep), 0, last.len - keep, last.off + keep)
      fs.closeSync(fd)

      const vol = await openVolume(keepLog(dir))
      try {
        const st = (await vol.segmentStats())[x]!
        assert.ok(st.tornTailBytes > 0 || st.corruptFrames > 0, `segment ${x} noticed the torn frame (tornTailBytes ${st.tornTailBytes}, corruptFrames ${st.corruptFrames})`)
        await checkAllPages(vol, modelAt(history, Infinity), PAGES, 'after reopen')
        await waitConverged(vol, 'after reopen')
        await alone(vol, x, () => checkAllPages(vol, modelAt(history, Infinity), PAGES, `segment ${x} alone after gap fill`))
      } finally {
        await vol.close()
      }
    } finally {
      rmTempDir(dir)
    }
  })
})

test('a corrupt volume.meta: openVolume rejects with HEXAD_CORRUPTION naming the file; restored, it opens', async () => {
  await withSeed(FILE, 'volume-meta', SEED, 8, async rng => {
    const dir = makeTempDir('corrupt-meta')
    try {
      const history = await populate(keepLog(dir), rng, 50)
      const metaPath = path.join(dir, 'volume.meta')
      const original = fs.readFileSync(metaPath)
      // a flipped byte in the body
      flipByte(metaPath, rng.int(12, original.length - 1), rng.int(1, 255))
      await rejectsWith(openVolume(keepLog(dir)), 'HEXAD_CORRUPTION', /volume\.meta/, 'flipped byte in volume.meta')
      // a cut file
      fs.writeFileSync(metaPath, original.subarray(0, 6))
      await rejectsWith(openVolume(keepLog(dir)), 'HEXAD_CORRUPTION', /volume\.meta/, 'truncated volume.meta')
      // garbage
      fs.writeFileSync(metaPath, Buffer.from(rng.bytes(original.length)))
      await rejectsWith(openVolume(keepLog(dir)), 'HEXAD_CORRUPTION', /volume\.meta/, 'garbage volume.meta')
      // the failed opens left nothing locked or running: restore it and the volume opens with its data
      fs.writeFileSync(metaPath, original)
      const vol = await openVolume(keepLog(dir))
      try {
        await checkAllPages(vol, modelAt(history, Infinity), PAGES, 'after restoring volume.meta')
      } finally {
        await vol.close()
      }
    } finally {
      rmTempDir(dir)
    }
  })
})

test.run()
