import * as Reactivity from "@effect/experimental/Reactivity"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as Client from "@effect/sql/SqlClient"
import { SqlError } from "@effect/sql/SqlError"
import * as Statement from "@effect/sql/Statement"
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import pg from "pg"
// the public module first: it and `./pg.js` import each other, and it must be the one evaluated first
import * as Pg from "../Driver/Pg.js"
import type { PgError } from "../Driver/Pg.js"
import type * as PoolTypes from "../Pool.js"
import type { PoolConfigError } from "../PoolError.js"
import type * as SqlPg from "../Sql/Pg.js"
import * as internalPg from "./pg.js"
import * as pgCursor from "./pgCursor.js"
import * as pool from "./pool.js"
import * as sqlClient from "./sqlClient.js"
import * as sqlConfig from "./sqlConfig.js"

const rowsOf = (result: unknown): ReadonlyArray<any> =>
  Array.isArray(result) ?
    result.map((r: { readonly rows?: ReadonlyArray<unknown> }) => r.rows ?? []) :
    (result as { readonly rows?: ReadonlyArray<unknown> }).rows ?? []

const valuesOf = (result: unknown): ReadonlyArray<ReadonlyArray<unknown>> =>
  (result as { readonly rows?: ReadonlyArray<ReadonlyArray<unknown>> }).rows ?? []

const identity = (result: unknown): unknown => result

/** @internal */
export const dialect = (
  config: SqlPg.PgClientConfig,
  spanAttributes: ReadonlyArray<readonly [string, unknown]>
): sqlClient.Dialect<Pg.PgConnection, PgError> => {
  const execute = (connection: Pg.PgConnection, sql: string, params: ReadonlyArray<unknown>) =>
    internalPg.run(connection, sql, params, "query", rowsOf)
  return {
    compiler: PgClient.makeCompiler(config.transformQueryNames, config.transformJson),
    execute,
    executeRaw: (connection, sql, params) => internalPg.run(connection, sql, params, "query", identity),
    executeValues: (connection, sql, params) => internalPg.run(connection, sql, params, "query", valuesOf, "array"),
    executeUnprepared: execute,
    start: (connection, sql, params, mode, done) =>
      mode === "rows" ?
        internalPg.start(connection, sql, params, "query", rowsOf, undefined, done) :
        mode === "raw" ?
        internalPg.start(connection, sql, params, "query", identity, undefined, done) :
        internalPg.start(connection, sql, params, "query", valuesOf, "array", done),
    executeStream: (connection, sql, params) => pgCursor.stream(connection, sql, params),
    spanAttributes,
    transformRows: config.transformResultNames === undefined ?
      undefined :
      Statement.defaultTransforms(config.transformResultNames, config.transformJson).array
  }
}

/** Where the client connects: from the fields, else from the connection string (never its password). */
const whereOf = (config: SqlPg.PgClientConfig) => {
  let url: URL | undefined
  if (config.url !== undefined) {
    try {
      url = new URL(Redacted.isRedacted(config.url) ? Redacted.value(config.url) : config.url)
    } catch {
      url = undefined
    }
  }
  const user = config.user ?? config.username ?? (url?.username || undefined)
  return {
    host: config.host ?? (url?.hostname || undefined),
    port: config.port ?? (url?.port ? Number(url.port) : undefined),
    database: config.database ?? (url?.pathname.slice(1) || undefined),
    user
  }
}

const spanAttributesOf = (config: SqlPg.PgClientConfig): ReadonlyArray<readonly [string, unknown]> => {
  const where = whereOf(config)
  return [
    ...Object.entries(config.spanAttributes ?? {}),
    ["db.system.name", "postgresql"],
    ["db.namespace", where.database ?? where.user ?? "postgres"],
    ["server.address", where.host ?? "localhost"],
    ["server.port", where.port ?? 5432]
  ]
}

/**
 * `@effect/sql-pg`'s `config`, for programs that read it: where the client connects and its settings, with neither
 * the password nor the connection string (which may hold one).
 */
const publicConfig = (config: SqlPg.PgClientConfig, applicationName: string): PgClient.PgClientConfig => {
  const where = whereOf(config)
  const out: Record<string, unknown> = {
    host: where.host,
    port: where.port,
    database: where.database,
    username: where.user,
    applicationName,
    // whether TLS is on, not its options: they may hold a private key or its passphrase
    ssl: config.ssl === undefined ? undefined : config.ssl !== false,
    maxConnections: config.maxConnections,
    minConnections: config.minConnections,
    idleTimeout: config.idleTimeout,
    connectionTTL: config.connectionTTL,
    connectTimeout: config.connectTimeout,
    spanAttributes: config.spanAttributes,
    transformResultNames: config.transformResultNames,
    transformQueryNames: config.transformQueryNames,
    transformJson: config.transformJson,
    types: config.types
  }
  for (const key of Object.keys(out)) if (out[key] === undefined) delete out[key]
  return out as PgClient.PgClientConfig
}

