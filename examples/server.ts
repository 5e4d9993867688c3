// The wire endpoints: one cluster served over the PostgreSQL and the MySQL
// protocol at once (free ports), used by the ordinary clients `pg` and `mysql2`.
// From a shell: `hexad serve --dir ./data --pg 5432 --mysql 3306`.
import { openCluster, serve } from 'hexad'
import mysql from 'mysql2/promise'
import pg from 'pg'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hexad-example-server-'))
const cluster = await openCluster({ dir })
// No users: every login is trusted (local development). With users, PostgreSQL
// clients log in with SCRAM-SHA-256 and MySQL clients with mysql_native_password.
const endpoints = await serve(cluster, { pg: { port: 0 }, mysql: { port: 0 } })
console.log(`listening -> PostgreSQL on ${endpoints.pg!.port}, MySQL on ${endpoints.mysql!.port}`)
try {
  const client = new pg.Client({ host: '127.0.0.1', port: endpoints.pg!.port, user: 'app', database: 'app' })
  await client.connect()
  await client.query('CREATE TABLE planet (id int PRIMARY KEY, name text NOT NULL, moons int)')
  await client.query('INSERT INTO planet VALUES ($1, $2, $3), ($4, $5, $6)', [3, 'Earth', 1, 4, 'Mars', 2])
  const { rows } = await client.query('SELECT name, moons FROM planet WHERE moons >= $1 ORDER BY id', [1])
  console.log(`pg -> ${rows.map(r => `${r.name} (${r.moons})`).join(', ')}`)
  await client.end()

  // The same table through the MySQL protocol: a prepared statement (binary protocol) and a transaction.
  const my = await mysql.createConnection({ host: '127.0.0.1', port: endpoints.mysql!.port, user: 'app' })
  await my.beginTransaction()
  await my.execute('INSERT INTO planet VALUES (?, ?, ?)', [5, 'Jupiter', 95])
  await my.commit()
  const [total] = await my.execute('SELECT COUNT(*) AS n, SUM(moons) AS moons FROM planet') as [Array<{ n: number; moons: number }>, unknown]
  console.log(`mysql -> ${total[0].n} planets, ${total[0].moons} moons`)
  try {
    await my.query('SELECT * FROM pluto')
  } catch (err) {
    const e = err as { errno: number; sqlState: string }
    console.log(`mysql error -> ${e.errno} (${e.sqlState})`)
  }
  await my.end()
} finally {
  await endpoints.close()
  await cluster.close()
  fs.rmSync(dir, { recursive: true, force: true })
}
console.log('closed')
