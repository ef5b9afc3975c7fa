// Shared pieces of bench/store.bench.ts: the events each scenario appends, a time-boxed driver for
// concurrent workloads, and the summary table.
import type { EventInput } from '../ts/store/index.ts'

/**
 * go-crablet's benchmark scenarios: events per append. An append takes `sizes[i % sizes.length]`
 * events, so "2-3" alternates 2 and 3 and "5-8" cycles 5, 6, 7, 8.
 */
export interface Scenario {
  name: string
  sizes: readonly number[]
}

export const scenarios: readonly Scenario[] = [
  { name: '1', sizes: [1] },
  { name: '2-3', sizes: [2, 3] },
  { name: '5-8', sizes: [5, 6, 7, 8] },
  { name: '12', sizes: [12] },
]

/** Mean events per append of a scenario (to turn appends/s into events/s). */
export function meanSize(scenario: Scenario): number {
  return scenario.sizes.reduce((sum, size) => sum + size, 0) / scenario.sizes.length
}

export function sizeAt(scenario: Scenario, i: number): number {
  return scenario.sizes[i % scenario.sizes.length]!
}

const cache = new Map<string, EventInput[]>()

/**
 * `size` deposit events on one account, tagged `account:<account>`. Built once per (account, size)
 * and reused: no ids are given, so the store makes a new id for every append, and building the
 * input objects is not what is being measured.
 */
export function deposits(account: string, size: number): EventInput[] {
  const key = `${account}|${size}`
  let events = cache.get(key)
  if (events === undefined) {
    events = Array.from({ length: size }, (_, k) => ({
      type: 'MoneyDeposited',
      tags: [`account:${account}`],
      data: { account, amount: 100 + k, currency: 'EUR', reference: `transfer-${k}` },
      metadata: { correlationId: `${account}-${k}`, source: 'bench' },
    }))
    cache.set(key, events)
  }
  return events
}

/** One append of client `client` (its `i`-th); resolves to the number of events written. */
export type AppendOp = (client: number, i: number) => Promise<number>

export interface Rate {
  appendsPerSec: number
  eventsPerSec: number
  seconds: number
}

/**
 * Run `clients` callers, each awaiting one append before issuing the next, until `seconds` have
 * passed; the clock stops when the last in-flight append settles. A short warm-up first opens
 * connections and lets the JIT settle; `ready`, when given, runs between the warm-up and the timed
 * run (the multi-process workloads wait there for the signal that starts every process at once).
 */
export async function timeBoxed(clients: number, seconds: number, op: AppendOp, ready?: () => Promise<void>): Promise<Rate> {
  const counters = new Array<number>(clients).fill(0)
  await drive(clients, Math.min(0.3, seconds / 4), op, counters)
  await ready?.()
  return drive(clients, seconds, op, counters)
}

async function drive(clients: number, seconds: number, op: AppendOp, counters: number[]): Promise<Rate> {
  let appends = 0
  let events = 0
  const started = performance.now()
  const deadline = started + seconds * 1000
  await Promise.all(
    counters.map(async (_, client) => {
      while (performance.now() < deadline) {
        // Not `events += await ...`: that reads `events` before the await and loses other callers' counts.
        const written = await op(client, counters[client]!++)
        events += written
        appends++
      }
    }),
  )
  const elapsed = (performance.now() - started) / 1000
  return { appendsPerSec: appends / elapsed, eventsPerSec: events / elapsed, seconds: elapsed }
}

/** One line of the final summary. `ratio` is ringstate's speed over the baseline's (>1: faster). */
export interface SummaryRow {
  scenario: string
  ringstate: string
  baseline: string
  ratio?: number
  target?: string
  met?: boolean
}

export function formatRate(perSec: number): string {
  return `${Math.round(perSec).toLocaleString('en-US')}/s`
}

export function formatMs(ms: number): string {
  return `${ms.toFixed(ms < 10 ? 2 : 1)} ms`
}

export function printSummary(rows: readonly SummaryRow[]): void {
  const cells = rows.map((row) => [
    row.scenario,
    row.ringstate,
    row.baseline,
    row.ratio === undefined ? '—' : `${row.ratio.toFixed(2)}x`,
    row.target ?? '—',
    row.met === undefined ? '—' : row.met ? 'yes' : 'NO',
  ])
  const header = ['scenario', 'ringstate', 'baseline', 'ratio', 'target', 'met?']
  const widths = header.map((title, column) => Math.max(title.length, ...cells.map((cell) => cell[column]!.length)))
  const line = (cell: readonly string[]) =>
    `| ${cell.map((text, column) => (column === 0 ? text.padEnd(widths[column]!) : text.padStart(widths[column]!))).join(' | ')} |`
  console.log(line(header))
  console.log(`|${widths.map((width, column) => (column === 0 ? `:${'-'.repeat(width + 1)}` : `${'-'.repeat(width + 1)}:`)).join('|')}|`)
  for (const cell of cells) console.log(line(cell))
}

/**
 * Watches this process's event loop from now on: `stop()` gives the longest gap (ms) between two
 * turns of a 5 ms timer, beyond the 5 ms. A long gap is a collection or a long stretch of callbacks
 * during which nothing else here ran; the SSE bench prints the server's and the load process's, so
 * a p99 can be told apart from a pause of the process that measured it.
 */
export function pauseWatch(): { stop(): number } {
  const every = 5
  let last = performance.now()
  let longest = 0
  const timer = setInterval(() => {
    const now = performance.now()
    longest = Math.max(longest, now - last - every)
    last = now
  }, every)
  return {
    stop() {
      clearInterval(timer)
      return Math.max(longest, performance.now() - last - every, 0)
    },
  }
}
