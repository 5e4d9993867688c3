/**
 * The buffer cache under a working set far larger than it.
 *
 * cacheBytes = 128 KiB (32 pages of 4 KiB) against 5,000 keys x 200-byte
 * values (~300 leaves plus internal pages, more than 10x the cache):
 * - every key reads back correctly, in random order, over several passes
 *   (sequential and concurrent), and full / range scans are complete;
 * - stats().cache.bytes stays <= capacityBytes whenever no write is in
 *   flight (pages are pinned only until their redo is durable), also after
 *   one commit of more pages than the cache holds; nothing stays pinned, and
 *   the cache both misses and evicts;
 * - overwrites (some into overflow chains) and deletes under the same
 *   pressure, and readers running concurrently with writers, leave exactly
 *   the model's state (a stale page image cached after its eviction would
 *   show here); verify() is ok, and after a reopen with the same small
 *   cache everything reads back again.
 * - 16 writers and 8 readers on a 16-page cache: no read fails, no read goes
 *   back in time, every key ends at its last acknowledged version, verify()
 *   is ok (a load overtaken by a publication must not install its older
 *   image; up to three runs, since the interleaving depends on timing).
 *
 * - BufferCache.peek (the warm read path's lookup, kept beside the CLOCK
 *   map) answers exactly for the pages the cache holds, with their newest
 *   image, through publications, loads and evictions.
 *
 * Replay a failure with HEXAD_SEED=<base seed printed on failure>.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { openCluster, type Database } from '../engine/index.js'
import { BufferCache, type PageSource } from '../engine/compute/buffer-cache.js'
import {
  assertEntries, assertValue, baseSeed, bytesEqual, cleanupTempDirs, codeOf, collect, kvOptions, makeTempDir, patternBytes, pool, randomBounds,
  rmTempDir, Rng, show, showBounds, SortedModel, u8, withSeed,
} from './helpers/kv-helpers.js'

const FILE = 'kv-cache'
const SEED = baseSeed()
const CACHE = 128 * 1024
const KEYS = 5000
const VALUE = 200

test.after(() => cleanupTempDirs())

/** marks "absent" in a key's history of values (compared by identity) */
const TOMBSTONE = new Uint8Array(0)

const keyOf = (i: number) => u8(`key/${String(i * 7919 % 100_000).padStart(5, '0')}/${i % 10}`)

function assertBounded(db: Database, what: string): void {
  const c = db.stats().cache
  assert.is(c.capacityBytes, CACHE, `${what}: capacityBytes`)
  assert.is(c.pinned, 0, `${what}: ${c.pinned} pages still pinned with no write in flight`)
  assert.ok(c.bytes <= c.capacityBytes, `${what}: the cache holds ${c.bytes} bytes (${c.pages} pages), over its capacity of ${c.capacityBytes}`)
  assert.ok(c.pages * 4096 <= c.capacityBytes, `${what}: ${c.pages} pages of 4 KiB exceed the capacity`)
}

async function readAll(db: Database, model: SortedModel, rng: Rng, what: string, concurrency: number): Promise<void> {
  const keys = rng.sample(model.keys(), model.size)
  await pool(keys, concurrency, async k => { assertValue(await db.get(k), model.get(k), `${what}: get ${show(k)}`) })
  // absent keys too (between and around existing ones)
  for (let i = 0; i < 50; i++) {
    const k = u8(`key/${String(rng.int(0, 99_999)).padStart(5, '0')}/x`)
    assertValue(await db.get(k), undefined, `${what}: get absent ${show(k)}`)
  }
}

async function scanAll(db: Database, model: SortedModel, rng: Rng, what: string): Promise<void> {
  assertEntries(await collect(db.scan()), model.entries(), `${what}: full scan`)
  assertEntries(await collect(db.scan({ reverse: true })), model.entries({ reverse: true }), `${what}: full reverse scan`)
  const keys = model.keys()
  for (let i = 0; i < 12; i++) {
    const b = randomBounds(rng, keys)
    assertEntries(await collect(db.scan(b)), model.entries(b), `${what}: scan ${showBounds(b)}`)
  }
}

