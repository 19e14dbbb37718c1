/**
 * `Policy.idleTimeout(timeout)`: connections idle longer than `timeout`, measured from when they came back, are
 * closed in the background, longest idle first, never below `min`.
 */
import { assert, describe, it } from "@effect/vitest"
import { Clock, Deferred, Effect, Fiber, TestClock } from "effect"
import type { MemoryConnection, MemoryError } from "../../src/Driver/Memory.js"
import * as Policy from "../../src/Policy.js"
import * as Pool from "../../src/Pool.js"
import { memoryPool, settle } from "../utils/pool.js"

type Conn = Pool.Pool<MemoryConnection, MemoryError>

/** Every close of this pool: the pool's clock, the connection's id and the reason. */
const closesOf = (pool: Conn) =>
  Effect.gen(function*() {
    const closes: Array<readonly [number, number, string]> = []
    yield* Pool.listen(pool, {
      close: (event) =>
        Effect.map(Clock.currentTimeMillis, (at) => {
          closes.push([at, event.record.id, event.reason])
        })
    })
    return closes
  })

/**
 * `n` borrowers at once, each holding its connection until its gate opens: the burst that opens connections above
 * `min`. Answers the gates, in the order the borrowers started, and the fibers.
 */
const burst = (pool: Conn, n: number) =>
  Effect.gen(function*() {
    const gates = yield* Effect.forEach(Array.from({ length: n }), () => Deferred.make<void>())
    const fibers = yield* Effect.forEach(gates, (gate) =>
      Effect.fork(Pool.use(pool, (c) => Effect.as(Deferred.await(gate), c.id))))
    yield* settle
    return { gates, fibers }
  })

const release = (gate: Deferred.Deferred<void>, fiber: Fiber.RuntimeFiber<number, unknown>) =>
  Effect.zipRight(Deferred.succeed(gate, undefined), Fiber.join(fiber))

describe("Policy.idleTimeout", () => {
  it.scoped("closes the connections a burst opened above min once idle for the timeout, and keeps min", () =>
    Effect.gen(function*() {
      const { pool } = yield* memoryPool({ size: 5, min: 2, policies: [Policy.idleTimeout("1 minute")] })
      const closes = yield* closesOf(pool)
      const { fibers, gates } = yield* burst(pool, 5)
      assert.strictEqual((yield* Pool.stats(pool)).open, 5)
      yield* Effect.forEach(gates, (gate, i) => release(gate, fibers[i]!))
      yield* TestClock.adjust("59999 millis")
      yield* settle
      assert.deepStrictEqual(closes, [], "not before the timeout")
      yield* TestClock.adjust("1 millis")
      yield* settle
      const stats = yield* Pool.stats(pool)
      assert.deepStrictEqual([stats.open, stats.idle, stats.closedBy.idle], [2, 2, 3])
      assert.deepStrictEqual(closes.map(([at, , reason]) => [at, reason]), [
        [60_000, "idle"],
        [60_000, "idle"],
        [60_000, "idle"]
      ])
      // min stays, however long it idles
      yield* TestClock.adjust("1 hour")
      yield* settle
      assert.deepStrictEqual([(yield* Pool.stats(pool)).open, closes.length], [2, 3])
    }))

  it.scoped("measures from when a connection came back: one used again later is closed later", () =>
    Effect.gen(function*() {
      const { pool } = yield* memoryPool({ size: 3, policies: [Policy.idleTimeout("1 minute")] })
      const closes = yield* closesOf(pool)
      const { fibers, gates } = yield* burst(pool, 3)
      // two come back at 0, the third at 30 seconds
      const a = yield* release(gates[0]!, fibers[0]!)
      const b = yield* release(gates[1]!, fibers[1]!)
      yield* TestClock.adjust("30 seconds")
      const c = yield* release(gates[2]!, fibers[2]!)
      yield* TestClock.adjust("30 seconds")
      yield* settle
      assert.sameDeepMembers(closes, [[60_000, a, "idle"], [60_000, b, "idle"]])
      yield* TestClock.adjust("29 seconds")
      yield* settle
      assert.strictEqual(closes.length, 2)
      yield* TestClock.adjust("1 second")
      yield* settle
      assert.deepStrictEqual(closes[2], [90_000, c, "idle"])
      assert.strictEqual((yield* Pool.stats(pool)).open, 0)
    }))

  it.scoped("closes the longest idle first, and only as many as leave min open", () =>
    Effect.gen(function*() {
      const { pool } = yield* memoryPool({ size: 4, min: 1, policies: [Policy.idleTimeout("1 minute")] })
      const closes = yield* closesOf(pool)
      const { fibers, gates } = yield* burst(pool, 4)
      const ids: Array<number> = []
      // returned 10 seconds apart, the last one first
      for (let i = 3; i >= 0; i--) {
        ids.push(yield* release(gates[i]!, fibers[i]!))
        yield* TestClock.adjust("10 seconds")
      }
      // all four are past their timeout by now
      yield* TestClock.adjust("1 minute")
      yield* settle
      assert.deepStrictEqual(closes.map(([, id]) => id), ids.slice(0, 3))
      const stats = yield* Pool.stats(pool)
      assert.deepStrictEqual([stats.open, stats.closedBy.idle], [1, 3])
      // the one left is the most recently returned
      assert.strictEqual(yield* Pool.use(pool, (c) => Effect.succeed(c.id)), ids[3])
    }))

  it.scoped("never closes a lent connection, and counts it towards min", () =>
    Effect.gen(function*() {
      const { pool } = yield* memoryPool({ size: 3, min: 1, policies: [Policy.idleTimeout("1 minute")] })
      const { fibers, gates } = yield* burst(pool, 3)
      // one stays lent for an hour; the two idle ones may both go, since the lent one keeps min
      yield* release(gates[0]!, fibers[0]!)
      yield* release(gates[1]!, fibers[1]!)
      yield* TestClock.adjust("1 hour")
      yield* settle
      const stats = yield* Pool.stats(pool)
      assert.deepStrictEqual([stats.open, stats.inUse, stats.closedBy.idle], [1, 1, 2])
      yield* release(gates[2]!, fibers[2]!)
      yield* TestClock.adjust("1 hour")
      yield* settle
      assert.strictEqual((yield* Pool.stats(pool)).open, 1, "at min now: it stays")
    }))

  it.scoped("wakes for connections that open after it went to sleep at min", () =>
    Effect.gen(function*() {
      const { pool } = yield* memoryPool({ size: 3, min: 1, policies: [Policy.idleTimeout("1 minute")] })
      const closes = yield* closesOf(pool)
      yield* settle
      // at min: the loop sleeps its horizon; a burst 20 seconds in opens two more
      yield* TestClock.adjust("20 seconds")
      const { fibers, gates } = yield* burst(pool, 3)
      yield* Effect.forEach(gates, (gate, i) => release(gate, fibers[i]!))
      yield* TestClock.adjust("1 minute")
      yield* settle
      assert.deepStrictEqual(closes.map(([at, , reason]) => [at, reason]), [[80_000, "idle"], [80_000, "idle"]])
    }))
})
