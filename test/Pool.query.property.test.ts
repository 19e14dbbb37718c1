/**
 * A property of `Pool.query` (issue 13's hand-off) under contention, statement faults and interruption: random
 * callers (each with its own statement: a duration, rows or a typed failure or a lost connection, an optional
 * interruption, an optional timeout of its own) arrive over random `TestClock.adjust` steps at a small pool (size
 * 1..3, overflow 0..1) whose checkouts need no check (so a waiting statement is started at hand-off by the fiber
 * that returns the connection, `Driver.start`), or whose returns run a policy (`maxUses`), or whose checkouts a
 * listener checks first (delays, rejections: the caller validates, then runs the driver's `query` itself), under a
 * random fiber yield budget (I12).
 *
 * The driver is written here: its statements answer by themselves under the TestClock (a list of statements in
 * flight, resolved by the test's loop as it moves the clock to each one's end), an abandoned statement keeps
 * running until its cancel lands, and `busy` says so meanwhile (and, as the Pg driver's, once a statement lost the
 * session). The driver counts, and the run checks:
 * - exclusive: never two statements in flight on one connection, never one on a connection the pool must not lend
 *   (closed, lost, or still busy with an abandoned statement), never a statement for a caller that has ended, nor
 *   two for one caller;
 * - every caller ends: with its own statement's rows, its own typed failure, `PoolTimeoutError` at its deadline and
 *   never after it (I6, and no statement sent for it), `PoolCheckoutRejectedError` (only when the listener rejects),
 *   or interrupted, its statement then abandoned exactly once if it was still in flight, before the caller ended;
 * - bounded at every step (I1): open + opening ≤ size + maxOverflow, for the pool and for the driver;
 * - at rest: nothing in use or waiting, the pool's open connections are the driver's (I3, I11), no statement left
 *   running; the pool still serves (size + overflow + 1 statements at once, one of them waiting); after the pool's
 *   scope closes every connection the driver opened was closed exactly once.
 */
import { assert, describe, it } from "@effect/vitest"
import { Cause, Effect, Exit, FastCheck as fc, Fiber, Scope, TestClock } from "effect"
import type * as Clock from "effect/Clock"
import * as Driver from "../src/Driver.js"
import * as Policy from "../src/Policy.js"
import * as Pool from "../src/Pool.js"
import { ConnectionRejected, type PoolError } from "../src/PoolError.js"
import { uniqueName } from "./utils/pool.js"

const runs = (byDefault: number): number => Number(process.env.PROP_RUNS ?? byDefault)

// ---------------------------------------------------------------------------------------------------------------
// scenarios
// ---------------------------------------------------------------------------------------------------------------

/**
 * How a statement ends on its own: rows, a typed failure, a failure the driver calls a disconnect (`lost`), or the
 * same after the driver told the pool the session died (`dropped`: `ConnectContext.invalidate`, as node-postgres's
 * `error` event does), which closes the connection under the statement.
 */
type Outcome = "rows" | "fail" | "lost" | "dropped"

interface CallerSpec {
  /** The step at whose start it arrives (modulo the number of steps). */
  readonly step: number
  readonly durationMillis: number
  readonly outcome: Outcome
  /** Interrupted this long after it arrived (if it has not ended). */
  readonly interruptAfter: number | undefined
  /** How long the driver takes to stop the statement once it is abandoned. */
  readonly cancelMillis: number
  /** Its own checkout timeout (`CheckoutOptions.timeout`), else the pool's. */
  readonly timeoutMillis: number | undefined
}

/** What a connection goes through at checkout and return. */
type Checks =
  /** nothing: a waiting statement is started at hand-off */
  | { readonly _tag: "None" }
  /** a return policy (slow return path), no checkout check: still started at hand-off */
  | { readonly _tag: "MaxUses"; readonly n: number }
  /** a checkout listener (cyclic script): the caller validates first, then runs `query` itself */
  | {
    readonly _tag: "Listener"
    readonly script: ReadonlyArray<{ readonly reject: boolean; readonly delayMillis: number }>
  }

interface Scenario {
  readonly size: number
  readonly maxOverflow: number
  readonly timeoutMillis: number
  readonly order: "fifo" | "lifo"
  readonly checks: Checks
  readonly callers: ReadonlyArray<CallerSpec>
  readonly steps: ReadonlyArray<number>
  /** At one instant, interruptions before the statements that end then (else after). */
  readonly interruptsFirst: boolean
  readonly maxOps: number
}

