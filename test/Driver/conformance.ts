/**
 * The driver conformance suite: written once, run against every driver (Memory, Pg, Sqlite). A driver's test file
 * calls `conformance(name, { layer, fixture })`, where the fixture says how to look at the database from outside
 * (is a connection open, was a write committed) and how to hurt it (kill a connection).
 */
import { assert, layer, type Vitest } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Layer from "effect/Layer"
import * as Scope from "effect/Scope"
import { standalone } from "../../src/ConnectionRecord.js"
import type { ConnectContext, Driver } from "../../src/Driver.js"
import * as Pool from "../../src/Pool.js"

/** What the suite needs to know about one driver under test. */
export interface Fixture<C, E> {
  readonly driver: Driver<C, E>
  /** Whether the database still sees the connection open (a server session, an open handle). */
  readonly isOpen: (connection: C) => Effect.Effect<boolean, unknown>
  /** Starts counting how many times the connection gets closed; the returned effect reads the count. */
  readonly trackCloses: (connection: C) => Effect.Effect<Effect.Effect<number>, unknown>
  /** Kills the connection from outside: a terminated backend, a closed handle. */
  readonly kill: (connection: C) => Effect.Effect<void, unknown>
  /** Runs one statement that writes `key` somewhere (a table, the commit log). */
  readonly write: (connection: C, key: string) => Effect.Effect<void, E>
  /** Whether `key`'s write is visible from outside the connection that made it. */
  readonly isCommitted: (key: string) => Effect.Effect<boolean, unknown>
  /** A statement failing with an ordinary (not a disconnect) error. */
  readonly failOrdinarily: (connection: C) => Effect.Effect<unknown, E>
}

let counter = 0

/** A name unique in this process, for pools and `application_name`s. */
export const uniqueName = (prefix: string): string =>
  `${prefix}-${process.pid}-${++counter}-${Math.random().toString(36).slice(2, 8)}`

/** A `ConnectContext` whose `invalidate` calls are recorded. */
export const makeContext = (poolName: string): ConnectContext & { readonly invalidations: Array<unknown> } => {
  const invalidations: Array<unknown> = []
  return {
    record: standalone(poolName, 1),
    poolName,
    invalidate: (cause) => {
      invalidations.push(cause)
    },
    invalidations
  }
}

/** Polls `condition` (real time) until it holds or `millis` pass; fails with `message` then. */
export const eventually = <E, R>(
  condition: Effect.Effect<boolean, E, R>,
  message: string,
  millis = 5_000
): Effect.Effect<void, E | Error, R> => {
  const poll: Effect.Effect<void, E, R> = Effect.flatMap(
    condition,
    (ok) => ok ? Effect.void : Effect.zipRight(Effect.sleep("10 millis"), poll)
  )
  return Effect.timeoutFail(poll, { duration: millis, onTimeout: () => new Error(`timed out: ${message}`) })
}

/** The options of the suite for one driver. */
export interface ConformanceOptions<C, E, R> {
  /** Builds the fixture, in the test's scope (a fresh database file, a table...). */
  readonly fixture: Effect.Effect<Fixture<C, E>, unknown, R | Scope.Scope>
  /** Whether a killed idle connection is reported through `ConnectContext.invalidate` without any statement. */
  readonly notifiesOnKill: boolean
  /** Whether the driver answers `inTransaction` (it knows without a round trip whether a transaction is open). */
  readonly knowsTransactions: boolean
  readonly timeout?: number | undefined
}

/**
 * Registers the suite for one driver in its own `describe`, with the services of `layer` shared by its tests. Runs
 * on the real clock: real databases need real time, and the Memory driver without latency never sleeps.
 */
export const conformance = <C, E, R, LE>(
  name: string,
  options: ConformanceOptions<C, E, R> & { readonly layer: Layer.Layer<R, LE> }
): void =>
  layer(options.layer, { excludeTestServices: true, timeout: "60 seconds" })(
    `${name} driver conformance`,
    (it) => conformanceTests(it, options)
  )

