/**
 * A growable ring of values: O(1) push at either end and shift, no per-item allocation once grown.
 * Internal to the runtime's in-memory sources.
 */
export class Deque<T> {
  private slots: (T | undefined)[] = new Array<T | undefined>(16).fill(undefined)
  private head = 0
  /** Number of values held. */
  length = 0

  push(value: T): void {
    if (this.length === this.slots.length) this.grow()
    this.slots[(this.head + this.length) & (this.slots.length - 1)] = value
    this.length++
  }

  unshift(value: T): void {
    if (this.length === this.slots.length) this.grow()
    this.head = (this.head - 1) & (this.slots.length - 1)
    this.slots[this.head] = value
    this.length++
  }

  /** Removes and returns the first value; `undefined` when empty. */
  shift(): T | undefined {
    if (this.length === 0) return undefined
    const value = this.slots[this.head]
    this.slots[this.head] = undefined
    this.head = (this.head + 1) & (this.slots.length - 1)
    this.length--
    return value
  }

  clear(): void {
    this.slots.fill(undefined)
    this.head = 0
    this.length = 0
  }

  private grow(): void {
    const size = this.slots.length
    const slots = new Array<T | undefined>(size * 2).fill(undefined)
    for (let i = 0; i < this.length; i++) slots[i] = this.slots[(this.head + i) & (size - 1)]
    this.slots = slots
    this.head = 0
  }
}
