/**
 * Every error ringstate throws on purpose, in one place.
 *
 * Each error is an `Error` with a stable SCREAMING_SNAKE `code`, so callers can branch on
 * `error.code` without `instanceof` (which breaks across duplicated installs and Workers).
 * Messages never include event payloads or connection secrets. The README has a section per code.
 */
import type { AppendCondition } from './store/types.ts'

/** All stable error codes. Adding one is a minor change; renaming one is a breaking change. */
export const ErrorCode = {
  APPEND_CONDITION_FAILED: 'APPEND_CONDITION_FAILED',
  INVALID_EVENT: 'INVALID_EVENT',
  INVALID_QUERY: 'INVALID_QUERY',
  INVALID_CONDITION: 'INVALID_CONDITION',
  INVALID_OPTIONS: 'INVALID_OPTIONS',
  STORE_CLOSED: 'STORE_CLOSED',
  BUFFER_FULL: 'BUFFER_FULL',
  ABORTED: 'ABORTED',
  COMMAND_FAILED: 'COMMAND_FAILED',
  RETRIES_EXHAUSTED: 'RETRIES_EXHAUSTED',
  SNAPSHOT_CORRUPT: 'SNAPSHOT_CORRUPT',
  NATIVE_UNAVAILABLE: 'NATIVE_UNAVAILABLE',
  STORAGE_ERROR: 'STORAGE_ERROR',
  OVERLOADED: 'OVERLOADED',
  LEASE_LOST: 'LEASE_LOST',
  RUNTIME_UPDATE_FAILED: 'RUNTIME_UPDATE_FAILED',
  RUNTIME_COMMAND_FAILED: 'RUNTIME_COMMAND_FAILED',
  // HTTP-only codes (ringstate/http problem details):
  NOT_FOUND: 'NOT_FOUND',
  WAIT_TIMEOUT: 'WAIT_TIMEOUT',
  UNAUTHORIZED: 'UNAUTHORIZED',
  FORBIDDEN: 'FORBIDDEN',
  PAYLOAD_TOO_LARGE: 'PAYLOAD_TOO_LARGE',
  INTERNAL: 'INTERNAL',
  // Thrown by the native addon's boundary layer (crates/node-api `codes`), as plain Errors:
  NATIVE_PANIC: 'NATIVE_PANIC', // Rust panicked inside a call; the panic was caught
  NATIVE_INVALID_ARGUMENT: 'NATIVE_INVALID_ARGUMENT', // wrong type or out-of-range argument (TypeError/RangeError)
  NATIVE_CALL_FAILED: 'NATIVE_CALL_FAILED', // a Node-API call failed in the runtime
  NATIVE_BORROWED: 'NATIVE_BORROWED', // a native object's method was re-entered during a call on it
} as const
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode]

/** Base class of every ringstate error. */
export class RingstateError extends Error {
  readonly code: ErrorCode
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.code = code
    this.name = new.target.name
  }
}

/**
 * An append's condition matched an event: somebody decided on the same facts first.
 * `conflict` is the position of the first conflicting event when the backend knows it.
 */
export class AppendConditionFailedError extends RingstateError {
  readonly condition: AppendCondition
  readonly conflict: bigint | undefined
  constructor(condition: AppendCondition, conflict?: bigint) {
    super(
      ErrorCode.APPEND_CONDITION_FAILED,
      conflict === undefined
        ? 'append condition failed: an event matching the condition was appended'
        : `append condition failed: event at position ${conflict} matches the condition`,
    )
    this.condition = condition
    this.conflict = conflict
  }
}

