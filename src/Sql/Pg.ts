/**
 * `@effect/sql`'s `SqlClient` for PostgreSQL, over a Reservoir pool of the `Pg` driver: the `sql` template,
 * `withTransaction`, `SqlResolver`, `SqlSchema`, `Migrator` work as with `@effect/sql-pg`, and the pool's policies,
 * events, metrics and status come with them. Moving from `@effect/sql-pg` is a change of import: the options keep
 * their names (`url`, `username`, `maxConnections`, `minConnections`, `idleTimeout`, `connectionTTL`, `ssl`,
 * `transformResultNames`, ...), and the layer provides `SqlClient.SqlClient`.
 *
 * - A statement outside a transaction checks a connection out for that statement only, through `Pool.query` (no
 *   `Scope` per statement; a statement that waits for a connection is started at hand-off, so it waits once); `withTransaction` holds one connection for the transaction, nests with savepoints and
 *   rolls back on failure and on interruption; `sql.stream` holds one connection for the stream's life and reads
 *   through a server-side cursor, 128 rows per round trip, so a large result never sits in memory whole.
 * - An interrupted statement is cancelled on the server, and the cancel can never reach a later statement of the
 *   same session (see `Driver/Pg`); a `ROLLBACK` after a lost connection does not turn into a defect.
 * - Errors are `SqlError`; its `cause` is the driver's `PgError` or the pool's error (`PoolTimeoutError`, ...).
 *   `isDisconnect` tells a lost connection without reading messages.
 *
 * Reused from Effect's packages: the PostgreSQL statement compiler (`@effect/sql-pg`'s `makeCompiler`), `SqlClient.make`
 * and its transactions (`@effect/sql`), `Reactivity` (`@effect/experimental`).
 *
 * @example
 * ```ts
 * import * as SqlPg from "effect-reservoir/Sql/Pg"
 * import { SqlClient } from "@effect/sql"
 * import { Effect, Redacted } from "effect"
 *
 * const program = Effect.gen(function*() {
 *   const sql = yield* SqlClient.SqlClient
 *   return yield* sql`SELECT ${42}::int AS answer`
 * })
 *
 * // was: PgClient.layer({ url: Redacted.make("postgres://app:secret@127.0.0.1:5432/app"), maxConnections: 10 })
 * const live = SqlPg.layer({ url: Redacted.make("postgres://app:secret@127.0.0.1:5432/app"), maxConnections: 10 })
 * const runnable = Effect.provide(program, live)
 * ```
 *
 * @since 0.4.0
 */
import type * as Reactivity from "@effect/experimental/Reactivity"
import type * as PgClient from "@effect/sql-pg/PgClient"
import type * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import type * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import type * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import type { ConnectionOptions } from "node:tls"
import type * as pg from "pg"
import type { PgConnection, PgError, PgOptions } from "../Driver/Pg.js"
import * as internal from "../internal/sqlPg.js"
import type { Policy } from "../Policy.js"
import type { BaseOptions, Pool } from "../Pool.js"
import type { PoolConfigError } from "../PoolError.js"

/**
 * The client's options: the `Pg` driver's (`url`, `host`, `port`, `user`, `database`, `password`,
 * `applicationName`, `statementTimeout`, `connectTimeout`, `clientConfig`, ...), `@effect/sql-pg`'s names for the
 * same things, the row and name transforms, and the pool's own options under `pool`.
 *
 * | option | meaning |
 * | --- | --- |
 * | `username` | `@effect/sql-pg`'s name for `user` |
 * | `maxConnections` | the pool's hard limit: `pool.size` with no overflow (pg-pool's `max`) |
 * | `minConnections` | `pool.min` |
 * | `idleTimeout` | adds `Policy.idleTimeout` |
 * | `connectionTTL` | the age at which `Policy.recycle` replaces a connection (30 minutes by default) |
 * | `ssl`, `types` | node-postgres's (as `clientConfig.ssl` / `clientConfig.types`) |
 * | `spanAttributes` | added to every statement's span |
 * | `transformResultNames`, `transformQueryNames`, `transformJson` | as in `@effect/sql-pg` |
 * | `pool` | the pool's options (`name`, `size`, `maxOverflow`, `timeout`, `policies`, ...); the pool's name is also the sessions' `application_name` unless `applicationName` is given |
 *
 * Without `pool.policies`, a driver pool's defaults apply: `recycle`, `prePing`, `resetOnReturn("rollback")`.
 *
 * @since 0.4.0
 * @category models
 */
