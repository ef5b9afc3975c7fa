/**
 * Pipelined group commits (pipelineDepth > 1): batches in flight at once on one connection keep
 * every guarantee of one-at-a-time batches. Most tests hold the append lock from another session
 * so that the store's batches pile up in flight behind it, then release it.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import postgres, { type Sql } from 'postgres'
import { freshDatabase, type FreshDatabase } from '../../testing/postgres.ts'
import type { EventStore, SequencedEvent } from '../types.ts'
import { openPostgresStore } from './index.ts'
import { emptyLog as emptyLogOf } from './testdata/empty-log.ts'
import { APPEND_LOCK_KEY } from './schema.ts'

let db: FreshDatabase
beforeAll(async () => {
  db = await freshDatabase()
})
afterAll(() => db.drop())

const emptyLog = () => emptyLogOf(db.url)

/** Poll a condition until it holds (the database has no event to wait on for these). */
async function until(condition: () => Promise<boolean>): Promise<void> {
  while (!(await condition())) await Bun.sleep(5)
}

/** Hold the append lock in another session until `release`; resolves once the store is waiting on it. */
async function holdAppendLock(): Promise<{ sql: Sql<any>; waiting(): Promise<void>; release(): Promise<void> }> {
  const sql = postgres(db.url, { max: 1, onnotice: () => {} })
  await sql`SELECT pg_advisory_lock(${APPEND_LOCK_KEY.toString()}::bigint)`
  return {
    sql,
    waiting: () =>
      until(async () => {
        const [row] = await sql`SELECT count(*)::int AS n FROM pg_stat_activity
          WHERE datname = current_database() AND wait_event_type = 'Lock' AND wait_event = 'advisory'`
        return row!.n > 0
      }),
    release: async () => {
      await sql`SELECT pg_advisory_unlock(${APPEND_LOCK_KEY.toString()}::bigint)`
      await sql.end()
    },
  }
}

/**
 * Append `count` events in one tick while the append lock is held (tagged `run:<run>`); the sizes
 * of the transactions they went in.
 */
async function batchesOf(store: EventStore, count: number, run: string): Promise<number[]> {
  const lock = await holdAppendLock()
  const results = Array.from({ length: count }, () => store.append({ type: 'Split', tags: [`run:${run}`] }))
  await lock.waiting()
  await lock.release()
  await Promise.all(results)
  const sizes = new Map<number, number>()
  for (const event of await store.query([{ tags: [`run:${run}`] }])) {
    sizes.set(event.recordedAt.getTime(), (sizes.get(event.recordedAt.getTime()) ?? 0) + 1)
  }
  return [...sizes.values()]
}

function codeOf(outcome: PromiseSettledResult<unknown>): unknown {
  return outcome.status === 'fulfilled' ? outcome.value : (outcome.reason as { code?: string }).code
}

