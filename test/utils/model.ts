/**
 * The model-based test of the core: random commands over the Memory driver, under a random mix of policies and
 * listeners, with the invariants of RELIABILITY.md (I1–I12), the event law and "no waiter past its deadline" checked
 * after each command and at the end. Shared by the property test and by anyone reproducing a counterexample:
 * `runScenario` answers the violations found, `run` asserts there are none.
 *
 * Each violation starts with the name of what it breaks (`I1` … `I12`, `count`, `law`, `stream`), so a search for
 * counterexamples can aim at one of them.
 */
import { Cause, Clock, Deferred, Effect, Exit, FastCheck as fc, Fiber, FiberRef, Option, Scope, Stream } from "effect"
import { TestClock } from "effect"
import * as assert from "node:assert"
import * as Memory from "../../src/Driver/Memory.js"
import * as Policy from "../../src/Policy.js"
import * as Pool from "../../src/Pool.js"
import { ConnectionRejected } from "../../src/PoolError.js"
import type { Listeners, PoolEvent } from "../../src/PoolEvent.js"
import { uniqueName } from "./pool.js"

// ---------------------------------------------------------------------------------------------------------------
// scenarios
// ---------------------------------------------------------------------------------------------------------------

/** One answer of a custom checkout validation: pass, reject, take `sleep` ms (TestClock), or hang. */
export type Step = "ok" | "reject" | "hang" | { readonly sleep: number }

/**
 * The policies a scenario may use (a random subset, in random order). Scripts are read in call order, cyclically,
 * so a one-element script applies to every call.
 */
export type PolicySpec =
  | { readonly _tag: "Reset"; readonly mode: "rollback" | "commit" }
  | { readonly _tag: "PrePing"; readonly timeoutMillis: number }
  | { readonly _tag: "Recycle"; readonly maxAgeMillis: number }
  | { readonly _tag: "MaxUses"; readonly n: number }
  /** `Policy.onConnect`: a `SET` (ok), a typed `MemoryError` (fail), or 300 ms of setup (slow) */
  | { readonly _tag: "OnConnect"; readonly script: ReadonlyArray<"ok" | "fail" | "slow"> }
  /** a `Policy.make` whose `onConnect` sometimes fails with `ConnectionRejected` */
  | { readonly _tag: "ConnectCheck"; readonly script: ReadonlyArray<"ok" | "reject"> }
  /** a `Policy.make` whose `onCheckout` follows the script */
  | { readonly _tag: "Validate"; readonly script: ReadonlyArray<Step> }
  /** a background policy: every `everyMillis`, a `forEachIdle` pass that pings (after `pingMillis`) */
  | { readonly _tag: "Keepalive"; readonly everyMillis: number; readonly pingMillis: number }

export type Command =
  | { readonly _tag: "Acquire"; readonly work?: "none" | "tx" | undefined }
  | { readonly _tag: "Release"; readonly k: number }
  | { readonly _tag: "Interrupt"; readonly k: number }
  | { readonly _tag: "Invalidate"; readonly k: number; readonly soft: boolean }
  | { readonly _tag: "Kill"; readonly k: number; readonly notify: boolean }
  | { readonly _tag: "Gate"; readonly gate: Memory.Gate }
  | { readonly _tag: "QueryFault"; readonly gate: "fail" | "disconnect" }
  | { readonly _tag: "Advance"; readonly millis: number }
  | { readonly _tag: "InvalidateAll" }
  | { readonly _tag: "Dispose" }
  | { readonly _tag: "Detach"; readonly k: number }
  /** registers a listener in a child scope; its checkout handler rejects when its script says so */
  | { readonly _tag: "Listen"; readonly rejects: ReadonlyArray<boolean> }
  /** closes the scope of the k-th listener still registered */
  | { readonly _tag: "Unlisten"; readonly k: number }

export interface Scenario {
  readonly size: number
  readonly maxOverflow: number
  readonly min: number
  readonly timeoutMillis: number
  readonly connectTimeout: number | undefined
  readonly order: "fifo" | "lifo"
  readonly maxOps: number
  readonly commands: ReadonlyArray<Command>
  readonly policies?: ReadonlyArray<PolicySpec> | undefined
  /** a listener for the whole run and a `Pool.events` subscriber, which must hear the same sequence */
  readonly observe?: boolean | undefined
  /** a second whole-run listener, whose checkout handler rejects when its script says so */
  readonly rejector?: ReadonlyArray<boolean> | undefined
}

/** Mostly "ok", so that scripts read cyclically still let most checkouts and connects through. */
const step: fc.Arbitrary<Step> = fc.oneof(
  { arbitrary: fc.constant<Step>("ok"), weight: 4 },
  { arbitrary: fc.constant<Step>("reject"), weight: 1 },
  { arbitrary: fc.constant<Step>("hang"), weight: 1 },
  { arbitrary: fc.record({ sleep: fc.constantFrom(50, 400, 1200) }), weight: 2 }
)

const weighted = <A>(...choices: ReadonlyArray<readonly [A, number]>): fc.Arbitrary<A> =>
  fc.oneof(...choices.map(([value, weight]) => ({ arbitrary: fc.constant(value), weight })))

