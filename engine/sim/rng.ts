/** A seeded PRNG (mulberry32) with the few draws the simulator needs. Same seed, same sequence. */
export class Rng {
  readonly seed: number
  #a: number
  constructor(seed: number) { this.seed = seed >>> 0; this.#a = this.seed }
  float(): number {
    this.#a = (this.#a + 0x6d2b79f5) >>> 0
    let t = this.#a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  /** integer in [lo, hi] inclusive */
  int(lo: number, hi: number): number { return lo + Math.floor(this.float() * (hi - lo + 1)) }
  bool(p = 0.5): boolean { return this.float() < p }
  pick<T>(xs: readonly T[]): T { return xs[Math.floor(this.float() * xs.length)] }
  bytes(n: number): Uint8Array {
    const b = new Uint8Array(n)
    for (let i = 0; i < n; i++) b[i] = Math.floor(this.float() * 256)
    return b
  }
  /** an independent stream derived from this one (so adding draws in one place does not shift another) */
  fork(): Rng { return new Rng(Math.floor(this.float() * 0x1_0000_0000)) }
}
