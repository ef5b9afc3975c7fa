/**
 * How a {@link SharedRing} turns a batch of events into packed records (`u32` little-endian
 * length, then the bytes) and back.
 *
 * - JSON (the default): the batch is stringified once, encoded once and split at its top-level
 *   commas; a taken batch is parsed once. Any JSON-serialisable event travels.
 * - schema: with `schema: { tick: { n: 'number' } }` the type is interned to a 16-bit index and the
 *   declared fields are written as binary (`number` float64, `int32`, `uint32`, `boolean` one byte,
 *   `string` and `json` length-prefixed UTF-8). An event the schema does not describe exactly (an
 *   unknown type, a missing or extra field, a value of another kind) travels as JSON, so the
 *   schema changes speed, never what arrives. Measured in bench/bus.bench.ts, it is what makes
 *   the cross-thread path several times faster than postMessage.
 */
import { InvalidEventError, InvalidOptionsError } from '../errors.ts'
import type { BusEvent } from './event-bus.ts'

/** The kinds of field a schema can declare. */
export type FieldKind = 'number' | 'int32' | 'uint32' | 'boolean' | 'string' | 'json'

/**
 * Event types and their fields (besides `type`), for the binary fast path. Plain data, so it
 * travels in the ring's handle and every attached thread decodes the same way.
 *
 * @example
 * ```ts
 * const schema: EventSchema = { tick: { n: 'number' }, order: { id: 'string', lines: 'json' } }
 * ```
 */
export type EventSchema = Readonly<Record<string, Readonly<Record<string, FieldKind>>>>

const KINDS: readonly FieldKind[] = ['number', 'int32', 'uint32', 'boolean', 'string', 'json']
const NUMBER = 0
const INT32 = 1
const UINT32 = 2
const BOOLEAN = 3
const STRING = 4
// 5 is 'json' (KINDS): the switches below handle it in their default case, so it needs no name.
/** The type index of an event that travels as JSON text. */
const AS_JSON = 0xffff

/** A growable buffer of packed records that the encoders append to. */
export class Records {
  bytes = new Uint8Array(64 * 1024)
  view = new DataView(this.bytes.buffer)
  /** Bytes used. */
  length = 0
  private readonly encoder = new TextEncoder()

  /** Makes room for `n` more bytes. */
  reserve(n: number): void {
    if (this.length + n <= this.bytes.length) return
    const bigger = new Uint8Array(Math.max(this.bytes.length * 2, this.length + n))
    bigger.set(this.bytes.subarray(0, this.length))
    this.bytes = bigger
    this.view = new DataView(bigger.buffer)
  }

  /** Appends the UTF-8 of `text` (no length); returns its byte length. */
  text(text: string): number {
    const n = text.length
    // UTF-8 takes at most 3 bytes per UTF-16 unit.
    this.reserve(3 * n)
    const bytes = this.bytes
    const at = this.length
    // Most event text is ASCII: copy it directly and hand the rest to the encoder.
    let i = 0
    for (; i < n; i++) {
      const c = text.charCodeAt(i)
      if (c >= 0x80) break
      bytes[at + i] = c
    }
    const written = i === n ? n : i + this.encoder.encodeInto(text.slice(i), bytes.subarray(at + i)).written
    this.length = at + written
    return written
  }

  /** Appends a `u32` length and the UTF-8 of `text`. */
  string(text: string): void {
    this.reserve(4)
    const at = this.length
    this.length += 4
    this.view.setUint32(at, this.text(text), true)
  }
}

/** A batch codec: one implementation per ring, chosen from its handle. */
export interface RingCodec<E extends BusEvent> {
  /** Appends one record per event to `records`; throws INVALID_EVENT (then nothing may be sent). */
  encode(events: readonly E[], records: Records, slotSize: number): void
  /** Decodes `used` bytes of packed records; `bytes[used]` may be overwritten. */
  decode(bytes: Uint8Array, used: number): E[]
}

function checkShape(event: BusEvent): void {
  if (event === null || typeof event !== 'object' || typeof event.type !== 'string') {
    throw new InvalidEventError('an event must be an object with a string type')
  }
}

