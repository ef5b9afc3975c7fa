/**
 * The event store contract (DESIGN.md section 2): Dynamic Consistency Boundaries.
 *
 * Events carry a type and tags; a query is an OR of items; an append may carry a condition
 * that must hold atomically with the write. Every backend (memory, sqlite, postgres) implements
 * `EventStore` and passes the same conformance suite.
 */

/**
 * Names each event type's data: `{ OrderPlaced: { total: number }; OrderShipped: { carrier: string } }`.
 * The untyped default is `Record<string, unknown>`: any type, data `unknown`.
 */
export type EventMap = Record<string, unknown>

/** The event types of a map, as strings. */
export type EventType<E extends EventMap> = keyof E & string

/** An event to append. */
export interface EventInput<D = unknown, T extends string = string> {
  /** 1..128 characters; no NUL and no lone surrogate. */
  type: T
  /** "key:value" by convention; each 1..256 characters; duplicates are dropped. */
  tags?: readonly string[]
  /** Any JSON-serialisable value (no BigInt, cycles, functions; not undefined at the top). */
  data?: D
  /** Correlation/causation ids, user, ... JSON object. */
  metadata?: Record<string, unknown>
  /** Idempotency id: re-appending a stored id returns the first result and writes nothing. */
  id?: string
}

/** An event as stored, with its position in the log. */
export interface SequencedEvent<D = unknown, T extends string = string> {
  position: bigint
  type: T
  tags: string[]
  data: D
  metadata: Record<string, unknown>
  id: string
  recordedAt: Date
}

/** Any event of a map, as appended: a union narrowed by `type`. */
export type InputOf<E extends EventMap> = { [T in EventType<E>]: EventInput<E[T], T> }[EventType<E>]

/** Any event of a map, as read: a union narrowed by `event.type`. */
export type EventOf<E extends EventMap> = { [T in EventType<E>]: SequencedEvent<E[T], T> }[EventType<E>]

/**
 * One alternative of a query. An event matches when (no types, or its type is one of `types`)
 * and its tags include every one of `tags`. An item with neither is INVALID_QUERY.
 */
export interface QueryItem {
  types?: readonly string[]
  tags?: readonly string[]
}

/** An OR of items, or every event. `[]` is INVALID_QUERY. */
export type Query = readonly QueryItem[] | 'all'

/** Fail the append when an event matching `failIfEventsMatch` exists after `after` (exclusive). */
export interface AppendCondition {
  failIfEventsMatch: Query
  after?: bigint
}

/**
 * What an append returns: the position of its last event, how many it wrote, and the id of
 * every event in order (generated ones included), so an append whose outcome is unknown can be
 * retried with the same ids and is then answered idempotently.
 */
export interface AppendResult {
  position: bigint
  count: number
  ids: string[]
}

export interface ReadOptions {
  /** Only events with position > after. */
  after?: bigint
  /** Only events with position < before (exclusive), with or without `backwards`. */
  before?: bigint
  /** At most this many events. */
  limit?: number
  /** Newest first. With `after`, events above `after` are still the only ones read. */
  backwards?: boolean
  signal?: AbortSignal
}

export interface SubscribeOptions {
  /** Resume after this position (exclusive); 0n or undefined means from the start. */
  after?: bigint
  signal?: AbortSignal
}

export interface FollowOptions extends SubscribeOptions {
  /** Largest number of events in one batch. Default: the store's `streamBatchSize`. */
  batchSize?: number
}

/**
 * One batch of `follow`: every matching event at or below `through` has been delivered (in this
 * batch or an earlier one). `through` never decreases and may run past the last matching event
 * (the follower scanned that far). `caughtUp` is true once the batch reached the head.
 */
export interface FollowBatch<Ev = SequencedEvent> {
  events: Ev[]
  through: bigint
  caughtUp: boolean
}

