/**
 * The least a fair pool can do in Effect, for the `floor/handoff` floors of both benchmarks: M tokens and a FIFO
 * queue of parked fibers. A returned token goes to the oldest parked fiber (no barging), so under contention every
 * cycle parks and resumes a fiber, as a fair pool must. No timeouts, no interruption safety, no metrics: a floor, not
 * a pool.
 */
import * as Effect from "effect/Effect"

export class Handoff {
  private readonly parked: Array<(effect: Effect.Effect<void>) => void> = []
  private head = 0
  constructor(private free: number) {}
  readonly take: Effect.Effect<void> = Effect.suspend(() => {
    if (this.free > 0 && this.head === this.parked.length) {
      this.free--
      return Effect.void
    }
    return Effect.async<void>((resume) => {
      this.parked.push(resume)
    })
  })
  readonly give: Effect.Effect<void> = Effect.sync(() => {
    if (this.head < this.parked.length) {
      const resume = this.parked[this.head]
      this.parked[this.head++] = undefined!
      if (this.head > 1024 && this.head * 2 > this.parked.length) {
        this.parked.splice(0, this.head)
        this.head = 0
      }
      resume(Effect.void)
    } else {
      this.free++
    }
  })
}
