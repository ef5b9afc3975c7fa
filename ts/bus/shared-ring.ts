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
 * Events travel as JSON (UTF-8) in fixed-size slots, so they must be JSON-serialisable and encode
 * to at most `slotSize` bytes.
 */
import {
  AbortedError,
  BufferFullError,
  InvalidEventError,
  InvalidOptionsError,
  NativeUnavailableError,
} from '../errors.ts'
import { loadNative } from '../native/index.ts'
import type { BusEvent, Overrun } from './event-bus.ts'

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
}

/**
 * What another thread needs to attach to a ring: pass it to a Worker (`postMessage` or
 * `workerData`) and call {@link SharedRing.attach} there. Structured-clonable.
 */
export type SharedRingHandle =
  | { kind: 'native'; id: number; capacity: number; slotSize: number; overrun: Overrun }
  | { kind: 'typescript'; buffer: SharedArrayBuffer; capacity: number; slotSize: number; overrun: Overrun }

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

  constructor(
    buffer: SharedArrayBuffer,
    private readonly capacity: number,
    private readonly slotSize: number,
    private readonly dropOldest: boolean,
  ) {
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
        this.data.set(records.subarray(offset + 4, offset + 4 + len), slot * this.slotSize)
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
        const start = slot * this.slotSize
        out.set(this.data.subarray(start, start + len), used + 4)
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
  constructor(
    private readonly addon: NativeRingExports,
    readonly id: number,
  ) {}
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
  ringWrite(id: number, records: Uint8Array, length: number): number
  ringRead(id: number, out: Uint8Array): number
  ringMetrics(id: number): Float64Array
  ringRelease(id: number): boolean
}

function nativeRingExports(): NativeRingExports | null {
  const addon = loadNative() as unknown as Partial<NativeRingExports> | null
  return addon && typeof addon.ringCreate === 'function' ? (addon as NativeRingExports) : null
}

function validate(options: SharedRingOptions): Required<SharedRingOptions> {
  if (options === null || typeof options !== 'object') throw new InvalidOptionsError('SharedRing options must be an object')
  const { capacity, slotSize = 1024, overrun = 'error' } = options
  if (!Number.isInteger(capacity) || capacity < 1 || capacity > MAX_CAPACITY || (capacity & (capacity - 1)) !== 0) {
    throw new InvalidOptionsError(`capacity must be a power of two from 1 to 2^24, got ${String(capacity)}`)
  }
  if (!Number.isInteger(slotSize) || slotSize < 1 || slotSize > MAX_SLOT) {
    throw new InvalidOptionsError(`slotSize must be an integer from 1 to 2^20, got ${String(slotSize)}`)
  }
  if (!OVERRUNS.includes(overrun)) throw new InvalidOptionsError(`overrun must be one of ${OVERRUNS.join(', ')}`)
  return { capacity, slotSize, overrun }
}

/** Resolves on the next turn of the event loop (after I/O and timers get their chance). */
const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve))

