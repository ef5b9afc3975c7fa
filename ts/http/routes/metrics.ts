/** `GET /metrics`: Prometheus text, `metrics` scope unless `publicMetrics`. */
import { Hono } from 'hono'
import { requireScope } from '../auth.ts'
import type { AppDeps } from '../context.ts'

/** The sub-app of the metrics, mounted at `/metrics`. */
export function metricsRoutes(deps: AppDeps): Hono {
  const { tokens, options, metrics } = deps
  const app = new Hono()
  if (!options.publicMetrics) app.use(requireScope(tokens, 'metrics'))
  app.get('/', async (c) => {
    return c.body(await metrics.registry.metrics(), 200, { 'content-type': metrics.registry.contentType })
  })
  return app
}
