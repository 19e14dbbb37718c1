/**
 * The setup policies: `onConnect` (Twisted's `cp_openfun`, HikariCP's `connectionInitSql`), `firstConnect`
 * (SQLAlchemy's `first_connect`: once per pool, however many connects race) and `livenessQuery` (Twisted's
 * `cp_good_sql`: what every ping of the pool runs).
 */
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber, TestClock } from "effect"
import type { MemoryConnection } from "../../src/Driver/Memory.js"
import * as Memory from "../../src/Driver/Memory.js"
import { MemoryError } from "../../src/Driver/Memory.js"
import * as Policy from "../../src/Policy.js"
import * as Pool from "../../src/Pool.js"
import { ConnectionRejected, PoolCheckoutRejectedError } from "../../src/PoolError.js"
import { memoryPool, settle, uniqueName } from "../utils/pool.js"

const setupFailed = new MemoryError({ reason: "QueryFailed", message: "setup failed" })

/** What identifies an error here (the pool's span adds to a failure on its way, so it is not the same object). */
const describeError = (error: unknown) => {
  const { _tag, message, reason } = error as MemoryError
  return { _tag, reason, message }
}

const count = (connection: MemoryConnection, sql: string): number =>
  connection.statements.filter((statement) => statement === sql).length

describe("Policy.onConnect", () => {
  it.scoped("runs on every new connection before it is lent", () =>
    Effect.gen(function*() {
      const db = yield* Memory.make()
      const pool = yield* Pool.make({
        driver: db.driver,
        name: uniqueName("on-connect"),
        size: 2,
        policies: [
          Policy.onConnect<MemoryConnection, MemoryError>((c) =>
            Effect.asVoid(db.driver.query(c, "SET timezone = 'UTC'"))
          )
        ]
      })
      const [a, b] = yield* Effect.all([
        Pool.use(pool, (c) => Effect.as(Effect.sleep("1 second"), c)),
        Pool.use(pool, (c) => Effect.as(Effect.sleep("1 second"), c))
      ], { concurrency: 2 }).pipe(
        Effect.fork,
        Effect.tap(() => TestClock.adjust("1 second")),
        Effect.flatMap(Fiber.join)
      )
      assert.notStrictEqual(a.id, b.id)
      assert.deepStrictEqual([a.settings.get("timezone"), b.settings.get("timezone")], ["UTC", "UTC"])
      assert.deepStrictEqual([a.statements[0], b.statements[0]], ["SET timezone = 'UTC'", "SET timezone = 'UTC'"])
    }))

  it.scoped("a failure is a failed connect: the waiting checkout gets the error, the connection is closed", () =>
    Effect.gen(function*() {
      let calls = 0
      const { db, pool } = yield* memoryPool({
        size: 1,
        policies: [Policy.onConnect(() => ++calls === 1 ? Effect.fail(setupFailed) : Effect.void)]
      })
      const error = yield* Effect.flip(Pool.use(pool, Effect.succeed))
      assert.deepStrictEqual(describeError(error), describeError(setupFailed))
      const stats = yield* Pool.stats(pool)
      assert.deepStrictEqual([stats.connectFailures, stats.open, stats.opened], [1, 0, 0])
      assert.deepStrictEqual([(yield* db.stats).opened, (yield* db.stats).closed], [1, 1])
      // the next connect (after the backoff's delay) runs the setup again, and serves
      const next = yield* Effect.fork(Pool.use(pool, Effect.succeed))
      yield* TestClock.adjust("1 second")
      const connection = yield* Fiber.join(next)
      assert.strictEqual(connection.id, 2)
      assert.strictEqual(calls, 2)
    }))

  it.scoped("a ConnectionRejected from setup reaches the checkout as PoolCheckoutRejectedError, phase connect", () =>
    Effect.gen(function*() {
      const refusing = Policy.make<MemoryConnection, MemoryError>({
        name: "refusing",
        onConnect: () => Effect.fail(new ConnectionRejected({ reason: "wrong server version" }))
      })
      const { pool } = yield* memoryPool({ size: 1, policies: [refusing] })
      const error = yield* Effect.flip(Pool.use(pool, Effect.succeed))
      assert.instanceOf(error, PoolCheckoutRejectedError)
      assert.strictEqual((error as PoolCheckoutRejectedError).phase, "connect")
    }))
})

