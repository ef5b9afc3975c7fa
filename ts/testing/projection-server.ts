/**
 * A server with a projection runner and two tokens (read, and read + admin) on a memory store:
 * what the CLI's and the page's projection tests both drive.
 */
import { serve, type RunningServer } from '../http/index.ts'
import { startProjections, type Projection, type ProjectionRunner } from '../projections/index.ts'
import { openStore } from '../store/open.ts'
import type { EventStore } from '../store/types.ts'

export interface ProjectionServer extends AsyncDisposable {
  store: EventStore
  runner: ProjectionRunner
  server: RunningServer
  /** A token with the `read` scope. */
  reader: string
  /** A token with `read` and `admin`. */
  admin: string
}

/** Starts the runner and the server on port 0 and waits until every projection is caught up. */
export async function serveProjections(projections: Projection[], instanceId: string): Promise<ProjectionServer> {
  const store = await openStore('memory:')
  const runner = startProjections(store, projections, { instanceId })
  const reader = `${instanceId}-reader-token`.padEnd(16, '0')
  const admin = `${instanceId}-admin-token`.padEnd(16, '0')
  const server = await serve(store, {
    port: 0,
    projections: runner,
    tokens: [
      { name: 'reader', token: reader, scopes: ['read'] },
      { name: 'admin', token: admin, scopes: ['read', 'admin'] },
    ],
  })
  await runner.ready
  await runner.waitFor(await store.head())
  return {
    store,
    runner,
    server,
    reader,
    admin,
    async [Symbol.asyncDispose]() {
      await server.stop()
      await runner.stop()
      await store.close()
    },
  }
}
