/**
 * SQLAlchemy's other pool kinds against a real PostgreSQL 15 (a throwaway cluster, real clock): what the server
 * sees of each kind's connections (`pg_stat_activity` by `application_name`), and a server restart
 * (`pg_ctl stop -m fast`, start) under load through each kind: work in flight fails with a typed error, no fiber
 * hangs, and every checkout begun after the restart succeeds.
 */
import { assert, layer } from "@effect/vitest"
import { Deferred, Effect, Fiber, Ref } from "effect"
import * as Pg from "../src/Driver/Pg.js"
import * as Pool from "../src/Pool.js"
import { isPoolError } from "../src/PoolError.js"
import { uniqueName } from "./Driver/conformance.js"
import { layer as postgresLayer, Postgres } from "./utils/postgres.js"

type PgPool = Pool.Pool<Pg.PgConnection, Pg.PgError | Pool.PoolAssertionError>

const pid = (pool: PgPool) => Pool.use(pool, (c) => Effect.succeed(c.processId))

interface Outcome {
  readonly after: boolean
  readonly ok: boolean
  readonly error?: unknown
}

/**
 * Runs `workers` fibers that query in a loop through `pool` (or worker `i` through `pool(i)`), restarts the server once each has succeeded, and
 * lets them go on until each has succeeded `rounds` times after the restart. Returns every outcome, tagged with
 * whether its checkout began after the restart was done.
 */
const underRestart = (pool: PgPool | ((worker: number) => PgPool), workers: number, rounds = 3) =>
  Effect.gen(function*() {
    const server = yield* Postgres
    const after = yield* Ref.make(false)
    const outcomes: Array<Outcome> = []
    const warmed = yield* Effect.forEach(Array.from({ length: workers }), () => Deferred.make<void>())
    const done = yield* Effect.forEach(Array.from({ length: workers }), () => Deferred.make<void>())
    const stop = yield* Deferred.make<void>()
    const worker = (i: number) =>
      Effect.gen(function*() {
        const mine = typeof pool === "function" ? pool(i) : pool
        let afterOk = 0
        while (!(yield* Deferred.isDone(stop))) {
          const began = yield* Ref.get(after)
          const exit = yield* Effect.exit(Pool.use(mine, (c) => mine.driver.query(c, "SELECT pg_sleep(0.02)")))
          outcomes.push(
            exit._tag === "Success" ? { after: began, ok: true } : {
              after: began,
              ok: false,
              error: exit.cause._tag === "Fail" ? exit.cause.error : exit.cause
            }
          )
          if (exit._tag === "Success") {
            yield* Deferred.succeed(warmed[i]!, undefined)
            if (began && ++afterOk >= rounds) yield* Deferred.succeed(done[i]!, undefined)
          }
        }
      })
    const fibers = yield* Effect.forEach(Array.from({ length: workers }, (_, i) => i), (i) => Effect.fork(worker(i)))
    yield* Effect.forEach(warmed, Deferred.await)
    yield* server.restart("fast")
    // the driver hears of its dead idle clients when the server goes: give the pool a moment to invalidate them
    yield* Effect.sleep("50 millis")
    yield* Ref.set(after, true)
    const finished = yield* Effect.timeout(Effect.forEach(done, Deferred.await), "8 seconds").pipe(Effect.either)
    yield* Deferred.succeed(stop, undefined)
    // no fiber hangs: every worker ends promptly once told to stop
    const joined = yield* Effect.either(Effect.timeout(Fiber.joinAll(fibers), "5 seconds"))
    assert.isTrue(joined._tag === "Right", "every worker ended")
    assert.isTrue(finished._tag === "Right", "every worker succeeded after the restart")
    const failures = outcomes.filter((o) => !o.ok)
    for (const failure of failures) {
      assert.isTrue(
        failure.error instanceof Pg.PgError || isPoolError(failure.error),
        `a typed failure, got ${String(failure.error)}`
      )
    }
    const lateFailures = outcomes.filter((o) => o.after && !o.ok)
    assert.deepStrictEqual(lateFailures.map((o) => String(o.error)), [], "every checkout after the restart succeeds")
    return { outcomes, failures }
  })

layer(postgresLayer, { excludeTestServices: true, timeout: "60 seconds" })(
  "pool kinds (PostgreSQL 15)",
  (it) => {
    it.scoped("null pool: each checkout is a new session, gone from the server after its return", () =>
      Effect.gen(function*() {
        const server = yield* Postgres
        const name = uniqueName("pg-kind-null")
        const pool = yield* Pool.makeNull({ driver: Pg.driver(server.options), name })
        const first = yield* pid(pool)
        const second = yield* pid(pool)
        assert.notStrictEqual(first, second)
        yield* server.awaitSessions(name, (s) => s.total === 0)
      }))

    it.scoped("per-fiber pool: a fiber's checkouts share one session, closed on the server when the fiber ends", () =>
      Effect.gen(function*() {
        const server = yield* Postgres
        const name = uniqueName("pg-kind-fiber")
        const pool = yield* Pool.makePerFiber({ driver: Pg.driver(server.options), name })
        const pids = yield* Fiber.join(
          yield* Effect.fork(Effect.all([pid(pool), Pool.use(pool, () => pid(pool)), pid(pool)]))
        )
        assert.strictEqual(new Set(pids).size, 1)
        yield* server.awaitSessions(name, (s) => s.total === 0)
      }))

    it.scoped("static pool: concurrent checkouts share the one session", () =>
      Effect.gen(function*() {
        const server = yield* Postgres
        const name = uniqueName("pg-kind-static")
        const pool = yield* Pool.makeStatic({ driver: Pg.driver(server.options), name })
        const pids = yield* Effect.all(
          Array.from({ length: 3 }, () =>
            Pool.use(pool, (c) => Effect.as(pool.driver.query(c, "SELECT pg_sleep(0.05)"), c.processId))),
          { concurrency: "unbounded" }
        )
        assert.strictEqual(new Set(pids).size, 1)
        assert.strictEqual((yield* server.sessions(name)).total, 1)
      }))

    const options = { timeout: "5 seconds", connectTimeout: "2 seconds" } as const

    it.scoped("a restart under load through a null pool", () =>
      Effect.gen(function*() {
        const server = yield* Postgres
        const name = uniqueName("pg-kind-null-restart")
        const pool = yield* Pool.makeNull({ driver: Pg.driver(server.options), name, ...options })
        const { failures } = yield* underRestart(pool, 4)
        assert.isAbove(failures.length, 0, "work in flight failed")
      }))

    it.scoped("a restart under load through a per-fiber pool", () =>
      Effect.gen(function*() {
        const server = yield* Postgres
        const name = uniqueName("pg-kind-fiber-restart")
        const pool = yield* Pool.makePerFiber({ driver: Pg.driver(server.options), name, size: 4, ...options })
        const { failures } = yield* underRestart(pool, 4)
        assert.isAbove(failures.length, 0, "work in flight failed")
      }))

    it.scoped("a restart under load through a static pool and an assertion pool", () =>
      Effect.gen(function*() {
        const server = yield* Postgres
        const shared = yield* Pool.makeStatic({
          driver: Pg.driver(server.options),
          name: uniqueName("pg-kind-static-restart"),
          ...options
        })
        const single = yield* Pool.makeAssertion({
          driver: Pg.driver(server.options),
          name: uniqueName("pg-kind-assert-restart"),
          ...options
        })
        // one restart for both: three workers share the static pool's session, one uses the assertion pool's
        const { failures } = yield* underRestart((i) => i < 3 ? shared : single, 4)
        assert.isAbove(failures.length, 0, "work in flight failed")
      }))
  }
)
