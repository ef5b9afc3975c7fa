/**
 * The tick loop behind `run` and `batch` (DESIGN.md section 7).
 *
 * A tick: take one delivery; a null message is committed as it is; otherwise `update`, `view`
 * (run mode), then the commands (unless replaying), their non-null results kept in command order;
 * the results are put; then the delivery is committed. A failure before the commit rolls the
 * delivery back. The next delivery is not taken before the previous one is committed.
 *
 * The loop stays synchronous while the source answers synchronously and no command is async, so a
 * busy in-memory source costs no microtask per message; it yields to the event loop (a macrotask)
 * once it has kept the thread for `YIELD_AFTER_MS`, so timers, I/O and `stop()` still get their turn.
 */
import { AbortedError, InvalidOptionsError, RuntimeCommandFailedError, RuntimeUpdateFailedError } from '../errors.ts'
import { INIT_DELIVERY, isThenable, SHARE_DELIVERY, type SharingSource } from './internal.ts'
import type {
  BatchResult,
  Cmd,
  CommitInfo,
  Delivery,
  EndReason,
  ErrorAction,
  Program,
  RunHandle,
  RunOptions,
  RunResult,
  RuntimeMetrics,
  Source,
} from './types.ts'

// What `spin` stopped for.
const ENDED = 0
const HALTED = 1
const YIELD = 2
const WAIT_NEXT = 3
const WAIT_TICK = 4
/** How many synchronous deliveries run between two looks at the clock (a power of two). */
const CHECK_EVERY = 1024
/** The longest the loop keeps the thread without yielding to the event loop, in ms. */
const YIELD_AFTER_MS = 8
const NEVER_ABORTED = new AbortController().signal
// Shared, so a commit allocates nothing.
const WITH_EFFECTS: CommitInfo = Object.freeze({ effects: true })
const WITHOUT_EFFECTS: CommitInfo = Object.freeze({ effects: false })

const macrotask: () => Promise<void> =
  typeof setImmediate === 'function'
    ? () => new Promise<void>((resolve) => setImmediate(resolve))
    : () => new Promise<void>((resolve) => setTimeout(resolve, 0))

/** Thrown inside the loop when the run's signal aborted mid-tick; the loop turns it into reason 'aborted'. */
class AbortTick {
  readonly reason: unknown

  constructor(reason: unknown) {
    this.reason = reason
  }
}

type MaybePromise<T> = T | Promise<T>

function then<T, R>(value: MaybePromise<T>, f: (value: T) => MaybePromise<R>): MaybePromise<R> {
  return isThenable(value) ? Promise.resolve(value).then(f) : f(value as T)
}

/** An error message naming the delivery's position (never its payload: messages carry no data). */
function at(what: string, position: bigint | undefined): string {
  return position === undefined ? what : `${what} at position ${position}`
}

function checkStep<Model, Out>(
  result: unknown,
  step: 'init' | 'update',
): readonly [Model, (readonly Cmd<Out>[])?] {
  // Arrays first: the common case costs one check (and an array is never a thenable here).
  if (Array.isArray(result) && result.length !== 0 && result.length <= 2) {
    // Never read past the end: an out-of-bounds index read takes the engine's slow path.
    const commands = result.length === 2 ? result[1] : undefined
    if (commands === undefined || commands === null || Array.isArray(commands)) {
      return result as unknown as readonly [Model, (readonly Cmd<Out>[])?]
    }
    throw new InvalidOptionsError(`${step} returned commands that are not an array`)
  }
  if (isThenable(result)) {
    throw new InvalidOptionsError(`${step} returned a Promise: ${step} must be synchronous (do async work in a command)`)
  }
  throw new InvalidOptionsError(`${step} must return [model] or [model, commands]`)
}

