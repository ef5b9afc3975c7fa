/**
 * Where the runner keeps its state: shard checkpoints and leases, active versions and dead
 * letters. On SQLite and PostgreSQL these are tables in the store's own database, created by the
 * runner's own versioned migration (`ringstate_projections_schema`), and every write goes through
 * the store's transaction hook (`storeTransaction`), so a batch's read-model writes and its
 * checkpoint commit together. On memory they are maps kept per store instance, so several runners
 * on one memory store see each other's leases.
 *
 * Time for leases is the database's clock (PostgreSQL `clock_timestamp()`, SQLite `julianday`),
 * so runners on machines whose clocks disagree still agree on who holds a lease.
 */
import { InvalidOptionsError } from '../errors.ts'
import type { EventStore, SequencedEvent, StoreTransaction } from '../store/types.ts'
import { storeTransaction } from '../store/types.ts'

/** Identifies one shard: a (name, version, partition). */
export interface ShardKey {
  name: string
  version: number
  partition: number
}

/** A shard row as stored. */
export interface ShardRow extends ShardKey {
  position: bigint
  caughtUp: boolean
  owner: string | null
  epoch: bigint
  /** True when the lease has run out (database clock) or nobody holds it. */
  free: boolean
}

/** A lease this runner holds. */
export interface Lease extends ShardKey {
  epoch: bigint
  position: bigint
  caughtUp: boolean
}

/** An event a projection skipped after its retries (`onError.then: 'skip'`). */
export interface DeadLetter {
  name: string
  version: number
  partition: number
  position: bigint
  eventId: string
  type: string
  error: string
  recordedAt: Date
}

/** A row as either driver returns it. */
export type Row = Record<string, unknown>

/** A bigint column: PostgreSQL gives a bigint (or its text), SQLite a number or a bigint. */
export const bigOf = (value: unknown): bigint => (typeof value === 'bigint' ? value : BigInt(value as string | number))

/** A boolean column: PostgreSQL gives `true`, SQLite `1` (Number(true) is 1 too). */
const flagOf = (value: unknown): boolean => Number(value) === 1

/** A shard row as a lease, from either backend. */
export function leaseOf(row: Row): Lease {
  return {
    name: row.name as string,
    version: Number(row.version),
    partition: Number(row.partition),
    epoch: bigOf(row.epoch),
    position: bigOf(row.position),
    caughtUp: flagOf(row.caught_up),
  }
}

/** A shard row with its owner and whether its lease is free, from either backend. */
export function ownedLeaseOf(row: Row): Lease & { owner: string | null; free: boolean } {
  return { ...leaseOf(row), owner: (row.owner as string | null) ?? null, free: flagOf(row.free) }
}

/** A dead-letter row: `recorded_at` is a Date on PostgreSQL, epoch milliseconds on SQLite. */
export function deadLetterOf(row: Row): DeadLetter {
  return {
    name: row.name as string,
    version: Number(row.version),
    partition: Number(row.partition),
    position: bigOf(row.position),
    eventId: row.event_id as string,
    type: row.type as string,
    error: row.error as string,
    recordedAt: row.recorded_at instanceof Date ? row.recorded_at : new Date(Number(row.recorded_at)),
  }
}

