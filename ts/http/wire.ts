/**
 * The JSON wire format of ringstate/http: positions as decimal strings both ways, events as
 * `{ position, type, tags, data, metadata, id, recordedAt }`, and the parsers that turn request
 * parameters into store arguments. Everything a client sends is checked here or by the store's own
 * validators (ts/store/validate.ts), so HTTP answers with the same codes as the library.
 */
import { ErrorCode, InvalidConditionError, InvalidQueryError } from '../errors.ts'
import { validateCondition, validateQuery } from '../store/validate.ts'
import type { EventPage, EventRecord } from '../store/core/backend.ts'
import { recordJson } from '../store/core/event-json.ts'
import type { AppendCondition, Query, QueryItem, SequencedEvent } from '../store/types.ts'
import { HttpProblem } from './problem.ts'

/** The largest position PostgreSQL's bigint can hold. */
const MAX_POSITION = 9_223_372_036_854_775_807n
const DECIMAL = /^(?:0|[1-9][0-9]{0,18})$/

/**
 * Parse a position given as a decimal string. Anything else (a JSON number included: it loses
 * precision past 2^53) is rejected with `fail`, so each route reports its own code.
 */
export function parsePosition(value: unknown, what: string, fail: (message: string) => Error): bigint {
  if (typeof value !== 'string' || !DECIMAL.test(value)) {
    throw fail(`${what} must be a position as a decimal string (like "42"), got ${describe(value)}`)
  }
  const position = BigInt(value)
  if (position > MAX_POSITION) throw fail(`${what} is larger than the largest position`)
  return position
}

function describe(value: unknown): string {
  if (typeof value === 'string') return value.length > 40 ? 'a string that is not a position' : JSON.stringify(value)
  if (typeof value === 'number') return 'a JSON number'
  return value === null ? 'null' : typeof value
}

const invalidQuery = (message: string): Error => new InvalidQueryError(message)
const invalidCondition = (message: string): Error => new InvalidConditionError(message)

/** An event as a record: its tags, data and metadata as JSON text, which is how the store keeps them. */
export function recordOf(event: SequencedEvent): EventRecord {
  return {
    position: event.position,
    type: event.type,
    tagsJson: JSON.stringify(event.tags),
    dataJson: JSON.stringify(event.data) ?? 'null',
    metadataJson: JSON.stringify(event.metadata),
    id: event.id,
    recordedAt: event.recordedAt,
  }
}

/** One event as JSON text. */
export function eventJson(event: SequencedEvent): string {
  return recordJson(recordOf(event))
}

/**
 * The body of a page, `{ events: [...], next? }`: the store's own bytes when it built the whole
 * body (sent as they are), bytes when it built the events' JSON as bytes (copied once between the
 * few ASCII bytes around them, never decoded), else text.
 */
export function pageBody(page: EventPage): Uint8Array<ArrayBuffer> | string {
  if ('body' in page) return page.body
  const tail = page.next === undefined ? ']}' : `],"next":"${page.next}"}`
  if (typeof page.json === 'string') return PAGE_HEAD + page.json + tail
  const body = new Uint8Array(PAGE_HEAD.length + page.json.length + tail.length)
  writeAscii(body, 0, PAGE_HEAD)
  body.set(page.json, PAGE_HEAD.length)
  writeAscii(body, PAGE_HEAD.length + page.json.length, tail)
  return body
}

const PAGE_HEAD = '{"events":['

function writeAscii(bytes: Uint8Array, at: number, text: string): void {
  for (let i = 0; i < text.length; i++) bytes[at + i] = text.charCodeAt(i)
}

/** A value with every bigint turned into its decimal string (for JSON). */
export function toWire(value: unknown): unknown {
  if (typeof value === 'bigint') return value.toString()
  if (value instanceof Date) return value.toISOString()
  if (Array.isArray(value)) return value.map(toWire)
  if (typeof value === 'object' && value !== null) {
    const out: Record<string, unknown> = {}
    for (const [key, entry] of Object.entries(value)) if (entry !== undefined) out[key] = toWire(entry)
    return out
  }
  return value
}

/** What a page request asks for, ready for `store.query`. */
export interface PageRequest {
  query: Query
  after?: bigint
  before?: bigint
  limit: number
  backwards: boolean
}

/**
 * The query of `GET /v1/events` and `GET /v1/subscribe`: `query` (URL-encoded JSON), or `type` and
 * `tag` (repeatable; together one item), or nothing for every event.
 */
export function queryFromParams(url: URL): Query {
  const json = url.searchParams.get('query')
  const types = url.searchParams.getAll('type')
  const tags = url.searchParams.getAll('tag')
  if (json !== null) {
    if (types.length > 0 || tags.length > 0) throw new InvalidQueryError('give either query or type/tag, not both')
    let parsed: unknown
    try {
      parsed = JSON.parse(json)
    } catch {
      throw new InvalidQueryError('query must be URL-encoded JSON: "all" or an array of items')
    }
    validateQuery(parsed as Query)
    return parsed as Query
  }
  if (types.length === 0 && tags.length === 0) return 'all'
  const item: QueryItem = {}
  if (types.length > 0) (item as { types: string[] }).types = types
  if (tags.length > 0) (item as { tags: string[] }).tags = tags
  validateQuery([item])
  return [item]
}

