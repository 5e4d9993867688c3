/**
 * Transactions of the key-value store are serializable.
 *
 * (a) Concurrent transfers between accounts (one hot account in most of
 *     them), half with locking reads, half optimistic with retries: the
 *     total never changes, in any snapshot a reader takes during the run or
 *     after a reopen, and every account ends at its initial balance plus the
 *     net of the transfers that committed.
 * (b) Write skew is refused: two transactions that each read both keys and
 *     each write one: exactly one commits, the other gets HEXAD_CONFLICT;
 *     the same for a phantom (insert-if-range-empty); with retries the
 *     loser runs again on a snapshot that has the winner's commit;
 *     transactions that do not overlap never conflict; a read-only
 *     transaction mixing snapshot reads and getForUpdate never sees half of
 *     another commit.
 * (c) 64 clients increment one counter with getForUpdate, no retries: all
 *     succeed and the count is exact.
 * (d) A lock cycle (2 and 3 transactions) fails exactly one victim with
 *     HEXAD_DEADLOCK; the others commit; with retries all commit.
 * (e) A second writer of a key waits (does not fail); the last committer wins.
 * (f) Reads see the snapshot of the transaction's start, never block behind
 *     a lock holder; getForUpdate waits and reads the latest commit; a
 *     keyspace whose creating commit is being built reads as empty.
 * (g) Random concurrent transactions on list-append registers (reads, scans,
 *     optimistic and locking read-modify-writes): the committed history has
 *     no lost or phantom append and no dependency cycle (an Elle-style check).
 *
 * Hangs are turned into failures by a generous liveness guard (not a timing
 * assertion). Replay a failure with HEXAD_SEED=<base seed printed on failure>.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { HexadError, openCluster, type Database } from '../engine/index.js'
import {
  baseSeed, cleanupTempDirs, codeOf, collect, Gate, isSettled, kvOptions, makeTempDir, rmTempDir, settlesWithin, utf8, withSeed,
  withTempCluster,
} from './helpers/kv-helpers.js'

const FILE = 'kv-serializable'
const SEED = baseSeed()
const GUARD_MS = 30_000

test.after(() => cleanupTempDirs())

/** Resolves for everyone once `n` parties have arrived. */
function barrier(n: number): () => Promise<void> {
  let arrived = 0
  const g = new Gate()
  return async () => { if (++arrived >= n) g.open(); await g.wait() }
}

const yieldToLoop = () => new Promise<void>(r => setImmediate(r))

function num(v: Uint8Array | undefined, what: string): number {
  assert.ok(v !== undefined, `${what} is missing`)
  const n = Number(utf8(v!))
  assert.ok(Number.isInteger(n), `${what} is not an integer: ${JSON.stringify(utf8(v!))}`)
  return n
}

// ------------------------------------------------------------------ (a) transfers

const ACCOUNTS = 20
const INITIAL = 1000
const acct = (i: number) => `acct/${String(i).padStart(2, '0')}`
const ACCT_RANGE = { gte: 'acct/', lt: 'acct0' }

async function sumInTransaction(db: Database, how: 'scan' | 'gets'): Promise<number> {
  return db.transaction(async tx => {
    let sum = 0, n = 0
    if (how === 'scan') {
      for await (const [k, v] of tx.scan(ACCT_RANGE)) { sum += num(v, utf8(k)); n++ }
    } else {
      for (let i = 0; i < ACCOUNTS; i++) { sum += num(await tx.get(acct(i)), acct(i)); n++ }
    }
    assert.is(n, ACCOUNTS, `a ${how} reader saw ${n} accounts`)
    return sum
  })
}