/** The runner's storage; one implementation per backend. */
export interface ShardTables {
  readonly backend: StoreTransaction['backend']
  migrate(): Promise<void>
  /** Create the rows of a version's partitions (position 0) if missing. */
  ensure(name: string, version: number, partitions: number): Promise<void>
  /** name -> active version. */
  active(): Promise<Map<string, number>>
  /** Take every listed shard that is free, expired or already ours; returns the leases taken. */
  acquire(keys: readonly ShardKey[], owner: string, leaseMs: number): Promise<Lease[]>
  /** Extend the leases still held; returns those that were. */
  renew(leases: readonly Lease[], owner: string, leaseMs: number): Promise<Lease[]>
  /** Give leases up at once (stop, or a version that is no longer wanted). */
  release(leases: readonly Lease[], owner: string): Promise<void>
  rows(names: readonly string[]): Promise<ShardRow[]>
  deadLetters(name: string): Promise<DeadLetter[]>
  /**
   * Record that `owner` runs these projections until now + leaseMs, and return how many runners
   * (this one included) run each of them now: each takes a fair share of the shards.
   */
  heartbeat(names: readonly string[], owner: string, leaseMs: number): Promise<Map<string, number>>
  /** Forget `owner` (it stopped). */
  leave(owner: string): Promise<void>
  /**
   * Inside `tx`: move the checkpoint to `through` if `owner` still holds the lease at `epoch` and
   * it has not expired, extending it; false when it does not (the caller rolls back).
   */
  commit(tx: StoreTransaction, lease: Lease, owner: string, through: bigint, caughtUp: boolean, leaseMs: number): Promise<boolean>
  /** Inside `tx`: record a skipped event. */
  deadLetter(tx: StoreTransaction, key: ShardKey, event: SequencedEvent, error: string): Promise<void>
  /** Inside `tx`: make `version` active when all its partitions have caught up and it is newer. */
  activate(tx: StoreTransaction, name: string, version: number, partitions: number): Promise<boolean>
  /** Inside `tx`: rewind every partition of a version to 0 and take all of them (in-place rebuild). */
  rewind(tx: StoreTransaction, name: string, version: number, owner: string, leaseMs: number): Promise<Lease[]>
}

/** Runs `fn` in one store transaction. */
export type RunInTransaction = <T>(fn: (tx: StoreTransaction) => T | Promise<T>) => Promise<T>

/** The transaction hook of a store, or INVALID_OPTIONS when the store has none. */
export function transactionOf(store: EventStore<any>): RunInTransaction {
  const hook = (store as unknown as { [storeTransaction]?: unknown })[storeTransaction]
  if (typeof hook !== 'function') {
    throw new InvalidOptionsError('this store has no transaction hook (storeTransaction): projections need a ringstate store')
  }
  return <T>(fn: (tx: StoreTransaction) => T | Promise<T>) => (hook as RunInTransaction).call(store, fn) as Promise<T>
}

export const keyOf = (key: ShardKey): string => `${key.name}\u0000${key.version}\u0000${key.partition}`

/** The in-memory tables: one set per store instance. */
interface MemoryState {
  shards: Map<string, { row: Omit<ShardRow, 'free'>; expiresAt: number }>
  runners: Map<string, { names: readonly string[]; expiresAt: number }>
  active: Map<string, number>
  deadLetters: DeadLetter[]
}
const memoryStates = new WeakMap<object, MemoryState>()

