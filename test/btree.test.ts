/**
 * B+tree tests against the in-memory PageAccess (test/helpers/memory-pages.ts):
 * a seeded differential test against a sorted-Map model with verify() along
 * the way, scans with every bound kind, iteration across concurrent MTRs,
 * limits, page reuse, drop, and verify() catching planted corruption.
 *
 * Model keys are latin1 strings: JS compares strings by UTF-16 code unit, so
 * latin1 strings sort exactly like the bytes (unsigned, prefix first).
 *
 * Replay a failure with HEXAD_SEED=<base seed printed on failure>.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { allocate, free, initSuperblock, listFreePages, readSuperblock } from '../engine/compute/allocator.js'
import { BTree, MAX_VALUE_BYTES, compareKeys, maxInlineValueBytes, maxKeyBytes, type Entry, type RangeOptions, type ScanBounds } from '../engine/compute/btree.js'
import {
  PAGE_TYPE_FREE, PAGE_TYPE_INTERNAL, PAGE_TYPE_LEAF, checkPage, childAt, leafRight, overflowCapacityBytes, pageType, readU16, sealPage,
  setLeafRight, slotCount, slotOffset, writeU16,
} from '../engine/compute/page-format.js'
import { MemoryPages } from './helpers/memory-pages.js'
import { Rng, baseSeed, rejectsWith, withSeed } from './helpers/volume-helpers.js'

const FILE = 'btree'
const SEED = baseSeed()

// ------------------------------------------------------------------ helpers

const enc = (s: string) => new Uint8Array(Buffer.from(s, 'latin1'))
const str = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('latin1')
const show = (s: string) => JSON.stringify(s.length > 40 ? s.slice(0, 40) + '…' : s)

type Model = Map<string, Uint8Array>

async function newTree(pageSize: number): Promise<{ store: MemoryPages; tree: BTree }> {
  const store = new MemoryPages(pageSize)
  const root = await store.mtr(pa => initSuperblock(pa))
  return { store, tree: new BTree(root) }
}

async function verifyClean(store: MemoryPages, tree: BTree, what: string): Promise<void> {
  const problems = await store.mtr(pa => tree.verify(pa))
  if (problems.length > 0) assert.unreachable(`${what}: verify found ${problems.length} problems:\n  ${problems.slice(0, 10).join('\n  ')}`)
}

function highWater(store: MemoryPages): number {
  return readSuperblock(store.pages.get(0)!)!.highWater
}

/**
 * Keys with shared prefixes (some keys are prefixes of others) and lengths
 * 1..maxKey. `long` makes most keys share long prefixes, so separators are
 * long and internal pages hold few children (more internal splits, merges
 * and redistributions).
 */
function keyGen(rng: Rng, pageSize: number, long = false): () => Uint8Array {
  const max = maxKeyBytes(pageSize)
  const prefixes = Array.from({ length: 12 }, () => {
    const len = long ? rng.int(max - 16, max - 4) : rng.int(0, 12)
    return Array.from({ length: len }, () => rng.pick([0, 1, 0x61, 0x62, 0x7f, 0x80, 0xff]))
  })
  return () => {
    const p = rng.pick(prefixes)
    const r = rng.float()
    const suffixLen = r < 0.05 ? max : r < 0.1 ? rng.int(0, max) : rng.int(0, 6)
    const bytes = [...p]
    for (let i = 0; i < suffixLen && bytes.length < max; i++) bytes.push(rng.bool(0.6) ? rng.int(0x61, 0x64) : rng.int(0, 255))
    if (bytes.length === 0) bytes.push(rng.int(0, 255))
    return new Uint8Array(bytes.slice(0, max))
  }
}

/** Values from 0 bytes to a few overflow pages, with the inline/overflow boundaries hit on purpose. */
function valueGen(rng: Rng, pageSize: number): () => Uint8Array {
  const inline = maxInlineValueBytes(pageSize)
  const cap = overflowCapacityBytes(pageSize)
  return () => {
    const r = rng.float()
    const len = r < 0.1 ? 0
      : r < 0.55 ? rng.int(1, 40)
        : r < 0.75 ? rng.int(41, inline)
          : r < 0.8 ? rng.pick([inline, inline + 1, cap, cap + 1, 2 * cap, 3 * cap - 1])
            : rng.int(inline + 1, 3 * cap)
    const v = new Uint8Array(len)
    let x = rng.int(1, 0x7fffffff)
    for (let i = 0; i < len; i++) { x = (x * 1103515245 + 12345) >>> 0; v[i] = x >>> 24 }
    return v
  }
}

