/**
 * Group commit's wait (commitDelayMs / commitSiblings, write()'s `siblings`):
 * a frame that could ship waits for the MTRs its writers said are coming,
 * ships as soon as they are in, never longer than commitDelayMs, never for a
 * writer alone, and not past a close. The key-value store counts its open
 * writers as the siblings (a rolled-back one stops counting).
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { openCluster, openVolume, type Volume } from '../engine/index.js'
import { cleanupTempDirs, makeTempDir, rmTempDir, sleep, smallOptions } from './helpers/volume-helpers.js'
import { kvOptions, settlesWithin } from './helpers/kv-helpers.js'

test.after(() => cleanupTempDirs())

const write = (page: number, fill: number) => [{ pageId: page, ops: [{ op: 'write' as const, offset: 0, bytes: new Uint8Array(16).fill(fill) }] }]

/** Tracks whether a promise has settled, without awaiting it. */
function track<T>(p: Promise<T>): { p: Promise<T>; settled: () => boolean } {
  let done = false
  p.then(() => { done = true }, () => { done = true })
  return { p, settled: () => done }
}

async function withVol(tag: string, over: Parameters<typeof smallOptions>[1], fn: (vol: Volume) => Promise<void>): Promise<void> {
  const dir = makeTempDir(tag)
  const vol = await openVolume(smallOptions(dir, over))
  try {
    await vol.write(write(0, 1)) // the first write after open carries the recovery's truncation
    await fn(vol)
  } finally {
    await vol.close()
    rmTempDir(dir)
  }
}

test('a frame waits for the siblings its writers announced and ships as soon as they are in', async () => {
  await withVol('gc-siblings', { commitDelayMs: 10_000 }, async vol => {
    const s0 = vol.stats()
    const first = track(vol.write(write(1, 1), { siblings: 4 })) // 4 more to come: wait for 5 MTRs
    await sleep(150)
    assert.not.ok(first.settled(), 'the write waits for its siblings')
    assert.is(vol.stats().framesShipped, s0.framesShipped, 'no frame shipped while waiting')
    const more = [2, 3, 4].map(p => track(vol.write(write(p, p), { siblings: 4 })))
    await sleep(60)
    assert.not.ok(first.settled() || more.some(m => m.settled()), 'four of five MTRs are not enough')
    const last = vol.write(write(5, 5), { siblings: 4 })
    const lsns = await settlesWithin(Promise.all([first.p, ...more.map(m => m.p), last]), 5000, 'the five writes (commitDelayMs is 10 s)')
    const s1 = vol.stats()
    assert.is(s1.framesShipped - s0.framesShipped, 1, 'the five MTRs shipped in one frame')
    assert.is(s1.framesHeld - s0.framesHeld, 1, 'that frame counts as held')
    assert.ok(lsns.every(r => r.lsn <= vol.vdl), 'all five are durable')
    for (const p of [1, 2, 3, 4, 5]) assert.is((await vol.readPage(p))[0], p, `page ${p} reads back`)
  })
})

test('commitDelayMs bounds the wait', async () => {
  await withVol('gc-bound', { commitDelayMs: 300 }, async vol => {
    const s0 = vol.stats()
    const t0 = performance.now()
    const w = track(vol.write(write(1, 7), { siblings: 10 }))
    await sleep(100)
    assert.not.ok(w.settled(), 'still waiting at 100 ms of 300')
    await settlesWithin(w.p, 5000, 'the held write')
    const waited = performance.now() - t0
    assert.ok(waited >= 290, `the write waited out commitDelayMs (${waited.toFixed(0)} ms)`)
    assert.is(vol.stats().framesHeld - s0.framesHeld, 1)
  })
})

