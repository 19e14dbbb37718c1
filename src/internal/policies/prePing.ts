import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Policy from "../../Policy.js"
import { ConnectionRejected } from "../../PoolError.js"
import * as check from "./check.js"
import { decode, millis } from "./upkeep.js"

/** What `Effect.timeoutFail` fails a ping with when it gets no answer in time. */
class PingTimeout {
  readonly _tag = "PingTimeout"
}

/** @internal */
export const prePing = <C = never, E = never>(
  options?: {
    readonly timeout?: Duration.DurationInput | undefined
    readonly skipWithin?: Duration.DurationInput | undefined
  }
): Policy.Policy<C, E> => {
  const problems = check.problemsOf(
    options?.timeout === undefined ? undefined : check.duration("timeout", options.timeout, { positive: true }),
    options?.skipWithin === undefined
      ? undefined
      : check.duration("skipWithin", options.skipWithin, { infinite: false })
  )
  if (problems.length > 0) return check.invalid("prePing", problems)
  const timeout = decode(options?.timeout ?? "5 seconds")
  const skipWithin = millis(options?.skipWithin ?? "500 millis")
  const noAnswer = `prePing: no answer within ${Duration.format(timeout)}`
  return {
    name: "prePing",
    onCheckout: (context) => {
      const record = context.record
      // used or validated a moment ago (HikariCP's bypass window): lent without a round trip
      if (context.now - Math.max(record.lastReturnedAt, record.lastValidatedAt) < skipWithin) return Effect.void
      // disconnected: the timeout, and the checkout's deadline, end the wait at once even when the driver's ping is
      // slow to give up (an uninterruptible round trip); the connection is closed either way
      return Effect.disconnect(context.ping()).pipe(
        Effect.timeoutFail({ duration: timeout, onTimeout: () => new PingTimeout() }),
        Effect.matchEffect({
          onSuccess: () => Effect.sync(context.markValidated),
          onFailure: (error) => {
            if (error instanceof PingTimeout) {
              // no answer: this connection is closed and the checkout tries another
              return Effect.fail(new ConnectionRejected({ reason: noAnswer }))
            }
            const disconnect = context.driver.isDisconnect(error)
            // a disconnect: every older connection is suspect, and a fresh one serves the caller; anything else
            // (a wrong liveness query, a permission error) another connection would only repeat: the caller gets it
            return Effect.fail(
              new ConnectionRejected({
                reason: disconnect ? "prePing: disconnected" : "prePing: ping failed",
                cause: error,
                invalidateAll: disconnect,
                retry: disconnect
              })
            )
          }
        })
      )
    }
  }
}
