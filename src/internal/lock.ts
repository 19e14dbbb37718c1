/**
 * A lock of a number of permits that interruption cannot leak, for the policies that take turns (`keepalive`,
 * `firstConnect`) and the Sqlite driver's write lock.
 *
 * Effect 3.22.4's `Semaphore` takes its permits inside the caller's interruptible region and installs their release
 * one operation later, so a fiber interrupted between the two keeps the permits for good and every later taker
 * waits forever (Effect-TS/effect#6910, not released on the 3.x line). Here taking a permit and installing its
 * release are one uninterruptible step; only the wait before it is interruptible, and the wait takes nothing: a
 * woken waiter takes the permit itself, or waits again when another fiber took it first. A waiter interrupted after
 * it was woken wakes the next, so no wake-up is lost either.
 *
 * @internal
 */
import * as Effect from "effect/Effect"

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

  /** Gives a permit back and wakes the longest waiting fiber. */
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

  /** Waits until a permit may be free, interruptibly; takes nothing. */
  readonly awaitFree: Effect.Effect<void> = Effect.onInterrupt(
    Effect.async<void>((resume) => {
      if (this.free > 0) return resume(Effect.void)
      const wake = () => resume(Effect.void)
      this.waiters.add(wake)
      return Effect.sync(() => {
        this.waiters.delete(wake)
      })
    }),
    // woken and interrupted before taking: the wake-up goes to the next waiter
    () => Effect.sync(() => this.wakeOne())
  )

  /** Runs `self` holding a permit; only the wait for it can be interrupted. */
  withPermit<A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> {
    return Effect.uninterruptibleMask((restore) => {
      const attempt: Effect.Effect<A, E, R> = Effect.suspend(() =>
        this.tryTake() ?
          Effect.ensuring(restore(self), this.release) :
          Effect.zipRight(restore(this.awaitFree), attempt)
      )
      return attempt
    })
  }
}
