import type * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import type * as Schedule from "effect/Schedule"
import type { ConnectionRecord } from "../../ConnectionRecord.js"
import type * as Policy from "../../Policy.js"

/** @internal */
export const prepareOnReturn = <C, E>(
  _prepare: (connection: C, record: ConnectionRecord) => Effect.Effect<void, E>,
  _options?: {
    readonly pending?: Schedule.Schedule<unknown, unknown> | Duration.DurationInput | "manual" | undefined
  }
): Policy.Policy<C, E, Policy.PrepareCommands> => {
  throw new Error("prepareOnReturn: not built yet")
}
