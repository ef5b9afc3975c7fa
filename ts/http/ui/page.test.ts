/**
 * The page at /ui in a real headless Chromium (Debian's `chromium`, driven by playwright-core),
 * against the real server (`serve`) over a real store. No skip: without a browser this fails, on
 * CI and locally alike (`apt-get install chromium`, or RINGSTATE_CHROMIUM=/path/to/chrome).
 *
 * RINGSTATE_UPDATE_SCREENSHOT=1 also writes the screenshot the README shows (docs/ui.png); without
 * it the screenshot is taken and checked but not written, so a test run leaves the tree clean.
 */
import { afterAll, beforeAll, expect, test } from 'bun:test'
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { chromium, type BrowserContext, type Page } from 'playwright-core'
import { openStore } from '../../store/open.ts'
import type { EventInput, EventStore } from '../../store/types.ts'
import { Hono } from 'hono'
import { createApp, serve, type RunningServer } from '../index.ts'
import { defineProjection } from '../../projections/index.ts'
import { serveProjections } from '../../testing/projection-server.ts'

const executablePath = process.env.RINGSTATE_CHROMIUM ?? '/usr/bin/chromium'
const chromiumArgs = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
]
/** How long the page may take to show something that is already on the server. */
const SECONDS = 10_000

let profile: string
let browser: BrowserContext
let store: EventStore
let server: RunningServer

beforeAll(async () => {
  if (!existsSync(executablePath)) {
    throw new Error(`no Chromium at ${executablePath}: install it (apt-get install chromium) or set RINGSTATE_CHROMIUM`)
  }
  profile = mkdtempSync(join(tmpdir(), 'ringstate-chromium-'))
  browser = await chromium.launchPersistentContext(profile, {
    executablePath,
    headless: true,
    args: chromiumArgs,
    viewport: { width: 1400, height: 860 },
    deviceScaleFactor: 1,
    colorScheme: 'light',
  })
  store = await openStore('memory:')
  await store.append(seedEvents())
  server = await serve(store, { port: 0 })
})

afterAll(async () => {
  await browser?.close()
  await server?.stop()
  await store?.close()
  if (profile) rmSync(profile, { recursive: true, force: true })
})

const HOSTILE = '<img src=x onerror="window.__ringstatePwned = true">'
const HOSTILE_TYPE = '<svg onload="window.__ringstatePwned = true">'
const HOSTILE_TAG = 'note:<img src=y onerror="window.__ringstatePwned = true">'

/** A shop's first minutes: 64 events, one of them carrying markup that must never run. */
function seedEvents(): EventInput[] {
  const events: EventInput[] = []
  const customers = ['ada', 'grace', 'linus', 'barbara']
  for (let order = 1; order <= 16; order++) {
    const customer = customers[order % customers.length]!
    const tags = [`order:${order}`, `customer:${customer}`]
    const meta = { correlationId: `req-${1000 + order}`, user: customer }
    events.push(
      { type: 'OrderPlaced', tags, data: { orderId: `o-${order}`, lines: [{ sku: 'KB-01', qty: 1 + (order % 3), price: 49.5 }], total: 49.5 * (1 + (order % 3)) }, metadata: meta },
      { type: 'PaymentCaptured', tags, data: { orderId: `o-${order}`, amount: 49.5 * (1 + (order % 3)), method: order % 2 ? 'card' : 'sepa' }, metadata: meta },
      { type: 'OrderShipped', tags, data: { orderId: `o-${order}`, carrier: order % 2 ? 'DHL' : 'UPS', tracking: `TRK${70000 + order}` }, metadata: meta },
    )
    if (order === 1) events.push({ type: 'NoteAdded', tags, data: { note: HOSTILE }, metadata: { user: '<b>mallory</b>' } })
    else if (order === 2) events.push({ type: HOSTILE_TYPE, tags: [HOSTILE_TAG], data: { note: 'markup in the type and a tag' } })
    else events.push({ type: 'CustomerNotified', tags: [`customer:${customer}`], data: { channel: 'email', template: 'order-update' }, metadata: meta })
  }
  return events
}

