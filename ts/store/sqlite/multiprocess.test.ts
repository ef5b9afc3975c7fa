/**
 * Several OS processes on one SQLite file: conditional appends racing on shared boundaries, a
 * writer killed with SIGKILL mid-run, and a subscriber in another process.
 */
import { afterAll, describe, expect, test } from 'bun:test'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { JsonLinesChild } from '../../testing/child-process.ts'
import { openSqliteStore } from './index.ts'

const dir = mkdtempSync(join(tmpdir(), 'ringstate-sqlite-multiprocess-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))
const childScript = join(import.meta.dir, 'testdata', 'child.ts')

/** A child of testdata/child.ts: `<path> <role> <name> ...extra`. */
function spawnChild(path: string, role: string, name: string, extra: string[] = []): JsonLinesChild {
  return new JsonLinesChild(childScript, [path, role, name, ...extra])
}

async function startAll(children: JsonLinesChild[]): Promise<void> {
  // Every child has opened the store (and raced on migrating it) before any starts appending.
  await Promise.all(children.map((child) => child.waitFor((lines) => lines.some((line) => line.kind === 'ready'))))
  for (const child of children) child.send('go')
}

describe('sqlite: several processes on one file', () => {
  test('racing conditional appends never break an invariant, and only losers fail, with APPEND_CONDITION_FAILED', async () => {
    const path = join(dir, 'contend.db')
    const children = Array.from({ length: 4 }, (_, i) => spawnChild(path, 'contend', `p${i}`))
    await startAll(children)
    const exits = await Promise.all(children.map(async (child) => {
      await child.finished
      return child.process.exited
    }))
    expect(exits).toEqual([0, 0, 0, 0])
    const lines = children.flatMap((child) => child.lines)

    const store = await openSqliteStore(path)
    try {
      // Course capacity 10: 16 students tried, exactly 10 seats were taken.
      const seats = await store.query([{ types: ['StudentSubscribed'], tags: ['course:c1'] }])
      expect(seats.length).toBe(10)
      const seatLines = lines.filter((line) => line.kind === 'seat')
      const won = seatLines.filter((line) => line.outcome === 'ok')
      expect(won.map((line) => BigInt(line.position as string)).sort()).toEqual(seats.map((event) => event.position).sort())
      for (const line of seatLines) expect(['ok', 'full', 'APPEND_CONDITION_FAILED']).toContain(line.outcome as string)
      expect(seatLines.filter((line) => line.outcome === 'full').length).toBe(6)

      // Each username is claimed exactly once; every other attempt saw it taken or lost the race.
      for (let u = 0; u < 5; u++) {
        const claims = await store.query([{ tags: [`username:u${u}`] }])
        expect(claims.length).toBe(1)
        const attempts = lines.filter((line) => line.kind === 'username' && line.username === `u${u}`)
        expect(attempts.length).toBe(16)
        expect(attempts.filter((line) => line.outcome === 'ok').map((line) => line.position)).toEqual([String(claims[0]!.position)])
        for (const attempt of attempts) expect(['ok', 'taken', 'APPEND_CONDITION_FAILED']).toContain(attempt.outcome as string)
      }

      // Disjoint boundaries never fail each other.
      const own = lines.filter((line) => line.kind === 'own')
      expect(own.length).toBe(160)
      expect(own.every((line) => line.outcome === 'ok')).toBe(true)
      expect((await store.query([{ types: ['OwnEvent'] }])).length).toBe(160)

      // Positions stayed gapless across the processes.
      const all = await store.query('all')
      expect(all.map((event) => event.position)).toEqual(all.map((_, i) => BigInt(i + 1)))
    } finally {
      await store.close()
    }
  })

  test('after SIGKILL every acknowledged append is stored and no append is partly written', async () => {
    const path = join(dir, 'crash.db')
    const child = spawnChild(path, 'crash', 'writer')
    await startAll([child])
    await child.waitFor((lines) => lines.filter((line) => line.kind === 'ack').length >= 200)
    child.process.kill('SIGKILL')
    await child.process.exited
    await child.finished
    expect(child.process.signalCode).toBe('SIGKILL')
    const acked = child.lines.filter((line) => line.kind === 'ack')

    const store = await openSqliteStore(path)
    try {
      const perAppend = new Map<number, number>()
      for await (const event of store.read([{ types: ['Part'] }])) {
        const n = (event.data as { n: number }).n
        expect(event.tags).toEqual([`append:${n}`])
        perAppend.set(n, (perAppend.get(n) ?? 0) + 1)
      }
      for (const line of acked) {
        expect(perAppend.get(line.n as number)).toBe(5)
        const events = await store.query([{ tags: [`append:${line.n}`] }])
        expect(events.at(-1)!.position).toBe(BigInt(line.position as string))
      }
      for (const count of perAppend.values()) expect(count).toBe(5)
      expect(await store.head()).toBe(BigInt(perAppend.size * 5))
      // The store still takes appends after recovery.
      expect(await store.append({ type: 'AfterCrash' })).toMatchObject({ position: BigInt(perAppend.size * 5 + 1), count: 1 })
    } finally {
      await store.close()
    }
  })

  test('a subscriber in another process receives the events appended here, in order', async () => {
    const path = join(dir, 'subscribe.db')
    const store = await openSqliteStore(path)
    try {
      await store.append([{ type: 'Ping', data: { n: 0 } }, { type: 'Other' }])
      const child = spawnChild(path, 'subscribe', 'reader', ['6'])
      await startAll([child])
      // The catch-up part arrives first; the rest is appended while the child waits live.
      await child.waitFor((lines) => lines.some((line) => line.kind === 'event'))
      const expected: bigint[] = [1n]
      for (let n = 1; n < 6; n++) {
        await store.append({ type: 'Other' })
        const { position } = await store.append({ type: 'Ping', data: { n } })
        expected.push(position)
      }
      await child.finished
      expect(await child.process.exited).toBe(0)
      const received = child.lines.filter((line) => line.kind === 'event')
      expect(received.map((line) => BigInt(line.position as string))).toEqual(expected)
      expect(received.map((line) => (line.data as { n: number }).n)).toEqual([0, 1, 2, 3, 4, 5])
    } finally {
      await store.close()
    }
  })
})
