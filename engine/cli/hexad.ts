#!/usr/bin/env node
/**
 * The `hexad` command.
 *
 *   hexad serve  --dir DIR [--pg PORT [--pg-socket DIR]] [--mysql PORT] [--host ADDR] [--user NAME:PASSWORD]... [--tls-key FILE --tls-cert FILE]
 *   hexad sql    --dir DIR [--dialect postgres|mysql] "STATEMENT; ..."
 *   hexad status --dir DIR [--json]
 *   hexad clone  --dir DIR --to DIR
 *   hexad backtrack --dir DIR --to TIME|LSN [--window SEC]
 *   hexad restore --from BACKUP --to DIR [--at TIME|LSN]   |   hexad restore --from BACKUP --list
 *   hexad destroy --dir DIR
 *
 * Exit codes: 0 done, 1 a runtime error (SQL error, cluster cannot open), 2 bad usage.
 */
import fs from 'node:fs'
import { destroyCluster, openCluster, type Cluster, type ClusterOptions } from '../compute/index.js'
import { restorableWindow, restore } from '../backup/index.js'
import { splitStatements } from '../sql/index.js'
import { serve, SERVE_SEGMENT_NICE, type Endpoints, type ServeOptions } from '../server/index.js'

class UsageError extends Error {}

const HELP: Record<string, string> = {
  main: `hexad: an Aurora-like storage engine with PostgreSQL and MySQL endpoints

Usage: hexad <command> [options]

Commands:
  serve    open a cluster and serve it over the PostgreSQL and/or MySQL protocol
  sql      run SQL statements in process and print the results
  status   print the volume's state: VDL, segments, AZ health, sizes, clones, backtrack window
  clone    make a copy-on-write clone of a cluster (no page is copied)
  backtrack rewind a cluster in place to a moment of its backtrack window
  restore  restore a cluster from a continuous backup to a moment (point-in-time), or list the window
  destroy  delete a cluster (kept, marked destroyed, while clones read through it)

Run "hexad <command> --help" for a command's options.`,
  serve: `Usage: hexad serve --dir DIR [--pg PORT] [--mysql PORT] [options]

Opens (or creates) the cluster in DIR and listens until SIGINT or SIGTERM.

Options:
  --dir DIR              the cluster's directory (required)
  --pg PORT              PostgreSQL protocol port (0: any free port)
  --pg-socket DIR        also listen on a Unix-domain socket DIR/.s.PGSQL.PORT, as PostgreSQL
                         does (psql -h DIR, PGHOST=DIR)
  --mysql PORT           MySQL protocol port (0: any free port); prepared statements, mysql_native_password
  --host ADDR            address to listen on (default 127.0.0.1)
  --user NAME:PASSWORD   a user allowed to log in (repeatable); with users, logins need
                         the password (PostgreSQL: SCRAM-SHA-256, MySQL: mysql_native_password).
                         Without any --user, every login is trusted (local development only).
  --tls-key FILE         PEM private key; with --tls-cert, PostgreSQL and MySQL clients may use TLS
  --tls-cert FILE        PEM certificate
  --max-connections N    per endpoint (default 100)
  --idle-timeout SEC     close sessions idle this long (default 0: never)
  --backup DIR           continuous backup into DIR (point-in-time restore: hexad restore)
  --backtrack-window SEC keep this much history for hexad backtrack (default 0: off)
  --segment-nice N       niceness of the segment threads, 0..19 (default 10: the endpoints'
                         thread goes first; 0 leaves them at the process's priority; Linux)
  -h, --help             this text`,
  clone: `Usage: hexad clone --dir DIR --to DIR

Creates a copy-on-write clone of the cluster in --dir as of now: a new
cluster in --to that shares every page with it until one side writes it.
The source stays on disk (even after destroy) while the clone reads through it.

  --dir DIR              the source cluster (required)
  --to DIR               the clone's directory: must not exist or be empty (required)
  -h, --help             this text`,
  backtrack: `Usage: hexad backtrack --dir DIR --to TIME|LSN [--window SEC]

Rewinds the cluster in place to its state at TIME (ISO 8601, e.g.
2026-11-27T12:00:00Z) or LSN. Needs the history a server kept with
--backtrack-window; later moments stay, so it can go forward again.

  --dir DIR              the cluster (required; not open elsewhere)
  --to TIME|LSN          the moment or LSN (required)
  --window SEC           how far back to allow (default 86400)
  -h, --help             this text`,
  restore: `Usage: hexad restore --from BACKUP --to DIR [--at TIME|LSN]
       hexad restore --from BACKUP --list

Restores the backed-up cluster as it was at TIME (ISO 8601) or LSN (default:
the latest restorable moment) into a new cluster directory. --list prints
the restorable window instead.

  --from BACKUP          the backup directory (hexad serve --backup)
  --to DIR               the new cluster's directory: must not exist or be empty
  --at TIME|LSN          the moment (default: latest)
  --list                 print the oldest and latest restorable moments and any gaps
  -h, --help             this text`,
  destroy: `Usage: hexad destroy --dir DIR

Deletes a closed cluster's files. While clones read through it, it is only
marked destroyed (it cannot be opened again) and goes with its last clone.

  --dir DIR              the cluster (required)
  -h, --help             this text`,
  sql: `Usage: hexad sql --dir DIR [--dialect postgres|mysql] "STATEMENT[; STATEMENT ...]"

Runs the statements in process, one session, and prints each result as a table.

Options:
  --dir DIR              the cluster's directory (required)
  --dialect D            postgres (default) or mysql
  -h, --help             this text`,
  status: `Usage: hexad status --dir DIR [--json]

Opens the cluster in DIR and prints the volume's epoch, VCL/VDL, each segment's
AZ, health, SCL and sizes, and the writer's key-value statistics.

Options:
  --dir DIR              the cluster's directory (required)
  --json                 print one JSON object instead of tables
  -h, --help             this text`,
}

