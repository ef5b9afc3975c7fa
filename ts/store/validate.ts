/**
 * Input validation shared by every backend. Everything a caller hands to the store is checked
 * here before any backend touches its storage, so bad input never writes anything and every
 * backend rejects the same inputs with the same error codes.
 */
import {
  InvalidConditionError,
  InvalidEventError,
  InvalidOptionsError,
  InvalidQueryError,
} from '../errors.ts'
import {
  defaultStoreOptions,
  type AppendCondition,
  type AppendOptions,
  type CommandRecord,
  type EventInput,
  type Query,
  type ReadOptions,
  type StoreHooks,
  type StoreOptions,
} from './types.ts'

/** Longest event type, in characters. */
export const MAX_TYPE_LENGTH = 128
/** Longest tag, in characters. */
export const MAX_TAG_LENGTH = 256
/** Longest idempotency id, in characters. */
export const MAX_ID_LENGTH = 256
/** Longest checkpoint or snapshot name, in characters. */
export const MAX_NAME_LENGTH = 256

/**
 * Whether a string can be stored as text by every backend: PostgreSQL rejects NUL in `text`, and a
 * lone surrogate has no UTF-8 form (SQLite and PostgreSQL would store U+FFFD instead, so the string
 * read back would differ from the one written).
 */
export function isStorableText(text: string): boolean {
  // Most strings hold no NUL and no surrogate at all: a loop over the code units settles them
  // (a regex test cost 1.7% of the client's CPU in a PostgreSQL append benchmark); only strings
  // that hold one need the exact check.
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i)
    if (unit === 0 || (unit >= 0xd800 && unit <= 0xdfff)) return !UNSTORABLE.test(text)
  }
  return true
}

/** A NUL, a high surrogate not followed by a low one, or a low surrogate not preceded by a high one. */
const UNSTORABLE = /\0|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/

/** The store options with every default filled in, hooks included. */
/** The options with their defaults; `commitDelayMicros` stays unset unless given (the backend's default). */
export type ResolvedStoreOptions = Required<Omit<StoreOptions, 'commitDelayMicros'>> & Pick<StoreOptions, 'commitDelayMicros'> & Required<StoreHooks>

/** The default `onProjectorError`: the projector's name and the error, on stderr. */
export function reportProjectorError(error: unknown, name: string): void {
  console.error(`ringstate: inline projector ${JSON.stringify(name)} failed and was detached:`, error)
}

/** An event that passed validation, with its JSON text ready for storage. */
export interface NormalizedEvent {
  type: string
  /** Deduplicated, in first-seen order. */
  tags: string[]
  /** The caller's value as given (`null` when it was undefined); store `dataJson`, not this. */
  data: unknown
  /** JSON text of `data` (`'null'` when data is undefined). */
  dataJson: string
  metadata: Record<string, unknown>
  metadataJson: string
  /** The caller's idempotency id, or a generated time-ordered UUID (v7) when none was given. */
  id: string
  idGiven: boolean
}

/**
 * Fill in defaults and check every numeric option is a positive safe integer and
 * `onProjectorError`, when given, a function.
 * Unknown keys are ignored so backends can accept their own options in the same object.
 *
 * @throws InvalidOptionsError (INVALID_OPTIONS) on a value out of range or of the wrong type.
 */
export function resolveOptions(options?: StoreOptions & StoreHooks): ResolvedStoreOptions {
  if (options === undefined || options === null) return { ...defaultStoreOptions, onProjectorError: reportProjectorError }
  if (typeof options !== 'object') throw new InvalidOptionsError('store options must be an object')
  const hook = options.onProjectorError
  if (hook !== undefined && typeof hook !== 'function') {
    throw new InvalidOptionsError('store option onProjectorError must be a function')
  }
  const resolved: ResolvedStoreOptions = { ...defaultStoreOptions, onProjectorError: hook ?? reportProjectorError }
  for (const key of Object.keys(defaultStoreOptions) as (keyof typeof defaultStoreOptions)[]) {
    const value = options[key]
    if (value === undefined) continue
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) {
      throw new InvalidOptionsError(`store option ${key} must be a positive integer`)
    }
    resolved[key] = value
  }
  // 0 turns the wait off.
  const delay = options.commitDelayMicros
  if (delay !== undefined) {
    if (typeof delay !== 'number' || !Number.isSafeInteger(delay) || delay < 0) {
      throw new InvalidOptionsError('store option commitDelayMicros must be an integer >= 0')
    }
    resolved.commitDelayMicros = delay
  }
  return resolved
}

