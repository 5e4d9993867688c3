/**
 * MySQL client/server protocol: packet payload reading and writing
 * (little-endian integers, length-encoded integers and strings), the
 * constants this server uses, and the generic OK / ERR / EOF packets.
 *
 * A packet on the wire is a 3-byte payload length, a 1-byte sequence id
 * and the payload; a payload of 0xffffff bytes or more continues in the
 * next packet (framing is in connection.ts).
 */

export class ProtocolError extends Error {}

export const CLIENT = {
  LONG_PASSWORD: 0x1,
  FOUND_ROWS: 0x2,
  LONG_FLAG: 0x4,
  CONNECT_WITH_DB: 0x8,
  NO_SCHEMA: 0x10,
  PROTOCOL_41: 0x200,
  INTERACTIVE: 0x400,
  SSL: 0x800,
  TRANSACTIONS: 0x2000,
  SECURE_CONNECTION: 0x8000,
  MULTI_STATEMENTS: 0x10000,
  MULTI_RESULTS: 0x20000,
  PS_MULTI_RESULTS: 0x40000,
  PLUGIN_AUTH: 0x80000,
  CONNECT_ATTRS: 0x100000,
  PLUGIN_AUTH_LENENC_CLIENT_DATA: 0x200000,
  DEPRECATE_EOF: 0x1000000,
} as const

export const STATUS = {
  IN_TRANS: 0x1,
  AUTOCOMMIT: 0x2,
  MORE_RESULTS_EXISTS: 0x8,
  NO_INDEX_USED: 0x20,
} as const

export const COM = {
  QUIT: 0x01, INIT_DB: 0x02, QUERY: 0x03, FIELD_LIST: 0x04, STATISTICS: 0x09, PROCESS_KILL: 0x0c, PING: 0x0e,
  CHANGE_USER: 0x11, STMT_PREPARE: 0x16, STMT_EXECUTE: 0x17, STMT_SEND_LONG_DATA: 0x18, STMT_CLOSE: 0x19,
  STMT_RESET: 0x1a, SET_OPTION: 0x1b, STMT_FETCH: 0x1c, RESET_CONNECTION: 0x1f,
} as const

/** Column types (enum_field_types). */
export const TYPE = {
  DECIMAL: 0x00, TINY: 0x01, SHORT: 0x02, LONG: 0x03, FLOAT: 0x04, DOUBLE: 0x05, NULL: 0x06, TIMESTAMP: 0x07,
  LONGLONG: 0x08, INT24: 0x09, DATE: 0x0a, TIME: 0x0b, DATETIME: 0x0c, YEAR: 0x0d, NEWDATE: 0x0e, VARCHAR: 0x0f,
  BIT: 0x10, TIMESTAMP2: 0x11, DATETIME2: 0x12, TIME2: 0x13, JSON: 0xf5, NEWDECIMAL: 0xf6, ENUM: 0xf7, SET: 0xf8,
  TINY_BLOB: 0xf9, MEDIUM_BLOB: 0xfa, LONG_BLOB: 0xfb, BLOB: 0xfc, VAR_STRING: 0xfd, STRING: 0xfe, GEOMETRY: 0xff,
} as const

/** Column definition flags. */
export const FLAG = { NOT_NULL: 1, PRI_KEY: 2, UNIQUE_KEY: 4, BLOB: 16, UNSIGNED: 32, BINARY: 128, NUM: 32768 } as const

/** Character sets (collation ids): utf8mb4_general_ci for text, binary for numbers and bytes. */
export const CHARSET = { utf8mb4: 45, binary: 63 } as const

