import { afterEach, beforeEach, expect, test } from 'bun:test'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Subprocess } from 'bun'

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

/** Reads a stream line by line until `predicate` matches one; returns that line. */
async function readUntil(reader: ReadableStreamDefaultReader<Uint8Array>, predicate: (line: string) => boolean, seen: string[]): Promise<string> {
  const decoder = new TextDecoder()
  let buffered = ''
  for (;;) {
    const { value, done } = await reader.read()
    if (done) throw new Error(`stream ended before the expected line; saw:\n${seen.join('\n')}`)
    buffered += decoder.decode(value, { stream: true })
    const lines = buffered.split('\n')
    buffered = lines.pop()!
    for (const line of lines) {
      seen.push(line)
      if (predicate(line)) return line
    }
  }
}

/** Starts `ringstate serve --port 0` and resolves once it printed its URL. */
async function startServer(...args: string[]) {
  const child = Bun.spawn([process.execPath, cli, 'serve', '--port', '0', ...args], { stdout: 'pipe', stderr: 'pipe', env, cwd: dir })
  children.push(child)
  const reader = child.stdout.getReader()
  const seen: string[] = []
  const line = await readUntil(reader, (l) => l.startsWith('ringstate ') && l.includes(' serving '), seen)
  const api = /serving (http:\/\/\S+)/.exec(line)![1]!
  return { child, reader, seen, api }
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
  }
  expect((await ringstate('serve', '--help')).stdout).toContain('--token-file PATH')
  expect((await ringstate('read', '--help')).stdout).toContain('--api URL')
  const manifest = JSON.parse(readFileSync(join(import.meta.dir, '..', 'package.json'), 'utf8'))
  expect(await ringstate('--version')).toMatchObject({ code: 0, stdout: `${manifest.version}\n` })
})

test('serve --port 0 answers /health/live, prints the store and a first append, and stops cleanly on SIGTERM', async () => {
  const server = await startServer('--url', 'memory:')
  const rest = await readUntil(server.reader, (l) => l.startsWith('Ctrl-C'), server.seen)
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
  await readUntil(server.reader, (l) => l === 'stopped', server.seen)
  expect(await server.child.exited).toBe(0)
})

test('serve prints the path of the SQLite store it uses and refuses a bad token file with exit 2', async () => {
  const server = await startServer('--url', url)
  await readUntil(server.reader, (l) => l.startsWith('  store'), server.seen)
  expect(server.seen.at(-1)).toBe(`  store    sqlite ${join(dir, 'events.db')}`)
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
  const reader = tail.stdout.getReader()
  const seen: string[] = []
  // Appended before and after the tail connects: both arrive, in order, and nothing else.
  expect((await ringstate('append', 'OrderPlaced', '--tag', 'order:9', '--api', server.api)).code).toBe(0)
  expect((await ringstate('append', 'OrderPlaced', '--tag', 'order:8', '--api', server.api)).code).toBe(0)
  await readUntil(reader, (l) => l.includes('"position":"1"'), seen)
  expect((await ringstate('append', 'OrderShipped', '--tag', 'order:9', '--api', server.api)).code).toBe(0)
  await readUntil(reader, (l) => l.includes('"OrderShipped"'), seen)
  expect(seen.map((l) => JSON.parse(l).position)).toEqual(['1', '3'])
  tail.kill('SIGTERM')
  expect(await tail.exited).toBe(0)
})
