/**
 * Every route, code and header of DESIGN.md section 8 through `app.request()` (no server), on the
 * memory and SQLite stores; the append and read paths once more on PostgreSQL.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { StateCache } from '../cache/index.ts'
import { defineProjection, startProjections } from '../projections/index.ts'
import { openStore } from '../store/index.ts'
import type { EventStore, Query } from '../store/types.ts'
import { freshDatabase, type FreshDatabase } from '../testing/postgres.ts'
import { Counter, Registry } from 'prom-client'
import { createApp, hashToken, metricsRegistry, waitForProjections, type HttpOptions } from './index.ts'

const dir = mkdtempSync(join(tmpdir(), 'ringstate-http-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))
let files = 0

const READER = 'reader-token-0123456789'
const WRITER = 'writer-token-0123456789'
const ADMIN = 'admin-token-0123456789ab'
const tokens: HttpOptions['tokens'] = [
  { name: 'reader', token: READER, scopes: ['read'] },
  { name: 'writer', sha256: hashToken(WRITER), scopes: ['read', 'append'] },
  { name: 'admin', token: ADMIN, scopes: ['read', 'append', 'admin', 'metrics'] },
]

type Open = (options?: { maxPendingAppends?: number }) => Promise<EventStore>
const backends: [string, Open][] = [
  ['memory', (options) => openStore('memory:', options)],
  ['sqlite', (options) => openStore(`sqlite:${join(dir, `http-${++files}.db`)}`, options)],
]

/** A request helper: JSON bodies, a bearer token, and the parsed answer. */
function client(app: ReturnType<typeof createApp>, token?: string) {
  return async (path: string, init: { method?: string; body?: unknown; headers?: Record<string, string> } = {}) => {
    const headers: Record<string, string> = { ...init.headers }
    if (token !== undefined) headers.authorization = `Bearer ${token}`
    let body: string | undefined
    if (init.body !== undefined) {
      headers['content-type'] = 'application/json'
      body = typeof init.body === 'string' ? init.body : JSON.stringify(init.body)
    }
    const response = await app.request(path, { method: init.method ?? (body === undefined ? 'GET' : 'POST'), headers, body })
    const text = await response.text()
    const type = response.headers.get('content-type') ?? ''
    return { status: response.status, headers: response.headers, type, json: type.includes('json') ? JSON.parse(text) : undefined, text }
  }
}

/**
 * Events whose JSON text is easy to get wrong: unicode (astral, U+2028, escapes), control
 * characters, quotes and backslashes, numbers at the edges of a double, nesting, metadata.
 */
const awkwardEvents = [
  {
    type: 'Ünïcode "quoted" \\ type',
    tags: ['naïve:日本', 'emoji:🎉', 'quote:"x"', 'control:\n\t\u0001\u001f\u007f\\ \u2028'],
    data: { text: 'é\u2028\u2029\u0001\t\n"\\/ 🎉 \uD83D\uDE00', 'ключ': ['ä', { deep: [null, true, false] }] },
    metadata: { correlation: 'ß-𝄞', note: '\u007f\u0000' },
  },
  { type: 'Numbers', data: { big: 2 ** 53 + 2, huge: 1e21, tiny: 5e-324, max: Number.MAX_VALUE, negZero: -0, third: 1 / 3, neg: -12.5e-7 } },
  { type: 'Scalars', data: 'just a string', metadata: { n: 1 } },
  { type: 'Nothing' },
  { type: 'Array', data: [1, 'two', [3], {}] },
]

/**
 * What `GET /v1/events` must answer, made the obvious way: the store's parsed events through one
 * JSON.stringify. The route writes the stored JSON text without parsing it; this is the oracle.
 */
async function expectedPage(
  store: EventStore,
  options: { query?: Query; limit: number; after?: bigint; before?: bigint; backwards?: boolean },
): Promise<string> {
  const { query = 'all', ...read } = options
  const events = await store.query(query, { ...read, limit: options.limit + 1 })
  const next = events.length > options.limit ? String(events[options.limit - 1]!.position) : undefined
  const wire = events.slice(0, options.limit).map((event) => ({
    position: String(event.position),
    type: event.type,
    tags: event.tags,
    data: event.data,
    metadata: event.metadata,
    id: event.id,
    recordedAt: event.recordedAt.toISOString(),
  }))
  return JSON.stringify(next === undefined ? { events: wire } : { events: wire, next })
}

/** The same store behind a plain object: an EventStore that is not one of ringstate's classes. */
function foreign(store: EventStore): EventStore {
  return {
    append: (events, condition, options) => store.append(events, condition, options),
    read: (query, options) => store.read(query, options),
    query: (query, options) => store.query(query, options),
    head: () => store.head(),
  } as Partial<EventStore> as EventStore
}

/**
 * Pages of awkward events, through a ringstate store and through a foreign one: the oracle's bytes.
 * The pages cover a next page and none, full pages with nothing after them (forwards and
 * backwards), bounds on both sides, filters by type and tag, and an empty page.
 */