const callerSpec: fc.Arbitrary<CallerSpec> = fc.record({
  step: fc.nat(20),
  durationMillis: fc.oneof(fc.constantFrom(0, 1, 10, 50), fc.integer({ min: 0, max: 200 })),
  outcome: fc.oneof(
    { arbitrary: fc.constant<Outcome>("rows"), weight: 6 },
    { arbitrary: fc.constant<Outcome>("fail"), weight: 2 },
    { arbitrary: fc.constant<Outcome>("lost"), weight: 1 },
    { arbitrary: fc.constant<Outcome>("dropped"), weight: 1 }
  ),
  interruptAfter: fc.option(fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 300 })), {
    nil: undefined,
    freq: 3
  }),
  cancelMillis: fc.constantFrom(0, 5, 40),
  timeoutMillis: fc.option(fc.constantFrom(10, 30, 120), { nil: undefined, freq: 4 })
})

const checks: fc.Arbitrary<Checks> = fc.oneof(
  { arbitrary: fc.constant({ _tag: "None" as const }), weight: 3 },
  { arbitrary: fc.record({ _tag: fc.constant("MaxUses" as const), n: fc.integer({ min: 1, max: 3 }) }), weight: 1 },
  {
    arbitrary: fc.record({
      _tag: fc.constant("Listener" as const),
      script: fc.array(
        fc.record({
          reject: fc.oneof({ arbitrary: fc.constant(false), weight: 4 }, { arbitrary: fc.constant(true), weight: 1 }),
          delayMillis: fc.constantFrom(0, 0, 5, 20)
        }),
        { minLength: 1, maxLength: 4 }
      )
    }),
    weight: 2
  }
)

const scenario: fc.Arbitrary<Scenario> = fc.record({
  size: fc.integer({ min: 1, max: 3 }),
  maxOverflow: fc.integer({ min: 0, max: 1 }),
  timeoutMillis: fc.constantFrom(20, 60, 250),
  order: fc.constantFrom("fifo" as const, "lifo" as const),
  checks,
  callers: fc.array(callerSpec, { minLength: 1, maxLength: 30 }),
  steps: fc.array(fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 150 })), { minLength: 1, maxLength: 12 }),
  interruptsFirst: fc.boolean(),
  // Effect 3.22's runtime exhausts the heap on bare yield loops below 10 (see utils/model.ts)
  maxOps: fc.integer({ min: 10, max: 64 })
})

// ---------------------------------------------------------------------------------------------------------------
// the driver
// ---------------------------------------------------------------------------------------------------------------

/** The driver's typed error: a statement that failed, lost its connection, or was stopped by its cancel. */
class StatementError {
  readonly _tag = "StatementError"
  constructor(readonly caller: number, readonly reason: "failed" | "lost" | "cancelled" | "busy" | "unknown") {}
}

interface Connection {
  readonly id: number
  readonly invalidate: (cause: unknown) => void
  /** statements in flight (one at most, or the exclusivity check has fired) */
  readonly inFlight: Array<Running>
  closes: number
  /** a statement on it failed with a disconnect */
  lost: boolean
}

interface Running {
  readonly caller: number
  readonly connection: Connection
  readonly via: "start" | "query"
  readonly startedAt: number
  endsAt: number
  /** stopped by its cancel (ends with `cancelled`) rather than by its own end */
  cancelled: boolean
  abandoned: number
  abandonSeq: number | undefined
  finishedSeq: number | undefined
  readonly seq: number
  readonly answer: (exit: Exit.Exit<ReadonlyArray<Driver.Row>, StatementError>) => void
}

interface Caller {
  readonly id: number
  readonly spec: CallerSpec
  readonly arrivedAt: number
  readonly deadline: number
  readonly interruptAt: number | undefined
  interruptRequested: boolean
  fiber: Fiber.RuntimeFiber<ReadonlyArray<Driver.Row>, StatementError | PoolError> | undefined
  statement: Running | undefined
  exit: Exit.Exit<ReadonlyArray<Driver.Row>, StatementError | PoolError> | undefined
  endedAt: number | undefined
  endedSeq: number | undefined
}

