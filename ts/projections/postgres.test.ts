import { afterAll, beforeAll } from 'bun:test'
import { openStore } from '../store/open.ts'
import { freshDatabase, type FreshDatabase } from '../testing/postgres.ts'
import { describeAggregate } from './aggregate.case.ts'
import { describeRunner } from './runner.case.ts'

let db: FreshDatabase
beforeAll(async () => {
  db = await freshDatabase()
})
afterAll(() => db.drop())

// One database for the file, one schema per store: every test starts from an empty store.
let schemas = 0
const open = () => openStore(db.url, { schema: `projections_${++schemas}` })

describeAggregate('postgres', open)
describeRunner('postgres', open)
