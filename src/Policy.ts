/**
 * Everything that happens to a connection over its life is a policy: a plain value that hooks into one or more of
 * four moments, and that composes with other policies by being listed after them.
 *
 * - `onConnect`: per-connection setup after the driver connects (Twisted's `cp_openfun`, HikariCP's
 *   `connectionInitSql`). A failure is a failed connect.
 * - `onCheckout`: validation before a connection is lent (pre-ping, maximum age, maximum uses). Failing with
 *   `ConnectionRejected` closes the connection and the checkout tries another.
 * - `onReturn`: reset before a returned connection goes back (rollback / commit / custom). Failing with
 *   `ConnectionRejected`, or any other failure, closes the connection instead of pooling it.
 * - `background`: a fiber in the pool's scope (keepalive pings, idle reaping), interrupted when the pool closes.
 *
 * and three seams around them: `connect` (wraps every connect) with `connectBackoff` (the schedule between failed
 * connects), `admit` (fail a checkout before it parks), and `prepare` (upkeep of a returned connection off the
 * borrower's path). A policy is a recipe: `instantiate`, when present, builds one instance per pool.
 *
 * Hooks run in the order the policies are listed. Timing is `Duration` / `Schedule` through Effect's `Clock`, so
 * every policy runs under `TestClock`.
 *
 * @since 0.1.0
 */
import type * as Cause from "effect/Cause"
import type * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import type * as Exit from "effect/Exit"
import type * as Fiber from "effect/Fiber"
import type * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import type { ConnectionRecord } from "./ConnectionRecord.js"
import type { ConnectContext, Driver } from "./Driver.js"
import * as circuitBreakerInternal from "./internal/policies/circuitBreaker.js"
import * as connectRetryInternal from "./internal/policies/connectRetry.js"
import * as defaultsInternal from "./internal/policies/defaults.js"
import * as firstConnectInternal from "./internal/policies/firstConnect.js"
import * as idleTimeoutInternal from "./internal/policies/idleTimeout.js"
import * as keepaliveInternal from "./internal/policies/keepalive.js"
import * as leakDetectionInternal from "./internal/policies/leakDetection.js"
import * as lifetimeInternal from "./internal/policies/lifetime.js"
import * as livenessQueryInternal from "./internal/policies/livenessQuery.js"
import * as internal from "./internal/policies/make.js"
import * as maxUsesInternal from "./internal/policies/maxUses.js"
import * as onConnectInternal from "./internal/policies/onConnect.js"
import * as prepareOnReturnInternal from "./internal/policies/prepareOnReturn.js"
import * as prePingInternal from "./internal/policies/prePing.js"
import * as recycleInternal from "./internal/policies/recycle.js"
import * as resetOnReturnInternal from "./internal/policies/resetOnReturn.js"
import type { ConnectionRejected, PoolError, PoolStats } from "./PoolError.js"
import type { CloseReason, PolicyEvent } from "./PoolEvent.js"

/**
 * What a hook receives.
 *
 * @since 0.1.0
 * @category models
 */
export interface HookContext<C, E> {
  readonly connection: C
  readonly record: ConnectionRecord
  readonly driver: Driver<C, E>
  /** The pool's clock, in epoch milliseconds. */
  readonly now: number
  /** Records that the connection was just validated (sets `record.lastValidatedAt`). */
  readonly markValidated: () => void
  /**
   * The pool's liveness check on this connection: the `liveness` hook of a policy that gives one
   * (`Policy.livenessQuery`), else the driver's `ping`. Pre-ping and keepalive ping with it.
   */
  readonly ping: () => Effect.Effect<void, E>
}

/**
 * What an `onReturn` hook receives: the hook context and how the borrower's work ended.
 *
 * @since 0.1.0
 * @category models
 */
export interface ReturnContext<C, E> extends HookContext<C, E> {
  readonly exit: Exit.Exit<unknown, unknown>
}

/**
 * A lent connection and who holds it (see `PoolHandle.holders`).
 *
 * @since 0.2.0
 * @category models
 */
