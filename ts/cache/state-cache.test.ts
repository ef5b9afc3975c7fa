import { beforeAll, describe, expect, test } from 'bun:test'
import { ErrorCode } from '../errors.ts'
import type { ReadOptions, SequencedEvent, StoredSnapshot } from '../store/types.ts'
import { loadNative } from '../native/index.ts'
import type { CacheImplementation } from './select.ts'
import { StateCache } from './state-cache.ts'

interface Account { balance: number }

function event(position: bigint, account: string | undefined, amount: number, type = 'Deposited'): SequencedEvent {
  return {
    position,
    type,
    tags: account === undefined ? [] : [`account:${account}`],
    data: { amount },
    metadata: {},
    id: `id-${position}`,
    recordedAt: new Date(0),
  }
}

/** Every map this process can run: the twin always, the native HAMT when the addon loads. */
const nativeLoads = typeof loadNative()?.HamtMap === 'function'
const implementations: CacheImplementation[] = nativeLoads ? ['typescript', 'native'] : ['typescript']
/** The implementation the suite below is running against. */
let implementation: CacheImplementation = 'typescript'

function accounts(keepVersions?: number): StateCache<Account> {
  return new StateCache<Account>({
    implementation,
    name: 'accounts',
    key: (e) => e.tags.find((t) => t.startsWith('account:')),
    apply: (state, e) => {
      if (e.type === 'Closed') return undefined
      if (e.type === 'Poison') throw new Error('poison event')
      return { balance: (state?.balance ?? 0) + (e.data as { amount: number }).amount }
    },
    keepVersions,
  })
}

/** Drives the cache the way a store does: apply every event, then promote. */
function commit(cache: StateCache<Account>, events: SequencedEvent[]): void {
  for (const e of events) cache.apply(e, undefined)
  cache.promote()
}

/** The smallest store `snapshot` and `restore` need: a log and a snapshots table. */
class FakeStore {
  log: SequencedEvent[] = []
  snapshots = new Map<string, StoredSnapshot>()
  onRead: ((index: number) => void) | undefined

  async saveSnapshot(name: string, position: bigint, data: Uint8Array): Promise<void> {
    this.snapshots.set(name, { name, position, data: data.slice(), createdAt: new Date() })
  }
  async loadSnapshot(name: string): Promise<StoredSnapshot | undefined> {
    return this.snapshots.get(name)
  }
  async *read(_query: 'all', options?: ReadOptions): AsyncIterable<SequencedEvent> {
    const after = options?.after ?? 0n
    for (let i = 0; i < this.log.length; i++) {
      const e = this.log[i]!
      if (e.position <= after) continue
      yield e
      this.onRead?.(i)
    }
  }
}

function replayed(events: SequencedEvent[]): Map<string, Account> {
  const cache = accounts()
  commit(cache, events)
  return new Map(cache.view().entries())
}

test('a cache uses the TypeScript twin by default, and the native HAMT on request when the addon loads', () => {
  const options = { name: 'x', key: () => 'k', apply: () => 1 }
  expect(new StateCache(options).implementation).toBe('typescript')
  expect(new StateCache({ ...options, implementation: 'native' }).implementation).toBe(nativeLoads ? 'native' : 'typescript')
  if (process.env.RINGSTATE_NATIVE === '1') expect(nativeLoads).toBe(true)
})

