/**
 * Live projection definitions (DESIGN.md 6.2): plain data plus functions. The runner
 * (`startProjections`) is the only thing with a lifecycle.
 */
import type { Database } from 'bun:sqlite'
import type { TransactionSql } from 'postgres'
import { InvalidOptionsError } from '../errors.ts'
import type { EventMap, EventOf, Query, SequencedEvent } from '../store/types.ts'
import { validateQuery } from '../store/validate.ts'

/** What every projection callback receives, whatever the backend. */
interface ContextBase {
  /** The projection's name. */
  readonly name: string
  /** The version being built or kept up to date: write the tables of this version. */
  readonly version: number
  /** The partition (0 when unpartitioned; 0 in `setup` and `reset`). */
  readonly partition: number
  /** How far the batch has scanned: the checkpoint this batch commits (0n in `setup` and `reset`). */
  readonly through: bigint
  /** Aborted when the runner stops or loses the shard. */
  readonly signal: AbortSignal
}

/**
 * The context of `handle`, `setup` and `reset`: `tx` is the transaction in which the runner also
 * writes the checkpoint. Narrow on `backend` to get its type:
 * PostgreSQL: the postgres.js transaction (`await ctx.tx\`...\``) and the store's `schema`;
 * SQLite: the bun:sqlite `Database` inside the store's write transaction (use it synchronously);
 * memory: `undefined` (nothing rolls back on memory: keep in-memory read models idempotent).
 */
export type ProjectionContext =
  | (ContextBase & { readonly backend: 'postgres'; readonly tx: TransactionSql; readonly schema: string })
  | (ContextBase & { readonly backend: 'sqlite'; readonly tx: Database })
  | (ContextBase & { readonly backend: 'memory'; readonly tx: undefined })

/** What to do with an event whose handler keeps throwing. */
export interface ProjectionErrorPolicy {
  /** Retries after the first failure, with exponential backoff. Default 5. */
  retries?: number
  /** First backoff delay in ms (doubles per retry). Default 100. */
  backoffMs?: number
  /** Largest backoff delay in ms. Default 30,000. */
  maxBackoffMs?: number
  /**
   * `'pause'` (default): the shard becomes `faulted` at the event before the failing one, the
   * others go on, `resume(name)` tries again. `'skip'`: the event goes to the dead-letter table
   * (`deadLetters(name)`) and the shard goes on.
   */
  then?: 'pause' | 'skip'
}

/** How events are split into partitions: the key's hash picks the partition; no key -> 0. */
export type PartitionBy<E extends EventMap> =
  | { tagPrefix: string }
  | ((event: EventOf<E>) => string | undefined)

/** The definition of a live projection. */
export interface ProjectionDefinition<E extends EventMap = EventMap> {
  /** 1..128 characters. */
  name: string
  /** Bumping it builds the new version from position 0 beside the old one. Integer >= 1. Default 1. */
  version?: number
  query: Query
  /** Write the batch's effects through `ctx.tx`; the checkpoint commits with them. */
  handle(events: EventOf<E>[], ctx: ProjectionContext): void | Promise<void>
  /** Create the version's read model; runs before its first batch and may run again: idempotent. */
  setup?(ctx: ProjectionContext): void | Promise<void>
  /** Empty the version's read model (`rebuild`). */
  reset?(ctx: ProjectionContext): void | Promise<void>
  partitionBy?: PartitionBy<E>
  /** Number of partitions with `partitionBy`. Default 1 without it, 4 with it. */
  partitions?: number
  onError?: ProjectionErrorPolicy
  /** Largest number of events read per batch. Default 500. */
  batchSize?: number
}

/** A checked projection definition, with defaults applied. */
export interface Projection<E extends EventMap = EventMap> {
  readonly name: string
  readonly version: number
  readonly query: Query
  readonly partitions: number
  readonly batchSize: number
  readonly onError: Required<ProjectionErrorPolicy>
  readonly handle: ProjectionDefinition<E>['handle']
  readonly setup: ProjectionDefinition<E>['setup']
  readonly reset: ProjectionDefinition<E>['reset']
  /** The partition of an event (0 when unpartitioned or the event has no key). */
  partitionOf(event: SequencedEvent): number
  /**
   * The partition of an event among `count` partitions, by the same key (used to keep an older
   * active version, built with another partition count, up to date).
   */
  partitionFor(event: SequencedEvent, count: number): number
}

/**
 * Define a live projection.
 *
 * @throws InvalidOptionsError (INVALID_OPTIONS) on a bad name, version, query, partitioning,
 *   batch size or error policy.
 *
 * @example
 * const orderTotals = defineProjection<Shop>({
 *   name: 'order-totals', version: 1,
 *   query: [{ types: ['OrderPlaced'] }],
 *   setup: async (ctx) => {
 *     if (ctx.backend === 'postgres') await ctx.tx`CREATE TABLE IF NOT EXISTS order_totals_v1 (id text PRIMARY KEY, total numeric)`
 *   },
 *   async handle(events, ctx) {
 *     if (ctx.backend !== 'postgres') return
 *     const ids = events.map((e) => e.tags[0]!), totals = events.map((e) => e.data.total)
 *     await ctx.tx`INSERT INTO order_totals_v1 SELECT * FROM unnest(${ids}::text[], ${totals}::numeric[])
 *                  ON CONFLICT (id) DO UPDATE SET total = excluded.total`
 *   },
 *   partitionBy: { tagPrefix: 'order:' }, partitions: 4,
 * })
 */
