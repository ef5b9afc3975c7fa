/**
 * `ringstate/projections` (DESIGN.md section 6): aggregates as named consistency boundaries over
 * the DCB store, and live projections with checkpoints committed alongside their read models,
 * leases, partitions and rebuilds.
 */
export {
  defineAggregate,
  aggregateSnapshotPrefix,
  type Aggregate,
  type AggregateContext,
  type AggregateDefinition,
  type AggregateExecuteOptions,
  type AggregateExecuteResult,
  type AggregateHandler,
  type AggregateSnapshotOptions,
  type ApplyHandler,
  type ApplyHandlers,
  type LoadedAggregate,
  type RecordOptions,
  type SnapshotCodec,
} from './aggregate.ts'
export { SpecificationError, type AggregateSpec, type GivenSpec, type SpecEvent, type WhenSpec } from './spec.ts'
export {
  defineProjection,
  type PartitionBy,
  type Projection,
  type ProjectionContext,
  type ProjectionDefinition,
  type ProjectionErrorPolicy,
} from './projection.ts'
export {
  startProjections,
  type ProjectionRunner,
  type RunnerOptions,
  type ShardState,
  type ShardStatus,
  type WaitForOptions,
} from './runner.ts'
export type { DeadLetter, ShardKey } from './tables.ts'
