/**
 * The page store at open: a version appended after the last recorded sync
 * whose header landed but whose body a crash tore is buried (dead on disk)
 * and left out of the index, so the page is built from the log's records
 * instead of failing its checksum at every read and waiting for a peer's
 * image (soak seed 701611: all six segments had torn the same unsynced
 * version and each waited for another to repair it). Damage inside the
 * synced prefix still counts as corruption.
 */
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { PageStore, type Version } from '../engine/storage/page-store.js'
import { decodeMeta, VERSION_HEADER_BYTES } from '../engine/storage/format.js'
import { openVolume } from '../engine/index.js'
import { smallOptions } from './helpers/volume-helpers.js'

const PAGE = 512

function image(fill: number): Uint8Array {
  const p = new Uint8Array(PAGE)
  for (let i = 0; i < PAGE; i++) p[i] = (fill * 31 + i * 7) & 0xff // not compressible to nothing: the body has bytes to tear
  return p
}

/** Overwrites the last `n` bytes of the body of the entry at `off` (length `len`) in `file` with zeros. */
function tear(file: string, off: number, len: number, n: number): void {
  const fd = fs.openSync(file, 'r+')
  fs.writeSync(fd, Buffer.alloc(n), 0, n, off + len - n)
  fs.closeSync(fd)
}

/** A store in `dir` holding page 1 at LSN 10, synced, and the synced lengths its segment's meta would record. */
function syncedStore(dir: string): { a: PageStore; v: Version; synced: Map<number, number> } {
  const a = new PageStore(dir, 1 << 20)
  a.open()
  const v = a.append(1, 10, image(1))
  a.sync()
  return { a, v, synced: new Map(a.syncedExtents()) }
}

function withDir(fn: (dir: string) => void): void {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hexad-pages-'))
  try { fn(dir) } finally { fs.rmSync(dir, { recursive: true, force: true }) }
}

test('a torn version past the synced length is buried at open; the versions around it stay', () => withDir(dir => {
  const { a, synced } = syncedStore(dir)
  const torn = a.append(1, 20, image(2)) // after the last recorded sync: its records are still in the log
  a.append(2, 21, image(3))
  a.close()
  assert.ok(torn.len > VERSION_HEADER_BYTES + 8)
  tear(a.locate(torn).path, torn.off, torn.len, 8)

  const b = new PageStore(dir, 1 << 20)
  b.open(synced)
  assert.is(b.tornEntries, 1, 'the torn entry is counted as torn')
  assert.is(b.damagedEntries, 0, 'and not as corruption')
  assert.is(b.newest(1)?.lsn, 10, 'page 1 falls back to its synced version (its records rebuild the rest)')
  assert.equal(b.read(1, b.newest(1)!), image(1))
  assert.is(b.newest(2)?.lsn, 21, 'the intact entry after the torn one stays')
  assert.equal(b.read(2, b.newest(2)!), image(3))
  const all = new Map(b.syncedExtents())
  b.close()

  // Buried on disk: an open whose recorded sync covers the whole file no longer sees it.
  const c = new PageStore(dir, 1 << 20)
  c.open(all)
  assert.is(c.newest(1)?.lsn, 10)
  assert.is(c.tornEntries + c.damagedEntries, 0)
  c.close()
}))

test('an intact version past the synced length is kept', () => withDir(dir => {
  const { a, synced } = syncedStore(dir)
  a.append(1, 20, image(2))
  a.close()
  const b = new PageStore(dir, 1 << 20)
  b.open(synced)
  assert.is(b.newest(1)?.lsn, 20)
  assert.equal(b.read(1, b.newest(1)!), image(2))
  assert.is(b.tornEntries, 0)
  b.close()
}))

test('a torn body inside the synced prefix is still found at read (corruption, repaired from a peer)', () => withDir(dir => {
  const { a, v, synced } = syncedStore(dir)
  a.close()
  tear(a.locate(v).path, v.off, v.len, 8)
  const b = new PageStore(dir, 1 << 20)
  b.open(synced)
  assert.is(b.tornEntries, 0)
  assert.is(b.newest(1)?.lsn, 10, 'indexed: a synced version is never dropped silently')
  assert.is(b.read(1, b.newest(1)!), null, 'its checksum fails at read')
  b.close()
}))