/** What a run saw, beyond its violations (the examples below assert the paths they aim at). */
interface Summary {
  readonly viaStart: number
  readonly viaQuery: number
  readonly abandoned: number
  /** abandoned statements that were started at hand-off (`Driver.start`) */
  readonly abandonedStarted: number
  /** returns the driver reported busy (an abandoned statement still running) */
  readonly busyReturns: number
  readonly timeouts: number
  readonly rejected: number
  readonly interrupted: number
  readonly connections: number
}

const rowsOf = (caller: number): ReadonlyArray<Driver.Row> => [{ caller, sql: `q${caller}` }]

/** Fails after `millis` of real time, whatever the test clock does. */
const realTimeout = (millis: number, message: () => string): Effect.Effect<never, Error> =>
  Effect.async<never, Error>((resume) => {
    const timer = setTimeout(() => resume(Effect.fail(new Error(message()))), millis)
    return Effect.sync(() => clearTimeout(timer))
  })

// ---------------------------------------------------------------------------------------------------------------
// the run
// ---------------------------------------------------------------------------------------------------------------

const runScenario = (
  s: Scenario,
  progress: { step: string } = { step: "setup" }
): Effect.Effect<{ readonly violations: ReadonlyArray<string>; readonly summary: Summary }> =>
  Effect.gen(function*() {
    const clock: Clock.Clock = yield* Effect.clock
    const self = yield* Effect.fiberId
    const now = () => clock.unsafeCurrentTimeMillis()
    const max = s.size + s.maxOverflow
    const violations: Array<string> = []
    const violate = (message: string) => {
      if (violations.length < 30 && !violations.includes(message)) violations.push(message)
    }
    let seq = 0
    let nextConnection = 0
    const connections: Array<Connection> = []
    const pending: Array<Running> = []
    const callers = new Map<number, Caller>()
    /** instants at which a listener's delay ends: the loop stops there, so statements sent then start on time */
    const wakeups: Array<number> = []
    let viaStart = 0
    let viaQuery = 0
    let busyReturns = 0
    let quiet = false
    const at = (step: string) => {
      progress.step = step
    }

    /** A statement's one answer (a later one, after its connection closed under it, is not sent). */
    const finish = (r: Running, exit: Exit.Exit<ReadonlyArray<Driver.Row>, StatementError>) => {
      if (r.finishedSeq !== undefined) return
      const i = pending.indexOf(r)
      if (i >= 0) pending.splice(i, 1)
      const j = r.connection.inFlight.indexOf(r)
      if (j >= 0) r.connection.inFlight.splice(j, 1)
      r.finishedSeq = seq++
      r.answer(exit)
    }

    const begin = (
      connection: Connection,
      params: ReadonlyArray<unknown> | undefined,
      via: "start" | "query",
      answer: (exit: Exit.Exit<ReadonlyArray<Driver.Row>, StatementError>) => void
    ): () => void => {
      const t = now()
      const id = params?.[0] as number
      const caller = callers.get(id)
      if (caller === undefined) {
        violate(`driver: a statement for nobody (${String(params?.[0])})`)
        answer(Exit.fail(new StatementError(-1, "unknown")))
        return () => {}
      }
      if (connection.closes > 0) violate(`exclusive: ${id}'s statement sent on connection ${connection.id}, closed`)
      if (connection.lost) violate(`I7: ${id}'s statement sent on connection ${connection.id}, lost (disconnect)`)
      for (const other of connection.inFlight) {
        violate(
          other.abandoned > 0 ?
            `busy: connection ${connection.id} lent to ${id} while ${other.caller}'s abandoned statement still runs` :
            `exclusive: two statements in flight on connection ${connection.id}: ${other.caller}'s and ${id}'s`
        )
      }
      if (caller.statement !== undefined) violate(`once: a second statement for ${id} (${via})`)
      if (caller.exit !== undefined) violate(`ended: ${id}'s statement sent (${via}) after it ended`)
      if (t > caller.deadline) {
        violate(`I6: ${id}'s checkout ended at ${t} (${via}), past its deadline ${caller.deadline}`)
      }
      const r: Running = {
        caller: id,
        connection,
        via,
        startedAt: t,
        endsAt: t + caller.spec.durationMillis,
        cancelled: false,
        abandoned: 0,
        abandonSeq: undefined,
        finishedSeq: undefined,
        seq: seq++,
        answer
      }
      if (via === "start") viaStart++
      else viaQuery++
      caller.statement ??= r
      connection.inFlight.push(r)
      pending.push(r)
      return () => {
        r.abandoned++
        r.abandonSeq ??= seq++
        if (r.abandoned > 1) violate(`abandon: ${id}'s statement abandoned ${r.abandoned} times`)
        if (r.finishedSeq !== undefined) return
        const stopAt = now() + caller.spec.cancelMillis
        if (stopAt < r.endsAt) {
          r.endsAt = stopAt
          r.cancelled = true
        }
      }
    }

    const resolveDue = (t: number) => {
      const due = pending.filter((r) => r.endsAt <= t).sort((a, b) => a.endsAt - b.endsAt || a.seq - b.seq)
      for (const r of due) {
        if (r.finishedSeq !== undefined) continue
        const caller = callers.get(r.caller)!
        if (r.cancelled) {
          finish(r, Exit.fail(new StatementError(r.caller, "cancelled")))
          continue
        }
        switch (caller.spec.outcome) {
          case "rows":
            finish(r, Exit.succeed(rowsOf(r.caller)))
            break
          case "fail":
            finish(r, Exit.fail(new StatementError(r.caller, "failed")))
            break
          case "lost":
          case "dropped": {
            const error = new StatementError(r.caller, "lost")
            r.connection.lost = true
            // as node-postgres's `error` event: the pool hears it outside any Effect (and closes the connection at
            // once, whose close answers the statement), then from the statement
            if (caller.spec.outcome === "dropped") r.connection.invalidate(error)
            finish(r, Exit.fail(error))
            break
          }
        }
      }
    }

    const driver = Driver.make<Connection, StatementError>({
      dialect: "scripted",
      connect: (context) =>
        Effect.acquireRelease(
          Effect.sync(() => {
            const connection: Connection = {
              id: nextConnection++,
              invalidate: context.invalidate,
              inFlight: [],
              closes: 0,
              lost: false
            }
            connections.push(connection)
            return connection
          }),
          (connection) =>
            Effect.sync(() => {
              connection.closes++
              if (connection.closes > 1) violate(`I3: connection ${connection.id} closed ${connection.closes} times`)
              // closing the session ends what still runs on it
              for (const r of [...connection.inFlight]) {
                // a connection the driver reported lost (`ConnectContext.invalidate`) is closed at once, lent or not
                // (a hard invalidate, although Driver.ts says "on return when lent"), its statement cut short
                if (r.abandoned === 0 && !connection.lost) {
                  violate(`close: connection ${connection.id} closed under ${r.caller}'s statement, not abandoned`)
                }
                finish(r, Exit.fail(new StatementError(r.caller, "lost")))
              }
            })
        ),
      ping: () => Effect.void,
      begin: () => Effect.void,
      commit: () => Effect.void,
      rollback: () => Effect.void,
      // sent and its abandon installed in one uninterruptible step: `Effect.async`'s canceler is not enough, since
      // a fiber that yields (its op budget spent) between `register` and the installation of the canceler and is
      // interrupted there never runs the canceler (effect 3.22), which would leave a statement nobody abandoned
      query: (connection, _sql, params) =>
        Effect.uninterruptibleMask((restore) => {
          let answer: Exit.Exit<ReadonlyArray<Driver.Row>, StatementError> | undefined
          let wake: ((exit: Exit.Exit<ReadonlyArray<Driver.Row>, StatementError>) => void) | undefined
          const abandon = begin(connection, params, "query", (exit) => {
            if (wake !== undefined) wake(exit)
            else answer = exit
          })
          const answered = Effect.async<ReadonlyArray<Driver.Row>, StatementError>((resume) => {
            if (answer !== undefined) resume(answer)
            else wake = resume
          })
          return Effect.onInterrupt(restore(answered), () => Effect.sync(abandon))
        }),
      start: (connection, _sql, params, done) => begin(connection, params, "start", done),
      isDisconnect: (error) => error instanceof StatementError && error.reason === "lost",
      // as the Pg driver's: busy while an abandoned statement runs, and broken once a statement lost the session (a
      // caller interrupted as its statement failed with a disconnect ends interrupted: the pool never sees the error)
      busy: (connection) => {
        const running = connection.inFlight[0]
        if (running === undefined) return connection.lost ? new StatementError(-1, "lost") : undefined
        if (running.abandoned === 0) {
          violate(
            `return: connection ${connection.id} returned while ${running.caller}'s statement runs, not abandoned`
          )
        }
        busyReturns++
        return new StatementError(running.caller, "busy")
      }
    })

    const scope = yield* Scope.make()
    const pool = yield* Scope.extend(
      Pool.make({
        name: uniqueName("query-prop"),
        driver,
        size: s.size,
        maxOverflow: s.maxOverflow,
        timeout: s.timeoutMillis,
        order: s.order,
        policies: s.checks._tag === "MaxUses" ? [Policy.maxUses(s.checks.n)] : []
      }),
      scope
    ).pipe(Effect.orDie)
    let listened = 0
    if (s.checks._tag === "Listener") {
      const script = s.checks.script
      yield* Scope.extend(
        Pool.listen(pool, {
          checkout: (event) =>
            Effect.suspend(() => {
              const connection = event.connection
              if (connection.closes > 0) violate(`listener: connection ${connection.id} checked out, closed`)
              if (connection.lost) violate(`listener: connection ${connection.id} checked out, lost`)
              if (connection.inFlight.length > 0) {
                violate(
                  `busy: connection ${connection.id} checked out while ${
                    connection.inFlight[0]!.caller
                  }'s statement runs`
                )
              }
              if (quiet) return Effect.void
              const step = script[listened++ % script.length]!
              const verdict = step.reject ? Effect.fail(new ConnectionRejected({ reason: "test" })) : Effect.void
              if (step.delayMillis === 0) return verdict
              wakeups.push(now() + step.delayMillis)
              return Effect.zipRight(Effect.sleep(step.delayMillis), verdict)
            })
        }),
        scope
      )
    }

    // -- the loop ---------------------------------------------------------------------------------------------

    const all = () => [...callers.values()]
    const fingerprint = Effect.map(Pool.stats(pool), (stats) =>
      JSON.stringify([
        stats.open,
        stats.opening,
        stats.idle,
        stats.inUse,
        stats.waiting,
        stats.maintained,
        stats.closed,
        pending.length,
        seq,
        all().filter((c) => c.exit !== undefined).length
      ]))
    // with a small yield budget every fiber needs more turns to finish what it started
    const turns = Effect.repeatN(Effect.yieldNow(), 10 * Math.ceil(64 / s.maxOps))
    const settle = Effect.gen(function*() {
      let last = ""
      for (let round = 0, same = 0; same < 2 && round < 200; round++) {
        yield* turns
        const print = yield* fingerprint
        same = print === last ? same + 1 : 0
        last = print
      }
    })

    const observe = Effect.gen(function*() {
      const stats = yield* Pool.stats(pool)
      if (stats.open + stats.opening > max) {
        violate(`I1: open ${stats.open} + opening ${stats.opening} > ${max} at ${now()}`)
      }
      const live = connections.filter((c) => c.closes === 0).length
      if (live > max) violate(`I1: the driver has ${live} connections open > ${max} at ${now()}`)
      if (stats.inUse > stats.open) violate(`count: in use ${stats.inUse} > open ${stats.open}`)
    })

    /** Everything due now: statements that end, interruptions; then the fibers run, until nothing more is due. */
    const processNow = Effect.gen(function*() {
      for (let round = 0; round < 100; round++) {
        const t = now()
        if (!s.interruptsFirst) resolveDue(t)
        for (const c of all()) {
          if (c.interruptAt !== undefined && c.interruptAt <= t && !c.interruptRequested) {
            c.interruptRequested = true
            // sent now, in order with the answers sent at this instant (`Fiber.interruptFork` would send it later)
            if (c.exit === undefined) c.fiber!.unsafeInterruptAsFork(self)
          }
        }
        if (s.interruptsFirst) resolveDue(t)
        yield* settle
        yield* observe
        if (!pending.some((r) => r.endsAt <= now())) return
      }
      violate(`loop: statements keep ending at ${now()}`)
    })

    const nextEvent = (t: number): number => {
      let next = Infinity
      for (const r of pending) if (r.endsAt > t && r.endsAt < next) next = r.endsAt
      for (const c of callers.values()) {
        if (c.interruptAt !== undefined && !c.interruptRequested && c.interruptAt > t && c.interruptAt < next) {
          next = c.interruptAt
        }
      }
      for (const w of wakeups) if (w > t && w < next) next = w
      return next
    }

    const advance = (millis: number) =>
      Effect.gen(function*() {
        const target = now() + millis
        yield* processNow
        while (now() < target) {
          const next = Math.min(target, nextEvent(now()))
          yield* TestClock.adjust(next - now())
          yield* processNow
        }
      })

    const arrive = (id: number, spec: CallerSpec) =>
      Effect.gen(function*() {
        const t = now()
        const timeout = spec.timeoutMillis ?? s.timeoutMillis
        const c: Caller = {
          id,
          spec,
          arrivedAt: t,
          deadline: t + timeout,
          interruptAt: spec.interruptAfter === undefined ? undefined : t + spec.interruptAfter,
          interruptRequested: false,
          fiber: undefined,
          statement: undefined,
          exit: undefined,
          endedAt: undefined,
          endedSeq: undefined
        }
        callers.set(id, c)
        const query = Pool.query(
          pool,
          `q${id}`,
          [id],
          spec.timeoutMillis === undefined ? undefined : { timeout: spec.timeoutMillis }
        )
        const fiber = yield* Effect.fork(query)
        c.fiber = fiber
        // an observer, not `onExit`: a fiber interrupted before its first step runs no finalizer of its own
        fiber.addObserver((exit) => {
          c.exit = exit
          c.endedAt = now()
          c.endedSeq = seq++
        })
      })

    const alive = () => all().some((c) => c.exit === undefined) || pending.length > 0
    const drain = (what: string) =>
      Effect.gen(function*() {
        for (let i = 0; i < 400 && alive(); i++) {
          const next = nextEvent(now())
          yield* advance(next === Infinity ? 250 : next - now())
        }
        if (alive()) {
          violate(
            `hang: ${what}: callers ${
              all().filter((c) => c.exit === undefined).map((c) => c.id)
            } never ended; statements of ${pending.map((r) => r.caller)} still run`
          )
        }
      })

    // -- the scenario -----------------------------------------------------------------------------------------

    const byStep = s.steps.map(() => [] as Array<number>)
    s.callers.forEach((c, i) => byStep[c.step % s.steps.length]!.push(i))
    for (let step = 0; step < s.steps.length; step++) {
      at(`step ${step}`)
      for (const i of byStep[step]!) yield* arrive(i, s.callers[i]!)
      yield* advance(s.steps[step]!)
    }
    at("drain")
    yield* drain("after the steps")

    // -- every caller ended, as it may ----------------------------------------------------------------------

    const rejects = s.checks._tag === "Listener" && s.checks.script.some((x) => x.reject)
    let timeouts = 0
    let rejected = 0
    let interrupted = 0
    let abandoned = 0
    let abandonedStarted = 0
    const judge = (c: Caller) => {
      const exit = c.exit
      const r = c.statement
      if (r !== undefined && r.abandoned > 0) {
        abandoned++
        if (r.via === "start") abandonedStarted++
      }
      if (exit === undefined) return
      if (Exit.isSuccess(exit)) {
        if (r === undefined) violate(`rows: ${c.id} succeeded without its statement`)
        else if (r.abandoned > 0 || r.cancelled) violate(`rows: ${c.id} succeeded with an abandoned statement`)
        if (c.spec.outcome !== "rows") violate(`rows: ${c.id} succeeded, its statement ${c.spec.outcome}`)
        if (JSON.stringify(exit.value) !== JSON.stringify(rowsOf(c.id))) {
          violate(`rows: ${c.id} got ${JSON.stringify(exit.value)}`)
        }
        return
      }
      const cause = exit.cause
      const failure = Cause.failureOption(cause)
      if (failure._tag === "Some") {
        const error = failure.value as { readonly _tag?: string }
        if (error instanceof StatementError) {
          const expected = c.spec.outcome === "fail" ? "failed" : "lost"
          if (error.caller !== c.id) violate(`typed: ${c.id} failed with ${error.caller}'s ${error.reason}`)
          else if (error.reason !== expected) violate(`typed: ${c.id} failed with ${error.reason}, not ${expected}`)
          if (r === undefined || r.finishedSeq === undefined || r.abandoned > 0) {
            violate(`typed: ${c.id} failed with its statement's error, its statement not finished as sent`)
          }
        } else if (error._tag === "PoolTimeoutError") {
          timeouts++
          if (c.endedAt! > c.deadline) violate(`I6: ${c.id} timed out at ${c.endedAt}, its deadline ${c.deadline}`)
          if (c.endedAt! < c.deadline) {
            violate(`I6: ${c.id} timed out at ${c.endedAt}, before its deadline ${c.deadline}`)
          }
          if (r !== undefined) violate(`I6: ${c.id} timed out, its statement sent (${r.via})`)
        } else if (error._tag === "PoolCheckoutRejectedError") {
          rejected++
          if (!rejects) violate(`rejected: ${c.id} rejected, by nobody`)
          if (r !== undefined) violate(`rejected: ${c.id} rejected, its statement sent (${r.via})`)
        } else {
          violate(`typed: ${c.id} failed with ${error._tag ?? String(error)}`)
        }
        return
      }
      if (Cause.isInterruptedOnly(cause)) {
        interrupted++
        if (!c.interruptRequested) violate(`interrupt: ${c.id} interrupted, never asked`)
        if (r !== undefined) {
          const inFlightAtEnd = r.finishedSeq === undefined || r.finishedSeq > c.endedSeq!
          const abandonedBefore = r.abandonSeq !== undefined && r.abandonSeq < c.endedSeq!
          if (inFlightAtEnd && !(r.abandoned === 1 && abandonedBefore)) {
            violate(
              `abandon: ${c.id} interrupted with its statement in flight (${r.via}), abandoned ${r.abandoned} times${
                abandonedBefore || r.abandoned === 0 ? "" : " (after it ended)"
              }`
            )
          }
        }
        return
      }
      violate(`defect: ${c.id}: ${Cause.pretty(cause)}`)
    }
    for (const c of all()) judge(c)

    // -- at rest --------------------------------------------------------------------------------------------

    const atRest = (when: string) =>
      Effect.gen(function*() {
        yield* settle
        const stats = yield* Pool.stats(pool)
        const live = connections.filter((c) => c.closes === 0).length
        if (stats.inUse !== 0) violate(`I3 ${when}: in use ${stats.inUse} at rest`)
        if (stats.waiting !== 0) violate(`I11 ${when}: ${stats.waiting} waiting at rest`)
        if (stats.open > max) violate(`I1 ${when}: open ${stats.open} > ${max} at rest`)
        if (stats.open !== live) violate(`I3 ${when}: the pool has ${stats.open} open, the driver ${live}`)
        for (const r of pending) violate(`rest ${when}: ${r.caller}'s statement still runs`)
      })
    at("rest")
    yield* atRest("after the callers")

    // -- the pool still serves: one more than it can lend at once, so one waits and is handed a connection -------

    at("serves")
    quiet = true
    const first = s.callers.length
    const more = max + 1
    for (let i = 0; i < more; i++) {
      yield* arrive(first + i, {
        step: 0,
        durationMillis: 5,
        outcome: "rows",
        interruptAfter: undefined,
        cancelMillis: 0,
        timeoutMillis: 1_000
      })
    }
    yield* drain("serving afterwards")
    for (let i = 0; i < more; i++) {
      const c = callers.get(first + i)!
      judge(c)
      if (c.exit === undefined || !Exit.isSuccess(c.exit)) {
        violate(
          `serves: ${c.id} did not get its rows afterwards: ${
            c.exit === undefined ? "running" : Cause.pretty(c.exit.cause)
          }`
        )
      }
    }
    yield* atRest("after serving")

    // -- the pool's scope closes: every connection closed exactly once -------------------------------------------

    at("close")
    const closing = yield* Effect.fork(Scope.close(scope, Exit.void))
    for (let i = 0; i < 40 && closing.unsafePoll() === null; i++) {
      yield* settle
      if (closing.unsafePoll() === null) yield* TestClock.adjust(1_000)
    }
    if (closing.unsafePoll() === null) violate("I10: the pool's scope never finished closing")
    for (const c of connections) {
      if (c.closes !== 1) violate(`I3: connection ${c.id} closed ${c.closes} times after the pool closed`)
    }
    for (const r of pending) violate(`close: ${r.caller}'s statement still runs after the pool closed`)

    return {
      violations,
      summary: {
        viaStart,
        viaQuery,
        abandoned,
        abandonedStarted,
        busyReturns,
        timeouts,
        rejected,
        interrupted,
        connections: connections.length
      }
    }
  }).pipe(Effect.withMaxOpsBeforeYield(s.maxOps))

