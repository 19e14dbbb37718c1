/**
 * Every error a pool can fail with, provoked one by one and told apart by `_tag` (or with `Effect.catchTags`).
 * Runs under `TestClock`: `npx tsx examples/errors.ts`.
 */
import { Effect, Exit, Fiber, Scope, TestClock, TestContext } from "effect"
import * as Memory from "../src/Driver/Memory.js"
import * as Pool from "../src/Pool.js"
import { ConnectionRejected, isPoolError } from "../src/PoolError.js"

export const program = Effect.gen(function*() {
  const db = yield* Memory.make()
  const scope = yield* Scope.make()
  const pool = yield* Pool.make({
    driver: db.driver,
    name: "errors",
    size: 1,
    maxOverflow: 0,
    timeout: "1 second",
    maxWaiters: 1,
    maxCheckoutAttempts: 2
  }).pipe(Scope.extend(scope))
  const seen: Record<string, string> = {}

  // PoolConfigError: every problem in one error
  const config = yield* Effect.flip(Effect.scoped(Pool.make({ driver: db.driver, size: 0, maxOverflow: 0 })))
  seen[config._tag] = config.problems.join("; ")

  // the driver's own error: a failed connect reaches the checkout that asked for it
  yield* db.failNextConnects(1)
  const refused = yield* Effect.flip(Pool.use(pool, () => Effect.void))
  seen[refused._tag] = refused.message
  // after a failed connect the next one waits on the pool's backoff schedule (virtual time here)
  yield* TestClock.adjust("1 second")

  // PoolTimeoutError (phase "wait") and PoolExhaustedError (maxWaiters: 1)
  const held = yield* Pool.checkout(pool)
  const waiter = yield* Effect.fork(Effect.flip(Pool.use(pool, () => Effect.void)))
  yield* Effect.yieldNow()
  const exhausted = yield* Effect.flip(Pool.use(pool, () => Effect.void))
  seen[exhausted._tag] = exhausted.message
  yield* TestClock.adjust("1 second")
  const timeout = yield* Fiber.join(waiter)
  seen[timeout._tag] = timeout.message

  // PoolUsageError: a lease returned twice, a connection the pool never lent, detaching an idle connection
  yield* Pool.checkin(pool, held)
  const twice = yield* Effect.flip(Pool.checkin(pool, held))
  const foreign = yield* Effect.flip(Pool.invalidate(pool, { not: "ours" } as unknown as Memory.MemoryConnection))
  const idle = held.connection
  const notLent = yield* Effect.flip(Effect.scoped(Pool.detach(pool, idle)))
  seen[twice._tag] = [twice, foreign, notLent].map((error) => `${error.reason} (${error.operation})`).join(", ")

  // PoolCheckoutRejectedError: every connection rejected at checkout, maxCheckoutAttempts times in a row
  const rejecting = yield* Scope.make()
  yield* Pool.listen(pool, { checkout: () => Effect.fail(new ConnectionRejected({ reason: "maintenance" })) }).pipe(
    Scope.extend(rejecting)
  )
  const rejected = yield* Effect.flip(Pool.use(pool, () => Effect.void))
  seen[rejected._tag] = rejected.message
  yield* Scope.close(rejecting, Exit.void)

  // PoolClosedError: the pool's scope has closed
  yield* Scope.close(scope, Exit.void)
  const closed = yield* Effect.flip(Pool.use(pool, () => Effect.void))
  seen[closed._tag] = closed.message

  // handling: catchTags on the pool's errors; the driver's own (MemoryError) is left in the error channel
  const handled = yield* Pool.use(pool, () => Effect.succeed("ran")).pipe(
    Effect.catchTags({
      PoolClosedError: () => Effect.succeed("the pool is closed"),
      PoolTimeoutError: (error) => Effect.succeed(`busy: ${error.stats.waiting} waiting`)
    })
  )

  return { seen, isPoolError: [isPoolError(closed), isPoolError(refused)], handled }
}).pipe(Effect.provide(TestContext.TestContext))

if (import.meta.url === `file://${process.argv[1]}`) {
  Effect.runPromise(program).then(console.log, (error) => {
    console.error(error)
    process.exit(1)
  })
}
