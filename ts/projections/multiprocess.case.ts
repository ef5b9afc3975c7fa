/**
 * Guarantees that only real processes can show (DESIGN.md 6.1, 6.2): a runner killed with SIGKILL
 * mid-batch, two runners in two processes, two withdrawals racing from two processes. Run against
 * SQLite files and PostgreSQL databases by their test files.
 */
import { describe, expect, test } from 'bun:test'
import { join } from 'node:path'
import { openStore } from '../store/open.ts'
import { accountAggregate } from './aggregate.case.ts'
import { duplicates, eventually, readRows } from './readmodel.testkit.ts'
import { rowsProjection } from './runner.case.ts'
import { startProjections } from './runner.ts'
import { tablesFor } from './tables.ts'
import { JsonLinesChild } from '../testing/child-process.ts'

const childScript = join(import.meta.dir, 'testdata', 'child.ts')

function orders(n: number, from = 0) {
  return Array.from({ length: n }, (_, i) => ({ type: 'OrderPlaced', tags: [`order:o${from + i}`], data: { total: from + i } }))
}

/** `newUrl` gives a fresh, empty store URL for each test. */
export function describeMultiprocess(backend: string, newUrl: () => Promise<string>): void {
  describe(`${backend}: projections across processes`, () => {
    test('a runner killed with SIGKILL mid-batch leaves the read model exactly at its checkpoint; the restarted runner ends with one row per event', async () => {
      const url = await newUrl()
      const store = await openStore(url)
      const name = `killed_${process.pid}`
      const children: JsonLinesChild[] = []
      try {
        await store.append(orders(400))
        const child = new JsonLinesChild(childScript, [url, 'runner', name, 'doomed', '5'])
        children.push(child)
        await child.line('mid-batch')
        await child.kill()

        const tables = await tablesFor(store)
        const shards = await tables.rows([name])
        const events = await store.query([{ types: ['OrderPlaced'] }])
        const rows = await readRows(store, name)
        const def = rowsProjection(name, { partitionBy: { tagPrefix: 'order:' }, partitions: 4 })
        expect(shards.length).toBe(4)
        expect(shards.some((s) => s.position > 0n)).toBe(true)
        for (const shard of shards) {
          const expected = events.filter((e) => def.partitionOf(e) === shard.partition && e.position <= shard.position).map((e) => e.position)
          expect(rows.filter((r) => r.partition === shard.partition).map((r) => r.position)).toEqual(expected)
        }

        const runner = startProjections(store, [def], { leaseMs: 800, instanceId: 'restarted' })
        try {
          await runner.waitFor(await store.head(), { timeoutMs: 20_000 })
          const after = await readRows(store, name)
          expect(after.length).toBe(400)
          expect(duplicates(after)).toEqual([])
        } finally {
          await runner.stop()
        }
      } finally {
        for (const child of children) await child.kill()
        await store.close()
      }
    })

    test('two runners in two processes never handle an event twice, and the survivor takes over when the owner is killed', async () => {
      const url = await newUrl()
      const store = await openStore(url)
      const name = `pair_${process.pid}`
      const a = new JsonLinesChild(childScript, [url, 'runner', name, 'a'])
      const b = new JsonLinesChild(childScript, [url, 'runner', name, 'b'])
      try {
        await Promise.all([a.line('ready'), b.line('ready')])
        for (let i = 0; i < 10; i++) await store.append(orders(10, i * 10))
        const tables = await tablesFor(store)
        const owners = await eventually(async () => {
          const shards = await tables.rows([name])
          return shards.length === 4 && shards.every((s) => !s.free && s.position >= 100n) && shards
        }, 'both runners to hold all four shards between them, caught up')
        const victim = owners.find((s) => s.partition === 0)!.owner!
        const [doomed, survivor] = victim === 'a' ? [a, 'b'] : [b, 'a']
        const more = (async () => {
          for (let i = 10; i < 30; i++) await store.append(orders(10, i * 10))
        })()
        await doomed.kill()
        await more
        const head = await store.head()
        await eventually(async () => {
          const shards = await tables.rows([name])
          return shards.every((s) => s.owner === survivor && !s.free && s.position >= head)
        }, 'the survivor to take every shard over and catch up')
        const rows = await readRows(store, name)
        expect(rows.length).toBe(300)
        expect(duplicates(rows)).toEqual([])
      } finally {
        await a.kill()
        await b.kill()
        await store.close()
      }
    })

    test('a runner process that stalled (SIGSTOP) past its lease cannot commit when it wakes: LEASE_LOST, and no event is handled twice', async () => {
      const url = await newUrl()
      const store = await openStore(url)
      const name = `stalled_${process.pid}`
      const a = new JsonLinesChild(childScript, [url, 'runner', name, 'a'])
      const b = new JsonLinesChild(childScript, [url, 'runner', name, 'b'])
      try {
        await Promise.all([a.line('ready'), b.line('ready')])
        await store.append(orders(100))
        const tables = await tablesFor(store)
        await eventually(async () => {
          const shards = await tables.rows([name])
          return shards.length === 4 && shards.some((s) => s.owner === 'a' && !s.free) && shards.every((s) => !s.free)
        }, 'runner a to hold shards')
        a.process.kill('SIGSTOP')
        const feeding = (async () => {
          for (let i = 1; i < 11; i++) await store.append(orders(10, i * 100))
        })()
        if (backend === 'postgres') {
          // The survivor takes the stalled runner's shards over once their leases run out.
          await eventually(async () => (await tables.rows([name])).every((s) => s.owner === 'b' && !s.free), 'runner b to take every shard')
        } else {
          // On SQLite a runner stopped inside its write transaction holds the file's write lock:
          // nobody writes until it wakes, and then its expired lease refuses its batch.
          const until = Date.now() + 2_000
          await eventually(() => Date.now() > until, 'the stalled runner\'s leases to run out')
        }
        a.process.kill('SIGCONT')
        await feeding
        await eventually(() => a.lines.some((l) => l.kind === 'error' && l.code === 'LEASE_LOST'), 'LEASE_LOST from the runner that woke')
        const head = await store.head()
        await eventually(async () => (await tables.rows([name])).every((s) => !s.free && s.position >= head), 'every shard to catch up')
        const rows = await readRows(store, name)
        expect(rows.length).toBe(200)
        expect(duplicates(rows)).toEqual([])
      } finally {
        a.process.kill('SIGCONT')
        await a.kill()
        await b.kill()
        await store.close()
      }
    })

    test('two concurrent withdrawals from one account in two processes: exactly one succeeds, the other re-ran on fresh state', async () => {
      const url = await newUrl()
      const store = await openStore(url)
      try {
        const { Account } = accountAggregate()
        await Account.execute(store, 'shared', (ctx) => ctx.record('Deposited', { amount: 100 }))
        const first = new JsonLinesChild(childScript, [url, 'withdraw', 'shared', '60'])
        const second = new JsonLinesChild(childScript, [url, 'withdraw', 'shared', '60'])
        try {
          await Promise.all([first.line('loaded'), second.line('loaded')])
          first.send('go')
          second.send('go')
          const results = await Promise.all([first.line('done'), second.line('done')])
          const ok = results.filter((r) => r.ok === true)
          const refused = results.filter((r) => r.ok === false)
          expect(ok.length).toBe(1)
          expect(refused.length).toBe(1)
          expect(refused[0]).toMatchObject({ code: 'COMMAND_FAILED', reason: 'insufficient funds', seen: [100, 40] })
          expect((await Account.load(store, 'shared')).state.balance).toBe(40)
        } finally {
          await first.kill()
          await second.kill()
        }
      } finally {
        await store.close()
      }
    })
  })
}
