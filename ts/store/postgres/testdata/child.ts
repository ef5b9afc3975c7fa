// Child process for the PostgreSQL multi-process tests. Usage: bun child.ts <mode> <database url> [arg]
//   race <name>       claim usernames user-0..user-39 and enrol in course c1 (capacity 10) until full,
//                     and append on its own boundary; prints one JSON summary line
//   append-loop       append 3-event appends forever, printing "<position> <append number>" per ack
//   subscribe         subscribe to 'all' with a 10-minute poll interval, printing each position
import { openPostgresStore } from '../index.ts'
import type { EventStore, SequencedEvent } from '../../types.ts'
import { race } from './race.ts'

const [mode, url, arg] = process.argv.slice(2)
if (!mode || !url) throw new Error('usage: child.ts <mode> <url> [arg]')

async function appendLoop(store: EventStore): Promise<void> {
  for (let n = 1; ; n++) {
    const events = [0, 1, 2].map((k) => ({ type: 'Crash', tags: [`append:${n}`], data: { n, k }, id: `a${n}-${k}` }))
    const result = await store.append(events)
    process.stdout.write(`${result.position} ${n}\n`)
  }
}

async function subscribe(store: EventStore): Promise<void> {
  for await (const event of store.subscribe('all') as AsyncIterable<SequencedEvent>) {
    process.stdout.write(`${event.position}\n`)
  }
}

const store = await openPostgresStore(url, { pollIntervalMs: 600_000, max: 2 })
if (mode === 'race') console.log(JSON.stringify(await race(store, arg ?? 'child', 40)))
else if (mode === 'append-loop') await appendLoop(store)
else if (mode === 'subscribe') await subscribe(store)
else throw new Error(`unknown mode ${mode}`)
await store.close()
