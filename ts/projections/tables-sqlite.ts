/**
 * The runner's tables on SQLite, in the store's own file. Every statement runs on the store's
 * writer connection inside its write transaction (`storeTransaction`), synchronously, so a lease
 * change is serialised with appends and with other processes on the file (BEGIN IMMEDIATE).
 */
import type { SqliteDatabase as Database } from '../store/sqlite/driver.ts'
import type { StoreTransaction } from '../store/types.ts'
import {
  deadLetterOf,
  leaseOf,
  type Lease,
  ownedLeaseOf,
  partitionsChanged,
  type Row,
  type RunInTransaction,
  type ShardTables,
} from './tables.ts'

/** Milliseconds since the epoch by SQLite's clock. */
const NOW_MS = `CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)`

/** Numbered migrations; the schema's version is the number applied. Never edit a released one. */
const MIGRATIONS = [
  `CREATE TABLE IF NOT EXISTS ringstate_projection_shards (
     name TEXT NOT NULL, version INTEGER NOT NULL, partition INTEGER NOT NULL,
     position INTEGER NOT NULL DEFAULT 0, caught_up INTEGER NOT NULL DEFAULT 0,
     owner TEXT, epoch INTEGER NOT NULL DEFAULT 0, lease_expires INTEGER NOT NULL DEFAULT 0,
     PRIMARY KEY (name, version, partition)) WITHOUT ROWID;
   CREATE TABLE IF NOT EXISTS ringstate_projection_active (name TEXT PRIMARY KEY, version INTEGER NOT NULL) WITHOUT ROWID;
   CREATE TABLE IF NOT EXISTS ringstate_projection_dead_letters (
     name TEXT NOT NULL, version INTEGER NOT NULL, partition INTEGER NOT NULL, position INTEGER NOT NULL,
     event_id TEXT NOT NULL, type TEXT NOT NULL, error TEXT NOT NULL, recorded_at INTEGER NOT NULL,
     PRIMARY KEY (name, version, position));
   CREATE TABLE IF NOT EXISTS ringstate_projection_runners (
     name TEXT NOT NULL, instance_id TEXT NOT NULL, expires INTEGER NOT NULL,
     PRIMARY KEY (name, instance_id)) WITHOUT ROWID;`,
]

function dbOf(tx: StoreTransaction): Database {
  if (tx.backend !== 'sqlite') throw new Error(`expected a sqlite transaction, got ${tx.backend}`)
  return tx.db as Database
}


