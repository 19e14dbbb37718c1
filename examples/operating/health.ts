/**
 * A readiness probe read from `Pool.stats`: not ready while the pool is closing (the process is shutting down) or
 * while its connects fail (the database is unreachable and the pool is backing off), ready otherwise. It costs no
 * round trip: the pool already knows. Serve it on the endpoint your orchestrator polls; keep liveness apart (a
 * process whose database is down is not helped by a restart).
 */
import { Effect } from "effect"
import * as Pool from "../../src/Pool.js"

export interface Readiness {
  readonly ready: boolean
  readonly reason: string
}

export const readiness = <C, E>(pool: Pool.Pool<C, E>): Effect.Effect<Readiness> =>
  Effect.map(Pool.stats(pool), (stats): Readiness => {
    if (stats.isClosed) return { ready: false, reason: `pool "${stats.name}" is closed` }
    if (stats.backingOff) {
      return { ready: false, reason: `pool "${stats.name}" cannot connect (${stats.connectFailures} failed connects)` }
    }
    return {
      ready: true,
      reason: `pool "${stats.name}": ${stats.inUse} in use, ${stats.idle} idle, ${stats.waiting} waiting`
    }
  })
