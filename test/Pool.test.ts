import { assert, describe, it } from "@effect/vitest"
import {
  Cause,
  Chunk,
  ConfigProvider,
  Context,
  Deferred,
  type Duration,
  Effect,
  Either,
  Exit,
  Fiber,
  Layer,
  Metric,
  MetricKey,
  Option,
  Ref,
  Schema,
  Scope,
  Stream,
  TestClock,
  Tracer
} from "effect"
import * as Driver from "../src/Driver.js"
import type { MemoryConnection, MemoryError } from "../src/Driver/Memory.js"
import * as Memory from "../src/Driver/Memory.js"
import * as Policy from "../src/Policy.js"
import * as Pool from "../src/Pool.js"
import { ConnectionRejected, PoolConfigError, PoolTimeoutError } from "../src/PoolError.js"
import type { PoolEvent } from "../src/PoolEvent.js"
import { memoryPool, settle, uniqueName } from "./utils/pool.js"

/** Checks out a connection in a forked fiber and holds it until `release` completes. */
const hold = (pool: Pool.Pool<MemoryConnection, MemoryError>) =>
  Effect.gen(function*() {
    const release = yield* Deferred.make<void>()
    const got = yield* Deferred.make<MemoryConnection>()
    // forkScoped: the holder is interrupted before the pool's own finalizer waits for lent connections
    const fiber = yield* Effect.forkScoped(Effect.scoped(Effect.gen(function*() {
      const connection = yield* Pool.get(pool)
      yield* Deferred.succeed(got, connection)
      yield* Deferred.await(release)
      return connection.id
    })))
    return { release: Deferred.succeed(release, undefined), got: Deferred.await(got), fiber } as const
  })

