/**
 * `Policy.recycle` on a real PostgreSQL server: an expired connection's backend really goes, and the pool's new
 * connection is another backend. Real clock (node-postgres does not run on `TestClock`), with a 500 ms `maxAge`.
 */
import { assert, layer } from "@effect/vitest"
import { Deferred, Effect, Fiber } from "effect"
import * as Pg from "../../src/Driver/Pg.js"
import * as Policy from "../../src/Policy.js"
import * as Pool from "../../src/Pool.js"
import { eventually, uniqueName } from "../Driver/conformance.js"
import { layer as postgresLayer, Postgres } from "../utils/postgres.js"

const processId = (pool: Pool.Pool<Pg.PgConnection, Pg.PgError>) =>
  Pool.use(pool, (connection) => Effect.succeed(connection.processId))

layer(postgresLayer, { excludeTestServices: true, timeout: "60 seconds" })("Policy.recycle (PostgreSQL 15)", (it) => {
  it.scoped("replaces an idle connection's backend when its lifetime ends, and refills min", () =>
    Effect.gen(function*() {
      const server = yield* Postgres
      const name = uniqueName("pg-recycle-idle")
      const pool = yield* Pool.make({
        driver: Pg.driver(server.options),
        name,
        size: 1,
        maxOverflow: 0,
        min: 1,
        policies: [Policy.recycle("500 millis", { spread: 0 })]
      })
      const first = yield* processId(pool)
      assert.deepStrictEqual((yield* server.sessions(name)).pids, [first])
      // no checkout asks: the background closes it at 500 ms and opens the replacement for min
      const after = yield* server.awaitSessions(name, (s) => s.total === 1 && !s.pids.includes(first), "3 seconds")
      assert.strictEqual((yield* Pool.stats(pool)).closedBy.expired, 1)
      const second = yield* processId(pool)
      assert.notStrictEqual(second, first)
      assert.deepStrictEqual(after.pids, [second])
      const gone = yield* server.query("SELECT 1 FROM pg_stat_activity WHERE pid = $1", [first])
      assert.strictEqual(gone.length, 0, "the old backend left pg_stat_activity")
    }))

  it.scoped("lets a borrower finish on an expired connection, then closes its backend at the return", () =>
    Effect.gen(function*() {
      const server = yield* Postgres
      const name = uniqueName("pg-recycle-lent")
      const pool = yield* Pool.make({
        driver: Pg.driver(server.options),
        name,
        size: 1,
        policies: [Policy.recycle("500 millis", { spread: 0 })]
      })
      const lent = yield* Deferred.make<number>()
      const borrower = yield* Effect.fork(Pool.use(pool, (connection) =>
        Effect.gen(function*() {
          yield* Deferred.succeed(lent, connection.processId)
          yield* Effect.sleep("800 millis")
          // past its lifetime, and still the borrower's
          return yield* pool.driver.query(connection, "SELECT pg_backend_pid() AS pid")
        })))
      const first = yield* Deferred.await(lent)
      const rows = yield* Fiber.join(borrower)
      assert.strictEqual(rows[0]!["pid"], first)
      yield* eventually(
        Effect.map(Pool.stats(pool), (stats) => stats.closedBy["expired"] === 1),
        "closed as expired at its return"
      )
      yield* server.awaitSessions(name, (s) => !s.pids.includes(first), "3 seconds")
      assert.notStrictEqual(yield* processId(pool), first)
    }))
})
