/**
 * A ring of encoded events shared by threads: the main thread and Bun/Node Workers publish and
 * consume through the same bounded ring, each event reaching exactly one consumer.
 *
 * Two implementations behind one class, chosen once per ring at creation (see `ts/native`):
 * - native: `crates/ring`'s lock-free `ByteRing` in process-global memory, reached from any thread
 *   by id; one native call moves a whole batch;
 * - typescript: the pure-TS twin over a SharedArrayBuffer, one short lock per batch
 *   (`RINGSTATE_NATIVE=0`, or when the addon is not built).
 *
 * Events travel as packed records in fixed-size slots, encoded by the ring's codec (see
 * `ring-codec.ts`): JSON by default, or binary for the event types of a `schema`. An idle consumer
 * parks on `Atomics.waitAsync` and a producer wakes it with `Atomics.notify` (a blocked producer
 * likewise waits for room), so nobody polls on a timer.
 *
 * Native is the default wherever the addon loads: it beat the twin in every cross-thread run.
 * Measured with `./node_modules/.bin/bun bench/bus.bench.ts` (200,000 `{ type, n }` events in
 * batches of 256, main thread -> one consumer Worker, best of 3; three runs on 2 cores shared with
 * other work, so the spread is wide), ns/event and speed-up over postMessage of each event:
 *
 * | subject                      | ns/event  | vs postMessage per event | vs postMessage of 256-arrays |
 * |------------------------------|-----------|--------------------------|------------------------------|
 * | native, schema               | 119–153   | 6.4–11.1x                | 1.2–2.6x                     |
 * | typescript twin, schema      | 167–203   | 4.8–6.6x                 | 1.0–1.6x                     |
 * | native, JSON                 | 228–397   | 2.5–5.5x                 | 0.7–1.3x                     |
 * | typescript twin, JSON        | 410–436   | 2.0–3.2x                 | 0.4–0.8x                     |
 * | postMessage per event        | 871–1316  | 1x                       |                              |
 * | postMessage of 256-arrays    | 159–308   |                          | 1x                           |
 *
 * (Before the schema codec and Atomics parking: native 560–670, twin 720–860 ns/event.) Batched
 * postMessage of plain arrays is the honest rival: only the schema path beats it, by up to 2.6x.
 */
import {
  AbortedError,
  BufferFullError,
  InvalidOptionsError,
  NativeUnavailableError,
  StoreClosedError,
} from '../errors.ts'
import { loadNative } from '../native/index.ts'
import type { BusEvent, Overrun } from './event-bus.ts'
import { type EventSchema, JsonCodec, Records, type RingCodec, SchemaCodec, validateSchema } from './ring-codec.ts'

/** Counters of a shared ring; `published === processed + dropped + pending` at quiescence. */
export interface SharedRingMetrics {
  published: number
  processed: number
  dropped: number
  pending: number
}

export interface SharedRingOptions {
  /** Slots; a power of two from 1 to 2^24. */
  capacity: number
  /** Largest encoded event in bytes (default 1024, at most 2^20). */
  slotSize?: number
  /** As for EventBus; `block` makes `publish` return a Promise while the ring is full. */
  overrun?: Overrun
  /**
   * Event types whose fields travel as binary instead of JSON (much faster; see `EventSchema`).
   * Events the schema does not describe exactly still travel, as JSON.
   */
  schema?: EventSchema
}

/**
 * What another thread needs to attach to a ring: pass it to a Worker (`postMessage` or
 * `workerData`) and call {@link SharedRing.attach} there. Structured-clonable. `wake` holds the
 * words threads park on. A native handle keeps nothing alive by itself: keep the creating ring
 * reachable (or do not release it) until the Workers have attached.
 */
export type SharedRingHandle = (
  | { kind: 'native'; id: number }
  | { kind: 'typescript'; buffer: SharedArrayBuffer }
) & { capacity: number; slotSize: number; overrun: Overrun; schema?: EventSchema; wake: SharedArrayBuffer }

