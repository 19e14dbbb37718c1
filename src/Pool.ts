/**
 * The pool: QueuePool semantics (size, overflow, timeout, FIFO/LIFO), fair hand-off to waiters in arrival order,
 * interruption-safe checkout, typed errors, events, metrics and lifecycle policies.
 *
 * @since 0.1.0
 */
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import type * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type { Pipeable } from "effect/Pipeable"
import type * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import type * as Stream from "effect/Stream"
import type { ConnectionRecord } from "./ConnectionRecord.js"
import type { Driver, Row } from "./Driver.js"
import * as internalConfig from "./internal/config.js"
import * as kinds from "./internal/kinds.js"
import * as internal from "./internal/pool.js"
import type { Policy } from "./Policy.js"
import type { PoolConfigError, PoolError, PoolStats, PoolUsageError } from "./PoolError.js"
import type { Listeners, PoolEvent } from "./PoolEvent.js"

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
 * A pool of connections of type `C` whose connects may fail with `E`. Create one with `make` (scoped) or provide
 * one with `layer`; it closes with its scope.
 *
 * @since 0.1.0
 * @category models
 */
export interface Pool<C, E = never> extends Pipeable {
  readonly [TypeId]: TypeId
  /** The pool's name (in logs, events, metrics and errors). */
  readonly name: string
  /** The driver the pool opens connections with. */
  readonly driver: Driver<C, E>
}

/**
 * The options every pool takes. All are optional; the defaults are SQLAlchemy's QueuePool's.
 *
 * | option | default | meaning |
 * | --- | --- | --- |
 * | `name` | `"reservoir"` | for logs, events, metrics (`db.client.connection.pool.name`) and `application_name` |
 * | `size` | 5 | connections kept open when idle |
 * | `maxOverflow` | 10 | connections opened beyond `size` under load, closed when returned to a full pool; `"unbounded"` for no limit |
 * | `min` | 0 | connections opened at start and kept open |
 * | `timeout` | 30 seconds | how long a checkout waits before failing with `PoolTimeoutError`; `"Infinity"` waits forever |
 * | `connectTimeout` | none | how long one connect may take |
 * | `order` | `"fifo"` | which idle connection is lent next: the longest idle (`"fifo"`) or the most recent (`"lifo"`) |
 * | `maxWaiters` | unbounded | checkouts that may wait at once; one more fails with `PoolExhaustedError` |
 * | `labels` | `{}` | labels recorded on every connection record (Spanner's session labels) |
 * | `shutdownTimeout` | 30 seconds | how long closing the pool waits for lent connections before closing them anyway |
 * | `echo` | `false` | SQLAlchemy's `echo_pool`: `true` logs connect / close / invalidate at info, `"debug"` also checkouts |
 * | `maxCheckoutAttempts` | 3 | connections a checkout may see rejected (by policies or listeners) before it fails |
 *
 * @since 0.1.0
 * @category models
 */
export interface BaseOptions {
  readonly name?: string | undefined
  readonly size?: number | undefined
  readonly maxOverflow?: number | "unbounded" | undefined
  readonly min?: number | undefined
  readonly timeout?: Duration.DurationInput | undefined
  readonly connectTimeout?: Duration.DurationInput | undefined
  readonly order?: "fifo" | "lifo" | undefined
  readonly maxWaiters?: number | "unbounded" | undefined
  readonly labels?: Readonly<Record<string, string>> | undefined
  readonly shutdownTimeout?: Duration.DurationInput | undefined
  readonly echo?: boolean | "debug" | undefined
  readonly maxCheckoutAttempts?: number | undefined
}

/**
 * A pool's options: a `driver` (or a bare scoped `acquire`), the policies, and the `BaseOptions`.
 *
 * @since 0.1.0
 * @category models
 */
export type Options<C, E> =
  & BaseOptions
  & { readonly policies?: ReadonlyArray<Policy<NoInfer<C>, NoInfer<E>, any>> | undefined }
  & (
    | { readonly driver: Driver<C, E> }
    | { readonly acquire: Effect.Effect<C, E, Scope.Scope> }
  )

