import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Intervals from "effect/ScheduleIntervals"
import * as Scope from "effect/Scope"
import type * as Driver from "../Driver.js"
import { ConnectionRejected, PoolCheckoutRejectedError, PoolTimeoutError } from "../PoolError.js"
import { offer } from "./checkin.js"
import type { PoolImpl } from "./core.js"
import { call, HookContextImpl } from "./hooks.js"
import { born, CLOSED, Item, moveTo, RecordImpl } from "./item.js"
import { closeItem, unsafeInvalidate } from "./lifecycle.js"
import { reject } from "./queue.js"
import type { ConnectTask, Waiter } from "./waiters.js"

/**
 * The connector: every connect, whoever asks for it (a waiter, a refill to `min`, a replacement), starts here and
 * passes through the same steps: the driver's `connect`, wrapped by the policies' `connect` hooks, then the
 * `onConnect` hooks, bounded by `connectTimeout`, in a span. Connects in flight never exceed what waiters need
 * (plus the refill to `min`); after a failure the next connect waits on the backoff schedule, and until one
 * succeeds a single connect at a time probes the database.
 */

/** Starts connects for waiters that have none while there is room, then tops up to `min`. */
export const pump = <C, E>(pool: PoolImpl<C, E>): void => {
  const counts = pool.counts
  // each connect may fail at once, in this very step (a fork runs until it first yields): read the state anew
  while (pool.queue.length > pool.assigned && counts.live < pool.max) {
    if (held(pool)) return
    let waiter = pool.queue.head
    while (waiter !== undefined && waiter.task !== undefined) waiter = waiter.next
    if (waiter === undefined) break
    startConnect(pool, waiter)
  }
  while (counts.live < pool.min) {
    if (held(pool)) return
    startConnect(pool, undefined)
  }
}

/** No connect may start: the pool is closed, a backoff delay runs, or a probe is in flight after a failure. */
const held = <C, E>(pool: PoolImpl<C, E>): boolean =>
  pool.closed || pool.backingOff || (pool.consecutiveFailures > 0 && pool.counts.connecting > 0)

/** Gives a connect whose waiter left to the oldest waiter that has none, so its failure still reaches someone. */
export const adopt = <C, E>(pool: PoolImpl<C, E>, task: ConnectTask<C>): void => {
  if (pool.queue.length === pool.assigned) return
  for (let w = pool.queue.head; w !== undefined; w = w.next) {
    if (w.task === undefined) {
      w.task = task
      task.waiter = w
      pool.assigned++
      return
    }
  }
}

/**
 * One connect a policy asks for (a circuit breaker's probe): above `min`, within `max`, without waiting for the
 * backoff's delay. `false` when the pool is closed or full; fails with the connect's failure.
 *
 * @internal
 */
export const connectOne = <C, E>(pool: PoolImpl<C, E>): Effect.Effect<boolean, unknown> =>
  Effect.async<boolean, unknown>((resume) => {
    if (pool.closed || pool.counts.live >= pool.max) return resume(Effect.succeed(false))
    startConnect(
      pool,
      undefined,
      (exit) => resume(Exit.isSuccess(exit) ? Effect.succeed(true) : Effect.failCause(exit.cause))
    )
  })

const startConnect = <C, E>(
  pool: PoolImpl<C, E>,
  waiter: Waiter<C> | undefined,
  done?: (exit: Exit.Exit<void, unknown>) => void
): void => {
  const record = new RecordImpl(pool.nextId++, pool.name, pool.now(), pool.generation, pool.config.labels)
  const item = new Item<C>(record)
  born(pool.counts, item)
  const task: ConnectTask<C> = done === undefined ? { waiter, item } : { waiter, item, done }
  if (waiter !== undefined) {
    waiter.task = task
    pool.assigned++
  }
  pool.fork(connect(pool, task))
}

const detachTask = <C, E>(pool: PoolImpl<C, E>, task: ConnectTask<C>): Waiter<C> | undefined => {
  const waiter = task.waiter
  if (waiter !== undefined) {
    waiter.task = undefined
    task.waiter = undefined
    pool.assigned--
  }
  return waiter
}

const connect = <C, E>(pool: PoolImpl<C, E>, task: ConnectTask<C>): Effect.Effect<void> =>
  Effect.uninterruptibleMask((restore) =>
    Effect.flatMap(Scope.make(), (scope) => {
      const item = task.item
      item.scope = scope
      const started = item.record.createdAt
      const context: Driver.ConnectContext = {
        record: item.record,
        poolName: pool.name,
        invalidate: (cause) => unsafeInvalidate(pool, item, cause, false)
      }
      let open: Effect.Effect<C, unknown, Scope.Scope> = call(pool.driver.connect.bind(pool.driver), context)
      for (const wrap of pool.connectWraps) {
        const inner = open as Effect.Effect<C, any, Scope.Scope>
        open = Effect.suspend(() => wrap.connect!(inner, context))
      }
      let opened: Effect.Effect<C, unknown> = Scope.extend(open, scope)
      if (pool.connectHooks.length > 0) {
        opened = Effect.tap(opened, (connection) => {
          item.connection = connection
          const hookContext = new HookContextImpl(item, pool.driver, pool.now(), pool)
          return Effect.mapError(
            Effect.forEach(pool.connectHooks, (hooks) => call(hooks.onConnect!, hookContext), { discard: true }),
            (error) =>
              error instanceof ConnectionRejected ?
                new PoolCheckoutRejectedError({ pool: pool.name, attempts: 1, cause: error, phase: "connect" }) :
                error
          )
        })
      }
      const connectTimeout = pool.config.connectTimeout
      if (Duration.isFinite(connectTimeout)) {
        const millis = Duration.toMillis(connectTimeout)
        opened = Effect.timeoutFail(opened, {
          duration: connectTimeout,
          onTimeout: () =>
            new PoolTimeoutError({ pool: pool.name, phase: "connect", timeoutMillis: millis, stats: pool.stats() })
        })
      }
      const traced = Effect.withSpan(restore(opened), "db.client.connection.create", {
        kind: "client",
        captureStackTrace: false,
        attributes: { "db.client.connection.pool.name": pool.name, "db.system": pool.driver.dialect }
      })
      return Effect.flatMap(Effect.exit(traced), (exit) => {
        pool.metrics.createTime(pool.now() - started)
        if (Exit.isFailure(exit)) {
          return Effect.zipRight(
            Effect.catchAllCause(Scope.close(scope, exit), () => Effect.void),
            Effect.suspend(() => connectFailed(pool, task, exit.cause))
          )
        }
        item.connection = exit.value
        return connected(pool, task)
      })
    })
  )

