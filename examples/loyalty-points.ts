/**
 * Runtime example "loyalty points" (`aggregate`): one model per customer, kept in a snapshot.
 *
 * Purchases earn a point per whole unit spent; passing 100 and 500 points moves a customer to the
 * silver and gold tiers, and an upgrade issues a reward (a command yielding a `RewardIssued` event,
 * appended with an id per customer and position, so a rerun appends nothing twice). Each
 * `aggregate` call hydrates the customer's model from its snapshot `runtime:loyalty:<customer>`,
 * reads only the purchases after it, and saves model and position together, once, only when the
 * whole batch succeeded: a purchase that breaks `update` leaves the snapshot exactly as it was.
 *
 * Run: bun examples/loyalty-points.ts [store URL]   (default memory:; try sqlite:./data/loyalty.db)
 */
import { openStore, type EventOf, type EventStore, type InputOf } from '../ts/index.ts'
import { aggregate, type Cmd, type Program } from '../ts/runtime/index.ts'
import { exampleUrl, reason } from './_run.ts'

export type LoyaltyEvents = {
  PurchaseMade: { customer: string; amount: number }
  RewardIssued: { customer: string; tier: Tier }
}
type Tier = 'bronze' | 'silver' | 'gold'

export interface Loyalty {
  points: number
  tier: Tier
  purchases: number
}

function tierOf(points: number): Tier {
  return points >= 500 ? 'gold' : points >= 100 ? 'silver' : 'bronze'
}

export const loyalty: Program<Loyalty, EventOf<LoyaltyEvents>, InputOf<LoyaltyEvents>> = {
  init: () => [{ points: 0, tier: 'bronze', purchases: 0 }],
  update: (event, model) => {
    if (event.type !== 'PurchaseMade') return [model]
    const { customer, amount } = event.data
    if (!(amount > 0)) throw new Error(`purchase ${event.position} has a non-positive amount ${amount}`)
    const points = model.points + Math.floor(amount)
    const tier = tierOf(points)
    const reward: Cmd<InputOf<LoyaltyEvents>>[] =
      tier === model.tier ? [] : [() => ({ type: 'RewardIssued', tags: [`customer:${customer}`], data: { customer, tier } })]
    return [{ points, tier, purchases: model.purchases + 1 }, reward]
  },
}

function options(store: EventStore<LoyaltyEvents>, customer: string) {
  return {
    name: 'loyalty',
    key: customer,
    store,
    query: [{ types: ['PurchaseMade'], tags: [`customer:${customer}`] }],
  }
}

function purchase(customer: string, amount: number): InputOf<LoyaltyEvents> {
  return { type: 'PurchaseMade', tags: [`customer:${customer}`], data: { customer, amount } }
}

export async function main(url = exampleUrl()): Promise<Record<string, Loyalty>> {
  console.log(`Loyalty points, aggregate per customer (store: ${url.slice(0, url.indexOf(':') + 1)})`)
  const store = await openStore<LoyaltyEvents>(url)
  const show = async (customer: string, onError?: 'skip') => {
    const { model, position, hydrated } = await aggregate(loyalty, { ...options(store, customer), onError })
    console.log(`  ${customer}: ${model.points} points, ${model.tier}, ${model.purchases} purchases (through position ${position}${hydrated ? ', from its snapshot' : ''})`)
    return model
  }
  try {
    await store.append([purchase('ada', 60), purchase('bob', 20.5), purchase('ada', 45.99), purchase('bob', 12)])
    await show('ada')
    await show('bob')

    await store.append([purchase('ada', 420), purchase('bob', 90)])
    await show('ada')
    await show('bob')

    // A bad purchase breaks update: nothing is saved, the snapshot stays as it was.
    await store.append([purchase('bob', 5), purchase('bob', -3), purchase('bob', 7)])
    const before = await store.loadSnapshot('runtime:loyalty:bob')
    try {
      await show('bob')
    } catch (error) {
      const after = await store.loadSnapshot('runtime:loyalty:bob')
      const same = after?.position === before?.position && Buffer.from(after!.data).equals(Buffer.from(before!.data))
      console.log(`  bob refused: ${reason(error)}; snapshot unchanged: ${same}`)
    }
    // Skipping the bad purchase (counted as an error), the batch goes through and saves once.
    const bob = await show('bob', 'skip')
    const ada = await show('ada')

    const rewards = await store.query([{ types: ['RewardIssued'] }])
    console.log(`  rewards: ${rewards.map((e) => (e.type === 'RewardIssued' ? `${e.data.customer} ${e.data.tier}` : '')).join(', ')}`)
    return { ada, bob }
  } finally {
    await store.close()
  }
}

if (import.meta.main) await main()
