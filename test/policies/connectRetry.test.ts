/**
 * Connect retry under `TestClock` against a Memory database that is down: connects follow the schedule, one at a
 * time however many checkouts wait, none spins, each waiter gets the real connect error (its own connect's, or as
 * the cause of its timeout), and once the database is back the next connect succeeds and every waiter is served.
 */
import { assert, describe, it } from "@effect/vitest"
import { Clock, type Duration, Effect, Exit, Fiber, Schedule, TestClock } from "effect"
import * as Memory from "../../src/Driver/Memory.js"
import { type MemoryConnection, MemoryError } from "../../src/Driver/Memory.js"
import * as Policy from "../../src/Policy.js"
import * as Pool from "../../src/Pool.js"
import { PoolTimeoutError } from "../../src/PoolError.js"
import { memoryPool, settle, uniqueName } from "../utils/pool.js"

/** Forks `n` checkouts. */
const waiters = (pool: Pool.Pool<MemoryConnection, MemoryError>, n: number, timeout: Duration.DurationInput) =>
  Effect.forEach(Array.from({ length: n }), () => Effect.fork(Pool.use(pool, (c) => Effect.succeed(c.id), { timeout })))

/** The failure a checkout ended with. */
const failureOf = (exit: Exit.Exit<unknown, unknown>): unknown =>
  Exit.isFailure(exit) && exit.cause._tag === "Fail" ? exit.cause.error : undefined

describe("Policy.connectRetry", () => {
  it.scoped("connects once per step of its schedule while the database is down, however many wait", () =>
    Effect.gen(function*() {
      const { db, pool } = yield* memoryPool({
        size: 10,
        policies: [Policy.connectRetry(Schedule.spaced("1 second"))]
      })
      yield* db.down
      const fibers = yield* waiters(pool, 30, "10500 millis")
      yield* settle
      const attempts = Effect.map(db.stats, (s) => s.connectAttempts)
      assert.strictEqual(yield* attempts, 1, "one connect, not one per waiter")
      for (let second = 1; second <= 10; second++) {
        yield* TestClock.adjust("999 millis")
        yield* settle
        assert.strictEqual(yield* attempts, second, `nothing before second ${second}: no spinning`)
        yield* TestClock.adjust("1 millis")
        yield* settle
        assert.strictEqual(yield* attempts, second + 1, `exactly one at second ${second}`)
      }
      yield* TestClock.adjust("500 millis")
      const exits = yield* Effect.forEach(fibers, Fiber.await)
      const errors = exits.map(failureOf)
      // each connect failed for the waiter it was made for: that waiter got the driver's error itself
      const own = errors.filter((e) => e instanceof MemoryError) as Array<MemoryError>
      assert.strictEqual(own.length, 11)
      for (const error of own) assert.strictEqual(error.reason, "ConnectRefused")
      // the rest waited until their deadline, and their timeout carries the real connect error as its cause
      const timedOut = errors.filter((e) => e instanceof PoolTimeoutError) as Array<PoolTimeoutError>
      assert.strictEqual(timedOut.length, 19)
      for (const error of timedOut) {
        assert.strictEqual(error.phase, "wait")
        assert.instanceOf(error.cause, MemoryError)
        assert.strictEqual((error.cause as MemoryError).reason, "ConnectRefused")
        assert.include(error.message, "connection refused: the server is down")
      }
      // nobody waits: nothing connects
      yield* TestClock.adjust("1 minute")
      yield* settle
      assert.strictEqual(yield* attempts, 11)
    }))

  it.scoped("after the database comes back, the next connect after the delay succeeds and every waiter is served", () =>
    Effect.gen(function*() {
      const { db, pool } = yield* memoryPool({
        size: 10,
        policies: [Policy.connectRetry(Schedule.spaced("1 second"))]
      })
      yield* db.down
      const fibers = yield* waiters(pool, 10, "30 seconds")
      yield* settle
      yield* TestClock.adjust("2500 millis")
      yield* settle
      assert.strictEqual((yield* db.stats).connectAttempts, 3)
      yield* db.up
      yield* TestClock.adjust("499 millis")
      yield* settle
      assert.strictEqual((yield* db.stats).opened, 0, "the delay still runs")
      yield* TestClock.adjust("1 millis")
      yield* settle
      // the next connect succeeds, and the hold ends: a connect for each of the 7 waiters left, at once
      assert.strictEqual((yield* db.stats).opened, 7)
      assert.strictEqual((yield* db.stats).connectAttempts, 3 + 7)
      yield* TestClock.adjust("10 millis")
      const exits = yield* Effect.forEach(fibers, Fiber.await)
      // the three whose connects failed got the driver's error; every other waiter was served
      assert.strictEqual(exits.filter((e) => failureOf(e) instanceof MemoryError).length, 3)
      assert.strictEqual(exits.filter(Exit.isSuccess).length, 7)
      const stats = yield* Pool.stats(pool)
      assert.isFalse(stats.backingOff)
      assert.deepStrictEqual([stats.waiting, stats.timeouts, stats.connectFailures], [0, 0, 3])
    }))

  it.scoped("takes a Duration as Schedule.spaced", () =>
    Effect.gen(function*() {
      const { db, pool } = yield* memoryPool({ min: 1, policies: [Policy.connectRetry("250 millis")] })
      yield* db.down
      yield* Pool.invalidateAll(pool)
      yield* settle
      const before = (yield* db.stats).connectAttempts
      yield* TestClock.adjust("1 second")
      yield* settle
      assert.strictEqual((yield* db.stats).connectAttempts - before, 4)
    }))

  it.scoped("by default backs off exponentially from 100 ms, jittered, capped at 10 seconds", () =>
    Effect.gen(function*() {
      const db = yield* Memory.make()
      yield* db.down
      // the test-clock time of every connect attempt, read by a connect wrap
      const times: Array<number> = []
      const clock = Policy.make<MemoryConnection, MemoryError>({
        name: "attemptClock",
        connect: (open) =>
          Effect.zipRight(Effect.flatMap(Clock.currentTimeMillis, (now) => Effect.sync(() => times.push(now))), open)
      })
      // the refill to `min` retries on its own, with nobody waiting
      yield* Pool.make({
        name: uniqueName("retry-default"),
        driver: db.driver,
        min: 1,
        policies: [clock, Policy.connectRetry()]
      })
      // each gap is awaited in steps of a hundredth of its expected length: that is the precision of the check
      const step = (i: number) => Math.max(10, Math.min(100 * 2 ** i, 10_000) / 100)
      for (let i = 0; i < 10; i++) {
        const seen = times.length
        for (let elapsed = 0; elapsed < 20_000 && times.length === seen; elapsed += step(i)) {
          yield* TestClock.adjust(step(i))
          yield* settle
        }
      }
      const gaps = times.slice(1).map((t, i) => t - times[i]!)
      assert.strictEqual(gaps.length, 10)
      // 100, 200, 400, ... ms ± 20 %, and never more than 10 s ± 20 %
      for (const [i, gap] of gaps.entries()) {
        const base = Math.min(100 * 2 ** i, 10_000)
        assert.isAtLeast(gap, base * 0.8 - step(i), `gap ${i}: ${gaps}`)
        assert.isAtMost(gap, base * 1.2 + step(i), `gap ${i}: ${gaps}`)
      }
      assert.deepStrictEqual(gaps.slice(8).map((gap) => gap > 6400 * 1.2 + 100), [true, true], "capped")
      assert.strictEqual((yield* db.stats).connectAttempts, times.length)
    }))
})
