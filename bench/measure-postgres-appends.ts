/**
 * A quick measurement (not a test) of the PostgreSQL store's append throughput.
 *
 *   DATABASE_URL=postgres://postgres@127.0.0.1:5432/test bun bench/measure-postgres-appends.ts [scale]
 *
 * `scale` (default 1) multiplies every count: 0.01 checks the script runs, in seconds.
 *
 * Creates a scratch database on that server, prints appends/s for: 1 and 16 concurrent callers of
 * unconditional single-event appends (one store, so 16 callers share group commits), 16 callers of
 * conditional appends on disjoint boundaries, and the baseline: 16 concurrent raw single-row
 * INSERTs in autocommit on 16 connections. Drops the database afterwards.
 *
 * Measured on the 2-core development machine (PostgreSQL 15, other work running), appends/s:
 *
 *   |                                     | before  | after   |
 *   |-------------------------------------|---------|---------|
 *   | unconditional, 1 caller             | 1,960   | 2,059   |
 *   | unconditional, 16 callers           | 19,376  | 22,761  |
 *   | conditional, disjoint, 16 callers   | 6,882   | 20,033  |
 *   | raw single-row INSERT, 16 conns     | 12,132  | 13,433  |
 *
 * "before" formed conditional batches of 15 and 1 alternately (the writer took a batch before
 * every caller's continuation had run) and evaluated conditions in one UNION query over all item
 * kinds; see ts/store/postgres/schema.ts for where the time of a batch goes now.
 *
 * Last, the ceiling the database sets: `ringstate_append_batch` called directly, serially, with
 * batches of 16 single-event appends, with synchronous_commit on (what the store does) and off (to
 * show the share of the commit's WAL flush, which the append lock is held through).
 */
import postgres from 'postgres'
import { freshDatabase } from '../ts/testing/postgres.ts'
import { openPostgresStore } from '../ts/store/postgres/index.ts'

const scale = Number(process.argv[2] ?? 1)
if (!(scale > 0)) throw new Error(`scale must be a positive number, got ${process.argv[2]}`)
const scaled = (count: number) => Math.max(1, Math.round(count * scale))
const db = await freshDatabase()
try {
  const store = await openPostgresStore(db.url)
  const rate = async (label: string, callers: number, total: number, work: (caller: number, i: number) => Promise<unknown>) => {
    let issued = 0
    const started = performance.now()
    await Promise.all(Array.from({ length: callers }, async (_, caller) => {
      while (issued < total) await work(caller, issued++)
    }))
    const perSecond = Math.round(total / ((performance.now() - started) / 1000))
    console.log(`${label}: ${perSecond}/s (${total} by ${callers} callers)`)
  }
  await rate('unconditional append, 1 caller', 1, scaled(2_000), (c) => store.append({ type: 'M', tags: [`c:${c}`], data: { c } }))
  await rate('unconditional append, 16 callers', 16, scaled(30_000), (c) => store.append({ type: 'M', tags: [`c:${c}`], data: { c } }))
  const last = new Map<number, bigint>()
  await rate('conditional append on disjoint boundaries, 16 callers', 16, scaled(30_000), async (c) => {
    const tag = `owner:${c}`
    const result = await store.append({ type: 'Owned', tags: [tag] }, { failIfEventsMatch: [{ tags: [tag] }], after: last.get(c) ?? 0n })
    last.set(c, result.position)
  })
  await store.close()

  const raw = postgres(db.url, { max: 16, onnotice: () => {} })
  await raw`CREATE TABLE raw_events (id bigserial PRIMARY KEY, type text, tags text[], data json)`
  await rate('baseline: raw single-row INSERT, 16 connections', 16, scaled(10_000), (c) =>
    raw`INSERT INTO raw_events (type, tags, data) VALUES ('M', ${[`c:${c}`]}, ${JSON.stringify({ c })}::json)`)
  await raw.end()

  const direct = postgres(db.url, { max: 1, onnotice: () => {} })
  // The arrays go as text parameters, built here as the store builds them, so only the call is timed.
  const list = (values: readonly (string | number)[]) => `{${values.map((v) => (typeof v === 'number' ? v : JSON.stringify(v))).join(',')}}`
  const ordinals = list(Array.from({ length: 16 }, (_, i) => i + 1))
  const batchOf16 = () => [
    list(Array(16).fill(1)), list(Array(16).fill('f')), ordinals, list(Array(16).fill('M')), ordinals, ordinals,
    list(Array.from({ length: 16 }, (_, i) => `c:${i}`)), list(Array(16).fill('{"c":1}')), list(Array(16).fill('{}')),
    list(Array.from({ length: 16 }, () => crypto.randomUUID())),
  ]
  // The store's tables and function live in the schema `ringstate` (the store's default `schema` option).
  const call = `SELECT count(*) FROM ringstate.ringstate_append_batch($1::int[], $2::boolean[], $3::int[], $4::text[], $5::int[], $6::int[],
    $7::text[], $8::text[], $9::text[], $10::text[], '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}',
    '{}', '{}', '{}')`
  for (const mode of ['on', 'off', 'on', 'off']) {
    await direct.unsafe(`SET synchronous_commit = ${mode}`)
    const batches = scaled(2_000)
    const started = performance.now()
    for (let i = 0; i < batches; i++) await direct.unsafe(call, batchOf16(), { prepare: true })
    const ms = (performance.now() - started) / batches
    console.log(`batch function alone, 16 appends a call, synchronous_commit ${mode}: ${ms.toFixed(3)} ms a batch = ${Math.round(16_000 / ms)} appends/s`)
  }
  await direct.end()
} finally {
  await db.drop()
}
