/**
 * `Policy.maxUses(n)`: a connection is lent at most `n` times and closed as it comes back from its `n`-th use
 * (close reason `maxUses`), so no checkout ever meets it again.
 */
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Fiber } from "effect"
import type { MemoryConnection, MemoryError } from "../../src/Driver/Memory.js"
import * as Policy from "../../src/Policy.js"
import * as Pool from "../../src/Pool.js"
import { memoryPool, settle } from "../utils/pool.js"

type Conn = Pool.Pool<MemoryConnection, MemoryError>

const lend = (pool: Conn) => Pool.use(pool, (c) => Effect.succeed(c.id))

describe("Policy.maxUses", () => {
  it.scoped("lends a connection n times, then closes it at its n-th return", () =>
    Effect.gen(function*() {
      const { db, pool } = yield* memoryPool({ size: 1, policies: [Policy.maxUses(3)] })
      assert.deepStrictEqual(yield* Effect.forEach([1, 2], () => lend(pool)), [1, 1])
      assert.strictEqual((yield* Pool.stats(pool)).open, 1)
      assert.strictEqual(yield* lend(pool), 1)
      yield* settle
      // closed as it came back, before any checkout asks for it
      const stats = yield* Pool.stats(pool)
      assert.deepStrictEqual([stats.open, stats.closedBy.maxUses, stats.checkouts], [0, 1, 3])
      assert.deepStrictEqual((yield* db.stats).closed, 1)
      assert.deepStrictEqual(yield* Effect.forEach([1, 2, 3, 4], () => lend(pool)), [2, 2, 2, 3])
    }))

  it.scoped("counts a use that failed, and closes the connection however its last use ended", () =>
    Effect.gen(function*() {
      const { pool } = yield* memoryPool({ size: 1, policies: [Policy.maxUses(2)] })
      yield* lend(pool)
      const failed = yield* Effect.either(Pool.use(pool, () => Effect.fail("boom")))
      assert.strictEqual(failed._tag, "Left")
      yield* settle
      assert.strictEqual((yield* Pool.stats(pool)).closedBy.maxUses, 1)
      assert.strictEqual(yield* lend(pool), 2)
    }))

  it.scoped("hands a waiter a fresh connection, not the one that used its last lending", () =>
    Effect.gen(function*() {
      const { pool } = yield* memoryPool({ size: 1, maxOverflow: 0, policies: [Policy.maxUses(1)] })
      const gate = yield* Deferred.make<void>()
      const holder = yield* Effect.fork(Pool.use(pool, (c) => Effect.as(Deferred.await(gate), c.id)))
      yield* settle
      const waiter = yield* Effect.fork(lend(pool))
      yield* settle
      assert.strictEqual((yield* Pool.stats(pool)).waiting, 1)
      yield* Deferred.succeed(gate, undefined)
      assert.strictEqual(yield* Fiber.join(holder), 1)
      assert.strictEqual(yield* Fiber.join(waiter), 2)
      assert.strictEqual((yield* Pool.stats(pool)).closedBy.maxUses, 2)
    }))

  it.scoped("counts each connection's uses on its own", () =>
    Effect.gen(function*() {
      const { pool } = yield* memoryPool({ size: 2, policies: [Policy.maxUses(2)] })
      // two connections lent at once, then each once more
      const gate = yield* Deferred.make<void>()
      const held = yield* Effect.forEach([1, 2], () =>
        Effect.fork(Pool.use(pool, (c) => Effect.as(Deferred.await(gate), c.id))))
      yield* settle
      yield* Deferred.succeed(gate, undefined)
      assert.sameMembers(yield* Effect.forEach(held, Fiber.join), [1, 2])
      assert.sameMembers(
        yield* Effect.forEach([1, 2], () =>
          lend(pool)),
        [1, 2]
      )
      yield* settle
      assert.deepStrictEqual((yield* Pool.stats(pool)).closedBy.maxUses, 2)
    }))
})
