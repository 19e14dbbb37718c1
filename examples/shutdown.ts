/**
 * What closing a pool's scope does, under `TestClock`: waiters and new checkouts fail with `PoolClosedError` at
 * once, lent connections close when returned, and whatever is still lent after `shutdownTimeout` is closed anyway. Run it with `npx tsx examples/shutdown.ts`.
 */
import { Effect, Exit, Fiber, Scope, TestClock, TestContext } from "effect"
import * as Memory from "../src/Driver/Memory.js"
import * as Pool from "../src/Pool.js"

export const program = Effect.gen(function*() {
  const db = yield* Memory.make()
  const scope = yield* Scope.make()
  const pool = yield* Pool.make({
    driver: db.driver,
    name: "shutdown",
    size: 2,
    maxOverflow: 0,
    shutdownTimeout: "10 seconds"
  }).pipe(Scope.extend(scope))

  // both connections are lent: one borrower returns in time, the other never does; a third checkout waits
  const returned = yield* Pool.checkout(pool)
  const kept = yield* Pool.checkout(pool)
  const waiter = yield* Effect.fork(Effect.flip(Pool.use(pool, () => Effect.void)))
  yield* Effect.yieldNow()

  const closing = yield* Effect.fork(Scope.close(scope, Exit.void))
  yield* Effect.yieldNow()
  const waiterError = yield* Fiber.join(waiter)
  const newCheckout = yield* Effect.flip(Pool.use(pool, () => Effect.void))
  const openWhileDraining = (yield* db.stats).open

  yield* Pool.checkin(pool, returned) // closed on return
  const openAfterReturn = (yield* db.stats).open
  yield* TestClock.adjust("10 seconds") // the deadline: `kept` is closed under its borrower
  yield* Fiber.join(closing)
  yield* Pool.checkin(pool, kept) // a late return is harmless

  const stats = yield* Pool.stats(pool)
  const server = yield* db.stats
  return {
    waiterError: waiterError._tag,
    newCheckout: newCheckout._tag,
    openWhileDraining,
    openAfterReturn,
    closedBy: stats.closedBy,
    isClosed: stats.isClosed,
    server: { open: server.open, closed: server.closed, closedTwice: server.closedTwice },
    keptIsClosed: kept.connection.closed
  }
}).pipe(Effect.provide(TestContext.TestContext))

if (import.meta.url === `file://${process.argv[1]}`) {
  Effect.runPromise(program).then(console.log, (error) => {
    console.error(error)
    process.exit(1)
  })
}
