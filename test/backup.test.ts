/**
 * Continuous backup and point-in-time restore (engine/backup).
 *
 * - Restoring at moments recorded between phases of writes (after a flush
 *   and a pause) gives exactly the data of that moment (every key and value
 *   of a scan, in two keyspaces, overflow values included), also after the
 *   source cluster was closed and its directory deleted; by LSN; latest.
 * - An agent started again on the same store goes on without a new base; one
 *   started after its log pin was let go records a gap: moments inside it
 *   are refused, moments on either side restore.
 * - A flipped byte in a base chunk or a log object, a truncated log object
 *   and a missing log object are HEXAD_CORRUPTION naming the object's file;
 *   the target directory is not left half-restored.
 * - Bad input: a non-empty target, moments and LSNs outside the window, a
 *   store with no backup, bad options.
 *
 * HEXAD_BACKUP_BENCH=1 adds a restore-throughput measurement of a ~20 MB volume.
 */
import fs from 'node:fs'
import path from 'node:path'
import { randomBytes } from 'node:crypto'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { openCluster, openVolume, type Cluster } from '../engine/index.js'
import { DirectoryBackupStore, latestRestorable, restorableWindow, restore, startBackup, type BackupAgent } from '../engine/backup/index.js'
import { assertEntries, cleanupTempDirs, collect, kvOptions, makeTempDir, rejectsWith, rmTempDir, sleep } from './helpers/kv-helpers.js'

test.after(() => cleanupTempDirs())

type Rows = Array<[Uint8Array, Uint8Array]>
/** `flushed`: the moment the agent's flush reported (its newest upload, taken after the phase's writes). */
interface Moment { at: Date; lsn: number; rows: Rows; other: Rows; flushed: Date }

const big = (tag: string, n: number) => tag.repeat(Math.ceil(n / tag.length)).slice(0, n)

/** Scans of the default keyspace and 'other', as the writer sees them now. */
async function snapshotRows(cluster: Cluster): Promise<{ rows: Rows; other: Rows }> {
  return { rows: await collect(cluster.writer.scan()), other: await collect(cluster.writer.keyspace('other').scan()) }
}

/** After a flush and a pause: the moment, the VDL and the data as they are (nothing is written around it). */
async function record(cluster: Cluster, agent: BackupAgent): Promise<Moment> {
  const { time: flushed } = await agent.flush()
  await sleep(20)
  const at = new Date()
  const lsn = cluster.volume.vdl
  const { rows, other } = await snapshotRows(cluster)
  await sleep(20)
  return { at, lsn, rows, other, flushed }
}

/** Restores into a fresh directory, opens it as a cluster and compares both keyspaces with `want`. */
async function assertRestores(store: string, at: Date | number | undefined, want: Moment, what: string): Promise<void> {
  const to = path.join(makeTempDir('bk-to'), 'cluster')
  const r = await restore({ from: store, to, at })
  assert.is(r.lsn, want.lsn, `${what}: restored LSN`)
  assert.ok(r.pages > 0 && r.bytes === r.pages * 4096 && r.ms >= 0, `${what}: result ${JSON.stringify(r)}`)
  const cluster = await openCluster(kvOptions(to))
  try {
    const got = await snapshotRows(cluster)
    assertEntries(got.rows, want.rows, `${what}: default keyspace`)
    assertEntries(got.other, want.other, `${what}: keyspace 'other'`)
    assert.ok(await cluster.writer.verify().then(() => true), `${what}: the restored B+tree verifies`)
    await cluster.writer.put('after-restore', 'writable')
    assert.is(await cluster.writer.getString('after-restore'), 'writable', `${what}: the restored cluster takes writes`)
  } finally {
    await cluster.close()
  }
  rmTempDir(path.dirname(to))
}

