// The event bus, measured against its baselines.
//
// In-thread: each iteration publishes 1,024 events and drains them to one handler.
//   subject:   ringstate EventBus (ts/bus, pure TypeScript ring of references)
//   baselines: tseep EventEmitter, eventemitter3, node:events EventEmitter, each emitting the same
//              1,024 events to one listener (they have no queue, so this is their best case).
//
// Across threads: events per second from the main thread to one consumer Worker.
//   subjects:  SharedRing, native (crates/ring ByteRing) and the pure-TS SharedArrayBuffer twin,
//              publishing batches of 256 events, encoded as JSON (the default) or binary through
//              a schema ({ tick: { n: 'number' } })
//   baselines: postMessage of each event (the usual way), and postMessage of arrays of 256 events
//
// Run from the repository root: ./node_modules/.bin/bun bench/bus.bench.ts
// (the native rows need the addon: npm run build:native, or RINGSTATE_NATIVE_PATH)
import { EventEmitter as NodeEmitter } from 'node:events'
import EventEmitter3 from 'eventemitter3'
import { bench, do_not_optimize, run, summary } from 'mitata'
import { EventEmitter as Tseep } from 'tseep'
import { EventBus } from '../ts/bus/index.ts'
import { createSharedRing } from '../ts/bus/shared-ring.ts'
import { loadNative } from '../ts/native/index.ts'

const BATCH = 1024

interface Tick {
  type: 'tick'
  n: number
}

/** One row of the ratio table: nanoseconds per event. */
interface Row {
  name: string
  nsPerEvent: number
}

function printRatios(title: string, subject: Row, baselines: Row[], unit = 'ns/event'): void {
  console.log(`\n${title}`)
  console.log(`${'name'.padEnd(34)} ${unit.padStart(12)}   subject speed-up vs this row`)
  for (const row of [subject, ...baselines]) {
    const ratio = row === subject ? '(subject)' : `${(row.nsPerEvent / subject.nsPerEvent).toFixed(2)}x`
    console.log(`${row.name.padEnd(34)} ${row.nsPerEvent.toFixed(2).padStart(12)}   ${ratio}`)
  }
}

/** Publish-then-drain of 1,024 events to one handler, ringstate vs in-thread emitters. */
export async function benchInThread(): Promise<void> {
  const events: Tick[] = Array.from({ length: BATCH }, (_, n) => ({ type: 'tick', n }))
  let sink = 0
  const handler = (event: Tick) => {
    sink += event.n
  }

  const bus = new EventBus<Tick>({ capacity: BATCH, overrun: 'error' })
  bus.on('tick', handler)
  const tseep = new Tseep<{ tick: (event: Tick) => void }>()
  tseep.on('tick', handler)
  const ee3 = new EventEmitter3()
  ee3.on('tick', handler)
  const node = new NodeEmitter()
  node.on('tick', handler)

  const names = {
    ringstate: 'ringstate EventBus publish+drain',
    tseep: 'tseep emit',
    ee3: 'eventemitter3 emit',
    node: 'node:events emit',
  }
  summary(() => {
    bench(names.ringstate, () => {
      for (let i = 0; i < BATCH; i++) bus.publish(events[i]!)
      do_not_optimize(bus.drain())
    }).baseline(true)
    bench(names.tseep, () => {
      for (let i = 0; i < BATCH; i++) tseep.emit('tick', events[i]!)
    })
    bench(names.ee3, () => {
      for (let i = 0; i < BATCH; i++) ee3.emit('tick', events[i]!)
    })
    bench(names.node, () => {
      for (let i = 0; i < BATCH; i++) node.emit('tick', events[i]!)
    })
  })
  const { benchmarks } = await run({ filter: /publish\+drain|emit$/ })
  do_not_optimize(sink)
  const perEvent = (name: string): Row => {
    const trial = benchmarks.find((b) => b.alias === name)
    const stats = trial?.runs[0]?.stats
    if (!stats) throw new Error(`benchmark "${name}" did not run`)
    return { name, nsPerEvent: stats.p50 / BATCH }
  }
  printRatios(
    `In-thread, ${BATCH} events per iteration to one handler (median; >1x means ringstate is faster)`,
    perEvent(names.ringstate),
    [perEvent(names.tseep), perEvent(names.ee3), perEvent(names.node)],
  )
}

const THREAD_EVENTS = 200_000
const THREAD_BATCH = 256

