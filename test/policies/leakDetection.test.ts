/**
 * Leak detection under `TestClock` against the Memory database: one `Leak` per lending held past the threshold,
 * naming the holder fiber and where it checked out (the span current at checkout, or a stack of the caller's code),
 * one `Unleaked` when it comes back, nothing before the threshold; with `reclaim` the holder is interrupted and the
 * connection closed, and the pool serves on with consistent counters.
 */
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber, Schedule, TestClock } from "effect"
import type { MemoryConnection, MemoryError } from "../../src/Driver/Memory.js"
import * as Policy from "../../src/Policy.js"
import * as Pool from "../../src/Pool.js"
import type * as PoolEvent from "../../src/PoolEvent.js"
import { memoryPool, settle } from "../utils/pool.js"

type Leaks = Policy.Policy<MemoryConnection, MemoryError, Policy.LeakCommands>
type Heard = PoolEvent.Leak<MemoryConnection> | PoolEvent.Unleaked<MemoryConnection> | PoolEvent.Close<MemoryConnection>

/** A pool with a leak detector, and the `Leak`, `Unleaked` and `Close` events it emits, in order. */
const leakPool = (detector: Leaks, options: { readonly size?: number; readonly others?: ReadonlyArray<any> } = {}) =>
  Effect.gen(function*() {
    const { db, pool } = yield* memoryPool({
      size: options.size ?? 2,
      maxOverflow: 0,
      policies: [...(options.others ?? []), detector]
    })
    const events: Array<Heard> = []
    const push = (event: Heard) => Effect.sync(() => events.push(event))
    yield* Pool.listen(pool, { leak: push, unleaked: push, close: push })
    const commands = yield* Pool.policy(pool, detector)
    return { db, pool, events, commands } as const
  })

/** A borrower that holds a connection until `release` completes, forked; resolves once it holds it. */
const borrower = (
  pool: Pool.Pool<MemoryConnection, MemoryError>,
  release: Deferred.Deferred<void>,
  wrap: <A, E>(effect: Effect.Effect<A, E>) => Effect.Effect<A, E> = (effect) => effect
) =>
  Effect.gen(function*() {
    const holding = yield* Deferred.make<void>()
    const fiber = yield* Effect.fork(
      wrap(Pool.use(pool, () => Effect.zipRight(Deferred.succeed(holding, undefined), Deferred.await(release))))
    )
    yield* Deferred.await(holding)
    return fiber
  })

const tags = (events: ReadonlyArray<Heard>) => events.map((e) => e._tag === "Close" ? `Close(${e.reason})` : e._tag)

