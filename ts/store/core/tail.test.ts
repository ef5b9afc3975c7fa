import { describe, expect, test } from 'bun:test'
import type { FollowBatch, Query, SequencedEvent } from '../types.ts'
import { StorageError } from '../../errors.ts'
import { TailReader, type TailSource } from './tail.ts'

/** A log in memory behind the tail, counting the pages the tail reads; `writing` is set by hand. */
class FakeSource implements TailSource {
  readonly log: SequencedEvent[] = []
  tailReads = 0
  isWriting = false
  wake: ((head?: bigint) => void) | undefined

  /** Commit events at the next positions (as another process would) and return them. */
  commit(...types: string[]): SequencedEvent[] {
    const events = types.map((type, i) => event(BigInt(this.log.length + 1 + i), type))
    // Each append is stored once; what the tail gets must be its own objects (a read's copy).
    this.log.push(...events.map((e) => ({ ...e, tags: e.tags.slice() })))
    return events
  }

  async readPage(query: Query, after: bigint, before: bigint | undefined, limit: number): Promise<SequencedEvent[]> {
    if (query === 'all') this.tailReads++
    return this.log
      .filter((e) => e.position > after && (before === undefined || e.position < before))
      .slice(0, limit)
      .map((e) => ({ ...e, tags: e.tags.slice(), data: { ...(e.data as object) } }))
  }

  /** Head reads that fail (as a lost connection fails them) before they answer again. */
  failingHeads = 0
  failedHeads = 0

  async head(): Promise<bigint> {
    if (this.failingHeads > 0) {
      this.failingHeads--
      this.failedHeads++
      throw new StorageError('fake head failed: the database system is shutting down')
    }
    return BigInt(this.log.length)
  }

  watch(wake: (head?: bigint) => void): () => void {
    this.wake = wake
    return () => {
      this.wake = undefined
    }
  }

  writing(): boolean {
    return this.isWriting
  }
}

function event(position: bigint, type: string): SequencedEvent {
  return { position, type, tags: ['k:1'], data: { type }, metadata: {}, id: `id-${position}`, recordedAt: new Date(0) }
}

/** A follower of 'all' whose events are collected; `until(n)` waits for n of them. */
function follower(tail: TailReader) {
  const controller = new AbortController()
  const seen: bigint[] = []
  let joined = false
  const done = (async () => {
    for await (const batch of tail.follow('all', 0n, 100, controller.signal) as AsyncIterable<FollowBatch>) {
      seen.push(...batch.events.map((e) => e.position))
      if (batch.caughtUp) joined = true
    }
  })()
  return {
    seen,
    joined: () => joined && tail.stats.members === 1,
    stop: async () => {
      controller.abort()
      await done
    },
  }
}

async function until(check: () => boolean): Promise<void> {
  const deadline = Date.now() + 5_000
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition not reached within 5 s')
    await Bun.sleep(1)
  }
}

const positions = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => BigInt(from + i))