/** Four phases of writes (puts, overwrites, deletes, overflow values), each recorded as a moment. */
async function writePhases(cluster: Cluster, agent: BackupAgent): Promise<Moment[]> {
  const db = cluster.writer
  const moments: Moment[] = []
  await db.batch(Array.from({ length: 400 }, (_, i) => ({ type: 'put' as const, key: `k/${String(i).padStart(4, '0')}`, value: `v1-${i}-${'x'.repeat(i % 50)}` })))
  await db.keyspace('other').put('blob', big('one', 9000))
  moments.push(await record(cluster, agent))
  for (let i = 0; i < 400; i += 3) await db.put(`k/${String(i).padStart(4, '0')}`, `v2-${i}`)
  await db.batch(Array.from({ length: 50 }, (_, i) => ({ type: 'del' as const, key: `k/${String(i * 7).padStart(4, '0')}` })))
  await db.keyspace('other').put('blob', big('two', 12000))
  moments.push(await record(cluster, agent))
  await db.batch(Array.from({ length: 600 }, (_, i) => ({ type: 'put' as const, key: `n/${String(i).padStart(4, '0')}`, value: big(`n${i}`, 200 + (i % 7) * 100) })))
  await db.keyspace('other').del('blob')
  await db.keyspace('other').put('small', 's')
  moments.push(await record(cluster, agent))
  for (let i = 0; i < 600; i += 2) await db.del(`n/${String(i).padStart(4, '0')}`)
  await db.put('k/0001', big('last', 5000))
  moments.push(await record(cluster, agent))
  return moments
}

test('restore at recorded moments, by LSN and latest equals the data as it was, after the source is gone', async () => {
  const src = makeTempDir('bk-src')
  const store = makeTempDir('bk-store')
  const cluster = await openCluster(kvOptions(src))
  const errors: Error[] = []
  const agent = await startBackup(() => cluster.volume, { store, intervalMs: 100, onError: e => errors.push(e) })
  let moments: Moment[]
  try {
    moments = await writePhases(cluster, agent)
    const s = agent.status()
    assert.is(s.bases, 1, 'one base')
    assert.ok(s.logObjects >= 4, `log objects: ${s.logObjects}`)
    assert.ok(s.latestLsn! >= moments[3].lsn && s.latestTime!.getTime() >= moments[3].flushed.getTime(), `latest ${s.latestLsn} at ${s.latestTime?.toISOString()}, last flush ${moments[3].flushed.toISOString()}`)
    assert.ok(s.oldestTime!.getTime() <= moments[0].at.getTime(), 'the oldest restorable moment is before the first write phase ended')
    assert.ok(s.bytesStored > 0 && s.lastError === null, `status ${JSON.stringify(s)}`)
    assert.is(cluster.volume.kept('backup-log'), s.uploadedLsn, 'the log pin follows the upload')
  } finally {
    await agent.stop()
    await cluster.close()
  }
  assert.equal(errors, [], 'no errors reported')
  fs.rmSync(src, { recursive: true, force: true })

  for (let i = 0; i < moments.length; i++) await assertRestores(store, moments[i].at, moments[i], `moment ${i + 1}`)
  await assertRestores(store, moments[1].lsn, moments[1], 'LSN of moment 2')
  await assertRestores(store, undefined, moments[3], 'latest')
  const latest = await latestRestorable(store)
  assert.ok(latest && latest.lsn === moments[3].lsn, `latestRestorable ${JSON.stringify(latest)}`)
  const w = await restorableWindow(new DirectoryBackupStore(store))
  assert.ok(w && w.oldest.lsn <= moments[0].lsn && w.gaps.length === 0, `window ${JSON.stringify(w)}`)
})

