import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Scope from "effect/Scope"
import type { ConnectionRecord } from "../ConnectionRecord.js"
import type * as Policy from "../Policy.js"
import { type ConnectionRejected, PoolClosedError } from "../PoolError.js"
import type * as PoolEvent from "../PoolEvent.js"
import { closeReasons } from "../PoolEvent.js"
import { offer } from "./checkin.js"
import { pump } from "./connector.js"
import type { PoolImpl } from "./core.js"
import { call, HookContextImpl } from "./hooks.js"
import { CLOSED, CLOSING, CONNECTING, DETACHED, IDLE, isGone, type Item, LENT, MAINTAINED, moveTo } from "./item.js"
import { reject, stopReaper } from "./queue.js"

/**
 * A connection's life after lending: closing (exactly once), invalidation, generations, detach, dispose, upkeep
 * passes over idle connections, holders, and the pool's shutdown.
 */

const asCloseReason = (reason: string): PoolEvent.CloseReason =>
  (closeReasons as ReadonlyArray<string>).includes(reason) ? reason as PoolEvent.CloseReason : "rejected"

/**
 * The close reasons that end a connection's life on schedule (a lifetime, a use count, an idle timeout, a new
 * generation), not a fault: a policy's `ConnectionRejected` with one of them retires the connection. At checkout
 * they do not use up a checkout's attempts; at return they close it with that reason, without a warning.
 *
 * @internal
 */
export const retirementReasons: ReadonlySet<string> = new Set(["expired", "maxUses", "idle", "stale"])

/** Closes a connection's scope (the driver's close); a failure is logged, never thrown. */
const closeScope = <C>(item: Item<C>, warning: string): Effect.Effect<void> =>
  item.scope === undefined ?
    Effect.void :
    Effect.catchAllCause(Scope.close(item.scope, Exit.void), (cause) => Effect.logWarning(warning, cause))

/**
 * Closes a connection exactly once; its slot is freed when the close completes.
 *
 * @internal
 */
export const closeItem = <C, E>(
  pool: PoolImpl<C, E>,
  item: Item<C>,
  reason: PoolEvent.CloseReason
): Effect.Effect<void> => {
  if (isGone(item.state)) return Effect.void
  if (item.state === IDLE) pool.idle.remove(item)
  moveTo(pool.counts, item, CLOSING)
  pool.items.delete(item)
  item.holder = undefined
  pool.gauges()
  return Effect.uninterruptible(
    Effect.zipRight(
      closeScope(item, "closing a connection failed"),
      Effect.suspend(() => {
        moveTo(pool.counts, item, CLOSED)
        pool.closedCount++
        pool.closedBy[reason] = (pool.closedBy[reason] ?? 0) + 1
        pool.metrics.closed(reason)
        pool.gauges()
        pump(pool)
        pool.checkDrained()
        return Effect.zipRight(
          pool.log("info", `close (${reason})`, item),
          pool.feed.emit({ _tag: "Close", pool: pool.name, record: item.record, connection: item.connection, reason })
        )
      })
    )
  )
}

/**
 * Closes a connection a policy or listener refused, with the rejection's reason when it names a close reason; a
 * rejection that asks for it starts a new generation first.
 *
 * @internal
 */
export const closeRejected = <C, E>(
  pool: PoolImpl<C, E>,
  item: Item<C>,
  cause: Cause.Cause<ConnectionRejected | unknown>
): Effect.Effect<void> => {
  const rejection = Cause.failureOption(cause)
  const value = rejection._tag === "Some" ? rejection.value as Partial<ConnectionRejected> : undefined
  if (value?.invalidateAll === true) bumpGeneration(pool)
  return closeItem(pool, item, typeof value?.reason === "string" ? asCloseReason(value.reason) : "rejected")
}

/**
 * Invalidation from outside any Effect (the driver's error event). While connecting, it only marks the connection:
 * it is closed once its connect completes, and counted once.
 *
 * @internal
 */