/**
 * A pool's options with its driver named by the driver layer's Tag (such as `Pg.PgDriver` or `Sqlite.SqliteDriver`)
 * instead of given as a value: the pool, or its layer, then requires that service, and is built over whatever layer
 * provides it (`Pg.layerConfig()`, `Sqlite.layer(...)`, a replica's Tag) without a hand-written `Layer.scoped`.
 *
 * @since 0.5.0
 * @category models
 */
export type OptionsFromTag<C, E, R> =
  & BaseOptions
  & { readonly policies?: ReadonlyArray<Policy<NoInfer<C>, NoInfer<E>, any>> | undefined }
  & { readonly driver: Context.Tag<R, Driver<C, E>> }

/**
 * The serialisable part of the options as a `Schema`: it decodes from JSON (times as milliseconds or strings such
 * as `"30 seconds"`) and encodes back. `config` returns a pool's configuration in this form.
 *
 * @since 0.1.0
 * @category models
 */
export const PoolConfig: Schema.Schema<PoolConfig, PoolConfigEncoded> = internalConfig.PoolConfig

/**
 * @since 0.1.0
 * @category models
 */
export type PoolConfig = internalConfig.PoolConfig

/**
 * @since 0.1.0
 * @category models
 */
export type PoolConfigEncoded = internalConfig.PoolConfigEncoded

/**
 * @since 0.1.0
 * @category type ids
 */
export const LeaseTypeId: unique symbol = internal.LeaseTypeId

/**
 * @since 0.1.0
 * @category type ids
 */
export type LeaseTypeId = typeof LeaseTypeId

/**
 * A connection checked out with `checkout`, to be returned with `checkin` exactly once.
 *
 * @since 0.1.0
 * @category models
 */
export interface Lease<C> {
  readonly [LeaseTypeId]: LeaseTypeId
  readonly connection: C
  readonly record: ConnectionRecord
}

/**
 * Options of one checkout. `timeout` overrides the pool's `timeout` for this checkout alone (Spanner's
 * `get(timeout)`): the checkout ends by then, with the connection or a `PoolTimeoutError`, whatever happens
 * meanwhile (rejections and retries keep this first deadline).
 *
 * @since 0.2.0
 * @category models
 */
export interface CheckoutOptions {
  readonly timeout?: Duration.DurationInput | undefined
}

/**
 * Options of a manual return. `whenFull: "fail"` is Spanner's `put`: when nobody waits and `size` connections are
 * idle already, the return fails with `PoolUsageError` (`reason: "Full"`) and the caller keeps the lease, instead
 * of the connection being closed as overflow (`"close"`, the default).
 *
 * @since 0.2.0
 * @category models
 */
export interface CheckinOptions {
  readonly whenFull?: "close" | "fail" | undefined
}

