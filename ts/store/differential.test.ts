/**
 * Seeded randomized differential test: the SQLite and PostgreSQL stores against the memory store.
 *
 * A generator draws operations from a seeded PRNG: appends with and without conditions (some bound
 * to fail) and with and without ids (fresh ones, retries of stored ones, half-stored mixes, the
 * same ids with other data, invalid input), reads with after/before/limit/backwards, `follow`
 * catch-ups, and batches of appends started together. Each operation runs on the store under test
 * and on a MemoryStore fed the same operations; results are compared whole (positions, ids, events,
 * errors by code). A live `subscribe` and `follow` run on both for the whole run and must deliver
 * exactly what a read of their query returns.
 *
 * Concurrent batches: the members are started in one tick on the store under test; whatever order
 * it committed them in must be a serial order, so the reference replays them one by one in that
 * order (successes by position, then failures: the log only grows, so a member that failed then
 * also fails last) and every member's outcome must match.
 *
 * Reproduce a failure with the seed it prints: `RINGSTATE_SEED=<n> bun test ts/store/differential.test.ts`.
 * `RINGSTATE_DIFF_OPS` sets the number of operations (default 1,200). After a concurrent batch the
 * sequence follows the order the store committed in, so a rerun is exact up to the first batch the
 * store ordered differently.
 */
import { afterAll, describe, expect, test } from 'bun:test'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freshDatabase, type FreshDatabase } from '../testing/postgres.ts'
import { MemoryStore } from './memory/index.ts'
import { openStore } from './open.ts'
import type { AppendCondition, AppendResult, EventInput, EventStore, Query, QueryItem, ReadOptions, SequencedEvent, StoreOptions } from './types.ts'
import { seededRandom } from '../testing/seeded-random.ts'

const SEED = seedFromEnv()
const OPS = Number(process.env.RINGSTATE_DIFF_OPS || 1_200)
/** How long a catch-up or a live follower may take to deliver what it must. */
const DELIVERY_DEADLINE_MS = 30_000

function seedFromEnv(): number {
  const text = process.env.RINGSTATE_SEED
  if (text === undefined || text === '') return (Math.random() * 2 ** 32) >>> 0
  const seed = Number(text)
  if (!Number.isSafeInteger(seed) || seed < 0) throw new Error(`RINGSTATE_SEED must be a non-negative integer, got ${JSON.stringify(text)}`)
  return seed >>> 0
}

/** Draws from one seeded sequence, the same on every runtime for a given seed. */
function prng(seed: number) {
  const next = seededRandom(seed)
  const int = (low: number, high: number) => low + Math.floor(next() * (high - low + 1))
  return {
    chance: (p: number) => next() < p,
    int,
    pick: <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)]!,
    /** A subset of `items` in their order, each kept with probability `p`. */
    some: <T>(items: readonly T[], p: number): T[] => items.filter(() => next() < p),
  }
}
type Random = ReturnType<typeof prng>

// ---- the operations, described independently of any store ---------------------------------------

/** Where an event's id comes from: none (the store makes one), a fresh one, or one a store returned. */
type IdSpec = { kind: 'none' } | { kind: 'fresh'; id: string } | { kind: 'stored'; append: number; index: number }

interface GenEvent {
  type: string
  tags: string[]
  data: unknown
  metadata?: Record<string, unknown>
  id: IdSpec
}

interface GenAppend {
  /** Unique per generated append; a member started twice in one batch is one object, one key. */
  key: number
  events: GenEvent[]
  condition?: AppendCondition
}

type Op =
  | { kind: 'append'; append: GenAppend }
  | { kind: 'concurrent'; members: GenAppend[] }
  | { kind: 'read'; query: Query; options: ReadOptions; via: 'read' | 'query' }
  | { kind: 'follow'; query: Query; after?: bigint; batchSize: number }
  | { kind: 'head' }

type Outcome = { ok: { position: bigint; count: number; ids: string[] } } | { error: { code: string; conflict?: bigint } }

const TYPES = ['Opened', 'Deposited', 'Deposited', 'Withdrawn', 'Closed'] as const
const TAGS = ['acct:1', 'acct:2', 'acct:3', 'acct:4', 'acct:5', 'region:eu', 'region:us', 'vip'] as const

