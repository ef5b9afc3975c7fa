/**
 * The store-backed rules of section 7, run against every backend: `fromStore` (exactly-once
 * outputs with the checkpoint, replay on restart, batch to the head and through its own outputs)
 * and `aggregate` (hydrate, save only on success, versions).
 */
import { describe, expect, test } from 'bun:test'
import type { AppendOptions, EventStore } from '../store/types.ts'
import { aggregate, batch, fromStore, run, type Cmd, type Program } from './index.ts'
import type { EventOf, InputOf } from '../store/types.ts'

/** Events of a subscription service. */
export type Subs = {
  RenewalDue: { customer: string; plan: string }
  InvoiceIssued: { customer: string; amount: number }
  ReminderSent: { customer: string }
  PurchaseMade: { customer: string; amount: number }
}

const PRICES: Record<string, number> = { basic: 5, pro: 20 }

/** Resolves once `predicate` holds, polling; fails after `ms`. */
export async function until(predicate: () => boolean | Promise<boolean>, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error('condition not reached in time')
    await new Promise((resolve) => setTimeout(resolve, 2))
  }
}

interface Billing {
  due: number
  invoiced: Record<string, number>
}

/** For every RenewalDue, one command issues an invoice; invoices update the model. */
function billing(calls: { count: number }): Program<Billing, EventOf<Subs>, InputOf<Subs>> {
  return {
    init: () => [{ due: 0, invoiced: {} }],
    update: (event, model) => {
      switch (event.type) {
        case 'RenewalDue': {
          const { customer, plan } = event.data
          const issue: Cmd<InputOf<Subs>> = () => {
            calls.count++
            return { type: 'InvoiceIssued', tags: [`customer:${customer}`], data: { customer, amount: PRICES[plan] ?? 0 } }
          }
          return [{ ...model, due: model.due + 1 }, [issue]]
        }
        case 'InvoiceIssued':
          return [{ ...model, invoiced: { ...model.invoiced, [event.data.customer]: (model.invoiced[event.data.customer] ?? 0) + event.data.amount } }]
        default:
          return [model]
      }
    },
  }
}

const renewal = (customer: string, plan = 'basic'): InputOf<Subs> => ({
  type: 'RenewalDue',
  tags: [`customer:${customer}`],
  data: { customer, plan },
})

const QUERY = [{ types: ['RenewalDue', 'InvoiceIssued'] }] as const