test('an agent started again goes on without a new base; after its pin was let go it records a gap', async () => {
  const src = makeTempDir('bk-gap')
  const store = makeTempDir('bk-gap-store')
  const cluster = await openCluster(kvOptions(src))
  const moments: Moment[] = []
  try {
    const db = cluster.writer
    let agent = await startBackup(() => cluster.volume, { store, intervalMs: 100 })
    await db.batch(Array.from({ length: 200 }, (_, i) => ({ type: 'put' as const, key: `a/${i}`, value: `one-${i}` })))
    moments.push(await record(cluster, agent))
    await agent.stop()
    // Restarted on the same store: no second base, the log goes on from where it ended.
    await db.put('a/between', 'written while no agent ran (the pin kept its log)')
    agent = await startBackup(() => cluster.volume, { store, intervalMs: 100 })
    await db.put('a/1', 'two')
    moments.push(await record(cluster, agent))
    assert.is(agent.status().bases, 1, 'no new base on restart')
    assert.equal(agent.status().gaps, [], 'no gap')
    // Stopped for good: the pin goes; what is written now is never backed up.
    await agent.stop({ releasePins: true })
    assert.is(cluster.volume.kept('backup-log'), null, 'the log pin was let go')
    await db.put('a/2', 'lost to the gap')
    await sleep(30)
    const inGap = new Date()
    await sleep(30)
    await db.put('a/3', 'also lost')
    const errors: Error[] = []
    agent = await startBackup(() => cluster.volume, { store, intervalMs: 100, onError: e => errors.push(e) })
    moments.push(await record(cluster, agent))
    const s = agent.status()
    assert.is(s.gaps.length, 1, 'one gap recorded')
    assert.is(s.bases, 2, 'a new base after the gap')
    assert.ok(s.gaps[0].from === moments[1].lsn && s.gaps[0].to > s.gaps[0].from, `gap ${JSON.stringify(s.gaps)}`)
    await agent.stop()

    await rejectsWith(restore({ from: store, to: path.join(makeTempDir('bk-to'), 'x'), at: inGap }), 'HEXAD_BAD_INPUT', /lies in a gap of the backup.*LSN \d+ .* to LSN \d+/, 'a moment in the gap')
    await rejectsWith(restore({ from: store, to: path.join(makeTempDir('bk-to'), 'x'), at: s.gaps[0].from + 1 }), 'HEXAD_BAD_INPUT', /lies in a gap/, 'an LSN in the gap')
  } finally {
    await cluster.close()
  }
  for (let i = 0; i < moments.length; i++) await assertRestores(store, moments[i].at, moments[i], `gap test moment ${i + 1}`)
  rmTempDir(src)
})

test('the agent follows a failover: the store holds what both writers wrote', async () => {
  const src = makeTempDir('bk-fail')
  const store = makeTempDir('bk-fail-store')
  const cluster = await openCluster(kvOptions(src))
  const errors: Error[] = []
  let before: Moment, after: Moment
  try {
    const agent = await startBackup(() => cluster.volume, { store, intervalMs: 50, onError: e => errors.push(e) })
    await cluster.writer.batch(Array.from({ length: 100 }, (_, i) => ({ type: 'put' as const, key: `f/${i}`, value: `before-${i}` })))
    before = await record(cluster, agent)
    const oldVolume = cluster.volume
    await cluster.writer.put('f/mid', 'written while the agent may still hold the old volume')
    await cluster.faults.crashWriter()
    assert.ok(cluster.volume !== oldVolume, 'a new volume handle after failover')
    await cluster.writer.batch(Array.from({ length: 100 }, (_, i) => ({ type: 'put' as const, key: `f/${i}`, value: `after-${i}` })))
    after = await record(cluster, agent)
    assert.is(cluster.volume.kept('backup-log'), agent.status().uploadedLsn, 'the new writer keeps the log pin')
    await agent.stop()
  } finally {
    await cluster.close()
  }
  // A tick that met the old handle fenced or closed reports it and goes on.
  assert.ok(errors.every(e => /HEXAD_(FENCED|CLOSED)/.test((e as { code?: string }).code ?? '')), `only fencing errors: ${errors.map(e => e.message).join('; ')}`)
  await assertRestores(store, before!.at, before!, 'before the failover')
  await assertRestores(store, after!.at, after!, 'after the failover')
  rmTempDir(src)
})

