import type * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type * as Policy from "../../Policy.js"

/** @internal */
export const make = <C, E = never, Commands = void>(
  policy: Policy.Policy<C, E, Commands>
): Policy.Policy<C, E, Commands> => policy

/** @internal */
export const stateful = <C, E = never, Commands = void>(
  name: string,
  instantiate: (pool: Policy.PoolHandle<C, E>) => Effect.Effect<Policy.Instance<C, E, Commands>, never, Scope.Scope>
): Policy.Policy<C, E, Commands> => ({ name, instantiate })
