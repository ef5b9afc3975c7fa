/**
 * Turns a DCB query into SQL over `events` and `event_tags`.
 *
 * A query is an OR of items. Each item becomes one or more "arms", each a range scan in position
 * order over one index that stops after `limit` rows:
 * - an item with tags walks `event_tags` on its first tag (primary key (tag, position)), checks the
 *   other tags and the types by primary-key lookups;
 * - an item with types only walks `events_type_position` once per type (one ordered range scan
 *   each, so no arm ever sorts or materialises more than `limit` positions).
 * The arms are unioned and the outer query takes the first `limit` positions overall. Every batch
 * therefore costs O(arms x limit) however large the log, which is what keyset pagination needs.
 *
 * The SQL text depends only on the query's shape (how many items, tags, types, and whether there
 * is an upper bound), never on its values, so compiled statements are reused.
 */
import type { Query, QueryItem } from '../types.ts'

/** The largest position SQLite can hold: the open upper bound of a forward read. */
export const MAX_POSITION = 9223372036854775807n

/** The event columns every read selects, in the order `EventRow` names them. */
const COLUMNS = 'position, type, tags, data, metadata, id, recorded_at'

/** One row of `events` as both drivers return it (integers as bigint). */
export interface EventRow {
  position: bigint
  type: string
  tags: string
  data: string
  metadata: string
  id: string
  recorded_at: bigint
}

/** SQL text and its positional parameters. */
export interface Statement {
  sql: string
  params: (string | bigint | number)[]
}

/**
 * The events matching `query` with lower < position < upper, in position order (descending when
 * `backwards`), at most `limit` of them.
 */
export function selectEvents(
  query: Query,
  lower: bigint,
  upper: bigint,
  limit: number,
  backwards: boolean,
): Statement {
  const order = backwards ? 'DESC' : 'ASC'
  if (query === 'all') {
    return {
      sql: `SELECT ${COLUMNS} FROM events WHERE position > ? AND position < ? ORDER BY position ${order} LIMIT ?`,
      params: [lower, upper, limit],
    }
  }
  const params: Statement['params'] = []
  const arms = unionOfArms(query, lower, upper, limit, order, params)
  params.push(limit)
  return {
    sql: `SELECT ${COLUMNS} FROM events WHERE position IN (${arms}) ORDER BY position ${order} LIMIT ?`,
    params,
  }
}

/**
 * One event as JSON text, byte for byte `recordJson` of its record (ts/store/core/event-json.ts):
 * tags, data and metadata are the JSON text the store wrote; json_quote escapes exactly as
 * JSON.stringify does for the strings a store accepts (quote, backslash, \b \t \n \f \r, other
 * control characters as lowercase \u00xx, everything else as it is; type and id hold no NUL and no
 * lone surrogate); datetime(..., 'subsec') is toISOString's text with a space for the T and no Z for
 * every millisecond of the years 1970 to 9999 (recorded_at is Date.now() of the commit).
 * One printf rather than a chain of `||`: each `||` makes a new string of everything so far, and
 * the page's SQL took 0.57 ms instead of 0.64 ms (1,000 events in SQLite's cache, minimum of 45;
 * development probe).
 */
const EVENT_JSON =
  `printf('{"position":"%d","type":%s,"tags":%s,"data":%s,"metadata":%s,"id":%s,"recordedAt":"%sZ"}',` +
  ` position, json_quote(type), tags, data, metadata, json_quote(id),` +
  ` replace(datetime(recorded_at / 1000.0, 'unixepoch', 'subsec'), ' ', 'T'))`

/** Room left at the end of a page body for its tail: `],"next":"`, a position of up to 19 digits, `"}`. */
export const PAGE_TAIL_ROOM = 31

/**
 * The events of `selectEvents` as one page body of JSON text, in one row: `body` (as a BLOB of
 * UTF-8 so the driver hands over bytes without decoding them; NULL when there is no event),
 * `count` (of events), and `last` (the position of the last event in page order).
 *
 * `body` is `{"events":[`, the events' JSON joined by commas, then PAGE_TAIL_ROOM spaces:
 * `finishPageBody` writes the tail (with or without `next`, which is known only after this
 * statement) into the room, in place, so the body is sent as SQLite built it. Joining head and
 * tail here costs SQLite two copies of the page (+0.02 ms); copying the page into a new buffer in
 * JavaScript cost about 0.1 ms of the server's 1.2 ms per page (development probes).
 *
 * Built in SQL because a page of row objects costs JavaScript more than the text costs SQLite:
 * 1,000-event pages of a 1M-event log, read, made into a body and encoded (`new Response(..)
 * .arrayBuffer()`), took 1.08-1.22 ms of CPU per page this way against 1.50-1.54 ms for rows
 * made into text by recordJson (one process, alternating rounds, medians, a loaded 2-core machine);
 * and a page is two buffers for the collector instead of thousands of objects.
 * group_concat takes its rows in the order the subquery yields them (a co-routine that SQLite runs
 * to feed the aggregate); an ORDER BY inside group_concat would sort them again (+0.3 ms a page).
 */
