/**
 * Live projection behaviour every backend must show (DESIGN.md 6.2), in one process. The
 * multi-process guarantees (SIGKILL, two runners) are in `multiprocess.test.ts`.
 */
import { describe, expect, test } from 'bun:test'
import type { EventStore } from '../store/types.ts'
import { defineProjection, type ProjectionDefinition } from './projection.ts'
import { duplicates, eventually, readRows, resetRows, setupRows, writeRows } from './readmodel.testkit.ts'
import { startProjections, type ProjectionRunner, type RunnerOptions } from './runner.ts'

let counter = 0
const uniqueName = (label: string) => `${label}_${process.pid}_${++counter}`

/** A projection writing one row per event into its version's table. */
export function rowsProjection(name: string, extra?: Partial<ProjectionDefinition>) {
  return defineProjection({
    name,
    query: [{ types: ['OrderPlaced', 'OrderShipped'] }],
    setup: setupRows,
    reset: resetRows,
    handle: writeRows,
    ...extra,
  })
}

function orders(n: number, from = 0) {
  return Array.from({ length: n }, (_, i) => ({ type: 'OrderPlaced', tags: [`order:o${from + i}`], data: { total: from + i } }))
}

const fast: RunnerOptions = { leaseMs: 1_000 }

export function describeRunner(backend: string, open: () => Promise<EventStore>): void {
  describe(`${backend}: live projections`, () => {
    async function withRunner(
      store: EventStore,
      defs: Parameters<typeof startProjections>[1],
      options: RunnerOptions,
      body: (runner: ProjectionRunner) => Promise<void>,
    ) {
      const runner = startProjections(store, defs, options)
      try {
        await runner.ready
        await body(runner)
      } finally {
        await runner.stop()
      }
    }

    test('catches up, follows live, and commits one row per event with its checkpoint', async () => {
      const store = await open()
      try {
        const name = uniqueName('totals')
        await store.append(orders(1200))
        await store.append({ type: 'Unrelated' })
        await withRunner(store, [rowsProjection(name, { batchSize: 100 })], fast, async (runner) => {
          await runner.waitFor(await store.head())
          expect((await readRows(store, name)).length).toBe(1200)
          const { position } = await store.append(orders(5, 1200))
          await runner.waitFor(position)
          const rows = await readRows(store, name)
          expect(rows.length).toBe(1205)
          expect(duplicates(rows)).toEqual([])
          const [status] = await runner.status()
          expect(status).toMatchObject({ name, version: 1, partition: 0, state: 'live', position, head: position, lag: 0n, owner: runner.instanceId, active: true, errorCount: 0 })
        })
      } finally {
        await store.close()
      }
    })

    test('waitFor(head) returns promptly for a projection whose query matches nothing new', async () => {
      const store = await open()
      try {
        const name = uniqueName('rare')
        const rare = defineProjection({ name, query: [{ types: ['Rare'] }], setup: setupRows, handle: writeRows })
        await withRunner(store, [rare], fast, async (runner) => {
          await store.append({ type: 'Rare' })
          for (let i = 0; i < 20; i++) await store.append(orders(10, i * 10))
          const head = await store.head()
          const started = Date.now()
          await runner.waitFor(head, { timeoutMs: 5_000 })
          expect(Date.now() - started).toBeLessThan(3_000)
          const [status] = await runner.status()
          expect(status!.position).toBe(head)
          expect((await readRows(store, name)).length).toBe(1)
        })
      } finally {
        await store.close()
      }
    })

    test('waitFor rejects WAIT_TIMEOUT when the position is not reached in time', async () => {
      const store = await open()
      try {
        const name = uniqueName('paused')
        await withRunner(store, [rowsProjection(name)], fast, async (runner) => {
          runner.pause(name)
          const { position } = await store.append(orders(1))
          const error = await runner.waitFor(position, { timeoutMs: 50 }).catch((e) => e)
          expect(error.code).toBe('WAIT_TIMEOUT')
          expect((await runner.status())[0]!.state).toBe('paused')
          runner.resume(name)
          await runner.waitFor(position)
        })
      } finally {
        await store.close()
      }
    })

    test('a poison event faults only its projection, at the event before it; the others go on and resume retries it', async () => {
      const store = await open()
      try {
        const poisoned = uniqueName('poisoned')
        const healthy = uniqueName('healthy')
        let poison = true
        const failing = rowsProjection(poisoned, {
          batchSize: 50,
          onError: { retries: 2, backoffMs: 1, maxBackoffMs: 5 },
          handle: async (events, ctx) => {
            if (poison && events.some((e) => (e.data as { total: number }).total === 7)) throw new Error('cannot handle order 7')
            await writeRows(events, ctx)
          },
        })
        await store.append(orders(20))
        const seventh = (await store.query([{ tags: ['order:o7'] }]))[0]!.position
        await withRunner(store, [failing, rowsProjection(healthy)], fast, async (runner) => {
          await runner.waitFor(await store.head(), { names: [healthy] })
          const faulted = await eventually(async () => (await runner.status()).find((s) => s.name === poisoned && s.state === 'faulted'), 'the fault')
          expect(faulted.position).toBe(seventh - 1n)
          expect(faulted.lastError).toBe('cannot handle order 7')
          expect(faulted.errorCount).toBeGreaterThanOrEqual(3)
          expect((await readRows(store, poisoned)).length).toBe(7)
          const { position } = await store.append(orders(3, 100))
          await runner.waitFor(position, { names: [healthy] })
          poison = false
          runner.resume(poisoned)
          await runner.waitFor(position)
          const rows = await readRows(store, poisoned)
          expect(rows.length).toBe(23)
          expect(duplicates(rows)).toEqual([])
        })
      } finally {
        await store.close()
      }
    })

    test('a failing setup faults the shard, and resume runs setup again before the first batch', async () => {
      const store = await open()
      try {
        const name = uniqueName('setupfail')
        let failSetup = true
        const def = rowsProjection(name, {
          setup: async (ctx) => {
            if (failSetup) throw new Error('no database rights yet')
            await setupRows(ctx)
          },
        })
        await store.append(orders(3))
        await withRunner(store, [def], fast, async (runner) => {
          const faulted = await eventually(async () => (await runner.status()).find((s) => s.state === 'faulted'), 'the fault')
          expect(faulted.lastError).toBe('setup failed: no database rights yet')
          failSetup = false
          runner.resume(name)
          await runner.waitFor(await store.head())
          expect((await readRows(store, name)).length).toBe(3)
        })
      } finally {
        await store.close()
      }
    })

    test("then: 'skip' records the event in the dead-letter table and goes on", async () => {
      const store = await open()
      try {
        const name = uniqueName('skipping')
        const skipping = rowsProjection(name, {
          onError: { retries: 1, backoffMs: 1, then: 'skip' },
          handle: async (events, ctx) => {
            if (events.some((e) => (e.data as { total: number }).total === 3)) throw new Error('bad order')
            await writeRows(events, ctx)
          },
        })
        await store.append(orders(6))
        const third = (await store.query([{ tags: ['order:o3'] }]))[0]!
        await withRunner(store, [skipping], fast, async (runner) => {
          await runner.waitFor(await store.head())
          expect((await readRows(store, name)).map((r) => r.position)).not.toContain(third.position)
          expect((await readRows(store, name)).length).toBe(5)
          const letters = await runner.deadLetters(name)
          expect(letters.map(({ recordedAt: _, ...rest }) => rest)).toEqual([
            { name, version: 1, partition: 0, position: third.position, eventId: third.id, type: 'OrderPlaced', error: 'bad order' },
          ])
          expect(letters[0]!.recordedAt).toBeInstanceOf(Date)
        })
      } finally {
        await store.close()
      }
    })

    test('partitions split events by a hash of the tag key, each with its own checkpoint', async () => {
      const store = await open()
      try {
        const name = uniqueName('parts')
        const parts = rowsProjection(name, { partitionBy: { tagPrefix: 'order:' }, partitions: 4 })
        await store.append(orders(200))
        await store.append({ type: 'OrderPlaced', data: { total: -1 } })
        await withRunner(store, [parts], fast, async (runner) => {
          await runner.waitFor(await store.head())
          const rows = await readRows(store, name)
          expect(rows.length).toBe(201)
          expect(duplicates(rows)).toEqual([])
          const events = await store.query([{ types: ['OrderPlaced'] }])
          const expected = new Map(events.map((e) => [e.position, parts.partitionOf(e)]))
          for (const row of rows) expect(row.partition).toBe(expected.get(row.position)!)
          expect(new Set(rows.map((r) => r.partition)).size).toBe(4)
          expect(rows.find((r) => r.position === events[events.length - 1]!.position)!.partition).toBe(0)
          const status = await runner.status()
          expect(status.map((s) => [s.partition, s.state])).toEqual([[0, 'live'], [1, 'live'], [2, 'live'], [3, 'live']])
        })
      } finally {
        await store.close()
      }
    })

    test('two runners share the partitions of a projection, and one takes all of them back when the other stops', async () => {
      const store = await open()
      try {
        const name = uniqueName('shared')
        const def = () => rowsProjection(name, { partitionBy: { tagPrefix: 'order:' }, partitions: 4 })
        const options: RunnerOptions = { leaseMs: 1_000, renewEveryMs: 50 }
        const first = startProjections(store, [def()], { ...options, instanceId: 'first' })
        await first.ready
        const second = startProjections(store, [def()], { ...options, instanceId: 'second' })
        try {
          await store.append(orders(100))
          const owners = async () => (await first.status()).map((s) => s.owner)
          await eventually(async () => {
            const now = await owners()
            return now.filter((o) => o === 'first').length === 2 && now.filter((o) => o === 'second').length === 2
          }, 'two shards each')
          await first.waitFor(await store.head())
          await second.stop()
          const { position } = await store.append(orders(10, 100))
          await first.waitFor(position)
          expect(await owners()).toEqual(['first', 'first', 'first', 'first'])
          const rows = await readRows(store, name)
          expect(rows.length).toBe(110)
          expect(duplicates(rows)).toEqual([])
        } finally {
          await second.stop()
          await first.stop()
        }
      } finally {
        await store.close()
      }
    })

    test('a poison event in one partition faults only that partition', async () => {
      const store = await open()
      try {
        const name = uniqueName('partfault')
        const parts = rowsProjection(name, {
          partitionBy: (event) => (event.data as { total: number }).total.toString(),
          partitions: 2,
          onError: { retries: 0, backoffMs: 1 },
          handle: async (events, ctx) => {
            if (events.some((e) => (e.data as { total: number }).total === 5)) throw new Error('poison')
            await writeRows(events, ctx)
          },
        })
        await store.append(orders(40))
        const poisonPartition = parts.partitionOf((await store.query([{ tags: ['order:o5'] }]))[0]!)
        await withRunner(store, [parts], fast, async (runner) => {
          const other = 1 - poisonPartition
          await eventually(async () => {
            const status = await runner.status()
            return status[poisonPartition]!.state === 'faulted' && status[other]!.state === 'live'
          }, 'one faulted and one live partition')
          const rows = await readRows(store, name)
          const events = await store.query([{ types: ['OrderPlaced'] }])
          expect(rows.filter((r) => r.partition === other).length).toBe(events.filter((e) => parts.partitionOf(e) === other).length)
        })
      } finally {
        await store.close()
      }
    })

    test('a version bump rebuilds side by side while the old version keeps serving, then takes over', async () => {
      const store = await open()
      try {
        const name = uniqueName('versioned')
        await store.append(orders(30))
        await withRunner(store, [rowsProjection(name)], fast, async (runner) => {
          await runner.waitFor(await store.head())
        })
        // Version 2 cannot build yet (its handler refuses, and is retried) while version 1 serves.
        // (A handler that blocked instead would hold the store's writer on memory and SQLite.)
        let open = false
        const v2 = rowsProjection(name, {
          version: 2,
          onError: { retries: 10_000, backoffMs: 1, maxBackoffMs: 2 },
          handle: async (events, ctx) => {
            if (ctx.version === 2 && !open) throw new Error('not yet')
            await writeRows(events, ctx)
          },
        })
        await withRunner(store, [v2], fast, async (runner) => {
          const { position } = await store.append(orders(4, 30))
          await runner.waitFor(position)
          expect((await readRows(store, name, 1)).length).toBe(34)
          const during = await runner.status()
          expect(during.map((s) => [s.version, s.state, s.active])).toEqual([
            [1, 'live', true],
            [2, 'rebuilding', false],
          ])
          open = true
          await eventually(async () => {
            const status = await runner.status()
            return status.length === 1 && status[0]!.version === 2 && status[0]!.active && status[0]!.state === 'live'
          }, 'version 2 to take over')
          const after = await store.append(orders(2, 34))
          await runner.waitFor(after.position)
          expect((await readRows(store, name, 2)).length).toBe(36)
          expect((await readRows(store, name, 1)).length).toBe(34)
        })
      } finally {
        await store.close()
      }
    })

    test('a version bump that changes the partitioning keeps the old version exactly up to date', async () => {
      const store = await open()
      try {
        const name = uniqueName('repartitioned')
        await store.append(orders(30))
        await withRunner(store, [rowsProjection(name)], fast, async (runner) => {
          await runner.waitFor(await store.head())
        })
        let open = false
        const v2 = rowsProjection(name, {
          version: 2,
          partitionBy: { tagPrefix: 'order:' },
          partitions: 4,
          onError: { retries: 10_000, backoffMs: 1, maxBackoffMs: 2 },
          handle: async (events, ctx) => {
            if (ctx.version === 2 && !open) throw new Error('not yet')
            await writeRows(events, ctx)
          },
        })
        await withRunner(store, [v2], fast, async (runner) => {
          const { position } = await store.append(orders(10, 30))
          await runner.waitFor(position)
          const v1 = await readRows(store, name, 1)
          expect(v1.length).toBe(40)
          expect(duplicates(v1)).toEqual([])
          expect((await runner.status()).filter((s) => s.version === 1).map((s) => s.partition)).toEqual([0])
          open = true
          await eventually(async () => (await runner.status()).every((s) => s.version === 2 && s.active && s.state === 'live'), 'version 2 to take over')
          const v2rows = await readRows(store, name, 2)
          expect(v2rows.length).toBe(40)
          expect(duplicates(v2rows)).toEqual([])
        })
      } finally {
        await store.close()
      }
    })

    test('rebuild resets the read model and replays it in place; waitFor waits through it', async () => {
      const store = await open()
      try {
        const name = uniqueName('rebuilt')
        await store.append(orders(50))
        let resets = 0
        const def = rowsProjection(name, {
          reset: async (ctx) => {
            resets++
            await resetRows(ctx)
          },
        })
        await withRunner(store, [def], fast, async (runner) => {
          await runner.waitFor(await store.head())
          await runner.rebuild(name)
          expect(resets).toBe(1)
          await runner.waitFor(await store.head())
          const rows = await readRows(store, name)
          expect(rows.length).toBe(50)
          expect(duplicates(rows)).toEqual([])
          expect((await runner.status())[0]!.state).toBe('live')
        })
      } finally {
        await store.close()
      }
    })

    test('stop() releases the leases at once, so another runner takes over without waiting for expiry', async () => {
      const store = await open()
      try {
        const name = uniqueName('handover')
        await store.append(orders(10))
        const slow: RunnerOptions = { leaseMs: 60_000, renewEveryMs: 50 }
        const first = startProjections(store, [rowsProjection(name)], { ...slow, instanceId: 'first' })
        await first.waitFor(await store.head())
        const second = startProjections(store, [rowsProjection(name)], { ...slow, instanceId: 'second' })
        try {
          await second.ready
          expect((await second.status())[0]).toMatchObject({ state: 'standby', owner: 'first' })
          await first.stop()
          const { position } = await store.append(orders(5, 10))
          await second.waitFor(position, { timeoutMs: 5_000 })
          expect((await second.status())[0]).toMatchObject({ state: 'live', owner: 'second' })
          const rows = await readRows(store, name)
          expect(rows.length).toBe(15)
          expect(duplicates(rows)).toEqual([])
        } finally {
          await first.stop()
          await second.stop()
        }
      } finally {
        await store.close()
      }
    })

    test('an idle runner keeps its lease: renewal does not depend on traffic', async () => {
      const store = await open()
      try {
        const name = uniqueName('idle')
        const options: RunnerOptions = { leaseMs: 300, renewEveryMs: 60 }
        const owner = startProjections(store, [rowsProjection(name)], { ...options, instanceId: 'owner' })
        await owner.waitFor(await store.head())
        const other = startProjections(store, [rowsProjection(name)], { ...options, instanceId: 'other' })
        try {
          await other.ready
          // Idle for several lease periods: no event arrives, the lease must still be renewed.
          const until = Date.now() + 1_200
          await eventually(() => Date.now() > until, 'four lease periods to pass')
          expect((await other.status())[0]).toMatchObject({ owner: 'owner', state: 'standby' })
          expect((await owner.status())[0]).toMatchObject({ owner: 'owner', state: 'live' })
          const { position } = await store.append(orders(1))
          await owner.waitFor(position)
        } finally {
          await other.stop()
          await owner.stop()
        }
      } finally {
        await store.close()
      }
    })

    test('a runner that stalled past its lease cannot commit: LEASE_LOST rolls its batch back', async () => {
      const store = await open()
      try {
        const name = uniqueName('stalled')
        const leaseMs = 300
        const errors: unknown[] = []
        let stalls = 1
        const def = rowsProjection(name, {
          handle: async (events, ctx) => {
            await writeRows(events, ctx)
            if (stalls-- > 0) {
              // A stalled process (a long GC pause, a blocked event loop): nothing runs, not even
              // the renewal timer, until the lease has run out.
              const until = Date.now() + leaseMs * 2
              while (Date.now() < until) {}
            }
          },
        })
        await store.append(orders(8))
        await withRunner(store, [def], { leaseMs, renewEveryMs: 100, onError: (e) => errors.push(e) }, async (runner) => {
          await runner.waitFor(await store.head())
          expect(errors.some((e) => (e as { code?: string }).code === 'LEASE_LOST')).toBe(true)
          if (backend !== 'memory') {
            // Memory has no rollback; on a database the stalled batch left no row behind.
            const rows = await readRows(store, name)
            expect(rows.length).toBe(8)
            expect(duplicates(rows)).toEqual([])
          }
        })
      } finally {
        await store.close()
      }
    })

    test('bad definitions and options are INVALID_OPTIONS; unknown names are NOT_FOUND', async () => {
      const store = await open()
      try {
        expect(() => defineProjection({ name: '', query: 'all', handle() {} })).toThrow(expect.objectContaining({ code: 'INVALID_OPTIONS' }))
        expect(() => defineProjection({ name: 'x', query: 'all', handle() {}, partitions: 3 })).toThrow(expect.objectContaining({ code: 'INVALID_OPTIONS' }))
        expect(() => defineProjection({ name: 'x', query: [], handle() {} })).toThrow(expect.objectContaining({ code: 'INVALID_QUERY' }))
        const def = rowsProjection(uniqueName('opts'))
        expect(() => startProjections(store, [def, def])).toThrow(expect.objectContaining({ code: 'INVALID_OPTIONS' }))
        expect(() => startProjections(store, [def], { leaseMs: 0 })).toThrow(expect.objectContaining({ code: 'INVALID_OPTIONS' }))
        await withRunner(store, [def], fast, async (runner) => {
          expect(() => runner.pause('nope')).toThrow(expect.objectContaining({ code: 'NOT_FOUND' }))
          expect((await runner.waitFor(0n, { names: ['nope'] }).catch((e) => e)).code).toBe('NOT_FOUND')
        })
      } finally {
        await store.close()
      }
    })
  })
}
