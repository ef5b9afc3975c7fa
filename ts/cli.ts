#!/usr/bin/env bun
/**
 * The ringstate command line.
 *
 *   ringstate serve        the HTTP API and the browser page over a store (the main job)
 *   ringstate append TYPE  append one event (optionally under a condition)
 *   ringstate read         print matching events as JSON lines
 *   ringstate query        print the events of a DCB query given as JSON
 *   ringstate tail         print matching events, then new ones as they are appended
 *   ringstate head         print the head position
 *   ringstate migrate      create or upgrade the schema, then exit
 *   ringstate projections  list|pause|resume|rebuild the projections of a running server
 *   ringstate bench        run the mitata benchmarks
 *
 * `ringstate <command> --help` lists each command's options. The store comes from `--url`, else
 * RINGSTATE_URL, else the embedded default (SQLite at ./data/ringstate.db). `read`, `query`,
 * `tail`, `append` and `head` run against a remote server instead with `--api URL` (or
 * RINGSTATE_API) and `--token T` (or RINGSTATE_TOKEN, which keeps the token out of `ps`).
 *
 * Events print as JSON lines in the HTTP API's wire format (`{ position, type, tags, data,
 * metadata, id, recordedAt }`, positions as decimal strings), whether read from a local store or
 * from a server, so scripts see the same lines either way.
 *
 * Exit codes: 0 ok, 1 error, 2 usage (a bad command, option or value; the message names it),
 * 3 conflict (an append whose condition failed).
 *
 * Arguments are parsed with `node:util`'s parseArgs: it is in every runtime ringstate supports,
 * strict about unknown options, and the few things a CLI library would add (per-command help,
 * value checks that name the option) take less code here than a dependency would bring.
 */
import { parseArgs } from 'node:util'
import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { openStore, defaultStoreUrl } from './store/open.ts'
import type { AppendCondition, EventInput, EventStore, Query, ReadOptions, SequencedEvent } from './store/types.ts'
import { ErrorCode, RingstateError } from './errors.ts'
import { abortableDelay } from './delay.ts'

/** How the process ends. */
const Exit = { ok: 0, error: 1, usage: 2, conflict: 3 } as const

const version = (() => {
  try {
    const manifest = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version?: string }
    return manifest.version ?? 'unknown'
  } catch {
    return 'unknown'
  }
})()

/** A mistake in how the command was called: exit 2, with the command's usage line. */
class UsageError extends Error {}

/** A failed call to a remote server, carrying its problem details. */
class RemoteError extends Error {
  readonly status: number
  readonly code: string

  constructor(
    status: number,
    code: string,
    message: string,
  ) {
    super(message)
    this.status = status
    this.code = code
  }
}

// ---------------------------------------------------------------------------------------------
// Options, shared by several commands

interface OptionSpec {
  type: 'string' | 'boolean'
  multiple?: boolean
  short?: string
  /** The value's name in help (`--after N`). */
  value?: string
  help: string
}

const storeOption: Record<string, OptionSpec> = {
  url: { type: 'string', value: 'URL', help: `store URL: memory:, sqlite:PATH or postgres://... (default: RINGSTATE_URL, else ${defaultStoreUrl})` },
}
const remoteOptions: Record<string, OptionSpec> = {
  api: { type: 'string', value: 'URL', help: 'run against the server at URL instead of a local store (default: RINGSTATE_API)' },
  token: { type: 'string', value: 'T', help: 'bearer token for --api (default: RINGSTATE_TOKEN, which keeps it out of the process list)' },
}
const filterOptions: Record<string, OptionSpec> = {
  type: { type: 'string', multiple: true, value: 'T', help: 'match events of type T (repeatable: any of them)' },
  tag: { type: 'string', multiple: true, value: 'k:v', help: 'match events carrying tag k:v (repeatable: all of them)' },
}
const pageOptions: Record<string, OptionSpec> = {
  after: { type: 'string', value: 'N', help: 'only events after position N' },
  before: { type: 'string', value: 'N', help: 'only events before position N' },
  limit: { type: 'string', value: 'N', help: 'at most N events' },
  backwards: { type: 'boolean', help: 'newest first' },
}
const helpOption: Record<string, OptionSpec> = {
  help: { type: 'boolean', short: 'h', help: 'show this help' },
  version: { type: 'boolean', help: 'print the version of ringstate' },
}

interface Parsed {
  values: Record<string, string | boolean | string[] | undefined>
  positionals: string[]
}

interface Command {
  name: string
  /** The synopsis after `ringstate <name>`. */
  synopsis: string
  summary: string
  /** Extra help text after the options. */
  notes?: string
  options: Record<string, OptionSpec>
  run(args: Parsed): Promise<number>
}

function usageLine(command: Command): string {
  return `usage: ringstate ${command.name}${command.synopsis ? ` ${command.synopsis}` : ''}`
}