test('a 128 KiB cache under a working set >10x its size: every key and scan is right, the cache stays bounded, misses and evicts', async () => {
  await withSeed(FILE, 'small cache', SEED, 0, async rng => {
    const dir = makeTempDir('kv-cache')
    const model = new SortedModel()
    let cluster = await openCluster(kvOptions(dir, { cacheBytes: CACHE }))
    try {
      let db = cluster.writer
      // Load in random key order (splits all over the tree), 100 keys per batch, a few batches at a time.
      const order = rng.sample(Array.from({ length: KEYS }, (_, i) => i), KEYS)
      const batches: number[][] = []
      for (let i = 0; i < order.length; i += 100) batches.push(order.slice(i, i + 100))
      await pool(batches, 3, async b => {
        const ops = b.map(i => ({ type: 'put' as const, key: keyOf(i), value: patternBytes(VALUE, i + 1) }))
        await db.batch(ops)
      })
      for (const i of order) model.put(keyOf(i), patternBytes(VALUE, i + 1))
      assertBounded(db, 'after the load')
      // One commit larger than the cache (its pages are pinned until durable), in another keyspace.
      const bulk = db.keyspace('bulk')
      await bulk.batch(Array.from({ length: 1500 }, (_, i) => ({ type: 'put' as const, key: `bulk/${String(i).padStart(5, '0')}`, value: patternBytes(300, i + 7) })))
      assertBounded(db, 'after a commit of ~130 pages')
      assert.is((await collect(bulk.scan())).length, 1500)
      assertValue(await bulk.get('bulk/00777'), patternBytes(300, 777 + 7), 'bulk/00777')
      const loaded = await db.verify()
      assert.ok(loaded.ok, loaded.problems.slice(0, 5).join('; '))
      const ks = loaded.keyspaces.find(k => k.name === 'default')
      assert.is(ks?.keys, KEYS)
      assertBounded(db, 'after verify()')

      const before = db.stats().cache
      await readAll(db, model, rng, 'pass 1 (sequential)', 1)
      assertBounded(db, 'after pass 1')
      await readAll(db, model, rng, 'pass 2 (8 concurrent readers)', 8)
      assertBounded(db, 'after pass 2')
      await scanAll(db, model, rng, 'scans')
      assertBounded(db, 'after the scans')
      const after = db.stats().cache
      assert.ok(after.misses - before.misses >= 2 * KEYS * 0.5, `reading ${2 * KEYS} keys through a cache of 32 pages missed only ${after.misses - before.misses} times`)
      assert.ok(after.evictions - before.evictions > 0, 'pages were evicted')
      assert.ok(after.hits > before.hits, 'some reads hit')

      // Overwrites (some to overflow size, some shrinking), deletes and inserts, with concurrent readers
      // checking that every value they see is one the key had.
      const history = new Map<string, Uint8Array[]>()
      const hk = (k: Uint8Array) => Buffer.from(k).toString('latin1')
      for (const k of model.keys()) history.set(hk(k), [model.get(k)!])
      const rounds = 30
      let writing = true
      let readerChecks = 0
      let readerFailure: unknown = null
      const readers = Array.from({ length: 3 }, async (_, r) => {
        const rrng = { i: r }
        while (writing) {
          const k = keyOf((rrng.i = (rrng.i * 31 + 17) % KEYS))
          const got = await db.get(k)
          const allowed = history.get(hk(k)) ?? []
          const ok = got === undefined ? allowed.includes(TOMBSTONE) : allowed.some(v => v !== TOMBSTONE && bytesEqual(v, got))
          assert.ok(ok, `concurrent reader: ${show(k)} read ${show(got)}, which it never had`)
          readerChecks++
          await new Promise(res => setImmediate(res))
        }
      }).map(p => p.catch(err => { readerFailure ??= err }))
      try {
        for (let round = 0; round < rounds && !readerFailure; round++) {
          const ops: Array<{ type: 'put'; key: Uint8Array; value: Uint8Array } | { type: 'del'; key: Uint8Array }> = []
          for (let j = 0; j < 40; j++) {
            const i = rng.int(0, KEYS + 500)
            const k = i < KEYS ? keyOf(i) : u8(`key/new/${i}`)
            const x = rng.float()
            if (x < 0.2) ops.push({ type: 'del', key: k })
            else ops.push({ type: 'put', key: k, value: patternBytes(x < 0.3 ? rng.int(1500, 9000) : rng.int(0, 400), rng.int(1, 1e9)) })
          }
          // record every value a key may show before the batch commits
          for (const o of ops) {
            const h = history.get(hk(o.key)) ?? [TOMBSTONE]
            h.push(o.type === 'put' ? o.value : TOMBSTONE)
            history.set(hk(o.key), h)
          }
          await db.batch(ops)
          for (const o of ops) { if (o.type === 'put') model.put(o.key, o.value); else model.del(o.key) }
        }
      } finally {
        writing = false
        await Promise.all(readers)
      }
      if (readerFailure) throw readerFailure
      assert.ok(readerChecks > 0)
      assertBounded(db, 'after the overwrites')
      await readAll(db, model, rng, 'after overwrites (4 concurrent readers)', 4)
      await scanAll(db, model, rng, 'after overwrites')
      assertBounded(db, 'after the reads')
      const v = await db.verify()
      assert.ok(v.ok, v.problems.slice(0, 5).join('; '))
      assert.is(v.keyspaces.find(k => k.name === 'default')?.keys, model.size, 'verify() counts the model\'s keys')
      await cluster.close()

      // Cold: reopen with the same small cache.
      cluster = await openCluster(kvOptions(dir, { cacheBytes: CACHE }))
      db = cluster.writer
      await readAll(db, model, rng, 'after reopen', 4)
      await scanAll(db, model, rng, 'after reopen')
      assertBounded(db, 'after reopen')
      const cold = db.stats().cache
      assert.ok(cold.misses > 0 && cold.evictions > 0, `cold reads missed (${cold.misses}) and evicted (${cold.evictions})`)
      const v2 = await db.verify()
      assert.ok(v2.ok, v2.problems.slice(0, 5).join('; '))
    } finally {
      await cluster.close()
    }
    rmTempDir(dir)
  })
})

