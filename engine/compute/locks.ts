/**
 * Key write locks of the compute node, with deadlock detection.
 *
 * A transaction takes the lock of every key it writes, at the write, and
 * holds it until it commits (durably) or aborts. A second writer of the key
 * waits in FIFO order, as row locks behave in PostgreSQL and InnoDB, so a hot
 * key queues rather than failing. Before waiting, the waits-for chain is
 * followed from the holder: if it leads back to the requester, waiting would
 * deadlock, and the requester is the victim (HEXAD_DEADLOCK).
 */
import { HexadError } from '../common/errors.js'

export interface LockOwner {
  readonly id: number
  /** the owner this one waits for, if it waits */
  waitingFor: LockOwner | null
}

interface Lock {
  owner: LockOwner
  waiters: Array<{ owner: LockOwner; resolve: () => void; reject: (e: Error) => void }>
}

export class LockTable {
  readonly #locks = new Map<string, Lock>()
  waits = 0
  deadlocks = 0
  #queued = 0

  get size(): number { return this.#locks.size }

  /** How many acquisitions wait now for a lock another owner holds. */
  get queued(): number { return this.#queued }

  /** Whether `owner` holds `key`'s lock and someone waits for it. */
  heldAndWaited(key: string, owner: LockOwner): boolean {
    const lock = this.#locks.get(key)
    return lock !== undefined && lock.owner === owner && lock.waiters.length > 0
  }

  /** Resolves once `owner` holds `key` (at once if free or already its own). */
  acquire(key: string, owner: LockOwner, describe: () => string): Promise<void> | void {
    const lock = this.#locks.get(key)
    if (!lock) { this.#locks.set(key, { owner, waiters: [] }); return }
    if (lock.owner === owner) return
    for (let o: LockOwner | null = lock.owner, hops = 0; o && hops < 10_000; o = o.waitingFor, hops++) {
      if (o === owner) {
        this.deadlocks++
        throw new HexadError('HEXAD_DEADLOCK', `deadlock: transaction ${owner.id} would wait for ${describe()} held by transaction ${lock.owner.id}, which waits (directly or not) for transaction ${owner.id}; transaction ${owner.id} was chosen as the victim and aborted`)
      }
    }
    this.waits++
    this.#queued++
    owner.waitingFor = lock.owner
    return new Promise<void>((resolve, reject) => lock.waiters.push({ owner, resolve: () => { owner.waitingFor = null; resolve() }, reject }))
  }

  /** Releases every lock in `keys` held by `owner`, handing each to its next waiter. */
  releaseAll(keys: Iterable<string>, owner: LockOwner): void {
    for (const key of keys) {
      const lock = this.#locks.get(key)
      if (!lock) continue
      if (lock.owner !== owner) {
        // Still waiting (the transaction ended while its write waited): leave the queue.
        const i = lock.waiters.findIndex(w => w.owner === owner)
        if (i >= 0) {
          this.#queued--
          lock.waiters.splice(i, 1)[0].reject(new HexadError('HEXAD_CLOSED', `transaction ${owner.id} ended while waiting for a lock`))
        }
        owner.waitingFor = null
        continue
      }
      const next = lock.waiters.shift()
      if (!next) { this.#locks.delete(key); continue }
      this.#queued--
      lock.owner = next.owner
      // Everyone still waiting now waits for the new holder.
      for (const w of lock.waiters) w.owner.waitingFor = next.owner
      next.resolve()
    }
  }

  /** Fails every waiter (the database is closing). */
  failAll(err: Error): void {
    for (const lock of this.#locks.values()) for (const w of lock.waiters.splice(0)) w.reject(err)
    this.#locks.clear()
    this.#queued = 0
  }
}
