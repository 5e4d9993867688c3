/**
 * Fencing, recovery truncation, bad input and lifecycle.
 *
 * - A second open of the same directory (same process) fences the first
 *   handle: its writes fail with HEXAD_FENCED; both handles' acknowledged
 *   writes survive (invariants 1 and 3).
 * - Every open recovers and truncates above the recovered VDL: LSNs strictly
 *   increase across opens; an MTR that was not acknowledged is all or nothing.
 *   After a clean close (every allocated LSN durable) no truncation is added.
 * - Bad input gets HEXAD_BAD_INPUT naming what was wrong, and the volume stays
 *   usable (invariant 10); a closed handle gets HEXAD_CLOSED.
 *
 * Replay a failure with HEXAD_SEED=<seed printed on failure>.
 */
import { parkedSegmentThreads } from '../engine/storage/storage.js'
import { spawnSync } from 'node:child_process'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import fs from 'node:fs'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { HexadError, openVolume, type PageWrite, type Volume } from '../engine/index.js'
import { decodeMeta } from '../engine/storage/format.js'
import {
  assertPage, baseSeed, checkAllPages, cleanupTempDirs, makeTempDir, modelAt, PageModel, pagesEqual, pool, randomMtr,
  rejectsWith, rmTempDir, sclsConverged, smallOptions, throwsWith, waitFor, withSeed, type MtrRecord, type Rng,
} from './helpers/volume-helpers.js'

const FILE = 'volume-fencing'
const SEED = baseSeed()
const PAGE_SIZE = 4096
const PAGES = Array.from({ length: 32 }, (_, i) => i)

test.after(() => cleanupTempDirs())

async function writeBatch(vol: Volume, rng: Rng, n: number, history: MtrRecord[]): Promise<void> {
  const batch: MtrRecord[] = Array.from({ length: n }, () => ({ mtr: randomMtr(rng, PAGES, PAGE_SIZE), lsn: 0 }))
  await pool(batch, 8, async h => { h.lsn = (await vol.write(h.mtr)).lsn })
  history.push(...batch)
}

/**
 * Checks that the pages equal the model of `history`, either with or
 * without `maybe` (an MTR that was not acknowledged, placed by its LSN
 * position `at`), and never a mix. Returns which.
 */
async function allOrNothing(vol: Volume, history: MtrRecord[], maybe: MtrRecord, what: string): Promise<'with' | 'without'> {
  const without = modelAt(history, Infinity)
  const withIt = modelAt([...history, maybe], Infinity)
  const got = await Promise.all(PAGES.map(p => vol.readPage(p)))
  const w = PAGES.every((p, i) => pagesEqual(got[i], withIt.get(p)))
  const wo = PAGES.every((p, i) => pagesEqual(got[i], without.get(p)))
  if (!w && !wo) {
    const per = PAGES.map((p, i) => `${p}:${pagesEqual(got[i], withIt.get(p)) ? 'with' : pagesEqual(got[i], without.get(p)) ? 'without' : 'neither'}`)
    assert.unreachable(`${what}: pages match neither the model with the unacknowledged MTR nor the one without it: ${per.join(' ')}`)
  }
  return w ? 'with' : 'without'
}

// ------------------------------------------------------------------ fencing

test('a second open fences the first: its writes fail with HEXAD_FENCED; both handles\' acknowledged writes survive', async () => {
  await withSeed(FILE, 'fence', SEED, 0, async rng => {
    const dir = makeTempDir('fence')
    const history: MtrRecord[] = []
    const a = await openVolume(smallOptions(dir))
    let b: Volume | null = null
    try {
      await writeBatch(a, rng, 100, history)
      b = await openVolume(smallOptions(dir))
      assert.ok(b.epoch > a.epoch, `the second handle has a newer epoch (${b.epoch} > ${a.epoch})`)
      assert.ok(b.vdl >= Math.max(...history.map(h => h.lsn)), 'the second handle recovered every write the first acknowledged')
      await checkAllPages(b, modelAt(history, Infinity), PAGES, 'second handle after open')

      const mtr: PageWrite[] = [{ pageId: 1, ops: [{ op: 'fill', offset: 0, len: 64, byte: 0xab }] }]
      const e = await rejectsWith(a.write(mtr), 'HEXAD_FENCED', /fenced|epoch/, 'write on the fenced handle')
      assert.match(e.message, /epoch/)
      // Once fenced, stays fenced, for every operation.
      await rejectsWith(a.write(mtr), 'HEXAD_FENCED', undefined, 'second write on the fenced handle')
      await rejectsWith(a.readPage(1), 'HEXAD_FENCED', undefined, 'read on the fenced handle')
      throwsWith(() => a.pinReadPoint(), 'HEXAD_FENCED', undefined, 'pin on the fenced handle')

      // The fenced write did not land; the second handle works.
      await checkAllPages(b, modelAt(history, Infinity), PAGES, 'second handle after the fenced write')
      await writeBatch(b, rng, 100, history)
      await checkAllPages(b, modelAt(history, Infinity), PAGES, 'second handle after its own writes')
    } finally {
      await a.close()
      // Closing the fenced handle leaves the live one running.
      if (b) {
        try {
          await writeBatch(b, rng, 20, history)
          await checkAllPages(b, modelAt(history, Infinity), PAGES, 'second handle after the first closed')
        } finally {
          await b.close()
        }
      }
    }
    const c = await openVolume(smallOptions(dir))
    try {
      await checkAllPages(c, modelAt(history, Infinity), PAGES, 'after reopening')
    } finally {
      await c.close()
      rmTempDir(dir)
    }
  })
})