export function defineProjection<E extends EventMap = EventMap>(definition: ProjectionDefinition<E>): Projection<E> {
  if (typeof definition !== 'object' || definition === null) throw new InvalidOptionsError('defineProjection needs a definition object')
  const { name, query, handle, setup, reset, partitionBy } = definition
  if (typeof name !== 'string' || name.length < 1 || name.length > 128 || name.includes('\u0000')) {
    throw new InvalidOptionsError('a projection name must be 1..128 characters')
  }
  const version = definition.version ?? 1
  if (!Number.isSafeInteger(version) || version < 1 || version > 2 ** 31 - 1) {
    throw new InvalidOptionsError(`projection ${name}: version must be an integer >= 1`)
  }
  validateQuery(query)
  if (typeof handle !== 'function') throw new InvalidOptionsError(`projection ${name}: handle must be a function`)
  for (const [label, fn] of [['setup', setup], ['reset', reset]] as const) {
    if (fn !== undefined && typeof fn !== 'function') throw new InvalidOptionsError(`projection ${name}: ${label} must be a function`)
  }
  const partitions = definition.partitions ?? (partitionBy === undefined ? 1 : 4)
  if (!Number.isSafeInteger(partitions) || partitions < 1 || partitions > 1024) {
    throw new InvalidOptionsError(`projection ${name}: partitions must be an integer in 1..1024`)
  }
  if (partitions > 1 && partitionBy === undefined) {
    throw new InvalidOptionsError(`projection ${name}: partitions > 1 needs partitionBy`)
  }
  const batchSize = definition.batchSize ?? 500
  if (!Number.isSafeInteger(batchSize) || batchSize < 1 || batchSize > 100_000) {
    throw new InvalidOptionsError(`projection ${name}: batchSize must be an integer in 1..100000`)
  }
  const onError = resolveErrorPolicy(name, definition.onError)
  const keyOf = partitionKey(name, partitionBy)
  const partitionFor = (event: SequencedEvent, count: number) => {
    if (count === 1 || keyOf === undefined) return 0
    const key = keyOf(event)
    return key === undefined ? 0 : fnv1a(key) % count
  }
  const partitionOf = (event: SequencedEvent) => partitionFor(event, partitions)
  return {
    name,
    version,
    query,
    partitions,
    batchSize,
    onError,
    handle,
    setup,
    reset,
    partitionOf,
    partitionFor,
  }
}

function resolveErrorPolicy(name: string, policy: ProjectionErrorPolicy | undefined): Required<ProjectionErrorPolicy> {
  const resolved = {
    retries: policy?.retries ?? 5,
    backoffMs: policy?.backoffMs ?? 100,
    maxBackoffMs: policy?.maxBackoffMs ?? 30_000,
    then: policy?.then ?? 'pause',
  }
  if (!Number.isSafeInteger(resolved.retries) || resolved.retries < 0) {
    throw new InvalidOptionsError(`projection ${name}: onError.retries must be an integer >= 0`)
  }
  if (!Number.isFinite(resolved.backoffMs) || resolved.backoffMs < 0) throw new InvalidOptionsError(`projection ${name}: onError.backoffMs must be >= 0`)
  if (!Number.isFinite(resolved.maxBackoffMs) || resolved.maxBackoffMs < 0) {
    throw new InvalidOptionsError(`projection ${name}: onError.maxBackoffMs must be >= 0`)
  }
  if (resolved.then !== 'pause' && resolved.then !== 'skip') {
    throw new InvalidOptionsError(`projection ${name}: onError.then must be 'pause' or 'skip'`)
  }
  return resolved
}

function partitionKey<E extends EventMap>(
  name: string,
  by: PartitionBy<E> | undefined,
): ((event: SequencedEvent) => string | undefined) | undefined {
  if (by === undefined) return undefined
  if (typeof by === 'function') return by as (event: SequencedEvent) => string | undefined
  if (typeof by === 'object' && by !== null && typeof by.tagPrefix === 'string' && by.tagPrefix.length > 0) {
    const prefix = by.tagPrefix
    return (event) => {
      for (const tag of event.tags) if (tag.startsWith(prefix)) return tag.slice(prefix.length)
      return undefined
    }
  }
  throw new InvalidOptionsError(`projection ${name}: partitionBy must be { tagPrefix } or a function`)
}

/** 32-bit FNV-1a over UTF-16 code units: stable across processes and runtimes. */
export function fnv1a(key: string): number {
  let hash = 0x811c9dc5
  for (let i = 0; i < key.length; i++) {
    hash ^= key.charCodeAt(i)
    hash = Math.imul(hash, 0x01000193)
  }
  return hash >>> 0
}
