/**
 * A blackholed network under load, against a real PostgreSQL 15 (a throwaway cluster, real clock) behind the TCP fault
 * proxy: 20 fibers loop `Pool.query` and `Pool.use` on a pool with the default policies (recycle, prePing,
 * resetOnReturn("rollback")) and short explicit timeouts, the proxy holds every byte for a few seconds (sockets stay
 * open, nothing moves), then the network heals.
 *
 * - No operation takes longer than its timeouts allow: a checkout (wait, connect, pre-ping) ends by the pool's
 *   `timeout`, and a statement by the driver's `statementTimeout` plus node-postgres's client-side grace of one second.
 * - Every failure is typed (`PoolError` or `PgError`): no defect, no interruption, no bare `Error`.
 * - A few seconds after the network heals, every operation succeeds.
 * - At rest the counters are consistent (nothing lent, nobody waiting, at most `size + maxOverflow` open) and the
 *   server's sessions for the pool match its open connections, none `idle in transaction`.
 *
 * The default policies are kept as they are: pre-ping's own timeout (5 seconds) is longer than the checkout's
 * deadline, and the deadline bounds the ping too, so a hanging ping costs a checkout at most `timeout`; this test
 * shows that the defaults alone hold the bound.
 *
 * Default run ≈ 13 s (2 s warm-up, 4 s blackhole, 5 s after the heal, then the settling); `BLACKHOLE_SECONDS`
 * lengthens the blackhole.
 */
import { assert, layer } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import { performance } from "node:perf_hooks"
import * as Pg from "../../src/Driver/Pg.js"
import * as Pool from "../../src/Pool.js"
import { isPoolError } from "../../src/PoolError.js"
import { uniqueName } from "../Driver/conformance.js"
import * as FaultProxy from "../utils/faultProxy.js"
import { layer as postgresLayer, Postgres } from "../utils/postgres.js"

const FIBERS = 20
const SIZE = 5
const MAX_OVERFLOW = 5
const TIMEOUT_MILLIS = 1_000
const STATEMENT_TIMEOUT_MILLIS = 1_000
const CONNECT_TIMEOUT_MILLIS = 1_000
/** node-postgres's `query_timeout` is `statementTimeout` plus this (see `PgOptions`). */
const CLIENT_GRACE_MILLIS = 1_000
/** The longest one operation may take: its checkout's deadline, then one statement that gets no answer. */
const BOUND_MILLIS = TIMEOUT_MILLIS + STATEMENT_TIMEOUT_MILLIS + CLIENT_GRACE_MILLIS
/** Scheduling on two shared cores (a benchmark may run beside): generous, and printed beside the measure. */
const MARGIN_MILLIS = 2_000
const WARMUP_MILLIS = 2_000
const BLACKHOLE_MILLIS = Number(process.env["BLACKHOLE_SECONDS"] ?? 4) * 1_000
/** Every operation started this long after the heal must succeed. */
const RECOVERY_MILLIS = 3_000
const AFTER_MILLIS = RECOVERY_MILLIS + 2_000

interface Outcome {
  readonly kind: "query" | "use"
  readonly start: number
  readonly end: number
  readonly ok: boolean
  /** `PoolTimeoutError/wait`, `PgError/Timeout`, ...: what a failure was; `untyped: ...` when it was not typed. */
  readonly failure?: string
}

/** A typed failure's label, or `undefined` when the cause is not one typed failure (a defect, an interruption). */
const typedLabel = (cause: Cause.Cause<unknown>): string | undefined => {
  if (Cause.isDie(cause) || Cause.isInterrupted(cause)) return undefined
  const error = Cause.failureOption(cause)
  if (Option.isNone(error)) return undefined
  const e = error.value
  if (e instanceof Pg.PgError) return `PgError/${e.reason}/${e.operation}`
  if (isPoolError(e)) {
    const phase = "phase" in e ? `/${String(e.phase)}` : ""
    return `${e._tag}${phase}`
  }
  return undefined
}

const percentile = (sorted: ReadonlyArray<number>, p: number) =>
  sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!

