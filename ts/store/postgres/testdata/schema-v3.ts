/**
 * The PostgreSQL schema as released at version 3 (the batch function returned one row per append),
 * kept verbatim below this comment (its imports adjusted to this folder) so the upgrade test can
 * build a database of that layout.
 */
/**
 * The PostgreSQL schema of the event store, as numbered migrations applied by `migrate`.
 *
 * Tags: a tag table (`event_tags(tag, position)`, primary key on both) beside `events.tags text[]`,
 * chosen by measurement on 100,000 events (2 tags each, written in group commits of 16; local
 * PostgreSQL 15, 2 cores):
 *
 *   |                                   | text[] + GIN  | tag table |
 *   |-----------------------------------|---------------|-----------|
 *   | writing 100k events               | 1.80 s        | 2.39 s    |
 *   | one condition check (hit or miss) | 16.3 ms       | 0.018 ms  |
 *   | size on disk                      | 37 MB         | 50 MB     |
 *
 * With GIN the planner prefers walking the primary key (`position > after`, ordered, LIMIT 1) and
 * filtering on `tags @>`: a boundary with no events yet (a username nobody took) scans the whole
 * log. The tag table answers "first event with this tag after N" from one B-tree range, and every
 * condition check runs under the global append lock, so its cost bounds write throughput.
 *
 * The head is `max(position)` read under the lock (a backward step on the primary key, about 20 µs)
 * rather than a counter row: a counter would add an UPDATE, a dead tuple and its WAL to every batch.
 *
 * Where a batch's time goes, and the ceiling it sets (2-core machine, local PostgreSQL 15,
 * 2026-11-29): the function called directly and serially with batches of 16 single-event appends
 * (`bench/measure-postgres-appends.ts`, arrays sent as the store sends them) takes 0.48-0.52 ms a batch with
 * synchronous_commit on and 0.31-0.33 ms with it off, so the commit's WAL flush is ~0.18 ms of it
 * (pgbench, one single-event append a call: 0.22-0.28 ms, 0.08 ms with the flush off). The append
 * lock is held through that flush (a commit becomes visible only once its WAL is durable, and
 * positions must become visible in order), so batches cannot overlap: with 16 callers each
 * awaiting its own append (batches of at most 16), one connection doing nothing but these calls
 * reaches 31,000-33,000 appends/s here, and the store measured 32,000-35,000/s in the same runs.
 * Releasing the lock before the flush (asynchronous commit, then waiting for the flush) would let
 * readers see events that a server crash then takes back, so it is not done.
 *
 * Every table and the batch function live in a schema of their own (`ringstate` unless the `schema`
 * option says otherwise), and every statement names them qualified and quoted, so the store needs no
 * search_path and shares a database with an application's own tables.
 *
 * Data and metadata are `json`, not `jsonb`: `json` keeps exactly the text the caller's value
 * serialised to (key order, `\u0000` in strings, which `jsonb` rejects), and costs nothing to
 * convert on write; the store never queries inside payloads.
 */
import type { Sql } from 'postgres'
import { InvalidOptionsError, StorageError } from '../../../errors.ts'
import { isStorableText } from '../../validate.ts'

/** Key of the transaction-scoped advisory lock every append batch holds until it commits ("ringstat"). */
export const APPEND_LOCK_KEY = 8244241983476097396n
/** Key of the lock that serialises concurrent migrations ("ringmigr"). */
export const MIGRATE_LOCK_KEY = 8244241983374714738n
/** The schema the store's tables live in unless the `schema` option names another. */
export const DEFAULT_SCHEMA = 'ringstate'
/** NOTIFY channel of the default schema, carrying the new head after each commit that wrote events. */
export const NOTIFY_CHANNEL = 'ringstate_events'
/** Longest schema name accepted, in UTF-8 bytes (so the NOTIFY channel stays within PostgreSQL's 63). */
const MAX_SCHEMA_BYTES = 40

/** Status codes returned by `ringstate_append_batch`, one per append. */
export const AppendStatus = { WRITTEN: 0, DUPLICATE: 1, CONFLICT: 2, PARTIAL_DUPLICATE: 3 } as const