export function selectPageBody(
  query: Query,
  lower: bigint,
  upper: bigint,
  limit: number,
  backwards: boolean,
): Statement {
  const events = selectEvents(query, lower, upper, limit, backwards)
  return {
    sql: `SELECT CAST('{"events":[' || group_concat(${EVENT_JSON}, ',') || '${' '.repeat(PAGE_TAIL_ROOM)}' AS BLOB) AS body,` +
      ` count(*) AS count, ${backwards ? 'min' : 'max'}(position) AS last FROM (${events.sql})`,
    params: events.params,
  }
}

/**
 * A body of `selectPageBody` made into the page `{"events":[...]}` or `{"events":[...],"next":"N"}`
 * in place: the tail goes into the room, and the result is a view of the same bytes, as long as
 * the page.
 */
export function finishPageBody(body: Uint8Array<ArrayBuffer>, next: bigint | undefined): Uint8Array<ArrayBuffer> {
  const at = body.length - PAGE_TAIL_ROOM
  const tail = next === undefined ? ']}' : `],"next":"${next}"}`
  for (let i = 0; i < tail.length; i++) body[at + i] = tail.charCodeAt(i)
  return body.subarray(0, at + tail.length)
}

/**
 * The position of the first event matching `query` after `after` (exclusive), as column `p`
 * (NULL, or no row at all, when there is none): the check behind an append condition.
 *
 * A query of one arm (the usual condition: one item) runs that arm alone. Wrapped in
 * `min()` over a subquery it cost 7.4 µs per check instead of 3.2 µs with the same index search
 * (200,000 tag rows, nothing after `after`), and a batch of 16 conditional appends runs 16 checks.
 */
export function firstMatch(query: Query, after: bigint): Statement {
  if (query === 'all') {
    return { sql: 'SELECT min(position) AS p FROM events WHERE position > ?', params: [after] }
  }
  const params: Statement['params'] = []
  const arms = armsOf(query, after, MAX_POSITION, 1, 'ASC', params)
  if (arms.length === 1) return { sql: arms[0]!, params }
  return { sql: `SELECT min(position) AS p FROM (${union(arms)})`, params }
}

/** The arms as one compound SELECT (each arm has its own ORDER BY and LIMIT, hence the wrapping). */
function union(arms: readonly string[]): string {
  return arms.map((arm) => `SELECT position FROM (${arm})`).join(' UNION ALL ')
}

function unionOfArms(
  query: readonly QueryItem[],
  lower: bigint,
  upper: bigint,
  limit: number,
  order: 'ASC' | 'DESC',
  params: Statement['params'],
): string {
  return union(armsOf(query, lower, upper, limit, order, params))
}

/** One SELECT per arm, each yielding its positions as both `position` and `p`. */
function armsOf(
  query: readonly QueryItem[],
  lower: bigint,
  upper: bigint,
  limit: number,
  order: 'ASC' | 'DESC',
  params: Statement['params'],
): string[] {
  const arms: string[] = []
  for (const item of query) {
    const tags = distinct(item.tags)
    const types = distinct(item.types)
    if (tags.length > 0) {
      arms.push(tagArm(tags, types, lower, upper, limit, order, params))
    } else {
      for (const type of types) {
        params.push(type, lower)
        arms.push(
          `SELECT position, position AS p FROM events WHERE type = ? AND position > ?${upperBound('position', upper, params)}` +
            ` ORDER BY position ${order} LIMIT ?`,
        )
        params.push(limit)
      }
    }
  }
  return arms
}

function tagArm(
  tags: readonly string[],
  types: readonly string[],
  lower: bigint,
  upper: bigint,
  limit: number,
  order: 'ASC' | 'DESC',
  params: Statement['params'],
): string {
  params.push(tags[0]!, lower)
  let sql = 'SELECT t0.position AS position, t0.position AS p FROM event_tags t0 WHERE t0.tag = ? AND t0.position > ?' +
    upperBound('t0.position', upper, params)
  for (let i = 1; i < tags.length; i++) {
    sql += ' AND EXISTS (SELECT 1 FROM event_tags tk WHERE tk.tag = ? AND tk.position = t0.position)'
    params.push(tags[i]!)
  }
  if (types.length > 0) {
    sql += ` AND EXISTS (SELECT 1 FROM events x WHERE x.position = t0.position AND x.type IN (${types.map(() => '?').join(', ')}))`
    params.push(...types)
  }
  sql += ` ORDER BY t0.position ${order} LIMIT ?`
  params.push(limit)
  return sql
}

/** `AND <column> < ?` with its parameter, or nothing for the open bound (one comparison less per row). */
function upperBound(column: string, upper: bigint, params: Statement['params']): string {
  if (upper >= MAX_POSITION) return ''
  params.push(upper)
  return ` AND ${column} < ?`
}

/** The values without repeats, in first-seen order; most lists hold one value. */
function distinct(values: readonly string[] | undefined): readonly string[] {
  if (values === undefined) return []
  if (values.length < 2) return values
  return [...new Set(values)]
}
