/**
 * Where a wire connection's SQL session comes from: the cluster through one
 * of its endpoints (so a connection made after a failover reaches the new
 * writer, and a 'reader' listener spreads its connections over the
 * replicas), or one fixed database handle.
 */
import type { Cluster } from '../compute/cluster.js'
import type { Database } from '../compute/database.js'
import { sqlEngine, type Dialect, type SqlEngine, type SqlSession } from '../sql/index.js'

export type EndpointName = string | { instance: string }

export interface SessionSource {
  /** a session for one client connection, the SQL engine whose catalog it reads, and what ends it */
  open(dialect: Dialect): { session: SqlSession; engine: SqlEngine; release(): void }
}

export function databaseSource(db: Database): SessionSource {
  return { open: dialect => ({ session: db.session({ dialect }), engine: sqlEngine(db), release() {} }) }
}

export function endpointSource(cluster: Cluster, endpoint: EndpointName): SessionSource {
  cluster.connect(endpoint).close() // an unknown endpoint fails now, not at the first client
  return {
    open(dialect) {
      const conn = cluster.connect(endpoint)
      return { session: conn.session({ dialect }), engine: sqlEngine(cluster.writer), release: () => conn.close() }
    },
  }
}

export function toSource(target: Database | SessionSource): SessionSource {
  return 'open' in target && typeof (target as SessionSource).open === 'function' ? target as SessionSource : databaseSource(target as Database)
}