/**
 * Check the `schema` option: 1..40 UTF-8 bytes, no NUL, no lone surrogate, no `$` (the batch
 * function's body is dollar-quoted). Any other character is fine: the name is always quoted.
 *
 * @throws InvalidOptionsError (INVALID_OPTIONS)
 */
export function validateSchemaName(schema: unknown): asserts schema is string {
  if (
    typeof schema !== 'string' || schema.length === 0 || new TextEncoder().encode(schema).length > MAX_SCHEMA_BYTES ||
    !isStorableText(schema) || schema.includes('$')
  ) {
    throw new InvalidOptionsError(`store option schema must be a name of 1..${MAX_SCHEMA_BYTES} bytes without NUL or $`)
  }
}

/** A name as a quoted SQL identifier: `"name"`, inner quotes doubled. */
export function quoteIdentifier(name: string): string {
  return `"${name.replaceAll('"', '""')}"`
}

/** A string as an SQL literal: `'text'`, inner quotes doubled (standard_conforming_strings is on). */
function quoteLiteral(text: string): string {
  return `'${text.replaceAll("'", "''")}'`
}

/** The NOTIFY channel of a schema's store: stores in different schemas of one database do not wake each other. */
export function notifyChannel(schema: string): string {
  return schema === DEFAULT_SCHEMA ? NOTIFY_CHANNEL : `${NOTIFY_CHANNEL}.${schema}`
}

/** The argument types of the batch function of schema versions 1 and 2, to drop it by signature. */
const OLD_BATCH_SIGNATURE =
  'int[], boolean[], int[], text[], int[], int[], text[], text[], text[], text[], int[], bigint[], int[], int[], text[], ' +
  'int[], int[], text[], int[], bigint[], text[], int[], bigint[], int[], text[], text[], text[]'

/**
 * One append batch, evaluated and written under the append lock in a single call (one round trip).
 *
 * The caller (the store's writer) guarantees that no append's condition can match events of an
 * earlier append of the same batch and that no id is shared by two appends of a batch: it ends the
 * batch before such an append. So every append is judged against the committed log alone, set-wise:
 *   1. lock; head = max(position) (gapless: positions are only taken under this lock);
 *   2. idempotency for appends whose ids must be checked (all stored: DUPLICATE; some: PARTIAL);
 *   3. the first conflicting position of each condition item, one statement per item kind that
 *      occurs: items with tags walk event_tags on their first tag (and check the rest of the item
 *      in events by primary key only when it has more tags or types); type-only items (one row per
 *      type) walk events (type, position); 'all' items take the first position after `after`.
 *      The type walk is written as a row range, `(type, position) > (t, after) AND type <= t`
 *      (the same rows as `type = t AND position > after`: text collations here are deterministic),
 *      because with `type = t` the planner, not knowing t and seeing one dominant type, walks the
 *      primary key and filters on type: a type with no events after `after` then scans the rest
 *      of the log under the append lock (measured: 54 ms instead of 0.08 ms at 300,000 events);
 *   4. positions for survivors in batch order; insert events, tags and commands; NOTIFY.
 * Events are flattened across the batch (their ordinal in the batch, plus a per-append shift, is
 * their position); per-event tags and per-item tags and types are slices of flat arrays.
 * Each statement is cached by plpgsql after its first call in a session, and every one costs what
 * the batch holds: no scan depends on the size of the log.
 */