/** A decision-model projector: a fold over the events its query matches. */
export interface Projector<S, E extends EventMap = EventMap> {
  query: Query
  initial: S
  apply(state: S, event: EventOf<E>): S
}

/**
 * A projector written as one handler per event type. Its query is derived:
 * `[{ types: keys of when, tags }]`.
 *
 * @example
 * const total: HandlerProjector<number, Shop> = {
 *   initial: 0, tags: ['customer:c1'],
 *   when: { OrderPlaced: (sum, event) => sum + event.data.total },
 * }
 */
export interface HandlerProjector<S, E extends EventMap = EventMap> {
  initial: S
  tags?: readonly string[]
  when: { [T in EventType<E>]?: (state: S, event: SequencedEvent<E[T], T>) => S }
}

/** Either form of projector. */
export type AnyProjector<S = any, E extends EventMap = EventMap> = Projector<S, E> | HandlerProjector<S, E>

export type StateOf<P> = P extends { initial: infer S } ? S : never

export interface ProjectResult<P extends Record<string, AnyProjector<any, any>>> {
  states: { [K in keyof P]: StateOf<P[K]> }
  condition: AppendCondition
}

/**
 * An inline projector run by the store inside the append transaction (the state cache is one).
 * `apply` is called for every appended event, in position order, before commit; `promote` after
 * the commit; `discard` when the transaction rolls back. `tx` is backend-specific.
 */
export interface InlineProjector {
  readonly name: string
  apply(event: SequencedEvent, tx: unknown): void | Promise<void>
  promote(): void
  discard(): void
}

/** A command recorded in the commands audit table, in the same transaction as its events. */
export interface CommandRecord {
  type: string
  data?: unknown
  metadata?: Record<string, unknown>
}

/** A row of the commands audit table. `position` is the last event the command appended. */
export interface RecordedCommand extends Required<CommandRecord> {
  id: bigint
  position: bigint
  recordedAt: Date
}

export interface AppendOptions {
  /** Written to the commands audit table atomically with the events (used by `execute`). */
  command?: CommandRecord
  /**
   * Upserts the checkpoint `name` to `position` in the same transaction as the events, so a
   * consumer that appends its outputs gets exactly-once effects. Read it back with `checkpoint(name)`.
   */
  checkpoint?: { name: string; position: bigint }
}

export interface SaveSnapshotOptions {
  /** Keep only the newest `keep` snapshots of this name (by position). Default: all. */
  keep?: number
}

/** A stored snapshot of a named projection (the state cache writes one). */
export interface StoredSnapshot {
  name: string
  position: bigint
  data: Uint8Array
  createdAt: Date
}

/**
 * Configuration shared by every backend, in go-crablet's spirit. Defaults are in `defaultStoreOptions`.
 */
export interface StoreOptions {
  /** Events fetched per round trip by `read`/`subscribe`. Default 1000. */
  streamBatchSize?: number
  /** Largest number of waiting appends the writer takes into one group commit. Default 256. */
  maxAppendBatch?: number
  /** Largest number of events in one append call. Default 10000. */
  maxEventsPerAppend?: number
  /** Largest serialised size of one event (data + metadata JSON), in bytes. Default 1 MiB. */
  maxEventBytes?: number
  /** How often a subscriber polls when no notification arrives, in ms. Default 1000. */
  pollIntervalMs?: number
  /** How long an append may wait (queue + database) before failing, in ms. Default 30000. */
  appendTimeoutMs?: number
  /** Appends queued per store instance before `append` rejects with OVERLOADED (retriable). Default 10000. */
  maxPendingAppends?: number
  /** Largest serialised size of one append call (every event's data + metadata), in bytes. Default 64 MiB. */
  maxAppendBytes?: number
  /** Largest number of items in one query or condition. Default 100. */
  maxQueryItems?: number
  /**
   * Group commit's patience, in microseconds (0: none). When the previous batch was written a
   * moment ago and fewer appends are waiting than it held, its callers are probably on their way
   * back (over HTTP each comes back after its own round trip, not all at once): the writer then
   * waits for as many as it held, at most this long, instead of paying a commit for a part of
   * them. A lone caller, or the first append after a quiet spell, never waits. Default 300 on
   * SQLite, whose commit (an fsync with `synchronous=FULL`) stops the JavaScript thread; 0 on
   * PostgreSQL, whose commits run in the server while the next batch is pipelined (measured there,
   * waiting made batches larger but appends over HTTP no faster), and on memory.
   */
  commitDelayMicros?: number
}

