// ringstate's browser page: one ES module, no dependencies, no build step.
//
// Safety rule for this file: every value that comes from the server is put into the page as text
// (textContent, Text nodes, setAttribute on inert attributes). Never innerHTML, insertAdjacentHTML
// or document.write with data: an event's data is whatever a client appended, markup included.
//
// The API lives next to the page: the page at <base>/ui calls <base>/v1/...

const base = location.pathname.replace(/\/ui\/?$/, '')
const TOKEN_KEY = 'ringstate.token'
const PAGE_SIZE = 50
// Rows kept in the events table. The live tail prepends; past this the oldest rows are dropped and
// the "older" cursor moves up with them, so a long-running tab stays small.
const MAX_ROWS = 2000
// Largest JSON text rendered in the detail panel; bigger values are cut with a note.
const MAX_JSON_CHARS = 200_000
// Largest unterminated SSE line accepted before the stream is dropped.
const MAX_SSE_LINE = 8 << 20
const PROJECTIONS_REFRESH_MS = 2000
const HEAD_REFRESH_MS = 5000

const $ = (id) => {
  const found = document.getElementById(id)
  if (!found) throw new Error(`page element #${id} is missing`)
  return found
}

/** Creates an element; `text` always goes in as text. */
function el(tag, options = {}, children = []) {
  const node = document.createElement(tag)
  if (options.className) node.className = options.className
  if (options.text !== undefined) node.textContent = String(options.text)
  if (options.title !== undefined) node.title = String(options.title)
  if (options.attrs) for (const [name, value] of Object.entries(options.attrs)) node.setAttribute(name, String(value))
  if (options.on) for (const [name, handler] of Object.entries(options.on)) node.addEventListener(name, handler)
  for (const child of children) node.append(child)
  return node
}

// ---------------------------------------------------------------------------------------------
// API access

let token = sessionStorage.getItem(TOKEN_KEY) ?? ''

class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`)
    this.status = status
    this.code = problem.code || `HTTP_${status}`
    this.title = problem.title || `HTTP ${status}`
  }
}

function authHeaders(extra = {}) {
  const headers = { ...extra }
  if (token) headers.Authorization = `Bearer ${token}`
  return headers
}

async function problemOf(response) {
  try {
    const body = await response.json()
    return body && typeof body === 'object' ? body : {}
  } catch {
    return {}
  }
}

async function request(path, { method = 'GET', body, signal } = {}) {
  const headers = authHeaders({ Accept: 'application/json' })
  if (body !== undefined) headers['Content-Type'] = 'application/json'
  const response = await fetch(base + path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    signal,
    cache: 'no-store',
  })
  reachable()
  if (!response.ok) throw new ApiError(response.status, await problemOf(response))
  const text = await response.text()
  return text ? JSON.parse(text) : undefined
}

// ---------------------------------------------------------------------------------------------
// Banner (errors and hints)

function showBanner(message, kind = 'error') {
  $('banner').dataset.kind = kind
  $('banner-text').textContent = message
  $('banner').hidden = false
}
function hideBanner() {
  $('banner').hidden = true
}
function showError(error) {
  if (error?.name === 'AbortError') return
  if (error instanceof ApiError) {
    if (error.status === 401) {
      const message = token ? 'The server refused this token. Enter another one above.' : 'This server needs an API token. Enter it above.'
      // Focus the box once, not on every refresh that meets the same answer.
      const already = !$('banner').hidden && $('banner-text').textContent === message
      showBanner(message)
      if (!already) $('token-input').focus()
      return
    }
    if (error.status === 403) {
      showBanner(`This token lacks the scope for that (${error.code}).`)
      return
    }
    showBanner(`${error.title}: ${error.message} (${error.code})`)
    return
  }
  showBanner(`Cannot reach the server: ${error?.message ?? error}`, 'offline')
}
/** The server answered: a "cannot reach" banner is out of date. */
function reachable() {
  if ($('banner').dataset.kind === 'offline') hideBanner()
}
$('banner-close').addEventListener('click', hideBanner)

// ---------------------------------------------------------------------------------------------
// Formatting

function formatTime(iso) {
  const date = new Date(iso)
  if (Number.isNaN(date.getTime())) return String(iso ?? '')
  const pad = (n, width = 2) => String(n).padStart(width, '0')
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ` +
    `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}.${pad(date.getMilliseconds(), 3)}`
}

