/**
 * The key-value store against a model.
 *
 * - Seeded random sequences of put / del / batch / transaction (with reads,
 *   locking reads and scans inside, some rolled back by a throw) / get /
 *   scan over two keyspaces, checked against a plain sorted model after
 *   every step, across close + reopen restarts; verify() is ok at the end of
 *   every phase and after every reopen; keyspaceNames() follows the writes.
 * - Scans with every bound kind (none | gt | gte) x (none | lt | lte) at
 *   every kind of bound position, forward and reverse, with limits, outside
 *   and inside a transaction that has its own writes.
 * - A scan is one snapshot: writes committed while it iterates are not seen.
 * - Keys in every accepted form; values of every size around the inline and
 *   page limits; 512-byte keys with values at the inline limit (two cells a
 *   page) through splits, merges and back to an empty tree.
 *
 * Replay a failure with HEXAD_SEED=<base seed printed on failure>.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import type { Cluster, Database, Keyspace, TxKeyspace } from '../engine/index.js'
import {
  assertEntries, assertValue, baseSeed, bytesEqual, cleanupTempDirs, collect, collectBatches, concat, fromLatin1, keyForm, keyPool, kvOptions,
  makeTempDir, patternBytes, randomBounds, randomValue, rmTempDir, show, showBounds, SortedModel, u8, withSeed, withTempCluster, type Bounds,
} from './helpers/kv-helpers.js'
import { openCluster } from '../engine/index.js'
import type { Rng } from './helpers/volume-helpers.js'

const FILE = 'kv-model'
const SEED = baseSeed()
const KS = ['default', 'other'] as const
type KsName = typeof KS[number]

test.after(() => cleanupTempDirs())

class Abort extends Error { constructor() { super('deliberate abort of the transaction') } }

function handle(db: Database, ks: KsName): Keyspace { return ks === 'default' ? db : db.keyspace(ks) }

/** Checks every key of both keyspaces with a full scan (both directions) and point reads of a sample of the pool (present and absent keys). */
async function checkAll(db: Database, models: Record<KsName, SortedModel>, pool: Uint8Array[], rng: Rng, what: string): Promise<void> {
  for (const ks of KS) {
    const h = handle(db, ks)
    assertEntries(await collect(h.scan()), models[ks].entries(), `${what}: full scan of ${ks}`)
    assertEntries(await collect(h.scan({ reverse: true })), models[ks].entries({ reverse: true }), `${what}: full reverse scan of ${ks}`)
    for (const k of rng.sample(pool, 60)) assertValue(await h.get(keyForm(rng, k)), models[ks].get(k), `${what}: get ${show(k)} of ${ks}`)
  }
}

async function verifyOk(db: Database, models: Record<KsName, SortedModel>, created: Set<string>, what: string): Promise<void> {
  const r = await db.verify()
  assert.ok(r.ok, `${what}: verify() found problems: ${r.problems.slice(0, 10).join('; ')}`)
  assert.equal(r.problems, [])
  for (const ks of KS) {
    const entry = r.keyspaces.find(k => k.name === ks)
    if (!created.has(ks)) { assert.not.ok(entry, `${what}: keyspace ${ks} was never written but verify() lists it`); continue }
    assert.ok(entry, `${what}: verify() does not list keyspace ${ks}`)
    assert.is(entry!.keys, models[ks].size, `${what}: verify() counts ${entry!.keys} keys in ${ks}, the model has ${models[ks].size}`)
  }
  assert.equal(db.keyspaceNames(), [...created].sort(), `${what}: keyspaceNames()`)
}

