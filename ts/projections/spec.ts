/**
 * Given/when/then specifications for aggregates (DESIGN.md 6.1), so domain tests read like the
 * domain. Each specification runs the real `execute` on a private in-memory store seeded with the
 * given events, so what passes here behaves the same against a real store. No method is named
 * `then`: a specification must never be mistaken for a Promise by `await`.
 */
import { CommandFailedError } from '../errors.ts'
import { MemoryStore } from '../store/memory/index.ts'
import type { EventMap, EventType } from '../store/types.ts'
import type { Aggregate, AggregateHandler } from './aggregate.ts'

/** An event as given to or expected from a specification. */
export type SpecEvent<Events extends EventMap> = {
  [T in EventType<Events>]: { type: T; data: Events[T] }
}[EventType<Events>]

/** `spec().given(events)`: the history. */
export interface AggregateSpec<State, Events extends EventMap> {
  /** The events already in the aggregate's history, oldest first. */
  given(events: readonly SpecEvent<Events>[]): GivenSpec<State, Events>
}

/** `.when(handler)`: the command under test. */
export interface GivenSpec<State, Events extends EventMap> {
  when(handler: AggregateHandler<State, Events, unknown>): WhenSpec<State, Events>
}

/** The expectations; each resolves when it holds and rejects with expected and actual otherwise. */
export interface WhenSpec<State, Events extends EventMap> {
  /** The handler recorded exactly these events (type and data), in order. */
  thenEvents(events: readonly SpecEvent<Events>[]): Promise<void>
  /** The state after the command equals `state` (deep equality). */
  thenState(state: State): Promise<void>
  /** The handler threw (its own error is passed to `predicate`, not the COMMAND_FAILED wrapper). */
  thenThrows(predicate?: (error: Error) => boolean): Promise<void>
  /** The handler neither threw nor recorded anything. */
  thenNothingHappened(): Promise<void>
}

/** An expectation of a specification did not hold. */
export class SpecificationError extends Error {
  readonly expected: unknown
  readonly actual: unknown

  constructor(
    message: string,
    expected: unknown,
    actual: unknown,
  ) {
    super(`${message}\n  expected: ${show(expected)}\n  actual:   ${show(actual)}`)
    this.expected = expected
    this.actual = actual
    this.name = 'SpecificationError'
  }
}

type Outcome<State> =
  | { kind: 'ok'; events: { type: string; data: unknown }[]; state: State }
  | { kind: 'threw'; error: Error }

/** @internal Built by `Aggregate.spec()`. */
export function createSpec<State, Events extends EventMap>(
  aggregate: Aggregate<State, Events>,
  id: string,
): AggregateSpec<State, Events> {
  return {
    given(history) {
      return {
        when(handler) {
          let outcome: Promise<Outcome<State>> | undefined
          const run = () => (outcome ??= runSpec(aggregate, id, history, handler))
          return {
            async thenEvents(expected) {
              const actual = await run()
              if (actual.kind === 'threw') throw new SpecificationError('the handler threw', expected, actual.error)
              const got = actual.events
              if (!deepEqual(got, expected.map((e) => ({ type: e.type, data: e.data })))) {
                throw new SpecificationError('the handler recorded other events', expected, got)
              }
            },
            async thenState(expected) {
              const actual = await run()
              if (actual.kind === 'threw') throw new SpecificationError('the handler threw', expected, actual.error)
              if (!deepEqual(actual.state, expected)) throw new SpecificationError('the state differs', expected, actual.state)
            },
            async thenThrows(predicate) {
              const actual = await run()
              if (actual.kind !== 'threw') throw new SpecificationError('the handler did not throw', 'an error', actual.events)
              if (predicate !== undefined && !predicate(actual.error)) {
                throw new SpecificationError('the handler threw an error the predicate refused', 'an accepted error', actual.error)
              }
            },
            async thenNothingHappened() {
              const actual = await run()
              if (actual.kind === 'threw') throw new SpecificationError('the handler threw', 'no events', actual.error)
              if (actual.events.length > 0) throw new SpecificationError('the handler recorded events', [], actual.events)
            },
          }
        },
      }
    },
  }
}

async function runSpec<State, Events extends EventMap>(
  aggregate: Aggregate<State, Events>,
  id: string,
  history: readonly SpecEvent<Events>[],
  handler: AggregateHandler<State, Events, unknown>,
): Promise<Outcome<State>> {
  const store = new MemoryStore()
  try {
    const tag = aggregate.tag(id)
    if (history.length > 0) {
      await store.append(history.map((e) => ({ type: e.type, tags: [tag], data: e.data })) as never)
    }
    const head = await store.head()
    try {
      const result = await aggregate.execute(store, id, handler, { maxAttempts: 1 })
      const written = await store.query('all', { after: head })
      return { kind: 'ok', events: written.map((e) => ({ type: e.type, data: e.data })), state: result.state }
    } catch (error) {
      if (error instanceof CommandFailedError && error.cause instanceof Error) return { kind: 'threw', error: error.cause }
      if (error instanceof Error) return { kind: 'threw', error }
      return { kind: 'threw', error: new Error(String(error)) }
    }
  } finally {
    await store.close()
  }
}

function show(value: unknown): string {
  if (value instanceof Error) return `${value.name}: ${value.message}`
  return JSON.stringify(value, (_, v) => (typeof v === 'bigint' ? `${v}n` : v))
}

/** Structural equality over JSON-like values (plus bigint and Date). */
export function deepEqual(a: unknown, b: unknown): boolean {
  if (Object.is(a, b)) return true
  if (typeof a !== typeof b || a === null || b === null || typeof a !== 'object') return false
  if (a instanceof Date || b instanceof Date) return a instanceof Date && b instanceof Date && a.getTime() === b.getTime()
  if (Array.isArray(a) !== Array.isArray(b)) return false
  if (Array.isArray(a)) {
    const other = b as unknown[]
    return a.length === other.length && a.every((item, i) => deepEqual(item, other[i]))
  }
  const ka = Object.keys(a as object).filter((k) => (a as Record<string, unknown>)[k] !== undefined)
  const kb = Object.keys(b as object).filter((k) => (b as Record<string, unknown>)[k] !== undefined)
  if (ka.length !== kb.length) return false
  return ka.every((k) => deepEqual((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]))
}