/** Options that are not numbers, shared by every backend. */
export interface StoreHooks {
  /**
   * Called when an inline projector's `promote` or `discard` throws; the projector is then
   * detached and marked failed. The callers of the batch still get their own results (the events
   * are durable). Default: the error is written to stderr.
   */
  onProjectorError?: (error: unknown, name: string) => void
}

/** The defaults of the shared options; `commitDelayMicros` has its own per backend. */
export const defaultStoreOptions: Required<Omit<StoreOptions, 'commitDelayMicros'>> = {
  streamBatchSize: 1000,
  maxAppendBatch: 256,
  maxEventsPerAppend: 10_000,
  maxEventBytes: 1 << 20,
  pollIntervalMs: 1000,
  appendTimeoutMs: 30_000,
  maxPendingAppends: 10_000,
  maxAppendBytes: 64 << 20,
  maxQueryItems: 100,
}

/**
 * The transaction a store hands to ringstate's own modules (projections write their read models
 * and checkpoints through it): the postgres.js transaction and the schema of the store's tables on
 * PostgreSQL, the writer connection inside its write transaction on SQLite (a `SqliteDatabase`
 * of ts/store/sqlite/driver.ts: bun:sqlite's `Database` on Bun, a wrapper over node:sqlite's
 * `DatabaseSync` on Deno and Node; use it synchronously), nothing on memory.
 */
export type StoreTransaction =
  | { backend: 'memory' }
  | { backend: 'sqlite'; db: unknown }
  | { backend: 'postgres'; sql: unknown; schema: string }

/**
 * Runs `fn` inside one write transaction of the store, serialised with appends (on SQLite through
 * the one writer). A throw rolls back everything `fn` wrote. Not part of the public contract:
 * ringstate's projections use it; it is a symbol so it never collides with user code.
 */
export const storeTransaction: unique symbol = Symbol.for('ringstate.store.transaction')

export interface TransactionalStore {
  [storeTransaction]<T>(fn: (tx: StoreTransaction) => T | Promise<T>): Promise<T>
}

/**
 * The event store. `E` names each event type's data (section 2.2 of DESIGN.md): `append` takes only
 * those types with their data, and every read yields `EventOf<E>`, narrowed by `event.type`.
 *
 * A typed store is not an untyped one (the untyped `append` takes any type), so code that works
 * with any store is generic: `function tool<E extends EventMap>(store: EventStore<E>)`.
 */
