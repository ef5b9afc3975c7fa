/**
 * A child process for the multi-process projection tests. Prints one JSON line per fact on stdout.
 *
 *   bun child.ts <store url> runner <name> <instanceId> [stallAtBatch]
 *     runs the rows projection (4 partitions by order tag, leaseMs 800); with stallAtBatch N, the
 *     Nth batch writes its rows, prints {kind:'mid-batch'} and never finishes (the test kills it).
 *   bun child.ts <store url> withdraw <account> <amount>
 *     withdraws from an aggregate account; after the first load prints {kind:'loaded'} and waits
 *     for a 'go' line on stdin, so two processes decide on the same state.
 */
import { openStore } from '../../store/open.ts'
import { accountAggregate, withdraw } from '../aggregate.case.ts'
import { writeRows } from '../readmodel.testkit.ts'
import { rowsProjection } from '../runner.case.ts'
import { startProjections } from '../runner.ts'

const [url, role, name, ...rest] = process.argv.slice(2) as [string, string, string, ...string[]]
const say = (line: Record<string, unknown>) =>
  process.stdout.write(`${JSON.stringify(line, (_, v) => (typeof v === 'bigint' ? v.toString() : v))}\n`)

const lines = (async function* () {
  let buffered = ''
  for await (const chunk of process.stdin) {
    buffered += Buffer.from(chunk).toString()
    let newline: number
    while ((newline = buffered.indexOf('\n')) >= 0) {
      yield buffered.slice(0, newline)
      buffered = buffered.slice(newline + 1)
    }
  }
})()
const nextLine = async () => (await lines.next()).value

const store = await openStore(url)

if (role === 'runner') {
  const [instanceId, stallAt] = rest
  let batches = 0
  const def = rowsProjection(name, {
    partitionBy: { tagPrefix: 'order:' },
    partitions: 4,
    batchSize: 50,
    handle: async (events, ctx) => {
      await writeRows(events, ctx)
      batches++
      say({ kind: 'batch', partition: ctx.partition, count: events.length, through: ctx.through })
      if (stallAt !== undefined && batches === Number(stallAt)) {
        say({ kind: 'mid-batch' })
        await new Promise(() => {})
      }
    },
  })
  const runner = startProjections(store, [def], {
    instanceId,
    leaseMs: 800,
    onError: (error) => say({ kind: 'error', code: (error as { code?: string }).code, message: String(error) }),
  })
  await runner.ready
  say({ kind: 'ready' })
  for (;;) {
    const line = await nextLine()
    if (line === undefined || line === 'stop') break
    if (line === 'status') say({ kind: 'status', shards: await runner.status() })
  }
  await runner.stop()
  await store.close()
  say({ kind: 'stopped' })
} else if (role === 'withdraw') {
  const { Account } = accountAggregate()
  const amount = Number(rest[0])
  const seen: number[] = []
  try {
    const result = await Account.execute(store, name, async (ctx) => {
      seen.push(ctx.state.balance)
      if (ctx.attempt === 1) {
        say({ kind: 'loaded', balance: ctx.state.balance })
        await nextLine()
      }
      return withdraw(amount)(ctx)
    }, { baseDelayMs: 1 })
    say({ kind: 'done', ok: true, seen, position: result.position })
  } catch (error) {
    say({ kind: 'done', ok: false, seen, code: (error as { code?: string }).code, reason: ((error as { cause?: Error }).cause ?? (error as Error)).message })
  }
  await store.close()
}
