/**
 * Spanner's session pools (`AbstractSessionPool` and its four kinds) over the one core: `fixed` (`FixedSizePool`),
 * `bursty` (`BurstyPool`), `pinging` (`PingingPool`) and `transactionPinging` (`TransactionPingingPool`), each a
 * description bound to a database (a `Driver`) by `make` (scoped) or `bind` (a Layer), with Spanner's `get`,
 * `put`, `clear`, `session`, `ping`, `beginPendingTransactions` and `labels`.
 *
 * A session is a checked-out connection with its record (a `Pool.Lease`): the connection itself, and the record
 * that carries the pool's labels. Everything else `Pool` offers (`stats`, `events`, `listen`, `invalidate`...)
 * works on `sessionPool.pool`.
 *
 * @since 0.3.0
 */
import type * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"
import type { Pipeable } from "effect/Pipeable"
import type * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import type { ConnectionRecord } from "./ConnectionRecord.js"
import type { Driver } from "./Driver.js"
import * as internal from "./internal/sessionPool.js"
import type { Policy } from "./Policy.js"
import type { Pool } from "./Pool.js"
import type { PoolConfigError, PoolError, PoolTimeoutError } from "./PoolError.js"

/**
 * @since 0.3.0
 * @category type ids
 */
export const TypeId: unique symbol = internal.TypeId

/**
 * @since 0.3.0
 * @category type ids
 */
export type TypeId = typeof TypeId

/**
 * @since 0.3.0
 * @category type ids
 */
export const SpecTypeId: unique symbol = internal.SpecTypeId

/**
 * @since 0.3.0
 * @category type ids
 */
export type SpecTypeId = typeof SpecTypeId

/**
 * The four kinds of Spanner's session pools.
 *
 * @since 0.3.0
 * @category models
 */
export type Kind = "fixed" | "bursty" | "pinging" | "transactionPinging"

/**
 * A session pool's description, not bound to any database yet (Spanner's pool before `bind(database)`): pass it to
 * `make` or `bind` with a driver. A plain value: one description may be bound to several databases, each binding a
 * pool of its own.
 *
 * @since 0.3.0
 * @category models
 */
export interface Spec<K extends Kind = Kind> extends Pipeable {
  readonly [SpecTypeId]: SpecTypeId
  readonly kind: K
  /** The pool's name (logs, events, metrics, `application_name`); default `"session-pool"`. */
  readonly name: string
  /** `size`, or a bursty pool's `targetSize`. */
  readonly size: number
  /** `default_timeout`: how long `get` waits. */
  readonly timeout: Duration.Duration
  /** User-assigned labels for the sessions the pool creates. */
  readonly labels: Readonly<Record<string, string>>
}

/**
 * A checked-out session: the connection and its record (`record.labels` holds the pool's labels). `get` hands out
 * a `Pool.Lease`, which is one; give it back with `put`.
 *
 * @since 0.3.0
 * @category models
 */
export interface Session<C> {
  readonly connection: C
  readonly record: ConnectionRecord
}

/**
 * Options of one `get` (and `session`): `timeout` overrides the pool's `defaultTimeout` (Spanner's
 * `get(timeout=...)`).
 *
 * @since 0.3.0
 * @category models
 */
export interface GetOptions {
  readonly timeout?: Duration.DurationInput | undefined
}

/**
 * Options of one `put`: what a return to a full pool does. `"fail"` (the default for `fixed`, `pinging` and
 * `transactionPinging`: Spanner's `queue.Full`) refuses it with `PoolFull` and the caller keeps the session;
 * `"close"` (the default for `bursty`, as Spanner's `BurstyPool.put` deletes the extra session) closes it.
 *
 * @since 0.3.0
 * @category models
 */
export interface PutOptions {
  readonly whenFull?: "fail" | "close" | undefined
}

/**
 * What every kind takes besides its sizes and times.
 *
 * @since 0.3.0
 * @category models
 */
export interface CommonOptions {
  /** The pool's name; default `"session-pool"`. */
  readonly name?: string | undefined
  /** User-assigned labels, on every session's record and every connection event (`event.record.labels`). */
  readonly labels?: Readonly<Record<string, string>> | undefined
  /** More policies, listed after the kind's own (see the docs page for those). */
  readonly policies?: ReadonlyArray<Policy<any, any, any>> | undefined
}

