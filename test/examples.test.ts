/**
 * Runs every example in `examples/` (except the quickstart, which is `npm start`), so the code the docs quote is
 * checked in CI: each must succeed, and a few of its outputs are asserted.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import * as config from "../examples/config.js"
import * as customPolicy from "../examples/custom-policy.js"
import * as errors from "../examples/errors.js"
import * as events from "../examples/events.js"
import * as interaction from "../examples/interaction.js"
import * as layers from "../examples/layers.js"
import * as leases from "../examples/leases.js"
import * as policies from "../examples/policies.js"
import * as policyBreaker from "../examples/policy-breaker.js"
import * as policyHealth from "../examples/policy-health.js"
import * as policyLeaks from "../examples/policy-leaks.js"
import * as policyLifetime from "../examples/policy-lifetime.js"
import * as policyReset from "../examples/policy-reset.js"
import * as poolBasics from "../examples/pool-basics.js"
import * as poolKinds from "../examples/pool-kinds.js"
import * as sessionPool from "../examples/session-pool.js"
import * as shutdown from "../examples/shutdown.js"
import * as sql from "../examples/sql.js"
import * as statefulPolicy from "../examples/stateful-policy.js"
import * as testingParams from "../examples/testing-params.js"
import * as testingWithMemory from "../examples/testing-with-memory.js"
import * as timeouts from "../examples/timeouts.js"
import * as Memory from "../src/Driver/Memory.js"

/** An example's source with its imports of `src/` written as an application writes them, from the package. */
const asPackage = (source: string) =>
  source.replace(
    /"(?:\.\.\/)+src\/([\w/]+)\.js"/g,
    (_, module: string) => module === "index" ? "\"effect-reservoir\"" : `"effect-reservoir/${module}"`
  )