/** A listener's verdicts: mostly pass. */
const rarely: fc.Arbitrary<boolean> = weighted([false, 3], [true, 1])

const policyKinds: ReadonlyArray<fc.Arbitrary<PolicySpec>> = [
  fc.record({ _tag: fc.constant("Reset" as const), mode: fc.constantFrom("rollback" as const, "commit" as const) }),
  fc.record({ _tag: fc.constant("PrePing" as const), timeoutMillis: fc.constantFrom(100, 1000) }),
  fc.record({ _tag: fc.constant("Recycle" as const), maxAgeMillis: fc.constantFrom(500, 3000) }),
  fc.record({ _tag: fc.constant("MaxUses" as const), n: fc.integer({ min: 1, max: 3 }) }),
  fc.record({
    _tag: fc.constant("OnConnect" as const),
    script: fc.array(weighted(["ok" as const, 4], ["fail" as const, 1], ["slow" as const, 1]), {
      minLength: 1,
      maxLength: 5
    })
  }),
  fc.record({
    _tag: fc.constant("ConnectCheck" as const),
    script: fc.array(weighted(["ok" as const, 4], ["reject" as const, 1]), { minLength: 1, maxLength: 5 })
  }),
  fc.record({ _tag: fc.constant("Validate" as const), script: fc.array(step, { minLength: 1, maxLength: 6 }) }),
  fc.record({
    _tag: fc.constant("Keepalive" as const),
    everyMillis: fc.constantFrom(500, 1500),
    pingMillis: fc.constantFrom(0, 100)
  })
]

/** A random subset of the policy kinds (each present one time in three), in a random order. */
export const policies: fc.Arbitrary<ReadonlyArray<PolicySpec>> = fc.tuple(
  fc.tuple(...policyKinds.map((kind) => fc.option(kind, { freq: 2, nil: undefined }))),
  fc.shuffledSubarray(policyKinds.map((_, i) => i), { minLength: policyKinds.length })
).map(([chosen, order]) => order.flatMap((i) => chosen[i] === undefined ? [] : [chosen[i]]))

export const command: fc.Arbitrary<Command> = fc.oneof(
  {
    arbitrary: fc.record({
      _tag: fc.constant("Acquire" as const),
      work: fc.constantFrom("none" as const, "tx" as const)
    }),
    weight: 8
  },
  { arbitrary: fc.record({ _tag: fc.constant("Release" as const), k: fc.nat(20) }), weight: 6 },
  { arbitrary: fc.record({ _tag: fc.constant("Interrupt" as const), k: fc.nat(20) }), weight: 2 },
  {
    arbitrary: fc.record({ _tag: fc.constant("Invalidate" as const), k: fc.nat(20), soft: fc.boolean() }),
    weight: 1
  },
  { arbitrary: fc.record({ _tag: fc.constant("Kill" as const), k: fc.nat(20), notify: fc.boolean() }), weight: 1 },
  { arbitrary: fc.record({ _tag: fc.constant("Gate" as const), gate: Memory.arbitraries.gate }), weight: 2 },
  {
    arbitrary: fc.record({
      _tag: fc.constant("QueryFault" as const),
      gate: fc.constantFrom("fail" as const, "disconnect" as const)
    }),
    weight: 1
  },
  {
    arbitrary: fc.record({ _tag: fc.constant("Advance" as const), millis: fc.integer({ min: 1, max: 1500 }) }),
    weight: 3
  },
  { arbitrary: fc.constant({ _tag: "InvalidateAll" as const }), weight: 1 },
  { arbitrary: fc.constant({ _tag: "Dispose" as const }), weight: 1 },
  { arbitrary: fc.record({ _tag: fc.constant("Detach" as const), k: fc.nat(20) }), weight: 1 },
  {
    arbitrary: fc.record({ _tag: fc.constant("Listen" as const), rejects: fc.array(rarely, { maxLength: 3 }) }),
    weight: 1
  },
  { arbitrary: fc.record({ _tag: fc.constant("Unlisten" as const), k: fc.nat(5) }), weight: 1 }
)

export const scenario: fc.Arbitrary<Scenario> = fc.record({
  size: fc.integer({ min: 0, max: 3 }),
  maxOverflow: fc.integer({ min: 0, max: 3 }),
  min: fc.integer({ min: 0, max: 2 }),
  timeoutMillis: fc.constantFrom(300, 1000, 5000),
  connectTimeout: fc.constantFrom<number | undefined>(undefined, 2000),
  order: fc.constantFrom("fifo" as const, "lifo" as const),
  // I12 asks for budgets 3..64, but Effect 3.22's own runtime exhausts the heap on a bare
  // `Effect.repeatN(Effect.yieldNow(), 10)` at withMaxOpsBeforeYield <= 9, so the sweep starts at 10
  maxOps: fc.integer({ min: 10, max: 64 }),
  commands: fc.array(command, { minLength: 1, maxLength: 40, size: "medium" }),
  policies,
  observe: fc.boolean(),
  rejector: fc.option(fc.array(rarely, { minLength: 1, maxLength: 3 }), { nil: undefined })
}).filter((s) => s.size + s.maxOverflow >= 1 && s.min <= s.size)