layer(postgresLayer, { excludeTestServices: true, timeout: "60 seconds" })("blackhole (PostgreSQL 15)", (it) => {
  it.scoped(
    "under load: every operation ends within its timeouts, every failure is typed, all succeed soon after the heal",
    () =>
      Effect.gen(function*() {
        const server = yield* Postgres
        const proxy = yield* FaultProxy.make({ host: server.host, port: server.port })
        const name = uniqueName("blackhole")
        const driver = Pg.driver({
          ...server.options,
          port: proxy.port,
          connectTimeout: Duration.millis(CONNECT_TIMEOUT_MILLIS),
          statementTimeout: Duration.millis(STATEMENT_TIMEOUT_MILLIS)
        })
        const pool = yield* Pool.make({
          driver,
          name,
          size: SIZE,
          maxOverflow: MAX_OVERFLOW,
          timeout: Duration.millis(TIMEOUT_MILLIS)
        })

        const outcomes: Array<Outcome> = []
        let running = true
        const operation = (fiber: number, i: number) => {
          const kind = (fiber + i) % 2 === 0 ? "query" as const : "use" as const
          const effect = kind === "query"
            ? Pool.query(pool, "SELECT $1::int AS n", [i])
            : Pool.use(pool, (c) => driver.query(c, "SELECT pg_sleep(0.002), $1::int AS n", [i]))
          return Effect.suspend(() => {
            const start = performance.now()
            return Effect.map(Effect.exit(effect), (exit) => {
              const end = performance.now()
              if (Exit.isSuccess(exit)) {
                outcomes.push({ kind, start, end, ok: true })
                return true
              } else {
                const label = typedLabel(exit.cause)
                outcomes.push({
                  kind,
                  start,
                  end,
                  ok: false,
                  failure: label ?? `untyped: ${Cause.pretty(exit.cause).split("\n")[0]}`
                })
                return false
              }
            })
          })
        }
        const loop = (fiber: number) =>
          Effect.gen(function*() {
            for (let i = 0; running; i++) {
              const ok = yield* operation(fiber, i)
              // a failed operation is not retried in a tight loop: callers back off a little
              if (!ok) yield* Effect.sleep("20 millis")
            }
          })

        const load = yield* Effect.forkScoped(Effect.forEach(
          Array.from({ length: FIBERS }, (_, fiber) => fiber),
          loop,
          { concurrency: "unbounded", discard: true }
        ))
        const t0 = performance.now()
        yield* Effect.sleep(Duration.millis(WARMUP_MILLIS))
        const blackholeAt = performance.now()
        yield* proxy.set({ _tag: "Blackhole" })
        yield* Effect.sleep(Duration.millis(BLACKHOLE_MILLIS))
        const statsInBlackhole = yield* Pool.stats(pool)
        const healAt = performance.now()
        yield* proxy.set({ _tag: "Pass" })
        yield* Effect.sleep(Duration.millis(AFTER_MILLIS))
        running = false
        // every loop ends its current operation, which is bounded: the join is bounded too
        yield* load.await.pipe(Effect.timeoutFail({
          duration: Duration.millis(BOUND_MILLIS + MARGIN_MILLIS),
          onTimeout: () => new Error("a fiber hung")
        }))

        const durations = outcomes.map((o) => o.end - o.start).sort((a, b) => a - b)
        const max = durations[durations.length - 1] ?? 0
        const slowest = outcomes.reduce((a, b) => (b.end - b.start > a.end - a.start ? b : a))
        const failures = outcomes.filter((o) => !o.ok)
        const byFailure: Record<string, number> = {}
        for (const o of failures) byFailure[o.failure!] = (byFailure[o.failure!] ?? 0) + 1
        const untyped = failures.filter((o) => o.failure!.startsWith("untyped"))
        const beforeBlackhole = outcomes.filter((o) => o.end < blackholeAt)
        const afterHeal = outcomes.filter((o) => o.start >= healAt)
        const failedAfterHeal = afterHeal.filter((o) => !o.ok)
        const lastFailureAfterHeal = failures.reduce((t, o) => Math.max(t, o.end), healAt) - healAt
        const firstSuccessAfterHeal = Math.min(...outcomes.filter((o) => o.ok && o.end >= healAt).map((o) => o.end)) -
          healAt
        const settled = outcomes.filter((o) => o.start >= healAt + RECOVERY_MILLIS)

        yield* Effect.sleep("100 millis")
        const stats = yield* Pool.stats(pool)
        let sessions = yield* server.sessions(name)
        // closes handed to the closer end a moment later: the server's count follows the pool's
        const settle = performance.now()
        let open = stats.open
        while (performance.now() - settle < 5_000) {
          open = (yield* Pool.stats(pool)).open
          sessions = yield* server.sessions(name)
          if (sessions.total === open) break
          yield* Effect.sleep("50 millis")
        }

        const accepted = yield* proxy.accepted
        const figures = [
          `${FIBERS} fibers, size ${SIZE} + overflow ${MAX_OVERFLOW}, timeout ${TIMEOUT_MILLIS} ms, statementTimeout ` +
          `${STATEMENT_TIMEOUT_MILLIS} ms, connectTimeout ${CONNECT_TIMEOUT_MILLIS} ms, default policies`,
          `blackhole ${BLACKHOLE_MILLIS} ms`,
          `${outcomes.length} operations (${beforeBlackhole.length} before the blackhole, ${afterHeal.length} started ` +
          `after the heal), ${failures.length} failed, ${untyped.length} untyped`,
          `max duration ${max.toFixed(0)} ms (${slowest.kind}, ${slowest.ok ? "ok" : slowest.failure}; bound ` +
          `${BOUND_MILLIS} ms + margin ${MARGIN_MILLIS} ms)`,
          `p50 ${percentile(durations, 50).toFixed(1)} ms, p99 ${percentile(durations, 99).toFixed(0)} ms`,
          `after the heal: first success at ${firstSuccessAfterHeal.toFixed(0)} ms, last failure at ` +
          `${lastFailureAfterHeal.toFixed(0)} ms, ${failedAfterHeal.length} failures among operations started after it`,
          `failures ${JSON.stringify(byFailure)}`,
          `in the blackhole: open ${statsInBlackhole.open}, opening ${statsInBlackhole.opening}, waiting ` +
          `${statsInBlackhole.waiting}`,
          `at rest: inUse ${stats.inUse}, waiting ${stats.waiting}, open ${open} (server sessions ${sessions.total}), ` +
          `opened ${stats.opened}, closed ${stats.closed} ${JSON.stringify(stats.closedBy)}, connect failures ` +
          `${stats.connectFailures}, timeouts ${stats.timeouts}, proxy accepted ${accepted}`,
          `run ${((performance.now() - t0) / 1000).toFixed(1)} s`
        ]
        console.log(`[reliability] blackhole: ${figures.join("; ")}`)

        assert.deepStrictEqual(untyped.map((o) => o.failure), [], "every failure is typed")
        assert.isTrue(beforeBlackhole.length > 0 && beforeBlackhole.every((o) => o.ok), "all succeed before")
        assert.isTrue(failures.length > 0, "the blackhole was felt")
        assert.isAtMost(max, BOUND_MILLIS + MARGIN_MILLIS, "no operation outlives its timeouts")
        assert.isTrue(settled.length > FIBERS, "operations ran after the recovery window")
        assert.deepStrictEqual(
          settled.filter((o) => !o.ok).map((o) => o.failure),
          [],
          `every operation started ${RECOVERY_MILLIS} ms after the heal succeeds`
        )
        assert.strictEqual(stats.inUse, 0, "nothing lent at rest")
        assert.strictEqual(stats.waiting, 0, "nobody waits at rest")
        assert.isAtMost(stats.open + stats.opening, SIZE + MAX_OVERFLOW, "bounded")
        assert.strictEqual(sessions.total, open, "the server's sessions are the pool's open connections")
        assert.strictEqual(sessions.idleInTransaction, 0, "no session idle in transaction")
      })
  )

  it.scoped("idle connections behind a blackhole: the pre-ping is bounded by the checkout's deadline", () =>
    Effect.gen(function*() {
      const server = yield* Postgres
      const proxy = yield* FaultProxy.make({ host: server.host, port: server.port })
      const name = uniqueName("blackhole-idle")
      const driver = Pg.driver({
        ...server.options,
        port: proxy.port,
        connectTimeout: Duration.millis(CONNECT_TIMEOUT_MILLIS),
        statementTimeout: Duration.millis(STATEMENT_TIMEOUT_MILLIS)
      })
      const pool = yield* Pool.make({
        driver,
        name,
        size: SIZE,
        min: SIZE,
        maxOverflow: MAX_OVERFLOW,
        timeout: Duration.millis(TIMEOUT_MILLIS)
      })
      yield* server.awaitSessions(name, (s) => s.total === SIZE)
      // idle past pre-ping's bypass window (500 ms): every checkout pings first
      yield* Effect.sleep("700 millis")
      yield* proxy.set({ _tag: "Blackhole" })
      const timed = (effect: Effect.Effect<unknown, unknown>) =>
        Effect.suspend(() => {
          const start = performance.now()
          return Effect.map(Effect.exit(effect), (exit) => ({ exit, millis: performance.now() - start }))
        })
      const inBlackhole = yield* Effect.forEach(
        Array.from({ length: SIZE + MAX_OVERFLOW }, (_, i) => i),
        (i) => timed(Pool.query(pool, "SELECT $1::int AS n", [i])),
        { concurrency: "unbounded" }
      )
      const labels = inBlackhole.map(({ exit }) => Exit.isSuccess(exit) ? "ok" : typedLabel(exit.cause) ?? "untyped")
      const byLabel: Record<string, number> = {}
      for (const label of labels) byLabel[label] = (byLabel[label] ?? 0) + 1
      const max = Math.max(...inBlackhole.map(({ millis }) => millis))
      const healAt = performance.now()
      yield* proxy.set({ _tag: "Pass" })
      let attempts = 0
      while (true) {
        attempts++
        const exit = yield* Effect.exit(Pool.query(pool, "SELECT 1"))
        if (Exit.isSuccess(exit)) break
        assert.isAtMost(performance.now() - healAt, RECOVERY_MILLIS, `no success after the heal: ${exit.cause}`)
        yield* Effect.sleep("20 millis")
      }
      const recovered = performance.now() - healAt
      const after = yield* Effect.forEach(
        Array.from({ length: FIBERS }, (_, i) => i),
        (i) => Effect.exit(Pool.query(pool, "SELECT $1::int AS n", [i])),
        { concurrency: "unbounded" }
      )
      const stats = yield* Pool.stats(pool)
      console.log(
        `[reliability] blackhole-idle: ${SIZE} idle connections (min ${SIZE}, overflow ${MAX_OVERFLOW}), timeout ` +
          `${TIMEOUT_MILLIS} ms, default prePing (its own timeout 5 s); ${inBlackhole.length} checkouts in the ` +
          `blackhole: ${JSON.stringify(byLabel)}, max ${max.toFixed(0)} ms (bound ${TIMEOUT_MILLIS} ms + margin ` +
          `${MARGIN_MILLIS} ms); first success ${recovered.toFixed(0)} ms after the heal (${attempts} attempts); ` +
          `${after.filter(Exit.isSuccess).length}/${after.length} succeed then; at rest open ${stats.open}, inUse ` +
          `${stats.inUse}, waiting ${stats.waiting}, closed ${JSON.stringify(stats.closedBy)}`
      )
      assert.isFalse(labels.includes("untyped"), "every failure is typed")
      assert.isFalse(labels.includes("ok"), "nothing gets through a blackhole")
      assert.isAtMost(max, TIMEOUT_MILLIS + MARGIN_MILLIS, "a hanging ping costs a checkout at most its deadline")
      assert.isAtMost(recovered, RECOVERY_MILLIS)
      assert.isTrue(after.every(Exit.isSuccess), "every operation succeeds after the heal")
      assert.strictEqual(stats.inUse, 0)
      assert.strictEqual(stats.waiting, 0)
      assert.isAtMost(stats.open + stats.opening, SIZE + MAX_OVERFLOW)
    }))
})