/**
 * Creates a pool in the current scope. Invalid options fail with one `PoolConfigError` listing every problem.
 * When the scope closes, new checkouts fail with `PoolClosedError`, waiters fail at once, idle connections close,
 * and lent ones close when returned or after `shutdownTimeout`, whichever comes first.
 *
 * @example
 * ```ts
 * import { Pool } from "effect-reservoir"
 * import * as Memory from "effect-reservoir/Driver/Memory"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function*() {
 *   const db = yield* Memory.make()
 *   const pool = yield* Pool.make({ driver: db.driver, size: 2, maxOverflow: 1 })
 *   yield* Pool.use(pool, (connection) => db.driver.query(connection, "SELECT 1"))
 *   return yield* Pool.status(pool)
 * })
 * Effect.runPromise(Effect.scoped(program)).then(console.log)
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: {
  <C, E>(options: Options<C, E>): Effect.Effect<Pool<C, E>, PoolConfigError, Scope.Scope>
  <C, E, R>(options: OptionsFromTag<C, E, R>): Effect.Effect<Pool<C, E>, PoolConfigError, Scope.Scope | R>
} = internal.makeFrom

/**
 * The PoolLayer: a pool provided under the caller's Tag, so a program can hold several (a primary and a replica).
 * The driver is a value, or the Tag of a driver layer: the PoolLayer then requires it, and `Layer.provide` puts it
 * over `Pg.layerConfig()` (or any layer of that Tag) directly.
 *
 * @example
 * ```ts
 * import { Context, Effect, Layer } from "effect"
 * import * as Pg from "effect-reservoir/Driver/Pg"
 * import * as Pool from "effect-reservoir/Pool"
 *
 * class Db extends Context.Tag("app/Db")<Db, Pool.Pool<Pg.PgConnection, Pg.PgError>>() {}
 *
 * // DATABASE_URL=postgres://app:secret@db:5432/app
 * const DbLive = Pool.layer(Db, { driver: Pg.PgDriver, size: 10 }).pipe(Layer.provide(Pg.layerConfig()))
 *
 * const program = Effect.flatMap(Db, (db) => Pool.query(db, "SELECT 1 AS one"))
 * // run it with DATABASE_URL set: Effect.runPromise(main)
 * export const main = program.pipe(Effect.provide(DbLive))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer: {
  <I, C, E>(tag: Context.Tag<I, Pool<C, E>>, options: Options<C, E>): Layer.Layer<I, PoolConfigError>
  <I, C, E, R>(tag: Context.Tag<I, Pool<C, E>>, options: OptionsFromTag<C, E, R>): Layer.Layer<I, PoolConfigError, R>
} = internal.layer as any

/**
 * The PoolLayer with its options read through Effect's `Config` (environment variables by default), in the
 * `PoolConfig` encoded form.
 *
 * @example
 * ```ts
 * import { Pool } from "effect-reservoir"
 * import { Config, Context } from "effect"
 *
 * // POOL_SIZE=10 POOL_TIMEOUT="5 seconds"
 * const config = {
 *   size: Config.integer("POOL_SIZE").pipe(Config.withDefault(5)),
 *   timeout: Config.string("POOL_TIMEOUT").pipe(Config.withDefault("30 seconds"))
 * }
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig: {
  <I, C, E>(
    tag: Context.Tag<I, Pool<C, E>>,
    driver: Driver<C, E>,
    options: Config.Config.Wrap<Partial<PoolConfigEncoded>>,
    extra?: { readonly policies?: ReadonlyArray<Policy<NoInfer<C>, NoInfer<E>, any>> | undefined }
  ): Layer.Layer<I, PoolConfigError | ConfigError.ConfigError>
  <I, C, E, R>(
    tag: Context.Tag<I, Pool<C, E>>,
    driver: Context.Tag<R, Driver<C, E>>,
    options: Config.Config.Wrap<Partial<PoolConfigEncoded>>,
    extra?: { readonly policies?: ReadonlyArray<Policy<NoInfer<C>, NoInfer<E>, any>> | undefined }
  ): Layer.Layer<I, PoolConfigError | ConfigError.ConfigError, R>
} = (<I, C, E, R>(
  tag: Context.Tag<I, Pool<C, E>>,
  driver: Driver<C, E> | Context.Tag<R, Driver<C, E>>,
  options: Config.Config.Wrap<Partial<PoolConfigEncoded>>,
  extra?: { readonly policies?: ReadonlyArray<Policy<NoInfer<C>, NoInfer<E>, any>> | undefined }
): Layer.Layer<I, PoolConfigError | ConfigError.ConfigError, R> =>
  Layer.scoped(
    tag,
    Effect.flatMap(
      Config.unwrap(options),
      (values) => internal.makeFrom<C, E, R>({ ...(values as BaseOptions), driver, policies: extra?.policies } as any)
    )
  )) as any

/**
 * Checks out a connection for the life of the current scope; it is returned when the scope closes. `timeout`
 * overrides the pool's for this checkout.
 *
 * @since 0.1.0
 * @category combinators
 */
export const get: <C, E>(self: Pool<C, E>, options?: CheckoutOptions) => Effect.Effect<C, E | PoolError, Scope.Scope> =
  internal.get

/**
 * Checks out a connection, runs `f` with it, and returns it however `f` ends (succeeds, fails, dies, throws before
 * answering an Effect, is interrupted): the fast path, without a `Scope`. `timeout` overrides the pool's for this
 * checkout. When `f` fails with an error the driver calls a disconnect, the connection is invalidated, never lent
 * again.
 *
 * @since 0.1.0
 * @category combinators
 */
