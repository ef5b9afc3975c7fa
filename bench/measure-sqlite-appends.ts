/**
 * A quick measurement (not a test): single-event appends per second with 16 concurrent callers,
 * each awaiting its append before issuing the next, against a fresh file.
 *
 *   bun bench/measure-sqlite-appends.ts [full|normal] [total appends]
 *
 * Baseline for comparison: one commit per append (no group commit) on the same disk is about
 * 4,600/s with synchronous=FULL (see ts/store/sqlite/store.ts). With 4 KiB pages, one INSERT per row and the
 * default checkpoint interval this printed 37,000-43,000/s (FULL) and 64,000/s (NORMAL); with
 * 2 KiB pages, multi-row INSERTs and 4 MB of WAL between checkpoints, 43,000-49,000/s and
 * about 89,000/s, runs alternated on the same machine.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { openSqliteStore } from '../ts/store/sqlite/index.ts'

const synchronous = (process.argv[2] ?? 'full') as 'full' | 'normal'
const total = Number(process.argv[3] ?? 100_000)
const callers = 16
const dir = mkdtempSync(join(tmpdir(), 'ringstate-sqlite-measure-'))
try {
  const store = await openSqliteStore(join(dir, 'events.db'), { synchronous })
  let issued = 0
  const caller = async (n: number) => {
    while (issued < total) {
      issued++
      await store.append({ type: 'Measured', tags: [`caller:${n}`], data: { n, issued } })
    }
  }
  const started = performance.now()
  await Promise.all(Array.from({ length: callers }, (_, n) => caller(n)))
  const seconds = (performance.now() - started) / 1000
  const head = await store.head()
  console.log(`synchronous=${synchronous}: ${head} appends by ${callers} callers in ${seconds.toFixed(2)} s = ${Math.round(Number(head) / seconds)} appends/s`)
  await store.close()
} finally {
  rmSync(dir, { recursive: true, force: true })
}
