/**
 * The in-thread event bus: a bounded ring of event references with GoEventBus's three overrun
 * policies, without GoEventBus's races (there is one thread, and one place that moves each index).
 *
 * JavaScript objects cannot live in native memory, so this ring is pure TypeScript; the native
 * ring carries encoded events between threads (see `shared-ring.ts`).
 */
import {
  AbortedError,
  BufferFullError,
  InvalidEventError,
  InvalidOptionsError,
  StoreClosedError,
} from '../errors.ts'

/** Anything with a string `type` is an event. */
export interface BusEvent {
  readonly type: string
}

/** What every handler receives besides the event. `signal` aborts when the bus closes. */
export interface HandlerContext {
  readonly signal: AbortSignal
}

/**
 * The event a handler for `K` receives: narrowed to the member of the union `E` whose `type` is
 * `K`. On an untyped bus (`type: string`) it is left to the handler's own annotation.
 */
export type EventOfType<E extends BusEvent, K extends string> = string extends E['type'] ? any : Extract<E, { type: K }>

/** A subscriber; it may return a promise, whose rejection is reported like a throw. */
export type Handler<E extends BusEvent = BusEvent> = (event: E, context: HandlerContext) => unknown

/** What a full ring does with one more event. */
export type Overrun = 'drop-oldest' | 'block' | 'error'

export interface EventBusOptions<E extends BusEvent = BusEvent, A extends boolean = boolean> {
  /** Ring slots; a power of two from 1 to 2^30. */
  capacity: number
  /**
   * `error` (the default) throws BUFFER_FULL with the event attached; `block` makes `publish`
   * return a Promise that settles once the event is in; `drop-oldest` overwrites the oldest
   * pending event and counts it in `dropped`.
   */
  overrun?: Overrun
  /** When true, `drain` starts every handler without waiting and returns a Promise. */
  async?: A
  /** Sees every handler failure: a throw or a rejected promise. Defaults to `console.error`. */
  onError?: (error: unknown, event: E) => void
}

/** Counters; `published === processed + dropped + pending` at all times. */
export interface BusMetrics {
  /** Events accepted by `publish`. */
  published: number
  /** Events dispatched to their handlers (zero handlers counts too). */
  processed: number
  /** Handler failures. */
  errors: number
  /** Events overwritten by `drop-oldest` or discarded by `close`. */
  dropped: number
  /** Events in the ring, waiting for `drain`. */
  pending: number
}

interface Waiter<E> {
  event: E
  resolve: () => void
  reject: (error: unknown) => void
  signal: AbortSignal | undefined
  onAbort: (() => void) | undefined
}

const MAX_CAPACITY = 2 ** 30
const OVERRUNS: readonly Overrun[] = ['drop-oldest', 'block', 'error']
const NO_HANDLERS: readonly Handler<any>[] = Object.freeze([])

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return value !== null && typeof value === 'object' && typeof (value as PromiseLike<unknown>).then === 'function'
}

function defaultOnError(error: unknown, event: BusEvent): void {
  console.error(`ringstate bus: a handler for "${event.type}" failed:`, error)
}

/**
 * A bounded, in-thread event bus.
 *
 * `publish` puts an event into a preallocated ring (no allocation when there is room); `drain`
 * hands pending events to the handlers of their type, in publish order. Handlers registered with
 * `on` for one type run in registration order; a handler that throws (or rejects) goes to
 * `onError` and never stops the drain.
 *
 * @example
 * ```ts
 * type AppEvent = { type: 'user-created'; id: string } | { type: 'user-deleted'; id: string; reason: string }
 * const bus = new EventBus<AppEvent>({ capacity: 1024, overrun: 'error' })
 * const off = bus.on('user-created', (event) => console.log(event.id)) // event: the user-created member
 * bus.publish({ type: 'user-created', id: 'u1' })
 * bus.drain()   // prints u1
 * off()
 * bus.metrics() // { published: 1, processed: 1, errors: 0, dropped: 0, pending: 0 }
 * ```
 */