export const use: {
  <C, A, E2, R>(
    f: (connection: C) => Effect.Effect<A, E2, R>,
    options?: CheckoutOptions
  ): <E>(self: Pool<C, E>) => Effect.Effect<A, E | E2 | PoolError, R>
  <C, E, A, E2, R>(
    self: Pool<C, E>,
    f: (connection: C) => Effect.Effect<A, E2, R>,
    options?: CheckoutOptions
  ): Effect.Effect<A, E | E2 | PoolError, R>
} = internal.use

/**
 * Runs one statement (the driver's `query`) on a connection checked out for that statement alone, and returns its
 * rows: `Pool.use(pool, (c) => driver.query(c, sql, params))`, with one difference under contention. A statement is
 * data, so when it has to wait for a connection, the pool starts it at the moment it hands a connection over, from
 * the step that hands it over (when the driver can send a statement outside an Effect: `Driver.start`, which the
 * `Pg` driver has, and the connection needs no checking first): the caller waits once, for the result, instead of
 * waking for the connection and then waiting for the statement. Everything else is as with `use`: the deadline
 * (`timeout`), the policies, the events, the return; an interrupted statement is cancelled as the driver cancels
 * one. The `SqlClient` of `Sql/Pg` runs its statements outside transactions this way.
 *
 * @example
 * ```ts
 * import { Pool } from "effect-reservoir"
 * import * as Pg from "effect-reservoir/Driver/Pg"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function*() {
 *   const pool = yield* Pool.make({ driver: Pg.driver({ host: "127.0.0.1" }), size: 8 })
 *   return yield* Pool.query(pool, "SELECT $1::int AS n", [42])
 * })
 * ```
 *
 * @since 0.4.0
 * @category combinators
 */
export const query: {
  (
    sql: string,
    params?: ReadonlyArray<unknown>,
    options?: CheckoutOptions
  ): <C, E>(self: Pool<C, E>) => Effect.Effect<ReadonlyArray<Row>, E | PoolError>
  <C, E>(
    self: Pool<C, E>,
    sql: string,
    params?: ReadonlyArray<unknown>,
    options?: CheckoutOptions
  ): Effect.Effect<ReadonlyArray<Row>, E | PoolError>
} = internal.query

/**
 * Runs `f` in a transaction: the driver's `begin`, then `commit` when `f` succeeds or `rollback` when it fails or
 * is interrupted. A connection whose rollback fails is invalidated.
 *
 * @since 0.1.0
 * @category combinators
 */
export const transaction: {
  <C, A, E2, R>(
    f: (connection: C) => Effect.Effect<A, E2, R>,
    options?: CheckoutOptions
  ): <E>(self: Pool<C, E>) => Effect.Effect<A, E | E2 | PoolError, R>
  <C, E, A, E2, R>(
    self: Pool<C, E>,
    f: (connection: C) => Effect.Effect<A, E2, R>,
    options?: CheckoutOptions
  ): Effect.Effect<A, E | E2 | PoolError, R>
} = internal.transaction

/**
 * Checks out a connection without a scope: the caller must give the lease back with `checkin`, exactly once.
 * Prefer `use` or `get`.
 *
 * @since 0.1.0
 * @category combinators
 */
export const checkout: <C, E>(self: Pool<C, E>, options?: CheckoutOptions) => Effect.Effect<Lease<C>, E | PoolError> =
  internal.checkout

/**
 * Returns a lease from `checkout`. A lease returned twice, or from another pool, is refused with `PoolUsageError`
 * and the pool is left as it was. With `whenFull: "fail"` (Spanner's `put`) a return to a full pool is refused too.
 *
 * @since 0.1.0
 * @category combinators
 */
export const checkin: {
  <C>(lease: Lease<C>, options?: CheckinOptions): <E>(self: Pool<C, E>) => Effect.Effect<void, PoolUsageError>
  <C, E>(self: Pool<C, E>, lease: Lease<C>, options?: CheckinOptions): Effect.Effect<void, PoolUsageError>
} = internal.checkin

/**
 * Invalidates one connection, named by its lease or by the connection itself (when several live connections are
 * equal values, the one lent to the calling fiber). Hard (the default): it is closed now, whether idle or lent (a
 * lent one's return then only checks it in). Soft: it is never lent again and is closed when returned (or now, if
 * idle).
 *
 * @since 0.1.0
 * @category combinators
 */
