// ringstate/http, measured against its baselines (DESIGN.md sections 5 and 8).
//
// Subject: `serve(store)` (the Hono app with its auth, metrics and problem handling; one token
// configured, so every request pays the token check) on port 0, called over keep-alive connections
// (wrk for the appends, Bun's fetch for reads, plain TCP sockets for SSE; see below).
// Baseline: the same operation made directly on the same store in the same run (`store.append`,
// `store.query`): the ceiling HTTP can approach.
// Peer: a bare `Bun.serve` handler that does the same store call and writes the same JSON with no
// framework, no auth and no metrics: what the Hono layer itself costs.
//
// Scenarios (each on SQLite (a temp file), PostgreSQL and memory; BENCH_BACKENDS picks):
// - appends: 16 concurrent callers, each awaiting its append before the next (one 3-event append to
//   its own `account:<n>`), for BENCH_SECONDS (default 2; rounded up to whole seconds for wrk)
//   after a short warm-up (1 s for wrk, wrk's shortest run). Target >= 0.6x direct.
// - reads: `GET /v1/events?limit=1000` page after page (the `next` cursor) over BENCH_READ_EVENTS
//   (default 1,000,000) events, against `store.read('all')` of the same events. Target >= 0.5x.
// - SSE fan-out: BENCH_SSE_CLIENTS (default 1,000) streams on one server while 16 callers append
//   BENCH_SSE_APPENDS (default 2,000) one-event appends directly on the store: every client must
//   receive every event; latency is the append's acknowledgement to each client's receipt (p50/p99,
//   target p99 < 100 ms); store reads per commit come from the tail reader's counters (target: one).
// The HTTP clients run in separate processes, as a real server's clients would; the direct baseline
// runs here. The append load is wrk (a C load generator; `apt-get install -y wrk`), driven by
// bench/http-append.lua to send the same 3-event appends as the direct callers and to check every
// answer is 201 with "count":3. Why not Bun's fetch: on this bench's 2 cores the load generator's
// CPU is taken from the server, and fetch spent about 50 µs of CPU per request (wrk about 20);
// client CPU is what the fetch client measured, not what the server does. The reads and the SSE
// clients are bench/http-load.ts (Bun; reads follow the `next` cursor, which wrk cannot); the SSE
// clients are split over BENCH_SSE_PROCESSES (default 2) such processes, each printing its longest
// pause beside the server's, so a p99 made by a stalled client shows as such.
// Single requests (1 client) are micro-ops: mitata measures them and prints its report.
//
// PostgreSQL: DATABASE_URL, else postgres://postgres@127.0.0.1:5432/postgres; fresh databases
// `ringstate_bench_http_<random>` are created and dropped. When no server answers, PostgreSQL is skipped.
//
// BENCH_PARTS (comma-separated, default all) picks the parts: appends, reads, sse, single.
// Small run: BENCH_SECONDS=0.5 BENCH_READ_EVENTS=20000 BENCH_SSE_CLIENTS=50 BENCH_SSE_APPENDS=200 \
//   ./node_modules/.bin/bun bench/http.bench.ts
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { bench, group, run, summary } from 'mitata'
import postgres from 'postgres'
import { serve } from '../ts/http/index.ts'
import { pageBody } from '../ts/http/wire.ts'
import { readJsonPage, storeStats, type InspectableStore, type JsonPageReader } from '../ts/store/core/index.ts'
import { openStore } from '../ts/store/index.ts'
import type { EventInput, EventStore } from '../ts/store/types.ts'
import { formatRate, pauseWatch, printSummary, timeBoxed, type SummaryRow } from './store-workloads.ts'

