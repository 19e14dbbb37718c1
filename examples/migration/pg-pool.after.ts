/**
 * The "after" side of docs/migration/pg-pool.md: the same four pairs as `pg-pool.before.ts`, on effect-reservoir's
 * pool over the `Pg` driver (one node-postgres `Client` per pooled connection). Run it against a server with
 * `DATABASE_URL=postgres://... npx tsx examples/migration/pg-pool.after.ts`.
 */
import { Data, Effect, Either } from "effect"
import * as Pg from "../../src/Driver/Pg.js"
import * as Policy from "../../src/Policy.js"
import * as Pool from "../../src/Pool.js"
import * as Bank from "./bank.js"

export class InsufficientFunds extends Data.TaggedError("InsufficientFunds")<{ readonly account: number }> {}

type PgPool = Pool.Pool<Pg.PgConnection, Pg.PgError>

// --- pair 1: the pool and its options; Pool.query ---

export const makePool = (url: string) =>
  Pool.make({
    driver: Pg.driver({ url, connectTimeout: "2 seconds" }),
    name: "bank", // also the sessions' application_name
    size: 4, // max: 4 ...
    maxOverflow: 0, // ... as a hard limit
    timeout: "2 seconds", // connectionTimeoutMillis: the whole checkout, waiting included
    policies: [
      ...Policy.defaults(), // recycle after 30 minutes, pre-ping, rollback on return
      Policy.idleTimeout("10 seconds"), // idleTimeoutMillis
      Policy.maxUses(7_500) // maxUses
    ]
    // no "error" listener: a connection that dies while idle is closed by the pool, and nothing crashes
  })

// --- pair 2: a transaction ---

export const transfer = (pool: PgPool, { amount, from, to }: Bank.Transfer) =>
  Pool.transaction(pool, (client) =>
    Effect.gen(function*() {
      const debited = yield* pool.driver.query(
        client,
        "UPDATE accounts SET balance = balance - $1 WHERE id = $2 AND balance >= $1 RETURNING balance",
        [amount, from]
      )
      if (debited.length === 0) return yield* new InsufficientFunds({ account: from })
      yield* pool.driver.query(client, "UPDATE accounts SET balance = balance + $1 WHERE id = $2", [amount, to])
    }))

export const bankTransfers = (url: string) =>
  Effect.gen(function*() {
    const pool = yield* makePool(url)
    yield* Pool.query(pool, Bank.dropAccounts)
    yield* Pool.query(pool, Bank.createAccounts)
    yield* Pool.query(pool, Bank.insertAccounts)
    const settled = yield* Effect.forEach(Bank.transfers, (t) => Effect.either(transfer(pool, t)), {
      concurrency: "unbounded"
    })
    const rows = yield* Pool.query(pool, Bank.selectBalances)
    return Bank.outcome(settled.map(Either.isRight), rows)
  }).pipe(Effect.scoped) // pool.end(): closing the scope closes the pool

// --- pair 3: every connection is out, and a checkout waits past its timeout ---

export const checkoutTimeout = (url: string) =>
  Effect.gen(function*() {
    const pool = yield* Pool.make({ driver: Pg.driver({ url }), name: "bank", size: 1, maxOverflow: 0, timeout: 200 })
    yield* Pool.get(pool) // held until the scope closes
    const error = yield* Effect.flip(Pool.query(pool, "SELECT 1"))
    return { message: error.message }
  }).pipe(Effect.scoped)

// --- pair 4: the server ends a session while a borrower holds it ---

export const lostConnection = (url: string) =>
  Effect.gen(function*() {
    const pool = yield* makePool(url)
    // the work fails with a disconnect: the pool invalidates the connection on return, no release(error) needed
    const failed = yield* Effect.isFailure(
      Pool.use(pool, (client) => pool.driver.query(client, "SELECT pg_terminate_backend(pg_backend_pid())"))
    )
    const rows = yield* Pool.query(pool, "SELECT 1 AS ok")
    return {
      result: { failed, recovered: rows[0]?.["ok"] === 1 },
      closedBy: (yield* Pool.stats(pool)).closedBy
    }
  }).pipe(Effect.scoped)

if (import.meta.url === `file://${process.argv[1]}`) {
  const url = process.env["DATABASE_URL"]
  if (url === undefined) {
    console.error("set DATABASE_URL=postgres://user@host:port/database")
    process.exit(1)
  }
  Effect.runPromise(Effect.all([bankTransfers(url), checkoutTimeout(url), lostConnection(url)])).then(
    console.log,
    (error) => {
      console.error(error)
      process.exit(1)
    }
  )
}
