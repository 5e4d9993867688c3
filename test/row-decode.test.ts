/**
 * Row decoding on the read path: native-bindings' unpackOwned (a small
 * input is copied into one scratch Buffer before msgpackr reads it, and
 * bin values come back as copies), and SQL reads that decode a B+tree
 * leaf's rows at once (full scans, key ranges, LIMIT, GROUP BY) returning
 * rows that share nothing with each other or with later reads.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { pack, unpack, unpackOwned } from '../native-bindings/index.js'
import { withTempCluster } from './helpers/kv-helpers.js'

/** bytes as number arrays (a Buffer and a Uint8Array of the same bytes compare equal) */
const plain = (v: unknown): unknown => v instanceof Uint8Array ? ['bytes', ...v] : Array.isArray(v) ? v.map(plain) : v

test('unpackOwned decodes what pack wrote, from any kind of input, and its bin values are copies', () => {
  const value = [7, 'text é', null, true, 1.5, -(2 ** 40), new Uint8Array([1, 2, 3, 250]), ['nested', new Uint8Array(300).fill(9)]]
  const packed = pack(value)
  // a Buffer, a small Uint8Array on the heap, a view in the middle of a larger memory, one above the scratch size
  const inHeap = new Uint8Array(packed)
  const big = new Uint8Array(packed.length + 64); big.set(packed, 32)
  const inMiddle = big.subarray(32, 32 + packed.length)
  const large = pack([new Uint8Array(10_000).fill(3), 'x'.repeat(5000)])
  for (const [what, input] of [['Buffer', packed], ['Uint8Array', inHeap], ['view', inMiddle]] as const) {
    const got = unpackOwned<unknown[]>(input)
    assert.equal(plain(got), plain(value), what)
    // the bin values survive later decodes and changes to the input
    const bin = got[6] as Uint8Array
    unpackOwned(pack([new Uint8Array([9, 9, 9, 9, 9, 9])]))
    input.fill(0)
    assert.equal([...bin], [1, 2, 3, 250], `${what}: a bin value kept its bytes after another decode and a change to the input`)
    input.set(packed)
  }
  const l = unpackOwned<[Uint8Array, string]>(large)
  assert.is(l[0].length, 10_000)
  assert.ok(l[0].every(b => b === 3))
  assert.is(l[1].length, 5000)
  // malformed input is refused as unpack refuses it
  assert.throws(() => unpackOwned(new Uint8Array(0)))
  assert.throws(() => unpackOwned(new Uint8Array([...packed, 1])), /end of buffer|not reached/i)
  assert.throws(() => unpack(new Uint8Array([...packed, 1])), /end of buffer|not reached/i)
  assert.throws(() => unpackOwned(inHeap.subarray(0, inHeap.length - 2)))
})

test('SQL reads of many leaves: scans, ranges, LIMIT and GROUP BY return every row once with its own values', async () => {
  await withTempCluster('row-decode', {}, async cluster => {
    const db = cluster.writer
    await db.sql('CREATE TABLE t (id INT PRIMARY KEY, grp INT NOT NULL, name TEXT, data BYTEA)')
    const N = 2000
    const row = (i: number) => ({ id: i, grp: i % 7, name: i % 11 === 0 ? null : `name ${i} ${'·'.repeat(i % 5)}`, data: Buffer.from([i & 255, (i >> 8) & 255, 7, i % 3]) })
    for (let s = 1; s <= N; s += 250) {
      const vals: string[] = [], ps: unknown[] = []
      for (let i = s; i < s + 250; i++) { const r = row(i); vals.push(`($${ps.length + 1}, $${ps.length + 2}, $${ps.length + 3}, $${ps.length + 4})`); ps.push(r.id, r.grp, r.name, r.data) }
      await db.sql(`INSERT INTO t (id, grp, name, data) VALUES ${vals.join(', ')}`, ps)
    }
    const check = (rows: Array<Record<string, unknown>>, ids: number[], what: string) => {
      assert.is(rows.length, ids.length, `${what}: row count`)
      rows.forEach((r, j) => {
        const want = row(ids[j])
        assert.is(r.id, want.id, `${what}: row ${j} id`)
        assert.is(r.grp, want.grp, `${what}: row ${j} grp`)
        assert.is(r.name, want.name, `${what}: row ${j} name`)
        assert.ok(Buffer.isBuffer(r.data) && (r.data as Buffer).equals(want.data), `${what}: row ${j} data ${String(r.data && [...(r.data as Buffer)])}`)
      })
    }
    const range = (a: number, b: number) => Array.from({ length: b - a + 1 }, (_, i) => a + i)
    const all = await db.sql('SELECT * FROM t')
    check(all.rows, range(1, N), 'full scan')
    check((await db.sql('SELECT * FROM t ORDER BY id DESC')).rows, range(1, N).reverse(), 'reverse scan')
    check((await db.sql('SELECT * FROM t WHERE id >= 500 AND id < 1500')).rows, range(500, 1499), 'key range')
    check((await db.sql('SELECT * FROM t LIMIT 3')).rows, [1, 2, 3], 'LIMIT 3')
    check((await db.sql('SELECT * FROM t LIMIT 5 OFFSET 998')).rows, range(999, 1003), 'LIMIT 5 OFFSET 998')
    check((await db.sql('SELECT * FROM t WHERE id > 1990 LIMIT 100')).rows, range(1991, 2000), 'range with a LIMIT past its end')
    check((await db.sql("SELECT * FROM t WHERE name LIKE 'name 1%' LIMIT 4")).rows, [1, 10, 12, 13], 'filtered scan with LIMIT')
    // rows read earlier are untouched by later reads (no shared decode memory)
    check(all.rows, range(1, N), 'the first full scan, after the other reads')
    const g = await db.sql('SELECT grp, COUNT(*) AS n, SUM(id) AS s, MIN(name) AS lo FROM t GROUP BY grp ORDER BY grp')
    assert.is(g.rows.length, 7)
    for (const r of g.rows) {
      const ids = range(1, N).filter(i => i % 7 === r.grp)
      assert.is(Number(r.n), ids.length, `group ${r.grp} count`)
      assert.is(Number(r.s), ids.reduce((a, b) => a + b, 0), `group ${r.grp} sum`)
      assert.is(r.lo, ids.map(i => row(i).name).filter((x): x is string => x !== null).sort()[0], `group ${r.grp} min(name)`)
    }
    // an UPDATE over a range and a DELETE by scan see every row they should
    assert.is((await db.sql('UPDATE t SET grp = grp + 100 WHERE id > 100 AND id <= 1100')).rowCount, 1000)
    assert.is((await db.sql('DELETE FROM t WHERE grp >= 100 AND id % 2 = 0')).rowCount, 500)
    assert.is(Number((await db.sql('SELECT COUNT(*) AS n FROM t')).rows[0].n), N - 500)
  })
})

test.run()
