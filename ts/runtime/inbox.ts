/**
 * `inbox`: a bounded in-memory queue as a runtime source.
 */
import { AbortedError, InvalidOptionsError, OverloadedError, StoreClosedError } from '../errors.ts'
import { Deque } from './deque.ts'
import { INIT_DELIVERY, SHARE_DELIVERY, type SharingSource } from './internal.ts'
import type { CommitInfo, Delivery, Source } from './types.ts'

/** Options of `inbox`. */
export interface InboxOptions {
  /** Messages from outside the inbox holds (the one being processed included); 1 to 2^30. */
  capacity: number
}

/** How long `put` may wait for room. */
export interface PutOptions {
  /** Aborting it gives up the wait: `put` rejects ABORTED and the message is not queued. */
  signal?: AbortSignal
  /** Give up after this many milliseconds: `put` rejects OVERLOADED and the message is not queued. */
  timeoutMs?: number
}

/**
 * A message in the inbox. The id is a sequence number, made into a string only when asked for.
 * Written only by the inbox: once when made, or again for each message when it is the run's shared
 * delivery (see `SHARE_DELIVERY`).
 */
class InboxDelivery<Msg> implements Delivery<Msg> {
  // Two own fields, assigned in the constructor: fewer fields make a cheaper object. `position`
  // and `replay` live on the prototype (never set here).
  declare message: Msg
  /** The sequence number: positive for a message from outside, negative for a command result. */
  declare seq: number
  declare readonly position: undefined
  declare readonly replay: false
  constructor(message: Msg, seq: number) {
    this.message = message
    this.seq = seq
  }
  /** True for a message from outside (it holds a unit of capacity); false for a command result. */
  get external(): boolean {
    return this.seq > 0
  }
  get id(): string {
    return String(this.seq > 0 ? this.seq : -this.seq)
  }
}
Object.defineProperties(InboxDelivery.prototype, { position: { value: undefined }, replay: { value: false } })

interface Putter<Msg> {
  message: Msg
  resolve: () => void
  reject: (error: unknown) => void
  cleanup: () => void
}

interface Reader<Msg> {
  resolve: (delivery: Delivery<Msg> | undefined) => void
  reject: (error: unknown) => void
  signal: AbortSignal
  onAbort: () => void
}

const MAX_CAPACITY = 2 ** 30
const RESOLVED: Promise<void> = Promise.resolve()

/**
 * A bounded in-memory queue of messages, and a runtime source.
 *
 * `put(msg)` queues a message from outside; when `capacity` messages are held (the one being
 * processed counts until it is committed) it waits for room, up to its signal or `timeoutMs`.
 * Command results go into a lane of their own, delivered before the next message from outside
 * (they never wait for room: the loop that must drain them is the one producing them). A
 * rolled-back delivery goes back to the front of its lane with the same id. `close()` ends the
 * source once everything queued has been delivered.
 *
 * The runtime also calls `put(results, delivery)` for command results: that form is recognised by
 * its second argument, the delivery in hand, and takes effect when the delivery is committed.
 *
 * A delivery handed to a `replay` or `onError` function is its own object and never changes. In a
 * run without such a function nobody but the inbox sees its deliveries, so it refills one object
 * for each message (a subclass or wrapper that keeps deliveries must copy them).
 *
 * @example
 * const box = inbox<string>({ capacity: 100 })
 * const handle = run({ init: () => [[] as string[]], update: (msg, seen) => [[...seen, msg]] }, box)
 * await box.put('hello', { timeoutMs: 1000 })
 * box.close()
 * await handle.done // { model: ['hello'], position: undefined, reason: 'ended' }
 */
export class Inbox<Msg> implements Source<Msg, Msg>, SharingSource {
  private readonly capacity: number
  /** Messages from outside, not yet delivered. */
  private readonly queue = new Deque<Msg>()
  /** Command results, delivered before the queue. */
  private readonly results = new Deque<Msg>()
  /** A rolled-back delivery: the next one, with the same id. */
  private redeliver: InboxDelivery<Msg> | undefined = undefined
  private readonly putters = new Deque<Putter<Msg>>()
  private inflight: InboxDelivery<Msg> | undefined = undefined
  /** The delivery every message is handed out in while the run allows it (see `SHARE_DELIVERY`). */
  private shared: InboxDelivery<Msg> | undefined = undefined
  private staged: readonly Msg[] | undefined = undefined
  private reader: Reader<Msg> | undefined = undefined
  private seq = 0
  private closed = false
  private untilEmpty = false
  private running = false

