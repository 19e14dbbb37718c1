/**
 * SQLAlchemy's other pool kinds as constructors on `Pool` (`makeNull`, `makeStatic`, `makePerFiber`,
 * `makeAssertion`), on the Memory driver under the TestClock: each kind's semantics, `recreate`, `use`, `get`,
 * `checkout` / `checkin`, `stats` and `status`.
 */
import { assert, describe, it } from "@effect/vitest"
import { Context, Deferred, Effect, Exit, Fiber, Layer, Scope, TestClock } from "effect"
import * as Memory from "../src/Driver/Memory.js"
import * as Policy from "../src/Policy.js"
import * as Pool from "../src/Pool.js"
import { isPoolError, PoolTimeoutError, PoolUsageError } from "../src/PoolError.js"
import { settle, uniqueName } from "./utils/pool.js"

const query = (db: Memory.MemoryDatabase, sql = "SELECT 1") => (connection: Memory.MemoryConnection) =>
  Effect.as(db.driver.query(connection, sql), connection.id)

/** Holds a connection from `Pool.get` in a forked fiber until `release`; `got` is the connection's id. */
const hold = <E>(pool: Pool.Pool<Memory.MemoryConnection, E>) =>
  Effect.gen(function*() {
    const release = yield* Deferred.make<void>()
    const got = yield* Deferred.make<number, unknown>()
    const fiber = yield* Effect.forkScoped(Effect.scoped(Effect.gen(function*() {
      const connection = yield* Effect.tapError(Pool.get(pool), (e) => Deferred.fail(got, e))
      yield* Deferred.succeed(got, connection.id)
      yield* Deferred.await(release)
    })))
    return { release: Deferred.succeed(release, undefined), got: Deferred.await(got), fiber } as const
  })

