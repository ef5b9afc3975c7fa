import { afterAll } from 'bun:test'
import { freshDatabase, type FreshDatabase } from '../testing/postgres.ts'
import { describeMultiprocess } from './multiprocess.case.ts'

const databases: FreshDatabase[] = []
afterAll(async () => {
  for (const db of databases) await db.drop()
})

describeMultiprocess('postgres', async () => {
  const db = await freshDatabase()
  databases.push(db)
  return db.url
})
