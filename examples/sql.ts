// The SQL front: tables, indexes, joins, aggregates, a transaction in a
// session, and errors with SQLSTATE codes, on the same durable volume.
import { openCluster, SqlError } from 'hexad'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hexad-example-sql-'))
let cluster = await openCluster({ dir })
try {
  const db = cluster.writer
  await db.sql('CREATE TABLE author (id INT PRIMARY KEY, name TEXT NOT NULL)')
  await db.sql('CREATE TABLE book (id INT PRIMARY KEY, author_id INT, title TEXT, year INT, price NUMERIC(6,2))')
  await db.sql('CREATE INDEX book_year ON book (year)')
  await db.sql("INSERT INTO author VALUES (1, 'Le Guin'), (2, 'Lem')")
  await db.sql('INSERT INTO book VALUES ($1, $2, $3, $4, $5)', [10, 1, 'The Dispossessed', 1974, '9.99'])
  await db.sql("INSERT INTO book VALUES (11, 1, 'A Wizard of Earthsea', 1968, 7.50), (12, 2, 'Solaris', 1961, 8.25)")

  const { rows } = await db.sql('SELECT title, year FROM book WHERE year > $1 ORDER BY year', [1965])
  console.log(`after 1965 -> ${rows.map(r => `${r.title} (${r.year})`).join(', ')}`)
  const plan = await db.sql('EXPLAIN SELECT title FROM book WHERE year > 1965')
  console.log(`plan -> ${plan.rows.map(r => String(r['QUERY PLAN']).trim()).join(' | ')}`)
  const agg = await db.sql('SELECT a.name, COUNT(*) AS books, SUM(b.price) AS total FROM author a JOIN book b ON b.author_id = a.id GROUP BY a.name ORDER BY a.name')
  console.log(`per author -> ${agg.rows.map(r => `${r.name}: ${r.books} books, ${r.total}`).join('; ')}`)

  // A session keeps a transaction open across statements (BEGIN ... COMMIT).
  const s = db.session()
  await s.sql('BEGIN')
  await s.sql('UPDATE book SET price = price * 2 WHERE id = 12 RETURNING price')
  await s.sql('DELETE FROM book WHERE id = 11')
  await s.sql('ROLLBACK')
  console.log(`after ROLLBACK -> ${(await db.sql('SELECT COUNT(*) AS n FROM book')).rows[0].n} books, Solaris ${(await db.sql('SELECT price FROM book WHERE id = 12')).rows[0].price}`)
  await s.close()

  // Errors carry a SQLSTATE and leave the database usable.
  try {
    await db.sql("INSERT INTO author VALUES (1, 'duplicate')")
  } catch (err) {
    if (!(err instanceof SqlError)) throw err
    console.log(`error -> ${err.sqlstate}: ${err.message}`)
  }

  // MySQL syntax on the same tables, per call (or for the cluster: openCluster({ dialect: 'mysql' })).
  const my = await db.sql('SELECT `title` FROM book WHERE id = ? LIMIT 0, 1', [10], { dialect: 'mysql' })
  console.log(`mysql -> ${my.rows[0].title}`)
} finally {
  await cluster.close()
}
// The catalog and the rows are in the volume: a reopen finds them.
cluster = await openCluster({ dir })
try {
  console.log(`reopened -> ${(await cluster.writer.sql('SELECT title FROM book ORDER BY id')).rows.map(r => r.title).join(', ')}`)
} finally {
  await cluster.close()
  fs.rmSync(dir, { recursive: true, force: true })
}
console.log('closed')
