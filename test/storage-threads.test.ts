/**
 * Segment threads are reused across opens in one process: a clean close
 * parks each thread (its segment's files closed), the next open in the
 * process gives it a new segment to run, and a parked thread ends on its own
 * after a short while. A thread that was stopped or failed is never parked.
 */
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { openVolume, type Volume } from '../engine/index.js'
import { parkedSegmentThreads } from '../engine/storage/storage.js'

const dirs: string[] = []
const tmp = () => { const d = fs.mkdtempSync(path.join(os.tmpdir(), 'hexad-threads-')); dirs.push(d); return d }
test.after(() => { for (const d of dirs) fs.rmSync(d, { recursive: true, force: true }) })

const put = (vol: Volume, pageId: number, byte: number) => vol.write([{ pageId, ops: [{ op: 'write', offset: 8, bytes: new Uint8Array([byte]) }] }])
const byteAt = async (vol: Volume, pageId: number) => (await vol.readPage(pageId))[8]

test('a clean close parks the six threads; the next open, of the same volume or another, runs its segments on them', async () => {
  const a = tmp(), b = tmp()
  let vol = await openVolume({ dir: a })
  await put(vol, 1, 11)
  await vol.close()
  assert.is(parkedSegmentThreads(), 6)
  // Another volume on the parked threads: its own files, its own data.
  vol = await openVolume({ dir: b })
  assert.is(parkedSegmentThreads(), 0)
  assert.is(await byteAt(vol, 1), 0, 'volume b does not see volume a\'s page')
  await put(vol, 1, 22)
  await vol.close()
  assert.is(parkedSegmentThreads(), 6)
  vol = await openVolume({ dir: a })
  assert.is(await byteAt(vol, 1), 11)
  await put(vol, 2, 33)
  assert.equal((await vol.segmentStats()).map(s => s !== null), [true, true, true, true, true, true], 'every segment answers on a reused thread')
  await vol.close()
  vol = await openVolume({ dir: b })
  assert.is(await byteAt(vol, 1), 22)
  await vol.close()
})

test('a stopped segment\'s thread is not parked; parked threads end on their own', async () => {
  const vol = await openVolume({ dir: tmp() })
  await vol.faults.stopWorker(2)
  await put(vol, 1, 5)
  await vol.close()
  assert.is(parkedSegmentThreads(), 5, 'the stopped segment\'s thread ended')
  const until = Date.now() + 10_000
  while (parkedSegmentThreads() > 0 && Date.now() < until) await new Promise(r => setTimeout(r, 100))
  assert.is(parkedSegmentThreads(), 0, 'parked threads ended within 10 s')
})

test.run()