export interface Holder {
  readonly record: ConnectionRecord
  /** The fiber the connection is lent to. */
  readonly fiber: Fiber.RuntimeFiber<unknown, unknown> | undefined
  /** When it was checked out, in epoch milliseconds. */
  readonly since: number
  /** Where it was checked out: a stack, or the span current at checkout, when a policy asked for `traceCheckouts`. */
  readonly trace: string | undefined
}

/**
 * What a policy instance (and a `background` fiber) may do with its pool.
 *
 * @since 0.1.0
 * @category models
 */
export interface PoolHandle<C, E> {
  readonly name: string
  readonly driver: Driver<C, E>
  /** A snapshot of the pool's counters. */
  readonly stats: Effect.Effect<PoolStats>
  /**
   * Takes each connection that is idle right now out of the pool in turn (no borrower can get it meanwhile; it
   * counts as `maintained`), runs `f` on it, and puts it back; a `ConnectionRejected` failure closes it with the
   * rejection's reason instead. `f` runs interruptibly: a pass cut short (the pool closing) closes the connection
   * it held, so a hanging ping never blocks the pool's shutdown.
   */
  readonly forEachIdle: (
    f: (context: HookContext<C, E>) => Effect.Effect<void, ConnectionRejected>
  ) => Effect.Effect<void>
  /** Opens connections until `min` are open (nothing when backing off after a failure or closing). */
  readonly refill: Effect.Effect<void>
  /** Starts a new generation: every connection opened before now is closed at its next checkout or return. */
  readonly invalidateAll: Effect.Effect<void>
  /** The connections lent right now, with their holders. */
  readonly holders: Effect.Effect<ReadonlyArray<Holder>>
  /**
   * Takes a lent connection back from its holder: the holder fiber is interrupted and the connection is closed
   * (reason `"reclaimed"`). `false` when it is no longer lent.
   */
  readonly reclaim: (record: ConnectionRecord) => Effect.Effect<boolean>
  /** The records of the connections idle right now, oldest first (a snapshot; nothing is taken out). */
  readonly idle: Effect.Effect<ReadonlyArray<ConnectionRecord>>
  /**
   * Closes a connection that is idle right now, with `reason` (`"expired"`, `"idle"`, ...): a lifetime policy
   * retiring it in the background. `false` when it is not idle any more (lent meanwhile, or closed), which leaves it
   * alone. Follow with `refill` to restore `min`.
   */
  readonly retire: (record: ConnectionRecord, reason: CloseReason) => Effect.Effect<boolean>
  /**
   * Opens one connection now and puts it in the pool (to a waiter, else idle): above `min`, within `max`, without
   * waiting for the connect backoff's delay; a circuit breaker's probe. `false` when the pool is closed or has no
   * room; fails with the connect's failure.
   */
  readonly connect: Effect.Effect<boolean, E | PoolError>
  /** Emits a policy's event into the pool's one ordered feed (listeners and `Pool.events` subscribers hear it). */
  emit(event: PolicyEvent<C>): Effect.Effect<void>
  /** The pool's clock, in epoch milliseconds. */
  readonly now: Effect.Effect<number>
}

/**
 * The hooks a policy (or an instance of one) may have, one per moment of a connection's life.
 *
 * @since 0.2.0
 * @category models
 */
