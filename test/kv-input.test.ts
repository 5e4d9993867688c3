/**
 * Bad input, closed handles and rollback (invariant 10: a clear error that
 * names what was wrong; the engine stays open and loses nothing).
 *
 * - Empty keys, keys over the 512-byte limit (in bytes, not characters),
 *   values over 16 MiB, wrong types for keys, values (null included: it is
 *   not a delete), batch ops, scan options, limits, retries, keyspace names
 *   and transaction functions: HEXAD_BAD_INPUT naming the problem, whether
 *   or not the keyspace exists yet; after each one the store still works and
 *   nothing half-done is left (no partial batch, no phantom keyspace, also
 *   after a reopen).
 * - Every call after cluster.close(): HEXAD_CLOSED; a finished transaction
 *   handle, or one left open across close(): HEXAD_CLOSED.
 * - Promise-returning calls report errors by rejecting, never by throwing
 *   synchronously.
 * - A value of exactly 16 MiB round-trips.
 * - An exception thrown inside a transaction's fn rolls it back: nothing is
 *   written, its locks are released (a waiting writer proceeds), also when
 *   one of its own writes was still waiting for a lock.
 * - The store keeps its own copies: mutating a buffer after put, or one
 *   returned by get, does not change stored data.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { HexadError, type Database, type Keyspace } from '../engine/index.js'
import {
  assertValue, cleanupTempDirs, codeOf, collect, Gate, isSettled, makeTempDir, rejectsWith, rmTempDir, settlesWithin, throwsWith, u8,
  withCluster, withTempCluster,
} from './helpers/kv-helpers.js'

const GUARD_MS = 30_000
const MiB16 = 16 * 1024 * 1024

test.after(() => cleanupTempDirs())

let probe = 0
/** The store still works: a put and a get of a fresh key, in the default keyspace and a named one. */
async function stillUsable(db: Database, what: string): Promise<void> {
  const k = `usable/${probe++}`
  await settlesWithin(db.put(k, 'yes'), GUARD_MS, `${what}: a put afterwards`)
  assert.is(await db.getString(k), 'yes', `${what}: a get afterwards`)
  await db.keyspace('probe').put(k, 'yes')
  assert.is(await db.keyspace('probe').getString(k), 'yes', `${what}: a named keyspace afterwards`)
}

/** Runs `call`, which must fail with HEXAD_BAD_INPUT matching `pattern` (thrown or rejected), then checks the store still works. */
async function bad(db: Database, call: () => unknown, pattern: RegExp, what: string): Promise<void> {
  await rejectsWith(async () => { await call() }, 'HEXAD_BAD_INPUT', pattern, what)
  await stillUsable(db, what)
}

const nonKeys: Array<[unknown, string]> = [[5, 'number'], [null, 'null'], [undefined, 'undefined'], [{}, 'object'], [[1, 2], 'array'], [new ArrayBuffer(3), 'ArrayBuffer'], [true, 'boolean']]

test('empty keys and keys over 512 bytes are refused in every operation; 512 bytes is fine', async () => {
  await withTempCluster('kv-input-keys', {}, async cluster => {
    const db = cluster.writer
    const ks = db.keyspace('named')
    // Both keyspaces exist before the first bad input (a bad first write to a new keyspace has its own test below).
    await db.put('exists', '1')
    await ks.put('exists', '1')
    for (const [h, name] of [[db, 'default'], [ks, 'named']] as Array<[Keyspace, string]>) {
      for (const empty of ['', new Uint8Array(0)]) {
        const w = `${name}: empty ${typeof empty === 'string' ? 'string' : 'Uint8Array'} key`
        await bad(db, () => h.put(empty, 'v'), /empty/, `${w}: put`)
        await bad(db, () => h.get(empty), /empty/, `${w}: get`)
        await bad(db, () => h.del(empty), /empty/, `${w}: del`)
        await bad(db, () => h.batch([{ type: 'put', key: 'fine', value: 'v' }, { type: 'put', key: empty, value: 'v' }]), /empty/, `${w}: batch`)
        await bad(db, () => h.transaction(async tx => { await tx.put(empty, 'v') }), /empty/, `${w}: tx.put`)
        await bad(db, () => h.transaction(async tx => { await tx.get(empty) }), /empty/, `${w}: tx.get`)
      }
      const long = new Uint8Array(513).fill(0x61)
      await bad(db, () => h.put(long, 'v'), /513 bytes.*512|512.*513/, `${name}: 513-byte key put`)
      await bad(db, () => h.get(long), /513/, `${name}: 513-byte key get`)
      await bad(db, () => h.del(long), /513/, `${name}: 513-byte key del`)
      // The limit counts UTF-8 bytes: 200 '€' are 600 bytes.
      await bad(db, () => h.put('€'.repeat(200), 'v'), /600 bytes/, `${name}: 200-character, 600-byte key`)
      const max = new Uint8Array(512).fill(0x62)
      await h.put(max, 'max')
      assert.is(await h.getString(max), 'max', `${name}: a 512-byte key round-trips`)
      assert.is(await h.getString('fine'), undefined, `${name}: the batch with an empty key wrote nothing`)
    }
    const r = await db.verify()
    assert.ok(r.ok, r.problems.join('; '))
  })
})

