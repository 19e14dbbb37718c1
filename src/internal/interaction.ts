import * as Cause from "effect/Cause"
import type * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as ExecutionStrategy from "effect/ExecutionStrategy"
import * as Exit from "effect/Exit"
import { dual } from "effect/Function"
import * as Layer from "effect/Layer"
import * as ParseResult from "effect/ParseResult"
import { pipeArguments } from "effect/Pipeable"
import * as Predicate from "effect/Predicate"
import * as Schema from "effect/Schema"
import * as Scope from "effect/Scope"
import * as Struct from "effect/Struct"
import type { Driver, Row } from "../Driver.js"
import type * as Interaction from "../Interaction.js"
import { CommitOutcomeUnknown, ConnectionLost } from "../Interaction.js"
import * as Policy from "../Policy.js"
import * as Pool from "../Pool.js"
import { PoolConfigError, type PoolError, type PoolUsageError } from "../PoolError.js"
import * as config from "./config.js"

/** @internal */
export const TypeId: Interaction.TypeId = Symbol.for("effect-reservoir/Interaction") as Interaction.TypeId

/** The pool options that are data and that no `cp_*` option stands for. */
const poolKeys = [
  "name",
  "timeout",
  "connectTimeout",
  "order",
  "maxWaiters",
  "labels",
  "shutdownTimeout",
  "maxCheckoutAttempts"
] as const

const Count = Schema.Int.pipe(Schema.nonNegative())

/** The `cp_*` options: their schemas (with Twisted's defaults) and what a problem line says was expected. */
const cp = {
  cp_min: { schema: Count, default: () => 3, expected: "an integer of 0 or more" },
  cp_max: {
    schema: Schema.Int.pipe(Schema.greaterThanOrEqualTo(1)),
    default: () => 5,
    expected: "an integer of 1 or more"
  },
  cp_noisy: { schema: Schema.Boolean, default: () => false, expected: "a boolean" },
  cp_reconnect: { schema: Schema.Boolean, default: () => false, expected: "a boolean" },
  cp_good_sql: {
    schema: Schema.String.pipe(Schema.minLength(1)),
    default: () => "SELECT 1",
    expected: "a non-empty string"
  }
} as const

type CpKey = keyof typeof cp
const cpKeys = Object.keys(cp) as ReadonlyArray<CpKey>

const OpenFun = Schema.Array(Schema.String)

/** @internal */
export const InteractionConfig = Schema.Struct({
  cp_min: Schema.optionalWith(cp.cp_min.schema, { default: cp.cp_min.default }),
  cp_max: Schema.optionalWith(cp.cp_max.schema, { default: cp.cp_max.default }),
  cp_noisy: Schema.optionalWith(cp.cp_noisy.schema, { default: cp.cp_noisy.default }),
  cp_openfun: Schema.optional(OpenFun),
  cp_reconnect: Schema.optionalWith(cp.cp_reconnect.schema, { default: cp.cp_reconnect.default }),
  cp_good_sql: Schema.optionalWith(cp.cp_good_sql.schema, { default: cp.cp_good_sql.default }),
  ...Struct.pick(config.PoolConfig.fields, ...poolKeys)
})

/** @internal */
export type InteractionConfig = typeof InteractionConfig.Type
/** @internal */
export type InteractionConfigEncoded = typeof InteractionConfig.Encoded

const show = (value: unknown): string => {
  if (typeof value === "function") return "a function"
  try {
    return JSON.stringify(value) ?? String(value)
  } catch {
    return String(value)
  }
}

/** The `cp_*` options checked one by one and together; every problem is a line, none is clamped. */
const readCp = (
  options: Record<string, unknown>
): { readonly values: Record<string, unknown>; readonly problems: Array<string> } => {
  const values: Record<string, unknown> = {}
  const problems: Array<string> = []
  for (const key of cpKeys) {
    const value = options[key]
    if (value === undefined) {
      values[key] = cp[key].default()
      continue
    }
    const decoded = Schema.decodeUnknownEither(cp[key].schema as Schema.Schema<unknown, unknown>)(value)
    if (Either.isRight(decoded)) values[key] = decoded.right
    else problems.push(`${key}: Expected ${cp[key].expected}, got ${show(value)}`)
  }
  const openfun = options["cp_openfun"]
  if (
    openfun !== undefined && typeof openfun !== "function" &&
    !(Array.isArray(openfun) && openfun.every(Predicate.isString))
  ) {
    problems.push(
      `cp_openfun: Expected SQL statements (an array of strings) or a function of the connection, got ${show(openfun)}`
    )
  }
  if (typeof values["cp_min"] === "number" && typeof values["cp_max"] === "number") {
    if (values["cp_min"] > values["cp_max"]) {
      problems.push(`cp_min: Expected at most cp_max (${values["cp_max"]}), got ${values["cp_min"]}`)
    }
  }
  return { values, problems }
}

