/**
 * The rules of section 7 over the in-memory sources: ordering, one delivery at a time, null
 * messages and commands, result order, replay, batch quiescence, errors, cancellation, the inbox.
 */
import { describe, expect, test } from 'bun:test'
import { EventBus } from '../bus/index.ts'
import {
  batch,
  cmd,
  fromBus,
  fromIterable,
  inbox,
  run,
  type Cmd,
  type CommitInfo,
  type Delivery,
  type Program,
  type RunHandle,
  type RunOptions,
  type Source,
} from './index.ts'
import { SHARE_DELIVERY } from './internal.ts'
import { seededRandom } from '../testing/seeded-random.ts'

/** Resolves once `predicate` holds, polling each macrotask; fails after `ms`. */
async function until(predicate: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error('condition not reached in time')
    await new Promise((resolve) => setTimeout(resolve, 1))
  }
}

/** A deferred value a test settles by hand. */
function deferred<T>() {
  let resolve!: (value: T) => void
  let reject!: (error: unknown) => void
  const promise = new Promise<T>((res, rej) => {
    resolve = res
    reject = rej
  })
  return { promise, resolve, reject }
}

type Trace = string[]

/**
 * An in-memory source with positions that records every call the runtime makes, and fails the
 * test (through `violations`) if `next` is called while a delivery is neither committed nor rolled back.
 */
class TracingSource<Msg> implements Source<Msg, Msg> {
  readonly trace: Trace = []
  readonly violations: string[] = []
  readonly committed: Msg[] = []
  readonly putResults: Msg[][] = []
  private index = 0
  private open: Delivery<Msg> | undefined
  private staged: readonly Msg[] | undefined
  private readonly items: (Msg | null)[]
  private readonly asyncNext: boolean

  constructor(items: (Msg | null)[], asyncNext: boolean = false) {
    this.items = items
    this.asyncNext = asyncNext
  }
  next(): Delivery<Msg> | undefined | Promise<Delivery<Msg> | undefined> {
    if (this.open !== undefined) this.violations.push(`next while ${this.open.id} is open`)
    if (this.index >= this.items.length) return undefined
    const position = BigInt(this.index + 1)
    const delivery: Delivery<Msg> = { message: this.items[this.index], position, id: `d${position}` }
    this.index++
    this.open = delivery
    this.trace.push(`next ${delivery.id}`)
    return this.asyncNext ? Promise.resolve(delivery) : delivery
  }
  put(messages: readonly Msg[], delivery: Delivery<Msg>): void {
    this.trace.push(`put ${delivery.id} ${JSON.stringify(messages)}`)
    this.staged = messages
  }
  async commit(delivery: Delivery<Msg>, info: CommitInfo): Promise<void> {
    this.trace.push(`commit ${delivery.id} effects=${info.effects}`)
    if (delivery.message !== null && delivery.message !== undefined) this.committed.push(delivery.message)
    if (this.staged) this.putResults.push([...this.staged])
    this.staged = undefined
    this.open = undefined
  }
  rollback(): void {
    this.trace.push(`rollback ${this.open?.id}`)
    this.staged = undefined
    this.open = undefined
    this.index--
  }
}

const counter: Program<number, number> = {
  init: () => [0],
  update: (n, sum) => [sum + n],
}

