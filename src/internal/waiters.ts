import type * as Effect from "effect/Effect"
import type * as Exit from "effect/Exit"
import type * as Fiber from "effect/Fiber"
import type { Item } from "./item.js"

/** @internal */
export const WAITING = 0
/** @internal */
export const GRANTED = 1
/** @internal */
export const DONE = 2
/** `Pool.use` only: the borrower's function has started on the connection it was handed. */
export const RUNNING = 3

/**
 * A connect in flight on behalf of a waiter (or of nobody: a refill to `min`, or one whose waiter left).
 *
 * @internal
 */
export interface ConnectTask<C> {
  waiter: Waiter<C> | undefined
  readonly item: Item<C>
  /** Told how the connect ended (a policy's own connect, `PoolHandle.connect`). */
  readonly done?: ((exit: Exit.Exit<void, unknown>) => void) | undefined
}

/**
 * A parked checkout. Waiters form an intrusive doubly linked list in arrival order, so leaving the queue is O(1)
 * and an abandoned waiter leaves nothing behind; a waiter with a deadline also sits in the deadline heap.
 *
 * @internal
 */
export class Waiter<C> {
  prev: Waiter<C> | undefined = undefined
  next: Waiter<C> | undefined = undefined
  /** The waiter's place in the deadline heap, `-1` when not in it. */
  heapIndex = -1
  state: 0 | 1 | 2 | 3 = WAITING
  resume: ((effect: Effect.Effect<Item<C>, any>) => void) | undefined = undefined
  /** The outcome decided before `resume` was registered. */
  early: Effect.Effect<Item<C>, any> | undefined = undefined
  item: Item<C> | undefined = undefined
  task: ConnectTask<C> | undefined = undefined
  /** The id the pool's next connection would get when this checkout arrived: ids from it on were opened after. */
  firstNewId = 0
  /**
   * A statement's waiter (`Pool.query`): called by `grant` with the connection just lent; `true` when it started
   * the statement on it (the waiter is then woken with the statement's outcome, not the connection).
   */
  onGrant: ((item: Item<C>) => boolean) | undefined = undefined
  constructor(
    /** When the checkout first arrived (kept across retries after a rejection). */
    readonly enqueuedAt: number,
    /** When the checkout must end, whatever happens meanwhile (kept across retries). */
    readonly deadline: number,
    /** How long the checkout may take, for its timeout error. */
    readonly timeoutMillis: number,
    /** The fiber waiting: it becomes the holder of the connection it is handed. */
    readonly fiber: Fiber.RuntimeFiber<unknown, unknown> | undefined
  ) {}
}

/**
 * The waiters with a finite deadline, as a binary min-heap on the deadline: per-call timeouts and retries keep
 * their own deadlines, so arrival order is not deadline order. Waiters that arrive with the pool's timeout come in
 * deadline order, so their insertion does not move anything.
 *
 * @internal
 */
export class DeadlineHeap<C> {
  readonly items: Array<Waiter<C>> = []

  get size(): number {
    return this.items.length
  }

  peek(): Waiter<C> | undefined {
    return this.items[0]
  }

  insert(waiter: Waiter<C>): void {
    const items = this.items
    waiter.heapIndex = items.length
    items.push(waiter)
    this.up(waiter.heapIndex)
  }

  remove(waiter: Waiter<C>): void {
    const index = waiter.heapIndex
    if (index < 0) return
    const items = this.items
    const last = items.pop()!
    waiter.heapIndex = -1
    if (last === waiter) return
    items[index] = last
    last.heapIndex = index
    this.up(index)
    this.down(last.heapIndex)
  }

  private up(index: number): void {
    const items = this.items
    const waiter = items[index]!
    while (index > 0) {
      const parentIndex = (index - 1) >> 1
      const parent = items[parentIndex]!
      if (parent.deadline <= waiter.deadline) break
      items[index] = parent
      parent.heapIndex = index
      index = parentIndex
    }
    items[index] = waiter
    waiter.heapIndex = index
  }

  private down(index: number): void {
    const items = this.items
    const length = items.length
    const waiter = items[index]!
    for (;;) {
      const left = 2 * index + 1
      if (left >= length) break
      const right = left + 1
      const child = right < length && items[right]!.deadline < items[left]!.deadline ? right : left
      if (items[child]!.deadline >= waiter.deadline) break
      items[index] = items[child]!
      items[index]!.heapIndex = index
      index = child
    }
    items[index] = waiter
    waiter.heapIndex = index
  }
}
