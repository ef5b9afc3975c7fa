/**
 * How a state cache turns entity states into bytes and back: for snapshots, and for every write
 * when the native HAMT holds the states.
 */
export interface StateCodec<S> {
  encode(state: S): Uint8Array
  decode(bytes: Uint8Array): S
}

const utf8 = new TextEncoder()
const fromUtf8 = new TextDecoder('utf-8', { fatal: true })

/**
 * The default codec: UTF-8 JSON. States must survive `JSON.stringify` (no BigInt, Map, Date
 * identity, undefined fields); pass your own codec otherwise.
 *
 * @example
 * ```ts
 * const bytes = jsonCodec.encode({ balance: 10 })
 * jsonCodec.decode(bytes) // { balance: 10 }
 * ```
 */
export const jsonCodec: StateCodec<any> = {
  encode: (state) => utf8.encode(JSON.stringify(state)),
  decode: (bytes) => JSON.parse(fromUtf8.decode(bytes)),
}
