import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type { ConnectionRecord } from "../../ConnectionRecord.js"
import type * as Policy from "../../Policy.js"
import type { PoolStats } from "../../PoolError.js"
import * as check from "./check.js"
import { millis, whenDue } from "./upkeep.js"

/**
 * How many connections may be closed without going below `min`. Connections already closing still count in
 * `open` until their close completes, so they are left out: another pass (or a close elsewhere) must not make
 * this one think there is room it no longer has.
 */
const aboveMin = (stats: PoolStats): number => stats.idle + stats.maintained + stats.inUse - stats.min

/** When an idle connection falls due: `timeout` after it came back (a connection never lent: after it opened). */
const dueAt = (record: ConnectionRecord, timeout: number): number => record.lastReturnedAt + timeout

/**
 * The idle connections due at `now`, longest idle first. The pool's idle list is mostly in that order already, but
 * a connection a keepalive pass pinged goes back at its end without having been used, so it is sorted here.
 */
const dueNow = (records: ReadonlyArray<ConnectionRecord>, now: number, timeout: number) =>
  records.filter((record) => dueAt(record, timeout) <= now).sort((a, b) => a.lastReturnedAt - b.lastReturnedAt)

/**
 * Idle timeout. One background loop sleeps until the longest-idle connection falls due, and only while more than
 * `min` are open: at `min` nothing may be closed, so it sleeps the horizon (`timeout`: any connection that appears
 * meanwhile falls due no sooner than that). A pass closes the due connections, longest idle first, stopping at
 * `min`; closing one that a checkout took meanwhile is refused by `retire` and leaves it alone.
 *
 * @internal
 */
export const idleTimeout = <C = never, E = never>(timeout: Duration.DurationInput): Policy.Policy<C, E> => {
  const problems = check.problemsOf(check.duration("timeout", timeout, { positive: true, infinite: true }))
  if (problems.length > 0) return check.invalid("idleTimeout", problems)
  const limit = millis(timeout)
  // no timeout at all: nothing ever falls due, and there is no loop to run
  if (!Number.isFinite(limit)) return { name: "idleTimeout" }
  return {
    name: "idleTimeout",
    background: (pool) => {
      const due = Effect.flatMap(
        pool.stats,
        (stats) =>
          aboveMin(stats) <= 0 ? Effect.succeed(Infinity) : Effect.map(pool.idle, (records) => {
            let next = Infinity
            for (const record of records) next = Math.min(next, dueAt(record, limit))
            return next
          })
      )
      const pass = Effect.gen(function*() {
        const now = yield* pool.now
        const records = dueNow(yield* pool.idle, now, limit)
        let room = aboveMin(yield* pool.stats)
        for (const record of records) {
          if (room <= 0) break
          if (yield* pool.retire(record, "idle")) room--
        }
      })
      return whenDue(pool, due, Math.max(1, limit), pass)
    }
  }
}
