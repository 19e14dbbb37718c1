/**
 * Getting started on SQLite: the same program as accounts-pg.ts on the embedded database, through the Sqlite driver
 * (better-sqlite3). Two lines differ: the driver layer (`Sqlite.layer` with a file, or `Sqlite.layerConfig()` from
 * `SQLITE_FILENAME`) and SQLite's `?` placeholders where PostgreSQL has `$1`. Run it with
 * `npx tsx examples/getting-started/accounts-sqlite.ts` (it writes accounts.db in the working directory).
 */
import { Context, Data, Effect, Layer } from "effect"
import * as Sqlite from "../../src/Driver/Sqlite.js"
import * as Pool from "../../src/Pool.js"

export class Db extends Context.Tag("app/Db")<Db, Pool.Pool<Sqlite.SqliteConnection, Sqlite.SqliteError>>() {}

export const DbLive = (filename: string) =>
  Pool.layer(Db, { driver: Sqlite.SqliteDriver, name: "accounts", size: 5, timeout: "5 seconds" }).pipe(
    Layer.provide(Sqlite.layer({ filename }))
  )

export class InsufficientFunds extends Data.TaggedError("InsufficientFunds")<{ readonly account: string }> {}

export class Accounts extends Effect.Service<Accounts>()("app/Accounts", {
  effect: Effect.gen(function*() {
    const db = yield* Db
    yield* Pool.query(db, "DROP TABLE IF EXISTS accounts")
    yield* Pool.query(db, "CREATE TABLE accounts (id TEXT PRIMARY KEY, balance INTEGER NOT NULL)")
    return {
      open: (id: string, balance: number) =>
        Effect.asVoid(Pool.query(db, "INSERT INTO accounts (id, balance) VALUES (?, ?)", [id, balance])),
      transfer: (from: string, to: string, amount: number) =>
        Pool.transaction(db, (c) =>
          Effect.gen(function*() {
            const debited = yield* db.driver.query(
              c,
              "UPDATE accounts SET balance = balance - ? WHERE id = ? AND balance >= ? RETURNING id",
              [amount, from, amount]
            )
            if (debited.length === 0) return yield* new InsufficientFunds({ account: from })
            yield* db.driver.query(c, "UPDATE accounts SET balance = balance + ? WHERE id = ?", [amount, to])
          })),
      balances: Pool.query(db, "SELECT id, balance FROM accounts ORDER BY id")
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

export const MainLive = (filename: string) => Accounts.Default.pipe(Layer.provide(DbLive(filename)))

if (import.meta.url === `file://${process.argv[1]}`) {
  Effect.runPromise(Effect.provide(program, MainLive("accounts.db"))).then(console.log, (error) => {
    console.error(String(error))
    process.exit(1)
  })
}
