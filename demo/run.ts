/**
 * One run of the demo: open the database, make the pool (the default policies, a faster connect retry and a circuit
 * breaker), set up the bank, then run the workers, the faults and the view side by side for the run's duration. The
 * report is a finalizer of the run, so it is printed however the run ends: after its duration, or early on SIGINT /
 * SIGTERM (`NodeRuntime.runMain` interrupts the program; the workers then finish the transfer in hand).
 */
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Logger from "effect/Logger"
import * as Metric from "effect/Metric"
import * as MetricState from "effect/MetricState"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import * as Scope from "effect/Scope"
import * as Policy from "../src/Policy.js"
import * as Pool from "../src/Pool.js"
import * as PoolEvent from "../src/PoolEvent.js"
import { type Bank, setup, Tally, totals, workers } from "./bank.js"
import { type Backend, DemoError, open } from "./database.js"
import { Connections, FaultLog, inject, plan } from "./faults.js"
import * as View from "./view.js"

/** The flags, checked. */
export interface DemoOptions {
  /** Seconds the workload runs. */
  readonly duration: number
  readonly concurrency: number
  readonly size: number
  readonly chaos: boolean
  readonly pg: boolean
}

/** Where the run leaves its exit code: 0 when the conservation check holds, 1 when it does not. */
export interface Outcome {
  code: number | undefined
}

/** The pool's name, in its events and metrics (on PostgreSQL the sessions carry the demo's own `application_name`). */
const POOL_NAME = "bank"

/** Connections killed by each kill fault. */
const KILL_COUNT = 2

/** How long the workers get to finish the transfer in hand once the run is over. */
const DRAIN_TIMEOUT = Duration.seconds(5)

/** Reconnects after a failure: 50 ms doubling, at most 500 ms apart, so a restarted server is found quickly. */
const connectSchedule = Schedule.exponential(Duration.millis(50)).pipe(
  Schedule.union(Schedule.spaced(Duration.millis(500))),
  Schedule.jittered
)

/** Counts every event by tag (and closes by reason, breaker changes by state). */
class EventCounts<C> {
  readonly byTag = new Map<string, number>()
  readonly closes = new Map<string, number>()
  readonly breaker = new Map<string, number>()

  readonly listeners: PoolEvent.Listeners<C> = Object.fromEntries(
    Object.values(PoolEvent.listenerKey).map((key) => [key, (event: PoolEvent.PoolEvent<C>) => this.count(event)])
  )

  private count(event: PoolEvent.PoolEvent<C>): Effect.Effect<void> {
    return Effect.sync(() => {
      const bump = (map: Map<string, number>, key: string) => map.set(key, (map.get(key) ?? 0) + 1)
      bump(this.byTag, event._tag)
      if (event._tag === "Close") bump(this.closes, event.reason)
      if (event._tag === "CircuitBreaker") bump(this.breaker, event.state)
    })
  }
}

interface Sample {
  readonly at: number
  readonly committed: number
  readonly checkouts: number
  readonly waits: number
  readonly buckets: ReadonlyArray<readonly [number, number]>
}

const WAIT_TIME = "db.client.connection.wait_time"
const POOL_NAME_TAG = "db.client.connection.pool.name"

/**
 * Throughput and the p99 checkout wait over the last second, from the tally, `Pool.stats` and the pool's
 * `db.client.connection.wait_time` histogram (which records only the checkouts that waited: the others waited 0).
 * The p99 is the upper bound of the histogram bucket it falls in.
 */
class Sampler {
  private readonly history: Array<Sample> = []

