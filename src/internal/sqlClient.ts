import * as Reactivity from "@effect/experimental/Reactivity"
import * as Client from "@effect/sql/SqlClient"
import type { Connection } from "@effect/sql/SqlConnection"
import { SqlError } from "@effect/sql/SqlError"
import type * as Statement from "@effect/sql/Statement"
import * as Chunk from "effect/Chunk"
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import type * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import type * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Predicate from "effect/Predicate"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type { Driver } from "../Driver.js"
import type * as PoolTypes from "../Pool.js"
import { isPoolError } from "../PoolError.js"
import * as pool from "./pool.js"

/**
 * What a database adds to the pool to make an `@effect/sql` `SqlClient` of it: its statement compiler and the ways
 * of running a compiled statement on one connection.
 *
 * @internal
 */
export interface Dialect<C, E> {
  readonly compiler: Statement.Compiler
  /** Rows of the statement (PostgreSQL: an array of row arrays for several statements in one string). */
  readonly execute: (connection: C, sql: string, params: ReadonlyArray<unknown>) => Effect.Effect<ReadonlyArray<any>, E>
  /** The driver's own result object. */
  readonly executeRaw: (connection: C, sql: string, params: ReadonlyArray<unknown>) => Effect.Effect<unknown, E>
  /** Rows as arrays of values. */
  readonly executeValues: (
    connection: C,
    sql: string,
    params: ReadonlyArray<unknown>
  ) => Effect.Effect<ReadonlyArray<ReadonlyArray<unknown>>, E>
  /** A statement that must not be prepared or cached (transaction control). */
  readonly executeUnprepared: (
    connection: C,
    sql: string,
    params: ReadonlyArray<unknown>
  ) => Effect.Effect<ReadonlyArray<any>, E>
  /** Rows read a batch at a time on a connection held for the stream's life. */
  readonly executeStream: (connection: C, sql: string, params: ReadonlyArray<unknown>) => Stream.Stream<any, E>
  /**
   * Sends a statement without a fiber (`Driver.start`), in the form `execute` (`"rows"`), `executeRaw` (`"raw"`) or
   * `executeValues` (`"values"`) returns: a statement that waits for a connection is then started at hand-off.
   */
  readonly start?:
    | ((
      connection: C,
      sql: string,
      params: ReadonlyArray<unknown>,
      mode: "rows" | "raw" | "values",
      done: (exit: Exit.Exit<any, E>) => void
    ) => () => void)
    | undefined
  readonly beginTransaction?: string | undefined
  readonly spanAttributes: ReadonlyArray<readonly [string, unknown]>
  readonly transformRows?: (<A extends object>(rows: ReadonlyArray<A>) => ReadonlyArray<A>) | undefined
}

type TransformRows = (<A extends object>(rows: ReadonlyArray<A>) => ReadonlyArray<A>) | undefined

const messageOf = (cause: unknown): string =>
  Predicate.hasProperty(cause, "message") && typeof cause.message === "string" ? cause.message : String(cause)

/**
 * The `SqlError` for a failure of the pool (`PoolTimeoutError`, `PoolClosedError`, ...) or of the driver: the typed
 * error is its `cause`, and its message leads the `SqlError`'s (the drivers' messages hold no password).
 *
 * @internal
 */
export const toSqlError = (cause: unknown): SqlError =>
  cause instanceof SqlError ? cause : new SqlError({
    cause,
    message: `${isPoolError(cause) ? "Failed to acquire connection" : "Failed to execute statement"}: ${
      messageOf(cause)
    }`
  })

const mapped = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, SqlError, R> =>
  Effect.mapError(effect, toSqlError)

/**
 * `true` when the `SqlError` (or any error) comes from a lost connection, as the driver's disconnect classifier says
 * of its cause; pool errors are never disconnects.
 *
 * @internal
 */
export const isDisconnectWith = (classify: (error: unknown) => boolean) => (error: unknown): boolean => {
  const cause = error instanceof SqlError ? error.cause : error
  return cause !== undefined && !isPoolError(cause) && classify(cause)
}

/**
 * An `@effect/sql` `SqlClient` over a pool. A statement outside a transaction checks a connection out for that
 * statement only (`Pool.use`: no `Scope` of its own), so the connection `@effect/sql` acquires per statement is a
 * stand-in that owns nothing; a transaction (`withTransaction`, `reserve`) holds one connection for its scope; a stream
 * holds one for the stream's life.
 *
 * A `ROLLBACK` that fails because the connection is lost succeeds instead (the server ended the transaction with the
 * session, and the pool closes the connection): `@effect/sql` turns a failed rollback into a defect, which would hide
 * the error that caused the rollback.
 *
 * @internal
 */
