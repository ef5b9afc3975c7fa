/**
 * `CoreStore`: the `EventStore` contract implemented once over a `StoreBackend`. The memory, SQLite
 * and PostgreSQL stores are this class with their backend, so validation, limits, the writer, the
 * tail reader, `follow`/`subscribe`, `read` paging and `close` behave the same on all three.
 */
import { AbortedError, InvalidOptionsError, StoreClosedError } from '../../errors.ts'
import { project } from '../project.ts'
import {
  storeTransaction,
  type AnyProjector,
  type AppendCondition,
  type AppendOptions,
  type AppendResult,
  type EventInput,
  type EventStore,
  type FollowBatch,
  type FollowOptions,
  type InlineProjector,
  type ProjectResult,
  type Query,
  type ReadOptions,
  type RecordedCommand,
  type SaveSnapshotOptions,
  type SequencedEvent,
  type StoredSnapshot,
  type StoreHooks,
  type StoreOptions,
  type StoreTransaction,
  type SubscribeOptions,
  type TransactionalStore,
} from '../types.ts'
import {
  prepareAppend,
  resolveOptions,
  validateName,
  validateQuery,
  validateReadOptions,
  type ResolvedStoreOptions,
} from '../validate.ts'
import { decodeEvent, type EventPage, type StoreBackend } from './backend.ts'
import { TailReader, type TailStats } from './tail.ts'
import { Writer, type WriterStats } from './writer.ts'

/**
 * Internal counters of a store, for tests: `store[storeStats]()`. Not part of the public contract.
 */
export const storeStats: unique symbol = Symbol.for('ringstate.store.stats')

/** What `store[storeStats]()` returns. */
export interface StoreStats {
  tail: TailStats
  writer: WriterStats
}

/**
 * Internal: `store[readJsonPage](query, options)` reads like `query` (same validation and errors)
 * but resolves to one page of the events as the JSON text the HTTP API sends (see `EventPage`),
 * their data and metadata never parsed. Not part of the public contract.
 */
export const readJsonPage: unique symbol = Symbol.for('ringstate.store.readJsonPage')

/**
 * What `store[readJsonPage]` takes: `read`'s options with a required `limit`, and no signal. The
 * page comes from one backend read of `limit` (unlike `read`, which pages by `streamBatchSize`):
 * the caller bounds it (the HTTP API by its readLimit).
 */
export type JsonPageOptions = Omit<ReadOptions, 'signal' | 'limit'> & { limit: number }

/** A store that can read pages of JSON text (every ringstate store can). */
export interface JsonPageReader {
  [readJsonPage](query: Query, options: JsonPageOptions): Promise<EventPage>
}

/** A store exposing its internal counters (every ringstate store does). */
export interface InspectableStore {
  [storeStats](): StoreStats
}

/**
 * Internal: `store[followShared](query, options)` is `follow` for a consumer that only reads the
 * events it gets and never changes them (the SSE hub): every such follower of the tail gets the
 * same event objects instead of its own copy of each. Not part of the public contract.
 */
export const followShared: unique symbol = Symbol.for('ringstate.store.followShared')

/** A store with `followShared` (every ringstate store has it). */
export interface SharedFollower {
  [followShared](query: Query, options?: FollowOptions): AsyncIterable<FollowBatch>
}

/**
 * The shared implementation of `EventStore`; each backend's store class extends it.
 * `E` is the event map, as in `EventStore<E>`.
 */
export class CoreStore implements EventStore, TransactionalStore, InspectableStore, JsonPageReader {
  readonly #backend: StoreBackend
  readonly #options: ResolvedStoreOptions
  readonly #writer: Writer
  readonly #tail: TailReader
  #closed = false
  #closing: Promise<void> | undefined

