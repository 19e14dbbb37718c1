/**
 * Creating a pool and the three ways to borrow from it: `use` (the fast path), `get` (scoped) and `transaction`,
 * then the pool's `status` and `stats`. Run it with `npx tsx examples/pool-basics.ts`.
 */
import { Effect } from "effect"
import * as Memory from "../src/Driver/Memory.js"
import * as Pool from "../src/Pool.js"

export const program = Effect.gen(function*() {
  const db = yield* Memory.make()
  const pool = yield* Pool.make({ driver: db.driver, name: "basics", size: 2, maxOverflow: 1 })

  // use: checkout, run, return, however the function ends; no Scope needed
  const rows = yield* Pool.use(pool, (connection) => db.driver.query(connection, "SELECT 1"))

  // get: the connection is lent for the life of the enclosing scope
  const sameConnection = yield* Effect.scoped(
    Effect.gen(function*() {
      const connection = yield* Pool.get(pool)
      yield* db.driver.query(connection, "SELECT 1")
      return connection.id
    })
  )

  // transaction: BEGIN, then COMMIT on success or ROLLBACK on failure or interruption
  yield* Pool.transaction(pool, (connection) => db.driver.query(connection, "INSERT INTO orders VALUES (1)"))
  const failed = yield* Effect.either(
    Pool.transaction(pool, (connection) =>
      Effect.zipRight(
        db.driver.query(connection, "INSERT INTO orders VALUES (2)"),
        Effect.fail("out of stock" as const)
      ))
  )

  const status = yield* Pool.status(pool)
  const stats = yield* Pool.stats(pool)
  return {
    rows,
    sameConnection,
    failed: failed._tag,
    committed: yield* db.committed,
    status,
    stats: { open: stats.open, idle: stats.idle, checkouts: stats.checkouts, opened: stats.opened }
  }
}).pipe(Effect.scoped)

if (import.meta.url === `file://${process.argv[1]}`) {
  Effect.runPromise(program).then(console.log, (error) => {
    console.error(error)
    process.exit(1)
  })
}
