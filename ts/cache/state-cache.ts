/**
 * The entity state cache (DESIGN.md section 3, after the seed `state` package): entity id -> state
 * in a persistent HAMT, kept up to date inside the store's append transaction.
 *
 * Which map, by operation (bench/cache.bench.ts, 1M entities of ~110 bytes of JSON, 1,000 random
 * updates per transaction, this 2-core shared machine, one run; `./node_modules/.bin/bun
 * bench/cache.bench.ts`):
 *
 * | operation            | TypeScript twin | native HAMT | raw twin HamtMap | immutable.js | JS Map | default    |
 * |----------------------|-----------------|-------------|------------------|--------------|--------|------------|
 * | bulk apply, µs/tx    | 1,488           | 6,916 (4,909 *) | 859          | 1,618        | 176    | TypeScript |
 * | hot get, ns          | 3.6             | 3.6         | 44               | 43           | 3.6    | either     |
 * | cold get, ns         | 1,033           | 3,072       | 920              | 1,642        | 108    | TypeScript |
 * | RSS after load, MiB  | 595 (446 *)     | 283 (227 *) | 387              | 375          | 205    | native     |
 * | snapshot / restore ms| 2,031 / 1,842   | 482 / 435   | -                | -            | -      | native     |
 *
 * (*) with keepVersions 1 (`CACHE_BENCH_KEEP=1`, a separate run): the 16 versions kept by default
 * hold ~150 MiB (twin) / ~55 MiB (native) after a load of 10,000-entity transactions; far less
 * once transactions are small. With one kept version the native commit also edits the version it
 * replaces in place (`Draft.commit(consumeBase)`), hence the faster bulk apply.
 *
 * Native memory, measured with a counting global allocator and glibc `mallinfo2` in the addon
 * (1M entities loaded in 100 transactions, keepVersions 1): it was 773 MiB RSS because Bun ran no
 * finalizer during the load, so all 101 versions (677 MiB of path copies) stayed alive, and glibc
 * kept the 742 MiB arena afterwards. Versions the cache drops are now released at once (`#release`),
 * and crates/hamt stores an entry as one block (221 -> 165 MiB requested, 2.66M -> 1.66M blocks,
 * ~194 MiB in glibc's arena); the rest of the RSS is the JavaScript side of the load. Freeing has a
 * price at keepVersions 16: dropping a version touches the cold reference counts its path copies
 * share (~2 ms per 1,000-change version), work that finalizers used to defer without ever doing
 * it; the addon does it on a helper thread, so bulk apply stays near the 6,500 µs/tx it was.
 *
 * One map must serve every operation, so the TypeScript twin is the default: native bulk apply
 * loses because the user's `apply` needs the previous state of each updated entity, one boundary
 * crossing plus a decode per event (~0.8 µs native get + ~0.3 µs JSON decode per event here), and
 * cold reads lose for the same reason. The native HAMT wins snapshot and restore by 4x (its values
 * already are the snapshot's bytes) and memory by 2x, so `implementation: 'native'` is offered for
 * caches where restart time and memory matter more than append throughput.
 *
 * A transaction is staged straight into a transient draft of the current version (see `#fold`):
 * the read of the previous state and the write share one key hash and one warm trie path, and
 * nodes copied by the transaction are edited in place afterwards (2,240 -> 1,777 µs/tx; 1,604 ->
 * ~1,150 at 200k). Targets still missed, and why (measured, ts/cache at 200k unless noted):
 * - bulk apply >= 3x immutable.js: a cold persistent `get` alone costs ~390 ns at 200k (hash ~80
 *   ns of it, the key's chars are a cache miss), i.e. 390 µs per 1,000-event transaction, more
 *   than the 270 µs target; the cache must read every previous state for `apply`. At 1M a
 *   1,000-update transaction also copies 2,200-2,270 trie nodes (counted in the twin), and a cold
 *   get on a freshly built 1M trie costs 240-320 ns, the same with one flat array per node instead
 *   of a node object and two arrays (measured 2026-11-29): the misses are in the data, not the
 *   layout. The native map pays more per copied node: raising the reference count of each child
 *   and entry it shares (a cache miss each), where the twin copies pointers.
 * - memory <= 0.5x immutable.js (~188 MiB): below the JS Map's 206 MiB holding the same states.
 *   The native map is at 227 MiB with keepVersions 1; its ~135 bytes of key and JSON per entry
 *   alone are 129 MiB, glibc adds 8-16 bytes per block.
 * - twin snapshot/restore <= 1 s: at 1M, only touching each key in trie order costs ~0.8 s (the
 *   keys and states are scattered over the heap: a cache and TLB miss each), stringifying each
 *   state in trie order ~1.9 s (0.27 s in allocation order), zstd 0.3 s; JSON.parse of every state
 *   ~0.7 s plus buildHamt ~0.4 s. One JSON text for all states, a latin1 decode of the whole
 *   buffer and encodeInto framing were tried and measured no faster, so they were not kept.
 *
 * @module
 */
