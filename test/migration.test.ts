/**
 * The migration guides' code (docs/migration/): every "after" program runs and answers what its page says, every
 * TypeScript "before" program runs next to its "after" and computes the same result, and every message a page quotes
 * is asserted here. The pg-pool and @effect/sql-pg pairs run on a throwaway PostgreSQL 15 cluster.
 */
import { assert, describe, it, layer } from "@effect/vitest"
import { Effect } from "effect"
import pg from "pg"
import * as bank from "../examples/migration/bank.js"
import * as pgPoolAfter from "../examples/migration/pg-pool.after.js"
import * as pgPoolBefore from "../examples/migration/pg-pool.before.js"
import * as spanner from "../examples/migration/spanner.js"
import * as sqlalchemy from "../examples/migration/sqlalchemy.js"
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
})