/**
 * Validate the events of one append and turn them into their storage form.
 *
 * @throws InvalidEventError (INVALID_EVENT) on an empty list, a bad type, tag, id or metadata,
 *   data that is not JSON (BigInt, cycles, functions, symbols, NaN, Infinity), an event larger
 *   than `maxEventBytes`, more than `maxEventsPerAppend` events, more than `maxAppendBytes` in all,
 *   or the same id twice.
 */
export function normalizeEvents(
  input: EventInput | readonly EventInput[],
  options: Required<Omit<StoreOptions, 'commitDelayMicros'>>,
): NormalizedEvent[] {
  const list: readonly EventInput[] = Array.isArray(input) ? input : [input as EventInput]
  if (list.length === 0) throw new InvalidEventError('an append needs at least one event')
  if (list.length > options.maxEventsPerAppend) {
    throw new InvalidEventError(
      `an append may hold at most ${options.maxEventsPerAppend} events, got ${list.length}`,
    )
  }
  const out: NormalizedEvent[] = new Array(list.length)
  let ids: Set<string> | undefined
  // The size of the whole append, checked as each event is serialised so that an oversized append
  // fails after serialising about maxAppendBytes, not all of it. Counted from the JSON lengths (a
  // UTF-16 unit is at most 3 UTF-8 bytes) until that bound passes the limit, then exactly, once.
  let bound = 0
  let exact: number | undefined
  for (let i = 0; i < list.length; i++) {
    const event = normalizeEvent(list[i]!, i, options) // i < list.length
    if (event.idGiven) {
      ids ??= new Set()
      if (ids.has(event.id)) throw new InvalidEventError(`event ${i}: id is used twice in one append`)
      ids.add(event.id)
    }
    out[i] = event
    if (exact === undefined) {
      bound += (event.dataJson.length + event.metadataJson.length) * 3
      if (bound > options.maxAppendBytes) {
        exact = 0
        for (let k = 0; k <= i; k++) exact += utf8Length(out[k]!.dataJson) + utf8Length(out[k]!.metadataJson)
      }
    } else {
      exact += utf8Length(event.dataJson) + utf8Length(event.metadataJson)
    }
    if (exact !== undefined && exact > options.maxAppendBytes) {
      throw new InvalidEventError(
        `the append's data and metadata take more than maxAppendBytes (${options.maxAppendBytes}) by event ${i}; nothing was written`,
      )
    }
  }
  return out
}

function normalizeEvent(
  event: EventInput,
  index: number,
  options: Required<Omit<StoreOptions, 'commitDelayMicros'>>,
): NormalizedEvent {
  const where = `event ${index}`
  if (typeof event !== 'object' || event === null || Array.isArray(event)) {
    throw new InvalidEventError(`${where}: must be an object`)
  }
  const { type, tags, data, metadata, id } = event
  if (typeof type !== 'string' || type.length === 0 || type.length > MAX_TYPE_LENGTH) {
    throw new InvalidEventError(`${where}: type must be a string of 1..${MAX_TYPE_LENGTH} characters`)
  }
  if (!isStorableText(type)) throw new InvalidEventError(`${where}: type holds a NUL or a lone surrogate`)
  const normalTags = normalizeTags(tags, where)

  if (id !== undefined && (typeof id !== 'string' || id.length === 0 || id.length > MAX_ID_LENGTH)) {
    throw new InvalidEventError(`${where}: id must be a string of 1..${MAX_ID_LENGTH} characters`)
  }
  if (id !== undefined && !isStorableText(id)) throw new InvalidEventError(`${where}: id holds a NUL or a lone surrogate`)

  const dataJson = data === undefined ? 'null' : toJson(data, `${where}: data`)
  let metadataJson = '{}'
  if (metadata !== undefined) {
    if (typeof metadata !== 'object' || metadata === null || Array.isArray(metadata)) {
      throw new InvalidEventError(`${where}: metadata must be a plain object`)
    }
    metadataJson = toJson(metadata, `${where}: metadata`)
  }

  // Cheap upper bound first: a UTF-16 code unit is at most 3 UTF-8 bytes.
  const chars = dataJson.length + metadataJson.length
  if (chars * 3 > options.maxEventBytes) {
    const bytes = utf8Length(dataJson) + utf8Length(metadataJson)
    if (bytes > options.maxEventBytes) {
      throw new InvalidEventError(
        `${where}: data and metadata take ${bytes} bytes, more than maxEventBytes (${options.maxEventBytes})`,
      )
    }
  }

  return {
    type,
    tags: normalTags,
    data: data === undefined ? null : data,
    dataJson,
    metadata: metadata ?? {},
    metadataJson,
    id: id ?? newEventId(),
    idGiven: id !== undefined,
  }
}