describe('postgres: pipelined group commits', () => {
  test('appends of 8 callers at depth 3 get gapless positions, in commit order as a subscriber sees them and in each caller\'s order', async () => {
    await emptyLog()
    const store = await openPostgresStore(db.url, { pipelineDepth: 3 })
    const stop = new AbortController()
    try {
      const seen: SequencedEvent[] = []
      const total = 8 * 25
      const subscribed = (async () => {
        for await (const event of store.subscribe('all', { signal: stop.signal })) {
          seen.push(event)
          if (seen.length === total) return
        }
      })()
      const positions = await Promise.all(Array.from({ length: 8 }, async (_, caller) => {
        const mine: bigint[] = []
        for (let i = 0; i < 25; i++) mine.push((await store.append({ type: 'Step', tags: [`caller:${caller}`], data: { i } })).position)
        return mine
      }))
      await subscribed
      expect(seen.map((event) => event.position)).toEqual(seen.map((_, i) => BigInt(i + 1)))
      for (const [caller, mine] of positions.entries()) {
        expect(mine).toEqual([...mine].sort((a, b) => (a < b ? -1 : 1)))
        const steps = seen.filter((event) => event.tags[0] === `caller:${caller}`).map((event) => (event.data as { i: number }).i)
        expect(steps).toEqual(Array.from({ length: 25 }, (_, i) => i))
      }
      // More than one transaction was in flight at once: batches were split over the pipeline.
      const transactions = new Set(seen.map((event) => event.recordedAt.getTime()))
      expect(transactions.size).toBeGreaterThan(1)
    } finally {
      stop.abort()
      await store.close()
    }
  })

  test('at the default depth, appends waiting together are split over the pipeline only into batches of at least 32', async () => {
    await emptyLog()
    const store = await openPostgresStore(db.url)
    try {
      expect(await batchesOf(store, 16, 'a')).toEqual([16])
      expect(await batchesOf(store, 63, 'b')).toEqual([63])
      expect(await batchesOf(store, 64, 'c')).toEqual([32, 32])
      expect(await batchesOf(store, 90, 'd')).toEqual([45, 45])
    } finally {
      await store.close()
    }
  })

  test('while another store\'s commits keep coming between this store\'s batches, waiting appends are not split', async () => {
    await emptyLog()
    const store = await openPostgresStore(db.url)
    const other = await openPostgresStore(db.url)
    try {
      // Another writer commits before each of this store's batches (as stores in other processes
      // do under load): the split would only add batches, each a turn of the append lock.
      for (let i = 0; i < 8; i++) {
        await other.append({ type: 'Elsewhere', tags: ['other'] })
        await store.append({ type: 'Here', tags: ['here'] })
      }
      expect(await batchesOf(store, 64, 'interleaved')).toEqual([64])
      // Alone again for a while: the split comes back.
      for (let i = 0; i < 40; i++) await store.append({ type: 'Here', tags: ['here'] })
      expect(await batchesOf(store, 64, 'alone')).toEqual([32, 32])
    } finally {
      await other.close()
      await store.close()
    }
  })

  test('an append that repeats the ids of an append in an earlier batch still in flight returns that first result', async () => {
    await emptyLog()
    const store = await openPostgresStore(db.url, { pipelineDepth: 2 })
    const lock = await holdAppendLock()
    try {
      const event = { type: 'Paid', tags: ['invoice:7'], id: 'payment-7' }
      const first = store.append([{ type: 'Other', tags: [] }, event])
      await lock.waiting()
      // Two in one tick: the second repeats the first's id, so it leads a batch of its own.
      const second = store.append([event])
      const third = store.append([event])
      await lock.release()
      const [a, b, c] = await Promise.allSettled([first, second, third])
      expect(a).toMatchObject({ status: 'fulfilled', value: { position: 2n, count: 2 } })
      expect(codeOf(b)).toMatchObject({ position: 2n, count: 1 })
      expect(codeOf(c)).toMatchObject({ position: 2n, count: 1 })
      expect((await store.query('all')).map((stored) => stored.id)).toEqual([expect.any(String), 'payment-7'])
    } finally {
      await store.close()
    }
  })

  test('conditional appends on one boundary spread over batches in flight: exactly one is accepted', async () => {
    await emptyLog()
    const store = await openPostgresStore(db.url, { pipelineDepth: 4 })
    const lock = await holdAppendLock()
    try {
      const claim = (who: string) =>
        store.append({ type: 'UsernameClaimed', tags: ['username:ada'], data: { who } }, { failIfEventsMatch: [{ tags: ['username:ada'] }] })
      const blocker = store.append({ type: 'Unrelated', tags: ['x'] })
      await lock.waiting()
      // Each claim could match the one before it, so each leads its own batch.
      // Settle handlers go on at once: a losing claim may be rejected before `blocker` resolves.
      const claims = Promise.allSettled(['a', 'b', 'c', 'd', 'e', 'f'].map(claim))
      await lock.release()
      await blocker
      const outcomes = (await claims).map(codeOf)
      expect(outcomes).toEqual([{ position: 2n, count: 1, ids: [expect.any(String)] }, ...Array(5).fill('APPEND_CONDITION_FAILED')])
      expect((await store.query([{ tags: ['username:ada'] }])).map((event) => event.data)).toEqual([{ who: 'a' }])
    } finally {
      await store.close()
    }
  })

  test('with an inline projector attached, batches go one at a time and the projector promotes them in commit order', async () => {
    await emptyLog()
    const store = await openPostgresStore(db.url, { pipelineDepth: 4 })
    const promoted: bigint[] = []
    let staged: bigint[] = []
    const detach = store.attach({
      name: 'positions',
      apply: (event) => {
        staged.push(event.position)
      },
      promote: () => {
        promoted.push(...staged)
        staged = []
      },
      discard: () => {
        staged = []
      },
    })
    try {
      await Promise.all(Array.from({ length: 6 }, async (_, caller) => {
        for (let i = 0; i < 10; i++) await store.append({ type: 'Step', tags: [`caller:${caller}`] })
      }))
      expect(promoted).toEqual(Array.from({ length: 60 }, (_, i) => BigInt(i + 1)))
    } finally {
      detach()
      await store.close()
    }
  })

  test('an append stuck behind the lock times out as possibly written, one waiting behind it as not written', async () => {
    await emptyLog()
    const store: EventStore = await openPostgresStore(db.url, { appendTimeoutMs: 200 })
    const lock = await holdAppendLock()
    try {
      const inDatabase = store.append({ type: 'Slow', tags: ['a'] })
      await lock.waiting()
      const queued = store.append({ type: 'Slow', tags: ['b'] })
      const [first, second] = await Promise.allSettled([inDatabase, queued])
      expect(first.status === 'rejected' && (first.reason as Error).message).toContain('may or may not have been written')
      expect(second.status === 'rejected' && (second.reason as Error).message).toContain('nothing was written')
    } finally {
      await lock.release()
      await store.close()
    }
  })

  test('a pipeline depth outside 1 to 16 is refused with INVALID_OPTIONS before connecting', async () => {
    for (const pipelineDepth of [0, 17, 1.5]) {
      await expect(openPostgresStore('postgres://nobody@127.0.0.1:1/none', { pipelineDepth })).rejects.toMatchObject({ code: 'INVALID_OPTIONS' })
    }
  })
})