export interface Hooks<C, E> {
  /** When set, a successful `onReturn` counts as a reset and emits a `Reset` event with this method name. */
  readonly resetMethod?: string | undefined
  /** Per-connection setup; a failure is a failed connect. */
  onConnect?(context: HookContext<C, E>): Effect.Effect<void, E | ConnectionRejected>
  /**
   * Validation before lending; `ConnectionRejected` closes the connection and the checkout tries another. It runs
   * interruptibly and within the checkout's deadline: a validation cut short closes the connection.
   */
  onCheckout?(context: HookContext<C, E>): Effect.Effect<void, ConnectionRejected>
  /** Reset before a returned connection goes back; any failure closes it instead. */
  onReturn?(context: ReturnContext<C, E>): Effect.Effect<void, unknown>
  /**
   * Preparation off the borrower's path, after the return hooks (Spanner's TransactionPingingPool begins a
   * transaction here): the connection counts as `maintained` and is not lent until it is done; a failure closes it.
   */
  prepare?(context: HookContext<C, E>): Effect.Effect<void, unknown>
  /**
   * Wraps every connect, whoever asks for it (a waiter, a refill to `min`, a replacement): a retry on a
   * `Schedule`, a timeout, a circuit breaker. Policies wrap in the order listed: the first listed is innermost.
   */
  connect?(
    open: Effect.Effect<C, E | PoolError, Scope.Scope>,
    context: ConnectContext
  ): Effect.Effect<C, E | PoolError, Scope.Scope>
  /**
   * The delays between connect attempts while connects fail: stepped with each failure's cause, reset by a
   * success; while it runs, one connect at a time probes the database. The last policy that gives one wins.
   */
  readonly connectBackoff?: Schedule.Schedule<unknown, Cause.Cause<unknown>> | undefined
  /**
   * Admission: called before a checkout parks (no idle connection was free). An error fails the checkout at once
   * instead of queueing it (a circuit breaker that is open).
   */
  admit?(): PoolError | undefined
  /**
   * The liveness check every ping of the pool runs (`HookContext.ping`: pre-ping, keepalive), instead of the
   * driver's `ping`. The last policy that gives one wins.
   */
  liveness?(context: HookContext<C, E>): Effect.Effect<void, E>
  /** Asks the pool to record where each connection is checked out: a stack, or the current span. */
  readonly traceCheckouts?: "stack" | "span" | undefined
  /** A fiber in the pool's scope, interrupted when the pool closes. */
  background?(pool: PoolHandle<C, E>): Effect.Effect<void>
}

/**
 * A policy's instance in one pool: its hooks and the commands it offers users (`Pool.policy`).
 *
 * @since 0.2.0
 * @category models
 */
export interface Instance<C, E, Commands = void> extends Hooks<C, E> {
  readonly commands?: Commands | undefined
}

/**
 * A lifecycle policy: a recipe. A stateless one is its own hooks; a stateful one has `instantiate`, which each
 * pool calls once, in its own scope, so a policy value passed to two pools shares no state between them.
 *
 * @since 0.1.0
 * @category models
 */
export interface Policy<C, E = never, Commands = void> extends Hooks<C, E> {
  /** The policy's name, used in logs, rejection reasons and `Reset` events. */
  readonly name: string
  /**
   * What is wrong with the arguments the policy was made with (a built-in's negative duration, a fraction out of
   * range): a pool made with it fails with one `PoolConfigError` listing them. A policy with problems has no hooks.
   */
  readonly problems?: ReadonlyArray<string> | undefined
  /** Builds this policy's instance for one pool; when absent the policy's own hooks are the instance. */
  instantiate?(pool: PoolHandle<C, E>): Effect.Effect<Instance<C, E, Commands>, never, Scope.Scope>
}

/**
 * Builds a policy from its hooks (an identity with the types checked).
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: <C, E = never, Commands = void>(policy: Policy<C, E, Commands>) => Policy<C, E, Commands> =
  internal.make

/**
 * A stateful policy: `instantiate` runs once per pool, in the pool's scope, and returns that pool's instance (its
 * hooks, which may close over state of their own, and the commands users reach with `Pool.policy`).
 *
 * @since 0.2.0
 * @category constructors
 */
export const stateful: <C, E = never, Commands = void>(
  name: string,
  instantiate: (pool: PoolHandle<C, E>) => Effect.Effect<Instance<C, E, Commands>, never, Scope.Scope>
) => Policy<C, E, Commands> = internal.stateful

/**
 * What a reset on return does: `"rollback"` ends any transaction the borrower left open, `"commit"` commits it when
 * the borrower's work succeeded (and rolls it back when it failed or was interrupted), `"none"` does nothing, and a
 * function is a custom reset that receives the borrower's `Exit`.
 *
 * @since 0.2.0
 * @category models
 */
export type ResetMode<C, E> =
  | "rollback"
  | "commit"
  | "none"
  | ((context: ReturnContext<C, E>) => Effect.Effect<void, unknown>)

