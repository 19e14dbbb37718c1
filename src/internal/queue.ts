import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import { PoolTimeoutError } from "../PoolError.js"
import { adopt } from "./connector.js"
import type { PoolImpl } from "./core.js"
import { type Item, LENT, moveTo } from "./item.js"
import { DONE, GRANTED, type Waiter } from "./waiters.js"

/**
 * The waiter queue and its deadlines: queueing a checkout, leaving the queue, a hand-off (`grant`), a failure
 * (`reject`), and the reaper that ends waiters whose deadline has passed.
 */

/** @internal */
export const enqueue = <C, E>(pool: PoolImpl<C, E>, waiter: Waiter<C>, front: boolean): void => {
  if (front) pool.queue.unshift(waiter)
  else pool.queue.push(waiter)
  if (waiter.deadline !== Infinity) {
    pool.deadlines.insert(waiter)
    if (waiter.deadline < pool.reaperTarget) wakeReaper(pool)
  }
}

/** Leaves the queue; a connect in flight for this waiter goes to the oldest waiter that has none. */
export const unlink = <C, E>(pool: PoolImpl<C, E>, waiter: Waiter<C>): void => {
  pool.queue.remove(waiter)
  pool.deadlines.remove(waiter)
  const task = waiter.task
  if (task !== undefined) {
    waiter.task = undefined
    task.waiter = undefined
    pool.assigned--
    adopt(pool, task)
  }
}

/**
 * Lends a connection: the one place an item becomes `lent`, with its holder and its use count.
 *
 * @internal
 */
export const lend = <C, E>(
  pool: PoolImpl<C, E>,
  item: Item<C>,
  now: number,
  holder: Fiber.RuntimeFiber<unknown, unknown> | undefined
): void => {
  moveTo(pool.counts, item, LENT)
  item.borrowed = true
  item.token++
  item.holder = holder
  // nobody has heard this lending until its `Checkout` is delivered (validate), so nobody hears its checkin yet
  item.heardUpTo = 0
  const record = item.record
  record.uses++
  record.lastUsedAt = now
  pool.checkouts++
  if (pool.traceCheckouts !== undefined) item.trace = traceOf(pool, pool.traceCheckouts, holder)
}

const traceOf = <C, E>(
  pool: PoolImpl<C, E>,
  mode: "stack" | "span",
  holder: Fiber.RuntimeFiber<unknown, unknown> | undefined
): string | undefined => {
  // the holder's own call of `use` / `get` / `checkout` (see `PoolImpl.callSites`), else the lending's stack
  if (mode === "stack") return (holder && pool.callSites.get(holder) || new Error("checked out here")).stack
  const span = (holder as { readonly currentSpan?: { readonly name?: string; readonly spanId: string } } | undefined)
    ?.currentSpan
  return span === undefined ? undefined : `span ${span.name ?? ""} (${span.spanId})`
}

/**
 * Hands a connection to a waiter; the waiter's fiber resumes on its own later step, or, for a waiting statement
 * whose connection needs no checking, once the statement started here has its result.
 */
export const grant = <C, E>(pool: PoolImpl<C, E>, waiter: Waiter<C>, item: Item<C>, now: number): void => {
  unlink(pool, waiter)
  lend(pool, item, now, waiter.fiber)
  waiter.state = GRANTED
  waiter.item = item
  pool.metrics.waitTime(now - waiter.enqueuedAt)
  // a waiting statement starts on the connection now, in this step: its caller wakes once, with the result
  if (waiter.onGrant !== undefined && waiter.onGrant(item)) return
  const effect = item.granted ??= Exit.succeed(item)
  if (waiter.resume !== undefined) waiter.resume(effect)
  else waiter.early = effect
}

/** Ends a waiter with a failure (timeout, connect error, shutdown). */
export const reject = <C, E>(pool: PoolImpl<C, E>, waiter: Waiter<C>, effect: Effect.Effect<never, unknown>): void => {
  unlink(pool, waiter)
  waiter.state = DONE
  if (waiter.resume !== undefined) waiter.resume(effect)
  else waiter.early = effect
}

