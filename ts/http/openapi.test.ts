/** The OpenAPI document lists exactly the routes the app registers, no more, no fewer. */
import { expect, test } from 'bun:test'
import { MemoryStore } from '../store/index.ts'
import { createApp } from './index.ts'
import { openApiPath } from './openapi.ts'

function appOperations(app: ReturnType<typeof createApp>): string[] {
  const operations = new Set<string>()
  for (const route of app.routes) {
    // Middleware is registered as ALL; only routes with a method are operations.
    if (route.method !== 'ALL') operations.add(`${route.method.toLowerCase()} ${openApiPath(route.path)}`)
  }
  return [...operations].sort()
}

test.each([true, false])('/openapi.json is OpenAPI 3.1 and lists exactly the operations the app routes (ui: %p)', async (ui) => {
  const store = new MemoryStore()
  const app = createApp(store, { ui })
  expect(app.routes.some((route) => route.path === '/ui')).toBe(ui)
  const response = await app.request('/openapi.json')
  expect(response.status).toBe(200)
  const document = (await response.json()) as { openapi: string; paths: Record<string, Record<string, unknown>> }
  expect(document.openapi).toBe('3.1.0')
  const documented = Object.entries(document.paths)
    .flatMap(([path, operations]) => Object.keys(operations).map((method) => `${method} ${path}`))
    .sort()
  expect(documented).toEqual(appOperations(app))
  expect(documented.length).toBeGreaterThan(14)
  await store.close()
})

test('every documented operation that needs a scope says which, and every error response is problem+json', async () => {
  const store = new MemoryStore()
  const document = (await (await createApp(store).request('/openapi.json')).json()) as {
    paths: Record<string, Record<string, { security?: unknown; responses: Record<string, { content?: Record<string, unknown> }> }>>
  }
  for (const [path, operations] of Object.entries(document.paths)) {
    for (const [method, operation] of Object.entries(operations)) {
      const isPublic = path.startsWith('/health') || path === '/openapi.json' || path.startsWith('/ui')
      expect({ path, method, secured: operation.security !== undefined }).toEqual({ path, method, secured: !isPublic })
      for (const [status, response] of Object.entries(operation.responses)) {
        if (Number(status) >= 400) expect(Object.keys(response.content ?? {})).toEqual(['application/problem+json'])
      }
    }
  }
  await store.close()
})