const connected = <C, E>(pool: PoolImpl<C, E>, task: ConnectTask<C>): Effect.Effect<void> => {
  const item = task.item
  pool.opened++
  pool.lastConnectFailure = undefined
  if (pool.consecutiveFailures > 0) {
    pool.consecutiveFailures = 0
    pool.backoffState = pool.backoff.initial
  }
  pool.items.add(item)
  detachTask(pool, task)
  let events: Effect.Effect<void> = pool.log("info", "connect", item)
  if (pool.feed.listening) {
    if (!pool.firstConnectDone) {
      events = Effect.zipRight(
        events,
        pool.feed.emit({ _tag: "FirstConnect", pool: pool.name, record: item.record, connection: item.connection })
      )
    }
    events = Effect.zipRight(
      events,
      pool.feed.emit({ _tag: "Connect", pool: pool.name, record: item.record, connection: item.connection })
    )
  }
  pool.firstConnectDone = true
  // the connection stays `connecting` (out of reach) until its events have run, then goes to the oldest waiter
  return Effect.zipRight(
    events,
    Effect.suspend(() => {
      if (item.invalidated || item.soft) {
        // the driver reported it dead while it was still connecting
        const cause = item.invalidateCause
        task.done?.(Exit.fail(cause))
        return Effect.zipRight(
          pool.feed.emit({
            _tag: "Invalidate",
            pool: pool.name,
            record: item.record,
            connection: item.connection,
            cause
          }),
          closeItem(pool, item, "invalidated")
        )
      }
      task.done?.(Exit.void)
      const put = offer(pool, item)
      pump(pool)
      return put
    })
  )
}

const connectFailed = <C, E>(
  pool: PoolImpl<C, E>,
  task: ConnectTask<C>,
  cause: Cause.Cause<unknown>
): Effect.Effect<void> => {
  // it never opened: it leaves without a close
  moveTo(pool.counts, task.item, CLOSED)
  const interrupted = Cause.isInterruptedOnly(cause)
  if (!interrupted) {
    pool.connectFailures++
    pool.lastConnectFailure = cause
    pool.metrics.connectFailed()
  }
  task.done?.(Exit.failCause(cause))
  // detached first: leaving the queue hands a waiter's task to another waiter, and this one has ended
  const waiter = detachTask(pool, task)
  if (waiter !== undefined && !interrupted) reject(pool, waiter, Effect.failCause(cause))
  // a connect interrupted while the pool is open (a driver or wrap that interrupts itself) backs off too, or the
  // next would start at once, and so on for ever
  if (!pool.closed) backOff(pool, cause)
  pump(pool)
  pool.gauges()
  pool.checkDrained()
  if (interrupted) return Effect.void
  // a failure a waiter receives is that waiter's to report; one nobody receives is logged
  const log = waiter !== undefined ?
    pool.log("info", "connect failed") :
    Effect.logWarning(
      pool.counts.live < pool.min ? "connect failed; refilling to min after a backoff" : "connect failed",
      cause
    ).pipe(Effect.annotateLogs({ pool: pool.name }))
  return Effect.zipRight(
    log,
    pool.feed.emit({ _tag: "ConnectFailed", pool: pool.name, record: task.item.record, cause })
  )
}

/**
 * After a failed connect: steps the backoff schedule with the failure and holds every connect until its delay has
 * passed. Failures while a delay runs (other connects of the same wave) do not step it again.
 */
const backOff = <C, E>(pool: PoolImpl<C, E>, cause: Cause.Cause<unknown>): void => {
  pool.consecutiveFailures++
  if (pool.backingOff) return
  pool.backingOff = true
  const schedule = pool.backoff
  const delay = Effect.flatMap(Clock.currentTimeMillis, (now) =>
    Effect.flatMap(
      Effect.flatMap(schedule.step(now, cause, pool.backoffState), (step) =>
        step[2]._tag === "Done" ?
          // an exhausted schedule starts over, so a finite one never leaves the pool without a delay
          schedule.step(now, cause, schedule.initial) :
          Effect.succeed(step)),
      ([state, _, decision]) => {
        pool.backoffState = state
        return Effect.sleep(decision._tag === "Done" ? 0 : Math.max(0, Intervals.start(decision.intervals) - now))
      }
    ))
  // whatever the schedule does (a user's schedule may die), the hold ends and connects resume
  pool.fork(Effect.ensuring(
    Effect.catchAllCause(
      delay,
      (cause) =>
        Cause.isInterruptedOnly(cause) ? Effect.void : Effect.logWarning("the connect backoff schedule failed", cause)
    ),
    Effect.sync(() => {
      pool.backingOff = false
      pump(pool)
    })
  ))
}