describe("examples", () => {
  it.live("pool-basics: use, get, transaction, status and stats", () =>
    Effect.gen(function*() {
      const result = yield* poolBasics.program
      assert.deepStrictEqual(result.rows, [{ "?column?": 1 }])
      assert.strictEqual(result.failed, "Left")
      assert.deepStrictEqual(result.committed, ["INSERT INTO orders VALUES (1)"])
      assert.strictEqual(
        result.status,
        "Pool size: 2  Connections in pool: 1 Current Overflow: -1 Current Checked out connections: 0"
      )
      assert.deepStrictEqual(result.stats, { open: 1, idle: 1, checkouts: 4, opened: 1 })
    }))

  it.live("leases: checkin refusals, invalidate, invalidateAll, detach and dispose", () =>
    Effect.gen(function*() {
      const result = yield* leases.program
      assert.strictEqual(result.twice, "ReturnedTwice")
      assert.strictEqual(result.foreign, "Foreign")
      assert.isTrue(result.hard.closedAtOnce)
      assert.deepStrictEqual([result.soft.closedAtOnce, result.soft.closedOnReturn], [false, true])
      assert.strictEqual(result.freshGeneration, 1)
      assert.deepStrictEqual(result.detached, { openWhileOwned: true, closedWithOwner: true })
      assert.deepStrictEqual(result.closedBy, { invalidated: 2, stale: 1, disposed: 1 })
      assert.deepStrictEqual([result.open, result.detachedCount], [0, 1])
    }))

  it.effect("timeouts: FIFO hand-off, PoolTimeoutError with stats and the last connect failure", () =>
    Effect.gen(function*() {
      const result = yield* timeouts.program
      assert.deepStrictEqual(result.order, ["a", "b", "c"])
      assert.strictEqual(result.timedOut.tag, "PoolTimeoutError")
      assert.include(result.timedOut.message, "in use 1, idle 0, opening 0, waiting 1")
      assert.strictEqual(result.connectError, "MemoryError")
      assert.include(result.timeoutWithCause, "last connect failure: MemoryError: connect failed (fault plan)")
    }))

  it.live("layers: two pools side by side and one configured through Config", () =>
    Effect.gen(function*() {
      const result = yield* layers.program
      assert.include(result.primary, "Pool size: 5")
      assert.include(result.replica, "Pool size: 2")
      assert.deepStrictEqual([result.reports.size, result.reports.timeout, result.reports.order], [3, 5000, "fifo"])
      assert.strictEqual(result.openAfterwards, 0)
    }))

  it.live("config: decode from JSON, encode back, recreate, PoolConfigError", () =>
    Effect.gen(function*() {
      const result = yield* config.program
      assert.strictEqual(result.encoded.maxOverflow, "unbounded")
      assert.strictEqual(result.encoded.timeout, 5000)
      assert.strictEqual(result.encoded.order, "lifo")
      assert.isTrue(result.sameConfig)
      assert.deepStrictEqual(result.invalid, ["min: Expected at most size (2), got 3"])
      assert.include(result.malformed, "size: Expected an integer of 0 or more, got -1")
      assert.include(result.malformed, "order: Expected \"fifo\" or \"lifo\", got \"random\"")
    }))

  it.effect("shutdown: waiters and new checkouts fail, lent connections close on return or at the deadline", () =>
    Effect.gen(function*() {
      const result = yield* shutdown.program
      assert.deepStrictEqual([result.waiterError, result.newCheckout], ["PoolClosedError", "PoolClosedError"])
      assert.deepStrictEqual([result.openWhileDraining, result.openAfterReturn], [2, 1])
      assert.deepStrictEqual(result.closedBy, { shutdown: 2 })
      assert.deepStrictEqual(result.server, { open: 0, closed: 2, closedTwice: 0 })
      assert.isTrue(result.keptIsClosed)
    }))

  it.effect("policies: the built-ins", () =>
    Effect.gen(function*() {
      const result = yield* policies.program
      assert.strictEqual(result.timezone, "UTC")
      assert.strictEqual(result.idleInTransaction, 0)
      assert.deepStrictEqual(result.afterRestart, [{ "?column?": 1 }])
      assert.notStrictEqual(result.recycled.before, result.recycled.after)
      assert.deepStrictEqual(result.maxUses, [1, 1, 2])
      assert.deepStrictEqual(result.closedBy, { rejected: 1, expired: 1 })
      assert.strictEqual(result.generation, 1)
    }))

  it.effect("policy-lifetime: recycle spread, maxUses, lifetime(schedule) and idleTimeout", () =>
    Effect.gen(function*() {
      const result = yield* policyLifetime.program
      assert.strictEqual(result.recycle.closedBy.expired, 4)
      assert.strictEqual(new Set(result.recycle.expiredAt).size, 4, "the four expire at four different times")
      assert.deepStrictEqual(result.maxUses.ids, [1, 1, 2, 2, 3])
      assert.deepStrictEqual(result.lifetime.byUses, [1, 1, 1, 2])
      assert.strictEqual(result.lifetime.byAge, 3)
      assert.deepStrictEqual(result.idleTimeout, { afterBurst: 5, afterAMinute: 2, closedBy: { idle: 3 } })
    }))

  it.effect("policy-health: prePing, keepalive with its ping command, firstConnect and livenessQuery", () =>
    Effect.gen(function*() {
      const result = yield* policyHealth.program
      assert.strictEqual(result.serverVersion, "memory 1.0")
      assert.deepStrictEqual(result.afterRestart, [{ "?column?": 1 }])
      assert.strictEqual(result.generation, 1)
      assert.isTrue(result.replacedBySchedule)
      assert.isTrue(result.replacedByCommand)
      assert.isTrue(result.allAlive)
      assert.strictEqual(result.open, 3)
    }))

  it.effect("policy-reset: resetOnReturn modes, a hanging reset, prepareOnReturn with pending", () =>
    Effect.gen(function*() {
      const result = yield* policyReset.program
      assert.deepStrictEqual(result.committed, ["INSERT INTO orders VALUES (1)"])
      assert.deepStrictEqual(result.resets, ["commit", "commit"])
      assert.deepStrictEqual(result.afterHang, { closedBy: { resetFailed: 1 }, open: 0 })
      assert.strictEqual(result.prepare.begun, 2)
      assert.isTrue(result.prepare.lentInTransaction)
      assert.strictEqual(result.prepare.neverCommitted, 0)
    }))

  it.effect("policy-breaker: opens after failed connects, fails fast, probes and closes", () =>
    Effect.gen(function*() {
      const result = yield* policyBreaker.program
      assert.strictEqual(result.opened, "open")
      assert.strictEqual(result.refused.tag, "PoolUnavailableError")
      assert.include(result.refused.message, "the server is down")
      assert.strictEqual(result.closed, "closed")
      assert.deepStrictEqual(result.transitions.map((t) => t.split(" ")[0]), ["open", "halfOpen", "closed"])
    }))

  it.effect("policy-leaks: Leak and Unleaked events, the leaks command, reclaim", () =>
    Effect.gen(function*() {
      const result = yield* policyLeaks.program
      assert.strictEqual(result.reported.length, 2)
      assert.include(result.reported[0]!, "from span nightly-report")
      assert.include(result.reported[1]!, "Unleaked after")
      assert.deepStrictEqual(result.reclaimed.slice(1), ["Close (reclaimed)", "Unleaked after 5000 ms"])
      assert.isTrue(result.holderInterrupted)
      assert.deepStrictEqual(result.closedBy, { reclaimed: 1 })
    }))

  it.effect("interaction: Twisted's ConnectionPool over the one core", () =>
    Effect.gen(function*() {
      const r = yield* interaction.program
      assert.deepStrictEqual(r.committed, [
        "INSERT INTO orders VALUES (1)",
        "INSERT INTO order_lines VALUES (1, 'tea')",
        "INSERT INTO orders VALUES (3)",
        "INSERT INTO orders VALUES (4)"
      ])
      assert.strictEqual(r.failed, "out of stock")
      assert.deepStrictEqual(r.timezone, [{ timezone: "UTC" }])
      assert.deepStrictEqual(r.lost, { tag: "ConnectionLost", retryable: true, retried: "retried" })
      assert.strictEqual(r.unknown, "CommitOutcomeUnknown")
      assert.isTrue(r.manualClosed)
      assert.isTrue(r.sameConfig)
      assert.deepStrictEqual(r.json.cp_openfun, ["SET timezone = 'UTC'"])
    }))

  it.effect("session-pool: Spanner's four session pools", () =>
    Effect.gen(function*() {
      const r = yield* sessionPool.program
      assert.deepStrictEqual(r.fixed, {
        prefilled: 2,
        empty: "SessionPoolEmpty",
        full: "ReturnedTwice",
        unchanged: true,
        labels: { app: "shop" }
      })
      assert.deepStrictEqual(r.bursty, { openAtPeak: 4, openAfter: 2 })
      assert.isTrue(r.pinging.replaced)
      assert.deepStrictEqual(r.transactionPinging, { lentInTransaction: true, pending: 1, begun: 1, neverCommitted: 0 })
      assert.deepStrictEqual(r.clear, { closed: 2, open: 2 })
    }))

  it.effect("pool-kinds: null, static, per-fiber and assertion pools", () =>
    Effect.gen(function*() {
      const r = yield* poolKinds.program
      assert.strictEqual(new Set(r.nullIds).size, 2)
      assert.strictEqual(r.nullOpen, 0)
      assert.strictEqual(new Set(r.staticIds).size, 1)
      assert.strictEqual(r.perFiber.mine[0], r.perFiber.mine[1])
      assert.notStrictEqual(r.perFiber.theirs, r.perFiber.mine[0])
      assert.strictEqual(r.assertion, "PoolAssertionError")
      assert.strictEqual(r.recreated, "static")
      assert.strictEqual(
        r.status,
        "Pool size: 0  Connections in pool: 0 Current Overflow: 1 Current Checked out connections: 1"
      )
    }))

  it.effect("custom-policy: a keepalive, an onReturn check, and hook order", () =>
    Effect.gen(function*() {
      const result = yield* customPolicy.program
      assert.deepStrictEqual(result.trace.slice(0, 4), [
        "first.onCheckout",
        "second.onCheckout",
        "first.onReturn",
        "second.onReturn"
      ])
      assert.strictEqual(result.resetFailed, 1)
      assert.deepStrictEqual(result.closedBy, { resetFailed: 1, rejected: 1, stale: 1 })
      assert.strictEqual(result.generation, 1)
      assert.strictEqual(result.open, 2)
      assert.notInclude(result.openOnServer, result.victim)
    }))

  it.effect("stateful-policy: one instance per pool, its commands, and its connectBackoff", () =>
    Effect.gen(function*() {
      const result = yield* statefulPolicy.program
      assert.strictEqual(result.refused, "MemoryError")
      assert.deepStrictEqual([result.backingOff, result.servedEarly, result.backingOffAfter], [true, false, false])
      assert.deepStrictEqual(result.orders, { attempts: 2, failures: 1 })
      assert.deepStrictEqual(result.reports, { attempts: 1, failures: 0 })
      assert.include(result.notInstalled, "the pool was not made with that policy")
    }))

  it.live("events: stream, listeners, metrics, spans and echo logging", () =>
    Effect.gen(function*() {
      const result = yield* events.observed
      assert.strictEqual(result.servedBy, 2)
      assert.deepStrictEqual(result.events, [
        "FirstConnect #1",
        "Connect #1",
        "Checkout #1",
        // the default policies reset every return (a rollback: nothing to end here, so nothing is sent)
        "Reset #1",
        "Checkin #1",
        // the stream hears the checkout the listener rejects, as the listeners do
        "Checkout #1",
        "Close #1",
        "Connect #2",
        "Checkout #2",
        "Reset #2",
        "Checkin #2"
      ])
      assert.deepStrictEqual(result.seen, ["closed #1 (rejected)"])
      assert.include(result.metrics, "db.client.connection.count db.client.connection.state=idle")
      assert.include(result.metrics, "db.client.connection.closes reason=rejected")
      assert.include(result.metrics, "db.client.connection.create_time")
      assert.deepStrictEqual(result.spans, [
        "db.client.connection.create",
        "db.client.connection.wait",
        "db.client.connection.create",
        "db.client.connection.wait"
      ])
      assert.deepStrictEqual(result.logs.slice(0, 3), [
        "INFO connect #1",
        "INFO close (rejected) #1",
        "INFO connect #2"
      ])
    }))

  it.effect("testing-params: statements are asserted with their parameters; a placeholder mismatch fails", () =>
    Effect.gen(function*() {
      const result = yield* testingParams.program
      assert.deepStrictEqual(result, {
        committed: [
          "SELECT balance FROM accounts WHERE id = $1 [1]",
          "UPDATE accounts SET balance = balance - $1 WHERE id = $2 [30,1]",
          "UPDATE accounts SET balance = balance + $1 WHERE id = $2 [30,2]"
        ],
        refused: "insufficient funds",
        mismatch: "statement requires 2 parameters but was given 1: SELECT $1, $2"
      })
    }))

  it.effect("testing-with-memory: every fault reaches the service as documented", () =>
    Effect.gen(function*() {
      const { committed, results, server } = yield* testingWithMemory.program
      assert.deepStrictEqual(results, {
        failNextConnects: "MemoryError",
        hangNextConnects: "PoolTimeoutError (connect)",
        setLatency: "ok",
        failNextQueries: "MemoryError",
        kill: "ok",
        disconnect: "ok",
        restartWhileDown: "MemoryError",
        restartAfter: "ok",
        down: "MemoryError",
        up: "ok",
        failureRate: "ok"
      })
      assert.strictEqual(committed.length, 6)
      assert.deepStrictEqual([server.closedTwice, server.inTransaction], [0, 0])
    }))

  it.effect("testing-with-memory: the ledger property over sampled fault plans", () =>
    Effect.forEach(
      testingWithMemory.sampledPlans,
      (plan) =>
        Effect.map(testingWithMemory.ledgerProperty(plan), (result) => {
          assert.deepStrictEqual([...result.committed].sort(), [...result.succeeded].sort())
          assert.deepStrictEqual([result.inTransaction, result.openAfterClose, result.closedTwice], [0, 0, 0])
        })
    ))

  it.effect("errors: every error class, provoked", () =>
    Effect.gen(function*() {
      const result = yield* errors.program
      assert.deepStrictEqual(Object.keys(result.seen), [
        "PoolConfigError",
        "MemoryError",
        "PoolExhaustedError",
        "PoolTimeoutError",
        "PoolUsageError",
        "PoolCheckoutRejectedError",
        "PoolClosedError"
      ])
      assert.strictEqual(result.seen.PoolUsageError, "ReturnedTwice (checkin), Foreign (invalidate), NotLent (detach)")
      assert.deepStrictEqual(result.isPoolError, [true, false])
      assert.strictEqual(result.handled, "the pool is closed")
    }))

  it.live("sql: an @effect/sql program moved from @effect/sql-sqlite-node by one Layer", () =>
    Effect.gen(function*() {
      const result = yield* sql.program
      assert.deepStrictEqual(result.before, ["tea", "milk", "sugar"])
      assert.deepStrictEqual(result.after, result.before)
      assert.deepStrictEqual(result.extras, { open: 1, counted: { rows: 10000, batches: 79 } })
    }))

  it("the docs quote every example verbatim, and every example is run by a test", () => {
    const root = path.join(import.meta.dirname, "..")
    const walk = (dir: string): Array<string> =>
      fs.readdirSync(path.join(root, dir), { withFileTypes: true }).flatMap((entry) =>
        entry.isDirectory() ? walk(path.join(dir, entry.name)) : [path.join(dir, entry.name)]
      )
    const quoted = new Set<string>()
    for (const doc of [...walk("docs").filter((f) => f.endsWith(".md")), "README.md"]) {
      const text = fs.readFileSync(path.join(root, doc), "utf8")
      for (const match of text.matchAll(/<!-- (example|excerpt): (\S+) -->\n```ts\n([\s\S]*?)```\n/g)) {
        const [, kind, file, code] = match
        const source = fs.readFileSync(path.join(root, file!), "utf8")
        // a page may show the imports an application writes (effect-reservoir/Pool for ../src/Pool.js)
        const quotedSource = code!.includes("\"effect-reservoir") ? asPackage(source) : source
        if (kind === "example") assert.strictEqual(code, quotedSource, `${doc} quotes ${file}`)
        else assert.include(quotedSource, code!, `${doc} quotes part of ${file}`)
        quoted.add(file!)
      }
    }
    const examples = walk("examples").filter((f) => f.endsWith(".ts"))
    const tests = walk("test").filter((f) => f.endsWith(".ts")).map((f) => ({
      file: f,
      text: fs.readFileSync(path.join(root, f), "utf8")
    }))
    for (const example of examples) {
      assert.isTrue(quoted.has(example), `${example} is quoted in docs/`)
      const runBy = tests.some(({ file, text }) =>
        text.includes(`"${path.relative(path.dirname(file), example).replace(/\.ts$/, ".js")}"`)
      )
      assert.isTrue(runBy, `${example} is imported by a test under test/`)
    }
  })

  // docs/testing.md quotes this test
  it.effect.prop(
    "every success is committed exactly once, whatever the faults",
    [Memory.arbitraries.faultPlan()],
    ([plan]) =>
      Effect.gen(function*() {
        const result = yield* testingWithMemory.ledgerProperty(plan)
        assert.deepStrictEqual([...result.committed].sort(), [...result.succeeded].sort())
        assert.strictEqual(result.inTransaction, 0)
        assert.strictEqual(result.openAfterClose, 0)
        assert.strictEqual(result.closedTwice, 0)
      }),
    { fastCheck: { numRuns: 50 } }
  )
})
