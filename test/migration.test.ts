/**
 * The migration guides' code (docs/migration/): every "after" program runs and answers what its page says, every
 * TypeScript "before" program runs next to its "after" and computes the same result, and every message a page quotes
 * is asserted here. The pg-pool and @effect/sql-pg pairs run on a throwaway PostgreSQL 15 cluster.
 */
import { assert, describe, it, layer } from "@effect/vitest"
import { ConfigProvider, Effect, Either } from "effect"
import pg from "pg"
import * as bank from "../examples/migration/bank.js"
import * as effectPoolAfter from "../examples/migration/effect-pool.after.js"
import * as effectPoolBefore from "../examples/migration/effect-pool.before.js"
import * as sqlPgAfter from "../examples/migration/effect-sql-pg.after.js"
import * as sqlPgBefore from "../examples/migration/effect-sql-pg.before.js"
import * as genericPoolAfter from "../examples/migration/generic-pool.after.js"
import * as genericPoolBefore from "../examples/migration/generic-pool.before.js"
import * as pgPoolAfter from "../examples/migration/pg-pool.after.js"
import * as pgPoolBefore from "../examples/migration/pg-pool.before.js"
import * as spanner from "../examples/migration/spanner.js"
import * as sqlalchemy from "../examples/migration/sqlalchemy.js"
import * as tarnAfter from "../examples/migration/tarn.after.js"
import * as tarnBefore from "../examples/migration/tarn.before.js"
import * as twisted from "../examples/migration/twisted.js"
import * as Memory from "../src/Driver/Memory.js"
import * as Interaction from "../src/Interaction.js"
import { layer as postgresLayer, Postgres } from "./utils/postgres.js"

/** What every bank pair answers, whatever the order the transfers ran in. */
const expected: bank.Outcome = {
  committed: 3,
  failed: 1,
  balances: [["ada", 60], ["grace", 60], ["linus", 30]]
}

describe("migration: SQLAlchemy (after)", () => {
  it.live("pair 1: create_engine's options, engine.begin() and engine.connect()", () =>
    Effect.gen(function*() {
      assert.deepStrictEqual(yield* sqlalchemy.bankTransfers, expected)
    }))

  it.live("pair 2: first_connect, connect and checkout events", () =>
    Effect.gen(function*() {
      const result = yield* sqlalchemy.poolEvents
      assert.deepStrictEqual(result, { serverVersionKnown: true, foreignKeys: [{ foreign_keys: 1 }], checkouts: 1 })
    }))

  it.live("pair 3: pool_timeout and status(): the messages the page quotes", () =>
    Effect.gen(function*() {
      const result = yield* sqlalchemy.poolTimeout
      assert.strictEqual(
        result.status,
        "Pool size: 2  Connections in pool: 0 Current Overflow: 0 Current Checked out connections: 2"
      )
      assert.strictEqual(result.tag, "PoolTimeoutError")
      assert.strictEqual(
        result.message,
        "Pool \"bank\": checkout timed out after 100 ms (open 2/2, in use 2, idle 0, opening 0, waiting 1)"
      )
    }))

  it.live("pair 4: invalidate and dispose", () =>
    Effect.gen(function*() {
      const result = yield* sqlalchemy.invalidation
      assert.deepStrictEqual(result, {
        sameConnection: false,
        reopened: true,
        closedBy: { invalidated: 1, disposed: 1 }
      })
    }))
})

describe("migration: Twisted adbapi (after)", () => {
  it.live("pair 1: runInteraction, runQuery, runOperation, an errback as catchTag", () =>
    Effect.gen(function*() {
      assert.deepStrictEqual(yield* twisted.bankTransfers, expected)
    }))

  it.effect("pair 2: cp_reconnect's ConnectionLost, retried by the caller", () =>
    Effect.gen(function*() {
      const result = yield* twisted.retryOnConnectionLost
      assert.deepStrictEqual(result, { seen: ["ConnectionLost"], committed: ["INSERT INTO orders VALUES (42)"] })
    }))

  it.live("pair 3: the pool as a Layer", () =>
    Effect.gen(function*() {
      assert.deepStrictEqual(yield* twisted.asALayer, { rows: [{ n: 1 }], open: 2 })
    }))

  it.scoped("cp_min above cp_max is refused with the problem line the page quotes", () =>
    Effect.gen(function*() {
      const db = yield* Memory.make()
      const error = yield* Effect.flip(Interaction.make(db.driver, { cp_min: 6, cp_max: 5 }))
      assert.deepStrictEqual(error.problems, ["cp_min: Expected at most cp_max (5), got 6"])
    }))
})

