/**
 * golly eventsource's order example in ringstate terms: an Order aggregate with commands, and an
 * order-summary read model kept by a live projection, partitioned by customer.
 *
 * - The aggregate's boundary is the tag `order:<id>`; `create` refuses an order that exists,
 *   `changeStatus` refuses an unknown, shipped or cancelled one. A retried create with the same
 *   idempotency key returns the first result (run the example twice on a file to see it).
 * - The projection keeps one row per customer (orders, amount, shipped) in a table of the store's
 *   own database (PostgreSQL or SQLite; a Map on memory), upserted once per batch through `ctx.tx`
 *   together with the checkpoint: a crash never leaves the summary ahead of or behind it.
 * - Four partitions by the `customer:` tag: per-customer order is kept, and several processes
 *   running this projection share the partitions through leases.
 *
 * Run: bun examples/orders.ts [store URL]   (default memory:; e.g. sqlite:./data/orders.db)
 */
import { Database } from 'bun:sqlite'
import postgres from 'postgres'
import { defineAggregate, defineProjection, startProjections, type ProjectionContext } from '../ts/index.ts'
import { attempt, exampleUrl, runExample } from './_run.ts'

type OrderEvents = {
  OrderCreated: { customerId: string; amount: number }
  OrderStatusChanged: { status: 'paid' | 'shipped' | 'cancelled' }
}

interface Order {
  customerId: string | undefined
  amount: number
  status: 'none' | 'created' | 'paid' | 'shipped' | 'cancelled'
}

export const Order = defineAggregate<Order, OrderEvents>({
  name: 'order',
  initial: { customerId: undefined, amount: 0, status: 'none' },
  apply: {
    OrderCreated: (_, data) => ({ customerId: data.customerId, amount: data.amount, status: 'created' }),
    OrderStatusChanged: (order, data) => ({ ...order, status: data.status }),
  },
  snapshot: { every: 50, version: 1 },
})

/** CreateOrder: refused when the order exists or the amount is not positive. */
export function createOrder(store: Parameters<typeof Order.execute>[0], id: string, customerId: string, amount: number) {
  return Order.execute(store, id, (ctx) => {
    if (ctx.state.status !== 'none') throw new Error(`order ${id} exists`)
    if (!(amount > 0)) throw new Error('the amount must be positive')
    ctx.record('OrderCreated', { customerId, amount }, { tags: [`customer:${customerId}`] })
  }, { command: { type: 'CreateOrder', data: { id, customerId, amount } }, idempotencyKey: `create-${id}` })
}

/** ChangeOrderStatus: shipped and cancelled orders are final. */
export function changeStatus(store: Parameters<typeof Order.execute>[0], id: string, status: 'paid' | 'shipped' | 'cancelled') {
  return Order.execute(store, id, (ctx) => {
    const { status: current, customerId } = ctx.state
    if (current === 'none') throw new Error(`order ${id} does not exist`)
    if (current === 'shipped' || current === 'cancelled') throw new Error(`order ${id} is ${current}`)
    ctx.record('OrderStatusChanged', { status }, { tags: [`customer:${customerId}`] })
    return `${current} -> ${status}`
  }, { command: { type: 'ChangeOrderStatus', data: { id, status } } })
}

interface Summary {
  orders: number
  amount: number
  shipped: number
}

/** The memory backend's read model (no database to write to). */
const memorySummary = new Map<string, Summary>()
let pgSchema = 'public'

/** The order summary: one row per customer, one upsert per batch. */
export const orderSummary = defineProjection<OrderEvents>({
  name: 'order-summary',
  version: 1,
  query: [{ types: ['OrderCreated', 'OrderStatusChanged'] }],
  partitionBy: { tagPrefix: 'customer:' },
  partitions: 4,
  batchSize: 1000,
  async setup(ctx) {
    const ddl = `(customer_id text PRIMARY KEY, orders integer NOT NULL, amount numeric NOT NULL, shipped integer NOT NULL)`
    if (ctx.backend === 'postgres') {
      pgSchema = ctx.schema
      await ctx.tx.unsafe(`CREATE TABLE IF NOT EXISTS "${ctx.schema}".order_summary_v${ctx.version} ${ddl}`)
    } else if (ctx.backend === 'sqlite') {
      ctx.tx.exec(`CREATE TABLE IF NOT EXISTS order_summary_v${ctx.version} ${ddl}`)
    }
  },
  async handle(events, ctx) {
    // Fold the batch per customer first, so the database sees one row per customer per batch.
    const delta = new Map<string, Summary>()
    for (const event of events) {
      const customer = event.tags.find((t) => t.startsWith('customer:'))!.slice('customer:'.length)
      const row = delta.get(customer) ?? { orders: 0, amount: 0, shipped: 0 }
      if (event.type === 'OrderCreated') {
        row.orders++
        row.amount += event.data.amount
      } else if (event.data.status === 'shipped') {
        row.shipped++
      }
      delta.set(customer, row)
    }
    await upsert(ctx, delta)
  },
})

