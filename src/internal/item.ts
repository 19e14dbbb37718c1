import type * as Exit from "effect/Exit"
import type * as Fiber from "effect/Fiber"
import type * as Scope from "effect/Scope"
import type { ConnectionRecord } from "../ConnectionRecord.js"

/**
 * The states of a pooled connection. Every move between them goes through `moveTo`, which keeps the count of items
 * in each state: no other code adjusts a counter or guesses the state before.
 *
 * ```
 * connecting ─▶ idle ⇄ lent ─▶ returning ─▶ preparing ─▶ idle
 *      │         │ ▲     │          │            │
 *      │         ▼ │     │          │            │
 *      │     maintained  │          │            │
 *      └──────────┴──────┴──────────┴────────────┴─▶ closing ─▶ closed
 *                        └─▶ detached
 * ```
 *
 * @internal
 */
export const CONNECTING = 0
/** @internal */
export const IDLE = 1
/** @internal */
export const LENT = 2
/** @internal */
export const RETURNING = 3
/** @internal */
export const PREPARING = 4
/** @internal */
export const MAINTAINED = 5
/** @internal */
export const CLOSING = 6
/** @internal */
export const CLOSED = 7
/** @internal */
export const DETACHED = 8

/** @internal */
export type ItemState = 0 | 1 | 2 | 3 | 4 | 5 | 6 | 7 | 8

/**
 * A connection's record: what listeners, policies, drivers and `Pool.record` see. It holds no reference to the
 * connection, its scope or the pool, so nothing reachable from it leads to a secret.
 *
 * @internal
 */
export class RecordImpl implements ConnectionRecord {
  lastUsedAt: number
  lastReturnedAt: number
  lastValidatedAt = 0
  uses = 0
  private _properties: Map<string, unknown> | undefined = undefined
  constructor(
    readonly id: number,
    readonly pool: string,
    readonly createdAt: number,
    readonly generation: number,
    readonly labels: Readonly<Record<string, string>>
  ) {
    this.lastUsedAt = createdAt
    this.lastReturnedAt = createdAt
  }
  get properties(): Map<string, unknown> {
    return this._properties ??= new Map()
  }
  toJSON() {
    return {
      id: this.id,
      pool: this.pool,
      createdAt: this.createdAt,
      lastUsedAt: this.lastUsedAt,
      lastReturnedAt: this.lastReturnedAt,
      lastValidatedAt: this.lastValidatedAt,
      uses: this.uses,
      generation: this.generation,
      labels: this.labels
    }
  }
}

/**
 * A pooled connection: its record, the connection, its scope (closing it closes the connection) and the pool's
 * bookkeeping. Items are the pool's own and never handed out.
 *
 * @internal
 */
export class Item<C> {
  state: ItemState = CONNECTING
  connection: C = undefined as C
  scope: Scope.CloseableScope | undefined = undefined
  /** Incremented at every lending; a lease is valid only while its token matches. */
  token = 0
  /** `true` from lending until the borrower returns it (stays true if the pool closes it underneath). */
  borrowed = false
  invalidated = false
  invalidateCause: unknown = undefined
  soft = false
  /** What a grant resumes the waiter with: an `Exit` is immutable, so one per connection serves every hand-off. */
  granted: Exit.Exit<Item<C>> | undefined = undefined
  /** The idle list's links. */
  prev: Item<C> | undefined = undefined
  next: Item<C> | undefined = undefined
  /** The fiber the connection is lent to, while lent. */
  holder: Fiber.RuntimeFiber<unknown, unknown> | undefined = undefined
  /** Where it was checked out (a stack or a span), when the pool was asked to record it. */
  trace: string | undefined = undefined
  /**
   * The event feed's registration sequence when this lending's `Checkout` was delivered (`0` while it was not):
   * registrations made later did not hear the checkout, so they do not hear its checkin.
   */
  heardUpTo = 0
  constructor(readonly record: RecordImpl) {}
}

/**
 * The count of items in each state, indexed by state. `live` counts every item that holds or may hold a slot
 * (all states but `closed` and `detached`).
 *
 * @internal
 */
export class Counts {
  readonly byState: Array<number> = [0, 0, 0, 0, 0, 0, 0, 0, 0]
  live = 0
  get connecting(): number {
    return this.byState[CONNECTING]!
  }
  /** Connections established and not yet closed (idle, lent, returning, preparing, maintained, closing). */
  get open(): number {
    return this.live - this.byState[CONNECTING]!
  }
  /** Lent to a borrower, or returned and still being reset: SQLAlchemy's "checked out". */
  get inUse(): number {
    return this.byState[LENT]! + this.byState[RETURNING]!
  }
  /** Held by upkeep for a moment: a background pass (maintained) or a preparation. */
  get inUpkeep(): number {
    return this.byState[MAINTAINED]! + this.byState[PREPARING]!
  }
  /** In the pool, lendable now or after upkeep. */
  get inPool(): number {
    return this.byState[IDLE]! + this.inUpkeep
  }
}

/**
 * The one function that moves an item between states and keeps the counters.
 *
 * @internal
 */
export const moveTo = <C>(counts: Counts, item: Item<C>, to: ItemState): void => {
  const from = item.state
  counts.byState[from]!--
  counts.byState[to]!++
  if (to >= CLOSED && from < CLOSED) counts.live--
  item.state = to
}

/**
 * Counts a new item (in `connecting`).
 *
 * @internal
 */
export const born = <C>(counts: Counts, item: Item<C>): void => {
  counts.byState[CONNECTING]!++
  counts.live++
  item.state = CONNECTING
}

/** @internal */
export const isGone = (state: ItemState): boolean => state >= CLOSING