class ConnectionPoolImpl<C, E> implements Interaction.ConnectionPool<C, E> {
  readonly [TypeId]: Interaction.TypeId = TypeId
  readonly leases = new Map<C, Pool.Lease<C>>()
  constructor(
    readonly pool: Pool.Pool<C, E>,
    readonly config: InteractionConfig,
    readonly openfun: ((connection: C) => Effect.Effect<void, E>) | undefined,
    readonly close: Effect.Effect<void>
  ) {}
  get driver(): Driver<C, E> {
    return this.pool.driver
  }
  get name(): string {
    return this.pool.name
  }
  get start(): Effect.Effect<void, E | PoolError> {
    return start(this)
  }
  get connect(): Effect.Effect<C, E | PoolError> {
    return connect(this)
  }
  readonly runWithConnection: Interaction.ConnectionPool<C, E>["runWithConnection"] = (f) => runWithConnection(this, f)
  readonly runInteraction: Interaction.ConnectionPool<C, E>["runInteraction"] = (f) => runInteraction(this, f)
  readonly runQuery: Interaction.ConnectionPool<C, E>["runQuery"] = (sql, params) => runQuery(this, sql, params)
  readonly runOperation: Interaction.ConnectionPool<C, E>["runOperation"] = (sql, params) =>
    runOperation(this, sql, params)
  readonly disconnect: Interaction.ConnectionPool<C, E>["disconnect"] = (connection) => disconnect(this, connection)
  pipe() {
    return pipeArguments(this, arguments)
  }
  toJSON() {
    return { _id: "ConnectionPool", name: this.pool.name, config: Schema.encodeSync(InteractionConfig)(this.config) }
  }
}

const impl = <C, E>(self: Interaction.ConnectionPool<C, E>): ConnectionPoolImpl<C, E> =>
  self as ConnectionPoolImpl<C, E>

/** @internal */
export const isConnectionPool = (u: unknown): u is Interaction.ConnectionPool<unknown, unknown> =>
  Predicate.hasProperty(u, TypeId)

/** @internal */
export const make = <C, E>(
  driver: Driver<C, E>,
  options?: Interaction.Options<C, E>
): Effect.Effect<Interaction.ConnectionPool<C, E>, PoolConfigError, Scope.Scope> =>
  Effect.gen(function*() {
    const input: Record<string, unknown> = Predicate.isRecord(options) ? options : {}
    const { problems, values } = readCp(input)
    const poolOptions: Record<string, unknown> = { driver }
    for (const key of poolKeys) if (input[key] !== undefined) poolOptions[key] = input[key]
    // the cp_* options stand for these; when one of them is wrong, the pool's own check leaves it out
    if (!problems.some((line) => line.startsWith("cp_max") || line.startsWith("cp_min"))) {
      poolOptions["size"] = values["cp_max"]
      poolOptions["min"] = values["cp_min"]
    }
    poolOptions["maxOverflow"] = 0
    poolOptions["echo"] = values["cp_noisy"] === true
    const checked = config.decode(poolOptions)
    if (Either.isLeft(checked)) problems.push(...checked.left.problems)
    if (problems.length > 0) {
      const name = typeof input["name"] === "string" && input["name"].length > 0 ? input["name"] : "reservoir"
      return yield* Effect.fail(new PoolConfigError({ pool: name, problems }))
    }
    const openfun = input["cp_openfun"] as Interaction.Options<C, E>["cp_openfun"]
    const setup: ((connection: C) => Effect.Effect<void, E>) | undefined = openfun === undefined ?
      undefined :
      typeof openfun === "function" ?
      openfun :
      (connection) => Effect.forEach(openfun, (sql) => driver.query(connection, sql), { discard: true })
    const policies: Array<Policy.Policy<C, E, any>> = [
      ...Policy.defaults<C, E>(),
      Policy.livenessQuery<C, E>(values["cp_good_sql"] as string)
    ]
    if (setup !== undefined) policies.push(Policy.onConnect<C, E>((connection) => setup(connection)))
    // the pool lives in a scope of its own inside the caller's, so `close` can end it early (Twisted's `close`)
    const outer = yield* Effect.scope
    const scope = yield* Scope.fork(outer, ExecutionStrategy.sequential)
    const pool = yield* Scope.extend(
      Pool.make({ ...(poolOptions as Pool.BaseOptions), driver, policies }),
      scope
    )
    const resolved = Pool.config(pool)
    const decoded: InteractionConfig = Schema.decodeSync(InteractionConfig)({
      ...(values as Pick<InteractionConfigEncoded, CpKey>),
      ...(Array.isArray(openfun) ? { cp_openfun: openfun } : {}),
      ...Struct.pick(resolved, ...poolKeys)
    })
    return new ConnectionPoolImpl<C, E>(
      pool,
      decoded,
      typeof openfun === "function" ? openfun : undefined,
      Scope.close(scope, Exit.void)
    )
  })