import { InvalidOptionsError } from '../errors.ts'
import type { EventMap, EventOf, EventStore, InlineProjector, SequencedEvent } from '../store/types.ts'
import { selectBackend, type CacheImplementation } from './select.ts'
import type { CacheBackend, Draft, MapVersion } from './backend.ts'
import { jsonCodec, type StateCodec } from './codec.ts'
import { decodeSnapshot, encodeSnapshot } from './snapshot-format.ts'

/** Options of {@link StateCache}. */
/**
 * `E` names the store's event types (DESIGN.md 2.2), so `key` and `apply` see events narrowed by
 * `event.type`; omit it for untyped events.
 */
export interface StateCacheOptions<S, E extends EventMap = EventMap> {
  /** Names the cache's snapshots in the store; also the projector's name. */
  name: string
  /** The entity an event is about, or undefined when the cache ignores the event. */
  key(event: EventOf<E>): string | undefined
  /**
   * The entity's next state; `state` is undefined for an entity not in the cache. Returning
   * undefined deletes the entity. Throwing fails the append (the cache is left as it was).
   * Treat states as immutable: the cache hands the same objects to every reader.
   */
  apply(state: S | undefined, event: EventOf<E>): S | undefined
  /** Turns states into bytes for snapshots (and for the native map). Default: UTF-8 JSON. */
  codec?: StateCodec<S>
  /** How many promoted versions `viewAt` can reach, the current one included. Default 16. */
  keepVersions?: number
  /**
   * The map behind the cache. `'typescript'` (default): states kept as JS values, the fastest
   * appends and reads. `'native'`: crates/hamt through the addon, states kept as codec bytes in
   * native memory, the fastest snapshot and restore (several times faster at 1M entities), slower
   * appends and cold reads; falls back to the twin when the addon is not loaded (see `implementation`).
   */
  implementation?: CacheImplementation
}

/** What {@link StateCache.restore} did. */
export interface RestoreResult {
  /** The position of the snapshot loaded, or undefined when there was none (or it was empty). */
  snapshotPosition: bigint | undefined
  /** Events read from the log after the snapshot (every event, keyed or not). */
  replayed: number
  /** The cache's position afterwards. */
  position: bigint
}

/**
 * An immutable snapshot of the cache at one position. Later appends never change it; holding it
 * keeps its version's nodes alive (and nothing else).
 */
export class CacheView<S> {
  /** The last log position this view includes. */
  declare readonly position: bigint
  /** @internal */ declare readonly version: MapVersion<S>
  /** @internal */
  constructor(position: bigint, version: MapVersion<S>) {
    this.position = position
    this.version = version
  }

  /** Number of entities. */
  get size(): number {
    return this.version.size
  }

  /** The state of entity `id` in this view. */
  get(id: string): S | undefined {
    return this.version.get(id)
  }

  /** Whether entity `id` exists in this view. */
  has(id: string): boolean {
    return this.version.has(id)
  }

  /** Every `[id, state]` in the HAMT's deterministic order. */
  *entries(): IterableIterator<[string, S]> {
    const all: [string, S][] = []
    this.version.forEach((state, id) => all.push([id, state]))
    yield* all
  }

  /** Visits every entity, the fastest way to scan a view. */
  forEach(fn: (state: S, id: string) => void): void {
    this.version.forEach(fn)
  }
}

/** How many recently read states `get` keeps decoded, for hot entities. */
const HOT_ENTRIES = 4096
/**
 * A missed read is kept in the hot set once per this many misses: an entity read again and again
 * gets in after a few reads, while a scan of cold entities does not churn the set on every read.
 */
const HOT_ADMIT = 8
/** Changes applied per version while replaying the log, to bound the pending map. */
const REPLAY_CHUNK = 10_000

interface Restoring {
  /** Events of the transaction in flight during the replay. */
  inFlight: SequencedEvent[]
  /** Events committed during the replay, in commit (= position) order. */
  committed: SequencedEvent[]
}