test('(a) concurrent transfers with a hot account: the total never changes and every balance is exact', async () => {
  await withSeed(FILE, 'transfers', SEED, 0, async rng => {
    const dir = makeTempDir('kv-transfers')
    const CLIENTS = 16, TRANSFERS = 50
    const total = ACCOUNTS * INITIAL
    const net = new Array<number>(ACCOUNTS).fill(0)
    let cluster = await openCluster(kvOptions(dir))
    try {
      const db = cluster.writer
      await db.batch(Array.from({ length: ACCOUNTS }, (_, i) => ({ type: 'put' as const, key: acct(i), value: String(INITIAL) })))
      const before = db.stats()

      // Plans are drawn up front so the schedule of amounts is seeded.
      const plans = Array.from({ length: CLIENTS }, () => Array.from({ length: TRANSFERS }, () => {
        let from = rng.int(0, ACCOUNTS - 1), to = rng.int(0, ACCOUNTS - 2)
        if (to >= from) to++
        // account 0 is the hot one: in about 80% of the transfers
        if (from !== 0 && to !== 0 && rng.bool(0.78)) { if (rng.bool(0.5)) from = 0; else to = 0 }
        assert.ok(from !== to)
        return { from, to, amount: rng.int(1, 60) }
      }))

      let running = true
      let readerFailure: unknown = null
      const observed = { scan: 0, gets: 0, plain: 0 }
      const readerLoops = [
        // (each loop yields to the event loop between reads: reads of cached pages complete in microtasks)
        (async () => { while (running) { assert.is(await sumInTransaction(db, 'scan'), total, 'sum seen by a scanning reader transaction'); observed.scan++; await yieldToLoop() } })(),
        (async () => { while (running) { assert.is(await sumInTransaction(db, 'gets'), total, 'sum seen by a reader transaction of point gets'); observed.gets++; await yieldToLoop() } })(),
        (async () => {
          while (running) {
            let sum = 0
            for await (const [k, v] of db.scan(ACCT_RANGE)) sum += num(v, utf8(k))
            assert.is(sum, total, 'sum seen by a plain db.scan (one snapshot)')
            observed.plain++
            await yieldToLoop()
          }
        })(),
      ]
      // A reader's failure is kept (not left unhandled) and reported once the clients are done.
      const readers = readerLoops.map(p => p.catch(err => { readerFailure ??= err; running = false }))

      let outerRetries = 0
      const clients = plans.map(async (plan, c) => {
        const locking = c % 2 === 0
        for (const t of plan) {
          const transfer = () => db.transaction(async tx => {
            const read = (k: string) => locking ? tx.getForUpdate(k) : tx.get(k)
            const a = num(await read(acct(t.from)), acct(t.from))
            const b = num(await read(acct(t.to)), acct(t.to))
            const amt = Math.min(t.amount, a)
            await tx.put(acct(t.from), String(a - amt))
            await tx.put(acct(t.to), String(b + amt))
            return amt
          }, { retries: 20 })
          let moved: number
          for (;;) {
            try { moved = await transfer(); break } catch (err) {
              // Out of retries: optimistic clients convoying on a hot key can exhaust any fixed number
              // (and see the "(b) with retries" test for retries that run before the conflicting commit is durable).
              // Yield to the event loop and run the transfer again; it commits at most once either way.
              if (locking ? codeOf(err) !== 'HEXAD_DEADLOCK' : codeOf(err) !== 'HEXAD_CONFLICT' && codeOf(err) !== 'HEXAD_DEADLOCK') throw err
              outerRetries++
              await new Promise(r => setImmediate(r))
            }
          }
          net[t.from] -= moved
          net[t.to] += moved
        }
      })
      try {
        await settlesWithin(Promise.all(clients), 120_000, 'the transfer clients')
      } finally {
        running = false
        await settlesWithin(Promise.all(readers), GUARD_MS, 'the readers')
      }
      if (readerFailure) throw readerFailure
      assert.ok(observed.scan > 0 && observed.gets > 0 && observed.plain > 0, `every reader observed at least one sum (${JSON.stringify(observed)})`)

      assert.is(await sumInTransaction(db, 'scan'), total, 'final sum (scan in a transaction)')
      const balances = await db.transaction(async tx => {
        const out: number[] = []
        for await (const [k, v] of tx.scan(ACCT_RANGE)) out.push(num(v, utf8(k)))
        return out
      })
      for (let i = 0; i < ACCOUNTS; i++) {
        assert.ok(balances[i] >= 0, `${acct(i)} went negative: ${balances[i]}`)
        assert.is(balances[i], INITIAL + net[i], `${acct(i)}: balance ${balances[i]}, expected ${INITIAL} + net ${net[i]} of the committed transfers`)
      }
      const st = db.stats()
      assert.ok(st.commits - before.commits >= CLIENTS * TRANSFERS, `at least ${CLIENTS * TRANSFERS} commits, got ${st.commits - before.commits}`)
      assert.ok(st.lockWaits > before.lockWaits, 'the hot account made writers wait for its lock')
      await db.put('after', 'x')
      assert.is(db.stats().versionsKept, 0, 'the version store drains once no transaction is open')
      const r = await db.verify()
      assert.ok(r.ok, r.problems.join('; '))
      await cluster.close()

      cluster = await openCluster(kvOptions(dir))
      assert.is(await sumInTransaction(cluster.writer, 'gets'), total, 'sum after reopen')
      for (let i = 0; i < ACCOUNTS; i++) assert.is(num(await cluster.writer.get(acct(i)), acct(i)), INITIAL + net[i], `${acct(i)} after reopen`)
    } finally {
      await cluster.close()
    }
    rmTempDir(dir)
  })
})

// ------------------------------------------------------------------ (b) write skew

test('(b) write skew is refused: two transactions read x and y, each sets one to 0: exactly one commits, the other gets HEXAD_CONFLICT', async () => {
  await withTempCluster('kv-skew', {}, async cluster => {
    const db = cluster.writer
    for (let round = 0; round < 5; round++) {
      await db.batch([{ type: 'put', key: 'x', value: '1' }, { type: 'put', key: 'y', value: '1' }])
      const bothRead = barrier(2)
      const oncall = (mine: 'x' | 'y') => db.transaction(async tx => {
        const x = num(await tx.get('x'), 'x'), y = num(await tx.get('y'), 'y')
        await bothRead()
        if (x + y >= 2) await tx.put(mine, '0') // "someone else is still on call"
        return mine
      })
      const rs = await settlesWithin(Promise.allSettled([oncall('x'), oncall('y')]), GUARD_MS, 'the two transactions')
      const ok = rs.filter(r => r.status === 'fulfilled')
      const failed = rs.filter((r): r is PromiseRejectedResult => r.status === 'rejected')
      assert.is(ok.length, 1, `round ${round}: exactly one commits (got ${ok.length}: ${rs.map(r => r.status === 'rejected' ? String(r.reason) : 'ok').join(' | ')})`)
      assert.instance(failed[0].reason, HexadError)
      assert.is(codeOf(failed[0].reason), 'HEXAD_CONFLICT', `round ${round}: ${String(failed[0].reason)}`)
      assert.match((failed[0].reason as Error).message, /conflict/i)
      const x = num(await db.get('x'), 'x'), y = num(await db.get('y'), 'y')
      assert.is(x + y, 1, `round ${round}: x + y >= 1 holds (x=${x}, y=${y})`)
    }
  })
})

