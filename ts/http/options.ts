/**
 * The options of `createApp` and `serve`, and the structural types of what they accept (a state
 * cache, a projection runner), so ringstate/http depends on no concrete class of another module.
 */
import type { Registry } from 'prom-client'
import { InvalidOptionsError } from '../errors.ts'
import type { TokenConfig } from './auth.ts'

/** What the cache route needs of a `StateCache` (ringstate/cache): any `StateCache<S>` fits. */
export interface CacheSource {
  get(key: string): unknown
  /** The position of the last promoted commit. */
  readonly position: bigint
  /** Entries held. */
  readonly size: number
}

/** One shard of a live projection, as `runner.status()` reports it (ringstate/projections). */
export interface ProjectionShardStatus {
  name: string
  version: number
  partition: number
  state: string
  position: bigint
  head: bigint
  lag: bigint
  owner?: string | null | undefined
  /** False for a version being built beside the active one (reads and waits ignore it). */
  active?: boolean
  errorCount: number
  lastError?: unknown
}

/** What the projection routes need of a projection runner (`startProjections(...)`). */
export interface ProjectionRunnerSource {
  status(): readonly ProjectionShardStatus[] | Promise<readonly ProjectionShardStatus[]>
  pause(name: string): unknown
  resume(name: string): unknown
  rebuild(name: string): Promise<unknown>
  waitFor(position: bigint, options?: { names?: readonly string[]; timeoutMs?: number; signal?: AbortSignal }): Promise<unknown>
}

/** Server-sent events settings. */
export interface SseOptions {
  /** Idle time before a heartbeat (a `progress` event or a comment line), in ms. Default 5000. */
  heartbeatMs?: number
  /** The reconnection delay sent in the first `retry:` line, in ms. Default 2000. */
  retryMs?: number
  /** Open streams per app before a new one gets 503 OVERLOADED. Default 1000. */
  maxClients?: number
}

/** Options of `createApp`. */
export interface HttpOptions {
  /** Bearer tokens with scopes. None: every request is allowed (and `serve` binds loopback only). */
  tokens?: readonly TokenConfig[]
  /** State caches served at `GET /v1/caches/:name/:key`. */
  caches?: Record<string, CacheSource>
  /** A projection runner: enables the `/v1/projections` routes (404 without one). */
  projections?: ProjectionRunnerSource
  /** The largest page of events or commands. Default 1000. */
  readLimit?: number
  /** The largest request body, in bytes. Default 16 MiB. */
  maxBodyBytes?: number
  sse?: SseOptions
  /** Serve the browser page at `/ui`. Default true. */
  ui?: boolean
  /** Serve `/metrics` without a token. Default false. */
  publicMetrics?: boolean
  /**
   * The Prometheus registry to register ringstate's metrics in. Default: a registry of the app's
   * own (read it with `metricsRegistry(app)` and merge it with yours).
   */
  registry?: Registry
}

/** `HttpOptions` with every default filled in. */
export interface ResolvedOptions {
  readLimit: number
  maxBodyBytes: number
  sse: Required<SseOptions>
  ui: boolean
  publicMetrics: boolean
}

export const defaultHttpOptions: ResolvedOptions = {
  readLimit: 1000,
  maxBodyBytes: 16 << 20,
  sse: { heartbeatMs: 5000, retryMs: 2000, maxClients: 1000 },
  ui: true,
  publicMetrics: false,
}

function positive(value: unknown, name: string, fallback: number): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) {
    throw new InvalidOptionsError(`${name} must be a positive integer`)
  }
  return value
}

/** Check the options and fill in the defaults. @throws InvalidOptionsError (INVALID_OPTIONS) */
export function resolveHttpOptions(options: HttpOptions): ResolvedOptions {
  if (typeof options !== 'object' || options === null) throw new InvalidOptionsError('http options must be an object')
  const sse = options.sse ?? {}
  if (options.caches !== undefined && (typeof options.caches !== 'object' || options.caches === null)) {
    throw new InvalidOptionsError('caches must be an object { name: StateCache }')
  }
  return {
    readLimit: positive(options.readLimit, 'readLimit', defaultHttpOptions.readLimit),
    maxBodyBytes: positive(options.maxBodyBytes, 'maxBodyBytes', defaultHttpOptions.maxBodyBytes),
    sse: {
      heartbeatMs: positive(sse.heartbeatMs, 'sse.heartbeatMs', defaultHttpOptions.sse.heartbeatMs),
      retryMs: positive(sse.retryMs, 'sse.retryMs', defaultHttpOptions.sse.retryMs),
      maxClients: positive(sse.maxClients, 'sse.maxClients', defaultHttpOptions.sse.maxClients),
    },
    ui: options.ui ?? true,
    publicMetrics: options.publicMetrics ?? false,
  }
}