function sortedKeys(model: Model): string[] {
  return [...model.keys()].sort()
}

function inBounds(k: string, b: ScanBounds): boolean {
  return (b.gt === undefined || k > str(b.gt)) && (b.gte === undefined || k >= str(b.gte)) &&
    (b.lt === undefined || k < str(b.lt)) && (b.lte === undefined || k <= str(b.lte))
}

/** What a scan must return, computed from the model independently of the tree. */
function modelRange(sorted: string[], model: Model, o: RangeOptions): Array<[string, Uint8Array]> {
  let keys = sorted.filter(k => inBounds(k, o))
  if (o.reverse) keys.reverse()
  if (o.limit !== undefined) keys = keys.slice(0, o.limit)
  return keys.map(k => [k, model.get(k)!])
}

function assertEntries(actual: Entry[], expected: Array<[string, Uint8Array]>, what: string): void {
  const got = actual.map(([k]) => str(k))
  const want = expected.map(([k]) => k)
  if (got.length !== want.length || got.some((k, i) => k !== want[i])) {
    const i = got.findIndex((k, j) => k !== want[j])
    assert.unreachable(`${what}: got ${got.length} keys, expected ${want.length}; first difference at #${i}: ${show(got[i] ?? '(none)')} vs ${show(want[i] ?? '(none)')}`)
  }
  for (let i = 0; i < actual.length; i++) {
    if (!Buffer.from(actual[i][1]).equals(expected[i][1])) assert.unreachable(`${what}: value of ${show(want[i])} differs (${actual[i][1].length} vs ${expected[i][1].length} bytes)`)
  }
}

async function collect(store: MemoryPages, tree: BTree, o: RangeOptions): Promise<Entry[]> {
  return await store.mtr(async pa => {
    const out: Entry[] = []
    const bound = (await tree.count(pa)) + 1
    for await (const e of tree.range(pa, o)) {
      out.push(e)
      if (out.length > bound) assert.unreachable(`range returned more entries than the tree holds (${bound - 1})`)
    }
    return out
  })
}

/** Random bounds: keys of the model, near misses around them, prefixes, and random keys. */
function randomBound(rng: Rng, sorted: string[], newKey: () => Uint8Array): Uint8Array {
  const r = rng.float()
  if (sorted.length > 0 && r < 0.4) return enc(rng.pick(sorted))
  if (sorted.length > 0 && r < 0.55) return enc(rng.pick(sorted) + '\0')
  if (sorted.length > 0 && r < 0.7) { const k = rng.pick(sorted); return enc(k.slice(0, Math.max(1, k.length - 1))) }
  return newKey()
}

function randomRangeOptions(rng: Rng, sorted: string[], newKey: () => Uint8Array): RangeOptions {
  const o: RangeOptions = {}
  const lower = rng.int(0, 2), upper = rng.int(0, 2)
  if (lower === 1) o.gt = randomBound(rng, sorted, newKey)
  if (lower === 2) o.gte = randomBound(rng, sorted, newKey)
  if (upper === 1) o.lt = randomBound(rng, sorted, newKey)
  if (upper === 2) o.lte = randomBound(rng, sorted, newKey)
  // Mostly non-empty ranges: order the two bounds.
  const lo = o.gt ?? o.gte, hi = o.lt ?? o.lte
  if (lo && hi && compareKeys(lo, hi) > 0 && rng.bool(0.8)) {
    if (o.gt) o.gt = hi; else o.gte = hi
    if (o.lt) o.lt = lo; else o.lte = lo
  }
  if (rng.bool(0.5)) o.reverse = true
  const l = rng.float()
  if (l < 0.15) o.limit = 0
  else if (l < 0.3) o.limit = 1
  else if (l < 0.5) o.limit = rng.int(2, 200)
  return o
}

