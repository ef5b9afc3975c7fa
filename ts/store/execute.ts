/**
 * The command executor: go-crablet's CommandExecutor in DCB terms. A handler builds a decision
 * model with `project`, decides, and returns events; `execute` appends them under the model's
 * condition together with an audit row, and runs the handler again on a conflict.
 */
import {
  AbortedError,
  AppendConditionFailedError,
  CommandFailedError,
  ErrorCode,
  InvalidOptionsError,
  RetriesExhaustedError,
} from '../errors.ts'
import type {
  AnyProjector,
  AppendCondition,
  AppendResult,
  CommandRecord,
  EventMap,
  EventStore,
  InputOf,
  Projector,
  ProjectResult,
  Query,
} from './types.ts'

/** What a handler receives. */
export interface CommandContext<C extends CommandRecord, E extends EventMap = EventMap> {
  /** The command being executed. */
  command: C
  /**
   * `store.project`, returning the states and remembering the condition: `execute` appends under
   * it. It may be called more than once: a later call also re-reads the queries of the earlier
   * ones, and when they matched a new event since, the decision is stale and the handler runs
   * again (as on a conflicting append), so the one condition stays exact for all calls.
   */
  project<P extends Record<string, AnyProjector<any, E>>>(projectors: P): Promise<ProjectResult<P>['states']>
  /** 1 on the first run, 2 on the first retry, ... */
  attempt: number
  /** The store, for reads the decision needs beyond `project`. Append through the return value. */
  store: EventStore<E>
}

/**
 * What a handler returns: the events to append (none means "nothing to do"), optionally with an
 * explicit condition that replaces the one remembered from `project`.
 */
export type CommandDecision<E extends EventMap = EventMap> =
  | InputOf<E>
  | readonly InputOf<E>[]
  | { events: InputOf<E> | readonly InputOf<E>[]; condition?: AppendCondition }

/** Decides what a command means. Throw to refuse it (a domain error); nothing is appended then. */
export type CommandHandler<C extends CommandRecord, E extends EventMap = EventMap> = (
  context: CommandContext<C, E>,
) => CommandDecision<E> | Promise<CommandDecision<E>>

export interface ExecuteOptions {
  /** Runs of the handler before giving up on repeated conflicts. Default 5. */
  maxAttempts?: number
  /** First backoff delay in ms; it doubles on every retry, with jitter. Default 10. */
  baseDelayMs?: number
  /** Largest backoff delay in ms. Default 1000. */
  maxDelayMs?: number
  /** Cancels waiting between attempts (and the projection reads). */
  signal?: AbortSignal
}

/** Defaults of `ExecuteOptions`. */
export const defaultExecuteOptions = { maxAttempts: 5, baseDelayMs: 10, maxDelayMs: 1000 } as const

/**
 * Execute a command: run `handler`, append the events it returns under the condition of the
 * decision model it projected, and record the command in the `commands` audit table in the same
 * transaction.
 *
 * When another writer appended a conflicting event in the meantime (APPEND_CONDITION_FAILED),
 * the handler runs again on fresh state, after an exponential backoff with jitter, up to
 * `maxAttempts` runs in all. Returning no events is a no-op: nothing is appended or recorded and
 * the result is `{ position: 0n, count: 0, ids: [] }`.
 *
 * @returns The append result: the position of the last event and how many were written.
 * @throws CommandFailedError (COMMAND_FAILED) when the handler throws; `cause` is its error.
 * @throws RetriesExhaustedError (RETRIES_EXHAUSTED) after `maxAttempts` conflicts; `cause` is the last one.
 * @throws AbortedError (ABORTED) when the signal aborts between attempts.
 * Store errors (STORE_CLOSED, INVALID_EVENT, STORAGE_ERROR, ...) propagate unchanged.
 *
 * @example
 * const enroll = { type: 'EnrollStudent', data: { course: 'c1', student: 's1' } }
 * const result = await execute(store, enroll, async ({ command, project }) => {
 *   const { enrolled, capacity } = await project({
 *     capacity: { query: [{ types: ['CourseDefined'], tags: ['course:c1'] }], initial: 0,
 *                 apply: (_, event) => (event.data as { capacity: number }).capacity },
 *     enrolled: { query: [{ types: ['StudentEnrolled'], tags: ['course:c1'] }], initial: 0,
 *                 apply: (n: number) => n + 1 },
 *   })
 *   if (enrolled >= capacity) throw new Error('course is full')
 *   return { type: 'StudentEnrolled', tags: ['course:c1', 'student:s1'], data: command.data }
 * })
 */
