/**
 * Server-sent events over `store.follow` (DESIGN.md section 8). Each stream is pulled: the next
 * batch is read from the follower only when the client has taken the previous one, so a slow
 * client holds back its own follower (and the store's tail reader decides what that costs), never
 * a buffer in this process. Every stream of an app goes through one `SseHub`, which counts them,
 * refuses past `maxClients`, and ends them all when the server stops.
 */
import { ErrorCode } from '../errors.ts'
import type { EventStore, FollowBatch, Query, SequencedEvent } from '../store/types.ts'
import type { HttpMetrics } from './metrics.ts'
import { StatusProblem } from './problem.ts'
import { eventJson } from './wire.ts'

const encoder = new TextEncoder()

/** Settings of the event streams of one app. */
export interface SseSettings {
  heartbeatMs: number
  retryMs: number
  maxClients: number
}

/** The open event streams of one app. */
export class SseHub {
  readonly #streams = new Set<AbortController>()
  readonly #settings: SseSettings
  readonly #metrics: HttpMetrics

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
    for (const stream of this.#streams) stream.abort()
  }

  /**
   * Open a stream of `query` after `after` (exclusive).
   *
   * @throws StatusProblem 503 OVERLOADED past `maxClients`, with `Retry-After`.
   */
  open(store: EventStore<any>, query: Query, after: bigint, requestSignal: AbortSignal | undefined): Response {
    const { heartbeatMs, retryMs, maxClients } = this.#settings
    if (this.#streams.size >= maxClients) {
      throw new StatusProblem(503, ErrorCode.OVERLOADED, `this server streams to ${maxClients} clients already`, {
        'retry-after': String(Math.max(1, Math.ceil(retryMs / 1000))),
      })
    }
    const abort = new AbortController()
    this.#streams.add(abort)
    this.#metrics.sseClients.inc()
    let released = false
    const release = () => {
      if (released) return
      released = true
      this.#streams.delete(abort)
      this.#metrics.sseClients.dec()
      requestSignal?.removeEventListener('abort', onClientGone)
      abort.abort()
      // Ends the follower now rather than at its next batch: it leaves the tail reader at once.
      void batches.return?.(undefined)?.catch(() => {})
    }
    const onClientGone = () => release()
    requestSignal?.addEventListener('abort', onClientGone, { once: true })

    const batches = store.follow(query, { after, signal: abort.signal })[Symbol.asyncIterator]() as AsyncIterator<FollowBatch<SequencedEvent>>
    const metrics = this.#metrics
    let lastId = after
    let through = after
    let caughtUp = false
    let pending: Promise<IteratorResult<FollowBatch<SequencedEvent>>> | undefined
    let timer: ReturnType<typeof setTimeout> | undefined

    const heartbeat = (): string => {
      if (through > lastId) {
        lastId = through
        return `event: progress\nid: ${through}\ndata: {"through":"${through}"}\n\n`
      }
      return ': keep-alive\n\n'
    }

    const stream = new ReadableStream<Uint8Array>(
      {
        start(controller) {
          controller.enqueue(encoder.encode(`retry: ${retryMs}\n\n`))
        },
        async pull(controller) {
          // Loop until something is written: a pull that enqueues nothing is not called again.
          for (;;) {
            if (abort.signal.aborted) {
              close(controller)
              return
            }
            pending ??= batches.next()
            let next: IteratorResult<FollowBatch<SequencedEvent>> | 'idle'
            try {
              next = await Promise.race([
                pending,
                new Promise<'idle'>((resolve) => (timer = setTimeout(resolve, heartbeatMs, 'idle'))),
              ])
            } catch {
              // The store closed or the follower was aborted: the stream ends; the client reconnects
              // with Last-Event-ID and resumes exactly where it was.
              clearTimeout(timer)
              close(controller)
              return
            }
            clearTimeout(timer)
            if (next === 'idle') {
              controller.enqueue(encoder.encode(heartbeat()))
              return
            }
            pending = undefined
            if (next.done) {
              close(controller)
              return
            }
            const batch = next.value
            let text = ''
            for (const event of batch.events) {
              text += `id: ${event.position}\ndata: ${eventJson(event)}\n\n`
              lastId = event.position
            }
            if (batch.through > through) through = batch.through
            if (batch.caughtUp && !caughtUp) {
              caughtUp = true
              text += `event: caught-up\nid: ${through}\ndata: {"through":"${through}"}\n\n`
              lastId = through
            }
            if (text !== '') {
              if (batch.events.length > 0) metrics.sseEventsSent.inc(batch.events.length)
              controller.enqueue(encoder.encode(text))
              return
            }
          }
        },
        cancel() {
          clearTimeout(timer)
          release()
        },
      },
      { highWaterMark: 1 },
    )

    function close(controller: ReadableStreamDefaultController<Uint8Array>): void {
      release()
      try {
        controller.close()
      } catch {
        // Already closed or errored by the runtime after the client left.
      }
    }

    return new Response(stream, {
      status: 200,
      headers: {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-cache, no-transform',
        'x-accel-buffering': 'no',
      },
    })
  }
}
