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
import * as internal from "./internal/policy.js"
import type { ConnectionRejected, PoolError, PoolStats } from "./PoolError.js"

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
 * Reset on return (SQLAlchemy's `reset_on_return`): `"rollback"` (the default; ends any transaction the borrower
 * left open), `"commit"`, or `"none"`. A failed reset closes the connection, so the next borrower gets a clean one.
 * When the driver knows no transaction is open (`Driver.inTransaction` answers `false`: the `Pg` and `Sqlite` drivers
 * do), the reset sends nothing and costs no step of its own; listeners still hear a `Reset` event.
 *
 * @since 0.1.0
 * @category policies
 */
export const resetOnReturn: <C = never, E = never>(mode?: "rollback" | "commit" | "none") => Policy<C, E> =
  internal.resetOnReturn

/**
 * Pre-ping (SQLAlchemy's `pool_pre_ping`): pings each connection before lending it. A failed ping rejects the
 * connection; when the failure is a disconnect, every connection opened before it is invalidated too (a new
 * generation), since a restarted server dropped them all. The ping has its own `timeout` (default 5 seconds).
 *
 * @since 0.1.0
 * @category policies
 */
export const prePing: <C = never, E = never>(
  options?: { readonly timeout?: Duration.DurationInput | undefined }
) => Policy<C, E> = internal.prePing

/**
 * Recycle (SQLAlchemy's `pool_recycle`, HikariCP's `maxLifetime` at checkout): a connection older than `maxAge` is
 * closed at checkout instead of lent.
 *
 * @since 0.1.0
 * @category policies
 */
export const recycle: <C = never, E = never>(maxAge: Duration.DurationInput) => Policy<C, E> = internal.recycle

/**
 * Closes a connection at checkout once it has been lent `maxUses` times.
 *
 * @since 0.1.0
 * @category policies
 */
export const maxUses: <C = never, E = never>(maxUses: number) => Policy<C, E> = internal.maxUses

/**
 * Per-connection setup (Twisted's `cp_openfun`): runs once on every new connection before it is lent. A failure
 * is a failed connect.
 *
 * @since 0.1.0
 * @category policies
 */
export const onConnect: <C, E>(
  setup: (connection: C, record: ConnectionRecord) => Effect.Effect<void, E>
) => Policy<C, E> = internal.onConnect
