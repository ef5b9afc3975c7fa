/** `GET /v1/subscribe`: server-sent events (see ../sse.ts for the protocol). */
import { Hono } from 'hono'
import { InvalidQueryError } from '../../errors.ts'
import { requireScope } from '../auth.ts'
import type { AppDeps } from '../context.ts'
import { parsePosition, queryFromParams } from '../wire.ts'

/** What Bun passes as the second argument of `fetch`: only the call used here. */
interface BunServerLike {
  timeout(request: Request, seconds: number): void
}

function isBunServer(env: unknown): env is BunServerLike {
  return typeof env === 'object' && env !== null && typeof (env as BunServerLike).timeout === 'function'
}

/** The sub-app of the event stream, mounted at `/v1`. */
export function subscribeRoutes(deps: AppDeps): Hono {
  const { store, tokens, sse } = deps
  const app = new Hono()
  app.get('/subscribe', requireScope(tokens, 'read'), (c) => {
    const url = new URL(c.req.url)
    const query = queryFromParams(url)
    const invalid = (message: string) => new InvalidQueryError(message)
    // Last-Event-ID wins: it is what the client really received before it reconnected.
    const lastEventId = c.req.header('last-event-id')
    const afterParam = url.searchParams.get('after')
    const after =
      lastEventId !== undefined && lastEventId !== ''
        ? parsePosition(lastEventId.trim(), 'Last-Event-ID', invalid)
        : afterParam !== null
          ? parsePosition(afterParam, 'after', invalid)
          : 0n
    const response = sse.open(store, query, after, c.req.raw.signal)
    // A quiet stream is not an idle connection: on Bun, lift the server's idle timeout for it.
    if (isBunServer(c.env)) c.env.timeout(c.req.raw, 0)
    return response
  })
  return app
}