/**
 * Reset on return (SQLAlchemy's `reset_on_return`), the return finalizer: runs once per return, before the
 * connection can be lent again, aware of how the borrower's work ended. `"rollback"` (the default), `"commit"`,
 * `"none"`, or a function of the `ReturnContext`. A reset that fails or takes longer than `timeout` (default 5
 * seconds) closes the connection instead of pooling it dirty (close reason `resetFailed`); interrupting the
 * borrower during its return never cuts a reset short, only the timeout does. A successful reset emits
 * a `Reset` event. When the driver knows no transaction is open (`Driver.inTransaction` answers `false`: the `Pg` and
 * `Sqlite` drivers do), a rollback or commit sends nothing and costs no step of its own.
 *
 * Trade-off: `"rollback"` costs one round trip per return that left a transaction open, and nothing otherwise;
 * `"none"` trusts every borrower.
 *
 * @since 0.1.0
 * @category policies
 */
export const resetOnReturn: <C = never, E = never>(
  mode?: ResetMode<C, E>,
  options?: { readonly timeout?: Duration.DurationInput | undefined }
) => Policy<C, E> = resetOnReturnInternal.resetOnReturn

/**
 * Pre-ping (SQLAlchemy's `pool_pre_ping`): pings a connection before lending it, unless it was used or validated
 * within `skipWithin` (default 500 ms, HikariCP's bypass window), with the pool's liveness check
 * (`HookContext.ping`). The ping is bounded by its own `timeout` (default 5 seconds) and by the checkout's deadline.
 * A ping that fails with a disconnect (`driver.isDisconnect`) invalidates every connection opened before it (a new
 * generation: a restarted server dropped them all) and the checkout goes on with a fresh connection, so the caller
 * sees no error; a ping that times out closes that connection and the checkout tries another; any other failure
 * (a wrong liveness query, a permission error) fails the checkout with `PoolCheckoutRejectedError`, since another
 * connection would only repeat it.
 *
 * Trade-off: one round trip per checkout of a connection idle longer than `skipWithin`, against never lending a dead
 * connection. On by default.
 *
 * @since 0.1.0
 * @category policies
 */
export const prePing: <C = never, E = never>(
  options?: {
    readonly timeout?: Duration.DurationInput | undefined
    readonly skipWithin?: Duration.DurationInput | undefined
  }
) => Policy<C, E> = prePingInternal.prePing

/**
 * Recycle (SQLAlchemy's `pool_recycle`, HikariCP's `maxLifetime`): a connection older than its lifetime is closed at
 * checkout or at return, never while lent, and an idle one is closed in the background when its lifetime ends, then
 * `min` is refilled (close reason `expired`). Each connection's lifetime, counted from its connect, is `maxAge` less
 * a part of up to `spread` of it (default 0.025, HikariCP's 2.5 %; from 0 to 0.5, anything else a `PoolConfigError`): the parts are spread evenly
 * over the connections of a pool, from a random offset per pool, so connections opened together do not all expire
 * (and reconnect) together, and neither do pools started together. `spread: 0` expires each at exactly `maxAge`.
 *
 * Trade-off: a reconnect every `maxAge` per connection, against connections that outlive a server's or a
 * firewall's own limits. On by default with 30 minutes (HikariCP's default).
 *
 * @since 0.1.0
 * @category policies
 */
export const recycle: <C = never, E = never>(
  maxAge: Duration.DurationInput,
  options?: { readonly spread?: number | undefined }
) => Policy<C, E> = recycleInternal.recycle

/**
 * Maximum uses (pg-pool's `maxUses`): a connection is lent at most `n` times; it is closed when it comes back from
 * its `n`-th use (close reason `maxUses`), however that use ended, so no checkout meets it again. `Infinity` is no
 * limit.
 *
 * Trade-off: spreads server-side memory growth and load-balancer rebalancing over reconnects. Off by default.
 *
 * @since 0.1.0
 * @category policies
 */
export const maxUses: <C = never, E = never>(maxUses: number) => Policy<C, E> = maxUsesInternal.maxUses

