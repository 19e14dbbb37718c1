/**
 * Reset on return, the return finalizer, on the Memory database under TestClock: what each mode does with a
 * transaction the borrower left open, given how the borrower's work ended; a reset that fails or hangs closes the
 * connection instead of pooling it dirty; one `Reset` event per return.
 */
import { assert, describe, it } from "@effect/vitest"
import { Cause, Effect, Exit, Fiber, TestClock } from "effect"
import type { MemoryConnection, MemoryError } from "../../src/Driver/Memory.js"
import * as Policy from "../../src/Policy.js"
import * as Pool from "../../src/Pool.js"
import { memoryPool, settle } from "../utils/pool.js"

type P = Policy.Policy<MemoryConnection, MemoryError>

const INSERT = "INSERT INTO t VALUES (1)"

/** A pool of one connection with these policies, and the `Reset` events it emits. */
const setup = (policies: ReadonlyArray<P>) =>
  Effect.gen(function*() {
    const made = yield* memoryPool({ size: 1, maxOverflow: 0, policies })
    const resets: Array<string> = []
    yield* Pool.listen(made.pool, { reset: (event) => Effect.sync(() => resets.push(event.method)) })
    return { ...made, resets }
  })

describe("Policy.resetOnReturn", () => {
  it.scoped("rollback ends a transaction the borrower left open, and the next borrower is not in one", () =>
    Effect.gen(function*() {
      const { db, pool, resets } = yield* setup([Policy.resetOnReturn("rollback")])
      yield* Pool.use(pool, (c) => Effect.zipRight(db.driver.query(c, "BEGIN"), db.driver.query(c, INSERT)))
      assert.strictEqual((yield* db.stats).inTransaction, 0)
      assert.deepStrictEqual(yield* db.committed, [])
      assert.isFalse(yield* Pool.use(pool, (c) => Effect.succeed(c.inTransaction)))
      assert.deepStrictEqual(resets, ["rollback", "rollback"])
    }))

  it.scoped("commit commits what a borrower that succeeded left open", () =>
    Effect.gen(function*() {
      const { db, pool, resets } = yield* setup([Policy.resetOnReturn("commit")])
      yield* Pool.use(pool, (c) => Effect.zipRight(db.driver.query(c, "BEGIN"), db.driver.query(c, INSERT)))
      assert.deepStrictEqual(yield* db.committed, [INSERT])
      assert.strictEqual((yield* db.stats).inTransaction, 0)
      assert.deepStrictEqual(resets, ["commit"])
    }))

  it.scoped("commit rolls back what a borrower that failed left open", () =>
    Effect.gen(function*() {
      const { db, pool } = yield* setup([Policy.resetOnReturn("commit")])
      const failed = yield* Effect.flip(
        Pool.use(pool, (c) =>
          Effect.zipRight(
            Effect.zipRight(db.driver.query(c, "BEGIN"), db.driver.query(c, INSERT)),
            Effect.fail("boom" as const)
          ))
      )
      assert.strictEqual(failed, "boom")
      assert.deepStrictEqual(yield* db.committed, [])
      assert.strictEqual((yield* db.stats).inTransaction, 0)
      const [connection] = yield* db.connections
      assert.strictEqual(connection!.statements.at(-1), "ROLLBACK")
    }))

  it.scoped("commit rolls back what a borrower that was interrupted left open", () =>
    Effect.gen(function*() {
      const { db, pool } = yield* setup([Policy.resetOnReturn("commit")])
      const borrower = yield* Effect.fork(
        Pool.use(pool, (c) =>
          Effect.zipRight(Effect.zipRight(db.driver.query(c, "BEGIN"), db.driver.query(c, INSERT)), Effect.never))
      )
      yield* settle
      assert.strictEqual((yield* db.stats).inTransaction, 1)
      yield* Fiber.interrupt(borrower)
      assert.deepStrictEqual(yield* db.committed, [])
      assert.strictEqual((yield* db.stats).inTransaction, 0)
    }))

  it.scoped("none leaves the connection as the borrower left it, and emits no Reset", () =>
    Effect.gen(function*() {
      const { db, pool, resets } = yield* setup([Policy.resetOnReturn("none")])
      yield* Pool.use(pool, (c) => db.driver.query(c, "BEGIN"))
      assert.strictEqual((yield* db.stats).inTransaction, 1)
      assert.isTrue(yield* Pool.use(pool, (c) => Effect.succeed(c.inTransaction)), "the next borrower inherits it")
      assert.deepStrictEqual(resets, [])
    }))

  it.scoped("a custom reset receives how the borrower's work ended", () =>
    Effect.gen(function*() {
      const exits: Array<Exit.Exit<unknown, unknown>> = []
      const { pool, resets } = yield* setup([
        Policy.resetOnReturn<MemoryConnection, MemoryError>((context) => Effect.sync(() => exits.push(context.exit)))
      ])
      yield* Pool.use(pool, () => Effect.succeed(42))
      yield* Effect.either(Pool.use(pool, () => Effect.fail("nope")))
      assert.deepStrictEqual(exits[0], Exit.succeed(42))
      assert.isTrue(Exit.isFailure(exits[1]!))
      assert.deepStrictEqual(Cause.failures((exits[1] as Exit.Failure<unknown, unknown>).cause).pipe(Array.from), [
        "nope"
      ])
      assert.deepStrictEqual(resets, ["custom", "custom"])
    }))

  it.scoped("a reset that fails closes the connection, emits no Reset, and the next borrower gets a clean one", () =>
    Effect.gen(function*() {
      const { db, pool, resets } = yield* setup([Policy.resetOnReturn("rollback")])
      const first = yield* Pool.use(pool, (c) =>
        Effect.zipRight(
          Effect.zipRight(db.driver.query(c, "BEGIN"), db.failNextQueries(1)),
          Effect.succeed(c.id)
        ))
      const stats = yield* Pool.stats(pool)
      assert.deepStrictEqual([stats.closedBy.resetFailed, stats.open], [1, 0])
      assert.deepStrictEqual(resets, [])
      const [id, inTransaction] = yield* Pool.use(pool, (c) => Effect.succeed([c.id, c.inTransaction] as const))
      assert.notStrictEqual(id, first)
      assert.isFalse(inTransaction)
      assert.strictEqual((yield* db.stats).open, 1, "the dirty connection is gone from the server")
    }))

  it.scoped("a reset that hangs is cut by its timeout and closes the connection", () =>
    Effect.gen(function*() {
      const { db, pool, resets } = yield* setup([Policy.resetOnReturn("rollback", { timeout: "2 seconds" })])
      const borrower = yield* Effect.fork(
        Pool.use(pool, (c) =>
          Effect.zipRight(
            db.driver.query(c, "BEGIN"),
            // every statement from here takes a minute: the ROLLBACK of the reset too
            db.setLatency({ query: "1 minute" })
          ))
      )
      yield* settle
      assert.strictEqual((yield* Pool.stats(pool)).inUse, 1, "the return waits for its reset")
      yield* TestClock.adjust("1999 millis")
      assert.strictEqual((yield* Pool.stats(pool)).closedBy.resetFailed, undefined)
      yield* TestClock.adjust("1 millis")
      yield* Fiber.join(borrower)
      const stats = yield* Pool.stats(pool)
      assert.deepStrictEqual([stats.closedBy.resetFailed, stats.open, stats.inUse], [1, 0, 0])
      assert.deepStrictEqual(resets, [])
      yield* db.setLatency({ query: 0 })
      assert.isFalse(yield* Pool.use(pool, (c) => Effect.succeed(c.inTransaction)))
    }))

  it.scoped("a custom reset that never ends is cut by the timeout too", () =>
    Effect.gen(function*() {
      const { pool } = yield* setup([
        Policy.resetOnReturn<MemoryConnection, MemoryError>(() => Effect.never, { timeout: "1 second" })
      ])
      const borrower = yield* Effect.fork(Pool.use(pool, () => Effect.void))
      yield* settle
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(borrower)
      assert.strictEqual((yield* Pool.stats(pool)).closedBy.resetFailed, 1)
    }))

  it.scoped("interrupting a borrower during its reset does not cut the reset short", () =>
    Effect.gen(function*() {
      const { db, pool, resets } = yield* setup([Policy.resetOnReturn("rollback", { timeout: "5 seconds" })])
      const borrower = yield* Effect.fork(
        Pool.use(pool, (c) => Effect.zipRight(db.driver.query(c, "BEGIN"), db.setLatency({ query: "1 second" })))
      )
      yield* settle
      const interrupter = yield* Effect.fork(Fiber.interrupt(borrower))
      yield* settle
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(interrupter)
      const stats = yield* Pool.stats(pool)
      assert.deepStrictEqual([stats.idle, stats.closedBy.resetFailed], [1, undefined])
      assert.strictEqual((yield* db.stats).inTransaction, 0)
      assert.deepStrictEqual(resets, ["rollback"])
    }))

  it.scoped("emits exactly one Reset per return, with the method's name", () =>
    Effect.gen(function*() {
      for (const mode of ["rollback", "commit"] as const) {
        const { pool, resets } = yield* setup([Policy.resetOnReturn(mode)])
        yield* Pool.use(pool, () => Effect.void)
        yield* Effect.either(Pool.use(pool, () => Effect.fail("x")))
        yield* Pool.use(pool, () => Effect.void)
        assert.deepStrictEqual(resets, [mode, mode, mode])
      }
    }))

  it.scoped("two resets listed run in order: a custom one, then the rollback", () =>
    Effect.gen(function*() {
      const seen: Array<boolean> = []
      const { db, pool, resets } = yield* setup([
        Policy.resetOnReturn<MemoryConnection, MemoryError>((context) =>
          Effect.sync(() => seen.push(context.connection.inTransaction))
        ),
        Policy.resetOnReturn("rollback")
      ])
      yield* Pool.use(pool, (c) => db.driver.query(c, "BEGIN"))
      assert.deepStrictEqual(seen, [true], "the custom reset ran first, with the transaction still open")
      assert.strictEqual((yield* db.stats).inTransaction, 0)
      assert.deepStrictEqual(resets, ["custom", "rollback"])
    }))
})