function helpOf(command: Command): string {
  const rows = Object.entries(command.options).map(([name, spec]) => {
    const flag = `${spec.short ? `-${spec.short}, ` : ''}--${name}${spec.value ? ` ${spec.value}` : ''}`
    return [flag, spec.help] as const
  })
  const width = Math.max(...rows.map(([flag]) => flag.length))
  const lines = [
    usageLine(command),
    '',
    command.summary,
    '',
    'options:',
    ...rows.map(([flag, help]) => `  ${flag.padEnd(width)}  ${help}`),
  ]
  if (command.notes) lines.push('', command.notes)
  return lines.join('\n')
}

function parseCommandArgs(command: Command, argv: string[]): Parsed {
  const options: Record<string, { type: 'string' | 'boolean'; multiple?: boolean; short?: string }> = {}
  for (const [name, spec] of Object.entries(command.options)) {
    options[name] = { type: spec.type, ...(spec.multiple ? { multiple: true } : {}), ...(spec.short ? { short: spec.short } : {}) }
  }
  try {
    const { values, positionals } = parseArgs({ args: argv, options, allowPositionals: true, strict: true })
    return { values: values as Parsed['values'], positionals }
  } catch (error) {
    // parseArgs names the option in its message ("Unknown option '--x'", "Option '--after <value>'
    // argument missing"); keep that, drop Node's hint about '--' which is noise here.
    const message = (error as Error).message.replace(/\. To specify a positional argument.*$/s, '')
    throw new UsageError(message)
  }
}

const str = (parsed: Parsed, name: string): string | undefined => parsed.values[name] as string | undefined
const list = (parsed: Parsed, name: string): string[] => (parsed.values[name] as string[] | undefined) ?? []
const flag = (parsed: Parsed, name: string): boolean => parsed.values[name] === true

/** A position option (`--after 12`): a non-negative decimal integer. */
function positionOption(parsed: Parsed, name: string): bigint | undefined {
  const value = str(parsed, name)
  if (value === undefined) return undefined
  if (!/^(0|[1-9][0-9]{0,18})$/.test(value)) throw new UsageError(`--${name} takes a position (a non-negative integer), got ${JSON.stringify(value)}`)
  return BigInt(value)
}

function integerOption(parsed: Parsed, name: string, min: number, max: number): number | undefined {
  const value = str(parsed, name)
  if (value === undefined) return undefined
  const number = /^[0-9]{1,10}$/.test(value) ? Number(value) : NaN
  if (!(number >= min && number <= max)) throw new UsageError(`--${name} takes an integer from ${min} to ${max}, got ${JSON.stringify(value)}`)
  return number
}

/**
 * A JSON option. `@PATH` reads the JSON from a file and `@-` from stdin: no JSON text starts with
 * `@`, so the two cannot be confused, and large payloads need not fit on a command line.
 */
function jsonOption(parsed: Parsed, name: string): unknown {
  let value = str(parsed, name)
  if (value === undefined) return undefined
  if (value.startsWith('@')) {
    const path = value.slice(1)
    try {
      value = readFileSync(path === '-' ? 0 : path, 'utf8')
    } catch (error) {
      throw new UsageError(`--${name}: cannot read ${path === '-' ? 'stdin' : path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`)
    }
  }
  try {
    return JSON.parse(value)
  } catch (error) {
    throw new UsageError(`--${name} is not valid JSON: ${(error as Error).message}`)
  }
}

function noPositionals(parsed: Parsed, command: string): void {
  if (parsed.positionals.length > 0) throw new UsageError(`${command} takes no arguments, got ${JSON.stringify(parsed.positionals[0])}`)
}

function queryFrom(types: string[], tags: string[]): Query {
  if (types.length === 0 && tags.length === 0) return 'all'
  return [{ ...(types.length ? { types } : {}), ...(tags.length ? { tags } : {}) }]
}

/** A query given as JSON (`"all"` or an array of `{ types?, tags? }` items), checked up front. */
function queryOption(parsed: Parsed, name: string): Query {
  const query = jsonOption(parsed, name)
  if (query === 'all') return query
  if (!Array.isArray(query)) throw new UsageError(`--${name} must be "all" or an array of { types?, tags? } items`)
  return query as Query
}

/** An append condition given as JSON: `{ "failIfEventsMatch": [...], "after": "12" }`. */
function conditionOption(parsed: Parsed): AppendCondition | undefined {
  const value = jsonOption(parsed, 'condition')
  if (value === undefined) return undefined
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new UsageError('--condition must be an object { "failIfEventsMatch": [...], "after"?: "N" }')
  }
  const { failIfEventsMatch, after, ...rest } = value as Record<string, unknown>
  const extra = Object.keys(rest)[0]
  if (extra !== undefined) throw new UsageError(`--condition has an unknown field ${JSON.stringify(extra)}`)
  if (failIfEventsMatch === undefined) throw new UsageError('--condition needs failIfEventsMatch ("all" or an array of items)')
  const condition: AppendCondition = { failIfEventsMatch: failIfEventsMatch as Query }
  if (after !== undefined) {
    // As in the HTTP API: a position is a decimal string, since a JSON number loses precision.
    if (typeof after !== 'string' || !/^(0|[1-9][0-9]{0,18})$/.test(after)) {
      throw new UsageError(`--condition's after must be a position as a decimal string (like "42")`)
    }
    condition.after = BigInt(after)
  }
  return condition
}

