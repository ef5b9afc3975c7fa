// The runtime (ringstate/runtime), measured against its baselines.
//
// 1. In memory: `run` over an `inbox` with a trivial program, a counter whose every 100th message
//    runs one async command yielding a message back (processed before the next one).
//    subject:  ringstate `run(program, inbox)`: fill the inbox, close it, await `done`
//    baseline: a hand-written loop doing the same work (an array of messages, a result lane, the
//              same `update`, the command awaited) — the cost floor of the pattern
//    peer:     Emmett's in-memory message bus (`getInMemoryMessageBus`): each message published and
//              awaited, the handler keeping the counter and publishing the command's result
//    Target: ringstate >= 0.5x the baseline's messages/s.
//
// 2. On a store (PostgreSQL by default): `run` over `fromStore` where every message's command
//    yields one output event, against a hand-written `follow` + `append` loop with the same
//    exactly-once guarantee (the output's id `<name>:<position>:0` and the checkpoint in one
//    append per message). Both consume the same log of N input events from the start, under a
//    fresh consumer name each time, alternating (subject, baseline, baseline, subject); the best
//    of each is reported. Not a mitata shape (one timed pass of N messages), so timed with
//    performance.now(). Target: ringstate >= 0.8x the baseline's messages/s.
//    peer (PostgreSQL only): Emmett's PostgreSQL consumer with a reactor (`es.consumer().reactor`)
//    over the same N inputs in its own database, appending one output event per message with
//    `appendToStream`. Weaker guarantee, noted for fairness: Emmett stores the reactor's checkpoint
//    in its own write, not in the output's transaction, so a crash between them repeats outputs.
//
// Sizes: RUNTIME_BENCH_MESSAGES (part 1, per iteration; default 100,000) and RUNTIME_BENCH_EVENTS
// (part 2; default 20,000). For a quick check: RUNTIME_BENCH_MESSAGES=2000 RUNTIME_BENCH_EVENTS=200.
// RUNTIME_BENCH_STORE=postgres (default) | sqlite | memory | none picks part 2's backend. PostgreSQL
// is DATABASE_URL when set, else postgres://postgres@127.0.0.1:5432/postgres; the benchmark
// creates a database `ringstate_bench_<random>` there and drops it at the end.
//
// Run from the repository root: ./node_modules/.bin/bun bench/runtime.bench.ts
import { getInMemoryMessageBus } from '@event-driven-io/emmett'
import { getPostgreSQLEventStore } from '@event-driven-io/emmett-postgresql'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { bench, do_not_optimize, run as mitata, summary } from 'mitata'
import postgres from 'postgres'
import { fromStore, inbox, run, type Cmd, type Program } from '../ts/runtime/index.ts'
import { openStore } from '../ts/store/index.ts'
import type { EventStore } from '../ts/store/types.ts'

const MESSAGES = positiveInteger('RUNTIME_BENCH_MESSAGES', 100_000)
const EVENTS = positiveInteger('RUNTIME_BENCH_EVENTS', 20_000)
const STORE = process.env.RUNTIME_BENCH_STORE || 'postgres'

function positiveInteger(name: string, fallback: number): number {
  const text = process.env[name]
  if (text === undefined || text === '') return fallback
  const value = Number(text)
  if (!Number.isSafeInteger(value) || value <= 0) throw new Error(`${name} must be a positive integer, got ${JSON.stringify(text)}`)
  return value
}

function printRatios(title: string, subject: { name: string; perSecond: number }, others: { name: string; perSecond: number }[]): void {
  console.log(`\n${title}`)
  console.log(`${'name'.padEnd(44)} ${'messages/s'.padStart(14)}   ringstate / this row`)
  for (const row of [subject, ...others]) {
    const ratio = row === subject ? '(subject)' : `${(subject.perSecond / row.perSecond).toFixed(2)}x`
    console.log(`${row.name.padEnd(44)} ${Math.round(row.perSecond).toLocaleString('en-US').padStart(14)}   ${ratio}`)
  }
}

// ---------------------------------------------------------------- part 1: in memory

type Msg = { type: 'inc'; n: number } | { type: 'flushed'; at: number }
interface Counter {
  count: number
  flushes: number
}

/** The command of every 100th message: an async effect that reports back. */
const flush = (at: number): Cmd<Msg> => async () => ({ type: 'flushed', at })

function update(msg: Msg, model: Counter): readonly [Counter, Cmd<Msg>[]?] {
  if (msg.type === 'flushed') return [{ count: model.count, flushes: model.flushes + 1 }]
  const count = model.count + msg.n
  return count % 100 === 0 ? [{ count, flushes: model.flushes }, [flush(count)]] : [{ count, flushes: model.flushes }]
}

const counter: Program<Counter, Msg> = { init: () => [{ count: 0, flushes: 0 }], update }
const messages: Msg[] = Array.from({ length: MESSAGES }, () => ({ type: 'inc', n: 1 }))
const expected = { count: MESSAGES, flushes: Math.floor(MESSAGES / 100) }

