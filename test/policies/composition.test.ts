/**
 * Policies compose by being listed: the order rules of each moment (docs/policies.md, "Composition"), and the
 * defaults a pool gets when it names none.
 */
import { assert, describe, it } from "@effect/vitest"
import { Chunk, Deferred, type Duration, Effect, Fiber, Schedule, Stream, TestClock } from "effect"
import type { ConnectionRecord } from "../../src/ConnectionRecord.js"
import * as Memory from "../../src/Driver/Memory.js"
import type { MemoryConnection, MemoryError } from "../../src/Driver/Memory.js"
import * as Policy from "../../src/Policy.js"
import * as Pool from "../../src/Pool.js"
import { ConnectionRejected } from "../../src/PoolError.js"
import type { PoolEvent } from "../../src/PoolEvent.js"
import { memoryPool, settle, uniqueName } from "../utils/pool.js"

/** The liveness round trips a connection has had (the Memory driver's ping is `SELECT 1`). */
const pings = (connection: MemoryConnection): number => connection.statements.filter((s) => s === "SELECT 1").length

describe("Policy composition", () => {
  it.scoped("two resets run in the order listed, once each per return, each heard as a Reset", () =>
    Effect.gen(function*() {
      const { db, pool } = yield* memoryPool({
        policies: [
          Policy.resetOnReturn<MemoryConnection, MemoryError>((context) =>
            Effect.asVoid(context.driver.query(context.connection, "RESET ALL"))
          ),
          Policy.resetOnReturn("rollback")
        ]
      })
      const heard = yield* Effect.fork(Stream.runCollect(Stream.take(Pool.events(pool), 6)))
      yield* settle
      yield* Pool.use(pool, (c) => db.driver.query(c, "BEGIN"))
      const events = Chunk.toReadonlyArray(yield* Fiber.join(heard)) as ReadonlyArray<PoolEvent<MemoryConnection>>
      const [connection] = yield* db.connections
      // the custom reset, then the rollback
      assert.deepStrictEqual(connection!.statements, ["BEGIN", "RESET ALL", "ROLLBACK"])
      assert.deepStrictEqual(
        events.map((e) => e._tag === "Reset" ? `Reset ${e.method}` : e._tag),
        ["FirstConnect", "Connect", "Checkout", "Reset custom", "Reset rollback", "Checkin"]
      )
      assert.strictEqual((yield* db.stats).inTransaction, 0)
    }))

  it.scoped("a failing first reset stops the second and closes the connection", () =>
    Effect.gen(function*() {
      let second = 0
      const { db, pool } = yield* memoryPool({
        policies: [
          Policy.resetOnReturn<MemoryConnection, MemoryError>(() => Effect.fail("dirty")),
          Policy.resetOnReturn<MemoryConnection, MemoryError>(() =>
            Effect.sync(() => {
              second++
            })
          )
        ]
      })
      const first = yield* Pool.use(pool, (c) => Effect.succeed(c.id))
      yield* settle
      const next = yield* Pool.use(pool, (c) => Effect.succeed(c.id))
      assert.strictEqual(second, 0)
      assert.notStrictEqual(first, next)
      assert.strictEqual((yield* Pool.stats(pool)).closedBy.resetFailed, 2)
      assert.strictEqual((yield* db.stats).closedTwice, 0)
    }))

  // `lifetime` checks at checkout only (recycle would also retire the idle connection in the background, before
  // any checkout could show the order)
  it.scoped("pre-ping after a lifetime: a connection past its lifetime is closed without a ping", () =>
    Effect.gen(function*() {
      const { pool } = yield* memoryPool({
        policies: [Policy.lifetime(Schedule.recurs(1)), Policy.prePing({ skipWithin: 0 })]
      })
      const first = yield* Pool.use(pool, (c) => Effect.succeed(c))
      assert.strictEqual(pings(first), 1)
      const second = yield* Pool.use(pool, (c) => Effect.succeed(c))
      assert.notStrictEqual(first.id, second.id)
      // the expired one got no second ping: the lifetime rejected it first; the fresh one was pinged
      assert.strictEqual(pings(first), 1)
      assert.strictEqual(pings(second), 1)
      assert.strictEqual((yield* Pool.stats(pool)).closedBy.expired, 1)
    }))

  it.scoped("a lifetime after pre-ping pings the expired connection first: order is the order listed", () =>
    Effect.gen(function*() {
      const { pool } = yield* memoryPool({
        policies: [Policy.prePing({ skipWithin: 0 }), Policy.lifetime(Schedule.recurs(1))]
      })
      const first = yield* Pool.use(pool, (c) => Effect.succeed(c))
      yield* Pool.use(pool, () => Effect.void)
      assert.strictEqual(pings(first), 2)
      assert.strictEqual((yield* Pool.stats(pool)).closedBy.expired, 1)
    }))

  it.scoped("a leak detector with a keepalive: the held connection is reported once and never pinged", () =>
    Effect.gen(function*() {
      const keepalive = Policy.keepalive<MemoryConnection, MemoryError>("100 millis")
      const { db, pool } = yield* memoryPool({
        size: 3,
        min: 3,
        policies: [Policy.leakDetection("1 second"), keepalive]
      })
      const leaks: Array<string> = []
      yield* Pool.listen(pool, {
        leak: (event) =>
          Effect.sync(() => {
            leaks.push(`leak #${event.record.id}`)
          }),
        unleaked: (event) =>
          Effect.sync(() => {
            leaks.push(`unleaked #${event.record.id}`)
          })
      })
      yield* settle
      const heldId = yield* Deferred.make<number>()
      const holder = yield* Effect.fork(
        Pool.use(pool, (c) => Effect.zipRight(Deferred.succeed(heldId, c.id), Effect.sleep("3 seconds")))
      )
      yield* settle
      for (let i = 0; i < 25; i++) {
        yield* TestClock.adjust("100 millis")
        yield* settle
      }
      const id = yield* Deferred.await(heldId)
      const connections = yield* db.connections
      const heldConnection = connections.find((c) => c.id === id)!
      const idle = connections.filter((c) => c.id !== id)
      // the keepalive pinged the idle ones on its schedule, never the one lent
      assert.strictEqual(pings(heldConnection), 0)
      for (const c of idle) assert.isAtLeast(pings(c), 20)
      assert.deepStrictEqual(leaks, [`leak #${id}`])
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(holder)
      yield* settle
      assert.deepStrictEqual(leaks, [`leak #${id}`, `unleaked #${id}`])
      const stats = yield* Pool.stats(pool)
      assert.deepStrictEqual([stats.open, stats.inUse, stats.closed], [3, 0, 0])
    }))
})

