/**
 * A driver for SQLite over better-sqlite3 (an optional peer dependency): the embedded default. Each pooled
 * connection is one `Database` handle on the same file.
 *
 * - File databases are opened in WAL mode (readers never block the writer) with a busy timeout, so concurrent
 *   writers on several connections wait for each other instead of failing at once with `SQLITE_BUSY`.
 * - `":memory:"` works, but every connection is then its own, separate database: use a pool of `size: 1` and
 *   `maxOverflow: 0`, or a file.
 * - `begin` runs `BEGIN IMMEDIATE` by default: the write lock is taken at the start of the transaction, so a
 *   transaction that reads then writes never fails with `SQLITE_BUSY_SNAPSHOT` (the trade-off: transactions that
 *   only read also queue behind the writer; pass `beginMode: "deferred"` for those).
 * - `rollback` outside a transaction does nothing (as in PostgreSQL), so reset-on-return costs nothing.
 * - better-sqlite3 is synchronous: a statement runs on the JavaScript thread, and nothing else runs meanwhile.
 *   Keep statements short, or run SQLite in a worker.
 * - `isDisconnect` answers `true` for a closed database handle and for a database that cannot be opened.
 *
 * @example
 * ```ts
 * import { Pool } from "effect-reservoir"
 * import * as Sqlite from "effect-reservoir/Driver/Sqlite"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function*() {
 *   const driver = Sqlite.driver({ filename: "app.db" })
 *   const pool = yield* Pool.make({ driver, name: "app", size: 4 })
 *   yield* Pool.use(pool, (c) => driver.query(c, "CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v TEXT)"))
 *   yield* Pool.transaction(pool, (c) => driver.query(c, "INSERT OR REPLACE INTO kv VALUES (?, ?)", ["a", "1"]))
 *   return yield* Pool.use(pool, (c) => driver.query(c, "SELECT v FROM kv WHERE k = ?", ["a"]))
 * })
 * ```
 *
 * @since 0.1.0
 */
import type BetterSqlite3 from "better-sqlite3"
import type * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import type { Driver } from "../Driver.js"
import * as internal from "../internal/sqlite.js"

/**
 * A pooled SQLite connection.
 *
 * @since 0.1.0
 * @category models
 */
export interface SqliteConnection {
  /** The better-sqlite3 handle. Run statements through the driver's `query` rather than on the handle directly. */
  readonly database: BetterSqlite3.Database
  /** The database file (or `":memory:"`). */
  readonly filename: string
}

/**
 * The failures of the SQLite driver. `reason` says what failed: `"ConnectFailed"` (the file could not be opened or
 * set up), `"Disconnected"` (the handle is closed), `"Busy"` (the database stayed locked past the busy timeout),
 * `"QueryFailed"` (any other failure of a statement). `code` is SQLite's extended result code when there is one,
 * such as `"SQLITE_CONSTRAINT_PRIMARYKEY"`.
 *
 * @since 0.1.0
 * @category errors
 */
export class SqliteError extends Schema.TaggedError<SqliteError>("effect-reservoir/SqliteError")("SqliteError", {
  reason: Schema.Literal("ConnectFailed", "Disconnected", "Busy", "QueryFailed"),
  operation: Schema.Literal("connect", "query", "ping", "begin", "commit", "rollback", "check"),
  code: Schema.optional(Schema.String),
  detail: Schema.String,
  cause: Schema.optional(Schema.Unknown)
}) {
  /**
   * @since 0.1.0
   */
  override get message(): string {
    return `SQLite ${this.operation}: ${this.reason}${this.code === undefined ? "" : ` (${this.code})`}: ${this.detail}`
  }
}

/**
 * The options of the SQLite driver.
 *
 * | option | default | meaning |
 * | --- | --- | --- |
 * | `filename` | (required) | the database file, or `":memory:"` (one separate database per connection) |
 * | `busyTimeout` | 5 seconds | how long a statement waits for a lock held by another connection |
 * | `journalMode` | `"wal"` | the journal mode of a file database (`PRAGMA journal_mode`) |
 * | `beginMode` | `"immediate"` | `BEGIN IMMEDIATE`, `BEGIN DEFERRED` or `BEGIN EXCLUSIVE` |
 * | `pragmas` | `{}` | more pragmas run on every new connection, e.g. `{ foreign_keys: "ON", synchronous: "NORMAL" }` |
 * | `readonly` | `false` | open read-only |
 * | `fileMustExist` | `false` | fail instead of creating a missing file |
 * | `liveness` | `"SELECT 1"` | the statement `ping` runs |
 *
 * @since 0.1.0
 * @category models
 */
export interface SqliteOptions {
  readonly filename: string
  readonly busyTimeout?: Duration.DurationInput | undefined
  readonly journalMode?: "wal" | "delete" | "truncate" | "persist" | "memory" | "off" | undefined
  readonly beginMode?: "deferred" | "immediate" | "exclusive" | undefined
  readonly pragmas?: Readonly<Record<string, string | number>> | undefined
  readonly readonly?: boolean | undefined
  readonly fileMustExist?: boolean | undefined
  readonly liveness?: string | undefined
}

/**
 * Builds the SQLite driver. Positional parameters (`?`) take numbers, strings, bigints, `Uint8Array`s and `null`;
 * `undefined` binds `NULL`, booleans bind `1` / `0` and dates their ISO-8601 text.
 *
 * @since 0.1.0
 * @category constructors
 */
export const driver: (options: SqliteOptions) => Driver<SqliteConnection, SqliteError> = internal.driver

/**
 * Opens one connection with the options, runs the liveness query and closes it. The layers run it so that a wrong
 * path fails the program at start.
 *
 * @since 0.1.0
 * @category constructors
 */
export const check: (options: SqliteOptions) => Effect.Effect<void, SqliteError> = internal.check

/**
 * `true` when the error means the connection is lost (the driver's `isDisconnect`).
 *
 * @since 0.1.0
 * @category refinements
 */
export const isDisconnect: (error: unknown) => boolean = internal.isDisconnect

/**
 * The SQLite driver as a service.
 *
 * @since 0.1.0
 * @category models
 */
export class SqliteDriver
  extends Context.Tag("effect-reservoir/Driver/Sqlite")<SqliteDriver, Driver<SqliteConnection, SqliteError>>()
{}

/**
 * A layer of the driver under `SqliteDriver` or the caller's Tag. Building it opens the database once (see
 * `check`).
 *
 * @since 0.1.0
 * @category layers
 */
export const layer: {
  (options: SqliteOptions): Layer.Layer<SqliteDriver, SqliteError>
  <I>(tag: Context.Tag<I, Driver<SqliteConnection, SqliteError>>, options: SqliteOptions): Layer.Layer<I, SqliteError>
} = internal.layer

/**
 * The default configuration of `layerConfig`: the database file in `SQLITE_FILENAME`.
 *
 * @since 0.1.0
 * @category layers
 */
export const defaultConfig: Config.Config.Wrap<SqliteOptions> = internal.defaultConfig

/**
 * Like `layer`, with the options read through Effect's `Config` (by default the file from `SQLITE_FILENAME`).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig: {
  (config?: Config.Config.Wrap<SqliteOptions>): Layer.Layer<SqliteDriver, SqliteError | ConfigError.ConfigError>
  <I>(
    tag: Context.Tag<I, Driver<SqliteConnection, SqliteError>>,
    config?: Config.Config.Wrap<SqliteOptions>
  ): Layer.Layer<I, SqliteError | ConfigError.ConfigError>
} = internal.layerConfig