export const unsafeInvalidate = <C, E>(pool: PoolImpl<C, E>, item: Item<C>, cause: unknown, soft: boolean): void => {
  if (isGone(item.state) || item.invalidated) return
  // no fiber for a connection still connecting: marking it is all there is to do
  if (item.state === CONNECTING) markConnecting(item, cause, soft)
  else pool.fork(invalidateItem(pool, item, cause, soft))
}

/** A connection invalidated while it connects is closed (and counted) once its connect completes. */
const markConnecting = <C>(item: Item<C>, cause: unknown, soft: boolean): void => {
  if (soft) item.soft = true
  else item.invalidated = true
  item.invalidateCause = cause
}

/**
 * Hard: the connection is closed now whether idle or lent (a lent one's return then only checks in); a connection
 * busy with upkeep or a reset is closed when that ends. Soft: never lent again, closed when returned (or now, if
 * idle).
 *
 * @internal
 */
export const invalidateItem = <C, E>(
  pool: PoolImpl<C, E>,
  item: Item<C>,
  cause: unknown,
  soft: boolean
): Effect.Effect<void> =>
  Effect.suspend(() => {
    if (isGone(item.state)) return Effect.void
    if (item.state === CONNECTING) {
      markConnecting(item, cause, soft)
      return Effect.void
    }
    const event: PoolEvent.PoolEvent<C> = soft ?
      { _tag: "SoftInvalidate", pool: pool.name, record: item.record, connection: item.connection, cause } :
      { _tag: "Invalidate", pool: pool.name, record: item.record, connection: item.connection, cause }
    const announce = Effect.zipRight(
      pool.log("info", soft ? "soft invalidate" : "invalidate", item),
      pool.feed.emit(event)
    )
    if (soft) {
      item.soft = true
      return item.state === IDLE ? Effect.zipRight(announce, closeItem(pool, item, "invalidated")) : announce
    }
    item.invalidated = true
    item.invalidateCause = cause
    return item.state === IDLE || item.state === LENT ?
      Effect.zipRight(announce, closeItem(pool, item, "invalidated")) :
      announce
  })

/** @internal */
export const bumpGeneration = <C, E>(pool: PoolImpl<C, E>): void => {
  pool.generation++
  for (const item of pool.idle.toArray()) pool.fork(closeItem(pool, item, "stale"))
  pool.gauges()
}

/** @internal */
export const dispose = <C, E>(pool: PoolImpl<C, E>): Effect.Effect<void> =>
  // uninterruptible: each `closeItem` takes its connection out of reach at once, and its close must follow
  Effect.uninterruptible(Effect.suspend(() =>
    Effect.forEach(pool.idle.toArray(), (item) => closeItem(pool, item, "disposed"), { discard: true })
  ))

/** @internal */
export const detach = <C, E>(pool: PoolImpl<C, E>, item: Item<C>): Effect.Effect<void, never, Scope.Scope> =>
  Effect.uninterruptible(Effect.flatMap(Effect.scope, (scope) =>
    Effect.suspend(() => {
      moveTo(pool.counts, item, DETACHED)
      pool.detached++
      item.borrowed = false
      item.holder = undefined
      pool.items.delete(item)
      pool.gauges()
      pump(pool)
      pool.checkDrained()
      const closeDetached = Effect.zipRight(
        closeScope(item, "closing a detached connection failed"),
        pool.feed.emit({ _tag: "CloseDetached", pool: pool.name, record: item.record, connection: item.connection })
      )
      return Effect.zipRight(
        Scope.addFinalizer(scope, closeDetached),
        pool.feed.emit({ _tag: "Detach", pool: pool.name, record: item.record, connection: item.connection })
      )
    })))

/**
 * Takes each connection idle right now out of the pool in turn (`maintained`: no borrower can get it, and it does
 * not count as checked out), runs `f` on it interruptibly, and puts it back. A rejection closes it with the
 * rejection's reason; a pass cut short (interrupted: the pool is closing) closes the connection it held.
 *
 * @internal
 */