test('retention deletes the bases and logs no moment of the window needs, and keeps what it does', async () => {
  const src = makeTempDir('bk-ret')
  const store = makeTempDir('bk-ret-store')
  const cluster = await openCluster(kvOptions(src))
  const moments: Moment[] = []
  let first: Moment
  try {
    const agent = await startBackup(() => cluster.volume, { store, intervalMs: 50, baseEveryMs: 300, retentionMs: 900 })
    await cluster.writer.put('gen', '0')
    first = await record(cluster, agent)
    for (let gen = 1; gen <= 8; gen++) {
      await cluster.writer.batch(Array.from({ length: 50 }, (_, i) => ({ type: 'put' as const, key: `g/${i}`, value: `${gen}-${i}` })))
      await cluster.writer.put('gen', String(gen))
      moments.push(await record(cluster, agent))
      await sleep(150)
    }
    const s = agent.status()
    const windowStart = Date.now() - 900
    assert.ok(s.oldestTime!.getTime() > first.at.getTime(), `old bases went: oldest ${s.oldestTime?.toISOString()}, first moment ${first.at.toISOString()}`)
    assert.ok(s.oldestTime!.getTime() <= windowStart, `the window's start stays restorable: oldest ${s.oldestTime?.toISOString()}, window start ${new Date(windowStart).toISOString()}`)
    assert.ok(s.bases >= 2 && s.bases <= 5, `bases kept: ${s.bases}`)
    const names = fs.readdirSync(path.join(store, 'log'))
    assert.ok(names.every(n => Number(n.split('-')[1].slice(0, 16)) > s.oldestLsn!), 'no log object ends at or before the oldest base')
    await agent.stop()
  } finally {
    await cluster.close()
  }
  await rejectsWith(restore({ from: store, to: path.join(makeTempDir('bk-to'), 'x'), at: first!.at }), 'HEXAD_BAD_INPUT', /outside what/, 'a moment retention let go')
  const w = (await restorableWindow(store))!
  const kept = moments.filter(m => m.at.getTime() >= w.oldest.time.getTime())
  assert.ok(kept.length >= 2, `moments still in the window: ${kept.length}`)
  await assertRestores(store, kept[0].at, kept[0], 'the oldest moment still in the window')
  await assertRestores(store, undefined, moments[moments.length - 1], 'latest after retention')
  rmTempDir(src)
})

test('a flipped byte in a base chunk or a log object, a truncated or missing log object: HEXAD_CORRUPTION naming the object', async () => {
  const src = makeTempDir('bk-bad')
  const store = makeTempDir('bk-bad-store')
  const cluster = await openCluster(kvOptions(src))
  try {
    const agent = await startBackup(() => cluster.volume, { store, intervalMs: 100 })
    for (let round = 0; round < 4; round++) {
      await cluster.writer.batch(Array.from({ length: 150 }, (_, i) => ({ type: 'put' as const, key: `r${round}/${i}`, value: big(`${round}-${i}`, 100 + i) })))
      await agent.flush()
    }
    await agent.stop()
  } finally {
    await cluster.close()
  }
  rmTempDir(src)
  const logs = fs.readdirSync(path.join(store, 'log')).sort()
  assert.ok(logs.length >= 4, `log objects: ${logs.join(', ')}`)
  const [baseDir] = fs.readdirSync(path.join(store, 'base'))

  /** A copy of the store damaged by `damage`, and the file it damaged. */
  const damaged = (tag: string, rel: string, damage: (file: string) => void) => {
    const copy = makeTempDir(`bk-${tag}`)
    fs.cpSync(store, copy, { recursive: true })
    const file = path.join(copy, rel)
    damage(file)
    return { copy, file }
  }
  const flip = (file: string, at: (size: number) => number) => {
    const b = fs.readFileSync(file)
    b[at(b.length)] ^= 0x5a
    fs.writeFileSync(file, b)
  }
  const expectCorrupt = async (copy: string, pattern: RegExp, what: string) => {
    const parent = makeTempDir('bk-to')
    const to = path.join(parent, 'x')
    await rejectsWith(restore({ from: copy, to }), 'HEXAD_CORRUPTION', pattern, what)
    assert.not.ok(fs.existsSync(to), `${what}: no half-restored target is left`)
  }
  const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')

  const chunk = damaged('flip-base', path.join('base', baseDir, '000000.hxv'), f => flip(f, n => Math.floor(n / 2)))
  await expectCorrupt(chunk.copy, new RegExp(`${esc(chunk.file)}: checksum mismatch`), 'a flipped byte in a base chunk')

  const mid = logs[Math.floor(logs.length / 2)]
  const log = damaged('flip-log', path.join('log', mid), f => flip(f, n => n - 10))
  await expectCorrupt(log.copy, new RegExp(`${esc(log.file)}: checksum mismatch`), 'a flipped byte in a log object')

  const head = damaged('flip-loghdr', path.join('log', mid), f => flip(f, () => 1))
  await expectCorrupt(head.copy, new RegExp(`${esc(head.file)}: bad header`), 'a flipped byte in a log object header')

  const cut = damaged('cut-log', path.join('log', mid), f => fs.truncateSync(f, fs.statSync(f).size - 7))
  await expectCorrupt(cut.copy, new RegExp(`${esc(cut.file)}: truncated`), 'a truncated log object')

  const [, from, to] = /^(\d+)-(\d+)\.hxl$/.exec(mid)!
  const gone = damaged('missing-log', path.join('log', mid), f => fs.rmSync(f))
  await expectCorrupt(gone.copy, new RegExp(`${esc(path.join(gone.copy, 'log'))}.*missing log between LSN ${Number(from)} and ${Number(to)}`), 'a missing log object')

  const manifest = damaged('flip-manifest', path.join('base', baseDir, 'manifest'), f => flip(f, n => n - 3))
  await expectCorrupt(manifest.copy, new RegExp(`${esc(manifest.file)}: checksum mismatch`), 'a flipped byte in a manifest')

  // The undamaged store still restores.
  const ok = await restore({ from: store, to: path.join(makeTempDir('bk-to'), 'ok') })
  assert.ok(ok.pages > 0)
})