function formatCount(value) {
  if (value === undefined || value === null || value === '') return '–'
  try {
    return BigInt(value).toLocaleString('en')
  } catch {
    return String(value)
  }
}

function isAfter(a, b) {
  return b === undefined || BigInt(a) > BigInt(b)
}

/** Renders a value as indented JSON with coloured tokens, each token a Text node. */
function renderJson(pre, value) {
  pre.replaceChildren()
  let text = value === undefined ? 'undefined' : JSON.stringify(value, null, 2)
  let cut = 0
  if (text.length > MAX_JSON_CHARS) {
    cut = text.length - MAX_JSON_CHARS
    text = text.slice(0, MAX_JSON_CHARS)
  }
  const tokens = /("(?:\\.|[^"\\])*")(\s*:)?|\b(true|false|null)\b|(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)/g
  let last = 0
  for (const match of text.matchAll(tokens)) {
    if (match.index > last) pre.append(text.slice(last, match.index))
    if (match[1] !== undefined) {
      pre.append(el('span', { className: match[2] ? 'j-key' : 'j-str', text: match[1] }))
      if (match[2]) pre.append(match[2])
    } else if (match[3] !== undefined) {
      pre.append(el('span', { className: 'j-lit', text: match[3] }))
    } else {
      pre.append(el('span', { className: 'j-num', text: match[4] }))
    }
    last = match.index + match[0].length
  }
  if (last < text.length) pre.append(text.slice(last))
  if (cut > 0) pre.append(el('span', { className: 'j-cut', text: `\n… ${cut.toLocaleString('en')} more characters not shown` }))
}

function tagChip(tag, onClick) {
  const button = el('button', {
    className: 'tag',
    text: tag,
    title: `Filter by tag ${tag}`,
    attrs: { type: 'button' },
    on: {
      click: (event) => {
        event.stopPropagation()
        onClick(tag)
      },
    },
  })
  return button
}

// ---------------------------------------------------------------------------------------------
// Tabs and address (#events?type=..&tag=.., #projections, #commands)

const views = ['events', 'projections', 'commands']
let currentView = ''
const filters = { types: [], tags: [] }

