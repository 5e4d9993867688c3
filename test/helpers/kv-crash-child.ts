/**
 * The writer process of the key-value crash test (test/kv-crash.test.ts),
 * and the deterministic history of transactions both sides agree on.
 *
 * History: transaction i (i = 1, 2, 3, ...) is a pure function of (seed, i)
 * and of the state it reads ({@link plan}, {@link applyPlan}):
 *   - transaction 1 opens the ACCOUNTS accounts (`acct:NN`, decimal
 *     balances) with INITIAL_BALANCE each;
 *   - every later one makes 1..3 transfers among 2..4 distinct accounts
 *     (amount = min(wanted, balance of the payer): balances never go
 *     negative and the total never changes);
 *   - every one puts its log key `tx:<i>` (zero-padded, so keys sort by i)
 *     with a value derived from its plan;
 *   - about half also put or delete 1..2 keys `k:NN` of the keyspace `side`
 *     (the same transaction, across keyspaces); some of those values are
 *     large (LARGE_MIN..LARGE_MAX bytes, in overflow pages).
 *
 * Ordering: each transaction requests every lock it will hold (getForUpdate
 * of its accounts, put/del of its other keys) in one synchronous step at its
 * start, and transaction i begins only after i - 1 made its requests. A
 * key's lock is granted in FIFO order and held until the holder's commit is
 * durable, so for every key the transactions that touch it commit in i
 * order; transactions sharing no key commit in any order. The state after
 * any set S of committed transactions is therefore "apply the plans of S in
 * ascending i" — whatever the interleaving — and the durable set is closed
 * under "i in S, j < i shares a key with i => j in S" (j committed first,
 * and durability follows commit order). The lock requests are enqueued
 * inside the getForUpdate/put/del calls, before their first await (as
 * engine/compute/kv.ts and locks.ts do it); no transaction ever waits for a
 * younger one, so none deadlocks, and none reads without a lock, so none
 * conflicts: any error is a failure.
 *
 * Child protocol (run as `node kv-crash-child.js <dir> <seed> <window> <cacheBytes>`):
 *   - opens the cluster (taking over a dead owner's LOCK), reads its whole
 *     state, prints `start <k> <vdl>` where k is the highest `tx:<k>` present
 *     (0 if none), then runs transactions k+1, k+2, ... Holes below k (an
 *     earlier child's transactions that never became durable) stay holes:
 *     the history continues from the recovered state.
 *   - at most <window> transactions are outstanding, and transaction j is
 *     begun only once transaction j - window was acknowledged (or j - window
 *     <= k): so a durable j implies a durable j - window.
 *   - for each transaction whose commit resolved (durable), prints `ack <i>`.
 *   - keeps its own model of the state (applied at issue time, in i order)
 *     and checks every balance a transaction reads under its lock against
 *     it: a read that disagrees (a lost update, a lock granted out of order,
 *     a stale read after a lock handoff) fails the transaction.
 *   - any error is printed to stderr and exits non-zero: the parent treats a
 *     child that stops on its own as a failure.
 * It runs until it is killed (SIGKILL, by the parent).
 */
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { openCluster, type Database } from '../../engine/index.js'

export const ACCOUNTS = 32
export const INITIAL_BALANCE = 1000
export const TOTAL = ACCOUNTS * INITIAL_BALANCE
export const SIDE_KEYSPACE = 'side'
export const SIDE_KEYS = 24
/** values at least this long live in overflow pages (the inline limit is a quarter page, 1 KiB) */
export const LARGE_MIN = 1100
export const LARGE_MAX = 9000

/** Small files and groups, so log rolls, checkpoints, log GC and several PGs happen across crashes. */
export const KV_CRASH_OPTIONS = {
  pagesPerGroup: 16,
  logFileBytes: 256 << 10,
  checkpointLogBytes: 512 << 10,
  coalesceThreshold: 4,
  gossipIntervalMs: 10,
} as const

// The same seeded PRNG and mixer as the volume crash test's history.
export { mix, mulberry32 } from './crash-child.js'
import { mix, mulberry32 } from './crash-child.js'

export const acctKey = (n: number) => `acct:${String(n).padStart(2, '0')}`
export const txKey = (i: number) => `tx:${String(i).padStart(8, '0')}`
export const sideKey = (n: number) => `k:${String(n).padStart(2, '0')}`
export const TX_PREFIX = 'tx:'

export interface Transfer { from: number; to: number; want: number }
/** a put (value) or a delete (null) of side key `key` */
export interface SideOp { key: number; value: Uint8Array | null }