/** @internal */
export const layer = <I, C, E>(
  tag: Context.Tag<I, Interaction.ConnectionPool<C, E>>,
  driver: Driver<C, E>,
  options?: Interaction.Options<C, E>
): Layer.Layer<I, PoolConfigError | E | PoolError> =>
  Layer.scoped(tag, Effect.tap(make(driver, options), (pool) => pool.start))

/** @internal */
export const fromJSON = <C, E>(
  driver: Driver<C, E>,
  json: unknown
): Effect.Effect<Interaction.ConnectionPool<C, E>, PoolConfigError, Scope.Scope> =>
  Effect.suspend(() => {
    const decoded = Schema.decodeUnknownEither(InteractionConfig, { errors: "all", onExcessProperty: "error" })(json)
    if (Either.isLeft(decoded)) {
      // one line per path: an optional field's issues also say it could have been left out ("Expected undefined")
      const lines = new Map<string, string>()
      for (const issue of ParseResult.ArrayFormatter.formatErrorSync(decoded.left)) {
        const at = issue.path.length === 0 ? "options" : issue.path.join(".")
        if (!lines.has(at) && !issue.message.startsWith("Expected undefined")) lines.set(at, `${at}: ${issue.message}`)
      }
      const problems = lines.size > 0
        ? Array.from(lines.values())
        : [ParseResult.TreeFormatter.formatErrorSync(decoded.left)]
      const name = Predicate.isRecord(json) && typeof json["name"] === "string" ? json["name"] : "reservoir"
      return Effect.fail(new PoolConfigError({ pool: name, problems }))
    }
    return make(driver, decoded.right as Interaction.Options<C, E>)
  })

/** @internal */
export const toJSON = <C, E>(
  self: Interaction.ConnectionPool<C, E>
): Either.Either<InteractionConfigEncoded, PoolConfigError> => {
  const pool = impl(self)
  return pool.openfun !== undefined ?
    Either.left(
      new PoolConfigError({
        pool: pool.name,
        problems: [
          "cp_openfun: a function cannot be encoded; give the setup as SQL statements (cp_openfun: [\"SET ...\"]) " +
          "to serialise the pool"
        ]
      })
    ) :
    Either.right(Schema.encodeSync(InteractionConfig)(pool.config))
}

/** @internal */
export const start = <C, E>(self: Interaction.ConnectionPool<C, E>): Effect.Effect<void, E | PoolError> => {
  const pool = impl(self)
  // each of cp_min checkouts at once: cp_min connections are open (or the connect's error is the answer)
  return Effect.scoped(
    Effect.forEach(
      Array.from({ length: pool.config.cp_min }, (_, i) => i),
      () => Pool.get(pool.pool),
      { concurrency: "unbounded", discard: true }
    )
  )
}

/** The first failure in the cause that the driver calls a disconnect. */
const lostIn = <C, E>(driver: Driver<C, E>, cause: Cause.Cause<unknown>): { readonly error: unknown } | undefined => {
  for (const error of Cause.failures(cause)) {
    if (driver.isDisconnect(error)) return { error }
  }
  return undefined
}

type Operation = "runWithConnection" | "runInteraction" | "runQuery" | "runOperation"

/** What went wrong inside a lending, to be told as a `ConnectionLost` or `CommitOutcomeUnknown` once it is returned. */
interface Loss {
  readonly phase: "begin" | "work" | "commit"
  readonly error: unknown
}

