/**
 * The projection runner (DESIGN.md 6.2): runs each shard (name, version, partition) it holds the
 * lease of, one `follow` batch at a time, writing the handler's output and the checkpoint in one
 * store transaction, fenced by owner and lease epoch.
 *
 * What it does better than its peers, on purpose:
 * - golly kept positions in memory and dropped live events when a queue filled: checkpoints here
 *   are rows committed with the read model, and `follow` applies back-pressure (nothing queues).
 * - Emmett applies a batch twice when its checkpoint compare-and-set fails: here the fenced
 *   checkpoint update is inside the batch's transaction, so a lost lease rolls the batch back.
 * - Emmett loses an idle processor's lease: leases here are renewed on a timer whatever the traffic.
 * - Emmett stops a processor on any handler error: here a batch is retried with backoff, then
 *   split to find the failing event, and only that shard faults (or the event is dead-lettered).
 */
import { hostname } from 'node:os'
import type { SqliteDatabase as Database } from '../store/sqlite/driver.ts'
import type { TransactionSql } from 'postgres'
import { ErrorCode, InvalidOptionsError, LeaseLostError, NotFoundError, WaitTimeoutError, AbortedError } from '../errors.ts'
import type { EventStore, SequencedEvent, StoreTransaction } from '../store/types.ts'
import type { Projection, ProjectionContext } from './projection.ts'
import { keyOf, tablesFor, transactionOf, type DeadLetter, type Lease, type RunInTransaction, type ShardKey, type ShardTables } from './tables.ts'
import { abortableDelay } from '../delay.ts'

/** The state of one shard in `status()`. `standby`: another runner holds the lease (or nobody yet). */
export type ShardState = 'starting' | 'catching-up' | 'live' | 'paused' | 'faulted' | 'rebuilding' | 'standby' | 'stopped'

/** One row of `status()`. */
export interface ShardStatus {
  name: string
  version: number
  partition: number
  state: ShardState
  /** The committed checkpoint: every matching event at or below it is in the read model. */
  position: bigint
  head: bigint
  /** head - position. */
  lag: bigint
  /** The owning runner's `instanceId`, or null when nobody holds the lease. */
  owner: string | null
  /** True for the version readers should read. */
  active: boolean
  /** Failures seen by this runner on this shard (handler or storage). */
  errorCount: number
  lastError?: string
}

/** Options of `startProjections`. */
export interface RunnerOptions {
  /** Names this runner in leases and `status().owner`. Default `<host>:<pid>:<random>`. */
  instanceId?: string
  /** How long a lease lasts without renewal, in ms (a killed runner's shards move after it). Default 30,000. */
  leaseMs?: number
  /** How long `stop()` lets the batch in hand finish, in ms. Default 5,000. */
  drainTimeoutMs?: number
  /** How often leases are renewed and free shards taken, in ms. Default leaseMs / 3. */
  renewEveryMs?: number
  /** Told about failures the runner handles itself (retries, lost leases). Default: nothing. */
  onError?: (error: unknown, shard: ShardKey) => void
}

/** Options of `waitFor`. */
export interface WaitForOptions {
  /** Only these projections (default: all of the runner's). */
  names?: readonly string[]
  /** Give up with WAIT_TIMEOUT after this many ms. Default 30,000. */
  timeoutMs?: number
  signal?: AbortSignal
}

/** A running set of projections. */
export interface ProjectionRunner {
  readonly instanceId: string
  /** Resolves once the runner's tables exist and it has tried to take its shards once. */
  readonly ready: Promise<void>
  /** Every shard of every projection (the versions this runner serves or builds). */
  status(): Promise<ShardStatus[]>
  /**
   * Resolve once every shard of the active version of the named projections has its checkpoint at
   * or past `position` (read your writes); waits through rebuilds.
   *
   * @throws WaitTimeoutError (WAIT_TIMEOUT) after `timeoutMs`; AbortedError (ABORTED) on the signal.
   */
  waitFor(position: bigint, options?: WaitForOptions): Promise<void>
  /** Stop handling this projection's shards here (leases kept) until `resume`. */
  pause(name: string): void
  /** Go on with paused or faulted shards (a faulted one retries its event). */
  resume(name: string): void
  /** Rebuild the active version in place: `reset`, replay from 0, live again. Resolves once started. */
  rebuild(name: string): Promise<void>
  /** Events skipped with `onError.then: 'skip'`. */
  deadLetters(name: string): Promise<DeadLetter[]>
  /** Finish the batches in hand (within drainTimeoutMs) and release every lease at once. */
  stop(): Promise<void>
}

