/**
 * Leak detection against the Memory database under `TestClock`: a borrower that holds its connection past the
 * threshold is reported with the fiber that holds it and the span it checked out in, `Unleaked` when it gives the
 * connection back; with `reclaim`, the holder is interrupted and the connection closed, and the pool serves on.
 * Run it with `npx tsx examples/policy-leaks.ts`.
 */
import { Deferred, Effect, Exit, Fiber, TestClock, TestContext } from "effect"
import * as Memory from "../src/Driver/Memory.js"
import * as Policy from "../src/Policy.js"
import * as Pool from "../src/Pool.js"

type Connection = Memory.MemoryConnection

/** A pool with `detector`, and a line per `Leak` / `Unleaked` / `Close` it hears. */
const withDetector = (
  db: Memory.MemoryDatabase,
  name: string,
  detector: Policy.Policy<Connection, Memory.MemoryError, Policy.LeakCommands>
) =>
  Effect.gen(function*() {
    const pool = yield* Pool.make({ driver: db.driver, name, size: 1, maxOverflow: 0, policies: [detector] })
    const heard: Array<string> = []
    yield* Pool.listen(pool, {
      leak: (e) =>
        Effect.sync(() => heard.push(`Leak: ${e.holderId} held it ${e.heldMillis} ms, from ${e.trace ?? "no span"}`)),
      unleaked: (e) => Effect.sync(() => heard.push(`Unleaked after ${e.heldMillis} ms`)),
      close: (e) => Effect.sync(() => heard.push(`Close (${e.reason})`))
    })
    return { pool, heard } as const
  })

export const program = Effect.gen(function*() {
  const db = yield* Memory.make()

  // report only: the borrower keeps its connection, and gives it back in the end
  const detector = Policy.leakDetection<Connection, Memory.MemoryError>("10 seconds")
  const reported = yield* withDetector(db, "policy-leaks", detector)
  const done = yield* Deferred.make<void>()
  const slow = yield* Effect.fork(
    Pool.use(reported.pool, () => Deferred.await(done)).pipe(Effect.withSpan("nightly-report"))
  )
  yield* TestClock.adjust("12 seconds")
  // the command: who holds a connection past the threshold right now
  const { leaks } = yield* Pool.policy(reported.pool, detector)
  const heldNow = (yield* leaks).map((holder) => ({ since: holder.since, trace: holder.trace }))
  yield* Deferred.succeed(done, undefined)
  yield* Fiber.join(slow)

  // reclaim: the holder is interrupted and the connection closed
  const reclaiming = yield* withDetector(
    db,
    "policy-leaks-reclaim",
    Policy.leakDetection("5 seconds", { reclaim: true })
  )
  const stuck = yield* Effect.fork(Pool.use(reclaiming.pool, () => Effect.never))
  yield* TestClock.adjust("5 seconds")
  const exit = yield* Fiber.await(stuck)
  const after = yield* Pool.use(reclaiming.pool, (c) => db.driver.query(c, "SELECT 1"))
  const stats = yield* Pool.stats(reclaiming.pool)

  return {
    reported: reported.heard,
    heldNow,
    reclaimed: reclaiming.heard,
    holderInterrupted: Exit.isInterrupted(exit),
    servedAfter: after,
    closedBy: stats.closedBy
  }
}).pipe(Effect.scoped, Effect.provide(TestContext.TestContext))

if (import.meta.url === `file://${process.argv[1]}`) {
  Effect.runPromise(program).then(console.log, (error) => {
    console.error(error)
    process.exit(1)
  })
}