/**
 * Runs a lending and turns the driver's disconnect it recorded into the facade's error. The connection itself is
 * returned by `Pool.use` with the driver's own error, so the core invalidates it the way it always does.
 */
const told = <C, E, A, E2, R>(
  pool: ConnectionPoolImpl<C, E>,
  operation: Operation,
  body: (record: (loss: Loss) => void) => Effect.Effect<A, E2, R>
): Effect.Effect<A, E2 | ConnectionLost | CommitOutcomeUnknown, R> =>
  Effect.suspend(() => {
    let loss: Loss | undefined
    return Effect.catchAll(
      body((l) => {
        loss = l
      }),
      (error): Effect.Effect<never, E2 | ConnectionLost | CommitOutcomeUnknown> => {
        if (loss === undefined || loss.error !== error) return Effect.fail(error)
        if (loss.phase === "commit") {
          return noisy(
            pool,
            "connection lost during COMMIT; outcome unknown",
            new CommitOutcomeUnknown({ pool: pool.name, operation, cause: error })
          )
        }
        if (!pool.config.cp_reconnect) return Effect.fail(error)
        return noisy(
          pool,
          "connection lost",
          new ConnectionLost({
            pool: pool.name,
            operation,
            phase: loss.phase,
            retryable: operation !== "runWithConnection",
            cause: error
          })
        )
      }
    )
  })

const noisy = <C, E, X>(pool: ConnectionPoolImpl<C, E>, message: string, error: X): Effect.Effect<never, X> =>
  pool.config.cp_noisy ?
    Effect.zipRight(Effect.logInfo(message).pipe(Effect.annotateLogs({ pool: pool.name })), Effect.fail(error)) :
    Effect.fail(error)

/** @internal */
export const runWithConnection: {
  <C, A, E2, R>(
    f: (connection: C) => Effect.Effect<A, E2, R>
  ): <E>(
    self: Interaction.ConnectionPool<C, E>
  ) => Effect.Effect<A, E | E2 | PoolError | ConnectionLost | CommitOutcomeUnknown, R>
  <C, E, A, E2, R>(
    self: Interaction.ConnectionPool<C, E>,
    f: (connection: C) => Effect.Effect<A, E2, R>
  ): Effect.Effect<A, E | E2 | PoolError | ConnectionLost | CommitOutcomeUnknown, R>
} = dual(2, <C, E, A, E2, R>(
  self: Interaction.ConnectionPool<C, E>,
  f: (connection: C) => Effect.Effect<A, E2, R>
) => {
  const pool = impl(self)
  return told(pool, "runWithConnection", (record) =>
    Pool.use(pool.pool, (connection) =>
      Effect.onError(
        Effect.suspend(() => f(connection)),
        (cause) =>
          Effect.sync(() => {
            const lost = lostIn(pool.driver, cause)
            if (lost !== undefined) record({ phase: "work", error: lost.error })
          })
      )))
})

/**
 * A transaction of the facade's own: `begin`, the work, then `commit` or `rollback`. Unlike `Pool.transaction`, it
 * tells a lost `COMMIT` apart (no rollback is attempted then: the server decided, and nobody here knows what).
 */
const transact = <C, E, A, E2, R>(
  pool: ConnectionPoolImpl<C, E>,
  operation: Operation,
  f: (transaction: Interaction.Transaction<C, E>) => Effect.Effect<A, E2, R>
): Effect.Effect<A, E | E2 | PoolError | ConnectionLost | CommitOutcomeUnknown, R> => {
  const d = pool.driver
  const rollback = (connection: C) =>
    Effect.catchAllCause(d.rollback(connection), (cause) =>
      Effect.zipRight(
        Effect.logWarning("rollback failed; invalidating the connection", cause).pipe(
          Effect.annotateLogs({ pool: pool.name })
        ),
        Effect.ignore(Pool.invalidate(pool.pool, connection, { cause: Cause.squash(cause) }))
      ))
  return told(pool, operation, (record) =>
    Pool.use(pool.pool, (connection) =>
      Effect.uninterruptibleMask((restore) => {
        const transaction = new TransactionImpl(connection, d)
        return Effect.zipRight(
          Effect.tapErrorCause(d.begin(connection), (cause) =>
            Effect.sync(() => {
              const lost = lostIn(d, cause)
              if (lost !== undefined) record({ phase: "begin", error: lost.error })
            })),
          Effect.matchCauseEffect(restore(Effect.suspend(() => f(transaction))), {
            onFailure: (cause) => {
              const lost = lostIn(d, cause)
              if (lost === undefined) return Effect.zipRight(rollback(connection), Effect.failCause(cause))
              // the connection is gone, and the transaction with it: nothing to roll back
              record({ phase: "work", error: lost.error })
              return Effect.failCause(cause)
            },
            onSuccess: (a) =>
              Effect.matchCauseEffect(d.commit(connection), {
                onFailure: (cause) => {
                  const lost = lostIn(d, cause)
                  if (lost === undefined) return Effect.zipRight(rollback(connection), Effect.failCause(cause))
                  record({ phase: "commit", error: lost.error })
                  return Effect.failCause(cause)
                },
                onSuccess: () => Effect.succeed(a)
              })
          })
        )
      })))
}

