/**
 * The in-memory backend: the reference implementation of the store semantics, for tests and
 * ephemeral programs. It follows the same group-commit design as the database backends (one
 * writer that takes every waiting append as one batch) so that code tested against it behaves
 * the same on SQLite and PostgreSQL.
 */
import {
  AbortedError,
  AppendConditionFailedError,
  InvalidEventError,
  InvalidOptionsError,
  StoreClosedError,
} from '../../errors.ts'
import { matchesQuery } from '../match.ts'
import { project } from '../project.ts'
import type {
  AppendCondition,
  AppendOptions,
  AppendResult,
  EventInput,
  EventStore,
  InlineProjector,
  Projector,
  ProjectResult,
  Query,
  ReadOptions,
  RecordedCommand,
  SequencedEvent,
  StoredSnapshot,
  StoreOptions,
  SubscribeOptions,
} from '../types.ts'
import {
  prepareAppend,
  resolveOptions,
  validateQuery,
  validateReadOptions,
  type NormalizedCommand,
  type NormalizedEvent,
} from '../validate.ts'

/** An event as kept in memory: JSON text, so readers always get their own copy. */
interface StoredEvent {
  position: bigint
  type: string
  tags: string[]
  dataJson: string
  metadataJson: string
  id: string
  recordedAt: Date
}

interface StoredCommand {
  id: bigint
  command: NormalizedCommand
  position: bigint
  recordedAt: Date
}

interface PendingAppend {
  events: NormalizedEvent[]
  condition: AppendCondition | undefined
  command: NormalizedCommand | undefined
  resolve(result: AppendResult): void
  reject(error: unknown): void
}

/** What the writer decided for one append of a batch. */
type Outcome =
  | { kind: 'write'; events: StoredEvent[]; result: AppendResult }
  | { kind: 'done'; result: AppendResult }
  | { kind: 'fail'; error: unknown }

/**
 * An `EventStore` held in process memory. Nothing survives the process; use it in tests and
 * short-lived programs, or open it with `openStore('memory:')`.
 *
 * Appends made in the same tick are committed together as one batch, in call order, each
 * condition evaluated against the log and the earlier appends of the batch. `appendTimeoutMs`
 * and `pollIntervalMs` have no effect here: nothing waits on I/O and subscribers are woken
 * directly by the writer.
 *
 * @example
 * const store = new MemoryStore()
 * await store.append({ type: 'UserRegistered', tags: ['user:1'], data: { name: 'Ada' } })
 * const events = await store.query([{ tags: ['user:1'] }])
 */
export class MemoryStore implements EventStore {
  readonly #options: Required<StoreOptions>
  readonly #log: StoredEvent[] = []
  readonly #ids = new Map<string, bigint>()
  readonly #commands: StoredCommand[] = []
  readonly #snapshots = new Map<string, StoredSnapshot>()
  readonly #projectors = new Set<InlineProjector>()
  readonly #waiters = new Set<() => void>()
  #pending: PendingAppend[] = []
  #writer: Promise<void> | undefined
  #closed = false

  constructor(options?: StoreOptions) {
    this.#options = resolveOptions(options)
  }