/** How long (real time) a scenario may run before it counts as hung: runs take milliseconds. */
const hangMillis = 20_000

/** Runs a scenario and fails with its violations, or with where it hung. */
const run = (s: Scenario): Effect.Effect<Summary> => {
  const progress = { step: "setup" }
  return Effect.raceFirst(
    Effect.disconnect(runScenario(s, progress)),
    realTimeout(hangMillis, () => `hung at ${progress.step}: ${JSON.stringify(s)}`)
  ).pipe(
    Effect.orDie,
    Effect.map(({ summary, violations }) => {
      if (violations.length > 0) assert.fail(`${violations.join("\n")}\nin ${JSON.stringify(s)}`)
      return summary
    })
  )
}

// ---------------------------------------------------------------------------------------------------------------
// the tests
// ---------------------------------------------------------------------------------------------------------------

const caller = (step: number, durationMillis: number, extra: Partial<CallerSpec> = {}): CallerSpec => ({
  step,
  durationMillis,
  outcome: "rows",
  interruptAfter: undefined,
  cancelMillis: 5,
  timeoutMillis: undefined,
  ...extra
})

const base: Omit<Scenario, "callers" | "steps"> = {
  size: 1,
  maxOverflow: 0,
  timeoutMillis: 250,
  order: "fifo",
  checks: { _tag: "None" },
  interruptsFirst: false,
  maxOps: 64
}

