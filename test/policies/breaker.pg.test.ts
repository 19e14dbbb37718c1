/**
 * The circuit breaker and the leak detector on a real PostgreSQL 15 (a throwaway cluster, real clock): a pool that
 * points at a port where nothing listens opens its breaker on the real `ECONNREFUSED`, and a leaked connection
 * running `pg_sleep` is reclaimed: its holder interrupted, the statement stopped and the session ended on the server.
 */
import { assert, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as net from "node:net"
import * as Pg from "../../src/Driver/Pg.js"
import * as Policy from "../../src/Policy.js"
import * as Pool from "../../src/Pool.js"
import { PoolUnavailableError } from "../../src/PoolError.js"
import type * as PoolEvent from "../../src/PoolEvent.js"
import { eventually, uniqueName } from "../Driver/conformance.js"
import { layer as postgresLayer, Postgres } from "../utils/postgres.js"

/** A loopback port where nothing listens: bound by the OS, then released. */
const closedPort = Effect.async<number>((resume) => {
  const server = net.createServer()
  server.listen(0, "127.0.0.1", () => {
    const address = server.address()
    const port = typeof address === "object" && address !== null ? address.port : 0
    server.close(() => resume(Effect.succeed(port)))
  })
})

layer(postgresLayer, { excludeTestServices: true, timeout: "60 seconds" })("policies on PostgreSQL 15", (it) => {
  it.scoped("opens the breaker on a refused port; checkouts then fail at once with the ECONNREFUSED", () =>
    Effect.gen(function*() {
      const server = yield* Postgres
      const port = yield* closedPort
      const driver = Pg.driver({ ...server.options, port })
      const breaker = Policy.circuitBreaker<Pg.PgConnection, Pg.PgError>({ failures: 3, probe: "200 millis" })
      const pool = yield* Pool.make({
        name: uniqueName("pg-breaker"),
        driver,
        size: 2,
        timeout: "10 seconds",
        policies: [Policy.connectRetry("20 millis"), breaker]
      })
      const events: Array<PoolEvent.CircuitBreaker> = []
      yield* Pool.listen(pool, { circuitBreaker: (event) => Effect.sync(() => events.push(event)) })
      const commands = yield* Pool.policy(pool, breaker)
      // each of the first three checkouts gets its own connect's refusal
      for (let i = 0; i < 3; i++) {
        const error = yield* Effect.flip(Pool.use(pool, () => Effect.void))
        assert.strictEqual(error._tag, "PgError")
        assert.strictEqual((error as Pg.PgError).systemCode, "ECONNREFUSED")
      }
      assert.strictEqual(yield* commands.state, "open")
      // then at once, not after the 10-second timeout, carrying the real refusal
      const started = performance.now()
      const error = yield* Effect.flip(Pool.use(pool, () => Effect.void))
      const elapsed = performance.now() - started
      assert.instanceOf(error, PoolUnavailableError)
      const cause = (error as PoolUnavailableError).cause as Pg.PgError
      assert.strictEqual(cause._tag, "PgError")
      assert.strictEqual(cause.reason, "ConnectFailed")
      assert.strictEqual(cause.systemCode, "ECONNREFUSED")
      assert.include(error.message, "ECONNREFUSED")
      assert.isBelow(elapsed, 100)
      // the probe retries on its schedule (200 ms) and is refused too
      yield* eventually(Effect.sync(() => events.filter((e) => e.state === "halfOpen").length >= 2), "two probes")
      assert.deepStrictEqual(events.slice(0, 4).map((e) => e.state), ["open", "halfOpen", "open", "halfOpen"])
      assert.strictEqual((yield* Pool.stats(pool)).open, 0)
    }))

  it.scoped("reclaims a leaked connection: the holder's pg_sleep is interrupted and its session ends", () =>
    Effect.gen(function*() {
      const server = yield* Postgres
      const driver = Pg.driver(server.options)
      const name = uniqueName("pg-leak")
      const detector = Policy.leakDetection<Pg.PgConnection, Pg.PgError>("1 second", { reclaim: true })
      const pool = yield* Pool.make({ name, driver, size: 1, maxOverflow: 0, policies: [detector] })
      const leaks: Array<PoolEvent.Leak<Pg.PgConnection>> = []
      yield* Pool.listen(pool, { leak: (event) => Effect.sync(() => leaks.push(event)) })

      let pid = 0
      const holder = yield* Effect.fork(
        Pool.use(pool, (connection) => {
          pid = connection.processId
          return driver.query(connection, "SELECT pg_sleep(10)")
        })
      )
      // read anew at each poll: `pid` is known once the holder has its connection
      const running = Effect.suspend(() =>
        server.query(
          "SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND state = 'active' AND query LIKE '%pg_sleep%'",
          [pid]
        )
      )
      yield* eventually(Effect.map(running, (rows) => pid !== 0 && rows.length === 1), "it runs")

      const exit = yield* Fiber.await(holder)
      assert.isTrue(Exit.isInterrupted(exit), "the holder is interrupted")
      assert.strictEqual(leaks.length, 1)
      assert.strictEqual(leaks[0]!.holder, holder)
      assert.isTrue(leaks[0]!.reclaimed)
      assert.isAtLeast(leaks[0]!.heldMillis, 1000)
      // the statement stopped and the session is gone on the server, long before pg_sleep(10) would end
      yield* server.awaitSessions(name, (sessions) => sessions.total === 0, "3 seconds")
      assert.lengthOf(yield* server.query("SELECT 1 FROM pg_stat_activity WHERE pid = $1", [pid]), 0)
      const stats = yield* Pool.stats(pool)
      assert.strictEqual(stats.closedBy.reclaimed, 1)
      assert.strictEqual(stats.inUse, 0)
      // the pool serves on with a fresh session
      const rows = yield* Pool.use(pool, (connection) => driver.query(connection, "SELECT 1 AS n"))
      assert.deepStrictEqual(rows, [{ n: 1 }])
    }))
})
