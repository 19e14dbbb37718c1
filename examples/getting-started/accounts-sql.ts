/**
 * Getting started, swapping PostgreSQL for SQLite in tests: the `Accounts` service written against `@effect/sql`'s
 * `SqlClient`, whose `sql` template binds values in each database's own placeholder style, so the same code runs on
 * both. Production provides `SqlPg.layerConfig()` (PostgreSQL through a pool, `DATABASE_URL`), the tests
 * `SqlSqlite.layer({ filename: ":memory:" })`: one Layer is the only difference. Run it with
 * `npx tsx examples/getting-started/accounts-sql.ts` (SQLite in memory), or with `DATABASE_URL` set (PostgreSQL).
 */
import { SqlClient } from "@effect/sql"
import { Data, Effect, Layer } from "effect"
import * as SqlPg from "../../src/Sql/Pg.js"
import * as SqlSqlite from "../../src/Sql/Sqlite.js"

export class InsufficientFunds extends Data.TaggedError("InsufficientFunds")<{ readonly account: string }> {}

/** The service knows `SqlClient` only: no driver, no dialect. */
export class Accounts extends Effect.Service<Accounts>()("app/Accounts", {
  effect: Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql`DROP TABLE IF EXISTS demo_accounts`
    yield* sql`CREATE TABLE demo_accounts (id text PRIMARY KEY, balance integer NOT NULL)`
    return {
      open: (id: string, balance: number) =>
        Effect.asVoid(sql`INSERT INTO demo_accounts ${sql.insert({ id, balance })}`),
      transfer: (from: string, to: string, amount: number) =>
        sql.withTransaction(Effect.gen(function*() {
          const debited = yield* sql`UPDATE demo_accounts SET balance = balance - ${amount}
            WHERE id = ${from} AND balance >= ${amount} RETURNING id`
          if (debited.length === 0) return yield* new InsufficientFunds({ account: from })
          yield* sql`UPDATE demo_accounts SET balance = balance + ${amount} WHERE id = ${to}`
        })),
      balances: sql`SELECT id, balance FROM demo_accounts ORDER BY id`
    }
  })
}) {}

export const program = Effect.gen(function*() {
  const accounts = yield* Accounts
  yield* accounts.open("alice", 100)
  yield* accounts.open("bob", 0)
  yield* accounts.transfer("alice", "bob", 30)
  const refused = yield* Effect.flip(accounts.transfer("bob", "alice", 500))
  return { balances: yield* accounts.balances, refused: refused._tag }
})

// production: PostgreSQL through a pool, DATABASE_URL (and POOL_SIZE, POOL_TIMEOUT, ... when they are set)
export const MainLive = Accounts.Default.pipe(Layer.provide(SqlPg.layerConfig()))

// tests: the same service on SQLite in memory
export const TestLive = Accounts.Default.pipe(Layer.provide(SqlSqlite.layer({ filename: ":memory:" })))

if (import.meta.url === `file://${process.argv[1]}`) {
  const live = process.env["DATABASE_URL"] === undefined ? TestLive : MainLive
  Effect.runPromise(Effect.provide(program, live)).then(console.log, (error) => {
    console.error(String(error))
    process.exit(1)
  })
}