  readonly sample = (at: number, committed: number, checkouts: number) =>
    Effect.map(Metric.snapshot, (pairs) => {
      const pair = pairs.find(({ metricKey }) =>
        metricKey.name === WAIT_TIME && metricKey.tags.some((t) => t.key === POOL_NAME_TAG && t.value === POOL_NAME)
      )
      const histogram = pair !== undefined && MetricState.isHistogramState(pair.metricState)
        ? pair.metricState
        : undefined
      const now: Sample = {
        at,
        committed,
        checkouts,
        waits: histogram?.count ?? 0,
        buckets: histogram?.buckets ?? []
      }
      this.history.push(now)
      while (this.history.length > 2 && this.history[1]!.at <= at - 1000) this.history.shift()
      const base = this.history[0]!
      const span = at - base.at
      const throughput = span > 0 ? ((committed - base.committed) * 1000) / span : 0
      return { throughput, p99: p99(base, now, histogram?.max ?? 0) }
    })
}

const p99 = (base: Sample, now: Sample, max: number): number | undefined => {
  const waits = now.waits - base.waits
  const total = Math.max(now.checkouts - base.checkouts, waits)
  if (total <= 0) return undefined
  const zeros = total - waits
  const rank = Math.ceil(total * 0.99)
  if (rank <= zeros) return 0
  for (let i = 0; i < now.buckets.length; i++) {
    const [boundary, cumulative] = now.buckets[i]!
    if (zeros + cumulative - (base.buckets[i]?.[1] ?? 0) >= rank) {
      return Number.isFinite(boundary) ? boundary * 1000 : max * 1000
    }
  }
  return max * 1000
}

