import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Policy from "../Policy.js"
import { ConnectionRejected } from "../PoolError.js"

/** @internal */
export const make = <C, E = never, Commands = void>(
  policy: Policy.Policy<C, E, Commands>
): Policy.Policy<C, E, Commands> => policy

/** @internal */
export const stateful = <C, E = never, Commands = void>(
  name: string,
  instantiate: (
    pool: Policy.PoolHandle<C, E>
  ) => Effect.Effect<Policy.Instance<C, E, Commands>, never, import("effect/Scope").Scope>
): Policy.Policy<C, E, Commands> => ({ name, instantiate })

/** @internal */
export const resetOnReturn = <C = never, E = never>(
  mode: "rollback" | "commit" | "none" = "rollback"
): Policy.Policy<C, E> =>
  mode === "none" ?
    { name: "resetOnReturn(none)" } :
    {
      name: `resetOnReturn(${mode})`,
      resetMethod: mode,
      onReturn: (context) => {
        const driver = context.driver
        // nothing to end (the driver knows without a round trip): done at once, no step of its own
        if (driver.inTransaction?.(context.connection) === false) return Effect.void
        return mode === "rollback" ? driver.rollback(context.connection) : driver.commit(context.connection)
      }
    }

/** @internal */
export const prePing = <C = never, E = never>(
  options?: { readonly timeout?: Duration.DurationInput | undefined }
): Policy.Policy<
  C,
  E
> => {
  const timeout = Duration.decode(options?.timeout ?? "5 seconds")
  return {
    name: "prePing",
    onCheckout: (context) =>
      context.driver.ping(context.connection).pipe(
        Effect.timeoutFail({
          duration: timeout,
          onTimeout: () => ({ _timeout: true as const })
        }),
        Effect.matchEffect({
          onSuccess: () => Effect.sync(context.markValidated),
          onFailure: (error) => {
            const timedOut = typeof error === "object" && error !== null && "_timeout" in error
            return Effect.fail(
              new ConnectionRejected({
                reason: timedOut ? `prePing: no answer within ${Duration.format(timeout)}` : "prePing: ping failed",
                cause: timedOut ? undefined : error,
                invalidateAll: !timedOut && context.driver.isDisconnect(error)
              })
            )
          }
        })
      )
  }
}

/** @internal */
export const recycle = <C = never, E = never>(maxAge: Duration.DurationInput): Policy.Policy<C, E> => {
  const millis = Duration.toMillis(Duration.decode(maxAge))
  return {
    name: "recycle",
    onCheckout: (context) =>
      context.now - context.record.createdAt >= millis ?
        Effect.fail(new ConnectionRejected({ reason: "expired" })) :
        Effect.void
  }
}

/** @internal */
export const maxUses = <C = never, E = never>(limit: number): Policy.Policy<C, E> => ({
  name: "maxUses",
  onCheckout: (context) =>
    context.record.uses > limit ? Effect.fail(new ConnectionRejected({ reason: "maxUses" })) : Effect.void
})

/** @internal */
export const onConnect = <C, E>(
  setup: (connection: C, record: import("../ConnectionRecord.js").ConnectionRecord) => Effect.Effect<void, E>
): Policy.Policy<C, E> => ({
  name: "onConnect",
  onConnect: (context) => setup(context.connection, context.record)
})
