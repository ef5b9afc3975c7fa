import { afterAll, describe, expect, test } from 'bun:test'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { MemoryStore } from '../memory/memory-store.ts'
import { openStore } from '../open.ts'
import type { EventStore, StoreOptions } from '../types.ts'
import { storeStats, type InspectableStore } from './store.ts'

const dir = mkdtempSync(join(tmpdir(), 'ringstate-commit-delay-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

const turn = () => new Promise<void>((resolve) => setImmediate(resolve))

function open(options: StoreOptions): MemoryStore & AsyncDisposable {
  const store = new MemoryStore(options)
  return Object.assign(store, { [Symbol.asyncDispose]: () => store.close() })
}

function batches(store: EventStore): { batches: number; appends: number } {
  const { batches, batchedAppends } = (store as unknown as InspectableStore)[storeStats]().writer
  return { batches, appends: batchedAppends }
}

/** `n` appends at once: one batch of n, the size the writer then expects back. */
async function burst(store: EventStore, n: number): Promise<void> {
  await Promise.all(Array.from({ length: n }, (_, i) => store.append({ type: 'Burst', tags: [`caller:${i}`] })))
}

/** The callers of a burst coming back one event-loop turn apart (as HTTP requests do), then settled. */
async function staggered(store: EventStore, n: number): Promise<void> {
  const appends: Promise<unknown>[] = []
  for (let i = 0; i < n; i++) {
    appends.push(store.append({ type: 'Back', tags: [`caller:${i}`] }))
    await turn()
  }
  await Promise.all(appends)
}

describe('commit delay (commitDelayMicros)', () => {
  test('the callers of the previous batch, coming back over several turns, form one batch again', async () => {
    await using store = open({ commitDelayMicros: 200_000 })
    await burst(store, 8)
    const before = batches(store)
    await staggered(store, 8)
    const after = batches(store)
    expect(after.appends - before.appends).toBe(8)
    expect(after.batches - before.batches).toBe(1)
  })

  test('without it the same arrivals are written in several batches', async () => {
    await using store = open({ commitDelayMicros: 0 })
    await burst(store, 8)
    const before = batches(store)
    await staggered(store, 8)
    expect(batches(store).batches - before.batches).toBeGreaterThan(4)
  })

  test('the writer waits at most the delay for callers that do not come back', async () => {
    await using store = open({ commitDelayMicros: 30_000 })
    // The writer waits only when the lone append comes within 2 ms of the burst's batch (a sign its
    // callers are on their way back); a loaded machine can stretch that once (seen on CI: no wait),
    // so a few tries, until one waited. No try may wait past the bound (plus scheduling slack).
    const waits: number[] = []
    for (let attempt = 0; attempt < 5 && !waits.some((waited) => waited >= 29); attempt++) {
      await burst(store, 16)
      const started = performance.now()
      await store.append({ type: 'Alone' })
      waits.push(performance.now() - started)
    }
    expect(waits.some((waited) => waited >= 29)).toBe(true)
    for (const waited of waits) expect(waited).toBeLessThan(200)
  })

  test('a lone caller never waits, nor does the first append after a quiet spell', async () => {
    await using store = open({ commitDelayMicros: 100_000 })
    const started = performance.now()
    for (let i = 0; i < 20; i++) await store.append({ type: 'Alone' })
    // Twenty waits of the bound would take 2 s.
    expect(performance.now() - started).toBeLessThan(500)

    await burst(store, 16)
    await new Promise((resolve) => setTimeout(resolve, 20))
    const after = performance.now()
    await store.append({ type: 'AfterQuiet' })
    expect(performance.now() - after).toBeLessThan(50)
  })

  test('by default SQLite waits (its commit stops the thread) and memory does not', async () => {
    const sqlite = await openStore(`sqlite:${join(dir, 'default.db')}`)
    try {
      await burst(sqlite, 8)
      const before = batches(sqlite)
      await staggered(sqlite, 8)
      // One batch, or two when a loaded machine stretched the 8 turns past the 300 µs bound;
      // without a delay each arrival is a batch of its own (memory, below).
      expect(batches(sqlite).batches - before.batches).toBeLessThanOrEqual(2)
    } finally {
      await sqlite.close()
    }
    await using memory = open({})
    await burst(memory, 8)
    const before = batches(memory)
    await staggered(memory, 8)
    expect(batches(memory).batches - before.batches).toBeGreaterThan(4)
  })

  test('commitDelayMicros accepts 0 and refuses negative or fractional values', () => {
    expect(() => open({ commitDelayMicros: 0 })).not.toThrow()
    expect(() => open({ commitDelayMicros: -1 })).toThrow('commitDelayMicros must be an integer >= 0')
    expect(() => open({ commitDelayMicros: 1.5 })).toThrow('commitDelayMicros must be an integer >= 0')
  })
})