  constructor(options: InboxOptions) {
    if (options === null || typeof options !== 'object') throw new InvalidOptionsError('inbox options must be an object with a capacity')
    const { capacity } = options
    if (!Number.isInteger(capacity) || capacity < 1 || capacity > MAX_CAPACITY) {
      throw new InvalidOptionsError(`inbox capacity must be an integer from 1 to 2^30, got ${String(capacity)}`)
    }
    this.capacity = capacity
  }

  /** Messages held from outside, the one being processed included. */
  get size(): number {
    const held = this.inflight ?? this.redeliver
    return this.queue.length + (held !== undefined && held.external ? 1 : 0)
  }

  /** True once `close()` was called. */
  get isClosed(): boolean {
    return this.closed
  }

  /**
   * Queue a message from outside. Resolves once it is in: at once when there is room, otherwise
   * when the program has committed enough messages to make room (first come, first served).
   *
   * @throws (rejects) StoreClosedError (STORE_CLOSED) after `close()`; AbortedError (ABORTED) when
   *   the signal aborts the wait; OverloadedError (OVERLOADED) when `timeoutMs` passes.
   */
  put(message: Msg, options?: PutOptions): Promise<void>
  /** The runtime's sink for command results of `delivery` (see the class notes). */
  put(messages: readonly Msg[], delivery: Delivery<Msg>): void
  put(message: Msg | readonly Msg[], second?: PutOptions | Delivery<Msg>): Promise<void> | void {
    if (second !== undefined && (second === this.inflight || second === INIT_DELIVERY)) {
      this.staged = message as readonly Msg[]
      return
    }
    return this.send(message as Msg, second as PutOptions | undefined)
  }

  /** Queue a message if there is room now; false when full (or closed). */
  tryPut(message: Msg): boolean {
    if (this.closed || this.putters.length > 0 || this.size >= this.capacity) return false
    this.enqueue(message)
    return true
  }

  private send(message: Msg, options: PutOptions | undefined): Promise<void> {
    if (this.closed) return Promise.reject(new StoreClosedError('the inbox is closed'))
    if (this.putters.length === 0 && this.size < this.capacity) {
      this.enqueue(message)
      return RESOLVED
    }
    const signal = options?.signal
    const timeoutMs = options?.timeoutMs
    if (timeoutMs !== undefined && (!Number.isFinite(timeoutMs) || timeoutMs < 0)) {
      return Promise.reject(new InvalidOptionsError(`timeoutMs must be a non-negative number, got ${String(timeoutMs)}`))
    }
    if (signal?.aborted) return Promise.reject(new AbortedError('inbox put was aborted', { cause: signal.reason }))
    return new Promise<void>((resolve, reject) => {
      let timer: ReturnType<typeof setTimeout> | undefined
      const leave = (error: unknown) => {
        this.removePutter(putter)
        reject(error)
      }
      const onAbort = () => leave(new AbortedError('inbox put was aborted', { cause: signal!.reason }))
      const putter: Putter<Msg> = {
        message,
        resolve,
        reject,
        cleanup: () => {
          if (timer !== undefined) clearTimeout(timer)
          signal?.removeEventListener('abort', onAbort)
        },
      }
      if (timeoutMs !== undefined) {
        timer = setTimeout(() => leave(new OverloadedError(`the inbox stayed full for ${timeoutMs} ms`)), timeoutMs)
      }
      signal?.addEventListener('abort', onAbort, { once: true })
      this.putters.push(putter)
    })
  }

  private removePutter(putter: Putter<Msg>): void {
    putter.cleanup()
    const kept: Putter<Msg>[] = []
    for (let p = this.putters.shift(); p !== undefined; p = this.putters.shift()) if (p !== putter) kept.push(p)
    for (const p of kept) this.putters.push(p)
  }

  private enqueue(message: Msg): void {
    const reader = this.reader
    if (reader !== undefined) {
      this.reader = undefined
      reader.signal.removeEventListener('abort', reader.onAbort)
      reader.resolve(this.deliver(message, ++this.seq))
      return
    }
    this.queue.push(message)
  }

