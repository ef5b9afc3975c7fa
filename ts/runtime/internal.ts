/**
 * Pieces shared by the runtime's loop and its built-in sources (not exported from the package).
 */
import type { Delivery } from './types.ts'

/**
 * The delivery init's commands are put and committed under. Sources recognise it by identity
 * (`delivery === INIT_DELIVERY`); a user-written source sees `{ id: 'init', message: undefined }`.
 */
export const INIT_DELIVERY: Delivery<never> = Object.freeze({ id: 'init', message: undefined })

/**
 * A message of an in-memory source (an iterable, a bus) with its sequence number as the id, made
 * into a string only when asked for.
 */
export class SequenceDelivery<Msg> implements Delivery<Msg> {
  readonly message: Msg
  private readonly seq: number
  constructor(message: Msg, seq: number) {
    this.message = message
    this.seq = seq
  }
  get id(): string {
    return String(this.seq)
  }
}

export function isThenable(value: unknown): value is PromiseLike<unknown> {
  return value !== null && typeof value === 'object' && typeof (value as PromiseLike<unknown>).then === 'function'
}

/**
 * An optional method of a built-in source, called by the loop once a run has started when nothing
 * but the source itself will see that run's deliveries (the run has no `replay` or `onError`
 * function): the source may then hand out one delivery object again and again, refilled for each
 * message, instead of allocating one per message (a measured share of the in-memory loop's cost:
 * bench/runtime.bench.ts, part 1). The shared object is refilled only when the next message is
 * taken, after the previous one was committed or rolled back; `detach` ends the sharing.
 */
export const SHARE_DELIVERY: unique symbol = Symbol('ringstate.runtime.shareDelivery')

/** A source that may share its delivery object (see `SHARE_DELIVERY`). */
export interface SharingSource {
  [SHARE_DELIVERY]?(): void
}
