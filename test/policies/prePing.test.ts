/**
 * `Policy.prePing` (SQLAlchemy's `pool_pre_ping`): a ping before lending, skipped within HikariCP's 500 ms window;
 * a disconnect is absorbed (a new generation, a fresh connection, no error), a hanging ping is bounded by its own
 * timeout and by the checkout's deadline, and any other failure goes to the caller without a retry.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Option, TestClock } from "effect"
import type { MemoryConnection } from "../../src/Driver/Memory.js"
import { MemoryError } from "../../src/Driver/Memory.js"
import * as Policy from "../../src/Policy.js"
import * as Pool from "../../src/Pool.js"
import { ConnectionRejected, PoolCheckoutRejectedError, PoolTimeoutError } from "../../src/PoolError.js"
import { memoryPool, settle } from "../utils/pool.js"

const pings = (connection: MemoryConnection): number =>
  connection.statements.filter((statement) => statement === "SELECT 1").length

/** A liveness check that hangs (until interrupted) on the first `n` pings, then pings normally. */
const hangFirst = (n: number, options?: { readonly deaf?: boolean }) => {
  let calls = 0
  return Policy.make<MemoryConnection, MemoryError>({
    name: "hangFirst",
    liveness: (context) =>
      Effect.suspend(() =>
        ++calls <= n ?
          (options?.deaf === true ? Effect.uninterruptible(Effect.sleep("1 hour")) : Effect.never) :
          context.driver.ping(context.connection)
      )
  })
}

