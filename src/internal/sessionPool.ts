import type * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { dual } from "effect/Function"
import * as Layer from "effect/Layer"
import { pipeArguments } from "effect/Pipeable"
import { hasProperty } from "effect/Predicate"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import type { Driver } from "../Driver.js"
import * as Policy from "../Policy.js"
import * as Pool from "../Pool.js"
import { PoolConfigError, PoolTimeoutError, type PoolUsageError } from "../PoolError.js"
import type * as SessionPool from "../SessionPool.js"

/** @internal */
export const TypeId: SessionPool.TypeId = Symbol.for("effect-reservoir/SessionPool") as SessionPool.TypeId

/** @internal */
export const SpecTypeId: SessionPool.SpecTypeId = Symbol.for(
  "effect-reservoir/SessionPool/Spec"
) as SessionPool.SpecTypeId

/** Spanner's defaults: `size=10`, `default_timeout=10` (seconds), `ping_interval=3000` (seconds). */
const defaultSize = 10
const defaultTimeout: Duration.DurationInput = "10 seconds"
const defaultPingInterval: Duration.DurationInput = "3000 seconds"
const defaultName = "session-pool"

class SpecImpl<K extends SessionPool.Kind> implements SessionPool.Spec<K> {
  readonly [SpecTypeId]: SessionPool.SpecTypeId = SpecTypeId
  constructor(
    readonly kind: K,
    readonly name: string,
    readonly size: number,
    readonly timeout: Duration.Duration,
    readonly labels: Readonly<Record<string, string>>,
    readonly pingInterval: Duration.Duration | undefined,
    readonly background: boolean,
    readonly pending: Schedule.Schedule<unknown, unknown> | Duration.DurationInput | "manual" | undefined,
    readonly policies: ReadonlyArray<Policy.Policy<any, any, any>>
  ) {}
  pipe() {
    return pipeArguments(this, arguments)
  }
  toJSON() {
    return {
      _id: "SessionPool.Spec",
      kind: this.kind,
      name: this.name,
      size: this.size,
      timeout: Duration.format(this.timeout),
      labels: this.labels,
      pingInterval: this.pingInterval === undefined ? undefined : Duration.format(this.pingInterval),
      background: this.background
    }
  }
}

/** @internal */
export const isSpec = (u: unknown): u is SessionPool.Spec<SessionPool.Kind> => hasProperty(u, SpecTypeId)

/** @internal */
export const isSessionPool = (u: unknown): u is SessionPool.SessionPool<unknown, unknown> => hasProperty(u, TypeId)

/**
 * A spec of `kind`: the options every kind shares (name, labels, policies, size, default timeout), and for the
 * pinging kinds their ping interval, background and pending transactions.
 */
const specOf = <K extends SessionPool.Kind>(
  kind: K,
  size: number | undefined,
  options: (SessionPool.CommonOptions & { readonly defaultTimeout?: Duration.DurationInput | undefined }) | undefined,
  pinging?: {
    readonly pingInterval: Duration.DurationInput | undefined
    readonly background: boolean | undefined
    readonly pending?: Schedule.Schedule<unknown, unknown> | Duration.DurationInput | "manual" | undefined
    readonly transactions: boolean
  }
): SessionPool.Spec<K> => {
  const pingInterval = pinging === undefined ? undefined : Duration.decode(pinging.pingInterval ?? defaultPingInterval)
  const background = pinging === undefined ? false : pinging.background ?? true
  return new SpecImpl(
    kind,
    options?.name ?? defaultName,
    size ?? defaultSize,
    Duration.decode(options?.defaultTimeout ?? defaultTimeout),
    options?.labels ?? {},
    pingInterval,
    background,
    // the background begins pending transactions every ping interval, unless the application does it itself
    pinging?.transactions === true ? pinging.pending ?? (background ? pingInterval : "manual") : undefined,
    options?.policies ?? []
  )
}

/** @internal */
export const fixed = (options?: SessionPool.FixedOptions): SessionPool.Spec<"fixed"> =>
  specOf("fixed", options?.size, options)

