import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Schedule from "effect/Schedule"
import type { ConnectionRecord } from "../../ConnectionRecord.js"
import type * as Policy from "../../Policy.js"
import { ConnectionRejected } from "../../PoolError.js"
import { Lock } from "../lock.js"
import * as check from "./check.js"
import { stateful } from "./make.js"
import { decode, millis, toSchedule } from "./upkeep.js"

/** What `Effect.timeoutFail` fails a ping with when it gets no answer in time. */
class PingTimeout {
  readonly _tag = "PingTimeout"
}

/** When the server last heard from the connection: its return, or its last validation, whichever is later. */
const quietSince = (record: ConnectionRecord): number => Math.max(record.lastReturnedAt, record.lastValidatedAt)

/**
 * Keepalive. One pass takes each idle connection in turn (`forEachIdle`: out of reach while it is pinged), pings it
 * with the pool's liveness check bounded by `timeout`, and puts it back validated; a failed or unanswered ping
 * closes it (that one only: no new generation, unlike pre-ping), and `refill` replaces what was closed.
 *
 * A pass yields to borrowers: `forEachIdle` takes a connection before the function sees it, so the function looks
 * at `stats.waiting` first and, when a checkout waits, returns at once without a round trip; `forEachIdle` then
 * offers the connection back, which hands it straight to that waiter. A pass over connections none of which is due
 * (all used or validated within `idleFor`) touches nothing at all.
 *
 * The ping runs `disconnect`ed: its timeout, and the interruption of the pass when the pool closes, end the wait at
 * once even when a driver's ping is slow to give up (an uninterruptible round trip); the connection is closed
 * either way. Passes take turns on a semaphore of one, so the `ping` command and the schedule never overlap.
 *
 * @internal
 */
export const keepalive = <C = never, E = never>(
  schedule: Schedule.Schedule<unknown, unknown> | Duration.DurationInput,
  options?: {
    readonly timeout?: Duration.DurationInput | undefined
    readonly idleFor?: Duration.DurationInput | undefined
  }
): Policy.Policy<C, E, Policy.KeepaliveCommands> => {
  const problems = check.problemsOf(
    check.schedule("schedule", schedule),
    options?.timeout === undefined ? undefined : check.duration("timeout", options.timeout, { positive: true }),
    options?.idleFor === undefined ? undefined : check.duration("idleFor", options.idleFor, { infinite: false })
  )
  if (problems.length > 0) return check.invalid("keepalive", problems)
  const every = toSchedule(schedule)
  const timeout = decode(options?.timeout ?? "5 seconds")
  const idleFor = millis(options?.idleFor ?? 0)
  const noAnswer = `keepalive: no answer within ${Duration.format(timeout)}`
  const isDue = (record: ConnectionRecord, now: number): boolean => now - quietSince(record) >= idleFor

  const pingOne = (context: Policy.HookContext<C, E>): Effect.Effect<void, ConnectionRejected> =>
    Effect.disconnect(context.ping()).pipe(
      Effect.timeoutFail({ duration: timeout, onTimeout: () => new PingTimeout() }),
      Effect.matchEffect({
        onSuccess: () => Effect.sync(context.markValidated),
        onFailure: (error) => {
          if (error instanceof PingTimeout) return Effect.fail(new ConnectionRejected({ reason: noAnswer }))
          // no new generation on a disconnect (unlike pre-ping): the pass pings every idle connection anyway, and a
          // firewall dropping one idle session must not replace the whole pool
          const disconnect = context.driver.isDisconnect(error)
          return Effect.fail(
            new ConnectionRejected({
              reason: disconnect ? "keepalive: disconnected" : "keepalive: ping failed",
              cause: error
            })
          )
        }
      })
    )

  return stateful<C, E, Policy.KeepaliveCommands>("keepalive", (pool) =>
    Effect.sync(() => {
      const turn = new Lock(1)
      const visit = (context: Policy.HookContext<C, E>): Effect.Effect<void, ConnectionRejected> =>
        Effect.flatMap(pool.stats, (stats) =>
          // someone waits: the connection goes back at once, to them, unpinged
          stats.waiting > 0 || !isDue(context.record, context.now) ? Effect.void : pingOne(context))
      const anyDue = Effect.flatMap(
        Effect.zip(pool.now, pool.idle),
        ([now, records]) => Effect.succeed(records.some((record) => isDue(record, now)))
      )
      const pass = turn.withPermit(
        Effect.zipRight(
          Effect.whenEffect(pool.forEachIdle(visit), anyDue),
          pool.refill
        )
      )
      return {
        commands: { ping: pass },
        // the first pass comes one step of the schedule after the pool opens: its connections are fresh
        background: () => Effect.asVoid(Effect.schedule(pass, every))
      }
    }))
}
