// Every example in examples/ runs to completion and prints what it promises.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const examples = path.join(path.dirname(path.dirname(fileURLToPath(import.meta.url))), 'examples')

function run(file: string, args: string[] = [], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [path.join(examples, file), ...args], { encoding: 'utf8', timeout: 60_000, env: { ...process.env, ...env } })
  assert.is(r.status, 0, `${file} exited ${r.status}: ${r.stderr}`)
  return r.stdout
}

test('every example has a test here', () => {
  const files = fs.readdirSync(examples).filter(f => f.endsWith('.js')).sort()
  assert.equal(files, ['clone.js', 'counter-page.js', 'custom-compute-node.js', 'kv.js', 'main.js', 'server.js', 'sql.js'])
})

test('main: writes, reads, prints VDL and every segment with its AZ, and reopens its directory', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hexad-main-'))
  try {
    const first = run('main.js', [dir], { HEXAD_SECONDS: '0.5' })
    assert.match(first, /recovered VDL 0/)
    assert.match(first, /durable MTRs/)
    for (let id = 0; id < 6; id++) assert.match(first, new RegExp(`segment ${id}  AZ ${Math.floor(id / 2)}  up`))
    const vdl = Number(/VDL (\d+)/.exec(first.split('\n').find(l => l.startsWith('VDL'))!)![1])
    assert.ok(vdl > 0)
    // A second run recovers what the first one acknowledged.
    const second = run('main.js', [dir], { HEXAD_SECONDS: '0.2' })
    const recovered = Number(/recovered VDL (\d+)/.exec(second)![1])
    assert.ok(recovered >= vdl, `recovered VDL ${recovered} < ${vdl}`)
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
})

test('main: --help prints the usage; a flag or a bad HEXAD_SECONDS exits 2; neither opens a volume', () => {
  const cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'hexad-main-cwd-'))
  try {
    const spawn = (args: string[], env: Record<string, string> = {}) =>
      spawnSync(process.execPath, [path.join(examples, 'main.js'), ...args], { cwd, encoding: 'utf8', timeout: 60_000, env: { ...process.env, ...env } })
    const help = spawn(['--help'])
    assert.is(help.status, 0, help.stderr)
    assert.match(help.stdout, /^usage: npm start \[-- DIR\]/)
    const flag = spawn(['--dir'])
    assert.is(flag.status, 2)
    assert.match(flag.stdout, /^usage: npm start/)
    const secs = spawn([path.join(cwd, 'd')], { HEXAD_SECONDS: 'two' })
    assert.is(secs.status, 2)
    assert.match(secs.stderr, /HEXAD_SECONDS must be a number of seconds above 0, got "two"/)
    assert.equal(fs.readdirSync(cwd), [], 'no directory was made (not ./data, not ./--help)')
  } finally {
    fs.rmSync(cwd, { recursive: true, force: true })
  }
})

test('counter-page: a read at an older read point sees the older value', () => {
  const out = run('counter-page.js')
  assert.match(out, /counter 0 now 15, at LSN \d+ it was 5; counter 1 now 1/)
})

/** Runs an example that works in a temporary directory named `prefix`..., and checks it removed it. */
function runCleanly(file: string, prefix: string): string {
  const mine = () => fs.readdirSync(os.tmpdir()).filter(f => f.startsWith(prefix))
  const before = mine()
  const out = run(file)
  assert.equal(mine().filter(f => !before.includes(f)), [], `${file} left its directory behind`)
  return out
}

test('clone: a clone isolated both ways, a backtrack and a point-in-time restore of the same moment; removes its directory', () => {
  const out = runCleanly('clone.js', 'hexad-example-clone-')
  assert.match(out, /clone opened in \d+ ms/)
  assert.match(out, /prod total 100001, clone total 200000\n/)
  assert.match(out, /after the mistake: 1001\n/)
  assert.match(out, /backtracked \d+ pages in \d+ ms: 100001\n/)
  assert.match(out, /restored \d+ pages \(LSN \d+\): 100001\n/)
})

test('kv: put/get, scan, batch, overflow values, transactions with retries, keyspaces, bad input, verify, stats; removes its directory', () => {
  const out = runCleanly('kv.js', 'hexad-example-kv-')
  assert.match(out, /get fruit:banana -> yellow/)
  // the batch put damson and deleted apple, atomically
  assert.match(out, /scan fruit: -> fruit:banana, fruit:cherry, fruit:damson\n/)
  assert.match(out, /reverse, limit 2 -> fruit:damson=purple, fruit:cherry=dark red\n/)
  assert.match(out, /blob -> 100000 bytes/)
  // four racing optimistic increments all land (the losers retried), then +10 under a lock
  assert.match(out, /4 concurrent increments -> counter 4 \(\d+ retries after conflicts\)/)
  assert.match(out, /keyspace users: u:1 -> \{"name":"Ada"\}; counter -> 14/)
  assert.match(out, /bad input -> HEXAD_BAD_INPUT: .*key/)
  const verify = /verify -> ok (\w+), keyspaces default:(\d+) keys, users:1 keys, free pages (\d+)/.exec(out)
  assert.ok(verify, `no verify line in:\n${out}`)
  assert.is(verify![1], 'true')
  assert.is(verify![2], '4') // banana, cherry, damson, counter
  assert.ok(Number(verify![3]) > 0, 'the deleted blob\'s overflow pages are on the free list')
  assert.match(out, /stats -> \d+ commits, \d+ MTRs, \d+ redo bytes/)
  assert.match(out, /closed/)
})

test('custom-compute-node: a hash table on the volume API survives close and reopen; removes its directory', () => {
  const out = runCleanly('custom-compute-node.js', 'hexad-hashtable-')
  assert.match(out, /wrote 8 MTRs; table holds 4 entries/)
  assert.match(out, /reopened at epoch 2, VDL \d+: header says 4 entries/)
  assert.match(out, /apple -> red, pear -> \(deleted\), plum -> purple/)
  assert.match(out, /entries: apple=red, banana=yellow, cherry=red, plum=purple/)
})

test('sql: tables, an index range scan, a join with GROUP BY, a rolled-back session, a SQLSTATE, MySQL syntax, a reopen; removes its directory', () => {
  const out = runCleanly('sql.js', 'hexad-example-sql-')
  assert.match(out, /after 1965 -> A Wizard of Earthsea \(1968\), The Dispossessed \(1974\)\n/)
  assert.match(out, /plan -> .*Index Range Scan on book using index book_year \(year > \?\)/)
  assert.match(out, /per author -> Le Guin: 2 books, 17\.49; Lem: 1 books, 8\.25\n/)
  assert.match(out, /after ROLLBACK -> 3 books, Solaris 8\.25\n/)
  assert.match(out, /error -> 23505: duplicate key value violates unique constraint "author_pkey"/)
  assert.match(out, /mysql -> The Dispossessed\n/)
  assert.match(out, /reopened -> The Dispossessed, A Wizard of Earthsea, Solaris\n/)
  assert.match(out, /closed/)
})

test('server: PostgreSQL and MySQL endpoints on free ports, pg and mysql2 clients on one table; removes its directory', () => {
  const out = runCleanly('server.js', 'hexad-example-server-')
  assert.match(out, /listening -> PostgreSQL on \d+, MySQL on \d+\n/)
  assert.match(out, /pg -> Earth \(1\), Mars \(2\)\n/)
  assert.match(out, /mysql -> 3 planets, 98 moons\n/)
  assert.match(out, /mysql error -> 1146 \(42S02\)\n/)
  assert.match(out, /closed/)
})

test.run()
