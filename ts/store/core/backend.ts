/**
 * What a backend supplies to the shared core (DESIGN.md 2.1): the operations of one append batch,
 * its reads, and how it is woken by commits it did not make. Everything else (the writer queue,
 * group commit, inline projectors, deadlines, the tail reader, follow/subscribe, validation) lives
 * once in ts/store/core/ and behaves the same on every backend.
 */
import type { RingstateError } from '../../errors.ts'
import type {
  AppendCondition,
  Query,
  RecordedCommand,
  SequencedEvent,
  StoredSnapshot,
  StoreTransaction,
} from '../types.ts'
import type { NormalizedCheckpoint, NormalizedCommand, NormalizedEvent } from '../validate.ts'

/**
 * An event as a backend reads it: `tagsJson`, `dataJson` and `metadataJson` are JSON texts as the
 * store wrote them (JSON.stringify of the caller's values, see validate.ts; PostgreSQL's
 * array_to_json of the tags, which escapes exactly as JSON.stringify does), not parsed yet. `read` parses them
 * (`decodeEvent`); the HTTP API writes them to the wire as they are, so a page of events is never
 * parsed only to be stringified again. A backend hands out records it does not keep (a fresh
 * `recordedAt`): the event made from one owns it.
 */
export interface EventRecord {
  readonly position: bigint
  readonly type: string
  readonly tagsJson: string
  readonly dataJson: string
  readonly metadataJson: string
  readonly id: string
  readonly recordedAt: Date
}

/**
 * One page of events as the JSON text the HTTP API sends. Either `json`, the events' JSON texts
 * (each exactly `recordJson` of its record, ts/store/core/event-json.ts) joined by commas, without
 * the brackets, as UTF-8 bytes or as a string; or `body`, the whole page `{"events":[...]}` or
 * `{"events":[...],"next":"N"}` as UTF-8 bytes, when the backend built all of it (SQLite: the
 * HTTP layer then sends those bytes as they are, with no copy). `next` is the position of the
 * page's last event when more matching events follow (the cursor of the next page), else undefined.
 */
export type EventPage =
  | { readonly json: Uint8Array | string; readonly next: bigint | undefined }
  | { readonly body: Uint8Array<ArrayBuffer>; readonly next: bigint | undefined }

/** The event a caller gets for a record. */
export function decodeEvent(record: EventRecord): SequencedEvent {
  return {
    position: record.position,
    type: record.type,
    tags: JSON.parse(record.tagsJson),
    data: JSON.parse(record.dataJson),
    metadata: JSON.parse(record.metadataJson),
    id: record.id,
    recordedAt: record.recordedAt,
  }
}

/** One append waiting in, or taken from, the writer queue. */
export interface QueuedAppend {
  readonly events: NormalizedEvent[]
  readonly condition: AppendCondition | undefined
  readonly command: NormalizedCommand | undefined
  readonly checkpoint: NormalizedCheckpoint | undefined
  /**
   * Look the ids up before writing: true when ids were given, and set by the core when an earlier
   * attempt of this append failed in a way that leaves its outcome unknown.
   */
  checkIds: boolean
  /** Already answered (timed out while queued or in flight): a backend writes nothing for it. */
  settled: boolean
  /** `performance.now()` after which the core fails it with a timeout. */
  readonly deadline: number
}

/** What a batch did for one of its appends. */
export type AppendOutcome =
  /** Written: its last event has `position`; every event's `recordedAt` is this time. */
  | { status: 'written'; position: bigint; recordedAt: Date }
  /** Every id was stored already: the first append's last position. */
  | { status: 'duplicate'; position: bigint }
  /** Refused (condition, partial duplicate); nothing of it was written. */
  | { status: 'failed'; error: unknown }
  /** Settled before the batch reached it (a timeout); nothing of it was written. */
  | { status: 'skipped' }

/**
 * Called by a backend inside the batch's transaction after its rows are written and before it
 * commits (only when inline projectors are attached). A throw must roll the transaction back and
 * propagate out of `writeBatch`.
 */
export type BeforeCommit = (outcomes: readonly AppendOutcome[], tx: unknown) => Promise<void>

