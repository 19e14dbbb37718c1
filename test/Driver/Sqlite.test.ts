import { assert, describe, it } from "@effect/vitest"
import Database from "better-sqlite3"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Scope from "effect/Scope"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import * as Sqlite from "../../src/Driver/Sqlite.js"
import * as Pool from "../../src/Pool.js"
import { conformance, type Fixture, makeContext, uniqueName } from "./conformance.js"

/** A fresh temporary directory, removed with the scope. */
const tempDir = Effect.acquireRelease(
  Effect.promise(() => fs.mkdtemp(path.join(os.tmpdir(), "reservoir-sqlite-"))),
  (dir) => Effect.promise(() => fs.rm(dir, { recursive: true, force: true }))
)

/** A fresh database file with a `kv` table, and a way to read it from outside the pool. */
const database = Effect.gen(function*() {
  const filename = path.join(yield* tempDir, "test.db")
  const setup = new Database(filename)
  setup.exec("CREATE TABLE kv (k TEXT PRIMARY KEY, v INTEGER)")
  setup.close()
  const outside = <A>(f: (db: Database.Database) => A) =>
    Effect.sync(() => {
      const db = new Database(filename, { readonly: true })
      try {
        return f(db)
      } finally {
        db.close()
      }
    })
  return { filename, outside }
})

conformance("Sqlite", {
  layer: Layer.empty,
  notifiesOnKill: false,
  knowsTransactions: true,
  fixture: Effect.map(database, ({ filename, outside }): Fixture<Sqlite.SqliteConnection, Sqlite.SqliteError> => {
    const driver = Sqlite.driver({ filename })
    return {
      driver,
      isOpen: (connection) => Effect.sync(() => connection.database.open),
      trackCloses: (connection) =>
        Effect.sync(() => {
          let closes = 0
          const db = connection.database
          const close = db.close.bind(db)
          db.close = () => {
            closes++
            return close()
          }
          return Effect.sync(() => closes)
        }),
      kill: (connection) => Effect.sync(() => connection.database.close()),
      write: (connection, key) => Effect.asVoid(driver.query(connection, "INSERT INTO kv (k) VALUES (?)", [key])),
      isCommitted: (key) => outside((db) => db.prepare("SELECT 1 FROM kv WHERE k = ?").get(key) !== undefined),
      failOrdinarily: (connection) => driver.query(connection, "SELECT nope FROM kv")
    }
  })
})

