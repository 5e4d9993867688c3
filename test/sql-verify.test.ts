/**
 * The SQL layer's consistency check (engine/sql/verify.ts: sqlEngine(db).verify(),
 * verifySql(db), and its problems inside db.verify()):
 * - clean after a seeded random workload of INSERT / UPDATE / DELETE (also
 *   failing ones: unique and NOT NULL violations, and rolled-back blocks) on
 *   tables with a primary key, a composite primary key and a hidden row id,
 *   secondary indexes that are unique, composite, descending and on
 *   nullable columns, CREATE INDEX on a filled table, DROP INDEX, ADD COLUMN;
 *   its row and entry counts equal SELECT COUNT(*);
 * - planted inconsistencies written straight through the key-value API are
 *   each reported precisely (table, index, key): a missing index entry, a
 *   dangling one, one pointing at a row with other values, a row breaking
 *   NOT NULL, a row that does not decode, a row with a value of the wrong
 *   type, a row filed under a key that is not its primary key, a duplicate
 *   in a unique index, keys left in a keyspace the catalog does not name;
 *   and the check is clean again once each is undone.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { pack } from '../native-bindings/index.js'
import { decodeRow, encodeRow, indexKey, indexKeyspace, pkKey, tableKeyspace, type TableDef } from '../engine/sql/catalog.js'
import { sqlEngine, verifySql } from '../engine/sql/index.js'
import type { Database } from '../engine/index.js'
import { baseSeed, cleanupTempDirs, Rng, withSql } from './helpers/sql-helpers.js'

test.after(() => cleanupTempDirs())

const SEED = baseSeed()
console.log(`# sql-verify: seed ${SEED} (replay with HEXAD_SEED=${SEED} node test/run.mjs sql-verify)`)

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex')

async function clean(db: Database, where: string): Promise<Awaited<ReturnType<typeof verifySql>>> {
  const r = await sqlEngine(db).verify()
  assert.ok(r.ok, `${where}: verify() found problems:\n    ${r.problems.slice(0, 12).join('\n    ')}`)
  assert.equal(r.problems, [])
  const full = await db.verify()
  assert.ok(full.ok, `${where}: db.verify() found problems:\n    ${full.problems.slice(0, 12).join('\n    ')}`)
  assert.ok(full.sql, 'db.verify() carries the SQL report')
  return r
}

async function schema(db: Database): Promise<void> {
  await db.sql('CREATE TABLE acct (id INT PRIMARY KEY, owner TEXT NOT NULL, email VARCHAR(40) UNIQUE, grp INT, bal NUMERIC(12,2), note TEXT)')
  await db.sql('CREATE INDEX acct_grp_owner ON acct (grp, owner)')
  await db.sql('CREATE INDEX acct_bal_desc ON acct (bal DESC)')
  await db.sql('CREATE UNIQUE INDEX acct_grp_note ON acct (grp, note)')
  await db.sql('CREATE TABLE pair (x INT, y INT, v TEXT, w DOUBLE PRECISION, PRIMARY KEY (x, y))')
  await db.sql('CREATE INDEX pair_v ON pair (v)')
  await db.sql('CREATE TABLE nokey (a INT, b TEXT NOT NULL, c BOOLEAN)')
  await db.sql('CREATE INDEX nokey_b_a ON nokey (b, a)')
}

/** One random statement; expected failures (23505, 23502; 25P02 after one inside a block) are part of the workload. */
async function randomStatement(s: { sql: Database['sql'] }, rng: Rng): Promise<void> {
  const id = rng.int(1, 60)
  const grp = rng.bool(0.1) ? null : rng.int(1, 5)
  const note = rng.bool(0.3) ? null : `n${rng.int(1, 40)}`
  const email = rng.bool(0.2) ? null : `u${rng.int(1, 80)}@x`
  const owner = rng.bool(0.05) ? null : rng.pick(['ada', 'bob', 'cy', 'di', 'ed'])
  const bal = rng.bool(0.1) ? null : (rng.int(-50000, 50000) / 100).toFixed(2)
  const stmts: Array<[string, unknown[]]> = [
    ['INSERT INTO acct (id, owner, email, grp, bal, note) VALUES ($1, $2, $3, $4, $5, $6)', [id, owner, email, grp, bal, note]],
    ['INSERT INTO acct (id, owner, email, grp, bal, note) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO UPDATE SET bal = excluded.bal, grp = excluded.grp', [id, owner ?? 'zed', email, grp, bal, note]],
    ['UPDATE acct SET bal = bal + $1, note = $2 WHERE id = $3', [rng.int(-100, 100), note, id]],
    ['UPDATE acct SET email = $1 WHERE id = $2', [email, id]],
    ['UPDATE acct SET id = id + 100 WHERE id = $1', [id]],
    ['UPDATE acct SET grp = $1 WHERE grp = $2', [grp, rng.int(1, 5)]],
    ['DELETE FROM acct WHERE id = $1', [id]],
    ['DELETE FROM acct WHERE grp = $1 AND bal < $2', [rng.int(1, 5), rng.int(-500, 0)]],
    ['INSERT INTO pair VALUES ($1, $2, $3, $4)', [rng.int(1, 8), rng.int(1, 8), rng.pick(['p', 'q', 'r', null]), rng.bool(0.5) ? rng.float() * 10 : null]],
    ['UPDATE pair SET x = x + 10, v = $1 WHERE x = $2', [rng.pick(['p', 'q', 's']), rng.int(1, 18)]],
    ['UPDATE pair SET v = $1 WHERE y = $2', [rng.pick(['p', 'q', null]), rng.int(1, 8)]],
    ['DELETE FROM pair WHERE x = $1 AND y = $2', [rng.int(1, 18), rng.int(1, 8)]],
    ['INSERT INTO nokey VALUES ($1, $2, $3)', [rng.bool(0.2) ? null : rng.int(1, 20), rng.bool(0.05) ? null : rng.pick(['a', 'b', 'c']), rng.bool(0.5)]],
    ['UPDATE nokey SET b = $1 WHERE a = $2', [rng.pick(['a', 'b', 'd']), rng.int(1, 20)]],
    ['DELETE FROM nokey WHERE a = $1', [rng.int(1, 20)]],
  ]
  const [text, params] = rng.pick(stmts)
  try { await s.sql(text, params) } catch (e) {
    const st = (e as { sqlstate?: string }).sqlstate
    if (st !== '23505' && st !== '23502' && st !== '40001' && st !== '25P02') throw new Error(`${text} ${JSON.stringify(params)}: ${st} ${(e as Error).message}`)
  }
}

