// Child process for postgres.test.ts: uses the harness with whatever DATABASE_URL it was given,
// prints what it saw as one JSON line, and exits (the harness must clean up on exit).
import postgres from 'postgres'
import { freshDatabase } from '../postgres.ts'

const db = await freshDatabase()
const sql = postgres(db.url, { max: 1 })
const [row] = await sql`select current_database() as name, current_setting('data_directory') as data`
await sql.end()
await db.drop()
const admin = postgres(process.env.DATABASE_URL!, { max: 1 })
const [left] = await admin`select count(*)::int as n from pg_database where datname = ${db.name}`
await admin.end()
if (row === undefined || left === undefined) throw new Error('each query returns one row')
console.log(JSON.stringify({ database: row.name, name: db.name, dataDirectory: row.data, leftAfterDrop: left.n }))
