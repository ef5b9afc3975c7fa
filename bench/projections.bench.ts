// Aggregates and live projections (ringstate/projections), measured against a peer in the same run.
//
// Peer: Emmett (@event-driven-io/emmett 0.42 and @event-driven-io/emmett-postgresql 0.42, the best
// TypeScript event-sourcing peer), on the same PostgreSQL server, with the same events and the same
// read model:
//   - catch-up: Emmett's PostgreSQL projector (`postgreSQLEventStoreConsumer(...).projector`, batch
//     handler, stopWhen noMessagesLeft) against `startProjections` until `waitFor(head)`.
//   - commands: Emmett's `CommandHandler` (load the stream, decide, append with the expected version)
//     against `defineAggregate(...).execute` (load the boundary, decide, conditional append).
// Baselines named per row: the no-op handler (what reading and checkpointing alone cost).
//
// Scenarios:
//   1. Catch-up of one projection over BENCH_EVENTS events (default 1,000,000; 1,000 customers):
//      a read model of per-customer totals upserted through ctx.tx, one statement per batch (the
//      batch is folded per customer first; Emmett's handler does the same), and a no-op handler.
//      Target: >= 100,000 events/s with the upserting read model, >= 3x Emmett.
//   2. `execute` with 16 concurrent callers on distinct ids for BENCH_SECONDS (default 3): each
//      command loads an account (a deposit history of a few events) and appends one event.
//      PostgreSQL and SQLite with the aggregate as defined by default (its state cache on: a command
//      on an id commanded before skips the read; the append's condition still guards it), and on
//      PostgreSQL again with `cache: false` (every command reads its boundary; loads that start
//      together share one read); Emmett's CommandHandler on PostgreSQL. Target >= 10,000
//      commands/s on PostgreSQL, >= 3x Emmett.
//   3. Live lag: the upserting projection runs live while 16 callers append single events for
//      BENCH_SECONDS; for every append, the time from its acknowledgement to the moment the
//      runner's checkpoint covers it (waitFor). p50 and p99. Target p99 < 50 ms.
// mitata times one single-caller `execute` on SQLite (a micro-op) for its report.
//
// Small mode for a quick check: BENCH_EVENTS=20000 BENCH_SECONDS=0.5 (seconds, not minutes).
// PostgreSQL: DATABASE_URL, else postgres://postgres@127.0.0.1:5432/postgres; fresh databases
// `ringstate_bench_proj_<random>[_emmett]` are created and dropped.
//
// Run from the repository root: ./node_modules/.bin/bun bench/projections.bench.ts
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { CommandHandler } from '@event-driven-io/emmett'
import { getPostgreSQLEventStore, postgreSQLEventStoreConsumer, postgreSQLProjection } from '@event-driven-io/emmett-postgresql'
import { rawSql } from '@event-driven-io/dumbo'
import { bench, run as runMitata } from 'mitata'
import postgres from 'postgres'
import { openStore, type EventStore } from '../ts/index.ts'
import { defineAggregate, defineProjection, startProjections, type ProjectionContext } from '../ts/projections/index.ts'
import { formatMs, formatRate, printSummary, type SummaryRow } from './store-workloads.ts'

const EVENTS = positive('BENCH_EVENTS', 1_000_000)
const SECONDS = positive('BENCH_SECONDS', 3)
const CUSTOMERS = 1_000
const CLIENTS = 16
const BATCH = 5_000
const serverUrl = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres'
const suffix = Math.random().toString(36).slice(2, 8)
const dbName = `ringstate_bench_proj_${suffix}`
const emmettDbName = `${dbName}_emmett`

function positive(name: string, fallback: number): number {
  const raw = process.env[name]
  if (raw === undefined) return fallback
  const value = Number(raw)
  if (!(value > 0)) throw new Error(`${name} must be a positive number`)
  return value
}

function withDatabase(url: string, name: string): string {
  const parsed = new URL(url)
  parsed.pathname = `/${name}`
  return parsed.toString()
}

const summary: SummaryRow[] = []

// ---------- read model shared by both sides: per-customer totals, one upsert per batch ----------

interface Delta {
  ids: string[]
  counts: number[]
  amounts: number[]
}

