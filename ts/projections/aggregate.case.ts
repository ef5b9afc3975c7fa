/**
 * Aggregate behaviour every backend must show (DESIGN.md 6.1). Called from one test file per
 * backend with a function that opens a fresh, empty store.
 */
import { describe, expect, test } from 'bun:test'
import type { EventStore } from '../store/types.ts'
import { defineAggregate } from './aggregate.ts'
import { PAGE_PER_BOUNDARY } from './shared-reads.ts'

export type AccountEvents = {
  Opened: { owner: string }
  Deposited: { amount: number }
  Withdrawn: { amount: number }
}
export interface AccountState {
  open: boolean
  balance: number
}

/** The account aggregate the cases use (snapshots every 3 events, keeping 2). */
export function accountAggregate(onSnapshotError?: (error: unknown) => void) {
  let applies = 0
  const Account = defineAggregate<AccountState, AccountEvents>({
    name: 'account',
    initial: { open: false, balance: 0 },
    apply: {
      Opened: (state) => {
        applies++
        return { ...state, open: true }
      },
      Deposited: (state, data) => {
        applies++
        return { ...state, balance: state.balance + data.amount }
      },
      Withdrawn: (state, data) => {
        applies++
        return { ...state, balance: state.balance - data.amount }
      },
    },
    snapshot: { every: 3, version: 1, keep: 2, ...(onSnapshotError ? { onError: onSnapshotError } : {}) },
  })
  return { Account, applies: () => applies }
}

/** The account without snapshots, with a state cache of 10 entries. */
function cachedAccount() {
  return defineAggregate<AccountState, AccountEvents>({
    name: 'account',
    initial: { open: false, balance: 0 },
    apply: {
      Opened: (s) => ({ ...s, open: true }),
      Deposited: (s, d) => ({ ...s, balance: s.balance + d.amount }),
      Withdrawn: (s, d) => ({ ...s, balance: s.balance - d.amount }),
    },
    cache: { maxEntries: 10 },
  })
}

/** Withdraw, refusing when the balance is short. */
export function withdraw(amount: number) {
  return (ctx: { state: AccountState; record: (type: 'Withdrawn', data: { amount: number }) => void }) => {
    if (ctx.state.balance < amount) throw new Error('insufficient funds')
    ctx.record('Withdrawn', { amount })
    return ctx.state.balance
  }
}

