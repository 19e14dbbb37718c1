/**
 * Asserting what a service wrote, with its parameters, on the Memory database: the service binds its values (`$1`
 * as PostgreSQL does; SQLite's `?` works the same way), `respond` answers its reads, `committedStatements` is what a
 * test asserts, and a statement whose placeholders do not match its parameters fails as a server would fail it. Run
 * it with `npx tsx examples/testing-params.ts`.
 */
import { Effect } from "effect"
import * as Memory from "../src/Driver/Memory.js"
import * as Pool from "../src/Pool.js"

type Db = Pool.Pool<Memory.MemoryConnection, Memory.MemoryError>

/** The service under test: moves an amount between two accounts in one transaction. */
const transfer = (db: Memory.MemoryDatabase, pool: Db, from: number, to: number, amount: number) =>
  Pool.transaction(pool, (c) =>
    Effect.gen(function*() {
      const rows = yield* db.driver.query(c, "SELECT balance FROM accounts WHERE id = $1", [from])
      if (Number(rows[0]?.["balance"]) < amount) return yield* Effect.fail("insufficient funds" as const)
      yield* db.driver.query(c, "UPDATE accounts SET balance = balance - $1 WHERE id = $2", [amount, from])
      yield* db.driver.query(c, "UPDATE accounts SET balance = balance + $1 WHERE id = $2", [amount, to])
    }))

export const program = Effect.gen(function*() {
  const balances = new Map([[1, 100], [2, 0]])
  const db = yield* Memory.make({
    // reads the simulated database cannot answer by itself: anything not answered keeps the built-in behaviour
    respond: ({ params, sql }) =>
      sql.startsWith("SELECT balance") ? [{ balance: balances.get(Number(params[0])) ?? 0 }] : undefined
  })
  const pool = yield* Pool.make({ driver: db.driver, name: "ledger", size: 2 })

  yield* transfer(db, pool, 1, 2, 30)
  const refused = yield* Effect.flip(transfer(db, pool, 2, 1, 500))
  const mismatch = yield* Effect.flip(Pool.query(pool, "SELECT $1, $2", [1]))

  return {
    committed: (yield* db.committedStatements).map(({ params, sql }) => `${sql} ${JSON.stringify(params)}`),
    refused,
    mismatch: mismatch.message
  }
}).pipe(Effect.scoped)

if (import.meta.url === `file://${process.argv[1]}`) {
  Effect.runPromise(program).then(console.log)
}
