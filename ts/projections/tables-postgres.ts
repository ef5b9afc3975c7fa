/**
 * The runner's tables on PostgreSQL, in the store's schema. Each call runs in a transaction of the
 * store (`storeTransaction`); the lease clock is the server's `clock_timestamp()`. The migration
 * takes a transaction-scoped advisory lock, so runners starting together do not race on CREATE.
 */
import type { TransactionSql } from 'postgres'
import { quoteIdentifier } from '../store/postgres/schema.ts'
import type { StoreTransaction } from '../store/types.ts'
import {
  deadLetterOf,
  leaseOf,
  ownedLeaseOf,
  partitionsChanged,
  type Row,
  type RunInTransaction,
  type ShardTables,
} from './tables.ts'



/** Numbered migrations (`%s` is the quoted schema); never edit a released one. */
const MIGRATIONS = [
  `CREATE TABLE IF NOT EXISTS %s.ringstate_projection_shards (
     name text NOT NULL, version int NOT NULL, partition int NOT NULL,
     position bigint NOT NULL DEFAULT 0, caught_up boolean NOT NULL DEFAULT false,
     owner text, epoch bigint NOT NULL DEFAULT 0, lease_expires timestamptz NOT NULL DEFAULT '-infinity',
     PRIMARY KEY (name, version, partition));
   CREATE TABLE IF NOT EXISTS %s.ringstate_projection_active (name text PRIMARY KEY, version int NOT NULL);
   CREATE TABLE IF NOT EXISTS %s.ringstate_projection_dead_letters (
     name text NOT NULL, version int NOT NULL, partition int NOT NULL, position bigint NOT NULL,
     event_id text NOT NULL, type text NOT NULL, error text NOT NULL, recorded_at timestamptz NOT NULL DEFAULT clock_timestamp(),
     PRIMARY KEY (name, version, position));
   CREATE TABLE IF NOT EXISTS %s.ringstate_projection_runners (
     name text NOT NULL, instance_id text NOT NULL, expires timestamptz NOT NULL,
     PRIMARY KEY (name, instance_id));`,
]

function txOf(tx: StoreTransaction): { sql: TransactionSql; schema: string } {
  if (tx.backend !== 'postgres') throw new Error(`expected a postgres transaction, got ${tx.backend}`)
  return { sql: tx.sql as TransactionSql, schema: quoteIdentifier(tx.schema) }
}