// ---------------------------------------------------------------------------------------------
// Output

/** An event in the wire format, with its keys always in the same order. */
interface WireEvent {
  position: string
  type: string
  tags: string[]
  data: unknown
  metadata: Record<string, unknown>
  id: string
  recordedAt: string
}

function wireOf(event: SequencedEvent): WireEvent {
  return {
    position: event.position.toString(),
    type: event.type,
    tags: event.tags,
    data: event.data ?? null,
    metadata: event.metadata,
    id: event.id,
    recordedAt: event.recordedAt.toISOString(),
  }
}

function eventLine(event: WireEvent): string {
  const { position, type, tags, data, metadata, id, recordedAt } = event
  return JSON.stringify({ position, type, tags, data: data ?? null, metadata, id, recordedAt })
}

const out = (line: string) => process.stdout.write(`${line}\n`)
const err = (line: string) => process.stderr.write(`${line}\n`)

/**
 * Standard output for many lines: one write per 64 KiB, and a wait whenever the reader (a pipe,
 * a terminal) is slower than the store, so a large read never piles up in memory.
 */
class LineWriter {
  #buffer = ''

  async line(text: string): Promise<void> {
    this.#buffer += `${text}\n`
    if (this.#buffer.length >= 1 << 16) await this.flush()
  }

  async flush(): Promise<void> {
    if (this.#buffer === '') return
    const chunk = this.#buffer
    this.#buffer = ''
    if (!process.stdout.write(chunk)) await once(process.stdout, 'drain')
  }
}

/** Aborts on SIGINT or SIGTERM; a second signal exits at once. */
function stopSignal(): AbortSignal {
  const controller = new AbortController()
  for (const name of ['SIGINT', 'SIGTERM'] as const) {
    process.on(name, () => {
      if (controller.signal.aborted) process.exit(name === 'SIGINT' ? 130 : 143)
      controller.abort()
    })
  }
  return controller.signal
}

// ---------------------------------------------------------------------------------------------
// Local store and remote server

async function withStore<T>(parsed: Parsed, fn: (store: EventStore) => Promise<T>): Promise<T> {
  const store = await openStore(storeUrl(parsed))
  try {
    return await fn(store)
  } finally {
    await store.close()
  }
}

function storeUrl(parsed: Parsed): string | undefined {
  return str(parsed, 'url') ?? process.env.RINGSTATE_URL
}

/** The remote server to use, if `--api` or RINGSTATE_API names one. */
function remoteOf(parsed: Parsed, command: string): Remote | undefined {
  const api = str(parsed, 'api') ?? (str(parsed, 'url') === undefined ? process.env.RINGSTATE_API : undefined)
  const token = str(parsed, 'token') ?? process.env.RINGSTATE_TOKEN
  if (api === undefined) {
    if (str(parsed, 'token') !== undefined) throw new UsageError('--token needs --api URL (the server to send it to)')
    return undefined
  }
  if (str(parsed, 'url') !== undefined) throw new UsageError(`${command}: give --url (a local store) or --api (a server), not both`)
  return new Remote(api, token)
}

/** A ringstate server's API, as `ringstate --api URL` uses it. */
class Remote {
  readonly base: URL
  readonly token: string | undefined

  constructor(
    api: string,
    token: string | undefined,
  ) {
    this.token = token
    let base: URL
    try {
      base = new URL(api)
    } catch {
      throw new UsageError(`--api must be an http(s) URL like http://127.0.0.1:8080, got ${JSON.stringify(api)}`)
    }
    if (base.protocol !== 'http:' && base.protocol !== 'https:') throw new UsageError(`--api must be an http or https URL, got ${JSON.stringify(api)}`)
    if (!base.pathname.endsWith('/')) base.pathname += '/'
    this.base = base
  }

  url(path: string, params?: URLSearchParams): URL {
    const url = new URL(path, this.base)
    if (params) url.search = params.toString()
    return url
  }

  headers(extra: Record<string, string> = {}): Record<string, string> {
    return this.token ? { ...extra, authorization: `Bearer ${this.token}` } : extra
  }

  async fetch(url: URL, init: RequestInit): Promise<Response> {
    try {
      return await fetch(url, init)
    } catch (error) {
      if ((error as Error).name === 'AbortError') throw error
      throw new RemoteError(0, 'UNREACHABLE', `cannot reach ${this.base.origin}: ${(error as Error).message}`)
    }
  }

  async json<T>(method: 'GET' | 'POST', path: string, options: { params?: URLSearchParams; body?: unknown } = {}): Promise<T> {
    const response = await this.fetch(this.url(path, options.params), {
      method,
      headers: this.headers({ accept: 'application/json', ...(options.body === undefined ? {} : { 'content-type': 'application/json' }) }),
      ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) }),
    })
    if (!response.ok) throw await remoteError(response)
    return (await response.json()) as T
  }
}

