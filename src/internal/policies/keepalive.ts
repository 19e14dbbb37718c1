import type * as Duration from "effect/Duration"
import type * as Schedule from "effect/Schedule"
import type * as Policy from "../../Policy.js"

/** @internal */
export const keepalive = <C = never, E = never>(
  _schedule: Schedule.Schedule<unknown, unknown> | Duration.DurationInput,
  _options?: {
    readonly timeout?: Duration.DurationInput | undefined
    readonly idleFor?: Duration.DurationInput | undefined
  }
): Policy.Policy<C, E, Policy.KeepaliveCommands> => {
  throw new Error("keepalive: not built yet")
}