/** The two implementations' common, batch-at-a-time surface. Records: u32 LE length, bytes. */
interface RingBackend {
  /** Writes whole records from `records[0, length)` until one is refused; returns how many went in. */
  write(records: Uint8Array, length: number): number
  /** Reads records into `out` while a whole slot still fits; returns the bytes used. */
  read(out: Uint8Array): number
  metrics(): SharedRingMetrics
  release(): void
}

const MAX_CAPACITY = 2 ** 24
const MAX_SLOT = 2 ** 20
const OVERRUNS: readonly Overrun[] = ['drop-oldest', 'block', 'error']
/** Most events a `take` returns. */
const TAKE_MAX = 1024

/** Copies `length` bytes; a loop beats `set(subarray(...))` (an allocation) for small records. */
function copy(from: Uint8Array, at: number, to: Uint8Array, into: number, length: number): void {
  if (length > 64) {
    to.set(from.subarray(at, at + length), into)
    return
  }
  for (let i = 0; i < length; i++) to[into + i] = from[at + i]!
}

/** The pure-TypeScript twin: a SharedArrayBuffer ring; every batch runs under one spin lock. */
class TypeScriptRing implements RingBackend {
  // Layout: Int32 lock at byte 0; Float64 head, tail, published, processed, dropped at byte 64
  // (a cache line away from the lock); u32 lengths per slot at byte 128; then the slots.
  static bytesFor(capacity: number, slotSize: number): number {
    return 128 + 4 * capacity + capacity * slotSize
  }
  private readonly lock: Int32Array
  private readonly words: Float64Array
  private readonly lengths: Uint32Array
  private readonly data: Uint8Array
  private readonly capacity: number
  private readonly slotSize: number
  private readonly dropOldest: boolean

  constructor(buffer: SharedArrayBuffer, capacity: number, slotSize: number, dropOldest: boolean) {
    this.capacity = capacity
    this.slotSize = slotSize
    this.dropOldest = dropOldest
    this.lock = new Int32Array(buffer, 0, 1)
    this.words = new Float64Array(buffer, 64, 5)
    this.lengths = new Uint32Array(buffer, 128, capacity)
    this.data = new Uint8Array(buffer, 128 + 4 * capacity, capacity * slotSize)
  }

  private acquire(): void {
    let spins = 0
    while (Atomics.compareExchange(this.lock, 0, 0, 1) !== 0) {
      // The holder copies one batch (microseconds); if it was descheduled, stop burning the core.
      if (++spins > 2000) Atomics.wait(this.lock, 0, 1, 1)
    }
  }

  private releaseLock(): void {
    // Seq-cst store: every plain write made under the lock is visible to the next holder.
    Atomics.store(this.lock, 0, 0)
  }

  write(records: Uint8Array, length: number): number {
    const w = this.words
    let count = 0
    this.acquire()
    try {
      let offset = 0
      while (offset < length) {
        const len = records[offset]! | (records[offset + 1]! << 8) | (records[offset + 2]! << 16) | (records[offset + 3]! << 24)
        if (w[1]! - w[0]! >= this.capacity) {
          if (!this.dropOldest) break
          w[0]!++
          w[4]!++
        }
        const slot = w[1]! % this.capacity
        this.lengths[slot] = len
        copy(records, offset + 4, this.data, slot * this.slotSize, len)
        w[1]!++
        w[2]!++
        count++
        offset += 4 + len
      }
    } finally {
      this.releaseLock()
    }
    return count
  }

  read(out: Uint8Array): number {
    const w = this.words
    const room = 4 + this.slotSize
    let used = 0
    this.acquire()
    try {
      while (w[0]! < w[1]! && out.length - used >= room) {
        const slot = w[0]! % this.capacity
        const len = this.lengths[slot]!
        out[used] = len & 0xff
        out[used + 1] = (len >>> 8) & 0xff
        out[used + 2] = (len >>> 16) & 0xff
        out[used + 3] = len >>> 24
        copy(this.data, slot * this.slotSize, out, used + 4, len)
        used += 4 + len
        w[0]!++
        w[3]!++
      }
    } finally {
      this.releaseLock()
    }
    return used
  }