/** One random step; updates the models only for what committed. */
async function step(db: Database, rng: Rng, models: Record<KsName, SortedModel>, created: Set<string>, pool: Uint8Array[], what: string): Promise<void> {
  const r = rng.float()
  const ks: KsName = rng.bool(0.6) ? 'default' : 'other'
  const h = handle(db, ks)
  const m = models[ks]
  const existing = () => { const keys = m.keys(); return keys.length && rng.bool(0.8) ? rng.pick(keys) : rng.pick(pool) }

  if (r < 0.28) {
    const k = rng.pick(pool), v = randomValue(rng)
    await h.put(keyForm(rng, k), rng.bool(0.1) && v.every(b => b < 0x80) ? Buffer.from(v).toString('latin1') : v)
    m.put(k, v); created.add(ks)
  } else if (r < 0.38) {
    const k = existing()
    await h.del(keyForm(rng, k))
    m.del(k); created.add(ks)
  } else if (r < 0.5) {
    const ops: Array<{ type: 'put'; key: Uint8Array | string; value: Uint8Array } | { type: 'del'; key: Uint8Array | string }> = []
    const n = rng.int(0, 10)
    for (let i = 0; i < n; i++) {
      if (rng.bool(0.7)) ops.push({ type: 'put', key: keyForm(rng, rng.pick(pool)), value: randomValue(rng, 6000) })
      else ops.push({ type: 'del', key: keyForm(rng, existing()) })
    }
    await h.batch(ops)
    for (const op of ops) { if (op.type === 'put') m.put(op.key, op.value); else m.del(op.key) }
    if (n > 0) created.add(ks)
  } else if (r < 0.66) {
    await randomTransaction(db, rng, models, created, pool, what)
  } else if (r < 0.78) {
    const k = rng.bool(0.7) ? existing() : rng.pick(pool)
    assertValue(await h.get(keyForm(rng, k)), m.get(k), `${what}: get ${show(k)} of ${ks}`)
    const s = await h.getString(keyForm(rng, k))
    const want = m.get(k)
    assert.is(s, want === undefined ? undefined : new TextDecoder().decode(want), `${what}: getString ${show(k)} of ${ks}`)
  } else if (r < 0.92) {
    const b = randomBounds(rng, m.keys())
    assertEntries(await collect(h.scan(b)), m.entries(b), `${what}: scan ${showBounds(b)} of ${ks}`)
  } else {
    // A burst of concurrent single-key writes on distinct keys (group commit); the outcome is order-independent.
    const keys = rng.sample(pool, rng.int(2, 12))
    const ops = keys.map(k => rng.bool(0.75) ? { k, v: randomValue(rng, 3000) } : { k, v: undefined })
    await Promise.all(ops.map(o => o.v ? h.put(o.k, o.v) : h.del(o.k)))
    for (const o of ops) { if (o.v) m.put(o.k, o.v); else m.del(o.k) }
    created.add(ks)
  }
}

/** A transaction of random reads, locking reads, scans and writes over both keyspaces, checked against a private copy of the models; sometimes aborted by a throw. */
async function randomTransaction(db: Database, rng: Rng, models: Record<KsName, SortedModel>, created: Set<string>, pool: Uint8Array[], what: string): Promise<void> {
  const abort = rng.bool(0.15)
  const local: Record<KsName, SortedModel> = { default: models.default.clone(), other: models.other.clone() }
  const wrote = new Set<string>()
  const run = db.transaction(async tx => {
    const steps = rng.int(1, 10)
    for (let i = 0; i < steps; i++) {
      const ks: KsName = rng.bool(0.5) ? 'default' : 'other'
      const view: TxKeyspace = ks === 'default' ? tx : tx.keyspace(ks)
      const lm = local[ks]
      const r = rng.float()
      const k = lm.size && rng.bool(0.6) ? rng.pick(lm.keys()) : rng.pick(pool)
      const where = `${what}: in a transaction, step ${i}`
      if (r < 0.25) {
        assertValue(await view.get(keyForm(rng, k)), lm.get(k), `${where}: get ${show(k)} of ${ks}`)
      } else if (r < 0.32) {
        assertValue(await view.getForUpdate(keyForm(rng, k)), lm.get(k), `${where}: getForUpdate ${show(k)} of ${ks}`)
      } else if (r < 0.55) {
        const v = randomValue(rng, 8000)
        await view.put(keyForm(rng, k), v)
        lm.put(k, v); wrote.add(ks)
      } else if (r < 0.7) {
        await view.del(keyForm(rng, k))
        lm.del(k); wrote.add(ks)
      } else {
        // (limit 0 inside a transaction has its own test below)
        const b = randomBounds(rng, lm.keys(), { zeroLimit: false })
        assertEntries(await collect(view.scan(b)), lm.entries(b), `${where}: scan ${showBounds(b)} of ${ks}`)
      }
    }
    if (abort) throw new Abort()
    return 'committed'
  })
  if (abort) {
    try { await run } catch (err) {
      assert.instance(err, Abort, `${what}: the transaction should reject with the error its fn threw, got ${String(err)}`)
      return
    }
    assert.unreachable(`${what}: a transaction whose fn threw resolved`)
  }
  assert.is(await run, 'committed')
  models.default = local.default
  models.other = local.other
  for (const ks of wrote) created.add(ks)
}

