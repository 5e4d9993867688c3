/**
 * Rebuild (issue 6): a segment whose directory was deleted, or whose files
 * cannot be read, is rebuilt from its peers (page images at a peer's fold
 * base, then the records above it by gap fill) while a writer keeps writing
 * and reading; progress shows in its stats; afterwards the segment alone
 * serves every page equal to the model.
 *
 * Replay a failure with HEXAD_SEED=<seed printed on failure>.
 */
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { openVolume, type SegmentStats, type Volume } from '../engine/index.js'
import {
  baseSeed, checkAllPages, cleanupTempDirs, makeTempDir, modelAt, pool, randomMtr, rmTempDir, sclsConverged, segmentDir,
  smallOptions, waitFor, withSeed, type MtrRecord, type Rng,
} from './helpers/volume-helpers.js'

const FILE = 'storage-rebuild'
const SEED = baseSeed()
const PAGE_SIZE = 4096
const PAGES = Array.from({ length: 32 }, (_, i) => i)

test.after(() => cleanupTempDirs())

const opts = (dir: string) => smallOptions(dir, { readTimeoutMs: 5000 })

async function writeBatch(vol: Volume, rng: Rng, n: number, history: MtrRecord[]): Promise<void> {
  const batch: MtrRecord[] = Array.from({ length: n }, () => ({ mtr: randomMtr(rng, PAGES, PAGE_SIZE, { maxLen: 2048 }), lsn: 0 }))
  await pool(batch, 8, async h => { h.lsn = (await vol.write(h.mtr)).lsn })
  history.push(...batch)
}

/** Writes until every segment has checkpointed (folded records into versions and deleted log files). */
async function writeUntilFolded(vol: Volume, rng: Rng, history: MtrRecord[]): Promise<void> {
  const folded = async () => (await vol.segmentStats()).every(s => s !== null && s.gcLogFiles >= 2)
  for (let i = 0; i < 30 && !(await folded()); i++) {
    await writeBatch(vol, rng, 150, history)
    await waitFor(folded, 300)
  }
  assert.ok(await folded(), `setup: every segment checkpointed (gcLogFiles ${(await vol.segmentStats()).map(s => s?.gcLogFiles)})`)
}

/**
 * Restarts segment x (after its files were damaged by `wreck`) while a writer
 * keeps writing and reading; returns once x has rebuilt and caught up.
 */
async function rebuildUnderLoad(vol: Volume, rng: Rng, history: MtrRecord[], x: number, dir: string, wreck: () => void): Promise<SegmentStats> {
  await vol.faults.stopWorker(x)
  wreck()
  await vol.faults.restartWorker(x)
  const seen: SegmentStats[] = []
  let done = false
  const watcher = (async () => {
    while (!done) {
      const s = (await vol.segmentStats())[x]
      if (s) seen.push(s)
      await new Promise(r => setTimeout(r, 20))
    }
  })()
  try {
    // Writes and reads go on during the rebuild; each round is checked against the model.
    for (let round = 0; round < 6; round++) {
      await writeBatch(vol, rng, 40, history)
      await checkAllPages(vol, modelAt(history, Infinity), PAGES, `round ${round} while segment ${x} rebuilds`)
    }
    const caughtUp = await waitFor(async () => {
      const s = (await vol.segmentStats())[x]
      return !!s && s.rebuildPgsActive === 0 && s.rebuildPgsDone > 0 && sclsConverged(vol)
    }, 20_000, 50)
    const s = (await vol.segmentStats())[x]!
    assert.ok(caughtUp, `segment ${x} rebuilt and caught up: ${JSON.stringify({ active: s.rebuildPgsActive, done: s.rebuildPgsDone, copied: s.rebuildPagesCopied, restarts: s.rebuildRestarts, pgScl: s.pgScl })}`)
  } finally {
    done = true
    await watcher
  }
  // Progress was visible while it ran: some sample shows pages copied and the count only grew.
  const copied = seen.map(s => s.rebuildPagesCopied)
  assert.ok(copied.some(c => c > 0), `rebuild progress showed in stats (pages copied over time: ${copied.slice(0, 20).join(',')})`)
  for (let i = 1; i < copied.length; i++) assert.ok(copied[i] >= copied[i - 1], 'pages copied never goes back')
  return (await vol.segmentStats())[x]!
}

async function aloneServes(vol: Volume, x: number, history: MtrRecord[], what: string): Promise<void> {
  const others = [0, 1, 2, 3, 4, 5].filter(i => i !== x)
  for (const o of others) await vol.faults.stopWorker(o)
  try {
    await checkAllPages(vol, modelAt(history, Infinity), PAGES, what)
  } finally {
    for (const o of others) await vol.faults.restartWorker(o)
  }
}

test('a segment whose directory was deleted is rebuilt from its peers while writes and reads go on', async () => {
  await withSeed(FILE, 'deleted-dir', SEED, 0, async rng => {
    const dir = makeTempDir('rebuild-del')
    let vol = await openVolume(opts(dir))
    try {
      const history: MtrRecord[] = []
      await writeUntilFolded(vol, rng, history)
      const x = rng.int(0, 5)
      const s = await rebuildUnderLoad(vol, rng, history, x, dir, () => fs.rmSync(segmentDir(dir, x), { recursive: true, force: true }))
      // Records above the copied point come from the writer or by gap fill, depending on timing.
      assert.ok(s.rebuildPagesCopied > 0, `segment ${x} copied pages from a peer (${s.rebuildPagesCopied}; ${s.gapFillRecords} records filled)`)
      assert.is(s.filesSetAside, null, 'a deleted directory is not "unreadable": nothing set aside')
      await aloneServes(vol, x, history, `segment ${x} alone after its rebuild`)
      // The rebuilt state is durable: after a reopen the segment alone still serves everything.
      await vol.close()
      vol = await openVolume(opts(dir))
      assert.ok(await waitFor(() => sclsConverged(vol), 15_000), 'converged after reopen')
      await aloneServes(vol, x, history, `segment ${x} alone after its rebuild and a reopen`)
    } finally {
      await vol.close()
      rmTempDir(dir)
    }
  })
})

test('a segment whose files cannot be read sets them aside, starts empty and is rebuilt from its peers', async () => {
  await withSeed(FILE, 'unreadable', SEED, 1, async rng => {
    const dir = makeTempDir('rebuild-unreadable')
    const vol = await openVolume(opts(dir))
    try {
      const history: MtrRecord[] = []
      await writeUntilFolded(vol, rng, history)
      const x = rng.int(0, 5)
      const logDir = path.join(segmentDir(dir, x), 'log')
      const s = await rebuildUnderLoad(vol, rng, history, x, dir, () => {
        // The log directory becomes a plain file: nothing in it can be listed or opened.
        fs.rmSync(logDir, { recursive: true, force: true })
        fs.writeFileSync(logDir, 'not a directory')
      })
      assert.ok(s.filesSetAside !== null && s.filesSetAside.includes('unreadable'), `the unreadable files were set aside: ${s.filesSetAside}`)
      assert.ok(fs.readdirSync(dir).some(n => n.startsWith(`segment-${x}.unreadable-`)), 'the set-aside directory is kept for inspection')
      await aloneServes(vol, x, history, `segment ${x} alone after rebuilding from unreadable files`)
    } finally {
      await vol.close()
      rmTempDir(dir)
    }
  })
})

test.run()
