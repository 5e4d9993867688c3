/**
 * Wire endpoints: `serve(cluster, { pg, mysql })` starts a PostgreSQL and/or
 * a MySQL listener, each connection with its own SQL session on an instance
 * the cluster's endpoint picks: 'writer' by default (a connection made after
 * a failover reaches the new writer), or `endpoint: 'reader'` (read-only
 * sessions spread over the replicas), a custom endpoint, or `{ instance }`.
 * Call serve() once per endpoint to give each its own port. `close()` stops
 * listening, ends every connection and waits.
 */
import type { Cluster } from '../compute/cluster.js'
import { startPgServer, type PgServer, type PgServerOptions } from './pg/server.js'
import { startMysqlServer, type MysqlServer, type MysqlServerOptions } from './mysql/server.js'
import { endpointSource, type EndpointName } from './source.js'

export type { PgServerOptions, PgUser, PgServer } from './pg/server.js'
export type { MysqlServerOptions, MysqlUser, MysqlServer } from './mysql/server.js'

/**
 * The segment threads' niceness `hexad serve` opens its cluster with. A
 * server process runs nothing but hexad, and its endpoints, SQL and B-tree
 * all run on the main thread: segments that give way to it raised pgbench
 * over the pg endpoint by 20-25% on 2 cores. In an application that embeds
 * hexad it is an opt-in (openCluster's segmentNice, default 0), since there
 * CPU-bound application threads would win over the commits' segments.
 */
export const SERVE_SEGMENT_NICE = 10

export interface ServeOptions {
  pg?: PgServerOptions & { endpoint?: EndpointName }
  mysql?: MysqlServerOptions & { endpoint?: EndpointName }
}

export interface Endpoints {
  pg: PgServer | null
  mysql: MysqlServer | null
  close(): Promise<void>
}

export async function serve(cluster: Cluster, options: ServeOptions): Promise<Endpoints> {
  if (!options || (!options.pg && !options.mysql)) throw new TypeError('serve() needs at least one endpoint: { pg: { port } } and/or { mysql: { port } }')
  const pg = options.pg ? await startPgServer(endpointSource(cluster, options.pg.endpoint ?? 'writer'), options.pg) : null
  let mysql: MysqlServer | null = null
  try {
    mysql = options.mysql ? await startMysqlServer(endpointSource(cluster, options.mysql.endpoint ?? 'writer'), options.mysql) : null
  } catch (err) {
    await pg?.close()
    throw err
  }
  // A backtrack closes every connection before it rewinds (their sessions' work is dropped).
  const onBacktrack = () => { pg?.dropConnections(); mysql?.dropConnections() }
  cluster.on('backtrack-start', onBacktrack)
  return {
    pg,
    mysql,
    async close() { cluster.off('backtrack-start', onBacktrack); await Promise.all([pg?.close(), mysql?.close()]) },
  }
}