  /** Let waiting putters in while there is room. */
  private admit(): void {
    while (this.putters.length > 0 && this.size < this.capacity) {
      const putter = this.putters.shift()!
      putter.cleanup()
      this.enqueue(putter.message)
      putter.resolve()
    }
  }

  /**
   * No more messages from outside: waiting putters reject STORE_CLOSED, and the source ends once
   * what is queued has been delivered. Closing twice is harmless.
   */
  close(): void {
    if (this.closed) return
    this.closed = true
    for (let p = this.putters.shift(); p !== undefined; p = this.putters.shift()) {
      p.cleanup()
      p.reject(new StoreClosedError('the inbox closed before the message got in'))
    }
    this.wakeEmpty()
  }

  private wakeEmpty(): void {
    const reader = this.reader
    if (reader === undefined || this.results.length > 0 || this.queue.length > 0 || this.redeliver !== undefined) return
    this.reader = undefined
    reader.signal.removeEventListener('abort', reader.onAbort)
    reader.resolve(undefined)
  }

  /** @internal the runtime's side of the source; see `Source`. */
  next(signal: AbortSignal): Delivery<Msg> | undefined | Promise<Delivery<Msg> | undefined> {
    if (this.redeliver !== undefined) {
      this.inflight = this.redeliver
      this.redeliver = undefined
      return this.inflight
    }
    if (this.results.length > 0) return this.deliver(this.results.shift()!, -++this.seq)
    if (this.queue.length > 0) return this.deliver(this.queue.shift()!, ++this.seq)
    if (this.closed || this.untilEmpty) return undefined
    if (signal.aborted) return Promise.reject(new AbortedError('inbox wait was aborted', { cause: signal.reason }))
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        this.reader = undefined
        reject(new AbortedError('inbox wait was aborted', { cause: signal.reason }))
      }
      this.reader = { resolve, reject, signal, onAbort }
      signal.addEventListener('abort', onAbort, { once: true })
    })
  }

  /** The delivery of `message`, now in flight: the shared one refilled, or a new one. */
  private deliver(message: Msg, seq: number): InboxDelivery<Msg> {
    const shared = this.shared
    if (shared === undefined) return (this.inflight = new InboxDelivery(message, seq))
    shared.message = message
    shared.seq = seq
    return (this.inflight = shared)
  }

  /** @internal */
  commit(delivery: Delivery<Msg>, _info: CommitInfo): void {
    const staged = this.staged
    this.staged = undefined
    if (staged !== undefined) for (const message of staged) this.results.push(message)
    if (delivery === this.inflight) {
      this.inflight = undefined
      if (this.putters.length > 0) this.admit()
    }
  }

  /** @internal */
  rollback(): void {
    this.staged = undefined
    const delivery = this.inflight
    if (delivery === undefined) return
    this.inflight = undefined
    // It stays the next delivery, with its id, and keeps its unit of capacity.
    this.redeliver = delivery
  }

  /** @internal one run at a time: two loops taking turns would break the one-delivery rule. */
  start(): void {
    if (this.running) throw new InvalidOptionsError('this source is already being run: one run at a time per source')
    this.running = true
  }

  /** @internal `batch` asks the inbox to end when it is empty instead of waiting. */
  untilNow(): void {
    this.untilEmpty = true
  }

  /**
   * @internal this run shows its deliveries to no one else. A new object each run: a rolled-back
   * delivery left from an earlier run may still be handed out (and kept by a callback), unchanged.
   */
  [SHARE_DELIVERY](): void {
    this.shared = new InboxDelivery<Msg>(undefined as Msg, 0)
  }

  /** @internal the run ended: a later run waits for messages again. */
  detach(): void {
    this.shared = undefined
    this.untilEmpty = false
    this.running = false
  }
}

/**
 * A bounded in-memory queue to run a program over. See `Inbox`.
 *
 * @throws InvalidOptionsError (INVALID_OPTIONS) when capacity is not an integer from 1 to 2^30.
 * @example
 * const box = inbox<{ type: 'ping' }>({ capacity: 64 })
 * const handle = run(program, box)
 * await box.put({ type: 'ping' }, { signal: AbortSignal.timeout(1000) })
 */
export function inbox<Msg>(options: InboxOptions): Inbox<Msg> {
  return new Inbox<Msg>(options)
}