function validate<Model, Msg, Out>(
  program: Program<Model, Msg, Out>,
  source: Source<Msg, Out>,
  options: RunOptions<Msg>,
): void {
  if (program === null || typeof program !== 'object') throw new InvalidOptionsError('program must be an object with init and update')
  if (typeof program.init !== 'function') throw new InvalidOptionsError('program.init must be a function')
  if (typeof program.update !== 'function') throw new InvalidOptionsError('program.update must be a function')
  if (program.view !== undefined && typeof program.view !== 'function') throw new InvalidOptionsError('program.view must be a function')
  if (source === null || typeof source !== 'object' || typeof source.next !== 'function' ||
      typeof source.commit !== 'function' || typeof source.rollback !== 'function') {
    throw new InvalidOptionsError('source must have next, commit and rollback')
  }
  if (options === null || typeof options !== 'object') throw new InvalidOptionsError('options must be an object')
  const { replay, signal, onError } = options
  if (replay !== undefined && typeof replay !== 'boolean' && typeof replay !== 'function') {
    throw new InvalidOptionsError('replay must be a boolean or a function')
  }
  if (signal !== undefined && !(signal instanceof AbortSignal)) throw new InvalidOptionsError('signal must be an AbortSignal')
  if (onError !== undefined && onError !== 'stop' && onError !== 'skip' && typeof onError !== 'function') {
    throw new InvalidOptionsError("onError must be 'stop', 'skip' or a function")
  }
}

/** One run of a program over a source. */
class Engine<Model, Msg, Out> {
  model!: Model
  position: bigint | undefined = undefined
  readonly counters: RuntimeMetrics = {
    processed: 0,
    committed: 0,
    rolledBack: 0,
    replayed: 0,
    commandsRun: 0,
    commandsSkipped: 0,
    errors: 0,
  }
  private stopping = false
  /** Set when the run's signal aborts or `stop()` is called. */
  private halted = false
  /** The source's `start` succeeded: `detach` is this run's to call. */
  private attached = false
  private pendingNext: PromiseLike<Delivery<Msg> | undefined> | undefined = undefined
  private pendingTick: Promise<void> | undefined = undefined
  private readonly stopController = new AbortController()
  /** Aborts with the user's signal: what commands see and what makes a tick roll back. */
  private readonly runSignal: AbortSignal
  /** Aborts with the user's signal or `stop()`: what `next` sees. */
  private readonly nextSignal: AbortSignal
  private readonly replayAll: boolean
  private readonly replayWhen: ((delivery: Delivery<Msg>) => boolean) | undefined
  private readonly onError: RunOptions<Msg>['onError']

  private readonly program: Program<Model, Msg, Out>
  private readonly source: Source<Msg, Out>
  private readonly viewEach: boolean

  constructor(
    program: Program<Model, Msg, Out>,
    source: Source<Msg, Out>,
    options: RunOptions<Msg>,
    /** `run` shows every model; `batch` only the final one. */
    viewEach: boolean,
  ) {
    this.program = program
    this.source = source
    this.viewEach = viewEach
    this.runSignal = options.signal ?? NEVER_ABORTED
    this.nextSignal = options.signal ? AbortSignal.any([options.signal, this.stopController.signal]) : this.stopController.signal
    this.replayAll = options.replay === true
    this.replayWhen = typeof options.replay === 'function' ? options.replay : undefined
    this.onError = options.onError ?? 'stop'
    if (options.signal) {
      if (options.signal.aborted) this.halted = true
      else options.signal.addEventListener('abort', () => (this.halted = true), { once: true })
    }
  }

  stop(): void {
    this.stopping = true
    this.halted = true
    this.stopController.abort(new AbortedError('the run was stopped'))
  }

  /** Calls `init` (synchronously: the model exists as soon as `run` returns). */
  init(): readonly [Model, (readonly Cmd<Out>[])?] {
    let result: unknown
    try {
      result = this.program.init()
    } catch (error) {
      throw new RuntimeUpdateFailedError('init threw', { cause: error })
    }
    const checked = checkStep<Model, Out>(result, 'init')
    this.model = checked[0]
    return checked
  }

  /** Start the source, run init's commands, then tick until the source ends, stop or abort. */
  async loop(initCommands: readonly Cmd<Out>[] | undefined): Promise<EndReason> {
    try {
      return await this.loopInner(initCommands)
    } finally {
      // Only a run that started the source releases it (a refused start must not end another run's).
      if (this.attached && this.source.detach) await this.source.detach()
    }
  }

