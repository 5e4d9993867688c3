/**
 * The thin SQL front: `db.sql(text, params?)` and `db.session()` on a
 * Database (see session.ts). One SqlEngine per database handle, made on
 * first use; the cluster tells it its dialect and volume (for ALTER SYSTEM).
 */
import type { Database } from '../compute/database.js'
import { SqlEngine, type SqlConfig } from './session.js'

export { SqlEngine, SqlSession, splitStatements } from './session.js'
export type { SqlOptions, SqlResult, SqlField, SqlConfig, Dialect, FaultEvent } from './session.js'
export { SqlError } from './errors.js'
export { verifySql } from './verify.js'
export type { SqlVerifyReport } from './verify.js'

const engines = new WeakMap<Database, SqlEngine>()

/** The SQL engine of `db` (created on first use). */
export function sqlEngine(db: Database): SqlEngine {
  let e = engines.get(db)
  if (!e) { e = new SqlEngine(db); engines.set(db, e) }
  return e
}

/** Sets the dialect and volume the SQL front of `db` uses. */
export function configureSql(db: Database, config: SqlConfig): void {
  sqlEngine(db).configure(config)
}
