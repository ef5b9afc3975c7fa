import { afterAll, describe, expect, test } from 'bun:test'
import { loadNative } from '../native/index.ts'
import { createSharedRing, type SharedRing } from './shared-ring.ts'

interface Job {
  type: 'job'
  id: number
}
const job = (id: number): Job => ({ type: 'job', id })
const jobs = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => job(from + i))

const native = loadNative() as { ringCreate?: unknown } | null
const implementations: ('native' | 'typescript')[] = ['typescript', ...(native?.ringCreate ? (['native'] as const) : [])]
const created: SharedRing<Job>[] = []
afterAll(() => created.forEach((ring) => ring.release()))

/** Waits (yielding to the event loop, never sleeping a fixed time) until `check` holds. */
async function until(check: () => boolean): Promise<void> {
  while (!check()) await new Promise((resolve) => setImmediate(resolve))
}

function startConsumer(ring: SharedRing<Job>) {
  const worker = new Worker(new URL('./shared-ring.fixture.ts', import.meta.url))
  const messages: unknown[] = []
  worker.onmessage = ({ data }) => void messages.push(data)
  worker.postMessage(ring.handle)
  return {
    ready: () => until(() => messages.includes('ready')),
    async stop(): Promise<number[]> {
      worker.postMessage('stop')
      await until(() => messages.length === 2)
      worker.terminate()
      return messages[1] as number[]
    },
  }
}

describe.each(implementations)('SharedRing (%s)', (implementation) => {
  const make = (options: Parameters<typeof createSharedRing>[0]) => {
    const ring = createSharedRing<Job>(options, implementation)
    created.push(ring)
    return ring
  }

  test('a producer thread and a consumer Worker exchange every event exactly once, in order', async () => {
    const ring = make({ capacity: 64, slotSize: 64, overrun: 'block' })
    const consumer = startConsumer(ring)
    await consumer.ready()
    const total = 5000
    for (let from = 0; from < total; from += 100) {
      const waiting = ring.publish(jobs(from, from + 100))
      if (waiting) await waiting
    }
    await until(() => ring.metrics().processed === total)
    const ids = await consumer.stop()
    expect(ids).toEqual(Array.from({ length: total }, (_, i) => i))
    expect(ring.metrics()).toEqual({ published: total, processed: total, dropped: 0, pending: 0 })
  })

  test('two consumer Workers share the work (a worker pool) and no event is lost or delivered twice', async () => {
    const ring = make({ capacity: 32, slotSize: 64, overrun: 'block' })
    const pool = [startConsumer(ring), startConsumer(ring)]
    await Promise.all(pool.map((c) => c.ready()))
    const total = 4000
    for (let from = 0; from < total; from += 50) await ring.publish(jobs(from, from + 50))
    await until(() => ring.metrics().processed === total)
    const [a, b] = await Promise.all(pool.map((c) => c.stop()))
    const all = [...a!, ...b!].sort((x, y) => x - y)
    expect(all).toEqual(Array.from({ length: total }, (_, i) => i))
    for (const ids of [a!, b!]) expect(ids).toEqual([...ids].sort((x, y) => x - y))
  })

  test('drop-oldest keeps the newest events and the counts add up', () => {
    const ring = make({ capacity: 16, slotSize: 32, overrun: 'drop-oldest' })
    expect(ring.publish(jobs(0, 100))).toBeUndefined()
    expect(ring.metrics()).toEqual({ published: 100, processed: 0, dropped: 84, pending: 16 })
    expect(ring.take().map((e) => e.id)).toEqual(Array.from({ length: 16 }, (_, i) => 84 + i))
    expect(ring.metrics()).toEqual({ published: 100, processed: 16, dropped: 84, pending: 0 })
  })

  test('events whose text holds commas, brackets, quotes, escapes and non-ASCII round-trip intact', () => {
    const ring = make({ capacity: 8, slotSize: 256, overrun: 'error' })
    const tricky = [
      { type: 'a,b', text: '{"x":[1,2]}, ] [ } {', nested: { list: [1, { y: ',' }], empty: {} } },
      { type: 'q', text: 'back\\slash \\", quote " and , comma' },
      { type: 'ü', text: 'naïve café — 日本語, 🎉' },
      { type: 'plain' },
    ]
    expect(ring.publish(tricky as never)).toBeUndefined()
    expect(ring.take()).toEqual(tricky as never)
    expect(ring.take()).toEqual([])
  })

  test('error mode publishes what fits and throws BUFFER_FULL carrying the rest', () => {
    const ring = make({ capacity: 4, slotSize: 32, overrun: 'error' })
    let error: unknown
    try {
      ring.publish(jobs(0, 6))
    } catch (caught) {
      error = caught
    }
    expect(error).toMatchObject({ code: 'BUFFER_FULL', item: [job(4), job(5)] })
    expect(ring.take()).toEqual(jobs(0, 4))
  })

  test('an event larger than a slot is INVALID_EVENT and nothing of its batch is published', () => {
    const ring = make({ capacity: 4, slotSize: 16, overrun: 'error' })
    expect(() => ring.publish([job(1), { type: 'job', id: 2, padding: 'x'.repeat(40) } as Job])).toThrow(
      expect.objectContaining({ code: 'INVALID_EVENT' }),
    )
    expect(ring.metrics().published).toBe(0)
  })

  test('a blocked publish rejects with ABORTED when its signal aborts', async () => {
    const ring = make({ capacity: 2, slotSize: 32, overrun: 'block' })
    const controller = new AbortController()
    const waiting = ring.publish(jobs(0, 3), { signal: controller.signal })
    expect(waiting).toBeInstanceOf(Promise)
    controller.abort()
    await expect(waiting!).rejects.toMatchObject({ code: 'ABORTED' })
    expect(ring.take()).toEqual(jobs(0, 2))
  })

  test('bad options are INVALID_OPTIONS', () => {
    expect(() => make({ capacity: 3 })).toThrow(expect.objectContaining({ code: 'INVALID_OPTIONS' }))
    expect(() => make({ capacity: 4, slotSize: 0 })).toThrow(expect.objectContaining({ code: 'INVALID_OPTIONS' }))
    expect(() => make({ capacity: 4, overrun: 'nope' as never })).toThrow(expect.objectContaining({ code: 'INVALID_OPTIONS' }))
  })
})
