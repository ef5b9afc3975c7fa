/**
 * The example scenarios of the DCB specification, as tests that run against any backend.
 * The domain code is the one in examples/ (so the runnable programs are tested too); these tests
 * pin down what each scenario must guarantee, including under concurrency.
 *
 * @example
 * import { describeScenarios } from '../dcb-scenarios.case.ts'
 * describeScenarios('sqlite', () => openSqliteStore(':memory:'))
 */
import { describe, expect, test } from 'bun:test'
import {
  changeCourseCapacity,
  defineCourse,
  MAX_COURSES_PER_STUDENT,
  subscribeStudent,
} from '../../examples/course-subscriptions.ts'
import { createInvoice } from '../../examples/invoice-numbers.ts'
import { confirmSignUp, initiateSignUp, TOKEN_TTL_MS } from '../../examples/opt-in-token.ts'
import { placeOrder, placeOrderWithEventId } from '../../examples/prevent-duplicate-submissions.ts'
import { changeUsername, closeAccount, registerAccount } from '../../examples/unique-username.ts'
import type { EventStore } from './types.ts'
import { withFreshStore } from './conformance.case.ts'

/** The domain reason of a refusal, or the error code, or 'ok'. */
async function outcome(work: () => Promise<unknown>): Promise<string> {
  try {
    await work()
    return 'ok'
  } catch (error) {
    const { code, cause } = error as { code?: string; cause?: unknown }
    if (code === 'COMMAND_FAILED' && cause instanceof Error) return cause.message
    return code ?? String(error)
  }
}

function settledCount(results: PromiseSettledResult<unknown>[], status: 'fulfilled' | 'rejected'): number {
  return results.filter((result) => result.status === status).length
}

