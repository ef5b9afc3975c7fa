/**
 * The SQLite driver, chosen once per process at the first open: `bun:sqlite` on Bun, `node:sqlite`
 * (`DatabaseSync`) on Deno and on Node versions that have it. The backend, its schema and the
 * projections' tables use only {@link SqliteDatabase}, so the SQL and the behaviour are the same on
 * every runtime.
 *
 * On Bun the connection is bun:sqlite's own `Database`, unwrapped (it already has this shape), so
 * the benchmarked path pays nothing for the second driver. On node:sqlite a thin wrapper supplies
 * what differs: `get` answers `null` for no row (node:sqlite: `undefined`), `changes` is a number,
 * every statement reads integers as bigint (bun:sqlite's `safeIntegers`), and `query` caches
 * prepared statements by SQL text as bun:sqlite's does.
 */
import { InvalidOptionsError } from '../../errors.ts'

/** A value SQLite stores: what the store and the projections bind. */
export type SqliteValue = string | number | bigint | Uint8Array | null

/** What a write statement reports. */
export interface SqliteChanges {
  /** Rows changed by the statement. */
  changes: number
  /** The rowid of the last row inserted. */
  lastInsertRowid: number | bigint
}

/** A prepared statement; it belongs to its connection. Parameters bind positionally (`?`, `?N`). */
export interface SqliteStatement {
  /** Runs the statement and reports its changes. */
  run(...params: SqliteValue[]): SqliteChanges
  /** The first row as an object keyed by column name, or `null` when there is none. */
  get(...params: SqliteValue[]): unknown
  /** Every row, as objects keyed by column name. */
  all(...params: SqliteValue[]): unknown[]
}

/**
 * One SQLite connection, as the store's `[storeTransaction]` hands it over as `db` on SQLite
 * (`{ backend: 'sqlite', db }`): on Bun it is bun:sqlite's `Database`, elsewhere a wrapper over
 * node:sqlite's `DatabaseSync`; use only these members so code runs on both. Integers are read as
 * bigint on both. Use it synchronously, inside the callback.
 */
export interface SqliteDatabase {
  /** Runs one or more statements without parameters. */
  exec(sql: string): unknown
  /** Prepares a statement (not cached). */
  prepare(sql: string): SqliteStatement
  /** Prepares a statement, or returns the one already prepared for the same text. */
  query(sql: string): SqliteStatement
  /** Whether a transaction is open on this connection. */
  readonly inTransaction: boolean
  /** Closes the connection. */
  close(): void
}

/** Opens a connection; `create` makes the file when it does not exist. */
export type OpenSqlite = (path: string, create: boolean) => SqliteDatabase

/** Node releases whose `node:sqlite` loads without a flag: it arrived in 22.5.0 behind --experimental-sqlite and was unflagged in 23.4.0 and 22.13.0. */
export const NODE_SQLITE_VERSIONS = 'Node 22.13+, 23.4+ or 24+ (22.5-22.12 and 23.0-23.3 only with --experimental-sqlite)'

let chosen: Promise<OpenSqlite> | undefined

/**
 * The driver of this runtime, loaded once.
 *
 * @throws InvalidOptionsError (INVALID_OPTIONS) on a Node without `node:sqlite`, naming the Node
 * versions that have it and the stores that run anyway.
 */
export function sqliteDriver(): Promise<OpenSqlite> {
  if (chosen === undefined) {
    chosen = load()
    // A failed load is not remembered: the error is the same every time and costs nothing to redo.
    chosen.catch(() => (chosen = undefined))
  }
  return chosen
}