function appendBatchFunction(schema: string): string {
  const s = quoteIdentifier(schema)
  return `
CREATE OR REPLACE FUNCTION ${s}.ringstate_append_batch(
  p_counts int[], p_check_ids boolean[],
  p_ev_append int[], p_types text[], p_tag_from int[], p_tag_to int[], p_tags text[],
  p_data text[], p_metadata text[], p_ids text[],
  p_tc_append int[], p_tc_after bigint[], p_tc_tag_from int[], p_tc_tag_to int[], p_tc_tags text[],
  p_tc_type_from int[], p_tc_type_to int[], p_tc_types text[],
  p_yc_append int[], p_yc_after bigint[], p_yc_types text[],
  p_ac_append int[], p_ac_after bigint[],
  p_cmd_append int[], p_cmd_types text[], p_cmd_data text[], p_cmd_metadata text[],
  p_cp_append int[], p_cp_names text[], p_cp_positions bigint[]
) RETURNS TABLE (status int, pos bigint, detail text, recorded_at timestamptz)
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
AS $fn$
#variable_conflict use_column
DECLARE
  n int := cardinality(p_counts);
  v_head bigint;
  v_found int[] := array_fill(0, ARRAY[n]);
  v_found_max bigint[] := array_fill(NULL::bigint, ARRAY[n]);
  v_found_id text[] := array_fill(NULL::text, ARRAY[n]);
  v_conflict bigint[] := array_fill(NULL::bigint, ARRAY[n]);
  v_shift bigint[] := array_fill(NULL::bigint, ARRAY[n]);
  v_status int[] := array_fill(0, ARRAY[n]);
  v_pos bigint[] := array_fill(NULL::bigint, ARRAY[n]);
  v_next bigint;
  v_seen bigint := 0;
  r record;
BEGIN
  PERFORM pg_advisory_xact_lock(${APPEND_LOCK_KEY});
  SELECT coalesce(max(e.position), 0) INTO v_head FROM ${s}.events e;

  IF true = ANY(p_check_ids) THEN
    FOR r IN
      SELECT u.a, count(*)::int AS found, max(e.position) AS top, min(e.id) AS some_id
      FROM unnest(p_ids, p_ev_append) AS u(id, a) JOIN ${s}.events e ON e.id = u.id
      WHERE p_check_ids[u.a]
      GROUP BY u.a
    LOOP
      v_found[r.a] := r.found; v_found_max[r.a] := r.top; v_found_id[r.a] := r.some_id;
    END LOOP;
  END IF;

  IF cardinality(p_tc_append) > 0 THEN
    FOR r IN
      SELECT u.a, h.p
      FROM unnest(p_tc_append, p_tc_after, p_tc_tag_from, p_tc_tag_to, p_tc_type_from, p_tc_type_to)
        AS u(a, after, tgf, tgt, tyf, tyt)
      CROSS JOIN LATERAL (
        SELECT t.position AS p FROM ${s}.event_tags t
        WHERE t.tag = p_tc_tags[u.tgf] AND t.position > u.after
          AND ((u.tgt = u.tgf AND u.tyt < u.tyf) OR EXISTS (
            SELECT FROM ${s}.events x WHERE x.position = t.position AND x.tags @> p_tc_tags[u.tgf:u.tgt]
              AND (u.tyt < u.tyf OR x.type = ANY(p_tc_types[u.tyf:u.tyt]))))
        ORDER BY t.position LIMIT 1
      ) h
    LOOP
      v_conflict[r.a] := least(v_conflict[r.a], r.p);
    END LOOP;
  END IF;

  IF cardinality(p_yc_append) > 0 THEN
    FOR r IN
      SELECT u.a, h.p
      FROM unnest(p_yc_append, p_yc_after, p_yc_types) AS u(a, after, type)
      CROSS JOIN LATERAL (
        SELECT x.position AS p FROM ${s}.events x
        WHERE (x.type, x.position) > (u.type, u.after) AND x.type <= u.type
        ORDER BY x.type, x.position LIMIT 1
      ) h
    LOOP
      v_conflict[r.a] := least(v_conflict[r.a], r.p);
    END LOOP;
  END IF;

  IF cardinality(p_ac_append) > 0 THEN
    FOR r IN
      SELECT u.a, h.p
      FROM unnest(p_ac_append, p_ac_after) AS u(a, after)
      CROSS JOIN LATERAL (SELECT x.position AS p FROM ${s}.events x WHERE x.position > u.after ORDER BY x.position LIMIT 1) h
    LOOP
      v_conflict[r.a] := least(v_conflict[r.a], r.p);
    END LOOP;
  END IF;

  v_next := v_head + 1;
  FOR a IN 1..n LOOP
    IF v_found[a] > 0 AND v_found[a] = p_counts[a] THEN
      v_status[a] := ${AppendStatus.DUPLICATE}; v_pos[a] := v_found_max[a];
    ELSIF v_found[a] > 0 THEN
      v_status[a] := ${AppendStatus.PARTIAL_DUPLICATE};
    ELSIF v_conflict[a] IS NOT NULL THEN
      v_status[a] := ${AppendStatus.CONFLICT}; v_pos[a] := v_conflict[a];
    ELSE
      v_status[a] := ${AppendStatus.WRITTEN}; v_shift[a] := v_next - v_seen - 1;
      v_next := v_next + p_counts[a]; v_pos[a] := v_next - 1;
    END IF;
    v_seen := v_seen + p_counts[a];
  END LOOP;

  IF v_next > v_head + 1 THEN
    WITH written AS (
      INSERT INTO ${s}.events AS ev (position, type, tags, data, metadata, id, recorded_at)
      SELECT v_shift[u.a] + u.k, u.type, p_tags[u.tf:u.tt], u.data::json, u.metadata::json, u.id, now()
      FROM unnest(p_ev_append, p_types, p_tag_from, p_tag_to, p_data, p_metadata, p_ids)
        WITH ORDINALITY AS u(a, type, tf, tt, data, metadata, id, k)
      WHERE v_shift[u.a] IS NOT NULL
      RETURNING ev.position, ev.tags
    )
    INSERT INTO ${s}.event_tags (tag, position) SELECT unnest(w.tags), w.position FROM written w;

    IF cardinality(p_cmd_append) > 0 THEN
      INSERT INTO ${s}.commands (type, data, metadata, position, recorded_at)
      SELECT c.type, c.data::json, c.metadata::json, v_pos[c.a], now()
      FROM unnest(p_cmd_append, p_cmd_types, p_cmd_data, p_cmd_metadata) AS c(a, type, data, metadata)
      WHERE v_shift[c.a] IS NOT NULL;
    END IF;

    -- The last written append of the batch sets a name that several of them carry.
    IF cardinality(p_cp_append) > 0 THEN
      INSERT INTO ${s}.checkpoints AS cp (name, position, updated_at)
      SELECT DISTINCT ON (c.name) c.name, c.position, now()
      FROM unnest(p_cp_append, p_cp_names, p_cp_positions) AS c(a, name, position)
      WHERE v_shift[c.a] IS NOT NULL
      ORDER BY c.name, c.a DESC
      ON CONFLICT (name) DO UPDATE SET position = EXCLUDED.position, updated_at = EXCLUDED.updated_at;
    END IF;

    PERFORM pg_notify(${quoteLiteral(notifyChannel(schema))}, (v_next - 1)::text);
  END IF;

  RETURN QUERY SELECT v_status[a], v_pos[a], v_found_id[a], now() FROM generate_series(1, n) AS a;
END
$fn$`
}

