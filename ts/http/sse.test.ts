/**
 * Server-sent events and auth through a real server (`serve` on port 0) and `fetch` streaming:
 * the protocol of DESIGN.md section 8, a live event from another process, resuming with
 * Last-Event-ID, a quiet stream outliving Bun's idle timeout, and streams that leave nothing behind.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { storeStats, type InspectableStore } from '../store/core/index.ts'
import { openStore } from '../store/index.ts'
import type { EventStore } from '../store/types.ts'
import { freshDatabase, type FreshDatabase } from '../testing/postgres.ts'
import { serve, type ServeOptions } from './index.ts'

const dir = mkdtempSync(join(tmpdir(), 'ringstate-sse-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))
let files = 0
const TOKEN = 'stream-reader-token-0123'
const tokens: ServeOptions['tokens'] = [{ name: 'reader', token: TOKEN, scopes: ['read', 'metrics'] }]
const auth = { authorization: `Bearer ${TOKEN}` }

/** One server-sent event as the client sees it. */
interface Frame {
  id?: string
  event?: string
  data?: string
  retry?: string
  comment?: string
}

/** Reads frames off a streaming response; `next()` waits for one (the test's timeout bounds it). */
class FrameReader {
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>
  readonly #decoder = new TextDecoder()
  #buffer = ''
  closed = false

  constructor(response: Response) {
    this.#reader = response.body!.getReader()
  }

  async next(): Promise<Frame | undefined> {
    for (;;) {
      const end = this.#buffer.indexOf('\n\n')
      if (end >= 0) {
        const block = this.#buffer.slice(0, end)
        this.#buffer = this.#buffer.slice(end + 2)
        const frame: Frame = {}
        for (const line of block.split('\n')) {
          if (line.startsWith(':')) frame.comment = line.slice(1).trim()
          else {
            const colon = line.indexOf(':')
            const field = line.slice(0, colon) as keyof Frame
            frame[field] = line.slice(colon + 1).replace(/^ /, '')
          }
        }
        return frame
      }
      const { done, value } = await this.#reader.read()
      if (done) {
        this.closed = true
        return undefined
      }
      this.#buffer += this.#decoder.decode(value, { stream: true })
    }
  }

  /** Frames until one satisfies `until` (included). */
  async until(until: (frame: Frame) => boolean): Promise<Frame[]> {
    const frames: Frame[] = []
    for (;;) {
      const frame = await this.next()
      if (frame === undefined) throw new Error(`the stream ended after ${JSON.stringify(frames)}`)
      frames.push(frame)
      if (until(frame)) return frames
    }
  }

  cancel(): Promise<void> {
    return this.#reader.cancel()
  }
}

async function subscribe(url: string, path: string, headers: Record<string, string> = {}, signal?: AbortSignal) {
  const response = await fetch(new URL(path, url), { headers: { ...auth, ...headers }, ...(signal ? { signal } : {}) })
  return { response, frames: new FrameReader(response) }
}

/** Polls `check` until it returns true (the test's timeout is the deadline). */
async function eventually(check: () => boolean | Promise<boolean>): Promise<void> {
  while (!(await check())) await new Promise((resolve) => setTimeout(resolve, 5))
}

function disposable<S extends EventStore>(store: S): S & AsyncDisposable {
  return Object.assign(store, { [Symbol.asyncDispose]: () => store.close() })
}

const positionsOf = (frames: Frame[]) => frames.filter((f) => f.event === undefined && f.data !== undefined).map((f) => f.id)

