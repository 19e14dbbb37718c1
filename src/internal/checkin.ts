import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"
import { ConnectionRejected } from "../PoolError.js"
import type * as PoolEvent from "../PoolEvent.js"
import type { PoolImpl } from "./core.js"
import { call, chainHooks, HookContextImpl, prepareHook, ReturnContextImpl, returnHook } from "./hooks.js"
import { IDLE, type Item, LENT, moveTo, PREPARING, RETURNING } from "./item.js"
import { bumpGeneration, closeItem, invalidateItem, retirementReasons } from "./lifecycle.js"
import { grant } from "./queue.js"

/**
 * The return path: a borrower gives a connection back (`release`), the return policies reset it (`slowRelease`),
 * preparation runs off the borrower's path, and `offer` puts it back: to the oldest waiter, else idle, else closed.
 */

/** Why a connection cannot go back to the pool, or `undefined`. */
export const staleReason = <C, E>(pool: PoolImpl<C, E>, item: Item<C>): PoolEvent.CloseReason | undefined => {
  if (item.invalidated || item.soft) return "invalidated"
  if (item.record.generation < pool.generation) return "stale"
  return undefined
}

/**
 * Returns a lent connection. A stale lease (already returned, or closed by shutdown) does nothing. A borrower whose
 * work failed with a disconnect (the driver's `isDisconnect`) returns a dead connection: it is invalidated, never
 * lent again.
 *
 * @internal
 */
export const release = <C, E>(
  pool: PoolImpl<C, E>,
  item: Item<C>,
  token: number,
  exit: Exit.Exit<unknown, unknown>
): Effect.Effect<void> => {
  if (item.token !== token || !item.borrowed) return Effect.void
  item.borrowed = false
  item.holder = undefined
  const now = pool.now()
  const record = item.record
  pool.metrics.useTime(now - record.lastUsedAt)
  record.lastReturnedAt = now
  // closed underneath the borrower (hard invalidate or forced shutdown): only the checkin is left to tell
  if (item.state !== LENT) return checkinOnly(pool, item)
  if (exit._tag === "Failure") {
    const lost = disconnectOf(pool, exit.cause)
    if (lost !== undefined) return Effect.zipRight(invalidateItem(pool, item, lost, false), checkinOnly(pool, item))
  }
  if (pool.hasBusy) {
    const busy = releaseIfBusy(pool, item)
    if (busy !== undefined) return busy
  }
  if (!pool.slowReturn) return offer(pool, item, now)
  moveTo(pool.counts, item, RETURNING)
  return slowRelease(pool, item, exit, now)
}

/** The first failure in a borrower's cause that the driver calls a disconnect. */
const disconnectOf = <C, E>(pool: PoolImpl<C, E>, cause: Cause.Cause<unknown>): unknown => {
  for (const error of Cause.failures(cause)) {
    if (pool.driver.isDisconnect(error)) return error
  }
  return undefined
}

/**
 * Asks the driver once whether a returned connection is still busy (`Driver.busy`: its caller was interrupted
 * mid-statement); a busy one is closed now and never lent again.
 */
const releaseIfBusy = <C, E>(pool: PoolImpl<C, E>, item: Item<C>): Effect.Effect<void> | undefined => {
  const cause = pool.driver.busy!(item.connection)
  return cause === undefined
    ? undefined
    : Effect.zipRight(invalidateItem(pool, item, cause, false), checkinOnly(pool, item))
}

const checkinEvent = <C, E>(pool: PoolImpl<C, E>, item: Item<C>): Effect.Effect<void> =>
  pool.feed.emit({ _tag: "Checkin", pool: pool.name, record: item.record, connection: item.connection }, item.heardUpTo)

const checkinOnly = <C, E>(pool: PoolImpl<C, E>, item: Item<C>): Effect.Effect<void> =>
  pool.feed.listening ? checkinEvent(pool, item) : Effect.void

/**
 * Runs the borrower's work on a lent connection and returns it however the work ends (fails, dies, throws before
 * answering an Effect, is interrupted). One `matchCauseEffect` under the caller's mask.
 *
 * @internal
 */
