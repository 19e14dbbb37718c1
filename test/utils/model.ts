/**
 * The model-based test of the core: random commands over the Memory driver, under a random mix of policies and
 * listeners, with the invariants of RELIABILITY.md (I1–I12), the event law and "no waiter past its deadline" checked
 * after each command and at the end. Shared by the property test and by anyone reproducing a counterexample:
 * `runScenario` answers the violations found, `run` asserts there are none.
 *
 * Each violation starts with the name of what it breaks (`I1` … `I12`, `count`, `law`, `stream`, or the policy whose
 * promise it is: `maxUses`, `recycle`, `lifetime`, `idleTimeout`, `prepare`, `firstConnect`, `liveness`, `breaker`,
 * `leak`), so a search for counterexamples can aim at one of them. Beyond I1–I12, each policy in the run adds its
 * own: with pre-ping a connection dead when the pre-ping looked is lent only inside its `skipWithin` window (I7); an
 * invalidated connection is never lent again and is closed (I7); a custom reset runs once per return before the next
 * lending, and a failed one closes the connection (I8); a commit reset commits only what succeeded (I8); recycle,
 * lifetime and max uses never lend past their limit; idle timeout never retires below `min` nor before its timeout;
 * a prepared connection is prepared again after each return before it is lent; the circuit breaker refuses only
 * while open, and refuses a checkout that would wait for a connect while open; leak detection with reclaim lets
 * nobody hold past the threshold and its holder ends interrupted.
 */
import {
  Cause,
  Clock,
  Deferred,
  Effect,
  Exit,
  FastCheck as fc,
  Fiber,
  FiberRef,
  Option,
  Schedule,
  Scope,
  Stream
} from "effect"
import { TestClock } from "effect"
import * as assert from "node:assert"
import * as Memory from "../../src/Driver/Memory.js"
import * as Policy from "../../src/Policy.js"
import * as Pool from "../../src/Pool.js"
import { ConnectionRejected } from "../../src/PoolError.js"
import type { Listeners, PoolEvent } from "../../src/PoolEvent.js"
import { uniqueName } from "./pool.js"
import { quietTestClock } from "./testClock.js"

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
  /**
   * `Policy.resetOnReturn`; `"custom"` is a reset the model counts per return (I8), following its script: done at
   * once (ok), failed (fail), 300 ms of work (slow), or past the reset's 1 s timeout (hang)
   */
  | {
    readonly _tag: "Reset"
    readonly mode: "rollback" | "commit" | "none" | "custom"
    readonly script?: ReadonlyArray<ResetStep> | undefined
  }
  /** `Policy.prePing`; `skipWithinMillis` absent is 0 (a ping at every checkout, as the older scenarios assume) */
  | { readonly _tag: "PrePing"; readonly timeoutMillis: number; readonly skipWithinMillis?: number | undefined }
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
  /** `Policy.firstConnect`, whose setup follows the script (a failure is a failed connect) */
  | { readonly _tag: "FirstConnect"; readonly script: ReadonlyArray<"ok" | "fail"> }
  /** `Policy.livenessQuery`: every ping of the pool runs this statement instead of the driver's ping */
  | { readonly _tag: "LivenessQuery" }
  /** `Policy.connectRetry` with `Schedule.spaced` */
  | { readonly _tag: "ConnectRetry"; readonly spacedMillis: number }
  /** `Policy.keepalive` itself (the `Keepalive` above is a model-made policy on the same seam) */
  | {
    readonly _tag: "KeepalivePolicy"
    readonly everyMillis: number
    readonly timeoutMillis: number
    readonly idleForMillis: number
  }
  /** `Policy.circuitBreaker`, opening after `failures` consecutive connect failures, probing every `probeMillis` */
  | { readonly _tag: "CircuitBreaker"; readonly failures: number; readonly probeMillis: number }
  /** `Policy.leakDetection`, with or without `reclaim` */
  | { readonly _tag: "LeakDetection"; readonly thresholdMillis: number; readonly reclaim: boolean }
  /** `Policy.idleTimeout` */
  | { readonly _tag: "IdleTimeout"; readonly millis: number }
  /** `Policy.lifetime` with `Schedule.recurs(lendings)`, `Schedule.recurUpTo(millis)`, or both intersected */
  | { readonly _tag: "Lifetime"; readonly lendings?: number | undefined; readonly millis?: number | undefined }
  /**
   * `Policy.prepareOnReturn`, whose preparation follows the script (ok, fail, or 200 ms of work); `pending`: none
   * (at once), a schedule's spacing in ms, or `"manual"`
   */
  | {
    readonly _tag: "Prepare"
    readonly script: ReadonlyArray<"ok" | "fail" | "slow">
    readonly pending: "none" | "manual" | number
  }

/** One answer of a custom reset on return. */
export type ResetStep = "ok" | "fail" | "slow" | "hang"

/** The statement of `Policy.livenessQuery` in the model: one the Memory driver runs as a plain statement. */
const livenessSql = "SELECT 1 AS alive"

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
  /** what checkout hooks' decisions are measured at (see `hookClock`); `hookClock` when absent */
  readonly hookClock?: "context" | "clock" | undefined
}