/** Maps on memory: same rules as the tables, with `Date.now()` as the clock. */
export function memoryTables(store: EventStore<any>): ShardTables {
  let state = memoryStates.get(store)
  if (state === undefined) {
    state = { shards: new Map(), runners: new Map(), active: new Map(), deadLetters: [] }
    memoryStates.set(store, state)
  }
  const s = state
  const run = transactionOf(store)
  const holds = (entry: { row: Omit<ShardRow, 'free'>; expiresAt: number }, owner: string, epoch: bigint) =>
    entry.row.owner === owner && entry.row.epoch === epoch && entry.expiresAt > Date.now()
  return {
    backend: 'memory',
    async migrate() {},
    async ensure(name, version, partitions) {
      for (const [, entry] of s.shards) {
        if (entry.row.name === name && entry.row.version === version && entry.row.partition >= partitions) {
          throw partitionsChanged(name, version)
        }
      }
      for (let partition = 0; partition < partitions; partition++) {
        const k = keyOf({ name, version, partition })
        if (!s.shards.has(k)) {
          s.shards.set(k, { row: { name, version, partition, position: 0n, caughtUp: false, owner: null, epoch: 0n }, expiresAt: 0 })
        }
      }
    },
    async active() {
      return new Map(s.active)
    },
    async acquire(keys, owner, leaseMs) {
      return run(() => {
        const now = Date.now()
        const taken: Lease[] = []
        for (const key of keys) {
          const entry = s.shards.get(keyOf(key))
          if (entry === undefined) continue
          if (entry.row.owner !== null && entry.row.owner !== owner && entry.expiresAt > now) continue
          entry.row.owner = owner
          entry.row.epoch += 1n
          entry.expiresAt = now + leaseMs
          taken.push({ ...key, epoch: entry.row.epoch, position: entry.row.position, caughtUp: entry.row.caughtUp })
        }
        return taken
      })
    },
    async renew(leases, owner, leaseMs) {
      return run(() => {
        const kept: Lease[] = []
        for (const lease of leases) {
          const entry = s.shards.get(keyOf(lease))
          if (entry === undefined || !holds(entry, owner, lease.epoch)) continue
          entry.expiresAt = Date.now() + leaseMs
          kept.push(lease)
        }
        return kept
      })
    },
    async release(leases, owner) {
      await run(() => {
        for (const lease of leases) {
          const entry = s.shards.get(keyOf(lease))
          if (entry === undefined || entry.row.owner !== owner || entry.row.epoch !== lease.epoch) continue
          entry.row.owner = null
          entry.expiresAt = 0
        }
      })
    },
    async heartbeat(names, owner, leaseMs) {
      const now = Date.now()
      s.runners.set(owner, { names, expiresAt: now + leaseMs })
      const counts = new Map<string, number>()
      for (const [id, runner] of s.runners) {
        if (runner.expiresAt <= now) {
          s.runners.delete(id)
          continue
        }
        for (const name of runner.names) if (names.includes(name)) counts.set(name, (counts.get(name) ?? 0) + 1)
      }
      return counts
    },
    async leave(owner) {
      s.runners.delete(owner)
    },
    async rows(names) {
      const now = Date.now()
      const out: ShardRow[] = []
      for (const [, entry] of s.shards) {
        if (names.includes(entry.row.name)) out.push({ ...entry.row, free: entry.row.owner === null || entry.expiresAt <= now })
      }
      return out
    },
    async deadLetters(name) {
      return s.deadLetters.filter((d) => d.name === name).map((d) => ({ ...d }))
    },
    async commit(_tx, lease, owner, through, caughtUp, leaseMs) {
      const entry = s.shards.get(keyOf(lease))
      if (entry === undefined || !holds(entry, owner, lease.epoch)) return false
      if (through > entry.row.position) entry.row.position = through
      if (caughtUp) entry.row.caughtUp = true
      entry.expiresAt = Date.now() + leaseMs
      return true
    },
    async deadLetter(_tx, key, event, error) {
      s.deadLetters.push({ name: key.name, version: key.version, partition: key.partition, position: event.position, eventId: event.id, type: event.type, error, recordedAt: new Date() })
    },
    async activate(_tx, name, version, partitions) {
      const current = s.active.get(name)
      if (current !== undefined && current >= version) return false
      for (let partition = 0; partition < partitions; partition++) {
        if (s.shards.get(keyOf({ name, version, partition }))?.row.caughtUp !== true) return false
      }
      s.active.set(name, version)
      return true
    },
    async rewind(_tx, name, version, owner, leaseMs) {
      const leases: Lease[] = []
      for (const [, entry] of s.shards) {
        if (entry.row.name !== name || entry.row.version !== version) continue
        entry.row.position = 0n
        entry.row.caughtUp = false
        entry.row.owner = owner
        entry.row.epoch += 1n
        entry.expiresAt = Date.now() + leaseMs
        leases.push({ name, version, partition: entry.row.partition, epoch: entry.row.epoch, position: 0n, caughtUp: false })
      }
      return leases
    },
  }
}

export function partitionsChanged(name: string, version: number): InvalidOptionsError {
  return new InvalidOptionsError(
    `projection ${name} version ${version} was built with more partitions: changing partitions needs a new version`,
  )
}

/** The tables for a store: chosen once by the backend its transaction hook reports. */
export async function tablesFor(store: EventStore<any>): Promise<ShardTables> {
  const run = transactionOf(store)
  const backend = await run((tx) => tx.backend)
  if (backend === 'memory') return memoryTables(store)
  if (backend === 'sqlite') return (await import('./tables-sqlite.ts')).sqliteTables(run)
  return (await import('./tables-postgres.ts')).postgresTables(run)
}
