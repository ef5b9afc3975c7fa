/**
 * `GET /v1/projections` and `POST /v1/projections/:name/{pause,resume,rebuild}`: the projection
 * runner's status and control. Without a runner every one of them answers 404 NOT_FOUND.
 */
import { Hono, type Context } from 'hono'
import { NotFoundError } from '../../errors.ts'
import { requireScope } from '../auth.ts'
import type { AppDeps } from '../context.ts'
import type { ProjectionRunnerSource, ProjectionShardStatus } from '../options.ts'
import { minPositionOf, waitOnRunner } from '../wait.ts'
import { toWire } from '../wire.ts'

function wire(shards: readonly ProjectionShardStatus[]): unknown {
  return shards.map((shard) => {
    const { lastError, ...rest } = shard
    const out = toWire(rest) as Record<string, unknown>
    // A runner may keep the Error itself: only its message leaves the process.
    if (lastError !== undefined) out.lastError = lastError instanceof Error ? lastError.message : String(lastError)
    return out
  })
}

/** The sub-app of the projections, mounted at `/v1`. */
export function projectionRoutes(deps: AppDeps): Hono {
  const { tokens, projections } = deps
  const app = new Hono()
  const runnerOf = (): ProjectionRunnerSource => {
    if (projections === undefined) throw new NotFoundError('no projection runner is configured on this server')
    return projections
  }
  const shardsOf = async (runner: ProjectionRunnerSource, name: string) => {
    const shards = (await runner.status()).filter((shard) => shard.name === name)
    if (shards.length === 0) throw new NotFoundError(`no projection is named ${JSON.stringify(name.slice(0, 64))}`)
    return shards
  }
  const control = (action: 'pause' | 'resume' | 'rebuild', status: 200 | 202) => async (c: Context) => {
    const runner = runnerOf()
    const name = c.req.param('name')!
    await shardsOf(runner, name)
    await runner[action](name)
    return c.json({ projections: wire(await shardsOf(runner, name)) }, status)
  }

  app.get('/projections', requireScope(tokens, 'read'), async (c) => {
    const runner = runnerOf()
    const wanted = minPositionOf(c)
    if (wanted !== undefined) {
      await waitOnRunner(runner, wanted.position, wanted.waitMs, undefined, c.req.raw.signal)
      if (wanted.waitMs > 0) c.header('preference-applied', 'wait')
    }
    return c.json({ projections: wire(await runner.status()) })
  })
  const admin = requireScope(tokens, 'admin')
  app.post('/projections/:name/pause', admin, control('pause', 200))
  app.post('/projections/:name/resume', admin, control('resume', 200))
  // A rebuild has started, not finished, when the runner answers.
  app.post('/projections/:name/rebuild', admin, control('rebuild', 202))
  return app
}
