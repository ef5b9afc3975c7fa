/**
 * Server-sent events over `store.follow` (DESIGN.md section 8). Each stream is pulled: the next
 * batch is read from the follower only when the client has taken the previous one, so a slow
 * client holds back its own follower (and the store's tail reader decides what that costs), never
 * a buffer in this process. Every stream of an app goes through one `SseHub`, which counts them,
 * refuses past `maxClients`, sends the heartbeats of all of them from one timer, and ends them all
 * when the server stops.
 */
import { ErrorCode } from '../errors.ts'
import { followShared, type SharedFollower } from '../store/core/store.ts'
import type { EventStore, FollowBatch, Query, SequencedEvent } from '../store/types.ts'
import type { HttpMetrics } from './metrics.ts'
import { StatusProblem } from './problem.ts'
import { eventJson } from './wire.ts'

const encoder = new TextEncoder()

/** Encoded frames of recent events kept for the other streams that send the same event. */
const FRAME_CACHE_ENTRIES = 4096
/** ... and at most this many bytes of them (events may be up to 1 MiB each). */
const FRAME_CACHE_BYTES = 16 << 20
/** A frame larger than this is encoded per stream rather than kept. */
const FRAME_CACHE_LARGEST = 256 << 10

/** Settings of the event streams of one app. */
export interface SseSettings {
  heartbeatMs: number
  retryMs: number
  maxClients: number
}

/** One open stream, as the hub sees it. */
interface OpenStream {
  readonly abort: AbortController
  /** performance.now() of the last write. */
  lastWrite: number
  heartbeat(): void
}

/** The open event streams of one app. */
export class SseHub {
  readonly #streams = new Set<OpenStream>()
  readonly #settings: SseSettings
  readonly #metrics: HttpMetrics
  /**
   * `id: N` + `data: <event JSON>` frames by position: with many clients on one query, each event
   * is serialised and encoded once, not once per client. Positions are unique in one store.
   */
  readonly #frames = new Map<bigint, Uint8Array>()
  #frameBytes = 0
  #timer: ReturnType<typeof setInterval> | undefined
  /**
   * The events of the last batch sent and its chunk: the streams of one query get the same event
   * objects from the tail (`followShared`), so the next stream's batch is recognised by identity
   * alone and its chunk built once, without a frame lookup per event.
   */
  #lastEvents: readonly SequencedEvent[] = []
  #lastEventsChunk: Uint8Array | undefined

  constructor(settings: SseSettings, metrics: HttpMetrics) {
    this.#settings = settings
    this.#metrics = metrics
  }

  /** Streams open now. */
  get clients(): number {
    return this.#streams.size
  }

  /** End every open stream (the server is stopping). */
  closeAll(): void {
    for (const stream of this.#streams) stream.abort.abort()
  }

  #frame(event: SequencedEvent): Uint8Array {
    const cached = this.#frames.get(event.position)
    if (cached !== undefined) return cached
    const frame = encoder.encode(`id: ${event.position}\ndata: ${eventJson(event)}\n\n`)
    if (frame.byteLength > FRAME_CACHE_LARGEST) return frame
    // Oldest first: the streams of one query move through the log together.
    while (this.#frames.size >= FRAME_CACHE_ENTRIES || this.#frameBytes + frame.byteLength > FRAME_CACHE_BYTES) {
      const [oldest, bytes] = this.#frames.entries().next().value!
      this.#frames.delete(oldest)
      this.#frameBytes -= bytes.byteLength
    }
    this.#frames.set(event.position, frame)
    this.#frameBytes += frame.byteLength
    return frame
  }