describe('run over an inbox', () => {
  test('processes messages in the order they were put and ends when the inbox closes', async () => {
    const box = inbox<string>({ capacity: 1000 })
    const handle = run({ init: () => [''], update: (msg, seen) => [seen + msg] }, box)
    const letters = 'the quick brown fox jumps over the lazy dog'.split('')
    for (const letter of letters) await box.put(letter)
    box.close()
    expect(await handle.done).toEqual({ model: letters.join(''), position: undefined, reason: 'ended' })
    expect(handle.metrics()).toEqual({
      processed: letters.length,
      committed: letters.length,
      rolledBack: 0,
      replayed: 0,
      commandsRun: 0,
      commandsSkipped: 0,
      errors: 0,
    })
  })

  test('delivers command results before the next message from outside', async () => {
    const box = inbox<string>({ capacity: 10 })
    await box.put('a')
    await box.put('b')
    const handle = run(
      {
        init: () => [[] as string[]],
        update: (msg, seen) => [[...seen, msg], msg === 'a' ? [() => 'a1', async () => 'a2'] : []],
      },
      box,
    )
    await until(() => handle.model().length === 4)
    box.close()
    expect((await handle.done).model).toEqual(['a', 'a1', 'a2', 'b'])
  })

  test('a full inbox makes put wait until the program commits a message', async () => {
    const box = inbox<number>({ capacity: 2 })
    await box.put(1)
    await box.put(2)
    expect(box.tryPut(3)).toBe(false)
    let third = false
    const putting = box.put(3).then(() => {
      third = true
    })
    await Promise.resolve()
    expect(third).toBe(false)
    expect(box.size).toBe(2)
    const gate = deferred<number>()
    const handle = run(
      { init: () => [0], update: (n: number, sum: number) => [sum + n, n === 1 ? [() => gate.promise] : []] },
      box,
    )
    // Message 1 is being processed (its command waits on the gate): it still holds its place.
    await until(() => handle.metrics().commandsRun === 1)
    expect(third).toBe(false)
    gate.resolve(0)
    await putting
    expect(third).toBe(true)
    box.close()
    expect((await handle.done).model).toEqual(6)
  })

  test('a waiting put gives up with OVERLOADED after timeoutMs, and with ABORTED when its signal aborts', async () => {
    const box = inbox<number>({ capacity: 1 })
    await box.put(1)
    const timedOut = box.put(2, { timeoutMs: 5 })
    await expect(timedOut).rejects.toMatchObject({ code: 'OVERLOADED' })
    const controller = new AbortController()
    const aborted = box.put(3, { signal: controller.signal })
    controller.abort()
    await expect(aborted).rejects.toMatchObject({ code: 'ABORTED' })
    const closing = box.put(4)
    box.close()
    await expect(closing).rejects.toMatchObject({ code: 'STORE_CLOSED' })
    await expect(box.put(5)).rejects.toMatchObject({ code: 'STORE_CLOSED' })
    // Only the first message got in.
    expect((await run(counter, box).done).model).toBe(1)
  })

  test('an inbox capacity that is not a positive integer is INVALID_OPTIONS', () => {
    expect(() => inbox({ capacity: 0 })).toThrow(expect.objectContaining({ code: 'INVALID_OPTIONS' }))
    expect(() => inbox({ capacity: 1.5 })).toThrow(expect.objectContaining({ code: 'INVALID_OPTIONS' }))
  })

  test('stop() finishes the delivery in hand and ends with reason stopped', async () => {
    const box = inbox<number>({ capacity: 10 })
    const gate = deferred<number | null>()
    const handle = run({ init: () => [0], update: (n: number, sum: number) => [sum + n, [() => gate.promise]] }, box)
    await box.put(5)
    await until(() => handle.metrics().commandsRun === 1)
    const stopped = handle.stop()
    gate.resolve(null)
    await stopped
    expect(await handle.done).toEqual({ model: 5, position: undefined, reason: 'stopped' })
    expect(handle.metrics().committed).toBe(1)
  })

  test('a source serves one run at a time: a second run on it is INVALID_OPTIONS and the first goes on', async () => {
    const box = inbox<number>({ capacity: 4 })
    const first = run(counter, box)
    const second = run(counter, box)
    await expect(second.done).rejects.toMatchObject({ code: 'INVALID_OPTIONS' })
    await box.put(2)
    box.close()
    expect((await first.done).model).toBe(2)
  })

  test('stop() while waiting for a message ends at once', async () => {
    const handle = run(counter, inbox<number>({ capacity: 1 }))
    await handle.stop()
    expect((await handle.done).reason).toBe('stopped')
  })
})