/**
 * A connection's lifetime as a `Schedule`, stepped at every checkout with the connection's record: the checkout
 * goes on while the schedule continues, and the connection is closed instead of lent (close reason `expired`) once
 * it is done; the checkout then tries another. `Schedule.recurs(n)` allows `n` lendings,
 * `Schedule.recurUpTo(d)` ends `d` after the first lending (a checkout `d` or more after it is refused), and
 * `Schedule.intersect(a, b)` ends at whichever ends first. Each connection has its own schedule state. Only the
 * schedule's decision counts: its delays are ignored, since a checkout never waits for them.
 *
 * Trade-off: one schedule step per checkout, and the connection that is done is found at a checkout (the one after
 * its last lending), not at its return as with `maxUses`. Off by default; `recycle` (age from the connect) and
 * `maxUses` cover the usual cases.
 *
 * @since 0.2.0
 * @category policies
 */
export const lifetime: <C = never, E = never>(
  schedule: Schedule.Schedule<unknown, ConnectionRecord>
) => Policy<C, E> = lifetimeInternal.lifetime

/**
 * Idle timeout (HikariCP's `idleTimeout`, pg-pool's `idleTimeoutMillis`): a connection idle for longer than
 * `timeout`, measured from when it came back (from its connect if it was never lent), is closed in the background
 * (close reason `idle`), the longest idle first, as long as more than `min` are open; lent connections count
 * towards `min` and are never touched. `min` is not refilled: the connections closed are the ones above it.
 *
 * Trade-off: fewer idle sessions on the server, against a reconnect when load comes back. Off by default: the pool
 * keeps `size` connections, as SQLAlchemy's does.
 *
 * @since 0.2.0
 * @category policies
 */
export const idleTimeout: <C = never, E = never>(timeout: Duration.DurationInput) => Policy<C, E> =
  idleTimeoutInternal.idleTimeout

/**
 * The commands of a keepalive (`Pool.policy(pool, keepalive)`).
 *
 * @since 0.2.0
 * @category models
 */
export interface KeepaliveCommands {
  /** Runs one pass now: pings every idle connection (Spanner's `PingingPool.ping()`). */
  readonly ping: Effect.Effect<void>
}

/**
 * Keepalive (Spanner's `PingingPool`, HikariCP's `keepaliveTime`): pings idle connections on the schedule (a
 * `Duration` is `Schedule.spaced`), each ping bounded by `timeout` (default 5 seconds); a connection whose ping
 * fails or hangs is closed and replaced (that one only: unlike pre-ping, a disconnect starts no new generation,
 * since the pass pings every idle connection anyway). A connection being pinged is out of reach for a moment, but a
 * pass never takes one while checkouts wait, and a hanging ping never blocks the pool's shutdown. `idleFor` (default 0) pings only connections idle at least that long (since their last return or
 * validation). Its command `ping` runs one pass now; passes never overlap (the command and the schedule take turns),
 * and the first scheduled one comes one step of the schedule after the pool opens.
 *
 * Trade-off: a round trip per idle connection per interval, against idle connections silently dropped by a
 * firewall or the server. Off by default (pre-ping covers lending).
 *
 * @since 0.2.0
 * @category policies
 */
export const keepalive: <C = never, E = never>(
  schedule: Schedule.Schedule<unknown, unknown> | Duration.DurationInput,
  options?: {
    readonly timeout?: Duration.DurationInput | undefined
    readonly idleFor?: Duration.DurationInput | undefined
  }
) => Policy<C, E, KeepaliveCommands> = keepaliveInternal.keepalive

/**
 * Per-connection setup (Twisted's `cp_openfun`, HikariCP's `connectionInitSql`): runs once on every new connection
 * before it is lent. A failure is a failed connect: the connection is closed and the error goes to the checkout
 * that waited for it.
 *
 * @since 0.1.0
 * @category policies
 */
export const onConnect: <C, E>(
  setup: (connection: C, record: ConnectionRecord) => Effect.Effect<void, E>
) => Policy<C, E> = onConnectInternal.onConnect

