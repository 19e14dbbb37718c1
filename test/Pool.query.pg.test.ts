/**
 * `Pool.query` on a real PostgreSQL 15: a statement that waits for a connection is started at hand-off (from the
 * step that returns the connection), so its caller waits once. What must hold whatever the path: every statement's
 * own rows under contention, typed failures that do not poison the connection, the cancel of an interrupted
 * statement started at hand-off, and the fallback to `Pool.use` where a connection must be checked first or the
 * driver cannot start a statement outside an Effect.
 */
import { assert, layer } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Scope from "effect/Scope"
import * as Pg from "../src/Driver/Pg.js"
import * as Pool from "../src/Pool.js"
import { PoolClosedError, PoolTimeoutError } from "../src/PoolError.js"
import { uniqueName } from "./Driver/conformance.js"
import { layer as postgresLayer, Postgres, type PostgresServer } from "./utils/postgres.js"

const makePool = (server: PostgresServer, prefix: string, options?: Partial<Pool.BaseOptions>) =>
  Effect.gen(function*() {
    const name = uniqueName(prefix)
    const pool = yield* Pool.make({ driver: Pg.driver(server.options), name, size: 2, maxOverflow: 0, ...options })
    return { name, pool }
  })

/** Backends of `name` running a statement that starts with `prefix`. */
const running = (server: PostgresServer, name: string, prefix: string) =>
  Effect.map(
    server.query(
      "SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1 AND state = 'active' AND query LIKE $2",
      [name, `${prefix}%`]
    ),
    (rows) => (rows[0] as { readonly n: number }).n
  )

layer(postgresLayer, { excludeTestServices: true, timeout: "60 seconds" })("Pool.query (PostgreSQL 15)", (it) => {
  it.scoped("200 statements on 2 connections: each gets its own rows, and the pool ends as it began", () =>
    Effect.gen(function*() {
      const server = yield* Postgres
      const { pool } = yield* makePool(server, "q-contention")
      const results = yield* Effect.forEach(
        Array.from({ length: 200 }, (_, i) => i),
        (i) => Pool.query(pool, "SELECT $1::int AS n", [i]),
        { concurrency: "unbounded" }
      )
      assert.deepStrictEqual(results.map((rows) => rows[0]!["n"]), Array.from({ length: 200 }, (_, i) => i))
      const stats = yield* Pool.stats(pool)
      assert.strictEqual(stats.inUse, 0)
      assert.strictEqual(stats.waiting, 0)
      assert.isAtMost(stats.open, 2)
    }))

  it.scoped("a failing statement started at hand-off fails typed, and the next one on that connection succeeds", () =>
    Effect.gen(function*() {
      const server = yield* Postgres
      const { pool } = yield* makePool(server, "q-fail", { size: 1 })
      const results = yield* Effect.forEach(
        [0, 1, 2, 3, 4, 5],
        (i) => Effect.either(Pool.query(pool, i % 2 === 0 ? "SELECT 1 AS ok" : "SELECT * FROM no_such_table")),
        { concurrency: "unbounded" }
      )
      for (const [i, result] of results.entries()) {
        if (i % 2 === 0) assert.isTrue(result._tag === "Right", `statement ${i} succeeds`)
        else {
          assert.isTrue(result._tag === "Left" && result.left instanceof Pg.PgError, `statement ${i} fails typed`)
          if (result._tag === "Left" && result.left instanceof Pg.PgError) assert.strictEqual(result.left.code, "42P01")
        }
      }
      assert.strictEqual((yield* Pool.stats(pool)).open, 1, "a server error does not cost the connection")
    }))

  it.scoped("an interrupted statement started at hand-off is cancelled on the server, and the pool serves on", () =>
    Effect.gen(function*() {
      const server = yield* Postgres
      const { name, pool } = yield* makePool(server, "q-cancel", { size: 1 })
      // the one connection is lent; the statement waits, and starts when it comes back
      const holder = yield* Effect.fork(Pool.use(pool, () => Effect.sleep("200 millis")))
      const sleeper = yield* Effect.fork(Pool.query(pool, "SELECT pg_sleep(30)"))
      yield* Fiber.join(holder)
      yield* Effect.sleep("300 millis")
      assert.strictEqual(yield* running(server, name, "SELECT pg_sleep"), 1, "started at hand-off")
      const started = Date.now()
      yield* Fiber.interrupt(sleeper)
      assert.isBelow(Date.now() - started, 5000, "the interruption ends the caller's wait")
      yield* Effect.sleep("300 millis")
      assert.strictEqual(yield* running(server, name, "SELECT pg_sleep"), 0, "the server stopped it")
      const rows = yield* Pool.query(pool, "SELECT 7 AS n")
      assert.strictEqual(rows[0]!["n"], 7)
    }))

  it.scoped("a statement that waits past the deadline fails with PoolTimeoutError and never runs", () =>
    Effect.gen(function*() {
      const server = yield* Postgres
      const { pool } = yield* makePool(server, "q-timeout", { size: 1 })
      const holder = yield* Effect.fork(Pool.use(pool, () => Effect.sleep("500 millis")))
      yield* Effect.sleep("50 millis")
      const error = yield* Effect.flip(Pool.query(pool, "SELECT 1", [], { timeout: Duration.millis(100) }))
      assert.instanceOf(error, PoolTimeoutError)
      yield* Fiber.join(holder)
      assert.strictEqual((yield* Pool.stats(pool)).inUse, 0)
    }))

  it.scoped("with a checkout listener the connection is checked before the statement, which then runs", () =>
    Effect.gen(function*() {
      const server = yield* Postgres
      const { pool } = yield* makePool(server, "q-listener", { size: 1 })
      let heard = 0
      yield* Pool.listen(pool, { checkout: () => Effect.sync(() => void heard++) })
      const results = yield* Effect.forEach(
        [1, 2, 3, 4],
        (i) => Pool.query(pool, "SELECT $1::int AS n", [i]),
        { concurrency: "unbounded" }
      )
      assert.deepStrictEqual(results.map((rows) => rows[0]!["n"]), [1, 2, 3, 4])
      assert.strictEqual(heard, 4, "every lending was announced to the listener")
    }))

  it.scoped("Pool.query on a closed pool fails with PoolClosedError", () =>
    Effect.gen(function*() {
      const server = yield* Postgres
      const scope = yield* Scope.make()
      const { pool } = yield* Scope.extend(makePool(server, "q-closed", { size: 1 }), scope)
      assert.strictEqual((yield* Pool.query(pool, "SELECT 1 AS n"))[0]!["n"], 1)
      yield* Scope.close(scope, Exit.void)
      const error = yield* Effect.flip(Pool.query(pool, "SELECT 1"))
      assert.instanceOf(error, PoolClosedError)
    }))
})
