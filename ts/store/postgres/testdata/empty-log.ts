import postgres from 'postgres'
import { migrate } from '../index.ts'

/** Empties the log of a test database between tests of one file (tests that race on the same names). */
export async function emptyLog(url: string): Promise<void> {
  const sql = postgres(url, { max: 1, onnotice: () => {} })
  try {
    await migrate(sql)
    await sql`TRUNCATE ringstate.events, ringstate.event_tags, ringstate.commands, ringstate.snapshots, ringstate.checkpoints RESTART IDENTITY`
  } finally {
    await sql.end()
  }
}