describe("Policy.leakDetection", () => {
  it.scoped("reports a connection held past the threshold once, naming its holder fiber and span", () =>
    Effect.gen(function*() {
      const detector: Leaks = Policy.leakDetection("10 seconds")
      const { commands, events, pool } = yield* leakPool(detector)
      const release = yield* Deferred.make<void>()
      const fiber = yield* borrower(pool, release, Effect.withSpan("my-span"))

      yield* TestClock.adjust("9999 millis")
      yield* settle
      assert.deepStrictEqual(events, [], "not before the threshold")
      assert.deepStrictEqual(yield* commands.leaks, [])
      yield* TestClock.adjust("1 millis")
      yield* settle
      assert.deepStrictEqual(tags(events), ["Leak"])
      const leak = events[0] as PoolEvent.Leak<MemoryConnection>
      assert.strictEqual(leak.holder, fiber)
      assert.strictEqual(leak.holderId, `#${fiber.id().id}`)
      assert.strictEqual(leak.since, 0)
      assert.strictEqual(leak.heldMillis, 10_000)
      assert.include(leak.trace ?? "", "my-span")
      assert.isFalse(leak.reclaimed)
      assert.strictEqual(leak.connection.id, leak.record.id)
      assert.strictEqual((yield* commands.leaks).length, 1)

      // still held: reported once, however long it stays
      yield* TestClock.adjust("1 minute")
      yield* settle
      assert.deepStrictEqual(tags(events), ["Leak"])

      // back: Unleaked, after the whole time it was held
      yield* TestClock.adjust("5 seconds")
      yield* Deferred.succeed(release, undefined)
      yield* Fiber.join(fiber)
      yield* settle
      assert.deepStrictEqual(tags(events), ["Leak", "Unleaked"])
      const unleaked = events[1] as PoolEvent.Unleaked<MemoryConnection>
      assert.strictEqual(unleaked.record, leak.record)
      assert.strictEqual(unleaked.heldMillis, 75_000)
      assert.deepStrictEqual(yield* commands.leaks, [])
    }))

  it.scoped("records a stack of the caller's own code with trace: \"stack\"", () =>
    Effect.gen(function*() {
      const detector: Leaks = Policy.leakDetection("1 second", { trace: "stack" })
      const { events, pool } = yield* leakPool(detector, { size: 1 })
      const first = yield* Deferred.make<void>()
      const holder = yield* borrower(pool, first)
      // a second borrower waits, and is handed the connection by the first one's return: its stack is still its own
      const second = yield* Deferred.make<void>()
      const waiting = yield* Effect.fork(Pool.use(pool, () => Deferred.await(second)))
      yield* settle
      yield* TestClock.adjust("1 second")
      yield* settle
      yield* Deferred.succeed(first, undefined)
      yield* Fiber.join(holder)
      yield* TestClock.adjust("1 second")
      yield* settle
      const leaks = events.filter((e): e is PoolEvent.Leak<MemoryConnection> => e._tag === "Leak")
      assert.strictEqual(leaks.length, 2)
      for (const leak of leaks) {
        assert.include(leak.trace ?? "", "checked out here")
        assert.include(leak.trace ?? "", "leakDetection.test.ts")
      }
      assert.strictEqual(leaks[1]!.holder, waiting)
      yield* Deferred.succeed(second, undefined)
      yield* Fiber.join(waiting)
    }))

  it.scoped("a new lending of the same connection is a new leak", () =>
    Effect.gen(function*() {
      const detector: Leaks = Policy.leakDetection("1 second")
      const { events, pool } = yield* leakPool(detector, { size: 1 })
      for (let i = 0; i < 2; i++) {
        const release = yield* Deferred.make<void>()
        const fiber = yield* borrower(pool, release)
        yield* TestClock.adjust("2 seconds")
        yield* settle
        yield* Deferred.succeed(release, undefined)
        yield* Fiber.join(fiber)
        yield* settle
      }
      assert.deepStrictEqual(tags(events), ["Leak", "Unleaked", "Leak", "Unleaked"])
      const [a, , b] = events as Array<PoolEvent.Leak<MemoryConnection>>
      assert.strictEqual(a!.record, b!.record, "the same connection")
      assert.notStrictEqual(a!.since, b!.since)
    }))

  it.scoped("sees a lending that began while the loop slept at its own threshold, not later", () =>
    Effect.gen(function*() {
      const detector: Leaks = Policy.leakDetection("10 seconds")
      const { events, pool } = yield* leakPool(detector)
      yield* TestClock.adjust("7 seconds")
      const release = yield* Deferred.make<void>()
      const fiber = yield* borrower(pool, release)
      yield* TestClock.adjust("9999 millis")
      yield* settle
      assert.deepStrictEqual(events, [])
      yield* TestClock.adjust("1 millis")
      yield* settle
      assert.deepStrictEqual(tags(events), ["Leak"])
      assert.strictEqual((events[0] as PoolEvent.Leak<MemoryConnection>).since, 7000)
      // the pool's shutdown waits for its borrowers (on the test clock, for ever)
      yield* Deferred.succeed(release, undefined)
      yield* Fiber.join(fiber)
    }))

  it.scoped("reclaim: interrupts the holder, closes the connection, and the pool serves on", () =>
    Effect.gen(function*() {
      const detector: Leaks = Policy.leakDetection("5 seconds", { reclaim: true })
      const { db, events, pool } = yield* leakPool(detector, { size: 1 })
      const release = yield* Deferred.make<void>()
      const fiber = yield* borrower(pool, release)
      yield* TestClock.adjust("5 seconds")
      yield* settle
      const exit = yield* Fiber.await(fiber)
      assert.isTrue(Exit.isInterrupted(exit), "the holder is interrupted")
      assert.deepStrictEqual(tags(events), ["Leak", "Close(reclaimed)", "Unleaked"])
      const leak = events[0] as PoolEvent.Leak<MemoryConnection>
      assert.isTrue(leak.reclaimed)
      assert.isTrue(leak.connection.closed, "the connection is closed")
      assert.strictEqual((events[2] as PoolEvent.Unleaked<MemoryConnection>).heldMillis, 5000)

      const stats = yield* Pool.stats(pool)
      assert.strictEqual(stats.closedBy.reclaimed, 1)
      assert.deepStrictEqual([stats.inUse, stats.open, stats.idle, stats.waiting], [0, 0, 0, 0])
      assert.deepStrictEqual([stats.opened, stats.closed], [1, 1])
      // the pool serves on, with a fresh connection
      const id = yield* Pool.use(pool, (c) => Effect.succeed(c.id))
      assert.strictEqual(id, 2)
      const after = yield* Pool.stats(pool)
      assert.deepStrictEqual([after.open, after.idle, after.inUse, after.checkouts], [1, 1, 0, 2])
      assert.strictEqual((yield* db.stats).closedTwice, 0)
      assert.strictEqual((yield* db.stats).open, 1)
    }))

  it.scoped("a waiter is served by the reclaimed slot", () =>
    Effect.gen(function*() {
      const detector: Leaks = Policy.leakDetection("5 seconds", { reclaim: true })
      const { pool } = yield* leakPool(detector, { size: 1 })
      const release = yield* Deferred.make<void>()
      const leaker = yield* borrower(pool, release)
      const waiter = yield* Effect.fork(Pool.use(pool, (c) => Effect.succeed(c.id), { timeout: "1 minute" }))
      yield* TestClock.adjust("5 seconds")
      yield* settle
      assert.isTrue(Exit.isInterrupted(yield* Fiber.await(leaker)))
      assert.strictEqual(yield* Fiber.join(waiter), 2)
    }))

  it.scoped("tells Unleaked for a reported connection closed underneath its holder, at the next pass", () =>
    Effect.gen(function*() {
      const detector: Leaks = Policy.leakDetection("5 seconds")
      const { events, pool } = yield* leakPool(detector, { size: 1 })
      const release = yield* Deferred.make<void>()
      const fiber = yield* borrower(pool, release)
      yield* TestClock.adjust("5 seconds")
      yield* settle
      // stale: its return skips the return hooks and closes it
      yield* Pool.invalidateAll(pool)
      yield* Deferred.succeed(release, undefined)
      yield* Fiber.join(fiber)
      yield* settle
      assert.deepStrictEqual(tags(events), ["Leak", "Close(stale)"])
      yield* TestClock.adjust("5 seconds")
      yield* settle
      assert.deepStrictEqual(tags(events), ["Leak", "Close(stale)", "Unleaked"])
      yield* TestClock.adjust("1 minute")
      yield* settle
      assert.strictEqual(events.length, 3, "told once")
    }))

  it.scoped("runs beside an upkeep pass over idle connections without either disturbing the other", () =>
    Effect.gen(function*() {
      const pings: Array<number> = []
      // a keepalive in miniature: pings every idle connection every second
      const pinger = Policy.make<MemoryConnection, MemoryError>({
        name: "pinger",
        background: (handle) =>
          Effect.asVoid(Effect.repeat(
            handle.forEachIdle((context) =>
              Effect.orDie(Effect.zipRight(context.ping(), Effect.sync(() => pings.push(context.record.id))))
            ),
            Schedule.spaced("1 second")
          ))
      })
      const detector: Leaks = Policy.leakDetection("3 seconds", { reclaim: true })
      const { events, pool } = yield* leakPool(detector, { size: 2, others: [pinger] })
      // two connections: one leaked, one idle and pinged
      yield* Effect.all([Pool.use(pool, () => Effect.sleep("1 millis")), Pool.use(pool, () => Effect.void)], {
        concurrency: "unbounded"
      }).pipe(Effect.fork, Effect.tap(() => TestClock.adjust("1 millis")), Effect.flatMap(Fiber.join))
      const release = yield* Deferred.make<void>()
      const fiber = yield* borrower(pool, release)
      assert.deepStrictEqual([(yield* Pool.stats(pool)).inUse, (yield* Pool.stats(pool)).open], [1, 2])
      yield* TestClock.adjust("3 seconds")
      yield* settle
      assert.isTrue(Exit.isInterrupted(yield* Fiber.await(fiber)))
      assert.deepStrictEqual(tags(events), ["Leak", "Close(reclaimed)", "Unleaked"])
      const leaked = (events[0] as PoolEvent.Leak<MemoryConnection>).record.id
      assert.isAtLeast(pings.length, 3)
      assert.notInclude(pings.slice(1), leaked, "the lent connection is never pinged")
      yield* TestClock.adjust("3 seconds")
      yield* settle
      const stats = yield* Pool.stats(pool)
      assert.deepStrictEqual([stats.inUse, stats.maintained, stats.closedBy.reclaimed], [0, 0, 1])
      assert.strictEqual(events.length, 3, "an idle connection being pinged is never a leak")
    }))
})