function parseHash() {
  const hash = location.hash.replace(/^#/, '')
  const [name, query = ''] = hash.split('?')
  const view = views.includes(name) ? name : 'events'
  const params = new URLSearchParams(query)
  return { view, types: params.getAll('type'), tags: params.getAll('tag') }
}

function writeHash() {
  const params = new URLSearchParams()
  for (const type of filters.types) params.append('type', type)
  for (const tag of filters.tags) params.append('tag', tag)
  const query = params.toString()
  history.replaceState(null, '', `#${currentView}${query && currentView === 'events' ? `?${query}` : ''}`)
  // Coming back to Events from another tab keeps the filters.
  document.querySelector('[data-tab="events"]')?.setAttribute('href', `#events${query ? `?${query}` : ''}`)
}

function route() {
  const { view, types, tags } = parseHash()
  const filtersChanged = types.join('\n') !== filters.types.join('\n') || tags.join('\n') !== filters.tags.join('\n')
  filters.types = types
  filters.tags = tags
  const viewChanged = view !== currentView
  currentView = view
  if (view === 'events') writeHash()
  for (const name of views) {
    $(`view-${name}`).hidden = name !== view
    document.querySelector(`[data-tab="${name}"]`)?.setAttribute('aria-current', name === view ? 'page' : 'false')
  }
  if (view === 'events') {
    if (viewChanged || filtersChanged) loadEvents()
  } else {
    stopTail()
  }
  if (view === 'projections') startProjections()
  else stopProjections()
  if (view === 'commands' && viewChanged) loadCommands()
}
window.addEventListener('hashchange', route)

// ---------------------------------------------------------------------------------------------
// Head

async function refreshHead() {
  try {
    const { head } = await request('/v1/head')
    showHead(head, true)
    return head
  } catch (error) {
    showError(error)
    return undefined
  }
}
let shownHead
/** Shows the head; a live event only moves it forward, the server's answer sets it (a new store may be behind). */
function showHead(head, fromServer = false) {
  if (head === undefined || (!fromServer && !isAfter(head, shownHead))) return
  shownHead = String(head)
  $('head').textContent = formatCount(shownHead)
}
setInterval(() => {
  if (!document.hidden) refreshHead()
}, HEAD_REFRESH_MS)

// ---------------------------------------------------------------------------------------------
// Events: newest first, paged back with `before`, filtered by type and tag

const eventsState = {
  generation: 0,
  rows: [], // { event, row } newest first
  next: undefined, // cursor for the older page (passed back as `before`)
  selected: undefined,
}

function filterParams() {
  const params = new URLSearchParams()
  for (const type of filters.types) params.append('type', type)
  for (const tag of filters.tags) params.append('tag', tag)
  return params
}

function renderChips() {
  const chips = $('chips')
  chips.replaceChildren()
  const chip = (kind, value, list) =>
    el('span', { className: `chip chip-${kind}` }, [
      el('span', { className: 'chip-kind', text: kind }),
      el('span', { className: 'chip-value', text: value }),
      el('button', {
        className: 'chip-remove',
        text: '×',
        title: `Remove ${kind} filter ${value}`,
        attrs: { type: 'button', 'aria-label': `Remove ${kind} filter ${value}` },
        on: { click: () => setFilters(kind === 'type' ? list.filter((t) => t !== value) : filters.types, kind === 'tag' ? list.filter((t) => t !== value) : filters.tags) },
      }),
    ])
  for (const type of filters.types) chips.append(chip('type', type, filters.types))
  for (const tag of filters.tags) chips.append(chip('tag', tag, filters.tags))
  if (filters.types.length + filters.tags.length > 0) {
    // How the filters combine, as the API applies them: one query item.
    const rules = [filters.types.length > 1 ? 'any of these types' : '', filters.tags.length > 1 ? 'all of these tags' : ''].filter(Boolean)
    if (rules.length > 0) chips.append(el('span', { className: 'muted hint', text: `(${rules.join(', ')})` }))
    chips.append(el('button', { className: 'link', text: 'Clear filters', attrs: { type: 'button' }, on: { click: () => setFilters([], []) } }))
  } else {
    chips.append(el('span', { className: 'muted hint', text: 'All events. Click a tag to filter by it.' }))
  }
}

function setFilters(types, tags) {
  filters.types = [...new Set(types)]
  filters.tags = [...new Set(tags)]
  writeHash()
  loadEvents()
}

function addTagFilter(tag) {
  if (!filters.tags.includes(tag)) setFilters(filters.types, [...filters.tags, tag])
}
function addTypeFilter(type) {
  if (!filters.types.includes(type)) setFilters([...filters.types, type], filters.tags)
}

$('filter-form').addEventListener('submit', (event) => {
  event.preventDefault()
  const type = $('filter-type').value.trim()
  const tag = $('filter-tag').value.trim()
  $('filter-type').value = ''
  $('filter-tag').value = ''
  if (!type && !tag) return
  setFilters(type ? [...filters.types, type] : filters.types, tag ? [...filters.tags, tag] : filters.tags)
})

function eventRow(event, fresh) {
  const row = el('tr', {
    className: fresh ? 'fresh' : '',
    attrs: { tabindex: '0', 'data-position': event.position },
    on: {
      click: () => selectEvent(event, row),
      keydown: (key) => {
        if (key.key === 'Enter') selectEvent(event, row)
      },
    },
  })
  const typeButton = el('button', {
    className: 'type',
    text: event.type,
    title: `Filter by type ${event.type}`,
    attrs: { type: 'button' },
    on: {
      click: (click) => {
        click.stopPropagation()
        addTypeFilter(event.type)
      },
    },
  })
  row.append(
    el('td', { className: 'num mono', text: event.position }),
    el('td', {}, [typeButton]),
    el('td', { className: 'tag-list' }, (event.tags ?? []).map((tag) => tagChip(tag, addTagFilter))),
    el('td', { className: 'preview preview-col mono small', text: preview(event.data) }),
    el('td', { className: 'time', text: formatTime(event.recordedAt), title: event.recordedAt }),
  )
  if (eventsState.selected === event.position) row.classList.add('selected')
  return row
}

/** One line of JSON, cut short: enough to tell events apart in the list. */
function preview(value) {
  if (value === undefined || value === null) return ''
  const text = JSON.stringify(value)
  return text.length > 90 ? `${text.slice(0, 90)}…` : text
}

function updateEventsFooter() {
  const count = eventsState.rows.length
  const filtered = filters.types.length + filters.tags.length > 0
  $('events-empty').hidden = count > 0
  $('events-empty-text').textContent = filtered ? 'No events match these filters.' : 'No events yet.'
  $('events-first').hidden = filtered || count > 0
  if (!filtered && count === 0) {
    const body = JSON.stringify({ events: { type: 'HelloWorld', tags: ['greeting:1'], data: { text: 'hello' } } })
    const auth = token ? ` -H "authorization: Bearer $RINGSTATE_TOKEN"` : ''
    $('events-first-curl').textContent =
      `curl -sS -X POST ${location.origin}${base}/v1/append -H 'content-type: application/json'${auth} \\\n  -d '${body}'`
  }
  $('events-more').hidden = eventsState.next === undefined
  $('events-count').textContent = count === 0 ? '' : `${count.toLocaleString('en')} event${count === 1 ? '' : 's'} shown`
}

async function loadEvents() {
  const generation = ++eventsState.generation
  stopTail()
  renderChips()
  hideBanner()
  eventsState.rows = []
  eventsState.next = undefined
  $('events-body').replaceChildren()
  $('events-empty').hidden = true
  $('events-more').hidden = true
  $('events-count').textContent = 'Loading…'
  try {
    // The head first: the live tail starts after it, so nothing appended while the first page
    // loads is missed (duplicates are dropped by position).
    const { head } = await request('/v1/head')
    showHead(head, true)
    const params = filterParams()
    params.set('backwards', 'true')
    params.set('limit', String(PAGE_SIZE))
    const page = await request(`/v1/events?${params}`)
    if (generation !== eventsState.generation) return
    appendOlder(page.events ?? [])
    eventsState.next = page.next
    updateEventsFooter()
    const newest = eventsState.rows[0]?.event.position
    tail.after = newest !== undefined && isAfter(newest, head) ? newest : String(head)
    if (tail.wanted) startTail()
    else setLiveStatus('paused')
  } catch (error) {
    if (generation !== eventsState.generation) return
    $('events-count').textContent = ''
    showError(error)
    // The server is down or restarting: try again, as the live tail would, until it answers.
    if (!(error instanceof ApiError) || error.status >= 500) {
      setLiveStatus('reconnecting')
      setTimeout(() => {
        if (generation === eventsState.generation && currentView === 'events') loadEvents()
      }, tail.retryMs)
    }
  }
}

function appendOlder(events) {
  const body = $('events-body')
  for (const event of events) {
    const row = eventRow(event, false)
    eventsState.rows.push({ event, row })
    body.append(row)
  }
}

async function loadOlder() {
  if (eventsState.next === undefined) return
  const generation = eventsState.generation
  const button = $('events-more')
  button.disabled = true
  try {
    const params = filterParams()
    params.set('backwards', 'true')
    params.set('limit', String(PAGE_SIZE))
    params.set('before', eventsState.next)
    const page = await request(`/v1/events?${params}`)
    if (generation !== eventsState.generation) return
    appendOlder(page.events ?? [])
    eventsState.next = page.next
    updateEventsFooter()
  } catch (error) {
    showError(error)
  } finally {
    button.disabled = false
  }
}
$('events-more').addEventListener('click', loadOlder)

function prependLive(event) {
  const newest = eventsState.rows[0]?.event.position
  if (!isAfter(event.position, newest)) return
  const row = eventRow(event, true)
  eventsState.rows.unshift({ event, row })
  $('events-body').prepend(row)
  if (eventsState.rows.length > MAX_ROWS) {
    const dropped = eventsState.rows.pop()
    dropped.row.remove()
    // The oldest kept row is now the boundary: "Load older" continues below it.
    eventsState.next = eventsState.rows[eventsState.rows.length - 1].event.position
  }
  updateEventsFooter()
}

// Event detail

let detailEvent
function selectEvent(event, row) {
  for (const selected of document.querySelectorAll('#events-body tr.selected')) selected.classList.remove('selected')
  row.classList.add('selected')
  eventsState.selected = event.position
  detailEvent = event
  $('detail-title').textContent = event.type
  $('detail-position').textContent = event.position
  $('detail-id').textContent = event.id ?? ''
  $('detail-recorded').textContent = formatTime(event.recordedAt)
  $('detail-recorded').title = event.recordedAt ?? ''
  const tags = $('detail-tags')
  tags.replaceChildren(...(event.tags ?? []).map((tag) => tagChip(tag, addTagFilter)))
  if ((event.tags ?? []).length === 0) tags.append(el('span', { className: 'muted', text: 'none' }))
  renderJson($('detail-data'), event.data)
  renderJson($('detail-metadata'), event.metadata ?? {})
  $('detail').hidden = false
  document.body.classList.add('with-detail')
}
function closeDetail() {
  $('detail').hidden = true
  document.body.classList.remove('with-detail')
  eventsState.selected = undefined
  for (const selected of document.querySelectorAll('#events-body tr.selected')) selected.classList.remove('selected')
}
$('detail-close').addEventListener('click', closeDetail)
document.addEventListener('keydown', (key) => {
  if (key.key === 'Escape' && !$('detail').hidden) closeDetail()
})
for (const button of document.querySelectorAll('button.copy')) {
  button.addEventListener('click', async () => {
    if (!detailEvent) return
    const value = button.dataset.copy === 'data' ? detailEvent.data : detailEvent.metadata
    try {
      await navigator.clipboard.writeText(JSON.stringify(value, null, 2))
      button.textContent = 'copied'
    } catch {
      button.textContent = 'copy failed'
    }
    setTimeout(() => (button.textContent = 'copy'), 1500)
  })
}

// ---------------------------------------------------------------------------------------------
// Live tail: server-sent events read through fetch, so the request can carry the Authorization
// header (EventSource cannot send one). Pausing closes the stream; resuming reconnects with
// Last-Event-ID so nothing is missed in between.

const tail = {
  wanted: true, // the user's choice (Pause / Resume)
  controller: undefined,
  after: undefined, // last position seen (event id or progress id)
  retryMs: 2000,
}

function setLiveStatus(state) {
  const labels = {
    connecting: 'Connecting…',
    'catching-up': 'Catching up…',
    live: 'Live',
    reconnecting: 'Reconnecting…',
    paused: 'Paused',
    off: 'Live tail off',
  }
  $('live-status').dataset.state = state
  $('live-text').textContent = labels[state] ?? state
  $('live-toggle').textContent = tail.wanted ? 'Pause' : 'Resume'
  $('live-toggle').classList.toggle('primary', !tail.wanted)
}

function startTail() {
  stopTail()
  if (tail.after === undefined) return
  const controller = new AbortController()
  tail.controller = controller
  runTail(controller.signal).catch((error) => {
    if (!controller.signal.aborted) showError(error)
  })
}

function stopTail() {
  tail.controller?.abort()
  tail.controller = undefined
}

$('live-toggle').addEventListener('click', () => {
  tail.wanted = !tail.wanted
  if (tail.wanted) startTail()
  else {
    stopTail()
    setLiveStatus('paused')
  }
})

function waitMs(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms)
    signal.addEventListener('abort', () => {
      clearTimeout(timer)
      resolve()
    }, { once: true })
  })
}

