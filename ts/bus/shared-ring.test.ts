import { afterAll, describe, expect, test } from 'bun:test'
import { loadNative } from '../native/index.ts'
import { createSharedRing, SharedRing } from './shared-ring.ts'

interface Job {
  type: 'job'
  id: number
}
const job = (id: number): Job => ({ type: 'job', id })
const jobs = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => job(from + i))

const native = loadNative() as { ringRetain?: unknown; ringCount?: () => number } | null
const implementations: ('native' | 'typescript')[] = ['typescript', ...(native?.ringRetain ? (['native'] as const) : [])]
/** Every suite runs with the default JSON codec and with a schema that covers `job`. */
const codecs = { json: undefined, schema: { job: { id: 'uint32' } } } as const
const variants = implementations.flatMap((implementation) =>
  (Object.keys(codecs) as (keyof typeof codecs)[]).map((codec) => [implementation, codec] as const),
)
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

describe.each(variants)('SharedRing (%s, %s codec)', (implementation, codec) => {
  const make = (options: Parameters<typeof createSharedRing>[0]) => {
    const ring = createSharedRing<Job>({ ...options, ...(codecs[codec] ? { schema: codecs[codec] } : {}) }, implementation)
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

  test('an idle consumer parks and a later publish wakes it', async () => {
    const ring = make({ capacity: 8, slotSize: 64, overrun: 'block' })
    const consumer = startConsumer(ring)
    await consumer.ready()
    // Parked consumers announce themselves in the handle's wake words (Int32 index 32).
    const parked = new Int32Array(ring.handle.wake)
    await until(() => Atomics.load(parked, 32) === 1)
    expect(ring.publish([job(7)])).toBeUndefined()
    await until(() => ring.metrics().processed === 1)
    expect(await consumer.stop()).toEqual([7])
  })

  test('bad options are INVALID_OPTIONS', () => {
    expect(() => make({ capacity: 3 })).toThrow(expect.objectContaining({ code: 'INVALID_OPTIONS' }))
    expect(() => make({ capacity: 4, slotSize: 0 })).toThrow(expect.objectContaining({ code: 'INVALID_OPTIONS' }))
    expect(() => make({ capacity: 4, overrun: 'nope' as never })).toThrow(expect.objectContaining({ code: 'INVALID_OPTIONS' }))
  })
})

describe.each(implementations)('SharedRing schema codec (%s)', (implementation) => {
  const schema = {
    order: { id: 'string', total: 'number', lines: 'json', paid: 'boolean', qty: 'int32', seq: 'uint32' },
    tick: { n: 'number' },
  } as const
  const make = (capacity = 16) => {
    const ring = createSharedRing({ capacity, slotSize: 512, overrun: 'error', schema }, implementation)
    created.push(ring as never)
    return ring
  }

  test('events of every declared field kind round-trip', () => {
    const ring = make()
    const events = [
      { type: 'order', id: 'o-1', total: 12.5, lines: [{ sku: 'a,b', n: 2 }], paid: true, qty: -3, seq: 4_000_000_000 },
      { type: 'order', id: 'naïve café — 日本語 🎉', total: -0.25, lines: null, paid: false, qty: 0, seq: 0 },
      { type: 'tick', n: Number.MAX_SAFE_INTEGER },
    ]
    expect(ring.publish(events as never)).toBeUndefined()
    expect(ring.take()).toEqual(events as never)
  })

  test('events the schema does not describe exactly arrive as JSON would deliver them', () => {
    const ring = make()
    const events: Record<string, unknown>[] = [
      { type: 'tick', n: 1, extra: 'kept' },
      { type: 'tick' },
      { type: 'tick', n: '1' },
      { type: 'tick', n: Number.NaN },
      { type: 'tick', n: undefined },
      { type: 'order', id: 'o', total: 1, lines: () => 1, paid: true, qty: 1.5, seq: -1 },
      { type: 'unknown', nested: { a: [1, 2] } },
    ]
    expect(ring.publish(events as never)).toBeUndefined()
    expect(ring.take()).toEqual(JSON.parse(JSON.stringify(events)))
  })

  test('a schema travels in the handle, so an attached ring decodes it', () => {
    const ring = make()
    const attached = SharedRing.attach<{ type: string; n: number }>(ring.handle)
    expect(ring.publish([{ type: 'tick', n: 3 }] as never)).toBeUndefined()
    expect(attached.take()).toEqual([{ type: 'tick', n: 3 }])
  })

  test('a bad schema is INVALID_OPTIONS', () => {
    const bad = [null, [], { tick: 'number' }, { tick: { n: 'float' } }, { tick: { type: 'string' } }]
    for (const schema of bad) {
      expect(() => createSharedRing({ capacity: 4, schema: schema as never }, implementation)).toThrow(
        expect.objectContaining({ code: 'INVALID_OPTIONS' }),
      )
    }
  })
})

describe.if(Boolean(native?.ringCount))('SharedRing native lifetime', () => {
  const count = () => native!.ringCount!()

  test('creating and releasing many rings leaves the registry as it was', () => {
    const before = count()
    for (let i = 0; i < 2000; i++) createSharedRing({ capacity: 4, slotSize: 16 }, 'native').release()
    expect(count()).toBe(before)
  })

  test('a released ring cannot be attached again', () => {
    const ring = createSharedRing({ capacity: 4, slotSize: 16 }, 'native')
    ring.release()
    expect(() => SharedRing.attach(ring.handle)).toThrow(expect.objectContaining({ code: 'STORE_CLOSED' }))
  })

  test('a ring stays alive while any attached object does, and is freed when the last is collected', async () => {
    const before = count()
    const keep = createSharedRing({ capacity: 4, slotSize: 64 }, 'native')
    const second = SharedRing.attach(keep.handle)
    ;(() => {
      for (let i = 0; i < 200; i++) createSharedRing({ capacity: 4, slotSize: 16 }, 'native')
    })()
    // Finalizers run after a collection, on a later turn; the collector scans the stack
    // conservatively, so a few may linger: wait until nearly all are gone.
    while (count() > before + 1 + 10) {
      Bun.gc(true)
      await new Promise((resolve) => setImmediate(resolve))
    }
    expect(second.publish([job(1)] as never)).toBeUndefined()
    expect(keep.take()).toEqual([job(1)])
    keep.release()
  })
})