export interface Plan {
  i: number
  /** transaction 1: opens every account */
  init: boolean
  /** accounts this transaction locks and rewrites, ascending, distinct */
  accounts: number[]
  transfers: Transfer[]
  side: SideOp[]
  txValue: string
}

/** Transaction i of the history of `seed`: its keys and intents (independent of the state). */
export function plan(seed: number, i: number): Plan {
  if (!Number.isInteger(i) || i < 1 || i > 99_999_999) throw new Error(`transaction number must be an integer in 1..99999999, got ${i}`)
  const r = mulberry32(mix(seed, i))
  const int = (lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1))
  if (i === 1) {
    return { i, init: true, accounts: Array.from({ length: ACCOUNTS }, (_, a) => a), transfers: [], side: [], txValue: `tx 1 opens ${ACCOUNTS} accounts of ${INITIAL_BALANCE}` }
  }
  const n = int(2, 4)
  const accounts: number[] = []
  while (accounts.length < n) { const a = int(0, ACCOUNTS - 1); if (!accounts.includes(a)) accounts.push(a) }
  const transfers: Transfer[] = []
  for (let t = int(1, 3); t > 0; t--) {
    const from = accounts[int(0, n - 1)]
    let to = accounts[int(0, n - 1)]
    if (to === from) to = accounts[(accounts.indexOf(from) + 1) % n]
    transfers.push({ from, to, want: int(1, 400) })
  }
  const side: SideOp[] = []
  if (r() < 0.5) {
    for (let s = int(1, 2); s > 0; s--) {
      const key = int(0, SIDE_KEYS - 1)
      if (side.some(o => o.key === key)) continue
      if (r() < 0.3) { side.push({ key, value: null }); continue }
      const len = r() < 0.25 ? int(LARGE_MIN, LARGE_MAX) : int(1, 200)
      const value = new Uint8Array(len)
      // The first bytes name the writer, so a wrong value says whose it is.
      const head = Buffer.from(`${i}/${key}:`)
      value.set(head.subarray(0, len))
      for (let b = head.length; b < len; b++) value[b] = (r() * 256) | 0
      side.push({ key, value })
    }
  }
  accounts.sort((a, b) => a - b)
  const txValue = `tx ${i}: ` + transfers.map(t => `${t.from}->${t.to} up to ${t.want}`).join(', ') +
    (side.length ? '; side ' + side.map(o => `${o.value ? 'put' : 'del'} ${o.key}${o.value ? ` (${o.value.length} B)` : ''}`).join(', ') : '')
  return { i, init: false, accounts: accounts, transfers, side, txValue }
}

/** Every key a transaction locks, as `<keyspace> <key>`. */
export function planKeys(p: Plan): string[] {
  return [
    ...p.accounts.map(a => `default ${acctKey(a)}`),
    `default ${txKey(p.i)}`,
    ...p.side.map(o => `${SIDE_KEYSPACE} ${sideKey(o.key)}`),
  ]
}

/** The balances after the transfers of `p`, given the balances before (of p.accounts). */
export function transferAll(p: Plan, before: Map<number, number>): Map<number, number> {
  const bal = new Map(before)
  if (p.init) { for (const a of p.accounts) bal.set(a, INITIAL_BALANCE); return bal }
  for (const t of p.transfers) {
    const amount = Math.min(t.want, bal.get(t.from)!)
    bal.set(t.from, bal.get(t.from)! - amount)
    bal.set(t.to, bal.get(t.to)! + amount)
  }
  return bal
}

/** The state of both keyspaces: name -> (key -> value). */
export interface State {
  main: Map<string, Buffer>
  side: Map<string, Buffer>
}

export function emptyState(): State {
  return { main: new Map(), side: new Map() }
}

export function balanceOf(s: State, a: number): number | undefined {
  const v = s.main.get(acctKey(a))
  return v === undefined ? undefined : Number(v.toString('utf8'))
}

/** Applies transaction `p` to the model `s` (which must hold the state after every earlier transaction of the history). */
export function applyPlan(s: State, p: Plan): void {
  const before = new Map<number, number>()
  if (!p.init) {
    for (const a of p.accounts) {
      const b = balanceOf(s, a)
      if (b === undefined) throw new Error(`model: transaction ${p.i} transfers from account ${a}, which does not exist (is transaction 1 missing?)`)
      before.set(a, b)
    }
  }
  for (const [a, b] of transferAll(p, before)) s.main.set(acctKey(a), Buffer.from(String(b)))
  s.main.set(txKey(p.i), Buffer.from(p.txValue))
  for (const o of p.side) {
    if (o.value) s.side.set(sideKey(o.key), Buffer.from(o.value))
    else s.side.delete(sideKey(o.key))
  }
}