describe('tail reader: commits handed over by the writer', () => {
  test('own commits that follow on from what the tail has seen are handed out without a read', async () => {
    const source = new FakeSource()
    const tail = new TailReader(source, 100, 60_000)
    const reader = follower(tail)
    await until(reader.joined)
    await until(() => tail.stats.reads === 1) // the first member's read of what came before it
    for (let n = 1; n <= 3; n++) {
      const events = source.commit('Own')
      tail.committed(BigInt(n), () => events)
      await until(() => reader.seen.length === n)
    }
    expect(reader.seen).toEqual(positions(1, 3))
    expect(tail.stats).toMatchObject({ reads: 1, taken: 3 })
    await reader.stop()
    tail.close()
  })

  test('a commit by someone else in between is read; the own commits around it are not lost or repeated', async () => {
    const source = new FakeSource()
    const tail = new TailReader(source, 100, 60_000)
    const reader = follower(tail)
    await until(reader.joined)
    const own = source.commit('Own', 'Own')
    tail.committed(2n, () => own)
    await until(() => reader.seen.length === 2)
    source.commit('Other') // position 3, announced by nobody yet
    const later = source.commit('Own') // position 4: a gap before it
    tail.committed(4n, () => later)
    await until(() => reader.seen.length === 4)
    expect(reader.seen).toEqual(positions(1, 4))
    await reader.stop()
    tail.close()
  })

  test('a hand-over whose events cannot be built is read instead', async () => {
    const source = new FakeSource()
    const tail = new TailReader(source, 100, 60_000)
    const reader = follower(tail)
    await until(reader.joined)
    const reads = tail.stats.reads
    source.commit('Own')
    tail.committed(1n, () => {
      throw new Error('cannot build')
    })
    await until(() => reader.seen.length === 1)
    expect(reader.seen).toEqual([1n])
    expect(tail.stats.reads).toBeGreaterThan(reads)
    await reader.stop()
    tail.close()
  })

  test('a wake-up while an own batch is in flight waits for that batch once, then reads what it did not bring', async () => {
    const source = new FakeSource()
    const tail = new TailReader(source, 100, 60_000)
    const reader = follower(tail)
    await until(reader.joined)
    await until(() => tail.stats.reads === 1)
    // The notification of the own batch arrives before its result: no read yet.
    source.isWriting = true
    const own = source.commit('Own')
    source.wake!(1n)
    // Longer than the tail's read gap: a tail that did not wait would have read by now.
    await Bun.sleep(20)
    expect(tail.stats.reads).toBe(1)
    source.isWriting = false
    tail.committed(1n, () => own)
    await until(() => reader.seen.length === 1)
    expect(tail.stats).toMatchObject({ reads: 1, taken: 1 })
    // Someone else's commit announced while the next own batch is in flight; that batch fails and
    // brings nothing: the tail reads.
    source.isWriting = true
    source.commit('Other')
    source.wake!(2n)
    source.isWriting = false
    tail.committed(undefined, () => [])
    await until(() => reader.seen.length === 2)
    expect(reader.seen).toEqual([1n, 2n])
    expect(tail.stats.reads).toBe(2)
    await reader.stop()
    tail.close()
  })
})

describe('tail reader: a follower sent back to catch up alone', () => {
  /** A follower that joined the tail, then fell behind by more than four pages: it was dropped. */
  async function droppedFollower() {
    const source = new FakeSource()
    const tail = new TailReader(source, 2, 5)
    const controller = new AbortController()
    const iterator = tail.follow('all', 0n, 100, controller.signal)[Symbol.asyncIterator]()
    expect((await iterator.next()).value).toEqual({ events: [], through: 0n, caughtUp: true })
    source.commit(...Array.from({ length: 12 }, () => 'Later'))
    source.wake!()
    await until(() => tail.stats.members === 0)
    return { source, tail, controller, iterator }
  }

  test('once live, it retries a storage error of its own catch-up read and delivers every event once', async () => {
    const { source, tail, controller, iterator } = await droppedFollower()
    source.failingHeads = 2
    const seen: bigint[] = []
    while (seen.length < 12) {
      const next = await iterator.next()
      if (next.done) break
      seen.push(...next.value.events.map((e) => e.position))
    }
    expect(seen).toEqual(positions(1, 12))
    expect(source.failedHeads).toBe(2)
    controller.abort()
    expect((await iterator.next()).done).toBe(true)
    tail.close()
  })

  test("its wait to retry ends with the store's close, quietly", async () => {
    const { source, tail, iterator } = await droppedFollower()
    source.failingHeads = Number.POSITIVE_INFINITY
    const drained: bigint[] = []
    const rest = (async () => {
      for (let next = await iterator.next(); !next.done; next = await iterator.next()) drained.push(...next.value.events.map((e) => e.position))
    })()
    await until(() => source.failedHeads > 0)
    tail.close()
    await rest
    expect(drained.length).toBeLessThan(12)
  })

  test('before its first caught-up batch a storage error ends it with that error', async () => {
    const source = new FakeSource()
    source.failingHeads = 1
    const tail = new TailReader(source, 2, 5)
    const iterator = tail.follow('all', 0n, 100, undefined)[Symbol.asyncIterator]()
    expect(await iterator.next().then(() => 'no error', (error: { code?: string }) => error.code)).toBe('STORAGE_ERROR')
    tail.close()
  })
})
