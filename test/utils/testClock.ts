/**
 * A `TestClock` without its two "you forgot to adjust the clock" warnings, for the model (test/utils/model.ts).
 *
 * Why: Effect 3.22's `TestClock` keeps each warning's state in a `SynchronizedRef`, and every `sleep` on it takes
 * that ref's semaphore. Effect 3.22.4's `Semaphore.withPermits` takes its permit inside an interruptible region and
 * installs the release one operation later (fixed upstream in Effect-TS/effect#6910, not released on the 3.x line),
 * so a fiber interrupted just as it starts a sleep can keep the permit for good. A pool's background fibers start
 * sleeps and are interrupted all the time, and the model runs them with budgets as small as 10 operations between
 * yields, which turns that window into a rare but real hang: the next `TestClock.adjust` (and the layer's finalizer)
 * waits for the permit forever, every fiber but the test's own being done. The pool has no part in it (traced in
 * docs/reliability.md, "An upstream semaphore leak"); the warnings are no use to the model, so this clock has none,
 * and nothing of its state is behind a semaphore.
 */
import { Chunk, Effect, Layer, Ref, SynchronizedRef, TestClock } from "effect"
import * as TestAnnotations from "effect/TestAnnotations"
import * as TestLive from "effect/TestLive"

/** `TestClockImpl` is exported by `effect/TestClock` at run time but marked internal, so not in its declarations. */
const TestClockImpl = (TestClock as unknown as {
  readonly TestClockImpl: new(
    clockState: Ref.Ref<TestClock.Data>,
    live: TestLive.TestLive,
    annotations: TestAnnotations.TestAnnotations,
    warningState: SynchronizedRef.SynchronizedRef<unknown>,
    suspendedWarningState: SynchronizedRef.SynchronizedRef<unknown>
  ) => TestClock.TestClock & {
    warningStart(): Effect.Effect<void>
    warningDone(): Effect.Effect<void>
    suspendedWarningStart(): Effect.Effect<void>
    suspendedWarningDone(): Effect.Effect<void>
  }
}).TestClockImpl
if (typeof TestClockImpl !== "function") {
  throw new Error("effect/TestClock no longer exports TestClockImpl: test/utils/testClock.ts needs another way")
}

class QuietTestClock extends TestClockImpl {
  override warningStart(): Effect.Effect<void> {
    return Effect.void
  }
  override warningDone(): Effect.Effect<void> {
    return Effect.void
  }
  override suspendedWarningStart(): Effect.Effect<void> {
    return Effect.void
  }
  override suspendedWarningDone(): Effect.Effect<void> {
    return Effect.void
  }
}

/** Replaces the `TestClock` (and the default `Clock`) of what it is provided to, at time 0. */
export const quietTestClock: Layer.Layer<
  TestClock.TestClock,
  never,
  TestAnnotations.TestAnnotations | TestLive.TestLive
> = Layer.scoped(
  TestClock.TestClock,
  Effect.gen(function*() {
    const live = yield* TestLive.TestLive
    const annotations = yield* TestAnnotations.TestAnnotations
    const clock = new QuietTestClock(
      Ref.unsafeMake(TestClock.makeData(0, Chunk.empty())),
      live,
      annotations,
      yield* SynchronizedRef.make<unknown>(undefined),
      yield* SynchronizedRef.make<unknown>(undefined)
    )
    yield* Effect.withClockScoped(clock)
    return clock
  })
)
