/**
 * A service whose pool is a scoped Layer, run with `NodeRuntime.runMain` and stopped by SIGTERM (or Ctrl+C: SIGINT
 * is handled the same way). `runMain` interrupts the main fiber, and Effect interrupts the fibers it forked with it:
 * the two workers' jobs are interrupted and their connections returned. Work the signal does not reach keeps its
 * connection while the pool's scope closes: a request loop (daemon fibers stand for an HTTP server's requests here)
 * finishes the request in flight, whose connection closes as it comes back (graceful), and then gets
 * `PoolClosedError`; a report that holds its connection for a minute has it closed under it at `shutdownTimeout`
 * (forceful). Then the process exits with code 0. It runs on the Memory database, or on PostgreSQL when
 * `DATABASE_URL` is set. Run it with `npx tsx examples/operating/shutdown-sigterm.ts`, then `kill -TERM <pid>`.
 */
import { NodeRuntime } from "@effect/platform-node"
import { Console, Context, Deferred, Effect, FiberId, Layer, Redacted } from "effect"
import type { Driver } from "../../src/Driver.js"
import * as Memory from "../../src/Driver/Memory.js"
import * as Pg from "../../src/Driver/Pg.js"
import * as Pool from "../../src/Pool.js"
import { readiness } from "./health.js"

export const poolName = "sigterm"

/** The service: `driver` opens the connections, `statement` is what a job runs (about 300 ms). */
export const service = <C, E>(driver: Driver<C, E>, statement: string) => {
  const Db = Context.GenericTag<Pool.Pool<C, E>>("app/Db")
  const DbLive = Pool.layer(Db, { driver, name: poolName, size: 4, maxOverflow: 0, shutdownTimeout: "2 seconds" })
  let provided: Pool.Pool<C, E> | undefined
  let stopping = false
  const poolClosed = Deferred.unsafeMake<void>(FiberId.none)
  const reportDone = Deferred.unsafeMake<void>(FiberId.none)

  const main = Effect.gen(function*() {
    const pool = yield* Db
    const holding = yield* Effect.forEach([1, 2, 3, 4], () => Deferred.make<void>())
    const job = (n: number, after: Effect.Effect<void> = Effect.void) =>
      Pool.use(pool, (c) =>
        Deferred.succeed(holding[n]!, undefined).pipe(
          Effect.zipRight(pool.driver.query(c, statement)),
          Effect.zipRight(after)
        ))

    // two workers forked from the main fiber: interrupted with it
    const worker = (n: number) =>
      Effect.forever(job(n)).pipe(
        Effect.onInterrupt(() => Console.log(`worker ${n + 1}: interrupted, its connection returned`))
      )
    // a request loop outside the main fiber's tree: the request in flight finishes
    const requests = Effect.forever(Effect.zipRight(
      job(2, Effect.sleep("700 millis")),
      Effect.suspend(() => stopping ? Console.log("request: the one in flight at SIGTERM finished") : Effect.void)
    )).pipe(Effect.catchAll((error) => Console.log(`request loop stopped: ${String(error)}`)))
    // a report that holds its connection for a minute, or until the pool has closed, then tries it again
    const report = Pool.use(pool, (c) =>
      Effect.gen(function*() {
        yield* Deferred.succeed(holding[3]!, undefined)
        yield* pool.driver.query(c, statement)
        yield* Effect.race(Effect.sleep("1 minute"), Deferred.await(poolClosed))
        const again = yield* Effect.either(pool.driver.query(c, statement))
        yield* Console.log(
          again._tag === "Left"
            ? `report: its connection was closed under it: ${String(again.left)}`
            : "report: its connection still works"
        )
      })).pipe(Effect.ensuring(Deferred.succeed(reportDone, undefined)))

    yield* Effect.forEach([0, 1], (n) => Effect.fork(worker(n)))
    yield* Effect.forkDaemon(requests)
    yield* Effect.forkDaemon(report)
    yield* Effect.forEach(holding, Deferred.await)
    const { ready } = yield* readiness(pool)
    yield* Console.log(`serving: 2 workers, a request loop and a report on pool "${poolName}", ready: ${ready}`)
    return yield* Effect.never.pipe(Effect.onInterrupt(() =>
      Effect.suspend(() => {
        stopping = true
        return Console.log("interrupted: closing the pool")
      })
    ))
  })

  const afterClose = Effect.suspend(() => {
    if (provided === undefined) return Effect.void
    const closed = provided
    return Effect.gen(function*() {
      const stats = yield* Pool.stats(closed)
      const { reason } = yield* readiness(closed)
      yield* Console.log(
        `pool closed: opened ${stats.opened}, closed ${stats.closed} ${JSON.stringify(stats.closedBy)}, ` +
          `open ${stats.open}; ${reason}`
      )
      // let the report see its connection closed before the process exits
      yield* Deferred.succeed(poolClosed, undefined)
      yield* Effect.timeout(Deferred.await(reportDone), "5 seconds").pipe(Effect.ignore)
    })
  })

  return main.pipe(
    Effect.provide(DbLive.pipe(Layer.tap((context) => Effect.sync(() => provided = Context.get(context, Db))))),
    Effect.ensuring(afterClose)
  )
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const url = process.env["DATABASE_URL"]
  Effect.gen(function*() {
    if (url !== undefined && url !== "") {
      return yield* service(Pg.driver({ url: Redacted.make(url) }), "SELECT pg_sleep(0.3)")
    }
    const db = yield* Memory.make({ queryLatency: "300 millis" })
    return yield* service(db.driver, "SELECT 1").pipe(
      Effect.ensuring(Effect.flatMap(db.stats, (s) => Console.log(`server: open ${s.open}, closed ${s.closed}`)))
    )
  }).pipe(NodeRuntime.runMain)
}