describe("the inbox's shared delivery (a run whose callbacks take no delivery)", () => {
  // Past one deque chunk (1,024) and one clock check of the loop (1,024 deliveries).
  const N = 2500
  type M = number | string

  /** Every message is traced; 7s yield a sync result, 11s an async one (delivered before n + 1). */
  const tracing = (trace: M[]): Program<number, M> => ({
    init: () => [0],
    update: (msg, sum) => {
      trace.push(msg)
      if (typeof msg === 'string') return [sum]
      const commands: Cmd<M>[] = []
      if (msg % 7 === 0) commands.push(() => `s${msg}`)
      if (msg % 11 === 0) commands.push(async () => `a${msg}`)
      return [sum + msg, commands]
    },
  })

  function filled(count: number): ReturnType<typeof inbox<M>> {
    const box = inbox<M>({ capacity: count })
    for (let n = 1; n <= count; n++) expect(box.tryPut(n)).toBe(true)
    return box
  }

  test('the inbox hands out one delivery object while shared, a new one per message otherwise', () => {
    const box = inbox<number>({ capacity: 4 })
    for (const n of [1, 2, 3]) box.tryPut(n)
    const signal = new AbortController().signal
    box.start()
    box[SHARE_DELIVERY]()
    const first = box.next(signal) as Delivery<number>
    expect(first).toMatchObject({ message: 1, id: '1' })
    box.commit(first, { effects: false })
    const second = box.next(signal) as Delivery<number>
    expect(second).toBe(first)
    expect(second).toMatchObject({ message: 2, id: '2' })
    box.commit(second, { effects: false })
    box.detach()
    const third = box.next(signal) as Delivery<number>
    expect(third).not.toBe(second)
    expect(third).toMatchObject({ message: 3, id: '3' })
    expect(second).toMatchObject({ message: 2, id: '2' })
  })

  test('gives the same messages in the same order as a run whose callbacks see every delivery, and as batch', async () => {
    const expected: M[] = []
    for (let n = 1; n <= N; n++) {
      expected.push(n)
      if (n % 7 === 0) expected.push(`s${n}`)
      if (n % 11 === 0) expected.push(`a${n}`)
    }
    const shared: M[] = []
    const box = filled(N)
    box.close()
    const handle = run(tracing(shared), box)
    const sum = (N * (N + 1)) / 2
    expect(await handle.done).toEqual({ model: sum, position: undefined, reason: 'ended' })
    expect(shared).toEqual(expected)

    const seen: Delivery<M>[] = []
    const own: M[] = []
    const ownBox = filled(N)
    ownBox.close()
    const replay = (delivery: Delivery<M>) => (seen.push(delivery), false)
    expect((await run(tracing(own), ownBox, { replay }).done).model).toBe(sum)
    expect(own).toEqual(expected)
    // Each delivery a callback saw is its own object and still holds its message.
    expect(seen.filter((d) => d.id !== 'init').map((d) => d.message)).toEqual(expected)

    const batched: M[] = []
    const batchBox = filled(N)
    expect((await batch(tracing(batched), batchBox)).model).toBe(sum)
    expect(batched).toEqual(expected)
  })

  test('a failure with onError stop rolls the shared delivery back: later runs get it again, and a kept one stays unchanged', async () => {
    const box = filled(10)
    box.close()
    let failing = true
    const failOn5: Program<number, M> = {
      init: () => [0],
      update: (msg, sum) => {
        if (msg === 5 && failing) throw new Error('five')
        return [sum + (msg as number)]
      },
    }
    const first = run(failOn5, box)
    await expect(first.done).rejects.toMatchObject({ code: 'RUNTIME_UPDATE_FAILED' })
    expect(first.model()).toBe(1 + 2 + 3 + 4)
    // A run with a callback is handed the rolled-back delivery and keeps it.
    const kept: Delivery<M>[] = []
    const second = run(failOn5, box, { onError: (_, delivery) => (kept.push(delivery), 'stop') })
    await expect(second.done).rejects.toMatchObject({ code: 'RUNTIME_UPDATE_FAILED' })
    expect(kept.map((d) => [d.id, d.message])).toEqual([['5', 5]])
    // A third run shares a delivery again: not the one the callback kept.
    failing = false
    const trace: M[] = []
    const third = run(tracing(trace), box)
    expect((await third.done).model).toBe(5 + 6 + 7 + 8 + 9 + 10)
    expect(trace).toEqual([5, 6, 7, 's7', 8, 9, 10])
    expect(kept.map((d) => [d.id, d.message])).toEqual([['5', 5]])
  })

  test('onError skip commits a failing shared delivery unchanged and goes on in order; an onError function keeps its own deliveries', async () => {
    const skipped = [500, 1000, 1500, 2000, 2500]
    const kept: Delivery<M>[] = []
    const options: RunOptions<M>[] = [{ onError: 'skip' }, { onError: (_, delivery) => (kept.push(delivery), 'skip') }]
    for (const opts of options) {
      const box = filled(N)
      box.close()
      const trace: M[] = []
      const handle = run(
        {
          init: () => [0],
          update: (msg, sum) => {
            trace.push(msg)
            if (typeof msg === 'number' && msg % 500 === 0) throw new Error('skip me')
            return [sum + (msg as number)]
          },
        },
        box,
        opts,
      )
      expect((await handle.done).model).toBe((N * (N + 1)) / 2 - skipped.reduce((a, b) => a + b))
      expect(trace).toEqual(Array.from({ length: N }, (_, i) => i + 1))
      expect(handle.metrics()).toMatchObject({ processed: N - skipped.length, committed: N, errors: skipped.length, rolledBack: 0 })
    }
    expect(kept.map((d) => [d.id, d.message])).toEqual(skipped.map((n) => [String(n), n]))
  })

  test('stop mid-stream ends after the delivery in hand; a later run goes on with the next message', async () => {
    const box = filled(N)
    box.close()
    const trace: M[] = []
    let handle: RunHandle<number> | undefined
    handle = run(
      {
        init: () => [0],
        update: (msg, sum) => [sum + (msg as number)],
        view: (_, info) => {
          if (info.position === undefined && handle !== undefined && handle.metrics().processed === 1200) void handle.stop()
        },
      },
      box,
    )
    expect(await handle.done).toEqual({ model: (1200 * 1201) / 2, position: undefined, reason: 'stopped' })
    expect((await run(tracing(trace), box).done).model).toBe((N * (N + 1)) / 2 - (1200 * 1201) / 2)
    expect(trace.filter((m) => typeof m === 'number')).toEqual(Array.from({ length: N - 1200 }, (_, i) => i + 1201))
  })

  test('an abort mid-stream rolls the shared delivery back; a later run gets it again, then the rest in order', async () => {
    const box = filled(N)
    box.close()
    const controller = new AbortController()
    const handle = run(
      {
        init: () => [0],
        update: (msg, sum) => {
          if (msg !== 1300) return [sum + (msg as number)]
          controller.abort()
          return [sum + msg, [() => 'never']]
        },
      },
      box,
      { signal: controller.signal },
    )
    expect(await handle.done).toEqual({ model: (1299 * 1300) / 2, position: undefined, reason: 'aborted' })
    expect(handle.metrics()).toMatchObject({ rolledBack: 1, commandsRun: 0 })
    const trace: M[] = []
    expect((await run(tracing(trace), box).done).model).toBe((N * (N + 1)) / 2 - (1299 * 1300) / 2)
    expect(trace.filter((m) => typeof m === 'number')).toEqual(Array.from({ length: N - 1299 }, (_, i) => i + 1300))
  })
})