const CLIENTS = 16
const SECONDS = positiveNumber('BENCH_SECONDS', 2)
const READ_EVENTS = positiveNumber('BENCH_READ_EVENTS', 1_000_000)
const SSE_CLIENTS = positiveNumber('BENCH_SSE_CLIENTS', 1000)
const SSE_APPENDS = positiveNumber('BENCH_SSE_APPENDS', 2000)
/** The load processes the SSE clients are split over (BENCH_SSE_PROCESSES, default 2). */
const SSE_PROCESSES = Math.ceil(positiveNumber('BENCH_SSE_PROCESSES', 2))
const BACKENDS = new Set((process.env.BENCH_BACKENDS || 'sqlite,postgres,memory').split(',').map((name) => name.trim()))
/** The parts to run (BENCH_PARTS, comma-separated): appends, reads, sse, single (the mitata micro-ops). */
const PARTS = new Set((process.env.BENCH_PARTS || 'appends,reads,sse,single').split(',').map((name) => name.trim()))
const PAGE = 1000
/**
 * For A/B runs, the stores' options (unset: each backend's default): BENCH_COMMIT_DELAY_US the
 * commitDelayMicros, BENCH_PIPELINE_DEPTH the pipelineDepth.
 */
const storeOptions = {
  ...(process.env.BENCH_COMMIT_DELAY_US ? { commitDelayMicros: Number(process.env.BENCH_COMMIT_DELAY_US) } : {}),
  ...(process.env.BENCH_PIPELINE_DEPTH ? { pipelineDepth: Number(process.env.BENCH_PIPELINE_DEPTH) } : {}),
}
const TOKEN = 'bench-token-0123456789abcdef'
const headers = { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }
const tokens = [{ name: 'bench', token: TOKEN, scopes: ['read', 'append', 'metrics'] as const }]

function positiveNumber(name: string, fallback: number): number {
  const text = process.env[name]
  if (text === undefined || text === '') return fallback
  const value = Number(text)
  if (!Number.isFinite(value) || value <= 0) throw new Error(`${name} must be a positive number, got ${JSON.stringify(text)}`)
  return value
}

const tmp = mkdtempSync(join(tmpdir(), 'ringstate-http-bench-'))
const adminUrl = process.env.DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/postgres'
const databases: string[] = []

/** A fresh store of `backend`, or undefined when PostgreSQL is not reachable. */
async function freshStore(backend: string): Promise<EventStore | undefined> {
  if (backend === 'memory') return openStore('memory:', storeOptions)
  if (backend === 'sqlite') return openStore(`sqlite:${join(tmp, `${crypto.randomUUID()}.db`)}`, storeOptions)
  const name = `ringstate_bench_http_${crypto.randomUUID().replaceAll('-', '').slice(0, 12)}`
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} })
  try {
    await admin.unsafe(`create database ${name}`)
  } catch (error) {
    console.log(`PostgreSQL skipped: ${(error as Error).message}`)
    return undefined
  } finally {
    await admin.end()
  }
  databases.push(name)
  const url = new URL(adminUrl)
  url.pathname = `/${name}`
  return openStore(url.toString(), storeOptions)
}

/** The peer: the same store calls (the app's page read) and JSON behind a bare Bun.serve, no framework. */
function bareServer(store: EventStore) {
  return Bun.serve({
    port: 0,
    hostname: '127.0.0.1',
    async fetch(request) {
      const url = new URL(request.url)
      if (url.pathname === '/v1/append') {
        const body = (await request.json()) as { events: EventInput[] }
        const result = await store.append(body.events)
        return new Response(`{"position":"${result.position}","count":${result.count},"ids":${JSON.stringify(result.ids)}}`, {
          status: 201,
          headers: { 'content-type': 'application/json' },
        })
      }
      const after = url.searchParams.get('after')
      const page = await (store as EventStore & JsonPageReader)[readJsonPage]('all', { ...(after ? { after: BigInt(after) } : {}), limit: PAGE })
      return new Response(pageBody(page), { headers: { 'content-type': 'application/json' } })
    },
  })
}

const deposit = (client: number, i: number): EventInput[] =>
  [0, 1, 2].map((k) => ({ type: 'Deposited', tags: [`account:${client}`], data: { amount: i * 3 + k } }))

const WRK = BACKENDS.size > 0 && PARTS.has('appends') ? Bun.which('wrk') : 'unused'
if (WRK === null) {
  throw new Error('bench/http.bench.ts drives its append load with wrk, which is not installed: apt-get install -y wrk (Debian/Ubuntu) or brew install wrk')
}

/**
 * CLIENTS keep-alive connections appending through `base` with wrk (bench/http-append.lua): a 1 s
 * warm-up, then the timed run. Fails unless every answer was 201 with "count":3. Server CPU is this
 * process's during the timed run (it only serves then); wrk's comes from its resource usage.
 */