async function remoteError(response: Response): Promise<RemoteError> {
  let problem: { title?: string; detail?: string; code?: string } = {}
  try {
    problem = (await response.json()) as typeof problem
  } catch {
    // Not problem+json (a proxy's error page): the status says enough.
  }
  const code = typeof problem.code === 'string' ? problem.code : `HTTP_${response.status}`
  const text = problem.detail || problem.title || response.statusText || 'request failed'
  return new RemoteError(response.status, code, `${response.status} ${text}`)
}

/** Reads a text/event-stream body and yields each dispatched message (the WHATWG parsing rules). */
async function* eventStream(body: ReadableStream<Uint8Array>): AsyncGenerator<{ event: string; data: string; id?: string; retry?: number }> {
  const decoder = new TextDecoder()
  let buffer = ''
  let data: string[] = []
  let event = ''
  let id: string | undefined
  let retry: number | undefined
  const reader = body.getReader()
  try {
  for (;;) {
    const { value: chunk, done } = await reader.read()
    if (done) return
    buffer += decoder.decode(chunk, { stream: true })
    let start = 0
    for (;;) {
      const newline = buffer.slice(start).search(/\r\n|\r|\n/)
      if (newline < 0) break
      const end = start + newline
      // A lone \r at the end of the buffer may be half of \r\n: wait for the next chunk.
      if (buffer[end] === '\r' && end === buffer.length - 1) break
      const line = buffer.slice(start, end)
      start = end + (buffer.startsWith('\r\n', end) ? 2 : 1)
      if (line === '') {
        if (data.length > 0 || event !== '' || id !== undefined || retry !== undefined) {
          yield { event: event || 'message', data: data.join('\n'), ...(id === undefined ? {} : { id }), ...(retry === undefined ? {} : { retry }) }
        }
        data = []
        event = ''
        id = undefined
        retry = undefined
        continue
      }
      if (line.startsWith(':')) continue
      const colon = line.indexOf(':')
      const field = colon < 0 ? line : line.slice(0, colon)
      const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '')
      if (field === 'data') data.push(value)
      else if (field === 'event') event = value
      else if (field === 'id' && !value.includes('\0')) id = value
      else if (field === 'retry' && /^[0-9]+$/.test(value)) retry = Number(value)
    }
    buffer = buffer.slice(start)
    if (buffer.length > 64 << 20) throw new RemoteError(0, 'INVALID_STREAM', 'the server sent an event larger than 64 MiB')
  }
  } finally {
    reader.releaseLock()
  }
}


// ---------------------------------------------------------------------------------------------
// Commands

const serveCommand: Command = {
  name: 'serve',
  synopsis: '[--port N] [--host H] [--url URL] [--token-file PATH]',
  summary: 'Serve the HTTP API and the browser page (/ui) over a store until SIGINT or SIGTERM.',
  notes:
    'Without --token-file every request is allowed, so only a loopback host is accepted (unless --insecure).\n' +
    'A token file holds one name:sha256:scopes line per token (scopes: read, append, admin, metrics);\n' +
    'the sha256 of a token is `printf %s "$TOKEN" | sha256sum`.',
  options: {
    port: { type: 'string', value: 'N', help: 'port to listen on (default 8080; 0 picks a free one)' },
    host: { type: 'string', value: 'H', help: 'address to bind (default 127.0.0.1)' },
    ...storeOption,
    'token-file': { type: 'string', value: 'PATH', help: 'bearer tokens with scopes, one name:sha256:scopes per line' },
    insecure: { type: 'boolean', help: 'allow a non-loopback host without tokens (anyone can read and append)' },
    ...helpOption,
  },
  async run(parsed) {
    noPositionals(parsed, 'serve')
    const port = integerOption(parsed, 'port', 0, 65535) ?? 8080
    const host = str(parsed, 'host') ?? '127.0.0.1'
    if (host === '') throw new UsageError('--host must not be empty')
    const tokenFile = str(parsed, 'token-file')
    const { serve, parseTokenFile } = await import('./http/index.ts')
    let tokens: ReturnType<typeof parseTokenFile> | undefined
    if (tokenFile !== undefined) {
      let text: string
      try {
        text = readFileSync(tokenFile, 'utf8')
      } catch (error) {
        throw new UsageError(`--token-file: cannot read ${tokenFile}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`)
      }
      try {
        tokens = parseTokenFile(text)
      } catch (error) {
        throw new UsageError(`--token-file ${tokenFile}: ${(error as Error).message}`)
      }
      if (tokens.length === 0) throw new UsageError(`--token-file ${tokenFile} holds no tokens`)
    }
    const loopback = host === 'localhost' || host === '::1' || host === '[::1]' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host)
    if (!loopback && tokens === undefined && !flag(parsed, 'insecure')) {
      throw new UsageError(`--host ${host} is not a loopback address: give --token-file, or --insecure to let anyone on the network read and append`)
    }
    // Signals are caught before anything is opened, so a stop during start-up still closes cleanly.
    const signal = stopSignal()
    const url = storeUrl(parsed)
    const store = await openStore(url)
    let server: Awaited<ReturnType<typeof serve>> | undefined
    try {
      try {
        server = await serve(store, { port, host, ...(tokens ? { tokens } : {}), insecure: flag(parsed, 'insecure') })
      } catch (error) {
        if (error instanceof RingstateError && error.code === ErrorCode.INVALID_OPTIONS) throw new UsageError(error.message)
        throw error
      }
      for (const line of banner(server.url, url, tokens?.length ?? 0, tokenFile)) out(line)
      if (!signal.aborted) await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }))
      out('stopping: ending event streams, closing the store')
    } finally {
      await server?.stop()
      await store.close()
    }
    out('stopped')
    return Exit.ok
  },
}