describe('the tick', () => {
  test('takes the next delivery only after the previous one is committed', async () => {
    const source = new TracingSource<number>([1, 2, 3, 4], true)
    const handle = run(
      {
        init: () => [0],
        update: (n, sum) => [sum + n, n % 2 === 0 ? [async () => null, () => null] : [() => null]],
      },
      source,
    )
    await handle.done
    expect(source.violations).toEqual([])
    expect(source.trace).toEqual([
      'next d1', 'commit d1 effects=true',
      'next d2', 'commit d2 effects=true',
      'next d3', 'commit d3 effects=true',
      'next d4', 'commit d4 effects=true',
    ])
  })

  test('null messages are committed without calling update; null commands and null results are ignored', async () => {
    const seen: number[] = []
    const source = new TracingSource<number>([1, null, 2])
    const handle = run(
      {
        init: () => [0, [null, undefined]],
        update: (n, sum) => {
          seen.push(n)
          return [sum + n, [null, () => null, undefined, async () => undefined, n === 2 ? () => 7 : null]]
        },
      },
      source,
    )
    const result = await handle.done
    // This source takes results without delivering them back: only 1 and 2 reach update.
    expect(seen).toEqual([1, 2])
    expect(result).toEqual({ model: 3, position: 3n, reason: 'ended' })
    expect(source.trace).toEqual([
      'next d1', 'commit d1 effects=true',
      'next d2', 'commit d2 effects=false',
      'next d3', 'put d3 [7]', 'commit d3 effects=true',
    ])
    expect(handle.metrics()).toMatchObject({ processed: 2, committed: 3, commandsRun: 5 })
  })

  test('command results are put in command order whatever order the commands finish in', async () => {
    const gates = [deferred<string>(), deferred<string>(), deferred<string>()]
    const source = new TracingSource<string>(['go'])
    const handle = run(
      {
        init: () => [''],
        update: (msg, model) => [model + msg, msg === 'go' ? gates.map((gate) => () => gate.promise) : []],
      },
      { ...bind(source), put: undefined },
    )
    // No put: a result is an error (the source cannot take it).
    await until(() => handle.metrics().commandsRun === 3)
    gates[2]!.resolve('c')
    gates[0]!.resolve('a')
    gates[1]!.resolve('b')
    await expect(handle.done).rejects.toMatchObject({ code: 'RUNTIME_COMMAND_FAILED' })

    const ordered = [deferred<string | null>(), deferred<string | null>(), deferred<string | null>(), deferred<string | null>()]
    const traced = new TracingSource<string>(['go'])
    const second = run(
      {
        init: () => [''],
        update: (msg, model) => [model + msg, msg === 'go' ? ordered.map((gate) => () => gate.promise) : []],
      },
      traced,
    )
    await until(() => second.metrics().commandsRun === 4)
    ordered[3]!.resolve(null)
    ordered[2]!.resolve('c')
    await Promise.resolve()
    ordered[1]!.resolve('b')
    ordered[0]!.resolve('a')
    await second.done
    expect(traced.putResults).toEqual([['a', 'b', 'c']])
  })

  test('update returning a Promise is INVALID_OPTIONS and rolls the delivery back', async () => {
    const source = new TracingSource<number>([1])
    const program = { init: () => [0] as [number], update: async (n: number, sum: number) => [sum + n] as [number] }
    // @ts-expect-error update must be synchronous
    const handle = run(program, source)
    await expect(handle.done).rejects.toMatchObject({ code: 'INVALID_OPTIONS' })
    expect(source.trace).toEqual(['next d1', 'rollback d1'])
  })

  test('a throwing update is RUNTIME_UPDATE_FAILED with the position; stop rolls back, skip commits unchanged', async () => {
    const boom = (n: number, sum: number): [number] => {
      if (n === 2) throw new Error('two is not allowed')
      return [sum + n]
    }
    const stopping = new TracingSource<number>([1, 2, 3])
    const stopped = run({ init: () => [0], update: boom }, stopping)
    const error = await stopped.done.then(() => undefined, (e: unknown) => e)
    expect(error).toMatchObject({ code: 'RUNTIME_UPDATE_FAILED', position: 2n, cause: new Error('two is not allowed') })
    expect(stopped.model()).toBe(1)
    expect(stopping.trace.slice(-2)).toEqual(['next d2', 'rollback d2'])
    expect(stopped.metrics()).toMatchObject({ errors: 1, rolledBack: 1, committed: 1 })

    const failures: [string, bigint | undefined][] = []
    const skipping = run({ init: () => [0], update: boom }, new TracingSource<number>([1, 2, 3]), {
      onError: (e, delivery) => {
        failures.push([(e as Error & { code: string }).code, delivery.position])
        return 'skip'
      },
    })
    expect(await skipping.done).toEqual({ model: 4, position: 3n, reason: 'ended' })
    expect(failures).toEqual([['RUNTIME_UPDATE_FAILED', 2n]])
    expect(skipping.metrics()).toMatchObject({ errors: 1, committed: 3, rolledBack: 0 })
  })

  test('a throwing view is RUNTIME_UPDATE_FAILED', async () => {
    const handle = run(
      {
        init: () => [0],
        update: (n: number, sum: number) => [sum + n],
        view: (sum) => {
          if (sum > 2) throw new Error('cannot show')
        },
      },
      new TracingSource<number>([1, 2, 3]),
    )
    await expect(handle.done).rejects.toMatchObject({ code: 'RUNTIME_UPDATE_FAILED', position: 2n })
    expect(handle.model()).toBe(1)
  })

  test('a failing command is RUNTIME_COMMAND_FAILED, aborts its siblings, and with skip commits without results', async () => {
    let siblingAborted = false
    const program: Program<number, number> = {
      init: () => [0],
      update: (n, sum) => [
        sum + n,
        n === 2
          ? [
              ({ signal }) =>
                new Promise<number>((_, reject) => {
                  signal.addEventListener('abort', () => {
                    siblingAborted = true
                    reject(signal.reason)
                  })
                }),
              async () => {
                throw new Error('payment service down')
              },
            ]
          : [],
      ],
    }
    const stopping = new TracingSource<number>([1, 2])
    const error = await run(program, stopping).done.then(() => undefined, (e: unknown) => e)
    expect(error).toMatchObject({ code: 'RUNTIME_COMMAND_FAILED', position: 2n, cause: new Error('payment service down') })
    expect(siblingAborted).toBe(true)
    expect(stopping.trace.slice(-1)).toEqual(['rollback d2'])

    const skipping = new TracingSource<number>([1, 2, 3])
    const handle = run(program, skipping, { onError: 'skip' })
    expect(await handle.done).toEqual({ model: 4, position: 3n, reason: 'ended' })
    expect(skipping.trace).toContain('commit d2 effects=true')
  })

  test('a command that throws synchronously fails the tick, and its started siblings see the abort', async () => {
    let siblingAborted = false
    const source = new TracingSource<number>([1])
    const controller = new AbortController()
    const handle = run(
      {
        init: () => [0],
        update: (n: number, sum: number) => [
          sum + n,
          [
            ({ signal }) => new Promise<null>((resolve) => signal.addEventListener('abort', () => ((siblingAborted = true), resolve(null)))),
            () => {
              throw new Error('bad input')
            },
            () => 1,
          ],
        ],
      },
      source,
      { signal: controller.signal },
    )
    await expect(handle.done).rejects.toMatchObject({ code: 'RUNTIME_COMMAND_FAILED', position: 1n, cause: new Error('bad input') })
    expect(siblingAborted).toBe(true)
    expect(handle.metrics().commandsRun).toBe(3)
    const alone = run(
      { init: () => [0], update: (n: number, sum: number) => [sum + n, [() => { throw new Error('alone') }, () => 2]] },
      new TracingSource<number>([1]),
    )
    await expect(alone.done).rejects.toMatchObject({ code: 'RUNTIME_COMMAND_FAILED', cause: new Error('alone') })
  })

  test('view sees every model in run mode, with the position and the replay flag', async () => {
    const views: [number, bigint | undefined, boolean][] = []
    const handle = run(
      {
        init: () => [0],
        update: (n: number, sum: number) => [sum + n],
        view: (sum, { position, replaying }) => views.push([sum, position, replaying]),
      },
      new TracingSource<number>([1, 2, 3]),
      { replay: (delivery) => delivery.position === 1n },
    )
    await handle.done
    expect(views).toEqual([
      [0, undefined, false],
      [1, 1n, true],
      [3, 2n, false],
      [6, 3n, false],
    ])
  })
})

