import type * as Effect from "effect/Effect"
import type { ConnectionRecord } from "../../ConnectionRecord.js"
import type * as Policy from "../../Policy.js"

/** @internal */
export const onConnect = <C, E>(
  setup: (connection: C, record: ConnectionRecord) => Effect.Effect<void, E>
): Policy.Policy<C, E> => ({
  name: "onConnect",
  onConnect: (context) => setup(context.connection, context.record)
})
