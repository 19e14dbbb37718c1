/**
 * What a pool that is too small for its load looks like, against the Memory database under `TestClock`: five
 * borrowers that each hold a connection for two seconds on a pool of `size: 2, maxOverflow: 1`. Three are served at
 * once (the third by an overflow connection), two wait, and a sixth that may wait one second only fails with
 * `PoolTimeoutError`, whose message carries the pool's counters. When the load has passed, the overflow connection
 * is closed as it comes back to a full pool. Run it with `npx tsx examples/operating/sizing-signals.ts`.
 */
import { Clock, Effect, Fiber, TestClock, TestContext } from "effect"
import * as Memory from "../../src/Driver/Memory.js"
import * as Pool from "../../src/Pool.js"

export const program = Effect.gen(function*() {
  const db = yield* Memory.make()
  const pool = yield* Pool.make({ driver: db.driver, name: "orders", size: 2, maxOverflow: 1, timeout: "5 seconds" })

  // each borrower reports how long it waited for its connection
  const borrower = Effect.gen(function*() {
    const asked = yield* Clock.currentTimeMillis
    return yield* Pool.use(pool, () =>
      Effect.gen(function*() {
        const waited = (yield* Clock.currentTimeMillis) - asked
        yield* Effect.sleep("2 seconds")
        return waited
      }))
  })
  const borrowers = yield* Effect.fork(Effect.all(Array.from({ length: 5 }, () => borrower), { concurrency: 5 }))
  yield* TestClock.adjust("10 millis")
  const { idle, inUse, open, overflow, waiting } = yield* Pool.stats(pool)
  const underLoad = { open, inUse, idle, waiting, overflow }
  const underLoadStatus = yield* Pool.status(pool)

  // one more borrower, which may wait one second only
  const impatient = yield* Effect.fork(Effect.flip(Pool.use(pool, () => Effect.void, { timeout: "1 second" })))
  yield* TestClock.adjust("1 second")
  const timedOut = yield* Fiber.join(impatient)
  yield* TestClock.adjust("4 seconds")
  const waited = yield* Fiber.join(borrowers)

  const after = yield* Pool.stats(pool)
  return {
    underLoad,
    underLoadStatus,
    timedOut: timedOut.message,
    waitedMillis: waited,
    after: { open: after.open, idle: after.idle, closedBy: after.closedBy, timeouts: after.timeouts },
    status: yield* Pool.status(pool)
  }
}).pipe(Effect.scoped, Effect.provide(TestContext.TestContext))

if (import.meta.url === `file://${process.argv[1]}`) {
  Effect.runPromise(program).then(console.log, (error) => {
    console.error(error)
    process.exit(1)
  })
}
