import { afterAll, describe, expect, test } from 'bun:test'
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { homedir, tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
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

/** Run `work` with a fresh empty working directory; returns that directory. */
async function inFreshCwd(work: (cwd: string) => Promise<void>): Promise<string> {
  const cwd = mkdtempSync(join(dir, 'cwd-'))
  const before = process.cwd()
  process.chdir(cwd)
  try {
    await work(cwd)
  } finally {
    process.chdir(before)
  }
  return cwd
}

/** Every file under `root`, relative to it, sorted (directories end in '/'). */
function tree(root: string): string[] {
  const found: string[] = []
  const walk = (at: string, prefix: string) => {
    for (const entry of readdirSync(at, { withFileTypes: true })) {
      if (entry.isDirectory()) {
        found.push(`${prefix}${entry.name}/`)
        walk(join(at, entry.name), `${prefix}${entry.name}/`)
      } else {
        found.push(`${prefix}${entry.name}`)
      }
    }
  }
  walk(root, '')
  return found.sort()
}

/** The database file and the WAL files beside it (SQLite keeps -wal and -shm until the last close). */
const withWal = (name: string) => [name, `${name}-shm`, `${name}-wal`]

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
    expect(await codeOf(() => openStore('sqlite:'))).toBe('INVALID_OPTIONS')
  })

  test('bad store options are INVALID_OPTIONS for every backend', async () => {
    expect(await codeOf(() => openStore('memory:', { streamBatchSize: 0 }))).toBe('INVALID_OPTIONS')
    expect(await codeOf(() => openStore(`sqlite:${join(dir, 'bad.db')}`, { maxAppendBatch: -1 }))).toBe('INVALID_OPTIONS')
  })
})