  metrics(): SharedRingMetrics {
    this.acquire()
    const w = this.words
    const m = { published: w[2]!, processed: w[3]!, dropped: w[4]!, pending: w[1]! - w[0]! }
    this.releaseLock()
    return m
  }

  release(): void {}
}

/** The native ring, reached by id from any thread of the process. */
class NativeRing implements RingBackend {
  private readonly addon: NativeRingExports
  readonly id: number
  constructor(addon: NativeRingExports, id: number) {
    this.addon = addon
    this.id = id
  }
  write(records: Uint8Array, length: number): number {
    return this.addon.ringWrite(this.id, records, length)
  }
  read(out: Uint8Array): number {
    return this.addon.ringRead(this.id, out)
  }
  metrics(): SharedRingMetrics {
    const [published, processed, dropped, pending] = this.addon.ringMetrics(this.id)
    return { published: published!, processed: processed!, dropped: dropped!, pending: pending! }
  }
  release(): void {
    this.addon.ringRelease(this.id)
  }
}

/** The ring members of the native addon (also declared in ts/native/addon.ts). */
interface NativeRingExports {
  ringCreate(slotSize: number, capacity: number, overrun: Overrun): number
  ringRetain(id: number): boolean
  ringDrop(id: number): boolean
  ringWrite(id: number, records: Uint8Array, length: number): number
  ringRead(id: number, out: Uint8Array): number
  ringMetrics(id: number): Float64Array
  ringRelease(id: number): boolean
}

function nativeRingExports(): NativeRingExports | null {
  const addon = loadNative() as unknown as Partial<NativeRingExports> | null
  return addon && typeof addon.ringRetain === 'function' ? (addon as NativeRingExports) : null
}

/**
 * Each attached native SharedRing holds one reference on its ring; when one is collected without
 * `release()`, its reference is given back, and the last one frees the ring.
 */
const nativeReferences = new FinalizationRegistry<number>((id) => nativeRingExports()?.ringDrop(id))

function validate(options: SharedRingOptions): Required<Omit<SharedRingOptions, 'schema'>> & { schema?: EventSchema } {
  if (options === null || typeof options !== 'object') throw new InvalidOptionsError('SharedRing options must be an object')
  const { capacity, slotSize = 1024, overrun = 'error', schema } = options
  if (!Number.isInteger(capacity) || capacity < 1 || capacity > MAX_CAPACITY || (capacity & (capacity - 1)) !== 0) {
    throw new InvalidOptionsError(`capacity must be a power of two from 1 to 2^24, got ${String(capacity)}`)
  }
  if (!Number.isInteger(slotSize) || slotSize < 1 || slotSize > MAX_SLOT) {
    throw new InvalidOptionsError(`slotSize must be an integer from 1 to 2^20, got ${String(slotSize)}`)
  }
  if (!OVERRUNS.includes(overrun)) throw new InvalidOptionsError(`overrun must be one of ${OVERRUNS.join(', ')}`)
  return schema === undefined ? { capacity, slotSize, overrun } : { capacity, slotSize, overrun, schema: validateSchema(schema) }
}

/** Resolves on the next turn of the event loop (after I/O and timers get their chance). */
const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve))

// The wake words, each on its own 128-byte line of the handle's `wake` buffer (Int32 indexes):
// DATA and SPACE are bumped after every write and every read; CONSUMERS and PRODUCERS count the
// threads parked (or about to park) on them, so nobody calls notify when no one waits.
const DATA = 0
const CONSUMERS = 32
const SPACE = 64
const PRODUCERS = 96
const WAKE_BYTES = 128 * 4
/** Empty polls (one event-loop turn each) before a consumer parks. */
const SPIN_TURNS = 16

/** `Atomics.waitAsync` (ES2024, typed here because the project's `lib` predates it), if present. */
const waitAsync = (
  Atomics as unknown as {
    waitAsync?: (words: Int32Array, index: number, value: number) => { async: boolean; value: unknown }
  }
).waitAsync

