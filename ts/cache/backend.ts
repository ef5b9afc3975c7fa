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

/** Builds versions. `changes` maps an id to its new state, or to undefined to delete it. */
export interface CacheBackend<S> {
  /** 'native' or 'typescript', for diagnostics and benchmarks. */
  readonly kind: 'native' | 'typescript'
  empty(): MapVersion<S>
  /** A new version with one transaction's changes; crosses to native code at most once. */
  apply(base: MapVersion<S>, changes: ReadonlyMap<string, S | undefined>): MapVersion<S>
  /** The version in the crates/hamt byte format, values encoded by the codec. */
  toBytes(version: MapVersion<S>): Uint8Array
  /** Inverse of `toBytes`; SNAPSHOT_CORRUPT on bad input. */
  fromBytes(bytes: Uint8Array): MapVersion<S>
}

/** The pure-TypeScript backend: states are kept as JavaScript values, encoded only for snapshots. */
export function typescriptBackend<S>(codec: StateCodec<S>): CacheBackend<S> {
  return {
    kind: 'typescript',
    empty: () => HamtMap.empty<S>(),
    apply(base, changes) {
      const next = (base as HamtMap<S>).transient()
      for (const [id, state] of changes) {
        if (state === undefined) next.delete(id)
        else next.set(id, state)
      }
      return next.persistent()
    },
    toBytes: (version) => toBytes(version as HamtMap<S>, codec.encode),
    fromBytes: (bytes) => fromBytes(bytes, codec.decode),
  }
}
