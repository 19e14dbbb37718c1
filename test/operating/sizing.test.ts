/**
 * docs/sizing.md's signals of a pool too small for its load, against the Memory database under `TestClock`.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as sizingSignals from "../../examples/operating/sizing-signals.js"

describe("sizing signals", () => {
  it.effect("waiting, overflow, the PoolTimeoutError's counters, and the overflow connection closed afterwards", () =>
    Effect.gen(function*() {
      const result = yield* sizingSignals.program
      assert.deepStrictEqual(result, {
        underLoad: { open: 3, inUse: 3, idle: 0, waiting: 2, overflow: 1 },
        underLoadStatus: "Pool size: 2  Connections in pool: 0 Current Overflow: 1 Current Checked out connections: 3",
        timedOut:
          "Pool \"orders\": checkout timed out after 1000 ms (open 3/3, in use 3, idle 0, opening 0, waiting 3)",
        waitedMillis: [0, 0, 0, 2000, 2000],
        after: { open: 2, idle: 2, closedBy: { overflow: 1 }, timeouts: 1 },
        status: "Pool size: 2  Connections in pool: 2 Current Overflow: 0 Current Checked out connections: 0"
      })
    }))
})
