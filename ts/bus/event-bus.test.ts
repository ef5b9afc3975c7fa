import { describe, expect, test } from 'bun:test'
import { EventBus, type BusMetrics } from './event-bus.ts'
import { AbortedError, BufferFullError } from '../errors.ts'

interface Tick {
  type: 'tick'
  n: number
}
const tick = (n: number): Tick => ({ type: 'tick', n })

function invariantHolds(m: BusMetrics): boolean {
  return m.published === m.processed + m.dropped + m.pending
}

function deferred<T = void>() {
  let resolve!: (value: T) => void
  let reject!: (error: unknown) => void
  const promise = new Promise<T>((res, rej) => {
    resolve = res
    reject = rej
  })
  return { promise, resolve, reject }
}

describe('EventBus options', () => {
  test.each([
    [{ capacity: 0 }],
    [{ capacity: 3 }],
    [{ capacity: 1.5 }],
    [{ capacity: 2 ** 31 }],
    [{ capacity: '8' }],
    [{ capacity: 8, overrun: 'drop-newest' }],
    [{ capacity: 8, async: 'yes' }],
    [{ capacity: 8, onError: 'log' }],
    [null],
  ])('rejects %p with INVALID_OPTIONS', (options) => {
    expect(() => new EventBus(options as never)).toThrow(expect.objectContaining({ code: 'INVALID_OPTIONS' }))
  })

  test('on rejects an empty type or a non-function handler with INVALID_OPTIONS', () => {
    const bus = new EventBus({ capacity: 8 })
    expect(() => bus.on('', () => {})).toThrow(expect.objectContaining({ code: 'INVALID_OPTIONS' }))
    expect(() => bus.on('x', 'nope' as never)).toThrow(expect.objectContaining({ code: 'INVALID_OPTIONS' }))
  })
})

describe('EventBus publish and drain', () => {
  test('publish returns undefined when there is room and drain dispatches in publish order', () => {
    const bus = new EventBus<Tick>({ capacity: 8 })
    const seen: number[] = []
    bus.on('tick', (event) => void seen.push(event.n))
    for (let n = 0; n < 5; n++) expect(bus.publish(tick(n))).toBeUndefined()
    expect(bus.metrics()).toEqual({ published: 5, processed: 0, errors: 0, dropped: 0, pending: 5 })
    expect(bus.drain()).toBe(5)
    expect(seen).toEqual([0, 1, 2, 3, 4])
    expect(bus.metrics()).toEqual({ published: 5, processed: 5, errors: 0, dropped: 0, pending: 0 })
  })

  test('the ring wraps around many times without losing or reordering events', () => {
    const bus = new EventBus<Tick>({ capacity: 4 })
    const seen: number[] = []
    bus.on('tick', (event) => void seen.push(event.n))
    for (let n = 0; n < 30; n++) {
      bus.publish(tick(n))
      if (n % 3 === 2) bus.drain()
    }
    bus.drain()
    expect(seen).toEqual(Array.from({ length: 30 }, (_, n) => n))
  })

  test('handlers get the event and a context whose signal aborts when the bus closes', async () => {
    const bus = new EventBus({ capacity: 2 })
    let signal: AbortSignal | undefined
    bus.on('a', (event, context) => {
      expect(event).toEqual({ type: 'a' })
      signal = context.signal
    })
    bus.publish({ type: 'a' })
    bus.drain()
    expect(signal?.aborted).toBe(false)
    await bus.close()
    expect(signal?.aborted).toBe(true)
  })

  test('only handlers of the event type run, in registration order; events without handlers count as processed', () => {
    const bus = new EventBus({ capacity: 8 })
    const calls: string[] = []
    bus.on('a', () => void calls.push('a1'))
    bus.on('b', () => void calls.push('b'))
    bus.on('a', () => void calls.push('a2'))
    bus.publish({ type: 'a' })
    bus.publish({ type: 'nobody' })
    bus.publish({ type: 'b' })
    bus.drain()
    expect(calls).toEqual(['a1', 'a2', 'b'])
    expect(bus.metrics()).toEqual({ published: 3, processed: 3, errors: 0, dropped: 0, pending: 0 })
  })

  test('an event without a string type is INVALID_EVENT and nothing is published', () => {
    const bus = new EventBus({ capacity: 2 })
    expect(() => bus.publish({ kind: 'x' } as never)).toThrow(expect.objectContaining({ code: 'INVALID_EVENT' }))
    expect(() => bus.publish(null as never)).toThrow(expect.objectContaining({ code: 'INVALID_EVENT' }))
    expect(bus.metrics().published).toBe(0)
  })

  test('events published by a handler during a drain are dispatched by the same drain, and a nested drain does nothing', () => {
    const bus = new EventBus<Tick>({ capacity: 4 })
    const seen: number[] = []
    let nested: number | undefined
    bus.on('tick', (event) => {
      seen.push(event.n)
      if (event.n < 3) bus.publish(tick(event.n + 1))
      nested ??= bus.drain()
      expect(invariantHolds(bus.metrics())).toBe(true)
    })
    bus.publish(tick(0))
    expect(bus.drain()).toBe(4)
    expect(seen).toEqual([0, 1, 2, 3])
    expect(nested).toBe(0)
  })

  test('unsubscribing during dispatch takes effect from the next event', () => {
    const bus = new EventBus<Tick>({ capacity: 8 })
    const calls: string[] = []
    let offB = () => {}
    const offA = bus.on('tick', (event) => {
      calls.push(`a${event.n}`)
      offB()
      offA()
    })
    offB = bus.on('tick', (event) => void calls.push(`b${event.n}`))
    bus.on('tick', (event) => void calls.push(`c${event.n}`))
    bus.publish(tick(1))
    bus.publish(tick(2))
    bus.drain()
    expect(calls).toEqual(['a1', 'b1', 'c1', 'c2'])
    offA() // a second call is harmless
  })

  test('publish after close throws STORE_CLOSED and pending events are counted as dropped', async () => {
    const bus = new EventBus({ capacity: 4 })
    bus.publish({ type: 'a' })
    bus.publish({ type: 'a' })
    await bus.close()
    expect(() => bus.publish({ type: 'a' })).toThrow(expect.objectContaining({ code: 'STORE_CLOSED' }))
    expect(bus.metrics()).toEqual({ published: 2, processed: 0, errors: 0, dropped: 2, pending: 0 })
    await bus.close()
  })
})

