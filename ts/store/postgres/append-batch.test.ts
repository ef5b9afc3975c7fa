/**
 * The batch function against the memory store as the reference: appends made in one tick share a
 * group commit, and each must get exactly the result it would get from the memory store.
 */
import { afterAll, beforeAll, expect, test } from 'bun:test'
import { freshDatabase, type FreshDatabase } from '../../testing/postgres.ts'
import { MemoryStore } from '../memory/index.ts'
import type { AppendCondition, EventInput, EventStore } from '../types.ts'
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