test('values over 16 MiB are refused, naming the limit', async () => {
  await withTempCluster('kv-input-big', {}, async cluster => {
    const db = cluster.writer
    await db.put('exists', '1') // (a bad first write to a new keyspace has its own test below)
    const big = new Uint8Array(MiB16 + 1)
    await bad(db, () => db.put('big', big), /16777217|16 MiB/, 'put of 16 MiB + 1')
    await bad(db, () => db.batch([{ type: 'put', key: 'small', value: 'x' }, { type: 'put', key: 'big', value: big }]), /16 MiB|16777216/, 'batch with 16 MiB + 1')
    await bad(db, () => db.transaction(async tx => { await tx.put('big', big) }), /16 MiB|16777216/, 'tx.put of 16 MiB + 1')
    assert.is(await db.get('big'), undefined)
    assert.is(await db.get('small'), undefined, 'the refused batch wrote nothing')
    const r = await db.verify()
    assert.ok(r.ok, r.problems.join('; '))
  })
})

test('wrong types for keys and values are refused, naming what was given', async () => {
  await withTempCluster('kv-input-types', {}, async cluster => {
    const db = cluster.writer
    await db.put('exists', '1') // (a bad first write to a new keyspace has its own test below)
    for (const [k, name] of nonKeys) {
      await bad(db, () => db.put(k as never, 'v'), /key/, `put with a ${name} key`)
      await bad(db, () => db.get(k as never), /key/, `get with a ${name} key`)
      await bad(db, () => db.del(k as never), /key/, `del with a ${name} key`)
      await bad(db, () => db.transaction(async tx => { await tx.get(k as never) }), /key/, `tx.get with a ${name} key`)
      await bad(db, () => db.transaction(async tx => { await tx.getForUpdate(k as never) }), /key/, `tx.getForUpdate with a ${name} key`)
      if (k === null) continue // (null values have their own test below)
      await bad(db, () => db.put('k', k as never), /value/, `put with a ${name} value`)
      await bad(db, () => db.transaction(async tx => { await tx.put('k', k as never) }), /value/, `tx.put with a ${name} value`)
      await bad(db, () => db.batch([{ type: 'put', key: 'k', value: k as never }]), /value/, `batch put with a ${name} value`)
    }
    const e = await rejectsWith(async () => { await db.put(5 as never, 'v') }, 'HEXAD_BAD_INPUT', /number/, 'the message names the type given')
    assert.instance(e, HexadError)
    await rejectsWith(async () => { await db.get(null as never) }, 'HEXAD_BAD_INPUT', /null/, 'the message names null')
    assert.is(await db.get('k'), undefined, 'nothing was written under k')
  })
})