/** @internal */
export const bursty = (options?: SessionPool.BurstyOptions): SessionPool.Spec<"bursty"> =>
  specOf("bursty", options?.targetSize, options)

/** @internal */
export const pinging = (options?: SessionPool.PingingOptions): SessionPool.Spec<"pinging"> =>
  specOf("pinging", options?.size, options, {
    pingInterval: options?.pingInterval,
    background: options?.background,
    transactions: false
  })

/** @internal */
export const transactionPinging = (
  options?: SessionPool.TransactionPingingOptions
): SessionPool.Spec<"transactionPinging"> =>
  specOf("transactionPinging", options?.size, options, {
    pingInterval: options?.pingInterval,
    background: options?.background,
    pending: options?.pending,
    transactions: true
  })

/** What a kind adds to the pool: its policies and the commands it reaches through `Pool.policy`. */
interface Built<C, E> {
  readonly options: Pool.Options<C, E>
  readonly keepalive: Policy.Policy<C, E, Policy.KeepaliveCommands> | undefined
  readonly prepare: Policy.Policy<C, E, Policy.PrepareCommands> | undefined
}

/**
 * The pool options of a kind, over `Pool.make`:
 *
 * - fixed: `size`, `min: size` (prefilled), `maxOverflow: 0`, `timeout: defaultTimeout`;
 * - bursty: `size: targetSize`, `min: 0`, `maxOverflow: "unbounded"` (the core closes an extra returned to a full
 *   pool: overflow);
 * - pinging: fixed, with `prePing({ skipWithin: pingInterval })` and `keepalive(pingInterval, { idleFor })`;
 * - transactionPinging: pinging, with `prepareOnReturn(driver.begin, { pending })` listed after the reset.
 *
 * Every kind keeps the pool's default `recycle` and `resetOnReturn("rollback")` (the order matters: the reset ends
 * what a borrower left open before the preparation begins the next transaction), and the spec's own `policies`
 * come last.
 */
const build = <C, E>(spec: SessionPool.Spec<SessionPool.Kind>, driver: Driver<C, E>): Built<C, E> => {
  const impl = spec as SpecImpl<SessionPool.Kind>
  const extra = impl.policies as ReadonlyArray<Policy.Policy<C, E, any>>
  const base: Pool.BaseOptions = {
    name: impl.name,
    labels: impl.labels,
    timeout: impl.timeout,
    ...(impl.kind === "bursty" ?
      { size: impl.size, min: 0, maxOverflow: "unbounded" as const } :
      { size: impl.size, min: impl.size, maxOverflow: 0 })
  }
  const recycle = Policy.recycle<C, E>("30 minutes")
  const reset = Policy.resetOnReturn<C, E>("rollback")
  if (impl.kind === "fixed" || impl.kind === "bursty") {
    return {
      options: { ...base, driver, policies: [recycle, Policy.prePing<C, E>(), reset, ...extra] },
      keepalive: undefined,
      prepare: undefined
    }
  }
  const interval = impl.pingInterval!
  const keepalive = Policy.keepalive<C, E>(impl.background ? interval : Schedule.stop, { idleFor: interval })
  const prePing = Policy.prePing<C, E>({ skipWithin: interval })
  if (impl.kind === "pinging") {
    return {
      options: { ...base, driver, policies: [recycle, prePing, reset, keepalive, ...extra] },
      keepalive,
      prepare: undefined
    }
  }
  const prepare = Policy.prepareOnReturn<C, E>((connection) => driver.begin(connection), {
    pending: impl.pending
  })
  return {
    options: { ...base, driver, policies: [recycle, prePing, reset, keepalive, prepare, ...extra] },
    keepalive,
    prepare
  }
}