/** The tables on SQLite; `run` is the store's transaction hook. */
export function sqliteTables(run: RunInTransaction): ShardTables {
  const sqlite = <T>(fn: (db: Database) => T) => run((tx) => fn(dbOf(tx)))
  return {
    backend: 'sqlite',
    async migrate() {
      await sqlite((db) => {
        db.exec('CREATE TABLE IF NOT EXISTS ringstate_projections_schema (version INTEGER PRIMARY KEY)')
        const row = db.query('SELECT coalesce(max(version), 0) AS v FROM ringstate_projections_schema').get() as Row
        for (let v = Number(row.v); v < MIGRATIONS.length; v++) {
          db.exec(MIGRATIONS[v]!)
          db.query('INSERT INTO ringstate_projections_schema (version) VALUES (?)').run(v + 1)
        }
      })
    },
    async ensure(name, version, partitions) {
      await sqlite((db) => {
        const wider = db
          .query('SELECT count(*) AS n FROM ringstate_projection_shards WHERE name = ? AND version = ? AND partition >= ?')
          .get(name, version, partitions) as Row
        if (Number(wider.n) > 0) throw partitionsChanged(name, version)
        const insert = db.query(
          'INSERT INTO ringstate_projection_shards (name, version, partition) VALUES (?, ?, ?) ON CONFLICT DO NOTHING',
        )
        for (let partition = 0; partition < partitions; partition++) insert.run(name, version, partition)
      })
    },
    async active() {
      return sqlite((db) => {
        const rows = db.query('SELECT name, version FROM ringstate_projection_active').all() as Row[]
        return new Map(rows.map((r) => [r.name as string, Number(r.version)]))
      })
    },
    async acquire(keys, owner, leaseMs) {
      if (keys.length === 0) return []
      return sqlite((db) => {
        const take = db.query(
          `UPDATE ringstate_projection_shards SET owner = ?1, epoch = epoch + 1, lease_expires = ${NOW_MS} + ?2
           WHERE name = ?3 AND version = ?4 AND partition = ?5
             AND (owner IS NULL OR owner = ?1 OR lease_expires <= ${NOW_MS})
           RETURNING name, version, partition, epoch, position, caught_up`,
        )
        const taken: Lease[] = []
        for (const key of keys) {
          const row = take.get(owner, leaseMs, key.name, key.version, key.partition) as Row | null
          if (row) taken.push(leaseOf(row))
        }
        return taken
      })
    },
    async renew(leases, owner, leaseMs) {
      if (leases.length === 0) return []
      return sqlite((db) => {
        const extend = db.query(
          `UPDATE ringstate_projection_shards SET lease_expires = ${NOW_MS} + ?1
           WHERE name = ?2 AND version = ?3 AND partition = ?4 AND owner = ?5 AND epoch = ?6 AND lease_expires > ${NOW_MS}`,
        )
        return leases.filter((l) => extend.run(leaseMs, l.name, l.version, l.partition, owner, l.epoch).changes === 1)
      })
    },
    async release(leases, owner) {
      if (leases.length === 0) return
      await sqlite((db) => {
        const free = db.query(
          `UPDATE ringstate_projection_shards SET owner = NULL, lease_expires = 0
           WHERE name = ? AND version = ? AND partition = ? AND owner = ? AND epoch = ?`,
        )
        for (const l of leases) free.run(l.name, l.version, l.partition, owner, l.epoch)
      })
    },
    async heartbeat(names, owner, leaseMs) {
      return sqlite((db) => {
        db.query(`DELETE FROM ringstate_projection_runners WHERE expires <= ${NOW_MS}`).run()
        const upsert = db.query(
          `INSERT INTO ringstate_projection_runners (name, instance_id, expires) VALUES (?1, ?2, ${NOW_MS} + ?3)
           ON CONFLICT (name, instance_id) DO UPDATE SET expires = excluded.expires`,
        )
        for (const name of names) upsert.run(name, owner, leaseMs)
        const rows = db
          .query(
            `SELECT name, count(*) AS n FROM ringstate_projection_runners
             WHERE name IN (SELECT value FROM json_each(?)) GROUP BY name`,
          )
          .all(JSON.stringify(names)) as Row[]
        return new Map(rows.map((r) => [r.name as string, Number(r.n)]))
      })
    },
    async leave(owner) {
      await sqlite((db) => db.query('DELETE FROM ringstate_projection_runners WHERE instance_id = ?').run(owner))
    },
    async rows(names) {
      if (names.length === 0) return []
      return sqlite((db) => {
        const rows = db
          .query(
            `SELECT name, version, partition, position, caught_up, owner, epoch,
                    (owner IS NULL OR lease_expires <= ${NOW_MS}) AS free
             FROM ringstate_projection_shards WHERE name IN (SELECT value FROM json_each(?))`,
          )
          .all(JSON.stringify(names)) as Row[]
        return rows.map(ownedLeaseOf)
      })
    },
    async deadLetters(name) {
      return sqlite((db) => {
        const rows = db
          .query('SELECT * FROM ringstate_projection_dead_letters WHERE name = ? ORDER BY version, position')
          .all(name) as Row[]
        return rows.map(deadLetterOf)
      })
    },
    async commit(tx, lease, owner, through, caughtUp, leaseMs) {
      const result = dbOf(tx)
        .query(
          `UPDATE ringstate_projection_shards
           SET position = max(position, ?1), caught_up = max(caught_up, ?2), lease_expires = ${NOW_MS} + ?3
           WHERE name = ?4 AND version = ?5 AND partition = ?6 AND owner = ?7 AND epoch = ?8 AND lease_expires > ${NOW_MS}`,
        )
        .run(through, caughtUp ? 1 : 0, leaseMs, lease.name, lease.version, lease.partition, owner, lease.epoch)
      return result.changes === 1
    },
    async deadLetter(tx, key, event, error) {
      dbOf(tx)
        .query(
          `INSERT INTO ringstate_projection_dead_letters (name, version, partition, position, event_id, type, error, recorded_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ${NOW_MS}) ON CONFLICT DO NOTHING`,
        )
        .run(key.name, key.version, key.partition, event.position, event.id, event.type, error)
    },
    async activate(tx, name, version, partitions) {
      const db = dbOf(tx)
      const ready = db
        .query('SELECT count(*) AS n FROM ringstate_projection_shards WHERE name = ? AND version = ? AND caught_up = 1')
        .get(name, version) as Row
      if (Number(ready.n) < partitions) return false
      const result = db
        .query(
          `INSERT INTO ringstate_projection_active (name, version) VALUES (?1, ?2)
           ON CONFLICT (name) DO UPDATE SET version = excluded.version WHERE version < excluded.version`,
        )
        .run(name, version)
      return result.changes === 1
    },
    async rewind(tx, name, version, owner, leaseMs) {
      const rows = dbOf(tx)
        .query(
          `UPDATE ringstate_projection_shards
           SET position = 0, caught_up = 0, owner = ?1, epoch = epoch + 1, lease_expires = ${NOW_MS} + ?2
           WHERE name = ?3 AND version = ?4
           RETURNING name, version, partition, epoch, position, caught_up`,
        )
        .all(owner, leaseMs, name, version) as Row[]
      return rows.map(leaseOf).sort((a, b) => a.partition - b.partition)
    },
  }
}
