/**
 * The built-in policies, each shown doing its job against the Memory database under `TestClock`: `resetOnReturn`,
 * `prePing`, `recycle`, `maxUses` and `onConnect`. Run it with `npx tsx examples/policies.ts`.
 */
import { Effect, TestClock, TestContext } from "effect"
import * as Memory from "../src/Driver/Memory.js"
import * as Policy from "../src/Policy.js"
import * as Pool from "../src/Pool.js"

export const program = Effect.gen(function*() {
  const db = yield* Memory.make()
  const pool = yield* Pool.make({
    driver: db.driver,
    name: "policies",
    size: 3,
    policies: [
      // onConnect: per-connection setup, once, before the connection is first lent
      Policy.onConnect<Memory.MemoryConnection, Memory.MemoryError>((connection) =>
        Effect.asVoid(db.driver.query(connection, "SET timezone = 'UTC'"))
      ),
      // onCheckout, in order: age, use count, then a liveness round trip
      Policy.recycle("30 minutes"),
      Policy.maxUses(100),
      Policy.prePing({ timeout: "2 seconds" }),
      // onReturn: roll back whatever the borrower left open
      Policy.resetOnReturn("rollback")
    ]
  })

  // onConnect ran before the first checkout
  const timezone = yield* Pool.use(pool, (c) => db.driver.query(c, "SHOW timezone"))

  // resetOnReturn: a borrower that leaves a transaction open does not pass it on
  yield* Pool.use(pool, (c) => db.driver.query(c, "BEGIN"))
  const idleInTransaction = (yield* db.stats).inTransaction

  // prePing: the server restarts while the connection is idle; the dead connection is never lent (pre-ping skips a
  // connection used within the last 500 ms, so the restart comes a second after the last use)
  yield* TestClock.adjust("1 second")
  yield* db.restart("0 millis", { notify: false })
  const afterRestart = yield* Pool.use(pool, (c) => db.driver.query(c, "SELECT 1"))

  // recycle: a connection older than 30 minutes is closed at checkout instead of lent
  const before = yield* Pool.use(pool, (c) => Effect.succeed(c.id))
  yield* TestClock.adjust("31 minutes")
  const after = yield* Pool.use(pool, (c) => Effect.succeed(c.id))

  // maxUses: a connection is lent at most n times, then closed at its next checkout
  const db2 = yield* Memory.make()
  const limited = yield* Pool.make({ driver: db2.driver, name: "policies-max-uses", policies: [Policy.maxUses(2)] })
  const ids = yield* Effect.forEach([1, 2, 3], () => Pool.use(limited, (c) => Effect.succeed(c.id)))

  const stats = yield* Pool.stats(pool)
  return {
    timezone: timezone[0]?.timezone,
    idleInTransaction,
    afterRestart,
    recycled: { before, after },
    maxUses: ids,
    closedBy: stats.closedBy,
    generation: stats.generation
  }
}).pipe(Effect.scoped, Effect.provide(TestContext.TestContext))

if (import.meta.url === `file://${process.argv[1]}`) {
  Effect.runPromise(program).then(console.log, (error) => {
    console.error(error)
    process.exit(1)
  })
}