async function wrkAppends(
  store: EventStore,
  base: string,
  offset: number,
): Promise<{ appendsPerSec: number; serverUs: number; clientUs: number; batch: number }> {
  const run = async (seconds: number) => {
    const child = Bun.spawn(
      [WRK!, '-t1', `-c${CLIENTS}`, `-d${seconds}s`, '-s', join(import.meta.dir, 'http-append.lua'), `${base}v1/append`, '--', String(CLIENTS), String(offset), TOKEN],
      { stdout: 'pipe', stderr: 'inherit' },
    )
    const output = await new Response(child.stdout).text()
    if ((await child.exited) !== 0) throw new Error(`wrk failed:\n${output}`)
    const result = JSON.parse(output.trim().split('\n').at(-1)!) as { requests: number; micros: number; bad: number; socketErrors: number }
    if (result.bad > 0 || result.socketErrors > 0 || result.requests === 0) throw new Error(`wrk appends failed:\n${output}`)
    const usage = child.resourceUsage()!
    return { ...result, clientMicros: Number(usage.cpuTime.user + usage.cpuTime.system) }
  }
  await run(1)
  const batches = batchCounter(store)
  const cpuBefore = process.cpuUsage()
  const result = await run(Math.ceil(SECONDS))
  const cpu = process.cpuUsage(cpuBefore)
  return {
    appendsPerSec: result.requests / (result.micros / 1e6),
    serverUs: (cpu.user + cpu.system) / result.requests,
    clientUs: result.clientMicros / result.requests,
    batch: batches(),
  }
}

/** The run with the higher append rate. */
function better<T extends { appendsPerSec: number }>(runs: T[]): T {
  return runs.reduce((best, run) => (run.appendsPerSec > best.appendsPerSec ? run : best))
}

/** From now on: a function giving the mean appends per batch (group commit) the store wrote since. */
function batchCounter(store: EventStore): () => number {
  const writer = () => (store as unknown as InspectableStore)[storeStats]().writer
  const before = writer()
  return () => {
    const after = writer()
    return (after.batchedAppends - before.batchedAppends) / Math.max(1, after.batches - before.batches)
  }
}

async function appendOverHttp(base: string, client: number, i: number): Promise<number> {
  const response = await fetch(`${base}v1/append`, { method: 'POST', headers, body: JSON.stringify({ events: deposit(client, i) }) })
  if (response.status !== 201) throw new Error(`append answered ${response.status}: ${await response.text()}`)
  return ((await response.json()) as { count: number }).count
}

/** The load generator (bench/http-load.ts) as a child process; resolves to its last line, parsed. */
function load(args: (string | number)[]): { lines: AsyncIterator<string>; child: ReturnType<typeof Bun.spawn> } {
  const child = Bun.spawn([process.execPath, join(import.meta.dir, 'http-load.ts'), ...args.map(String)], {
    stdin: 'pipe',
    stdout: 'pipe',
    stderr: 'inherit',
  })
  async function* lines() {
    let buffer = ''
    const decoder = new TextDecoder()
    const reader = (child.stdout as ReadableStream<Uint8Array>).getReader()
    for (;;) {
      const { done, value } = await reader.read()
      if (done) break
      buffer += decoder.decode(value, { stream: true })
      let end: number
      while ((end = buffer.indexOf('\n')) >= 0) {
        yield buffer.slice(0, end)
        buffer = buffer.slice(end + 1)
      }
    }
    if (buffer !== '') yield buffer
  }
  return { lines: lines(), child }
}

async function loadResult<T>(args: (string | number)[]): Promise<T> {
  const { lines, child } = load(args)
  let last: string | undefined
  for (let line = await lines.next(); !line.done; line = await lines.next()) last = line.value
  if ((await child.exited) !== 0 || last === undefined) throw new Error(`http-load ${args[0]} failed`)
  return JSON.parse(last) as T
}

async function readDirect(store: EventStore): Promise<number> {
  let count = 0
  for await (const _ of store.read('all')) count++
  return count
}

