/**
 * The PostgreSQL server itself crashes under load (`pg_ctl stop -m immediate`, as a power cut would
 * stop it) and comes back on the same port. Its own durable cluster, never DATABASE_URL's server:
 * this test stops the server.
 *
 * Checks: every acknowledged append is stored whole with its ids and position; no append is partly
 * stored; an append whose outcome was unknown (STORAGE_ERROR) is wholly present or wholly absent,
 * and retrying it with the same ids answers it exactly once; the same store instance reconnects by
 * itself (appends succeed again within a deadline); its live `subscribe` and `follow` carry on
 * through the crash and deliver every event, in order, once.
 */
import { afterAll, beforeAll, expect, test } from 'bun:test'
import { startCluster, type StartedCluster } from '../../testing/pg-cluster.mjs'
import { openStore } from '../open.ts'
import type { AppendResult, EventInput, EventStore, SequencedEvent } from '../types.ts'

const CALLERS = 32
/** Acknowledged appends before the crash. */
const BEFORE_CRASH = 300
/** The store's bound on one connection attempt. */
const CONNECT_TIMEOUT_MS = 5_000
/**
 * How long after the server is back every caller must have appended again: a reconnect may take up
 * to connectTimeoutMs, and twice that leaves room for a loaded machine. A store that waits out a
 * long reconnect backoff after the outage (postgres.js's default grows to 20 s) fails here.
 */
const RECOVERY_DEADLINE_MS = 2 * CONNECT_TIMEOUT_MS
/** Any other wait of the test (load before the crash, deliveries to the live readers). */
const DEADLINE_MS = 30_000

let cluster: StartedCluster
beforeAll(async () => {
  cluster = await startCluster({ durable: true })
})
afterAll(() => cluster.stop())

interface Attempt {
  caller: number
  n: number
  events: EventInput[]
  ids: string[]
  outcome?: { ok: AppendResult } | { code: string; message: string }
  /** Issued after the server was back up. */
  afterRestart: boolean
}