async function expectByteIdenticalPages(store: EventStore): Promise<void> {
  for (let round = 0; round < 3; round++) await store.append(awkwardEvents)
  for (const app of [createApp(store, { tokens }), createApp(foreign(store), { tokens })]) {
    const call = client(app, READER)
    for (const [path, options] of [
      ['/v1/events?limit=4', { limit: 4 }],
      ['/v1/events?limit=4&after=4', { limit: 4, after: 4n }],
      ['/v1/events?limit=100', { limit: 100 }],
      ['/v1/events?limit=6&backwards=true', { limit: 6, backwards: true }],
      ['/v1/events?limit=5&after=10', { limit: 5, after: 10n }],
      ['/v1/events?limit=3&backwards=true&before=4', { limit: 3, before: 4n, backwards: true }],
      ['/v1/events?limit=2&backwards=true&before=10&after=5', { limit: 2, before: 10n, after: 5n, backwards: true }],
      ['/v1/events?limit=2&after=5&before=8', { limit: 2, after: 5n, before: 8n }],
      ['/v1/events?limit=4&after=15', { limit: 4, after: 15n }],
      ['/v1/events?type=Numbers&limit=2', { query: [{ types: ['Numbers'] }], limit: 2 }],
      ['/v1/events?type=Numbers&limit=1&after=7', { query: [{ types: ['Numbers'] }], limit: 1, after: 7n }],
      [`/v1/events?tag=${encodeURIComponent('emoji:🎉')}&limit=2&backwards=true`, { query: [{ tags: ['emoji:🎉'] }], limit: 2, backwards: true }],
    ] as const) {
      const page = await call(path)
      expect(page.status).toBe(200)
      expect(page.text).toBe(await expectedPage(store, options))
    }
    const body = await call('/v1/query', { body: { query: [{ types: ['Numbers'] }] } })
    const numbers = (await store.query([{ types: ['Numbers'] }])).map((event) => ({ ...event, position: String(event.position), recordedAt: event.recordedAt.toISOString() }))
    expect(body.text).toBe(JSON.stringify({ events: numbers }))
  }
}

