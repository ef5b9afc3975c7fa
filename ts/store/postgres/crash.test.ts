import { afterAll, beforeAll, expect, test } from 'bun:test'
import { join } from 'node:path'
import { freshDatabase, type FreshDatabase } from '../../testing/postgres.ts'
import { openPostgresStore } from './index.ts'
import { lines } from './testdata/lines.ts'

const child = join(import.meta.dir, 'testdata', 'child.ts')

let db: FreshDatabase
beforeAll(async () => {
  db = await freshDatabase()
})
afterAll(() => db.drop())

test('an appender killed with SIGKILL loses no acknowledged append and leaves no half-written one', async () => {
  const proc = Bun.spawn([process.execPath, child, 'append-loop', db.url], { stdout: 'pipe', stderr: 'inherit' })
  const acknowledged = new Map<number, bigint>()
  for await (const line of lines(proc.stdout)) {
    const [position, n] = line.split(' ')
    acknowledged.set(Number(n), BigInt(position!))
    if (acknowledged.size === 200) break
  }
  proc.kill('SIGKILL')
  await proc.exited

  const store = await openPostgresStore(db.url)
  try {
    const events = await store.query('all')
    // Gapless, and every append's three events are all there or none are.
    expect(events.map((event) => event.position)).toEqual(events.map((_, i) => BigInt(i + 1)))
    const perAppend = new Map<string, bigint[]>()
    for (const event of events) perAppend.set(event.tags[0]!, [...(perAppend.get(event.tags[0]!) ?? []), event.position])
    for (const [tag, positions] of perAppend) {
      expect({ tag, count: positions.length }).toEqual({ tag, count: 3 })
    }
    for (const [n, position] of acknowledged) {
      expect(perAppend.get(`append:${n}`)?.at(-1)).toBe(position)
    }
    // Retrying the last acknowledged append (its acknowledgement could have been lost) returns the first result.
    const last = Math.max(...acknowledged.keys())
    const retry = [0, 1, 2].map((k) => ({ type: 'Crash', tags: [`append:${last}`], data: { n: last, k }, id: `a${last}-${k}` }))
    expect(await store.append(retry)).toMatchObject({ position: acknowledged.get(last)!, count: 3 })
  } finally {
    await store.close()
  }
})
