/**
 * The "after" side of docs/migration/spanner.md: a `FixedSizePool` bound to a database with `run_in_transaction`
 * and a snapshot read, `get(timeout)` / `put` and `queue.Empty`, and a `PingingPool` whose `ping()` a background
 * thread used to call. Pairs 1 and 2 run on a SQLite file, pair 3 on the Memory database under `TestClock` (which
 * can drop a session while it is idle). Run it with `npx tsx examples/migration/spanner.ts`.
 */
import { Context, Data, Effect, Either, Fiber, Schedule, TestClock, TestContext } from "effect"
import * as Memory from "../../src/Driver/Memory.js"
import * as Sqlite from "../../src/Driver/Sqlite.js"
import * as Pool from "../../src/Pool.js"
import * as SessionPool from "../../src/SessionPool.js"
import * as Bank from "./bank.js"

export class InsufficientFunds extends Data.TaggedError("InsufficientFunds")<{ readonly account: number }> {}

/** The database's session pool as a service: `bind(database)` is the Layer that provides it. */
export class Sessions extends Context.Tag("app/Sessions")<
  Sessions,
  SessionPool.SessionPool<Sqlite.SqliteConnection, Sqlite.SqliteError>
>() {}

// --- pair 1: FixedSizePool, instance.database(..., pool=pool), run_in_transaction, snapshot() ---

/** `def transfer(transaction, src, dst, amount): ...` run by `database.run_in_transaction(transfer, ...)` */
export const transfer = ({ amount, from, to }: Bank.Transfer) =>
  Effect.flatMap(Sessions, (sessions) =>
    Pool.transaction(sessions.pool, (session) =>
      Effect.gen(function*() {
        const { driver } = sessions.pool
        const debited = yield* driver.query(
          session,
          "UPDATE accounts SET balance = balance - ? WHERE id = ? AND balance >= ? RETURNING balance",
          [amount, from, amount]
        )
        if (debited.length === 0) return yield* new InsufficientFunds({ account: from })
        yield* driver.query(session, "UPDATE accounts SET balance = balance + ? WHERE id = ?", [amount, to])
      })))

/** `with database.snapshot() as snapshot: snapshot.execute_sql(...)` — a read on a session of its own. */
export const balances = Effect.flatMap(Sessions, (sessions) =>
  Effect.scoped(
    Effect.flatMap(sessions.session(), (s) => sessions.pool.driver.query(s.connection, Bank.selectBalances))
  ))

export const bankTransfers = Effect.gen(function*() {
  const filename = yield* Bank.databaseFile
  // pool = FixedSizePool(size=4, default_timeout=5, labels={"app": "bank"}); database = instance.database(..., pool=pool)
  const SessionsLive = SessionPool.fixed({
    name: "bank",
    size: 4,
    defaultTimeout: "5 seconds",
    labels: { app: "bank" }
  })
    .pipe(SessionPool.bind(Sessions, Sqlite.driver({ filename })))
  return yield* Effect.gen(function*() {
    const sessions = yield* Sessions
    yield* Pool.transaction(sessions.pool, (session) =>
      Effect.forEach(
        [Bank.dropAccounts, Bank.createAccounts, Bank.insertAccounts],
        (sql) => sessions.pool.driver.query(session, sql)
      ))
    const settled = yield* Effect.forEach(Bank.transfers, (t) => Effect.either(transfer(t)), {
      concurrency: "unbounded"
    })
    const opened = (yield* Pool.stats(sessions.pool)).opened
    return { ...Bank.outcome(settled.map(Either.isRight), yield* balances), opened, labels: sessions.labels }
  }).pipe(Effect.provide(SessionsLive))
}).pipe(Effect.scoped)

// --- pair 2: session = pool.get(timeout=...); ...; pool.put(session); queue.Empty ---

export const getAndPut = Effect.gen(function*() {
  const filename = yield* Bank.databaseFile
  const sessions = yield* SessionPool.make(SessionPool.fixed({ name: "bank", size: 1 }), Sqlite.driver({ filename }))
  const session = yield* sessions.get()
  // the only session is out: a get with a timeout of its own fails with SessionPoolEmpty (queue.Empty)
  const empty = yield* Effect.flip(sessions.get({ timeout: "100 millis" }))
  yield* sessions.put(session)
  // the same session put twice is refused, and the pool is as it was (queue.Full)
  const full = yield* Effect.flip(sessions.put(session))
  const again = yield* Effect.scoped(Effect.map(sessions.session(), (s) => s.record.id))
  return {
    empty: { tag: empty._tag, message: empty.message },
    full: { tag: full._tag, reason: full._tag === "PoolFull" ? full.reason : undefined },
    sameSession: again === session.record.id
  }
}).pipe(Effect.scoped)

// --- pair 3: PingingPool(ping_interval=...), with a thread calling pool.ping() ---

export const pinging = Effect.gen(function*() {
  const db = yield* Memory.make()
  // background: false, and the application pings, as Spanner's thread did; `background: true` (the default) is
  // the same loop run by the pool itself
  const sessions = yield* SessionPool.make(
    SessionPool.pinging({ name: "bank", size: 2, pingInterval: "1 minute", background: false }),
    db.driver
  )
  const pinger = yield* Effect.fork(Effect.repeat(sessions.ping, Schedule.spaced("1 minute")))
  // a session dies while idle (the server dropped it); the next ping round finds it and opens a replacement
  const [dropped] = yield* db.connections
  yield* db.kill(dropped!, { notify: false })
  yield* TestClock.adjust("2 minutes")
  yield* Fiber.interrupt(pinger)
  const stats = yield* Pool.stats(sessions.pool)
  return { droppedClosed: dropped!.closed, open: stats.open, closedBy: stats.closedBy }
}).pipe(Effect.scoped, Effect.provide(TestContext.TestContext))

if (import.meta.url === `file://${process.argv[1]}`) {
  Effect.runPromise(Effect.all({ bankTransfers, getAndPut, pinging })).then(
    (result) => console.log(JSON.stringify(result, null, 2)),
    (error) => {
      console.error(error)
      process.exit(1)
    }
  )
}
