/**
 * docs/operating.md's shutdown on SIGTERM: the example runs as its own process under `NodeRuntime.runMain`, is sent
 * SIGTERM once it serves, and must show the pool's graceful and forceful shutdown and exit with code 0, printing the
 * lines docs/operating.md shows.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as shutdownSigterm from "../../examples/operating/shutdown-sigterm.js"
import { blocks } from "../utils/markdown.js"
import { expectedLines } from "./shutdown.expected.js"
import { run } from "./subprocess.js"

describe("shutdown on SIGTERM", () => {
  it.live("on the Memory database: in-flight work finishes or is interrupted, every connection closes, exit 0", () =>
    Effect.gen(function*() {
      const child = run("examples/operating/shutdown-sigterm.ts", { DATABASE_URL: "" })
      yield* Effect.promise(() => child.waitFor("serving:"))
      child.kill("SIGTERM")
      const { code, signal, stderr, stdout } = yield* Effect.promise(() => child.finished)
      assert.deepStrictEqual([code, signal], [0, null], stdout + stderr)
      const lines = stdout.trim().split("\n")
      for (const line of expectedLines) assert.include(lines, line, stdout)
      assert.include(
        lines,
        `pool closed: opened 4, closed 4 {"shutdown":4}, open 0; pool "${shutdownSigterm.poolName}" is closed`,
        stdout
      )
      assert.include(
        lines,
        "report: its connection was closed under it: MemoryError: connection 4: server closed the connection unexpectedly",
        stdout
      )
      assert.strictEqual(lines.at(-1), "server: open 0, closed 4")
      assert.strictEqual(stderr, "")

      // docs/operating.md shows this run: the same lines, the first and the last in place, the others in any order
      const shown = blocks("docs/operating.md").filter((block) =>
        block.tag === "text" && block.code.startsWith("serving: ")
      )
      assert.strictEqual(shown.length, 1)
      const page = shown[0]!.code.trimEnd().split("\n")
      assert.deepStrictEqual([page[0], page.at(-1)], [lines[0], lines.at(-1)])
      assert.deepStrictEqual([...page].sort(), [...lines].sort(), stdout)
    }))
})
