import { afterAll, describe, expect, test } from 'bun:test'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { MemoryStore } from './memory/index.ts'
import { openStore } from './open.ts'

async function codeOf(work: () => Promise<unknown>): Promise<string | undefined> {
  try {
    await work()
  } catch (error) {
    return (error as { code?: string }).code
  }
  return undefined
}

const dir = mkdtempSync(join(tmpdir(), 'ringstate-open-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

describe('openStore', () => {
  test("'memory:' opens an in-memory store", async () => {
    const store = await openStore('memory:')
    expect(store).toBeInstanceOf(MemoryStore)
    await store.append({ type: 'A' })
    expect(await store.head()).toBe(1n)
    await store.close()
  })

  test("'sqlite:<path>' opens a SQLite file that keeps its events", async () => {
    const url = `sqlite:${join(dir, 'kept.db')}`
    const first = await openStore(url)
    await first.append({ type: 'A', data: { n: 1 } })
    await first.close()
    const second = await openStore(url)
    expect((await second.query('all')).map((event) => event.data)).toEqual([{ n: 1 }])
    await second.close()
  })

  test('an unknown scheme is INVALID_OPTIONS and does not echo the rest of the URL', async () => {
    const error = await openStore('mysql://user:secret@host/db').catch((caught) => caught)
    expect(error).toMatchObject({ code: 'INVALID_OPTIONS' })
    expect((error as Error).message).not.toContain('secret')
    expect(await codeOf(() => openStore('no-scheme-here'))).toBe('INVALID_OPTIONS')
    expect(await codeOf(() => openStore('sqlite:'))).toBe('INVALID_OPTIONS')
  })

  test('bad store options are INVALID_OPTIONS for every backend', async () => {
    expect(await codeOf(() => openStore('memory:', { streamBatchSize: 0 }))).toBe('INVALID_OPTIONS')
    expect(await codeOf(() => openStore(`sqlite:${join(dir, 'bad.db')}`, { maxAppendBatch: -1 }))).toBe('INVALID_OPTIONS')
  })
})

describe('openStore without a URL', () => {
  test('uses ./data/ringstate.db, creating ./data', async () => {
    const cwd = mkdtempSync(join(tmpdir(), 'ringstate-default-'))
    try {
      const script = `
        const { openStore } = await import(${JSON.stringify(join(import.meta.dir, 'open.ts'))})
        const store = await openStore()
        await store.append({ type: 'A' })
        console.log(String(await store.head()))
        await store.close()
      `
      const child = Bun.spawnSync([process.execPath, '-e', script], { cwd, stderr: 'pipe' })
      expect(child.stderr.toString()).toBe('')
      expect(child.stdout.toString().trim()).toBe('1')
      expect(await Bun.file(join(cwd, 'data', 'ringstate.db')).exists()).toBe(true)
    } finally {
      rmSync(cwd, { recursive: true, force: true })
    }
  })
})
