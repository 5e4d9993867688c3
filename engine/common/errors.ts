/**
 * Typed errors with stable codes. Callers branch on `code`, never on the
 * message; the message names what was wrong in words a user can act on, and
 * `cause` keeps the underlying error where there is one.
 */
export type HexadErrorCode =
  | 'HEXAD_FENCED'
  | 'HEXAD_QUORUM_LOST'
  | 'HEXAD_CLOSED'
  | 'HEXAD_BAD_INPUT'
  | 'HEXAD_CORRUPTION'
  | 'HEXAD_LOCKED'
  | 'HEXAD_IO'
  | 'HEXAD_CONFLICT'
  | 'HEXAD_DEADLOCK'
  | 'HEXAD_SQL'

export class HexadError extends Error {
  readonly code: HexadErrorCode
  constructor(code: HexadErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'HexadError'
    this.code = code
  }
}

export function badInput(message: string): HexadError {
  return new HexadError('HEXAD_BAD_INPUT', message)
}

/** Programmer errors (a broken invariant) crash loudly; they are never caught as operating errors. */
export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new Error(`hexad invariant broken: ${message}`)
}