/** Where a batch goes (a connection, or nothing), and how many batches may still start there. */
export interface Lane {
  via: unknown
  free: number
}

/** The storage operations of one backend. Methods may throw anything; the core maps errors. */
export interface StoreBackend {
  readonly kind: StoreTransaction['backend']
  /**
   * True when `writeBatch` judges each append against the committed log only (PostgreSQL's batch
   * function): the core then ends a batch before an append whose condition could match an earlier
   * append of it, or that repeats one of its ids.
   */
  readonly independentAppends: boolean
  /** Most events one batch may carry. */
  readonly maxBatchEvents: number
  /** `commitDelayMicros` when the caller gave none (see StoreOptions). */
  readonly defaultCommitDelayMicros: number
  /**
   * Where the next batch may be written now, or undefined when it must wait for one in flight.
   * `pipelined` is false while inline projectors are attached.
   */
  lane(inFlight: number, pipelined: boolean): Lane | undefined | Promise<Lane | undefined>
  /** The writer ran out of work: release what `lane` reserved. */
  idle(): void
  /**
   * Decide and write one batch atomically, in order: idempotency, then the condition, then the
   * rows (events, tags, the command row, the checkpoint upsert). One outcome per append, in order.
   * `via` is a lane's, or undefined for the backend's default connection (a retry after a failure).
   */
  writeBatch(via: unknown, batch: readonly QueuedAppend[], beforeCommit?: BeforeCommit): Promise<AppendOutcome[]>
  /** Run `fn` inside one write transaction; a throw rolls it back. Called by the writer, alone. */
  transaction<T>(fn: (tx: StoreTransaction) => T | Promise<T>): Promise<T>
  /** Matching events with after < position < before (before undefined: no bound), ascending or descending. */
  readPage(query: Query, after: bigint, before: bigint | undefined, limit: number, backwards: boolean): Promise<EventRecord[]>
  /**
   * The first `limit` matching events of what `readPage` would read, as one page of JSON text, and
   * whether more follow. A backend that cannot build the text more cheaply than the core returns
   * `jsonPageOf(await this.readPage(..., limit + 1, ...), limit)` (ts/store/core/event-json.ts).
   */
  readJsonPage(query: Query, after: bigint, before: bigint | undefined, limit: number, backwards: boolean): Promise<EventPage>
  /** The position of the newest committed event, 0n when empty. */
  head(): Promise<bigint>
  checkpoint(name: string): Promise<bigint | undefined>
  /** Called by the writer, alone. `keep`: delete all but the newest `keep` of this name. */
  saveSnapshot(name: string, position: bigint, data: Uint8Array, keep: number | undefined): Promise<void>
  loadSnapshot(name: string): Promise<StoredSnapshot | undefined>
  /** Called by the writer, alone. */
  deleteSnapshots(name: string): Promise<void>
  /** Commands with id > after, oldest first, at most `limit` (undefined: all). */
  commands(after: bigint, limit: number | undefined): Promise<RecordedCommand[]>
  /**
   * Start noticing commits made elsewhere (other processes); call `wake` for each, with the new head
   * when it is known (so a wake-up for events already read costs no read). Returns the stop function.
   * Called when the tail reader gets its first member; stopped when it has none.
   */
  watch(wake: (head?: bigint) => void): () => void
  /** The error a caller sees for a failure of `operation`: STORAGE_ERROR, cause without payloads. */
  storageError(operation: string, error: unknown): RingstateError
  /** Release connections and files; the writer has drained and the tail stopped. */
  close(): Promise<void>
}

/** The events of a written append, as readers will see them (projectors get these before commit). */
export function writtenEvents(events: readonly NormalizedEvent[], last: bigint, recordedAt: Date): SequencedEvent[] {
  const first = last - BigInt(events.length) + 1n
  return events.map((event, k) => ({
    position: first + BigInt(k),
    type: event.type,
    tags: event.tags.slice(),
    data: JSON.parse(event.dataJson),
    metadata: JSON.parse(event.metadataJson),
    id: event.id,
    recordedAt: new Date(recordedAt.getTime()),
  }))
}

/** Resolve after the pending microtasks and I/O callbacks of this event-loop turn have run. */
export function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve))
}
