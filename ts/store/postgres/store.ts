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
 *   after the previous one's result), or with `pipelineDepth` > 1 (the default is 2) several at once
 *   on the writer's own connection, which runs them in the order sent; either way a store's appends commit in the
 *   order they were made. The writer waits one event-loop turn before taking a batch so that every
 *   caller already on its way joins it. A batch ends before an append whose condition could match an earlier
 *   append of the batch, or that shares an id with one; that append leads the next batch, where
 *   the committed log judges it.
 * - Followers catch up by keyset pages, then share the store's one tail reader (ts/store/core),
 *   handed this store's own commits by its writer (no read), and woken for other processes' commits by LISTEN/NOTIFY (on the
 *   writer's own connection, only while someone follows; the payload is the new head, so a notice
 *   of events already read costs nothing) and by polling the head every pollIntervalMs in case a
 *   notification is lost.
 * - The queue, group commit, pipelining and inline projectors are the shared core's; this file
 *   holds the SQL of one batch, the reads, and the connection handling.
 * - Inline projectors force an explicit transaction (BEGIN, the batch call, apply, COMMIT); without
 *   them the batch call is a single autocommit statement.
 */
import postgres, { type Sql, type TransactionSql } from 'postgres'
import {
  AppendConditionFailedError,
  InvalidEventError,
  InvalidOptionsError,
  StorageError,
  type RingstateError,
} from '../../errors.ts'
import type { AppendOutcome, BeforeCommit, EventPage, EventRecord, Lane, QueuedAppend, StoreBackend } from '../core/backend.ts'
import { jsonPageOf } from '../core/event-json.ts'
import { toStorageError } from '../core/storage-error.ts'
import { CoreStore } from '../core/store.ts'
import type {
  EventStore,
  Query,
  RecordedCommand,
  StoredSnapshot,
  StoreHooks,
  StoreOptions,
  StoreTransaction,
} from '../types.ts'
import { resolveOptions, type ResolvedStoreOptions } from '../validate.ts'
import { AppendStatus, DEFAULT_SCHEMA, migrate, notifyChannel, quoteIdentifier, validateSchemaName } from './schema.ts'
import { pageSql } from './sql.ts'

/** Options of the PostgreSQL backend: the shared store options plus connection settings. */
export interface PostgresStoreOptions extends StoreOptions, StoreHooks {
  /**
   * Connections in all, the LISTEN connection on top. Default 10. With more than one, the group
   * commits get one of them to themselves and reads and transactions share the rest.
   */
  max?: number
  /**
   * Group commits one store keeps in flight at once, from 1 to 16. Default 2. At 1 the next batch
   * is sent after the previous one's result came back.
   *
   * With 2 or more, the writer sends each batch on its connection as soon as it is formed, while
   * earlier ones are still being executed or committed, and spreads the waiting appends over the
   * free places in the pipeline, in parts of at least 32 (256 callers each awaiting its append
   * form two alternating batches of 128 at depth 2; 16 callers still form one batch of 16). It
   * does not split while other writers' commits keep coming between its own batches (other
   * processes on the same database): there the extra batches only add turns of the append lock.
   * PostgreSQL runs a connection's statements in the order they were sent, so batches still
   * commit in the order they were made, and the database no longer idles while a result travels
   * back and the callers issue their next appends. Every guarantee is kept: each batch takes the append lock and reads the log anew, so its
   * conditions and idempotency checks see every batch committed before it, and an append whose
   * ids a batch in flight holds gets that batch's result. Batches go one at a time regardless
   * while an inline projector is attached (its apply, promote and discard follow the transaction
   * of one batch) and with `max` below 3 (the writer then has no connection of its own). When a
   * batch fails and its appends are retried one by one, those retries may commit after batches
   * sent later.
   *
   * Why the default is 2: one batch at a time leaves client and server taking turns (the server
   * idles while the client settles one batch's callers and builds the next; the client idles
   * while the server writes it), so a 2-core machine ran at most one core's worth. With two in
   * flight they work at once: 256 callers on a local server (2 cores, alternating runs) measured
   * 55,734/s at depth 2 against 37,625/s at depth 1 (48,057/s at depth 4). Splitting helps only
   * when the parts stay large: 16 callers in two batches of 8 ran at 17,950/s against 20,061/s
   * in one, hence the parts of at least 32 (64 callers in two of 32: 38,369/s against 30,874/s).
   *
   * @example
   * ```ts
   * const store = await openPostgresStore('postgres://app@localhost/app', { pipelineDepth: 1 })
   * ```
   */
  pipelineDepth?: number
  /**
   * How long opening (and each reconnect) may take to reach a ready connection, in ms. Default
   * 10,000. An unreachable or silent server makes `openPostgresStore` fail with STORAGE_ERROR
   * within this time instead of hanging.
   */
  connectTimeoutMs?: number
  /**
   * The PostgreSQL schema holding the store's tables and function, created by the migrations.
   * Default `ringstate`. Tables of the earlier layout (in `public`) are moved into it on open.
   */
  schema?: string
}

