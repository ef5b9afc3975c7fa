/**
 * The PostgreSQL event store (postgres.js): production and multi-process.
 *
 * How the storage guarantees of DESIGN.md section 2 hold:
 * - Positions: every append batch runs `ringstate_append_batch` (schema.ts), which takes one
 *   transaction-scoped advisory lock held until commit and allocates max(position)+1.. under it.
 *   So positions are gapless and commit in order across every process: a reader that saw N never
 *   later sees a new event below N, and a transaction that writes no events delays nobody.
 * - Conditions and idempotency are evaluated inside that locked transaction, in the database.
 * - Group commit: one writer per store takes every waiting append (up to maxAppendBatch) into one
 *   call: one round trip, one commit, one NOTIFY. Batches go one after another (the next is formed
 *   after the previous one's result), or with `pipelineDepth` > 1 several at once on one reserved
 *   connection, which runs them in the order sent; either way a store's appends commit in the
 *   order they were made. The writer waits one event-loop turn before taking a batch so that every
 *   caller already on its way joins it. A batch ends before an append whose condition could match an earlier
 *   append of the batch, or that shares an id with one; that append leads the next batch, where
 *   the committed log judges it.
 * - Subscriptions catch up by keyset pages, then wait on LISTEN/NOTIFY (one listening connection
 *   per store, fanned out in process), with polling every pollIntervalMs in case a notification is
 *   lost; postgres.js reconnects the listener and each reconnect wakes every subscriber.
 * - Inline projectors force an explicit transaction (BEGIN, the batch call, apply, COMMIT); without
 *   them the batch call is a single autocommit statement.
 */
import postgres, { type ReservedSql, type Sql, type TransactionSql } from 'postgres'
import {
  AppendConditionFailedError,
  InvalidEventError,
  InvalidOptionsError,
  RingstateError,
  StorageError,
  StoreClosedError,
} from '../../errors.ts'
import { matchesQuery } from '../match.ts'
import { project } from '../project.ts'
import type {
  AppendCondition,
  AppendOptions,
  AppendResult,
  EventInput,
  EventStore,
  InlineProjector,
  Projector,
  ProjectResult,
  Query,
  ReadOptions,
  RecordedCommand,
  SequencedEvent,
  StoredSnapshot,
  StoreOptions,
  SubscribeOptions,
} from '../types.ts'
import {
  prepareAppend,
  resolveOptions,
  validateQuery,
  validateReadOptions,
  type NormalizedCommand,
  type NormalizedEvent,
} from '../validate.ts'
import { AppendStatus, migrate, NOTIFY_CHANNEL } from './schema.ts'
import { pageSql } from './sql.ts'

/** Options of the PostgreSQL backend: the shared store options plus connection settings. */
export interface PostgresStoreOptions extends StoreOptions {
  /** Connections in the pool (the LISTEN connection comes on top). Default 10. */
  max?: number
  /**
   * Group commits one store keeps in flight at once, from 1 to 16. Default 1: the next batch is
   * sent after the previous one's result came back.
   *
   * With 2 or more, while appends are flowing the writer reserves one pool connection and sends
   * each batch on it as soon as it is formed, while earlier ones are still being executed or
   * committed, and spreads the waiting appends over the free places in the pipeline (16 callers
   * each awaiting its append form two alternating batches of 8 at depth 2). PostgreSQL runs a
   * connection's statements in the order they were sent, so batches still commit in the order
   * they were made, and the database no longer idles while a result travels back and the callers
   * issue their next appends. The reservation goes back to the pool when no append is waiting.
   * Every guarantee is kept: each batch takes the append lock and reads the log anew, so its
   * conditions and idempotency checks see every batch committed before it, and an append whose
   * ids a batch in flight holds gets that batch's result. Batches go one at a time regardless
   * while an inline projector is attached (its apply, promote and discard follow the transaction
   * of one batch) and with `max: 1` (reserving the only connection would stall reads). When a
   * batch fails and its appends are retried one by one, those retries may commit after batches
   * sent later.
   *
   * Why the default is 1: pipelining pays when the round trip is what batches wait for (a
   * database across a network). Against a local server on a busy 2-core machine, client and server
   * already compete for the CPU, and smaller batches cost more per append: 16 callers measured
   * 12,000 to 17,000 appends/s at depth 2 against 14,000 to 21,000 at depth 1.
   *
   * @example
   * ```ts
   * const store = await openPostgresStore('postgres://app@localhost/app', { pipelineDepth: 1 })
   * ```
   */
  pipelineDepth?: number
}