// ---------------------------------------------------------------------------------------------------------------
// the run
// ---------------------------------------------------------------------------------------------------------------

type C = Memory.MemoryConnection

interface Borrower {
  readonly id: number
  readonly arrivedAt: number
  readonly work: "none" | "tx"
  state: "waiting" | "holding" | "done"
  connection: C | undefined
  readonly release: Deferred.Deferred<void>
  fiber: Fiber.RuntimeFiber<void> | undefined
  /** TestClock time at which the checkout ended with a connection (the start of the hold) */
  grantedAt: number | undefined
  /** TestClock time at which the borrower's fiber ended */
  endedAt: number | undefined
  exit: Exit.Exit<void, unknown> | undefined
  /** the label of the command that interrupted it */
  interrupted: string | undefined
  /** no step of its checkout took time or rejected a connection (see I5) */
  plain: boolean
  detached: boolean
}

interface Heard {
  readonly name: string
  readonly events: Array<PoolEvent<C>>
  readonly scope: Scope.CloseableScope
  readonly wholeRun: boolean
  open: boolean
}

/** The errors a checkout may fail with (I9): the pool's declared errors and the Memory driver's. */
const typedErrors = new Set([
  "PoolTimeoutError",
  "PoolClosedError",
  "PoolExhaustedError",
  "PoolCheckoutRejectedError",
  "MemoryError"
])

/** Close reasons of a connection refused at checkout. */
const checkoutRejections = new Set(["rejected", "expired", "maxUses"])

/** Which borrower a hook or listener runs for: set around each borrower's checkout, `-1` elsewhere. */
const currentBorrower = FiberRef.unsafeMake(-1)

const describeEvent = (e: PoolEvent<C> | undefined): string =>
  e === undefined ? "nothing" : "record" in e ? `${e._tag}(${e.record.id})` : e._tag

