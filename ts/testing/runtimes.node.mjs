// The Node suite: the main paths of every part under Node, over the compiled dist/ (what a Node
// user installs; `node scripts/build-dist.mjs` first, which `npm test` does in this step).
//   node --test ts/testing/runtimes.node.mjs
// The store on memory: and PostgreSQL (postgres.js at DATABASE_URL, or a throwaway cluster); SQLite
// through node:sqlite on a Node that has it (22.13+, 23.4+, 24+), else the clear INVALID_OPTIONS;
// the bus with a SharedRing shared with a worker thread; the state cache; the projections runner;
// the runtime over fromStore; serve() on @hono/node-server. The cases are shared with the Deno
// suite (runtime-cases.mjs). Not named *.test.* so that `bun test` leaves it alone.
import { after, test } from 'node:test'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Worker } from 'node:worker_threads'
import postgres from 'postgres'
import * as bus from '../../dist/bus/index.js'
import * as cache from '../../dist/cache/index.js'
import * as http from '../../dist/http/index.js'
import * as ringstate from '../../dist/index.js'
import * as projections from '../../dist/projections/index.js'
import * as runtime from '../../dist/runtime/index.js'
import * as driver from '../../dist/store/sqlite/driver.js'
import { startCluster } from './pg-cluster.mjs'
import { runtimeCases, until } from './runtime-cases.mjs'

/** Whether this Node has node:sqlite without a flag (22.13+, 23.4+, 24+) or was started with the flag. */
function hasNodeSqlite() {
  const [major, minor] = process.versions.node.split('.').map(Number)
  const unflagged = major > 23 || (major === 23 && minor >= 4) || (major === 22 && minor >= 13)
  const flagged = (major === 22 && minor >= 5) || major === 23
  const flag = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)].includes('--experimental-sqlite')
  return unflagged || (flagged && flag)
}

const dirs = []
const databases = []
let cluster
let admin

async function serverUrl() {
  if (process.env.DATABASE_URL) return process.env.DATABASE_URL
  cluster ??= await startCluster()
  return cluster.url
}

/** A fresh database on the test server, dropped after the suite. */
async function freshDatabaseUrl() {
  const url = new URL(await serverUrl())
  admin ??= postgres(url.toString(), { max: 1, onnotice: () => {} })
  const name = `ringstate_test_${crypto.randomUUID().replaceAll('-', '').slice(0, 16)}`
  await admin.unsafe(`CREATE DATABASE ${name}`)
  databases.push(name)
  url.pathname = `/${name}`
  return url.toString()
}

/** A consumer worker thread attached to the ring behind `handle`. */
function startRingConsumer(handle) {
  const worker = new Worker(new URL('./shared-ring-consumer.node.mjs', import.meta.url))
  const messages = []
  let failure
  worker.on('message', (data) => void messages.push(data))
  worker.on('error', (error) => void (failure = error))
  worker.postMessage(handle)
  const settled = (check) => () => {
    if (failure !== undefined) throw failure
    return check()
  }
  return {
    ready: () => until(settled(() => messages.includes('ready')), 'the worker to attach'),
    async stop() {
      worker.postMessage('stop')
      try {
        await until(settled(() => messages.length === 2), 'the worker to report')
      } finally {
        await worker.terminate()
      }
      return messages[1]
    },
  }
}

const cases = runtimeCases(
  { ringstate, bus, cache, projections, runtime, http, driver },
  {
    name: 'node',
    sqlite: hasNodeSqlite() ? 'real' : 'unavailable',
    tempDir: () => {
      const dir = mkdtempSync(join(tmpdir(), 'ringstate-node-'))
      dirs.push(dir)
      return dir
    },
    freshDatabaseUrl,
    startRingConsumer,
  },
)

for (const [name, run] of cases) test(name, run)

after(async () => {
  if (admin !== undefined) {
    for (const name of databases) await admin.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
    await admin.end()
  }
  await cluster?.stop()
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true })
})
