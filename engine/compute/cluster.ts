/**
 * A cluster: one volume and the writer instance that runs in the
 * application's thread. (Readers, endpoints and failover come with the
 * compute-cluster issue.)
 */
import { badInput } from '../common/errors.js'
import { openVolume, type Volume, type VolumeOptions } from '../volume/volume.js'
import { Database } from './database.js'
import { Engine } from './kv.js'

export interface ClusterOptions extends VolumeOptions {
  /** bytes of pages the writer's buffer cache holds (default 64 MiB) */
  cacheBytes?: number
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
  const { cacheBytes = 64 << 20, ...volumeOptions } = options
  if (!Number.isInteger(cacheBytes) || cacheBytes < 64 * 1024) throw badInput(`cacheBytes must be an integer of at least 65536, got ${String(cacheBytes)}`)
  const volume = await openVolume(volumeOptions)
  try {
    const engine = await Engine.open(volume, cacheBytes)
    return new Cluster(volume, engine)
  } catch (err) {
    await volume.close()
    throw err
  }
}