/** One store's view of the run: the ids it returned per append, and its generated ids' stable names. */
class Side {
  readonly idsByAppend = new Map<number, string[]>()
  /** A generated id -> `gen:<append>:<index>`, the same name on both sides. */
  readonly generated = new Map<string, string>()
  readonly live: { subscribe: SequencedEvent[]; follow: SequencedEvent[]; through: bigint; error?: unknown } = {
    subscribe: [],
    follow: [],
    through: 0n,
  }

  readonly name: string
  readonly store: EventStore

  constructor(name: string, store: EventStore) {
    this.name = name
    this.store = store
  }

  /** The events of `append` as this store receives them (stored ids resolved to its own). */
  inputs(append: GenAppend): EventInput[] {
    return append.events.map((event) => {
      const input: EventInput = { type: event.type, tags: event.tags, data: event.data }
      if (event.metadata !== undefined) input.metadata = event.metadata
      if (event.id.kind === 'fresh') input.id = event.id.id
      if (event.id.kind === 'stored') input.id = this.idsByAppend.get(event.id.append)![event.id.index]!
      return input
    })
  }

  async run(append: GenAppend): Promise<Outcome> {
    return this.settle(this.store.append(this.inputs(append), append.condition), append)
  }

  async settle(promise: Promise<AppendResult>, append: GenAppend): Promise<Outcome> {
    try {
      const result = await promise
      // The first answer names the generated ids (a twin or a retry answers with stored ones).
      if (!this.idsByAppend.has(append.key) && result.ids.length === append.events.length) {
        append.events.forEach((event, k) => {
          if (event.id.kind === 'none' && !this.generated.has(result.ids[k]!)) this.generated.set(result.ids[k]!, `gen:${append.key}:${k}`)
        })
        this.idsByAppend.set(append.key, result.ids)
      }
      return { ok: { position: result.position, count: result.count, ids: result.ids.map((id) => this.canonical(id)) } }
    } catch (error) {
      return { error: errorOf(error) }
    }
  }

  canonical(id: string): string {
    return this.generated.get(id) ?? id
  }

  view(event: SequencedEvent) {
    return {
      position: event.position,
      type: event.type,
      tags: event.tags,
      data: event.data,
      metadata: event.metadata,
      id: this.canonical(event.id),
    }
  }
}

function errorOf(error: unknown): { code: string; conflict?: bigint } {
  const code = (error as { code?: unknown })?.code
  if (typeof code !== 'string') return { code: `not a ringstate error: ${String(error)}` }
  const conflict = (error as { conflict?: unknown }).conflict
  return typeof conflict === 'bigint' ? { code, conflict } : { code }
}

/** What the generator knows: read from the reference only, so both sides get the same operations. */
interface Model {
  head: bigint
  /** Indexes of the operations whose append wrote events on the reference, with their events. */
  written: { key: number; events: GenEvent[] }[]
  freshIds: number
  nextKey: number
}

function genQuery(random: Random): Query {
  if (random.chance(0.08)) return 'all'
  if (random.chance(0.02)) return []
  const items: QueryItem[] = []
  const count = random.int(1, 3)
  for (let i = 0; i < count; i++) {
    const item: { types?: string[]; tags?: string[] } = {}
    if (random.chance(0.6)) item.types = [...new Set(random.some(TYPES, 0.35).concat(random.pick(TYPES)))]
    if (random.chance(0.7) || item.types === undefined) item.tags = [...new Set([random.pick(TAGS), ...random.some(TAGS, 0.1)])]
    items.push(item)
  }
  return items
}

/** A position near the head (most conditions are written against a recent read), sometimes anywhere. */
function genPosition(random: Random, head: bigint): bigint {
  if (head === 0n || random.chance(0.3)) return BigInt(random.int(0, Number(head)))
  return head - BigInt(random.int(0, Math.min(5, Number(head))))
}

function genData(random: Random, n: number): unknown {
  switch (random.int(0, 6)) {
    case 0:
      return undefined
    case 1:
      return null
    case 2:
      return n
    case 3:
      return `text ${n} ✓ "quoted" \\ \n`
    case 4:
      return [n, { nested: [true, false] }]
    default:
      return { n, amount: random.int(-1000, 1000) / 4, note: random.chance(0.2) ? 'ünïcødé 𝄞' : 'plain' }
  }
}

