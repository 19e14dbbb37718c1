import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as FiberId from "effect/FiberId"
import * as Schedule from "effect/Schedule"
import type * as Policy from "../../Policy.js"
import { readDuration } from "../config.js"

/**
 * The timings of the policies: a `Schedule`, or a `Duration` as sugar for `Schedule.spaced`.
 *
 * @internal
 */
export const toSchedule = <Out, In>(
  input: Schedule.Schedule<Out, In> | Duration.DurationInput
): Schedule.Schedule<unknown, In> =>
  Schedule.isSchedule(input) ? input as Schedule.Schedule<unknown, In> : Schedule.spaced(decode(input))

/**
 * A duration the argument checks (`check.duration`) accepted: every form they read (the JSON forms `"Infinity"` and
 * `"1500"` too, which `Duration.decode` refuses), read the same way.
 *
 * @internal
 */
export const decode = (input: Duration.DurationInput): Duration.Duration =>
  Either.getOrElse(readDuration(input), () => Duration.decode(input))

/** @internal */
export const millis = (input: Duration.DurationInput): number => Duration.toMillis(decode(input))

/**
 * What a hook may ring to wake a `whenDue` loop early: something falls due at `at`, sooner than the loop may be
 * sleeping for (a connection that was lent while the loop slept comes back with a lifetime ending before the
 * loop's horizon). Ringing is synchronous and cheap: hooks ring on the borrower's path.
 *
 * @internal
 */
export class Alarm {
  /** The earliest time rung since the loop last woke. */
  next = Infinity
  /** The time the loop sleeps until. */
  private target = Infinity
  private bell: Deferred.Deferred<void> | undefined = undefined
  ring(at: number): void {
    if (at < this.next) this.next = at
    if (at < this.target && this.bell !== undefined) {
      const bell = this.bell
      this.bell = undefined
      Deferred.unsafeDone(bell, Exit.void)
    }
  }
  /** Sleeps `millis` (until `until`), or less if rung meanwhile. */
  sleep(millis: number, until: number): Effect.Effect<void> {
    return Effect.suspend(() => {
      const bell = Deferred.unsafeMake<void>(FiberId.none)
      this.bell = bell
      this.target = until
      return Effect.ensuring(
        Effect.raceFirst(Effect.sleep(Duration.millis(millis)), Deferred.await(bell)),
        Effect.sync(() => {
          this.bell = undefined
          this.target = Infinity
        })
      )
    })
  }
}

/**
 * The shortest horizon a `whenDue` loop sleeps for: a loop whose items fall due ever sooner (a lifetime shorter than
 * a connect) wakes at most this often, never a thousand times a second.
 *
 * @internal
 */
export const minimumHorizonMillis = 10

/**
 * A background loop for a policy whose work falls due at known times (a lifetime ending, an idle timeout, a leak
 * threshold): `due` answers when the next item falls due (epoch milliseconds; `Infinity` for nothing), the loop
 * sleeps until then but never longer than `horizonMillis` (so anything that becomes due later is seen on time: a
 * connection that appears after the loop went to sleep falls due `horizonMillis` later at the earliest), and runs
 * `pass` when something is due. `pass` must act on everything due at that time, or `due` leave it out, or the loop
 * would wake again at once. An `alarm` lets hooks wake it sooner for what `due` could not see (a connection lent
 * when the loop went to sleep).
 *
 * @internal
 */
export const whenDue = <C, E>(
  pool: Policy.PoolHandle<C, E>,
  due: Effect.Effect<number>,
  horizonMillis: number,
  pass: Effect.Effect<void>,
  alarm?: Alarm
): Effect.Effect<never> => {
  const horizon = Math.max(minimumHorizonMillis, horizonMillis)
  return Effect.forever(
    Effect.flatMap(Effect.zip(pool.now, due), ([now, dueAt]) => {
      let at = dueAt
      if (alarm !== undefined) {
        at = Math.min(at, alarm.next)
        alarm.next = Infinity
      }
      if (at <= now) return pass
      // whole milliseconds, at least one: a clock read in fractions (the test clock after a jittered delay) could
      // otherwise sleep a nanosecond short of `at` again and again
      const millis = Math.min(Math.max(1, Math.ceil(at - now)), horizon)
      return alarm === undefined ? Effect.sleep(Duration.millis(millis)) : alarm.sleep(millis, now + millis)
    })
  )
}