test('(h) group commit: concurrent commits share MTRs; inside one group a later member that read or scanned what an earlier one wrote is refused, the others commit', async () => {
  await withTempCluster('kv-group', {}, async cluster => {
    const db = cluster.writer
    // 64 independent single puts at once: all durable, fewer MTRs than commits.
    const before = db.stats()
    await settlesWithin(Promise.all(Array.from({ length: 64 }, (_, i) => db.put(`g/${i}`, `v${i}`))), GUARD_MS, '64 concurrent puts')
    const after = db.stats()
    assert.is(after.commits - before.commits, 64)
    assert.ok(after.commitGroups - before.commitGroups < 64, `64 concurrent commits took ${after.commitGroups - before.commitGroups} MTRs; expected them grouped`)
    for (let i = 0; i < 64; i++) assert.is(await db.getString(`g/${i}`), `v${i}`)
    // Readers and writers of the same keys committing together: explicit transactions released at once.
    await db.put('hot', '0')
    for (let round = 0; round < 10; round++) {
      const lead = db.begin(), writer = db.begin(), reader = db.begin(), scanner = db.begin(), other = db.begin()
      await lead.put(`lead/${round}`, 'x')
      await writer.put('hot', String(round + 1))
      assert.is(await reader.getString('hot'), String(round), `round ${round}: the reader sees the last commit`)
      await reader.put(`r/${round}`, 'x')
      assert.is((await collect(scanner.scan({ gte: 'hos', lt: 'hou' }))).length, 1, `round ${round}: the scanner sees one key`)
      await scanner.put(`s/${round}`, 'x')
      await other.put(`o/${round}`, 'x')
      // All commit calls in one turn: the lead's group starts at once, the other four queue
      // behind it and form the next group, in this order.
      const all = await settlesWithin(Promise.allSettled([lead.commit(), writer.commit(), reader.commit(), scanner.commit(), other.commit()]), GUARD_MS, `round ${round} commits`)
      assert.is(all[0].status, 'fulfilled')
      const rs = all.slice(1)
      assert.is(rs[0].status, 'fulfilled', `round ${round}: the writer commits`)
      assert.is(rs[3].status, 'fulfilled', `round ${round}: the unrelated transaction commits`)
      for (const [i, what] of [[1, 'reader'], [2, 'scanner']] as const) {
        const r = rs[i]
        assert.is(r.status, 'rejected', `round ${round}: the ${what} of the key the writer changed is refused`)
        assert.is(codeOf((r as PromiseRejectedResult).reason), 'HEXAD_CONFLICT')
        assert.match(String((r as PromiseRejectedResult).reason), /same group/, `round ${round}: the ${what} was refused inside the group`)
      }
      assert.is(await db.getString('hot'), String(round + 1))
      assert.is(await db.get(`r/${round}`), undefined, 'the refused reader wrote nothing')
      assert.is(await db.get(`s/${round}`), undefined, 'the refused scanner wrote nothing')
      assert.is(await db.getString(`o/${round}`), 'x')
    }
    const report = await db.verify()
    assert.ok(report.ok, report.problems.join('; '))
  })
})

test('(b) with retries, the loser of a write skew runs again, sees the winner\'s commit and completes', async () => {
  await withTempCluster('kv-skew-retry', {}, async cluster => {
    const db = cluster.writer
    await db.batch([{ type: 'put', key: 'x', value: '1' }, { type: 'put', key: 'y', value: '1' }])
    const bothRead = barrier(2)
    const attempts = { x: 0, y: 0 }
    const seen: string[] = []
    const oncall = (mine: 'x' | 'y') => db.transaction(async tx => {
      attempts[mine]++
      const x = num(await tx.get('x'), 'x'), y = num(await tx.get('y'), 'y')
      seen.push(`${mine}#${attempts[mine]}:${x}+${y}`)
      if (attempts[mine] === 1) await bothRead()
      if (x + y >= 2) await tx.put(mine, '0')
    }, { retries: 3 })
    const rs = await settlesWithin(Promise.allSettled([oncall('x'), oncall('y')]), GUARD_MS, 'the two transactions with retries')
    // The retry must not run again and again against a snapshot that still lacks the winner's commit.
    assert.equal(rs.map(r => r.status === 'rejected' ? `${codeOf(r.reason)}` : 'ok'), ['ok', 'ok'],
      `both complete with retries: 3 (attempts x=${attempts.x} y=${attempts.y}; reads seen: ${seen.slice(0, 8).join(' ')})`)
    assert.is(attempts.x + attempts.y, 3, `one of the two ran exactly once more (attempts x=${attempts.x} y=${attempts.y})`)
    assert.is(num(await db.get('x'), 'x') + num(await db.get('y'), 'y'), 1)
  })
})

test('(b) phantoms are refused: two transactions that insert into a range they saw empty: exactly one commits', async () => {
  await withTempCluster('kv-phantom', {}, async cluster => {
    const db = cluster.writer
    await db.put('room/0', 'a neighbour key')
    await db.put('room/2', 'a neighbour key')
    for (let round = 0; round < 3; round++) {
      const bothScanned = barrier(2)
      const book = (who: string) => db.transaction(async tx => {
        const taken = await collect(tx.scan({ gte: `room/1/${round}/`, lt: `room/1/${round}0` }))
        await bothScanned()
        if (taken.length === 0) await tx.put(`room/1/${round}/${who}`, who)
      })
      const rs = await settlesWithin(Promise.allSettled([book('alice'), book('bob')]), GUARD_MS, 'the two bookings')
      const failed = rs.filter((r): r is PromiseRejectedResult => r.status === 'rejected')
      assert.is(failed.length, 1, `round ${round}: exactly one booking fails (${rs.map(r => r.status === 'rejected' ? String(r.reason) : 'ok').join(' | ')})`)
      assert.is(codeOf(failed[0].reason), 'HEXAD_CONFLICT', String(failed[0].reason))
      const booked = await collect(db.scan({ gte: `room/1/${round}/`, lt: `room/1/${round}0` }))
      assert.is(booked.length, 1, `round ${round}: one booking in the range`)
    }
    // Reverse scans and limited scans are validated too.
    const bothScanned = barrier(2)
    const book = (who: string) => db.transaction(async tx => {
      const last = await collect(tx.scan({ gte: 'room/1/x/', lt: 'room/1/x0', reverse: true, limit: 1 }))
      await bothScanned()
      if (last.length === 0) await tx.put(`room/1/x/${who}`, who)
    })
    const rs = await settlesWithin(Promise.allSettled([book('carol'), book('dave')]), GUARD_MS, 'the two reverse-scan bookings')
    assert.is(rs.filter(r => r.status === 'rejected').length, 1, 'exactly one reverse-scan booking fails')
  })
})

