/**
 * `fromStore`: a durable runtime source over the event store, with exactly-once outputs.
 *
 * Messages are the events matching a query, read with `store.follow` in batches. Committing a
 * delivery whose commands yielded results is one append: the results, with ids
 * `<name>:<position>:<i>`, and the checkpoint `name` at the delivery's position
 * (`AppendOptions.checkpoint`), in one transaction. A crash before it loses nothing (the delivery
 * comes again); a crash after it duplicates nothing (the checkpoint moved with the outputs, and a
 * retried append with the same ids writes nothing).
 *
 * A delivery whose commands ran and yielded nothing has no append to ride on. The store contract
 * has no checkpoint write without events, so the runtime records such a commit as a one-row
 * snapshot `runtime-checkpoint:<name>` (`keep: 1`); the position it resumes from is the larger of
 * that and `store.checkpoint(name)`. A delivery for which no command ran need not be durable at
 * once (running it again has no effect): its checkpoint is written with the next append, or when
 * the source catches up, or every `batchSize` such deliveries, or when the run ends.
 *
 * On start the whole log of the query is delivered again, the part at or below the resume
 * position with `replay: true` (commands off), which rebuilds the model; then it runs live.
 */
import { AbortedError, InvalidOptionsError } from '../errors.ts'
import type { EventMap, EventOf, EventStore, FollowBatch, InputOf, Query } from '../store/types.ts'
import { INIT_DELIVERY } from './internal.ts'
import type { CommitInfo, Delivery, Source } from './types.ts'

/** Options of `fromStore`. */
export interface FromStoreOptions {
  /** The consumer's name: the checkpoint's name and the prefix of its output ids. 1..200 characters. */
  name: string
  /** Events per `follow` batch (default: the store's `streamBatchSize`). */
  batchSize?: number
}

/** How a store source commits: durably with a checkpoint (`fromStore`), or only in memory (`aggregate`). */
interface StoreSourceConfig {
  /** Prefix of output ids (`<prefix>:<position>:<i>`). */
  idPrefix: string
  /** The checkpoint name, for a durable source; undefined for aggregate. */
  checkpoint: string | undefined
  /** Start reading after this position (aggregate: the snapshot's position). */
  after: bigint
  batchSize: number | undefined
}

const MAX_NAME_LENGTH = 200

function checkName(name: unknown, what: string): asserts name is string {
  if (typeof name !== 'string' || name.length === 0 || name.length > MAX_NAME_LENGTH) {
    throw new InvalidOptionsError(`${what} must be a string of 1 to ${MAX_NAME_LENGTH} characters`)
  }
}

function checkBatchSize(batchSize: unknown): asserts batchSize is number | undefined {
  if (batchSize !== undefined && (!Number.isSafeInteger(batchSize) || (batchSize as number) < 1)) {
    throw new InvalidOptionsError(`batchSize must be a positive integer, got ${String(batchSize)}`)
  }
}

/** The snapshot name under which commits without outputs are recorded. */
function markerName(name: string): string {
  return `runtime-checkpoint:${name}`
}

/** The position a durable consumer resumes after: the larger of its checkpoint and its marker. */
export async function resumePosition(store: EventStore<any>, name: string): Promise<bigint | undefined> {
  const [checkpoint, marker] = await Promise.all([store.checkpoint(name), store.loadSnapshot(markerName(name))])
  if (marker === undefined) return checkpoint
  if (checkpoint === undefined) return marker.position
  return marker.position > checkpoint ? marker.position : checkpoint
}

const EMPTY = new Uint8Array(0)

/**
 * The store source (see the file notes). Built by `fromStore`, and by `aggregate` for its batch.
 */
export class StoreSource<E extends EventMap> implements Source<EventOf<E>, InputOf<E>> {
  private iterator: AsyncIterator<FollowBatch<EventOf<E>>> | undefined
  private follow = new AbortController()
  private buffer: EventOf<E>[] = []
  private index = 0
  /** `through` of the last batch taken from `follow`. */
  private through: bigint
  private caughtUp = false
  private ended = false
  private running = false
  private endPosition: bigint | undefined = undefined
  private inflight: Delivery<EventOf<E>> | undefined = undefined
  private redeliver: Delivery<EventOf<E>> | undefined = undefined
  private staged: InputOf<E>[] | undefined = undefined
  /** Deliveries at or below this position were committed in an earlier run: replay them. */
  private resumeAt: bigint | undefined = undefined
  /** `batch`: end once every matching event at or below this position has been delivered. */
  private bound: bigint | undefined = undefined
  /** The newest committed position whose checkpoint is not written yet, and how many such commits. */
  private deferred: bigint | undefined = undefined
  private deferredCount = 0
  private readonly deferLimit: number

