/**
 * The pool's typed errors. Each says where it failed (`phase` / `reason`) and carries what a caller needs to act:
 * the pool's statistics at the time, and the underlying cause when there is one.
 *
 * @since 0.1.0
 */
import * as Predicate from "effect/Predicate"
import * as Schema from "effect/Schema"

/**
 * A snapshot of a pool's counters (see `Pool.stats`).
 *
 * @since 0.1.0
 * @category models
 */
export const PoolStats = Schema.Struct({
  /** The pool's name. */
  name: Schema.String,
  /** Configured `size`: connections kept open when idle. */
  size: Schema.Number,
  /** Configured `maxOverflow` (`Infinity` when unbounded). */
  maxOverflow: Schema.Number,
  /** Configured `min`. */
  min: Schema.Number,
  /** Connections open now: idle, lent, or being closed. */
  open: Schema.Number,
  /** Connects in flight. */
  opening: Schema.Number,
  /** Connections idle in the pool, lendable now. */
  idle: Schema.Number,
  /** Connections in the pool but held by upkeep for a moment: a background pass (keepalive) or a preparation. */
  maintained: Schema.Number,
  /** Connections lent to borrowers (and returned ones still being reset). */
  inUse: Schema.Number,
  /** Checkouts waiting for a connection. */
  waiting: Schema.Number,
  /** SQLAlchemy's overflow: `open + opening - size` (negative while below `size`). */
  overflow: Schema.Number,
  /** The current generation (bumped by `Pool.invalidateAll`). */
  generation: Schema.Number,
  /** Connections opened since the pool started. */
  opened: Schema.Number,
  /** Connections closed since the pool started. */
  closed: Schema.Number,
  /** Closes counted by reason. */
  closedBy: Schema.Record({ key: Schema.String, value: Schema.Number }),
  /** Connections handed to their callers with `Pool.detach`. */
  detached: Schema.Number,
  /** Successful checkouts since the pool started. */
  checkouts: Schema.Number,
  /** Connect attempts that failed. */
  connectFailures: Schema.Number,
  /** Checkouts that timed out waiting. */
  timeouts: Schema.Number,
  /**
   * Whether connects are held back after a failure: the backoff schedule's delay is running, or a single probe
   * connect is in flight until one succeeds.
   */
  backingOff: Schema.Boolean,
  /** Events a subscriber of `Pool.events` lost because its buffer was full. */
  eventsDropped: Schema.Number,
  /** Whether the pool's scope has closed (or is closing). */
  isClosed: Schema.Boolean
})

/**
 * @since 0.1.0
 * @category models
 */
export type PoolStats = typeof PoolStats.Type

/**
 * @since 0.1.0
 * @category type ids
 */
export const TypeId: unique symbol = Symbol.for("effect-reservoir/PoolError")

/**
 * @since 0.1.0
 * @category type ids
 */
export type TypeId = typeof TypeId

/**
 * A checkout or a connect ran out of time. `phase` says which: `"wait"` for a checkout that waited past its
 * deadline (the pool's `timeout`, or the call's own), `"validate"` for a checkout whose validation (pre-ping, a
 * checkout policy or listener) was still running at that deadline, `"connect"` for a connect that took longer than
 * `connectTimeout`. When connects were failing, `cause` is the last connect failure, so a dead database reads as
 * itself and not as a generic timeout.
 *
 * @since 0.1.0
 * @category errors
 */
export class PoolTimeoutError extends Schema.TaggedError<PoolTimeoutError>("effect-reservoir/PoolTimeoutError")(
  "PoolTimeoutError",
  {
    pool: Schema.String,
    phase: Schema.Literal("wait", "validate", "connect"),
    timeoutMillis: Schema.Number,
    stats: PoolStats,
    cause: Schema.optional(Schema.Unknown)
  }
) {
  /**
   * @since 0.1.0
   */
  readonly [TypeId]: TypeId = TypeId
  /**
   * @since 0.1.0
   */
  override get message(): string {
    const s = this.stats
    const base = this.phase === "connect"
      ? `Pool "${this.pool}": connect timed out after ${this.timeoutMillis} ms`
      : `Pool "${this.pool}": checkout timed out after ${this.timeoutMillis} ms` +
        (this.phase === "validate" ? " while validating a connection " : " ") +
        `(open ${s.open}/${s.size + s.maxOverflow}, in use ${s.inUse}, idle ${s.idle}, opening ${s.opening}, ` +
        `waiting ${s.waiting})`
    return this.cause === undefined ? base : `${base}; last connect failure: ${describe(this.cause)}`
  }
}

