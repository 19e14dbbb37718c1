/**
 * docs/operating.md's shutdown on SIGTERM against a real PostgreSQL 15: the example's four sessions are in
 * `pg_stat_activity` while it serves, and none is left once it has exited with code 0.
 */
import { assert, layer } from "@effect/vitest"
import { Effect } from "effect"
import * as shutdownSigterm from "../../examples/operating/shutdown-sigterm.js"
import { layer as postgresLayer, Postgres } from "../utils/postgres.js"
import { expectedLines } from "./shutdown.expected.js"
import { run } from "./subprocess.js"

layer(postgresLayer, { excludeTestServices: true, timeout: "60 seconds" })(
  "shutdown on SIGTERM (PostgreSQL 15)",
  (it) => {
    it.effect("the pool's sessions are on the server while it serves and gone after exit 0", () =>
      Effect.gen(function*() {
        const server = yield* Postgres
        const child = run("examples/operating/shutdown-sigterm.ts", { DATABASE_URL: server.url })
        yield* Effect.promise(() => child.waitFor("serving:"))
        const serving = yield* server.sessions(shutdownSigterm.poolName)
        assert.strictEqual(serving.total, 4)
        child.kill("SIGTERM")
        const { code, signal, stderr, stdout } = yield* Effect.promise(() => child.finished)
        assert.deepStrictEqual([code, signal], [0, null], stdout + stderr)
        const lines = stdout.trim().split("\n")
        for (const line of expectedLines) assert.include(lines, line, stdout)
        assert.isTrue(lines.some((line) => line.startsWith("pool closed: opened 4, closed 4 ")), stdout)
        assert.isTrue(lines.some((line) => line.endsWith(", open 0; pool \"sigterm\" is closed")), stdout)
        assert.isTrue(
          lines.some((line) => line.startsWith("report: its connection was closed under it: PgError")),
          stdout
        )
        yield* server.awaitSessions(shutdownSigterm.poolName, (s) => s.total === 0)
      }))
  }
)