interface Flags { [name: string]: string[] }

const SPEC: Record<string, Record<string, 'value' | 'bool'>> = {
  serve: { dir: 'value', pg: 'value', 'pg-socket': 'value', mysql: 'value', host: 'value', user: 'value', 'tls-key': 'value', 'tls-cert': 'value', 'max-connections': 'value', 'idle-timeout': 'value', backup: 'value', 'backtrack-window': 'value', 'segment-nice': 'value', help: 'bool' },
  sql: { dir: 'value', dialect: 'value', help: 'bool' },
  status: { dir: 'value', json: 'bool', help: 'bool' },
  clone: { dir: 'value', to: 'value', help: 'bool' },
  backtrack: { dir: 'value', to: 'value', window: 'value', help: 'bool' },
  restore: { from: 'value', to: 'value', at: 'value', list: 'bool', help: 'bool' },
  destroy: { dir: 'value', help: 'bool' },
}

/** A moment (ISO 8601) or an LSN (digits). */
function momentOf(flag: string, v: string): Date | number {
  if (/^\d+$/.test(v)) return Number(v)
  const d = new Date(v)
  if (Number.isNaN(d.getTime())) throw new UsageError(`--${flag} must be an ISO 8601 time (2026-11-27T12:00:00Z) or an LSN, got "${v}"`)
  return d
}

function existingCluster(flags: Flags): string {
  const dir = dirOf(flags)
  if (!fs.existsSync(dir)) throw new UsageError(`no cluster at ${dir} (the directory does not exist)`)
  return dir
}

function parseArgs(cmd: string, argv: string[]): { flags: Flags; rest: string[] } {
  const spec = SPEC[cmd]
  const flags: Flags = {}
  const rest: string[] = []
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    if (a === '-h') { flags.help = ['true']; continue }
    if (a === '--') { rest.push(...argv.slice(i + 1)); break }
    if (!a.startsWith('--')) { rest.push(a); continue }
    const eq = a.indexOf('=')
    const name = a.slice(2, eq < 0 ? undefined : eq)
    const kind = spec[name]
    if (!kind) throw new UsageError(`unknown option --${name} for "hexad ${cmd}" (see hexad ${cmd} --help)`)
    let value: string
    if (kind === 'bool') {
      if (eq >= 0) throw new UsageError(`--${name} takes no value`)
      value = 'true'
    } else if (eq >= 0) value = a.slice(eq + 1)
    else {
      if (i + 1 >= argv.length || argv[i + 1].startsWith('--')) throw new UsageError(`--${name} needs a value`)
      value = argv[++i]
    }
    ;(flags[name] ??= []).push(value)
  }
  return { flags, rest }
}

