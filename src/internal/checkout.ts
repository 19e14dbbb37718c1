import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import {
  ConnectionRejected,
  PoolCheckoutRejectedError,
  PoolClosedError,
  type PoolError,
  PoolExhaustedError
} from "../PoolError.js"
import type * as PoolEvent from "../PoolEvent.js"
import { offer, returnAfterFailure, returnAfterSuccess, staleReason } from "./checkin.js"
import { pump } from "./connector.js"
import { currentFiber, type PoolImpl } from "./core.js"
import { call, chainHooks, checkoutHook, HookContextImpl } from "./hooks.js"
import { type Item, LENT } from "./item.js"
import { closeItem, closeRejected, retirementReasons } from "./lifecycle.js"
import { enqueue, lend, timedOut, unlink } from "./queue.js"
import { DONE, GRANTED, RUNNING, Waiter, WAITING } from "./waiters.js"

/**
 * The checkout path: the synchronous fast path (`tryTake`), the general one (`acquireSlow`: admission, queueing,
 * validation), the combined wait of `Pool.use` (`useParked`) and the clean-up of a cancelled wait. Only the wait and
 * the validation are interruptible; a checkout keeps its first arrival time and deadline across retries.
 */

/** @internal */
export type Restore = <A, E1, R>(effect: Effect.Effect<A, E1, R>) => Effect.Effect<A, E1, R>

/**
 * The fast path, synchronous: an idle connection when nobody waits and nothing needs checking. Callers run it
 * inside their own step and fall back to `acquireSlow`.
 *
 * @internal
 */
export const tryTake = <C, E>(pool: PoolImpl<C, E>): Item<C> | undefined => {
  if (pool.closed || pool.queue.length !== 0 || pool.slowCheckout || pool.idle.length === 0) return undefined
  const item = takeIdle(pool)
  if (item !== undefined) pool.gauges()
  return item
}

const takeIdle = <C, E>(pool: PoolImpl<C, E>): Item<C> | undefined => {
  for (;;) {
    const item = pool.lifo ? pool.idle.tail : pool.idle.head
    if (item === undefined) return undefined
    const reason = staleReason(pool, item)
    if (reason !== undefined) {
      // takes it out of the list at once
      pool.fork(closeItem(pool, item, reason))
      continue
    }
    pool.idle.remove(item)
    lend(pool, item, pool.now(), currentFiber())
    return item
  }
}

/**
 * One checkout across its attempts: the caller's mask, which attempt this is (`n > 0` is a retry after a rejected
 * connection), how many connections were rejected on the way (`rejected`: retirements at the end of a lifetime do
 * not count, so a pile of expired idle connections cannot use up `maxCheckoutAttempts`), and the first attempt's
 * arrival and deadline, which every retry keeps.
 *
 * @internal
 */
export interface Attempt {
  readonly restore: Restore
  readonly n: number
  readonly rejected: number
  /** The id the pool's next connection would get when the checkout arrived: ids from it on were opened after. */
  readonly firstNewId: number
  readonly arrivedAt: number
  readonly deadline: number
  readonly timeoutMillis: number
}

/** The deadline of a checkout that starts now with `timeoutMillis`. */
export const deadlineOf = (now: number, timeoutMillis: number): number =>
  timeoutMillis === Infinity ? Infinity : now + timeoutMillis

/** The first attempt of a checkout that starts now with `timeoutMillis`. */
export const firstAttempt = (
  restore: Restore,
  now: number,
  timeoutMillis: number,
  firstNewId: number
): Attempt => ({
  restore,
  n: 0,
  rejected: 0,
  firstNewId,
  arrivedAt: now,
  deadline: deadlineOf(now, timeoutMillis),
  timeoutMillis
})

const retryOf = (attempt: Attempt, rejected: boolean): Attempt => ({
  ...attempt,
  n: attempt.n + 1,
  rejected: rejected ? attempt.rejected + 1 : attempt.rejected
})

/**
 * The general checkout: a closed pool fails, an idle connection is taken when nobody waits (and validated), else
 * admission is asked and the checkout parks.
 *
 * @internal
 */
export const acquireSlow = <C, E>(pool: PoolImpl<C, E>, attempt: Attempt): Effect.Effect<Item<C>, E | PoolError> => {
  if (pool.closed) return Effect.fail(new PoolClosedError({ pool: pool.name }))
  if (attempt.n > 0 && pool.now() >= attempt.deadline) {
    return Effect.fail(timedOut(pool, attempt.arrivedAt, attempt.timeoutMillis, "wait"))
  }
  if (pool.queue.length === 0) {
    const item = takeIdle(pool)
    if (item !== undefined) {
      pool.gauges()
      if (!pool.slowCheckout) return Effect.succeed(item)
      const now = pool.now()
      const checks = checksOf(pool, item, now)
      return passedAtOnce(pool, checks) ? Effect.succeed(item) : validate(pool, item, attempt, { checks, now })
    }
  }
  const refused = admit(pool)
  if (refused !== undefined) return refused
  return park(pool, attempt)
}