/**
 * The pool's scope has closed: checkouts fail at once, and waiters parked at the time are failed with this error.
 *
 * @since 0.1.0
 * @category errors
 */
export class PoolClosedError extends Schema.TaggedError<PoolClosedError>("effect-reservoir/PoolClosedError")(
  "PoolClosedError",
  { pool: Schema.String }
) {
  /**
   * @since 0.1.0
   */
  readonly [TypeId]: TypeId = TypeId
  /**
   * @since 0.1.0
   */
  override get message(): string {
    return `Pool "${this.pool}" is closed`
  }
}

/**
 * The waiter queue is full (`maxWaiters`): the checkout fails at once instead of queueing.
 *
 * @since 0.1.0
 * @category errors
 */
export class PoolExhaustedError extends Schema.TaggedError<PoolExhaustedError>("effect-reservoir/PoolExhaustedError")(
  "PoolExhaustedError",
  { pool: Schema.String, maxWaiters: Schema.Number, stats: PoolStats }
) {
  /**
   * @since 0.1.0
   */
  readonly [TypeId]: TypeId = TypeId
  /**
   * @since 0.1.0
   */
  override get message(): string {
    return `Pool "${this.pool}": the waiter queue is full (maxWaiters: ${this.maxWaiters})`
  }
}

/**
 * Checkout gave up after policies or checkout listeners rejected `attempts` connections in a row (SQLAlchemy's
 * `DisconnectionError` raised on every attempt), `phase: "checkout"`; or a connect policy (`onConnect`) rejected
 * the connection opened for this checkout, `phase: "connect"`. `cause` is the last rejection.
 *
 * @since 0.1.0
 * @category errors
 */
export class PoolCheckoutRejectedError
  extends Schema.TaggedError<PoolCheckoutRejectedError>("effect-reservoir/PoolCheckoutRejectedError")(
    "PoolCheckoutRejectedError",
    {
      pool: Schema.String,
      attempts: Schema.Number,
      cause: Schema.Unknown,
      phase: Schema.optionalWith(Schema.Literal("checkout", "connect"), { default: () => "checkout" as const })
    }
  )
{
  /**
   * @since 0.1.0
   */
  readonly [TypeId]: TypeId = TypeId
  /**
   * @since 0.1.0
   */
  override get message(): string {
    return this.phase === "connect" ?
      `Pool "${this.pool}": a connect policy rejected the new connection: ${describe(this.cause)}` :
      `Pool "${this.pool}": ${this.attempts} connections in a row were rejected at checkout; last: ${
        describe(this.cause)
      }`
  }
}

/**
 * A misuse of the manual checkout API, refused without changing the pool: `"ReturnedTwice"` (the lease was already
 * returned or detached), `"Foreign"` (the lease or connection is not this pool's), `"NotLent"` (the connection is
 * not checked out), `"Full"` (a strict return found the pool full: the caller keeps the connection, as with
 * Spanner's `put`), `"NotInstalled"` (`Pool.policy` asked for a policy the pool was not made with).
 *
 * @since 0.1.0
 * @category errors
 */
export class PoolUsageError extends Schema.TaggedError<PoolUsageError>("effect-reservoir/PoolUsageError")(
  "PoolUsageError",
  {
    pool: Schema.String,
    reason: Schema.Literal("ReturnedTwice", "Foreign", "NotLent", "Full", "NotInstalled"),
    operation: Schema.String
  }
) {
  /**
   * @since 0.1.0
   */
  readonly [TypeId]: TypeId = TypeId
  /**
   * @since 0.1.0
   */
  override get message(): string {
    switch (this.reason) {
      case "ReturnedTwice":
        return `Pool "${this.pool}": ${this.operation} of a connection that was already returned`
      case "Foreign":
        return `Pool "${this.pool}": ${this.operation} of a connection this pool never lent`
      case "NotLent":
        return `Pool "${this.pool}": ${this.operation} of a connection that is not checked out`
      case "Full":
        return `Pool "${this.pool}": ${this.operation} refused: the pool is full`
      case "NotInstalled":
        return `Pool "${this.pool}": ${this.operation}: the pool was not made with that policy`
    }
  }
}

