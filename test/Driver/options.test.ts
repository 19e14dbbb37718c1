/**
 * Drivers made with bad options never throw and never clamp: the driver carries its problems, and a pool made with it
 * fails with one `PoolConfigError` listing them with the pool's own.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Pg from "../../src/Driver/Pg.js"
import * as Sqlite from "../../src/Driver/Sqlite.js"
import * as Pool from "../../src/Pool.js"
import { PoolConfigError } from "../../src/PoolError.js"

describe("driver options", () => {
  it.scoped("Pg: a negative or unreadable timeout is a problem of the pool's construction, listed with the pool's", () =>
    Effect.gen(function*() {
      const driver = Pg.driver({
        host: "127.0.0.1",
        connectTimeout: -1,
        statementTimeout: "soon" as never,
        closeTimeout: Number.NaN
      })
      const error = yield* Effect.flip(Pool.make({ driver, size: -2 }))
      assert.instanceOf(error, PoolConfigError)
      const problems = (error as PoolConfigError).problems.join("\n")
      for (const option of ["size", "driver (postgresql): connectTimeout", "statementTimeout", "closeTimeout"]) {
        assert.include(problems, option)
      }
      const checked = yield* Effect.flip(Pg.check({ host: "127.0.0.1", connectTimeout: -1 }))
      assert.include(checked.detail, "connectTimeout")
    }))

  it.scoped("Sqlite: a negative busy timeout is refused, not read as 0", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Pool.make({ driver: Sqlite.driver({ filename: ":memory:", busyTimeout: -1 }) }))
      assert.include((error as PoolConfigError).problems.join("\n"), "driver (sqlite): busyTimeout")
    }))

  it.scoped("valid durations in every form build the drivers", () =>
    Effect.gen(function*() {
      const pool = yield* Pool.make({
        driver: Sqlite.driver({ filename: ":memory:", busyTimeout: "1500" as never }),
        size: 1,
        maxOverflow: 0
      })
      assert.strictEqual((yield* Pool.stats(pool)).open >= 0, true)
      assert.isUndefined(
        Pg.driver({ connectTimeout: "2 seconds", statementTimeout: 500, closeTimeout: "3 seconds" }).problems
      )
    }))
})