function normalizeTags(tags: unknown, where: string): string[] {
  if (tags === undefined) return []
  if (!Array.isArray(tags)) throw new InvalidEventError(`${where}: tags must be an array of strings`)
  for (const tag of tags) {
    if (typeof tag !== 'string' || tag.length === 0 || tag.length > MAX_TAG_LENGTH) {
      throw new InvalidEventError(`${where}: each tag must be a string of 1..${MAX_TAG_LENGTH} characters`)
    }
    if (!isStorableText(tag)) throw new InvalidEventError(`${where}: a tag holds a NUL or a lone surrogate`)
  }
  // Most events carry one or two tags: avoid a Set unless there is something to deduplicate.
  if (tags.length < 2) return tags.slice()
  return [...new Set(tags as string[])]
}

/**
 * JSON.stringify silently drops functions and symbols and turns NaN into null; a store must not
 * silently change what it was given, so the replacer rejects them (and BigInt, which
 * JSON.stringify rejects with an unhelpful message).
 */
function rejectNonJson(this: unknown, _key: string, value: unknown): unknown {
  switch (typeof value) {
    case 'function':
      throw new NonJsonValue('a function')
    case 'symbol':
      throw new NonJsonValue('a symbol')
    case 'bigint':
      throw new NonJsonValue('a BigInt')
    case 'number':
      if (!Number.isFinite(value)) throw new NonJsonValue(String(value))
      return value
    default:
      return value
  }
}

class NonJsonValue extends Error {}

/**
 * The JSON text of `value`. A replacer turns off JSON.stringify's fast path (measured: 14% of the
 * client's CPU in the PostgreSQL append curve), so plain data is walked first for what the replacer
 * would refuse and then stringified without one. Anything else (a toJSON method, a refusal, a cycle
 * or a structure deeper than the walk goes) takes the replacer path, which gives the exact result
 * and error, and calls each toJSON once.
 */
function toJson(value: unknown, what: string): string {
  if (isPlainJson(value, PLAIN_JSON_DEPTH)) {
    const json = JSON.stringify(value)
    if (json !== undefined) return json
  }
  return toJsonChecked(value, what)
}

/** How deep isPlainJson walks before leaving a value to the replacer path (a cycle ends there too). */
const PLAIN_JSON_DEPTH = 64

/** Whether `value` holds only what JSON.stringify keeps as it is (no toJSON, function, symbol, BigInt, NaN). */
function isPlainJson(value: unknown, depth: number): boolean {
  switch (typeof value) {
    case 'string':
    case 'boolean':
    case 'undefined':
      return true
    case 'number':
      return Number.isFinite(value)
    case 'object': {
      if (value === null) return true
      if (depth === 0) return false
      if (Array.isArray(value)) {
        for (let i = 0; i < value.length; i++) if (!isPlainJson(value[i], depth - 1)) return false
        return true
      }
      if (typeof (value as { toJSON?: unknown }).toJSON === 'function') return false
      for (const key in value) {
        if (Object.hasOwn(value, key) && !isPlainJson((value as Record<string, unknown>)[key], depth - 1)) return false
      }
      return true
    }
    default:
      return false
  }
}

function toJsonChecked(value: unknown, what: string): string {
  let json: string | undefined
  try {
    json = JSON.stringify(value, rejectNonJson)
  } catch (error) {
    if (error instanceof NonJsonValue) {
      throw new InvalidEventError(`${what} is not JSON: it contains ${error.message}`)
    }
    // A cycle, or a toJSON that threw.
    throw new InvalidEventError(`${what} is not JSON: ${(error as Error)?.message ?? 'cannot serialise'}`)
  }
  if (json === undefined) throw new InvalidEventError(`${what} is not JSON`)
  return json
}

function utf8Length(text: string): number {
  let bytes = 0
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i)
    if (unit < 0x80) bytes += 1
    else if (unit < 0x800) bytes += 2
    else if (unit >= 0xd800 && unit <= 0xdbff && i + 1 < text.length) {
      const next = text.charCodeAt(i + 1)
      if (next >= 0xdc00 && next <= 0xdfff) {
        bytes += 4
        i++
      } else bytes += 3
    } else bytes += 3
  }
  return bytes
}

