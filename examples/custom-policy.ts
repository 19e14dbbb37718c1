/**
 * Writing your own policies with `Policy.make`: a keepalive that pings idle connections on a `Schedule` from a
 * `background` fiber (`forEachIdle`), and an `onReturn` check that refuses connections whose session was changed.
 * Hooks run in the order the policies are listed. Runs under `TestClock`: `npx tsx examples/custom-policy.ts`.
 */
import { type Duration, Effect, Schedule, TestClock, TestContext } from "effect"
import * as Memory from "../src/Driver/Memory.js"
import * as Policy from "../src/Policy.js"
import * as Pool from "../src/Pool.js"
import { ConnectionRejected } from "../src/PoolError.js"

/** Pings every idle connection each `interval`; a dead one is closed, and a disconnect starts a new generation. */
export const keepalive = <C = never, E = never>(interval: Duration.DurationInput) =>
  Policy.make<C, E>({
    name: "keepalive",
    background: (pool) =>
      pool.forEachIdle(({ connection, driver, markValidated }) =>
        driver.ping(connection).pipe(
          Effect.tap(() => Effect.sync(markValidated)),
          Effect.mapError((cause) =>
            new ConnectionRejected({
              reason: "keepalive: ping failed",
              cause,
              invalidateAll: driver.isDisconnect(cause)
            })
          )
        )
      ).pipe(Effect.repeat(Schedule.spaced(interval)), Effect.asVoid)
  })

/** Refuses a returned connection whose borrower changed a session setting, so the next borrower gets a clean one. */
export const cleanSession = Policy.make<Memory.MemoryConnection, Memory.MemoryError>({
  name: "cleanSession",
  onReturn: ({ connection }) =>
    connection.settings.size > 0 ?
      Effect.fail(
        new ConnectionRejected({ reason: `session changed: ${[...connection.settings.keys()].join(", ")}` })
      ) :
      Effect.void
})

/** Lets the pool's background fibers and closes run. */
const settle = Effect.repeatN(Effect.yieldNow(), 20)

export const program = Effect.gen(function*() {
  const db = yield* Memory.make()
  const trace: Array<string> = []
  const tracing = (name: string) =>
    Policy.make<Memory.MemoryConnection, Memory.MemoryError>({
      name,
      onCheckout: () => Effect.sync(() => trace.push(`${name}.onCheckout`)),
      onReturn: () => Effect.sync(() => trace.push(`${name}.onReturn`))
    })
  const pool = yield* Pool.make({
    driver: db.driver,
    name: "custom-policy",
    size: 2,
    min: 2,
    policies: [tracing("first"), keepalive("30 seconds"), cleanSession, tracing("second")]
  })
  yield* settle

  // ordering: hooks run in the order the policies are listed
  yield* Pool.use(pool, () => Effect.void)

  // cleanSession: the borrower sets a session variable; the connection is closed instead of pooled
  yield* Pool.use(pool, (c) => db.driver.query(c, "SET search_path = 'tenant_1'"))
  yield* settle
  const afterDirtyReturn = yield* Pool.stats(pool)

  // keepalive: an idle connection dies silently (no error event); the next round of pings finds it
  const [victim] = yield* db.connections
  yield* db.kill(victim!, { notify: false })
  yield* TestClock.adjust("30 seconds")
  yield* settle
  const afterKeepalive = yield* Pool.stats(pool)
  const openOnServer = (yield* db.connections).map((c) => c.id)

  return {
    trace,
    resetFailed: afterDirtyReturn.closedBy.resetFailed,
    closedBy: afterKeepalive.closedBy,
    generation: afterKeepalive.generation,
    open: afterKeepalive.open,
    victim: victim!.id,
    openOnServer
  }
}).pipe(Effect.scoped, Effect.provide(TestContext.TestContext))

if (import.meta.url === `file://${process.argv[1]}`) {
  Effect.runPromise(program).then(console.log, (error) => {
    console.error(error)
    process.exit(1)
  })
}
