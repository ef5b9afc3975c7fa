/**
 * `ringstate/http`: the event store over HTTP with Hono (DESIGN.md section 8): the JSON API,
 * server-sent events, bearer tokens with scopes, Prometheus metrics, OpenAPI, health checks.
 *
 * @module
 */
export { createApp, metricsRegistry } from './app.ts'
export { serve, type ServeOptions, type RunningServer } from './serve.ts'
export { parseTokenFile, hashToken, requireScope, TokenRegistry, scopes, type Scope, type TokenConfig } from './auth.ts'
export { waitForProjections } from './wait.ts'
export { HttpProblem, type ProblemDetails } from './problem.ts'
export type {
  HttpOptions,
  SseOptions,
  CacheSource,
  ProjectionRunnerSource,
  ProjectionShardStatus,
} from './options.ts'
