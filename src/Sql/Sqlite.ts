/**
 * `@effect/sql`'s `SqlClient` for SQLite, over a Reservoir pool of the `Sqlite` driver (better-sqlite3). Moving from
 * `@effect/sql-sqlite-node` is a change of import: `filename`, `readonly`, `disableWAL`, `spanAttributes` and the
 * name transforms keep their names, and the layer provides `SqlClient.SqlClient`.
 *
 * What changes: `@effect/sql-sqlite-node` serialises every statement on one connection; here a file database gets a
 * pool (readers in parallel under WAL, writers queued on the file's write lock), `sql.stream` reads through
 * better-sqlite3's iterator in batches of 128 rows (`@effect/sql-sqlite-node` has no streams), and transactions begin
 * with `BEGIN IMMEDIATE` (the driver's `beginMode`), so two writers never deadlock on an upgrade. A `:memory:` database
 * belongs to its one connection: its pool has exactly one, opened at start and never recycled (a size, minimum,
 * `connectionTTL`, `idleTimeout` or closing policy that says otherwise is a `PoolConfigError`).
 *
 * Reused from Effect's packages: the SQLite statement compiler (`Statement.makeCompilerSqlite`), `SqlClient.make`
 * and its transactions, `Reactivity`.
 *
 * @example
 * ```ts
 * import * as SqlSqlite from "effect-reservoir/Sql/Sqlite"
 * import { SqlClient } from "@effect/sql"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function*() {
 *   const sql = yield* SqlClient.SqlClient
 *   yield* sql`CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, body TEXT)`
 *   yield* sql`INSERT INTO notes ${sql.insert({ body: "hello" })}`
 *   return yield* sql`SELECT body FROM notes`
 * })
 *
 * // was: SqliteClient.layer({ filename: ":memory:" })
 * const runnable = Effect.provide(program, SqlSqlite.layer({ filename: ":memory:" }))
 * ```
 *
 * @since 0.4.0
 */
import type * as Reactivity from "@effect/experimental/Reactivity"
import type * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import type * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import type * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import type * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import type { SqliteConnection, SqliteError, SqliteOptions } from "../Driver/Sqlite.js"
import * as internal from "../internal/sqlSqlite.js"
import type { Policy } from "../Policy.js"
import type { BaseOptions, Pool } from "../Pool.js"
import type { PoolConfigError } from "../PoolError.js"

/**
 * The client's options: the `Sqlite` driver's (`filename`, `busyTimeout`, `journalMode`, `beginMode`, `pragmas`,
 * `readonly`, `fileMustExist`), `@effect/sql-sqlite-node`'s `disableWAL` (`journalMode: "delete"`),
 * `maxConnections` / `minConnections` / `idleTimeout` / `connectionTTL` as in `Sql/Pg`, the span attributes and
 * name transforms, and the pool's own options under `pool`.
 *
 * @since 0.4.0
 * @category models
 */
export interface SqliteClientConfig extends SqliteOptions {
  readonly disableWAL?: boolean | undefined
  readonly maxConnections?: number | undefined
  readonly minConnections?: number | undefined
  readonly idleTimeout?: Duration.DurationInput | undefined
  readonly connectionTTL?: Duration.DurationInput | undefined
  readonly spanAttributes?: Record<string, unknown> | undefined
  readonly transformResultNames?: ((str: string) => string) | undefined
  readonly transformQueryNames?: ((str: string) => string) | undefined
  readonly pool?:
    | (BaseOptions & { readonly policies?: ReadonlyArray<Policy<SqliteConnection, SqliteError, any>> | undefined })
    | undefined
}

/**
 * The client: an `@effect/sql` `SqlClient`, its pool, and what `@effect/sql-sqlite-node`'s `SqliteClient` has
 * (`config`, `export`, `backup`, `loadExtension`), so that code reading `SqliteClient.SqliteClient`
 * (`SqliteMigrator.run`) runs on it too. `loadExtension` works on a pool of one connection (`:memory:`, or
 * `maxConnections: 1`); on a larger pool it fails with a `SqlError` saying to load the extension on every connection
 * with `Policy.onConnect`.
 *
 * @since 0.4.0
 * @category models
 */
export interface SqliteSqlClient extends SqliteClient.SqliteClient {
  /** The pool the statements check out from. */
  readonly pool: Pool<SqliteConnection, SqliteError>
}

/**
 * @since 0.4.0
 * @category tags
 */
export const SqliteSqlClient: Context.Tag<SqliteSqlClient, SqliteSqlClient> = internal.SqliteSqlClient

/**
 * The client's pool as a service.
 *
 * @since 0.4.0
 * @category tags
 */
export const SqlitePool: Context.TagClass<
  internal.SqlitePool,
  "effect-reservoir/Sql/Sqlite/SqlitePool",
  Pool<SqliteConnection, SqliteError>
> = internal.SqlitePool

/**
 * @since 0.4.0
 * @category tags
 */
export type SqlitePool = internal.SqlitePool

/**
 * Builds the client: makes the pool (bad options fail with one `PoolConfigError` listing every problem, including a
 * `:memory:` database given more than one connection or a policy that closes connections), then opens the database
 * once to check it (a `SqlError` whose cause is the `SqliteError` when it cannot). The pool closes with the scope.
 *
 * @since 0.4.0
 * @category constructors
 */
export const make: (
  config: SqliteClientConfig
) => Effect.Effect<SqliteSqlClient, SqlError | PoolConfigError, Scope.Scope | Reactivity.Reactivity> = internal.make

/**
 * The layer: `SqlClient.SqlClient`, `SqliteSqlClient` (also as `@effect/sql-sqlite-node`'s
 * `SqliteClient.SqliteClient`) and `SqlitePool`, with `Reactivity` provided.
 *
 * @since 0.4.0
 * @category layers
 */
export const layer: (
  config: SqliteClientConfig
) => Layer.Layer<
  SqliteSqlClient | SqliteClient.SqliteClient | SqlClient.SqlClient | SqlitePool,
  SqlError | PoolConfigError
> = internal.layer

/**
 * What `layerConfig` reads by default: the file from `SQLITE_FILENAME`, and the pool's options as `Sql/Pg` does.
 *
 * @since 0.4.0
 * @category layers
 */
export const defaultConfig: Config.Config.Wrap<SqliteClientConfig> = internal.defaultConfig

/**
 * Like `layer`, with the options read through Effect's `Config`.
 *
 * @since 0.4.0
 * @category layers
 */
export const layerConfig: (
  config?: Config.Config.Wrap<SqliteClientConfig>
) => Layer.Layer<
  SqliteSqlClient | SqliteClient.SqliteClient | SqlClient.SqlClient | SqlitePool,
  SqlError | PoolConfigError | ConfigError.ConfigError
> = internal.layerConfig

/**
 * `true` when the error means the connection is lost (its cause is a `SqliteError` of a closed handle); never for
 * the pool's own errors.
 *
 * @since 0.4.0
 * @category refinements
 */
export const isDisconnect: (error: unknown) => boolean = internal.isDisconnect