// ------------------------------------------------------------------ page format and allocator

test('page format: seal/check round trip; a flipped byte and a never-written page are reported', () => {
  const page = new Uint8Array(4096)
  assert.match(checkPage(page) ?? '', /never written/)
  page[4] = PAGE_TYPE_FREE
  sealPage(page)
  assert.is(checkPage(page), null)
  page[1000] ^= 0x10
  assert.match(checkPage(page) ?? '', /checksum mismatch/)
  page[1000] ^= 0x10
  assert.is(checkPage(page), null)
})

test('allocator: superblock is created once, the catalog root is an empty leaf, freed pages come back first', async () => {
  const store = new MemoryPages(512)
  const root = await store.mtr(pa => initSuperblock(pa))
  assert.is(await store.mtr(pa => initSuperblock(pa)), root, 'initSuperblock is idempotent')
  assert.is(checkPage(store.pages.get(0)!), null)
  assert.is(pageType(store.pages.get(root)!), PAGE_TYPE_LEAF)
  assert.is(readSuperblock(store.pages.get(0)!)!.catalogRoot, root)
  const ids = await store.mtr(async pa => [(await allocate(pa)).pageId, (await allocate(pa)).pageId, (await allocate(pa)).pageId])
  assert.equal(ids, [2, 3, 4])
  await store.mtr(async pa => { await free(pa, 3); await free(pa, 2) })
  assert.equal(await store.mtr(pa => listFreePages(pa)), [2, 3])
  assert.is(pageType(store.pages.get(3)!), PAGE_TYPE_FREE)
  assert.is(checkPage(store.pages.get(3)!), null)
  const again = await store.mtr(async pa => [(await allocate(pa)).pageId, (await allocate(pa)).pageId, (await allocate(pa)).pageId])
  assert.equal(again, [2, 3, 5])
  assert.is(highWater(store), 6)
  // Freeing a free page would make a cycle: a programmer error, so it crashes (not a HexadError).
  await store.mtr(pa => free(pa, 5))
  try {
    await store.mtr(pa => free(pa, 5))
    assert.unreachable('double free accepted')
  } catch (err) {
    assert.match(String(err), /already free/)
  }
})

// ------------------------------------------------------------------ differential

async function differential(rng: Rng, pageSize: number, ops: number, longKeys = false): Promise<void> {
  const { store, tree } = await newTree(pageSize)
  const model: Model = new Map()
  const newKey = keyGen(rng, pageSize, longKeys)
  const newValue = valueGen(rng, pageSize)
  let done = 0
  let verifies = 0
  // Three phases: growth, shrinking to (nearly) empty, then mixed; so splits, merges, borrows and root collapses all happen.
  const putShare = (i: number) => (i < ops * 0.4 ? 0.75 : i < ops * 0.7 ? 0.15 : 0.5)
  while (done < ops) {
    const batch = rng.int(1, 4)
    await store.mtr(async pa => {
      for (let j = 0; j < batch && done < ops; j++, done++) {
        const existing = model.size > 0 && rng.bool(0.6) ? rng.pick([...model.keys()]) : null
        const r = rng.float()
        if (r < putShare(done)) {
          const key = existing !== null && rng.bool(0.5) ? enc(existing) : newKey()
          const value = newValue()
          await tree.put(pa, key, value)
          model.set(str(key), value)
        } else if (r < putShare(done) + 0.3) {
          const key = existing !== null ? enc(existing) : newKey()
          const had = model.delete(str(key))
          assert.is(await tree.delete(pa, key), had, `op ${done}: delete of ${show(str(key))} should return ${had}`)
        } else {
          const key = existing !== null ? enc(existing) : newKey()
          const got = await tree.get(pa, key)
          const want = model.get(str(key))
          if (want === undefined) assert.is(got, undefined, `op ${done}: get of absent ${show(str(key))}`)
          else assert.ok(got !== undefined && Buffer.from(got).equals(want), `op ${done}: get of ${show(str(key))} returned ${got?.length} bytes, expected ${want.length}`)
        }
      }
    })
    if (done >= (verifies + 1) * 250) {
      verifies++
      await verifyClean(store, tree, `after op ${done}`)
    }
  }
  await verifyClean(store, tree, 'at the end')
  assert.is(await store.mtr(pa => tree.count(pa)), model.size)
  const sorted = sortedKeys(model)
  assertEntries(await collect(store, tree, {}), modelRange(sorted, model, {}), 'full forward scan')
  assertEntries(await collect(store, tree, { reverse: true }), modelRange(sorted, model, { reverse: true }), 'full reverse scan')
  for (const k of sorted) {
    const v = await store.mtr(pa => tree.get(pa, enc(k)))
    assert.ok(v !== undefined && Buffer.from(v).equals(model.get(k)!), `final get of ${show(k)}`)
  }
  // No page leaked: once the tree is emptied by drop, every page but the superblock is free.
  await store.mtr(pa => tree.drop(pa))
  const freed = await store.mtr(pa => listFreePages(pa))
  assert.is(new Set(freed).size, freed.length)
  assert.is(freed.length, highWater(store) - 1, `after drop: ${freed.length} free pages of ${highWater(store) - 1} allocated`)
}

