import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { join } from 'node:path'
import postgres from 'postgres'
import { freshDatabase, type FreshDatabase } from '../../testing/postgres.ts'
import type { EventStore } from '../types.ts'
import { migrate, openPostgresStore, SCHEMA_VERSION } from './index.ts'
import { migrate as legacyMigrate } from './testdata/legacy-schema.ts'
import { migrate as version3Migrate } from './testdata/schema-v3.ts'
import { emptyLog as emptyLogOf } from './testdata/empty-log.ts'
import { race, type RaceOutcome } from './testdata/race.ts'

const child = join(import.meta.dir, 'testdata', 'child.ts')

async function codeOf(work: () => Promise<unknown>): Promise<string | undefined> {
  try {
    await work()
  } catch (error) {
    return (error as { code?: string }).code
  }
  return undefined
}

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
    const [row] = await clients[0]!`SELECT count(*)::int AS n FROM ringstate.ringstate_schema_version`
    expect(row!.n).toBe(SCHEMA_VERSION)
    await Promise.all(clients.map((sql) => sql.end()))
  })

  test('a database of the earlier layout (tables in public, version 2) is moved into the ringstate schema in place', async () => {
    await using fresh = await freshDatabase()
    const sql = postgres(fresh.url, { max: 1, onnotice: () => {} })
    try {
      expect(await legacyMigrate(sql)).toBe(2)
      // Two appends and a command through the old batch function, as the old store wrote them.
      await sql`SELECT * FROM ringstate_append_batch('{2}', '{t}', '{1,1}', '{Old,Old}', '{1,2}', '{1,2}', '{k:1,k:2}',
        string_to_array(${'{"n":1}\x1e{"n":2}'}, chr(30)), string_to_array(${'{}\x1e{}'}, chr(30)), '{old-1,old-2}',
        '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{1}', '{DoOld}', string_to_array('null', chr(30)), string_to_array('{}', chr(30)))`
      const store = await openPostgresStore(fresh.url)
      try {
        expect((await store.query('all')).map((event) => [event.position, event.type, event.data, event.id])).toEqual([
          [1n, 'Old', { n: 1 }, 'old-1'],
          [2n, 'Old', { n: 2 }, 'old-2'],
        ])
        expect(await store.query([{ tags: ['k:2'] }])).toHaveLength(1)
        expect(await store.append({ type: 'New', tags: ['k:1'] }, undefined, { command: { type: 'DoNew' }, checkpoint: { name: 'c', position: 3n } }))
          .toMatchObject({ position: 3n })
        expect((await store.commands()).map((row) => [row.id, row.type])).toEqual([[1n, 'DoOld'], [2n, 'DoNew']])
        expect(await store.checkpoint('c')).toBe(3n)
        // Idempotency still sees the moved rows.
        expect(await store.append({ type: 'Old', id: 'old-1' })).toMatchObject({ position: 1n })
      } finally {
        await store.close()
      }
      const [tables] = await sql`SELECT to_regclass('public.events') AS public_events, to_regclass('ringstate.events') AS moved`
      expect(tables).toEqual({ public_events: null, moved: 'ringstate.events' })
      const functions = await sql`SELECT n.nspname AS schema FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE p.proname = 'ringstate_append_batch'`
      expect(functions.map((row) => row.schema)).toEqual(['ringstate'])
      const versions = await sql`SELECT version FROM ringstate.ringstate_schema_version ORDER BY version`
      expect(versions.map((row) => row.version)).toEqual([1, 2, 3, 4])
      expect(await migrate(sql)).toBe(SCHEMA_VERSION)
    } finally {
      await sql.end()
    }
  })

  test('a database at version 3 (a batch function returning a row per append) is upgraded in place to one returning a row per batch', async () => {
    await using fresh = await freshDatabase()
    const sql = postgres(fresh.url, { max: 1, onnotice: () => {} })
    try {
      expect(await version3Migrate(sql)).toBe(3)
      // Two appends (one of two events, with a command) through the version 3 function, which
      // answers with a row per append.
      const old = await sql`SELECT status, pos FROM ringstate.ringstate_append_batch('{2,1}', '{t,f}', '{1,1,2}', '{Old,Old,Old}', '{1,2,3}', '{1,2,3}', '{k:1,k:2,k:3}',
        string_to_array(${'{"n":1}\x1e{"n":2}\x1e{"n":3}'}, chr(30)), string_to_array(${'{}\x1e{}\x1e{}'}, chr(30)), '{old-1,old-2,old-3}',
        '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{1}', '{DoOld}', string_to_array('null', chr(30)), string_to_array('{}', chr(30)),
        '{}', '{}', '{}')`
      expect(old.map((row) => ({ ...row }))).toEqual([{ status: 0, pos: '2' }, { status: 0, pos: '3' }])

      const store = await openPostgresStore(fresh.url)
      try {
        expect((await store.query('all')).map((event) => [event.position, event.data, event.id])).toEqual([
          [1n, { n: 1 }, 'old-1'],
          [2n, { n: 2 }, 'old-2'],
          [3n, { n: 3 }, 'old-3'],
        ])
        // Appends of one group commit after the upgrade: their positions follow the old rows.
        const results = await Promise.all([
          store.append([{ type: 'New', tags: ['k:1'] }, { type: 'New' }]),
          store.append({ type: 'New', tags: ['k:2'] }),
          store.append({ type: 'Old', id: 'old-3' }),
          store.append({ type: 'New' }, { failIfEventsMatch: [{ tags: ['k:1'] }] }).catch((error) => error.code),
        ])
        expect(results.map((result) => (typeof result === 'string' ? result : result.position))).toEqual([5n, 6n, 3n, 'APPEND_CONDITION_FAILED'])
        expect(await store.head()).toBe(6n)
        expect((await store.commands()).map((row) => [row.type, row.position])).toEqual([['DoOld', 2n]])
      } finally {
        await store.close()
      }
      const versions = await sql`SELECT version FROM ringstate.ringstate_schema_version ORDER BY version`
      expect(versions.map((row) => row.version)).toEqual([1, 2, 3, 4])
      const functions = await sql`SELECT pg_get_function_result(p.oid) AS result FROM pg_proc p WHERE p.proname = 'ringstate_append_batch'`
      expect(functions.map((row) => row.result)).toEqual([
        'record',
      ])
      const [row] = await sql`SELECT head_before, statuses FROM ringstate.ringstate_append_batch('{1}', '{f}', '{1}', '{Direct}', '{1}', '{0}', '{}',
        '{"null"}', '{"{}"}', '{direct-1}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}',
        '{}', '{}', '{}', '{}', '{}', '{}', '{}')`
      expect({ ...row }).toEqual({ head_before: '6', statuses: null })
    } finally {
      await sql.end()
    }
  })

  test('the schema option keeps a store in its own schema, quoted, beside another', async () => {
    await using fresh = await freshDatabase()
    const odd = 'Tenant "A"; drop'
    const first = await openPostgresStore(fresh.url)
    const second = await openPostgresStore(fresh.url, { schema: odd })
    try {
      await first.append({ type: 'InDefault' })
      await second.append([{ type: 'InOdd' }, { type: 'InOdd' }])
      expect((await first.query('all')).map((event) => event.type)).toEqual(['InDefault'])
      expect((await second.query('all')).map((event) => event.type)).toEqual(['InOdd', 'InOdd'])
      const controller = new AbortController()
      const live = second.subscribe('all', { after: 2n, signal: controller.signal })[Symbol.asyncIterator]()
      const next = live.next()
      await second.append({ type: 'Live' })
      expect((await next).value).toMatchObject({ position: 3n, type: 'Live' })
      controller.abort()
      expect(await codeOf(() => openPostgresStore(fresh.url, { schema: 'a$b' }))).toBe('INVALID_OPTIONS')
      expect(await codeOf(() => openPostgresStore(fresh.url, { schema: 'x'.repeat(41) }))).toBe('INVALID_OPTIONS')
    } finally {
      await first.close()
      await second.close()
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
