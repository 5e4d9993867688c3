/**
 * The `hexad` command, spawned as a user runs it (node dist/engine/cli/hexad.js):
 * `sql` prints tables and exits 1 on a SQL error, `status` reports VDL,
 * segments and AZ health, `--help` on each command, unknown flags and
 * missing values exit 2 with a message, and `serve` logs one line per
 * listener, serves a pg client, and stops cleanly on SIGTERM and SIGINT;
 * `serve --backup --backtrack-window`, then `restore --list / --at`,
 * `backtrack --to`, `clone` and `destroy` work from the command line.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { spawn, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import pg from 'pg'

const BIN = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'engine', 'cli', 'hexad.js')
const dirs: string[] = []
const tmp = () => { const d = fs.mkdtempSync(path.join(os.tmpdir(), 'hexad-cli-')); dirs.push(d); return d }
const run = (...args: string[]) => spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 60_000 })

test.after(() => { for (const d of dirs) fs.rmSync(d, { recursive: true, force: true }) })

test('sql: runs statements in process and prints a table; a SQL error exits 1 with its SQLSTATE', () => {
  const dir = tmp()
  const r = run('sql', '--dir', dir, "CREATE TABLE pets (id int PRIMARY KEY, name text); INSERT INTO pets VALUES (1, 'rex'), (20, NULL); SELECT * FROM pets ORDER BY id")
  assert.is(r.status, 0, r.stderr)
  assert.is(r.stdout, [
    'CREATE TABLE',
    'INSERT 2',
    ' id | name',
    '----+------',
    '  1 | rex',
    ' 20 |',
    '(2 rows)',
    '',
  ].join('\n'))
  // the data is durable: a second process sees it
  const again = run('sql', '--dir', dir, 'SELECT count(*) AS n FROM pets')
  assert.ok(/\n +2\n\(1 row\)/.test(again.stdout), again.stdout)
  const bad = run('sql', '--dir', dir, 'SELECT * FROM nowhere')
  assert.is(bad.status, 1)
  assert.ok(bad.stderr.includes('42P01'), bad.stderr)
})

test('status: VDL, segments, AZ health, sizes; --json is parseable', () => {
  const dir = tmp()
  assert.is(run('sql', '--dir', dir, 'CREATE TABLE t (k int PRIMARY KEY)').status, 0)
  const r = run('status', '--dir', dir)
  assert.is(r.status, 0, r.stderr)
  assert.ok(/VDL +\d+/.test(r.stdout), r.stdout)
  assert.ok(r.stdout.includes('AZ 0: 2/2 up, AZ 1: 2/2 up, AZ 2: 2/2 up'), r.stdout)
  assert.is(r.stdout.split('\n').filter(l => /^ +\d \| +\d \| up /.test(l)).length, 6, r.stdout)
  const j = JSON.parse(run('status', '--dir', dir, '--json').stdout)
  assert.is(j.segments.length, 6)
  assert.ok(j.volume.vdl > 0)
  assert.ok(j.keyspaces.includes('sql:catalog'))
})

test('--help on each command; bad flags and values exit 2 with a clear message', () => {
  for (const cmd of ['serve', 'sql', 'status', 'clone', 'backtrack', 'restore', 'destroy']) {
    const r = run(cmd, '--help')
    assert.is(r.status, 0)
    assert.ok(r.stdout.startsWith(`Usage: hexad ${cmd}`), r.stdout)
  }
  assert.ok(run('--help').stdout.includes('Commands:'))
  const cases: Array<[string[], RegExp]> = [
    [['serve', '--dir', 'x', '--pg', '5432', '--bogus'], /unknown option --bogus/],
    [['serve', '--dir', 'x', '--pg', 'abc'], /--pg must be a port number/],
    [['serve', '--dir', 'x'], /nothing to serve/],
    [['serve', '--dir', 'x', '--mysql', '70000'], /--mysql must be a port number/],
    [['serve', '--dir', 'x', '--pg', '0', '--segment-nice', '20'], /--segment-nice must be an integer 0\.\.19, got "20"/],
    [['serve', '--pg', '1'], /--dir DIR is required/],
    [['serve', '--dir', 'x', '--mysql', '0', '--pg-socket', '/tmp'], /--pg-socket needs --pg PORT/],
    [['serve', '--dir', 'x', '--pg', '0', '--pg-socket', '/nonexistent/sockets'], /--pg-socket \/nonexistent\/sockets: ENOENT/],
    [['serve', '--dir', 'x', '--pg', '0', '--pg-socket', BIN], /--pg-socket .*hexad\.js is not a directory/],
    [['sql', '--dir'], /--dir needs a value/],
    [['sql', '--dir', 'x'], /no statement given/],
    [['frobnicate'], /unknown command "frobnicate"/],
    [['status', '--dir', '/nonexistent/hexad'], /no cluster at/],
    [['clone', '--dir', '/nonexistent/hexad', '--to', 'y'], /no cluster at/],
    [['backtrack', '--dir', '/tmp', '--to', 'yesterday'], /--to must be an ISO 8601 time/],
    [['restore', '--from', '/nonexistent/backup', '--list'], /no backup at/],
    [['restore', '--to', 'x'], /--from BACKUP is required/],
  ]
  for (const [args, re] of cases) {
    const r = run(...args)
    assert.is(r.status, 2, args.join(' '))
    assert.ok(re.test(r.stderr), `${args.join(' ')}: ${r.stderr}`)
  }
})

async function serveAndStop(signal: NodeJS.Signals): Promise<void> {
  const dir = tmp()
  const child = spawn(process.execPath, [BIN, 'serve', '--dir', dir, '--pg', '0', '--user', 'app:pw'], { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  child.stdout.on('data', d => { out += d })
  child.stderr.on('data', d => { out += d })
  const exited = new Promise<number | null>(resolve => child.on('exit', code => resolve(code)))
  try {
    const deadline = Date.now() + 30_000
    while (!/listening on 127\.0\.0\.1:(\d+)/.test(out)) {
      if (Date.now() > deadline || child.exitCode !== null) throw new Error(`no listening line: ${out}`)
      await new Promise(r => setTimeout(r, 50))
    }
    const port = Number(/listening on 127\.0\.0\.1:(\d+)/.exec(out)![1])
    assert.is(out.split('\n').filter(l => l.includes('listening')).length, 1)
    if (process.platform === 'linux') {
      // serve's segment threads give way to its main thread (SERVE_SEGMENT_NICE): six at nice 10 or the process's own if higher
      const niceOf = (t: string) => {
        const stat = fs.readFileSync(`/proc/${child.pid}/task/${t}/stat`, 'utf8')
        return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16])
      }
      const nices = fs.readdirSync(`/proc/${child.pid}/task`).map(niceOf)
      const own = niceOf(String(child.pid))
      if (own < 10) assert.is(nices.filter(n => n === 10).length, 6, `thread nice values of hexad serve: ${nices}`)
    }
    const c = new pg.Client({ host: '127.0.0.1', port, user: 'app', password: 'pw' })
    await c.connect()
    await c.query('CREATE TABLE s (k int PRIMARY KEY)')
    await c.query('INSERT INTO s VALUES (1), (2)')
    const ended = new Promise(resolve => c.on('error', resolve))
    child.kill(signal)
    assert.is(await exited, 0, out)
    await ended
    assert.ok(out.includes(`${signal}: closing`) && out.includes('hexad: stopped'), out)
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL')
  }
  // what the clients committed is there after the stop
  const r = run('sql', '--dir', dir, 'SELECT count(*) AS n FROM s')
  assert.ok(/\n +2\n/.test(r.stdout), r.stdout + r.stderr)
}

test('serve with --backup and --backtrack-window; backtrack, restore (--list, --at), clone and destroy from the command line', async () => {
  const root = tmp()
  const dir = path.join(root, 'db'), backup = path.join(root, 'backup')
  const child = spawn(process.execPath, [BIN, 'serve', '--dir', dir, '--pg', '0', '--backup', backup, '--backtrack-window', '3600'], { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  child.stdout.on('data', d => { out += d })
  child.stderr.on('data', d => { out += d })
  const exited = new Promise<number | null>(resolve => child.on('exit', code => resolve(code)))
  let moment = ''
  try {
    const deadline = Date.now() + 30_000
    while (!/listening on 127\.0\.0\.1:(\d+)/.test(out)) {
      if (Date.now() > deadline || child.exitCode !== null) throw new Error(`no listening line: ${out}`)
      await new Promise(r => setTimeout(r, 50))
    }
    assert.ok(out.includes(`continuous backup into ${backup}`) && out.includes('backtrack window 3600 s'), out)
    const port = Number(/listening on 127\.0\.0\.1:(\d+)/.exec(out)![1])
    const c = new pg.Client({ host: '127.0.0.1', port, user: 'dev' })
    await c.connect()
    await c.query('CREATE TABLE s (k int PRIMARY KEY)')
    await c.query('INSERT INTO s VALUES (1), (2)')
    // The backup uploads every second: the moment lies between uploads with no write in between
    // (2.5 s each side, so a tick delayed by a busy machine still lands inside).
    await new Promise(r => setTimeout(r, 2500))
    moment = new Date().toISOString()
    await new Promise(r => setTimeout(r, 2500))
    await c.query('INSERT INTO s VALUES (3), (4), (5)')
    await c.end()
    child.kill('SIGTERM')
    assert.is(await exited, 0, out)
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL')
  }
  const count = (d: string) => { const r = run('sql', '--dir', d, 'SELECT count(*) AS n FROM s'); assert.is(r.status, 0, r.stderr); return Number(/\n +(\d+)\n/.exec(r.stdout)![1]) }
  assert.is(count(dir), 5)
  const list = run('restore', '--from', backup, '--list')
  assert.is(list.status, 0, list.stderr)
  assert.match(list.stdout, /^oldest  \S+  LSN \d+\nlatest  \S+  LSN \d+\n/)
  const restored = run('restore', '--from', backup, '--to', path.join(root, 'r'), '--at', moment)
  assert.is(restored.status, 0, restored.stderr)
  assert.match(restored.stdout, /^restored .* as of .* \(LSN \d+\): \d+ pages/)
  assert.is(count(path.join(root, 'r')), 2, 'the restore is the moment before the last insert')
  const bt = run('backtrack', '--dir', dir, '--to', moment)
  assert.is(bt.status, 0, bt.stderr)
  assert.match(bt.stdout, /^backtracked .* from LSN \d+ to LSN \d+: \d+ pages/)
  assert.is(count(dir), 2, 'backtracked in place')
  const cl = run('clone', '--dir', dir, '--to', path.join(root, 'c'))
  assert.is(cl.status, 0, cl.stderr)
  assert.is(count(path.join(root, 'c')), 2)
  assert.match(run('status', '--dir', dir).stdout, /clones +.*\/c \(LSN \d+\)/)
  assert.match(run('destroy', '--dir', dir).stdout, /^kept .*db \(destroyed; clones still read through it\)/)
  assert.is(count(path.join(root, 'c')), 2, 'the clone reads through its destroyed parent')
  const d2 = run('destroy', '--dir', path.join(root, 'c'))
  assert.match(d2.stdout, /removed .*\/c\nremoved .*\/db\n/)
})

test('serve: one log line per listener, serves clients, stops cleanly on SIGTERM', () => serveAndStop('SIGTERM'))
test('serve: stops cleanly on SIGINT', () => serveAndStop('SIGINT'))

test.run()