/** Most events one group commit carries, so one call stays a reasonable size. */
const MAX_BATCH_EVENTS = 10_000

interface PendingAppend {
  events: NormalizedEvent[]
  condition: AppendCondition | undefined
  command: NormalizedCommand | undefined
  /** Run the idempotency check: ids were given, or an earlier attempt may have committed. */
  checkIds: boolean
  resolve(result: AppendResult): void
  reject(error: unknown): void
  /** performance.now() after which it fails with a timeout. */
  deadline: number
  settled: boolean
}

interface BatchRow {
  status: number
  pos: bigint | null
  detail: string | null
  recorded_at: Date
}

/** A database failure as a StorageError; the cause keeps the driver's error, the message no secrets. */
function storageError(operation: string, error: unknown): RingstateError {
  if (error instanceof RingstateError) return error
  const reason = (error as { code?: string; message?: string })?.message ?? String(error)
  return new StorageError(`postgres ${operation} failed: ${reason}`, { cause: error })
}

/**
 * Open (and migrate) a PostgreSQL event store. The URL is read as postgres.js reads it, PG*
 * environment variables included, so `postgres:///app` with PGHOST=/var/run/postgresql reaches a
 * unix socket.
 *
 * @throws StorageError (STORAGE_ERROR) when the database cannot be reached or migrated.
 * @example
 * ```ts
 * const store = await openPostgresStore('postgres://app@localhost/app')
 * await store.append({ type: 'AccountOpened', tags: ['account:a1'] })
 * await store.close()
 * ```
 */
export async function openPostgresStore(url: string, options?: PostgresStoreOptions): Promise<EventStore> {
  const resolved = resolveOptions(options)
  const max = options?.max ?? 10
  if (!Number.isSafeInteger(max) || max < 1) throw new InvalidOptionsError('store option max must be a positive integer')
  const pipelineDepth = options?.pipelineDepth ?? 1
  if (!Number.isSafeInteger(pipelineDepth) || pipelineDepth < 1 || pipelineDepth > 16) {
    throw new InvalidOptionsError('store option pipelineDepth must be an integer from 1 to 16')
  }
  const sql = postgres(url || undefined as never, {
    max,
    onnotice: () => {},
    types: { bigint: postgres.BigInt },
    connection: { application_name: 'ringstate' },
  })
  try {
    await migrate(sql)
  } catch (error) {
    await sql.end({ timeout: 0 }).catch(() => {})
    throw storageError('open', error)
  }
  return new PostgresStore(sql, resolved, max > 1 ? pipelineDepth : 1)
}

/** The PostgreSQL `EventStore`. Create it with `openPostgresStore`. */
export class PostgresStore implements EventStore {
  readonly #sql: Sql<any>
  readonly #options: Required<StoreOptions>
  readonly #queue: PendingAppend[] = []
  /** Every append not settled yet, oldest first, from #unsettledHead on (see #armDeadline). */
  readonly #unsettled: PendingAppend[] = []
  #unsettledHead = 0
  #deadlineTimer: ReturnType<typeof setTimeout> | undefined
  readonly #projectors = new Set<InlineProjector>()
  readonly #pipelineDepth: number
  #writing: Promise<void> | undefined
  /** The connection pipelined batches go on, reserved while appends are flowing. */
  #writer: ReservedSql<any> | undefined
  #closed = false

  // Live delivery: subscribers wait for the generation to move past the one they read at.
  #generation = 0
  readonly #waiters = new Set<() => void>()
  #listening: Promise<void> | undefined
  #unlisten: (() => Promise<void>) | undefined

  /** @param pipelineDepth group commits in flight at once (see `PostgresStoreOptions`) */
  constructor(sql: Sql<any>, options: Required<StoreOptions>, pipelineDepth = 1) {
    this.#sql = sql
    this.#options = options
    this.#pipelineDepth = pipelineDepth
  }