  private async loopInner(initCommands: readonly Cmd<Out>[] | undefined): Promise<EndReason> {
    const source = this.source
    let replayInit = false
    if (!source.start) this.attached = true
    else {
      try {
        const started = await source.start(this.nextSignal)
        this.attached = true
        replayInit = started?.replayInit === true
      } catch (error) {
        if (this.runSignal.aborted) return 'aborted'
        if (this.stopping) return 'stopped'
        throw error
      }
    }
    // No callback of this run is given a delivery: a built-in source may reuse one object.
    if (this.replayWhen === undefined && typeof this.onError !== 'function') (source as SharingSource)[SHARE_DELIVERY]?.()
    const init = INIT_DELIVERY as Delivery<Msg>
    const replayingInit = replayInit || this.replays(init)
    if (this.viewEach) this.show(this.model, { position: undefined, replaying: replayingInit }, undefined)
    const live = initCommands?.filter((command) => command !== null && command !== undefined) ?? []
    if (live.length > 0) {
      if (replayingInit) {
        this.counters.commandsSkipped += live.length
      } else {
        // init has no delivery to skip: a failing init command ends the run whatever onError says.
        try {
          const results = await this.runCommands(live, undefined)
          if (results.length > 0) await this.put(results, init)
          await source.commit(init, WITH_EFFECTS)
        } catch (error) {
          await source.rollback()
          if (error instanceof AbortTick) return 'aborted'
          throw error
        }
      }
    }

    for (;;) {
      let state: number
      try {
        state = this.spin(performance.now() + YIELD_AFTER_MS)
      } catch (error) {
        if (error instanceof AbortTick) return 'aborted'
        throw error
      }
      if (state === ENDED) return 'ended'
      if (state === HALTED) return this.runSignal.aborted ? 'aborted' : 'stopped'
      if (state === YIELD) {
        await macrotask()
        continue
      }
      if (state === WAIT_NEXT) {
        let next: Delivery<Msg> | undefined
        try {
          next = await this.pendingNext
        } catch (error) {
          if (this.runSignal.aborted) return 'aborted'
          if (this.stopping) return 'stopped'
          throw error
        } finally {
          this.pendingNext = undefined
        }
        if (next === undefined) return 'ended'
        const ticked = this.tick(next)
        if (ticked === undefined) continue
        this.pendingTick = ticked
      }
      try {
        await this.pendingTick
      } catch (error) {
        if (error instanceof AbortTick) return 'aborted'
        throw error
      } finally {
        this.pendingTick = undefined
      }
    }
  }

  /**
   * Runs deliveries for as long as everything answers synchronously, in a plain (not async)
   * function: a busy in-memory source then costs no microtask and no generator frame per message.
   * Returns why it stopped; a pending `next` or tick is left in `pendingNext` / `pendingTick`.
   */
  private spin(deadline: number): number {
    const source = this.source
    const signal = this.nextSignal
    let count = 0
    for (;;) {
      // One plain field for both: reading AbortSignal.aborted per message costs a native call.
      if (this.halted) return HALTED
      const next = source.next(signal)
      if (next === undefined) return ENDED
      if (isThenable(next)) {
        this.pendingNext = next as PromiseLike<Delivery<Msg> | undefined>
        return WAIT_NEXT
      }
      const ticked = this.tick(next as Delivery<Msg>)
      if (ticked !== undefined) {
        this.pendingTick = ticked
        return WAIT_TICK
      }
      if ((++count & (CHECK_EVERY - 1)) === 0 && performance.now() >= deadline) return YIELD
    }
  }

  private replays(delivery: Delivery<Msg>): boolean {
    return this.replayAll || (this.replayWhen !== undefined && this.replayWhen(delivery) === true)
  }

  /** Calls view; a throw is RUNTIME_UPDATE_FAILED. */
  private show(model: Model, info: { position?: bigint; replaying: boolean }, position: bigint | undefined): void {
    const view = this.program.view
    if (view === undefined) return
    try {
      view.call(this.program, model, info)
    } catch (error) {
      throw new RuntimeUpdateFailedError(at('view threw', position), { cause: error, position })
    }
  }

  /** Shows the final model (batch). */
  showFinal(): void {
    this.show(this.model, { position: this.position, replaying: false }, this.position)
  }