/** Most events one group commit carries, so one call stays a reasonable size. */
const MAX_BATCH_EVENTS = 10_000

const DEFAULT_CONNECT_TIMEOUT_MS = 10_000

/** Group commits in flight at once by default (see `PostgresStoreOptions.pipelineDepth`). */
const DEFAULT_PIPELINE_DEPTH = 2

/** The one row of `ringstate_append_batch` (see schema.ts). */
interface BatchRow {
  head_before: bigint
  committed_at: Date
  /** Per append, only when some append was not written (else null, and so are the others). */
  statuses: number[] | null
  positions: bigint[] | null
  details: string[] | null
}

/**
 * Open (and migrate) a PostgreSQL event store. The URL is read as postgres.js reads it, PG*
 * environment variables included, so `postgres:///app` with PGHOST=/var/run/postgresql reaches a
 * unix socket.
 *
 * @throws StorageError (STORAGE_ERROR) when the database cannot be reached within
 *   `connectTimeoutMs`, or cannot be migrated.
 * @throws InvalidOptionsError (INVALID_OPTIONS) on a bad option.
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
  const pipelineDepth = options?.pipelineDepth ?? DEFAULT_PIPELINE_DEPTH
  if (!Number.isSafeInteger(pipelineDepth) || pipelineDepth < 1 || pipelineDepth > 16) {
    throw new InvalidOptionsError('store option pipelineDepth must be an integer from 1 to 16')
  }
  const connectTimeoutMs = options?.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS
  if (!Number.isSafeInteger(connectTimeoutMs) || connectTimeoutMs < 1) {
    throw new InvalidOptionsError('store option connectTimeoutMs must be a positive integer')
  }
  const schema = options?.schema ?? DEFAULT_SCHEMA
  validateSchemaName(schema)
  // The writer's group commits get a connection of their own (see PostgresBackend.lane); the pool
  // of reads, LISTEN and transactions keeps the rest of `max`.
  const connectionOptions = {
    onnotice: () => {},
    types: { bigint: postgres.BigInt },
    // No parallel query on the store's connections: its reads are short index walks cut at a page,
    // which a parallel plan cannot speed up, and a worker costs ~80 ms to start here. Before
    // autovacuum has analysed a freshly loaded log, the planner guesses ~1,300 rows per tag and
    // plans a Gather per branch of a many-tag read: 16 aggregates sharing one boundary read after a
    // load of 1,000,000 events ran at 9 commands/s (each read 1.4 s, 16 worker starts) instead of
    // thousands (bench/projections.bench.ts, BENCH_EVENTS=1000000).
    // (A string: postgres.js leaves falsy startup parameters out, the number 0 included.)
    connection: { application_name: 'ringstate', max_parallel_workers_per_gather: '0' },
    connect_timeout: connectTimeoutMs / 1000,
    // postgres.js waits 3^n/100 s before the n-th reconnect (capped at 20 s), n counted across the
    // whole pool: the failed connects of an outage push it to the cap, and a restarted server then
    // got its first append 2-23 s later (server-crash test runs, 2026-12-07). With this capped
    // doubling the same test's appends succeeded again 106 ms after the restart.
    backoff: reconnectBackoffSeconds,
  }
  const sql = postgres(url || undefined as never, { ...connectionOptions, max: max > 1 ? max - 1 : 1 })
  // postgres.js bounds each connection attempt; this bounds opening as a whole (a server that
  // accepts and then stalls inside the migration's lock, DNS, ...).
  let timer: ReturnType<typeof setTimeout> | undefined
  try {
    await Promise.race([
      migrate(sql, schema),
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new StorageError(`postgres open failed: no ready connection within connectTimeoutMs (${connectTimeoutMs} ms)`)),
          connectTimeoutMs,
        )
      }),
    ])
  } catch (error) {
    await sql.end({ timeout: 0 }).catch(() => {})
    throw error instanceof StorageError ? error : toStorageError('postgres', 'open', error)
  } finally {
    clearTimeout(timer)
  }
  const writerEvents: WriterEvents = {}
  const writerSql = max > 1
    ? postgres(url || undefined as never, {
        ...connectionOptions,
        max: 1,
        // postgres.js hands a pool's notifications to `onnotify` (the option its own listen uses,
        // missing from its types); the store's watch listens on this connection.
        onnotify: (channel: string, payload: string) => writerEvents.notify?.(channel, payload),
        onclose: () => writerEvents.closed?.(),
      } as typeof connectionOptions)
    : sql
  return new PostgresStore(sql, options ?? resolved, max > 2 ? pipelineDepth : 1, writerSql, writerEvents)
}

/** What the writer's pool (a connection of its own) tells the store's watch. */
export interface WriterEvents {
  /** A notification arrived on the writer's connection. */
  notify?: (channel: string, payload: string) => void
  /** The writer's connection closed: its next session listens nowhere. */
  closed?: () => void
}

