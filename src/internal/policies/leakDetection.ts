import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as FiberId from "effect/FiberId"
import type { ConnectionRecord } from "../../ConnectionRecord.js"
import type * as Policy from "../../Policy.js"
import * as check from "./check.js"
import { stateful } from "./make.js"
import { millis, whenDue } from "./upkeep.js"

/** A lending reported as a leak: the connection's record and when that lending began. */
interface Reported {
  readonly since: number
}

/** The holder fiber's id as Effect prints it (`#12`). */
const holderIdOf = (holder: Policy.Holder): string | undefined =>
  holder.fiber === undefined ? undefined : FiberId.threadName(holder.fiber.id())

/**
 * Leak detection. A background loop sleeps until the next unreported lending reaches `threshold` (`whenDue` over
 * `PoolHandle.holders`) and reports each lending once: a `Leak` event, then, with `reclaim`, the holder interrupted
 * and the connection closed. A lending is its record and its checkout time, so the same connection lent again is a
 * new lending.
 *
 * Every `Leak` is followed by one `Unleaked`: when the connection comes back (an `onReturn` hook, which answers
 * `Effect.void` at once while nothing is reported, so it costs a return nothing), right after a reclaim closed it,
 * or, for a reported connection that left without a return (invalidated or stale, so the return hooks were skipped;
 * detached), at the loop's next pass, at most one threshold later.
 *
 * The events carry the connection, which `Holder` does not: an `onConnect` hook remembers each record's connection
 * in a `WeakMap`, once per connection.
 *
 * @internal
 */
export const leakDetection = <C = never, E = never>(
  threshold: Duration.DurationInput,
  options?: { readonly reclaim?: boolean | undefined; readonly trace?: "span" | "stack" | undefined }
): Policy.Policy<C, E, Policy.LeakCommands> => {
  const problems = check.problemsOf(
    check.duration("threshold", threshold, { positive: true, infinite: false }),
    options?.trace === undefined || options.trace === "span" || options.trace === "stack" ?
      undefined :
      `trace: Expected "span" or "stack", got ${String(options.trace)}`
  )
  if (problems.length > 0) return check.invalid("leakDetection", problems)
  const after = millis(threshold)
  const reclaim = options?.reclaim === true
  const trace = options?.trace ?? "span"
  return stateful<C, E, Policy.LeakCommands>("leakDetection", (pool) =>
    Effect.sync(() => {
      const connections = new WeakMap<ConnectionRecord, C>()
      const reported = new Map<ConnectionRecord, Reported>()

      const isReported = (holder: Policy.Holder): boolean => reported.get(holder.record)?.since === holder.since

      /** The `Unleaked` of a reported lending that ended at `now`. */
      const unleaked = (record: ConnectionRecord, connection: C, since: number, now: number) => {
        reported.delete(record)
        return pool.emit({ _tag: "Unleaked", pool: pool.name, record, connection, heldMillis: now - since })
      }

      /** Reports one lending: its `Leak`, then, with `reclaim`, the holder interrupted and the connection closed. */
      const report = (holder: Policy.Holder, now: number): Effect.Effect<void> => {
        const record = holder.record
        const connection = connections.get(record) as C
        reported.set(record, { since: holder.since })
        const leak = pool.emit({
          _tag: "Leak",
          pool: pool.name,
          record,
          connection,
          holder: holder.fiber,
          holderId: holderIdOf(holder),
          since: holder.since,
          heldMillis: now - holder.since,
          trace: holder.trace,
          reclaimed: reclaim
        })
        if (!reclaim) return leak
        return Effect.zipRight(
          leak,
          Effect.suspend(() =>
            // a listener of the `Leak` may have let the borrower return it meanwhile: that return was its `Unleaked`
            reported.get(record)?.since !== holder.since ?
              Effect.void :
              Effect.flatMap(pool.reclaim(record), (taken) =>
                taken ?
                  Effect.flatMap(pool.now, (at) => unleaked(record, connection, holder.since, at)) :
                  Effect.void)
          )
        )
      }

      /** The reported lendings no longer lent (closed or detached without a return). */
      const gone = (holders: ReadonlyArray<Policy.Holder>): Array<ConnectionRecord> => {
        if (reported.size === 0) return []
        const held = new Set<ConnectionRecord>()
        for (const holder of holders) if (isReported(holder)) held.add(holder.record)
        return Array.from(reported.keys()).filter((record) => !held.has(record))
      }

      const due = Effect.flatMap(Effect.zip(pool.holders, pool.now), ([holders, now]) => {
        if (gone(holders).length > 0) return Effect.succeed(now)
        let next = Infinity
        for (const holder of holders) if (!isReported(holder)) next = Math.min(next, holder.since + after)
        return Effect.succeed(next)
      })

      const pass = Effect.flatMap(Effect.zip(pool.holders, pool.now), ([holders, now]) =>
        Effect.zipRight(
          Effect.forEach(gone(holders), (record) => {
            const since = reported.get(record)!.since
            return unleaked(record, connections.get(record) as C, since, now)
          }, { discard: true }),
          Effect.forEach(
            holders,
            (holder) => !isReported(holder) && now >= holder.since + after ? report(holder, now) : Effect.void,
            { discard: true }
          )
        ))

      const leaks = Effect.map(
        Effect.zip(pool.holders, pool.now),
        ([holders, now]) => holders.filter((holder) => now >= holder.since + after)
      )

      return {
        traceCheckouts: trace,
        onConnect: (context) => {
          connections.set(context.record, context.connection)
          return Effect.void
        },
        onReturn: (context) => {
          if (reported.size === 0) return Effect.void
          const entry = reported.get(context.record)
          // `lastUsedAt` is when this lending began
          if (entry === undefined || entry.since !== context.record.lastUsedAt) return Effect.void
          return unleaked(context.record, context.connection, entry.since, context.now)
        },
        // a lending that began after the loop went to sleep is due one threshold later at the earliest
        background: () => whenDue(pool, due, Math.max(1, after), pass),
        commands: { leaks }
      }
    }))
}
