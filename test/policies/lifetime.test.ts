/**
 * `Policy.lifetime(schedule)`: a connection's lifetime as a `Schedule` stepped at every checkout, with its own state
 * per connection: `recurs(n)` counts lendings, `recurUpTo(d)` measures from the first lending, and an intersection
 * ends at whichever ends first.
 */
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Fiber, Schedule, TestClock } from "effect"
import type { ConnectionRecord } from "../../src/ConnectionRecord.js"
import type { MemoryConnection, MemoryError } from "../../src/Driver/Memory.js"
import * as Policy from "../../src/Policy.js"
import * as Pool from "../../src/Pool.js"
import { memoryPool, settle } from "../utils/pool.js"

type Conn = Pool.Pool<MemoryConnection, MemoryError>

/** The id of the connection one checkout is lent. */
const lend = (pool: Conn) => Pool.use(pool, (c) => Effect.succeed(c.id))

/** The ids of `n` checkouts in a row. */
const lendings = (pool: Conn, n: number) => Effect.forEach(Array.from({ length: n }), () => lend(pool))

describe("Policy.lifetime", () => {
  it.scoped("Schedule.recurs(3) allows three lendings, then the connection is closed at checkout", () =>
    Effect.gen(function*() {
      const { pool } = yield* memoryPool({ size: 1, policies: [Policy.lifetime(Schedule.recurs(3))] })
      const ids = yield* lendings(pool, 7)
      assert.deepStrictEqual(ids, [1, 1, 1, 2, 2, 2, 3])
      const stats = yield* Pool.stats(pool)
      assert.strictEqual(stats.closedBy.expired, 2)
      assert.strictEqual(stats.checkouts, 7, "a refused connection costs the caller nothing: it gets a fresh one")
    }))

  it.scoped("Schedule.recurUpTo(10 minutes) ends 10 minutes after the first lending, not after the connect", () =>
    Effect.gen(function*() {
      const { pool } = yield* memoryPool({
        size: 1,
        min: 1,
        policies: [Policy.lifetime(Schedule.recurUpTo("10 minutes"))]
      })
      yield* settle
      // opened at 0, first lent at 5 minutes
      yield* TestClock.adjust("5 minutes")
      assert.strictEqual(yield* lend(pool), 1)
      yield* TestClock.adjust("9 minutes")
      assert.strictEqual(yield* lend(pool), 1, "14 minutes old, 9 minutes after its first lending")
      yield* TestClock.adjust("59 seconds")
      assert.strictEqual(yield* lend(pool), 1)
      yield* TestClock.adjust("1 second")
      assert.strictEqual(yield* lend(pool), 2, "10 minutes after its first lending")
      assert.strictEqual((yield* Pool.stats(pool)).closedBy.expired, 1)
    }))

  it.scoped("the intersection of uses and age ends at whichever ends first", () =>
    Effect.gen(function*() {
      const both = Schedule.intersect(Schedule.recurs(3), Schedule.recurUpTo("10 minutes"))
      const { pool } = yield* memoryPool({ size: 1, policies: [Policy.lifetime(both)] })
      // uses first: three lendings within a minute
      assert.deepStrictEqual(yield* lendings(pool, 4), [1, 1, 1, 2])
      // age first: connection 2 was lent once; 10 minutes later it is done though it has uses left
      yield* TestClock.adjust("10 minutes")
      assert.strictEqual(yield* lend(pool), 3)
      assert.strictEqual((yield* Pool.stats(pool)).closedBy.expired, 2)
    }))

  it.scoped("keeps each connection's schedule state apart, and two pools share none", () =>
    Effect.gen(function*() {
      const policy = Policy.lifetime<MemoryConnection, MemoryError>(Schedule.recurs(2))
      const { pool } = yield* memoryPool({ size: 2, policies: [policy] })
      const other = yield* memoryPool({ size: 1, policies: [policy] })
      // two connections open at once, each lent once
      const gate = yield* Deferred.make<void>()
      const held = yield* Effect.forEach(
        [1, 2],
        () => Effect.fork(Pool.use(pool, (c) => Effect.as(Deferred.await(gate), c.id))),
        { concurrency: "unbounded" }
      )
      yield* settle
      yield* Deferred.succeed(gate, undefined)
      const first = yield* Effect.forEach(held, Fiber.join)
      assert.sameMembers(first, [1, 2])
      // one more lending each (FIFO takes them in turn), then each is done on its own count
      assert.sameMembers(yield* lendings(pool, 2), first)
      assert.deepStrictEqual(yield* lendings(pool, 1), [3])
      assert.deepStrictEqual(yield* lendings(other.pool, 3), [1, 1, 2])
    }))

  it.scoped("steps the schedule with the connection's record", () =>
    Effect.gen(function*() {
      // a schedule that reads its input: `uses` counts this lending already
      const twice = Schedule.recurWhile((record: ConnectionRecord) => record.uses <= 2)
      const { pool } = yield* memoryPool({ size: 1, policies: [Policy.lifetime(twice)] })
      assert.deepStrictEqual(yield* lendings(pool, 5), [1, 1, 2, 2, 3])
      assert.strictEqual((yield* Pool.stats(pool)).closedBy.expired, 2)
    }))
})
