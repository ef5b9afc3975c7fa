/**
 * The runtime's example programs (examples/), run to the end on memory and on a SQLite file, so
 * the runnable stories stay true.
 */
import { afterAll, describe, expect, test } from 'bun:test'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { main as loyaltyPoints } from '../../examples/loyalty-points.ts'
import { decidePrice, main as nightlyRepricing } from '../../examples/nightly-repricing.ts'
import { main as subscriptionRenewals } from '../../examples/subscription-renewals.ts'

const dir = mkdtempSync(join(tmpdir(), 'ringstate-runtime-examples-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

describe.each(['memory:', 'sqlite'])('the runtime examples on %s', (kind) => {
  const url = (name: string) => (kind === 'memory:' ? 'memory:' : `sqlite:${join(dir, `${name}.db`)}`)

  test('subscription renewals charge each due subscription once, cancel after two declines, and survive a restart', async () => {
    const model = await subscriptionRenewals(url('renewals'))
    expect(model.today).toBe(90)
    expect(model.revenue).toBe(75)
    expect(model.subscriptions).toEqual({
      ada: { price: 10, renewsOn: 120, failures: 0, charging: false, active: true },
      bob: { price: 15, renewsOn: 120, failures: 0, charging: false, active: true },
      'carol-declined': { price: 20, renewsOn: 30, failures: 2, charging: false, active: false },
    })
  })

  test('nightly re-pricing changes prices once and finds nothing to change the next night', async () => {
    const [first, second] = await nightlyRepricing(url('prices'))
    expect(first!.changes).toEqual([
      { sku: 'mug-01', from: 8.5, to: 7.48 },
      { sku: 'lamp-02', from: 39, to: 40.99 },
      { sku: 'desk-03', from: 249, to: 259.99 },
      { sku: 'pen-04', from: 1.5, to: 1.27 },
    ])
    expect(second!.changes).toEqual([])
    expect(decidePrice(4, 8.5, undefined)).toBe(8.5)
  })

  test('loyalty points keep one snapshot per customer and skip a broken purchase only when told to', async () => {
    expect(await loyaltyPoints(url('loyalty'))).toEqual({
      ada: { points: 525, tier: 'gold', purchases: 3 },
      bob: { points: 134, tier: 'silver', purchases: 5 },
    })
  })
})
