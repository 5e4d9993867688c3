/**
 * A cluster: one volume and the writer instance that runs in the
 * application's thread. (Readers, endpoints and failover come with the
 * compute-cluster issue.)
 */
import { badInput } from '../common/errors.js'
import { openVolume, type Volume, type VolumeOptions } from '../volume/volume.js'
import { Database } from './database.js'
import { Engine } from './kv.js'
import { configureSql, type Dialect } from '../sql/index.js'

export interface ClusterOptions extends VolumeOptions {
  /** bytes of pages the writer's buffer cache holds (default 64 MiB) */
  cacheBytes?: number
  /** SQL dialect of `writer.sql()` and sessions unless a call says otherwise: 'postgres' (default) or 'mysql' */
  dialect?: Dialect
}

export class Cluster {
  readonly volume: Volume
  readonly writer: Database
  readonly #engine: Engine
  #closing: Promise<void> | null = null

  /** @internal */
  constructor(volume: Volume, engine: Engine) {
    this.volume = volume
    this.#engine = engine
    this.writer = new Database(engine)
    configureSql(this.writer, { volume })
  }

  stats() {
    return { writer: this.writer.stats(), volume: this.volume.stats() }
  }

  /** Waits for commits in flight, then closes the writer, the volume and its segment workers. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      await this.#engine.close()
      await this.volume.close()
    })()
    return this.#closing
  }

  async [Symbol.asyncDispose](): Promise<void> { await this.close() }
}

/** Opens (or creates) the cluster in `options.dir`: the volume, recovered, and its writer. */
export async function openCluster(options: ClusterOptions): Promise<Cluster> {
  if (!options || typeof options !== 'object') throw badInput('openCluster needs an options object with a dir')
  const { cacheBytes = 64 << 20, dialect, ...volumeOptions } = options
  if (dialect !== undefined && dialect !== 'postgres' && dialect !== 'mysql') throw badInput(`dialect must be 'postgres' or 'mysql', got ${JSON.stringify(dialect)}`)
  if (!Number.isInteger(cacheBytes) || cacheBytes < 64 * 1024) throw badInput(`cacheBytes must be an integer of at least 65536, got ${String(cacheBytes)}`)
  const volume = await openVolume(volumeOptions)
  try {
    const engine = await Engine.open(volume, cacheBytes)
    const cluster = new Cluster(volume, engine)
    if (dialect) configureSql(cluster.writer, { dialect })
    return cluster
  } catch (err) {
    await volume.close()
    throw err
  }
}
