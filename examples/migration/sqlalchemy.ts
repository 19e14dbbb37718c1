/**
 * The "after" side of docs/migration/sqlalchemy.md: SQLAlchemy's `create_engine(...)` pool options, `engine.begin()`
 * and `engine.connect()`, pool events, `pool_timeout` and `status()`, and invalidation, on a SQLite file. Each
 * program is one pair of the page. Run it with `npx tsx examples/migration/sqlalchemy.ts`.
 */
import { Data, Effect, Either } from "effect"
import * as Sqlite from "../../src/Driver/Sqlite.js"
import * as Policy from "../../src/Policy.js"
import * as Pool from "../../src/Pool.js"
import * as Bank from "./bank.js"

export class InsufficientFunds extends Data.TaggedError("InsufficientFunds")<{ readonly account: number }> {}

type Engine = Pool.Pool<Sqlite.SqliteConnection, Sqlite.SqliteError>

// --- pair 1: create_engine(url, pool_size=..., ...), engine.begin(), engine.connect() ---

/** `create_engine("sqlite:///bank.db", pool_size=5, max_overflow=10, pool_timeout=30, pool_recycle=1800, ...)` */
export const makeEngine = (filename: string) =>
  Pool.make({
    driver: Sqlite.driver({ filename }),
    name: "bank",
    size: 5, // pool_size
    maxOverflow: 10, // max_overflow
    timeout: "30 seconds", // pool_timeout
    order: "fifo", // pool_use_lifo=False
    policies: [
      Policy.recycle("30 minutes"), // pool_recycle=1800
      Policy.prePing(), // pool_pre_ping=True
      Policy.resetOnReturn("rollback") // pool_reset_on_return="rollback"
    ]
  })

/** `with engine.begin() as conn:` — commits when the function succeeds, rolls back when it fails. */
export const transfer = (engine: Engine, { amount, from, to }: Bank.Transfer) =>
  Pool.transaction(engine, (conn) =>
    Effect.gen(function*() {
      const debited = yield* engine.driver.query(
        conn,
        "UPDATE accounts SET balance = balance - ? WHERE id = ? AND balance >= ? RETURNING balance",
        [amount, from, amount]
      )
      if (debited.length === 0) return yield* new InsufficientFunds({ account: from })
      yield* engine.driver.query(conn, "UPDATE accounts SET balance = balance + ? WHERE id = ?", [amount, to])
    }))

export const bankTransfers = Effect.gen(function*() {
  const engine = yield* makeEngine(yield* Bank.databaseFile)
  yield* Pool.transaction(engine, (conn) =>
    Effect.forEach(
      [Bank.dropAccounts, Bank.createAccounts, Bank.insertAccounts],
      (sql) => engine.driver.query(conn, sql)
    ))
  const settled = yield* Effect.forEach(
    Bank.transfers,
    (t) => Effect.either(transfer(engine, t)),
    { concurrency: "unbounded" }
  )
  // with engine.connect() as conn: conn.execute(text("SELECT ..."))
  const rows = yield* Pool.use(engine, (conn) => engine.driver.query(conn, Bank.selectBalances))
  return Bank.outcome(settled.map(Either.isRight), rows)
}).pipe(Effect.scoped)

// --- pair 2: @event.listens_for(engine, "first_connect" | "connect" | "checkout") ---

export const poolEvents = Effect.gen(function*() {
  const filename = yield* Bank.databaseFile
  let serverVersion = ""
  let checkouts = 0
  const driver = Sqlite.driver({ filename })
  const engine = yield* Pool.make({
    driver,
    name: "bank",
    policies: [
      ...Policy.defaults(),
      // "first_connect": once per pool, on the first connection
      Policy.firstConnect<Sqlite.SqliteConnection, Sqlite.SqliteError>((conn) =>
        Effect.map(driver.query(conn, "SELECT sqlite_version() AS version"), (rows) => {
          serverVersion = String(rows[0]?.["version"])
        })
      ),
      // "connect": on every new connection, before it is lent
      Policy.onConnect<Sqlite.SqliteConnection, Sqlite.SqliteError>((conn) =>
        Effect.asVoid(driver.query(conn, "PRAGMA foreign_keys = ON"))
      )
    ]
  })
  // "checkout": a listener for the life of the current scope
  yield* Pool.listen(engine, {
    checkout: () =>
      Effect.sync(() => {
        checkouts++
      })
  })
  const foreignKeys = yield* Pool.use(engine, (conn) => driver.query(conn, "PRAGMA foreign_keys"))
  return { serverVersionKnown: serverVersion.length > 0, foreignKeys, checkouts }
}).pipe(Effect.scoped)

// --- pair 3: pool_timeout, exc.TimeoutError and engine.pool.status() ---

export const poolTimeout = Effect.gen(function*() {
  const engine = yield* Pool.make({
    driver: Sqlite.driver({ filename: yield* Bank.databaseFile }),
    name: "bank",
    size: 2, // pool_size=2
    maxOverflow: 0, // max_overflow=0
    timeout: "100 millis" // pool_timeout=0.1
  })
  // two borrowers hold both connections; a third waits 100 ms and fails
  yield* Pool.get(engine)
  yield* Pool.get(engine)
  const status = yield* Pool.status(engine)
  const error = yield* Effect.flip(Pool.use(engine, () => Effect.void))
  return { status, tag: error._tag, message: error.message }
}).pipe(Effect.scoped)

// --- pair 4: connection.invalidate(), engine.dispose() ---

export const invalidation = Effect.gen(function*() {
  const engine = yield* Pool.make({ driver: Sqlite.driver({ filename: yield* Bank.databaseFile }), name: "bank" })
  // a connection the caller knows is broken: closed now, never lent again
  const first = yield* Pool.use(engine, (conn) => Effect.as(Pool.invalidate(engine, conn), conn))
  const second = yield* Pool.use(engine, (conn) => Effect.succeed(conn))
  // engine.dispose(): every idle connection closed; the pool stays usable and opens new ones on demand
  yield* Pool.dispose(engine)
  const afterDispose = yield* Pool.use(engine, (conn) => Effect.succeed(conn))
  const stats = yield* Pool.stats(engine)
  return {
    sameConnection: first === second,
    reopened: afterDispose !== second,
    closedBy: stats.closedBy
  }
}).pipe(Effect.scoped)

if (import.meta.url === `file://${process.argv[1]}`) {
  Effect.runPromise(Effect.all({ bankTransfers, poolEvents, poolTimeout, invalidation })).then(
    (result) => console.log(JSON.stringify(result, null, 2)),
    (error) => {
      console.error(error)
      process.exit(1)
    }
  )
}