test('random puts, dels, batches, transactions and scans over two keyspaces match the model across restarts', async () => {
  await withSeed(FILE, 'random model', SEED, 0, async rng => {
    const dir = makeTempDir('kv-model')
    const pool = keyPool(rng, 220)
    const models: Record<KsName, SortedModel> = { default: new SortedModel(), other: new SortedModel() }
    const created = new Set<string>()
    const PHASES = 5, STEPS = 160
    for (let phase = 0; phase < PHASES; phase++) {
      const cluster: Cluster = await openCluster(kvOptions(dir))
      try {
        const db = cluster.writer
        if (phase > 0) {
          await checkAll(db, models, pool, rng, `phase ${phase} after reopen`)
          await verifyOk(db, models, created, `phase ${phase} after reopen`)
        }
        for (let i = 0; i < STEPS; i++) await step(db, rng, models, created, pool, `phase ${phase} step ${i}`)
        await checkAll(db, models, pool, rng, `end of phase ${phase}`)
        await verifyOk(db, models, created, `end of phase ${phase}`)
        const st = db.stats()
        assert.is(st.versionsKept, 0, `end of phase ${phase}: the version store keeps ${st.versionsKept} entries with no transaction open`)
        assert.is(st.keyspaces, created.size, `end of phase ${phase}: stats().keyspaces`)
        assert.is(st.cache.pinned, 0, `end of phase ${phase}: pages pinned with nothing in flight`)
      } finally {
        await cluster.close()
      }
    }
    rmTempDir(dir)
  })
})

// ------------------------------------------------------------------ every bound kind

/** Keys 'k000'..'k(n-1)' stepping by 2 (so odd positions are between keys), with values big enough to span many leaves. */
function evenKeys(n: number): Uint8Array[] {
  return Array.from({ length: n }, (_, i) => u8(`k${String(i * 2).padStart(3, '0')}`))
}

