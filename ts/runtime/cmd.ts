/**
 * Command helpers. Commands are plain functions; these build the common ones.
 */
import { AbortedError, InvalidOptionsError } from '../errors.ts'
import type { Cmd, CommandIo } from './types.ts'

/** The longest `cmd.delay` accepted: setTimeout's limit (about 24.8 days). */
const MAX_DELAY_MS = 2 ** 31 - 1

function of<Msg>(...messages: Msg[]): Cmd<Msg>[] {
  return messages.map((message) => () => message)
}

function map<A, B>(commands: readonly Cmd<A>[] | undefined, f: (message: A) => B | null | undefined): Cmd<B>[] {
  if (commands === undefined) return []
  if (typeof f !== 'function') throw new InvalidOptionsError('cmd.map(commands, f): f must be a function')
  const mapped: Cmd<B>[] = []
  for (const command of commands) {
    if (command === null || command === undefined) continue
    mapped.push((io: CommandIo): B | null | undefined | Promise<B | null | undefined> => {
      const result = command(io)
      if (result instanceof Promise) {
        return (result as Promise<A | null | undefined>).then((value) => (value === null || value === undefined ? null : f(value)))
      }
      const value = result as A | null | undefined
      return value === null || value === undefined ? null : f(value)
    })
  }
  return mapped
}

function delay<Msg>(ms: number, message: Msg): Cmd<Msg> {
  if (!Number.isFinite(ms) || ms < 0 || ms > MAX_DELAY_MS) {
    throw new InvalidOptionsError(`cmd.delay(ms, msg): ms must be a number from 0 to ${MAX_DELAY_MS}, got ${String(ms)}`)
  }
  return ({ signal }) =>
    new Promise<Msg>((resolve, reject) => {
      if (signal.aborted) return reject(new AbortedError('cmd.delay was aborted', { cause: signal.reason }))
      const onAbort = () => {
        clearTimeout(timer)
        reject(new AbortedError('cmd.delay was aborted', { cause: signal.reason }))
      }
      const timer = setTimeout(() => {
        signal.removeEventListener('abort', onAbort)
        resolve(message)
      }, ms)
      signal.addEventListener('abort', onAbort, { once: true })
    })
}

/**
 * Build commands.
 *
 * - `cmd.of(...msgs)`: one command per message, each yielding it (a message sent to oneself).
 * - `cmd.map(cmds, f)`: the same commands, their results passed through `f` (null results stay null),
 *   so a sub-program's commands fit a parent program's message type.
 * - `cmd.delay(ms, msg)`: yields `msg` after `ms` milliseconds; the run's signal cancels the wait.
 *   This is how time enters a program: never read the clock in `update`.
 *
 * @example
 * update: (msg, model) => {
 *   if (msg.type === 'start') return [model, [cmd.delay(1000, { type: 'tick' }), ...cmd.of({ type: 'started' })]]
 *   return [model]
 * }
 */
export const cmd = Object.freeze({ of, map, delay })
