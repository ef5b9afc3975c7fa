// The Deno suite: the main paths of every part under Deno, over the TypeScript sources.
//   ./node_modules/.bin/deno test --allow-all --no-check ts/testing/runtimes.deno.ts
// The store on memory:, a SQLite file (node:sqlite) and PostgreSQL (postgres.js at DATABASE_URL, or
// a throwaway cluster); the bus with a SharedRing shared with a Deno Worker; the state cache; the
// projections runner; the runtime over fromStore; serve() on Deno.serve. The cases are shared with
// the Node suite (runtime-cases.mjs). Named *.deno.ts so that `bun test` leaves it alone; tsc
// skips it (tsconfig.json excludes *.deno.ts: its Deno globals are not Bun's).
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import * as bus from '../bus/index.ts'
import * as cache from '../cache/index.ts'
import * as http from '../http/index.ts'
import * as ringstate from '../index.ts'
import * as projections from '../projections/index.ts'
import * as runtime from '../runtime/index.ts'
import * as driver from '../store/sqlite/driver.ts'
import { freshDatabase, type FreshDatabase } from './postgres.ts'
import { runtimeCases, until } from './runtime-cases.mjs'

const dirs: string[] = []
const databases: FreshDatabase[] = []

/** A consumer Deno Worker (the bus's own fixture) attached to the ring behind `handle`. */
function startRingConsumer(handle: unknown) {
  const worker = new Worker(new URL('../bus/shared-ring.fixture.ts', import.meta.url).href, { type: 'module' })
  const messages: unknown[] = []
  let failure: unknown
  worker.onmessage = (event) => void messages.push(event.data)
  worker.onerror = (event) => {
    event.preventDefault()
    failure = new Error(`the consumer Worker failed: ${event.message}`)
  }
  worker.postMessage(handle)
  const settled = (check: () => boolean) => () => {
    if (failure !== undefined) throw failure
    return check()
  }
  return {
    ready: () => until(settled(() => messages.includes('ready')), 'the Worker to attach'),
    async stop(): Promise<number[]> {
      worker.postMessage('stop')
      try {
        await until(settled(() => messages.length === 2), 'the Worker to report')
      } finally {
        worker.terminate()
      }
      return messages[1] as number[]
    },
  }
}

const cases = runtimeCases(
  { ringstate, bus, cache, projections, runtime, http, driver },
  {
    name: 'deno',
    sqlite: 'real',
    tempDir: () => {
      const dir = mkdtempSync(join(tmpdir(), 'ringstate-deno-'))
      dirs.push(dir)
      return dir
    },
    freshDatabaseUrl: async () => {
      const db = await freshDatabase()
      databases.push(db)
      return db.url
    },
    startRingConsumer,
  },
)

for (const [name, run] of cases) {
  // Every resource a case opens is closed by the case; sanitizers stay on to prove it.
  Deno.test(name, run)
}

Deno.test('cleanup: the suite drops its databases and removes its directories', async () => {
  for (const db of databases) await db.drop()
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true })
})