/**
 * Waits until `words[word]` is no longer `seen` (or a notify), without blocking the event loop.
 * Where `Atomics.waitAsync` is missing (older runtimes) it naps a millisecond instead.
 */
async function park(words: Int32Array, word: number, seen: number): Promise<void> {
  if (waitAsync === undefined) return new Promise((resolve) => setTimeout(resolve, 1))
  const waiting = waitAsync(words, word, seen)
  if (waiting.async) await waiting.value
}

/** Tells the threads parked on `word` that it changed; `count` is its parked-thread counter. */
function signalChange(words: Int32Array, word: number, count: number): void {
  // The read-modify-write is a full fence: the ring write before it is visible to anyone who sees
  // the new value, and a thread that announced itself in `count` before it is seen below.
  Atomics.add(words, word, 1)
  if (Atomics.load(words, count) > 0) Atomics.notify(words, word)
}

/**
 * A bounded ring of events shared between threads.
 *
 * @example
 * ```ts
 * // main thread
 * const ring = SharedRing.create<{ type: 'job'; id: number }>({
 *   capacity: 4096,
 *   overrun: 'block',
 *   schema: { job: { id: 'uint32' } }, // optional: binary instead of JSON for these types
 * })
 * const worker = new Worker(new URL('./consumer.ts', import.meta.url))
 * worker.postMessage(ring.handle)
 * await ring.publish([{ type: 'job', id: 1 }, { type: 'job', id: 2 }])
 *
 * // consumer.ts (a Worker)
 * self.onmessage = async ({ data }) => {
 *   const ring = SharedRing.attach(data)
 *   await ring.consume((event) => console.log(event.id), { signal })
 * }
 * ```
 */
export class SharedRing<E extends BusEvent = BusEvent> {
  /** Pass this to another thread and call `SharedRing.attach(handle)` there. */
  readonly handle: SharedRingHandle
  private readonly backend: RingBackend
  private readonly codec: RingCodec<E>
  private readonly records = new Records()
  private readonly out: Uint8Array
  private readonly wake: Int32Array

  private constructor(handle: SharedRingHandle, backend: RingBackend) {
    this.handle = handle
    this.backend = backend
    this.codec = handle.schema ? new SchemaCodec<E>(handle.schema) : new JsonCodec<E>()
    this.wake = new Int32Array(handle.wake)
    // Room for up to TAKE_MAX slots per read, never less than one, plus a byte for the JSON codec.
    this.out = new Uint8Array((4 + handle.slotSize) * Math.min(handle.capacity, TAKE_MAX) + 1)
  }

  /**
   * Creates a ring: native when the addon is loaded, else the pure-TS twin (see `ts/native`).
   *
   * @throws InvalidOptionsError (INVALID_OPTIONS) for a bad capacity, slot size, overrun or schema.
   * @example
   * ```ts
   * const ring = SharedRing.create({ capacity: 1024, slotSize: 256, overrun: 'drop-oldest' })
   * ```
   */
  static create<E extends BusEvent = BusEvent>(options: SharedRingOptions): SharedRing<E> {
    return createSharedRing<E>(options, nativeRingExports() ? 'native' : 'typescript')
  }

  /**
   * Attaches to a ring created in another thread (or this one) from its handle.
   *
   * @throws StoreClosedError (STORE_CLOSED) when the native ring was released (or collected).
   * @example
   * ```ts
   * const ring = SharedRing.attach(workerData.ring)
   * ```
   */
  static attach<E extends BusEvent = BusEvent>(handle: SharedRingHandle): SharedRing<E> {
    if (!(handle?.wake instanceof SharedArrayBuffer) || handle.wake.byteLength !== WAKE_BYTES) {
      throw new InvalidOptionsError('not a SharedRing handle')
    }
    if (handle.kind === 'native') {
      const addon = nativeRingExports()
      if (!addon) throw new InvalidOptionsError('this handle is of a native ring, but the native addon is not loaded in this thread')
      if (!addon.ringRetain(handle.id)) throw new StoreClosedError(`ring ${handle.id} is released`)
      const ring = new SharedRing<E>(handle, new NativeRing(addon, handle.id))
      nativeReferences.register(ring, handle.id, ring)
      return ring
    }
    if (handle.kind === 'typescript' && handle.buffer instanceof SharedArrayBuffer) {
      return new SharedRing<E>(handle, new TypeScriptRing(handle.buffer, handle.capacity, handle.slotSize, handle.overrun === 'drop-oldest'))
    }
    throw new InvalidOptionsError('not a SharedRing handle')
  }

