/**
 * `fromIterable`: a finite list of messages as a runtime source.
 */
import { AbortedError, InvalidOptionsError } from '../errors.ts'
import { Deque } from './deque.ts'
import { INIT_DELIVERY, isThenable, SequenceDelivery } from './internal.ts'
import type { CommitInfo, Delivery, Source } from './types.ts'

/**
 * A source over an iterable or async iterable. Items are delivered in order; command results are
 * delivered before the next item (in the order they were put); the source ends when the iterable
 * is exhausted and no result is left. A rolled-back delivery is delivered again.
 */
export class IterableSource<Msg> implements Source<Msg, Msg> {
  private iterator: Iterator<Msg> | AsyncIterator<Msg> | undefined
  private readonly results = new Deque<SequenceDelivery<Msg>>()
  private inflight: SequenceDelivery<Msg> | undefined = undefined
  private redeliver: SequenceDelivery<Msg> | undefined = undefined
  private staged: readonly Msg[] | undefined = undefined
  private exhausted = false
  private running = false
  private seq = 0

  private readonly iterable: Iterable<Msg> | AsyncIterable<Msg>

  constructor(iterable: Iterable<Msg> | AsyncIterable<Msg>) {
    this.iterable = iterable
    if (iterable === null || typeof iterable !== 'object' && typeof iterable !== 'string') {
      throw new InvalidOptionsError('fromIterable needs an iterable or an async iterable')
    }
    const it = iterable as Partial<Iterable<Msg> & AsyncIterable<Msg>>
    if (typeof it[Symbol.iterator] !== 'function' && typeof it[Symbol.asyncIterator] !== 'function') {
      throw new InvalidOptionsError('fromIterable needs an iterable or an async iterable')
    }
  }

  /** @internal one run at a time. */
  start(): void {
    if (this.running) throw new InvalidOptionsError('this source is already being run: one run at a time per source')
    this.running = true
  }

  /** @internal */
  detach(): void {
    this.running = false
  }

  /** @internal */
  next(signal: AbortSignal): Delivery<Msg> | undefined | Promise<Delivery<Msg> | undefined> {
    if (this.redeliver !== undefined) {
      this.inflight = this.redeliver
      this.redeliver = undefined
      return this.inflight
    }
    const result = this.results.shift()
    if (result !== undefined) {
      this.inflight = result
      return result
    }
    if (this.exhausted) return undefined
    const iterable = this.iterable as Partial<Iterable<Msg> & AsyncIterable<Msg>>
    this.iterator ??= typeof iterable[Symbol.asyncIterator] === 'function'
      ? iterable[Symbol.asyncIterator]!()
      : iterable[Symbol.iterator]!()
    const step = this.iterator.next()
    if (isThenable(step)) {
      if (signal.aborted) return Promise.reject(new AbortedError('fromIterable was aborted', { cause: signal.reason }))
      return new Promise((resolve, reject) => {
        const onAbort = () => reject(new AbortedError('fromIterable was aborted', { cause: signal.reason }))
        signal.addEventListener('abort', onAbort, { once: true })
        ;(step as Promise<IteratorResult<Msg>>).then(
          (value) => {
            signal.removeEventListener('abort', onAbort)
            resolve(this.take(value))
          },
          (error) => {
            signal.removeEventListener('abort', onAbort)
            reject(error)
          },
        )
      })
    }
    return this.take(step as IteratorResult<Msg>)
  }

  private take(step: IteratorResult<Msg>): Delivery<Msg> | undefined {
    if (step.done) {
      this.exhausted = true
      return undefined
    }
    this.inflight = new SequenceDelivery(step.value, ++this.seq)
    return this.inflight
  }

  /** @internal */
  put(messages: readonly Msg[], _delivery: Delivery<Msg>): void {
    this.staged = messages
  }

  /** @internal */
  commit(_delivery: Delivery<Msg>, _info: CommitInfo): void {
    const staged = this.staged
    this.staged = undefined
    this.inflight = undefined
    if (staged !== undefined) for (const message of staged) this.results.push(new SequenceDelivery(message, ++this.seq))
  }

  /** @internal */
  rollback(): void {
    this.staged = undefined
    if (this.inflight !== undefined && this.inflight !== INIT_DELIVERY) this.redeliver = this.inflight
    this.inflight = undefined
  }
}

/**
 * A finite source over an iterable (an array, a generator) or an async iterable. Command results
 * are processed before the next item, so `batch` over it reaches quiescence when both are done.
 *
 * @throws InvalidOptionsError (INVALID_OPTIONS) when given something that is not iterable.
 * @example
 * const { model } = await batch(
 *   { init: () => [0], update: (n: number, sum) => [sum + n] },
 *   fromIterable([1, 2, 3]),
 * ) // 6
 */
export function fromIterable<Msg>(iterable: Iterable<Msg> | AsyncIterable<Msg>): IterableSource<Msg> {
  return new IterableSource(iterable)
}
