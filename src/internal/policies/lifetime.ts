import type * as Schedule from "effect/Schedule"
import type { ConnectionRecord } from "../../ConnectionRecord.js"
import type * as Policy from "../../Policy.js"

/** @internal */
export const lifetime = <C = never, E = never>(
  _schedule: Schedule.Schedule<unknown, ConnectionRecord>
): Policy.Policy<C, E> => {
  throw new Error("lifetime: not built yet")
}
