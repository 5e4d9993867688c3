/**
 * Continuous backup wired into clusters (issue 8): `openCluster({ backup })`
 * runs the agent (`cluster.backup`), and the pieces compose:
 *
 * - A backtrack is new redo on top of the history, so the backup holds the
 *   moments before it, the rewound state and the writes after it; each
 *   restores exactly, after the source cluster was destroyed.
 * - A clone's backup holds the pages it reads through its parent: a restore
 *   of it equals the clone, with the parent destroyed.
 */
import path from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { openCluster, restore, type Cluster } from '../engine/index.js'
import { cleanupTempDirs, closeGuarded, collect, kvOptions, makeTempDir, sleep, utf8 } from './helpers/kv-helpers.js'

test.after(() => cleanupTempDirs())

const key = (i: number) => `k/${String(i).padStart(5, '0')}`

async function dump(c: Cluster): Promise<string> {
  const rows = (await collect(c.writer.scan({}))).map(([k, v]) => `${utf8(k)}=${utf8(v)}`)
  const other = (await collect(c.writer.keyspace('other').scan({}))).map(([k, v]) => `${utf8(k)}=${utf8(v).length}:${utf8(v).slice(0, 20)}`)
  return JSON.stringify([rows, other])
}

/** A moment between writes: the backup uploads the VDL every 100 ms, so pauses on both sides make it exact. */
async function moment(c: Cluster): Promise<{ at: Date; data: string }> {
  await c.backup!.flush()
  await sleep(250)
  const at = new Date()
  const data = await dump(c)
  await sleep(250)
  return { at, data }
}

async function restoredData(store: string, to: string, at?: Date): Promise<string> {
  await restore({ from: store, to, at })
  const c = await openCluster(kvOptions(to))
  try {
    assert.ok((await c.writer.verify()).ok)
    return await dump(c)
  } finally { await closeGuarded(c) }
}

test('a backtrack is in the backup: moments before it, the rewound state and later writes restore', async () => {
  const root = makeTempDir('backup-bt')
  const store = path.join(root, 'store')
  const c = await openCluster(kvOptions(path.join(root, 'src'), { backtrackWindowMs: 600_000, backup: { store, intervalMs: 100 } }))
  let m1, m2, m3
  try {
    await c.writer.batch(Array.from({ length: 400 }, (_, i) => ({ type: 'put' as const, key: key(i), value: `one-${i}` })))
    await c.writer.keyspace('other').put('big', 'B'.repeat(20_000))
    m1 = await moment(c)
    for (let i = 0; i < 400; i += 2) await c.writer.put(key(i), `two-${i}`)
    await c.writer.keyspace('other').del('big')
    m2 = await moment(c)
    await c.backtrack(m1.at)
    assert.is(await dump(c), m1.data)
    await c.writer.put('after', 'backtrack')
    m3 = await moment(c)
    const st = c.backup!.status()
    assert.ok(st.bases >= 1 && st.logObjects >= 1 && st.lastError === null, JSON.stringify(st))
  } finally { await c.destroy() }
  assert.is(await restoredData(store, path.join(root, 'r1'), m1.at), m1.data, 'before the backtrack')
  assert.is(await restoredData(store, path.join(root, 'r2'), m2.at), m2.data, 'the moment the backtrack undid')
  assert.is(await restoredData(store, path.join(root, 'r3'), m3.at), m3.data, 'after the backtrack')
  assert.is(await restoredData(store, path.join(root, 'r4')), m3.data, 'latest')
})

test("a clone's backup holds what it reads through its parent", async () => {
  const root = makeTempDir('backup-clone')
  const store = path.join(root, 'store')
  const p = await openCluster(kvOptions(path.join(root, 'p')))
  let data: string
  try {
    await p.writer.batch(Array.from({ length: 600 }, (_, i) => ({ type: 'put' as const, key: key(i), value: `parent-${i}` })))
    await p.writer.keyspace('other').put('big', 'P'.repeat(12_000))
    const c = await p.clone({ dir: path.join(root, 'c'), backup: { store, intervalMs: 100 } })
    try {
      for (let i = 0; i < 600; i += 5) await c.writer.put(key(i), `clone-${i}`)
      await p.writer.put(key(1), 'parent-later')
      data = (await moment(c)).data
      assert.ok(data.includes('parent-599') && data.includes('clone-5') && !data.includes('parent-later'))
    } finally { await c.destroy() }
  } finally { await p.destroy() }
  assert.is(await restoredData(store, path.join(root, 'r')), data!)
})

test.run()
