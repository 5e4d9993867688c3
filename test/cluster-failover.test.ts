/**
 * Endpoints and failover (issue 7).
 *
 * - Endpoints: 'writer' takes writes and follows the writer; 'reader'
 *   balances connections over replicas (least connected first) and falls
 *   back to the writer when there is none; a reader connection refuses
 *   writes; custom endpoints with a static member list or an exclusion list
 *   (which picks up a replica added later); instance endpoints; a connection
 *   whose replica is removed moves on its next call; bad input.
 * - Failover under load, 20 times: clients commit through 'writer'
 *   connections and record what was acknowledged; the writer crashes
 *   (cluster.faults.crashWriter()); the best replica (lowest tier) is
 *   promoted; the old writer's handle answers HEXAD_FENCED; every
 *   acknowledged commit is on the new writer; the new writer takes writes;
 *   replicas keep serving. verify() passes at the end.
 * - Planned switchover of a caught-up replica keeps its cache.
 * - Auto-scaling: up to maxReaders while connections per replica exceed the
 *   target, back to minReaders when they are gone; each change is an event;
 *   bad policies are refused.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { HexadError, type ScalingEvent } from '../engine/index.js'
import { cleanupTempDirs, codeOf, collect, settlesWithin, withTempCluster } from './helpers/kv-helpers.js'

const GUARD_MS = 60_000

test.after(() => cleanupTempDirs())

async function fails(p: () => unknown, code: string, re?: RegExp): Promise<void> {
  try { await p(); assert.unreachable(`expected ${code}`) } catch (err) {
    if ((err as Error).name === 'Assertion') throw err
    assert.is(codeOf(err), code, String(err))
    if (re) assert.match(String(err), re)
  }
}

test('endpoints: writer, reader (balanced, falls back to the writer), custom static and exclusion lists, instances', async () => {
  await withTempCluster('endpoints', {}, async cluster => {
    const w = cluster.connect('writer')
    await w.put('a', '1')
    const lone = cluster.connect('reader')
    assert.is(lone.instance, 'writer', 'no replica: the reader endpoint uses the writer')
    assert.is(await lone.getString('a'), '1')
    lone.close()
    const r1 = cluster.addReader({ name: 'r1' }), r2 = cluster.addReader({ name: 'r2' })
    await r1.caughtUp(); await r2.caughtUp()
    const conns = Array.from({ length: 6 }, () => cluster.connect('reader'))
    const by = (name: string) => conns.filter(c => c.instance === name).length
    assert.is(by('r1'), 3, 'least-connections balancing')
    assert.is(by('r2'), 3)
    for (const c of conns) assert.is(await c.getString('a'), '1')
    await fails(() => conns[0].put('b', '2'), 'HEXAD_BAD_INPUT', /read-only/)
    // A replica goes away: its connections move on their next call.
    await cluster.removeReader('r1')
    for (const c of conns) { assert.is(await c.getString('a'), '1'); assert.is(c.instance, 'r2') }
    // Custom endpoints.
    cluster.createEndpoint({ name: 'static', type: 'READER', members: ['r2'] })
    cluster.createEndpoint({ name: 'others', type: 'ANY', excluded: ['r2'] })
    assert.is(cluster.connect('static').instance, 'r2')
    const o = cluster.connect('others')
    assert.is(o.instance, 'writer', 'ANY with r2 excluded: only the writer is left')
    await o.put('via-any', 'x')
    cluster.addReader({ name: 'r3' })
    assert.is(cluster.connect('others').instance, 'r3', 'an exclusion-list endpoint picks up a replica added later')
    assert.is(cluster.connect({ instance: 'r2' }).instance, 'r2')
    assert.is(await cluster.connect({ instance: 'writer' }).getString('via-any'), 'x')
    await fails(() => cluster.connect('nope'), 'HEXAD_BAD_INPUT', /no endpoint/)
    await fails(() => cluster.connect({ instance: 'nope' }), 'HEXAD_BAD_INPUT', /no instance/)
    await fails(() => cluster.createEndpoint({ name: 'static', type: 'READER', members: ['r2'] }), 'HEXAD_BAD_INPUT', /exists/)
    await fails(() => cluster.createEndpoint({ name: 'x', type: 'WRITER' as never, members: ['r2'] }), 'HEXAD_BAD_INPUT', /type/)
    await fails(() => cluster.createEndpoint({ name: 'writer', type: 'ANY', members: ['r2'] }), 'HEXAD_BAD_INPUT', /built-in/)
    await cluster.removeReader('r2')
    await fails(() => cluster.connect('static').get('a'), 'HEXAD_CLOSED', /no available instance/)
    const c = cluster.connect('writer')
    c.close()
    await fails(() => c.get('a'), 'HEXAD_CLOSED')
  })
})

test('failover under load, 20 times: no acknowledged commit lost, the old writer is fenced, the promoted replica serves writes', async () => {
  await withTempCluster('failover', {}, async cluster => {
    const acked = new Map<string, string>()
    const writers = Array.from({ length: 8 }, () => cluster.connect('writer'))
    let stop = false
    let retried = 0
    const load = writers.map(async (conn, i) => {
      let n = 0
      while (!stop) {
        const key = `c${i}/${String(n).padStart(6, '0')}`, value = `v${n}`
        try {
          await conn.put(key, value)
          acked.set(key, value)
          n++
        } catch (err) {
          const code = (err as HexadError).code
          if (code !== 'HEXAD_FENCED' && code !== 'HEXAD_CLOSED') throw err
          retried++ // the writer went away under us: not acknowledged; retry on the new one
          await new Promise(r => setTimeout(r, 1))
        }
      }
    })
    for (let round = 0; round < 20; round++) {
      const name = `replica${round}`
      cluster.addReader({ name, tier: 0, cacheBytes: 1 << 20 })
      if (round % 5 === 0) cluster.addReader({ name: `backup${round}`, tier: 5, cacheBytes: 1 << 20 })
      await new Promise(r => setTimeout(r, 30)) // writes flow meanwhile
      const oldWriter = cluster.writer
      const report = await settlesWithin(cluster.faults.crashWriter(), GUARD_MS, `failover ${round}`)
      assert.is(report.promoted, name, `round ${round}: the tier-0 replica is promoted`)
      assert.ok(report.newEpoch > report.oldEpoch)
      assert.ok(!cluster.readers.some(r => r.name === name), 'the promoted replica is now the writer')
      await fails(() => oldWriter.put('stale', 'x'), 'HEXAD_FENCED')
      await cluster.writer.put(`after/${round}`, 'ok')
    }
    stop = true
    await settlesWithin(Promise.all(load), GUARD_MS, 'the load')
    assert.is(cluster.failovers, 20)
    assert.ok(acked.size > 100, `the load made progress (${acked.size} acknowledged, ${retried} retried)`)
    const db = cluster.writer
    for (const [k, v] of acked) assert.is(await db.getString(k), v, `acknowledged commit ${k} survived 20 failovers`)
    for (let round = 0; round < 20; round++) assert.is(await db.getString(`after/${round}`), 'ok')
    const rep = await db.verify()
    assert.ok(rep.ok, rep.problems.join('; '))
    // The replicas that were not promoted follow the new writer.
    for (const r of cluster.readers) {
      await settlesWithin(r.caughtUp(), GUARD_MS, `replica ${r.name} catching up`)
      assert.is(await r.getString('after/19'), 'ok')
    }
  })
})

test('a planned switchover to a caught-up replica keeps its cache; the old handle is closed', async () => {
  await withTempCluster('switchover', {}, async cluster => {
    const db = cluster.writer
    await db.batch(Array.from({ length: 500 }, (_, i) => ({ type: 'put' as const, key: `k/${String(i).padStart(4, '0')}`, value: 'v'.repeat(50) })))
    const r = cluster.addReader({ name: 'warm', tier: 3 })
    await r.caughtUp()
    assert.is((await collect(r.scan())).length, 500) // fills its cache
    const report = await cluster.switchover('warm')
    assert.is(report.promoted, 'warm')
    assert.ok(report.cacheKept && report.pagesKept > 0, `the replica's cache became the writer's (${JSON.stringify(report)})`)
    await fails(() => db.get('k/0001'), 'HEXAD_CLOSED')
    const before = cluster.writer.stats().cache.misses
    assert.is((await collect(cluster.writer.scan())).length, 500)
    assert.is(cluster.writer.stats().cache.misses, before, 'the new writer read everything from the kept cache')
    await fails(() => cluster.switchover('nope'), 'HEXAD_BAD_INPUT', /no reader/)
  })
})

test('auto-scaling adds replicas under connection load up to the maximum and removes them when the load goes', async () => {
  await withTempCluster('autoscale', {}, async cluster => {
    await cluster.writer.put('a', '1')
    const events: ScalingEvent[] = []
    cluster.on('scaling', (e: ScalingEvent) => events.push(e))
    const waitFor = async (what: string, ok: () => boolean) => {
      const t0 = Date.now()
      while (!ok()) {
        if (Date.now() - t0 > GUARD_MS) assert.unreachable(`timed out waiting for ${what} (readers: ${cluster.readers.map(r => r.name).join(', ')})`)
        await new Promise(r => setTimeout(r, 10))
      }
    }
    cluster.setAutoScaling({ minReaders: 1, maxReaders: 3, target: { metric: 'connections', value: 2 }, cooldownMs: 0, evaluateEveryMs: 20, cacheBytes: 1 << 20 })
    await waitFor('the minimum of one replica', () => cluster.readers.length === 1)
    const conns = Array.from({ length: 12 }, () => cluster.connect('reader'))
    await waitFor('scaling out to the maximum', () => cluster.readers.length === 3)
    await new Promise(r => setTimeout(r, 100))
    assert.is(cluster.readers.length, 3, 'never beyond maxReaders')
    for (const c of conns) assert.is(await c.getString('a'), '1')
    for (const c of conns) c.close()
    await waitFor('scaling back in to the minimum', () => cluster.readers.length === 1)
    await new Promise(r => setTimeout(r, 100))
    assert.is(cluster.readers.length, 1, 'never below minReaders')
    assert.equal(events.map(e => e.action), ['add', 'add', 'add', 'remove', 'remove'])
    assert.ok(events.slice(1, 3).every(e => e.metric === 'connections' && e.value > 2), JSON.stringify(events))
    cluster.setAutoScaling(null)
    for (const bad of [
      { minReaders: 2, maxReaders: 1, target: { metric: 'connections', value: 1 } },
      { minReaders: 0, maxReaders: 16, target: { metric: 'connections', value: 1 } },
      { minReaders: 0, maxReaders: 2, target: { metric: 'cpu', value: 1 } },
      { minReaders: 0, maxReaders: 2, target: { metric: 'utilization', value: 0 } },
      { minReaders: 0, maxReaders: 2, target: { metric: 'utilization', value: 0.5 }, cooldownMs: -1 },
    ]) await fails(() => cluster.setAutoScaling(bad as never), 'HEXAD_BAD_INPUT')
  })
})

test.run()