test('differential: 20000 random puts/deletes/gets on 512-byte pages equal a sorted Map, verify() clean throughout', async () => {
  await withSeed(FILE, 'differential-512', SEED, 1, rng => differential(rng, 512, 20000))
})

test('differential: 10000 random operations with long shared-prefix keys on 512-byte pages (deep trees, narrow internal pages)', async () => {
  await withSeed(FILE, 'differential-long-keys', SEED, 7, rng => differential(rng, 512, 10000, true))
})

test('differential: 4000 random puts/deletes/gets on 4 KiB pages equal a sorted Map, verify() clean throughout', async () => {
  await withSeed(FILE, 'differential-4096', SEED, 2, rng => differential(rng, 4096, 4000))
})

// ------------------------------------------------------------------ scans

test('scans: forward and reverse with every bound kind and limits equal the model', async () => {
  await withSeed(FILE, 'scans', SEED, 3, async rng => {
    for (const pageSize of [512, 4096]) {
      const { store, tree } = await newTree(pageSize)
      const model: Model = new Map()
      const newKey = keyGen(rng, pageSize)
      const newValue = valueGen(rng, pageSize)
      // Empty tree first.
      assertEntries(await collect(store, tree, {}), [], 'empty tree forward')
      assert.equal(await store.mtr(pa => tree.scanLeaf(pa, { reverse: true }, null)), { entries: [], done: true })
      await store.mtr(async pa => {
        for (let i = 0; i < 1500; i++) {
          const k = newKey(), v = newValue()
          await tree.put(pa, k, v)
          model.set(str(k), v)
        }
      })
      await verifyClean(store, tree, `scan fixture ${pageSize}`)
      const sorted = sortedKeys(model)
      for (let q = 0; q < 300; q++) {
        const o = randomRangeOptions(rng, sorted, newKey)
        assertEntries(await collect(store, tree, o), modelRange(sorted, model, o), `page ${pageSize} query ${q} ${JSON.stringify({ ...o, gt: o.gt && str(o.gt), gte: o.gte && str(o.gte), lt: o.lt && str(o.lt), lte: o.lte && str(o.lte) })}`)
      }
      // scanLeaf alone: each call returns one leaf's worth after `after`; not done means entries follow.
      for (const reverse of [false, true]) {
        let after: Uint8Array | null = null
        let calls = 0
        const seen: Entry[] = []
        for (;;) {
          const { entries, done } = await store.mtr(pa => tree.scanLeaf(pa, { reverse }, after))
          calls++
          seen.push(...entries)
          if (done) break
          assert.ok(entries.length > 0, 'scanLeaf returned nothing without being done')
          after = entries[entries.length - 1][0]
        }
        assert.ok(calls > 3, `expected several leaves, got ${calls} calls`)
        assertEntries(seen, modelRange(sorted, model, { reverse }), `scanLeaf loop reverse=${reverse}`)
      }
    }
  })
})

