/**
 * Every step of a connection's life, as a typed event. SQLAlchemy's ten pool events map one-to-one onto the tags:
 *
 * | SQLAlchemy | tag |
 * | --- | --- |
 * | `connect` | `Connect` |
 * | `first_connect` | `FirstConnect` |
 * | `checkout` | `Checkout` |
 * | `checkin` | `Checkin` |
 * | `reset` | `Reset` |
 * | `invalidate` | `Invalidate` |
 * | `soft_invalidate` | `SoftInvalidate` |
 * | `close` | `Close` |
 * | `detach` | `Detach` |
 * | `close_detached` | `CloseDetached` |
 *
 * and two more: `ConnectFailed` and `CheckoutTimeout`. Policies add their own: `Leak` and `Unleaked`
 * (`Policy.leakDetection`) and `CircuitBreaker` (`Policy.circuitBreaker`).
 *
 * @since 0.1.0
 */
import type * as Cause from "effect/Cause"
import type * as Effect from "effect/Effect"
import type * as Fiber from "effect/Fiber"
import type { ConnectionRecord } from "./ConnectionRecord.js"
import type { ConnectionRejected, PoolStats } from "./PoolError.js"

/**
 * Why a connection was closed. The same taxonomy counts closes in `Pool.stats` and in metrics.
 *
 * - `invalidated`: `Pool.invalidate`, a disconnect, or the driver's error event
 * - `stale`: opened before the last `Pool.invalidateAll`
 * - `rejected`: a checkout policy or listener rejected it
 * - `resetFailed`: reset on return failed (or a return policy rejected it)
 * - `overflow`: returned while `size` connections were already idle
 * - `disposed`: `Pool.dispose`
 * - `shutdown`: the pool's scope closed
 * - `expired`, `idle`, `maxUses`: lifetime policies
 * - `reclaimed`: taken back from a holder that kept it too long (leak detection with `reclaim`)
 *
 * A detached connection is no longer the pool's: its closing is the `CloseDetached` event, not a close.
 *
 * @since 0.1.0
 * @category models
 */
export const closeReasons = [
  "invalidated",
  "stale",
  "rejected",
  "resetFailed",
  "overflow",
  "disposed",
  "shutdown",
  "expired",
  "idle",
  "maxUses",
  "reclaimed"
] as const

/**
 * @since 0.1.0
 * @category models
 */
export type CloseReason = typeof closeReasons[number]

interface Base<Tag extends string> {
  readonly _tag: Tag
  /** The pool's name. */
  readonly pool: string
}

interface WithConnection<Tag extends string, C> extends Base<Tag> {
  readonly record: ConnectionRecord
  readonly connection: C
}

/**
 * A connection was opened (after per-connection setup).
 *
 * @since 0.1.0
 * @category events
 */
export interface Connect<C> extends WithConnection<"Connect", C> {}

/**
 * The first connection of the pool was opened (emitted once per pool, before `Connect`).
 *
 * @since 0.1.0
 * @category events
 */
export interface FirstConnect<C> extends WithConnection<"FirstConnect", C> {}

/**
 * A connect attempt failed.
 *
 * @since 0.1.0
 * @category events
 */
export interface ConnectFailed extends Base<"ConnectFailed"> {
  readonly record: ConnectionRecord
  readonly cause: Cause.Cause<unknown>
}

/**
 * A connection was lent to a borrower.
 *
 * @since 0.1.0
 * @category events
 */
export interface Checkout<C> extends WithConnection<"Checkout", C> {}

/**
 * A borrower returned a connection (after reset).
 *
 * @since 0.1.0
 * @category events
 */
export interface Checkin<C> extends WithConnection<"Checkin", C> {}

/**
 * A returned connection was reset (rolled back, committed, or a custom reset).
 *
 * @since 0.1.0
 * @category events
 */
export interface Reset<C> extends WithConnection<"Reset", C> {
  readonly method: string
}

/**
 * A connection was invalidated: it is closed now if idle, or when returned if lent.
 *
 * @since 0.1.0
 * @category events
 */
export interface Invalidate<C> extends WithConnection<"Invalidate", C> {
  readonly cause: unknown
}

/**
 * A connection was soft-invalidated: it is closed when next returned (or found idle), never lent again.
 *
 * @since 0.1.0
 * @category events
 */
export interface SoftInvalidate<C> extends WithConnection<"SoftInvalidate", C> {
  readonly cause: unknown
}

/**
 * A connection was closed.
 *
 * @since 0.1.0
 * @category events
 */
export interface Close<C> extends WithConnection<"Close", C> {
  readonly reason: CloseReason
}

/**
 * A lent connection left the pool with `Pool.detach`; its borrower owns it now.
 *
 * @since 0.1.0
 * @category events
 */
export interface Detach<C> extends WithConnection<"Detach", C> {}

/**
 * A detached connection was closed by its owner.
 *
 * @since 0.1.0
 * @category events
 */
export interface CloseDetached<C> extends WithConnection<"CloseDetached", C> {}

/**
 * A checkout waited past the pool's timeout.
 *
 * @since 0.1.0
 * @category events
 */
export interface CheckoutTimeout extends Base<"CheckoutTimeout"> {
  readonly waitedMillis: number
  readonly stats: PoolStats
}