  /** The frames of `events` in one chunk. */
  #chunk(events: readonly SequencedEvent[]): Uint8Array {
    const last = this.#lastEvents
    if (this.#lastEventsChunk !== undefined && last.length === events.length) {
      let same = true
      for (let i = 0; same && i < events.length; i++) same = events[i] === last[i]
      if (same) return this.#lastEventsChunk
    }
    const chunk = events.length === 1 ? this.#frame(events[0]!) : concat(events.map((event) => this.#frame(event)))
    this.#lastEvents = events
    this.#lastEventsChunk = chunk
    return chunk
  }

  #add(stream: OpenStream): void {
    this.#streams.add(stream)
    this.#metrics.sseClients.inc()
    if (this.#timer === undefined) {
      const { heartbeatMs } = this.#settings
      // One timer for every stream; a stream idle for heartbeatMs gets its heartbeat within a
      // quarter of that.
      this.#timer = setInterval(() => {
        const now = performance.now()
        for (const open of this.#streams) if (now - open.lastWrite >= heartbeatMs) open.heartbeat()
      }, Math.max(5, Math.floor(heartbeatMs / 4)))
    }
  }

  #remove(stream: OpenStream): void {
    if (!this.#streams.delete(stream)) return
    this.#metrics.sseClients.dec()
    if (this.#streams.size === 0) {
      clearInterval(this.#timer)
      this.#timer = undefined
      this.#frames.clear()
      this.#frameBytes = 0
      this.#lastEvents = []
      this.#lastEventsChunk = undefined
    }
  }

  /**
   * Open a stream of `query` after `after` (exclusive).
   *
   * @throws StatusProblem 503 OVERLOADED past `maxClients`, with `Retry-After`.
   */
  open(store: EventStore<any>, query: Query, after: bigint, requestSignal: AbortSignal | undefined): Response {
    const { retryMs, maxClients } = this.#settings
    if (this.#streams.size >= maxClients) {
      throw new StatusProblem(503, ErrorCode.OVERLOADED, `this server streams to ${maxClients} clients already`, {
        'retry-after': String(Math.max(1, Math.ceil(retryMs / 1000))),
      })
    }
    const hub = this
    const metrics = this.#metrics
    const abort = new AbortController()
    // Frames are only read here: a ringstate store gives every stream the same event objects.
    const follower =
      followShared in store
        ? (store as EventStore<any> & SharedFollower)[followShared](query, { after, signal: abort.signal })
        : store.follow(query, { after, signal: abort.signal })
    const batches = follower[Symbol.asyncIterator]() as AsyncIterator<FollowBatch<SequencedEvent>>
    let controller: ReadableStreamDefaultController<Uint8Array> | undefined
    let lastId = after
    let through = after
    let caughtUp = false
    let released = false

    const write = (chunk: Uint8Array) => {
      stream.lastWrite = performance.now()
      try {
        controller?.enqueue(chunk)
      } catch {
        // The runtime closed the stream after the client left; release() follows from cancel.
      }
    }
    const stream: OpenStream = {
      abort,
      lastWrite: performance.now(),
      heartbeat() {
        if (through > lastId) {
          lastId = through
          write(encoder.encode(`event: progress\nid: ${through}\ndata: {"through":"${through}"}\n\n`))
        } else {
          write(KEEP_ALIVE)
        }
      },
    }
    const release = () => {
      if (released) return
      released = true
      hub.#remove(stream)
      requestSignal?.removeEventListener('abort', release)
      abort.abort()
      // Ends the follower now rather than at its next batch: it leaves the tail reader at once.
      void batches.return?.(undefined)?.catch(() => {})
    }
    const close = () => {
      release()
      try {
        controller?.close()
      } catch {
        // Already closed or errored by the runtime after the client left.
      }
    }
    requestSignal?.addEventListener('abort', release, { once: true })
    this.#add(stream)

    const body = new ReadableStream<Uint8Array>(
      {
        start(streamController) {
          controller = streamController
          write(encoder.encode(`retry: ${retryMs}\n\n`))
        },
        async pull() {
          // Loop until something is written: a pull that enqueues nothing is not called again.
          for (;;) {
            if (abort.signal.aborted) return close()
            let next: IteratorResult<FollowBatch<SequencedEvent>>
            try {
              next = await batches.next()
            } catch {
              // The store closed or the follower was aborted: the stream ends; the client
              // reconnects with Last-Event-ID and resumes exactly where it was.
              return close()
            }
            if (next.done) return close()
            const batch = next.value
            if (batch.through > through) through = batch.through
            const { events } = batch
            let chunk: Uint8Array | undefined
            if (events.length > 0) {
              chunk = hub.#chunk(events)
              lastId = events[events.length - 1]!.position
              metrics.sseEventsSent.inc(events.length)
            }
            if (batch.caughtUp && !caughtUp) {
              caughtUp = true
              const marker = encoder.encode(`event: caught-up\nid: ${through}\ndata: {"through":"${through}"}\n\n`)
              chunk = chunk === undefined ? marker : concat([chunk, marker])
              lastId = through
            }
            if (chunk !== undefined) return write(chunk)
          }
        },
        cancel() {
          release()
        },
      },
      { highWaterMark: 1 },
    )

    return new Response(body, {
      status: 200,
      headers: {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-cache, no-transform',
        'x-accel-buffering': 'no',
      },
    })
  }
}

const KEEP_ALIVE = encoder.encode(': keep-alive\n\n')

function concat(parts: readonly Uint8Array[]): Uint8Array {
  let length = 0
  for (const part of parts) length += part.byteLength
  const out = new Uint8Array(length)
  let offset = 0
  for (const part of parts) {
    out.set(part, offset)
    offset += part.byteLength
  }
  return out
}