async function load(): Promise<OpenSqlite> {
  if (typeof process !== 'undefined' && process.versions?.bun !== undefined) {
    // A computed specifier: Deno and Node never try to resolve the bun: scheme.
    const bunSqlite = 'bun:sqlite'
    const { Database } = (await import(bunSqlite)) as typeof import('bun:sqlite')
    // The writer creates the file; the reader opens it with bun:sqlite's defaults.
    return (path, create) => (create ? new Database(path, { create: true, safeIntegers: true }) : new Database(path, { safeIntegers: true }))
  }
  let nodeSqlite: NodeSqlite
  try {
    const specifier = 'node:sqlite'
    nodeSqlite = (await import(specifier)) as NodeSqlite
  } catch {
    const node = typeof process !== 'undefined' ? process.versions?.node : undefined
    throw new InvalidOptionsError(
      `the sqlite store needs node:sqlite, which this runtime lacks (Node ${node ?? 'unknown'}): ` +
        `use ${NODE_SQLITE_VERSIONS}, Deno 2, or Bun; or a 'memory:' or 'postgres://' store`,
    )
  }
  return (path) => new NodeSqliteDatabase(new nodeSqlite.DatabaseSync(path))
}

// The few members of node:sqlite used here, declared locally: the project's types are Bun's.
interface NodeStatement {
  run(...params: SqliteValue[]): { changes: number | bigint; lastInsertRowid: number | bigint }
  get(...params: SqliteValue[]): unknown
  all(...params: SqliteValue[]): unknown[]
  setReadBigInts(enabled: boolean): void
}
interface NodeDatabase {
  exec(sql: string): void
  prepare(sql: string): NodeStatement
  close(): void
  readonly isTransaction?: boolean
}
interface NodeSqlite {
  DatabaseSync: new (path: string) => NodeDatabase
}

/** Statements kept by `query` before the cache starts over (the shapes in use are few). */
const MAX_CACHED_STATEMENTS = 512

class NodeSqliteStatement implements SqliteStatement {
  readonly #statement: NodeStatement

  constructor(statement: NodeStatement) {
    statement.setReadBigInts(true)
    this.#statement = statement
  }

  run(...params: SqliteValue[]): SqliteChanges {
    const result = this.#statement.run(...params)
    return { changes: Number(result.changes), lastInsertRowid: result.lastInsertRowid }
  }

  get(...params: SqliteValue[]): unknown {
    return this.#statement.get(...params) ?? null
  }

  all(...params: SqliteValue[]): unknown[] {
    return this.#statement.all(...params)
  }
}

class NodeSqliteDatabase implements SqliteDatabase {
  readonly #db: NodeDatabase
  readonly #cache = new Map<string, SqliteStatement>()

  constructor(db: NodeDatabase) {
    this.#db = db
  }

  exec(sql: string): void {
    this.#db.exec(sql)
  }

  prepare(sql: string): SqliteStatement {
    return new NodeSqliteStatement(this.#db.prepare(sql))
  }

  query(sql: string): SqliteStatement {
    let statement = this.#cache.get(sql)
    if (statement === undefined) {
      if (this.#cache.size >= MAX_CACHED_STATEMENTS) this.#cache.clear()
      statement = this.prepare(sql)
      this.#cache.set(sql, statement)
    }
    return statement
  }

  /**
   * `isTransaction` arrived in Node 22.16/24.0 (Deno has it). Without it the answer is "maybe":
   * true, so a ROLLBACK is attempted, and callers treat a failed ROLLBACK as nothing to undo.
   */
  get inTransaction(): boolean {
    return this.#db.isTransaction ?? true
  }

  close(): void {
    this.#cache.clear()
    this.#db.close()
  }
}

/**
 * Whether a driver error means "another connection holds the lock": bun:sqlite names the code
 * (`SQLITE_BUSY`, ...); node:sqlite says `ERR_SQLITE_ERROR` with the SQLite result code in
 * `errcode` (Node) or only SQLite's message (Deno).
 */
export function isBusyError(error: unknown): boolean {
  const code = (error as { code?: unknown })?.code
  if (code === 'SQLITE_BUSY' || code === 'SQLITE_BUSY_SNAPSHOT' || code === 'SQLITE_LOCKED') return true
  if (code !== 'ERR_SQLITE_ERROR') return false
  const errcode = (error as { errcode?: unknown }).errcode
  // Extended result codes keep the primary code in the low byte: 5 SQLITE_BUSY, 6 SQLITE_LOCKED.
  if (typeof errcode === 'number') return (errcode & 0xff) === 5 || (errcode & 0xff) === 6
  const message = (error as { message?: unknown }).message
  return typeof message === 'string' && /^database (table )?is locked/.test(message)
}
