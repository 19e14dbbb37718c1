import type * as Policy from "../../Policy.js"
import { prePing } from "./prePing.js"
import { recycle } from "./recycle.js"
import { resetOnReturn } from "./resetOnReturn.js"

/** @internal */
export const defaults = <C = never, E = never>(): ReadonlyArray<Policy.Policy<C, E>> => [
  recycle<C, E>("30 minutes"),
  prePing<C, E>(),
  resetOnReturn<C, E>("rollback")
]