/** `limit` as a page size: a positive integer, capped at `readLimit`; absent means `readLimit`. */
export function parseLimit(value: unknown, readLimit: number): number {
  if (value === undefined || value === null) return readLimit
  const number = typeof value === 'string' && /^[0-9]{1,10}$/.test(value) ? Number(value) : value
  if (typeof number !== 'number' || !Number.isSafeInteger(number) || number < 1) {
    throw new InvalidQueryError('limit must be a positive integer')
  }
  return Math.min(number, readLimit)
}

function parseBackwards(value: unknown): boolean {
  if (value === undefined || value === null || value === 'false' || value === false) return false
  if (value === '' || value === 'true' || value === true) return true
  throw new InvalidQueryError('backwards must be true or false')
}

/** The page parameters of `GET /v1/events`. */
export function pageFromParams(url: URL, readLimit: number): PageRequest {
  const params = url.searchParams
  const page: PageRequest = {
    query: queryFromParams(url),
    limit: parseLimit(params.get('limit'), readLimit),
    backwards: parseBackwards(params.get('backwards')),
  }
  const after = params.get('after')
  const before = params.get('before')
  if (after !== null) page.after = parsePosition(after, 'after', invalidQuery)
  if (before !== null) page.before = parsePosition(before, 'before', invalidQuery)
  return page
}

/** The body of `POST /v1/query`: `{ query, after?, before?, limit?, backwards? }`. */
export function pageFromBody(body: unknown, readLimit: number): PageRequest {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new InvalidQueryError('the body must be an object { query, after?, before?, limit?, backwards? }')
  }
  const { query, after, before, limit, backwards } = body as Record<string, unknown>
  if (query === undefined) throw new InvalidQueryError('query is required ("all" or an array of items)')
  validateQuery(query as Query)
  const page: PageRequest = {
    query: query as Query,
    limit: parseLimit(limit, readLimit),
    backwards: parseBackwards(backwards),
  }
  if (after !== undefined) page.after = parsePosition(after, 'after', invalidQuery)
  if (before !== undefined) page.before = parsePosition(before, 'before', invalidQuery)
  return page
}

/** A condition from a request body, with `after` as a decimal string. */
export function conditionFromBody(value: unknown): AppendCondition {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new InvalidConditionError('condition must be an object { failIfEventsMatch, after? }')
  }
  const { failIfEventsMatch, after } = value as Record<string, unknown>
  const condition: AppendCondition = { failIfEventsMatch: failIfEventsMatch as Query }
  if (after !== undefined) condition.after = parsePosition(after, 'condition.after', invalidCondition)
  validateCondition(condition)
  return condition
}

/** `If-Match: "N"` (or `W/"N"`): the position the client's decision was based on. */
export function parseIfMatch(header: string): bigint {
  const match = /^\s*(?:W\/)?"([^"]*)"\s*$/.exec(header)
  return parsePosition(match ? match[1] : header.trim(), 'If-Match', invalidCondition)
}

/** The `Ringstate-Min-Position` header, when present. */
export function parseMinPosition(header: string | undefined): bigint | undefined {
  if (header === undefined) return undefined
  return parsePosition(header.trim(), 'Ringstate-Min-Position', invalidQuery)
}

/** Longest wait a client may ask for with `Prefer: wait=<s>`, in seconds. */
export const MAX_WAIT_SECONDS = 60

/** The `wait` preference of a `Prefer` header (RFC 7240), in milliseconds; 0 without one. */
export function parsePreferWait(header: string | undefined): number {
  if (header === undefined) return 0
  for (const part of header.split(',')) {
    const match = /^\s*wait\s*=\s*"?([0-9]{1,6}(?:\.[0-9]{1,3})?)"?\s*(?:;.*)?$/i.exec(part)
    if (match) return Math.min(Number(match[1]), MAX_WAIT_SECONDS) * 1000
  }
  return 0
}

/**
 * Read a request body as JSON, refusing more than `maxBytes` (PAYLOAD_TOO_LARGE) before it is
 * all in memory, and reporting bad JSON with the route's own code.
 */
export async function readJson(request: Request, maxBytes: number, invalid: (message: string) => Error): Promise<unknown> {
  const length = request.headers.get('content-length')
  if (length !== null && Number(length) > maxBytes) throw tooLarge(maxBytes)
  let text: string
  if (length !== null && request.headers.get('transfer-encoding') === null) {
    text = await request.text()
    // Content-Length is the client's word; the decoded text bounds what we actually hold.
    if (text.length > maxBytes) throw tooLarge(maxBytes)
  } else {
    text = await readLimited(request, maxBytes)
  }
  if (text.length === 0) throw invalid('the request needs a JSON body')
  try {
    return JSON.parse(text)
  } catch {
    throw invalid('the body is not valid JSON')
  }
}

async function readLimited(request: Request, maxBytes: number): Promise<string> {
  if (request.body === null) return ''
  const reader = request.body.getReader()
  const decoder = new TextDecoder()
  let size = 0
  let text = ''
  for (;;) {
    const { done, value } = await reader.read()
    if (done) break
    size += value.byteLength
    if (size > maxBytes) {
      await reader.cancel()
      throw tooLarge(maxBytes)
    }
    text += decoder.decode(value, { stream: true })
  }
  return text + decoder.decode()
}

function tooLarge(maxBytes: number): HttpProblem {
  return new HttpProblem(ErrorCode.PAYLOAD_TOO_LARGE, `the request body is larger than ${maxBytes} bytes`)
}