async function runTail(signal) {
  let failures = 0
  while (!signal.aborted) {
    try {
      setLiveStatus(failures === 0 ? 'connecting' : 'reconnecting')
      const params = filterParams()
      params.set('after', tail.after)
      const response = await fetch(`${base}/v1/subscribe?${params}`, {
        headers: authHeaders({ Accept: 'text/event-stream', 'Last-Event-ID': tail.after }),
        signal,
        cache: 'no-store',
      })
      reachable()
      if (!response.ok) {
        const error = new ApiError(response.status, await problemOf(response))
        // Retrying cannot fix a bad token or a bad filter; say so and stop.
        if (response.status < 500 && response.status !== 429) {
          showError(error)
          setLiveStatus('off')
          return
        }
        throw error
      }
      setLiveStatus('catching-up')
      await readEventStream(response.body, signal, (message) => {
        failures = 0
        if (message.id !== undefined && /^\d+$/.test(message.id) && isAfter(message.id, tail.after)) tail.after = message.id
        if (message.event === 'caught-up') setLiveStatus('live')
        else if (message.event === 'message' && message.data) {
          const event = JSON.parse(message.data)
          prependLive(event)
          showHead(event.position)
        }
      })
      // The server ended the stream (a restart, a deploy): reconnect after the retry delay.
    } catch (error) {
      if (signal.aborted) return
      failures++
    }
    if (signal.aborted) return
    setLiveStatus('reconnecting')
    await waitMs(Math.min(tail.retryMs * Math.max(1, failures), 30_000), signal)
  }
}

