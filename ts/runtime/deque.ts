/**
 * A FIFO of values with O(1) amortised push, shift and (after a shift) unshift: a plain array
 * read from a moving head, compacted when the consumed prefix outgrows the rest. Plain arrays
 * are what the engine optimises best (a ring of fixed slots cost more in `grow` than it saved).
 * Internal to the runtime's in-memory sources.
 */
export class Deque<T> {
  private items: T[] = []
  private head = 0

  /** Number of values held. */
  get length(): number {
    return this.items.length - this.head
  }

  push(value: T): void {
    this.items.push(value)
  }

  unshift(value: T): void {
    if (this.head > 0) this.items[--this.head] = value
    else this.items.unshift(value)
  }

  /** Removes and returns the first value; `undefined` when empty. */
  shift(): T | undefined {
    const items = this.items
    if (this.head === items.length) return undefined
    const value = items[this.head]!
    items[this.head++] = undefined as T
    if (this.head === items.length) {
      this.items = []
      this.head = 0
    } else if (this.head >= 1024 && this.head * 2 >= items.length) {
      this.items = items.slice(this.head)
      this.head = 0
    }
    return value
  }

  clear(): void {
    this.items = []
    this.head = 0
  }
}
