/**
 * A demand spike with slow connects, against a real PostgreSQL 15 (a throwaway cluster, real clock) behind the TCP
 * fault proxy at 150 ms of latency each way: 500 checkouts at once on a cold pool (`min: 0`), each running one
 * statement (a round trip through the latency).
 *
 * - Never more than `size + maxOverflow` sessions on the server, nor connections open or opening in the pool (sampled
 *   every 25 ms during the spike).
 * - No connect storm: connect attempts (the pool's `Connect` and `ConnectFailed` events, and the proxy's accepted
 *   connections) are at most `size + maxOverflow` plus the failures.
 * - Every checkout is served; the wait (from the call to the connection in hand) is reported as p50 / p99 / max.
 * - At rest nothing is lent, nobody waits, and the server's sessions are the pool's open connections.
 *
 * Default run ≈ 12 s (500 statements at 300 ms each over 15 connections); `SPIKE_CHECKOUTS` changes the count.
 */
import { assert, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import { performance } from "node:perf_hooks"
import * as Pg from "../../src/Driver/Pg.js"
import * as Pool from "../../src/Pool.js"
import { uniqueName } from "../Driver/conformance.js"
import * as FaultProxy from "../utils/faultProxy.js"
import { layer as postgresLayer, Postgres } from "../utils/postgres.js"

const CHECKOUTS = Number(process.env["SPIKE_CHECKOUTS"] ?? 500)
const LATENCY_MILLIS = 150
const SIZE = 5
const MAX_OVERFLOW = 10
const MAX = SIZE + MAX_OVERFLOW

const percentile = (sorted: ReadonlyArray<number>, p: number) =>
  sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!

layer(postgresLayer, { excludeTestServices: true, timeout: "60 seconds" })("demand spike (PostgreSQL 15)", (it) => {
  it.scoped(
    `${CHECKOUTS} checkouts on a cold pool behind ${LATENCY_MILLIS} ms of latency: bounded sessions, no connect storm`,
    () =>
      Effect.gen(function*() {
        const server = yield* Postgres
        const proxy = yield* FaultProxy.make({ host: server.host, port: server.port })
        yield* proxy.set({ _tag: "Latency", millis: LATENCY_MILLIS })
        const name = uniqueName("spike")
        const driver = Pg.driver({ ...server.options, port: proxy.port, connectTimeout: "10 seconds" })
        const pool = yield* Pool.make({
          driver,
          name,
          size: SIZE,
          maxOverflow: MAX_OVERFLOW,
          min: 0,
          timeout: "40 seconds"
        })
        let connects = 0
        let connectFailures = 0
        yield* Pool.listen(pool, {
          connect: () => Effect.sync(() => void connects++),
          connectFailed: () => Effect.sync(() => void connectFailures++)
        })
        assert.strictEqual((yield* Pool.stats(pool)).open, 0, "a cold pool")

        let sampling = true
        let maxSessions = 0
        let maxPool = 0
        let samples = 0
        const sampler = yield* Effect.fork(Effect.gen(function*() {
          while (sampling) {
            const stats = yield* Pool.stats(pool)
            maxPool = Math.max(maxPool, stats.open + stats.opening)
            const sessions = yield* server.sessions(name)
            maxSessions = Math.max(maxSessions, sessions.total)
            samples++
            yield* Effect.sleep("25 millis")
          }
        }))

        const waits: Array<number> = []
        const t0 = performance.now()
        const results = yield* Effect.forEach(
          Array.from({ length: CHECKOUTS }, (_, i) => i),
          (i) =>
            Effect.suspend(() => {
              const start = performance.now()
              return Pool.use(pool, (c) => {
                waits.push(performance.now() - start)
                return driver.query(c, "SELECT $1::int AS n", [i])
              })
            }).pipe(Effect.either),
          { concurrency: "unbounded" }
        )
        const elapsed = performance.now() - t0
        sampling = false
        yield* Fiber.join(sampler)

        const failed = results.filter((r) => r._tag === "Left")
        const sorted = [...waits].sort((a, b) => a - b)
        const accepted = yield* proxy.accepted
        // overflow connections close as they come back to a full pool: the server's count follows the pool's
        let stats = yield* Pool.stats(pool)
        let sessions = yield* server.sessions(name)
        const settle = performance.now()
        while (sessions.total !== stats.open && performance.now() - settle < 5_000) {
          yield* Effect.sleep("50 millis")
          stats = yield* Pool.stats(pool)
          sessions = yield* server.sessions(name)
        }

        console.log(
          `[reliability] spike: ${CHECKOUTS} checkouts on a cold pool (size ${SIZE} + overflow ${MAX_OVERFLOW}) ` +
            `behind ${LATENCY_MILLIS} ms latency each way: served ${waits.length}, failed ${failed.length} in ` +
            `${(elapsed / 1000).toFixed(1)} s; wait min ${(sorted[0] ?? 0).toFixed(0)} ms (a connect), p50 ${
              percentile(sorted, 50).toFixed(0)
            } ms, p99 ` +
            `${percentile(sorted, 99).toFixed(0)} ms, max ${(sorted[sorted.length - 1] ?? 0).toFixed(0)} ms; ` +
            `max server sessions ${maxSessions}, max pool open+opening ${maxPool} (${samples} samples); connects ` +
            `${connects}, connect failures ${connectFailures}, proxy accepted ${accepted}; at rest open ` +
            `${stats.open} (server ${sessions.total}), inUse ${stats.inUse}, waiting ${stats.waiting}, checkouts ` +
            `${stats.checkouts}, closed ${JSON.stringify(stats.closedBy)}`
        )

        assert.deepStrictEqual(failed.map((r) => r._tag === "Left" ? String(r.left) : ""), [], "every checkout served")
        assert.strictEqual(waits.length, CHECKOUTS)
        assert.isTrue(samples > 5, "the spike was sampled")
        assert.isAtMost(maxSessions, MAX, "never more sessions than size + maxOverflow")
        assert.isAtMost(maxPool, MAX, "never more connections open or opening than size + maxOverflow")
        assert.isAtMost(connects + connectFailures, MAX + connectFailures, "no connect storm (pool's count)")
        assert.isAtMost(accepted, MAX + connectFailures, "no connect storm (the proxy's count)")
        assert.strictEqual(stats.inUse, 0)
        assert.strictEqual(stats.waiting, 0)
        assert.isAtMost(stats.open, MAX)
        assert.strictEqual(sessions.total, stats.open, "the server's sessions are the pool's open connections")
        assert.strictEqual(sessions.idleInTransaction, 0)
        assert.strictEqual(stats.connectFailures, connectFailures)
        // the pool's own counters agree with its events
        assert.strictEqual(stats.opened, connects)
      })
  )
})
