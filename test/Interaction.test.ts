/**
 * Twisted's `adbapi.ConnectionPool` facade on the Memory driver (TestClock) and on SQLite (a temporary file): the
 * `run*` methods and their transactions, `cp_reconnect`'s `ConnectionLost`, a lost `COMMIT`'s
 * `CommitOutcomeUnknown`, the `cp_*` options mapped onto the pool, `connect` / `disconnect`, `start` / `close`, the
 * layer, and the options' JSON round trip.
 */
import { assert, describe, it } from "@effect/vitest"
import Database from "better-sqlite3"
import { Context, Effect, Either, Exit, Fiber, Layer, TestClock } from "effect"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import type { MemoryConnection, MemoryError } from "../src/Driver/Memory.js"
import * as Memory from "../src/Driver/Memory.js"
import * as Sqlite from "../src/Driver/Sqlite.js"
import * as Interaction from "../src/Interaction.js"
import * as Pool from "../src/Pool.js"
import { PoolConfigError } from "../src/PoolError.js"

const INSERT = "INSERT INTO t VALUES (1)"

/**
 * The Memory driver with `inTransaction` (as the Pg and SQLite drivers have), so reset on return sends nothing
 * after a transaction that ended, and a connection's statements are exactly the facade's.
 */
const memory = Effect.map(Memory.make(), (db) => ({
  ...db,
  driver: { ...db.driver, inTransaction: (connection: MemoryConnection) => connection.inTransaction }
}))

const setup = (options?: Interaction.Options<MemoryConnection, MemoryError>) =>
  Effect.gen(function*() {
    const db = yield* memory
    const dbpool = yield* Interaction.make(db.driver, { cp_min: 0, cp_max: 2, ...options })
    return { db, dbpool }
  })