/** What `Pool.make` does not check itself: the times only a session pool has (a zero interval would spin). */
const validate = (spec: SpecImpl<SessionPool.Kind>): ReadonlyArray<string> => {
  const problems: Array<string> = []
  const positive = (name: string, value: Duration.Duration) => {
    if (!Duration.isFinite(value) || Duration.toMillis(value) <= 0) {
      problems.push(`${name} must be a positive, finite duration (got ${Duration.format(value)})`)
    }
  }
  if (spec.pingInterval !== undefined) positive("pingInterval", spec.pingInterval)
  if (spec.pending !== undefined && spec.pending !== "manual" && !Schedule.isSchedule(spec.pending)) {
    positive("pending", Duration.decode(spec.pending))
  }
  return problems
}

class SessionPoolImpl<C, E> implements SessionPool.SessionPool<C, E> {
  readonly [TypeId]: SessionPool.TypeId = TypeId
  constructor(
    readonly kind: SessionPool.Kind,
    readonly pool: Pool.Pool<C, E>,
    readonly labels: Readonly<Record<string, string>>,
    readonly keepaliveCommands: Policy.KeepaliveCommands | undefined,
    readonly prepareCommands: Policy.PrepareCommands | undefined
  ) {}
  get name(): string {
    return this.pool.name
  }
  get(options?: SessionPool.GetOptions): Effect.Effect<SessionPool.Session<C>, SessionPool.GetError<E>> {
    return get(this, options)
  }
  put(session: SessionPool.Session<C>, options?: SessionPool.PutOptions): Effect.Effect<void, PoolFull> {
    return put(this, session, options)
  }
  get clear(): Effect.Effect<void> {
    return clear(this)
  }
  session(
    options?: SessionPool.GetOptions
  ): Effect.Effect<SessionPool.Session<C>, SessionPool.GetError<E>, Scope.Scope> {
    return session(this, options)
  }
  get ping(): Effect.Effect<void> {
    return ping(this)
  }
  get beginPendingTransactions(): Effect.Effect<number> {
    return beginPendingTransactions(this)
  }
  pipe() {
    return pipeArguments(this, arguments)
  }
  toJSON() {
    return { _id: "SessionPool", kind: this.kind, name: this.name, labels: this.labels }
  }
}

const impl = <C, E>(self: SessionPool.SessionPool<C, E>): SessionPoolImpl<C, E> => self as SessionPoolImpl<C, E>

/** @internal */
export const make: {
  <C, E>(
    driver: Driver<C, E>
  ): (
    spec: SessionPool.Spec<SessionPool.Kind>
  ) => Effect.Effect<SessionPool.SessionPool<C, E>, PoolConfigError, Scope.Scope>
  <C, E>(
    spec: SessionPool.Spec<SessionPool.Kind>,
    driver: Driver<C, E>
  ): Effect.Effect<SessionPool.SessionPool<C, E>, PoolConfigError, Scope.Scope>
} = dual(
  2,
  <C, E>(
    spec: SessionPool.Spec<SessionPool.Kind>,
    driver: Driver<C, E>
  ): Effect.Effect<SessionPool.SessionPool<C, E>, PoolConfigError, Scope.Scope> =>
    Effect.gen(function*() {
      const problems = validate(spec as SpecImpl<SessionPool.Kind>)
      if (problems.length > 0) return yield* Effect.fail(new PoolConfigError({ pool: spec.name, problems }))
      const built = build(spec, driver)
      const pool = yield* Pool.make(built.options)
      // the policies were listed by this very pool: `Pool.policy` finds them
      const keepalive = built.keepalive === undefined
        ? undefined
        : yield* Effect.orDie(Pool.policy(pool, built.keepalive))
      const prepare = built.prepare === undefined ? undefined : yield* Effect.orDie(Pool.policy(pool, built.prepare))
      return new SessionPoolImpl(spec.kind, pool, spec.labels, keepalive, prepare)
    })
)

/** @internal */
export const bind: {
  <I, C, E>(
    tag: Context.Tag<I, SessionPool.SessionPool<C, E>>,
    driver: Driver<C, E>
  ): (spec: SessionPool.Spec<SessionPool.Kind>) => Layer.Layer<I, PoolConfigError>
  <I, C, E>(
    spec: SessionPool.Spec<SessionPool.Kind>,
    tag: Context.Tag<I, SessionPool.SessionPool<C, E>>,
    driver: Driver<C, E>
  ): Layer.Layer<I, PoolConfigError>
} = dual(
  3,
  <I, C, E>(
    spec: SessionPool.Spec<SessionPool.Kind>,
    tag: Context.Tag<I, SessionPool.SessionPool<C, E>>,
    driver: Driver<C, E>
  ): Layer.Layer<I, PoolConfigError> => Layer.scoped(tag, make(spec, driver))
)