describe('EventBus overrun policies', () => {
  test('error mode throws BUFFER_FULL carrying the event and publishes nothing', () => {
    const bus = new EventBus<Tick>({ capacity: 2, overrun: 'error' })
    bus.publish(tick(1))
    bus.publish(tick(2))
    const rejected = tick(3)
    let error: unknown
    try {
      bus.publish(rejected)
    } catch (caught) {
      error = caught
    }
    expect(error).toBeInstanceOf(BufferFullError)
    expect((error as BufferFullError).code).toBe('BUFFER_FULL')
    expect((error as BufferFullError<Tick>).item).toBe(rejected)
    expect(bus.metrics()).toEqual({ published: 2, processed: 0, errors: 0, dropped: 0, pending: 2 })
  })

  test('drop-oldest keeps the newest events and counts the dropped ones', () => {
    const bus = new EventBus<Tick>({ capacity: 4, overrun: 'drop-oldest' })
    const seen: number[] = []
    bus.on('tick', (event) => void seen.push(event.n))
    for (let n = 0; n < 10; n++) expect(bus.publish(tick(n))).toBeUndefined()
    expect(bus.metrics()).toEqual({ published: 10, processed: 0, errors: 0, dropped: 6, pending: 4 })
    bus.drain()
    expect(seen).toEqual([6, 7, 8, 9])
    expect(bus.metrics()).toEqual({ published: 10, processed: 4, errors: 0, dropped: 6, pending: 0 })
  })

  test('block mode returns a promise that settles once a drain makes room, keeping publish order', async () => {
    const bus = new EventBus<Tick>({ capacity: 2, overrun: 'block' })
    const seen: number[] = []
    bus.on('tick', (event) => void seen.push(event.n))
    bus.publish(tick(1))
    bus.publish(tick(2))
    const third = bus.publish(tick(3))
    const fourth = bus.publish(tick(4))
    expect(third).toBeInstanceOf(Promise)
    expect(bus.metrics()).toEqual({ published: 2, processed: 0, errors: 0, dropped: 0, pending: 2 })
    expect(bus.drain()).toBe(4)
    await Promise.all([third, fourth])
    expect(seen).toEqual([1, 2, 3, 4])
    expect(bus.metrics()).toEqual({ published: 4, processed: 4, errors: 0, dropped: 0, pending: 0 })
  })

  test('block mode rejects with ABORTED when the signal aborts, and the event is never published', async () => {
    const bus = new EventBus<Tick>({ capacity: 1, overrun: 'block' })
    const seen: number[] = []
    bus.on('tick', (event) => void seen.push(event.n))
    bus.publish(tick(1))
    const controller = new AbortController()
    const waiting = bus.publish(tick(2), { signal: controller.signal })
    const after = bus.publish(tick(3))
    controller.abort()
    const error = await waiting!.then(() => undefined, (e: unknown) => e)
    expect(error).toBeInstanceOf(AbortedError)
    expect((error as AbortedError).code).toBe('ABORTED')
    bus.drain()
    await after
    expect(seen).toEqual([1, 3])
    expect(bus.publish(tick(4))).toBeUndefined()
    // A signal that is already aborted rejects at once when the ring is full.
    await expect(bus.publish(tick(6), { signal: AbortSignal.abort() })!).rejects.toMatchObject({ code: 'ABORTED' })
    expect(invariantHolds(bus.metrics())).toBe(true)
  })

  test('closing rejects blocked publishers with STORE_CLOSED', async () => {
    const bus = new EventBus({ capacity: 1, overrun: 'block' })
    bus.publish({ type: 'a' })
    const waiting = bus.publish({ type: 'a' })
    await bus.close()
    await expect(waiting!).rejects.toMatchObject({ code: 'STORE_CLOSED' })
  })
})

