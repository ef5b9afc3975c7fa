import { describe, expect, test } from 'bun:test'
import { MemoryStore } from '../store/memory/index.ts'
import { accountAggregate, describeAggregate, withdraw, type AccountState } from './aggregate.case.ts'
import { defineAggregate } from './aggregate.ts'
import { SpecificationError } from './spec.ts'

describeAggregate('memory', async () => new MemoryStore())

describe('aggregate definitions', () => {
  test('an apply handler that is not a function, or no handlers at all, is INVALID_OPTIONS', () => {
    const bad = () =>
      defineAggregate<AccountState, { Deposited: { amount: number } }>({
        name: 'account',
        initial: { open: false, balance: 0 },
        apply: { Deposited: 'nope' as never },
      })
    expect(bad).toThrow(expect.objectContaining({ code: 'INVALID_OPTIONS' }))
    expect(() => defineAggregate<AccountState, {}>({ name: 'x', initial: { open: false, balance: 0 }, apply: {} })).toThrow(
      expect.objectContaining({ code: 'INVALID_OPTIONS' }),
    )
  })

  test('the state cache is on by default, and cache: false reads the boundary for every command', async () => {
    const store = new MemoryStore()
    let reads = 0
    const counting = new Proxy(store, {
      get(target, key, receiver) {
        const value = Reflect.get(target, key, receiver)
        if (key === 'read') return (...args: unknown[]) => (reads++, (value as Function).apply(target, args))
        return typeof value === 'function' ? value.bind(target) : value
      },
    })
    const define = (cache?: false) =>
      defineAggregate<{ balance: number }, { Deposited: { amount: number } }>({
        name: 'account',
        initial: { balance: 0 },
        apply: { Deposited: (state, data) => ({ balance: state.balance + data.amount }) },
        ...(cache === false ? { cache } : {}),
      })
    for (const [aggregate, expected] of [[define(), 1], [define(false), 3]] as const) {
      reads = 0
      for (let i = 0; i < 3; i++) await aggregate.execute(counting, 'a1', (ctx) => ctx.record('Deposited', { amount: 1 }))
      expect(reads).toBe(expected)
    }
    expect((await define(false).load(store, 'a1')).state.balance).toBe(6)
    await store.close()
  })

  test('a cached state is frozen: changing the state execute returned throws, and the next command decides on what the events say', async () => {
    const store = new MemoryStore()
    const Account = defineAggregate<{ balance: number; history: number[] }, { Deposited: { amount: number } }>({
      name: 'account',
      initial: () => ({ balance: 0, history: [] }),
      apply: { Deposited: (state, data) => ({ balance: state.balance + data.amount, history: [...state.history, data.amount] }) },
    })
    const first = await Account.execute(store, 'a1', (ctx) => ctx.record('Deposited', { amount: 5 }))
    expect(() => {
      first.state.balance = 1_000
    }).toThrow(TypeError)
    expect(() => first.state.history.push(1_000)).toThrow(TypeError)
    let seen: number | undefined
    await Account.execute(store, 'a1', (ctx) => {
      seen = ctx.state.balance
      ctx.record('Deposited', { amount: 1 })
    })
    expect(seen).toBe(5)
    expect((await Account.load(store, 'a1')).state).toEqual({ balance: 6, history: [5, 1] })
    await store.close()
  })

  test('an apply that changes its state in place still gives every command the right state with the cache on', async () => {
    const store = new MemoryStore()
    const Account = defineAggregate<{ balance: number }, { Deposited: { amount: number } }>({
      name: 'account',
      initial: () => ({ balance: 0 }),
      apply: {
        Deposited: (state, data) => {
          state.balance += data.amount
          return state
        },
      },
    })
    const seen: number[] = []
    for (let i = 1; i <= 3; i++) {
      const result = await Account.execute(store, 'a1', (ctx) => {
        seen.push(ctx.state.balance)
        ctx.record('Deposited', { amount: i })
      })
      expect(result.state.balance).toBe((i * (i + 1)) / 2)
    }
    // Each command after the first tried its cached (frozen) state, failed, and ran again on
    // fresh state: the handler saw the cached balance, then the loaded one, both right.
    expect(seen).toEqual([0, 1, 1, 3, 3])
    expect((await store.query([{ types: ['Deposited'] }])).length).toBe(3)
    await store.close()
  })

  test('loads sharing a read still get their own states from a store allowing fewer query items than they are', async () => {
    const store = new MemoryStore({ maxQueryItems: 2 })
    const { Account } = accountAggregate()
    await store.append(['a', 'b', 'c', 'd', 'e'].map((id, i) => ({ type: 'Deposited', tags: [`account:${id}`], data: { amount: i + 1 } })))
    const loaded = await Promise.all(['a', 'b', 'c', 'd', 'e'].map((id) => Account.load(store, id)))
    expect(loaded.map((l) => l.state.balance)).toEqual([1, 2, 3, 4, 5])
    await store.close()
  })

  test('an aborted load rejects ABORTED while the loads it shared a read with complete', async () => {
    const store = new MemoryStore()
    const { Account } = accountAggregate()
    await store.append(['a', 'b'].map((id) => ({ type: 'Deposited', tags: [`account:${id}`], data: { amount: 7 } })))
    const stop = new AbortController()
    const aborted = Account.load(store, 'a', { signal: stop.signal }).catch((e) => e)
    const other = Account.load(store, 'b')
    stop.abort()
    expect((await aborted).code).toBe('ABORTED')
    expect((await other).state.balance).toBe(7)
    await store.close()
  })

  test('recording a type the aggregate has no handler for is INVALID_OPTIONS, never silently ignored', async () => {
    const store = new MemoryStore()
    const { Account } = accountAggregate()
    const error = await Account.execute(store, 'a1', (ctx) => {
      // A caller without the types (plain JavaScript) can still pass any string.
      ;(ctx.record as (type: string, data: unknown) => void)('Deposit', { amount: 1 })
    }).catch((e) => e)
    expect(error.code).toBe('INVALID_OPTIONS')
    expect(await store.head()).toBe(0n)
    await store.close()
  })

  test('a misspelled handler key (written without the types) surfaces as INVALID_OPTIONS when the real type is recorded', async () => {
    const store = new MemoryStore()
    // What plain JavaScript could write: the key of the Withdrawn handler is misspelled.
    const definition = {
      name: 'account',
      initial: { balance: 0 },
      apply: { Deposited: (s: { balance: number }) => s, Withdrawnn: (s: { balance: number }) => s },
    }
    const Sloppy = defineAggregate<{ balance: number }, { Deposited: {}; Withdrawnn: {} }>(definition)
    const error = await Sloppy.execute(store, 'a1', (ctx) => {
      ;(ctx.record as (type: string, data: unknown) => void)('Withdrawn', { amount: 1 })
    }).catch((e) => e)
    expect(error.code).toBe('INVALID_OPTIONS')
    expect(error.message).toContain('no apply handler for event type "Withdrawn"')
    await store.close()
  })

  test('initial may be a function of the id, and tag overrides the boundary tag', async () => {
    const store = new MemoryStore()
    const Named = defineAggregate<{ id: string; n: number }, { Bumped: {} }>({
      name: 'counter',
      initial: (id) => ({ id, n: 0 }),
      apply: { Bumped: (s) => ({ ...s, n: s.n + 1 }) },
      tag: (id) => `ctr/${id}`,
    })
    await Named.execute(store, 'c9', (ctx) => ctx.record('Bumped', {}))
    expect((await store.query([{ tags: ['ctr/c9'] }])).length).toBe(1)
    expect((await Named.load(store, 'c9')).state).toEqual({ id: 'c9', n: 1 })
    await store.close()
  })
})