function fold(events: readonly { tags: readonly string[]; data: unknown }[]): Delta {
  const byCustomer = new Map<string, { count: number; amount: number }>()
  for (const event of events) {
    const customer = event.tags[0]!
    const row = byCustomer.get(customer) ?? { count: 0, amount: 0 }
    row.count++
    row.amount += (event.data as { amount: number }).amount
    byCustomer.set(customer, row)
  }
  const delta: Delta = { ids: [], counts: [], amounts: [] }
  for (const [id, row] of byCustomer) {
    delta.ids.push(id)
    delta.counts.push(row.count)
    delta.amounts.push(row.amount)
  }
  return delta
}

const totals = (noop: boolean) =>
  defineProjection({
    name: noop ? 'noop' : 'customer-totals',
    query: [{ types: ['OrderPlaced'] }],
    batchSize: BATCH,
    async setup(ctx) {
      if (ctx.backend === 'postgres' && !noop) {
        await ctx.tx.unsafe(
          `CREATE TABLE IF NOT EXISTS "${ctx.schema}".customer_totals (customer text PRIMARY KEY, orders bigint NOT NULL, amount bigint NOT NULL)`,
        )
      }
    },
    async handle(events, ctx: ProjectionContext) {
      if (noop || ctx.backend !== 'postgres') return
      const delta = fold(events)
      await ctx.tx.unsafe(
        `INSERT INTO "${ctx.schema}".customer_totals AS t (customer, orders, amount)
         SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[])
         ON CONFLICT (customer) DO UPDATE SET orders = t.orders + excluded.orders, amount = t.amount + excluded.amount`,
        [delta.ids, delta.counts, delta.amounts] as never[],
        { prepare: true },
      )
    },
  })

function orderBatch(from: number, n: number) {
  return Array.from({ length: n }, (_, k) => {
    const i = from + k
    return { type: 'OrderPlaced', tags: [`customer:c${i % CUSTOMERS}`], data: { amount: 1 + (i % 100) } }
  })
}

// ---------- 1. catch-up ----------

async function ringstateCatchUp(store: EventStore, noop: boolean): Promise<number> {
  const started = performance.now()
  const runner = startProjections(store, [totals(noop)], { leaseMs: 30_000 })
  await runner.waitFor(await store.head(), { timeoutMs: 3_600_000 })
  const seconds = (performance.now() - started) / 1000
  await runner.stop()
  return EVENTS / seconds
}

async function emmettCatchUp(url: string, noop: boolean, name: string): Promise<number> {
  const projection = postgreSQLProjection({
    name,
    canHandle: ['OrderPlaced'],
    handle: async (events, context) => {
      if (noop) return
      const delta = fold(events.map((e) => ({ tags: [(e.data as { customer: string }).customer], data: e.data })))
      // Values are ours (c<number>, integers): inlined as literals, one statement per batch.
      const values = delta.ids.map((id, i) => `('${id}', ${delta.counts[i]}, ${delta.amounts[i]})`).join(',')
      await context.execute.command(
        rawSql(
          `INSERT INTO emmett_customer_totals AS t (customer, orders, amount) VALUES ${values}
           ON CONFLICT (customer) DO UPDATE SET orders = t.orders + excluded.orders, amount = t.amount + excluded.amount`,
        ),
      )
    },
  })
  const consumer = postgreSQLEventStoreConsumer({ connectionString: url, stopWhen: { noMessagesLeft: true }, pulling: { batchSize: BATCH } })
  consumer.projector({ processorId: name, projection })
  const started = performance.now()
  await consumer.start()
  const seconds = (performance.now() - started) / 1000
  await consumer.close()
  return EVENTS / seconds
}

async function loadEmmett(store: ReturnType<typeof getPostgreSQLEventStore>): Promise<void> {
  // One stream per customer, appended in chunks (Emmett appends to one stream at a time).
  const chunk = Math.max(1, Math.floor(EVENTS / CUSTOMERS / 10))
  for (let from = 0; from < EVENTS; ) {
    const customer = `c${Math.floor(from / chunk) % CUSTOMERS}`
    const n = Math.min(chunk, EVENTS - from)
    await store.appendToStream(
      `customer-${customer}`,
      Array.from({ length: n }, (_, k) => ({ type: 'OrderPlaced', data: { customer, amount: 1 + ((from + k) % 100) } })),
    )
    from += n
  }
}

// ---------- 2. commands ----------

type AccountEvents = { Deposited: { amount: number }; Withdrawn: { amount: number } }
const Account = defineAggregate<{ balance: number }, AccountEvents>({
  name: 'account',
  initial: { balance: 0 },
  apply: {
    Deposited: (state, data) => ({ balance: state.balance + data.amount }),
    Withdrawn: (state, data) => ({ balance: state.balance - data.amount }),
  },
})

