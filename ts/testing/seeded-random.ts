/** A seeded generator for tests that print their seed, so a failing run can be replayed. */

/**
 * mulberry32: numbers in [0, 1), the same sequence for a given seed on every runtime.
 *
 * @example
 * ```ts
 * const random = seededRandom(42)
 * const roll = Math.floor(random() * 6)
 * ```
 */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32
  }
}