test('a put with a null value is refused as bad input, not taken as a delete', async () => {
  await withTempCluster('kv-input-null', {}, async cluster => {
    const db = cluster.writer
    await db.put('k', 'precious')
    const outcomes: string[] = []
    const attempt = async (what: string, call: () => Promise<unknown>) => {
      try { await call(); outcomes.push(`${what}: resolved`) } catch (err) { outcomes.push(`${what}: ${codeOf(err)}`) }
      const still = await db.getString('k')
      if (still !== 'precious') { outcomes.push(`${what}: k is now ${JSON.stringify(still)}`); await db.put('k', 'precious') }
    }
    await attempt('db.put(k, null)', () => db.put('k', null as never))
    await attempt('batch put with value null', () => db.batch([{ type: 'put', key: 'k', value: null as never }]))
    await attempt('tx.put(k, null)', () => db.transaction(async tx => { await tx.put('k', null as never) }))
    assert.equal(outcomes, ['db.put(k, null): HEXAD_BAD_INPUT', 'batch put with value null: HEXAD_BAD_INPUT', 'tx.put(k, null): HEXAD_BAD_INPUT'],
      `outcomes: ${outcomes.join('; ')}`)
  })
})

test('input checks do not depend on whether the keyspace was written yet', async () => {
  await withTempCluster('kv-input-unwritten', {}, async cluster => {
    const db = cluster.writer
    await db.put('exists', '1')
    const results: string[] = []
    const attempt = async (what: string, call: () => Promise<unknown>) => {
      try { await call(); results.push(`${what}: accepted`) } catch (err) { results.push(`${what}: ${codeOf(err)}`) }
    }
    for (const [name, h] of [['written', db], ['unwritten', db.keyspace('never-written')]] as Array<[string, Keyspace]>) {
      await attempt(`${name}: get('')`, () => h.get(''))
      await attempt(`${name}: get(513 bytes)`, () => h.get(new Uint8Array(513)))
      await attempt(`${name}: scan gt+gte`, () => collect(h.scan({ gt: 'a', gte: 'b' })))
      await attempt(`${name}: scan lt+lte`, () => collect(h.scan({ lt: 'a', lte: 'b' })))
      await attempt(`${name}: tx.get('')`, () => db.transaction(async tx => { await (name === 'written' ? tx : tx.keyspace('never-written')).get('') }))
    }
    const bad = (w: string) => [`${w}: get(''): HEXAD_BAD_INPUT`, `${w}: get(513 bytes): HEXAD_BAD_INPUT`, `${w}: scan gt+gte: HEXAD_BAD_INPUT`, `${w}: scan lt+lte: HEXAD_BAD_INPUT`, `${w}: tx.get(''): HEXAD_BAD_INPUT`]
    assert.equal(results, [...bad('written'), ...bad('unwritten')], results.join('; '))
    assert.equal(db.keyspaceNames(), ['default'])
  })
})