/**
 * Invalid pool options. `problems` lists every problem found, one line each; nothing is clamped silently.
 *
 * @since 0.1.0
 * @category errors
 */
export class PoolConfigError extends Schema.TaggedError<PoolConfigError>("effect-reservoir/PoolConfigError")(
  "PoolConfigError",
  { pool: Schema.String, problems: Schema.Array(Schema.String) }
) {
  /**
   * @since 0.1.0
   */
  readonly [TypeId]: TypeId = TypeId
  /**
   * @since 0.1.0
   */
  override get message(): string {
    return `Invalid options for pool "${this.pool}":\n${this.problems.map((p) => `  - ${p}`).join("\n")}`
  }
}

/**
 * A policy or checkout listener refuses a connection (SQLAlchemy's `DisconnectionError`). At checkout the pool
 * closes the connection and tries another; from `onReturn` the connection is closed instead of going back to the
 * pool. `invalidateAll` also starts a new generation, so every connection opened before this one is closed at its
 * next checkout or return (what SQLAlchemy's pre-ping does after a disconnect). `retry: false` (at checkout) fails
 * the checkout at once with this rejection as the cause of a `PoolCheckoutRejectedError`, instead of trying another
 * connection: what pre-ping does with a failure that is not a disconnect (a wrong liveness query, a permission
 * error), which another connection would only repeat.
 *
 * @since 0.1.0
 * @category errors
 */
export class ConnectionRejected extends Schema.TaggedError<ConnectionRejected>("effect-reservoir/ConnectionRejected")(
  "ConnectionRejected",
  {
    reason: Schema.String,
    cause: Schema.optional(Schema.Unknown),
    invalidateAll: Schema.optionalWith(Schema.Boolean, { default: () => false }),
    retry: Schema.optionalWith(Schema.Boolean, { default: () => true })
  }
) {
  /**
   * @since 0.1.0
   */
  override get message(): string {
    return this.cause === undefined ?
      `Connection rejected: ${this.reason}` :
      `Connection rejected: ${this.reason}: ${describe(this.cause)}`
  }
}

/**
 * The database is known to be unreachable: a circuit breaker (`Policy.circuitBreaker`) opened after repeated connect
 * failures, so a checkout that would have to wait for a connect fails at once instead of waiting for its timeout.
 * `cause` is the last connect failure; `retryAt` (epoch milliseconds) is when the breaker's next probe is due.
 *
 * @since 0.2.0
 * @category errors
 */
export class PoolUnavailableError
  extends Schema.TaggedError<PoolUnavailableError>("effect-reservoir/PoolUnavailableError")("PoolUnavailableError", {
    pool: Schema.String,
    failures: Schema.Number,
    retryAt: Schema.optional(Schema.Number),
    cause: Schema.optional(Schema.Unknown)
  })
{
  /**
   * @since 0.2.0
   */
  readonly [TypeId]: TypeId = TypeId
  /**
   * @since 0.2.0
   */
  override get message(): string {
    const base =
      `Pool "${this.pool}": the database is unavailable (circuit open after ${this.failures} failed connects)`
    return this.cause === undefined ? base : `${base}; last connect failure: ${describe(this.cause)}`
  }
}

/**
 * The errors a checkout can fail with besides the driver's own.
 *
 * @since 0.1.0
 * @category errors
 */
export type PoolError =
  | PoolTimeoutError
  | PoolClosedError
  | PoolExhaustedError
  | PoolCheckoutRejectedError
  | PoolUnavailableError

/**
 * @since 0.1.0
 * @category refinements
 */
export const isPoolError = (u: unknown): u is
  | PoolError
  | PoolUsageError
  | PoolConfigError => Predicate.hasProperty(u, TypeId)

const describe = (cause: unknown): string => {
  if (Predicate.isObject(cause) && "message" in cause && typeof cause.message === "string") {
    return Predicate.hasProperty(cause, "_tag") ? `${String(cause._tag)}: ${cause.message}` : cause.message
  }
  return String(cause)
}
