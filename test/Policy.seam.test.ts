/**
 * The seam the policies, the seed systems' facades and the SqlClient stand on: policies as recipes instantiated per
 * pool with commands, the connect seam with its backoff schedule, admission, holders and reclaim, preparation off
 * the borrower's path, strict returns, and the record's return time.
 */
import { assert, describe, it } from "@effect/vitest"
import { Cause, Deferred, Effect, Exit, Fiber, Option, Ref, Schedule, Scope, TestClock } from "effect"
import type { MemoryConnection, MemoryError } from "../src/Driver/Memory.js"
import * as Policy from "../src/Policy.js"
import * as Pool from "../src/Pool.js"
import { PoolExhaustedError } from "../src/PoolError.js"
import { memoryPool, settle, uniqueName } from "./utils/pool.js"

type P<Commands = void> = Policy.Policy<MemoryConnection, MemoryError, Commands>

/** A stateful policy counting this pool's checkouts, with a command to read the count. */
const counting = (): P<{ readonly count: Effect.Effect<number> }> =>
  Policy.stateful("counting", () =>
    Effect.map(Ref.make(0), (ref) => ({
      onCheckout: () => Ref.update(ref, (n) => n + 1),
      commands: { count: Ref.get(ref) }
    })))

describe("Policy seam", () => {
  it.scoped("instantiates a policy once per pool: one value in two pools shares no state", () =>
    Effect.gen(function*() {
      const policy = counting()
      const a = yield* memoryPool({ policies: [policy] })
      const b = yield* memoryPool({ policies: [policy] })
      yield* Pool.use(a.pool, () => Effect.void)
      yield* Pool.use(a.pool, () => Effect.void)
      yield* Pool.use(b.pool, () => Effect.void)
      assert.strictEqual(yield* (yield* Pool.policy(a.pool, policy)).count, 2)
      assert.strictEqual(yield* (yield* Pool.policy(b.pool, policy)).count, 1)
    }))

  it.scoped("refuses the commands of a policy the pool was not made with", () =>
    Effect.gen(function*() {
      const { pool } = yield* memoryPool()
      const error = yield* Effect.flip(Pool.policy(pool, counting()))
      assert.strictEqual(error.reason, "NotInstalled")
    }))

  it.scoped("passes every connect through the policies' connect hooks, first listed innermost", () =>
    Effect.gen(function*() {
      const order: Array<string> = []
      const wrap = (name: string): P =>
        Policy.make({
          name,
          connect: (open) =>
            Effect.tap(Effect.zipRight(Effect.sync(() => order.push(`${name} before`)), open), () =>
              Effect.sync(() => order.push(`${name} after`)))
        })
      const { pool } = yield* memoryPool({ min: 1, policies: [wrap("inner"), wrap("outer")] })
      yield* settle
      yield* Pool.use(pool, () => Effect.void)
      assert.deepStrictEqual(order, ["outer before", "inner before", "inner after", "outer after"])
    }))

  it.scoped("waits on the policy's connectBackoff schedule after a failed connect, one probe at a time", () =>
    Effect.gen(function*() {
      const { db, pool } = yield* memoryPool({
        size: 3,
        timeout: "10 seconds",
        policies: [Policy.make({ name: "backoff", connectBackoff: Schedule.spaced("1 second") })]
      })
      yield* db.down
      const waiters = yield* Effect.forEach(
        Array.from({ length: 5 }),
        () => Effect.fork(Pool.use(pool, () => Effect.void))
      )
      yield* settle
      const first = (yield* db.stats).connectAttempts
      assert.isTrue((yield* Pool.stats(pool)).backingOff)
      yield* TestClock.adjust("999 millis")
      yield* settle
      assert.strictEqual((yield* db.stats).connectAttempts, first, "nothing before the schedule's delay")
      yield* TestClock.adjust("1 millis")
      yield* settle
      assert.strictEqual((yield* db.stats).connectAttempts, first + 1, "one probe")
      yield* db.up
      yield* TestClock.adjust("1 second")
      for (const waiter of waiters) yield* Fiber.await(waiter)
      const stats = yield* Pool.stats(pool)
      assert.isFalse(stats.backingOff, "a success ends the backoff")
      assert.isAtLeast(stats.open, 1)
    }))

  it.scoped("admission fails a checkout before it parks, and never refuses one an idle connection serves", () =>
    Effect.gen(function*() {
      const open = yield* Ref.make(false)
      let refusal: PoolExhaustedError | undefined
      const breaker: P = Policy.make({
        name: "breaker",
        admit: () => Effect.runSync(Ref.get(open)) ? refusal : undefined
      })
      const { pool } = yield* memoryPool({ size: 1, maxOverflow: 0, min: 1, policies: [breaker] })
      refusal = new PoolExhaustedError({ pool: pool.name, maxWaiters: 0, stats: yield* Pool.stats(pool) })
      yield* settle
      yield* Ref.set(open, true)
      // an idle connection: served without asking
      yield* Pool.use(pool, () => Effect.void)
      // none idle: refused at once
      const release = yield* Deferred.make<void>()
      const holder = yield* Effect.fork(Pool.use(pool, () => Deferred.await(release)))
      yield* settle
      const refused = yield* Effect.flip(Pool.use(pool, () => Effect.void))
      assert.strictEqual(refused._tag, "PoolExhaustedError")
      assert.strictEqual((yield* Pool.stats(pool)).waiting, 0)
      yield* Deferred.succeed(release, undefined)
      yield* Fiber.join(holder)
    }))

  it.scoped("knows who holds each lent connection and since when, and reclaims one by interrupting its holder", () =>
    Effect.gen(function*() {
      let handle: Policy.PoolHandle<MemoryConnection, MemoryError> | undefined
      const spy: P = Policy.stateful("spy", (pool) =>
        Effect.sync(() => {
          handle = pool
          return { traceCheckouts: "stack" as const }
        }))
      const { pool } = yield* memoryPool({ size: 1, maxOverflow: 0, policies: [spy] })
      const started = yield* Deferred.make<void>()
      const holder = yield* Effect.fork(
        Pool.use(pool, () => Effect.zipRight(Deferred.succeed(started, undefined), Effect.never))
      )
      yield* Deferred.await(started)
      yield* TestClock.adjust("5 seconds")
      const holders = yield* handle!.holders
      assert.strictEqual(holders.length, 1)
      assert.strictEqual(holders[0]!.fiber?.id().toString(), holder.id().toString())
      assert.strictEqual(holders[0]!.since, 0)
      assert.include(holders[0]!.trace ?? "", "checked out here")
      assert.isTrue(yield* handle!.reclaim(holders[0]!.record))
      const exit = yield* Fiber.await(holder)
      assert.isTrue(Exit.isInterrupted(exit))
      yield* settle
      const stats = yield* Pool.stats(pool)
      assert.deepStrictEqual([stats.inUse, stats.closedBy.reclaimed], [0, 1])
      // the pool serves on
      yield* Pool.use(pool, () => Effect.void)
    }))

  it.scoped("prepares a returned connection off the borrower's path, and lends it only once prepared", () =>
    Effect.gen(function*() {
      const gate = yield* Deferred.make<void>()
      const prepared: Array<number> = []
      const preparing: P = Policy.make({
        name: "prepare",
        prepare: (context) => Effect.zipRight(Deferred.await(gate), Effect.sync(() => prepared.push(context.record.id)))
      })
      const { pool } = yield* memoryPool({ size: 1, maxOverflow: 0, policies: [preparing] })
      // the borrower's return does not wait for the preparation
      yield* Pool.use(pool, () => Effect.void)
      const stats = yield* Pool.stats(pool)
      assert.deepStrictEqual([stats.idle, stats.maintained, stats.inUse], [0, 1, 0])
      const next = yield* Effect.fork(Pool.use(pool, (connection) => Effect.succeed(connection.id)))
      yield* settle
      assert.isTrue(Option.isNone(yield* Fiber.poll(next)), "not lent while preparing")
      yield* Deferred.succeed(gate, undefined)
      assert.strictEqual(yield* Fiber.join(next), 1)
      assert.strictEqual(prepared[0], 1, "prepared before it was lent again")
    }))

  it.scoped("a strict return to a full pool fails and leaves the caller holding the lease", () =>
    Effect.gen(function*() {
      const { pool } = yield* memoryPool({ size: 1, maxOverflow: 1 })
      const a = yield* Pool.checkout(pool)
      const b = yield* Pool.checkout(pool)
      yield* Pool.checkin(pool, a, { whenFull: "fail" })
      const before = yield* Pool.stats(pool)
      const error = yield* Effect.flip(Pool.checkin(pool, b, { whenFull: "fail" }))
      assert.strictEqual(error.reason, "Full")
      const after = yield* Pool.stats(pool)
      assert.deepStrictEqual([after.inUse, after.idle, after.open], [before.inUse, before.idle, before.open])
      // the lease is still good: a plain return closes it as overflow
      yield* Pool.checkin(pool, b)
      assert.strictEqual((yield* Pool.stats(pool)).closedBy.overflow, 1)
    }))

  it.scoped("records when a connection came back, beside when it was lent", () =>
    Effect.gen(function*() {
      const { pool } = yield* memoryPool()
      const lease = yield* Pool.checkout(pool)
      yield* TestClock.adjust("3 seconds")
      yield* Pool.checkin(pool, lease)
      const record = yield* Pool.record(pool, lease.connection)
      assert.deepStrictEqual([record.lastUsedAt, record.lastReturnedAt], [0, 3000])
    }))

  it.scoped("a background pass cut short by shutdown closes the connection it held", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const entered = yield* Deferred.make<void>()
      const go = yield* Deferred.make<void>()
      const hanging: P = Policy.make({
        name: "hanging keepalive",
        background: (pool) =>
          Effect.zipRight(
            Deferred.await(go),
            pool.forEachIdle(() => Effect.zipRight(Deferred.succeed(entered, undefined), Effect.never))
          )
      })
      const { db, pool } = yield* memoryPool({ min: 1, policies: [hanging], name: uniqueName("pass") }).pipe(
        Scope.extend(scope)
      )
      yield* Pool.use(pool, () => Effect.void)
      yield* Deferred.succeed(go, undefined)
      yield* Deferred.await(entered)
      yield* Scope.close(scope, Exit.void)
      const stats = yield* Pool.stats(pool)
      assert.strictEqual(stats.opened, stats.closed)
      assert.strictEqual((yield* db.stats).open, 0)
      assert.isTrue(Cause.isEmpty(Cause.empty))
    }))
})
