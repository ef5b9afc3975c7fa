import { afterEach, beforeEach, expect, test } from 'bun:test'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Subprocess } from 'bun'
import { openStore } from './store/open.ts'
import { serve } from './http/index.ts'
import { defineProjection } from './projections/index.ts'
import { serveProjections } from './testing/projection-server.ts'

const cli = join(import.meta.dir, 'cli.ts')
let dir: string
let url: string
const children: Subprocess[] = []
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'ringstate-cli-'))
  url = `sqlite:${join(dir, 'events.db')}`
})
afterEach(async () => {
  for (const child of children.splice(0)) {
    child.kill('SIGKILL')
    await child.exited
  }
  rmSync(dir, { recursive: true, force: true })
})

// The environment of the test runner must not leak into the commands under test.
const env = { ...process.env, RINGSTATE_URL: undefined, RINGSTATE_API: undefined, RINGSTATE_TOKEN: undefined }

async function ringstate(...args: string[]) {
  const child = Bun.spawn([process.execPath, cli, ...args], { stdout: 'pipe', stderr: 'pipe', env, cwd: dir })
  const [stdout, stderr, code] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited])
  return { stdout, stderr, code }
}

/** The lines of a child's output, read as they come; lines read past a match are kept for the next call. */
class Lines {
  readonly seen: string[] = []
  #next = 0
  #buffered = ''
  readonly #decoder = new TextDecoder()
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>
  constructor(stream: ReadableStream<Uint8Array>) {
    this.#reader = stream.getReader()
  }

