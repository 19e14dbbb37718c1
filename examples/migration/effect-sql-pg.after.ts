/**
 * The "after" side of docs/migration/effect-sql-pg.md: the same programs as `effect-sql-pg.before.ts`, unchanged, on
 * effect-reservoir's `SqlClient` over a pool. Only the layers differ. Run it against a server with
 * `DATABASE_URL=postgres://... npx tsx examples/migration/effect-sql-pg.after.ts`.
 */
import { Config, Effect, Redacted } from "effect"
import * as SqlPg from "../../src/Sql/Pg.js"
import { bankTransfers } from "./effect-sql-pg.before.js"

// --- pair 1: the same option names, a different import ---

export const SqlLive = (url: string) =>
  SqlPg.layer({ url: Redacted.make(url), maxConnections: 4, applicationName: "bank" })

// --- pair 2: the options from the environment ---

/** With no argument: DATABASE_URL, and the pool's options from POOL_SIZE, POOL_TIMEOUT, ... */
export const SqlFromConfig = SqlPg.layerConfig()

/** Or your own names, as with `@effect/sql-pg`. */
export const SqlFromOwnConfig = SqlPg.layerConfig({
  url: Config.redacted("DATABASE_URL"),
  maxConnections: Config.integer("POOL_SIZE").pipe(Config.withDefault(10))
})

// --- pair 3: every connection is taken, and a statement waits ---

/** `connectTimeout` bounds one connect; the wait for a connection is the pool's `timeout` (30 seconds by default). */
export const OneConnection = (url: string) =>
  SqlPg.layer({ url: Redacted.make(url), maxConnections: 1, connectTimeout: "500 millis", pool: { timeout: 500 } })

if (import.meta.url === `file://${process.argv[1]}`) {
  const url = process.env["DATABASE_URL"]
  if (url === undefined) {
    console.error("set DATABASE_URL=postgres://user@host:port/database")
    process.exit(1)
  }
  Effect.runPromise(Effect.provide(bankTransfers, SqlLive(url))).then(console.log, (error) => {
    console.error(error)
    process.exit(1)
  })
}
