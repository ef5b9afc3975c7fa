/**
 * The orders example (examples/orders.ts) as a test: its commands and its partitioned summary
 * projection behave as the example prints, on memory and on SQLite.
 */
import { afterAll, describe, expect, test } from 'bun:test'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { changeStatus, createOrder, orderSummary } from '../../examples/orders.ts'
import { openStore } from '../store/open.ts'
import { startProjections } from './runner.ts'

const dir = mkdtempSync(join(tmpdir(), 'ringstate-orders-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

describe('examples/orders.ts', () => {
  for (const url of ['memory:', `sqlite:${join(dir, 'orders.db')}`]) {
    test(`orders are created, paid and shipped, refusals write nothing, and the summary follows (${url.split(':')[0]})`, async () => {
      const store = await openStore(url)
      const runner = startProjections(store, [orderSummary], { leaseMs: 1_000 })
      try {
        expect((await createOrder(store, 'o1', 'ada', 10)).state.status).toBe('created')
        expect((await createOrder(store, 'o1', 'ada', 10)).duplicate).toBe(true)
        await createOrder(store, 'o2', 'bob', 5)
        expect((await changeStatus(store, 'o1', 'shipped')).result).toBe('created -> shipped')
        expect(((await changeStatus(store, 'o1', 'cancelled').catch((e) => e)) as { cause: Error }).cause.message).toBe('order o1 is shipped')
        expect(((await createOrder(store, 'o3', 'bob', -1).catch((e) => e)) as { cause: Error }).cause.message).toBe('the amount must be positive')
        expect(await store.head()).toBe(3n)
        await runner.waitFor(await store.head())
        const status = await runner.status()
        expect(status.map((s) => [s.partition, s.state, s.position])).toEqual([[0, 'live', 3n], [1, 'live', 3n], [2, 'live', 3n], [3, 'live', 3n]])
      } finally {
        await runner.stop()
        await store.close()
      }
    })
  }
})
