// The load generator of bench/http.bench.ts, run as its own process so the HTTP clients do not
// share the server's JavaScript thread (a real server's clients are elsewhere).
//
//   bun bench/http-load.ts append <base url> <clients> <seconds> <account offset>
//       16-caller keep-alive appends (3 events each) for <seconds>; prints { appendsPerSec, eventsPerSec }
//   bun bench/http-load.ts read <base url> <expected events>
//       pages through GET /v1/events?limit=1000 twice; prints { eventsPerSec } (the better pass)
//   bun bench/http-load.ts sse <base url> <clients> <after> <events>
//       opens <clients> streams after <after>; prints `ready` once all are caught up, then
//       `received` once every client has every event; then reads the acknowledgement times (JSON
//       array of epoch ms per position) from stdin and prints { p50, p99 } of ack -> receipt.
import { timeBoxed } from './store-workloads.ts'

const TOKEN = 'bench-token-0123456789abcdef'
const headers = { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }
const PAGE = 1000
const [mode, base, ...rest] = process.argv.slice(2)
if (base === undefined) throw new Error('usage: http-load.ts <append|read|sse> <base url> ...')

/** Milliseconds since the epoch with sub-millisecond precision, comparable across processes. */
const now = () => performance.timeOrigin + performance.now()

async function append(client: number, i: number): Promise<number> {
  const events = [0, 1, 2].map((k) => ({ type: 'Deposited', tags: [`account:${client}`], data: { amount: i * 3 + k } }))
  const response = await fetch(`${base}v1/append`, { method: 'POST', headers, body: JSON.stringify({ events }) })
  if (response.status !== 201) throw new Error(`append answered ${response.status}: ${await response.text()}`)
  return ((await response.json()) as { count: number }).count
}

async function readAll(): Promise<number> {
  let count = 0
  let after: string | undefined
  for (;;) {
    const response = await fetch(`${base}v1/events?limit=${PAGE}${after ? `&after=${after}` : ''}`, { headers })
    const page = (await response.json()) as { events: unknown[]; next?: string }
    count += page.events.length
    if (page.next === undefined) return count
    after = page.next
  }
}

if (mode === 'append') {
  const [clients, seconds, offset] = rest.map(Number) as [number, number, number]
  const rate = await timeBoxed(clients, seconds, (client, i) => append(client + offset, i))
  console.log(JSON.stringify({ appendsPerSec: rate.appendsPerSec, eventsPerSec: rate.eventsPerSec, seconds: rate.seconds }))
} else if (mode === 'read') {
  const expected = Number(rest[0])
  let best = 0
  for (let pass = 0; pass < 2; pass++) {
    const started = performance.now()
    const read = await readAll()
    if (read !== expected) throw new Error(`read ${read} events, expected ${expected}`)
    best = Math.max(best, read / ((performance.now() - started) / 1000))
  }
  console.log(JSON.stringify({ eventsPerSec: best }))
} else if (mode === 'sse') {
  const [clients, afterNumber, events] = rest.map(Number) as [number, number, number]
  const receipts = new Float64Array(clients * events)
  let caughtUp = 0
  const ready = Promise.withResolvers<void>()
  const streams = Array.from({ length: clients }, async (_, client) => {
    const abort = new AbortController()
    const response = await fetch(`${base}v1/subscribe?after=${afterNumber}`, { headers, signal: abort.signal })
    if (response.status !== 200) throw new Error(`subscribe answered ${response.status}`)
    // Frames are scanned as bytes (no text decoding): the client's cost per frame competes with the
    // server for the same two cores.
    const reader = response.body!.getReader()
    let rest: Uint8Array = new Uint8Array(0)
    let received = 0
    for (;;) {
      const { done, value } = await reader.read()
      if (done) throw new Error(`stream ${client} ended after ${received} events`)
      const bytes = rest.length === 0 ? value : concat(rest, value)
      let start = 0
      for (let end = bytes.indexOf(10, start); end >= 0 && end + 1 < bytes.length; end = bytes.indexOf(10, end + 1)) {
        if (bytes[end + 1] !== 10) continue
        // A frame is bytes[start, end): "id: N\n..." for an event, "event: caught-up\n..." once.
        if (bytes[start] === 105 && bytes[start + 1] === 100 && bytes[start + 2] === 58) {
          let position = 0
          for (let i = start + 4; bytes[i] !== 10; i++) position = position * 10 + (bytes[i]! - 48)
          receipts[client * events + (position - afterNumber - 1)] = now()
          if (++received === events) {
            abort.abort()
            return
          }
        } else if (bytes[start] === 101 && bytes[start + 7] === 99) {
          if (++caughtUp === clients) ready.resolve()
        }
        start = end + 2
        end = end + 1
      }
      rest = bytes.subarray(start)
    }
  })
  await ready.promise
  console.log('ready')
  await Promise.all(streams.map((stream) => stream.catch((error) => { if (error?.name !== 'AbortError') throw error })))
  console.log('received')
  const input = await Bun.stdin.text()
  const acks = JSON.parse(input) as number[]
  const latencies = new Float64Array(clients * events)
  for (let client = 0; client < clients; client++) {
    for (let i = 0; i < events; i++) {
      // A receipt before the append's acknowledgement reached its caller counts as zero.
      latencies[client * events + i] = Math.max(0, receipts[client * events + i]! - acks[i]!)
    }
  }
  latencies.sort()
  const at = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))]!
  const cpu = process.cpuUsage()
  console.log(JSON.stringify({ p50: at(50), p99: at(99), max: latencies[latencies.length - 1], clientCpuMs: (cpu.user + cpu.system) / 1000 }))
} else {
  throw new Error(`unknown mode ${mode}`)
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length)
  out.set(a)
  out.set(b, a.length)
  return out
}