interface Shard extends ShardKey {
  readonly def: Projection<any>
  readonly key: string
  /** The partition count of this shard's version (an older active version may differ from def's). */
  readonly partitions: number
  lease: Lease | undefined
  position: bigint
  state: ShardState
  errorCount: number
  lastError: string | undefined
  paused: boolean
  faulted: boolean
  inPlaceRebuild: boolean
  /** Stops reading (abort of follow); the batch in hand still commits. */
  reading: AbortController | undefined
  /** ctx.signal: aborted after the drain timeout or when the lease is lost. */
  working: AbortController | undefined
  loop: Promise<void> | undefined
  wake: (() => void) | undefined
}

/** Thrown inside the batch transaction to roll it back when the handler failed. */
class HandlerFailure extends Error {
  readonly original: unknown

  constructor(original: unknown) {
    super(messageOf(original))
    this.original = original
  }
}

/**
 * Start running projections against a store: take the free shards, catch up, follow live.
 *
 * @throws InvalidOptionsError (INVALID_OPTIONS) on bad options, duplicate names, or a store
 *   without the transaction hook.
 *
 * @example
 * const runner = startProjections(store, [orderTotals], { leaseMs: 30_000 })
 * const { position } = await store.append({ type: 'OrderPlaced', tags: ['order:o1'], data: { total: 30 } })
 * await runner.waitFor(position)        // the read model now includes the order
 * console.log(await runner.status())
 * await runner.stop()
 */
export function startProjections(
  store: EventStore<any>,
  projections: readonly Projection<any>[],
  options?: RunnerOptions,
): ProjectionRunner {
  return new Runner(store, projections, options)
}

class Runner implements ProjectionRunner {
  readonly instanceId: string
  readonly ready: Promise<void>
  readonly #store: EventStore<any>
  readonly #run: RunInTransaction
  readonly #defs = new Map<string, Projection<any>>()
  readonly #leaseMs: number
  readonly #drainMs: number
  readonly #tickMs: number
  readonly #onError: RunnerOptions['onError']
  readonly #shards = new Map<string, Shard>()
  /** name + version -> partition count, once known (ensured or read). */
  readonly #partitionCounts = new Map<string, number>()
  readonly #setupDone = new Set<string>()
  #tables: ShardTables | undefined
  #active = new Map<string, number>()
  #stopped = false
  #ticker: Promise<void> | undefined
  readonly #tickAbort = new AbortController()
  #kick: (() => void) | undefined
  #kicked = false
  readonly #waiters = new Set<() => void>()
  #failure: unknown

