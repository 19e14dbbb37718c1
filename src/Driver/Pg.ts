/**
 * A driver for PostgreSQL over node-postgres (`pg`, an optional peer dependency): one `pg.Client` per pooled
 * connection (never `pg.Pool`: the pooling is Reservoir's).
 *
 * - The session's `application_name` is the pool's name unless `applicationName` is given, so the server's
 *   `pg_stat_activity` tells which pool holds which session.
 * - A connection's `error` event (node-postgres's classic crash of an idle client whose backend died) never reaches
 *   the process: it tells the pool, which invalidates the connection (closed at once, idle or lent).
 * - `connect` can be interrupted at any time (a pool's `connectTimeout`, a checkout's deadline): a connect cut short
 *   destroys its socket at once (no graceful end that a silent server could hold half-open), so no session or socket
 *   leaks. A graceful close waits at most `closeTimeout` for the server's goodbye, then drops the socket.
 * - A statement whose caller is interrupted (`Effect.timeout`, `Fiber.interrupt`, a pool's deadline) is cancelled on
 *   the server: the driver sends PostgreSQL's cancel request (the session's backend key, over a new socket to the same
 *   host and port, as libpq's `PQcancel` does), so the server stops it within milliseconds. The request is sent only
 *   while that statement is the one in flight with nothing queued behind it, and the session sends nothing more until
 *   the server has acted on it, so it can never stop a later statement. Until the cancelled statement has ended the
 *   session is busy (`Driver.busy`): returned to the pool then, it is invalidated rather than lent again; once it has
 *   ended (an interrupted `Pool.transaction` waits for that before its `ROLLBACK`, which then runs at once) it is lent
 *   again. A cancel request that gets no answer within `connectTimeout` (5 seconds if unset) leaves the session broken
 *   and invalidated.
 * - `statementTimeout` bounds every statement, on both sides (see `PgOptions`).
 * - No value the driver hands out reaches the password: a connection holds its node-postgres client in a `#private`
 *   field, the client forgets the password once connected, and messages are scrubbed.
 * - `isDisconnect` answers `true` for SQLSTATE class 08, `57P01`–`57P03` (admin / crash shutdown, cannot connect
 *   now), `57P05` and `25P03` (the server closed an idle session), socket errors (`ECONNRESET`, `EPIPE`,
 *   `ECONNREFUSED`, `ETIMEDOUT`, ...) and node-postgres's "Connection terminated" family of messages.
 *
 * @example
 * ```ts
 * import { Pool } from "effect-reservoir"
 * import * as Pg from "effect-reservoir/Driver/Pg"
 * import { Effect, Redacted } from "effect"
 *
 * const program = Effect.gen(function*() {
 *   const driver = Pg.driver({ host: "127.0.0.1", user: "app", password: Redacted.make("secret") })
 *   const pool = yield* Pool.make({ driver, name: "api", size: 5 })
 *   return yield* Pool.use(pool, (connection) => driver.query(connection, "SELECT $1::int AS n", [42]))
 * })
 * ```
 *
 * @since 0.1.0
 */
import type * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"
import type * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import type * as pg from "pg"
import type { Driver } from "../Driver.js"
import * as internal from "../internal/pg.js"

/**
 * A pooled PostgreSQL connection: what identifies its session on the server. The node-postgres client stays out of
 * reach of any property path (see `unsafeClient`); `JSON.stringify` and `util.inspect` show these two fields.
 *
 * @since 0.1.0
 * @category models
 */
export interface PgConnection {
  /** The server process serving this session (`pg_backend_pid()`); `pg_terminate_backend` takes it. */
  readonly processId: number
  /** The session's `application_name`. */
  readonly applicationName: string
}