/**
 * Check a query: `'all'`, or a non-empty array of items each naming at least one type or tag.
 *
 * @throws InvalidQueryError (INVALID_QUERY)
 */
export function validateQuery(query: Query, maxItems: number = defaultStoreOptions.maxQueryItems): void {
  const problem = queryProblem(query, maxItems)
  if (problem !== undefined) throw new InvalidQueryError(problem)
}

function queryProblem(query: unknown, maxItems: number): string | undefined {
  if (query === 'all') return undefined
  if (!Array.isArray(query)) return "a query must be 'all' or an array of items"
  if (query.length === 0) return "a query must have at least one item (use 'all' for every event)"
  if (query.length > maxItems) return `a query may have at most ${maxItems} items (maxQueryItems), got ${query.length}`
  for (let i = 0; i < query.length; i++) {
    const item = query[i]
    if (typeof item !== 'object' || item === null || Array.isArray(item)) {
      return `query item ${i} must be an object`
    }
    const { types, tags } = item as { types?: unknown; tags?: unknown }
    const typeCount = stringListProblem(types, MAX_TYPE_LENGTH)
    if (typeof typeCount === 'string') return `query item ${i}: types ${typeCount}`
    const tagCount = stringListProblem(tags, MAX_TAG_LENGTH)
    if (typeof tagCount === 'string') return `query item ${i}: tags ${tagCount}`
    if (typeCount === 0 && tagCount === 0) {
      return `query item ${i} must name at least one type or tag`
    }
  }
  return undefined
}

/** The list's length, or what is wrong with it. */
function stringListProblem(list: unknown, maxLength: number): number | string {
  if (list === undefined) return 0
  if (!Array.isArray(list)) return 'must be an array of strings'
  for (const entry of list) {
    if (typeof entry !== 'string' || entry.length === 0 || entry.length > maxLength) {
      return `must hold strings of 1..${maxLength} characters`
    }
    if (!isStorableText(entry)) return 'must not hold a NUL or a lone surrogate'
  }
  return list.length
}

/**
 * Check an append condition. An invalid query inside it is reported as INVALID_CONDITION too,
 * since the caller handed over a condition.
 *
 * @throws InvalidConditionError (INVALID_CONDITION)
 */
export function validateCondition(
  condition: AppendCondition | undefined,
  maxItems: number = defaultStoreOptions.maxQueryItems,
): void {
  if (condition === undefined) return
  if (typeof condition !== 'object' || condition === null) {
    throw new InvalidConditionError('an append condition must be an object')
  }
  const problem = queryProblem(condition.failIfEventsMatch, maxItems)
  if (problem !== undefined) throw new InvalidConditionError(`failIfEventsMatch: ${problem}`)
  const { after } = condition
  if (after !== undefined && (typeof after !== 'bigint' || after < 0n)) {
    throw new InvalidConditionError('condition.after must be a bigint >= 0n')
  }
}

/**
 * Check the options of `read`/`query`.
 *
 * @throws InvalidOptionsError (INVALID_OPTIONS)
 */
export function validateReadOptions(options: ReadOptions | undefined): void {
  if (options === undefined) return
  if (typeof options !== 'object' || options === null) {
    throw new InvalidOptionsError('read options must be an object')
  }
  const { after, before, limit, backwards, signal } = options
  if (after !== undefined && (typeof after !== 'bigint' || after < 0n)) {
    throw new InvalidOptionsError('after must be a bigint >= 0n')
  }
  if (before !== undefined && (typeof before !== 'bigint' || before < 0n)) {
    throw new InvalidOptionsError('before must be a bigint >= 0n')
  }
  if (limit !== undefined && (typeof limit !== 'number' || !Number.isSafeInteger(limit) || limit < 0)) {
    throw new InvalidOptionsError('limit must be an integer >= 0')
  }
  if (backwards !== undefined && typeof backwards !== 'boolean') {
    throw new InvalidOptionsError('backwards must be a boolean')
  }
  if (signal !== undefined && (typeof signal !== 'object' || signal === null || typeof signal.aborted !== 'boolean')) {
    throw new InvalidOptionsError('signal must be an AbortSignal')
  }
}

/** A command to record in the audit table, validated and serialised. */
export interface NormalizedCommand {
  type: string
  data: unknown
  dataJson: string
  metadata: Record<string, unknown>
  metadataJson: string
}

/**
 * Validate the `command` of `append(..., { command })` for the commands audit table.
 *
 * @throws InvalidOptionsError (INVALID_OPTIONS) on a bad type, data that is not JSON, or
 *   metadata that is not a plain object.
 */
