/**
 * Typed events (DESIGN.md 2.2), checked twice: `tsc --noEmit` (part of `npm test`) holds every
 * `@ts-expect-error` line below to a real type error — an expectation that stops failing is itself
 * an error — and bun runs the same code against a memory store, so the types describe what
 * actually happens.
 */
import { expect, test } from 'bun:test'
import { EventBus } from '../bus/index.ts'
import { StateCache } from '../cache/index.ts'
import { execute } from './execute.ts'
import { openStore } from './open.ts'
import { project } from './project.ts'
import type { EventOf, HandlerProjector, SequencedEvent } from './types.ts'

type Shop = {
  OrderPlaced: { total: number }
  OrderShipped: { carrier: string }
}

test('a typed store accepts its own events and narrows what it reads by type', async () => {
  const store = await openStore<Shop>('memory:')
  try {
    await store.append({ type: 'OrderPlaced', tags: ['order:1'], data: { total: 30 } })
    await store.append([
      { type: 'OrderPlaced', tags: ['order:2'], data: { total: 12 } },
      { type: 'OrderShipped', tags: ['order:1'], data: { carrier: 'dhl' } },
    ])
    let total = 0
    const carriers: string[] = []
    for await (const event of store.read([{ types: ['OrderPlaced', 'OrderShipped'] }])) {
      if (event.type === 'OrderPlaced') total += event.data.total
      else {
        carriers.push(event.data.carrier)
        // @ts-expect-error a shipped order has no total
        void event.data.total
      }
    }
    expect({ total, carriers }).toEqual({ total: 42, carriers: ['dhl'] })

    const events: EventOf<Shop>[] = await store.query('all')
    expect(events.map((event) => event.type)).toEqual(['OrderPlaced', 'OrderPlaced', 'OrderShipped'])
  } finally {
    await store.close()
  }
})

test('the event map is a compile-time contract: the store itself stores any valid event', async () => {
  const store = await openStore<Shop>('memory:')
  try {
    // @ts-expect-error an event type the map does not name
    await store.append({ type: 'OrderLost', data: {} })
    // @ts-expect-error data of another type
    await store.append({ type: 'OrderPlaced', data: { carrier: 'ups' } })
    // @ts-expect-error an append needs a type
    await expect(store.append({ data: { total: 1 } })).rejects.toMatchObject({ code: 'INVALID_EVENT' })
    expect((await store.query('all')).map((event) => event.type as string)).toEqual(['OrderLost', 'OrderPlaced'])
  } finally {
    await store.close()
  }
})

test('a projector written as handlers per type derives its query and types its states', async () => {
  const store = await openStore<Shop>('memory:')
  try {
    await store.append({ type: 'OrderPlaced', tags: ['customer:c1'], data: { total: 5 } })
    await store.append({ type: 'OrderPlaced', tags: ['customer:c2'], data: { total: 7 } })
    await store.append({ type: 'OrderShipped', tags: ['customer:c1'], data: { carrier: 'dhl' } })

    const { states, condition } = await store.project({
      spent: { initial: 0, tags: ['customer:c1'], when: { OrderPlaced: (sum, event) => sum + event.data.total } },
      shipped: {
        initial: [] as string[],
        when: { OrderShipped: (list, event) => [...list, event.data.carrier] },
      },
    })
    const spent: number = states.spent
    const shipped: string[] = states.shipped
    // @ts-expect-error the state of `spent` is a number
    const notAString: string = states.spent
    void notAString
    expect({ spent, shipped }).toEqual({ spent: 5, shipped: ['dhl'] })
    expect(condition).toEqual({
      failIfEventsMatch: [{ types: ['OrderPlaced'], tags: ['customer:c1'] }, { types: ['OrderShipped'] }],
      after: 3n,
    })

    const byHand: HandlerProjector<number, Shop> = {
      initial: 0,
      // @ts-expect-error OrderShipped has no total
      when: { OrderShipped: (sum, event) => sum + event.data.total },
    }
    void byHand
  } finally {
    await store.close()
  }
})

test('a handler map whose handler is not a function is refused, never ignored', async () => {
  const store = await openStore('memory:')
  try {
    // The cast stands for untyped JavaScript callers: TypeScript callers cannot write this.
    const bad = { broken: { initial: 0, when: { OrderPlaced: 'not a function' } } } as never
    await expect(project(store, bad)).rejects.toMatchObject({ code: 'INVALID_QUERY' })
  } finally {
    await store.close()
  }
})

test('execute takes the typed store and checks the events a handler returns', async () => {
  const store = await openStore<Shop>('memory:')
  try {
    const result = await execute(store, { type: 'PlaceOrder' }, async ({ project }) => {
      const { placed } = await project({ placed: { initial: 0, when: { OrderPlaced: (n: number) => n + 1 } } })
      return { type: 'OrderPlaced', tags: ['order:9'], data: { total: placed + 1 } }
    })
    expect(result.count).toBe(1)
    // @ts-expect-error a handler may only return the store's event types
    await execute(store, { type: 'Bad' }, () => ({ type: 'Nope', data: 1 }))
  } finally {
    await store.close()
  }
})

test('bus.on narrows the handler to the event of its type', () => {
  type AppEvent = { type: 'user-created'; id: string } | { type: 'user-deleted'; id: string; reason: string }
  const bus = new EventBus<AppEvent>({ capacity: 8 })
  const reasons: string[] = []
  bus.on('user-deleted', (event) => reasons.push(event.reason))
  // @ts-expect-error user-created has no reason
  bus.on('user-created', (event) => reasons.push(event.reason))
  // @ts-expect-error not an event type of this bus
  bus.on('user-renamed', () => {})
  bus.publish({ type: 'user-deleted', id: 'u1', reason: 'asked' })
  bus.drain()
  expect(reasons).toEqual(['asked'])
})

test('untyped stores keep data as unknown', async () => {
  const store = await openStore('memory:')
  try {
    await store.append({ type: 'Anything', data: { x: 1 } })
    const [event] = await store.query('all')
    const read: SequencedEvent | undefined = event
    // @ts-expect-error data is unknown until the caller narrows it
    void read?.data.x
    expect(read?.data).toEqual({ x: 1 })
  } finally {
    await store.close()
  }
})

test('a state cache over an event map sees events narrowed by type', async () => {
  type Bank = { Deposited: { amount: number }; Closed: { reason: string } }
  const store = await openStore<Bank>('memory:')
  try {
    const balances = new StateCache<{ balance: number }, Bank>({
      name: 'balances',
      key: (event) => event.tags.find((tag) => tag.startsWith('account:')),
      apply: (state, event) => {
        if (event.type === 'Closed') return undefined
        // @ts-expect-error a deposit has no reason
        void event.data.reason
        return { balance: (state?.balance ?? 0) + event.data.amount }
      },
    })
    store.attach(balances)
    await store.append({ type: 'Deposited', tags: ['account:1'], data: { amount: 5 } })
    await store.append({ type: 'Deposited', tags: ['account:1'], data: { amount: 7 } })
    expect(balances.get('account:1')).toEqual({ balance: 12 })
    await store.append({ type: 'Closed', tags: ['account:1'], data: { reason: 'moved' } })
    expect(balances.has('account:1')).toBe(false)
  } finally {
    await store.close()
  }
})
