/**
 * A cluster: one volume, the writer instance that runs in the application's
 * thread, and up to 15 read replicas, each in its own worker thread.
 * (Endpoints, failover and auto-scaling come with the rest of the
 * compute-cluster issue.)
 */
import { badInput, HexadError } from '../common/errors.js'
import { openVolume, type Volume, type VolumeOptions } from '../volume/volume.js'
import { Database } from './database.js'
import { Engine } from './kv.js'
import { Reader, readerOptions, type ReaderOptions } from './reader.js'
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
    return { writer: this.writer.stats(), volume: this.volume.stats(), readers: [...this.#readers.keys()] }
  }

  readonly #readers = new Map<string, Reader>()

  /**
   * Starts a read replica in its own worker thread. It serves reads at its
   * own read point, which follows the writer's durable MTRs (replica lag:
   * `reader.stats()`); it never sees half an MTR or half a transaction.
   */
  addReader(options: ReaderOptions): Reader {
    if (this.#closing) throw new HexadError('HEXAD_CLOSED', 'the cluster is closed')
    const o = readerOptions(options, this.#readers.keys(), this.#readers.size)
    const r = new Reader(this.#engine, this.volume, o)
    this.#readers.set(o.name, r)
    return r
  }

  /** Stops and forgets the reader `name`. */
  async removeReader(name: string): Promise<void> {
    const r = this.#readers.get(name)
    if (!r) throw badInput(`no reader named ${JSON.stringify(name)}`)
    this.#readers.delete(name)
    await r.close()
  }

  /** The running readers. */
  get readers(): Reader[] { return [...this.#readers.values()] }

  /** Waits for commits in flight, then closes the readers, the writer, the volume and its segment workers. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      await Promise.all([...this.#readers.values()].map(r => r.close()))
      this.#readers.clear()
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