describe("migration: Spanner session pools (after)", () => {
  it.live("pair 1: FixedSizePool bound to a database, run_in_transaction, a snapshot read", () =>
    Effect.gen(function*() {
      const result = yield* spanner.bankTransfers
      assert.deepStrictEqual(result, { ...expected, opened: 4, labels: { app: "bank" } })
    }))

  it.live("pair 2: get(timeout) and put: SessionPoolEmpty and PoolFull, the messages the page quotes", () =>
    Effect.gen(function*() {
      const result = yield* spanner.getAndPut
      assert.deepStrictEqual(result.empty, {
        tag: "SessionPoolEmpty",
        message: "Session pool \"bank\" (fixed): no session available within 100 ms " +
          "(Pool \"bank\": checkout timed out after 100 ms (open 1/1, in use 1, idle 0, opening 0, waiting 1))"
      })
      assert.deepStrictEqual(result.full, { tag: "PoolFull", reason: "ReturnedTwice" })
      assert.isTrue(result.sameSession)
    }))

  it.effect("pair 3: PingingPool's ping() on a schedule replaces a session dropped while idle", () =>
    Effect.gen(function*() {
      assert.deepStrictEqual(yield* spanner.pinging, { droppedClosed: true, open: 2, closedBy: { rejected: 1 } })
    }))
})

describe("migration: tarn (before and after)", () => {
  it.live("pair 1: the same transfers on pooled SQLite handles, the same balances", () =>
    Effect.gen(function*() {
      const before = yield* Effect.promise(tarnBefore.bankTransfers)
      assert.deepStrictEqual(before, expected)
      assert.deepStrictEqual(yield* tarnAfter.bankTransfers, before)
    }))

  it.live("pair 2: validate: a handle closed while idle is replaced", () =>
    Effect.gen(function*() {
      const before = yield* Effect.promise(tarnBefore.validation)
      const after = yield* tarnAfter.validation
      assert.deepStrictEqual(before, { fresh: true, replaced: true })
      assert.deepStrictEqual(after.result, before)
      assert.deepStrictEqual(after.closedBy, { rejected: 1 })
    }))

  it.live("pair 3: a database that cannot be opened: a TimeoutError after the retries, or the error at once", () =>
    Effect.gen(function*() {
      const before = yield* Effect.promise(tarnBefore.unreachable)
      const after = yield* tarnAfter.unreachable
      assert.deepStrictEqual(before, {
        timedOut: true,
        message: "Cannot open database because the directory does not exist"
      })
      assert.deepStrictEqual(after, {
        tag: "SqliteError",
        message: "SQLite connect: ConnectFailed: Cannot open database because the directory does not exist"
      })
    }))
})

describe("migration: generic-pool (before and after)", () => {
  it.live("pair 1: the same lines rendered; generic-pool opened a second sandbox, the pool needed one", () =>
    Effect.gen(function*() {
      const before = yield* Effect.promise(genericPoolBefore.renderAll)
      const after = yield* genericPoolAfter.renderAll
      assert.deepStrictEqual(
        before.lines,
        genericPoolBefore.invoices.map(([who, cents]) => `${who}: ${(cents / 100).toFixed(2)} EUR`)
      )
      assert.deepStrictEqual(after.lines, before.lines)
      assert.deepStrictEqual([before.created, after.created], [2, 1])
    }))

  it.live("pair 2: a broken sandbox is destroyed (invalidated) and replaced", () =>
    Effect.gen(function*() {
      const before = yield* Effect.promise(genericPoolBefore.destroyBroken)
      assert.deepStrictEqual(before, { replaced: true, line: "ada: 12.50 EUR" })
      assert.deepStrictEqual(yield* genericPoolAfter.destroyBroken, before)
    }))

  it.live("pair 3: a failing factory: retried until the acquire times out, or its error at once", () =>
    Effect.gen(function*() {
      const before = yield* Effect.promise(genericPoolBefore.failingFactory)
      const after = yield* genericPoolAfter.failingFactory
      assert.deepStrictEqual([before.name, before.message], ["TimeoutError", "ResourceRequest timed out"])
      assert.isAbove(before.attempts, 1)
      assert.deepStrictEqual(after, { name: "SandboxFailed", message: "sandbox failed to start", attempts: 1 })
    }))
})

describe("migration: Effect's Pool (before and after)", () => {
  it.live("pair 1: a fixed pool, the same replies", () =>
    Effect.gen(function*() {
      const before = yield* effectPoolBefore.sendAll
      assert.deepStrictEqual(before, { replies: ["A", "B", "C", "D", "E", "F"], opened: 3 })
      assert.deepStrictEqual(yield* effectPoolAfter.sendAll, before)
    }))

  it.effect("pair 2: grows to 4 under load, back to 1 after a minute idle", () =>
    Effect.gen(function*() {
      const before = yield* effectPoolBefore.growAndShrink
      assert.deepStrictEqual(before, { atPeak: 4, afterIdle: 1 })
      assert.deepStrictEqual(yield* effectPoolAfter.growAndShrink, before)
    }))

  it.live("pair 3: invalidate", () =>
    Effect.gen(function*() {
      assert.deepStrictEqual(yield* effectPoolBefore.invalidate, { replaced: true })
      assert.deepStrictEqual(yield* effectPoolAfter.invalidate, { replaced: true })
    }))

  it.effect("pair 4: a bounded wait: Effect.timeout around the checkout, or the pool's timeout, with the message the page quotes", () =>
    Effect.gen(function*() {
      assert.deepStrictEqual(yield* effectPoolBefore.boundedWait, { timedOut: true })
      assert.deepStrictEqual(yield* effectPoolAfter.boundedWait, {
        timedOut: true,
        error: "Pool \"channels\": checkout timed out after 5000 ms (open 1/1, in use 1, idle 0, opening 0, waiting 1)"
      })
    }))
})