export const invalidate: {
  <C>(
    connection: C | Lease<C>,
    options?: { readonly soft?: boolean | undefined; readonly cause?: unknown }
  ): <E>(self: Pool<C, E>) => Effect.Effect<void, PoolUsageError>
  <C, E>(
    self: Pool<C, E>,
    connection: C | Lease<C>,
    options?: { readonly soft?: boolean | undefined; readonly cause?: unknown }
  ): Effect.Effect<void, PoolUsageError>
} = internal.invalidate

/**
 * Starts a new generation: idle connections close now, lent ones when returned. Waiters are served by fresh
 * connections.
 *
 * @since 0.1.0
 * @category combinators
 */
export const invalidateAll: <C, E>(self: Pool<C, E>) => Effect.Effect<void> = internal.invalidateAll

/**
 * Takes a lent connection out of the pool: its slot is freed and the caller owns it for the life of the current
 * scope, whose closing closes it (emitting `CloseDetached`). Its lease's return then does nothing.
 *
 * @since 0.1.0
 * @category combinators
 */
export const detach: {
  <C>(connection: C | Lease<C>): <E>(self: Pool<C, E>) => Effect.Effect<void, PoolUsageError, Scope.Scope>
  <C, E>(self: Pool<C, E>, connection: C | Lease<C>): Effect.Effect<void, PoolUsageError, Scope.Scope>
} = internal.detach

/**
 * Closes every idle connection; lent ones are left alone. The pool stays usable.
 *
 * @since 0.1.0
 * @category combinators
 */
export const dispose: <C, E>(self: Pool<C, E>) => Effect.Effect<void> = internal.dispose

/**
 * A new pool with the same options (driver, policies, configuration) in the current scope. The old one is not
 * touched: dispose of it, or let its scope close.
 *
 * @since 0.1.0
 * @category constructors
 */
export const recreate: <C, E>(self: Pool<C, E>) => Effect.Effect<Pool<C, E>, PoolConfigError, Scope.Scope> =
  internal.recreate

/**
 * SQLAlchemy's status line, e.g.
 * `Pool size: 5  Connections in pool: 2 Current Overflow: -3 Current Checked out connections: 0`.
 *
 * @since 0.1.0
 * @category getters
 */
export const status: <C, E>(self: Pool<C, E>) => Effect.Effect<string> = internal.status

/**
 * A snapshot of the pool's counters, with closes counted by reason.
 *
 * @since 0.1.0
 * @category getters
 */
export const stats: <C, E>(self: Pool<C, E>) => Effect.Effect<PoolStats> = internal.stats

/**
 * The pool's configuration in its JSON form (`PoolConfig` encoded).
 *
 * @since 0.1.0
 * @category getters
 */
export const config: <C, E>(self: Pool<C, E>) => PoolConfigEncoded = internal.configOf

/**
 * The record of a connection this pool opened: the record alone, which reaches neither the connection nor its scope.
 *
 * @since 0.1.0
 * @category getters
 */
export const record: <C, E>(
  self: Pool<C, E>,
  connection: C | Lease<C>
) => Effect.Effect<ConnectionRecord, PoolUsageError> = internal.record

/**
 * The commands of a policy the pool was made with, by the policy value itself (each pool has its own instance):
 * for example a keepalive's `ping` or a breaker's state. Fails with `PoolUsageError` (`"NotInstalled"`) for a
 * policy the pool was not made with.
 *
 * @since 0.2.0
 * @category getters
 */
export const policy: <C, E, Commands>(
  self: Pool<C, E>,
  policy: Policy<C, E, Commands>
) => Effect.Effect<Commands, PoolUsageError> = internal.policy

/**
 * Every lifecycle event of the pool, from the moment the stream is run, in the order listeners hear them. Each
 * subscriber has a buffer of `bufferSize` events (default 4096): while it is full, newer events are dropped for
 * that subscriber and counted in `Pool.stats(pool).eventsDropped`, so a slow subscriber never grows memory. Costs
 * nothing while nobody subscribes.
 *
 * @since 0.1.0
 * @category events
 */
