import { afterAll, beforeAll } from 'bun:test'
import postgres from 'postgres'
import { freshDatabase, type FreshDatabase } from '../../testing/postgres.ts'
import { describeConformance } from '../conformance.case.ts'
import { describeScenarios } from '../dcb-scenarios.case.ts'
import { openPostgresStore, type PostgresStoreOptions } from './index.ts'

let db: FreshDatabase
beforeAll(async () => {
  db = await freshDatabase()
})
afterAll(() => db.drop())

// Both suites want an empty store per test: one database per file, emptied before each open
// (bun runs the tests of a file one after another, so no two stores share the log at once).
async function openEmpty(options?: PostgresStoreOptions) {
  const store = await openPostgresStore(db.url, options)
  const sql = postgres(db.url, { max: 1, onnotice: () => {} })
  await sql`TRUNCATE ringstate.events, ringstate.event_tags, ringstate.commands, ringstate.snapshots, ringstate.checkpoints RESTART IDENTITY`
  await sql.end()
  return store
}

describeConformance('postgres', openEmpty, 'postgres')
describeScenarios('postgres', openEmpty)
