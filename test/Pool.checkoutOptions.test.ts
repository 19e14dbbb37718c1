/**
 * The per-call `{ timeout }` option of `Pool.use` and `Pool.get` (DESIGN.md: "Deadlines are per checkout (a pool
 * default, overridable per call)"). Written against the rewritten core: on the old one this file does not type-check
 * (`use` takes no options, `get` takes only the pool) and its tests fail, since the option is ignored.
 */
import { assert, describe, it } from "@effect/vitest"
import { Cause, Deferred, Effect, Exit, Fiber, Option, TestClock } from "effect"
import type { MemoryConnection, MemoryError } from "../src/Driver/Memory.js"
import * as Pool from "../src/Pool.js"
import { memoryPool, settle } from "./utils/pool.js"

/** Holds the pool's only connection until the returned effect is run. */
const holdOnly = (pool: Pool.Pool<MemoryConnection, MemoryError>) =>
  Effect.gen(function*() {
    const release = yield* Deferred.make<void>()
    const got = yield* Deferred.make<void>()
    yield* Effect.forkScoped(
      Pool.use(pool, () => Effect.zipRight(Deferred.succeed(got, undefined), Deferred.await(release)))
    )
    yield* Deferred.await(got)
    return Deferred.succeed(release, undefined)
  })

const failureTag = <A, E>(exit: Option.Option<Exit.Exit<A, E>>): string | undefined =>
  Option.isNone(exit) || Exit.isSuccess(exit.value) ?
    undefined :
    Option.getOrUndefined(Cause.failureOption(exit.value.cause)) === undefined ?
    "not a failure" :
    String((Option.getOrThrow(Cause.failureOption(exit.value.cause)) as { _tag?: string })._tag)

describe("Pool per-call checkout options", () => {
  it.scoped("Pool.use with a shorter per-call timeout times out by its own deadline, before an earlier waiter", () =>
    Effect.gen(function*() {
      const { pool } = yield* memoryPool({ size: 1, maxOverflow: 0, timeout: "1 second", shutdownTimeout: "1 second" })
      const release = yield* holdOnly(pool)
      const patient = yield* Effect.fork(Pool.use(pool, () => Effect.succeed("patient")))
      yield* settle
      const hasty = yield* Effect.fork(Pool.use(pool, () => Effect.succeed("hasty"), { timeout: "100 millis" }))
      yield* settle
      yield* TestClock.adjust("99 millis")
      assert.isTrue(Option.isNone(yield* Fiber.poll(hasty)), "not before its deadline")
      yield* TestClock.adjust("1 millis")
      yield* settle
      const hastyExit = yield* Fiber.poll(hasty)
      assert.strictEqual(failureTag(hastyExit), "PoolTimeoutError", "the per-call timeout ends it at 100 ms")
      const error = Option.getOrThrow(
        Cause.failureOption((Option.getOrThrow(hastyExit) as Exit.Failure<string, any>).cause)
      )
      assert.strictEqual(error.timeoutMillis, 100)
      assert.isTrue(Option.isNone(yield* Fiber.poll(patient)), "the waiter with the pool's timeout still waits")
      yield* release
      assert.strictEqual(yield* Fiber.join(patient), "patient")
    }))

  it.scoped("Pool.get with a shorter per-call timeout times out by its own deadline, before an earlier waiter", () =>
    Effect.gen(function*() {
      const { pool } = yield* memoryPool({ size: 1, maxOverflow: 0, timeout: "1 second", shutdownTimeout: "1 second" })
      const release = yield* holdOnly(pool)
      const patient = yield* Effect.fork(Effect.scoped(Effect.as(Pool.get(pool), "patient")))
      yield* settle
      const hasty = yield* Effect.fork(Effect.scoped(Effect.as(Pool.get(pool, { timeout: "100 millis" }), "hasty")))
      yield* settle
      yield* TestClock.adjust("100 millis")
      yield* settle
      assert.strictEqual(
        failureTag(yield* Fiber.poll(hasty)),
        "PoolTimeoutError",
        "the per-call timeout ends it at 100 ms"
      )
      assert.isTrue(Option.isNone(yield* Fiber.poll(patient)), "the waiter with the pool's timeout still waits")
      yield* release
      assert.strictEqual(yield* Fiber.join(patient), "patient")
    }))

  it.scoped("a longer per-call timeout outlives the pool's timeout", () =>
    Effect.gen(function*() {
      const { pool } = yield* memoryPool({ size: 1, maxOverflow: 0, timeout: "1 second", shutdownTimeout: "1 second" })
      const release = yield* holdOnly(pool)
      const defaulted = yield* Effect.fork(Pool.use(pool, () => Effect.succeed("defaulted")))
      yield* settle
      const patient = yield* Effect.fork(Pool.use(pool, () => Effect.succeed("patient"), { timeout: "5 seconds" }))
      yield* settle
      yield* TestClock.adjust("1 second")
      yield* settle
      assert.strictEqual(
        failureTag(yield* Fiber.poll(defaulted)),
        "PoolTimeoutError",
        "the pool's timeout applies by default"
      )
      assert.isTrue(Option.isNone(yield* Fiber.poll(patient)), "the per-call 5 s timeout has not passed")
      yield* TestClock.adjust("3 seconds")
      yield* release
      assert.strictEqual(yield* Fiber.join(patient), "patient")
    }))
})
