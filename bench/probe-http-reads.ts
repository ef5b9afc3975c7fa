// Development probe: the reads scenario of bench/http.bench.ts, A/B between code trees, alternating.
//   bun bench/probe-http-reads.ts <sqlite|memory|postgres> <events> <rounds> <label=tsroot> [<label=tsroot> ...]
// e.g. main's code beside this one: mkdir -p .ab-main && git archive main ts | tar -x -C .ab-main, then
//   GC=1 PARTS=http,bare bun bench/probe-http-reads.ts sqlite 200000 8 main=$PWD/.ab-main/ts br=$PWD/ts
// Each tree gets its own store (same events), its app (`serve`) and the bare Bun.serve peer. Rounds
// alternate the trees' order (A B B A ...); each runs PARTS (default direct,http,bare) in that order,
// with a full collection before each part when GC is set. Server CPU per page is this process's
// CPU during the load (which makes two passes), halved.
export {}
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import postgres from 'postgres'

const [backend = 'sqlite', eventsText = '200000', roundsText = '3', ...trees] = process.argv.slice(2)
const EVENTS = Number(eventsText)
const ROUNDS = Number(roundsText)
const PARTS = new Set((process.env.PARTS ?? 'direct,http,bare').split(','))
const TOKEN = 'bench-token-0123456789abcdef'
const tokens = [{ name: 'bench', token: TOKEN, scopes: ['read', 'append', 'metrics'] as const }]
const tmp = mkdtempSync(join(tmpdir(), 'probe-http-reads-'))
const adminUrl = process.env.DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/postgres'
const databases: string[] = []

async function storeUrl(): Promise<string> {
  if (backend === 'memory') return 'memory:'
  if (backend === 'sqlite') return `sqlite:${join(tmp, `${crypto.randomUUID()}.db`)}`
  const name = `ringstate_probe_reads_${crypto.randomUUID().replaceAll('-', '').slice(0, 12)}`
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} })
  await admin.unsafe(`create database ${name}`)
  await admin.end()
  databases.push(name)
  const url = new URL(adminUrl)
  url.pathname = `/${name}`
  return url.toString()
}

interface Subject {
  label: string
  store: any
  url: string
  bareUrl: string
  stop(): Promise<void>
}

const subjects: Subject[] = []
for (const tree of trees) {
  const [label, root] = tree.split('=') as [string, string]
  const { openStore } = await import(join(root, 'store/index.ts'))
  const { readJsonPage } = await import(join(root, 'store/core/index.ts'))
  const { pageBody } = await import(join(root, 'http/wire.ts'))
  const { serve } = await import(join(root, 'http/index.ts'))
  const store = await openStore(await storeUrl())
  for (let loaded = 0; loaded < EVENTS; loaded += 10_000) {
    const size = Math.min(10_000, EVENTS - loaded)
    await store.append(Array.from({ length: size }, (_, k) => ({ type: 'Loaded', tags: [`account:${(loaded + k) % 1000}`], data: { n: loaded + k } })))
  }
  const server = await serve(store, { port: 0, tokens })
  const bare = Bun.serve({
    port: 0,
    hostname: '127.0.0.1',
    async fetch(request) {
      const after = new URL(request.url).searchParams.get('after')
      const page = await store[readJsonPage]('all', { ...(after ? { after: BigInt(after) } : {}), limit: 1000 })
      return new Response(pageBody(page), { headers: { 'content-type': 'application/json' } })
    },
  })
  subjects.push({
    label,
    store,
    url: server.url,
    bareUrl: `http://127.0.0.1:${bare.port}/`,
    async stop() {
      await server.stop()
      await bare.stop(true)
      await store.close()
    },
  })
}

async function loadRead(base: string): Promise<{ eventsPerSec: number; clientCpuMs: number; serverCpuMs: number }> {
  const cpu = process.cpuUsage()
  const child = Bun.spawn([process.execPath, join(import.meta.dir, 'http-load.ts'), 'read', base, String(EVENTS)], { stdout: 'pipe', stderr: 'inherit' })
  const out = await new Response(child.stdout).text()
  if ((await child.exited) !== 0) throw new Error('http-load failed')
  const used = process.cpuUsage(cpu)
  return { ...JSON.parse(out.trim().split('\n').at(-1)!), serverCpuMs: (used.user + used.system) / 1000 / 2 }
}

async function direct(store: any): Promise<number> {
  let best = 0
  for (let i = 0; i < 2; i++) {
    const started = performance.now()
    let count = 0
    for await (const _ of store.read('all')) count++
    if (count !== EVENTS) throw new Error(`read ${count}`)
    best = Math.max(best, count / ((performance.now() - started) / 1000))
  }
  return best
}

const results = new Map<string, number[]>()
const note = (key: string, value: number) => (results.get(key) ?? results.set(key, []).get(key)!).push(value)
for (let round = 0; round < ROUNDS; round++) {
  const order = round % 2 === 0 ? subjects : [...subjects].reverse()
  for (const s of order) {
    for (const part of PARTS) {
      if (process.env.GC) Bun.gc(true)
      if (part === 'http' || part === 'bare') {
        const r = await loadRead(part === 'http' ? s.url : s.bareUrl)
        note(`${s.label} ${part}`, r.eventsPerSec)
        note(`${s.label} ${part} client CPU µs/page`, (r.clientCpuMs * 1000) / (EVENTS / 1000))
        note(`${s.label} ${part} server CPU µs/page`, (r.serverCpuMs * 1000) / (EVENTS / 1000))
      }
      if (part === 'direct') note(`${s.label} direct`, await direct(s.store))
    }
  }
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
for (const [key, xs] of results) console.log(`${backend} ${key}: median ${median(xs).toFixed(0)} (${xs.map((x) => x.toFixed(0)).join(' ')})`)
for (const s of subjects) {
  const http = results.get(`${s.label} http`)
  const dir = results.get(`${s.label} direct`)
  if (http && dir) console.log(`${backend} ${s.label} ratio http/direct (medians): ${(median(http) / median(dir)).toFixed(2)}`)
}
for (const s of subjects) await s.stop()
if (databases.length > 0) {
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} })
  for (const name of databases) await admin.unsafe(`drop database if exists ${name} with (force)`)
  await admin.end()
}
rmSync(tmp, { recursive: true, force: true })