/** Parses a text/event-stream body (the WHATWG rules) and calls `onMessage` per dispatched message. */
async function readEventStream(body, signal, onMessage) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader()
  signal.addEventListener('abort', () => reader.cancel().catch(() => {}), { once: true })
  let buffer = ''
  let data = []
  let eventName = ''
  let id
  for (;;) {
    const { value, done } = await reader.read()
    if (done || signal.aborted) return
    buffer += value
    let start = 0
    for (;;) {
      const match = /\r\n|\r|\n/.exec(buffer.slice(start))
      if (!match) break
      // A lone \r at the very end may be the first half of \r\n: wait for more input.
      if (match[0] === '\r' && start + match.index === buffer.length - 1) break
      const line = buffer.slice(start, start + match.index)
      start += match.index + match[0].length
      if (line === '') {
        if (data.length > 0 || eventName || id !== undefined) {
          onMessage({ event: eventName || 'message', data: data.join('\n'), id })
        }
        data = []
        eventName = ''
        id = undefined
        continue
      }
      if (line.startsWith(':')) continue
      const colon = line.indexOf(':')
      const field = colon < 0 ? line : line.slice(0, colon)
      let fieldValue = colon < 0 ? '' : line.slice(colon + 1)
      if (fieldValue.startsWith(' ')) fieldValue = fieldValue.slice(1)
      if (field === 'data') data.push(fieldValue)
      else if (field === 'event') eventName = fieldValue
      else if (field === 'id' && !fieldValue.includes('\0')) id = fieldValue
      else if (field === 'retry' && /^\d+$/.test(fieldValue)) tail.retryMs = Number(fieldValue)
    }
    buffer = buffer.slice(start)
    if (buffer.length > MAX_SSE_LINE) throw new Error('an event in the stream is too large')
  }
}