/** Best of two passes, in events per second. */
async function bestRate(expected: number, pass: () => Promise<number>): Promise<number> {
  let best = 0
  for (let i = 0; i < 2; i++) {
    const started = performance.now()
    const read = await pass()
    if (read !== expected) throw new Error(`read ${read} events, expected ${expected}`)
    best = Math.max(best, read / ((performance.now() - started) / 1000))
  }
  return best
}

/**
 * SSE fan-out: every client must see every event; latency from acknowledgement to receipt. The
 * clients are split over SSE_PROCESSES load processes: one process reading 1,000 sockets was on
 * CPU for 80-92% of the fan-out on memory, so its own backlog made much of the p99.
 */
async function fanOut(
  store: EventStore,
  base: string,
): Promise<{ p50: number; p99: number; readsPerCommit: number; serverCpuUsPerFrame: number; clientCpuMs: number; busy: number; pauseMs: number; serverPauseMs: number }> {
  const head = await store.head()
  const shares = Array.from({ length: SSE_PROCESSES }, (_, k) => Math.floor(SSE_CLIENTS / SSE_PROCESSES) + (k < SSE_CLIENTS % SSE_PROCESSES ? 1 : 0))
  const loads = shares.map((clients, k) => {
    const file = join(tmp, `sse-receipts-${k}.f64`)
    return { clients, file, ...load(['sse', base, clients, String(head), SSE_APPENDS, file]) }
  })
  // A load process left running after a failure would keep its streams open: end every one.
  try {
    for (const { lines } of loads) {
      const line = await lines.next()
      if (line.done || line.value !== 'ready') throw new Error(`http-load sse: expected ready, got ${String(line.value)}`)
    }
    const tail = () => (store as unknown as InspectableStore)[storeStats]().tail
    // Group commit puts several appends in one commit: an inline projector's promote runs once per commit.
    let commits = 0
    const detach = store.attach({ name: 'bench-commits', apply() {}, promote: () => void commits++, discard() {} })
    const readsBefore = tail().reads
    const cpuBefore = process.cpuUsage()
    const pauses = pauseWatch()
    const acks = new Float64Array(SSE_APPENDS)
    let issued = 0
    await Promise.all(
      Array.from({ length: CLIENTS }, async () => {
        while (issued < SSE_APPENDS) {
          issued++
          const { position } = await store.append({ type: 'Fanned', data: { at: Date.now() } })
          acks[Number(position - head - 1n)] = performance.timeOrigin + performance.now()
        }
      }),
    )
    const results = await Promise.all(
      loads.map(async ({ lines, child }) => {
        const line = await lines.next()
        if ((await child.exited) !== 0 || line.done) throw new Error('http-load sse failed')
        return JSON.parse(line.value) as { clientCpuMs: number; busy: number; pauseMs: number }
      }),
    )
    const serverPauseMs = pauses.stop()
    const cpu = process.cpuUsage(cpuBefore)
    const serverCpuUsPerFrame = (cpu.user + cpu.system) / (SSE_APPENDS * SSE_CLIENTS)
    const reads = tail().reads - readsBefore
    detach()
    const latencies = new Float64Array(SSE_CLIENTS * SSE_APPENDS)
    let at = 0
    for (const { clients, file } of loads) {
      const receipts = new Float64Array(await Bun.file(file).arrayBuffer())
      if (receipts.length !== clients * SSE_APPENDS) throw new Error(`${file}: ${receipts.length} receipts, expected ${clients * SSE_APPENDS}`)
      // A receipt before the append's acknowledgement reached its caller counts as zero.
      for (let i = 0; i < receipts.length; i++) latencies[at++] = Math.max(0, receipts[i]! - acks[i % SSE_APPENDS]!)
      rmSync(file)
    }
    latencies.sort()
    const percentile = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))]!
    return {
      p50: percentile(50),
      p99: percentile(99),
      readsPerCommit: reads / Math.max(1, commits),
      serverCpuUsPerFrame,
      clientCpuMs: results.reduce((sum, r) => sum + r.clientCpuMs, 0),
      busy: Math.max(...results.map((r) => r.busy)),
      pauseMs: Math.max(...results.map((r) => r.pauseMs)),
      serverPauseMs,
    }
  } finally {
    for (const { child } of loads) if (child.exitCode === null) child.kill()
  }
}

