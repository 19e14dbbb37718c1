/**
 * Fairness and timeouts, under `TestClock` (no real waiting): waiters are served in arrival order by direct hand-off,
 * a checkout that waits past `timeout` fails with `PoolTimeoutError` (with the pool's stats, and the last connect
 * failure as its cause), and `maxWaiters` bounds the queue. Run it with `npx tsx examples/timeouts.ts`.
 */
import { Effect, Fiber, TestClock, TestContext } from "effect"
import * as Memory from "../src/Driver/Memory.js"
import * as Pool from "../src/Pool.js"

export const program = Effect.gen(function*() {
  const db = yield* Memory.make()
  const pool = yield* Pool.make({ driver: db.driver, name: "timeouts", size: 1, maxOverflow: 0, timeout: "1 second" })

  // FIFO: one connection, three waiters; each return goes straight to the oldest waiter
  const order: Array<string> = []
  const holder = yield* Pool.checkout(pool)
  const waiters = yield* Effect.forEach(
    ["a", "b", "c"],
    (name) =>
      Effect.fork(Pool.use(pool, () => Effect.sync(() => order.push(name)))).pipe(
        Effect.zipLeft(Effect.yieldNow())
      )
  )
  yield* Pool.checkin(pool, holder)
  yield* Effect.forEach(waiters, Fiber.join)

  // timeout: the only connection is lent for longer than the waiter may wait
  const busy = yield* Pool.checkout(pool)
  const waiting = yield* Effect.fork(Effect.flip(Pool.use(pool, () => Effect.void)))
  yield* TestClock.adjust("1 second")
  const timedOut = yield* Fiber.join(waiting)
  yield* Pool.checkin(pool, busy)

  // while connects fail, a timeout carries the last connect failure as its cause
  const down = yield* Pool.make({
    driver: db.driver,
    name: "timeouts-down",
    size: 1,
    maxOverflow: 1,
    timeout: "1 second"
  })
  const held = yield* Pool.checkout(down)
  yield* db.applyPlan({ connects: ["fail", "never"], queries: [], slowMillis: 0 })
  const first = yield* Effect.fork(Effect.flip(Pool.use(down, () => Effect.void)))
  const second = yield* Effect.fork(Effect.flip(Pool.use(down, () => Effect.void)))
  yield* TestClock.adjust("1 second")
  const connectError = yield* Fiber.join(first)
  const timeoutWithCause = yield* Fiber.join(second)
  yield* Pool.checkin(down, held)

  return {
    order,
    timedOut: { tag: timedOut._tag, message: timedOut.message },
    connectError: connectError._tag,
    timeoutWithCause: timeoutWithCause.message
  }
}).pipe(Effect.scoped, Effect.provide(TestContext.TestContext))

if (import.meta.url === `file://${process.argv[1]}`) {
  Effect.runPromise(program).then(console.log, (error) => {
    console.error(error)
    process.exit(1)
  })
}
