/**
 * Scrub (issue 6): each segment re-reads and verifies its log frames and page
 * versions in the background at a bounded rate. A damaged frame's records
 * are fetched again from a peer and the damaged frame is marked dead; a
 * damaged page version is replaced by an intact image from a peer and marked
 * dead. Here the damage is made while the volume runs and no read touches
 * the damaged pages: only the scrubber can find it.
 *
 * Replay a failure with HEXAD_SEED=<seed printed on failure>.
 */
import fs from 'node:fs'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { openVolume, type SegmentStats, type Volume } from '../engine/index.js'
import {
  baseSeed, checkAllPages, cleanupTempDirs, flipByte, FRAME_HEADER, listFrames, listVersions, logFiles, makeTempDir, modelAt,
  pageFiles, pool, randomMtr, rmTempDir, sclsConverged, smallOptions, VERSION_HEADER, waitFor, withSeed, type MtrRecord, type Rng,
} from './helpers/volume-helpers.js'

const FILE = 'storage-scrub'
const SEED = baseSeed()
const PAGE_SIZE = 4096
const PAGES = Array.from({ length: 32 }, (_, i) => i)

test.after(() => cleanupTempDirs())

/** No checkpoints (every record stays in every log, so peers can serve it); a fast scrubber that runs its passes back to back. */
const opts = (dir: string) => smallOptions(dir, { checkpointLogBytes: 256 << 20, scrubBytesPerSecond: 16 << 20, scrubIntervalMs: 0 })

async function writeBatch(vol: Volume, rng: Rng, n: number, history: MtrRecord[]): Promise<void> {
  const batch: MtrRecord[] = Array.from({ length: n }, () => ({ mtr: randomMtr(rng, PAGES, PAGE_SIZE), lsn: 0 }))
  await pool(batch, 8, async h => { h.lsn = (await vol.write(h.mtr)).lsn })
  history.push(...batch)
}

async function statsOf(vol: Volume, x: number): Promise<SegmentStats> {
  const s = (await vol.segmentStats())[x]
  assert.ok(s, `segment ${x} answers stats`)
  return s!
}

