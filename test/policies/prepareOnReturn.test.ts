/**
 * Prepare on return (Spanner's TransactionPingingPool) on the Memory database under TestClock: a returned
 * connection is prepared off the borrower's path and lent only once prepared; with `pending` it waits for the
 * schedule, the `beginPending` command or a checkout that finds nothing idle; a failed preparation closes it, and
 * shutdown leaves nothing waiting.
 */
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber, Option, Scope, TestClock } from "effect"
import * as Memory from "../../src/Driver/Memory.js"
import * as Policy from "../../src/Policy.js"
import * as Pool from "../../src/Pool.js"
import { settle, uniqueName } from "../utils/pool.js"

type C = Memory.MemoryConnection
type E = Memory.MemoryError
type Pending = NonNullable<Parameters<typeof Policy.prepareOnReturn<C, E>>[1]>["pending"]

/** The marks the preparations left on a connection (the use count each was prepared after), in order. */
const marks = (connection: C): ReadonlyArray<string> =>
  connection.statements.filter((sql) => sql.startsWith("SET prepared")).map((sql) => sql.slice(-2, -1))

/**
 * A Memory database and a pool whose one policy is a `prepareOnReturn` that marks the connection with
 * `SET prepared = '<uses>'`, after waiting for `gate` when one is given (returns only: a fresh connection, use
 * count 0, is marked at once).
 */
const setup = (
  options: Omit<Pool.BaseOptions, "name"> & {
    readonly pending?: Pending
    readonly gate?: Deferred.Deferred<void>
  } = {}
) =>
  Effect.gen(function*() {
    const { gate, pending, ...rest } = options
    const db = yield* Memory.make()
    const policy = Policy.prepareOnReturn<C, E>(
      (connection, record) =>
        Effect.zipRight(
          gate === undefined || record.uses === 0 ? Effect.void : Deferred.await(gate),
          Effect.asVoid(db.driver.query(connection, `SET prepared = '${record.uses}'`))
        ),
      pending === undefined ? undefined : { pending }
    )
    const pool = yield* Pool.make({ ...rest, name: uniqueName("prepare"), driver: db.driver, policies: [policy] })
    const commands = yield* Pool.policy(pool, policy)
    return { db, pool, commands }
  })

/**
 * Lends `n` connections at once (so `n` are open) and returns them all; `lent` holds the marks each had while it
 * was lent (a preparation runs as soon as a connection comes back).
 */
const lendAtOnce = (pool: Pool.Pool<C, E>, n: number) =>
  Effect.gen(function*() {
    const leases = yield* Effect.forEach(Array.from({ length: n }), () => Pool.checkout(pool))
    const lent = leases.map((lease) => marks(lease.connection))
    yield* Effect.forEach(leases, (lease) => Pool.checkin(pool, lease), { discard: true })
    return Object.assign(leases.map((lease) => lease.connection), { lent })
  })