describe('server-sent events', () => {
  test('headers, a first retry line, id and data per event, caught-up with id = through, then live events', async () => {
    await using store = disposable(await openStore('memory:'))
    await using server = await serve(store, { port: 0, tokens, sse: { retryMs: 1500 } })
    await store.append([{ type: 'A', tags: ['k:1'], data: { n: 1 } }, { type: 'B' }, { type: 'A', tags: ['k:2'] }])
    const { response, frames } = await subscribe(server.url, '/v1/subscribe?type=A')
    expect(response.status).toBe(200)
    expect(response.headers.get('content-type')).toStartWith('text/event-stream')
    expect(response.headers.get('cache-control')).toBe('no-cache, no-transform')
    expect(response.headers.get('x-accel-buffering')).toBe('no')
    expect(await frames.next()).toEqual({ retry: '1500' })
    const catchUp = await frames.until((frame) => frame.event === 'caught-up')
    expect(positionsOf(catchUp)).toEqual(['1', '3'])
    expect(JSON.parse(catchUp[0]!.data!)).toEqual({
      position: '1',
      type: 'A',
      tags: ['k:1'],
      data: { n: 1 },
      metadata: {},
      id: expect.any(String),
      recordedAt: expect.any(String),
    })
    expect(catchUp.at(-1)).toEqual({ event: 'caught-up', id: '3', data: '{"through":"3"}' })
    await store.append([{ type: 'B' }, { type: 'A', data: { live: true } }])
    const live = await frames.until((frame) => frame.data !== undefined && frame.event === undefined)
    expect(live.at(-1)!.id).toBe('5')
    expect(JSON.parse(live.at(-1)!.data!).data).toEqual({ live: true })
    await frames.cancel()
  })

  test('the events of each live commit reach every stream as separate frames with their own ids, one commit after another', async () => {
    await using store = disposable(await openStore('memory:'))
    await using server = await serve(store, { port: 0, tokens })
    const streams = await Promise.all([0, 1, 2].map(() => subscribe(server.url, '/v1/subscribe')))
    for (const { frames } of streams) await frames.until((frame) => frame.event === 'caught-up')
    await eventually(() => (store as unknown as InspectableStore)[storeStats]().tail.members === 3)
    // Two commits of four events each: every stream gets each commit's events as one batch, built
    // once and shared; the second batch has as many events as the first and must not be taken for it.
    for (const commit of [0, 1]) {
      await store.append([1, 2, 3, 4].map((n) => ({ type: 'T', data: { n: commit * 4 + n } })))
      for (const { frames } of streams) {
        const received = await frames.until((frame) => frame.id === String(commit * 4 + 4))
        expect(received.map((frame) => [frame.id, JSON.parse(frame.data!).data.n])).toEqual(
          [1, 2, 3, 4].map((n) => [String(commit * 4 + n), commit * 4 + n]),
        )
      }
    }
    for (const { frames } of streams) await frames.cancel()
  })

  test('events larger than the shared frame cache keeps arrive whole, in order, to every stream', async () => {
    await using store = disposable(await openStore('memory:'))
    await using server = await serve(store, { port: 0, tokens })
    const streams = await Promise.all([subscribe(server.url, '/v1/subscribe'), subscribe(server.url, '/v1/subscribe')])
    for (const { frames } of streams) await frames.until((f) => f.event === 'caught-up')
    const big = 'é'.repeat(200_000)
    await store.append([{ type: 'Big', data: { big } }, { type: 'Small' }, { type: 'Big', data: { big: big + '!' } }])
    for (const { frames } of streams) {
      const received = await frames.until((f) => f.id === '3' && f.event === undefined)
      const events = received.filter((f) => f.data !== undefined && f.event === undefined).map((f) => JSON.parse(f.data!))
      expect(events.map((e) => [e.position, e.type, e.data?.big?.length])).toEqual([['1', 'Big', 200_000], ['2', 'Small', undefined], ['3', 'Big', 200_001]])
      await frames.cancel()
    }
  })

  test('streams on different queries each get exactly their own events of a shared commit', async () => {
    await using store = disposable(await openStore('memory:'))
    await using server = await serve(store, { port: 0, tokens })
    const xy = await subscribe(server.url, `/v1/subscribe?query=${encodeURIComponent(JSON.stringify([{ types: ['X', 'Y'] }]))}`)
    const xz = await subscribe(server.url, `/v1/subscribe?query=${encodeURIComponent(JSON.stringify([{ types: ['X', 'Z'] }]))}`)
    for (const { frames } of [xy, xz]) await frames.until((f) => f.event === 'caught-up')
    await store.append([{ type: 'X' }, { type: 'Y' }, { type: 'Z' }, { type: 'X' }])
    const seen = async (frames: FrameReader) =>
      (await frames.until((f) => f.id === '4' && f.event === undefined))
        .filter((f) => f.event === undefined && f.data !== undefined)
        .map((f) => `${f.id}:${JSON.parse(f.data!).type}`)
    expect(await seen(xy.frames)).toEqual(['1:X', '2:Y', '4:X'])
    expect(await seen(xz.frames)).toEqual(['1:X', '3:Z', '4:X'])
    await xy.frames.cancel()
    await xz.frames.cancel()
  })

  test('without after or Last-Event-ID a stream starts at the beginning; Last-Event-ID wins over ?after= and resumes exactly after it', async () => {
    await using store = disposable(await openStore('memory:'))
    await using server = await serve(store, { port: 0, tokens })
    await store.append([{ type: 'A' }, { type: 'A' }, { type: 'A' }, { type: 'A' }, { type: 'A' }])
    const all = await subscribe(server.url, '/v1/subscribe')
    expect(positionsOf(await all.frames.until((f) => f.event === 'caught-up'))).toEqual(['1', '2', '3', '4', '5'])
    await all.frames.cancel()
    const after = await subscribe(server.url, '/v1/subscribe?after=3')
    expect(positionsOf(await after.frames.until((f) => f.event === 'caught-up'))).toEqual(['4', '5'])
    await after.frames.cancel()
    const resumed = await subscribe(server.url, '/v1/subscribe?after=1', { 'last-event-id': '3' })
    expect(positionsOf(await resumed.frames.until((f) => f.event === 'caught-up'))).toEqual(['4', '5'])
    await resumed.frames.cancel()
    const bad = await fetch(new URL('/v1/subscribe', server.url), { headers: { ...auth, 'last-event-id': 'x' } })
    expect(bad.status).toBe(400)
    expect(await bad.json()).toMatchObject({ code: 'INVALID_QUERY' })
  })

  test('when idle: progress with id = through once the follower scanned past the last id, else a comment line', async () => {
    await using store = disposable(await openStore('memory:'))
    await using server = await serve(store, { port: 0, tokens, sse: { heartbeatMs: 30 } })
    await store.append({ type: 'Match' })
    const { frames } = await subscribe(server.url, '/v1/subscribe?type=Match')
    await frames.until((f) => f.event === 'caught-up')
    expect(await frames.next()).toEqual({ comment: 'keep-alive' })
    await store.append([{ type: 'Other' }, { type: 'Other' }])
    const progress = await frames.until((f) => f.event === 'progress')
    expect(progress.at(-1)).toEqual({ event: 'progress', id: '3', data: '{"through":"3"}' })
    // Nothing scanned since: the next heartbeat is a comment again.
    expect(await frames.next()).toEqual({ comment: 'keep-alive' })
    await frames.cancel()
  })

  test('a client past maxClients gets 503 OVERLOADED with Retry-After; a freed slot is taken again', async () => {
    await using store = disposable(await openStore('memory:'))
    await using server = await serve(store, { port: 0, tokens, sse: { maxClients: 2, retryMs: 3000 } })
    const first = await subscribe(server.url, '/v1/subscribe')
    const second = await subscribe(server.url, '/v1/subscribe')
    const refused = await fetch(new URL('/v1/subscribe', server.url), { headers: auth })
    expect(refused.status).toBe(503)
    expect(refused.headers.get('retry-after')).toBe('3')
    expect(refused.headers.get('content-type')).toBe('application/problem+json')
    expect(await refused.json()).toMatchObject({ code: 'OVERLOADED', status: 503 })
    await first.frames.cancel()
    let third: Awaited<ReturnType<typeof subscribe>> | undefined
    await eventually(async () => {
      const attempt = await subscribe(server.url, '/v1/subscribe')
      if (attempt.response.status === 200) third = attempt
      else await attempt.frames.cancel()
      return third !== undefined
    })
    await second.frames.cancel()
    await third!.frames.cancel()
  })

  test('a quiet stream stays open past the server idle timeout that closes an idle plain connection', async () => {
    await using store = disposable(await openStore('memory:'))
    await using server = await serve(store, { port: 0, tokens, idleTimeout: 1, sse: { heartbeatMs: 600_000 } })
    const { frames } = await subscribe(server.url, '/v1/subscribe')
    await frames.until((f) => f.event === 'caught-up')
    // The control: a connection that sends nothing is closed by the idle timeout.
    const port = Number(new URL(server.url).port)
    const closed = Promise.withResolvers<void>()
    const socket = await Bun.connect({ hostname: '127.0.0.1', port, socket: { data() {}, close: () => closed.resolve(), error: () => closed.resolve() } })
    socket.write('GET /health/live HTTP/1.1\r\nHost: localhost\r\n\r\n')
    await closed.promise
    await store.append({ type: 'AfterTheTimeout' })
    const after = await frames.until((f) => f.data !== undefined && f.event === undefined)
    expect(JSON.parse(after.at(-1)!.data!).type).toBe('AfterTheTimeout')
    await frames.cancel()
  })

  test('50 connect and cancel cycles leave no stream and no tail subscriber behind', async () => {
    await using store = disposable(await openStore('memory:'))
    await using server = await serve(store, { port: 0, tokens })
    await store.append({ type: 'A' })
    const tail = () => (store as unknown as InspectableStore)[storeStats]().tail
    for (let i = 0; i < 50; i++) {
      const abort = new AbortController()
      const { frames } = await subscribe(server.url, '/v1/subscribe', {}, abort.signal)
      await frames.until((f) => f.event === 'caught-up')
      if (i % 2 === 0) abort.abort()
      else await frames.cancel()
    }
    const metrics = async () => (await (await fetch(new URL('/metrics', server.url), { headers: auth })).text())
    await eventually(async () => tail().members === 0 && (await metrics()).includes('ringstate_sse_clients 0'))
    expect(tail().members).toBe(0)
    // And the streams that were open all went through the one tail reader.
    const { frames } = await subscribe(server.url, '/v1/subscribe')
    await frames.until((f) => f.event === 'caught-up')
    await eventually(() => tail().members === 1)
    await frames.cancel()
    await eventually(() => tail().members === 0)
  })

  test('many clients of one server share the store tail reader: one pass per commit for all', async () => {
    await using store = disposable(await openStore('memory:'))
    await using server = await serve(store, { port: 0, tokens })
    const tail = () => (store as unknown as InspectableStore)[storeStats]().tail
    const clients = await Promise.all(Array.from({ length: 20 }, () => subscribe(server.url, '/v1/subscribe')))
    for (const client of clients) await client.frames.until((f) => f.event === 'caught-up')
    await eventually(() => tail().members === 20)
    // A pass: one read, or one hand-over of the store's own commit from its writer.
    const passes = () => tail().reads + tail().taken
    const passesBefore = passes()
    await store.append({ type: 'Fanned', data: { to: 'everyone' } })
    for (const client of clients) {
      const frames = await client.frames.until((f) => f.data !== undefined && f.event === undefined)
      expect(frames.at(-1)!.id).toBe('1')
      expect(JSON.parse(frames.at(-1)!.data!)).toMatchObject({ position: '1', type: 'Fanned', data: { to: 'everyone' } })
    }
    expect(passes() - passesBefore).toBe(1)
    const metrics = await (await fetch(new URL('/metrics', server.url), { headers: auth })).text()
    expect(metrics).toContain('ringstate_sse_clients 20')
    expect(metrics).toContain('ringstate_sse_events_sent_total 20')
    for (const client of clients) await client.frames.cancel()
  })

  test('stop() ends every open stream', async () => {
    await using store = disposable(await openStore('memory:'))
    const server = await serve(store, { port: 0, tokens })
    const { frames } = await subscribe(server.url, '/v1/subscribe')
    await frames.until((f) => f.event === 'caught-up')
    await server.stop()
    let rest: Frame | undefined
    try {
      rest = await frames.next()
    } catch {
      rest = undefined
    }
    expect(rest).toBeUndefined()
  })

  test('a stream ends when its store closes, so the client reconnects elsewhere with Last-Event-ID', async () => {
    const store = await openStore('memory:')
    await using server = await serve(store, { port: 0, tokens })
    const { frames } = await subscribe(server.url, '/v1/subscribe')
    await frames.until((f) => f.event === 'caught-up')
    await store.close()
    expect(await frames.next()).toBeUndefined()
    expect(frames.closed).toBe(true)
  })

  test('a live event appended by another process reaches the stream (SQLite file)', async () => {
    const path = join(dir, `sse-${++files}.db`)
    await using store = disposable(await openStore(`sqlite:${path}`))
    await using server = await serve(store, { port: 0, tokens })
    await store.append({ type: 'Local' })
    const { frames } = await subscribe(server.url, '/v1/subscribe')
    await frames.until((f) => f.event === 'caught-up')
    const child = Bun.spawn([process.execPath, join(import.meta.dir, 'testdata', 'append-child.ts'), `sqlite:${path}`, 'FromChild'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    expect(await child.exited).toBe(0)
    const live = await frames.until((f) => f.data !== undefined && f.event === undefined)
    expect(live.at(-1)!.id).toBe('2')
    expect(JSON.parse(live.at(-1)!.data!)).toMatchObject({ type: 'FromChild', data: { pid: child.pid } })
    await frames.cancel()
  })
})

describe('server-sent events on PostgreSQL', () => {
  let db: FreshDatabase
  beforeAll(async () => {
    db = await freshDatabase()
  })
  afterAll(() => db.drop())

  test('a live event appended by another process reaches every stream; a resume with Last-Event-ID misses nothing', async () => {
    await using store = disposable(await openStore(db.url))
    await using server = await serve(store, { port: 0, tokens })
    await store.append([{ type: 'Local' }, { type: 'Local' }])
    const clients = await Promise.all([subscribe(server.url, '/v1/subscribe'), subscribe(server.url, '/v1/subscribe?type=FromChild')])
    for (const { frames } of clients) await frames.until((f) => f.event === 'caught-up')
    const child = Bun.spawn([process.execPath, join(import.meta.dir, 'testdata', 'append-child.ts'), db.url, 'FromChild'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    expect(await child.exited).toBe(0)
    for (const { frames } of clients) {
      const live = await frames.until((f) => f.data !== undefined && f.event === undefined && JSON.parse(f.data).type === 'FromChild')
      expect(live.at(-1)!.id).toBe('3')
      await frames.cancel()
    }
    const resumed = await subscribe(server.url, '/v1/subscribe', { 'last-event-id': '1' })
    expect(positionsOf(await resumed.frames.until((f) => f.event === 'caught-up'))).toEqual(['2', '3'])
    await resumed.frames.cancel()
  })
})

describe('serve', () => {
  test('auth over the network: 401 without a token, 403 without the scope, 200 with it', async () => {
    await using store = disposable(await openStore('memory:'))
    await using server = await serve(store, {
      port: 0,
      tokens: [...tokens!, { name: 'writer', token: 'writer-only-token-01234', scopes: ['append'] }],
    })
    const anonymous = await fetch(new URL('/v1/subscribe', server.url))
    expect(anonymous.status).toBe(401)
    expect(anonymous.headers.get('www-authenticate')).toBe('Bearer realm="ringstate"')
    const writer = await fetch(new URL('/v1/head', server.url), { headers: { authorization: 'Bearer writer-only-token-01234' } })
    expect(writer.status).toBe(403)
    const reader = await fetch(new URL('/v1/head', server.url), { headers: auth })
    expect(await reader.json()).toEqual({ head: '0' })
  })

  /** The command that runs testdata/serve-child.ts on another runtime. */
  async function childCommand(runtime: 'deno' | 'node'): Promise<string[]> {
    const source = join(import.meta.dir, 'testdata', 'serve-child.ts')
    if (runtime === 'deno') return [join(import.meta.dir, '..', '..', 'node_modules', '.bin', 'deno'), 'run', '--allow-all', '--no-check', source]
    // Node 20 cannot load TypeScript: bundle it, with the page's files beside the bundle as in the package.
    const out = mkdtempSync(join(dir, 'node-'))
    const built = await Bun.build({ entrypoints: [source], target: 'node', outdir: out, naming: 'serve-child.mjs' })
    if (!built.success) throw new Error(built.logs.join('\n'))
    for (const file of ['index.html', 'app.js', 'style.css']) await Bun.write(join(out, file), Bun.file(join(import.meta.dir, 'ui', file)))
    return ['node', join(out, 'serve-child.mjs')]
  }

  test.each([
    ['deno', 'Deno.serve'],
    ['node', '@hono/node-server'],
  ] as const)('on %s it serves through %s: health, an append and a live event stream', async (runtime) => {
    const child = Bun.spawn(await childCommand(runtime), {
      stdin: 'pipe',
      stdout: 'pipe',
      stderr: 'inherit',
      env: { ...process.env, DENO_NO_UPDATE_CHECK: '1' },
    })
    const reader = (child.stdout as ReadableStream<Uint8Array>).getReader()
    let line = ''
    while (!line.includes('\n')) {
      const { done, value } = await reader.read()
      if (done) throw new Error(`${runtime} exited before printing its URL: ${line}`)
      line += new TextDecoder().decode(value)
    }
    const url = line.trim()
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/)
    expect(await (await fetch(new URL('/health/live', url))).json()).toEqual({ status: 'ok' })
    const stream = await fetch(new URL('/v1/subscribe', url))
    expect(stream.headers.get('cache-control')).toBe('no-cache, no-transform')
    const frames = new FrameReader(stream)
    await frames.until((f) => f.event === 'caught-up')
    const appended = await fetch(new URL('/v1/append', url), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ events: { type: 'Elsewhere' } }),
    })
    expect(appended.status).toBe(201)
    const live = await frames.until((f) => f.data !== undefined && f.event === undefined)
    expect(JSON.parse(live.at(-1)!.data!)).toMatchObject({ position: '1', type: 'Elsewhere' })
    await frames.cancel()
    ;(child.stdin as import('bun').FileSink).end()
    expect(await child.exited).toBe(0)
  })

  test('without tokens it refuses a non-loopback host unless insecure: true', async () => {
    await using store = disposable(await openStore('memory:'))
    expect(serve(store, { port: 0, host: '0.0.0.0' })).rejects.toMatchObject({ code: 'INVALID_OPTIONS' })
    await using open = await serve(store, { port: 0, host: '0.0.0.0', insecure: true })
    expect(open.url).toMatch(/^http:\/\/0\.0\.0\.0:\d+\/$/)
    await using local = await serve(store, { port: 0 })
    expect((await fetch(new URL('/health/live', local.url))).status).toBe(200)
  })
})
