/**
 * The database handle users hold (`cluster.writer`): the default keyspace,
 * named keyspaces, verification and statistics.
 */
import { listFreePages } from './allocator.js'
import { BTree } from './btree.js'
import { checkKeyspaceName, DEFAULT_KEYSPACE, Engine, Keyspace, type DatabaseStats } from './kv.js'
import { sqlEngine, verifySql, type SqlOptions, type SqlResult, type SqlSession, type Dialect, type SqlVerifyReport } from '../sql/index.js'

export interface VerifyReport {
  ok: boolean
  problems: string[]
  keyspaces: Array<{ name: string; root: number; keys: number }>
  freePages: number
  /** the SQL layer's check (rows against their definitions, indexes against their tables): engine/sql/verify.ts */
  sql?: SqlVerifyReport
}

export class Database extends Keyspace {
  readonly #e: Engine
  readonly #spaces = new Map<string, Keyspace>()

  /** @internal */
  constructor(e: Engine) {
    super(e, DEFAULT_KEYSPACE)
    this.#e = e
  }

  /** A named keyspace: its own ordered key space in the same volume (created on first write). */
  keyspace(name: string): Keyspace {
    checkKeyspaceName(name)
    let k = this.#spaces.get(name)
    if (!k) { k = new Keyspace(this.#e, name); this.#spaces.set(name, k) }
    return k
  }

  /** Runs one SQL statement in its own transaction (engine/sql): `{ rows, rowCount, fields, command }`. */
  sql<R = Record<string, unknown>>(text: string, params?: unknown[], options?: SqlOptions): Promise<SqlResult<R>> {
    return sqlEngine(this).sql(text, params, options)
  }

  /** A SQL session: BEGIN ... COMMIT across calls; one per client connection. */
  session(options?: { dialect?: Dialect }): SqlSession {
    return sqlEngine(this).session(options)
  }

  /** Names of the keyspaces that exist (have been written). */
  keyspaceNames(): string[] {
    return [...this.#e.keyspaces.keys()].sort()
  }

  /**
   * Checks every B+tree invariant (order, fill, links, separators, overflow
   * chains, page checksums) of the catalog and every keyspace, and that no
   * free page is also in use. Runs between MTRs, so it sees one state.
   * Then the SQL layer's check, at one snapshot (engine/sql/verify.ts).
   */
  async verify(): Promise<VerifyReport> {
    this.#e.checkOpen()
    const report: VerifyReport = { ok: true, problems: [], keyspaces: [], freePages: 0 }
    await this.#e.runner.run(async mtr => {
      for (const p of await this.#e.catalog.verify(mtr)) report.problems.push(`catalog: ${p}`)
      for (const [name, root] of this.#e.keyspaces) {
        const tree = new BTree(root)
        for (const p of await tree.verify(mtr)) report.problems.push(`keyspace ${name}: ${p}`)
        report.keyspaces.push({ name, root, keys: await tree.count(mtr) })
      }
      const free = await listFreePages(mtr)
      report.freePages = free.length
      const used = new Set<number>([0])
      for (const root of [this.#e.catalog.rootPageId, ...this.#e.keyspaces.values()]) for (const id of await new BTree(root).pageIds(mtr)) used.add(id)
      for (const id of free) if (used.has(id)) report.problems.push(`page ${id} is on the free list and in use by a tree`)
    })
    report.sql = await verifySql(this)
    for (const p of report.sql.problems) report.problems.push(`sql: ${p}`)
    report.ok = report.problems.length === 0
    return report
  }

  /** How many transactions (or their writes) wait now for a key lock another transaction holds. */
  get lockWaiters(): number { return this.#e.locks.queued }

  stats(): DatabaseStats {
    const e = this.#e
    return {
      ...e.counters,
      commitGroups: e.groups,
      deadlocks: e.locks.deadlocks,
      lockWaits: e.locks.waits,
      mtrs: e.runner.mtrs,
      redoBytes: e.runner.redoBytes,
      versionsKept: e.store.size,
      snapshotsHeld: e.store.snapshotsHeld,
      keyspaces: e.keyspaces.size,
      cache: e.cache.stats(),
      vdl: e.vol.vdl,
    }
  }
}