/** Runs a scenario and answers the violations it found (empty when the pool kept every invariant). */
export const runScenario = (s: Scenario): Effect.Effect<ReadonlyArray<string>> =>
  Effect.gen(function*() {
    // with a small yield budget every fiber needs more turns to finish what it started
    const turns = Effect.repeatN(Effect.yieldNow(), 20 * Math.ceil(64 / s.maxOps))
    const max = s.size + s.maxOverflow
    const specs = s.policies ?? []
    const resetSpec = specs.find((p) => p._tag === "Reset")
    const resetStatement = resetSpec === undefined ? undefined : resetSpec.mode === "rollback" ? "ROLLBACK" : "COMMIT"
    const prePing = specs.some((p) => p._tag === "PrePing")
    const db = yield* Memory.make()
    yield* db.applyPlan({ connects: [], queries: [], slowMillis: 700 })

    const borrowers: Array<Borrower> = []
    const holders = new Map<number, number>()
    const grants: Array<number> = []
    /** borrowers whose place in the grant order is taken */
    const granted = new Set<number>()
    const violations: Array<string> = []
    const violate = (message: string) => {
      if (violations.length < 30 && !violations.includes(message)) violations.push(message)
    }
    // a "hang" of a validation: it answers only when the run is over, so that the test can end
    const hang = yield* Deferred.make<void>()
    let finished = false
    // a logical clock ordering kills, pings and lendings
    let tick = 0
    const killedAt = new Map<number, number>()
    const pingedAt = new Map<number, number>()
    const lentAt = new Map<number, number>()
    /** where each connection's statements stood when its last borrower let go, and whether a transaction was open */
    const returnMark = new Map<number, { readonly index: number; readonly inTransaction: boolean }>()
    /** checkout hooks in progress (they may take time or hang), by a token, with their connection */
    const validating = new Map<number, number>()
    let nextToken = 0
    const detachedIds = new Set<number>()
    /** Checkout events a listener rejected: not followed by a Checkin, and left out of the stream comparison */
    const rejected = new WeakSet<PoolEvent<C>>()

    /** A step for borrower `who` took time or rejected: it is no longer plain (I5). Unknown borrower: all waiting. */
    const taint = (who: number) => {
      if (who >= 0 && borrowers[who] !== undefined) borrowers[who].plain = false
      else for (const b of borrowers) if (b.state === "waiting") b.plain = false
    }

    /** Wraps a checkout policy so that the model sees which borrower it runs for, how long it takes and its verdict. */
    const tracked = (
      policy: Policy.Policy<C, Memory.MemoryError>,
      ping: boolean
    ): Policy.Policy<C, Memory.MemoryError> =>
      Policy.make({
        ...policy,
        onCheckout: (context) =>
          Effect.flatMap(FiberRef.get(currentBorrower), (who) =>
            Effect.flatMap(Clock.currentTimeMillis, (start) => {
              const token = nextToken++
              validating.set(token, context.connection.id)
              // the pool lends in grant order; validations then run side by side and may finish in any order, so a
              // borrower's place in the grant order is taken when its first validation starts
              if (who >= 0 && !granted.has(who)) {
                granted.add(who)
                grants.push(who)
              }
              if (ping) pingedAt.set(context.connection.id, ++tick)
              return Effect.onExit(
                Effect.suspend(() => policy.onCheckout!(context)),
                (exit) =>
                  Effect.map(Clock.currentTimeMillis, (now) => {
                    validating.delete(token)
                    if (Exit.isFailure(exit) || now > start) taint(who)
                  })
              )
            }))
      })

    const cycle = <A>(script: ReadonlyArray<A>, fallback: A) => {
      let i = 0
      return (): A => script.length === 0 ? fallback : script[i++ % script.length]!
    }

    const build = (spec: PolicySpec): Policy.Policy<C, Memory.MemoryError> => {
      switch (spec._tag) {
        case "Reset":
          return Policy.resetOnReturn(spec.mode)
        case "PrePing":
          return tracked(Policy.prePing({ timeout: spec.timeoutMillis }), true)
        case "Recycle":
          return tracked(Policy.recycle(spec.maxAgeMillis), false)
        case "MaxUses":
          return tracked(Policy.maxUses(spec.n), false)
        case "OnConnect": {
          const next = cycle(spec.script, "ok")
          return Policy.onConnect((connection) =>
            Effect.suspend(() => {
              switch (next()) {
                case "ok":
                  return Effect.asVoid(db.driver.query(connection, "SET application_name = 'model'"))
                case "fail":
                  return Effect.fail(new Memory.MemoryError({ reason: "ConnectFailed", message: "onConnect (model)" }))
                case "slow":
                  return Effect.sleep(300)
              }
            })
          )
        }
        case "ConnectCheck": {
          const next = cycle(spec.script, "ok")
          return Policy.make<C, Memory.MemoryError>({
            name: "connectCheck",
            onConnect: () =>
              Effect.suspend(() =>
                next() === "reject" ? Effect.fail(new ConnectionRejected({ reason: "connectCheck" })) : Effect.void
              )
          })
        }
        case "Validate": {
          const next = cycle(spec.script, "ok")
          return tracked(
            Policy.make({
              name: "validate",
              onCheckout: () =>
                Effect.suspend(() => {
                  const answer = next()
                  if (answer === "ok") return Effect.void
                  if (answer === "reject") return Effect.fail(new ConnectionRejected({ reason: "validate" }))
                  if (answer === "hang") return Deferred.await(hang)
                  return Effect.sleep(answer.sleep)
                })
            }),
            false
          )
        }
        case "Keepalive":
          return Policy.make({
            name: "keepalive",
            background: (handle) =>
              Effect.forever(Effect.zipRight(
                Effect.sleep(spec.everyMillis),
                handle.forEachIdle((context) =>
                  Effect.zipRight(
                    spec.pingMillis > 0 ? Effect.sleep(spec.pingMillis) : Effect.void,
                    Effect.mapError(
                      context.driver.ping(context.connection),
                      (cause) => new ConnectionRejected({ reason: "keepalive", cause })
                    )
                  )
                )
              ))
          })
      }
    }

    const scope = yield* Scope.make()
    const pool = yield* Scope.extend(
      Pool.make({
        driver: db.driver,
        name: uniqueName("prop"),
        size: s.size,
        maxOverflow: s.maxOverflow,
        min: s.min,
        timeout: s.timeoutMillis,
        order: s.order,
        ...(s.connectTimeout !== undefined ? { connectTimeout: s.connectTimeout } : {}),
        shutdownTimeout: "10 seconds",
        policies: specs.map(build)
      }),
      scope
    ).pipe(Effect.orDie)

    // listeners: each hears into its own log, from the moment it listens
    const heard: Array<Heard> = []
    const listen = (name: string, rejects: ReadonlyArray<boolean>, wholeRun: boolean) =>
      Effect.gen(function*() {
        const events: Array<PoolEvent<C>> = []
        const hear = (e: PoolEvent<C>): Effect.Effect<void> =>
          Effect.sync(() => {
            events.push(e)
          })
        const next = cycle(rejects, false)
        const listeners: Listeners<C> = {
          connect: hear,
          firstConnect: hear,
          connectFailed: hear,
          checkin: hear,
          reset: hear,
          invalidate: hear,
          softInvalidate: hear,
          close: hear,
          detach: hear,
          closeDetached: hear,
          checkoutTimeout: hear,
          checkout: (e) =>
            Effect.suspend(() => {
              events.push(e)
              if (!next()) return Effect.void
              rejected.add(e)
              return Effect.flatMap(FiberRef.get(currentBorrower), (who) => {
                taint(who)
                return Effect.fail(new ConnectionRejected({ reason: `listener ${name}` }))
              })
            })
        }
        const listenerScope = yield* Scope.make()
        yield* Scope.extend(Pool.listen(pool, listeners), listenerScope)
        heard.push({ name, events, scope: listenerScope, wholeRun, open: true })
      })
    // the whole-run listeners and the stream subscriber start together, before anything runs
    const streamed: Array<PoolEvent<C>> = []
    let streamFiber: Fiber.RuntimeFiber<void> | undefined
    if (s.observe === true) {
      yield* listen("recorder", [], true)
      streamFiber = yield* Effect.fork(Stream.runForEach(Pool.events(pool), (e) =>
        Effect.sync(() => {
          streamed.push(e)
        })))
    }
    if (s.rejector !== undefined) yield* listen("rejector", s.rejector, true)
    const detachedScope = yield* Scope.make()
    let nextId = 0

    /**
     * Lets every fiber that can run do so (hand-offs, validations, connects, closes, listeners) before the model
     * looks: turns until what the model can see has stayed the same for three rounds in a row.
     */
    const fingerprint = Effect.map(
      Effect.all([Pool.stats(pool), db.stats]),
      (stats) =>
        JSON.stringify([
          stats,
          borrowers.map((b) => b.state),
          heard.map((h) => h.events.length),
          streamed.length,
          validating.size
        ])
    )
    const settle = Effect.gen(function*() {
      let last = ""
      for (let round = 0, same = 0; same < 3 && round < 200; round++) {
        yield* turns
        const now = yield* fingerprint
        same = now === last ? same + 1 : 0
        last = now
      }
    })

    const acquire = (work: "none" | "tx") =>
      Effect.gen(function*() {
        const now = yield* TestClock.currentTimeMillis
        const b: Borrower = {
          id: nextId++,
          arrivedAt: now,
          work,
          state: "waiting",
          connection: undefined,
          release: yield* Deferred.make<void>(),
          fiber: undefined,
          grantedAt: undefined,
          endedAt: undefined,
          exit: undefined,
          interrupted: undefined,
          plain: true,
          detached: false
        }
        borrowers.push(b)
        const hold = (connection: C) =>
          Effect.gen(function*() {
            b.grantedAt = yield* TestClock.currentTimeMillis
            if (!finished) {
              const holder = holders.get(connection.id)
              if (holder !== undefined) violate(`I2: connection ${connection.id} lent to ${holder} and ${b.id}`)
              if (connection.closed) violate(`I7: lent a closed connection ${connection.id} to ${b.id}`)
              if (prePing) {
                const killed = killedAt.get(connection.id)
                const pinged = pingedAt.get(connection.id) ?? -1
                if (pinged < (lentAt.get(connection.id) ?? 0)) {
                  violate(`I7: connection ${connection.id} lent to ${b.id} without a pre-ping`)
                } else if (killed !== undefined && killed < pinged) {
                  violate(`I7: connection ${connection.id}, killed before its pre-ping, lent to ${b.id}`)
                }
              }
              if (resetStatement !== undefined) {
                const mark = returnMark.get(connection.id)
                if (mark !== undefined) {
                  const resets = connection.statements.slice(mark.index).filter((sql) =>
                    sql.trim().toUpperCase() === resetStatement
                  ).length
                  // a driver that knows no transaction is open may skip the statement (Driver.inTransaction); more
                  // than one is fine here (a checkout interrupted between its validation and its work is a return
                  // too): that every return has exactly one reset is checked on the Reset events, below
                  if (resets === 0 && (db.driver.inTransaction === undefined || mark.inTransaction)) {
                    violate(`I8: connection ${connection.id} lent to ${b.id} without a reset since its return`)
                  }
                }
                if (connection.inTransaction) violate(`I8: connection ${connection.id} lent in a transaction`)
              }
            }
            lentAt.set(connection.id, ++tick)
            holders.set(connection.id, b.id)
            if (!granted.has(b.id)) {
              granted.add(b.id)
              grants.push(b.id)
            }
            b.connection = connection
            b.state = "holding"
            if (b.work === "tx") {
              yield* Effect.ignore(db.driver.query(connection, "BEGIN"))
              yield* Effect.ignore(db.driver.query(connection, `INSERT INTO t VALUES (${b.id})`))
            }
            yield* Effect.ensuring(
              Deferred.await(b.release),
              Effect.sync(() => {
                if (holders.get(connection.id) === b.id) holders.delete(connection.id)
                returnMark.set(connection.id, {
                  index: connection.statements.length,
                  inTransaction: connection.inTransaction
                })
              })
            )
          })
        // both checkout forms, alternating: `get` (a scope) and `use` (its own wait-and-run path)
        const checkout = b.id % 2 === 0 ? Effect.scoped(Effect.flatMap(Pool.get(pool), hold)) : Pool.use(pool, hold)
        b.fiber = yield* Effect.fork(
          Effect.locally(checkout, currentBorrower, b.id).pipe(
            // a finalizer, so that it also runs for an interrupted borrower
            Effect.onExit((exit) =>
              Effect.map(TestClock.currentTimeMillis, (now) => {
                b.state = "done"
                b.endedAt = now
                b.exit = exit
              })
            ),
            Effect.ignore
          )
        )
      })

    const pick = (state: Borrower["state"], k: number) => {
      const candidates = borrowers.filter((b) => b.state === state)
      return candidates.length === 0 ? undefined : candidates[k % candidates.length]
    }

    const detachedOpen = Effect.map(db.connections, (cs) => cs.filter((c) => detachedIds.has(c.id)).length)

    const check = (label: string) =>
      Effect.gen(function*() {
        const stats = yield* Pool.stats(pool)
        const server = yield* db.stats
        const now = yield* TestClock.currentTimeMillis
        // the server's connections that are the pool's (detached ones belong to their borrowers)
        const serverOpen = server.open - (yield* detachedOpen)
        // I1: bounded
        if (stats.open + stats.opening > max) violate(`I1 ${label}: ${stats.open}+${stats.opening} > ${max}`)
        if (serverOpen > max) violate(`I1 ${label}: server has ${serverOpen} > ${max}`)
        // the pool's count and the server's agree at rest (a connection in its onConnect is opening for the pool)
        if (serverOpen < stats.open || serverOpen > stats.open + stats.opening) {
          violate(`count ${label}: pool ${stats.open} open + ${stats.opening} opening vs server ${serverOpen}`)
        }
        // I4: work-conserving at rest
        if (stats.idle > 0 && stats.waiting > 0) violate(`I4 ${label}: idle ${stats.idle} with waiters`)
        // (unless backing off: after a failed connect the next waits on the backoff schedule, one probe at a time)
        if (stats.waiting > stats.opening && stats.open + stats.opening < max && !stats.backingOff) {
          violate(`I4 ${label}: ${stats.waiting} waiting, ${stats.opening} opening, room left`)
        }
        for (const b of borrowers) {
          // I6: no waiter past its deadline
          if (b.state === "waiting" && now - b.arrivedAt >= s.timeoutMillis) {
            violate(`I6 ${label}: borrower ${b.id} still waiting ${now - b.arrivedAt} ms`)
          }
          // I6: an interrupted checkout ends at once, whatever its validation does
          if (b.interrupted !== undefined && b.state !== "done") {
            violate(`I6 ${label}: borrower ${b.id}, interrupted ${b.interrupted}, still running`)
          }
        }
        // I11: the queue holds the borrowers still waiting, but for those whose connection is being validated
        const waiting = borrowers.filter((b) => b.state === "waiting").length
        if (stats.waiting > waiting || stats.waiting < waiting - validating.size) {
          violate(`I11 ${label}: queue ${stats.waiting} vs waiting ${waiting} (${validating.size} validating)`)
        }
        // in use: every borrower holding a connection the pool has not closed underneath it (hard invalidation)
        // nor detached, and at most the connections being validated on top; maintenance is not a checkout
        const lent = borrowers.filter((b) =>
          b.state === "holding" && b.connection !== undefined && !b.connection.closed && !b.detached
        ).length
        if (stats.inUse < lent || stats.inUse > lent + validating.size) {
          violate(`in use ${label}: ${stats.inUse} vs ${lent} holders (${validating.size} validating)`)
        }
      })

    yield* settle
    // where the stream comparison starts: the subscription is surely in place, and everything heard so far arrived
    const recorder = heard.find((h) => h.name === "recorder")
    const streamFrom = streamed.length
    const heardFrom = new Map(heard.map((h) => [h, h.events.length] as const))
    let listenerCount = 0

    for (const [i, c] of s.commands.entries()) {
      const label = `after #${i} ${c._tag}`
      switch (c._tag) {
        case "Acquire":
          yield* acquire(c.work ?? "none")
          break
        case "Release": {
          const b = pick("holding", c.k)
          if (b !== undefined) yield* Deferred.succeed(b.release, undefined)
          break
        }
        case "Interrupt": {
          const candidates = borrowers.filter((b) => b.state !== "done")
          const b = candidates.length === 0 ? undefined : candidates[c.k % candidates.length]
          if (b?.fiber !== undefined) {
            b.interrupted ??= `at #${i}`
            // forked: an interruption the pool ignores must not block the test
            yield* Fiber.interruptFork(b.fiber)
          }
          break
        }
        case "Invalidate": {
          const b = pick("holding", c.k)
          if (b?.connection !== undefined) yield* Effect.ignore(Pool.invalidate(pool, b.connection, { soft: c.soft }))
          break
        }
        case "Kill": {
          const connections = (yield* db.connections).filter((x) => !detachedIds.has(x.id))
          const target = connections.length === 0 ? undefined : connections[c.k % connections.length]!
          if (target !== undefined) {
            if (!killedAt.has(target.id) && target.alive) killedAt.set(target.id, ++tick)
            yield* db.kill(target, { notify: c.notify })
          }
          break
        }
        case "Gate":
          yield* db.applyPlan({ connects: [c.gate], queries: [], slowMillis: 700 })
          break
        case "QueryFault":
          yield* db.applyPlan({ connects: [], queries: [c.gate], slowMillis: 700 })
          break
        case "Advance":
          yield* TestClock.adjust(c.millis)
          break
        case "InvalidateAll":
          yield* Pool.invalidateAll(pool)
          break
        case "Dispose":
          yield* Pool.dispose(pool)
          break
        case "Detach": {
          const b = pick("holding", c.k)
          if (b?.connection !== undefined && !b.detached && !b.connection.closed) {
            const connection = b.connection
            const exit = yield* Effect.exit(Scope.extend(Pool.detach(pool, connection), detachedScope))
            if (Exit.isSuccess(exit)) {
              b.detached = true
              detachedIds.add(connection.id)
            }
          }
          break
        }
        case "Listen":
          yield* listen(`listener ${listenerCount++} (from #${i})`, c.rejects, false)
          break
        case "Unlisten": {
          const registered = heard.filter((h) => h.open && !h.wholeRun)
          const h = registered.length === 0 ? undefined : registered[c.k % registered.length]!
          if (h !== undefined) {
            h.open = false
            yield* Scope.close(h.scope, Exit.void)
          }
          break
        }
      }
      yield* settle
      yield* check(label)
    }

    // I5: FIFO among plain borrowers. A plain borrower is one whose checkout steps (policies' validations, checkout
    // listeners) all passed at once: its checkout waited in the queue and nowhere else. A checkout whose connection
    // was rejected goes back to the front of the queue (it keeps its place, so nobody who arrived after it can take
    // its turn while it is queued), but while its connection is being validated and closed it is out of the queue, and
    // a borrower queued behind it may be served meanwhile; likewise a validation that takes time lets others be
    // served first. Such borrowers are not held to arrival order; what they are held to is their first deadline (I6).
    // So: the plain borrowers that were granted a connection got it in arrival order.
    const plainGrants = grants.filter((id) => borrowers[id]!.plain)
    for (let i = 1; i < plainGrants.length; i++) {
      if (plainGrants[i]! < plainGrants[i - 1]!) {
        violate(`I5: granted ${plainGrants[i]} after ${plainGrants[i - 1]} (plain grants ${plainGrants.join(",")})`)
        break
      }
    }

    // I10: shutdown — waiters end at once, new checkouts fail, lent connections close when returned
    const heardAtShutdown = recorder?.events.length ?? 0
    const closing = yield* Effect.fork(Scope.close(scope, Exit.void))
    yield* settle
    const late = yield* Effect.exit(Pool.use(pool, () => Effect.void))
    if (!(Exit.isFailure(late) && String(late.cause).includes("PoolClosedError"))) {
      violate(`I10: checkout after shutdown did not fail with PoolClosedError`)
    }
    const pending = borrowers.filter((b) => b.state === "waiting").length
    if (pending > validating.size) violate(`I10: ${pending - validating.size} waiters outlived shutdown`)
    for (const b of borrowers) yield* Deferred.succeed(b.release, undefined)
    yield* settle
    yield* TestClock.adjust("10 seconds")
    yield* settle
    if (Option.isNone(yield* Fiber.poll(closing))) violate("I10: shutdown did not end by its shutdownTimeout")

    // the run is over: hanging validations answer now, so that every fiber can end
    finished = true
    yield* Deferred.succeed(hang, undefined)
    yield* settle
    yield* TestClock.adjust("1 second")
    yield* settle
    if (Option.isSome(yield* Fiber.poll(closing))) yield* Fiber.join(closing)
    else violate("I10: shutdown never ended")

    for (const b of borrowers) {
      if (b.state !== "done" || b.exit === undefined || b.endedAt === undefined) {
        violate(`I6: borrower ${b.id} never ended`)
        continue
      }
      // the test clock's readings carry float noise once a jittered backoff delay has moved it to a fraction of a
      // millisecond (e.g. 2294.0000000000005 for 2294): a microsecond of slack, far below any real overrun
      const deadline = b.arrivedAt + s.timeoutMillis + 0.001
      // I6: every checkout ends by its deadline, with a connection or a typed error
      if (b.grantedAt !== undefined) {
        if (b.grantedAt > deadline) {
          violate(`I6: borrower ${b.id} (arrived ${b.arrivedAt}) got a connection at ${b.grantedAt}, past ${deadline}`)
        }
      } else if (Exit.isFailure(b.exit) && !Cause.isInterrupted(b.exit.cause)) {
        if (b.endedAt > deadline) {
          violate(`I6: borrower ${b.id} (arrived ${b.arrivedAt}) failed at ${b.endedAt}, past ${deadline}`)
        }
      }
      // I9: failures are typed, never a rejection nor a defect
      if (Exit.isFailure(b.exit)) {
        for (const failure of Cause.failures(b.exit.cause)) {
          const tag = typeof failure === "object" && failure !== null && "_tag" in failure ? failure._tag : failure
          if (!typedErrors.has(String(tag))) violate(`I9: borrower ${b.id} failed with ${String(tag)}`)
        }
        for (const defect of Cause.defects(b.exit.cause)) violate(`I9: borrower ${b.id} died with ${String(defect)}`)
      }
    }

    yield* Scope.close(detachedScope, Exit.void)
    yield* settle
    for (const h of heard) if (h.open) yield* Scope.close(h.scope, Exit.void)
    if (streamFiber !== undefined) yield* Fiber.interrupt(streamFiber)

    // I3: no leak — every connection opened was closed exactly once
    const server = yield* db.stats
    const stats = yield* Pool.stats(pool)
    if (server.open !== 0 || server.opened !== server.closed) {
      violate(`I3: server opened ${server.opened}, closed ${server.closed}, open ${server.open}`)
    }
    if (server.closedTwice !== 0) violate(`I3: ${server.closedTwice} connections closed twice`)
    // I11: nothing left queued
    if (stats.open !== 0 || stats.opening !== 0 || stats.inUse !== 0 || stats.waiting !== 0) {
      violate(
        `I3: pool left open ${stats.open}, opening ${stats.opening}, in use ${stats.inUse}, waiting ${stats.waiting}`
      )
    }
    if (holders.size !== 0) violate(`I3: holders left ${[...holders.entries()]}`)

    // the event law, per listener, from the moment it listened: per connection at most one Connect and one close;
    // a Checkin only for a Checkout it heard (a Checkout a listener rejected is not lent, so none follows it); and,
    // for a listener still registered at rest, as many Checkins as Checkouts, one fewer for a detached connection
    // or one refused at checkout after the listener heard it
    for (const h of heard) {
      const byConnection = new Map<number, {
        connects: number
        closes: number
        lent: number
        detached: boolean
        refused: boolean
        /** since the last Checkout heard: Checkins and Resets */
        returns: { checkins: number; resets: number } | undefined
        trace: Array<string>
      }>()
      for (const e of h.events) {
        if (!("record" in e) || e._tag === "ConnectFailed") continue
        const id = e.record.id
        const c = byConnection.get(id) ??
          { connects: 0, closes: 0, lent: 0, detached: false, refused: false, returns: undefined, trace: [] }
        byConnection.set(id, c)
        c.trace.push(e._tag)
        switch (e._tag) {
          case "Connect":
            c.connects++
            break
          case "Close":
            c.closes++
            if (c.lent > 0 && checkoutRejections.has(e.reason)) c.refused = true
            break
          case "CloseDetached":
            c.closes++
            break
          case "Detach":
            if (c.lent > 0) c.detached = true
            break
          case "Checkout":
            if (rejected.has(e)) break
            c.lent++
            // I8: with reset on return, a connection returned once was reset once before it is lent again
            if (resetStatement !== undefined && c.returns !== undefined && c.returns.checkins === 1) {
              if (c.returns.resets !== 1) {
                violate(`I8: ${h.name} heard ${c.returns.resets} Resets of ${id} between two checkouts: ${c.trace}`)
              }
            }
            c.returns = { checkins: 0, resets: 0 }
            break
          case "Reset":
            if (c.returns !== undefined) c.returns.resets++
            break
          case "Checkin":
            if (c.returns !== undefined) c.returns.checkins++
            c.lent--
            if (c.lent < 0) violate(`law: ${h.name} heard a Checkin of ${id} without its Checkout: ${c.trace}`)
            break
        }
      }
      for (const [id, c] of byConnection) {
        if (c.connects > 1) violate(`law: ${h.name} heard ${c.connects} Connects of ${id}: ${c.trace}`)
        if (c.closes > 1) violate(`law: ${h.name} heard ${c.closes} closes of ${id}: ${c.trace}`)
        const allowed = c.detached || c.refused ? 1 : 0
        if (h.open && c.lent > allowed) {
          violate(`law: ${h.name} heard ${c.lent} Checkouts of ${id} not checked in: ${c.trace}`)
        }
      }
    }

    // the stream and the whole-run listeners hear the same sequence (rejected checkouts aside); the stream ends with
    // the pool, so past the shutdown it may stop early
    if (recorder !== undefined) {
      const stream = streamed.slice(streamFrom).filter((e) => !rejected.has(e))
      const untilShutdown = recorder.events.slice(heardFrom.get(recorder)!, heardAtShutdown).filter((e) =>
        !rejected.has(e)
      ).length
      if (stream.length < untilShutdown) {
        violate(`stream: heard ${stream.length} events, the recorder ${untilShutdown} before shutdown`)
      }
      for (const h of heard.filter((x) => x.wholeRun)) {
        const listened = h.events.slice(heardFrom.get(h)!).filter((e) => !rejected.has(e))
        const n = Math.min(stream.length, listened.length)
        for (let i = 0; i < n; i++) {
          if (stream[i] !== listened[i]) {
            violate(
              `stream: event ${i} is ${describeEvent(stream[i])} on the stream, ${
                describeEvent(listened[i])
              } for ${h.name}` +
                ` (stream ${stream.slice(Math.max(0, i - 2), i + 3).map(describeEvent)},` +
                ` ${h.name} ${listened.slice(Math.max(0, i - 2), i + 3).map(describeEvent)})`
            )
            break
          }
        }
      }
    }
    return violations
  }).pipe(Effect.withMaxOpsBeforeYield(s.maxOps))

/** Runs a scenario and fails with its violations. */
export const run = (s: Scenario) =>
  Effect.map(runScenario(s), (violations) => {
    assert.deepStrictEqual(violations, [], JSON.stringify(s))
  })