describe('replay', () => {
  /** A subscription program whose commands count their calls. */
  function program(calls: { count: number }): Program<Record<string, number>, { user: string; days: number }> {
    return {
      init: () => [{}, [() => (calls.count++, null)]],
      update: (msg, model) => [
        { ...model, [msg.user]: (model[msg.user] ?? 0) + msg.days },
        [() => (calls.count++, null), async () => (calls.count++, undefined)],
      ],
    }
  }
  const log = [
    { user: 'ada', days: 30 },
    { user: 'bob', days: 7 },
    { user: 'ada', days: 365 },
  ]

  test('replaying a recorded log runs no command and computes the same model', async () => {
    const live = { count: 0 }
    const first = run(program(live), fromIterable(log))
    const liveResult = await first.done
    expect(live.count).toBe(7)

    const replayed = { count: 0 }
    const second = run(program(replayed), fromIterable(log), { replay: true })
    const replayResult = await second.done
    expect(replayed.count).toBe(0)
    expect(replayResult.model).toEqual(liveResult.model)
    expect(second.metrics()).toMatchObject({ replayed: 3, commandsRun: 0, commandsSkipped: 7 })
  })

  test('a replay function turns commands off for the deliveries it selects, init included', async () => {
    const calls = { count: 0 }
    const asked: string[] = []
    const handle = run(program(calls), fromIterable(log), {
      replay: (delivery) => {
        asked.push(delivery.id)
        return delivery.id !== '3'
      },
    })
    await handle.done
    expect(asked).toEqual(['init', '1', '2', '3'])
    expect(calls.count).toBe(2)
  })
})