function one(flags: Flags, name: string): string | undefined {
  const v = flags[name]
  if (v && v.length > 1) throw new UsageError(`--${name} given ${v.length} times`)
  return v?.[0]
}

function port(flags: Flags, name: string): number | undefined {
  const v = one(flags, name)
  if (v === undefined) return undefined
  const n = Number(v)
  if (!/^\d+$/.test(v) || n > 65535) throw new UsageError(`--${name} must be a port number 0-65535, got "${v}"`)
  return n
}

function positive(flags: Flags, name: string): number | undefined {
  const v = one(flags, name)
  if (v === undefined) return undefined
  const n = Number(v)
  if (!/^\d+(\.\d+)?$/.test(v)) throw new UsageError(`--${name} must be a non-negative number, got "${v}"`)
  return n
}

function dirOf(flags: Flags): string {
  const dir = one(flags, 'dir')
  if (!dir) throw new UsageError('--dir DIR is required')
  return dir
}

// ------------------------------------------------------------------ output

function cell(v: unknown): string {
  if (v === null || v === undefined) return ''
  if (v instanceof Date) return v.toISOString().replace('T', ' ').replace(/\.000Z$|Z$/, '')
  if (Buffer.isBuffer(v)) return '\\x' + v.toString('hex')
  if (typeof v === 'object') return JSON.stringify(v)
  if (typeof v === 'boolean') return v ? 't' : 'f'
  return String(v)
}

/** A psql-style aligned table. */
export function formatTable(columns: string[], rows: unknown[][]): string {
  const cells = rows.map(r => r.map(cell))
  const width = columns.map((c, i) => Math.max(c.length, ...cells.map(r => r[i].length)))
  const line = (vals: string[], right: boolean[]) => ' ' + vals.map((v, i) => right[i] ? v.padStart(width[i]) : v.padEnd(width[i])).join(' | ').trimEnd()
  const numeric = columns.map((_, i) => rows.length > 0 && rows.every(r => r[i] === null || typeof r[i] === 'number' || typeof r[i] === 'bigint'))
  const out = [line(columns.map((c, i) => c.padStart(Math.floor((width[i] + c.length) / 2)).padEnd(width[i])), columns.map(() => false)), width.map(w => '-'.repeat(w + 2)).join('+')]
  for (const r of cells) out.push(line(r, numeric))
  out.push(`(${rows.length} row${rows.length === 1 ? '' : 's'})`)
  return out.join('\n')
}

function bytes(n: number): string {
  if (n < 1024) return `${n} B`
  if (n < 1 << 20) return `${(n / 1024).toFixed(1)} KiB`
  if (n < 1 << 30) return `${(n / (1 << 20)).toFixed(1)} MiB`
  return `${(n / (1 << 30)).toFixed(2)} GiB`
}

// ------------------------------------------------------------------ commands

async function cmdSql(flags: Flags, rest: string[]): Promise<number> {
  const dir = dirOf(flags)
  const dialect = one(flags, 'dialect') ?? 'postgres'
  if (dialect !== 'postgres' && dialect !== 'mysql') throw new UsageError(`--dialect must be postgres or mysql, got "${dialect}"`)
  if (rest.length === 0) throw new UsageError('no statement given: hexad sql --dir DIR "SELECT ..."')
  const statements = splitStatements(rest.join(' '), dialect)
  if (statements.length === 0) throw new UsageError('no statement given (the text is empty)')
  const cluster = await openCluster({ dir, dialect })
  const session = cluster.writer.session({ dialect })
  let code = 0
  try {
    for (const s of statements) {
      try {
        const r = await session.sql<unknown[]>(s, [], { rowMode: 'array' })
        if (r.fields.length > 0) process.stdout.write(formatTable(r.fields.map(f => f.name), r.rows) + '\n')
        else process.stdout.write(`${r.command}${['INSERT', 'UPDATE', 'DELETE'].includes(r.command) ? ' ' + r.rowCount : ''}\n`)
      } catch (err) {
        const e = err as { sqlstate?: string; message?: string }
        process.stderr.write(`ERROR: ${e.sqlstate ? e.sqlstate + ': ' : ''}${e.message ?? String(err)}\n`)
        code = 1
        break
      }
    }
  } finally {
    await session.close()
    await cluster.close()
  }
  return code
}