export const events: <C, E>(
  self: Pool<C, E>,
  options?: { readonly bufferSize?: number | undefined }
) => Stream.Stream<PoolEvent<C>> = internal.events

/**
 * Registers listeners for the life of the current scope. A `checkout` listener may fail with `ConnectionRejected`
 * to refuse the connection: it is closed and the checkout tries another.
 *
 * @since 0.1.0
 * @category events
 */
export const listen: {
  <C>(listeners: Listeners<C>): <E>(self: Pool<C, E>) => Effect.Effect<void, never, Scope.Scope>
  <C, E>(self: Pool<C, E>, listeners: Listeners<C>): Effect.Effect<void, never, Scope.Scope>
} = internal.listen

/**
 * @since 0.1.0
 * @category refinements
 */
export const isPool: (u: unknown) => u is Pool<unknown, unknown> = internal.isPool

// --- SQLAlchemy's other pool kinds (issue 12) -----------------------------------------------------------------------

/**
 * The options of a pool kind: `Options` without the ones the kind fixes (`Fixed`).
 *
 * @since 0.3.0
 * @category models
 */
export type KindOptions<C, E, Fixed extends keyof BaseOptions> =
  & Omit<BaseOptions, Fixed>
  & { readonly policies?: ReadonlyArray<Policy<NoInfer<C>, NoInfer<E>, any>> | undefined }
  & (
    | { readonly driver: Driver<C, E> }
    | { readonly acquire: Effect.Effect<C, E, Scope.Scope> }
  )

/**
 * `makeNull`'s options: a null pool keeps nothing (`size` and `min` are 0); `maxOverflow`, unbounded by default
 * (SQLAlchemy's `NullPool` has no limit), caps the connections open at once.
 *
 * @since 0.3.0
 * @category models
 */
export type NullOptions<C, E> = KindOptions<C, E, "size" | "min">

/**
 * `makeStatic`'s options: a static pool has exactly one connection (`size` 1, no overflow, opened at the first
 * checkout).
 *
 * @since 0.3.0
 * @category models
 */
export type StaticOptions<C, E> = KindOptions<C, E, "size" | "maxOverflow" | "min">

/**
 * `makePerFiber`'s options: `size` (default 5, SQLAlchemy's `pool_size`) is the most fibers holding a connection at
 * once; a fiber beyond it waits up to `timeout`, as at any checkout.
 *
 * @since 0.3.0
 * @category models
 */
export type PerFiberOptions<C, E> = KindOptions<C, E, "maxOverflow" | "min">

/**
 * `makeAssertion`'s options: one connection; `storeTraceback` (default `true`, SQLAlchemy's `store_traceback`)
 * records where each checkout happened, for the error a second one gets.
 *
 * @since 0.3.0
 * @category models
 */
export type AssertionOptions<C, E> = KindOptions<C, E, "size" | "maxOverflow" | "min"> & {
  readonly storeTraceback?: boolean | undefined
}

/**
 * What `kind` answers: the constructor a pool was made with (`"queue"` for `make`, SQLAlchemy's `QueuePool`).
 *
 * @since 0.3.0
 * @category models
 */
export type Kind = "queue" | "null" | "static" | "perFiber" | "assertion"

/**
 * An assertion pool (`makeAssertion`) refused a checkout because its one connection is checked out already:
 * SQLAlchemy's `AssertionError("connection is already checked out")`. `holder` is the fiber holding it;
 * `checkedOutAt` the stack of the checkout that holds it (with `storeTraceback`).
 *
 * @since 0.3.0
 * @category errors
 */
export const PoolAssertionError: typeof kinds.PoolAssertionError = kinds.PoolAssertionError

/**
 * @since 0.3.0
 * @category errors
 */
export type PoolAssertionError = kinds.PoolAssertionError