async function openPage(path = 'ui'): Promise<{ page: Page; problems: string[] }> {
  const page = await browser.newPage()
  const problems: string[] = []
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`))
  page.on('console', (message) => {
    // The admin probe of the projections view answers 404 by design; nothing else may fail.
    if (message.type() === 'error' && !message.text().includes('404')) problems.push(`console: ${message.text()}`)
  })
  await page.goto(new URL(path, server.url).href)
  return { page, problems }
}

const positions = (page: Page) => page.$$eval('#events-body tr', (rows) => rows.map((row) => row.getAttribute('data-position')))

test('the page lists the events newest first and pages back with the next cursor', async () => {
  const { page, problems } = await openPage()
  await page.waitForSelector('#events-body tr', { timeout: SECONDS })
  const head = Number(await store.head())
  const first = await positions(page)
  expect(first).toEqual(Array.from({ length: 50 }, (_, i) => String(head - i)))
  expect(await page.textContent('#head')).toBe(String(head))
  await page.click('#events-more')
  await page.waitForFunction((count) => document.querySelectorAll('#events-body tr').length === count, head, { timeout: SECONDS })
  expect(await positions(page)).toEqual(Array.from({ length: head }, (_, i) => String(head - i)))
  expect(await page.isHidden('#events-more')).toBe(true)
  expect(problems).toEqual([])
  await page.close()
})

test('an event holding HTML shows it as text in the list and the detail, and never runs it', async () => {
  const { page, problems } = await openPage()
  await page.waitForSelector('#events-body tr', { timeout: SECONDS })
  // The hostile event is old: page back to it, then open it.
  await page.click('#events-more')
  const row = page.locator('#events-body tr', { has: page.locator('button.type', { hasText: 'NoteAdded' }) })
  await row.locator('td').first().click()
  await page.waitForSelector('#detail:not([hidden])', { timeout: SECONDS })
  expect(await page.textContent('#detail-title')).toBe('NoteAdded')
  expect(JSON.parse((await page.textContent('#detail-data'))!)).toEqual({ note: HOSTILE })
  expect(JSON.parse((await page.textContent('#detail-metadata'))!)).toEqual({ user: '<b>mallory</b>' })
  const verdict = await page.evaluate(() => ({
    ran: (window as { __ringstatePwned?: boolean }).__ringstatePwned ?? false,
    images: document.querySelectorAll('img').length,
    bold: document.querySelectorAll('#detail b').length,
  }))
  expect(verdict).toEqual({ ran: false, images: 0, bold: 0 })

  // Markup in a type and a tag: shown as text in the list, in the filter chip and in the address.
  const odd = page.locator('#events-body tr', { has: page.locator('button.type', { hasText: HOSTILE_TYPE }) })
  await odd.locator('button.tag').click()
  await page.waitForFunction(() => document.querySelectorAll('#events-body tr').length === 1, undefined, { timeout: SECONDS })
  expect(await page.textContent('#chips .chip-value')).toBe(HOSTILE_TAG)
  expect(await page.textContent('#events-body tr button.type')).toBe(HOSTILE_TYPE)
  await page.reload()
  await page.waitForFunction(() => document.querySelectorAll('#events-body tr').length === 1, undefined, { timeout: SECONDS })
  expect(await page.textContent('#chips .chip-value')).toBe(HOSTILE_TAG)
  const after = await page.evaluate(() => ({
    ran: (window as { __ringstatePwned?: boolean }).__ringstatePwned ?? false,
    markup: document.querySelectorAll('main img, main svg').length,
  }))
  expect(after).toEqual({ ran: false, markup: 0 })
  expect(problems).toEqual([])
  await page.close()
})

test('a newly appended event shows in the live tail within seconds; pause holds it back and resume catches up', async () => {
  const { page, problems } = await openPage()
  await page.waitForSelector('#live-status[data-state="live"]', { timeout: SECONDS })
  const { position } = await store.append({ type: 'OrderPlaced', tags: ['order:17', 'customer:ada'], data: { orderId: 'o-17', total: 99 } })
  await page.waitForSelector(`#events-body tr[data-position="${position}"]`, { timeout: SECONDS })
  expect((await positions(page))[0]).toBe(String(position))

  await page.click('#live-toggle')
  expect(await page.getAttribute('#live-status', 'data-state')).toBe('paused')
  const paused = await store.append({ type: 'PaymentCaptured', tags: ['order:17', 'customer:ada'], data: { orderId: 'o-17', amount: 99 } })
  await page.click('#live-toggle')
  // Resuming reconnects after the last position seen, so the event appended while paused arrives.
  await page.waitForSelector(`#events-body tr[data-position="${paused.position}"]`, { timeout: SECONDS })
  await page.waitForSelector('#live-status[data-state="live"]', { timeout: SECONDS })
  expect((await positions(page)).slice(0, 2)).toEqual([String(paused.position), String(position)])
  expect(problems).toEqual([])
  await page.close()
})