/**
 * SQLAlchemy's `first_connect`: runs once per pool, on the first connection that opens (before it is lent), for
 * work that needs a live connection once (reading the server's version or dialect settings). Once even when
 * connects race: the others wait for the first setup to end, as SQLAlchemy's runs under a lock. A failure is a
 * failed connect, and the next connection (one that waited included) tries again.
 *
 * @since 0.2.0
 * @category policies
 */
export const firstConnect: <C, E>(
  setup: (connection: C, record: ConnectionRecord) => Effect.Effect<void, E>
) => Policy<C, E> = firstConnectInternal.firstConnect

/**
 * The liveness query (Twisted's `cp_good_sql`): the statement every ping of the pool runs (pre-ping, keepalive)
 * instead of the driver's `ping`. Default `"SELECT 1"`.
 *
 * @since 0.2.0
 * @category policies
 */
export const livenessQuery: <C = never, E = never>(sql?: string) => Policy<C, E> = livenessQueryInternal.livenessQuery

/**
 * The commands of a `prepareOnReturn` policy.
 *
 * @since 0.2.0
 * @category models
 */
export interface PrepareCommands {
  /**
   * Prepares every pending connection now and waits until they are ready, answering how many were prepared
   * (Spanner's `begin_pending_transactions`); a preparation that failed, or that the pool's closing cut short, is
   * not counted. Without `pending` nothing waits, and it answers 0.
   */
  readonly beginPending: Effect.Effect<number>
  /** How many returned connections wait for their preparation. */
  readonly pending: Effect.Effect<number>
}

/**
 * Prepare on return (Spanner's `TransactionPingingPool`): a returned connection is prepared (for example a
 * transaction begun) off the borrower's path before it is lent again; while it waits or is being prepared it is
 * not lendable (`stats.maintained`). By default a connection is prepared as soon as it comes back; with `pending`
 * it waits for the next step of that schedule (a `Duration` is `Schedule.spaced`), the command `beginPending`, or a
 * checkout that finds no idle connection, whichever comes first; `"manual"` waits for the command or a checkout. A
 * failed preparation closes the connection (close reason `resetFailed`); the pool's closing interrupts the
 * preparations and the waits, and closes their connections.
 *
 * A new connection is prepared too, as it opens (in `onConnect`, at once whatever `pending` says; a failure there
 * is a failed connect), so every lending finds its connection prepared, the first included; a `prepare` that
 * checks `record.uses === 0` skips new connections. The preparation runs after the return hooks: with
 * `resetOnReturn("rollback")` listed, what a borrower left open in the transaction it was lent is rolled back
 * before the next transaction begins.
 *
 * Trade-off: the preparation's round trip per return, off the borrower's path, against one on it; with `pending`,
 * fewer round trips at quiet times, against connections that stay out of reach until their signal.
 *
 * @since 0.2.0
 * @category policies
 */
export const prepareOnReturn: <C, E>(
  prepare: (connection: C, record: ConnectionRecord) => Effect.Effect<void, E>,
  options?: {
    readonly pending?: Schedule.Schedule<unknown, unknown> | Duration.DurationInput | "manual" | undefined
  }
) => Policy<C, E, PrepareCommands> = prepareOnReturnInternal.prepareOnReturn

/**
 * Connect retry (HikariCP's, sqlx's): the delays between connects while connects fail, a `Schedule` stepped with
 * each failure's `Cause` and reset by a success (a `Duration` is `Schedule.spaced`). While the database is down one
 * connect at a time probes it, none spins, and each waiter gets the real connect error when its deadline comes.
 * Default: exponential from 100 ms doubling, capped at 10 seconds, jittered (the pool's own default, so listing
 * `connectRetry()` only states it).
 *
 * @since 0.2.0
 * @category policies
 */
export const connectRetry: <C = never, E = never>(
  schedule?: Schedule.Schedule<unknown, Cause.Cause<unknown>> | Duration.DurationInput
) => Policy<C, E> = connectRetryInternal.connectRetry

/**
 * A circuit breaker's state.
 *
 * @since 0.2.0
 * @category models
 */
export type BreakerState = "closed" | "open" | "halfOpen"