  /** Byte offset of record `index` in the encoded batch. */
  private offsetOf(index: number): number {
    const view = this.records.view
    let offset = 0
    for (let i = 0; i < index; i++) offset += 4 + view.getUint32(offset, true)
    return offset
  }

  /**
   * Publishes a batch of events, in order. Returns `undefined` when all went in. On a full ring:
   * `error` throws BUFFER_FULL whose `item` is the array of events that did not go in (the ones
   * before them did); `drop-oldest` overwrites the oldest pending events; `block` returns a
   * Promise that resolves once every event is in, or rejects with ABORTED when `signal` aborts
   * (events already in stay in).
   *
   * @throws InvalidEventError (INVALID_EVENT) when an event has no string type, is not
   *   JSON-serialisable or is larger than the slot size; nothing is published then.
   * @example
   * ```ts
   * const waiting = ring.publish(events)
   * if (waiting) await waiting
   * ```
   */
  publish(events: readonly E[], options?: { signal?: AbortSignal }): Promise<void> | undefined {
    const records = this.records
    records.length = 0
    this.codec.encode(events, records, this.handle.slotSize)
    const count = this.backend.write(records.bytes, records.length)
    if (count > 0) signalChange(this.wake, DATA, CONSUMERS)
    if (count === events.length) return undefined
    if (this.handle.overrun === 'error') throw new BufferFullError(events.slice(count))
    return this.publishRest(events.length, count, options?.signal)
  }

  private async publishRest(total: number, written: number, signal: AbortSignal | undefined): Promise<void> {
    // The unsent tail stays encoded in `this.records`; copy it so later publishes can reuse the buffer.
    const rest = this.records.bytes.slice(this.offsetOf(written), this.offsetOf(total))
    const view = new DataView(rest.buffer)
    const wake = this.wake
    const wakeAll = () => Atomics.notify(wake, SPACE)
    signal?.addEventListener('abort', wakeAll)
    let offset = 0
    let remaining = total - written
    try {
      while (remaining > 0) {
        if (signal?.aborted) throw new AbortedError(undefined, { cause: signal.reason })
        // Announce, then look again: a consumer that frees room after this sees us and notifies.
        Atomics.add(wake, PRODUCERS, 1)
        let count: number
        try {
          const seen = Atomics.load(wake, SPACE)
          count = this.backend.write(rest.subarray(offset), rest.length - offset)
          if (count === 0 && !signal?.aborted) await park(wake, SPACE, seen)
        } finally {
          Atomics.sub(wake, PRODUCERS, 1)
        }
        if (count === 0) continue
        signalChange(wake, DATA, CONSUMERS)
        for (let i = 0; i < count; i++) offset += 4 + view.getUint32(offset, true)
        remaining -= count
      }
    } finally {
      signal?.removeEventListener('abort', wakeAll)
    }
  }

  /**
   * Takes the pending events (at most 1024), oldest first; `[]` when none.
   *
   * @example
   * ```ts
   * for (const event of ring.take()) handle(event)
   * ```
   */
  take(): E[] {
    const out = this.out
    // The last byte is kept free for the JSON codec's closing bracket.
    const used = this.backend.read(out.subarray(0, out.length - 1))
    if (used === 0) return []
    signalChange(this.wake, SPACE, PRODUCERS)
    return this.codec.decode(out, used)
  }