  #assertOpen(): void {
    if (this.#closed) throw new StoreClosedError()
  }

  /**
   * Append events, atomically with an optional condition and command record.
   *
   * @example
   * ```ts
   * const { states, condition } = await store.project({ taken: usernameTaken('ada') })
   * if (!states.taken) await store.append({ type: 'AccountRegistered', tags: ['username:ada'] }, condition)
   * ```
   */
  append(
    events: EventInput | readonly EventInput[],
    condition?: AppendCondition,
    options?: AppendOptions,
  ): Promise<AppendResult> {
    try {
      this.#assertOpen()
      const { events: normalized, condition: own, command } = prepareAppend(events, condition, options, this.#options)
      return new Promise<AppendResult>((resolve, reject) => {
        const pending: PendingAppend = {
          events: normalized,
          condition: own,
          command,
          checkIds: normalized.some((event) => event.idGiven),
          resolve,
          reject,
          deadline: performance.now() + this.#options.appendTimeoutMs,
          settled: false,
        }
        this.#unsettled.push(pending)
        this.#deadlineTimer ??= this.#armDeadline(this.#options.appendTimeoutMs)
        this.#queue.push(pending)
        this.#startWriter()
      })
    } catch (error) {
      return Promise.reject(error)
    }
  }

  /**
   * One timer for every append's timeout, set for the oldest unsettled one (all share one timeout,
   * so arrival order is deadline order); a timer per append cost about 5% of the client's CPU at
   * 16 callers. Unreferenced: the connections keep the process alive while appends are waiting.
   */
  #armDeadline(ms: number): ReturnType<typeof setTimeout> {
    const timer = setTimeout(() => this.#checkDeadlines(), Math.max(0, ms))
    timer.unref?.()
    return timer
  }

  #checkDeadlines(): void {
    this.#deadlineTimer = undefined
    const now = performance.now()
    this.#dropSettled()
    while (this.#unsettledHead < this.#unsettled.length) {
      const oldest = this.#unsettled[this.#unsettledHead]!
      if (!oldest.settled) {
        if (oldest.deadline > now) break
        this.#timeOut(oldest)
      }
      this.#unsettledHead++
    }
    this.#dropSettled()
    if (this.#unsettledHead < this.#unsettled.length) {
      this.#deadlineTimer = this.#armDeadline(this.#unsettled[this.#unsettledHead]!.deadline - now)
    }
  }