export const forEachIdle = <C, E>(
  pool: PoolImpl<C, E>,
  f: (context: Policy.HookContext<C, E>) => Effect.Effect<void, ConnectionRejected>
): Effect.Effect<void> =>
  Effect.suspend(() =>
    Effect.forEach(pool.idle.toArray(), (item) =>
      Effect.uninterruptibleMask((restore) => {
        if (item.state !== IDLE || pool.closed) return Effect.void
        pool.idle.remove(item)
        moveTo(pool.counts, item, MAINTAINED)
        pool.gauges()
        const context = new HookContextImpl(item, pool.driver, pool.now(), pool)
        return Effect.matchCauseEffect(restore(call(f, context)), {
          onSuccess: () => offer(pool, item),
          onFailure: (cause) =>
            Cause.isInterruptedOnly(cause) ?
              Effect.zipRight(
                closeItem(pool, item, pool.closed ? "shutdown" : "rejected"),
                Effect.failCause(cause as Cause.Cause<never>)
              ) :
              closeRejected(pool, item, cause)
        })
      }), { discard: true })
  )

/**
 * Closes a connection that is idle right now, with `reason` (a lifetime policy retiring it); `false` when it is not
 * idle (lent, being checked, already closed), which leaves it alone.
 *
 * @internal
 */
export const retire = <C, E>(
  pool: PoolImpl<C, E>,
  record: ConnectionRecord,
  reason: PoolEvent.CloseReason
): Effect.Effect<boolean> =>
  // uninterruptible: `closeItem` takes the connection out of reach at once, and its close must follow
  Effect.uninterruptible(Effect.suspend(() => {
    const item = itemOfRecord(pool, record)
    if (item === undefined || item.state !== IDLE) return Effect.succeed(false)
    return Effect.as(closeItem(pool, item, reason), true)
  }))

/** The records of the connections idle right now, oldest first. @internal */
export const idleRecords = <C, E>(pool: PoolImpl<C, E>): ReadonlyArray<ConnectionRecord> =>
  pool.idle.toArray().map((item) => item.record)

/** @internal */
export const holders = <C, E>(pool: PoolImpl<C, E>): ReadonlyArray<Policy.Holder> => {
  const out: Array<Policy.Holder> = []
  for (const item of pool.items) {
    // lent only: a returning connection is being reset, no longer held by its borrower
    if (item.state === LENT) {
      out.push({ record: item.record, fiber: item.holder, since: item.record.lastUsedAt, trace: item.trace })
    }
  }
  return out
}

/** @internal */
export const itemOfRecord = <C, E>(pool: PoolImpl<C, E>, record: ConnectionRecord): Item<C> | undefined => {
  for (const item of pool.items) if (item.record === record) return item
  return undefined
}

/**
 * Takes a lent connection back: interrupts its holder and closes the connection. The connection leaves its holder
 * at once (its return then only checks in), but it is closed once the holder has stopped, within a grace of
 * `min(shutdownTimeout, 1 second)`: a driver cancels the statement of a caller that is interrupted, and closing the
 * session first would skip that cancel and leave the statement running on the server (a PostgreSQL backend busy in
 * `pg_sleep` reads no goodbye until the statement ends).
 *
 * @internal
 */
export const reclaim = <C, E>(pool: PoolImpl<C, E>, record: ConnectionRecord): Effect.Effect<boolean> =>
  // masked from the start: `closeItem` takes the connection out of reach at once, and its close must follow, even
  // if this fiber is interrupted while it waits for the holder (the pool closing)
  Effect.uninterruptibleMask((restore) =>
    Effect.suspend(() => {
      const item = itemOfRecord(pool, record)
      if (item === undefined || item.state !== LENT) return Effect.succeed(false)
      const holder = item.holder
      const close = closeItem(pool, item, "reclaimed")
      if (holder === undefined) return Effect.as(close, true)
      const stopped = Effect.ignore(Effect.timeout(Fiber.await(holder), Math.min(pool.shutdownMillis, 1000)))
      return Effect.zipRight(Fiber.interruptFork(holder), Effect.as(Effect.ensuring(restore(stopped), close), true))
    })
  )

