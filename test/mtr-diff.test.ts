/**
 * The MTR's redo generator: diff(before, after) must produce write ops that
 * turn `before` into `after` exactly, for edits of every size and alignment,
 * on aligned pages (the word-at-a-time path) and on unaligned views (the
 * byte path); identical pages produce no ops.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { encodeOp, applyEncodedOp } from '../engine/common/page-ops.js'
import { diff } from '../engine/compute/mtr.js'

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

test.run()
