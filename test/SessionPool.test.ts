/**
 * `SessionPool`: Spanner's four session pools over the one core, on the Memory database under `TestClock`. Each
 * test names the seed behaviour it shows: `fixed` prefilled and `get` blocking up to `default_timeout`
 * (`queue.Empty`), `bursty` opening past its target and closing the extras, `pinging` pinging sessions idle longer
 * than `ping_interval` before lending and by `ping()`, `transactionPinging` holding a transaction begun ahead of
 * time and `begin_pending_transactions`, `put` refusing (`queue.Full`) with the pool unchanged, `clear`, `labels`,
 * `session()` and `bind(database)`.
 */
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Exit, Fiber, Layer, Metric, Option, Scope, TestClock } from "effect"
import * as Memory from "../src/Driver/Memory.js"
import * as Pool from "../src/Pool.js"
import { PoolConfigError, PoolTimeoutError } from "../src/PoolError.js"
import * as SessionPool from "../src/SessionPool.js"
import { settle, uniqueName } from "./utils/pool.js"

type C = Memory.MemoryConnection
type E = Memory.MemoryError

/** A Memory database and a session pool of `spec` bound to it. */
const bound = (spec: SessionPool.Spec) =>
  Effect.gen(function*() {
    const db = yield* Memory.make()
    const sessions = yield* SessionPool.make(spec, db.driver)
    yield* settle
    return { db, sessions, pool: sessions.pool }
  })

/** The counters a refused `put` must leave as they were. */
const counts = (pool: Pool.Pool<C, E>) =>
  Effect.map(Pool.stats(pool), (s) => ({
    open: s.open,
    idle: s.idle,
    inUse: s.inUse,
    maintained: s.maintained,
    closed: s.closed,
    checkouts: s.checkouts
  }))

describe("SessionPool.fixed (FixedSizePool)", () => {
  it.scoped("is prefilled to size and never opens more", () =>
    Effect.gen(function*() {
      const { db, pool } = yield* bound(SessionPool.fixed({ name: uniqueName("fixed"), size: 3 }))
      assert.strictEqual((yield* db.stats).opened, 3, "prefilled before any get")
      const stats = yield* Pool.stats(pool)
      assert.deepStrictEqual([stats.size, stats.min, stats.maxOverflow, stats.idle], [3, 3, 0, 3])
    }))

  it.scoped("get blocks up to defaultTimeout, then fails with SessionPoolEmpty (queue.Empty)", () =>
    Effect.gen(function*() {
      const { sessions } = yield* bound(
        SessionPool.fixed({ name: uniqueName("fixed-empty"), size: 1, defaultTimeout: "10 seconds" })
      )
      const held = yield* sessions.get()
      const waiting = yield* Effect.fork(Effect.flip(sessions.get()))
      yield* TestClock.adjust("9 seconds")
      assert.isTrue(Option.isNone(yield* Fiber.poll(waiting)), "still waiting before the timeout")
      yield* TestClock.adjust("1 second")
      const error = yield* Fiber.join(waiting)
      assert.instanceOf(error, SessionPool.SessionPoolEmpty)
      if (!(error instanceof SessionPool.SessionPoolEmpty)) return
      assert.strictEqual(error.timeoutMillis, 10_000)
      assert.strictEqual(error.kind, "fixed")
      assert.instanceOf(error.cause, PoolTimeoutError)
      assert.match(error.message, /no session available within 10000 ms/)

      // get(timeout) overrides the default for one call
      const quick = yield* Effect.fork(Effect.flip(sessions.get({ timeout: "1 second" })))
      yield* TestClock.adjust("1 second")
      const quickError = yield* Fiber.join(quick)
      assert.strictEqual((quickError as SessionPool.SessionPoolEmpty).timeoutMillis, 1_000)

      // a session put back goes to the waiter that was there first
      const served = yield* Effect.fork(sessions.get())
      yield* settle
      yield* sessions.put(held)
      const next = yield* Fiber.join(served)
      assert.strictEqual(next.record.id, held.record.id)
      // a lent session holds up the pool's closing (up to its shutdown timeout, which TestClock never reaches)
      yield* sessions.put(next)
    }))
})

