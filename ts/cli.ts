#!/usr/bin/env bun
/**
 * The ringstate command line.
 *
 *   ringstate serve   [--url URL] [--once]      the main job (see below)
 *   ringstate append  TYPE [--tag k:v]... [--data JSON] [--id ID] [--url URL]
 *   ringstate read    [--type T]... [--tag k:v]... [--after N] [--limit N] [--backwards] [--url URL]
 *   ringstate tail    [--type T]... [--tag k:v]... [--after N] [--url URL]
 *   ringstate migrate [--url URL]                 create or upgrade the schema, then exit
 *   ringstate bench   [NAME...]                   run the mitata benchmarks
 *
 * The store URL comes from --url, else RINGSTATE_URL, else the embedded default
 * (SQLite at ./data/ringstate.db). Events are printed as JSON lines with positions as decimal
 * strings (JSON has no 64-bit integers).
 *
 * `serve` opens the store, shows the event bus at work on a burst of events, then forwards every
 * event appended to the store (by any process: try `ringstate append` in another terminal) onto an
 * in-process EventBus whose handler prints it. It runs until SIGINT/SIGTERM and then closes
 * cleanly. The HTTP API will be served from here once it exists.
 */
import { parseArgs } from 'node:util'
import { openStore } from './store/open.ts'
import type { EventStore, Query, SequencedEvent } from './store/types.ts'
import { EventBus } from './bus/index.ts'
import { nativeInfo } from './native/index.ts'
import { RingstateError } from './errors.ts'

const USAGE = `usage: ringstate <serve|append|read|tail|migrate|bench> [options]
  --url URL        store URL: memory:, sqlite:PATH, postgres://... (default: RINGSTATE_URL or sqlite:./data/ringstate.db)
  --type T         event type to match (repeatable)
  --tag k:v        tag to match, or to attach when appending (repeatable)
  --data JSON      event data when appending
  --id ID          idempotency id when appending
  --after N        only events after position N
  --limit N        at most N events
  --backwards      newest first
  --once           serve: run the bus demonstration and exit`

function eventLine(event: SequencedEvent): string {
  return JSON.stringify({ ...event, position: event.position.toString() })
}

function queryFrom(types: string[], tags: string[]): Query {
  if (types.length === 0 && tags.length === 0) return 'all'
  return [{ ...(types.length ? { types } : {}), ...(tags.length ? { tags } : {}) }]
}

function positionArg(value: string | undefined): bigint | undefined {
  if (value === undefined) return undefined
  if (!/^\d+$/.test(value)) throw new Error(`--after takes a non-negative integer, got "${value}"`)
  return BigInt(value)
}

/** Shows the bus on a burst of events: ring throughput and the metrics invariant. */
function busDemonstration(): void {
  const bus = new EventBus<{ type: 'tick'; n: number }>({ capacity: 1 << 12, overrun: 'error' })
  let total = 0
  bus.on('tick', (event) => { total += event.n })
  const events = 1_000_000
  const batch = 1024
  const started = performance.now()
  for (let sent = 0; sent < events; ) {
    const end = Math.min(events, sent + batch)
    for (; sent < end; sent++) bus.publish({ type: 'tick', n: 1 })
    bus.drain()
  }
  const elapsed = performance.now() - started
  const m = bus.metrics()
  console.log(
    `bus: ${events.toLocaleString('en')} events published and dispatched in ${elapsed.toFixed(1)} ms ` +
      `(${((elapsed * 1e6) / events).toFixed(1)} ns/event); handler saw ${total.toLocaleString('en')}; ` +
      `metrics published=${m.published} processed=${m.processed} dropped=${m.dropped} pending=${m.pending} errors=${m.errors}`,
  )
  bus.close()
}

async function serve(store: EventStore, once: boolean): Promise<void> {
  const info = nativeInfo()
  console.log(`ringstate serve: native=${info.mode}${info.version ? ` v${info.version}` : ''}, head=${await store.head()}`)
  busDemonstration()
  if (once) return

  const stop = new AbortController()
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => stop.abort())
  const bus = new EventBus<SequencedEvent>({ capacity: 1 << 12, overrun: 'block' })
  // The bus dispatches by type; a printer is registered the first time a type is seen.
  const printer = (event: SequencedEvent) => console.log(eventLine(event))
  const seen = new Set<string>()
  const head = await store.head()
  console.log(`forwarding events after position ${head} from the store to the bus; Ctrl-C to stop`)
  for await (const event of store.subscribe('all', { after: head, signal: stop.signal })) {
    if (!seen.has(event.type)) {
      seen.add(event.type)
      bus.on(event.type, printer)
    }
    const waiting = bus.publish(event)
    if (waiting) await waiting
    bus.drain()
  }
  bus.close()
  console.log('stopped')
}

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      url: { type: 'string' },
      type: { type: 'string', multiple: true, default: [] },
      tag: { type: 'string', multiple: true, default: [] },
      data: { type: 'string' },
      id: { type: 'string' },
      after: { type: 'string' },
      limit: { type: 'string' },
      backwards: { type: 'boolean', default: false },
      once: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  })
  const [command, ...rest] = positionals
  if (values.help || !command) {
    console.log(USAGE)
    return command || values.help ? 0 : 2
  }
  if (command === 'bench') {
    const child = Bun.spawn([process.execPath, `${import.meta.dir}/../bench/run.ts`, ...rest], { stdio: ['inherit', 'inherit', 'inherit'] })
    return await child.exited
  }

  const store = await openStore(values.url ?? process.env.RINGSTATE_URL)
  try {
    switch (command) {
      case 'serve':
        await serve(store, values.once)
        return 0
      case 'migrate':
        console.log(`schema is current; head=${await store.head()}`)
        return 0
      case 'append': {
        const [type] = rest
        if (!type) throw new Error('append needs an event type')
        const result = await store.append({
          type,
          tags: values.tag,
          data: values.data === undefined ? undefined : JSON.parse(values.data),
          ...(values.id ? { id: values.id } : {}),
        })
        console.log(JSON.stringify({ position: result.position.toString(), count: result.count }))
        return 0
      }
      case 'read': {
        const query = queryFrom(values.type, values.tag)
        const limit = values.limit === undefined ? undefined : Number(values.limit)
        for await (const event of store.read(query, { after: positionArg(values.after), limit, backwards: values.backwards })) {
          console.log(eventLine(event))
        }
        return 0
      }
      case 'tail': {
        const stop = new AbortController()
        process.once('SIGINT', () => stop.abort())
        for await (const event of store.subscribe(queryFrom(values.type, values.tag), { after: positionArg(values.after), signal: stop.signal })) {
          console.log(eventLine(event))
        }
        return 0
      }
      default:
        console.error(`unknown command "${command}"\n${USAGE}`)
        return 2
    }
  } finally {
    await store.close()
  }
}

if (import.meta.main) {
  try {
    process.exitCode = await main(process.argv.slice(2))
  } catch (error) {
    const code = error instanceof RingstateError ? ` [${error.code}]` : ''
    console.error(`ringstate: ${(error as Error).message}${code}`)
    process.exitCode = 1
  }
}

export { main }
