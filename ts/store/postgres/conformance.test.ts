import { afterAll, beforeAll } from 'bun:test'
import postgres from 'postgres'
import { freshDatabase, type FreshDatabase } from '../../testing/postgres.ts'
import { describeConformance } from '../conformance.ts'
import { openPostgresStore } from './index.ts'

let db: FreshDatabase
beforeAll(async () => {
  db = await freshDatabase()
})
afterAll(() => db.drop())

// The suite wants an empty store per test: one database per file, emptied before each open.
describeConformance('postgres', async () => {
  const store = await openPostgresStore(db.url)
  const sql = postgres(db.url, { max: 1, onnotice: () => {} })
  await sql`TRUNCATE events, event_tags, commands, snapshots RESTART IDENTITY`
  await sql.end()
  return store
})
