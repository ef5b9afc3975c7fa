/**
 * A worker for the runtime's SIGKILL test. It runs a program over `fromStore` that, for every
 * `Input` event, runs one command: the command records `ran <position>` in a side file (appended
 * and fsynced, so the record survives the kill) and yields one `Output` event, except for inputs
 * at a position divisible by 4, whose command yields nothing (an effect without an output: its
 * commit is the checkpoint marker, not an append). The worker kills
 * itself with SIGKILL at random points (seeded): inside the command before or after the record,
 * and just before and just after each write the runtime makes (the append that carries the output
 * and the checkpoint, the checkpoint marker).
 * On start it records `start <position>`, the position it resumes after.
 *
 *   bun crash-child.ts <store url> <side file> <last input position> <seed> <kill per mille>
 *
 * It exits 0 once every input up to the last one is committed.
 */
import { closeSync, fsyncSync, openSync, writeSync } from 'node:fs'
import { openStore } from '../../store/index.ts'
import type { AppendOptions, AppendResult, EventStore } from '../../store/types.ts'
import { fromStore, run } from '../index.ts'
import { resumePosition } from '../store.ts'
import { seededRandom } from '../../testing/seeded-random.ts'

const [url, sidePath, lastText, seedText, perMilleText] = process.argv.slice(2)
if (url === undefined || sidePath === undefined || lastText === undefined || seedText === undefined || perMilleText === undefined) {
  throw new Error('usage: crash-child.ts <store url> <side file> <last input position> <seed> <kill per mille>')
}
const last = BigInt(lastText)
const perMille = Number(perMilleText)
const seed = Number(seedText) >>> 0

const random = seededRandom(seed)

function record(line: string): void {
  const fd = openSync(sidePath!, 'a')
  try {
    writeSync(fd, `${line}\n`)
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
}

function maybeDie(): void {
  if (random() * 1000 < perMille) process.kill(process.pid, 'SIGKILL')
}

type Ev = { Input: { n: number }; Output: { input: string } }
const real = await openStore<Ev>(url)
// Kill right after an append is acknowledged: the output and the checkpoint are durable, and the
// runtime has not yet moved on.
// Every write the runtime makes may be the last: die just before it or just after it is acknowledged.
const append = async (events: never, condition?: never, options?: AppendOptions): Promise<AppendResult> => {
  maybeDie()
  const result = await real.append(events, condition, options)
  maybeDie()
  return result
}
const saveSnapshot = async (...args: Parameters<EventStore['saveSnapshot']>): Promise<void> => {
  maybeDie()
  await real.saveSnapshot(...args)
  maybeDie()
}
const store = new Proxy(real, {
  get(target, key) {
    if (key === 'append') return append
    if (key === 'saveSnapshot') return saveSnapshot
    const value = Reflect.get(target, key, target)
    return typeof value === 'function' ? value.bind(target) : value
  },
})

record(`start ${(await resumePosition(real, 'worker')) ?? 0n}`)
let reached!: () => void
const reachedLast = new Promise<void>((resolve) => (reached = resolve))
const handle = run(
  {
    init: () => [0],
    view: (_, { position }) => {
      if (position !== undefined && position >= last) reached()
    },
    update: (event, count) => {
      if (event.type !== 'Input') return [count]
      const position = event.position
      return [
        count + 1,
        [
          () => {
            maybeDie()
            record(`ran ${position}`)
            maybeDie()
            if (position % 4n === 0n) return null
            return { type: 'Output' as const, tags: [`input:${position}`], data: { input: String(position) } }
          },
        ],
      ]
    },
  },
  fromStore(store, [{ types: ['Input'] }], { name: 'worker', batchSize: 7 }),
)
await Promise.race([reachedLast, handle.done])
await handle.stop()
await handle.done
await real.close()
process.exit(0)