/**
 * Spanner's `FixedSizePool(size=10, default_timeout=10, labels=None)`.
 *
 * @since 0.3.0
 * @category models
 */
export interface FixedOptions extends CommonOptions {
  /** Sessions opened at once and kept; the most ever open. Default 10. */
  readonly size?: number | undefined
  /** How long `get` waits for a session; default 10 seconds. */
  readonly defaultTimeout?: Duration.DurationInput | undefined
}

/**
 * Spanner's `BurstyPool(target_size=10, labels=None)`.
 *
 * @since 0.3.0
 * @category models
 */
export interface BurstyOptions extends CommonOptions {
  /** Sessions kept when returned; more are opened when none is idle, and closed when they come back. Default 10. */
  readonly targetSize?: number | undefined
  /** How long `get` waits for its new session's connect (Spanner's never waits for a queue); default 10 seconds. */
  readonly defaultTimeout?: Duration.DurationInput | undefined
}

/**
 * Spanner's `PingingPool(size=10, default_timeout=10, ping_interval=3000, labels=None)`.
 *
 * @since 0.3.0
 * @category models
 */
export interface PingingOptions extends FixedOptions {
  /** A session idle (not used nor pinged) this long is pinged before it is lent and by `ping`; default 3000 s. */
  readonly pingInterval?: Duration.DurationInput | undefined
  /**
   * Whether the pool runs `ping` itself every `pingInterval` (default `true`). Spanner's pool leaves it to the
   * application ("called from a background thread"): `false` is that.
   */
  readonly background?: boolean | undefined
}

/**
 * Spanner's `TransactionPingingPool(size=10, default_timeout=10, ping_interval=3000, labels=None)`.
 *
 * @since 0.3.0
 * @category models
 */
export interface TransactionPingingOptions extends PingingOptions {
  /**
   * When the transaction of a returned session is begun: on this schedule (a `Duration` is `Schedule.spaced`), at
   * `beginPendingTransactions`, or when a `get` finds no idle session, whichever comes first; `"manual"` leaves
   * out the schedule. Default `pingInterval`, or `"manual"` with `background: false` (Spanner's: the application
   * flushes the queue).
   */
  readonly pending?: Schedule.Schedule<unknown, unknown> | Duration.DurationInput | "manual" | undefined
}

/**
 * A session pool bound to a database. Its operations are also the module's functions (`SessionPool.get(pool)` is
 * `pool.get()`).
 *
 * @since 0.3.0
 * @category models
 */
export interface SessionPool<C, E = never> extends Pipeable {
  readonly [TypeId]: TypeId
  readonly kind: Kind
  readonly name: string
  /** User-assigned labels for the sessions the pool creates (Spanner's `labels` property). */
  readonly labels: Readonly<Record<string, string>>
  /** The pool underneath: `Pool.stats`, `Pool.events`, `Pool.listen`, `Pool.invalidate`... work on it. */
  readonly pool: Pool<C, E>
  /** See `get`. */
  get(options?: GetOptions): Effect.Effect<Session<C>, GetError<E>>
  /** See `put`. */
  put(session: Session<C>, options?: PutOptions): Effect.Effect<void, PoolFull>
  /** See `clear`. */
  readonly clear: Effect.Effect<void>
  /** See `session`. */
  session(options?: GetOptions): Effect.Effect<Session<C>, GetError<E>, Scope.Scope>
  /** See `ping`. */
  readonly ping: Effect.Effect<void>
  /** See `beginPendingTransactions`. */
  readonly beginPendingTransactions: Effect.Effect<number>
}

/**
 * No session became available within the timeout: Spanner's `queue.Empty`. `cause` is the pool's
 * `PoolTimeoutError`, with the pool's statistics and, when connects were failing, the last connect failure.
 *
 * @since 0.3.0
 * @category errors
 */
export const SessionPoolEmpty: typeof internal.SessionPoolEmpty = internal.SessionPoolEmpty

/**
 * @since 0.3.0
 * @category errors
 */
export type SessionPoolEmpty = internal.SessionPoolEmpty