export interface PgClientConfig extends PgOptions {
  readonly username?: string | undefined
  readonly maxConnections?: number | undefined
  readonly minConnections?: number | undefined
  readonly idleTimeout?: Duration.DurationInput | undefined
  readonly connectionTTL?: Duration.DurationInput | undefined
  readonly ssl?: boolean | ConnectionOptions | undefined
  readonly types?: pg.CustomTypesConfig | undefined
  readonly spanAttributes?: Record<string, unknown> | undefined
  readonly transformResultNames?: ((str: string) => string) | undefined
  readonly transformQueryNames?: ((str: string) => string) | undefined
  readonly transformJson?: boolean | undefined
  readonly pool?:
    | (BaseOptions & { readonly policies?: ReadonlyArray<Policy<PgConnection, PgError, any>> | undefined })
    | undefined
}

/**
 * The client: an `@effect/sql` `SqlClient`, its pool, and what `@effect/sql-pg`'s `PgClient` has (`json`, `listen`,
 * `notify`, `config`), so that code reading `PgClient.PgClient` (`PgMigrator.run`, `sql.json`) runs on it too. It
 * holds no password: the driver forgets it once connected, and `config` has neither the password nor the
 * connection string.
 *
 * @since 0.4.0
 * @category models
 */
export interface PgSqlClient extends PgClient.PgClient {
  /** The pool the statements check out from (`Pool.stats`, `Pool.events`, `Pool.status` work on it). */
  readonly pool: Pool<PgConnection, PgError>
}

/**
 * @since 0.4.0
 * @category tags
 */
export const PgSqlClient: Context.Tag<PgSqlClient, PgSqlClient> = internal.PgSqlClient

/**
 * The client's pool as a service.
 *
 * @since 0.4.0
 * @category tags
 */
export const PgPool: Context.TagClass<internal.PgPool, "effect-reservoir/Sql/Pg/PgPool", Pool<PgConnection, PgError>> =
  internal.PgPool

/**
 * @since 0.4.0
 * @category tags
 */
export type PgPool = internal.PgPool

/**
 * Builds the client: makes the pool (bad options fail with one `PoolConfigError` listing every problem), then checks
 * the server with one round trip (a wrong address or password fails here, as a `SqlError` whose cause is the
 * `PgError`). The pool closes with the scope.
 *
 * @since 0.4.0
 * @category constructors
 */
export const make: (
  config: PgClientConfig
) => Effect.Effect<PgSqlClient, SqlError | PoolConfigError, Scope.Scope | Reactivity.Reactivity> = internal.make

/**
 * The layer: `SqlClient.SqlClient`, `PgSqlClient` (also as `@effect/sql-pg`'s `PgClient.PgClient`) and `PgPool`,
 * with `Reactivity` provided.
 *
 * @example
 * ```ts
 * import * as SqlPg from "effect-reservoir/Sql/Pg"
 * import { Redacted } from "effect"
 *
 * const live = SqlPg.layer({
 *   url: Redacted.make("postgres://app:secret@127.0.0.1:5432/app"),
 *   pool: { size: 8, maxOverflow: 4, timeout: "5 seconds" }
 * })
 * ```
 *
 * @since 0.4.0
 * @category layers
 */
export const layer: (
  config: PgClientConfig
) => Layer.Layer<PgSqlClient | PgClient.PgClient | SqlClient.SqlClient | PgPool, SqlError | PoolConfigError> =
  internal.layer

/**
 * What `layerConfig` reads by default: the connection string from `DATABASE_URL` (a secret), and the pool's options
 * from `POOL_NAME`, `POOL_SIZE`, `POOL_MAX_OVERFLOW`, `POOL_MIN`, `POOL_TIMEOUT`, `POOL_CONNECT_TIMEOUT`, each
 * optional.
 *
 * @since 0.4.0
 * @category layers
 */
export const defaultConfig: Config.Config.Wrap<PgClientConfig> = internal.defaultConfig

/**
 * Like `layer`, with the options read through Effect's `Config`.
 *
 * @example
 * ```ts
 * import * as SqlPg from "effect-reservoir/Sql/Pg"
 * import { Config } from "effect"
 *
 * // DATABASE_URL=postgres://app:secret@db:5432/app POOL_SIZE=8
 * const live = SqlPg.layerConfig()
 *
 * const custom = SqlPg.layerConfig({
 *   url: Config.redacted("PRIMARY_URL"),
 *   maxConnections: Config.integer("PRIMARY_MAX")
 * })
 * ```
 *
 * @since 0.4.0
 * @category layers
 */
export const layerConfig: (
  config?: Config.Config.Wrap<PgClientConfig>
) => Layer.Layer<
  PgSqlClient | PgClient.PgClient | SqlClient.SqlClient | PgPool,
  SqlError | PoolConfigError | ConfigError.ConfigError
> = internal.layerConfig

/**
 * `true` when the error means the connection was lost (its cause is a `PgError` the driver classifies as a
 * disconnect: SQLSTATE class 08, an admin shutdown, a reset socket, ...); never for the pool's own errors.
 *
 * @since 0.4.0
 * @category refinements
 */
export const isDisconnect: (error: unknown) => boolean = internal.isDisconnect