/** What `serve` prints: where it listens, which store it uses, and how to append a first event. */
function banner(serverUrl: string, storeUrlGiven: string | undefined, tokenCount: number, tokenFile: string | undefined): string[] {
  const base = serverUrl.endsWith('/') ? serverUrl : `${serverUrl}/`
  const auth = tokenCount > 0 ? ` -H "authorization: Bearer $RINGSTATE_TOKEN"` : ''
  const cliAuth = tokenCount > 0 ? ' --token "$RINGSTATE_TOKEN"' : ''
  const body = JSON.stringify({ events: { type: 'HelloWorld', tags: ['greeting:1'], data: { text: 'hello' } } })
  return [
    `ringstate ${version} serving ${base}`,
    `  page     ${base}ui`,
    `  api      ${base}v1/  (OpenAPI: ${base}openapi.json)`,
    `  store    ${describeStore(storeUrlGiven)}`,
    `  tokens   ${tokenCount > 0 ? `${tokenCount} from ${tokenFile}` : 'none: every request is allowed (loopback only)'}`,
    '',
    'append a first event:',
    `  curl -sS -X POST ${base}v1/append -H 'content-type: application/json'${auth} -d '${body}'`,
    `  ringstate append HelloWorld --tag greeting:1 --data '{"text":"hello"}' --api ${base}${cliAuth}`,
    '',
    'Ctrl-C stops the server.',
  ]
}

/** The store in words, with a PostgreSQL password never printed. */
function describeStore(url: string | undefined): string {
  const target = url ?? defaultStoreUrl
  const scheme = target.slice(0, Math.max(0, target.indexOf(':'))).toLowerCase()
  if (scheme === 'sqlite') {
    const path = target.slice('sqlite:'.length)
    return path === ':memory:' ? 'sqlite::memory: (in memory, gone when the server stops)' : `sqlite ${resolve(path)}`
  }
  if (scheme === 'memory') return 'memory: (gone when the server stops)'
  try {
    const parsed = new URL(target)
    if (parsed.password) parsed.password = '***'
    return `postgres ${parsed.toString()}`
  } catch {
    return scheme || target
  }
}

const appendCommand: Command = {
  name: 'append',
  synopsis: 'TYPE [--tag k:v]... [--data JSON] [--metadata JSON] [--id ID] [--condition JSON] [--url URL | --api URL]',
  summary: 'Append one event and print {"position","count","ids"}.',
  notes:
    'A condition makes the append fail (exit 3) when an event matching failIfEventsMatch exists after\n' +
    '"after" (a position as a decimal string), e.g.\n' +
    `  --condition '{"failIfEventsMatch":[{"types":["UserRegistered"],"tags":["user:ada"]}],"after":"12"}'`,
  options: {
    tag: { type: 'string', multiple: true, value: 'k:v', help: 'tag to attach (repeatable)' },
    data: { type: 'string', value: 'JSON', help: 'the event data (@FILE reads it from a file, @- from stdin)' },
    metadata: { type: 'string', value: 'JSON', help: 'the event metadata, a JSON object (@FILE, @- as for --data)' },
    id: { type: 'string', value: 'ID', help: 'idempotency id: appending the same id again returns the first result' },
    condition: { type: 'string', value: 'JSON', help: 'append only if no event matches: { "failIfEventsMatch": [...], "after"?: "N" }' },
    ...storeOption,
    ...remoteOptions,
    ...helpOption,
  },
  async run(parsed) {
    const [type, ...extra] = parsed.positionals
    if (type === undefined) throw new UsageError('append needs the event type: ringstate append TYPE')
    if (extra.length > 0) throw new UsageError(`append takes one event type, got also ${JSON.stringify(extra[0])}`)
    const data = jsonOption(parsed, 'data')
    const metadata = jsonOption(parsed, 'metadata')
    if (metadata !== undefined && (typeof metadata !== 'object' || metadata === null || Array.isArray(metadata))) {
      throw new UsageError('--metadata must be a JSON object')
    }
    const condition = conditionOption(parsed)
    const event: EventInput = {
      type,
      tags: list(parsed, 'tag'),
      ...(data === undefined ? {} : { data }),
      ...(metadata === undefined ? {} : { metadata: metadata as Record<string, unknown> }),
      ...(str(parsed, 'id') === undefined ? {} : { id: str(parsed, 'id')! }),
    }
    const remote = remoteOf(parsed, 'append')
    if (remote) {
      const body = {
        events: event,
        ...(condition === undefined
          ? {}
          : { condition: { failIfEventsMatch: condition.failIfEventsMatch, ...(condition.after === undefined ? {} : { after: condition.after.toString() }) } }),
      }
      const result = await remote.json<{ position: string; count: number; ids: string[] }>('POST', 'v1/append', { body })
      out(JSON.stringify({ position: result.position, count: result.count, ids: result.ids }))
      return Exit.ok
    }
    return withStore(parsed, async (store) => {
      const result = await store.append(event, condition)
      out(JSON.stringify({ position: result.position.toString(), count: result.count, ids: result.ids }))
      return Exit.ok
    })
  },
}

