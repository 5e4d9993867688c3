/**
 * Test harness for the wire endpoints: a fresh cluster in a temp directory,
 * endpoints on free ports (port 0), and a stop() that ends both.
 */
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { spawnSync } from 'node:child_process'
import { openCluster, type Cluster } from '../../engine/index.js'
import { serve, type Endpoints, type ServeOptions } from '../../engine/server/index.js'

export interface Harness {
  cluster: Cluster
  endpoints: Endpoints
  dir: string
  pgPort: number
  mysqlPort: number
  stop(): Promise<void>
}

export async function startServer(options: ServeOptions = { pg: { port: 0 } }): Promise<Harness> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hexad-server-'))
  const cluster = await openCluster({ dir })
  const endpoints = await serve(cluster, options)
  return {
    cluster, endpoints, dir,
    pgPort: endpoints.pg?.port ?? 0,
    mysqlPort: endpoints.mysql?.port ?? 0,
    async stop() {
      await endpoints.close()
      await cluster.close()
      fs.rmSync(dir, { recursive: true, force: true })
    },
  }
}

/**
 * The path of a PostgreSQL client tool (psql, pgbench), installing Debian's
 * package for it when it is missing (nothing may rely on what happens to be
 * installed). Returns null only when installing is impossible (not root, no apt).
 */
export function pgTool(name: 'psql' | 'pgbench'): string | null {
  const find = () => {
    const r = spawnSync('sh', ['-c', `command -v ${name} || ls /usr/lib/postgresql/*/bin/${name} 2>/dev/null | tail -1`], { encoding: 'utf8' })
    const p = r.stdout.trim().split('\n').pop()
    return p ? p : null
  }
  let p = find()
  if (p) return p
  // Debian 12: psql is in postgresql-client-15; pgbench in postgresql-15 (what postgresql-contrib pulls in)
  const pkg = name === 'psql' ? 'postgresql-client' : 'postgresql-15'
  spawnSync('sh', ['-c', `apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ${pkg}`], { stdio: 'ignore', timeout: 5 * 60_000 })
  p = find()
  return p
}