test('a read on a handle fenced by a newer open fails with HEXAD_FENCED rather than answering', async () => {
  const dir = makeTempDir('fence-read')
  const a = await openVolume(smallOptions(dir))
  let b: Volume | null = null
  try {
    const model = new PageModel()
    const mtr: PageWrite[] = [{ pageId: 2, ops: [{ op: 'fill', offset: 10, len: 10, byte: 9 }] }]
    await a.write(mtr)
    model.applyMtr(mtr)
    b = await openVolume(smallOptions(dir))
    await rejectsWith(a.readPage(2), 'HEXAD_FENCED', undefined, 'first read on the fenced handle')
    await checkAllPages(b, model, [2], 'new handle')
  } finally {
    await a.close()
    await b?.close()
    rmTempDir(dir)
  }
})

test('an MTR in flight when its writer is fenced is all-or-nothing, and a truncated one never comes back', async () => {
  await withSeed(FILE, 'fence-inflight', SEED, 1, async rng => {
    const dir = makeTempDir('fence-inflight')
    const history: MtrRecord[] = []
    const a = await openVolume(smallOptions(dir, { quorumTimeoutMs: 3000 }))
    let b: Volume | null = null
    try {
      await writeBatch(a, rng, 100, history)
      // Three segments down: the next MTR reaches only segments 3, 4, 5 and cannot become durable.
      await a.faults.stopAZ(0)
      await a.faults.stopWorker(2)
      const lastAcked = Math.max(...history.map(h => h.lsn))
      const inflight: PageWrite[] = [3, 9, 14, 27].map(pageId => ({ pageId, ops: [{ op: 'write', offset: 2000, bytes: rng.bytes(300) }, { op: 'fill', offset: 0, len: 16, byte: 0xcd }] }))
      let outcome = 'pending' as 'resolved' | 'rejected' | 'pending'
      let err: unknown
      const p = a.write(inflight).then(() => { outcome = 'resolved' }, e => { outcome = 'rejected'; err = e })
      await new Promise(r => setTimeout(r, 100)) // let the frame reach segments 3..5

      b = await openVolume(smallOptions(dir, { quorumTimeoutMs: 3000 }))
      assert.ok(b.epoch > a.epoch)
      await b.faults.restartAZ(0)
      await b.faults.restartWorker(2)
      await p
      if (outcome === 'rejected') {
        assert.ok(err instanceof HexadError && (err.code === 'HEXAD_FENCED' || err.code === 'HEXAD_QUORUM_LOST'), `the in-flight write failed with ${String(err)}`)
      }
      const ok = await waitFor(() => sclsConverged(b!), 15_000)
      assert.ok(ok, `segments converged after the restart: ${JSON.stringify(b.stats().segments.map(s => [s.id, s.up, s.pgScl]))}`)

      const maybe: MtrRecord = { mtr: inflight, lsn: lastAcked + 0.5 }
      const first = await allOrNothing(b, history, maybe, 'after the new handle recovered')
      if (outcome === 'resolved') assert.is(first, 'with', 'the old handle saw its write acknowledged, so it must be present')
      // Writes of the new handle, then a reopen: the outcome does not change, and the fenced handle stays fenced.
      await writeBatch(b, rng, 100, history)
      assert.is(await allOrNothing(b, history, maybe, 'after new writes'), first, 'the outcome of the in-flight MTR changed')
      await rejectsWith(a.write([{ pageId: 0, ops: [{ op: 'init' }] }]), 'HEXAD_FENCED', undefined, 'the old handle after the new one wrote')
      await a.close()
      await b.close()
      b = null
      const c = await openVolume(smallOptions(dir))
      try {
        assert.is(await allOrNothing(c, history, maybe, 'after reopening'), first, 'the outcome of the in-flight MTR changed across a reopen')
      } finally {
        await c.close()
      }
    } finally {
      await a.close()
      await b?.close()
      rmTempDir(dir)
    }
  })
})

// ------------------------------------------------------------------ recovery truncation

