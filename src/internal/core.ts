import type * as Cause from "effect/Cause"
import type * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import { pipeArguments } from "effect/Pipeable"
import * as Runtime from "effect/Runtime"
import * as RuntimeFlags from "effect/RuntimeFlags"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import type * as Tracer from "effect/Tracer"
import type * as Driver from "../Driver.js"
import type * as Policy from "../Policy.js"
import type * as PoolTypes from "../Pool.js"
import type { PoolConfigError, PoolError, PoolStats, PoolUsageError } from "../PoolError.js"
import type * as config from "./config.js"
import * as driver from "./driver.js"
import { Feed, log } from "./events.js"
import { Counts, type Item } from "./item.js"
import { List } from "./list.js"
import * as metrics from "./metrics.js"
import { DeadlineHeap, type Waiter } from "./waiters.js"

/** Effect's built-in tracer, which exports spans nowhere: with it installed, waits are measured by a histogram only. */
const defaultTracer: Tracer.Tracer = Effect.runSync(Effect.tracer)

/** @internal */
export const TypeId: PoolTypes.TypeId = Symbol.for("effect-reservoir/Pool") as PoolTypes.TypeId

/**
 * The delays between connect attempts while the database refuses them, unless a policy gives its own: 100 ms,
 * doubling, capped at 10 seconds, each jittered by ±20 %, so that many pools restarting together do not reconnect
 * in step.
 *
 * @internal
 */
export const defaultConnectBackoff: Schedule.Schedule<unknown, Cause.Cause<unknown>> = Schedule.exponential(
  "100 millis",
  2
).pipe(Schedule.union(Schedule.spaced("10 seconds")), Schedule.jittered)

const resolveDriver = <C, E>(options: PoolTypes.Options<C, E>): Driver.Driver<C, E> =>
  "driver" in options && options.driver !== undefined ?
    options.driver :
    driver.fromAcquire((options as { readonly acquire: Effect.Effect<C, E, Scope.Scope> }).acquire)

/**
 * The fiber running now, if any: the borrower at a checkout. This is what `Fiber.getCurrentFiber` reads (the slot
 * Effect's runtime sets while a fiber runs), without the `Option` it allocates on every checkout.
 *
 * @internal
 */
export const currentFiber = (): Fiber.RuntimeFiber<unknown, unknown> | undefined =>
  (globalThis as { readonly [currentFiberSlot]?: Fiber.RuntimeFiber<unknown, unknown> })[currentFiberSlot]

const currentFiberSlot = "effect/FiberCurrent"

/**
 * A pool kind's own lending (`internal/kinds.ts`: SQLAlchemy's StaticPool, SingletonThreadPool and AssertionPool),
 * which the core's exclusive lending cannot express: one connection shared by concurrent checkouts, the same
 * connection for a fiber's nested checkouts, a second checkout failing. Its constructor sets it on the pool it made;
 * `Pool.use`, `get`, `checkout`, `checkin` and `recreate` then go through it, and it builds on the core's own
 * (`useCore`, `checkoutCore`, ... in `pool.ts`). Everything else (stats, status, events, invalidate) is the core's.
 *
 * @internal
 */
export interface Lending<C, E> {
  use<A, E2, R>(
    f: (connection: C) => Effect.Effect<A, E2, R>,
    options: PoolTypes.CheckoutOptions | undefined
  ): Effect.Effect<A, E | E2 | PoolError, R>
  get(options: PoolTypes.CheckoutOptions | undefined): Effect.Effect<C, E | PoolError, Scope.Scope>
  checkout(options: PoolTypes.CheckoutOptions | undefined): Effect.Effect<PoolTypes.Lease<C>, E | PoolError>
  checkin(
    lease: PoolTypes.Lease<C>,
    options: PoolTypes.CheckinOptions | undefined
  ): Effect.Effect<void, PoolUsageError>
  recreate(): Effect.Effect<PoolTypes.Pool<C, E>, PoolConfigError, Scope.Scope>
}

/**
 * One pool's state. Each concept that acts on it has its own module: `checkout.ts` (taking, waiting, validating),
 * `checkin.ts` (returning, reset, hand-off), `connector.ts` (every connect and its backoff), `queue.ts` (the
 * waiter queue, its deadlines and the reaper), `lifecycle.ts` (invalidation, detach, dispose, upkeep, shutdown), `events.ts` (the feed); `item.ts`
 * holds the states and the one function that moves an item between them.
 *
 * @internal
 */
