/**
 * The Memory driver honours query parameters: PostgreSQL's `$n` and SQLite's `?` placeholders are checked against
 * the parameters given, the parameters are recorded with each statement (so a test asserts them instead of inlining
 * values into SQL), and `respond` answers reads from them.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Memory from "../../src/Driver/Memory.js"
import * as Pool from "../../src/Pool.js"

describe("Memory driver: query parameters", () => {
  it.effect("records each statement with its parameters, committed with its transaction", () =>
    Effect.gen(function*() {
      const db = yield* Memory.make()
      const pool = yield* Pool.make({ driver: db.driver, size: 1, policies: [] })
      yield* Pool.query(pool, "INSERT INTO accounts VALUES ($1, $2)", [1, 100])
      yield* Pool.transaction(pool, (c) => db.driver.query(c, "UPDATE accounts SET balance = ? WHERE id = ?", [90, 1]))
      yield* Effect.either(
        Pool.transaction(pool, (c) =>
          Effect.zipRight(db.driver.query(c, "UPDATE accounts SET balance = $1", [0]), Effect.fail("no")))
      )
      assert.deepStrictEqual(yield* db.committedStatements, [
        { sql: "INSERT INTO accounts VALUES ($1, $2)", params: [1, 100], connection: 1 },
        { sql: "UPDATE accounts SET balance = ? WHERE id = ?", params: [90, 1], connection: 1 }
      ])
      assert.deepStrictEqual(yield* db.committed, [
        "INSERT INTO accounts VALUES ($1, $2)",
        "UPDATE accounts SET balance = ? WHERE id = ?"
      ])
      const [connection] = yield* db.connections
      assert.deepStrictEqual(
        connection!.log.map((s) =>
          s.params
        ),
        [[1, 100], [], [90, 1], [], [], [0], []]
      )
    }).pipe(Effect.scoped))

  it.effect("placeholders that do not match the parameters fail the statement, as a server would", () =>
    Effect.gen(function*() {
      const db = yield* Memory.make()
      const pool = yield* Pool.make({ driver: db.driver, size: 1, policies: [] })
      const message = (sql: string, params?: ReadonlyArray<unknown>) =>
        Effect.map(Effect.flip(Pool.query(pool, sql, params)), (e) => (e as Memory.MemoryError).message)
      assert.strictEqual(
        yield* message("SELECT $1, $2", [1]),
        "statement requires 2 parameters but was given 1: SELECT $1, $2"
      )
      assert.strictEqual(
        yield* message("SELECT ?", [1, 2]),
        "statement has 1 ? placeholder but was given 2 parameters: SELECT ?"
      )
      assert.strictEqual(yield* message("SELECT $2", [1, 2]), "statement does not use $1: SELECT $2")
      assert.strictEqual(yield* message("SELECT $1, ?", [1]), "statement mixes $n and ? placeholders: SELECT $1, ?")
      assert.strictEqual(
        yield* message("SELECT 'x'", [1]),
        "statement requires 0 parameters but was given 1: SELECT 'x'"
      )
      // a repeated number and a placeholder inside a string literal are what a server accepts
      assert.deepStrictEqual(yield* Pool.query(pool, "SELECT $1, $1, '$2?'", ["a"]), [])
      assert.deepStrictEqual((yield* db.stats).queries, 6)
      assert.deepStrictEqual(yield* db.committed, ["SELECT $1, $1, '$2?'"])
    }).pipe(Effect.scoped))

  it.effect("respond answers reads from the statement and its parameters", () =>
    Effect.gen(function*() {
      const balances = new Map([[1, 100], [2, 50]])
      const db = yield* Memory.make({
        respond: ({ params, sql }) =>
          sql.startsWith("SELECT balance") ? [{ balance: balances.get(params[0] as number) ?? null }] : undefined
      })
      const pool = yield* Pool.make({ driver: db.driver, size: 1, policies: [] })
      assert.deepStrictEqual(yield* Pool.query(pool, "SELECT balance FROM accounts WHERE id = $1", [2]), [
        { balance: 50 }
      ])
      // anything it does not answer keeps the built-in behaviour
      assert.deepStrictEqual(yield* Pool.query(pool, "SELECT 1"), [{ "?column?": 1 }])
      assert.deepStrictEqual(yield* Pool.query(pool, "DELETE FROM accounts"), [])
    }).pipe(Effect.scoped))
})
