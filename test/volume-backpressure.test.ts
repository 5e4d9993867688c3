/**
 * Backpressure (LAL and in-flight bytes): with the write quorum gone, a
 * writer may not run more than `lalLsns` LSNs past the VDL, nor hold more
 * than `inflightBytesMax` bytes of undurable redo; further writes wait
 * without allocating, and all of them complete once the quorum is back.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { openVolume } from '../engine/index.js'
import { cleanupTempDirs, makeTempDir, rmTempDir, sleep, smallOptions, waitFor } from './helpers/volume-helpers.js'

test.after(() => cleanupTempDirs())

const write = (page: number, n: number) => [{ pageId: page, ops: [{ op: 'write' as const, offset: 0, bytes: new Uint8Array(n).fill(page) }] }]

test('LAL: without a write quorum, allocation stops LAL past the VDL; writes resume when segments return', async () => {
  const dir = makeTempDir('lal')
  const vol = await openVolume(smallOptions(dir, { lalLsns: 50, quorumTimeoutMs: 60_000 }))
  try {
    await vol.write(write(1, 8))
    const vdl0 = vol.vdl
    await vol.faults.stopAZ(0)
    await vol.faults.stopWorker(2) // 3 of 6 left: nothing more can become durable
    const results: Array<Promise<unknown>> = []
    for (let i = 0; i < 200; i++) results.push(vol.write(write(i % 16, 8)))
    await sleep(200)
    const s = vol.stats()
    assert.is(s.vdl, vdl0, 'nothing became durable without a quorum')
    // The first write moved the VDL past the recovery truncation, so the bound is LAL past the VDL.
    const allocatedSince = s.nextLsn - 1 - vdl0
    assert.ok(allocatedSince <= 50, `allocated ${allocatedSince} LSNs past the VDL with LAL 50`)
    assert.ok(allocatedSince >= 40, `writes up to the limit were allocated (${allocatedSince})`)
    await vol.faults.restartAZ(0)
    await vol.faults.restartWorker(2)
    const settled = await Promise.allSettled(results)
    assert.equal(settled.filter(r => r.status === 'rejected').length, 0, 'every waiting write completed')
    assert.ok(vol.vdl >= vdl0 + 200, `VDL moved past all 200 writes (${vol.vdl - vdl0})`)
  } finally {
    await vol.close()
    rmTempDir(dir)
  }
})

test('inflightBytesMax: undurable redo bytes stay bounded; an MTR larger than the bound is refused', async () => {
  const dir = makeTempDir('inflight')
  const vol = await openVolume(smallOptions(dir, { inflightBytesMax: 64 * 1024, quorumTimeoutMs: 60_000 }))
  try {
    let err: unknown
    try { await vol.write(write(3, 4096).concat(Array.from({ length: 20 }, (_, i) => write(4 + i, 4096)[0]))) } catch (e) { err = e }
    assert.is((err as { code?: string })?.code, 'HEXAD_BAD_INPUT', 'an 84 KB MTR exceeds a 64 KB in-flight bound')
    await vol.faults.stopAZ(1)
    await vol.faults.stopWorker(0)
    const results: Array<Promise<unknown>> = []
    for (let i = 0; i < 100; i++) results.push(vol.write(write(i % 32, 4000)))
    await sleep(200)
    const held = vol.stats().inflightBytes
    assert.ok(held <= 64 * 1024, `in-flight bytes ${held} stay within 64 KiB`)
    assert.ok(held > 32 * 1024, `writes filled the window (${held})`)
    await vol.faults.restartAZ(1)
    await vol.faults.restartWorker(0)
    const settled = await Promise.allSettled(results)
    assert.equal(settled.filter(r => r.status === 'rejected').length, 0)
    assert.ok(await waitFor(() => vol.stats().inflightBytes === 0, 5000), 'nothing left in flight')
  } finally {
    await vol.close()
    rmTempDir(dir)
  }
})

test.run()