describe('batch', () => {
  test('reaches quiescence only when results of results are done, and calls view once', async () => {
    // Each order fans out into shipments, each shipment into a notification: three generations.
    type Msg = { kind: 'order'; id: number } | { kind: 'shipment'; id: number; part: number } | { kind: 'notified'; id: number }
    const views: string[][] = []
    const result = await batch(
      {
        init: () => [[] as string[]],
        update: (msg: Msg, seen: string[]): [string[], Cmd<Msg>[]] => {
          if (msg.kind === 'order') {
            return [[...seen, `order ${msg.id}`], [1, 2].map((part) => async () => ({ kind: 'shipment' as const, id: msg.id, part }))]
          }
          if (msg.kind === 'shipment') {
            return [[...seen, `shipment ${msg.id}.${msg.part}`], [cmd.delay(1, { kind: 'notified' as const, id: msg.id })]]
          }
          return [[...seen, `notified ${msg.id}`], []]
        },
        view: (seen) => views.push(seen),
      },
      fromIterable<Msg>([{ kind: 'order', id: 1 }, { kind: 'order', id: 2 }]),
    )
    expect(result.processed).toBe(10)
    expect(result.model).toEqual([
      'order 1', 'shipment 1.1', 'shipment 1.2', 'notified 1', 'notified 1',
      'order 2', 'shipment 2.1', 'shipment 2.2', 'notified 2', 'notified 2',
    ])
    expect(views).toEqual([result.model])
  })

  test('over an inbox it ends when the inbox is empty, and the inbox serves a later run', async () => {
    const box = inbox<number>({ capacity: 10 })
    await box.put(1)
    await box.put(2)
    expect(await batch({ init: () => [0], update: (n: number, sum: number) => [sum + n, n === 2 ? cmd.of(10) : []] }, box)).toEqual({
      model: 13,
      processed: 3,
      position: undefined,
    })
    const later = run(counter, box)
    await box.put(4)
    box.close()
    expect((await later.done).model).toBe(4)
  })

  test('a batch that is aborted rejects ABORTED', async () => {
    const controller = new AbortController()
    const pending = batch(
      { init: () => [0], update: (n: number, sum: number) => [sum + n, [({ signal }) => new Promise<null>((_, reject) => signal.addEventListener('abort', () => reject(signal.reason)))]] },
      fromIterable([1]),
      { signal: controller.signal },
    )
    await Promise.resolve()
    controller.abort()
    await expect(pending).rejects.toMatchObject({ code: 'ABORTED' })
  })
})