function genEvents(random: Random, model: Model, key: number, idChance: number): GenEvent[] {
  const count = random.chance(0.7) ? random.int(1, 2) : random.int(3, 8)
  return Array.from({ length: count }, (_, k) => {
    const event: GenEvent = {
      type: random.pick(TYPES),
      tags: random.chance(0.1) ? [] : [...new Set(random.some(TAGS, 0.2).concat(random.pick(TAGS)))],
      data: genData(random, key * 10 + k),
      id: random.chance(idChance) ? { kind: 'fresh', id: `evt-${key}-${k}-${model.freshIds++}` } : { kind: 'none' },
    }
    if (random.chance(0.3)) event.metadata = { correlationId: `c-${key}`, user: random.pick(['ada', 'bob']) }
    return event
  })
}

function genCondition(random: Random, model: Model): AppendCondition {
  const condition: AppendCondition = { failIfEventsMatch: genQuery(random) }
  if (random.chance(0.85)) condition.after = genPosition(random, model.head)
  if (random.chance(0.01)) condition.after = -1n
  return condition
}

/** A retry of a stored append: the same ids, usually the same events; sometimes a variation. */
function genRetry(random: Random, model: Model): GenAppend {
  const original = random.pick(model.written)
  const stored = original.events.map((event, k): GenEvent => ({ ...event, id: { kind: 'stored', append: original.key, index: k } }))
  const variation = random.int(0, 9)
  let events = stored
  if (variation === 0 && stored.length > 1) events = stored.slice(0, random.int(1, stored.length - 1)) // a part of it
  if (variation === 1) events = stored.map((event) => ({ ...event, data: { other: true } })) // same ids, other data
  if (variation === 2) events = [...stored, { type: 'Deposited', tags: ['acct:1'], data: 1, id: { kind: 'fresh', id: `mix-${model.freshIds++}` } }]
  if (variation === 3) events = [...stored].reverse()
  const append: GenAppend = { key: model.nextKey++, events }
  // Idempotency is checked before the condition: a retry under a condition that now fails still answers.
  if (random.chance(0.3)) append.condition = { failIfEventsMatch: 'all', after: 0n }
  return append
}

function genAppend(random: Random, model: Model): GenAppend {
  if (model.written.length > 0 && random.chance(0.18)) return genRetry(random, model)
  const key = model.nextKey++
  const append: GenAppend = { key, events: genEvents(random, model, key, 0.5) }
  if (random.chance(0.5)) append.condition = genCondition(random, model)
  if (random.chance(0.03)) {
    // Invalid input: nothing may be written, and the error code must agree.
    const event = append.events[0]!
    switch (random.int(0, 3)) {
      case 0:
        event.type = ''
        break
      case 1:
        event.tags = ['']
        break
      case 2:
        append.events.push({ ...event, id: event.id.kind === 'fresh' ? event.id : { kind: 'fresh', id: 'twice' } })
        if (event.id.kind !== 'fresh') event.id = { kind: 'fresh', id: 'twice' }
        break
      default:
        event.type = 'X'.repeat(129)
    }
  }
  return append
}

function genOp(random: Random, model: Model): Op {
  const roll = random.int(0, 99)
  if (roll < 42) return { kind: 'append', append: genAppend(random, model) }
  if (roll < 52) {
    const members: GenAppend[] = []
    const size = random.int(2, 8)
    for (let m = 0; m < size; m++) {
      // The same append twice at once (only with every id given): stored once, one answer for both.
      const twins = members.filter((member) => member.events.every((event) => event.id.kind !== 'none'))
      if (twins.length > 0 && random.chance(0.1)) {
        members.push(random.pick(twins))
        continue
      }
      let member: GenAppend
      if (model.written.length > 0 && random.chance(0.15)) member = genRetry(random, model)
      else {
        const key = model.nextKey++
        member = { key, events: genEvents(random, model, key, 0.6) }
      }
      if (member.condition === undefined && random.chance(0.5)) member.condition = genCondition(random, model)
      members.push(member)
    }
    return { kind: 'concurrent', members }
  }
  if (roll < 82) {
    const options: ReadOptions = {}
    if (random.chance(0.5)) options.after = genPosition(random, model.head)
    if (random.chance(0.4)) options.before = BigInt(random.int(0, Number(model.head) + 2))
    if (random.chance(0.5)) options.limit = random.int(1, 25)
    if (random.chance(0.4)) options.backwards = true
    if (random.chance(0.01)) options.limit = -1
    if (random.chance(0.01)) options.before = -1n
    return { kind: 'read', query: genQuery(random), options, via: random.chance(0.5) ? 'read' : 'query' }
  }
  if (roll < 90) {
    return {
      kind: 'follow',
      query: genQuery(random),
      after: random.chance(0.7) ? genPosition(random, model.head) : undefined,
      batchSize: random.pick([1, 2, 3, 7, 50, 1000]),
    }
  }
  return { kind: 'head' }
}

