/**
 * What only the PostgreSQL backend does about its connections: bounded connects, recovery after its
 * connections are killed, storage errors without payloads, and the transaction hook on postgres.js.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { createServer, type Server, type Socket } from 'node:net'
import postgres from 'postgres'
import { freshDatabase, type FreshDatabase } from '../../testing/postgres.ts'
import { storeTransaction, type EventStore, type TransactionalStore } from '../types.ts'
import { openPostgresStore } from './index.ts'

let db: FreshDatabase
let sql: postgres.Sql
beforeAll(async () => {
  db = await freshDatabase()
  sql = postgres(db.url, { max: 2, onnotice: () => {} })
})
afterAll(async () => {
  await sql.end()
  await db.drop()
})

async function failure(work: () => Promise<unknown>): Promise<{ code?: string; cause?: unknown; message: string } | undefined> {
  try {
    await work()
  } catch (error) {
    return error as { code?: string; cause?: unknown; message: string }
  }
  return undefined
}

/** A TCP server that accepts connections and never says a word. */
async function silentServer(): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<Socket>()
  const server: Server = createServer((socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as { port: number }).port
  return {
    port,
    close: () => {
      for (const socket of sockets) socket.destroy()
      return new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}

/** Retry `work` until it succeeds, up to a deadline (a reconnect takes a few attempts). */
async function eventually<T>(work: () => Promise<T>, ms = 15_000): Promise<T> {
  const deadline = Date.now() + ms
  for (;;) {
    try {
      return await work()
    } catch (error) {
      if (Date.now() > deadline) throw error
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
  }
}

describe('postgres: connections', () => {
  test('opening against a server that accepts and stays silent fails with STORAGE_ERROR within connectTimeoutMs', async () => {
    const server = await silentServer()
    try {
      const started = performance.now()
      const error = await failure(() => openPostgresStore(`postgres://nobody@127.0.0.1:${server.port}/none`, { connectTimeoutMs: 500 }))
      const took = performance.now() - started
      expect(error?.code).toBe('STORAGE_ERROR')
      expect(took).toBeGreaterThanOrEqual(400)
      expect(took).toBeLessThan(5000)
    } finally {
      await server.close()
    }
  })

  test('opening against a closed port fails with STORAGE_ERROR at once', async () => {
    const server = await silentServer()
    const port = server.port
    await server.close()
    const started = performance.now()
    const error = await failure(() => openPostgresStore(`postgres://nobody@127.0.0.1:${port}/none`, { connectTimeoutMs: 5000 }))
    expect(error?.code).toBe('STORAGE_ERROR')
    expect(performance.now() - started).toBeLessThan(5000)
  })

  test('bad connection options are INVALID_OPTIONS before connecting', async () => {
    expect((await failure(() => openPostgresStore(db.url, { connectTimeoutMs: 0 })))?.code).toBe('INVALID_OPTIONS')
    expect((await failure(() => openPostgresStore(db.url, { schema: '' })))?.code).toBe('INVALID_OPTIONS')
  })

  test('after every connection of the store is killed, appends and live delivery recover by themselves', async () => {
    const store = await openPostgresStore(db.url, { pollIntervalMs: 200 })
    const controller = new AbortController()
    try {
      const seen: bigint[] = []
      const consumer = (async () => {
        for await (const event of store.subscribe('all', { signal: controller.signal })) seen.push(event.position)
      })()
      const first = await store.append({ type: 'Before' })
      const killed = await sql`SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity
        WHERE datname = current_database() AND application_name = 'ringstate'`
      expect(killed.length).toBeGreaterThan(0)
      const after = await eventually(() => store.append({ type: 'After', id: 'after-kill' }))
      expect(after.position).toBe(first.position + 1n)
      // Another writer's commit reaches the subscriber only through LISTEN or the poll.
      const other = await openPostgresStore(db.url)
      try {
        await other.append({ type: 'FromOther' })
      } finally {
        await other.close()
      }
      const deadline = Date.now() + 15_000
      while (seen.length < 3 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10))
      expect(seen).toEqual([1n, 2n, 3n])
      controller.abort()
      await consumer
    } finally {
      controller.abort()
      await store.close()
    }
  })

  test("a storage error keeps the driver's code and message, never the batch's parameters", async () => {
    const store = await openPostgresStore(db.url)
    try {
      const warmup = await store.append({ type: 'Warmup' }, undefined, { checkpoint: { name: 'c', position: 1n } })
      await sql`DROP TABLE ringstate.checkpoints`
      const error = await failure(() =>
        store.append({ type: 'Payment', data: { card: '4111-1111-1111-1111' } }, undefined, { checkpoint: { name: 'c', position: 2n } }),
      )
      expect(error?.code).toBe('STORAGE_ERROR')
      const cause = error!.cause as Record<string, unknown>
      expect(typeof cause.message).toBe('string')
      expect(cause.code).toBe('42P01')
      expect(cause).not.toHaveProperty('parameters')
      expect(cause).not.toHaveProperty('query')
      expect(cause).not.toHaveProperty('args')
      const everything = JSON.stringify({ error, cause, message: error!.message, causeMessage: cause.message, stack: cause.stack })
      expect(everything).not.toContain('4111')
      expect(await store.append({ type: 'Unaffected' })).toMatchObject({ position: warmup.position + 1n })
    } finally {
      await sql`CREATE TABLE IF NOT EXISTS ringstate.checkpoints (name text PRIMARY KEY, position bigint NOT NULL, updated_at timestamptz NOT NULL)`
      await store.close()
    }
  })

  test('the store plans without parallel workers on its connections, reads and transactions alike', async () => {
    const store = await openPostgresStore(db.url)
    const transact = (store as EventStore & TransactionalStore)[storeTransaction].bind(store)
    try {
      let setting: unknown
      await transact(async (tx) => {
        if (tx.backend !== 'postgres') throw new Error('not postgres')
        const [row] = await (tx.sql as postgres.TransactionSql).unsafe('SHOW max_parallel_workers_per_gather')
        setting = row?.max_parallel_workers_per_gather
      })
      expect(setting).toBe('0')
      // The pool's reads use the same options: a read's plan has no Gather even where the server
      // would choose one (costs lowered for this session only through SET in the transaction).
      await transact(async (tx) => {
        if (tx.backend !== 'postgres') throw new Error('not postgres')
        const q = tx.sql as postgres.TransactionSql
        await q.unsafe('SET LOCAL parallel_setup_cost = 0')
        await q.unsafe('SET LOCAL parallel_tuple_cost = 0')
        await q.unsafe('SET LOCAL min_parallel_table_scan_size = 0')
        const plan = (await q.unsafe(`EXPLAIN SELECT count(*) FROM "${tx.schema}".events`)).map((r: any) => r['QUERY PLAN']).join('\n')
        expect(plan).not.toContain('Gather')
      })
    } finally {
      await store.close()
    }
  })

  test('the transaction hook writes through the postgres.js transaction in the store schema, and a throw rolls back', async () => {
    const store = await openPostgresStore(db.url)
    const transact = (store as EventStore & TransactionalStore)[storeTransaction].bind(store)
    try {
      await transact(async (tx) => {
        if (tx.backend !== 'postgres') throw new Error('not postgres')
        const q = tx.sql as postgres.TransactionSql
        await q.unsafe(`CREATE TABLE IF NOT EXISTS "${tx.schema}".read_model (k text PRIMARY KEY, v int)`)
        await q.unsafe(`INSERT INTO "${tx.schema}".read_model VALUES ('a', 1)`)
      })
      const error = await failure(() =>
        transact(async (tx) => {
          await (tx as { sql: postgres.TransactionSql }).sql.unsafe(`INSERT INTO ringstate.read_model VALUES ('b', 2)`)
          throw new Error('changed my mind')
        }),
      )
      expect(error?.message).toBe('changed my mind')
      expect((await sql`SELECT k, v FROM ringstate.read_model ORDER BY k`).map((row) => ({ ...row }))).toEqual([{ k: 'a', v: 1 }])
    } finally {
      await store.close()
    }
  })
})
