// The main paths of every part of ringstate, as cases a runtime's own test runner registers: the
// Deno suite (ts/testing/runtimes.deno.ts, over the TypeScript sources) and the Node suite
// (ts/testing/runtimes.node.mjs, over the compiled dist/). Plain JavaScript so that Node 20 loads it
// without a TypeScript step. Each case is [name, async () => void] and throws on any failure.
//
// `lib` holds the modules under test: { ringstate, bus, cache, projections, runtime, http, driver }
// (driver: ts/store/sqlite/driver.ts, the SQLite driver choice).
// `env` holds what differs per runtime:
//   name               'deno' | 'node'
//   tempDir()          a fresh directory (removed by the suite at the end)
//   freshDatabaseUrl() a fresh PostgreSQL database on DATABASE_URL (or a throwaway cluster)
//   sqlite             'real' (node:sqlite or bun:sqlite present) | 'unavailable' (a Node without it)
//   startRingConsumer(handle) a consumer on another thread attached to a SharedRing:
//                      { ready(): Promise<void>, stop(): Promise<number[]> }
import assert from 'node:assert/strict'
import { join } from 'node:path'

/** Polls `check` until it holds; fails after `ms` (every wait has a deadline). */
export async function until(check, what, ms = 20_000) {
  const deadline = Date.now() + ms
  for (;;) {
    const value = await check()
    if (value) return value
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}

/** Rejects with the thrown error's code, or fails when `fn` does not throw. */
async function codeOf(fn) {
  try {
    await fn()
  } catch (error) {
    return error?.code
  }
  assert.fail('expected an error')
}

/**
 * The store's main paths on one backend: append (generated ids, positions), query by tag and type,
 * read streamed, a conditional append and its conflict, idempotent retry by id, project, follow and
 * subscribe (catch-up and a live event), checkpoints with an append, snapshots, head, close.
 */
async function storeMainPaths(store) {
  try {
    assert.equal(await store.head(), 0n)
    const first = await store.append([
      { type: 'CourseDefined', tags: ['course:c1'], data: { capacity: 2 } },
      { type: 'StudentSubscribed', tags: ['course:c1', 'student:s1'], data: { n: 1 } },
    ])
    assert.equal(first.position, 2n)
    assert.equal(first.count, 2)
    assert.equal(first.ids.length, 2)

    const byTag = await store.query([{ tags: ['student:s1'] }])
    assert.deepEqual(byTag.map((e) => [e.position, e.type, e.tags, e.data]), [[2n, 'StudentSubscribed', ['course:c1', 'student:s1'], { n: 1 }]])
    assert.ok(byTag[0].recordedAt instanceof Date)
    assert.deepEqual((await store.query([{ types: ['CourseDefined'] }])).map((e) => e.position), [1n])
    const streamed = []
    for await (const event of store.read('all', { backwards: true })) streamed.push(event.position)
    assert.deepEqual(streamed, [2n, 1n])

    // A decision: project the course, append under its condition, then lose a race.
    const { states, condition } = await store.project({
      subscribed: { query: [{ types: ['StudentSubscribed'], tags: ['course:c1'] }], initial: 0, apply: (n) => n + 1 },
    })
    assert.equal(states.subscribed, 1)
    assert.deepEqual(condition, { failIfEventsMatch: [{ types: ['StudentSubscribed'], tags: ['course:c1'] }], after: 2n })
    const second = await store.append({ type: 'StudentSubscribed', tags: ['course:c1', 'student:s2'], id: 'sub-s2' }, condition)
    assert.equal(second.position, 3n)
    assert.equal(await codeOf(() => store.append({ type: 'StudentSubscribed', tags: ['course:c1', 'student:s3'] }, condition)), 'APPEND_CONDITION_FAILED')
    // Retrying an append whose ids are stored answers the first result, not a conflict.
    assert.deepEqual(await store.append({ type: 'StudentSubscribed', tags: ['course:c1', 'student:s2'], id: 'sub-s2' }, condition), second)
    assert.equal(await codeOf(() => store.append({ type: '' })), 'INVALID_EVENT')
    assert.equal(await codeOf(() => store.query([])), 'INVALID_QUERY')

    // follow catches up in batches, then a live subscriber sees a new event.
    const controller = new AbortController()
    const followed = []
    for await (const batch of store.follow('all', { batchSize: 2, signal: controller.signal })) {
      followed.push(...batch.events.map((e) => e.position))
      if (batch.caughtUp) break
    }
    assert.deepEqual(followed, [1n, 2n, 3n])
    const live = (async () => {
      for await (const event of store.subscribe([{ types: ['Live'] }], { after: 3n, signal: controller.signal })) return event
    })()
    const appended = await store.append({ type: 'Live', tags: ['k:live'], data: { hello: 'world' } }, undefined, {
      checkpoint: { name: 'consumer', position: 3n },
    })
    const event = await live
    controller.abort()
    assert.equal(event.position, appended.position)
    assert.deepEqual(event.data, { hello: 'world' })
    assert.equal(await store.checkpoint('consumer'), 3n)

    await store.saveSnapshot('course:c1', 3n, new Uint8Array([1, 2, 3]), { keep: 1 })
    await store.saveSnapshot('course:c1', 4n, new Uint8Array([4, 5]), { keep: 1 })
    const snapshot = await store.loadSnapshot('course:c1')
    assert.equal(snapshot.position, 4n)
    assert.deepEqual([...snapshot.data], [4, 5])
    assert.equal(await store.head(), 4n)
  } finally {
    await store.close()
  }
  assert.equal(await codeOf(() => store.append({ type: 'After' })), 'STORE_CLOSED')
}

/** A projection writing one row per event into the store's own database (or an array on memory). */
function rowsProjection(projections, name, rows) {
  return projections.defineProjection({
    name,
    query: [{ types: ['OrderPlaced'] }],
    setup(ctx) {
      if (ctx.backend === 'sqlite') ctx.tx.exec(`CREATE TABLE IF NOT EXISTS ${name}_rows (position INTEGER PRIMARY KEY, total INTEGER)`)
      if (ctx.backend === 'postgres') return ctx.tx.unsafe(`CREATE TABLE IF NOT EXISTS "${ctx.schema}".${name}_rows (position bigint PRIMARY KEY, total int)`)
    },
    async handle(events, ctx) {
      if (ctx.backend === 'sqlite') {
        const insert = ctx.tx.query(`INSERT INTO ${name}_rows (position, total) VALUES (?, ?)`)
        for (const event of events) insert.run(event.position, event.data.total)
      } else if (ctx.backend === 'postgres') {
        for (const event of events) {
          await ctx.tx.unsafe(`INSERT INTO "${ctx.schema}".${name}_rows (position, total) VALUES ($1, $2)`, [String(event.position), event.data.total])
        }
      } else {
        for (const event of events) rows.push([event.position, event.data.total])
      }
    },
  })
}

/** Reads the rows back through the store's transaction hook (the projections' own path). */
async function projectedRows(store, name, rows) {
  return store[Symbol.for('ringstate.store.transaction')](async (tx) => {
    if (tx.backend === 'sqlite') {
      return tx.db.query(`SELECT position, total FROM ${name}_rows ORDER BY position`).all().map((r) => [BigInt(r.position), Number(r.total)])
    }
    if (tx.backend === 'postgres') {
      const found = await tx.sql.unsafe(`SELECT position::text AS p, total FROM "${tx.schema}".${name}_rows ORDER BY position`)
      return found.map((r) => [BigInt(r.p), Number(r.total)])
    }
    return [...rows]
  })
}

/** A runner over `store`: catch-up of stored events, a live event, the checkpoint and status. */
async function projectionRunner(lib, store) {
  const { projections } = lib
  const rows = []
  try {
    await store.append([
      { type: 'OrderPlaced', tags: ['order:o1'], data: { total: 30 } },
      { type: 'Noise' },
      { type: 'OrderPlaced', tags: ['order:o2'], data: { total: 12 } },
    ])
    const runner = projections.startProjections(store, [rowsProjection(projections, 'orders', rows)], { leaseMs: 5_000 })
    try {
      await runner.ready
      await runner.waitFor(3n)
      const { position } = await store.append({ type: 'OrderPlaced', tags: ['order:o3'], data: { total: 7 } })
      await runner.waitFor(position)
      assert.deepEqual(await projectedRows(store, 'orders', rows), [[1n, 30], [3n, 12], [4n, 7]])
      const status = await runner.status()
      assert.equal(status.length, 1)
      assert.equal(status[0].name, 'orders')
      assert.equal(status[0].position, 4n)
    } finally {
      await runner.stop()
    }
  } finally {
    await store.close()
  }
}

/** A runtime program over `fromStore`: each RenewalDue issues an invoice exactly once, with the checkpoint. */
async function runtimeOverStore(lib, store) {
  const { runtime } = lib
  try {
    await store.append([
      { type: 'RenewalDue', tags: ['customer:ada'], data: { customer: 'ada' } },
      { type: 'RenewalDue', tags: ['customer:bob'], data: { customer: 'bob' } },
    ])
    const program = {
      init: () => [{ due: 0, invoiced: [] }],
      update: (event, model) =>
        event.type === 'RenewalDue'
          ? [{ ...model, due: model.due + 1 }, [() => ({ type: 'InvoiceIssued', tags: [`customer:${event.data.customer}`], data: { customer: event.data.customer } })]]
          : [{ ...model, invoiced: [...model.invoiced, event.data.customer] }],
    }
    const query = [{ types: ['RenewalDue', 'InvoiceIssued'] }]
    const handle = runtime.run(program, runtime.fromStore(store, query, { name: 'renewals' }))
    await until(() => handle.model().invoiced.length === 2, 'both invoices')
    await handle.stop()
    const { model, reason } = await handle.done
    assert.equal(reason, 'stopped')
    assert.deepEqual(model, { due: 2, invoiced: ['ada', 'bob'] })
    const invoices = await store.query([{ types: ['InvoiceIssued'] }])
    assert.deepEqual(invoices.map((e) => e.id), ['renewals:1:0', 'renewals:2:0'])
    // The checkpoint travels with the outputs: the last delivery that appended any is RenewalDue 2.
    assert.equal(await store.checkpoint('renewals'), 2n)
  } finally {
    await store.close()
  }
}

/** Reads one server-sent event frame at a time off a streaming response. */
function frameReader(response) {
  const reader = response.body.getReader()
  const decoder = new TextDecoder()
  let buffer = ''
  return {
    async next() {
      for (;;) {
        const end = buffer.indexOf('\n\n')
        if (end >= 0) {
          const block = buffer.slice(0, end)
          buffer = buffer.slice(end + 2)
          const frame = {}
          for (const line of block.split('\n')) {
            if (line.startsWith(':')) continue
            const colon = line.indexOf(':')
            frame[line.slice(0, colon)] = line.slice(colon + 1).replace(/^ /, '')
          }
          return frame
        }
        const { done, value } = await reader.read()
        if (done) throw new Error('the event stream ended')
        buffer += decoder.decode(value, { stream: true })
      }
    },
    cancel: () => reader.cancel(),
  }
}

/** `serve` on the runtime's own server, port 0: append, read, and a live server-sent event. */
async function httpRoundTrip(lib) {
  const { ringstate, http } = lib
  const store = await ringstate.openStore('memory:')
  const token = 'runtime-suite-token-0123456789'
  const server = await http.serve(store, { port: 0, tokens: [{ name: 'suite', token, scopes: ['read', 'append'] }] })
  const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' }
  try {
    assert.match(server.url, /^http:\/\/127\.0\.0\.1:\d+\/$/)
    const denied = await fetch(new URL('/v1/head', server.url))
    assert.equal(denied.status, 401)
    await denied.body?.cancel()

    const posted = await fetch(new URL('/v1/append', server.url), {
      method: 'POST',
      headers,
      body: JSON.stringify({ events: [{ type: 'A', tags: ['k:1'], data: { n: 1 } }, { type: 'B' }] }),
    })
    assert.equal(posted.status, 201)
    const appended = await posted.json()
    assert.equal(appended.position, '2')
    assert.equal(appended.count, 2)

    const read = await fetch(new URL('/v1/events?tag=k:1', server.url), { headers })
    assert.equal(read.status, 200)
    const page = await read.json()
    assert.deepEqual(page.events.map((e) => [e.position, e.type, e.data]), [['1', 'A', { n: 1 }]])

    const stream = await fetch(new URL('/v1/subscribe?type=A', server.url), { headers })
    assert.equal(stream.status, 200)
    assert.match(stream.headers.get('content-type'), /^text\/event-stream/)
    const frames = frameReader(stream)
    const catchUp = []
    let frame
    do catchUp.push((frame = await frames.next()))
    while (frame.event !== 'caught-up')
    assert.deepEqual(catchUp.filter((f) => f.data !== undefined && f.event === undefined).map((f) => f.id), ['1'])
    assert.deepEqual(frame, { event: 'caught-up', id: '2', data: '{"through":"2"}' })
    const live = await fetch(new URL('/v1/append', server.url), {
      method: 'POST',
      headers,
      body: JSON.stringify({ events: { type: 'A', data: { live: true } } }),
    })
    assert.equal(live.status, 201)
    await live.body?.cancel()
    do frame = await frames.next()
    while (frame.data === undefined || frame.event !== undefined)
    assert.equal(frame.id, '3')
    assert.deepEqual(JSON.parse(frame.data).data, { live: true })
    await frames.cancel()
  } finally {
    await server.stop()
    await store.close()
  }
}

/** The SQLite store where the runtime has a driver, else the clear INVALID_OPTIONS. */
async function sqliteStoreCase(lib, env) {
  const dir = env.tempDir()
  const url = `sqlite:${join(dir, 'events.db')}`
  if (env.sqlite === 'unavailable') {
    const error = await lib.ringstate.openStore(url).then(
      () => assert.fail('the sqlite store opened on a runtime without node:sqlite'),
      (error) => error,
    )
    assert.equal(error.code, 'INVALID_OPTIONS')
    assert.match(error.message, /node:sqlite/)
    assert.match(error.message, /22\.13\+, 23\.4\+ or 24\+/)
    assert.match(error.message, /'memory:' or 'postgres:\/\/'/)
    return
  }
  await storeMainPaths(await lib.ringstate.openStore(url))
  // Reopened, the file keeps every event; a second connection's append wakes a subscriber here.
  const again = await lib.ringstate.openStore(url)
  const other = await lib.ringstate.openStore(url)
  try {
    assert.equal(await again.head(), 4n)
    const controller = new AbortController()
    let seen
    const subscribed = (async () => {
      for await (const event of again.subscribe([{ types: ['FromOther'] }], { signal: controller.signal })) return (seen = event.position)
    })()
    await other.append({ type: 'FromOther' })
    // The store notices another connection's commit by polling data_version on an unref'd timer,
    // which keeps no runtime alive by itself: the polling wait here does.
    await until(() => seen !== undefined, 'the commit of the other connection')
    await subscribed
    assert.equal(seen, 5n)
    controller.abort()
  } finally {
    await again.close()
    await other.close()
  }
}

/** The runtime's SQLite driver (node:sqlite here) behaves as the backend expects of bun:sqlite. */
async function nodeSqliteDriverCase(lib, env) {
  const open = await lib.driver.sqliteDriver()
  const path = join(env.tempDir(), 'driver.db')
  const holder = open(path, true)
  const other = open(path, true)
  const thrown = (fn) => {
    try {
      fn()
    } catch (error) {
      return error
    }
    assert.fail('expected an error')
  }
  try {
    holder.exec('PRAGMA journal_mode = WAL')
    holder.exec('CREATE TABLE t (x INTEGER, b BLOB)')
    assert.equal(holder.prepare('INSERT INTO t VALUES (?, ?)').run(9007199254740993n, new Uint8Array([1, 2])).changes, 1)
    const row = holder.query('SELECT x, b FROM t').get()
    assert.equal(row.x, 9007199254740993n)
    assert.deepEqual([...row.b], [1, 2])
    assert.equal(holder.query('SELECT x FROM t WHERE x = 0').get(), null)
    assert.equal(holder.query('SELECT x, b FROM t'), holder.query('SELECT x, b FROM t'))
    assert.equal(holder.inTransaction, false)
    other.exec('PRAGMA busy_timeout = 0')
    holder.exec('BEGIN IMMEDIATE')
    assert.equal(holder.inTransaction, true)
    assert.equal(lib.driver.isBusyError(thrown(() => other.exec('BEGIN IMMEDIATE'))), true)
    holder.exec('ROLLBACK')
    assert.equal(lib.driver.isBusyError(thrown(() => other.exec('NOT SQL'))), false)
  } finally {
    holder.close()
    other.close()
  }
}

/** The embedded default (`openStore()` with no URL: sqlite:./data/ringstate.db), in a scratch cwd. */
async function embeddedDefaultCase(lib, env) {
  const dir = env.tempDir()
  const previous = process.cwd()
  process.chdir(dir)
  try {
    if (env.sqlite === 'unavailable') {
      assert.equal(await codeOf(() => lib.ringstate.openStore()), 'INVALID_OPTIONS')
      return
    }
    const store = await lib.ringstate.openStore()
    try {
      await store.append({ type: 'Embedded' })
      assert.equal(await store.head(), 1n)
    } finally {
      await store.close()
    }
  } finally {
    process.chdir(previous)
  }
}

/** Every case, in order. */
export function runtimeCases(lib, env) {
  const { ringstate, bus, cache, projections, runtime } = lib
  const sqliteUrl = () => `sqlite:${join(env.tempDir(), 'store.db')}`
  const cases = [
    ['store: the main paths on memory:', async () => storeMainPaths(await ringstate.openStore('memory:'))],
    [`store: the main paths on a SQLite file (${env.sqlite === 'real' ? 'node:sqlite' : 'INVALID_OPTIONS without node:sqlite'})`, () => sqliteStoreCase(lib, env)],
    ['store: openStore() with no URL opens the embedded default', () => embeddedDefaultCase(lib, env)],
    ['store: the main paths on PostgreSQL (postgres.js)', async () => storeMainPaths(await ringstate.openStore(await env.freshDatabaseUrl()))],
    ['store: bad URLs and options are INVALID_OPTIONS', async () => {
      assert.equal(await codeOf(() => ringstate.openStore('mysql://x')), 'INVALID_OPTIONS')
      assert.equal(await codeOf(() => ringstate.openStore('memory:', { maxPendingAppends: -1 })), 'INVALID_OPTIONS')
    }],
    ['bus: EventBus delivers by type in order and counts', () => {
      const eventBus = new bus.EventBus({ capacity: 8, overrun: 'error' })
      const seen = []
      const off = eventBus.on('tick', (event) => void seen.push(event.n))
      eventBus.publish({ type: 'tick', n: 1 })
      eventBus.publish({ type: 'tock', n: 2 })
      eventBus.publish({ type: 'tick', n: 3 })
      eventBus.drain()
      off()
      assert.deepEqual(seen, [1, 3])
      assert.deepEqual(eventBus.metrics(), { published: 3, processed: 3, errors: 0, dropped: 0, pending: 0 })
    }],
    ['bus: a SharedRing carries every event exactly once, in order, to a consumer on another thread', async () => {
      const ring = bus.SharedRing.create({ capacity: 64, slotSize: 64, overrun: 'block' })
      try {
        const consumer = env.startRingConsumer(ring.handle)
        await consumer.ready()
        const total = 2000
        for (let from = 0; from < total; from += 100) {
          const waiting = ring.publish(Array.from({ length: 100 }, (_, i) => ({ type: 'job', id: from + i })))
          if (waiting) await waiting
        }
        await until(() => ring.metrics().processed === total, 'the consumer to take every event')
        assert.deepEqual(await consumer.stop(), Array.from({ length: total }, (_, i) => i))
        assert.deepEqual(ring.metrics(), { published: total, processed: total, dropped: 0, pending: 0 })
      } finally {
        ring.release()
      }
    }],
    ...['typescript', 'native'].map((implementation) => [
      `cache: a StateCache (${implementation}) attached to a store folds appends and restores from a snapshot`,
      async () => {
        const store = await ringstate.openStore('memory:')
        const options = {
          name: 'balances',
          implementation,
          key: (event) => event.tags.find((t) => t.startsWith('account:')),
          apply: (state, event) => ({ balance: (state?.balance ?? 0) + event.data.amount }),
        }
        try {
          const balances = new cache.StateCache(options)
          store.attach(balances)
          await balances.restore(store)
          await store.append([{ type: 'Deposited', tags: ['account:1'], data: { amount: 5 } }, { type: 'Deposited', tags: ['account:2'], data: { amount: 1 } }])
          await store.append({ type: 'Deposited', tags: ['account:1'], data: { amount: 2 } })
          assert.deepEqual(balances.get('account:1'), { balance: 7 })
          assert.equal(balances.size, 2)
          await balances.snapshot(store)
          const restored = new cache.StateCache(options)
          await restored.restore(store)
          assert.deepEqual(restored.get('account:1'), { balance: 7 })
          assert.deepEqual(restored.get('account:2'), { balance: 1 })
        } finally {
          await store.close()
        }
      },
    ]),
    ['projections: a runner over memory: catches up, follows live and reports its position', async () => projectionRunner(lib, await ringstate.openStore('memory:'))],
    ['projections: a runner over PostgreSQL writes its read model in the store transaction', async () => projectionRunner(lib, await ringstate.openStore(await env.freshDatabaseUrl()))],
    ['projections: an aggregate executes a command and rejects a stale decision', async () => {
      const store = await ringstate.openStore('memory:')
      try {
        const counter = projections.defineAggregate({
          name: 'counter',
          initial: { count: 0 },
          apply: { Incremented: (state) => ({ count: state.count + 1 }) },
        })
        // Counts to two, then refuses: each run decides on the state it loaded.
        const increment = (ctx) => {
          if (ctx.state.count < 2) ctx.record('Incremented', {})
        }
        for (let i = 0; i < 3; i++) await counter.execute(store, 'c1', increment)
        const loaded = await counter.load(store, 'c1')
        assert.deepEqual(loaded.state, { count: 2 })
        assert.equal(loaded.version, 2)
        assert.equal(
          await codeOf(() => counter.execute(store, 'c1', increment, { expectedVersion: 1 })),
          'APPEND_CONDITION_FAILED',
        )
      } finally {
        await store.close()
      }
    }],
    ['runtime: run over fromStore on memory: appends each output once with the checkpoint', async () => runtimeOverStore(lib, await ringstate.openStore('memory:'))],
    ['runtime: run over fromStore on PostgreSQL', async () => runtimeOverStore(lib, await ringstate.openStore(await env.freshDatabaseUrl()))],
    ['runtime: batch over an iterable folds to quiescence', async () => {
      const { model, processed } = await runtime.batch({ init: () => [0], update: (item, total) => [total + item.price] }, runtime.fromIterable([{ price: 10 }, { price: 12 }]))
      assert.equal(model, 22)
      assert.equal(processed, 2)
    }],
    [`http: serve on ${env.name === 'deno' ? 'Deno.serve' : '@hono/node-server'} answers an append, a read and a live server-sent event`, () => httpRoundTrip(lib)],
  ]
  if (env.sqlite === 'real') {
    cases.push(
      ['store: the node:sqlite driver reads bigints and blobs, caches queries, answers null for no row and tells a held write lock from other errors', () => nodeSqliteDriverCase(lib, env)],
      ['projections: a runner over a SQLite file writes its read model through the store connection', async () => projectionRunner(lib, await ringstate.openStore(sqliteUrl()))],
      ['runtime: run over fromStore on a SQLite file', async () => runtimeOverStore(lib, await ringstate.openStore(sqliteUrl()))],
    )
  }
  return cases
}
