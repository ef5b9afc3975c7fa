/**
 * What every route of one app shares: the store, the token registry, the resolved options, the
 * metrics and the event-stream hub. Built once by `createApp`; each resource's sub-app takes it.
 */
import type { EventStore } from '../store/types.ts'
import type { TokenRegistry } from './auth.ts'
import type { HttpMetrics } from './metrics.ts'
import type { CacheSource, ProjectionRunnerSource, ResolvedOptions } from './options.ts'
import type { SseHub } from './sse.ts'

export interface AppDeps {
  store: EventStore<any>
  tokens: TokenRegistry
  options: ResolvedOptions
  metrics: HttpMetrics
  sse: SseHub
  caches: Record<string, CacheSource>
  projections: ProjectionRunnerSource | undefined
}
