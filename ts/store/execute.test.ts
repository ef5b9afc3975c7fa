import { describe, expect, test } from 'bun:test'
import { execute } from './execute.ts'
import { MemoryStore } from './memory/index.ts'
import type { Query, SequencedEvent } from './types.ts'

const counter = (query: Query) => ({ query, initial: 0, apply: (n: number, _event: SequencedEvent) => n + 1 })

async function codeOf(work: () => Promise<unknown>): Promise<string | undefined> {
  try {
    await work()
  } catch (error) {
    return (error as { code?: string }).code
  }
  return undefined
}

describe('execute', () => {
  test('returning no events appends and records nothing', async () => {
    const store = new MemoryStore()
    const result = await execute(store, { type: 'Noop' }, () => [])
    expect(result).toEqual({ position: 0n, count: 0, ids: [] })
    expect(await store.head()).toBe(0n)
    expect(await store.commands()).toEqual([])
    await store.close()
  })

  test('an explicit condition in the decision replaces the projected one', async () => {
    const store = new MemoryStore()
    await store.append({ type: 'A' })
    const code = await codeOf(() =>
      execute(store, { type: 'Cmd' }, async ({ project }) => {
        await project({ b: counter([{ types: ['B'] }]) })
        return { events: [{ type: 'B' }], condition: { failIfEventsMatch: [{ types: ['A'] }] } }
      }, { maxAttempts: 1 }),
    )
    expect(code).toBe('RETRIES_EXHAUSTED')
    expect(await store.head()).toBe(1n)
    await store.close()
  })

  test('several project calls are combined into one condition covering all of them', async () => {
    const store = new MemoryStore()
    await store.append([{ type: 'A' }, { type: 'B' }])
    let runs = 0
    const result = await execute(store, { type: 'Cmd' }, async ({ project, attempt }) => {
      runs++
      await project({ a: counter([{ types: ['A'] }]) })
      await project({ b: counter([{ types: ['B'] }]) })
      // A conflicting A appears after both projections on the first run only.
      if (attempt === 1) await store.append({ type: 'A' })
      return { type: 'C' }
    }, { baseDelayMs: 0 })
    expect(runs).toBe(2)
    expect(result).toEqual({ position: 4n, count: 1, ids: [expect.any(String)] })
    await store.close()
  })

  test('a second project call that finds a new event for an earlier one runs the handler again', async () => {
    const store = new MemoryStore()
    const seen: number[] = []
    const result = await execute(store, { type: 'Cmd' }, async ({ project, attempt }) => {
      const { a } = await project({ a: counter([{ types: ['A'] }]) })
      seen.push(a)
      if (attempt === 1) await store.append({ type: 'A' })
      await project({ b: counter([{ types: ['B'] }]) })
      return { type: 'B' }
    }, { baseDelayMs: 0 })
    expect(seen).toEqual([0, 1])
    expect(result).toEqual({ position: 2n, count: 1, ids: [expect.any(String)] })
    await store.close()
  })

  test('store errors from the append pass through unwrapped', async () => {
    const store = new MemoryStore()
    expect(await codeOf(() => execute(store, { type: 'Cmd' }, () => ({ type: '' })))).toBe('INVALID_EVENT')
    await store.close()
    expect(await codeOf(() => execute(store, { type: 'Cmd' }, async ({ project }) => {
      await project({ a: counter('all') })
      return { type: 'A' }
    }))).toBe('STORE_CLOSED')
  })

  test('a non-Error thrown by the handler is still wrapped as COMMAND_FAILED', async () => {
    const store = new MemoryStore()
    const error = await execute(store, { type: 'Cmd' }, () => {
      throw 'no'
    }).catch((caught) => caught)
    expect(error).toMatchObject({ code: 'COMMAND_FAILED', cause: 'no' })
    await store.close()
  })

  test('aborting while waiting to retry ends with ABORTED', async () => {
    const store = new MemoryStore()
    const controller = new AbortController()
    const code = await codeOf(() =>
      execute(store, { type: 'Cmd' }, async ({ project }) => {
        await project({ a: counter([{ types: ['A'] }]) })
        await store.append({ type: 'A' })
        controller.abort()
        return { type: 'A' }
      }, { signal: controller.signal, baseDelayMs: 60_000, maxDelayMs: 60_000 }),
    )
    expect(code).toBe('ABORTED')
    await store.close()
  })

  test('bad options are INVALID_OPTIONS', async () => {
    const store = new MemoryStore()
    for (const options of [{ maxAttempts: 0 }, { maxAttempts: 1.5 }, { baseDelayMs: -1 }, { maxDelayMs: Number.NaN }]) {
      expect(await codeOf(() => execute(store, { type: 'Cmd' }, () => ({ type: 'A' }), options))).toBe('INVALID_OPTIONS')
    }
    expect(await store.head()).toBe(0n)
    await store.close()
  })
})
