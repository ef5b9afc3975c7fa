/**
 * The batch function against the memory store as the reference: appends made in one tick share a
 * group commit, and each must get exactly the result it would get from the memory store.
 */
import { afterAll, beforeAll, expect, test } from 'bun:test'
import { freshDatabase, type FreshDatabase } from '../../testing/postgres.ts'
import { MemoryStore } from '../memory/index.ts'
import type { AppendCondition, AppendResult, EventInput, EventStore, SequencedEvent } from '../types.ts'
import { openPostgresStore } from './index.ts'

let db: FreshDatabase
beforeAll(async () => {
  db = await freshDatabase()
})
afterAll(() => db.drop())

interface Call {
  events: EventInput[]
  condition?: AppendCondition
}

/** The log both stores start from: positions 1..6. */
const seed: EventInput[] = [
  { type: 'Opened', tags: ['account:a', 'region:eu'] },
  { type: 'Deposited', tags: ['account:a'] },
  { type: 'Opened', tags: ['account:b', 'region:us'] },
  { type: 'Renamed', tags: ['account:b'] },
  { type: 'Deposited', tags: ['account:b', 'region:us'] },
  { type: 'Closed', tags: ['account:c'] },
]

/** Every kind of condition item, hit and missed, with and without `after`. */
const calls: Call[] = [
  { events: [{ type: 'X', tags: ['new:1'] }] },
  { events: [{ type: 'X', tags: ['new:2'] }], condition: { failIfEventsMatch: [{ tags: ['account:a'] }] } },
  { events: [{ type: 'X', tags: ['new:3'] }], condition: { failIfEventsMatch: [{ tags: ['account:a'] }], after: 2n } },
  { events: [{ type: 'X', tags: ['new:4'] }], condition: { failIfEventsMatch: [{ tags: ['account:b', 'region:us'] }], after: 3n } },
  { events: [{ type: 'X', tags: ['new:5'] }], condition: { failIfEventsMatch: [{ tags: ['account:b', 'region:eu'] }] } },
  { events: [{ type: 'X', tags: ['new:6'] }], condition: { failIfEventsMatch: [{ types: ['Renamed', 'Closed'], tags: ['account:b'] }] } },
  { events: [{ type: 'X', tags: ['new:7'] }], condition: { failIfEventsMatch: [{ types: ['Closed'], tags: ['account:b'] }] } },
  { events: [{ type: 'X', tags: ['new:8'] }], condition: { failIfEventsMatch: [{ types: ['Closed', 'Deposited'] }], after: 2n } },
  { events: [{ type: 'X', tags: ['new:9'] }], condition: { failIfEventsMatch: [{ types: ['Nothing'] }, { tags: ['account:c'] }] } },
  { events: [{ type: 'X', tags: ['new:10'] }], condition: { failIfEventsMatch: [{ types: ['Nothing'] }, { tags: ['nobody'] }], after: 1n } },
  { events: [{ type: 'X', tags: ['new:11'] }], condition: { failIfEventsMatch: 'all', after: 4n } },
  { events: [{ type: 'X', tags: ['new:12'] }], condition: { failIfEventsMatch: 'all', after: 6n } },
  { events: [{ type: 'Y', tags: ['new:13'] }, { type: 'Y', tags: ['new:13', 'more'] }], condition: { failIfEventsMatch: [{ tags: ['account:d'] }] } },
  { events: [{ type: 'Z', tags: [] }], condition: { failIfEventsMatch: [{ types: ['Y'] }], after: 6n } },
]

/** Seed, then make every call in one tick; each call's result or error code and conflict. */
async function outcomes(store: EventStore): Promise<unknown[]> {
  try {
    await store.append(seed)
    const settled = await Promise.allSettled(calls.map((call) => store.append(call.events, call.condition)))
    return settled.map((result) => {
      if (result.status === 'fulfilled') return { position: result.value.position, count: result.value.count, ids: result.value.ids.length }
      const { code, conflict } = result.reason as { code: string; conflict?: bigint }
      return { code, conflict }
    })
  } finally {
    await store.close()
  }
}

test('appends of one group commit with every kind of condition get the results the memory store gives', async () => {
  const expected = await outcomes(new MemoryStore())
  expect(expected.filter((outcome) => (outcome as { code?: string }).code === 'APPEND_CONDITION_FAILED').length).toBeGreaterThan(4)
  expect(await outcomes(await openPostgresStore(db.url))).toEqual(expected)
})

/** Appends of 1, 3, 2, 1 and 4 events made in one tick (one group commit), tagged by append. */
function appendInOneTick(store: EventStore, round: string): Promise<AppendResult[]> {
  return Promise.all([1, 3, 2, 1, 4].map((size, a) =>
    store.append(Array.from({ length: size }, (_, k) => ({ type: 'Part', tags: [`${round}:${a}`], data: { a, k } })))))
}

/** Each append's events as stored: its last position, its ids in order, and one commit time for all. */
async function expectStoredAsReported(store: EventStore, round: string, results: AppendResult[]): Promise<SequencedEvent[]> {
  const stored: SequencedEvent[] = []
  for (const [a, result] of results.entries()) {
    const events = await store.query([{ tags: [`${round}:${a}`] }])
    expect(events.map((event) => event.position)).toEqual(events.map((_, k) => result.position - BigInt(result.count - 1 - k)))
    expect(events.map((event) => event.id)).toEqual(result.ids)
    expect(events.map((event) => event.data)).toEqual(events.map((_, k) => ({ a, k })))
    stored.push(...events)
  }
  expect(new Set(stored.map((event) => event.recordedAt.getTime())).size).toBe(1)
  return stored
}

test('appends of one group commit that are all written each get their own last position and ids, and every event the commit time', async () => {
  await using fresh = await freshDatabase()
  const store = await openPostgresStore(fresh.url)
  try {
    await store.append({ type: 'First' })
    const results = await appendInOneTick(store, 'plain')
    expect(results.map((result) => [result.position, result.count])).toEqual([[2n, 1], [5n, 3], [7n, 2], [8n, 1], [12n, 4]])
    await expectStoredAsReported(store, 'plain', results)

    // The same through an explicit transaction (an inline projector is attached): the projector
    // sees each event with the position and commit time a reader sees.
    const applied: SequencedEvent[] = []
    const detach = store.attach({ name: 'spy', apply: (event) => void applied.push(event), promote() {}, discard() {} })
    const again = await appendInOneTick(store, 'projected')
    detach()
    expect(again.map((result) => result.position)).toEqual([13n, 16n, 18n, 19n, 23n])
    const stored = await expectStoredAsReported(store, 'projected', again)
    expect(applied).toEqual(stored)
  } finally {
    await store.close()
  }
})