/** Seconds before the n-th reconnect attempt: 50 ms doubling, at most 500 ms. */
function reconnectBackoffSeconds(attempt: number): number {
  return Math.min(0.05 * 2 ** attempt, 0.5)
}

/** The SQL of the PostgreSQL store: one batch function call per group commit, keyset reads, LISTEN. */
class PostgresBackend implements StoreBackend {
  readonly kind = 'postgres' as const
  readonly independentAppends = true
  readonly maxBatchEvents = MAX_BATCH_EVENTS
  /**
   * No commit delay by default: commits run in the server while the next batch is pipelined.
   * bench/http.bench.ts appends with 300 µs, alternating runs: batches of 6.1-6.6 instead of
   * 5.3-5.5, but HTTP appends at 0.53-0.62x of direct against 0.58-0.66x without.
   */
  readonly defaultCommitDelayMicros = 0
  readonly #sql: Sql<any>
  readonly #pipelineDepth: number
  /** Where batches go one at a time: a pool of one connection of its own, or the main pool. */
  readonly #writerSql: Sql<any>
  readonly #pollMs: number
  readonly #schema: string
  /** The quoted schema, ready to prefix a table name. */
  readonly #s: string
  /** The qualified batch function. */
  readonly #fn: string
  readonly #channel: string
  /** The writer connection's notifications and closes, when it is a connection of its own (see `watch`). */
  readonly #writerEvents: WriterEvents | undefined

  constructor(sql: Sql<any>, schema: string, pipelineDepth: number, pollMs: number, writerSql: Sql<any>, writerEvents: WriterEvents | undefined) {
    this.#sql = sql
    this.#writerSql = writerSql
    this.#writerEvents = writerSql === sql ? undefined : writerEvents
    this.#schema = schema
    this.#s = quoteIdentifier(schema)
    this.#fn = `${this.#s}.ringstate_append_batch`
    this.#channel = notifyChannel(schema)
    this.#pipelineDepth = pipelineDepth
    this.#pollMs = pollMs
  }

