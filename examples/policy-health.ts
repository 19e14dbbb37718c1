/**
 * The health policies against the Memory database under `TestClock`: `firstConnect` and `onConnect` set up
 * connections, `livenessQuery` says what every ping runs, `prePing` absorbs a server restart at checkout, and
 * `keepalive` finds a silently dropped idle connection and replaces it before anyone borrows it, on its schedule or
 * at once with its `ping` command. Run it with `npx tsx examples/policy-health.ts`.
 */
import { Effect, Schedule, TestClock, TestContext } from "effect"
import * as Memory from "../src/Driver/Memory.js"
import * as Policy from "../src/Policy.js"
import * as Pool from "../src/Pool.js"

type C = Memory.MemoryConnection
type E = Memory.MemoryError

export const program = Effect.gen(function*() {
  const db = yield* Memory.make()
  let serverVersion = ""
  // a keepalive every 30 seconds, jittered so that many pools do not ping in step
  const keepalive = Policy.keepalive<C, E>(Schedule.spaced("30 seconds").pipe(Schedule.jittered), {
    timeout: "2 seconds"
  })
  const pool = yield* Pool.make({
    driver: db.driver,
    name: "health",
    size: 3,
    min: 3,
    policies: [
      // once per pool, on the first connection (SQLAlchemy's first_connect)
      Policy.firstConnect<C, E>(() =>
        Effect.sync(() => {
          serverVersion = "memory 1.0"
        })
      ),
      // on every new connection (Twisted's cp_openfun, HikariCP's connectionInitSql)
      Policy.onConnect<C, E>((c) => Effect.asVoid(db.driver.query(c, "SET application_name = 'health'"))),
      // what every ping runs (Twisted's cp_good_sql)
      Policy.livenessQuery("SELECT 1"),
      Policy.prePing({ timeout: "2 seconds" }),
      keepalive,
      Policy.resetOnReturn("rollback")
    ]
  })
  yield* TestClock.adjust("1 second")

  // prePing: the server restarts while every connection is idle; the caller never sees the dead ones
  yield* db.restart("0 millis", { notify: false })
  const afterRestart = yield* Pool.use(pool, (c) => db.driver.query(c, "SELECT 1"))
  const generation = (yield* Pool.stats(pool)).generation

  // keepalive: an idle connection is dropped silently (a firewall's idle timeout); the next pass replaces it
  const [victim] = yield* db.connections
  yield* db.kill(victim!, { notify: false })
  yield* TestClock.adjust("40 seconds")
  const replacedBySchedule = victim!.closed

  // the ping command runs one pass now (Spanner's PingingPool.ping())
  const [another] = yield* db.connections
  yield* db.kill(another!, { notify: false })
  yield* (yield* Pool.policy(pool, keepalive)).ping
  const replacedByCommand = another!.closed

  const stats = yield* Pool.stats(pool)
  const connections = yield* db.connections
  return {
    serverVersion,
    afterRestart,
    generation,
    replacedBySchedule,
    replacedByCommand,
    allAlive: connections.every((c) => c.alive),
    open: stats.open,
    checkouts: stats.checkouts,
    closedBy: stats.closedBy
  }
}).pipe(Effect.scoped, Effect.provide(TestContext.TestContext))

if (import.meta.url === `file://${process.argv[1]}`) {
  Effect.runPromise(program).then(console.log, (error) => {
    console.error(error)
    process.exit(1)
  })
}