// ---------------------------------------------------------------------------------------------
// Projections

const projections = { timer: undefined, admin: false, adminChecked: false, busy: false }

// Whether the token carries the admin scope. The API has no "who am I" route, so the page asks
// the one question an admin route answers without acting: a control call for a projection name
// that cannot exist is 404 with admin and 403 (or 401) without, since scopes are checked first.
async function checkAdmin() {
  if (projections.adminChecked) return projections.admin
  try {
    await request('/v1/projections/%20ringstate-ui-scope-probe%20/pause', { method: 'POST' })
    projections.admin = true
  } catch (error) {
    projections.admin = !(error instanceof ApiError && (error.status === 401 || error.status === 403))
  }
  projections.adminChecked = true
  return projections.admin
}

function startProjections() {
  stopProjections()
  loadProjections()
  projections.timer = setInterval(() => {
    if (!document.hidden && !projections.busy) loadProjections()
  }, PROJECTIONS_REFRESH_MS)
}
function stopProjections() {
  clearInterval(projections.timer)
  projections.timer = undefined
}

function projectionList(body) {
  if (Array.isArray(body)) return body
  if (body && Array.isArray(body.projections)) return body.projections
  return []
}

async function loadProjections() {
  let list
  try {
    list = projectionList(await request('/v1/projections'))
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) list = []
    else {
      showError(error)
      return
    }
  }
  const admin = list.length > 0 && (await checkAdmin())
  renderProjections(list, admin)
}

