/**
 * Membership changes with quorum sets (issue 6, SIGMOD'18): a segment that
 * is down is replaced by a new one on a new worker through the two-set
 * transition (writes need 4/6 of the old AND 4/6 of the new set until the
 * new segment has caught up), with writes and reads going on throughout;
 * the change survives a reopen; `replaceAfterMs` does it by itself; an AZ
 * lost for long moves the volume to 3/4 (so a further failure still leaves
 * it writable), and back to 4/6.
 *
 * Replay a failure with HEXAD_SEED=<seed printed on failure>.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { openVolume, type Volume } from '../engine/index.js'
import {
  baseSeed, checkAllPages, cleanupTempDirs, makeTempDir, modelAt, pool, randomMtr, rmTempDir, smallOptions, waitFor, withSeed,
  type MtrRecord, type Rng,
} from './helpers/volume-helpers.js'

const FILE = 'storage-membership'
const SEED = baseSeed()
const PAGE_SIZE = 4096
const PAGES = Array.from({ length: 32 }, (_, i) => i)

test.after(() => cleanupTempDirs())

async function writeBatch(vol: Volume, rng: Rng, n: number, history: MtrRecord[]): Promise<void> {
  const batch: MtrRecord[] = Array.from({ length: n }, () => ({ mtr: randomMtr(rng, PAGES, PAGE_SIZE, { maxLen: 2048 }), lsn: 0 }))
  await pool(batch, 8, async h => { h.lsn = (await vol.write(h.mtr)).lsn })
  history.push(...batch)
}

/** Runs `change` while a loop keeps writing and reading; every write must succeed and every read equal the model. */
async function underLoad(vol: Volume, rng: Rng, history: MtrRecord[], change: () => Promise<void>): Promise<number> {
  let done = false
  let rounds = 0
  const load = (async () => {
    while (!done || rounds < 2) {
      await writeBatch(vol, rng, 20, history)
      await checkAllPages(vol, modelAt(history, Infinity), PAGES, `load round ${rounds} during a membership change`)
      rounds++
    }
  })()
  try {
    await change()
  } finally {
    done = true
    await load
  }
  return rounds
}

async function aloneServes(vol: Volume, keep: number, history: MtrRecord[], what: string): Promise<void> {
  const others = vol.stats().segments.filter(s => s.member && s.id !== keep).map(s => s.id)
  for (const o of others) await vol.faults.stopWorker(o)
  try {
    await checkAllPages(vol, modelAt(history, Infinity), PAGES, what)
  } finally {
    for (const o of others) await vol.faults.restartWorker(o)
  }
}

test('a segment that is down is replaced by a new one through two quorum sets, under load; the change survives a reopen', async () => {
  await withSeed(FILE, 'replace', SEED, 0, async rng => {
    const dir = makeTempDir('member-replace')
    let vol = await openVolume(smallOptions(dir))
    try {
      const history: MtrRecord[] = []
      await writeBatch(vol, rng, 300, history)
      const x = rng.int(0, 5)
      await vol.faults.stopWorker(x)
      let slot = -1
      let sawTwoSets = false
      const rounds = await underLoad(vol, rng, history, async () => {
        let settled = false
        const p = vol.replaceSegment(x).finally(() => { settled = true })
        await waitFor(() => { if (vol.membership().sets.length === 2) sawTwoSets = true; return sawTwoSets || settled }, 15_000, 1)
        slot = await p
      })
      assert.ok(sawTwoSets, 'the change went through a two-set phase')
      assert.ok(rounds >= 2, `writes and reads went on during the change (${rounds} rounds)`)
      assert.is(slot, 6, 'the replacement took the first free slot')
      const m = vol.membership()
      assert.is(m.changing, false)
      assert.is(m.sets.length, 1)
      assert.equal(m.sets[0].members, [0, 1, 2, 3, 4, 5].map(i => i === x ? 6 : i), `members after replacing ${x}`)
      const view = vol.stats().segments
      assert.is(view[x].member, false, `segment ${x} is no longer a member`)
      assert.ok(view[6].member && view[6].up && view[6].az === Math.floor(x / 2), `slot 6 is a member in segment ${x}'s AZ: ${JSON.stringify(view[6])}`)
      const st = (await vol.segmentStats())[6]!
      assert.ok(st.rebuildPagesCopied > 0 || st.gapFillRecords > 0, `the new segment caught up from its peers (${st.rebuildPagesCopied} pages copied, ${st.gapFillRecords} records filled)`)
      await aloneServes(vol, 6, history, 'the new segment alone after the change')
      // Persisted: a reopen keeps the new membership, and the new segment counts toward the quorum.
      await vol.close()
      vol = await openVolume(smallOptions(dir))
      assert.equal(vol.membership().sets[0].members, m.sets[0].members, 'membership after reopen')
      await writeBatch(vol, rng, 50, history)
      await checkAllPages(vol, modelAt(history, Infinity), PAGES, 'after reopen')
      await aloneServes(vol, 6, history, 'the new segment alone after reopen')
    } finally {
      await vol.close()
      rmTempDir(dir)
    }
  })
})

