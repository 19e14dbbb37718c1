/**
 * docs/operating.md's database restart, against the Memory database under `TestClock`, and the readiness probe:
 * what it says while connects fail, and that a pool gated by it reconnects by itself only with `min` of 1 or more or
 * a circuit breaker (with neither, `backingOff` lasts until a checkout connects).
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, Logger, LogLevel, TestClock } from "effect"
import * as health from "../../examples/operating/health.js"
import * as restart from "../../examples/operating/restart.js"
import * as Memory from "../../src/Driver/Memory.js"
import * as Policy from "../../src/Policy.js"
import * as Pool from "../../src/Pool.js"

describe("database restart", () => {
  it.effect("in-flight work gets the disconnect, pre-ping starts a generation, the breaker opens, the retry succeeds", () =>
    Effect.gen(function*() {
      const result = yield* restart.program
      assert.deepStrictEqual(result, {
        inFlight: "MemoryError (Disconnected)",
        readiness: {
          whileDown: { ready: false, reason: "pool \"restart\" cannot connect (2 failed connects)" },
          after: { ready: true, reason: "pool \"restart\": 0 in use, 1 idle, 0 waiting" }
        },
        committed: ["INSERT INTO t VALUES (1)"],
        generation: 1,
        closedBy: { invalidated: 1, stale: 1, rejected: 1 },
        timeline: [
          "1s server restarts (down for 5 s)",
          "2s log WARN: rollback failed; invalidating the connection",
          "2s close #3 (invalidated)",
          "2s close #1 (stale)",
          "2s close #2 (rejected)",
          "2s connect refused",
          "2s attempt failed: MemoryError (ConnectRefused)",
          "3s connect refused",
          "3s attempt failed: MemoryError (ConnectRefused)",
          "4s breaker open",
          "4s connect refused",
          "4s attempt failed: MemoryError (ConnectRefused)",
          "5s breaker halfOpen",
          "5s log WARN: connect failed",
          "5s connect refused",
          "5s breaker open",
          "5s attempt failed: PoolUnavailableError",
          "6s attempt failed: PoolUnavailableError",
          "6s breaker halfOpen",
          "6s breaker closed",
          "7s the retried transaction committed"
        ]
      })
    }))

  const afterAnOutage = (name: string, options: Pick<Pool.Options<never, never>, "min" | "policies">) =>
    Effect.gen(function*() {
      const db = yield* Memory.make()
      const pool = yield* Pool.make({ driver: db.driver, name, size: 2, ...options })
      yield* TestClock.adjust("1 second")
      yield* db.down
      yield* Pool.dispose(pool)
      const refused = yield* Effect.fork(Effect.either(Pool.use(pool, () => Effect.void)))
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(refused)
      const whileDown = yield* health.readiness(pool)
      yield* db.up
      // nobody checks out: only the pool's own connects can end the backoff
      yield* TestClock.adjust("30 seconds")
      return [whileDown.ready, (yield* health.readiness(pool)).ready]
    }).pipe(Effect.scoped, Logger.withMinimumLogLevel(LogLevel.Error))

  it.effect("readiness recovers without traffic with min: 1 or a circuit breaker, not with neither", () =>
    Effect.gen(function*() {
      assert.deepStrictEqual(yield* afterAnOutage("ready-min", { min: 1 }), [false, true])
      assert.deepStrictEqual(
        yield* afterAnOutage("ready-breaker", {
          policies: [...Policy.defaults(), Policy.circuitBreaker({ failures: 1, probe: "1 second" })]
        }),
        [false, true]
      )
      assert.deepStrictEqual(yield* afterAnOutage("ready-neither", {}), [false, false])
    }))

  it.effect("readiness is false once the pool is closed", () =>
    Effect.gen(function*() {
      const db = yield* Memory.make()
      const pool = yield* Effect.scoped(Pool.make({ driver: db.driver, name: "ready-closed" }))
      assert.deepStrictEqual(yield* health.readiness(pool), { ready: false, reason: "pool \"ready-closed\" is closed" })
    }))
})
