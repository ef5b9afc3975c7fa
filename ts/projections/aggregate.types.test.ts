/**
 * Type checks (run by `tsc --noEmit`): a mistyped handler key, wrong data to `record`, or a type the
 * aggregate does not know are compile errors. The test body also runs, so the file is not empty.
 */
import { expect, test } from 'bun:test'
import { defineAggregate } from './aggregate.ts'

type Events = { Deposited: { amount: number }; Withdrawn: { amount: number } }

const Account = defineAggregate<{ balance: number }, Events>({
  name: 'account',
  initial: { balance: 0 },
  apply: {
    Deposited: (state, data) => ({ balance: state.balance + data.amount }),
    Withdrawn: (state, data) => ({ balance: state.balance - data.amount }),
  },
})

defineAggregate<{ balance: number }, Events>({
  name: 'typo',
  initial: { balance: 0 },
  apply: {
    Deposited: (state) => state,
    Withdrawn: (state) => state,
    // @ts-expect-error a handler key that is not an event type of the map
    Withdrawnn: (state: { balance: number }) => state,
  },
})

// @ts-expect-error a missing handler (every event type of the map needs one)
defineAggregate<{ balance: number }, Events>({ name: 'partial', initial: { balance: 0 }, apply: { Deposited: (s) => s } })

export async function typedUse(store: Parameters<typeof Account.load>[0]) {
  await Account.execute(store, 'a1', (ctx) => {
    ctx.record('Withdrawn', { amount: 1 })
    // @ts-expect-error wrong data for the type
    ctx.record('Withdrawn', { amount: 'one' })
    // @ts-expect-error an unknown event type
    ctx.record('Closed', {})
    const balance: number = ctx.state.balance
    return balance
  })
  await Account.spec()
    .given([{ type: 'Deposited', data: { amount: 1 } }])
    .when(() => undefined)
    // @ts-expect-error wrong data in an expected event
    .thenEvents([{ type: 'Deposited', data: { amount: '1' } }])
}

test('the typed aggregate definition above is usable', () => {
  expect(Account.types).toEqual(['Deposited', 'Withdrawn'])
})