export function normalizeCommand(command: CommandRecord): NormalizedCommand {
  if (typeof command !== 'object' || command === null) {
    throw new InvalidOptionsError('command must be an object with a type')
  }
  const { type, data, metadata } = command
  if (typeof type !== 'string' || type.length === 0 || type.length > MAX_TYPE_LENGTH || !isStorableText(type)) {
    throw new InvalidOptionsError(`command type must be a string of 1..${MAX_TYPE_LENGTH} characters, without NUL or lone surrogates`)
  }
  if (metadata !== undefined && (typeof metadata !== 'object' || metadata === null || Array.isArray(metadata))) {
    throw new InvalidOptionsError('command metadata must be a plain object')
  }
  try {
    return {
      type,
      data: data === undefined ? null : data,
      dataJson: data === undefined ? 'null' : toJson(data, 'command data'),
      metadata: metadata ?? {},
      metadataJson: metadata === undefined ? '{}' : toJson(metadata, 'command metadata'),
    }
  } catch (error) {
    throw new InvalidOptionsError((error as Error).message)
  }
}

/**
 * A generated event id: a UUIDv7, whose leading 48 bits are the time in milliseconds. Time-ordered
 * ids land at the right edge of the stores' unique id index instead of on a random page, which the
 * SQLite and PostgreSQL backends measured as 2.5x cheaper inserts and 3-6x less WAL per batch.
 */
export const newEventId: () => string =
  typeof Bun !== 'undefined' && typeof Bun.randomUUIDv7 === 'function'
    ? () => Bun.randomUUIDv7()
    : portableUuidV7

function portableUuidV7(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16))
  let ms = Date.now()
  for (let i = 5; i >= 0; i--) {
    bytes[i] = ms % 256
    ms = Math.floor(ms / 256)
  }
  bytes[6] = (bytes[6]! & 0x0f) | 0x70
  bytes[8] = (bytes[8]! & 0x3f) | 0x80
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`
}

/**
 * Check a checkpoint or snapshot name: 1..256 characters, storable as text everywhere.
 *
 * @throws InvalidOptionsError (INVALID_OPTIONS)
 */
export function validateName(name: unknown, what: string): asserts name is string {
  if (typeof name !== 'string' || name.length === 0 || name.length > MAX_NAME_LENGTH || !isStorableText(name)) {
    throw new InvalidOptionsError(`${what} name must be a string of 1..${MAX_NAME_LENGTH} characters, without NUL or lone surrogates`)
  }
}

/** A checkpoint to upsert with an append's events. */
export interface NormalizedCheckpoint {
  name: string
  position: bigint
}

/** An append whose every part passed validation; what each backend's writer queues. */
export interface PreparedAppend {
  events: NormalizedEvent[]
  /** A copy: the caller may change its condition object while the append waits. */
  condition: AppendCondition | undefined
  command: NormalizedCommand | undefined
  checkpoint: NormalizedCheckpoint | undefined
}

/**
 * Validates the arguments of `EventStore.append` once for every backend: the events, the
 * condition and the options (INVALID_EVENT, INVALID_CONDITION, INVALID_OPTIONS).
 */
export function prepareAppend(
  events: EventInput | readonly EventInput[],
  condition: AppendCondition | undefined,
  options: AppendOptions | undefined,
  storeOptions: Required<Omit<StoreOptions, 'commitDelayMicros'>>,
): PreparedAppend {
  const normalized = normalizeEvents(events, storeOptions)
  validateCondition(condition, storeOptions.maxQueryItems)
  if (options !== undefined && (typeof options !== 'object' || options === null)) {
    throw new InvalidOptionsError('append options must be an object')
  }
  let checkpoint: NormalizedCheckpoint | undefined
  if (options?.checkpoint !== undefined) {
    const given = options.checkpoint
    if (typeof given !== 'object' || given === null) throw new InvalidOptionsError('checkpoint must be { name, position }')
    validateName(given.name, 'checkpoint')
    if (typeof given.position !== 'bigint' || given.position < 0n) {
      throw new InvalidOptionsError('checkpoint position must be a bigint >= 0n')
    }
    checkpoint = { name: given.name, position: given.position }
  }
  return {
    checkpoint,
    events: normalized,
    condition: condition === undefined
      ? undefined
      : { failIfEventsMatch: condition.failIfEventsMatch, ...(condition.after === undefined ? {} : { after: condition.after }) },
    command: options?.command === undefined ? undefined : normalizeCommand(options.command),
  }
}
