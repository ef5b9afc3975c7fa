/**
 * The conformance suite every `EventStore` backend must pass, unchanged (DESIGN.md section 2).
 *
 * Call it from a backend's test file; each test opens a fresh store with `open()` and closes it:
 *
 * @example
 * import { describeConformance } from '../conformance.case.ts'
 * import { MemoryStore } from './memory-store.ts'
 * describeConformance('memory', async () => new MemoryStore())
 */
import { describe, expect, test } from 'bun:test'
import { followShared, storeStats, type InspectableStore, type SharedFollower } from './core/store.ts'
import { execute } from './execute.ts'
import {
  storeTransaction,
  type EventInput,
  type EventMap,
  type EventStore,
  type FollowBatch,
  type InlineProjector,
  type Query,
  type SequencedEvent,
  type StoreHooks,
  type StoreOptions,
  type StoreTransaction,
  type TransactionalStore,
} from './types.ts'

/** Opens a fresh, empty store of one backend, with these shared options. */
export type OpenStore = (options?: StoreOptions & StoreHooks) => Promise<EventStore>

/** Collect an iterable, also when creating it throws (a backend may validate eagerly or lazily). */
async function collect<T>(make: () => AsyncIterable<T>): Promise<T[]> {
  const out: T[] = []
  for await (const item of make()) out.push(item)
  return out
}

/** The `code` a promise rejects with, or undefined when it resolves. */
async function codeOf(work: () => Promise<unknown> | unknown): Promise<string | undefined> {
  try {
    await work()
  } catch (error) {
    return (error as { code?: string }).code ?? `not a ringstate error: ${String(error)}`
  }
  return undefined
}

function positions(events: readonly SequencedEvent[]): bigint[] {
  return events.map((event) => event.position)
}

function range(from: number, to: number): bigint[] {
  const out: bigint[] = []
  for (let i = from; i <= to; i++) out.push(BigInt(i))
  return out
}

/** Ten events over three types and a few tags, positions 1..10. */
const fixture: EventInput[] = [
  { type: 'CourseDefined', tags: ['course:c1'], data: { capacity: 2 } },
  { type: 'CourseDefined', tags: ['course:c2'], data: { capacity: 5 } },
  { type: 'StudentSubscribed', tags: ['course:c1', 'student:s1'] },
  { type: 'StudentSubscribed', tags: ['course:c2', 'student:s1'] },
  { type: 'StudentSubscribed', tags: ['course:c1', 'student:s2'] },
  { type: 'CourseRenamed', tags: ['course:c1'], data: { title: 'Algebra' } },
  { type: 'StudentSubscribed', tags: ['course:c2', 'student:s3'] },
  { type: 'StudentUnsubscribed', tags: ['course:c1', 'student:s2'] },
  { type: 'CourseRenamed', tags: ['course:c2'], data: { title: 'Geometry' } },
  { type: 'StudentSubscribed', tags: ['course:c1', 'student:s3'] },
]

async function seededStore(store: EventStore): Promise<void> {
  await store.append(fixture)
}

/** A test body runner that opens a fresh store for each test and always closes it. */
export function withFreshStore<E extends EventMap = EventMap>(open: OpenStore, options?: StoreOptions & StoreHooks) {
  return (body: (store: EventStore<E>) => Promise<void>) => async (): Promise<void> => {
    const store = await open(options)
    try {
      // A backend stores any events; a test that speaks one example's event map reads the fresh
      // store through that map, exactly as `openStore<E>` does.
      await body(store as unknown as EventStore<E>)
    } finally {
      await store.close()
    }
  }
}

/**
 * Register the conformance tests for one backend under `describe(name)`.
 * `open` must return a fresh, empty store each time.
 */