/**
 * Entity id -> state, maintained by the store inside the append transaction and readable without
 * any I/O. Attach it with `store.attach(cache)`: `apply` builds the pending changes of the
 * transaction, `promote` (after commit) turns them into the next version, `discard` (on rollback)
 * drops them, so a failed or rolled-back append leaves the visible cache exactly as it was.
 *
 * A transaction's changes go into a draft of the current version that readers never see (a
 * transient HAMT; for the native map, a staging map that crosses as one buffer at promote). Versions are persistent: `view()` is O(1) and unaffected by later appends, and the
 * last `keepVersions` versions stay reachable through `viewAt(position)`.
 *
 * Snapshots: `snapshot(store)` writes the whole map, compressed, to the store's snapshots table;
 * `restore(store)` loads the newest one and replays the log after it. Call `restore` after
 * `attach` (appends that commit during the replay are queued and applied after it) and before
 * relying on reads.
 *
 * @example
 * ```ts
 * const balances = new StateCache<{ balance: number }>({
 *   name: 'balances',
 *   key: (event) => event.tags.find((t) => t.startsWith('account:')),
 *   apply: (state, event) => ({ balance: (state?.balance ?? 0) + (event.data as { amount: number }).amount }),
 * })
 * store.attach(balances)
 * await balances.restore(store)
 * await store.append({ type: 'Deposited', tags: ['account:1'], data: { amount: 5 } })
 * balances.get('account:1') // { balance: 5 }
 * ```
 */
export class StateCache<S, E extends EventMap = EventMap> implements InlineProjector {
  readonly name: string
  readonly #key: (event: SequencedEvent) => string | undefined
  readonly #apply: (state: S | undefined, event: SequencedEvent) => S | undefined
  readonly #backend: CacheBackend<S>
  readonly #keep: number
  /** Promoted views, oldest first; the last one is current. */
  #history: CacheView<S>[]
  #current: CacheView<S>
  /** Decoded states of hot entities in the current version (ids absent from it are not cached). */
  readonly #hot = new Map<string, S>()
  /**
   * Insertion ring of `#hot`'s ids: the slot `#hotNext` names the id evicted next. Evicting by
   * `Map.keys().next()` instead walks the deleted entries at the front of the Map's order, which
   * made cold reads three times slower than the map itself.
   */
  readonly #hotRing: (string | undefined)[] = new Array(HOT_ENTRIES).fill(undefined)
  #hotNext = 0
  /** Counts misses of `#hot`; one in {@link HOT_ADMIT} is admitted (see `#remember`). */
  #misses = 0
  /** The transaction in progress, created by its first keyed event. */
  #draft: Draft<S> | undefined
  /** The ids the transaction in progress changed (with repeats), to refresh `#hot` at promote. */
  #touched: string[] = []
  #pendingPosition: bigint | undefined
  #restoring: Restoring | undefined
  /**
   * Versions given to callers through `view()` / `viewAt()`. They stay valid until the GC frees
   * them; every other version is released as soon as the cache drops it (see `#release`).
   */
  readonly #handedOut = new WeakSet<MapVersion<S>>()

  /**
   * @example
   * ```ts
   * const cache = new StateCache({ name: 'orders', key: (e) => e.tags[0], apply: (_s, e) => e.data })
   * ```
   */
  constructor(options: StateCacheOptions<S, E>) {
    if (typeof options !== 'object' || options === null) throw new InvalidOptionsError('StateCache needs an options object')
    const { name, key, apply, codec = jsonCodec as StateCodec<S>, keepVersions = 16, implementation = 'typescript' } = options
    if (typeof name !== 'string' || name.length === 0) throw new InvalidOptionsError('StateCache name must be a non-empty string')
    if (typeof key !== 'function' || typeof apply !== 'function') {
      throw new InvalidOptionsError('StateCache needs key(event) and apply(state, event) functions')
    }
    if (typeof codec?.encode !== 'function' || typeof codec.decode !== 'function') {
      throw new InvalidOptionsError('StateCache codec needs encode and decode functions')
    }
    if (!Number.isSafeInteger(keepVersions) || keepVersions < 1) {
      throw new InvalidOptionsError('StateCache keepVersions must be an integer >= 1')
    }
    if (implementation !== 'typescript' && implementation !== 'native') {
      throw new InvalidOptionsError("StateCache implementation must be 'typescript' or 'native'")
    }
    this.name = name
    // The cache sees every event of the store it is attached to; `E` is the caller's promise that
    // those are the events of its map (as with `openStore<E>`), so the handlers take them as such.
    this.#key = key as (event: SequencedEvent) => string | undefined
    this.#apply = apply as (state: S | undefined, event: SequencedEvent) => S | undefined
    this.#keep = keepVersions
    this.#backend = selectBackend(codec, implementation)
    this.#current = new CacheView<S>(0n, this.#backend.empty())
    this.#history = [this.#current]
  }