export class PoolImpl<C, E> implements PoolTypes.Pool<C, E> {
  readonly [TypeId]: PoolTypes.TypeId = TypeId
  readonly name: string
  readonly driver: Driver.Driver<C, E>
  /** Read once: most drivers have no `busy`, and their returns skip the question. */
  readonly hasBusy: boolean
  readonly size: number
  readonly min: number
  readonly max: number
  readonly maxWaiters: number
  readonly timeoutMillis: number
  readonly shutdownMillis: number
  readonly maxCheckoutAttempts: number
  readonly lifo: boolean
  readonly echo: false | "info" | "debug"

  // state
  readonly counts = new Counts()
  /** The idle connections, oldest first. */
  readonly idle = new List<Item<C>>()
  /** The waiters, in arrival order (a retry after a rejection goes to the front: it arrived before everyone). */
  readonly queue = new List<Waiter<C>>()
  readonly deadlines = new DeadlineHeap<C>()
  /** Every connection established and not yet closing, for the forced close at shutdown and lookups. */
  readonly items = new Set<Item<C>>()
  /** Waiters that have a connect in flight on their behalf. */
  assigned = 0
  generation = 0
  closed = false
  nextId = 1

  // counters
  opened = 0
  closedCount = 0
  readonly closedBy: Record<string, number> = {}
  detached = 0
  checkouts = 0
  connectFailures = 0
  timeouts = 0
  /** The last connect failure, while no connect has succeeded since. */
  lastConnectFailure: Cause.Cause<unknown> | undefined = undefined

  // the connector's backoff
  /** Connect failures since the last success: while above 0, one connect at a time probes the database. */
  consecutiveFailures = 0
  /** A backoff delay is running: no connect starts until it ends. */
  backingOff = false
  backoff: Schedule.Schedule<unknown, Cause.Cause<unknown>> = defaultConnectBackoff
  backoffState: unknown = defaultConnectBackoff.initial

  // policies
  instances: ReadonlyArray<Policy.Instance<C, E, unknown>> = []
  readonly byRecipe = new Map<Policy.Policy<C, E, any>, Policy.Instance<C, E, unknown>>()
  connectHooks: ReadonlyArray<Policy.Hooks<C, E>> = []
  checkoutHooks: ReadonlyArray<Policy.Hooks<C, E>> = []
  returnHooks: ReadonlyArray<Policy.Hooks<C, E>> = []
  prepareHooks: ReadonlyArray<Policy.Hooks<C, E>> = []
  admitHooks: ReadonlyArray<Policy.Hooks<C, E>> = []
  connectWraps: ReadonlyArray<Policy.Hooks<C, E>> = []
  traceCheckouts: "stack" | "span" | undefined = undefined
  /**
   * With `traceCheckouts: "stack"`: where each fiber last asked for a checkout (`use`, `get`, `checkout`), captured
   * in the caller's own frame when it called. A stack taken at the lending itself shows only the pool's internals,
   * and for a waiter the fiber that handed the connection over (a returner, a connect). Weak: a fiber that ends
   * takes its entry with it.
   */
  readonly callSites = new WeakMap<Fiber.RuntimeFiber<unknown, unknown>, Error>()
  /** The policy whose `liveness` hook every ping runs, if any. */
  liveness: Policy.Hooks<C, E> | undefined = undefined
  readonly feed: Feed<C>
  /** Whether a lent connection needs anything beyond putting it back (hooks, listeners, echo). */
  slowReturn = false
  slowCheckout = false

  /** The pool kind's lending, when a kind's constructor made the pool (see `Lending`). */
  lending: Lending<C, E> | undefined = undefined

  // runtime
  readonly fibers = new Set<Fiber.RuntimeFiber<unknown, unknown>>()
  reaper: Fiber.RuntimeFiber<unknown, unknown> | undefined = undefined
  /** The deadline the reaper sleeps until (`Infinity` while it waits for a first deadline). */
  reaperTarget = Infinity
  reaperWake: ((effect: Effect.Effect<void>) => void) | undefined = undefined
  drainedWake: ((effect: Effect.Effect<void>) => void) | undefined = undefined
  firstConnectDone = false
  readonly metrics: metrics.PoolMetrics
  /** Whether a tracer that exports spans is installed: a span per wait costs ~3x under contention otherwise. */
  readonly traceWaits: boolean
  readonly waitSpan: {
    readonly kind: "client"
    readonly captureStackTrace: false
    readonly attributes: Readonly<Record<string, unknown>>
  }
  readonly runFork: <A, E1>(effect: Effect.Effect<A, E1>) => Fiber.RuntimeFiber<A, E1>