describe("SessionPool.bursty (BurstyPool)", () => {
  it.scoped("starts empty, opens past its target when empty, closes the extras on return when full", () =>
    Effect.gen(function*() {
      const { db, pool, sessions } = yield* bound(SessionPool.bursty({ name: uniqueName("bursty"), targetSize: 2 }))
      assert.strictEqual((yield* db.stats).opened, 0, "nothing opened before a get")
      const taken = yield* Effect.all(Array.from({ length: 4 }, () => sessions.get()))
      assert.strictEqual((yield* Pool.stats(pool)).open, 4, "two past the target")
      for (const session of taken) yield* sessions.put(session)
      yield* settle
      const stats = yield* Pool.stats(pool)
      assert.deepStrictEqual([stats.open, stats.idle, stats.closedBy["overflow"]], [2, 2, 2])
      // the scoped checkout closes an extra the same way
      yield* Effect.scoped(Effect.all([sessions.session(), sessions.session(), sessions.session()]))
      yield* settle
      assert.deepStrictEqual([(yield* Pool.stats(pool)).open, (yield* Pool.stats(pool)).closedBy["overflow"]], [2, 3])
    }))

  it.scoped("put with whenFull: \"fail\" refuses an extra into a full pool, and changes nothing", () =>
    Effect.gen(function*() {
      const { pool, sessions } = yield* bound(SessionPool.bursty({ name: uniqueName("bursty-full"), targetSize: 1 }))
      const [first, extra] = yield* Effect.all([sessions.get(), sessions.get()])
      yield* sessions.put(first!)
      const before = yield* counts(pool)
      const error = yield* Effect.flip(sessions.put(extra!, { whenFull: "fail" }))
      assert.instanceOf(error, SessionPool.PoolFull)
      assert.strictEqual(error.reason, "Full")
      assert.match(error.message, /the pool is full/)
      assert.deepStrictEqual(yield* counts(pool), before, "counts before = after")
      // the caller kept it: it can still use it, and put it back (closed as an extra)
      assert.isTrue(extra!.connection.alive)
      yield* sessions.put(extra!)
      yield* settle
      assert.strictEqual((yield* Pool.stats(pool)).open, 1)
    }))
})

describe("SessionPool.put (queue.Full)", () => {
  it.scoped("refuses a foreign session and one returned twice, typed, the pool unchanged", () =>
    Effect.gen(function*() {
      const { pool, sessions } = yield* bound(SessionPool.fixed({ name: uniqueName("put"), size: 2 }))
      const other = yield* bound(SessionPool.fixed({ name: uniqueName("put-other"), size: 1 }))
      const mine = yield* sessions.get()
      const theirs = yield* other.sessions.get()

      const before = yield* counts(pool)
      const otherBefore = yield* counts(other.pool)
      const foreign = yield* Effect.flip(sessions.put(theirs))
      assert.deepStrictEqual([foreign._tag, foreign.reason], ["PoolFull", "Foreign"])
      const forged = yield* Effect.flip(sessions.put({ connection: mine.connection, record: mine.record }))
      assert.strictEqual(forged.reason, "Foreign", "not a lease this pool handed out")
      assert.deepStrictEqual(yield* counts(pool), before, "counts before = after")
      assert.deepStrictEqual(yield* counts(other.pool), otherBefore, "the other pool is untouched too")

      yield* sessions.put(mine)
      // the fixed pool holds its `size` idle sessions now: full, as Spanner's queue is when a session comes twice
      const full = yield* counts(pool)
      assert.strictEqual(full.idle, 2)
      const twice = yield* Effect.flip(sessions.put(mine))
      assert.strictEqual(twice.reason, "ReturnedTwice")
      assert.match(twice.message, /already returned/)
      assert.deepStrictEqual(yield* counts(pool), full, "counts before = after")
      yield* other.sessions.put(theirs)
    }))
})

