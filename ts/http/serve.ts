/**
 * `serve`: start the app on the runtime at hand (Bun.serve on Bun, `@hono/node-server` on Node,
 * `Deno.serve` on Deno) and resolve once it listens.
 */
import type { Hono } from 'hono'
import { InvalidOptionsError } from '../errors.ts'
import type { EventMap, EventStore } from '../store/types.ts'
import { createApp, internalsOf } from './app.ts'
import type { HttpOptions } from './options.ts'

/** Options of `serve`: the app's options plus where to listen. */
export interface ServeOptions extends HttpOptions {
  /** Default 8080; 0 picks a free port (read it from `url`). */
  port?: number
  /** Default `127.0.0.1`. Without tokens only a loopback host is allowed, unless `insecure`. */
  host?: string
  /** Serve without tokens on a non-loopback host: every client can read and append. */
  insecure?: boolean
  /**
   * Seconds a connection may stay idle before the server closes it (Bun only; default Bun's 10).
   * Event streams are exempt.
   */
  idleTimeout?: number
}

/** A running server. */
export interface RunningServer {
  /** `http://host:port/` with the port actually bound. */
  url: string
  /** Ends every event stream, stops accepting, closes open connections. Safe to call twice. */
  stop(): Promise<void>
  /** The app being served (add nothing to it after `serve`: its routes are compiled). */
  app: Hono
  [Symbol.asyncDispose](): Promise<void>
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host === '[::1]' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host)
}

/** Minimal view of the Deno global: only what `serve` calls. */
interface DenoLike {
  serve(
    options: { port: number; hostname: string; onListen?: (addr: { port: number }) => void },
    handler: (request: Request) => Response | Promise<Response>,
  ): { addr: { port: number }; shutdown(): Promise<void> }
}

/**
 * Start the HTTP API (and the page at `/ui`) over `store`.
 *
 * @throws InvalidOptionsError (INVALID_OPTIONS) when no tokens are configured and `host` is not a
 *   loopback address (pass `insecure: true` to allow it), or on a bad option.
 * @example
 * const store = await openStore('sqlite:./events.db')
 * const server = await serve(store, { port: 8080 })
 * console.log(`listening on ${server.url}`)
 * process.on('SIGTERM', async () => { await server.stop(); await store.close() })
 */
export async function serve<E extends EventMap>(store: EventStore<E>, options: ServeOptions = {}): Promise<RunningServer> {
  const host = options.host ?? '127.0.0.1'
  const port = options.port ?? 8080
  if (!Number.isSafeInteger(port) || port < 0 || port > 65535) throw new InvalidOptionsError('port must be 0..65535')
  if ((options.tokens === undefined || options.tokens.length === 0) && !isLoopback(host) && options.insecure !== true) {
    throw new InvalidOptionsError(
      `refusing to serve on ${host} without tokens: anyone could read and append. ` +
        'Configure tokens, bind a loopback host, or pass insecure: true',
    )
  }
  const app = createApp(store, options)
  const { sse } = internalsOf(app)
  const urlHost = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host
  let stopped: Promise<void> | undefined
  const finish = (url: string, close: () => Promise<void>): RunningServer => {
    const stop = () => {
      stopped ??= (async () => {
        sse.closeAll()
        // Let each stream write its end before connections are closed, so clients see a clean end
        // of stream rather than a reset (bounded: a stuck stream is cut after 2 s).
        const deadline = Date.now() + 2000
        while (sse.clients > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5))
        await close()
      })()
      return stopped
    }
    return { url, stop, app, [Symbol.asyncDispose]: stop }
  }

  if (typeof Bun !== 'undefined') {
    const server = Bun.serve({
      port,
      hostname: host,
      ...(options.idleTimeout === undefined ? {} : { idleTimeout: options.idleTimeout }),
      fetch: (request, bunServer) => app.fetch(request, bunServer),
    })
    return finish(`http://${urlHost}:${server.port}/`, () => server.stop(true))
  }

  const deno = (globalThis as { Deno?: DenoLike }).Deno
  if (deno !== undefined) {
    let server: ReturnType<DenoLike['serve']> | undefined
    const bound = await new Promise<number>((resolve) => {
      server = deno.serve({ port, hostname: host, onListen: ({ port }) => resolve(port) }, (request) => app.fetch(request))
    })
    return finish(`http://${urlHost}:${bound}/`, () => server!.shutdown())
  }

  // Node (20 has no Promise.withResolvers, hence the plain promises).
  const { serve: nodeServe } = await import('@hono/node-server')
  let server: ReturnType<typeof nodeServe> | undefined
  const bound = await new Promise<number>((resolve, reject) => {
    server = nodeServe({ fetch: app.fetch, port, hostname: host }, (info) => resolve(info.port))
    server.once('error', reject)
  })
  return finish(`http://${urlHost}:${bound}/`, () => {
    const closed = new Promise<void>((resolve) => server!.close(() => resolve()))
    ;(server as { closeAllConnections?: () => void }).closeAllConnections?.()
    return closed
  })
}