test('(b) transactions that do not overlap never conflict; read-only transactions never conflict', async () => {
  await withTempCluster('kv-noconflict', {}, async cluster => {
    const db = cluster.writer
    await db.batch(Array.from({ length: 8 }, (_, i) => ({ type: 'put' as const, key: `n/${i}`, value: '0' })))
    const conflictsBefore = db.stats().conflicts
    const all = barrier(8)
    // each reads and writes its own key, reads a range that no one writes, and reads a key others read
    const rs = await settlesWithin(Promise.allSettled(Array.from({ length: 8 }, (_, i) => db.transaction(async tx => {
      const v = num(await tx.get(`n/${i}`), `n/${i}`)
      await tx.get('n/shared-read')
      await collect(tx.scan({ gte: 'q/', lt: 'q0' }))
      await all()
      await tx.put(`n/${i}`, String(v + 1))
    }))), GUARD_MS, 'eight disjoint transactions')
    assert.equal(rs.map(r => r.status === 'rejected' ? String(r.reason) : 'ok'), new Array(8).fill('ok'))
    // A read-only transaction whose reads were overwritten meanwhile still commits (it serializes at its snapshot).
    const gate = new Gate(), read = new Gate()
    const ro = db.transaction(async tx => {
      const a = num(await tx.get('n/0'), 'n/0')
      const s = (await collect(tx.scan({ gte: 'n/', lt: 'n0' }))).length
      read.open()
      await gate.wait()
      return [a, s]
    })
    await read.wait()
    await db.put('n/0', '100')
    await db.put('n/9', 'new')
    gate.open()
    assert.equal(await settlesWithin(ro, GUARD_MS, 'read-only transaction'), [1, 8])
    assert.is(db.stats().conflicts, conflictsBefore, 'no conflicts were counted')
  })
})

test('(b) a read-only transaction mixing snapshot reads and getForUpdate never sees half of another commit', async () => {
  await withTempCluster('kv-ro-mixed', {}, async cluster => {
    const db = cluster.writer
    await db.batch([{ type: 'put', key: 'a', value: '1' }, { type: 'put', key: 'b', value: '1' }])
    const didRead = new Gate(), go = new Gate()
    const t = db.transaction(async tx => {
      const a = await tx.getString('a') // snapshot read
      didRead.open()
      await go.wait()
      const b = utf8((await tx.getForUpdate('b'))!) // locking read: the latest commit
      return `a=${a} b=${b}`
    })
    await didRead.wait()
    await db.batch([{ type: 'put', key: 'a', value: '2' }, { type: 'put', key: 'b', value: '2' }]) // one atomic commit
    go.open()
    const outcome = await settlesWithin(t.then(v => v, err => codeOf(err) ?? String(err)), GUARD_MS, 'the reader')
    // Serializable: it saw both writes of the batch or neither, or it fails with a conflict.
    assert.ok(['a=1 b=1', 'a=2 b=2', 'HEXAD_CONFLICT'].includes(outcome), `the read-only transaction committed after reading ${outcome}: half of an atomic batch`)
  })
})

// ------------------------------------------------------------------ (c) hot counter

test('(c) 64 clients x 10 increments of one counter with getForUpdate, no retries: all succeed, the count is exact', async () => {
  await withTempCluster('kv-counter', {}, async cluster => {
    const db = cluster.writer
    await db.put('counter', '0')
    const before = db.stats()
    const framesBefore = cluster.volume.stats().framesShipped
    const CLIENTS = 64, EACH = 10
    const rs = await settlesWithin(Promise.allSettled(Array.from({ length: CLIENTS }, async () => {
      for (let i = 0; i < EACH; i++) {
        await db.transaction(async tx => {
          const n = num(await tx.getForUpdate('counter'), 'counter')
          await tx.put('counter', String(n + 1))
        })
      }
    })), 120_000, 'the counter clients')
    const failed = rs.filter((r): r is PromiseRejectedResult => r.status === 'rejected')
    assert.is(failed.length, 0, `every client succeeds without retries; failures: ${failed.slice(0, 3).map(r => String(r.reason)).join(' | ')}`)
    assert.is(num(await db.get('counter'), 'counter'), CLIENTS * EACH, 'the counter is exact')
    const st = db.stats()
    assert.is(st.conflicts - before.conflicts, 0, 'no conflicts')
    assert.is(st.deadlocks - before.deadlocks, 0, 'no deadlocks')
    assert.ok(st.lockWaits > before.lockWaits, 'clients queued on the lock')
    // Early lock release: a holder lets go once its commit is published, so the next increment
    // does not wait for an fsync: several increments of the hot key share each shipped frame.
    const frames = cluster.volume.stats().framesShipped - framesBefore
    assert.ok(frames < CLIENTS * EACH, `${CLIENTS * EACH} increments took ${frames} shipped frames`)
  })
})