/**
 * `put` refused the session, and the pool is as it was: Spanner's `queue.Full`. `reason`: `"Full"` (no one waits
 * and the pool holds its `size` idle sessions already; the caller keeps the session), `"Foreign"` (the session is
 * not one this pool lent, or came from `session()`), `"ReturnedTwice"` (it was already returned). `cause` is the
 * pool's `PoolUsageError`.
 *
 * @since 0.3.0
 * @category errors
 */
export const PoolFull: typeof internal.PoolFull = internal.PoolFull

/**
 * @since 0.3.0
 * @category errors
 */
export type PoolFull = internal.PoolFull

/**
 * What `get` and `session` fail with: the driver's connect error, `SessionPoolEmpty` for a timeout, or another
 * pool error (closed, exhausted, rejected, unavailable).
 *
 * @since 0.3.0
 * @category errors
 */
export type GetError<E> = E | SessionPoolEmpty | Exclude<PoolError, PoolTimeoutError>

/**
 * Spanner's `FixedSizePool`: `size` sessions opened at once (prefilled), never more; `get` waits up to
 * `defaultTimeout` for one to come back.
 *
 * @example
 * ```ts
 * import { SessionPool } from "effect-reservoir"
 *
 * const spec = SessionPool.fixed({ size: 4, defaultTimeout: "2 seconds", labels: { team: "billing" } })
 * ```
 *
 * @since 0.3.0
 * @category constructors
 */
export const fixed: (options?: FixedOptions) => Spec<"fixed"> = internal.fixed

/**
 * Spanner's `BurstyPool`: starts empty, opens a session whenever none is idle (past `targetSize` as needed), keeps
 * up to `targetSize` of them when they come back and closes the extras.
 *
 * @since 0.3.0
 * @category constructors
 */
export const bursty: (options?: BurstyOptions) => Spec<"bursty"> = internal.bursty

/**
 * Spanner's `PingingPool`: a fixed pool whose sessions idle longer than `pingInterval` are pinged before they are
 * lent (a dead one is replaced, the borrower sees no error) and by `ping` (and, unless `background: false`, every
 * `pingInterval`).
 *
 * @since 0.3.0
 * @category constructors
 */
export const pinging: (options?: PingingOptions) => Spec<"pinging"> = internal.pinging

/**
 * Spanner's `TransactionPingingPool`: a pinging pool whose every session holds a transaction begun ahead of time,
 * from its connect on; a returned session's previous transaction is rolled back and the next one is pending until
 * `beginPendingTransactions`, the `pending` schedule, or a `get` that finds no idle session.
 *
 * @since 0.3.0
 * @category constructors
 */
export const transactionPinging: (options?: TransactionPingingOptions) => Spec<"transactionPinging"> =
  internal.transactionPinging

/**
 * Binds a description to a database in the current scope: the pool opens (a fixed or pinging one prefilled) and
 * closes with the scope. Invalid options fail with one `PoolConfigError` listing every problem.
 *
 * @since 0.3.0
 * @category constructors
 */
export const make: {
  <C, E>(driver: Driver<C, E>): (spec: Spec) => Effect.Effect<SessionPool<C, E>, PoolConfigError, Scope.Scope>
  <C, E>(spec: Spec, driver: Driver<C, E>): Effect.Effect<SessionPool<C, E>, PoolConfigError, Scope.Scope>
} = internal.make

/**
 * Spanner's `bind(database)` as a Layer: the description bound to the driver's database, provided under the
 * caller's Tag for the layer's life.
 *
 * @example
 * ```ts
 * import { SessionPool } from "effect-reservoir"
 * import * as Memory from "effect-reservoir/Driver/Memory"
 * import { Context, Effect, Layer } from "effect"
 *
 * class Sessions extends Context.Tag("Sessions")<
 *   Sessions,
 *   SessionPool.SessionPool<Memory.MemoryConnection, Memory.MemoryError>
 * >() {}
 *
 * const SessionsLive = Layer.unwrapEffect(
 *   Effect.map(Memory.make(), (db) => SessionPool.fixed({ size: 2 }).pipe(SessionPool.bind(Sessions, db.driver)))
 * )
 * ```
 *
 * @since 0.3.0
 * @category layers
 */
