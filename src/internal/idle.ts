import type { Item } from "./item.js"

/**
 * The idle connections, as an intrusive doubly linked list through the items' own `prev` / `next`: push, pop
 * (LIFO), shift (FIFO) and removing any one item are O(1) and allocate nothing, so `dispose` and `invalidateAll`
 * stay linear.
 *
 * @internal
 */
export class IdleList<C> {
  head: Item<C> | undefined = undefined
  tail: Item<C> | undefined = undefined
  length = 0

  push(item: Item<C>): void {
    item.next = undefined
    item.prev = this.tail
    if (this.tail === undefined) this.head = item
    else this.tail.next = item
    this.tail = item
    this.length++
  }

  pop(): Item<C> | undefined {
    const item = this.tail
    if (item !== undefined) this.remove(item)
    return item
  }

  shift(): Item<C> | undefined {
    const item = this.head
    if (item !== undefined) this.remove(item)
    return item
  }

  /** Removes an item that is in the list. */
  remove(item: Item<C>): void {
    if (item.prev !== undefined) item.prev.next = item.next
    else this.head = item.next
    if (item.next !== undefined) item.next.prev = item.prev
    else this.tail = item.prev
    item.prev = item.next = undefined
    this.length--
  }

  /** A snapshot, oldest first, for passes that change the list while they walk it. */
  toArray(): Array<Item<C>> {
    const out: Array<Item<C>> = []
    for (let item = this.head; item !== undefined; item = item.next) out.push(item)
    return out
  }
}