/**
 * One run of 16 writers and 8 readers on a 64 KiB cache (16 pages). The
 * interleaving depends on timing as well as on the seed, so the test makes
 * up to three runs (each on a fresh volume) and fails at the first problem.
 */
async function interleavedRun(rng: Rng, attempt: number): Promise<void> {
  const dir = makeTempDir('kv-cache2')
  const cluster = await openCluster(kvOptions(dir, { cacheBytes: 64 * 1024 }))
  try {
    const db = cluster.writer
    // Each key holds "version:padding"; writer w owns the keys i = w mod 16 and bumps their versions;
    // readers read random keys: a key's version never goes down, and every read succeeds.
    const N = 400, WRITERS = 16, READERS = 8, ROUNDS = 40
    const k = (i: number) => u8(`c/${String(i).padStart(4, '0')}`)
    const val = (ver: number, pad: number) => u8(`${ver}:${'v'.repeat(100 + pad)}`)
    for (let i = 0; i < N; i += 200) await db.batch(Array.from({ length: 200 }, (_, j) => ({ type: 'put' as const, key: k(i + j), value: val(0, 50) })))
    const version = new Array<number>(N).fill(0)
    const seen = new Array<number>(N).fill(0)
    const problems: string[] = []
    let writing = true
    let reads = 0
    const readers = Array.from({ length: READERS }, async (_, r) => {
      const rr = new Rng(rng.seed * 31 + r)
      while (writing && problems.length < 5) {
        const i = rr.int(0, N - 1)
        // A read that starts after another read of the key completed sees at least that version.
        const floor = seen[i]
        try {
          const got = await db.getString(k(i))
          const ver = got === undefined ? -1 : Number(got.split(':')[0])
          if (ver < floor) problems.push(`reader: key ${i} went back from version ${floor} (read before this read started) to ${ver} (a stale page image in the cache?)`)
          seen[i] = Math.max(seen[i], ver)
        } catch (err) { problems.push(`reader: get of key ${i}: ${codeOf(err)} ${(err as Error).message}`) }
        if (++reads % 8 === 0) await new Promise(res => setImmediate(res))
      }
    })
    const plans = Array.from({ length: WRITERS }, (_, w) => Array.from({ length: ROUNDS }, () =>
      [...new Set(Array.from({ length: 30 }, () => rng.int(0, N / WRITERS - 1) * WRITERS + w))].map(i => ({ i, pad: rng.int(0, 100) }))))
    try {
      await Promise.all(plans.map(async plan => {
        for (const ops of plan) {
          if (problems.length >= 5) return
          for (const { i } of ops) version[i]++
          try {
            await db.batch(ops.map(({ i, pad }) => ({ type: 'put' as const, key: k(i), value: val(version[i], pad) })))
          } catch (err) {
            problems.push(`writer: batch failed: ${codeOf(err)} ${(err as Error).message}`)
            for (const { i } of ops) version[i]-- // not acknowledged
          }
        }
      }))
    } finally {
      writing = false
      await Promise.all(readers)
    }
    assert.equal(problems.slice(0, 3), [], `run ${attempt}: ${problems.length} problems during the run; first: ${problems.slice(0, 3).join(' | ')}`)
    assert.ok(reads > 0)
    const wrong: string[] = []
    for (let i = 0; i < N; i++) {
      try {
        const got = await db.getString(k(i))
        if (Number(got?.split(':')[0]) !== version[i]) wrong.push(`key ${i}: ${got?.slice(0, 8)} expected version ${version[i]}`)
      } catch (err) { wrong.push(`key ${i}: ${codeOf(err)} ${(err as Error).message}`) }
    }
    assert.equal(wrong.slice(0, 3), [], `run ${attempt}: ${wrong.length} keys read back wrong after the run: ${wrong.slice(0, 3).join(' | ')}`)
    const c = db.stats().cache
    assert.ok(c.bytes <= c.capacityBytes && c.pinned === 0, `cache bounded and unpinned when idle: ${JSON.stringify(c)}`)
    assert.ok(c.evictions > 0)
    const v = await db.verify()
    assert.ok(v.ok, `run ${attempt}: verify(): ${v.problems.slice(0, 5).join('; ')}`)
  } finally {
    await cluster.close()
  }
  rmTempDir(dir)
}

