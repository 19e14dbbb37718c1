/**
 * `Policy.recycle`: a connection past its lifetime is closed at checkout or at return, never while lent; an idle one
 * is closed in the background when its lifetime ends and `min` is refilled; lifetimes are spread so that
 * connections opened together do not all reconnect together (the recycle storm).
 */
import { assert, describe, it } from "@effect/vitest"
import { Clock, Deferred, Effect, Fiber, TestClock } from "effect"
import type { MemoryConnection, MemoryError } from "../../src/Driver/Memory.js"
import * as Policy from "../../src/Policy.js"
import * as Pool from "../../src/Pool.js"
import type { CloseReason } from "../../src/PoolEvent.js"
import { memoryPool, settle } from "../utils/pool.js"

type P = Policy.Policy<MemoryConnection, MemoryError>

const MINUTE = 60_000

interface Closed {
  readonly at: number
  readonly id: number
  readonly reason: CloseReason
}

/** Every close of this pool, with the pool's clock at the time. */
const closesOf = (pool: Pool.Pool<MemoryConnection, MemoryError>) =>
  Effect.gen(function*() {
    const closes: Array<Closed> = []
    yield* Pool.listen(pool, {
      close: (event) =>
        Effect.map(Clock.currentTimeMillis, (at) => {
          closes.push({ at, id: event.record.id, reason: event.reason })
        })
    })
    return closes
  })

/**
 * Moves the test clock in steps, letting the pool's fibers run after each: a background loop woken by one big
 * `TestClock.adjust` may only get to run once the clock has already moved on.
 */
const advance = (millis: number, step = 1000) =>
  Effect.gen(function*() {
    for (let moved = 0; moved < millis; moved += step) {
      yield* TestClock.adjust(Math.min(step, millis - moved))
      yield* settle
    }
  })

const STORM_AGE = 30 * MINUTE

/**
 * 50 connections opened at once (size 50, min 50, connects taking 500 ms) with a 30 minute `maxAge`: the clock
 * crosses the expiry window in 100 ms steps, sampling how many reconnect at once. Asserts what any spread must
 * give (each expires once, the pool ends full and serving) and answers the rest.
 */
const storm = (spread: number) =>
  Effect.gen(function*() {
    const window = STORM_AGE * 0.025 // 45 seconds
    const { db, pool } = yield* memoryPool({
      size: 50,
      min: 50,
      timeout: "1 minute",
      policies: [Policy.recycle(STORM_AGE, { spread })]
    })
    yield* db.setLatency({ connect: "500 millis" })
    const closes = yield* closesOf(pool)
    yield* advance(1000, 100)
    assert.strictEqual((yield* Pool.stats(pool)).open, 50, "filled")
    yield* TestClock.adjust(STORM_AGE - window - 5_000 - 1000)
    yield* settle
    assert.deepStrictEqual(closes, [])
    let peakOpening = 0
    let lowestOpen = 50
    for (let i = 0; i < (window + 10_000) / 100; i++) {
      yield* advance(100, 100)
      const stats = yield* Pool.stats(pool)
      peakOpening = Math.max(peakOpening, stats.opening)
      lowestOpen = Math.min(lowestOpen, stats.open)
    }
    const expired = closes.filter((c) => c.reason === "expired")
    assert.strictEqual(expired.length, 50, "every one of the first 50 expired once")
    const stats = yield* Pool.stats(pool)
    assert.deepStrictEqual([stats.open, stats.opening, stats.closedBy.expired], [50, 0, 50], "full again")
    yield* Pool.use(pool, () => Effect.void)
    const times = expired.map((c) => c.at)
    return { peakOpening, lowestOpen, times, spreadOver: Math.max(...times) - Math.min(...times) }
  })

/** A policy that hands its pool's handle to the test. */
const spy = () => {
  const ref: { handle?: Policy.PoolHandle<MemoryConnection, MemoryError> } = {}
  const policy: P = Policy.stateful("spy", (pool) =>
    Effect.sync(() => {
      ref.handle = pool
      return {}
    }))
  return { policy, ref }
}

