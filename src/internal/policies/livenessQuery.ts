import * as Effect from "effect/Effect"
import type * as Policy from "../../Policy.js"

/** @internal */
export const livenessQuery = <C = never, E = never>(sql: string = "SELECT 1"): Policy.Policy<C, E> => ({
  name: `livenessQuery(${sql})`,
  liveness: (context) => Effect.asVoid(context.driver.query(context.connection, sql))
})