const runOn = <C, E>(
  backend: Backend<C, E>,
  options: DemoOptions,
  outcome: Outcome
): Effect.Effect<void, DemoError, Scope.Scope> =>
  Effect.gen(function*() {
    const durationMillis = options.duration * 1000
    let started = Date.now()
    const elapsed = () => Date.now() - started
    const view = View.make({
      tty: process.stdout.isTTY === true,
      header: `effect-reservoir demo: bank transfers on ${backend.name}, ${options.concurrency} workers, ` +
        `pool size ${options.size}${options.chaos ? ", chaos" : ""}`,
      elapsed
    })
    view.log(`database: ${backend.name}, ${backend.where}`)

    // the pool's own warnings (a rollback on a lost connection...) go to the log, not over the view: each one the
    // first time, then counted for the report
    const warnings = new Map<string, number>()
    const logger = Logger.make(({ logLevel, message }) => {
      const text = `${logLevel.label.toLowerCase()}: ${
        Array.isArray(message) ? message.map(String).join(" ") : String(message)
      }`
      const seen = warnings.get(text) ?? 0
      warnings.set(text, seen + 1)
      if (seen === 0) view.log(`pool ${text} (counted in the report from now on)`)
    })

    return yield* Effect.gen(function*() {
      const breaker = Policy.circuitBreaker<C, E>({ failures: 3, probe: Duration.millis(250) })
      const pool = yield* Pool.make({
        driver: backend.driver,
        name: POOL_NAME,
        size: options.size,
        maxOverflow: 0,
        timeout: Duration.seconds(2),
        connectTimeout: Duration.seconds(2),
        shutdownTimeout: Duration.seconds(2),
        policies: [...Policy.defaults<C, E>(), Policy.connectRetry<C, E>(connectSchedule), breaker]
      }).pipe(Effect.mapError((error) => new DemoError({ message: error.message })))
      const breakerState = (yield* Pool.policy(pool, breaker).pipe(Effect.orDie)).state

      const connections = new Connections<C>()
      const events = new EventCounts<C>()
      yield* Pool.listen(pool, connections.listeners)
      yield* Pool.listen(pool, events.listeners)
      yield* Pool.listen(pool, {
        circuitBreaker: (event) =>
          Effect.sync(() =>
            view.log(
              event.state === "open"
                ? `breaker open after ${event.failures} failed connects in a row: checkouts fail at once`
                : event.state === "halfOpen"
                ? "breaker half-open: one probe connect"
                : "breaker closed: a connect succeeded"
            )
          )
      })

      const bank: Bank<C, E> = { pool, driver: backend.driver, statements: backend.statements }
      const failed = (what: string) => (error: unknown) =>
        new DemoError({ message: `${what}: ${error instanceof Error ? error.message : String(error)}` })
      yield* setup(bank).pipe(Effect.mapError(failed("setting up the bank failed")))
      const before = yield* totals(bank).pipe(Effect.mapError(failed("reading the opening balances failed")))
      view.log(`opened ${before.accounts} accounts holding ${before.total} in all`)

      const tally = new Tally()
      started = Date.now()
      const faults = new FaultLog(elapsed, view.log)
      tally.onCommit = () => faults.commit()
      const sampler = new Sampler()
      yield* sampler.sample(0, 0, (yield* Pool.stats(pool)).checkouts)
      const snapshot = Effect.gen(function*() {
        const stats = yield* Pool.stats(pool)
        const at = elapsed()
        const { p99, throughput } = yield* sampler.sample(at, tally.committed, stats.checkouts)
        const snapshot: View.Snapshot = {
          elapsed: Math.min(at, durationMillis),
          duration: durationMillis,
          stats,
          throughput,
          p99,
          tally,
          breaker: yield* breakerState
        }
        return snapshot
      })

      const work = yield* Scope.make()
      const stop = yield* Deferred.make<void>()
      let workersFiber: Fiber.RuntimeFiber<void> | undefined
      let faultsFiber: Fiber.RuntimeFiber<void> | undefined

      // the report: a finalizer of the run, so that an interrupted run (SIGINT, SIGTERM) still prints it
      yield* Effect.addFinalizer((exit) =>
        Effect.gen(function*() {
          const ranFor = elapsed()
          yield* Deferred.succeed(stop, undefined)
          if (faultsFiber !== undefined) yield* Fiber.interrupt(faultsFiber)
          if (workersFiber !== undefined) {
            const drained = yield* Fiber.await(workersFiber).pipe(Effect.timeout(DRAIN_TIMEOUT), Effect.option)
            if (Option.isNone(drained)) view.log("the workers did not finish in time: interrupting them")
          }
          yield* Scope.close(work, Exit.void)
          view.finish(yield* snapshot)
          const after = yield* totals(bank).pipe(
            Effect.catchAll((error) => Effect.succeed(error instanceof Error ? error.message : String(error)))
          )
          const report: View.Report = {
            database: `${backend.name}, ${backend.where}`,
            seconds: ranFor / 1000,
            concurrency: options.concurrency,
            size: options.size,
            interrupted: Exit.isInterrupted(exit),
            tally,
            faults: faults.faults,
            before,
            after,
            status: yield* Pool.status(pool),
            events: events.byTag,
            closes: events.closes,
            breaker: yield* breakerState,
            breakerChanges: events.breaker,
            warnings
          }
          console.log(View.formatReport(report))
          outcome.code = View.holds(report) ? 0 : 1
        })
      )

      workersFiber = yield* workers(bank, tally, { concurrency: options.concurrency, stop }).pipe(
        Effect.forkIn(work)
      )
      faultsFiber = yield* inject({
        plan: plan(options.chaos),
        durationMillis,
        injector: backend.injector(bank),
        connections,
        log: faults,
        elapsed,
        committed: () => tally.committed,
        killCount: KILL_COUNT
      }).pipe(Effect.forkIn(work))
      yield* snapshot.pipe(
        Effect.flatMap((s) => Effect.sync(() => view.update(s))),
        Effect.repeat(Schedule.spaced(Duration.millis(view.interval))),
        Effect.delay(Duration.millis(view.interval)),
        Effect.forkIn(work)
      )

      // the run: its duration, unless a worker dies first
      yield* Effect.raceFirst(Effect.sleep(Duration.millis(durationMillis)), Fiber.join(workersFiber))
    }).pipe(Effect.provide(Logger.replace(Logger.defaultLogger, logger)))
  })

/** Runs the demo with these options; the report's verdict lands in `outcome.code`. */
export const run = (options: DemoOptions, outcome: Outcome): Effect.Effect<void, DemoError> =>
  Effect.scoped(
    open(
      { pg: options.pg, databaseUrl: process.env["DATABASE_URL"], say: (line) => console.log(line) },
      (backend) => runOn(backend, options, outcome)
    )
  )