/**
 * What the model measures pre-ping's window, recycle's age and lifetime's elapsed time at, when a checkout hook
 * runs: `"clock"` is the clock when the hook runs; `"context"` is the hook's `context.now`, which the core reads once
 * when the checkout's checks start, so a hook listed after one that takes time sees a stale clock (a pre-ping that
 * skips a connection idle far longer than its window, a recycle that lends an expired connection: the `clock`
 * counterexamples in `counterexamples.ts`). `"context"` while that is open, so that the random runs look for other
 * defects; `"clock"` once the core gives hooks the current time.
 */
export const hookClock: "context" | "clock" = "clock"

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
  fc.record({
    _tag: fc.constant("Reset" as const),
    mode: fc.constantFrom("rollback" as const, "commit" as const, "none" as const, "custom" as const),
    script: fc.array(weighted<ResetStep>(["ok", 4], ["fail", 1], ["slow", 1], ["hang", 1]), {
      minLength: 1,
      maxLength: 5
    })
  }),
  fc.record({
    _tag: fc.constant("PrePing" as const),
    timeoutMillis: fc.constantFrom(100, 1000),
    skipWithinMillis: fc.constantFrom(0, 500, 2000)
  }),
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
  }),
  fc.record({
    _tag: fc.constant("FirstConnect" as const),
    script: fc.array(weighted(["ok" as const, 3], ["fail" as const, 1]), { minLength: 1, maxLength: 3 })
  }),
  fc.constant({ _tag: "LivenessQuery" as const }),
  fc.record({ _tag: fc.constant("ConnectRetry" as const), spacedMillis: fc.constantFrom(100, 1000) }),
  fc.record({
    _tag: fc.constant("KeepalivePolicy" as const),
    everyMillis: fc.constantFrom(400, 1500),
    timeoutMillis: fc.constantFrom(100, 1000),
    idleForMillis: fc.constantFrom(0, 1000)
  }),
  fc.record({ _tag: fc.constant("IdleTimeout" as const), millis: fc.constantFrom(300, 1000, 3000) }),
  fc.record({
    _tag: fc.constant("CircuitBreaker" as const),
    failures: fc.integer({ min: 1, max: 3 }),
    probeMillis: fc.constantFrom(500, 2000)
  }),
  fc.record({
    _tag: fc.constant("LeakDetection" as const),
    thresholdMillis: fc.constantFrom(300, 1000),
    reclaim: fc.boolean()
  }),
  fc.oneof(
    fc.record({ _tag: fc.constant("Lifetime" as const), lendings: fc.integer({ min: 1, max: 3 }) }),
    fc.record({ _tag: fc.constant("Lifetime" as const), millis: fc.constantFrom(500, 2000) }),
    fc.record({
      _tag: fc.constant("Lifetime" as const),
      lendings: fc.integer({ min: 1, max: 3 }),
      millis: fc.constantFrom(500, 2000)
    })
  ),
  fc.record({
    _tag: fc.constant("Prepare" as const),
    script: fc.array(weighted(["ok" as const, 4], ["fail" as const, 1], ["slow" as const, 1]), {
      minLength: 1,
      maxLength: 4
    }),
    pending: fc.constantFrom<"none" | "manual" | number>("none", "manual", 700)
  })
]

/**
 * A random subset of the policy kinds (each present one time in four: about five of them in a run, so that a run
 * stays short and a violation points at few policies), in a random order.
 */