export class PacketReader {
  pos = 0
  constructor(readonly buf: Buffer) {}
  get remaining(): number { return this.buf.length - this.pos }
  #need(n: number, what: string): void {
    if (this.pos + n > this.buf.length) throw new ProtocolError(`packet too short reading ${what} (${this.buf.length - this.pos} of ${n} bytes left)`)
  }
  u8(): number { this.#need(1, 'int<1>'); return this.buf[this.pos++] }
  u16(): number { this.#need(2, 'int<2>'); const v = this.buf.readUInt16LE(this.pos); this.pos += 2; return v }
  u24(): number { this.#need(3, 'int<3>'); const v = this.buf.readUIntLE(this.pos, 3); this.pos += 3; return v }
  u32(): number { this.#need(4, 'int<4>'); const v = this.buf.readUInt32LE(this.pos); this.pos += 4; return v }
  i8(): number { this.#need(1, 'int<1>'); return this.buf.readInt8(this.pos++) }
  i16(): number { this.#need(2, 'int<2>'); const v = this.buf.readInt16LE(this.pos); this.pos += 2; return v }
  i32(): number { this.#need(4, 'int<4>'); const v = this.buf.readInt32LE(this.pos); this.pos += 4; return v }
  i64(): bigint { this.#need(8, 'int<8>'); const v = this.buf.readBigInt64LE(this.pos); this.pos += 8; return v }
  u64(): bigint { this.#need(8, 'int<8>'); const v = this.buf.readBigUInt64LE(this.pos); this.pos += 8; return v }
  f32(): number { this.#need(4, 'float'); const v = this.buf.readFloatLE(this.pos); this.pos += 4; return v }
  f64(): number { this.#need(8, 'double'); const v = this.buf.readDoubleLE(this.pos); this.pos += 8; return v }
  bytes(n: number): Buffer { this.#need(n, `${n} bytes`); const b = this.buf.subarray(this.pos, this.pos + n); this.pos += n; return b }
  /** length-encoded integer */
  lenenc(): number {
    const b = this.u8()
    if (b < 0xfb) return b
    if (b === 0xfc) return this.u16()
    if (b === 0xfd) return this.u24()
    if (b === 0xfe) {
      const v = this.u64()
      if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new ProtocolError('length-encoded integer too large')
      return Number(v)
    }
    throw new ProtocolError(`invalid length-encoded integer prefix 0x${b.toString(16)}`)
  }
  lenencBytes(): Buffer { return this.bytes(this.lenenc()) }
  /** NUL-terminated string */
  cstring(): string {
    const end = this.buf.indexOf(0, this.pos)
    if (end < 0) throw new ProtocolError('unterminated string in packet')
    const s = this.buf.toString('utf8', this.pos, end)
    this.pos = end + 1
    return s
  }
  /** the rest of the packet */
  rest(): Buffer { const b = this.buf.subarray(this.pos); this.pos = this.buf.length; return b }
}

export class PacketWriter {
  #buf = Buffer.allocUnsafe(256)
  #len = 0
  #room(n: number): void {
    if (this.#len + n <= this.#buf.length) return
    let size = this.#buf.length * 2
    while (size < this.#len + n) size *= 2
    const b = Buffer.allocUnsafe(size)
    this.#buf.copy(b, 0, 0, this.#len)
    this.#buf = b
  }
  u8(v: number): this { this.#room(1); this.#buf[this.#len++] = v & 0xff; return this }
  u16(v: number): this { this.#room(2); this.#buf.writeUInt16LE(v, this.#len); this.#len += 2; return this }
  u24(v: number): this { this.#room(3); this.#buf.writeUIntLE(v, this.#len, 3); this.#len += 3; return this }
  u32(v: number): this { this.#room(4); this.#buf.writeUInt32LE(v >>> 0, this.#len); this.#len += 4; return this }
  i32(v: number): this { this.#room(4); this.#buf.writeInt32LE(v, this.#len); this.#len += 4; return this }
  i64(v: bigint): this { this.#room(8); this.#buf.writeBigInt64LE(v, this.#len); this.#len += 8; return this }
  f64(v: number): this { this.#room(8); this.#buf.writeDoubleLE(v, this.#len); this.#len += 8; return this }
  zeros(n: number): this { this.#room(n); this.#buf.fill(0, this.#len, this.#len + n); this.#len += n; return this }
  bytes(b: Uint8Array): this { this.#room(b.length); this.#buf.set(b, this.#len); this.#len += b.length; return this }
  str(s: string): this { return this.bytes(Buffer.from(s, 'utf8')) }
  cstring(s: string): this { return this.str(s).u8(0) }
  lenenc(n: number): this {
    if (n < 0xfb) return this.u8(n)
    if (n < 0x10000) return this.u8(0xfc).u16(n)
    if (n < 0x1000000) return this.u8(0xfd).u24(n)
    this.u8(0xfe)
    this.#room(8); this.#buf.writeBigUInt64LE(BigInt(n), this.#len); this.#len += 8
    return this
  }
  lenencBytes(b: Uint8Array): this { return this.lenenc(b.length).bytes(b) }
  lenencStr(s: string): this { return this.lenencBytes(Buffer.from(s, 'utf8')) }
  get length(): number { return this.#len }
  take(): Buffer { const b = Buffer.from(this.#buf.subarray(0, this.#len)); this.#len = 0; return b }
}

export function okPacket(affected: number, insertId: number, status: number, warnings = 0, info = ''): Buffer {
  const w = new PacketWriter().u8(0x00).lenenc(affected).lenenc(insertId).u16(status).u16(warnings)
  if (info) w.str(info)
  return w.take()
}

export function eofPacket(status: number, warnings = 0): Buffer {
  return new PacketWriter().u8(0xfe).u16(warnings).u16(status).take()
}

export function errPacket(errno: number, sqlstate: string, message: string): Buffer {
  const state = (sqlstate + 'HY000').slice(0, 5)
  return new PacketWriter().u8(0xff).u16(errno).str('#' + state).str(message.length > 8000 ? message.slice(0, 8000) + '…' : message).take()
}
