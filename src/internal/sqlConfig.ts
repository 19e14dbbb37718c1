import * as Config from "effect/Config"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import type { Driver } from "../Driver.js"
import type { Policy } from "../Policy.js"
import type * as PoolTypes from "../Pool.js"
import { PoolConfigError } from "../PoolError.js"
import * as poolConfig from "./config.js"
import * as checks from "./policies/check.js"
import { idleTimeout } from "./policies/idleTimeout.js"
import { prePing } from "./policies/prePing.js"
import { recycle } from "./policies/recycle.js"
import { resetOnReturn } from "./policies/resetOnReturn.js"

/**
 * The options of a `SqlClient`'s pool: the pool's own, under `pool`, and the names `@effect/sql-pg` and
 * `@effect/sql-sqlite-node` give to some of them, so that moving from those clients keeps the options as they are.
 *
 * @internal
 */
export interface PoolFields<C, E> {
  readonly pool?:
    | (PoolTypes.BaseOptions & { readonly policies?: ReadonlyArray<Policy<C, E, any>> | undefined })
    | undefined
  readonly maxConnections?: number | undefined
  readonly minConnections?: number | undefined
  readonly idleTimeout?: Duration.DurationInput | undefined
  readonly connectionTTL?: Duration.DurationInput | undefined
  readonly applicationName?: string | undefined
}

/** The fields of a client's options that are not the driver's. @internal */
export const clientKeys: ReadonlySet<string> = new Set([
  "pool",
  "maxConnections",
  "minConnections",
  "idleTimeout",
  "connectionTTL",
  "username",
  "ssl",
  "types",
  "spanAttributes",
  "transformResultNames",
  "transformQueryNames",
  "transformJson",
  "disableWAL",
  "prepareCacheSize",
  "prepareCacheTTL"
])

/** The driver's fields of a client's options. @internal */
export const driverFields = <A extends object>(config: A): any => {
  const out: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(config)) {
    if (!clientKeys.has(key) && value !== undefined) out[key] = value
  }
  return out
}

/** The policies that close connections on their own (a lifetime, an idle limit, a use count). */
const closingPolicies: ReadonlySet<string> = new Set(["recycle", "lifetime", "idleTimeout", "maxUses"])

/**
 * The pool's options from a client's: `maxConnections` is the pool's hard limit (`size`, no overflow, as pg-pool's
 * `max`), `minConnections` its `min`, `connectionTTL` the `recycle` age, `idleTimeout` an `idleTimeout` policy. The
 * default policies of a driver pool apply (`recycle("30 minutes")`, `prePing()`, `resetOnReturn("rollback")`)
 * unless `pool.policies` is given; `connectionTTL` and `idleTimeout` add to either. Giving a limit both ways
 * (`maxConnections` and `pool.size`) is a `PoolConfigError`, as are other contradictions.
 *
 * @internal
 */
export const split = <C, E>(
  config: PoolFields<C, E>,
  defaultName: string,
  /** The driver the pool will have: its own problems and the pool's are listed with the client's, all at once. */
  driver: Driver<C, E>,
  /** One connection only, kept open from the start, no default policies (SQLite's `:memory:`). */
  fixed?: { readonly size: number; readonly reason: string }
): Effect.Effect<
  { readonly pool: PoolTypes.BaseOptions & { readonly policies: ReadonlyArray<Policy<C, E, any>> } },
  PoolConfigError