/**
 * Runs `effect` in a fiber of its own and waits for it until `timer` ends, whichever comes first: past the deadline
 * the wait ends even when what it waits for (a driver's close, a fiber in an uninterruptible region) does not, and
 * that goes on in the background.
 */
const within = <C, E>(
  pool: PoolImpl<C, E>,
  effect: Effect.Effect<void>,
  timer: Fiber.RuntimeFiber<void>
): Effect.Effect<void> =>
  Effect.suspend(() => {
    if (timer.unsafePoll() !== null) return Effect.void
    const fiber = pool.runFork(effect)
    return Effect.async<void>((resume) => {
      let done = false
      const finish = () => {
        if (done) return
        done = true
        resume(Effect.void)
      }
      fiber.addObserver(finish)
      timer.addObserver(finish)
      if (timer.unsafePoll() !== null) finish()
    })
  })

/**
 * Graceful, then forceful, and bounded by `shutdownTimeout` whatever a policy or a borrower is doing: new
 * checkouts fail, waiters fail at once, background fibers (connects in flight, upkeep passes, preparations) are
 * interrupted, idle connections close, lent ones close when returned; at the deadline whatever is still open is
 * closed and nothing more is awaited than a grace of `min(shutdownTimeout, 1 second)` for those closes.
 *
 * @internal
 */
export const shutdown = <C, E>(pool: PoolImpl<C, E>): Effect.Effect<void> =>
  Effect.uninterruptible(Effect.suspend(() => {
    if (pool.closed) return Effect.void
    pool.closed = true
    const deadline = pool.now() + pool.shutdownMillis
    const remaining = () => Math.max(0, deadline - pool.now())
    const grace = Math.min(pool.shutdownMillis, 1000)
    // the deadline's timer starts now, with the shutdown, whatever the stages before the drain take
    const timer = pool.runFork(Effect.sleep(pool.shutdownMillis))
    const closedError = Effect.fail(new PoolClosedError({ pool: pool.name }))
    while (pool.queue.head !== undefined) reject(pool, pool.queue.head, closedError)
    pool.gauges()
    const interruptFibers = Effect.suspend(() => {
      const fibers = Array.from(pool.fibers)
      return fibers.length === 0 ? Effect.void : Fiber.interruptAll(fibers)
    })
    const closeAll = (items: () => ReadonlyArray<Item<C>>) =>
      Effect.suspend(() =>
        Effect.forEach(items(), (item) => closeItem(pool, item, "shutdown"), {
          discard: true,
          concurrency: "unbounded"
        })
      )
    const drained = Effect.async<void>((resume) => {
      if (pool.counts.inUse === 0) return resume(Effect.void)
      pool.drainedWake = resume
      return Effect.sync(() => {
        pool.drainedWake = undefined
      })
    })
    let forceTimer: Fiber.RuntimeFiber<void> | undefined
    return Effect.all([
      stopReaper(pool),
      within(pool, interruptFibers, timer),
      within(pool, closeAll(() => pool.idle.toArray()), timer),
      // the drain wait is the one part that waits for borrowers, so the deadline ends it
      within(pool, drained, timer),
      Effect.suspend(() => {
        forceTimer = pool.runFork(Effect.sleep(Math.max(remaining(), grace)))
        return within(
          pool,
          Effect.zipRight(
            closeAll(() => Array.from(pool.items).filter((item) => item.state !== CLOSED && item.state !== CLOSING)),
            interruptFibers
          ),
          forceTimer
        )
      }),
      Effect.suspend(() => {
        timer.unsafeInterruptAsFork(timer.id())
        forceTimer?.unsafeInterruptAsFork(forceTimer.id())
        return Effect.void
      }),
      pool.log("info", "pool closed"),
      Effect.suspend(() =>
        Effect.forEach(
          pool.feed.registrations,
          (registration) => registration.queue === undefined ? Effect.void : registration.queue.shutdown,
          { discard: true }
        )
      )
    ], { discard: true })
  }))
