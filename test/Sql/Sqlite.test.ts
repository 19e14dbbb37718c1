/**
 * The `@effect/sql` behaviour suite (`suite.ts`) on SQLite: against this package's `Sql/Sqlite` layer and against
 * `@effect/sql-sqlite-node`'s `SqliteClient.layer`, the client a program moves from, each on a temporary file and on
 * `:memory:`.
 */
import * as CommandExecutor from "@effect/platform/CommandExecutor"
import * as FileSystem from "@effect/platform/FileSystem"
import * as Path from "@effect/platform/Path"
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import * as SqliteMigrator from "@effect/sql-sqlite-node/SqliteMigrator"
import { layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import * as SqlSqlite from "../../src/Sql/Sqlite.js"
import { suite } from "./suite.js"

/** A temporary directory for the layer's life: the database file lives in it. */
const tempDir = Effect.acquireRelease(
  Effect.promise(() => fs.mkdtemp(path.join(os.tmpdir(), "reservoir-sql-suite-"))),
  (dir) => Effect.promise(() => fs.rm(dir, { recursive: true, force: true }))
)

/** A layer built on a fresh database file in a temporary directory, removed when the layer is released. */
const onTempFile = <A, E, R>(make: (filename: string) => Layer.Layer<A, E, R>) =>
  Layer.unwrapScoped(Effect.map(tempDir, (dir) => make(path.join(dir, "suite.db"))))

/**
 * What `SqliteMigrator.run`'s type asks for besides the client; without `schemaDirectory` it never reads them (they
 * serve the `sqlite3 .schema` dump), so these stand-ins are never called.
 */
const migratorPlatform = Layer.mergeAll(
  FileSystem.layerNoop({}),
  Path.layer,
  Layer.succeed(
    CommandExecutor.CommandExecutor,
    CommandExecutor.makeExecutor(() => Effect.dieMessage("the suite runs no commands"))
  )
)

/** Effect's SQLite client: one connection behind a semaphore, and no streams. */
const effectCapabilities = {
  stream: false,
  isDisconnect: undefined,
  oneConnection: true
} as const

layer(Layer.empty, { excludeTestServices: true, timeout: "60 seconds" })("SqlClient on SQLite", (it) => {
  suite(it, {
    name: "effect-reservoir Sql/Sqlite layer (file)",
    prefix: "ours_file",
    dialect: "sqlite",
    layer: onTempFile((filename) => SqlSqlite.layer({ filename })),
    capabilities: {
      stream: true,
      isDisconnect: SqlSqlite.isDisconnect,
      oneConnection: false
    },
    // @effect/sql-sqlite-node's own migrator, unchanged: the layer provides its SqliteClient tag too
    migrate: (options) => Effect.provide(SqliteMigrator.run(options), migratorPlatform)
  })

  suite(it, {
    name: "effect-reservoir Sql/Sqlite layer (:memory:)",
    prefix: "ours_memory",
    dialect: "sqlite",
    layer: SqlSqlite.layer({ filename: ":memory:" }),
    // the pool of a :memory: database holds its one connection
    capabilities: {
      stream: true,
      isDisconnect: SqlSqlite.isDisconnect,
      oneConnection: true
    },
    migrate: (options) => Effect.provide(SqliteMigrator.run(options), migratorPlatform)
  })

  suite(it, {
    name: "@effect/sql-sqlite-node SqliteClient.layer (file)",
    prefix: "effect_file",
    dialect: "sqlite",
    layer: onTempFile((filename) => SqliteClient.layer({ filename })),
    capabilities: effectCapabilities,
    migrate: (options) => Effect.provide(SqliteMigrator.run(options), migratorPlatform)
  })

  suite(it, {
    name: "@effect/sql-sqlite-node SqliteClient.layer (:memory:)",
    prefix: "effect_memory",
    dialect: "sqlite",
    layer: SqliteClient.layer({ filename: ":memory:" }),
    capabilities: effectCapabilities,
    migrate: (options) => Effect.provide(SqliteMigrator.run(options), migratorPlatform)
  })
})
