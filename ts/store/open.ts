/**
 * `openStore`: one entry point for every backend, chosen by URL.
 */
import { InvalidOptionsError } from '../errors.ts'
import { MemoryStore } from './memory/index.ts'
import type { EventMap, EventStore, StoreHooks, StoreOptions } from './types.ts'
import { resolveOptions } from './validate.ts'

/** The embedded default: a SQLite file under ./data, created on first use. */
export const defaultStoreUrl = 'sqlite:./data/ringstate.db'

/** Store options plus whatever the chosen backend accepts (passed through unchanged). */
export interface OpenStoreOptions extends StoreOptions, StoreHooks {
  [backendOption: string]: unknown
}

/**
 * Open an event store.
 *
 * - `memory:` — in process memory, gone when the process ends (tests, demos).
 * - `sqlite:<path>` — an embedded SQLite file (WAL; bun:sqlite on Bun, node:sqlite on Deno 2 and on
 *   Node 22.13+/23.4+/24+; an older Node gets INVALID_OPTIONS), e.g. `sqlite:./app.db`;
 *   `sqlite::memory:` for a private in-memory database. This is the default when `url` is
 *   omitted: `sqlite:./data/ringstate.db`, creating `./data`.
 * - `postgres://...` or `postgresql://...` — PostgreSQL through postgres.js, which also reads
 *   the PG* environment variables (so `postgres:///db` with PGHOST=/var/run/postgresql reaches
 *   a unix socket).
 *
 * The SQLite and PostgreSQL backends are loaded only when asked for, so `memory:` works on any
 * runtime without them.
 *
 * @throws InvalidOptionsError (INVALID_OPTIONS) on an unknown scheme or bad options.
 *
 * `E` names each event type's data (DESIGN.md 2.2): the store then accepts only those types with
 * their data and yields events narrowed by `event.type`. Omit it for the untyped store.
 *
 * @example
 * import { openStore } from 'ringstate'
 *
 * const store = await openStore(process.env.RINGSTATE_URL ?? 'memory:')
 * await store.append({ type: 'UserRegistered', tags: ['user:42'], data: { name: 'Ada' } })
 * for (const event of await store.query([{ tags: ['user:42'] }])) console.log(event.position, event.type)
 * await store.close()
 */
export async function openStore<E extends EventMap = EventMap>(
  url?: string,
  options?: OpenStoreOptions,
): Promise<EventStore<E>> {
  // Every backend stores any JSON; the map only narrows what callers may pass and read.
  return (await openUntyped(url, options)) as unknown as EventStore<E>
}

async function openUntyped(url: string | undefined, options: OpenStoreOptions | undefined): Promise<EventStore> {
  if (url !== undefined && typeof url !== 'string') throw new InvalidOptionsError('the store URL must be a string')
  // Check the shared options up front so every backend rejects bad ones the same way.
  resolveOptions(options)
  const target = url ?? defaultStoreUrl
  const colon = target.indexOf(':')
  const scheme = colon < 0 ? '' : target.slice(0, colon).toLowerCase()
  switch (scheme) {
    case 'memory':
      return new MemoryStore(options)
    case 'sqlite': {
      const path = target.slice(colon + 1)
      if (path.length === 0) throw new InvalidOptionsError("a sqlite URL needs a path, e.g. 'sqlite:./app.db'")
      if (url === undefined) {
        const { mkdir } = await import('node:fs/promises')
        await mkdir('./data', { recursive: true })
      }
      const { openSqliteStore } = await import('./sqlite/index.ts')
      return openSqliteStore(path, options)
    }
    case 'postgres':
    case 'postgresql': {
      const { openPostgresStore } = await import('./postgres/index.ts')
      return openPostgresStore(target, options)
    }
    default:
      // Only the scheme is named: the rest of a URL may hold a password.
      throw new InvalidOptionsError(
        `unknown store URL scheme ${JSON.stringify(scheme)}: use memory:, sqlite:<path> or postgres://`,
      )
  }
}
