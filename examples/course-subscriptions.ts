/**
 * DCB example "course subscriptions": a course has a capacity, and a student may subscribe to
 * at most MAX_COURSES_PER_STUDENT courses. Both rules hold under concurrency without a "course"
 * or "student" aggregate: each decision reads exactly the events it depends on (by tags), and
 * the append condition fails if any of them changed in the meantime.
 *
 * Run: bun examples/course-subscriptions.ts [store URL]   (default memory:)
 */
import { execute, type EventStore, type ExecuteOptions, type HandlerProjector } from '../ts/index.ts'
import { attempt, runExample } from './_run.ts'

export const MAX_COURSES_PER_STUDENT = 3

/** The events of this example and their data. */
export type CourseEvents = {
  CourseDefined: { courseId: string; capacity: number }
  CourseCapacityChanged: { courseId: string; capacity: number }
  StudentSubscribedToCourse: { studentId: string; courseId: string }
}
type Store = EventStore<CourseEvents>
type CourseProjector<S> = HandlerProjector<S, CourseEvents>

const courseTag = (courseId: string) => `course:${courseId}`
const studentTag = (studentId: string) => `student:${studentId}`

function courseExists(courseId: string): CourseProjector<boolean> {
  return { initial: false, tags: [courseTag(courseId)], when: { CourseDefined: () => true } }
}

function courseCapacity(courseId: string): CourseProjector<number> {
  return {
    initial: 0,
    tags: [courseTag(courseId)],
    when: {
      CourseDefined: (_, event) => event.data.capacity,
      CourseCapacityChanged: (_, event) => event.data.capacity,
    },
  }
}

function subscriptionCount(tag: string): CourseProjector<number> {
  return { initial: 0, tags: [tag], when: { StudentSubscribedToCourse: (n) => n + 1 } }
}

function alreadySubscribed(studentId: string, courseId: string): CourseProjector<boolean> {
  return {
    initial: false,
    tags: [studentTag(studentId), courseTag(courseId)],
    when: { StudentSubscribedToCourse: () => true },
  }
}

/** Define a course; refused when it exists. */
export function defineCourse(store: Store, courseId: string, capacity: number, options?: ExecuteOptions) {
  return execute(store, { type: 'DefineCourse', data: { courseId, capacity } }, async ({ project }) => {
    const { exists } = await project({ exists: courseExists(courseId) })
    if (exists) throw new Error(`course ${courseId} already exists`)
    return { type: 'CourseDefined', tags: [courseTag(courseId)], data: { courseId, capacity } }
  }, options)
}

/** Change a course's capacity; refused for an unknown course or an unchanged capacity. */
export function changeCourseCapacity(store: Store, courseId: string, capacity: number, options?: ExecuteOptions) {
  return execute(store, { type: 'ChangeCourseCapacity', data: { courseId, capacity } }, async ({ project }) => {
    const { exists, current } = await project({ exists: courseExists(courseId), current: courseCapacity(courseId) })
    if (!exists) throw new Error(`course ${courseId} does not exist`)
    if (current === capacity) throw new Error(`course ${courseId} already has capacity ${capacity}`)
    return { type: 'CourseCapacityChanged', tags: [courseTag(courseId)], data: { courseId, capacity } }
  }, options)
}

/** Subscribe a student to a course, enforcing both capacities. */
export function subscribeStudent(store: Store, studentId: string, courseId: string, options?: ExecuteOptions) {
  return execute(store, { type: 'SubscribeStudentToCourse', data: { studentId, courseId } }, async ({ project }) => {
    const s = await project({
      exists: courseExists(courseId),
      capacity: courseCapacity(courseId),
      courseSubscriptions: subscriptionCount(courseTag(courseId)),
      studentSubscriptions: subscriptionCount(studentTag(studentId)),
      subscribed: alreadySubscribed(studentId, courseId),
    })
    if (!s.exists) throw new Error(`course ${courseId} does not exist`)
    if (s.subscribed) throw new Error(`student ${studentId} is already subscribed to course ${courseId}`)
    if (s.courseSubscriptions >= s.capacity) throw new Error(`course ${courseId} is full`)
    if (s.studentSubscriptions >= MAX_COURSES_PER_STUDENT) {
      throw new Error(`student ${studentId} is already subscribed to ${MAX_COURSES_PER_STUDENT} courses`)
    }
    return {
      type: 'StudentSubscribedToCourse',
      tags: [studentTag(studentId), courseTag(courseId)],
      data: { studentId, courseId },
    }
  }, options)
}

if (import.meta.main) {
  await runExample<CourseEvents>('Course subscriptions', async (store) => {
    await attempt('define course c1 with capacity 2', () => defineCourse(store, 'c1', 2))
    await attempt('define course c1 again', () => defineCourse(store, 'c1', 5))
    await attempt('subscribe s1 to c1', () => subscribeStudent(store, 's1', 'c1'))
    await attempt('subscribe s1 to c1 again', () => subscribeStudent(store, 's1', 'c1'))
    await attempt('subscribe s2 to c1', () => subscribeStudent(store, 's2', 'c1'))
    await attempt('subscribe s3 to c1', () => subscribeStudent(store, 's3', 'c1'))
    await attempt('raise c1 capacity to 3', () => changeCourseCapacity(store, 'c1', 3))
    await attempt('subscribe s3 to c1', () => subscribeStudent(store, 's3', 'c1'))
    for (const course of ['c2', 'c3', 'c4']) await attempt(`define course ${course}`, () => defineCourse(store, course, 10))
    for (const course of ['c2', 'c3', 'c4']) await attempt(`subscribe s1 to ${course}`, () => subscribeStudent(store, 's1', course))

    console.log('  6 students race for the 2 seats of course c5:')
    await defineCourse(store, 'c5', 2)
    const racers = ['r1', 'r2', 'r3', 'r4', 'r5', 'r6']
    const outcomes = await Promise.allSettled(racers.map((student) => subscribeStudent(store, student, 'c5')))
    const seated = racers.filter((_, i) => outcomes[i]!.status === 'fulfilled')
    console.log(`  seated: ${seated.join(', ')}; refused: ${racers.length - seated.length}`)
    console.log(`  commands recorded: ${(await store.commands()).length}, events: ${await store.head()}`)
  })
}