  /**
   * Where the next batch may go now: always the writer's own connection (a pool of one, see
   * `openPostgresStore`), up to pipelineDepth batches deep, or one at a time while inline
   * projectors are attached. postgres.js sends a query on a busy connection at once (it pipelines),
   * and PostgreSQL runs a connection's statements in the order they came, so batches commit in the
   * order they were made and no two batches of this store race for the append lock. Group commits
   * spread over the pool's connections ran at about half the rate (16 callers: 21,000 appends/s on
   * a fresh store, 11,000/s once 100 concurrent reads had opened the pool's other connections;
   * bench/store.bench.ts "after aborting them"), hence the connection of its own. Earlier,
   * pipelined batches went on a pool connection reserved while appends flowed; after a server
   * restart that reservation could be a dead connection (the restart test failed on it).
   */
  lane(inFlight: number, pipelined: boolean): Lane | undefined {
    const depth = pipelined ? this.#pipelineDepth : 1
    return inFlight < depth ? { via: this.#writerSql, free: depth - inFlight } : undefined
  }

  idle(): void {}

  /**
   * One call of the batch function; in an explicit transaction when inline projectors must apply
   * the written events before commit (without them the call is a single autocommit statement).
   */
  async writeBatch(via: unknown, batch: readonly QueuedAppend[], beforeCommit?: BeforeCommit): Promise<AppendOutcome[]> {
    const live = batch.filter((append) => !append.settled)
    if (live.length === 0) return batch.map(() => ({ status: 'skipped' }))
    const connection = (via ?? this.#sql) as Sql<any>
    const row = beforeCommit === undefined
      ? await this.#callBatch(connection, live)
      : await this.#writerSql.begin(async (tx) => {
          const row = await this.#callBatch(tx, live)
          await beforeCommit(outcomesOf(batch, live, row), tx)
          return row
        }) as BatchRow
    return outcomesOf(batch, live, row)
  }

  async transaction<T>(fn: (tx: StoreTransaction) => T | Promise<T>): Promise<T> {
    let value!: T
    await this.#sql.begin(async (tx) => {
      value = await fn({ backend: 'postgres', sql: tx, schema: this.#schema })
    })
    return value
  }

