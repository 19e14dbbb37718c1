/**
 * docs/getting-started.md without a server: the SQLite program (a PoolLayer over the Sqlite driver's layer, an
 * `Accounts` service over it), and the `SqlClient` version of the service on SQLite in memory, the tests' layer.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as accountsSql from "../examples/getting-started/accounts-sql.js"
import * as accountsSqlite from "../examples/getting-started/accounts-sqlite.js"

const expected = {
  balances: [{ id: "alice", balance: 70 }, { id: "bob", balance: 30 }],
  refused: "InsufficientFunds"
} as const

describe("getting started", () => {
  it.live("on SQLite: Accounts over a PoolLayer over the Sqlite driver's layer; every connection closes with it", () =>
    Effect.gen(function*() {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "reservoir-getting-started-"))
      const filename = path.join(dir, "accounts.db")
      try {
        assert.deepStrictEqual(
          yield* Effect.provide(accountsSqlite.program, accountsSqlite.MainLive(filename)),
          expected
        )
        // run again: the service starts from a fresh table
        assert.deepStrictEqual(
          yield* Effect.provide(accountsSqlite.program, accountsSqlite.MainLive(filename)),
          expected
        )
      } finally {
        fs.rmSync(dir, { recursive: true, force: true })
      }
    }))

  it.live("the SqlClient service on the tests' layer, SQLite in memory", () =>
    Effect.gen(function*() {
      assert.deepStrictEqual(yield* Effect.provide(accountsSql.program, accountsSql.TestLive), expected)
    }))
})
