import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Schedule from "effect/Schedule"
import * as Intervals from "effect/ScheduleIntervals"
import type * as Policy from "../../Policy.js"
import { PoolTimeoutError, PoolUnavailableError } from "../../PoolError.js"
import type * as PoolEvent from "../../PoolEvent.js"
import * as check from "./check.js"
import { stateful } from "./make.js"
import { toSchedule } from "./upkeep.js"

/**
 * The probe's default delays: 1 second, doubling, capped at 30 seconds, jittered, so that pools that lost the same
 * database do not probe it in step.
 *
 * @internal
 */
export const defaultProbe: Schedule.Schedule<unknown, unknown> = Schedule.exponential("1 second", 2).pipe(
  Schedule.union(Schedule.spaced("30 seconds")),
  Schedule.jittered
)

/**
 * One pool's breaker. Plain fields, not `Ref`s: `admit` is synchronous and reads them on the checkout's own step,
 * and every change is made in one synchronous step too (a connect's exit, the probe loop), so there is nothing to
 * interleave with.
 */
interface State {
  state: Policy.BreakerState
  /** Consecutive connect failures. */
  failures: number
  /** The last connect failure. */
  lastCause: Cause.Cause<unknown> | undefined
  /** When the next probe is due (epoch milliseconds), while open. */
  retryAt: number | undefined
  /** Bumped by every change the connect wrap makes, so the probe loop can wait for one without missing it. */
  version: number
  /** Resumes the probe loop waiting for a change. */
  wake: (() => void) | undefined
}

/** A connect cut off by the pool's `connectTimeout` reaches the wrap as an interruption: what it failed with. */
const timedOut = (pool: string, startedAt: number, now: number, stats: Policy.PoolHandle<unknown, unknown>["stats"]) =>
  Effect.map(
    stats,
    (stats) => Cause.fail(new PoolTimeoutError({ pool, phase: "connect", timeoutMillis: now - startedAt, stats }))
  )

/**
 * The circuit breaker. Its connect wrap sees every connect (the pool's refills, replacements, connects for waiters,
 * and its own probe): failures count, a success resets the count and closes the breaker. At `failures` it opens:
 * `admit` refuses a checkout that would have to wait for a connect (the pool has room for one: a pool whose `max`
 * connections are all open waits for a return, as without a breaker) with `PoolUnavailableError`, and a background
 * loop steps the `probe` schedule, goes half-open and runs one connect (`PoolHandle.connect`) per step. While
 * half-open, checkouts are still refused: the probe is a single connect, and a pool with one slot would otherwise
 * queue them behind it.
 *
 * An interruption is not a failure (the pool shutting down interrupts its connects), except while the pool is open:
 * that is the pool's `connectTimeout` cutting a hanging connect off (it interrupts the wrapped connect and fails the
 * connect with a `PoolTimeoutError`), and a database that accepts connections and never answers is down as surely
 * as one that refuses them.
 *
 * @internal
 */