  /**
   * @param backend the storage operations
   * @param options the shared store options and hooks (validated here)
   * @param pollIntervalMs how often the backend's watch polls, when it differs from the option
   */
  constructor(backend: StoreBackend, options?: StoreOptions & StoreHooks, pollIntervalMs?: number) {
    this.#backend = backend
    this.#options = resolveOptions(options)
    const source = {
      readPage: async (query: Query, after: bigint, before: bigint | undefined, limit: number, backwards: boolean) =>
        (await this.#guard('read', () => backend.readPage(query, after, before, limit, backwards))).map(decodeEvent),
      head: () => this.#guard('head', () => backend.head()),
      watch: (wake: (head?: bigint) => void) => backend.watch(wake),
      writing: () => this.#writer.writing,
    }
    this.#tail = new TailReader(source, this.#options.streamBatchSize, pollIntervalMs ?? this.#options.pollIntervalMs)
    this.#writer = new Writer(backend, this.#options, (head, events) => this.#tail.committed(head, events))
  }

  /**
   * Append events atomically, optionally under a condition. Appends waiting at the same moment
   * share one transaction (group commit); each caller gets its own result or error.
   *
   * @example
   * const { states, condition } = await store.project({
   *   taken: { query: [{ types: ['AccountRegistered'], tags: ['username:ada'] }], initial: false, apply: () => true },
   * })
   * if (!states.taken) await store.append({ type: 'AccountRegistered', tags: ['username:ada'] }, condition)
   */
  append(
    events: EventInput | readonly EventInput[],
    condition?: AppendCondition,
    options?: AppendOptions,
  ): Promise<AppendResult> {
    try {
      this.#assertOpen()
      return this.#writer.append(prepareAppend(events, condition, options, this.#options))
    } catch (error) {
      return Promise.reject(error)
    }
  }

  /** Every matching event, in position order (newest first with `backwards`). Aborted: ABORTED. */
  async query(query: Query, options?: ReadOptions): Promise<SequencedEvent[]> {
    const out: SequencedEvent[] = []
    for await (const event of this.read(query, options)) out.push(event)
    if (options?.signal?.aborted) throw new AbortedError('query was aborted', { cause: options.signal.reason })
    return out
  }

  /**
   * Matching events in position order (newest first with `backwards`), read in pages of
   * `streamBatchSize` by keyset on position, so a log of any size is read in constant memory.
   * An abort rejects with ABORTED, never a quiet early end.
   *
   * @example
   * for await (const event of store.read([{ types: ['OrderPlaced'] }], { after: 100n })) console.log(event.position)
   */
  read(query: Query, options?: ReadOptions): AsyncIterable<SequencedEvent> {
    this.#assertOpen()
    validateQuery(query, this.#options.maxQueryItems)
    validateReadOptions(options)
    return this.#read(query, options ?? {})
  }

  async *#read(query: Query, options: ReadOptions): AsyncGenerator<SequencedEvent, void, undefined> {
    const backwards = options.backwards === true
    const signal = options.signal
    let remaining = options.limit ?? Number.POSITIVE_INFINITY
    let after = options.after ?? 0n
    let before = options.before
    while (remaining > 0) {
      throwIfAborted(signal)
      this.#assertOpen()
      if (before !== undefined && before <= after + 1n) return
      const size = Math.min(this.#options.streamBatchSize, remaining)
      const page = await this.#guard('read', () => this.#backend.readPage(query, after, before, size, backwards))
      throwIfAborted(signal)
      for (const record of page) {
        yield decodeEvent(record)
        throwIfAborted(signal)
      }
      remaining -= page.length
      if (page.length < size) return
      const last = page[page.length - 1]!.position
      if (backwards) before = last
      else after = last
    }
  }

  async [readJsonPage](query: Query, options: JsonPageOptions): Promise<EventPage> {
    this.#assertOpen()
    validateQuery(query, this.#options.maxQueryItems)
    validateReadOptions(options)
    const after = options.after ?? 0n
    if (options.before !== undefined && options.before <= after + 1n) return { json: '', next: undefined }
    return this.#guard('read', () => this.#backend.readJsonPage(query, after, options.before, options.limit, options.backwards === true))
  }

  /**
   * Matching events after `options.after`, then new ones as they commit, until the signal aborts
   * or the store closes; either ends the iteration quietly. Built on `follow`.
   *
   * @example
   * const stop = new AbortController()
   * for await (const event of store.subscribe([{ types: ['OrderPlaced'] }], { signal: stop.signal })) await ship(event)
   */
  subscribe(query: Query, options?: SubscribeOptions): AsyncIterable<SequencedEvent> {
    // Subscribe yields events only: its follower is not woken when the tail merely moves on.
    const batches = this.#follow(query, options, false)
    return this.#subscribe(batches, options?.signal)
  }

  async *#subscribe(batches: AsyncGenerator<FollowBatch>, signal: AbortSignal | undefined): AsyncGenerator<SequencedEvent, void, undefined> {
    try {
      for await (const batch of batches) {
        for (const event of batch.events) {
          if (this.#closed || signal?.aborted) return
          yield event
        }
      }
    } finally {
      await batches.return(undefined)
    }
  }

  /**
   * Matching events in batches: catch up in pages of `batchSize`, then follow the tail (shared by
   * every live follower of this store). After a batch, every matching event at or below `through`
   * has been delivered; `through` never decreases and may pass the last matching event. When caught
   * up and idle, an empty batch comes whenever `through` advances; the first time a follower is
   * caught up it gets a batch with `caughtUp: true` even when empty. Ends quietly on abort or close.
   *
   * @example
   * for await (const { events, through } of store.follow([{ types: ['OrderPlaced'] }], { signal })) {
   *   for (const event of events) await ship(event)
   *   await saveCheckpoint(through)
   * }
   */
  follow(query: Query, options?: FollowOptions): AsyncIterable<FollowBatch> {
    return this.#follow(query, options)
  }

  [followShared](query: Query, options?: FollowOptions): AsyncIterable<FollowBatch> {
    return this.#follow(query, options, true, true)
  }

  #follow(query: Query, options: FollowOptions | undefined, progress = true, shared = false): AsyncGenerator<FollowBatch> {
    this.#assertOpen()
    validateQuery(query, this.#options.maxQueryItems)
    validateReadOptions(options === undefined ? undefined : { after: options.after, signal: options.signal })
    const batchSize = options?.batchSize ?? this.#options.streamBatchSize
    if (!Number.isSafeInteger(batchSize) || batchSize < 1) throw new InvalidOptionsError('batchSize must be a positive integer')
    return this.#tail.follow(query, options?.after ?? 0n, batchSize, options?.signal, progress, shared)
  }

  /** Decision models: see `project` in ts/store/project.ts. */
  project<P extends Record<string, AnyProjector<any>>>(
    projectors: P,
    options?: { signal?: AbortSignal },
  ): Promise<ProjectResult<P>> {
    try {
      this.#assertOpen()
    } catch (error) {
      return Promise.reject(error)
    }
    return project(this, projectors as never, options) as Promise<ProjectResult<P>>
  }

  /** The position of the newest committed event, 0n when the log is empty. */
  async head(): Promise<bigint> {
    this.#assertOpen()
    return this.#guard('head', () => this.#backend.head())
  }

  /**
   * Run `projector` inside every append transaction from now on; returns the detach function.
   * A projector whose promote or discard throws is detached and reported to `onProjectorError`.
   *
   * @example
   * let pending = 0, count = 0
   * const detach = store.attach({ name: 'counter', apply: () => { pending++ }, promote: () => { count += pending; pending = 0 }, discard: () => { pending = 0 } })
   */
  attach(projector: InlineProjector): () => void {
    this.#assertOpen()
    if (
      typeof projector !== 'object' || projector === null || typeof projector.apply !== 'function' ||
      typeof projector.promote !== 'function' || typeof projector.discard !== 'function'
    ) {
      throw new InvalidOptionsError('an inline projector needs name, apply, promote and discard')
    }
    return this.#writer.attach(projector)
  }

  /** The position stored by `AppendOptions.checkpoint` under this name, if any. */
  async checkpoint(name: string): Promise<bigint | undefined> {
    this.#assertOpen()
    validateName(name, 'checkpoint')
    return this.#guard('checkpoint', () => this.#backend.checkpoint(name))
  }

  /**
   * Store a snapshot of a named projection; `loadSnapshot` returns the one with the highest
   * position (the later save when two share one). With `keep`, only the newest `keep` of this name
   * stay. Written by the store's writer, between append batches.
   */
  saveSnapshot(name: string, position: bigint, data: Uint8Array, options?: SaveSnapshotOptions): Promise<void> {
    try {
      this.#assertOpen()
      validateName(name, 'snapshot')
      if (typeof position !== 'bigint' || position < 0n) throw new InvalidOptionsError('snapshot position must be a bigint >= 0n')
      if (!(data instanceof Uint8Array)) throw new InvalidOptionsError('snapshot data must be a Uint8Array')
      if (options !== undefined && (typeof options !== 'object' || options === null)) {
        throw new InvalidOptionsError('snapshot options must be an object')
      }
      const keep = options?.keep
      if (keep !== undefined && (!Number.isSafeInteger(keep) || keep < 1)) throw new InvalidOptionsError('keep must be a positive integer')
      // Copy now: the caller may reuse its buffer before the writer gets to it.
      const bytes = data.slice()
      return this.#writer.task(() => this.#guard('saveSnapshot', () => this.#backend.saveSnapshot(name, position, bytes, keep)))
    } catch (error) {
      return Promise.reject(error)
    }
  }

  /** The newest snapshot of a named projection, if any. */
  async loadSnapshot(name: string): Promise<StoredSnapshot | undefined> {
    this.#assertOpen()
    validateName(name, 'snapshot')
    return this.#guard('loadSnapshot', () => this.#backend.loadSnapshot(name))
  }

  /** Delete every snapshot of this name. */
  deleteSnapshots(name: string): Promise<void> {
    try {
      this.#assertOpen()
      validateName(name, 'snapshot')
      return this.#writer.task(() => this.#guard('deleteSnapshots', () => this.#backend.deleteSnapshots(name)))
    } catch (error) {
      return Promise.reject(error)
    }
  }

  /** The commands audit table, oldest first; every row after `after`, up to `limit` when given. */
  async commands(options?: { after?: bigint; limit?: number }): Promise<RecordedCommand[]> {
    this.#assertOpen()
    validateReadOptions(options === undefined ? undefined : { after: options.after, limit: options.limit })
    return this.#guard('commands', () => this.#backend.commands(options?.after ?? 0n, options?.limit))
  }

  /**
   * Run `fn` inside one write transaction of the store, serialised with this store's appends (it
   * runs in the writer queue, between batches). A throw rolls back what `fn` wrote and rejects.
   */
  [storeTransaction]<T>(fn: (tx: StoreTransaction) => T | Promise<T>): Promise<T> {
    try {
      this.#assertOpen()
      if (typeof fn !== 'function') throw new InvalidOptionsError('storeTransaction needs a function')
      return this.#writer.task(() => this.#backend.transaction(fn))
    } catch (error) {
      return Promise.reject(error)
    }
  }

  /** Internal counters, for tests. */
  [storeStats](): StoreStats {
    return { tail: this.#tail.stats, writer: this.#writer.stats }
  }

  /**
   * Finish the appends already accepted, end every follow and subscription (quietly), then release
   * the storage. Every later call fails with STORE_CLOSED. Every call of close resolves once closed.
   */
  close(): Promise<void> {
    this.#closing ??= this.#close()
    return this.#closing
  }

  async #close(): Promise<void> {
    this.#closed = true
    this.#tail.close()
    await this.#writer.drain()
    this.#writer.failQueued()
    await this.#backend.close()
  }

  #assertOpen(): void {
    if (this.#closed) throw new StoreClosedError()
  }

  /** Run a backend call; its failures become STORAGE_ERROR, or STORE_CLOSED once closing. */
  async #guard<T>(operation: string, call: () => Promise<T>): Promise<T> {
    try {
      return await call()
    } catch (error) {
      if (this.#closed) throw new StoreClosedError()
      throw this.#backend.storageError(operation, error)
    }
  }
}

function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new AbortedError('read was aborted', { cause: signal.reason })
}