describe('SQLite store URLs', () => {
  // [url written, where the file must appear (relative to the working directory, or absolute)]
  const forms: [string, (cwd: string) => string][] = [
    ['sqlite:./rel.db', (cwd) => join(cwd, 'rel.db')],
    ['sqlite:rel.db', (cwd) => join(cwd, 'rel.db')],
    ['sqlite:./nested/dir/rel.db', (cwd) => join(cwd, 'nested/dir/rel.db')],
    ['sqlite:../up.db', (cwd) => join(cwd, '..', 'up.db')],
    ['sqlite:./a:b.db', (cwd) => join(cwd, 'a:b.db')],
    ['file:./x.db', (cwd) => join(cwd, 'x.db')],
    ['file:x.db', (cwd) => join(cwd, 'x.db')],
    ['file:./my%20app.db', (cwd) => join(cwd, 'my app.db')],
  ]
  for (const [url, where] of forms) {
    test(`'${url}' writes the file relative to the working directory and nowhere else`, async () => {
      let expected = ''
      let cwdEntries: string[] = []
      const cwd = await inFreshCwd(async (cwd) => {
        expected = where(cwd)
        const store = await openStore(url)
        await store.append({ type: 'A', data: { url } })
        await store.close()
        cwdEntries = tree(cwd)
      })
      expect(existsSync(expected)).toBe(true)
      const inside = expected.startsWith(`${cwd}/`)
      const name = inside ? expected.slice(cwd.length + 1) : undefined
      const dirs = name?.split('/').slice(0, -1).map((_, i, parts) => `${parts.slice(0, i + 1).join('/')}/`) ?? []
      const files = cwdEntries.filter((entry) => !entry.endsWith('-wal') && !entry.endsWith('-shm'))
      expect(files).toEqual(name === undefined ? [] : [...dirs, name].sort())
      // The events are in that file: an absolute URL to it reads them back.
      const reopened = await openStore(`sqlite:${expected}`)
      expect((await reopened.query('all')).map((event) => event.data)).toEqual([{ url }])
      await reopened.close()
      if (!inside) for (const file of withWal(expected)) rmSync(file, { force: true })
    })
  }

  test('a relative path is resolved once, when the store opens: a later chdir does not move it', async () => {
    let store: Awaited<ReturnType<typeof openStore>> | undefined
    const cwd = await inFreshCwd(async () => {
      store = await openStore('sqlite:./pinned.db')
    })
    await store!.append({ type: 'A' })
    await store!.close()
    expect(tree(cwd).filter((entry) => entry.endsWith('.db'))).toEqual(['pinned.db'])
    expect(existsSync(join(process.cwd(), 'pinned.db'))).toBe(false)
  })

  const absolute = (name: string) => join(dir, 'abs', name)
  const absoluteForms: [string, string][] = [
    [`sqlite:${absolute('plain.db')}`, absolute('plain.db')],
    [pathToFileURL(absolute('rfc8089.db')).href, absolute('rfc8089.db')],
    [`file:${absolute('one-slash.db')}`, absolute('one-slash.db')],
    [`file://localhost${absolute('localhost.db')}`, absolute('localhost.db')],
    [`FILE://LOCALHOST${absolute('upper.db')}`, absolute('upper.db')],
    [`file://${absolute('my%20db%23%3F.db')}`, absolute('my db#?.db')],
  ]
  for (const [url, expected] of absoluteForms) {
    test(`'${url.replace(dir, '<tmp>')}' writes exactly that absolute file`, async () => {
      const cwd = await inFreshCwd(async () => {
        const store = await openStore(url)
        await store.append({ type: 'A', data: { url } })
        await store.close()
      })
      expect(tree(cwd)).toEqual([])
      expect(existsSync(expected)).toBe(true)
      // A file URL, since sqlite: refuses '?' and '#' (one of the names holds them).
      const reopened = await openStore(pathToFileURL(expected).href)
      expect((await reopened.query('all')).map((event) => event.data)).toEqual([{ url }])
      await reopened.close()
    })
  }

  test("'sqlite::memory:' is a private in-memory database that writes no file", async () => {
    const cwd = await inFreshCwd(async () => {
      const first = await openStore('sqlite::memory:')
      const second = await openStore('sqlite::memory:')
      await first.append({ type: 'A' })
      expect(await first.head()).toBe(1n)
      expect(await second.head()).toBe(0n)
      await first.close()
      await second.close()
    })
    expect(tree(cwd)).toEqual([])
  })

  const unique = `ringstate-open-${crypto.randomUUID().slice(0, 8)}`
  // [url, a fragment the message must contain (what to write instead)]
  const refused: [string, string][] = [
    [`sqlite://${unique}.db`, `"sqlite:./${unique}.db"`],
    [`sqlite:///${unique}.db`, `"sqlite:/${unique}.db"`],
    [`sqlite:////${unique}.db`, `"sqlite:./${unique}.db"`],
    [`sqlite://host/${unique}.db`, `"sqlite:/host/${unique}.db"`],
    ['sqlite://', "'sqlite:./app.db'"],
    ['sqlite:~/app.db', `"sqlite:${homedir().replace(/\/$/, '')}/app.db"`],
    ['sqlite:~', 'absolute path'],
    ['sqlite:~bob/app.db', 'absolute path'],
    ['file:~/app.db', `"file:${homedir().replace(/\/$/, '')}/app.db"`],
    ['sqlite:$HOME/app.db', 'not expanded'],
    ['sqlite:./app.db?mode=ro', 'write the path alone'],
    ['sqlite:./app.db#x', 'write the path alone'],
    ['file:./app.db?cache=shared', 'write the path alone'],
    ['file://db.example.com/app.db', "'file:///path/to/app.db'"],
    ['file://', "'file:///var/lib/app/events.db'"],
    ['file:', "'file:///var/lib/app/events.db'"],
    ['file::memory:', "'sqlite::memory:'"],
    ['memory:extra', "'sqlite::memory:'"],
    ['sqlite:./my%20app.db', "'file:///data/my%20app.db'"],
    ['sqlite:./data/', "'sqlite:./data/app.db'"],
    ['file:///tmp/', "'file:./data/app.db'"],
    ['sqlite:file:app.db', "'file:///var/lib/app/events.db'"],
    ['sqlite:postgres://db/app', 'another scheme'],
    ['file:///tmp/a%2Fb.db', '%2F'],
    ['file:///tmp/a%zz.db', "'%25'"],
    ['sqlite:./a\0b.db', 'NUL'],
    ['./app.db', '"sqlite:./app.db"'],
    ['app.db', '"sqlite:./app.db"'],
  ]
  for (const [url, hint] of refused) {
    test(`'${url.replace('\0', '\\0')}' is INVALID_OPTIONS saying what to write instead, and writes nothing`, async () => {
      let error: unknown
      const cwd = await inFreshCwd(async () => {
        error = await openStore(url).then(
          async (store) => {
            await store.close()
            return undefined
          },
          (caught: unknown) => caught,
        )
      })
      expect(error).toMatchObject({ code: 'INVALID_OPTIONS' })
      expect((error as Error).message).toContain(hint)
      expect(tree(cwd)).toEqual([])
    })
  }

  test("'sqlite://<name>' writes nothing at the file system root (it used to create /<name>)", async () => {
    expect(await codeOf(() => openStore(`sqlite://${unique}-root.db`))).toBe('INVALID_OPTIONS')
    expect(existsSync(`/${unique}-root.db`)).toBe(false)
  })

  test('credentials in a refused sqlite:// URL are not echoed', async () => {
    const error = await openStore('sqlite://user:secret@host/app.db').catch((caught: unknown) => caught)
    expect(error).toMatchObject({ code: 'INVALID_OPTIONS' })
    expect((error as Error).message).not.toContain('secret')
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