describe('EventBus failures and async handlers', () => {
  test('onError sees a sync throw and a rejected promise, and the drain goes on', async () => {
    const failures: [string, unknown][] = []
    const bus = new EventBus<Tick>({ capacity: 8, onError: (error, event) => void failures.push([(error as Error).message, event]) })
    const seen: number[] = []
    bus.on('tick', (event) => {
      if (event.n === 1) throw new Error('sync boom')
    })
    bus.on('tick', async (event) => {
      if (event.n === 2) throw new Error('async boom')
    })
    bus.on('tick', (event) => void seen.push(event.n))
    for (let n = 0; n < 4; n++) bus.publish(tick(n))
    expect(bus.drain()).toBe(4)
    expect(seen).toEqual([0, 1, 2, 3])
    while (failures.length < 2) await Promise.resolve()
    expect(failures).toEqual([
      ['sync boom', tick(1)],
      ['async boom', tick(2)],
    ])
    expect(bus.metrics()).toEqual({ published: 4, processed: 4, errors: 2, dropped: 0, pending: 0 })
  })

  test('a throwing onError does not stop the drain', () => {
    const bus = new EventBus<Tick>({
      capacity: 4,
      onError: () => {
        throw new Error('reporter down')
      },
    })
    const seen: number[] = []
    const original = console.error
    const reported: unknown[] = []
    console.error = (...args: unknown[]) => void reported.push(args)
    try {
      bus.on('tick', () => {
        throw new Error('boom')
      })
      bus.on('tick', (event) => void seen.push(event.n))
      bus.publish(tick(1))
      bus.publish(tick(2))
      bus.drain()
    } finally {
      console.error = original
    }
    expect(seen).toEqual([1, 2])
    expect(reported.length).toBe(2)
  })

  test('async mode starts every handler before any finishes and drain settles when all have', async () => {
    const failures: unknown[] = []
    const bus = new EventBus<Tick, true>({ capacity: 8, async: true, onError: (error) => void failures.push(error) })
    const gates = [deferred(), deferred(), deferred()]
    const started: number[] = []
    const finished: number[] = []
    bus.on('tick', async (event) => {
      started.push(event.n)
      await gates[event.n]!.promise
      finished.push(event.n)
      if (event.n === 1) throw new Error('late failure')
    })
    for (let n = 0; n < 3; n++) bus.publish(tick(n))
    let settled = false
    const drained = bus.drain().then((count) => {
      settled = true
      return count
    })
    expect(started).toEqual([0, 1, 2])
    gates[2]!.resolve()
    gates[0]!.resolve()
    while (finished.length < 2) await Promise.resolve()
    expect(settled).toBe(false)
    gates[1]!.resolve()
    expect(await drained).toBe(3)
    expect(finished).toEqual([2, 0, 1])
    expect(failures).toEqual([new Error('late failure')])
    expect(bus.metrics()).toEqual({ published: 3, processed: 3, errors: 1, dropped: 0, pending: 0 })
  })

  test('close waits for in-flight async handlers', async () => {
    const bus = new EventBus({ capacity: 2, async: true })
    const gate = deferred()
    let done = false
    bus.on('a', async () => {
      await gate.promise
      done = true
    })
    bus.publish({ type: 'a' })
    void bus.drain()
    const closing = bus.close()
    gate.resolve()
    await closing
    expect(done).toBe(true)
  })
})