test('verify() is clean after a random workload of inserts, updates and deletes on indexed tables; counts agree with SELECT', async () => {
  await withSql('sql-verify-clean', async cluster => {
    const db = cluster.writer
    const rng = new Rng(SEED)
    await schema(db)
    await clean(db, 'empty tables')
    for (let round = 0; round < 4; round++) {
      // autocommit statements, a few of them concurrent
      for (let i = 0; i < 80; i++) {
        if (rng.bool(0.2)) await Promise.all([randomStatement(db, rng), randomStatement(db, rng), randomStatement(db, rng)])
        else await randomStatement(db, rng)
      }
      // blocks committed or rolled back, with failed statements inside (25P02 then)
      for (let b = 0; b < 6; b++) {
        const s = db.session()
        await s.sql('BEGIN')
        for (let i = 0; i < 6; i++) await randomStatement(s as unknown as Database, rng)
        await s.sql(rng.bool(0.6) ? 'COMMIT' : 'ROLLBACK').catch(e => { if ((e as { sqlstate?: string }).sqlstate !== '40001') throw e })
        await s.close()
      }
      if (round === 1) {
        await db.sql('CREATE INDEX acct_note ON acct (note, id DESC)')
        await db.sql('DROP INDEX acct_bal_desc')
        await db.sql("ALTER TABLE acct ADD COLUMN tag TEXT DEFAULT 'x'")
        await db.sql('CREATE INDEX acct_tag ON acct (tag)')
      }
      const r = await clean(db, `seed ${SEED}, round ${round}`)
      for (const t of r.tables) {
        const n = Number((await db.sql(`SELECT COUNT(*) AS n FROM ${t.name}`)).rows[0].n)
        assert.is(t.rows, n, `table ${t.name}: verify counts ${t.rows} rows, SELECT COUNT(*) ${n}`)
        for (const ix of t.indexes) assert.is(ix.entries, n, `index ${ix.name}: ${ix.entries} entries for ${n} rows`)
      }
      assert.equal(r.tables.map(t => t.name).sort(), ['acct', 'nokey', 'pair'])
      if (round >= 2) assert.equal(r.tables.find(t => t.name === 'acct')!.indexes.map(i => i.name).sort(), ['acct_email_key', 'acct_grp_note', 'acct_grp_owner', 'acct_note', 'acct_tag'])
    }
    const total = (await clean(db, 'end')).tables.reduce((n, t) => n + t.rows, 0)
    assert.ok(total > 20, `the workload left ${total} rows`)
  })
})

