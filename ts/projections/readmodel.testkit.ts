/**
 * A read model for tests that works on every backend: one row per handled event in a table of the
 * store's own database (memory: an array), written through `ctx.tx`, so a rolled-back batch leaves
 * no row. Tests count rows per position to prove "exactly once". Also used by the child processes
 * of the multi-process tests.
 */
import type { SqliteDatabase as Database } from '../store/sqlite/driver.ts'
import type { TransactionSql } from 'postgres'
import { storeTransaction, type EventStore, type SequencedEvent, type StoreTransaction, type TransactionalStore } from '../store/types.ts'
import type { ProjectionContext } from './projection.ts'

const memoryRows = new Map<string, { position: bigint; partition: number }[]>()

/** The table of a projection version. */
export const tableOf = (name: string, version: number) => `rm_${name.replace(/[^a-z0-9_]/gi, '_')}_v${version}`

/** Create the version's table (idempotent). */
export async function setupRows(ctx: ProjectionContext): Promise<void> {
  const table = tableOf(ctx.name, ctx.version)
  if (ctx.backend === 'postgres') {
    await ctx.tx.unsafe(`CREATE TABLE IF NOT EXISTS "${ctx.schema}"."${table}" (position bigint NOT NULL, partition int NOT NULL)`)
  } else if (ctx.backend === 'sqlite') {
    ctx.tx.exec(`CREATE TABLE IF NOT EXISTS "${table}" (position INTEGER NOT NULL, partition INTEGER NOT NULL)`)
  } else if (!memoryRows.has(table)) {
    memoryRows.set(table, [])
  }
}

/** Empty the version's table. */
export async function resetRows(ctx: ProjectionContext): Promise<void> {
  const table = tableOf(ctx.name, ctx.version)
  if (ctx.backend === 'postgres') await ctx.tx.unsafe(`DELETE FROM "${ctx.schema}"."${table}"`)
  else if (ctx.backend === 'sqlite') ctx.tx.exec(`DELETE FROM "${table}"`)
  else memoryRows.set(table, [])
}

/** One row per event, in one statement on PostgreSQL. */
export async function writeRows(events: readonly SequencedEvent[], ctx: ProjectionContext): Promise<void> {
  const table = tableOf(ctx.name, ctx.version)
  if (ctx.backend === 'postgres') {
    await ctx.tx.unsafe(
      `INSERT INTO "${ctx.schema}"."${table}" (position, partition) SELECT unnest($1::bigint[]), $2::int`,
      [events.map((e) => e.position.toString()) as never, ctx.partition],
    )
  } else if (ctx.backend === 'sqlite') {
    const insert = ctx.tx.query(`INSERT INTO "${table}" (position, partition) VALUES (?, ?)`)
    for (const event of events) insert.run(event.position, ctx.partition)
  } else {
    const rows = memoryRows.get(table) ?? []
    memoryRows.set(table, rows)
    for (const event of events) rows.push({ position: event.position, partition: ctx.partition })
  }
}

/** Every row of a version's table, ordered by position. */
export async function readRows(store: EventStore<any>, name: string, version = 1): Promise<{ position: bigint; partition: number }[]> {
  const table = tableOf(name, version)
  const store2 = store as unknown as TransactionalStore
  return store2[storeTransaction](async (tx: StoreTransaction): Promise<{ position: bigint; partition: number }[]> => {
    if (tx.backend === 'postgres') {
      const sql = tx.sql as TransactionSql
      const exists = await sql.unsafe(`SELECT to_regclass($1) AS t`, [`"${tx.schema}"."${table}"`])
      if (exists[0]!.t === null) return []
      const rows = await sql.unsafe(`SELECT position::text AS p, partition FROM "${tx.schema}"."${table}" ORDER BY position`)
      return rows.map((r) => ({ position: BigInt(r.p as string), partition: Number(r.partition) }))
    }
    if (tx.backend === 'sqlite') {
      const db = tx.db as Database
      const exists = db.query(`SELECT name FROM sqlite_master WHERE type = 'table' AND name = ?`).get(table)
      if (exists === null) return []
      const rows = db.query(`SELECT position, partition FROM "${table}" ORDER BY position`).all() as { position: number | bigint; partition: number }[]
      return rows.map((r) => ({ position: BigInt(r.position), partition: Number(r.partition) }))
    }
    return [...(memoryRows.get(table) ?? [])].sort((a, b) => (a.position < b.position ? -1 : a.position > b.position ? 1 : 0))
  })
}

/** Positions seen more than once (should be none). */
export function duplicates(rows: readonly { position: bigint }[]): bigint[] {
  const seen = new Set<bigint>()
  const twice: bigint[] = []
  for (const row of rows) {
    if (seen.has(row.position)) twice.push(row.position)
    seen.add(row.position)
  }
  return twice
}

/** Poll `check` until it returns true (or a value), failing after `timeoutMs`. */
export async function eventually<T>(check: () => T | Promise<T>, what: string, timeoutMs = 20_000): Promise<Exclude<T, false | undefined>> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await check()
    if (value !== false && value !== undefined) return value as Exclude<T, false | undefined>
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}
