// The built-in compute node end to end: a transactional, ordered key-value
// store on the volume. Every write below is durable (4 of 6 segments) when
// its promise resolves.
import { openCluster, HexadError } from 'hexad'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hexad-example-kv-'))
const cluster = await openCluster({ dir })
const db = cluster.writer
try {
  await db.put('fruit:apple', 'red')
  await db.put('fruit:banana', 'yellow')
  await db.put('fruit:cherry', 'dark red')
  console.log(`get fruit:banana -> ${await db.getString('fruit:banana')}`)

  // One atomic batch: both ops or neither.
  await db.batch([
    { type: 'put', key: 'fruit:damson', value: 'purple' },
    { type: 'del', key: 'fruit:apple' },
  ])
  const names: string[] = []
  for await (const [k] of db.scan({ gte: 'fruit:', lt: 'fruit;' })) names.push(Buffer.from(k).toString())
  console.log(`scan fruit: -> ${names.join(', ')}`)
  const last: string[] = []
  for await (const [k, v] of db.scan({ gte: 'fruit:', lt: 'fruit;', reverse: true, limit: 2 })) last.push(`${Buffer.from(k)}=${Buffer.from(v)}`)
  console.log(`reverse, limit 2 -> ${last.join(', ')}`)

  // Values larger than a quarter page go to overflow pages, transparently.
  await db.put('blob', new Uint8Array(100_000).fill(7))
  console.log(`blob -> ${(await db.get('blob'))!.length} bytes`)
  await db.del('blob') // its overflow pages go to the free list

  // Serializable transactions. Four optimistic read-modify-writes of one key race:
  // the losers fail validation (HEXAD_CONFLICT) and run again, up to `retries` times.
  await db.put('counter', '0')
  await Promise.all([1, 2, 3, 4].map(() => db.transaction(async tx => {
    const n = Number(await tx.getString('counter'))
    await tx.put('counter', String(n + 1))
  }, { retries: 5 })))
  console.log(`4 concurrent increments -> counter ${await db.getString('counter')} (${db.stats().retries} retries after conflicts)`)

  // A keyspace is its own ordered key space in the same volume; a transaction can span several.
  const users = db.keyspace('users')
  await db.transaction(async tx => {
    await tx.keyspace('users').put('u:1', JSON.stringify({ name: 'Ada' }))
    const n = Number(Buffer.from((await tx.getForUpdate('counter'))!).toString()) // a locking read: queues instead of conflicting
    await tx.put('counter', String(n + 10))
  })
  console.log(`keyspace users: u:1 -> ${await users.getString('u:1')}; counter -> ${await db.getString('counter')}`)

  // Errors name what was wrong, and leave the database open.
  try {
    await db.put('', 'empty key')
  } catch (err) {
    if (!(err instanceof HexadError)) throw err
    console.log(`bad input -> ${err.code}: ${err.message}`)
  }

  const report = await db.verify()
  console.log(`verify -> ok ${report.ok}, keyspaces ${report.keyspaces.map(k => `${k.name}:${k.keys} keys`).join(', ')}, free pages ${report.freePages}`)
  const s = db.stats()
  console.log(`stats -> ${s.commits} commits, ${s.mtrs} MTRs, ${s.redoBytes} redo bytes, cache ${s.cache.hits} hits / ${s.cache.misses} misses, VDL ${s.vdl}`)
} finally {
  await cluster.close()
  fs.rmSync(dir, { recursive: true, force: true })
}
console.log('closed')
