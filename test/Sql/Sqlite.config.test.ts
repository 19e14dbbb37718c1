/**
 * The SQLite `SqlClient`'s options and edges: a `:memory:` database is one connection's own, so anything that would
 * give it a second connection or close its one fails construction, every problem listed; a stream of a statement that
 * writes (`INSERT ... RETURNING`) takes the file's write lock like any write; `SafeIntegers` reaches streams.
 */
import * as Reactivity from "@effect/experimental/Reactivity"
import { SqlClient } from "@effect/sql"
import { assert, describe, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as Policy from "../../src/Policy.js"
import { PoolConfigError } from "../../src/PoolError.js"
import * as SqlSqlite from "../../src/Sql/Sqlite.js"

const make = (config: SqlSqlite.SqliteClientConfig) => Effect.provide(SqlSqlite.make(config), Reactivity.layer)

describe("Sql/Sqlite options", () => {
  it.scoped(":memory: with more than one connection, a lifetime or an idle limit fails with every problem", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(make({
        filename: ":memory:",
        maxConnections: 4,
        connectionTTL: "1 minute",
        pool: { policies: [Policy.maxUses(10)] }
      }))
      assert.instanceOf(error, PoolConfigError)
      const problems = (error as PoolConfigError).problems.join("\n")
      assert.include(problems, "maxConnections: must be 1")
      assert.include(problems, "connectionTTL")
      assert.include(problems, "maxUses closes connections")
    }))

  it.scoped("maxConnections and pool.size together are a contradiction", () =>
    Effect.gen(function*() {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sql-config-"))
      yield* Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true })))
      const error = yield* Effect.flip(make({ filename: path.join(dir, "x.db"), maxConnections: 2, pool: { size: 3 } }))
      assert.instanceOf(error, PoolConfigError)
      assert.include((error as PoolConfigError).problems.join("\n"), "maxConnections")
    }))

  it.scoped("a stream of INSERT ... RETURNING writes under the write lock, and SafeIntegers reaches streams", () =>
    Effect.gen(function*() {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sql-stream-"))
      yield* Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true })))
      const sql: SqlClient.SqlClient = yield* make({ filename: path.join(dir, "s.db") })
      yield* sql`CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)`
      const inserted = yield* Stream.runCollect(
        sql`INSERT INTO t (v) VALUES ('a'), ('b') RETURNING id`.stream
      )
      assert.deepStrictEqual(Chunk.toArray(inserted).map((r) => r["id"]), [1, 2])
      // a writer on another connection meanwhile: the lock was given back
      yield* Effect.all([sql`INSERT INTO t (v) VALUES ('c')`, sql`INSERT INTO t (v) VALUES ('d')`], {
        concurrency: 2
      })
      const big = yield* sql`SELECT id FROM t ORDER BY id`.stream.pipe(
        Stream.runCollect,
        Effect.provideService(SqlClient.SafeIntegers, true)
      )
      assert.deepStrictEqual(Chunk.toArray(big).map((r) => r["id"]), [1n, 2n, 3n, 4n])
    }))
})
