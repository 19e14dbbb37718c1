/**
 * Helpers for the regression tests of the core's known defects: pools in a scope of their own (so that a test can
 * close a pool whose shutdown hangs without hanging itself), bounded closing under `TestClock`, and polling fibers.
 */
import { Cause, Duration, Effect, Exit, Fiber, Logger, Option, Scope, TestClock } from "effect"
import { settle } from "./pool.js"

/**
 * Forks `effect` as a daemon: a fiber that may hang on the old core must not be a child of the test's fiber, which
 * waits for its children when it ends.
 */
export const spawn = <A, E>(effect: Effect.Effect<A, E>): Effect.Effect<Fiber.RuntimeFiber<A, E>> =>
  Effect.forkDaemon(effect)

/**
 * Builds `make` in a scope of its own, closed (under `TestClock`, by at most `closeAdvance` of test time) when the
 * test's scope closes; a close that does not finish by then is abandoned rather than waited for.
 */
export const isolated = <A, E, R>(
  make: Effect.Effect<A, E, R | Scope.Scope>,
  closeAdvance: Duration.DurationInput = "1 minute"
): Effect.Effect<readonly [A, Scope.CloseableScope], E, Exclude<R, Scope.Scope> | Scope.Scope> =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    const value = yield* Scope.extend(make, scope)
    yield* Effect.addFinalizer(() => Effect.asVoid(closeWithin(scope, closeAdvance)))
    return [value, scope] as const
  }) as any

/**
 * Closes `scope` in a fiber of its own, advances the `TestClock` by `advance` in steps of `step`, and answers whether
 * the close completed. A close still running is left running (it is not interrupted or awaited).
 */
export const closeWithin = (
  scope: Scope.CloseableScope,
  advance: Duration.DurationInput,
  step: Duration.DurationInput = "50 millis"
): Effect.Effect<boolean> =>
  Effect.gen(function*() {
    const closing = yield* Effect.forkDaemon(Scope.close(scope, Exit.void))
    yield* settle
    yield* advanceBy(advance, step, () => Effect.map(Fiber.poll(closing), Option.isSome))
    return Option.isSome(yield* Fiber.poll(closing))
  })

/** Advances the `TestClock` by `total` in steps of `step`, letting fibers run after each; stops early when `done`. */
export const advanceBy = (
  total: Duration.DurationInput,
  step: Duration.DurationInput,
  done: () => Effect.Effect<boolean> = () => Effect.succeed(false)
): Effect.Effect<void> =>
  Effect.gen(function*() {
    const totalMillis = Duration.toMillis(Duration.decode(total))
    const stepMillis = Duration.toMillis(Duration.decode(step))
    for (let t = 0; t < totalMillis; t += stepMillis) {
      if (yield* done()) return
      yield* TestClock.adjust(Math.min(stepMillis, totalMillis - t))
      yield* settle
    }
  })

/** The fiber's exit if it has ended, `undefined` while it runs. */
export const pollExit = <A, E>(fiber: Fiber.Fiber<A, E>): Effect.Effect<Exit.Exit<A, E> | undefined> =>
  Effect.map(Fiber.poll(fiber), Option.getOrUndefined)

/** The typed failure of an exit, `undefined` for a success, a defect or an interruption. */
export const failureOf = <A, E>(exit: Exit.Exit<A, E>): E | undefined =>
  Exit.isFailure(exit) ? Option.getOrUndefined(Cause.failureOption(exit.cause)) : undefined

/** A logger that keeps the text of every message it is given, for tests that read what the pool logged. */
export const collectingLogger = () => {
  const logs: Array<string> = []
  const logger = Logger.make(({ message }) => {
    logs.push(Array.isArray(message) ? message.map(String).join(" ") : String(message))
  })
  return { logs, logger } as const
}
