import * as Effect from "effect/Effect"
import type { ConnectionRecord } from "../../ConnectionRecord.js"
import type * as Policy from "../../Policy.js"
import { Lock } from "../lock.js"
import { stateful } from "./make.js"

/**
 * SQLAlchemy's `first_connect`: once per pool. Connects run concurrently (a refill to `min`, a burst of waiters),
 * so a flag alone would let every connect that starts before the first setup ends run it too; the connects take
 * turns on a semaphore of one instead, and those that waited find it done and go on. `done` is set only when a
 * setup succeeds: a failed (or interrupted) one releases the turn and the next connect tries again. Once done, a
 * connect costs no more than reading the flag.
 *
 * @internal
 */
export const firstConnect = <C, E>(
  setup: (connection: C, record: ConnectionRecord) => Effect.Effect<void, E>
): Policy.Policy<C, E> =>
  stateful<C, E>("firstConnect", () =>
    Effect.sync(() => {
      const turn = new Lock(1)
      let done = false
      const once = (context: Policy.HookContext<C, E>): Effect.Effect<void, E> =>
        turn.withPermit(Effect.suspend(() =>
          done ? Effect.void : Effect.tap(setup(context.connection, context.record), () => {
            done = true
          })
        ))
      return { onConnect: (context) => done ? Effect.void : once(context) }
    }))
