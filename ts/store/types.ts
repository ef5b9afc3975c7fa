/**
 * The event store contract (DESIGN.md section 2): Dynamic Consistency Boundaries.
 *
 * Events carry a type and tags; a query is an OR of items; an append may carry a condition
 * that must hold atomically with the write. Every backend (memory, sqlite, postgres) implements
 * `EventStore` and passes the same conformance suite.
 */

/** An event to append. */
export interface EventInput<D = unknown> {
  /** 1..128 characters. */
  type: string
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
export interface SequencedEvent<D = unknown> {
  position: bigint
  type: string
  tags: string[]
  data: D
  metadata: Record<string, unknown>
  id: string
  recordedAt: Date
}

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

/** What an append returns: the position of its last event and how many it wrote. */
export interface AppendResult {
  position: bigint
  count: number
}

export interface ReadOptions {
  /** Only events with position > after. */
  after?: bigint
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

/** A decision-model projector: a fold over the events its query matches. */
export interface Projector<S> {
  query: Query
  initial: S
  apply(state: S, event: SequencedEvent): S
}
export type StateOf<P> = P extends Projector<infer S> ? S : never

export interface ProjectResult<P extends Record<string, Projector<any>>> {
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
}

export const defaultStoreOptions: Required<StoreOptions> = {
  streamBatchSize: 1000,
  maxAppendBatch: 256,
  maxEventsPerAppend: 10_000,
  maxEventBytes: 1 << 20,
  pollIntervalMs: 1000,
  appendTimeoutMs: 30_000,
}

export interface EventStore {
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
    events: EventInput | readonly EventInput[],
    condition?: AppendCondition,
    options?: AppendOptions,
  ): Promise<AppendResult>
  /** Every matching event (collects `read`). */
  query(query: Query, options?: ReadOptions): Promise<SequencedEvent[]>
  /** Matching events in position order (newest first with `backwards`), fetched in batches. */
  read(query: Query, options?: ReadOptions): AsyncIterable<SequencedEvent>
  /** Matching events after `options.after`, then new ones as they commit, until the signal aborts. */
  subscribe(query: Query, options?: SubscribeOptions): AsyncIterable<SequencedEvent>
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
  project<P extends Record<string, Projector<any>>>(
    projectors: P,
    options?: { signal?: AbortSignal },
  ): Promise<ProjectResult<P>>
  head(): Promise<bigint>
  attach(projector: InlineProjector): () => void
  /** Store a snapshot of a named projection (kept beside the log, in the same database). */
  saveSnapshot(name: string, position: bigint, data: Uint8Array): Promise<void>
  /** The newest snapshot of a named projection, if any. */
  loadSnapshot(name: string): Promise<StoredSnapshot | undefined>
  /** The commands audit table, oldest first (written by `execute`). */
  commands(options?: { after?: bigint; limit?: number }): Promise<RecordedCommand[]>
  close(): Promise<void>
}