/** Resolves when `check()` holds, polling every 20 ms; rejects with `what` at the deadline. */
async function until(what: string, check: () => boolean | Promise<boolean>, deadlineMs = DEADLINE_MS): Promise<void> {
  const deadline = Date.now() + deadlineMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`not within ${deadlineMs} ms: ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

test('a server crash under 32 concurrent appenders loses no acknowledged append, half-writes none, and the store carries on by itself', async () => {
  const store: EventStore = await openStore(cluster.url, { appendTimeoutMs: 10_000, connectTimeoutMs: CONNECT_TIMEOUT_MS })
  const live = { subscribed: [] as SequencedEvent[], followed: [] as SequencedEvent[], through: 0n, errors: [] as unknown[] }
  const stopLive = new AbortController()
  const liveRuns = [
    (async () => {
      for await (const event of store.subscribe('all', { signal: stopLive.signal })) live.subscribed.push(event)
    })(),
    (async () => {
      for await (const batch of store.follow([{ types: ['Crash'] }], { signal: stopLive.signal })) {
        live.followed.push(...batch.events)
        live.through = batch.through
      }
    })(),
  ].map((run) => run.catch((error: unknown) => void (stopLive.signal.aborted || live.errors.push(error))))

  const attempts: Attempt[] = []
  let phase: 'up' | 'down' | 'back' = 'up'
  let markRestarted!: () => void
  const restarted = new Promise<void>((resolve) => (markRestarted = resolve))
  let stop = false
  const acknowledged = () => attempts.filter((a) => a.outcome !== undefined && 'ok' in a.outcome).length
  const caller = async (c: number) => {
    for (let n = 0; !stop; n++) {
      const size = 1 + ((c + n) % 3)
      const ids = Array.from({ length: size }, (_, k) => `c${c}-a${n}-e${k}`)
      const events: EventInput[] = ids.map((id, k) => ({
        type: 'Crash',
        tags: [`caller:${c}`, `append:${c}-${n}`],
        data: { c, n, k },
        id,
      }))
      const attempt: Attempt = { caller: c, n, events, ids, afterRestart: phase === 'back' }
      attempts.push(attempt)
      try {
        attempt.outcome = { ok: await store.append(events) }
      } catch (error) {
        const { code, message } = error as { code?: string; message?: string }
        attempt.outcome = { code: code ?? 'no code', message: message ?? String(error) }
        // Appends keep running into the crash (some are in flight when the server dies); after a
        // failure a caller waits for the restart instead of spinning on refused connections.
        if (phase !== 'back') await restarted
      }
    }
  }
  const callers = Array.from({ length: CALLERS }, (_, c) => caller(c))

  try {
    await until(`${BEFORE_CRASH} acknowledged appends before the crash`, () => acknowledged() >= BEFORE_CRASH)
    phase = 'down'
    await cluster.crash()
    await cluster.restart()
    const restartedAt = Date.now()
    phase = 'back'
    markRestarted()

    // The same instance appends again, by itself: every caller gets through. How fast is checked
    // last, so a slow recovery still gets the durability checks below.
    await until('every caller has an acknowledged append issued after the restart', () =>
      Array.from({ length: CALLERS }, (_, c) => c).every((c) =>
        attempts.some((a) => a.caller === c && a.afterRestart && a.outcome !== undefined && 'ok' in a.outcome),
      ),
    )
    const recoveredMs = Date.now() - restartedAt
    stop = true
    await Promise.all(callers)

    // A probe appended after the crash reaches the live subscribe and follow.
    const probe = await store.append({ type: 'Crash', tags: ['probe'], data: { probe: true }, id: 'probe' })
    await until('the live subscribe delivers the probe appended after the restart', () =>
      live.errors.length > 0 || live.subscribed.some((event) => event.id === 'probe'),
    )
    await until('the live follow passes the probe', () => live.errors.length > 0 || live.through >= probe.position)
    expect(live.errors).toEqual([])

    // Unknown outcomes only as STORAGE_ERROR: nothing else may come out of a crash.
    const failed = attempts.filter((a) => a.outcome !== undefined && !('ok' in a.outcome))
    expect(failed.map((a) => (a.outcome as { code: string }).code).filter((code) => code !== 'STORAGE_ERROR')).toEqual([])

    const log = await store.query('all')
    // Gapless and in order (positions are only taken under the append lock).
    expect(log.map((event) => event.position)).toEqual(log.map((_, i) => BigInt(i + 1)))
    const byAppend = new Map<string, SequencedEvent[]>()
    for (const event of log) {
      const key = event.tags.find((tag) => tag.startsWith('append:')) ?? 'probe'
      byAppend.set(key, [...(byAppend.get(key) ?? []), event])
    }
    const stored = (a: Attempt) => byAppend.get(`append:${a.caller}-${a.n}`) ?? []
    // Every acknowledged append: all its events, with its ids, ending at its position.
    for (const attempt of attempts.filter((a) => a.outcome !== undefined && 'ok' in a.outcome)) {
      const { ok } = attempt.outcome as { ok: AppendResult }
      const events = stored(attempt)
      expect({ append: `${attempt.caller}-${attempt.n}`, ids: events.map((e) => e.id), last: events.at(-1)?.position }).toEqual({
        append: `${attempt.caller}-${attempt.n}`,
        ids: attempt.ids,
        last: ok.position,
      })
      expect(ok.ids).toEqual(attempt.ids)
    }
    // No append is partly there: all of its events or none, contiguous.
    for (const attempt of attempts) {
      const events = stored(attempt)
      expect({ append: `${attempt.caller}-${attempt.n}`, count: events.length === 0 ? 'none' : events.length }).toEqual({
        append: `${attempt.caller}-${attempt.n}`,
        count: events.length === 0 ? 'none' : attempt.ids.length,
      })
      if (events.length > 0) {
        const first = events[0]!.position
        expect(events.map((e) => e.position)).toEqual(events.map((_, k) => first + BigInt(k)))
      }
    }
    // An unknown outcome is settled by retrying with the same ids: the stored one answers, the lost one is written.
    const unknown = failed.map((attempt) => ({ attempt, before: stored(attempt) }))
    for (const { attempt, before } of unknown) {
      const result = await store.append(attempt.events)
      expect(result.ids).toEqual(attempt.ids)
      if (before.length > 0) expect(result.position).toBe(before.at(-1)!.position)
    }
    const after = await store.query('all')
    for (const { attempt } of unknown) {
      expect(after.filter((event) => event.tags.includes(`append:${attempt.caller}-${attempt.n}`)).map((e) => e.id)).toEqual(attempt.ids)
    }

    // The live subscription saw the whole log once, in order (nothing missed across the crash).
    const head = after.at(-1)!.position
    await until('the live subscribe and follow catch up with the log', () => live.subscribed.length >= after.length && live.through >= head)
    expect(live.subscribed.map((event) => event.position)).toEqual(after.map((event) => event.position))
    expect(live.followed.map((event) => event.position)).toEqual(after.filter((event) => event.type === 'Crash').map((event) => event.position))
    console.log(
      `server crash: ${attempts.length} appends issued, ${acknowledged()} acknowledged, ${failed.length} unknown ` +
        `(${unknown.filter((u) => u.before.length > 0).length} of them had been stored); appends succeeded again ` +
        `${recoveredMs} ms after the restart (bound: ${RECOVERY_DEADLINE_MS} ms)`,
    )
    expect(recoveredMs).toBeLessThanOrEqual(RECOVERY_DEADLINE_MS)
  } finally {
    stop = true
    markRestarted()
    await Promise.allSettled(callers)
    stopLive.abort()
    await Promise.all(liveRuns)
    await store.close()
  }
})
