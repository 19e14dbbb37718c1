/**
 * The faults the demo injects while the workload runs, so that recovery is visible: connections killed under the
 * pool (on SQLite their handles are closed, which the driver reports as a disconnect; on PostgreSQL their backends
 * are ended with `pg_terminate_backend` from a separate admin connection) and, with `--chaos`, one bigger fault: a
 * restart of a managed PostgreSQL server, every session of an external one killed at once, or on SQLite a long
 * transaction that holds the write lock past the busy timeout. Each fault is a line in the log, followed by the
 * first commit after it.
 */
import * as Effect from "effect/Effect"
import type * as PoolEvent from "../src/PoolEvent.js"

/** A connection of the pool as the demo knows it from the pool's events. */
export interface Tracked<C> {
  /** The connection record's id (`#3`). */
  readonly id: number
  readonly connection: C
  lent: boolean
  /** Killed by a fault already (it stays open for the pool until the pool notices). */
  killed: boolean
}

/** The pool's open connections, kept up to date by listeners (`Connect`, `Checkout`, `Checkin`, `Close`). */
export class Connections<C> {
  readonly open = new Map<number, Tracked<C>>()

  readonly listeners: PoolEvent.Listeners<C> = {
    connect: (event) => Effect.sync(() => this.open.set(event.record.id, this.track(event))),
    checkout: (event) => Effect.sync(() => this.lend(event, true)),
    checkin: (event) => Effect.sync(() => this.lend(event, false)),
    close: (event) => Effect.sync(() => this.open.delete(event.record.id))
  }

  private track(event: PoolEvent.Connect<C>): Tracked<C> {
    return { id: event.record.id, connection: event.connection, lent: false, killed: false }
  }

  private lend(event: PoolEvent.Checkout<C> | PoolEvent.Checkin<C>, lent: boolean): void {
    const tracked = this.open.get(event.record.id)
    if (tracked !== undefined) tracked.lent = lent
  }

  /** Up to `count` connections, lent ones first (a transaction is running on them), in random order. */
  pick(count: number): ReadonlyArray<Tracked<C>> {
    const shuffled = [...this.open.values()].filter((t) => !t.killed).sort(() => Math.random() - 0.5)
    return shuffled.sort((a, b) => Number(b.lent) - Number(a.lent)).slice(0, count)
  }
}

/** How one backend injects faults. */
export interface Injector<C> {
  /** What killing these connections does, for the log. */
  readonly describeKill: (targets: ReadonlyArray<Tracked<C>>) => string
  /** Kills these connections behind the pool's back. */
  readonly kill: (targets: ReadonlyArray<Tracked<C>>) => Effect.Effect<void, unknown>
  /** The `--chaos` fault: answers what it did once it is over. */
  readonly chaos: Effect.Effect<string, unknown>
  /** What the `--chaos` fault will do, logged when it starts. */
  readonly chaosDescription: string
}

/** One planned fault, at a fraction of the run's duration. */
export interface Step {
  readonly at: number
  readonly kind: "kill" | "chaos"
}

/** Three kills spread over the run; with `--chaos` the bigger fault goes in early enough to recover from. */
export const plan = (chaos: boolean): ReadonlyArray<Step> =>
  chaos
    ? [{ at: 0.15, kind: "kill" }, { at: 0.35, kind: "chaos" }, { at: 0.7, kind: "kill" }, { at: 0.85, kind: "kill" }]
    : [{ at: 0.2, kind: "kill" }, { at: 0.5, kind: "kill" }, { at: 0.8, kind: "kill" }]

/** A fault as the report shows it. */
export interface Fault {
  /** Milliseconds since the start of the run. */
  readonly at: number
  readonly description: string
  /** Commits when the fault was over, to count the commits after it. */
  committedAt: number
  /** Milliseconds from the end of the fault to the first commit after it. */
  recoveredAfter: number | undefined
}

/** The faults so far, and the recoveries still awaited. */
export class FaultLog {
  readonly faults: Array<Fault> = []
  private readonly awaiting: Array<{
    readonly fault: Fault
    readonly since: number
    readonly recovered: () => boolean
  }> = []

  constructor(
    private readonly elapsed: () => number,
    private readonly log: (line: string) => void
  ) {}

  begin(description: string): Fault {
    const fault: Fault = { at: this.elapsed(), description, committedAt: 0, recoveredAfter: undefined }
    this.faults.push(fault)
    this.log(`fault: ${description}`)
    return fault
  }

  /**
   * The fault is over: the first commit once `recovered` holds (the killed connections replaced, say) is its
   * recovery.
   */
  end(fault: Fault, committed: number, options: { readonly note?: string; readonly recovered?: () => boolean } = {}) {
    fault.committedAt = committed
    if (options.note !== undefined) this.log(options.note)
    this.awaiting.push({ fault, since: this.elapsed(), recovered: options.recovered ?? (() => true) })
  }

  /** Called on every commit. */
  commit(): void {
    if (this.awaiting.length === 0) return
    const now = this.elapsed()
    for (let i = 0; i < this.awaiting.length;) {
      const { fault, recovered, since } = this.awaiting[i]!
      if (!recovered()) {
        i++
        continue
      }
      this.awaiting.splice(i, 1)
      fault.recoveredAfter = now - since
      this.log(`recovered ${Math.round(now - since)} ms after the fault at ${(fault.at / 1000).toFixed(1)} s`)
    }
  }
}

/**
 * Runs the plan over a run of `durationMillis`: sleeps until each step, injects it, logs it. A fault, once
 * started, runs to its end even when the run is interrupted (a server restart is never left half-done).
 */
export const inject = <C>(options: {
  readonly plan: ReadonlyArray<Step>
  readonly durationMillis: number
  readonly injector: Injector<C>
  readonly connections: Connections<C>
  readonly log: FaultLog
  readonly elapsed: () => number
  readonly committed: () => number
  readonly killCount: number
}): Effect.Effect<void> =>
  Effect.forEach(
    options.plan,
    (step) =>
      Effect.suspend(() => Effect.sleep(Math.max(0, step.at * options.durationMillis - options.elapsed()))).pipe(
        Effect.zipRight(Effect.uninterruptible(Effect.suspend(() => {
          if (step.kind === "chaos") {
            const fault = options.log.begin(options.injector.chaosDescription)
            return options.injector.chaos.pipe(
              Effect.match({
                onFailure: (error) => `the fault failed: ${String(error)}`,
                onSuccess: (note) => note
              }),
              Effect.map((note) => options.log.end(fault, options.committed(), { note }))
            )
          }
          const targets = options.connections.pick(options.killCount)
          if (targets.length === 0) return Effect.void
          const openBefore = options.connections.open.size
          for (const target of targets) target.killed = true
          const killed = new Set(targets.map((target) => target.id))
          const fault = options.log.begin(options.injector.describeKill(targets))
          return options.injector.kill(targets).pipe(
            Effect.match({
              onFailure: (error) => `could not kill the connections: ${String(error)}`,
              onSuccess: () => undefined
            }),
            // recovered once the killed connections are gone and as many are open as before: replaced
            Effect.map((note) =>
              options.log.end(fault, options.committed(), {
                ...(note === undefined ? {} : { note }),
                recovered: () =>
                  [...killed].every((id) => !options.connections.open.has(id)) &&
                  options.connections.open.size >= openBefore
              })
            )
          )
        })))
      ),
    { discard: true }
  )
