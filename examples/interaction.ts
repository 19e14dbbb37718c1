/**
 * Twisted's `adbapi.ConnectionPool`, the Effect way: `runInteraction` (commit on success, rollback on failure),
 * `runQuery`, `runOperation`, `runWithConnection`, the `cp_*` options, `cp_reconnect`'s `ConnectionLost` and a retry,
 * a lost `COMMIT`, `connect` / `disconnect`, and the options' JSON round trip (Twisted pickles a pool). On the Memory
 * driver; run it with `npx tsx examples/interaction.ts`.
 */
import { Effect, Either } from "effect"
import * as Memory from "../src/Driver/Memory.js"
import * as Interaction from "../src/Interaction.js"
import * as Pool from "../src/Pool.js"

export const program = Effect.gen(function*() {
  const db = yield* Memory.make()
  // ConnectionPool("psycopg2", cp_min=1, cp_max=3, cp_reconnect=True, cp_openfun=...)
  const dbpool = yield* Interaction.make(db.driver, {
    name: "orders",
    cp_min: 1,
    cp_max: 3,
    cp_reconnect: true,
    cp_openfun: ["SET timezone = 'UTC'"]
  })
  yield* dbpool.start

  // runInteraction: a transaction, committed when the work succeeds...
  yield* dbpool.runInteraction((txn) =>
    Effect.gen(function*() {
      yield* txn.execute("INSERT INTO orders VALUES (1)")
      yield* txn.execute("INSERT INTO order_lines VALUES (1, 'tea')")
    })
  )
  // ...and rolled back when it fails
  const failed = yield* Effect.flip(
    dbpool.runInteraction((txn) =>
      Effect.zipRight(txn.execute("INSERT INTO orders VALUES (2)"), Effect.fail("out of stock" as const))
    )
  )

  // runQuery answers rows, runOperation nothing; cp_openfun ran on the connection
  const timezone = yield* dbpool.runQuery("SHOW timezone")
  yield* dbpool.runOperation("INSERT INTO orders VALUES (3)")

  // cp_reconnect: the connection dies during the work; the pool invalidates it and says the work may be retried
  const work = dbpool.runInteraction((txn) => txn.execute("INSERT INTO orders VALUES (4)"))
  const [connection] = yield* db.connections
  yield* db.kill(connection!, { notify: false })
  const lost = yield* Effect.flip(dbpool.runInteraction((txn) => txn.execute("INSERT INTO orders VALUES (4)")))
  const retried = lost._tag === "ConnectionLost" && lost.retryable ? yield* Effect.as(work, "retried") : "not retried"

  // a connection lost while COMMIT is in flight: neither committed nor rolled back, as far as anyone here knows
  const unknown = yield* Effect.flip(dbpool.runInteraction((txn) =>
    Effect.zipRight(
      txn.execute("INSERT INTO orders VALUES (5)"),
      db.applyPlan({ connects: [], queries: ["disconnect"], slowMillis: 0 })
    )
  ))

  // connect / disconnect: a manual checkout and an invalidating return
  const manual = yield* dbpool.connect
  yield* dbpool.disconnect(manual)

  // __getstate__ / __setstate__: the options as JSON, and the same pool rebuilt from them
  const json = JSON.stringify(Either.getOrThrow(Interaction.toJSON(dbpool)))
  const rebuilt = yield* Interaction.fromJSON(db.driver, JSON.parse(json))

  return {
    committed: yield* db.committed,
    failed,
    timezone,
    lost: { tag: lost._tag, retryable: lost._tag === "ConnectionLost" && lost.retryable, retried },
    unknown: unknown._tag,
    manualClosed: manual.closed,
    json: JSON.parse(json) as Interaction.InteractionConfigEncoded,
    sameConfig: JSON.stringify(Pool.config(rebuilt.pool)) === JSON.stringify(Pool.config(dbpool.pool))
  }
}).pipe(Effect.scoped)

if (import.meta.url === `file://${process.argv[1]}`) {
  Effect.runPromise(program).then(console.log, (error) => {
    console.error(error)
    process.exit(1)
  })
}