export class EventBus<E extends BusEvent = BusEvent, A extends boolean = false> {
  // Plain (TS-private) fields: the publish/drain loop reads them millions of times a second.
  private readonly slots: (E | undefined)[]
  private readonly mask: number
  private readonly capacity: number
  private readonly overrun: Overrun
  private readonly async: boolean
  private readonly onError: (error: unknown, event: E) => void
  /** Next sequence to read; only `drain` (and drop-oldest, which is the same thread) moves it. */
  private head = 0
  /**
   * Next sequence to write. Every accepted event takes one, so `tail` is also `published`, and
   * `processed` is `head - dropped`: the hot path keeps no other counter.
   */
  private tail = 0
  private errors = 0
  private dropped = 0
  private readonly handlers = new Map<string, readonly Handler<any>[]>()
  /** The last type dispatched and its handlers: a burst of one type looks handlers up once. */
  private lastType: string | undefined = undefined
  private lastHandlers: readonly Handler<any>[] = NO_HANDLERS
  private readonly waiters: Waiter<E>[] = []
  private draining = false
  private closed = false
  private readonly controller = new AbortController()
  private readonly context: HandlerContext
  private readonly inflight = new Set<Promise<unknown>>()

  /**
   * @throws InvalidOptionsError (INVALID_OPTIONS) when an option is out of range or of the wrong type.
   * @example
   * ```ts
   * const bus = new EventBus({ capacity: 4096, overrun: 'block', async: true, onError: (e) => log(e) })
   * ```
   */
  constructor(options: EventBusOptions<E, A>) {
    if (options === null || typeof options !== 'object') {
      throw new InvalidOptionsError('EventBus options must be an object with a capacity')
    }
    const { capacity, overrun = 'error', async = false, onError = defaultOnError } = options
    if (!Number.isInteger(capacity) || capacity < 1 || capacity > MAX_CAPACITY || (capacity & (capacity - 1)) !== 0) {
      throw new InvalidOptionsError(`capacity must be a power of two from 1 to 2^30, got ${String(capacity)}`)
    }
    if (!OVERRUNS.includes(overrun)) {
      throw new InvalidOptionsError(`overrun must be one of ${OVERRUNS.join(', ')}, got ${String(overrun)}`)
    }
    if (typeof async !== 'boolean') throw new InvalidOptionsError('async must be a boolean')
    if (typeof onError !== 'function') throw new InvalidOptionsError('onError must be a function')
    this.capacity = capacity
    this.mask = capacity - 1
    // Filled, not holey: the engine then keeps it a dense array of references.
    this.slots = new Array<E | undefined>(capacity).fill(undefined)
    this.overrun = overrun
    this.async = async
    this.onError = onError
    this.context = Object.freeze({ signal: this.controller.signal })
  }

  /**
   * Registers `handler` for events of `type`; returns a function that removes it. Removing a
   * handler during a drain takes effect from the next event (the current one still reaches it).
   *
   * @example
   * ```ts
   * const off = bus.on('tick', (event: { type: 'tick'; n: number }, { signal }) => work(event.n, signal))
   * off()
   * ```
   */
  on<K extends E['type']>(type: K, handler: Handler<EventOfType<E, K>>): () => void {
    if (typeof type !== 'string' || type.length === 0) {
      throw new InvalidOptionsError('on(type, handler): type must be a non-empty string')
    }
    if (typeof handler !== 'function') throw new InvalidOptionsError('on(type, handler): handler must be a function')
    // Copy on write: a drain iterating the old array is never disturbed.
    this.handlers.set(type, [...(this.handlers.get(type) ?? NO_HANDLERS), handler])
    this.lastType = undefined
    let subscribed = true
    return () => {
      if (!subscribed) return
      subscribed = false
      const current = this.handlers.get(type) ?? NO_HANDLERS
      const index = current.indexOf(handler)
      if (index < 0) return
      const next = current.slice(0, index).concat(current.slice(index + 1))
      if (next.length === 0) this.handlers.delete(type)
      else this.handlers.set(type, next)
      this.lastType = undefined
    }
  }