export const run = <C, E, A, E2, R>(
  pool: PoolImpl<C, E>,
  item: Item<C>,
  restore: <A1, E1, R1>(effect: Effect.Effect<A1, E1, R1>) => Effect.Effect<A1, E1, R1>,
  f: (connection: C) => Effect.Effect<A, E2, R>
): Effect.Effect<A, E2, R> => {
  const token = item.token
  return Effect.matchCauseEffect(restore(call(f, item.connection)), {
    onSuccess: (a) => returnAfterSuccess(pool, item, token, a),
    onFailure: (cause) => returnAfterFailure(pool, item, token, cause)
  })
}

/** Returns a connection after the borrower's work succeeded with `a`, and succeeds with it. */
export const returnAfterSuccess = <C, E, A>(
  pool: PoolImpl<C, E>,
  item: Item<C>,
  token: number,
  a: A
): Effect.Effect<A> => {
  const returned = release(pool, item, token, pool.slowReturn ? Exit.succeed(a) : Exit.void)
  return returned === Effect.void ? Effect.succeed(a) : Effect.as(returned, a)
}

/** Returns a connection after the borrower's work failed (or was interrupted), and fails the same way. */
export const returnAfterFailure = <C, E, E2>(
  pool: PoolImpl<C, E>,
  item: Item<C>,
  token: number,
  cause: Cause.Cause<E2>
): Effect.Effect<never, E2> =>
  Effect.zipRight(release(pool, item, token, Exit.failCause(cause)), Effect.failCause(cause))

/** Ties a lent connection to a scope: it is returned when the scope closes. */
export const attach = <C, E>(pool: PoolImpl<C, E>, scope: Scope.Scope, item: Item<C>): Effect.Effect<C> => {
  const token = item.token
  return Effect.as(Scope.addFinalizerExit(scope, (exit) => release(pool, item, token, exit)), item.connection)
}

/**
 * A return that runs return policies or preparation, or that someone hears of (listeners, subscribers, debug
 * echo). Each hook after the one before, and a `Reset` event after each reset that succeeded; a failure closes the
 * connection instead of pooling it dirty.
 */
const slowRelease = <C, E>(
  pool: PoolImpl<C, E>,
  item: Item<C>,
  exit: Exit.Exit<unknown, unknown>,
  now: number
): Effect.Effect<void> => {
  const heard = pool.feed.listening || pool.echo === "debug"
  const checkin = heard ? Effect.zipRight(pool.log("debug", "checkin", item), checkinEvent(pool, item)) : undefined
  const putBack = () => {
    // nothing to tell: put it back in this very step, as a plain return does
    if (checkin === undefined && pool.prepareHooks.length === 0) return offer(pool, item)
    const next = pool.prepareHooks.length > 0 ? Effect.sync(() => prepare(pool, item)) : offerLater(pool, item)
    return checkin === undefined ? next : Effect.zipRight(checkin, next)
  }
  if (pool.returnHooks.length === 0 || staleReason(pool, item) !== undefined || pool.closed) return putBack()
  const context = new ReturnContextImpl(item, pool.driver, now, pool, exit)
  let reset: Effect.Effect<void, unknown> | undefined
  if (heard) {
    for (const hooks of pool.returnHooks) {
      const step = Effect.suspend(() => hooks.onReturn!(context))
      reset = reset === undefined ? step : Effect.zipRight(reset, step)
      if (hooks.resetMethod !== undefined) {
        const method = hooks.resetMethod
        reset = Effect.zipRight(
          reset,
          pool.feed.emit({ _tag: "Reset", pool: pool.name, record: item.record, connection: item.connection, method })
        )
      }
    }
  } else {
    reset = chainHooks(pool.returnHooks, returnHook, context)
    // every hook was done at once (a reset with nothing to reset answers `Effect.void`)
    if (reset === undefined) return putBack()
  }
  return Effect.matchCauseEffect(reset!, {
    onSuccess: putBack,
    onFailure: (cause) => {
      // a return policy retiring the connection (`expired`, `maxUses`, ...) is its life ending, not a failure
      const retired = retirement(cause)
      if (retired !== undefined) {
        if (retired.invalidateAll) bumpGeneration(pool)
        const close = closeItem(pool, item, retired.reason)
        return checkin === undefined ? close : Effect.zipRight(checkin, close)
      }
      const warn = Effect.logWarning("a return policy failed (reset or check); closing the connection", cause).pipe(
        Effect.annotateLogs({ pool: pool.name, connection: item.record.id })
      )
      return Effect.zipRight(
        checkin === undefined ? warn : Effect.zipRight(warn, checkin),
        closeItem(pool, item, "resetFailed")
      )
    }
  })
}