/** Five idle connections (of six), and a checkout check refusing with the reason `reason` answers, if any. */
const rejecting = (reason: (record: ConnectionRecord) => string | undefined) =>
  memoryPool({
    size: 6,
    min: 5,
    maxCheckoutAttempts: 3,
    policies: [
      Policy.make<MemoryConnection, MemoryError>({
        name: "rejecting",
        onCheckout: ({ record }) => {
          const refused = reason(record)
          return refused === undefined ? Effect.void : Effect.fail(new ConnectionRejected({ reason: refused }))
        }
      })
    ]
  })

describe("retirements", () => {
  it.scoped("idle connections past their lifetime do not use up a checkout's attempts", () =>
    Effect.gen(function*() {
      // five idle connections all past their lifetime at once (the machine slept through the background's wake-up)
      const { pool } = yield* rejecting((record) => record.id <= 5 ? "expired" : undefined)
      yield* settle
      const id = yield* Pool.use(pool, (c) => Effect.succeed(c.id))
      assert.isAbove(id, 5)
      assert.strictEqual((yield* Pool.stats(pool)).closedBy.expired, 5)
    }))

  it.scoped("other rejections still count: maxCheckoutAttempts ends the checkout", () =>
    Effect.gen(function*() {
      const { pool } = yield* rejecting(() => "never")
      yield* settle
      const error = yield* Effect.flip(Pool.use(pool, () => Effect.void))
      assert.strictEqual(error._tag, "PoolCheckoutRejectedError")
      assert.strictEqual((yield* Pool.stats(pool)).closedBy.rejected, 3)
    }))
})

