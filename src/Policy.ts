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
 * Hooks run in the order the policies are listed. Timing is `Duration` / `Schedule` through Effect's `Clock`, so
 * every policy runs under `TestClock`.
 *
 * @since 0.1.0
 */
import type * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import type * as Exit from "effect/Exit"
import type { ConnectionRecord } from "./ConnectionRecord.js"
import type { Driver } from "./Driver.js"
import * as internal from "./internal/policy.js"
import type { ConnectionRejected, PoolStats } from "./PoolError.js"

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
 * What a `background` fiber may do with its pool.
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
   * Takes each connection that is idle right now out of the pool in turn (no borrower can get it meanwhile), runs
   * `f` on it, and puts it back; a `ConnectionRejected` failure closes it with the rejection's reason instead.
   */
  readonly forEachIdle: (
    f: (context: HookContext<C, E>) => Effect.Effect<void, ConnectionRejected>
  ) => Effect.Effect<void>
  /** Opens connections until `min` are open (nothing when backing off after a failure or closing). */
  readonly refill: Effect.Effect<void>
  /** Starts a new generation: every connection opened before now is closed at its next checkout or return. */
  readonly invalidateAll: Effect.Effect<void>
}

/**
 * A lifecycle policy.
 *
 * @since 0.1.0
 * @category models
 */
export interface Policy<C, E = never> {
  /** The policy's name, used in logs, rejection reasons and `Reset` events. */
  readonly name: string
  /** When set, a successful `onReturn` counts as a reset and emits a `Reset` event with this method name. */
  readonly resetMethod?: string | undefined
  /** Per-connection setup; a failure is a failed connect. */
  onConnect?(context: HookContext<C, E>): Effect.Effect<void, E | ConnectionRejected>
  /** Validation before lending; `ConnectionRejected` closes the connection and the checkout tries another. */
  onCheckout?(context: HookContext<C, E>): Effect.Effect<void, ConnectionRejected>
  /** Reset before a returned connection goes back; any failure closes it instead. */
  onReturn?(context: ReturnContext<C, E>): Effect.Effect<void, unknown>
  /** A fiber in the pool's scope, interrupted when the pool closes. */
  background?(pool: PoolHandle<C, E>): Effect.Effect<void>
}

/**
 * Builds a policy from its hooks (an identity with the types checked).
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: <C, E = never>(policy: Policy<C, E>) => Policy<C, E> = internal.make

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