test('(i) early lock release: a locking reader of a published but not yet durable commit is acknowledged only once that commit is durable', async () => {
  await withTempCluster('kv-elr', {}, async cluster => {
    const db = cluster.writer
    await db.put('k', 'old')
    // Three of six segments down: no write can reach 4 of 6, so commits are published but not durable.
    for (const id of [0, 1, 2]) await cluster.volume.faults.stopWorker(id)
    const writer = db.put('k', 'new')
    const writerDone = writer.then(() => 'ok', err => codeOf(err))
    await new Promise(r => setTimeout(r, 50))
    assert.not.ok(await isSettled(writerDone), 'the write is not acknowledged while the quorum is lost')
    // The lock was released at publication: a locking reader gets it at once and sees the new value...
    const reader = db.transaction(async tx => utf8((await tx.getForUpdate('k'))!))
    const readerDone = reader.then(v => v, err => codeOf(err))
    await new Promise(r => setTimeout(r, 50))
    // ...but its (read-only) commit waits for the write it depends on to become durable.
    assert.not.ok(await isSettled(readerDone), 'a reader of a non-durable commit is not acknowledged before it')
    assert.is(await db.getString('k'), 'old', 'a plain read at the durable point does not see the non-durable commit')
    for (const id of [0, 1, 2]) await cluster.volume.faults.restartWorker(id)
    assert.is(await settlesWithin(writerDone, GUARD_MS, 'the write once the segments are back'), 'ok')
    assert.is(await settlesWithin(readerDone, GUARD_MS, 'the locking reader'), 'new')
    assert.is(await db.getString('k'), 'new')
  })
})

// ------------------------------------------------------------------ (d) deadlock

test('(d) two transactions locking two keys in opposite order: one gets HEXAD_DEADLOCK, the other commits', async () => {
  await withTempCluster('kv-deadlock', {}, async cluster => {
    const db = cluster.writer
    const before = db.stats().deadlocks
    const firstLocks = barrier(2)
    const t = (first: string, second: string, tag: string) => db.transaction(async tx => {
      await tx.put(first, tag)
      await firstLocks()
      await tx.put(second, tag)
      return tag
    })
    const rs = await settlesWithin(Promise.allSettled([t('a', 'b', 'T1'), t('b', 'a', 'T2')]), GUARD_MS, 'the two transactions (undetected deadlock?)')
    const ok = rs.filter((r): r is PromiseFulfilledResult<string> => r.status === 'fulfilled')
    const failed = rs.filter((r): r is PromiseRejectedResult => r.status === 'rejected')
    assert.is(ok.length, 1, `exactly one commits: ${rs.map(r => r.status === 'rejected' ? String(r.reason) : 'ok').join(' | ')}`)
    assert.is(codeOf(failed[0].reason), 'HEXAD_DEADLOCK', String(failed[0].reason))
    assert.match((failed[0].reason as Error).message, /deadlock/i)
    const winner = ok[0].value
    assert.is(await db.getString('a'), winner, 'a holds the winner\'s write only')
    assert.is(await db.getString('b'), winner, 'b holds the winner\'s write only')
    assert.is(db.stats().deadlocks - before, 1, 'one deadlock counted')
    // the victim's locks are gone: both keys are writable
    await settlesWithin(db.batch([{ type: 'put', key: 'a', value: 'after' }, { type: 'put', key: 'b', value: 'after' }]), GUARD_MS, 'a write after the deadlock')
  })
})

test('(d) a three-transaction lock cycle fails exactly one victim; with retries all three commit', async () => {
  await withTempCluster('kv-deadlock3', {}, async cluster => {
    const db = cluster.writer
    const cycle = async (retries: number) => {
      let arrived = 0
      const firstLocks = barrier(3)
      const t = (first: string, second: string, tag: string) => db.transaction(async tx => {
        await tx.put(first, tag)
        if (++arrived <= 3) await firstLocks()
        await tx.put(second, tag)
        return tag
      }, { retries })
      return settlesWithin(Promise.allSettled([t('p', 'q', 'T1'), t('q', 'r', 'T2'), t('r', 'p', 'T3')]), GUARD_MS, 'the three transactions (undetected deadlock?)')
    }
    const rs = await cycle(0)
    const failed = rs.filter((r): r is PromiseRejectedResult => r.status === 'rejected')
    assert.is(failed.length, 1, `exactly one victim: ${rs.map(r => r.status === 'rejected' ? String(r.reason) : 'ok').join(' | ')}`)
    assert.is(codeOf(failed[0].reason), 'HEXAD_DEADLOCK')
    const retried = db.stats().retries
    const rs2 = await cycle(2)
    assert.equal(rs2.map(r => r.status === 'rejected' ? String(r.reason) : 'ok'), ['ok', 'ok', 'ok'], 'with retries every transaction commits')
    assert.ok(db.stats().retries > retried, 'the victim was retried')
    const r = await db.verify()
    assert.ok(r.ok, r.problems.join('; '))
  })
})

// ------------------------------------------------------------------ (e) writers wait

