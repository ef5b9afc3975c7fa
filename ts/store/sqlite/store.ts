/**
 * The SQLite backend, the embedded default: one file, WAL mode; bun:sqlite on Bun, node:sqlite on
 * Deno and on Node 22.13+/23.4+/24+ (./driver.ts, chosen once at the first open; the SQL is the same).
 *
 * Durability: `synchronous=FULL` by default. In WAL mode that fsyncs the log on every commit, so
 * an append that was acknowledged survives a crash of the process and of the machine. `NORMAL`
 * survives a process crash (SIGKILL) but may lose the last commits on power loss; it is offered as
 * `{ synchronous: 'normal' }` for callers that accept that. Measured on the development machine
 * (2 cores shared with other work, virtio disk), one single-row transaction at a time: FULL about
 * 4,600 commits/s, NORMAL about 100,000 commits/s. Group commit amortises the fsync over every
 * append waiting at the moment, which is why FULL is affordable as the default: single-event
 * appends from 16 concurrent callers reach about 47,000-49,000/s with FULL and 90,000/s with
 * NORMAL (`bun bench/measure-sqlite-appends.ts full|normal`; the FULL figure swings with the
 * machine's load, since every batch waits for one fsync).
 *
 * Where a batch of 16 single-event appends spends its time with FULL (bench-shaped events, about
 * 380 µs per batch in all): the COMMIT about 250-290 µs, of which ~150 µs is the fsync itself (a
 * one-row commit costs that much) and the rest writing ~33 WAL frames; the inserts ~50 µs; the
 * callers' own JS (validation, promises) ~55 µs. A batch cannot grow past the number of callers,
 * so 50,000/s with 16 callers needs the whole batch in 320 µs: within reach on a quiet machine,
 * not reliably on a shared one. The COMMIT is I/O the store cannot shrink further: counted with
 * strace over 337 batches of the benchmark's shape (2026-11-29), each commit made 53 WAL writes
 * (26 frames, a header and a page each; 16 of the frames are the event_tags leaves of the 16
 * callers' own tags, since that index is ordered by tag) and one fsync; checkpoints added about 3
 * page writes per commit. A CPU profile of the same run put 91% of the writer's time inside COMMIT.
 * Turning checkpoints off made it slower (37,000 instead of 54,000 appends/s): a WAL that keeps
 * growing costs a file-size update on every fsync, while a reset WAL is overwritten in place.
 *
 * Concurrency: each store has one writer connection and one reader connection. The writer takes
 * every append waiting at the moment (up to `maxAppendBatch`) into one `BEGIN IMMEDIATE`
 * transaction. SQLite grants that lock to one connection at a time across every process on the
 * file, so condition checks and inserts are truly serialised, and positions (assigned inside the
 * transaction as head + 1) are gapless and increase in commit order. Readers see committed data
 * only (WAL snapshots), so an open write transaction never delays them.
 *
 * The queue, group commit, inline projectors and the tail reader are the shared core's
 * (ts/store/core/); this file holds the SQL of one batch, the reads, and the data_version watch.
 */
import { mkdirSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import {
  AppendConditionFailedError,
  InvalidEventError,
  InvalidOptionsError,
  StorageError,
  type RingstateError,
} from '../../errors.ts'
import type { AppendOutcome, BeforeCommit, EventPage, EventRecord, Lane, QueuedAppend, StoreBackend } from '../core/backend.ts'
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
import { isBusyError, sqliteDriver, type OpenSqlite, type SqliteDatabase, type SqliteStatement } from './driver.ts'
import { migrate } from './schema.ts'
import { finishPageBody, firstMatch, MAX_POSITION, selectEvents, selectPageBody, type EventRow } from './sql.ts'

/** Options of the SQLite backend: the shared store options plus SQLite's own. */
export interface SqliteStoreOptions extends StoreOptions, StoreHooks {
  /**
   * `'full'` (default): an acknowledged append survives power loss. `'normal'`: it survives a
   * process crash; the last commits may be lost when the machine loses power. Much faster.
   */
  synchronous?: 'full' | 'normal'
  /**
   * How long a connection waits synchronously for a lock held by another process, in ms, before
   * the writer backs off asynchronously and retries (until `appendTimeoutMs`). Default 20.
   */
  busyTimeoutMs?: number
}

/**
 * Subscribers are woken at once by appends of this store; appends by other processes are noticed
 * by polling `PRAGMA data_version` (a counter in shared memory, a few microseconds to read). That
 * is cheap enough to poll every 50 ms instead of the shared 1 s default, unless the caller set
 * `pollIntervalMs` explicitly.
 */
const DEFAULT_SQLITE_POLL_MS = 50

/** How long a connection blocks the thread waiting for the lock while opening (schema, WAL). */
const OPEN_BUSY_TIMEOUT_MS = 10_000

/**
 * The page size of a new file (an existing file keeps its own). Every commit copies each page it
 * dirtied into the WAL (two writes per page) before the fsync, and a batch of 16 single-event
 * appends with distinct tags dirties a leaf of the tag index per tag plus the right edges of the
 * events table and its indexes. Measured on the development machine, synchronous=FULL, 16
 * single-event appends per commit on 100,000 stored events: 4,096-byte pages 26 WAL frames
 * (108 KB) per commit, 2,048 33 frames (68 KB), 1,024 42 frames (43 KB). Through the store
 * (16 callers, bench-shaped events, fresh file) 4,096 gave 30,000-31,000 appends/s and 2,048
 * 43,000-45,000; 1,024 was no faster than 2,048 but slower to read: `read('all')` of 200,000
 * events took 288-384 ms, against 278 ms with 2,048 and 245-256 ms with 4,096.
 */
const PAGE_SIZE = 2048

/**
 * WAL pages after which a commit also checkpoints the WAL into the file: 4 MB of WAL, as with
 * SQLite's defaults (1,000 pages of 4 KiB). Left at 1,000 pages of 2 KiB, checkpoints come twice
 * as often and copy the same hot pages (right edges, busy tag leaves) back each time: batches of
 * 16 appends took 316/327/356 µs against 310/313/317 µs with 2,000 pages (three alternating
 * runs); 4,000 pages was no better than 2,000.
 */
const WAL_AUTOCHECKPOINT_PAGES = 2000

/**
 * Rows per multi-row INSERT. One statement for the batch's event rows and one for its tag rows
 * instead of one statement per row: 46 instead of 54 µs of SQL per batch of 16 events (measured
 * with 1,024-byte pages); every distinct row count up to this gets its own cached statement.
 */
const ROWS_PER_INSERT = 32

/** Distinct condition-check statements kept prepared (see `#checkStatement`). */
const MAX_CHECK_SHAPES = 256

/**
 * A multi-row INSERT into one table: rows are collected as flat parameter lists and written by
 * `flush` in statements of up to ROWS_PER_INSERT rows, each row count prepared once.
 */
class RowInserter {
  readonly #db: SqliteDatabase
  readonly #prefix: string
  readonly #tuple: string
  readonly #width: number
  readonly #statements = new Map<number, SqliteStatement>()
  /** Parameters of the rows not yet written, `width` per row. */
  readonly params: (string | bigint | number)[] = []

  constructor(db: SqliteDatabase, table: string, columns: readonly string[]) {
    this.#db = db
    this.#prefix = `INSERT INTO ${table} (${columns.join(', ')}) VALUES `
    this.#tuple = `(${columns.map(() => '?').join(', ')})`
    this.#width = columns.length
  }

  flush(): void {
    const params = this.params
    const width = this.#width
    for (let offset = 0; offset < params.length; ) {
      const rows = Math.min(ROWS_PER_INSERT, (params.length - offset) / width)
      const end = offset + rows * width
      this.#statement(rows).run(...(offset === 0 && end === params.length ? params : params.slice(offset, end)))
      offset = end
    }
    params.length = 0
  }

  /** Forget unwritten rows (the transaction is being rolled back). */
  clear(): void {
    this.params.length = 0
  }

  #statement(rows: number): SqliteStatement {
    let statement = this.#statements.get(rows)
    if (statement === undefined) {
      statement = this.#db.prepare(this.#prefix + new Array<string>(rows).fill(this.#tuple).join(', '))
      this.#statements.set(rows, statement)
    }
    return statement
  }
}


