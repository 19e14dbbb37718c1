import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as FiberId from "effect/FiberId"
import type * as Policy from "../../Policy.js"
import * as check from "./check.js"
import { millis } from "./upkeep.js"

/** What a reset fails with when it takes too long: an `Error`, so the core's warning logs its message. */
class ResetTimeout extends Error {
  readonly _tag = "ResetTimeout"
  constructor(readonly millis: number) {
    super(`reset on return took longer than ${millis} ms`)
    this.name = "ResetTimeout"
    // where the timer fired says nothing: the message is the whole story
    this.stack = `${this.name}: ${this.message}`
  }
}

/**
 * Bounds a reset by `timeout`. A return runs under the borrower's mask, uninterruptibly, so `Effect.timeoutFail`
 * would wait there for ever for a loser it cannot interrupt (a hanging statement, an `Effect.never`); and fibers
 * forked from the borrower (a race's) are its children, which its own interruption reaches at once, mask or not. So
 * the reset and its timer run as interruptible daemons, and the return waits for the first to end, interrupting the
 * other without waiting for it: a reset past its timeout ends in the background while the core closes its
 * connection, whatever the driver does with the interruption, and interrupting the borrower never cuts a reset short.
 */
const withTimeout = (effect: Effect.Effect<void, unknown>, timeout: number): Effect.Effect<void, unknown> =>
  Effect.flatMap(
    Effect.zip(
      Effect.forkDaemon(Effect.interruptible(effect)),
      Effect.forkDaemon(Effect.interruptible(Effect.sleep(timeout)))
    ),
    ([reset, timer]) =>
      Effect.async<void, unknown>((resume) => {
        let done = false
        reset.addObserver((exit) => {
          if (done) return
          done = true
          timer.unsafeInterruptAsFork(FiberId.none)
          resume(exit)
        })
        timer.addObserver(() => {
          if (done) return
          done = true
          reset.unsafeInterruptAsFork(FiberId.none)
          resume(Effect.fail(new ResetTimeout(timeout)))
        })
        // a caller that runs the hook interruptibly and is interrupted: the reset stops with it, as under a timeout
        return Effect.sync(() => {
          done = true
          timer.unsafeInterruptAsFork(FiberId.none)
          reset.unsafeInterruptAsFork(FiberId.none)
        })
      })
  )

/** @internal */
export const resetOnReturn = <C = never, E = never>(
  mode: Policy.ResetMode<C, E> = "rollback",
  options?: { readonly timeout?: Duration.DurationInput | undefined }
): Policy.Policy<C, E> => {
  const problems = check.problemsOf(
    mode === "rollback" || mode === "commit" || mode === "none" || typeof mode === "function" ?
      undefined :
      `mode: Expected "rollback", "commit", "none" or a function, got ${String(mode)}`,
    options?.timeout === undefined ? undefined : check.duration("timeout", options.timeout, { positive: true })
  )
  if (problems.length > 0) return check.invalid("resetOnReturn", problems)
  if (mode === "none") return { name: "resetOnReturn(none)" }
  const timeout = millis(options?.timeout ?? "5 seconds")
  const bound = (effect: Effect.Effect<void, unknown>): Effect.Effect<void, unknown> =>
    effect === Effect.void || !Number.isFinite(timeout) ? effect : withTimeout(effect, timeout)
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