class TransactionImpl<C, E> implements Interaction.Transaction<C, E> {
  constructor(readonly connection: C, readonly driver: Driver<C, E>) {}
  execute(sql: string, params?: ReadonlyArray<unknown>): Effect.Effect<ReadonlyArray<Row>, E> {
    return this.driver.query(this.connection, sql, params)
  }
}

/** @internal */
export const runInteraction: {
  <C, E, A, E2, R>(
    f: (transaction: Interaction.Transaction<C, E>) => Effect.Effect<A, E2, R>
  ): (
    self: Interaction.ConnectionPool<C, E>
  ) => Effect.Effect<A, E | E2 | PoolError | ConnectionLost | CommitOutcomeUnknown, R>
  <C, E, A, E2, R>(
    self: Interaction.ConnectionPool<C, E>,
    f: (transaction: Interaction.Transaction<C, E>) => Effect.Effect<A, E2, R>
  ): Effect.Effect<A, E | E2 | PoolError | ConnectionLost | CommitOutcomeUnknown, R>
} = dual(2, <C, E, A, E2, R>(
  self: Interaction.ConnectionPool<C, E>,
  f: (transaction: Interaction.Transaction<C, E>) => Effect.Effect<A, E2, R>
) => transact(impl(self), "runInteraction", f))

/** @internal */
export const runQuery = <C, E>(
  self: Interaction.ConnectionPool<C, E>,
  sql: string,
  params?: ReadonlyArray<unknown>
): Effect.Effect<ReadonlyArray<Row>, E | PoolError | ConnectionLost | CommitOutcomeUnknown> =>
  transact(impl(self), "runQuery", (transaction) => transaction.execute(sql, params))

/** @internal */
export const runOperation = <C, E>(
  self: Interaction.ConnectionPool<C, E>,
  sql: string,
  params?: ReadonlyArray<unknown>
): Effect.Effect<void, E | PoolError | ConnectionLost | CommitOutcomeUnknown> =>
  transact(impl(self), "runOperation", (transaction) => Effect.asVoid(transaction.execute(sql, params)))

/** @internal */
export const connect = <C, E>(self: Interaction.ConnectionPool<C, E>): Effect.Effect<C, E | PoolError> => {
  const pool = impl(self)
  return Effect.uninterruptible(
    Effect.map(Pool.checkout(pool.pool), (lease) => {
      pool.leases.set(lease.connection, lease)
      return lease.connection
    })
  )
}

/** @internal */
export const disconnect: {
  <C>(connection: C): <E>(self: Interaction.ConnectionPool<C, E>) => Effect.Effect<void, PoolUsageError>
  <C, E>(self: Interaction.ConnectionPool<C, E>, connection: C): Effect.Effect<void, PoolUsageError>
} = dual(2, <C, E>(self: Interaction.ConnectionPool<C, E>, connection: C): Effect.Effect<void, PoolUsageError> => {
  const pool = impl(self)
  return Effect.uninterruptible(Effect.suspend(() => {
    const lease = pool.leases.get(connection)
    // a connection lent by runWithConnection or runInteraction: closed now, and its lending's return checks it in
    if (lease === undefined) return Pool.invalidate(pool.pool, connection, { cause: "disconnect" })
    pool.leases.delete(connection)
    return Effect.zipRight(
      Pool.invalidate(pool.pool, lease, { cause: "disconnect" }),
      Pool.checkin(pool.pool, lease)
    )
  }))
})
