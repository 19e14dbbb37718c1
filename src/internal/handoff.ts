import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type { PoolError } from "../PoolError.js"
import { returnAfterFailure, returnAfterSuccess, run } from "./checkin.js"
import {
  acquireSlow,
  admit,
  cancel,
  checksOf,
  deadlineOf,
  enqueueWaiter,
  firstAttempt,
  passedAtOnce,
  type Restore,
  tryTake,
  tryTakeChecked,
  validateParked,
  waitFor
} from "./checkout.js"
import type { PoolImpl } from "./core.js"
import type { Item } from "./item.js"
import { DONE, GRANTED, RUNNING, Waiter } from "./waiters.js"

/**
 * A statement the pool can start on a connection at the moment it hands the connection over, from the step that
 * hands it over, without a fiber: `start` sends it and calls `done` once with its outcome, and returns its
 * `abandon` (the caller was interrupted while it ran). `effect` is the same statement as an Effect, for the paths
 * where the caller runs it itself (an idle connection at hand, a connection that must be validated first).
 *
 * @internal
 */
export interface Statement<C, A, E> {
  readonly start: (connection: C, done: (exit: Exit.Exit<A, E>) => void) => () => void
  readonly effect: (connection: C) => Effect.Effect<A, E>
}

/** What a statement's waiter is woken with: the outcome of the statement started at hand-off, or a connection. */
class Outcome<A, E> {
  constructor(readonly exit: Exit.Exit<A, E>) {}
}

/**
 * Runs one statement on a connection of the pool: `Pool.use(pool, statement.effect)`, except when it has to wait.
 * A waiting statement is started by whoever hands it a connection, in that step, when the connection needs no
 * checking first (no checkout policy or listener has anything to run): the caller then waits once, for the result,
 * instead of waking for the connection and waiting again for the statement. The connection is returned by the
 * caller once the result is in, as after `Pool.use`.
 *
 * @internal
 */
export const runStatement = <C, E, A, E2>(
  pool: PoolImpl<C, E>,
  statement: Statement<C, A, E2>,
  timeoutMillis: number
): Effect.Effect<A, E | E2 | PoolError> =>
  Effect.uninterruptibleMask((restore) => {
    if (pool.slowCheckout) {
      const taken = tryTakeChecked(pool, restore, timeoutMillis)
      if (taken !== undefined) {
        return Effect.isEffect(taken) ?
          Effect.flatMap(taken, (item) => run(pool, item, restore, statement.effect)) :
          run(pool, taken, restore, statement.effect)
      }
    } else {
      const item = tryTake(pool)
      if (item !== undefined) return run(pool, item, restore, statement.effect)
    }
    // a closed pool takes the general path, which fails it
    return pool.closed ?
      Effect.flatMap(
        acquireSlow(pool, firstAttempt(restore, pool.now(), timeoutMillis, pool.nextId)),
        (item) => run(pool, item, restore, statement.effect)
      ) :
      parked(pool, restore, statement, timeoutMillis)
  })

const parked = <C, E, A, E2>(
  pool: PoolImpl<C, E>,
  restore: Restore,
  statement: Statement<C, A, E2>,
  timeoutMillis: number
): Effect.Effect<A, E | E2 | PoolError> => {
  const refused = admit(pool)
  if (refused !== undefined) return refused
  const now = pool.now()
  const waiter = enqueueWaiter(pool, now, deadlineOf(now, timeoutMillis), timeoutMillis, false)
  if (!(waiter instanceof Waiter)) return Effect.fail(waiter)
  let token = 0
  let abandon: (() => void) | undefined
  let finished = false
  /** The checks of the connection handed over, called at hand-off, when they did not all pass at once. */
  let checks: Effect.Effect<void, unknown> | undefined
  let checkedAt = 0
  let mustValidate = false
  waiter.onGrant = (item) => {
    if (pool.slowCheckout) {
      checkedAt = pool.now()
      checks = checksOf(pool, item, checkedAt)
      // the caller validates it and runs the statement itself
      if (!passedAtOnce(pool, checks)) {
        mustValidate = true
        return false
      }
    }
    waiter.state = RUNNING
    token = item.token
    const deliver = (exit: Exit.Exit<A, E2>) => {
      if (finished) return
      finished = true
      const outcome = Exit.succeed(new Outcome(exit))
      if (waiter.resume !== undefined) waiter.resume(outcome as never)
      else waiter.early = outcome as never
    }
    try {
      abandon = statement.start(item.connection, deliver)
    } catch (defect) {
      // a driver's bug is its caller's defect, not the returning fiber's
      deliver(Exit.die(defect))
    }
    return true
  }
  const woken = waitFor(pool, waiter) as Effect.Effect<Item<C> | Outcome<A, E2>, E | PoolError>
  return Effect.matchCauseEffect(
    restore(Effect.flatMap(woken, (woke): Effect.Effect<A, E | E2 | PoolError> => {
      if (woke instanceof Outcome) return woke.exit
      // handed over without being started: its checks were called at hand-off and must run first
      if (mustValidate) {
        return Effect.flatMap(
          validateParked(pool, waiter, woke, checks, checkedAt, (valid) => {
            token = valid.token
          }),
          (valid) => statement.effect(valid.connection)
        )
      }
      waiter.state = RUNNING
      token = woke.token
      return statement.effect(woke.connection)
    })),
    {
      onSuccess: (a) => {
        const item = waiter.item!
        waiter.item = undefined
        return returnAfterSuccess(pool, item, token, a)
      },
      onFailure: (cause) => {
        if (mustValidate && waiter.state === GRANTED && waiter.item !== undefined) {
          // interrupted after its checks were called at hand-off and before they ran: the lending happened (the hooks
          // counted it, subscribers may have heard its Checkout), so it ends as one, with a return
          const item = waiter.item
          waiter.item = undefined
          waiter.state = DONE
          return returnAfterFailure(pool, item, item.token, cause)
        }
        if (waiter.state !== RUNNING) return Effect.zipRight(cancel(pool, waiter), Effect.failCause(cause))
        // interrupted while the statement started at hand-off was in flight: the driver cancels it
        if (abandon !== undefined && !finished) abandon()
        const item = waiter.item!
        waiter.item = undefined
        return returnAfterFailure(pool, item, token, cause)
      }
    }
  )
}
