/**
 * The store recovers by itself when its PostgreSQL server restarts: the writer, the reads and the
 * LISTEN. Runs on a throwaway cluster of its own (it restarts the server), not on
 * DATABASE_URL.
 */
import { afterAll, beforeAll, expect, test } from 'bun:test'
import { spawnSync } from 'node:child_process'
import { statSync } from 'node:fs'
import { userInfo } from 'node:os'
import { join } from 'node:path'
import postgres from 'postgres'
import { findBinDir, startCluster } from '../../testing/pg-cluster.mjs'
import { storeStats, type InspectableStore } from '../core/store.ts'
import { openPostgresStore } from './index.ts'
import { NOTIFY_CHANNEL } from './schema.ts'

let cluster: Awaited<ReturnType<typeof startCluster>>
beforeAll(async () => {
  cluster = await startCluster()
})
afterAll(() => cluster.stop())

/** `pg_ctl restart -m immediate`: every connection dies at once, as in a crash, then the server is back. */
function restartImmediately(): void {
  const binDir = findBinDir()
  const pgCtl = binDir ? join(binDir, 'pg_ctl') : 'pg_ctl'
  const args = ['restart', '-D', join(cluster.dir, 'data'), '-m', 'immediate', '-w', '-t', '60', '-l', join(cluster.dir, 'restart.log')]
  // The cluster belongs to an unprivileged user when tests run as root (initdb refuses root).
  const owner = statSync(cluster.dir).uid
  const name = () => spawnSync('id', ['-nu', String(owner)], { encoding: 'utf8' }).stdout.trim()
  const [command, argv] = owner === userInfo().uid ? [pgCtl, args] : ['runuser', ['-u', name(), '--', pgCtl, ...args]]
  // -l sends the server's output to a file: otherwise it inherits this pipe and spawnSync waits forever.
  const result = spawnSync(command, argv, { encoding: 'utf8', cwd: cluster.dir, timeout: 90_000 })
  if (result.status !== 0) throw new Error(`pg_ctl restart failed: ${result.stderr || result.error?.message}`)
}

test('after the server restarts, appends, reads and live delivery from other writers resume by themselves', async () => {
  const store = await openPostgresStore(cluster.url, { pollIntervalMs: 200, connectTimeoutMs: 5000 })
  const controller = new AbortController()
  const seen: string[] = []
  const consumer = (async () => {
    for await (const event of store.subscribe('all', { signal: controller.signal })) seen.push(event.type)
  })()
  try {
    await store.append({ type: 'Before' })
    restartImmediately()
    // The first append may meet a dead pooled connection (STORAGE_ERROR, retry with the same id).
    const deadline = Date.now() + 30_000
    for (;;) {
      try {
        await store.append({ type: 'After', id: 'after-restart' })
        break
      } catch (error) {
        if (Date.now() > deadline) throw error
      }
    }
    expect((await store.query('all')).map((event) => event.type)).toEqual(['Before', 'After'])
    const other = await openPostgresStore(cluster.url)
    try {
      await other.append({ type: 'FromOther' })
    } finally {
      await other.close()
    }
    while (seen.length < 3 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10))
    expect(seen).toEqual(['Before', 'After', 'FromOther'])
    // The store listens again too, not just polls: a notification announcing a head beyond the log
    // makes its tail read (a poll reports the real head, which the tail has read already).
    const tail = () => (store as unknown as InspectableStore)[storeStats]().tail
    const reads = tail().reads
    const sql = postgres(cluster.url, { max: 1, onnotice: () => {} })
    try {
      for (;;) {
        await sql.notify(NOTIFY_CHANNEL, '1000000')
        await new Promise((resolve) => setTimeout(resolve, 20))
        if (tail().reads > reads || Date.now() > deadline) {
          expect(tail().reads).toBeGreaterThan(reads)
          break
        }
      }
    } finally {
      await sql.end()
    }
  } finally {
    controller.abort()
    await consumer
    await store.close()
  }
})
