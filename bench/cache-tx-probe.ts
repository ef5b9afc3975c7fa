// A focused probe of StateCache bulk apply (the `bulk µs/tx` of bench/cache.bench.ts) for A/B runs
// between two checkouts: it loads ts/cache from the repository root given as its argument, so one
// script times any commit with a built addon. Not a *.bench.ts: `npm run bench` does not run it.
//
//   bun bench/cache-tx-probe.ts [root]       root: a checkout (default: this one)
//   PROBE_N=200000      entities (bench/cache.bench.ts uses 1M)
//   PROBE_TX=150        timed transactions of 1,000 random updates (after 30 warm-up ones)
//   PROBE_IMPL=immutable  immutable.js withMutations in the same harness, for the machine's factor
//
// Prints one JSON line: the median and 10th percentile µs per transaction, and the CPU time per
// wall time of the timed part (above 1 when another thread, e.g. the addon's drop thread, works
// alongside). Run it under the bench lock, alternating the checkouts (A B B A ...).
import { join, resolve } from 'node:path'
import { Map as ImmutableMap } from 'immutable'

const root = resolve(process.argv[2] ?? join(import.meta.dir, '..'))
const { StateCache } = await import(join(root, 'ts/cache/index.ts'))
const { nativeInfo } = await import(join(root, 'ts/native/index.ts'))
const N = Number(process.env.PROBE_N ?? 200_000)
const TXS = Number(process.env.PROBE_TX ?? 150)
const IMMUTABLE = process.env.PROBE_IMPL === 'immutable'

interface State { id: string; balance: number; owner: string; status: string; updatedAt: number; version: number }
interface Event { position: bigint; type: string; tags: string[]; data: State; metadata: object; id: string; recordedAt: Date }
interface Cache { apply(event: Event, tx: undefined): void; promote(): void }

/** The states of bench/cache.bench.ts (~110 bytes of JSON). */
function state(id: string, i: number, version: number): State {
  return { id, balance: (i * 7919) % 100_000, owner: `user-${(i % 50_000).toString(36)}`, status: i % 3 ? 'active' : 'frozen', updatedAt: 1_700_000_000_000 + version, version }
}

/** The bench's generator (splitmix-like), so both pick the same kind of random keys. */
let seed = 42
function next(): number {
  seed = (seed + 0x9e3779b9) >>> 0
  let z = seed
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b)
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35)
  return (z ^ (z >>> 16)) >>> 0
}

function immutableCache(): Cache {
  let map = ImmutableMap<string, State>()
  const pending: Event[] = []
  return {
    apply: (event) => void pending.push(event),
    promote() {
      map = map.withMutations((m) => {
        for (const event of pending) m.set(event.tags[0]!, event.data)
      })
      pending.length = 0
    },
  }
}

const cache: Cache = IMMUTABLE
  ? immutableCache()
  : new StateCache({ name: 'probe', implementation: 'native', key: (e: Event) => e.tags[0], apply: (_s: unknown, e: Event) => e.data })
const recordedAt = new Date(0)
const event = (id: string, data: State): Event => ({ position: 0n, type: 'Updated', tags: [id], data, metadata: {}, id: '', recordedAt })
let position = 0n
const ids = Array.from({ length: N }, (_, i) => `entity:${i}`)
for (let start = 0; start < N; start += 10_000) {
  for (let i = start; i < Math.min(N, start + 10_000); i++) {
    const e = event(ids[i]!, state(ids[i]!, i, 0))
    e.position = ++position
    cache.apply(e, undefined)
  }
  cache.promote()
}
const batches = Array.from({ length: 32 }, (_, b) => Array.from({ length: 1000 }, () => {
  const n = next() % N
  return event(ids[n]!, state(ids[n]!, n, b + 1))
}))
function transaction(b: number): void {
  for (const e of batches[b & 31]!) {
    e.position = ++position
    cache.apply(e, undefined)
  }
  cache.promote()
}

for (let i = 0; i < 30; i++) transaction(i)
const times: number[] = []
const cpuStart = process.cpuUsage()
const wallStart = performance.now()
for (let i = 0; i < TXS; i++) {
  const t0 = performance.now()
  transaction(i)
  times.push(performance.now() - t0)
}
const cpu = process.cpuUsage(cpuStart)
const wall = performance.now() - wallStart
times.sort((a, b) => a - b)
const info = nativeInfo()
console.log(JSON.stringify({
  root,
  impl: IMMUTABLE ? 'immutable' : 'native',
  addon: IMMUTABLE ? undefined : info.path,
  n: N,
  medianUs: Math.round(times[times.length >> 1]! * 1000),
  p10Us: Math.round(times[Math.floor(times.length * 0.1)]! * 1000),
  cpuPerWall: Math.round((cpu.user + cpu.system) / 10 / wall) / 100,
}))