export async function execute<C extends CommandRecord, E extends EventMap = EventMap>(
  store: EventStore<E>,
  command: C,
  handler: CommandHandler<C, E>,
  options?: ExecuteOptions,
): Promise<AppendResult> {
  const { maxAttempts, baseDelayMs, maxDelayMs, signal } = resolveExecuteOptions(options)
  if (typeof handler !== 'function') throw new InvalidOptionsError('execute needs a handler function')
  const record: CommandRecord = { type: command.type, data: command.data, metadata: command.metadata }

  let lastConflict: unknown
  for (let attempt = 1; attempt <= maxAttempts; attempt++) {
    if (attempt > 1) await backoff(attempt, baseDelayMs, maxDelayMs, signal)
    const decisions = trackDecisions(store, signal)
    const context: CommandContext<C, E> = { command, attempt, store, project: decisions.project }

    let decision: CommandDecision<E>
    try {
      decision = await handler(context)
    } catch (error) {
      if ((error as { code?: unknown })?.code === ErrorCode.APPEND_CONDITION_FAILED) {
        lastConflict = error
        continue
      }
      if (isStoreError(error)) throw error
      throw new CommandFailedError(`command ${command.type} failed: ${messageOf(error)}`, { cause: error })
    }

    const { events, condition } = splitDecision(decision, decisions.condition())
    if (Array.isArray(events) && events.length === 0) return { position: 0n, count: 0, ids: [] }
    try {
      return await store.append(events, condition, { command: record })
    } catch (error) {
      if ((error as { code?: unknown })?.code !== ErrorCode.APPEND_CONDITION_FAILED) throw error
      lastConflict = error
    }
  }
  throw new RetriesExhaustedError(maxAttempts, { cause: lastConflict })
}

/**
 * The decision-model bookkeeping of one attempt, shared with `ringstate/projections` aggregates:
 * `project` folds the projectors and remembers one condition that stays exact across several
 * calls (a later call re-reads the earlier queries and throws APPEND_CONDITION_FAILED when they
 * matched a new event). `initial` seeds it with a condition already decided on (an aggregate's
 * boundary after its loaded position). Internal: not re-exported from the package.
 */
export function trackDecisions<E extends EventMap = EventMap>(store: EventStore<E>, signal: AbortSignal | undefined, initial?: AppendCondition) {
  let remembered: AppendCondition | undefined = initial
  const project = async <P extends Record<string, AnyProjector<any, E>>>(projectors: P): Promise<ProjectResult<P>['states']> => {
    if (remembered === undefined) {
      const { states, condition } = await store.project(projectors, { signal })
      remembered = condition
      return states
    }
    const earlier = remembered
    const { states, condition } = await store.project(
      { ...projectors, [EARLIER]: lastMatch(earlier.failIfEventsMatch) },
      { signal },
    )
    const seen = (states as Record<string, unknown>)[EARLIER] as bigint
    if (seen > (earlier.after ?? 0n)) throw new AppendConditionFailedError(earlier, seen)
    delete (states as Record<string, unknown>)[EARLIER]
    remembered = condition
    return states
  }
  return { project, condition: () => remembered }
}

/** `ExecuteOptions` with defaults applied and checked (shared with aggregates). */
export function resolveExecuteOptions(options: ExecuteOptions | undefined) {
  const maxAttempts = options?.maxAttempts ?? defaultExecuteOptions.maxAttempts
  const baseDelayMs = options?.baseDelayMs ?? defaultExecuteOptions.baseDelayMs
  const maxDelayMs = options?.maxDelayMs ?? defaultExecuteOptions.maxDelayMs
  if (!Number.isSafeInteger(maxAttempts) || maxAttempts < 1) {
    throw new InvalidOptionsError('maxAttempts must be an integer >= 1')
  }
  if (!Number.isFinite(baseDelayMs) || baseDelayMs < 0) throw new InvalidOptionsError('baseDelayMs must be >= 0')
  if (!Number.isFinite(maxDelayMs) || maxDelayMs < 0) throw new InvalidOptionsError('maxDelayMs must be >= 0')
  return { maxAttempts, baseDelayMs, maxDelayMs, signal: options?.signal }
}

function splitDecision<E extends EventMap>(
  decision: CommandDecision<E>,
  remembered: AppendCondition | undefined,
): { events: InputOf<E> | readonly InputOf<E>[]; condition: AppendCondition | undefined } {
  if (!Array.isArray(decision) && typeof decision === 'object' && decision !== null && 'events' in decision) {
    const { events, condition } = decision as { events: InputOf<E> | readonly InputOf<E>[]; condition?: AppendCondition }
    return { events, condition: condition ?? remembered }
  }
  return { events: decision as InputOf<E> | readonly InputOf<E>[], condition: remembered }
}

/** The key of the projector that re-reads the earlier projections' queries; a NUL prefix keeps it clear of user names. */
const EARLIER = '\u0000ringstate:earlier-projections'

/** A projector whose state is the position of the last event its query matched (0n for none). */
function lastMatch(query: Query): Projector<bigint> {
  return { query, initial: 0n, apply: (_, event) => event.position }
}

/** Errors the store raised on purpose pass through; anything else came from the domain. */
export function isStoreError(error: unknown): boolean {
  const code = (error as { code?: unknown })?.code
  return typeof code === 'string' && Object.hasOwn(ErrorCode, code) && error instanceof Error
}

/** An error's message, or the thrown value as text. */
export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}

/** Exponential backoff with "equal jitter": half the delay fixed, half random, so retries spread out. */
export function backoff(attempt: number, baseMs: number, maxMs: number, signal: AbortSignal | undefined): Promise<void> {
  const ceiling = Math.min(maxMs, baseMs * 2 ** (attempt - 2))
  const delay = ceiling / 2 + Math.random() * (ceiling / 2)
  return new Promise<void>((resolve, reject) => {
    if (signal?.aborted) return reject(new AbortedError('command was aborted', { cause: signal.reason }))
    const onAbort = () => {
      clearTimeout(timer)
      reject(new AbortedError('command was aborted', { cause: signal!.reason }))
    }
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort)
      resolve()
    }, delay)
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}