/** Admission: the first policy that refuses a checkout about to park fails it at once (a throw is a defect). */
export const admit = <C, E>(pool: PoolImpl<C, E>): Effect.Effect<never, PoolError> | undefined => {
  for (const hooks of pool.admitHooks) {
    try {
      const refused = hooks.admit!()
      if (refused !== undefined) return Effect.fail(refused)
    } catch (defect) {
      return Effect.die(defect)
    }
  }
  return undefined
}

/**
 * Queues a waiter (at the front for a retry after a rejected checkout: it arrived before everyone queued), or
 * refuses when `maxWaiters` are queued.
 *
 * @internal
 */
export const enqueueWaiter = <C, E>(
  pool: PoolImpl<C, E>,
  arrivedAt: number,
  deadline: number,
  timeoutMillis: number,
  retry: boolean
): Waiter<C> | PoolExhaustedError => {
  if (pool.queue.length >= pool.maxWaiters) {
    return new PoolExhaustedError({ pool: pool.name, maxWaiters: pool.maxWaiters, stats: pool.stats() })
  }
  const waiter = new Waiter<C>(arrivedAt, deadline, timeoutMillis, currentFiber())
  waiter.firstNewId = pool.nextId
  enqueue(pool, waiter, retry)
  pump(pool)
  pool.gauges()
  return waiter
}

/** The wait itself: resumed by `grant` or `reject`, inside a span when an exporting tracer is installed. */
export const waitFor = <C, E>(pool: PoolImpl<C, E>, waiter: Waiter<C>): Effect.Effect<Item<C>, E | PoolError> => {
  const wait = Effect.async<Item<C>, E | PoolError>((resume) => {
    if (waiter.early !== undefined) return resume(waiter.early)
    waiter.resume = resume
  })
  return pool.traceWaits ? Effect.withSpan(wait, "db.client.connection.wait", pool.waitSpan) : wait
}

const park = <C, E>(pool: PoolImpl<C, E>, attempt: Attempt): Effect.Effect<Item<C>, E | PoolError> => {
  const waiter = enqueueWaiter(pool, attempt.arrivedAt, attempt.deadline, attempt.timeoutMillis, attempt.n > 0)
  if (!(waiter instanceof Waiter)) return Effect.fail(waiter)
  // The waiter is queued while uninterruptible and the clean-up is installed outside `restore`, so an interruption
  // can only land once the clean-up is in place; it then decides, in one place, whether to leave the queue or to
  // give back a connection that was handed over at the same moment.
  const waited = Effect.catchAllCause(
    attempt.restore(waitFor(pool, waiter)),
    (cause) => Effect.zipRight(cancel(pool, waiter), Effect.failCause(cause))
  )
  return pool.slowCheckout ?
    Effect.flatMap(waited, (item) => validate(pool, item, attempt)) :
    waited
}

/**
 * `Pool.use` when it has to wait and no checkout check applies: the wait and the borrower's function share one
 * interruptible region and one clean-up, told apart by the waiter's state: still queued or failed (leave the
 * queue), handed a connection the function never started on (give it back untouched), or running (return it).
 *
 * @internal
 */
export const useParked = <C, E, A, E2, R>(
  pool: PoolImpl<C, E>,
  restore: Restore,
  f: (connection: C) => Effect.Effect<A, E2, R>,
  timeoutMillis: number
): Effect.Effect<A, E | E2 | PoolError, R> => {
  const refused = admit(pool)
  if (refused !== undefined) return refused
  // no `Attempt` here: the parked `use` is the contended hot path, and a retry never comes back to it
  const now = pool.now()
  const waiter = enqueueWaiter(pool, now, deadlineOf(now, timeoutMillis), timeoutMillis, false)
  if (!(waiter instanceof Waiter)) return Effect.fail(waiter)
  let token = 0
  return Effect.matchCauseEffect(
    restore(Effect.flatMap(waitFor(pool, waiter), (item) => {
      if (pool.slowCheckout) {
        const now = pool.now()
        const checks = checksOf(pool, item, now)
        if (!passedAtOnce(pool, checks)) {
          return Effect.flatMap(
            validateParked(pool, waiter, item, checks, now, (valid) => {
              token = valid.token
            }),
            (valid) => call(f, valid.connection)
          )
        }
      }
      waiter.state = RUNNING
      token = item.token
      return call(f, item.connection)
    })),
    {
      onSuccess: (a) => {
        const item = waiter.item!
        waiter.item = undefined
        return returnAfterSuccess(pool, item, token, a)
      },
      onFailure: (cause) => {
        if (waiter.state !== RUNNING) return Effect.zipRight(cancel(pool, waiter), Effect.failCause(cause))
        const item = waiter.item!
        waiter.item = undefined
        return returnAfterFailure(pool, item, token, cause)
      }
    }
  )
}