test('scanLeaf iteration stays correct while other MTRs put and delete between calls', async () => {
  await withSeed(FILE, 'concurrent-iteration', SEED, 4, async rng => {
    const pageSize = 512
    const { store, tree } = await newTree(pageSize)
    const model: Model = new Map()
    const newKey = keyGen(rng, pageSize)
    const newValue = valueGen(rng, pageSize)
    await store.mtr(async pa => {
      for (let i = 0; i < 2000; i++) {
        const k = newKey(), v = newValue()
        await tree.put(pa, k, v)
        model.set(str(k), v)
      }
    })
    for (let run = 0; run < 16; run++) {
      const sorted = sortedKeys(model)
      const o = randomRangeOptions(rng, sorted, newKey)
      delete o.limit
      const bounds: ScanBounds = o
      const initial = new Set(sorted.filter(k => inBounds(k, bounds)))
      const touched = new Set<string>() // deleted at some point during the iteration
      const returned: string[] = []
      let after: Uint8Array | null = null
      for (let calls = 0; ; calls++) {
        assert.ok(calls < 10_000, 'iteration does not end')
        const { entries, done } = await store.mtr(pa => tree.scanLeaf(pa, bounds, after))
        for (const [k, v] of entries) {
          const ks = str(k)
          assert.ok(inBounds(ks, bounds), `run ${run}: returned ${show(ks)} outside the bounds`)
          const prev = returned[returned.length - 1]
          if (prev !== undefined) assert.ok(bounds.reverse ? ks < prev : ks > prev, `run ${run}: ${show(ks)} returned after ${show(prev)} (out of order or twice)`)
          const want = model.get(ks)
          assert.ok(want !== undefined && Buffer.from(v).equals(want), `run ${run}: ${show(ks)} is not in the model as returned`)
          returned.push(ks)
        }
        if (done) break
        after = entries[entries.length - 1][0]
        // Other MTRs change the tree between calls, around and ahead of the cursor.
        const changes = rng.int(0, 12)
        for (let c = 0; c < changes; c++) {
          await store.mtr(async pa => {
            if (model.size > 0 && rng.bool(0.5)) {
              const k = rng.pick([...model.keys()])
              await tree.delete(pa, enc(k))
              model.delete(k)
              touched.add(k)
            } else {
              const k = rng.bool(0.3) && model.size > 0 ? enc(rng.pick([...model.keys()])) : newKey()
              const v = newValue()
              await tree.put(pa, k, v)
              model.set(str(k), v)
            }
          })
        }
      }
      const got = new Set(returned)
      for (const k of initial) if (!touched.has(k)) assert.ok(got.has(k), `run ${run}: ${show(k)} existed throughout but was not returned`)
      await verifyClean(store, tree, `after iteration run ${run}`)
    }
  })
})

// ------------------------------------------------------------------ limits

