/** `GET /v1/caches/:name/:key`: one entity's state from a state cache. */
import { Hono } from 'hono'
import { NotFoundError } from '../../errors.ts'
import { requireScope } from '../auth.ts'
import type { AppDeps } from '../context.ts'
import { minPositionOf, waitForPosition } from '../wait.ts'

/** JSON with bigints as decimal strings (a cached state may hold positions). */
function stateJson(value: unknown): string {
  return JSON.stringify(value, (_key, entry) => (typeof entry === 'bigint' ? entry.toString() : entry)) ?? 'null'
}

/** The sub-app of the caches, mounted at `/v1`. */
export function cacheRoutes(deps: AppDeps): Hono {
  const { tokens, caches } = deps
  const app = new Hono()
  app.get('/caches/:name/:key', requireScope(tokens, 'read'), async (c) => {
    const name = c.req.param('name')
    const cache = Object.hasOwn(caches, name) ? caches[name] : undefined
    if (cache === undefined) throw new NotFoundError(`no cache is named ${JSON.stringify(name.slice(0, 64))}`)
    const wanted = minPositionOf(c)
    if (wanted !== undefined) {
      await waitForPosition(() => cache.position, wanted.position, wanted.waitMs, c.req.raw.signal)
      if (wanted.waitMs > 0) c.header('preference-applied', 'wait')
    }
    const key = c.req.param('key')
    const state = cache.get(key)
    if (state === undefined) throw new NotFoundError(`cache ${name} holds no entry for this key`)
    return c.body(`{"key":${JSON.stringify(key)},"state":${stateJson(state)},"position":"${cache.position}"}`, 200, {
      'content-type': 'application/json',
    })
  })
  return app
}