const emptyOf = (self: SessionPoolImpl<any, any>, error: PoolTimeoutError): SessionPoolEmpty =>
  new SessionPoolEmpty({ pool: self.name, kind: self.kind, timeoutMillis: error.timeoutMillis, cause: error })

const kinds = Schema.Literal("fixed", "bursty", "pinging", "transactionPinging")

/** @internal */
export const ErrorTypeId: unique symbol = Symbol.for("effect-reservoir/SessionPool/Error")

/** @internal */
export class SessionPoolEmpty extends Schema.TaggedError<SessionPoolEmpty>("effect-reservoir/SessionPoolEmpty")(
  "SessionPoolEmpty",
  { pool: Schema.String, kind: kinds, timeoutMillis: Schema.Number, cause: Schema.Unknown }
) {
  readonly [ErrorTypeId]: typeof ErrorTypeId = ErrorTypeId
  override get message(): string {
    const cause = this.cause as { readonly message?: unknown } | undefined
    return `Session pool "${this.pool}" (${this.kind}): no session available within ${this.timeoutMillis} ms` +
      (typeof cause?.message === "string" ? ` (${cause.message})` : "")
  }
}

/** @internal */
export class PoolFull extends Schema.TaggedError<PoolFull>("effect-reservoir/SessionPool/PoolFull")("PoolFull", {
  pool: Schema.String,
  kind: kinds,
  reason: Schema.Literal("Full", "Foreign", "ReturnedTwice"),
  cause: Schema.Unknown
}) {
  readonly [ErrorTypeId]: typeof ErrorTypeId = ErrorTypeId
  override get message(): string {
    const base = `Session pool "${this.pool}" (${this.kind}): put refused, the pool is unchanged: `
    switch (this.reason) {
      case "Full":
        return base + "the pool is full (the caller keeps the session)"
      case "Foreign":
        return base + "the session is not this pool's"
      case "ReturnedTwice":
        return base + "the session was already returned"
    }
  }
}

/** @internal */
export const get: {
  (options?: SessionPool.GetOptions): <C, E>(
    self: SessionPool.SessionPool<C, E>
  ) => Effect.Effect<SessionPool.Session<C>, SessionPool.GetError<E>>
  <C, E>(
    self: SessionPool.SessionPool<C, E>,
    options?: SessionPool.GetOptions
  ): Effect.Effect<SessionPool.Session<C>, SessionPool.GetError<E>>
} = dual(
  (args) => isSessionPool(args[0]),
  <C, E>(
    self: SessionPool.SessionPool<C, E>,
    options?: SessionPool.GetOptions
  ): Effect.Effect<SessionPool.Session<C>, SessionPool.GetError<E>> =>
    Effect.catchIf(
      Pool.checkout(self.pool, options),
      (error): error is PoolTimeoutError => error instanceof PoolTimeoutError,
      (error) => Effect.fail(emptyOf(impl(self), error))
    ) as Effect.Effect<SessionPool.Session<C>, SessionPool.GetError<E>>
)