function tooLarge(type: string, length: number, max: number): InvalidEventError {
  return new InvalidEventError(`an event of type "${type}" encodes to ${length} bytes; the slot size is ${max}`)
}

function stringify(value: unknown): string {
  try {
    return JSON.stringify(value)
  } catch (error) {
    throw new InvalidEventError(`events must be JSON-serialisable: ${error instanceof Error ? error.message : String(error)}`)
  }
}

/** Every event as JSON: one stringify and one parse per batch. */
export class JsonCodec<E extends BusEvent> implements RingCodec<E> {
  private readonly decoder = new TextDecoder()
  private scratch = new Records()

  encode(events: readonly E[], records: Records, slotSize: number): void {
    for (const event of events) checkShape(event)
    if (events.length === 0) return
    const scratch = this.scratch
    scratch.length = 0
    const written = scratch.text(stringify(events))
    const bytes = scratch.bytes
    records.reserve(written + 4 * events.length)
    const r = records.bytes
    let header = records.length
    let out = header + 4
    let depth = 0
    let inString = false
    let escaped = false
    let index = 0
    const close = () => {
      const length = out - header - 4
      if (length > slotSize) throw tooLarge(events[index]!.type, length, slotSize)
      records.view.setUint32(header, length, true)
      index++
    }
    // Bytes [1, written - 1) are the events, separated by top-level commas.
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
        close()
        header = out
        out += 4
        continue
      }
      r[out++] = b
    }
    close()
    records.length = out
  }

  decode(bytes: Uint8Array, used: number): E[] {
    // Each 4-byte length becomes "[   " or ",   ", turning the records into one JSON array.
    let offset = 0
    let separator = 0x5b
    while (offset < used) {
      const len = bytes[offset]! | (bytes[offset + 1]! << 8) | (bytes[offset + 2]! << 16) | (bytes[offset + 3]! << 24)
      bytes[offset] = separator
      bytes[offset + 1] = 0x20
      bytes[offset + 2] = 0x20
      bytes[offset + 3] = 0x20
      separator = 0x2c
      offset += 4 + len
    }
    bytes[used] = 0x5d
    return JSON.parse(this.decoder.decode(bytes.subarray(0, used + 1))) as E[]
  }
}

interface TypeEntry {
  name: string
  index: number
  keys: string[]
  kinds: number[]
}

/** Checks a schema from options; throws INVALID_OPTIONS. */
export function validateSchema(schema: unknown): EventSchema {
  if (schema === null || typeof schema !== 'object' || Array.isArray(schema)) {
    throw new InvalidOptionsError('schema must be an object of event types')
  }
  const types = Object.keys(schema)
  if (types.length >= AS_JSON) throw new InvalidOptionsError(`a schema holds at most ${AS_JSON - 1} event types`)
  for (const type of types) {
    const fields = (schema as Record<string, unknown>)[type]
    if (fields === null || typeof fields !== 'object' || Array.isArray(fields)) {
      throw new InvalidOptionsError(`schema.${type} must be an object of field kinds`)
    }
    for (const [key, kind] of Object.entries(fields)) {
      if (key === 'type') throw new InvalidOptionsError(`schema.${type} must not declare "type"; it is always a string`)
      if (!KINDS.includes(kind as FieldKind)) {
        throw new InvalidOptionsError(`schema.${type}.${key} must be one of ${KINDS.join(', ')}`)
      }
    }
  }
  return schema as EventSchema
}

/** Declared types as binary records, everything else as JSON (see the file comment). */
export class SchemaCodec<E extends BusEvent> implements RingCodec<E> {
  private readonly types = new Map<string, TypeEntry>()
  private readonly byIndex: TypeEntry[] = []
  private readonly decoder = new TextDecoder()

  constructor(schema: EventSchema) {
    for (const [name, fields] of Object.entries(schema)) {
      const entry: TypeEntry = {
        name,
        index: this.byIndex.length,
        keys: Object.keys(fields),
        kinds: Object.values(fields).map((kind) => KINDS.indexOf(kind)),
      }
      this.types.set(name, entry)
      this.byIndex.push(entry)
    }
  }

