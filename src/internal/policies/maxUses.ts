import * as Effect from "effect/Effect"
import type * as Policy from "../../Policy.js"
import { ConnectionRejected } from "../../PoolError.js"

const retired = new ConnectionRejected({ reason: "maxUses" })

/** @internal */
export const maxUses = <C = never, E = never>(limit: number): Policy.Policy<C, E> => {
  // no limit: no hooks, so checkouts and returns keep their fast paths
  if (!Number.isFinite(limit)) return { name: "maxUses" }
  return {
    name: "maxUses",
    // closed as it comes back from its last use (pg-pool's `maxUses`), so it is never checked out to be refused
    onReturn: (context) => context.record.uses >= limit ? Effect.fail(retired) : Effect.void,
    // a connection lent without a return in between (a lease detached and put back) is still refused past the limit
    onCheckout: (context) => context.record.uses > limit ? Effect.fail(retired) : Effect.void
  }
}
