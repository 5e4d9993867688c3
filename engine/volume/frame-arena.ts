/**
 * Shared memory for outgoing frames. A frame is written once into a
 * SharedArrayBuffer chunk and posted to every segment as a view of it: a
 * view of shared memory crosses threads without a copy, where a plain
 * buffer is copied for each of the six segments (serialized on the
 * writer's thread, then deserialized on the segment's).
 *
 * Chunks are bump-allocated and never written again once full: a frame's
 * bytes never change after it was placed, so a segment (or a decoded record
 * that is a view into its frame) may hold them as long as it likes. A chunk
 * is freed when the last view of it is gone, in whichever thread that is.
 * Nothing may write into a placed frame; a fault injector that flips bits
 * in transit must copy first (engine/sim/sim-network.ts does).
 */

/** chunk size; a frame bigger than a quarter of it gets a buffer of its own */
const CHUNK_BYTES = 4 << 20

export class FrameArena {
  #chunk: SharedArrayBuffer | null = null
  #used = 0

  /** A Buffer of `bytes` bytes in shared memory (contents undefined until written). */
  readonly alloc = (bytes: number): Buffer => {
    if (bytes > CHUNK_BYTES >> 2) return Buffer.from(new SharedArrayBuffer(bytes))
    if (!this.#chunk || this.#used + bytes > CHUNK_BYTES) { this.#chunk = new SharedArrayBuffer(CHUNK_BYTES); this.#used = 0 }
    const b = Buffer.from(this.#chunk, this.#used, bytes)
    this.#used += (bytes + 7) & ~7 // 8-byte aligned: readers may take typed-array views
    return b
  }
}