for (const [backend, open] of backends) {
  describe(`ringstate/http on ${backend}`, () => {
    test('health: live answers ok, ready answers ok and then 503 STORE_CLOSED once the store is closed', async () => {
      const store = await open()
      const call = client(createApp(store, { tokens }))
      expect((await call('/health/live')).json).toEqual({ status: 'ok' })
      expect(await call('/health/ready')).toMatchObject({ status: 200, json: { status: 'ok' } })
      await store.close()
      const ready = await call('/health/ready')
      expect(ready.status).toBe(503)
      expect(ready.type).toBe('application/problem+json')
      expect(ready.json).toMatchObject({ status: 503, code: 'STORE_CLOSED', title: 'Store closed' })
    })

    test('append: one event or a list, 201 with the position as a string, the count and every id', async () => {
      await using store = disposable(await open())
      const call = client(createApp(store, { tokens }), WRITER)
      const one = await call('/v1/append', { body: { events: { type: 'Opened', tags: ['account:a1'], data: { n: 1 } } } })
      expect(one.status).toBe(201)
      expect(one.json).toEqual({ position: '1', count: 1, ids: [expect.any(String)] })
      expect(one.headers.get('etag')).toBe('"1"')
      const two = await call('/v1/append', { body: { events: [{ type: 'A', id: 'a-1' }, { type: 'B', id: 'b-1', metadata: { user: 'u' } }] } })
      expect(two).toMatchObject({ status: 201, json: { position: '3', count: 2, ids: ['a-1', 'b-1'] } })
      const head = await call('/v1/head')
      expect(head.json).toEqual({ head: '3' })
      expect(head.headers.get('etag')).toBe('"3"')
    })

    test('every answer, success, problem or unknown route, says X-Content-Type-Options: nosniff', async () => {
      await using store = disposable(await open())
      const app = createApp(store, { tokens })
      const answers = [
        await client(app, WRITER)('/v1/append', { body: { events: { type: 'A' } } }),
        await client(app, WRITER)('/v1/append', { body: '{not json' }),
        await client(app)('/v1/head'),
        await client(app, READER)('/v1/nothing-here'),
      ]
      expect(answers.map((answer) => answer.status)).toEqual([201, 400, 401, 404])
      for (const answer of answers) expect(answer.headers.get('x-content-type-options')).toBe('nosniff')
    })

    test('append: stored ids again answer 200 with the same body and write nothing', async () => {
      await using store = disposable(await open())
      const call = client(createApp(store, { tokens }), WRITER)
      const events = [{ type: 'A', id: 'x-1' }, { type: 'A', id: 'x-2' }]
      const first = await call('/v1/append', { body: { events } })
      const again = await call('/v1/append', { body: { events } })
      expect(first.status).toBe(201)
      expect(again.status).toBe(200)
      expect(again.json).toEqual(first.json)
      expect(await store.head()).toBe(2n)
    })

    test('append: Idempotency-Key numbers the events without ids k:0, k:1, ... and a retry is answered 200', async () => {
      await using store = disposable(await open())
      const call = client(createApp(store, { tokens }), WRITER)
      const events = [{ type: 'A' }, { type: 'B', id: 'own' }, { type: 'C' }]
      const first = await call('/v1/append', { body: { events }, headers: { 'idempotency-key': 'req-7' } })
      expect(first).toMatchObject({ status: 201, json: { position: '3', count: 3, ids: ['req-7:0', 'own', 'req-7:2'] } })
      const retry = await call('/v1/append', { body: { events }, headers: { 'idempotency-key': 'req-7' } })
      expect(retry).toMatchObject({ status: 200, json: first.json })
      expect((await store.query('all')).map((e) => e.id)).toEqual(['req-7:0', 'own', 'req-7:2'])
    })

    test('append: bad events are 400 INVALID_EVENT through the store validators, and nothing is written', async () => {
      await using store = disposable(await open())
      const call = client(createApp(store, { tokens }), WRITER)
      for (const body of [
        { events: [{ type: 'ok' }, { tags: ['t:1'] }] },
        { events: [] },
        { events: { type: 'x'.repeat(129) } },
        { events: { type: 'A', tags: 'not-a-list' } },
        { nothing: true },
        '[1, 2',
        '',
      ]) {
        const answer = await call('/v1/append', { method: 'POST', body })
        expect(answer.status).toBe(400)
        expect(answer.type).toBe('application/problem+json')
        expect(answer.json).toMatchObject({ status: 400, code: 'INVALID_EVENT', title: 'Invalid event' })
        expect(typeof answer.json.detail).toBe('string')
      }
      expect(await store.head()).toBe(0n)
    })

    test('append: a condition takes after as a decimal string; a JSON number there is 400 INVALID_CONDITION', async () => {
      await using store = disposable(await open())
      const call = client(createApp(store, { tokens }), WRITER)
      await call('/v1/append', { body: { events: { type: 'Reserved', tags: ['seat:1'] } } })
      const number = await call('/v1/append', {
        body: { events: { type: 'Reserved', tags: ['seat:1'] }, condition: { failIfEventsMatch: [{ tags: ['seat:1'] }], after: 1 } },
      })
      expect(number).toMatchObject({ status: 400, json: { code: 'INVALID_CONDITION' } })
      const empty = await call('/v1/append', { body: { events: { type: 'A' }, condition: { failIfEventsMatch: [] } } })
      expect(empty).toMatchObject({ status: 400, json: { code: 'INVALID_CONDITION' } })
      const ok = await call('/v1/append', {
        body: { events: { type: 'Reserved', tags: ['seat:2'] }, condition: { failIfEventsMatch: [{ tags: ['seat:2'] }], after: '1' } },
      })
      expect(ok.status).toBe(201)
      expect(await store.head()).toBe(2n)
    })

    test('append: a failed condition is 409 APPEND_CONDITION_FAILED with the conflicting position', async () => {
      await using store = disposable(await open())
      const call = client(createApp(store, { tokens }), WRITER)
      await call('/v1/append', { body: { events: [{ type: 'Other' }, { type: 'Reserved', tags: ['seat:1'] }] } })
      const conflict = await call('/v1/append', {
        body: { events: { type: 'Reserved', tags: ['seat:1'] }, condition: { failIfEventsMatch: [{ tags: ['seat:1'] }] } },
      })
      expect(conflict.status).toBe(409)
      expect(conflict.type).toBe('application/problem+json')
      expect(conflict.json).toMatchObject({ status: 409, code: 'APPEND_CONDITION_FAILED', conflict: '2' })
      expect(await store.head()).toBe(2n)
    })

    test('append: If-Match sets condition.after; a conflict under it is 412; it needs a body condition', async () => {
      await using store = disposable(await open())
      const call = client(createApp(store, { tokens }), WRITER)
      const condition = { failIfEventsMatch: [{ tags: ['doc:1'] }] }
      await call('/v1/append', { body: { events: { type: 'Edited', tags: ['doc:1'] } } })
      const fresh = await call('/v1/append', { body: { events: { type: 'Edited', tags: ['doc:1'] }, condition }, headers: { 'if-match': '"1"' } })
      expect(fresh.status).toBe(201)
      expect(fresh.headers.get('etag')).toBe('"2"')
      const stale = await call('/v1/append', { body: { events: { type: 'Edited', tags: ['doc:1'] }, condition }, headers: { 'if-match': '"1"' } })
      expect(stale).toMatchObject({ status: 412, json: { code: 'APPEND_CONDITION_FAILED', status: 412, conflict: '2' } })
      const bare = await call('/v1/append', { body: { events: { type: 'Edited' } }, headers: { 'if-match': '"2"' } })
      expect(bare).toMatchObject({ status: 400, json: { code: 'INVALID_CONDITION' } })
      const garbage = await call('/v1/append', { body: { events: { type: 'Edited' }, condition }, headers: { 'if-match': '"abc"' } })
      expect(garbage).toMatchObject({ status: 400, json: { code: 'INVALID_CONDITION' } })
      const clash = await call('/v1/append', {
        body: { events: { type: 'Edited' }, condition: { ...condition, after: '1' } },
        headers: { 'if-match': '"2"' },
      })
      expect(clash).toMatchObject({ status: 400, json: { code: 'INVALID_CONDITION' } })
      expect(await store.head()).toBe(2n)
    })

    test('append: a body over maxBodyBytes is 413 PAYLOAD_TOO_LARGE, with or without Content-Length', async () => {
      await using store = disposable(await open())
      const app = createApp(store, { tokens, maxBodyBytes: 1000 })
      const body = JSON.stringify({ events: { type: 'Big', data: 'x'.repeat(2000) } })
      const sized = await app.request('/v1/append', {
        method: 'POST',
        headers: { authorization: `Bearer ${WRITER}`, 'content-type': 'application/json' },
        body,
      })
      expect(sized.status).toBe(413)
      expect(await sized.json()).toMatchObject({ code: 'PAYLOAD_TOO_LARGE', status: 413 })
      const chunks = new TextEncoder().encode(body)
      const streamed = await app.request('/v1/append', {
        method: 'POST',
        headers: { authorization: `Bearer ${WRITER}`, 'content-type': 'application/json', 'transfer-encoding': 'chunked' },
        body: new ReadableStream({
          start(controller) {
            for (let i = 0; i < chunks.length; i += 256) controller.enqueue(chunks.subarray(i, i + 256))
            controller.close()
          },
        }),
        duplex: 'half',
      } as RequestInit)
      expect(streamed.status).toBe(413)
      expect(await store.head()).toBe(0n)
    })

    test('append: past maxPendingAppends the store says OVERLOADED: 429 with Retry-After, and the rest are written', async () => {
      await using store = disposable(await open({ maxPendingAppends: 2 }))
      const call = client(createApp(store, { tokens }), WRITER)
      const answers = await Promise.all(Array.from({ length: 40 }, (_, i) => call('/v1/append', { body: { events: { type: 'A', data: { i } } } })))
      const refused = answers.filter((answer) => answer.status === 429)
      expect(refused.length).toBeGreaterThan(0)
      for (const answer of refused) {
        expect(answer.json).toMatchObject({ code: 'OVERLOADED', status: 429 })
        expect(answer.headers.get('retry-after')).toBe('1')
      }
      const written = answers.filter((answer) => answer.status === 201).length
      expect(written + refused.length).toBe(40)
      expect(await store.head()).toBe(BigInt(written))
    })

    test('events: pages are byte for byte JSON.stringify of the parsed events (unicode, escapes, numbers, metadata), from ringstate and foreign stores', async () => {
      await using store = disposable(await open())
      await expectByteIdenticalPages(store)
    })

    test('events: type and tag filter as one item, query as JSON, after/before/limit/backwards with a next cursor', async () => {
      await using store = disposable(await open())
      const call = client(createApp(store, { tokens, readLimit: 3 }), READER)
      for (let i = 1; i <= 8; i++) {
        await store.append({ type: i % 2 === 0 ? 'Even' : 'Odd', tags: [`n:${i}`, i <= 4 ? 'half:low' : 'half:high'], data: { i } })
      }
      const page = await call('/v1/events?limit=2')
      expect(page.status).toBe(200)
      expect(page.json.events.map((e: { position: string }) => e.position)).toEqual(['1', '2'])
      expect(page.json.next).toBe('2')
      expect(page.json.events[0]).toEqual({
        position: '1',
        type: 'Odd',
        tags: ['n:1', 'half:low'],
        data: { i: 1 },
        metadata: {},
        id: expect.any(String),
        recordedAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
      })
      // readLimit caps a larger limit; the next cursor walks on until the last page has no next.
      const positions: string[] = []
      let cursor: string | undefined
      for (let pages = 0; pages < 10; pages++) {
        const answer = await call(`/v1/events?limit=50${cursor ? `&after=${cursor}` : ''}`)
        positions.push(...answer.json.events.map((e: { position: string }) => e.position))
        expect(answer.json.events.length).toBeLessThanOrEqual(3)
        cursor = answer.json.next
        if (cursor === undefined) break
      }
      expect(positions).toEqual(['1', '2', '3', '4', '5', '6', '7', '8'])
      const filtered = await call('/v1/events?type=Even&tag=half:high')
      expect(filtered.json.events.map((e: { position: string }) => e.position)).toEqual(['6', '8'])
      expect(filtered.json.next).toBeUndefined()
      const query = encodeURIComponent(JSON.stringify([{ types: ['Odd'], tags: ['half:low'] }, { tags: ['n:8'] }]))
      expect((await call(`/v1/events?query=${query}`)).json.events.map((e: { position: string }) => e.position)).toEqual(['1', '3', '8'])
      const back = await call('/v1/events?backwards=true&limit=2')
      expect(back.json).toMatchObject({ next: '7' })
      expect(back.json.events.map((e: { position: string }) => e.position)).toEqual(['8', '7'])
      const backOn = await call(`/v1/events?backwards=true&limit=2&before=${back.json.next}`)
      expect(backOn.json.events.map((e: { position: string }) => e.position)).toEqual(['6', '5'])
      const window = await call('/v1/events?after=2&before=5')
      expect(window.json.events.map((e: { position: string }) => e.position)).toEqual(['3', '4'])
    })

    test('events and query: malformed parameters are 400 INVALID_QUERY, a JSON number position included', async () => {
      await using store = disposable(await open())
      const call = client(createApp(store, { tokens }), READER)
      for (const path of [
        '/v1/events?after=abc',
        '/v1/events?after=-1',
        '/v1/events?before=1.5',
        '/v1/events?limit=0',
        '/v1/events?backwards=maybe',
        `/v1/events?query=${encodeURIComponent('[]')}`,
        `/v1/events?query=${encodeURIComponent('[{}]')}`,
        '/v1/events?query=not-json',
        `/v1/events?query=${encodeURIComponent('"all"')}&type=A`,
      ]) {
        const answer = await call(path)
        expect({ path, status: answer.status, code: answer.json.code }).toEqual({ path, status: 400, code: 'INVALID_QUERY' })
      }
      for (const body of [{ query: 'all', after: 5 }, { query: 'all', before: 5 }, { query: [] }, {}, 'nope']) {
        const answer = await call('/v1/query', { method: 'POST', body })
        expect({ body, status: answer.status, code: answer.json.code }).toEqual({ body, status: 400, code: 'INVALID_QUERY' })
      }
    })

    test('query: the JSON body form answers the same shape as GET /v1/events', async () => {
      await using store = disposable(await open())
      const call = client(createApp(store, { tokens }), READER)
      await store.append([{ type: 'A', tags: ['k:1'] }, { type: 'B', tags: ['k:1'] }, { type: 'A', tags: ['k:2'] }])
      const answer = await call('/v1/query', { body: { query: [{ types: ['A'] }], limit: 1 } })
      expect(answer.status).toBe(200)
      expect(answer.json.events.map((e: { position: string }) => e.position)).toEqual(['1'])
      expect(answer.json.next).toBe('1')
      const rest = await call('/v1/query', { body: { query: [{ types: ['A'] }], after: answer.json.next } })
      expect(rest.json).toEqual({ events: [expect.objectContaining({ position: '3', type: 'A', tags: ['k:2'] })] })
      const back = await call('/v1/query', { body: { query: 'all', backwards: true, before: '3' } })
      expect(back.json.events.map((e: { position: string }) => e.position)).toEqual(['2', '1'])
    })

    test('commands: the audit table with ids and positions as strings, paged with after and limit', async () => {
      await using store = disposable(await open())
      const call = client(createApp(store, { tokens }), READER)
      await store.append({ type: 'Opened' }, undefined, { command: { type: 'Open', data: { who: 'ada' }, metadata: { user: 'u1' } } })
      await store.append({ type: 'Closed' }, undefined, { command: { type: 'Close' } })
      const first = await call('/v1/commands?limit=1')
      expect(first.status).toBe(200)
      expect(first.json).toEqual({
        commands: [
          { id: expect.any(String), type: 'Open', data: { who: 'ada' }, metadata: { user: 'u1' }, position: '1', recordedAt: expect.any(String) },
        ],
        next: first.json.commands[0].id,
      })
      const rest = await call(`/v1/commands?after=${first.json.next}`)
      expect(rest.json.commands.map((c: { type: string }) => c.type)).toEqual(['Close'])
      expect(rest.json.next).toBeUndefined()
      expect((await call('/v1/commands?after=x')).json.code).toBe('INVALID_QUERY')
    })

    test('caches: { key, state, position }, 404 NOT_FOUND for an unknown key or cache', async () => {
      await using store = disposable(await open())
      const orders = new StateCache<{ total: number }>({
        name: 'orders',
        key: (event) => event.tags.find((tag) => tag.startsWith('order:'))?.slice(6),
        apply: (state, event) => ({ total: (state?.total ?? 0) + (event.data as { amount: number }).amount }),
      })
      store.attach(orders)
      const call = client(createApp(store, { tokens, caches: { orders } }), READER)
      await store.append([{ type: 'Added', tags: ['order:o1'], data: { amount: 5 } }, { type: 'Added', tags: ['order:o1'], data: { amount: 7 } }])
      expect(await call('/v1/caches/orders/o1')).toMatchObject({ status: 200, json: { key: 'o1', state: { total: 12 }, position: '2' } })
      expect(await call('/v1/caches/orders/o2')).toMatchObject({ status: 404, json: { code: 'NOT_FOUND' } })
      expect(await call('/v1/caches/nope/o1')).toMatchObject({ status: 404, json: { code: 'NOT_FOUND' } })
      expect(await call('/v1/caches/__proto__/o1')).toMatchObject({ status: 404, json: { code: 'NOT_FOUND' } })
    })

    test('caches: Prefer wait with Ringstate-Min-Position waits for the position, else 504 WAIT_TIMEOUT', async () => {
      await using store = disposable(await open())
      const counts = new StateCache<number>({ name: 'counts', key: () => 'all', apply: (n) => (n ?? 0) + 1 })
      store.attach(counts)
      const call = client(createApp(store, { tokens, caches: { counts } }), READER)
      await store.append({ type: 'A' })
      const waiting = call('/v1/caches/counts/all', { headers: { prefer: 'wait=10', 'ringstate-min-position': '2' } })
      await store.append({ type: 'A' })
      const answer = await waiting
      expect(answer).toMatchObject({ status: 200, json: { state: 2, position: '2' } })
      expect(answer.headers.get('preference-applied')).toBe('wait')
      const late = await call('/v1/caches/counts/all', { headers: { prefer: 'wait=0.05', 'ringstate-min-position': '3' } })
      expect(late).toMatchObject({ status: 504, json: { code: 'WAIT_TIMEOUT', status: 504 } })
      const unwaited = await call('/v1/caches/counts/all', { headers: { 'ringstate-min-position': '3' } })
      expect(unwaited).toMatchObject({ status: 504, json: { code: 'WAIT_TIMEOUT' } })
      const reached = await call('/v1/caches/counts/all', { headers: { 'ringstate-min-position': '1' } })
      expect(reached.status).toBe(200)
      expect(reached.headers.get('preference-applied')).toBeNull()
      expect((await call('/v1/caches/counts/all', { headers: { 'ringstate-min-position': '2.0' } })).json.code).toBe('INVALID_QUERY')
    })

    test('projections: without a runner every projection route is 404 NOT_FOUND', async () => {
      await using store = disposable(await open())
      const call = client(createApp(store, { tokens }), ADMIN)
      expect(await call('/v1/projections')).toMatchObject({ status: 404, json: { code: 'NOT_FOUND' } })
      for (const action of ['pause', 'resume', 'rebuild']) {
        expect(await call(`/v1/projections/p/${action}`, { method: 'POST' })).toMatchObject({ status: 404, json: { code: 'NOT_FOUND' } })
      }
    })

    test('projections: the runner status with positions as strings, read-your-writes waits, admin control', async () => {
      await using store = disposable(await open())
      const seen: number[] = []
      const totals = defineProjection({
        name: 'totals',
        query: [{ types: ['Placed'] }],
        handle(events) {
          for (const event of events) seen.push(Number(event.position))
        },
      })
      const runner = startProjections(store, [totals], { leaseMs: 5000 })
      await using _ = { [Symbol.asyncDispose]: () => runner.stop() }
      await runner.ready
      const app = createApp(store, { tokens, projections: runner })
      const admin = client(app, ADMIN)
      const { position } = await store.append([{ type: 'Placed' }, { type: 'Placed' }])
      const waited = await admin('/v1/projections', { headers: { prefer: 'wait=10', 'ringstate-min-position': String(position) } })
      expect(waited.status).toBe(200)
      expect(waited.headers.get('preference-applied')).toBe('wait')
      expect(waited.json.projections).toEqual([
        expect.objectContaining({ name: 'totals', version: 1, partition: 0, position: '2', head: '2', lag: '0', errorCount: 0 }),
      ])
      expect(seen).toEqual([1, 2])
      expect(await admin('/v1/projections', { headers: { prefer: 'wait=0.05', 'ringstate-min-position': '99' } }))
        .toMatchObject({ status: 504, json: { code: 'WAIT_TIMEOUT' } })
      expect(await client(app, READER)('/v1/projections/totals/pause', { method: 'POST' })).toMatchObject({ status: 403 })
      const paused = await admin('/v1/projections/totals/pause', { method: 'POST' })
      expect(paused).toMatchObject({ status: 200, json: { projections: [expect.objectContaining({ name: 'totals', state: 'paused' })] } })
      const resumed = await admin('/v1/projections/totals/resume', { method: 'POST' })
      expect(resumed.status).toBe(200)
      expect(resumed.json.projections[0].state).not.toBe('paused')
      expect((await admin('/v1/projections/totals/rebuild', { method: 'POST' })).status).toBe(202)
      const rebuilt = await admin('/v1/projections', { headers: { prefer: 'wait=10', 'ringstate-min-position': '2' } })
      expect(rebuilt.json.projections[0].position).toBe('2')
      expect(await admin('/v1/projections/nope/pause', { method: 'POST' })).toMatchObject({ status: 404, json: { code: 'NOT_FOUND' } })
      const metrics = (await admin('/metrics')).text
      expect(metrics).toContain('ringstate_projection_position{projection="totals",partition="0"}')
      expect(metrics).toContain('ringstate_projection_lag{projection="totals",partition="0"} 0')
      expect(metrics).toContain('ringstate_projection_errors{projection="totals",partition="0"} 0')
      expect(metrics).toMatch(/ringstate_projection_state\{projection="totals",partition="0",state="live"\} 1/)
    })

    test('health: ready is 503 while a projection is faulted, and 200 again once it recovers', async () => {
      await using store = disposable(await open())
      let failing = true
      const fragile = defineProjection({
        name: 'fragile',
        query: [{ types: ['Poison'] }],
        onError: { retries: 0, then: 'pause' },
        handle() {
          if (failing) throw new Error('read model unavailable at postgres://secret@host')
        },
      })
      const runner = startProjections(store, [fragile], { leaseMs: 5000 })
      await using _ = { [Symbol.asyncDispose]: () => runner.stop() }
      await runner.ready
      const call = client(createApp(store, { tokens, projections: runner }), ADMIN)
      await store.append({ type: 'Poison' })
      const faulted = async () => (await runner.status()).some((shard) => shard.state === 'faulted')
      while (!(await faulted())) await new Promise((resolve) => setTimeout(resolve, 5))
      const ready = await call('/health/ready')
      expect(ready).toMatchObject({ status: 503, type: 'application/problem+json', json: { code: 'STORAGE_ERROR' } })
      expect(ready.json.detail).toContain('fragile')
      expect(ready.text).not.toContain('secret')
      const status = await call('/v1/projections')
      expect(status.json.projections[0]).toMatchObject({ state: 'faulted', errorCount: 1 })
      failing = false
      expect((await call('/v1/projections/fragile/resume', { method: 'POST' })).status).toBe(200)
      await runner.waitFor(1n, { timeoutMs: 10_000 })
      expect((await call('/health/ready')).status).toBe(200)
    })

    test('auth: 401 with WWW-Authenticate without or with a wrong token, 403 without the scope; health and openapi are public', async () => {
      await using store = disposable(await open())
      const app = createApp(store, { tokens })
      const anonymous = client(app)
      const missing = await anonymous('/v1/head')
      expect(missing).toMatchObject({ status: 401, json: { code: 'UNAUTHORIZED', status: 401 } })
      expect(missing.headers.get('www-authenticate')).toBe('Bearer realm="ringstate"')
      const wrong = await client(app, 'not-a-token-of-this-server')('/v1/head')
      expect(wrong).toMatchObject({ status: 401, json: { code: 'UNAUTHORIZED' } })
      expect(wrong.headers.get('www-authenticate')).toContain('invalid_token')
      expect((await anonymous('/v1/head', { headers: { authorization: `Basic ${btoa('a:b')}` } })).status).toBe(401)
      const reader = client(app, READER)
      expect(await reader('/v1/append', { body: { events: { type: 'A' } } })).toMatchObject({ status: 403, json: { code: 'FORBIDDEN' } })
      expect(await reader('/metrics')).toMatchObject({ status: 403, json: { code: 'FORBIDDEN' } })
      expect(await reader('/v1/projections/p/pause', { method: 'POST' })).toMatchObject({ status: 403 })
      expect((await client(app, WRITER)('/v1/append', { body: { events: { type: 'A' } } })).status).toBe(201)
      expect((await anonymous('/health/live')).status).toBe(200)
      expect((await anonymous('/health/ready')).status).toBe(200)
      expect((await anonymous('/openapi.json')).status).toBe(200)
      expect((await anonymous('/metrics')).status).toBe(401)
      expect((await client(app, ADMIN)('/metrics')).status).toBe(200)
      expect((await client(createApp(store, { tokens, publicMetrics: true }))('/metrics')).status).toBe(200)
      expect(await store.head()).toBe(1n)
    })

    test('the page: /ui is public and served with its strict CSP; ui: false leaves it out', async () => {
      await using store = disposable(await open())
      const page = await client(createApp(store, { tokens }))('/ui')
      expect(page.status).toBe(200)
      expect(page.type).toStartWith('text/html')
      expect(page.headers.get('content-security-policy')).toContain("default-src 'none'")
      expect((await client(createApp(store, { tokens }))('/ui/app.js')).status).toBe(200)
      expect(await client(createApp(store, { tokens, ui: false }))('/ui')).toMatchObject({ status: 404, json: { code: 'NOT_FOUND' } })
    })

    test('auth: with no tokens configured every request is allowed', async () => {
      await using store = disposable(await open())
      const call = client(createApp(store))
      expect((await call('/v1/append', { body: { events: { type: 'A' } } })).status).toBe(201)
      expect((await call('/metrics')).status).toBe(200)
      expect((await call('/v1/head')).json).toEqual({ head: '1' })
    })

    test('errors: an unknown route is a problem+json 404; anything not ringstate is 500 INTERNAL with no detail', async () => {
      await using store = disposable(await open())
      const leaky = {
        get(): unknown {
          throw new Error('connect postgres://app:hunter2@db.internal:5432/prod failed\n    at secret (file.ts:1:1)')
        },
        position: 0n,
        size: 0,
      }
      const call = client(createApp(store, { tokens, caches: { leaky } }), READER)
      expect(await call('/v2/nothing')).toMatchObject({ status: 404, type: 'application/problem+json', json: { code: 'NOT_FOUND' } })
      const broken = await call('/v1/caches/leaky/k')
      expect(broken.status).toBe(500)
      expect(broken.type).toBe('application/problem+json')
      expect(broken.json).toEqual({
        type: 'urn:ringstate:error:INTERNAL',
        title: 'Internal error',
        status: 500,
        detail: 'internal error',
        code: 'INTERNAL',
      })
      expect(broken.text).not.toContain('hunter2')
      expect(broken.text).not.toContain('at secret')
    })

    test('metrics: requests by method, route template and status; appends, conflicts, events, head; no tag, type or token in a label', async () => {
      await using store = disposable(await open())
      const counts = new StateCache<number>({ name: 'counts', key: (e) => e.tags[0], apply: (n) => (n ?? 0) + 1 })
      store.attach(counts)
      const app = createApp(store, { tokens, caches: { counts } })
      const call = client(app, ADMIN)
      const condition = { failIfEventsMatch: [{ types: ['SecretType'] }] }
      await call('/v1/append', { body: { events: [{ type: 'SecretType', tags: ['secret:tag'] }, { type: 'SecretType', tags: ['secret:tag'] }] } })
      await call('/v1/append', { body: { events: { type: 'SecretType', tags: ['secret:tag'] }, condition } })
      await call('/v1/caches/counts/secret:tag')
      await call('/v1/events?type=SecretType&tag=secret:tag')
      const text = (await call('/metrics')).text
      expect(text).toContain('ringstate_http_requests_total{method="POST",route="/v1/append",status="201"} 1')
      expect(text).toContain('ringstate_http_requests_total{method="POST",route="/v1/append",status="409"} 1')
      expect(text).toContain('ringstate_http_requests_total{method="GET",route="/v1/caches/:name/:key",status="200"} 1')
      expect(text).toContain('ringstate_http_request_duration_seconds_count{method="GET",route="/v1/events",status="200"} 1')
      expect(text).toContain('ringstate_store_appends_total 1')
      expect(text).toContain('ringstate_store_conflicts_total 1')
      expect(text).toContain('ringstate_store_events_appended_total 2')
      expect(text).toContain('ringstate_store_head 2')
      expect(text).toContain('ringstate_cache_entries{cache="counts"} 1')
      expect(text).toContain('ringstate_cache_position{cache="counts"} 2')
      expect(text).toContain('ringstate_sse_clients 0')
      expect(text).not.toContain('SecretType')
      expect(text).not.toContain('secret:tag')
      expect(text).not.toContain(ADMIN)
    })
  })
}

