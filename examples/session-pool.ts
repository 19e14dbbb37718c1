/**
 * Spanner's session pools on the Memory database under `TestClock`: a fixed pool prefilled and `get` timing out
 * (`queue.Empty`), `put` refused (`queue.Full`) with the pool unchanged, a bursty pool opening past its target and
 * closing the extras, a pinging pool's `ping()` replacing a session dropped while idle, and a transaction-pinging
 * pool whose sessions hold a transaction begun ahead of time until `beginPendingTransactions`. Run it with
 * `npx tsx examples/session-pool.ts`.
 */
import { Context, Effect, Fiber, TestClock, TestContext } from "effect"
import * as Memory from "../src/Driver/Memory.js"
import * as Pool from "../src/Pool.js"
import * as SessionPool from "../src/SessionPool.js"

type C = Memory.MemoryConnection
type E = Memory.MemoryError

/** The session pool as a service: `bind(database)` provides it. */
class Sessions extends Context.Tag("Sessions")<Sessions, SessionPool.SessionPool<C, E>>() {}

export const program = Effect.gen(function*() {
  const db = yield* Memory.make()

  // FixedSizePool(size=2, default_timeout=5, labels=...): bound to the database as a Layer, prefilled
  const SessionsLive = SessionPool.fixed({
    name: "orders",
    size: 2,
    defaultTimeout: "5 seconds",
    labels: { app: "shop" }
  })
    .pipe(SessionPool.bind(Sessions, db.driver))
  const fixed = yield* Effect.gen(function*() {
    const sessions = yield* Sessions
    const prefilled = (yield* db.stats).opened
    const a = yield* sessions.get()
    const b = yield* sessions.get()
    // get(timeout=1): both are out, so it fails after a second with SessionPoolEmpty (Spanner's queue.Empty)
    const waiting = yield* Effect.fork(Effect.either(sessions.get({ timeout: "1 second" })))
    yield* TestClock.adjust("1 second")
    const empty = yield* Fiber.join(waiting)
    yield* sessions.put(a)
    yield* sessions.put(b)
    // put never blocks: the same session again is refused (queue.Full), and the pool is as it was
    const before = yield* Pool.stats(sessions.pool)
    const full = yield* Effect.either(sessions.put(b))
    const after = yield* Pool.stats(sessions.pool)
    // the scoped checkout (Spanner's `with pool.session() as session:`)
    const labels = yield* Effect.scoped(Effect.map(sessions.session(), (s) => s.record.labels))
    return {
      prefilled,
      empty: empty._tag === "Left" ? empty.left._tag : "got one",
      full: full._tag === "Left" ? full.left.reason : "accepted",
      unchanged: before.idle === after.idle && before.open === after.open,
      labels
    }
  }).pipe(Effect.provide(SessionsLive))

  // BurstyPool(target_size=2): opens past its target when none is idle, closes the extras when they come back
  const bursty = yield* SessionPool.make(SessionPool.bursty({ name: "bursty", targetSize: 2 }), db.driver)
  const burst = yield* Effect.all([bursty.get(), bursty.get(), bursty.get(), bursty.get()])
  const openAtPeak = (yield* Pool.stats(bursty.pool)).open
  yield* Effect.forEach(burst, (session) => bursty.put(session), { discard: true })
  const openAfter = (yield* Pool.stats(bursty.pool)).open

  // PingingPool(ping_interval=60, background off: the application calls ping()): a session dropped while idle
  const pinging = yield* SessionPool.make(
    SessionPool.pinging({ name: "pinging", size: 2, pingInterval: "1 minute", background: false }),
    db.driver
  )
  const [dropped] = (yield* db.connections).filter((c) => c.applicationName === "pinging")
  yield* db.kill(dropped!, { notify: false })
  yield* TestClock.adjust("1 minute")
  yield* pinging.ping
  const replaced = dropped!.closed && (yield* Pool.stats(pinging.pool)).open === 2

  // TransactionPingingPool: every session holds a transaction begun ahead of time
  const txn = yield* SessionPool.make(
    SessionPool.transactionPinging({ name: "txn", size: 2, pingInterval: "1 minute", background: false }),
    db.driver
  )
  const session = yield* txn.get()
  const lentInTransaction = session.connection.inTransaction
  yield* db.driver.query(session.connection, "INSERT INTO orders VALUES (1)")
  yield* txn.put(session)
  const pending = yield* SessionPool.pendingTransactions(txn)
  const begun = yield* txn.beginPendingTransactions

  // clear(): every session closed; the fixed-size kinds open fresh ones back to their size
  yield* txn.clear
  const afterClear = yield* Pool.stats(txn.pool)

  return {
    fixed,
    bursty: { openAtPeak, openAfter },
    pinging: { replaced },
    transactionPinging: { lentInTransaction, pending, begun, neverCommitted: (yield* db.committed).length },
    clear: { closed: afterClear.closedBy["stale"] ?? 0, open: afterClear.open }
  }
}).pipe(Effect.scoped, Effect.provide(TestContext.TestContext))

if (import.meta.url === `file://${process.argv[1]}`) {
  Effect.runPromise(program).then((result) => console.log(JSON.stringify(result, null, 2)), (error) => {
    console.error(error)
    process.exit(1)
  })
}
