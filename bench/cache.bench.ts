// The state cache, measured against its baselines, at 1M entities of about 100 bytes of JSON state.
//
//   subjects:  ringstate StateCache over the native HAMT (crates/hamt through the addon; states
//              stored as JSON bytes) and over the pure-TypeScript twin (ts/cache/hamt.ts; states
//              stored as JS values). Both go through the real inline-projector path: apply() per
//              event, promote() per transaction, so key(), the user's apply, the pending change
//              map and (native) JSON encoding + one change buffer per transaction are all included.
//   baselines: immutable.js Map (withMutations per transaction: also persistent) and a plain JS
//              Map (mutable, no versions: the speed of light).
//
// Each implementation runs in its own Bun process so its memory is measured alone: RSS and heap
// deltas after a forced GC, from before the first entity to after the last. "Longest pause" is
// the slowest of 300 individually timed 1,000-update transactions next to their median: GC pauses
// show up as outliers there (Bun exposes no GC observer; this is the method). Snapshot/restore run
// the real StateCache.snapshot/restore against an in-memory snapshots table (zstd where available).
//
// Run from the repository root: ./node_modules/.bin/bun bench/cache.bench.ts
// (CACHE_BENCH_ENTITIES=100000 for a quicker, smaller run; CACHE_BENCH_ONLY=native,typescript runs
// only those implementations; CACHE_BENCH_KEEP=1 sets the caches' keepVersions.)
import { do_not_optimize, measure } from 'mitata'
import { Map as ImmutableMap } from 'immutable'
import type { SequencedEvent, StoredSnapshot } from '../ts/store/types.ts'
import { HamtMap, StateCache } from '../ts/cache/index.ts'

const N = Number(process.env.CACHE_BENCH_ENTITIES ?? 1_000_000)
/** keepVersions of the StateCache subjects (CACHE_BENCH_KEEP; the cache's default is 16). */
const KEEP = process.env.CACHE_BENCH_KEEP === undefined ? undefined : Number(process.env.CACHE_BENCH_KEEP)
const TX = 1000
const LOAD_TX = 10_000
type Impl = 'native' | 'typescript' | 'twin' | 'immutable' | 'map'
const NAMES: Record<Impl, string> = {
  native: 'StateCache native HAMT',
  typescript: 'StateCache TS twin',
  twin: 'HamtMap TS twin (raw)',
  immutable: 'immutable.js Map',
  map: 'JS Map (mutable)',
}

interface State { id: string; balance: number; owner: string; status: string; updatedAt: number; version: number }

interface Result {
  impl: Impl
  buildMs: number
  rssMiB: number
  heapMiB: number
  bulkNsPerTx: number
  pauseMaxMs: number
  pauseMedianMs: number
  hotGetNs: number
  coldGetNs: number
  snapshotMs?: number
  restoreMs?: number
  snapshotMiB?: number
  backend?: string
}

/** What each implementation offers the harness. */
interface Subject {
  /** Applies one transaction: ids[i] gets states[i]. */
  apply(ids: string[], states: State[]): void
  get(id: string): State | undefined
  readonly size: number
}

function state(id: string, i: number, version: number): State {
  return { id, balance: (i * 7919) % 100_000, owner: `user-${(i % 50_000).toString(36)}`, status: i % 3 ? 'active' : 'frozen', updatedAt: 1_700_000_000_000 + version, version }
}

function memory(): { rss: number; heap: number } {
  Bun.gc(true)
  const usage = process.memoryUsage()
  return { rss: usage.rss, heap: usage.heapUsed }
}

function random(seed: number): () => number {
  let s = seed >>> 0
  return () => {
    s = (s + 0x9e3779b9) >>> 0
    let z = s
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b)
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35)
    return (z ^ (z >>> 16)) >>> 0
  }
}

function cacheSubject(implementation: 'native' | 'typescript'): { subject: Subject; cache: StateCache<State> } {
  const cache = new StateCache<State>({ name: 'bench', implementation, keepVersions: KEEP, key: (e) => e.tags[0], apply: (_s, e) => e.data as State })
  let position = 0n
  const recordedAt = new Date(0)
  // The events of a prepared transaction are made once and reused with fresh positions, so the
  // harness adds only what a store adds per event: a new bigint position.
  const prepared = new WeakMap<string[], SequencedEvent[]>()
  const subject: Subject = {
    apply(ids, states) {
      let events = prepared.get(ids)
      if (events === undefined) {
        events = ids.map((id, i) => ({ position: 0n, type: 'Updated', tags: [id], data: states[i], metadata: {}, id: '', recordedAt }))
        prepared.set(ids, events)
      }
      for (let i = 0; i < events.length; i++) {
        const event = events[i]!
        event.position = ++position
        cache.apply(event, undefined)
      }
      cache.promote()
    },
    get: (id) => cache.get(id),
    get size() {
      return cache.size
    },
  }
  return { subject, cache }
}

