/**
 * A database restart seen by a pool, against the Memory database under `TestClock` (no real waiting): the server
 * restarts while three connections are idle and one borrower is in the middle of a transaction, stays down for five
 * seconds, and comes back. The borrower in flight gets the driver's disconnect error; pre-ping finds the dead idle
 * connections and starts a new generation; connects are refused and spaced by the connect backoff; after three
 * refusals the circuit breaker opens and checkouts fail at once; the caller's own retry of the work that failed
 * succeeds once the server is back. Run it with `npx tsx examples/operating/restart.ts`.
 */
import { Deferred, Effect, Fiber, Logger, Predicate, Schedule, TestClock, TestContext } from "effect"
import * as Memory from "../../src/Driver/Memory.js"
import * as Policy from "../../src/Policy.js"
import * as Pool from "../../src/Pool.js"
import { readiness } from "./health.js"

type C = Memory.MemoryConnection
type E = Memory.MemoryError

/** What happened, second by second: the pool's events, its log lines, and the caller's attempts. */
const record = (timeline: Array<string>) => {
  const at = (millis: number) => `${millis / 1000}s`
  return {
    note: (line: string) => Effect.map(TestClock.currentTimeMillis, (millis) => timeline.push(`${at(millis)} ${line}`)),
    logger: Logger.make(({ date, logLevel, message }) => {
      timeline.push(`${at(date.getTime())} log ${logLevel.label}: ${String(message)}`)
    })
  }
}

const run = (timeline: Array<string>, note: (line: string) => Effect.Effect<unknown>) =>
  Effect.gen(function*() {
    const db = yield* Memory.make()
    const breaker = Policy.circuitBreaker<C, E>({ failures: 3, probe: "1 second" })
    const pool = yield* Pool.make({
      driver: db.driver,
      name: "restart",
      size: 3,
      // the defaults (recycle, pre-ping, rollback on return), a fixed connect backoff so that this timeline repeats
      // (keep the jittered default in production), and the breaker
      policies: [...Policy.defaults<C, E>(), Policy.connectRetry("500 millis"), breaker]
    })

    yield* Pool.listen(pool, {
      close: ({ reason, record }) => note(`close #${record.id} (${reason})`),
      connectFailed: () => note("connect refused"),
      circuitBreaker: ({ state }) => note(`breaker ${state}`)
    })

    // three connections in use once, then idle; a second later (past pre-ping's 500 ms window) one borrower is in the
    // middle of a transaction when the server restarts for five seconds
    const warm = yield* Effect.fork(
      Effect.forEach([1, 2, 3], () => Pool.use(pool, () => Effect.sleep("10 millis")), { concurrency: 3 })
    )
    yield* TestClock.adjust("10 millis")
    yield* Fiber.join(warm)
    yield* TestClock.adjust("990 millis")
    const begun = yield* Deferred.make<void>()
    const inFlight = yield* Effect.fork(Effect.flip(
      Pool.transaction(pool, (c) =>
        Deferred.succeed(begun, undefined).pipe(
          Effect.zipRight(Effect.sleep("1 second")),
          Effect.zipRight(db.driver.query(c, "INSERT INTO t VALUES (1)"))
        ))
    ))
    yield* Deferred.await(begun)
    yield* db.restart("5 seconds", { notify: false })
    yield* note("server restarts (down for 5 s)")
    yield* TestClock.adjust("1 second")
    const inFlightError = yield* Fiber.join(inFlight)

    // the caller retries the work that failed: a lost connection (the driver's isDisconnect, a refused connect
    // included) or an open breaker; anything else is not retried
    const retryable = (error: unknown) =>
      pool.driver.isDisconnect(error) || Predicate.isTagged(error, "PoolUnavailableError")
    const retried = yield* Effect.fork(
      Pool.transaction(pool, (c) => db.driver.query(c, "INSERT INTO t VALUES (1)")).pipe(
        Effect.tapError((error) =>
          note(`attempt failed: ${error._tag}${"reason" in error ? ` (${error.reason})` : ""}`)
        ),
        Effect.retry({ schedule: Schedule.spaced("1 second"), while: retryable }),
        Effect.zipRight(note("the retried transaction committed"))
      )
    )
    yield* TestClock.adjust("1 second")
    const whileDown = yield* readiness(pool)
    yield* TestClock.adjust("5 seconds")
    yield* Fiber.join(retried)

    const stats = yield* Pool.stats(pool)
    return {
      inFlight: `${inFlightError._tag} (${inFlightError._tag === "MemoryError" ? inFlightError.reason : ""})`,
      readiness: { whileDown, after: yield* readiness(pool) },
      committed: yield* db.committed,
      generation: stats.generation,
      closedBy: stats.closedBy,
      timeline
    }
  })

export const program = Effect.suspend(() => {
  const timeline: Array<string> = []
  const { logger, note } = record(timeline)
  return run(timeline, note).pipe(
    Effect.scoped,
    Effect.provide(Logger.replace(Logger.defaultLogger, logger)),
    Effect.provide(TestContext.TestContext)
  )
})

if (import.meta.url === `file://${process.argv[1]}`) {
  Effect.runPromise(program).then((result) => console.dir(result, { depth: null }), (error) => {
    console.error(error)
    process.exit(1)
  })
}