  private readonly store: EventStore<E>
  private readonly query: Query
  private readonly config: StoreSourceConfig

  /** @internal use `fromStore` */
  constructor(
    store: EventStore<E>,
    query: Query,
    config: StoreSourceConfig,
  ) {
    this.store = store
    this.query = query
    this.config = config
    this.through = config.after
    this.deferLimit = config.batchSize ?? 1000
  }

  /** @internal reads the resume position; init is replayed when there is one. */
  async start(signal: AbortSignal): Promise<{ replayInit: boolean }> {
    if (this.running) throw new InvalidOptionsError('this source is already being run: one run at a time per source')
    this.running = true
    try {
      return await this.begin(signal)
    } catch (error) {
      this.running = false
      throw error
    }
  }

  private async begin(signal: AbortSignal): Promise<{ replayInit: boolean }> {
    // A source may be run again after a run ended: it starts over from the log and the checkpoint.
    this.buffer = []
    this.index = 0
    this.through = this.config.after
    this.caughtUp = false
    this.ended = false
    this.endPosition = undefined
    this.inflight = undefined
    this.redeliver = undefined
    this.staged = undefined
    this.bound = undefined
    this.deferred = undefined
    this.deferredCount = 0
    this.follow = new AbortController()
    if (this.config.checkpoint !== undefined) this.resumeAt = await resumePosition(this.store, this.config.checkpoint)
    this.iterator = this.store
      .follow(this.query, {
        after: this.config.after,
        batchSize: this.config.batchSize,
        signal: AbortSignal.any([signal, this.follow.signal]),
      })
      [Symbol.asyncIterator]()
    return { replayInit: this.resumeAt !== undefined }
  }

  /** @internal `batch`: end at the head as it is now (plus the batch's own outputs). */
  async untilNow(): Promise<void> {
    this.bound = await this.store.head()
  }

  /**
   * Once the source has ended: every matching event at or below this position was delivered (the
   * bound of a batch, or how far `follow` got). `aggregate` saves its snapshot at this position.
   */
  get endedAt(): bigint | undefined {
    return this.endPosition
  }

  private end(at: bigint): undefined {
    this.ended = true
    this.endPosition ??= at
    return undefined
  }

  /** @internal */
  next(signal: AbortSignal): Delivery<EventOf<E>> | undefined | Promise<Delivery<EventOf<E>> | undefined> {
    if (this.redeliver !== undefined) {
      this.inflight = this.redeliver
      this.redeliver = undefined
      return this.inflight
    }
    if (this.index < this.buffer.length) return this.take()
    if (this.ended) return undefined
    if (this.bound !== undefined && this.through >= this.bound) return this.end(this.bound)
    return this.refill(signal)
  }

  private take(): Delivery<EventOf<E>> | undefined {
    const event = this.buffer[this.index++]!
    if (this.bound !== undefined && event.position > this.bound) return this.end(this.bound)
    const replay = this.resumeAt !== undefined && event.position <= this.resumeAt
    this.inflight = { message: event, position: event.position, id: event.id, replay }
    return this.inflight
  }

  private async refill(signal: AbortSignal): Promise<Delivery<EventOf<E>> | undefined> {
    if (this.iterator === undefined) throw new InvalidOptionsError('a store source must be started (run it with run, batch or aggregate)')
    for (;;) {
      // About to wait for the log: a good moment to make deferred commits durable.
      if (this.deferred !== undefined && this.caughtUp) await this.flush()
      if (signal.aborted) throw new AbortedError('the store source was aborted', { cause: signal.reason })
      const step = await this.iterator.next()
      if (step.done) {
        if (signal.aborted) throw new AbortedError('the store source was aborted', { cause: signal.reason })
        return this.end(this.through)
      }
      const batch = step.value
      this.buffer = batch.events
      this.index = 0
      if (batch.through > this.through) this.through = batch.through
      this.caughtUp = batch.caughtUp
      if (this.buffer.length > 0) return this.take()
      if (this.bound !== undefined && this.through >= this.bound) return this.end(this.bound)
    }
  }

