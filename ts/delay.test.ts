import { describe, expect, test } from 'bun:test'
import { abortableDelay } from './delay.ts'

describe('abortableDelay', () => {
  test('resolves once the time has passed', async () => {
    const started = performance.now()
    await abortableDelay(20, new AbortController().signal)
    expect(performance.now() - started).toBeGreaterThanOrEqual(19)
  })
  test('an abort ends the wait at once and removes its listener', async () => {
    const controller = new AbortController()
    let removed = 0
    const remove = controller.signal.removeEventListener.bind(controller.signal)
    controller.signal.removeEventListener = ((...args: Parameters<typeof remove>) => {
      removed++
      return remove(...args)
    }) as typeof remove
    const waiting = abortableDelay(60_000, controller.signal)
    controller.abort()
    await waiting
    expect(removed).toBe(1)
  })
  test('an aborted signal resolves without a timer', async () => {
    await abortableDelay(60_000, AbortSignal.abort())
  })
})
