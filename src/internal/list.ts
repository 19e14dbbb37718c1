/**
 * A node of an intrusive list: the list links its values through their own `prev` / `next`.
 *
 * @internal
 */
export interface Linked<A> {
  prev: A | undefined
  next: A | undefined
}

/**
 * An intrusive doubly linked list, for the idle connections and the waiters: push and unshift, pop (LIFO) and
 * shift (FIFO), and removing any one value are O(1) and allocate nothing, so leaving the queue, `dispose` and
 * `invalidateAll` stay linear. A value is in at most one list at a time.
 *
 * @internal
 */
export class List<A extends Linked<A>> {
  head: A | undefined = undefined
  tail: A | undefined = undefined
  length = 0

  push(value: A): void {
    value.next = undefined
    value.prev = this.tail
    if (this.tail === undefined) this.head = value
    else this.tail.next = value
    this.tail = value
    this.length++
  }

  unshift(value: A): void {
    value.prev = undefined
    value.next = this.head
    if (this.head === undefined) this.tail = value
    else this.head.prev = value
    this.head = value
    this.length++
  }

  pop(): A | undefined {
    const value = this.tail
    if (value !== undefined) this.remove(value)
    return value
  }

  shift(): A | undefined {
    const value = this.head
    if (value !== undefined) this.remove(value)
    return value
  }

  /** Removes a value that is in the list. */
  remove(value: A): void {
    if (value.prev !== undefined) value.prev.next = value.next
    else this.head = value.next
    if (value.next !== undefined) value.next.prev = value.prev
    else this.tail = value.prev
    value.prev = value.next = undefined
    this.length--
  }

  /** A snapshot, head first, for passes that change the list while they walk it. */
  toArray(): Array<A> {
    const out: Array<A> = []
    for (let value = this.head; value !== undefined; value = value.next) out.push(value)
    return out
  }
}
