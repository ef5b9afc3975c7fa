import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'bun:test'
import { join } from 'node:path'
import postgres from 'postgres'
import { freshDatabase, type FreshDatabase } from '../../testing/postgres.ts'
import { storeStats, type InspectableStore } from '../core/store.ts'
import type { EventStore, Query } from '../types.ts'
import { migrate, openPostgresStore } from './index.ts'
import { lines } from './testdata/lines.ts'

// Subscribers here poll every 10 minutes: anything they receive within a test came through
// LISTEN/NOTIFY (or a listener reconnect), never through the polling fallback.
const NO_POLLING = { pollIntervalMs: 600_000 }
const child = join(import.meta.dir, 'testdata', 'child.ts')

let db: FreshDatabase
let sql: postgres.Sql
beforeAll(async () => {
  db = await freshDatabase()
  sql = postgres(db.url, { max: 2, onnotice: () => {} })
  await migrate(sql)
})
afterAll(async () => {
  await sql.end()
  await db.drop()
})
beforeEach(async () => {
  await sql`TRUNCATE ringstate.events, ringstate.event_tags, ringstate.commands, ringstate.snapshots, ringstate.checkpoints RESTART IDENTITY`
})

/** A running subscription that records positions; `reached(n)` resolves once n events arrived. */
function record(store: EventStore, query: Query = 'all') {
  const controller = new AbortController()
  const positions: bigint[] = []
  const waiting: { count: number; resolve: () => void }[] = []
  const done = (async () => {
    for await (const event of store.subscribe(query, { signal: controller.signal })) {
      positions.push(event.position)
      for (const wait of waiting.filter((w) => positions.length >= w.count)) wait.resolve()
    }
  })()
  return {
    positions,
    reached: (count: number) =>
      positions.length >= count ? Promise.resolve() : new Promise<void>((resolve) => waiting.push({ count, resolve })),
    stop: async () => {
      controller.abort()
      await done
    },
  }
}

/** Re-check a database condition until it holds (the state is in another session, not an event). */
async function until(check: () => Promise<boolean>): Promise<void> {
  while (!(await check())) await Bun.sleep(5)
}

const tailOf = (store: EventStore) => (store as unknown as InspectableStore)[storeStats]().tail

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => BigInt(from + i))