  constructor(
    readonly options: PoolTypes.Options<C, E>,
    readonly config: config.PoolConfig,
    readonly clock: Clock.Clock,
    tracer: Tracer.Tracer,
    runtime: Runtime.Runtime<never>
  ) {
    this.name = config.name
    this.driver = resolveDriver(options)
    this.hasBusy = this.driver.busy !== undefined
    this.size = config.size
    this.min = config.min
    this.max = config.size + (config.maxOverflow === "unbounded" ? Infinity : config.maxOverflow)
    this.maxWaiters = config.maxWaiters === "unbounded" ? Infinity : config.maxWaiters
    this.timeoutMillis = Duration.toMillis(config.timeout)
    this.shutdownMillis = Duration.toMillis(config.shutdownTimeout)
    this.maxCheckoutAttempts = config.maxCheckoutAttempts
    this.lifo = config.order === "lifo"
    this.echo = config.echo === true ? "info" : config.echo === false ? false : "debug"
    this.feed = new Feed<C>(this.name, () => this.refreshFlags())
    // the labels reach the metrics as attributes (issue 12: Spanner's labels on every session, event and metric)
    this.metrics = metrics.make(this.name, config.labels)
    this.traceWaits = tracer !== defaultTracer
    this.waitSpan = {
      kind: "client",
      captureStackTrace: false,
      attributes: { "db.client.connection.pool.name": this.name }
    }
    this.metrics.limits(config.size, this.max, config.min)
    // background fibers must be interruptible even though the pool is built under `uninterruptible`
    const run = Runtime.runFork(Runtime.enableRuntimeFlag(runtime, RuntimeFlags.Interruption))
    this.runFork = (effect) => run(Effect.annotateLogs(effect, "pool", this.name)) as any
    this.refreshFlags()
  }

  /** Installs the policies' instances, in the order the policies were listed. */
  install(instances: ReadonlyArray<Policy.Instance<C, E, unknown>>): void {
    this.instances = instances
    this.connectHooks = instances.filter((p) => p.onConnect !== undefined)
    this.checkoutHooks = instances.filter((p) => p.onCheckout !== undefined)
    this.returnHooks = instances.filter((p) => p.onReturn !== undefined)
    this.prepareHooks = instances.filter((p) => p.prepare !== undefined)
    this.admitHooks = instances.filter((p) => p.admit !== undefined)
    this.connectWraps = instances.filter((p) => p.connect !== undefined)
    for (const instance of instances) {
      if (instance.connectBackoff !== undefined) this.backoff = instance.connectBackoff
      if (instance.traceCheckouts !== undefined) this.traceCheckouts = instance.traceCheckouts
      if (instance.liveness !== undefined) this.liveness = instance
    }
    this.backoffState = this.backoff.initial
    this.refreshFlags()
  }

  refreshFlags(): void {
    const heard = this.feed.listening || this.echo === "debug"
    this.slowCheckout = this.checkoutHooks.length > 0 || heard || this.traceCheckouts !== undefined
    this.slowReturn = this.returnHooks.length > 0 || this.prepareHooks.length > 0 || heard
  }

  pipe() {
    return pipeArguments(this, arguments)
  }

  now(): number {
    return this.clock.unsafeCurrentTimeMillis()
  }

  fork(effect: Effect.Effect<void>): Fiber.RuntimeFiber<void, never> {
    const fiber = this.runFork(effect)
    this.fibers.add(fiber)
    fiber.addObserver(() => this.fibers.delete(fiber))
    return fiber
  }

  log(level: "info" | "debug", message: string, item?: Item<C>): Effect.Effect<void> {
    return this.echo === false ? Effect.void : log(this.echo, this.name, level, message, item?.record)
  }

  stats(): PoolStats {
    const counts = this.counts
    return {
      name: this.name,
      size: this.size,
      maxOverflow: this.max - this.size,
      min: this.min,
      open: counts.open,
      opening: counts.connecting,
      idle: this.idle.length,
      maintained: counts.inUpkeep,
      inUse: counts.inUse,
      waiting: this.queue.length,
      overflow: counts.live - this.size,
      generation: this.generation,
      opened: this.opened,
      closed: this.closedCount,
      closedBy: { ...this.closedBy },
      detached: this.detached,
      checkouts: this.checkouts,
      connectFailures: this.connectFailures,
      timeouts: this.timeouts,
      backingOff: this.backingOff || this.consecutiveFailures > 0,
      eventsDropped: this.feed.dropped,
      isClosed: this.closed
    }
  }

  status(): string {
    const counts = this.counts
    return `Pool size: ${this.size}  Connections in pool: ${counts.inPool} ` +
      `Current Overflow: ${counts.live - this.size} Current Checked out connections: ${counts.inUse}`
  }

  gauges(): void {
    this.metrics.gauges(this.counts.inPool, this.counts.inUse, this.queue.length)
  }

  checkDrained(): void {
    if (this.closed && this.counts.inUse === 0 && this.drainedWake !== undefined) {
      const wake = this.drainedWake
      this.drainedWake = undefined
      wake(Effect.void)
    }
  }
}
