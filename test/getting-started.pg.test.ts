/**
 * docs/getting-started.md and the README's example on a real PostgreSQL 15: the examples whose output the pages show,
 * run as a reader runs them (`npx tsx examples/x.ts` with `DATABASE_URL`), the Accounts program over a PoolLayer over
 * `Pg.layerConfig()`, and the `SqlClient` service on its production layer, which gives what it gives on SQLite.
 */
import { assert, layer } from "@effect/vitest"
import { ConfigProvider, Effect, Schedule } from "effect"
import { execFile } from "node:child_process"
import * as path from "node:path"
import * as accountsPg from "../examples/getting-started/accounts-pg.js"
import * as accountsSql from "../examples/getting-started/accounts-sql.js"
import * as quickstart from "../examples/quickstart.js"
import { blocks, pages } from "./utils/markdown.js"
import { layer as postgresLayer, Postgres } from "./utils/postgres.js"

const root = path.join(import.meta.dirname, "..")

const expected = {
  balances: [{ id: "alice", balance: 70 }, { id: "bob", balance: 30 }],
  refused: "InsufficientFunds"
} as const

layer(postgresLayer, { excludeTestServices: true, timeout: "120 seconds" })("getting started (PostgreSQL 15)", (it) => {
  it.effect("each page's PostgreSQL output block is what its example prints, run as a reader runs it", () =>
    Effect.gen(function*() {
      const server = yield* Postgres
      // blocks marked <!-- output_pg: examples/x.ts -->: `npx tsx examples/x.ts` with DATABASE_URL set
      const printed = pages().flatMap(blocks).filter((block) => block.marker?.kind === "output_pg")
      assert.includeMembers(
        printed.map((block) => `${block.page} ${block.marker!.file}`),
        ["README.md examples/quickstart.ts", "docs/getting-started.md examples/getting-started/accounts-pg.ts"]
      )
      for (const block of printed) {
        const output = yield* Effect.async<{ code: number; stdout: string; stderr: string }>((resume) => {
          execFile(
            path.join(root, "node_modules", ".bin", "tsx"),
            [block.marker!.file],
            { cwd: root, env: { ...process.env, DATABASE_URL: server.url }, timeout: 60_000 },
            (error, stdout, stderr) => resume(Effect.succeed({ code: error === null ? 0 : 1, stdout, stderr }))
          )
        })
        assert.strictEqual(output.code, 0, output.stderr)
        assert.strictEqual(
          output.stdout,
          block.code,
          `${block.page}:${block.line} is what ${block.marker!.file} prints`
        )
      }
    }))

  it.effect("the quickstart's Layer and program, imported", () =>
    Effect.gen(function*() {
      const server = yield* Postgres
      const result = yield* Effect.provide(quickstart.program, quickstart.DbLive).pipe(
        Effect.withConfigProvider(ConfigProvider.fromMap(new Map([["DATABASE_URL", server.url]])))
      )
      assert.isUndefined(result)
    }))

  it.effect("Accounts over a PoolLayer over Pg.layerConfig(); its sessions close with the layer", () =>
    Effect.gen(function*() {
      const server = yield* Postgres
      const withUrl = Effect.withConfigProvider(ConfigProvider.fromMap(new Map([["DATABASE_URL", server.url]])))
      assert.deepStrictEqual(yield* Effect.provide(accountsPg.program, accountsPg.MainLive).pipe(withUrl), expected)
      const left = yield* server.query(
        "SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'accounts'"
      ).pipe(
        Effect.map((rows) => rows[0]!["n"] as number),
        Effect.filterOrFail((n) => n === 0),
        Effect.retry(Schedule.spaced("50 millis").pipe(Schedule.upTo("10 seconds"))),
        Effect.orElseSucceed(() => -1)
      )
      assert.strictEqual(left, 0)
    }))

  it.effect("the SqlClient service on its production layer gives what it gives on SQLite", () =>
    Effect.gen(function*() {
      const server = yield* Postgres
      const result = yield* Effect.provide(accountsSql.program, accountsSql.MainLive).pipe(
        Effect.withConfigProvider(ConfigProvider.fromMap(new Map([["DATABASE_URL", server.url]])))
      )
      assert.deepStrictEqual(result, expected)
    }))
})
