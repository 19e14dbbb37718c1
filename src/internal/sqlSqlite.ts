import * as Reactivity from "@effect/experimental/Reactivity"
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import * as Client from "@effect/sql/SqlClient"
import { SqlError } from "@effect/sql/SqlError"
import * as Statement from "@effect/sql/Statement"
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
// the public module first: it and `./sqlite.js` import each other, and it must be the one evaluated first
import * as Sqlite from "../Driver/Sqlite.js"
import type { SqliteError } from "../Driver/Sqlite.js"
import type * as PoolTypes from "../Pool.js"
import type { PoolConfigError } from "../PoolError.js"
import type * as SqlSqlite from "../Sql/Sqlite.js"
import * as pool from "./pool.js"
import * as sqlClient from "./sqlClient.js"
import * as sqlConfig from "./sqlConfig.js"
import * as internalSqlite from "./sqlite.js"

const withMode = <A>(
  result: internalSqlite.Mode["result"],
  f: (mode: internalSqlite.Mode) => Effect.Effect<A, SqliteError>
): Effect.Effect<A, SqliteError> => Effect.flatMap(Client.SafeIntegers, (safeIntegers) => f({ result, safeIntegers }))

/** @internal */
export const dialect = (
  config: SqlSqlite.SqliteClientConfig
): sqlClient.Dialect<Sqlite.SqliteConnection, SqliteError> => {
  const execute = (connection: Sqlite.SqliteConnection, sql: string, params: ReadonlyArray<unknown>) =>
    withMode("rows", (mode) => internalSqlite.run(connection, sql, params, "query", mode))
  return {
    compiler: Statement.makeCompilerSqlite(config.transformQueryNames),
    execute,
    executeRaw: (connection, sql, params) =>
      withMode("raw", (mode) => internalSqlite.run(connection, sql, params, "query", mode)),
    executeValues: (connection, sql, params) =>
      withMode("values", (mode) => internalSqlite.run(connection, sql, params, "query", mode)) as Effect.Effect<
        ReadonlyArray<ReadonlyArray<unknown>>,
        SqliteError
      >,
    executeUnprepared: execute,
    executeStream: (connection, sql, params) =>
      Stream.unwrap(
        Effect.map(Client.SafeIntegers, (safeIntegers) => internalSqlite.stream(connection, sql, params, safeIntegers))
      ),
    beginTransaction: `BEGIN ${(config.beginMode ?? "immediate").toUpperCase()}`,
    spanAttributes: [...Object.entries(config.spanAttributes ?? {}), ["db.system.name", "sqlite"]],
    transformRows: config.transformResultNames === undefined ?
      undefined :
      Statement.defaultTransforms(config.transformResultNames).array
  }
}

const isMemory = (filename: string): boolean => filename === ":memory:" || filename === ""

/** @internal */
export const make = (
  config: SqlSqlite.SqliteClientConfig
): Effect.Effect<SqlSqlite.SqliteSqlClient, SqlError | PoolConfigError, Scope.Scope | Reactivity.Reactivity> =>
  Effect.gen(function*() {
    const driverOptions: Sqlite.SqliteOptions = {
      ...sqlConfig.driverFields(config),
      ...(config.disableWAL === true && config.journalMode === undefined ? { journalMode: "delete" } : {})
    }
    const driver = Sqlite.driver(driverOptions)
    const split = yield* sqlConfig.split<Sqlite.SqliteConnection, SqliteError>(
      config,
      "sql-sqlite",
      driver,
      isMemory(config.filename) ? { size: 1, reason: "a :memory: database is its one connection's own" } : undefined
    )
    const self = yield* pool.make({ ...split.pool, driver })
    // bad options fail first, all listed; then one round trip, so a wrong address or password fails here
    yield* Effect.mapError(
      Sqlite.check(driverOptions),
      (cause) => new SqlError({ cause, message: `SqliteClient: Failed to open ${config.filename}: ${cause.message}` })
    )
    const client = yield* sqlClient.make(self, driver, dialect(config))
    const onConnection = <A>(f: (connection: Sqlite.SqliteConnection) => Promise<A> | A) =>
      Effect.mapError(
        pool.use(self, (connection) => Effect.tryPromise({ try: async () => f(connection), catch: (cause) => cause })),
        sqlClient.toSqlError
      )
    const single = split.pool.size === 1 && split.pool.maxOverflow === 0
    const publicConfig: Record<string, unknown> = {
      filename: config.filename,
      readonly: config.readonly,
      disableWAL: config.disableWAL,
      spanAttributes: config.spanAttributes,
      transformResultNames: config.transformResultNames,
      transformQueryNames: config.transformQueryNames
    }
    for (const key of Object.keys(publicConfig)) if (publicConfig[key] === undefined) delete publicConfig[key]
    return Object.assign(client, {
      [SqliteClient.TypeId]: SqliteClient.TypeId,
      config: publicConfig as unknown as SqliteClient.SqliteClientConfig,
      pool: self,
      export: onConnection((connection) => new Uint8Array(connection.database.serialize())),
      backup: (destination: string) => onConnection((connection) => connection.database.backup(destination)),
      // an extension is loaded into one connection: fine for a pool of one, never right for some of many
      loadExtension: (path: string) =>
        single ?
          Effect.asVoid(onConnection((connection) => connection.database.loadExtension(path))) :
          Effect.fail(
            new SqlError({
              message: `loadExtension: the pool "${split.pool.name}" has several connections, and an extension ` +
                "loaded into one of them is missing from the others; load it on every connection with " +
                "Policy.onConnect in pool.policies"
            })
          )
    }) as unknown as SqlSqlite.SqliteSqlClient
  })

/** @internal */
export const SqliteSqlClient = Context.GenericTag<SqlSqlite.SqliteSqlClient>(
  "effect-reservoir/Sql/Sqlite/SqliteSqlClient"
)

/** @internal */
export class SqlitePool extends Context.Tag("effect-reservoir/Sql/Sqlite/SqlitePool")<
  SqlitePool,
  PoolTypes.Pool<Sqlite.SqliteConnection, SqliteError>
>() {}

const contextOf = (client: SqlSqlite.SqliteSqlClient) =>
  Context.make(SqliteSqlClient, client).pipe(
    Context.add(SqliteClient.SqliteClient, client),
    Context.add(Client.SqlClient, client),
    Context.add(SqlitePool, client.pool)
  )

const layers = sqlClient.makeLayers(make, contextOf)

/** @internal */
export const layer: (
  config: SqlSqlite.SqliteClientConfig
) => Layer.Layer<
  SqlSqlite.SqliteSqlClient | SqliteClient.SqliteClient | Client.SqlClient | SqlitePool,
  SqlError | PoolConfigError
> = layers.layer

/** @internal */
export const defaultConfig: Config.Config.Wrap<SqlSqlite.SqliteClientConfig> = {
  filename: Config.string("SQLITE_FILENAME"),
  pool: sqlConfig.poolFromEnv
}

/** @internal */
export const layerConfig = (
  config: Config.Config.Wrap<SqlSqlite.SqliteClientConfig> = defaultConfig
): Layer.Layer<
  SqlSqlite.SqliteSqlClient | SqliteClient.SqliteClient | Client.SqlClient | SqlitePool,
  SqlError | PoolConfigError | ConfigError.ConfigError
> => layers.layerConfig(config)

/** @internal */
export const isDisconnect: (error: unknown) => boolean = sqlClient.isDisconnectWith(Sqlite.isDisconnect)