describe('cancellation', () => {
  test('an abort while waiting for a message ends the run with reason aborted', async () => {
    const controller = new AbortController()
    const handle = run(counter, inbox<number>({ capacity: 4 }), { signal: controller.signal })
    controller.abort()
    expect(await handle.done).toEqual({ model: 0, position: undefined, reason: 'aborted' })
  })

  test('an abort during a command rolls the delivery back; the next run gets it again', async () => {
    const controller = new AbortController()
    const box = inbox<number>({ capacity: 4 })
    let sawAbort = false
    const handle = run(
      {
        init: () => [0],
        update: (n: number, sum: number) => [
          sum + n,
          [({ signal }) => new Promise<number | null>((_, reject) => signal.addEventListener('abort', () => {
            sawAbort = true
            reject(signal.reason)
          }))],
        ],
      },
      box,
      { signal: controller.signal },
    )
    await box.put(3)
    await until(() => handle.metrics().commandsRun === 1)
    controller.abort()
    expect(await handle.done).toEqual({ model: 0, position: undefined, reason: 'aborted' })
    expect(sawAbort).toBe(true)
    expect(handle.metrics()).toMatchObject({ rolledBack: 1, committed: 0 })
    expect(box.size).toBe(1)
    box.close()
    expect((await run(counter, box).done).model).toBe(3)
  })

  test('an abort ends the tick even when a command ignores its signal', async () => {
    const controller = new AbortController()
    const source = new TracingSource<number>([1, 2])
    const handle = run({ init: () => [0], update: (n: number, sum: number) => [sum + n, [() => new Promise<null>(() => {})]] }, source, {
      signal: controller.signal,
    })
    await until(() => handle.metrics().commandsRun === 1)
    controller.abort()
    expect((await handle.done).reason).toBe('aborted')
    expect(source.trace).toEqual(['next d1', 'rollback d1'])
  })

  test('cmd.delay yields its message after the delay, and the signal cancels the timer', async () => {
    const delayed = cmd.delay(1, 'tick')!
    expect(await delayed({ signal: new AbortController().signal })).toBe('tick')
    const controller = new AbortController()
    const waiting = cmd.delay(60_000, 'never')!({ signal: controller.signal })
    controller.abort()
    await expect(waiting).rejects.toMatchObject({ code: 'ABORTED' })
    expect(() => cmd.delay(-1, 'x')).toThrow(expect.objectContaining({ code: 'INVALID_OPTIONS' }))
  })

  test('cmd.of and cmd.map build commands whose results arrive in order', async () => {
    const mapped = cmd.map([...cmd.of(1, 2), null, async () => 3, () => null], (n: number) => `#${n}`)
    const io = { signal: new AbortController().signal }
    expect(await Promise.all(mapped.map((c) => c!(io)))).toEqual(['#1', '#2', '#3', null])
  })
})

