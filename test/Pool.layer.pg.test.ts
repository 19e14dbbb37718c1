/**
 * The case on a real server: a PoolLayer over the Pg driver's layer from `Config` (`DATABASE_URL`), with no
 * hand-written `Layer.scoped`, and the pool closing its sessions with the layer.
 */
import { assert, layer } from "@effect/vitest"
import { ConfigProvider, Context, Effect, Layer, Schedule } from "effect"
import * as Pg from "../src/Driver/Pg.js"
import * as Pool from "../src/Pool.js"
import { layer as postgresLayer, Postgres } from "./utils/postgres.js"

class Db extends Context.Tag("test/Db")<Db, Pool.Pool<Pg.PgConnection, Pg.PgError>>() {}

layer(postgresLayer, { excludeTestServices: true, timeout: "60 seconds" })("Pool.layer over Pg.layerConfig()", (it) => {
  it.effect("builds from DATABASE_URL, runs statements, closes its sessions with the layer", () =>
    Effect.gen(function*() {
      const server = yield* Postgres
      const DbLive = Pool.layer(Db, { driver: Pg.PgDriver, name: "layer-over-config", size: 2, min: 2, maxOverflow: 0 })
        .pipe(
          Layer.provide(Pg.layerConfig())
        )
      const sessions = Effect.map(
        server.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'layer-over-config'"),
        (rows) => rows[0]!["n"] as number
      )
      const program = Effect.gen(function*() {
        const db = yield* Db
        const rows = yield* Pool.query(db, "SELECT $1::int + 1 AS two", [1])
        return { rows, open: yield* sessions }
      })
      const result = yield* program.pipe(
        Effect.provide(DbLive),
        Effect.withConfigProvider(ConfigProvider.fromMap(new Map([["DATABASE_URL", server.url]])))
      )
      assert.deepStrictEqual(result.rows, [{ two: 2 }])
      assert.strictEqual(result.open, 2)
      // a backend leaves pg_stat_activity shortly after its client has gone
      const left = yield* sessions.pipe(
        Effect.filterOrFail((n) => n === 0),
        Effect.retry(Schedule.spaced("50 millis").pipe(Schedule.upTo("10 seconds"))),
        Effect.orElseSucceed(() => -1)
      )
      assert.strictEqual(left, 0)
    }))
})