async function cmdStatus(flags: Flags): Promise<number> {
  const dir = dirOf(flags)
  if (!fs.existsSync(dir)) throw new UsageError(`no cluster at ${dir} (the directory does not exist)`)
  const cluster = await openCluster({ dir })
  try {
    const v = cluster.volume.stats()
    const seg = await cluster.volume.segmentStats()
    const kv = cluster.writer.stats()
    const keyspaces = cluster.writer.keyspaceNames()
    if (flags.json) {
      process.stdout.write(JSON.stringify({ volume: v, segments: seg, writer: kv, keyspaces }, (_, x) => typeof x === 'bigint' ? x.toString() : x) + '\n')
      return 0
    }
    const azUp = [0, 1, 2].map(az => v.segments.filter(s => s.az === az && s.up).length)
    const lines = [
      `cluster      ${dir}`,
      `epoch        ${v.epoch}`,
      `VDL          ${v.vdl}   (VCL ${v.vcl}, next LSN ${v.nextLsn})`,
      `groups       ${v.groups} protection group${v.groups === 1 ? '' : 's'} of ${v.pagesPerGroup} pages x ${v.pageSize} B`,
      `AZ health    ${azUp.map((n, az) => `AZ ${az}: ${n}/2 up`).join(', ')}`,
      `keyspaces    ${keyspaces.length}`,
    ]
    const parent = cluster.volume.parent
    if (parent) lines.push(`clone of     ${parent.dir} at LSN ${parent.lsn}`)
    const clones = cluster.clones()
    if (clones.length) lines.push(`clones       ${clones.map(c => `${c.dir} (LSN ${c.lsn})`).join(', ')}`)
    const snaps = cluster.snapshots()
    if (snaps.length) lines.push(`snapshots    ${snaps.map(x => `${x.name} (LSN ${x.lsn})`).join(', ')}`)
    lines.push('')
    process.stdout.write(lines.join('\n'))
    const rows = v.segments.map((s, i) => {
      const st = seg[i]
      return [s.id, s.az, s.up && st ? 'up' : 'DOWN', s.scl, st ? st.logFiles : null, st ? bytes(st.logBytesLive) : '', st ? st.pageVersions : null, st ? bytes(st.pageStoreBytes) : '', st ? st.fsyncs : null]
    })
    process.stdout.write(formatTable(['segment', 'az', 'state', 'SCL', 'log files', 'live log', 'page versions', 'page store', 'fsyncs'], rows) + '\n')
    return 0
  } finally {
    await cluster.close()
  }
}

