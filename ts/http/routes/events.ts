/**
 * The log: `GET /v1/head`, `POST /v1/append`, `GET /v1/events`, `POST /v1/query`,
 * `GET /v1/commands`.
 */
import { Hono } from 'hono'
import { ErrorCode, InvalidConditionError, InvalidEventError, InvalidQueryError } from '../../errors.ts'
import { jsonPageOf } from '../../store/core/event-json.ts'
import { readJsonPage, type JsonPageOptions, type JsonPageReader } from '../../store/core/store.ts'
import type { EventInput, EventStore } from '../../store/types.ts'
import { MAX_ID_LENGTH } from '../../store/validate.ts'
import { requireScope } from '../auth.ts'
import type { AppDeps } from '../context.ts'
import { isRingstateError, problemResponse } from '../problem.ts'
import {
  conditionFromBody,
  pageFromBody,
  pageFromParams,
  pageBody,
  parseIfMatch,
  parseLimit,
  parsePosition,
  readJson,
  recordOf,
  type PageRequest,
} from '../wire.ts'

const json = { 'content-type': 'application/json' }

/** Longest `Idempotency-Key`: room is left for `:<index>` within the store's id limit. */
const MAX_KEY_LENGTH = MAX_ID_LENGTH - 8

/**
 * One page of events, and the cursor of the next page when there is one. A ringstate store gives
 * the page as JSON text (data and metadata as the JSON text it stored, never parsed; on SQLite
 * built by SQLite itself); any other EventStore's events are turned into records first.
 */
async function readPage(store: EventStore<any>, page: PageRequest): Promise<Response> {
  // No abort signal: a page is bounded by readLimit, and watching a signal measurably slows every read.
  const options: JsonPageOptions = {
    ...(page.after === undefined ? {} : { after: page.after }),
    ...(page.before === undefined ? {} : { before: page.before }),
    limit: page.limit,
    backwards: page.backwards,
  }
  const events = readJsonPage in store
    ? await (store as EventStore<any> & JsonPageReader)[readJsonPage](page.query, options)
    // One event more than asked tells whether a next page exists without a second query.
    : jsonPageOf((await store.query(page.query, { ...options, limit: page.limit + 1 })).map(recordOf), page.limit)
  return new Response(pageBody(events), { headers: json })
}

/** The sub-app of the log's routes, mounted at `/v1`. */
export function eventRoutes(deps: AppDeps): Hono {
  const { store, tokens, options, metrics } = deps
  const app = new Hono()
  const read = requireScope(tokens, 'read')

  app.get('/head', read, async (c) => {
    const head = await store.head()
    return new Response(`{"head":"${head}"}`, { headers: { ...json, etag: `"${head}"` } })
  })

  app.post('/append', requireScope(tokens, 'append'), async (c) => {
    const body = await readJson(c.req.raw, options.maxBodyBytes, (m) => new InvalidEventError(m))
    if (typeof body !== 'object' || body === null || Array.isArray(body)) {
      throw new InvalidEventError('the body must be an object { events, condition? }')
    }
    const { events, condition: given } = body as { events?: unknown; condition?: unknown }
    if (events === undefined) throw new InvalidEventError('events is required: one event or an array of events')
    let list = (Array.isArray(events) ? events : [events]) as EventInput[]

    const key = c.req.header('idempotency-key')
    if (key !== undefined) {
      if (key.length === 0 || key.length > MAX_KEY_LENGTH) {
        throw new InvalidEventError(`Idempotency-Key must have 1..${MAX_KEY_LENGTH} characters`)
      }
      list = list.map((event, i) =>
        typeof event === 'object' && event !== null && !Array.isArray(event) && event.id === undefined
          ? { ...event, id: `${key}:${i}` }
          : event,
      )
    }

    const condition = given === undefined ? undefined : conditionFromBody(given)
    const ifMatch = c.req.header('if-match')
    if (ifMatch !== undefined) {
      if (condition === undefined) {
        throw new InvalidConditionError('If-Match needs a condition with failIfEventsMatch in the body')
      }
      const after = parseIfMatch(ifMatch)
      if (condition.after !== undefined && condition.after !== after) {
        throw new InvalidConditionError('If-Match and condition.after name different positions')
      }
      condition.after = after
    }

    // An append whose every event has an id may be a retry answered from the first result; it was
    // one exactly when its events were already stored before this request began.
    const replayable = list.length > 0 && list.every((event) => typeof event === 'object' && event !== null && event.id !== undefined)
    const headBefore = replayable ? await store.head() : undefined

    let result
    try {
      result = await store.append(list, condition)
    } catch (error) {
      if (isRingstateError(error) && error.code === ErrorCode.APPEND_CONDITION_FAILED) {
        metrics.conflicts.inc()
        if (ifMatch !== undefined) return problemResponse(error, { preconditioned: true })
      }
      throw error
    }
    const replayed = headBefore !== undefined && result.position <= headBefore
    metrics.appends.inc()
    if (!replayed) metrics.eventsAppended.inc(result.count)
    return new Response(
      `{"position":"${result.position}","count":${result.count},"ids":${JSON.stringify(result.ids)}}`,
      { status: replayed ? 200 : 201, headers: { ...json, etag: `"${result.position}"` } },
    )
  })

  app.get('/events', read, async (c) => {
    const page = pageFromParams(new URL(c.req.url), options.readLimit)
    return readPage(store, page)
  })

  app.post('/query', read, async (c) => {
    const body = await readJson(c.req.raw, options.maxBodyBytes, (m) => new InvalidQueryError(m))
    return readPage(store, pageFromBody(body, options.readLimit))
  })

  app.get('/commands', read, async (c) => {
    const after = c.req.query('after')
    const limit = parseLimit(c.req.query('limit'), options.readLimit)
    const commands = await store.commands({
      ...(after === undefined ? {} : { after: parsePosition(after, 'after', (m) => new InvalidQueryError(m)) }),
      limit: limit + 1,
    })
    let next: string | undefined
    if (commands.length > limit) {
      commands.length = limit
      next = commands[limit - 1]!.id.toString()
    }
    const wire = commands.map((command) => ({
      id: command.id.toString(),
      type: command.type,
      data: command.data,
      metadata: command.metadata,
      position: command.position.toString(),
      recordedAt: command.recordedAt.toISOString(),
    }))
    return c.json(next === undefined ? { commands: wire } : { commands: wire, next })
  })

  return app
}