describe("Sqlite driver", () => {
  it.scoped("opens file databases in WAL mode with a busy timeout", () =>
    Effect.gen(function*() {
      const { filename } = yield* database
      const driver = Sqlite.driver({ filename, busyTimeout: "1500 millis" })
      const connection = yield* driver.connect(makeContext(uniqueName("sqlite-wal")))
      assert.deepStrictEqual(yield* driver.query(connection, "PRAGMA journal_mode"), [{ journal_mode: "wal" }])
      assert.deepStrictEqual(yield* driver.query(connection, "PRAGMA busy_timeout"), [{ timeout: 1500 }])
    }))

  it.scoped("binds positional parameters and returns rows", () =>
    Effect.gen(function*() {
      const { filename } = yield* database
      const driver = Sqlite.driver({ filename })
      const connection = yield* driver.connect(makeContext(uniqueName("sqlite-params")))
      yield* driver.query(connection, "INSERT INTO kv (k, v) VALUES (?, ?), (?, ?)", ["a", 1, "b", true])
      yield* driver.query(connection, "INSERT INTO kv (k, v) VALUES (?, ?)", ["c", undefined])
      const rows = yield* driver.query(connection, "SELECT k, v FROM kv WHERE k >= ? ORDER BY k", ["a"])
      assert.deepStrictEqual(rows, [{ k: "a", v: 1 }, { k: "b", v: 1 }, { k: "c", v: null }])
    }))

  it.scoped("gives each connection of a :memory: database its own database", () =>
    Effect.gen(function*() {
      const driver = Sqlite.driver({ filename: ":memory:" })
      const one = yield* driver.connect(makeContext(uniqueName("sqlite-memory")))
      const two = yield* driver.connect(makeContext(uniqueName("sqlite-memory")))
      yield* driver.query(one, "CREATE TABLE t (x)")
      const error = yield* Effect.flip(driver.query(two, "SELECT x FROM t"))
      assert.strictEqual(error.reason, "QueryFailed")
      assert.match(error.message, /no such table/)
    }))

  it.scoped("fails with a typed error naming the SQLite code", () =>
    Effect.gen(function*() {
      const { filename } = yield* database
      const driver = Sqlite.driver({ filename })
      const connection = yield* driver.connect(makeContext(uniqueName("sqlite-error")))
      yield* driver.query(connection, "INSERT INTO kv (k) VALUES (?)", ["dup"])
      const error = yield* Effect.flip(driver.query(connection, "INSERT INTO kv (k) VALUES (?)", ["dup"]))
      assert.strictEqual(error._tag, "SqliteError")
      assert.strictEqual(error.reason, "QueryFailed")
      assert.strictEqual(error.code, "SQLITE_CONSTRAINT_PRIMARYKEY")
      assert.isFalse(driver.isDisconnect(error))
    }))

  it.scoped("serialises concurrent transactions of a pool without SQLITE_BUSY", () =>
    Effect.gen(function*() {
      const { filename, outside } = yield* database
      const driver = Sqlite.driver({ filename })
      const pool = yield* Pool.make({ driver, name: uniqueName("sqlite-pool"), size: 4, maxOverflow: 0 })
      yield* Pool.use(pool, (c) => driver.query(c, "INSERT INTO kv (k, v) VALUES ('counter', 0)"))
      yield* Effect.forEach(
        Array.from({ length: 40 }, (_, i) => i),
        () =>
          Pool.transaction(pool, (c) =>
            Effect.gen(function*() {
              const rows = yield* driver.query(c, "SELECT v FROM kv WHERE k = 'counter'")
              yield* Effect.yieldNow()
              yield* driver.query(c, "UPDATE kv SET v = ? WHERE k = 'counter'", [Number(rows[0]!["v"]) + 1])
            })),
        { concurrency: "unbounded", discard: true }
      )
      const value = yield* outside((db) => db.prepare("SELECT v FROM kv WHERE k = 'counter'").get())
      assert.deepStrictEqual(value, { v: 40 })
    }))

  it.scoped("fails a writer that waits past the busy timeout with Busy, and lets the holder finish", () =>
    Effect.gen(function*() {
      const { filename, outside } = yield* database
      const driver = Sqlite.driver({ filename, busyTimeout: "100 millis" })
      const holder = yield* driver.connect(makeContext(uniqueName("sqlite-busy")))
      const waiter = yield* driver.connect(makeContext(uniqueName("sqlite-busy")))
      yield* driver.begin(holder)
      yield* driver.query(holder, "INSERT INTO kv (k) VALUES ('held')")
      const started = Date.now()
      const error = yield* Effect.flip(driver.query(waiter, "INSERT INTO kv (k) VALUES ('waited')"))
      assert.strictEqual(error.reason, "Busy")
      assert.isAtLeast(Date.now() - started, 90)
      assert.deepStrictEqual(yield* driver.query(waiter, "SELECT count(*) AS n FROM kv"), [{ n: 0 }], "readers go on")
      yield* driver.commit(holder)
      yield* driver.query(waiter, "INSERT INTO kv (k) VALUES ('after')")
      assert.deepStrictEqual(yield* outside((db) => db.prepare("SELECT k FROM kv ORDER BY k").all()), [
        { k: "after" },
        { k: "held" }
      ])
    }))

  it.live("a transaction's BEGIN that waits past the busy timeout fails with Busy and leaves the lock free", () =>
    Effect.gen(function*() {
      // the BEGIN of Pool.transaction runs uninterruptibly: the lock wait must still end at the busy timeout, and
      // a permit the wait got must not be left taken (the writers after it then waited for good)
      const { filename, outside } = yield* database
      const driver = Sqlite.driver({ filename, busyTimeout: "200 millis" })
      const pool = yield* Pool.make({ driver, name: uniqueName("sqlite-busy-begin"), size: 3, maxOverflow: 0 })
      const write = (key: string) => (c: Sqlite.SqliteConnection) =>
        driver.query(c, "INSERT INTO kv (k) VALUES (?)", [key])
      const holder = yield* Effect.fork(
        Pool.transaction(pool, (c) => Effect.zipRight(write("held")(c), Effect.sleep("800 millis")))
      )
      yield* Effect.sleep("50 millis")
      const started = Date.now()
      const error = yield* Effect.flip(Pool.transaction(pool, write("waited")))
      const waited = Date.now() - started
      assert.strictEqual(error._tag, "SqliteError")
      assert.strictEqual((error as Sqlite.SqliteError).reason, "Busy")
      assert.isBelow(waited, 700, "the wait ended at the busy timeout, not when the holder committed")
      yield* Fiber.join(holder)
      yield* Pool.transaction(pool, write("after")).pipe(
        Effect.timeoutFail({ duration: "5 seconds", onTimeout: () => new Error("the lock was left taken") })
      )
      assert.deepStrictEqual(yield* outside((db) => db.prepare("SELECT k FROM kv ORDER BY k").all()), [
        { k: "after" },
        { k: "held" }
      ])
    }).pipe(Effect.scoped))

  it.scoped("fails the layer at build when the database cannot be opened", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const missing = path.join(dir, "missing.db")
      const exit = yield* Effect.exit(
        Layer.build(Sqlite.layer({ filename: missing, fileMustExist: true }))
      )
      assert.isTrue(Exit.isFailure(exit))
      const error = yield* Effect.flip(Sqlite.check({ filename: missing, fileMustExist: true }))
      assert.strictEqual(error.reason, "ConnectFailed")
      const ok = yield* Layer.build(Sqlite.layer({ filename: path.join(dir, "ok.db") }))
      const driver = yield* Effect.provide(Sqlite.SqliteDriver, Layer.succeedContext(ok))
      assert.strictEqual(driver.dialect, "sqlite")
    }))

  it.scoped("closes every connection of a pool with the pool's scope", () =>
    Effect.gen(function*() {
      const { filename } = yield* database
      const driver = Sqlite.driver({ filename })
      const scope = yield* Scope.make()
      const pool = yield* Scope.extend(Pool.make({ driver, name: uniqueName("sqlite-close"), size: 3 }), scope)
      const held = yield* Effect.forEach([1, 2, 3], () => Pool.checkout(pool))
      yield* Effect.forEach(held, (lease) => Pool.checkin(pool, lease))
      yield* Scope.close(scope, Exit.void)
      assert.isTrue(held.every((lease) => !lease.connection.database.open))
    }))
})
