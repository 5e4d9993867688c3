/**
 * Page ops: the storage tier's whole vocabulary. Storage applies them without
 * knowing what a page means; compute nodes own the page format.
 *
 *   init(image?)              the page becomes `image` (zero-padded), or all zeros
 *   write(offset, bytes)      copy bytes into the page at offset
 *   move(src, dst, len)       memmove inside the page (overlap-safe)
 *   fill(offset, len, byte)   set len bytes to byte
 */
import { badInput } from './errors.js'

export type PageOp =
  | { op: 'init'; image?: Uint8Array }
  | { op: 'write'; offset: number; bytes: Uint8Array }
  | { op: 'move'; src: number; dst: number; len: number }
  | { op: 'fill'; offset: number; len: number; byte: number }

/** Compact tuple form used in frames on the wire and on disk. */
export type EncodedOp =
  | [0, Uint8Array | null]
  | [1, number, Uint8Array]
  | [2, number, number, number]
  | [3, number, number, number]

export function encodeOp(op: PageOp): EncodedOp {
  switch (op.op) {
    case 'init': return [0, op.image ?? null]
    case 'write': return [1, op.offset, op.bytes]
    case 'move': return [2, op.src, op.dst, op.len]
    case 'fill': return [3, op.offset, op.len, op.byte]
  }
}

export function decodeOp(e: EncodedOp): PageOp {
  switch (e[0]) {
    case 0: return e[1] ? { op: 'init', image: e[1] } : { op: 'init' }
    case 1: return { op: 'write', offset: e[1], bytes: e[2] }
    case 2: return { op: 'move', src: e[1], dst: e[2], len: e[3] }
    case 3: return { op: 'fill', offset: e[1], len: e[2], byte: e[3] }
  }
}

/** Applies one encoded op to `page` in place. Ops were validated on the way in. */
export function applyEncodedOp(page: Uint8Array, e: EncodedOp): void {
  switch (e[0]) {
    case 0:
      page.fill(0)
      if (e[1]) page.set(e[1].subarray(0, page.length), 0)
      return
    case 1: page.set(e[2], e[1]); return
    case 2: page.copyWithin(e[2], e[1], e[1] + e[3]); return
    case 3: page.fill(e[3], e[1], e[1] + e[2]); return
  }
}

function isInt(n: unknown): n is number {
  return typeof n === 'number' && Number.isInteger(n)
}

/**
 * Validates a caller's op against the page size and returns its encoded form.
 * Every failure names the page, the op and the bound it broke.
 */
export function validateOp(op: unknown, pageId: number, index: number, pageSize: number): EncodedOp {
  const where = `page ${pageId} op #${index}`
  if (op === null || typeof op !== 'object') throw badInput(`${where}: expected an op object, got ${op === null ? 'null' : typeof op}`)
  const o = op as Record<string, unknown>
  const inRange = (start: unknown, len: unknown, what: string) => {
    if (!isInt(start) || start < 0) throw badInput(`${where} (${o.op}): ${what} must be a non-negative integer, got ${String(start)}`)
    if (!isInt(len) || len < 0) throw badInput(`${where} (${o.op}): length must be a non-negative integer, got ${String(len)}`)
    if (start + len > pageSize) throw badInput(`${where} (${o.op}): range [${start}, ${start + len}) lies outside the ${pageSize}-byte page`)
  }
  switch (o.op) {
    case 'init': {
      if (o.image === undefined || o.image === null) return [0, null]
      if (!(o.image instanceof Uint8Array)) throw badInput(`${where} (init): image must be a Uint8Array`)
      if (o.image.length > pageSize) throw badInput(`${where} (init): image of ${o.image.length} bytes exceeds the ${pageSize}-byte page`)
      return [0, o.image]
    }
    case 'write': {
      if (!(o.bytes instanceof Uint8Array)) throw badInput(`${where} (write): bytes must be a Uint8Array`)
      inRange(o.offset, o.bytes.length, 'offset')
      return [1, o.offset as number, o.bytes]
    }
    case 'move': {
      inRange(o.src, o.len, 'src')
      inRange(o.dst, o.len, 'dst')
      return [2, o.src as number, o.dst as number, o.len as number]
    }
    case 'fill': {
      inRange(o.offset, o.len, 'offset')
      if (!isInt(o.byte) || o.byte < 0 || o.byte > 255) throw badInput(`${where} (fill): byte must be an integer 0..255, got ${String(o.byte)}`)
      return [3, o.offset as number, o.len as number, o.byte as number]
    }
    default:
      throw badInput(`${where}: unknown op ${JSON.stringify(o.op)} (expected init, write, move or fill)`)
  }
}
