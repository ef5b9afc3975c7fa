/**
 * The in-memory backend: the reference implementation of the store semantics, for tests and
 * ephemeral programs. It runs on the same shared core as the database backends (one writer that
 * takes every waiting append as one batch, one tail reader) so that code tested against it behaves
 * the same on SQLite and PostgreSQL.
 */
import { AppendConditionFailedError, InvalidEventError, StorageError, type RingstateError } from '../../errors.ts'
import type { AppendOutcome, BeforeCommit, EventPage, EventRecord, Lane, QueuedAppend, StoreBackend } from '../core/backend.ts'
import { jsonPageOf } from '../core/event-json.ts'
import { toStorageError } from '../core/storage-error.ts'
import { CoreStore } from '../core/store.ts'
import { matchesQuery } from '../match.ts'
import type {
  AppendCondition,
  Query,
  RecordedCommand,
  StoredSnapshot,
  StoreHooks,
  StoreOptions,
  StoreTransaction,
} from '../types.ts'
import type { NormalizedCommand } from '../validate.ts'

/** An event as kept in memory: JSON text, so readers always get their own copy. */
interface StoredEvent {
  position: bigint
  type: string
  tags: string[]
  /** What the other backends keep: the JSON text of `tags`, made once at append. */
  tagsJson: string
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

const ONE_LANE: Lane = { via: undefined, free: 1 }

/** The memory backend's storage; positions are index + 1. */
class MemoryBackend implements StoreBackend {
  readonly kind = 'memory' as const
  readonly independentAppends = false
  readonly maxBatchEvents = Number.POSITIVE_INFINITY
  /** A batch costs little more than its appends: nothing to gain by waiting. */
  readonly defaultCommitDelayMicros = 0
  readonly #log: StoredEvent[] = []
  readonly #ids = new Map<string, bigint>()
  readonly #commands: StoredCommand[] = []
  readonly #snapshots = new Map<string, StoredSnapshot[]>()
  readonly #checkpoints = new Map<string, bigint>()

  lane(inFlight: number): Lane | undefined {
    return inFlight === 0 ? ONE_LANE : undefined
  }

  idle(): void {}

  /**
   * Decide every append against the log and the earlier appends of the batch, let the projectors
   * see the result, then make it visible: nothing is stored before `beforeCommit` returns, so its
   * throw leaves nothing behind.
   */
  async writeBatch(_via: unknown, batch: readonly QueuedAppend[], beforeCommit?: BeforeCommit): Promise<AppendOutcome[]> {
    const recordedAt = new Date()
    const stagedIds = new Map<string, bigint>()
    const staged: StoredEvent[] = []
    const outcomes: AppendOutcome[] = []
    let next = BigInt(this.#log.length) + 1n
    for (const append of batch) {
      if (append.settled) {
        outcomes.push({ status: 'skipped' })
        continue
      }
      const known = append.checkIds ? this.#knownIds(append, stagedIds) : undefined
      if (known !== undefined) {
        outcomes.push(known)
        continue
      }
      if (append.condition !== undefined) {
        const conflict = this.#firstConflict(append.condition, staged)
        if (conflict !== undefined) {
          outcomes.push({ status: 'failed', error: new AppendConditionFailedError(append.condition, conflict) })
          continue
        }
      }
      for (const event of append.events) {
        const stored: StoredEvent = {
          position: next++,
          type: event.type,
          tags: event.tags,
          tagsJson: JSON.stringify(event.tags),
          dataJson: event.dataJson,
          metadataJson: event.metadataJson,
          id: event.id,
          recordedAt,
        }
        staged.push(stored)
        stagedIds.set(stored.id, stored.position)
      }
      outcomes.push({ status: 'written', position: next - 1n, recordedAt })
    }
    if (beforeCommit !== undefined) await beforeCommit(outcomes, undefined)

    for (const event of staged) {
      this.#log.push(event)
      this.#ids.set(event.id, event.position)
    }
    for (let i = 0; i < batch.length; i++) {
      const outcome = outcomes[i]!
      if (outcome.status !== 'written') continue
      const { command, checkpoint } = batch[i]!
      if (command !== undefined) {
        this.#commands.push({ id: BigInt(this.#commands.length + 1), command, position: outcome.position, recordedAt })
      }
      if (checkpoint !== undefined) this.#checkpoints.set(checkpoint.name, checkpoint.position)
    }
    return outcomes
  }

  /** The idempotent answer when every id is stored already, a failure when only some are. */
  #knownIds(append: QueuedAppend, staged: Map<string, bigint>): AppendOutcome | undefined {
    let found = 0
    let max = 0n
    let firstFound: string | undefined
    for (const event of append.events) {
      const position = this.#ids.get(event.id) ?? staged.get(event.id)
      if (position === undefined) continue
      found++
      firstFound ??= event.id
      if (position > max) max = position
    }
    if (found === 0) return undefined
    if (found === append.events.length) return { status: 'duplicate', position: max }
    return { status: 'failed', error: new InvalidEventError(`event id ${firstFound} is already stored by another append`) }
  }