function makeSubject(impl: Impl): { subject: Subject; cache?: StateCache<State> } {
  if (impl === 'native' || impl === 'typescript') return cacheSubject(impl)
  if (impl === 'twin') {
    let map = HamtMap.empty<State>()
    return {
      subject: {
        apply(ids, states) {
          const t = map.transient()
          for (let i = 0; i < ids.length; i++) t.set(ids[i]!, states[i]!)
          map = t.persistent()
        },
        get: (id) => map.get(id),
        get size() {
          return map.size
        },
      },
    }
  }
  if (impl === 'immutable') {
    let map = ImmutableMap<string, State>()
    return {
      subject: {
        apply(ids, states) {
          map = map.withMutations((m) => {
            for (let i = 0; i < ids.length; i++) m.set(ids[i]!, states[i]!)
          })
        },
        get: (id) => map.get(id),
        get size() {
          return map.size
        },
      },
    }
  }
  const map = new Map<string, State>()
  return {
    subject: {
      apply(ids, states) {
        for (let i = 0; i < ids.length; i++) map.set(ids[i]!, states[i]!)
      },
      get: (id) => map.get(id),
      get size() {
        return map.size
      },
    },
  }
}

async function child(impl: Impl): Promise<Result> {
  const ids = Array.from({ length: N }, (_, i) => `entity:${i}`)
  const next = random(42)
  // 64 prepared transactions of 1,000 random updates, cycled.
  const batches = Array.from({ length: 64 }, (_, b) => {
    const batchIds: string[] = []
    const batchStates: State[] = []
    for (let i = 0; i < TX; i++) {
      const n = next() % N
      batchIds.push(ids[n]!)
      batchStates.push(state(ids[n]!, n, b + 1))
    }
    return { batchIds, batchStates }
  })
  const coldIds = Array.from({ length: 65_536 }, () => ids[next() % N]!)
  const before = memory()

  const { subject, cache } = makeSubject(impl)
  const buildStart = performance.now()
  for (let start = 0; start < N; start += LOAD_TX) {
    const chunk = ids.slice(start, Math.min(N, start + LOAD_TX))
    subject.apply(chunk, chunk.map((id, i) => state(id, start + i, 0)))
  }
  const buildMs = performance.now() - buildStart
  if (subject.size !== N) throw new Error(`${impl}: built ${subject.size} entities, expected ${N}`)
  const after = memory()

  let b = 0
  const bulk = await measure(() => {
    const { batchIds, batchStates } = batches[b++ & 63]!
    subject.apply(batchIds, batchStates)
  })
  const times: number[] = []
  for (let i = 0; i < 300; i++) {
    const { batchIds, batchStates } = batches[i & 63]!
    const t0 = performance.now()
    subject.apply(batchIds, batchStates)
    times.push(performance.now() - t0)
  }
  times.sort((x, y) => x - y)

  // Eight hot entities read in turn (one constant key lets the JIT hoist Map.get out of the loop).
  const hotIds = Array.from({ length: 8 }, (_, i) => ids[(i * 104_729) % N]!)
  const hotId = hotIds[0]!
  const hot = await measure(() => {
    for (let i = 0; i < 1000; i++) do_not_optimize(subject.get(hotIds[i & 7]!))
  })
  let c = 0
  const cold = await measure(() => {
    for (let i = 0; i < 1000; i++) do_not_optimize(subject.get(coldIds[c++ & 65_535]!))
  })

  const result: Result = {
    impl,
    buildMs,
    rssMiB: (after.rss - before.rss) / 2 ** 20,
    heapMiB: (after.heap - before.heap) / 2 ** 20,
    bulkNsPerTx: bulk.p50,
    pauseMaxMs: times[times.length - 1]!,
    pauseMedianMs: times[times.length >> 1]!,
    hotGetNs: hot.p50 / 1000,
    coldGetNs: cold.p50 / 1000,
  }
  if (cache !== undefined) {
    result.backend = cache.implementation
    let saved: StoredSnapshot | undefined
    const store = {
      saveSnapshot: async (name: string, position: bigint, data: Uint8Array) => {
        saved = { name, position, data, createdAt: new Date() }
      },
      loadSnapshot: async () => saved,
      read: async function* (): AsyncIterable<SequencedEvent> {},
    }
    let t0 = performance.now()
    await cache.snapshot(store)
    result.snapshotMs = performance.now() - t0
    result.snapshotMiB = saved!.data.length / 2 ** 20
    const restored = new StateCache<State>({ name: 'bench', implementation: cache.implementation, key: (e) => e.tags[0], apply: (_s, e) => e.data as State })
    t0 = performance.now()
    await restored.restore(store)
    result.restoreMs = performance.now() - t0
    if (restored.size !== N || restored.get(hotId)?.id !== hotId) throw new Error(`${impl}: restore lost entities`)
  }
  return result
}

