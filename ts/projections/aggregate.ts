/**
 * Aggregates: named consistency boundaries over the DCB store (DESIGN.md 6.1), after golly
 * eventsource's aggregates, without its defects. An aggregate is plain data plus functions: a name
 * (the boundary tag `<name>:<id>`), an initial state and one `apply` handler per event type. Its
 * boundary is the query `[{ types: keys of apply, tags: [tag(id)] }]`.
 *
 * - `execute` loads the state, runs the command handler, and appends what it recorded in one append
 *   under the boundary's condition (plus whatever `ctx.project` added). On a conflict the handler
 *   runs again on freshly loaded state: nothing computed on stale state is ever written (golly
 *   re-numbered and re-saved such events).
 * - The handler keys are the event types: a key that is not an event of the map is a type error,
 *   and recording a type without a handler is INVALID_OPTIONS at run time (golly silently ignored a
 *   misspelled handler).
 * - Snapshots live in the store's snapshot table under `aggregate:<name>:<id>`, never among the
 *   events, and are best effort.
 */
import {
  AppendConditionFailedError,
  CommandFailedError,
  ErrorCode,
  InvalidOptionsError,
  RetriesExhaustedError,
} from '../errors.ts'
import {
  backoff,
  isStoreError,
  messageOf,
  resolveExecuteOptions,
  trackDecisions,
  type ExecuteOptions,
} from '../store/execute.ts'
import type {
  AppendCondition,
  AppendResult,
  CommandRecord,
  EventMap,
  EventStore,
  EventType,
  Projector,
  ProjectResult,
  Query,
  SequencedEvent,
} from '../store/types.ts'
import { deepFreeze } from '../store/core/freeze.ts'
import { sharedBoundaryReader } from './shared-reads.ts'
import { createSpec, type AggregateSpec } from './spec.ts'

/** One `apply` handler: the next state from the current one and an event's data. Pure. */
export type ApplyHandler<State, D, T extends string> = (state: State, data: D, event: SequencedEvent<D, T>) => State

/** One handler per event type of `Events`; the keys are the types (every type needs one). */
export type ApplyHandlers<State, Events extends EventMap> = {
  [T in EventType<Events>]: ApplyHandler<State, Events[T], T>
}

/** Encodes a snapshot's state to bytes and back. Default: JSON (bigints as decimal strings are not revived). */
export interface SnapshotCodec<State> {
  encode(state: State): Uint8Array
  decode(bytes: Uint8Array): State
}

/** Snapshot settings of an aggregate. */
export interface AggregateSnapshotOptions<State> {
  /** Save after an append that crosses a multiple of `every` events. */
  every: number
  /** The state's shape version: a snapshot of another version is ignored (full replay). */
  version: number
  /** Keep only the newest `keep` snapshots of each id. Default 1. */
  keep?: number
  codec?: SnapshotCodec<State>
  /** Told when a snapshot could not be written or read (the command still succeeds). Default: stderr. */
  onError?: (error: unknown, name: string) => void
}

/** The definition of an aggregate. */
export interface AggregateDefinition<State, Events extends EventMap> {
  /** 1..64 characters; the boundary tag is `<name>:<id>` unless `tag` says otherwise. */
  name: string
  /** The state of an id with no events, or a function of the id. */
  initial: State | ((id: string) => State)
  apply: ApplyHandlers<State, Events>
  /** The boundary tag of an id. Default `${name}:${id}`. */
  tag?: (id: string) => string
  snapshot?: AggregateSnapshotOptions<State>
  /**
   * Keep the state each successful command produced, per store and id (the `maxEntries` most
   * recent), and run the next command on it without reading the boundary first: the append's
   * condition (nothing after the cached position) still refuses a decision on stale state, and the
   * handler then runs again on freshly loaded state. A run on cached state that does not end in a
   * successful append (the handler throws, records nothing, or `expectedVersion` differs) is also
   * decided again on fresh state before `execute` answers, since another process may have moved
   * the id on; such a re-run does not count against `maxAttempts`. Saves a read per command when
   * one process owns most writes to an id.
   *
   * On by default (`{ maxEntries: 10_000 }`): 16 callers on PostgreSQL ran 2.5x the commands per
   * second with it (bench/projections.bench.ts). The states it holds are the ones `execute`
   * returns, deeply frozen: changing one throws a TypeError rather than silently becoming the
   * state of the next command. An `apply` that changes its state in place instead of returning a
   * new one still gives correct results (its run on a frozen cached state fails and is decided
   * again on fresh state) but gains nothing from the cache. `false` turns it off; do that when other processes write
   * most of the ids this one commands (each stale entry costs a conflicting run before the fresh
   * one) or when states are too large to keep that many.
   */
  cache?: { maxEntries: number } | false
}