describe("Policy.recycle", () => {
  it.scoped("closes an idle connection in the background when its lifetime ends, and refills min", () =>
    Effect.gen(function*() {
      const { db, pool } = yield* memoryPool({
        size: 3,
        min: 3,
        policies: [Policy.recycle("10 minutes", { spread: 0 })]
      })
      const closes = yield* closesOf(pool)
      yield* settle
      const before = (yield* db.connections).map((c) => c.id)
      assert.deepStrictEqual(before, [1, 2, 3])
      yield* TestClock.adjust(10 * MINUTE - 1)
      yield* settle
      assert.deepStrictEqual(closes, [], "nothing before maxAge")
      yield* TestClock.adjust(1)
      yield* settle
      // spread 0: every one of them at exactly maxAge, with no checkout asking
      assert.deepStrictEqual(closes.map((c) => [c.at, c.reason]), [
        [10 * MINUTE, "expired"],
        [10 * MINUTE, "expired"],
        [10 * MINUTE, "expired"]
      ])
      const stats = yield* Pool.stats(pool)
      assert.deepStrictEqual([stats.open, stats.closedBy.expired, stats.checkouts], [3, 3, 0])
      const after = (yield* db.connections).map((c) => c.id)
      assert.deepStrictEqual(after, [4, 5, 6], "min refilled with new connections")
    }))

  it.scoped("closes at checkout a connection the background pass could not take: no borrower sees it", () =>
    Effect.gen(function*() {
      const { policy, ref } = spy()
      const { pool } = yield* memoryPool({
        size: 1,
        policies: [Policy.recycle("10 minutes", { spread: 0 }), policy]
      })
      const closes = yield* closesOf(pool)
      const first = yield* Pool.use(pool, (c) => Effect.succeed(c.id))
      // an upkeep pass holds the idle connection across its expiry, so the background finds nothing idle then
      const gate = yield* Deferred.make<void>()
      const holding = yield* Effect.fork(ref.handle!.forEachIdle(() => Deferred.await(gate)))
      yield* settle
      assert.strictEqual((yield* Pool.stats(pool)).maintained, 1)
      yield* TestClock.adjust(11 * MINUTE)
      yield* settle
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(holding)
      // back idle, expired, and the background asleep until its horizon
      assert.strictEqual((yield* Pool.stats(pool)).idle, 1)
      assert.deepStrictEqual(closes, [])
      const lentAt = yield* Clock.currentTimeMillis
      const second = yield* Pool.use(
        pool,
        (c) => Effect.map(Pool.record(pool, c), (record) => ({ id: c.id, age: lentAt - record.createdAt }))
      )
      assert.notStrictEqual(second.id, first)
      assert.isBelow(second.age, 10 * MINUTE)
      assert.deepStrictEqual(closes.map((c) => [c.id, c.reason]), [[first, "expired"]])
    }))

  it.scoped("never closes a connection while it is lent: it expires at its return, after the borrower's work", () =>
    Effect.gen(function*() {
      const { db, pool } = yield* memoryPool({
        size: 1,
        policies: [Policy.recycle("10 minutes", { spread: 0 })]
      })
      const closes = yield* closesOf(pool)
      const lent = yield* Deferred.make<MemoryConnection>()
      const done = yield* Deferred.make<void>()
      const borrower = yield* Effect.fork(Pool.use(pool, (c) =>
        Effect.gen(function*() {
          yield* Deferred.succeed(lent, c)
          yield* Deferred.await(done)
          // still usable past its lifetime: the borrower finishes its work
          return yield* db.driver.query(c, "SELECT 1")
        })))
      const connection = yield* Deferred.await(lent)
      yield* TestClock.adjust(20 * MINUTE)
      yield* settle
      assert.isFalse(connection.closed, "not closed while lent")
      assert.deepStrictEqual(closes, [])
      yield* Deferred.succeed(done, undefined)
      const rows = yield* Fiber.join(borrower)
      assert.strictEqual(rows.length, 1)
      yield* settle
      assert.isTrue(connection.closed)
      assert.deepStrictEqual(closes.map((c) => [c.at, c.reason]), [[20 * MINUTE, "expired"]])
      const next = yield* Pool.use(pool, (c) => Effect.succeed(c.id))
      assert.notStrictEqual(next, connection.id)
    }))

  it.scoped("retires on time a connection opened while the background slept with nothing to do", () =>
    Effect.gen(function*() {
      const { pool } = yield* memoryPool({ size: 1, policies: [Policy.recycle("10 minutes", { spread: 0 })] })
      const closes = yield* closesOf(pool)
      yield* settle
      // the pool is empty: the loop sleeps its horizon; a connection opens 3 minutes in
      yield* TestClock.adjust(3 * MINUTE)
      yield* Pool.use(pool, () => Effect.void)
      yield* TestClock.adjust(10 * MINUTE - 1)
      yield* settle
      assert.deepStrictEqual(closes, [])
      yield* TestClock.adjust(1)
      yield* settle
      assert.deepStrictEqual(closes.map((c) => [c.at, c.reason]), [[13 * MINUTE, "expired"]])
    }))

  it.scoped("spreads lifetimes over the last 2.5 % of maxAge by default, one per connection", () =>
    Effect.gen(function*() {
      const { pool } = yield* memoryPool({ size: 20, min: 20, policies: [Policy.recycle("40 minutes")] })
      const closes = yield* closesOf(pool)
      yield* settle
      yield* TestClock.adjust(38 * MINUTE)
      yield* advance(2 * MINUTE)
      const firstGeneration = closes.filter((c) => c.id <= 20)
      assert.strictEqual(firstGeneration.length, 20)
      const times = firstGeneration.map((c) => c.at)
      for (const at of times) {
        assert.isAtLeast(at, 39 * MINUTE, "no sooner than maxAge less 2.5 % (1 minute)")
        assert.isAtMost(at, 40 * MINUTE)
      }
      assert.strictEqual(new Set(times).size, 20, "no two at the same moment")
      assert.strictEqual((yield* Pool.stats(pool)).open, 20)
    }))

  it.scoped(
    "recycle storm: 50 connections opened together reconnect a few at a time, spread over the window",
    () =>
      Effect.gen(function*() {
        const run = yield* storm(0.025)
        assert.isAtMost(run.peakOpening, 3, `at most a few reconnect at once (peak ${run.peakOpening})`)
        assert.isAtLeast(run.lowestOpen, 47, `the pool never dips far below min (lowest ${run.lowestOpen})`)
        assert.isAtLeast(run.spreadOver, 30_000, `expiries spread over ${run.spreadOver} ms of the 45 s window`)
        for (const at of run.times) assert.isAtLeast(at, STORM_AGE * 0.975)
      }),
    30_000
  )

  it.scoped("recycle storm without spread: all 50 reconnect at the same moment", () =>
    Effect.gen(function*() {
      const run = yield* storm(0)
      assert.strictEqual(run.peakOpening, 50)
      assert.strictEqual(run.spreadOver, 0)
    }), 30_000)

  it.scoped("gives two pools opened together lifetimes out of step (a per-pool random offset)", () =>
    Effect.gen(function*() {
      const policy = Policy.recycle<MemoryConnection, MemoryError>("40 minutes")
      const a = yield* memoryPool({ size: 1, min: 1, policies: [policy] })
      const b = yield* memoryPool({ size: 1, min: 1, policies: [policy] })
      const closesA = yield* closesOf(a.pool)
      const closesB = yield* closesOf(b.pool)
      yield* settle
      yield* TestClock.adjust(38 * MINUTE)
      yield* advance(2 * MINUTE)
      assert.strictEqual(closesA.length, 1)
      assert.strictEqual(closesB.length, 1)
      // both connections have id 1: only the pools' offsets tell their lifetimes apart
      assert.notStrictEqual(closesA[0]!.at, closesB[0]!.at)
    }))
})
