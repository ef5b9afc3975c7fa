/**
 * The runtime's contract (DESIGN.md section 7): a program, its commands, the sources it reads
 * from, and what a running program reports.
 *
 * A program is three pure functions over a model (Elm, raj, redux-loop): `init`, `update`, `view`.
 * Everything with an effect is a command; a command's result is a message, given back to the
 * source's sink (an inbox, the store, the bus) and delivered like any other message.
 */

/** The `io` every command receives. `signal` aborts when the run is aborted or a sibling command of the same tick failed. */
export interface CommandIo {
  readonly signal: AbortSignal
}

/**
 * An effect. It runs after `update` (never during replay), may be async, and yields at most one
 * message; `null`/`undefined` (as a command or as its result) is ignored.
 */
export type Cmd<Msg> =
  | ((io: CommandIo) => Msg | null | undefined | Promise<Msg | null | undefined>)
  | null
  | undefined

/** What `view` learns besides the model. */
export interface ViewInfo {
  /** The position of the delivery just processed, when the source has positions. */
  position?: bigint
  /** True when commands were off for this delivery (replay). */
  replaying: boolean
}

/**
 * An Elm-style program. `Msg` is what the program receives; `Out` is what its commands yield,
 * which the source's sink takes (for an inbox or an iterable the same type; for a store source
 * the events to append, which come back as `Msg` when they match the source's query).
 *
 * `init` and `update` are synchronous and must not read the clock or randomness: time enters as
 * messages (`cmd.delay`), so a replay with commands off computes the same model.
 *
 * @example
 * const counter: Program<number, 'inc' | 'reset'> = {
 *   init: () => [0],
 *   update: (msg, n) => (msg === 'inc' ? [n + 1] : [0]),
 *   view: (n) => console.log('count', n),
 * }
 */
export interface Program<Model, Msg, Out = Msg> {
  /** The first model and the commands to run at start (skipped when replaying). */
  init(): readonly [Model, (readonly Cmd<Out>[])?]
  /** The next model and the commands to run. Synchronous: a returned Promise is INVALID_OPTIONS. */
  update(msg: Msg, model: Model): readonly [Model, (readonly Cmd<Out>[])?]
  /** Shows the model; `run` calls it after `init` and after every `update`, `batch` once at the end. */
  view?(model: Model, info: ViewInfo): void
}

/**
 * One message taken from a source. It is either committed (done with, for good) or rolled back
 * (delivered again by the next `next`).
 */
export interface Delivery<Msg> {
  /** The message; `null`/`undefined` is committed without calling `update`. */
  readonly message: Msg | null | undefined
  /** The message's position in its log, when it has one (store sources). */
  readonly position?: bigint
  /** Identifies the delivery within its source (a store event's id, a sequence number). */
  readonly id: string
  /** Set by a source that knows this delivery was processed before (store replay): commands off. */
  readonly replay?: boolean
}

/** What the runtime tells a source when it commits a delivery. */
export interface CommitInfo {
  /**
   * True when commands ran for the delivery. A durable source must then make the commit durable
   * before resolving; otherwise it may defer the write (the delivery has no effect to repeat).
   */
  readonly effects: boolean
}

/**
 * Where messages come from and where command results go.
 *
 * The runtime calls `next` once, then `put` (at most once) and `commit` or `rollback`, and only then
 * `next` again: one delivery at a time. Any method may return a plain value instead of a Promise
 * (the built-in sources do when they can, so a busy loop costs no microtask per message).
 */
export interface Source<Msg, Out = Msg> {
  /**
   * Called once before `init`'s commands: a source that knows init ran before says so (its commands
   * are then skipped). When init's commands run, their results are `put` and committed under the
   * delivery `{ id: 'init', message: undefined }`.
   */
  start?(signal: AbortSignal): { replayInit?: boolean } | void | Promise<{ replayInit?: boolean } | void>
  /**
   * The next delivery, or `undefined` once the source has ended. Waits while there is none;
   * rejects (ABORTED) when `signal` aborts.
   */
  next(signal: AbortSignal): Delivery<Msg> | undefined | Promise<Delivery<Msg> | undefined>
  /** Done with `delivery` (and with the results `put` for it): they take effect together. */
  commit(delivery: Delivery<Msg>, info: CommitInfo): void | Promise<void>
  /** Forget the uncommitted delivery and its results; `next` delivers it again. */
  rollback(): void | Promise<void>
  /**
   * Takes the non-null command results of `delivery`, in command order; they take effect with its
   * commit. A source without `put` cannot take results: a command yielding one is then an error.
   */
  put?(messages: readonly Out[], delivery: Delivery<Msg>): void | Promise<void>
  /**
   * Called by `batch` before the first delivery: from now on `next` resolves `undefined` once
   * everything available at this moment, and every result put since, has been delivered.
   */
  untilNow?(signal: AbortSignal): void | Promise<void>
  /** Called once when the run ends, however it ends: release what `next` holds (a follow, a handler). */
  detach?(): void | Promise<void>
}

/** What to do with a failed delivery: roll back and end the run, or commit it unchanged and go on. */
export type ErrorAction = 'stop' | 'skip'

/** Options shared by `run` and `batch`. */
export interface RunOptions<Msg> {
  /**
   * Commands off: `true` for every delivery, or a function choosing deliveries (it is also asked
   * about init, with `{ id: 'init', message: undefined }`). The model must come out the same.
   */
  replay?: boolean | ((delivery: Delivery<Msg>) => boolean)
  /** Aborting it ends the run: a waiting `next` and running commands see it; the tick rolls back. */
  signal?: AbortSignal
  /**
   * What a failing `update`, `view` or command does (default `'stop'`): `'stop'` rolls the delivery
   * back and rejects; `'skip'` commits it with the model unchanged and its results dropped (counted in `errors`).
   */
  onError?: ErrorAction | ((error: Error, delivery: Delivery<Msg>) => ErrorAction)
}

/** Counters of one run. */
export interface RuntimeMetrics {
  /** Messages that reached `update`. */
  processed: number
  /** Deliveries committed (null messages and skipped failures included). */
  committed: number
  /** Deliveries rolled back. */
  rolledBack: number
  /** Deliveries processed with commands off. */
  replayed: number
  /** Commands started. */
  commandsRun: number
  /** Commands not started because of replay. */
  commandsSkipped: number
  /** Failures of `update`, `view` or a command (stopping or skipped). */
  errors: number
}

/** Why a run ended. */
export type EndReason = 'ended' | 'stopped' | 'aborted'

/** What `done` resolves to. */
export interface RunResult<Model> {
  /** The model after the last committed delivery. */
  model: Model
  /** The position of the last committed delivery that had one. */
  position: bigint | undefined
  reason: EndReason
}

/** A running program. */
export interface RunHandle<Model> {
  /** The model after the last committed delivery. */
  model(): Model
  /** The position of the last committed delivery that had one. */
  position(): bigint | undefined
  /** A copy of the counters. */
  metrics(): RuntimeMetrics
  /** Finish the current delivery, take no other, end with reason `'stopped'`. Resolves once ended. */
  stop(): Promise<void>
  /**
   * Settles when the run ends: resolves on end, stop or abort; rejects on a failure with
   * `onError: 'stop'` (or a failing source). Await it (or `stop()`, which never rejects) so a
   * failure is not an unhandled rejection.
   */
  readonly done: Promise<RunResult<Model>>
}

/** What `batch` resolves to at quiescence. */
export interface BatchResult<Model> {
  model: Model
  /** Messages that reached `update`, command results included. */
  processed: number
  /** The position of the last committed delivery that had one. */
  position: bigint | undefined
}
