/**
 * The MTR's redo generator: diff(before, after) must produce write ops that
 * turn `before` into `after` exactly, for edits of every size and alignment,
 * on aligned pages (the word-at-a-time path) and on unaligned views (the
 * byte path); identical pages produce no ops.
 *
 * An MTR's redo for a page (the memmoves of its compactions as `move` ops,
 * then the diff; or an init, sparse when the page's zeros lie in its middle)
 * rebuilds the page exactly from its image before the MTR, and a compaction
 * ships a few hundred bytes, not the page.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { encodeOp, applyEncodedOp } from '../engine/common/page-ops.js'
import { BufferCache } from '../engine/compute/buffer-cache.js'
import { diff, Mtr, opBytes } from '../engine/compute/mtr.js'
import { PAGE_TYPE_LEAF, checkPage, initNode, insertCellBytes, leafCellBytes, nodeFits, removeCell, shrinkLeafValue, slotCount, slotOffset, writeLeafCell, leafValueLength } from '../engine/compute/page-format.js'
import type { PageWrite } from '../engine/volume/volume.js'

function prng(seed: number): () => number {
  let s = seed >>> 0
  return () => { s = (s + 0x6d2b79f5) >>> 0; let t = s; t = Math.imul(t ^ (t >>> 15), t | 1); t ^= t + Math.imul(t ^ (t >>> 7), t | 61); return ((t ^ (t >>> 14)) >>> 0) / 4294967296 }
}

function check(before: Uint8Array, after: Uint8Array, what: string): number {
  const ops = diff(before, after)
  const page = before.slice()
  for (const op of ops) applyEncodedOp(page, encodeOp(op))
  assert.equal(Buffer.compare(page, after), 0, `${what}: applying the diff does not give the new page`)
  return ops.length
}

test('identical pages give no ops', () => {
  const a = new Uint8Array(4096).map((_, i) => i * 7)
  assert.is(diff(a, a.slice()).length, 0)
})

test('random edits of every size and alignment round-trip, aligned and unaligned', () => {
  const rnd = prng(42)
  for (let round = 0; round < 2000; round++) {
    const size = [4096, 8192, 1024][round % 3]
    const shift = round % 4 // 0: aligned views; 1..3: views at odd offsets (byte path)
    const bufA = new Uint8Array(size + 8), bufB = new Uint8Array(size + 8)
    const a = bufA.subarray(shift, shift + size), b = bufB.subarray(shift, shift + size)
    for (let i = 0; i < size; i++) a[i] = rnd() < 0.5 ? 0 : (rnd() * 256) | 0
    b.set(a)
    const edits = (rnd() * 12) | 0
    for (let e = 0; e < edits; e++) {
      const len = 1 + ((rnd() * (rnd() < 0.8 ? 40 : size / 2)) | 0)
      const at = (rnd() * (size - len)) | 0
      if (rnd() < 0.3) { const from = (rnd() * (size - len)) | 0; b.copyWithin(at, from, from + len) } // a shifted region, as a slot-array insert makes
      else for (let i = at; i < at + len; i++) b[i] = (rnd() * 256) | 0
    }
    // edits at the very first and last bytes
    if (round % 7 === 0) b[0] ^= 1
    if (round % 11 === 0) b[size - 1] ^= 0x80
    const n = check(a, b, `round ${round} (size ${size}, offset ${shift})`)
    if (Buffer.compare(a, b) === 0) assert.is(n, 0)
    else assert.ok(n > 0)
  }
})

/** A cache over a volume where nothing was ever written: every page reads as zeros. */
function emptyCache(pageSize: number): BufferCache {
  return new BufferCache({ readPage: async () => new Uint8Array(pageSize) } as never, 1 << 20)
}

/** What storage does with an MTR's redo for one page. */
function applyWrite(page: Uint8Array, w: PageWrite): Uint8Array {
  const out = page.slice()
  for (const op of w.ops) applyEncodedOp(out, encodeOp(op))
  return out
}

const shipped = (w: PageWrite): number => opBytes(w.ops)

