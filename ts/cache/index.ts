/**
 * `ringstate/cache`: the entity state cache over a persistent HAMT.
 *
 * @module
 */
export { StateCache, CacheView, type StateCacheOptions, type RestoreResult } from './state-cache.ts'
export { jsonCodec, type StateCodec } from './codec.ts'
export type { CacheImplementation } from './select.ts'
export { HamtMap, TransientHamtMap, hashKey, toBytes, fromBytes, type KeyHasher } from './hamt.ts'
