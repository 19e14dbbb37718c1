import * as Effect from "effect/Effect"
import type * as Policy from "../../Policy.js"
import { ConnectionRejected } from "../../PoolError.js"
import * as check from "./check.js"

const retired = new ConnectionRejected({ reason: "maxUses" })

/** @internal */
export const maxUses = <C = never, E = never>(limit: number): Policy.Policy<C, E> => {
  const problems = check.problemsOf(check.count("maxUses", limit, 1, true))
  if (problems.length > 0) return check.invalid("maxUses", problems)
  // no limit: no hooks, so checkouts and returns keep their fast paths
  if (!Number.isFinite(limit)) return { name: "maxUses" }
  return {
    name: "maxUses",
    // closed as it comes back from its last use (pg-pool's `maxUses`), so it is never checked out to be refused
    // (every lending ends in a return through the return hooks, so no checkout check is needed, and none is paid)
    onReturn: (context) => context.record.uses >= limit ? Effect.fail(retired) : Effect.void
  }
}