describe("Interaction (Memory)", () => {
  describe("runInteraction", () => {
    it.scoped("commits when the work succeeds", () =>
      Effect.gen(function*() {
        const { db, dbpool } = yield* setup()
        const result = yield* dbpool.runInteraction((txn) => Effect.as(txn.execute(INSERT), "done"))
        assert.strictEqual(result, "done")
        assert.deepStrictEqual(yield* db.committed, [INSERT])
        const [connection] = yield* db.connections
        assert.deepStrictEqual(connection!.statements, ["BEGIN", INSERT, "COMMIT"])
      }))

    it.scoped("rolls back when the work fails, and fails with the work's error", () =>
      Effect.gen(function*() {
        const { db, dbpool } = yield* setup()
        const error = yield* Effect.flip(
          dbpool.runInteraction((txn) => Effect.zipRight(txn.execute(INSERT), Effect.fail("boom" as const)))
        )
        assert.strictEqual(error, "boom")
        assert.deepStrictEqual(yield* db.committed, [])
        const [connection] = yield* db.connections
        assert.deepStrictEqual(connection!.statements, ["BEGIN", INSERT, "ROLLBACK"])
        assert.isFalse(connection!.inTransaction)
        assert.strictEqual((yield* Pool.stats(dbpool.pool)).idle, 1, "the connection is pooled again")
      }))

    it.scoped("rolls back when the work is interrupted", () =>
      Effect.gen(function*() {
        const { db, dbpool } = yield* setup()
        const fiber = yield* Effect.fork(
          dbpool.runInteraction((txn) => Effect.zipRight(txn.execute(INSERT), Effect.sleep("1 minute")))
        )
        yield* TestClock.adjust("1 second")
        yield* Fiber.interrupt(fiber)
        assert.deepStrictEqual(yield* db.committed, [])
        const [connection] = yield* db.connections
        assert.deepStrictEqual(connection!.statements, ["BEGIN", INSERT, "ROLLBACK"])
        assert.strictEqual((yield* Pool.stats(dbpool.pool)).idle, 1)
      }))

    it.scoped("a COMMIT the server refuses (not a disconnect) fails with the driver's error, rolled back", () =>
      Effect.gen(function*() {
        const { db, dbpool } = yield* setup({ cp_reconnect: true })
        const error = yield* Effect.flip(
          dbpool.runInteraction((txn) => Effect.zipRight(txn.execute(INSERT), db.failNextQueries(1)))
        )
        assert.strictEqual(error._tag, "MemoryError")
        assert.strictEqual((error as MemoryError).reason, "QueryFailed")
        const [connection] = yield* db.connections
        assert.deepStrictEqual(connection!.statements, ["BEGIN", INSERT, "ROLLBACK"])
      }))
  })

  describe("runQuery, runOperation, runWithConnection", () => {
    it.scoped("runQuery answers the rows, runOperation nothing, each in a transaction of its own", () =>
      Effect.gen(function*() {
        const { db, dbpool } = yield* setup()
        const rows = yield* dbpool.runQuery("SELECT 1")
        assert.deepStrictEqual(rows, [{ "?column?": 1 }])
        const none = yield* Interaction.runOperation(dbpool, INSERT)
        assert.isUndefined(none)
        assert.deepStrictEqual(yield* Interaction.runQuery(dbpool, "SELECT 1"), [{ "?column?": 1 }])
        const [connection] = yield* db.connections
        assert.deepStrictEqual(connection!.statements, [
          "BEGIN",
          "SELECT 1",
          "COMMIT",
          "BEGIN",
          INSERT,
          "COMMIT",
          "BEGIN",
          "SELECT 1",
          "COMMIT"
        ])
        assert.deepStrictEqual(yield* db.committed, [INSERT])
      }))

    it.scoped("runWithConnection lends the connection without a transaction; one left open is rolled back", () =>
      Effect.gen(function*() {
        const { db, dbpool } = yield* setup()
        const id = yield* dbpool.runWithConnection((connection) =>
          Effect.as(db.driver.query(connection, INSERT), connection.id)
        )
        assert.strictEqual(id, 1)
        assert.deepStrictEqual(yield* db.committed, [INSERT], "autocommit: nothing to commit")
        yield* Interaction.runWithConnection(
          dbpool,
          (connection) =>
            Effect.zipRight(db.driver.begin(connection), db.driver.query(connection, "INSERT INTO t VALUES (2)"))
        )
        assert.deepStrictEqual(yield* db.committed, [INSERT], "left open: rolled back on return, never committed")
        assert.strictEqual((yield* db.stats).inTransaction, 0)
      }))
  })

  describe("cp_reconnect", () => {
    it.scoped("a disconnect during the work invalidates the connection and fails with ConnectionLost; a retry works", () =>
      Effect.gen(function*() {
        const { db, dbpool } = yield* setup({ cp_reconnect: true })
        const error = yield* Effect.flip(dbpool.runInteraction((txn) =>
          Effect.gen(function*() {
            yield* txn.execute(INSERT)
            yield* db.kill(txn.connection, { notify: false })
            return yield* txn.execute("INSERT INTO t VALUES (2)")
          })
        ))
        assert.ok(error instanceof Interaction.ConnectionLost)
        const lost = error as Interaction.ConnectionLost
        assert.deepStrictEqual([lost.operation, lost.phase, lost.retryable], ["runInteraction", "work", true])
        assert.strictEqual((lost.cause as MemoryError).reason, "Disconnected")
        assert.include(lost.message, "the work may be retried")
        const stats = yield* Pool.stats(dbpool.pool)
        assert.strictEqual(stats.closedBy["invalidated"], 1)
        assert.strictEqual(stats.open, 0)
        yield* dbpool.runInteraction((txn) => txn.execute(INSERT))
        assert.deepStrictEqual(yield* db.committed, [INSERT])
        assert.strictEqual((yield* db.stats).opened, 2)
      }))

    it.scoped("a disconnect at BEGIN is ConnectionLost (phase begin); runQuery and runOperation say so too", () =>
      Effect.gen(function*() {
        const { db, dbpool } = yield* setup({ cp_reconnect: true })
        yield* dbpool.runQuery("SELECT 1")
        const [connection] = yield* db.connections
        // dead while idle, and the pool not told: pre-ping skips a connection validated within 500 ms
        yield* db.kill(connection!, { notify: false })
        const atBegin = yield* Effect.flip(dbpool.runOperation(INSERT))
        assert.ok(atBegin instanceof Interaction.ConnectionLost)
        assert.deepStrictEqual(
          [(atBegin as Interaction.ConnectionLost).operation, (atBegin as Interaction.ConnectionLost).phase],
          ["runOperation", "begin"]
        )
        yield* db.applyPlan({ connects: [], queries: ["ok", "disconnect"], slowMillis: 0 })
        const inQuery = yield* Effect.flip(dbpool.runQuery("SELECT 1"))
        assert.ok(inQuery instanceof Interaction.ConnectionLost)
        assert.deepStrictEqual(
          [(inQuery as Interaction.ConnectionLost).operation, (inQuery as Interaction.ConnectionLost).phase],
          ["runQuery", "work"]
        )
        assert.strictEqual((yield* Pool.stats(dbpool.pool)).closedBy["invalidated"], 2)
      }))

    it.scoped("runWithConnection: ConnectionLost with retryable false (its statements ran in autocommit)", () =>
      Effect.gen(function*() {
        const { db, dbpool } = yield* setup({ cp_reconnect: true })
        const error = yield* Effect.flip(dbpool.runWithConnection((connection) =>
          Effect.gen(function*() {
            yield* db.driver.query(connection, INSERT)
            yield* db.kill(connection, { notify: false })
            return yield* db.driver.query(connection, "SELECT 1")
          })
        ))
        assert.ok(error instanceof Interaction.ConnectionLost)
        assert.isFalse((error as Interaction.ConnectionLost).retryable)
        assert.include(error.message, "may have committed")
        assert.deepStrictEqual(yield* db.committed, [INSERT])
        assert.strictEqual((yield* Pool.stats(dbpool.pool)).closedBy["invalidated"], 1)
      }))

    it.scoped("off (Twisted's default): the driver's error as is, and the dead connection is still invalidated", () =>
      Effect.gen(function*() {
        const { db, dbpool } = yield* setup()
        const error = yield* Effect.flip(
          dbpool.runInteraction((txn) =>
            Effect.zipRight(db.kill(txn.connection, { notify: false }), txn.execute(INSERT))
          )
        )
        assert.ok(error instanceof Memory.MemoryError)
        assert.strictEqual((error as MemoryError).reason, "Disconnected")
        assert.strictEqual((yield* Pool.stats(dbpool.pool)).closedBy["invalidated"], 1)
        yield* dbpool.runOperation(INSERT)
        assert.deepStrictEqual(yield* db.committed, [INSERT])
      }))

    for (const reconnect of [true, false]) {
      it.scoped(`a connection lost during COMMIT fails with CommitOutcomeUnknown (cp_reconnect ${reconnect})`, () =>
        Effect.gen(function*() {
          const { db, dbpool } = yield* setup({ cp_reconnect: reconnect })
          const error = yield* Effect.flip(dbpool.runInteraction((txn) =>
            Effect.zipRight(
              txn.execute(INSERT),
              // the next statement, the COMMIT, loses the connection
              db.applyPlan({ connects: [], queries: ["disconnect"], slowMillis: 0 })
            )
          ))
          assert.ok(error instanceof Interaction.CommitOutcomeUnknown)
          const unknown = error as Interaction.CommitOutcomeUnknown
          assert.isFalse(unknown.retryable)
          assert.strictEqual(unknown.operation, "runInteraction")
          assert.strictEqual((unknown.cause as MemoryError).reason, "Disconnected")
          assert.include(unknown.message, "may or may not have been committed")
          const [closed] = (yield* db.connections).length === 0 ? [true] : [false]
          assert.isTrue(closed, "invalidated")
          assert.strictEqual((yield* Pool.stats(dbpool.pool)).closedBy["invalidated"], 1)
          yield* dbpool.runOperation(INSERT)
        }))
    }
  })

  describe("options", () => {
    it.scoped("cp_min, cp_max, cp_noisy map onto min, size (maxOverflow 0) and echo; Twisted's defaults", () =>
      Effect.gen(function*() {
        const db = yield* Memory.make()
        const dbpool = yield* Interaction.make(db.driver, { cp_min: 2, cp_max: 4, cp_noisy: true, name: "tw" })
        const config = Pool.config(dbpool.pool)
        assert.deepStrictEqual([config.min, config.size, config.maxOverflow, config.echo], [2, 4, 0, true])
        yield* dbpool.start
        assert.strictEqual((yield* db.stats).opened, 2)
        const defaults = yield* Interaction.make(db.driver)
        assert.deepStrictEqual(
          [defaults.config.cp_min, defaults.config.cp_max, defaults.config.cp_noisy, defaults.config.cp_reconnect],
          [3, 5, false, false]
        )
        assert.strictEqual(defaults.config.cp_good_sql, "SELECT 1")
        // cp_max is a hard limit: a checkout past it waits, it never opens an overflow connection
        const held = yield* Effect.all(Array.from({ length: 4 }, () => dbpool.connect))
        const waited = yield* Effect.fork(dbpool.runQuery("SELECT 1"))
        yield* TestClock.adjust("31 seconds")
        const exit = yield* Fiber.await(waited)
        assert.ok(Exit.isFailure(exit))
        assert.strictEqual((yield* Pool.stats(dbpool.pool)).open, 4)
        yield* Effect.forEach(held, (c) => dbpool.disconnect(c))
      }))

    it.scoped("cp_openfun as SQL statements runs on every new connection; as a function too", () =>
      Effect.gen(function*() {
        const db = yield* Memory.make()
        const sql = yield* Interaction.make(db.driver, { cp_min: 0, cp_openfun: ["SET timezone = 'UTC'"] })
        const zone = yield* sql.runQuery("SHOW timezone")
        assert.deepStrictEqual(zone, [{ timezone: "UTC" }])
        const fn = yield* Interaction.make(db.driver, {
          cp_min: 0,
          cp_openfun: (connection) => db.driver.query(connection, "SET search_path = app")
        })
        assert.deepStrictEqual(yield* fn.runQuery("SHOW search_path"), [{ search_path: "app" }])
      }))

    it.scoped("cp_good_sql is the liveness query pre-ping runs", () =>
      Effect.gen(function*() {
        const { db, dbpool } = yield* setup({ cp_good_sql: "SELECT 42" })
        yield* dbpool.runOperation(INSERT)
        yield* TestClock.adjust("1 second")
        yield* dbpool.runOperation(INSERT)
        const [connection] = yield* db.connections
        assert.strictEqual(connection!.statements[3], "SELECT 42")
      }))

    it.scoped("bad options fail with one PoolConfigError listing every problem, under the cp_* names", () =>
      Effect.gen(function*() {
        const db = yield* Memory.make()
        const error = yield* Effect.flip(Interaction.make(db.driver, {
          cp_min: 6,
          cp_max: 5,
          cp_noisy: "yes" as unknown as boolean,
          cp_openfun: 3 as unknown as Array<string>,
          timeout: -1
        }))
        assert.ok(error instanceof PoolConfigError)
        assert.deepStrictEqual(error.problems, [
          "cp_noisy: Expected a boolean, got \"yes\"",
          "cp_openfun: Expected SQL statements (an array of strings) or a function of the connection, got 3",
          "cp_min: Expected at most cp_max (5), got 6",
          "timeout: Expected a duration of 0 or more, got -1"
        ])
        const zero = yield* Effect.flip(Interaction.make(db.driver, { cp_max: 0, cp_min: 0 }))
        assert.deepStrictEqual(zero.problems, ["cp_max: Expected an integer of 1 or more, got 0"])
      }))
  })

  describe("JSON (Twisted's __getstate__ / __setstate__)", () => {
    it.scoped("toJSON encodes to JSON and fromJSON rebuilds the same pool", () =>
      Effect.gen(function*() {
        const db = yield* Memory.make()
        const dbpool = yield* Interaction.make(db.driver, {
          name: "orders",
          cp_min: 1,
          cp_max: 3,
          cp_reconnect: true,
          cp_good_sql: "SELECT 1",
          cp_openfun: ["SET timezone = 'UTC'"],
          timeout: "5 seconds",
          labels: { team: "billing" }
        })
        const json = Either.getOrThrow(Interaction.toJSON(dbpool))
        const text = JSON.stringify(json)
        assert.deepStrictEqual(JSON.parse(text), {
          cp_min: 1,
          cp_max: 3,
          cp_noisy: false,
          cp_openfun: ["SET timezone = 'UTC'"],
          cp_reconnect: true,
          cp_good_sql: "SELECT 1",
          name: "orders",
          timeout: 5000,
          connectTimeout: "Infinity",
          order: "fifo",
          maxWaiters: "unbounded",
          labels: { team: "billing" },
          shutdownTimeout: 30000,
          maxCheckoutAttempts: 3
        })
        const rebuilt = yield* Interaction.fromJSON(db.driver, JSON.parse(text))
        assert.deepStrictEqual(Interaction.toJSON(rebuilt), Either.right(json))
        assert.deepStrictEqual(Pool.config(rebuilt.pool), Pool.config(dbpool.pool))
        assert.deepStrictEqual(yield* rebuilt.runQuery("SHOW timezone"), [{ timezone: "UTC" }], "cp_openfun kept")
        const decoded = yield* Interaction.fromJSON(db.driver, {})
        assert.strictEqual(decoded.config.cp_max, 5)
      }))

    it.scoped("a function cp_openfun cannot be encoded; a wrong JSON lists its problems", () =>
      Effect.gen(function*() {
        const db = yield* Memory.make()
        const dbpool = yield* Interaction.make(db.driver, { cp_min: 0, cp_openfun: () => Effect.void })
        const refused = Interaction.toJSON(dbpool)
        assert.ok(Either.isLeft(refused))
        assert.include(Either.getLeft(refused).pipe((o) => o._tag === "Some" ? o.value.problems[0] : ""), "cp_openfun")
        const error = yield* Effect.flip(Interaction.fromJSON(db.driver, { cp_min: "three", cp_openfun: [1] }))
        assert.strictEqual(error.problems.length, 2, error.problems.join("\n"))
        assert.match(error.problems[0]!, /^cp_min: /)
        assert.match(error.problems[1]!, /^cp_openfun\.0: /)
      }))
  })

  describe("connect / disconnect, start / close, layer", () => {
    it.scoped("connect is a manual checkout; disconnect closes the connection and frees its slot", () =>
      Effect.gen(function*() {
        const { db, dbpool } = yield* setup()
        const connection = yield* dbpool.connect
        assert.strictEqual((yield* Pool.stats(dbpool.pool)).inUse, 1)
        yield* db.driver.query(connection, "SELECT 1")
        yield* Interaction.disconnect(dbpool, connection)
        assert.isTrue(connection.closed)
        const stats = yield* Pool.stats(dbpool.pool)
        assert.deepStrictEqual([stats.inUse, stats.open, stats.closedBy["invalidated"]], [0, 0, 1])
        const twice = yield* Effect.flip(dbpool.disconnect(connection))
        assert.strictEqual(twice.reason, "Foreign")
        // inside runWithConnection: closed at once, and that lending's return only checks it in
        const inside = yield* dbpool.runWithConnection((c) => Effect.as(dbpool.disconnect(c), c))
        assert.isTrue(inside.closed)
        assert.strictEqual((yield* Pool.stats(dbpool.pool)).inUse, 0)
      }))

    it.scoped("close ends the pool early: later calls fail with PoolClosedError; closing twice is fine", () =>
      Effect.gen(function*() {
        const { db, dbpool } = yield* setup({ cp_min: 1 })
        yield* dbpool.start
        yield* dbpool.close
        yield* Interaction.close(dbpool)
        assert.strictEqual((yield* db.stats).open, 0)
        const error = yield* Effect.flip(dbpool.runQuery("SELECT 1"))
        assert.strictEqual(error._tag, "PoolClosedError")
      }))

    it.effect("the layer is the pool's life: built = started (cp_min open), released = closed", () =>
      Effect.gen(function*() {
        const db = yield* Memory.make()
        const Db = Context.GenericTag<Interaction.ConnectionPool<MemoryConnection, MemoryError>>("test/Db")
        const opened = yield* Effect.scoped(Effect.gen(function*() {
          const context = yield* Layer.build(Interaction.layer(Db, db.driver, { cp_min: 2 }))
          const dbpool = Context.get(context, Db)
          yield* dbpool.runOperation(INSERT)
          return (yield* db.stats).opened
        }))
        assert.strictEqual(opened, 2)
        assert.strictEqual((yield* db.stats).open, 0)
        const untyped = yield* Effect.scoped(
          Effect.flatMap(
            Layer.build(Interaction.layer(db.driver, { cp_min: 1 })),
            (context) => Context.get(context, Interaction.InteractionPool).runQuery("SELECT 1")
          )
        )
        assert.deepStrictEqual(untyped, [{ "?column?": 1 }])
        yield* db.down
        const down = yield* Effect.fork(
          Effect.scoped(Layer.build(Interaction.layer(db.driver, { timeout: "1 second" })))
        )
        yield* TestClock.adjust("2 seconds")
        const exit = yield* Fiber.await(down)
        assert.ok(Exit.isFailure(exit), "the layer fails when cp_min connections cannot open")
      }))
  })
})

