/**
 * Regression tests for the known defects of the core (numbered as in the review; 12, 14 and 18–20 are tested
 * elsewhere). Each test states the behaviour the rewritten core has and fails on the old core because of its defect,
 * except defect 16's, which guards counts only and passes on both. Anything that could hang on the old core is
 * bounded: under `TestClock` a test advances the clock and polls the fiber instead of joining it, and pools live in
 * scopes of their own (`isolated`) so that a shutdown that hangs cannot hang the test.
 */
import { assert, describe, it } from "@effect/vitest"
import { Clock, Deferred, Effect, Either, Exit, Fiber, Logger, Metric, Schedule, Stream, TestClock } from "effect"
import type { ConnectionRecord } from "../src/ConnectionRecord.js"
import * as Driver from "../src/Driver.js"
import type { MemoryConnection, MemoryError } from "../src/Driver/Memory.js"
import * as Memory from "../src/Driver/Memory.js"
import * as Policy from "../src/Policy.js"
import * as Pool from "../src/Pool.js"
import { ConnectionRejected, type PoolStats } from "../src/PoolError.js"
import { listenerKey, type PoolEvent } from "../src/PoolEvent.js"
import { advanceBy, closeWithin, collectingLogger, failureOf, isolated, pollExit, spawn } from "./utils/defects.js"
import { memoryPool, settle, uniqueName } from "./utils/pool.js"

/** A checkout policy whose validation never answers (a ping to a blackholed connection, without a timeout). */
const hangingValidation = Policy.make<MemoryConnection, MemoryError>({
  name: "hangingValidation",
  onCheckout: () => Effect.never
})

/** An event as a short string: its tag and the connection's record id. */
const describeEvent = (event: PoolEvent<unknown>): string =>
  "record" in event ? `${event._tag} #${event.record.id}` : event._tag

/** The tags of the errors `Pool.use`'s caller may see with a Memory driver: the driver's and the PoolError union. */
const declaredTags = [
  "MemoryError",
  "PoolTimeoutError",
  "PoolClosedError",
  "PoolExhaustedError",
  "PoolCheckoutRejectedError"
]

/** The value of a pool's `db.client.connection.count` gauge for a state. */
const gaugeValue = (pool: string, state: "idle" | "used") =>
  Effect.map(Metric.snapshot, (snapshot) => {
    const pair = snapshot.find(({ metricKey }) =>
      metricKey.name === "db.client.connection.count" &&
      metricKey.tags.some((t) => t.key === "db.client.connection.pool.name" && t.value === pool) &&
      metricKey.tags.some((t) => t.key === "db.client.connection.state" && t.value === state)
    )
    return (pair?.metricState as { readonly value?: number } | undefined)?.value
  })

/**
 * The paths, from `root`, of every key named `connection` or `scope` and of every value that is `connection` itself,
 * walking own keys (non-enumerable and symbols included) and the prototype chain below `Object.prototype`.
 */
const forbiddenPaths = (root: object, connection: unknown): Array<string> => {
  const found: Array<string> = []
  const seen = new Set<unknown>()
  const walk = (value: unknown, path: string, depth: number): void => {
    if (value === connection && path !== "") found.push(path)
    if (typeof value !== "object" || value === null || seen.has(value) || depth > 6) return
    seen.add(value)
    for (let o: object | null = value; o !== null && o !== Object.prototype; o = Reflect.getPrototypeOf(o)) {
      for (const key of Reflect.ownKeys(o)) {
        if (key === "constructor") continue
        const name = String(key)
        if (name === "connection" || name === "scope") found.push(`${path}.${name}`)
        let child: unknown
        try {
          child = Reflect.get(value, key)
        } catch {
          continue
        }
        walk(child, `${path}.${name}`, depth + 1)
      }
    }
    if (value instanceof Map) { for (const [k, v] of value) walk(v, `${path}[${String(k)}]`, depth + 1) }
  }
  walk(root, "", 0)
  return found
}

