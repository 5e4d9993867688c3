// Clones, backtrack and point-in-time restore, all at the storage layer.
// A clone shares every page with its parent until one side writes it; a
// backtrack rewinds a cluster in place; the continuous backup restores any
// moment of its window into a new cluster.
import { openCluster, restore } from 'hexad'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'hexad-example-clone-'))
const sleep = (ms: number) => new Promise(r => setTimeout(r, ms))
const prod = await openCluster({ dir: path.join(root, 'prod'), backtrackWindowMs: 3_600_000, backup: { store: path.join(root, 'backup'), intervalMs: 100 } })
try {
  await prod.writer.sql('CREATE TABLE accounts (id int PRIMARY KEY, balance int)')
  await prod.writer.sql('INSERT INTO accounts SELECT g, 100 FROM generate_series(1, 1000) AS g')
  const total = async (c: typeof prod) => (await c.writer.sql('SELECT sum(balance) AS s FROM accounts')).rows[0].s

  // A clone for an experiment: created without copying, isolated both ways.
  const t0 = performance.now()
  const test = await prod.clone({ dir: path.join(root, 'experiment') })
  console.log(`clone opened in ${Math.round(performance.now() - t0)} ms`)
  await test.writer.sql('UPDATE accounts SET balance = balance * 2')
  await prod.writer.sql('UPDATE accounts SET balance = balance + 1 WHERE id = 1')
  console.log(`prod total ${await total(prod)}, clone total ${await total(test)}`)
  await test.destroy()

  // A mistake, then backtrack to the moment before it.
  await sleep(200)
  const beforeMistake = new Date()
  await sleep(200)
  await prod.writer.sql('DELETE FROM accounts WHERE id > 10')
  console.log(`after the mistake: ${await total(prod)}`)
  const r = await prod.backtrack(beforeMistake)
  console.log(`backtracked ${r.pages} pages in ${Math.round(r.ms)} ms: ${await total(prod)}`)

  // Point-in-time restore of that same moment into a new cluster, from the backup.
  await prod.backup!.flush()
  const restored = await restore({ from: path.join(root, 'backup'), to: path.join(root, 'restored'), at: beforeMistake })
  const copy = await openCluster({ dir: path.join(root, 'restored') })
  console.log(`restored ${restored.pages} pages (LSN ${restored.lsn}): ${await total(copy)}`)
  await copy.close()
} finally {
  await prod.close()
  fs.rmSync(root, { recursive: true, force: true })
}
