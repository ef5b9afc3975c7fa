/**
 * DCB example "prevent duplicate submissions": a form (an order) carries an idempotency token
 * made by the client. Submitting it twice must not place two orders. Two ways are shown:
 *
 * - `placeOrder`, the DCB way: the decision reads the events tagged with the token and refuses
 *   a second submission with a clear reason ("already placed"), also under concurrency.
 * - `placeOrderWithEventId`, the store's own idempotency: the token is the event id, so a retry
 *   (say, after a lost acknowledgement) silently returns the first result and writes nothing.
 *
 * Run: bun examples/prevent-duplicate-submissions.ts [store URL]   (default memory:)
 */
import { execute, type EventStore, type ExecuteOptions } from '../ts/index.ts'
import { attempt, runExample } from './_run.ts'

export interface Order {
  customer: string
  items: string[]
}

/** The events of this example and their data. */
export type OrderEvents = { OrderPlaced: Order }
type Store = EventStore<OrderEvents>

/** Place an order unless one with this idempotency token was placed already. */
export function placeOrder(store: Store, idempotencyToken: string, order: Order, options?: ExecuteOptions) {
  return execute(store, { type: 'PlaceOrder', data: { idempotencyToken, ...order } }, async ({ project }) => {
    const { placed } = await project({
      placed: { initial: false, tags: [`idempotency:${idempotencyToken}`], when: { OrderPlaced: () => true } },
    })
    if (placed) throw new Error(`an order with token ${idempotencyToken} was already placed`)
    return { type: 'OrderPlaced', tags: [`idempotency:${idempotencyToken}`, `customer:${order.customer}`], data: order }
  }, options)
}

/** Place an order whose event id is the token: a repeat returns the first result. */
export function placeOrderWithEventId(store: Store, idempotencyToken: string, order: Order) {
  return store.append({ type: 'OrderPlaced', id: idempotencyToken, tags: [`customer:${order.customer}`], data: order })
}

if (import.meta.main) {
  await runExample<OrderEvents>('Prevent duplicate submissions', async (store) => {
    const order = { customer: 'ada', items: ['book'] }
    await attempt('submit order with token t-1', () => placeOrder(store, 't-1', order))
    await attempt('submit order with token t-1 again', () => placeOrder(store, 't-1', order))
    const outcomes = await Promise.allSettled(Array.from({ length: 5 }, () => placeOrder(store, 't-2', order)))
    console.log(`  5 concurrent submissions with token t-2: ${outcomes.filter((o) => o.status === 'fulfilled').length} placed`)
    await attempt('append with event id t-3', () => placeOrderWithEventId(store, 't-3', order))
    await attempt('append with event id t-3 again (same result, nothing written)', () => placeOrderWithEventId(store, 't-3', order))
    console.log(`  orders stored: ${(await store.query([{ types: ['OrderPlaced'] }])).length}`)
  })
}