  encode(events: readonly E[], records: Records, slotSize: number): void {
    for (const event of events) {
      checkShape(event)
      const start = records.length
      records.reserve(6)
      records.length += 4
      const entry = this.types.get(event.type)
      if (entry === undefined || !this.writeFields(event as unknown as Record<string, unknown>, entry, records)) {
        records.length = start + 4
        records.reserve(2)
        records.view.setUint16(records.length, AS_JSON, true)
        records.length += 2
        records.text(stringify(event))
      }
      const length = records.length - start - 4
      if (length > slotSize) throw tooLarge(event.type, length, slotSize)
      records.view.setUint32(start, length, true)
    }
  }

  /** Writes the binary form; false (with garbage written) when the event does not fit the entry. */
  private writeFields(event: Record<string, unknown>, entry: TypeEntry, records: Records): boolean {
    const { keys, kinds } = entry
    let own = 0
    for (const key in event) if (Object.hasOwn(event, key)) own++
    if (own !== keys.length + 1) return false
    records.reserve(2 + 8 * keys.length)
    records.view.setUint16(records.length, entry.index, true)
    records.length += 2
    for (let i = 0; i < keys.length; i++) {
      const value = event[keys[i]!]
      switch (kinds[i]) {
        case NUMBER:
          // JSON would turn NaN and the infinities into null; leave those to the JSON path.
          if (typeof value !== 'number' || !Number.isFinite(value)) return false
          records.reserve(8)
          records.view.setFloat64(records.length, value, true)
          records.length += 8
          break
        case INT32:
          if (typeof value !== 'number' || (value | 0) !== value) return false
          records.reserve(4)
          records.view.setInt32(records.length, value, true)
          records.length += 4
          break
        case UINT32:
          if (typeof value !== 'number' || value >>> 0 !== value) return false
          records.reserve(4)
          records.view.setUint32(records.length, value, true)
          records.length += 4
          break
        case BOOLEAN:
          if (typeof value !== 'boolean') return false
          records.reserve(1)
          records.bytes[records.length++] = value ? 1 : 0
          break
        case STRING:
          if (typeof value !== 'string') return false
          records.string(value)
          break
        default: {
          const json = value === undefined ? undefined : stringify(value)
          // A function or symbol: JSON drops the key, and so must we.
          if (json === undefined) return false
          records.string(json)
        }
      }
    }
    return true
  }

  decode(bytes: Uint8Array, used: number): E[] {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    const events: E[] = []
    let at = 0
    while (at < used) {
      const end = at + 4 + view.getUint32(at, true)
      const index = view.getUint16(at + 4, true)
      at += 6
      if (index === AS_JSON) {
        events.push(JSON.parse(this.decoder.decode(bytes.subarray(at, end))) as E)
        at = end
        continue
      }
      const { name, keys, kinds } = this.byIndex[index]!
      const event: Record<string, unknown> = { type: name }
      for (let i = 0; i < keys.length; i++) {
        let value: unknown
        switch (kinds[i]) {
          case NUMBER:
            value = view.getFloat64(at, true)
            at += 8
            break
          case INT32:
            value = view.getInt32(at, true)
            at += 4
            break
          case UINT32:
            value = view.getUint32(at, true)
            at += 4
            break
          case BOOLEAN:
            value = bytes[at++] === 1
            break
          default: {
            const length = view.getUint32(at, true)
            const text = this.text(bytes, at + 4, length)
            at += 4 + length
            value = kinds[i] === STRING ? text : JSON.parse(text)
          }
        }
        event[keys[i]!] = value
      }
      events.push(event as unknown as E)
      at = end
    }
    return events
  }

  private text(bytes: Uint8Array, at: number, length: number): string {
    // Short ASCII strings are cheaper to build than to run through the decoder.
    if (length <= 16) {
      let text = ''
      for (let i = at; i < at + length; i++) {
        const c = bytes[i]!
        if (c >= 0x80) return this.decoder.decode(bytes.subarray(at, at + length))
        text += String.fromCharCode(c)
      }
      return text
    }
    return this.decoder.decode(bytes.subarray(at, at + length))
  }
}