export function describeConformance(name: string, open: OpenStore, kind: StoreTransaction['backend']): void {
  const withStore = withFreshStore(open)

  const seeded = seededStore

  describe(`${name}: appending and reading`, () => {
    test('an empty store has head 0 and no events', withStore(async (store) => {
      expect(await store.head()).toBe(0n)
      expect(await store.query('all')).toEqual([])
    }))

    test('an append returns the position of its last event and its count; positions start at 1', withStore(async (store) => {
      expect(await store.append({ type: 'A' })).toEqual({ position: 1n, count: 1, ids: [expect.any(String)] })
      expect(await store.append([{ type: 'B' }, { type: 'C' }, { type: 'D' }])).toEqual({ position: 4n, count: 3, ids: [expect.any(String), expect.any(String), expect.any(String)] })
      expect(await store.head()).toBe(4n)
      expect(positions(await store.query('all'))).toEqual(range(1, 4))
    }))

    test('events come back as they were appended, with deduplicated tags, metadata, id and time', withStore(async (store) => {
      const before = Date.now()
      await store.append({
        type: 'Thing',
        tags: ['a:1', 'b:2', 'a:1'],
        data: { nested: { list: [1, 'two', null, true], n: -1.5 }, text: 'é😀' },
        metadata: { correlationId: 'c-1' },
        id: 'thing-1',
      })
      await store.append({ type: 'Empty' })
      const [thing, empty] = await store.query('all')
      expect(thing).toEqual({
        position: 1n,
        type: 'Thing',
        tags: ['a:1', 'b:2'],
        data: { nested: { list: [1, 'two', null, true], n: -1.5 }, text: 'é😀' },
        metadata: { correlationId: 'c-1' },
        id: 'thing-1',
        recordedAt: expect.any(Date),
      })
      expect(thing!.recordedAt.getTime()).toBeGreaterThanOrEqual(before - 1000)
      expect(empty).toMatchObject({ position: 2n, type: 'Empty', tags: [], data: null, metadata: {} })
      expect(typeof empty!.id).toBe('string')
      expect(empty!.id.length).toBeGreaterThan(0)
    }))

    test('a query item with types matches any of those types', withStore(async (store) => {
      await seeded(store)
      expect(positions(await store.query([{ types: ['CourseDefined'] }]))).toEqual([1n, 2n])
      expect(positions(await store.query([{ types: ['CourseDefined', 'CourseRenamed'] }]))).toEqual([1n, 2n, 6n, 9n])
    }))

    test('a query item with tags matches events carrying all of them', withStore(async (store) => {
      await seeded(store)
      expect(positions(await store.query([{ tags: ['course:c1'] }]))).toEqual([1n, 3n, 5n, 6n, 8n, 10n])
      expect(positions(await store.query([{ tags: ['course:c1', 'student:s2'] }]))).toEqual([5n, 8n])
      expect(positions(await store.query([{ tags: ['course:c1', 'student:s9'] }]))).toEqual([])
    }))

    test('a query item with types and tags needs both', withStore(async (store) => {
      await seeded(store)
      const query: Query = [{ types: ['StudentSubscribed'], tags: ['student:s1'] }]
      expect(positions(await store.query(query))).toEqual([3n, 4n])
    }))

    test('a query matches events that match any of its items, once each, in position order', withStore(async (store) => {
      await seeded(store)
      const query: Query = [
        { types: ['CourseRenamed'] },
        { tags: ['student:s3'] },
        { types: ['CourseRenamed'], tags: ['course:c2'] },
      ]
      expect(positions(await store.query(query))).toEqual([6n, 7n, 9n, 10n])
    }))

    test("'all' matches every event", withStore(async (store) => {
      await seeded(store)
      expect(positions(await store.query('all'))).toEqual(range(1, 10))
    }))

    test('after, limit and backwards select a window of the matching events', withStore(async (store) => {
      await seeded(store)
      const subscribed: Query = [{ types: ['StudentSubscribed'] }]
      expect(positions(await store.query(subscribed, { after: 4n }))).toEqual([5n, 7n, 10n])
      expect(positions(await store.query(subscribed, { limit: 2 }))).toEqual([3n, 4n])
      expect(positions(await store.query(subscribed, { after: 3n, limit: 2 }))).toEqual([4n, 5n])
      expect(positions(await store.query(subscribed, { backwards: true }))).toEqual([10n, 7n, 5n, 4n, 3n])
      expect(positions(await store.query(subscribed, { backwards: true, limit: 1 }))).toEqual([10n])
      expect(positions(await store.query(subscribed, { backwards: true, after: 4n }))).toEqual([10n, 7n, 5n])
      expect(positions(await store.query('all', { after: 10n }))).toEqual([])
      expect(positions(await store.query('all', { after: 99n }))).toEqual([])
      expect(positions(await store.query('all', { limit: 0 }))).toEqual([])
    }))

    test('read streams a large log in order, across batches', withStore(async (store) => {
      const events: EventInput[] = []
      for (let i = 0; i < 2500; i++) {
        events.push({ type: i % 2 === 0 ? 'Even' : 'Odd', tags: [`n:${i % 7}`], data: { i } })
      }
      await store.append(events.slice(0, 1200))
      await store.append(events.slice(1200))
      const all = await collect(() => store.read('all'))
      expect(positions(all)).toEqual(range(1, 2500))
      expect(all.map((event) => (event.data as { i: number }).i)).toEqual(range(0, 2499).map(Number))
      const odd = await collect(() => store.read([{ types: ['Odd'] }], { after: 100n }))
      expect(odd.length).toBe(1200)
      expect(odd[0]!.position).toBe(102n)
      expect(odd.at(-1)!.position).toBe(2500n)
      const window = await collect(() => store.read('all', { after: 900n, limit: 1500 }))
      expect(positions(window)).toEqual(range(901, 2400))
      const back = await collect(() => store.read('all', { backwards: true, limit: 1300 }))
      expect(positions(back)).toEqual(range(1201, 2500).reverse())
      const tagged = await collect(() => store.read([{ tags: ['n:3'] }]))
      expect(tagged.length).toBe(events.filter((event) => event.tags![0] === 'n:3').length)
    }))

    test('a reader can stop early without reading the rest', withStore(async (store) => {
      await store.append(Array.from({ length: 50 }, () => ({ type: 'A' })))
      let seen = 0
      for await (const event of store.read('all')) {
        seen++
        if (event.position === 3n) break
      }
      expect(seen).toBe(3)
      expect(await store.head()).toBe(50n)
    }))

    test('concurrent appends get distinct, gapless positions in the order their results report', withStore(async (store) => {
      const results = await Promise.all(
        Array.from({ length: 40 }, (_, i) =>
          store.append(Array.from({ length: (i % 3) + 1 }, () => ({ type: 'A', tags: [`writer:${i}`] }))),
        ),
      )
      const total = results.reduce((sum, result) => sum + result.count, 0)
      expect(await store.head()).toBe(BigInt(total))
      const all = await store.query('all')
      expect(positions(all)).toEqual(range(1, total))
      for (let i = 0; i < results.length; i++) {
        const mine = all.filter((event) => event.tags[0] === `writer:${i}`)
        expect(mine.length).toBe(results[i]!.count)
        expect(mine.at(-1)!.position).toBe(results[i]!.position)
        // An append's events are contiguous.
        expect(mine[0]!.position).toBe(results[i]!.position - BigInt(results[i]!.count) + 1n)
      }
    }))
  })

  describe(`${name}: append conditions`, () => {
    test('an append fails when an event matching the condition exists, naming the first conflict', withStore(async (store) => {
      await seeded(store)
      const condition = { failIfEventsMatch: [{ types: ['CourseRenamed'] }] as Query }
      let error: unknown
      try {
        await store.append({ type: 'X' }, condition)
      } catch (caught) {
        error = caught
      }
      expect(error).toMatchObject({ code: 'APPEND_CONDITION_FAILED', conflict: 6n })
      expect((error as { condition: unknown }).condition).toEqual(condition)
      expect(await store.head()).toBe(10n)
    }))

    test('an append succeeds when no event matches the condition', withStore(async (store) => {
      await seeded(store)
      const result = await store.append({ type: 'X' }, { failIfEventsMatch: [{ tags: ['course:c9'] }] })
      expect(result).toEqual({ position: 11n, count: 1, ids: [expect.any(String)] })
    }))

    test('the condition only looks at events after `after`', withStore(async (store) => {
      await seeded(store)
      const failIfEventsMatch: Query = [{ types: ['CourseRenamed'] }]
      expect(await codeOf(() => store.append({ type: 'X' }, { failIfEventsMatch, after: 9n }))).toBeUndefined()
      const error = await store.append({ type: 'X' }, { failIfEventsMatch, after: 6n }).catch((caught) => caught)
      expect(error).toMatchObject({ code: 'APPEND_CONDITION_FAILED', conflict: 9n })
      expect(await store.head()).toBe(11n)
    }))

    test("a condition on 'all' with after = head succeeds, and fails once anything was appended", withStore(async (store) => {
      await store.append({ type: 'A' })
      const head = await store.head()
      await store.append({ type: 'B' }, { failIfEventsMatch: 'all', after: head })
      expect(await codeOf(() => store.append({ type: 'C' }, { failIfEventsMatch: 'all', after: head }))).toBe('APPEND_CONDITION_FAILED')
    }))

    test('conditions see earlier appends of the same batch: of racing appends exactly one wins', withStore(async (store) => {
      const condition = { failIfEventsMatch: [{ types: ['NameClaimed'], tags: ['name:ada'] }] as Query }
      const attempts = Array.from({ length: 8 }, (_, i) =>
        store.append({ type: 'NameClaimed', tags: ['name:ada'], data: { by: i } }, condition),
      )
      const settled = await Promise.allSettled(attempts)
      const won = settled.filter((outcome) => outcome.status === 'fulfilled')
      const lost = settled.filter((outcome) => outcome.status === 'rejected')
      expect(won.length).toBe(1)
      const winner = (won[0] as PromiseFulfilledResult<{ position: bigint }>).value.position
      for (const outcome of lost) {
        expect((outcome as PromiseRejectedResult).reason).toMatchObject({ code: 'APPEND_CONDITION_FAILED', conflict: winner })
      }
      expect(await store.head()).toBe(1n)
    }))

    test('racing appends with disjoint conditions all succeed', withStore(async (store) => {
      const results = await Promise.all(
        Array.from({ length: 6 }, (_, i) =>
          store.append({ type: 'NameClaimed', tags: [`name:n${i}`] }, { failIfEventsMatch: [{ tags: [`name:n${i}`] }] }),
        ),
      )
      expect(results.map((result) => result.count)).toEqual([1, 1, 1, 1, 1, 1])
      expect(await store.head()).toBe(6n)
    }))
  })

  describe(`${name}: idempotency`, () => {
    test('re-appending stored ids returns the first result and writes nothing', withStore(async (store) => {
      await store.append({ type: 'Before' })
      const batch = [
        { type: 'A', id: 'id-1' },
        { type: 'B', id: 'id-2' },
      ]
      const first = await store.append(batch)
      await store.append({ type: 'After' })
      expect(await store.append(batch)).toEqual(first)
      expect(await store.head()).toBe(4n)
    }))

    test('idempotency is checked before the condition', withStore(async (store) => {
      const condition = { failIfEventsMatch: [{ types: ['A'] }] as Query }
      const first = await store.append({ type: 'A', id: 'once' }, condition)
      expect(await store.append({ type: 'A', id: 'once' }, condition)).toEqual(first)
    }))

    test('an append mixing stored and new ids is INVALID_EVENT and writes nothing', withStore(async (store) => {
      await store.append({ type: 'A', id: 'old' })
      expect(await codeOf(() => store.append([{ type: 'A', id: 'old' }, { type: 'A', id: 'new' }]))).toBe('INVALID_EVENT')
      expect(await codeOf(() => store.append([{ type: 'A', id: 'old' }, { type: 'A' }]))).toBe('INVALID_EVENT')
      expect(await store.head()).toBe(1n)
      expect(await codeOf(() => store.append({ type: 'A', id: 'new' }))).toBeUndefined()
    }))

    test('concurrent appends of the same id store it once and all get the same result', withStore(async (store) => {
      await store.append({ type: 'Before' })
      const results = await Promise.all(
        Array.from({ length: 10 }, () => store.append({ type: 'Payment', id: 'payment-7', data: { amount: 5 } })),
      )
      for (const result of results) expect(result).toEqual({ position: 2n, count: 1, ids: [expect.any(String)] })
      expect(positions(await store.query([{ types: ['Payment'] }]))).toEqual([2n])
    }))
  })

  describe(`${name}: bad input is rejected and writes nothing`, () => {
    const cycle: Record<string, unknown> = { name: 'loop' }
    cycle.self = cycle
    const invalidEvents: [string, unknown][] = [
      ['an empty list', []],
      ['a missing type', [{}]],
      ['an empty type', [{ type: '' }]],
      ['a type over 128 characters', [{ type: 'T'.repeat(129) }]],
      ['an empty tag', [{ type: 'A', tags: [''] }]],
      ['a tag over 256 characters', [{ type: 'A', tags: ['t'.repeat(257)] }]],
      ['a BigInt in data', [{ type: 'A', data: { amount: 10n } }]],
      ['a cycle in data', [{ type: 'A', data: cycle }]],
      ['a function in data', [{ type: 'A', data: { f() {} } }]],
      ['a symbol in data', [{ type: 'A', data: { s: Symbol('s') } }]],
      ['NaN in data', [{ type: 'A', data: { n: Number.NaN } }]],
      ['metadata that is not an object', [{ type: 'A', metadata: ['x'] }]],
      ['a payload over maxEventBytes', [{ type: 'A', data: 'x'.repeat((1 << 20) + 1) }]],
      ['the same id twice', [{ type: 'A', id: 'dup' }, { type: 'B', id: 'dup' }]],
      ['more events than maxEventsPerAppend', Array.from({ length: 10_001 }, () => ({ type: 'A' }))],
      ['a valid event followed by an invalid one', [{ type: 'A' }, { type: 'B', data: 1n }]],
    ]
    for (const [what, events] of invalidEvents) {
      test(`an append with ${what} is INVALID_EVENT`, withStore(async (store) => {
        await store.append({ type: 'Existing' })
        expect(await codeOf(() => store.append(events as EventInput[]))).toBe('INVALID_EVENT')
        expect(await store.head()).toBe(1n)
      }))
    }

    test('invalid queries are INVALID_QUERY on query, read, subscribe and project', withStore(async (store) => {
      await store.append({ type: 'A' })
      const badQueries = [[], [{}], [{ types: [], tags: [] }], 'everything', [{ types: [''] }]]
      for (const query of badQueries) {
        expect(await codeOf(() => store.query(query as Query))).toBe('INVALID_QUERY')
        expect(await codeOf(() => collect(() => store.read(query as Query)))).toBe('INVALID_QUERY')
        expect(await codeOf(() => collect(() => store.subscribe(query as Query)))).toBe('INVALID_QUERY')
        expect(
          await codeOf(() => store.project({ p: { query: query as Query, initial: 0, apply: (n: number) => n + 1 } })),
        ).toBe('INVALID_QUERY')
      }
    }))

    test('invalid conditions are INVALID_CONDITION and write nothing', withStore(async (store) => {
      const badConditions = [
        { failIfEventsMatch: [] },
        { failIfEventsMatch: [{}] },
        { failIfEventsMatch: 'all', after: -1n },
        { failIfEventsMatch: 'all', after: 1 },
        { after: 0n },
      ]
      for (const condition of badConditions) {
        expect(await codeOf(() => store.append({ type: 'A' }, condition as never))).toBe('INVALID_CONDITION')
      }
      expect(await store.head()).toBe(0n)
    }))

    test('invalid read options are INVALID_OPTIONS', withStore(async (store) => {
      for (const options of [{ after: 1 }, { after: -1n }, { limit: -1 }, { limit: 0.5 }, { backwards: 'yes' }]) {
        expect(await codeOf(() => store.query('all', options as never))).toBe('INVALID_OPTIONS')
      }
    }))

    test('a closed store rejects every call with STORE_CLOSED', async () => {
      const store = await open()
      await store.append({ type: 'A' })
      await store.close()
      expect(await codeOf(() => store.append({ type: 'B' }))).toBe('STORE_CLOSED')
      expect(await codeOf(() => store.query('all'))).toBe('STORE_CLOSED')
      expect(await codeOf(() => collect(() => store.read('all')))).toBe('STORE_CLOSED')
      expect(await codeOf(() => collect(() => store.subscribe('all')))).toBe('STORE_CLOSED')
      expect(await codeOf(() => store.head())).toBe('STORE_CLOSED')
      expect(await codeOf(() => store.project({ p: { query: 'all', initial: 0, apply: (n: number) => n } }))).toBe('STORE_CLOSED')
      expect(await codeOf(() => store.saveSnapshot('s', 1n, new Uint8Array([1])))).toBe('STORE_CLOSED')
      expect(await codeOf(() => store.loadSnapshot('s'))).toBe('STORE_CLOSED')
      expect(await codeOf(() => store.commands())).toBe('STORE_CLOSED')
    })
  })

  describe(`${name}: subscribe`, () => {
    test('a subscription catches up, then delivers new matching events live', withStore(async (store) => {
      await store.append([{ type: 'A', tags: ['k:1'] }, { type: 'B' }, { type: 'A', tags: ['k:2'] }])
      const controller = new AbortController()
      const iterator = store.subscribe([{ types: ['A'] }], { signal: controller.signal })[Symbol.asyncIterator]()
      expect((await iterator.next()).value).toMatchObject({ position: 1n, type: 'A' })
      expect((await iterator.next()).value).toMatchObject({ position: 3n, type: 'A' })
      const pending = iterator.next()
      await store.append({ type: 'B' })
      await store.append({ type: 'A', tags: ['k:3'], data: { live: true } })
      expect((await pending).value).toMatchObject({ position: 5n, type: 'A', tags: ['k:3'], data: { live: true } })
      controller.abort()
      expect(await iterator.next()).toEqual({ done: true, value: undefined })
    }))

    test('a subscription resumes after a position', withStore(async (store) => {
      await store.append([{ type: 'A' }, { type: 'A' }, { type: 'A' }])
      const controller = new AbortController()
      const iterator = store.subscribe('all', { after: 2n, signal: controller.signal })[Symbol.asyncIterator]()
      expect((await iterator.next()).value).toMatchObject({ position: 3n })
      const pending = iterator.next()
      await store.append({ type: 'A' })
      expect((await pending).value).toMatchObject({ position: 4n })
      controller.abort()
      expect((await iterator.next()).done).toBe(true)
    }))

    test('aborting ends a waiting subscription without an error', withStore(async (store) => {
      const controller = new AbortController()
      const received: SequencedEvent[] = []
      let delivered!: () => void
      const firstDelivery = new Promise<void>((resolve) => {
        delivered = resolve
      })
      const consumer = (async () => {
        for await (const event of store.subscribe('all', { signal: controller.signal })) {
          received.push(event)
          delivered()
        }
      })()
      await store.append({ type: 'A' })
      await firstDelivery
      controller.abort()
      await consumer
      expect(positions(received)).toEqual([1n])
    }))

    test('a subscription whose signal is already aborted yields nothing', withStore(async (store) => {
      await store.append({ type: 'A' })
      const controller = new AbortController()
      controller.abort()
      expect(await collect(() => store.subscribe('all', { signal: controller.signal }))).toEqual([])
    }))

    test('several subscribers each receive every matching event', withStore(async (store) => {
      const controller = new AbortController()
      const take = async (query: Query, count: number) => {
        const out: bigint[] = []
        for await (const event of store.subscribe(query, { signal: controller.signal })) {
          out.push(event.position)
          if (out.length === count) break
        }
        return out
      }
      const first = take('all', 4)
      const second = take([{ types: ['B'] }], 2)
      await store.append({ type: 'A' })
      await store.append([{ type: 'B' }, { type: 'A' }])
      await store.append({ type: 'B' })
      expect(await first).toEqual([1n, 2n, 3n, 4n])
      expect(await second).toEqual([2n, 4n])
      controller.abort()
    }))

    test('closing the store ends a waiting subscription', async () => {
      const store = await open()
      const iterator = store.subscribe('all')[Symbol.asyncIterator]()
      const pending = iterator.next()
      await store.close()
      // The rule on every backend: the subscription ends quietly.
      expect(await pending).toEqual({ done: true, value: undefined })
    })
  })

  describe(`${name}: project`, () => {
    const courseProjectors = {
      capacity: {
        query: [{ types: ['CourseDefined'], tags: ['course:c1'] }] as Query,
        initial: 0,
        apply: (_: number, event: SequencedEvent) => (event.data as { capacity: number }).capacity,
      },
      subscribers: {
        query: [{ types: ['StudentSubscribed', 'StudentUnsubscribed'], tags: ['course:c1'] }] as Query,
        initial: 0,
        apply: (count: number, event: SequencedEvent) => count + (event.type === 'StudentSubscribed' ? 1 : -1),
      },
    }

    test('project folds each projector over its own events and returns a condition', withStore(async (store) => {
      await seeded(store)
      const { states, condition } = await store.project(courseProjectors)
      expect(states).toEqual({ capacity: 2, subscribers: 2 })
      expect(condition).toEqual({
        failIfEventsMatch: [...(courseProjectors.capacity.query as never[]), ...(courseProjectors.subscribers.query as never[])],
        after: 10n,
      })
    }))

    test('the condition is after the last matching event, not the head', withStore(async (store) => {
      await seeded(store)
      await store.append({ type: 'Unrelated' })
      const { condition } = await store.project({
        renamed: { query: [{ types: ['CourseRenamed'] }], initial: [] as string[], apply: (titles: string[], event: SequencedEvent) => [...titles, (event.data as { title: string }).title] },
      })
      expect(condition.after).toBe(9n)
    }))

    test('when nothing matched, states are initial and after is undefined', withStore(async (store) => {
      await store.append({ type: 'Unrelated' })
      const { states, condition } = await store.project(courseProjectors)
      expect(states).toEqual({ capacity: 0, subscribers: 0 })
      expect(condition.after).toBeUndefined()
      // So the append fails on any matching event, however early.
      expect(await store.append({ type: 'StudentSubscribed', tags: ['course:c1', 'student:s1'] }, condition)).toEqual({ position: 2n, count: 1, ids: [expect.any(String)] })
    }))

    test("a projector on 'all' makes the condition 'all'", withStore(async (store) => {
      await seeded(store)
      const { states, condition } = await store.project({
        count: { query: 'all', initial: 0, apply: (n: number) => n + 1 },
        c1: { query: [{ tags: ['course:c1'] }], initial: 0, apply: (n: number) => n + 1 },
      })
      expect(states).toEqual({ count: 10, c1: 6 })
      expect(condition).toEqual({ failIfEventsMatch: 'all', after: 10n })
    }))

    test('appending with the projected condition succeeds, also after unrelated appends', withStore(async (store) => {
      await seeded(store)
      const { condition } = await store.project(courseProjectors)
      await store.append({ type: 'StudentSubscribed', tags: ['course:c2', 'student:s9'] })
      const result = await store.append({ type: 'StudentSubscribed', tags: ['course:c1', 'student:s9'] }, condition)
      expect(result).toEqual({ position: 12n, count: 1, ids: [expect.any(String)] })
    }))

    test('appending with the projected condition fails after an interleaving matching append', withStore(async (store) => {
      await seeded(store)
      const { condition } = await store.project(courseProjectors)
      await store.append({ type: 'StudentSubscribed', tags: ['course:c1', 'student:s8'] })
      const error = await store
        .append({ type: 'StudentSubscribed', tags: ['course:c1', 'student:s9'] }, condition)
        .catch((caught) => caught)
      expect(error).toMatchObject({ code: 'APPEND_CONDITION_FAILED', conflict: 11n })
      expect(await store.head()).toBe(11n)
    }))
  })

  describe(`${name}: commands audit, inline projectors and snapshots`, () => {
    test('an append with a command records it with the position of its last event', withStore(async (store) => {
      await store.append({ type: 'Plain' })
      await store.append([{ type: 'A' }, { type: 'B' }], undefined, {
        command: { type: 'DoThing', data: { n: 1 }, metadata: { user: 'u1' } },
      })
      await store.append({ type: 'C' }, undefined, { command: { type: 'Other' } })
      const rows = await store.commands()
      expect(rows).toEqual([
        { id: expect.any(BigInt), type: 'DoThing', data: { n: 1 }, metadata: { user: 'u1' }, position: 3n, recordedAt: expect.any(Date) },
        { id: expect.any(BigInt), type: 'Other', data: null, metadata: {}, position: 4n, recordedAt: expect.any(Date) },
      ])
      expect(rows[1]!.id > rows[0]!.id).toBe(true)
      expect((await store.commands({ after: rows[0]!.id })).map((row) => row.type)).toEqual(['Other'])
      expect((await store.commands({ limit: 1 })).map((row) => row.type)).toEqual(['DoThing'])
    }))

    test('a failed append records no command', withStore(async (store) => {
      await store.append({ type: 'A' })
      const outcome = await codeOf(() =>
        store.append({ type: 'A' }, { failIfEventsMatch: [{ types: ['A'] }] }, { command: { type: 'Refused' } }),
      )
      expect(outcome).toBe('APPEND_CONDITION_FAILED')
      expect(await store.commands()).toEqual([])
    }))

    const nameTaken = (name: string) => ({
      query: [{ types: ['NameClaimed', 'NameReleased'], tags: [`name:${name}`] }] as Query,
      initial: false,
      apply: (_: boolean, event: SequencedEvent) => event.type === 'NameClaimed',
    })
    const claim = (name: string) => ({ type: 'ClaimName', data: { name }, metadata: { user: 'u1' } })

    test('execute appends under the projected condition and records the command', withStore(async (store) => {
      await store.append({ type: 'NameClaimed', tags: ['name:bob'] })
      const result = await execute(store, claim('ada'), async ({ command, project }) => {
        const { taken } = await project({ taken: nameTaken(command.data.name) })
        if (taken) throw new Error('name is taken')
        return { type: 'NameClaimed', tags: [`name:${command.data.name}`] }
      })
      expect(result).toEqual({ position: 2n, count: 1, ids: [expect.any(String)] })
      const rows = await store.commands()
      expect(rows).toEqual([
        { id: expect.any(BigInt), type: 'ClaimName', data: { name: 'ada' }, metadata: { user: 'u1' }, position: 2n, recordedAt: expect.any(Date) },
      ])
    }))

    test('execute refuses with COMMAND_FAILED when the handler throws, appending and recording nothing', withStore(async (store) => {
      await store.append({ type: 'NameClaimed', tags: ['name:ada'] })
      const error = await execute(store, claim('ada'), async ({ command, project }) => {
        const { taken } = await project({ taken: nameTaken(command.data.name) })
        if (taken) throw new Error('name is taken')
        return { type: 'NameClaimed', tags: [`name:${command.data.name}`] }
      }).catch((caught) => caught)
      expect(error).toMatchObject({ code: 'COMMAND_FAILED' })
      expect((error as Error).cause).toBeInstanceOf(Error)
      expect(((error as Error).cause as Error).message).toBe('name is taken')
      expect(await store.head()).toBe(1n)
      expect(await store.commands()).toEqual([])
    }))

    test('execute runs the handler again on fresh state after a conflicting append', withStore(async (store) => {
      const seen: boolean[] = []
      const error = await execute(
        store,
        claim('ada'),
        async ({ command, project, attempt }) => {
          const { taken } = await project({ taken: nameTaken(command.data.name) })
          seen.push(taken)
          // Another writer claims the name between this decision and its append.
          if (attempt === 1) await store.append({ type: 'NameClaimed', tags: ['name:ada'] })
          if (taken) throw new Error('name is taken')
          return { type: 'NameClaimed', tags: ['name:ada'] }
        },
        { baseDelayMs: 0 },
      ).catch((caught) => caught)
      expect(seen).toEqual([false, true])
      expect(error).toMatchObject({ code: 'COMMAND_FAILED' })
      expect(await store.head()).toBe(1n)
    }))

    test('execute gives up with RETRIES_EXHAUSTED after maxAttempts conflicts', withStore(async (store) => {
      let runs = 0
      const error = await execute(
        store,
        { type: 'Count' },
        async ({ project }) => {
          runs++
          await project({ n: { query: [{ types: ['Tick'] }], initial: 0, apply: (n: number) => n + 1 } })
          await store.append({ type: 'Tick' })
          return { type: 'Tick' }
        },
        { maxAttempts: 3, baseDelayMs: 0 },
      ).catch((caught) => caught)
      expect(runs).toBe(3)
      expect(error).toMatchObject({ code: 'RETRIES_EXHAUSTED', attempts: 3 })
      expect((error as Error).cause).toMatchObject({ code: 'APPEND_CONDITION_FAILED' })
      expect(await store.head()).toBe(3n)
      expect(await store.commands()).toEqual([])
    }))

    test('an inline projector sees every written event before commit and is promoted after', withStore(async (store) => {
      const log: string[] = []
      const projector: InlineProjector = {
        name: 'recorder',
        apply: (event) => {
          log.push(`apply ${event.position} ${event.type}`)
        },
        promote: () => {
          log.push('promote')
        },
        discard: () => {
          log.push('discard')
        },
      }
      const detach = store.attach(projector)
      await store.append([{ type: 'A' }, { type: 'B' }])
      expect(log).toEqual(['apply 1 A', 'apply 2 B', 'promote'])
      detach()
      await store.append({ type: 'C' })
      expect(log).toEqual(['apply 1 A', 'apply 2 B', 'promote'])
    }))

    test('a projector that throws fails its append, is discarded, and other appends still commit', withStore(async (store) => {
      // Models a real inline projector: a pending version built by apply, kept by promote, dropped by discard.
      let pending: string[] = []
      let committed: string[] = []
      let discards = 0
      store.attach({
        name: 'picky',
        apply: (event) => {
          if (event.type === 'Poison') throw new Error('cannot apply Poison')
          pending.push(event.type)
        },
        promote: () => {
          committed = [...committed, ...pending]
          pending = []
        },
        discard: () => {
          discards++
          pending = []
        },
      })
      const outcomes = await Promise.allSettled([
        store.append({ type: 'Good1' }),
        store.append({ type: 'Poison' }),
        store.append({ type: 'Good2' }),
      ])
      expect(outcomes.map((outcome) => outcome.status)).toEqual(['fulfilled', 'rejected', 'fulfilled'])
      expect(((outcomes[1] as PromiseRejectedResult).reason as Error).message).toContain('cannot apply Poison')
      expect(discards).toBeGreaterThanOrEqual(1)
      expect((await store.query('all')).map((event) => event.type).sort()).toEqual(['Good1', 'Good2'])
      expect(committed.sort()).toEqual(['Good1', 'Good2'])
    }))

    test('snapshots: the newest one of a name is loaded', withStore(async (store) => {
      expect(await store.loadSnapshot('cache')).toBeUndefined()
      await store.saveSnapshot('cache', 5n, new Uint8Array([1, 2, 3]))
      await store.saveSnapshot('other', 9n, new Uint8Array([9]))
      await store.saveSnapshot('cache', 8n, new Uint8Array([4, 5]))
      const snapshot = await store.loadSnapshot('cache')
      expect(snapshot).toMatchObject({ name: 'cache', position: 8n })
      expect([...snapshot!.data]).toEqual([4, 5])
      expect(snapshot!.createdAt).toBeInstanceOf(Date)
      expect([...(await store.loadSnapshot('other'))!.data]).toEqual([9])
    }))
  })
  describeAdditions(name, open, kind)
}