  /**
   * One call of ringstate_append_batch with the batch flattened into arrays (see schema.ts for the
   * layout): condition items go in three groups (with tags, types only, 'all') so the function runs
   * one plain index walk per item and only for the kinds the batch holds.
   */
  async #callBatch(sql: Sql<any> | TransactionSql<any>, batch: readonly QueuedAppend[]): Promise<BatchRow> {
    const counts: number[] = [], checkIds: boolean[] = []
    const evAppend: number[] = [], types: string[] = [], tagFrom: number[] = [], tagTo: number[] = [], tags: string[] = []
    const data: string[] = [], metadata: string[] = [], ids: string[] = []
    const tcAppend: number[] = [], tcAfter: string[] = [], tcTagFrom: number[] = [], tcTagTo: number[] = [], tcTags: string[] = []
    const tcTypeFrom: number[] = [], tcTypeTo: number[] = [], tcTypes: string[] = []
    const ycAppend: number[] = [], ycAfter: string[] = [], ycTypes: string[] = []
    const acAppend: number[] = [], acAfter: string[] = []
    const cmdAppend: number[] = [], cmdTypes: string[] = [], cmdData: string[] = [], cmdMetadata: string[] = []
    const cpAppend: number[] = [], cpNames: string[] = [], cpPositions: string[] = []

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
      if (pending.checkpoint !== undefined) {
        cpAppend.push(a)
        cpNames.push(pending.checkpoint.name)
        cpPositions.push(pending.checkpoint.position.toString())
      }
    }
    // Arrays go as array literals in text parameters: postgres.js infers an array's type from its
    // first element, which is wrong for empty arrays and booleans, and this is cheaper anyway.
    // JSON texts, the bulk of a batch, go as one text split by the server (see `joinJson`).
    const [row] = await sql`SELECT head_before, committed_at, statuses, positions, details FROM ${sql.unsafe(this.#fn)}(
      ${numbers(counts)}::int[], ${booleans(checkIds)}::boolean[],
      ${numbers(evAppend)}::int[], ${texts(types)}::text[], ${numbers(tagFrom)}::int[], ${numbers(tagTo)}::int[], ${texts(tags)}::text[],
      string_to_array(${joinJson(data)}, chr(30)), string_to_array(${joinJson(metadata)}, chr(30)), ${texts(ids)}::text[],
      ${numbers(tcAppend)}::int[], ${numbers(tcAfter)}::bigint[], ${numbers(tcTagFrom)}::int[], ${numbers(tcTagTo)}::int[], ${texts(tcTags)}::text[],
      ${numbers(tcTypeFrom)}::int[], ${numbers(tcTypeTo)}::int[], ${texts(tcTypes)}::text[],
      ${numbers(ycAppend)}::int[], ${numbers(ycAfter)}::bigint[], ${texts(ycTypes)}::text[],
      ${numbers(acAppend)}::int[], ${numbers(acAfter)}::bigint[],
      ${numbers(cmdAppend)}::int[], ${texts(cmdTypes)}::text[], string_to_array(${joinJson(cmdData)}, chr(30)), string_to_array(${joinJson(cmdMetadata)}, chr(30)),
      ${numbers(cpAppend)}::int[], ${texts(cpNames)}::text[], ${numbers(cpPositions)}::bigint[]
    )`
    return row as unknown as BatchRow
  }

  async readPage(query: Query, after: bigint, before: bigint | undefined, limit: number, backwards: boolean): Promise<EventRecord[]> {
    const page = pageSql(query, after, before, limit, backwards, this.#schema)
    const rows = await retryRead(() => this.#sql.unsafe(page.text, page.params as any[], { prepare: true }))
    return rows.map(toRecord)
  }

  async readJsonPage(query: Query, after: bigint, before: bigint | undefined, limit: number, backwards: boolean): Promise<EventPage> {
    return jsonPageOf(await this.readPage(query, after, before, limit + 1, backwards), limit)
  }

  async head(): Promise<bigint> {
    const [row] = await retryRead(() => this.#sql.unsafe(`SELECT coalesce(max(position), 0)::bigint AS head FROM ${this.#s}.events`, [], { prepare: true }))
    return row!.head as bigint
  }

  async checkpoint(name: string): Promise<bigint | undefined> {
    const [row] = await retryRead(() => this.#sql.unsafe(`SELECT position FROM ${this.#s}.checkpoints WHERE name = $1`, [name], { prepare: true }))
    return row?.position as bigint | undefined
  }

  async saveSnapshot(name: string, position: bigint, data: Uint8Array, keep: number | undefined): Promise<void> {
    const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength)
    await this.#sql.begin(async (tx) => {
      await tx.unsafe(
        `INSERT INTO ${this.#s}.snapshots (name, position, data) VALUES ($1, $2, $3)
         ON CONFLICT (name, position) DO UPDATE SET data = EXCLUDED.data, created_at = now()`,
        [name, position.toString(), bytes],
      )
      if (keep !== undefined) {
        await tx.unsafe(
          `DELETE FROM ${this.#s}.snapshots WHERE name = $1 AND position NOT IN
           (SELECT position FROM ${this.#s}.snapshots WHERE name = $1 ORDER BY position DESC LIMIT $2)`,
          [name, keep],
        )
      }
    })
  }

  async loadSnapshot(name: string): Promise<StoredSnapshot | undefined> {
    const [row] = await retryRead(() => this.#sql.unsafe(
      `SELECT name, position, data, created_at FROM ${this.#s}.snapshots WHERE name = $1 ORDER BY position DESC LIMIT 1`,
      [name],
    ))
    if (row === undefined) return undefined
    return { name: row.name, position: row.position, data: new Uint8Array(row.data), createdAt: row.created_at }
  }

  async deleteSnapshots(name: string): Promise<void> {
    await this.#sql.unsafe(`DELETE FROM ${this.#s}.snapshots WHERE name = $1`, [name])
  }

  /** LIMIT NULL is no limit: every row after `after`, read in one statement. */
  async commands(after: bigint, limit: number | undefined): Promise<RecordedCommand[]> {
    const rows = await retryRead(() => this.#sql.unsafe(
      `SELECT id, type, data, metadata, position, recorded_at FROM ${this.#s}.commands WHERE id > $1 ORDER BY id LIMIT $2`,
      [after.toString(), limit ?? null],
    ))
    return rows.map((row) => ({
      id: row.id,
      type: row.type,
      data: row.data,
      metadata: row.metadata,
      position: row.position,
      recordedAt: row.recorded_at,
    }))
  }

  /**
   * LISTEN on the store's channel, plus a poll of the head every pollIntervalMs in case a notice is
   * lost. A poll that succeeds after failures listens again.
   *
   * With a writer connection of its own (see `openPostgresStore`), the LISTEN runs on that
   * connection: the notification of each of this store's own commits then comes back in the same
   * read as the batch's result, from the same server process, instead of waking a second server
   * process and a second socket of the client per commit. With 100 live readers beside 16
   * appending callers that waking cost the server ~5 µs and the client ~5 µs per append, most of
   * the readers' cost (development probe, alternating runs). A new session of that connection
   * (after a reconnect) listens again, then reads the head for what it may have missed.
   * Otherwise postgres.js keeps one listening connection and re-listens after a reconnect, calling
   * onlisten; it gives up on a channel whose re-listen failed while the server was down, which
   * the poll's recovery repairs.
   */
  watch(wake: (head?: bigint) => void): () => void {
    let stopped = false
    let unlisten: (() => Promise<void>) | undefined
    let healthy = true
    const checkHead = () => {
      this.head().then(
        (head) => {
          if (stopped) return
          if (!healthy) {
            healthy = true
            listen()
          }
          wake(head)
        },
        () => {
          healthy = false
        },
      )
    }
    const events = this.#writerEvents
    const channel = this.#channel
    const listen = events === undefined
      ? () => {
          const previous = unlisten
          unlisten = undefined
          previous?.().catch(() => {})
          this.#sql
            .listen(channel, (payload) => wake(parseHead(payload)), checkHead)
            .then(
              (listening) => {
                if (stopped) listening.unlisten().catch(() => {})
                else unlisten = listening.unlisten
              },
              () => {
                healthy = false
              },
            )
        }
      : () => {
          // Statements on one connection run in the order sent: an UNLISTEN of an earlier watch
          // cannot overtake this LISTEN.
          this.#writerSql.unsafe(`LISTEN ${quoteIdentifier(channel)}`).then(
            () => {
              if (!stopped) checkHead()
            },
            () => {
              healthy = false
            },
          )
        }
    if (events !== undefined) {
      events.notify = (name, payload) => {
        if (name === channel && !stopped) wake(parseHead(payload))
      }
      // A new session listens nowhere: listen again (postgres.js reconnects for the statement).
      events.closed = () => {
        if (!stopped) listen()
      }
      unlisten = async () => {
        events.notify = undefined
        events.closed = undefined
        await this.#writerSql.unsafe(`UNLISTEN ${quoteIdentifier(channel)}`)
      }
    }
    listen()
    const timer = setInterval(checkHead, this.#pollMs)
    timer.unref?.()
    return () => {
      stopped = true
      clearInterval(timer)
      unlisten?.().catch(() => {})
      unlisten = undefined
    }
  }

  storageError(operation: string, error: unknown): RingstateError {
    return toStorageError('postgres', operation, error)
  }

  async close(): Promise<void> {
    this.idle()
    await Promise.all([
      this.#sql.end({ timeout: 5 }),
      this.#writerSql === this.#sql ? undefined : this.#writerSql.end({ timeout: 5 }),
    ])
  }
}