/** Reads both keyspaces of `db` with full forward scans. */
export async function readState(db: Database): Promise<State> {
  const s = emptyState()
  for await (const [k, v] of db.scan()) s.main.set(Buffer.from(k).toString('utf8'), Buffer.from(v))
  for await (const [k, v] of db.keyspace(SIDE_KEYSPACE).scan()) s.side.set(Buffer.from(k).toString('utf8'), Buffer.from(v))
  return s
}

/** The numbers of the transactions whose `tx:<i>` key is in `s`, ascending. */
export function presentTxs(s: State): number[] {
  const out: number[] = []
  for (const k of s.main.keys()) if (k.startsWith(TX_PREFIX)) out.push(Number(k.slice(TX_PREFIX.length)))
  return out.sort((a, b) => a - b)
}

async function main(): Promise<void> {
  const [dir, seedArg, windowArg, cacheArg] = process.argv.slice(2)
  const seed = Number(seedArg) >>> 0
  const window = Number(windowArg)
  const cacheBytes = Number(cacheArg)
  if (!dir || !Number.isInteger(window) || window < 1 || !Number.isInteger(cacheBytes)) {
    throw new Error(`usage: kv-crash-child.js <dir> <seed> <window> <cacheBytes>, got ${process.argv.slice(2).join(' ')}`)
  }
  // A safety net for an orphaned child: the parent kills it long before this.
  setTimeout(() => { process.stderr.write('kv-crash-child: not killed within 120 s, exiting\n'); process.exit(4) }, 120_000).unref()

  const cluster = await openCluster({ dir, ...KV_CRASH_OPTIONS, cacheBytes })
  const db = cluster.writer
  const model = await readState(db)
  const txs = presentTxs(model)
  const start = txs.length ? txs[txs.length - 1] : 0
  process.stdout.write(`start ${start} ${cluster.volume.vdl}\n`)

  const fail = (i: number, err: unknown): never => {
    process.stderr.write(`kv-crash-child: transaction ${i} failed: ${(err as Error).stack ?? String(err)}\n`)
    process.exit(3)
  }
  const acked = new Set<number>()
  let next = start + 1
  /** resolves once the last transaction begun has requested all its locks */
  let requested: Promise<void> = Promise.resolve()

  const begin = (i: number): void => {
    const p = plan(seed, i)
    // What this transaction must read under its locks: the state after every earlier transaction.
    const expected = new Map<number, number | undefined>(p.accounts.map(a => [a, balanceOf(model, a)]))
    applyPlan(model, p)
    const prev = requested
    let signal!: () => void
    requested = new Promise<void>(r => { signal = r })
    prev.then(() => db.transaction(async tx => {
      const side = tx.keyspace(SIDE_KEYSPACE)
      // Every lock, requested in this one synchronous step.
      const reads = p.init ? [] : p.accounts.map(a => tx.getForUpdate(acctKey(a)))
      const writes: Array<Promise<void>> = [tx.put(txKey(i), p.txValue)]
      for (const o of p.side) writes.push(o.value ? side.put(sideKey(o.key), o.value) : side.del(sideKey(o.key)))
      if (p.init) for (const a of p.accounts) writes.push(tx.put(acctKey(a), String(INITIAL_BALANCE)))
      signal()
      const got = await Promise.all(reads)
      await Promise.all(writes)
      if (p.init) return
      const before = new Map<number, number>()
      p.accounts.forEach((a, j) => {
        const v = got[j] === undefined ? undefined : Number(Buffer.from(got[j]!).toString('utf8'))
        if (v !== expected.get(a)) {
          throw new Error(`transaction ${i} read ${acctKey(a)} = ${v} under its lock, but the transactions before it leave ${expected.get(a)} (a lost update, a lock granted out of order, or a stale read after a lock handoff)`)
        }
        before.set(a, v!)
      })
      const after = transferAll(p, before)
      await Promise.all(p.accounts.map(a => tx.put(acctKey(a), String(after.get(a)))))
    })).then(
      () => {
        process.stdout.write(`ack ${i}\n`)
        acked.add(i)
        pump()
      },
      err => fail(i, err),
    )
  }
  const pump = (): void => {
    while (next - window <= start || acked.has(next - window)) begin(next++)
  }
  pump()
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch(err => {
    process.stderr.write(`kv-crash-child: ${(err as Error).stack ?? String(err)}\n`)
    process.exit(2)
  })
}