// ---- running and comparing ----------------------------------------------------------------------

async function collect<T>(make: () => AsyncIterable<T>): Promise<T[] | { error: { code: string } }> {
  try {
    const out: T[] = []
    for await (const item of make()) out.push(item)
    return out
  } catch (error) {
    return { error: errorOf(error) }
  }
}

/**
 * Follow until the batches reach the head as it was when following began; returns the events and
 * checks the batch invariants on the way (through never decreases, events ascend, lie above the
 * previous `through` and at or below their batch's, at most `batchSize` per batch).
 */
async function followToHead(side: Side, query: Query, after: bigint | undefined, batchSize: number) {
  const head = await side.store.head()
  // Nothing to catch up: a follower would only wait for new events.
  if ((after ?? 0n) >= head) return []
  const events: SequencedEvent[] = []
  let through = after ?? 0n
  const signal = AbortSignal.timeout(DELIVERY_DEADLINE_MS)
  try {
    for await (const batch of side.store.follow(query, { after, batchSize, signal })) {
      if (batch.through < through) throw new Error(`follow: through went back from ${through} to ${batch.through}`)
      if (batch.events.length > batchSize) throw new Error(`follow: ${batch.events.length} events in a batch of at most ${batchSize}`)
      for (const event of batch.events) {
        if (event.position <= through || event.position > batch.through) {
          throw new Error(`follow: event ${event.position} outside (${through}, ${batch.through}]`)
        }
        through = event.position
        events.push(event)
      }
      through = batch.through
      // Not `caughtUp` as well: a batch that ends exactly at the head need not know it is there.
      if (through >= head) break
    }
  } catch (error) {
    if (signal.aborted) throw new Error(`follow did not reach head ${head} within ${DELIVERY_DEADLINE_MS} ms (through ${through})`)
    return { error: errorOf(error) }
  }
  if (through < head) throw new Error(`follow ended at ${through} before the head ${head}`)
  return events.map((event) => side.view(event))
}

function describeOp(op: Op): string {
  return JSON.stringify(op, (_, value) => (typeof value === 'bigint' ? `${value}n` : value))
}

/** What a run exercised, counted on the reference: so a generator that stops producing a case shows. */
type Tally = Record<string, number>

function count(tally: Tally, key: string): void {
  tally[key] = (tally[key] ?? 0) + 1
}

function tallyAppend(tally: Tally, outcome: Outcome, head: bigint): void {
  if ('error' in outcome) count(tally, `append failed ${outcome.error.code}`)
  else if (outcome.ok.position <= head) count(tally, 'append answered from stored ids')
  else count(tally, 'append wrote')
}

