/**
 * Virtual time: one queue of timed events for the whole simulated cluster.
 * Nothing runs by itself; the simulator pops the next event, advances `now`
 * to its time, runs it, and lets the promise jobs it started settle before
 * the next one (see {@link SimClock.step}). Events at the same time run in
 * the order they were scheduled, so a run is a function of its seed.
 *
 * Each node (a segment, a writer) gets a {@link NodeClock}: the same queue,
 * but its timers die with it (a crash), and an exception thrown by one of
 * its callbacks is reported to the simulator as that node's failure.
 */
import type { Clock, TimerHandle } from '../storage/clock.js'

interface Event { t: number; seq: number; fn: () => void; interval: number; cancelled: boolean; owner: NodeClock | null }

export class SimClock {
  #now = 0
  #seq = 0
  readonly #heap: Event[] = []
  events = 0

  get now(): number { return this.#now }

  schedule(fn: () => void, ms: number, interval = 0, owner: NodeClock | null = null): Event {
    const e: Event = { t: this.#now + Math.max(0, ms), seq: ++this.#seq, fn, interval, cancelled: false, owner }
    this.#push(e)
    return e
  }

  /** Time of the next live event, or Infinity. */
  peek(): number {
    while (this.#heap.length && this.#heap[0].cancelled) this.#pop()
    return this.#heap.length ? this.#heap[0].t : Infinity
  }

  /** Runs the next event (if any at or before `until`); returns false when there is none. */
  step(until: number): boolean {
    if (this.peek() > until) return false
    const e = this.#pop()!
    this.#now = e.t
    if (e.interval > 0) { e.t = this.#now + e.interval; e.seq = ++this.#seq; this.#push(e) }
    this.events++
    if (e.owner) e.owner.run(e.fn)
    else e.fn()
    return true
  }

  /** Moves time forward with nothing to run (the queue is empty up to `t`). */
  advanceTo(t: number): void { if (t > this.#now) this.#now = t }

  #push(e: Event): void {
    const h = this.#heap
    h.push(e)
    let i = h.length - 1
    while (i > 0) {
      const p = (i - 1) >> 1
      if (less(h[p], e)) break
      h[i] = h[p]
      i = p
    }
    h[i] = e
  }

  #pop(): Event | undefined {
    const h = this.#heap
    if (h.length === 0) return undefined
    const top = h[0]
    const last = h.pop()!
    if (h.length) {
      let i = 0
      for (;;) {
        const l = 2 * i + 1
        if (l >= h.length) break
        const r = l + 1
        const c = r < h.length && less(h[r], h[l]) ? r : l
        if (less(last, h[c])) break
        h[i] = h[c]
        i = c
      }
      h[i] = last
    }
    return top
  }
}

function less(a: Event, b: Event): boolean { return a.t < b.t || (a.t === b.t && a.seq < b.seq) }

/** One node's view of the shared clock (implements the engine's Clock seam). */
export class NodeClock implements Clock {
  readonly name: string
  readonly #sim: SimClock
  readonly #live = new Set<Event>()
  readonly #onError: (name: string, err: unknown) => void
  dead = false

  constructor(sim: SimClock, name: string, onError: (name: string, err: unknown) => void) {
    this.#sim = sim
    this.name = name
    this.#onError = onError
  }

  now(): number { return this.#sim.now }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const e = this.#sim.schedule(() => { this.#live.delete(e); fn() }, ms, 0, this)
    this.#live.add(e)
    return e as unknown as TimerHandle
  }

  clearTimeout(t: TimerHandle | null | undefined): void {
    if (!t) return
    const e = t as unknown as Event
    e.cancelled = true
    this.#live.delete(e)
  }

  setInterval(fn: () => void, ms: number): TimerHandle {
    const e = this.#sim.schedule(fn, Math.max(1, ms), Math.max(1, ms), this)
    this.#live.add(e)
    return e as unknown as TimerHandle
  }

  clearInterval(t: TimerHandle | null | undefined): void { this.clearTimeout(t) }

  setImmediate(fn: () => void): void { this.setTimeout(fn, 0) }

  unref(): void {}

  /** Runs a callback on behalf of this node: nothing after its death; an exception is the node's failure. */
  run(fn: () => void): void {
    if (this.dead) return
    try {
      fn()
    } catch (err) {
      this.#onError(this.name, err)
    }
  }

  /** The node crashed: none of its timers fire again. */
  kill(): void {
    this.dead = true
    for (const e of this.#live) e.cancelled = true
    this.#live.clear()
  }
}