/** What `load` returns. `version` counts the events folded; `position` is the last one's (0n for none). */
export interface LoadedAggregate<State> {
  id: string
  state: State
  version: number
  position: bigint
  exists: boolean
}

/** Options of `record`. */
export interface RecordOptions {
  /** Tags beyond the boundary tag. */
  tags?: readonly string[]
  metadata?: Record<string, unknown>
  /** The event's idempotency id (with `idempotencyKey`, ids are assigned as `<key>:<i>` instead). */
  id?: string
}

/** What a command handler receives. */
export interface AggregateContext<State, Events extends EventMap> {
  readonly id: string
  /** The state, with every event recorded so far in this run already applied. */
  readonly state: State
  /** The version that was loaded (recorded events not counted). */
  readonly version: number
  /** 1 on the first run, 2 after the first conflict (or after a run on cached state, see `cache`), ... */
  readonly attempt: number
  readonly signal: AbortSignal | undefined
  /** Apply an event to `state` now and queue it for the one append of this command. */
  record<T extends EventType<Events>>(type: T, data: Events[T], options?: RecordOptions): void
  /**
   * Fold other decision models (another boundary, a unique e-mail) into this command's condition,
   * exactly as `execute`'s `project` does.
   */
  project<P extends Record<string, Projector<any>>>(projectors: P): Promise<ProjectResult<P>['states']>
}

/** A command handler: decide, `record` events, return anything (it becomes `result`). Throw to refuse. */
export type AggregateHandler<State, Events extends EventMap, R> = (
  ctx: AggregateContext<State, Events>,
) => R | Promise<R>

/** Options of `execute`. */
export interface AggregateExecuteOptions extends ExecuteOptions {
  /** The audit row, written in the same transaction as the events. None: no audit row. */
  command?: CommandRecord
  /**
   * Event ids become `<key>:0`, `<key>:1`, ...: a repeated call returns the first call's outcome
   * and stores nothing twice. Such a call folds the boundary from its first event (not from a
   * snapshot), so it can find the first call's events wherever they are.
   */
  idempotencyKey?: string
  /** Refuse with APPEND_CONDITION_FAILED, before the handler runs, when the loaded version differs. */
  expectedVersion?: number
}

/** What `execute` returns. `count` 0 means the handler recorded nothing and nothing was written. */
export interface AggregateExecuteResult<State, R> {
  state: State
  version: number
  /** The position of the last event appended (the loaded position when nothing was). */
  position: bigint
  count: number
  ids: string[]
  /** The handler's return value; undefined when this call repeated an earlier one (`duplicate`). */
  result: R | undefined
  /** True when `idempotencyKey` found the first call's events: nothing was run or written. */
  duplicate: boolean
}

/** A defined aggregate. */
export interface Aggregate<State, Events extends EventMap> {
  readonly name: string
  /** The event types (the keys of `apply`). */
  readonly types: readonly EventType<Events>[]
  /** The boundary tag of an id. */
  tag(id: string): string
  /** The boundary query of an id. */
  query(id: string): Query
  /**
   * The state of an id: from the newest usable snapshot, then the events after it.
   *
   * @example
   * const { state, version, exists } = await Account.load(store, 'a1')
   */
  load(store: EventStore<any>, id: string, options?: { signal?: AbortSignal }): Promise<LoadedAggregate<State>>
  /**
   * Run a command against an id: see the module comment.
   *
   * @throws CommandFailedError (COMMAND_FAILED) when the handler throws; `cause` is its error.
   * @throws RetriesExhaustedError (RETRIES_EXHAUSTED) after `maxAttempts` conflicting runs.
   * @throws AppendConditionFailedError (APPEND_CONDITION_FAILED) when `expectedVersion` differs.
   * @throws InvalidOptionsError (INVALID_OPTIONS) when the handler records a type without a handler.
   *
   * @example
   * const { result } = await Account.execute(store, 'a1', (ctx) => {
   *   if (ctx.state.balance < 60) throw new Error('insufficient funds')
   *   ctx.record('Withdrawn', { amount: 60 })
   *   return 'ok'
   * }, { command: { type: 'Withdraw', data: { amount: 60 } } })
   */
  execute<R>(
    store: EventStore<any>,
    id: string,
    handler: AggregateHandler<State, Events, R>,
    options?: AggregateExecuteOptions,
  ): Promise<AggregateExecuteResult<State, R>>
  /**
   * A given/when/then specification, run on a private in-memory store.
   *
   * @example
   * await Account.spec().given([{ type: 'Deposited', data: { amount: 50 } }])
   *   .when((ctx) => { ctx.record('Withdrawn', { amount: 60 }) })
   *   .thenThrows((error) => error.message === 'insufficient funds')
   */
  spec(id?: string): AggregateSpec<State, Events>
}