async function cmdServe(flags: Flags): Promise<number> {
  const dir = dirOf(flags)
  const pgPort = port(flags, 'pg')
  const mysqlPort = port(flags, 'mysql')
  if (pgPort === undefined && mysqlPort === undefined) throw new UsageError('nothing to serve: give --pg PORT and/or --mysql PORT')
  const socketDir = one(flags, 'pg-socket')
  if (socketDir !== undefined) {
    if (pgPort === undefined) throw new UsageError('--pg-socket needs --pg PORT (the socket is named after the port)')
    let st: fs.Stats
    try { st = fs.statSync(socketDir) } catch (e) { throw new UsageError(`--pg-socket ${socketDir}: ${(e as Error).message}`) }
    if (!st.isDirectory()) throw new UsageError(`--pg-socket ${socketDir} is not a directory`)
  }
  const host = one(flags, 'host') ?? '127.0.0.1'
  const users = (flags.user ?? []).map(u => {
    const i = u.indexOf(':')
    if (i <= 0) throw new UsageError(`--user must be NAME:PASSWORD, got "${u}"`)
    return { name: u.slice(0, i), password: u.slice(i + 1) }
  })
  const keyFile = one(flags, 'tls-key'), certFile = one(flags, 'tls-cert')
  if (!!keyFile !== !!certFile) throw new UsageError('--tls-key and --tls-cert go together')
  const read = (f: string) => { try { return fs.readFileSync(f) } catch (e) { throw new UsageError(`cannot read ${f}: ${(e as Error).message}`) } }
  const tls = keyFile && certFile ? { key: read(keyFile), cert: read(certFile) } : undefined
  const maxConnections = positive(flags, 'max-connections')
  const idle = positive(flags, 'idle-timeout')
  const log = (line: string) => process.stderr.write(`hexad: ${line}\n`)
  const common = { host, ...(maxConnections !== undefined ? { maxConnections } : {}), ...(idle !== undefined ? { idleTimeoutMs: idle * 1000 } : {}), log }
  const options: ServeOptions = {}
  if (pgPort !== undefined) options.pg = { port: pgPort, ...common, ...(users.length ? { users, auth: 'scram-sha-256' as const } : { auth: 'trust' as const }), ...(tls ? { tls } : {}), ...(socketDir !== undefined ? { socketDir } : {}) }
  if (mysqlPort !== undefined) options.mysql = { port: mysqlPort, ...common, ...(users.length ? { users } : {}), ...(tls ? { tls } : {}) }
  const backupDir = one(flags, 'backup')
  const window = positive(flags, 'backtrack-window')
  const niceArg = one(flags, 'segment-nice')
  if (niceArg !== undefined && !/^(1?\d)$/.test(niceArg)) throw new UsageError(`--segment-nice must be an integer 0..19, got "${niceArg}"`)
  const segmentNice = niceArg === undefined ? SERVE_SEGMENT_NICE : Number(niceArg)
  const clusterOptions: ClusterOptions = { dir, segmentNice, ...(window ? { backtrackWindowMs: Math.round(window * 1000) } : {}), ...(backupDir ? { backup: { store: backupDir, onError: (e: Error) => log(`backup: ${e.message}`) } } : {}) }
  const cluster: Cluster = await openCluster(clusterOptions)
  if (backupDir) process.stdout.write(`hexad: continuous backup into ${backupDir}\n`)
  if (window) process.stdout.write(`hexad: backtrack window ${window} s\n`)
  let endpoints: Endpoints
  try {
    endpoints = await serve(cluster, options)
  } catch (err) {
    await cluster.close()
    throw err
  }
  const auth = users.length ? `${users.length} user${users.length === 1 ? '' : 's'}, password required` : 'trust (no passwords: local development)'
  const ep = endpoints
  if (ep.pg) process.stdout.write(`hexad: PostgreSQL protocol listening on ${host}:${ep.pg.port}${ep.pg.socketPath ? ` and ${ep.pg.socketPath}` : ''} (${auth}${tls ? ', TLS available' : ''}), cluster ${dir}\n`)
  if (ep.mysql) process.stdout.write(`hexad: MySQL protocol listening on ${host}:${ep.mysql.port} (${auth}${tls ? ', TLS available' : ''}), cluster ${dir}\n`)
  return new Promise<number>(resolve => {
    let stopping = false
    const stop = (signal: string) => {
      if (stopping) return
      stopping = true
      process.stdout.write(`hexad: ${signal}: closing endpoints and the cluster\n`)
      endpoints.close().then(() => cluster.close()).then(() => { process.stdout.write('hexad: stopped\n'); resolve(0) }, err => { log(`error while stopping: ${(err as Error).message}`); resolve(1) })
    }
    process.once('SIGINT', () => stop('SIGINT'))
    process.once('SIGTERM', () => stop('SIGTERM'))
  })
}

async function cmdClone(flags: Flags): Promise<number> {
  const dir = existingCluster(flags)
  const to = one(flags, 'to')
  if (!to) throw new UsageError('--to DIR is required (the clone\'s directory)')
  const cluster = await openCluster({ dir })
  try {
    const t0 = performance.now()
    const c = cluster.volume.createClone(to)
    process.stdout.write(`clone ${c.dir} of ${dir} at LSN ${c.lsn} (${(performance.now() - t0).toFixed(1)} ms)\n`)
    return 0
  } finally {
    await cluster.close()
  }
}