test('a writer alone, fewer siblings than commitSiblings, or commitDelayMs 0 never waits', async () => {
  await withVol('gc-alone', { commitDelayMs: 10_000 }, async vol => {
    const s0 = vol.stats()
    await settlesWithin((async () => {
      for (let i = 0; i < 10; i++) await vol.write(write(1 + (i % 4), i))
      for (let i = 0; i < 10; i++) await vol.write(write(1 + (i % 4), i), { siblings: 3 }) // commitSiblings is 4
    })(), 5000, '20 writes one after another')
    const s1 = vol.stats()
    assert.is(s1.framesHeld, s0.framesHeld, 'no frame was held')
    assert.is(s1.framesShipped - s0.framesShipped, 20, 'each write shipped in its own frame')
  })
  await withVol('gc-off', { commitDelayMs: 0 }, async vol => {
    const s0 = vol.stats()
    await settlesWithin(vol.write(write(1, 1), { siblings: 50 }), 5000, 'a write with commitDelayMs 0')
    assert.is(vol.stats().framesHeld, s0.framesHeld)
  })
})

test('close ships a held frame at once', async () => {
  const dir = makeTempDir('gc-close')
  const vol = await openVolume(smallOptions(dir, { commitDelayMs: 60_000 }))
  await vol.write(write(0, 1))
  const w = track(vol.write(write(3, 9), { siblings: 20 }))
  await sleep(50)
  assert.not.ok(w.settled())
  await settlesWithin(vol.close(), 5000, 'close with a held frame (commitDelayMs 60 s)')
  assert.ok(w.settled(), 'the held write settled before close returned')
  const { lsn } = await w.p
  const again = await openVolume(smallOptions(dir))
  try {
    assert.ok(again.vdl >= lsn, 'the held write is durable')
    assert.is((await again.readPage(3))[0], 9)
  } finally {
    await again.close()
    rmTempDir(dir)
  }
})

test('bad siblings and options are refused', async () => {
  await withVol('gc-bad', {}, async vol => {
    for (const bad of [-1, 1.5, Number.NaN, '3' as unknown as number]) {
      let err: unknown
      try { await vol.write(write(1, 1), { siblings: bad }) } catch (e) { err = e }
      assert.is((err as { code?: string })?.code, 'HEXAD_BAD_INPUT', `siblings ${String(bad)}`)
    }
  })
  for (const [k, v] of [['commitDelayMs', -1], ['commitSiblings', 0], ['commitDelayMs', 2.5]] as const) {
    const dir = makeTempDir('gc-bad-open')
    let err: unknown
    try { await (await openVolume(smallOptions(dir, { [k]: v }))).close() } catch (e) { err = e }
    assert.is((err as { code?: string })?.code, 'HEXAD_BAD_INPUT', `${k} ${v}`)
    rmTempDir(dir)
  }
})

test('the key-value store announces its open writers; a rolled-back writer stops counting', async () => {
  const dir = makeTempDir('gc-kv')
  const cluster = await openCluster(kvOptions(dir, { commitDelayMs: 10_000 }))
  try {
    const db = cluster.writer
    await db.put('warm', '1')
    const s0 = cluster.volume.stats()
    // Six writers commit in one turn: the first group is told of five more and waits for them.
    const txs = Array.from({ length: 6 }, () => db.begin())
    for (const [i, tx] of txs.entries()) await tx.put(`k${i}`, String(i))
    await settlesWithin(Promise.all(txs.map(tx => tx.commit())), 5000, 'six concurrent commits (commitDelayMs is 10 s)')
    const s1 = cluster.volume.stats()
    assert.ok(s1.framesHeld > s0.framesHeld, 'a frame waited for the siblings')
    for (let i = 0; i < 6; i++) assert.is(await db.getString(`k${i}`), String(i))
    // Five writers that roll back, then one alone: nothing is coming, so it must not wait 10 s.
    for (let i = 0; i < 5; i++) { const tx = db.begin(); await tx.put(`gone${i}`, 'x'); tx.rollback() }
    const s2 = cluster.volume.stats()
    await settlesWithin((async () => { for (let i = 0; i < 5; i++) await db.put(`solo${i}`, 'y') })(), 5000, 'five puts one after another')
    assert.is(cluster.volume.stats().framesHeld, s2.framesHeld, 'no frame waited for a writer that rolled back')
    assert.is(await db.getString('gone0'), undefined)
  } finally {
    await cluster.close()
    rmTempDir(dir)
  }
})

test.run()
