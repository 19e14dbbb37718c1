/**
 * A growable ring buffer: O(1) push / pop at the back and shift at the front, for the idle connections (LIFO takes
 * from the back, FIFO from the front).
 *
 * @internal
 */
export class Deque<A> {
  private buffer: Array<A | undefined> = new Array(8)
  private head = 0
  length = 0

  push(value: A): void {
    if (this.length === this.buffer.length) this.grow()
    this.buffer[(this.head + this.length) & (this.buffer.length - 1)] = value
    this.length++
  }

  pop(): A | undefined {
    if (this.length === 0) return undefined
    this.length--
    const index = (this.head + this.length) & (this.buffer.length - 1)
    const value = this.buffer[index]
    this.buffer[index] = undefined
    return value
  }

  shift(): A | undefined {
    if (this.length === 0) return undefined
    const value = this.buffer[this.head]
    this.buffer[this.head] = undefined
    this.head = (this.head + 1) & (this.buffer.length - 1)
    this.length--
    return value
  }

  /** Removes one value (by identity); O(n), for the rare paths (invalidate, maintenance). */
  remove(value: A): boolean {
    const items = this.toArray()
    const index = items.indexOf(value)
    if (index < 0) return false
    items.splice(index, 1)
    this.clear()
    for (const item of items) this.push(item)
    return true
  }

  toArray(): Array<A> {
    const out: Array<A> = []
    for (let i = 0; i < this.length; i++) out.push(this.buffer[(this.head + i) & (this.buffer.length - 1)] as A)
    return out
  }

  clear(): void {
    this.buffer = new Array(8)
    this.head = 0
    this.length = 0
  }

  private grow(): void {
    const items = this.toArray()
    this.buffer = new Array(this.buffer.length * 2)
    for (let i = 0; i < items.length; i++) this.buffer[i] = items[i]
    this.head = 0
  }
}
