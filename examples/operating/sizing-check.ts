/**
 * A start-up check of a pool's ceiling against what a PostgreSQL server allows. It reads `max_connections` and
 * `superuser_reserved_connections` (and PostgreSQL 16's `reserved_connections`, 0 before it) through the pool, and
 * fails with `PoolSizingError` when `instances × (size + maxOverflow)` would not fit in what is left once the
 * connections kept for other clients are set aside; a pool with unbounded overflow has no ceiling and fails too.
 * Run it with `DATABASE_URL=postgres://... INSTANCES=4 npx tsx examples/operating/sizing-check.ts` (also
 * `POOL_SIZE`, `POOL_MAX_OVERFLOW`, `OTHER_CLIENTS`); it exits with 1 and the error's message when the plan does
 * not fit.
 */
import { NodeRuntime } from "@effect/platform-node"
import { Config, Console, Context, Data, Effect, Layer } from "effect"
import * as Pg from "../../src/Driver/Pg.js"
import * as Pool from "../../src/Pool.js"

/** How the pool is deployed. */
export interface Plan {
  /** Copies of the application running at once, each with this pool (replicas, plus the extra ones of a deploy). */
  readonly instances: number
  /** Connections kept for every other client: migrations, consoles, monitoring, other services. */
  readonly otherClients: number
}

/** What the server allows and what the plan asks for. */
export interface Budget {
  readonly maxConnections: number
  readonly superuserReserved: number
  readonly reserved: number
  /** `maxConnections - superuserReserved - reserved - otherClients`: what this application may open. */
  readonly available: number
  /** `instances × (size + maxOverflow)`. */
  readonly demand: number
}

export class PoolSizingError extends Data.TaggedError("PoolSizingError")<{
  readonly pool: string
  readonly message: string
}> {}

/** A server setting as a number: `SHOW name`, or `current_setting` for one the server may not have (0 then). */
const setting = <C, E>(pool: Pool.Pool<C, E>, name: string, missingOk = false) =>
  Effect.map(
    Pool.query(pool, missingOk ? `SELECT current_setting('${name}', true) AS ${name}` : `SHOW ${name}`),
    (rows) => Number(rows[0]?.[name] ?? 0)
  )

/** Reads the server's limits through `pool` and checks the plan against them. */
export const checkSizing = <C, E>(pool: Pool.Pool<C, E>, plan: Plan) =>
  Effect.gen(function*() {
    const { maxOverflow, name, size } = yield* Pool.stats(pool)
    const maxConnections = yield* setting(pool, "max_connections")
    const superuserReserved = yield* setting(pool, "superuser_reserved_connections")
    const reserved = yield* setting(pool, "reserved_connections", true)
    const available = maxConnections - superuserReserved - reserved - plan.otherClients
    const allows = `max_connections ${maxConnections} - superuser_reserved_connections ${superuserReserved}` +
      (reserved > 0 ? ` - reserved_connections ${reserved}` : "") +
      ` - ${plan.otherClients} for other clients`
    if (maxOverflow === Infinity) {
      return yield* new PoolSizingError({
        pool: name,
        message: `Pool "${name}": maxOverflow is "unbounded", so nothing bounds its connections (${allows})`
      })
    }
    const demand = plan.instances * (size + maxOverflow)
    const plan_ = `${plan.instances} instances × (size ${size} + maxOverflow ${maxOverflow}) = ${demand} connections`
    if (demand > available) {
      return yield* new PoolSizingError({
        pool: name,
        message: `Pool "${name}": ${plan_}, more than the ${available} this server leaves them (${allows})`
      })
    }
    yield* Console.log(`Pool "${name}": ${plan_}, within the ${available} this server leaves them (${allows})`)
    return { maxConnections, superuserReserved, reserved, available, demand } satisfies Budget
  })

export class Db extends Context.Tag("app/Db")<Db, Pool.Pool<Pg.PgConnection, Pg.PgError>>() {}

/** The application's pool as a layer that fails at start when the plan does not fit the server. */
export const DbLive = (options: Pool.Options<Pg.PgConnection, Pg.PgError>, plan: Plan) =>
  Pool.layer(Db, options).pipe(Layer.tap((context) => checkSizing(Context.get(context, Db), plan)))

if (import.meta.url === `file://${process.argv[1]}`) {
  Effect.gen(function*() {
    const url = yield* Config.redacted("DATABASE_URL")
    const size = yield* Config.integer("POOL_SIZE").pipe(Config.withDefault(5))
    const maxOverflow = yield* Config.integer("POOL_MAX_OVERFLOW").pipe(Config.withDefault(10))
    const instances = yield* Config.integer("INSTANCES").pipe(Config.withDefault(1))
    const otherClients = yield* Config.integer("OTHER_CLIENTS").pipe(Config.withDefault(10))
    const live = DbLive({ driver: Pg.driver({ url }), name: "orders-api", size, maxOverflow }, {
      instances,
      otherClients
    })
    yield* Effect.provide(Effect.flatMap(Db, Pool.status), live).pipe(Effect.flatMap(Console.log))
  }).pipe(NodeRuntime.runMain)
}