test('a clean close records the page files as synced to their ends, so the next open checks no version body', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hexad-pages-close-'))
  try {
    // No checkpoint (it would record the lengths itself): the page versions the coalescer builds lie past the last recorded lengths.
    const vol = await openVolume(smallOptions(dir, { checkpointLogBytes: 256 << 20 }))
    for (let i = 0; i < 60; i++) await vol.write([{ pageId: i % 6, ops: [{ op: 'write', offset: 8 + i, bytes: new Uint8Array([i + 1]) }] }])
    let versions = 0
    for (let t = 0; t < 100 && versions < 6; t++) {
      versions = (await vol.segmentStats()).reduce((n, s) => Math.min(n, s?.pageVersions ?? 0), Infinity)
      await new Promise(r => setTimeout(r, 20))
    }
    assert.ok(versions > 0, 'every segment built page versions')
    await vol.close()
    for (let x = 0; x < 6; x++) {
      const seg = path.join(dir, `segment-${x}`)
      const meta = decodeMeta<{ pagesSynced: Array<[number, number]> }>(fs.readFileSync(path.join(seg, 'meta')))
      const files = fs.readdirSync(path.join(seg, 'pages')).filter(n => n.endsWith('.hxp'))
      assert.ok(files.length > 0)
      for (const name of files) {
        const size = fs.statSync(path.join(seg, 'pages', name)).size
        const synced = new Map(meta!.pagesSynced).get(Number.parseInt(name, 10))
        assert.is(synced, size, `segment ${x} ${name}: recorded synced length ${synced}, file ${size} bytes`)
      }
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
})

/** A store whose files hold four versions of `image`s: the size of one is measured in a scratch store first. */
function smallFileStore(dir: string): PageStore {
  const probe = fs.mkdtempSync(path.join(os.tmpdir(), 'hexad-pages-probe-'))
  let len = 0
  try {
    const p = new PageStore(probe, 1 << 20)
    p.open()
    for (let i = 1; i <= 8; i++) len = Math.max(len, p.append(i, i, image(i)).len)
    p.close()
  } finally { fs.rmSync(probe, { recursive: true, force: true }) }
  const s = new PageStore(dir, 4 * len + (len >> 1))
  s.open()
  return s
}

const hxp = (dir: string) => fs.readdirSync(dir).filter(n => n.endsWith('.hxp')).sort()

test('compaction copies the live versions of a mostly dead file forward; every page reads the same, before and after a reopen', () => withDir(dir => {
  const a = smallFileStore(dir)
  for (let p = 1; p <= 4; p++) a.append(p, 10, image(p)) // the first file, full
  for (let p = 1; p <= 3; p++) a.append(p, 20, image(p + 10)) // the second file
  assert.equal(hxp(dir).length, 2)
  assert.equal(a.compact(), [], 'nothing is dead yet: nothing to compact')
  a.collect(30) // pages 1-3 keep only their LSN 20 versions: the first file is 1/4 live
  assert.is(a.gcVersions, 3)
  const first = hxp(dir)[0]
  const emptied = a.compact()
  assert.is(emptied.length, 1, 'the mostly dead file is compacted')
  assert.is(a.compactedFiles, 1)
  assert.is(a.locate(a.newest(4)!).path, path.join(dir, hxp(dir)[1]), 'page 4 now lives in the active file')
  assert.equal(a.read(4, a.newest(4)!), image(4))
  a.sync()
  a.removeFiles(emptied)
  assert.not.ok(hxp(dir).includes(first), 'and the emptied file is deleted')
  const synced = new Map(a.syncedExtents())
  a.close()

  const b = new PageStore(dir, a.fileBytes)
  b.open(synced)
  for (let p = 1; p <= 3; p++) { assert.is(b.newest(p)?.lsn, 20); assert.equal(b.read(p, b.newest(p)!), image(p + 10)) }
  assert.is(b.newest(4)?.lsn, 10)
  assert.equal(b.read(4, b.newest(4)!), image(4))
  assert.is(b.tornEntries + b.damagedEntries, 0)
  b.close()
}))

test('a crash between the compaction\'s sync and the removal leaves both copies; the reopened store reads each page once', () => withDir(dir => {
  const a = smallFileStore(dir)
  for (let p = 1; p <= 4; p++) a.append(p, 10, image(p))
  for (let p = 1; p <= 3; p++) a.append(p, 20, image(p + 10))
  a.collect(30)
  const emptied = a.compact()
  assert.is(emptied.length, 1)
  a.sync()
  const synced = new Map(a.syncedExtents())
  a.close() // no removeFiles: the old file stays on disk beside the copy
  assert.is(hxp(dir).length, 2)

  const b = new PageStore(dir, a.fileBytes)
  b.open(synced)
  assert.equal(b.read(4, b.newest(4)!), image(4))
  for (let p = 1; p <= 3; p++) assert.equal(b.read(p, b.newest(p)!), image(p + 10))
  assert.is(b.index.get(4)!.length, 1, 'page 4 is indexed once: the same LSN in two files is one version')
  b.close()
}))

test('a file at least half live is not compacted', () => withDir(dir => {
  const a = smallFileStore(dir)
  for (let p = 1; p <= 4; p++) a.append(p, 10, image(p))
  for (let p = 1; p <= 2; p++) a.append(p, 20, image(p + 10))
  a.collect(30) // the first file keeps 2 of its 4 versions
  assert.equal(a.compact(), [])
  assert.is(a.compactedFiles, 0)
  a.close()
}))

test.run()