describe("Policy.firstConnect", () => {
  it.scoped("runs once per pool, on the first connection, before it is lent", () =>
    Effect.gen(function*() {
      const seen: Array<number> = []
      const { pool } = yield* memoryPool({
        size: 3,
        policies: [Policy.firstConnect((c) => Effect.sync(() => seen.push(c.id)))]
      })
      const first = yield* Pool.use(pool, Effect.succeed)
      assert.deepStrictEqual(seen, [first.id])
      yield* Pool.invalidateAll(pool)
      yield* Effect.all(Array.from({ length: 3 }, () => Pool.use(pool, () => Effect.sleep("1 second"))), {
        concurrency: "unbounded"
      }).pipe(Effect.fork, Effect.tap(() => TestClock.adjust("1 second")), Effect.flatMap(Fiber.join))
      assert.deepStrictEqual(seen, [first.id], "not again for later connections")
    }))

  it.scoped("runs once even when 5 first connects race: the others wait for it and go on", () =>
    Effect.gen(function*() {
      let calls = 0
      const { db, pool } = yield* memoryPool({
        size: 5,
        min: 5,
        policies: [Policy.firstConnect(() => Effect.zipRight(Effect.sync(() => calls++), Effect.sleep("1 second")))]
      })
      yield* settle
      assert.strictEqual((yield* Pool.stats(pool)).opening, 5, "five connects in flight")
      assert.strictEqual(calls, 1, "one runs the setup, the others wait")
      yield* TestClock.adjust("1 second")
      yield* settle
      const stats = yield* Pool.stats(pool)
      assert.deepStrictEqual([calls, stats.idle, stats.opened], [1, 5, 5])
      assert.strictEqual((yield* db.stats).open, 5)
    }))

  it.scoped("a failure is a failed connect, and the next connection tries again", () =>
    Effect.gen(function*() {
      let calls = 0
      const { pool } = yield* memoryPool({
        size: 3,
        policies: [
          Policy.firstConnect(() =>
            Effect.zipRight(Effect.sleep("1 second"), ++calls === 1 ? Effect.fail(setupFailed) : Effect.void)
          )
        ]
      })
      const gate = yield* Deferred.make<void>()
      const borrowers = yield* Effect.forEach(
        [1, 2, 3],
        () => Effect.fork(Pool.use(pool, (c) => Effect.as(Deferred.await(gate), c.id))),
        { concurrency: "unbounded" }
      )
      yield* settle
      yield* TestClock.adjust("1 second")
      yield* settle
      assert.strictEqual(calls, 2, "the first setup failed; a waiting connect ran it next")
      yield* TestClock.adjust("1 second")
      yield* settle
      assert.strictEqual(calls, 2, "it succeeded: no more")
      yield* Deferred.succeed(gate, undefined)
      const exits = yield* Effect.forEach(borrowers, Fiber.await)
      assert.deepStrictEqual(exits.map(Exit.isSuccess).sort(), [false, true, true])
      const failure = exits.find(Exit.isFailure)!
      assert.deepStrictEqual(describeError(yield* Effect.flip(failure)), describeError(setupFailed))
    }))
})

describe("Policy.livenessQuery", () => {
  it.scoped("is what prePing and keepalive run, instead of the driver's ping", () =>
    Effect.gen(function*() {
      const keepalive = Policy.keepalive<MemoryConnection, MemoryError>("1 hour")
      const { db, pool } = yield* memoryPool({
        size: 1,
        min: 1,
        policies: [Policy.livenessQuery("SELECT now()"), Policy.prePing(), keepalive]
      })
      yield* settle
      const [connection] = yield* db.connections
      yield* TestClock.adjust("1 second")
      yield* Pool.use(pool, () => Effect.void)
      assert.deepStrictEqual([count(connection!, "SELECT now()"), count(connection!, "SELECT 1")], [1, 0], "prePing")
      yield* (yield* Pool.policy(pool, keepalive)).ping
      assert.deepStrictEqual([count(connection!, "SELECT now()"), count(connection!, "SELECT 1")], [2, 0], "keepalive")
    }))

  it.scoped("defaults to SELECT 1, and the last one listed wins", () =>
    Effect.gen(function*() {
      const { db, pool } = yield* memoryPool({
        size: 1,
        min: 1,
        policies: [Policy.livenessQuery("SELECT 2"), Policy.livenessQuery(), Policy.prePing({ skipWithin: 0 })]
      })
      yield* settle
      const [connection] = yield* db.connections
      yield* Pool.use(pool, () => Effect.void)
      assert.deepStrictEqual([count(connection!, "SELECT 1"), count(connection!, "SELECT 2")], [1, 0])
    }))

  it.scoped("its failure is the ping's failure: a disconnect is absorbed by prePing", () =>
    Effect.gen(function*() {
      const { db, pool } = yield* memoryPool({
        size: 1,
        min: 1,
        policies: [Policy.livenessQuery("SELECT now()"), Policy.prePing({ skipWithin: 0 })]
      })
      yield* settle
      const [connection] = yield* db.connections
      yield* db.kill(connection!, { notify: false })
      const lent = yield* Pool.use(pool, Effect.succeed)
      assert.notStrictEqual(lent.id, connection!.id)
      assert.strictEqual((yield* Pool.stats(pool)).generation, 1)
    }))
})
