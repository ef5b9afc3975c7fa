// The event bus, measured against its baselines.
//
// In-thread: each iteration publishes 1,024 events and drains them to one handler.
//   subject:   ringstate EventBus (ts/bus, pure TypeScript ring of references)
//   baselines: tseep EventEmitter, eventemitter3, node:events EventEmitter, each emitting the same
//              1,024 events to one listener (they have no queue, so this is their best case).
//
// Run from the repository root: ./node_modules/.bin/bun bench/bus.bench.ts
import { EventEmitter as NodeEmitter } from 'node:events'
import EventEmitter3 from 'eventemitter3'
import { bench, do_not_optimize, run, summary } from 'mitata'
import { EventEmitter as Tseep } from 'tseep'
import { EventBus } from '../ts/bus/index.ts'

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

if (import.meta.main) {
  await benchInThread()
}