/** A temporary SQLite file with a table `t`, read from outside the pool. */
const sqliteFile = Effect.gen(function*() {
  const dir = yield* Effect.acquireRelease(
    Effect.promise(() => fs.mkdtemp(path.join(os.tmpdir(), "reservoir-interaction-"))),
    (dir) => Effect.promise(() => fs.rm(dir, { recursive: true, force: true }))
  )
  const filename = path.join(dir, "test.db")
  const init = new Database(filename)
  init.exec("CREATE TABLE t (k INTEGER PRIMARY KEY)")
  init.close()
  const keys = Effect.sync(() => {
    const outside = new Database(filename, { readonly: true })
    try {
      return (outside.prepare("SELECT k FROM t ORDER BY k").all() as Array<{ k: number }>).map((row) => row.k)
    } finally {
      outside.close()
    }
  })
  return { filename, keys }
})

describe("Interaction (SQLite)", () => {
  it.live("runInteraction commits on success, rolls back on failure and on interruption", () =>
    Effect.scoped(Effect.gen(function*() {
      const { filename, keys } = yield* sqliteFile
      const dbpool = yield* Interaction.make(Sqlite.driver({ filename }), { cp_min: 1, cp_max: 2 })
      yield* dbpool.runInteraction((txn) => txn.execute("INSERT INTO t VALUES (?)", [1]))
      yield* Effect.flip(
        dbpool.runInteraction((txn) =>
          Effect.zipRight(txn.execute("INSERT INTO t VALUES (?)", [2]), Effect.fail("boom"))
        )
      )
      const fiber = yield* Effect.fork(
        dbpool.runInteraction((txn) => Effect.zipRight(txn.execute("INSERT INTO t VALUES (?)", [3]), Effect.never))
      )
      yield* Effect.sleep("20 millis")
      yield* Fiber.interrupt(fiber)
      assert.deepStrictEqual(yield* keys, [1])
      assert.deepStrictEqual(yield* dbpool.runQuery("SELECT count(*) AS n FROM t"), [{ n: 1 }])
    })))

  it.live("a closed handle during the work is ConnectionLost; during COMMIT, CommitOutcomeUnknown; retries work", () =>
    Effect.scoped(Effect.gen(function*() {
      const { filename, keys } = yield* sqliteFile
      const dbpool = yield* Interaction.make(Sqlite.driver({ filename }), { cp_min: 0, cp_max: 2, cp_reconnect: true })
      const lost = yield* Effect.flip(dbpool.runInteraction((txn) =>
        Effect.gen(function*() {
          yield* txn.execute("INSERT INTO t VALUES (?)", [1])
          txn.connection.database.close()
          return yield* txn.execute("INSERT INTO t VALUES (?)", [2])
        })
      ))
      assert.ok(lost instanceof Interaction.ConnectionLost)
      assert.isTrue((lost as Interaction.ConnectionLost).retryable)
      assert.strictEqual(((lost as Interaction.ConnectionLost).cause as Sqlite.SqliteError).reason, "Disconnected")
      assert.deepStrictEqual(yield* keys, [])
      yield* dbpool.runOperation("INSERT INTO t VALUES (?)", [1])
      const unknown = yield* Effect.flip(dbpool.runInteraction((txn) =>
        Effect.zipRight(
          txn.execute("INSERT INTO t VALUES (?)", [2]),
          Effect.sync(() => txn.connection.database.close())
        )
      ))
      assert.ok(unknown instanceof Interaction.CommitOutcomeUnknown)
      yield* dbpool.runOperation("INSERT INTO t VALUES (?)", [3])
      assert.deepStrictEqual(yield* keys, [1, 3])
      assert.strictEqual((yield* Pool.stats(dbpool.pool)).closedBy["invalidated"], 2)
    })))
})
