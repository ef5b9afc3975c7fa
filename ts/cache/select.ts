/**
 * Chooses the map implementation once per process (DESIGN.md section 4): the native HAMT when the
 * addon loads and exports it, the TypeScript twin otherwise or when RINGSTATE_NATIVE=0 (and
 * NATIVE_UNAVAILABLE when RINGSTATE_NATIVE=1 and the addon cannot be loaded).
 *
 * @module
 */
import { loadNative } from '../native/index.ts'
import { typescriptBackend, type CacheBackend } from './backend.ts'
import type { StateCodec } from './codec.ts'
import { nativeBackend } from './native-backend.ts'

/** The backend a new StateCache uses; the addon is loaded (or not) once, by `loadNative`. */
export function selectBackend<S>(codec: StateCodec<S>): CacheBackend<S> {
  const addon = loadNative()
  return addon !== null && typeof addon.HamtMap === 'function' ? nativeBackend(addon, codec) : typescriptBackend(codec)
}
