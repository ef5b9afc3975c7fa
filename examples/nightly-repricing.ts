/**
 * Runtime example "nightly re-pricing" (`batch` over `fromIterable`): a bounded job.
 *
 * Each night the catalog (read from the store as an async iterable) goes through a program: every
 * product asks a competitor-price service for a quote (a command); the quote comes back as a
 * message and may decide a new price; a new price is written to the store (another command,
 * appending `PriceChanged` with an id per night and product, so a rerun of the same night writes
 * nothing twice) and reported back as a third message. `batch` returns only when the catalog is
 * exhausted and every quote and every price change, results of results included, is done; `view`
 * runs once, with the night's summary.
 *
 * Run: bun examples/nightly-repricing.ts [store URL]   (default memory:; try sqlite:./data/prices.db)
 */
import { openStore, type EventStore } from '../ts/index.ts'
import { batch, fromIterable, type Cmd, type Program } from '../ts/runtime/index.ts'
import { exampleUrl } from './_run.ts'

export type PricingEvents = {
  ProductListed: { sku: string; cost: number; price: number }
  PriceChanged: { sku: string; from: number; to: number; night: string }
}

type Msg =
  | { kind: 'product'; sku: string; cost: number; price: number }
  | { kind: 'quote'; sku: string; competitor: number | undefined }
  | { kind: 'repriced'; sku: string; from: number; to: number }

export interface Night {
  /** The products seen, by sku, with their price as of now. */
  products: Record<string, { cost: number; price: number }>
  quoted: number
  changes: { sku: string; from: number; to: number }[]
}

const MIN_MARGIN = 1.15
const MAX_RISE = 1.1

/** The competitor-price service: an effect, so a command. Deterministic for the example. */
async function fetchCompetitorPrice(sku: string, signal: AbortSignal): Promise<number | undefined> {
  signal.throwIfAborted()
  await new Promise((resolve) => setTimeout(resolve, 1))
  const quotes: Record<string, number> = { 'mug-01': 7.49, 'lamp-02': 41, 'desk-03': 260, 'pen-04': 1.2 }
  return quotes[sku]
}

/** Undercut the competitor by a cent, never below cost plus the margin, never up by more than 10%. */
export function decidePrice(cost: number, price: number, competitor: number | undefined): number {
  if (competitor === undefined) return price
  const floor = Math.ceil(cost * MIN_MARGIN * 100) / 100
  const target = Math.round((competitor - 0.01) * 100) / 100
  const capped = Math.min(target, Math.floor(price * MAX_RISE * 100) / 100)
  return Math.max(floor, capped)
}

export function repricing(store: EventStore<PricingEvents>, night: string): Program<Night, Msg> {
  const quote = (sku: string): Cmd<Msg> => async ({ signal }) => ({
    kind: 'quote',
    sku,
    competitor: await fetchCompetitorPrice(sku, signal),
  })
  const write = (sku: string, from: number, to: number): Cmd<Msg> => async () => {
    await store.append({ type: 'PriceChanged', tags: [`sku:${sku}`], data: { sku, from, to, night }, id: `reprice:${night}:${sku}` })
    return { kind: 'repriced', sku, from, to }
  }
  return {
    init: () => [{ products: {}, quoted: 0, changes: [] }],
    update: (msg, night) => {
      switch (msg.kind) {
        case 'product':
          return [{ ...night, products: { ...night.products, [msg.sku]: { cost: msg.cost, price: msg.price } } }, [quote(msg.sku)]]
        case 'quote': {
          const product = night.products[msg.sku]!
          const price = decidePrice(product.cost, product.price, msg.competitor)
          return [{ ...night, quoted: night.quoted + 1 }, price === product.price ? [] : [write(msg.sku, product.price, price)]]
        }
        case 'repriced':
          return [{
            ...night,
            products: { ...night.products, [msg.sku]: { ...night.products[msg.sku]!, price: msg.to } },
            changes: [...night.changes, { sku: msg.sku, from: msg.from, to: msg.to }],
          }]
      }
    },
    view: (night) => {
      console.log(`  ${Object.keys(night.products).length} products, ${night.quoted} quotes, ${night.changes.length} price changes`)
      for (const { sku, from, to } of night.changes) console.log(`    ${sku.padEnd(8)} ${from.toFixed(2).padStart(7)} -> ${to.toFixed(2)}`)
    },
  }
}

/** The catalog as of tonight: each product's listing, with its latest price applied. */
async function* catalog(store: EventStore<PricingEvents>): AsyncGenerator<Msg> {
  const products = new Map<string, { cost: number; price: number }>()
  for await (const event of store.read([{ types: ['ProductListed', 'PriceChanged'] }])) {
    if (event.type === 'ProductListed') products.set(event.data.sku, { cost: event.data.cost, price: event.data.price })
    else products.get(event.data.sku)!.price = event.data.to
  }
  for (const [sku, { cost, price }] of products) yield { kind: 'product', sku, cost, price }
}

export async function main(url = exampleUrl()): Promise<Night[]> {
  console.log(`Nightly re-pricing, batch over fromIterable (store: ${url.slice(0, url.indexOf(':') + 1)})`)
  const store = await openStore<PricingEvents>(url)
  try {
    const listings = [
      { sku: 'mug-01', cost: 4, price: 8.5 },
      { sku: 'lamp-02', cost: 30, price: 39 },
      { sku: 'desk-03', cost: 180, price: 249 },
      { sku: 'pen-04', cost: 1.1, price: 1.5 },
      { sku: 'rug-05', cost: 60, price: 99 },
    ]
    await store.append(listings.map((data) => ({ type: 'ProductListed' as const, tags: [`sku:${data.sku}`], data, id: `list:${data.sku}` })))
    const nights: Night[] = []
    for (const night of ['2026-12-06', '2026-12-07']) {
      console.log(`  night of ${night}:`)
      const { model, processed } = await batch(repricing(store, night), fromIterable(catalog(store)))
      console.log(`  (${processed} messages processed)`)
      nights.push(model)
    }
    return nights
  } finally {
    await store.close()
  }
}

if (import.meta.main) await main()