for (const each of implementations) describe(`StateCache (${each})`, () => {
  beforeAll(() => {
    implementation = each
  })

  test('promote makes the transaction visible and moves the position', () => {
    const cache = accounts()
    expect(cache.position).toBe(0n)
    commit(cache, [event(1n, 'a', 5), event(2n, 'b', 1), event(3n, 'a', 2), event(4n, undefined, 9)])
    expect(cache.get('account:a')).toEqual({ balance: 7 })
    expect(cache.has('account:b')).toBe(true)
    expect(cache.has('account:c')).toBe(false)
    expect(cache.size).toBe(2)
    expect(cache.position).toBe(4n)
  })

  test('staged changes are invisible until promote and gone after discard', () => {
    const cache = accounts()
    commit(cache, [event(1n, 'a', 5)])
    const before = cache.view()
    cache.apply(event(2n, 'a', 100), undefined)
    cache.apply(event(3n, 'z', 1), undefined)
    expect(cache.get('account:a')).toEqual({ balance: 5 })
    expect(cache.has('account:z')).toBe(false)
    cache.discard()
    cache.promote()
    expect(cache.view()).toBe(before)
    expect(cache.position).toBe(1n)
    // The next transaction reuses the positions the rolled-back one held.
    commit(cache, [event(2n, 'a', 1)])
    expect(cache.get('account:a')).toEqual({ balance: 6 })
  })

  test('an apply that throws propagates, and the discard that follows restores the cache', () => {
    const cache = accounts()
    commit(cache, [event(1n, 'a', 5)])
    cache.apply(event(2n, 'a', 1), undefined)
    expect(() => cache.apply(event(3n, 'a', 0, 'Poison'), undefined)).toThrow('poison event')
    cache.discard()
    expect(cache.get('account:a')).toEqual({ balance: 5 })
    expect(cache.position).toBe(1n)
  })

  test('apply returning undefined deletes the entity, also from the hot read cache', () => {
    const cache = accounts()
    commit(cache, [event(1n, 'a', 5)])
    expect(cache.get('account:a')).toEqual({ balance: 5 })
    commit(cache, [event(2n, 'a', 0, 'Closed')])
    expect(cache.get('account:a')).toBeUndefined()
    expect(cache.has('account:a')).toBe(false)
    expect(cache.size).toBe(0)
  })

  test('a hot entity read before an update reads its new state after it', () => {
    const cache = accounts()
    commit(cache, [event(1n, 'a', 5)])
    for (let i = 0; i < 3; i++) expect(cache.get('account:a')).toEqual({ balance: 5 })
    commit(cache, [event(2n, 'a', 1)])
    expect(cache.get('account:a')).toEqual({ balance: 6 })
  })

  test('a promote whose hot-set refresh throws still leaves the new version current, with no stale hot state', () => {
    let failDecode = false
    const codec = {
      encode: (state: Account) => new TextEncoder().encode(JSON.stringify(state)),
      decode: (bytes: Uint8Array): Account => {
        if (failDecode) throw new Error('decode failed')
        return JSON.parse(new TextDecoder().decode(bytes))
      },
    }
    const cache = new StateCache<Account>({ implementation, name: 'accounts', keepVersions: 1, codec, key: (e) => e.tags[0], apply: (s, e) => ({ balance: (s?.balance ?? 0) + (e.data as { amount: number }).amount }) })
    commit(cache, [event(1n, 'a', 5)])
    // Enough misses for the hot set to admit the entity (one miss in eight is kept).
    for (let i = 0; i < 16; i++) expect(cache.get('account:a')).toEqual({ balance: 5 })
    cache.apply(event(2n, 'a', 1), undefined)
    failDecode = true
    if (implementation === 'native') expect(() => cache.promote()).toThrow('decode failed')
    else cache.promote()
    failDecode = false
    expect(cache.position).toBe(2n)
    expect(cache.get('account:a')).toEqual({ balance: 6 })
  })

  test('a view is an immutable snapshot that later appends do not change', () => {
    const cache = accounts()
    commit(cache, [event(1n, 'a', 5)])
    const view = cache.view()
    commit(cache, [event(2n, 'a', 1), event(3n, 'b', 1)])
    expect(view.position).toBe(1n)
    expect(view.get('account:a')).toEqual({ balance: 5 })
    expect(view.has('account:b')).toBe(false)
    expect(view.size).toBe(1)
    expect([...view.entries()]).toEqual([['account:a', { balance: 5 }]])
    expect(cache.view().size).toBe(2)
  })

  test('viewAt reaches the last keepVersions versions and no further', () => {
    const cache = accounts(3)
    for (let p = 1n; p <= 5n; p++) commit(cache, [event(p, 'a', 1)])
    expect(cache.viewAt(5n)?.get('account:a')).toEqual({ balance: 5 })
    expect(cache.viewAt(3n)?.get('account:a')).toEqual({ balance: 3 })
    expect(cache.viewAt(2n)).toBeUndefined()
    expect(cache.viewAt(6n)).toBeUndefined()
    commit(cache, [event(6n, undefined, 0), event(7n, undefined, 0)])
    commit(cache, [event(8n, 'b', 1)])
    // Position 7 lies inside the version promoted at 7.
    expect(cache.viewAt(7n)?.position).toBe(7n)
    expect(cache.viewAt(7n)?.has('account:b')).toBe(false)
    expect(() => cache.viewAt(1 as unknown as bigint)).toThrow(expect.objectContaining({ code: ErrorCode.INVALID_OPTIONS }))
  })

  test('views handed out stay readable after their versions leave the history, shared versions included', async () => {
    const cache = accounts(1)
    commit(cache, [event(1n, 'a', 5)])
    const first = cache.view()
    // No keyed event: the view promoted at 2 reuses the version `first` holds, and is never handed out.
    commit(cache, [event(2n, undefined, 0)])
    commit(cache, [event(3n, 'b', 1)])
    const third = cache.viewAt(3n)!
    for (let p = 4n; p <= 20n; p++) commit(cache, [event(p, 'a', 1)])
    expect([...first.entries()]).toEqual([['account:a', { balance: 5 }]])
    expect(third.get('account:b')).toEqual({ balance: 1 })
    expect(third.size).toBe(2)
    const store = new FakeStore()
    await cache.restore(store)
    expect(cache.size).toBe(0)
    expect(first.get('account:a')).toEqual({ balance: 5 })
    expect(third.has('account:b')).toBe(true)
  })

  test('snapshot then restore in a new cache equals a full replay', async () => {
    const store = new FakeStore()
    for (let p = 1n; p <= 500n; p++) store.log.push(event(p, String(Number(p) % 37), Number(p)))
    const first = accounts()
    commit(first, store.log)
    expect(await first.snapshot(store)).toBe(500n)
    for (let p = 501n; p <= 700n; p++) store.log.push(event(p, String(Number(p) % 53), 1, Number(p) % 11 === 0 ? 'Closed' : 'Deposited'))
    const second = accounts()
    const result = await second.restore(store)
    expect(result).toEqual({ snapshotPosition: 500n, replayed: 200, position: 700n })
    expect(new Map(second.view().entries())).toEqual(replayed(store.log))
    expect(second.position).toBe(700n)
  })

  test('restore without a snapshot replays the whole log', async () => {
    const store = new FakeStore()
    for (let p = 1n; p <= 30n; p++) store.log.push(event(p, String(Number(p) % 4), 1))
    const cache = accounts()
    expect(await cache.restore(store)).toEqual({ snapshotPosition: undefined, replayed: 30, position: 30n })
    expect(new Map(cache.view().entries())).toEqual(replayed(store.log))
  })

  test('appends committed during restore are applied after the replay, rolled-back ones are not', async () => {
    const store = new FakeStore()
    for (let p = 1n; p <= 10n; p++) store.log.push(event(p, 'a', 1))
    const cache = accounts()
    store.onRead = (index) => {
      if (index !== 4) return
      // A commit lands mid-replay: the store's log has it, and so does the inline projector.
      const committed = event(11n, 'b', 3)
      store.log.push(committed)
      commit(cache, [committed])
      cache.apply(event(12n, 'b', 99), undefined)
      cache.discard()
      cache.apply(event(12n, 'c', 1), undefined) // still in flight when the replay ends
    }
    await cache.restore(store)
    expect(cache.get('account:a')).toEqual({ balance: 10 })
    expect(cache.get('account:b')).toEqual({ balance: 3 })
    expect(cache.position).toBe(11n)
    cache.promote()
    expect(cache.get('account:c')).toEqual({ balance: 1 })
    expect(cache.position).toBe(12n)
  })

  test('a corrupt snapshot rejects restore with SNAPSHOT_CORRUPT and leaves the cache as it was', async () => {
    const store = new FakeStore()
    const cache = accounts()
    commit(cache, [event(1n, 'a', 5)])
    await cache.snapshot(store)
    const stored = store.snapshots.get('accounts')!
    stored.data[stored.data.length - 3]! ^= 0xff
    await expect(cache.restore(store)).rejects.toMatchObject({ code: ErrorCode.SNAPSHOT_CORRUPT })
    stored.data = new Uint8Array([1, 2, 3])
    await expect(cache.restore(store)).rejects.toMatchObject({ code: ErrorCode.SNAPSHOT_CORRUPT })
    expect(cache.get('account:a')).toEqual({ balance: 5 })
    commit(cache, [event(2n, 'a', 1)])
    expect(cache.get('account:a')).toEqual({ balance: 6 })
  })

  test('bad options and a non-string key are INVALID_OPTIONS', () => {
    const invalid = expect.objectContaining({ code: ErrorCode.INVALID_OPTIONS })
    const ok = { name: 'x', key: () => 'k', apply: () => 1 }
    expect(() => new StateCache({ ...ok, name: '' })).toThrow(invalid)
    expect(() => new StateCache({ ...ok, keepVersions: 0 })).toThrow(invalid)
    expect(() => new StateCache({ ...ok, apply: undefined as never })).toThrow(invalid)
    expect(() => new StateCache({ ...ok, codec: {} as never })).toThrow(invalid)
    expect(() => new StateCache({ ...ok, implementation: 'wasm' as never })).toThrow(invalid)
    const cache = new StateCache<number>({ ...ok, key: () => 42 as unknown as string })
    expect(() => cache.apply(event(1n, 'a', 1), undefined)).toThrow(invalid)
  })

  test('a custom codec is used for snapshots', async () => {
    const codec = {
      encode: (n: number) => Uint8Array.of(n),
      decode: (b: Uint8Array) => b[0]! * 1,
    }
    const store = new FakeStore()
    const make = () => new StateCache<number>({ implementation, name: 'bytes', key: (e) => e.tags[0], apply: (s, e) => (s ?? 0) + (e.data as { amount: number }).amount, codec })
    const first = make()
    store.log.push(event(1n, 'a', 7))
    first.apply(store.log[0]!, undefined)
    first.promote()
    await first.snapshot(store)
    const second = make()
    await second.restore(store)
    expect(second.get('account:a')).toBe(7)
  })
})

test.skipIf(!nativeLoads)('a native cache frees the versions it drops from its history without waiting for the GC', () => {
  const { HamtMap } = loadNative()!
  const live = () => HamtMap.stats().created - HamtMap.stats().dropped
  implementation = 'native'
  const before = live()
  const cache = accounts(2)
  for (let p = 1n; p <= 200n; p++) commit(cache, [event(p, String(Number(p) % 7), 1)])
  // At most the two kept versions (the GC may finalize other suites' versions meanwhile): the 199
  // superseded ones would still be here if their release waited for finalizers.
  expect(live() - before).toBeLessThanOrEqual(2)
  expect(cache.get('account:3')).toEqual({ balance: 29 })
})