function leafCell(i: number, valueBytes: number, rnd: () => number): Uint8Array {
  const key = new TextEncoder().encode(`key-${String(i).padStart(6, '0')}`)
  const value = new Uint8Array(valueBytes).map(() => (rnd() * 256) | 0)
  const cell = new Uint8Array(leafCellBytes(key.length, value.length, false))
  writeLeafCell(cell, 0, key, value.length, value, 0)
  return cell
}

test('a new page ships as a sparse init: the free space in its middle is not sent', async () => {
  const rnd = prng(7)
  const mtr = new Mtr(emptyCache(4096), 4096)
  const p = mtr.create(5)
  initNode(p, PAGE_TYPE_LEAF, 0)
  for (let i = 0; i < 10; i++) { const c = leafCell(i, 40, rnd); insertCellBytes(p, i, c, 0, c.length) }
  const { writes } = mtr.finish()
  assert.is(writes.length, 1)
  assert.equal(applyWrite(new Uint8Array(4096).fill(0xee), writes[0]), p, 'init + writes rebuild the page from anything')
  assert.ok(shipped(writes[0]) < 1200, `a page with ${slotCount(p)} small cells ships ${shipped(writes[0])} bytes`)
})

test('compactions ship as moves: the redo rebuilds the page and is far smaller than the page', async () => {
  const rnd = prng(11)
  for (let round = 0; round < 60; round++) {
    const cache = emptyCache(4096)
    // a full leaf, published as the image before the MTR
    const setup = new Mtr(cache, 4096)
    const p0 = setup.create(3)
    initNode(p0, PAGE_TYPE_LEAF, 0)
    for (let i = 0; ; i++) {
      const c = leafCell(i, 20 + ((rnd() * 60) | 0), rnd)
      if (!nodeFits(p0, c.length)) break
      insertCellBytes(p0, slotCount(p0), c, 0, c.length)
    }
    setup.finish()
    const before = (await cache.get(3)).slice()
    // replace values with longer ones (remove + insert: the page compacts), shrink others in place
    const mtr = new Mtr(cache, 4096)
    const p = await mtr.write(3)
    const edits = 1 + ((rnd() * 8) | 0)
    for (let e = 0; e < edits; e++) {
      const i = (rnd() * slotCount(p)) | 0
      if (rnd() < 0.3) {
        const off = slotOffset(p, i)
        const len = leafValueLength(p, off)
        shrinkLeafValue(p, off, new Uint8Array((rnd() * len) | 0).fill(e + 1))
        continue
      }
      removeCell(p, i)
      const c = leafCell(100000 + round * 10 + e, 30 + ((rnd() * 60) | 0), rnd)
      // a key that sorts where the removed one was is not needed: the page's invariants hold for any order of slots
      if (nodeFits(p, c.length)) insertCellBytes(p, i, c, 0, c.length)
    }
    const { writes } = mtr.finish()
    const after = await cache.get(3)
    assert.is(checkPage(after), null, `round ${round}: the page is valid`)
    assert.equal(applyWrite(before, writes[0]), after, `round ${round}: the redo rebuilds the page`)
    if (writes[0].ops.some(op => op.op === 'move')) assert.ok(shipped(writes[0]) < 1024, `round ${round}: a compaction shipped ${shipped(writes[0])} bytes`)
  }
  // and the moves did happen: a page that must compact ships at least one
  const cache = emptyCache(4096)
  const setup = new Mtr(cache, 4096)
  const p0 = setup.create(4)
  initNode(p0, PAGE_TYPE_LEAF, 0)
  for (let i = 0; ; i++) { const c = leafCell(i, 50, rnd); if (!nodeFits(p0, c.length)) break; insertCellBytes(p0, i, c, 0, c.length) }
  setup.finish()
  const mtr = new Mtr(cache, 4096)
  const p = await mtr.write(4)
  removeCell(p, 3) // a hole in the middle of the cell area
  const c = leafCell(3, 50, rnd)
  insertCellBytes(p, 3, c, 0, c.length)
  const { writes } = mtr.finish()
  assert.ok(writes[0].ops.some(op => op.op === 'move'), 'the compaction shipped as moves')
  assert.ok(shipped(writes[0]) < 600, `one replaced cell in a full page ships ${shipped(writes[0])} bytes`)
})

test.run()