  private tick(delivery: Delivery<Msg>): void | Promise<void> {
    const replaying = delivery.replay === true || this.replays(delivery)
    if (replaying) this.counters.replayed++
    const message = delivery.message
    if (message === null || message === undefined) return this.commit(delivery, this.model, false)
    let next: Model
    let commands: readonly Cmd<Out>[] | undefined
    try {
      let result: unknown
      try {
        result = this.program.update(message, this.model)
      } catch (error) {
        throw new RuntimeUpdateFailedError(at('update threw', delivery.position), { cause: error, position: delivery.position })
      }
      const step = checkStep<Model, Out>(result, 'update')
      next = step[0]
      commands = step.length === 2 ? step[1] : undefined
      this.counters.processed++
      if (this.viewEach && this.program.view !== undefined) {
        this.show(next, { position: delivery.position, replaying }, delivery.position)
      }
    } catch (error) {
      if (error instanceof RuntimeUpdateFailedError) return this.fail(error, delivery, false)
      return this.abandon(error)
    }
    if (commands === undefined || commands === null || commands.length === 0) return this.commit(delivery, next, false)
    let live = 0
    for (let i = 0; i < commands.length; i++) if (commands[i] !== null && commands[i] !== undefined) live++
    if (live === 0) return this.commit(delivery, next, false)
    if (replaying) {
      this.counters.commandsSkipped += live
      return this.commit(delivery, next, false)
    }
    const filtered = live === commands.length ? commands : commands.filter((c) => c !== null && c !== undefined)
    let results: MaybePromise<Out[]>
    try {
      results = this.runCommands(filtered as readonly ((io: { signal: AbortSignal }) => unknown)[], delivery.position)
    } catch (error) {
      return this.failCommand(error, delivery)
    }
    if (isThenable(results)) {
      return (results as Promise<Out[]>).then(
        (values) => this.finish(delivery, next, values),
        (error) => this.failCommand(error, delivery),
      )
    }
    return this.finish(delivery, next, results as Out[])
  }

  private finish(delivery: Delivery<Msg>, next: Model, results: Out[]): void | Promise<void> {
    if (results.length === 0) return this.commit(delivery, next, true)
    let put: void | Promise<void>
    try {
      put = this.put(results, delivery)
    } catch (error) {
      return this.putFailed(error, delivery)
    }
    if (isThenable(put)) {
      return put.then(
        () => this.commit(delivery, next, true),
        (error) => this.putFailed(error, delivery),
      )
    }
    return this.commit(delivery, next, true)
  }

  private put(results: Out[], delivery: Delivery<Msg>): void | Promise<void> {
    if (!this.source.put) {
      throw new RuntimeCommandFailedError('a command yielded a message and this source takes no command results', {
        position: delivery.position,
      })
    }
    return this.source.put(results, delivery)
  }

  private putFailed(error: unknown, delivery: Delivery<Msg>): void | Promise<void> {
    if (error instanceof RuntimeCommandFailedError) return this.fail(error, delivery, true)
    return this.abandon(error)
  }

  private failCommand(error: unknown, delivery: Delivery<Msg>): void | Promise<void> {
    if (error instanceof AbortTick || this.runSignal.aborted) {
      return then(this.rollback(), () => {
        throw error instanceof AbortTick ? error : new AbortTick(this.runSignal.reason)
      })
    }
    const failure =
      error instanceof RuntimeCommandFailedError
        ? error
        : new RuntimeCommandFailedError(at('a command failed', delivery.position), { cause: error, position: delivery.position })
    return this.fail(failure, delivery, true)
  }

  /** A failure of update, view or a command: onError decides between rolling back and skipping. */
  private fail(error: Error, delivery: Delivery<Msg>, effects: boolean): void | Promise<void> {
    this.counters.errors++
    let action: ErrorAction
    try {
      action = typeof this.onError === 'function' ? this.onError(error, delivery) : (this.onError ?? 'stop')
    } catch (handlerError) {
      return this.abandon(handlerError)
    }
    if (action === 'skip') return this.commit(delivery, this.model, effects)
    return this.abandon(error)
  }

  /** Roll back and end the run with `error`. */
  private abandon(error: unknown): Promise<void> | never {
    const rolledBack = this.rollback()
    if (isThenable(rolledBack)) {
      return rolledBack.then(() => {
        throw error
      })
    }
    throw error
  }

  private rollback(): void | Promise<void> {
    this.counters.rolledBack++
    return this.source.rollback()
  }