test('scans with every bound kind, forward and reverse, with limits, outside and inside a transaction', async () => {
  await withSeed(FILE, 'bounds', SEED, 1, async rng => {
    await withTempCluster('kv-bounds', {}, async cluster => {
      const db = cluster.writer
      const model = new SortedModel()
      const keys = evenKeys(120)
      // also keys that are prefixes / extensions of others, and 0x00 / 0xff edge bytes
      const extra = [u8('k'), u8('k0'), concat(u8('k010'), new Uint8Array([0])), concat(u8('k010'), new Uint8Array([0xff])), new Uint8Array([0]), new Uint8Array([0xff, 0xff])]
      const ops = [...keys, ...extra].map((k, i) => ({ type: 'put' as const, key: k, value: patternBytes(rng.int(20, 300), i + 1) }))
      for (let i = 0; i < ops.length; i += 20) await db.batch(ops.slice(i, i + 20))
      for (const o of ops) model.put(o.key, o.value)

      // Bound positions: before everything, every kind of spot around existing keys, after everything.
      const points: Uint8Array[] = [new Uint8Array([0]), u8('a'), u8('k'), u8('k0'), u8('k000'), u8('k001'), u8('k010'), concat(u8('k010'), new Uint8Array([0])), u8('k0100'),
        u8('k117'), u8('k118'), u8('k2'), u8('k238'), u8('k239'), u8('l'), new Uint8Array([0xff]), new Uint8Array([0xff, 0xff]), new Uint8Array([0xff, 0xff, 0xff])]
      const lowers: Array<Partial<Bounds>> = [{}, ...points.flatMap(p => [{ gt: p }, { gte: p }])]
      const uppers: Array<Partial<Bounds>> = [{}, ...points.flatMap(p => [{ lt: p }, { lte: p }])]
      const limits = [undefined, 0, 1, 3, 1000]
      const txLimits = [undefined, 1, 3, 1000] // (limit 0 inside a transaction has its own test)
      let checked = 0
      for (const lo of lowers) {
        for (const hi of rng.sample(uppers, 12)) {
          for (const reverse of [false, true]) {
            const limit = rng.pick(limits)
            const b: Bounds = { ...lo, ...hi, ...(reverse ? { reverse } : {}), ...(limit === undefined ? {} : { limit }) }
            assertEntries(await collect(db.scan(b)), model.entries(b), `scan ${showBounds(b)}`)
            assertEntries(await collectBatches(db.scanBatches(b)), model.entries(b), `scanBatches ${showBounds(b)}`)
            checked++
          }
        }
      }
      // every upper bound at least once with no lower bound, both directions
      for (const hi of uppers) for (const reverse of [false, true]) {
        const b: Bounds = { ...hi, reverse }
        assertEntries(await collect(db.scan(b)), model.entries(b), `scan ${showBounds(b)}`)
      }
      assert.ok(checked > 400)

      // Inside a transaction with its own uncommitted writes (inserts, overwrites, deletes) merged in.
      const local = model.clone()
      await db.transaction(async tx => {
        const mine: Array<[Uint8Array, Uint8Array | undefined]> = [
          [u8('k001'), u8('new between')], [u8('k010'), undefined], [u8('k020'), u8('overwritten')], [u8('a'), u8('new first')],
          [u8('zz'), u8('new last')], [u8('k118'), undefined], [u8('k0'), undefined], [concat(u8('k010'), new Uint8Array([1])), patternBytes(3000, 7)],
        ]
        for (const [k, v] of mine) { if (v) { await tx.put(k, v); local.put(k, v) } else { await tx.del(k); local.del(k) } }
        for (const lo of rng.sample(lowers, 14)) {
          for (const hi of rng.sample(uppers, 8)) {
            for (const reverse of [false, true]) {
              const limit = rng.pick(txLimits)
              const b: Bounds = { ...lo, ...hi, ...(reverse ? { reverse } : {}), ...(limit === undefined ? {} : { limit }) }
              assertEntries(await collect(tx.scan(b)), local.entries(b), `tx.scan ${showBounds(b)} with own writes`)
              assertEntries(await collectBatches(tx.scanBatches(b)), local.entries(b), `tx.scanBatches ${showBounds(b)} with own writes`)
            }
          }
        }
        for (const limit of [1, 2]) for (const reverse of [false, true]) {
          const b: Bounds = { limit, reverse }
          assertEntries(await collect(tx.scan(b)), local.entries(b), `tx.scan ${showBounds(b)} with own writes`)
          assertEntries(await collectBatches(tx.scanBatches(b)), local.entries(b), `tx.scanBatches ${showBounds(b)} with own writes`)
        }
        // Without own writes in range, batches are whole leaves: a full scan of this tree takes several.
        let batches = 0
        for await (const batch of tx.keyspace('other-never-written').scanBatches()) batches += batch.length ? 1 : 100
        assert.is(batches, 0, 'scanBatches of an empty keyspace yields nothing')
        const full = await collectBatches(tx.scanBatches({ gte: 'k1', lt: 'k9' }), counts => {
          assert.ok(counts.length > 1, `a scan over many leaves came in ${counts.length} batch(es)`)
        })
        assertEntries(full, local.entries({ gte: u8('k1'), lt: u8('k9') }), 'tx.scanBatches without own writes in range')
        throw new Abort()
      }).catch(err => { if (!(err instanceof Abort)) throw err })
      // The rolled-back writes are not there.
      assertEntries(await collect(db.scan()), model.entries(), 'full scan after the rolled-back transaction')
    })
  })
})