/** Drive `subject` and the reference through `ops` operations drawn from `seed`; what it exercised. */
async function differential(subjectStore: EventStore, seed: number, ops: number, options?: StoreOptions): Promise<Tally> {
  const tally: Tally = {}
  const random = prng(seed)
  const subject = new Side('subject', subjectStore)
  const reference = new Side('memory', new MemoryStore(options))
  const model: Model = { head: 0n, written: [], freshIds: 0, nextKey: 0 }
  const liveQueries = { subscribe: genQuery(random), follow: genQuery(random) }
  // An invalid live query would end the run's only live check: draw until both are valid.
  while (!Array.isArray(liveQueries.subscribe) || liveQueries.subscribe.length === 0) liveQueries.subscribe = genQuery(random)
  while (!Array.isArray(liveQueries.follow) || liveQueries.follow.length === 0) liveQueries.follow = genQuery(random)
  const stopLive = new AbortController()
  const liveRuns = [subject, reference].map((side) => startLive(side, liveQueries, stopLive.signal))

  let index = 0
  let op: Op | undefined
  const mismatch = (what: string, got: unknown, expected: unknown) =>
    new Error(
      `RINGSTATE_SEED=${seed}: operation ${index} (${op === undefined ? 'final check' : describeOp(op)}) differs from the memory store: ${what}`,
      { cause: { got, expected } },
    )
  const same = (what: string, got: unknown, expected: unknown) => {
    try {
      expect(got).toEqual(expected)
    } catch (error) {
      throw mismatch(`${what}\n${(error as Error).message}`, got, expected)
    }
  }

  try {
    for (index = 0; index < ops; index++) {
      op = genOp(random, model)
      switch (op.kind) {
        case 'append': {
          const got = await subject.run(op.append)
          const expected = await reference.run(op.append)
          same('append result', got, expected)
          tallyAppend(tally, expected, model.head)
          if (op.append.condition !== undefined) count(tally, 'append with a condition')
          if ('ok' in expected && expected.ok.position > model.head) model.written.push({ key: op.append.key, events: op.append.events })
          break
        }
        case 'concurrent': {
          const members = op.members
          // Every member is started before any settles: they reach the store in one tick.
          const got = await Promise.all(members.map((member) => subject.settle(subject.store.append(subject.inputs(member), member.condition), member)))
          // Replay on the reference in the order the subject committed.
          const order = members.map((_, m) => m).sort((a, b) => {
            const ra = got[a]!
            const rb = got[b]!
            if ('ok' in ra && 'ok' in rb) return ra.ok.position === rb.ok.position ? a - b : ra.ok.position < rb.ok.position ? -1 : 1
            if ('ok' in ra) return -1
            if ('ok' in rb) return 1
            return a - b
          })
          const expected: Outcome[] = new Array(members.length)
          for (const m of order) expected[m] = await reference.run(members[m]!)
          same('outcomes of appends started together (replayed on the memory store in commit order)', got, expected)
          count(tally, 'concurrent batch')
          for (const outcome of expected) tallyAppend(tally, outcome, model.head)
          const wrote = new Set<number>()
          for (const m of order) {
            const outcome = expected[m]!
            if ('ok' in outcome && outcome.ok.position > model.head && !wrote.has(members[m]!.key)) {
              wrote.add(members[m]!.key)
              model.written.push({ key: members[m]!.key, events: members[m]!.events })
            }
          }
          break
        }
        case 'read': {
          const { query, options, via } = op
          const run = async (side: Side) => {
            const events = via === 'query'
              ? await side.store.query(query, options).then((found) => found, (error: unknown) => ({ error: errorOf(error) }))
              : await collect(() => side.store.read(query, options))
            return Array.isArray(events) ? events.map((event) => side.view(event)) : events
          }
          const expected = await run(reference)
          same(`${via} result`, await run(subject), expected)
          count(tally, Array.isArray(expected) ? (options.before !== undefined ? 'read with before' : 'read') : `read failed ${expected.error.code}`)
          break
        }
        case 'follow': {
          const { query, after, batchSize } = op
          const expected = await followToHead(reference, query, after, batchSize)
          same('events delivered by follow up to the head', await followToHead(subject, query, after, batchSize), expected)
          count(tally, Array.isArray(expected) ? 'follow' : `follow failed ${expected.error.code}`)
          break
        }
        case 'head':
          same('head', await subject.store.head(), await reference.store.head())
          break
      }
      model.head = await reference.store.head()
    }
    op = undefined

    same('the whole log', (await subject.store.query('all')).map((e) => subject.view(e)), (await reference.store.query('all')).map((e) => reference.view(e)))
    same('head', await subject.store.head(), model.head)
    // The live subscribers saw exactly what a read of their query returns, in order.
    for (const side of [subject, reference]) {
      const expected = {
        subscribe: (await side.store.query(liveQueries.subscribe)).map((e) => side.view(e)),
        follow: (await side.store.query(liveQueries.follow)).map((e) => side.view(e)),
      }
      const deadline = Date.now() + DELIVERY_DEADLINE_MS
      while (
        side.live.error === undefined &&
        (side.live.subscribe.length < expected.subscribe.length || side.live.through < model.head) &&
        Date.now() < deadline
      ) {
        await new Promise((resolve) => setTimeout(resolve, 5))
      }
      same(`${side.name}: live subscribe and follow deliveries`, {
        error: side.live.error,
        subscribe: side.live.subscribe.map((e) => side.view(e)),
        follow: side.live.follow.map((e) => side.view(e)),
        reachedHead: side.live.through >= model.head,
      }, { error: undefined, ...expected, reachedHead: true })
    }
  } finally {
    stopLive.abort()
    await Promise.all(liveRuns)
    await reference.store.close()
  }
  return tally
}