  #firstConflict(condition: AppendCondition, staged: StoredEvent[]): bigint | undefined {
    const query = condition.failIfEventsMatch
    const after = condition.after ?? 0n
    for (let i = Number(after); i < this.#log.length; i++) {
      const event = this.#log[i]!
      if (matchesQuery(query, event.type, event.tags)) return event.position
    }
    for (const event of staged) {
      if (event.position > after && matchesQuery(query, event.type, event.tags)) return event.position
    }
    return undefined
  }

  /** Memory has nothing to roll back: `fn`'s own writes are its own. */
  async transaction<T>(fn: (tx: StoreTransaction) => T | Promise<T>): Promise<T> {
    return await fn({ backend: 'memory' })
  }

  async readPage(query: Query, after: bigint, before: bigint | undefined, limit: number, backwards: boolean): Promise<EventRecord[]> {
    const out: EventRecord[] = []
    // Positions are index + 1: events above `after` sit at indexes >= after, below `before` at < before - 1.
    const low = Number(after)
    const high = Math.min(this.#log.length, before === undefined ? this.#log.length : Number(before) - 1)
    if (backwards) {
      for (let i = high - 1; i >= low && out.length < limit; i--) {
        const stored = this.#log[i]!
        if (matchesQuery(query, stored.type, stored.tags)) out.push(toRecord(stored))
      }
    } else {
      for (let i = low; i < high && out.length < limit; i++) {
        const stored = this.#log[i]!
        if (matchesQuery(query, stored.type, stored.tags)) out.push(toRecord(stored))
      }
    }
    return out
  }

  async readJsonPage(query: Query, after: bigint, before: bigint | undefined, limit: number, backwards: boolean): Promise<EventPage> {
    return jsonPageOf(await this.readPage(query, after, before, limit + 1, backwards), limit)
  }

  async head(): Promise<bigint> {
    return BigInt(this.#log.length)
  }

  async checkpoint(name: string): Promise<bigint | undefined> {
    return this.#checkpoints.get(name)
  }

  async saveSnapshot(name: string, position: bigint, data: Uint8Array, keep: number | undefined): Promise<void> {
    const list = (this.#snapshots.get(name) ?? []).filter((snapshot) => snapshot.position !== position)
    list.push({ name, position, data, createdAt: new Date() })
    list.sort((a, b) => (a.position < b.position ? -1 : a.position > b.position ? 1 : 0))
    if (keep !== undefined && list.length > keep) list.splice(0, list.length - keep)
    this.#snapshots.set(name, list)
  }

  async loadSnapshot(name: string): Promise<StoredSnapshot | undefined> {
    const snapshot = this.#snapshots.get(name)?.at(-1)
    return snapshot === undefined ? undefined : { ...snapshot, data: snapshot.data.slice(), createdAt: new Date(snapshot.createdAt) }
  }

  async deleteSnapshots(name: string): Promise<void> {
    this.#snapshots.delete(name)
  }

  async commands(after: bigint, limit: number | undefined): Promise<RecordedCommand[]> {
    const out: RecordedCommand[] = []
    const max = limit ?? Number.POSITIVE_INFINITY
    for (const row of this.#commands) {
      if (out.length >= max) break
      if (row.id <= after) continue
      out.push({
        id: row.id,
        type: row.command.type,
        data: JSON.parse(row.command.dataJson),
        metadata: JSON.parse(row.command.metadataJson),
        position: row.position,
        recordedAt: new Date(row.recordedAt),
      })
    }
    return out
  }

  /** Nothing else writes to this log: every commit is this store's own and wakes the tail directly. */
  watch(): () => void {
    return () => {}
  }

  storageError(operation: string, error: unknown): RingstateError {
    return error instanceof StorageError ? error : toStorageError('memory', operation, error)
  }

  async close(): Promise<void> {}
}

/**
 * An `EventStore` held in process memory. Nothing survives the process; use it in tests and
 * short-lived programs, or open it with `openStore('memory:')`.
 *
 * Appends made in the same tick are committed together as one batch, in call order, each
 * condition evaluated against the log and the earlier appends of the batch. `pollIntervalMs` has
 * no effect here: nothing else writes to the log, and followers are woken by the writer.
 *
 * @example
 * const store = new MemoryStore()
 * await store.append({ type: 'UserRegistered', tags: ['user:1'], data: { name: 'Ada' } })
 * const events = await store.query([{ tags: ['user:1'] }])
 */
export class MemoryStore extends CoreStore {
  /** @throws InvalidOptionsError (INVALID_OPTIONS) on a bad option. */
  constructor(options?: StoreOptions & StoreHooks) {
    super(new MemoryBackend(), options)
  }
}

/** A copy of a stored event: the caller's event must not share the log's date. */
function toRecord(stored: StoredEvent): EventRecord {
  return {
    position: stored.position,
    type: stored.type,
    tagsJson: stored.tagsJson,
    dataJson: stored.dataJson,
    metadataJson: stored.metadataJson,
    id: stored.id,
    recordedAt: new Date(stored.recordedAt.getTime()),
  }
}