test('scrub finds flipped bytes in a cold log file and in page versions, and repairs both from peers without any read', async () => {
  await withSeed(FILE, 'scrub-repair', SEED, 0, async rng => {
    const dir = makeTempDir('scrub')
    let vol = await openVolume(opts(dir))
    try {
      const history: MtrRecord[] = []
      const x = rng.int(0, 5)
      // Write until segment x has page versions and more than one log file (the first is cold: nothing appends to it).
      const ready = async () => { const s = await statsOf(vol, x); return s.pageVersions >= 8 && s.logFiles >= 2 }
      for (let i = 0; i < 10 && !(await ready()); i++) await writeBatch(vol, rng, 200, history)
      assert.ok(await waitFor(ready, 10_000),
        `setup: segment ${x} has page versions and two log files: ${JSON.stringify(await statsOf(vol, x))}`)
      // Let one full pass go by clean, so what is found below is the damage made here.
      const clean = await statsOf(vol, x)
      assert.ok(await waitFor(async () => (await statsOf(vol, x)).scrubPasses >= clean.scrubPasses + 1, 10_000), 'a clean scrub pass completes')
      const before = await statsOf(vol, x)
      assert.is(before.scrubCorruptFrames + before.scrubCorruptVersions, 0, 'an undamaged segment scrubs clean')
      const readsBefore = vol.stats().reads

      // Damage: two frames of the cold (first) log file, two newest versions of different pages.
      const cold = logFiles(dir, x)[0]
      const frames = listFrames(fs.readFileSync(cold))
      const hitFrames = rng.sample(frames, 2)
      for (const fr of hitFrames) {
        const off = rng.bool(0.7) ? fr.off + FRAME_HEADER + rng.int(0, fr.len - FRAME_HEADER - 1) : fr.off + rng.int(0, FRAME_HEADER - 1)
        flipByte(cold, off, rng.int(1, 255))
      }
      const versions = pageFiles(dir, x).flatMap(f => listVersions(fs.readFileSync(f)).map(v => ({ ...v, file: f })))
      const newest = new Map<number, typeof versions[number]>()
      for (const v of versions) if (!newest.has(v.pageId) || newest.get(v.pageId)!.lsn <= v.lsn) newest.set(v.pageId, v)
      const hitVersions = rng.sample([...newest.values()], 2)
      assert.is(hitVersions.length, 2, 'setup: two pages with versions')
      for (const v of hitVersions) flipByte(v.file, v.off + VERSION_HEADER + rng.int(0, v.len - VERSION_HEADER - 1), rng.int(1, 255))

      // No reads: the scrubber alone finds and repairs all four.
      const found = await waitFor(async () => {
        const s = await statsOf(vol, x)
        return s.scrubRepairedFrames - before.scrubRepairedFrames >= 2 && s.buriedVersions - before.buriedVersions >= 2
      }, 20_000, 50)
      const after = await statsOf(vol, x)
      const show = JSON.stringify({ scrubCorruptFrames: after.scrubCorruptFrames, scrubRepairedFrames: after.scrubRepairedFrames, scrubCorruptVersions: after.scrubCorruptVersions, repairedPages: after.repairedPages, buriedVersions: after.buriedVersions, scrubPasses: after.scrubPasses })
      assert.ok(found, `scrub detected and repaired the damaged frames and versions of segment ${x}: ${show}`)
      assert.is(after.scrubCorruptFrames - before.scrubCorruptFrames, 2, `two damaged frames found: ${show}`)
      assert.is(after.scrubCorruptVersions - before.scrubCorruptVersions, 2, `two damaged versions found: ${show}`)
      assert.ok(after.repairedPages - before.repairedPages >= 2, `two pages repaired from peers: ${show}`)
      assert.is(vol.stats().reads, readsBefore, 'no read was issued while the scrubber worked')
      assert.is(after.readsServed, before.readsServed, `segment ${x} served no read meanwhile`)
      assert.ok(after.scrubBytes > before.scrubBytes && after.scrubFrames > before.scrubFrames && after.scrubVersions > before.scrubVersions, 'scrub counters move')

      // On disk: the damaged frames are now marked dead (flag bit 1), and so are the damaged versions.
      const buf = fs.readFileSync(cold)
      for (const fr of hitFrames) assert.is(buf.readUInt16LE(fr.off + 4) & 2, 2, `frame at ${fr.off} of ${cold} is marked dead`)
      for (const v of hitVersions) assert.is(fs.readFileSync(v.file).readUInt16LE(v.off + 4) & 2, 2, `version of page ${v.pageId} at ${v.off} is marked dead`)

      // The repair is durable and complete: after a reopen the segment finds no damage at open, and alone it serves every page.
      await writeBatch(vol, rng, 50, history)
      await vol.close()
      vol = await openVolume(opts(dir))
      const reopened = await statsOf(vol, x)
      assert.is(reopened.corruptFrames, 0, `no damaged frame is found at open after the repair (${reopened.corruptFrames})`)
      assert.ok(await waitFor(() => sclsConverged(vol), 15_000), 'segments converge after reopen')
      const others = [0, 1, 2, 3, 4, 5].filter(i => i !== x)
      for (const o of others) await vol.faults.stopWorker(o)
      try {
        await checkAllPages(vol, modelAt(history, Infinity), PAGES, `segment ${x} alone after scrub repair and reopen`)
      } finally {
        for (const o of others) await vol.faults.restartWorker(o)
      }
      const last = await statsOf(vol, x)
      assert.is(last.corruptVersions, 0, `segment ${x} alone read no damaged version (${last.corruptVersions})`)
    } finally {
      await vol.close()
      rmTempDir(dir)
    }
  })
})

test('scrub is rate-bounded: the bytes verified per second stay near scrubBytesPerSecond', async () => {
  await withSeed(FILE, 'scrub-rate', SEED, 1, async rng => {
    const dir = makeTempDir('scrub-rate')
    const rate = 256 * 1024
    const vol = await openVolume(smallOptions(dir, { checkpointLogBytes: 256 << 20, scrubBytesPerSecond: rate, scrubIntervalMs: 0 }))
    try {
      await writeBatch(vol, rng, 400, [])
      const a = await vol.segmentStats()
      const t0 = Date.now()
      await new Promise(r => setTimeout(r, 1000))
      const b = await vol.segmentStats()
      const secs = (Date.now() - t0) / 1000
      for (let i = 0; i < 6; i++) {
        const bytes = b[i]!.scrubBytes - a[i]!.scrubBytes
        assert.ok(bytes > 0, `segment ${i} scrubbed something (${bytes} bytes)`)
        // One tick may overshoot by one frame or version (at most 64 KiB here); ticks never run ahead of the clock.
        assert.ok(bytes <= rate * (secs + 0.1) + 64 * 1024 * 2, `segment ${i} scrubbed ${bytes} bytes in ${secs.toFixed(2)} s at a limit of ${rate} B/s`)
      }
    } finally {
      await vol.close()
      rmTempDir(dir)
    }
  })
})

