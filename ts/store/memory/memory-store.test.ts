import { describe, expect, test } from 'bun:test'
import { describeConformance } from '../conformance.case.ts'
import type { InlineProjector } from '../types.ts'
import { MemoryStore } from './memory-store.ts'

describeConformance('memory', async (options) => new MemoryStore(options), 'memory')

/** Counts commits through an inline projector: one promote per group commit. */
function commitCounter(): InlineProjector & { commits: number } {
  return {
    name: 'commits',
    commits: 0,
    apply() {},
    promote() {
      this.commits++
    },
    discard() {},
  }
}

describe('memory: group commit', () => {
  test('appends made in the same tick are committed as one batch', async () => {
    const store = new MemoryStore()
    const counter = commitCounter()
    store.attach(counter)
    await Promise.all(Array.from({ length: 5 }, () => store.append({ type: 'A' })))
    expect(counter.commits).toBe(1)
    await store.append({ type: 'A' })
    expect(counter.commits).toBe(2)
    await store.close()
  })

  test('a batch holds at most maxAppendBatch appends', async () => {
    const store = new MemoryStore({ maxAppendBatch: 2 })
    const counter = commitCounter()
    store.attach(counter)
    const results = await Promise.all(Array.from({ length: 5 }, () => store.append({ type: 'A' })))
    expect(counter.commits).toBe(3)
    expect(results.map((result) => result.position)).toEqual([1n, 2n, 3n, 4n, 5n])
    await store.close()
  })

  test('close lets appends already waiting commit', async () => {
    const store = new MemoryStore()
    const pending = store.append({ type: 'A' })
    await store.close()
    expect(await pending).toEqual({ position: 1n, count: 1, ids: [expect.any(String)] })
  })

  test('bad options are INVALID_OPTIONS', () => {
    expect(() => new MemoryStore({ streamBatchSize: 0 })).toThrow(expect.objectContaining({ code: 'INVALID_OPTIONS' }))
  })

  test('readers get their own copies of event data', async () => {
    const store = new MemoryStore()
    const data = { list: [1] }
    await store.append({ type: 'A', data })
    data.list.push(2)
    const [first] = await store.query('all')
    ;(first!.data as { list: number[] }).list.push(3)
    const [second] = await store.query('all')
    expect(second!.data).toEqual({ list: [1] })
    await store.close()
  })
})