test('metrics: an application merges the app registry with its own, or hands in its registry', async () => {
  await using store = disposable(await openStore('memory:'))
  const app = createApp(store)
  const mine = new Registry()
  new Counter({ name: 'shop_orders_total', help: 'orders', registers: [mine] }).inc(3)
  const merged = await Registry.merge([metricsRegistry(app), mine]).metrics()
  expect(merged).toContain('shop_orders_total 3')
  expect(merged).toContain('ringstate_http_requests_total')
  const shared = new Registry()
  const sharing = createApp(store, { registry: shared })
  await sharing.request('/health/live')
  expect(metricsRegistry(sharing)).toBe(shared)
  expect(await shared.metrics()).toContain('ringstate_http_requests_total{method="GET",route="/health/live",status="200"} 1')
})

test('waitForProjections: an application route over a read model reads its own writes', async () => {
  await using store = disposable(await openStore('memory:'))
  const orders = new Map<string, number>()
  const totals = defineProjection({
    name: 'order-totals',
    query: [{ types: ['OrderPlaced'] }],
    handle(events) {
      for (const event of events) orders.set(event.tags[0]!, (event.data as { total: number }).total)
    },
  })
  const runner = startProjections(store, [totals], { leaseMs: 5000 })
  await using _ = { [Symbol.asyncDispose]: () => runner.stop() }
  await runner.ready
  const app = createApp(store, { projections: runner })
  app.get('/orders/:id', waitForProjections(runner, { names: ['order-totals'] }), (c) => {
    const total = orders.get(`order:${c.req.param('id')}`)
    return total === undefined ? c.json({ missing: true }, 404) : c.json({ total })
  })
  const call = client(app)
  const placed = await call('/v1/append', { body: { events: { type: 'OrderPlaced', tags: ['order:o1'], data: { total: 30 } } } })
  const read = await call('/orders/o1', { headers: { prefer: 'wait=10', 'ringstate-min-position': placed.json.position } })
  expect(read).toMatchObject({ status: 200, json: { total: 30 } })
  expect(read.headers.get('preference-applied')).toBe('wait')
  const late = await call('/orders/o1', { headers: { prefer: 'wait=0.05', 'ringstate-min-position': '50' } })
  expect(late).toMatchObject({ status: 504, json: { code: 'WAIT_TIMEOUT' } })
})