/** The timeout a waiter gets at its deadline, with the last connect failure as its cause. */
export const timeoutError = <C, E>(
  pool: PoolImpl<C, E>,
  timeoutMillis: number,
  phase: "wait" | "validate"
): PoolTimeoutError =>
  new PoolTimeoutError({
    pool: pool.name,
    phase,
    timeoutMillis,
    stats: pool.stats(),
    ...(pool.lastConnectFailure !== undefined ? { cause: Cause.squash(pool.lastConnectFailure) } : {})
  })

/**
 * A checkout whose deadline came: counted, told (`CheckoutTimeout`), and the error it fails with, whether it was
 * waiting, validating a connection, or about to retry after a rejection.
 *
 * @internal
 */
export const timedOut = <C, E>(
  pool: PoolImpl<C, E>,
  arrivedAt: number,
  timeoutMillis: number,
  phase: "wait" | "validate"
): PoolTimeoutError => {
  pool.timeouts++
  pool.metrics.timedOut()
  const error = timeoutError(pool, timeoutMillis, phase)
  if (pool.feed.listening) {
    pool.fork(pool.feed.emit({
      _tag: "CheckoutTimeout",
      pool: pool.name,
      waitedMillis: pool.now() - arrivedAt,
      stats: error.stats
    }))
  }
  return error
}

/** Ends every waiter whose deadline has come, earliest first. */
export const expire = <C, E>(pool: PoolImpl<C, E>): void => {
  const now = pool.now()
  for (let waiter = pool.deadlines.peek(); waiter !== undefined; waiter = pool.deadlines.peek()) {
    if (waiter.deadline > now) break
    const error = timedOut(pool, waiter.enqueuedAt, waiter.timeoutMillis, "wait")
    reject(pool, waiter, Effect.fail(error))
  }
  pool.gauges()
}

/**
 * One fiber ends the waiters whose deadline has passed: it sleeps until the earliest deadline in the heap, or until
 * a first deadline arrives. A waiter whose deadline is earlier than the one it sleeps until (a shorter per-call
 * timeout) restarts it.
 *
 * @internal
 */
export const reaper = <C, E>(pool: PoolImpl<C, E>): Effect.Effect<never> =>
  Effect.forever(Effect.suspend(() => {
    const head = pool.deadlines.peek()
    if (head === undefined) {
      pool.reaperTarget = Infinity
      return Effect.async<void>((resume) => {
        if (pool.deadlines.size > 0) return resume(Effect.void)
        pool.reaperWake = resume
        return Effect.sync(() => {
          pool.reaperWake = undefined
        })
      })
    }
    const delay = head.deadline - pool.now()
    if (delay > 0) {
      pool.reaperTarget = head.deadline
      return Effect.sleep(delay)
    }
    pool.reaperTarget = -Infinity
    expire(pool)
    return Effect.void
  }))

const wakeReaper = <C, E>(pool: PoolImpl<C, E>): void => {
  if (pool.reaperWake !== undefined) {
    const wake = pool.reaperWake
    pool.reaperWake = undefined
    pool.reaperTarget = -Infinity
    wake(Effect.void)
    return
  }
  if (pool.reaper === undefined || pool.closed || pool.reaperTarget === -Infinity) return
  // sleeping until a later deadline: start over
  const old = pool.reaper
  pool.reaperTarget = -Infinity
  startReaper(pool)
  old.unsafeInterruptAsFork(old.id())
}

/** @internal */
export const startReaper = <C, E>(pool: PoolImpl<C, E>): void => {
  pool.reaper = pool.fork(reaper(pool))
}

/** @internal */
export const stopReaper = <C, E>(pool: PoolImpl<C, E>): Effect.Effect<void> =>
  pool.reaper === undefined ? Effect.void : Fiber.interrupt(pool.reaper)
