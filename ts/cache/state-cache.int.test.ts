import { afterAll, describe, expect, test } from 'bun:test'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ErrorCode } from '../errors.ts'
import { MemoryStore } from '../store/memory/index.ts'
import { openSqliteStore } from '../store/sqlite/index.ts'
import type { EventStore } from '../store/types.ts'
import { StateCache } from './state-cache.ts'

interface Account { balance: number; deposits: number }

function accounts(): StateCache<Account> {
  return new StateCache<Account>({
    name: 'accounts',
    key: (e) => e.tags.find((t) => t.startsWith('account:')),
    apply: (state, e) => {
      if (e.type === 'Poison') throw new Error('this event cannot be projected')
      if (e.type === 'Closed') return undefined
      const amount = (e.data as { amount: number }).amount
      return { balance: (state?.balance ?? 0) + amount, deposits: (state?.deposits ?? 0) + 1 }
    },
  })
}

const deposit = (account: number, amount: number) => ({ type: 'Deposited', tags: [`account:${account}`], data: { amount } })

/** The state a fresh cache gets from replaying the store's whole log. */
async function fullReplay(store: EventStore): Promise<Map<string, Account>> {
  const cache = accounts()
  await cache.restore({ loadSnapshot: async () => undefined, read: store.read.bind(store) })
  return new Map(cache.view().entries())
}

const dirs: string[] = []
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true })
})

interface Backend {
  name: string
  /** A fresh store; `reopen` opens a second instance over the same data where the backend can. */
  open(): Promise<{ store: EventStore; reopen: () => Promise<EventStore> }>
}

const backends: Backend[] = [
  {
    name: 'memory',
    async open() {
      const store = new MemoryStore()
      return { store, reopen: async () => store }
    },
  },
  {
    name: 'sqlite',
    async open() {
      const dir = mkdtempSync(join(tmpdir(), 'ringstate-cache-'))
      dirs.push(dir)
      const file = join(dir, 'events.db')
      return { store: await openSqliteStore(file), reopen: () => openSqliteStore(file) }
    },
  },
]

for (const backend of backends) {
  describe(`StateCache attached to the ${backend.name} store`, () => {
    test('appends update the cache as they commit', async () => {
      const { store } = await backend.open()
      const cache = accounts()
      store.attach(cache)
      const { position } = await store.append([deposit(1, 5), deposit(2, 3), deposit(1, 1)])
      expect(cache.get('account:1')).toEqual({ balance: 6, deposits: 2 })
      expect(cache.size).toBe(2)
      expect(cache.position).toBe(position)
      await store.close()
    })

    test('a failed conditional append leaves the cache exactly as it was', async () => {
      const { store } = await backend.open()
      const cache = accounts()
      store.attach(cache)
      await store.append(deposit(1, 5))
      const before = cache.view()
      const condition = { failIfEventsMatch: [{ tags: ['account:1'] }], after: 0n }
      await expect(store.append([deposit(1, 100), deposit(9, 1)], condition)).rejects.toMatchObject({
        code: ErrorCode.APPEND_CONDITION_FAILED,
      })
      expect(cache.view()).toBe(before)
      expect(cache.has('account:9')).toBe(false)
      expect(cache.get('account:1')).toEqual({ balance: 5, deposits: 1 })
      await store.close()
    })

    test('an append whose projection throws fails alone and leaves no trace in the cache', async () => {
      const { store } = await backend.open()
      const cache = accounts()
      store.attach(cache)
      const results = await Promise.allSettled([
        store.append(deposit(1, 5)),
        store.append([deposit(2, 7), { type: 'Poison', tags: ['account:2'] }]),
        store.append(deposit(3, 1)),
      ])
      expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled'])
      expect(cache.has('account:2')).toBe(false)
      expect(cache.get('account:1')).toEqual({ balance: 5, deposits: 1 })
      expect(cache.get('account:3')).toEqual({ balance: 1, deposits: 1 })
      expect(cache.position).toBe(await store.head())
      expect(new Map(cache.view().entries())).toEqual(await fullReplay(store))
      await store.close()
    })

    test('snapshot, more appends, a new store instance and restore give the state of a full replay', async () => {
      const { store, reopen } = await backend.open()
      const cache = accounts()
      store.attach(cache)
      for (let batch = 0; batch < 20; batch++) {
        await store.append(Array.from({ length: 50 }, (_, i) => deposit((batch * 50 + i) % 97, i)))
      }
      expect(await cache.snapshot(store)).toBe(1000n)
      for (let i = 0; i < 30; i++) await store.append(i % 7 === 0 ? { type: 'Closed', tags: [`account:${i}`] } : deposit(i, 2))
      const second = backend.name === 'memory' ? store : await reopen()
      if (second !== store) await store.close()
      const restored = accounts()
      second.attach(restored)
      const result = await restored.restore(second)
      expect(result).toEqual({ snapshotPosition: 1000n, replayed: 30, position: 1030n })
      expect(new Map(restored.view().entries())).toEqual(await fullReplay(second))
      const before = restored.get('account:1')!
      await second.append(deposit(1, 1))
      expect(restored.get('account:1')).toEqual({ balance: before.balance + 1, deposits: before.deposits + 1 })
      await second.close()
    })
  })
}
