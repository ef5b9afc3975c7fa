/**
 * The OpenAPI 3.1 description of the app, served at `/openapi.json`. Written by hand next to the
 * routes; a test holds it to exactly the set of routes the app registers.
 */

type Json = Record<string, unknown>

const ref = (name: string): Json => ({ $ref: `#/components/schemas/${name}` })
const problem = (description: string): Json => ({
  description,
  content: { 'application/problem+json': { schema: ref('Problem') } },
})
const jsonBody = (schema: Json, description = 'OK'): Json => ({ description, content: { 'application/json': { schema } } })
const param = (name: string, where: 'query' | 'path' | 'header', description: string, schema: Json = { type: 'string' }, required = where === 'path'): Json => ({
  name,
  in: where,
  required,
  description,
  schema,
})
const positionParam = (name: string, description: string): Json => param(name, 'query', description, ref('Position'))
const security = (scope: string): Json[] => [{ bearer: [scope] }, {}]
const errors = { '400': problem('Invalid input'), '401': problem('No or unknown token'), '403': problem('Token lacks the scope') }

const readParams = [
  param('type', 'query', 'Event type (repeatable; with tag, one query item)', { type: 'array', items: { type: 'string' } }),
  param('tag', 'query', 'Tag the events must carry (repeatable)', { type: 'array', items: { type: 'string' } }),
  param('query', 'query', 'The whole query as URL-encoded JSON ("all" or an array of items); not with type/tag'),
  positionParam('after', 'Only events after this position'),
]
const waitHeaders = [
  param('Prefer', 'header', 'wait=<seconds>: wait (up to 60 s) for Ringstate-Min-Position'),
  param('Ringstate-Min-Position', 'header', 'Answer only once this position is reflected', ref('Position')),
]

/** The operations of the API itself (the page's routes are added from its sub-app). */
const apiPaths: Record<string, Record<string, Json>> = {
  '/health/live': { get: { summary: 'Liveness', responses: { '200': jsonBody({ type: 'object', properties: { status: { const: 'ok' } } }) } } },
  '/health/ready': {
    get: {
      summary: 'Readiness: the store answers and no projection is faulted',
      responses: { '200': jsonBody({ type: 'object', properties: { status: { const: 'ok' } } }), '503': problem('Not ready') },
    },
  },
  '/metrics': {
    get: {
      summary: 'Prometheus metrics',
      security: security('metrics'),
      responses: { '200': { description: 'Prometheus text', content: { 'text/plain': { schema: { type: 'string' } } } }, ...errors },
    },
  },
  '/openapi.json': { get: { summary: 'This document', responses: { '200': jsonBody({ type: 'object' }) } } },
  '/v1/head': {
    get: {
      summary: 'The position of the last event',
      security: security('read'),
      responses: { '200': jsonBody({ type: 'object', required: ['head'], properties: { head: ref('Position') } }), ...errors },
    },
  },
  '/v1/append': {
    post: {
      summary: 'Append events, all or nothing, optionally under a condition',
      security: security('append'),
      parameters: [
        param('Idempotency-Key', 'header', 'Events without an id get the ids <key>:0, <key>:1, ... (by index)'),
        param('If-Match', 'header', '"N": sets condition.after to N; a conflict is then 412'),
      ],
      requestBody: {
        required: true,
        content: {
          'application/json': {
            schema: {
              type: 'object',
              required: ['events'],
              properties: {
                events: { oneOf: [ref('EventInput'), { type: 'array', items: ref('EventInput') }] },
                condition: ref('AppendCondition'),
              },
            },
          },
        },
      },
      responses: {
        '201': jsonBody(ref('AppendResult'), 'Appended'),
        '200': jsonBody(ref('AppendResult'), 'Every event id was stored already: the first result'),
        ...errors,
        '409': problem('APPEND_CONDITION_FAILED'),
        '412': problem('APPEND_CONDITION_FAILED under If-Match'),
        '413': problem('PAYLOAD_TOO_LARGE'),
        '429': problem('OVERLOADED: the append queue is full'),
        '503': problem('STORE_CLOSED or STORAGE_ERROR'),
      },
    },
  },
  '/v1/events': {
    get: {
      summary: 'A page of events',
      security: security('read'),
      parameters: [
        ...readParams,
        positionParam('before', 'Only events before this position'),
        param('limit', 'query', 'Page size (at most readLimit)', { type: 'integer', minimum: 1 }),
        param('backwards', 'query', 'Newest first', { type: 'boolean' }),
      ],
      responses: { '200': jsonBody(ref('Page')), ...errors },
    },
  },
  '/v1/query': {
    post: {
      summary: 'A page of events for a query given as JSON',
      security: security('read'),
      requestBody: {
        required: true,
        content: {
          'application/json': {
            schema: {
              type: 'object',
              required: ['query'],
              properties: {
                query: ref('Query'),
                after: ref('Position'),
                before: ref('Position'),
                limit: { type: 'integer', minimum: 1 },
                backwards: { type: 'boolean' },
              },
            },
          },
        },
      },
      responses: { '200': jsonBody(ref('Page')), ...errors },
    },
  },
  '/v1/subscribe': {
    get: {
      summary: 'Server-sent events: catch up, `caught-up`, then live; heartbeats when idle',
      security: security('read'),
      parameters: [...readParams, param('Last-Event-ID', 'header', 'Resume after this position (wins over after)', ref('Position'))],
      responses: {
        '200': { description: 'An event stream', content: { 'text/event-stream': { schema: { type: 'string' } } } },
        ...errors,
        '503': problem('OVERLOADED: too many streams'),
      },
    },
  },
  '/v1/commands': {
    get: {
      summary: 'The commands audit table, oldest first',
      security: security('read'),
      parameters: [positionParam('after', 'Only commands after this id'), param('limit', 'query', 'Page size', { type: 'integer', minimum: 1 })],
      responses: {
        '200': jsonBody({
          type: 'object',
          required: ['commands'],
          properties: { commands: { type: 'array', items: ref('Command') }, next: ref('Position') },
        }),
        ...errors,
      },
    },
  },
  '/v1/caches/{name}/{key}': {
    get: {
      summary: "One entity's state from a state cache",
      security: security('read'),
      parameters: [param('name', 'path', 'Cache name'), param('key', 'path', 'Entity key'), ...waitHeaders],
      responses: {
        '200': jsonBody({ type: 'object', required: ['key', 'state', 'position'], properties: { key: { type: 'string' }, state: {}, position: ref('Position') } }),
        ...errors,
        '404': problem('NOT_FOUND'),
        '504': problem('WAIT_TIMEOUT'),
      },
    },
  },
  '/v1/projections': {
    get: {
      summary: "The projection runner's status, one row per shard",
      security: security('read'),
      parameters: waitHeaders,
      responses: { '200': jsonBody(ref('Projections')), ...errors, '404': problem('No runner configured'), '504': problem('WAIT_TIMEOUT') },
    },
  },
}
for (const action of ['pause', 'resume', 'rebuild']) {
  apiPaths[`/v1/projections/{name}/${action}`] = {
    post: {
      summary: `${action[0]!.toUpperCase()}${action.slice(1)} a projection`,
      security: security('admin'),
      parameters: [param('name', 'path', 'Projection name')],
      responses: {
        [action === 'rebuild' ? '202' : '200']: jsonBody(ref('Projections')),
        ...errors,
        '404': problem('NOT_FOUND'),
      },
    },
  }
}