  /** Which map implementation this cache uses: 'native' or 'typescript'. */
  get implementation(): 'native' | 'typescript' {
    return this.#backend.kind
  }

  /** Number of entities in the current version. */
  get size(): number {
    return this.#current.version.size
  }

  /** The last log position the current version includes (0n before any event). */
  get position(): bigint {
    return this.#current.position
  }

  /**
   * The current state of entity `id`.
   *
   * @example
   * ```ts
   * cache.get('account:1')
   * ```
   */
  get(id: string): S | undefined {
    const hot = this.#hot.get(id)
    if (hot !== undefined) return hot
    const state = this.#current.version.get(id)
    if (state !== undefined) this.#remember(id, state)
    return state
  }

  /**
   * Whether entity `id` exists now.
   *
   * @example
   * ```ts
   * cache.has('account:1')
   * ```
   */
  has(id: string): boolean {
    return this.#hot.has(id) || this.#current.version.has(id)
  }

  /**
   * The current version as an immutable view, in O(1).
   *
   * @example
   * ```ts
   * const view = cache.view()
   * await store.append(moreEvents) // view is unchanged
   * ```
   */
  view(): CacheView<S> {
    this.#handedOut.add(this.#current.version)
    return this.#current
  }

  /**
   * The view as of log position `position`: the newest kept version at or before it. Undefined
   * when `position` is older than the oldest kept version (see `keepVersions`) or newer than the
   * current position.
   *
   * @example
   * ```ts
   * cache.viewAt(41n)?.get('account:1')
   * ```
   */
  viewAt(position: bigint): CacheView<S> | undefined {
    if (typeof position !== 'bigint') throw new InvalidOptionsError('viewAt needs a bigint position')
    if (position > this.#current.position) return undefined
    for (let i = this.#history.length - 1; i >= 0; i--) {
      const view = this.#history[i]!
      if (view.position <= position) {
        this.#handedOut.add(view.version)
        return view
      }
    }
    return undefined
  }

  /** InlineProjector: stage `event`'s change in the pending transaction. */
  apply(event: SequencedEvent, _tx?: unknown): void {
    if (this.#restoring !== undefined) {
      this.#restoring.inFlight.push(event)
      return
    }
    this.#stage(event)
  }

  /** InlineProjector: the transaction committed; its changes become the current version. */
  promote(): void {
    if (this.#restoring !== undefined) {
      this.#restoring.committed.push(...this.#restoring.inFlight)
      this.#restoring.inFlight = []
      return
    }
    const position = this.#pendingPosition
    if (position === undefined) return
    const draft = this.#draft
    const touched = this.#touched
    this.#draft = undefined
    this.#touched = []
    this.#pendingPosition = undefined
    const base = this.#current.version
    // With one kept version the base is dropped by this promote; unless a caller holds it, the
    // next version can reuse its memory (native: no path copies, nothing to free afterwards).
    const version = draft === undefined ? base : draft.commit(this.#keep === 1 && !this.#handedOut.has(base))
    // Installed before the hot set is refreshed, and stale hot states dropped before any is
    // re-read: if a (custom) decode throws below, neither a consumed base nor an old state stays
    // visible.
    this.#install(new CacheView<S>(position, version))
    if (this.#hot.size > 0) {
      const refresh = touched.filter((id) => this.#hot.delete(id))
      for (const id of refresh) {
        const state = version.get(id)
        if (state !== undefined) this.#hot.set(id, state)
      }
    }
  }

  /** InlineProjector: the transaction rolled back; forget its changes. */
  discard(): void {
    if (this.#restoring !== undefined) {
      this.#restoring.inFlight = []
      return
    }
    this.#draft = undefined
    this.#touched = []
    this.#pendingPosition = undefined
  }

  /**
   * Writes the current version, compressed, to the store's snapshots table under this cache's
   * name. Returns the position it covers.
   *
   * @example
   * ```ts
   * await cache.snapshot(store)
   * ```
   */
  async snapshot(store: Pick<EventStore, 'saveSnapshot'>): Promise<bigint> {
    const view = this.#current
    const blob = encodeSnapshot(this.#backend.toBytes(view.version))
    await store.saveSnapshot(this.name, view.position, blob)
    return view.position
  }

  /**
   * Replaces the cache's contents with the newest snapshot (if any) plus every event after it in
   * the log. Appends committed while it runs are applied after the replay. Rejects with
   * SNAPSHOT_CORRUPT when the stored snapshot cannot be decoded, and with whatever `apply` throws;
   * the cache is unchanged then.
   *
   * @example
   * ```ts
   * store.attach(cache)
   * const { position } = await cache.restore(store)
   * ```
   */
  async restore(store: Pick<EventStore, 'loadSnapshot' | 'read'>): Promise<RestoreResult> {
    if (this.#restoring !== undefined) throw new InvalidOptionsError(`StateCache ${this.name}: restore is already running`)
    const restoring: Restoring = { inFlight: [], committed: [] }
    this.#restoring = restoring
    // A transaction staged before the restore began is replaced by the log replay.
    this.#draft = undefined
    this.#touched = []
    this.#pendingPosition = undefined
    let inFlight: SequencedEvent[] = []
    let result: RestoreResult
    try {
      const snapshot = await store.loadSnapshot(this.name)
      let version = this.#backend.empty()
      let position = 0n
      if (snapshot !== undefined) {
        version = this.#backend.fromBytes(decodeSnapshot(snapshot.data))
        position = snapshot.position
      }
      let draft = this.#backend.edit(version)
      let staged = 0
      let replayed = 0
      const replay = (event: SequencedEvent) => {
        if (event.position <= position) return
        if (this.#fold(draft, event) !== undefined && ++staged === REPLAY_CHUNK) {
          const previous = version
          // Nobody outside this replay has seen `previous`, so the next chunk may reuse its
          // memory; without that (or a release) a long replay keeps one superseded native
          // version per chunk alive until the GC gets to them.
          version = draft.commit(true)
          if (previous !== version) this.#release(previous)
          draft = this.#backend.edit(version)
          staged = 0
        }
        position = event.position
        replayed++
      }
      for await (const event of store.read('all', { after: position })) replay(event)
      for (const event of restoring.committed) replay(event)
      if (staged > 0) {
        const previous = version
        version = draft.commit(true)
        if (previous !== version) this.#release(previous)
      }
      this.#hot.clear()
      this.#hotRing.fill(undefined)
      const replaced = this.#history
      this.#history = []
      for (const view of replaced) this.#release(view.version)
      this.#install(new CacheView<S>(position, version))
      result = { snapshotPosition: snapshot?.position, replayed, position }
      inFlight = restoring.inFlight
    } finally {
      this.#restoring = undefined
    }
    // A transaction still open when the replay ended continues on the restored version.
    for (const event of inFlight) this.#stage(event)
    return result
  }

  #stage(event: SequencedEvent): void {
    if (event.position <= this.#current.position) return
    this.#draft ??= this.#backend.edit(this.#current.version)
    const id = this.#fold(this.#draft, event)
    if (id !== undefined) this.#touched.push(id)
    this.#pendingPosition = event.position
  }

  /**
   * Applies `event` to `draft`; returns the id it changed, or undefined when the event has no key.
   * The previous state is read from the draft itself: that read brings the entity's trie path into
   * the CPU cache, so the write right after it costs little (with a separate staging map the write
   * came at promote time and missed the cache a second time).
   */
  #fold(draft: Draft<S>, event: SequencedEvent): string | undefined {
    const id = this.#key(event)
    if (id === undefined) return undefined
    if (typeof id !== 'string') throw new InvalidOptionsError(`StateCache ${this.name}: key(event) must return a string or undefined`)
    draft.update(id, this.#apply, event)
    return id
  }

  #install(view: CacheView<S>): void {
    this.#current = view
    this.#history.push(view)
    if (this.#history.length > this.#keep) this.#release(this.#history.shift()!.version)
  }

  /**
   * Frees a version the cache no longer needs, unless a caller holds it or a kept view still uses
   * it (a promote with no keyed event reuses the previous version). Native versions are otherwise
   * freed only when the GC finalizes them, which at 1M entities left 101 versions (677 MiB) alive
   * after a 100-transaction load with keepVersions 1.
   */
  #release(version: MapVersion<S>): void {
    if (this.#handedOut.has(version) || this.#history.some((view) => view.version === version)) return
    this.#backend.release(version)
  }

  #remember(id: string, state: S): void {
    if ((++this.#misses & (HOT_ADMIT - 1)) !== 0) return
    const slot = this.#hotNext
    const evicted = this.#hotRing[slot]
    // An id deleted from `#hot` by a promote may still sit in the ring; deleting it again is harmless.
    if (evicted !== undefined) this.#hot.delete(evicted)
    this.#hotRing[slot] = id
    this.#hotNext = slot + 1 === HOT_ENTRIES ? 0 : slot + 1
    this.#hot.set(id, state)
  }
}