/**
 * The validation of a connection handed to a parked `use` whose checks did not all pass at once. From the start of
 * the mask the validation owns the connection (the waiter's clean-up leaves it alone), and a connection that passes
 * is the waiter's again before the mask ends, with the lending's token (`owned`), so an interruption at any point
 * has exactly one owner to clean up, and that owner returns the right lending.
 */
export const validateParked = <C, E>(
  pool: PoolImpl<C, E>,
  waiter: Waiter<C>,
  item: Item<C>,
  checks: Effect.Effect<void, unknown> | undefined,
  now: number,
  owned: (valid: Item<C>) => void
): Effect.Effect<Item<C>, E | PoolError> =>
  Effect.uninterruptibleMask((mask) => {
    waiter.item = undefined
    waiter.state = DONE
    const attempt: Attempt = {
      restore: mask,
      n: 0,
      rejected: 0,
      arrivedAt: waiter.enqueuedAt,
      firstNewId: waiter.firstNewId,
      deadline: waiter.deadline,
      timeoutMillis: waiter.timeoutMillis
    }
    return Effect.map(validate(pool, item, attempt, { checks, now }), (valid) => {
      waiter.item = valid
      waiter.state = RUNNING
      owned(valid)
      return valid
    })
  })

/**
 * The fast path when checkout checks apply: an idle connection when nobody waits, its checks called now. The
 * connection when every check passed at once; the rest of its validation when one did not; `undefined` when no
 * idle connection can be taken (someone waits, none is idle, the pool is closed).
 *
 * @internal
 */
export const tryTakeChecked = <C, E>(
  pool: PoolImpl<C, E>,
  restore: Restore,
  timeoutMillis: number
): Item<C> | Effect.Effect<Item<C>, E | PoolError> | undefined => {
  if (pool.closed || pool.queue.length !== 0 || pool.idle.length === 0) return undefined
  const item = takeIdle(pool)
  if (item === undefined) return undefined
  pool.gauges()
  const now = pool.now()
  const checks = checksOf(pool, item, now)
  return passedAtOnce(pool, checks) ?
    item :
    validate(pool, item, firstAttempt(restore, now, timeoutMillis, pool.nextId), {
      checks,
      now
    })
}

/**
 * Runs when a waiting checkout is interrupted: leave the queue, or give back what was handed over meanwhile.
 *
 * @internal
 */
export const cancel = <C, E>(pool: PoolImpl<C, E>, waiter: Waiter<C>): Effect.Effect<void> => {
  if (waiter.state === WAITING) {
    waiter.state = DONE
    unlink(pool, waiter)
    pool.gauges()
    return Effect.void
  }
  if (waiter.state === GRANTED && waiter.item !== undefined) {
    const item = waiter.item
    waiter.item = undefined
    waiter.state = DONE
    return giveBack(pool, item)
  }
  return Effect.void
}

/**
 * Undoes a lending nobody used (a cancelled hand-off): the connection goes back as it came, unless the pool closed
 * it meanwhile (a reclaim or a hard invalidation of the lent connection), which leaves nothing to give back.
 */
const giveBack = <C, E>(pool: PoolImpl<C, E>, item: Item<C>): Effect.Effect<void> => {
  pool.checkouts--
  item.record.uses--
  item.borrowed = false
  item.holder = undefined
  return item.state === LENT ? offer(pool, item) : Effect.void
}

/** Closed or invalidated underneath its validation (the driver saw it die meanwhile). */
const isLost = <C>(item: Item<C>): boolean => item.state !== LENT || item.invalidated || item.soft

/** What `Effect.timeoutFail` fails with when a validation outlives its checkout's deadline. */
class ValidationTimeout {
  readonly _tag = "ValidationTimeout"
}

/**
 * The checks of one lending, called now (`chainHooks`): the policies' `onCheckout` hooks, then the `Checkout` event
 * for those who must be waited for. `undefined` when every hook was done at once and nobody needs waiting for: the
 * lending goes on in this very step (a subscriber-only `Checkout` is delivered now). Call it exactly once per
 * lending: hooks may keep state (a lifetime steps its schedule).
 *
 * @internal
 */