  /**
   * Append events atomically, optionally under a condition. See `EventStore.append`.
   *
   * @example
   * const { states, condition } = await store.project({
   *   taken: { query: [{ types: ['AccountRegistered'], tags: ['username:ada'] }], initial: false, apply: () => true },
   * })
   * if (!states.taken) await store.append({ type: 'AccountRegistered', tags: ['username:ada'] }, condition)
   */
  append(
    events: EventInput | readonly EventInput[],
    condition?: AppendCondition,
    options?: AppendOptions,
  ): Promise<AppendResult> {
    try {
      this.#assertOpen()
      const { events: normalized, condition: ownCondition, command } = prepareAppend(events, condition, options, this.#options)
      return new Promise<AppendResult>((resolve, reject) => {
        this.#pending.push({ events: normalized, condition: ownCondition, command, resolve, reject })
        this.#startWriter()
      })
    } catch (error) {
      return Promise.reject(error)
    }
  }

  async query(query: Query, options?: ReadOptions): Promise<SequencedEvent[]> {
    const out: SequencedEvent[] = []
    for await (const event of this.read(query, options)) out.push(event)
    return out
  }

  async *read(query: Query, options?: ReadOptions): AsyncGenerator<SequencedEvent, void, undefined> {
    this.#assertOpen()
    validateQuery(query)
    validateReadOptions(options)
    const after = options?.after ?? 0n
    const limit = options?.limit ?? Number.POSITIVE_INFINITY
    const signal = options?.signal
    if (limit === 0) return
    let count = 0
    if (options?.backwards) {
      // Positions are index + 1, so events above `after` sit at indexes >= after.
      const stop = Number(after)
      for (let i = this.#log.length - 1; i >= stop; i--) {
        const stored = this.#log[i]!
        if (!matchesQuery(query, stored.type, stored.tags)) continue
        this.#assertReadable(signal)
        yield toSequenced(stored)
        if (++count >= limit) return
      }
    } else {
      for (let i = Number(after); i < this.#log.length; i++) {
        const stored = this.#log[i]!
        if (!matchesQuery(query, stored.type, stored.tags)) continue
        this.#assertReadable(signal)
        yield toSequenced(stored)
        if (++count >= limit) return
      }
    }
  }

  async *subscribe(query: Query, options?: SubscribeOptions): AsyncGenerator<SequencedEvent, void, undefined> {
    this.#assertOpen()
    validateQuery(query)
    validateReadOptions(options === undefined ? undefined : { after: options.after, signal: options.signal })
    const signal = options?.signal
    let next = Number(options?.after ?? 0n)
    while (!this.#closed && !signal?.aborted) {
      while (next < this.#log.length) {
        const stored = this.#log[next++]!
        if (!matchesQuery(query, stored.type, stored.tags)) continue
        yield toSequenced(stored)
        if (this.#closed || signal?.aborted) return
      }
      await this.#waitForCommit(signal)
    }
  }

  async project<P extends Record<string, Projector<any>>>(
    projectors: P,
    options?: { signal?: AbortSignal },
  ): Promise<ProjectResult<P>> {
    this.#assertOpen()
    return project(this, projectors, options)
  }

  async head(): Promise<bigint> {
    this.#assertOpen()
    return BigInt(this.#log.length)
  }

  attach(projector: InlineProjector): () => void {
    this.#assertOpen()
    if (
      typeof projector !== 'object' ||
      projector === null ||
      typeof projector.apply !== 'function' ||
      typeof projector.promote !== 'function' ||
      typeof projector.discard !== 'function'
    ) {
      throw new InvalidOptionsError('an inline projector needs name, apply, promote and discard')
    }
    this.#projectors.add(projector)
    return () => {
      this.#projectors.delete(projector)
    }
  }

  async saveSnapshot(name: string, position: bigint, data: Uint8Array): Promise<void> {
    this.#assertOpen()
    validateSnapshotArgs(name, position, data)
    const current = this.#snapshots.get(name)
    // The newest snapshot is the one covering the most events; a tie goes to the later save.
    if (current !== undefined && current.position > position) return
    this.#snapshots.set(name, { name, position, data: data.slice(), createdAt: new Date() })
  }

  async loadSnapshot(name: string): Promise<StoredSnapshot | undefined> {
    this.#assertOpen()
    if (typeof name !== 'string' || name.length === 0) {
      throw new InvalidOptionsError('snapshot name must be a non-empty string')
    }
    const snapshot = this.#snapshots.get(name)
    return snapshot === undefined ? undefined : { ...snapshot, data: snapshot.data.slice() }
  }

  async commands(options?: { after?: bigint; limit?: number }): Promise<RecordedCommand[]> {
    this.#assertOpen()
    validateReadOptions(options === undefined ? undefined : { after: options.after, limit: options.limit })
    const after = options?.after ?? 0n
    const limit = options?.limit ?? Number.POSITIVE_INFINITY
    const out: RecordedCommand[] = []
    for (const row of this.#commands) {
      if (out.length >= limit) break
      if (row.id <= after) continue
      out.push({
        id: row.id,
        type: row.command.type,
        data: JSON.parse(row.command.dataJson),
        metadata: JSON.parse(row.command.metadataJson),
        position: row.position,
        recordedAt: row.recordedAt,
      })
    }
    return out
  }

  /** Close the store: appends already waiting are still committed; later calls fail with STORE_CLOSED. */
  async close(): Promise<void> {
    this.#closed = true
    this.#wakeSubscribers()
    await this.#writer
  }

  #assertOpen(): void {
    if (this.#closed) throw new StoreClosedError()
  }

  #assertReadable(signal: AbortSignal | undefined): void {
    if (signal?.aborted) throw new AbortedError('read was aborted', { cause: signal.reason })
    if (this.#closed) throw new StoreClosedError()
  }

  #startWriter(): void {
    if (this.#writer !== undefined) return
    // A microtask lets every append made in the same tick join the first batch.
    this.#writer = new Promise<void>((resolve) => queueMicrotask(resolve)).then(() => this.#drain())
  }

  async #drain(): Promise<void> {
    try {
      while (this.#pending.length > 0) {
        const batch = this.#pending.splice(0, this.#options.maxAppendBatch)
        await this.#commitBatch(batch)
      }
    } finally {
      this.#writer = undefined
      if (this.#pending.length > 0) this.#startWriter()
    }
  }

  /**
   * Decide every append of the batch, run the inline projectors over what would be written, then
   * make it visible. A projector that throws fails only the append whose event it was applying:
   * everything is discarded and the batch is decided again without that append.
   */
  async #commitBatch(batch: PendingAppend[]): Promise<void> {
    let live = batch
    let outcomes: Outcome[]
    const recordedAt = new Date()
    for (;;) {
      outcomes = this.#decide(live, recordedAt)
      const failed = await this.#applyProjectors(outcomes)
      if (failed === undefined) break
      for (const projector of this.#projectors) projector.discard()
      live[failed.index]!.reject(failed.error)
      live = live.filter((_, i) => i !== failed.index)
    }

    for (let i = 0; i < live.length; i++) {
      const outcome = outcomes[i]!
      if (outcome.kind !== 'write') continue
      for (const event of outcome.events) {
        this.#log.push(event)
        this.#ids.set(event.id, event.position)
      }
      const command = live[i]!.command
      if (command !== undefined) {
        this.#commands.push({
          id: BigInt(this.#commands.length + 1),
          command,
          position: outcome.result.position,
          recordedAt,
        })
      }
    }
    for (const projector of this.#projectors) projector.promote()
    for (let i = 0; i < live.length; i++) {
      const outcome = outcomes[i]!
      if (outcome.kind === 'fail') live[i]!.reject(outcome.error)
      else live[i]!.resolve(outcome.result)
    }
    this.#wakeSubscribers()
  }

  #decide(batch: PendingAppend[], recordedAt: Date): Outcome[] {
    const stagedIds = new Map<string, bigint>()
    const staged: StoredEvent[] = []
    let next = BigInt(this.#log.length) + 1n
    const outcomes: Outcome[] = []
    for (const append of batch) {
      const known = this.#knownIds(append.events, stagedIds)
      if (known !== undefined) {
        outcomes.push(known)
        continue
      }
      if (append.condition !== undefined) {
        const conflict = this.#firstConflict(append.condition, staged)
        if (conflict !== undefined) {
          outcomes.push({ kind: 'fail', error: new AppendConditionFailedError(append.condition, conflict) })
          continue
        }
      }
      const events: StoredEvent[] = append.events.map((event) => ({
        position: next++,
        type: event.type,
        tags: event.tags,
        dataJson: event.dataJson,
        metadataJson: event.metadataJson,
        id: event.id,
        recordedAt,
      }))
      for (const event of events) {
        staged.push(event)
        stagedIds.set(event.id, event.position)
      }
      outcomes.push({ kind: 'write', events, result: { position: next - 1n, count: events.length } })
    }
    return outcomes
  }

  /** The idempotent answer when every id is stored already, a failure when only some are. */
  #knownIds(events: NormalizedEvent[], staged: Map<string, bigint>): Outcome | undefined {
    let found = 0
    let max = 0n
    let firstFound: string | undefined
    for (const event of events) {
      if (!event.idGiven) continue
      const position = this.#ids.get(event.id) ?? staged.get(event.id)
      if (position === undefined) continue
      found++
      firstFound ??= event.id
      if (position > max) max = position
    }
    if (found === 0) return undefined
    if (found === events.length) return { kind: 'done', result: { position: max, count: events.length } }
    return {
      kind: 'fail',
      error: new InvalidEventError(`event id ${firstFound} is already stored by another append`),
    }
  }

  #firstConflict(condition: AppendCondition, staged: StoredEvent[]): bigint | undefined {
    const query = condition.failIfEventsMatch
    for (let i = Number(condition.after ?? 0n); i < this.#log.length; i++) {
      const event = this.#log[i]!
      if (matchesQuery(query, event.type, event.tags)) return event.position
    }
    const after = condition.after ?? 0n
    for (const event of staged) {
      if (event.position > after && matchesQuery(query, event.type, event.tags)) return event.position
    }
    return undefined
  }

  /** Run the inline projectors; the index of the append whose event one of them rejected, if any. */
  async #applyProjectors(outcomes: Outcome[]): Promise<{ index: number; error: unknown } | undefined> {
    if (this.#projectors.size === 0) return undefined
    const projectors = [...this.#projectors]
    for (let index = 0; index < outcomes.length; index++) {
      const outcome = outcomes[index]!
      if (outcome.kind !== 'write') continue
      for (const stored of outcome.events) {
        const event = toSequenced(stored)
        for (const projector of projectors) {
          try {
            const pending = projector.apply(event, undefined)
            if (pending !== undefined) await pending
          } catch (error) {
            return { index, error }
          }
        }
      }
    }
    return undefined
  }

  #waitForCommit(signal: AbortSignal | undefined): Promise<void> {
    return new Promise<void>((resolve) => {
      const wake = () => {
        this.#waiters.delete(wake)
        signal?.removeEventListener('abort', wake)
        resolve()
      }
      this.#waiters.add(wake)
      signal?.addEventListener('abort', wake, { once: true })
    })
  }

  #wakeSubscribers(): void {
    for (const wake of [...this.#waiters]) wake()
  }
}

function toSequenced(stored: StoredEvent): SequencedEvent {
  return {
    position: stored.position,
    type: stored.type,
    tags: stored.tags.slice(),
    data: JSON.parse(stored.dataJson),
    metadata: JSON.parse(stored.metadataJson),
    id: stored.id,
    recordedAt: new Date(stored.recordedAt.getTime()),
  }
}

function validateSnapshotArgs(name: string, position: bigint, data: Uint8Array): void {
  if (typeof name !== 'string' || name.length === 0) {
    throw new InvalidOptionsError('snapshot name must be a non-empty string')
  }
  if (typeof position !== 'bigint' || position < 0n) {
    throw new InvalidOptionsError('snapshot position must be a bigint >= 0n')
  }
  if (!(data instanceof Uint8Array)) throw new InvalidOptionsError('snapshot data must be a Uint8Array')
}