describe('fromBus', () => {
  type Ev = { type: 'order-placed'; total: number } | { type: 'receipt-sent'; total: number } | { type: 'noise' }

  test('delivers the chosen event types and publishes command results back to the bus', async () => {
    const bus = new EventBus<Ev>({ capacity: 64 })
    const receipts: number[] = []
    bus.on('receipt-sent', (event: Extract<Ev, { type: 'receipt-sent' }>) => receipts.push(event.total))
    const source = fromBus(bus, ['order-placed'])
    const handle = run(
      {
        init: () => [0],
        update: (event, sum) => [sum + event.total, [() => ({ type: 'receipt-sent' as const, total: event.total })]],
      },
      source,
    )
    bus.publish({ type: 'order-placed', total: 5 })
    bus.publish({ type: 'noise' })
    bus.publish({ type: 'order-placed', total: 7 })
    bus.drain()
    await until(() => handle.metrics().committed === 2)
    bus.drain()
    expect(receipts).toEqual([5, 7])
    source.close()
    expect(await handle.done).toEqual({ model: 12, position: undefined, reason: 'ended' })
  })

  test('drops events past its capacity and counts them (at most once)', async () => {
    const bus = new EventBus<Ev>({ capacity: 64 })
    const source = fromBus(bus, ['order-placed'], { capacity: 2 })
    for (let i = 0; i < 5; i++) bus.publish({ type: 'order-placed', total: i })
    bus.drain()
    expect(source.dropped).toBe(3)
    source.close()
    expect((await run({ init: () => [0], update: (event, sum) => [sum + 1] }, source).done).model).toBe(2)
  })
})

function bind<Msg>(source: Source<Msg, Msg>): Source<Msg, Msg> {
  return {
    next: source.next.bind(source),
    commit: source.commit.bind(source),
    rollback: source.rollback.bind(source),
    put: source.put?.bind(source),
  }
}

describe('against a reference interpreter', () => {
  test('random programs with sync, async, null and slow commands give the order a synchronous interpreter gives', async () => {
    for (let seed = 1; seed <= 25; seed++) {
      const random = seededRandom(seed)
      // A message is a path in a tree: each message below depth 3 fans out into 0..3 children,
      // some null, each computed by a command that is sync, async, or finishes after a random delay.
      const fanOut = new Map<string, ({ child: string; mode: number } | null)[]>()
      const children = (msg: string) => {
        let made = fanOut.get(msg)
        if (made === undefined) {
          const count = msg.split('.').length > 3 ? 0 : Math.floor(random() * 4)
          made = Array.from({ length: count }, (_, i) => (random() < 0.2 ? null : { child: `${msg}.${i}`, mode: Math.floor(random() * 4) }))
          fanOut.set(msg, made)
        }
        return made
      }
      const items = Array.from({ length: 1 + Math.floor(random() * 6) }, (_, i) => `m${i}`)

      // The reference: results of a delivery, in command order, queued behind earlier results and
      // ahead of the next item.
      const expected: string[] = []
      const lane: string[] = []
      const visit = (msg: string) => {
        expected.push(msg)
        for (const spec of children(msg)) if (spec !== null && spec.mode !== 3) lane.push(spec.child)
      }
      for (const item of items) {
        visit(item)
        while (lane.length > 0) visit(lane.shift()!)
      }

      const delays = seededRandom(seed * 7919)
      const command = (spec: { child: string; mode: number } | null): Cmd<string> => {
        if (spec === null) return null
        switch (spec.mode) {
          case 0:
            return () => spec.child
          case 1:
            return async () => spec.child
          case 2:
            return cmd.delay(Math.floor(delays() * 3), spec.child)
          default:
            return async () => null // ran, yielded nothing
        }
      }
      const { model } = await batch(
        { init: () => [[] as string[]], update: (msg: string, seen: string[]) => [[...seen, msg], children(msg).map(command)] },
        fromIterable(items),
      )
      expect({ seed, order: model }).toEqual({ seed, order: expected })
    }
  })
})
