/**
 * The writer process of the SQL crash test (test/sql-crash.test.ts), and
 * the schema and row rules both sides share.
 *
 * Schema (created with IF NOT EXISTS by every child: a crash may land in
 * the middle of the first child's DDL):
 *   items (id INT PRIMARY KEY, owner INT NOT NULL, val INT NOT NULL, tag TEXT, ver INT NOT NULL)
 *     indexes items_owner_val (owner, val), unique items_tag (tag: NULL for some rows), items_ver (ver DESC)
 *   vers  (id INT PRIMARY KEY, ver INT NOT NULL)     the last transaction that wrote item id (kept on delete)
 *   txlog (txid INT PRIMARY KEY, client INT NOT NULL, writes TEXT NOT NULL)
 *     index txlog_client (client)
 *
 * Transaction `txid` (numbered from one above the highest txid recovered)
 * picks 1..4 item ids (ascending: locks are taken in one order), and for
 * each: `SELECT ver FROM vers WHERE id = $1 FOR UPDATE` (the item's lock;
 * `prev` = the previous writer's txid, 0 if none), `SELECT ... FROM items
 * WHERE id = $1 FOR UPDATE`, then INSERT the row if absent, else UPDATE it
 * (owner, val, tag change: index entries move) or DELETE it; then upserts
 * vers to txid, and inserts its txlog row recording `[id, prev, action]`
 * for each item (action 'w' = the row now holds itemRow(txid, id), 'd' =
 * deleted). Every statement of it runs between BEGIN and COMMIT on one
 * session; a 40001 / 40P01 rolls back and runs it again with the same txid.
 * CLIENTS sessions run concurrently. Each COMMIT that returned prints
 * `ack <txid>`.
 *
 * So after any crash, the recovered state must satisfy, for each item id:
 * following vers.ver back through the txlog rows' `prev` links reaches 0,
 * and the transactions on that chain are exactly the present (txlog row
 * exists) transactions that wrote id; the items row is what the chain's
 * newest transaction left (itemRow or absent). A transaction half-applied
 * or a lost update breaks the chain; an acknowledged transaction missing
 * fails the ack check.
 *
 * Child protocol: `node sql-crash-child.js <dir> <seed> <clients>`; prints
 * `start <maxTxid>` once open, then `ack <txid>` lines; runs until killed.
 * Any unexpected error goes to stderr and exits non-zero.
 */
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { openCluster, type SqlSession } from '../../engine/index.js'
import { KV_CRASH_OPTIONS, mix, mulberry32 } from './kv-crash-child.js'

export { mix, mulberry32 }

export const ITEMS = 40
export const SQL_CRASH_OPTIONS = KV_CRASH_OPTIONS

export const SCHEMA = [
  'CREATE TABLE IF NOT EXISTS items (id INT PRIMARY KEY, owner INT NOT NULL, val INT NOT NULL, tag TEXT, ver INT NOT NULL)',
  'CREATE INDEX IF NOT EXISTS items_owner_val ON items (owner, val)',
  'CREATE UNIQUE INDEX IF NOT EXISTS items_tag ON items (tag)',
  'CREATE INDEX IF NOT EXISTS items_ver ON items (ver DESC)',
  'CREATE TABLE IF NOT EXISTS vers (id INT PRIMARY KEY, ver INT NOT NULL)',
  'CREATE TABLE IF NOT EXISTS txlog (txid INT PRIMARY KEY, client INT NOT NULL, writes TEXT NOT NULL)',
  'CREATE INDEX IF NOT EXISTS txlog_client ON txlog (client)',
]

export interface ItemRow { id: number; owner: number; val: number; tag: string | null; ver: number }

/** The row transaction `txid` writes for item `id`. */
export function itemRow(txid: number, id: number): ItemRow {
  const h = mix(txid, id)
  return { id, owner: h % 7, val: (h >>> 3) % 1000, tag: h % 5 === 0 ? null : `t${txid}-${id}`, ver: txid }
}

export type Write = [id: number, prev: number, action: 'w' | 'd']