/**
 * The failures of the PostgreSQL driver. `reason` says what failed:
 *
 * - `"ConnectFailed"`: the connect did not succeed (refused, authentication, unknown database, ...).
 * - `"Timeout"`: an operation ran out of time (`operation` says which: a connect, the layer's check, or a statement
 *   that got no answer within `statementTimeout` plus a second: the connection is then presumed lost, `isDisconnect`
 *   is `true` and the pool invalidates it).
 * - `"StatementTimeout"`: the server stopped a statement that ran past `statementTimeout` (SQLSTATE `57014`); the
 *   connection is fine and is lent again.
 * - `"Disconnected"`: the connection was lost.
 * - `"QueryFailed"`: the server refused a statement (`code` is its SQLSTATE).
 * - `"Interrupted"`: a statement was interrupted while in flight and its connection came back before it ended (the
 *   cause with which the pool invalidates that connection; its session is still busy, so it is closed rather than
 *   lent again).
 * - `"CommitOutcomeUnknown"`: the connection was lost (or went silent past `statementTimeout`) while a `COMMIT` was
 *   in flight; the transaction may or may not have been committed.
 * - `"CommitRolledBack"`: the `COMMIT` ended the transaction with a rollback (it had been aborted by an earlier
 *   error); nothing was committed.
 *
 * Neither the message nor anything reachable from the error contains a password.
 *
 * @since 0.1.0
 * @category errors
 */
export class PgError extends Schema.TaggedError<PgError>("effect-reservoir/PgError")("PgError", {
  reason: Schema.Literal(
    "ConnectFailed",
    "Timeout",
    "StatementTimeout",
    "Disconnected",
    "QueryFailed",
    "Interrupted",
    "CommitOutcomeUnknown",
    "CommitRolledBack"
  ),
  operation: Schema.Literal("connect", "query", "ping", "begin", "commit", "rollback", "check"),
  /** The SQLSTATE of a server error, such as `"42P01"` or `"57P01"`. */
  code: Schema.optional(Schema.String),
  /** The operating system's (or Node's) code of a socket error, such as `"ECONNREFUSED"`. */
  systemCode: Schema.optional(Schema.String),
  /** What node-postgres or the server said, with any password removed. */
  detail: Schema.String,
  cause: Schema.optional(Schema.Unknown)
}) {
  /**
   * @since 0.1.0
   */
  override get message(): string {
    const code = this.code ?? this.systemCode
    return `PostgreSQL ${this.operation}: ${this.reason}${code === undefined ? "" : ` (${code})`}: ${this.detail}`
  }
}

/**
 * The options of the PostgreSQL driver. Give a connection string (`url`), fields, or both: what the connection
 * string says wins over the fields (node-postgres's rule). Fields left out fall back to node-postgres's defaults and
 * `PG*` environment variables.
 *
 * | option | default | meaning |
 * | --- | --- | --- |
 * | `url` | none | `postgres://user:password@host:port/database?options`; `Redacted`, since it may hold a password |
 * | `host`, `port`, `user`, `database` | node-postgres's | where to connect |
 * | `password` | none | a string or `Redacted` |
 * | `applicationName` | the pool's name | the session's `application_name` |
 * | `liveness` | `"SELECT 1"` | the statement `ping` runs (Twisted's `cp_good_sql`) |
 * | `connectTimeout` | none | how long one connect (or cancel request) may take; the layer's check uses it too |
 * | `closeTimeout` | 5 seconds | how long a close waits for the server's goodbye before dropping the socket |
 * | `statementTimeout` | none | how long one statement may run (see below) |
 * | `clientConfig` | `{}` | any other `pg.ClientConfig` field (`ssl`, `keepAlive`, `types`, `lock_timeout`...) |
 *
 * `statementTimeout` sets the session's `statement_timeout` (the server stops a statement that runs longer: it fails
 * with `reason: "StatementTimeout"` and the connection stays usable) and node-postgres's client-side `query_timeout`
 * one second later (a server that does not answer at all, a blackholed connection: the statement fails with
 * `reason: "Timeout"`, which `isDisconnect` counts as lost, and the pool invalidates the connection). It applies to
 * every statement, `COMMIT` and the liveness query included; `SET statement_timeout` in a session changes the server
 * side only. There is no default, as in PostgreSQL, node-postgres and HikariCP: a pool cannot know how long its
 * statements may take (a migration, a report), and a default that fails them would surprise more than it protects.
 * An interrupted statement is cancelled on the server anyway, so `Effect.timeout` around a statement or a
 * `Pool.use` is already a statement timeout on both sides; set `statementTimeout` for a bound that holds for every
 * statement whoever runs it, and `clientConfig.keepAlive` to notice a dead network path between statements.
 *
 * @since 0.1.0
 * @category models
 */
