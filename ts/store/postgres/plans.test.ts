/**
 * Query plans that keep reads and condition checks proportional to what they find, not to the size
 * of the log, on a log where one event type dominates (the case that misleads the planner).
 */
import { afterAll, beforeAll, expect, test } from 'bun:test'
import postgres from 'postgres'
import { freshDatabase, type FreshDatabase } from '../../testing/postgres.ts'
import { openPostgresStore } from './index.ts'
import { pageSql } from './sql.ts'

let db: FreshDatabase
let sql: postgres.Sql
beforeAll(async () => {
  db = await freshDatabase()
  await (await openPostgresStore(db.url)).close()
  sql = postgres(db.url, { max: 1, onnotice: () => {} })
  // 20,000 events: nine in ten of type Common, one in ten Rare, so `type = $1` looks unselective.
  await sql`INSERT INTO ringstate.events (position, type, tags, data, metadata, id, recorded_at)
    SELECT g, CASE WHEN g % 10 = 0 THEN 'Rare' ELSE 'Common' END, ARRAY['acct:' || (g % 500)], 'null', '{}', 'e' || g, now()
    FROM generate_series(1, 20000) AS g`
  await sql`INSERT INTO ringstate.event_tags (tag, position) SELECT unnest(tags), position FROM ringstate.events`
  await sql`ANALYZE ringstate.events`
  await sql`ANALYZE ringstate.event_tags`
})
afterAll(async () => {
  await sql.end()
  await db.drop()
})

test('a type-only read walks events (type, position) under a generic plan, forwards and backwards', async () => {
  await sql`SET plan_cache_mode = force_generic_plan`
  try {
    for (const descending of [false, true]) {
      for (const type of ['Missing', 'Rare', 'Common']) {
        const page = pageSql([{ types: [type] }], 100n, undefined, 50, descending)
        const plan = (await sql.unsafe(`EXPLAIN ${page.text}`, page.params as any[])).map((row: any) => row['QUERY PLAN']).join('\n')
        expect(plan).toMatch(/using events_type_position on (ringstate\.)?events/)
        expect(plan).not.toMatch(/using events_pkey on (ringstate\.)?events\s+\(.*\)\n\s+Index Cond: \("position" > /)
        // One type: the events come straight from (type, position), not joined back by position.
        expect(plan).not.toMatch(/events_pkey|Join|Nested Loop/)
      }
    }
  } finally {
    await sql`RESET plan_cache_mode`
  }
})

test('a read of several tags fetches the positions it found by primary key, never walking the log between them', async () => {
  await sql`SET plan_cache_mode = force_generic_plan`
  try {
    for (const descending of [false, true]) {
      const query = Array.from({ length: 16 }, (_, i) => ({ types: ['Rare', 'Common'], tags: [`acct:${i}`] }))
      const page = pageSql(query, 100n, undefined, 1000, descending)
      const plan = (await sql.unsafe(`EXPLAIN ${page.text}`, page.params as any[])).map((row: any) => row['QUERY PLAN']).join('\n')
      expect(plan).not.toMatch(/Merge (Semi )?Join/)
      expect(plan).toMatch(/using events_pkey on (ringstate\.)?events\s+\(.*\)\n\s+Index Cond: \("position" = ANY/)
    }
  } finally {
    await sql`RESET plan_cache_mode`
  }
})

test('a type-only condition is checked on events (type, position) inside the batch function', async () => {
  const plans: string[] = []
  const traced = postgres(db.url, { max: 1, onnotice: (notice) => plans.push(String(notice.message)) })
  try {
    await traced`LOAD 'auto_explain'`
    await traced`SELECT set_config('auto_explain.log_min_duration', '0', false), set_config('auto_explain.log_nested_statements', 'on', false), set_config('client_min_messages', 'log', false)`
    // The batch function as the store calls it: one append of one event, conditional on a type.
    const rows = await traced`SELECT head_before, statuses FROM ringstate.ringstate_append_batch('{1}', '{f}', '{1}', '{Late}', '{1}', '{0}', '{}',
      '{"null"}', '{"{}"}', '{late-1}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{1}', '{100}', '{Missing}', '{}', '{}',
      '{}', '{}', '{}', '{}', '{}', '{}', '{}')`
    // Written (no per-append statuses), after the 20,000 events of the log.
    expect(rows.map((row) => ({ ...row }))).toEqual([{ head_before: '20000', statuses: null }])
  } finally {
    await traced.end()
  }
  const walk = plans.find((plan) => plan.includes('unnest(p_yc_append'))
  expect(walk).toBeDefined()
  expect(walk).toMatch(/using events_type_position on (ringstate\.)?events/)
})

test('the batch function plans its statements once (generic plans), and its condition walks stay on their indexes', async () => {
  const [fn] = await sql`SELECT proconfig FROM pg_proc WHERE proname = 'ringstate_append_batch'`
  expect(fn!.proconfig).toEqual(['plan_cache_mode=force_generic_plan'])

  const plans: string[] = []
  const traced = postgres(db.url, { max: 1, onnotice: (notice) => plans.push(String(notice.message)) })
  try {
    await traced`LOAD 'auto_explain'`
    await traced`SELECT set_config('auto_explain.log_min_duration', '0', false), set_config('auto_explain.log_nested_statements', 'on', false), set_config('client_min_messages', 'log', false)`
    // Seven calls, past the five custom plans the default mode would try first; each appends one
    // event conditional on a tag item and on a type-only item, neither of which matches.
    for (let i = 0; i < 7; i++) {
      const rows = await traced`SELECT statuses FROM ringstate.ringstate_append_batch('{1}', '{f}', '{1}', '{Generic}', '{1}', '{1}', ${`{generic:${i}}`},
        '{"null"}', '{"{}"}', ${`{generic-${i}}`}, '{1}', '{100}', '{1}', '{1}', ${`{missing:${i}}`}, '{1}', '{0}', '{}', '{1}', '{100}', '{Missing}', '{}', '{}',
        '{}', '{}', '{}', '{}', '{}', '{}', '{}')`
      expect(rows.map((row) => ({ ...row }))).toEqual([{ statuses: null }])
    }
  } finally {
    await traced.end()
  }
  const tagWalks = plans.filter((plan) => plan.includes('unnest(p_tc_append'))
  const typeWalks = plans.filter((plan) => plan.includes('unnest(p_yc_append'))
  expect(tagWalks).toHaveLength(7)
  expect(typeWalks).toHaveLength(7)
  // A generic plan shows the parameter ($15), where a custom plan shows its value ('{missing:0}').
  for (const plan of tagWalks) expect(plan).toMatch(/Index Only Scan using event_tags_pkey on (ringstate\.)?event_tags t .*\n\s+Index Cond: \(\(tag = \(\$\d+\)\[u\.tgf\]\)/)
  for (const plan of typeWalks) expect(plan).toMatch(/using events_type_position on (ringstate\.)?events/)
})