  /** Forget settled appends at the front of the deadline list; stop the timer when none is left. */
  #dropSettled(): void {
    const list = this.#unsettled
    while (this.#unsettledHead < list.length && list[this.#unsettledHead]!.settled) this.#unsettledHead++
    if (this.#unsettledHead === list.length) {
      list.length = 0
      this.#unsettledHead = 0
      clearTimeout(this.#deadlineTimer)
      this.#deadlineTimer = undefined
    } else if (this.#unsettledHead > 1024 && this.#unsettledHead * 2 > list.length) {
      list.splice(0, this.#unsettledHead)
      this.#unsettledHead = 0
    }
  }

  #timeOut(pending: PendingAppend): void {
    const queued = this.#queue.indexOf(pending)
    if (queued >= 0) {
      this.#queue.splice(queued, 1)
      settle(pending, undefined, new StorageError(`append timed out after ${this.#options.appendTimeoutMs} ms waiting to be written; nothing was written`))
    } else {
      settle(pending, undefined, new StorageError(
        `append timed out after ${this.#options.appendTimeoutMs} ms in the database; it may or may not have been written: retry with the same event ids`,
      ))
    }
  }

  #startWriter(): void {
    this.#writing ??= this.#writeAll().finally(() => {
      this.#writing = undefined
      if (this.#queue.length > 0) this.#startWriter()
    })
  }

  async #writeAll(): Promise<void> {
    const inFlight = new Set<Promise<void>>()
    try {
      // Before each batch, let the callers whose appends are already on their way (resolved
      // promises, pending microtasks) enqueue them: otherwise the batch after a commit holds only
      // the callers whose continuation happened to run first (measured: conditional appends of 16
      // callers formed batches of 15 and 1 alternately).
      await nextTurn()
      while (this.#queue.length > 0 || inFlight.size > 0) {
        const via = this.#queue.length > 0 ? await this.#connectionFor(inFlight) : undefined
        if (via === undefined) {
          await Promise.race(inFlight)
        } else {
          // Pipelined, the waiting appends are spread over the free places in the pipeline, so that
          // when callers each await their append, results come back while the next batch is
          // being written instead of all at once.
          const free = via === this.#sql ? 1 : this.#pipelineDepth - inFlight.size
          const batch = this.#takeBatch(Math.ceil(this.#queue.length / free))
          if (batch.length > 0) {
            const done: Promise<void> = this.#commit(batch, via).finally(() => {
              inFlight.delete(done)
              this.#dropSettled()
            })
            inFlight.add(done)
          }
        }
        await nextTurn()
      }
    } finally {
      await Promise.all(inFlight)
      this.#writer?.release()
      this.#writer = undefined
    }
  }

  /**
   * Where the next batch may go now, or undefined when it must wait for a batch in flight: the
   * pool when nothing is in flight and batches go one at a time; otherwise the reserved writer
   * connection, up to pipelineDepth batches deep. Batches in flight on the pool or on an abandoned
   * connection finish before the next one starts, so no two batches of this store race for the
   * append lock on different connections.
   */
  async #connectionFor(inFlight: Set<Promise<void>>): Promise<Sql<any> | undefined> {
    if (this.#pipelineDepth === 1 || this.#projectors.size > 0) {
      if (inFlight.size > 0) return undefined
      this.#writer?.release()
      this.#writer = undefined
      return this.#sql
    }
    if (this.#writer === undefined) {
      if (inFlight.size > 0) return undefined
      try {
        this.#writer = await this.#sql.reserve()
      } catch {
        // The batch then fails (or not) on the pool and reports why.
        return this.#sql
      }
    }
    return inFlight.size < this.#pipelineDepth ? this.#writer : undefined
  }

  /**
   * Take the waiting appends that can share one transaction, in arrival order: stop before an
   * append whose condition matches an event of the batch so far or that repeats one of its ids.
   */
  #takeBatch(limit: number): PendingAppend[] {
    const batch: PendingAppend[] = []
    const ids = new Set<string>()
    let events = 0
    while (this.#queue.length > 0 && batch.length < Math.min(limit, this.#options.maxAppendBatch)) {
      const next = this.#queue[0]!
      if (next.settled) {
        this.#queue.shift()
        continue
      }
      if (batch.length > 0) {
        if (events + next.events.length > MAX_BATCH_EVENTS) break
        if (next.checkIds && next.events.some((event) => ids.has(event.id))) break
        const query = next.condition?.failIfEventsMatch
        if (query !== undefined && batch.some((earlier) => earlier.events.some((event) => matchesQuery(query, event.type, event.tags)))) break
      }
      this.#queue.shift()
      batch.push(next)
      events += next.events.length
      if (next.checkIds) for (const event of next.events) ids.add(event.id)
    }
    return batch
  }

  /** Write one batch (on `via`, the pool by default) and settle every append in it. Never throws. */
  async #commit(batch: PendingAppend[], via: Sql<any> = this.#sql): Promise<void> {
    try {
      const rows = this.#projectors.size === 0 ? await this.#callBatch(via, batch) : await this.#commitWithProjectors(batch)
      if (rows === undefined) return
      for (let i = 0; i < batch.length; i++) settleFromRow(batch[i]!, rows[i]!)
    } catch (error) {
      // An error the server did not send means the connection is gone: postgres.js reconnects it
      // for the pool, but a reservation on it would stall every later query (and releasing it
      // would hand the pool a closed connection), so it is dropped without release.
      if (via === this.#writer && !(error instanceof postgres.PostgresError)) this.#writer = undefined
      if (batch.length > 1) {
        // One append may be what the database refused: give each its own attempt. Ids are checked
        // because a failure at commit time leaves it unknown whether the batch was written.
        for (const pending of batch) {
          pending.checkIds = true
          await this.#commit([pending])
        }
      } else {
        settle(batch[0]!, undefined, storageError('append', error))
      }
    }
  }

  /**
   * The batch in an explicit transaction so inline projectors can apply each written event before
   * commit. A projector that throws fails the append owning that event; the transaction rolls back,
   * every projector discards, and the rest of the batch is written again without it.
   * @returns the rows, or undefined when the batch was settled some other way
   */
  async #commitWithProjectors(batch: PendingAppend[]): Promise<BatchRow[] | undefined> {
    const projectors = [...this.#projectors]
    let failed: { index: number; error: unknown } | undefined
    let rows: BatchRow[]
    try {
      rows = await this.#sql.begin(async (tx) => {
        const rows = await this.#callBatch(tx, batch)
        for (let i = 0; i < batch.length; i++) {
          const row = rows[i]!
          if (row.status !== AppendStatus.WRITTEN) continue
          const events = batch[i]!.events
          const first = row.pos! - BigInt(events.length) + 1n
          for (let k = 0; k < events.length; k++) {
            const event = toSequenced(events[k]!, first + BigInt(k), row.recorded_at)
            for (const projector of projectors) {
              try {
                await projector.apply(event, tx)
              } catch (error) {
                failed = { index: i, error }
                throw error
              }
            }
          }
        }
        return rows
      })
    } catch (error) {
      for (const projector of projectors) projector.discard()
      if (failed === undefined) throw error
      settle(batch[failed.index]!, undefined, failed.error)
      const rest = batch.filter((_, i) => i !== failed!.index)
      if (rest.length > 0) await this.#commit(rest)
      return undefined
    }
    for (const projector of projectors) projector.promote()
    return rows
  }

  /**
   * One call of ringstate_append_batch with the batch flattened into arrays (see schema.ts for the
   * layout): condition items go in three groups (with tags, types only, 'all') so the function runs
   * one plain index walk per item and only for the kinds the batch holds.
   */
  async #callBatch(sql: Sql<any> | TransactionSql<any>, batch: PendingAppend[]): Promise<BatchRow[]> {
    const counts: number[] = [], checkIds: boolean[] = []
    const evAppend: number[] = [], types: string[] = [], tagFrom: number[] = [], tagTo: number[] = [], tags: string[] = []
    const data: string[] = [], metadata: string[] = [], ids: string[] = []
    const tcAppend: number[] = [], tcAfter: string[] = [], tcTagFrom: number[] = [], tcTagTo: number[] = [], tcTags: string[] = []
    const tcTypeFrom: number[] = [], tcTypeTo: number[] = [], tcTypes: string[] = []
    const ycAppend: number[] = [], ycAfter: string[] = [], ycTypes: string[] = []
    const acAppend: number[] = [], acAfter: string[] = []
    const cmdAppend: number[] = [], cmdTypes: string[] = [], cmdData: string[] = [], cmdMetadata: string[] = []

    for (let a = 1; a <= batch.length; a++) {
      const pending = batch[a - 1]!
      counts.push(pending.events.length)
      checkIds.push(pending.checkIds)
      for (const event of pending.events) {
        evAppend.push(a)
        types.push(event.type)
        tagFrom.push(tags.length + 1)
        for (const tag of event.tags) tags.push(tag)
        tagTo.push(tags.length)
        data.push(event.dataJson)
        metadata.push(event.metadataJson)
        ids.push(event.id)
      }
      const condition = pending.condition
      if (condition !== undefined) {
        const after = (condition.after ?? 0n).toString()
        if (condition.failIfEventsMatch === 'all') {
          acAppend.push(a)
          acAfter.push(after)
        } else {
          for (const item of condition.failIfEventsMatch) {
            const itemTags = item.tags ?? []
            const itemTypes = item.types ?? []
            if (itemTags.length > 0) {
              tcAppend.push(a)
              tcAfter.push(after)
              tcTagFrom.push(tcTags.length + 1)
              for (const tag of itemTags) tcTags.push(tag)
              tcTagTo.push(tcTags.length)
              tcTypeFrom.push(tcTypes.length + 1)
              for (const type of itemTypes) tcTypes.push(type)
              tcTypeTo.push(tcTypes.length)
            } else {
              for (const type of itemTypes) {
                ycAppend.push(a)
                ycAfter.push(after)
                ycTypes.push(type)
              }
            }
          }
        }
      }
      if (pending.command !== undefined) {
        cmdAppend.push(a)
        cmdTypes.push(pending.command.type)
        cmdData.push(pending.command.dataJson)
        cmdMetadata.push(pending.command.metadataJson)
      }
    }
    // Arrays go as array literals in text parameters: postgres.js infers an array's type from its
    // first element, which is wrong for empty arrays and booleans, and this is cheaper anyway.
    // JSON texts, the bulk of a batch, go as one text split by the server (see `joinJson`).
    return (await sql`SELECT status, pos, detail, recorded_at FROM ringstate_append_batch(
      ${numbers(counts)}::int[], ${booleans(checkIds)}::boolean[],
      ${numbers(evAppend)}::int[], ${texts(types)}::text[], ${numbers(tagFrom)}::int[], ${numbers(tagTo)}::int[], ${texts(tags)}::text[],
      string_to_array(${joinJson(data)}, chr(30)), string_to_array(${joinJson(metadata)}, chr(30)), ${texts(ids)}::text[],
      ${numbers(tcAppend)}::int[], ${numbers(tcAfter)}::bigint[], ${numbers(tcTagFrom)}::int[], ${numbers(tcTagTo)}::int[], ${texts(tcTags)}::text[],
      ${numbers(tcTypeFrom)}::int[], ${numbers(tcTypeTo)}::int[], ${texts(tcTypes)}::text[],
      ${numbers(ycAppend)}::int[], ${numbers(ycAfter)}::bigint[], ${texts(ycTypes)}::text[],
      ${numbers(acAppend)}::int[], ${numbers(acAfter)}::bigint[],
      ${numbers(cmdAppend)}::int[], ${texts(cmdTypes)}::text[], string_to_array(${joinJson(cmdData)}, chr(30)), string_to_array(${joinJson(cmdMetadata)}, chr(30))
    )`) as unknown as BatchRow[]
  }

  /** All events matching the query, in position order (or newest first with `backwards`). */
  async query(query: Query, options?: ReadOptions): Promise<SequencedEvent[]> {
    const out: SequencedEvent[] = []
    for await (const event of this.read(query, options)) out.push(event)
    return out
  }

  /**
   * Stream the events matching the query in pages of streamBatchSize (keyset on position), so a
   * log of any size is read in constant memory.
   *
   * @example
   * ```ts
   * for await (const event of store.read([{ types: ['OrderPlaced'] }], { after: 100n })) console.log(event.position)
   * ```
   */
  read(query: Query, options?: ReadOptions): AsyncIterable<SequencedEvent> {
    this.#assertOpen()
    validateQuery(query)
    validateReadOptions(options)
    return this.#pages(query, options ?? {})
  }

  async *#pages(query: Query, options: ReadOptions): AsyncGenerator<SequencedEvent> {
    const descending = options.backwards === true
    let remaining = options.limit ?? Number.POSITIVE_INFINITY
    let after = options.after ?? 0n
    let before: bigint | undefined
    while (remaining > 0) {
      if (options.signal?.aborted) return
      this.#assertOpen()
      const size = Math.min(this.#options.streamBatchSize, remaining)
      const page = pageSql(query, after, before, size, descending)
      let rows: any[]
      try {
        rows = await this.#sql.unsafe(page.text, page.params as any[], { prepare: true })
      } catch (error) {
        if (this.#closed) throw new StoreClosedError()
        throw storageError('read', error)
      }
      for (const row of rows) yield toEvent(row)
      remaining -= rows.length
      if (rows.length < size) return
      const last = rows[rows.length - 1].position as bigint
      if (descending) before = last
      else after = last
    }
  }

  /**
   * Every matching event after `after`, then new ones as they commit, until the signal aborts or
   * the store closes (the iterator then ends without an error).
   *
   * @example
   * ```ts
   * const stop = new AbortController()
   * for await (const event of store.subscribe([{ tags: ['account:a1'] }], { signal: stop.signal })) handle(event)
   * ```
   */
  subscribe(query: Query, options?: SubscribeOptions): AsyncIterable<SequencedEvent> {
    this.#assertOpen()
    validateQuery(query)
    validateReadOptions(options === undefined ? undefined : { after: options.after, signal: options.signal })
    return this.#live(query, options?.after ?? 0n, options?.signal)
  }

  async *#live(query: Query, from: bigint, signal: AbortSignal | undefined): AsyncGenerator<SequencedEvent> {
    let after = from
    if (signal?.aborted) return
    await this.#listen()
    while (!this.#closed && !signal?.aborted) {
      const generation = this.#generation
      for await (const event of this.#pages(query, { after, signal })) {
        after = event.position
        yield event
        if (this.#closed || signal?.aborted) return
      }
      if (this.#generation === generation) await this.#waitForChange(signal)
    }
  }

  /** Resolve on a notification, a reconnect, the poll interval, the signal or close. */
  #waitForChange(signal: AbortSignal | undefined): Promise<void> {
    return new Promise((resolve) => {
      // An abort or close that came first would never fire again.
      if (signal?.aborted || this.#closed) return resolve()
      const done = () => {
        clearTimeout(timer)
        this.#waiters.delete(done)
        signal?.removeEventListener('abort', done)
        resolve()
      }
      const timer = setTimeout(done, this.#options.pollIntervalMs)
      this.#waiters.add(done)
      signal?.addEventListener('abort', done, { once: true })
    })
  }

  #wake(): void {
    this.#generation++
    for (const waiter of [...this.#waiters]) waiter()
  }

  /** Start the store's one LISTEN connection (once). If LISTEN is unavailable, polling remains. */
  #listen(): Promise<void> {
    this.#listening ??= this.#sql
      .listen(NOTIFY_CHANNEL, () => this.#wake(), () => this.#wake())
      .then(
        ({ unlisten }) => {
          this.#unlisten = unlisten
        },
        () => {},
      )
    return this.#listening
  }

  /** Fold projectors over the log; see `project` in ../project.ts. */
  project<P extends Record<string, Projector<any>>>(projectors: P, options?: { signal?: AbortSignal }): Promise<ProjectResult<P>> {
    try {
      this.#assertOpen()
    } catch (error) {
      return Promise.reject(error)
    }
    return project(this, projectors, options)
  }

  /** The position of the last committed event; 0n when the log is empty. */
  async head(): Promise<bigint> {
    this.#assertOpen()
    try {
      const [row] = await this.#sql`SELECT coalesce(max(position), 0)::bigint AS head FROM events`
      return row!.head as bigint
    } catch (error) {
      throw storageError('head', error)
    }
  }

  /** Run `projector` inside every append transaction from now on; returns the detach function. */
  attach(projector: InlineProjector): () => void {
    this.#assertOpen()
    this.#projectors.add(projector)
    return () => {
      this.#projectors.delete(projector)
    }
  }

  async saveSnapshot(name: string, position: bigint, data: Uint8Array): Promise<void> {
    this.#assertOpen()
    if (typeof name !== 'string' || name.length === 0) throw new InvalidOptionsError('snapshot name must be a non-empty string')
    if (typeof position !== 'bigint' || position < 0n) throw new InvalidOptionsError('snapshot position must be a bigint >= 0n')
    if (!(data instanceof Uint8Array)) throw new InvalidOptionsError('snapshot data must be a Uint8Array')
    try {
      await this.#sql`INSERT INTO snapshots (name, position, data) VALUES (${name}, ${position}, ${Buffer.from(data.buffer, data.byteOffset, data.byteLength)})
        ON CONFLICT (name, position) DO UPDATE SET data = EXCLUDED.data, created_at = now()`
    } catch (error) {
      throw storageError('saveSnapshot', error)
    }
  }

  async loadSnapshot(name: string): Promise<StoredSnapshot | undefined> {
    this.#assertOpen()
    if (typeof name !== 'string' || name.length === 0) throw new InvalidOptionsError('snapshot name must be a non-empty string')
    try {
      const [row] = await this.#sql`SELECT name, position, data, created_at FROM snapshots WHERE name = ${name} ORDER BY position DESC LIMIT 1`
      if (row === undefined) return undefined
      return { name: row.name, position: row.position, data: new Uint8Array(row.data), createdAt: row.created_at }
    } catch (error) {
      throw storageError('loadSnapshot', error)
    }
  }

  async commands(options?: { after?: bigint; limit?: number }): Promise<RecordedCommand[]> {
    this.#assertOpen()
    const after = options?.after ?? 0n
    const limit = options?.limit ?? 1000
    if (typeof after !== 'bigint' || after < 0n) throw new InvalidOptionsError('after must be a bigint >= 0n')
    if (!Number.isSafeInteger(limit) || limit < 0) throw new InvalidOptionsError('limit must be an integer >= 0')
    try {
      const rows = await this.#sql`SELECT id, type, data, metadata, position, recorded_at FROM commands WHERE id > ${after} ORDER BY id LIMIT ${limit}`
      return rows.map((row) => ({
        id: row.id,
        type: row.type,
        data: row.data,
        metadata: row.metadata,
        position: row.position,
        recordedAt: row.recorded_at,
      }))
    } catch (error) {
      throw storageError('commands', error)
    }
  }

  /** Finish the appends already accepted, end every subscription, close the connections. */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#wake()
    while (this.#writing !== undefined) await this.#writing
    await this.#listening
    await this.#unlisten?.().catch(() => {})
    await this.#sql.end({ timeout: 5 })
  }
}

/** Resolve after the pending microtasks and I/O callbacks of this event-loop turn have run. */
function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve))
}

/** A PostgreSQL array literal of integers (numbers, or bigints as decimal strings). */
function numbers(values: readonly (number | string)[]): string {
  return `{${values.join(',')}}`
}

function booleans(values: readonly boolean[]): string {
  return `{${values.map((value) => (value ? 't' : 'f')).join(',')}}`
}

/** A PostgreSQL array literal of text: every element quoted, `"` and `\` escaped. */
function texts(values: readonly string[]): string {
  let out = '{'
  for (let i = 0; i < values.length; i++) {
    if (i > 0) out += ','
    const value = values[i]!
    // Most types, tags and ids hold neither character: skip the regex pass for them.
    out += value.includes('"') || value.includes('\\') ? `"${value.replace(/["\\]/g, '\\$&')}"` : `"${value}"`
  }
  return out + '}'
}

/**
 * JSON texts joined by U+001E (record separator), for `string_to_array(text, chr(30))`: JSON.stringify
 * (which made every one of them, see validate.ts) escapes all control characters, so the separator
 * never occurs inside one, and no element needs quoting or escaping as in an array literal (measured:
 * escaping the payloads was 8% of the client's CPU at 16 callers). An empty list joins to '', which
 * string_to_array turns into an empty array; a JSON text is never empty.
 */
function joinJson(values: readonly string[]): string {
  return values.join('\x1e')
}

function settle(pending: PendingAppend, result: AppendResult | undefined, error?: unknown): void {
  if (pending.settled) return
  pending.settled = true
  if (error !== undefined) pending.reject(error)
  else pending.resolve(result!)
}

function settleFromRow(pending: PendingAppend, row: BatchRow): void {
  switch (row.status) {
    case AppendStatus.WRITTEN:
    case AppendStatus.DUPLICATE:
      settle(pending, { position: row.pos!, count: pending.events.length })
      return
    case AppendStatus.CONFLICT:
      settle(pending, undefined, new AppendConditionFailedError(pending.condition!, row.pos!))
      return
    default:
      settle(pending, undefined, new InvalidEventError(`event id ${JSON.stringify(row.detail)} is already stored by another append`))
  }
}

function toSequenced(event: NormalizedEvent, position: bigint, recordedAt: Date): SequencedEvent {
  return {
    position,
    type: event.type,
    tags: event.tags,
    data: JSON.parse(event.dataJson),
    metadata: JSON.parse(event.metadataJson),
    id: event.id,
    recordedAt,
  }
}

function toEvent(row: any): SequencedEvent {
  return {
    position: row.position,
    type: row.type,
    tags: row.tags,
    data: row.data,
    metadata: row.metadata,
    id: row.id,
    recordedAt: row.recorded_at,
  }
}