/** Register the DCB scenario tests for one backend; `open` must return a fresh, empty store. */
export function describeScenarios(name: string, open: () => Promise<EventStore>): void {
  const withStore = withFreshStore(open)

  describe(`${name}: DCB scenario course subscriptions`, () => {
    test('a course is defined once', withStore(async (store) => {
      expect(await outcome(() => defineCourse(store, 'c1', 2))).toBe('ok')
      expect(await outcome(() => defineCourse(store, 'c1', 3))).toBe('course c1 already exists')
    }))

    test('a course takes students up to its capacity, and more after the capacity is raised', withStore(async (store) => {
      await defineCourse(store, 'c1', 2)
      expect(await outcome(() => subscribeStudent(store, 's1', 'c1'))).toBe('ok')
      expect(await outcome(() => subscribeStudent(store, 's1', 'c1'))).toBe('student s1 is already subscribed to course c1')
      expect(await outcome(() => subscribeStudent(store, 's2', 'c1'))).toBe('ok')
      expect(await outcome(() => subscribeStudent(store, 's3', 'c1'))).toBe('course c1 is full')
      await changeCourseCapacity(store, 'c1', 3)
      expect(await outcome(() => subscribeStudent(store, 's3', 'c1'))).toBe('ok')
      expect(await outcome(() => subscribeStudent(store, 's4', 'c9'))).toBe('course c9 does not exist')
    }))

    test('a student subscribes to at most the allowed number of courses', withStore(async (store) => {
      const courses = Array.from({ length: MAX_COURSES_PER_STUDENT + 1 }, (_, i) => `k${i}`)
      for (const course of courses) await defineCourse(store, course, 10)
      for (const course of courses.slice(0, -1)) expect(await outcome(() => subscribeStudent(store, 's1', course))).toBe('ok')
      expect(await outcome(() => subscribeStudent(store, 's1', courses.at(-1)!))).toBe(
        `student s1 is already subscribed to ${MAX_COURSES_PER_STUDENT} courses`,
      )
      expect(await outcome(() => subscribeStudent(store, 's2', courses.at(-1)!))).toBe('ok')
    }))

    test('students racing for the last seats never overbook the course', withStore(async (store) => {
      await defineCourse(store, 'c1', 3)
      const results = await Promise.allSettled(
        Array.from({ length: 10 }, (_, i) => subscribeStudent(store, `s${i}`, 'c1', { baseDelayMs: 1 })),
      )
      expect(settledCount(results, 'fulfilled')).toBe(3)
      for (const result of results) {
        if (result.status === 'rejected') expect(result.reason).toMatchObject({ code: 'COMMAND_FAILED' })
      }
      expect((await store.query([{ types: ['StudentSubscribedToCourse'], tags: ['course:c1'] }])).length).toBe(3)
    }))

    test('a student racing into many courses never exceeds the limit', withStore(async (store) => {
      const courses = Array.from({ length: MAX_COURSES_PER_STUDENT + 3 }, (_, i) => `k${i}`)
      for (const course of courses) await defineCourse(store, course, 10)
      const results = await Promise.allSettled(courses.map((course) => subscribeStudent(store, 's1', course, { baseDelayMs: 1 })))
      expect(settledCount(results, 'fulfilled')).toBe(MAX_COURSES_PER_STUDENT)
      expect((await store.query([{ tags: ['student:s1'] }])).length).toBe(MAX_COURSES_PER_STUDENT)
    }))
  })

  describe(`${name}: DCB scenario unique username`, () => {
    test('a username is claimed by one account', withStore(async (store) => {
      expect(await outcome(() => registerAccount(store, 'a1', 'ada'))).toBe('ok')
      expect(await outcome(() => registerAccount(store, 'a2', 'ada'))).toBe('username "ada" is taken')
    }))

    test('closing an account releases its username', withStore(async (store) => {
      await registerAccount(store, 'a1', 'ada')
      await closeAccount(store, 'a1')
      expect(await outcome(() => registerAccount(store, 'a2', 'ada'))).toBe('ok')
    }))

    test('changing a username releases the old one and claims the new one', withStore(async (store) => {
      await registerAccount(store, 'a1', 'ada')
      await registerAccount(store, 'a2', 'bob')
      expect(await outcome(() => changeUsername(store, 'a2', 'ada'))).toBe('username "ada" is taken')
      expect(await outcome(() => changeUsername(store, 'a1', 'carl'))).toBe('ok')
      expect(await outcome(() => registerAccount(store, 'a3', 'carl'))).toBe('username "carl" is taken')
      expect(await outcome(() => changeUsername(store, 'a2', 'ada'))).toBe('ok')
      expect(await outcome(() => registerAccount(store, 'a4', 'bob'))).toBe('ok')
    }))

    test('of accounts racing for one username exactly one gets it', withStore(async (store) => {
      const results = await Promise.allSettled(
        Array.from({ length: 6 }, (_, i) => registerAccount(store, `a${i}`, 'eve', { baseDelayMs: 1 })),
      )
      expect(settledCount(results, 'fulfilled')).toBe(1)
      expect((await store.query([{ tags: ['username:eve'] }])).length).toBe(1)
    }))
  })

  describe(`${name}: DCB scenario invoice numbers`, () => {
    test('invoices get consecutive numbers starting at 1', withStore(async (store) => {
      expect(await createInvoice(store, { customer: 'a', amount: 1 })).toBe(1)
      expect(await createInvoice(store, { customer: 'b', amount: 2 })).toBe(2)
      await store.append({ type: 'Unrelated' })
      expect(await createInvoice(store, { customer: 'c', amount: 3 })).toBe(3)
    }))

    test('invoices created concurrently get gapless, unique numbers', withStore(async (store) => {
      const count = 12
      const numbers = await Promise.all(
        Array.from({ length: count }, (_, i) =>
          createInvoice(store, { customer: `c${i}`, amount: i }, { maxAttempts: count + 1, baseDelayMs: 1, maxDelayMs: 5 }),
        ),
      )
      expect(numbers.sort((a, b) => a - b)).toEqual(Array.from({ length: count }, (_, i) => i + 1))
      const stored = await store.query([{ types: ['InvoiceCreated'] }])
      expect(stored.map((event) => (event.data as { invoiceNumber: number }).invoiceNumber)).toEqual(
        Array.from({ length: count }, (_, i) => i + 1),
      )
    }))
  })

  describe(`${name}: DCB scenario opt-in token`, () => {
    test('a token confirms its own address once', withStore(async (store) => {
      const otp = await initiateSignUp(store, 'ada@example.com')
      expect(await outcome(() => confirmSignUp(store, 'bob@example.com', otp))).toBe('no such token for this address')
      expect(await outcome(() => confirmSignUp(store, 'ada@example.com', 'made-up'))).toBe('no such token for this address')
      expect(await outcome(() => confirmSignUp(store, 'ada@example.com', otp))).toBe('ok')
      expect(await outcome(() => confirmSignUp(store, 'ada@example.com', otp))).toBe('the token was already used')
    }))

    test('an expired token is refused', withStore(async (store) => {
      const otp = await initiateSignUp(store, 'ada@example.com')
      const later = new Date(Date.now() + TOKEN_TTL_MS + 60_000)
      expect(await outcome(() => confirmSignUp(store, 'ada@example.com', otp, later))).toBe('the token has expired')
    }))

    test('of concurrent confirmations with one token exactly one succeeds', withStore(async (store) => {
      const otp = await initiateSignUp(store, 'ada@example.com')
      const results = await Promise.allSettled(
        Array.from({ length: 5 }, () => confirmSignUp(store, 'ada@example.com', otp, new Date(), { baseDelayMs: 1 })),
      )
      expect(settledCount(results, 'fulfilled')).toBe(1)
      expect((await store.query([{ types: ['SignUpConfirmed'] }])).length).toBe(1)
    }))
  })

  describe(`${name}: DCB scenario prevent duplicate submissions`, () => {
    const order = { customer: 'ada', items: ['book'] }

    test('a second submission with the same token is refused', withStore(async (store) => {
      expect(await outcome(() => placeOrder(store, 't-1', order))).toBe('ok')
      expect(await outcome(() => placeOrder(store, 't-1', order))).toBe('an order with token t-1 was already placed')
      expect(await outcome(() => placeOrder(store, 't-2', order))).toBe('ok')
    }))

    test('of concurrent submissions with one token exactly one is placed', withStore(async (store) => {
      const results = await Promise.allSettled(
        Array.from({ length: 5 }, () => placeOrder(store, 't-1', order, { baseDelayMs: 1 })),
      )
      expect(settledCount(results, 'fulfilled')).toBe(1)
      expect((await store.query([{ tags: ['idempotency:t-1'] }])).length).toBe(1)
    }))

    test('with the token as event id, a resubmission returns the first result and writes nothing', withStore(async (store) => {
      const first = await placeOrderWithEventId(store, 't-1', order)
      const again = await Promise.all([placeOrderWithEventId(store, 't-1', order), placeOrderWithEventId(store, 't-1', order)])
      expect(again).toEqual([first, first])
      expect(await store.head()).toBe(1n)
    }))
  })
}
