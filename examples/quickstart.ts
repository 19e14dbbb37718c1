/**
 * The quickstart: a pool over the simulated Memory database, 20 concurrent borrowers on 3 + 2 connections, then the
 * pool's status. Run it with `npm start`.
 */
import { Console, Effect } from "effect"
import * as Memory from "../src/Driver/Memory.js"
import * as Pool from "../src/Pool.js"

const program = Effect.gen(function*() {
  const db = yield* Memory.make({ connectLatency: "20 millis", queryLatency: "5 millis" })
  const pool = yield* Pool.make({
    driver: db.driver,
    name: "quickstart",
    size: 3,
    maxOverflow: 2,
    timeout: "2 seconds"
    // no policies listed: the defaults, recycle after 30 minutes, pre-ping, rollback on return
  })

  const results = yield* Effect.forEach(
    Array.from({ length: 20 }, (_, i) => i),
    (i) =>
      Pool.transaction(
        pool,
        (connection) => Effect.as(db.driver.query(connection, `INSERT INTO work VALUES (${i})`), connection.id)
      ),
    { concurrency: "unbounded" }
  )
  const used = new Set(results)
  yield* Console.log(`20 transactions ran on ${used.size} connections: ${[...used].sort().join(", ")}`)
  yield* Console.log(yield* Pool.status(pool))
  const stats = yield* Pool.stats(pool)
  yield* Console.log(`opened ${stats.opened}, closed ${stats.closed}, checkouts ${stats.checkouts}`)
  const server = yield* db.stats
  yield* Console.log(`server: ${server.open} open sessions, ${server.inTransaction} idle in transaction`)
  yield* Console.log(`committed ${(yield* db.committed).length} statements`)
})

Effect.runPromise(Effect.scoped(program)).catch((error) => {
  console.error(error)
  process.exit(1)
})
