/** What only the SQLite backend does: files, schema versions, locks shared with other connections. */
import { afterAll, describe, expect, test } from 'bun:test'
import { Database } from 'bun:sqlite'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { storeTransaction, type EventStore, type InlineProjector, type SequencedEvent, type TransactionalStore } from '../types.ts'
import { sqliteDriver, type SqliteDatabase } from './driver.ts'
import { openSqliteStore } from './index.ts'
import { SCHEMA_VERSION } from './schema.ts'
import { SqliteStore } from './store.ts'

const dir = mkdtempSync(join(tmpdir(), 'ringstate-sqlite-store-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))
let files = 0
const freshPath = () => join(dir, `store-${++files}.db`)

async function codeOf(work: () => Promise<unknown>): Promise<string | undefined> {
  try {
    await work()
  } catch (error) {
    return (error as { code?: string }).code ?? String(error)
  }
  return undefined
}

/** A promise with its resolve function, to hold an inline projector inside its transaction. */
function deferred(): { promise: Promise<void>; resolve(): void } {
  let resolve!: () => void
  const promise = new Promise<void>((done) => (resolve = done))
  return { promise, resolve }
}

/**
 * An inline projector whose first apply waits for `release`, holding the transaction open, and
 * then throws when `refuse` is set (so that transaction rolls back).
 */
function holdingProjector(refuse = false): { projector: InlineProjector; entered: Promise<void>; release(): void } {
  const entered = deferred()
  const release = deferred()
  let first = true
  return {
    projector: {
      name: 'holder',
      apply: async () => {
        if (!first) return
        first = false
        entered.resolve()
        await release.promise
        if (refuse) throw new Error('projector refused the event')
      },
      promote: () => {},
      discard: () => {},
    },
    entered: entered.promise,
    release: release.resolve,
  }
}

describe('sqlite: the file', () => {
  test('opening creates missing parent directories, a WAL-mode file and the current schema once', async () => {
    const path = join(dir, 'nested', 'deeper', 'events.db')
    const store = await openSqliteStore(path)
    await store.append({ type: 'A', tags: ['k:1'] })
    await store.close()
    expect(existsSync(path)).toBe(true)

    const again = await openSqliteStore(path)
    expect(await again.head()).toBe(1n)
    expect((await again.query([{ tags: ['k:1'] }])).map((event) => event.type)).toEqual(['A'])
    await again.close()

    const raw = new Database(path, { readonly: true })
    try {
      expect(raw.query('PRAGMA journal_mode').get()).toEqual({ journal_mode: 'wal' })
      expect(raw.query('PRAGMA page_size').get()).toEqual({ page_size: 2048 })
      expect(raw.query('SELECT version FROM ringstate_schema ORDER BY version').all()).toEqual(
        Array.from({ length: SCHEMA_VERSION }, (_, i) => ({ version: i + 1 })),
      )
    } finally {
      raw.close()
    }
  })

  test('a switch to WAL mode that SQLite answers with SQLITE_BUSY at once is retried, not a failed open', async () => {
    // SQLite skips the busy timeout where waiting could deadlock: processes opening a new file
    // together read it in rollback mode, then all ask to switch it to WAL; all but one get BUSY.
    const open = await sqliteDriver()
    let refused = 0
    const busyTwice = (path: string, create: boolean): SqliteDatabase => {
      const db = open(path, create)
      const exec = db.exec.bind(db)
      db.exec = (sql: string) => {
        if (sql === 'PRAGMA journal_mode = WAL' && refused < 2) {
          refused++
          throw Object.assign(new Error('database is locked'), { code: 'SQLITE_BUSY' })
        }
        return exec(sql)
      }
      return db
    }
    const store = new SqliteStore(freshPath(), {}, busyTwice)
    try {
      expect(refused).toBe(2)
      expect(await store.append({ type: 'A' })).toMatchObject({ position: 1n })
    } finally {
      await store.close()
    }
  })

  test('an open that fails after both connections are open closes both', async () => {
    const open = await sqliteDriver()
    const connections: { create: boolean; closed: boolean }[] = []
    const readerCannotPrepare = (path: string, create: boolean): SqliteDatabase => {
      const db = open(path, create)
      const seen = { create, closed: false }
      connections.push(seen)
      const close = db.close.bind(db)
      db.close = () => {
        seen.closed = true
        close()
      }
      if (!create) {
        db.prepare = () => {
          throw Object.assign(new Error('disk I/O error'), { code: 'SQLITE_IOERR' })
        }
      }
      return db
    }
    expect(() => new SqliteStore(freshPath(), {}, readerCannotPrepare)).toThrow('disk I/O error')
    expect(connections).toEqual([{ create: true, closed: true }, { create: false, closed: true }])
  })

  test('several stores on one file in one process append through each other', async () => {
    const path = freshPath()
    const stores = await Promise.all(Array.from({ length: 4 }, () => openSqliteStore(path)))
    await Promise.all(stores.map((store, i) => store.append({ type: 'Opened', data: { i } })))
    expect(await stores[0]!.head()).toBe(4n)
    await Promise.all(stores.map((store) => store.close()))
  })

  test('a file written by a newer schema version is refused with STORAGE_ERROR', async () => {
    const path = freshPath()
    await (await openSqliteStore(path)).close()
    const raw = new Database(path)
    raw.run('INSERT INTO ringstate_schema (version, applied_at) VALUES (?, ?)', [SCHEMA_VERSION + 1, Date.now()])
    raw.close()
    expect(await codeOf(() => openSqliteStore(path))).toBe('STORAGE_ERROR')
  })

  test('bad options and paths are INVALID_OPTIONS', async () => {
    expect(await codeOf(() => openSqliteStore(''))).toBe('INVALID_OPTIONS')
    expect(await codeOf(() => openSqliteStore(freshPath(), { synchronous: 'fast' as never }))).toBe('INVALID_OPTIONS')
    expect(await codeOf(() => openSqliteStore(freshPath(), { busyTimeoutMs: -1 }))).toBe('INVALID_OPTIONS')
    expect(await codeOf(() => openSqliteStore(freshPath(), { streamBatchSize: 0 }))).toBe('INVALID_OPTIONS')
  })

  test("the writer commits with synchronous=FULL by default (an acknowledged append survives power loss) and NORMAL only when asked", async () => {
    // A SIGKILL test cannot tell FULL from NORMAL (the page cache outlives the process), so the
    // durability setting of the writer connection itself is what is checked.
    const synchronousOf = async (store: EventStore) =>
      (store as EventStore & TransactionalStore)[storeTransaction]((tx) => {
        if (tx.backend !== 'sqlite') throw new Error('not sqlite')
        return (tx.db as Database).query('PRAGMA synchronous').get()
      })
    const full = await openSqliteStore(freshPath())
    const normal = await openSqliteStore(freshPath(), { synchronous: 'normal' })
    try {
      expect(await synchronousOf(full)).toEqual({ synchronous: 2n })
      expect(await synchronousOf(normal)).toEqual({ synchronous: 1n })
    } finally {
      await full.close()
      await normal.close()
    }
  })

  test('synchronous=normal stores and reads back like the default', async () => {
    const path = freshPath()
    const store = await openSqliteStore(path, { synchronous: 'normal' })
    expect(await store.append([{ type: 'A' }, { type: 'B' }])).toMatchObject({ position: 2n, count: 2 })
    await store.close()
    const again = await openSqliteStore(path)
    expect((await again.query('all')).map((event) => event.type)).toEqual(['A', 'B'])
    await again.close()
  })
})

describe('sqlite: appends sharing one transaction', () => {
  test('a condition and a repeated id see the rows of earlier appends in the same batch', async () => {
    const store = await openSqliteStore(freshPath())
    // Issued in one tick, so the writer takes all three into one transaction.
    const [first, conflicting, repeat] = await Promise.allSettled([
      store.append({ type: 'Claimed', tags: ['name:ada'], id: 'claim-1' }),
      store.append({ type: 'Claimed', tags: ['name:ada'] }, { failIfEventsMatch: [{ tags: ['name:ada'] }] }),
      store.append({ type: 'Claimed', tags: ['name:ada'], id: 'claim-1' }),
    ])
    expect(first).toMatchObject({ status: 'fulfilled', value: { position: 1n, count: 1 } })
    expect(conflicting.status).toBe('rejected')
    expect((conflicting as PromiseRejectedResult).reason.code).toBe('APPEND_CONDITION_FAILED')
    expect(repeat).toMatchObject({ status: 'fulfilled', value: { position: 1n, count: 1 } })
    expect((await store.query('all')).map((event) => event.id)).toEqual(['claim-1'])
    await store.close()
  })

  test('appends with more rows than one INSERT statement takes keep every event and tag in order', async () => {
    const store = await openSqliteStore(freshPath())
    const results = await Promise.all(
      Array.from({ length: 5 }, (_, a) =>
        store.append(Array.from({ length: 17 }, (_, k) => ({ type: 'Step', tags: [`run:${a}`, `step:${k}`], data: { a, k } }))),
      ),
    )
    expect(results.map((result) => result.position)).toEqual([17n, 34n, 51n, 68n, 85n])
    const all = await store.query('all')
    expect(all.map((event) => event.position)).toEqual(Array.from({ length: 85 }, (_, i) => BigInt(i + 1)))
    expect(all.map((event) => event.data)).toEqual(
      Array.from({ length: 85 }, (_, i) => ({ a: Math.floor(i / 17), k: i % 17 })),
    )
    const run3 = await store.query([{ tags: ['run:3', 'step:16'] }])
    expect(run3.map((event) => [event.position, event.tags])).toEqual([[68n, ['run:3', 'step:16']]])
    expect((await store.query([{ tags: ['step:0'] }])).map((event) => event.position)).toEqual([1n, 18n, 35n, 52n, 69n])
    await store.close()
  })
})

describe('sqlite: two stores on one file', () => {
  test('a subscriber of one store receives events appended through the other', async () => {
    const path = freshPath()
    const writer = await openSqliteStore(path)
    const reader = await openSqliteStore(path, { pollIntervalMs: 5 })
    const controller = new AbortController()
    try {
      const received: SequencedEvent[] = []
      const consumer = (async () => {
        for await (const event of reader.subscribe([{ types: ['Ping'] }], { signal: controller.signal })) {
          received.push(event)
          if (received.length === 3) return
        }
      })()
      await writer.append({ type: 'Ping', data: { n: 1 } })
      await writer.append([{ type: 'Pong' }, { type: 'Ping', data: { n: 2 } }])
      await writer.append({ type: 'Ping', data: { n: 3 } })
      await consumer
      expect(received.map((event) => [event.position, event.data])).toEqual([[1n, { n: 1 }], [3n, { n: 2 }], [4n, { n: 3 }]])
    } finally {
      controller.abort()
      await writer.close()
      await reader.close()
    }
  })

  test('a condition checked by one store sees what the other committed', async () => {
    const path = freshPath()
    const first = await openSqliteStore(path)
    const second = await openSqliteStore(path)
    try {
      const { condition } = await second.project({ taken: { query: [{ tags: ['username:ada'] }], initial: false, apply: () => true } })
      await first.append({ type: 'UsernameClaimed', tags: ['username:ada'] })
      const error = await second.append({ type: 'UsernameClaimed', tags: ['username:ada'] }, condition).catch((caught) => caught)
      expect(error).toMatchObject({ code: 'APPEND_CONDITION_FAILED', conflict: 1n })
      expect(await second.head()).toBe(1n)
    } finally {
      await first.close()
      await second.close()
    }
  })

  test('an append that cannot get the write lock within appendTimeoutMs fails with STORAGE_ERROR and writes nothing', async () => {
    const path = freshPath()
    const holder = await openSqliteStore(path)
    const waiter = await openSqliteStore(path, { appendTimeoutMs: 100, busyTimeoutMs: 5 })
    try {
      const hold = holdingProjector()
      holder.attach(hold.projector)
      const held = holder.append({ type: 'Held' })
      await hold.entered
      expect(await codeOf(() => waiter.append({ type: 'Waiter' }))).toBe('STORAGE_ERROR')
      hold.release()
      expect(await held).toMatchObject({ position: 1n, count: 1 })
      expect((await waiter.query('all')).map((event) => event.type)).toEqual(['Held'])
      // Once the lock is free the waiting store appends normally.
      expect(await waiter.append({ type: 'Waiter' })).toMatchObject({ position: 2n, count: 1 })
    } finally {
      await holder.close()
      await waiter.close()
    }
  })
})

describe('sqlite: an open write transaction is invisible to readers', () => {
  for (const where of ['a file', ':memory:']) {
    test(`on ${where}, reads during an async inline projector never see its events, which then roll back`, async () => {
      const store = await openSqliteStore(where === ':memory:' ? ':memory:' : freshPath())
      try {
        await store.append({ type: 'Committed' })
        const hold = holdingProjector(true)
        store.attach(hold.projector)
        const held = store.append({ type: 'Pending' })
        await hold.entered
        // Started while the transaction is open: the pending event must not show.
        const reading = store.query('all')
        const head = store.head()
        hold.release()
        expect(((await held.catch((error) => error)) as Error).message).toBe('projector refused the event')
        expect((await reading).map((event) => event.type)).toEqual(['Committed'])
        expect(await head).toBe(1n)
      } finally {
        await store.close()
      }
    })
  }
})

describe('sqlite: the transaction hook and storage errors', () => {
  test('the transaction hook runs on the writer connection inside its write transaction; a throw rolls back', async () => {
    const store = await openSqliteStore(freshPath())
    const transact = (store as EventStore & TransactionalStore)[storeTransaction].bind(store)
    try {
      await transact((tx) => {
        if (tx.backend !== 'sqlite') throw new Error('not sqlite')
        const db = tx.db as Database
        expect(db.inTransaction).toBe(true)
        db.exec('CREATE TABLE read_model (k TEXT PRIMARY KEY, v INTEGER)')
        db.query('INSERT INTO read_model VALUES (?, ?)').run('a', 1)
      })
      const error = await transact((tx) => {
        ;((tx as { db: unknown }).db as Database).query('INSERT INTO read_model VALUES (?, ?)').run('b', 2)
        throw new Error('changed my mind')
      }).catch((caught) => caught)
      expect((error as Error).message).toBe('changed my mind')
      const raw = new Database((store as unknown as { path: string }).path, { readonly: true })
      try {
        expect(raw.query('SELECT k, v FROM read_model').all()).toEqual([{ k: 'a', v: 1 }])
      } finally {
        raw.close()
      }
      expect(await store.append({ type: 'After' })).toMatchObject({ position: 1n })
    } finally {
      await store.close()
    }
  })

  test("a storage error keeps SQLite's code and message only", async () => {
    const path = freshPath()
    const store = await openSqliteStore(path)
    try {
      await store.append({ type: 'Warmup' }, undefined, { checkpoint: { name: 'c', position: 1n } })
      const raw = new Database(path)
      raw.exec('DROP TABLE checkpoints')
      raw.close()
      const error = await store
        .append({ type: 'Payment', data: { card: '4111-1111-1111-1111' } }, undefined, { checkpoint: { name: 'c', position: 2n } })
        .catch((caught) => caught)
      expect(error).toMatchObject({ code: 'STORAGE_ERROR' })
      const cause = (error as Error).cause as Record<string, unknown>
      expect(typeof cause.message).toBe('string')
      expect(Object.keys(cause).filter((key) => key !== 'code' && key !== 'name')).toEqual([])
      expect(JSON.stringify({ message: (error as Error).message, cause: cause.message, stack: cause.stack })).not.toContain('4111')
      expect(await store.head()).toBe(1n)
    } finally {
      await store.close()
    }
  })
})
