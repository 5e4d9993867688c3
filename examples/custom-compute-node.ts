// A custom compute node written only against the volume API: a fixed-size
// hash table of short strings. The page format and the redo are its own;
// the storage tier only ever sees page ops.
//
//   page 0 (header)   magic "HXHT" | version u32 | bucket pages u32 | entries u32     (little-endian)
//   pages 1..BUCKETS  SLOTS_PER_PAGE slots of 64 bytes:
//                     state u8 (0 empty, 1 used, 2 deleted) | key length u8 | value length u8 | 0 | key 28 B | value 32 B
//
// Open addressing with linear probing over all slots. Every change is one
// mini-transaction: a new entry writes its slot and bumps the header's count
// in the same atomic write, so a crash can never leave the count wrong.
import { openVolume, HexadError, type Volume } from 'hexad'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'

const MAGIC = 'HXHT'
const BUCKETS = 4
const SLOT = 64
const SLOTS_PER_PAGE = 4096 / SLOT
const KEY_MAX = 28
const VALUE_MAX = 32
const EMPTY = 0, USED = 1, DELETED = 2

class HashTable {
  constructor(readonly vol: Volume) {}

  /** Formats the volume on first use: header and bucket pages in one MTR (init ops). */
  static async open(vol: Volume): Promise<HashTable> {
    const header = Buffer.from(await vol.readPage(0))
    if (header.toString('latin1', 0, 4) !== MAGIC) {
      const image = Buffer.alloc(16)
      image.write(MAGIC, 0, 'latin1')
      image.writeUInt32LE(1, 4)
      image.writeUInt32LE(BUCKETS, 8)
      await vol.write([{ pageId: 0, ops: [{ op: 'init', image }] },
        ...Array.from({ length: BUCKETS }, (_, b) => ({ pageId: 1 + b, ops: [{ op: 'init' as const }] }))])
    }
    return new HashTable(vol)
  }

  async count(): Promise<number> { return Buffer.from(await this.vol.readPage(0)).readUInt32LE(12) }

  /** The slot holding `key`, or the first free one on its probe path. */
  async #find(key: Buffer): Promise<{ page: number; offset: number; found: boolean; slot: Buffer }> {
    let h = 0x811c9dc5
    for (const b of key) h = Math.imul(h ^ b, 0x01000193) >>> 0 // FNV-1a
    let free: { page: number; offset: number; slot: Buffer } | null = null
    const pages = new Map<number, Buffer>()
    for (let n = 0; n < BUCKETS * SLOTS_PER_PAGE; n++) {
      const s = (h + n) % (BUCKETS * SLOTS_PER_PAGE)
      const page = 1 + Math.floor(s / SLOTS_PER_PAGE), offset = (s % SLOTS_PER_PAGE) * SLOT
      if (!pages.has(page)) pages.set(page, Buffer.from(await this.vol.readPage(page)))
      const slot = pages.get(page)!.subarray(offset, offset + SLOT)
      if (slot[0] === USED && key.equals(slot.subarray(4, 4 + slot[1]))) return { page, offset, found: true, slot }
      if (slot[0] !== USED) free ??= { page, offset, slot }
      if (slot[0] === EMPTY) break
    }
    if (!free) throw new HexadError('HEXAD_BAD_INPUT', 'hash table full')
    return { ...free, found: false }
  }

  async get(k: string): Promise<string | undefined> {
    const f = await this.#find(Buffer.from(k))
    return f.found ? f.slot.toString('utf8', 4 + KEY_MAX, 4 + KEY_MAX + f.slot[2]) : undefined
  }

  async put(k: string, v: string): Promise<void> {
    const key = Buffer.from(k), value = Buffer.from(v)
    if (key.length > KEY_MAX || value.length > VALUE_MAX) throw new HexadError('HEXAD_BAD_INPUT', `key <= ${KEY_MAX} and value <= ${VALUE_MAX} bytes`)
    const f = await this.#find(key)
    const slot = Buffer.alloc(SLOT)
    slot.set([USED, key.length, value.length, 0])
    key.copy(slot, 4)
    value.copy(slot, 4 + KEY_MAX)
    const writeSlot = { pageId: f.page, ops: [{ op: 'write' as const, offset: f.offset, bytes: slot }] }
    if (f.found) { await this.vol.write([writeSlot]); return } // overwrite: one record
    const count = Buffer.alloc(4)
    count.writeUInt32LE((await this.count()) + 1)
    await this.vol.write([writeSlot, { pageId: 0, ops: [{ op: 'write', offset: 12, bytes: count }] }])
  }

  /** Deletes: a tombstone keeps probe chains intact; `fill` wipes the key and value bytes. */
  async del(k: string): Promise<boolean> {
    const f = await this.#find(Buffer.from(k))
    if (!f.found) return false
    const count = Buffer.alloc(4)
    count.writeUInt32LE((await this.count()) - 1)
    await this.vol.write([
      { pageId: f.page, ops: [{ op: 'fill', offset: f.offset + 1, len: SLOT - 1, byte: 0 }, { op: 'write', offset: f.offset, bytes: Buffer.from([DELETED]) }] },
      { pageId: 0, ops: [{ op: 'write', offset: 12, bytes: count }] },
    ])
    return true
  }

  /** Every entry, in slot order. */
  async *entries(): AsyncGenerator<[string, string]> {
    for (let p = 1; p <= BUCKETS; p++) {
      const page = Buffer.from(await this.vol.readPage(p))
      for (let o = 0; o < page.length; o += SLOT) {
        if (page[o] === USED) yield [page.toString('utf8', o + 4, o + 4 + page[o + 1]), page.toString('utf8', o + 4 + KEY_MAX, o + 4 + KEY_MAX + page[o + 2])]
      }
    }
  }
}

/** Opens the volume in `dir`, runs `fn` on the table, and closes the volume. */
async function withTable(dir: string, fn: (table: HashTable, vol: Volume) => Promise<void>): Promise<void> {
  const vol = await openVolume({ dir })
  try { await fn(await HashTable.open(vol), vol) } finally { await vol.close() }
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hexad-hashtable-'))
try {
  await withTable(dir, async (table, vol) => {
    for (const [k, v] of [['apple', 'green'], ['banana', 'yellow'], ['cherry', 'red'], ['pear', 'yellow'], ['plum', 'purple']]) await table.put(k, v)
    await table.put('apple', 'red') // overwrite in place
    await table.del('pear')         // tombstone
    console.log(`wrote ${vol.stats().writes} MTRs; table holds ${await table.count()} entries; VDL ${vol.vdl}`)
  })
  // What a new process would do: reopen (recovery from a 3/6 quorum) and read the table back.
  await withTable(dir, async (table, vol) => {
    console.log(`reopened at epoch ${vol.epoch}, VDL ${vol.vdl}: header says ${await table.count()} entries`)
    console.log(`apple -> ${await table.get('apple')}, pear -> ${(await table.get('pear')) ?? '(deleted)'}, plum -> ${await table.get('plum')}`)
    const all: string[] = []
    for await (const [k, v] of table.entries()) all.push(`${k}=${v}`)
    console.log(`entries: ${all.sort().join(', ')}`)
  })
} finally {
  fs.rmSync(dir, { recursive: true, force: true })
}
