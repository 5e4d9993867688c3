/**
 * Describe of a prepared statement: the fields a statement will return,
 * without running it (the extended protocol's Describe 'S', which clients
 * such as postgres.js use to learn the result types before Bind).
 *
 * A SELECT (or INSERT/UPDATE/DELETE ... RETURNING) is planned by the SQL
 * engine's statement cache and its plan's output types are read; catalog.ts
 * answers are computed (they are read-only and cheap); any other statement
 * returns no rows (NoData). The SQL layer has no describe() of its own yet;
 * this is the one place the server reaches into the engine's planner.
 */
import type { SqlEngine } from '../../sql/session.js'
import { PG_OID, type SqlType } from '../../sql/values.js'
import { answer, type Field, type SessionInfo } from './catalog.js'

function oidOf(t: SqlType): number {
  const name = t.name === 'varchar' || t.name === 'jsonb' ? t.name : t.kind === 'unknown' ? 'text' : t.kind
  return PG_OID[name] ?? 25
}

/** Strips what the session strips before planning: EXPLAIN, a trailing FOR UPDATE / FOR SHARE [NOWAIT]. */
function body(text: string): { text: string; explain: boolean } {
  let t = text.trim().replace(/;\s*$/, '')
  if (/^explain\b/i.test(t)) return { text: t, explain: true }
  t = t.replace(/\s+for\s+(update|share)(\s+nowait)?\s*$/i, '')
  return { text: t, explain: false }
}

export async function describe(text: string, info: SessionInfo & { engine: SqlEngine }): Promise<Field[] | null> {
  const first = /^\s*([a-z]+)/i.exec(text)?.[1]?.toLowerCase() ?? ''
  if (first === 'select' || first === 'show') {
    // catalog answers, computed on a copy of the settings, without sleeping
    const a = await answer(text, { ...info, reportSetting: () => {}, sleep: async () => {}, settings: new Map(info.settings) })
    if (a) return a.fields
  }
  if (!['select', 'with', 'values', 'insert', 'update', 'delete', 'explain', 'table'].includes(first)) return null
  const b = body(text)
  if (b.explain) return [{ name: 'QUERY PLAN', oid: 25 }]
  const eng = info.engine
  await eng.ready()
  const { e } = eng.entry(b.text, 'postgres')
  const p = eng.prepare(e, 'postgres') as { kind: string; plan?: { fields: Array<{ name: string; type: SqlType }> }; returning?: { fields: Array<{ name: string; type: SqlType }> } | null }
  const fields = p.kind === 'select' ? p.plan?.fields : p.returning?.fields
  if (!fields || fields.length === 0) return null
  return fields.map(f => ({ name: f.name, oid: oidOf(f.type) }))
}