/** The tables on PostgreSQL; `run` is the store's transaction hook. */
export function postgresTables(run: RunInTransaction): ShardTables {
  /** Runs one statement (`%s` = schema) with parameters, prepared. */
  const exec = (tx: StoreTransaction, text: string, params: unknown[]) => {
    const { sql, schema } = txOf(tx)
    return sql.unsafe(text.replaceAll('%s', schema), params as never[], { prepare: true }) as unknown as Promise<Row[]>
  }
  const once = (text: string, params: unknown[]) => run((tx) => exec(tx, text, params))
  const keysParams = (keys: readonly { name: string; version: number; partition: number }[]) => [
    keys.map((k) => k.name),
    keys.map((k) => k.version),
    keys.map((k) => k.partition),
  ]
  return {
    backend: 'postgres',
    async migrate() {
      await run(async (tx) => {
        const { sql, schema } = txOf(tx)
        await sql`SELECT pg_advisory_xact_lock(hashtext('ringstate.projections.migrate'))`
        await sql.unsafe(`CREATE TABLE IF NOT EXISTS ${schema}.ringstate_projections_schema (version int PRIMARY KEY)`)
        const [row] = await sql.unsafe(`SELECT coalesce(max(version), 0)::int AS v FROM ${schema}.ringstate_projections_schema`)
        for (let v = Number(row!.v); v < MIGRATIONS.length; v++) {
          await sql.unsafe(MIGRATIONS[v]!.replaceAll('%s', schema))
          await sql.unsafe(`INSERT INTO ${schema}.ringstate_projections_schema (version) VALUES ($1)`, [v + 1])
        }
      })
    },
    async ensure(name, version, partitions) {
      await run(async (tx) => {
        const [wider] = await exec(tx, `SELECT count(*)::int AS n FROM %s.ringstate_projection_shards WHERE name = $1 AND version = $2 AND partition >= $3`, [name, version, partitions])
        if (Number(wider!.n) > 0) throw partitionsChanged(name, version)
        await exec(
          tx,
          `INSERT INTO %s.ringstate_projection_shards (name, version, partition)
           SELECT $1, $2, p FROM generate_series(0, $3::int - 1) AS p ON CONFLICT DO NOTHING`,
          [name, version, partitions],
        )
      })
    },
    async active() {
      const rows = await once('SELECT name, version FROM %s.ringstate_projection_active', [])
      return new Map(rows.map((r) => [r.name as string, Number(r.version)]))
    },
    async acquire(keys, owner, leaseMs) {
      if (keys.length === 0) return []
      const rows = await once(
        `UPDATE %s.ringstate_projection_shards AS s
         SET owner = $1, epoch = s.epoch + 1, lease_expires = clock_timestamp() + $2::int * interval '1 millisecond'
         FROM unnest($3::text[], $4::int[], $5::int[]) AS k(name, version, partition)
         WHERE s.name = k.name AND s.version = k.version AND s.partition = k.partition
           AND (s.owner IS NULL OR s.owner = $1 OR s.lease_expires <= clock_timestamp())
         RETURNING s.name, s.version, s.partition, s.epoch, s.position, s.caught_up`,
        [owner, leaseMs, ...keysParams(keys)],
      )
      return rows.map(leaseOf)
    },
    async renew(leases, owner, leaseMs) {
      if (leases.length === 0) return []
      const rows = await once(
        `UPDATE %s.ringstate_projection_shards AS s
         SET lease_expires = clock_timestamp() + $2::int * interval '1 millisecond'
         FROM unnest($3::text[], $4::int[], $5::int[], $6::bigint[]) AS k(name, version, partition, epoch)
         WHERE s.name = k.name AND s.version = k.version AND s.partition = k.partition
           AND s.owner = $1 AND s.epoch = k.epoch AND s.lease_expires > clock_timestamp()
         RETURNING s.name, s.version, s.partition`,
        [owner, leaseMs, ...keysParams(leases), leases.map((l) => l.epoch.toString())],
      )
      const kept = new Set(rows.map((r) => `${r.name}\u0000${r.version}\u0000${r.partition}`))
      return leases.filter((l) => kept.has(`${l.name}\u0000${l.version}\u0000${l.partition}`))
    },
    async release(leases, owner) {
      if (leases.length === 0) return
      await once(
        `UPDATE %s.ringstate_projection_shards AS s SET owner = NULL, lease_expires = '-infinity'
         FROM unnest($2::text[], $3::int[], $4::int[], $5::bigint[]) AS k(name, version, partition, epoch)
         WHERE s.name = k.name AND s.version = k.version AND s.partition = k.partition AND s.owner = $1 AND s.epoch = k.epoch`,
        [owner, ...keysParams(leases), leases.map((l) => l.epoch.toString())],
      )
    },
    async heartbeat(names, owner, leaseMs) {
      return run(async (tx) => {
        await exec(tx, 'DELETE FROM %s.ringstate_projection_runners WHERE expires <= clock_timestamp()', [])
        await exec(
          tx,
          `INSERT INTO %s.ringstate_projection_runners (name, instance_id, expires)
           SELECT n, $2, clock_timestamp() + $3::int * interval '1 millisecond' FROM unnest($1::text[]) AS n
           ON CONFLICT (name, instance_id) DO UPDATE SET expires = excluded.expires`,
          [names as string[], owner, leaseMs],
        )
        const rows = await exec(
          tx,
          'SELECT name, count(*)::int AS n FROM %s.ringstate_projection_runners WHERE name = ANY($1::text[]) GROUP BY name',
          [names as string[]],
        )
        return new Map(rows.map((r) => [r.name as string, Number(r.n)]))
      })
    },
    async leave(owner) {
      await once('DELETE FROM %s.ringstate_projection_runners WHERE instance_id = $1', [owner])
    },
    async rows(names) {
      if (names.length === 0) return []
      const rows = await once(
        `SELECT name, version, partition, position, caught_up, owner, epoch,
                (owner IS NULL OR lease_expires <= clock_timestamp()) AS free
         FROM %s.ringstate_projection_shards WHERE name = ANY($1::text[])`,
        [names as string[]],
      )
      return rows.map(ownedLeaseOf)
    },
    async deadLetters(name) {
      const rows = await once('SELECT * FROM %s.ringstate_projection_dead_letters WHERE name = $1 ORDER BY version, position', [name])
      return rows.map(deadLetterOf)
    },
    async commit(tx, lease, owner, through, caughtUp, leaseMs) {
      const rows = await exec(
        tx,
        `UPDATE %s.ringstate_projection_shards
         SET position = greatest(position, $1::bigint), caught_up = caught_up OR $2::boolean,
             lease_expires = clock_timestamp() + $3::int * interval '1 millisecond'
         WHERE name = $4 AND version = $5 AND partition = $6 AND owner = $7 AND epoch = $8::bigint
           AND lease_expires > clock_timestamp()
         RETURNING 1`,
        [through.toString(), caughtUp, leaseMs, lease.name, lease.version, lease.partition, owner, lease.epoch.toString()],
      )
      return rows.length === 1
    },
    async deadLetter(tx, key, event, error) {
      await exec(
        tx,
        `INSERT INTO %s.ringstate_projection_dead_letters (name, version, partition, position, event_id, type, error)
         VALUES ($1, $2, $3, $4::bigint, $5, $6, $7) ON CONFLICT DO NOTHING`,
        [key.name, key.version, key.partition, event.position.toString(), event.id, event.type, error],
      )
    },
    async activate(tx, name, version, partitions) {
      const rows = await exec(
        tx,
        `INSERT INTO %s.ringstate_projection_active (name, version)
         SELECT $1, $2 WHERE (SELECT count(*) FROM %s.ringstate_projection_shards
                              WHERE name = $1 AND version = $2 AND caught_up) >= $3
         ON CONFLICT (name) DO UPDATE SET version = excluded.version
           WHERE %s.ringstate_projection_active.version < excluded.version
         RETURNING version`,
        [name, version, partitions],
      )
      return rows.length === 1
    },
    async rewind(tx, name, version, owner, leaseMs) {
      const rows = await exec(
        tx,
        `UPDATE %s.ringstate_projection_shards
         SET position = 0, caught_up = false, owner = $1, epoch = epoch + 1,
             lease_expires = clock_timestamp() + $2::int * interval '1 millisecond'
         WHERE name = $3 AND version = $4
         RETURNING name, version, partition, epoch, position, caught_up`,
        [owner, leaseMs, name, version],
      )
      return rows.map(leaseOf).sort((a, b) => a.partition - b.partition)
    },
  }
}
