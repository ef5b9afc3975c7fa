/**
 * `openStore`: one entry point for every backend, chosen by URL.
 */
import { homedir } from 'node:os'
import { isAbsolute, resolve } from 'node:path'
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
 *   Node 22.13+/23.4+/24+; an older Node gets INVALID_OPTIONS). The path is taken literally, as a
 *   file system path: `sqlite:./app.db` or `sqlite:app.db` (relative to the working directory),
 *   `sqlite:/var/lib/app/events.db` (absolute). `sqlite::memory:` is a private in-memory database.
 *   This is the default when `url` is omitted: `sqlite:./data/ringstate.db`.
 * - `file:<path>` — the same SQLite backend, named by a file URL (RFC 8089, percent-decoded):
 *   `file:///var/lib/app/events.db`, `file:/var/lib/app/events.db`, `file://localhost/var/...`,
 *   and, as Prisma writes it, `file:./app.db` (relative to the working directory).
 * - `postgres://...` or `postgresql://...` — PostgreSQL through postgres.js, which also reads
 *   the PG* environment variables (so `postgres:///db` with PGHOST=/var/run/postgresql reaches
 *   a unix socket).
 *
 * A relative SQLite path is resolved against the working directory once, when the store opens.
 * Missing parent directories of the file are created.
 *
 * Refused with INVALID_OPTIONS, each with a message saying what to write instead, because each
 * would otherwise write somewhere the writer did not mean (peers read them differently, or the
 * shell was expected to expand them):
 * - `sqlite://...` in any form (`sqlite://rel.db` is a relative path to sqlx, a host to an RFC 3986
 *   reader and came out as `/rel.db` here; `sqlite:///x.db` is relative to SQLAlchemy, absolute
 *   to sqlx);
 * - a `file:` URL with a host other than `localhost`;
 * - a path starting with `~` or `$` (never expanded: it would create a directory named `~`);
 * - a query string or fragment (`?mode=ro`, `#...`): no SQLite URI parameters are supported;
 * - percent escapes in a `sqlite:` path (write a `file:` URL when the name needs escaping);
 * - a path that ends in `/` (a directory), holds a NUL, or looks like another URL (`sqlite:file:x`).
 *
 * The SQLite and PostgreSQL backends are loaded only when asked for, so `memory:` works on any
 * runtime without them.
 *
 * `E` names each event type's data (DESIGN.md 2.2): the store then accepts only those types with
 * their data and yields events narrowed by `event.type`. Omit it for the untyped store.
 *
 * @throws InvalidOptionsError (INVALID_OPTIONS) on an unknown scheme, a refused form or bad options.
 *
 * @example
 * import { openStore } from 'ringstate'
 *
 * type Users = { UserRegistered: { name: string } }
 * const store = await openStore<Users>(process.env.RINGSTATE_URL ?? 'sqlite:./data/users.db')
 * await store.append({ type: 'UserRegistered', tags: ['user:42'], data: { name: 'Ada' } })
 * for (const event of await store.query([{ tags: ['user:42'] }])) console.log(event.position, event.data.name)
 * await store.close()
 */
export async function openStore<E extends EventMap = EventMap>(
  url?: string,
  options?: OpenStoreOptions,
): Promise<EventStore<E>> {
  if (url !== undefined && typeof url !== 'string') throw new InvalidOptionsError('the store URL must be a string')
  // Check the shared options up front so every backend rejects bad ones the same way.
  resolveOptions(options)
  const target = parseStoreUrl(url ?? defaultStoreUrl)
  // The backends implement the untyped contract; the event map only narrows what callers see.
  switch (target.backend) {
    case 'memory':
      return new MemoryStore(options) as unknown as EventStore<E>
    case 'sqlite': {
      if (url === undefined) {
        const { mkdir } = await import('node:fs/promises')
        await mkdir('./data', { recursive: true })
      }
      const { openSqliteStore } = await import('./sqlite/index.ts')
      return (await openSqliteStore(target.path, options)) as unknown as EventStore<E>
    }
    case 'postgres': {
      const { openPostgresStore } = await import('./postgres/index.ts')
      return (await openPostgresStore(target.url, options)) as unknown as EventStore<E>
    }
  }
}

type StoreTarget =
  | { backend: 'memory' }
  /** `path` is absolute, or `:memory:`. */
  | { backend: 'sqlite'; path: string }
  | { backend: 'postgres'; url: string }

const MEMORY_HINT = "for a private in-memory SQLite database write 'sqlite::memory:', for the memory backend 'memory:'"

/** Which backend a store URL names, and where. Throws INVALID_OPTIONS with what to write instead. */
function parseStoreUrl(url: string): StoreTarget {
  const colon = url.indexOf(':')
  if (colon < 0) {
    throw new InvalidOptionsError(
      `a store URL starts with its scheme: memory:, sqlite:<path>, file:<path> or postgres://...` +
        (url.length > 0 ? ` (for a SQLite file, e.g. ${JSON.stringify(`sqlite:${relativeForm(url)}`)})` : ''),
    )
  }
  const scheme = url.slice(0, colon).toLowerCase()
  const rest = url.slice(colon + 1)
  switch (scheme) {
    case 'memory':
      if (rest.length > 0) throw new InvalidOptionsError(`'memory:' takes nothing after the colon; ${MEMORY_HINT}`)
      return { backend: 'memory' }
    case 'sqlite':
      return { backend: 'sqlite', path: sqlitePath(rest) }
    case 'file':
      return { backend: 'sqlite', path: filePath(rest) }
    case 'postgres':
    case 'postgresql':
      return { backend: 'postgres', url }
    default:
      // Only the scheme is named: the rest of a URL may hold a password.
      throw new InvalidOptionsError(
        `unknown store URL scheme ${JSON.stringify(scheme)}: use memory:, sqlite:<path>, file:<path> or postgres://`,
      )
  }
}