test('limits: empty key, key too long, value over 16 MiB throw HEXAD_BAD_INPUT naming the size and limit; the largest allowed work', async () => {
  const { store, tree } = await newTree(4096)
  assert.is(maxKeyBytes(4096), 512)
  assert.is(MAX_VALUE_BYTES, 16 * 1024 * 1024)
  await store.mtr(pa => tree.put(pa, enc('a'), enc('1')))
  await rejectsWith(store.mtr(pa => tree.put(pa, new Uint8Array(0), enc('x'))), 'HEXAD_BAD_INPUT', /empty.*1\.\.512/, 'empty key')
  await rejectsWith(store.mtr(pa => tree.put(pa, new Uint8Array(513), enc('x'))), 'HEXAD_BAD_INPUT', /513 bytes.*512-byte/, 'long key')
  await rejectsWith(store.mtr(pa => tree.get(pa, new Uint8Array(513))), 'HEXAD_BAD_INPUT', /513 bytes/, 'long key get')
  await rejectsWith(store.mtr(pa => tree.delete(pa, new Uint8Array(0))), 'HEXAD_BAD_INPUT', /empty/, 'empty key delete')
  await rejectsWith(store.mtr(pa => tree.put(pa, enc('b'), new Uint8Array(MAX_VALUE_BYTES + 1))), 'HEXAD_BAD_INPUT', /16777217 bytes.*16777216-byte/, 'big value')
  await rejectsWith(store.mtr(pa => tree.put(pa, 'k' as unknown as Uint8Array, enc('x'))), 'HEXAD_BAD_INPUT', /Uint8Array/, 'string key')
  await rejectsWith(store.mtr(pa => tree.scanLeaf(pa, { gt: enc('a'), gte: enc('b') }, null)), 'HEXAD_BAD_INPUT', /gt or gte/, 'two lower bounds')
  await rejectsWith(store.mtr(async pa => { for await (const _ of tree.range(pa, { limit: -1 })) { /* nothing */ } }), 'HEXAD_BAD_INPUT', /limit/, 'negative limit')
  await verifyClean(store, tree, 'after rejected input')
  // The largest key and the largest value are accepted and read back.
  const bigKey = new Uint8Array(512).fill(0x7a)
  const big = new Uint8Array(MAX_VALUE_BYTES)
  for (let i = 0; i < big.length; i += 4093) big[i] = i & 0xff
  await store.mtr(pa => tree.put(pa, bigKey, big))
  const back = await store.mtr(pa => tree.get(pa, bigKey))
  assert.ok(back !== undefined && Buffer.from(back).equals(big), '16 MiB value read back')
  await verifyClean(store, tree, 'with a 16 MiB value')
  const hw = highWater(store)
  assert.ok(hw > MAX_VALUE_BYTES / 4096, `the value went to overflow pages (high water ${hw})`)
  assert.ok(await store.mtr(pa => tree.delete(pa, bigKey)))
  assert.is((await store.mtr(pa => listFreePages(pa))).length, hw - 2, 'deleting the value frees its whole chain (all pages but the superblock and the root)')
  assert.is(await store.mtr(pa => tree.count(pa)), 1)
})

// ------------------------------------------------------------------ space

test('freed pages are reused: the high-water mark stops growing in a steady put/delete workload', async () => {
  await withSeed(FILE, 'reuse', SEED, 5, async rng => {
    const pageSize = 512
    const { store, tree } = await newTree(pageSize)
    const newKey = keyGen(rng, pageSize)
    const newValue = valueGen(rng, pageSize)
    const live: string[] = []
    const liveSet = new Set<string>()
    await store.mtr(async pa => {
      while (live.length < 800) {
        const k = newKey(), ks = str(k)
        await tree.put(pa, k, newValue())
        if (!liveSet.has(ks)) { liveSet.add(ks); live.push(ks) }
      }
    })
    // Reuse means the high-water mark only grows when no freed page is left: it stays at the peak number
    // of pages in use (plus what one MTR holds briefly, e.g. a new overflow chain before the old one is freed),
    // while far more pages than that are allocated over time.
    const createsBefore = store.creates
    let peakInUse = 0
    const marks: number[] = []
    for (let round = 0; round < 6; round++) {
      for (let i = 0; i < 800; i++) {
        await store.mtr(async pa => {
          // Replace a value (old chain freed), delete one key, insert one: the live set stays at 800 keys.
          await tree.put(pa, enc(live[rng.int(0, live.length - 1)]), newValue())
          const j = rng.int(0, live.length - 1)
          const gone = live[j]
          live[j] = live[live.length - 1]
          live.pop()
          liveSet.delete(gone)
          assert.ok(await tree.delete(pa, enc(gone)))
          for (;;) {
            const k = newKey(), ks = str(k)
            if (liveSet.has(ks)) continue
            await tree.put(pa, k, newValue())
            liveSet.add(ks)
            live.push(ks)
            break
          }
        })
        const inUse = highWater(store) - 1 - (await store.mtr(pa => listFreePages(pa))).length
        if (inUse > peakInUse) peakInUse = inUse
      }
      marks.push(highWater(store))
    }
    await verifyClean(store, tree, 'after churn')
    assert.is(await store.mtr(pa => tree.count(pa)), 800)
    const hw = highWater(store)
    const allocated = store.creates - createsBefore
    assert.ok(hw - 1 <= peakInUse + 8, `high-water mark ${hw} is above the peak of ${peakInUse} pages in use (marks ${marks.join(' → ')})`)
    assert.ok(allocated > 5 * hw, `only ${allocated} pages allocated during the churn, high water ${hw}`)
  })
})

