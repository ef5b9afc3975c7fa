// The load generator of bench/http.bench.ts, run as its own process so the HTTP clients do not
// share the server's JavaScript thread (a real server's clients are elsewhere).
//
//   bun bench/http-load.ts read <base url> <expected events>
//       pages through GET /v1/events?limit=1000 twice; prints { eventsPerSec, clientCpuMs } (the better pass)
//   bun bench/http-load.ts sse <base url> <clients> <after> <events> <receipts file>
//       opens <clients> streams after <after>; prints `ready` once all are caught up; once every
//       client has every event, writes the receipt times (epoch ms, a Float64Array of clients x
//       events, client-major) to <receipts file> and prints { clientCpuMs, busy, pauseMs }: its
//       CPU during the fan-out, its share of the fan-out on CPU and its longest pause
import { pauseWatch } from './store-workloads.ts'

const TOKEN = 'bench-token-0123456789abcdef'
const headers = { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }
const PAGE = 1000
const [mode, base, ...rest] = process.argv.slice(2)
if (base === undefined) throw new Error('usage: http-load.ts <read|sse> <base url> ...')

/** Milliseconds since the epoch with sub-millisecond precision, comparable across processes. */
const now = () => performance.timeOrigin + performance.now()
const EMPTY = Buffer.alloc(0)
/** The blank line that ends a server-sent event. */
const FRAME_END = Buffer.from('\n\n')

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
  const [clients, afterNumber, events] = rest.slice(0, 3).map(Number) as [number, number, number]
  const receiptsFile = rest[3]!
  const receipts = new Float64Array(clients * events)
  let caughtUp = 0
  const ready = Promise.withResolvers<void>()
  const streams = Array.from({ length: clients }, (_, client) => {
    let received = 0
    return sseStream(new URL(`v1/subscribe?after=${afterNumber}`, base), {
      onEvent(position, receivedAt) {
        // Every event, once, in order: the next frame must carry the next position.
        if (position !== afterNumber + received + 1) throw new Error(`stream ${client} got position ${position} after ${afterNumber + received}`)
        receipts[client * events + received] = receivedAt
        return ++received === events
      },
      onCaughtUp() {
        if (++caughtUp === clients) ready.resolve()
      },
      describe: () => `stream ${client} ended after ${received} events`,
    })
  })
  // A stream that fails before all are caught up must fail the run rather than leave it waiting.
  await Promise.race([ready.promise, Promise.all(streams).then(() => { throw new Error('every stream ended before all were caught up') })])
  await ready.promise
  // Setting up the streams leaves garbage; its collection is this process's, not the fan-out's
  // latency (the bench collects the server's before the fan-out for the same reason).
  Bun.gc(true)
  console.log('ready')
  // This process's share of the fan-out's wall time on CPU: near 1, the clients could not keep up,
  // and the latencies include their own backlog (the frames wait in the sockets for this process).
  const fanOutStarted = performance.now()
  const cpuAtReady = process.cpuUsage()
  const pauses = pauseWatch()
  await Promise.all(streams)
  const pauseMs = pauses.stop()
  const fanOutCpu = process.cpuUsage(cpuAtReady)
  const busy = (fanOutCpu.user + fanOutCpu.system) / 1000 / (performance.now() - fanOutStarted)
  await Bun.write(receiptsFile, receipts)
  console.log(JSON.stringify({ clientCpuMs: (fanOutCpu.user + fanOutCpu.system) / 1000, busy, pauseMs }))
} else {
  throw new Error(`unknown mode ${mode}`)
}

interface SseHandlers {
  /** An event frame arrived (its `id`, the time its last byte was read); true ends the stream. */
  onEvent(position: number, receivedAt: number): boolean
  onCaughtUp(): void
  /** What to say when the server ends the stream before `onEvent` asked for the end. */
  describe(): string
}

/**
 * One `GET` of an event stream over a plain TCP connection (Bun.connect), resolved once `onEvent`
 * returns true. Why not fetch: on this bench's 2 cores the clients' CPU is taken from the server,
 * and fetch's body stream cost about 20 µs per chunk read (a promise per read, a stream queue),
 * several times the socket's own cost; the server sends one chunk per client per tail read, so
 * that was most of the load process's CPU. Here each socket read is one callback: the response
 * head is checked (200, chunked), the chunked body decoded, and the frames scanned as bytes.
 * Every frame completed by one socket read gets that read's time as its receipt.
 */
