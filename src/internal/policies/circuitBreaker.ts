import type * as Duration from "effect/Duration"
import type * as Schedule from "effect/Schedule"
import type * as Policy from "../../Policy.js"

/** @internal */
export const circuitBreaker = <C = never, E = never>(
  _options?: {
    readonly failures?: number | undefined
    readonly probe?: Schedule.Schedule<unknown, unknown> | Duration.DurationInput | undefined
  }
): Policy.Policy<C, E, Policy.BreakerCommands> => {
  throw new Error("circuitBreaker: not built yet")
}