describe("Policy.prepareOnReturn", () => {
  it.scoped("prepares a returned connection before it is lent again", () =>
    Effect.gen(function*() {
      const { db, pool } = yield* setup({ size: 1, maxOverflow: 0 })
      yield* Pool.use(pool, (c) => db.driver.query(c, "SELECT 1"))
      yield* settle
      const statements = yield* Pool.use(pool, (c) =>
        Effect.map(db.driver.query(c, "INSERT INTO t VALUES (2)"), () => c.statements.slice()))
      // what the preparation ran is on the connection before the next borrower's statement
      assert.deepStrictEqual(statements, [
        "SET prepared = '0'",
        "SELECT 1",
        "SET prepared = '1'",
        "INSERT INTO t VALUES (2)"
      ])
    }))

  it.scoped("prepares a fresh connection before its first lending", () =>
    Effect.gen(function*() {
      const { pool } = yield* setup({ size: 2, min: 2 })
      yield* settle
      const { lent } = yield* lendAtOnce(pool, 2)
      assert.deepStrictEqual(lent, [["0"], ["0"]])
    }))

  it.scoped("a connection being prepared is not lendable: it counts as maintained and a checkout opens another", () =>
    Effect.gen(function*() {
      const gate = yield* Deferred.make<void>()
      const { pool } = yield* setup({ size: 2, gate })
      const first = yield* Pool.use(pool, (c) => Effect.succeed(c.id))
      const stats = yield* Pool.stats(pool)
      assert.deepStrictEqual([stats.maintained, stats.idle, stats.inUse, stats.open], [1, 0, 0, 1])
      const second = yield* Pool.use(pool, (c) => Effect.succeed(c.id))
      assert.notStrictEqual(second, first, "the connection being prepared was not lent")
      yield* Deferred.succeed(gate, undefined)
      yield* settle
      const after = yield* Pool.stats(pool)
      assert.deepStrictEqual([after.maintained, after.idle], [0, 2])
    }))

  it.scoped("a checkout with no room waits for the preparation and gets the prepared connection", () =>
    Effect.gen(function*() {
      const gate = yield* Deferred.make<void>()
      const { pool } = yield* setup({ size: 1, maxOverflow: 0, gate })
      yield* Pool.use(pool, () => Effect.void)
      const next = yield* Effect.fork(Pool.use(pool, (c) => Effect.succeed(marks(c))))
      yield* settle
      assert.isTrue(Option.isNone(yield* Fiber.poll(next)), "not lent while preparing")
      assert.strictEqual((yield* Pool.stats(pool)).waiting, 1)
      yield* Deferred.succeed(gate, undefined)
      assert.deepStrictEqual(yield* Fiber.join(next), ["0", "1"])
    }))

  it.scoped("with a pending schedule, nothing is prepared until the schedule steps", () =>
    Effect.gen(function*() {
      const { commands, pool } = yield* setup({ size: 2, pending: "1 second" })
      yield* TestClock.adjust("200 millis")
      const [connection] = yield* lendAtOnce(pool, 1)
      yield* settle
      assert.strictEqual(yield* commands.pending, 1)
      assert.deepStrictEqual(marks(connection!), ["0"], "not prepared yet")
      assert.strictEqual((yield* Pool.stats(pool)).maintained, 1)
      yield* TestClock.adjust("799 millis")
      assert.deepStrictEqual(marks(connection!), ["0"], "not before the schedule's step")
      yield* TestClock.adjust("1 millis")
      yield* settle
      assert.deepStrictEqual(marks(connection!), ["0", "1"])
      assert.strictEqual(yield* commands.pending, 0)
      const stats = yield* Pool.stats(pool)
      assert.deepStrictEqual([stats.maintained, stats.idle], [0, 1])
    }))

  it.scoped("beginPending prepares every pending connection and answers how many", () =>
    Effect.gen(function*() {
      const { commands, pool } = yield* setup({ size: 3, pending: "manual" })
      const connections = yield* lendAtOnce(pool, 3)
      yield* settle
      assert.strictEqual(yield* commands.pending, 3)
      // "manual": no schedule lets them go
      yield* TestClock.adjust("1 hour")
      assert.strictEqual(yield* commands.pending, 3)
      assert.strictEqual(yield* commands.beginPending, 3)
      // answered once they are prepared
      assert.deepStrictEqual(connections.map(marks), [["0", "1"], ["0", "1"], ["0", "1"]])
      assert.strictEqual(yield* commands.pending, 0)
      yield* settle
      assert.strictEqual((yield* Pool.stats(pool)).idle, 3)
      assert.strictEqual(yield* commands.beginPending, 0, "nothing left pending")
    }))

  it.scoped("a checkout that finds no idle connection lets the pending ones go", () =>
    Effect.gen(function*() {
      const { commands, pool } = yield* setup({ size: 2, maxOverflow: 0, pending: "manual" })
      yield* lendAtOnce(pool, 2)
      yield* settle
      assert.strictEqual(yield* commands.pending, 2)
      const [lent, pendingMeanwhile, stats] = yield* Pool.use(pool, (c) =>
        Effect.all([Effect.succeed(marks(c)), commands.pending, Pool.stats(pool)]))
      assert.deepStrictEqual(lent, ["0", "1"], "lent prepared")
      assert.strictEqual(pendingMeanwhile, 0, "every pending connection went")
      assert.deepStrictEqual([stats.open, stats.idle, stats.maintained, stats.inUse], [2, 1, 0, 1])
      // it comes back pending again
      yield* settle
      assert.strictEqual(yield* commands.pending, 1)
    }))

  it.scoped("a failed preparation closes the connection and the pool goes on", () =>
    Effect.gen(function*() {
      const { commands, db, pool } = yield* setup({ size: 2, pending: "manual" })
      const [a, b] = yield* lendAtOnce(pool, 2)
      yield* settle
      // the first preparation to run fails
      yield* db.failNextQueries(1)
      assert.strictEqual(yield* commands.beginPending, 1, "only the one that succeeded counts")
      yield* settle
      const stats = yield* Pool.stats(pool)
      assert.deepStrictEqual([stats.closedBy.resetFailed, stats.open, stats.idle], [1, 1, 1])
      assert.deepStrictEqual([a!.closed, b!.closed].filter(Boolean).length, 1)
      // the pool serves on: the prepared survivor, then a fresh connection beside it
      const ids = yield* Effect.map(lendAtOnce(pool, 2), (cs) => cs.map((c) => marks(c).length))
      assert.sameMembers(ids, [1, 2])
    }))

  it.scoped("a failed immediate preparation closes the connection (resetFailed)", () =>
    Effect.gen(function*() {
      const { db, pool } = yield* setup({ size: 1, maxOverflow: 0 })
      const first = yield* Pool.use(pool, (c) => Effect.as(db.failNextQueries(1), c))
      yield* settle
      assert.isTrue(first.closed)
      assert.strictEqual((yield* Pool.stats(pool)).closedBy.resetFailed, 1)
      const next = yield* Pool.use(pool, (c) => Effect.succeed(c))
      assert.notStrictEqual(next.id, first.id)
    }))

  it.scoped("shutdown with pending connections ends at once and closes them, leaving nothing waiting", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const { commands, db, pool } = yield* setup({ size: 2, pending: "manual" }).pipe(Scope.extend(scope))
      yield* lendAtOnce(pool, 2)
      yield* settle
      assert.strictEqual(yield* commands.pending, 2)
      // no clock adjustment: a shutdown that waited for its deadline would never end under TestClock
      yield* Scope.close(scope, Exit.void)
      const stats = yield* Pool.stats(pool)
      assert.deepStrictEqual([stats.open, stats.maintained, stats.closedBy.shutdown], [0, 0, 2])
      assert.strictEqual((yield* db.stats).open, 0)
      assert.strictEqual(yield* commands.pending, 0, "the interrupted waits removed themselves")
      assert.strictEqual(yield* commands.beginPending, 0)
    }))

  it.scoped("a beginPending waiting on a preparation the shutdown interrupts answers instead of hanging", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const never = yield* Deferred.make<void>()
      const { commands, db, pool } = yield* setup({ size: 1, pending: "manual", gate: never }).pipe(
        Scope.extend(scope)
      )
      yield* lendAtOnce(pool, 1)
      yield* settle
      const begun = yield* Effect.fork(commands.beginPending)
      yield* settle
      assert.isTrue(Option.isNone(yield* Fiber.poll(begun)), "waits for the preparation")
      yield* Scope.close(scope, Exit.void)
      assert.strictEqual(yield* Fiber.join(begun), 0)
      assert.strictEqual((yield* db.stats).open, 0)
    }))
})
