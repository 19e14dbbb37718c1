/**
 * The circuit breaker under `TestClock` against the Memory database: it opens after `failures` consecutive connect
 * failures, refuses checkouts that would wait for a connect at once with the last failure, still lends idle
 * connections, probes on its schedule with exactly one connect per step, and closes on the first success, whoever
 * made it.
 */
import { assert, describe, it } from "@effect/vitest"
import { Clock, Deferred, type Duration, Effect, Exit, Fiber, Scope, TestClock } from "effect"
import type { MemoryConnection, MemoryError } from "../../src/Driver/Memory.js"
import * as Policy from "../../src/Policy.js"
import * as Pool from "../../src/Pool.js"
import { PoolUnavailableError } from "../../src/PoolError.js"
import type * as PoolEvent from "../../src/PoolEvent.js"
import { memoryPool, settle } from "../utils/pool.js"

type Breaker = Policy.Policy<MemoryConnection, MemoryError, Policy.BreakerCommands>

/** A breaker-guarded pool over a fresh Memory database, with its `CircuitBreaker` events and commands. */
const breakerPool = (
  options: { readonly min?: number; readonly size?: number; readonly connectTimeout?: Duration.DurationInput } = {},
  breaker: Breaker = Policy.circuitBreaker({ failures: 3, probe: "5 seconds" })
) =>
  Effect.gen(function*() {
    const { db, pool } = yield* memoryPool({
      size: options.size ?? 2,
      min: options.min ?? 0,
      timeout: "30 seconds",
      ...(options.connectTimeout !== undefined ? { connectTimeout: options.connectTimeout } : {}),
      policies: [Policy.connectRetry("100 millis"), breaker]
    })
    const events: Array<PoolEvent.CircuitBreaker> = []
    /** When each event was heard, on the test clock. */
    const times: Array<number> = []
    yield* Pool.listen(pool, {
      circuitBreaker: (event) =>
        Effect.map(Clock.currentTimeMillis, (now) => {
          events.push(event)
          times.push(now)
        })
    })
    const commands = yield* Pool.policy(pool, breaker)
    return { db, pool, events, times, commands } as const
  })

/** One checkout that has to connect while the database refuses: it gets the connect's own failure. */
const failedCheckout = (pool: Pool.Pool<MemoryConnection, MemoryError>) =>
  Effect.gen(function*() {
    const fiber = yield* Effect.fork(Pool.use(pool, () => Effect.void))
    // past the connect backoff's delay, so each checkout's connect is a fresh attempt
    yield* TestClock.adjust("1 second")
    return yield* Fiber.await(fiber)
  })

