/**
 * The "after" side of docs/migration/tarn.md: the same three pairs as `tarn.before.ts`, on effect-reservoir's pool
 * over the `Sqlite` driver (better-sqlite3 underneath). Run it with `npx tsx examples/migration/tarn.after.ts`.
 */
import { Data, Effect, Either } from "effect"
import * as Sqlite from "../../src/Driver/Sqlite.js"
import * as Policy from "../../src/Policy.js"
import * as Pool from "../../src/Pool.js"
import { ConnectionRejected } from "../../src/PoolError.js"
import * as Bank from "./bank.js"

export class InsufficientFunds extends Data.TaggedError("InsufficientFunds")<{ readonly account: number }> {}

type SqlitePool = Pool.Pool<Sqlite.SqliteConnection, Sqlite.SqliteError>

// --- pair 1: the pool, and a transaction on a borrowed connection ---

/** tarn's `validate`: checked at every checkout, without a round trip; `false` closes it and tries another. */
export const validate = Policy.make<Sqlite.SqliteConnection, Sqlite.SqliteError>({
  name: "validate",
  onCheckout: ({ connection }) =>
    connection.database.open ? Effect.void : Effect.fail(new ConnectionRejected({ reason: "the handle is closed" }))
})

export const makePool = (filename: string) =>
  Pool.make({
    driver: Sqlite.driver({ filename, busyTimeout: "5 seconds" }), // create / destroy; WAL is the driver's default
    name: "bank",
    min: 0,
    size: 4, // max: 4 ...
    maxOverflow: 0, // ... as a hard limit
    timeout: "2 seconds", // acquireTimeoutMillis
    policies: [...Policy.defaults(), validate, Policy.idleTimeout("30 seconds")] // idleTimeoutMillis
  })

export const transfer = (pool: SqlitePool, { amount, from, to }: Bank.Transfer) =>
  Pool.transaction(pool, (db) =>
    Effect.gen(function*() {
      const debited = yield* pool.driver.query(
        db,
        "UPDATE accounts SET balance = balance - ? WHERE id = ? AND balance >= ? RETURNING balance",
        [amount, from, amount]
      )
      if (debited.length === 0) return yield* new InsufficientFunds({ account: from })
      yield* pool.driver.query(db, "UPDATE accounts SET balance = balance + ? WHERE id = ?", [amount, to])
    }))

export const bankTransfers = Effect.gen(function*() {
  const pool = yield* makePool(yield* Bank.databaseFile)
  yield* Pool.transaction(
    pool,
    (db) =>
      Effect.forEach([Bank.dropAccounts, Bank.createAccounts, Bank.insertAccounts], (sql) => pool.driver.query(db, sql))
  )
  const settled = yield* Effect.forEach(Bank.transfers, (t) => Effect.either(transfer(pool, t)), {
    concurrency: "unbounded"
  })
  const rows = yield* Pool.use(pool, (db) => pool.driver.query(db, Bank.selectBalances))
  return Bank.outcome(settled.map(Either.isRight), rows)
}).pipe(Effect.scoped) // pool.destroy(): closing the scope closes the pool

// --- pair 2: a handle that went bad while idle is not lent again ---

export const validation = Effect.gen(function*() {
  const pool = yield* makePool(yield* Bank.databaseFile)
  const first = yield* Pool.use(pool, (db) => Effect.succeed(db))
  first.database.close() // something closed the handle behind the pool's back
  const second = yield* Pool.use(pool, (db) => Effect.succeed(db))
  return {
    result: { fresh: second.database.open, replaced: second !== first },
    closedBy: (yield* Pool.stats(pool)).closedBy
  }
}).pipe(Effect.scoped)

// --- pair 3: the database cannot be opened ---

export const unreachable = Effect.gen(function*() {
  const pool = yield* makePool("/nonexistent/dir/bank.db")
  // the checkout fails with the connect's own error, at once: no retry loop until the timeout
  const error = yield* Effect.flip(Pool.use(pool, () => Effect.void))
  return { tag: error._tag, message: error.message }
}).pipe(Effect.scoped)

if (import.meta.url === `file://${process.argv[1]}`) {
  Effect.runPromise(Effect.all([bankTransfers, validation, unreachable])).then(console.log, (error) => {
    console.error(error)
    process.exit(1)
  })
}