  constructor(store: EventStore<any>, projections: readonly Projection<any>[], options: RunnerOptions | undefined) {
    if (!Array.isArray(projections) || projections.length === 0) {
      throw new InvalidOptionsError('startProjections needs at least one projection (from defineProjection)')
    }
    for (const def of projections) {
      if (typeof def?.partitionOf !== 'function') throw new InvalidOptionsError('projections must come from defineProjection')
      if (this.#defs.has(def.name)) throw new InvalidOptionsError(`two projections are named ${def.name}`)
      this.#defs.set(def.name, def)
    }
    this.#leaseMs = positiveInt(options?.leaseMs ?? 30_000, 'leaseMs')
    this.#drainMs = nonNegative(options?.drainTimeoutMs ?? 5_000, 'drainTimeoutMs')
    this.#tickMs = positiveInt(options?.renewEveryMs ?? Math.max(10, Math.floor(this.#leaseMs / 3)), 'renewEveryMs')
    if (this.#tickMs >= this.#leaseMs) throw new InvalidOptionsError('renewEveryMs must be shorter than leaseMs')
    const instanceId = options?.instanceId ?? `${hostname()}:${process.pid}:${Math.random().toString(36).slice(2, 10)}`
    if (typeof instanceId !== 'string' || instanceId.length === 0 || instanceId.length > 200) {
      throw new InvalidOptionsError('instanceId must be a string of 1..200 characters')
    }
    this.instanceId = instanceId
    this.#onError = options?.onError
    this.#store = store
    this.#run = transactionOf(store)
    this.ready = this.#start()
    this.ready.catch(() => {})
  }

  async #start(): Promise<void> {
    try {
      const tables = await tablesFor(this.#store)
      await tables.migrate()
      this.#tables = tables
      await this.#tick()
    } catch (error) {
      this.#failure = error
      this.#stopped = true
      throw error
    }
    this.#ticker = this.#tickLoop()
  }

  async #tickLoop(): Promise<void> {
    while (!this.#stopped) {
      await new Promise<void>((resolve) => {
        if (this.#kicked) return resolve()
        const signal = this.#tickAbort.signal
        const done = () => {
          clearTimeout(timer)
          signal.removeEventListener('abort', done)
          resolve()
        }
        const timer = setTimeout(done, this.#tickMs)
        signal.addEventListener('abort', done, { once: true })
        this.#kick = done
      })
      this.#kick = undefined
      this.#kicked = false
      if (this.#stopped) return
      try {
        await this.#tick()
      } catch (error) {
        if (isClosed(error)) return this.#halt()
        this.#report(error, { name: '*', version: 0, partition: 0 })
      }
    }
  }

  #requestTick(): void {
    this.#kicked = true
    this.#kick?.()
  }

  /** Renew, follow active versions, release what is no longer wanted, take what is free. */
  async #tick(): Promise<void> {
    const tables = this.#tables!
    const owned = [...this.#shards.values()].filter((s) => s.lease !== undefined)
    if (owned.length > 0) {
      const kept = new Set((await tables.renew(owned.map((s) => s.lease!), this.instanceId, this.#leaseMs)).map(keyOf))
      for (const shard of owned) {
        if (!kept.has(shard.key) && shard.lease !== undefined) this.#lose(shard, new LeaseLostError(`lease on ${describe(shard)} expired or was taken`))
      }
    }
    this.#active = await tables.active()
    const wanted = new Set<string>()
    for (const def of this.#defs.values()) {
      for (const version of this.#versionsOf(def)) {
        const versionKey = `${def.name}\u0000${version}`
        let partitions = this.#partitionCounts.get(versionKey)
        if (partitions === undefined) {
          if (version === def.version) {
            await tables.ensure(def.name, version, def.partitions)
            partitions = def.partitions
          } else {
            // An older active version keeps the partition count it was built with.
            const rows = (await tables.rows([def.name])).filter((r) => r.version === version)
            partitions = rows.length > 0 ? Math.max(...rows.map((r) => r.partition)) + 1 : def.partitions
            if (rows.length === 0) await tables.ensure(def.name, version, partitions)
          }
          this.#partitionCounts.set(versionKey, partitions)
        }
        for (let partition = 0; partition < partitions; partition++) {
          const key = keyOf({ name: def.name, version, partition })
          wanted.add(key)
          if (!this.#shards.has(key)) this.#shards.set(key, newShard(def, version, partition, key, partitions))
        }
      }
    }
    const unwanted = [...this.#shards.values()].filter((s) => !wanted.has(s.key))
    if (unwanted.length > 0) {
      await Promise.all(unwanted.map((s) => this.#halt1(s)))
      await tables.release(unwanted.flatMap((s) => (s.lease ? [s.lease] : [])), this.instanceId)
      for (const shard of unwanted) this.#shards.delete(shard.key)
      this.#notify()
    }
    // A version whose partitions all caught up in transactions that could not see each other.
    for (const def of this.#defs.values()) {
      if (this.#active.get(def.name) === def.version) continue
      const mine = [...this.#shards.values()].filter((s) => s.name === def.name && s.version === def.version)
      if (mine.length > 0 && mine.every((s) => s.lease?.caughtUp === true)) {
        if (await this.#run((tx) => tables.activate(tx, def.name, def.version, def.partitions))) {
          this.#active.set(def.name, def.version)
          this.#requestTick()
        }
      }
    }
    // Fair shares: with R runners on a projection, each holds at most ceil(shards / R) of its
    // shards, so a runner that joins gets work as soon as an owner hands its excess over.
    const runners = await tables.heartbeat([...this.#defs.keys()], this.instanceId, this.#leaseMs)
    const toTake: Shard[] = []
    let freeRows: Set<string> | undefined
    for (const def of this.#defs.values()) {
      const shards = [...this.#shards.values()].filter((s) => s.name === def.name)
      const share = Math.ceil(shards.length / Math.max(1, runners.get(def.name) ?? 1))
      const owned = shards.filter((s) => s.lease !== undefined)
      if (owned.length > share) {
        const excess = owned.sort((a, b) => compareShards(b, a)).slice(0, owned.length - share)
        await Promise.all(excess.map((s) => this.#halt1(s, 'standby')))
        const leases = excess.flatMap((s) => (s.lease ? [s.lease] : []))
        for (const shard of excess) shard.lease = undefined
        await tables.release(leases, this.instanceId)
        this.#notify()
      } else if (owned.length < share) {
        // Only the shards nobody holds (or whose lease ran out): asking for a held one takes nothing.
        const rows = freeRows ??= new Set((await tables.rows([...this.#defs.keys()])).filter((r) => r.free).map(keyOf))
        toTake.push(...shards.filter((s) => s.lease === undefined && rows.has(s.key)).slice(0, share - owned.length))
      }
    }
    const free = this.#stopped ? [] : toTake
    if (free.length === 0) return
    const taken = await tables.acquire(free, this.instanceId, this.#leaseMs)
    for (const lease of taken) {
      const shard = this.#shards.get(keyOf(lease))
      if (shard === undefined || this.#stopped) continue
      await this.#begin(shard, lease)
    }
    for (const shard of this.#shards.values()) if (shard.lease === undefined && shard.state === 'starting') shard.state = 'standby'
  }

  /** The versions of a definition to run: the active one (kept up to date) and the defined one. */
  #versionsOf(def: Projection<any>): number[] {
    const active = this.#active.get(def.name)
    if (active === undefined || active === def.version) return [def.version]
    if (active < def.version) return [active, def.version]
    return []
  }

  async #begin(shard: Shard, lease: Lease): Promise<void> {
    shard.lease = lease
    shard.position = lease.position
    await this.#setup(shard)
    if (!shard.faulted) shard.state = this.#runningState(shard)
    shard.reading = new AbortController()
    shard.working = new AbortController()
    shard.loop = this.#loop(shard, shard.reading.signal, shard.working.signal)
    this.#notify()
  }

  /**
   * Run the version's `setup` once per runner, before its first batch; a failure faults the shard
   * (resume tries it again). Returns false when it failed.
   */
  async #setup(shard: Shard): Promise<boolean> {
    const setupKey = `${shard.name}\u0000${shard.version}`
    if (this.#setupDone.has(setupKey) || shard.def.setup === undefined) return true
    try {
      const controller = new AbortController()
      await this.#run((tx) =>
        shard.def.setup!(contextFor(tx, { name: shard.name, version: shard.version, partition: 0, through: 0n, signal: controller.signal })),
      )
      this.#setupDone.add(setupKey)
      return true
    } catch (error) {
      if (isClosed(error)) throw error
      shard.errorCount++
      shard.lastError = `setup failed: ${messageOf(error)}`
      shard.faulted = true
      shard.state = 'faulted'
      this.#report(error, shard)
      this.#notify()
      return false
    }
  }

  #runningState(shard: Shard): ShardState {
    if (shard.paused) return 'paused'
    const active = this.#active.get(shard.name)
    if (shard.inPlaceRebuild || (active !== undefined && active !== shard.version)) return 'rebuilding'
    return 'catching-up'
  }

  async #loop(shard: Shard, reading: AbortSignal, working: AbortSignal): Promise<void> {
    const def = shard.def
    let failures = 0
    while (!reading.aborted) {
      if (shard.paused || shard.faulted) {
        await new Promise<void>((resolve) => {
          shard.wake = resolve
          reading.addEventListener('abort', () => resolve(), { once: true })
        })
        shard.wake = undefined
        continue
      }
      try {
        if (!(await this.#setup(shard))) continue
      } catch {
        return this.#closed(shard)
      }
      // One follow per pass, with its own signal so leaving the pass (pause, fault) ends it at once.
      const pass = new AbortController()
      const stop = () => pass.abort()
      reading.addEventListener('abort', stop, { once: true })
      try {
        const batches = this.#store.follow(def.query, { after: shard.position, batchSize: def.batchSize, signal: pass.signal })
        for await (const batch of readAhead(batches)) {
          if (reading.aborted || shard.paused || shard.faulted) break
          const events =
            shard.partitions === 1 ? batch.events : batch.events.filter((e) => def.partitionFor(e, shard.partitions) === shard.partition)
          if (events.length === 0 && batch.through <= shard.position) {
            if (batch.caughtUp) this.#markLive(shard)
            continue
          }
          if (!(await this.#process(shard, events, batch.through, batch.caughtUp, reading, working))) break
          failures = 0
        }
      } catch (error) {
        if (reading.aborted) return
        if (isClosed(error)) return this.#closed(shard)
        shard.errorCount++
        shard.lastError = messageOf(error)
        this.#report(error, shard)
        await abortableDelay(backoffMs(++failures, 100, 5_000), reading)
      } finally {
        reading.removeEventListener('abort', stop)
        pass.abort()
      }
    }
  }

  /** One batch with retries; false when the shard must stop reading (faulted, lost, stopping). */
  async #process(
    shard: Shard,
    events: SequencedEvent[],
    through: bigint,
    caughtUp: boolean,
    reading: AbortSignal,
    working: AbortSignal,
  ): Promise<boolean> {
    const { retries, backoffMs: base, maxBackoffMs, then } = shard.def.onError
    let attempt = 0
    let storageFailures = 0
    for (;;) {
      try {
        await this.#commit(shard, events, through, caughtUp, working)
        return !reading.aborted
      } catch (error) {
        if (error instanceof LeaseLostError) {
          this.#lose(shard, error)
          return false
        }
        if (isClosed(error)) {
          this.#closed(shard)
          return false
        }
        if (reading.aborted) return false
        const original = error instanceof HandlerFailure ? error.original : error
        shard.errorCount++
        shard.lastError = messageOf(original)
        this.#report(original, shard)
        if (!(error instanceof HandlerFailure)) {
          // The database, not the handler: keep trying (never a reason to skip an event).
          await abortableDelay(backoffMs(++storageFailures, base || 100, maxBackoffMs || 5_000), reading)
          continue
        }
        if (events.length > 1) {
          // Find the failing event: one event per transaction, so the checkpoint can stop just before it.
          for (let i = 0; i < events.length; i++) {
            const last = i === events.length - 1
            const ok = await this.#process(shard, [events[i]!], last ? through : events[i]!.position, last && caughtUp, reading, working)
            if (!ok) return false
          }
          return !reading.aborted
        }
        attempt++
        if (attempt > retries) {
          if (then === 'skip') {
            if (!(await this.#skip(shard, events[0]!, through, caughtUp, shard.lastError ?? 'failed', reading))) return false
            return !reading.aborted
          }
          shard.faulted = true
          shard.state = 'faulted'
          this.#notify()
          return false
        }
        await abortableDelay(backoffMs(attempt, base, maxBackoffMs), reading)
        if (reading.aborted) return false
      }
    }
  }

  async #commit(shard: Shard, events: SequencedEvent[], through: bigint, caughtUp: boolean, working: AbortSignal): Promise<void> {
    const lease = shard.lease
    if (lease === undefined) throw new LeaseLostError(`no lease on ${describe(shard)}`)
    const tables = this.#tables!
    const def = shard.def
    const activate = caughtUp && this.#active.get(shard.name) !== shard.version
    const activated = await this.#run(async (tx) => {
      if (events.length > 0) {
        const ctx = contextFor(tx, { name: shard.name, version: shard.version, partition: shard.partition, through, signal: working })
        try {
          await def.handle(events, ctx)
        } catch (error) {
          throw new HandlerFailure(error)
        }
      }
      if (!(await tables.commit(tx, lease, this.instanceId, through, caughtUp, this.#leaseMs))) {
        throw new LeaseLostError(`lease on ${describe(shard)} expired or was taken: the batch rolled back`)
      }
      return activate ? tables.activate(tx, shard.name, shard.version, def.partitions) : false
    })
    this.#advance(shard, lease, through, caughtUp)
    if (activated) {
      this.#active.set(shard.name, shard.version)
      this.#requestTick()
    }
  }

  async #skip(shard: Shard, event: SequencedEvent, through: bigint, caughtUp: boolean, error: string, reading: AbortSignal): Promise<boolean> {
    let failures = 0
    for (;;) {
      const lease = shard.lease
      if (lease === undefined) return false
      try {
        await this.#run(async (tx) => {
          await this.#tables!.deadLetter(tx, shard, event, error.slice(0, 2000))
          if (!(await this.#tables!.commit(tx, lease, this.instanceId, through, caughtUp, this.#leaseMs))) {
            throw new LeaseLostError(`lease on ${describe(shard)} expired or was taken: the batch rolled back`)
          }
        })
        this.#advance(shard, lease, through, caughtUp)
        return true
      } catch (failure) {
        if (failure instanceof LeaseLostError) {
          this.#lose(shard, failure)
          return false
        }
        if (isClosed(failure) || reading.aborted) return false
        this.#report(failure, shard)
        await abortableDelay(backoffMs(++failures, 100, 5_000), reading)
      }
    }
  }

  #advance(shard: Shard, lease: Lease, through: bigint, caughtUp: boolean): void {
    if (through > shard.position) shard.position = through
    if (through > lease.position) lease.position = through
    if (caughtUp) {
      lease.caughtUp = true
      this.#markLive(shard)
    }
    this.#notify()
  }

  #markLive(shard: Shard): void {
    if (shard.lease === undefined || shard.faulted || shard.paused) return
    shard.inPlaceRebuild = false
    shard.state = 'live'
    this.#notify()
  }

  /** The lease is gone: stop the shard here (another runner may hold it now). */
  #lose(shard: Shard, error: LeaseLostError): void {
    shard.lease = undefined
    shard.reading?.abort()
    shard.working?.abort()
    shard.state = 'standby'
    shard.lastError = `${ErrorCode.LEASE_LOST}: ${error.message}`
    this.#report(error, shard)
    this.#notify()
  }

  /** Stop a shard's loop, letting the batch in hand finish within the drain timeout. */
  async #halt1(shard: Shard, state: ShardState = 'standby'): Promise<void> {
    shard.reading?.abort()
    shard.wake?.()
    const loop = shard.loop
    if (loop !== undefined) {
      // The batch in hand may finish within the drain timeout; after it, ctx.signal aborts and
      // nobody waits any longer (if it still commits later, the fence refuses it once the lease is gone).
      let timer: ReturnType<typeof setTimeout> | undefined
      const drained = await Promise.race([
        loop.then(() => true, () => true),
        new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), this.#drainMs))),
      ])
      clearTimeout(timer)
      if (!drained) shard.working?.abort()
    }
    shard.loop = undefined
    shard.state = state
  }

  /** From inside a shard's own loop: the store closed, so the shard stops here for good. */
  #closed(shard: Shard): void {
    shard.reading?.abort()
    shard.state = 'stopped'
    this.#notify()
  }

  #halt(): void {
    this.#stopped = true
    for (const shard of this.#shards.values()) {
      shard.reading?.abort()
      shard.working?.abort()
      shard.state = 'stopped'
    }
    this.#notify()
  }

  #notify(): void {
    for (const wake of this.#waiters) wake()
  }

  #report(error: unknown, shard: ShardKey): void {
    try {
      this.#onError?.(error, { name: shard.name, version: shard.version, partition: shard.partition })
    } catch {
      // A failing observer must not stop the runner.
    }
  }

  #def(name: string): Projection<any> {
    const def = this.#defs.get(name)
    if (def === undefined) throw new NotFoundError(`no projection named ${JSON.stringify(name)} in this runner`)
    return def
  }

  /** The version readers read: the active one, or the defined one before any is active. */
  #servingVersion(def: Projection<any>): number {
    return this.#active.get(def.name) ?? def.version
  }

  async status(): Promise<ShardStatus[]> {
    await this.#readyOrThrow()
    const [head, rows] = await Promise.all([this.#store.head(), this.#tables!.rows([...this.#defs.keys()])])
    const byKey = new Map(rows.map((r) => [keyOf(r), r]))
    const out: ShardStatus[] = []
    for (const shard of [...this.#shards.values()].sort(compareShards)) {
      const row = byKey.get(shard.key)
      const mine = shard.lease !== undefined
      const position = mine ? shard.position : (row?.position ?? 0n)
      const owner = mine ? this.instanceId : row && !row.free ? row.owner : null
      const status: ShardStatus = {
        name: shard.name,
        version: shard.version,
        partition: shard.partition,
        state: mine || shard.state === 'stopped' ? shard.state : 'standby',
        position,
        head,
        lag: head > position ? head - position : 0n,
        owner,
        active: this.#servingVersion(shard.def) === shard.version,
        errorCount: shard.errorCount,
      }
      if (shard.lastError !== undefined) status.lastError = shard.lastError
      out.push(status)
    }
    return out
  }

  async waitFor(position: bigint, options?: WaitForOptions): Promise<void> {
    if (typeof position !== 'bigint' || position < 0n) throw new InvalidOptionsError('waitFor needs a position (bigint >= 0n)')
    const timeoutMs = options?.timeoutMs ?? 30_000
    if (!Number.isFinite(timeoutMs) || timeoutMs < 0) throw new InvalidOptionsError('timeoutMs must be >= 0')
    const names = options?.names ?? [...this.#defs.keys()]
    for (const name of names) this.#def(name)
    const signal = options?.signal
    await this.#readyOrThrow()
    const deadline = Date.now() + timeoutMs
    let rowsAt = 0
    let rows = new Map<string, bigint>()
    for (;;) {
      if (signal?.aborted) throw new AbortedError('waitFor was aborted', { cause: signal.reason })
      let remote = false
      let behind: string | undefined
      for (const name of names) {
        const def = this.#defs.get(name)!
        const version = this.#servingVersion(def)
        const partitions = this.#partitionCounts.get(`${name}\u0000${version}`) ?? def.partitions
        for (let partition = 0; partition < partitions; partition++) {
          const key = keyOf({ name, version, partition })
          const shard = this.#shards.get(key)
          let reached: bigint
          if (shard?.lease !== undefined) reached = shard.position
          else {
            remote = true
            reached = rows.get(key) ?? 0n
          }
          if (reached < position) behind ??= `${name} v${version} partition ${partition} (at ${reached})`
        }
      }
      if (behind === undefined) return
      const now = Date.now()
      if (now >= deadline) {
        throw new WaitTimeoutError(`waitFor(${position}) timed out after ${timeoutMs} ms: ${behind} has not reached it`)
      }
      if (remote && now - rowsAt >= 20) {
        rowsAt = now
        const fresh = await this.#tables!.rows(names)
        rows = new Map(fresh.map((r) => [keyOf(r), r.position]))
        continue
      }
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer)
          this.#waiters.delete(done)
          signal?.removeEventListener('abort', done)
          resolve()
        }
        const timer = setTimeout(done, Math.max(1, Math.min(deadline - now, remote ? 20 : 1_000)))
        this.#waiters.add(done)
        signal?.addEventListener('abort', done, { once: true })
      })
    }
  }

  pause(name: string): void {
    this.#def(name)
    for (const shard of this.#shards.values()) {
      if (shard.name !== name) continue
      shard.paused = true
      if (shard.lease !== undefined) shard.state = 'paused'
    }
    this.#notify()
  }

  resume(name: string): void {
    this.#def(name)
    for (const shard of this.#shards.values()) {
      if (shard.name !== name || (!shard.paused && !shard.faulted)) continue
      shard.paused = false
      shard.faulted = false
      if (shard.lease !== undefined) {
        shard.state = this.#runningState(shard)
        if (shard.loop === undefined) {
          shard.reading = new AbortController()
          shard.working = new AbortController()
          shard.loop = this.#loop(shard, shard.reading.signal, shard.working.signal)
        }
      }
      shard.wake?.()
    }
    this.#notify()
  }

  async rebuild(name: string): Promise<void> {
    const def = this.#def(name)
    await this.#readyOrThrow()
    const version = this.#servingVersion(def)
    const mine = [...this.#shards.values()].filter((s) => s.name === name && s.version === version)
    await Promise.all(mine.map((s) => this.#halt1(s, s.lease ? 'rebuilding' : 'standby')))
    let leases: Lease[]
    try {
      leases = await this.#run(async (tx) => {
        const taken = await this.#tables!.rewind(tx, name, version, this.instanceId, this.#leaseMs)
        if (def.reset !== undefined) {
          await def.reset(contextFor(tx, { name, version, partition: 0, through: 0n, signal: new AbortController().signal }))
        }
        return taken
      })
    } catch (error) {
      // Nothing was rewound: carry on where the shards were.
      for (const shard of mine) if (shard.lease !== undefined) await this.#begin(shard, shard.lease)
      throw error
    }
    for (const lease of leases) {
      const key = keyOf(lease)
      let shard = this.#shards.get(key)
      if (shard === undefined) {
        shard = newShard(def, version, lease.partition, key, this.#partitionCounts.get(`${name}\u0000${version}`) ?? def.partitions)
        this.#shards.set(key, shard)
      }
      shard.faulted = false
      shard.inPlaceRebuild = true
      shard.position = 0n
      await this.#begin(shard, lease)
    }
  }

  async deadLetters(name: string): Promise<DeadLetter[]> {
    this.#def(name)
    await this.#readyOrThrow()
    return this.#tables!.deadLetters(name)
  }

  async stop(): Promise<void> {
    if (this.#stopped && this.#ticker === undefined) return
    this.#stopped = true
    this.#tickAbort.abort()
    await this.#ticker?.catch(() => {})
    this.#ticker = undefined
    const shards = [...this.#shards.values()]
    await Promise.all(shards.map((s) => this.#halt1(s, 'stopped')))
    const leases = shards.flatMap((s) => (s.lease ? [s.lease] : []))
    for (const shard of shards) shard.lease = undefined
    if (this.#tables !== undefined) await this.#tables.leave(this.instanceId).catch(() => {})
    if (this.#tables !== undefined && leases.length > 0) {
      let timer: ReturnType<typeof setTimeout> | undefined
      const released = this.#tables.release(leases, this.instanceId).catch((error) => {
        if (!isClosed(error)) this.#report(error, leases[0]!)
      })
      // A batch still holding the store's writer (SQLite) would hold the release up: the leases
      // then expire on their own.
      await Promise.race([released, new Promise<void>((resolve) => (timer = setTimeout(resolve, Math.max(this.#drainMs, 1_000))))])
      clearTimeout(timer)
    }
    this.#notify()
  }

  async #readyOrThrow(): Promise<void> {
    if (this.#failure !== undefined) throw this.#failure
    await this.ready
  }
}

function newShard(def: Projection<any>, version: number, partition: number, key: string, partitions = def.partitions): Shard {
  return {
    def,
    partitions,
    name: def.name,
    version,
    partition,
    key,
    lease: undefined,
    position: 0n,
    state: 'starting',
    errorCount: 0,
    lastError: undefined,
    paused: false,
    faulted: false,
    inPlaceRebuild: false,
    reading: undefined,
    working: undefined,
    loop: undefined,
    wake: undefined,
  }
}

/** The handler's context for a store transaction. */
function contextFor(
  tx: StoreTransaction,
  base: { name: string; version: number; partition: number; through: bigint; signal: AbortSignal },
): ProjectionContext {
  switch (tx.backend) {
    case 'postgres':
      return { ...base, backend: 'postgres', tx: tx.sql as TransactionSql, schema: tx.schema }
    case 'sqlite':
      return { ...base, backend: 'sqlite', tx: tx.db as Database }
    default:
      return { ...base, backend: 'memory', tx: undefined }
  }
}

function compareShards(a: Shard, b: Shard): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : a.version - b.version || a.partition - b.partition
}

function describe(key: ShardKey): string {
  return `${key.name} v${key.version} partition ${key.partition}`
}

function isClosed(error: unknown): boolean {
  return (error as { code?: unknown })?.code === ErrorCode.STORE_CLOSED
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}

function positiveInt(value: number, label: string): number {
  if (!Number.isSafeInteger(value) || value < 1) throw new InvalidOptionsError(`${label} must be an integer >= 1`)
  return value
}

function nonNegative(value: number, label: string): number {
  if (!Number.isFinite(value) || value < 0) throw new InvalidOptionsError(`${label} must be >= 0`)
  return value
}

/**
 * Iterate `source` one batch ahead: the next read is in flight while the caller handles and
 * commits the current batch, so catching up overlaps reading with writing. Ending early leaves
 * the pending read to the source's abort signal.
 */
async function* readAhead<T>(source: AsyncIterable<T>): AsyncGenerator<T, void, undefined> {
  const iterator = source[Symbol.asyncIterator]()
  let next = iterator.next()
  for (;;) {
    const result = await next
    if (result.done) return
    next = iterator.next()
    // A read that fails after the caller has left must not surface as an unhandled rejection.
    next.catch(() => {})
    yield result.value
  }
}

/** Exponential backoff with equal jitter. */
function backoffMs(attempt: number, base: number, max: number): number {
  const ceiling = Math.min(max, base * 2 ** (attempt - 1))
  return ceiling / 2 + Math.random() * (ceiling / 2)
}

