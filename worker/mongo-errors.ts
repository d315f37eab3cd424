// Sorting database errors into "this document can never be stored as it is" (store a fallback,
// or fail the job for good) and everything else (rethrow: BullMQ retries with backoff).
import { BSON, MongoServerSelectionError } from 'mongodb'
import { AppError } from '../shared/errors.ts'

/**
 * Server error codes that are about the document itself, so retrying cannot help. Codes are
 * MongoDB's; FerretDB answers 2 (BadValue) for keys with '.' or '$', nested arrays and
 * infinities.
 */
const PERMANENT_DOC_CODES = new Set([
  2, // BadValue
  9, // FailedToParse
  14, // TypeMismatch
  15, // Overflow
  22, // InvalidBSON
  52, // DollarPrefixedFieldName
  53, // InvalidIdField
  55, // InvalidDBRef
  56, // EmptyFieldName
  57, // DottedFieldName
  10334, // BSONObjectTooLarge
  16493, // document too large after update
  17280, // KeyTooLong
  17419, // document too large
])

/**
 * A document refused for what it is (size, shape), not because a server is unavailable.
 * `mongoCode` is the server's error code when there is one (10334 for a document over the size limit).
 */
export class DocumentRejectedError extends AppError {
  readonly code = 'document_rejected'
  constructor(
    message: string,
    readonly mongoCode?: number,
  ) {
    super(message)
  }
}

/** True when storing this exact document again can never succeed. */
export function isPermanentDocumentError(err: unknown, depth = 0): boolean {
  if (err instanceof DocumentRejectedError) return true
  // The driver wraps client-side failures of a bulk write: MongoBulkWriteError.errorResponse
  // holds the BSONError thrown while serialising.
  const inner = (err as { errorResponse?: unknown; cause?: unknown } | null) ?? {}
  for (const wrapped of [inner.errorResponse, inner.cause]) {
    if (depth < 3 && wrapped instanceof Error && wrapped !== err && isPermanentDocumentError(wrapped, depth + 1)) return true
  }
  // Client-side serialisation failures: BSON errors, and the RangeError the driver throws when a
  // document outgrows its buffer.
  if (err instanceof BSON.BSONError || err instanceof RangeError) return true
  const code = (err as { code?: unknown } | null)?.code
  return typeof code === 'number' && PERMANENT_DOC_CODES.has(code)
}

/** The whole server is unreachable: every document would fail the same way, so do not retry singly. */
export function isServerUnreachable(err: unknown): boolean {
  return err instanceof MongoServerSelectionError
}

/**
 * A short description of an error for logs and stored issues. Server messages quote the refused
 * value (FerretDB: `invalid value: { "v": [ [ 1, 2 ] ] } (nested arrays ...)`), so quoted and
 * braced parts are elided: client data never reaches a log line this way.
 */
export function describeError(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err)
  const elided = text
    .replace(/\{[\s\S]*\}/g, '{…}')
    .replace(/\[[\s\S]*\]/g, '[…]')
    .replace(/"[^"]*"/g, '"…"')
    .slice(0, 200)
  if (!(err instanceof Error)) return elided
  // Ours carry the server's numeric code apart from their own `code`; the description shows the server's.
  const code = err instanceof DocumentRejectedError ? err.mongoCode : (err as { code?: unknown }).code
  return `${err.name}${code !== undefined ? ` ${String(code)}` : ''}: ${elided}`
}