describe("bad policy arguments", () => {
  it.scoped("fail the pool's construction with one PoolConfigError listing every problem, nothing clamped", () =>
    Effect.gen(function*() {
      const db = yield* Memory.make()
      const error = yield* Effect.flip(Pool.make({
        driver: db.driver,
        name: uniqueName("bad-policies"),
        size: -1,
        policies: [
          Policy.recycle(-5, { spread: 2 }),
          Policy.maxUses(0),
          // a JavaScript caller's string, unchecked by the compiler
          Policy.idleTimeout("soon" as Duration.DurationInput),
          Policy.keepalive(0, { timeout: 0 }),
          Policy.circuitBreaker({ failures: 1.5 }),
          Policy.leakDetection(0)
        ]
      }))
      assert.strictEqual(error._tag, "PoolConfigError")
      const problems = error.problems.join("\n")
      for (
        const expected of [
          "size: Expected",
          "policies[0] recycle: maxAge: Expected a duration of 0 or more, got -5",
          "policies[0] recycle: spread: Expected a number from 0 to 0.5, got 2",
          "policies[1] maxUses: maxUses: Expected an integer of 1 or more (or Infinity), got 0",
          "policies[2] idleTimeout: timeout: Expected a duration",
          "policies[3] keepalive: schedule: Expected a Schedule or a duration of more than 0, got 0",
          "policies[3] keepalive: timeout: Expected a duration of more than 0, got 0",
          "policies[4] circuitBreaker: failures: Expected an integer of 1 or more, got 1.5",
          "policies[5] leakDetection: threshold: Expected a duration of more than 0, got 0"
        ]
      ) assert.include(problems, expected)
    }))
})

describe("duration arguments in their JSON forms", () => {
  it.scoped("\"Infinity\" and \"1500\" build the policies they check as valid, without throwing", () =>
    Effect.gen(function*() {
      const db = yield* Memory.make()
      const policies = [
        Policy.recycle("Infinity" as never),
        Policy.recycle("1500" as never),
        Policy.idleTimeout("Infinity" as never),
        Policy.prePing({ timeout: "1500" as never }),
        Policy.resetOnReturn("rollback", { timeout: "1500" as never }),
        Policy.keepalive("1500" as never, { timeout: "1500" as never }),
        Policy.leakDetection("1500" as never)
      ]
      const pool = yield* Pool.make({ driver: db.driver, policies: policies as never })
      assert.strictEqual((yield* Pool.use(pool, (c) => db.driver.query(c, "SELECT 1"))).length, 1)
    }))
})

describe("Policy.defaults", () => {
  it.scoped("a pool with a driver and no policies gets recycle, pre-ping and a rollback on return", () =>
    Effect.gen(function*() {
      const db = yield* Memory.make()
      const pool = yield* Pool.make({ driver: db.driver, name: uniqueName("defaults"), size: 2 })
      // reset on return: the borrower's open transaction is rolled back
      yield* Pool.use(pool, (c) => Effect.zipRight(db.driver.query(c, "BEGIN"), db.driver.query(c, "INSERT 1")))
      assert.strictEqual((yield* db.stats).inTransaction, 0)
      assert.deepStrictEqual(yield* db.committed, [])
      // pre-ping, outside its 500 ms window: a connection that died while idle is never lent
      const [victim] = yield* db.connections
      yield* TestClock.adjust("1 second")
      yield* db.kill(victim!, { notify: false })
      const served = yield* Pool.use(pool, (c) => Effect.succeed(c.id))
      assert.notStrictEqual(served, victim!.id)
      // recycle: 30 minutes, less up to 2.5 %
      yield* TestClock.adjust("31 minutes")
      yield* settle
      const later = yield* Pool.use(pool, (c) => Effect.succeed(c.id))
      assert.notStrictEqual(later, served)
      assert.strictEqual((yield* Pool.stats(pool)).closedBy.expired, 1)
    }))

  it.scoped("`policies: []` opts out of every default", () =>
    Effect.gen(function*() {
      const db = yield* Memory.make()
      const pool = yield* Pool.make({ driver: db.driver, name: uniqueName("no-defaults"), policies: [] })
      yield* Pool.use(pool, (c) => db.driver.query(c, "BEGIN"))
      assert.strictEqual((yield* db.stats).inTransaction, 1)
      yield* TestClock.adjust("31 minutes")
      const [connection] = yield* db.connections
      assert.strictEqual(yield* Pool.use(pool, (c) => Effect.succeed(c.id)), connection!.id)
    }))

  it.scoped("a pool from a bare acquire has no default policies", () =>
    Effect.gen(function*() {
      let opened = 0
      const pool = yield* Pool.make({
        acquire: Effect.sync(() => ({ n: ++opened })),
        name: uniqueName("acquire-defaults")
      })
      yield* Pool.use(pool, () => Effect.void)
      yield* TestClock.adjust("31 minutes")
      yield* Pool.use(pool, () => Effect.void)
      assert.strictEqual(opened, 1)
    }))

  it("lists recycle, prePing and resetOnReturn(rollback), in that order", () => {
    assert.deepStrictEqual(Policy.defaults().map((p) => p.name), ["recycle", "prePing", "resetOnReturn(rollback)"])
  })
})