test('clicking a tag filters the list by it, the live tail included, and the filter can be removed', async () => {
  const { page, problems } = await openPage()
  await page.waitForSelector('#events-body tr', { timeout: SECONDS })
  const expected = (await store.query([{ tags: ['order:14'] }], { backwards: true })).map((event) => String(event.position))
  await page.locator('#events-body tr button.tag', { hasText: /^order:14$/ }).first().click()
  await page.waitForFunction(() => location.hash === '#events?tag=order%3A14', undefined, { timeout: SECONDS })
  await page.waitForFunction((count) => document.querySelectorAll('#events-body tr').length === count, expected.length, { timeout: SECONDS })
  expect(await positions(page)).toEqual(expected)
  expect(await page.textContent('#chips .chip')).toContain('order:14')

  // Live, only matching events arrive.
  await page.waitForSelector('#live-status[data-state="live"]', { timeout: SECONDS })
  await store.append({ type: 'OrderPlaced', tags: ['order:99'] })
  const match = await store.append({ type: 'RefundIssued', tags: ['order:14', 'customer:barbara'], data: { amount: 10 } })
  await page.waitForSelector(`#events-body tr[data-position="${match.position}"]`, { timeout: SECONDS })
  expect(await positions(page)).toEqual([String(match.position), ...expected])

  // Another tab and back: the filter is kept (it lives in the address).
  await page.click('[data-tab="commands"]')
  await page.waitForSelector('#view-commands:not([hidden])', { timeout: SECONDS })
  await page.click('[data-tab="events"]')
  await page.waitForFunction((count) => document.querySelectorAll('#events-body tr').length === count, expected.length + 1, { timeout: SECONDS })
  expect(await page.textContent('#chips .chip')).toContain('order:14')

  await page.click('#chips .chip-remove')
  await page.waitForFunction(() => document.querySelectorAll('#events-body tr').length === 50, undefined, { timeout: SECONDS })
  expect(problems).toEqual([])
  await page.close()
})

test('the projections view says when the server runs none, and the commands view lists the audit table', async () => {
  await store.append({ type: 'CartCheckedOut', tags: ['cart:7'], data: { items: 2 } }, undefined, {
    command: { type: 'CheckOutCart', data: { cartId: 'cart-7', items: 2 }, metadata: { user: 'ada' } },
  })
  const { page, problems } = await openPage('ui#projections')
  await page.waitForSelector('#projections-empty:not([hidden])', { timeout: SECONDS })
  expect(await page.textContent('#projections-empty')).toBe('No projections are running on this server.')
  await page.click('[data-tab="commands"]')
  await page.waitForSelector('#commands-body tr', { timeout: SECONDS })
  expect(await page.textContent('#commands-body tr td:nth-child(2)')).toBe('CheckOutCart')
  await page.click('#commands-body tr')
  await page.waitForSelector('#commands-body tr.expanded', { timeout: SECONDS })
  expect(await page.textContent('#commands-body tr.expanded')).toContain('"cartId": "cart-7"')
  expect(problems).toEqual([])
  await page.close()
})