export const policies: fc.Arbitrary<ReadonlyArray<PolicySpec>> = fc.tuple(
  fc.tuple(
    ...policyKinds.map((kind) =>
      fc.oneof({ arbitrary: fc.constant(undefined), weight: 3 }, { arbitrary: kind, weight: 1 })
    )
  ),
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
export const runScenario = (
  s: Scenario,
  progress: { step: string } = { step: "" }
): Effect.Effect<ReadonlyArray<string>> =>
  Effect.gen(function*() {
    // with a small yield budget every fiber needs more turns to finish what it started
    const turns = Effect.repeatN(Effect.yieldNow(), 20 * Math.ceil(64 / s.maxOps))
    const max = s.size + s.maxOverflow
    const specs = s.policies ?? []
    const resetSpec = specs.find((p) => p._tag === "Reset")
    const resetMode = resetSpec?.mode
    /** a reset that emits `Reset` events (every mode but "none") */
    const resets = resetMode !== undefined && resetMode !== "none"
    const prePingSpec = specs.find((p) => p._tag === "PrePing")
    const prePing = prePingSpec !== undefined
    const skipWithin = prePingSpec?.skipWithinMillis ?? 0
    const maxUses = specs.find((p) => p._tag === "MaxUses")?.n
    const maxAge = specs.find((p) => p._tag === "Recycle")?.maxAgeMillis
    const liveness = specs.some((p) => p._tag === "LivenessQuery")
    const firstConnect = specs.some((p) => p._tag === "FirstConnect")
    const lifetimeSpec = specs.find((p) => p._tag === "Lifetime")
    const idleTimeout = specs.find((p) => p._tag === "IdleTimeout")?.millis
    const prepares = specs.some((p) => p._tag === "Prepare")
    const breaker = specs.some((p) => p._tag === "CircuitBreaker")
    const leakSpec = specs.find((p) => p._tag === "LeakDetection")
    const reclaims = leakSpec?.reclaim === true
    const db = yield* Memory.make()
    yield* db.applyPlan({ connects: [], queries: [], slowMillis: 700 })

    const borrowers: Array<Borrower> = []
    const holders = new Map<number, number>()
    const grants: Array<number> = []
    /** borrowers whose place in the grant order is taken */
    const granted = new Set<number>()
    const violations: Array<string> = []
    /** where the run is (`run` names it when a scenario hangs; MODEL_TRACE=1 prints it) */
    const at = (step: string) => {
      progress.step = step
      if (process.env.MODEL_TRACE !== undefined) console.log(`model: ${step}`)
    }
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
    /**
     * where each connection's statements stood when its last borrower let go, whether a transaction was open, the
     * statement a rollback or commit reset sends for that return, the borrower and the tick of the return
     */
    const returnMark = new Map<number, {
      readonly index: number
      readonly inTransaction: boolean
      readonly statement: "ROLLBACK" | "COMMIT"
      readonly by: number
      readonly tick: number
    }>()
    /** when each connection's connect started (the model's own reading: `record.createdAt` should agree) */
    const connectStart = new Map<number, number>()
    /**
     * when each connection was last used or validated, as the model saw it: opened, returned by a borrower (or by a
     * checkout that ended before its borrower held it), or pinged successfully. Pre-ping may skip a connection
     * touched within its `skipWithin` window.
     */
    const touchedAt = new Map<number, number>()
    const touch = (id: number, now: number) => touchedAt.set(id, Math.max(touchedAt.get(id) ?? -Infinity, now))
    /** per connection: the pre-ping's last decision (its tick and the clock when the hook ran) */
    const prePingDecision = new Map<number, { readonly tick: number; readonly now: number }>()
    /** per connection: the clock when recycle's checkout hook last ran on it */
    const recycleCheckedAt = new Map<number, number>()
    /** per connection: how many borrowers have held it */
    const holds = new Map<number, number>()
    /** connections invalidated through `Pool.invalidate` (I7: never lent again) */
    const invalidatedIds = new Map<number, "hard" | "soft">()
    /** custom reset (I8): successful resets per borrower, connections whose reset failed, resets in progress */
    const resetsBy = new Map<number, number>()
    const resetFailed = new Set<number>()
    let resetting = 0
    const resettingFor = new Set<number>()
    /** per borrower: the connection its checkout hooks last ran on (a checkout that ends before its hold returns it) */
    const validatedFor = new Map<number, number>()
    let firstConnects = 0
    /** lifetime (per connection): the clock at its first and at its last checkout step */
    const lifetimeFirst = new Map<number, number>()
    const lifetimeAt = new Map<number, number>()
    /** when each connection last came back (or opened): what an idle timeout measures from */
    const returnedAt = new Map<number, number>()
    /** connections a background policy retired (closing), and prepareOnReturn's successes and failures */
    const retired = new Set<number>()
    /**
     * the circuit breaker's state, as its events tell it (they pass through its handle), and how many times it
     * changed; borrowers that lived while it was not closed
     */
    let breakerState: Policy.BreakerState = "closed"
    let breakerChanges = 0
    const sawBreakerOpen = new Set<number>()
    /** borrowers whose checkout must fail with PoolUnavailableError: arrived while open, with room and nothing idle */
    const mustBeRefused = new Map<number, number>()
    /** borrowers whose connection leak detection reclaimed */
    const reclaimed = new Set<number>()
    /** the pool's record ids (one per connect attempt) to the Memory driver's connection ids */
    const connectionOf = new Map<number, number>()
    const preparedAt = new Map<number, number>()
    const prepareFailed = new Set<number>()
    /** borrowers whose work began a transaction */
    const inTransaction = new Set<number>()
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
    const tracked = <Commands>(
      policy: Policy.Policy<C, Memory.MemoryError, Commands>,
      ping: boolean
    ): Policy.Policy<C, Memory.MemoryError, Commands> => {
      const wrap = (
        check: NonNullable<Policy.Hooks<C, Memory.MemoryError>["onCheckout"]>
      ): NonNullable<Policy.Hooks<C, Memory.MemoryError>["onCheckout"]> =>
      (context) =>
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
            const at = (s.hookClock ?? hookClock) === "clock" ? start : context.now
            if (ping) {
              pingedAt.set(context.connection.id, ++tick)
              prePingDecision.set(context.connection.id, { tick, now: at })
            }
            if (policy.name === "recycle") recycleCheckedAt.set(context.connection.id, at)
            if (policy.name === "lifetime") {
              if (!lifetimeFirst.has(context.connection.id)) lifetimeFirst.set(context.connection.id, at)
              lifetimeAt.set(context.connection.id, at)
            }
            if (who >= 0) validatedFor.set(who, context.connection.id)
            return Effect.onExit(
              Effect.suspend(() => check(context)),
              (exit) =>
                Effect.map(Clock.currentTimeMillis, (now) => {
                  validating.delete(token)
                  if (Exit.isFailure(exit) || now > start) taint(who)
                })
            )
          }))
      // a stateful policy's hooks are its instance's: wrap those
      const instantiate = policy.instantiate
      if (instantiate !== undefined) {
        return Policy.make({
          ...policy,
          instantiate: (handle) =>
            Effect.map(instantiate(handle), (instance) =>
              instance.onCheckout === undefined ? instance : { ...instance, onCheckout: wrap(instance.onCheckout) })
        })
      }
      return Policy.make({ ...policy, onCheckout: wrap(policy.onCheckout!) })
    }

    /**
     * Wraps a background policy's handle so that the model sees what it retires: never below `min` (idle timeout),
     * never a connection idle less than the timeout, never one younger than its lifetime (recycle).
     */
    const audited = <Commands>(
      policy: Policy.Policy<C, Memory.MemoryError, Commands>
    ): Policy.Policy<C, Memory.MemoryError, Commands> => {
      const watch = (handle: Policy.PoolHandle<C, Memory.MemoryError>): Policy.PoolHandle<C, Memory.MemoryError> => ({
        ...handle,
        emit: (event) =>
          Effect.suspend(() => {
            if (event._tag === "CircuitBreaker") {
              breakerState = event.state
              breakerChanges++
              if (event.state !== "closed") {
                for (const b of borrowers) {
                  if (b.state !== "done") {
                    sawBreakerOpen.add(b.id)
                  }
                }
              }
            }
            return handle.emit(event)
          }),
        reclaim: (record) =>
          Effect.gen(function*() {
            const id = connectionOf.get(record.id)
            const holder = id === undefined ? undefined : holders.get(id)
            const taken = yield* handle.reclaim(record)
            if (taken && holder !== undefined) {
              reclaimed.add(holder)
            }
            return taken
          }),
        retire: (record, reason) =>
          Effect.gen(function*() {
            const now = yield* Clock.currentTimeMillis
            const open = (yield* db.connections).filter((c) =>
              !detachedIds.has(c.id) && !retired.has(c.id) && !c.closed
            ).length
            const done = yield* handle.retire(record, reason)
            const id = connectionOf.get(record.id)
            if (!done || finished || id === undefined) {
              return done
            }
            retired.add(id)
            if (reason === "idle") {
              if (open <= s.min) {
                violate(`idleTimeout: retired ${id} with ${open} open, min ${s.min}`)
              }
              const idleFor = now - (returnedAt.get(id) ?? -Infinity)
              // (a microsecond of slack for the test clock's float noise after a jittered backoff)
              if (idleTimeout !== undefined && idleFor < idleTimeout - 0.001) {
                violate(`idleTimeout: retired ${id} idle for ${idleFor} ms < ${idleTimeout}`)
              }
            }
            if (reason === "expired" && maxAge !== undefined) {
              const age = now - (connectStart.get(id) ?? now)
              if (age < maxAge * (1 - 0.025) - 0.001) {
                violate(`recycle: retired ${id} at age ${age} < ${maxAge}`)
              }
            }
            return done
          })
      })
      const instantiate = policy.instantiate
      const background = policy.background
      return Policy.make({
        ...policy,
        ...(instantiate === undefined ? {} : {
          instantiate: (handle) =>
            Effect.map(instantiate(watch(handle)), (instance) =>
              instance.background === undefined ?
                instance :
                {
                  ...instance,
                  background: (h) =>
                    instance.background!(watch(h))
                })
        }),
        ...(background === undefined ? {} : {
          background: (handle) =>
            background(watch(handle))
        })
      })
    }

    const cycle = <A>(script: ReadonlyArray<A>, fallback: A) => {
      let i = 0
      return (): A => script.length === 0 ? fallback : script[i++ % script.length]!
    }

    const build = (spec: PolicySpec): Policy.Policy<C, Memory.MemoryError> => {
      switch (spec._tag) {
        case "Reset": {
          if (spec.mode !== "custom") return Policy.resetOnReturn(spec.mode)
          const next = cycle(spec.script ?? [], "ok")
          return Policy.resetOnReturn<C, Memory.MemoryError>((context) =>
            Effect.flatMap(FiberRef.get(currentBorrower), (who) => {
              const id = context.connection.id
              const answer = next()
              resetting++
              resettingFor.add(who)
              const work = answer === "ok" ?
                Effect.void :
                answer === "fail" ?
                Effect.fail("reset failed (model)") :
                Effect.sleep(answer === "slow" ? 300 : 3000)
              return Effect.onExit(work, (exit) =>
                Effect.sync(() => {
                  resetting--
                  resettingFor.delete(who)
                  if (Exit.isSuccess(exit)) {
                    resetsBy.set(who, (resetsBy.get(who) ?? 0) + 1)
                  } else resetFailed.add(id)
                }))
            }), { timeout: 1000 })
        }
        case "PrePing":
          return tracked(Policy.prePing({ timeout: spec.timeoutMillis, skipWithin: spec.skipWithinMillis ?? 0 }), true)
        case "FirstConnect": {
          const next = cycle(spec.script, "ok")
          return Policy.firstConnect(() =>
            Effect.suspend(() => {
              if (next() === "fail") {
                return Effect.fail(new Memory.MemoryError({ reason: "ConnectFailed", message: "firstConnect (model)" }))
              }
              firstConnects++
              return Effect.void
            })
          )
        }
        case "LivenessQuery":
          return Policy.livenessQuery(livenessSql)
        case "ConnectRetry":
          return Policy.connectRetry(spec.spacedMillis)
        case "Recycle":
          return tracked(audited(Policy.recycle(spec.maxAgeMillis)), false)
        case "KeepalivePolicy":
          return audited(
            Policy.keepalive(spec.everyMillis, { timeout: spec.timeoutMillis, idleFor: spec.idleForMillis })
          ) as Policy.Policy<C, Memory.MemoryError>
        case "IdleTimeout":
          return audited(Policy.idleTimeout(spec.millis))
        case "CircuitBreaker":
          return audited(
            Policy.circuitBreaker({ failures: spec.failures, probe: spec.probeMillis })
          ) as Policy.Policy<C, Memory.MemoryError>
        case "LeakDetection":
          return audited(
            Policy.leakDetection(spec.thresholdMillis, { reclaim: spec.reclaim })
          ) as Policy.Policy<C, Memory.MemoryError>
        case "Lifetime": {
          const schedule = spec.lendings !== undefined && spec.millis !== undefined ?
            Schedule.intersect(Schedule.recurs(spec.lendings), Schedule.recurUpTo(spec.millis)) :
            spec.lendings !== undefined ?
            Schedule.recurs(spec.lendings) :
            Schedule.recurUpTo(spec.millis ?? 0)
          return tracked(Policy.lifetime(schedule), false)
        }
        case "Prepare": {
          const next = cycle(spec.script, "ok")
          const policy = Policy.prepareOnReturn<C, Memory.MemoryError>(
            (connection) =>
              Effect.suspend(() => {
                const answer = next()
                const work = answer === "ok" ?
                  Effect.void :
                  answer === "fail" ?
                  Effect.fail(new Memory.MemoryError({ reason: "QueryFailed", message: "prepare (model)" })) :
                  Effect.sleep(200)
                return Effect.onExit(work, (exit) =>
                  Effect.sync(() => {
                    if (Exit.isSuccess(exit)) {
                      preparedAt.set(connection.id, ++tick)
                    } else prepareFailed.add(connection.id)
                  }))
              }),
            spec.pending === "none" ? undefined : { pending: spec.pending }
          )
          return policy as Policy.Policy<C, Memory.MemoryError>
        }
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
                  if (answer === "ok") {
                    return Effect.void
                  }
                  if (answer === "reject") {
                    return Effect.fail(new ConnectionRejected({ reason: "validate" }))
                  }
                  if (answer === "hang") {
                    return Deferred.await(hang)
                  }
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
                      context.ping(),
                      (cause) =>
                        new ConnectionRejected({ reason: "keepalive", cause })
                    )
                  )
                )
              ))
          })
      }
    }

    /**
     * The Memory driver, seen by the model: when each connect started, and each successful ping (a validation).
     * With `Policy.livenessQuery` every ping of the pool runs its statement, never the driver's ping.
     */
    const driver: typeof db.driver = {
      ...db.driver,
      connect: (context) =>
        Effect.flatMap(Clock.currentTimeMillis, (start) =>
          Effect.tap(db.driver.connect(context), (connection) =>
            Effect.sync(() => {
              connectStart.set(connection.id, start)
              connectionOf.set(context.record.id, connection.id)
              returnedAt.set(connection.id, start)
              touch(connection.id, start)
              if (context.record.createdAt !== start) {
                violate(
                  `record: connection ${connection.id} createdAt ${context.record.createdAt}, connect at ${start}`
                )
              }
            }))),
      ping: (connection) => {
        if (liveness && !finished) {
          violate(`liveness: the driver's ping ran on ${connection.id}, not the query`)
        }
        return Effect.tap(db.driver.ping(connection), () =>
          Effect.map(Clock.currentTimeMillis, (now) =>
            touch(connection.id, now)))
      },
      query: (connection, sql) =>
        sql === livenessSql ?
          Effect.tap(db.driver.query(connection, sql), () =>
            Effect.map(Clock.currentTimeMillis, (now) =>
              touch(connection.id, now))) :
          db.driver.query(connection, sql)
    }

    const scope = yield* Scope.make()
    const pool = yield* Scope.extend(
      Pool.make({
        driver,
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
          leak: hear,
          unleaked: hear,
          circuitBreaker: hear,
          // a listener hears an event when it is called: a deadline may strike before its effect's first step
          checkout: (e) => {
            events.push(e)
            return Effect.suspend(() => {
              if (!next()) {
                return Effect.void
              }
              rejected.add(e)
              return Effect.flatMap(FiberRef.get(currentBorrower), (who) => {
                taint(who)
                return Effect.fail(new ConnectionRejected({ reason: `listener ${name}` }))
              })
            })
          }
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
    if (s.rejector !== undefined) {
      yield* listen("rejector", s.rejector, true)
    }
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
          borrowers.map((b) =>
            b.state
          ),
          heard.map((h) =>
            h.events.length
          ),
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
        if (breaker && breakerState !== "closed") {
          sawBreakerOpen.add(b.id)
          // nothing idle and room for a connect: the checkout would wait for a connect, which the breaker refuses
          const stats = yield* Pool.stats(pool)
          if (stats.idle === 0 && stats.open < max && !stats.isClosed) {
            mustBeRefused.set(b.id, breakerChanges)
          }
        }
        const hold = (connection: C) =>
          Effect.gen(function*() {
            b.grantedAt = yield* TestClock.currentTimeMillis
            if (!finished) {
              const holder = holders.get(connection.id)
              if (holder !== undefined) {
                violate(`I2: connection ${connection.id} lent to ${holder} and ${b.id}`)
              }
              if (connection.closed) {
                violate(`I7: lent a closed connection ${connection.id} to ${b.id}`)
              }
              const id = connection.id
              const lendings = (holds.get(id) ?? 0) + 1
              if (invalidatedIds.has(id)) {
                violate(`I7: connection ${id}, invalidated (${invalidatedIds.get(id)}), lent again to ${b.id}`)
              }
              if (prePing) {
                const decision = prePingDecision.get(id)
                const killed = killedAt.get(id)
                if (decision === undefined || decision.tick < (lentAt.get(id) ?? 0)) {
                  violate(`I7: connection ${id} lent to ${b.id} without a pre-ping`)
                } else if (killed !== undefined && killed < decision.tick) {
                  // dead when the pre-ping looked at it: lent only when used or validated within the window
                  const idle = decision.now - (touchedAt.get(id) ?? -Infinity)
                  if (idle >= skipWithin) {
                    violate(
                      `I7: connection ${id}, killed before its pre-ping and idle ${idle} ms (skipWithin ${skipWithin}), lent to ${b.id}`
                    )
                  }
                }
              }
              if (maxUses !== undefined && lendings > maxUses) {
                violate(`maxUses: connection ${id} lent ${lendings} times (maxUses ${maxUses}), to ${b.id}`)
              }
              if (maxAge !== undefined) {
                const checkedAt = recycleCheckedAt.get(id)
                const opened = connectStart.get(id) ?? 0
                if (checkedAt === undefined) {
                  violate(`recycle: connection ${id} lent to ${b.id} unchecked`)
                } else if (checkedAt - opened >= maxAge) {
                  violate(`recycle: connection ${id} (opened at ${opened}) lent to ${b.id}, checked at ${checkedAt}`)
                }
              }
              if (lifetimeSpec !== undefined) {
                const first = lifetimeFirst.get(id)
                const at = lifetimeAt.get(id)
                if (first === undefined || at === undefined) {
                  violate(`lifetime: connection ${id} lent to ${b.id} unchecked`)
                } else if (lifetimeSpec.millis !== undefined && at - first >= lifetimeSpec.millis) {
                  violate(`lifetime: connection ${id} lent to ${b.id} ${at - first} ms after its first lending`)
                }
                if (lifetimeSpec.lendings !== undefined && lendings > lifetimeSpec.lendings) {
                  violate(`lifetime: connection ${id} lent ${lendings} times (recurs ${lifetimeSpec.lendings})`)
                }
              }
              if (prepares) {
                // prepared when it opened, and again after every return, before it is lent
                const prepared = preparedAt.get(id)
                if (prepareFailed.has(id)) {
                  violate(`prepare: connection ${id} lent to ${b.id} after a failed preparation`)
                } else if (prepared === undefined) {
                  violate(`prepare: connection ${id} lent to ${b.id} never prepared`)
                } else if (returnMark.has(id) && prepared < returnMark.get(id)!.tick) {
                  violate(`prepare: connection ${id} lent to ${b.id} unprepared since its return`)
                }
              }
              if (firstConnect && firstConnects === 0) {
                violate(`firstConnect: connection ${id} lent to ${b.id} before the first connect's setup succeeded`)
              }
              const mark = returnMark.get(id)
              if (resetMode === "rollback" || resetMode === "commit") {
                if (mark !== undefined) {
                  const resets = connection.statements.slice(mark.index).filter((sql) =>
                    sql.trim().toUpperCase() === mark.statement
                  ).length
                  // a driver that knows no transaction is open may skip the statement (Driver.inTransaction); more
                  // than one is fine here (a checkout interrupted between its validation and its work is a return
                  // too): that every return has exactly one reset is checked on the Reset events, below
                  if (resets === 0 && (db.driver.inTransaction === undefined || mark.inTransaction)) {
                    violate(`I8: connection ${id} lent to ${b.id} without a ${mark.statement} since its return`)
                  }
                }
                if (connection.inTransaction) {
                  violate(`I8: connection ${id} lent in a transaction`)
                }
              }
              if (resetMode === "custom") {
                if (resetFailed.has(id)) {
                  violate(`I8: connection ${id} lent to ${b.id} after its reset failed`)
                }
                if (mark !== undefined) {
                  // every return is reset exactly once before the connection is lent again
                  const n = resetsBy.get(mark.by) ?? 0
                  if (n !== 1) {
                    violate(`I8: connection ${id}, returned by ${mark.by}, reset ${n} times, lent to ${b.id}`)
                  }
                }
              }
            }
            holds.set(connection.id, (holds.get(connection.id) ?? 0) + 1)
            lentAt.set(connection.id, ++tick)
            holders.set(connection.id, b.id)
            if (!granted.has(b.id)) {
              granted.add(b.id)
              grants.push(b.id)
            }
            b.connection = connection
            b.state = "holding"
            if (b.work === "tx") {
              // an INSERT whose BEGIN failed runs outside a transaction: committed at once, whatever the reset
              const began = Exit.isSuccess(yield* Effect.exit(db.driver.query(connection, "BEGIN")))
              if (began) {
                inTransaction.add(b.id)
              }
              yield* Effect.ignore(db.driver.query(connection, `INSERT INTO t VALUES (${b.id})`))
            }
            yield* Effect.onExit(
              Deferred.await(b.release),
              (exit) =>
                Effect.map(TestClock.currentTimeMillis, (now) => {
                  if (holders.get(connection.id) === b.id) {
                    holders.delete(connection.id)
                  }
                  touch(connection.id, now)
                  returnedAt.set(connection.id, now)
                  returnMark.set(connection.id, {
                    index: connection.statements.length,
                    inTransaction: connection.inTransaction,
                    // a commit reset commits only what succeeded
                    statement: resetMode === "commit" && Exit.isSuccess(exit) ? "COMMIT" : "ROLLBACK",
                    by: b.id,
                    tick: ++tick
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
                // the breaker changed state during the checkout: it need not have been refused
                if (mustBeRefused.get(b.id) !== breakerChanges) {
                  mustBeRefused.delete(b.id)
                }
                // a checkout that ends after its connection was lent but before the borrower held it returns it
                const validated = validatedFor.get(b.id)
                if (b.grantedAt === undefined && validated !== undefined) {
                  touch(validated, now)
                  returnedAt.set(validated, now)
                }
              })
            ),
            Effect.ignore
          )
        )
      })

    const pick = (state: Borrower["state"], k: number) => {
      const candidates = borrowers.filter((b) =>
        b.state === state
      )
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
          // (a borrower interrupted while it held a connection returns it first: its reset on return may take time)
          if (b.interrupted !== undefined && b.state !== "done" && !resettingFor.has(b.id)) {
            violate(`I6 ${label}: borrower ${b.id}, interrupted ${b.interrupted}, still running`)
          }
        }
        // I7: an invalidated connection is closed once its borrower lets go (at once, for a hard invalidation, unless a
        // reset or preparation holds it); I8: a connection
        // whose reset failed is closed
        const held = new Set(borrowers.filter((b) => b.state === "holding").map((b) => b.connection?.id))
        for (const connection of yield* db.connections) {
          if (detachedIds.has(connection.id)) continue
          const invalidated = invalidatedIds.get(connection.id)
          if (invalidated !== undefined && !held.has(connection.id)) {
            violate(`I7 ${label}: connection ${connection.id}, invalidated (${invalidated}), still open`)
          }
          if (resetFailed.has(connection.id) && resetting === 0) {
            violate(`I8 ${label}: connection ${connection.id}, whose reset failed, still open`)
          }
        }
        // leak detection with reclaim: nobody holds a connection past the threshold (a borrower that let go while
        // the pool's reset on return runs holds nothing: the reset is bounded by its own timeout)
        if (reclaims) {
          for (const b of borrowers) {
            if (b.state !== "holding" || b.detached || b.connection === undefined || b.connection.closed) continue
            if (resettingFor.has(b.id)) continue
            const held = now - (b.grantedAt ?? now)
            if (held > leakSpec!.thresholdMillis) violate(`leak ${label}: borrower ${b.id} holds on after ${held} ms`)
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
      at(`#${i} ${c._tag}`)
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
          if (b?.connection !== undefined) {
            const exit = yield* Effect.exit(Pool.invalidate(pool, b.connection, { soft: c.soft }))
            if (Exit.isSuccess(exit) && !b.detached && !invalidatedIds.has(b.connection.id)) {
              invalidatedIds.set(b.connection.id, c.soft ? "soft" : "hard")
            }
          }
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
    at("shutdown")
    const heardAtShutdown = recorder?.events.length ?? 0
    const closing = yield* Effect.fork(Scope.close(scope, Exit.void))
    yield* settle
    at("shutdown: a late checkout")
    const late = yield* Effect.exit(Pool.use(pool, () => Effect.void))
    if (!(Exit.isFailure(late) && String(late.cause).includes("PoolClosedError"))) {
      violate(`I10: checkout after shutdown did not fail with PoolClosedError`)
    }
    const pending = borrowers.filter((b) => b.state === "waiting").length
    if (pending > validating.size) violate(`I10: ${pending - validating.size} waiters outlived shutdown`)
    for (const b of borrowers) yield* Deferred.succeed(b.release, undefined)
    yield* settle
    at("shutdown: its timeout")
    yield* TestClock.adjust("10 seconds")
    yield* settle
    if (Option.isNone(yield* Fiber.poll(closing))) violate("I10: shutdown did not end by its shutdownTimeout")

    // the run is over: hanging validations answer now, so that every fiber can end
    at("the end")
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
      const failedWith = Exit.isFailure(b.exit) ? Cause.failureOption(b.exit.cause) : Option.none()
      const tagOf = (failure: unknown) =>
        typeof failure === "object" && failure !== null && "_tag" in failure ? String(failure._tag) : String(failure)
      const unavailable = Option.isSome(failedWith) && tagOf(failedWith.value) === "PoolUnavailableError"
      // circuit breaker: refused only while it is not closed; refused when it must be
      if (unavailable && !sawBreakerOpen.has(b.id)) violate(`breaker: borrower ${b.id} refused while closed`)
      if (mustBeRefused.has(b.id) && !unavailable && !(Exit.isFailure(b.exit) && Cause.isInterrupted(b.exit.cause))) {
        violate(`breaker: borrower ${b.id}, arrived while open with room and nothing idle, ended ${b.exit._tag}`)
      }
      // leak detection with reclaim: the holder ends interrupted
      if (reclaimed.has(b.id) && !(Exit.isFailure(b.exit) && Cause.isInterruptedOnly(b.exit.cause))) {
        violate(`leak: borrower ${b.id}, reclaimed, ended ${b.exit._tag}`)
      }
      // I9: failures are typed, never a rejection nor a defect
      if (Exit.isFailure(b.exit)) {
        for (const failure of Cause.failures(b.exit.cause)) {
          const tag = typeof failure === "object" && failure !== null && "_tag" in failure ? failure._tag : failure
          if (!typedErrors.has(String(tag)) && !(breaker && tag === "PoolUnavailableError")) {
            violate(`I9: borrower ${b.id} failed with ${String(tag)}`)
          }
        }
        for (const defect of Cause.defects(b.exit.cause)) violate(`I9: borrower ${b.id} died with ${String(defect)}`)
      }
    }

    // I8: one reset per return; a commit reset commits only the work of a borrower that succeeded
    for (const [who, n] of resetsBy) if (n > 1 || who < 0) violate(`I8: borrower ${who}'s return reset ${n} times`)
    const committed = new Set(yield* db.committed)
    for (const b of borrowers) {
      if (!inTransaction.has(b.id) || !committed.has(`INSERT INTO t VALUES (${b.id})`)) continue
      if (resetMode !== "commit" || b.exit === undefined || Exit.isFailure(b.exit)) {
        violate(`I8: borrower ${b.id}'s work was committed (reset ${resetMode ?? "absent"}, exit ${b.exit?._tag})`)
      }
    }

    at("closing the detached and listener scopes")
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
        leaks: number
        unleaked: number
        trace: Array<string>
      }>()
      for (const e of h.events) {
        if (!("record" in e) || e._tag === "ConnectFailed") continue
        const id = e.record.id
        const c = byConnection.get(id) ??
          {
            connects: 0,
            closes: 0,
            lent: 0,
            detached: false,
            refused: false,
            returns: undefined,
            leaks: 0,
            unleaked: 0,
            trace: []
          }
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
            if (resets && c.returns !== undefined && c.returns.checkins === 1) {
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
          case "Leak":
            c.leaks++
            break
          case "Unleaked":
            // one Unleaked per Leak, after it (a listener registered after the Leak hears only the Unleaked)
            if (++c.unleaked > c.leaks && h.wholeRun) {
              violate(`law: ${h.name} heard an Unleaked of ${id} without its Leak: ${c.trace}`)
            }
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
      /**
       * Whether the lending a stream `Checkout` stands for was cut short: no `Checkin` of its connection follows
       * before the connection's next `Checkout`. A deadline (or an interruption) that cut it short may have struck
       * between two checkout listeners' calls: the subscribers got the event with the first listener, the ones
       * registered after the point it struck never heard it (as after a listener that rejects).
       */
      const cutShort = (i: number): boolean => {
        const e = stream[i]!
        if (e._tag !== "Checkout") return false
        for (let j = i + 1; j < stream.length; j++) {
          const f = stream[j]!
          if ("record" in f && f.record.id === e.record.id) {
            if (f._tag === "Checkin") return false
            if (f._tag === "Checkout") return true
          }
        }
        return true
      }
      for (const h of heard.filter((x) => x.wholeRun)) {
        const listened = h.events.slice(heardFrom.get(h)!).filter((e) => !rejected.has(e))
        const mine = new Set(listened)
        // the recorder is the first checkout listener: the stream hears exactly what it heard
        const expected = h === recorder ? stream : stream.filter((e, i) => mine.has(e) || !cutShort(i))
        const n = Math.min(expected.length, listened.length)
        for (let i = 0; i < n; i++) {
          if (expected[i] !== listened[i]) {
            violate(
              `stream: event ${i} is ${describeEvent(expected[i])} on the stream, ${
                describeEvent(listened[i])
              } for ${h.name}` +
                ` (stream ${expected.slice(Math.max(0, i - 2), i + 3).map(describeEvent)},` +
                ` ${h.name} ${listened.slice(Math.max(0, i - 2), i + 3).map(describeEvent)})`
            )
            break
          }
        }
      }
    }
    return violations
  }).pipe(Effect.withMaxOpsBeforeYield(s.maxOps))

/** How long (real time) a scenario may run before it counts as hung: runs take milliseconds. */
const hangMillis = 20_000

/** Fails after `millis` of real time, whatever the test clock does. */
const realTimeout = (millis: number, message: () => string): Effect.Effect<never, Error> =>
  Effect.async<never, Error>((resume) => {
    const timer = setTimeout(() => resume(Effect.fail(new Error(message()))), millis)
    return Effect.sync(() => clearTimeout(timer))
  })

/**
 * Runs a scenario and fails with its violations; a scenario that hangs (something the model waits for never ends)
 * fails with where it hung, instead of the whole property timing out without a counterexample.
 */
export const run = (s: Scenario) => {
  const progress = { step: "setup" }
  return Effect.raceFirst(
    // on a TestClock of its own, without the warnings whose semaphore Effect 3.22 can leak (see ./testClock.ts)
    Effect.disconnect(Effect.provide(runScenario(s, progress), quietTestClock)),
    realTimeout(hangMillis, () => `hung at ${progress.step}: ${JSON.stringify(s)}`)
  ).pipe(
    Effect.orDie,
    Effect.map((violations) => {
      assert.deepStrictEqual(violations, [], JSON.stringify(s))
    })
  )
}
