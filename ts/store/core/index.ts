/**
 * The shared store core (DESIGN.md 2.1): the writer (queue, group commit, inline projectors), the
 * tail reader and `follow`, and `CoreStore`, which every backend's store class extends.
 */
export { CoreStore, followShared, readJsonPage, storeStats, type InspectableStore, type JsonPageReader, type JsonPageOptions, type SharedFollower, type StoreStats } from './store.ts'
export { decodeEvent, type AppendOutcome, type BeforeCommit, type EventPage, type EventRecord, type Lane, type QueuedAppend, type StoreBackend } from './backend.ts'
export { jsonPageOf, recordJson } from './event-json.ts'
export type { TailStats } from './tail.ts'
export type { WriterStats } from './writer.ts'
export { toStorageError } from './storage-error.ts'
