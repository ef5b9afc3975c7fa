/**
 * Types flow end to end (checked by `tsc --noEmit`; the runtime assertions only keep bun:test
 * from reporting an empty file): messages take the source's type with no cast, store events are
 * narrowed by `event.type`, commands must yield what the sink takes.
 */
import { expect, test } from 'bun:test'
import { EventBus } from '../bus/index.ts'
import { openStore } from '../store/index.ts'
import { aggregate, batch, cmd, fromBus, fromIterable, fromStore, inbox, run } from './index.ts'

type Shop = { OrderPlaced: { total: number }; OrderShipped: { carrier: string } }

test('a store program sees EventOf<E> narrowed by type and must yield InputOf<E>', async () => {
  const store = await openStore<Shop>('memory:')
  const handle = run(
    {
      init: () => [0],
      update: (event, total) => {
        if (event.type === 'OrderPlaced') {
          const n: number = event.data.total
          return [total + n, [() => ({ type: 'OrderShipped' as const, data: { carrier: 'dhl' } })]]
        }
        const carrier: string = event.data.carrier
        // @ts-expect-error an OrderShipped event has no total
        void event.data.total
        return [total + carrier.length]
      },
    },
    fromStore(store, [{ types: ['OrderPlaced'] }], { name: 'shipping' }),
  )
  run(
    {
      init: () => [0],
      // @ts-expect-error a command must yield an event of the map
      update: (_event, n) => [n, [() => ({ type: 'Unknown', data: {} })]],
    },
    fromStore(store, 'all', { name: 'wrong' }),
  )
  await handle.stop()
  await store.close()
  expect(handle.model()).toBe(0)
})

test('aggregate takes its event types from the store', async () => {
  const store = await openStore<Shop>('memory:')
  const result = await aggregate(
    {
      init: () => [{ spent: 0 }],
      update: (event, model) => [event.type === 'OrderPlaced' ? { spent: model.spent + event.data.total } : model],
    },
    { name: 'spend', key: 'c1', store, query: [{ types: ['OrderPlaced'], tags: ['customer:c1'] }] },
  )
  const spent: number = result.model.spent
  expect(spent).toBe(0)
  await store.close()
})

test('in-memory sources give their own message type; results must be of it', async () => {
  const box = () => {
    const made = inbox<{ kind: 'add'; n: number }>({ capacity: 8 })
    made.close()
    return made
  }
  const ok = run({ init: () => [0], update: (msg, sum) => [sum + msg.n, cmd.of({ kind: 'add' as const, n: 1 })] }, box())
  // @ts-expect-error a result must be a message of the inbox
  const wrongResult = run({ init: () => [0], update: (msg, sum) => [sum + msg.n, cmd.of('text')] }, box())
  // @ts-expect-error update must be synchronous
  const notSync = run({ init: () => [0], update: async (msg, sum) => [sum + msg.n] }, box())
  for (const handle of [ok, wrongResult, notSync]) expect((await handle.done).reason).toBe('ended')

  const { model } = await batch({ init: () => [''], update: (word, text) => [text + word] }, fromIterable(['a', 'b']))
  const text: string = model
  expect(text).toBe('ab')
})

test('fromBus narrows to the chosen types and publishes any event of the bus', async () => {
  type Ev = { type: 'placed'; total: number } | { type: 'shipped'; carrier: string }
  const bus = new EventBus<Ev>({ capacity: 8 })
  const source = fromBus(bus, ['placed'])
  const handle = run(
    {
      init: () => [0],
      update: (event, sum) => {
        const total: number = event.total
        return [sum + total, [() => ({ type: 'shipped' as const, carrier: 'ups' })]]
      },
    },
    source,
  )
  source.close()
  expect((await handle.done).model).toBe(0)
  await bus.close()
})