describe("Policy.circuitBreaker", () => {
  it.scoped("opens after N failed connects; checkouts then fail at once with the driver's error", () =>
    Effect.gen(function*() {
      const { commands, db, events, pool, times } = yield* breakerPool()
      yield* db.down
      for (let i = 1; i <= 3; i++) {
        const exit = yield* failedCheckout(pool)
        assert.isTrue(Exit.isFailure(exit))
        assert.strictEqual(yield* commands.failures, i)
      }
      assert.strictEqual(yield* commands.state, "open")
      assert.deepStrictEqual(events.map((e) => [e.state, e.failures]), [["open", 3]])
      assert.strictEqual((events[0]!.cause as any)?._tag, "Fail")

      // no clock advance: refused on the spot, not after the 30-second timeout
      const attempts = (yield* db.stats).connectAttempts
      const error = yield* Effect.flip(Pool.use(pool, () => Effect.void))
      assert.instanceOf(error, PoolUnavailableError)
      const unavailable = error as PoolUnavailableError
      assert.strictEqual(unavailable.failures, 3)
      assert.strictEqual((unavailable.cause as MemoryError)._tag, "MemoryError")
      assert.strictEqual((unavailable.cause as MemoryError).reason, "ConnectRefused")
      assert.strictEqual(unavailable.retryAt, times[0]! + 5000, "the probe is due 5 seconds after it opened")
      assert.strictEqual((yield* db.stats).connectAttempts, attempts, "a refused checkout starts no connect")
      const stats = yield* Pool.stats(pool)
      assert.strictEqual(stats.waiting, 0)
      assert.strictEqual(stats.timeouts, 0)
    }))

  it.scoped("counts consecutive failures only: a success in between resets the count", () =>
    Effect.gen(function*() {
      const { commands, db, events, pool } = yield* breakerPool({ size: 1 })
      yield* db.down
      yield* failedCheckout(pool)
      yield* failedCheckout(pool)
      assert.strictEqual(yield* commands.failures, 2)
      yield* db.up
      assert.isTrue(Exit.isSuccess(yield* failedCheckout(pool)))
      assert.strictEqual(yield* commands.failures, 0)
      assert.strictEqual(yield* commands.state, "closed")
      assert.deepStrictEqual(events, [], "never opened, so nothing to close")
    }))

  it.scoped("still lends idle connections while open, and waits for a return when every slot is open", () =>
    Effect.gen(function*() {
      const { commands, db, pool } = yield* breakerPool({ size: 2, min: 1 })
      yield* settle
      assert.strictEqual((yield* Pool.stats(pool)).idle, 1)
      yield* db.down
      // hold the one open connection, so the next checkouts must connect
      const release = yield* Deferred.make<void>()
      const holder = yield* Effect.fork(Pool.use(pool, () => Deferred.await(release)))
      yield* settle
      for (let i = 0; i < 3; i++) yield* failedCheckout(pool)
      assert.strictEqual(yield* commands.state, "open")
      const refused = yield* Effect.flip(Pool.use(pool, () => Effect.void))
      assert.strictEqual(refused._tag, "PoolUnavailableError")
      // back in the pool: lent while the breaker is open, without a connect
      yield* Deferred.succeed(release, undefined)
      yield* Fiber.join(holder)
      assert.strictEqual(yield* Pool.use(pool, (c) => Effect.succeed(c.id)), 1)
      assert.strictEqual(yield* commands.state, "open")
    }))

  it.scoped("probes once per step of its schedule, and the first success closes it: open, halfOpen, closed", () =>
    Effect.gen(function*() {
      const { commands, db, events, pool, times } = yield* breakerPool()
      yield* db.down
      for (let i = 0; i < 3; i++) yield* failedCheckout(pool)
      assert.strictEqual(yield* commands.state, "open")
      const attempts = (yield* db.stats).connectAttempts
      const attemptsNow = Effect.map(db.stats, (s) => s.connectAttempts - attempts)

      // the first probe is due 5 seconds after it opened
      yield* TestClock.adjust(times[0]! + 4999 - (yield* Clock.currentTimeMillis))
      yield* settle
      assert.strictEqual(yield* attemptsNow, 0, "nothing before the probe is due")
      yield* TestClock.adjust("1 millis")
      yield* settle
      assert.strictEqual(yield* attemptsNow, 1, "exactly one probe connect")
      assert.strictEqual(yield* commands.state, "open", "the probe failed: open again")
      assert.deepStrictEqual(events.map((e) => e.state), ["open", "halfOpen", "open"])
      assert.strictEqual(events[2]!.failures, 4)

      yield* TestClock.adjust("5 seconds")
      yield* settle
      assert.strictEqual(yield* attemptsNow, 2)
      yield* db.up
      yield* TestClock.adjust("5 seconds")
      yield* settle
      assert.strictEqual(yield* attemptsNow, 3)
      assert.strictEqual(yield* commands.state, "closed")
      assert.strictEqual(yield* commands.failures, 0)
      assert.deepStrictEqual(events.map((e) => e.state), [
        "open",
        "halfOpen",
        "open",
        "halfOpen",
        "open",
        "halfOpen",
        "closed"
      ])
      // the probe's connection went to the pool: the next checkout takes it
      assert.strictEqual((yield* Pool.stats(pool)).idle, 1)
      yield* Pool.use(pool, () => Effect.void)
      assert.strictEqual(yield* attemptsNow, 3)
      // and a checkout that has to connect works again
      yield* Effect.all([Pool.use(pool, () => Effect.sleep("1 millis")), Pool.use(pool, () => Effect.void)], {
        concurrency: "unbounded"
      }).pipe(Effect.fork, Effect.tap(() => TestClock.adjust("1 millis")), Effect.flatMap(Fiber.join))
      // nothing probes once closed
      const before = (yield* db.stats).connectAttempts
      yield* TestClock.adjust("1 minute")
      yield* settle
      assert.strictEqual((yield* db.stats).connectAttempts, before)
    }))

  it.scoped("closes on the pool's own connect refilling min, without waiting for the probe", () =>
    Effect.gen(function*() {
      const { commands, db, events, pool } = yield* breakerPool(
        { min: 1 },
        Policy.circuitBreaker({ failures: 3, probe: "1 hour" })
      )
      yield* db.down
      yield* Pool.invalidateAll(pool)
      yield* settle
      // the refill to min retries on the pool's backoff (100 ms), and each failure counts
      for (let i = 0; i < 3 && (yield* commands.state) === "closed"; i++) {
        yield* TestClock.adjust("100 millis")
        yield* settle
      }
      assert.strictEqual(yield* commands.state, "open")
      yield* db.up
      yield* TestClock.adjust("100 millis")
      yield* settle
      assert.strictEqual(yield* commands.state, "closed")
      assert.deepStrictEqual(events.map((e) => e.state), ["open", "closed"])
      yield* Pool.use(pool, () => Effect.void)
    }))

  it.scoped("counts a connect cut off by connectTimeout as a failure, with the timeout as its cause", () =>
    Effect.gen(function*() {
      const { commands, db, pool } = yield* breakerPool({ connectTimeout: "200 millis" })
      yield* db.hangNextConnects(3)
      for (let i = 0; i < 3; i++) yield* failedCheckout(pool)
      assert.strictEqual(yield* commands.state, "open")
      const error = yield* Effect.flip(Pool.use(pool, () => Effect.void))
      assert.strictEqual(error._tag, "PoolUnavailableError")
      const cause = (error as PoolUnavailableError).cause as { _tag: string; phase: string }
      assert.deepStrictEqual([cause._tag, cause.phase], ["PoolTimeoutError", "connect"])
    }))

  it.scoped("never counts the connects the pool's shutdown interrupts", () =>
    Effect.gen(function*() {
      const breaker: Breaker = Policy.circuitBreaker({ failures: 1 })
      const scope = yield* Scope.make()
      const { db, pool } = yield* Scope.extend(memoryPool({ size: 1, min: 1, policies: [breaker] }), scope)
      const commands = yield* Pool.policy(pool, breaker)
      yield* db.hangNextConnects(1)
      yield* Pool.invalidateAll(pool)
      yield* settle
      assert.strictEqual((yield* Pool.stats(pool)).opening, 1)
      yield* Scope.close(scope, Exit.void)
      assert.strictEqual(yield* commands.failures, 0)
      assert.strictEqual(yield* commands.state, "closed")
    }))

  it.scoped("uses the default probe schedule: about 1 second after opening, then doubling", () =>
    Effect.gen(function*() {
      const { commands, db, events, pool, times } = yield* breakerPool({}, Policy.circuitBreaker({ failures: 1 }))
      yield* db.down
      const fiber = yield* Effect.fork(Pool.use(pool, () => Effect.void))
      yield* settle
      yield* Fiber.await(fiber)
      assert.strictEqual(yield* commands.state, "open")
      for (let t = 0; t < 40_000 && events.filter((e) => e.state === "halfOpen").length < 5; t += 50) {
        yield* TestClock.adjust("50 millis")
        yield* settle
      }
      // the halfOpen events are the probes: 1 s, 2 s, 4 s, 8 s, 16 s apart, each jittered by ±20 %
      const probes = times.filter((_, i) => events[i]!.state === "halfOpen")
      const gaps = probes.map((t, i) => t - (i === 0 ? times[0]! : probes[i - 1]!))
      assert.strictEqual(gaps.length, 5)
      for (const [i, base] of [1000, 2000, 4000, 8000, 16000].entries()) {
        assert.isAtLeast(gaps[i]!, base * 0.8 - 50, `gap ${i}: ${gaps}`)
        assert.isAtMost(gaps[i]!, base * 1.2 + 50, `gap ${i}: ${gaps}`)
      }
    }))

  it.scoped("caps the default probe schedule at 30 seconds", () =>
    Effect.gen(function*() {
      const { db, events, pool, times } = yield* breakerPool({}, Policy.circuitBreaker({ failures: 1 }))
      yield* db.down
      const fiber = yield* Effect.fork(Pool.use(pool, () => Effect.void))
      yield* settle
      yield* Fiber.await(fiber)
      for (let t = 0; t < 300_000 && events.filter((e) => e.state === "halfOpen").length < 9; t += 1000) {
        yield* TestClock.adjust("1 second")
        yield* settle
      }
      const probes = times.filter((_, i) => events[i]!.state === "halfOpen")
      const late = probes.slice(6).map((t, i) => t - probes[i + 5]!)
      // past 32 s the exponential is capped: 30 s ± 20 % (measured to the second)
      for (const gap of late) {
        assert.isAtLeast(gap, 24_000 - 1000)
        assert.isAtMost(gap, 36_000 + 1000)
      }
    }))
})
