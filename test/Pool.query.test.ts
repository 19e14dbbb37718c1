/**
 * `Pool.query`'s hand-off, on a driver whose statements answer when the test says: a waiting statement is sent by
 * the fiber that returns the connection, in the step that returns it, and its caller wakes once, with the result.
 * Without `Driver.start`, or when the connection must be checked first, `Pool.query` is `Pool.use` + `query`.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Driver from "../src/Driver.js"
import * as Pool from "../src/Pool.js"

interface Sent {
  readonly sql: string
  /** The fiber that sent it. */
  readonly by: string | undefined
  readonly done: (exit: Exit.Exit<ReadonlyArray<Driver.Row>, string>) => void
  abandoned: boolean
}

const fiberId = () => Option.map(Fiber.getCurrentFiber(), (f) => String(f.id().id)).pipe(Option.getOrUndefined)

/** A driver whose `start` records each statement; the test answers them. `query` answers at once. */
const scripted = (withStart: boolean) => {
  const sent: Array<Sent> = []
  let next = 0
  const driver = Driver.make<{ readonly id: number }, string>({
    connect: () => Effect.succeed({ id: next++ }),
    query: (_, sql) => Effect.succeed([{ sql, via: "query" }]),
    ...(withStart ?
      {
        start: (_, sql, __, done) => {
          const entry: Sent = { sql, by: fiberId(), done, abandoned: false }
          sent.push(entry)
          return () => {
            entry.abandoned = true
          }
        }
      } :
      {})
  })
  return { driver, sent }
}

describe("Pool.query", () => {
  it.scopedLive("a waiting statement is sent by the fiber that returns the connection, and answers its caller", () =>
    Effect.gen(function*() {
      const { driver, sent } = scripted(true)
      const pool = yield* Pool.make({ driver, size: 1, maxOverflow: 0, policies: [] })
      let returner: string | undefined
      const holder = yield* Effect.fork(Pool.use(pool, () =>
        Effect.sync(() => {
          returner = fiberId()
        }).pipe(Effect.delay("10 millis"))))
      yield* Effect.yieldNow()
      const waiting = yield* Effect.fork(Pool.query(pool, "SELECT 1"))
      yield* Fiber.join(holder)
      assert.strictEqual(sent.length, 1, "sent at hand-off, before its caller ran again")
      assert.strictEqual(sent[0]!.by, returner, "by the fiber that returned the connection")
      sent[0]!.done(Exit.succeed([{ n: 1 }]))
      assert.deepStrictEqual(yield* Fiber.join(waiting), [{ n: 1 }])
      assert.strictEqual((yield* Pool.stats(pool)).inUse, 0, "returned once answered")
    }))

  it.scopedLive("an idle connection runs the driver's query in the caller's fiber", () =>
    Effect.gen(function*() {
      const { driver, sent } = scripted(true)
      const pool = yield* Pool.make({ driver, size: 1, policies: [] })
      assert.deepStrictEqual(yield* Pool.query(pool, "SELECT 2"), [{ sql: "SELECT 2", via: "query" }])
      assert.strictEqual(sent.length, 0)
    }))

  it.scopedLive("a statement whose caller is interrupted in flight is abandoned, and its connection returned", () =>
    Effect.gen(function*() {
      const { driver, sent } = scripted(true)
      const pool = yield* Pool.make({ driver, size: 1, maxOverflow: 0, policies: [] })
      const holder = yield* Effect.fork(Pool.use(pool, () => Effect.sleep("10 millis")))
      yield* Effect.yieldNow()
      const waiting = yield* Effect.fork(Pool.query(pool, "SELECT pg_sleep(30)"))
      yield* Fiber.join(holder)
      assert.strictEqual(sent.length, 1)
      yield* Fiber.interrupt(waiting)
      assert.isTrue(sent[0]!.abandoned, "the driver was told")
      assert.strictEqual((yield* Pool.stats(pool)).inUse, 0)
      // an answer after the interruption changes nothing
      sent[0]!.done(Exit.succeed([]))
      assert.deepStrictEqual(yield* Pool.query(pool, "SELECT 3"), [{ sql: "SELECT 3", via: "query" }])
    }))

  it.scopedLive("a failure started at hand-off reaches its caller typed", () =>
    Effect.gen(function*() {
      const { driver, sent } = scripted(true)
      const pool = yield* Pool.make({ driver, size: 1, maxOverflow: 0, policies: [] })
      const holder = yield* Effect.fork(Pool.use(pool, () => Effect.sleep("10 millis")))
      yield* Effect.yieldNow()
      const waiting = yield* Effect.fork(Effect.flip(Pool.query(pool, "SELECT nope")))
      yield* Fiber.join(holder)
      sent[0]!.done(Exit.fail("no such column"))
      assert.strictEqual(yield* Fiber.join(waiting), "no such column")
    }))

  it.scopedLive("a connection that must be checked first is checked, then the caller runs the query itself", () =>
    Effect.gen(function*() {
      const { driver, sent } = scripted(true)
      const pool = yield* Pool.make({ driver, size: 1, maxOverflow: 0, policies: [] })
      let checked = 0
      yield* Pool.listen(pool, { checkout: () => Effect.sync(() => void checked++) })
      const holder = yield* Effect.fork(Pool.use(pool, () => Effect.sleep("10 millis")))
      yield* Effect.yieldNow()
      const rows = yield* Pool.query(pool, "SELECT 4")
      yield* Fiber.join(holder)
      assert.deepStrictEqual(rows, [{ sql: "SELECT 4", via: "query" }])
      assert.strictEqual(sent.length, 0, "not started at hand-off")
      assert.strictEqual(checked, 2)
    }))

  it.scopedLive("a driver whose start throws: the caller dies with that defect, the returning fiber does not", () =>
    Effect.gen(function*() {
      let n = 0
      const driver = Driver.make<{ readonly id: number }, string>({
        connect: () => Effect.succeed({ id: n++ }),
        query: () => Effect.succeed([]),
        start: () => {
          throw new Error("driver bug")
        }
      })
      const pool = yield* Pool.make({ driver, size: 1, maxOverflow: 0, policies: [] })
      const holder = yield* Effect.fork(Pool.use(pool, () => Effect.sleep("10 millis")))
      yield* Effect.yieldNow()
      const waiting = yield* Effect.fork(Pool.query(pool, "SELECT 1"))
      assert.isTrue(Exit.isSuccess(yield* Fiber.await(holder)), "the returning fiber ends well")
      const exit = yield* Fiber.await(waiting)
      assert.isTrue(Exit.isFailure(exit) && Cause.isDie(exit.cause), "the caller gets the defect")
      const stats = yield* Pool.stats(pool)
      assert.deepStrictEqual([stats.inUse, stats.waiting], [0, 0], "the connection came back")
    }))

  it.scopedLive("a driver without start: Pool.query is Pool.use with the driver's query", () =>
    Effect.gen(function*() {
      const { driver } = scripted(false)
      const pool = yield* Pool.make({ driver, size: 1, maxOverflow: 0, policies: [] })
      const results = yield* Effect.forEach([1, 2, 3], (i) => Pool.query(pool, `SELECT ${i}`), {
        concurrency: "unbounded"
      })
      assert.deepStrictEqual(results.map((rows) => rows[0]!["sql"]), ["SELECT 1", "SELECT 2", "SELECT 3"])
    }))
})