export interface PgOptions {
  readonly url?: Redacted.Redacted<string> | string | undefined
  readonly host?: string | undefined
  readonly port?: number | undefined
  readonly user?: string | undefined
  readonly database?: string | undefined
  readonly password?: Redacted.Redacted<string> | string | undefined
  readonly applicationName?: string | undefined
  readonly liveness?: string | undefined
  readonly connectTimeout?: Duration.DurationInput | undefined
  readonly closeTimeout?: Duration.DurationInput | undefined
  readonly statementTimeout?: Duration.DurationInput | undefined
  readonly clientConfig?:
    | Omit<
      pg.ClientConfig,
      "connectionString" | "password" | "host" | "port" | "user" | "database" | "application_name" | "query_timeout"
    >
    | undefined
}

/**
 * Builds the PostgreSQL driver. Nothing connects until a pool (or the caller) runs `connect`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const driver: (options?: PgOptions) => Driver<PgConnection, PgError> = internal.driver

/**
 * The node-postgres client of a connection, for what the driver does not offer (`LISTEN`, `COPY`, type parsers). It
 * no longer holds the password. Statements run on it directly are invisible to the driver: they are not cancelled
 * when their caller is interrupted and do not make the connection busy, and one running when the driver's own caller
 * is interrupted may receive that caller's cancel request. Use the driver's operations for statements.
 *
 * @since 0.1.0
 * @category getters
 */
export const unsafeClient: (connection: PgConnection) => pg.Client = internal.unsafeClient

/**
 * Opens one connection with the options, runs the liveness query once and closes it, all within `connectTimeout`
 * (10 seconds when not given); fails with `PgError` (`reason: "Timeout"`, `operation: "check"` when time runs out).
 * The layers run it so that a wrong address or password fails the program at start.
 *
 * @since 0.1.0
 * @category constructors
 */
export const check: (options?: PgOptions) => Effect.Effect<void, PgError> = internal.check

/**
 * `true` when the error means the connection is lost (the driver's `isDisconnect`).
 *
 * @since 0.1.0
 * @category refinements
 */
export const isDisconnect: (error: unknown) => boolean = internal.isDisconnect

/**
 * The PostgreSQL driver as a service.
 *
 * @since 0.1.0
 * @category models
 */
export class PgDriver extends Context.Tag("effect-reservoir/Driver/Pg")<PgDriver, Driver<PgConnection, PgError>>() {}

/**
 * A layer of the driver under `PgDriver` or the caller's Tag (a primary and a replica side by side). Building it
 * checks the server with one round trip (see `check`), so a wrong address or password fails at start.
 *
 * @example
 * ```ts
 * import * as Pg from "effect-reservoir/Driver/Pg"
 * import { Redacted } from "effect"
 *
 * const live = Pg.layer({ url: Redacted.make("postgres://app:secret@127.0.0.1:5432/app"), connectTimeout: "2 seconds" })
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer: {
  (options?: PgOptions): Layer.Layer<PgDriver, PgError>
  <I>(tag: Context.Tag<I, Driver<PgConnection, PgError>>, options?: PgOptions): Layer.Layer<I, PgError>
} = internal.layer

/**
 * The default configuration of `layerConfig`: the connection string in `DATABASE_URL`, as a secret.
 *
 * @since 0.1.0
 * @category layers
 */
export const defaultConfig: Config.Config.Wrap<PgOptions> = internal.defaultConfig

/**
 * Like `layer`, with the options read through Effect's `Config` (environment variables by default). Without
 * arguments it reads the connection string from `DATABASE_URL`.
 *
 * @example
 * ```ts
 * import * as Pg from "effect-reservoir/Driver/Pg"
 * import { Config } from "effect"
 *
 * // DATABASE_URL=postgres://app:secret@db:5432/app
 * const fromUrl = Pg.layerConfig()
 *
 * // PGHOST=db PGUSER=app PGPASSWORD=secret
 * const fromFields = Pg.layerConfig({
 *   host: Config.string("PGHOST"),
 *   user: Config.string("PGUSER"),
 *   password: Config.redacted("PGPASSWORD"),
 *   connectTimeout: Config.succeed("2 seconds")
 * })
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig: {
  (config?: Config.Config.Wrap<PgOptions>): Layer.Layer<PgDriver, PgError | ConfigError.ConfigError>
  <I>(
    tag: Context.Tag<I, Driver<PgConnection, PgError>>,
    config?: Config.Config.Wrap<PgOptions>
  ): Layer.Layer<I, PgError | ConfigError.ConfigError>
} = internal.layerConfig