test('drop frees every page of the tree and nothing else; deleting everything frees all but the root', async () => {
  await withSeed(FILE, 'drop', SEED, 6, async rng => {
    const pageSize = 512
    const { store, tree: catalog } = await newTree(pageSize)
    const newKey = keyGen(rng, pageSize)
    const newValue = valueGen(rng, pageSize)
    const other = new BTree(await store.mtr(pa => BTree.create(pa)))
    const catalogModel: Model = new Map()
    await store.mtr(async pa => {
      for (let i = 0; i < 1000; i++) {
        const k = newKey(), v = newValue()
        await other.put(pa, k, newValue())
        await catalog.put(pa, k, v)
        catalogModel.set(str(k), v)
      }
    })
    const before = highWater(store)
    assert.is((await store.mtr(pa => listFreePages(pa))).length < before / 10, true)
    await store.mtr(pa => other.drop(pa))
    await verifyClean(store, catalog, 'catalog after dropping the other tree')
    assertEntries(await collect(store, catalog, {}), modelRange(sortedKeys(catalogModel), catalogModel, {}), 'catalog after drop')
    // Delete everything from the catalog: only the superblock and the (empty leaf) root stay allocated.
    const keys = [...catalogModel.keys()]
    for (let i = 0; i < keys.length; i += 7) {
      await store.mtr(async pa => { for (const k of keys.slice(i, i + 7)) assert.ok(await catalog.delete(pa, enc(k))) })
      if (i % 140 === 0) await verifyClean(store, catalog, `deleting, ${i} gone`)
    }
    await verifyClean(store, catalog, 'catalog emptied')
    const root = store.pages.get(catalog.rootPageId)!
    assert.is(pageType(root), PAGE_TYPE_LEAF)
    assert.is(slotCount(root), 0)
    assert.is(highWater(store), before)
    const freed = await store.mtr(pa => listFreePages(pa))
    assert.is(freed.length, before - 2, `free ${freed.length}, allocated ${before - 1}`)
  })
})

test('ascending and descending loads fill pages (no half-empty leaves)', async () => {
  for (const descending of [false, true]) {
    const pageSize = 4096
    const { store, tree } = await newTree(pageSize)
    const n = 20_000
    const value = new Uint8Array(24).fill(7)
    await store.mtr(async pa => {
      for (let i = 0; i < n; i++) {
        const k = new Uint8Array(8)
        new DataView(k.buffer).setUint32(4, descending ? n - i : i)
        await tree.put(pa, k, value)
      }
    })
    await verifyClean(store, tree, 'sequential load')
    const cellBytes = 7 + 8 + 24 + 2
    const ideal = Math.ceil((n * cellBytes) / (pageSize - 28))
    const used = highWater(store) - 1 - (await store.mtr(pa => listFreePages(pa))).length
    assert.ok(used <= ideal * 1.08 + 3, `${descending ? 'descending' : 'ascending'} load used ${used} pages, ideal ${ideal}`)
  }
})

// ------------------------------------------------------------------ verify catches corruption

async function corruptionFixture(): Promise<{ store: MemoryPages; tree: BTree; leaves: number[] }> {
  const { store, tree } = await newTree(512)
  await store.mtr(async pa => {
    for (let i = 0; i < 600; i++) await tree.put(pa, enc(`key-${String(i).padStart(5, '0')}`), enc(`value ${i}`))
  })
  await verifyClean(store, tree, 'fixture')
  // The leaves in key order, found by descending to the first and following links.
  let id = tree.rootPageId
  while (pageType(store.pages.get(id)!) === PAGE_TYPE_INTERNAL) id = childAt(store.pages.get(id)!, 0)
  const leaves: number[] = []
  for (; id !== 0; id = leafRight(store.pages.get(id)!)) leaves.push(id)
  assert.ok(leaves.length > 10)
  return { store, tree, leaves }
}

test('verify() reports a flipped byte as a checksum problem of that page', async () => {
  const { store, tree, leaves } = await corruptionFixture()
  const victim = leaves[5]
  store.pages.get(victim)![300] ^= 0x01
  const problems = await store.mtr(pa => tree.verify(pa))
  assert.ok(problems.some(p => p.includes(`page ${victim}`) && /checksum/.test(p)), `problems: ${problems.join('; ')}`)
})