function toRecord(row: EventRow): EventRecord {
  return {
    position: row.position,
    type: row.type,
    tagsJson: row.tags,
    dataJson: row.data,
    metadataJson: row.metadata,
    id: row.id,
    recordedAt: new Date(Number(row.recorded_at)),
  }
}

const sleep = (ms: number) => new Promise<void>((done) => setTimeout(done, ms))

/**
 * `PRAGMA journal_mode = WAL`, retried while SQLite answers SQLITE_BUSY, until OPEN_BUSY_TIMEOUT_MS.
 * The busy timeout does not cover it: SQLite does not wait where waiting could deadlock, and
 * processes opening a new file at once each read it in rollback-journal mode and then ask to switch
 * it, so all but one get SQLITE_BUSY at once (CI saw one of four processes fail to open this way).
 * The retry blocks the thread between tries, as SQLite's own busy handler does while opening.
 */
function enterWalMode(db: SqliteDatabase): void {
  const deadline = performance.now() + OPEN_BUSY_TIMEOUT_MS
  for (let wait = 1; ; wait = Math.min(wait * 2, 20)) {
    try {
      db.exec('PRAGMA journal_mode = WAL')
      return
    } catch (error) {
      if (!isBusyError(error) || performance.now() + wait > deadline) throw error
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, wait)
    }
  }
}

const ONE_LANE: Lane = { via: undefined, free: 1 }

const EMPTY = new Uint8Array(0)

/** The SQLite statements of the store: one writer connection, one reader connection. */
class SqliteBackend implements StoreBackend {
  readonly kind = 'sqlite' as const
  readonly independentAppends = false
  readonly maxBatchEvents = Number.POSITIVE_INFINITY
  /**
   * The commit (its fsync) runs on the JavaScript thread, so a batch cut short by callers still on
   * their way costs the whole process a commit. bench/http.bench.ts appends (16 wrk clients),
   * alternating runs: batches of 8.3-9.7 appends without a delay, 15.5-15.8 with 300 µs; HTTP
   * appends 0.46-0.52x of direct without, 0.53-0.61x with.
   */
  readonly defaultCommitDelayMicros = 300
  readonly #options: ResolvedStoreOptions
  readonly #writer: SqliteDatabase
  readonly #reader: SqliteDatabase
  readonly #pollMs: number
  /** `:memory:` has one connection for reads and writes (a second would open another database). */
  readonly #shared: boolean
  /**
   * Set while the shared connection holds a transaction open across an await (an async inline
   * projector, a storeTransaction): reads wait for it, so they never see uncommitted rows.
   */
  #readGate: Promise<void> | undefined
  #releaseReads: (() => void) | undefined

  // Prepared once; statements belong to their connection.
  readonly #headStmt
  readonly #readerHeadStmt
  readonly #findIdStmt
  readonly #eventRows: RowInserter
  readonly #tagRows: RowInserter
  /** Condition checks by SQL text (one per query shape), prepared on the writer. */
  readonly #checks = new Map<string, SqliteStatement>()
  readonly #insertCommandStmt
  readonly #upsertCheckpointStmt
  readonly #dataVersionStmt

