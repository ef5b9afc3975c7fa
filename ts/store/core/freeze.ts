/**
 * Deep freezing, for values several readers share: the tail's event data and metadata, and the
 * states an aggregate's cache hands to the next command.
 */

/** Freezes `value` and every object and array reachable from it; frozen parts are not walked again. */
export function deepFreeze(value: unknown): void {
  if (typeof value !== 'object' || value === null || Object.isFrozen(value)) return
  Object.freeze(value)
  if (Array.isArray(value)) {
    for (const item of value) deepFreeze(item)
  } else {
    for (const key in value) deepFreeze((value as Record<string, unknown>)[key])
  }
}