function sseStream(url: URL, handlers: SseHandlers): Promise<void> {
  const done = Promise.withResolvers<void>()
  let head: Buffer | undefined = EMPTY // the response head until its blank line; then undefined
  // Chunked transfer coding: a hex size line, that many bytes, CRLF; a zero size ends the body.
  let state: 'size' | 'data' | 'crlf' = 'size'
  let size = 0
  let sizeDigits = true // false after a ';' (a chunk extension) until the line ends
  let left = 0
  let rest: Buffer = EMPTY // the bytes of a frame not yet complete
  let finished = false
  const fail = (error: Error) => {
    if (finished) return
    finished = true
    done.reject(error)
  }

  /**
   * Scan body bytes [from, to) of `bytes` for complete frames ("\n\n"-terminated). One native
   * search per frame and no new view per read: at 2,000,000 frames a run, the scan is most of
   * what this process does.
   */
  const frames = (bytes: Buffer, from: number, to: number, receivedAt: number, socket: { end(): void }) => {
    let data = bytes
    let start = from
    let limit = to
    if (rest.length > 0) {
      data = Buffer.concat([rest, bytes.subarray(from, to)])
      start = 0
      limit = data.length
    }
    // The search may run past `limit` (into the next chunk's framing): a frame ending there is not complete yet.
    for (let end = data.indexOf(FRAME_END, start); end >= 0 && end + 2 <= limit; end = data.indexOf(FRAME_END, start)) {
      // A frame is data[start, end): "id: N\n..." for an event, "event: caught-up\n..." once.
      if (data[start] === 105 && data[start + 1] === 100 && data[start + 2] === 58) {
        let position = 0
        for (let i = start + 4; data[i] !== 10; i++) position = position * 10 + (data[i]! - 48)
        if (handlers.onEvent(position, receivedAt)) {
          finished = true
          socket.end()
          done.resolve()
          return
        }
      } else if (data[start] === 101 && data[start + 7] === 99) {
        handlers.onCaughtUp()
      }
      start = end + 2
    }
    // A piece almost always ends with a whole frame: then nothing is kept.
    rest = start === limit ? EMPTY : Buffer.from(data.subarray(start, limit))
  }

  const body = (bytes: Buffer, from: number, receivedAt: number, socket: { end(): void }) => {
    let i = from
    while (i < bytes.length && !finished) {
      if (state === 'data') {
        const take = Math.min(left, bytes.length - i)
        frames(bytes, i, i + take, receivedAt, socket)
        i += take
        left -= take
        if (left === 0) [state, left] = ['crlf', 2]
      } else if (state === 'crlf') {
        i++
        if (--left === 0) [state, size, sizeDigits] = ['size', 0, true]
      } else {
        const byte = bytes[i++]!
        if (byte === 10) {
          if (size === 0) return fail(new Error(handlers.describe()))
          ;[state, left] = ['data', size]
        } else if (byte === 59) sizeDigits = false
        else if (sizeDigits && byte !== 13) {
          const digit = byte <= 57 ? byte - 48 : (byte | 32) - 87
          if (digit < 0 || digit > 15) return fail(new Error(`bad chunk size byte ${byte}`))
          size = size * 16 + digit
        }
      }
    }
  }

  Bun.connect({
    hostname: url.hostname,
    port: Number(url.port),
    socket: {
      binaryType: 'buffer',
      open(socket) {
        socket.write(`GET ${url.pathname}${url.search} HTTP/1.1\r\nhost: ${url.host}\r\nauthorization: Bearer ${TOKEN}\r\naccept: text/event-stream\r\n\r\n`)
      },
      data(socket, bytes: Buffer) {
        const receivedAt = now()
        try {
          if (head === undefined) return body(bytes, 0, receivedAt, socket)
          head = Buffer.concat([head, bytes])
          const blank = head.indexOf('\r\n\r\n')
          if (blank < 0) return
          const text = head.subarray(0, blank).toString('latin1')
          if (!text.startsWith('HTTP/1.1 200 ')) return fail(new Error(`subscribe answered ${text.split('\r\n')[0]}`))
          if (!/\r\ntransfer-encoding: *chunked(\r\n|$)/i.test(text)) return fail(new Error('the event stream is not chunked'))
          const all = head
          head = undefined
          body(all, blank + 4, receivedAt, socket)
        } catch (error) {
          fail(error as Error)
        }
      },
      close() {
        fail(new Error(handlers.describe()))
      },
      error(_, error) {
        fail(error)
      },
    },
  }).catch(fail)
  return done.promise
}