describe('aggregate specifications', () => {
  const { Account } = accountAggregate()
  const funded = [
    { type: 'Opened', data: { owner: 'ada' } },
    { type: 'Deposited', data: { amount: 100 } },
  ] as const

  test('thenEvents passes when the handler records exactly those events', async () => {
    await Account.spec().given([...funded]).when(withdraw(60)).thenEvents([{ type: 'Withdrawn', data: { amount: 60 } }])
  })

  test('thenEvents rejects with the expected and actual events when they differ', async () => {
    const error = await Account.spec()
      .given([...funded])
      .when(withdraw(60))
      .thenEvents([{ type: 'Withdrawn', data: { amount: 70 } }])
      .catch((e) => e)
    expect(error).toBeInstanceOf(SpecificationError)
    expect(error.message).toContain('expected: [{"type":"Withdrawn","data":{"amount":70}}]')
    expect(error.message).toContain('actual:   [{"type":"Withdrawn","data":{"amount":60}}]')
  })

  test('thenState compares the state after the command', async () => {
    await Account.spec().given([...funded]).when(withdraw(60)).thenState({ open: true, balance: 40 })
    const error = await Account.spec().given([...funded]).when(withdraw(60)).thenState({ open: true, balance: 41 }).catch((e) => e)
    expect(error).toBeInstanceOf(SpecificationError)
  })

  test('thenThrows sees the domain error itself, and fails when nothing was thrown', async () => {
    await Account.spec()
      .given([{ type: 'Deposited', data: { amount: 10 } }])
      .when(withdraw(60))
      .thenThrows((error) => error.message === 'insufficient funds')
    const error = await Account.spec().given([...funded]).when(withdraw(60)).thenThrows().catch((e) => e)
    expect(error.message).toContain('the handler did not throw')
  })

  test('thenNothingHappened passes only when nothing was recorded or thrown', async () => {
    await Account.spec().given([]).when(() => undefined).thenNothingHappened()
    const error = await Account.spec().given([...funded]).when(withdraw(1)).thenNothingHappened().catch((e) => e)
    expect(error).toBeInstanceOf(SpecificationError)
  })

  test('a specification is not a thenable, so awaiting it by mistake does not run it', () => {
    const when = Account.spec().given([]).when(() => undefined) as unknown as Record<string, unknown>
    expect('then' in when).toBe(false)
    expect('then' in (Account.spec() as unknown as Record<string, unknown>)).toBe(false)
  })
})