/** A return policy's `ConnectionRejected` whose reason is a retirement (`retirementReasons`). */
const retirement = (
  cause: Cause.Cause<unknown>
): { readonly reason: PoolEvent.CloseReason; readonly invalidateAll: boolean } | undefined => {
  const failure = Cause.failureOption(cause)
  if (failure._tag === "None" || !(failure.value instanceof ConnectionRejected)) return undefined
  const { invalidateAll, reason } = failure.value
  return retirementReasons.has(reason) ? { reason: reason as PoolEvent.CloseReason, invalidateAll } : undefined
}

const offerLater = <C, E>(pool: PoolImpl<C, E>, item: Item<C>): Effect.Effect<void> =>
  Effect.suspend(() => offer(pool, item))

/**
 * Prepares a returned connection off the borrower's path (Spanner's TransactionPingingPool): it is `preparing`
 * (counted in `stats.maintained`, not lendable) until the `prepare` hooks are done, then goes back; a failure, or the pool closing meanwhile, closes
 * it.
 */
const prepare = <C, E>(pool: PoolImpl<C, E>, item: Item<C>): void => {
  if (staleReason(pool, item) !== undefined || pool.closed) {
    pool.fork(offer(pool, item))
    return
  }
  moveTo(pool.counts, item, PREPARING)
  pool.gauges()
  const context = new HookContextImpl(item, pool.driver, pool.now(), pool)
  pool.fork(
    Effect.uninterruptibleMask((restore) =>
      Effect.matchCauseEffect(restore(chainHooks(pool.prepareHooks, prepareHook, context) ?? Effect.void), {
        onSuccess: () => offer(pool, item),
        onFailure: (cause) =>
          Effect.zipRight(
            Cause.isInterruptedOnly(cause) ?
              Effect.void :
              Effect.logWarning("preparing a returned connection failed; closing it", cause),
            closeItem(pool, item, pool.closed ? "shutdown" : "resetFailed")
          )
      })
    )
  )
}

/**
 * Puts a clean connection back: to the oldest waiter, else idle, else (overflow, stale, closing) closed. `now` is
 * passed by a caller that has just read the clock (a plain return), so a hand-off reads it once.
 *
 * @internal
 */
export const offer = <C, E>(pool: PoolImpl<C, E>, item: Item<C>, now?: number): Effect.Effect<void> => {
  const reason = pool.closed ? "shutdown" : staleReason(pool, item)
  if (reason !== undefined) return closeItem(pool, item, reason)
  const waiter = pool.queue.head
  if (waiter !== undefined) {
    grant(pool, waiter, item, now ?? pool.now())
    pool.gauges()
    return Effect.void
  }
  // overflow: `size` are idle already; but never below `min`, or refill and overflow would chase each other
  if (pool.idle.length >= pool.size && pool.counts.open > pool.min) return closeItem(pool, item, "overflow")
  moveTo(pool.counts, item, IDLE)
  pool.idle.push(item)
  pool.gauges()
  pool.checkDrained()
  return Effect.void
}

/**
 * Whether a strict return (Spanner's `put`) would find the pool full: nobody waits and `size` connections are
 * idle already. A connection that would be closed anyway (stale, invalidated, the pool closing) is never refused.
 *
 * @internal
 */
export const isFull = <C, E>(pool: PoolImpl<C, E>, item: Item<C>): boolean =>
  pool.queue.head === undefined && pool.idle.length >= pool.size && !pool.closed &&
  staleReason(pool, item) === undefined
