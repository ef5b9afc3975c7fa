/**
 * `aggregate`: go-state's Aggregate mode, one model per key kept in a snapshot, with go-state's
 * data-loss flaw fixed. go-state committed every message as it went but saved the model only at
 * the end of the batch, so a crash mid-batch lost the model's changes for messages already
 * committed. Here nothing is committed per message: the snapshot holds model and position together
 * and is the only commit, written in one `saveSnapshot` once the whole batch succeeded.
 */
import { InvalidOptionsError, SnapshotCorruptError } from '../errors.ts'
import type { EventMap, EventOf, EventStore, InputOf, Query } from '../store/types.ts'
import { batch } from './run.ts'
import { aggregateSource } from './store.ts'
import type { ErrorAction, Delivery, Program } from './types.ts'

/** How a model is stored in its snapshot. The default is JSON. */
export interface ModelCodec<Model> {
  encode(model: Model): Uint8Array
  decode(bytes: Uint8Array): Model
}

/** Options of `aggregate`. */
export interface AggregateOptions<E extends EventMap, Model> {
  /** The aggregate's name: snapshots are `runtime:<name>:<key>`. */
  name: string
  /** Which model: e.g. the customer id. */
  key: string
  store: EventStore<E>
  /** The events of this key, e.g. `[{ types: ['PointsEarned'], tags: [`customer:${key}`] }]`. */
  query: Query
  /**
   * The model's shape version (default 1): a snapshot of another version is treated as absent,
   * and the model is rebuilt from the log. Bump it whenever `update` or the model changes.
   */
  version?: number
  /** How the model is stored (default JSON: the model must survive `JSON.stringify`). */
  codec?: ModelCodec<Model>
  /** Events per read (default: the store's `streamBatchSize`). */
  batchSize?: number
  signal?: AbortSignal
  onError?: ErrorAction | ((error: Error, delivery: Delivery<EventOf<E>>) => ErrorAction)
}

/** What `aggregate` resolves to. */
export interface AggregateResult<Model> {
  key: string
  model: Model
  /** Every matching event at or below this position is in the model (saved with it). */
  position: bigint
  /** True when the run started from a snapshot (init and its commands were skipped). */
  hydrated: boolean
}

const encoder = new TextEncoder()
const decoder = new TextDecoder()

function jsonCodec<Model>(): ModelCodec<Model> {
  return {
    encode: (model) => encoder.encode(JSON.stringify(model)),
    decode: (bytes) => JSON.parse(decoder.decode(bytes)) as Model,
  }
}

/** Snapshot bytes: a 4-byte big-endian version, then the codec's bytes. */
function pack(version: number, body: Uint8Array): Uint8Array {
  const bytes = new Uint8Array(4 + body.length)
  new DataView(bytes.buffer).setUint32(0, version)
  bytes.set(body, 4)
  return bytes
}

/**
 * Brings one key's model up to date: hydrate it from its snapshot `runtime:<name>:<key>` (init and
 * its commands skipped), or start from `init`; run the events of `query` after the snapshot's
 * position in batch mode (up to the head when it began, plus the batch's own outputs); then save
 * model and position in one snapshot write (keeping only the newest). When anything fails, nothing
 * is saved and the previous snapshot stays as it was; a rerun picks up from it.
 *
 * Commands run as in `fromStore` and their results are appended with ids
 * `runtime:<name>:<key>:<position>:<i>`, so a rerun after a failure appends nothing twice.
 *
 * @throws (rejects) InvalidOptionsError, SnapshotCorruptError (a snapshot of this version that
 *   does not decode), RuntimeUpdateFailedError, RuntimeCommandFailedError, AbortedError, store errors.
 * @example
 * type Ev = { PurchaseMade: { customer: string; amount: number } }
 * const { model } = await aggregate(
 *   { init: () => [{ points: 0 }], update: (event, m) => [{ points: m.points + Math.floor(event.data.amount) }] },
 *   { name: 'loyalty', key: 'c1', store, query: [{ types: ['PurchaseMade'], tags: ['customer:c1'] }] },
 * )
 */
export async function aggregate<Model, E extends EventMap>(
  program: Program<Model, NoInfer<EventOf<E>>, NoInfer<InputOf<E>>>,
  options: AggregateOptions<E, Model>,
): Promise<AggregateResult<Model>> {
  if (options === null || typeof options !== 'object') throw new InvalidOptionsError('aggregate options must be an object')
  const { name, key, store, query, version = 1, codec = jsonCodec<Model>(), batchSize, signal, onError } = options
  if (typeof name !== 'string' || name.length === 0) throw new InvalidOptionsError('aggregate name must be a non-empty string')
  if (typeof key !== 'string' || key.length === 0) throw new InvalidOptionsError('aggregate key must be a non-empty string')
  if (store === null || typeof store !== 'object' || typeof store.loadSnapshot !== 'function') {
    throw new InvalidOptionsError('aggregate needs an event store')
  }
  if (!Number.isInteger(version) || version < 0 || version > 0xffffffff) {
    throw new InvalidOptionsError('aggregate version must be an integer from 0 to 2^32 - 1')
  }
  if (codec === null || typeof codec !== 'object' || typeof codec.encode !== 'function' || typeof codec.decode !== 'function') {
    throw new InvalidOptionsError('aggregate codec needs encode and decode')
  }
  if (program === null || typeof program !== 'object' || typeof program.update !== 'function') {
    throw new InvalidOptionsError('program must be an object with init and update')
  }
  const snapshotName = `runtime:${name}:${key}`
  // The snapshot name also prefixes output ids (`<snapshot>:<position>:<i>`), which the store caps at 256.
  if (snapshotName.length > 200) throw new InvalidOptionsError('aggregate name and key together must be at most 190 characters')

  const snapshot = await store.loadSnapshot(snapshotName)
  let hydrated: { model: Model; position: bigint } | undefined
  if (snapshot !== undefined && snapshot.data.length >= 4) {
    const view = new DataView(snapshot.data.buffer, snapshot.data.byteOffset, snapshot.data.byteLength)
    if (view.getUint32(0) === version) {
      try {
        hydrated = { model: codec.decode(snapshot.data.subarray(4)), position: snapshot.position }
      } catch (error) {
        throw new SnapshotCorruptError(`snapshot ${snapshotName} does not decode`, { cause: error })
      }
    }
  }

  const source = aggregateSource(store, query, snapshotName, hydrated?.position ?? 0n, batchSize)
  const from: Program<Model, EventOf<E>, InputOf<E>> =
    hydrated === undefined
      ? program
      : {
          init: () => [hydrated.model],
          update: (msg, model) => program.update(msg, model),
          view: program.view === undefined ? undefined : (model, info) => program.view!(model, info),
        }
  const result = await batch(from, source, { signal, onError })
  const position = source.endedAt ?? hydrated?.position ?? 0n
  if (hydrated === undefined || position !== hydrated.position || result.processed > 0) {
    await store.saveSnapshot(snapshotName, position, pack(version, codec.encode(result.model)), { keep: 1 })
  }
  return { key, model: result.model, position, hydrated: hydrated !== undefined }
}