export const make = <C, E>(
  self: PoolTypes.Pool<C, E>,
  driver: Driver<C, E>,
  dialect: Dialect<C, E>
): Effect.Effect<Client.SqlClient, never, Reactivity.Reactivity> => {
  const transform = (transformRows: TransformRows) => <A extends object>(rows: ReadonlyArray<A>) =>
    transformRows === undefined ? rows : transformRows(rows)

  const start = dialect.start
  /** One statement on a connection checked out for it alone, started at hand-off when it waits (`Pool.query`). */
  const once = <A>(
    sql: string,
    params: ReadonlyArray<unknown>,
    mode: "rows" | "raw" | "values",
    effect: (connection: C) => Effect.Effect<A, E>
  ): Effect.Effect<A, SqlError> =>
    mapped(pool.statement(self, {
      start: start === undefined ? undefined : (connection, done) => start(connection, sql, params, mode, done),
      effect
    }))

  /** The stand-in `@effect/sql` acquires for each statement outside a transaction. */
  const pooled: Connection = {
    execute: (sql, params, transformRows) => {
      const rows = once(sql, params, "rows", (connection) => dialect.execute(connection, sql, params))
      return transformRows === undefined ? rows : Effect.map(rows, transformRows)
    },
    executeRaw: (sql, params) => once(sql, params, "raw", (connection) => dialect.executeRaw(connection, sql, params)),
    executeValues: (sql, params) =>
      once(sql, params, "values", (connection) => dialect.executeValues(connection, sql, params)),
    executeUnprepared: (sql, params, transformRows) =>
      mapped(
        pool.use(self, (connection) =>
          Effect.map(dialect.executeUnprepared(connection, sql, params), transform(transformRows)))
      ),
    executeStream: (sql, params, transformRows) =>
      Stream.unwrapScoped(Effect.map(
        mapped(pool.get(self)),
        (connection) => streamOn(connection, sql, params, transformRows)
      ))
  }

  const streamOn = (connection: C, sql: string, params: ReadonlyArray<unknown>, transformRows: TransformRows) => {
    const rows = Stream.mapError(dialect.executeStream(connection, sql, params), toSqlError)
    return transformRows === undefined ? rows : Stream.mapChunks(rows, (chunk) => {
      const out = transformRows(Array.from(chunk) as Array<object>)
      return Chunk.unsafeFromArray(out as Array<any>)
    })
  }

  const rollback = "ROLLBACK"
  const commit = "COMMIT"
  /** The failures of `COMMIT`: `@effect/sql` makes them defects, and `withTransaction` below makes them errors again. */
  const commitFailures = new WeakSet<object>()
  const bound = (connection: C): Connection => ({
    execute: (sql, params, transformRows) =>
      mapped(
        transformRows === undefined ?
          dialect.execute(connection, sql, params) :
          Effect.map(dialect.execute(connection, sql, params), transform(transformRows))
      ),
    executeRaw: (sql, params) => mapped(dialect.executeRaw(connection, sql, params)),
    executeValues: (sql, params) => mapped(dialect.executeValues(connection, sql, params)),
    executeUnprepared: (sql, params, transformRows) => {
      if (sql === commit) {
        // the driver's commit: a connection lost while it was in flight is `CommitOutcomeUnknown`, a COMMIT that
        // rolled back (the transaction had been aborted) a failure, never a success
        return Effect.mapError(Effect.as(driver.commit(connection), []), (error) => {
          const failure = toSqlError(error)
          commitFailures.add(failure)
          return failure
        })
      }
      const run = Effect.map(dialect.executeUnprepared(connection, sql, params), transform(transformRows))
      if (sql !== rollback && !sql.startsWith("ROLLBACK TO SAVEPOINT")) return mapped(run)
      // the connection is gone with its transaction: the pool must not lend it again, whatever it saw of the loss
      return mapped(
        Effect.catchIf(
          run,
          driver.isDisconnect,
          (error) => Effect.as(Effect.ignore(pool.invalidate(self, connection, { cause: error })), [])
        )
      )
    },
    executeStream: (sql, params, transformRows) => streamOn(connection, sql, params, transformRows)
  })

  return Effect.map(
    Client.make({
      acquirer: Effect.succeed(pooled),
      transactionAcquirer: Effect.map(mapped(pool.get(self)), bound),
      compiler: dialect.compiler,
      spanAttributes: dialect.spanAttributes,
      transformRows: dialect.transformRows,
      rollback,
      commit,
      ...(dialect.beginTransaction !== undefined ? { beginTransaction: dialect.beginTransaction } : {})
    }),
    (client) => {
      // `@effect/sql` turns a failed COMMIT into a defect (`Effect.orDie`): a lost connection during COMMIT would be a
      // crash instead of the typed `CommitOutcomeUnknown` it is, and a COMMIT that rolled back would look committed
      // to nobody. Its own error again, in the error channel the signature already has (`SqlError`).
      const withTransaction = client.withTransaction
      return Object.assign(client, {
        withTransaction: <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E | SqlError, R> =>
          Effect.catchSomeDefect(
            withTransaction(effect),
            (defect) =>
              Predicate.isObject(defect) && commitFailures.has(defect) ?
                Option.some(Effect.fail(defect as SqlError)) :
                Option.none()
          )
      })
    }
  )
}

/**
 * A client's two layers from its constructor and the services it provides: `Reactivity` is provided inside, as in
 * Effect's own clients.
 *
 * @internal
 */
export const makeLayers = <Options, A, ROut, E>(
  make: (options: Options) => Effect.Effect<A, E, Scope.Scope | Reactivity.Reactivity>,
  contextOf: (client: A) => Context.Context<ROut>
): {
  readonly layer: (options: Options) => Layer.Layer<ROut, E>
  readonly layerConfig: (config: Config.Config.Wrap<Options>) => Layer.Layer<ROut, E | ConfigError.ConfigError>
} => ({
  layer: (options) => Layer.scopedContext(Effect.map(make(options), contextOf)).pipe(Layer.provide(Reactivity.layer)),
  layerConfig: (config) =>
    Layer.scopedContext(
      Effect.flatMap(Config.unwrap(config), (options) => Effect.map(make(options), contextOf))
    ).pipe(Layer.provide(Reactivity.layer))
})