  /**
   * Enqueues an event. Returns `undefined` when it went in. On a full ring: `error` throws
   * BUFFER_FULL (the event is on `error.item`), `drop-oldest` overwrites the oldest pending event,
   * `block` returns a Promise that resolves once the event is in, or rejects with ABORTED when
   * `options.signal` aborts (STORE_CLOSED when the bus closes) — the event is then not published.
   *
   * @throws InvalidEventError (INVALID_EVENT) when `event` has no string `type`.
   * @throws StoreClosedError (STORE_CLOSED) after `close()`.
   * @example
   * ```ts
   * const waiting = bus.publish({ type: 'tick', n: 1 }, { signal: AbortSignal.timeout(100) })
   * if (waiting) await waiting // only in block mode, only when the ring was full
   * ```
   */
  publish(event: E, options?: { signal?: AbortSignal }): Promise<void> | undefined {
    if (this.closed) throw new StoreClosedError('the bus is closed')
    if (event === null || typeof event !== 'object' || typeof event.type !== 'string') {
      throw new InvalidEventError('an event must be an object with a string type')
    }
    const tail = this.tail
    if (tail - this.head < this.capacity) {
      this.slots[tail & this.mask] = event
      this.tail = tail + 1
      return undefined
    }
    return this.publishFull(event, options?.signal)
  }