  /** @internal stages results with ids `<prefix>:<position>:<i>`. */
  put(messages: readonly InputOf<E>[], delivery: Delivery<EventOf<E>>): void {
    const position = delivery === INIT_DELIVERY ? 0n : delivery.position!
    const prefix = `${this.config.idPrefix}:${position}:`
    this.staged = messages.map((message, i) => ({ ...message, id: prefix + i }) as InputOf<E>)
  }

  /** @internal one append carries the results and the checkpoint; see the file notes. */
  async commit(delivery: Delivery<EventOf<E>>, info: CommitInfo): Promise<void> {
    const staged = this.staged
    this.staged = undefined
    this.inflight = undefined
    if (delivery.replay === true) return
    const position = delivery === INIT_DELIVERY ? 0n : delivery.position!
    const name = this.config.checkpoint
    if (staged !== undefined && staged.length > 0) {
      const result = await this.store.append(
        staged,
        undefined,
        name === undefined ? undefined : { checkpoint: { name, position } },
      )
      if (name !== undefined) {
        this.deferred = undefined
        this.deferredCount = 0
      }
      // The batch's own outputs are part of its work: a batch reads through them.
      if (this.bound !== undefined && result.position > this.bound) this.bound = result.position
      return
    }
    if (name === undefined) return
    this.deferred = position
    if (info.effects || ++this.deferredCount >= this.deferLimit) await this.flush()
  }

  /** Writes the deferred checkpoint (as the marker snapshot: there is no event to carry it). */
  private async flush(): Promise<void> {
    const position = this.deferred
    if (position === undefined || this.config.checkpoint === undefined) return
    await this.store.saveSnapshot(markerName(this.config.checkpoint), position, EMPTY, { keep: 1 })
    if (this.deferred === position) {
      this.deferred = undefined
      this.deferredCount = 0
    }
  }

  /** @internal */
  rollback(): void {
    this.staged = undefined
    if (this.inflight !== undefined) this.redeliver = this.inflight
    this.inflight = undefined
  }

  /** @internal the run ended: write what was deferred, stop following. */
  async detach(): Promise<void> {
    try {
      await this.flush()
    } finally {
      this.running = false
      this.follow.abort()
      await this.iterator?.return?.(undefined)
    }
  }
}

/**
 * A durable source over the events of `query`, for a consumer called `options.name`. Messages are
 * `EventOf<E>` (narrowed by `event.type`); commands yield `InputOf<E>`, appended exactly once
 * with the checkpoint. On start the model is rebuilt by replay (commands off) up to the stored
 * checkpoint; then it runs live. See the file notes for the guarantees.
 *
 * @throws InvalidOptionsError (INVALID_OPTIONS) for a bad name or batchSize.
 * @example
 * type Ev = { RenewalDue: { customer: string }; InvoiceIssued: { customer: string } }
 * const store = await openStore<Ev>('sqlite:./data.db')
 * const handle = run({
 *   init: () => [0],
 *   update: (event, issued) => event.type === 'RenewalDue'
 *     ? [issued, [() => ({ type: 'InvoiceIssued', data: { customer: event.data.customer } })]]
 *     : [issued + 1],
 * }, fromStore(store, [{ types: ['RenewalDue', 'InvoiceIssued'] }], { name: 'renewals' }))
 */
export function fromStore<E extends EventMap>(
  store: EventStore<E>,
  query: Query,
  options: FromStoreOptions,
): StoreSource<E> {
  if (store === null || typeof store !== 'object' || typeof store.follow !== 'function') {
    throw new InvalidOptionsError('fromStore needs an event store')
  }
  if (options === null || typeof options !== 'object') throw new InvalidOptionsError('fromStore options must be an object with a name')
  checkName(options.name, 'fromStore name')
  checkBatchSize(options.batchSize)
  return new StoreSource(store, query, {
    idPrefix: options.name,
    checkpoint: options.name,
    after: 0n,
    batchSize: options.batchSize,
  })
}

/** For `aggregate` (same folder). */
export function aggregateSource<E extends EventMap>(
  store: EventStore<E>,
  query: Query,
  snapshotName: string,
  after: bigint,
  batchSize: number | undefined,
): StoreSource<E> {
  checkBatchSize(batchSize)
  return new StoreSource(store, query, { idPrefix: snapshotName, checkpoint: undefined, after, batchSize })
}