function renderProjections(list, admin) {
  const body = $('projections-body')
  body.replaceChildren()
  $('projections-empty').hidden = list.length > 0
  $('projections-actions-head').hidden = !admin
  $('projections-note').textContent = list.length > 0 ? `Refreshed ${formatTime(new Date().toISOString()).slice(11, 19)}` : ''
  const withButtons = new Set()
  for (const shard of list) {
    const lag = shard.lag ?? ''
    const row = el('tr', {}, [
      el('td', { className: 'strong', text: shard.name ?? '' }),
      el('td', { className: 'num mono' }, [
        String(shard.version ?? ''),
        // A new version being built beside the active one: readers still read the old one.
        ...(shard.active === false ? [el('span', { className: 'building', text: 'building', title: 'built beside the active version' })] : []),
      ]),
      el('td', { className: 'num mono', text: shard.partition ?? 0 }),
      el('td', {}, [el('span', { className: 'state', text: shard.state ?? 'unknown', attrs: { 'data-state': shard.state ?? 'unknown' } })]),
      el('td', { className: 'num mono', text: formatCount(shard.position) }),
      el('td', { className: `num mono ${String(lag) !== '0' ? 'lagging' : ''}`, text: formatCount(lag) }),
      el('td', { className: 'mono small', text: shard.owner ?? '' }),
      el('td', { className: `num mono ${Number(shard.errorCount) > 0 ? 'bad' : ''}`, text: shard.errorCount ?? 0 }),
      el('td', { className: 'small error-text', text: lastErrorText(shard.lastError), title: lastErrorText(shard.lastError) }),
    ])
    if (admin) {
      const cell = el('td', { className: 'actions' })
      // One set of buttons per projection: they act on every shard of the name.
      if (!withButtons.has(shard.name)) {
        withButtons.add(shard.name)
        const paused = shard.state === 'paused' || shard.state === 'faulted'
        cell.append(
          paused ? controlButton(shard.name, 'resume', 'Resume') : controlButton(shard.name, 'pause', 'Pause'),
          controlButton(shard.name, 'rebuild', 'Rebuild'),
        )
      }
      row.append(cell)
    }
    body.append(row)
  }
}

function lastErrorText(lastError) {
  if (lastError === undefined || lastError === null) return ''
  if (typeof lastError === 'string') return lastError
  if (typeof lastError === 'object' && typeof lastError.message === 'string') return lastError.message
  return JSON.stringify(lastError)
}

function controlButton(name, action, label) {
  return el('button', {
    className: `button small ${action === 'rebuild' ? 'danger' : ''}`,
    text: label,
    attrs: { type: 'button', 'data-action': action },
    on: {
      click: async (click) => {
        if (action === 'rebuild' && !confirm(`Rebuild ${name} from the first event? Its read model is emptied first.`)) return
        click.currentTarget.disabled = true
        projections.busy = true
        try {
          await request(`/v1/projections/${encodeURIComponent(name)}/${action}`, { method: 'POST' })
        } catch (error) {
          showError(error)
        } finally {
          projections.busy = false
          loadProjections()
        }
      },
    },
  })
}