test('(e) a second writer of a key waits rather than failing; both commit and the last committer wins', async () => {
  await withTempCluster('kv-wait', {}, async cluster => {
    const db = cluster.writer
    const waitsBefore = db.stats().lockWaits
    const locked = new Gate(), release = new Gate()
    const t1 = db.transaction(async tx => {
      await tx.put('k', 'v1')
      locked.open()
      await release.wait()
    })
    await locked.wait()
    let t2Put = false
    const t2 = db.transaction(async tx => {
      await tx.put('k', 'v2') // blind write: waits for T1's lock
      t2Put = true
    })
    const blind = db.put('k', 'v3') // a plain put queues behind both
    assert.not.ok(await isSettled(t2), 'T2 is still waiting for the lock')
    assert.not.ok(t2Put, 'T2\'s put has not returned while T1 holds the lock')
    assert.not.ok(await isSettled(blind), 'the plain put is still waiting for the lock')
    assert.ok(db.stats().lockWaits >= waitsBefore + 2, 'both waits were counted')
    assert.is(await db.getString('k'), undefined, 'nothing visible before T1 commits')
    release.open()
    await settlesWithin(Promise.all([t1, t2, blind]), GUARD_MS, 'the three writers')
    assert.ok(t2Put)
    assert.is(await db.getString('k'), 'v3', 'the last committer wins')

    // Two transactions, the waiting one commits last: its value stays.
    const l2 = new Gate(), r2 = new Gate()
    const a = db.transaction(async tx => { await tx.put('j', 'first'); l2.open(); await r2.wait() })
    await l2.wait()
    const b = db.transaction(async tx => { await tx.put('j', 'second') })
    assert.not.ok(await isSettled(b), 'the second writer waits')
    r2.open()
    await settlesWithin(Promise.all([a, b]), GUARD_MS, 'the two writers of j')
    assert.is(await db.getString('j'), 'second')
  })
})

test('(e) lockWaiters counts the writes waiting for a lock now; blocksOthers is true for the holder of a waited-for lock only', async () => {
  await withTempCluster('kv-blocks', {}, async cluster => {
    const db = cluster.writer
    const t1 = db.begin()
    await t1.put('k', 'v1')
    assert.is(db.lockWaiters, 0, 'no one waits')
    assert.not.ok(t1.blocksOthers, 'a lock no one waits for blocks no one')
    const t2 = db.begin()
    await t2.put('other', 'x') // t2 holds a lock of its own, which no one waits for
    const t2Put = t2.put('k', 'v2')
    assert.not.ok(await isSettled(t2Put), 't2 waits for t1')
    assert.is(db.lockWaiters, 1)
    assert.ok(t1.blocksOthers, 't1 holds the lock t2 waits for')
    assert.not.ok(t2.blocksOthers, 'a waiter holds nothing anyone waits for')
    const t3 = db.begin()
    const t3Put = t3.put('k', 'v3')
    assert.not.ok(await isSettled(t3Put), 't3 queues behind t2')
    assert.is(db.lockWaiters, 2)
    // t3 gives up while waiting: the count drops, its put fails
    t3.rollback()
    assert.is(codeOf(await t3Put.then(() => null, e => e)), 'HEXAD_CLOSED', 't3\'s put fails')
    assert.is(db.lockWaiters, 1, 'a waiter that ended no longer counts')
    await settlesWithin(t1.commit(), GUARD_MS, 't1 commit')
    await settlesWithin(t2Put, GUARD_MS, 't2 gets the lock')
    assert.is(db.lockWaiters, 0, 'the lock passed to t2: no one waits')
    assert.not.ok(t1.blocksOthers, 'a finished transaction blocks no one')
    assert.not.ok(t2.blocksOthers, 't2 holds k, no one waits for it')
    const t4 = db.begin()
    const t4Put = t4.put('other', 'y')
    assert.not.ok(await isSettled(t4Put), 't4 waits for t2\'s other lock')
    assert.ok(t2.blocksOthers, 't2 now holds a lock t4 waits for')
    assert.is(db.lockWaiters, 1)
    await settlesWithin(t2.commit(), GUARD_MS, 't2 commit')
    await settlesWithin(t4Put, GUARD_MS, 't4 gets the lock')
    await settlesWithin(t4.commit(), GUARD_MS, 't4 commit')
    assert.is(db.lockWaiters, 0)
    assert.is(await db.getString('k'), 'v2')
  })
})

// ------------------------------------------------------------------ (f) snapshots and non-blocking reads

test('(f) a transaction reads the snapshot of its start: a put committed later is not seen; one started after sees it', async () => {
  await withTempCluster('kv-snapshot', {}, async cluster => {
    const db = cluster.writer
    await db.put('s', 'old')
    await db.put('gone', 'still here')
    const started = new Gate(), committed = new Gate()
    const t1 = db.transaction(async tx => {
      const first = await tx.getString('s')
      started.open()
      await committed.wait()
      return {
        first,
        again: await tx.getString('s'),
        neverReadBefore: await tx.getString('s2'),
        gone: await tx.getString('gone'),
        scan: (await collect(tx.scan())).map(([k, v]) => `${utf8(k)}=${utf8(v)}`),
      }
    })
    await started.wait()
    await db.put('s', 'new')
    await db.put('s2', 'inserted')
    await db.del('gone')
    committed.open()
    const seen = await settlesWithin(t1, GUARD_MS, 'T1')
    assert.equal(seen, { first: 'old', again: 'old', neverReadBefore: undefined, gone: 'still here', scan: ['gone=still here', 's=old'] })
    const after = await db.transaction(async tx => ({
      s: await tx.getString('s'), s2: await tx.getString('s2'), gone: await tx.getString('gone'),
      scan: (await collect(tx.scan())).map(([k, v]) => `${utf8(k)}=${utf8(v)}`),
    }))
    assert.equal(after, { s: 'new', s2: 'inserted', gone: undefined, scan: ['s=new', 's2=inserted'] })
  })
})

