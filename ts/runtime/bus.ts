/**
 * `fromBus`: events of an in-thread EventBus as a runtime source. Not durable: at most once.
 */
import type { BusEvent, EventBus } from '../bus/index.ts'
import { AbortedError, InvalidOptionsError } from '../errors.ts'
import { Deque } from './deque.ts'
import { isThenable, SequenceDelivery } from './internal.ts'
import type { CommitInfo, Delivery, Source } from './types.ts'

/** Options of `fromBus`. */
export interface FromBusOptions {
  /**
   * Events held while the program is busy; default 10,000. When full, further events are dropped
   * and counted in `dropped` (the bus drain that delivers them is never blocked by the program).
   */
  capacity?: number
}

/**
 * A source over some event types of a bus. Its handlers queue matching events as the bus drains
 * them; the program takes them one at a time. Command results are published to the bus when
 * their delivery commits (`bus.publish`, so the bus's overrun policy applies: `error` mode fails
 * the run, `block` mode waits).
 *
 * At most once: an event is the source's once its handler ran; it is lost if the process ends
 * before the program commits it, if the queue is full (counted in `dropped`), or if a run ends
 * with it rolled back and the source is not run again. Use `fromStore` when that matters.
 */
export class BusSource<Msg extends BusEvent, Out extends BusEvent> implements Source<Msg, Out> {
  private readonly queue = new Deque<SequenceDelivery<Msg>>()
  private readonly capacity: number
  private readonly offs: (() => void)[] = []
  private inflight: SequenceDelivery<Msg> | undefined = undefined
  private redeliver: SequenceDelivery<Msg> | undefined = undefined
  private staged: readonly Out[] | undefined = undefined
  private wake: (() => void) | undefined = undefined
  private seq = 0
  private closed = false
  private untilEmpty = false
  private running = false
  /** Events dropped because the queue was full. */
  dropped = 0

  private readonly bus: EventBus<any, any>

  constructor(
    bus: EventBus<any, any>,
    types: readonly Msg['type'][],
    options: FromBusOptions = {},
  ) {
    this.bus = bus
    if (!Array.isArray(types) || types.length === 0 || types.some((type) => typeof type !== 'string' || type.length === 0)) {
      throw new InvalidOptionsError('fromBus(bus, types): types must be a non-empty array of event types')
    }
    const capacity = options.capacity ?? 10_000
    if (!Number.isInteger(capacity) || capacity < 1 || capacity > 2 ** 30) {
      throw new InvalidOptionsError(`fromBus capacity must be an integer from 1 to 2^30, got ${String(capacity)}`)
    }
    this.capacity = capacity
    const handler = (event: Msg) => this.receive(event)
    for (const type of new Set(types)) this.offs.push(bus.on(type, handler))
  }

  private receive(event: Msg): void {
    if (this.closed) return
    if (this.queue.length >= this.capacity) {
      this.dropped++
      return
    }
    this.queue.push(new SequenceDelivery(event, ++this.seq))
    const wake = this.wake
    if (wake !== undefined) {
      this.wake = undefined
      wake()
    }
  }

  /** Events waiting for the program. */
  get size(): number {
    return this.queue.length
  }

  /** Stop listening: the source ends once what it holds has been delivered. */
  close(): void {
    if (this.closed) return
    this.closed = true
    for (const off of this.offs.splice(0)) off()
    const wake = this.wake
    this.wake = undefined
    wake?.()
  }

  /** @internal */
  next(signal: AbortSignal): Delivery<Msg> | undefined | Promise<Delivery<Msg> | undefined> {
    const delivery = this.redeliver ?? this.queue.shift()
    this.redeliver = undefined
    if (delivery !== undefined) {
      this.inflight = delivery
      return delivery
    }
    if (this.closed || this.untilEmpty) return undefined
    if (signal.aborted) return Promise.reject(new AbortedError('fromBus wait was aborted', { cause: signal.reason }))
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        this.wake = undefined
        reject(new AbortedError('fromBus wait was aborted', { cause: signal.reason }))
      }
      signal.addEventListener('abort', onAbort, { once: true })
      this.wake = () => {
        signal.removeEventListener('abort', onAbort)
        resolve(this.next(signal))
      }
    })
  }

  /** @internal */
  put(messages: readonly Out[], _delivery: Delivery<Msg>): void {
    this.staged = messages
  }

  /** @internal publishes the staged results, in order. */
  commit(_delivery: Delivery<Msg>, _info: CommitInfo): void | Promise<void> {
    this.inflight = undefined
    const staged = this.staged
    this.staged = undefined
    if (staged === undefined) return
    for (let i = 0; i < staged.length; i++) {
      const waiting = this.bus.publish(staged[i]!)
      if (isThenable(waiting)) return this.publishRest(waiting, staged, i + 1)
    }
  }

  private async publishRest(waiting: Promise<void>, staged: readonly Out[], from: number): Promise<void> {
    await waiting
    for (let i = from; i < staged.length; i++) await this.bus.publish(staged[i]!)
  }

  /** @internal */
  rollback(): void {
    this.staged = undefined
    this.redeliver = this.inflight
    this.inflight = undefined
  }

  /** @internal one run at a time. */
  start(): void {
    if (this.running) throw new InvalidOptionsError('this source is already being run: one run at a time per source')
    this.running = true
  }

  /** @internal `batch` ends once the queue is empty. */
  untilNow(): void {
    this.untilEmpty = true
  }

  /** @internal */
  detach(): void {
    this.untilEmpty = false
    this.running = false
  }
}

/**
 * A source over the events of `types` on an in-thread bus; command results are published to the
 * same bus. At most once (see `BusSource`). Whoever owns the bus keeps draining it: handlers, this
 * source's included, only run during `bus.drain()`.
 *
 * @throws InvalidOptionsError (INVALID_OPTIONS) for an empty list of types or a bad capacity.
 * @example
 * type Ev = { type: 'order-placed'; total: number } | { type: 'receipt-sent'; to: string }
 * const bus = new EventBus<Ev>({ capacity: 1024 })
 * const handle = run({
 *   init: () => [0],
 *   update: (event, count) => [count + 1, [() => ({ type: 'receipt-sent', to: 'ops' })]],
 * }, fromBus(bus, ['order-placed']))
 * bus.publish({ type: 'order-placed', total: 12 })
 * bus.drain()
 */
export function fromBus<E extends BusEvent, const T extends E['type']>(
  bus: EventBus<E, any>,
  types: readonly T[],
  options?: FromBusOptions,
): BusSource<Extract<E, { type: T }>, E> {
  return new BusSource<Extract<E, { type: T }>, E>(bus, types as readonly Extract<E, { type: T }>['type'][], options)
}
