/**
 * The Elm-style program runtime (DESIGN.md section 7, after go-state): `run`, `batch` and
 * `aggregate` a program of `init`/`update`/`view` over a source, with commands for effects.
 */
export type * from './types.ts'
export { run, batch } from './run.ts'
export { cmd } from './cmd.ts'
export { inbox, Inbox, type InboxOptions, type PutOptions } from './inbox.ts'
export { fromIterable, IterableSource } from './iterable.ts'
export { fromBus, BusSource, type FromBusOptions } from './bus.ts'
export { fromStore, StoreSource, type FromStoreOptions } from './store.ts'
export { aggregate, type AggregateOptions, type AggregateResult, type ModelCodec } from './aggregate.ts'