test('a server with tokens asks for one, and the token box keeps it for the tab', async () => {
  const token = 'page-test-reader-token-0123'
  const secured = await serve(store, { port: 0, tokens: [{ name: 'reader', token, scopes: ['read'] }] })
  try {
    const page = await browser.newPage()
    await page.goto(new URL('ui', secured.url).href)
    await page.waitForSelector('#banner:not([hidden])', { timeout: SECONDS })
    expect(await page.textContent('#banner-text')).toBe('This server needs an API token. Enter it above.')
    await page.fill('#token-input', token)
    await page.click('#token-form button[type="submit"]')
    await page.waitForSelector('#events-body tr', { timeout: SECONDS })
    expect(await page.isHidden('#banner')).toBe(true)
    expect(await page.evaluate(() => sessionStorage.getItem('ringstate.token'))).toBe(token)
    // A reload keeps the token (same tab); the live tail authenticates with it too.
    await page.reload()
    await page.waitForSelector('#live-status[data-state="live"]', { timeout: SECONDS })
    await page.close()
  } finally {
    await secured.stop()
  }
})

test('the page looks right (a screenshot of the events with one opened)', async () => {
  const { page, problems } = await openPage()
  await page.waitForSelector('#live-status[data-state="live"]', { timeout: SECONDS })
  const [shown] = await store.query([{ types: ['OrderPlaced'], tags: ['order:16'] }])
  await page.locator(`#events-body tr[data-position="${shown!.position}"] td`).first().click()
  await page.waitForSelector('#detail:not([hidden])', { timeout: SECONDS })
  // A fresh row's highlight fades over 2.5 s; wait for it so the picture is steady.
  await page.waitForFunction(() => Array.from(document.querySelectorAll('#events-body tr')).every((row) => row.getAnimations().length === 0), undefined, { timeout: SECONDS })
  const png = await page.screenshot({ type: 'png' })
  expect(png.subarray(1, 4).toString('latin1')).toBe('PNG')
  expect(png.length).toBeGreaterThan(20_000)
  if (process.env.RINGSTATE_UPDATE_SCREENSHOT === '1') {
    const docs = join(import.meta.dir, '..', '..', '..', 'docs')
    mkdirSync(docs, { recursive: true })
    writeFileSync(join(docs, 'ui.png'), png)
  }
  expect(problems).toEqual([])
  await page.close()
})

test('the projections table shows state and lag, with control buttons only for an admin token', async () => {
  const counted = new Map<string, number>()
  const orderCount = defineProjection({
    name: 'order-count',
    version: 1,
    query: [{ types: ['OrderPlaced'] }],
    async handle(events) {
      for (const event of events) counted.set(event.tags[0]!, (counted.get(event.tags[0]!) ?? 0) + 1)
    },
  })
  await using fixture = await serveProjections([orderCount], 'page-test')
  const { store: projectionStore, server: secured, reader, admin } = fixture
  const page = await browser.newPage()
  await page.goto(new URL('ui#projections', secured.url).href)
  await page.fill('#token-input', reader)
  await page.click('#token-form button[type="submit"]')
  const cell = (column: number) => page.textContent(`#projections-body tr:first-child td:nth-child(${column})`)
  await page.waitForSelector('#projections-body tr', { timeout: SECONDS })
  expect([await cell(1), await cell(4), await cell(6), await cell(7)]).toEqual(['order-count', 'live', '0', 'page-test'])
  expect(await page.isHidden('#projections-actions-head')).toBe(true)
  expect(await page.locator('#projections-body button').count()).toBe(0)

  await page.click('#token-clear')
  await page.fill('#token-input', admin)
  await page.click('#token-form button[type="submit"]')
  await page.waitForSelector('#projections-body button[data-action="pause"]', { timeout: SECONDS })
  expect(await page.isVisible('#projections-actions-head')).toBe(true)
  await page.click('#projections-body button[data-action="pause"]')
  await page.waitForSelector('#projections-body .state[data-state="paused"]', { timeout: SECONDS })
  // Paused, the projection falls behind: the table shows the lag once it refreshes.
  await projectionStore.append({ type: 'OrderPlaced', tags: ['order:1'] })
  await page.waitForFunction(() => document.querySelector('#projections-body tr td:nth-child(6)')?.textContent === '1', undefined, { timeout: SECONDS })
  await page.click('#projections-body button[data-action="resume"]')
  await page.waitForSelector('#projections-body .state[data-state="live"]', { timeout: SECONDS })
  await page.waitForFunction(() => document.querySelector('#projections-body tr td:nth-child(6)')?.textContent === '0', undefined, { timeout: SECONDS })
  expect(counted.get('order:1')).toBe(1)
  await page.close()
})

