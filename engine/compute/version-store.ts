/**
 * Recent committed versions of keys, so that a transaction reads one
 * snapshot while the B+tree holds only the newest state.
 *
 * Model: commits are numbered in the order they are published (commit
 * sequence numbers, `seq`), which is also the order of their LSNs, so
 * "durable" is a prefix: every seq <= `durableSeq` is durable. A snapshot is
 * a durable seq; a reader never sees a commit that is not durable.
 *
 * For every key that a commit changed after the oldest snapshot still in use
 * (or that is not durable yet), the store keeps `base` (the value before the
 * first kept version) and the versions after it, ascending by seq. A read at
 * snapshot S takes the newest version with seq <= S, else `base`; a key not
 * in the store has the same value at every live snapshot, and the tree has
 * it.
 *
 * Invariant: an entry leaves the store only when its newest version is at
 * or below every snapshot in use and durable; the tree then holds exactly
 * that value.
 */
import { assert } from '../common/errors.js'

export interface KeyVersions {
  /** its key in the store (storeKey) */
  id: string
  ks: number
  key: Uint8Array
  base: Uint8Array | null
  versions: Array<{ seq: number; value: Uint8Array | null }>
}

export type Resolved = { found: true; value: Uint8Array | null } | { found: false }
const NOT_FOUND: Resolved = Object.freeze({ found: false })

export function storeKey(ks: number, key: Uint8Array): string {
  return ks + ':' + Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString('latin1')
}

export class VersionStore {
  readonly #entries = new Map<string, KeyVersions>()
  /** live snapshots and how many transactions hold each */
  readonly #snapshots = new Map<number, number>()
  /** commits published (highest seq handed out) */
  lastSeq = 0
  /** every seq at or below this is durable */
  durableSeq = 0
  readonly #durable = new Set<number>()
  #waiters: Array<{ seq: number; resolve: () => void }> = []

  get size(): number { return this.#entries.size }

  /**
   * The newest snapshot handed out and how many hold it, kept out of
   * #snapshots: nearly every snapshot is taken and released at the durable
   * point, and a Map entry made and deleted per read costs its rehashes.
   * The durable point only grows, so an older one never becomes hot again.
   */
  #hotSeq = -1
  #hotCount = 0

  /** Takes a snapshot at the durable point; release it with `release`. */
  acquire(): number {
    const s = this.durableSeq
    if (s === this.#hotSeq) { this.#hotCount++; return s }
    if (this.#hotCount > 0) this.#snapshots.set(this.#hotSeq, (this.#snapshots.get(this.#hotSeq) ?? 0) + this.#hotCount)
    this.#hotSeq = s
    this.#hotCount = 1
    return s
  }

  release(snapshot: number): void {
    if (snapshot === this.#hotSeq && this.#hotCount > 0) { this.#hotCount--; return }
    const n = this.#snapshots.get(snapshot)
    if (!n) return
    if (n === 1) this.#snapshots.delete(snapshot)
    else this.#snapshots.set(snapshot, n - 1)
  }

  /** Snapshots in use (a count per transaction or read holding one). */
  get snapshotsHeld(): number {
    let n = this.#hotCount
    for (const c of this.#snapshots.values()) n += c
    return n
  }

  nextSeq(): number { return ++this.lastSeq }

  /** Records a committed change. `before` is the tree's value before it (used only if the key is new to the store). */
  record(ks: number, key: Uint8Array, seq: number, value: Uint8Array | null, before: Uint8Array | null): void {
    const k = storeKey(ks, key)
    let e = this.#entries.get(k)
    if (!e) { e = { id: k, ks, key, base: before, versions: [] }; this.#entries.set(k, e) }
    const last = e.versions[e.versions.length - 1]
    assert(!last || last.seq <= seq, 'versions recorded out of order')
    if (last && last.seq === seq) last.value = value
    else e.versions.push({ seq, value })
  }

  /** Marks a commit durable; durability is a prefix in seq order. */
  markDurable(seq: number): void {
    this.#durable.add(seq)
    while (this.#durable.has(this.durableSeq + 1)) { this.#durable.delete(this.durableSeq + 1); this.durableSeq++ }
    if (this.#waiters.length) {
      const still = []
      for (const w of this.#waiters) if (w.seq <= this.durableSeq) w.resolve(); else still.push(w)
      this.#waiters = still
    }
  }

  /** Resolves once commit `seq` is durable (visible to new snapshots). */
  whenDurable(seq: number): Promise<void> {
    if (seq <= this.durableSeq) return Promise.resolve()
    return new Promise(resolve => this.#waiters.push({ seq, resolve }))
  }

  /** The newest seq that changed this key after `snapshot`, or 0. */
  newestChange(ks: number, key: Uint8Array): number {
    const e = this.#entries.get(storeKey(ks, key))
    return e && e.versions.length ? e.versions[e.versions.length - 1].seq : 0
  }

  /** The value of a key at snapshot S, if the store knows it (else the tree is right). */
  resolve(ks: number, key: Uint8Array, snapshot: number): Resolved {
    if (this.#entries.size === 0) return NOT_FOUND
    const e = this.#entries.get(storeKey(ks, key))
    return e ? { found: true, value: valueAt(e, snapshot) } : { found: false }
  }

  /** Whether a commit newer than `snapshot` changed this key. */
  changedAfter(ks: number, key: Uint8Array, snapshot: number): boolean {
    if (this.#entries.size === 0) return false
    const e = this.#entries.get(storeKey(ks, key))
    return !!e && e.versions.length > 0 && e.versions[e.versions.length - 1].seq > snapshot
  }

  /** Entries of keyspace `ks` (unordered); callers filter by range. */
  *entriesOf(ks: number): Iterable<KeyVersions> {
    for (const e of this.#entries.values()) if (e.ks === ks) yield e
  }

  /** Drops what no snapshot can need any more. */
  prune(): void {
    let horizon = this.durableSeq
    if (this.#hotCount > 0 && this.#hotSeq < horizon) horizon = this.#hotSeq
    for (const s of this.#snapshots.keys()) if (s < horizon) horizon = s
    for (const e of this.#entries.values()) {
      let i = -1
      for (let j = e.versions.length - 1; j >= 0; j--) if (e.versions[j].seq <= horizon) { i = j; break }
      if (i < 0) continue
      if (i === e.versions.length - 1) { this.#entries.delete(e.id); continue }
      e.base = e.versions[i].value
      e.versions.splice(0, i + 1)
    }
  }
}

export function valueAt(e: KeyVersions, snapshot: number): Uint8Array | null {
  for (let j = e.versions.length - 1; j >= 0; j--) if (e.versions[j].seq <= snapshot) return e.versions[j].value
  return e.base
}