/** An event to append is malformed: bad type, tags, id, metadata, or data that is not JSON. */
export class InvalidEventError extends RingstateError {
  constructor(message: string) { super(ErrorCode.INVALID_EVENT, message) }
}
/** A query is malformed: `[]`, an item with neither types nor tags, or bad strings. */
export class InvalidQueryError extends RingstateError {
  constructor(message: string) { super(ErrorCode.INVALID_QUERY, message) }
}
/** An append condition is malformed. */
export class InvalidConditionError extends RingstateError {
  constructor(message: string) { super(ErrorCode.INVALID_CONDITION, message) }
}
/** Options passed to a constructor or call are out of range or of the wrong type. */
export class InvalidOptionsError extends RingstateError {
  constructor(message: string) { super(ErrorCode.INVALID_OPTIONS, message) }
}
/** The store (or bus) was closed; nothing more can be done with it. */
export class StoreClosedError extends RingstateError {
  constructor(message = 'the store is closed') { super(ErrorCode.STORE_CLOSED, message) }
}
/** A bounded buffer in `error` overrun mode had no room; the rejected item is attached. */
export class BufferFullError<T = unknown> extends RingstateError {
  readonly item: T
  constructor(item: T, message = 'the ring buffer is full') {
    super(ErrorCode.BUFFER_FULL, message)
    this.item = item
  }
}
/** An operation was cancelled through its AbortSignal. */
export class AbortedError extends RingstateError {
  constructor(message = 'the operation was aborted', options?: { cause?: unknown }) {
    super(ErrorCode.ABORTED, message, options)
  }
}
/** A command handler threw a domain error; `cause` holds it. */
export class CommandFailedError extends RingstateError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(ErrorCode.COMMAND_FAILED, message, options)
  }
}
/** The command executor gave up after its retry limit on APPEND_CONDITION_FAILED. */
export class RetriesExhaustedError extends RingstateError {
  readonly attempts: number
  constructor(attempts: number, options?: { cause?: unknown }) {
    super(ErrorCode.RETRIES_EXHAUSTED, `gave up after ${attempts} attempts`, options)
    this.attempts = attempts
  }
}
/** A stored snapshot could not be decoded. */
export class SnapshotCorruptError extends RingstateError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(ErrorCode.SNAPSHOT_CORRUPT, message, options)
  }
}
/** RINGSTATE_NATIVE=1 demanded the addon and it could not be loaded; the message lists each path tried. */
export class NativeUnavailableError extends RingstateError {
  constructor(message: string) { super(ErrorCode.NATIVE_UNAVAILABLE, message) }
}
/** The database failed in a way that is not the caller's fault (connection lost, disk full). */
export class StorageError extends RingstateError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(ErrorCode.STORAGE_ERROR, message, options)
  }
}

/**
 * Too much work is queued (appends past `maxPendingAppends`, SSE clients past `maxClients`).
 * Retriable: nothing was written; try again after a short wait.
 */
export class OverloadedError extends RingstateError {
  constructor(message: string) { super(ErrorCode.OVERLOADED, message) }
}
/** A projection runner's lease on a shard expired or was taken over; its batch rolled back. */
export class LeaseLostError extends RingstateError {
  constructor(message: string) { super(ErrorCode.LEASE_LOST, message) }
}
/** A runtime program's `update` or `view` threw; `cause` holds the error, `position` the delivery's. */
export class RuntimeUpdateFailedError extends RingstateError {
  readonly position: bigint | undefined
  constructor(message: string, options: { cause?: unknown; position?: bigint }) {
    super(ErrorCode.RUNTIME_UPDATE_FAILED, message, options)
    this.position = options.position
  }
}
/** A runtime command threw or rejected; `cause` holds the error, `position` the delivery's. */
export class RuntimeCommandFailedError extends RingstateError {
  readonly position: bigint | undefined
  constructor(message: string, options: { cause?: unknown; position?: bigint }) {
    super(ErrorCode.RUNTIME_COMMAND_FAILED, message, options)
    this.position = options.position
  }
}
/** Something asked for by name or key does not exist (a cache entry, a projection, a route). */
export class NotFoundError extends RingstateError {
  constructor(message: string) { super(ErrorCode.NOT_FOUND, message) }
}
/** A read-your-writes wait (`waitFor`, `Prefer: wait`) did not reach its position in time. */
export class WaitTimeoutError extends RingstateError {
  constructor(message: string) { super(ErrorCode.WAIT_TIMEOUT, message) }
}
