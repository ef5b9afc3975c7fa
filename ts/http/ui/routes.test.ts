import { expect, test } from 'bun:test'
import { Hono } from 'hono'
import { uiContentSecurityPolicy, uiRoutes } from './index.ts'

const app = new Hono().route('/', uiRoutes())

test('the page, its module and its stylesheet are served with the strict policy', async () => {
  for (const [path, type] of [['/ui', 'text/html'], ['/ui/app.js', 'text/javascript'], ['/ui/style.css', 'text/css']] as const) {
    const response = await app.request(path)
    expect(response.status).toBe(200)
    expect(response.headers.get('content-type')).toStartWith(type)
    expect(response.headers.get('content-security-policy')).toBe(uiContentSecurityPolicy)
    expect(response.headers.get('x-content-type-options')).toBe('nosniff')
  }
  expect(uiContentSecurityPolicy).toBe(
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  )
})

test('the page has no inline script, no inline style and nothing from another origin', async () => {
  const html = await (await app.request('/ui')).text()
  const scripts = [...html.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/g)]
  expect(scripts.map((m) => [m[1]!.trim(), m[2]])).toEqual([['type="module" src="ui/app.js"', '']])
  expect(html).not.toMatch(/\sstyle=|<style|\son[a-z]+=|https?:\/\//)
  // Data goes into the page as text only: no HTML parsing sink anywhere in the module's code.
  const code = (await (await app.request('/ui/app.js')).text()).replace(/^\s*\/\/.*$/gm, '')
  const sinks = code.match(/innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(|new Function|setHTML/g)
  expect(sinks).toBeNull()
})

test('a repeated request with the ETag is answered 304 without a body', async () => {
  const first = await app.request('/ui/app.js')
  const etag = first.headers.get('etag')!
  const second = await app.request('/ui/app.js', { headers: { 'If-None-Match': etag } })
  expect(second.status).toBe(304)
  expect(await second.text()).toBe('')
})

test('/ui/ redirects to /ui so the relative asset links resolve', async () => {
  const response = await app.request('/ui/')
  expect(response.status).toBe(301)
  expect(new URL(response.headers.get('location')!, 'http://x/ui/').pathname).toBe('/ui')
})