/**
 * SQLAlchemy's `NullPool`: a checkout opens a connection and its return closes it; nothing is kept (`size: 0`,
 * overflow unbounded unless `maxOverflow` caps it). Policies still run on each connection; `status` shows every
 * connection as overflow.
 *
 * @example
 * ```ts
 * import { Pool } from "effect-reservoir"
 * import * as Memory from "effect-reservoir/Driver/Memory"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function*() {
 *   const db = yield* Memory.make()
 *   const pool = yield* Pool.makeNull({ driver: db.driver })
 *   yield* Pool.use(pool, (connection) => db.driver.query(connection, "SELECT 1"))
 *   return (yield* Pool.stats(pool)).closed // 1: closed on return
 * })
 * ```
 *
 * @since 0.3.0
 * @category constructors
 */
export const makeNull: <C, E>(options: NullOptions<C, E>) => Effect.Effect<Pool<C, E>, PoolConfigError, Scope.Scope> =
  kinds.makeNull

/**
 * SQLAlchemy's `StaticPool`: exactly one connection, handed to every checkout at once, without exclusion (two
 * fibers using it concurrently share one session, as two SQLAlchemy connections of a `StaticPool` do). It is
 * checked out of the pool's one slot when a first borrower arrives and returned (reset on return, then idle) when
 * the last leaves; a borrower's disconnect invalidates it and the next borrower gets a new one.
 *
 * @since 0.3.0
 * @category constructors
 */
export const makeStatic: <C, E>(
  options: StaticOptions<C, E>
) => Effect.Effect<Pool<C, E>, PoolConfigError, Scope.Scope> = kinds.makeStatic

/**
 * SQLAlchemy's `SingletonThreadPool`, per fiber: a fiber's checkouts, nested or one after another, all get the
 * same connection, which the fiber keeps until it ends; then it is closed. At most `size` fibers hold one at once.
 * A child fiber is a fiber of its own and gets its own connection.
 *
 * @since 0.3.0
 * @category constructors
 */
export const makePerFiber: <C, E>(
  options: PerFiberOptions<C, E>
) => Effect.Effect<Pool<C, E>, PoolConfigError, Scope.Scope> = kinds.makePerFiber

/**
 * SQLAlchemy's `AssertionPool`, for tests: one connection, and a checkout while it is out (another fiber's, or a
 * nested one) fails at once with `PoolAssertionError` instead of waiting. The pool's error type says so.
 *
 * @since 0.3.0
 * @category constructors
 */
export const makeAssertion: <C, E>(
  options: AssertionOptions<C, E>
) => Effect.Effect<Pool<C, E | PoolAssertionError>, PoolConfigError, Scope.Scope> = kinds.makeAssertion

/**
 * `makeNull` as a layer under the caller's Tag.
 *
 * @since 0.3.0
 * @category layers
 */
export const layerNull = <I, C, E>(
  tag: Context.Tag<I, Pool<C, E>>,
  options: NullOptions<C, E>
): Layer.Layer<I, PoolConfigError> => Layer.scoped(tag, kinds.makeNull(options))

/**
 * `makeStatic` as a layer under the caller's Tag.
 *
 * @since 0.3.0
 * @category layers
 */
export const layerStatic = <I, C, E>(
  tag: Context.Tag<I, Pool<C, E>>,
  options: StaticOptions<C, E>
): Layer.Layer<I, PoolConfigError> => Layer.scoped(tag, kinds.makeStatic(options))

/**
 * `makePerFiber` as a layer under the caller's Tag.
 *
 * @since 0.3.0
 * @category layers
 */
export const layerPerFiber = <I, C, E>(
  tag: Context.Tag<I, Pool<C, E>>,
  options: PerFiberOptions<C, E>
): Layer.Layer<I, PoolConfigError> => Layer.scoped(tag, kinds.makePerFiber(options))

/**
 * `makeAssertion` as a layer under the caller's Tag (whose pool's errors include `PoolAssertionError`).
 *
 * @since 0.3.0
 * @category layers
 */
export const layerAssertion = <I, C, E>(
  tag: Context.Tag<I, Pool<C, E | PoolAssertionError>>,
  options: AssertionOptions<C, E>
): Layer.Layer<I, PoolConfigError> => Layer.scoped(tag, kinds.makeAssertion(options))

/**
 * The kind a pool was made as (`recreate` keeps it).
 *
 * @since 0.3.0
 * @category getters
 */
export const kind: <C, E>(self: Pool<C, E>) => Kind = kinds.kindOf