async function ringstateInbox(): Promise<Counter> {
  const box = inbox<Msg>({ capacity: MESSAGES })
  for (let i = 0; i < MESSAGES; i++) box.tryPut(messages[i]!)
  box.close()
  return (await run(counter, box).done).model
}

/** The baseline: the same work, written by hand. */
async function handLoop(): Promise<Counter> {
  const queue = messages.slice()
  const results: Msg[] = []
  let head = 0
  let model: Counter = { count: 0, flushes: 0 }
  while (results.length > 0 || head < queue.length) {
    const msg = results.length > 0 ? results.shift()! : queue[head++]!
    const [next, commands] = update(msg, model)
    model = next
    if (commands !== undefined) {
      for (const command of commands) {
        const result = await command!({ signal: AbortSignal.abort() })
        if (result !== null && result !== undefined) results.push(result)
      }
    }
  }
  return model
}

/** The peer: Emmett's in-memory message bus. */
async function emmettBus(): Promise<Counter> {
  const bus = getInMemoryMessageBus()
  let model: Counter = { count: 0, flushes: 0 }
  bus.subscribe(async (event: { type: 'inc'; data: { n: number } }) => {
    const count = model.count + event.data.n
    model = { count, flushes: model.flushes }
    if (count % 100 === 0) await bus.publish({ type: 'flushed', data: { at: count } })
  }, 'inc')
  bus.subscribe(async (_event: { type: 'flushed'; data: { at: number } }) => {
    model = { count: model.count, flushes: model.flushes + 1 }
  }, 'flushed')
  for (let i = 0; i < MESSAGES; i++) await bus.publish({ type: 'inc', data: { n: 1 } })
  return model
}

async function benchInMemory(): Promise<void> {
  for (const [name, f] of [['ringstate', ringstateInbox], ['hand loop', handLoop], ['emmett', emmettBus]] as const) {
    const model = await f()
    if (model.count !== expected.count || model.flushes !== expected.flushes) {
      throw new Error(`${name} computed ${JSON.stringify(model)}, expected ${JSON.stringify(expected)}`)
    }
  }
  const names = {
    subject: `ringstate run(inbox), ${MESSAGES} msgs`,
    baseline: `hand-written loop, ${MESSAGES} msgs`,
    peer: `emmett in-memory message bus, ${MESSAGES} msgs`,
  }
  summary(() => {
    bench(names.subject, async () => do_not_optimize(await ringstateInbox())).baseline(true)
    bench(names.baseline, async () => do_not_optimize(await handLoop()))
    bench(names.peer, async () => do_not_optimize(await emmettBus()))
  })
  const { benchmarks } = await mitata()
  const perSecond = (name: string) => {
    const stats = benchmarks.find((b) => b.alias === name)?.runs[0]?.stats
    if (!stats) throw new Error(`benchmark "${name}" did not run`)
    return { name, perSecond: MESSAGES / (stats.p50 / 1e9) }
  }
  printRatios(
    `run over an inbox: a counter, one async command per 100 messages (median; target >= 0.5x the hand-written loop)`,
    perSecond(names.subject),
    [perSecond(names.baseline), perSecond(names.peer)],
  )
}

// ---------------------------------------------------------------- part 2: on a store

type Jobs = { Job: { n: number }; Done: { job: string } }
const JOBS = [{ types: ['Job'] }] as const

/** The subject: a program whose every message's command yields one output event. */
async function ringstateStore(store: EventStore<Jobs>, name: string, last: bigint): Promise<number> {
  let reached!: () => void
  const reachedLast = new Promise<void>((resolve) => (reached = resolve))
  const started = performance.now()
  const handle = run(
    {
      init: () => [0],
      update: (event, n) => [n + 1, [() => ({ type: 'Done' as const, tags: [`job:${event.position}`], data: { job: event.id } })]],
      view: (_, { position }) => {
        if (position === last) reached()
      },
    },
    fromStore(store, JOBS, { name }),
  )
  await Promise.race([reachedLast, handle.done])
  await handle.stop()
  const elapsed = performance.now() - started
  if ((await store.checkpoint(name)) !== last) throw new Error('the runtime did not commit every job')
  return elapsed
}

/** The baseline: follow and append by hand, output id and checkpoint in one append. */
async function followLoop(store: EventStore<Jobs>, name: string, last: bigint): Promise<number> {
  const started = performance.now()
  const controller = new AbortController()
  const after = (await store.checkpoint(name)) ?? 0n
  outer: for await (const batch of store.follow(JOBS, { after, signal: controller.signal })) {
    for (const event of batch.events) {
      await store.append(
        [{ type: 'Done', tags: [`job:${event.position}`], data: { job: event.id }, id: `${name}:${event.position}:0` }],
        undefined,
        { checkpoint: { name, position: event.position } },
      )
      if (event.position === last) break outer
    }
  }
  controller.abort()
  const elapsed = performance.now() - started
  if ((await store.checkpoint(name)) !== last) throw new Error('the loop did not commit every job')
  return elapsed
}