test('scrub gives way to writes: while frames keep arriving it verifies a quarter of scrubBytesPerSecond', async () => {
  await withSeed(FILE, 'scrub-busy', SEED, 2, async rng => {
    const dir = makeTempDir('scrub-busy')
    const rate = 1 << 20
    const vol = await openVolume(smallOptions(dir, { checkpointLogBytes: 256 << 20, scrubBytesPerSecond: rate, scrubIntervalMs: 0 }))
    try {
      // Enough log that an idle second would verify the full rate.
      await writeBatch(vol, rng, 1500, [])
      const idle0 = await vol.segmentStats()
      const ti = Date.now()
      await new Promise(r => setTimeout(r, 600))
      const idle1 = await vol.segmentStats()
      const idleSecs = (Date.now() - ti) / 1000
      // Then a second of writes with no pause longer than a scrub tick.
      const a = await vol.segmentStats()
      const t0 = Date.now()
      while (Date.now() - t0 < 1000) await writeBatch(vol, rng, 8, [])
      const b = await vol.segmentStats()
      const secs = (Date.now() - t0) / 1000
      for (let i = 0; i < 6; i++) {
        const idle = idle1[i]!.scrubBytes - idle0[i]!.scrubBytes
        const busy = b[i]!.scrubBytes - a[i]!.scrubBytes
        assert.ok(idle > rate * idleSecs / 3, `segment ${i} idle: ${idle} bytes in ${idleSecs.toFixed(2)} s at ${rate} B/s`)
        assert.ok(busy > 0, `segment ${i} still scrubs under writes (${busy} bytes)`)
        // A tick may overshoot by one frame or version (at most 64 KiB here).
        assert.ok(busy <= rate / 4 * (secs + 0.1) + 64 * 1024 * 2, `segment ${i} scrubbed ${busy} bytes in ${secs.toFixed(2)} s of writes, limit ${rate / 4} B/s`)
      }
    } finally {
      await vol.close()
      rmTempDir(dir)
    }
  })
})

test('scrub rests between passes: a pass starts scrubIntervalMs after the last one began, and nothing is verified in between', async () => {
  for (const bad of [-1, 1.5, '10', null]) {
    try {
      await openVolume(smallOptions(makeTempDir('scrub-bad'), { scrubIntervalMs: bad as unknown as number }))
      assert.unreachable(`scrubIntervalMs ${String(bad)} was accepted`)
    } catch (err) {
      assert.is((err as { code?: string }).code, 'HEXAD_BAD_INPUT', `scrubIntervalMs ${String(bad)}: ${(err as Error).message}`)
    }
  }
  await withSeed(FILE, 'scrub-rest', SEED, 3, async rng => {
    const dir = makeTempDir('scrub-rest')
    const interval = 3000
    const vol = await openVolume(smallOptions(dir, { checkpointLogBytes: 256 << 20, scrubBytesPerSecond: 16 << 20, scrubIntervalMs: interval }))
    try {
      const t0 = Date.now()
      // The pass that began at open found an empty volume; the next one, an interval later, verifies these.
      await writeBatch(vol, rng, 200, [])
      const second = async () => (await vol.segmentStats()).every(s => s !== null && s.scrubPasses >= 2 && s.scrubBytes > 0)
      assert.ok(await waitFor(second, 15_000), `every segment ends a second pass: ${JSON.stringify((await vol.segmentStats()).map(s => s && [s.scrubPasses, s.scrubBytes]))}`)
      assert.ok(Date.now() - t0 >= interval - 100, `the second pass ended ${Date.now() - t0} ms after the open, not before the interval (${interval} ms)`)
      const a = await vol.segmentStats()
      await new Promise(r => setTimeout(r, 600))
      const b = await vol.segmentStats()
      for (let i = 0; i < 6; i++) {
        assert.is(b[i]!.scrubPasses, a[i]!.scrubPasses, `segment ${i} starts no pass while it rests`)
        assert.is(b[i]!.scrubBytes, a[i]!.scrubBytes, `segment ${i} verifies nothing while it rests`)
      }
    } finally {
      await vol.close()
      rmTempDir(dir)
    }
  })
})

test.run()
