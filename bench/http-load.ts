// The load generator of bench/http.bench.ts, run as its own process so the HTTP clients do not
// share the server's JavaScript thread (a real server's clients are elsewhere).
//
//   bun bench/http-load.ts read <base url> <expected events>
//       pages through GET /v1/events?limit=1000 twice; prints { eventsPerSec, clientCpuMs } (the better pass)
//   bun bench/http-load.ts sse <base url> <clients> <after> <events>
//       opens <clients> streams after <after>; prints `ready` once all are caught up, then
//       `received` once every client has every event; then reads the acknowledgement times (JSON
//       array of epoch ms per position) from stdin and prints { p50, p99 } of ack -> receipt.
export {} // a module: top-level await

const TOKEN = 'bench-token-0123456789abcdef'
const headers = { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }
const PAGE = 1000
const [mode, base, ...rest] = process.argv.slice(2)
if (base === undefined) throw new Error('usage: http-load.ts <read|sse> <base url> ...')

/** Milliseconds since the epoch with sub-millisecond precision, comparable across processes. */
const now = () => performance.timeOrigin + performance.now()

const page = (after: string | undefined) => fetch(`${base}v1/events?limit=${PAGE}${after ? `&after=${after}` : ''}`, { headers })

/**
 * Every event, page after page. The `next` cursor is the body's last member: it is read from the
 * tail and the next page asked for before this one is parsed, so the client's JSON.parse (about
 * 1 µs per event) runs while the server builds the next page instead of between pages, as a client
 * that processes a page while fetching the next would. Every page is still parsed and counted, and
 * its parsed `next` must equal the one read from the tail.
 */
async function readAll(): Promise<number> {
  let count = 0
  let pending = page(undefined)
  for (;;) {
    const response = await pending
    if (response.status !== 200) throw new Error(`GET /v1/events answered ${response.status}: ${await response.text()}`)
    const text = await response.text()
    const next = /,"next":"([0-9]+)"\}$/.exec(text.slice(-48))?.[1]
    if (next !== undefined) pending = page(next)
    const parsed = JSON.parse(text) as { events: unknown[]; next?: string }
    if (parsed.next !== next) throw new Error(`the page's next cursor ${parsed.next} was read from its tail as ${next}`)
    count += parsed.events.length
    if (next === undefined) return count
  }
}

if (mode === 'read') {
  const expected = Number(rest[0])
  let best = 0
  let clientCpuMs = 0
  for (let pass = 0; pass < 2; pass++) {
    const started = performance.now()
    const cpuBefore = process.cpuUsage()
    const read = await readAll()
    if (read !== expected) throw new Error(`read ${read} events, expected ${expected}`)
    const rate = read / ((performance.now() - started) / 1000)
    const cpu = process.cpuUsage(cpuBefore)
    if (rate > best) [best, clientCpuMs] = [rate, (cpu.user + cpu.system) / 1000]
  }
  console.log(JSON.stringify({ eventsPerSec: best, clientCpuMs }))
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