export const circuitBreaker = <C = never, E = never>(
  options?: {
    readonly failures?: number | undefined
    readonly probe?: Schedule.Schedule<unknown, unknown> | Duration.DurationInput | undefined
  }
): Policy.Policy<C, E, Policy.BreakerCommands> => {
  const problems = check.problemsOf(
    options?.failures === undefined ? undefined : check.count("failures", options.failures, 1, false),
    options?.probe === undefined ? undefined : check.schedule("probe", options.probe)
  )
  if (problems.length > 0) return check.invalid("circuitBreaker", problems)
  const threshold = options?.failures ?? 5
  const probe = options?.probe === undefined ? defaultProbe : toSchedule(options.probe)
  return stateful<C, E, Policy.BreakerCommands>("circuitBreaker", (pool) =>
    Effect.sync(() => {
      const s: State = {
        state: "closed",
        failures: 0,
        lastCause: undefined,
        retryAt: undefined,
        version: 0,
        wake: undefined
      }

      const event = (state: Policy.BreakerState): PoolEvent.CircuitBreaker => ({
        _tag: "CircuitBreaker",
        pool: pool.name,
        state,
        failures: s.failures,
        cause: state === "open" ? s.lastCause : undefined
      })

      /** Moves to `state` and tells the pool's feed (`Effect.void` when it is there already). */
      const moveTo = (state: Policy.BreakerState): Effect.Effect<void> => {
        if (s.state === state) return Effect.void
        s.state = state
        if (state === "closed") s.retryAt = undefined
        s.version++
        const wake = s.wake
        s.wake = undefined
        wake?.()
        return pool.emit(event(state))
      }

      const succeeded = Effect.suspend(() => {
        s.failures = 0
        s.lastCause = undefined
        return moveTo("closed")
      })

      const failed = (cause: Cause.Cause<unknown>) =>
        Effect.suspend(() => {
          s.failures++
          s.lastCause = cause
          // while half-open the probe's own outcome decides; while open there is nothing new to say
          return s.state === "closed" && s.failures >= threshold ? moveTo("open") : Effect.void
        })

      const connect: Policy.Hooks<C, E>["connect"] = (open) =>
        Effect.flatMap(Clock.currentTimeMillis, (startedAt) =>
          Effect.onExit(open, (exit) => {
            if (Exit.isSuccess(exit)) return succeeded
            if (!Cause.isInterruptedOnly(exit.cause)) return failed(exit.cause)
            return Effect.flatMap(Effect.zip(pool.stats, Clock.currentTimeMillis), ([stats, now]) =>
              stats.isClosed ?
                Effect.void :
                Effect.flatMap(timedOut(pool.name, startedAt, now, pool.stats), failed))
          }))

      /** Refuses a checkout that would wait for a connect while the breaker is not closed. */
      const admit = (): PoolUnavailableError | undefined => {
        if (s.state === "closed") return undefined
        // every slot holds an open connection: the checkout waits for a return, which needs no database
        const stats = Effect.runSync(pool.stats)
        if (stats.open >= stats.size + stats.maxOverflow) return undefined
        return new PoolUnavailableError({
          pool: pool.name,
          failures: s.failures,
          ...(s.retryAt !== undefined ? { retryAt: s.retryAt } : {}),
          ...(s.lastCause !== undefined ? { cause: Cause.squash(s.lastCause) } : {})
        })
      }

      /** Waits until the wrap changes the state after `version` (at once if it already has). */
      const changedSince = (version: number) =>
        Effect.async<void>((resume) => {
          if (s.version !== version) return resume(Effect.void)
          s.wake = () => resume(Effect.void)
          return Effect.sync(() => {
            s.wake = undefined
          })
        })

      /** The delay of the schedule's next step, and its state; an exhausted schedule starts over. */
      const step = (now: number, state: unknown) =>
        Effect.flatMap(probe.step(now, s.lastCause, state), (result) =>
          result[2]._tag === "Done" ? probe.step(now, s.lastCause, probe.initial) : Effect.succeed(result)).pipe(
            Effect.map(([next, _, decision]) => ({
              state: next,
              delay: decision._tag === "Done" ? 0 : Math.max(0, Intervals.start(decision.intervals) - now)
            }))
          )

      /** One probe: half-open, one connect; its wrap closes the breaker on success, a failure opens it again. */
      const runProbe = Effect.zipRight(
        Effect.suspend(() =>
          moveTo("halfOpen")
        ),
        Effect.flatMap(Effect.exit(pool.connect), (exit) =>
          // `false`: the pool is closing, or full of connects of its own (their outcome decides); still half-open
          // means nothing succeeded meanwhile
          s.state === "halfOpen" && !(Exit.isSuccess(exit) && exit.value) ? moveTo("open") : Effect.void)
      )

      /** One open spell: probe on the schedule, from its start, until the breaker closes. */
      const whileOpen = Effect.suspend(() => {
        let state = probe.initial
        const loop: Effect.Effect<void> = Effect.suspend(() => {
          if (s.state === "closed") return Effect.void
          const version = s.version
          return Effect.flatMap(Clock.currentTimeMillis, (now) =>
            Effect.flatMap(step(now, state), (next) => {
              state = next.state
              s.retryAt = now + next.delay
              // the pool's own connects go on meanwhile (refilling `min`): one that succeeds ends the spell early
              return Effect.zipRight(
                Effect.raceFirst(Effect.sleep(next.delay), changedSince(version)),
                Effect.suspend(() => s.state === "closed" ? Effect.void : Effect.zipRight(runProbe, loop))
              )
            }))
        })
        return loop
      })

      const background = () =>
        Effect.forever(Effect.suspend(() => s.state === "closed" ? changedSince(s.version) : whileOpen))

      return {
        connect,
        admit,
        background,
        commands: {
          state: Effect.sync(() => s.state),
          failures: Effect.sync(() => s.failures)
        }
      }
    }))
}
