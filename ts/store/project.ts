/**
 * `project`: build decision models from the log, shared by every backend (it only needs `read`).
 */
import { AbortedError, InvalidQueryError } from '../errors.ts'
import { matchesQuery, unionQueries } from './match.ts'
import type { AnyProjector, AppendCondition, EventMap, EventStore, Projector, ProjectResult, Query, SequencedEvent } from './types.ts'
import { validateQuery } from './validate.ts'

/**
 * Fold the events of every projector's query, in position order, and return the states with the
 * append condition that keeps a decision based on them safe.
 *
 * One read covers all projectors (the OR of their queries); each event is applied to every
 * projector whose query it matches. The condition fails an append when any event matching any
 * projector's query lands after the last event this projection read. `after` is that event's
 * position, never the store's head: an event that was given a lower position but committed later
 * would otherwise slip past the condition. When nothing matched, `after` is undefined, so the
 * append fails on any matching event.
 *
 * `apply` must return the next state without mutating `initial` (it is shared between calls).
 *
 * @throws InvalidQueryError (INVALID_QUERY) when there are no projectors or a query is invalid.
 * @throws AbortedError (ABORTED) when the signal aborts.
 *
 * @example
 * const { states, condition } = await project(store, {
 *   enrolled: {
 *     query: [{ types: ['StudentEnrolled'], tags: ['course:c1'] }],
 *     initial: 0,
 *     apply: (count) => count + 1,
 *   },
 * })
 * if (states.enrolled >= 30) throw new Error('course is full')
 * await store.append({ type: 'StudentEnrolled', tags: ['course:c1', 'student:s1'] }, condition)
 */
export async function project<E extends EventMap, P extends Record<string, AnyProjector<any, E>>>(
  store: Pick<EventStore<E>, 'read'>,
  projectors: P,
  options?: { signal?: AbortSignal },
): Promise<ProjectResult<P>> {
  if (typeof projectors !== 'object' || projectors === null) {
    throw new InvalidQueryError('project needs an object of named projectors')
  }
  const names = Object.keys(projectors)
  if (names.length === 0) throw new InvalidQueryError('project needs at least one projector')
  const queries: Query[] = []
  const folds: Projector<unknown>[] = []
  for (const name of names) {
    const fold = toFold(name, projectors[name])
    try {
      validateQuery(fold.query)
    } catch (error) {
      throw new InvalidQueryError(`projector ${name}: ${(error as Error).message}`)
    }
    queries.push(fold.query)
    folds.push(fold)
  }

  const states: Record<string, unknown> = {}
  for (let i = 0; i < names.length; i++) states[names[i]!] = folds[i]!.initial
  const signal = options?.signal
  if (signal?.aborted) throw new AbortedError()

  let last: bigint | undefined
  // Each event of this read matches at least one projector by construction of the union.
  for await (const event of store.read(unionQueries(queries), { signal })) {
    for (let i = 0; i < names.length; i++) {
      if (matchesQuery(queries[i]!, event.type, event.tags)) {
        const name = names[i]!
        states[name] = folds[i]!.apply(states[name], event)
      }
    }
    last = event.position
  }
  if (signal?.aborted) throw new AbortedError()

  const condition: AppendCondition = { failIfEventsMatch: unionQueries(queries) }
  if (last !== undefined) condition.after = last
  return { states: states as ProjectResult<P>['states'], condition }
}

/**
 * Both projector forms as one fold. A handler map (`{ initial, tags?, when }`) becomes the query
 * `[{ types: keys of when, tags }]` and an `apply` that dispatches on `event.type`; a key whose
 * value is not a function is INVALID_QUERY, never silently ignored.
 */
export function toFold(name: string, projector: unknown): Projector<unknown> {
  if (typeof projector !== 'object' || projector === null) {
    throw new InvalidQueryError(`projector ${name} must be an object with initial and either query + apply or when`)
  }
  const candidate = projector as Partial<Projector<unknown>> & { when?: unknown; tags?: unknown }
  if ('when' in candidate) {
    const when = candidate.when
    if (typeof when !== 'object' || when === null) throw new InvalidQueryError(`projector ${name}: when must be an object of handlers`)
    const handlers = new Map<string, (state: unknown, event: SequencedEvent) => unknown>()
    for (const [type, handler] of Object.entries(when)) {
      if (typeof handler !== 'function') throw new InvalidQueryError(`projector ${name}: when.${type} must be a function`)
      handlers.set(type, handler as (state: unknown, event: SequencedEvent) => unknown)
    }
    if (handlers.size === 0) throw new InvalidQueryError(`projector ${name}: when needs at least one handler`)
    const tags = candidate.tags
    if (tags !== undefined && !Array.isArray(tags)) throw new InvalidQueryError(`projector ${name}: tags must be an array`)
    const item = tags === undefined || tags.length === 0
      ? { types: [...handlers.keys()] }
      : { types: [...handlers.keys()], tags: tags as readonly string[] }
    return {
      query: [item],
      initial: candidate.initial,
      // The query admits only the handled types, so a handler always exists here.
      apply: (state, event) => handlers.get(event.type)!(state, event),
    }
  }
  if (typeof candidate.apply !== 'function') {
    throw new InvalidQueryError(`projector ${name} must have query, initial and apply (or initial and when)`)
  }
  return candidate as Projector<unknown>
}
