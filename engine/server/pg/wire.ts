/**
 * PostgreSQL protocol v3 framing: the backend messages the server sends and
 * a reader for the frontend messages it receives.
 *
 *   frontend message := type:byte length:int32 body[length - 4]
 *   backend message  := type:byte length:int32 body[length - 4]
 *
 * Start-up (SSLRequest, StartupMessage, authentication) belongs to
 * pg-gateway; CancelRequest (no type byte) is read in server.ts.
 */

/** Builds backend messages into one growing buffer (many messages, one socket write). */
export class MessageWriter {
  #buf = Buffer.allocUnsafe(16 * 1024)
  #len = 0
  #start = -1

  get length(): number { return this.#len }

  #ensure(n: number): void {
    if (this.#len + n <= this.#buf.length) return
    let size = this.#buf.length * 2
    while (size < this.#len + n) size *= 2
    const b = Buffer.allocUnsafe(size)
    this.#buf.copy(b, 0, 0, this.#len)
    this.#buf = b
  }

  begin(type: string): this {
    this.#ensure(5)
    this.#buf[this.#len] = type.charCodeAt(0)
    this.#start = this.#len + 1
    this.#len += 5
    return this
  }

  end(): this {
    this.#buf.writeInt32BE(this.#len - this.#start, this.#start)
    this.#start = -1
    return this
  }

  byte(n: number): this { this.#ensure(1); this.#buf[this.#len++] = n; return this }
  int16(n: number): this { this.#ensure(2); this.#buf.writeInt16BE(n, this.#len); this.#len += 2; return this }
  int32(n: number): this { this.#ensure(4); this.#buf.writeInt32BE(n, this.#len); this.#len += 4; return this }
  uint32(n: number): this { this.#ensure(4); this.#buf.writeUInt32BE(n >>> 0, this.#len); this.#len += 4; return this }

  cstring(s: string): this {
    // short ASCII (command tags, setting names): byte by byte, without the UTF-8 encoder's call
    if (s.length <= 64) {
      this.#ensure(s.length + 1)
      const at = this.#len
      let i = 0
      for (; i < s.length; i++) {
        const c = s.charCodeAt(i)
        if (c === 0 || c > 0x7f) break
        this.#buf[at + i] = c
      }
      if (i === s.length) {
        this.#len = at + i
        this.#buf[this.#len++] = 0
        return this
      }
    }
    const n = Buffer.byteLength(s)
    this.#ensure(n + 1)
    this.#buf.write(s, this.#len, 'utf8')
    this.#len += n
    this.#buf[this.#len++] = 0
    return this
  }

  bytes(b: Uint8Array): this {
    this.#ensure(b.length)
    this.#buf.set(b, this.#len)
    this.#len += b.length
    return this
  }

  /** A length-prefixed value (int32 length, -1 for NULL). */
  value(b: Buffer | null): this {
    if (b === null) return this.int32(-1)
    this.int32(b.length)
    return this.bytes(b)
  }

  /** Takes the bytes written so far and starts over. */
  take(): Buffer {
    const out = Buffer.from(this.#buf.subarray(0, this.#len))
    this.#len = 0
    if (this.#buf.length > 1 << 20) this.#buf = Buffer.allocUnsafe(16 * 1024)
    return out
  }

  // ------------------------------------------------------------ messages

  authenticationOk(): this { return this.begin('R').int32(0).end() }
  parameterStatus(name: string, value: string): this { return this.begin('S').cstring(name).cstring(value).end() }
  backendKeyData(pid: number, secret: number): this { return this.begin('K').int32(pid).int32(secret).end() }
  readyForQuery(status: 'I' | 'T' | 'E'): this { return this.begin('Z').byte(status.charCodeAt(0)).end() }
  parseComplete(): this { return this.begin('1').end() }
  bindComplete(): this { return this.begin('2').end() }
  closeComplete(): this { return this.begin('3').end() }
  noData(): this { return this.begin('n').end() }
  portalSuspended(): this { return this.begin('s').end() }
  emptyQueryResponse(): this { return this.begin('I').end() }
  commandComplete(tag: string): this { return this.begin('C').cstring(tag).end() }

  parameterDescription(oids: number[]): this {
    this.begin('t').int16(oids.length)
    for (const o of oids) this.uint32(o)
    return this.end()
  }

  rowDescription(fields: Array<{ name: string; oid: number; tableOid?: number; column?: number }>, formats: number[]): this {
    this.begin('T').int16(fields.length)
    fields.forEach((f, i) => {
      const size = TYPE_SIZE[f.oid] ?? -1
      this.cstring(f.name).uint32(f.tableOid ?? 0).int16(f.column ?? 0).uint32(f.oid).int16(size).int32(-1).int16(formats.length === 1 ? formats[0] : formats[i] ?? 0)
    })
    return this.end()
  }

  dataRow(values: Array<Buffer | null>): this {
    this.begin('D').int16(values.length)
    for (const v of values) this.value(v)
    return this.end()
  }

  /** ErrorResponse ('E') or NoticeResponse ('N'). */
  error(e: { severity: string; code: string; message: string; detail?: string; hint?: string; position?: number }, type = 'E'): this {
    this.begin(type)
    this.byte(0x53).cstring(e.severity) // S
    this.byte(0x56).cstring(e.severity) // V (non-localized)
    this.byte(0x43).cstring(e.code)     // C
    this.byte(0x4d).cstring(e.message)  // M
    if (e.detail) this.byte(0x44).cstring(e.detail)
    if (e.hint) this.byte(0x48).cstring(e.hint)
    if (e.position) this.byte(0x50).cstring(String(e.position))
    this.byte(0)
    return this.end()
  }

  copyInResponse(columns: number, binary = false): this {
    this.begin('G').byte(binary ? 1 : 0).int16(columns)
    for (let i = 0; i < columns; i++) this.int16(binary ? 1 : 0)
    return this.end()
  }

  copyOutResponse(columns: number): this {
    this.begin('H').byte(0).int16(columns)
    for (let i = 0; i < columns; i++) this.int16(0)
    return this.end()
  }

  copyData(b: Uint8Array): this { return this.begin('d').bytes(b).end() }
  copyDone(): this { return this.begin('c').end() }
}

/** typlen of the fixed-size types (RowDescription's data type size). */
const TYPE_SIZE: Record<number, number> = { 16: 1, 20: 8, 21: 2, 23: 4, 26: 4, 700: 4, 701: 8, 1082: 4, 1114: 8, 1184: 8 }

/** A protocol violation: the connection is closed after one FATAL 08P01. */
export class ProtocolError extends Error {
  constructor(message: string) { super(message); this.name = 'ProtocolError' }
}

/** Reads the fields of one frontend message body. */
export class MessageReader {
  #pos = 0
  constructor(readonly body: Buffer) {}

  get remaining(): number { return this.body.length - this.#pos }

  #need(n: number): void {
    if (this.#pos + n > this.body.length) throw new ProtocolError(`message too short: needed ${n} more bytes at offset ${this.#pos} of ${this.body.length}`)
  }

  byte(): number { this.#need(1); return this.body[this.#pos++] }
  int16(): number { this.#need(2); const v = this.body.readInt16BE(this.#pos); this.#pos += 2; return v }
  int32(): number { this.#need(4); const v = this.body.readInt32BE(this.#pos); this.#pos += 4; return v }
  uint32(): number { this.#need(4); const v = this.body.readUInt32BE(this.#pos); this.#pos += 4; return v }

  cstring(): string {
    const end = this.body.indexOf(0, this.#pos)
    if (end < 0) throw new ProtocolError('string without its terminating zero byte')
    const s = this.body.toString('utf8', this.#pos, end)
    this.#pos = end + 1
    return s
  }

  bytes(n: number): Buffer {
    if (n < 0) throw new ProtocolError(`negative length ${n}`)
    this.#need(n)
    const b = this.body.subarray(this.#pos, this.#pos + n)
    this.#pos += n
    return b
  }

  rest(): Buffer { const b = this.body.subarray(this.#pos); this.#pos = this.body.length; return b }

  /** A count field that must be in [0, max]. */
  count(max: number, what: string): number {
    const n = this.int16()
    if (n < 0 || n > max) throw new ProtocolError(`${what} count ${n} out of range`)
    return n
  }
}