/**
 * A connection has been held longer than the leak detector's threshold (`Policy.leakDetection`): who holds it, since
 * when, and where it was checked out (a stack or the span current at checkout, when tracing was asked for).
 *
 * @since 0.2.0
 * @category events
 */
export interface Leak<C> extends WithConnection<"Leak", C> {
  /** The fiber the connection is lent to, when known. */
  readonly holder: Fiber.RuntimeFiber<unknown, unknown> | undefined
  /** The holder fiber's id, as Effect prints it (`#12`). */
  readonly holderId: string | undefined
  /** When it was checked out, in epoch milliseconds. */
  readonly since: number
  /** How long it had been held when the leak was reported. */
  readonly heldMillis: number
  /** Where it was checked out: a stack, or the span current at checkout. */
  readonly trace: string | undefined
  /** Whether the detector reclaims it: the holder is interrupted and the connection closed (reason `reclaimed`). */
  readonly reclaimed: boolean
}

/**
 * A connection reported as leaked came back (or was closed), after `heldMillis` in all.
 *
 * @since 0.2.0
 * @category events
 */
export interface Unleaked<C> extends WithConnection<"Unleaked", C> {
  readonly heldMillis: number
}

/**
 * A circuit breaker (`Policy.circuitBreaker`) changed state: `"open"` after repeated connect failures (checkouts
 * that would wait for a connect fail at once with `PoolUnavailableError`), `"halfOpen"` while its probe connects,
 * `"closed"` after a connect succeeded.
 *
 * @since 0.2.0
 * @category events
 */
export interface CircuitBreaker extends Base<"CircuitBreaker"> {
  readonly state: "closed" | "open" | "halfOpen"
  /** Consecutive connect failures when the state changed. */
  readonly failures: number
  /** The last connect failure (when opening). */
  readonly cause: Cause.Cause<unknown> | undefined
}

/**
 * The events a policy may emit through `PoolHandle.emit`.
 *
 * @since 0.2.0
 * @category events
 */
export type PolicyEvent<C> = Leak<C> | Unleaked<C> | CircuitBreaker

/**
 * @since 0.1.0
 * @category events
 */
export type PoolEvent<C> =
  | Connect<C>
  | FirstConnect<C>
  | ConnectFailed
  | Checkout<C>
  | Checkin<C>
  | Reset<C>
  | Invalidate<C>
  | SoftInvalidate<C>
  | Close<C>
  | Detach<C>
  | CloseDetached<C>
  | CheckoutTimeout
  | Leak<C>
  | Unleaked<C>
  | CircuitBreaker

/**
 * Listeners registered with `Pool.listen`, one optional handler per event. Handlers run in the lifecycle step that
 * emits the event, in registration order. A `checkout` handler may fail with `ConnectionRejected` to refuse the
 * connection: it is closed and the checkout retries with another. Failures of other handlers are logged.
 *
 * @since 0.1.0
 * @category models
 */
export interface Listeners<C> {
  readonly connect?: ((event: Connect<C>) => Effect.Effect<void>) | undefined
  readonly firstConnect?: ((event: FirstConnect<C>) => Effect.Effect<void>) | undefined
  readonly connectFailed?: ((event: ConnectFailed) => Effect.Effect<void>) | undefined
  readonly checkout?: ((event: Checkout<C>) => Effect.Effect<void, ConnectionRejected>) | undefined
  readonly checkin?: ((event: Checkin<C>) => Effect.Effect<void>) | undefined
  readonly reset?: ((event: Reset<C>) => Effect.Effect<void>) | undefined
  readonly invalidate?: ((event: Invalidate<C>) => Effect.Effect<void>) | undefined
  readonly softInvalidate?: ((event: SoftInvalidate<C>) => Effect.Effect<void>) | undefined
  readonly close?: ((event: Close<C>) => Effect.Effect<void>) | undefined
  readonly detach?: ((event: Detach<C>) => Effect.Effect<void>) | undefined
  readonly closeDetached?: ((event: CloseDetached<C>) => Effect.Effect<void>) | undefined
  readonly checkoutTimeout?: ((event: CheckoutTimeout) => Effect.Effect<void>) | undefined
  readonly leak?: ((event: Leak<C>) => Effect.Effect<void>) | undefined
  readonly unleaked?: ((event: Unleaked<C>) => Effect.Effect<void>) | undefined
  readonly circuitBreaker?: ((event: CircuitBreaker) => Effect.Effect<void>) | undefined
}

/**
 * The `Listeners` key for each event tag.
 *
 * @since 0.1.0
 * @category models
 */
export const listenerKey = {
  Connect: "connect",
  FirstConnect: "firstConnect",
  ConnectFailed: "connectFailed",
  Checkout: "checkout",
  Checkin: "checkin",
  Reset: "reset",
  Invalidate: "invalidate",
  SoftInvalidate: "softInvalidate",
  Close: "close",
  Detach: "detach",
  CloseDetached: "closeDetached",
  CheckoutTimeout: "checkoutTimeout",
  Leak: "leak",
  Unleaked: "unleaked",
  CircuitBreaker: "circuitBreaker"
} as const satisfies Record<PoolEvent<unknown>["_tag"], keyof Listeners<unknown>>