> =>
  Effect.suspend(() => {
    const own = config.pool ?? {}
    const name = own.name ?? config.applicationName ?? defaultName
    const problems: Array<string> = []
    if (config.maxConnections !== undefined && (own.size !== undefined || own.maxOverflow !== undefined)) {
      problems.push("maxConnections: give the limit either as maxConnections or as pool.size / pool.maxOverflow")
    }
    if (config.minConnections !== undefined && own.min !== undefined) {
      problems.push("minConnections: give the minimum either as minConnections or as pool.min")
    }
    if (fixed !== undefined) {
      // named as given: `maxConnections` when the caller used it, `size` otherwise (a null is given, and refused)
      const sizeName = config.maxConnections !== undefined ? "maxConnections" : "size"
      const size = config.maxConnections !== undefined ? config.maxConnections : own.size
      if (size !== undefined && size !== fixed.size) {
        problems.push(`${sizeName}: must be ${fixed.size} (${fixed.reason}), got ${size}`)
      }
      if (own.maxOverflow !== undefined && own.maxOverflow !== 0) {
        problems.push(`maxOverflow: must be 0 (${fixed.reason}), got ${own.maxOverflow}`)
      }
      const minName = config.minConnections !== undefined ? "minConnections" : "min"
      const min = config.minConnections !== undefined ? config.minConnections : own.min
      if (min !== undefined && min !== fixed.size) {
        problems.push(`${minName}: must be ${fixed.size} (${fixed.reason}), got ${min}`)
      }
      if (config.connectionTTL !== undefined) {
        problems.push(`connectionTTL: a recycled connection would take the database with it (${fixed.reason})`)
      }
      if (config.idleTimeout !== undefined) {
        problems.push(`idleTimeout: a connection closed when idle would take the database with it (${fixed.reason})`)
      }
      for (const policy of own.policies ?? []) {
        if (closingPolicies.has(policy.name)) {
          problems.push(
            `policies: ${policy.name} closes connections, and each close would take the database with it (${fixed.reason})`
          )
        }
      }
    }
    // the client's own durations are checked under their own names (not as the policies they become)
    const ttl = config.connectionTTL === undefined ?
      undefined :
      checks.duration("connectionTTL", config.connectionTTL, { positive: true, infinite: true })
    const idle = config.idleTimeout === undefined ?
      undefined :
      checks.duration("idleTimeout", config.idleTimeout, { positive: true, infinite: true })
    if (fixed === undefined) problems.push(...[ttl, idle].filter((p): p is string => p !== undefined))
    const extra: Array<Policy<C, E, any>> = []
    if (config.connectionTTL !== undefined && ttl === undefined) extra.push(recycle<C, E>(config.connectionTTL))
    if (config.idleTimeout !== undefined && idle === undefined) extra.push(idleTimeout<C, E>(config.idleTimeout))
    const policies: ReadonlyArray<Policy<C, E, any>> = own.policies !== undefined ?
      [...own.policies, ...extra] :
      fixed !== undefined ?
      [] :
      [
        ...(config.connectionTTL === undefined ? [recycle<C, E>("30 minutes")] : []),
        prePing<C, E>(),
        resetOnReturn<C, E>("rollback"),
        ...extra
      ]
    const pool = {
      ...own,
      name,
      ...(config.maxConnections !== undefined ? { size: config.maxConnections, maxOverflow: 0 } : {}),
      ...(config.minConnections !== undefined ? { min: config.minConnections } : {}),
      // last: what a `:memory:` database must have (a value that says otherwise is a problem listed above)
      ...(fixed !== undefined ? { size: fixed.size, maxOverflow: 0, min: fixed.size } : {}),
      policies
    }
    // the pool's own checks, now, so that every problem is listed in one error, under the name the caller gave
    const decoded = poolConfig.decode({ ...pool, driver })
    if (Either.isLeft(decoded)) problems.push(...decoded.left.problems.map((problem) => renamed(config, problem)))
    return problems.length > 0 ?
      Effect.fail(new PoolConfigError({ pool: name, problems: [...new Set(problems)] })) :
      Effect.succeed({ pool })
  })

/** A pool's problem under the client's name for the option, when the client's name was the one given. */
const renamed = (config: PoolFields<any, any>, problem: string): string => {
  if (config.maxConnections !== undefined && /^size( \+ maxOverflow)?:/.test(problem)) {
    return problem.replace(/^size( \+ maxOverflow)?:/, "maxConnections:")
  }
  if (config.minConnections !== undefined && problem.startsWith("min:")) {
    return `minConnections:${problem.slice("min:".length)}`
  }
  return problem
}

const optional = <A>(config: Config.Config<A>): Config.Config<A | undefined> =>
  Config.map(Config.option(config), (option) => option._tag === "Some" ? option.value : undefined)

/**
 * The pool's options from the environment, all optional: `POOL_NAME`, `POOL_SIZE`, `POOL_MAX_OVERFLOW`, `POOL_MIN`,
 * `POOL_TIMEOUT`, `POOL_CONNECT_TIMEOUT` (durations such as `"5 seconds"`).
 *
 * @internal
 */
export const poolFromEnv: Config.Config<PoolTypes.BaseOptions> = Config.map(
  Config.all({
    name: optional(Config.string("POOL_NAME")),
    size: optional(Config.integer("POOL_SIZE")),
    maxOverflow: optional(Config.integer("POOL_MAX_OVERFLOW")),
    min: optional(Config.integer("POOL_MIN")),
    timeout: optional(Config.string("POOL_TIMEOUT")),
    connectTimeout: optional(Config.string("POOL_CONNECT_TIMEOUT"))
  }),
  (values) => {
    const out: Record<string, unknown> = {}
    for (const [key, value] of Object.entries(values)) if (value !== undefined) out[key] = value
    return out as PoolTypes.BaseOptions
  }
)