describe("Pool defects", () => {
  describe("defect 1: checkout validation is interruptible and bounded", () => {
    it.scoped(
      "defect 1: a checkout whose validation hangs fails with PoolTimeoutError by its deadline and closes the connection",
      () =>
        Effect.gen(function*() {
          const [{ pool }] = yield* isolated(memoryPool({
            size: 1,
            maxOverflow: 0,
            timeout: "1 second",
            shutdownTimeout: "1 second",
            policies: [hangingValidation]
          }))
          const fiber = yield* spawn(Pool.use(pool, () => Effect.void))
          yield* settle
          yield* TestClock.adjust("1 second")
          yield* settle
          const exit = yield* pollExit(fiber)
          if (exit === undefined) yield* Fiber.interruptFork(fiber)
          assert.isDefined(exit, "the checkout was still running 1 s after it started (timeout: 1 second)")
          const error = failureOf(exit!) as { _tag: string; phase?: string } | undefined
          assert.strictEqual(error?._tag, "PoolTimeoutError")
          assert.isDefined(error?.phase)
          const stats = yield* Pool.stats(pool)
          assert.strictEqual(stats.closed, 1, "the connection whose validation was cut short is closed")
          assert.strictEqual(stats.inUse, 0)
        }),
      10_000
    )

    it.scoped(
      "defect 1: interrupting a checkout whose validation hangs ends it at once and closes the connection",
      () =>
        Effect.gen(function*() {
          const [{ pool }] = yield* isolated(memoryPool({
            size: 1,
            maxOverflow: 0,
            timeout: "1 minute",
            shutdownTimeout: "1 second",
            policies: [hangingValidation]
          }))
          const fiber = yield* spawn(Pool.use(pool, () => Effect.void))
          yield* settle
          yield* Fiber.interruptFork(fiber)
          yield* settle
          const exit = yield* pollExit(fiber)
          assert.isDefined(exit, "the interrupted checkout was still running")
          assert.isTrue(Exit.isInterrupted(exit!))
          const stats = yield* Pool.stats(pool)
          assert.strictEqual(stats.closed, 1, "the connection whose validation was cut short is closed")
          assert.strictEqual(stats.inUse, 0)
        }),
      10_000
    )

    it.scoped(
      "defect 1: prePing rejects a connection whose ping hangs after its own timeout and lends another",
      () =>
        Effect.gen(function*() {
          const db = yield* Memory.make()
          // Memory has no per-connection blackhole: this driver's ping never answers on the connections in `blackholed`
          const blackholed = new Set<number>()
          const driver = Driver.make<MemoryConnection, MemoryError>({
            dialect: "memory",
            connect: db.driver.connect,
            query: db.driver.query,
            isDisconnect: db.driver.isDisconnect,
            ping: (c) => blackholed.has(c.id) ? Effect.never : db.driver.ping(c)
          })
          const [pool] = yield* isolated(Pool.make({
            driver,
            name: uniqueName("defect1-preping"),
            size: 2,
            maxOverflow: 0,
            timeout: "1 second",
            shutdownTimeout: "1 second",
            policies: [Policy.prePing({ timeout: "100 millis", skipWithin: 0 })]
          }))
          const first = yield* Pool.use(pool, (c) => Effect.succeed(c.id))
          blackholed.add(first)
          const fiber = yield* spawn(Pool.use(pool, (c) => Effect.succeed(c.id)))
          yield* settle
          yield* TestClock.adjust("100 millis")
          yield* settle
          const exit = yield* pollExit(fiber)
          if (exit === undefined) yield* Fiber.interruptFork(fiber)
          assert.isDefined(exit, "the checkout was still running 100 ms after the ping of its connection hung")
          assert.isTrue(Exit.isSuccess(exit!), `the checkout failed: ${String(exit)}`)
          assert.notStrictEqual((exit as Exit.Success<number, unknown>).value, first)
          const stats = yield* Pool.stats(pool)
          assert.strictEqual(stats.inUse, 0)
          const onServer = (yield* db.connections).map((c) => c.id)
          assert.notInclude(onServer, first, "the connection whose ping hung is closed")
        }),
      10_000
    )
  })

  describe("defect 2: a retried checkout keeps its first deadline", () => {
    it.scoped(
      "defect 2: after a rejected connection no checkout, retried or behind it, ends later than arrival + timeout",
      () =>
        Effect.gen(function*() {
          const [{ pool }] = yield* isolated(memoryPool({
            size: 1,
            maxOverflow: 0,
            timeout: "1 second",
            shutdownTimeout: "1 second",
            memory: { connectLatency: "900 millis" }
          }))
          let rejections = 1
          yield* Pool.listen(pool, {
            checkout: () => rejections-- > 0 ? Effect.fail(new ConnectionRejected({ reason: "test" })) : Effect.void
          })
          const ends: Array<{ readonly name: string; readonly arrived: number; ended?: number; exit?: string }> = []
          const fibers = yield* Effect.forEach(["a", "b", "c"], (name) =>
            Effect.gen(function*() {
              const arrived = yield* Clock.currentTimeMillis
              const entry: { name: string; arrived: number; ended?: number; exit?: string } = { name, arrived }
              ends.push(entry)
              return yield* spawn(Effect.gen(function*() {
                const exit = yield* Effect.exit(Pool.use(pool, () => Effect.void))
                entry.ended = yield* Clock.currentTimeMillis
                entry.exit = Exit.isSuccess(exit) ? "success" : String(failureOf(exit)?._tag)
              }))
            }).pipe(Effect.zipLeft(settle)))
          yield* advanceBy("3 seconds", "50 millis")
          for (const fiber of fibers) yield* Fiber.interruptFork(fiber)
          const late = ends.filter((e) => e.ended === undefined || e.ended > e.arrived + 1000)
          assert.deepStrictEqual(
            late,
            [],
            `waiters that ended after arrival + 1000 ms: ${JSON.stringify(ends)}`
          )
        }),
      10_000
    )
  })

  describe("defect 3: a connection is not idle while it is still connecting", () => {
    it.scoped(
      "defect 3: a connection the driver invalidates during connect is closed once and never lets the pool exceed its bound",
      () =>
        Effect.gen(function*() {
          const db = yield* Memory.make()
          let invalidations = 1
          const driver = Driver.make<MemoryConnection, MemoryError>({
            dialect: "memory",
            connect: (context) =>
              Effect.tap(db.driver.connect(context), () =>
                Effect.sync(() => {
                  if (invalidations-- > 0) context.invalidate("the server dropped it while connecting")
                })),
            query: db.driver.query,
            isDisconnect: db.driver.isDisconnect
          })
          const [pool, scope] = yield* isolated(Pool.make({
            driver,
            name: uniqueName("defect3"),
            size: 1,
            maxOverflow: 0,
            timeout: "10 seconds",
            shutdownTimeout: "1 second"
          }))
          let lent = 0
          let maxLent = 0
          const samples: Array<{ open: number; opening: number }> = []
          const borrow = Pool.use(pool, () =>
            Effect.gen(function*() {
              lent++
              maxLent = Math.max(maxLent, lent)
              const stats = yield* Pool.stats(pool)
              samples.push({ open: stats.open, opening: stats.opening })
              yield* Effect.sleep("10 millis")
              lent--
            }))
          const fibers = yield* Effect.forEach([1, 2, 3, 4], () => spawn(Effect.exit(borrow)))
          yield* settle
          yield* advanceBy("200 millis", "5 millis")
          const exits = yield* Effect.forEach(fibers, pollExit)
          const closed = yield* closeWithin(scope, "2 seconds")
          const stats = yield* Pool.stats(pool)
          const server = yield* db.stats
          const opens = samples.map((sample) => sample.open)
          assert.deepStrictEqual(
            {
              maxLent,
              openSeen: [Math.min(...opens), Math.max(...opens)],
              borrowersEnded: exits.every((exit) => exit !== undefined),
              poolClosed: closed,
              openedMinusClosed: stats.opened - stats.closed,
              serverClosedTwice: server.closedTwice,
              serverOpen: server.open
            },
            {
              maxLent: 1,
              openSeen: [1, 1],
              borrowersEnded: true,
              poolClosed: true,
              openedMinusClosed: 0,
              serverClosedTwice: 0,
              serverOpen: 0
            },
            `size 1, maxOverflow 0; pool stats at the end: opened ${stats.opened}, closed ${stats.closed}`
          )
        }),
      10_000
    )
  })

  describe("defect 4: shutdown is bounded by shutdownTimeout", () => {
    it.scoped(
      "defect 4: closing the pool's scope completes within shutdownTimeout while a background pass hangs",
      () =>
        Effect.gen(function*() {
          const holding = yield* Deferred.make<void>()
          const keepalive = Policy.make<MemoryConnection, MemoryError>({
            name: "hangingKeepalive",
            background: (handle) =>
              handle.forEachIdle(() => Effect.zipRight(Deferred.succeed(holding, undefined), Effect.never)).pipe(
                Effect.repeat(Schedule.spaced("1 second")),
                Effect.asVoid
              )
          })
          const [{ db }, scope] = yield* isolated(memoryPool({
            size: 1,
            min: 1,
            shutdownTimeout: "1 second",
            policies: [keepalive]
          }))
          yield* settle
          yield* TestClock.adjust("1 second")
          yield* settle
          assert.isTrue(yield* Deferred.isDone(holding), "the keepalive holds the idle connection")
          const closed = yield* closeWithin(scope, "1100 millis")
          assert.isTrue(
            closed,
            "the pool's scope was still closing 1.1 s after shutdown began (shutdownTimeout: 1 second)"
          )
          assert.strictEqual((yield* db.stats).open, 0)
        }),
      10_000
    )
  })

  describe("defect 5: the stream and the listeners hear the same events", () => {
    it.scoped(
      "defect 5: Pool.events subscribers and listeners hear exactly the same events in the same order",
      () =>
        Effect.gen(function*() {
          const [{ db, pool }] = yield* isolated(memoryPool({
            size: 1,
            maxOverflow: 1,
            shutdownTimeout: "1 second",
            policies: [Policy.resetOnReturn("rollback")]
          }))
          const streamed: Array<string> = []
          const subscriber = yield* Effect.fork(
            Stream.runForEach(Pool.events(pool), (event) => Effect.sync(() => streamed.push(describeEvent(event))))
          )
          yield* settle
          const heard: Array<string> = []
          const listeners = Object.fromEntries(
            Object.values(listenerKey).map((key) => [key, (event: PoolEvent<MemoryConnection>) =>
              Effect.sync(() => {
                heard.push(describeEvent(event))
              })]
            )
          )
          yield* Pool.listen(pool, listeners)
          // checkout, reset and checkin
          yield* Pool.use(pool, (c) => db.driver.query(c, "BEGIN"))
          // hard and soft invalidation of lent connections
          yield* Pool.use(pool, (c) => Pool.invalidate(pool, c, { cause: "hard" }))
          yield* Pool.use(pool, (c) => Pool.invalidate(pool, c, { soft: true, cause: "soft" }))
          // detach, then the owner's scope closes it
          yield* Effect.scoped(Pool.use(pool, (c) => Pool.detach(pool, c)))
          // an overflow close: two lent at once, both returned to a pool of size 1
          yield* Effect.all([
            Pool.use(pool, () => Effect.sleep("10 millis")),
            Pool.use(pool, () => Effect.sleep("10 millis"))
          ], { concurrency: 2 }).pipe(
            Effect.fork,
            Effect.zipLeft(settle),
            Effect.zipLeft(TestClock.adjust("10 millis")),
            Effect.flatMap(Fiber.join)
          )
          // invalidateAll and dispose
          yield* Pool.use(pool, () => Effect.void)
          yield* Pool.invalidateAll(pool)
          yield* Pool.use(pool, () => Effect.void)
          yield* Pool.dispose(pool)
          yield* settle
          yield* Fiber.interrupt(subscriber)
          assert.isAbove(heard.length, 10)
          assert.deepStrictEqual(streamed, heard)
        }),
      10_000
    )
  })

  describe("defect 6: connections are tracked by identity of lending, not by value", () => {
    /** A bare `acquire` whose connections are all the value `1`; opens and closes are counted by connect number. */
    const equalValues = () => {
      const opened: Array<number> = []
      const closed: Array<number> = []
      const acquire = Effect.acquireRelease(
        Effect.sync(() => opened.push(opened.length + 1)),
        (n) => Effect.sync(() => closed.push(n))
      ).pipe(Effect.as(1))
      return { opened, closed, acquire }
    }

    it.scoped(
      "defect 6: every connection opened is closed exactly once at shutdown, even equal values lent past shutdownTimeout",
      () =>
        Effect.gen(function*() {
          const { acquire, closed, opened } = equalValues()
          const [pool, scope] = yield* isolated(Pool.make({
            acquire,
            name: uniqueName("defect6-shutdown"),
            size: 2,
            maxOverflow: 0,
            shutdownTimeout: "1 second"
          }))
          const held = yield* Effect.forEach([1, 2], () =>
            spawn(Effect.scoped(Effect.zipRight(Pool.get(pool), Effect.never))))
          yield* settle
          assert.strictEqual((yield* Pool.stats(pool)).inUse, 2)
          const done = yield* closeWithin(scope, "1500 millis")
          for (const fiber of held) {
            yield* Fiber.interruptFork(fiber)
          }
          assert.isTrue(done, "the pool closed")
          assert.strictEqual(opened.length, 2)
          assert.strictEqual(closed.length, 2, `${opened.length} opened, ${closed.length} closed at shutdown`)
        }),
      10_000
    )

    it.scoped(
      "defect 6: record and invalidate by value act on the connection the calling fiber holds",
      () =>
        Effect.gen(function*() {
          const { acquire, closed } = equalValues()
          const [pool] = yield* isolated(Pool.make({
            acquire,
            name: uniqueName("defect6-value"),
            size: 2,
            maxOverflow: 0,
            shutdownTimeout: "1 second"
          }))
          const ids: Array<number> = []
          yield* Pool.listen(pool, { checkout: (event) => Effect.sync(() => ids.push(event.record.id)) })
          const gotA = yield* Deferred.make<void>()
          const goA = yield* Deferred.make<void>()
          const gotB = yield* Deferred.make<void>()
          const goB = yield* Deferred.make<void>()
          // A holds the first connection, B the second; both connections are the value 1
          const a = yield* spawn(Pool.use(pool, (c) =>
            Effect.gen(function*() {
              yield* Deferred.succeed(gotA, undefined)
              yield* Deferred.await(goA)
              const record = yield* Pool.record(pool, c)
              yield* Pool.invalidate(pool, c)
              return record.id
            })))
          yield* Deferred.await(gotA)
          const b = yield* spawn(Pool.use(pool, (c) =>
            Effect.gen(function*() {
              yield* Deferred.succeed(gotB, undefined)
              yield* Deferred.await(goB)
              return yield* Effect.either(Pool.record(pool, c))
            })))
          yield* Deferred.await(gotB)
          assert.deepStrictEqual(ids, [1, 2])
          yield* Deferred.succeed(goA, undefined)
          const exitA = yield* Fiber.await(a)
          yield* settle
          assert.isTrue(Exit.isSuccess(exitA), `A's record / invalidate failed: ${String(exitA)}`)
          assert.strictEqual((exitA as Exit.Success<number, unknown>).value, 1, "A's record is the connection A holds")
          assert.deepStrictEqual(closed, [1], "invalidate closed the connection A holds, not B's")
          yield* Deferred.succeed(goB, undefined)
          const exitB = yield* Fiber.await(b)
          assert.isTrue(Exit.isSuccess(exitB))
          const recordB = (exitB as Exit.Success<Either.Either<ConnectionRecord, unknown>, unknown>).value
          assert.isTrue(Either.isRight(recordB), `B's connection is foreign to the pool: ${String(recordB)}`)
          assert.strictEqual((recordB as Either.Right<unknown, ConnectionRecord>).right.id, 2)
        }),
      10_000
    )
  })

  describe("defect 7: a connection whose borrower saw a disconnect is invalidated", () => {
    it.scoped(
      "defect 7: a connection whose borrower's work failed with a disconnect is invalidated and never lent again",
      () =>
        Effect.gen(function*() {
          const [{ db, pool }] = yield* isolated(memoryPool({ size: 1, maxOverflow: 0, shutdownTimeout: "1 second" }))
          const first = yield* Pool.use(pool, (c) => Effect.succeed(c.id))
          const invalidated: Array<number> = []
          yield* Pool.listen(pool, { invalidate: (event) => Effect.sync(() => invalidated.push(event.record.id)) })
          // the server drops the connection without telling the pool; the borrower's query sees the disconnect
          yield* db.kill(first, { notify: false })
          const error = yield* Effect.flip(Pool.use(pool, (c) => db.driver.query(c, "SELECT 1")))
          assert.strictEqual(error._tag, "MemoryError")
          assert.isTrue(db.driver.isDisconnect(error))
          yield* settle
          const next = yield* Pool.use(pool, (c) => Effect.succeed(c.id))
          assert.notStrictEqual(next, first, "the dead connection was lent again")
          assert.deepStrictEqual(invalidated, [first])
          assert.strictEqual((yield* Pool.stats(pool)).closedBy.invalidated, 1)
        }),
      10_000
    )
  })

  describe("defect 8: the event law holds for listeners registered late", () => {
    it.scoped(
      "defect 8: a listener registered while a connection is lent hears no Checkin for a Checkout it did not hear",
      () =>
        Effect.gen(function*() {
          const [{ pool }] = yield* isolated(memoryPool({ size: 1, maxOverflow: 0, shutdownTimeout: "1 second" }))
          const lease = yield* Pool.checkout(pool)
          const checkouts = new Map<number, number>()
          const checkins = new Map<number, number>()
          const count = (map: Map<number, number>) => (event: { readonly record: ConnectionRecord }) =>
            Effect.sync(() => {
              map.set(event.record.id, (map.get(event.record.id) ?? 0) + 1)
            })
          yield* Pool.listen(pool, { checkout: count(checkouts), checkin: count(checkins) })
          yield* Pool.checkin(pool, lease)
          yield* Pool.use(pool, () => Effect.void)
          yield* settle
          for (const [id, n] of checkins) {
            assert.isAtMost(
              n,
              checkouts.get(id) ?? 0,
              `connection #${id}: ${n} checkins heard, ${checkouts.get(id) ?? 0} checkouts`
            )
          }
          assert.strictEqual(checkouts.get(lease.record.id), 1)
        }),
      10_000
    )
  })

  describe("defect 9: no untyped error reaches the caller", () => {
    it.scoped(
      "defect 9: a ConnectionRejected from onConnect reaches Pool.use's caller as a declared error",
      () =>
        Effect.gen(function*() {
          const rejectOnConnect = Policy.make<MemoryConnection, MemoryError>({
            name: "rejectOnConnect",
            onConnect: () => Effect.fail(new ConnectionRejected({ reason: "x" }))
          })
          const [{ pool }] = yield* isolated(memoryPool({
            size: 1,
            maxOverflow: 0,
            timeout: "1 second",
            shutdownTimeout: "1 second",
            policies: [rejectOnConnect]
          }))
          const fiber = yield* spawn(Pool.use(pool, () => Effect.void))
          yield* settle
          yield* advanceBy("2 seconds", "50 millis", () => Effect.map(pollExit(fiber), (exit) => exit !== undefined))
          const exit = yield* pollExit(fiber)
          if (exit === undefined) yield* Fiber.interruptFork(fiber)
          assert.isDefined(exit, "the checkout was still running 2 s after it started (timeout: 1 second)")
          const error = failureOf(exit!) as { readonly _tag: string } | undefined
          assert.isDefined(error, `the checkout did not fail with a typed error: ${String(exit)}`)
          assert.include(
            declaredTags,
            error!._tag,
            `the caller got ${error!._tag}, which its error type does not declare`
          )
        }),
      10_000
    )
  })

  describe("defect 10: maintenance does not count as checked out", () => {
    it.scoped(
      "defect 10: a connection held by a background pass counts as neither checked out nor used",
      () =>
        Effect.gen(function*() {
          const name = uniqueName("defect10")
          const holding = yield* Deferred.make<void>()
          const release = yield* Deferred.make<void>()
          let passes = 0
          const maintenance = Policy.make<MemoryConnection, MemoryError>({
            name: "maintenance",
            background: (handle) =>
              handle.forEachIdle(() =>
                passes++ === 0 ?
                  Effect.zipRight(Deferred.succeed(holding, undefined), Deferred.await(release)) :
                  Effect.void
              ).pipe(Effect.repeat(Schedule.spaced("1 second")), Effect.asVoid)
          })
          const [{ pool }] = yield* isolated(memoryPool({
            name,
            size: 1,
            maxOverflow: 0,
            min: 1,
            shutdownTimeout: "1 second",
            policies: [maintenance]
          }))
          yield* settle
          yield* TestClock.adjust("1 second")
          yield* settle
          assert.isTrue(yield* Deferred.isDone(holding), "the background pass holds the idle connection")
          // a checkout arrives meanwhile (and the pool updates its gauges); it is served when the pass puts it back
          const waiter = yield* spawn(Pool.use(pool, () => Effect.succeed("served")))
          yield* settle
          const status = yield* Pool.status(pool)
          const inUse = (yield* Pool.stats(pool)).inUse
          const used = yield* gaugeValue(name, "used")
          yield* Deferred.succeed(release, undefined)
          yield* settle
          const served = yield* pollExit(waiter)
          if (served === undefined) yield* Fiber.interruptFork(waiter)
          assert.isTrue(served !== undefined && Exit.isSuccess(served), "the waiter is served once the pass ends")
          const checkedOut = /Current Checked out connections: (\d+)/.exec(status)?.[1]
          assert.deepStrictEqual(
            { checkedOut, inUse, used },
            { checkedOut: "0", inUse: 0, used: 0 },
            "status, stats().inUse and db.client.connection.count{state=used} while a background pass holds the connection"
          )
        }),
      10_000
    )
  })

  describe("defect 11: records hand out neither the connection nor its scope", () => {
    it.scoped(
      "defect 11: Pool.record and the records carried by events reach no connection and no scope",
      () =>
        Effect.gen(function*() {
          const [{ pool }] = yield* isolated(memoryPool({ size: 1, shutdownTimeout: "1 second" }))
          const fromEvents: Array<ConnectionRecord> = []
          yield* Pool.listen(pool, { checkout: (event) => Effect.sync(() => fromEvents.push(event.record)) })
          const [connection, record] = yield* Pool.use(
            pool,
            (c) => Effect.map(Pool.record(pool, c), (r) => [c, r] as const)
          )
          assert.deepStrictEqual(forbiddenPaths(record, connection), [], "Pool.record")
          assert.strictEqual(fromEvents.length, 1)
          assert.deepStrictEqual(forbiddenPaths(fromEvents[0]!, connection), [], "Checkout event's record")
        }),
      10_000
    )
  })

  describe("defect 13: a database that is down is not hammered", () => {
    it.scoped(
      "defect 13: checkouts against a database that refuses connects make connect attempts on a backoff, each failing typed",
      () =>
        Effect.gen(function*() {
          const { logger, logs } = collectingLogger()
          yield* Effect.gen(function*() {
            const [{ db, pool }] = yield* isolated(memoryPool({
              size: 5,
              maxOverflow: 5,
              min: 0,
              timeout: "1 second",
              shutdownTimeout: "1 second"
            }))
            yield* db.down
            const fibers = yield* Effect.forEach(
              Array.from({ length: 200 }),
              () => spawn(Pool.use(pool, () => Effect.void))
            )
            yield* settle
            const atOnce = (yield* db.stats).connectAttempts
            yield* advanceBy("1 second", "50 millis")
            const afterOneSecond = (yield* db.stats).connectAttempts
            yield* advanceBy("1 second", "50 millis", () =>
              Effect.map(Effect.forEach(fibers, pollExit), (exits) =>
                exits.every((exit) => exit !== undefined)))
            const exits = yield* Effect.forEach(fibers, pollExit)
            for (const fiber of fibers) {
              yield* Fiber.interruptFork(fiber)
            }
            const report = `connect attempts: ${atOnce} at once, ${afterOneSecond} after 1 s (size 5, maxOverflow 5)`
            assert.isAtMost(atOnce, 10, report)
            assert.isAtMost(afterOneSecond, 30, report)

            const untyped = exits.filter((exit) => {
              if (exit === undefined || Exit.isSuccess(exit)) {
                return true
              }
              const error = failureOf(exit) as
                | { _tag?: string; reason?: string; cause?: { reason?: string } }
                | undefined
              if (error?._tag === "MemoryError") {
                return error.reason !== "ConnectRefused"
              }
              if (error?._tag === "PoolTimeoutError") {
                return error.cause?.reason !== "ConnectRefused"
              }
              return true
            })
            assert.strictEqual(untyped.length, 0, "every waiter fails with the connect error or a timeout caused by it")
          }).pipe(Effect.provide(Logger.replace(Logger.defaultLogger, logger)))
          const refilling = logs.filter((line) =>
            line.includes("refilling to min")
          )
          assert.deepStrictEqual(refilling, [], "with min 0 nothing refills to min")
        }),
      20_000
    )
  })

  describe("defect 13: a failed connect nobody waits for does not refill a pool with min 0", () => {
    it.scoped(
      "defect 13: with min 0, a connect that fails after its checkout timed out logs nothing about refilling to min",
      () =>
        Effect.gen(function*() {
          const { logger, logs } = collectingLogger()
          yield* Effect.gen(function*() {
            const [{ db, pool }] = yield* isolated(memoryPool({
              size: 1,
              maxOverflow: 0,
              min: 0,
              timeout: "1 second",
              shutdownTimeout: "1 second",
              echo: true,
              memory: { connectLatency: "1500 millis" }
            }))
            yield* db.failNextConnects(1)
            const fiber = yield* spawn(Pool.use(pool, () => Effect.void))
            yield* settle
            // the checkout times out at 1 s; its connect fails at 1.5 s, when nobody waits for it any more
            yield* advanceBy("2 seconds", "50 millis")
            const exit = yield* pollExit(fiber)
            if (exit === undefined) yield* Fiber.interruptFork(fiber)
            assert.strictEqual(exit === undefined ? undefined : failureOf(exit)?._tag, "PoolTimeoutError")
            // a connect that succeeds is logged (echo: true), so the logger is known to hear the pool
            yield* db.setLatency({ connect: 0 })
            const served = yield* spawn(Pool.use(pool, () => Effect.void))
            yield* advanceBy("5 seconds", "50 millis", () => Effect.map(pollExit(served), (e) => e !== undefined))
            if ((yield* pollExit(served)) === undefined) yield* Fiber.interruptFork(served)
          }).pipe(Effect.provide(Logger.replace(Logger.defaultLogger, logger)))
          assert.isNotEmpty(logs, "the test logger hears the pool (echo: true)")
          const refilling = logs.filter((line) => line.includes("refilling to min"))
          assert.deepStrictEqual(refilling, [], "with min 0 nothing refills to min")
        }),
      10_000
    )
  })

  describe("defect 15: the event stream is bounded", () => {
    it.scoped(
      "defect 15: a subscriber that stopped pulling gets a bounded buffer, its drops counted in stats().eventsDropped",
      () =>
        Effect.gen(function*() {
          const [{ pool }] = yield* isolated(memoryPool({ size: 1, shutdownTimeout: "1 second" }))
          const stuck = yield* spawn(Stream.runForEach(Pool.events(pool), () => Effect.never))
          yield* settle
          // a checkout and a checkin each: 20,000 events
          for (let i = 0; i < 10_000; i++) yield* Pool.use(pool, () => Effect.void)
          yield* settle
          const stats = (yield* Pool.stats(pool)) as PoolStats & { readonly eventsDropped?: unknown }
          const served = yield* Pool.use(pool, () => Effect.succeed("served"))
          yield* Fiber.interruptFork(stuck)
          assert.strictEqual(served, "served")
          assert.strictEqual(typeof stats.eventsDropped, "number", "stats() has a numeric eventsDropped")
          assert.isAbove(stats.eventsDropped as number, 0)
        }),
      20_000
    )
  })

  describe("defect 16: removing idle connections is not quadratic", () => {
    // Passes on the old core too (5,000 is small enough); kept as a guard on the counts, with no timing assertion.
    it.scoped(
      "defect 16: dispose and invalidateAll close each of 5,000 idle connections exactly once and the pool serves on",
      () =>
        Effect.gen(function*() {
          const n = 5000
          const [{ db, pool }] = yield* isolated(
            memoryPool({ size: n, maxOverflow: 0, min: 0, shutdownTimeout: "1 second" })
          )
          const fill = Effect.gen(function*() {
            const leases = yield* Effect.forEach(Array.from({ length: n }), () => Pool.checkout(pool))
            yield* Effect.forEach(leases, (lease) => Pool.checkin(pool, lease), { discard: true })
            assert.strictEqual((yield* Pool.stats(pool)).idle, n)
          })
          yield* fill
          yield* Pool.dispose(pool)
          yield* settle
          let stats = yield* Pool.stats(pool)
          assert.deepStrictEqual([stats.open, stats.idle, stats.closedBy.disposed], [0, 0, n])
          assert.strictEqual(yield* Pool.use(pool, () => Effect.succeed(1)), 1)
          yield* fill
          yield* Pool.invalidateAll(pool)
          yield* settle
          stats = yield* Pool.stats(pool)
          assert.deepStrictEqual([stats.open, stats.idle, stats.closedBy.stale], [0, 0, n])
          assert.strictEqual(yield* Pool.use(pool, () => Effect.succeed(2)), 2)
          const server = yield* db.stats
          assert.strictEqual(server.closedTwice, 0)
          assert.strictEqual(server.closed, 2 * n)
          assert.strictEqual(server.open, 1)
        }),
      30_000
    )
  })

  describe("defect 17: a borrower that throws returns its connection", () => {
    /** Ways a borrower's function can end, each run to its end (a borrower that hangs is interrupted from outside). */
    const variants: ReadonlyArray<
      readonly [string, (pool: Pool.Pool<MemoryConnection, MemoryError>) => Effect.Effect<unknown>]
    > = [
      ["fails", (pool) => Effect.exit(Pool.use(pool, () => Effect.fail("failed")))],
      ["dies", (pool) => Effect.exit(Pool.use(pool, () => Effect.die(new Error("died"))))],
      ["throws before returning an Effect", (pool) =>
        Effect.exit(Pool.use(pool, (): Effect.Effect<void> => {
          throw new Error("boom")
        }))],
      ["is interrupted", (pool) =>
        Effect.gen(function*() {
          const fiber = yield* spawn(Pool.use(pool, () => Effect.never))
          yield* settle
          yield* Fiber.interruptFork(fiber)
        })]
    ]

    it.scoped(
      "defect 17: the connection comes back however the borrower's function ends, with or without a checkout policy",
      () =>
        Effect.gen(function*() {
          const leaks: Array<string> = []
          for (const withPolicy of [false, true]) {
            for (const [how, borrow] of variants) {
              const [{ pool }] = yield* isolated(memoryPool({
                size: 1,
                maxOverflow: 0,
                timeout: "1 second",
                shutdownTimeout: "1 second",
                policies: withPolicy ? [Policy.recycle("1 hour")] : []
              }))
              // an idle connection is ready
              yield* Pool.use(pool, () => Effect.void)
              yield* borrow(pool)
              yield* settle
              const inUse = (yield* Pool.stats(pool)).inUse
              const next = yield* spawn(Pool.use(pool, () => Effect.succeed("next")))
              yield* settle
              const nextExit = yield* pollExit(next)
              if (nextExit === undefined) yield* Fiber.interruptFork(next)
              if (inUse !== 0 || nextExit === undefined || !Exit.isSuccess(nextExit)) {
                leaks.push(
                  `${how}${withPolicy ? " (with recycle)" : ""}: inUse ${inUse}, next checkout ${
                    nextExit === undefined ? "still waiting" : Exit.isSuccess(nextExit) ? "served" : "failed"
                  }`
                )
              }
            }
          }
          assert.deepStrictEqual(leaks, [], "borrowers whose connection stayed lent")
        }),
      20_000
    )
  })

  describe("defect 20: a returned lease reached the connection's next borrower", () => {
    it.scoped("invalidate and detach of a lease already returned fail with ReturnedTwice, and the next lending is untouched", () =>
      Effect.gen(function*() {
        const db = yield* Memory.make()
        const pool = yield* Pool.make({ driver: db.driver, size: 1, maxOverflow: 0, policies: [] })
        const first = yield* Pool.checkout(pool)
        yield* Pool.checkin(pool, first)
        // idle now: the returned lease must not reach it
        const idle = yield* Effect.flip(Pool.invalidate(pool, first))
        assert.strictEqual(idle.reason, "ReturnedTwice")
        const second = yield* Pool.checkout(pool)
        assert.strictEqual(second.connection, first.connection, "the same connection, lent again")
        const invalidated = yield* Effect.flip(Pool.invalidate(pool, first))
        const detached = yield* Effect.flip(Pool.detach(pool, first))
        assert.deepStrictEqual([invalidated.reason, detached.reason], ["ReturnedTwice", "ReturnedTwice"])
        const stats = yield* Pool.stats(pool)
        assert.deepStrictEqual([stats.inUse, stats.detached, stats.closed], [1, 0, 0], "the second lending is intact")
        yield* Pool.checkin(pool, second)
        assert.strictEqual((yield* Pool.stats(pool)).inUse, 0)
      }))
  })
})
