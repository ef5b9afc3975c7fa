/**
 * What the native addon (`crates/ringstate-node`) exports, as TypeScript sees it.
 *
 * Each binding file of the addon adds its members here (the ring and the HAMT extend
 * {@link NativeAddon}); the shapes must match the Rust `register` functions exactly.
 */

/** The addon's exports. */
export interface NativeAddon {
  /** The crate version the addon was built from (equals the package version). */
  version(): string
  /** An empty persistent HAMT version (crates/hamt); see {@link NativeHamtMap}. */
  HamtMap: {
    new (): NativeHamtMap
    /** Versions created and dropped (released or collected) so far, process-wide. */
    stats(): NativeObjectStats
  }
  /** Decodes the crates/hamt byte format; throws `SNAPSHOT_CORRUPT` on bad input. */
  hamtFromBytes(bytes: Uint8Array): NativeHamtMap
  /**
   * Creates a cross-thread byte ring (crates/ring `ByteRing`) in process-global memory and returns
   * its id, valid in every thread. `block` rings refuse like `error`; the caller waits.
   * Throws RangeError `INVALID_OPTIONS` for a bad capacity or slot size.
   */
  ringCreate(slotSize: number, capacity: number, overrun: 'drop-oldest' | 'block' | 'error'): number
  /** Writes packed records (u32 LE length, bytes) from `records[0, length)`; returns how many went in. */
  ringWrite(id: number, records: Uint8Array, length: number): number
  /** Reads packed records into `out` while a whole slot fits; returns the bytes used. */
  ringRead(id: number, out: Uint8Array): number
  /** `[published, processed, dropped, pending]`. */
  ringMetrics(id: number): Float64Array
  /** Frees the ring for every thread; later calls with its id throw `STORE_CLOSED`. */
  ringRelease(id: number): boolean
  /** Adds a reference (one per attached JavaScript object); false when the ring is gone. */
  ringRetain(id: number): boolean
  /** Gives a reference back; frees the ring (returning true) when it was the last. */
  ringDrop(id: number): boolean
  /** How many rings the process-global registry holds (leak tests). */
  ringCount(): number
}

/**
 * The test build of the addon (`node scripts/build-native.mjs --test-exports`, cargo feature
 * `test-exports`): the published addon plus test-only probes. Loaded by the addon's own tests
 * only (ts/native/test-addon.ts), never by {@link NativeAddon} users.
 */
export interface NativeTestAddon extends NativeAddon {
  /** Test-only probes of the Node-API layer; see {@link NativeDiagnostics}. */
  diagnostics: NativeDiagnostics
}

/** Creation and finalization counts of one kind of native object. */
export interface NativeObjectStats {
  created: number
  dropped: number
}

/** A wrapped native object (test-only): an integer owned by Rust. */
export interface NativeCounter {
  /** Adds one and returns the new value. */
  increment(): number
  /** A new Counter with the same value, created from native code. */
  fork(): NativeCounter
  /** Calls `callback` with `this` while native code holds the object (re-entrancy probe). */
  visit(callback: () => unknown): unknown
  readonly value: number
}

/**
 * Exports that exist only so the smoke tests can exercise every conversion and boundary rule of
 * the Node-API layer under Bun, Node and Deno. No ringstate feature uses them.
 */