  private publishFull(event: E, signal: AbortSignal | undefined): Promise<void> | undefined {
    if (this.overrun === 'error') throw new BufferFullError(event)
    if (this.overrun === 'drop-oldest') {
      const tail = this.tail
      // The oldest pending slot is the one this event takes: moving head past it drops it.
      this.head++
      this.dropped++
      this.slots[tail & this.mask] = event
      this.tail = tail + 1
      return undefined
    }
    if (signal?.aborted) return Promise.reject(new AbortedError(undefined, { cause: signal.reason }))
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter<E> = { event, resolve, reject, signal, onAbort: undefined }
      if (signal) {
        waiter.onAbort = () => {
          const index = this.waiters.indexOf(waiter)
          if (index >= 0) this.waiters.splice(index, 1)
          reject(new AbortedError(undefined, { cause: signal.reason }))
        }
        signal.addEventListener('abort', waiter.onAbort, { once: true })
      }
      this.waiters.push(waiter)
    })
  }

  /** Moves the first blocked publisher's event into the slot a drain just freed. */
  private admitWaiter(): void {
    const waiter = this.waiters.shift()!
    if (waiter.onAbort) waiter.signal!.removeEventListener('abort', waiter.onAbort)
    this.slots[this.tail & this.mask] = waiter.event
    this.tail++
    waiter.resolve()
  }

  /**
   * Dispatches every pending event (and events published meanwhile by handlers or admitted from
   * blocked publishers) in order. Sync bus: handlers run now, in the caller; returns how many
   * events were dispatched. Async bus: every handler is started without waiting; the returned
   * Promise resolves with the count once all of them have settled (it never rejects: failures go
   * to `onError`). A drain called from inside a handler dispatches nothing (returns 0).
   *
   * @example
   * ```ts
   * bus.publish({ type: 'tick', n: 1 })
   * bus.drain() // 1
   * ```
   */
  drain(): A extends true ? Promise<number> : number {
    type Result = A extends true ? Promise<number> : number
    if (this.draining) return (this.async ? Promise.resolve(0) : 0) as Result
    this.draining = true
    try {
      return (this.async ? this.drainAsync() : this.drainSync()) as Result
    } finally {
      this.draining = false
    }
  }

  private drainSync(): number {
    const slots = this.slots
    const mask = this.mask
    const context = this.context
    const waiters = this.waiters
    let count = 0
    while (this.head !== this.tail) {
      // `this.head` is re-read and stored each time: a handler may publish (and, under
      // drop-oldest, move head) while we dispatch.
      const index = this.head & mask
      const event = slots[index]!
      slots[index] = undefined
      this.head++
      if (waiters.length !== 0) this.admitWaiter()
      const handlers = event.type === this.lastType ? this.lastHandlers : this.lookUp(event.type)
      for (let i = 0; i < handlers.length; i++) {
        try {
          const result = handlers[i]!(event, context)
          if (result !== undefined) this.watchIfThenable(result, event)
        } catch (error) {
          this.fail(error, event)
        }
      }
      count++
    }
    return count
  }

  private drainAsync(): Promise<number> {
    const context = this.context
    const running: Promise<unknown>[] = []
    let count = 0
    while (this.head !== this.tail) {
      const index = this.head & this.mask
      const event = this.slots[index]!
      this.slots[index] = undefined
      this.head++
      if (this.waiters.length !== 0) this.admitWaiter()
      const handlers = event.type === this.lastType ? this.lastHandlers : this.lookUp(event.type)
      for (let i = 0; i < handlers.length; i++) {
        try {
          const result = handlers[i]!(event, context)
          if (result !== undefined && isThenable(result)) running.push(this.watch(result, event))
        } catch (error) {
          this.fail(error, event)
        }
      }
      count++
    }
    if (running.length === 0) return Promise.resolve(count)
    const done = Promise.all(running).then(() => count)
    this.inflight.add(done)
    void done.then(() => this.inflight.delete(done))
    return done
  }

  private lookUp(type: string): readonly Handler<any>[] {
    const handlers = this.handlers.get(type) ?? NO_HANDLERS
    this.lastType = type
    this.lastHandlers = handlers
    return handlers
  }

  private watchIfThenable(result: unknown, event: E): void {
    if (isThenable(result)) void this.watch(result, event)
  }

  private watch(result: PromiseLike<unknown>, event: E): Promise<unknown> {
    return Promise.resolve(result).then(undefined, (error) => this.fail(error, event))
  }

  private fail(error: unknown, event: E): void {
    this.errors++
    try {
      this.onError(error, event)
    } catch (reportError) {
      // onError itself failed; the drain must go on, so say so and carry on.
      defaultOnError(reportError, event)
    }
  }

  /**
   * The counters.
   *
   * @example
   * ```ts
   * const { published, processed, dropped, pending } = bus.metrics()
   * console.assert(published === processed + dropped + pending)
   * ```
   */
  metrics(): BusMetrics {
    return {
      published: this.tail,
      processed: this.head - this.dropped,
      errors: this.errors,
      dropped: this.dropped,
      pending: this.tail - this.head,
    }
  }

  /**
   * Closes the bus now: further `publish` calls throw STORE_CLOSED, blocked publishers reject with
   * STORE_CLOSED, events still pending are discarded (counted in `dropped`; call `drain()` first to
   * keep them), and the handlers' `signal` aborts. Resolves once in-flight async handlers settle.
   * Closing twice is harmless.
   *
   * @example
   * ```ts
   * await bus.drain()
   * await bus.close()
   * ```
   */
  async close(): Promise<void> {
    if (!this.closed) {
      this.closed = true
      for (const waiter of this.waiters.splice(0)) {
        if (waiter.onAbort) waiter.signal!.removeEventListener('abort', waiter.onAbort)
        waiter.reject(new StoreClosedError('the bus closed before the event got in'))
      }
      this.dropped += this.tail - this.head
      this.slots.fill(undefined)
      this.head = this.tail
      this.controller.abort(new StoreClosedError('the bus is closed'))
    }
    await Promise.all(this.inflight)
  }
}