/**
 * A bounded ring of events shared between threads.
 *
 * @example
 * ```ts
 * // main thread
 * const ring = SharedRing.create<{ type: 'job'; id: number }>({ capacity: 4096, overrun: 'block' })
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
  private readonly encoder = new TextEncoder()
  private readonly decoder = new TextDecoder()
  private records = new Uint8Array(64 * 1024)
  private scratch = new Uint8Array(64 * 1024)
  private readonly out: Uint8Array

  private constructor(handle: SharedRingHandle, backend: RingBackend) {
    this.handle = handle
    this.backend = backend
    // Room for up to 256 slots per read, and never less than one.
    this.out = new Uint8Array((4 + handle.slotSize) * Math.min(handle.capacity, 256) + 1)
  }

  /**
   * Creates a ring: native when the addon is loaded, else the pure-TS twin (see `ts/native`).
   *
   * @throws InvalidOptionsError (INVALID_OPTIONS) for a bad capacity, slot size or overrun.
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
   * @example
   * ```ts
   * const ring = SharedRing.attach(workerData.ring)
   * ```
   */
  static attach<E extends BusEvent = BusEvent>(handle: SharedRingHandle): SharedRing<E> {
    if (handle?.kind === 'native') {
      const addon = nativeRingExports()
      if (!addon) throw new InvalidOptionsError('this handle is of a native ring, but the native addon is not loaded in this thread')
      return new SharedRing<E>(handle, new NativeRing(addon, handle.id))
    }
    if (handle?.kind === 'typescript' && handle.buffer instanceof SharedArrayBuffer) {
      return new SharedRing<E>(handle, new TypeScriptRing(handle.buffer, handle.capacity, handle.slotSize, handle.overrun === 'drop-oldest'))
    }
    throw new InvalidOptionsError('not a SharedRing handle')
  }

  /**
   * Encodes `events` into `this.records` as packed records; returns the byte length. Validates
   * everything before anything is written.
   *
   * The batch is stringified and UTF-8 encoded in one go (far cheaper than once per event), then
   * one pass over the bytes splits the JSON array at its top-level commas into records.
   */
  private encode(events: readonly E[]): number {
    for (const event of events) {
      if (event === null || typeof event !== 'object' || typeof event.type !== 'string') {
        throw new InvalidEventError('an event must be an object with a string type')
      }
    }
    let json: string
    try {
      json = JSON.stringify(events)
    } catch (error) {
      throw new InvalidEventError(`events must be JSON-serialisable: ${error instanceof Error ? error.message : String(error)}`)
    }
    // UTF-8 takes at most 3 bytes per UTF-16 unit.
    if (this.scratch.length < json.length * 3) this.scratch = new Uint8Array(json.length * 3)
    const bytes = this.scratch
    const { written } = this.encoder.encodeInto(json, bytes)
    if (this.records.length < written + 4 * events.length) this.records = new Uint8Array((written + 4 * events.length) * 2)
    const r = this.records
    const max = this.handle.slotSize
    let out = 4
    let header = 0
    let depth = 0
    let inString = false
    let escaped = false
    let index = 0
    // Skip the array's own brackets: bytes [1, written - 1) are the events separated by commas.
    for (let i = 1; i < written - 1; i++) {
      const b = bytes[i]!
      if (inString) {
        if (escaped) escaped = false
        else if (b === 0x5c) escaped = true
        else if (b === 0x22) inString = false
      } else if (b === 0x22) inString = true
      else if (b === 0x7b || b === 0x5b) depth++
      else if (b === 0x7d || b === 0x5d) depth--
      else if (b === 0x2c && depth === 0) {
        this.closeRecord(header, out - header - 4, max, events[index++]!)
        header = out
        out += 4
        continue
      }
      r[out++] = b
    }
    if (events.length > 0) this.closeRecord(header, out - header - 4, max, events[index]!)
    return events.length > 0 ? out : 0
  }

  private closeRecord(header: number, length: number, max: number, event: E): void {
    if (length > max) {
      throw new InvalidEventError(`an event of type "${event.type}" encodes to ${length} bytes; the slot size is ${max}`)
    }
    const r = this.records
    r[header] = length & 0xff
    r[header + 1] = (length >>> 8) & 0xff
    r[header + 2] = (length >>> 16) & 0xff
    r[header + 3] = length >>> 24
  }

  /** Byte offset of record `index` in `this.records`. */
  private offsetOf(index: number): number {
    let offset = 0
    const r = this.records
    for (let i = 0; i < index; i++) offset += 4 + (r[offset]! | (r[offset + 1]! << 8) | (r[offset + 2]! << 16) | (r[offset + 3]! << 24))
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
    const length = this.encode(events)
    const count = this.backend.write(this.records, length)
    if (count === events.length) return undefined
    if (this.handle.overrun === 'error') throw new BufferFullError(events.slice(count))
    return this.publishRest(events.length, count, options?.signal)
  }

  private async publishRest(total: number, written: number, signal: AbortSignal | undefined): Promise<void> {
    // The unsent tail stays encoded in `this.records`; copy it so later publishes can reuse the buffer.
    const start = this.offsetOf(written)
    const rest = this.records.slice(start, this.offsetOf(total))
    let offset = 0
    let remaining = total - written
    while (remaining > 0) {
      if (signal?.aborted) throw new AbortedError(undefined, { cause: signal.reason })
      await nextTurn()
      const view = rest.subarray(offset)
      const count = this.backend.write(view, view.length)
      for (let i = 0; i < count; i++) offset += 4 + (rest[offset]! | (rest[offset + 1]! << 8) | (rest[offset + 2]! << 16) | (rest[offset + 3]! << 24))
      remaining -= count
    }
  }

  /**
   * Takes up to one read-buffer of pending events (at most 256), oldest first; `[]` when none.
   *
   * @example
   * ```ts
   * for (const event of ring.take()) handle(event)
   * ```
   */
  take(): E[] {
    const out = this.out
    // The last byte is kept free for the closing bracket below.
    const used = this.backend.read(out.subarray(0, out.length - 1))
    if (used === 0) return []
    // Turn the packed records into one JSON array in place (each 4-byte length becomes "[   " or
    // ",   "), so the whole batch is decoded and parsed once instead of once per event.
    let offset = 0
    let separator = 0x5b
    while (offset < used) {
      const len = out[offset]! | (out[offset + 1]! << 8) | (out[offset + 2]! << 16) | (out[offset + 3]! << 24)
      out[offset] = separator
      out[offset + 1] = 0x20
      out[offset + 2] = 0x20
      out[offset + 3] = 0x20
      separator = 0x2c
      offset += 4 + len
    }
    out[used] = 0x5d
    return JSON.parse(this.decoder.decode(out.subarray(0, used + 1))) as E[]
  }

  /**
   * Hands every event to `handler` as it arrives until `signal` aborts; returns how many it
   * handled. Several threads may consume one ring: each event reaches exactly one of them, so
   * consumers in N Workers form a worker pool running handlers in parallel. Idle, it yields to
   * the event loop between polls. Handler failures go to `onError` (default: console.error) and
   * never stop consumption; a handler's promise is awaited before the next event.
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
    let handled = 0
    let idle = 0
    while (!signal.aborted) {
      const events = this.take()
      if (events.length === 0) {
        // Poll hot for a while, then give the thread back: setImmediate first, then 1 ms naps.
        if (++idle < 64) await nextTurn()
        else await new Promise<void>((resolve) => setTimeout(resolve, 1))
        continue
      }
      idle = 0
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
   * Frees a native ring for every thread (later calls anywhere throw STORE_CLOSED); a no-op for
   * the TypeScript twin, whose memory is freed when no thread references it.
   *
   * @example
   * ```ts
   * ring.release()
   * ```
   */
  release(): void {
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
  const { capacity, slotSize, overrun } = validate(options)
  if (implementation === 'native') {
    const addon = nativeRingExports()
    if (!addon) throw new NativeUnavailableError('the native addon with ring support is not loaded')
    const id = addon.ringCreate(slotSize, capacity, overrun)
    return SharedRing.attach<E>({ kind: 'native', id, capacity, slotSize, overrun })
  }
  const buffer = new SharedArrayBuffer(TypeScriptRing.bytesFor(capacity, slotSize))
  return SharedRing.attach<E>({ kind: 'typescript', buffer, capacity, slotSize, overrun })
}