test('(f) readers never block behind a writer holding a lock; getForUpdate waits and then reads the latest commit', async () => {
  await withTempCluster('kv-nonblock', {}, async cluster => {
    const db = cluster.writer
    await db.put('w', 'committed')
    const locked = new Gate(), release = new Gate()
    const writer = db.transaction(async tx => {
      await tx.put('w', 'uncommitted')
      await tx.put('w2', 'uncommitted')
      locked.open()
      await release.wait()
    })
    await locked.wait()
    // Plain reads, a reader transaction and scans all complete while the writer holds its locks, and see the committed state.
    assert.is(await settlesWithin(db.getString('w'), GUARD_MS, 'db.get of a locked key'), 'committed')
    assert.is(await settlesWithin(db.getString('w2'), GUARD_MS, 'db.get of a locked new key'), undefined)
    const inTx = await settlesWithin(db.transaction(async tx => [await tx.getString('w'), (await collect(tx.scan())).length]), GUARD_MS, 'a reader transaction')
    assert.equal(inTx, ['committed', 1])
    assert.is((await settlesWithin(collect(db.scan()), GUARD_MS, 'db.scan over locked keys')).length, 1)
    // A transaction that reads the locked key and writes another key is not blocked either.
    await settlesWithin(db.transaction(async tx => { await tx.get('w'); await tx.put('other', 'x') }), GUARD_MS, 'a transaction reading a locked key')
    assert.not.ok(await isSettled(writer), 'the writer is still open')

    // A locking read waits for the lock, then returns the latest committed value (not its snapshot's).
    let locking: string | undefined | null = null
    const forUpdate = db.transaction(async tx => {
      const v = await tx.getForUpdate('w')
      locking = v === undefined ? undefined : utf8(v)
      await tx.put('w', `${locking}+1`)
    })
    assert.not.ok(await isSettled(forUpdate), 'getForUpdate waits for the writer\'s lock')
    assert.is(locking, null)
    release.open()
    await settlesWithin(Promise.all([writer, forUpdate]), GUARD_MS, 'the writer and the locking reader')
    assert.is(locking, 'uncommitted', 'getForUpdate read the value the lock holder committed')
    assert.is(await db.getString('w'), 'uncommitted+1')
    assert.is(await db.getString('w2'), 'uncommitted')
  })
})

test('(f) a keyspace whose creating commit is still being built reads as empty: readers get no error', async () => {
  // A small cache makes the commit wait for page reads (of the big keyspace) after it created the new one,
  // which is when readers of the new keyspace run.
  await withTempCluster('kv-newks', { cacheBytes: 64 * 1024 }, async cluster => {
    const db = cluster.writer
    const big = db.keyspace('zbig')
    const key = (i: number) => `k${String(i).padStart(5, '0')}`
    for (let i = 0; i < 3000; i += 150) await big.batch(Array.from({ length: 150 }, (_, j) => ({ type: 'put' as const, key: key(i + j), value: 'x'.repeat(200) })))
    const errors: string[] = []
    let reads = 0
    for (let round = 0; round < 8; round++) {
      const name = `new${round}`
      let creating = true
      const readers = Array.from({ length: 3 }, async () => {
        while (creating) {
          try {
            const v = await db.keyspace(name).getString('a')
            if (v !== undefined && v !== '1') errors.push(`round ${round}: get read ${JSON.stringify(v)}`)
            const n = (await collect(db.keyspace(name).scan())).length
            if (n > 1) errors.push(`round ${round}: scan saw ${n} keys`)
          } catch (err) { errors.push(`round ${round}: ${codeOf(err)}: ${(err as Error).message}`) }
          reads++
          await yieldToLoop()
        }
      })
      await db.transaction(async tx => {
        await tx.keyspace(name).put('a', '1')
        for (let i = 0; i < 40; i++) await tx.keyspace('zbig').put(key((round * 389 + i * 71) % 3000), 'y'.repeat(200))
      })
      creating = false
      await Promise.all(readers)
      assert.is(await db.keyspace(name).getString('a'), '1')
    }
    assert.ok(reads > 0)
    assert.equal(errors.slice(0, 3), [], `${errors.length} of ${reads} reads failed; first: ${errors.slice(0, 3).join(' | ')}`)
    const r = await db.verify()
    assert.ok(r.ok, r.problems.join('; '))
  })
})

// ------------------------------------------------------------------ (g) list-append history

interface Observed { name: string; reads: Map<string, string[]>; appends: Map<string, string> }

/**
 * Checks a list-append history (as Elle does): every key holds the list of
 * ids appended to it. From the final lists and what each committed
 * transaction read and appended, builds write-write, write-read and
 * read-write (anti-)dependency edges; a serializable history has no cycle.
 * Returns the problems found (empty when the history is serializable).
 */