export interface EventStore<E extends EventMap = EventMap> {
  /**
   * Append events, all or nothing, optionally under a condition that must hold atomically with
   * the write. Resolves to the position of the last event and the count. When every event id is
   * stored already, resolves to the first append's result and writes nothing (idempotency is
   * checked before the condition).
   *
   * @throws AppendConditionFailedError (APPEND_CONDITION_FAILED) when an event after
   *   `condition.after` matches `condition.failIfEventsMatch`; INVALID_EVENT, INVALID_CONDITION,
   *   STORE_CLOSED, STORAGE_ERROR.
   *
   * @example
   * const { states, condition } = await store.project({
   *   taken: { query: [{ types: ['AccountRegistered'], tags: ['username:ada'] }], initial: false, apply: () => true },
   * })
   * if (!states.taken) {
   *   await store.append({ type: 'AccountRegistered', tags: ['username:ada'], data: { username: 'ada' } }, condition)
   * }
   */
  append(
    events: InputOf<E> | readonly InputOf<E>[],
    condition?: AppendCondition,
    options?: AppendOptions,
  ): Promise<AppendResult>
  /** Every matching event (collects `read`). An aborted query rejects ABORTED. */
  query(query: Query, options?: ReadOptions): Promise<EventOf<E>[]>
  /** Matching events in position order (newest first with `backwards`), fetched in batches. */
  read(query: Query, options?: ReadOptions): AsyncIterable<EventOf<E>>
  /**
   * Matching events after `options.after`, then new ones as they commit, until the signal aborts
   * or the store closes. Live subscribers of one store share one tail reader.
   *
   * Storage errors (STORAGE_ERROR: a lost connection, a restarting server): before the first
   * caught-up moment the iterator rejects with the error, so a caller learns the store is
   * unreachable. After it, the subscriber outlasts them: the tail and a subscriber catching up
   * again by itself retry every `pollIntervalMs` (at most 1 s) until the signal or the close ends
   * the wait, and no event is lost or repeated.
   *
   * The data and metadata of every event `subscribe` and `follow` yield are deeply frozen and
   * shared: live readers of one store get the same data, parsed once, so none can change what
   * another sees. Changing them throws a TypeError (in strict code, which modules are); copy what
   * you need to change (`structuredClone(event.data)`). The event object, its tags and its
   * recordedAt are the reader's own. `read` and `query` return data that is not frozen.
   */
  subscribe(query: Query, options?: SubscribeOptions): AsyncIterable<EventOf<E>>
  /**
   * The batch form of `subscribe`: catch up in batches of up to `batchSize`, then follow the tail.
   * When caught up and idle it yields an empty batch whenever `through` advances. Its events'
   * data and metadata are frozen and shared, as `subscribe`'s are.
   */
  follow(query: Query, options?: FollowOptions): AsyncIterable<FollowBatch<EventOf<E>>>
  /**
   * Fold each projector over the events its query matches, in one read, and return the states
   * with the condition that keeps a decision based on them safe: `failIfEventsMatch` is the OR
   * of the projectors' queries, `after` the position of the last event read (undefined when none).
   *
   * @example
   * const { states, condition } = await store.project({
   *   capacity: { query: [{ types: ['CourseDefined'], tags: ['course:c1'] }], initial: 0,
   *               apply: (_, event) => (event.data as { capacity: number }).capacity },
   *   enrolled: { query: [{ types: ['StudentEnrolled'], tags: ['course:c1'] }], initial: 0,
   *               apply: (n: number) => n + 1 },
   * })
   * if (states.enrolled < states.capacity) {
   *   await store.append({ type: 'StudentEnrolled', tags: ['course:c1', 'student:s1'] }, condition)
   * }
   */
  project<P extends Record<string, AnyProjector<any, E>>>(
    projectors: P,
    options?: { signal?: AbortSignal },
  ): Promise<ProjectResult<P>>
  head(): Promise<bigint>
  attach(projector: InlineProjector): () => void
  /** The position stored by `AppendOptions.checkpoint` under this name, if any. */
  checkpoint(name: string): Promise<bigint | undefined>
  /** Store a snapshot of a named projection (kept beside the log, in the same database). */
  saveSnapshot(name: string, position: bigint, data: Uint8Array, options?: SaveSnapshotOptions): Promise<void>
  /** The newest snapshot of a named projection, if any. */
  loadSnapshot(name: string): Promise<StoredSnapshot | undefined>
  /** Delete every snapshot of this name. */
  deleteSnapshots(name: string): Promise<void>
  /** The commands audit table, oldest first (written by `execute`); no cap beyond `limit`. */
  commands(options?: { after?: bigint; limit?: number }): Promise<RecordedCommand[]>
  /** Close the store. May be called more than once; every call resolves once the store is closed. */
  close(): Promise<void>
}
