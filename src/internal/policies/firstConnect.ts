import * as Effect from "effect/Effect"
import type { ConnectionRecord } from "../../ConnectionRecord.js"
import type * as Policy from "../../Policy.js"
import { stateful } from "./make.js"

/** @internal */
export const firstConnect = <C, E>(
  setup: (connection: C, record: ConnectionRecord) => Effect.Effect<void, E>
): Policy.Policy<C, E> =>
  stateful<C, E>("firstConnect", () =>
    Effect.sync(() => {
      // once per pool: set when a setup succeeds, so a failed one is tried again on the next connection
      let done = false
      return {
        onConnect: (context) =>
          done ? Effect.void : Effect.tap(setup(context.connection, context.record), () => {
            done = true
          })
      }
    }))
