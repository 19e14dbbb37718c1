/**
 * The health policies against a real PostgreSQL 15 (a throwaway cluster, real clock): pre-ping and keepalive after
 * `pg_terminate_backend`, and the liveness query running on the server.
 *
 * The Pg driver hears a terminated idle session through node-postgres's `error` event and the pool invalidates it
 * at once, before any policy could; that is the usual path, and it hides what pre-ping and keepalive do. `unheard`
 * wraps the driver so that the pool is never told (a session dropped by a firewall or a NAT, where no packet
 * arrives): what notices the dead session then is the policy under test, and nothing else.
 */
import { assert, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import type { Driver } from "../../src/Driver.js"
import * as Pg from "../../src/Driver/Pg.js"
import * as Policy from "../../src/Policy.js"
import * as Pool from "../../src/Pool.js"
import { ConnectionRejected, PoolCheckoutRejectedError } from "../../src/PoolError.js"
import { eventually, uniqueName } from "../Driver/conformance.js"
import { layer as postgresLayer, Postgres } from "../utils/postgres.js"

type PgDriver = Driver<Pg.PgConnection, Pg.PgError>

/** The Pg driver with its sessions' deaths never reported to the pool (see the file's comment). */
const unheard = (driver: PgDriver): PgDriver => ({
  ...driver,
  connect: (context) => driver.connect({ ...context, invalidate: () => undefined })
})

const TABLE = "reservoir_health"

layer(postgresLayer, { excludeTestServices: true, timeout: "60 seconds" })("health policies (PostgreSQL 15)", (it) => {
  it.scoped("prePing: after pg_terminate_backend of the idle sessions, the next checkout succeeds on a new one", () =>
    Effect.gen(function*() {
      const server = yield* Postgres
      const name = uniqueName("pg-preping")
      const pool = yield* Pool.make({
        driver: unheard(Pg.driver(server.options)),
        name,
        size: 2,
        min: 2,
        policies: [Policy.prePing({ skipWithin: "0 millis" })]
      })
      const before = yield* server.awaitSessions(name, (s) => s.total === 2)
      assert.strictEqual(yield* server.terminateBackends(name), 2)
      yield* server.awaitSessions(name, (s) => s.total === 0)
      const pid = yield* Pool.use(pool, (c) => Effect.as(pool.driver.query(c, "SELECT 1"), c.processId))
      assert.notInclude(before.pids, pid, "a new backend")
      const stats = yield* Pool.stats(pool)
      // the ping met the disconnect: a new generation, the other dead session closed without a ping of its own
      assert.deepStrictEqual(
        [stats.closedBy["rejected"], stats.closedBy["stale"], stats.generation, stats.connectFailures],
        [1, 1, 1, 0]
      )
    }))

  it.scoped("prePing with the driver's own notice: the caller sees no error either way", () =>
    Effect.gen(function*() {
      const server = yield* Postgres
      const name = uniqueName("pg-preping-heard")
      const pool = yield* Pool.make({
        driver: Pg.driver(server.options),
        name,
        size: 1,
        min: 1,
        policies: [Policy.prePing({ skipWithin: "0 millis" })]
      })
      const [old] = (yield* server.awaitSessions(name, (s) => s.total === 1)).pids
      yield* server.terminateBackend(old!)
      // no wait at all: whichever comes first, the error event or the ping, the checkout goes on
      const pid = yield* Pool.use(pool, (c) => Effect.succeed(c.processId))
      assert.notStrictEqual(pid, old)
    }))

  it.scoped("keepalive replaces a session terminated while idle, before anyone borrows it", () =>
    Effect.gen(function*() {
      const server = yield* Postgres
      const name = uniqueName("pg-keepalive")
      const pool = yield* Pool.make({
        driver: unheard(Pg.driver(server.options)),
        name,
        size: 2,
        min: 2,
        policies: [Policy.keepalive("200 millis", { timeout: "2 seconds" })]
      })
      const before = yield* server.awaitSessions(name, (s) => s.total === 2)
      const victim = before.pids[0]!
      assert.isTrue(yield* server.terminateBackend(victim))
      // replaced: two sessions again, the terminated one not among them
      const after = yield* server.awaitSessions(name, (s) => s.total === 2 && !s.pids.includes(victim))
      yield* eventually(
        Effect.map(Pool.stats(pool), (stats) => stats.open === 2 && stats.idle === 2),
        "the pool is back to min"
      )
      const stats = yield* Pool.stats(pool)
      assert.strictEqual(stats.checkouts, 0, "nobody borrowed meanwhile")
      assert.strictEqual(stats.closedBy["rejected"], 1, "the keepalive ping met the dead session")
      // that session only: the live one answered its own ping and stays (no new generation, unlike pre-ping)
      assert.deepStrictEqual([stats.closedBy["stale"], stats.generation], [undefined, 0])
      assert.include(after.pids, before.pids[1])
      // and the pool serves
      const pid = yield* Pool.use(pool, (c) => Effect.succeed(c.processId))
      assert.include(after.pids, pid)
    }))

  it.scoped("livenessQuery runs on the server, and a bad one fails the checkout typed", () =>
    Effect.gen(function*() {
      const server = yield* Postgres
      yield* server.query(`CREATE TABLE IF NOT EXISTS ${TABLE} (n int)`)
      const liveness = `SELECT count(*) FROM ${TABLE}`
      const name = uniqueName("pg-liveness")
      const pool = yield* Pool.make({
        driver: Pg.driver(server.options),
        name,
        size: 1,
        policies: [Policy.livenessQuery(liveness), Policy.prePing({ skipWithin: "0 millis" })]
      })
      const pid = yield* Pool.use(pool, (c) => Effect.succeed(c.processId))
      // the borrower ran nothing: the session's last statement is the liveness query
      const [row] = yield* server.query("SELECT query FROM pg_stat_activity WHERE pid = $1", [pid])
      assert.strictEqual(row!["query"], liveness)

      const bad = yield* Pool.make({
        driver: Pg.driver(server.options),
        name: uniqueName("pg-liveness-bad"),
        size: 1,
        policies: [Policy.livenessQuery("SELECT * FROM no_such_table"), Policy.prePing({ skipWithin: "0 millis" })]
      })
      const error = yield* Effect.flip(Pool.use(bad, () => Effect.void))
      assert.instanceOf(error, PoolCheckoutRejectedError)
      const rejection = (error as PoolCheckoutRejectedError).cause
      assert.instanceOf(rejection, ConnectionRejected)
      const cause = (rejection as ConnectionRejected).cause
      assert.instanceOf(cause, Pg.PgError)
      assert.deepStrictEqual([(cause as Pg.PgError).reason, (cause as Pg.PgError).code], ["QueryFailed", "42P01"])
      assert.strictEqual((error as PoolCheckoutRejectedError).attempts, 1, "not retried: another would fail alike")
    }))
})