test('recovery at every open: LSNs strictly increase across opens, acknowledged writes are present, unacknowledged ones all-or-nothing', async () => {
  await withSeed(FILE, 'reopen', SEED, 2, async rng => {
    const dir = makeTempDir('reopen')
    const history: MtrRecord[] = []
    let unacked: MtrRecord | null = null
    let lastLsn = 0
    let lastEpoch = 0
    const outcomes: string[] = []
    try {
      for (let open = 0; open < 8; open++) {
        const vol = await openVolume(smallOptions(dir, { quorumTimeoutMs: 1500 }))
        try {
          assert.ok(vol.epoch > lastEpoch, `open #${open}: epoch ${vol.epoch} not above ${lastEpoch}`)
          lastEpoch = vol.epoch
          assert.ok(vol.vdl >= lastLsn, `open #${open}: recovered VDL ${vol.vdl} below the last acknowledged LSN ${lastLsn}`)
          // The MTR left unacknowledged by the previous open is there whole or not at all; from now on it is history.
          if (unacked) {
            const o = await allOrNothing(vol, history, unacked, `open #${open}`)
            outcomes.push(o)
            if (o === 'with') history.push(unacked)
            unacked = null
          }
          await checkAllPages(vol, modelAt(history, Infinity), PAGES, `open #${open}`)

          const n = rng.int(1, 60)
          const batch: MtrRecord[] = Array.from({ length: n }, () => ({ mtr: randomMtr(rng, PAGES, PAGE_SIZE), lsn: 0 }))
          await pool(batch, 4, async h => {
            h.lsn = (await vol.write(h.mtr)).lsn
            assert.ok(h.lsn > lastLsn, `open #${open}: LSN ${h.lsn} is not above the previous open's ${lastLsn}`)
          })
          history.push(...batch)
          lastLsn = Math.max(lastLsn, ...batch.map(h => h.lsn))

          // Sometimes leave behind an MTR that cannot be acknowledged (3 segments down) when closing.
          if (rng.bool(0.5)) {
            await vol.faults.stopAZ(rng.int(0, 2))
            const up = vol.stats().segments.filter(s => s.up).map(s => s.id)
            await vol.faults.stopWorker(rng.pick(up))
            const page = rng.pick(PAGES)
            const mtr: PageWrite[] = [
              { pageId: page, ops: [{ op: 'fill', offset: 0, len: 128, byte: open + 1 }] },
              { pageId: (page + 5) % 32, ops: [{ op: 'fill', offset: 128, len: 128, byte: open + 1 }] },
            ]
            await rejectsWith(vol.write(mtr), 'HEXAD_QUORUM_LOST', undefined, `open #${open}: write with 3 segments up`)
            // Its LSN lies after every acknowledged LSN so far and before any of the next open's.
            unacked = { mtr, lsn: lastLsn + 0.5 }
          }
        } finally {
          await vol.close()
        }
      }
    } finally {
      rmTempDir(dir)
    }
  })
})

test('a clean close lets the next open add no truncation; a fenced handle or an unacknowledged write makes the next open add one', async () => {
  await withSeed(FILE, 'clean', SEED, 7, async rng => {
    const dir = makeTempDir('clean')
    const meta = (f: string) => decodeMeta<{ truncations: Array<[number, number]>; closed?: { epoch: number; lsn: number } }>(fs.readFileSync(path.join(dir, f)))!
    const history: MtrRecord[] = []
    let lastLsn = 0
    let unacked: MtrRecord | null = null
    const handles: Volume[] = []
    const open = async () => {
      const vol = await openVolume(smallOptions(dir, { quorumTimeoutMs: 1500 }))
      handles.push(vol)
      assert.ok(vol.vdl >= lastLsn, `recovered VDL ${vol.vdl} below the last acknowledged LSN ${lastLsn}`)
      if (unacked && await allOrNothing(vol, history, unacked, `open at epoch ${vol.epoch}`) === 'with') history.push(unacked)
      unacked = null
      await checkAllPages(vol, modelAt(history, Infinity), PAGES, `open at epoch ${vol.epoch}`)
      await writeBatch(vol, rng, 20, history)
      const lsns = history.slice(-20).map(h => h.lsn)
      assert.ok(Math.min(...lsns) > lastLsn, `new LSNs (from ${Math.min(...lsns)}) above the last open's ${lastLsn}`)
      lastLsn = Math.max(...lsns)
      return vol
    }
    try {
      let vol = await open() // the first open truncates (the volume is new)
      const first = meta('volume.meta').truncations.length
      await vol.close()
      assert.equal(meta('volume.meta').closed, { epoch: vol.epoch, lsn: lastLsn }, 'the close is recorded with its VDL')
      for (let i = 0; i < 4; i++) { vol = await open(); await vol.close() }
      assert.is(meta('volume.meta').truncations.length, first, 'four clean reopens added no truncation')
      for (let x = 0; x < 6; x++) assert.is(meta(`segment-${x}/meta`).truncations.length, first, `segment ${x} holds as many`)

      // Fenced: the first handle never closes cleanly; the second open truncates after it.
      const a = await open()
      const b = await openVolume(smallOptions(dir))
      handles.push(b)
      assert.is(meta('volume.meta').truncations.length, first + 1, 'an open after a handle that did not close adds one')
      await a.close() // fenced: records nothing
      assert.is(meta('volume.meta').closed, undefined, 'a fenced close records no clean close')
      await b.close()

      // A write that never became durable: the close records nothing, and the next open truncates it away.
      vol = await open()
      await vol.faults.stopAZ(0)
      await vol.faults.stopWorker(2)
      const mtr: PageWrite[] = [{ pageId: 3, ops: [{ op: 'fill', offset: 0, len: 64, byte: 0xee }] }, { pageId: 9, ops: [{ op: 'fill', offset: 64, len: 64, byte: 0xee }] }]
      await rejectsWith(vol.write(mtr), 'HEXAD_QUORUM_LOST', undefined, 'write with 3 segments up')
      unacked = { mtr, lsn: lastLsn + 0.5 } // recovery may find it whole on the three that took it: all or nothing
      await vol.close()
      assert.is(meta('volume.meta').closed, undefined, 'a close with an unacknowledged write records no clean close')
      vol = await open()
      assert.is(meta('volume.meta').truncations.length, first + 2)
      await vol.close()
    } finally {
      for (const h of handles) await h.close().catch(() => {})
      rmTempDir(dir)
    }
  })
})