const rows: SummaryRow[] = []
const micro: { backend: string; store: EventStore; base: string; bareBase: string }[] = []
const cleanup: (() => Promise<void> | void)[] = []

for (const backend of ['sqlite', 'postgres', 'memory']) {
  if (!BACKENDS.has(backend)) continue
  const store = await freshStore(backend)
  if (store === undefined) continue
  const server = await serve(store, { port: 0, tokens, sse: { maxClients: SSE_CLIENTS + 10 } })
  const bare = bareServer(store)
  const bareBase = `http://127.0.0.1:${bare.port}/`
  cleanup.push(async () => {
    await server.stop()
    await bare.stop(true)
    await store.close()
  })
  if (PARTS.has('single')) micro.push({ backend, store, base: server.url, bareBase })

  // Appends: 16 keep-alive callers.
  if (PARTS.has('appends')) {
    const directRun = async () => {
      const batches = batchCounter(store)
      const result = await timeBoxed(CLIENTS, SECONDS, async (client, i) => (await store.append(deposit(client, i))).count)
      return { ...result, batch: batches() }
    }
    // Each side twice, in mirrored order (direct, http, bare, bare, http, direct), the better run
    // of each kept: whichever ran right after another in one order runs first in the other.
    const runs = { direct: [await directRun()], http: [await wrkAppends(store, server.url, 100)], peer: [await wrkAppends(store, bareBase, 200)] }
    runs.peer.push(await wrkAppends(store, bareBase, 300))
    runs.http.push(await wrkAppends(store, server.url, 400))
    runs.direct.push(await directRun())
    const direct = better(runs.direct)
    const directBatch = direct.batch
    const http = better(runs.http)
    const peer = better(runs.peer)
    console.log(
      `${backend} appends, 16 clients: http ${formatRate(http.appendsPerSec)} appends, direct ${formatRate(direct.appendsPerSec)}, ` +
        `bare Bun.serve ${formatRate(peer.appendsPerSec)}; server CPU per HTTP append (store included): ${http.serverUs.toFixed(0)} µs, ` +
        `bare ${peer.serverUs.toFixed(0)} µs; wrk CPU per append ${http.clientUs.toFixed(0)} µs; appends per batch: ` +
        `http ${http.batch.toFixed(1)}, direct ${directBatch.toFixed(1)}, bare ${peer.batch.toFixed(1)}`,
    )
    const appendRatio = http.appendsPerSec / direct.appendsPerSec
    rows.push({
      scenario: `${backend}: appends, 16 clients (vs direct)`,
      ringstate: formatRate(http.appendsPerSec),
      baseline: formatRate(direct.appendsPerSec),
      ratio: appendRatio,
      ...(backend === 'memory' ? {} : { target: '>= 0.6x', met: appendRatio >= 0.6 }),
    })
    rows.push({
      scenario: `${backend}: appends, 16 clients (vs bare Bun.serve)`,
      ringstate: formatRate(http.appendsPerSec),
      baseline: formatRate(peer.appendsPerSec),
      ratio: http.appendsPerSec / peer.appendsPerSec,
    })
  }

  // Reads: fill a second store to READ_EVENTS and page through it.
  const readStore = PARTS.has('reads') ? await freshStore(backend) : undefined
  if (readStore !== undefined) {
    for (let loaded = 0; loaded < READ_EVENTS; loaded += 10_000) {
      const size = Math.min(10_000, READ_EVENTS - loaded)
      await readStore.append(Array.from({ length: size }, (_, k) => ({ type: 'Loaded', tags: [`account:${(loaded + k) % 1000}`], data: { n: loaded + k } })))
    }
    const readServer = await serve(readStore, { port: 0, tokens })
    const readBare = bareServer(readStore)
    // A full collection before each part, so none inherits the garbage of the one before (the
    // direct passes leave a million decoded events behind). It does not remove all of the effect
    // of running right after the direct passes: on memory, whichever of http and bare came first
    // was the slower one in development probes, so compare http and bare with that in mind.
    Bun.gc(true)
    const directRate = await bestRate(READ_EVENTS, () => readDirect(readStore))
    const pages = async (url: string) => {
      Bun.gc(true)
      return (await loadResult<{ eventsPerSec: number }>(['read', url, READ_EVENTS])).eventsPerSec
    }
    // http, bare, bare, http: the better of each, so neither gains from its place in the order.
    const bareUrl = `http://127.0.0.1:${readBare.port}/`
    const httpRates = [await pages(readServer.url)]
    const bareRates = [await pages(bareUrl), await pages(bareUrl)]
    httpRates.push(await pages(readServer.url))
    const httpRate = Math.max(...httpRates)
    const bareRate = Math.max(...bareRates)
    console.log(`${backend} reads of ${READ_EVENTS}: http ${formatRate(httpRate)} events, direct ${formatRate(directRate)} events, bare ${formatRate(bareRate)} events`)
    const readRatio = httpRate / directRate
    rows.push({
      scenario: `${backend}: read ${READ_EVENTS} in pages of 1000 (vs store.read)`,
      ringstate: formatRate(httpRate),
      baseline: formatRate(directRate),
      ratio: readRatio,
      ...(backend === 'memory' ? {} : { target: '>= 0.5x', met: readRatio >= 0.5 }),
    })
    rows.push({
      scenario: `${backend}: read ${READ_EVENTS} (vs bare Bun.serve)`,
      ringstate: formatRate(httpRate),
      baseline: formatRate(bareRate),
      ratio: httpRate / bareRate,
    })
    await readServer.stop()
    await readBare.stop(true)
    await readStore.close()
  }

  // SSE fan-out.
  if (!PARTS.has('sse')) continue
  // A full collection first, as before each reads part: the parts before leave the bench process a
  // heap of garbage (a million events decoded by the direct read passes), whose collection would
  // otherwise land in the middle of the fan-out as a pause no server of its own would have.
  Bun.gc(true)
  const fan = await fanOut(store, server.url)
  console.log(
    `${backend} SSE: ${SSE_CLIENTS} clients x ${SSE_APPENDS} events: ack->receipt p50 ${fan.p50.toFixed(1)} ms, p99 ${fan.p99.toFixed(1)} ms; store reads per commit ${fan.readsPerCommit.toFixed(3)}; ` +
      `server CPU ${fan.serverCpuUsPerFrame.toFixed(1)} µs per delivered event (appenders included), ${SSE_PROCESSES === 1 ? 'the load process' : `${SSE_PROCESSES} load processes'`} CPU during the fan-out ${fan.clientCpuMs.toFixed(0)} ms, ` +
      `the busiest on CPU ${(fan.busy * 100).toFixed(0)}% of the fan-out${fan.busy > 0.9 ? ' (the clients were the bottleneck: latencies include their backlog)' : ''}; ` +
      `longest pause: server ${fan.serverPauseMs.toFixed(0)} ms, load processes ${fan.pauseMs.toFixed(0)} ms`,
  )
  rows.push({
    scenario: `${backend}: SSE ${SSE_CLIENTS} clients, ack->receipt p99`,
    ringstate: `${fan.p99.toFixed(1)} ms`,
    baseline: `p50 ${fan.p50.toFixed(1)} ms`,
    target: '< 100 ms',
    met: fan.p99 < 100,
  })
  rows.push({
    scenario: `${backend}: SSE store reads per commit`,
    ringstate: fan.readsPerCommit.toFixed(3),
    baseline: '1 per commit',
    target: '<= 1',
    met: fan.readsPerCommit <= 1,
  })
}

// Single requests: what one HTTP round trip adds to one store call.
for (const { backend, store, base, bareBase } of PARTS.has('single') ? micro : []) {
  group(`${backend}: one 3-event append`, () => {
    summary(() => {
      let i = 0
      bench('direct store.append (baseline)', async () => store.append(deposit(999, i++)))
      bench('POST /v1/append (ringstate/http)', async () => appendOverHttp(base, 998, i++))
      bench('bare Bun.serve (peer)', async () => appendOverHttp(bareBase, 997, i++))
    })
  })
}
if (PARTS.has('single') && micro.length > 0) await run()

printSummary(rows)
for (const step of cleanup) await step()
if (databases.length > 0) {
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} })
  for (const name of databases) await admin.unsafe(`drop database if exists ${name} with (force)`)
  await admin.end()
}
rmSync(tmp, { recursive: true, force: true })
