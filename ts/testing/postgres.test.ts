import { describe, expect, test } from 'bun:test'
import { existsSync } from 'node:fs'
import { dirname, join } from 'node:path'
import postgres from 'postgres'
import { startCluster } from './pg-cluster.mjs'

const bun = process.execPath
const script = join(import.meta.dir, 'testdata', 'use-harness.ts')

/** The environment of a child process, without DATABASE_URL unless given. */
function env(extra: Record<string, string> = {}): Record<string, string> {
  const copy: Record<string, string> = {}
  for (const [key, value] of Object.entries(process.env)) {
    if (value !== undefined && key !== 'DATABASE_URL') copy[key] = value
  }
  return { ...copy, ...extra }
}

describe('pg-cluster', () => {
  test('startCluster starts a server that accepts connections and stop removes its directory', async () => {
    const cluster = await startCluster()
    expect(existsSync(cluster.dir)).toBe(true)
    const sql = postgres(cluster.url, { max: 1 })
    const [row] = await sql`select current_setting('listen_addresses') as listen, 1 + 1 as two`
    await sql.end()
    expect(row).toEqual({ listen: '127.0.0.1', two: 2 })
    await cluster.stop()
    expect(existsSync(cluster.dir)).toBe(false)
    await cluster.stop()
  })
})

describe('the test harness', () => {
  test('with DATABASE_URL unset, a process gets its own cluster and a fresh database, and exit removes the cluster', () => {
    const child = Bun.spawnSync([bun, script], { env: env(), stderr: 'pipe' })
    expect(child.stderr.toString()).toBe('')
    expect(child.exitCode).toBe(0)
    const seen = JSON.parse(child.stdout.toString())
    expect(seen.database).toBe(seen.name)
    expect(seen.name).toMatch(/^ringstate_test_[0-9a-f]{16}$/)
    expect(seen.leftAfterDrop).toBe(0)
    expect(seen.dataDirectory).toContain('ringstate-pg-')
    expect(existsSync(dirname(seen.dataDirectory))).toBe(false)
  })

  test('with DATABASE_URL set, the harness uses that server and starts none', async () => {
    const cluster = await startCluster()
    try {
      const child = Bun.spawnSync([bun, script], { env: env({ DATABASE_URL: cluster.url }), stderr: 'pipe' })
      expect(child.exitCode).toBe(0)
      const seen = JSON.parse(child.stdout.toString())
      expect(dirname(seen.dataDirectory)).toBe(cluster.dir)
      expect(seen.leftAfterDrop).toBe(0)
    } finally {
      await cluster.stop()
    }
  })

  test('with no PostgreSQL to start, the harness throws and says how to provide DATABASE_URL', () => {
    for (const ci of [{}, { CI: '1' }] as Record<string, string>[]) {
      const child = Bun.spawnSync([bun, script], {
        env: env({ ...ci, RINGSTATE_PG_BINDIR: '/nonexistent/postgresql/bin' }),
        stderr: 'pipe',
      })
      expect(child.exitCode).not.toBe(0)
      expect(child.stderr.toString()).toContain('DATABASE_URL')
    }
  })
})