test('replaceAfterMs: a member down past the timeout is replaced by itself', async () => {
  await withSeed(FILE, 'auto-replace', SEED, 1, async rng => {
    const dir = makeTempDir('member-auto')
    const vol = await openVolume(smallOptions(dir, { replaceAfterMs: 2000 }))
    try {
      const history: MtrRecord[] = []
      await writeBatch(vol, rng, 100, history)
      const x = rng.int(0, 5)
      // Down briefly and back: nothing changes.
      await vol.faults.stopWorker(x)
      await vol.faults.restartWorker(x)
      await new Promise(r => setTimeout(r, 2500))
      assert.ok(vol.membership().sets[0].members.includes(x), 'a segment back within the timeout stays a member')
      await vol.faults.stopWorker(x)
      await underLoad(vol, rng, history, async () => {
        assert.ok(await waitFor(() => !vol.membership().changing && !vol.membership().sets[0].members.includes(x), 15_000), `segment ${x} was replaced: ${JSON.stringify(vol.membership())}`)
      })
      await checkAllPages(vol, modelAt(history, Infinity), PAGES, 'after the automatic replacement')
    } finally {
      await vol.close()
      rmTempDir(dir)
    }
  })
})

test('an AZ lost for long: 4/6 → 3/4, a further failure leaves the volume writable, then back to 4/6', async () => {
  await withSeed(FILE, 'degrade', SEED, 2, async rng => {
    const dir = makeTempDir('member-degrade')
    const vol = await openVolume(smallOptions(dir, { quorumTimeoutMs: 3000 }))
    try {
      const history: MtrRecord[] = []
      await writeBatch(vol, rng, 100, history)
      const az = rng.int(0, 2)
      await vol.faults.stopAZ(az)
      await underLoad(vol, rng, history, () => vol.degradeAZ(az))
      const m = vol.membership().sets
      assert.is(m.length, 1)
      assert.is(m[0].members.length, 4)
      assert.is(m[0].write, 3)
      // One more segment down: 3 of 4 still write (under 4/6 this would be the third failure).
      const extra = rng.pick(m[0].members)
      await vol.faults.stopWorker(extra)
      await writeBatch(vol, rng, 50, history)
      await checkAllPages(vol, modelAt(history, Infinity), PAGES, `3/4 with segment ${extra} and AZ ${az} down`)
      await vol.faults.restartWorker(extra)
      // Back to six: the AZ returns, catches up, and the volume is 4/6 again.
      await vol.faults.restartAZ(az)
      await underLoad(vol, rng, history, () => vol.restoreAZ(az))
      const back = vol.membership().sets
      assert.is(back.length, 1)
      assert.equal(back[0].members, [0, 1, 2, 3, 4, 5])
      assert.is(back[0].write, 4)
      await checkAllPages(vol, modelAt(history, Infinity), PAGES, 'after restoring 4/6')
      await aloneServes(vol, az * 2, history, `segment ${az * 2} of the restored AZ alone`)
    } finally {
      await vol.close()
      rmTempDir(dir)
    }
  })
})

test.run()