/** Waits for `check` to hold, polling each event-loop turn, up to `ms` (a deadline, not a sleep). */
async function until(check: () => boolean | Promise<boolean>, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 1))
  }
}

function stats(store: EventStore) {
  return (store as unknown as InspectableStore)[storeStats]()
}

/** The DESIGN.md 2.1 additions, on every backend. */
function describeAdditions(name: string, open: OpenStore, kind: StoreTransaction['backend']): void {
  const withStore = withFreshStore(open)
  const withOptions = (options: StoreOptions & StoreHooks) => withFreshStore(open, options)

  describe(`${name}: append ids and read bounds`, () => {
    test('an append returns the id of every written event in order, generated ones included', withStore(async (store) => {
      const result = await store.append([{ type: 'A', id: 'given-1' }, { type: 'B' }, { type: 'C', id: 'given-3' }])
      const stored = await store.query('all')
      expect(result.ids).toEqual(stored.map((event) => event.id))
      expect(result.ids[0]).toBe('given-1')
      expect(result.ids[2]).toBe('given-3')
      expect(result.ids[1]).toMatch(/^[0-9a-f-]{36}$/)
    }))

    test('retrying an append with the returned ids is answered idempotently with the same ids', withStore(async (store) => {
      const first = await store.append([{ type: 'A' }, { type: 'B' }])
      const retry = await store.append([{ type: 'A', id: first.ids[0] }, { type: 'B', id: first.ids[1] }])
      expect(retry).toEqual(first)
      expect(await store.head()).toBe(2n)
    }))

    test('before is an exclusive upper bound, forwards and backwards, with or without after', withStore(async (store) => {
      await seededStore(store)
      const subscribed: Query = [{ types: ['StudentSubscribed'] }]
      expect(positions(await store.query(subscribed, { before: 7n }))).toEqual([3n, 4n, 5n])
      expect(positions(await store.query(subscribed, { before: 7n, backwards: true }))).toEqual([5n, 4n, 3n])
      expect(positions(await store.query(subscribed, { after: 3n, before: 10n }))).toEqual([4n, 5n, 7n])
      expect(positions(await store.query('all', { before: 4n, backwards: true, limit: 2 }))).toEqual([3n, 2n])
      expect(positions(await store.query('all', { after: 4n, before: 5n }))).toEqual([])
      expect(positions(await store.query('all', { before: 1n }))).toEqual([])
      expect(positions(await store.query('all', { before: 99n }))).toEqual(range(1, 10))
    }))

    test('paging back from the head with before and backwards visits every event once', withStore(async (store) => {
      await store.append(Array.from({ length: 25 }, (_, i) => ({ type: 'A', data: { i } })))
      const seen: bigint[] = []
      let cursor: bigint | undefined
      for (;;) {
        const page = await store.query('all', { backwards: true, limit: 7, ...(cursor === undefined ? {} : { before: cursor }) })
        if (page.length === 0) break
        seen.push(...positions(page))
        cursor = page.at(-1)!.position
      }
      expect(seen).toEqual(range(1, 25).reverse())
    }))

    test('an aborted read or query rejects ABORTED, never a partial result', withOptions({ streamBatchSize: 10 })(async (store) => {
      await store.append(Array.from({ length: 50 }, () => ({ type: 'A' })))
      const aborted = new AbortController()
      aborted.abort()
      expect(await codeOf(() => store.query('all', { signal: aborted.signal }))).toBe('ABORTED')
      const midway = new AbortController()
      const error = await (async () => {
        for await (const event of store.read('all', { signal: midway.signal })) {
          if (event.position === 15n) midway.abort()
        }
      })().catch((caught) => caught)
      expect(error).toMatchObject({ code: 'ABORTED' })
    }))
  })

  describe(`${name}: follow`, () => {
    async function takeBatches(store: EventStore, query: Query, options: { after?: bigint; batchSize?: number }, stop: (batches: FollowBatch[]) => boolean) {
      const controller = new AbortController()
      const batches: FollowBatch[] = []
      for await (const batch of store.follow(query, { ...options, signal: controller.signal })) {
        batches.push(batch)
        if (stop(batches)) break
      }
      controller.abort()
      return batches
    }

    test('follow catches up in batches of batchSize, then reports caught up at the head', withStore(async (store) => {
      await store.append(Array.from({ length: 10 }, (_, i) => ({ type: i % 2 === 0 ? 'Even' : 'Odd' })))
      const batches = await takeBatches(store, [{ types: ['Even'] }], { batchSize: 2 }, (all) => all.at(-1)!.caughtUp)
      expect(batches.flatMap((batch) => positions(batch.events))).toEqual([1n, 3n, 5n, 7n, 9n])
      for (const batch of batches) expect(batch.events.length).toBeLessThanOrEqual(2)
      expect(batches.at(-1)).toMatchObject({ through: 10n, caughtUp: true })
      const throughs = batches.map((batch) => batch.through)
      expect(throughs).toEqual([...throughs].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)))
      for (const batch of batches) for (const event of batch.events) expect(event.position).toBeLessThanOrEqual(batch.through)
    }))

    test('follow resumes after a position and delivers live commits', withStore(async (store) => {
      await store.append([{ type: 'A' }, { type: 'A' }])
      const controller = new AbortController()
      const iterator = store.follow([{ types: ['A'] }], { after: 1n, signal: controller.signal })[Symbol.asyncIterator]()
      expect((await iterator.next()).value).toMatchObject({ through: 2n, caughtUp: true, events: [{ position: 2n }] })
      const next = iterator.next()
      await store.append({ type: 'A', data: { live: 1 } })
      expect((await next).value).toMatchObject({ through: 3n, caughtUp: true, events: [{ position: 3n, data: { live: 1 } }] })
      controller.abort()
      expect((await iterator.next()).done).toBe(true)
    }))

    test('a caught-up follower gets an empty batch when through advances past events it does not match', withStore(async (store) => {
      const controller = new AbortController()
      const iterator = store.follow([{ types: ['Rare'] }], { signal: controller.signal })[Symbol.asyncIterator]()
      const first = iterator.next()
      await store.append({ type: 'Common' })
      let batch = (await first).value as FollowBatch
      // Either the catch-up saw the event (through 1) or it joined at 0 and the tail then advanced.
      while (batch.through < 1n) batch = (await iterator.next()).value as FollowBatch
      expect(batch).toEqual({ events: [], through: 1n, caughtUp: true })
      const next = iterator.next()
      await store.append([{ type: 'Common' }, { type: 'Common' }])
      expect((await next).value).toEqual({ events: [], through: 3n, caughtUp: true })
      const rare = iterator.next()
      await store.append([{ type: 'Common' }, { type: 'Rare' }, { type: 'Common' }])
      expect((await rare).value).toMatchObject({ events: [{ position: 5n, type: 'Rare' }], through: 6n, caughtUp: true })
      controller.abort()
      expect((await iterator.next()).done).toBe(true)
    }))

    test('follow ends quietly when its store closes', async () => {
      const store = await open()
      const iterator = store.follow('all')[Symbol.asyncIterator]()
      await store.append({ type: 'A' })
      expect((await iterator.next()).value).toMatchObject({ caughtUp: true })
      const pending = iterator.next()
      await store.close()
      expect(await pending).toEqual({ done: true, value: undefined })
    })

    test('invalid follow arguments are rejected', withStore(async (store) => {
      expect(await codeOf(() => collect(() => store.follow([])))).toBe('INVALID_QUERY')
      expect(await codeOf(() => collect(() => store.follow('all', { batchSize: 0 })))).toBe('INVALID_OPTIONS')
      expect(await codeOf(() => collect(() => store.follow('all', { after: -1n })))).toBe('INVALID_OPTIONS')
    }))

    test("live followers share one tail reader, which takes this store's own commits from its writer without a read; aborting releases it", withStore(async (store) => {
      await store.append({ type: 'Start' })
      const controller = new AbortController()
      const received = Array.from({ length: 25 }, () => [] as bigint[])
      const consumers = received.map(async (into, i) => {
        const query: Query = i % 2 === 0 ? 'all' : [{ types: ['Tick'] }]
        const events = i % 3 === 0
          ? store.subscribe(query, { signal: controller.signal })
          : (async function* () {
              for await (const batch of store.follow(query, { signal: controller.signal })) yield* batch.events
            })()
        for await (const event of events) into.push(event.position)
      })
      await until(() => stats(store).tail.members === 25, 'every follower joined the tail')
      // The first to join had the tail read once: whatever committed before it joined.
      await until(() => stats(store).tail.reads === 1, "the tail's read for the first follower")
      const before = stats(store).tail
      for (let n = 2; n <= 6; n++) {
        await store.append({ type: 'Tick' })
        await until(() => received.every((into) => into.at(-1) === BigInt(n)), `every follower received ${n}`)
      }
      // Each commit was handed to all 25 at once, and none of them was read back from storage.
      expect(stats(store).tail.taken - before.taken).toBe(5)
      expect(stats(store).tail.reads - before.reads).toBe(0)
      expect(received[0]).toEqual(range(1, 6))
      expect(received[1]).toEqual(range(2, 6))
      controller.abort()
      await Promise.all(consumers)
      expect(stats(store).tail).toMatchObject({ members: 0, watching: false })
    }))

    test('a follower too far behind leaves the tail and catches up alone, missing and repeating nothing', withOptions({ streamBatchSize: 5 })(async (store) => {
      const controller = new AbortController()
      const iterator = store.follow('all', { signal: controller.signal })[Symbol.asyncIterator]()
      expect((await iterator.next()).value).toEqual({ events: [], through: 0n, caughtUp: true })
      await until(() => stats(store).tail.members === 1, 'the follower joined the tail')
      // Nobody consumes while 30 commits land: the tail holds at most 4 pages for it, then lets go.
      for (let i = 1; i <= 30; i++) await store.append({ type: 'A', data: { i } })
      await until(() => stats(store).tail.members === 0, 'the lagging follower was dropped from the tail')
      const seen: bigint[] = []
      let through = 0n
      while (through < 30n) {
        const batch = (await iterator.next()).value as FollowBatch
        expect(batch.through).toBeGreaterThanOrEqual(through)
        through = batch.through
        seen.push(...positions(batch.events))
      }
      expect(seen).toEqual(range(1, 30))
      // Caught up again, it rejoins the tail and gets live commits from it.
      await until(() => stats(store).tail.members === 1, 'the follower rejoined the tail')
      const next = iterator.next()
      await store.append({ type: 'B' })
      expect((await next).value).toMatchObject({ events: [{ position: 31n, type: 'B' }], through: 31n, caughtUp: true })
      controller.abort()
      expect((await iterator.next()).done).toBe(true)
    }))

    test('a live event reaching a follower through several query items arrives once; one item needs all its tags', withStore(async (store) => {
      const controller = new AbortController()
      const take = async (query: Query, count: number) => {
        const out: bigint[] = []
        for await (const batch of store.follow(query, { signal: controller.signal })) {
          out.push(...positions(batch.events))
          if (out.length >= count) break
        }
        return out
      }
      const either = take([{ tags: ['a:1'] }, { tags: ['b:1'] }, { types: ['T'], tags: ['b:1'] }], 3)
      const both = take([{ tags: ['b:1', 'a:1'] }], 1)
      const typed = take([{ types: ['T'], tags: ['a:1'] }], 1)
      await until(() => stats(store).tail.members === 3, 'the followers joined the tail')
      await store.append({ type: 'T', tags: ['a:1', 'b:1'] })
      await store.append({ type: 'U', tags: ['a:1'] })
      await store.append({ type: 'U', tags: ['b:1', 'c:1'] })
      expect(await either).toEqual([1n, 2n, 3n])
      expect(await both).toEqual([1n])
      expect(await typed).toEqual([1n])
      controller.abort()
    }))

    test("delivered events share frozen data: no subscriber or follower can change what another sees", withStore(async (store) => {
      const nested = { type: 'A', tags: ['k:1'], data: { items: [{ n: 1 }], name: 'x' }, metadata: { user: { id: 'u1' } } }
      await store.append(nested)
      const controller = new AbortController()
      const subscribed = store.subscribe('all', { signal: controller.signal })[Symbol.asyncIterator]()
      const followed = store.follow([{ types: ['A'] }], { signal: controller.signal })[Symbol.asyncIterator]()
      // Data and metadata are frozen; the event, its tags and its date are the reader's own.
      const forbidden = (event: SequencedEvent) => [
        () => ((event.data as { name: string }).name = 'y'),
        () => (event.data as { items: { n: number }[] }).items.push({ n: 2 }),
        () => ((event.data as { items: { n: number }[] }).items[0]!.n = 2),
        () => ((event.metadata.user as { id: string }).id = 'u2'),
        () => (event.metadata.extra = true),
      ]
      const scribble = (event: SequencedEvent) => {
        ;(event as { type: string }).type = 'B'
        event.tags.push('k:2')
        event.recordedAt.setTime(0)
      }
      const intact = (event: SequencedEvent, position: bigint) => {
        expect(event).toMatchObject({ ...nested, position })
        expect(event.recordedAt.getTime()).toBeGreaterThan(0)
      }
      // Caught up: each reader's events are its own read, frozen all the same.
      const caughtUp = (await subscribed.next()).value as SequencedEvent
      for (const attempt of forbidden(caughtUp)) expect(attempt).toThrow(TypeError)
      intact(caughtUp, 1n)
      expect(((await followed.next()).value as FollowBatch).caughtUp).toBe(true)
      await until(() => stats(store).tail.members === 2, 'both readers joined the tail')
      // Live: the tail reads the event once for both readers.
      const live = subscribed.next()
      await store.append(nested)
      const fromSubscribe = (await live).value as SequencedEvent
      let batch = (await followed.next()).value as FollowBatch
      while (batch.events.length === 0) batch = (await followed.next()).value as FollowBatch
      const fromFollow = batch.events[0]!
      for (const event of [fromSubscribe, fromFollow]) for (const attempt of forbidden(event)) expect(attempt).toThrow(TypeError)
      scribble(fromSubscribe)
      intact(fromFollow, 2n)
      controller.abort()
    }))

    test('a live event is exactly the event a read returns: fields, tag order, key order of data and metadata, date', withStore(async (store) => {
      const controller = new AbortController()
      const live = store.subscribe('all', { signal: controller.signal })[Symbol.asyncIterator]()
      const first = live.next()
      await until(() => stats(store).tail.members === 1, 'the subscriber joined the tail')
      const input = {
        type: 'Odd',
        tags: ['z:1', 'a:1', 'z:1', 'm:é'],
        data: { zeta: 1, alpha: [3, 1e21, -0.5, null], '10': 'ten', '2': 'two', nested: { y: 'ü\n"', b: true } },
        metadata: { user: 'u1', at: '2026-01-01', ['k'.repeat(40)]: {} },
      }
      await store.append([input, { type: 'Plain' }])
      const delivered = [(await first).value as SequencedEvent, (await live.next()).value as SequencedEvent]
      const read = await store.query('all')
      expect(delivered).toEqual(read)
      for (let i = 0; i < 2; i++) {
        expect(JSON.stringify(delivered[i]!.data)).toBe(JSON.stringify(read[i]!.data))
        expect(JSON.stringify(delivered[i]!.metadata)).toBe(JSON.stringify(read[i]!.metadata))
        expect(delivered[i]!.recordedAt.getTime()).toBe(read[i]!.recordedAt.getTime())
      }
      expect(delivered[0]!.tags).toEqual(['z:1', 'a:1', 'm:é'])
      controller.abort()
    }))

    test('shared followers get one event object; the event an ordinary follower changes is its own', withStore(async (store) => {
      const input = { type: 'A', tags: ['k:1'], data: { n: 1 } }
      // Both orders: a shared follower offered the event first, then an ordinary one first.
      for (const order of [['shared', 'own', 'shared'], ['own', 'shared', 'shared']] as const) {
        const controller = new AbortController()
        const head = await store.head()
        const readers = order.map((kind) => {
          const options = { after: head, signal: controller.signal }
          const batches = kind === 'shared' ? (store as unknown as SharedFollower)[followShared]('all', options) : store.follow('all', options)
          return batches[Symbol.asyncIterator]()
        })
        // One at a time, so the tail offers each event to its members in this order.
        for (const [i, reader] of readers.entries()) {
          expect(((await reader.next()).value as FollowBatch).caughtUp).toBe(true)
          await until(() => stats(store).tail.members === i + 1, 'the follower joined the tail')
        }
        await store.append(input)
        const events: SequencedEvent[] = []
        for (const reader of readers) {
          let batch = (await reader.next()).value as FollowBatch
          while (batch.events.length === 0) batch = (await reader.next()).value as FollowBatch
          events.push(batch.events[0]!)
        }
        const [shared, other] = [events.filter((_, i) => order[i] === 'shared'), events[order.indexOf('own')]!]
        expect(shared[0]).toBe(shared[1]!)
        expect(other).not.toBe(shared[0]!)
        ;(other as { type: string }).type = 'B'
        other.tags.push('k:2')
        other.recordedAt.setTime(0)
        expect(shared[0]).toMatchObject({ ...input, position: head + 1n })
        expect(shared[0]!.recordedAt.getTime()).toBeGreaterThan(0)
        controller.abort()
        await until(() => stats(store).tail.members === 0, 'the followers left the tail')
      }
    }))

    test('a follower that breaks out of its loop leaves the tail', withStore(async (store) => {
      await store.append({ type: 'A' })
      for await (const batch of store.follow('all')) {
        expect(stats(store).tail.members).toBe(1)
        if (batch.caughtUp) break
      }
      expect(stats(store).tail.members).toBe(0)
    }))
  })

  describe(`${name}: checkpoints and snapshots`, () => {
    test('an append with a checkpoint stores it atomically with the events', withStore(async (store) => {
      expect(await store.checkpoint('mailer')).toBeUndefined()
      await store.append({ type: 'MailSent' }, undefined, { checkpoint: { name: 'mailer', position: 7n } })
      expect(await store.checkpoint('mailer')).toBe(7n)
      await store.append({ type: 'MailSent' }, undefined, { checkpoint: { name: 'mailer', position: 9n } })
      expect(await store.checkpoint('mailer')).toBe(9n)
      expect(await store.checkpoint('other')).toBeUndefined()
    }))

    test('a refused append leaves its checkpoint unchanged', withStore(async (store) => {
      await store.append({ type: 'A' }, undefined, { checkpoint: { name: 'c', position: 1n } })
      const refused = await codeOf(() =>
        store.append({ type: 'A' }, { failIfEventsMatch: [{ types: ['A'] }] }, { checkpoint: { name: 'c', position: 5n } }),
      )
      expect(refused).toBe('APPEND_CONDITION_FAILED')
      expect(await store.checkpoint('c')).toBe(1n)
    }))

    test('bad checkpoints are INVALID_OPTIONS and write nothing', withStore(async (store) => {
      for (const checkpoint of [{ name: '', position: 1n }, { name: 'c', position: 1 }, { name: 'c', position: -1n }, { name: 'n\u0000ul', position: 1n }]) {
        expect(await codeOf(() => store.append({ type: 'A' }, undefined, { checkpoint: checkpoint as never }))).toBe('INVALID_OPTIONS')
      }
      expect(await codeOf(() => store.checkpoint(''))).toBe('INVALID_OPTIONS')
      expect(await store.head()).toBe(0n)
    }))

    test('saveSnapshot with keep keeps only the newest of that name; deleteSnapshots removes them all', withStore(async (store) => {
      for (const position of [1n, 2n, 3n, 4n]) await store.saveSnapshot('cache', position, new Uint8Array([Number(position)]))
      await store.saveSnapshot('other', 1n, new Uint8Array([9]))
      await store.saveSnapshot('cache', 5n, new Uint8Array([5]), { keep: 2 })
      expect((await store.loadSnapshot('cache'))!.position).toBe(5n)
      await store.deleteSnapshots('cache')
      expect(await store.loadSnapshot('cache')).toBeUndefined()
      expect([...(await store.loadSnapshot('other'))!.data]).toEqual([9])
      // keep: 2 left exactly two: after deleting the newest of them by hand, position 4 remains.
      await store.saveSnapshot('kept', 1n, new Uint8Array([1]))
      await store.saveSnapshot('kept', 2n, new Uint8Array([2]))
      await store.saveSnapshot('kept', 3n, new Uint8Array([3]), { keep: 1 })
      await store.saveSnapshot('kept', 0n, new Uint8Array([0]))
      expect((await store.loadSnapshot('kept'))!.position).toBe(3n)
      await store.saveSnapshot('kept', 4n, new Uint8Array([4]), { keep: 2 })
      await store.deleteSnapshots('kept')
      expect(await store.loadSnapshot('kept')).toBeUndefined()
      expect(await codeOf(() => store.saveSnapshot('s', 1n, new Uint8Array(1), { keep: 0 }))).toBe('INVALID_OPTIONS')
    }))
  })

  describe(`${name}: limits`, () => {
    test('appends past maxPendingAppends are OVERLOADED and write nothing', withOptions({ maxPendingAppends: 3 })(async (store) => {
      const outcomes = await Promise.allSettled(Array.from({ length: 5 }, (_, i) => store.append({ type: 'A', data: { i } })))
      expect(outcomes.map((outcome) => outcome.status)).toEqual(['fulfilled', 'fulfilled', 'fulfilled', 'rejected', 'rejected'])
      expect((outcomes[3] as PromiseRejectedResult).reason).toMatchObject({ code: 'OVERLOADED' })
      expect(await store.head()).toBe(3n)
      expect(await codeOf(() => store.append({ type: 'A' }))).toBeUndefined()
    }))

    test('an append larger than maxAppendBytes is INVALID_EVENT and writes nothing', withOptions({ maxAppendBytes: 1000 })(async (store) => {
      const events = Array.from({ length: 3 }, () => ({ type: 'A', data: 'x'.repeat(400) }))
      expect(await codeOf(() => store.append(events))).toBe('INVALID_EVENT')
      expect(await codeOf(() => store.append(events.slice(0, 2)))).toBeUndefined()
      expect(await store.head()).toBe(2n)
    }))

    test('1,100 events of 1 MiB each are refused quickly by the default maxAppendBytes', withStore(async (store) => {
      const payload = 'x'.repeat((1 << 20) - 64)
      const events = Array.from({ length: 1100 }, () => ({ type: 'Big', data: payload }))
      const started = performance.now()
      const error = await store.append(events).catch((caught) => caught)
      expect(error).toMatchObject({ code: 'INVALID_EVENT' })
      expect((error as Error).message).toContain('maxAppendBytes')
      // It stops after about 64 events' worth of serialising, not 1,100.
      expect(performance.now() - started).toBeLessThan(5000)
      expect(await store.head()).toBe(0n)
    }))

    test('a query or condition with more than maxQueryItems items is refused', withOptions({ maxQueryItems: 3 })(async (store) => {
      const items: Query = Array.from({ length: 4 }, (_, i) => ({ types: [`T${i}`] }))
      expect(await codeOf(() => store.query(items))).toBe('INVALID_QUERY')
      expect(await codeOf(() => collect(() => store.follow(items)))).toBe('INVALID_QUERY')
      expect(await codeOf(() => store.append({ type: 'A' }, { failIfEventsMatch: items }))).toBe('INVALID_CONDITION')
      expect(await store.query(items.slice(0, 3))).toEqual([])
    }))

    test('types, tags and ids with a NUL or a lone surrogate are INVALID_EVENT; in queries INVALID_QUERY', withStore(async (store) => {
      for (const event of [
        { type: 'A\u0000B' },
        { type: 'A\ud800' },
        { type: 'A', tags: ['k:\u0000'] },
        { type: 'A', tags: ['k:\udc00x'] },
        { type: 'A', id: 'id\u0000' },
        { type: 'A', id: '\ud83d' },
      ]) {
        expect(await codeOf(() => store.append(event))).toBe('INVALID_EVENT')
      }
      expect(await codeOf(() => store.query([{ types: ['A\u0000'] }]))).toBe('INVALID_QUERY')
      expect(await codeOf(() => store.query([{ tags: ['\udfff'] }]))).toBe('INVALID_QUERY')
      expect(await store.head()).toBe(0n)
      // A well-formed pair is fine, and NUL inside data is kept.
      await store.append({ type: 'A😀', tags: ['emoji:😀'], data: { text: 'a\u0000b' } })
      expect((await store.query([{ tags: ['emoji:😀'] }]))[0]).toMatchObject({ type: 'A😀', data: { text: 'a\u0000b' } })
    }))

    test('commands() returns every row, with no silent cap', withStore(async (store) => {
      await Promise.all(Array.from({ length: 1100 }, (_, i) => store.append({ type: 'A' }, undefined, { command: { type: 'C', data: { i } } })))
      expect((await store.commands()).length).toBe(1100)
      expect((await store.commands({ limit: 1050 })).length).toBe(1050)
    }))
  })

  describe(`${name}: inline projector failures, attach, close`, () => {
    function recorder() {
      const reported: [unknown, string][] = []
      return { reported, onProjectorError: (error: unknown, projector: string) => void reported.push([error, projector]) }
    }

    test('a throwing promote never strands a caller: all settle, the projector is detached and reported', async () => {
      const hook = recorder()
      const store = await open({ onProjectorError: hook.onProjectorError })
      try {
        let applied = 0
        store.attach({ name: 'brittle', apply: () => void applied++, promote: () => { throw new Error('promote broke') }, discard: () => {} })
        const results = await Promise.all([store.append({ type: 'A' }), store.append({ type: 'B' }), store.append({ type: 'C' })])
        expect(results.map((result) => result.position).sort()).toEqual([1n, 2n, 3n])
        expect(hook.reported.length).toBe(1)
        expect(hook.reported[0]![1]).toBe('brittle')
        expect((hook.reported[0]![0] as Error).message).toBe('promote broke')
        expect(stats(store).writer.failedProjectors).toEqual(['brittle'])
        const appliedBefore = applied
        expect(await store.append({ type: 'D' })).toMatchObject({ position: 4n })
        expect(applied).toBe(appliedBefore)
        expect(await store.head()).toBe(4n)
      } finally {
        await store.close()
      }
    })

    test('a throwing discard never strands a caller: the refused append fails, the others commit', async () => {
      const hook = recorder()
      const store = await open({ onProjectorError: hook.onProjectorError })
      try {
        store.attach({
          name: 'picky',
          apply: (event) => {
            if (event.type === 'Poison') throw new Error('cannot apply Poison')
          },
          promote: () => {},
          discard: () => {
            throw new Error('discard broke')
          },
        })
        const outcomes = await Promise.allSettled([store.append({ type: 'Good1' }), store.append({ type: 'Poison' }), store.append({ type: 'Good2' })])
        expect(outcomes.map((outcome) => outcome.status)).toEqual(['fulfilled', 'rejected', 'fulfilled'])
        expect(hook.reported.map(([error, projector]) => [(error as Error).message, projector])).toEqual([['discard broke', 'picky']])
        expect(await store.append({ type: 'Poison' })).toMatchObject({ count: 1 })
        expect((await store.query('all')).map((event) => event.type).sort()).toEqual(['Good1', 'Good2', 'Poison'])
      } finally {
        await store.close()
      }
    })

    test('attach refuses something that is not an inline projector', withStore(async (store) => {
      for (const bad of [null, {}, { name: 'x', apply: () => {} }, { name: 'x', apply: 1, promote: () => {}, discard: () => {} }]) {
        expect(await codeOf(() => store.attach(bad as never))).toBe('INVALID_OPTIONS')
      }
    }))

    test('close may be called twice; both calls resolve once the store is closed', async () => {
      const store = await open()
      const pending = store.append({ type: 'A' })
      const first = store.close()
      const second = store.close()
      await Promise.all([first, second])
      expect(await pending).toMatchObject({ position: 1n })
      await store.close()
      expect(await codeOf(() => store.head())).toBe('STORE_CLOSED')
      expect(await codeOf(() => store.checkpoint('c'))).toBe('STORE_CLOSED')
      expect(await codeOf(() => collect(() => store.follow('all')))).toBe('STORE_CLOSED')
    })
  })

  describe(`${name}: storeTransaction`, () => {
    const transact = <T>(store: EventStore, fn: (tx: StoreTransaction) => T | Promise<T>) =>
      (store as unknown as TransactionalStore)[storeTransaction](fn)

    test(`the transaction hook runs the function with the ${kind} transaction and returns its value`, withStore(async (store) => {
      const seen: StoreTransaction[] = []
      expect(await transact(store, (tx) => {
        seen.push(tx)
        return 42
      })).toBe(42)
      expect(seen[0]!.backend).toBe(kind)
    }))

    test('a throw inside the transaction rejects with that error and the store keeps working', withStore(async (store) => {
      const error = await transact(store, () => {
        throw new Error('rolled back')
      }).catch((caught) => caught)
      expect((error as Error).message).toBe('rolled back')
      expect(await store.append({ type: 'A' })).toMatchObject({ position: 1n })
    }))

    test('a transaction is serialised with appends: an append made while it runs commits after it', withStore(async (store) => {
      let append!: Promise<unknown>
      const headInside = await transact(store, async () => {
        append = store.append({ type: 'A' })
        // Give the writer several turns of the event loop: it must not start the append meanwhile.
        for (let turn = 0; turn < 5; turn++) await new Promise((resolve) => setImmediate(resolve))
        return stats(store).writer.pendingAppends
      })
      expect(headInside).toBe(1)
      expect(await append).toMatchObject({ position: 1n })
    }))
  })
}