describe('postgres: subscriptions', () => {
  test('an open transaction that wrote no events does not delay delivery', async () => {
    const store = await openPostgresStore(db.url, NO_POLLING)
    const idle = await sql.reserve()
    try {
      await idle`BEGIN`
      await idle`CREATE TEMP TABLE unrelated (x int)`
      await idle`INSERT INTO unrelated VALUES (1)`
      const seen = record(store)
      await store.append({ type: 'A' })
      await store.append([{ type: 'B' }, { type: 'C' }])
      await seen.reached(3)
      expect(seen.positions).toEqual(range(1, 3))
      await seen.stop()
    } finally {
      await idle`ROLLBACK`
      idle.release()
      await store.close()
    }
  })

  test('a batch holding the append lock uncommitted, and a writer blocked behind it, are delivered once each in position order after commit', async () => {
    const store = await openPostgresStore(db.url, NO_POLLING)
    const holder = await sql.reserve()
    try {
      await store.append({ type: 'Before' })
      const seen = record(store)
      await seen.reached(1)
      await holder`BEGIN`
      // One uncommitted event written by the batch function itself, holding the append lock.
      await holder`SELECT * FROM ringstate.ringstate_append_batch('{1}', '{f}', '{1}', '{Held}', '{1}', '{0}', '{}',
        '{"null"}', '{"{}"}', '{held-1}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}',
        '{}', '{}', '{}', '{}', '{}', '{}', '{}')`
      const late = store.append({ type: 'Late' })
      await until(async () => {
        const [row] = await sql`SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND NOT granted`
        return row!.n > 0
      })
      expect((await store.query('all')).map((event) => event.type)).toEqual(['Before'])
      expect(seen.positions).toEqual([1n])
      await holder`COMMIT`
      expect(await late).toMatchObject({ position: 3n, count: 1 })
      await seen.reached(3)
      expect(seen.positions).toEqual(range(1, 3))
      expect((await store.query('all')).map((event) => event.type)).toEqual(['Before', 'Held', 'Late'])
      await seen.stop()
    } finally {
      holder.release()
      await store.close()
    }
  })

  test('writers on separate stores committing in any order are seen exactly once, in position order', async () => {
    const writers = await Promise.all(Array.from({ length: 4 }, () => openPostgresStore(db.url, { max: 2 })))
    const reader = await openPostgresStore(db.url, NO_POLLING)
    try {
      const all = record(reader)
      const tagged = record(reader, [{ types: ['W'], tags: ['writer:2'] }])
      await Promise.all(writers.map(async (store, w) => {
        for (let i = 0; i < 25; i++) await store.append([{ type: 'W', tags: [`writer:${w}`] }, { type: 'X' }])
      }))
      await all.reached(200)
      await tagged.reached(25)
      expect(all.positions).toEqual(range(1, 200))
      const expected = (await reader.query([{ tags: ['writer:2'] }])).map((event) => event.position)
      expect(tagged.positions).toEqual(expected)
      await all.stop()
      await tagged.stop()
    } finally {
      await Promise.all([...writers, reader].map((store) => store.close()))
    }
  })

  test('a subscriber keeps receiving after its listening connection is killed', async () => {
    const store = await openPostgresStore(db.url, NO_POLLING)
    // The appends come from another store: the subscriber's own store would hand them to it
    // without any notification.
    const writer = await openPostgresStore(db.url, { max: 2 })
    try {
      const seen = record(store)
      await writer.append({ type: 'A' })
      await seen.reached(1)
      const killed = await sql`SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity
        WHERE datname = current_database() AND query ILIKE 'listen%'`
      expect(killed.length).toBe(1)
      await writer.append({ type: 'B' })
      await seen.reached(2)
      expect(seen.positions).toEqual([1n, 2n])
      await seen.stop()
    } finally {
      await Promise.all([store.close(), writer.close()])
    }
  })

  test("the subscriber's own store and other stores appending at once: every event seen once, in position order, own commits without a read", async () => {
    const others = await Promise.all(Array.from({ length: 3 }, () => openPostgresStore(db.url, { max: 2 })))
    // Pipelined, so that batches of its own store are in flight while others commit between them.
    const own = await openPostgresStore(db.url, { ...NO_POLLING, pipelineDepth: 4 })
    try {
      const all = record(own)
      const mine = record(own, [{ tags: ['writer:own'] }])
      await until(async () => tailOf(own).members === 2)
      const appendFrom = (store: EventStore, tag: string) =>
        Promise.all(Array.from({ length: 4 }, async () => {
          for (let i = 0; i < 25; i++) await store.append([{ type: 'W', tags: [tag] }, { type: 'X' }])
        }))
      await Promise.all([appendFrom(own, 'writer:own'), ...others.map((store, w) => appendFrom(store, `writer:${w}`))])
      await all.reached(800)
      await mine.reached(100)
      expect(all.positions).toEqual(range(1, 800))
      const expected = (await own.query([{ tags: ['writer:own'] }])).map((event) => event.position)
      expect(mine.positions).toEqual(expected)
      // The other stores' commits can only be read. Whether an own batch followed on from what the
      // tail had seen while the others interleaved depends on timing; once they are quiet, an own
      // commit is handed over without a read.
      expect(tailOf(own).reads).toBeGreaterThan(0)
      const taken = tailOf(own).taken
      await own.append({ type: 'W', tags: ['writer:own'] })
      await all.reached(801)
      await mine.reached(101)
      expect(tailOf(own).taken).toBeGreaterThan(taken)
      await all.stop()
      await mine.stop()
    } finally {
      await Promise.all([...others, own].map((store) => store.close()))
    }
  })

  test('a subscriber in another process is woken by the append itself', async () => {
    const store = await openPostgresStore(db.url)
    const proc = Bun.spawn([process.execPath, child, 'subscribe', db.url], { stdout: 'pipe', stderr: 'inherit' })
    try {
      await store.append({ type: 'First' })
      const received = lines(proc.stdout)
      // The child has caught up (and so is listening) once it prints the first event.
      expect((await received.next()).value).toBe('1')
      await store.append({ type: 'Second' })
      expect((await received.next()).value).toBe('2')
    } finally {
      proc.kill()
      await proc.exited
      await store.close()
    }
  })
})