describe("SessionPool.pinging (PingingPool)", () => {
  it.scoped("a session idle longer than pingInterval is pinged before lending; a dead one is replaced", () =>
    Effect.gen(function*() {
      const { db, pool, sessions } = yield* bound(
        SessionPool.pinging({ name: uniqueName("pinging"), size: 1, pingInterval: "1 minute", background: false })
      )
      const [first] = yield* db.connections
      // within the interval: lent without a ping
      const early = yield* sessions.get()
      assert.strictEqual(early.connection.statements.length, 0, "no ping within pingInterval")
      yield* sessions.put(early)
      // dropped silently while idle, then idle for a whole interval: the ping before lending finds it dead
      yield* db.kill(first!, { notify: false })
      yield* TestClock.adjust("1 minute")
      const session = yield* sessions.get()
      assert.notStrictEqual(session.record.id, first!.id)
      assert.isTrue(session.connection.alive)
      assert.isTrue(first!.closed)
      assert.strictEqual((yield* Pool.stats(pool)).closedBy["rejected"], 1)
      yield* sessions.put(session)
    }))

  it.scoped("ping() pings the sessions idle longer than pingInterval and replaces the dead before any get", () =>
    Effect.gen(function*() {
      const { db, pool, sessions } = yield* bound(
        SessionPool.pinging({ name: uniqueName("ping"), size: 2, pingInterval: "1 minute", background: false })
      )
      const [dead, live] = yield* db.connections
      yield* db.kill(dead!, { notify: false })
      yield* sessions.ping
      assert.isFalse(dead!.closed, "not idle long enough: not pinged")
      assert.strictEqual(live!.statements.length, 0)
      yield* TestClock.adjust("1 minute")
      yield* settle
      assert.isFalse(dead!.closed, "background: false: nothing pings on its own")
      yield* SessionPool.ping(sessions)
      yield* settle
      const stats = yield* Pool.stats(pool)
      assert.isTrue(dead!.closed)
      assert.deepStrictEqual(live!.statements, ["SELECT 1"])
      assert.deepStrictEqual([stats.checkouts, stats.open, stats.idle, (yield* db.stats).opened], [0, 2, 2, 3])
    }))

  it.scoped("by default the pool pings in the background every pingInterval", () =>
    Effect.gen(function*() {
      const { db, pool } = yield* bound(
        SessionPool.pinging({ name: uniqueName("ping-bg"), size: 2, pingInterval: "1 minute" })
      )
      const [dead] = yield* db.connections
      yield* db.kill(dead!, { notify: false })
      yield* TestClock.adjust("1 minute")
      yield* settle
      const stats = yield* Pool.stats(pool)
      assert.isTrue(dead!.closed)
      assert.deepStrictEqual([stats.checkouts, stats.open], [0, 2])
    }))
})

describe("SessionPool.transactionPinging (TransactionPingingPool)", () => {
  it.scoped("every session holds a transaction begun ahead of time; returned ones are pending until begun", () =>
    Effect.gen(function*() {
      const { db, pool, sessions } = yield* bound(
        SessionPool.transactionPinging({ name: uniqueName("txn"), size: 2, pingInterval: "1 minute" })
      )
      assert.strictEqual((yield* db.stats).inTransaction, 2, "begun at startup")
      const session = yield* sessions.get()
      assert.isTrue(session.connection.inTransaction, "lent with its transaction begun")
      yield* db.driver.query(session.connection, "INSERT INTO t VALUES (1)")
      yield* sessions.put(session)
      yield* settle
      // the borrower's transaction was rolled back; the next one is pending (the session is not lendable)
      assert.strictEqual(yield* SessionPool.pendingTransactions(sessions), 1)
      assert.deepStrictEqual([(yield* Pool.stats(pool)).maintained, (yield* db.stats).inTransaction], [1, 1])
      assert.strictEqual(yield* sessions.beginPendingTransactions, 1)
      assert.deepStrictEqual([(yield* db.stats).inTransaction, (yield* db.committed).length], [2, 0])

      // the background begins pending transactions every `pending` step (default: pingInterval)
      yield* Effect.scoped(sessions.session())
      yield* settle
      assert.strictEqual(yield* SessionPool.pendingTransactions(sessions), 1)
      yield* TestClock.adjust("1 minute")
      yield* settle
      assert.deepStrictEqual([yield* SessionPool.pendingTransactions(sessions), (yield* db.stats).inTransaction], [
        0,
        2
      ])
    }))

  it.scoped("a get that finds no idle session lets the pending ones go (manual pending)", () =>
    Effect.gen(function*() {
      const { db, sessions } = yield* bound(
        SessionPool.transactionPinging({ name: uniqueName("txn-manual"), size: 1, background: false })
      )
      const first = yield* sessions.get()
      yield* sessions.put(first)
      yield* settle
      assert.strictEqual(yield* SessionPool.pendingTransactions(sessions), 1)
      const again = yield* sessions.get({ timeout: "1 second" })
      assert.strictEqual(again.record.id, first.record.id)
      assert.isTrue(again.connection.inTransaction)
      assert.strictEqual((yield* db.stats).opened, 1)
      // nothing pending: begins nothing
      yield* sessions.put(again)
      assert.strictEqual(yield* sessions.beginPendingTransactions, 1)
      assert.strictEqual(yield* sessions.beginPendingTransactions, 0)
    }))

  it.scoped("closing the pool leaves no transaction open", () =>
    Effect.gen(function*() {
      const db = yield* Memory.make()
      const scope = yield* Scope.make()
      const sessions = yield* SessionPool.make(
        SessionPool.transactionPinging({ name: uniqueName("txn-close"), size: 2, background: false }),
        db.driver
      ).pipe(Scope.extend(scope))
      yield* settle
      const held = yield* sessions.get()
      yield* sessions.put(yield* sessions.get())
      assert.strictEqual(yield* SessionPool.pendingTransactions(sessions), 1)
      yield* sessions.put(held)
      yield* Scope.close(scope, Exit.void)
      const stats = yield* db.stats
      assert.deepStrictEqual([stats.open, stats.inTransaction, stats.closedTwice], [0, 0, 0])
    }))
})

