/**
 * The dialect contract: how to open a connection, ping it, run a transaction on it, and tell a lost connection from an
 * ordinary error. `Driver.make` takes the smallest implementation (a scoped `connect`) and fills in the rest.
 *
 * @since 0.1.0
 */
import type * as Effect from "effect/Effect"
import type * as Exit from "effect/Exit"
import type * as Scope from "effect/Scope"
import type { ConnectionRecord } from "./ConnectionRecord.js"
import * as internal from "./internal/driver.js"

/**
 * @since 0.1.0
 * @category type ids
 */
export const TypeId: unique symbol = internal.TypeId

/**
 * @since 0.1.0
 * @category type ids
 */
export type TypeId = typeof TypeId

/**
 * What the pool hands to `connect`.
 *
 * @since 0.1.0
 * @category models
 */
export interface ConnectContext {
  /** The record of the connection being opened (SQLAlchemy's creator may take the record). */
  readonly record: ConnectionRecord
  /** The pool's name; drivers use it as the session's `application_name`. */
  readonly poolName: string
  /**
   * Tells the pool that this connection died outside of any Effect (for example node-postgres's `error` event on an
   * idle client). The pool invalidates the connection: it is closed at once, idle or lent (a borrower's work on it fails
   * with the loss, and its return then only checks in).
   * Calling it more than once, or after the connection is closed, does nothing.
   */
  readonly invalidate: (cause: unknown) => void
}

/**
 * A row as the drivers return it.
 *
 * @since 0.1.0
 * @category models
 */
export type Row = Readonly<Record<string, unknown>>

/**
 * The dialect of a pool.
 *
 * `connect` is scoped: closing the scope it runs in closes the connection, exactly once. Every other operation acts
 * on an open connection. Failures of type `E` are classified by `isDisconnect`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Driver<C, E = never> {
  readonly [TypeId]: TypeId
  /** The dialect's name, such as `"postgresql"`, `"sqlite"` or `"memory"`. */
  readonly dialect: string
  /** Opens a connection; the connection is closed by the finalizers it adds to the scope. */
  connect(context: ConnectContext): Effect.Effect<C, E, Scope.Scope>
  /** Checks that the connection still reaches the database (the liveness query). */
  ping(connection: C): Effect.Effect<void, E>
  /** Starts a transaction. */
  begin(connection: C): Effect.Effect<void, E>
  /** Commits the current transaction. */
  commit(connection: C): Effect.Effect<void, E>
  /** Rolls back the current transaction; used by reset-on-return. */
  rollback(connection: C): Effect.Effect<void, E>
  /** Runs one statement with positional parameters and returns its rows (empty for statements without rows). */
  query(connection: C, sql: string, params?: ReadonlyArray<unknown>): Effect.Effect<ReadonlyArray<Row>, E>
  /** `true` when the error means the connection is lost (the dialect's disconnect classifier). */
  readonly isDisconnect: (error: unknown) => boolean
  /**
   * Why the connection cannot be lent again, or `undefined` when it can: a statement whose caller was interrupted
   * may still be running on it. The pool asks on every return and invalidates a busy connection with this cause.
   * Absent when the dialect cannot be busy that way.
   */
  busy?(connection: C): unknown
  /**
   * Whether a transaction is open on the connection, as far as the driver knows without a round trip (PostgreSQL
   * reports the session's status after every statement; SQLite knows it in-process): `false` lets reset-on-return
   * skip its `ROLLBACK` / `COMMIT` at once, `true` or `undefined` (not known) runs it. Absent when the dialect
   * cannot tell.
   */
  inTransaction?(connection: C): boolean | undefined
  /**
   * Sends `query`'s statement without a fiber and calls `done` once with its rows; returns the statement's
   * `abandon`, called when its caller is interrupted while it is in flight (the driver cancels it as an interrupted
   * `query` would be). With it, the pool starts a waiting statement (`Pool.query`) at the moment it hands over a
   * connection, from the step that hands it over, so the caller waits once: for the result. `done` must not throw.
   * Absent when the dialect cannot send a statement outside an Effect (the pool then runs `query`).
   */
  /**
   * What is wrong with the options the driver was made with (a negative timeout, a duration it cannot read): a pool
   * made with it fails with one `PoolConfigError` listing them with the pool's own problems, nothing clamped.
   */
  readonly problems?: ReadonlyArray<string> | undefined
  start?(
    connection: C,
    sql: string,
    params: ReadonlyArray<unknown> | undefined,
    done: (exit: Exit.Exit<ReadonlyArray<Row>, E>) => void
  ): () => void
}

/**
 * The smallest implementation of a driver: `connect`, and whatever else the dialect has.
 *
 * @since 0.1.0
 * @category models
 */
export interface DriverOptions<C, E> {
  readonly dialect?: string | undefined
  readonly connect: (context: ConnectContext) => Effect.Effect<C, E, Scope.Scope>
  readonly ping?: ((connection: C) => Effect.Effect<void, E>) | undefined
  readonly begin?: ((connection: C) => Effect.Effect<void, E>) | undefined
  readonly commit?: ((connection: C) => Effect.Effect<void, E>) | undefined
  readonly rollback?: ((connection: C) => Effect.Effect<void, E>) | undefined
  readonly query?:
    | ((connection: C, sql: string, params?: ReadonlyArray<unknown>) => Effect.Effect<ReadonlyArray<Row>, E>)
    | undefined
  readonly isDisconnect?: ((error: unknown) => boolean) | undefined
  readonly busy?: ((connection: C) => unknown) | undefined
  readonly inTransaction?: ((connection: C) => boolean | undefined) | undefined
  readonly problems?: ReadonlyArray<string> | undefined
  readonly start?:
    | ((
      connection: C,
      sql: string,
      params: ReadonlyArray<unknown> | undefined,
      done: (exit: Exit.Exit<ReadonlyArray<Row>, E>) => void
    ) => () => void)
    | undefined
}

/**
 * Builds a driver from its smallest implementation.
 *
 * Defaults: `ping`, when not given, runs `query(connection, "SELECT 1")` if `query` is given and otherwise succeeds
 * without checking anything (the "fast" trade-off: no round trip, no detection); `begin`, `commit` and `rollback`
 * run `BEGIN`, `COMMIT` and `ROLLBACK` through `query` when it is given and otherwise do nothing; `query`, when not
 * given, dies with an `UnsupportedOperation` defect; `isDisconnect` answers `false`.
 *
 * @example
 * ```ts
 * import { Driver } from "effect-reservoir"
 * import { Effect } from "effect"
 *
 * let next = 0
 * const counters = Driver.make({
 *   dialect: "counter",
 *   connect: () => Effect.acquireRelease(Effect.sync(() => ({ id: next++ })), () => Effect.void)
 * })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: <C, E = never>(options: DriverOptions<C, E>) => Driver<C, E> = internal.make

/**
 * Builds a driver from a bare scoped acquire effect, for pools of things that are not database connections.
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromAcquire: <C, E>(acquire: Effect.Effect<C, E, Scope.Scope>) => Driver<C, E> = internal.fromAcquire

/**
 * @since 0.1.0
 * @category refinements
 */
export const isDriver: (u: unknown) => u is Driver<unknown, unknown> = internal.isDriver
