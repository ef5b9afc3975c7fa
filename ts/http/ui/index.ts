/**
 * The browser page at `/ui`: static files shipped in this folder, served from the same origin.
 *
 * Three files and nothing else: `index.html`, one ES module (`app.js`) and a stylesheet
 * (`style.css`). They are read once, when `uiRoutes()` is first called, so a request never touches
 * the disk. Every response carries a strict Content-Security-Policy: no inline script, no style
 * attribute, nothing from another origin, no framing. The page renders every value it fetches as
 * text (`textContent`), so an event whose data holds markup shows that markup, it never runs it.
 *
 * The page finds the API relative to its own address (`<base>/ui` talks to `<base>/v1/...`), so
 * an app mounted under a path prefix behind a proxy keeps working.
 */
import { Hono } from 'hono'
import { readFileSync } from 'node:fs'
import { createHash } from 'node:crypto'

/** The Content-Security-Policy of every `/ui` response. */
export const uiContentSecurityPolicy =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; " +
  "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

interface Asset {
  body: string
  type: string
  etag: string
}

let assets: Record<'html' | 'js' | 'css', Asset> | undefined

function load(name: string, type: string): Asset {
  const body = readFileSync(new URL(`./${name}`, import.meta.url), 'utf8')
  const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`
  return { body, type, etag }
}

function loadAssets(): Record<'html' | 'js' | 'css', Asset> {
  assets ??= {
    html: load('index.html', 'text/html; charset=utf-8'),
    js: load('app.js', 'text/javascript; charset=utf-8'),
    css: load('style.css', 'text/css; charset=utf-8'),
  }
  return assets
}

function respond(asset: Asset, ifNoneMatch: string | undefined): Response {
  const headers = {
    'Content-Type': asset.type,
    'Content-Security-Policy': uiContentSecurityPolicy,
    'X-Content-Type-Options': 'nosniff',
    'Referrer-Policy': 'no-referrer',
    // Revalidate every time (cheap, by ETag) so a new version of the package shows at once.
    'Cache-Control': 'no-cache',
    ETag: asset.etag,
  }
  if (ifNoneMatch === asset.etag) return new Response(null, { status: 304, headers })
  return new Response(asset.body, { status: 200, headers })
}

/**
 * The page's routes: `GET /ui` (the HTML), `GET /ui/app.js`, `GET /ui/style.css`; `GET /ui/`
 * redirects to `/ui` so the page's relative asset links resolve. Public: the page itself holds
 * no data, and every data call it makes carries the token the user typed in.
 *
 * `createApp` mounts these at its root unless `ui: false`; the page needs the API beside it.
 *
 * @example
 * import { createApp } from 'ringstate/http'
 *
 * const app = createApp(store)            // the API and, at /ui, this page
 * const page = await app.request('/ui')   // text/html with the strict Content-Security-Policy
 */
export function uiRoutes(): Hono {
  const files = loadAssets()
  const ui = new Hono()
  ui.get('/ui', (c) => respond(files.html, c.req.header('if-none-match')))
  ui.get('/ui/', (c) => c.redirect('../ui', 301))
  ui.get('/ui/app.js', (c) => respond(files.js, c.req.header('if-none-match')))
  ui.get('/ui/style.css', (c) => respond(files.css, c.req.header('if-none-match')))
  return ui
}