  /** Resolves to the first line not yet consumed that matches `predicate`. */
  async until(predicate: (line: string) => boolean): Promise<string> {
    for (;;) {
      while (this.#next < this.seen.length) {
        const line = this.seen[this.#next++]!
        if (predicate(line)) return line
      }
      const { value, done } = await this.#reader.read()
      if (done) throw new Error(`output ended before the expected line; saw:\n${this.seen.join('\n')}`)
      this.#buffered += this.#decoder.decode(value, { stream: true })
      const lines = this.#buffered.split('\n')
      this.#buffered = lines.pop()!
      this.seen.push(...lines)
    }
  }
}

/** Starts `ringstate serve --port 0` and resolves once it printed its URL. */
async function startServer(...args: string[]) {
  const child = Bun.spawn([process.execPath, cli, 'serve', '--port', '0', ...args], { stdout: 'pipe', stderr: 'pipe', env, cwd: dir })
  children.push(child)
  const output = new Lines(child.stdout)
  const line = await output.until((l) => l.startsWith('ringstate ') && l.includes(' serving '))
  const api = /serving (http:\/\/\S+)/.exec(line)![1]!
  return { child, output, seen: output.seen, api }
}

test('append then read prints the event as a JSON line in the wire format', async () => {
  const appended = await ringstate('append', 'user-registered', '--tag', 'user:ada', '--data', '{"name":"Ada"}', '--url', url)
  expect(appended.code).toBe(0)
  const result = JSON.parse(appended.stdout)
  expect(result).toEqual({ position: '1', count: 1, ids: [expect.any(String)] })
  const read = await ringstate('read', '--tag', 'user:ada', '--url', url)
  expect(read.code).toBe(0)
  expect(Object.keys(JSON.parse(read.stdout))).toEqual(['position', 'type', 'tags', 'data', 'metadata', 'id', 'recordedAt'])
  expect(JSON.parse(read.stdout)).toMatchObject({ position: '1', type: 'user-registered', tags: ['user:ada'], data: { name: 'Ada' }, id: result.ids[0] })
})

test('append reads --data from a file with @PATH and from stdin with @-', async () => {
  writeFileSync(join(dir, 'order.json'), '{"orderId":"o-1","lines":[{"sku":"KB-01","qty":2}]}')
  expect((await ringstate('append', 'OrderPlaced', '--data', `@${join(dir, 'order.json')}`, '--url', url)).code).toBe(0)
  const child = Bun.spawn([process.execPath, cli, 'append', 'OrderNoted', '--data', '@-', '--url', url], { stdin: 'pipe', stdout: 'pipe', stderr: 'pipe', env, cwd: dir })
  child.stdin.write('{"note":"from stdin"}')
  await child.stdin.end()
  expect(await child.exited).toBe(0)
  const read = await ringstate('read', '--url', url)
  expect(read.stdout.trim().split('\n').map((line) => JSON.parse(line).data)).toEqual([
    { orderId: 'o-1', lines: [{ sku: 'KB-01', qty: 2 }] },
    { note: 'from stdin' },
  ])
  const missing = await ringstate('append', 'X', '--data', '@/no/such/file.json', '--url', url)
  expect(missing.code).toBe(2)
  expect(missing.stderr).toContain('--data: cannot read /no/such/file.json: ENOENT')
})

test('bad event input exits 1 with the error code and writes nothing', async () => {
  const appended = await ringstate('append', 'x'.repeat(129), '--url', url)
  expect(appended.code).toBe(1)
  expect(appended.stderr).toContain('[INVALID_EVENT]')
  expect(await ringstate('read', '--url', url)).toMatchObject({ code: 0, stdout: '' })
})

test('query --json runs an OR of items and head prints the last position', async () => {
  for (const [type, tag] of [['A', 'k:1'], ['B', 'k:2'], ['C', 'k:3']]) {
    expect((await ringstate('append', type!, '--tag', tag!, '--url', url)).code).toBe(0)
  }
  const queried = await ringstate('query', '--json', '[{"types":["A"]},{"tags":["k:3"]}]', '--url', url)
  expect(queried.code).toBe(0)
  expect(queried.stdout.trim().split('\n').map((line) => JSON.parse(line).type)).toEqual(['A', 'C'])
  expect(await ringstate('head', '--url', url)).toMatchObject({ code: 0, stdout: '3\n' })
})

test('an append whose condition fails exits 3 and writes nothing', async () => {
  expect((await ringstate('append', 'AccountRegistered', '--tag', 'username:ada', '--url', url)).code).toBe(0)
  const condition = JSON.stringify({ failIfEventsMatch: [{ types: ['AccountRegistered'], tags: ['username:ada'] }] })
  const conflicting = await ringstate('append', 'AccountRegistered', '--tag', 'username:ada', '--condition', condition, '--url', url)
  expect(conflicting.code).toBe(3)
  expect(conflicting.stderr).toContain('[APPEND_CONDITION_FAILED]')
  // The same condition holds when the decision was based on everything up to the existing event.
  const after = JSON.stringify({ failIfEventsMatch: [{ types: ['AccountRegistered'], tags: ['username:ada'] }], after: '1' })
  expect((await ringstate('append', 'AccountRegistered', '--tag', 'username:ada', '--condition', after, '--url', url)).code).toBe(0)
  expect(await ringstate('head', '--url', url)).toMatchObject({ stdout: '2\n' })
})

test('usage errors exit 2 and name the option or argument at fault', async () => {
  const cases: [string[], string][] = [
    [['read', '--after', 'x'], '--after'],
    [['read', '--limit', '0'], '--limit'],
    [['read', '--bogus'], '--bogus'],
    [['read', '--type'], '--type'],
    [['serve', '--port', '70000'], '--port'],
    [['serve', '--host', '0.0.0.0', '--url', 'memory:'], '--host 0.0.0.0'],
    [['append', 'T', '--data', '{oops'], '--data'],
    [['append', 'T', '--metadata', '[1]'], '--metadata'],
    [['append', 'T', '--condition', '{"failIfEventsMatch":[{"types":["T"]}],"after":12}'], '--condition'],
    [['append'], 'TYPE'],
    [['query'], '--json'],
    [['head', '--api', 'not a url'], '--api'],
    [['head', '--token', 'secret-secret-secret'], '--token'],
    [['projections', 'explode'], 'list, pause, resume, rebuild'],
  ]
  for (const [args, named] of cases) {
    const result = await ringstate(...args)
    expect({ args, code: result.code, named: result.stderr.includes(named) }).toEqual({ args, code: 2, named: true })
  }
  const unknown = await ringstate('frobnicate')
  expect(unknown.code).toBe(2)
  expect(unknown.stderr).toContain('unknown command "frobnicate"')
})

test('every command has its own --help, and --version prints the package version', async () => {
  for (const command of ['serve', 'append', 'read', 'query', 'tail', 'head', 'migrate', 'projections', 'bench']) {
    const help = await ringstate(command, '--help')
    expect({ command, code: help.code, first: help.stdout.split('\n')[0]!.startsWith(`usage: ringstate ${command}`) }).toEqual({ command, code: 0, first: true })
    expect(help.stdout).toContain('--help')
    expect(help.stdout).toContain('--version')
  }
  expect((await ringstate('serve', '--help')).stdout).toContain('--token-file PATH')
  expect((await ringstate('read', '--help')).stdout).toContain('--api URL')
  const manifest = JSON.parse(readFileSync(join(import.meta.dir, '..', 'package.json'), 'utf8'))
  expect(await ringstate('--version')).toMatchObject({ code: 0, stdout: `${manifest.version}\n` })
  expect(await ringstate('serve', '--version')).toMatchObject({ code: 0, stdout: `${manifest.version}\n` })
})

test('serve --port 0 answers /health/live, prints the store and a first append, and stops cleanly on SIGTERM', async () => {
  const server = await startServer('--url', 'memory:')
  const rest = await server.output.until((l) => l.startsWith('Ctrl-C'))
  expect(rest).toBe('Ctrl-C stops the server.')
  const printed = server.seen.join('\n')
  expect(printed).toContain('store    memory:')
  expect(printed).toContain(`curl -sS -X POST ${server.api}v1/append`)
  expect(printed).toContain(`ringstate append HelloWorld --tag greeting:1 --data '{"text":"hello"}' --api ${server.api}`)
  expect(printed).not.toMatch(/bus:|forwarding events/)

  const live = await fetch(`${server.api}health/live`)
  expect({ status: live.status, body: await live.json() }).toEqual({ status: 200, body: { status: 'ok' } })
  // The first-append curl line, run as printed, works.
  const curlLine = server.seen.find((l) => l.trimStart().startsWith('curl '))!
  const curl = Bun.spawn(['sh', '-c', curlLine.trim()], { stdout: 'pipe' })
  expect(JSON.parse(await new Response(curl.stdout).text())).toMatchObject({ position: '1', count: 1 })

  // An open event stream is ended by the stop, not left hanging.
  const stream = await fetch(`${server.api}v1/subscribe`)
  const events = stream.body!.getReader()
  const first = new TextDecoder().decode((await events.read()).value)
  expect(first).toContain('retry:')
  server.child.kill('SIGTERM')
  for (;;) if ((await events.read()).done) break
  await server.output.until((l) => l === 'stopped')
  expect(await server.child.exited).toBe(0)
})

test('serve prints the path of the SQLite store it uses and refuses a bad token file with exit 2', async () => {
  const server = await startServer('--url', url)
  expect(await server.output.until((l) => l.startsWith('  store'))).toBe(`  store    sqlite ${join(dir, 'events.db')}`)
  server.child.kill('SIGINT')
  expect(await server.child.exited).toBe(0)

  writeFileSync(join(dir, 'tokens.txt'), 'only-two:fields\n')
  const bad = await ringstate('serve', '--port', '0', '--token-file', join(dir, 'tokens.txt'), '--url', 'memory:')
  expect(bad.code).toBe(2)
  expect(bad.stderr).toContain('--token-file')
  expect(bad.stderr).toContain('line 1')
})

test('read, head and append against a server with --api print what they print against the store with --url', async () => {
  const server = await startServer('--url', url)
  const api = server.api
  for (const [type, tag, data] of [['OrderPlaced', 'order:1', '{"total":10}'], ['OrderPlaced', 'order:2', '{"total":"<b>20</b>"}'], ['OrderShipped', 'order:1', '{"carrier":"ups"}']]) {
    const appended = await ringstate('append', type!, '--tag', tag!, '--data', data!, '--metadata', '{"user":"ada"}', '--api', api)
    expect(appended.code).toBe(0)
  }
  for (const filter of [[], ['--tag', 'order:1'], ['--type', 'OrderPlaced', '--backwards'], ['--after', '1', '--limit', '1']]) {
    const local = await ringstate('read', ...filter, '--url', url)
    const remote = await ringstate('read', ...filter, '--api', api)
    expect({ filter, code: remote.code, stdout: remote.stdout }).toEqual({ filter, code: 0, stdout: local.stdout })
    expect(local.stdout.length).toBeGreaterThan(0)
  }
  expect(await ringstate('head', '--api', api)).toMatchObject({ code: 0, stdout: '3\n' })

  const condition = JSON.stringify({ failIfEventsMatch: [{ tags: ['order:1'] }], after: '1' })
  const conflicting = await ringstate('append', 'OrderCancelled', '--tag', 'order:1', '--condition', condition, '--api', api)
  expect(conflicting.code).toBe(3)
  expect(conflicting.stderr).toContain('[APPEND_CONDITION_FAILED]')
  expect(await ringstate('projections', 'list', '--api', api)).toMatchObject({ code: 0, stdout: 'no projections run on this server\n' })
})

test('tail --api prints a newly appended event and stops cleanly on SIGTERM', async () => {
  const server = await startServer('--url', 'memory:')
  const tail = Bun.spawn([process.execPath, cli, 'tail', '--tag', 'order:9', '--api', server.api], { stdout: 'pipe', stderr: 'pipe', env, cwd: dir })
  children.push(tail)
  const output = new Lines(tail.stdout)
  // Appended before and after the tail connects: both arrive, in order, and nothing else.
  expect((await ringstate('append', 'OrderPlaced', '--tag', 'order:9', '--api', server.api)).code).toBe(0)
  expect((await ringstate('append', 'OrderPlaced', '--tag', 'order:8', '--api', server.api)).code).toBe(0)
  await output.until((l) => l.includes('"position":"1"'))
  expect((await ringstate('append', 'OrderShipped', '--tag', 'order:9', '--api', server.api)).code).toBe(0)
  await output.until((l) => l.includes('"OrderShipped"'))
  expect(output.seen.map((l) => JSON.parse(l).position)).toEqual(['1', '3'])
  tail.kill('SIGTERM')
  expect(await tail.exited).toBe(0)
})

test('tail on a local store prints a newly appended event and stops cleanly on SIGINT', async () => {
  expect((await ringstate('append', 'Before', '--url', url)).code).toBe(0)
  const tail = Bun.spawn([process.execPath, cli, 'tail', '--after', '1', '--url', url], { stdout: 'pipe', stderr: 'pipe', env, cwd: dir })
  children.push(tail)
  const output = new Lines(tail.stdout)
  expect((await ringstate('append', 'After', '--tag', 'k:v', '--url', url)).code).toBe(0)
  await output.until((l) => l.includes('"After"'))
  expect(output.seen.map((l) => JSON.parse(l).position)).toEqual(['2'])
  tail.kill('SIGINT')
  expect(await tail.exited).toBe(0)
})

test('read --api follows the next cursor past the server page limit, both ways', async () => {
  const store = await openStore('memory:')
  await using server = await serve(store, { port: 0, readLimit: 2 })
  try {
    await store.append(['A', 'B', 'C', 'D', 'E'].map((type) => ({ type, tags: ['t:1'] })))
    const forwards = await ringstate('read', '--tag', 't:1', '--api', server.url)
    expect(forwards.code).toBe(0)
    expect(forwards.stdout.trim().split('\n').map((l) => JSON.parse(l).type)).toEqual(['A', 'B', 'C', 'D', 'E'])
    const backwards = await ringstate('read', '--backwards', '--limit', '3', '--api', server.url)
    expect(backwards.stdout.trim().split('\n').map((l) => JSON.parse(l).type)).toEqual(['E', 'D', 'C'])
    const queried = await ringstate('query', '--json', '[{"types":["B","D"]}]', '--after', '2', '--api', server.url)
    expect(queried.stdout.trim().split('\n').map((l) => JSON.parse(l).type)).toEqual(['D'])
  } finally {
    await server.stop()
    await store.close()
  }
})

test('projections list, pause and resume go through the server, with the scopes the server demands', async () => {
  await using fixture = await serveProjections([
    defineProjection({ name: 'order-count', version: 1, query: [{ types: ['OrderPlaced'] }], async handle() {} }),
  ], 'cli-test')
  const { server, reader, admin } = fixture
  const listed = await ringstate('projections', 'list', '--api', server.url, '--token', reader)
  expect(listed.code).toBe(0)
  const [header, row] = listed.stdout.trim().split('\n')
  expect(header!.split(/\s+/).slice(0, 6)).toEqual(['NAME', 'VERSION', 'PARTITION', 'STATE', 'POSITION', 'LAG'])
  expect(row!.split(/\s+/).slice(0, 4)).toEqual(['order-count', '1', '0', 'live'])

  const forbidden = await ringstate('projections', 'pause', 'order-count', '--api', server.url, '--token', reader)
  expect(forbidden.code).toBe(1)
  expect(forbidden.stderr).toContain('[FORBIDDEN]')
  const unauthorized = await ringstate('projections', 'list', '--api', server.url)
  expect(unauthorized.code).toBe(1)
  expect(unauthorized.stderr).toContain('[UNAUTHORIZED]')

  const paused = await ringstate('projections', 'pause', 'order-count', '--json', '--api', server.url, '--token', admin)
  expect(paused.code).toBe(0)
  expect(JSON.parse(paused.stdout)).toMatchObject([{ name: 'order-count', state: 'paused' }])
  const missing = await ringstate('projections', 'resume', 'no-such-projection', '--api', server.url, '--token', admin)
  expect(missing.code).toBe(1)
  expect(missing.stderr).toContain('[NOT_FOUND]')
  // The token can also come from the environment, out of sight of `ps`.
  const child = Bun.spawn([process.execPath, cli, 'projections', 'resume', 'order-count', '--json', '--api', server.url], {
    stdout: 'pipe',
    stderr: 'pipe',
    env: { ...env, RINGSTATE_TOKEN: admin },
    cwd: dir,
  })
  expect(await child.exited).toBe(0)
  expect(JSON.parse(await new Response(child.stdout).text())).toMatchObject([{ name: 'order-count', state: expect.stringMatching(/^(live|catching-up)$/) }])
})

test('tail --api resumes where it stopped when the server restarts, with no gap and no duplicate', async () => {
  const store = await openStore('memory:')
  let server = await serve(store, { port: 0, sse: { retryMs: 100 } })
  const port = Number(new URL(server.url).port)
  try {
    const tail = Bun.spawn([process.execPath, cli, 'tail', '--api', server.url], { stdout: 'pipe', stderr: 'pipe', env, cwd: dir })
    children.push(tail)
    const output = new Lines(tail.stdout)
    const errors = new Lines(tail.stderr)
    await store.append({ type: 'First' })
    await output.until((l) => l.includes('"First"'))
    await server.stop()
    expect(await errors.until((l) => l.includes('the server ended the stream'))).toBe('ringstate: the server ended the stream; resuming after 1')
    // Appended while no server runs: the tail gets them once it reconnects.
    await store.append([{ type: 'Second' }, { type: 'Third' }])
    server = await serve(store, { port, sse: { retryMs: 100 } })
    await output.until((l) => l.includes('"Third"'))
    expect(output.seen.map((l) => JSON.parse(l).type)).toEqual(['First', 'Second', 'Third'])
    tail.kill('SIGTERM')
    expect(await tail.exited).toBe(0)
  } finally {
    await server.stop()
    await store.close()
  }
})