describe("Pool", () => {
  describe("checkout and return", () => {
    it.scoped("reuses a returned connection", () =>
      Effect.gen(function*() {
        const { db, pool } = yield* memoryPool()
        const first = yield* Pool.use(pool, (c) => Effect.succeed(c.id))
        const second = yield* Pool.use(pool, (c) => Effect.succeed(c.id))
        assert.strictEqual(first, second)
        assert.strictEqual((yield* db.stats).opened, 1)
      }))

    it.scoped("a checkout built once reads the pool anew each time it runs", () =>
      Effect.gen(function*() {
        const { pool } = yield* memoryPool({ size: 1, maxOverflow: 0 })
        // built before any connection exists: the fast path must look at the pool when it runs, not when built
        const viaUse = Pool.use(pool, (c) => Effect.succeed(c.id))
        const viaGet = Effect.scoped(Effect.map(Pool.get(pool), (c) => c.id))
        const viaCheckout = Effect.flatMap(Pool.checkout(pool), (lease) => Effect.as(Pool.checkin(pool, lease), 0))
        const ids = yield* Effect.all([viaUse, viaUse, viaGet, viaGet, viaCheckout, viaUse], { concurrency: 3 })
        assert.strictEqual(new Set(ids.slice(0, 4)).size, 1)
        const stats = yield* Pool.stats(pool)
        assert.deepStrictEqual([stats.open, stats.inUse, stats.waiting], [1, 0, 0])
      }))

    it.scoped("reports SQLAlchemy's status line", () =>
      Effect.gen(function*() {
        const { pool } = yield* memoryPool({ size: 5, min: 2 })
        yield* settle
        assert.strictEqual(
          yield* Pool.status(pool),
          "Pool size: 5  Connections in pool: 2 Current Overflow: -3 Current Checked out connections: 0"
        )
        const stats = yield* Pool.stats(pool)
        assert.deepStrictEqual([stats.open, stats.idle, stats.inUse, stats.overflow], [2, 2, 0, -3])
      }))

    it.scoped("opens overflow connections under load and closes them on return to a full pool", () =>
      Effect.gen(function*() {
        const { db, pool } = yield* memoryPool({ size: 1, maxOverflow: 2 })
        const holders = yield* Effect.all([hold(pool), hold(pool), hold(pool)])
        yield* Effect.forEach(holders, (h) => h.got)
        assert.strictEqual((yield* db.stats).open, 3)
        assert.strictEqual((yield* Pool.stats(pool)).overflow, 2)
        yield* Effect.forEach(holders, (h) => Effect.zipRight(h.release, Fiber.join(h.fiber)))
        const stats = yield* Pool.stats(pool)
        assert.deepStrictEqual([stats.open, stats.idle, stats.closedBy.overflow], [1, 1, 2])
        assert.strictEqual((yield* db.stats).open, 1)
      }))

    it.scoped("serves waiters in arrival order, handing a returned connection to the oldest", () =>
      Effect.gen(function*() {
        const { pool } = yield* memoryPool({ size: 1, maxOverflow: 0 })
        const holder = yield* hold(pool)
        yield* holder.got
        const order: Array<number> = []
        const waiters = yield* Effect.forEach(
          [1, 2, 3, 4],
          (i) => Effect.fork(Pool.use(pool, () => Effect.sync(() => order.push(i)))).pipe(Effect.zipLeft(settle))
        )
        assert.strictEqual((yield* Pool.stats(pool)).waiting, 4)
        yield* holder.release
        yield* Effect.forEach(waiters, Fiber.join)
        assert.deepStrictEqual(order, [1, 2, 3, 4])
      }))

    it.scoped("never lets a newcomer take a connection while others wait", () =>
      Effect.gen(function*() {
        const { pool } = yield* memoryPool({ size: 1, maxOverflow: 0 })
        const holder = yield* hold(pool)
        yield* holder.got
        const order: Array<string> = []
        const waiter = yield* Effect.fork(Pool.use(pool, () => Effect.sync(() => order.push("waiter"))))
        yield* settle
        // the return and a new checkout in the same step: the returned connection is the waiter's already
        yield* holder.release
        const newcomer = yield* Effect.fork(Pool.use(pool, () => Effect.sync(() => order.push("newcomer"))))
        yield* Fiber.join(waiter)
        yield* Fiber.join(newcomer)
        assert.deepStrictEqual(order, ["waiter", "newcomer"])
      }))

    it.scoped("lends the most recently returned connection with lifo and the longest idle with fifo", () =>
      Effect.gen(function*() {
        for (const order of ["lifo", "fifo"] as const) {
          const { pool } = yield* memoryPool({ size: 2, order })
          const a = yield* hold(pool)
          const b = yield* hold(pool)
          const idA = (yield* a.got).id
          const idB = (yield* b.got).id
          yield* a.release
          yield* settle
          yield* b.release
          yield* settle
          const next = yield* Pool.use(pool, (c) => Effect.succeed(c.id))
          assert.strictEqual(next, order === "lifo" ? idB : idA, order)
        }
      }))

    it.scoped("keeps the connection record with uses, timestamps, labels and properties", () =>
      Effect.gen(function*() {
        const { pool } = yield* memoryPool({ labels: { role: "primary" } })
        yield* TestClock.adjust("1 second")
        yield* Pool.use(pool, (c) =>
          Effect.flatMap(Pool.record(pool, c), (record) =>
            Effect.sync(() => {
              record.properties.set("seen", true)
            })))
        yield* TestClock.adjust("1 second")
        const record = yield* Pool.use(pool, (c) => Pool.record(pool, c))
        assert.strictEqual(record.uses, 2)
        assert.strictEqual(record.createdAt, 1000)
        assert.strictEqual(record.lastUsedAt, 2000)
        assert.deepStrictEqual(record.labels, { role: "primary" })
        assert.strictEqual(record.properties.get("seen"), true)
      }))

    it.scoped("passes the record and pool name to the driver's connect", () =>
      Effect.gen(function*() {
        const seen: Array<string> = []
        const driver = Driver.make({
          connect: (context) =>
            Effect.sync(() => {
              seen.push(`${context.poolName}#${context.record.id}`)
              return { id: context.record.id }
            })
        })
        const name = uniqueName("record")
        const pool = yield* Pool.make({ driver, name })
        yield* Pool.use(pool, () => Effect.void)
        assert.deepStrictEqual(seen, [`${name}#1`])
      }))
  })

  describe("timeouts and failures", () => {
    it.scoped("fails a checkout that waits past the timeout with a typed error carrying the stats", () =>
      Effect.gen(function*() {
        const { pool } = yield* memoryPool({ size: 1, maxOverflow: 0, timeout: "1 second" })
        const holder = yield* hold(pool)
        yield* holder.got
        const waiter = yield* Effect.fork(Pool.use(pool, () => Effect.void))
        yield* settle
        yield* TestClock.adjust("999 millis")
        assert.isNull(yield* Fiber.poll(waiter).pipe(Effect.map(Option.getOrNull)))
        yield* TestClock.adjust("1 millis")
        const exit = yield* Fiber.await(waiter)
        assert.isTrue(Exit.isFailure(exit))
        const timeout = Cause.failureOption((exit as Exit.Failure<void, unknown>).cause).pipe(
          Option.getOrThrow
        ) as PoolTimeoutError
        assert.instanceOf(timeout, PoolTimeoutError)
        assert.strictEqual(timeout.phase, "wait")
        assert.strictEqual(timeout.stats.inUse, 1)
        assert.strictEqual(timeout.stats.waiting, 1)
        assert.strictEqual((yield* Pool.stats(pool)).waiting, 0)
        assert.strictEqual((yield* Pool.stats(pool)).timeouts, 1)
      }))

    it.scoped("gives a failed connect's error to the waiter it was opened for and restores the counters", () =>
      Effect.gen(function*() {
        const { db, pool } = yield* memoryPool({ size: 2 })
        yield* db.failNextConnects(1)
        const result = yield* Effect.either(Pool.use(pool, () => Effect.void))
        assert.isTrue(Either.isLeft(result))
        const error = (result as Either.Left<{ _tag: string; reason?: string }, void>).left
        assert.strictEqual(error._tag, "MemoryError")
        assert.strictEqual(error.reason, "ConnectFailed")
        const stats = yield* Pool.stats(pool)
        assert.deepStrictEqual([stats.open, stats.opening, stats.waiting, stats.connectFailures], [0, 0, 0, 1])
        // the next checkout connects again, once the backoff after the failure has passed
        const next = yield* Effect.fork(Pool.use(pool, () => Effect.void))
        yield* TestClock.adjust("1 second")
        yield* Fiber.join(next)
        assert.strictEqual((yield* Pool.stats(pool)).open, 1)
      }))

    it.scoped("gives every waiter the real cause when the database is down", () =>
      Effect.gen(function*() {
        const { db, pool } = yield* memoryPool({ size: 2, maxOverflow: 1, timeout: "1 second" })
        yield* db.down
        const all = yield* Effect.fork(Effect.all(
          Array.from({ length: 5 }, () => Effect.either(Pool.use(pool, () => Effect.void))),
          { concurrency: "unbounded" }
        ))
        // the first three connect at once; the other two wait for the backoff's probes or their deadline
        yield* TestClock.adjust("2 seconds")
        const results = yield* Fiber.join(all)
        for (const result of results) {
          assert.isTrue(Either.isLeft(result))
          const error = (result as Either.Left<{ _tag: string; reason?: string; cause?: { reason?: string } }, void>)
            .left
          const reason = error._tag === "PoolTimeoutError" ? error.cause?.reason : error.reason
          assert.strictEqual(reason, "ConnectRefused")
        }
        assert.strictEqual((yield* Pool.stats(pool)).opening, 0)
      }))

    it.scoped("times out with the last connect failure as the cause while connects are failing", () =>
      Effect.gen(function*() {
        const { db, pool } = yield* memoryPool({ size: 1, maxOverflow: 1, timeout: "1 second" })
        const holder = yield* hold(pool)
        yield* holder.got
        yield* db.applyPlan({ connects: ["fail", "never"], queries: [], slowMillis: 1 })
        const first = yield* Effect.fork(Effect.either(Pool.use(pool, () => Effect.void)))
        const second = yield* Effect.fork(Effect.either(Pool.use(pool, () => Effect.void)))
        yield* settle
        const firstResult = yield* Fiber.join(first)
        assert.strictEqual((firstResult as Either.Left<{ reason: string }, void>).left.reason, "ConnectFailed")
        yield* TestClock.adjust("1 second")
        const secondResult = yield* Fiber.join(second)
        const timeout = (secondResult as Either.Left<any, void>).left
        assert.strictEqual(timeout._tag, "PoolTimeoutError")
        assert.strictEqual(timeout.cause.reason, "ConnectFailed")
        assert.include(timeout.message, "last connect failure")
      }))

    it.scoped("hands a late connection to the next waiter when the one it was opened for timed out", () =>
      Effect.gen(function*() {
        const { db, pool } = yield* memoryPool({ size: 1, maxOverflow: 0, timeout: "1 second" })
        yield* db.setLatency({ connect: "1500 millis" })
        const first = yield* Effect.fork(Effect.either(Pool.use(pool, (c) => Effect.succeed(c.id))))
        yield* settle
        yield* TestClock.adjust("1 second")
        assert.isTrue(Either.isLeft(yield* Fiber.join(first)))
        const second = yield* Effect.fork(Pool.use(pool, (c) => Effect.succeed(c.id)))
        yield* settle
        yield* TestClock.adjust("500 millis")
        assert.strictEqual(yield* Fiber.join(second), 1)
        const stats = yield* Pool.stats(pool)
        assert.deepStrictEqual([stats.opened, stats.open, stats.waiting], [1, 1, 0])
      }))

    it.scoped("fails at once with PoolExhaustedError when maxWaiters are already waiting", () =>
      Effect.gen(function*() {
        const { pool } = yield* memoryPool({ size: 1, maxOverflow: 0, maxWaiters: 1 })
        const holder = yield* hold(pool)
        yield* holder.got
        yield* Effect.fork(Pool.use(pool, () => Effect.void))
        yield* settle
        const result = yield* Effect.either(Pool.use(pool, () => Effect.void))
        assert.strictEqual((result as Either.Left<{ _tag: string }, void>).left._tag, "PoolExhaustedError")
      }))

    it.scoped("times out a hanging connect with connectTimeout and serves the waiter from a return meanwhile", () =>
      Effect.gen(function*() {
        const { db, pool } = yield* memoryPool({ size: 1, maxOverflow: 1, connectTimeout: "2 seconds" })
        const holder = yield* hold(pool)
        yield* holder.got
        yield* db.hangNextConnects(1)
        const waiter = yield* Effect.fork(Pool.use(pool, (c) => Effect.succeed(c.id)))
        yield* settle
        yield* holder.release
        assert.strictEqual(yield* Fiber.join(waiter), 1)
        yield* TestClock.adjust("2 seconds")
        yield* settle
        const stats = yield* Pool.stats(pool)
        assert.deepStrictEqual([stats.opening, stats.connectFailures], [0, 1])
      }))
  })

  describe("interruption", () => {
    it.scoped("an interrupted waiter leaves no queue entry and loses no connection", () =>
      Effect.gen(function*() {
        const { db, pool } = yield* memoryPool({ size: 1, maxOverflow: 0 })
        const holder = yield* hold(pool)
        yield* holder.got
        const waiters = yield* Effect.forEach([1, 2, 3], () => Effect.fork(Pool.use(pool, () => Effect.void)))
        yield* settle
        yield* Fiber.interrupt(waiters[1]!)
        assert.strictEqual((yield* Pool.stats(pool)).waiting, 2)
        yield* holder.release
        yield* Fiber.join(waiters[0]!)
        yield* Fiber.join(waiters[2]!)
        const stats = yield* Pool.stats(pool)
        assert.deepStrictEqual([stats.idle, stats.inUse, stats.waiting, stats.open], [1, 0, 0, 1])
        assert.strictEqual((yield* db.stats).open, 1)
      }))

    it.scoped("a waiter interrupted in the same step as a hand-off gives the connection to the next", () =>
      Effect.gen(function*() {
        const { pool } = yield* memoryPool({ size: 1, maxOverflow: 0 })
        const holder = yield* hold(pool)
        yield* holder.got
        const first = yield* Effect.fork(Pool.use(pool, () => Effect.succeed("first")))
        const second = yield* Effect.fork(Pool.use(pool, () => Effect.succeed("second")))
        yield* settle
        // hand the connection to `first` and interrupt it before it runs again
        yield* Effect.zipRight(holder.release, Fiber.interruptFork(first))
        yield* settle
        assert.strictEqual(yield* Fiber.join(second), "second")
        const stats = yield* Pool.stats(pool)
        assert.deepStrictEqual([stats.idle, stats.inUse, stats.waiting], [1, 0, 0])
      }))

    it.scoped("interrupting a borrower while it uses the connection returns it", () =>
      Effect.gen(function*() {
        const { pool } = yield* memoryPool({ size: 1, maxOverflow: 0 })
        const fiber = yield* Effect.fork(Pool.use(pool, () => Effect.never))
        yield* settle
        assert.strictEqual((yield* Pool.stats(pool)).inUse, 1)
        yield* Fiber.interrupt(fiber)
        assert.strictEqual((yield* Pool.stats(pool)).idle, 1)
      }))
  })

  describe("shutdown", () => {
    it.live("is bounded by shutdownTimeout even when the driver's close hangs", () =>
      Effect.gen(function*() {
        const scope = yield* Scope.make()
        const pool = yield* Pool.make({
          name: uniqueName("hanging-close"),
          acquire: Effect.acquireRelease(Effect.succeed({}), () => Effect.never),
          size: 2,
          min: 2,
          shutdownTimeout: "200 millis"
        }).pipe(Scope.extend(scope))
        yield* Pool.use(pool, () => Effect.void)
        const lease = yield* Pool.checkout(pool)
        assert.isDefined(lease)
        const started = Date.now()
        yield* Scope.close(scope, Exit.void)
        const took = Date.now() - started
        // 200 ms of drain, then at most min(shutdownTimeout, 1 s) of grace for the forced closes
        assert.isBelow(took, 1000, `took ${took} ms`)
        assert.isTrue((yield* Pool.stats(pool)).isClosed)
      }))

    it.scoped("fails waiters and new checkouts, closes idle now and lent ones on return", () =>
      Effect.gen(function*() {
        const scope = yield* Scope.make()
        const { db, pool } = yield* Scope.extend(memoryPool({ size: 2, maxOverflow: 0 }), scope)
        yield* Pool.use(pool, () => Effect.void)
        const holderA = yield* hold(pool)
        const holderB = yield* hold(pool)
        yield* holderA.got
        yield* holderB.got
        const waiter = yield* Effect.fork(Effect.either(Pool.use(pool, () => Effect.void)))
        yield* settle
        const closing = yield* Effect.fork(Scope.close(scope, Exit.void))
        yield* settle
        const waited = yield* Fiber.join(waiter)
        assert.strictEqual((waited as Either.Left<{ _tag: string }, void>).left._tag, "PoolClosedError")
        const late = yield* Effect.either(Pool.use(pool, () => Effect.void))
        assert.strictEqual((late as Either.Left<{ _tag: string }, void>).left._tag, "PoolClosedError")
        assert.isNull(Option.getOrNull(yield* Fiber.poll(closing)))
        yield* holderA.release
        yield* settle
        assert.strictEqual((yield* db.stats).open, 1)
        yield* holderB.release
        yield* Fiber.join(closing)
        const server = yield* db.stats
        assert.deepStrictEqual([server.open, server.opened, server.closed, server.closedTwice], [0, 2, 2, 0])
      }))

    it.scoped("closes lent connections anyway once shutdownTimeout passes", () =>
      Effect.gen(function*() {
        const scope = yield* Scope.make()
        const { db, pool } = yield* Scope.extend(memoryPool({ size: 1, shutdownTimeout: "5 seconds" }), scope)
        const holder = yield* hold(pool)
        yield* holder.got
        const closing = yield* Effect.fork(Scope.close(scope, Exit.void))
        yield* settle
        yield* TestClock.adjust("5 seconds")
        yield* Fiber.join(closing)
        assert.strictEqual((yield* db.stats).open, 0)
        // the borrower's late return is harmless
        yield* holder.release
        yield* Fiber.join(holder.fiber)
        assert.strictEqual((yield* db.stats).closedTwice, 0)
        assert.strictEqual((yield* Pool.stats(pool)).closedBy.shutdown, 1)
      }))

    it.effect("interrupts connects in flight and closes what they opened", () =>
      Effect.gen(function*() {
        const scope = yield* Scope.make()
        const { db, pool } = yield* Scope.extend(memoryPool({ size: 2 }), scope)
        yield* db.hangNextConnects(1)
        const waiter = yield* Effect.fork(Effect.either(Pool.use(pool, () => Effect.void)))
        yield* settle
        yield* Scope.close(scope, Exit.void)
        assert.isTrue(Either.isLeft(yield* Fiber.join(waiter)))
        const stats = yield* Pool.stats(pool)
        assert.deepStrictEqual([stats.opening, stats.open], [0, 0])
      }))
  })

  describe("configuration", () => {
    it.effect("fails construction with one error listing every problem", () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(Effect.scoped(Pool.make({
          acquire: Effect.succeed(1),
          name: "bad",
          size: -1,
          maxOverflow: 1.5,
          timeout: "soon" as Duration.DurationInput,
          order: "random" as "fifo"
        })))
        assert.instanceOf(error, PoolConfigError)
        assert.strictEqual(error.problems.length, 4, error.message)
        assert.include(error.message, "size")
        assert.include(error.message, "maxOverflow")
        assert.include(error.message, "timeout")
        assert.include(error.message, "order")
      }))

    it.effect("checks across fields even when another field is invalid", () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(Effect.scoped(Pool.make({
          acquire: Effect.succeed(1),
          size: -1,
          timeout: 0
        })))
        assert.strictEqual(error.problems.length, 2, error.message)
        assert.include(error.message, "size")
        assert.include(error.message, "timeout: must be more than 0")
      }))

    it.effect("rejects min above size + maxOverflow instead of clamping it", () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(Effect.scoped(Pool.make({
          acquire: Effect.succeed(1),
          size: 1,
          maxOverflow: 1,
          min: 3
        })))
        assert.deepStrictEqual(error.problems, ["min: Expected at most size (1), got 3"])
      }))

    it.scoped("decodes its options from JSON, encodes them back, and recreates the same pool", () =>
      Effect.gen(function*() {
        const decoded = yield* Schema.decodeUnknown(Pool.PoolConfig)({
          name: "json",
          size: 3,
          maxOverflow: "unbounded",
          timeout: "5 seconds",
          order: "lifo"
        })
        assert.strictEqual(decoded.maxOverflow, "unbounded")
        const db = yield* Memory.make()
        const pool = yield* Pool.make({ ...decoded, driver: db.driver, name: uniqueName("json") })
        const encoded = Pool.config(pool)
        assert.strictEqual(encoded.timeout, 5000)
        assert.strictEqual(encoded.maxOverflow, "unbounded")
        assert.strictEqual(encoded.order, "lifo")
        const again = yield* Pool.recreate(pool)
        assert.deepStrictEqual(Pool.config(again), encoded)
        assert.notStrictEqual(again, pool)
      }))

    it.effect("reads its options through Config in layerConfig", () =>
      Effect.gen(function*() {
        class Primary extends Context.Tag("test/Primary")<Primary, Pool.Pool<MemoryConnection, MemoryError>>() {}
        const db = yield* Memory.make()
        const name = uniqueName("env")
        const layer = Pool.layerConfig(Primary, db.driver, {
          name: Schema.Config("POOL_NAME", Schema.String),
          size: Schema.Config("POOL_SIZE", Schema.NumberFromString),
          timeout: Schema.Config("POOL_TIMEOUT", Schema.String)
        })
        const status = yield* Effect.flatMap(Primary, Pool.status).pipe(
          Effect.provide(layer),
          Effect.withConfigProvider(
            ConfigProvider.fromMap(new Map([["POOL_NAME", name], ["POOL_SIZE", "7"], ["POOL_TIMEOUT", "2 seconds"]]))
          )
        )
        assert.include(status, "Pool size: 7")
      }))

    it.effect("provides pools side by side under the caller's tags", () =>
      Effect.gen(function*() {
        class Primary extends Context.Tag("test/Primary2")<Primary, Pool.Pool<MemoryConnection, MemoryError>>() {}
        class Replica extends Context.Tag("test/Replica")<Replica, Pool.Pool<MemoryConnection, MemoryError>>() {}
        const primary = yield* Memory.make()
        const replica = yield* Memory.make()
        const layer = Layer.merge(
          Pool.layer(Primary, { driver: primary.driver, name: uniqueName("primary") }),
          Pool.layer(Replica, { driver: replica.driver, name: uniqueName("replica"), size: 2 })
        )
        yield* Effect.gen(function*() {
          yield* Pool.use(yield* Primary, () => Effect.void)
          yield* Pool.use(yield* Replica, () => Effect.void)
        }).pipe(Effect.provide(layer))
        assert.deepStrictEqual([(yield* primary.stats).opened, (yield* replica.stats).opened], [1, 1])
        assert.deepStrictEqual([(yield* primary.stats).open, (yield* replica.stats).open], [0, 0])
      }))
  })

  describe("manual checkout", () => {
    it.scoped("refuses a lease returned twice without corrupting the pool", () =>
      Effect.gen(function*() {
        const { pool } = yield* memoryPool({ size: 1, maxOverflow: 0 })
        const lease = yield* Pool.checkout(pool)
        yield* Pool.checkin(pool, lease)
        const other = yield* Pool.checkout(pool)
        const error = yield* Effect.flip(Pool.checkin(pool, lease))
        assert.strictEqual(error.reason, "ReturnedTwice")
        // the connection is still lent to `other`, and only once
        assert.strictEqual((yield* Pool.stats(pool)).inUse, 1)
        yield* Pool.checkin(pool, other)
        assert.deepStrictEqual([(yield* Pool.stats(pool)).inUse, (yield* Pool.stats(pool)).idle], [0, 1])
      }))

    it.scoped("refuses a foreign lease or connection", () =>
      Effect.gen(function*() {
        const a = yield* memoryPool()
        const b = yield* memoryPool()
        const lease = yield* Pool.checkout(a.pool)
        assert.strictEqual((yield* Effect.flip(Pool.checkin(b.pool, lease))).reason, "Foreign")
        assert.strictEqual((yield* Effect.flip(Pool.invalidate(b.pool, lease.connection))).reason, "Foreign")
        yield* Pool.checkin(a.pool, lease)
        assert.strictEqual((yield* Pool.stats(a.pool)).idle, 1)
      }))
  })

  describe("invalidation, detach, dispose", () => {
    it.scoped("closes a connection the driver reports busy when it comes back, with the driver's cause", () =>
      Effect.gen(function*() {
        let next = 0
        const driver = Driver.make<{ readonly id: number; running: boolean }>({
          connect: () => Effect.acquireRelease(Effect.sync(() => ({ id: next++, running: false })), () => Effect.void),
          busy: (c) => c.running ? "a statement is still running" : undefined
        })
        const pool = yield* Pool.make({ driver, size: 1, maxOverflow: 0 })
        const causes: Array<unknown> = []
        yield* Pool.listen(pool, { invalidate: (e) => Effect.sync(() => causes.push(e.cause)) })
        const first = yield* Pool.use(pool, (c) => Effect.succeed(c.id))
        // left running, as by an interrupted caller: the connection must not be lent again
        yield* Pool.use(pool, (c) => Effect.sync(() => (c.running = true)))
        const second = yield* Pool.use(pool, (c) => Effect.succeed(c.id))
        assert.notStrictEqual(first, second)
        assert.deepStrictEqual(causes, ["a statement is still running"])
        assert.strictEqual((yield* Pool.stats(pool)).closedBy["invalidated"], 1)
      }))

    it.scoped("hard invalidation closes the connection now; its return only checks in", () =>
      Effect.gen(function*() {
        const { db, pool } = yield* memoryPool()
        yield* Pool.use(pool, (c) =>
          Effect.gen(function*() {
            yield* Pool.invalidate(pool, c, { cause: "bad" })
            assert.isTrue(c.closed)
          }))
        const stats = yield* Pool.stats(pool)
        assert.deepStrictEqual([stats.open, stats.inUse, stats.closedBy.invalidated], [0, 0, 1])
        assert.strictEqual((yield* db.stats).closedTwice, 0)
      }))

    it.scoped("soft invalidation closes the connection when it is returned", () =>
      Effect.gen(function*() {
        const { pool } = yield* memoryPool()
        yield* Pool.use(pool, (c) =>
          Effect.gen(function*() {
            yield* Pool.invalidate(pool, c, { soft: true })
            assert.isFalse(c.closed)
          }))
        const stats = yield* Pool.stats(pool)
        assert.deepStrictEqual([stats.open, stats.closedBy.invalidated], [0, 1])
      }))

    it.scoped("invalidateAll closes idle connections now, lent ones on return, and serves waiters fresh ones", () =>
      Effect.gen(function*() {
        const { db, pool } = yield* memoryPool({ size: 1, maxOverflow: 0, min: 1 })
        yield* settle
        const holder = yield* hold(pool)
        const old = yield* holder.got
        const waiter = yield* Effect.fork(Pool.use(pool, (c) => Effect.succeed(c.id)))
        yield* settle
        yield* Pool.invalidateAll(pool)
        yield* holder.release
        const fresh = yield* Fiber.join(waiter)
        assert.notStrictEqual(fresh, old.id)
        assert.isTrue(old.closed)
        assert.strictEqual((yield* Pool.stats(pool)).closedBy.stale, 1)
        assert.strictEqual((yield* db.stats).open, 1)
      }))

    it.scoped("an idle connection killed under the pool is closed through the driver's error event", () =>
      Effect.gen(function*() {
        const { db, pool } = yield* memoryPool({ min: 2 })
        yield* settle
        const [first] = yield* db.connections
        yield* db.kill(first!)
        yield* settle
        const stats = yield* Pool.stats(pool)
        assert.strictEqual(stats.closedBy.invalidated, 1)
        yield* settle
        assert.strictEqual((yield* Pool.stats(pool)).open, 2, "refilled to min")
      }))

    it.scoped("detach hands the connection to the caller's scope and frees its slot", () =>
      Effect.gen(function*() {
        const { db, pool } = yield* memoryPool({ size: 1, maxOverflow: 0 })
        const events: Array<string> = []
        yield* Pool.listen(pool, {
          detach: () => Effect.sync(() => events.push("detach")),
          closeDetached: () => Effect.sync(() => events.push("closeDetached"))
        })
        const owned = yield* Scope.make()
        const connection = yield* Pool.use(pool, (c) => Effect.as(Scope.extend(Pool.detach(pool, c), owned), c))
        assert.isFalse(connection.closed)
        const stats = yield* Pool.stats(pool)
        assert.deepStrictEqual([stats.open, stats.inUse, stats.detached], [0, 0, 1])
        // the slot is free: another connection can open
        yield* Pool.use(pool, () => Effect.void)
        yield* Scope.close(owned, Exit.void)
        assert.isTrue(connection.closed)
        assert.deepStrictEqual(events, ["detach", "closeDetached"])
        assert.strictEqual((yield* db.stats).open, 1)
      }))

    it.scoped("dispose closes idle connections and leaves lent ones", () =>
      Effect.gen(function*() {
        const { pool } = yield* memoryPool({ size: 3 })
        const holders = yield* Effect.all([hold(pool), hold(pool), hold(pool)])
        yield* Effect.forEach(holders, (h) => h.got)
        yield* holders[0].release
        yield* holders[1].release
        yield* settle
        assert.strictEqual((yield* Pool.stats(pool)).idle, 2)
        yield* Pool.dispose(pool)
        const stats = yield* Pool.stats(pool)
        assert.deepStrictEqual([stats.idle, stats.inUse, stats.closedBy.disposed], [0, 1, 2])
      }))
  })

  describe("events and listeners", () => {
    it.live("a checkout listener may check out a connection of the same pool, whatever the timeout", () =>
      Effect.gen(function*() {
        let next = 0
        const pool = yield* Pool.make({
          name: uniqueName("reentrant"),
          acquire: Effect.sync(() => ({ id: ++next })),
          size: 2,
          maxOverflow: 0,
          timeout: "500 millis"
        })
        let depth = 0
        let inner: number | undefined
        yield* Pool.listen(pool, {
          checkout: () =>
            depth++ > 0 ? Effect.void : Effect.asVoid(
              Effect.ignore(Pool.use(pool, (c) => Effect.sync(() => (inner = c.id))))
            )
        })
        const outer = yield* Pool.use(pool, (c) => Effect.succeed(c.id))
        assert.isDefined(inner)
        assert.notStrictEqual(inner, outer)
        assert.deepStrictEqual((yield* Pool.stats(pool)).closedBy, {})
      }).pipe(Effect.scoped))

    it.scoped("streams every lifecycle event", () =>
      Effect.gen(function*() {
        const { pool } = yield* memoryPool({ size: 0, maxOverflow: 1 })
        const collected = yield* Effect.fork(Stream.runCollect(Stream.take(Pool.events(pool), 5)))
        yield* settle
        yield* Pool.use(pool, () => Effect.void)
        const events = Chunk.toReadonlyArray(yield* Fiber.join(collected)) as ReadonlyArray<PoolEvent<unknown>>
        assert.deepStrictEqual(events.map((e) => e._tag), ["FirstConnect", "Connect", "Checkout", "Checkin", "Close"])
        assert.strictEqual((events[4] as { reason: string }).reason, "overflow")
      }))

    it.scoped("a checkout listener may reject a connection, which is closed and replaced", () =>
      Effect.gen(function*() {
        const { pool } = yield* memoryPool()
        let rejections = 1
        yield* Pool.listen(pool, {
          checkout: () =>
            rejections-- > 0 ? Effect.fail(new ConnectionRejected({ reason: "listener says no" })) : Effect.void
        })
        const id = yield* Pool.use(pool, (c) => Effect.succeed(c.id))
        assert.strictEqual(id, 2)
        assert.strictEqual((yield* Pool.stats(pool)).closedBy.rejected, 1)
      }))

    it.scoped("gives up after maxCheckoutAttempts rejections in a row", () =>
      Effect.gen(function*() {
        const { pool } = yield* memoryPool({ maxCheckoutAttempts: 2 })
        yield* Pool.listen(pool, { checkout: () => Effect.fail(new ConnectionRejected({ reason: "never" })) })
        const error = yield* Effect.flip(Pool.use(pool, () => Effect.void))
        assert.strictEqual(error._tag, "PoolCheckoutRejectedError")
        const stats = yield* Pool.stats(pool)
        assert.deepStrictEqual([stats.open, stats.inUse, stats.closedBy.rejected, stats.checkouts], [0, 0, 2, 0])
      }))

    it.scoped("stops calling listeners when their scope closes", () =>
      Effect.gen(function*() {
        const { pool } = yield* memoryPool()
        const seen = yield* Ref.make(0)
        yield* Effect.scoped(
          Pool.listen(pool, { checkout: () => Ref.update(seen, (n) => n + 1) }).pipe(
            Effect.zipRight(Pool.use(pool, () => Effect.void))
          )
        )
        yield* Pool.use(pool, () => Effect.void)
        assert.strictEqual(yield* Ref.get(seen), 1)
      }))
  })

  describe("policies", () => {
    it.scoped("reset on return rolls back what the borrower left open", () =>
      Effect.gen(function*() {
        const { db, pool } = yield* memoryPool({ policies: [Policy.resetOnReturn("rollback")] })
        const resets: Array<string> = []
        yield* Pool.listen(pool, { reset: (e) => Effect.sync(() => resets.push(e.method)) })
        yield* Pool.use(pool, (c) => db.driver.query(c, "BEGIN"))
        assert.strictEqual((yield* db.stats).inTransaction, 0)
        assert.deepStrictEqual(resets, ["rollback"])
      }))

    it.scoped("reset on return sends nothing when the driver knows no transaction is open", () =>
      Effect.gen(function*() {
        const sent: Array<string> = []
        const driver = Driver.make<{ open: boolean }>({
          connect: () => Effect.succeed({ open: false }),
          rollback: () => Effect.sync(() => sent.push("ROLLBACK")),
          commit: () => Effect.sync(() => sent.push("COMMIT")),
          inTransaction: (c) => c.open
        })
        // quiet returns (nobody listening) and heard ones take different paths through the return policies
        for (const mode of ["rollback", "commit"] as const) {
          for (const heard of [false, true]) {
            const pool = yield* Pool.make({ driver, size: 1, policies: [Policy.resetOnReturn(mode)] })
            const resets: Array<string> = []
            if (heard) yield* Pool.listen(pool, { reset: (e) => Effect.sync(() => resets.push(e.method)) })
            yield* Pool.use(pool, () => Effect.void)
            yield* Pool.use(pool, (c) => Effect.sync(() => (c.open = true)))
            yield* Pool.use(pool, (c) => Effect.sync(() => (c.open = false)))
            // the return after the transaction was left open sends one statement; the other two send none
            assert.deepStrictEqual(sent.splice(0), [mode === "rollback" ? "ROLLBACK" : "COMMIT"])
            // every return still counts as a reset for listeners, as it does without the driver's answer
            assert.deepStrictEqual(resets, heard ? [mode, mode, mode] : [])
          }
        }
      }))

    it.scoped("a failed reset closes the connection so the next borrower gets a clean one", () =>
      Effect.gen(function*() {
        const { db, pool } = yield* memoryPool({ policies: [Policy.resetOnReturn("rollback")] })
        const first = yield* Pool.use(pool, (c) =>
          Effect.zipRight(
            Effect.zipRight(db.driver.query(c, "SET search_path = 'tenant_1'"), db.failNextQueries(1)),
            Effect.succeed(c.id)
          ))
        const setting = yield* Pool.use(
          pool,
          (c) => Effect.map(db.driver.query(c, "SHOW search_path"), (rows) => [c.id, rows[0]!.search_path])
        )
        assert.notStrictEqual(setting[0], first)
        assert.strictEqual(setting[1], "")
        assert.strictEqual((yield* Pool.stats(pool)).closedBy.resetFailed, 1)
      }))

    it.scoped("runs return hooks in order, and takes a hook that throws for a failed reset", () =>
      Effect.gen(function*() {
        const order: Array<string> = []
        let throws = false
        // done at once (`Effect.void`), then one with work to run, then one that must be called only after that work
        const hooks = ["first", "second", "third"].map((name, i) =>
          Policy.make<MemoryConnection, MemoryError>({
            name,
            onReturn: (context) => {
              if (throws && i === 1) throw new Error("a hook that throws")
              order.push(`${name} called (${context.exit._tag})`)
              return i === 1 ? Effect.sync(() => order.push(`${name} ran`)) : Effect.void
            }
          })
        )
        const { pool } = yield* memoryPool({ size: 1, maxOverflow: 0, policies: hooks })
        assert.strictEqual(yield* Pool.use(pool, () => Effect.succeed(1)), 1)
        assert.deepStrictEqual(order, [
          "first called (Success)",
          "second called (Success)",
          "second ran",
          "third called (Success)"
        ])
        order.length = 0
        throws = true
        // the borrower's result stands; the connection is closed instead of pooled, and the next checkout gets a new one
        assert.strictEqual(yield* Pool.use(pool, () => Effect.succeed(2)), 2)
        assert.deepStrictEqual(order, ["first called (Success)"], "no hook runs after the one that threw")
        assert.strictEqual((yield* Pool.stats(pool)).closedBy.resetFailed, 1)
        throws = false
        assert.strictEqual(yield* Pool.use(pool, () => Effect.succeed(3)), 3)
        assert.strictEqual((yield* Pool.stats(pool)).opened, 2)
      }))

    it.scoped("runs checkout hooks in order, each after the work of the one before", () =>
      Effect.gen(function*() {
        const order: Array<string> = []
        let reject = false
        const hooks = ["first", "second", "third"].map((name, i) =>
          Policy.make<MemoryConnection, MemoryError>({
            name,
            onCheckout: () => {
              order.push(`${name} called`)
              if (i === 1) {
                return Effect.suspend(() => {
                  order.push(`${name} ran`)
                  return reject ? Effect.fail(new ConnectionRejected({ reason: "expired" })) : Effect.void
                })
              }
              return Effect.void
            }
          })
        )
        const { pool } = yield* memoryPool({ size: 1, maxOverflow: 0, policies: hooks })
        yield* Pool.use(pool, () => Effect.void)
        assert.deepStrictEqual(order, ["first called", "second called", "second ran", "third called"])
        order.length = 0
        reject = true
        const error = yield* Effect.flip(Pool.use(pool, () => Effect.void))
        assert.strictEqual(error._tag, "PoolCheckoutRejectedError")
        assert.notInclude(order, "third called")
        assert.isAtLeast((yield* Pool.stats(pool)).closedBy.expired, 1)
      }))

    it.scoped("pre-ping discards a dead connection and every connection older than it", () =>
      Effect.gen(function*() {
        const { db, pool } = yield* memoryPool({ min: 3, policies: [Policy.prePing({ skipWithin: 0 })] })
        yield* settle
        yield* db.restart("0 millis", { notify: false })
        const id = yield* Pool.use(pool, (c) => Effect.succeed(c.id))
        assert.isTrue(id > 3)
        yield* settle
        const stats = yield* Pool.stats(pool)
        assert.strictEqual(stats.closedBy.rejected, 1)
        assert.strictEqual(stats.closedBy.stale, 2)
        assert.strictEqual(stats.generation, 1)
      }))

    it.scoped("recycle closes a connection past its age at checkout", () =>
      Effect.gen(function*() {
        const { pool } = yield* memoryPool({ policies: [Policy.recycle("1 minute")] })
        const first = yield* Pool.use(pool, (c) => Effect.succeed(c.id))
        yield* TestClock.adjust("61 seconds")
        const second = yield* Pool.use(pool, (c) => Effect.succeed(c.id))
        assert.notStrictEqual(first, second)
        assert.strictEqual((yield* Pool.stats(pool)).closedBy.expired, 1)
      }))

    it.scoped("maxUses closes a connection once it has been lent that many times", () =>
      Effect.gen(function*() {
        const { pool } = yield* memoryPool({ policies: [Policy.maxUses(2)] })
        const ids = yield* Effect.forEach([1, 2, 3], () => Pool.use(pool, (c) => Effect.succeed(c.id)))
        assert.deepStrictEqual(ids, [1, 1, 2])
        assert.strictEqual((yield* Pool.stats(pool)).closedBy.maxUses, 1)
      }))

    it.scoped("onConnect runs per-connection setup, and its failure is a failed connect", () =>
      Effect.gen(function*() {
        const { db, pool } = yield* memoryPool({
          size: 2,
          policies: [Policy.onConnect((c: MemoryConnection) => Effect.asVoid(Effect.succeed(c)))]
        })
        const setup = yield* memoryPool({
          policies: [Policy.onConnect<MemoryConnection, MemoryError>((c) =>
            Effect.asVoid(db.driver.query(c, "SET timezone = 'UTC'"))
          )]
        })
        const tz = yield* Pool.use(setup.pool, (c) =>
          setup.db.driver.query(c, "SHOW timezone"))
        assert.strictEqual(tz[0]!.timezone, "UTC")
        yield* Pool.use(pool, () => Effect.void)
        const failing = yield* memoryPool({
          policies: [Policy.onConnect<MemoryConnection, MemoryError>((c) =>
            db.driver.query(c, "SET x = 1").pipe(
              Effect.zipRight(Effect.fail(new Memory.MemoryError({ reason: "QueryFailed", message: "setup failed" })))
            )
          )]
        })
        const error = yield* Effect.flip(Pool.use(failing.pool, () => Effect.void))
        assert.strictEqual(error._tag, "MemoryError")
        const stats = yield* Pool.stats(failing.pool)
        assert.deepStrictEqual([stats.open, stats.connectFailures], [0, 1])
        assert.strictEqual((yield* failing.db.stats).open, 0, "the half-set-up connection was closed")
      }))

    it.scoped("a transaction whose commit fails is rolled back, never pooled with the transaction open", () =>
      Effect.gen(function*() {
        const { db, pool } = yield* memoryPool()
        const result = yield* Effect.either(
          Pool.transaction(pool, (c) => Effect.zipRight(db.driver.query(c, "INSERT 1"), db.failNextQueries(1)))
        )
        assert.isTrue(Either.isLeft(result))
        assert.strictEqual((yield* db.stats).inTransaction, 0)
        assert.deepStrictEqual(yield* db.committed, [])
      }))

    it.scoped("transaction commits on success and rolls back on failure", () =>
      Effect.gen(function*() {
        const { db, pool } = yield* memoryPool()
        yield* Pool.transaction(pool, (c) => db.driver.query(c, "INSERT 1"))
        yield* Effect.either(
          Pool.transaction(pool, (c) => Effect.zipRight(db.driver.query(c, "INSERT 2"), Effect.fail("no")))
        )
        assert.deepStrictEqual(yield* db.committed, ["INSERT 1"])
        assert.strictEqual((yield* db.stats).inTransaction, 0)
      }))
  })

  describe("spans", () => {
    it.scoped("traces connects, and waits when a tracer that exports spans is installed", () =>
      Effect.gen(function*() {
        const names: Array<string> = []
        const native = yield* Effect.tracer
        const recording = Tracer.make({
          span: (name, ...rest) => {
            names.push(name)
            return native.span(name, ...rest)
          },
          context: native.context
        })
        yield* Effect.gen(function*() {
          const { pool } = yield* memoryPool({ size: 1, maxOverflow: 0 })
          const holder = yield* hold(pool)
          yield* holder.got
          const waiter = yield* Effect.fork(Pool.use(pool, () => Effect.void))
          yield* settle
          yield* holder.release
          yield* Fiber.join(waiter)
        }).pipe(Effect.withTracer(recording))
        assert.include(names, "db.client.connection.create")
        assert.include(names, "db.client.connection.wait")
      }))
  })

  describe("metrics", () => {
    it.scoped("records OpenTelemetry-named metrics tagged with the pool name", () =>
      Effect.gen(function*() {
        const name = uniqueName("metrics")
        const { pool } = yield* memoryPool({ name, size: 1, maxOverflow: 0, timeout: "1 second" })
        const holder = yield* hold(pool)
        yield* holder.got
        const waiter = yield* Effect.fork(Effect.either(Pool.use(pool, () => Effect.void)))
        yield* settle
        yield* TestClock.adjust("1 second")
        yield* Fiber.join(waiter)
        const snapshot = yield* Metric.snapshot
        const find = (metric: string, extra?: [string, string]) =>
          snapshot.find((pair) =>
            pair.metricKey.name === metric &&
            pair.metricKey.tags.some((t) => t.key === "db.client.connection.pool.name" && t.value === name) &&
            (extra === undefined || pair.metricKey.tags.some((t) => t.key === extra[0] && t.value === extra[1]))
          )
        const used = find("db.client.connection.count", ["db.client.connection.state", "used"])
        assert.strictEqual((used?.metricState as unknown as { value: number }).value, 1)
        const timeouts = find("db.client.connection.timeouts")
        assert.strictEqual((timeouts?.metricState as unknown as { count: number }).count, 1)
        assert.isDefined(find("db.client.connection.create_time"))
        assert.isTrue(MetricKey.isMetricKey(used!.metricKey))
      }))
  })
})
