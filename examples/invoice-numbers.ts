/**
 * DCB example "invoice numbers": every invoice gets the next number, with no gaps and no
 * duplicates, even when invoices are created concurrently. The decision model is just "the last
 * number used", read from the InvoiceCreated events; the condition fails when another invoice
 * was created after it, and `execute` then decides again with the new last number.
 *
 * Every creator conflicts with every other one here (a single global sequence is the most
 * contended consistency boundary there is), so `maxAttempts` must cover the number of
 * concurrent creators.
 *
 * Run: bun examples/invoice-numbers.ts [store URL]   (default memory:)
 */
import { execute, type EventStore, type ExecuteOptions, type HandlerProjector } from '../ts/index.ts'
import { runExample } from './_run.ts'

/** The events of this example and their data. */
export type InvoiceEvents = {
  InvoiceCreated: { invoiceNumber: number; customer: string; amount: number }
}

const nextInvoiceNumber: HandlerProjector<number, InvoiceEvents> = {
  initial: 1,
  when: { InvoiceCreated: (_, event) => event.data.invoiceNumber + 1 },
}

/** Create an invoice with the next number; resolves to that number. */
export async function createInvoice(
  store: EventStore<InvoiceEvents>,
  invoice: { customer: string; amount: number },
  options?: ExecuteOptions,
): Promise<number> {
  let invoiceNumber = 0
  await execute(store, { type: 'CreateInvoice', data: invoice }, async ({ project }) => {
    const { next } = await project({ next: nextInvoiceNumber })
    invoiceNumber = next
    return { type: 'InvoiceCreated', tags: [`invoice:${next}`], data: { invoiceNumber: next, ...invoice } }
  }, options)
  return invoiceNumber
}

if (import.meta.main) {
  await runExample<InvoiceEvents>('Invoice numbers', async (store) => {
    console.log(`  invoice ${await createInvoice(store, { customer: 'acme', amount: 100 })} for acme`)
    console.log(`  invoice ${await createInvoice(store, { customer: 'globex', amount: 250 })} for globex`)
    console.log('  10 invoices created concurrently:')
    const numbers = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        createInvoice(store, { customer: `c${i}`, amount: i * 10 }, { maxAttempts: 20, maxDelayMs: 50 }),
      ),
    )
    console.log(`  numbers: ${numbers.sort((a, b) => a - b).join(', ')}`)
    const stored = await store.query([{ types: ['InvoiceCreated'] }])
    const gapless = stored.every((event, i) => event.data.invoiceNumber === i + 1)
    console.log(`  ${stored.length} invoices stored, numbered 1..${stored.length} without gaps: ${gapless}`)
  })
}