  private commit(delivery: Delivery<Msg>, next: Model, effects: boolean): void | Promise<void> {
    let committed: void | Promise<void>
    try {
      committed = this.source.commit(delivery, effects ? WITH_EFFECTS : WITHOUT_EFFECTS)
    } catch (error) {
      return this.abandon(error)
    }
    if (isThenable(committed)) {
      return committed.then(
        () => this.committed(delivery, next),
        (error) => this.abandon(error),
      )
    }
    this.committed(delivery, next)
  }

  private committed(delivery: Delivery<Msg>, next: Model): void {
    this.model = next
    if (delivery.position !== undefined) this.position = delivery.position
    this.counters.committed++
  }

  /**
   * Starts every command at once and collects their non-null results in command order, whatever
   * order they finish in. The first failure aborts the siblings' signal and, once all have settled,
   * fails the tick; an abort of the run fails it at once (a command that ignores its signal is left
   * behind rather than waited for).
   */
  private runCommands(
    commands: readonly ((io: { signal: AbortSignal }) => unknown)[],
    position: bigint | undefined,
  ): MaybePromise<Out[]> {
    if (this.runSignal.aborted) throw new AbortTick(this.runSignal.reason)
    this.counters.commandsRun += commands.length
    if (commands.length === 1) {
      let result: unknown
      try {
        result = commands[0]!({ signal: this.runSignal })
      } catch (error) {
        throw new RuntimeCommandFailedError(at('a command threw', position), { cause: error, position })
      }
      if (!isThenable(result)) return result === null || result === undefined ? [] : [result as Out]
      if (this.runSignal === NEVER_ABORTED) {
        // Nothing can abort the wait: one promise hop instead of settle's bookkeeping.
        return Promise.resolve(result).then(
          (value) => (value === null || value === undefined ? [] : [value as Out]),
          (error) => {
            throw new RuntimeCommandFailedError(at('a command failed', position), { cause: error, position })
          },
        )
      }
      return this.settle([result], undefined, position)
    }
    // The siblings' signal: aborted by the run's signal or by the first failure. Forwarded by a
    // listener removed when the tick ends (AbortSignal.any per tick could pile up on a long run).
    const tick = new AbortController()
    let unlink: (() => void) | undefined
    const runSignal = this.runSignal
    if (runSignal !== NEVER_ABORTED) {
      const forward = () => tick.abort(runSignal.reason)
      runSignal.addEventListener('abort', forward, { once: true })
      unlink = () => runSignal.removeEventListener('abort', forward)
    }
    const io = { signal: tick.signal }
    const started: unknown[] = []
    let thrown: { error: unknown } | undefined
    for (const command of commands) {
      try {
        started.push(command(io))
      } catch (error) {
        thrown = { error }
        tick.abort(error)
        break
      }
    }
    if (thrown === undefined && !started.some(isThenable)) {
      unlink?.()
      return started.filter((value) => value !== null && value !== undefined) as Out[]
    }
    return this.settle(started, thrown, position, tick, unlink)
  }

  private settle(
    started: unknown[],
    thrown: { error: unknown } | undefined,
    position: bigint | undefined,
    tick?: AbortController,
    unlink?: () => void,
  ): Promise<Out[]> {
    const runSignal = this.runSignal
    return new Promise<Out[]>((resolve, reject) => {
      const values = new Array<unknown>(started.length)
      let failure = thrown
      // One more than the commands: the last `done()` below runs once every callback is attached,
      // so a tick whose only command threw synchronously settles too.
      let remaining = started.length + 1
      let settled = false
      const finish = () => {
        settled = true
        unlink?.()
        if (runSignal !== NEVER_ABORTED) runSignal.removeEventListener('abort', onAbort)
      }
      const onAbort = () => {
        if (settled) return
        finish()
        reject(new AbortTick(runSignal.reason))
      }
      const done = () => {
        if (--remaining !== 0 || settled) return
        finish()
        if (failure !== undefined) {
          reject(new RuntimeCommandFailedError(at('a command failed', position), { cause: failure.error, position }))
          return
        }
        const results: Out[] = []
        for (const value of values) if (value !== null && value !== undefined) results.push(value as Out)
        resolve(results)
      }
      if (runSignal.aborted) return onAbort()
      if (runSignal !== NEVER_ABORTED) runSignal.addEventListener('abort', onAbort, { once: true })
      started.forEach((value, index) => {
        if (!isThenable(value)) {
          values[index] = value
          done()
          return
        }
        value.then(
          (result) => {
            values[index] = result
            done()
          },
          (error) => {
            if (failure === undefined) {
              failure = { error }
              tick?.abort(error)
            }
            done()
          },
        )
      })
      done()
    })
  }
}

