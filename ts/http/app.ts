/**
 * `createApp`: the Hono app of ringstate/http. One sub-app per resource, mounted with `app.route()`;
 * middleware as small factories; every error turned into problem+json in one `onError`.
 */
import { Hono, type MiddlewareHandler } from 'hono'
import { matchedRoutes } from 'hono/route'
import type { Registry } from 'prom-client'
import { NotFoundError } from '../errors.ts'
import type { EventMap, EventStore } from '../store/types.ts'
import { TokenRegistry } from './auth.ts'
import type { AppDeps } from './context.ts'
import { HttpMetrics } from './metrics.ts'
import { openApiDocument } from './openapi.ts'
import { resolveHttpOptions, type HttpOptions } from './options.ts'
import { problemResponse } from './problem.ts'
import { cacheRoutes } from './routes/caches.ts'
import { eventRoutes } from './routes/events.ts'
import { healthRoutes } from './routes/health.ts'
import { metricsRoutes } from './routes/metrics.ts'
import { projectionRoutes } from './routes/projections.ts'
import { subscribeRoutes } from './routes/subscribe.ts'
import { SseHub } from './sse.ts'
import { uiRoutes } from './ui/index.ts'

/** What `serve` and `metricsRegistry` need of an app `createApp` built. */
interface AppInternals {
  sse: SseHub
  metrics: HttpMetrics
}

const internals = new WeakMap<Hono, AppInternals>()

/** @internal The hub and metrics of an app built by `createApp`. */
export function internalsOf(app: Hono): AppInternals {
  const found = internals.get(app)
  if (found === undefined) throw new TypeError('this Hono app was not built by createApp')
  return found
}

/**
 * The Prometheus registry holding the metrics of an app built by `createApp` (or the one passed as
 * `options.registry`): merge it with your own with `Registry.merge([registry, yours])`.
 *
 * @example
 * const app = createApp(store)
 * const merged = Registry.merge([metricsRegistry(app), myRegistry])
 */
export function metricsRegistry(app: Hono): Registry {
  return internalsOf(app).metrics.registry
}

/**
 * Counts and times every request by method, route template and status, and marks every response
 * `X-Content-Type-Options: nosniff`. One middleware for both: each layer of Hono's middleware is
 * an async call and a dispatch per request.
 */
function measure(metrics: HttpMetrics): MiddlewareHandler {
  return async function measure(c, next) {
    const started = performance.now()
    await next()
    c.res.headers.set('x-content-type-options', 'nosniff')
    // The template, never the path: a path holds cache keys and projection names without bound.
    let route = 'unmatched'
    const routes = matchedRoutes(c)
    for (let i = routes.length - 1; i >= 0; i--) {
      if (routes[i]!.method !== 'ALL') {
        route = routes[i]!.path
        break
      }
    }
    const labels = { method: c.req.method, route, status: String(c.res.status) }
    metrics.requests.inc(labels)
    metrics.duration.observe(labels, (performance.now() - started) / 1000)
  }
}

/**
 * Build the HTTP API over a store. Every route of DESIGN.md section 8; test it with `app.request()`
 * or start it with `serve`. The app holds no state beyond the store (and its open event streams),
 * so several instances over one PostgreSQL serve the same data.
 *
 * @throws InvalidOptionsError (INVALID_OPTIONS) on a bad option or token.
 * @example
 * const store = await openStore('memory:')
 * const app = createApp(store, { tokens: [{ name: 'ci', token: 'a-long-random-secret', scopes: ['read', 'append'] }] })
 * const response = await app.request('/v1/head', { headers: { authorization: 'Bearer a-long-random-secret' } })
 * console.log(await response.json()) // { head: '0' }
 */
export function createApp<E extends EventMap>(store: EventStore<E>, options: HttpOptions = {}): Hono {
  const resolved = resolveHttpOptions(options)
  const caches = options.caches ?? {}
  const metrics = new HttpMetrics(store, { caches, projections: options.projections }, options.registry)
  const deps: AppDeps = {
    store,
    tokens: new TokenRegistry(options.tokens),
    options: resolved,
    metrics,
    sse: new SseHub(resolved.sse, metrics),
    caches,
    projections: options.projections,
  }

  const app = new Hono()
  app.use(measure(metrics))
  app.route('/health', healthRoutes(deps))
  app.route('/metrics', metricsRoutes(deps))
  app.route('/v1', eventRoutes(deps))
  app.route('/v1', subscribeRoutes(deps))
  app.route('/v1', cacheRoutes(deps))
  app.route('/v1', projectionRoutes(deps))
  const pageRoutes: string[] = []
  if (resolved.ui) {
    const page = uiRoutes()
    for (const route of page.routes) if (route.method === 'GET' && !pageRoutes.includes(route.path)) pageRoutes.push(route.path)
    app.route('/', page)
  }
  const document = JSON.stringify(openApiDocument(pageRoutes))
  app.get('/openapi.json', (c) => c.body(document, 200, { 'content-type': 'application/json' }))

  app.notFound(() => problemResponse(new NotFoundError('no such route')))
  app.onError((error) => problemResponse(error))
  internals.set(app, { sse: deps.sse, metrics })
  return app
}
