import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Policy from "../../Policy.js"
import { millis } from "./upkeep.js"

/** What `Effect.timeoutFail` fails a reset with when it takes too long. */
class ResetTimeout {
  readonly _tag = "ResetTimeout"
  constructor(readonly millis: number) {}
  get message() {
    return `reset on return took longer than ${this.millis} ms`
  }
}

/** @internal */
export const resetOnReturn = <C = never, E = never>(
  mode: Policy.ResetMode<C, E> = "rollback",
  options?: { readonly timeout?: Duration.DurationInput | undefined }
): Policy.Policy<C, E> => {
  if (mode === "none") return { name: "resetOnReturn(none)" }
  const timeout = millis(options?.timeout ?? "5 seconds")
  const bound = (effect: Effect.Effect<void, unknown>): Effect.Effect<void, unknown> =>
    effect === Effect.void || !Number.isFinite(timeout) ?
      effect :
      Effect.timeoutFail(effect, { duration: timeout, onTimeout: () => new ResetTimeout(timeout) })
  if (typeof mode === "function") {
    return {
      name: "resetOnReturn(custom)",
      resetMethod: "custom",
      onReturn: (context) => bound(mode(context))
    }
  }
  return {
    name: `resetOnReturn(${mode})`,
    resetMethod: mode,
    onReturn: (context) => {
      const driver = context.driver
      // nothing to end (the driver knows without a round trip): done at once, no step of its own
      if (driver.inTransaction?.(context.connection) === false) return Effect.void
      // a commit commits only what succeeded: a borrower that failed or was interrupted is rolled back
      const commit = mode === "commit" && context.exit._tag === "Success"
      return bound(commit ? driver.commit(context.connection) : driver.rollback(context.connection))
    }
  }
}