test('an empty store shows how to append the first event, and the event appears once appended', async () => {
  const empty = await openStore('memory:')
  const fresh = await serve(empty, { port: 0 })
  try {
    const page = await browser.newPage()
    await page.goto(new URL('ui', fresh.url).href)
    await page.waitForSelector('#events-first:not([hidden])', { timeout: SECONDS })
    expect(await page.textContent('#events-empty-text')).toBe('No events yet.')
    const snippet = (await page.textContent('#events-first-curl'))!
    expect(snippet).toStartWith(`curl -sS -X POST ${new URL('v1/append', fresh.url).href} `)
    // The snippet is a working command line: run it as shown.
    const curl = Bun.spawn(['sh', '-c', snippet], { stdout: 'pipe' })
    expect(JSON.parse(await new Response(curl.stdout).text())).toMatchObject({ position: '1', count: 1 })
    await page.waitForSelector('#events-body tr[data-position="1"]', { timeout: SECONDS })
    expect(await page.isHidden('#events-empty')).toBe(true)
    await page.close()
  } finally {
    await fresh.stop()
    await empty.close()
  }
})

test('under a path prefix (an app mounted at /admin, or a proxy path) the page calls the API under the same prefix', async () => {
  const outer = new Hono().route('/admin', createApp(store))
  const prefixed = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: (request, bunServer) => outer.fetch(request, bunServer) })
  try {
    const { page, problems } = await openPage(`http://127.0.0.1:${prefixed.port}/admin/ui`)
    await page.waitForSelector('#live-status[data-state="live"]', { timeout: SECONDS })
    expect((await positions(page))[0]).toBe(String(await store.head()))
    expect(problems).toEqual([])
    await page.close()
  } finally {
    await prefixed.stop(true)
  }
})

test('the live tail reconnects after a server restart and shows what was appended meanwhile', async () => {
  const own = await openStore('memory:')
  await own.append({ type: 'Before' })
  let restarting = await serve(own, { port: 0, sse: { retryMs: 100 } })
  const port = Number(new URL(restarting.url).port)
  try {
    const page = await browser.newPage()
    await page.goto(new URL('ui', restarting.url).href)
    await page.waitForSelector('#live-status[data-state="live"]', { timeout: SECONDS })
    await restarting.stop()
    await page.waitForSelector('#live-status[data-state="reconnecting"]', { timeout: SECONDS })
    // Moving around while the server is down: the page says so, and the events view keeps trying.
    await page.click('[data-tab="commands"]')
    await page.waitForSelector('#banner:not([hidden])', { timeout: SECONDS })
    expect(await page.textContent('#banner-text')).toStartWith('Cannot reach the server')
    await page.click('[data-tab="events"]')
    const { position } = await own.append({ type: 'WhileDown' })
    restarting = await serve(own, { port, sse: { retryMs: 100 } })
    await page.waitForSelector(`#events-body tr[data-position="${position}"]`, { timeout: SECONDS })
    await page.waitForSelector('#live-status[data-state="live"]', { timeout: SECONDS })
    expect(await positions(page)).toEqual(['2', '1'])
    // A "cannot reach the server" banner from the outage goes once the server answers again.
    expect(await page.isHidden('#banner')).toBe(true)
    await page.close()
  } finally {
    await restarting.stop()
    await own.close()
  }
})
