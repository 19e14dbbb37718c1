import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import type * as Policy from "../../Policy.js"

/**
 * The timings of the policies: a `Schedule`, or a `Duration` as sugar for `Schedule.spaced`.
 *
 * @internal
 */
export const toSchedule = <Out, In>(
  input: Schedule.Schedule<Out, In> | Duration.DurationInput
): Schedule.Schedule<unknown, In> =>
  Schedule.isSchedule(input) ? input as Schedule.Schedule<unknown, In> : Schedule.spaced(Duration.decode(input))

/** @internal */
export const millis = (input: Duration.DurationInput): number => Duration.toMillis(Duration.decode(input))

/**
 * A background loop for a policy whose work falls due at known times (a lifetime ending, an idle timeout, a leak
 * threshold): `due` answers when the next item falls due (epoch milliseconds; `Infinity` for nothing), the loop
 * sleeps until then but never longer than `horizonMillis` (so anything that becomes due later is seen on time: a
 * connection that appears after the loop went to sleep falls due `horizonMillis` later at the earliest), and runs
 * `pass` when something is due. `pass` must act on everything due at that time, or `due` leave it out, or the loop
 * would wake again at once.
 *
 * @internal
 */
export const whenDue = <C, E>(
  pool: Policy.PoolHandle<C, E>,
  due: Effect.Effect<number>,
  horizonMillis: number,
  pass: Effect.Effect<void>
): Effect.Effect<never> =>
  Effect.forever(
    Effect.flatMap(Effect.zip(pool.now, due), ([now, at]) =>
      at <= now ? pass : Effect.sleep(Duration.millis(Math.min(at - now, horizonMillis))))
  )