interface PageArgs {
  query: Query
  after?: bigint
  before?: bigint
  limit?: number
  backwards: boolean
}

function pageArgs(parsed: Parsed, query: Query): PageArgs {
  const after = positionOption(parsed, 'after')
  const before = positionOption(parsed, 'before')
  const limit = integerOption(parsed, 'limit', 1, Number.MAX_SAFE_INTEGER)
  return {
    query,
    backwards: flag(parsed, 'backwards'),
    ...(after === undefined ? {} : { after }),
    ...(before === undefined ? {} : { before }),
    ...(limit === undefined ? {} : { limit }),
  }
}

/** Prints a page request's events, from the local store or page by page from a server. */
async function printEvents(parsed: Parsed, page: PageArgs, command: string): Promise<number> {
  const remote = remoteOf(parsed, command)
  const output = new LineWriter()
  if (remote) {
    let printed = 0
    let after = page.after
    let before = page.before
    for (;;) {
      const body: Record<string, unknown> = { query: page.query, backwards: page.backwards }
      if (after !== undefined) body.after = after.toString()
      if (before !== undefined) body.before = before.toString()
      // The server caps a page at its readLimit; ask for what is left and follow `next`.
      if (page.limit !== undefined) body.limit = Math.min(page.limit - printed, 1_000_000)
      const result = await remote.json<{ events: WireEvent[]; next?: string }>('POST', 'v1/query', { body })
      for (const event of result.events) {
        await output.line(eventLine(event))
        printed++
        if (page.limit !== undefined && printed >= page.limit) break
      }
      if (result.next === undefined || result.events.length === 0 || (page.limit !== undefined && printed >= page.limit)) {
        await output.flush()
        return Exit.ok
      }
      if (page.backwards) before = BigInt(result.next)
      else after = BigInt(result.next)
    }
  }
  return withStore(parsed, async (store) => {
    const options: ReadOptions = {
      backwards: page.backwards,
      ...(page.after === undefined ? {} : { after: page.after }),
      ...(page.before === undefined ? {} : { before: page.before }),
      ...(page.limit === undefined ? {} : { limit: page.limit }),
    }
    for await (const event of store.read(page.query, options)) await output.line(eventLine(wireOf(event)))
    await output.flush()
    return Exit.ok
  })
}

const readCommand: Command = {
  name: 'read',
  synopsis: '[--type T]... [--tag k:v]... [--after N] [--before N] [--limit N] [--backwards] [--url URL | --api URL]',
  summary: 'Print the events matching a type and tag filter, one JSON line each.',
  notes: 'Several --type options match any of the types; several --tag options must all be on the event.',
  options: { ...filterOptions, ...pageOptions, ...storeOption, ...remoteOptions, ...helpOption },
  async run(parsed) {
    noPositionals(parsed, 'read')
    return printEvents(parsed, pageArgs(parsed, queryFrom(list(parsed, 'type'), list(parsed, 'tag'))), 'read')
  },
}

const queryCommand: Command = {
  name: 'query',
  synopsis: '--json QUERY [--after N] [--before N] [--limit N] [--backwards] [--url URL | --api URL]',
  summary: 'Print the events of a DCB query given as JSON, one JSON line each.',
  notes:
    'QUERY is "all" or an array of items; an event matches an item when its type is one of the\n' +
    'item\'s types (if any) and it carries all the item\'s tags; it matches the query when any item does:\n' +
    `  ringstate query --json '[{"types":["OrderPlaced"],"tags":["customer:7"]},{"tags":["order:42"]}]'`,
  options: {
    json: { type: 'string', value: 'QUERY', help: 'the query: "all" or [{ "types"?: [...], "tags"?: [...] }, ...]' },
    ...pageOptions,
    ...storeOption,
    ...remoteOptions,
    ...helpOption,
  },
  async run(parsed) {
    noPositionals(parsed, 'query')
    if (str(parsed, 'json') === undefined) throw new UsageError('query needs --json QUERY ("all" or an array of items)')
    return printEvents(parsed, pageArgs(parsed, queryOption(parsed, 'json')), 'query')
  },
}