/** The same aggregate with its state cache off: every command reads its boundary. */
const UncachedAccount = defineAggregate<{ balance: number }, AccountEvents>({
  name: 'account',
  initial: { balance: 0 },
  apply: {
    Deposited: (state, data) => ({ balance: state.balance + data.amount }),
    Withdrawn: (state, data) => ({ balance: state.balance - data.amount }),
  },
  cache: false,
})

async function ringstateCommands(store: EventStore, aggregate: typeof Account = Account): Promise<number> {
  return timed(async (client, i) => {
    await aggregate.execute(store, `acct-${client}-${i % 50}`, (ctx) => {
      if (ctx.state.balance > 1_000_000) throw new Error('too rich')
      ctx.record('Deposited', { amount: 1 })
    })
  })
}

type EmmettAccountEvent = { type: 'Deposited'; data: { amount: number } }
const emmettHandle = CommandHandler<{ balance: number }, EmmettAccountEvent>({
  evolve: (state, event) => ({ balance: state.balance + event.data.amount }),
  initialState: () => ({ balance: 0 }),
})

async function emmettCommands(store: ReturnType<typeof getPostgreSQLEventStore>): Promise<number> {
  return timed(async (client, i) => {
    await emmettHandle(store, `acct-${client}-${i % 50}`, (state) => {
      if (state.balance > 1_000_000) throw new Error('too rich')
      return { type: 'Deposited', data: { amount: 1 } }
    })
  })
}

/** 16 callers, each awaiting its command before the next, for SECONDS after a short warm-up. */
async function timed(op: (client: number, i: number) => Promise<void>): Promise<number> {
  const counters = new Array<number>(CLIENTS).fill(0)
  const drive = async (seconds: number) => {
    let done = 0
    const started = performance.now()
    const deadline = started + seconds * 1000
    await Promise.all(
      counters.map(async (_, client) => {
        while (performance.now() < deadline) {
          await op(client, counters[client]!++)
          done++
        }
      }),
    )
    return done / ((performance.now() - started) / 1000)
  }
  await drive(Math.min(0.5, SECONDS / 4))
  return drive(SECONDS)
}

// ---------- 3. live lag ----------

async function liveLag(store: EventStore): Promise<{ p50: number; p99: number; appends: number }> {
  const def = defineProjection({ ...totals(false), name: 'live-totals', batchSize: BATCH } as Parameters<typeof defineProjection>[0])
  const runner = startProjections(store, [def], { leaseMs: 30_000 })
  await runner.waitFor(await store.head(), { timeoutMs: 3_600_000 })
  const lags: number[] = []
  const pending: Promise<void>[] = []
  const deadline = performance.now() + SECONDS * 1000
  await Promise.all(
    Array.from({ length: CLIENTS }, async (_, client) => {
      let i = 0
      while (performance.now() < deadline) {
        const { position } = await store.append(orderBatch(client * 1_000_000 + i++, 1))
        const acked = performance.now()
        pending.push(runner.waitFor(position).then(() => void lags.push(performance.now() - acked)))
      }
    }),
  )
  await Promise.all(pending)
  await runner.stop()
  lags.sort((a, b) => a - b)
  const at = (q: number) => lags[Math.min(lags.length - 1, Math.floor(q * lags.length))]!
  return { p50: at(0.5), p99: at(0.99), appends: lags.length }
}

// ---------- main ----------

const admin = postgres(serverUrl, { max: 1, onnotice: () => {} })
let pgAvailable = true
try {
  await admin`SELECT 1`
} catch {
  pgAvailable = false
  console.log(`PostgreSQL is not reachable at the configured server: the PostgreSQL scenarios are skipped`)
}
const dir = mkdtempSync(join(tmpdir(), 'ringstate-bench-projections-'))