/** @internal */
export const put: {
  <C>(
    session: SessionPool.Session<C>,
    options?: SessionPool.PutOptions
  ): <E>(self: SessionPool.SessionPool<C, E>) => Effect.Effect<void, PoolFull>
  <C, E>(
    self: SessionPool.SessionPool<C, E>,
    session: SessionPool.Session<C>,
    options?: SessionPool.PutOptions
  ): Effect.Effect<void, PoolFull>
} = dual(
  (args) => isSessionPool(args[0]),
  <C, E>(
    self: SessionPool.SessionPool<C, E>,
    session: SessionPool.Session<C>,
    options?: SessionPool.PutOptions
  ): Effect.Effect<void, PoolFull> => {
    const whenFull = options?.whenFull ?? (self.kind === "bursty" ? "close" : "fail")
    // a value that is not a lease of any pool is refused by `checkin` as `Foreign`, the pool untouched
    return Effect.mapError(
      Pool.checkin(self.pool, session as Pool.Lease<C>, { whenFull }),
      (error: PoolUsageError) =>
        new PoolFull({
          pool: self.name,
          kind: self.kind,
          reason: error.reason === "Full" || error.reason === "ReturnedTwice" ? error.reason : "Foreign",
          cause: error
        })
    )
  }
)

/** @internal */
export const session: {
  (options?: SessionPool.GetOptions): <C, E>(
    self: SessionPool.SessionPool<C, E>
  ) => Effect.Effect<SessionPool.Session<C>, SessionPool.GetError<E>, Scope.Scope>
  <C, E>(
    self: SessionPool.SessionPool<C, E>,
    options?: SessionPool.GetOptions
  ): Effect.Effect<SessionPool.Session<C>, SessionPool.GetError<E>, Scope.Scope>
} = dual(
  (args) => isSessionPool(args[0]),
  <C, E>(
    self: SessionPool.SessionPool<C, E>,
    options?: SessionPool.GetOptions
  ): Effect.Effect<SessionPool.Session<C>, SessionPool.GetError<E>, Scope.Scope> =>
    Effect.catchIf(
      Effect.flatMap(
        Pool.get(self.pool, options),
        // the connection was lent to this fiber just now: its record is found by the connection itself
        (connection) =>
          Effect.map(
            Effect.orDie(Pool.record(self.pool, connection)),
            (record): SessionPool.Session<C> => ({ connection, record })
          )
      ),
      (error): error is PoolTimeoutError => error instanceof PoolTimeoutError,
      (error) => Effect.fail(emptyOf(impl(self), error))
    ) as Effect.Effect<SessionPool.Session<C>, SessionPool.GetError<E>, Scope.Scope>
)

/**
 * Every session open now is closed: `invalidateAll` starts a new generation, which closes the idle ones at once and
 * each lent (or preparing, or being pinged) one when it comes back; `clear` waits until the idle ones are closed.
 * A fixed or pinging pool then opens fresh sessions back to its size.
 *
 * @internal
 */
export const clear = <C, E>(self: SessionPool.SessionPool<C, E>): Effect.Effect<void> =>
  Effect.scoped(Effect.gen(function*() {
    const pool = self.pool
    const { generation } = yield* Pool.stats(pool)
    let remaining = -1
    let wake: (() => void) | undefined
    yield* Pool.listen(pool, {
      close: (event) =>
        Effect.sync(() => {
          if (event.record.generation <= generation && event.reason === "stale" && remaining > 0) {
            remaining--
            if (remaining === 0) wake?.()
          }
        })
    })
    // read the idle count and bump the generation in one step, so no return or close slips in between (the closes
    // may run within the bump itself)
    yield* Effect.sync(() => {
      remaining = Effect.runSync(Pool.stats(pool)).idle
      Effect.runSync(Pool.invalidateAll(pool))
    })
    if (remaining <= 0) return
    yield* Effect.async<void>((resume) => {
      if (remaining <= 0) return resume(Effect.void)
      wake = () => resume(Effect.void)
    })
  }))

/** @internal */
export const ping = <C, E>(self: SessionPool.SessionPool<C, E>): Effect.Effect<void> =>
  impl(self).keepaliveCommands?.ping ?? Effect.void

/** @internal */
export const beginPendingTransactions = <C, E>(self: SessionPool.SessionPool<C, E>): Effect.Effect<number> =>
  impl(self).prepareCommands?.beginPending ?? Effect.succeed(0)

/** @internal */
export const pendingTransactions = <C, E>(self: SessionPool.SessionPool<C, E>): Effect.Effect<number> =>
  impl(self).prepareCommands?.pending ?? Effect.succeed(0)