export interface NativeDiagnostics {
  echoNumber(x: number): number
  /** Throws RangeError `NATIVE_INVALID_ARGUMENT` unless `x` is an integer in the i32 range. */
  echoInt32(x: number): number
  echoUint32(x: number): number
  /** Safe integers only (|x| <= 2^53 - 1). */
  echoInt64(x: number): number
  echoBigInt64(x: bigint): bigint
  echoBigUint64(x: bigint): bigint
  echoString(s: string): string
  echoBoolean(b: boolean): boolean
  echoOptionalNumber(x?: number | null): number | undefined
  makeUndefined(): undefined
  makeNull(): null
  /** `typeof`, with `"null"` for null. */
  typeOf(value: unknown): string
  /** A new array with the same elements. */
  echoArray<T>(items: readonly T[]): T[]
  /** A new object with those of `names` that `source` has. */
  copyProperties(source: object, names: readonly string[]): Record<string, unknown>
  /** Sum of every argument (exercises calls with more than 8 arguments). */
  sumArgs(...numbers: number[]): number
  /** Calls `fn(...args)` from native code; exceptions pass through unchanged. */
  callFunction<R>(fn: (...args: any[]) => R, ...args: unknown[]): R
  echoInt8Array(a: Int8Array): Int8Array
  echoUint8Array(a: Uint8Array): Uint8Array
  echoInt16Array(a: Int16Array): Int16Array
  echoUint16Array(a: Uint16Array): Uint16Array
  echoInt32Array(a: Int32Array): Int32Array
  echoUint32Array(a: Uint32Array): Uint32Array
  echoFloat32Array(a: Float32Array): Float32Array
  echoFloat64Array(a: Float64Array): Float64Array
  echoBigInt64Array(a: BigInt64Array): BigInt64Array
  echoBigUint64Array(a: BigUint64Array): BigUint64Array
  /** Sums the array in place (zero-copy read). */
  sumFloat64Array(a: Float64Array): number
  /** Fills the array in place (zero-copy write). */
  fillInt32Array(a: Int32Array, value: number): void
  echoArrayBuffer(buffer: ArrayBuffer): ArrayBuffer
  /** Whether native code sees the array's memory as shared (a SharedArrayBuffer) and so copies it. */
  isShared(a: Uint8Array): boolean
  /**
   * Wraps `object` as another addon would (`napi_wrap` with a pointer that is not ours, no type
   * tag) and returns it: a foreign object every native method must refuse.
   */
  wrapForeign<T extends object>(object: T): T
  Counter: { new (start?: number): NativeCounter; /** A Counter at 0, made by a static method. */ zero(): NativeCounter }
  counterStats(): NativeObjectStats
  /** An ArrayBuffer over native memory (`len` bytes of `fill`), freed when collected. */
  externalBuffer(len: number, fill?: number): ArrayBuffer
  /** An external buffer native code keeps a handle on, to read back what JavaScript wrote. */
  registeredExternalBuffer(len: number): { id: number; buffer: ArrayBuffer }
  /** A copy of the registered buffer's bytes, read by native code. */
  readExternal(id: number): Uint8Array
  /** Drops native code's handle; returns whether it held one. */
  releaseExternal(id: number): boolean
  externalStats(): NativeObjectStats
  /** Throws `new <kind>(message)` with `code`. */
  throwError(kind: 'Error' | 'TypeError' | 'RangeError', code: string, message: string): never
  /** Panics in Rust; arrives as an Error with code `NATIVE_PANIC`. */
  panic(message: string): never
  /** Adds `n` to a process-global counter (shared by every thread) and returns the new total. */
  sharedCounterAdd(n: number): number
}

/**
 * One immutable version of the native HAMT (crates/hamt), string keys to byte values. Versions
 * share structure; each is freed when collected.
 */
export interface NativeHamtMap {
  /** A copy of the value bytes under `key`. */
  get(key: string): Uint8Array | undefined
  /**
   * The length of the value under `key` (-1 when absent), copied into `out` when it fits;
   * cheaper than `get` because no buffer is created.
   */
  getInto(key: string, out: Uint8Array): number
  has(key: string): boolean
  readonly size: number
  /**
   * A new version with a batch of changes applied, all or nothing (one call per transaction).
   * Records: `1`, varint key length, key, varint value length, value (set) or `0`, varint key
   * length, key (remove). Throws `NATIVE_INVALID_ARGUMENT` on a malformed buffer (and then leaves
   * this version usable). With `consume`, this version is released and its nodes are edited in
   * place instead of copied: for a caller that would release it right after anyway.
   */
  withChanges(changes: Uint8Array, consume?: boolean): NativeHamtMap
  /** The whole version in the crates/hamt byte format, as an ArrayBuffer over native memory. */
  toBytes(): ArrayBuffer
  /**
   * Frees this version now instead of when it is collected (nodes other versions share stay).
   * Any later call on it throws `NATIVE_INVALID_ARGUMENT`; releasing twice is harmless.
   */
  release(): void
}
