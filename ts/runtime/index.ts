/**
 * The Elm-style program runtime (DESIGN.md section 7, after go-state).
 *
 * A program is `init`, `update` and `view` over a model; every effect is a command, whose result
 * is a message. Three modes, as in go-state:
 * - `run(program, source)`: until the source ends, `stop()` or the signal aborts.
 * - `batch(program, source)`: until quiescence (the source had nothing more when it began, and no
 *   command result, or result of a result, is pending); `view` once.
 * - `aggregate(program, { name, key, store, query })`: one model per key, hydrated from and saved to
 *   a snapshot holding model and position together, written only when the whole batch succeeded.
 *
 * Sources: `inbox` (bounded, in memory), `fromIterable`, `fromBus` (at most once) and `fromStore`
 * (durable; exactly-once outputs, appended with the checkpoint in one write; replay on restart).
 * One delivery at a time: the next is taken only once the previous one is committed; a failure
 * before the commit rolls it back (at least once). Replay turns commands off and must compute the
 * same model, which is why time enters as messages (`cmd.delay`) and never through the clock.
 *
 * @example
 * import { openStore } from 'ringstate'
 * import { fromStore, run } from 'ringstate/runtime'
 * type Ev = { OrderPlaced: { total: number }; ReceiptSent: { total: number } }
 * const store = await openStore<Ev>('sqlite:./shop.db')
 * const receipts = run({
 *   init: () => [0],
 *   update: (event, sent) => event.type === 'OrderPlaced'
 *     ? [sent, [() => ({ type: 'ReceiptSent', data: { total: event.data.total } })]]
 *     : [sent + 1],
 * }, fromStore(store, [{ types: ['OrderPlaced', 'ReceiptSent'] }], { name: 'receipts' }))
 * // later: await receipts.stop(); const { model, position, reason } = await receipts.done
 */
export type * from './types.ts'
export { run, batch } from './run.ts'
export { cmd } from './cmd.ts'
export { inbox, Inbox, type InboxOptions, type PutOptions } from './inbox.ts'
export { fromIterable, IterableSource } from './iterable.ts'
export { fromBus, BusSource, type FromBusOptions } from './bus.ts'
export { fromStore, StoreSource, type FromStoreOptions } from './store.ts'
export { aggregate, type AggregateOptions, type AggregateResult, type ModelCodec } from './aggregate.ts'