/**
 * Migrations in order, for the tables of one schema; the schema's version is the number applied.
 * Never change what a released one leaves behind: add one.
 */
function migrations(schema: string): readonly string[][] {
  const s = quoteIdentifier(schema)
  return [
    // 1: the log, its tag table, the commands audit table, snapshots.
    [
      `CREATE TABLE ${s}.events (
        position bigint PRIMARY KEY,
        type text NOT NULL,
        tags text[] NOT NULL,
        data json NOT NULL,
        metadata json NOT NULL,
        id text NOT NULL UNIQUE,
        recorded_at timestamptz NOT NULL
      )`,
      `CREATE INDEX events_type_position ON ${s}.events (type, position)`,
      `CREATE TABLE ${s}.event_tags (
        tag text NOT NULL,
        position bigint NOT NULL,
        PRIMARY KEY (tag, position)
      )`,
      `CREATE TABLE ${s}.commands (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        type text NOT NULL,
        data json NOT NULL,
        metadata json NOT NULL,
        position bigint NOT NULL,
        recorded_at timestamptz NOT NULL
      )`,
      `CREATE TABLE ${s}.snapshots (
        name text NOT NULL,
        position bigint NOT NULL,
        data bytea NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (name, position)
      )`,
    ],
    // 2: generic plans inside the batch function. Under the default plan_cache_mode (auto) plpgsql
    // kept choosing a custom plan for the function's statements, so every call planned its insert,
    // its condition walks and its result query again (EXPLAIN: 0.6 ms to plan one tag walk). Every
    // statement is written for a generic plan (row ranges, see above; the plans test checks the walks
    // under it). Measured with pgbench, one single-event append per call, alternating modes:
    // 0.263-0.302 ms -> 0.214-0.253 ms unconditional, 0.411-0.428 ms -> 0.268-0.297 ms with one tag
    // condition; through the store, 1 client: 2,664 -> 3,270 appends/s (conditional 2,178 -> 3,078),
    // 16 clients: 30,756 -> 31,523 (conditional 26,718 -> 29,031).
    // Version 1 and 2 created the function in `public`; version 3 creates it here, with this setting
    // in its definition, so a new schema has nothing to do at this step.
    [],
    // 3: the store in its own schema: checkpoints, and the batch function with every table qualified
    // (no search_path dependence) and the checkpoint upsert; the function of versions 1-2 is dropped.
    [
      `CREATE TABLE ${s}.checkpoints (
        name text PRIMARY KEY,
        position bigint NOT NULL,
        updated_at timestamptz NOT NULL
      )`,
      `DROP FUNCTION IF EXISTS ${s}.ringstate_append_batch(${OLD_BATCH_SIGNATURE})`,
      appendBatchFunction(schema),
    ],
  ]
}

