/**
 * The memcomparable key encoding (engine/sql/keys.ts): for random values of
 * every indexable type, including NULLs, negative numbers, doubles (-0,
 * infinities, NaN, subnormals), bigints beyond 2^53, decimals with trailing
 * zeros, strings with embedded zero bytes and astral characters, and
 * composite tuples with descending columns, the byte order of the encoded
 * keys equals the SQL order (NULLs last ascending, first descending), and
 * equal values (1.5 = 1.50) encode equally. The SQL order comes from a
 * model written here, not from the engine's compare().
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { encodeValue, KeyWriter } from '../engine/sql/keys.js'
import { Decimal, SqlDate, type Kind } from '../engine/sql/values.js'
import { baseSeed, Rng } from './helpers/sql-helpers.js'

type V = unknown

function gen(rng: Rng, kind: Kind): V {
  if (rng.bool(0.1)) return null
  switch (kind) {
    case 'int8': {
      const r = rng.int(0, 5)
      if (r === 0) return rng.pick([0, -1, 1, Number.MAX_SAFE_INTEGER, -Number.MAX_SAFE_INTEGER, 2 ** 32, -(2 ** 32), 2 ** 32 - 1])
      if (r === 1) return rng.pick([2n ** 63n - 1n, -(2n ** 63n), 2n ** 53n + 1n, -(2n ** 53n) - 3n])
      return rng.int(-1e6, 1e6) * (rng.bool(0.3) ? 4294967296 : 1) + rng.int(-5, 5)
    }
    case 'float8': return rng.pick([0, -0, 1.5, -1.5, Infinity, -Infinity, NaN, 5e-324, -5e-324, 1e308, -1e308, rng.float() * 1e6 - 5e5, rng.int(-10, 10)])
    case 'numeric': {
      const digits = String(rng.int(0, 99999))
      const s = rng.int(0, 6)
      return new Decimal(BigInt((rng.bool() ? '-' : '') + digits + '0'.repeat(rng.int(0, 3))), s)
    }
    case 'text': {
      const alphabet = ['a', 'b', 'z', '\u0000', '\u0001', 'é', '\uffff', '\u{1F600}', 'A', ' ', 'ab', '\u00ff']
      return Array.from({ length: rng.int(0, 5) }, () => rng.pick(alphabet)).join('')
    }
    case 'bytea': return Buffer.from(Array.from({ length: rng.int(0, 5) }, () => rng.pick([0, 0, 1, 0xff, 0xfe, 0x7f, 0x80])))
    case 'bool': return rng.bool()
    case 'timestamp': return new Date(rng.int(-2e12, 2e12))
    case 'date': return new SqlDate(rng.int(-50000, 50000))
  }
  throw new Error(kind)
}

/** The SQL order of two non-null values of one kind (a model, independent of the engine). */
function order(a: V, b: V, kind: Kind): number {
  switch (kind) {
    case 'int8': { const x = BigInt(a as number), y = BigInt(b as number); return x < y ? -1 : x > y ? 1 : 0 }
    case 'float8': {
      const x = a as number, y = b as number
      if (Number.isNaN(x) || Number.isNaN(y)) return Number.isNaN(x) === Number.isNaN(y) ? 0 : Number.isNaN(x) ? 1 : -1
      return x < y ? -1 : x > y ? 1 : 0
    }
    case 'numeric': {
      const x = a as Decimal, y = b as Decimal
      const s = Math.max(x.s, y.s)
      const p = x.m * 10n ** BigInt(s - x.s), q = y.m * 10n ** BigInt(s - y.s)
      return p < q ? -1 : p > q ? 1 : 0
    }
    case 'text': { const x = [...(a as string)].map(c => c.codePointAt(0)!), y = [...(b as string)].map(c => c.codePointAt(0)!); for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) return x[i] < y[i] ? -1 : 1; return x.length - y.length === 0 ? 0 : x.length < y.length ? -1 : 1 }
    case 'bytea': return Buffer.compare(a as Buffer, b as Buffer)
    case 'bool': return a === b ? 0 : a ? 1 : -1
    case 'timestamp': return Math.sign((a as Date).getTime() - (b as Date).getTime())
    case 'date': return Math.sign((a as SqlDate).days - (b as SqlDate).days)
  }
  throw new Error(kind)
}

function tupleOrder(a: V[], b: V[], kinds: Kind[], desc: boolean[]): number {
  for (let i = 0; i < kinds.length; i++) {
    const x = a[i], y = b[i]
    let c: number
    if (x === null || y === null) c = x === y ? 0 : x === null ? 1 : -1 // NULLs last ascending
    else c = order(x, y, kinds[i])
    if (c) return desc[i] ? -c : c
  }
  return 0
}

function encode(t: V[], kinds: Kind[], desc: boolean[]): Buffer {
  const w = new KeyWriter(8)
  t.forEach((v, i) => encodeValue(w, v, kinds[i], desc[i]))
  return w.result()
}

const KINDS: Kind[] = ['int8', 'float8', 'numeric', 'text', 'bytea', 'bool', 'timestamp', 'date']

test('byte order of encoded keys equals SQL order, for every indexable type, singly and in composite keys', () => {
  const seed = baseSeed()
  const rng = new Rng(seed)
  let pairs = 0
  for (let round = 0; round < 60; round++) {
    const width = rng.int(1, 3)
    const kinds = Array.from({ length: width }, () => rng.pick(KINDS))
    const desc = kinds.map(() => rng.bool(0.3))
    const tuples = Array.from({ length: 40 }, () => kinds.map(k => gen(rng, k)))
    const keys = tuples.map(t => encode(t, kinds, desc))
    for (let i = 0; i < tuples.length; i++) {
      for (let j = 0; j < tuples.length; j++) {
        const want = Math.sign(tupleOrder(tuples[i], tuples[j], kinds, desc))
        const got = Math.sign(Buffer.compare(keys[i], keys[j]))
        if (want !== got) assert.unreachable(`seed ${seed}: kinds ${kinds.join(',')} desc ${desc.join(',')}: ${String(tuples[i])} vs ${String(tuples[j])}: SQL order ${want}, key order ${got} (${keys[i].toString('hex')} vs ${keys[j].toString('hex')})`)
        pairs++
      }
    }
  }
  assert.ok(pairs > 90_000)
})

test('equal values encode equally; a key is never a prefix of a different one', () => {
  const eq = (a: V, b: V, k: Kind) => assert.is(encode([a], [k], [false]).toString('hex'), encode([b], [k], [false]).toString('hex'), `${String(a)} = ${String(b)}`)
  eq(new Decimal(15n, 1), new Decimal(1500n, 3), 'numeric')
  eq(new Decimal(0n, 0), new Decimal(0n, 4), 'numeric')
  eq(-0, 0, 'float8')
  eq(2 ** 53, 2n ** 53n, 'int8')
  const a = encode(['a'], ['text'], [false]), b = encode(['a\u0000'], ['text'], [false])
  assert.ok(!b.subarray(0, a.length).equals(a), '"a" is not a prefix of "a\\0"')
  assert.ok(Buffer.compare(a, b) < 0)
})

test.run()
