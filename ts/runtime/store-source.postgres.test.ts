import { afterAll, beforeAll } from 'bun:test'
import { openPostgresStore } from '../store/postgres/index.ts'
import type { EventStore } from '../store/types.ts'
import { freshDatabase, type FreshDatabase } from '../testing/postgres.ts'
import { describeStoreSource, type Subs } from './store-source.case.ts'

let db: FreshDatabase
let schemas = 0
beforeAll(async () => {
  db = await freshDatabase()
})
afterAll(() => db.drop())

// Each case gets an empty store: its own schema in this file's database.
// openStore is not generic yet on this branch (section 2.2 types it); the map is the test's claim.
describeStoreSource('PostgreSQL', async () =>
  (await openPostgresStore(db.url, { schema: `runtime_case_${++schemas}` })) as unknown as EventStore<Subs>,
)
