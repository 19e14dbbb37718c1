import type * as Duration from "effect/Duration"
import type * as Policy from "../../Policy.js"

/** @internal */
export const idleTimeout = <C = never, E = never>(_timeout: Duration.DurationInput): Policy.Policy<C, E> => {
  throw new Error("idleTimeout: not built yet")
}
