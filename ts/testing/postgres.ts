/**
 * PostgreSQL for tests: one server per test process, one fresh database per integration test file.
 *
 * The server is `DATABASE_URL` when it is set (CI services, a developer's local server), otherwise a
 * throwaway cluster started on first use by `./pg-cluster.mjs` and stopped when the process exits.
 * Nothing starts until a test asks for a database, so runs that never touch PostgreSQL pay nothing.
 * When PostgreSQL cannot be had, the call throws: PostgreSQL tests never skip themselves.
 *
 * @example
 * ```ts
 * import { afterAll, beforeAll } from 'bun:test'
 * import { freshDatabase, type FreshDatabase } from '../../testing/postgres.ts'
 * let db: FreshDatabase
 * beforeAll(async () => { db = await freshDatabase() })
 * afterAll(() => db.drop())
 * ```
 */
import postgres from 'postgres'
import { startCluster, type StartedCluster } from './pg-cluster.mjs'

let server: Promise<string> | undefined
let cluster: StartedCluster | undefined

function stopClusterOnExit(): void {
  cluster?.stopSync()
  cluster = undefined
}

/**
 * The URL of a PostgreSQL server tests may create databases on: `DATABASE_URL` if set, otherwise a
 * cluster started for this process (memoised; stopped on exit). The started cluster's URL is also
 * written to `process.env.DATABASE_URL` so child processes spawned by tests reach the same server.
 *
 * @throws Error with instructions when no server can be started (also, and on purpose, under CI).
 */
export function postgresUrl(): Promise<string> {
  server ??= resolveServer()
  return server
}

async function resolveServer(): Promise<string> {
  const given = process.env.DATABASE_URL
  if (given) return given
  try {
    cluster = await startCluster()
  } catch (error) {
    server = undefined
    const why = error instanceof Error ? error.message : String(error)
    const advice = process.env.CI
      ? 'CI must provide PostgreSQL: install it (initdb/pg_ctl) or set DATABASE_URL to a server.'
      : 'Install PostgreSQL (initdb and pg_ctl, found via pg_config or /usr/lib/postgresql/*/bin), ' +
        'or set DATABASE_URL to a server where the user may CREATE DATABASE, e.g. ' +
        'DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres'
    throw new Error(`PostgreSQL tests need a server and none could be started (${why}). ${advice}`, {
      cause: error,
    })
  }
  process.once('exit', stopClusterOnExit)
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      stopClusterOnExit()
      process.exit(128 + (signal === 'SIGINT' ? 2 : 15))
    })
  }
  process.env.DATABASE_URL = cluster.url
  return cluster.url
}

/** A database created for one test file. `drop()` (or `await using`) removes it. */
export interface FreshDatabase {
  /** Connection URL of the new database (same server, user and options as `postgresUrl()`). */
  url: string
  /** The database name, `ringstate_test_<random>`. */
  name: string
  /** Drop the database, terminating any connection still open on it. Safe to call twice. */
  drop(): Promise<void>
  [Symbol.asyncDispose](): Promise<void>
}

/** `url` with its database replaced by `name`, keeping host, user, password and query options. */
function withDatabase(url: string, name: string): string {
  const parsed = new URL(url)
  parsed.pathname = `/${name}`
  return parsed.toString()
}

/**
 * Create an empty database `ringstate_test_<random>` on the test server.
 *
 * @example
 * ```ts
 * await using db = await freshDatabase()
 * const store = await openPostgresStore(db.url)
 * ```
 */
export async function freshDatabase(): Promise<FreshDatabase> {
  const serverUrl = await postgresUrl()
  const name = `ringstate_test_${crypto.randomUUID().replaceAll('-', '').slice(0, 16)}`
  const admin = () => postgres(serverUrl, { max: 1, onnotice: () => {} })
  const sql = admin()
  try {
    await sql.unsafe(`CREATE DATABASE ${name}`)
  } finally {
    await sql.end()
  }
  let dropped: Promise<void> | undefined
  const drop = () => {
    dropped ??= (async () => {
      const sql = admin()
      try {
        await sql.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
      } finally {
        await sql.end()
      }
    })()
    return dropped
  }
  return { url: withDatabase(serverUrl, name), name, drop, [Symbol.asyncDispose]: drop }
}
