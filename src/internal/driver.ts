import * as Effect from "effect/Effect"
import { hasProperty } from "effect/Predicate"
import type * as Scope from "effect/Scope"
import type * as Driver from "../Driver.js"

/** @internal */
export const TypeId: Driver.TypeId = Symbol.for("effect-reservoir/Driver") as Driver.TypeId

/** @internal */
export const isDriver = (u: unknown): u is Driver.Driver<unknown, unknown> => hasProperty(u, TypeId)

const unsupported = (operation: string) => (): Effect.Effect<never> =>
  Effect.dieMessage(`UnsupportedOperation: this driver has no ${operation}`)

/** @internal */
export const make = <C, E = never>(options: Driver.DriverOptions<C, E>): Driver.Driver<C, E> => {
  const query = options.query
  const statement = (sql: string) => (connection: C): Effect.Effect<void, E> =>
    query === undefined ? Effect.void : Effect.asVoid(query(connection, sql))
  return {
    [TypeId]: TypeId,
    dialect: options.dialect ?? "generic",
    connect: options.connect,
    ping: options.ping ?? (query === undefined ? () => Effect.void : statement("SELECT 1")),
    begin: options.begin ?? statement("BEGIN"),
    commit: options.commit ?? statement("COMMIT"),
    rollback: options.rollback ?? statement("ROLLBACK"),
    query: query ?? unsupported("query"),
    isDisconnect: options.isDisconnect ?? (() => false)
  }
}

/** @internal */
export const fromAcquire = <C, E>(acquire: Effect.Effect<C, E, Scope.Scope>): Driver.Driver<C, E> =>
  make({ dialect: "generic", connect: () => acquire })
