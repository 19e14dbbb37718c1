/**
 * The return policies against the Memory database under `TestClock`: `resetOnReturn` ends what a borrower left open
 * (rolled back, or committed when the borrower succeeded), a reset that hangs is cut by its timeout and the
 * connection closed, and `prepareOnReturn` begins a transaction on every returned connection off the borrower's
 * path (Spanner's `TransactionPingingPool`), at once or, with `pending`, on the `beginPending` command. Run it with
 * `npx tsx examples/policy-reset.ts`.
 */
import { Effect, Fiber, TestClock, TestContext } from "effect"
import * as Memory from "../src/Driver/Memory.js"
import * as Policy from "../src/Policy.js"
import * as Pool from "../src/Pool.js"

type C = Memory.MemoryConnection
type E = Memory.MemoryError

/** A borrower that opens a transaction, writes, and returns without committing: `fail` makes its work fail. */
const leaveOpen = (db: Memory.MemoryDatabase, row: number, fail = false) => (c: C) =>
  Effect.zipRight(
    Effect.zipRight(db.driver.query(c, "BEGIN"), db.driver.query(c, `INSERT INTO orders VALUES (${row})`)),
    fail ? Effect.fail("the borrower's work failed") : Effect.void
  )

export const program = Effect.gen(function*() {
  // resetOnReturn("commit"): what a borrower that succeeded left open is committed; a failed one's is rolled back
  const db = yield* Memory.make()
  const commitPool = yield* Pool.make({
    driver: db.driver,
    name: "reset-commit",
    size: 1,
    policies: [Policy.resetOnReturn("commit", { timeout: "2 seconds" })]
  })
  const resets: Array<string> = []
  yield* Pool.listen(commitPool, { reset: (event) => Effect.sync(() => resets.push(event.method)) })
  yield* Pool.use(commitPool, leaveOpen(db, 1))
  yield* Effect.either(Pool.use(commitPool, leaveOpen(db, 2, true)))
  const committed = yield* db.committed

  // a reset that hangs (every statement now takes a minute) is cut after 2 seconds: the connection is closed
  const hanging = yield* Effect.fork(
    Pool.use(commitPool, (c) => Effect.zipRight(db.driver.query(c, "BEGIN"), db.setLatency({ query: "1 minute" })))
  )
  yield* TestClock.adjust("2 seconds")
  yield* Fiber.join(hanging)
  yield* db.setLatency({ query: 0 })
  const afterHang = yield* Pool.stats(commitPool)

  // prepareOnReturn: every connection is lent with a transaction already begun; the default reset ends what the
  // borrower left in it before the next one begins (return hooks first, then the preparation)
  const db2 = yield* Memory.make()
  const begin = Policy.prepareOnReturn<C, E>((c) => db2.driver.begin(c), { pending: "manual" })
  const pinging = yield* Pool.make({
    driver: db2.driver,
    name: "transaction-pinging",
    size: 2,
    min: 2,
    policies: [Policy.resetOnReturn("rollback"), begin]
  })
  const commands = yield* Pool.policy(pinging, begin)
  // fresh connections are prepared as they open: both idle ones hold a transaction
  const fresh = (yield* db2.stats).inTransaction
  const lentInTransaction = yield* Pool.use(pinging, (c) => Effect.succeed(c.inTransaction))
  yield* Pool.use(pinging, leaveOpen(db2, 3))
  // with pending: "manual" the returned connections wait (not lendable) until beginPending, or a checkout that
  // finds nothing idle
  const pending = yield* commands.pending
  const begun = yield* commands.beginPending

  return {
    committed,
    resets,
    afterHang: { closedBy: afterHang.closedBy, open: afterHang.open },
    prepare: {
      fresh,
      lentInTransaction,
      pending,
      begun,
      inTransaction: (yield* db2.stats).inTransaction,
      neverCommitted: (yield* db2.committed).length
    }
  }
}).pipe(Effect.scoped, Effect.provide(TestContext.TestContext))

if (import.meta.url === `file://${process.argv[1]}`) {
  Effect.runPromise(program).then(console.log, (error) => {
    console.error(error)
    process.exit(1)
  })
}
