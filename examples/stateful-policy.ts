/**
 * A stateful policy: `Policy.stateful` builds one instance per pool, in that pool's scope, with state of its own and
 * commands users reach through `Pool.policy`. This one wraps every connect (`connect`) to count attempts and
 * failures, and gives the pool its `connectBackoff` schedule. Runs under `TestClock`:
 * `npx tsx examples/stateful-policy.ts`.
 */
import { Effect, Fiber, Ref, Schedule, TestClock, TestContext } from "effect"
import * as Memory from "../src/Driver/Memory.js"
import * as Policy from "../src/Policy.js"
import * as Pool from "../src/Pool.js"

/** What the policy's command reports, per pool. */
export interface ConnectReport {
  readonly attempts: number
  readonly failures: number
}

/** A recipe: each pool made with it gets its own counters, and its own `report` command. */
export const connectLog = <C, E>() =>
  Policy.stateful<C, E, { readonly report: Effect.Effect<ConnectReport> }>("connectLog", () =>
    Effect.gen(function*() {
      const attempts = yield* Ref.make(0)
      const failures = yield* Ref.make(0)
      return {
        // wraps every connect, whoever asked for it: a waiter, a refill to `min`, a replacement
        connect: (open) =>
          Effect.zipRight(
            Ref.update(attempts, (n) => n + 1),
            Effect.tapError(open, () => Ref.update(failures, (n) => n + 1))
          ),
        // after a failed connect: 1 s, then 2 s, 4 s, ... never more than 5 s; a success starts it over
        connectBackoff: Schedule.exponential("1 second").pipe(Schedule.union(Schedule.spaced("5 seconds"))),
        commands: { report: Effect.all({ attempts: Ref.get(attempts), failures: Ref.get(failures) }) }
      }
    }))

export const program = Effect.gen(function*() {
  const db = yield* Memory.make()
  // one recipe value, two pools: each has its own instance, so they share no counters
  const log = connectLog<Memory.MemoryConnection, Memory.MemoryError>()
  const orders = yield* Pool.make({ driver: db.driver, name: "stateful-orders", size: 1, policies: [log] })
  const reports = yield* Pool.make({ driver: db.driver, name: "stateful-reports", size: 1, policies: [log] })
  const plain = yield* Pool.make({ driver: db.driver, name: "stateful-plain", size: 1 })

  // the first connect fails: the checkout that asked for it gets the driver's own error
  yield* db.failNextConnects(1)
  const refused = yield* Effect.flip(Pool.use(orders, () => Effect.void))
  const backingOff = (yield* Pool.stats(orders)).backingOff

  // the next connect waits on the policy's schedule: nothing before 1 second, then one probe that succeeds
  const next = yield* Effect.fork(Pool.use(orders, (connection) => Effect.succeed(connection.id)))
  yield* TestClock.adjust("999 millis")
  const servedEarly = (yield* Fiber.poll(next))._tag === "Some"
  yield* TestClock.adjust("1 millis")
  const servedBy = yield* Fiber.join(next)

  yield* Pool.use(reports, () => Effect.void)

  // commands, by the recipe value: each pool answers for its own instance
  const ordersLog = yield* Pool.policy(orders, log)
  const reportsLog = yield* Pool.policy(reports, log)
  const notInstalled = yield* Effect.flip(Pool.policy(plain, log))

  return {
    refused: refused._tag,
    backingOff,
    servedEarly,
    servedBy,
    backingOffAfter: (yield* Pool.stats(orders)).backingOff,
    orders: yield* ordersLog.report,
    reports: yield* reportsLog.report,
    notInstalled: notInstalled.message
  }
}).pipe(Effect.scoped, Effect.provide(TestContext.TestContext))

if (import.meta.url === `file://${process.argv[1]}`) {
  Effect.runPromise(program).then(console.log, (error) => {
    console.error(error)
    process.exit(1)
  })
}