test('16 writers and 8 readers under cache pressure: no stale page, no corruption, reads never go back in time', async () => {
  await withSeed(FILE, 'interleaved', SEED, 1, async rng => {
    for (let attempt = 1; attempt <= 3; attempt++) await interleavedRun(rng, attempt)
  })
})

test('peek answers exactly for the cached pages, with their newest image, through publications, loads and evictions', async () => {
  const PAGE = 4096
  const source: PageSource = { readPage: async () => new Uint8Array(PAGE) } // a never-written page (all zeros) passes the load check
  const cache = new BufferCache(source, 8 * PAGE)
  const newest = new Map<number, Uint8Array>()
  const check = (what: string) => {
    let held = 0
    for (let id = 0; id < 64; id++) {
      const img = cache.peek(id)
      if (img === undefined) continue
      held++
      assert.ok(img === newest.get(id), `${what}: peek(${id}) is not the newest image of page ${id}`)
    }
    assert.is(held, cache.stats().pages, `${what}: peek answers for ${held} pages, the cache holds ${cache.stats().pages}`)
  }
  const rng = new Rng(7)
  for (let step = 0; step < 400; step++) {
    const id = rng.int(1, 40)
    if (rng.int(0, 2) === 0) {
      newest.set(id, await cache.get(id)) // the cached image, or the one just loaded (nothing publishes meanwhile)
    } else {
      const img = new Uint8Array(PAGE).fill(step & 0xff)
      cache.publish(id, img)
      newest.set(id, img)
      cache.unpin(id) // durable at once: evictable again
    }
    check(`step ${step}`)
  }
  assert.ok(cache.stats().evictions > 0, 'the cache evicted')
})

test.run()