/** A full-size run must have exercised every kind of case, or the test proves less than it says. */
function expectCoverage(tally: Tally, ops: number): void {
  console.log(`differential run (RINGSTATE_SEED=${SEED}, ${ops} operations): ${JSON.stringify(tally)}`)
  if (ops < 1_000) return
  const at = (key: string) => tally[key] ?? 0
  expect({
    wrote: at('append wrote') >= 200,
    conditional: at('append with a condition') >= 100,
    conditionFailed: at('append failed APPEND_CONDITION_FAILED') >= 20,
    answeredFromIds: at('append answered from stored ids') >= 20,
    invalid: at('append failed INVALID_EVENT') >= 3,
    concurrent: at('concurrent batch') >= 50,
    reads: at('read') + at('read with before') >= 200,
    readsWithBefore: at('read with before') >= 50,
    follows: at('follow') >= 30,
  }).toEqual({
    wrote: true,
    conditional: true,
    conditionFailed: true,
    answeredFromIds: true,
    invalid: true,
    concurrent: true,
    reads: true,
    readsWithBefore: true,
    follows: true,
  })
}

/** A `subscribe` and a `follow` from the start, collecting into `side.live` until `signal` aborts. */
function startLive(side: Side, queries: { subscribe: Query; follow: Query }, signal: AbortSignal): Promise<void> {
  const record = (error: unknown) => {
    if (!signal.aborted) side.live.error ??= errorOf(error)
  }
  const subscribing = (async () => {
    for await (const event of side.store.subscribe(queries.subscribe, { signal })) side.live.subscribe.push(event)
  })().catch(record)
  const following = (async () => {
    for await (const batch of side.store.follow(queries.follow, { signal })) {
      side.live.follow.push(...batch.events)
      side.live.through = batch.through
    }
  })().catch(record)
  return Promise.all([subscribing, following]).then(() => undefined)
}

// ---- the backends -------------------------------------------------------------------------------

/**
 * Small pages and batches put paging and batch boundaries everywhere (reads, follow catch-ups, the
 * tail, group commits split mid-run); on PostgreSQL the pipelined writer as well.
 */
const SMALL = { streamBatchSize: 7, maxAppendBatch: 3 }

describe('randomized differential test against the memory store', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ringstate-differential-'))
  let db: FreshDatabase | undefined
  afterAll(async () => {
    rmSync(dir, { recursive: true, force: true })
    await db?.drop()
  })

  test(`SQLite agrees with the memory store on ${OPS} random operations (RINGSTATE_SEED=${SEED})`, async () => {
    const store = await openStore(`sqlite:${join(dir, 'differential.db')}`)
    try {
      expectCoverage(await differential(store, SEED, OPS), OPS)
    } finally {
      await store.close()
    }
  })

  test(`SQLite with pages of 7 and batches of 3 agrees with the memory store (RINGSTATE_SEED=${SEED})`, async () => {
    const store = await openStore(`sqlite:${join(dir, 'small-pages.db')}`, SMALL)
    try {
      expectCoverage(await differential(store, SEED, OPS, SMALL), OPS)
    } finally {
      await store.close()
    }
  })

  test(`PostgreSQL agrees with the memory store on ${OPS} random operations (RINGSTATE_SEED=${SEED})`, async () => {
    db ??= await freshDatabase()
    const store = await openStore(db.url)
    try {
      expectCoverage(await differential(store, SEED, OPS), OPS)
    } finally {
      await store.close()
    }
  })

  test(`PostgreSQL with pages of 7, batches of 3 and 4 pipelined batches agrees with the memory store (RINGSTATE_SEED=${SEED})`, async () => {
    db ??= await freshDatabase()
    const store = await openStore(db.url, { ...SMALL, pipelineDepth: 4, schema: 'small_pages' })
    try {
      expectCoverage(await differential(store, SEED, OPS, SMALL), OPS)
    } finally {
      await store.close()
    }
  })
})