  constructor(path: string, options: SqliteStoreOptions, resolved: ResolvedStoreOptions, open: OpenSqlite) {
    this.#options = resolved
    const synchronous = options.synchronous ?? 'full'
    if (synchronous !== 'full' && synchronous !== 'normal') {
      throw new InvalidOptionsError("synchronous must be 'full' or 'normal'")
    }
    const busy = options.busyTimeoutMs ?? 20
    if (!Number.isSafeInteger(busy) || busy < 0) throw new InvalidOptionsError('busyTimeoutMs must be an integer >= 0')
    this.#pollMs = options.pollIntervalMs ?? DEFAULT_SQLITE_POLL_MS
    this.#shared = path === ':memory:'

    this.#writer = open(path, true)
    let reader: SqliteDatabase | undefined
    try {
      this.#writer.exec(`PRAGMA busy_timeout = ${OPEN_BUSY_TIMEOUT_MS}`)
      // Only takes effect while the file is still empty: before WAL mode writes its first page.
      this.#writer.exec(`PRAGMA page_size = ${PAGE_SIZE}`)
      enterWalMode(this.#writer)
      this.#writer.exec(`PRAGMA wal_autocheckpoint = ${WAL_AUTOCHECKPOINT_PAGES}`)
      this.#writer.exec(`PRAGMA synchronous = ${synchronous.toUpperCase()}`)
      migrate(this.#writer)
      this.#writer.exec(`PRAGMA busy_timeout = ${busy}`)
      reader = this.#reader = this.#shared ? this.#writer : open(path, false)
      // Readers in WAL mode wait only while a checkpoint restarts the log: rare and short.
      if (!this.#shared) this.#reader.exec(`PRAGMA busy_timeout = ${OPEN_BUSY_TIMEOUT_MS}`)

      this.#headStmt = this.#writer.prepare('SELECT coalesce(max(position), 0) AS p FROM events')
      this.#findIdStmt = this.#writer.prepare('SELECT position FROM events WHERE id = ?')
      this.#eventRows = new RowInserter(this.#writer, 'events', ['position', 'type', 'tags', 'data', 'metadata', 'id', 'recorded_at'])
      this.#tagRows = new RowInserter(this.#writer, 'event_tags', ['tag', 'position'])
      this.#insertCommandStmt = this.#writer.prepare(
        'INSERT INTO commands (type, data, metadata, position, recorded_at) VALUES (?, ?, ?, ?, ?)',
      )
      this.#upsertCheckpointStmt = this.#writer.prepare(
        'INSERT INTO checkpoints (name, position, updated_at) VALUES (?, ?, ?) ' +
          'ON CONFLICT (name) DO UPDATE SET position = excluded.position, updated_at = excluded.updated_at',
      )
      this.#readerHeadStmt = this.#reader.prepare('SELECT coalesce(max(position), 0) AS p FROM events')
      this.#dataVersionStmt = this.#reader.prepare('PRAGMA data_version')
    } catch (error) {
      // A failed open leaves no connection behind (the store was never handed out to close it).
      if (reader !== undefined && reader !== this.#writer) reader.close()
      this.#writer.close()
      throw error
    }
  }

  /** SQLite has one writer by nature: one batch at a time. */
  lane(inFlight: number): Lane | undefined {
    return inFlight === 0 ? ONE_LANE : undefined
  }

  idle(): void {}

  async writeBatch(_via: unknown, batch: readonly QueuedAppend[], beforeCommit?: BeforeCommit): Promise<AppendOutcome[]> {
    if (!(await this.#begin(() => batch.every((append) => append.settled)))) {
      return batch.map(() => ({ status: 'skipped' }))
    }
    const recordedAt = Date.now()
    const outcomes: AppendOutcome[] = new Array(batch.length)
    try {
      let next = (this.#headStmt.get() as { p: bigint }).p + 1n
      for (let i = 0; i < batch.length; i++) {
        const outcome = this.#writeAppend(batch[i]!, next, recordedAt)
        outcomes[i] = outcome
        if (outcome.status === 'written') next = outcome.position + 1n
      }
      this.#flushRows()
    } catch (error) {
      this.#rollback()
      throw error
    }
    await this.#finish(beforeCommit === undefined ? undefined : () => beforeCommit(outcomes, this.#writer))
    return outcomes
  }

  /** Run `inside` (if any) in the open transaction, then COMMIT; roll back on any throw. */
  async #finish(inside: (() => unknown) | undefined): Promise<void> {
    if (inside !== undefined) {
      if (this.#shared) this.#readGate = new Promise<void>((done) => (this.#releaseReads = done))
      try {
        await inside()
      } catch (error) {
        this.#rollback()
        this.#openReadGate()
        throw error
      }
    }
    try {
      this.#writer.exec('COMMIT')
    } catch (error) {
      this.#rollback()
      throw error
    } finally {
      this.#openReadGate()
    }
  }

  async transaction<T>(fn: (tx: StoreTransaction) => T | Promise<T>): Promise<T> {
    await this.#begin(() => false)
    let value!: T
    await this.#finish(async () => {
      value = await fn({ backend: 'sqlite', db: this.#writer })
    })
    return value
  }

  /**
   * BEGIN IMMEDIATE, backing off asynchronously while another process holds the write lock, until
   * `gaveUp()` (every append of the batch timed out) or appendTimeoutMs. False when it gave up.
   */
  async #begin(gaveUp: () => boolean): Promise<boolean> {
    const deadline = performance.now() + this.#options.appendTimeoutMs
    let wait = 1
    for (;;) {
      try {
        this.#writer.exec('BEGIN IMMEDIATE')
        return true
      } catch (error) {
        if (!isBusyError(error)) throw error
      }
      if (gaveUp()) return false
      if (performance.now() > deadline) {
        throw new StorageError(`sqlite: gave up waiting for the write lock after appendTimeoutMs (${this.#options.appendTimeoutMs} ms)`)
      }
      await sleep(wait)
      wait = Math.min(wait * 2, 20)
    }
  }

  #rollback(): void {
    this.#eventRows.clear()
    this.#tagRows.clear()
    try {
      if (this.#writer.inTransaction) this.#writer.exec('ROLLBACK')
    } catch {
      // The connection aborted the transaction itself (an I/O error); nothing is left to undo.
    }
  }

  /** Called right after COMMIT or ROLLBACK: waiting reads resume in a later microtask. */
  #openReadGate(): void {
    const release = this.#releaseReads
    this.#readGate = undefined
    this.#releaseReads = undefined
    release?.()
  }

  /**
   * The prepared statement of a condition check. A Map lookup instead of `db.query` saves about
   * 0.9 µs per check (4.4 instead of 5.4 µs measured); the shapes in use are few, so the cache
   * is simply emptied if an application ever uses more than MAX_CHECK_SHAPES of them.
   */
  #checkStatement(sql: string): SqliteStatement {
    let statement = this.#checks.get(sql)
    if (statement === undefined) {
      if (this.#checks.size >= MAX_CHECK_SHAPES) this.#checks.clear()
      statement = this.#writer.prepare(sql)
      this.#checks.set(sql, statement)
    }
    return statement
  }

  /** Write the rows collected so far; every read inside the transaction must come after this. */
  #flushRows(): void {
    this.#eventRows.flush()
    this.#tagRows.flush()
  }

  /**
   * One append inside the batch transaction: idempotency, then the condition, then the rows. The
   * rows are only collected here; the id lookup and the condition check flush what earlier
   * appends of the batch collected first, so they see those appends as if inserted already.
   */
  #writeAppend(append: QueuedAppend, first: bigint, recordedAt: number): AppendOutcome {
    if (append.settled) return { status: 'skipped' }
    const { events, condition, command, checkpoint } = append
    if (this.#eventRows.params.length > 0 && (condition !== undefined || append.checkIds)) this.#flushRows()
    if (append.checkIds) {
      let stored = 0
      let storedMax = 0n
      let firstStored: string | undefined
      for (const event of events) {
        const row = this.#findIdStmt.get(event.id) as { position: bigint } | null
        if (row === null) continue
        stored++
        firstStored ??= event.id
        if (row.position > storedMax) storedMax = row.position
      }
      if (stored === events.length) return { status: 'duplicate', position: storedMax }
      if (stored > 0) {
        return { status: 'failed', error: new InvalidEventError(`event id ${firstStored} is already stored by another append`) }
      }
    }

    if (condition !== undefined) {
      const check = firstMatch(condition.failIfEventsMatch, condition.after ?? 0n)
      const row = this.#checkStatement(check.sql).get(...check.params) as { p: bigint | null } | null
      if (row !== null && row.p !== null) return { status: 'failed', error: new AppendConditionFailedError(condition, row.p) }
    }

    const eventRows = this.#eventRows.params
    const tagRows = this.#tagRows.params
    let position = first
    for (const event of events) {
      eventRows.push(position, event.type, JSON.stringify(event.tags), event.dataJson, event.metadataJson, event.id, recordedAt)
      for (const tag of event.tags) tagRows.push(tag, position)
      position++
    }
    const last = position - 1n
    if (command !== undefined) {
      this.#insertCommandStmt.run(command.type, command.dataJson, command.metadataJson, last, recordedAt)
    }
    if (checkpoint !== undefined) this.#upsertCheckpointStmt.run(checkpoint.name, checkpoint.position, recordedAt)
    return { status: 'written', position: last, recordedAt: new Date(recordedAt) }
  }

  async readPage(query: Query, after: bigint, before: bigint | undefined, limit: number, backwards: boolean): Promise<EventRecord[]> {
    if (this.#readGate !== undefined) await this.#readGate
    const statement = selectEvents(query, after, before ?? MAX_POSITION, limit, backwards)
    const rows = this.#reader.query(statement.sql).all(...statement.params) as EventRow[]
    return rows.map(toRecord)
  }

  async readJsonPage(query: Query, after: bigint, before: bigint | undefined, limit: number, backwards: boolean): Promise<EventPage> {
    if (this.#readGate !== undefined) await this.#readGate
    const upper = before ?? MAX_POSITION
    const page = selectPageBody(query, after, upper, limit, backwards)
    const row = this.#reader.query(page.sql).get(...page.params) as { body: Uint8Array<ArrayBuffer> | null; count: bigint; last: bigint | null }
    if (row.body === null || row.last === null) return { json: EMPTY, next: undefined }
    let next: bigint | undefined
    if (Number(row.count) >= limit) {
      // A full page: one more event after its last one means a next page. Looked up on its own (the
      // page's aggregate cannot leave out a limit + 1st row); a commit in between only adds events,
      // which a next page would show anyway.
      const last = row.last
      const probe = backwards ? selectEvents(query, after, last, 1, true) : selectEvents(query, last, upper, 1, false)
      if (this.#reader.query(probe.sql).get(...probe.params) !== null) next = last
    }
    return { body: finishPageBody(row.body, next), next }
  }

  async head(): Promise<bigint> {
    if (this.#readGate !== undefined) await this.#readGate
    return (this.#readerHeadStmt.get() as { p: bigint }).p
  }

  async checkpoint(name: string): Promise<bigint | undefined> {
    if (this.#readGate !== undefined) await this.#readGate
    const row = this.#reader.query('SELECT position FROM checkpoints WHERE name = ?').get(name) as { position: bigint } | null
    return row?.position
  }

  async saveSnapshot(name: string, position: bigint, data: Uint8Array, keep: number | undefined): Promise<void> {
    await this.transaction(() => {
      this.#writer.query('INSERT OR REPLACE INTO snapshots (name, position, data, created_at) VALUES (?, ?, ?, ?)').run(
        name, position, data, Date.now(),
      )
      if (keep !== undefined) {
        this.#writer.query(
          'DELETE FROM snapshots WHERE name = ? AND position NOT IN ' +
            '(SELECT position FROM snapshots WHERE name = ? ORDER BY position DESC LIMIT ?)',
        ).run(name, name, keep)
      }
    })
  }

  async loadSnapshot(name: string): Promise<StoredSnapshot | undefined> {
    if (this.#readGate !== undefined) await this.#readGate
    const row = this.#reader
      .query('SELECT name, position, data, created_at FROM snapshots WHERE name = ? ORDER BY position DESC LIMIT 1')
      .get(name) as { name: string; position: bigint; data: Uint8Array; created_at: bigint } | null
    if (row === null) return undefined
    return { name: row.name, position: row.position, data: new Uint8Array(row.data), createdAt: new Date(Number(row.created_at)) }
  }

  async deleteSnapshots(name: string): Promise<void> {
    await this.transaction(() => {
      this.#writer.query('DELETE FROM snapshots WHERE name = ?').run(name)
    })
  }

  async commands(after: bigint, limit: number | undefined): Promise<RecordedCommand[]> {
    if (this.#readGate !== undefined) await this.#readGate
    const rows = this.#reader
      .query('SELECT id, type, data, metadata, position, recorded_at FROM commands WHERE id > ? ORDER BY id LIMIT ?')
      .all(after, limit ?? -1) as { id: bigint; type: string; data: string; metadata: string; position: bigint; recorded_at: bigint }[]
    return rows.map((row) => ({
      id: row.id,
      type: row.type,
      data: JSON.parse(row.data),
      metadata: JSON.parse(row.metadata),
      position: row.position,
      recordedAt: new Date(Number(row.recorded_at)),
    }))
  }

  /**
   * Commits of other connections (other stores, other processes) are noticed by polling
   * `PRAGMA data_version`, a counter in shared memory that a few microseconds read; on a change the
   * head is read too, so a change the tail has already read (this store's own commits) costs no page.
   */
  watch(wake: (head?: bigint) => void): () => void {
    let version = this.#dataVersion(-1n)
    const timer = setInterval(() => {
      const now = this.#dataVersion(version)
      if (now === version) return
      version = now
      try {
        wake((this.#readerHeadStmt.get() as { p: bigint }).p)
      } catch {
        // A transient failure: the tail reads anyway, and reports nothing to anybody.
        wake()
      }
    }, this.#pollMs)
    timer.unref?.()
    return () => clearInterval(timer)
  }

  #dataVersion(fallback: bigint): bigint {
    try {
      return (this.#dataVersionStmt.get() as { data_version: bigint }).data_version
    } catch {
      // A transient failure only delays delivery to the next tick.
      return fallback
    }
  }

  storageError(operation: string, error: unknown): RingstateError {
    return toStorageError('sqlite', operation, error)
  }

  async close(): Promise<void> {
    this.#writer.close()
    if (!this.#shared) this.#reader.close()
  }
}

/**
 * An event store in one SQLite file. Open it with {@link openSqliteStore}.
 */
export class SqliteStore extends CoreStore {
  readonly path: string

  /**
   * Use {@link openSqliteStore}, which loads the runtime's driver, creates directories and reports
   * errors as StorageError. `open` is that driver (`sqliteDriver()` in ./driver.ts).
   */
  constructor(path: string, options: SqliteStoreOptions, open: OpenSqlite) {
    const resolved = resolveOptions(options)
    super(new SqliteBackend(path, options, resolved, open), options, options.pollIntervalMs ?? DEFAULT_SQLITE_POLL_MS)
    this.path = path
  }
}

/**
 * Open (creating it and its parent directories if needed) an event store in a SQLite file.
 * The schema is created or migrated on open; opening the same file from several processes at
 * once is safe. `':memory:'` gives a private in-memory database (one connection; gone on close).
 * Runs on Bun (bun:sqlite), Deno 2 and Node 22.13+/23.4+/24+ (node:sqlite), with the same SQL.
 *
 * @throws InvalidOptionsError (INVALID_OPTIONS) on bad options or path, and on a Node without
 * node:sqlite (the message names the versions that have it).
 * @throws StorageError (STORAGE_ERROR) when the file cannot be opened or migrated.
 *
 * @example
 * import { openSqliteStore } from 'ringstate/store/sqlite'
 * const store = await openSqliteStore('./data/events.db')
 * await store.append({ type: 'UserRegistered', tags: ['user:42'], data: { name: 'Ada' } })
 * await store.close()
 */
export async function openSqliteStore(path: string, options?: SqliteStoreOptions): Promise<EventStore> {
  if (typeof path !== 'string' || path.length === 0) {
    throw new InvalidOptionsError("the sqlite store needs a file path, or ':memory:'")
  }
  resolveOptions(options)
  const open = await sqliteDriver()
  try {
    if (path === ':memory:') return new SqliteStore(path, options ?? {}, open)
    const file = resolve(path)
    mkdirSync(dirname(file), { recursive: true })
    return new SqliteStore(file, options ?? {}, open)
  } catch (error) {
    if (error instanceof InvalidOptionsError) throw error
    // The path is the caller's own; SQLite's message names no secret.
    throw toStorageError('sqlite', `opening ${path}`, error)
  }
}
