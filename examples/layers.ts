/**
 * Pools as layers under the caller's own Tags: a primary and a replica side by side with `Pool.layer`, and a pool
 * whose options come from environment variables with `Pool.layerConfig`. Run it with `npx tsx examples/layers.ts`.
 */
import { Config, ConfigProvider, Context, Effect, Layer } from "effect"
import * as Memory from "../src/Driver/Memory.js"
import * as Pool from "../src/Pool.js"

class Primary extends Context.Tag("app/Primary")<Primary, Pool.Pool<Memory.MemoryConnection, Memory.MemoryError>>() {}
class Replica extends Context.Tag("app/Replica")<Replica, Pool.Pool<Memory.MemoryConnection, Memory.MemoryError>>() {}
class Reports extends Context.Tag("app/Reports")<Reports, Pool.Pool<Memory.MemoryConnection, Memory.MemoryError>>() {}

// the application only asks for its Tags; which pool serves which is decided where the layers are built
const app = Effect.gen(function*() {
  const primary = yield* Primary
  const replica = yield* Replica
  const reports = yield* Reports
  yield* Pool.transaction(primary, (c) => primary.driver.query(c, "INSERT INTO audit VALUES ('login')"))
  const rows = yield* Pool.use(replica, (c) => replica.driver.query(c, "SELECT 1"))
  return {
    rows,
    primary: yield* Pool.status(primary),
    replica: yield* Pool.status(replica),
    reports: Pool.config(reports)
  }
})

export const program = Effect.gen(function*() {
  const primaryDb = yield* Memory.make()
  const replicaDb = yield* Memory.make()
  const reportsDb = yield* Memory.make()

  const pools = Layer.mergeAll(
    Pool.layer(Primary, { driver: primaryDb.driver, name: "primary", size: 5, maxOverflow: 5 }),
    Pool.layer(Replica, { driver: replicaDb.driver, name: "replica", size: 2, order: "lifo" }),
    // POOL_SIZE, POOL_TIMEOUT and POOL_ORDER are read through Effect's Config (environment variables by default)
    Pool.layerConfig(Reports, reportsDb.driver, {
      name: Config.succeed("reports"),
      size: Config.integer("POOL_SIZE").pipe(Config.withDefault(5)),
      timeout: Config.string("POOL_TIMEOUT").pipe(Config.withDefault("30 seconds")),
      order: Config.literal("fifo", "lifo")("POOL_ORDER").pipe(Config.withDefault("fifo" as const))
    })
  )

  // here a map stands in for the environment: POOL_SIZE=3 POOL_TIMEOUT="5 seconds"
  const env = ConfigProvider.fromMap(new Map([["POOL_SIZE", "3"], ["POOL_TIMEOUT", "5 seconds"]]))
  const result = yield* app.pipe(Effect.provide(pools), Effect.withConfigProvider(env))

  // the layers' scope has closed: every connection of all three pools is closed
  const open = (yield* primaryDb.stats).open + (yield* replicaDb.stats).open + (yield* reportsDb.stats).open
  return { ...result, committed: yield* primaryDb.committed, openAfterwards: open }
})

if (import.meta.url === `file://${process.argv[1]}`) {
  Effect.runPromise(program).then(console.log, (error) => {
    console.error(error)
    process.exit(1)
  })
}