function printTables(results: Result[]): void {
  const by = (impl: Impl) => results.find((r) => r.impl === impl)
  const immutable = by('immutable')
  const map = by('map')
  const fmt = (x: number | undefined, digits = 1) => (x === undefined ? 'n/a' : x.toFixed(digits))
  console.log(`\nState cache, ${N.toLocaleString('en')} entities, ${TX} updates per transaction (medians)`)
  console.log(
    `${'implementation'.padEnd(26)}${'build ms'.padStart(10)}${'bulk µs/tx'.padStart(12)}${'hot get ns'.padStart(12)}${'cold get ns'.padStart(13)}` +
      `${'RSS MiB'.padStart(10)}${'heap MiB'.padStart(10)}${'tx p50/max ms'.padStart(16)}${'snap ms'.padStart(9)}${'restore ms'.padStart(12)}${'snap MiB'.padStart(10)}`,
  )
  for (const r of results) {
    console.log(
      `${NAMES[r.impl].padEnd(26)}${fmt(r.buildMs, 0).padStart(10)}${fmt(r.bulkNsPerTx / 1000).padStart(12)}${fmt(r.hotGetNs).padStart(12)}${fmt(r.coldGetNs).padStart(13)}` +
        `${fmt(r.rssMiB).padStart(10)}${fmt(r.heapMiB).padStart(10)}${`${fmt(r.pauseMedianMs, 2)}/${fmt(r.pauseMaxMs, 2)}`.padStart(16)}` +
        `${fmt(r.snapshotMs, 0).padStart(9)}${fmt(r.restoreMs, 0).padStart(12)}${fmt(r.snapshotMiB).padStart(10)}`,
    )
  }
  if (!immutable || !map) return
  console.log('\nRatios against the targets (issue: bulk >= 3x immutable.js; hot get <= 1.5x Map.get; memory <= 0.5x immutable.js; snapshot/restore <= 1 s)')
  for (const r of results.filter((x) => x.impl === 'native' || x.impl === 'typescript' || x.impl === 'twin')) {
    const bulk = immutable.bulkNsPerTx / r.bulkNsPerTx
    const hot = r.hotGetNs / map.hotGetNs
    const mem = r.rssMiB / immutable.rssMiB
    const verdict = (ok: boolean) => (ok ? 'met' : 'MISSED')
    console.log(`${NAMES[r.impl]}${r.backend ? ` (${r.backend})` : ''}:`)
    console.log(`  bulk apply speed vs immutable.js  ${bulk.toFixed(2)}x   ${verdict(bulk >= 3)}`)
    console.log(`  bulk apply speed vs JS Map        ${(map.bulkNsPerTx / r.bulkNsPerTx).toFixed(2)}x`)
    console.log(`  hot get time vs Map.get           ${hot.toFixed(2)}x   ${verdict(hot <= 1.5)}`)
    console.log(`  cold get time vs Map.get          ${(r.coldGetNs / map.coldGetNs).toFixed(2)}x`)
    console.log(`  RSS vs immutable.js               ${mem.toFixed(2)}x   ${verdict(mem <= 0.5)}  (heap ${(r.heapMiB / immutable.heapMiB).toFixed(2)}x)`)
    console.log(`  snapshot ${fmt(r.snapshotMs, 0)} ms, restore ${fmt(r.restoreMs, 0)} ms   ${verdict((r.snapshotMs ?? Infinity) <= 1000 && (r.restoreMs ?? Infinity) <= 1000)}`)
  }
}

async function main(): Promise<void> {
  const arg = process.argv[2] as Impl | undefined
  if (arg !== undefined) {
    console.log(`RESULT ${JSON.stringify(await child(arg))}`)
    return
  }
  const results: Result[] = []
  const only = process.env.CACHE_BENCH_ONLY?.split(',')
  for (const impl of ['native', 'typescript', 'twin', 'immutable', 'map'] as Impl[]) {
    if (only !== undefined && !only.includes(impl)) continue
    const env = { ...process.env, RINGSTATE_NATIVE: impl === 'native' ? '1' : '0' }
    const proc = Bun.spawn([process.execPath, import.meta.path, impl], { env, stdout: 'pipe', stderr: 'inherit' })
    const out = await new Response(proc.stdout).text()
    if ((await proc.exited) !== 0) {
      console.error(`${NAMES[impl]}: skipped (the child process failed; for native, is the addon built?)`)
      continue
    }
    const line = out.split('\n').find((l) => l.startsWith('RESULT '))
    if (line) results.push(JSON.parse(line.slice(7)) as Result)
    console.error(`${NAMES[impl]} done`)
  }
  printTables(results)
}

await main()