describe("Pool kinds", () => {
  describe("makeNull (NullPool)", () => {
    it.scoped("opens a connection per checkout and closes it on return", () =>
      Effect.gen(function*() {
        const db = yield* Memory.make()
        const pool = yield* Pool.makeNull({ driver: db.driver, name: uniqueName("null"), policies: [] })
        const ids = [yield* Pool.use(pool, query(db)), yield* Pool.use(pool, query(db))]
        yield* Effect.scoped(Pool.get(pool))
        yield* settle
        assert.notStrictEqual(ids[0], ids[1])
        const memory = yield* db.stats
        assert.strictEqual(memory.opened, 3)
        assert.strictEqual(memory.open, 0)
        const stats = yield* Pool.stats(pool)
        assert.strictEqual(stats.size, 0)
        assert.strictEqual(stats.maxOverflow, Infinity)
        assert.strictEqual(stats.open, 0)
        assert.strictEqual(stats.closedBy["overflow"], 3)
        assert.strictEqual(Pool.kind(pool), "null")
      }))

    it.scoped("concurrent checkouts each open their own; status counts them as overflow; maxOverflow caps", () =>
      Effect.gen(function*() {
        const db = yield* Memory.make()
        const pool = yield* Pool.makeNull({
          driver: db.driver,
          name: uniqueName("null"),
          policies: [],
          maxOverflow: 2,
          timeout: "1 second"
        })
        const a = yield* hold(pool)
        const b = yield* hold(pool)
        assert.notStrictEqual(yield* a.got, yield* b.got)
        assert.strictEqual(
          yield* Pool.status(pool),
          "Pool size: 0  Connections in pool: 0 Current Overflow: 2 Current Checked out connections: 2"
        )
        const third = yield* Effect.fork(Pool.use(pool, query(db)))
        yield* TestClock.adjust("1 second")
        const exit = yield* Fiber.await(third)
        assert.isTrue(
          Exit.isFailure(exit) && exit.cause._tag === "Fail" && exit.cause.error instanceof PoolTimeoutError
        )
        yield* a.release
        yield* b.release
        yield* settle
        assert.strictEqual((yield* db.stats).open, 0)
      }))

    it.scoped("recreate makes a null pool again; layerNull provides one", () =>
      Effect.gen(function*() {
        const db = yield* Memory.make()
        const pool = yield* Pool.makeNull({ driver: db.driver, name: uniqueName("null"), policies: [] })
        const again = yield* Pool.recreate(pool)
        assert.strictEqual(Pool.kind(again), "null")
        yield* Pool.use(again, query(db))
        yield* settle
        assert.strictEqual((yield* Pool.stats(again)).open, 0)
        class Db extends Context.Tag("kinds/null")<Db, Pool.Pool<Memory.MemoryConnection, Memory.MemoryError>>() {}
        const kind = yield* Effect.provide(
          Effect.map(Db, Pool.kind),
          Pool.layerNull(Db, { driver: db.driver, name: uniqueName("null") })
        )
        assert.strictEqual(kind, "null")
      }))
  })

  describe("makeStatic (StaticPool)", () => {
    it.scoped("every checkout gets the one connection, concurrently", () =>
      Effect.gen(function*() {
        const db = yield* Memory.make({ connectLatency: "10 millis" })
        const pool = yield* Pool.makeStatic({ driver: db.driver, name: uniqueName("static"), policies: [] })
        // three arrive before the connect is done: one connect, shared
        const holders = [yield* hold(pool), yield* hold(pool), yield* hold(pool)]
        yield* TestClock.adjust("10 millis")
        const ids = yield* Effect.all(holders.map((h) => h.got))
        assert.deepStrictEqual(new Set(ids).size, 1)
        assert.strictEqual(yield* Pool.use(pool, query(db)), ids[0])
        assert.strictEqual((yield* db.stats).opened, 1)
        const stats = yield* Pool.stats(pool)
        assert.strictEqual(stats.inUse, 1)
        assert.strictEqual(stats.open, 1)
        assert.strictEqual(
          yield* Pool.status(pool),
          "Pool size: 1  Connections in pool: 0 Current Overflow: 0 Current Checked out connections: 1"
        )
        yield* Effect.forEach(holders, (h) => h.release)
        yield* settle
        // the last borrower gave it back: idle in the pool, and lent again to the next
        assert.strictEqual((yield* Pool.stats(pool)).idle, 1)
        assert.strictEqual(yield* Pool.use(pool, query(db)), ids[0])
        assert.strictEqual((yield* db.stats).opened, 1)
        assert.strictEqual(Pool.kind(pool), "static")
      }))

    it.scoped("borrowers arriving while the connection is being opened share that connect's failure", () =>
      Effect.gen(function*() {
        const db = yield* Memory.make()
        yield* db.down
        const pool = yield* Pool.makeStatic({
          driver: db.driver,
          name: uniqueName("static"),
          policies: [],
          timeout: "1 second"
        })
        const fibers = yield* Effect.forEach([1, 2, 3], () => Effect.fork(Pool.use(pool, query(db))))
        // one outcome for all three at the first one's deadline, not one deadline after another
        yield* TestClock.adjust("1 second")
        for (const fiber of fibers) {
          const exit = yield* Fiber.poll(fiber)
          assert.isTrue(exit._tag === "Some" && Exit.isFailure(exit.value), "failed by the first deadline")
        }
        assert.strictEqual((yield* Pool.stats(pool)).waiting, 0)
        yield* db.up
        assert.isNumber(yield* Pool.use(pool, query(db)))
      }))

    it.scoped("returns the connection (reset on return) only when the last borrower leaves", () =>
      Effect.gen(function*() {
        const db = yield* Memory.make()
        const pool = yield* Pool.makeStatic({
          driver: db.driver,
          name: uniqueName("static"),
          policies: [Policy.resetOnReturn("rollback")]
        })
        const a = yield* hold(pool)
        yield* a.got
        // a second borrower begins a transaction and leaves: no rollback under the first borrower's feet
        yield* Pool.use(pool, (c) => db.driver.begin(c))
        const [connection] = yield* db.connections
        assert.isTrue(connection!.inTransaction)
        yield* a.release
        yield* settle
        assert.isFalse(connection!.inTransaction)
      }))

    it.scoped("a disconnect invalidates the connection: the next checkout gets a new one", () =>
      Effect.gen(function*() {
        const db = yield* Memory.make()
        const pool = yield* Pool.makeStatic({ driver: db.driver, name: uniqueName("static"), policies: [] })
        const first = yield* Pool.use(pool, query(db))
        yield* db.kill(first, { notify: false })
        const a = yield* hold(pool)
        assert.strictEqual(yield* a.got, first)
        const failed = yield* Effect.either(Pool.use(pool, query(db)))
        assert.isTrue(failed._tag === "Left" && failed.left._tag === "MemoryError")
        // a new borrower does not get the dead one, though its first borrower still holds it
        const second = yield* Pool.use(pool, query(db))
        assert.notStrictEqual(second, first)
        yield* a.release
        yield* settle
        const stats = yield* Pool.stats(pool)
        assert.strictEqual(stats.closedBy["invalidated"], 1)
        assert.strictEqual(stats.open, 1)
      }))

    it.scoped("checkout / checkin: leases of the one connection; a second return and a foreign lease are refused", () =>
      Effect.gen(function*() {
        const db = yield* Memory.make()
        const pool = yield* Pool.makeStatic({ driver: db.driver, name: uniqueName("static"), policies: [] })
        const other = yield* Pool.make({ driver: db.driver, name: uniqueName("other"), policies: [] })
        const a = yield* Pool.checkout(pool)
        const b = yield* Pool.checkout(pool)
        assert.strictEqual(a.connection, b.connection)
        assert.strictEqual((yield* Pool.record(pool, a)).id, a.record.id)
        yield* Pool.checkin(pool, a)
        assert.strictEqual((yield* Pool.stats(pool)).inUse, 1)
        const twice = yield* Effect.flip(Pool.checkin(pool, a))
        assert.strictEqual(twice.reason, "ReturnedTwice")
        const theirs = yield* Pool.checkout(other)
        const foreign = yield* Effect.flip(Pool.checkin(pool, theirs))
        assert.instanceOf(foreign, PoolUsageError)
        assert.strictEqual(foreign.reason, "Foreign")
        yield* Pool.checkin(other, theirs)
        yield* Pool.checkin(pool, b)
        yield* settle
        assert.strictEqual((yield* Pool.stats(pool)).inUse, 0)
      }))

    it.scoped("recreate makes a static pool again, with its own connection", () =>
      Effect.gen(function*() {
        const db = yield* Memory.make()
        const pool = yield* Pool.makeStatic({ driver: db.driver, name: uniqueName("static"), policies: [] })
        const first = yield* Pool.use(pool, query(db))
        yield* Pool.dispose(pool)
        const again = yield* Pool.recreate(pool)
        assert.strictEqual(Pool.kind(again), "static")
        const a = yield* hold(again)
        const b = yield* hold(again)
        assert.strictEqual(yield* a.got, yield* b.got)
        assert.notStrictEqual(yield* a.got, first)
        yield* a.release
        yield* b.release
      }))
  })

  describe("makePerFiber (SingletonThreadPool)", () => {
    it.scoped("a fiber's checkouts, nested or one after another, get the same connection", () =>
      Effect.gen(function*() {
        const db = yield* Memory.make()
        const pool = yield* Pool.makePerFiber({ driver: db.driver, name: uniqueName("fiber"), policies: [] })
        const [outer, inner, viaGet] = yield* Pool.use(pool, (c) =>
          Effect.all([
            Effect.succeed(c.id),
            Pool.use(pool, query(db)),
            Effect.scoped(Effect.map(Pool.get(pool), (d) => d.id))
          ]))
        assert.strictEqual(inner, outer)
        assert.strictEqual(viaGet, outer)
        assert.strictEqual(yield* Pool.use(pool, query(db)), outer)
        const lease = yield* Pool.checkout(pool)
        assert.strictEqual(lease.connection.id, outer)
        yield* Pool.checkin(pool, lease)
        assert.strictEqual((yield* Effect.flip(Pool.checkin(pool, lease))).reason, "ReturnedTwice")
        assert.strictEqual((yield* db.stats).opened, 1)
        // the fiber keeps it between checkouts
        assert.strictEqual((yield* Pool.stats(pool)).inUse, 1)
        assert.strictEqual(Pool.kind(pool), "perFiber")
      }))

    it.scoped("other fibers get their own; a fiber's connection is closed when the fiber ends", () =>
      Effect.gen(function*() {
        const db = yield* Memory.make()
        const pool = yield* Pool.makePerFiber({ driver: db.driver, name: uniqueName("fiber"), policies: [] })
        const mine = yield* Pool.use(pool, query(db))
        const theirs = yield* Fiber.join(
          yield* Effect.fork(
            Effect.zipWith(Pool.use(pool, query(db)), Pool.use(pool, query(db)), (a, b) => [a, b] as const)
          )
        )
        assert.strictEqual(theirs[0], theirs[1])
        assert.notStrictEqual(theirs[0], mine)
        yield* settle
        const connections = yield* db.connections
        assert.deepStrictEqual(connections.map((c) => c.id), [mine])
        const stats = yield* Pool.stats(pool)
        assert.strictEqual(stats.open, 1)
        assert.strictEqual(stats.closedBy["overflow"], 1)
      }))

    it.scoped("at most `size` fibers hold a connection; the next waits, and a fiber's end hands it over", () =>
      Effect.gen(function*() {
        const db = yield* Memory.make()
        const pool = yield* Pool.makePerFiber({
          driver: db.driver,
          name: uniqueName("fiber"),
          policies: [],
          size: 1,
          timeout: "1 second"
        })
        const a = yield* hold(pool)
        yield* a.got
        const waiting = yield* Effect.fork(Pool.use(pool, query(db)))
        yield* settle
        assert.strictEqual((yield* Pool.stats(pool)).waiting, 1)
        yield* a.release
        // given back at the fiber's end, after its reset, to the fiber waiting for one instead of being closed
        assert.strictEqual(yield* Fiber.join(waiting), yield* a.got)
        yield* settle
        assert.strictEqual((yield* db.stats).open, 0)
        assert.strictEqual((yield* db.stats).opened, 1)
      }))

    it.scoped("a dead connection is replaced at the fiber's next checkout", () =>
      Effect.gen(function*() {
        const db = yield* Memory.make()
        const pool = yield* Pool.makePerFiber({ driver: db.driver, name: uniqueName("fiber"), policies: [] })
        const first = yield* Pool.use(pool, query(db))
        yield* db.kill(first, { notify: false })
        const failed = yield* Effect.either(Pool.use(pool, query(db)))
        assert.isTrue(failed._tag === "Left")
        const second = yield* Pool.use(pool, query(db))
        assert.notStrictEqual(second, first)
        // invalidated by hand, or a new generation: replaced too
        yield* Pool.invalidateAll(pool)
        const third = yield* Pool.use(pool, query(db))
        assert.notStrictEqual(third, second)
        yield* settle
        assert.strictEqual((yield* Pool.stats(pool)).open, 1)
      }))

    it.effect("closing the pool gives back the connections of fibers that are alive but not using theirs", () =>
      Effect.gen(function*() {
        const db = yield* Memory.make()
        const scope = yield* Scope.make()
        const pool = yield* Scope.extend(
          Pool.makePerFiber({ driver: db.driver, name: uniqueName("fiber"), policies: [] }),
          scope
        )
        yield* Pool.use(pool, query(db))
        // under the TestClock, a close that waited for `shutdownTimeout` would never end
        yield* Scope.close(scope, Exit.void)
        assert.strictEqual((yield* db.stats).open, 0)
        const closed = yield* Effect.flip(Pool.use(pool, query(db)))
        assert.strictEqual(closed._tag, "PoolClosedError")
      }))

    it.scoped("recreate makes a per-fiber pool again", () =>
      Effect.gen(function*() {
        const db = yield* Memory.make()
        const pool = yield* Pool.makePerFiber({ driver: db.driver, name: uniqueName("fiber"), policies: [], size: 2 })
        const again = yield* Pool.recreate(pool)
        assert.strictEqual(Pool.kind(again), "perFiber")
        assert.strictEqual((yield* Pool.stats(again)).maxOverflow, 2)
        const a = yield* Pool.use(again, query(db))
        assert.strictEqual(yield* Pool.use(again, query(db)), a)
      }))
  })

  describe("makeAssertion (AssertionPool)", () => {
    it.scoped("a second checkout while the connection is out fails at once, saying who holds it and where", () =>
      Effect.gen(function*() {
        const db = yield* Memory.make()
        const pool = yield* Pool.makeAssertion({ driver: db.driver, name: uniqueName("assert"), policies: [] })
        const a = yield* hold(pool)
        yield* a.got
        const error = yield* Effect.flip(Pool.use(pool, query(db)))
        assert.instanceOf(error, Pool.PoolAssertionError)
        assert.isTrue(isPoolError(error))
        if (!(error instanceof Pool.PoolAssertionError)) return
        assert.strictEqual(error.operation, "use")
        assert.strictEqual(error.holder, `#${a.fiber.id().id}`)
        assert.include(error.checkedOutAt ?? "", "Pool.kinds.test.ts")
        assert.include(error.message, "already checked out")
        assert.strictEqual((yield* Effect.flip(Effect.scoped(Pool.get(pool))))._tag, "PoolAssertionError")
        assert.strictEqual((yield* Effect.flip(Pool.checkout(pool)))._tag, "PoolAssertionError")
        assert.strictEqual((yield* Pool.stats(pool)).waiting, 0)
        yield* a.release
        yield* settle
        // free again: the same connection
        assert.strictEqual(yield* Pool.use(pool, query(db)), yield* a.got)
        assert.strictEqual((yield* db.stats).opened, 1)
      }))

    it.scoped("a nested checkout in the same fiber fails too; one after another is fine", () =>
      Effect.gen(function*() {
        const db = yield* Memory.make()
        const pool = yield* Pool.makeAssertion({
          driver: db.driver,
          name: uniqueName("assert"),
          policies: [],
          storeTraceback: false
        })
        const nested = yield* Effect.flip(Pool.transaction(pool, () => Pool.use(pool, query(db))))
        assert.strictEqual(nested._tag, "PoolAssertionError")
        if (nested._tag === "PoolAssertionError") assert.isUndefined(nested.checkedOutAt)
        yield* Pool.use(pool, query(db))
        const lease = yield* Pool.checkout(pool)
        yield* Pool.checkin(pool, lease)
        yield* Effect.scoped(Pool.get(pool))
        yield* Pool.use(pool, query(db))
        assert.strictEqual((yield* db.stats).opened, 1)
      }))

    it.scoped("recreate makes an assertion pool again; layerAssertion provides one", () =>
      Effect.gen(function*() {
        const db = yield* Memory.make()
        const pool = yield* Pool.makeAssertion({ driver: db.driver, name: uniqueName("assert"), policies: [] })
        const again = yield* Pool.recreate(pool)
        assert.strictEqual(Pool.kind(again), "assertion")
        const error = yield* Effect.flip(Pool.use(again, () => Pool.use(again, query(db))))
        assert.strictEqual(error._tag, "PoolAssertionError")
        class Db extends Context.Tag("kinds/assert")<
          Db,
          Pool.Pool<Memory.MemoryConnection, Memory.MemoryError | Pool.PoolAssertionError>
        >() {}
        const layered = yield* Effect.provide(
          Effect.flatMap(Db, (p) => Effect.flip(Pool.use(p, () => Pool.use(p, query(db))))),
          Pool.layerAssertion(Db, { driver: db.driver, name: uniqueName("assert") })
        )
        assert.strictEqual(layered._tag, "PoolAssertionError")
        void Layer
      }))
  })
})
