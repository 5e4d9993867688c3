/**
 * Helpers for the SQL tests: a temporary cluster, and a tiny case language
 * for conformance scripts. A case is a statement and what it must give:
 * rows (in array mode, JS values as the API returns them; numerics are
 * strings), a row count, or an error's SQLSTATE. Results of statements
 * without ORDER BY are compared as multisets (`unordered`).
 */
import * as assert from 'uvu/assert'
import type { Cluster, Database, SqlError, SqlSession } from '../../engine/index.js'
import { withTempCluster } from './kv-helpers.js'

export { cleanupTempDirs, withTempCluster, withCluster, makeTempDir, rmTempDir, Rng, baseSeed } from './kv-helpers.js'

export type Case =
  | { sql: string; params?: unknown[]; rows: unknown[][]; unordered?: boolean }
  | { sql: string; params?: unknown[]; count: number }
  | { sql: string; params?: unknown[]; error: string; match?: RegExp }
  | { sql: string; params?: unknown[] }

/** rows, in order */
export const q = (sql: string, rows: unknown[][], params?: unknown[]): Case => ({ sql, rows, params })
/** rows, in any order */
export const qu = (sql: string, rows: unknown[][], params?: unknown[]): Case => ({ sql, rows, params, unordered: true })
/** a statement affecting `count` rows */
export const ok = (sql: string, count = 0, params?: unknown[]): Case => ({ sql, count, params })
/** a statement failing with `state` (and a message matching `match`) */
export const err = (sql: string, state: string, match?: RegExp, params?: unknown[]): Case => ({ sql, error: state, match, params })

function show(v: unknown): string {
  return JSON.stringify(v, (_k, x) => typeof x === 'bigint' ? `${x}n` : x instanceof Date ? `Date(${x.toISOString()})` : x && x.type === 'Buffer' && Array.isArray(x.data) ? `Buffer(${Buffer.from(x.data).toString('hex')})` : x)
}

function norm(rows: unknown[][]): string[] { return rows.map(r => show(r)).sort() }

/** Runs the cases in order on `s` (a session or database); counts statements run. */
export async function runCases(s: SqlSession | Database, cases: Case[], tag: string): Promise<number> {
  let n = 0
  for (const c of cases) {
    const what = `[${tag}] ${c.sql}${c.params ? ' ' + show(c.params) : ''}`
    n++
    if ('error' in c) {
      let got: SqlError | null = null
      try { await s.sql(c.sql, c.params ?? [], { rowMode: 'array' }) } catch (e) { got = e as SqlError }
      assert.ok(got, `${what}: expected error ${c.error}, but it succeeded`)
      assert.is(got!.sqlstate, c.error, `${what}: expected SQLSTATE ${c.error}, got ${got!.sqlstate}: ${got!.message}`)
      if (c.match) assert.match(got!.message, c.match, `${what}: message`)
      continue
    }
    let r
    try {
      r = await s.sql(c.sql, c.params ?? [], { rowMode: 'array' })
    } catch (e) {
      assert.unreachable(`${what}: failed with ${(e as SqlError).sqlstate}: ${(e as Error).message}`)
      return n
    }
    if ('rows' in c) {
      const got = r.rows as unknown as unknown[][]
      if (c.unordered) assert.equal(norm(got), norm(c.rows), `${what}: rows ${show(got)} != expected ${show(c.rows)}`)
      else assert.is(show(got), show(c.rows), `${what}: rows`)
    } else if ('count' in c) {
      assert.is(r.rowCount, c.count, `${what}: rowCount`)
    }
  }
  return n
}

/** A cluster for SQL tests (small volume settings), removed afterwards. */
export function withSql<T>(tag: string, fn: (cluster: Cluster, dir: string) => Promise<T>, over: Record<string, unknown> = {}): Promise<T> {
  return withTempCluster(tag, over, fn)
}
