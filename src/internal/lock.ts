/**
 * A lock of a number of permits that interruption cannot leak, for the policies that take turns (`keepalive`,
 * `firstConnect`) and the Sqlite driver's write lock.
 *
 * Effect 3.22.4's `Semaphore` takes its permits inside the caller's interruptible region and installs their release
 * one operation later, so a fiber interrupted between the two keeps the permits for good and every later taker
 * waits forever (Effect-TS/effect#6910, not released on the 3.x line). Here taking a permit (and installing its
 * release, or marking it held) is one uninterruptible step, and only the wait before it is interruptible. The wait
 * takes nothing: a woken waiter takes the permit itself, or waits again when another fiber took it first. A wait that
 * ends without a take (interrupted, timed out, even after it was woken) passes its wake-up to the next waiter, so a
 * free permit never leaves a waiter asleep.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"

/** @internal */
export class Lock {
  private free: number
  private readonly waiters = new Set<() => void>()

  constructor(permits: number) {
    this.free = permits
  }

  /** Takes a permit if one is free, at once. The caller must be uninterruptible until its release is installed. */
  tryTake(): boolean {
    if (this.free <= 0) return false
    this.free--
    return true
  }

  /** Gives a permit back and wakes a waiter (the earliest one still waiting). */
  readonly release: Effect.Effect<void> = Effect.sync(() => {
    this.free++
    this.wakeOne()
  })

  private wakeOne(): void {
    if (this.free <= 0) return
    const first = this.waiters.values().next()
    if (first.done === true) return
    this.waiters.delete(first.value)
    first.value()
  }

  /** Waits until a permit may be free; takes nothing. */
  private readonly awaitFree: Effect.Effect<void> = Effect.async<void>((resume) => {
    if (this.free > 0) return resume(Effect.void)
    const wake = () => resume(Effect.void)
    this.waiters.add(wake)
    return Effect.sync(() => {
      this.waiters.delete(wake)
    })
  })

  /** One wait, guarded from an uninterruptible region: a wait that fails (interrupted, timed out) wakes the next. */
  private waitOnce<E, R>(wait: Effect.Effect<void, E, R>): Effect.Effect<void, E, R> {
    return Effect.onExit(wait, (exit) => Exit.isSuccess(exit) ? Effect.void : Effect.sync(() => this.wakeOne()))
  }

  /** Runs `self` holding a permit; only the wait for it can be interrupted. */
  withPermit<A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> {
    return Effect.uninterruptibleMask((restore) => {
      const attempt: Effect.Effect<A, E, R> = Effect.suspend(() =>
        this.tryTake() ?
          Effect.ensuring(restore(self), this.release) :
          Effect.zipRight(this.waitOnce(restore(this.awaitFree)), attempt)
      )
      return attempt
    })
  }

  /**
   * Takes a permit and keeps it (the caller gives it back with `release`), running `onTake` in the same step.
   * `around` wraps each wait (a timeout, say), which is interruptible even when the caller is not.
   */
  take<E, R>(
    onTake: () => void,
    around: (wait: Effect.Effect<void>) => Effect.Effect<void, E, R>
  ): Effect.Effect<void, E, R> {
    const attempt: Effect.Effect<void, E, R> = Effect.suspend(() => {
      if (this.tryTake()) {
        onTake()
        return Effect.void
      }
      return Effect.zipRight(this.waitOnce(around(Effect.interruptible(this.awaitFree))), attempt)
    })
    return Effect.uninterruptible(attempt)
  }
}