describe("Policy.prePing", () => {
  it.scoped("skips the ping within 500 ms of a return or a validation, and pings after", () =>
    Effect.gen(function*() {
      const { db, pool } = yield* memoryPool({ size: 1, policies: [Policy.prePing()] })
      const id = (c: MemoryConnection) => Effect.succeed(c)
      // a new connection has just been heard from: lent without a ping
      const connection = yield* Pool.use(pool, id)
      assert.strictEqual(pings(connection), 0)
      yield* TestClock.adjust("499 millis")
      yield* Pool.use(pool, id)
      assert.strictEqual(pings(connection), 0, "499 ms after its return")
      yield* TestClock.adjust("500 millis")
      yield* Pool.use(pool, id)
      assert.strictEqual(pings(connection), 1, "500 ms after its return")
      const record = yield* Pool.use(pool, (c) => Pool.record(pool, c))
      assert.strictEqual(pings(connection), 1, "just returned")
      assert.strictEqual(record.lastValidatedAt, 999)
      assert.strictEqual((yield* db.stats).opened, 1)
    }))

  it.scoped("skipWithin sets the window; 0 pings every checkout", () =>
    Effect.gen(function*() {
      const { pool } = yield* memoryPool({ size: 1, policies: [Policy.prePing({ skipWithin: "0 millis" })] })
      const connection = yield* Pool.use(pool, Effect.succeed)
      yield* Pool.use(pool, Effect.succeed)
      assert.strictEqual(pings(connection), 2)
    }))

  it.scoped("absorbs a server restart: the caller gets a fresh connection and no error, older ones are stale", () =>
    Effect.gen(function*() {
      const { db, pool } = yield* memoryPool({ size: 3, min: 3, policies: [Policy.prePing()] })
      yield* settle
      const before = yield* db.connections
      yield* TestClock.adjust("1 second")
      // every session dies and nothing tells the pool
      yield* db.restart("0 millis", { notify: false })
      const queries = (yield* db.stats).queries
      const lent = yield* Pool.use(pool, (c) => Effect.as(db.driver.query(c, "SELECT 1"), c))
      assert.isTrue(before.every((c) => c.id !== lent.id), "a fresh connection")
      yield* settle
      const stats = yield* Pool.stats(pool)
      assert.deepStrictEqual(
        [stats.generation, stats.closedBy["rejected"], stats.closedBy["stale"]],
        [1, 1, 2],
        "one pinged dead, the two others closed as stale without a ping each"
      )
      assert.strictEqual((yield* db.stats).queries, queries + 2, "one ping that failed, then the caller's statement")
      assert.isTrue(before.every((c) => c.closed))
      const record = yield* Pool.use(pool, (c) => Pool.record(pool, c))
      assert.strictEqual(record.generation, 1, "the fresh connections belong to the new generation")
    }))

  it.scoped("absorbs one killed connection the same way", () =>
    Effect.gen(function*() {
      const { db, pool } = yield* memoryPool({ size: 2, min: 2, policies: [Policy.prePing()] })
      yield* settle
      const [first, second] = yield* db.connections
      yield* TestClock.adjust("1 second")
      yield* db.kill(first!, { notify: false })
      const lent = yield* Pool.use(pool, Effect.succeed)
      assert.notStrictEqual(lent.id, first!.id)
      assert.notStrictEqual(lent.id, second!.id, "the older one was invalidated with it")
      const record = yield* Pool.use(pool, (c) => Pool.record(pool, c))
      assert.strictEqual(record.generation, 1)
    }))

  it.scoped("bounds a hanging ping by its timeout, closes that connection, and lends another", () =>
    Effect.gen(function*() {
      const { db, pool } = yield* memoryPool({
        size: 2,
        min: 2,
        timeout: "30 seconds",
        policies: [hangFirst(1), Policy.prePing({ timeout: "1 second" })]
      })
      yield* settle
      const [first, second] = yield* db.connections
      yield* TestClock.adjust("1 second")
      const borrower = yield* Effect.fork(Pool.use(pool, Effect.succeed))
      yield* TestClock.adjust("999 millis")
      assert.isTrue(Option.isNone(yield* Fiber.poll(borrower)))
      yield* TestClock.adjust("1 millis")
      const lent = yield* Fiber.join(borrower)
      assert.strictEqual(lent.id, second!.id)
      assert.isTrue(first!.closed)
      const stats = yield* Pool.stats(pool)
      assert.deepStrictEqual([stats.closedBy["rejected"], stats.generation], [1, 0], "no answer is no disconnect")
    }))

  it.scoped("bounds a ping the driver cannot interrupt by the same timeout", () =>
    Effect.gen(function*() {
      const { pool } = yield* memoryPool({
        size: 2,
        min: 2,
        policies: [hangFirst(1, { deaf: true }), Policy.prePing({ timeout: "1 second" })]
      })
      yield* settle
      yield* TestClock.adjust("1 second")
      const borrower = yield* Effect.fork(Pool.use(pool, Effect.succeed))
      yield* TestClock.adjust("1 second")
      yield* settle
      assert.isTrue(Option.isSome(yield* Fiber.poll(borrower)), "served at the ping's timeout")
    }))

  it.scoped("bounds the ping by the checkout's own deadline: PoolTimeoutError in phase validate", () =>
    Effect.gen(function*() {
      const { db, pool } = yield* memoryPool({
        size: 1,
        min: 1,
        policies: [hangFirst(1), Policy.prePing({ timeout: "5 seconds" })]
      })
      yield* settle
      const [connection] = yield* db.connections
      yield* TestClock.adjust("1 second")
      const borrower = yield* Effect.fork(Pool.use(pool, Effect.succeed, { timeout: "200 millis" }))
      yield* TestClock.adjust("200 millis")
      const exit = yield* Fiber.await(borrower)
      assert.isTrue(Exit.isFailure(exit))
      const error = yield* Effect.flip(exit)
      assert.instanceOf(error, PoolTimeoutError)
      assert.strictEqual((error as PoolTimeoutError).phase, "validate")
      assert.isTrue(connection!.closed, "a validation cut short closes the connection")
    }))

  it.scoped("fails the checkout with any other ping failure, once, without a retry", () =>
    Effect.gen(function*() {
      const { db, pool } = yield* memoryPool({ size: 3, min: 3, policies: [Policy.prePing()] })
      yield* settle
      yield* TestClock.adjust("1 second")
      const queries = (yield* db.stats).queries
      // a statement error, not a disconnect (a wrong liveness query, a permission error)
      yield* db.failNextQueries(1)
      const error = yield* Effect.flip(Pool.use(pool, Effect.succeed))
      assert.instanceOf(error, PoolCheckoutRejectedError)
      const rejected = error as PoolCheckoutRejectedError
      assert.strictEqual(rejected.attempts, 1)
      assert.instanceOf(rejected.cause, ConnectionRejected)
      const rejection = rejected.cause as ConnectionRejected
      assert.strictEqual(rejection.reason, "prePing: ping failed")
      assert.instanceOf(rejection.cause, MemoryError)
      assert.strictEqual((rejection.cause as MemoryError).reason, "QueryFailed")
      assert.isFalse(rejection.retry)
      yield* settle
      const stats = yield* Pool.stats(pool)
      assert.strictEqual((yield* db.stats).queries, queries + 1, "one ping, no retry on another connection")
      assert.deepStrictEqual([stats.closedBy["rejected"], stats.generation], [1, 0], "the others are untouched")
    }))
})