test('limit 0 returns nothing, both outside and inside a transaction', async () => {
  await withTempCluster('kv-limit0', {}, async cluster => {
    const db = cluster.writer
    await db.batch([{ type: 'put', key: 'a', value: '1' }, { type: 'put', key: 'b', value: '2' }])
    assert.equal((await collect(db.scan({ limit: 0 }))).length, 0, 'db.scan({ limit: 0 })')
    assert.equal((await collect(db.scan({ limit: 0, reverse: true }))).length, 0, 'db.scan({ limit: 0, reverse: true })')
    await db.transaction(async tx => {
      const got = await collect(tx.scan({ limit: 0 }))
      assert.is(got.length, 0, `tx.scan({ limit: 0 }) returned ${got.length} entries (${got.map(e => show(e[0])).join(', ')})`)
      await tx.put('c', '3')
      const got2 = await collect(tx.scan({ limit: 0, reverse: true }))
      assert.is(got2.length, 0, `tx.scan({ limit: 0, reverse: true }) with an own write returned ${got2.length} entries`)
    })
  })
})

test('a scan is one snapshot: puts, overwrites and deletes committed while it iterates are not seen', async () => {
  await withSeed(FILE, 'scan snapshot', SEED, 2, async rng => {
    await withTempCluster('kv-scansnap', {}, async cluster => {
      const db = cluster.writer
      const model = new SortedModel()
      const keys = evenKeys(300)
      for (let i = 0; i < keys.length; i += 50) {
        const ops = keys.slice(i, i + 50).map(k => ({ type: 'put' as const, key: k, value: patternBytes(rng.int(80, 200), rng.int(1, 1e9)) }))
        await db.batch(ops)
        for (const o of ops) model.put(o.key, o.value)
      }
      for (const reverse of [false, true]) {
        const want = model.entries({ reverse })
        const it = db.scan({ reverse })[Symbol.asyncIterator]()
        const got: Array<[Uint8Array, Uint8Array]> = []
        for (let i = 0; i < 10; i++) { const r = await it.next(); assert.not.ok(r.done); got.push(r.value as [Uint8Array, Uint8Array]) }
        // Change keys ahead of the cursor, behind it, and new keys in between, in several commits.
        for (let round = 0; round < 5; round++) {
          const ops: Array<{ type: 'put'; key: Uint8Array; value: Uint8Array } | { type: 'del'; key: Uint8Array }> = []
          for (let j = 0; j < 25; j++) {
            const k = rng.pick(model.keys())
            const x = rng.float()
            if (x < 0.4) ops.push({ type: 'put', key: k, value: patternBytes(rng.int(0, 2500), rng.int(1, 1e9)) })
            else if (x < 0.7) ops.push({ type: 'del', key: k })
            else ops.push({ type: 'put', key: concat(k, u8('+')), value: u8('inserted during the scan') })
          }
          await db.batch(ops)
          for (const o of ops) { if (o.type === 'put') model.put(o.key, o.value); else model.del(o.key) }
          for (let i = 0; i < 40; i++) { const r = await it.next(); if (r.done) break; got.push(r.value as [Uint8Array, Uint8Array]) }
        }
        for (;;) { const r = await it.next(); if (r.done) break; got.push(r.value as [Uint8Array, Uint8Array]) }
        assertEntries(got, want, `scan (${reverse ? 'reverse' : 'forward'}) across concurrent commits`)
        // and a fresh scan sees the new state
        assertEntries(await collect(db.scan({ reverse })), model.entries({ reverse }), 'fresh scan after the commits')
      }
      const r = await db.verify()
      assert.ok(r.ok, r.problems.join('; '))
    })
  })
})

