/**
 * The "after" side of docs/migration/twisted.md: `adbapi.ConnectionPool` with its `cp_*` options,
 * `runInteraction` with an errback, `runQuery`, `runOperation`, a retry on `ConnectionLost`, and the pool's life as
 * a Layer. Each program is one pair of the page. Pairs 1 and 3 run on a SQLite file, pair 2 on the Memory database
 * under `TestClock` (it can drop a connection on demand). Run it with `npx tsx examples/migration/twisted.ts`.
 */
import { Context, Data, Effect, TestContext } from "effect"
import * as Memory from "../../src/Driver/Memory.js"
import * as Sqlite from "../../src/Driver/Sqlite.js"
import * as Interaction from "../../src/Interaction.js"
import * as Pool from "../../src/Pool.js"
import * as Bank from "./bank.js"

export class InsufficientFunds extends Data.TaggedError("InsufficientFunds")<{ readonly account: number }> {}

type DbPool = Interaction.ConnectionPool<Sqlite.SqliteConnection, Sqlite.SqliteError>

// --- pair 1: ConnectionPool("sqlite3", ...), runInteraction, runQuery, an errback ---

/** `def _transfer(txn, src, dst, amount): ...` — the interaction, run in a transaction of its own. */
export const transfer = (dbpool: DbPool, { amount, from, to }: Bank.Transfer) =>
  dbpool.runInteraction((txn) =>
    Effect.gen(function*() {
      const debited = yield* txn.execute(
        "UPDATE accounts SET balance = balance - ? WHERE id = ? AND balance >= ? RETURNING balance",
        [amount, from, amount]
      )
      if (debited.length === 0) return yield* new InsufficientFunds({ account: from })
      yield* txn.execute("UPDATE accounts SET balance = balance + ? WHERE id = ?", [amount, to])
      return "done" as const
    })
  )

export const bankTransfers = Effect.gen(function*() {
  // ConnectionPool("sqlite3", "bank.db", cp_min=1, cp_max=4, cp_openfun=enable_foreign_keys)
  const dbpool = yield* Interaction.make(Sqlite.driver({ filename: yield* Bank.databaseFile }), {
    name: "bank",
    cp_min: 1,
    cp_max: 4,
    cp_openfun: ["PRAGMA foreign_keys = ON"]
  })
  yield* dbpool.runOperation(Bank.dropAccounts)
  yield* dbpool.runOperation(Bank.createAccounts)
  yield* dbpool.runOperation(Bank.insertAccounts)
  // DeferredList([...]) of the transfers; d.addErrback(lambda f: f.trap(InsufficientFunds) and "refused")
  const results = yield* Effect.forEach(
    Bank.transfers,
    (t) => transfer(dbpool, t).pipe(Effect.catchTag("InsufficientFunds", () => Effect.succeed("refused" as const))),
    { concurrency: "unbounded" }
  )
  const rows = yield* dbpool.runQuery(Bank.selectBalances)
  return Bank.outcome(results.map((r) => r === "done"), rows)
}).pipe(Effect.scoped)

// --- pair 2: cp_reconnect=True and ConnectionLost, retried by the caller ---

export const retryOnConnectionLost = Effect.gen(function*() {
  const db = yield* Memory.make()
  const dbpool = yield* Interaction.make(db.driver, { name: "orders", cp_min: 1, cp_max: 2, cp_reconnect: true })
  yield* dbpool.start
  // the server drops the idle connection without telling anyone (no error event)
  const [connection] = yield* db.connections
  yield* db.kill(connection!, { notify: false })
  const seen: Array<string> = []
  const placeOrder = dbpool.runInteraction((txn) => txn.execute("INSERT INTO orders VALUES (42)")).pipe(
    Effect.tapError((error) => Effect.sync(() => seen.push(error._tag)))
  )
  // the pool never retries by itself: the caller does, while the error says nothing was committed
  yield* placeOrder.pipe(
    Effect.retry({
      times: 2,
      while: (error) => error instanceof Interaction.ConnectionLost && error.retryable
    })
  )
  return { seen, committed: yield* db.committed }
}).pipe(Effect.scoped, Effect.provide(TestContext.TestContext))

// --- pair 3: the pool's life: start() when the reactor runs, close() at shutdown ---

/** The service that owns the pool, as a Tag: the program asks for it, the layer decides where it connects. */
export class Db extends Context.Tag("app/Db")<Db, DbPool>() {}

export const asALayer = Effect.gen(function*() {
  const filename = yield* Bank.databaseFile
  // building the layer is start(): cp_min connections are opened, and an unreachable database fails it
  const DbLive = Interaction.layer(Db, Sqlite.driver({ filename }), { name: "bank", cp_min: 2, cp_max: 4 })
  const program = Effect.gen(function*() {
    const dbpool = yield* Db
    yield* dbpool.runOperation("CREATE TABLE IF NOT EXISTS audit (event TEXT NOT NULL)")
    yield* dbpool.runOperation("INSERT INTO audit (event) VALUES (?)", ["login"])
    const rows = yield* dbpool.runQuery("SELECT count(*) AS n FROM audit")
    return { rows, open: (yield* Pool.stats(dbpool.pool)).open }
  })
  // releasing the layer is close(): the program's connections are closed when it ends
  return yield* Effect.provide(program, DbLive)
}).pipe(Effect.scoped)

if (import.meta.url === `file://${process.argv[1]}`) {
  Effect.runPromise(Effect.all({ bankTransfers, retryOnConnectionLost, asALayer })).then(
    (result) => console.log(JSON.stringify(result, null, 2)),
    (error) => {
      console.error(error)
      process.exit(1)
    }
  )
}