/**
 * The commands of a circuit breaker.
 *
 * @since 0.2.0
 * @category models
 */
export interface BreakerCommands {
  /** The breaker's state now. */
  readonly state: Effect.Effect<BreakerState>
  /** Consecutive connect failures counted now. */
  readonly failures: Effect.Effect<number>
}

/**
 * A circuit breaker (beyond every seed pool): after `failures` consecutive connect failures (default 5) it opens,
 * and checkouts that would have to wait for a connect fail at once with `PoolUnavailableError`, carrying the last
 * connect failure, instead of waiting for their timeout; idle connections are still lent, and a checkout that finds
 * every slot holding an open connection waits for a return as usual. While open, one probe connect runs on the
 * `probe` schedule (a `Duration` is `Schedule.spaced`; default exponential from 1 second, capped at 30 seconds,
 * jittered), going half-open while it runs (checkouts are still refused then); the first connect that succeeds,
 * the probe or one of the pool's own (a refill to `min`), closes it. Its state is a command (`state`) and a
 * `CircuitBreaker` event (`open` with the last failure, `halfOpen`, `closed`).
 *
 * Counted: every connect the driver fails (and a connect cut off by `connectTimeout`), whoever asked for it; not
 * connects the pool's shutdown interrupts, nor `onConnect` failures. Checkouts already waiting when it opens keep
 * their own deadline.
 *
 * Trade-off: a dead database answers callers at once instead of after `timeout`, at the price of a refusal for up
 * to one probe interval after it came back. Off by default.
 *
 * @since 0.2.0
 * @category policies
 */
export const circuitBreaker: <C = never, E = never>(
  options?: {
    readonly failures?: number | undefined
    readonly probe?: Schedule.Schedule<unknown, unknown> | Duration.DurationInput | undefined
  }
) => Policy<C, E, BreakerCommands> = circuitBreakerInternal.circuitBreaker

/**
 * The commands of a leak detector.
 *
 * @since 0.2.0
 * @category models
 */
export interface LeakCommands {
  /** The connections held longer than the threshold right now. */
  readonly leaks: Effect.Effect<ReadonlyArray<Holder>>
}

/**
 * Leak detection (HikariCP's `leakDetectionThreshold`, and beyond it): a connection held longer than `threshold`
 * emits a `Leak` event, once per lending, naming the holder fiber and where it was checked out (`trace`: `"span"`,
 * the default, is the span current at checkout; `"stack"` captures the caller's stack at every call of `use`, `get`
 * or `checkout`, which costs); `Unleaked` when it comes back. With `reclaim: true` the holder fiber is interrupted
 * and the connection closed (reason `reclaimed`) once the holder has stopped (so a driver cancels the statement it
 * was running), then `Unleaked`. A reported connection that is closed instead of returned (invalidated, stale,
 * detached) has its `Unleaked` at the detector's next pass, within one threshold. Its command `leaks` lists the
 * connections held past the threshold now.
 *
 * Trade-off: a background fiber that sleeps until the next lending reaches the threshold, and a return hook that
 * costs nothing while no leak is reported; `"stack"` costs an `Error` per checkout. Off by default.
 *
 * @since 0.2.0
 * @category policies
 */
export const leakDetection: <C = never, E = never>(
  threshold: Duration.DurationInput,
  options?: {
    readonly reclaim?: boolean | undefined
    readonly trace?: "span" | "stack" | undefined
  }
) => Policy<C, E, LeakCommands> = leakDetectionInternal.leakDetection

/**
 * The policies a pool gets when its options name none (`policies` absent): `recycle("30 minutes")`, `prePing()`
 * (with its 500 ms bypass window), `resetOnReturn("rollback")`, in that order; failed connects wait on the pool's
 * default backoff (`connectRetry()`'s). `policies: []` opts out of all of them. A pool made from a bare `acquire`
 * (a resource that is not a database connection) has no default policies.
 *
 * @since 0.2.0
 * @category policies
 */
export const defaults: <C = never, E = never>() => ReadonlyArray<Policy<C, E>> = defaultsInternal.defaults