describe("Pool.query properties", () => {
  it.effect.prop(
    "exclusive, every caller ends as it may, bounded, nothing left at rest, still serving",
    [scenario],
    ([s]) => Effect.asVoid(run(s)),
    { fastCheck: { numRuns: runs(100) }, timeout: 60_000 + runs(100) * 300 }
  )

  describe("the paths the property runs", () => {
    it.effect("a waiting statement is started at hand-off; its interrupted caller abandons it, once", () =>
      Effect.gen(function*() {
        const summary = yield* run({
          ...base,
          callers: [caller(0, 50), caller(0, 50, { interruptAfter: 70 }), caller(0, 10, { outcome: "fail" })],
          steps: [0]
        })
        assert.isAtLeast(summary.viaStart, 2)
        assert.strictEqual(summary.abandoned, 1)
        assert.strictEqual(summary.abandonedStarted, 1)
        assert.strictEqual(summary.busyReturns, 1, "still running when returned: the connection is not lent again")
        assert.strictEqual(summary.interrupted, 1)
      }))

    it.effect("with a checkout listener the caller validates first, then runs the statement itself", () =>
      Effect.gen(function*() {
        const summary = yield* run({
          ...base,
          checks: { _tag: "Listener", script: [{ reject: false, delayMillis: 5 }, { reject: true, delayMillis: 0 }] },
          callers: [caller(0, 30), caller(0, 30, { interruptAfter: 50 }), caller(0, 30)],
          steps: [0]
        })
        assert.strictEqual(summary.viaStart, 0)
        assert.isAtLeast(summary.viaQuery, 3)
        assert.strictEqual(summary.abandoned, 1)
        assert.strictEqual(summary.busyReturns, 1)
      }))

    it.effect("a waiter times out at its deadline, never after, and nothing is sent for it", () =>
      Effect.gen(function*() {
        const summary = yield* run({
          ...base,
          timeoutMillis: 20,
          callers: [caller(0, 100), caller(0, 10), caller(0, 10, { timeoutMillis: 120 })],
          steps: [0]
        })
        assert.strictEqual(summary.timeouts, 1)
      }))

    it.effect("a lost connection is closed, never lent again; the next waiter gets a new one at hand-off", () =>
      Effect.gen(function*() {
        const summary = yield* run({
          ...base,
          checks: { _tag: "MaxUses", n: 3 },
          callers: [
            caller(0, 10, { outcome: "lost" }),
            caller(0, 10),
            caller(0, 10, { outcome: "dropped" }),
            caller(0, 10)
          ],
          steps: [0]
        })
        assert.strictEqual(summary.connections, 3)
        assert.isAtLeast(summary.viaStart, 4)
      }))
  })
})
