/**
 * The `@effect/sql` behaviour suite (`suite.ts`) on PostgreSQL 15: against this package's `Sql/Pg` layer and against
 * `@effect/sql-pg`'s `PgClient.layer`, the client a program moves from, built from the same options.
 */
import * as CommandExecutor from "@effect/platform/CommandExecutor"
import * as FileSystem from "@effect/platform/FileSystem"
import * as Path from "@effect/platform/Path"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as PgMigrator from "@effect/sql-pg/PgMigrator"
import { layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as SqlPg from "../../src/Sql/Pg.js"
import { layer as postgresLayer, Postgres } from "../utils/postgres.js"
import { suite } from "./suite.js"

/** The throwaway server as the pg cases see it, for sessions named `applicationName`. */
const pgServer = (applicationName: string) => ({
  applicationName,
  query: (sql: string, params?: ReadonlyArray<unknown>) =>
    Effect.flatMap(Postgres, (server) => server.query(sql, params)),
  restart: Effect.flatMap(Postgres, (server) => server.restart("fast"))
})

/**
 * What `PgMigrator.run`'s type asks for besides the client; without `schemaDirectory` it never reads them (they serve
 * the `pg_dump` of the schema), so these stand-ins are never called.
 */
const migratorPlatform = Layer.mergeAll(
  FileSystem.layerNoop({}),
  Path.layer,
  Layer.succeed(
    CommandExecutor.CommandExecutor,
    CommandExecutor.makeExecutor(() => Effect.dieMessage("the suite runs no commands"))
  )
)

/**
 * Both clients' layers from the same options, `@effect/sql-pg`'s names: a program moves by changing the import. The
 * options depend on the throwaway server's port, so each layer reads it from `Postgres`.
 */
const sameOptions = <A, E>(
  make: (
    options: { readonly url: Redacted.Redacted; readonly applicationName: string; maxConnections?: number }
  ) => Layer.Layer<A, E>,
  applicationName: string,
  maxConnections?: number
) =>
  Layer.unwrapEffect(
    Effect.map(Postgres, (server) =>
      make({
        url: Redacted.make(server.url),
        applicationName,
        ...(maxConnections === undefined ? {} : { maxConnections })
      }))
  )

layer(postgresLayer, { excludeTestServices: true, timeout: "60 seconds" })("SqlClient on PostgreSQL 15", (it) => {
  const ours = "sql-suite-effect-reservoir"
  suite(it, {
    name: "effect-reservoir Sql/Pg layer",
    prefix: "ours_pg",
    dialect: "pg",
    layer: sameOptions(SqlPg.layer, ours),
    capabilities: { stream: true, isDisconnect: SqlPg.isDisconnect, oneConnection: false },
    // @effect/sql-pg's own migrator, unchanged: the layer provides its PgClient tag too
    migrate: (options) => Effect.provide(PgMigrator.run(options), migratorPlatform),
    pg: {
      ...pgServer(ours),
      oneConnectionLayer: sameOptions(SqlPg.layer, ours, 1),
      streamFailsOnDisconnect: true,
      cancelsWithPoolExhausted: true
    }
  })

  const effect = "sql-suite-effect-sql-pg"
  suite(it, {
    name: "@effect/sql-pg PgClient.layer",
    prefix: "effect_pg",
    dialect: "pg",
    layer: sameOptions(PgClient.layer, effect),
    capabilities: { stream: true, isDisconnect: undefined, oneConnection: false },
    migrate: (options) => Effect.provide(PgMigrator.run(options), migratorPlatform),
    pg: {
      ...pgServer(effect),
      oneConnectionLayer: sameOptions(PgClient.layer, effect, 1),
      streamFailsOnDisconnect: false,
      cancelsWithPoolExhausted: false
    }
  })
})