test('keys in every accepted form name the same key; values of every size read back', async () => {
  await withSeed(FILE, 'forms', SEED, 3, async rng => {
    await withTempCluster('kv-forms', {}, async cluster => {
      const db = cluster.writer
      const sizes = [0, 1, 1023, 1024, 1025, 4095, 4096, 4097, 12_000, 20_000, 70_000]
      for (const [i, n] of sizes.entries()) {
        const key = u8(`size-${i}`)
        const v = patternBytes(n, i + 11)
        await db.put(keyForm(rng, key), v)
        assertValue(await db.get(`size-${i}`), v, `value of ${n} bytes`)
        assertValue(await db.get(Buffer.from(`size-${i}`)), v, `value of ${n} bytes read with a Buffer key`)
      }
      // a string key with multi-byte UTF-8 equals its encoded bytes
      await db.put('clé-€-😀', 'valeur-€')
      assert.is(await db.getString(new TextEncoder().encode('clé-€-😀')), 'valeur-€')
      const view = concat(new Uint8Array([9, 9, 9]), u8('clé-€-😀')).subarray(3)
      assert.is(await db.getString(view), 'valeur-€', 'a key passed as a view with a byteOffset')
      // an overflow value replaced by a small one and back, then deleted: the tree stays sound
      await db.put('flip', patternBytes(30_000, 1))
      await db.put('flip', 'small')
      await db.put('flip', patternBytes(9000, 2))
      assertValue(await db.get('flip'), patternBytes(9000, 2), 'flip')
      await db.del('flip')
      assertValue(await db.get('flip'), undefined, 'flip after del')
      const r = await db.verify()
      assert.ok(r.ok, r.problems.join('; '))
      assert.ok(bytesEqual(fromLatin1('\u00ff'), new Uint8Array([0xff])))
    })
  })
})

test('largest keys (512 bytes) with values at the inline limit split and merge correctly', async () => {
  await withSeed(FILE, 'largest cells', SEED, 4, async rng => {
    await withTempCluster('kv-largest', {}, async cluster => {
      const db = cluster.writer
      const model = new SortedModel()
      const bigKey = (i: number) => { const k = patternBytes(512, i + 1); k[0] = 0x6b; k[1] = i >> 8; k[2] = i & 0xff; return k }
      const sizes = [1023, 1024, 1025, 0, 1, 700]
      for (let round = 0; round < 6; round++) {
        const ops: Array<{ type: 'put'; key: Uint8Array; value: Uint8Array } | { type: 'del'; key: Uint8Array }> = []
        for (let j = 0; j < 40; j++) {
          const k = bigKey(rng.int(0, 119))
          if (round > 1 && rng.bool(0.4)) ops.push({ type: 'del', key: k })
          else ops.push({ type: 'put', key: k, value: patternBytes(rng.pick(sizes), rng.int(1, 1e9)) })
        }
        await db.batch(ops)
        for (const o of ops) { if (o.type === 'put') model.put(o.key, o.value); else model.del(o.key) }
        assertEntries(await collect(db.scan()), model.entries(), `round ${round}: full scan`)
        assertEntries(await collect(db.scan({ reverse: true })), model.entries({ reverse: true }), `round ${round}: reverse scan`)
        const r = await db.verify()
        assert.ok(r.ok, `round ${round}: ${r.problems.slice(0, 5).join('; ')}`)
      }
      // delete everything: the tree collapses back to an empty root
      await db.batch(model.keys().map(k => ({ type: 'del' as const, key: k })))
      assert.is((await collect(db.scan())).length, 0)
      const r = await db.verify()
      assert.ok(r.ok, r.problems.slice(0, 5).join('; '))
      assert.is(r.keyspaces.find(k => k.name === 'default')?.keys, 0)
    })
  })
})

test.run()
