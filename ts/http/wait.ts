/**
 * Read your writes: `Prefer: wait=<s>` with `Ringstate-Min-Position: N` holds a read of a cache or
 * of projection-backed data until it has reached N, answering `Preference-Applied: wait`, or 504
 * `WAIT_TIMEOUT` when the deadline passes first. Without `Prefer: wait` the position is checked once.
 */
import type { Context, MiddlewareHandler } from 'hono'
import { WaitTimeoutError } from '../errors.ts'
import type { ProjectionRunnerSource } from './options.ts'
import { parseMinPosition, parsePreferWait } from './wire.ts'

/** How often a cache's position is looked at while a read waits for it, in ms. */
const POLL_MS = 2

/** The read-your-writes request of a read: the position and the longest wait (ms), if any. */
export function minPositionOf(c: Context): { position: bigint; waitMs: number } | undefined {
  const position = parseMinPosition(c.req.header('ringstate-min-position'))
  if (position === undefined) return undefined
  return { position, waitMs: parsePreferWait(c.req.header('prefer')) }
}

/**
 * Wait until `position()` reaches `min` (polling: a cache has no change notification), for at most
 * `waitMs`, or until the request is aborted.
 *
 * @throws WaitTimeoutError (WAIT_TIMEOUT)
 */
export async function waitForPosition(
  position: () => bigint,
  min: bigint,
  waitMs: number,
  signal: AbortSignal | undefined,
): Promise<void> {
  if (position() >= min) return
  const deadline = performance.now() + waitMs
  while (performance.now() < deadline && signal?.aborted !== true) {
    await new Promise((resolve) => setTimeout(resolve, POLL_MS))
    if (position() >= min) return
  }
  throw new WaitTimeoutError(`did not reach position ${min} within ${waitMs} ms`)
}

/**
 * Middleware for projection-backed reads: honours `Ringstate-Min-Position` and `Prefer: wait` by
 * waiting on the runner (`runner.waitFor`) before the handler runs.
 *
 * @example
 * const app = createApp(store, { projections: runner })
 * app.get('/orders/:id', waitForProjections(runner, { names: ['order-totals'] }), async (c) => {
 *   return c.json(await readOrder(c.req.param('id')))
 * })
 */
export function waitForProjections(runner: ProjectionRunnerSource, options: { names?: string[] } = {}): MiddlewareHandler {
  return async function waitForProjections(c, next) {
    const wanted = minPositionOf(c)
    if (wanted !== undefined) {
      await waitOnRunner(runner, wanted.position, wanted.waitMs, options.names, c.req.raw.signal)
      if (wanted.waitMs > 0) c.header('preference-applied', 'wait')
    }
    await next()
  }
}

/** @throws WaitTimeoutError (WAIT_TIMEOUT) */
export async function waitOnRunner(
  runner: ProjectionRunnerSource,
  position: bigint,
  waitMs: number,
  names: string[] | undefined,
  signal: AbortSignal | undefined,
): Promise<void> {
  const shards = (await runner.status()).filter(
    (shard) => shard.active !== false && (names === undefined || names.includes(shard.name)),
  )
  if (shards.every((shard) => shard.position >= position)) return
  if (waitMs === 0) throw new WaitTimeoutError(`the projections have not reached position ${position}`)
  // The runner's own WAIT_TIMEOUT (or ABORTED) goes to the client as it is.
  await runner.waitFor(position, { ...(names === undefined ? {} : { names }), timeoutMs: waitMs, ...(signal ? { signal } : {}) })
}
