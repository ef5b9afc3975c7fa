/**
 * `project`: build decision models from the log, shared by every backend (it only needs `read`).
 */
import { AbortedError, InvalidQueryError } from '../errors.ts'
import { matchesQuery, unionQueries } from './match.ts'
import type { AppendCondition, EventStore, Projector, ProjectResult, Query } from './types.ts'
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
export async function project<P extends Record<string, Projector<any>>>(
  store: Pick<EventStore, 'read'>,
  projectors: P,
  options?: { signal?: AbortSignal },
): Promise<ProjectResult<P>> {
  if (typeof projectors !== 'object' || projectors === null) {
    throw new InvalidQueryError('project needs an object of named projectors')
  }
  const names = Object.keys(projectors)
  if (names.length === 0) throw new InvalidQueryError('project needs at least one projector')
  const queries: Query[] = []
  for (const name of names) {
    const projector = projectors[name]!
    if (typeof projector !== 'object' || projector === null || typeof projector.apply !== 'function') {
      throw new InvalidQueryError(`projector ${name} must have query, initial and apply`)
    }
    try {
      validateQuery(projector.query)
    } catch (error) {
      throw new InvalidQueryError(`projector ${name}: ${(error as Error).message}`)
    }
    queries.push(projector.query)
  }

  const states: Record<string, unknown> = {}
  for (const name of names) states[name] = projectors[name]!.initial
  const signal = options?.signal
  if (signal?.aborted) throw new AbortedError()

  let last: bigint | undefined
  // Each event of this read matches at least one projector by construction of the union.
  for await (const event of store.read(unionQueries(queries), { signal })) {
    for (let i = 0; i < names.length; i++) {
      if (matchesQuery(queries[i]!, event.type, event.tags)) {
        const name = names[i]!
        states[name] = projectors[name]!.apply(states[name], event)
      }
    }
    last = event.position
  }
  if (signal?.aborted) throw new AbortedError()

  const condition: AppendCondition = { failIfEventsMatch: unionQueries(queries) }
  if (last !== undefined) condition.after = last
  return { states: states as ProjectResult<P>['states'], condition }
}