test('bad batches, scan options, limits, retries, keyspace names and transaction functions are refused', async () => {
  await withTempCluster('kv-input-opts', {}, async cluster => {
    const db = cluster.writer
    await db.put('a', '1')
    // batch
    await bad(db, () => db.batch('nope' as never), /array/, 'batch of a string')
    await bad(db, () => db.batch(null as never), /array/, 'batch of null')
    await bad(db, () => db.batch([{ type: 'upsert', key: 'b', value: 'v' }] as never), /upsert/, 'batch op of an unknown type')
    await bad(db, () => db.batch([null] as never), /#0/, 'batch op that is null')
    await bad(db, () => db.batch([{ type: 'put', key: 'b', value: 'v' }, 7] as never), /#1/, 'batch op that is a number')
    await bad(db, () => db.batch([{ type: 'put', key: 'b' }] as never), /value/, 'batch put without a value')
    assert.is(await db.get('b'), undefined, 'no refused batch wrote b')
    // scan options
    const scans: Array<[unknown, RegExp, string]> = [
      [null, /scan options/, 'null options'], ['gt', /scan options/, 'a string as options'],
      [{ gt: 5 }, /gt/, 'a number bound'], [{ lte: {} }, /lte/, 'an object bound'], [{ lt: null }, /lt/, 'a null bound'],
      [{ gt: 'a', gte: 'b' }, /gt or gte/, 'both gt and gte'], [{ lt: 'a', lte: 'b' }, /lt or lte/, 'both lt and lte'],
      [{ limit: -1 }, /limit/, 'a negative limit'], [{ limit: 1.5 }, /limit/, 'a fractional limit'], [{ limit: '3' }, /limit/, 'a string limit'],
      [{ limit: NaN }, /limit/, 'a NaN limit'],
    ]
    for (const [opts, pattern, name] of scans) {
      await bad(db, () => collect(db.scan(opts as never)), pattern, `db.scan with ${name}`)
      await bad(db, () => db.transaction(async tx => { await collect(tx.scan(opts as never)) }), pattern, `tx.scan with ${name}`)
    }
    // retries
    for (const retries of [-1, 1.5, '2', NaN]) {
      let ran = false
      await bad(db, () => db.transaction(async () => { ran = true }, { retries: retries as never }), /retries/, `retries ${String(retries)}`)
      assert.not.ok(ran, `fn does not run with retries ${String(retries)}`)
    }
    // keyspace names
    for (const [name, what] of [['', 'empty'], [5, 'number'], [null, 'null'], ['x'.repeat(129), '129 bytes'], ['é'.repeat(65), '130 UTF-8 bytes']] as Array<[unknown, string]>) {
      throwsWith(() => db.keyspace(name as never), 'HEXAD_BAD_INPUT', /keyspace name/, `keyspace name: ${what}`)
      await bad(db, () => db.transaction(async tx => { await tx.keyspace(name as never).put('k', 'v') }), /keyspace name/, `tx.keyspace name: ${what}`)
    }
    assert.is((await db.keyspace('x'.repeat(128)).put('k', 'v'), await db.keyspace('x'.repeat(128)).getString('k')), 'v', 'a 128-byte keyspace name is fine')
    const r = await db.verify()
    assert.ok(r.ok, r.problems.join('; '))
  })
})

test('a transaction given something other than a function is bad input', async () => {
  await withTempCluster('kv-input-fn', {}, async cluster => {
    const db = cluster.writer
    await db.put('exists', '1')
    await bad(db, () => db.transaction(123 as never), /function|fn/, 'transaction with a number for fn')
    await bad(db, () => db.transaction(undefined as never), /function|fn/, 'transaction without fn')
  })
})

test('promise-returning calls reject on bad input or a closed store; they never throw synchronously', async () => {
  await withTempCluster('kv-input-sync', {}, async cluster => {
    const db = cluster.writer
    const calls: Array<[string, () => unknown]> = [
      ['put with a number key', () => db.put(5 as never, 'v')],
      ['del with a null key', () => db.del(null as never)],
      ['batch of a string', () => db.batch('nope' as never)],
      ['batch with a bad op', () => db.batch([{ type: 'zap' }] as never)],
      ['get with a number key', () => db.get(5 as never)],
      ['transaction with bad retries', () => db.transaction(async () => {}, { retries: -1 })],
    ]
    const threw: string[] = []
    const check = async (name: string, call: () => unknown, code: string) => {
      let p: unknown
      try { p = call() } catch (err) {
        assert.is(codeOf(err), code, `${name}: ${String(err)}`)
        threw.push(name)
        return
      }
      assert.ok(p instanceof Promise, `${name}: returns a promise`)
      await rejectsWith(p as Promise<unknown>, code, undefined, name)
    }
    for (const [name, call] of calls) await check(name, call, 'HEXAD_BAD_INPUT')
    await cluster.close()
    const closed: Array<[string, () => unknown]> = [
      ['put after close', () => db.put('k', 'v')], ['del after close', () => db.del('k')], ['batch after close', () => db.batch([])],
      ['get after close', () => db.get('k')], ['transaction after close', () => db.transaction(async () => {})],
    ]
    for (const [name, call] of closed) await check(name, call, 'HEXAD_CLOSED')
    // A caller using db.put(k, v).catch(...) would see these escape as exceptions instead.
    assert.equal(threw, [], `these threw synchronously instead of returning a rejected promise: ${threw.join(', ')}`)
  })
})

test('every call after close gets HEXAD_CLOSED; close is idempotent; a finished transaction handle is closed', async () => {
  let finished: { put(k: string, v: string): Promise<void>; get(k: string): Promise<unknown> } | null = null
  await withTempCluster('kv-input-closed', {}, async cluster => {
    const db = cluster.writer
    const ks = db.keyspace('named')
    await db.put('k', 'v')
    await ks.put('k', 'v')
    await db.transaction(async tx => { finished = tx; await tx.get('k') })
    await rejectsWith(async () => { await finished!.put('k2', 'v') }, 'HEXAD_CLOSED', /finished|transaction/, 'put on a committed transaction handle')
    await rejectsWith(async () => { await finished!.get('k') }, 'HEXAD_CLOSED', /finished|transaction/, 'get on a committed transaction handle')
    await cluster.close()
    for (const [h, name] of [[db, 'default'], [ks, 'named']] as Array<[Keyspace, string]>) {
      const calls: Array<[string, () => unknown]> = [
        ['get', () => h.get('k')], ['getString', () => h.getString('k')], ['put', () => h.put('k', 'v')], ['del', () => h.del('k')],
        ['batch', () => h.batch([{ type: 'put', key: 'k', value: 'v' }])], ['scan', () => collect(h.scan())],
        ['transaction', () => h.transaction(async tx => { await tx.get('k') })],
      ]
      for (const [op, call] of calls) await rejectsWith(async () => { await call() }, 'HEXAD_CLOSED', /closed/, `${name}: ${op} after close`)
    }
    await rejectsWith(async () => { await db.verify() }, 'HEXAD_CLOSED', /closed/, 'verify after close')
    await cluster.close() // idempotent
  })
})

test('a transaction open when the cluster closes cannot write afterwards', async () => {
  await withTempCluster('kv-input-closing', {}, async cluster => {
    const db = cluster.writer
    const inside = new Gate(), closed = new Gate()
    const t = db.transaction(async tx => {
      await tx.put('early', 'v')
      inside.open()
      await closed.wait()
      await tx.put('late', 'v')
    })
    const tResult = t.then(() => 'committed', err => codeOf(err))
    await inside.wait()
    await settlesWithin(cluster.close(), GUARD_MS, 'close with a transaction open')
    closed.open()
    assert.is(await settlesWithin(tResult, GUARD_MS, 'the open transaction'), 'HEXAD_CLOSED')
  })
})

test('an explicit transaction from begin(): commit makes its writes visible, rollback drops them, a finished one is closed', async () => {
  await withTempCluster('kv-input-begin', {}, async cluster => {
    const db = cluster.writer
    const tx = db.begin()
    await tx.keyspace('t').put('a', '1')
    await tx.put('b', '2')
    assert.is(await tx.keyspace('t').getString('a'), '1', 'a transaction reads its own writes')
    assert.is(await db.keyspace('t').get('a'), undefined, 'uncommitted writes are invisible outside')
    await tx.commit()
    assert.is(await db.keyspace('t').getString('a'), '1')
    assert.is(await db.getString('b'), '2')
    await rejectsWith(tx.put('c', '3'), 'HEXAD_CLOSED', /finished/, 'a put on a committed transaction')
    const tx2 = db.begin()
    await tx2.put('b', 'changed')
    tx2.rollback()
    tx2.rollback() // idempotent
    assert.is(await db.getString('b'), '2', 'a rolled-back write is dropped')
    await settlesWithin(db.put('b', 'after'), GUARD_MS, 'the rolled-back transaction released its lock')
    await cluster.close()
    throwsWith(() => db.begin(), 'HEXAD_CLOSED', undefined, 'begin after close')
  })
})

test('a value of exactly 16 MiB round-trips', async () => {
  await withTempCluster('kv-input-16m', { logFileBytes: 4 << 20, checkpointLogBytes: 16 << 20, pagesPerGroup: 1024 }, async cluster => {
    const db = cluster.writer
    const v = new Uint8Array(MiB16)
    for (let i = 0; i < v.length; i += 4096) v[i] = (i >>> 12) & 0xff // a distinct byte per 4 KiB, so a misplaced page shows
    v[v.length - 1] = 0xee
    await db.put('sixteen', v)
    const got = await db.get('sixteen')
    assert.ok(got instanceof Uint8Array, 'read back')
    assert.is(got!.length, MiB16)
    assert.ok(Buffer.compare(Buffer.from(got!.buffer, got!.byteOffset, got!.byteLength), Buffer.from(v)) === 0, 'the 16 MiB value reads back byte for byte')
    const r = await db.verify()
    assert.ok(r.ok, r.problems.join('; '))
    await db.del('sixteen')
    assert.is(await db.get('sixteen'), undefined)
    const r2 = await db.verify()
    assert.ok(r2.ok, r2.problems.join('; '))
    assert.ok(r2.freePages > 4000, `the overflow chain's pages went back to the free list (${r2.freePages} free)`)
  })
})

// ------------------------------------------------------------------ rollback

class Boom extends Error {}

test('an exception thrown inside transaction fn rolls back: nothing written, keyspaces not created, locks released', async () => {
  await withTempCluster('kv-input-rollback', {}, async cluster => {
    const db = cluster.writer
    await db.put('a', 'before')
    const boom = new Boom('boom')
    const locked = new Gate(), go = new Gate()
    const t = db.transaction(async tx => {
      await tx.put('a', 'during')
      await tx.put('b', 'during')
      await tx.del('a-never')
      await tx.keyspace('rolled-back-ks').put('k', 'v')
      locked.open()
      await go.wait()
      throw boom
    }, { retries: 3 })
    await locked.wait()
    // Writers of the same keys wait behind the doomed transaction...
    const waiter = db.put('a', 'after')
    const waiter2 = db.transaction(async tx => { await tx.put('b', 'after-b') })
    assert.not.ok(await isSettled(waiter), 'the writer of a waits for the lock')
    go.open()
    try { await t; assert.unreachable('the transaction should reject') } catch (err) {
      assert.is(err, boom, 'the transaction rejects with the very error fn threw (not retried, not wrapped)')
    }
    // ...and proceed once it rolled back.
    await settlesWithin(Promise.all([waiter, waiter2]), GUARD_MS, 'writers waiting on the rolled-back transaction\'s locks')
    assert.is(await db.getString('a'), 'after')
    assert.is(await db.getString('b'), 'after-b')
    assert.not.ok(db.keyspaceNames().includes('rolled-back-ks'), `keyspace of a rolled-back write exists: ${db.keyspaceNames().join(', ')}`)
    assert.is(await db.keyspace('rolled-back-ks').getString('k'), undefined)

    // Throw with nothing waiting: nothing visible, and the keys are immediately writable.
    await db.transaction(async tx => { await tx.put('c', 'no'); throw new Boom('again') }).catch(err => { if (!(err instanceof Boom)) throw err })
    assert.is(await db.getString('c'), undefined)
    await settlesWithin(db.put('c', 'yes'), GUARD_MS, 'a put of a key the rolled-back transaction wrote')
    assert.is(await db.getString('c'), 'yes')
    assert.is(db.stats().versionsKept, 0, 'no versions kept by rolled-back transactions')
    const r = await db.verify()
    assert.ok(r.ok, r.problems.join('; '))
  })
})

test('an exception thrown inside fn while one of its own writes waits for a lock still releases every lock', async () => {
  await withTempCluster('kv-input-rollback-wait', {}, async cluster => {
    const db = cluster.writer
    const locked = new Gate(), release = new Gate()
    // T0 holds k.
    const t0 = db.transaction(async tx => { await tx.put('k', 't0'); locked.open(); await release.wait() })
    await locked.wait()
    // T1 starts a write of k (which waits) and of j, then fails without awaiting the waiting write (as Promise.all does).
    const t1 = db.transaction(async tx => {
      await tx.put('j', 't1')
      await Promise.all([tx.put('k', 't1'), Promise.reject(new Boom('fails while its write of k waits'))])
    })
    await t1.then(() => assert.unreachable('T1 should reject'), err => assert.instance(err, Boom))
    release.open()
    await settlesWithin(t0, GUARD_MS, 'T0')
    // Neither k nor j may stay locked by the rolled-back T1.
    // (probes are transactions: close() does not wait for them, so a leaked lock cannot hang the file)
    const put = (k: string) => db.transaction(async tx => { await tx.put(k, 'after') })
    await settlesWithin(put('j'), GUARD_MS, 'a put of j after T1 rolled back')
    await settlesWithin(put('k'), 5_000, 'a put of k after T1 rolled back (the lock of k was handed to the finished T1 and never released)')
    assert.is(await db.getString('k'), 'after')
    assert.is(await db.getString('j'), 'after')
  })
})

test('a batch or transaction refused for bad input in a new keyspace leaves no trace of that keyspace', async () => {
  const dir = makeTempDir('kv-input-phantom-ks')
  const problems: string[] = []
  const step = async (what: string, call: () => Promise<unknown>) => {
    try { await settlesWithin(call(), GUARD_MS, what) } catch (err) { problems.push(`${what}: ${codeOf(err) ?? ''} ${(err as Error).message}`) }
  }
  await withCluster(dir, {}, async cluster => {
    const db = cluster.writer
    await db.put('x', '1')
    await rejectsWith(async () => { await db.keyspace('fresh').batch([{ type: 'put', key: 'a', value: '1' }, { type: 'put', key: '', value: '2' }]) }, 'HEXAD_BAD_INPUT', /empty/, 'batch in a new keyspace with an empty key')
    if (db.keyspaceNames().join() !== 'default') problems.push(`after the refused batch, keyspaceNames() = ${JSON.stringify(db.keyspaceNames())}`)
    await step('get in fresh after the refused batch', async () => { const v = await db.keyspace('fresh').getString('a'); if (v !== undefined) throw new Error(`read ${v}`) })
    await rejectsWith(async () => { await db.transaction(async tx => { await tx.keyspace('fresh2').put('a', '1'); await tx.put('bad', new Uint8Array(MiB16 + 1)) }) }, 'HEXAD_BAD_INPUT', /16 MiB/, 'transaction with a new keyspace and an oversized value')
    if (db.keyspaceNames().some(n => n === 'fresh2')) problems.push(`after the refused transaction, keyspaceNames() = ${JSON.stringify(db.keyspaceNames())}`)
    // All of them, and one more, work and stay separate afterwards.
    await step('first write to fresh', () => db.keyspace('fresh').put('a', 'fresh-a'))
    await step('first write to other', () => db.keyspace('other').put('a', 'other-a'))
    await step('first write to fresh2', () => db.keyspace('fresh2').put('a', 'fresh2-a'))
    for (const [ks, want] of [['fresh', 'fresh-a'], ['other', 'other-a'], ['fresh2', 'fresh2-a']]) {
      await step(`read back ${ks}`, async () => { const v = await db.keyspace(ks).getString('a'); if (v !== want) throw new Error(`read ${JSON.stringify(v)}, expected ${want}`) })
    }
    const r = await db.verify()
    if (!r.ok) problems.push(`verify(): ${r.problems.slice(0, 3).join('; ')}`)
    const roots = r.keyspaces.map(k => k.root)
    if (new Set(roots).size !== roots.length) problems.push(`keyspaces share root pages: ${JSON.stringify(r.keyspaces)}`)
  })
  // What was acknowledged survives a reopen.
  await withCluster(dir, {}, async cluster => {
    const db = cluster.writer
    const names = db.keyspaceNames()
    if (names.join() !== 'default,fresh,fresh2,other') problems.push(`after reopen, keyspaceNames() = ${JSON.stringify(names)}`)
    for (const [ks, want] of [['fresh', 'fresh-a'], ['other', 'other-a'], ['fresh2', 'fresh2-a']]) {
      await step(`read back ${ks} after reopen`, async () => { const v = await db.keyspace(ks).getString('a'); if (v !== want) throw new Error(`read ${JSON.stringify(v)}, expected ${want}`) })
    }
  })
  assert.equal(problems, [], problems.join(' | '))
  rmTempDir(dir)
})

test('the store keeps its own copies of keys and values', async () => {
  await withTempCluster('kv-input-copies', {}, async cluster => {
    const db = cluster.writer
    // An open transaction holds an old snapshot, so recent versions stay in memory (where aliasing would show).
    const holding = new Gate(), done = new Gate()
    const reader = db.transaction(async tx => { await tx.get('zzz'); holding.open(); await done.wait() })
    await holding.wait()
    const problems: string[] = []
    const expect = async (what: string, key: string, want: string) => {
      const got = await db.getString(key)
      if (got !== want) problems.push(`${what}: ${key} reads ${JSON.stringify(got)}, expected ${JSON.stringify(want)}`)
      await db.put(key, want) // repair for the next check
    }
    try {
      const key = u8('copied-key')
      const value = u8('original value')
      await db.put(key, value)
      value.fill(0x58)
      key.fill(0x59)
      await expect('after the caller reused the value and key buffers it passed to put', 'copied-key', 'original value')
      const scannedKeys = (await collect(db.scan())).map(([k]) => Buffer.from(k).toString('latin1'))
      if (!scannedKeys.includes('copied-key')) problems.push(`after the caller reused its key buffer, a scan lists ${JSON.stringify(scannedKeys)}`)
      const got = (await db.get('copied-key'))!
      got.fill(0x5a)
      await expect('after the caller mutated a value returned by get', 'copied-key', 'original value')
      const [[, scanned]] = await collect(db.scan({ gte: 'copied-key', lte: 'copied-key' }))
      scanned.fill(0x5b)
      await expect('after the caller mutated a value returned by scan', 'copied-key', 'original value')
      const bv = u8('batch value')
      await db.batch([{ type: 'put', key: 'b', value: bv }])
      bv.fill(0x30)
      await expect('after the caller reused a buffer it passed to batch', 'b', 'batch value')
      const tv = u8('tx value')
      await db.transaction(async tx => { await tx.put('t', tv) })
      tv.fill(0x30)
      await expect('after the caller reused a buffer it passed to tx.put', 't', 'tx value')
    } finally {
      done.open()
      await reader
    }
    assert.equal(problems, [], problems.join('; '))
    // and once the versions are pruned, from the tree
    await db.put('other', 'x')
    assert.is(await db.getString('copied-key'), 'original value')
    assert.is(await db.getString('b'), 'batch value')
  })
})

test('values from get and scan are the caller\'s own bytes at every size, also those copied out of a shared buffer', async () => {
  await withTempCluster('kv-input-copy-out', {}, async cluster => {
    const db = cluster.writer
    // 65..1024 bytes are copied into a shared slab (btree.ts copyOut); shorter and longer ones into buffers of their own.
    const sizes = [1, 16, 64, 65, 100, 101, 500, 1000, 1024, 1025, 3000]
    const fill = (n: number, b: number) => new Uint8Array(n).fill(b)
    await db.batch(sizes.map((n, i) => ({ type: 'put' as const, key: `k${i}`, value: fill(n, 0x41 + i) })))
    const fromGet = await Promise.all(sizes.map((_, i) => db.get(`k${i}`)))
    const fromScan = (await collect(db.scan({ gte: 'k', lt: 'l' }))).map(([, v]) => v)
    const values = [...fromGet.map(v => v!), ...fromScan]
    assert.is(fromScan.length, sizes.length)
    const want = (v: Uint8Array, n: number, b: number, what: string) => {
      assert.ok(v instanceof Uint8Array, `${what}: a Uint8Array`)
      assert.is(v.length, n, `${what}: length`)
      for (let j = 0; j < n; j++) if (v[j] !== b) assert.unreachable(`${what}: byte ${j} is ${v[j]}, expected ${b}`)
    }
    // The pages these came from are replaced: the values read before do not change.
    await db.batch(sizes.map((n, i) => ({ type: 'put' as const, key: `k${i}`, value: fill(n, 0x61 + i) })))
    const order = (await collect(db.scan({ gte: 'k', lt: 'l' }))).map(([k]) => Number(Buffer.from(k).toString('latin1').slice(1)))
    for (let i = 0; i < sizes.length; i++) {
      want(fromGet[i]!, sizes[i], 0x41 + i, `get k${i} after an overwrite`)
      want(fromScan[i], sizes[order[i]], 0x41 + order[i], `scan row ${i} after an overwrite`)
    }
    // Mutating one returned value changes no other, and not the store.
    for (let x = 0; x < values.length; x++) {
      values[x].fill(0xee)
      for (let y = x + 1; y < values.length; y++) {
        const i = y < sizes.length ? y : order[y - sizes.length]
        want(values[y], sizes[i], 0x41 + i, `value #${y} after the caller filled value #${x}`)
      }
    }
    for (let i = 0; i < sizes.length; i++) want((await db.get(`k${i}`))!, sizes[i], 0x61 + i, `k${i} in the store`)
  })
})

test.run()