/** The schema version this code expects. */
export const SCHEMA_VERSION = migrations(DEFAULT_SCHEMA).length

/** The tables of versions 1 and 2, which lived in `public`. */
const LEGACY_TABLES = ['events', 'event_tags', 'commands', 'snapshots', 'ringstate_schema_version'] as const

/**
 * Create or upgrade the event store's tables in `schema` (default `ringstate`) of the database `sql`
 * points at. Idempotent, and safe when several processes migrate at once: everything happens in one
 * transaction that first takes an advisory lock, so a second migrator waits and then finds the work
 * done. A database of the earlier layout (tables in `public`, schema version 1 or 2) is moved into
 * `schema` in place (ALTER TABLE ... SET SCHEMA keeps rows, indexes and the identity sequence) and
 * upgraded; the old batch function is dropped.
 *
 * @returns the schema version now in place
 * @throws StorageError when the schema was written by a newer ringstate
 * @example
 * ```ts
 * import postgres from 'postgres'
 * const sql = postgres(process.env.DATABASE_URL!)
 * await migrate(sql)
 * await sql.end()
 * ```
 */
export async function migrate(sql: Sql<any>, schema: string = DEFAULT_SCHEMA): Promise<number> {
  validateSchemaName(schema)
  const s = quoteIdentifier(schema)
  const steps = migrations(schema)
  return await sql.begin(async (tx) => {
    await tx`SELECT pg_advisory_xact_lock(${MIGRATE_LOCK_KEY.toString()}::bigint)`
    const [found] = await tx`SELECT to_regclass(${`${s}.ringstate_schema_version`}) IS NOT NULL AS here,
      to_regclass('public.ringstate_schema_version') IS NOT NULL AND to_regclass('public.events') IS NOT NULL AS legacy`
    await tx.unsafe(`CREATE SCHEMA IF NOT EXISTS ${s}`)
    if (!found!.here && found!.legacy && schema !== 'public') {
      for (const table of LEGACY_TABLES) await tx.unsafe(`ALTER TABLE public.${table} SET SCHEMA ${s}`)
      await tx.unsafe(`DROP FUNCTION IF EXISTS public.ringstate_append_batch(${OLD_BATCH_SIGNATURE})`)
    }
    await tx.unsafe(`CREATE TABLE IF NOT EXISTS ${s}.ringstate_schema_version (
      version int PRIMARY KEY,
      applied_at timestamptz NOT NULL DEFAULT now()
    )`)
    const [row] = await tx.unsafe(`SELECT coalesce(max(version), 0)::int AS version FROM ${s}.ringstate_schema_version`)
    const current = row!.version as number
    if (current > steps.length) {
      throw new StorageError(`the database has schema version ${current}, newer than this ringstate supports (${steps.length})`)
    }
    for (let version = current + 1; version <= steps.length; version++) {
      for (const statement of steps[version - 1]!) await tx.unsafe(statement)
      await tx.unsafe(`INSERT INTO ${s}.ringstate_schema_version (version) VALUES ($1)`, [version])
    }
    return Math.max(current, steps.length)
  })
}