test('verify() reports two swapped keys as an order problem', async () => {
  const { store, tree, leaves } = await corruptionFixture()
  const page = store.pages.get(leaves[3])!
  const a = readU16(page, 28), b = readU16(page, 30) // slots 0 and 1
  writeU16(page, 28, b)
  writeU16(page, 30, a)
  sealPage(page)
  const problems = await store.mtr(pa => tree.verify(pa))
  assert.ok(problems.some(p => p.includes(`page ${leaves[3]}`) && /out of order/.test(p)), `problems: ${problems.join('; ')}`)
})

test('verify() reports a broken sibling link', async () => {
  const { store, tree, leaves } = await corruptionFixture()
  const page = store.pages.get(leaves[2])!
  setLeafRight(page, leaves[4])
  sealPage(page)
  const problems = await store.mtr(pa => tree.verify(pa))
  assert.ok(problems.some(p => p.includes(`leaf ${leaves[2]}`) && /right sibling link is/.test(p)), `problems: ${problems.join('; ')}`)
})

test('verify() reports a key outside its separators', async () => {
  const { store, tree, leaves } = await corruptionFixture()
  // Rewrite leaf 3's last key (same length, so the page stays well-formed and in order) to one above leaf 4's keys.
  const page = store.pages.get(leaves[3])!
  const off = slotOffset(page, slotCount(page) - 1) + 7
  page.set(enc('key-99999'), off)
  sealPage(page)
  const problems = await store.mtr(pa => tree.verify(pa))
  assert.ok(problems.some(p => p.includes(`page ${leaves[3]}`) && /upper separator/.test(p)), `problems: ${problems.join('; ')}`)
  assert.ok(problems.some(p => /out of key order/.test(p)), `problems: ${problems.join('; ')}`)
})

test('a lost (zeroed) page is reported by verify() and reads as HEXAD_CORRUPTION, never as a wrong answer', async () => {
  const { store, tree, leaves } = await corruptionFixture()
  store.pages.set(leaves[4], new Uint8Array(512))
  const problems = await store.mtr(pa => tree.verify(pa))
  assert.ok(problems.some(p => p.includes(`page ${leaves[4]}`) && /never written/.test(p)), `problems: ${problems.join('; ')}`)
  let corrupt = 0
  for (let i = 0; i < 600; i++) {
    try {
      const v = await store.mtr(pa => tree.get(pa, enc(`key-${String(i).padStart(5, '0')}`)))
      assert.equal(v && str(v), `value ${i}`)
    } catch (err) {
      assert.is((err as { code?: string }).code, 'HEXAD_CORRUPTION', String(err))
      corrupt++
    }
  }
  assert.ok(corrupt > 0 && corrupt < 600, `${corrupt} gets reached the zeroed leaf`)
  await rejectsWith(store.mtr(async pa => { for await (const _ of tree.range(pa, {})) { /* walk */ } }), 'HEXAD_CORRUPTION', /expected a leaf/, 'scan across the zeroed leaf')
})

test('put reports the value it replaced (inline, same size, other size, overflow) or that the key was absent', async () => {
  const { store, tree } = await newTree(4096)
  const big = new Uint8Array(maxInlineValueBytes(4096) * 3).map((_, i) => i % 251)
  const cases: Array<[string, Uint8Array, Uint8Array | undefined]> = [
    ['k', enc('one'), undefined],
    ['k', enc('two'), enc('one')], // same size: replaced in place
    ['k', enc('three!'), enc('two')], // other size: cell replaced
    ['k', big, enc('three!')], // to overflow
    ['k', enc('small'), big], // from overflow
  ]
  for (const [key, value, expected] of cases) {
    const old: { value?: Uint8Array } = {}
    await store.mtr(pa => tree.put(pa, enc(key), value, old))
    if (expected === undefined) assert.is(old.value, undefined, 'absent key reports undefined')
    else assert.ok(old.value && Buffer.compare(old.value, expected) === 0, `put of ${value.length} bytes reports the ${expected.length}-byte value it replaced`)
  }
  await verifyClean(store, tree, 'after replacing values')
})

test.run()
