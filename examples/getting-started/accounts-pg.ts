/**
 * Getting started on PostgreSQL: a PoolLayer over the Pg driver (its connection string from `DATABASE_URL`), an
 * `Accounts` service that needs it, and a program that needs `Accounts` only. The layers are composed once, at the
 * edge; the pool opens with them and closes, every connection with it, when the program ends. Run it with
 * `DATABASE_URL=postgres://user:password@localhost:5432/db npx tsx examples/getting-started/accounts-pg.ts`.
 */
import { Context, Data, Effect, Layer } from "effect"
import * as Pg from "../../src/Driver/Pg.js"
import * as Pool from "../../src/Pool.js"

export class Db extends Context.Tag("app/Db")<Db, Pool.Pool<Pg.PgConnection, Pg.PgError>>() {}

export const DbLive = Pool.layer(Db, { driver: Pg.PgDriver, name: "accounts", size: 5, timeout: "5 seconds" }).pipe(
  Layer.provide(Pg.layerConfig())
)

export class InsufficientFunds extends Data.TaggedError("InsufficientFunds")<{ readonly account: string }> {}

/** Another service of the program: it asks for `Db` and is built once, when the layers are. */
export class Accounts extends Effect.Service<Accounts>()("app/Accounts", {
  effect: Effect.gen(function*() {
    const db = yield* Db
    // a table of its own, made afresh each run
    yield* Pool.query(db, "DROP TABLE IF EXISTS demo_accounts")
    yield* Pool.query(db, "CREATE TABLE demo_accounts (id text PRIMARY KEY, balance integer NOT NULL)")
    return {
      open: (id: string, balance: number) =>
        Effect.asVoid(Pool.query(db, "INSERT INTO demo_accounts (id, balance) VALUES ($1, $2)", [id, balance])),
      // one transaction: both updates commit, or neither does
      transfer: (from: string, to: string, amount: number) =>
        Pool.transaction(db, (c) =>
          Effect.gen(function*() {
            const debited = yield* db.driver.query(
              c,
              "UPDATE demo_accounts SET balance = balance - $1 WHERE id = $2 AND balance >= $1 RETURNING id",
              [amount, from]
            )
            if (debited.length === 0) return yield* new InsufficientFunds({ account: from })
            yield* db.driver.query(c, "UPDATE demo_accounts SET balance = balance + $1 WHERE id = $2", [amount, to])
          })),
      balances: Pool.query(db, "SELECT id, balance FROM demo_accounts ORDER BY id")
    }
  })
}) {}

/** The program knows `Accounts` only. */
export const program = Effect.gen(function*() {
  const accounts = yield* Accounts
  yield* accounts.open("alice", 100)
  yield* accounts.open("bob", 0)
  yield* accounts.transfer("alice", "bob", 30)
  const refused = yield* Effect.flip(accounts.transfer("bob", "alice", 500))
  return { balances: yield* accounts.balances, refused: refused._tag }
})

// composed once: Accounts over the PoolLayer over the driver layer
export const MainLive = Accounts.Default.pipe(Layer.provide(DbLive))

if (import.meta.url === `file://${process.argv[1]}`) {
  Effect.runPromise(Effect.provide(program, MainLive)).then(console.log, (error) => {
    console.error(String(error))
    process.exit(1)
  })
}