  /** The next events, waiting (without blocking the thread) until there are some; `[]` once `signal` aborts. */
  private async next(signal: AbortSignal): Promise<E[]> {
    const wake = this.wake
    for (let idle = 0; !signal.aborted; idle++) {
      const events = this.take()
      if (events.length > 0) return events
      // Poll for a few turns of the event loop (cheap while a producer is mid-burst), then park.
      if (idle < SPIN_TURNS) {
        await nextTurn()
        continue
      }
      Atomics.add(wake, CONSUMERS, 1)
      try {
        const seen = Atomics.load(wake, DATA)
        const late = this.take()
        if (late.length > 0) return late
        if (!signal.aborted) await park(wake, DATA, seen)
      } finally {
        Atomics.sub(wake, CONSUMERS, 1)
      }
    }
    return []
  }

  /**
   * Hands every event to `handler` as it arrives until `signal` aborts; returns how many it
   * handled. Several threads may consume one ring: each event reaches exactly one of them, so
   * consumers in N Workers form a worker pool running handlers in parallel. Idle, it parks on
   * `Atomics.waitAsync` (the event loop stays free) until a producer publishes. Handler failures
   * go to `onError` (default: console.error) and never stop consumption; a handler's promise is
   * awaited before the next event.
   *
   * @example
   * ```ts
   * const stop = new AbortController()
   * const handled = await ring.consume((event) => save(event), { signal: stop.signal })
   * ```
   */
  async consume(
    handler: (event: E) => unknown,
    options: { signal: AbortSignal; onError?: (error: unknown, event: E) => void },
  ): Promise<number> {
    const { signal, onError = (error: unknown, event: E) => console.error(`ringstate shared ring: a handler for "${event.type}" failed:`, error) } = options
    // Wakes every parked thread of this ring, this one included; the others look and park again.
    const wakeUp = () => Atomics.notify(this.wake, DATA)
    signal.addEventListener('abort', wakeUp)
    let handled = 0
    try {
      while (!signal.aborted) {
        const events = await this.next(signal)
        for (const event of events) {
          try {
            const result = handler(event)
            if (result !== undefined && typeof (result as PromiseLike<unknown>)?.then === 'function') await result
          } catch (error) {
            try {
              onError(error, event)
            } catch {
              // A failing reporter must not stop consumption either.
            }
          }
          handled++
        }
      }
    } finally {
      signal.removeEventListener('abort', wakeUp)
    }
    return handled
  }

  /**
   * The ring's counters (shared by every attached thread).
   *
   * @example
   * ```ts
   * const { published, processed, dropped, pending } = ring.metrics()
   * ```
   */
  metrics(): SharedRingMetrics {
    return this.backend.metrics()
  }

  /**
   * Frees a native ring for every thread now (later calls anywhere throw STORE_CLOSED); a no-op for
   * the TypeScript twin, whose memory is freed when no thread references it. A native ring nobody
   * releases is freed once every SharedRing attached to it (in any thread) is garbage-collected.
   *
   * @example
   * ```ts
   * ring.release()
   * ```
   */
  release(): void {
    nativeReferences.unregister(this)
    this.backend.release()
  }
}

/**
 * Creates a ring with an explicit implementation (tests run both; applications use
 * {@link SharedRing.create}). Not re-exported from `ringstate/bus`.
 */
export function createSharedRing<E extends BusEvent = BusEvent>(
  options: SharedRingOptions,
  implementation: 'native' | 'typescript',
): SharedRing<E> {
  const { capacity, slotSize, overrun, schema } = validate(options)
  const shared = { capacity, slotSize, overrun, wake: new SharedArrayBuffer(WAKE_BYTES), ...(schema ? { schema } : {}) }
  if (implementation === 'native') {
    const addon = nativeRingExports()
    if (!addon) throw new NativeUnavailableError('the native addon with ring support is not loaded')
    const id = addon.ringCreate(slotSize, capacity, overrun)
    return SharedRing.attach<E>({ kind: 'native', id, ...shared })
  }
  const buffer = new SharedArrayBuffer(TypeScriptRing.bytesFor(capacity, slotSize))
  return SharedRing.attach<E>({ kind: 'typescript', buffer, ...shared })
}