const PgJson = Statement.custom<Statement.Custom<"PgJson", unknown>>("PgJson")

/** @internal */
export const make = (
  config: SqlPg.PgClientConfig
): Effect.Effect<SqlPg.PgSqlClient, SqlError | PoolConfigError, Scope.Scope | Reactivity.Reactivity> =>
  Effect.gen(function*() {
    const driverOptions: Pg.PgOptions = {
      ...sqlConfig.driverFields(config),
      ...(config.username !== undefined && config.user === undefined ? { user: config.username } : {}),
      ...(config.ssl !== undefined || config.types !== undefined || config.clientConfig !== undefined ?
        {
          clientConfig: {
            ...config.clientConfig,
            ...(config.ssl !== undefined ? { ssl: config.ssl } : {}),
            ...(config.types !== undefined ? { types: config.types } : {})
          }
        } :
        {})
    }
    const driver = Pg.driver(driverOptions)
    const split = yield* sqlConfig.split<Pg.PgConnection, PgError>(config, "sql-pg", driver)
    const self = yield* pool.make({ ...split.pool, driver })
    // bad options fail first, all listed; then one round trip, so a wrong address or password fails here
    yield* Effect.mapError(
      Pg.check(driverOptions),
      (cause) => new SqlError({ cause, message: `PgClient: Failed to connect: ${cause.message}` })
    )
    const client = yield* sqlClient.make(self, driver, dialect(config, spanAttributesOf(config)))
    return Object.assign(client, {
      [PgClient.TypeId]: PgClient.TypeId,
      config: publicConfig(config, split.pool.name!),
      pool: self,
      json: (value: unknown) => PgJson(value),
      listen: (channel: string) => listen(self, channel),
      notify: (channel: string, payload: string) => Effect.asVoid(client`SELECT pg_notify(${channel}, ${payload})`)
    }) as SqlPg.PgSqlClient
  })

/**
 * `LISTEN` on a connection checked out for the stream's life (it never goes back to the pool with a listener on it:
 * `UNLISTEN` first). Notifications arrive on node-postgres's `notification` event.
 */
const listen = (
  self: PoolTypes.Pool<Pg.PgConnection, PgError>,
  channel: string
): Stream.Stream<string, SqlError> =>
  Stream.asyncPush<string, SqlError>((emit) =>
    Effect.gen(function*() {
      const connection = yield* Effect.mapError(pool.get(self), sqlClient.toSqlError)
      const client = Pg.unsafeClient(connection)
      const onNotification = (message: pg.Notification) => {
        if (message.channel === channel && message.payload !== undefined) emit.single(message.payload)
      }
      const identifier = pg.escapeIdentifier(channel)
      yield* Effect.addFinalizer(() =>
        Effect.ignore(Effect.zipRight(
          Effect.sync(() => client.off("notification", onNotification)),
          internalPg.run(connection, `UNLISTEN ${identifier}`, undefined, "query")
        ))
      )
      client.on("notification", onNotification)
      yield* Effect.mapError(
        internalPg.run(connection, `LISTEN ${identifier}`, undefined, "query"),
        sqlClient.toSqlError
      )
    })
  )

/** @internal */
export const PgSqlClient = Context.GenericTag<SqlPg.PgSqlClient>("effect-reservoir/Sql/Pg/PgSqlClient")

/** @internal */
export class PgPool extends Context.Tag("effect-reservoir/Sql/Pg/PgPool")<
  PgPool,
  PoolTypes.Pool<Pg.PgConnection, PgError>
>() {}

const contextOf = (client: SqlPg.PgSqlClient) =>
  Context.make(PgSqlClient, client).pipe(
    Context.add(PgClient.PgClient, client),
    Context.add(Client.SqlClient, client),
    Context.add(PgPool, client.pool)
  )

const layers = sqlClient.makeLayers(make, contextOf)

/** @internal */
export const layer: (
  config: SqlPg.PgClientConfig
) => Layer.Layer<SqlPg.PgSqlClient | PgClient.PgClient | Client.SqlClient | PgPool, SqlError | PoolConfigError> =
  layers.layer

/** @internal */
export const defaultConfig: Config.Config.Wrap<SqlPg.PgClientConfig> = {
  url: Config.redacted("DATABASE_URL"),
  pool: sqlConfig.poolFromEnv
}

/** @internal */
export const layerConfig = (
  config: Config.Config.Wrap<SqlPg.PgClientConfig> = defaultConfig
): Layer.Layer<
  SqlPg.PgSqlClient | PgClient.PgClient | Client.SqlClient | PgPool,
  SqlError | PoolConfigError | ConfigError.ConfigError
> => layers.layerConfig(config)

/** @internal */
export const isDisconnect: (error: unknown) => boolean = sqlClient.isDisconnectWith(Pg.isDisconnect)