async function cmdBacktrack(flags: Flags): Promise<number> {
  const dir = existingCluster(flags)
  const toFlag = one(flags, 'to')
  if (!toFlag) throw new UsageError('--to TIME|LSN is required')
  const to = momentOf('to', toFlag)
  const window = positive(flags, 'window') ?? 86_400
  if (!fs.existsSync(`${dir}/timeline`)) throw new UsageError(`${dir} has no backtrack history: serve it with --backtrack-window SEC first`)
  const cluster = await openCluster({ dir, backtrackWindowMs: Math.max(1, Math.round(window * 1000)) })
  try {
    const r = await cluster.backtrack(to)
    process.stdout.write(`backtracked ${dir} from LSN ${r.from} to LSN ${r.to}: ${r.pages} pages written again in ${r.ms.toFixed(0)} ms (new state at LSN ${r.lsn})\n`)
    return 0
  } finally {
    await cluster.close()
  }
}

async function cmdRestore(flags: Flags): Promise<number> {
  const from = one(flags, 'from')
  if (!from) throw new UsageError('--from BACKUP is required')
  if (!fs.existsSync(from)) throw new UsageError(`no backup at ${from} (the directory does not exist)`)
  if (flags.list) {
    const w = await restorableWindow(from)
    if (!w) { process.stdout.write(`${from} holds no restorable backup yet\n`); return 1 }
    process.stdout.write(`oldest  ${w.oldest.time.toISOString()}  LSN ${w.oldest.lsn}\nlatest  ${w.latest.time.toISOString()}  LSN ${w.latest.lsn}\n`)
    for (const g of w.gaps) process.stdout.write(`gap     LSN ${g.from} .. ${g.to} (not restorable inside)\n`)
    return 0
  }
  const to = one(flags, 'to')
  if (!to) throw new UsageError('--to DIR is required (the new cluster\'s directory)')
  const atFlag = one(flags, 'at')
  const at = atFlag === undefined ? undefined : momentOf('at', atFlag)
  let last = 0
  const r = await restore({
    from, to, at,
    onProgress: p => {
      const now = Date.now()
      if (now - last < 1000) return
      last = now
      process.stderr.write(`hexad: restore: protection group ${p.groupsDone}/${p.groupsTotal}, ${p.pagesWritten} pages written, ${(p.bytesRead / 1e6).toFixed(1)} MB read\n`)
    },
  })
  process.stdout.write(`restored ${to} as of ${r.time.toISOString()} (LSN ${r.lsn}): ${r.pages} pages, ${(r.bytes / 1e6).toFixed(1)} MB in ${(r.ms / 1000).toFixed(1)} s\n`)
  return 0
}

async function cmdDestroy(flags: Flags): Promise<number> {
  const dir = existingCluster(flags)
  const r = await destroyCluster(dir)
  for (const d of r.removed) process.stdout.write(`removed ${d}\n`)
  for (const d of r.kept) process.stdout.write(`kept ${d} (destroyed; clones still read through it)\n`)
  return 0
}

export async function main(argv: string[]): Promise<number> {
  const cmd = argv[0]
  try {
    if (!cmd || cmd === '--help' || cmd === '-h' || cmd === 'help') { process.stdout.write(HELP.main + '\n'); return cmd ? 0 : 2 }
    if (!SPEC[cmd]) throw new UsageError(`unknown command "${cmd}" (commands: ${Object.keys(SPEC).join(', ')}; see hexad --help)`)
    const { flags, rest } = parseArgs(cmd, argv.slice(1))
    if (flags.help) { process.stdout.write(HELP[cmd] + '\n'); return 0 }
    if (cmd !== 'sql' && rest.length) throw new UsageError(`unexpected argument "${rest[0]}" for "hexad ${cmd}"`)
    if (cmd === 'sql') return await cmdSql(flags, rest)
    if (cmd === 'status') return await cmdStatus(flags)
    if (cmd === 'clone') return await cmdClone(flags)
    if (cmd === 'backtrack') return await cmdBacktrack(flags)
    if (cmd === 'restore') return await cmdRestore(flags)
    if (cmd === 'destroy') return await cmdDestroy(flags)
    return await cmdServe(flags)
  } catch (err) {
    if (err instanceof UsageError) { process.stderr.write(`hexad: ${err.message}\n`); return 2 }
    const e = err as { code?: string; message?: string }
    process.stderr.write(`hexad: ${e.code ? e.code + ': ' : ''}${e.message ?? String(err)}\n`)
    return 1
  }
}

main(process.argv.slice(2)).then(code => { process.exitCode = code })