/** Registers the cases for one backend; `open` gives a fresh, empty store each time. */
export function describeStoreSource(backend: string, open: () => Promise<EventStore<Subs>>): void {
  describe(`fromStore on ${backend}`, () => {
    test('appends each delivery\'s results with ids <name>:<position>:<i> together with the checkpoint', async () => {
      const store = await open()
      try {
        await store.append([renewal('ada'), renewal('bob', 'pro')])
        const calls = { count: 0 }
        // Every write the runtime makes, to check that outputs and checkpoint travel in one append.
        const appends: { ids: (string | undefined)[]; checkpoint: unknown }[] = []
        const watched = new Proxy(store, {
          get(target, key) {
            const value = Reflect.get(target, key, target)
            if (key !== 'append') return typeof value === 'function' ? value.bind(target) : value
            return (events: InputOf<Subs>[], condition: undefined, options?: AppendOptions) => {
              appends.push({ ids: events.map((e) => e.id), checkpoint: options?.checkpoint })
              return target.append(events, condition, options)
            }
          },
        })
        const handle = run(billing(calls), fromStore(watched, QUERY, { name: 'billing' }))
        await until(() => handle.model().due === 2 && Object.keys(handle.model().invoiced).length === 2)
        await handle.stop()
        expect(appends).toEqual([
          { ids: ['billing:1:0'], checkpoint: { name: 'billing', position: 1n } },
          { ids: ['billing:2:0'], checkpoint: { name: 'billing', position: 2n } },
        ])
        const invoices = await store.query([{ types: ['InvoiceIssued'] }])
        expect(invoices.map((e): [string, unknown] => [e.id, e.data])).toEqual([
          ['billing:1:0', { customer: 'ada', amount: 5 }],
          ['billing:2:0', { customer: 'bob', amount: 20 }],
        ])
        // The checkpoint moved with the outputs (and past the invoices, which produce nothing).
        expect(await store.checkpoint('billing')).toBe(2n)
        expect(handle.position()).toBe(4n)
        expect(calls.count).toBe(2)
      } finally {
        await store.close()
      }
    })

    test('a restart rebuilds the model by replay with no command call, then goes on live', async () => {
      const store = await open()
      try {
        await store.append([renewal('ada'), renewal('bob', 'pro')])
        const first = { count: 0 }
        const one = run(billing(first), fromStore(store, QUERY, { name: 'billing' }))
        await until(() => Object.keys(one.model().invoiced).length === 2)
        await one.stop()
        const before = one.model()

        const second = { count: 0 }
        const views: boolean[] = []
        const program = billing(second)
        const two = run({ ...program, view: (_, { replaying }) => views.push(replaying) }, fromStore(store, QUERY, { name: 'billing' }))
        await until(() => two.metrics().replayed === 4 && two.position() === 4n)
        expect(second.count).toBe(0)
        expect(two.model()).toEqual(before)
        await store.append(renewal('cy', 'pro'))
        await until(() => two.model().invoiced.cy === 20)
        await two.stop()
        expect(second.count).toBe(1)
        expect(views.slice(0, 5)).toEqual([true, true, true, true, true]) // init, the renewals and the invoices
        expect((await store.query([{ types: ['InvoiceIssued'] }])).length).toBe(3)
      } finally {
        await store.close()
      }
    })

    test('a delivery whose commands ran and yielded nothing is committed durably all the same', async () => {
      const store = await open()
      try {
        await store.append([renewal('ada'), renewal('bob')])
        const sent: number[] = []
        const remind: Program<number, EventOf<Subs>, InputOf<Subs>> = {
          init: () => [0],
          update: (event, n) => [n + 1, [() => (sent.push(Number(event.position)), null)]],
        }
        const handle = run(remind, fromStore(store, [{ types: ['RenewalDue'] }], { name: 'reminders' }))
        await until(() => handle.position() === 2n)
        await handle.stop()
        expect(sent).toEqual([1, 2])
        const again = run(remind, fromStore(store, [{ types: ['RenewalDue'] }], { name: 'reminders' }))
        await until(() => again.position() === 2n)
        await again.stop()
        expect(sent).toEqual([1, 2])
        expect(again.metrics()).toMatchObject({ replayed: 2, commandsRun: 0, commandsSkipped: 2 })
      } finally {
        await store.close()
      }
    })

    test('an abort during a command rolls back: nothing is appended and the next run runs it again', async () => {
      const store = await open()
      try {
        await store.append([renewal('ada'), renewal('bob')])
        const controller = new AbortController()
        let waiting = false
        const stuck: Program<number, EventOf<Subs>, InputOf<Subs>> = {
          init: () => [0],
          update: (event, n) => [
            n + 1,
            event.position === 2n
              ? [({ signal }) => new Promise<null>((_, reject) => {
                  waiting = true
                  signal.addEventListener('abort', () => reject(signal.reason))
                })]
              : [() => renewal(`${event.position}-follow-up`)],
          ],
        }
        const handle = run(stuck, fromStore(store, [{ types: ['RenewalDue'], tags: ['customer:ada'] }, { types: ['RenewalDue'], tags: ['customer:bob'] }], { name: 'abortable' }), { signal: controller.signal })
        await until(() => waiting)
        controller.abort()
        expect(await handle.done).toEqual({ model: 1, position: 1n, reason: 'aborted' })
        expect(handle.metrics()).toMatchObject({ committed: 1, rolledBack: 1 })
        expect(await store.checkpoint('abortable')).toBe(1n)
        expect((await store.query('all')).map((e) => e.id)).toEqual([expect.any(String), expect.any(String), 'abortable:1:0'])

        const calls = { count: 0 }
        const again = run(
          { init: () => [0], update: (event, n) => [n + 1, [() => (calls.count++, null)]] },
          fromStore(store, [{ types: ['RenewalDue'], tags: ['customer:ada'] }, { types: ['RenewalDue'], tags: ['customer:bob'] }], { name: 'abortable' }),
        )
        await until(() => again.position() === 2n)
        await again.stop()
        expect(calls.count).toBe(1) // position 2 only; position 1 is replayed
      } finally {
        await store.close()
      }
    })

    test('one source serves a later run: it starts over from the log and the checkpoint', async () => {
      const store = await open()
      try {
        await store.append(renewal('ada'))
        const calls = { count: 0 }
        const source = fromStore(store, QUERY, { name: 'again' })
        const first = await batch(billing(calls), source)
        await store.append(renewal('bob'))
        const second = await batch(billing(calls), source)
        expect(first.model).toEqual({ due: 1, invoiced: { ada: 5 } })
        expect(second.model).toEqual({ due: 2, invoiced: { ada: 5, bob: 5 } })
        expect(calls.count).toBe(2)
      } finally {
        await store.close()
      }
    })

    test('batch ends at the head it began with, after processing its own outputs', async () => {
      const store = await open()
      try {
        await store.append([renewal('ada'), renewal('bob', 'pro'), renewal('cy')])
        const calls = { count: 0 }
        const result = await batch(billing(calls), fromStore(store, QUERY, { name: 'nightly' }))
        expect(result.model).toEqual({ due: 3, invoiced: { ada: 5, bob: 20, cy: 5 } })
        expect(result.processed).toBe(6)
        expect(result.position).toBe(6n)
        expect(calls.count).toBe(3)
        // A second batch has nothing new: replay only.
        const again = await batch(billing(calls), fromStore(store, QUERY, { name: 'nightly' }))
        expect(again.model).toEqual(result.model)
        expect(calls.count).toBe(3)
      } finally {
        await store.close()
      }
    })

    test('init commands run once: their results are appended under position 0', async () => {
      const store = await open()
      try {
        const program: Program<number, EventOf<Subs>, InputOf<Subs>> = {
          init: () => [0, [() => renewal('first')]],
          update: (event, n) => [n + 1],
        }
        const one = run(program, fromStore(store, [{ types: ['RenewalDue'] }], { name: 'starter' }))
        await until(() => one.model() === 1)
        await one.stop()
        const two = run(program, fromStore(store, [{ types: ['RenewalDue'] }], { name: 'starter' }))
        await until(() => two.model() === 1 && two.metrics().replayed === 1)
        await two.stop()
        expect((await store.query('all')).map((e) => e.id)).toEqual(['starter:0:0'])
        expect(two.metrics().commandsSkipped).toBe(1)
      } finally {
        await store.close()
      }
    })
  })

  describe(`aggregate on ${backend}`, () => {
    interface Loyalty {
      points: number
      purchases: number
    }
    const loyalty: Program<Loyalty, EventOf<Subs>, InputOf<Subs>> = {
      init: () => [{ points: 0, purchases: 0 }],
      update: (event, model) => {
        if (event.type !== 'PurchaseMade') return [model]
        if (event.data.amount < 0) throw new Error('a purchase cannot be negative')
        return [{ points: model.points + Math.floor(event.data.amount), purchases: model.purchases + 1 }]
      },
    }
    const purchase = (customer: string, amount: number): InputOf<Subs> => ({
      type: 'PurchaseMade',
      tags: [`customer:${customer}`],
      data: { customer, amount },
    })
    const options = (store: EventStore<Subs>, key: string) => ({
      name: 'loyalty',
      key,
      store,
      query: [{ types: ['PurchaseMade'], tags: [`customer:${key}`] }],
    })

    test('keeps one model per key in a snapshot and hydrates from it', async () => {
      const store = await open()
      try {
        await store.append([purchase('c1', 10.5), purchase('c2', 3), purchase('c1', 4)])
        const first = await aggregate(loyalty, options(store, 'c1'))
        expect(first).toEqual({ key: 'c1', model: { points: 14, purchases: 2 }, position: 3n, hydrated: false })
        await store.append(purchase('c1', 1))
        const views: Loyalty[] = []
        const second = await aggregate({ ...loyalty, view: (m) => views.push(m) }, options(store, 'c1'))
        expect(second).toEqual({ key: 'c1', model: { points: 15, purchases: 3 }, position: 4n, hydrated: true })
        expect(views).toEqual([{ points: 15, purchases: 3 }])
        const snapshot = await store.loadSnapshot('runtime:loyalty:c1')
        expect(snapshot?.position).toBe(4n)
        expect((await aggregate(loyalty, options(store, 'c2'))).model).toEqual({ points: 3, purchases: 1 })
      } finally {
        await store.close()
      }
    })

    test('a failing run saves nothing: the previous snapshot stays as it was', async () => {
      const store = await open()
      try {
        await store.append([purchase('c1', 10), purchase('c1', 5)])
        await aggregate(loyalty, options(store, 'c1'))
        const before = await store.loadSnapshot('runtime:loyalty:c1')
        await store.append([purchase('c1', 7), purchase('c1', -1), purchase('c1', 2)])
        await expect(aggregate(loyalty, options(store, 'c1'))).rejects.toMatchObject({ code: 'RUNTIME_UPDATE_FAILED', position: 4n })
        const after = await store.loadSnapshot('runtime:loyalty:c1')
        expect(after?.position).toBe(before!.position)
        expect(after?.data).toEqual(before!.data)
        // Skipping the bad purchase, the run goes through and saves once.
        const skipped = await aggregate(loyalty, { ...options(store, 'c1'), onError: 'skip' })
        expect(skipped).toEqual({ key: 'c1', model: { points: 24, purchases: 4 }, position: 5n, hydrated: true })
      } finally {
        await store.close()
      }
    })

    test('a snapshot of another version is treated as absent', async () => {
      const store = await open()
      try {
        await store.append([purchase('c1', 10)])
        await aggregate(loyalty, options(store, 'c1'))
        const doubled: Program<Loyalty, EventOf<Subs>, InputOf<Subs>> = {
          init: () => [{ points: 0, purchases: 0 }],
          update: (event, m) => [event.type === 'PurchaseMade' ? { points: m.points + 2 * event.data.amount, purchases: m.purchases + 1 } : m],
        }
        const rebuilt = await aggregate(doubled, { ...options(store, 'c1'), version: 2 })
        expect(rebuilt).toEqual({ key: 'c1', model: { points: 20, purchases: 1 }, position: 1n, hydrated: false })
        expect((await aggregate(doubled, { ...options(store, 'c1'), version: 2 })).hydrated).toBe(true)
      } finally {
        await store.close()
      }
    })
  })
}
