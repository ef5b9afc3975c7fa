/**
 * Prometheus metrics of the HTTP app (prefix `ringstate_`), on a prom-client Registry of the app's
 * own so an application can merge it with its registry (`Registry.merge([ours, theirs])`).
 * Labels carry only bounded, non-secret values: method, route template, status, cache and
 * projection names from the configuration. Never tags, event types or tokens.
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client'
import type { EventStore } from '../store/types.ts'
import type { CacheSource, ProjectionRunnerSource } from './options.ts'

/** Every state a projection shard reports, so the state gauge has a fixed set of series. */
const projectionStates = ['starting', 'catching-up', 'live', 'paused', 'faulted', 'rebuilding', 'standby', 'stopped']

/** The app's metrics. Counters are updated by the routes; gauges are read at scrape time. */
export class HttpMetrics {
  readonly registry: Registry
  readonly requests: Counter<'method' | 'route' | 'status'>
  readonly duration: Histogram<'method' | 'route' | 'status'>
  readonly appends: Counter
  readonly conflicts: Counter
  readonly eventsAppended: Counter
  readonly sseClients: Gauge
  readonly sseEventsSent: Counter

  constructor(
    store: EventStore<any>,
    sources: { caches: Record<string, CacheSource>; projections: ProjectionRunnerSource | undefined },
    registry = new Registry(),
  ) {
    this.registry = registry
    const registers = [registry]
    this.requests = new Counter({
      name: 'ringstate_http_requests_total',
      help: 'HTTP requests answered, by method, route template and status.',
      labelNames: ['method', 'route', 'status'],
      registers,
    })
    this.duration = new Histogram({
      name: 'ringstate_http_request_duration_seconds',
      help: 'Time to the response headers, by method, route template and status.',
      labelNames: ['method', 'route', 'status'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    })
    this.appends = new Counter({
      name: 'ringstate_store_appends_total',
      help: 'Appends accepted through the HTTP API (idempotent replays included).',
      registers,
    })
    this.conflicts = new Counter({
      name: 'ringstate_store_conflicts_total',
      help: 'Appends through the HTTP API refused because their condition failed.',
      registers,
    })
    this.eventsAppended = new Counter({
      name: 'ringstate_store_events_appended_total',
      help: 'Events written through the HTTP API.',
      registers,
    })
    new Gauge({
      name: 'ringstate_store_head',
      help: 'The position of the last event in the store (read at scrape time).',
      registers,
      async collect() {
        try {
          this.set(Number(await store.head()))
        } catch {
          // A closed or unreachable store has no head; /health/ready reports why.
          this.reset()
        }
      },
    })
    this.sseClients = new Gauge({
      name: 'ringstate_sse_clients',
      help: 'Server-sent event streams open now.',
      registers,
    })
    this.sseEventsSent = new Counter({
      name: 'ringstate_sse_events_sent_total',
      help: 'Events written to server-sent event streams (summed over clients).',
      registers,
    })
    const caches = Object.entries(sources.caches)
    new Gauge({
      name: 'ringstate_cache_entries',
      help: 'Entries held by each state cache.',
      labelNames: ['cache'],
      registers,
      collect() {
        for (const [name, cache] of caches) this.set({ cache: name }, cache.size)
      },
    })
    new Gauge({
      name: 'ringstate_cache_position',
      help: 'The last position each state cache promoted.',
      labelNames: ['cache'],
      registers,
      collect() {
        for (const [name, cache] of caches) this.set({ cache: name }, Number(cache.position))
      },
    })
    const runner = sources.projections
    if (runner !== undefined) this.#projectionGauges(runner, registers)
  }

  #projectionGauges(runner: ProjectionRunnerSource, registers: Registry[]): void {
    // One status() per scrape feeds all four gauges: the first gauge collected fetches it.
    let pending: Promise<readonly { name: string; partition: number; state: string; position: bigint; lag: bigint; errorCount: number }[]> | undefined
    const status = () => {
      pending ??= Promise.resolve(runner.status()).finally(() => queueMicrotask(() => (pending = undefined)))
      return pending
    }
    const labelNames = ['projection', 'partition'] as const
    const shardGauge = (name: string, help: string, value: (shard: Awaited<ReturnType<typeof status>>[number]) => number) =>
      new Gauge({
        name,
        help,
        labelNames,
        registers,
        async collect() {
          this.reset()
          for (const shard of await status()) this.set({ projection: shard.name, partition: String(shard.partition) }, value(shard))
        },
      })
    shardGauge('ringstate_projection_position', 'How far each projection shard has scanned.', (s) => Number(s.position))
    shardGauge('ringstate_projection_lag', 'Events between the head and each projection shard.', (s) => Number(s.lag))
    shardGauge('ringstate_projection_errors', 'Failed batches of each projection shard.', (s) => s.errorCount)
    new Gauge({
      name: 'ringstate_projection_state',
      help: 'The state of each projection shard: 1 for its current state, 0 for the others.',
      labelNames: ['projection', 'partition', 'state'],
      registers,
      async collect() {
        this.reset()
        for (const shard of await status()) {
          for (const state of projectionStates) {
            this.set({ projection: shard.name, partition: String(shard.partition), state }, shard.state === state ? 1 : 0)
          }
        }
      },
    })
  }
}
