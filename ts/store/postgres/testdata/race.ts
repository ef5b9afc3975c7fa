// One racer of the concurrency tests, shared by in-process racers and child processes: for usernames
// user-0..user-<rounds-1> it claims the name if it looks free, enrols in course c1 (capacity 10) if it looks
// open, and appends a step on its own boundary, each under the condition its projection returned.
import type { EventStore, Query } from '../../types.ts'

export interface RaceOutcome {
  name: string
  usernames: string[]
  enrolments: number
  own: number
  /** Error code -> count; disjoint-boundary failures are prefixed "own:". */
  failures: Record<string, number>
}

const codeOf = (error: unknown) => (error as { code?: string }).code ?? String(error)

export async function race(store: EventStore, name: string, rounds: number): Promise<RaceOutcome> {
  const outcome: RaceOutcome = { name, usernames: [] as string[], enrolments: 0, own: 0, failures: {} as Record<string, number> }
  const fail = (code: string) => { outcome.failures[code] = (outcome.failures[code] ?? 0) + 1 }
  const taken = (user: string) => ({ query: [{ types: ['UsernameClaimed'], tags: [`username:${user}`] }] as Query, initial: false, apply: () => true })
  const enrolled = { query: [{ types: ['Enrolled'], tags: ['course:c1'] }] as Query, initial: 0, apply: (n: number) => n + 1 }
  const mine = { query: [{ tags: [`owner:${name}`] }] as Query, initial: 0, apply: (n: number) => n + 1 }
  for (let u = 0; u < rounds; u++) {
    const user = `user-${u}`
    const decision = await store.project({ taken: taken(user) })
    if (!decision.states.taken) {
      try {
        await store.append({ type: 'UsernameClaimed', tags: [`username:${user}`], data: { by: name } }, decision.condition)
        outcome.usernames.push(user)
      } catch (error) { fail(codeOf(error)) }
    }
    const course = await store.project({ enrolled })
    if (course.states.enrolled < 10) {
      try {
        await store.append({ type: 'Enrolled', tags: ['course:c1', `student:${name}-${u}`] }, course.condition)
        outcome.enrolments++
      } catch (error) { fail(codeOf(error)) }
    }
    const own = await store.project({ mine })
    try {
      await store.append({ type: 'OwnStep', tags: [`owner:${name}`], data: { step: own.states.mine } }, own.condition)
      outcome.own++
    } catch (error) { fail(`own:${codeOf(error)}`) }
  }
  return outcome
}

