/**
 * A PoolLayer straight over a driver layer: `Pool.layer(tag, { driver: DriverTag })` requires the driver's service,
 * so `Layer.provide(Pg.layerConfig())` (or `Sqlite.layer`, `Memory.layer`) builds it without a hand-written
 * `Layer.scoped`. The PostgreSQL case is in `Pool.layer.pg.test.ts`.
 */
import { assert, describe, it } from "@effect/vitest"
import { Config, Context, Effect, Layer } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as Memory from "../src/Driver/Memory.js"
import * as Sqlite from "../src/Driver/Sqlite.js"
import * as Pool from "../src/Pool.js"
import { PoolConfigError } from "../src/PoolError.js"

class Db extends Context.Tag("test/Db")<Db, Pool.Pool<Memory.MemoryConnection, Memory.MemoryError>>() {}
class Local extends Context.Tag("test/Local")<Local, Pool.Pool<Sqlite.SqliteConnection, Sqlite.SqliteError>>() {}

describe("Pool.layer over a driver layer", () => {
  it.effect("Memory: the pool uses the database the Memory layer provides", () =>
    Effect.gen(function*() {
      const db = yield* Db
      yield* Pool.query(db, "INSERT INTO orders VALUES ($1, $2)", [1, "tea"])
      const memory = yield* Memory.Memory
      assert.deepStrictEqual(yield* memory.committedStatements, [
        { sql: "INSERT INTO orders VALUES ($1, $2)", params: [1, "tea"], connection: 1 }
      ])
      assert.strictEqual(db.driver, memory.driver)
      assert.strictEqual(db.name, "orders")
    }).pipe(
      Effect.provide(
        Pool.layer(Db, { driver: Memory.MemoryDriver, name: "orders", size: 2 }).pipe(
          Layer.provideMerge(Memory.layer())
        )
      )
    ))

  it.effect("Sqlite: a PoolLayer over Sqlite.layer", () =>
    Effect.gen(function*() {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "reservoir-layer-"))
      yield* Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true })))
      const live = Pool.layer(Local, { driver: Sqlite.SqliteDriver, size: 2 }).pipe(
        Layer.provide(Sqlite.layer({ filename: path.join(dir, "app.db") }))
      )
      const rows = yield* Effect.provide(
        Effect.flatMap(Local, (pool) => Pool.query(pool, "SELECT ? + 1 AS two", [1])),
        live
      )
      assert.deepStrictEqual(rows, [{ two: 2 }])
    }).pipe(Effect.scoped))

  it.effect("layerConfig takes the driver's Tag too", () =>
    Effect.gen(function*() {
      const live = Pool.layerConfig(Db, Memory.MemoryDriver, { size: Config.succeed(3), name: Config.succeed("cfg") })
        .pipe(Layer.provideMerge(Memory.layer()))
      const status = yield* Effect.provide(Effect.flatMap(Db, Pool.status), live)
      assert.include(status, "Pool size: 3")
    }))

  it.effect("make takes the driver's Tag and requires its service", () =>
    Effect.gen(function*() {
      const pool = yield* Pool.make({ driver: Memory.MemoryDriver, size: 1 })
      assert.strictEqual(pool.driver.dialect, "memory")
    }).pipe(Effect.scoped, Effect.provide(Memory.layer())))

  it.effect("bad options over a driver Tag still fail with every problem listed", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(
        Layer.build(Pool.layer(Db, { driver: Memory.MemoryDriver, size: -1, maxOverflow: -2 })).pipe(
          Effect.provide(Memory.layer()),
          Effect.scoped
        )
      )
      assert.instanceOf(error, PoolConfigError)
      assert.include(error.message, "size")
      assert.include(error.message, "maxOverflow")
    }))
})
