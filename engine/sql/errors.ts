/**
 * SQL errors: a HexadError with code HEXAD_SQL and a PostgreSQL SQLSTATE
 * (`sqlstate`), so clients (and the wire layer) can branch on the standard
 * code. Engine errors are mapped: HEXAD_CONFLICT and HEXAD_DEADLOCK become
 * 40001 (serialization_failure: retry the transaction), HEXAD_CLOSED 57P01,
 * HEXAD_BAD_INPUT 22023, HEXAD_QUORUM_LOST 58030 (io_error), HEXAD_FENCED 57P01.
 */
import { HexadError } from '../common/errors.js'

export class SqlError extends HexadError {
  /** the five-character SQLSTATE, e.g. '42P01' */
  readonly sqlstate: string
  constructor(sqlstate: string, message: string, options?: { cause?: unknown }) {
    super('HEXAD_SQL', message, options)
    this.name = 'SqlError'
    this.sqlstate = sqlstate
  }
}

export const SQLSTATE = {
  syntax: '42601',
  undefinedTable: '42P01',
  undefinedColumn: '42703',
  undefinedFunction: '42883',
  undefinedObject: '42704',
  duplicateTable: '42P07',
  duplicateColumn: '42701',
  duplicateObject: '42710',
  ambiguousColumn: '42702',
  groupingError: '42803',
  datatypeMismatch: '42804',
  invalidColumnReference: '42P10',
  uniqueViolation: '23505',
  notNullViolation: '23502',
  badInput: '22P02',
  stringTooLong: '22001',
  numericOutOfRange: '22003',
  divisionByZero: '22012',
  invalidParameter: '22023',
  cardinality: '21000',
  serialization: '40001',
  inFailedTx: '25P02',
  activeTx: '25001',
  noActiveTx: '25P01',
  featureNotSupported: '0A000',
  programLimit: '54000',
  queryCanceled: '57014',
  adminShutdown: '57P01',
  ioError: '58030',
  internal: 'XX000',
} as const

export function sqlError(state: string, message: string): SqlError {
  return new SqlError(state, message)
}

export function unsupported(what: string): SqlError {
  return new SqlError(SQLSTATE.featureNotSupported, `not supported: ${what}`)
}

/** Any error thrown while running a statement, as a SqlError with a SQLSTATE. */
export function toSqlError(err: unknown): SqlError {
  if (err instanceof SqlError) return err
  if (err instanceof HexadError) {
    switch (err.code) {
      case 'HEXAD_CONFLICT':
      case 'HEXAD_DEADLOCK':
        return new SqlError(SQLSTATE.serialization, `could not serialize access: ${err.message}`, { cause: err })
      case 'HEXAD_CLOSED':
      case 'HEXAD_FENCED':
        return new SqlError(SQLSTATE.adminShutdown, err.message, { cause: err })
      case 'HEXAD_BAD_INPUT':
        return new SqlError(SQLSTATE.invalidParameter, err.message, { cause: err })
      case 'HEXAD_QUORUM_LOST':
      case 'HEXAD_IO':
        return new SqlError(SQLSTATE.ioError, err.message, { cause: err })
      default:
        return new SqlError(SQLSTATE.internal, err.message, { cause: err })
    }
  }
  const e = err as Error
  return new SqlError(SQLSTATE.internal, `internal error: ${e?.message ?? String(err)}`, { cause: err })
}
