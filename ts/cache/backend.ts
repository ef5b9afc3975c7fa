/**
 * The one interface a state cache talks to, with a pure-TypeScript implementation over
 * {@link HamtMap}. The native implementation (crates/hamt through the addon) has the same shape;
 * `selectBackend` chooses between them once, so there is no per-call branch.
 *
 * @module
 */
import type { StateCodec } from './codec.ts'
import { HamtMap, fromBytes, toBytes } from './hamt.ts'

/** One immutable version of the entity map. */
export interface MapVersion<S> {
  readonly size: number
  get(id: string): S | undefined
  has(id: string): boolean
  /** Visits every entry in the HAMT's deterministic order. */
  forEach(fn: (state: S, id: string) => void): void
}

/**
 * One transaction's edits over a base version. Its base is never changed: dropping a draft
 * is how a rolled-back transaction is forgotten, `commit` is how it becomes the next version.
 */
export interface Draft<S> {
  /** The state of `id` with this draft's edits so far applied. */
  get(id: string): S | undefined
  /**
   * Replaces the state of `id` by `fn(current state, arg)`; undefined deletes it. If `fn` throws,
   * the draft is unchanged.
   */
  update<A>(id: string, fn: (state: S | undefined, arg: A) => S | undefined, arg: A): void
  /**
   * Freezes the edits into a new version; the draft cannot be used afterwards. `consumeBase` says
   * the caller drops the base right after (and nobody else holds it): the backend may then build
   * the new version out of the base's memory, and the base must not be used again.
   */
  commit(consumeBase?: boolean): MapVersion<S>
}

/** Builds versions. */
export interface CacheBackend<S> {
  /** 'native' or 'typescript', for diagnostics and benchmarks. */
  readonly kind: 'native' | 'typescript'
  empty(): MapVersion<S>
  /** A draft over `base`; its edits cross to native code at most once, at `commit`. */
  edit(base: MapVersion<S>): Draft<S>
  /** The version in the crates/hamt byte format, values encoded by the codec. */
  toBytes(version: MapVersion<S>): Uint8Array
  /** Inverse of `toBytes`; SNAPSHOT_CORRUPT on bad input. */
  fromBytes(bytes: Uint8Array): MapVersion<S>
  /**
   * Frees `version` now rather than at garbage collection, for a version its owner drops and
   * never handed out; the version must not be used afterwards. A no-op where the GC frees
   * versions promptly (the TypeScript twin).
   */
  release(version: MapVersion<S>): void
}

/**
 * The pure-TypeScript backend: states are kept as JavaScript values, encoded only for snapshots.
 * A draft is a transient HAMT: the first edit under a node copies it, later edits of the same
 * transaction change the copy in place, so a transaction costs one path copy per touched node.
 */
export function typescriptBackend<S>(codec: StateCodec<S>): CacheBackend<S> {
  return {
    kind: 'typescript',
    empty: () => HamtMap.empty<S>(),
    edit(base) {
      const draft = (base as HamtMap<S>).transient()
      return {
        get: (id) => draft.get(id),
        update: (id, fn, arg) => void draft.update(id, fn, arg),
        // A transient already edits in place every node it owns, so consuming the base adds nothing.
        commit: () => draft.persistent(),
      }
    },
    toBytes: (version) => toBytes(version as HamtMap<S>, codec.encode),
    fromBytes: (bytes) => fromBytes(bytes, codec.decode),
    release: () => {},
  }
}
