/**
 * Errors as `application/problem+json` (RFC 9457), in one place: every non-2xx answer of the app
 * goes through `problemResponse`, so the status mapping of DESIGN.md section 8 lives here only.
 *
 * What a body may carry is deliberately narrow: the error's own message (ringstate's messages never
 * hold payloads or secrets), its code, and for a conflict the conflicting position. Anything that is
 * not a ringstate error becomes 500 `INTERNAL` with no detail at all, so a driver message, a stack
 * trace or a connection string can never reach a client.
 */
import { ErrorCode, RingstateError, type AppendConditionFailedError } from '../errors.ts'

/**
 * An error raised by the HTTP layer itself (`UNAUTHORIZED`, `FORBIDDEN`, `PAYLOAD_TOO_LARGE`, ...),
 * with the same stable `code` as every other ringstate error.
 */
export class HttpProblem extends RingstateError {
  /** Extra response headers (`WWW-Authenticate`, `Retry-After`). */
  readonly headers: Record<string, string>
  constructor(code: ErrorCode, message: string, headers: Record<string, string> = {}) {
    super(code, message)
    this.headers = headers
  }
}

/** The body of every non-2xx response. */
export interface ProblemDetails {
  /** A URI naming the kind of problem, `urn:ringstate:error:<CODE>` (the README has a section per code). */
  type: string
  title: string
  status: number
  detail: string
  code: ErrorCode
  /** The position of the first conflicting event (APPEND_CONDITION_FAILED), as a decimal string. */
  conflict?: string
}

const titles: Partial<Record<ErrorCode, string>> = {
  APPEND_CONDITION_FAILED: 'Append condition failed',
  INVALID_EVENT: 'Invalid event',
  INVALID_QUERY: 'Invalid query',
  INVALID_CONDITION: 'Invalid condition',
  INVALID_OPTIONS: 'Invalid options',
  STORE_CLOSED: 'Store closed',
  STORAGE_ERROR: 'Storage unavailable',
  OVERLOADED: 'Overloaded',
  NOT_FOUND: 'Not found',
  WAIT_TIMEOUT: 'Wait timed out',
  UNAUTHORIZED: 'Unauthorized',
  FORBIDDEN: 'Forbidden',
  PAYLOAD_TOO_LARGE: 'Payload too large',
  ABORTED: 'Aborted',
  INTERNAL: 'Internal error',
}

/** Seconds a client is told to wait after `OVERLOADED`, unless the error names its own. */
const RETRY_AFTER_SECONDS = '1'

/**
 * The HTTP status of a ringstate error code (DESIGN.md section 8). `preconditioned` is true when
 * the append carried `If-Match`: its conflict is then 412 instead of 409.
 */
export function statusOf(code: string, preconditioned = false): number {
  switch (code) {
    case ErrorCode.INVALID_EVENT:
    case ErrorCode.INVALID_QUERY:
    case ErrorCode.INVALID_CONDITION:
    case ErrorCode.INVALID_OPTIONS:
      return 400
    case ErrorCode.UNAUTHORIZED:
      return 401
    case ErrorCode.FORBIDDEN:
      return 403
    case ErrorCode.NOT_FOUND:
      return 404
    case ErrorCode.APPEND_CONDITION_FAILED:
      return preconditioned ? 412 : 409
    case ErrorCode.PAYLOAD_TOO_LARGE:
      return 413
    case ErrorCode.OVERLOADED:
      // The store's append queue is full: the client sent too much (429). The SSE client limit is
      // the server's own capacity and answers 503 through HttpProblem's status override.
      return 429
    case ErrorCode.ABORTED:
      // The client went away; nobody reads this answer, but it must not be a 500.
      return 499
    case ErrorCode.STORE_CLOSED:
    case ErrorCode.STORAGE_ERROR:
      return 503
    case ErrorCode.WAIT_TIMEOUT:
      return 504
    default:
      return 500
  }
}

/** Marks an error that must answer with a given status instead of its code's default. */
export class StatusProblem extends HttpProblem {
  readonly status: number
  constructor(status: number, code: ErrorCode, message: string, headers: Record<string, string> = {}) {
    super(code, message, headers)
    this.status = status
  }
}

/**
 * Turn anything thrown into a problem+json response. Only `RingstateError`s keep their message;
 * every other error is 500 `INTERNAL` with a fixed detail.
 */
export function problemResponse(error: unknown, options: { preconditioned?: boolean } = {}): Response {
  const known = isRingstateError(error)
  const code: ErrorCode = known ? error.code : ErrorCode.INTERNAL
  const status = error instanceof StatusProblem ? error.status : statusOf(code, options.preconditioned)
  const body: ProblemDetails = {
    type: `urn:ringstate:error:${code}`,
    title: titles[code] ?? 'Error',
    status,
    // INTERNAL says nothing; a STORAGE_ERROR's message may come from a driver unless this layer wrote it.
    detail: known && status !== 500 && (code !== ErrorCode.STORAGE_ERROR || error instanceof HttpProblem)
      ? error.message
      : genericDetail(code),
    code,
  }
  if (code === ErrorCode.APPEND_CONDITION_FAILED) {
    const conflict = (error as AppendConditionFailedError).conflict
    if (typeof conflict === 'bigint') body.conflict = conflict.toString()
  }
  const headers: Record<string, string> = { 'content-type': 'application/problem+json' }
  if (error instanceof HttpProblem) Object.assign(headers, error.headers)
  if (code === ErrorCode.OVERLOADED && headers['retry-after'] === undefined) headers['retry-after'] = RETRY_AFTER_SECONDS
  return new Response(JSON.stringify(body), { status, headers })
}

function genericDetail(code: ErrorCode): string {
  return code === ErrorCode.STORAGE_ERROR ? 'the storage is unavailable; try again later' : 'internal error'
}

/** True for an error carrying one of ringstate's codes (duplicated installs included). */
export function isRingstateError(error: unknown): error is RingstateError {
  return (
    error instanceof Error &&
    typeof (error as { code?: unknown }).code === 'string' &&
    Object.hasOwn(ErrorCode, (error as unknown as { code: string }).code)
  )
}