/** The PostgreSQL `EventStore`. Create it with `openPostgresStore`. */
export class PostgresStore extends CoreStore {
  /**
   * @param sql a postgres.js instance whose database is migrated (see `migrate`)
   * @param options the store options; `schema` names the tables' schema
   * @param pipelineDepth group commits in flight at once (see `PostgresStoreOptions`)
   * @param writerSql a postgres.js instance of one connection for the group commits (default: `sql`);
   *   the store ends it on close
   * @param writerEvents filled by the store when `writerSql` relays its notifications and closes
   *   to it (see `openPostgresStore`); without it the store listens on a connection of `sql`
   */
  constructor(
    sql: Sql<any>,
    options: PostgresStoreOptions | ResolvedStoreOptions = {},
    pipelineDepth = 1,
    writerSql: Sql<any> = sql,
    writerEvents?: WriterEvents,
  ) {
    const resolved = resolveOptions(options)
    const schema = (options as PostgresStoreOptions).schema ?? DEFAULT_SCHEMA
    validateSchemaName(schema)
    super(new PostgresBackend(sql, schema, pipelineDepth, resolved.pollIntervalMs, writerSql, writerEvents), options)
  }
}

/** Attempts of a read that met a dead connection: more than a pool's connections (max 10 by default). */
const READ_ATTEMPTS = 16