/**
 * Runs a program over a source until the source ends, `stop()` is called or the signal aborts.
 *
 * `init` runs at once (the model is there when `run` returns); the rest runs in the background:
 * see `done`. Types flow from the source: `msg` in `update` is the source's message type, and
 * commands yield what its sink takes.
 *
 * @throws InvalidOptionsError (INVALID_OPTIONS) for a malformed program, source or options, or an
 *   `init` that returns a Promise; RuntimeUpdateFailedError (RUNTIME_UPDATE_FAILED) when `init` throws.
 * @example
 * const box = inbox<{ type: 'add'; n: number }>({ capacity: 1024 })
 * const handle = run({ init: () => [0], update: (msg, sum) => [sum + msg.n] }, box)
 * await box.put({ type: 'add', n: 2 })
 * box.close()
 * const { model, reason } = await handle.done // 2, 'ended'
 */
export function run<Model, Msg, Out>(
  program: Program<Model, NoInfer<Msg>, NoInfer<Out>>,
  source: Source<Msg, Out>,
  options: RunOptions<NoInfer<Msg>> = {},
): RunHandle<Model> {
  validate(program, source, options)
  const engine = new Engine(program, source, options, true)
  const [, initCommands] = engine.init()
  const done: Promise<RunResult<Model>> = engine
    .loop(initCommands)
    .then((reason) => ({ model: engine.model, position: engine.position, reason }))
  return {
    model: () => engine.model,
    position: () => engine.position,
    metrics: () => ({ ...engine.counters }),
    stop: () => {
      engine.stop()
      return done.then(
        () => undefined,
        () => undefined,
      )
    },
    done,
  }
}

/**
 * Runs a program until quiescence: the source has delivered everything it had when the batch
 * began (for a store source: up to the head at that moment, plus the batch's own outputs) and no
 * command result, or result of a result, is pending. `view` is called once, with the final model.
 *
 * @throws (rejects) InvalidOptionsError, RuntimeUpdateFailedError, RuntimeCommandFailedError with
 *   `onError: 'stop'`; AbortedError (ABORTED) when the signal aborts (the delivery in hand rolls back).
 * @example
 * const prices = fromIterable([{ sku: 'a', price: 10 }, { sku: 'b', price: 12 }])
 * const { model, processed } = await batch(
 *   { init: () => [0], update: (item, total) => [total + item.price] },
 *   prices,
 * ) // 22, 2
 */
export async function batch<Model, Msg, Out>(
  program: Program<Model, NoInfer<Msg>, NoInfer<Out>>,
  source: Source<Msg, Out>,
  options: RunOptions<NoInfer<Msg>> = {},
): Promise<BatchResult<Model>> {
  validate(program, source, options)
  const bounded: Source<Msg, Out> = {
    ...bindSource(source),
    start: async (signal) => {
      const started = source.start ? await source.start(signal) : undefined
      try {
        if (source.untilNow) await source.untilNow(signal)
      } catch (error) {
        // The start succeeded but this run will not begin: release the source here.
        if (source.detach) await source.detach()
        throw error
      }
      return started
    },
  }
  const engine = new Engine(program, bounded, options, false)
  const [, initCommands] = engine.init()
  const reason = await engine.loop(initCommands)
  if (reason !== 'ended') {
    throw new AbortedError(`the batch was ${reason === 'stopped' ? 'stopped' : 'aborted'} before quiescence`, {
      cause: options.signal?.reason,
    })
  }
  engine.showFinal()
  return { model: engine.model, processed: engine.counters.processed, position: engine.position }
}

/** The source's methods bound to it, so a wrapper can replace one of them. */
function bindSource<Msg, Out>(source: Source<Msg, Out>): Source<Msg, Out> & SharingSource {
  return {
    next: source.next.bind(source),
    commit: source.commit.bind(source),
    rollback: source.rollback.bind(source),
    put: source.put?.bind(source),
    detach: source.detach?.bind(source),
    [SHARE_DELIVERY]: (source as SharingSource)[SHARE_DELIVERY]?.bind(source),
  }
}