describe('ringstate/http on postgres', () => {
  let db: FreshDatabase
  beforeAll(async () => {
    db = await freshDatabase()
  })
  afterAll(() => db.drop())

  test('append, conflict, If-Match and paging behave as on the other backends', async () => {
    await using store = disposable(await openStore(db.url))
    const call = client(createApp(store, { tokens }), WRITER)
    const first = await call('/v1/append', { body: { events: [{ type: 'A', tags: ['k:1'] }, { type: 'B' }] }, headers: { 'idempotency-key': 'pg' } })
    expect(first).toMatchObject({ status: 201, json: { position: '2', count: 2, ids: ['pg:0', 'pg:1'] } })
    expect((await call('/v1/append', { body: { events: [{ type: 'A', tags: ['k:1'] }, { type: 'B' }] }, headers: { 'idempotency-key': 'pg' } })).status).toBe(200)
    const condition = { failIfEventsMatch: [{ tags: ['k:1'] }] }
    expect((await call('/v1/append', { body: { events: { type: 'A', tags: ['k:1'] }, condition }, headers: { 'if-match': '"0"' } })).json)
      .toMatchObject({ status: 412, conflict: '1' })
    expect((await call('/v1/append', { body: { events: { type: 'A', tags: ['k:1'] }, condition } })).status).toBe(409)
    expect((await call('/v1/append', { body: { events: { type: 'A', tags: ['k:1'] }, condition }, headers: { 'if-match': '"1"' } })).status).toBe(201)
    const page = await call('/v1/events?limit=2&backwards=true')
    expect(page.json.events.map((e: { position: string }) => e.position)).toEqual(['3', '2'])
    expect(page.json.next).toBe('2')
    expect((await call('/health/ready')).status).toBe(200)
  })

  test('events: pages are byte for byte JSON.stringify of the parsed events, as on the other backends', async () => {
    await using store = disposable(await openStore(db.url))
    await expectByteIdenticalPages(store)
  })
})

describe('ringstate/http on an unreachable PostgreSQL', () => {
  test('ready is 503 STORAGE_ERROR once the database is gone, with no connection string in the answer', async () => {
    const doomed = await freshDatabase()
    const store = await openStore(doomed.url)
    const call = client(createApp(store))
    expect((await call('/health/ready')).status).toBe(200)
    await doomed.drop()
    const ready = await call('/health/ready')
    expect(ready).toMatchObject({ status: 503, type: 'application/problem+json', json: { code: 'STORAGE_ERROR', status: 503 } })
    expect(ready.text).not.toContain(doomed.name)
    expect(ready.text).not.toContain('postgres://')
    const head = await call('/v1/head')
    expect(head).toMatchObject({ status: 503, json: { code: 'STORAGE_ERROR', detail: 'the storage is unavailable; try again later' } })
    await store.close()
  })
})

/** `await using` for a store. */
function disposable<S extends EventStore>(store: S): S & AsyncDisposable {
  return Object.assign(store, { [Symbol.asyncDispose]: () => store.close() })
}
