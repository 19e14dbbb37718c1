/**
 * Twisted's `adbapi.ConnectionPool` over a reservoir pool: `runWithConnection`, `runInteraction` (a transaction:
 * commit when the work succeeds, rollback when it fails or is interrupted), `runQuery`, `runOperation`, `start`,
 * `close`, `connect` / `disconnect`, and the `cp_*` options as Twisted names them. The options are a `Schema` that
 * encodes to JSON and rebuilds the same pool (Twisted pickles a pool).
 *
 * | Twisted | here |
 * | --- | --- |
 * | `cp_min` (3) | the pool's `min` |
 * | `cp_max` (5) | the pool's `size`, with `maxOverflow: 0` |
 * | `cp_noisy` (false) | the pool's `echo`, and a log line for every lost connection |
 * | `cp_openfun` | `Policy.onConnect`: SQL statements (serialisable) or a function of the connection |
 * | `cp_good_sql` (`select 1`) | `Policy.livenessQuery`: what pre-ping and every ping run |
 * | `cp_reconnect` (false) | a disconnect during the work fails with `ConnectionLost` (else the driver's error) |
 *
 * A connection lost during `COMMIT` always fails with `CommitOutcomeUnknown`, whatever `cp_reconnect` says. The
 * pool's default policies (`Policy.defaults()`: recycle, pre-ping, reset on return) are kept.
 *
 * @since 0.3.0
 */
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import type * as Either from "effect/Either"
import type * as Layer from "effect/Layer"
import type { Pipeable } from "effect/Pipeable"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import type { Driver, Row } from "./Driver.js"
import * as internal from "./internal/interaction.js"
import type { BaseOptions } from "./Pool.js"
import type { Pool } from "./Pool.js"
import type { PoolConfigError, PoolError, PoolUsageError } from "./PoolError.js"

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
 * What `runInteraction`'s work receives (Twisted's `adbapi.Transaction`, a cursor): the connection, and `execute`,
 * which runs one statement in the transaction and answers its rows (Twisted's `execute` then `fetchall`).
 *
 * @since 0.3.0
 * @category models
 */
export interface Transaction<C, E = never> {
  readonly connection: C
  readonly execute: (sql: string, params?: ReadonlyArray<unknown>) => Effect.Effect<ReadonlyArray<Row>, E>
}

/**
 * The errors a `run*` call may fail with besides the driver's and the work's own.
 *
 * @since 0.3.0
 * @category errors
 */
export type InteractionError = PoolError | ConnectionLost | CommitOutcomeUnknown

/**
 * Twisted's `ConnectionPool`: the `run*` methods, the manual `connect` / `disconnect`, and the pool's life. Every
 * method returns an Effect. `pool` is the reservoir pool underneath, for everything else (`Pool.stats`,
 * `Pool.events`, ...).
 *
 * @since 0.3.0
 * @category models
 */
export interface ConnectionPool<C, E = never> extends Pipeable {
  readonly [TypeId]: TypeId
  /** The pool's name. */
  readonly name: string
  /** The reservoir pool underneath. */
  readonly pool: Pool<C, E>
  /** The driver. */
  readonly driver: Driver<C, E>
  /** The options, decoded (defaults filled in); `cp_openfun` only when given as SQL statements. */
  readonly config: InteractionConfig
  /**
   * Runs `f` with a connection and returns its result (Twisted's `runWithConnection`). No transaction is begun: the
   * drivers run in autocommit, and a transaction `f` leaves open is rolled back when the connection is returned,
   * never committed implicitly. A disconnect during `f` invalidates the connection; with `cp_reconnect` it fails
   * with `ConnectionLost` (`retryable: false`: statements `f` ran before the loss may have committed).
   */
  readonly runWithConnection: <A, E2, R>(
    f: (connection: C) => Effect.Effect<A, E2, R>
  ) => Effect.Effect<A, E | E2 | InteractionError, R>
  /**
   * Runs `f` in a transaction (Twisted's `runInteraction`): `begin`, then `commit` when `f` succeeds, `rollback`
   * when it fails or is interrupted. A disconnect during `begin` or `f` invalidates the connection; with
   * `cp_reconnect` it fails with `ConnectionLost` (`retryable: true`: no `COMMIT` was sent, so nothing of the work
   * was committed). A connection lost while `COMMIT` is in flight fails with `CommitOutcomeUnknown`. A `COMMIT`
   * the server refused (a serialization failure, an aborted transaction) fails with the driver's error: rolled back.
   */
  readonly runInteraction: <A, E2, R>(
    f: (transaction: Transaction<C, E>) => Effect.Effect<A, E2, R>
  ) => Effect.Effect<A, E | E2 | InteractionError, R>
  /** Runs one statement in a transaction of its own and answers its rows (Twisted's `runQuery`). */
  readonly runQuery: (
    sql: string,
    params?: ReadonlyArray<unknown>
  ) => Effect.Effect<ReadonlyArray<Row>, E | InteractionError>
  /** Runs one statement in a transaction of its own and answers nothing (Twisted's `runOperation`). */
  readonly runOperation: (sql: string, params?: ReadonlyArray<unknown>) => Effect.Effect<void, E | InteractionError>
  /**
   * Opens `cp_min` connections and waits until they are open (each checked out and returned), failing with the
   * connect's error when the database cannot be reached. The pool works without it (connections open on demand);
   * the layer runs it as it is built.
   */
  readonly start: Effect.Effect<void, E | PoolError>
  /**
   * Closes the pool now (Twisted's `close`): later calls fail with `PoolClosedError`, waiters at once, lent
   * connections close when returned or after `shutdownTimeout`. Idempotent; the enclosing scope closes it anyway.
   */
  readonly close: Effect.Effect<void>
  /**
   * A manual checkout (Twisted's `connect`): the connection is the caller's until `disconnect`. Prefer
   * `runWithConnection`.
   */
  readonly connect: Effect.Effect<C, E | PoolError>
  /**
   * An invalidating return (Twisted's `disconnect`): the connection is closed, never lent again, and its slot is
   * freed. Also closes a connection lent by `runWithConnection` (whose return then only checks it in). Fails with
   * `PoolUsageError` for a connection this pool never lent (`"Foreign"`) or one already disconnected.
   */
  readonly disconnect: (connection: C) => Effect.Effect<void, PoolUsageError>
}

/**
 * The serialisable options as a `Schema` (Twisted's `__getstate__`): the `cp_*` options with Twisted's defaults
 * (`cp_min` 3, `cp_max` 5, `cp_noisy` false, `cp_reconnect` false, `cp_good_sql` `"SELECT 1"`, `cp_openfun` as SQL
 * statements) and the pool options that are data (`name`, `timeout`, `connectTimeout`, `order`, `maxWaiters`,
 * `labels`, `shutdownTimeout`, `maxCheckoutAttempts`; times as milliseconds or strings such as `"5 seconds"`).
 * Not in it: the driver and functions, which are code.
 *
 * @since 0.3.0
 * @category models
 */
export const InteractionConfig: Schema.Schema<InteractionConfig, InteractionConfigEncoded> = internal.InteractionConfig

/**
 * @since 0.3.0
 * @category models
 */
export type InteractionConfig = internal.InteractionConfig

/**
 * @since 0.3.0
 * @category models
 */
export type InteractionConfigEncoded = internal.InteractionConfigEncoded

/**
 * The options of `make` and `layer`: `InteractionConfig`'s fields as given in code (times as any
 * `Duration.DurationInput`), where `cp_openfun` may also be a function of the new connection (Twisted's callable;
 * such a pool cannot be encoded by `toJSON`).
 *
 * @since 0.3.0
 * @category models
 */
export interface Options<C, E> extends
  Pick<
    BaseOptions,
    | "name"
    | "timeout"
    | "connectTimeout"
    | "order"
    | "maxWaiters"
    | "labels"
    | "shutdownTimeout"
    | "maxCheckoutAttempts"
  >
{
  readonly cp_min?: number | undefined
  readonly cp_max?: number | undefined
  readonly cp_noisy?: boolean | undefined
  readonly cp_openfun?: ReadonlyArray<string> | ((connection: C) => Effect.Effect<void, E>) | undefined
  readonly cp_reconnect?: boolean | undefined
  readonly cp_good_sql?: string | undefined
}

/**
 * The connection was lost during the work (`phase: "work"`) or while beginning its transaction (`"begin"`), with
 * `cp_reconnect` on: the connection was invalidated (never lent again) and the work may be sent again on a fresh
 * one (Twisted's `ConnectionLost`). `retryable` is `true` when nothing of the work can have been committed (a
 * transaction the pool began and never committed: `runInteraction`, `runQuery`, `runOperation`), `false` for
 * `runWithConnection`, whose statements ran outside a transaction of the pool's. The pool never retries by itself.
 * `cause` is the driver's error.
 *
 * @since 0.3.0
 * @category errors
 */
export class ConnectionLost extends Schema.TaggedError<ConnectionLost>("effect-reservoir/Interaction/ConnectionLost")(
  "ConnectionLost",
  {
    pool: Schema.String,
    operation: Schema.Literal("runWithConnection", "runInteraction", "runQuery", "runOperation"),
    phase: Schema.Literal("begin", "work"),
    retryable: Schema.Boolean,
    cause: Schema.Unknown
  }
) {
  /**
   * @since 0.3.0
   */
  override get message(): string {
    return `Pool "${this.pool}": the connection was lost during ${this.operation} (${this.phase}); it was ` +
      `invalidated, and ${
        this.retryable ?
          "nothing was committed: the work may be retried" :
          "statements run before the loss may have committed: retry only work that can run twice"
      }: ${describe(this.cause)}`
  }
}

/**
 * The connection was lost while `COMMIT` was in flight: the transaction may or may not have been committed, and it
 * is reported neither as committed nor as rolled back. The connection was invalidated. `retryable` is `false`:
 * check what the database holds before sending the work again. `cause` is the driver's error.
 *
 * @since 0.3.0
 * @category errors
 */
export class CommitOutcomeUnknown
  extends Schema.TaggedError<CommitOutcomeUnknown>("effect-reservoir/Interaction/CommitOutcomeUnknown")(
    "CommitOutcomeUnknown",
    {
      pool: Schema.String,
      operation: Schema.Literal("runWithConnection", "runInteraction", "runQuery", "runOperation"),
      retryable: Schema.optionalWith(Schema.Literal(false), { default: () => false as const }),
      cause: Schema.Unknown
    }
  )
{
  /**
   * @since 0.3.0
   */
  override get message(): string {
    return `Pool "${this.pool}": the connection was lost during COMMIT in ${this.operation}; the transaction may ` +
      `or may not have been committed (check before retrying): ${describe(this.cause)}`
  }
}

const describe = (cause: unknown): string => {
  if (typeof cause === "object" && cause !== null && "message" in cause && typeof cause.message === "string") {
    return "_tag" in cause ? `${String(cause._tag)}: ${cause.message}` : cause.message
  }
  return String(cause)
}

/**
 * The default Tag of `layer` without a Tag of its own. Its connection type is not known: give `layer` a Tag of
 * yours (`Context.GenericTag<ConnectionPool<PgConnection, PgError>>("db")`) to keep the types.
 *
 * @since 0.3.0
 * @category tags
 */
export class InteractionPool extends Context.Tag("effect-reservoir/Interaction")<
  InteractionPool,
  ConnectionPool<any, any>
>() {}

/**
 * Creates a connection pool in the current scope (Twisted's `ConnectionPool(...)`); it closes with the scope, or
 * earlier with `close`. Invalid options fail with one `PoolConfigError` listing every problem, under the `cp_*`
 * names.
 *
 * @example
 * ```ts
 * import * as Interaction from "effect-reservoir/Interaction"
 * import * as Memory from "effect-reservoir/Driver/Memory"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function*() {
 *   const db = yield* Memory.make()
 *   const dbpool = yield* Interaction.make(db.driver, { cp_min: 1, cp_max: 3, cp_reconnect: true })
 *   yield* dbpool.runInteraction((txn) => txn.execute("INSERT INTO t VALUES (1)"))
 *   return yield* dbpool.runQuery("SELECT 1")
 * })
 * ```
 *
 * @since 0.3.0
 * @category constructors
 */
export const make: <C, E>(
  driver: Driver<C, E>,
  options?: Options<C, E>
) => Effect.Effect<ConnectionPool<C, E>, PoolConfigError, Scope.Scope> = internal.make

/**
 * The pool as a Layer: building it is Twisted's `start` (the pool is made and `cp_min` connections opened, so an
 * unreachable database fails the layer), releasing it is `close`. Under the caller's Tag, or `InteractionPool`.
 *
 * @since 0.3.0
 * @category layers
 */
export const layer: {
  <C, E>(
    driver: Driver<C, E>,
    options?: Options<C, E>
  ): Layer.Layer<InteractionPool, PoolConfigError | E | PoolError>
  <I, C, E>(
    tag: Context.Tag<I, ConnectionPool<C, E>>,
    driver: Driver<C, E>,
    options?: Options<C, E>
  ): Layer.Layer<I, PoolConfigError | E | PoolError>
} = ((...args: ReadonlyArray<any>) =>
  Context.isTag(args[0]) ?
    internal.layer(args[0], args[1], args[2]) :
    internal.layer(InteractionPool, args[0], args[1])) as any

/**
 * Rebuilds a pool from its JSON form (`toJSON`, or any object the `InteractionConfig` schema decodes) and a driver
 * (Twisted's `__setstate__`). A wrong or unknown field fails with `PoolConfigError` listing every problem.
 *
 * @since 0.3.0
 * @category constructors
 */
export const fromJSON: <C, E>(
  driver: Driver<C, E>,
  json: unknown
) => Effect.Effect<ConnectionPool<C, E>, PoolConfigError, Scope.Scope> = internal.fromJSON

/**
 * The pool's options in their JSON form (Twisted's `__getstate__`), which `fromJSON` rebuilds the same pool from.
 * A pool whose `cp_openfun` is a function cannot be encoded: `Left` with a `PoolConfigError` that says so (give the
 * setup as SQL statements instead).
 *
 * @since 0.3.0
 * @category getters
 */
export const toJSON: <C, E>(self: ConnectionPool<C, E>) => Either.Either<InteractionConfigEncoded, PoolConfigError> =
  internal.toJSON

/**
 * `pool.runWithConnection(f)` as a function.
 *
 * @since 0.3.0
 * @category combinators
 */
export const runWithConnection: {
  <C, A, E2, R>(
    f: (connection: C) => Effect.Effect<A, E2, R>
  ): <E>(self: ConnectionPool<C, E>) => Effect.Effect<A, E | E2 | InteractionError, R>
  <C, E, A, E2, R>(
    self: ConnectionPool<C, E>,
    f: (connection: C) => Effect.Effect<A, E2, R>
  ): Effect.Effect<A, E | E2 | InteractionError, R>
} = internal.runWithConnection

/**
 * `pool.runInteraction(f)` as a function.
 *
 * @since 0.3.0
 * @category combinators
 */
export const runInteraction: {
  <C, E, A, E2, R>(
    f: (transaction: Transaction<C, E>) => Effect.Effect<A, E2, R>
  ): (self: ConnectionPool<C, E>) => Effect.Effect<A, E | E2 | InteractionError, R>
  <C, E, A, E2, R>(
    self: ConnectionPool<C, E>,
    f: (transaction: Transaction<C, E>) => Effect.Effect<A, E2, R>
  ): Effect.Effect<A, E | E2 | InteractionError, R>
} = internal.runInteraction

/**
 * `pool.runQuery(sql, params)` as a function.
 *
 * @since 0.3.0
 * @category combinators
 */
export const runQuery: <C, E>(
  self: ConnectionPool<C, E>,
  sql: string,
  params?: ReadonlyArray<unknown>
) => Effect.Effect<ReadonlyArray<Row>, E | InteractionError> = internal.runQuery

/**
 * `pool.runOperation(sql, params)` as a function.
 *
 * @since 0.3.0
 * @category combinators
 */
export const runOperation: <C, E>(
  self: ConnectionPool<C, E>,
  sql: string,
  params?: ReadonlyArray<unknown>
) => Effect.Effect<void, E | InteractionError> = internal.runOperation

/**
 * `pool.start` as a function.
 *
 * @since 0.3.0
 * @category combinators
 */
export const start: <C, E>(self: ConnectionPool<C, E>) => Effect.Effect<void, E | PoolError> = internal.start

/**
 * `pool.close` as a function.
 *
 * @since 0.3.0
 * @category combinators
 */
export const close = <C, E>(self: ConnectionPool<C, E>): Effect.Effect<void> => self.close

/**
 * `pool.connect` as a function.
 *
 * @since 0.3.0
 * @category combinators
 */
export const connect: <C, E>(self: ConnectionPool<C, E>) => Effect.Effect<C, E | PoolError> = internal.connect

/**
 * `pool.disconnect(connection)` as a function.
 *
 * @since 0.3.0
 * @category combinators
 */
export const disconnect: {
  <C>(connection: C): <E>(self: ConnectionPool<C, E>) => Effect.Effect<void, PoolUsageError>
  <C, E>(self: ConnectionPool<C, E>, connection: C): Effect.Effect<void, PoolUsageError>
} = internal.disconnect

/**
 * @since 0.3.0
 * @category refinements
 */
export const isConnectionPool: (u: unknown) => u is ConnectionPool<unknown, unknown> = internal.isConnectionPool
