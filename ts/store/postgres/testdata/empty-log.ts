import postgres from 'postgres'
import { migrate } from '../index.ts'

/** Empties the log of a test database between tests of one file (tests that race on the same names). */
export async function emptyLog(url: string): Promise<void> {
  const sql = postgres(url, { max: 1, onnotice: () => {} })
  try {
    await migrate(sql)
    await sql`TRUNCATE events, event_tags, commands, snapshots RESTART IDENTITY`
  } finally {
    await sql.end()
  }
}