/** States an aggregate's cache keeps per store unless `cache` says otherwise. */
const DEFAULT_CACHE_ENTRIES = 10_000

/** The prefix of snapshot names: `aggregate:<name>:<id>`. */
export const aggregateSnapshotPrefix = 'aggregate:'

/**
 * Define an aggregate (DESIGN.md 6.1).
 *
 * @throws InvalidOptionsError (INVALID_OPTIONS) on a bad name, a handler that is not a function,
 *   no handlers, or bad snapshot settings.
 *
 * @example
 * type AccountEvents = { Deposited: { amount: number }; Withdrawn: { amount: number } }
 * const Account = defineAggregate<{ balance: number }, AccountEvents>({
 *   name: 'account',
 *   initial: { balance: 0 },
 *   apply: {
 *     Deposited: (state, data) => ({ balance: state.balance + data.amount }),
 *     Withdrawn: (state, data) => ({ balance: state.balance - data.amount }),
 *   },
 *   snapshot: { every: 100, version: 1 },
 * })
 */
export function defineAggregate<State, Events extends EventMap>(
  definition: AggregateDefinition<State, Events>,
): Aggregate<State, Events> {
  const { name, apply } = checkDefinition(definition)
  const types = Object.keys(apply) as EventType<Events>[]
  const tagOf = definition.tag ?? ((id: string) => `${name}:${id}`)
  const initialOf = (id: string): State =>
    typeof definition.initial === 'function' ? (definition.initial as (id: string) => State)(id) : definition.initial
  const snapshot = definition.snapshot
  const codec: SnapshotCodec<State> = snapshot?.codec ?? jsonCodec<State>()
  const reportSnapshotError =
    snapshot?.onError ??
    ((error: unknown, snapshotName: string) =>
      process.stderr.write(`ringstate: snapshot ${snapshotName} failed: ${messageOf(error)}\n`))
  const handlers = apply as unknown as Record<string, ApplyHandler<State, unknown, string>>

  const maxCached = definition.cache === false ? 0 : (definition.cache?.maxEntries ?? DEFAULT_CACHE_ENTRIES)
  const caches = new WeakMap<object, Map<string, { state: State; version: number; position: bigint }>>()
  const cacheOf = (store: EventStore<any>) => {
    if (maxCached === 0) return undefined
    let cache = caches.get(store)
    if (cache === undefined) caches.set(store, (cache = new Map()))
    return cache
  }
  /** Take an id's cached state out (so no two commands share it; a failure leaves none behind). */
  const takeCached = (store: EventStore<any>, id: string) => {
    const cache = cacheOf(store)
    const entry = cache?.get(id)
    if (entry !== undefined) cache!.delete(id)
    return entry
  }
  const putCached = (store: EventStore<any>, id: string, state: State, version: number, position: bigint) => {
    const cache = cacheOf(store)
    if (cache === undefined) return
    // The caller gets this state too: frozen, a change made to it throws instead of becoming the
    // state the next command decides on without any event behind it.
    deepFreeze(state)
    cache.set(id, { state, version, position })
    if (cache.size > maxCached) cache.delete(cache.keys().next().value!)
  }

  const boundary = (id: string): Query => [{ types, tags: [checkedTag(tagOf, id)] }]
  const readShared = sharedBoundaryReader(types)
  const snapshotName = (id: string) => `${aggregateSnapshotPrefix}${name}:${id}`

  /** Folds the boundary; with `key`, also finds the events whose ids are `<key>:<i>`. */
  async function fold(
    store: EventStore<any>,
    id: string,
    signal: AbortSignal | undefined,
    useSnapshot: boolean,
    key?: string,
  ): Promise<{ loaded: LoadedAggregate<State>; duplicate?: { result: AppendResult; state: State; version: number } }> {
    checkId(id)
    let state = initialOf(id)
    let version = 0
    let position = 0n
    if (useSnapshot && snapshot !== undefined) {
      const restored = await readSnapshot(store, snapshotName(id))
      if (restored !== undefined) ({ state, version, position } = restored)
    }
    const keyPrefix = key === undefined ? undefined : `${key}:`
    let dup: { ids: string[]; position: bigint; state: State; version: number } | undefined
    const step = (event: SequencedEvent) => {
      state = handlers[event.type]!(state, event.data, event)
      version++
      position = event.position
      if (keyPrefix !== undefined && event.id.startsWith(keyPrefix)) {
        dup ??= { ids: [], position: 0n, state, version }
        dup.ids.push(event.id)
        dup.position = event.position
        dup.state = state
        dup.version = version
      }
    }
    const page = await readShared(store, checkedTag(tagOf, id), position, signal)
    for (const event of page.events) step(event)
    if (page.continueAfter !== undefined) {
      for await (const event of store.read(boundary(id), { after: page.continueAfter, signal })) step(event)
    }
    const loaded = { id, state, version, position, exists: version > 0 }
    if (dup === undefined) return { loaded }
    return {
      loaded,
      duplicate: {
        result: { position: dup.position, count: dup.ids.length, ids: dup.ids },
        state: dup.state,
        version: dup.version,
      },
    }
  }

  async function readSnapshot(store: EventStore<any>, snapName: string) {
    try {
      const stored = await store.loadSnapshot(snapName)
      if (stored === undefined) return undefined
      return decodeSnapshot(stored.data, stored.position, snapshot!.version, codec)
    } catch (error) {
      if (isStoreError(error) && (error as { code: string }).code !== ErrorCode.SNAPSHOT_CORRUPT) throw error
      reportSnapshotError(error, snapName)
      return undefined
    }
  }

  async function maybeSnapshot(
    store: EventStore<any>,
    id: string,
    before: number,
    after: number,
    state: State,
    position: bigint,
  ): Promise<void> {
    if (snapshot === undefined) return
    if (Math.floor(before / snapshot.every) === Math.floor(after / snapshot.every)) return
    try {
      const data = encodeSnapshot(state, after, snapshot.version, codec)
      await store.saveSnapshot(snapshotName(id), position, data, { keep: snapshot.keep ?? 1 })
    } catch (error) {
      reportSnapshotError(error, snapshotName(id))
    }
  }

  const aggregate: Aggregate<State, Events> = {
    name,
    types,
    tag: (id) => checkedTag(tagOf, id),
    query: (id) => boundary(id),
    async load(store, id, options) {
      return (await fold(store, id, options?.signal, true)).loaded
    },
    async execute<R>(
      store: EventStore<any>,
      id: string,
      handler: AggregateHandler<State, Events, R>,
      options?: AggregateExecuteOptions,
    ): Promise<AggregateExecuteResult<State, R>> {
      const { maxAttempts, baseDelayMs, maxDelayMs, signal } = resolveExecuteOptions(options)
      if (typeof handler !== 'function') throw new InvalidOptionsError('execute needs a handler function')
      const key = options?.idempotencyKey
      if (key !== undefined && (typeof key !== 'string' || key.length === 0 || key.length > 200)) {
        throw new InvalidOptionsError('idempotencyKey must be a string of 1..200 characters')
      }
      const expected = options?.expectedVersion
      if (expected !== undefined && (!Number.isSafeInteger(expected) || expected < 0)) {
        throw new InvalidOptionsError('expectedVersion must be an integer >= 0')
      }
      const tag = checkedTag(tagOf, id)
      let lastConflict: unknown
      // Only a successful conditional append proves that a cached state was current. A run on it
      // that ends otherwise (a conflict, a refusal, nothing recorded, another version than
      // expected) may have decided on stale state, written by another process: the handler runs
      // again at once on freshly loaded state, and that run is not counted against maxAttempts.
      let cachedRuns = 0
      for (let attempt = 1; attempt <= maxAttempts + cachedRuns; attempt++) {
        if (attempt - cachedRuns > 1) await backoff(attempt - cachedRuns, baseDelayMs, maxDelayMs, signal)
        const cached = attempt === 1 && key === undefined ? takeCached(store, id) : undefined
        if (cached !== undefined) cachedRuns = 1
        const onCache = cached !== undefined
        const { loaded, duplicate } = cached !== undefined
          ? { loaded: { id, ...cached, exists: cached.version > 0 }, duplicate: undefined }
          : await fold(store, id, signal, key === undefined, key)
        if (duplicate !== undefined) {
          return { ...duplicate.result, state: duplicate.state, version: duplicate.version, result: undefined, duplicate: true }
        }
        const query = boundary(id)
        const seed: AppendCondition = loaded.exists
          ? { failIfEventsMatch: query, after: loaded.position }
          : { failIfEventsMatch: query }
        if (expected !== undefined && loaded.version !== expected) {
          if (onCache) continue
          throw new AppendConditionFailedError(seed, loaded.position)
        }
        const decisions = trackDecisions(store, signal, seed)
        const recorded: { type: string; tags: string[]; data: unknown; metadata?: Record<string, unknown>; id?: string }[] = []
        let state = loaded.state
        const ctx: AggregateContext<State, Events> = {
          id,
          get state() {
            return state
          },
          version: loaded.version,
          attempt,
          signal,
          record(type, data, recordOptions) {
            const apply = Object.hasOwn(handlers, type) ? handlers[type] : undefined
            if (apply === undefined) {
              throw new InvalidOptionsError(`aggregate ${name} has no apply handler for event type ${JSON.stringify(type)}`)
            }
            const tags = [tag, ...(recordOptions?.tags ?? [])]
            const eventId = key === undefined ? recordOptions?.id : `${key}:${recorded.length}`
            const provisional: SequencedEvent<unknown, string> = {
              position: 0n,
              type,
              tags,
              data,
              metadata: recordOptions?.metadata ?? {},
              id: eventId ?? '',
              recordedAt: new Date(),
            }
            state = apply(state, data, provisional)
            recorded.push({ type, tags, data, metadata: recordOptions?.metadata, id: eventId })
          },
          project: decisions.project,
        }

        let result: R
        try {
          result = await handler(ctx)
        } catch (error) {
          if ((error as { code?: unknown })?.code === ErrorCode.APPEND_CONDITION_FAILED) {
            lastConflict = error
            continue
          }
          if (isStoreError(error)) throw error
          if (onCache) continue
          throw new CommandFailedError(`command on ${name} ${id} failed: ${messageOf(error)}`, { cause: error })
        }
        if (recorded.length === 0) {
          if (onCache) continue
          if (key === undefined) putCached(store, id, loaded.state, loaded.version, loaded.position)
          return {
            state,
            version: loaded.version,
            position: loaded.position,
            count: 0,
            ids: [],
            result,
            duplicate: false,
          }
        }
        const events = recorded.map((e) => {
          const input: { type: string; tags: string[]; data: unknown; metadata?: Record<string, unknown>; id?: string } = {
            type: e.type,
            tags: e.tags,
            data: e.data,
          }
          if (e.metadata !== undefined) input.metadata = e.metadata
          if (e.id !== undefined) input.id = e.id
          return input
        })
        let appended: AppendResult
        try {
          appended = await store.append(
            events as never,
            decisions.condition(),
            options?.command === undefined ? undefined : { command: options.command },
          )
        } catch (error) {
          if ((error as { code?: unknown })?.code !== ErrorCode.APPEND_CONDITION_FAILED) throw error
          lastConflict = error
          continue
        }
        if (key !== undefined && appended.position <= loaded.position) {
          // The store answered idempotently: the first call's events were written between our
          // read and our append. Report what that call produced.
          const again = await fold(store, id, signal, false, key)
          if (again.duplicate !== undefined) {
            return { ...again.duplicate.result, state: again.duplicate.state, version: again.duplicate.version, result: undefined, duplicate: true }
          }
        }
        const version = loaded.version + appended.count
        if (key === undefined) putCached(store, id, state, version, appended.position)
        await maybeSnapshot(store, id, loaded.version, version, state, appended.position)
        return { state, version, position: appended.position, count: appended.count, ids: appended.ids, result, duplicate: false }
      }
      throw new RetriesExhaustedError(maxAttempts, { cause: lastConflict })
    },
    spec(id = 'spec') {
      return createSpec(aggregate, id)
    },
  }
  return aggregate
}