const schemas: Json = {
  Position: { type: 'string', pattern: '^(0|[1-9][0-9]{0,18})$', description: 'A position as a decimal string' },
  Query: {
    oneOf: [
      { const: 'all' },
      {
        type: 'array',
        minItems: 1,
        items: {
          type: 'object',
          properties: { types: { type: 'array', items: { type: 'string' } }, tags: { type: 'array', items: { type: 'string' } } },
        },
      },
    ],
  },
  EventInput: {
    type: 'object',
    required: ['type'],
    properties: {
      type: { type: 'string', minLength: 1, maxLength: 128 },
      tags: { type: 'array', items: { type: 'string', minLength: 1, maxLength: 256 } },
      data: {},
      metadata: { type: 'object' },
      id: { type: 'string', minLength: 1, maxLength: 256 },
    },
  },
  Event: {
    type: 'object',
    required: ['position', 'type', 'tags', 'data', 'metadata', 'id', 'recordedAt'],
    properties: {
      position: ref('Position'),
      type: { type: 'string' },
      tags: { type: 'array', items: { type: 'string' } },
      data: {},
      metadata: { type: 'object' },
      id: { type: 'string' },
      recordedAt: { type: 'string', format: 'date-time' },
    },
  },
  AppendCondition: {
    type: 'object',
    required: ['failIfEventsMatch'],
    properties: { failIfEventsMatch: ref('Query'), after: ref('Position') },
  },
  AppendResult: {
    type: 'object',
    required: ['position', 'count', 'ids'],
    properties: { position: ref('Position'), count: { type: 'integer' }, ids: { type: 'array', items: { type: 'string' } } },
  },
  Page: {
    type: 'object',
    required: ['events'],
    properties: { events: { type: 'array', items: ref('Event') }, next: ref('Position') },
  },
  Command: {
    type: 'object',
    properties: {
      id: ref('Position'),
      type: { type: 'string' },
      data: {},
      metadata: { type: 'object' },
      position: ref('Position'),
      recordedAt: { type: 'string', format: 'date-time' },
    },
  },
  Projections: {
    type: 'object',
    properties: {
      projections: {
        type: 'array',
        items: {
          type: 'object',
          properties: {
            name: { type: 'string' },
            version: { type: 'integer' },
            partition: { type: 'integer' },
            state: { type: 'string' },
            position: ref('Position'),
            head: ref('Position'),
            lag: ref('Position'),
            owner: { type: 'string' },
            errorCount: { type: 'integer' },
            lastError: { type: 'string' },
          },
        },
      },
    },
  },
  Problem: {
    type: 'object',
    required: ['type', 'title', 'status', 'detail', 'code'],
    properties: {
      type: { type: 'string' },
      title: { type: 'string' },
      status: { type: 'integer' },
      detail: { type: 'string' },
      code: { type: 'string' },
      conflict: ref('Position'),
    },
  },
}

/** Hono's `/a/:b` as OpenAPI's `/a/{b}`. */
export function openApiPath(path: string): string {
  return path.replace(/:([A-Za-z0-9_]+)/g, '{$1}')
}

/**
 * The OpenAPI 3.1 document. `pageRoutes` are the GET paths of the browser page's sub-app, listed
 * as plain HTML/asset routes.
 */
export function openApiDocument(pageRoutes: readonly string[] = []): Json {
  const paths: Record<string, Record<string, Json>> = { ...apiPaths }
  for (const path of pageRoutes) {
    paths[openApiPath(path)] = { get: { summary: 'The browser page and its assets', responses: { '200': { description: 'OK' } } } }
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'ringstate',
      version: '1',
      description: 'The ringstate event store over HTTP. Positions are decimal strings; every error is application/problem+json.',
    },
    paths,
    components: {
      schemas,
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'Scopes: read, append, admin, metrics' } },
    },
  }
}