describe("SessionPool.clear", () => {
  it.scoped("closes every session: idle ones now, lent ones when they come back; the pool refills", () =>
    Effect.gen(function*() {
      const { db, pool, sessions } = yield* bound(SessionPool.fixed({ name: uniqueName("clear"), size: 2 }))
      const lent = yield* sessions.get()
      const [a, b] = yield* db.connections
      const idle = a!.id === lent.record.id ? b! : a!
      yield* sessions.clear
      assert.isTrue(idle.closed, "the idle session is closed when clear returns")
      assert.isFalse(lent.connection.closed, "the lent one is not taken from its borrower")
      yield* sessions.put(lent)
      yield* settle
      assert.isTrue(lent.connection.closed, "closed as it came back")
      const stats = yield* Pool.stats(pool)
      assert.deepStrictEqual([stats.closedBy["stale"], stats.open, stats.idle, (yield* db.stats).opened], [2, 2, 2, 4])
      // a bursty pool is left empty
      const bursty = yield* bound(SessionPool.bursty({ name: uniqueName("clear-bursty"), targetSize: 2 }))
      yield* Effect.all([bursty.sessions.get(), bursty.sessions.get()]).pipe(
        Effect.flatMap(Effect.forEach((s) => bursty.sessions.put(s)))
      )
      yield* SessionPool.clear(bursty.sessions)
      assert.strictEqual((yield* Pool.stats(bursty.pool)).open, 0)
    }))
})

describe("SessionPool labels", () => {
  it.scoped("reach every session, every connection event and every metric", () =>
    Effect.gen(function*() {
      const name = uniqueName("labels")
      const labels = { team: "billing", env: "test" }
      const db = yield* Memory.make()
      const spec = SessionPool.pinging({ name, size: 1, labels, background: false })
      const events: Array<Readonly<Record<string, string>>> = []
      const sessions = yield* SessionPool.make(spec, db.driver)
      assert.deepStrictEqual(sessions.labels, labels)
      yield* Pool.listen(sessions.pool, {
        checkout: (event) => Effect.sync(() => void events.push(event.record.labels)),
        checkin: (event) => Effect.sync(() => void events.push(event.record.labels)),
        close: (event) => Effect.sync(() => void events.push(event.record.labels))
      })
      yield* settle
      const session = yield* sessions.get()
      assert.deepStrictEqual(session.record.labels, labels)
      yield* sessions.put(session)
      yield* Effect.scoped(Effect.tap(sessions.session(), (s) => assert.deepStrictEqual(s.record.labels, labels)))
      yield* sessions.clear
      assert.isAtLeast(events.length, 5)
      for (const eventLabels of events) assert.deepStrictEqual(eventLabels, labels)

      const snapshot = yield* Metric.snapshot
      const ours = snapshot.filter((pair) =>
        pair.metricKey.tags.some((t) => t.key === "db.client.connection.pool.name" && t.value === name)
      )
      assert.isAtLeast(ours.length, 5)
      for (const pair of ours) {
        const tags = Object.fromEntries(pair.metricKey.tags.map((t) => [t.key, t.value]))
        assert.strictEqual(tags["team"], "billing", pair.metricKey.name)
        assert.strictEqual(tags["env"], "test", pair.metricKey.name)
      }
    }))
})

