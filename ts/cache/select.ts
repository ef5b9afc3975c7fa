/**
 * Chooses a state cache's map implementation once, at construction (DESIGN.md section 4). The
 * default is the TypeScript twin: it wins bulk apply and reads (see the note in state-cache.ts).
 * `'native'` asks for crates/hamt through the addon, which wins snapshot and restore; it is used
 * when the addon loads and exports it, and the twin otherwise (RINGSTATE_NATIVE=0 forces the twin;
 * RINGSTATE_NATIVE=1 makes a missing addon NATIVE_UNAVAILABLE, thrown by `loadNative`).
 *
 * @module
 */
import { loadNative } from '../native/index.ts'
import { typescriptBackend, type CacheBackend } from './backend.ts'
import type { StateCodec } from './codec.ts'
import { nativeBackend } from './native-backend.ts'

/** Which map a StateCache asks for; see {@link selectBackend}. */
export type CacheImplementation = 'typescript' | 'native'

/** The backend a new StateCache uses. */
export function selectBackend<S>(codec: StateCodec<S>, wanted: CacheImplementation = 'typescript'): CacheBackend<S> {
  if (wanted === 'typescript') return typescriptBackend(codec)
  const addon = loadNative()
  return addon !== null && typeof addon.HamtMap === 'function' ? nativeBackend(addon, codec) : typescriptBackend(codec)
}