async function upsert(ctx: ProjectionContext, delta: Map<string, Summary>): Promise<void> {
  const ids = [...delta.keys()]
  const rows = [...delta.values()]
  if (ctx.backend === 'postgres') {
    await ctx.tx.unsafe(
      `INSERT INTO "${ctx.schema}".order_summary_v${ctx.version} AS s (customer_id, orders, amount, shipped)
       SELECT * FROM unnest($1::text[], $2::int[], $3::numeric[], $4::int[])
       ON CONFLICT (customer_id) DO UPDATE SET orders = s.orders + excluded.orders,
         amount = s.amount + excluded.amount, shipped = s.shipped + excluded.shipped`,
      [ids, rows.map((r) => r.orders), rows.map((r) => r.amount), rows.map((r) => r.shipped)] as never[],
    )
  } else if (ctx.backend === 'sqlite') {
    const statement = ctx.tx.query(
      `INSERT INTO order_summary_v${ctx.version} (customer_id, orders, amount, shipped) VALUES (?, ?, ?, ?)
       ON CONFLICT (customer_id) DO UPDATE SET orders = orders + excluded.orders,
         amount = amount + excluded.amount, shipped = shipped + excluded.shipped`,
    )
    rows.forEach((r, i) => statement.run(ids[i]!, r.orders, r.amount, r.shipped))
  } else {
    for (const [id, r] of delta) {
      const row = memorySummary.get(id) ?? { orders: 0, amount: 0, shipped: 0 }
      memorySummary.set(id, { orders: row.orders + r.orders, amount: row.amount + r.amount, shipped: row.shipped + r.shipped })
    }
  }
}

/** Read the summary the way an application would: its own connection to the same database. */
async function readSummary(url: string): Promise<Record<string, Summary>> {
  const out: Record<string, Summary> = {}
  if (url.startsWith('postgres')) {
    const sql = postgres(url, { max: 1, onnotice: () => {} })
    try {
      const rows = await sql.unsafe(`SELECT * FROM "${pgSchema}".order_summary_v1 ORDER BY customer_id`)
      for (const r of rows) out[r.customer_id] = { orders: r.orders, amount: Number(r.amount), shipped: r.shipped }
    } finally {
      await sql.end()
    }
  } else if (url.startsWith('sqlite:')) {
    const db = new Database(url.slice('sqlite:'.length), { readonly: true })
    try {
      const rows = db.query('SELECT * FROM order_summary_v1 ORDER BY customer_id').all() as { customer_id: string; orders: number; amount: number; shipped: number }[]
      for (const r of rows) out[r.customer_id] = { orders: r.orders, amount: r.amount, shipped: r.shipped }
    } finally {
      db.close()
    }
  } else {
    for (const [id, row] of [...memorySummary].sort()) out[id] = row
  }
  return out
}

if (import.meta.main) {
  await runExample('orders: an Order aggregate and an order-summary projection', async (store) => {
    const runner = startProjections(store, [orderSummary], { leaseMs: 5_000 })
    try {
      await attempt('create order-1 (ada, 99.99)', () => createOrder(store, 'order-1', 'ada', 99.99).then((r) => (r.duplicate ? 'already created' : r.state)))
      await attempt('create order-2 (ada, 20)', () => createOrder(store, 'order-2', 'ada', 20).then((r) => (r.duplicate ? 'already created' : r.state)))
      await attempt('create order-3 (bob, 5)', () => createOrder(store, 'order-3', 'bob', 5).then((r) => (r.duplicate ? 'already created' : r.state)))
      await attempt('create order-4 with amount 0', () => createOrder(store, 'order-4', 'bob', 0))
      await attempt('pay order-1', () => changeStatus(store, 'order-1', 'paid').then((r) => r.result))
      await attempt('ship order-1', () => changeStatus(store, 'order-1', 'shipped').then((r) => r.result))
      await attempt('cancel order-1', () => changeStatus(store, 'order-1', 'cancelled'))
      await attempt('ship order-9', () => changeStatus(store, 'order-9', 'shipped'))
      // Read your writes: the summary has every event up to the head.
      await runner.waitFor(await store.head())
      console.log('  summary  ', JSON.stringify(await readSummary(exampleUrl())))
      for (const s of await runner.status()) {
        console.log(`  shard    ${s.name} v${s.version} #${s.partition}: ${s.state}, position ${s.position}, lag ${s.lag}`)
      }
    } finally {
      await runner.stop()
    }
  })
}