/** `sqlite:<path>`: the path as written, checked, then made absolute. */
function sqlitePath(rest: string): string {
  if (rest === ':memory:') return ':memory:'
  const example = "e.g. 'sqlite:./app.db' (relative to the working directory) or 'sqlite:/var/lib/app/events.db'"
  if (rest.length === 0) throw new InvalidOptionsError(`a sqlite URL needs a path, ${example}`)
  if (rest.startsWith('//')) {
    const written = rest.replace(/^\/+/, '')
    // The part after the slashes is only echoed when it cannot be credentials.
    const named = written.length > 0 && !written.includes('@')
    throw new InvalidOptionsError(
      "'sqlite://' is ambiguous (a host to some readers, a relative path to others, an absolute one to yet others): " +
        (named
          ? `write ${JSON.stringify(`sqlite:./${written}`)} for a path relative to the working directory ` +
            `or ${JSON.stringify(`sqlite:/${written}`)} for an absolute one`
          : example),
    )
  }
  if (/%[0-9a-f]{2}/i.test(rest)) {
    throw new InvalidOptionsError(
      "a sqlite: path is taken literally, so a percent escape in it is ambiguous: write the name as it is, " +
        "or a file: URL (e.g. 'file:///data/my%20app.db') when it needs escaping",
    )
  }
  checkPath(rest, 'sqlite')
  return resolve(rest)
}

/** `file:<path>`: RFC 8089 (empty or `localhost` host), or a relative path as Prisma writes it. */
function filePath(rest: string): string {
  let path = rest
  if (path.startsWith('//')) {
    const end = path.indexOf('/', 2)
    const host = path.slice(2, end < 0 ? path.length : end)
    if (host.length > 0 && host.toLowerCase() !== 'localhost') {
      throw new InvalidOptionsError(
        "a file: URL with a host names another machine, which a SQLite store cannot open: write 'file:///path/to/app.db' " +
          "(three slashes) for an absolute path, or 'file:./app.db' for one relative to the working directory",
      )
    }
    path = end < 0 ? '' : path.slice(end)
  }
  if (path.length === 0) {
    throw new InvalidOptionsError("a file: URL needs a path, e.g. 'file:///var/lib/app/events.db' or 'file:./app.db'")
  }
  if (path === ':memory:') throw new InvalidOptionsError(`a file: URL names a file; ${MEMORY_HINT}`)
  // Checked before decoding: an escaped '?' or '#' is a legitimate part of a file name.
  if (/[?#]/.test(path)) throw queryError('file')
  if (/%2f|%00/i.test(path)) {
    throw new InvalidOptionsError("a file: URL may not escape '/' or NUL in a path segment (%2F, %00)")
  }
  let decoded: string
  try {
    decoded = decodeURIComponent(path)
  } catch {
    throw new InvalidOptionsError("a file: URL holds a malformed percent escape: write '%25' for a literal '%'")
  }
  checkPath(decoded, 'file')
  return resolve(decoded)
}

/** The checks both forms share, on the path as the file system would see it. */
function checkPath(path: string, scheme: 'sqlite' | 'file'): void {
  if (path.includes('\0')) throw new InvalidOptionsError(`a ${scheme}: path may not contain NUL`)
  if (scheme === 'sqlite' && /[?#]/.test(path)) throw queryError('sqlite')
  if (path.startsWith('~')) {
    // Only `~/...` is this user's home; `~other/...` is someone else's, so no guess is offered.
    const own = path === '~' || path.startsWith('~/')
    const home = homedir().replace(/\/$/, '')
    throw new InvalidOptionsError(
      `'~' is not expanded in a store URL (it would create a directory named '~'): write the absolute path` +
        (own ? `, e.g. ${JSON.stringify(`${scheme}:${home}/${path.slice(2) || 'app.db'}`)}` : ''),
    )
  }
  if (path.startsWith('$')) {
    throw new InvalidOptionsError(
      'environment variables are not expanded in a store URL: expand them before calling openStore ' +
        "(e.g. `sqlite:${process.env.DATA_DIR}/app.db`)",
    )
  }
  if (path.endsWith('/')) {
    throw new InvalidOptionsError(`a ${scheme}: path names a directory; name the database file, e.g. '${scheme}:./data/app.db'`)
  }
  // sqlite:file:x.db, sqlite:postgres://... : a URL inside a URL would become a file named after it.
  if (!isAbsolute(path) && /^[a-z][a-z0-9+.-]*:/i.test(path)) {
    throw new InvalidOptionsError(
      `a ${scheme}: path may not start with another scheme: write that URL on its own ` +
        "(e.g. 'file:///var/lib/app/events.db'), or './' before a relative name that contains ':'",
    )
  }
}

function queryError(scheme: 'sqlite' | 'file'): InvalidOptionsError {
  return new InvalidOptionsError(
    `a ${scheme}: store URL takes no query string or fragment (SQLite URI parameters such as ?mode=ro are not supported): ` +
      "write the path alone" +
      (scheme === 'sqlite' ? "; a file name containing '?' or '#' goes in a file: URL as %3F or %23" : ''),
  )
}

/** A bare path as a relative or absolute sqlite: path, for the suggestion in an error. */
function relativeForm(path: string): string {
  return isAbsolute(path) || path.startsWith('.') ? path : `./${path}`
}