// ------------------------------------------------------------------ bad input

test('bad input: each gets HEXAD_BAD_INPUT naming the problem, and the volume stays usable', async () => {
  const dir = makeTempDir('bad-input')
  const vol = await openVolume(smallOptions(dir))
  try {
    const model = new PageModel()
    const good: PageWrite[] = [{ pageId: 5, ops: [{ op: 'fill', offset: 0, len: 100, byte: 0x11 }] }]
    await vol.write(good)
    model.applyMtr(good)
    const vdl = vol.vdl
    const maxPage = 65536 * 4
    const fill = { op: 'fill', offset: 0, len: 1, byte: 1 } as const
    const w = (x: unknown) => vol.write(x as PageWrite[])
    const cases: Array<[string, () => Promise<unknown>, RegExp]> = [
      ['empty MTR', () => w([]), /non-empty array/],
      ['MTR not an array', () => w({ pageId: 0, ops: [fill] }), /non-empty array/],
      ['MTR null', () => w(null), /non-empty array/],
      ['entry null', () => w([null]), /entry #0 must be an object/],
      ['entry a number', () => w([good[0], 7]), /entry #1 must be an object/],
      ['page id negative', () => w([{ pageId: -1, ops: [fill] }]), /pageId must be an integer.*got -1/],
      ['page id non-integer', () => w([{ pageId: 1.5, ops: [fill] }]), /pageId must be an integer.*got 1\.5/],
      ['page id NaN', () => w([{ pageId: NaN, ops: [fill] }]), /pageId.*NaN/],
      ['page id a string', () => w([{ pageId: '3', ops: [fill] }]), /pageId must be an integer/],
      ['page id too large', () => w([{ pageId: maxPage, ops: [fill] }]), new RegExp(`pageId must be an integer in 0\\.\\.${maxPage - 1}, got ${maxPage}`)],
      ['page id huge', () => w([{ pageId: 2 ** 53, ops: [fill] }]), /pageId/],
      ['ops empty', () => w([{ pageId: 0, ops: [] }]), /ops must be a non-empty array/],
      ['ops missing', () => w([{ pageId: 0 }]), /ops must be a non-empty array/],
      ['op null', () => w([{ pageId: 0, ops: [null] }]), /page 0 op #0: expected an op object, got null/],
      ['op a string', () => w([{ pageId: 0, ops: ['fill'] }]), /expected an op object, got string/],
      ['unknown op', () => w([{ pageId: 0, ops: [{ op: 'xor', offset: 0, len: 1 }] }]), /unknown op "xor"/],
      ['op kind missing', () => w([{ pageId: 0, ops: [{ offset: 0, len: 1 }] }]), /unknown op/],
      ['write past the end', () => w([{ pageId: 0, ops: [{ op: 'write', offset: 4090, bytes: new Uint8Array(10) }] }]), /\[4090, 4100\) lies outside the 4096-byte page/],
      ['write at negative offset', () => w([{ pageId: 0, ops: [{ op: 'write', offset: -1, bytes: new Uint8Array(1) }] }]), /offset must be a non-negative integer, got -1/],
      ['write offset a string', () => w([{ pageId: 0, ops: [{ op: 'write', offset: '0', bytes: new Uint8Array(1) }] }]), /offset must be a non-negative integer/],
      ['write bytes a plain array', () => w([{ pageId: 0, ops: [{ op: 'write', offset: 0, bytes: [1, 2, 3] }] }]), /bytes must be a Uint8Array/],
      ['write bytes a string', () => w([{ pageId: 0, ops: [{ op: 'write', offset: 0, bytes: 'abc' }] }]), /bytes must be a Uint8Array/],
      ['write bytes an ArrayBuffer', () => w([{ pageId: 0, ops: [{ op: 'write', offset: 0, bytes: new ArrayBuffer(4) }] }]), /bytes must be a Uint8Array/],
      ['write bytes missing', () => w([{ pageId: 0, ops: [{ op: 'write', offset: 0 }] }]), /bytes must be a Uint8Array/],
      ['move source past the end', () => w([{ pageId: 0, ops: [{ op: 'move', src: 4000, dst: 0, len: 200 }] }]), /\(move\).*outside the 4096-byte page/],
      ['move destination past the end', () => w([{ pageId: 0, ops: [{ op: 'move', src: 0, dst: 4000, len: 200 }] }]), /\(move\).*outside the 4096-byte page/],
      ['move negative length', () => w([{ pageId: 0, ops: [{ op: 'move', src: 0, dst: 10, len: -1 }] }]), /length must be a non-negative integer, got -1/],
      ['move fractional source', () => w([{ pageId: 0, ops: [{ op: 'move', src: 0.5, dst: 10, len: 1 }] }]), /src must be a non-negative integer/],
      ['fill past the end', () => w([{ pageId: 0, ops: [{ op: 'fill', offset: 100, len: 4000, byte: 1 }] }]), /\[100, 4100\) lies outside/],
      ['fill byte 256', () => w([{ pageId: 0, ops: [{ op: 'fill', offset: 0, len: 1, byte: 256 }] }]), /byte must be an integer 0\.\.255, got 256/],
      ['fill byte -1', () => w([{ pageId: 0, ops: [{ op: 'fill', offset: 0, len: 1, byte: -1 }] }]), /byte must be an integer 0\.\.255, got -1/],
      ['fill byte fractional', () => w([{ pageId: 0, ops: [{ op: 'fill', offset: 0, len: 1, byte: 1.5 }] }]), /byte must be an integer 0\.\.255/],
      ['fill byte a string', () => w([{ pageId: 0, ops: [{ op: 'fill', offset: 0, len: 1, byte: '1' }] }]), /byte must be an integer 0\.\.255/],
      ['init image too large', () => w([{ pageId: 0, ops: [{ op: 'init', image: new Uint8Array(4097) }] }]), /image of 4097 bytes exceeds the 4096-byte page/],
      ['init image not bytes', () => w([{ pageId: 0, ops: [{ op: 'init', image: [1, 2] }] }]), /image must be a Uint8Array/],
      ['a valid entry followed by a bad one', () => w([{ pageId: 5, ops: [{ op: 'fill', offset: 0, len: 4096, byte: 0xff }] }, { pageId: 6, ops: [{ op: 'fill', offset: 0, len: 1, byte: 999 }] }]), /entry|page 6 op #0.*byte/],
      ['read page negative', () => vol.readPage(-1), /readPage: pageId must be an integer.*got -1/],
      ['read page fractional', () => vol.readPage(2.5), /readPage: pageId.*2\.5/],
      ['read page too large', () => vol.readPage(maxPage), /readPage: pageId/],
      ['read page a string', () => vol.readPage('1' as unknown as number), /readPage: pageId/],
      ['read above the VDL', () => vol.readPage(0, { at: vol.vdl + 1 }), /above the VDL/],
      ['read at a negative LSN', () => vol.readPage(0, { at: -1 }), /at must be a non-negative integer/],
      ['read at a fractional LSN', () => vol.readPage(0, { at: 1.5 }), /at must be a non-negative integer/],
      ['read at a string', () => vol.readPage(0, { at: '5' as unknown as number }), /at must be a non-negative integer/],
    ]
    for (const [what, run, pattern] of cases) {
      await rejectsWith(run, 'HEXAD_BAD_INPUT', pattern, what)
    }
    for (const [what, at] of [['above the VDL', vol.vdl + 1], ['negative', -5], ['fractional', 1.5], ['NaN', NaN]] as Array<[string, number]>) {
      throwsWith(() => vol.pinReadPoint(at), 'HEXAD_BAD_INPUT', /pinReadPoint/, `pinReadPoint ${what}`)
    }
    // Nothing above changed anything: same VDL, same data, and the volume still writes and reads.
    assert.is(vol.vdl, vdl, 'rejected writes did not move the VDL')
    await checkAllPages(vol, model, [5, 6, 0], 'after bad input')
    const more: PageWrite[] = [{ pageId: 6, ops: [{ op: 'write', offset: 4095, bytes: new Uint8Array([7]) }, { op: 'move', src: 4095, dst: 0, len: 1 }] }]
    const { lsn } = await vol.write(more)
    model.applyMtr(more)
    assert.ok(lsn > vdl)
    await checkAllPages(vol, model, [5, 6, 0], 'after a good write following bad input')
    // Edge ranges that are valid.
    const edges: PageWrite[] = [{ pageId: 7, ops: [
      { op: 'write', offset: 4096, bytes: new Uint8Array(0) },
      { op: 'fill', offset: 0, len: 4096, byte: 255 },
      { op: 'move', src: 0, dst: 4096, len: 0 },
      { op: 'init', image: new Uint8Array(4096).fill(3) },
      { op: 'write', offset: 4094, bytes: new Uint8Array([1, 2]) },
    ] }, { pageId: maxPage - 1, ops: [{ op: 'fill', offset: 1, len: 2, byte: 9 }] }]
    await vol.write(edges)
    model.applyMtr(edges)
    await checkAllPages(vol, model, [7, maxPage - 1], 'valid edge ranges')
  } finally {
    await vol.close()
    rmTempDir(dir)
  }
})

test('bad options: unknown option, bad values, pageSize / pagesPerGroup mismatch on reopen → HEXAD_BAD_INPUT; the open volume is not disturbed', async () => {
  const dir = makeTempDir('bad-options')
  const other = makeTempDir('bad-options-other')
  const vol = await openVolume(smallOptions(dir))
  try {
    const o = (x: unknown) => () => openVolume(x as Parameters<typeof openVolume>[0])
    const cases: Array<[string, () => Promise<unknown>, RegExp]> = [
      ['no options', o(undefined), /options/],
      ['null options', o(null), /options/],
      ['empty dir', o({ dir: '' }), /dir must be a non-empty string/],
      ['dir not a string', o({ dir: 5 }), /dir must be a non-empty string/],
      ['unknown option', o({ dir: other, pageSizes: 4096 }), /unknown option pageSizes/],
      ['option not a number', o({ dir: other, pagesPerGroup: '4' }), /pagesPerGroup must be a positive integer/],
      ['option zero', o({ dir: other, quorumTimeoutMs: 0 }), /quorumTimeoutMs must be a positive integer, got 0/],
      ['option negative', o({ dir: other, logFileBytes: -1 }), /logFileBytes must be a positive integer/],
      ['option fractional', o({ dir: other, coalesceThreshold: 1.5 }), /coalesceThreshold must be a positive integer/],
      ['segmentNice too high', o({ dir: other, segmentNice: 20 }), /segmentNice must be an integer 0\.\.19, got 20/],
      ['segmentNice negative', o({ dir: other, segmentNice: -1 }), /segmentNice must be an integer 0\.\.19, got -1/],
      ['segmentNice fractional', o({ dir: other, segmentNice: 2.5 }), /segmentNice must be an integer 0\.\.19/],
      ['pageSize not a power of two', o({ dir: other, pageSize: 1000 }), /pageSize must be a power of two in 512\.\.65536, got 1000/],
      ['pageSize too small', o({ dir: other, pageSize: 256 }), /pageSize must be a power of two/],
      ['pageSize too large', o({ dir: other, pageSize: 131072 }), /pageSize must be a power of two/],
      ['pageSize mismatch with the existing volume', o({ ...smallOptions(dir), pageSize: 8192 }), /pageSize 8192 does not match the volume's 4096/],
      ['pagesPerGroup mismatch with the existing volume', o({ ...smallOptions(dir), pagesPerGroup: 8 }), /pagesPerGroup 8 does not match the volume's 4/],
    ]
    for (const [what, run, pattern] of cases) await rejectsWith(run, 'HEXAD_BAD_INPUT', pattern, what)
    // The refused opens did not fence or disturb the open handle.
    const mtr: PageWrite[] = [{ pageId: 1, ops: [{ op: 'fill', offset: 0, len: 8, byte: 4 }] }]
    await vol.write(mtr)
    const m = new PageModel()
    m.applyMtr(mtr)
    await checkAllPages(vol, m, [1], 'after refused opens')
  } finally {
    await vol.close()
    rmTempDir(dir)
    rmTempDir(other)
  }
  // A volume created with a pageSize keeps it: reopening without one uses the stored one.
  const dir2 = makeTempDir('page-size')
  try {
    const mtr: PageWrite[] = [{ pageId: 0, ops: [{ op: 'fill', offset: 1000, len: 24, byte: 6 }] }]
    const a = await openVolume(smallOptions(dir2, { pageSize: 1024 }))
    try {
      assert.is(a.pageSize, 1024)
      await a.write(mtr)
      await rejectsWith(a.write([{ pageId: 0, ops: [{ op: 'fill', offset: 1000, len: 25, byte: 6 }] }]), 'HEXAD_BAD_INPUT', /1024-byte page/, 'op past a 1024-byte page')
    } finally {
      await a.close()
    }
    await rejectsWith(openVolume({ dir: dir2, pageSize: 4096 }), 'HEXAD_BAD_INPUT', /pageSize 4096 does not match the volume's 1024/, 'reopen with a different pageSize')
    const opts = smallOptions(dir2)
    delete opts.pagesPerGroup
    const b = await openVolume(opts)
    try {
      assert.is(b.pageSize, 1024)
      assert.is(b.pagesPerGroup, 4)
      const m = new PageModel(1024)
      m.applyMtr(mtr)
      const page = await b.readPage(0)
      assert.is(page.length, 1024)
      assertPage(page, m.get(0), 'page of a 1024-byte volume')
    } finally {
      await b.close()
    }
  } finally {
    rmTempDir(dir2)
  }
})

// ------------------------------------------------------------------ lifecycle

test('use after close: write, readPage, pinReadPoint, segmentStats and faults → HEXAD_CLOSED; close is idempotent', async () => {
  const dir = makeTempDir('closed')
  try {
    const vol = await openVolume(smallOptions(dir))
    await vol.write([{ pageId: 0, ops: [{ op: 'init' }] }])
    await vol.close()
    await vol.close() // a second close is harmless
    await rejectsWith(vol.write([{ pageId: 0, ops: [{ op: 'init' }] }]), 'HEXAD_CLOSED', /closed/, 'write after close')
    await rejectsWith(vol.readPage(0), 'HEXAD_CLOSED', /closed/, 'readPage after close')
    throwsWith(() => vol.pinReadPoint(), 'HEXAD_CLOSED', /closed/, 'pinReadPoint after close')
    await rejectsWith(vol.segmentStats(), 'HEXAD_CLOSED', /closed/, 'segmentStats after close')
    await rejectsWith(() => vol.faults.stopWorker(0), 'HEXAD_CLOSED', /closed/, 'stopWorker after close')
    await rejectsWith(() => vol.faults.restartAZ(0), 'HEXAD_CLOSED', /closed/, 'restartAZ after close')
    // Bad input on a closed handle still reports the closed handle first, and stats() stays callable.
    await rejectsWith(vol.write([]), 'HEXAD_CLOSED', undefined, 'bad write after close')
    assert.ok(vol.stats().segments.every(s => !s.up), 'a closed handle reports no segment up')
  } finally {
    rmTempDir(dir)
  }
})

test('close waits for writes in flight: each resolves and is present after reopen; reads in flight answer or get HEXAD_CLOSED', async () => {
  await withSeed(FILE, 'close-inflight', SEED, 3, async rng => {
    const dir = makeTempDir('close-inflight')
    try {
      const history: MtrRecord[] = []
      const vol = await openVolume(smallOptions(dir))
      await writeBatch(vol, rng, 20, history)
      const before = modelAt(history, Infinity)
      const batch: MtrRecord[] = Array.from({ length: 40 }, () => ({ mtr: randomMtr(rng, PAGES, PAGE_SIZE), lsn: 0 }))
      const writes = batch.map(h => vol.write(h.mtr).then(r => { h.lsn = r.lsn }))
      const reads = PAGES.map(p => vol.readPage(p).then(b => ({ p, b }), (e: unknown) => ({ p, e })))
      await vol.close()
      await Promise.all(writes) // every write issued before close() resolves
      history.push(...batch)
      for (const r of await Promise.all(reads)) {
        if ('e' in r) {
          assert.ok(r.e instanceof HexadError && r.e.code === 'HEXAD_CLOSED', `read of page ${r.p} in flight at close failed with ${String(r.e)}`)
        } else {
          // read at the VDL when it was issued: the state before the batch
          assertPage(r.b, before.get(r.p), `read of page ${r.p} in flight at close`)
        }
      }
      const again = await openVolume(smallOptions(dir))
      try {
        await checkAllPages(again, modelAt(history, Infinity), PAGES, 'after reopen')
      } finally {
        await again.close()
      }
    } finally {
      rmTempDir(dir)
    }
  })
})

test('await using / Symbol.asyncDispose closes the volume', async () => {
  const dir = makeTempDir('dispose')
  try {
    let escaped: Volume | null = null
    {
      await using vol = await openVolume(smallOptions(dir))
      escaped = vol
      await vol.write([{ pageId: 4, ops: [{ op: 'fill', offset: 0, len: 4, byte: 8 }] }])
    }
    await rejectsWith(escaped!.write([{ pageId: 4, ops: [{ op: 'init' }] }]), 'HEXAD_CLOSED', undefined, 'write after await using')
    const vol2 = await openVolume(smallOptions(dir))
    try {
      const page = await vol2.readPage(4)
      assert.equal(Array.from(page.subarray(0, 5)), [8, 8, 8, 8, 0])
      await vol2[Symbol.asyncDispose]()
      throwsWith(() => vol2.pinReadPoint(), 'HEXAD_CLOSED', undefined, 'pin after asyncDispose')
    } finally {
      await vol2.close()
    }
    // Read points are disposable too.
    const vol3 = await openVolume(smallOptions(dir))
    try {
      const model = new PageModel()
      model.applyMtr([{ pageId: 4, ops: [{ op: 'fill', offset: 0, len: 4, byte: 8 }] }])
      let at = 0
      {
        using rp = vol3.pinReadPoint()
        at = rp.lsn
        await vol3.write([{ pageId: 4, ops: [{ op: 'fill', offset: 0, len: 4, byte: 9 }] }])
        assertPage(await vol3.readPage(4, { at }), model.get(4), 'read at a pinned point')
      }
      assert.ok(at > 0)
    } finally {
      await vol3.close()
    }
  } finally {
    rmTempDir(dir)
  }
})

test('another process cannot open a volume in use: HEXAD_LOCKED', async () => {
  const dir = makeTempDir('locked')
  const vol = await openVolume(smallOptions(dir))
  try {
    const engine = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'engine', 'index.js')
    const script = `import(${JSON.stringify(engine)}).then(async m => { try { const v = await m.openVolume({ dir: ${JSON.stringify(dir)} }); await v.close(); console.log('OPENED') } catch (e) { console.log('ERR', e.code, e.message) } })`
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 30_000 })
    assert.match(r.stdout, /ERR HEXAD_LOCKED .*in use by process/, `child said: ${r.stdout} ${r.stderr}`)
    // and this process's handle is undisturbed
    await vol.write([{ pageId: 0, ops: [{ op: 'fill', offset: 0, len: 1, byte: 1 }] }])
    assert.is((await vol.readPage(0))[0], 1)
  } finally {
    await vol.close()
    rmTempDir(dir)
  }
})

test('segmentNice renices the six segment threads and nothing else (Linux); 0 leaves them', async () => {
  if (process.platform !== 'linux') return
  /** nice values of this process's threads, by thread id (field 19 of /proc/self/task/<tid>/stat) */
  // A thread listed may end before its stat is read (a worker parked by an earlier close): skipped.
  const niceOf = () => new Map(fs.readdirSync('/proc/self/task').flatMap(t => {
    let stat: string
    try { stat = fs.readFileSync(`/proc/self/task/${t}/stat`, 'utf8') } catch (err) { if ((err as NodeJS.ErrnoException).code === 'ENOENT') return []; throw err }
    return [[t, Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16])] as [string, number]]
  }))
  // Threads parked by the tests before this one end within 2 s; a nice-0 open would otherwise reuse them.
  for (const until = Date.now() + 10_000; parkedSegmentThreads() > 0 && Date.now() < until;) await new Promise(r => setTimeout(r, 100))
  assert.is(parkedSegmentThreads(), 0, 'no parked segment threads left from earlier tests')
  const before = niceOf()
  const own = before.get(String(process.pid))!
  // A worker is never given a higher priority than the process runs at.
  const reniced = Math.max(own, 7)
  for (const nice of [7, 0]) {
    const dir = makeTempDir(`nice-${nice}`)
    // The threads of the nice-7 round are parked after its close (for reuse at nice 7 only), so
    // "new" means new since just before this open: the nice-0 volume must start six threads of its own.
    const existing = niceOf()
    const vol = await openVolume(smallOptions(dir, { segmentNice: nice }))
    try {
      const fresh = [...niceOf()].filter(([t]) => !existing.has(t))
      const at = (n: number) => fresh.filter(([, x]) => x === n).length
      if (nice === 7 && reniced !== own) {
        assert.is(at(reniced), 6, `segmentNice 7: six new threads at nice ${reniced}: ${JSON.stringify(fresh)}`)
        assert.is(at(own), fresh.length - 6, `segmentNice 7: every other new thread at the process's nice ${own}: ${JSON.stringify(fresh)}`)
      } else {
        assert.is(at(own), fresh.length, `segmentNice ${nice}: every new thread at the process's nice ${own}: ${JSON.stringify(fresh)}`)
      }
      assert.ok(fresh.length >= 6, `six segment threads at least: ${JSON.stringify(fresh)}`)
      assert.is(niceOf().get(String(process.pid)), own, 'the main thread keeps its priority')
      await vol.write([{ pageId: 1, ops: [{ op: 'fill', offset: 0, len: 8, byte: 1 }] }])
    } finally {
      await vol.close()
      rmTempDir(dir)
    }
  }
})

test.run()