const tailCommand: Command = {
  name: 'tail',
  synopsis: '[--type T]... [--tag k:v]... [--after N] [--url URL | --api URL]',
  summary: 'Print the matching events after --after (default: from the first), then each new one as it is appended, until Ctrl-C.',
  notes: 'Only new events: --after "$(ringstate head)". Against a server, a dropped stream is resumed where it stopped.',
  options: {
    ...filterOptions,
    after: pageOptions.after!,
    ...storeOption,
    ...remoteOptions,
    ...helpOption,
  },
  async run(parsed) {
    noPositionals(parsed, 'tail')
    const query = queryFrom(list(parsed, 'type'), list(parsed, 'tag'))
    const after = positionOption(parsed, 'after')
    const remote = remoteOf(parsed, 'tail')
    const signal = stopSignal()
    if (remote) return tailRemote(remote, list(parsed, 'type'), list(parsed, 'tag'), after, signal)
    return withStore(parsed, async (store) => {
      try {
        for await (const event of store.subscribe(query, { ...(after === undefined ? {} : { after }), signal })) out(eventLine(wireOf(event)))
      } catch (error) {
        if (!signal.aborted) throw error
      }
      return Exit.ok
    })
  },
}

async function tailRemote(remote: Remote, types: string[], tags: string[], after: bigint | undefined, signal: AbortSignal): Promise<number> {
  let last = after?.toString()
  let retryMs = 2000
  let failures = 0
  while (!signal.aborted) {
    try {
      const params = new URLSearchParams()
      for (const type of types) params.append('type', type)
      for (const tag of tags) params.append('tag', tag)
      if (last !== undefined) params.set('after', last)
      const response = await remote.fetch(remote.url('v1/subscribe', params), {
        headers: remote.headers({ accept: 'text/event-stream', ...(last === undefined ? {} : { 'last-event-id': last }) }),
        signal,
      })
      if (!response.ok) throw await remoteError(response)
      for await (const message of eventStream(response.body!)) {
        failures = 0
        if (message.retry !== undefined) retryMs = message.retry
        if (message.id !== undefined && /^[0-9]+$/.test(message.id)) last = message.id
        if (message.event === 'message' && message.data !== '') out(eventLine(JSON.parse(message.data) as WireEvent))
      }
      if (signal.aborted) break
      err(`ringstate: the server ended the stream; resuming after ${last ?? 'the start'}`)
    } catch (error) {
      if (signal.aborted) break
      // A refused token or a bad filter will not get better by retrying; a restart or an overload will.
      if (error instanceof RemoteError && error.status !== 0 && error.status < 500 && error.status !== 429) throw error
      failures++
      err(`ringstate: ${(error as Error).message}; retrying in ${Math.round((retryMs * Math.min(failures, 15)) / 1000)} s`)
    }
    await abortableDelay(retryMs * Math.max(1, Math.min(failures, 15)), signal)
  }
  return Exit.ok
}

const headCommand: Command = {
  name: 'head',
  synopsis: '[--url URL | --api URL]',
  summary: 'Print the position of the newest event (0 when the store is empty).',
  options: { ...storeOption, ...remoteOptions, ...helpOption },
  async run(parsed) {
    noPositionals(parsed, 'head')
    const remote = remoteOf(parsed, 'head')
    if (remote) {
      const { head } = await remote.json<{ head: string }>('GET', 'v1/head')
      out(head)
      return Exit.ok
    }
    return withStore(parsed, async (store) => {
      out((await store.head()).toString())
      return Exit.ok
    })
  },
}

const migrateCommand: Command = {
  name: 'migrate',
  synopsis: '[--url URL]',
  summary: 'Create or upgrade the store schema, then exit (opening a store migrates it).',
  options: { ...storeOption, ...helpOption },
  async run(parsed) {
    noPositionals(parsed, 'migrate')
    return withStore(parsed, async (store) => {
      out(`schema is current: ${describeStore(storeUrl(parsed))}, head ${await store.head()}`)
      return Exit.ok
    })
  },
}

interface ShardWire {
  name: string
  version: number
  partition: number
  state: string
  position: string
  head: string
  lag: string
  owner?: string
  errorCount: number
  lastError?: string
}

const projectionsCommand: Command = {
  name: 'projections',
  synopsis: 'list | pause NAME | resume NAME | rebuild NAME',
  summary: 'Show or control the live projections of a running server (through its API).',
  notes:
    'Projections are code of the application that runs them, so this goes through the server that\n' +
    'runs them: list needs the read scope, pause/resume/rebuild the admin scope.\n' +
    'The server is --api, else RINGSTATE_API, else http://127.0.0.1:8080.',
  options: {
    ...remoteOptions,
    json: { type: 'boolean', help: 'list: print the status as JSON instead of a table' },
    ...helpOption,
  },
  async run(parsed) {
    const [action, name, ...extra] = parsed.positionals
    const actions = ['list', 'pause', 'resume', 'rebuild']
    if (action === undefined || !actions.includes(action)) {
      throw new UsageError(`projections needs one of ${actions.join(', ')}${action === undefined ? '' : `, got ${JSON.stringify(action)}`}`)
    }
    if (action === 'list' ? name !== undefined : name === undefined || extra.length > 0) {
      throw new UsageError(action === 'list' ? 'projections list takes no name' : `projections ${action} needs exactly one projection NAME`)
    }
    const remote = new Remote(
      str(parsed, 'api') ?? process.env.RINGSTATE_API ?? 'http://127.0.0.1:8080/',
      str(parsed, 'token') ?? process.env.RINGSTATE_TOKEN,
    )
    if (action === 'list') {
      let shards: ShardWire[]
      try {
        shards = (await remote.json<{ projections: ShardWire[] }>('GET', 'v1/projections')).projections
      } catch (error) {
        // 404 is how a server without a projection runner answers: there are none to show.
        if (!(error instanceof RemoteError && error.status === 404)) throw error
        shards = []
      }
      if (flag(parsed, 'json')) out(JSON.stringify(shards))
      else if (shards.length === 0) out('no projections run on this server')
      else for (const line of table(shards)) out(line)
      return Exit.ok
    }
    const result = await remote.json<{ projections: ShardWire[] }>('POST', `v1/projections/${encodeURIComponent(name!)}/${action}`)
    if (flag(parsed, 'json')) out(JSON.stringify(result.projections))
    else for (const line of table(result.projections)) out(line)
    return Exit.ok
  },
}