/** Starts the consumer Worker and resolves with a function that waits for its next message. */
async function consumerWorker() {
  const worker = new Worker(new URL('./bus-worker.ts', import.meta.url))
  const inbox: unknown[] = []
  let wake: (() => void) | undefined
  worker.onmessage = ({ data }) => {
    inbox.push(data)
    wake?.()
  }
  const next = async (): Promise<unknown> => {
    while (inbox.length === 0) await new Promise<void>((resolve) => (wake = resolve))
    return inbox.shift()
  }
  return { worker, next }
}

/** One timed run: `send` publishes every event; resolves with ns per event once the Worker has them all. */
async function timeRun(mode: 'ring' | 'message' | 'batch', implementation?: 'native' | 'typescript', codec?: 'json' | 'schema'): Promise<number> {
  const events = Array.from({ length: THREAD_EVENTS }, (_, n) => ({ type: 'tick', n }))
  const { worker, next } = await consumerWorker()
  try {
    if (mode === 'ring') {
      const schema = codec === 'schema' ? { schema: { tick: { n: 'number' } } as const } : {}
      const ring = createSharedRing({ capacity: 4096, slotSize: 64, overrun: 'block', ...schema }, implementation!)
      worker.postMessage({ mode, handle: ring.handle, total: THREAD_EVENTS })
      await next() // ready
      const started = performance.now()
      for (let i = 0; i < THREAD_EVENTS; i += THREAD_BATCH) {
        const waiting = ring.publish(events.slice(i, i + THREAD_BATCH))
        if (waiting) await waiting
      }
      await next() // done
      const elapsed = performance.now() - started
      ring.release()
      return (elapsed * 1e6) / THREAD_EVENTS
    }
    worker.postMessage({ mode, total: THREAD_EVENTS })
    await next()
    const started = performance.now()
    if (mode === 'message') for (const event of events) worker.postMessage(event)
    else for (let i = 0; i < THREAD_EVENTS; i += THREAD_BATCH) worker.postMessage(events.slice(i, i + THREAD_BATCH))
    await next()
    return ((performance.now() - started) * 1e6) / THREAD_EVENTS
  } finally {
    worker.terminate()
  }
}

/** Best of three runs (the machine is shared; the best run is the least disturbed). */
async function bestOf(run: () => Promise<number>): Promise<number> {
  let best = Infinity
  for (let i = 0; i < 3; i++) best = Math.min(best, await run())
  return best
}

/** Main thread -> consumer Worker, SharedRing (native and TS twin) vs postMessage. */
export async function benchAcrossThreads(): Promise<void> {
  const hasNative = Boolean((loadNative() as { ringCreate?: unknown } | null)?.ringCreate)
  const rows: Row[] = []
  for (const codec of ['schema', 'json'] as const) {
    if (hasNative) rows.push({ name: `SharedRing native, ${codec}`, nsPerEvent: await bestOf(() => timeRun('ring', 'native', codec)) })
    rows.push({ name: `SharedRing typescript twin, ${codec}`, nsPerEvent: await bestOf(() => timeRun('ring', 'typescript', codec)) })
  }
  const perEvent = { name: 'postMessage per event', nsPerEvent: await bestOf(() => timeRun('message')) }
  const batched = { name: `postMessage of ${THREAD_BATCH}-event arrays`, nsPerEvent: await bestOf(() => timeRun('batch')) }
  console.log(`\nAcross threads: ${THREAD_EVENTS.toLocaleString('en')} events, main thread -> one consumer Worker (best of 3)`)
  console.log(`${'name'.padEnd(34)} ${'ns/event'.padStart(10)} ${'events/s'.padStart(12)}   vs postMessage per event   vs batched postMessage`)
  for (const row of [...rows, perEvent, batched]) {
    const rate = Math.round(1e9 / row.nsPerEvent).toLocaleString('en')
    const vsEach = `${(perEvent.nsPerEvent / row.nsPerEvent).toFixed(2)}x`
    const vsBatch = `${(batched.nsPerEvent / row.nsPerEvent).toFixed(2)}x`
    console.log(`${row.name.padEnd(34)} ${row.nsPerEvent.toFixed(1).padStart(10)} ${rate.padStart(12)}   ${vsEach.padStart(24)}   ${vsBatch.padStart(20)}`)
  }
  if (!hasNative) console.log('(native rows skipped: the addon with ring support is not loaded)')
}

if (import.meta.main) {
  await benchInThread()
  await benchAcrossThreads()
}
