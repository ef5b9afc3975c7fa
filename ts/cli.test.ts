import { afterEach, beforeEach, expect, test } from 'bun:test'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const cli = join(import.meta.dir, 'cli.ts')
let dir: string
let url: string
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'ringstate-cli-'))
  url = `sqlite:${join(dir, 'events.db')}`
})
afterEach(() => rmSync(dir, { recursive: true, force: true }))

async function ringstate(...args: string[]) {
  const child = Bun.spawn([process.execPath, cli, ...args], { stdout: 'pipe', stderr: 'pipe' })
  const [stdout, stderr, code] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited])
  return { stdout, stderr, code }
}

/** Reads a child's stdout line by line until `predicate` matches one; returns every line read. */
async function readUntil(reader: ReadableStreamDefaultReader<Uint8Array>, predicate: (line: string) => boolean, seen: string[]) {
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
      if (predicate(line)) return
    }
  }
}

test('append then read prints the event as a JSON line with a decimal position', async () => {
  const appended = await ringstate('append', 'user-registered', '--tag', 'user:ada', '--data', '{"name":"Ada"}', '--url', url)
  expect(appended).toMatchObject({ code: 0, stdout: '{"position":"1","count":1}\n' })
  const read = await ringstate('read', '--tag', 'user:ada', '--url', url)
  expect(read.code).toBe(0)
  const event = JSON.parse(read.stdout)
  expect(event).toMatchObject({ position: '1', type: 'user-registered', tags: ['user:ada'], data: { name: 'Ada' } })
})

test('bad input exits 1 with the error code and writes nothing', async () => {
  const appended = await ringstate('append', 'x'.repeat(129), '--url', url)
  expect(appended.code).toBe(1)
  expect(appended.stderr).toContain('[INVALID_EVENT]')
  const read = await ringstate('read', '--url', url)
  expect(read).toMatchObject({ code: 0, stdout: '' })
})

test('serve --once runs the bus demonstration with metrics that add up and exits', async () => {
  const served = await ringstate('serve', '--once', '--url', url)
  expect(served.code).toBe(0)
  expect(served.stdout).toContain('handler saw 1,000,000')
  expect(served.stdout).toContain('published=1000000 processed=1000000 dropped=0 pending=0 errors=0')
})

test('serve forwards an event appended by another process to the bus and stops cleanly on SIGTERM', async () => {
  const server = Bun.spawn([process.execPath, cli, 'serve', '--url', url], { stdout: 'pipe', stderr: 'inherit' })
  const reader = server.stdout.getReader()
  const seen: string[] = []
  await readUntil(reader, (line) => line.startsWith('forwarding events'), seen)
  expect((await ringstate('append', 'order-placed', '--tag', 'order:7', '--url', url)).code).toBe(0)
  await readUntil(reader, (line) => line.includes('"order-placed"'), seen)
  server.kill('SIGTERM')
  await readUntil(reader, (line) => line === 'stopped', seen)
  expect(await server.exited).toBe(0)
  expect(JSON.parse(seen.find((line) => line.includes('"order-placed"'))!)).toMatchObject({ position: '1', tags: ['order:7'] })
})
