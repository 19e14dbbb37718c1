import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
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
    isDisconnect: options.isDisconnect ?? (() => false),
    ...(options.busy === undefined ? {} : { busy: options.busy }),
    ...(options.inTransaction === undefined ? {} : { inTransaction: options.inTransaction }),
    ...(options.start === undefined ? {} : { start: options.start }),
    ...(options.problems === undefined || options.problems.length === 0 ? {} : { problems: options.problems })
  }
}

/** @internal */
export const fromAcquire = <C, E>(acquire: Effect.Effect<C, E, Scope.Scope>): Driver.Driver<C, E> =>
  make({ dialect: "generic", connect: () => acquire })

/**
 * The `layer` / `layerConfig` pair every real driver module has: `layer(options)` or `layer(tag, options)` checks
 * the database with one round trip and provides the driver under the module's tag or the caller's;
 * `layerConfig(config?)` reads the options through `Config` first (the module's default, e.g. `DATABASE_URL`).
 *
 * @internal
 */
export const makeLayers = <C, E, O>(spec: {
  /** A thunk: driver modules import their tag from the public module, which is still loading at this point. */
  readonly tag: () => Context.Tag<any, Driver.Driver<C, E>>
  readonly driver: (options: O) => Driver.Driver<C, E>
  readonly check: (options: O) => Effect.Effect<void, E>
  readonly config: Config.Config.Wrap<NonNullable<O>>
}) => {
  const split = (args: ReadonlyArray<unknown>): readonly [Context.Tag<any, Driver.Driver<C, E>>, unknown] =>
    Context.isTag(args[0]) ? [args[0] as Context.Tag<any, Driver.Driver<C, E>>, args[1]] : [spec.tag(), args[0]]
  const layer = (...args: ReadonlyArray<unknown>): Layer.Layer<any, E> => {
    const [tag, options] = split(args)
    return Layer.effect(tag, Effect.as(spec.check(options as O), spec.driver(options as O)))
  }
  const layerConfig = (...args: ReadonlyArray<unknown>): Layer.Layer<any, E | ConfigError.ConfigError> => {
    const [tag, config] = split(args)
    return Layer.unwrapEffect(
      Effect.map(
        Config.unwrap((config as Config.Config.Wrap<NonNullable<O>> | undefined) ?? spec.config),
        (options) => layer(tag, options)
      )
    )
  }
  return { layer, layerConfig } as const
}