export function describeAggregate(backend: string, open: () => Promise<EventStore>): void {
  describe(`${backend}: aggregates`, () => {
    test('execute records events under the boundary tag and load folds them back', async () => {
      const store = await open()
      try {
        const { Account } = accountAggregate()
        const first = await Account.execute(store, 'a1', (ctx) => {
          ctx.record('Opened', { owner: 'ada' })
          ctx.record('Deposited', { amount: 100 })
          return ctx.state.balance
        }, { command: { type: 'Open', data: { id: 'a1' } } })
        expect(first).toMatchObject({ state: { open: true, balance: 100 }, version: 2, count: 2, result: 100, duplicate: false })
        expect(first.ids).toHaveLength(2)
        const events = await store.query([{ tags: ['account:a1'] }])
        expect(events.map((e) => [e.type, e.tags])).toEqual([
          ['Opened', ['account:a1']],
          ['Deposited', ['account:a1']],
        ])
        expect(await Account.load(store, 'a1')).toEqual({ id: 'a1', state: { open: true, balance: 100 }, version: 2, position: first.position, exists: true })
        expect(await Account.load(store, 'nobody')).toEqual({ id: 'nobody', state: { open: false, balance: 0 }, version: 0, position: 0n, exists: false })
        const audit = await store.commands()
        expect(audit.map((c) => c.type)).toEqual(['Open'])
      } finally {
        await store.close()
      }
    })

    test('loads that start together share one read of their boundaries, and each folds only its own events', async () => {
      const store = await open()
      try {
        // No snapshots: a snapshot read before each load would end the loads in different turns.
        const Account = defineAggregate<{ balance: number }, { Deposited: { amount: number } }>({
          name: 'account',
          initial: { balance: 0 },
          apply: { Deposited: (state, data) => ({ balance: state.balance + data.amount }) },
        })
        const ids = Array.from({ length: 20 }, (_, i) => `a${i}`)
        await store.append(ids.map((id, i) => ({ type: 'Deposited', tags: [`account:${id}`], data: { amount: i + 1 } })))
        // An event in two boundaries (a transfer between a0 and a1) belongs to both.
        await store.append({ type: 'Deposited', tags: ['account:a0', 'account:a1'], data: { amount: 1000 } })
        await store.append({ type: 'Deposited', tags: ['other:a2'], data: { amount: 5000 } })
        const reads: unknown[] = []
        const counting = new Proxy(store, {
          get(target, key, receiver) {
            const value = Reflect.get(target, key, receiver)
            if (key === 'read') return (...args: unknown[]) => (reads.push(args[0]), (value as Function).apply(target, args))
            return typeof value === 'function' ? value.bind(target) : value
          },
        })
        const loaded = await Promise.all(ids.map((id) => Account.load(counting, id)))
        expect(loaded.map((l) => [l.id, l.state.balance, l.version])).toEqual(
          ids.map((id, i) => [id, i + 1 + (i < 2 ? 1000 : 0), i < 2 ? 2 : 1]),
        )
        // 20 boundaries: one read of 16, one of 4.
        expect(reads.map((query) => (query as unknown[]).length)).toEqual([16, 4])
      } finally {
        await store.close()
      }
    })

    test('a boundary longer than one shared read is read on to its end, beside a short one', async () => {
      const store = await open()
      try {
        const Plain = defineAggregate<{ balance: number }, { Deposited: { amount: number } }>({
          name: 'account',
          initial: { balance: 0 },
          apply: { Deposited: (state, data) => ({ balance: state.balance + data.amount }) },
        })
        // Two boundaries read together: a page of 2 * PAGE_PER_BOUNDARY events, which the long one overflows.
        const long = 2 * PAGE_PER_BOUNDARY + 100
        await store.append(Array.from({ length: long }, (_, i) => ({ type: 'Deposited', tags: ['account:long'], data: { amount: i } })))
        await store.append(Array.from({ length: 3 }, () => ({ type: 'Deposited', tags: ['account:short'], data: { amount: 1 } })))
        await store.append(Array.from({ length: 50 }, () => ({ type: 'Deposited', tags: ['account:long'], data: { amount: 1 } })))
        const [longLoaded, short] = await Promise.all([Plain.load(store, 'long'), Plain.load(store, 'short')])
        expect([longLoaded.version, longLoaded.state.balance]).toEqual([long + 50, ((long - 1) * long) / 2 + 50])
        expect([short.version, short.state.balance]).toEqual([3, 3])
        expect(longLoaded.position).toBe(await store.head())
      } finally {
        await store.close()
      }
    })

    test('record applies at once, so later logic in the same handler sees the new state', async () => {
      const store = await open()
      try {
        const { Account } = accountAggregate()
        const result = await Account.execute(store, 'a1', (ctx) => {
          ctx.record('Deposited', { amount: 30 })
          ctx.record('Deposited', { amount: 20 })
          if (ctx.state.balance !== 50) throw new Error('record did not apply')
          ctx.record('Withdrawn', { amount: 50 })
          return ctx.state.balance
        })
        expect(result.result).toBe(0)
        expect(result.count).toBe(3)
      } finally {
        await store.close()
      }
    })

    test('events of other types carrying the tag neither change the state nor conflict', async () => {
      const store = await open()
      try {
        const { Account } = accountAggregate()
        await Account.execute(store, 'a1', (ctx) => ctx.record('Deposited', { amount: 10 }))
        const loaded = await Account.load(store, 'a1')
        await store.append({ type: 'Audited', tags: ['account:a1'] })
        const result = await Account.execute(store, 'a1', (ctx) => ctx.record('Deposited', { amount: 5 }), {
          expectedVersion: loaded.version,
          maxAttempts: 1,
        })
        expect(result.state.balance).toBe(15)
        expect(result.version).toBe(2)
      } finally {
        await store.close()
      }
    })

    test('a conflicting append re-runs the handler on fresh state and never writes what it computed on stale state', async () => {
      const store = await open()
      try {
        const { Account } = accountAggregate()
        await Account.execute(store, 'a1', (ctx) => ctx.record('Deposited', { amount: 100 }))
        const seen: number[] = []
        let interfered = false
        const result = await Account.execute(store, 'a1', async (ctx) => {
          seen.push(ctx.state.balance)
          if (!interfered) {
            interfered = true
            await store.append({ type: 'Withdrawn', tags: ['account:a1'], data: { amount: 70 } })
          }
          if (ctx.state.balance < 60) throw new Error('insufficient funds')
          ctx.record('Withdrawn', { amount: 60 })
        }, { baseDelayMs: 1 }).catch((error) => error)
        expect(seen).toEqual([100, 30])
        expect(result.code).toBe('COMMAND_FAILED')
        expect(result.cause.message).toBe('insufficient funds')
        expect((await Account.load(store, 'a1')).state.balance).toBe(30)
      } finally {
        await store.close()
      }
    })

    test('a throwing handler writes nothing, and a handler that records nothing writes no audit row', async () => {
      const store = await open()
      try {
        const { Account } = accountAggregate()
        const refused = await Account.execute(store, 'a1', withdraw(10), { command: { type: 'Withdraw' } }).catch((e) => e)
        expect(refused.code).toBe('COMMAND_FAILED')
        const nothing = await Account.execute(store, 'a1', () => 'noop', { command: { type: 'Nothing' } })
        expect(nothing).toMatchObject({ count: 0, ids: [], position: 0n, result: 'noop' })
        expect(await store.head()).toBe(0n)
        expect(await store.commands()).toEqual([])
      } finally {
        await store.close()
      }
    })

    test('with a state cache, a command runs on the cached state and a stale cache costs only a re-run on fresh state', async () => {
      const store = await open()
      try {
        const Cached = cachedAccount()
        const reads: number[] = []
        const counting = new Proxy(store, {
          get(target, key, receiver) {
            const value = Reflect.get(target, key, receiver)
            if (key === 'read') return (...args: unknown[]) => (reads.push(1), (value as Function).apply(target, args))
            return typeof value === 'function' ? value.bind(target) : value
          },
        })
        await Cached.execute(counting, 'a1', (ctx) => ctx.record('Deposited', { amount: 100 }))
        reads.length = 0
        const seen: number[] = []
        await Cached.execute(counting, 'a1', (ctx) => {
          seen.push(ctx.state.balance)
          ctx.record('Withdrawn', { amount: 10 })
        })
        expect(reads.length).toBe(0)
        // Another writer (another process) moves the account on: the cached state is now stale.
        await store.append({ type: 'Withdrawn', tags: ['account:a1'], data: { amount: 85 } })
        const refused = await Cached.execute(counting, 'a1', (ctx) => {
          seen.push(ctx.state.balance)
          withdraw(10)(ctx)
        }, { baseDelayMs: 1 }).catch((e) => e)
        expect(seen).toEqual([100, 90, 5])
        expect(refused.cause.message).toBe('insufficient funds')
        expect((await Cached.load(store, 'a1')).state.balance).toBe(5)
        expect((await store.query([{ tags: ['account:a1'] }])).length).toBe(3)
      } finally {
        await store.close()
      }
    })

    test('with a state cache, a refusal, a command recording nothing or another expected version on stale cached state is decided again on fresh state', async () => {
      const store = await open()
      try {
        const Cached = cachedAccount()
        const seen: [number, number][] = []
        const watch = <R>(handler: (ctx: any) => R) => (ctx: any) => (seen.push([ctx.state.balance, ctx.attempt]), handler(ctx))
        await Cached.execute(store, 'a1', (ctx) => ctx.record('Deposited', { amount: 100 }))
        // Each time another writer (another process) moves the account on, the cached state is stale.
        await store.append({ type: 'Deposited', tags: ['account:a1'], data: { amount: 50 } })
        // Refused on the cached 100, allowed on the fresh 150; the stale run does not use up maxAttempts.
        const withdrawn = await Cached.execute(store, 'a1', watch(withdraw(120)), { maxAttempts: 1 })
        expect(withdrawn).toMatchObject({ state: { balance: 30 }, version: 3, result: 30 })
        await store.append({ type: 'Withdrawn', tags: ['account:a1'], data: { amount: 30 } })
        // Nothing to do on the cached 30; the fresh state is empty, so the top-up is recorded.
        const topUp = await Cached.execute(store, 'a1', watch((ctx) => {
          if (ctx.state.balance === 0) ctx.record('Deposited', { amount: 1 })
        }))
        expect(topUp).toMatchObject({ state: { balance: 1 }, version: 5, count: 1 })
        await store.append({ type: 'Deposited', tags: ['account:a1'], data: { amount: 5 } })
        // The cached version is 5, the stored one 6: the caller who read 6 is not refused.
        const tagged = await Cached.execute(store, 'a1', watch((ctx) => ctx.record('Deposited', { amount: 1 })), { expectedVersion: 6 })
        expect(tagged).toMatchObject({ state: { balance: 7 }, version: 7 })
        // A stale cached state that the handler accepts conflicts on append, and maxAttempts 1 still succeeds.
        await store.append({ type: 'Deposited', tags: ['account:a1'], data: { amount: 10 } })
        const conflicted = await Cached.execute(store, 'a1', watch((ctx) => ctx.record('Withdrawn', { amount: 2 })), { maxAttempts: 1 })
        expect(conflicted).toMatchObject({ state: { balance: 15 }, version: 9 })
        // (With expectedVersion the stale cached run stops before the handler: no [7, 1] before [6, 2].)
        expect(seen).toEqual([[100, 1], [150, 2], [30, 1], [0, 2], [6, 2], [7, 1], [17, 2]])
      } finally {
        await store.close()
      }
    })

    test('expectedVersion refuses with APPEND_CONDITION_FAILED before the handler runs', async () => {
      const store = await open()
      try {
        const { Account } = accountAggregate()
        await Account.execute(store, 'a1', (ctx) => ctx.record('Deposited', { amount: 1 }))
        let ran = false
        const error = await Account.execute(store, 'a1', () => {
          ran = true
        }, { expectedVersion: 0 }).catch((e) => e)
        expect(error.code).toBe('APPEND_CONDITION_FAILED')
        expect(ran).toBe(false)
      } finally {
        await store.close()
      }
    })

    test('an idempotency key makes a repeated call return the first result and store nothing twice', async () => {
      const store = await open()
      try {
        const { Account } = accountAggregate()
        await Account.execute(store, 'a1', (ctx) => ctx.record('Deposited', { amount: 100 }))
        const first = await Account.execute(store, 'a1', withdraw(60), { idempotencyKey: 'req-1' })
        // More history after it, past a snapshot, before the retry arrives.
        for (let i = 0; i < 4; i++) await Account.execute(store, 'a1', (ctx) => ctx.record('Deposited', { amount: 1 }))
        const again = await Account.execute(store, 'a1', withdraw(60), { idempotencyKey: 'req-1' })
        expect(first.ids).toEqual(['req-1:0'])
        expect(again).toEqual({ ...first, result: undefined, duplicate: true })
        expect((await store.query([{ types: ['Withdrawn'] }])).length).toBe(1)
      } finally {
        await store.close()
      }
    })

    test('ctx.project adds another boundary to the one condition, as execute does', async () => {
      const store = await open()
      try {
        const { Account } = accountAggregate()
        const emailTaken = { query: [{ types: ['Opened'], tags: ['email:ada@example.com'] }], initial: false, apply: () => true }
        const openWithEmail = (id: string) =>
          Account.execute(store, id, async (ctx) => {
            const { taken } = await ctx.project({ taken: emailTaken })
            if (taken) throw new Error('e-mail taken')
            ctx.record('Opened', { owner: 'ada' }, { tags: ['email:ada@example.com'] })
          }, { baseDelayMs: 1 })
        const results = await Promise.allSettled([openWithEmail('a1'), openWithEmail('a2')])
        expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1)
        const refused = results.find((r) => r.status === 'rejected') as PromiseRejectedResult
        expect(refused.reason.cause.message).toBe('e-mail taken')
        expect((await store.query([{ types: ['Opened'] }])).length).toBe(1)
      } finally {
        await store.close()
      }
    })

    test('snapshots are saved when an append crosses a multiple of every, pruned to keep, and load starts from them', async () => {
      const store = await open()
      try {
        const { Account, applies } = accountAggregate()
        for (let i = 0; i < 7; i++) await Account.execute(store, 'a1', (ctx) => ctx.record('Deposited', { amount: 1 }))
        const snapshot = await store.loadSnapshot('aggregate:account:a1')
        expect(snapshot?.position).toBe((await store.query([{ tags: ['account:a1'] }]))[5]!.position)
        const before = applies()
        const loaded = await Account.load(store, 'a1')
        expect(loaded).toMatchObject({ version: 7, state: { balance: 7 } })
        expect(applies() - before).toBe(1)
      } finally {
        await store.close()
      }
    })

    test('a snapshot of another version or with bytes that do not decode is ignored, never an error', async () => {
      const store = await open()
      try {
        const errors: unknown[] = []
        const { Account } = accountAggregate((error) => errors.push(error))
        for (let i = 0; i < 3; i++) await Account.execute(store, 'a1', (ctx) => ctx.record('Deposited', { amount: 2 }))
        const head = await store.head()
        await store.saveSnapshot('aggregate:account:a1', head, new Uint8Array([1, 2, 3]))
        expect(await Account.load(store, 'a1')).toMatchObject({ version: 3, state: { balance: 6 } })
        const v2 = defineAggregate<AccountState, AccountEvents>({
          name: 'account',
          initial: { open: false, balance: 0 },
          apply: {
            Opened: (s) => s,
            Deposited: (s, d) => ({ ...s, balance: s.balance + 10 * d.amount }),
            Withdrawn: (s) => s,
          },
          snapshot: { every: 3, version: 2 },
        })
        await Account.execute(store, 'a1', (ctx) => ctx.record('Deposited', { amount: 2 }))
        await Account.execute(store, 'a1', (ctx) => ctx.record('Deposited', { amount: 2 }))
        await Account.execute(store, 'a1', (ctx) => ctx.record('Deposited', { amount: 2 }))
        expect(await v2.load(store, 'a1')).toMatchObject({ version: 6, state: { balance: 120 } })
      } finally {
        await store.close()
      }
    })

    test('a failed snapshot write never fails the command', async () => {
      const store = await open()
      try {
        const errors: unknown[] = []
        const { Account } = accountAggregate((error) => errors.push(error))
        const failing = new Proxy(store, {
          get(target, key, receiver) {
            if (key === 'saveSnapshot') return () => Promise.reject(new Error('disk full'))
            const value = Reflect.get(target, key, receiver)
            return typeof value === 'function' ? value.bind(target) : value
          },
        })
        const result = await Account.execute(failing, 'a1', (ctx) => {
          for (let i = 0; i < 3; i++) ctx.record('Deposited', { amount: 1 })
        })
        expect(result.count).toBe(3)
        expect(errors.map((e) => (e as Error).message)).toEqual(['disk full'])
      } finally {
        await store.close()
      }
    })
  })
}