export const checksOf = <C, E>(
  pool: PoolImpl<C, E>,
  item: Item<C>,
  now: number
): Effect.Effect<void, unknown> | undefined => {
  let checks: Effect.Effect<void, unknown> | undefined = pool.checkoutHooks.length === 0 ?
    undefined :
    chainHooks(pool.checkoutHooks, checkoutHook, new HookContextImpl(item, pool.driver, now, pool))
  if (pool.feed.listening) {
    const event: PoolEvent.Checkout<C> = {
      _tag: "Checkout",
      pool: pool.name,
      record: item.record,
      connection: item.connection
    }
    if (checks === undefined && pool.feed.checkoutListeners === 0) {
      // only subscribers hear it: delivered now, nothing to wait for
      item.heardUpTo = pool.feed.nextSeq
      pool.feed.offer(event, item.heardUpTo)
    } else {
      // the registrations there are when the checkout is delivered hear it, and they alone hear its checkin
      const heard = Effect.suspend(() => {
        item.heardUpTo = pool.feed.nextSeq
        return pool.feed.checkout(event, item.heardUpTo)
      })
      // a connection lost while the policies checked it is not announced as lent
      const announce = checks === undefined ? heard : Effect.suspend(() => isLost(item) ? Effect.void : heard)
      checks = checks === undefined ? heard : Effect.zipRight(checks, announce)
    }
  }
  return checks
}

/**
 * A lending whose checks were all done at once needs no step of its own: `true` when `item` may be used now. When
 * `false`, `checks` (from `checksOf`) must run through `validate`.
 *
 * @internal
 */
export const passedAtOnce = <C, E>(pool: PoolImpl<C, E>, checks: Effect.Effect<void, unknown> | undefined): boolean =>
  checks === undefined && pool.echo !== "debug"

/**
 * Runs checkout policies and listeners, interruptibly and within the checkout's deadline. A rejection closes the
 * connection and retries (with the same deadline), a bounded number of times; a validation interrupted or cut off
 * by the deadline closes the connection it was checking, since its state is unknown. `checks` are the lending's
 * checks when a caller has called them already (`checksOf`).
 *
 * @internal
 */
export const validate = <C, E>(
  pool: PoolImpl<C, E>,
  item: Item<C>,
  attempt: Attempt,
  precomputed?: { readonly checks: Effect.Effect<void, unknown> | undefined; readonly now: number }
): Effect.Effect<Item<C>, E | PoolError> => {
  const { arrivedAt, deadline, timeoutMillis } = attempt
  const now = precomputed === undefined ? pool.now() : precomputed.now
  const checks = precomputed === undefined ? checksOf(pool, item, now) : precomputed.checks
  const logged = pool.echo === "debug" ? Effect.as(pool.log("debug", "checkout", item), item) : Effect.succeed(item)
  // every hook passed at once (a cheap check such as `recycle` or `maxUses` answers `Effect.void`), nobody to tell
  if (checks === undefined) return logged
  const retryAfterLoss = () => {
    pool.checkouts--
    return Effect.zipRight(
      closeItem(pool, item, "invalidated"),
      Effect.suspend(() => acquireSlow(pool, retryOf(attempt, false)))
    )
  }
  const bounded = deadline === Infinity ? checks : Effect.timeoutFail(checks, {
    duration: Math.max(0, deadline - now),
    onTimeout: () => new ValidationTimeout()
  })
  return Effect.matchCauseEffect(attempt.restore(bounded), {
    // invalidated while it was being checked (the driver saw it die): never lent, the checkout goes on
    onSuccess: () => isLost(item) ? retryAfterLoss() : logged,
    onFailure: (cause) => {
      pool.checkouts--
      const failure = Cause.failureOption(cause)
      if (Option.isNone(failure) && Cause.isInterrupted(cause)) {
        return Effect.zipRight(closeItem(pool, item, "rejected"), Effect.failCause(cause as Cause.Cause<never>))
      }
      if (Option.isSome(failure) && failure.value instanceof ValidationTimeout) {
        return Effect.zipRight(
          closeItem(pool, item, "rejected"),
          Effect.fail(timedOut(pool, arrivedAt, timeoutMillis, "validate"))
        )
      }
      const rejection = Option.isSome(failure) ? failure.value : Cause.squash(cause)
      // a rejection that another connection would only repeat (`retry: false`) ends the checkout now
      const final = rejection instanceof ConnectionRejected && !rejection.retry
      // a connection opened after this checkout arrived and retired at once (a lifetime shorter than a connect)
      // counts, or one checkout could connect and close without end; older ones are the pile it may clear
      const retired = rejection instanceof ConnectionRejected && retirementReasons.has(rejection.reason) &&
        item.record.id < attempt.firstNewId
      return Effect.zipRight(
        closeRejected(pool, item, cause),
        final || (!retired && attempt.rejected + 1 >= pool.maxCheckoutAttempts) ?
          Effect.fail(
            new PoolCheckoutRejectedError({ pool: pool.name, attempts: attempt.rejected + 1, cause: rejection })
          ) :
          Effect.suspend(() => acquireSlow(pool, retryOf(attempt, !retired)))
      )
    }
  })
}
