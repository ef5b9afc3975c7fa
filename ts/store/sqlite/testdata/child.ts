/**
 * A child process for the multi-process tests of the SQLite store. It opens the store, prints
 * `ready`, waits for a line `go` on stdin (so every child starts racing at once), runs one role,
 * prints one JSON line per outcome, and exits.
 *
 *   bun child.ts <db path> <role> <child name>
 *
 * Roles:
 * - contend: several concurrent workers each try to take one of 10 seats of course c1 (projecting
 *   the course, then appending under the projected condition), try to claim usernames u0..u4,
 *   and append to a boundary of their own (`owner:<child>`) that nobody else touches.
 * - crash: appends of 5 events each (same `append:<n>` tag) in a loop, from 4 concurrent workers,
 *   printing every acknowledged append; the parent kills it with SIGKILL.
 * - subscribe: prints the position of every `Ping` event it receives, then exits after `count`.
 */
import { openSqliteStore } from '../index.ts'
import type { EventStore, Query } from '../../types.ts'

const [path, role, name, countText] = process.argv.slice(2)
if (path === undefined || role === undefined || name === undefined) {
  throw new Error('usage: child.ts <db path> <role> <child name> [count]')
}

function report(line: unknown): void {
  process.stdout.write(`${JSON.stringify(line, (_key, value) => (typeof value === 'bigint' ? value.toString() : value))}\n`)
}

async function waitForGo(): Promise<void> {
  for await (const line of console) if (line.trim() === 'go') return
}

const CAPACITY = 10
const course: Query = [{ types: ['StudentSubscribed'], tags: ['course:c1'] }]

async function takeSeat(store: EventStore, student: string): Promise<void> {
  for (;;) {
    const { states, condition } = await store.project({
      taken: { query: course, initial: 0, apply: (count: number) => count + 1 },
    })
    if (states.taken >= CAPACITY) {
      report({ kind: 'seat', student, outcome: 'full' })
      return
    }
    try {
      const { position } = await store.append({ type: 'StudentSubscribed', tags: ['course:c1', `student:${student}`] }, condition)
      report({ kind: 'seat', student, outcome: 'ok', position })
      return
    } catch (error) {
      // A lost race: report it, then decide again on fresh facts.
      report({ kind: 'seat', student, outcome: (error as { code?: string }).code ?? String(error) })
    }
  }
}

async function claimUsername(store: EventStore, username: string): Promise<void> {
  const { states, condition } = await store.project({
    taken: { query: [{ tags: [`username:${username}`] }], initial: false, apply: () => true },
  })
  if (states.taken) {
    report({ kind: 'username', username, outcome: 'taken' })
    return
  }
  try {
    const { position } = await store.append({ type: 'UsernameClaimed', tags: [`username:${username}`], data: { by: name } }, condition)
    report({ kind: 'username', username, outcome: 'ok', position })
  } catch (error) {
    report({ kind: 'username', username, outcome: (error as { code?: string }).code ?? String(error) })
  }
}

async function ownBoundary(store: EventStore, worker: number): Promise<void> {
  const tag = `owner:${name}-${worker}`
  for (let i = 0; i < 10; i++) {
    const { condition } = await store.project({ mine: { query: [{ tags: [tag] }], initial: 0, apply: (n: number) => n + 1 } })
    try {
      await store.append({ type: 'OwnEvent', tags: [tag] }, condition)
      report({ kind: 'own', outcome: 'ok' })
    } catch (error) {
      report({ kind: 'own', outcome: (error as { code?: string }).code ?? String(error) })
    }
  }
}

async function contend(store: EventStore): Promise<void> {
  const workers: Promise<void>[] = []
  for (let worker = 0; worker < 4; worker++) {
    workers.push((async () => {
      await takeSeat(store, `${name}-${worker}`)
      for (let u = 0; u < 5; u++) await claimUsername(store, `u${u}`)
      await ownBoundary(store, worker)
    })())
  }
  await Promise.all(workers)
}

async function crash(store: EventStore): Promise<void> {
  let next = 0
  const worker = async () => {
    for (;;) {
      const n = next++
      const events = Array.from({ length: 5 }, (_, i) => ({ type: 'Part', tags: [`append:${n}`], data: { n, i } }))
      const { position } = await store.append(events)
      report({ kind: 'ack', n, position })
    }
  }
  await Promise.all([worker(), worker(), worker(), worker()])
}

async function subscribe(store: EventStore, count: number): Promise<void> {
  let received = 0
  for await (const event of store.subscribe([{ types: ['Ping'] }])) {
    report({ kind: 'event', position: event.position, data: event.data })
    if (++received === count) return
  }
}

const store = await openSqliteStore(path)
report({ kind: 'ready' })
await waitForGo()
if (role === 'contend') await contend(store)
else if (role === 'crash') await crash(store)
else if (role === 'subscribe') await subscribe(store, Number(countText))
else throw new Error(`unknown role ${role}`)
await store.close()
report({ kind: 'done' })