// ---------------------------------------------------------------------------------------------
// Commands: the audit list, oldest first, paged forward with `after`

const commandsState = { next: undefined, generation: 0, count: 0 }

function commandList(body) {
  if (Array.isArray(body)) return body
  if (body && Array.isArray(body.commands)) return body.commands
  return []
}

async function loadCommands(more = false) {
  const generation = more ? commandsState.generation : ++commandsState.generation
  if (!more) {
    $('commands-body').replaceChildren()
    commandsState.next = undefined
    commandsState.count = 0
  }
  const params = new URLSearchParams({ limit: String(PAGE_SIZE) })
  if (more && commandsState.next !== undefined) params.set('after', commandsState.next)
  try {
    const body = await request(`/v1/commands?${params}`)
    if (generation !== commandsState.generation) return
    const list = commandList(body)
    for (const command of list) addCommandRow(command)
    commandsState.count += list.length
    commandsState.next = body?.next ?? (list.length === PAGE_SIZE ? list[list.length - 1].id : undefined)
    $('commands-more').hidden = commandsState.next === undefined
    $('commands-empty').hidden = commandsState.count > 0
  } catch (error) {
    showError(error)
  }
}
$('commands-more').addEventListener('click', () => loadCommands(true))

function addCommandRow(command) {
  const preview = command.data === undefined ? '' : JSON.stringify(command.data)
  const row = el('tr', { attrs: { tabindex: '0' } }, [
    el('td', { className: 'num mono', text: command.id ?? '' }),
    el('td', { className: 'strong', text: command.type ?? '' }),
    el('td', { className: 'num mono', text: command.position ?? '' }),
    el('td', { className: 'time', text: formatTime(command.recordedAt), title: command.recordedAt ?? '' }),
    el('td', { className: 'mono small preview', text: preview.length > 120 ? `${preview.slice(0, 120)}…` : preview }),
  ])
  let expanded
  const toggle = () => {
    if (expanded) {
      expanded.remove()
      expanded = undefined
      row.classList.remove('selected')
      return
    }
    const data = el('pre', { className: 'json' })
    const metadata = el('pre', { className: 'json' })
    renderJson(data, command.data)
    renderJson(metadata, command.metadata ?? {})
    expanded = el('tr', { className: 'expanded' }, [
      el('td', { attrs: { colspan: '5' } }, [
        el('div', { className: 'two-col' }, [
          el('div', {}, [el('h3', { text: 'Data' }), data]),
          el('div', {}, [el('h3', { text: 'Metadata' }), metadata]),
        ]),
      ]),
    ])
    row.classList.add('selected')
    row.after(expanded)
  }
  row.addEventListener('click', toggle)
  row.addEventListener('keydown', (key) => {
    if (key.key === 'Enter') toggle()
  })
  $('commands-body').append(row)
}

// ---------------------------------------------------------------------------------------------
// Token box

function showTokenState() {
  $('token-input').value = ''
  $('token-input').placeholder = token ? 'Token in use (this tab only)' : 'API token'
  $('token-clear').hidden = !token
}

$('token-form').addEventListener('submit', (event) => {
  event.preventDefault()
  const value = $('token-input').value.trim()
  if (!value) return
  token = value
  // sessionStorage: the token lives as long as this tab, never on disk across sessions.
  sessionStorage.setItem(TOKEN_KEY, token)
  tokenChanged()
})
$('token-clear').addEventListener('click', () => {
  token = ''
  sessionStorage.removeItem(TOKEN_KEY)
  tokenChanged()
})

function tokenChanged() {
  showTokenState()
  hideBanner()
  projections.adminChecked = false
  // Reload whatever is on screen with the new token.
  currentView = ''
  route()
}

// ---------------------------------------------------------------------------------------------

showTokenState()
setLiveStatus('off')
route()
if (currentView !== 'events') refreshHead()
