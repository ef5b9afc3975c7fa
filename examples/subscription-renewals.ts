/**
 * Runtime example "subscription renewals" (`run` over `fromStore`): a long-running workflow.
 *
 * Subscriptions renew every 30 days. Time enters as `DayStarted` events (a clock appends them),
 * never read inside `update`. On each day the program charges every subscription that is due
 * through a payment gateway (a command); the charge's outcome comes back as an event the command
 * yields (`RenewalCharged` / `RenewalFailed`), appended exactly once with the program's checkpoint.
 * Two failed charges in a row cancel the subscription (another command, another event).
 *
 * The second half restarts the workflow: the model is rebuilt by replaying the log with commands
 * off (nobody is charged twice), then it goes on live with the next day.
 *
 * Run: bun examples/subscription-renewals.ts [store URL]   (default memory:; try sqlite:./data/renewals.db)
 */
import { openStore, type EventOf, type EventStore, type InputOf, type Query } from '../ts/index.ts'
import { fromStore, run, type Cmd, type Program, type RunHandle } from '../ts/runtime/index.ts'
import { exampleUrl } from './_run.ts'

export type RenewalEvents = {
  SubscriptionStarted: { customer: string; price: number; day: number }
  DayStarted: { day: number }
  RenewalCharged: { customer: string; day: number; amount: number }
  RenewalFailed: { customer: string; day: number; reason: string }
  SubscriptionCancelled: { customer: string; day: number }
}
type Event = EventOf<RenewalEvents>
type Output = InputOf<RenewalEvents>

const PERIOD_DAYS = 30
const MAX_FAILURES = 2

interface Subscription {
  price: number
  renewsOn: number
  failures: number
  /** A charge is in flight: a second DayStarted must not charge again before its outcome is in. */
  charging: boolean
  active: boolean
}

export interface Renewals {
  today: number
  subscriptions: Record<string, Subscription>
  revenue: number
}

/** The payment gateway: a side effect, so it lives in a command. Cards ending "declined" fail. */
async function chargeCard(customer: string, amount: number, signal: AbortSignal): Promise<string | undefined> {
  signal.throwIfAborted()
  await new Promise((resolve) => setTimeout(resolve, 1))
  return customer.endsWith('declined') ? 'card declined' : undefined
}

function charge(customer: string, amount: number, day: number): Cmd<Output> {
  return async ({ signal }) => {
    const declined = await chargeCard(customer, amount, signal)
    const tags = [`customer:${customer}`]
    return declined === undefined
      ? { type: 'RenewalCharged', tags, data: { customer, day, amount } }
      : { type: 'RenewalFailed', tags, data: { customer, day, reason: declined } }
  }
}

function update(event: Event, model: Renewals): [Renewals, Cmd<Output>[]?] {
  const subscriptions = model.subscriptions
  switch (event.type) {
    case 'SubscriptionStarted': {
      const { customer, price, day } = event.data
      const started: Subscription = { price, renewsOn: day + PERIOD_DAYS, failures: 0, charging: false, active: true }
      return [{ ...model, subscriptions: { ...subscriptions, [customer]: started } }]
    }
    case 'DayStarted': {
      const day = event.data.day
      const due = Object.entries(subscriptions).filter(([, s]) => s.active && !s.charging && s.renewsOn <= day)
      const next = { ...subscriptions }
      for (const [customer, s] of due) next[customer] = { ...s, charging: true }
      return [{ ...model, today: day, subscriptions: next }, due.map(([customer, s]) => charge(customer, s.price, day))]
    }
    case 'RenewalCharged': {
      const { customer, amount } = event.data
      const s = subscriptions[customer]!
      const renewed = { ...s, renewsOn: s.renewsOn + PERIOD_DAYS, failures: 0, charging: false }
      return [{ ...model, revenue: model.revenue + amount, subscriptions: { ...subscriptions, [customer]: renewed } }]
    }
    case 'RenewalFailed': {
      const { customer, day } = event.data
      const s = subscriptions[customer]!
      const failed = { ...s, failures: s.failures + 1, charging: false }
      const cancel: Cmd<Output>[] =
        failed.failures >= MAX_FAILURES
          ? [() => ({ type: 'SubscriptionCancelled', tags: [`customer:${customer}`], data: { customer, day } })]
          : []
      return [{ ...model, subscriptions: { ...subscriptions, [customer]: failed } }, cancel]
    }
    case 'SubscriptionCancelled': {
      const s = subscriptions[event.data.customer]!
      return [{ ...model, subscriptions: { ...subscriptions, [event.data.customer]: { ...s, active: false } } }]
    }
  }
}

export const renewals: Program<Renewals, Event, Output> = {
  init: () => [{ today: 0, subscriptions: {}, revenue: 0 }],
  update,
}

const ALL: Query = [
  { types: ['SubscriptionStarted', 'DayStarted', 'RenewalCharged', 'RenewalFailed', 'SubscriptionCancelled'] },
]

/** Waits until the program has processed the whole log (its outputs included) and nothing is in flight. */
async function settled(store: EventStore<RenewalEvents>, handle: RunHandle<Renewals>): Promise<void> {
  const deadline = Date.now() + 10_000
  for (;;) {
    const head = await store.head()
    const busy = Object.values(handle.model().subscriptions).some((s) => s.charging)
    if (handle.position() === head && !busy) return
    if (Date.now() > deadline) throw new Error('the workflow did not settle within 10 s')
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}

/** The clock: a new day is an event. Ids make a rerun on a persistent store append nothing twice. */
function startDay(store: EventStore<RenewalEvents>, day: number) {
  return store.append({ type: 'DayStarted', data: { day }, id: `day:${day}` })
}

function report(label: string, model: Renewals): void {
  const rows = Object.entries(model.subscriptions)
    .map(([customer, s]) => `${customer} ${s.active ? `renews on day ${s.renewsOn}` : 'cancelled'}${s.failures ? ` (${s.failures} failed)` : ''}`)
    .join('; ')
  console.log(`  ${label}: day ${model.today}, revenue ${model.revenue}: ${rows}`)
}

export async function main(url = exampleUrl()): Promise<Renewals> {
  console.log(`Subscription renewals, run over fromStore (store: ${url.slice(0, url.indexOf(':') + 1)})`)
  const store = await openStore<RenewalEvents>(url)
  try {
    await store.append(
      ['ada', 'bob', 'carol-declined'].map((customer, i) => ({
        type: 'SubscriptionStarted' as const,
        tags: [`customer:${customer}`],
        data: { customer, price: 10 + 5 * i, day: 0 },
        id: `start:${customer}`,
      })),
    )
    const worker = run(renewals, fromStore(store, ALL, { name: 'renewals' }))
    for (const day of [30, 60]) {
      await startDay(store, day)
      await settled(store, worker)
      report(`after day ${day}`, worker.model())
    }
    await worker.stop()
    const charged = worker.metrics().commandsRun
    console.log(`  stopped at position ${worker.position()}; ${charged} commands ran`)

    // A restart: replay to the checkpoint with commands off, then live.
    const restarted = run(renewals, fromStore(store, ALL, { name: 'renewals' }))
    await settled(store, restarted)
    const { replayed, commandsRun, commandsSkipped } = restarted.metrics()
    console.log(`  restarted: ${replayed} events replayed, ${commandsSkipped} commands skipped, ${commandsRun} run`)
    await startDay(store, 90)
    await settled(store, restarted)
    report('after day 90', restarted.model())
    await restarted.stop()
    return restarted.model()
  } finally {
    await store.close()
  }
}

if (import.meta.main) await main()
