/** `GET /health/live` and `GET /health/ready` (public). */
import { Hono } from 'hono'
import { ErrorCode, StorageError, StoreClosedError } from '../../errors.ts'
import type { AppDeps } from '../context.ts'
import { isRingstateError, StatusProblem } from '../problem.ts'

/** How long readiness waits for the store to answer before calling it unreachable, in ms. */
const READY_TIMEOUT_MS = 2000

/** The sub-app of the health checks, mounted at `/health`. */
export function healthRoutes(deps: AppDeps): Hono {
  const { store, projections } = deps
  const app = new Hono()
  app.get('/live', (c) => c.json({ status: 'ok' }))
  app.get('/ready', async (c) => {
    let timer: ReturnType<typeof setTimeout> | undefined
    try {
      await Promise.race([
        store.head(),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new StorageError('the store did not answer in time')), READY_TIMEOUT_MS)
        }),
      ])
    } catch (error) {
      if (isRingstateError(error) && error.code === ErrorCode.STORE_CLOSED) throw new StoreClosedError()
      throw new StorageError('the store is unreachable')
    } finally {
      clearTimeout(timer)
    }
    if (projections !== undefined) {
      const faulted = (await projections.status()).filter((shard) => shard.state === 'faulted')
      if (faulted.length > 0) {
        // No code fits a faulted projection better: it is the storage side of the app that fails.
        throw new StatusProblem(503, ErrorCode.STORAGE_ERROR, `projection ${faulted[0]!.name} (partition ${faulted[0]!.partition}) is faulted`)
      }
    }
    return c.json({ status: 'ok' })
  })
  return app
}