async function oneTx(s: SqlSession, txid: number, client: number, ids: number[], deleteBias: number, rnd: () => number): Promise<void> {
  await s.sql('BEGIN')
  const writes: Write[] = []
  for (const id of ids) {
    const v = await s.sql<{ ver: number }>('SELECT ver FROM vers WHERE id = $1 FOR UPDATE', [id])
    const prev = v.rows.length ? v.rows[0].ver : 0
    const cur = await s.sql('SELECT id, owner, val, tag, ver FROM items WHERE id = $1 FOR UPDATE', [id])
    const r = itemRow(txid, id)
    if (cur.rows.length === 0) {
      await s.sql('INSERT INTO items (id, owner, val, tag, ver) VALUES ($1, $2, $3, $4, $5)', [id, r.owner, r.val, r.tag, r.ver])
      writes.push([id, prev, 'w'])
    } else if (rnd() < deleteBias) {
      const d = await s.sql('DELETE FROM items WHERE id = $1', [id])
      if (d.rowCount !== 1) throw new Error(`tx ${txid}: DELETE of item ${id} affected ${d.rowCount} rows`)
      writes.push([id, prev, 'd'])
    } else {
      const u = await s.sql('UPDATE items SET owner = $2, val = $3, tag = $4, ver = $5 WHERE id = $1', [id, r.owner, r.val, r.tag, r.ver])
      if (u.rowCount !== 1) throw new Error(`tx ${txid}: UPDATE of item ${id} affected ${u.rowCount} rows`)
      writes.push([id, prev, 'w'])
    }
    await s.sql('INSERT INTO vers (id, ver) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET ver = excluded.ver', [id, txid])
  }
  await s.sql('INSERT INTO txlog (txid, client, writes) VALUES ($1, $2, $3)', [txid, client, JSON.stringify(writes)])
  await s.sql('COMMIT')
}

async function main(): Promise<void> {
  const [dir, seedArg, clientsArg] = process.argv.slice(2)
  const seed = Number(seedArg) >>> 0
  const clients = Number(clientsArg)
  if (!dir || !Number.isInteger(clients) || clients < 1) throw new Error(`usage: sql-crash-child.js <dir> <seed> <clients>, got ${process.argv.slice(2).join(' ')}`)
  setTimeout(() => { process.stderr.write('sql-crash-child: not killed within 120 s, exiting\n'); process.exit(4) }, 120_000).unref()

  const cluster = await openCluster({ dir, ...SQL_CRASH_OPTIONS })
  const db = cluster.writer
  for (const ddl of SCHEMA) await db.sql(ddl)
  const max = Number((await db.sql('SELECT COALESCE(MAX(txid), 0) AS m FROM txlog')).rows[0].m)
  process.stdout.write(`start ${max}\n`)
  let next = max + 1
  const client = async (c: number): Promise<void> => {
    const rnd = mulberry32(mix(seed, max * 64 + c))
    const s = db.session()
    for (;;) {
      const txid = next++
      const n = 1 + Math.floor(rnd() * 4)
      const ids = [...new Set(Array.from({ length: n }, () => Math.floor(rnd() * ITEMS)))].sort((a, b) => a - b)
      for (let attempt = 0; ; attempt++) {
        try {
          await oneTx(s, txid, c, ids, 0.3, rnd)
          break
        } catch (err) {
          const st = (err as { sqlstate?: string }).sqlstate
          if (s.inTransaction) await s.sql('ROLLBACK')
          if ((st === '40001' || st === '40P01') && attempt < 50) continue
          throw new Error(`tx ${txid} (client ${c}, items ${ids.join(',')}), attempt ${attempt}: ${st ?? ''} ${(err as Error).stack ?? String(err)}`)
        }
      }
      process.stdout.write(`ack ${txid}\n`)
    }
  }
  await Promise.all(Array.from({ length: clients }, (_, c) => client(c)))
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch(err => {
    process.stderr.write(`sql-crash-child: ${(err as Error).stack ?? String(err)}\n`)
    process.exit(2)
  })
}