export const bind: {
  <I, C, E>(
    tag: Context.Tag<I, SessionPool<C, E>>,
    driver: Driver<C, E>
  ): (spec: Spec) => Layer.Layer<I, PoolConfigError>
  <I, C, E>(spec: Spec, tag: Context.Tag<I, SessionPool<C, E>>, driver: Driver<C, E>): Layer.Layer<I, PoolConfigError>
} = internal.bind

/**
 * Checks a session out (Spanner's `get(timeout)`): an idle one, a new one when there is room, or the first one
 * returned; after `timeout` (default the pool's `defaultTimeout`) it fails with `SessionPoolEmpty`. Give the
 * session back with `put`.
 *
 * @since 0.3.0
 * @category combinators
 */
export const get: {
  (options?: GetOptions): <C, E>(self: SessionPool<C, E>) => Effect.Effect<Session<C>, GetError<E>>
  <C, E>(self: SessionPool<C, E>, options?: GetOptions): Effect.Effect<Session<C>, GetError<E>>
} = internal.get

/**
 * Returns a session from `get` (Spanner's `put`), without ever waiting: to the first waiter, else into the pool
 * (reset, and for a transaction-pinging pool its next transaction pending). Refused with `PoolFull`, the pool
 * unchanged, when the pool is full (see `PutOptions`), or the session is not one this pool lent, or was returned
 * already.
 *
 * @since 0.3.0
 * @category combinators
 */
export const put: {
  <C>(session: Session<C>, options?: PutOptions): <E>(self: SessionPool<C, E>) => Effect.Effect<void, PoolFull>
  <C, E>(self: SessionPool<C, E>, session: Session<C>, options?: PutOptions): Effect.Effect<void, PoolFull>
} = internal.put

/**
 * Closes every session (Spanner's `clear`): the idle ones now (waiting for their closes), and each lent one when
 * it comes back (a new generation: `Pool.invalidateAll`). The pool stays usable: a fixed, pinging or
 * transaction-pinging pool opens fresh sessions back to its size.
 *
 * @since 0.3.0
 * @category combinators
 */
export const clear: <C, E>(self: SessionPool<C, E>) => Effect.Effect<void> = internal.clear

/**
 * The scoped checkout (Spanner's `session()`, the `SessionCheckout` context manager): a session for the life of
 * the current scope, returned when the scope closes, however it closes. Do not `put` it.
 *
 * @since 0.3.0
 * @category combinators
 */
export const session: {
  (options?: GetOptions): <C, E>(self: SessionPool<C, E>) => Effect.Effect<Session<C>, GetError<E>, Scope.Scope>
  <C, E>(self: SessionPool<C, E>, options?: GetOptions): Effect.Effect<Session<C>, GetError<E>, Scope.Scope>
} = internal.session

/**
 * Pings now every idle session not used nor pinged within `pingInterval` (Spanner's `PingingPool.ping()`): a dead
 * one is closed and replaced before anyone borrows it. Nothing for a fixed or bursty pool.
 *
 * @since 0.3.0
 * @category combinators
 */
export const ping: <C, E>(self: SessionPool<C, E>) => Effect.Effect<void> = internal.ping

/**
 * Begins now the transaction of every session waiting for one and waits until they are begun, answering how many
 * were (Spanner's `begin_pending_transactions`). 0 for the other kinds.
 *
 * @since 0.3.0
 * @category combinators
 */
export const beginPendingTransactions: <C, E>(self: SessionPool<C, E>) => Effect.Effect<number> =
  internal.beginPendingTransactions

/**
 * How many returned sessions wait for their transaction to be begun now (a transaction-pinging pool; 0 for the
 * others).
 *
 * @since 0.3.0
 * @category getters
 */
export const pendingTransactions: <C, E>(self: SessionPool<C, E>) => Effect.Effect<number> =
  internal.pendingTransactions

/**
 * @since 0.3.0
 * @category refinements
 */
export const isSessionPool: (u: unknown) => u is SessionPool<unknown, unknown> = internal.isSessionPool

/**
 * @since 0.3.0
 * @category refinements
 */
export const isSpec: (u: unknown) => u is Spec = internal.isSpec