/** How a socket the server closed shows up (postgres.js's code, or the socket's). */
const DEAD_CONNECTION_CODES = new Set(['CONNECTION_CLOSED', 'CONNECTION_DESTROYED', 'ECONNRESET', 'EPIPE'])

/**
 * Sends a read again when it met a connection the server had closed: after a server restart every
 * idle connection of the pool is dead and fails the first query sent on it, and reads are
 * idempotent, so a caller should not see that. Appends are not retried here (their outcome is
 * unknown: STORAGE_ERROR, retry with the same ids). A server that is down fails at once (connection
 * refused, or the connect timeout), without retries.
 */
async function retryRead<T>(read: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await read()
    } catch (error) {
      const code = (error as { code?: unknown } | null)?.code
      if (attempt >= READ_ATTEMPTS || typeof code !== 'string' || !DEAD_CONNECTION_CODES.has(code)) throw error
    }
  }
}

/** A NOTIFY payload (the new head), or undefined when it is not a position. */
function parseHead(payload: string): bigint | undefined {
  return /^\d{1,19}$/.test(payload) ? BigInt(payload) : undefined
}

/** The batch function's row as outcomes, for every append of `batch` (those not sent, `live` lacks, were settled). */
function outcomesOf(batch: readonly QueuedAppend[], live: readonly QueuedAppend[], row: BatchRow): AppendOutcome[] {
  const outcomes: AppendOutcome[] = new Array(batch.length)
  const recordedAt = row.committed_at
  let a = 0
  let last = row.head_before
  for (let i = 0; i < batch.length; i++) {
    const append = batch[i]!
    if (append !== live[a]) {
      outcomes[i] = { status: 'skipped' }
      continue
    }
    if (row.statuses === null) {
      // Every append was written, in batch order, after head_before.
      last += BigInt(append.events.length)
      outcomes[i] = { status: 'written', position: last, recordedAt }
    } else {
      outcomes[i] = outcomeOf(append, row.statuses[a]!, row.positions![a]!, row.details![a]!, recordedAt)
    }
    a++
  }
  return outcomes
}

function outcomeOf(append: QueuedAppend, status: number, position: bigint, detail: string, recordedAt: Date): AppendOutcome {
  switch (status) {
    case AppendStatus.WRITTEN:
      return { status: 'written', position, recordedAt }
    case AppendStatus.DUPLICATE:
      return { status: 'duplicate', position }
    case AppendStatus.CONFLICT:
      return { status: 'failed', error: new AppendConditionFailedError(append.condition!, position) }
    default:
      return { status: 'failed', error: new InvalidEventError(`event id ${JSON.stringify(detail)} is already stored by another append`) }
  }
}

/** A row of `pageSql`: tags, data and metadata arrive as JSON text (see there). */
function toRecord(row: any): EventRecord {
  return {
    position: row.position,
    type: row.type,
    tagsJson: row.tags,
    dataJson: row.data,
    metadataJson: row.metadata,
    id: row.id,
    recordedAt: row.recorded_at,
  }
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