function checkDefinition<State, Events extends EventMap>(definition: AggregateDefinition<State, Events>) {
  if (typeof definition !== 'object' || definition === null) throw new InvalidOptionsError('defineAggregate needs a definition object')
  const { name, apply, snapshot, tag } = definition
  if (typeof name !== 'string' || name.length < 1 || name.length > 64 || name.includes('\u0000')) {
    throw new InvalidOptionsError('an aggregate name must be 1..64 characters')
  }
  if (typeof apply !== 'object' || apply === null) throw new InvalidOptionsError(`aggregate ${name}: apply must be an object of handlers`)
  const keys = Object.keys(apply)
  if (keys.length === 0) throw new InvalidOptionsError(`aggregate ${name}: apply needs at least one event type`)
  for (const key of keys) {
    if (key.length > 128 || key.includes('\u0000')) throw new InvalidOptionsError(`aggregate ${name}: ${JSON.stringify(key)} is not an event type`)
    if (typeof (apply as Record<string, unknown>)[key] !== 'function') {
      throw new InvalidOptionsError(`aggregate ${name}: the apply handler for ${JSON.stringify(key)} is not a function`)
    }
  }
  const cache = definition.cache
  if (cache !== undefined && cache !== false && (!Number.isSafeInteger(cache.maxEntries) || cache.maxEntries < 1)) {
    throw new InvalidOptionsError(`aggregate ${name}: cache.maxEntries must be an integer >= 1`)
  }
  if (tag !== undefined && typeof tag !== 'function') throw new InvalidOptionsError(`aggregate ${name}: tag must be a function`)
  if (snapshot !== undefined) {
    if (!Number.isSafeInteger(snapshot.every) || snapshot.every < 1) throw new InvalidOptionsError(`aggregate ${name}: snapshot.every must be an integer >= 1`)
    if (!Number.isSafeInteger(snapshot.version)) throw new InvalidOptionsError(`aggregate ${name}: snapshot.version must be an integer`)
    if (snapshot.keep !== undefined && (!Number.isSafeInteger(snapshot.keep) || snapshot.keep < 1)) {
      throw new InvalidOptionsError(`aggregate ${name}: snapshot.keep must be an integer >= 1`)
    }
  }
  return { name, apply }
}