describe("SessionPool.session (SessionCheckout)", () => {
  it.scoped("lends a session for the life of the scope and returns it however the scope ends", () =>
    Effect.gen(function*() {
      const { pool, sessions } = yield* bound(SessionPool.fixed({ name: uniqueName("session"), size: 1 }))
      const id = yield* Effect.scoped(
        Effect.map(SessionPool.session(sessions), (s) => s.record.id)
      )
      assert.strictEqual((yield* Pool.stats(pool)).idle, 1)
      const failed = yield* Effect.exit(Effect.scoped(Effect.zipRight(sessions.session(), Effect.fail("boom"))))
      assert.isTrue(Exit.isFailure(failed))
      const stats = yield* Pool.stats(pool)
      assert.deepStrictEqual([stats.idle, stats.inUse, stats.opened], [1, 0, 1])
      // a scoped session is not put by hand: refused, and still returned by its scope
      const refused = yield* Effect.scoped(Effect.flatMap(sessions.session(), (s) => Effect.flip(sessions.put(s))))
      assert.strictEqual(refused.reason, "Foreign")
      assert.strictEqual((yield* Pool.stats(pool)).idle, 1)
      assert.strictEqual(id, 1)
    }))

  it.scoped("times out with SessionPoolEmpty like get", () =>
    Effect.gen(function*() {
      const { sessions } = yield* bound(SessionPool.fixed({ name: uniqueName("session-empty"), size: 1 }))
      const held = yield* sessions.get()
      const waiting = yield* Effect.fork(Effect.flip(Effect.scoped(sessions.session({ timeout: "2 seconds" }))))
      yield* TestClock.adjust("2 seconds")
      assert.instanceOf(yield* Fiber.join(waiting), SessionPool.SessionPoolEmpty)
      yield* sessions.put(held)
    }))
})

class Sessions extends Context.Tag("test/Sessions")<Sessions, SessionPool.SessionPool<C, E>>() {}

describe("SessionPool.bind (bind(database))", () => {
  it.scoped("is the Layer that ties the pool to a database; it closes with the layer", () =>
    Effect.gen(function*() {
      const db = yield* Memory.make()
      const layer = SessionPool.fixed({ name: uniqueName("bind"), size: 2 }).pipe(SessionPool.bind(Sessions, db.driver))
      const scope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(layer, scope)
      const sessions = Context.get(context, Sessions)
      yield* settle
      assert.strictEqual((yield* db.stats).open, 2)
      const id = yield* Effect.scoped(Effect.map(sessions.session(), (s) => s.record.id))
      assert.isAtLeast(id, 1)
      yield* Scope.close(scope, Exit.void)
      assert.strictEqual((yield* db.stats).open, 0)
      // make is the scoped form, data-last too
      const again = yield* SessionPool.bursty({ name: uniqueName("bind-make") }).pipe(SessionPool.make(db.driver))
      assert.strictEqual(again.kind, "bursty")
    }))

  it.effect("bad options fail with one PoolConfigError listing every problem", () =>
    Effect.gen(function*() {
      const db = yield* Memory.make()
      const error = yield* Effect.flip(
        Effect.scoped(
          SessionPool.make(SessionPool.transactionPinging({ pingInterval: 0, pending: "0 millis" }), db.driver)
        )
      )
      assert.instanceOf(error, PoolConfigError)
      assert.strictEqual(error.problems.length, 2)
      const sizeError = yield* Effect.flip(Effect.scoped(SessionPool.make(SessionPool.fixed({ size: -1 }), db.driver)))
      assert.instanceOf(sizeError, PoolConfigError)
    }))
})