test('bad input: non-empty target, moments and LSNs outside the window, a store with no backup, bad options', async () => {
  const src = makeTempDir('bk-input')
  const store = makeTempDir('bk-input-store')
  const cluster = await openCluster(kvOptions(src))
  let m: Moment
  try {
    await rejectsWith(startBackup(() => cluster.volume, { store, intervalMs: -1 }), 'HEXAD_BAD_INPUT', /intervalMs must be a positive integer/)
    await rejectsWith(startBackup(() => cluster.volume, { store: 42 as unknown as string }), 'HEXAD_BAD_INPUT', /store must be a directory path or a BackupStore/)
    const agent = await startBackup(() => cluster.volume, { store, intervalMs: 100 })
    await cluster.writer.put('k', 'v')
    m = await record(cluster, agent)
    await agent.stop()
    // Another volume cannot back up into a store whose log runs past its VDL.
    const other = makeTempDir('bk-other')
    const vol = await openVolume({ dir: other, pagesPerGroup: 64 })
    try {
      await rejectsWith(startBackup(() => vol, { store }), 'HEXAD_BAD_INPUT', /another volume's backup/)
    } finally {
      await vol.close()
    }
  } finally {
    await cluster.close()
  }
  const full = makeTempDir('bk-full')
  fs.writeFileSync(path.join(full, 'something'), 'x')
  await rejectsWith(restore({ from: store, to: full }), 'HEXAD_BAD_INPUT', /is not empty/)
  assert.ok(fs.existsSync(path.join(full, 'something')), 'a non-empty target is left alone')

  const w = (await restorableWindow(store))!
  const to = () => path.join(makeTempDir('bk-to'), 'x')
  const bounds = new RegExp(`outside what .* can restore: LSN ${w.oldest.lsn} \\(${w.oldest.time.toISOString()}\\) to LSN ${w.latest.lsn} \\(${w.latest.time.toISOString()}\\)`)
  await rejectsWith(restore({ from: store, to: to(), at: new Date(w.oldest.time.getTime() - 60_000) }), 'HEXAD_BAD_INPUT', bounds, 'a moment before the oldest')
  await rejectsWith(restore({ from: store, to: to(), at: new Date(Date.now() + 60_000) }), 'HEXAD_BAD_INPUT', bounds, 'a moment in the future')
  await rejectsWith(restore({ from: store, to: to(), at: w.latest.lsn + 1 }), 'HEXAD_BAD_INPUT', bounds, 'an LSN past the latest')
  await rejectsWith(restore({ from: store, to: to(), at: new Date('nonsense') }), 'HEXAD_BAD_INPUT', /valid Date/)
  await rejectsWith(restore({ from: store, to: to(), at: 1.5 }), 'HEXAD_BAD_INPUT', /non-negative integer LSN/)

  const empty = makeTempDir('bk-empty')
  await rejectsWith(restore({ from: empty, to: to() }), 'HEXAD_BAD_INPUT', /holds no backup/)
  await rejectsWith(restore({ from: path.join(empty, 'nowhere'), to: to() }), 'HEXAD_BAD_INPUT', /holds no backup/)
  assert.is(await latestRestorable(empty), null)
  await assertRestores(store, m!.at, m!, 'the store after the bad inputs')
  rmTempDir(src)
})

test('DirectoryBackupStore: put replaces whole objects, names become directories, list and delete', async () => {
  const s = new DirectoryBackupStore(makeTempDir('bk-dir'))
  await s.put('a/b/c.bin', new Uint8Array([1, 2, 3]))
  await s.put('a/b/c.bin', new Uint8Array([4, 5]))
  await s.put('a/d', new Uint8Array(0))
  await s.put('top', new Uint8Array([9]))
  assert.equal([...(await s.get('a/b/c.bin'))!], [4, 5])
  assert.is(await s.get('a/missing'), null)
  assert.equal(await s.list('a/'), ['a/b/c.bin', 'a/d'])
  assert.equal(await s.list('a/b'), ['a/b/c.bin'])
  assert.equal(await s.list(''), ['a/b/c.bin', 'a/d', 'top'])
  assert.is(await s.size('a/b/c.bin'), 2)
  await s.delete('a/b/c.bin')
  await s.delete('a/b/c.bin')
  assert.not.ok(fs.existsSync(path.join(s.dir, 'a', 'b')), 'an emptied directory goes')
  assert.equal(await s.list('a/'), ['a/d'])
  for (const bad of ['../x', '/abs', 'a//b', 'a/./b', 'x.tmp-1', '']) await rejectsWith(s.put(bad, new Uint8Array(1)), 'HEXAD_BAD_INPUT', /backup object name/, bad)
})

if (process.env.HEXAD_BACKUP_BENCH) {
  test('restore throughput of a ~20 MB volume', async () => {
    const src = makeTempDir('bk-bench')
    const store = makeTempDir('bk-bench-store')
    const vol = await openVolume({ dir: src })
    const pages = 5120
    try {
      // Half random (incompressible), half text-like pages; then a few MB of log on top.
      for (let p = 0; p < pages; p += 256) {
        await vol.write(Array.from({ length: 256 }, (_, i) => {
          const image = (p + i) % 2 ? randomBytes(4096) : Buffer.from(big(`page ${p + i} `, 4096))
          return { pageId: p + i, ops: [{ op: 'init' as const, image }] }
        }))
      }
      const agent = await startBackup(() => vol, { store, intervalMs: 200, bytesPerSecond: 1 << 30 })
      await agent.flush()
      for (let k = 0; k < 2000; k++) await vol.write([{ pageId: (k * 37) % pages, ops: [{ op: 'write', offset: (k * 13) % 4000, bytes: randomBytes(64) }] }])
      const t0 = Date.now()
      await agent.flush()
      console.log(`backup: ${(agent.status().bytesStored / 1e6).toFixed(1)} MB stored, last flush ${Date.now() - t0} ms`)
      await agent.stop()
    } finally {
      await vol.close()
    }
    const to = path.join(makeTempDir('bk-bench-to'), 'v')
    const r = await restore({ from: store, to })
    console.log(`restore: ${r.pages} pages, ${(r.bytes / 1e6).toFixed(1)} MB in ${r.ms} ms = ${(r.bytes / 1e6 / (r.ms / 1000)).toFixed(1)} MB/s (read ${(r.bytesRead / 1e6).toFixed(1)} MB from the store)`)
    assert.is(r.pages, pages)
  })
}

test.run()