function checkId(id: string): void {
  if (typeof id !== 'string' || id.length === 0) throw new InvalidOptionsError('an aggregate id must be a non-empty string')
}

function checkedTag(tagOf: (id: string) => string, id: string): string {
  checkId(id)
  const tag = tagOf(id)
  if (typeof tag !== 'string' || tag.length === 0 || tag.length > 256) {
    throw new InvalidOptionsError('an aggregate tag must be a string of 1..256 characters')
  }
  return tag
}

function jsonCodec<State>(): SnapshotCodec<State> {
  return {
    encode: (state) => new TextEncoder().encode(JSON.stringify(state)),
    decode: (bytes) => JSON.parse(new TextDecoder().decode(bytes)) as State,
  }
}

const SNAPSHOT_MAGIC = 0x52534131 // "RSA1": ringstate aggregate snapshot, format 1

/** Layout: magic u32, shape version i32, event count f64, then the codec's bytes. */
function encodeSnapshot<State>(state: State, version: number, shape: number, codec: SnapshotCodec<State>): Uint8Array {
  const body = codec.encode(state)
  const out = new Uint8Array(16 + body.length)
  const view = new DataView(out.buffer)
  view.setUint32(0, SNAPSHOT_MAGIC)
  view.setInt32(4, shape)
  view.setFloat64(8, version)
  out.set(body, 16)
  return out
}

/** The snapshot's state, or undefined when it is of another shape version or does not decode. */
function decodeSnapshot<State>(
  data: Uint8Array,
  position: bigint,
  shape: number,
  codec: SnapshotCodec<State>,
): { state: State; version: number; position: bigint } | undefined {
  if (data.length < 16) return undefined
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength)
  if (view.getUint32(0) !== SNAPSHOT_MAGIC || view.getInt32(4) !== shape) return undefined
  const version = view.getFloat64(8)
  if (!Number.isSafeInteger(version) || version < 0) return undefined
  try {
    return { state: codec.decode(data.subarray(16)), version, position }
  } catch {
    return undefined
  }
}
