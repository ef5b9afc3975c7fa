import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { join } from 'node:path'
import postgres from 'postgres'
import { freshDatabase, type FreshDatabase } from '../../testing/postgres.ts'
import type { EventStore } from '../types.ts'
import { migrate, openPostgresStore, SCHEMA_VERSION } from './index.ts'
import { emptyLog as emptyLogOf } from './testdata/empty-log.ts'
import { race, type RaceOutcome } from './testdata/race.ts'

const child = join(import.meta.dir, 'testdata', 'child.ts')

let db: FreshDatabase
beforeAll(async () => {
  db = await freshDatabase()
})
afterAll(() => db.drop())

const emptyLog = () => emptyLogOf(db.url)

/** Check the invariants of a finished race over `rounds` usernames between `outcomes.length` racers. */
async function expectRaceInvariants(store: EventStore, outcomes: RaceOutcome[], rounds: number): Promise<void> {
  const claimed = await store.query([{ types: ['UsernameClaimed'] }])
  const names = claimed.map((event) => event.tags[0])
  expect(new Set(names).size).toBe(names.length)
  expect(names.length).toBe(rounds)
  expect(outcomes.flatMap((outcome) => outcome.usernames).sort()).toEqual(names.map((tag) => tag!.slice('username:'.length)).sort())

  expect((await store.query([{ types: ['Enrolled'], tags: ['course:c1'] }])).length).toBe(10)
  expect(outcomes.reduce((sum, outcome) => sum + outcome.enrolments, 0)).toBe(10)

  for (const outcome of outcomes) {
    // Losers lose with APPEND_CONDITION_FAILED only, and a disjoint boundary never fails.
    expect(Object.keys(outcome.failures).filter((code) => code !== 'APPEND_CONDITION_FAILED')).toEqual([])
    expect(outcome.own).toBe(rounds)
    expect((await store.query([{ tags: [`owner:${outcome.name}`] }])).length).toBe(rounds)
  }
  const all = await store.query('all')
  expect(all.map((event) => event.position)).toEqual(all.map((_, i) => BigInt(i + 1)))
}

describe('postgres: concurrent writers', () => {
  test('concurrent migrations of a fresh database all succeed and leave one schema', async () => {
    await using fresh = await freshDatabase()
    const clients = Array.from({ length: 6 }, () => postgres(fresh.url, { max: 1, onnotice: () => {} }))
    const versions = await Promise.all(clients.map((sql) => migrate(sql)))
    expect(versions).toEqual(clients.map(() => SCHEMA_VERSION))
    const [row] = await clients[0]!`SELECT count(*)::int AS n FROM ringstate_schema_version`
    expect(row!.n).toBe(SCHEMA_VERSION)
    await Promise.all(clients.map((sql) => sql.end()))
  })

  test('a database at schema version 1 is upgraded in place: migration 2 gives the batch function generic plans', async () => {
    await using fresh = await freshDatabase()
    const sql = postgres(fresh.url, { max: 1, onnotice: () => {} })
    try {
      await migrate(sql)
      // Back to what version 1 left: the function without its setting, version 2 not recorded.
      await sql`ALTER FUNCTION ringstate_append_batch RESET plan_cache_mode`
      await sql`DELETE FROM ringstate_schema_version WHERE version = 2`
      expect(await migrate(sql)).toBe(SCHEMA_VERSION)
      const [fn] = await sql`SELECT proconfig FROM pg_proc WHERE proname = 'ringstate_append_batch'`
      expect(fn!.proconfig).toEqual(['plan_cache_mode=force_generic_plan'])
      const versions = await sql`SELECT version FROM ringstate_schema_version ORDER BY version`
      expect(versions.map((row) => row.version)).toEqual([1, 2])
    } finally {
      await sql.end()
    }
  })

  test('32 stores on separate connections race for a course and usernames: no overbooking, one owner per name, losers get APPEND_CONDITION_FAILED, disjoint boundaries never fail', async () => {
    await emptyLog()
    const stores = await Promise.all(Array.from({ length: 32 }, () => openPostgresStore(db.url, { max: 1 })))
    try {
      const rounds = 12
      const outcomes = await Promise.all(stores.map((store, i) => race(store, `racer-${i}`, rounds)))
      const conflicts = outcomes.reduce((sum, outcome) => sum + (outcome.failures.APPEND_CONDITION_FAILED ?? 0), 0)
      expect(conflicts).toBeGreaterThan(0)
      await expectRaceInvariants(stores[0]!, outcomes, rounds)
    } finally {
      await Promise.all(stores.map((store) => store.close()))
    }
  })

  test('three OS processes race on the same boundaries with the same invariants', async () => {
    await emptyLog()
    const processes = ['p0', 'p1', 'p2'].map((name) =>
      Bun.spawn([process.execPath, child, 'race', db.url, name], { stdout: 'pipe', stderr: 'pipe' }),
    )
    const outputs = await Promise.all(processes.map(async (proc) => {
      const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited])
      expect(stderr).toBe('')
      expect(code).toBe(0)
      return JSON.parse(stdout) as RaceOutcome
    }))
    const store = await openPostgresStore(db.url)
    try {
      await expectRaceInvariants(store, outputs, 40)
    } finally {
      await store.close()
    }
  })
})