function table(shards: readonly ShardWire[]): string[] {
  const header = ['NAME', 'VERSION', 'PARTITION', 'STATE', 'POSITION', 'LAG', 'OWNER', 'ERRORS', 'LAST ERROR']
  const rows = shards.map((s) => [
    s.name,
    String(s.version),
    String(s.partition),
    s.state,
    s.position,
    s.lag,
    s.owner ?? '',
    String(s.errorCount),
    (s.lastError ?? '').replace(/\s+/g, ' ').slice(0, 80),
  ])
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)))
  const format = (row: string[]) => row.map((cell, i) => cell.padEnd(widths[i]!)).join('  ').trimEnd()
  return [format(header), ...rows.map(format)]
}

const benchCommand: Command = {
  name: 'bench',
  synopsis: '[NAME...]',
  summary: 'Run the mitata benchmarks of bench/ (all, or the named ones).',
  options: { ...helpOption },
  async run(parsed) {
    const child = Bun.spawn([process.execPath, `${import.meta.dir}/../bench/run.ts`, ...parsed.positionals], { stdio: ['inherit', 'inherit', 'inherit'] })
    return await child.exited
  },
}

const commands: readonly Command[] = [
  serveCommand,
  appendCommand,
  readCommand,
  queryCommand,
  tailCommand,
  headCommand,
  migrateCommand,
  projectionsCommand,
  benchCommand,
]

function mainHelp(): string {
  const width = Math.max(...commands.map((c) => c.name.length))
  return [
    'usage: ringstate <command> [options]',
    '',
    'commands:',
    ...commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary.split('\n')[0]}`),
    '',
    '`ringstate <command> --help` shows the options of a command. `ringstate --version` prints the version.',
    'Exit codes: 0 ok, 1 error, 2 usage, 3 conflict (an append whose condition failed).',
  ].join('\n')
}

/**
 * Runs one command line and resolves to its exit code; errors are printed, never thrown.
 *
 * @example
 * process.exitCode = await main(['head', '--url', 'sqlite:./events.db'])
 */
export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv
  if (name === undefined) {
    err(mainHelp())
    return Exit.usage
  }
  if (name === '--help' || name === '-h' || name === 'help') {
    const topic = name === 'help' ? commands.find((c) => c.name === rest[0]) : undefined
    out(topic ? helpOf(topic) : mainHelp())
    return Exit.ok
  }
  if (name === '--version' || name === '-v') {
    out(version)
    return Exit.ok
  }
  const command = commands.find((c) => c.name === name)
  if (command === undefined) {
    err(`ringstate: unknown command ${JSON.stringify(name)}\n\n${mainHelp()}`)
    return Exit.usage
  }
  try {
    const parsed = parseCommandArgs(command, rest)
    if (flag(parsed, 'help')) {
      out(helpOf(command))
      return Exit.ok
    }
    if (flag(parsed, 'version')) {
      out(version)
      return Exit.ok
    }
    return await command.run(parsed)
  } catch (error) {
    if (error instanceof UsageError) {
      err(`ringstate ${command.name}: ${error.message}\n${usageLine(command)}\n(ringstate ${command.name} --help lists every option)`)
      return Exit.usage
    }
    if (error instanceof RemoteError) {
      err(`ringstate ${command.name}: ${error.message}${error.status === 0 ? '' : ` [${error.code}]`}`)
      return error.code === ErrorCode.APPEND_CONDITION_FAILED ? Exit.conflict : Exit.error
    }
    if (error instanceof RingstateError) {
      err(`ringstate ${command.name}: ${error.message} [${error.code}]`)
      return error.code === ErrorCode.APPEND_CONDITION_FAILED ? Exit.conflict : Exit.error
    }
    err(`ringstate ${command.name}: ${(error as Error)?.message ?? String(error)}`)
    return Exit.error
  }
}

if (import.meta.main) {
  // `ringstate read | head` closes the pipe early: that is a normal end, not an error.
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') process.exit(Exit.ok)
    throw error
  })
  // exitCode, not exit(): let pending writes to a pipe finish first.
  process.exitCode = await main(process.argv.slice(2))
}