test('planted inconsistencies written through the key-value API are reported with table, index and key', async () => {
  await withSql('sql-verify-planted', async cluster => {
    const db = cluster.writer
    await schema(db)
    await db.sql("INSERT INTO acct VALUES (1, 'ada', 'a@x', 1, 10.00, 'n1'), (2, 'bob', 'b@x', 1, 20.00, 'n2'), (3, 'cy', NULL, NULL, NULL, NULL)")
    await db.sql("INSERT INTO nokey VALUES (1, 'a', true), (2, 'b', false)")
    await clean(db, 'before planting')
    const eng = sqlEngine(db)
    const t = eng.table('acct') as TableDef
    const ix = (name: string) => t.indexes.find(i => i.name === name)!
    const tks = db.keyspace(tableKeyspace(t))
    const problemsOf = async () => (await verifySql(db)).problems

    // (1) a missing entry: delete row 2's entry of the composite index
    const row2Stored = decodeRow(t, (await tks.get(pkKey(t, [2])))!)
    const pk2 = pkKey(t, row2Stored)
    const e2 = indexKey(t, ix('acct_grp_owner'), row2Stored, pk2).key
    await db.keyspace(indexKeyspace(ix('acct_grp_owner'))).del(e2)
    let ps = await problemsOf()
    assert.equal(ps, [`table acct, index acct_grp_owner: row ${hex(pk2)} has no entry (expected key ${hex(e2)})`])
    const full = await db.verify()
    assert.not.ok(full.ok, 'db.verify() fails on an SQL problem')
    assert.ok(full.problems.includes(`sql: ${ps[0]}`), `db.verify() includes it: ${full.problems.join('; ')}`)
    assert.is(full.sql!.tables.find(x => x.name === 'acct')!.indexes.find(i => i.name === 'acct_grp_owner')!.entries, 2)
    await db.keyspace(indexKeyspace(ix('acct_grp_owner'))).put(e2, pk2)
    await clean(db, 'after restoring (1)')

    // (2) a dangling entry: an entry for a row that does not exist
    const ghost = [9, 'ghost', 'g@x', 1, null, null]
    const pk9 = pkKey(t, ghost)
    const e9 = indexKey(t, ix('acct_grp_owner'), ghost, pk9).key
    await db.keyspace(indexKeyspace(ix('acct_grp_owner'))).put(e9, pk9)
    ps = await problemsOf()
    assert.equal(ps, [`table acct, index acct_grp_owner, entry ${hex(e9)}: points at row ${hex(pk9)}, which does not exist (a dangling entry)`])
    await db.keyspace(indexKeyspace(ix('acct_grp_owner'))).del(e9)

    // (3) an entry pointing at an existing row whose values give another entry
    const wrong = [1, 'zed', null, 4, null, null]
    const pk1 = pkKey(t, wrong)
    const eWrong = indexKey(t, ix('acct_grp_owner'), wrong, pk1).key
    await db.keyspace(indexKeyspace(ix('acct_grp_owner'))).put(eWrong, pk1)
    ps = await problemsOf()
    assert.is(ps.length, 1, ps.join('; '))
    assert.match(ps[0], `table acct, index acct_grp_owner, entry ${hex(eWrong)}: points at row ${hex(pk1)}, whose indexed values (grp, owner) give entry `)
    await db.keyspace(indexKeyspace(ix('acct_grp_owner'))).del(eWrong)
    await clean(db, 'after restoring (2), (3)')

    // (4) a row breaking NOT NULL (owner), written around the SQL layer
    const bad = [4, null, null, 2, null, null]
    const pk4 = pkKey(t, bad)
    await tks.put(pk4, encodeRow(t, bad))
    ps = await problemsOf()
    assert.ok(ps.includes(`table acct, row key ${hex(pk4)}: NOT NULL column owner is null`), ps.join('; '))
    // ... and its index entries are missing too, each named
    for (const i of t.indexes) {
      const { key } = indexKey(t, i, bad, pk4)
      assert.ok(ps.includes(`table acct, index ${i.name}: row ${hex(pk4)} has no entry (expected key ${hex(key)})`), `missing ${i.name}: ${ps.join('; ')}`)
    }
    assert.is(ps.length, 1 + t.indexes.length)
    await tks.del(pk4)

    // (5) a row that does not decode, and one with a value of the wrong type
    const pk5 = pkKey(t, [5]), pk6 = pkKey(t, [6])
    await tks.put(pk5, Buffer.from([0xc1, 0xc1, 0xc1]))
    await tks.put(pk6, pack([6, 'fy', null, 'not an int', null, null]))
    ps = await problemsOf()
    assert.ok(ps.some(p => p.startsWith(`table acct, row key ${hex(pk5)}: the row does not decode`)), ps.join('; '))
    assert.ok(ps.includes(`table acct, row key ${hex(pk6)}: column grp (int4): an int4 expected, found string "not an int"`), ps.join('; '))
    assert.is(ps.length, 2, ps.join('; '))
    await tks.del(pk5)
    await tks.del(pk6)

    // (6) a row filed under another key than its primary key
    const pk7 = pkKey(t, [7])
    const moved = [8, 'hal', null, null, null, null]
    await tks.put(pk7, encodeRow(t, moved))
    ps = await problemsOf()
    assert.equal(ps, [`table acct, row key ${hex(pk7)}: the key is not the row's primary key (id) ${hex(pkKey(t, moved))}`])
    await tks.del(pk7)
    await clean(db, 'after restoring (4)-(6)')

    // (7) a duplicate in a unique index: a second row with row 1's email, entries written as the SQL layer would
    const twin = [10, 'tw', 'a@x', 3, null, null]
    const pk10 = pkKey(t, twin)
    await tks.put(pk10, encodeRow(t, twin))
    for (const i of t.indexes) if (i.name !== 'acct_email_key') await db.keyspace(indexKeyspace(i)).put(indexKey(t, i, twin, pk10).key, pk10)
    const uq = indexKey(t, ix('acct_email_key'), twin, pk10).key
    ps = await problemsOf()
    assert.equal(ps, [`table acct, index acct_email_key: unique key ${hex(uq)} is held by two rows: ${hex(pkKey(t, [1]))} and ${hex(pk10)}`])
    await tks.del(pk10)
    for (const i of t.indexes) if (i.name !== 'acct_email_key') await db.keyspace(indexKeyspace(i)).del(indexKey(t, i, twin, pk10).key)

    // (8) a row-id table: an index entry deleted
    const nk = eng.table('nokey') as TableDef
    const nix = nk.indexes[0]
    const entries: Array<[Uint8Array, Uint8Array]> = []
    for await (const e of db.keyspace(indexKeyspace(nix)).scan()) entries.push(e)
    assert.is(entries.length, 2)
    await db.keyspace(indexKeyspace(nix)).del(entries[1][0])
    ps = await problemsOf()
    assert.equal(ps, [`table nokey, index nokey_b_a: row ${hex(entries[1][1])} has no entry (expected key ${hex(entries[1][0])})`])
    await db.keyspace(indexKeyspace(nix)).put(entries[1][0], entries[1][1])
    await clean(db, 'after restoring (7), (8)')

    // (9) keys in a table keyspace the catalog does not name
    await db.keyspace('t:9999').put('k', 'v')
    ps = await problemsOf()
    assert.equal(ps, [`keyspace t:9999: not in the catalog (a dropped table?) but holds keys, first ${Buffer.from('k').toString('hex')}`])
    await db.keyspace('t:9999').del('k')
    // a dropped table leaves nothing behind
    await db.sql('DROP TABLE pair')
    const r = await clean(db, 'at the end')
    assert.equal(r.tables.map(x => x.name).sort(), ['acct', 'nokey'])
    assert.is(r.tables.find(x => x.name === 'acct')!.rows, 3)
  })
})

test.run()