/**
 * Registers the suite with the `it` of an enclosing `layer(...)` block (built with `excludeTestServices: true`), so
 * that a driver's own tests and the suite share one database server.
 */
export const conformanceTests = <C, E, R>(
  it: Vitest.MethodsNonLive<R, true>,
  options: ConformanceOptions<C, E, R>
): void => {
  const timeout = options.timeout ?? 20_000

  it.scoped("opens a connection that its scope closes exactly once", () =>
    Effect.gen(function*() {
      const f = yield* options.fixture
      const context = makeContext(uniqueName("conformance-close"))
      const scope = yield* Scope.make()
      const connection = yield* Scope.extend(f.driver.connect(context), scope)
      const closes = yield* f.trackCloses(connection)
      assert.isTrue(yield* f.isOpen(connection))
      yield* Scope.close(scope, Exit.void)
      yield* eventually(Effect.map(f.isOpen(connection), (open) => !open), "the connection closes")
      assert.strictEqual(yield* closes, 1)
      yield* Scope.close(scope, Exit.void)
      assert.strictEqual(yield* closes, 1)
      assert.deepStrictEqual(context.invalidations, [], "a deliberate close is not reported as a loss")
    }), timeout)

  it.scoped("pings an open connection", () =>
    Effect.gen(function*() {
      const f = yield* options.fixture
      const connection = yield* f.driver.connect(makeContext(uniqueName("conformance-ping")))
      yield* f.driver.ping(connection)
    }), timeout)

  it.scoped("returns the rows of a query", () =>
    Effect.gen(function*() {
      const f = yield* options.fixture
      const connection = yield* f.driver.connect(makeContext(uniqueName("conformance-rows")))
      const rows = yield* f.driver.query(connection, "SELECT 1")
      assert.strictEqual(rows.length, 1)
      assert.deepStrictEqual(Object.values(rows[0]!), [1])
    }), timeout)

  it.scoped("discards a write rolled back", () =>
    Effect.gen(function*() {
      const f = yield* options.fixture
      const connection = yield* f.driver.connect(makeContext(uniqueName("conformance-rollback")))
      const key = uniqueName("rolled-back")
      yield* f.driver.begin(connection)
      yield* f.write(connection, key)
      yield* f.driver.rollback(connection)
      assert.isFalse(yield* f.isCommitted(key))
    }), timeout)

  it.scoped("keeps a write committed", () =>
    Effect.gen(function*() {
      const f = yield* options.fixture
      const connection = yield* f.driver.connect(makeContext(uniqueName("conformance-commit")))
      const key = uniqueName("committed")
      yield* f.driver.begin(connection)
      yield* f.write(connection, key)
      assert.isFalse(yield* f.isCommitted(key), "not visible before the commit")
      yield* f.driver.commit(connection)
      assert.isTrue(yield* f.isCommitted(key))
    }), timeout)

  it.scoped("rolls back outside a transaction without failing", () =>
    Effect.gen(function*() {
      const f = yield* options.fixture
      const connection = yield* f.driver.connect(makeContext(uniqueName("conformance-reset")))
      yield* f.driver.rollback(connection)
      yield* f.driver.ping(connection)
    }), timeout)

  it.scoped("tells a killed connection's failure from an ordinary one", () =>
    Effect.gen(function*() {
      const f = yield* options.fixture
      const connection = yield* f.driver.connect(makeContext(uniqueName("conformance-kill")))
      const ordinary = yield* Effect.flip(f.failOrdinarily(connection))
      assert.isFalse(f.driver.isDisconnect(ordinary), `an ordinary failure: ${String(ordinary)}`)
      yield* f.driver.ping(connection)
      yield* f.kill(connection)
      const lost = yield* Effect.flip(f.driver.query(connection, "SELECT 1"))
      assert.isTrue(f.driver.isDisconnect(lost), `a disconnect: ${String(lost)}`)
      assert.isFalse(f.driver.isDisconnect(new Error("something else")))
      assert.isFalse(f.driver.isDisconnect(undefined))
    }), timeout)

  if (options.notifiesOnKill) {
    it.scoped("reports a connection killed while idle through invalidate", () =>
      Effect.gen(function*() {
        const f = yield* options.fixture
        const context = makeContext(uniqueName("conformance-notify"))
        const connection = yield* f.driver.connect(context)
        assert.deepStrictEqual(context.invalidations, [])
        yield* f.kill(connection)
        yield* eventually(Effect.sync(() => context.invalidations.length > 0), "invalidate is called")
        assert.isTrue(f.driver.isDisconnect(context.invalidations[0]), String(context.invalidations[0]))
      }), timeout)
  } else {
    it.scoped("finds a killed connection only when it is used (no out-of-band notice)", () =>
      Effect.gen(function*() {
        const f = yield* options.fixture
        const context = makeContext(uniqueName("conformance-notify"))
        const connection = yield* f.driver.connect(context)
        yield* f.kill(connection)
        assert.deepStrictEqual(context.invalidations, [])
        const lost = yield* Effect.flip(f.driver.ping(connection))
        assert.isTrue(f.driver.isDisconnect(lost), String(lost))
      }), timeout)
  }

  if (options.knowsTransactions) {
    it.scoped("tells whether a transaction is open, from begin to commit or rollback", () =>
      Effect.gen(function*() {
        const f = yield* options.fixture
        const connection = yield* f.driver.connect(makeContext(uniqueName("conformance-in-transaction")))
        const inTransaction = f.driver.inTransaction!
        assert.isFalse(inTransaction(connection), "a fresh connection")
        yield* f.driver.query(connection, "SELECT 1")
        assert.isFalse(inTransaction(connection), "after autocommit work")
        yield* f.driver.begin(connection)
        assert.isTrue(inTransaction(connection), "after begin")
        yield* f.write(connection, uniqueName("in-transaction"))
        assert.isTrue(inTransaction(connection), "after a write in the transaction")
        yield* f.driver.commit(connection)
        assert.isFalse(inTransaction(connection), "after commit")
        yield* f.driver.begin(connection)
        yield* Effect.flip(f.failOrdinarily(connection))
        assert.isTrue(inTransaction(connection), "in a transaction a failed statement left open")
        yield* f.driver.rollback(connection)
        assert.isFalse(inTransaction(connection), "after rollback")
      }), timeout)
  } else {
    it.scoped("does not claim to know whether a transaction is open", () =>
      Effect.gen(function*() {
        const f = yield* options.fixture
        assert.isUndefined(f.driver.inTransaction)
      }), timeout)
  }

  it.scoped("backs a pool: two uses share one connection, closed with the pool", () =>
    Effect.gen(function*() {
      const f = yield* options.fixture
      const scope = yield* Scope.make()
      const pool = yield* Pool.make({ driver: f.driver, name: uniqueName("conformance-pool"), size: 1 }).pipe(
        Scope.extend(scope)
      )
      const first = yield* Pool.use(pool, (connection) => Effect.as(f.driver.ping(connection), connection))
      const second = yield* Pool.use(
        pool,
        (connection) => Effect.as(f.driver.query(connection, "SELECT 1"), connection)
      )
      assert.strictEqual(first, second)
      const stats = yield* Pool.stats(pool)
      assert.strictEqual(stats.opened, 1)
      assert.strictEqual(stats.checkouts, 2)
      assert.isTrue(yield* f.isOpen(first))
      yield* Scope.close(scope, Exit.void)
      yield* eventually(Effect.map(f.isOpen(first), (open) => !open), "the pool closes its connection")
      assert.strictEqual((yield* Pool.stats(pool)).closed, 1)
    }), timeout)
}
