/**
 * Endpoints route connections to the cluster's instances, as Aurora's DNS
 * endpoints do: 'writer' follows the current writer (across failovers),
 * 'reader' balances connections over the healthy replicas (the least
 * connected first) and falls back to the writer when there is none, custom
 * endpoints pick from a static member list or from every instance but an
 * exclusion list (so new replicas join them), and an instance endpoint names
 * one instance. A connection keeps its instance while it lives; when that
 * instance goes away (removed, or promoted) the next call moves it.
 */
import { badInput, HexadError } from '../common/errors.js'
import type { Cluster } from './cluster.js'
import type { Database } from './database.js'
import type { BatchOp, Key, ScanOptions, TransactionOptions, TxKeyspace, Value } from './kv.js'
import type { Reader } from './reader.js'
import { sqlEngine, type Dialect, type SqlOptions, type SqlResult, type SqlSession } from '../sql/index.js'

export type EndpointSpec =
  | { name: string; type: 'READER' | 'ANY'; members: string[] }
  | { name: string; type: 'READER' | 'ANY'; excluded: string[] }

const WRITER = 'writer'
const dec = new TextDecoder()

type Target = { instance: string; db: Database | null; reader: Reader | null }

/** @internal the cluster's endpoint table */
export class Endpoints {
  readonly #cluster: Cluster
  readonly #custom = new Map<string, EndpointSpec>()
  /** open connections per instance */
  readonly #load = new Map<string, number>()