function checkListAppend(committed: Observed[], final: Map<string, string[]>, attempted: Set<string>): string[] {
  const problems: string[] = []
  const writer = new Map<string, number>()
  committed.forEach((t, i) => { for (const id of t.appends.values()) writer.set(id, i) })
  for (const [k, list] of final) {
    const seen = new Set<string>()
    for (const id of list) {
      if (seen.has(id)) problems.push(`${k}: id ${id} appears twice`)
      seen.add(id)
      if (!writer.has(id)) problems.push(`${k}: id ${id} is in the final list but its transaction ${attempted.has(id) ? 'did not commit' : 'never ran'}`)
    }
  }
  committed.forEach(t => {
    for (const [k, id] of t.appends) if (!(final.get(k) ?? []).includes(id)) problems.push(`committed append ${id} to ${k} is lost`)
    for (const [k, got] of t.reads) {
      const f = final.get(k) ?? []
      if (got.length > f.length || got.some((x, i) => f[i] !== x)) problems.push(`${t.name} read ${k} = [${got.join(',')}], not a prefix of the final [${f.join(',')}]`)
      const mine = t.appends.get(k)
      if (mine !== undefined && f.indexOf(mine) !== got.length) problems.push(`${t.name} read ${k} with ${got.length} ids and appended ${mine}, which ended at position ${f.indexOf(mine)}: another append came in between`)
    }
  })
  if (problems.length) return problems
  // Dependency graph over committed transactions.
  const edges = committed.map(() => new Map<number, string>())
  const edge = (a: number, b: number, why: string) => { if (a !== b && !edges[a].has(b)) edges[a].set(b, why) }
  for (const [k, list] of final) for (let i = 0; i + 1 < list.length; i++) edge(writer.get(list[i])!, writer.get(list[i + 1])!, `ww on ${k}`)
  committed.forEach((t, ti) => {
    for (const [k, got] of t.reads) {
      const f = final.get(k) ?? []
      if (got.length > 0) edge(writer.get(got[got.length - 1])!, ti, `wr on ${k}`)
      if (got.length < f.length) edge(ti, writer.get(f[got.length])!, `rw on ${k}`)
    }
  })
  // Cycle search (iterative DFS).
  const color = new Array<number>(committed.length).fill(0)
  const parent = new Array<number>(committed.length).fill(-1)
  for (let s = 0; s < committed.length; s++) {
    if (color[s]) continue
    const stack: Array<[number, Iterator<[number, string]>]> = [[s, edges[s][Symbol.iterator]()]]
    color[s] = 1
    while (stack.length) {
      const [u, it] = stack[stack.length - 1]
      const n = it.next()
      if (n.done) { color[u] = 2; stack.pop(); continue }
      const [v] = n.value
      if (color[v] === 0) { color[v] = 1; parent[v] = u; stack.push([v, edges[v][Symbol.iterator]()]) }
      else if (color[v] === 1) {
        const cycle = [v]
        for (let x = u; x !== v && x >= 0; x = parent[x]) cycle.push(x)
        cycle.reverse()
        const path = cycle.map((x, i) => `${committed[x].name} -[${edges[x].get(cycle[(i + 1) % cycle.length])}]->`).join(' ')
        return [`dependency cycle: ${path} ${committed[cycle[0]].name}`]
      }
    }
  }
  return []
}

test('(g) random concurrent transactions on list-append registers: the committed history has no dependency cycle', async () => {
  await withSeed(FILE, 'list-append', SEED, 1, async rng => {
    await withTempCluster('kv-append', {}, async cluster => {
      const db = cluster.writer
      const KEYS = 6, CLIENTS = 10, TXNS = 20
      const key = (i: number) => `la/${i}`
      await db.batch(Array.from({ length: KEYS }, (_, i) => ({ type: 'put' as const, key: key(i), value: '' })))
      type Op = { kind: 'get' | 'scan' | 'append' | 'appendLocked'; k: number }
      // (getForUpdate appears only in read-modify-writes: read-only transactions with locking reads have their own test)
      const plans: Op[][][] = Array.from({ length: CLIENTS }, () => Array.from({ length: TXNS }, () => Array.from({ length: rng.int(1, 4) }, () => {
        const x = rng.float()
        return { kind: x < 0.3 ? 'get' : x < 0.4 ? 'scan' : x < 0.75 ? 'append' : 'appendLocked', k: rng.int(0, KEYS - 1) } as Op
      })))
      const parse = (v: Uint8Array | undefined) => { const s = v === undefined ? '' : utf8(v); return s === '' ? [] : s.split(',') }
      const committed: Observed[] = []
      const attempted = new Set<string>()
      await settlesWithin(Promise.all(plans.map(async (plan, c) => {
        for (const [t, ops] of plan.entries()) {
          let attempt = 0
          for (;;) {
            try {
              const o = await db.transaction(async tx => {
                const o: Observed = { name: `T${c}.${t}#${++attempt}`, reads: new Map(), appends: new Map() }
                for (const [j, op] of ops.entries()) {
                  const k = key(op.k)
                  if (op.kind === 'scan') {
                    for await (const [kk, v] of tx.scan({ gte: 'la/', lt: 'la0' })) { const ks = utf8(kk); if (!o.reads.has(ks) && !o.appends.has(ks)) o.reads.set(ks, parse(v)) }
                  } else if (op.kind === 'get') {
                    const v = await tx.get(k)
                    if (!o.reads.has(k) && !o.appends.has(k)) o.reads.set(k, parse(v))
                  } else if (!o.appends.has(k)) {
                    const cur = parse(op.kind === 'append' ? await tx.get(k) : await tx.getForUpdate(k))
                    if (!o.reads.has(k)) o.reads.set(k, cur)
                    const id = `${o.name}.${j}`
                    attempted.add(id)
                    await tx.put(k, [...cur, id].join(','))
                    o.appends.set(k, id)
                  }
                }
                return o
              }, { retries: 10 })
              committed.push(o)
              break
            } catch (err) {
              if (codeOf(err) !== 'HEXAD_CONFLICT' && codeOf(err) !== 'HEXAD_DEADLOCK') throw err
              await yieldToLoop() // out of retries under contention: run it again
            }
          }
        }
      })), 120_000, 'the list-append clients')
      assert.is(committed.length, CLIENTS * TXNS)
      const final = new Map<string, string[]>()
      await db.transaction(async tx => { for await (const [k, v] of tx.scan({ gte: 'la/', lt: 'la0' })) final.set(utf8(k), parse(v)) })
      assert.is(final.size, KEYS)
      const problems = checkListAppend(committed, final, attempted)
      assert.equal(problems.slice(0, 5), [], `${problems.length} problems: ${problems.slice(0, 5).join(' | ')}`)
      const appends = committed.reduce((n, t) => n + t.appends.size, 0)
      assert.is([...final.values()].reduce((n, l) => n + l.length, 0), appends, 'every committed append is in a final list, once')
    })
  })
})

test.run()