layer(postgresLayer, { excludeTestServices: true, timeout: "60 seconds" })("migration on PostgreSQL 15", (it) => {
  it.effect("pg-pool pair 1–2: the same transfers, the same balances", () =>
    Effect.gen(function*() {
      const server = yield* Postgres
      const before = yield* Effect.promise(() => pgPoolBefore.bankTransfers(server.url))
      const after = yield* pgPoolAfter.bankTransfers(server.url)
      assert.deepStrictEqual(before, expected)
      assert.deepStrictEqual(after, before)
    }))

  it.effect("pg-pool pair 3: a checkout past its timeout fails on both sides, with the messages the page quotes", () =>
    Effect.gen(function*() {
      const server = yield* Postgres
      const before = yield* Effect.promise(() => pgPoolBefore.checkoutTimeout(server.url))
      const after = yield* pgPoolAfter.checkoutTimeout(server.url)
      assert.strictEqual(before.message, "timeout exceeded when trying to connect")
      assert.strictEqual(
        after.message,
        "Pool \"bank\": checkout timed out after 200 ms (open 1/1, in use 1, idle 0, opening 0, waiting 1)"
      )
    }))

  it.effect("pg-pool pair 4: a session the server ends: the failure, then a fresh connection", () =>
    Effect.gen(function*() {
      const server = yield* Postgres
      const before = yield* Effect.promise(() => pgPoolBefore.lostConnection(server.url))
      const after = yield* pgPoolAfter.lostConnection(server.url)
      assert.deepStrictEqual(before, { failed: true, recovered: true })
      assert.deepStrictEqual(after.result, before)
      assert.deepStrictEqual(after.closedBy, { invalidated: 1 })
    }))

  it.effect("pg-pool: a client released twice throws the message the page quotes", () =>
    Effect.gen(function*() {
      const server = yield* Postgres
      const message = yield* Effect.promise(async () => {
        const pool = new pg.Pool({ connectionString: server.url, max: 1 })
        const client = await pool.connect()
        client.release()
        try {
          client.release()
          return "no error"
        } catch (error) {
          return (error as Error).message
        } finally {
          await pool.end()
        }
      })
      assert.strictEqual(message, "Release called on client which has already been released to the pool.")
    }))

  it.effect("@effect/sql-pg pair 1: the same program on both layers, the same balances", () =>
    Effect.gen(function*() {
      const server = yield* Postgres
      const before = yield* Effect.provide(sqlPgBefore.bankTransfers, sqlPgBefore.SqlLive(server.url))
      const after = yield* Effect.provide(sqlPgBefore.bankTransfers, sqlPgAfter.SqlLive(server.url))
      assert.deepStrictEqual(before, expected)
      assert.deepStrictEqual(after, before)
    }))

  it.effect("@effect/sql-pg pair 2: the options from the environment", () =>
    Effect.gen(function*() {
      const server = yield* Postgres
      const env = ConfigProvider.fromMap(new Map([["DATABASE_URL", server.url], ["POOL_SIZE", "3"]]))
      const counts = yield* Effect.all([
        Effect.provide(sqlPgBefore.countAccounts, sqlPgBefore.SqlFromConfig),
        Effect.provide(sqlPgBefore.countAccounts, sqlPgAfter.SqlFromConfig),
        Effect.provide(sqlPgBefore.countAccounts, sqlPgAfter.SqlFromOwnConfig)
      ]).pipe(Effect.withConfigProvider(env))
      assert.deepStrictEqual(counts, [3, 3, 3])
    }))

  it.effect("@effect/sql-pg pair 3: a statement waiting for the only connection fails on both sides", () =>
    Effect.gen(function*() {
      const server = yield* Postgres
      const before = yield* Effect.provide(sqlPgBefore.waitForAConnection, sqlPgBefore.OneConnection(server.url))
      const after = yield* Effect.provide(sqlPgBefore.waitForAConnection, sqlPgAfter.OneConnection(server.url))
      assert.isTrue(Either.isLeft(before) && Either.isLeft(after))
      if (Either.isLeft(before) && Either.isLeft(after)) {
        assert.strictEqual(before.left.message, "Failed to acquire connection")
        assert.strictEqual((before.left.cause as Error).message, "timeout exceeded when trying to connect")
        assert.strictEqual(
          after.left.message,
          "Failed to acquire connection: Pool \"sql-pg\": checkout timed out after 500 ms " +
            "(open 1/1, in use 1, idle 0, opening 0, waiting 1)"
        )
        assert.strictEqual((after.left.cause as { readonly _tag: string })._tag, "PoolTimeoutError")
      }
    }))
})