  constructor(cluster: Cluster) { this.#cluster = cluster }

  names(): string[] { return [WRITER, 'reader', ...this.#custom.keys()] }

  /** @internal the current writer's database (SQL on replicas uses its catalog) */
  writer(): Database { return this.#cluster.writer }

  create(spec: EndpointSpec): void {
    if (!spec || typeof spec !== 'object') throw badInput('createEndpoint needs { name, type, members } or { name, type, excluded }')
    const { name, type } = spec
    if (typeof name !== 'string' || !/^[A-Za-z0-9_-]{1,63}$/.test(name)) throw badInput(`endpoint name must be 1-63 letters, digits, - or _, got ${JSON.stringify(name)}`)
    if (name === WRITER || name === 'reader') throw badInput(`"${name}" is a built-in endpoint`)
    if (this.#custom.has(name)) throw badInput(`endpoint ${JSON.stringify(name)} already exists`)
    if (type !== 'READER' && type !== 'ANY') throw badInput(`endpoint type must be 'READER' or 'ANY', got ${JSON.stringify(type)}`)
    const hasMembers = 'members' in spec, hasExcluded = 'excluded' in spec
    if (hasMembers === hasExcluded) throw badInput('give an endpoint either members (a static list) or excluded (all instances but these), not both')
    const list = hasMembers ? spec.members : spec.excluded
    if (!Array.isArray(list) || list.some(x => typeof x !== 'string')) throw badInput(`endpoint ${hasMembers ? 'members' : 'excluded'} must be an array of instance names`)
    if (hasMembers && list.length === 0) throw badInput('a static endpoint needs at least one member')
    this.#custom.set(name, hasMembers ? { name, type, members: [...list] } : { name, type, excluded: [...list] })
  }

  delete(name: string): void {
    if (!this.#custom.delete(name)) throw badInput(`no custom endpoint named ${JSON.stringify(name)}`)
  }

  connect(endpoint: string | { instance: string }): Connection {
    if (typeof endpoint === 'object' && endpoint !== null && typeof endpoint.instance === 'string') {
      const inst = endpoint.instance
      if (inst !== WRITER && !this.#cluster.reader(inst)) throw badInput(`no instance named ${JSON.stringify(inst)}`)
      return new Connection(this, `instance:${inst}`)
    }
    if (typeof endpoint !== 'string') throw badInput(`connect() takes an endpoint name or { instance }, got ${JSON.stringify(endpoint)}`)
    if (endpoint !== WRITER && endpoint !== 'reader' && !this.#custom.has(endpoint)) throw badInput(`no endpoint named ${JSON.stringify(endpoint)} (have ${this.names().join(', ')})`)
    return new Connection(this, endpoint)
  }

  /** @internal the instance a connection of `endpoint` should use now (keeping `current` if still eligible) */
  pick(endpoint: string, current: string | null): Target {
    const c = this.#cluster
    const writer = (): Target => ({ instance: WRITER, db: c.writer, reader: null })
    const asTarget = (name: string): Target => name === WRITER ? writer() : { instance: name, db: null, reader: c.reader(name)! }
    if (endpoint === WRITER) return writer()
    if (endpoint.startsWith('instance:')) {
      const inst = endpoint.slice('instance:'.length)
      if (inst === WRITER) return writer()
      const r = c.reader(inst)
      if (!r) throw new HexadError('HEXAD_CLOSED', `instance ${inst} is gone`)
      return asTarget(inst)
    }
    let eligible: string[]
    if (endpoint === 'reader') {
      eligible = c.readers.map(r => r.name)
      if (eligible.length === 0) return writer() // no replica: reads go to the writer
    } else {
      const spec = this.#custom.get(endpoint)
      if (!spec) throw new HexadError('HEXAD_CLOSED', `endpoint ${endpoint} was deleted`)
      const all = [...(spec.type === 'ANY' ? [WRITER] : []), ...c.readers.map(r => r.name)]
      eligible = 'members' in spec ? all.filter(n => spec.members.includes(n)) : all.filter(n => !spec.excluded.includes(n))
      if (eligible.length === 0) throw new HexadError('HEXAD_CLOSED', `endpoint ${endpoint} has no available instance`)
    }
    if (current && eligible.includes(current)) return asTarget(current)
    eligible.sort((a, b) => (this.#load.get(a) ?? 0) - (this.#load.get(b) ?? 0) || a.localeCompare(b))
    return asTarget(eligible[0])
  }

  /** open connections through the 'reader' endpoint (an auto-scaling metric) */
  readerEndpointConnections = 0

  /** @internal connection accounting for least-connections balancing */
  moved(from: string | null, to: string | null): void {
    if (from) this.#load.set(from, Math.max(0, (this.#load.get(from) ?? 0) - 1))
    if (to) this.#load.set(to, (this.#load.get(to) ?? 0) + 1)
  }
}

/** A connection through an endpoint. Writes are accepted only while it is on the writer. */
export class Connection {
  readonly endpoint: string
  readonly #eps: Endpoints
  #instance: string | null = null
  #closed = false

  /** @internal */
  constructor(eps: Endpoints, endpoint: string) {
    this.#eps = eps
    this.endpoint = endpoint
    this.#target() // binds now, so balancing sees it
    if (endpoint === 'reader') eps.readerEndpointConnections++
  }

  /** The instance this connection is on now: 'writer' or a replica's name. */
  get instance(): string { return this.#target().instance }

  get(key: Key): Promise<Uint8Array | undefined> { return this.keyspace(null).get(key) }
  async getString(key: Key): Promise<string | undefined> { const v = await this.get(key); return v && dec.decode(v) }
  scan(options: ScanOptions = {}): AsyncGenerator<[Uint8Array, Uint8Array]> { return this.keyspace(null).scan(options) }
  put(key: Key, value: Value): Promise<void> { return this.#db('put').put(key, value) }
  del(key: Key): Promise<void> { return this.#db('del').del(key) }
  batch(ops: BatchOp[]): Promise<void> { return this.#db('batch').batch(ops) }
  transaction<T>(fn: (tx: TxKeyspace & { keyspace(name: string): TxKeyspace }) => Promise<T>, options?: TransactionOptions): Promise<T> { return this.#db('transaction').transaction(fn, options) }
  /** One SQL statement: on the writer as its own transaction; on a replica read-only, at one snapshot. */
  sql<R = Record<string, unknown>>(text: string, params?: unknown[], options?: SqlOptions): Promise<SqlResult<R>> {
    try {
      const t = this.#target()
      return t.db ? t.db.sql<R>(text, params, options) : sqlEngine(this.#eps.writer()).sql(text, params, { ...options, replica: t.reader! })
    } catch (err) { return Promise.reject(err) }
  }

  /**
   * A SQL session on the instance this connection is on now (one per client
   * connection): on a replica it is read-only (25006 for writes) and a
   * BEGIN ... COMMIT block reads one snapshot. It stays on that instance.
   */
  session(options: { dialect?: Dialect } = {}): SqlSession {
    const t = this.#target()
    return t.db ? t.db.session(options) : sqlEngine(this.#eps.writer()).session({ ...options, replica: t.reader! })
  }

  /** Reads of another keyspace through this connection (null: the default one). */
  keyspace(name: string | null) {
    const target = () => this.#target()
    return {
      get: (key: Key): Promise<Uint8Array | undefined> => {
        try {
          const t = target()
          return t.db ? (name ? t.db.keyspace(name) : t.db).get(key) : (name ? t.reader!.keyspace(name) : t.reader!).get(key)
        } catch (err) { return Promise.reject(err) }
      },
      scan: (options: ScanOptions = {}): AsyncGenerator<[Uint8Array, Uint8Array]> => {
        const t = target()
        return t.db ? (name ? t.db.keyspace(name) : t.db).scan(options) : (name ? t.reader!.keyspace(name) : t.reader!).scan(options)
      },
    }
  }

  close(): void {
    if (this.#closed) return
    this.#closed = true
    if (this.endpoint === 'reader') this.#eps.readerEndpointConnections--
    this.#eps.moved(this.#instance, null)
    this.#instance = null
  }

  #target(): Target {
    if (this.#closed) throw new HexadError('HEXAD_CLOSED', `this connection to endpoint ${this.endpoint} is closed`)
    const t = this.#eps.pick(this.endpoint, this.#instance)
    if (t.instance !== this.#instance) { this.#eps.moved(this.#instance, t.instance); this.#instance = t.instance }
    return t
  }

  #db(what: string): Database {
    const t = this.#target()
    if (!t.db) throw badInput(`${what}: this connection (endpoint ${this.endpoint}) is on read replica ${t.instance}, which is read-only; write through the 'writer' endpoint`)
    return t.db
  }
}