try {
  if (pgAvailable) {
    await admin.unsafe(`CREATE DATABASE ${dbName}`)
    await admin.unsafe(`CREATE DATABASE ${emmettDbName}`)
    const url = withDatabase(serverUrl, dbName)
    const emmettUrl = withDatabase(serverUrl, emmettDbName)

    console.log(`loading ${EVENTS.toLocaleString('en-US')} events into ringstate (PostgreSQL) and Emmett ...`)
    const store = await openStore(url)
    for (let from = 0; from < EVENTS; from += 10_000) await store.append(orderBatch(from, Math.min(10_000, EVENTS - from)))
    // One Emmett store for loading and commands: dumbo keeps one pool per connection string, and
    // closing a store (or a consumer) ends it, after which a new store on that string waits forever.
    const emmettStore = getPostgreSQLEventStore(emmettUrl)
    await loadEmmett(emmettStore)
    const emmettSetup = postgres(emmettUrl, { max: 1, onnotice: () => {} })
    await emmettSetup.unsafe(
      `CREATE TABLE IF NOT EXISTS emmett_customer_totals (customer text PRIMARY KEY, orders bigint NOT NULL, amount bigint NOT NULL)`,
    )
    await emmettSetup.end()

    const rsUpsert = await ringstateCatchUp(store, false)
    const rsNoop = await ringstateCatchUp(store, true)
    console.log('execute with 16 callers on PostgreSQL ...')
    const rsCommands = await ringstateCommands(store)
    const rsUncached = await ringstateCommands(store, UncachedAccount)
    console.log('Emmett CommandHandler with 16 callers ...')
    const emCommands = await emmettCommands(emmettStore)
    console.log('Emmett catch-up ...')
    const emUpsert = await emmettCatchUp(emmettUrl, false, 'emmett-totals')
    const emNoop = await emmettCatchUp(emmettUrl, true, 'emmett-noop')
    await emmettStore.close()
    console.log(`catch-up, upserting read model: ringstate ${formatRate(rsUpsert)}, Emmett ${formatRate(emUpsert)}`)
    console.log(`catch-up, no-op handler:        ringstate ${formatRate(rsNoop)}, Emmett ${formatRate(emNoop)}`)
    console.log(`execute, 16 callers: ringstate ${formatRate(rsCommands)} (cache: false ${formatRate(rsUncached)}), Emmett CommandHandler ${formatRate(emCommands)}`)
    summary.push({
      scenario: `catch-up ${EVENTS.toLocaleString('en-US')} events, upsert (events/s)`,
      ringstate: formatRate(rsUpsert),
      baseline: `Emmett ${formatRate(emUpsert)}`,
      ratio: rsUpsert / emUpsert,
      target: '>= 100,000/s and >= 3x',
      met: rsUpsert >= 100_000 && rsUpsert / emUpsert >= 3,
    })
    summary.push({
      scenario: 'catch-up, no-op handler (events/s)',
      ringstate: formatRate(rsNoop),
      baseline: `Emmett ${formatRate(emNoop)}`,
      ratio: rsNoop / emNoop,
    })
    summary.push({
      scenario: 'execute, 16 callers, PostgreSQL (commands/s)',
      ringstate: formatRate(rsCommands),
      baseline: `Emmett ${formatRate(emCommands)}`,
      ratio: rsCommands / emCommands,
      target: '>= 10,000/s and >= 3x',
      met: rsCommands >= 10_000 && rsCommands / emCommands >= 3,
    })
    summary.push({
      scenario: 'execute, cache: false, 16 callers, PostgreSQL',
      ringstate: formatRate(rsUncached),
      baseline: `Emmett ${formatRate(emCommands)}`,
      ratio: rsUncached / emCommands,
    })

    console.log('live lag ...')
    const lag = await liveLag(store)
    console.log(`live lag over ${lag.appends} appends: p50 ${formatMs(lag.p50)}, p99 ${formatMs(lag.p99)}`)
    summary.push({ scenario: 'live lag p50, 16 appenders', ringstate: formatMs(lag.p50), baseline: '—' })
    summary.push({ scenario: 'live lag p99, 16 appenders', ringstate: formatMs(lag.p99), baseline: '—', target: '< 50 ms', met: lag.p99 < 50 })
    await store.close()
  }

  const sqlite = await openStore(`sqlite:${join(dir, 'bench.db')}`)
  const sqliteCommands = await ringstateCommands(sqlite)
  console.log(`execute, 16 callers, SQLite: ${formatRate(sqliteCommands)}`)
  summary.push({ scenario: 'execute, 16 callers, SQLite (commands/s)', ringstate: formatRate(sqliteCommands), baseline: '—' })
  let i = 0
  bench('execute, 1 caller, SQLite', async () => {
    await Account.execute(sqlite, `single-${i++ % 100}`, (ctx) => ctx.record('Deposited', { amount: 1 }))
  })
  await runMitata()
  await sqlite.close()

  console.log()
  printSummary(summary)
} finally {
  rmSync(dir, { recursive: true, force: true })
  if (pgAvailable) {
    for (const name of [dbName, emmettDbName]) await admin.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch(() => {})
  }
  await admin.end()
}
