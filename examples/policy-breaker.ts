/**
 * The circuit breaker against the Memory database under `TestClock`: after three refused connects checkouts fail at
 * once with `PoolUnavailableError` (carrying the refusal) instead of waiting for their timeout, one probe runs every
 * 5 seconds, and the first connect that succeeds closes the breaker. Run it with `npx tsx examples/policy-breaker.ts`.
 */
import { Effect, Fiber, TestClock, TestContext } from "effect"
import * as Memory from "../src/Driver/Memory.js"
import * as Policy from "../src/Policy.js"
import * as Pool from "../src/Pool.js"

export const program = Effect.gen(function*() {
  const db = yield* Memory.make()
  const breaker = Policy.circuitBreaker<Memory.MemoryConnection, Memory.MemoryError>({
    failures: 3,
    probe: "5 seconds"
  })
  const pool = yield* Pool.make({
    driver: db.driver,
    name: "policy-breaker",
    size: 2,
    timeout: "30 seconds",
    policies: [Policy.connectRetry("100 millis"), breaker]
  })
  const transitions: Array<string> = []
  yield* Pool.listen(pool, {
    circuitBreaker: (event) => Effect.sync(() => transitions.push(`${event.state} after ${event.failures} failures`))
  })
  const { state } = yield* Pool.policy(pool, breaker)

  // the database goes down: each checkout's connect is refused, three in a row open the breaker
  yield* db.down
  for (let i = 0; i < 3; i++) {
    const checkout = yield* Effect.fork(Effect.either(Pool.use(pool, () => Effect.void)))
    yield* TestClock.adjust("1 second")
    yield* Fiber.join(checkout)
  }
  const opened = yield* state

  // open: a checkout fails at once, with the refusal as its cause, not after 30 seconds
  const refused = yield* Effect.flip(Pool.use(pool, () => Effect.void))

  // the database comes back; the next probe connects and closes the breaker
  yield* db.up
  yield* TestClock.adjust("5 seconds")
  const closed = yield* state
  const served = yield* Pool.use(pool, (c) => db.driver.query(c, "SELECT 1"))

  return {
    opened,
    refused: { tag: refused._tag, message: refused.message },
    closed,
    served,
    transitions,
    connectAttempts: (yield* db.stats).connectAttempts
  }
}).pipe(Effect.scoped, Effect.provide(TestContext.TestContext))

if (import.meta.url === `file://${process.argv[1]}`) {
  Effect.runPromise(program).then(console.log, (error) => {
    console.error(error)
    process.exit(1)
  })
}
