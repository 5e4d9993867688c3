/**
 * The clock seam: time and timers for the segment and the volume client.
 * `realClock` is the process's own; engine/sim/sim-clock.ts is virtual time
 * driven by the simulator's event queue, so a whole cluster runs the same
 * way every time from one seed.
 */
export type TimerHandle = { readonly __timer: unique symbol } | NodeJS.Timeout

export interface Clock {
  /** milliseconds, monotonic */
  now(): number
  setTimeout(fn: () => void, ms: number): TimerHandle
  clearTimeout(t: TimerHandle | null | undefined): void
  setInterval(fn: () => void, ms: number): TimerHandle
  clearInterval(t: TimerHandle | null | undefined): void
  /** runs `fn` after the current turn's I/O (a boxcar: work that arrived in the same turn joins) */
  setImmediate(fn: () => void): void
  /** the timer does not keep the process alive (no-op in virtual time) */
  unref(t: TimerHandle): void
}

export const realClock: Clock = {
  now: () => performance.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: t => { if (t) clearTimeout(t as NodeJS.Timeout) },
  setInterval: (fn, ms) => setInterval(fn, ms),
  clearInterval: t => { if (t) clearInterval(t as NodeJS.Timeout) },
  setImmediate: fn => { setImmediate(fn) },
  unref: t => { (t as NodeJS.Timeout).unref?.() },
}
