/**
 * The "before" side of docs/migration/effect-sql-pg.md: an `@effect/sql` program on `@effect/sql-pg`'s client. The
 * program knows only `SqlClient`; what moves is the layer (`examples/migration/effect-sql-pg.after.ts`). Run it
 * against a server with `DATABASE_URL=postgres://... npx tsx examples/migration/effect-sql-pg.before.ts`.
 */
import { SqlClient } from "@effect/sql"
import { PgClient } from "@effect/sql-pg"
import { Config, Data, Deferred, Effect, Either, Fiber, Redacted } from "effect"
import * as Bank from "./bank.js"

export class InsufficientFunds extends Data.TaggedError("InsufficientFunds")<{ readonly account: number }> {}

// --- pair 1: the program, and the layer that runs it ---

export const transfer = ({ amount, from, to }: Bank.Transfer) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql.withTransaction(Effect.gen(function*() {
      const debited = yield* sql`
        UPDATE accounts SET balance = balance - ${amount} WHERE id = ${from} AND balance >= ${amount}
        RETURNING balance`
      if (debited.length === 0) return yield* new InsufficientFunds({ account: from })
      yield* sql`UPDATE accounts SET balance = balance + ${amount} WHERE id = ${to}`
    }))
  })

export const bankTransfers = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql.unsafe(Bank.dropAccounts)
  yield* sql.unsafe(Bank.createAccounts)
  yield* sql.unsafe(Bank.insertAccounts)
  const settled = yield* Effect.forEach(Bank.transfers, (t) => Effect.either(transfer(t)), {
    concurrency: "unbounded"
  })
  const rows = yield* sql.unsafe<Record<string, unknown>>(Bank.selectBalances)
  return Bank.outcome(settled.map(Either.isRight), rows)
})

export const SqlLive = (url: string) =>
  PgClient.layer({ url: Redacted.make(url), maxConnections: 4, applicationName: "bank" })

// --- pair 2: the options from the environment ---

export const SqlFromConfig = PgClient.layerConfig({
  url: Config.redacted("DATABASE_URL"),
  maxConnections: Config.integer("POOL_SIZE").pipe(Config.withDefault(10))
})

export const countAccounts = Effect.flatMap(
  SqlClient.SqlClient,
  (sql) => Effect.map(sql<{ readonly n: number }>`SELECT count(*)::int AS n FROM accounts`, (rows) => rows[0]!.n)
)

// --- pair 3: every connection is taken, and a statement waits ---

/** One transaction holds the only connection while another statement asks for one. */
export const waitForAConnection = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const begun = yield* Deferred.make<void>()
  const holder = yield* Effect.fork(sql.withTransaction(
    Effect.zipRight(sql`SELECT 1`, Effect.zipRight(Deferred.succeed(begun, undefined), Effect.never))
  ))
  yield* Deferred.await(begun)
  const waited = yield* Effect.either(sql`SELECT 2 AS two`)
  yield* Fiber.interrupt(holder)
  return waited
})

/** `connectTimeout` is pg-pool's `connectionTimeoutMillis` here: it bounds the wait for a connection too. */
export const OneConnection = (url: string) =>
  PgClient.layer({ url: Redacted.make(url), maxConnections: 1, connectTimeout: "500 millis" })

if (import.meta.url === `file://${process.argv[1]}`) {
  const url = process.env["DATABASE_URL"]
  if (url === undefined) {
    console.error("set DATABASE_URL=postgres://user@host:port/database")
    process.exit(1)
  }
  Effect.runPromise(Effect.provide(bankTransfers, SqlLive(url))).then(console.log, (error) => {
    console.error(error)
    process.exit(1)
  })
}
