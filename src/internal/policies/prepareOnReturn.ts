import * as Deferred from "effect/Deferred"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberId from "effect/FiberId"
import type * as Schedule from "effect/Schedule"
import type { ConnectionRecord } from "../../ConnectionRecord.js"
import type * as Policy from "../../Policy.js"
import * as check from "./check.js"
import { stateful } from "./make.js"
import { toSchedule } from "./upkeep.js"

/** Nothing ever waits for a go signal without `pending`: the commands have nothing to do. */
const noneWaiting: Policy.PrepareCommands = { beginPending: Effect.succeed(0), pending: Effect.succeed(0) }

/**
 * The go signal of the connections that wait for their preparation: one `Deferred` per batch, completed and
 * replaced by `release`, and the set of the batch's entries, each completed with whether its preparation succeeded.
 */
class Pending {
  gate = Deferred.unsafeMake<void>(FiberId.none)
  readonly waiting = new Set<Deferred.Deferred<boolean>>()

  /**
   * Lets every waiting connection go, synchronously (an `admit` hook cannot run an Effect), and answers their
   * entries, which complete once each preparation ends.
   */
  release(): ReadonlyArray<Deferred.Deferred<boolean>> {
    if (this.waiting.size === 0) return []
    const released = Array.from(this.waiting)
    this.waiting.clear()
    const gate = this.gate
    this.gate = Deferred.unsafeMake<void>(FiberId.none)
    Deferred.unsafeDone(gate, Exit.void)
    return released
  }

  /**
   * Waits for the go signal, then runs `prepare`. The entry is registered and removed under `acquireUseRelease`:
   * a wait cut short (the pool closing interrupts the preparation fiber) leaves no entry behind, and completes the
   * entry, so a `beginPending` that released it answers instead of waiting for ever.
   */
  wait<E>(prepare: Effect.Effect<void, E>): Effect.Effect<void, E> {
    return Effect.acquireUseRelease(
      Effect.sync(() => {
        const entry = Deferred.unsafeMake<boolean>(FiberId.none)
        this.waiting.add(entry)
        return [entry, this.gate] as const
      }),
      ([, gate]) => Effect.zipRight(Deferred.await(gate), prepare),
      ([entry], exit) =>
        Effect.sync(() => {
          this.waiting.delete(entry)
          Deferred.unsafeDone(entry, Exit.succeed(Exit.isSuccess(exit)))
        })
    )
  }
}

/**
 * Prepare on return. The core runs the `prepare` hook in a fiber of its own after the return hooks, with the
 * connection `preparing` (counted in `stats.maintained`, never lent); a failure or an interruption closes it.
 *
 * A fresh connection is prepared too, in the `onConnect` hook (at once, whatever `pending` says: a connect usually
 * has a checkout waiting for it), so every lending, the first included, finds the connection prepared, as a
 * transaction-pinging pool needs; a `prepare` that checks `record.uses === 0` can skip it.
 *
 * With `pending`, the `prepare` hook first waits for a go signal: the next step of the schedule (a `background`
 * fiber), the `beginPending` command, or a checkout about to park (the `admit` hook, which releases every waiting
 * connection and admits the checkout).
 *
 * @internal
 */
export const prepareOnReturn = <C, E>(
  prepare: (connection: C, record: ConnectionRecord) => Effect.Effect<void, E>,
  options?: {
    readonly pending?: Schedule.Schedule<unknown, unknown> | Duration.DurationInput | "manual" | undefined
  }
): Policy.Policy<C, E, Policy.PrepareCommands> => {
  const problems = check.problemsOf(
    typeof prepare === "function" ? undefined : `prepare: Expected a function, got ${String(prepare)}`,
    options?.pending === undefined || options.pending === "manual"
      ? undefined
      : check.schedule("pending", options.pending)
  )
  if (problems.length > 0) return check.invalid("prepareOnReturn", problems)
  const run = (context: Policy.HookContext<C, E>) => prepare(context.connection, context.record)
  const pending = options?.pending
  if (pending === undefined) {
    return stateful<C, E, Policy.PrepareCommands>(
      "prepareOnReturn",
      () => Effect.succeed({ onConnect: run, prepare: run, commands: noneWaiting })
    )
  }
  const schedule = pending === "manual" ? undefined : toSchedule(pending)
  return stateful<C, E, Policy.PrepareCommands>("prepareOnReturn", (pool) =>
    Effect.sync(() => {
      const state = new Pending()
      const beginPending = Effect.suspend(() => {
        const released = state.release()
        return released.length === 0 ?
          Effect.succeed(0) :
          Effect.map(
            Effect.forEach(released, Deferred.await),
            (prepared) => prepared.filter((ok) => ok).length
          )
      })
      const instance: Policy.Instance<C, E, Policy.PrepareCommands> = {
        onConnect: run,
        // deferred: a `prepare` that does work when called (not only when run) waits for the signal too
        // a checkout already waiting when the connection comes back needs it now: no waiting for the signal
        prepare: (context) =>
          Effect.flatMap(pool.stats, (stats) =>
            stats.waiting > 0 ? run(context) : state.wait(Effect.suspend(() => run(context)))),
        // a checkout that finds nothing idle would wait for these anyway: they go now, and the checkout parks
        admit: () => {
          state.release()
          return undefined
        },
        commands: {
          beginPending,
          pending: Effect.sync(() =>
            state.waiting.size
          )
        },
        ...(schedule === undefined ? {} : {
          // the first release comes one step of the schedule after the pool opens
          background: () => Effect.asVoid(Effect.schedule(Effect.sync(() => state.release()), schedule))
        })
      }
      return instance
    }))
}