/** The peer: Emmett's PostgreSQL consumer and reactor, one `appendToStream` per message. */
async function emmettReactor(url: string): Promise<number> {
  const es = getPostgreSQLEventStore(url)
  try {
    for (let i = 0; i < EVENTS; i += 1000) {
      const count = Math.min(1000, EVENTS - i)
      await es.appendToStream('jobs', Array.from({ length: count }, (_, k) => ({ type: 'Job', data: { n: i + k } })))
    }
    const consumer = es.consumer()
    let handled = 0
    let finish!: () => void
    const finished = new Promise<void>((resolve) => (finish = resolve))
    consumer.reactor({
      processorId: 'bench-emmett',
      eachMessage: async (message: { type: string; metadata: { globalPosition: bigint } }) => {
        if (message.type !== 'Job') return
        const position = message.metadata.globalPosition
        await es.appendToStream(`done-${position}`, [{ type: 'Done', data: { job: String(position) } }])
        if (++handled === EVENTS) finish()
      },
    })
    const started = performance.now()
    const running = consumer.start()
    await Promise.race([finished, running.then(() => Promise.reject(new Error('the Emmett consumer stopped early')))])
    const elapsed = performance.now() - started
    await consumer.stop()
    await running.catch(() => {})
    await consumer.close()
    return elapsed
  } finally {
    await es.close()
  }
}

interface BenchDatabase {
  url: string
  drop(): Promise<void>
}

/** A fresh database on the benchmark's server. */
async function freshDatabase(): Promise<BenchDatabase> {
  const server = process.env.DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/postgres'
  const database = `ringstate_bench_${crypto.randomUUID().replaceAll('-', '').slice(0, 12)}`
  const admin = postgres(server, { max: 1, onnotice: () => {} })
  await admin.unsafe(`CREATE DATABASE ${database}`)
  const url = new URL(server)
  url.pathname = `/${database}`
  return {
    url: url.toString(),
    drop: async () => {
      await admin.unsafe(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`)
      await admin.end()
    },
  }
}

async function openBenchStore(): Promise<{ store: EventStore<Jobs>; cleanup: () => Promise<void> }> {
  if (STORE === 'memory') {
    const store = await openStore<Jobs>('memory:')
    return { store, cleanup: () => store.close() }
  }
  if (STORE === 'sqlite') {
    const dir = mkdtempSync(join(tmpdir(), 'ringstate-runtime-bench-'))
    const store = await openStore<Jobs>(`sqlite:${join(dir, 'bench.db')}`)
    return { store, cleanup: async () => (await store.close(), rmSync(dir, { recursive: true, force: true })) }
  }
  if (STORE !== 'postgres') throw new Error(`RUNTIME_BENCH_STORE must be postgres, sqlite, memory or none, got ${STORE}`)
  const db = await freshDatabase()
  const store = await openStore<Jobs>(db.url)
  return {
    store,
    cleanup: async () => {
      await store.close()
      await db.drop()
    },
  }
}

async function benchStore(): Promise<void> {
  const { store, cleanup } = await openBenchStore()
  try {
    for (let i = 0; i < EVENTS; i += 1000) {
      const count = Math.min(1000, EVENTS - i)
      await store.append(Array.from({ length: count }, (_, k) => ({ type: 'Job' as const, data: { n: i + k } })))
    }
    const last = await store.head()
    let best = { subject: Infinity, baseline: Infinity }
    const order = ['subject', 'baseline', 'baseline', 'subject'] as const
    for (let round = 0; round < order.length; round++) {
      const which = order[round]!
      const name = `bench-${which}-${round}`
      const ms = which === 'subject' ? await ringstateStore(store, name, last) : await followLoop(store, name, last)
      console.log(`  ${which.padEnd(8)} ${EVENTS} messages in ${ms.toFixed(0)} ms`)
      best = { ...best, [which]: Math.min(best[which], ms) }
    }
    const rows = [{ name: `hand-written follow + append loop, ${EVENTS} msgs`, perSecond: EVENTS / (best.baseline / 1000) }]
    if (STORE === 'postgres') {
      const db = await freshDatabase()
      try {
        const ms = await emmettReactor(db.url)
        console.log(`  emmett   ${EVENTS} messages in ${ms.toFixed(0)} ms`)
        rows.push({ name: `emmett postgres reactor (peer), ${EVENTS} msgs`, perSecond: EVENTS / (ms / 1000) })
      } finally {
        await db.drop()
      }
    }
    printRatios(
      `run over fromStore on ${STORE}: one output event per message, exactly once (best of 2; target >= 0.8x the loop)`,
      { name: `ringstate run(fromStore), ${EVENTS} msgs`, perSecond: EVENTS / (best.subject / 1000) },
      rows,
    )
  } finally {
    await cleanup()
  }
}

await benchInMemory()
if (STORE !== 'none') await benchStore()
