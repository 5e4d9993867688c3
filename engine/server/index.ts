/**
 * Wire endpoints: `serve(cluster, { pg, mysql })` starts a PostgreSQL and/or
 * a MySQL listener on the cluster's writer, each connection with its own
 * SQL session. `close()` stops listening, ends every connection and waits.
 */
import type { Cluster } from '../compute/cluster.js'
import { startPgServer, type PgServer, type PgServerOptions } from './pg/server.js'

export type { PgServerOptions, PgUser, PgServer } from './pg/server.js'

export interface ServeOptions {
  pg?: PgServerOptions
}

export interface Endpoints {
  pg: PgServer | null
  close(): Promise<void>
}

export async function serve(cluster: Cluster, options: ServeOptions): Promise<Endpoints> {
  if (!options || (!options.pg)) throw new TypeError('serve() needs at least one endpoint: { pg: { port } }')
  const pg = options.pg ? await startPgServer(cluster.writer, options.pg) : null
  return {
    pg,
    async close() { await pg?.close() },
  }
}
