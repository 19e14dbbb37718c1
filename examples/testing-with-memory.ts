/**
 * Testing your own service with the `Memory` driver: a small ledger service that writes in a transaction and retries
 * on a lost connection, put through the simulated database's faults under `TestClock`, and a check that a property
 * test runs over random fault plans (`Memory.arbitraries.faultPlan()`). Run it with
 * `npx tsx examples/testing-with-memory.ts`.
 */
import { type Duration, Effect, Either, FastCheck, Fiber, Random, TestClock, TestContext } from "effect"
import * as Memory from "../src/Driver/Memory.js"
import * as Policy from "../src/Policy.js"
import * as Pool from "../src/Pool.js"

type MemoryPool = Pool.Pool<Memory.MemoryConnection, Memory.MemoryError>

/** The service under test: records an entry in one transaction, retried twice when the connection is lost. */
export const record = (pool: MemoryPool, entry: string) =>
  Pool.transaction(pool, (connection) => pool.driver.query(connection, `INSERT INTO ledger VALUES ('${entry}')`)).pipe(
    Effect.retry({ times: 2, while: (error) => pool.driver.isDisconnect(error) }),
    Effect.asVoid
  )

/** A Memory database and a pool over it, configured the way the service runs in production. */
export const setup = Effect.gen(function*() {
  const db = yield* Memory.make()
  const pool = yield* Pool.make({
    driver: db.driver,
    name: "ledger",
    size: 2,
    maxOverflow: 1,
    timeout: "5 seconds",
    connectTimeout: "1 second",
    policies: [Policy.resetOnReturn("rollback"), Policy.prePing()]
  })
  return { db, pool } as const
})

/** Runs an effect in a fiber and moves the test clock until it is done. */
const withClock = <A, E>(effect: Effect.Effect<A, E>, duration: Duration.DurationInput) =>
  Effect.gen(function*() {
    const fiber = yield* Effect.fork(effect)
    yield* TestClock.adjust(duration)
    return yield* Fiber.join(fiber)
  })

/**
 * How an operation ended, by tag. The clock moves meanwhile: after a failed connect the pool waits on its backoff
 * schedule before the next one, and under `TestClock` that wait is virtual time.
 */
const outcome = <A, E extends { readonly _tag: string }>(
  effect: Effect.Effect<A, E>,
  duration: Duration.DurationInput = "5 seconds"
) =>
  withClock(
    Effect.map(Effect.either(effect), Either.match({ onLeft: (error) => error._tag, onRight: () => "ok" })),
    duration
  )

export const program = Effect.gen(function*() {
  const { db, pool } = yield* setup
  const results: Record<string, string> = {}

  // a refused connect reaches the caller as the driver's own error
  yield* db.failNextConnects(1)
  results.failNextConnects = yield* outcome(record(pool, "a"))

  // a connect that hangs is cut off by connectTimeout
  yield* db.hangNextConnects(1)
  results.hangNextConnects = yield* withClock(
    Effect.either(record(pool, "b")).pipe(Effect.map(Either.match({
      onLeft: (error) => error._tag === "PoolTimeoutError" ? `${error._tag} (${error.phase})` : error._tag,
      onRight: () => "ok"
    }))),
    "1 second"
  )

  // latency is virtual time: 200 ms of statements cost nothing to the test
  yield* db.setLatency({ query: "50 millis" })
  results.setLatency = yield* withClock(outcome(record(pool, "c")), "1 second")
  yield* db.setLatency({ query: 0 })

  // a failing statement fails the transaction, which is rolled back (the fault is armed inside it here, since the
  // next statement is otherwise prePing's liveness query)
  results.failNextQueries = yield* outcome(
    Pool.transaction(
      pool,
      (connection) =>
        Effect.zipRight(db.failNextQueries(1), db.driver.query(connection, "INSERT INTO ledger VALUES ('d')"))
    )
  )

  // the server drops an idle connection and the pool hears of it (node-postgres's error event): it is closed
  yield* db.kill((yield* db.connections)[0]!)
  results.kill = yield* outcome(record(pool, "e"))

  // a connection lost mid-transaction (statements: ping, BEGIN, INSERT): the service retries on a fresh connection
  yield* db.applyPlan({ connects: [], queries: ["ok", "ok", "disconnect"], slowMillis: 0 })
  results.disconnect = yield* outcome(record(pool, "f"))

  // a server restart kills every connection and refuses connects for a while
  yield* db.restart("10 seconds")
  results.restartWhileDown = yield* outcome(record(pool, "g"), "1 second")
  yield* TestClock.adjust("10 seconds")
  results.restartAfter = yield* outcome(record(pool, "h"))

  // down / up: refuse every connect until told otherwise (open connections are untouched)
  yield* Pool.dispose(pool)
  yield* db.down
  results.down = yield* outcome(record(pool, "i"))
  yield* db.up
  results.up = yield* outcome(record(pool, "j"))

  // a random failure rate, drawn from Effect's Random (seeded here, so the run repeats)
  yield* db.setConnectFailureRate(0.5)
  yield* Pool.dispose(pool)
  results.failureRate = yield* Effect.withRandom(outcome(Effect.retry(record(pool, "k"), { times: 5 })), Random.make(7))
  yield* db.setConnectFailureRate(0)

  return { results, committed: yield* db.committed, server: yield* db.stats, pool: (yield* Pool.stats(pool)).closedBy }
}).pipe(Effect.scoped, Effect.withRandom(Random.make("testing-with-memory")), Effect.provide(TestContext.TestContext))

/**
 * The body of a property test: whatever faults the plan injects, every success the service reports is committed
 * exactly once, nothing it reports as failed is committed, no session is left in a transaction, and after the pool
 * closes every connection was closed exactly once.
 */
export const ledgerProperty = (plan: Memory.FaultPlan) =>
  Effect.gen(function*() {
    const entries = Array.from({ length: 6 }, (_, i) => `entry-${i}`)
    const { db, inTransaction, outcomes } = yield* Effect.scoped(Effect.gen(function*() {
      const { db, pool } = yield* setup
      yield* db.applyPlan(plan)
      const outcomes = yield* withClock(
        Effect.forEach(entries, (entry) => Effect.either(record(pool, entry)), { concurrency: 3 }),
        "1 minute"
      )
      return { db, outcomes, inTransaction: (yield* db.stats).inTransaction }
    }))
    const server = yield* db.stats
    return {
      succeeded: entries.filter((_, i) => Either.isRight(outcomes[i]!)),
      committed: (yield* db.committed).map((statement) => /'(.*)'/.exec(statement)![1]!),
      inTransaction,
      openAfterClose: server.open,
      closedTwice: server.closedTwice
    }
  })

/** Runs the property over a few fault plans drawn with a fixed seed (the test suite runs it with `it.effect.prop`). */
export const sampledPlans = FastCheck.sample(Memory.arbitraries.faultPlan(), { numRuns: 10, seed: 42 })

if (import.meta.url === `file://${process.argv[1]}`) {
  Effect.runPromise(program).then(console.log, (error) => {
    console.error(error)
    process.exit(1)
  })
}
