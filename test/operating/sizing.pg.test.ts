/**
 * docs/sizing.md's start-up check against a real PostgreSQL 15 (the throwaway cluster runs with
 * `max_connections = 200` and the default `superuser_reserved_connections = 3`): a plan that fits, one that does
 * not, unbounded overflow, the layer failing at start without leaving a session, and the example's own main
 * exiting with 1 and the message, as docs/sizing.md shows them.
 */
import { assert, layer } from "@effect/vitest"
import { Context, Effect, Exit, Layer } from "effect"
import * as sizingCheck from "../../examples/operating/sizing-check.js"
import * as Pg from "../../src/Driver/Pg.js"
import * as Pool from "../../src/Pool.js"
import { uniqueName } from "../Driver/conformance.js"
import { blocks } from "../utils/markdown.js"
import { layer as postgresLayer, Postgres } from "../utils/postgres.js"
import { run } from "./subprocess.js"

const plan = { instances: 4, otherClients: 10 }

layer(postgresLayer, { excludeTestServices: true, timeout: "60 seconds" })("sizing check (PostgreSQL 15)", (it) => {
  it.scoped("reads the server's limits through the pool; a plan that fits passes", () =>
    Effect.gen(function*() {
      const server = yield* Postgres
      const pool = yield* Pool.make({ driver: Pg.driver(server.options), name: "orders-api", size: 5, maxOverflow: 10 })
      const budget = yield* sizingCheck.checkSizing(pool, plan)
      assert.deepStrictEqual(budget, {
        maxConnections: 200,
        superuserReserved: 3,
        reserved: 0,
        available: 187,
        demand: 60
      })
    }))

  it.scoped("a plan that does not fit fails with PoolSizingError, and so does unbounded overflow", () =>
    Effect.gen(function*() {
      const server = yield* Postgres
      const pool = yield* Pool.make({ driver: Pg.driver(server.options), name: "orders-api", size: 5, maxOverflow: 10 })
      const tooMany = yield* Effect.flip(sizingCheck.checkSizing(pool, { instances: 13, otherClients: 10 }))
      assert.strictEqual(tooMany._tag, "PoolSizingError")
      assert.strictEqual(
        tooMany.message,
        "Pool \"orders-api\": 13 instances × (size 5 + maxOverflow 10) = 195 connections, more than the 187 this " +
          "server leaves them (max_connections 200 - superuser_reserved_connections 3 - 10 for other clients)"
      )
      const unbounded = yield* Pool.make({
        driver: Pg.driver(server.options),
        name: "reports",
        size: 2,
        maxOverflow: "unbounded"
      })
      const noCeiling = yield* Effect.flip(sizingCheck.checkSizing(unbounded, plan))
      assert.strictEqual(
        noCeiling.message,
        "Pool \"reports\": maxOverflow is \"unbounded\", so nothing bounds its connections " +
          "(max_connections 200 - superuser_reserved_connections 3 - 10 for other clients)"
      )
    }))

  it.scoped("the layer fails at start, and its pool's session is closed", () =>
    Effect.gen(function*() {
      const server = yield* Postgres
      const name = uniqueName("sizing-layer")
      const options = { driver: Pg.driver(server.options), name, size: 50, maxOverflow: 50 }
      const fails = yield* Effect.exit(Layer.build(sizingCheck.DbLive(options, plan)).pipe(Effect.scoped))
      assert.isTrue(Exit.isFailure(fails))
      if (Exit.isFailure(fails)) assert.include(String(fails.cause), "4 instances × (size 50 + maxOverflow 50) = 400")
      yield* server.awaitSessions(name, (s) => s.total === 0)
      const fits = yield* Layer.build(sizingCheck.DbLive({ ...options, size: 5, maxOverflow: 10 }, plan))
      const pool = Context.get(fits, sizingCheck.Db)
      assert.deepStrictEqual(yield* Pool.query(pool, "SELECT 1 AS one"), [{ one: 1 }])
    }))

  it.effect("the example's main: exit code 1 and the message when the plan does not fit, 0 when it fits", () =>
    Effect.gen(function*() {
      const server = yield* Postgres
      const env = { DATABASE_URL: server.url, OTHER_CLIENTS: "10", POOL_SIZE: "5", POOL_MAX_OVERFLOW: "10" }
      const [bad, good] = yield* Effect.promise(() =>
        Promise.all([
          run("examples/operating/sizing-check.ts", { ...env, INSTANCES: "13" }).finished,
          run("examples/operating/sizing-check.ts", { ...env, INSTANCES: "4" }).finished
        ])
      )
      assert.strictEqual(bad.code, 1, bad.stdout + bad.stderr)
      assert.include(
        bad.stdout + bad.stderr,
        "PoolSizingError: Pool \"orders-api\": 13 instances × (size 5 + maxOverflow 10) = 195 connections, more than " +
          "the 187 this server leaves them"
      )
      assert.strictEqual(good.code, 0, good.stdout + good.stderr)
      assert.include(
        good.stdout,
        "Pool \"orders-api\": 4 instances × (size 5 + maxOverflow 10) = 60 connections, within the 187 this server " +
          "leaves them (max_connections 200 - superuser_reserved_connections 3 - 10 for other clients)"
      )
      assert.include(good.stdout, "Pool size: 5  Connections in pool: 1")

      // docs/sizing.md shows these runs: each line of its blocks about them is a line one of them printed
      const printed = new Set(
        [good.stdout, bad.stdout, bad.stderr].flatMap((output) => output.split("\n").map((line) => line.trim()))
      )
      const shown = blocks("docs/sizing.md").filter((block) =>
        block.tag === "text" && block.code.includes("this server leaves them")
      )
      assert.strictEqual(shown.length, 2)
      for (const line of shown.flatMap((block) => block.code.trimEnd().split("\n"))) {
        assert.isTrue(printed.has(line), `docs/sizing.md shows a line the example does not print: ${line}`)
      }
    }))
})
