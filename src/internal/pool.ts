import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import type * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import { dual } from "effect/Function"
import * as Layer from "effect/Layer"
import { pipeArguments } from "effect/Pipeable"
import { hasProperty } from "effect/Predicate"
import * as PubSub from "effect/PubSub"
import * as Runtime from "effect/Runtime"
import * as RuntimeFlags from "effect/RuntimeFlags"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type * as Tracer from "effect/Tracer"
import type { ConnectionRecord } from "../ConnectionRecord.js"
import type * as Driver from "../Driver.js"
import type * as Policy from "../Policy.js"
import type * as PoolTypes from "../Pool.js"
import {
  ConnectionRejected,
  PoolCheckoutRejectedError,
  PoolClosedError,
  type PoolConfigError,
  type PoolError,
  PoolExhaustedError,
  type PoolStats,
  PoolTimeoutError,
  PoolUsageError
} from "../PoolError.js"
import type * as PoolEvent from "../PoolEvent.js"
import { closeReasons, listenerKey } from "../PoolEvent.js"
import * as config from "./config.js"
import { Deque } from "./deque.js"
import * as driver from "./driver.js"
import * as metrics from "./metrics.js"

/** Effect's built-in tracer, which exports spans nowhere: with it installed, waits are measured by a histogram only. */
const defaultTracer: Tracer.Tracer = Effect.runSync(Effect.tracer)

/** @internal */
export const TypeId: PoolTypes.TypeId = Symbol.for("effect-reservoir/Pool") as PoolTypes.TypeId

/** @internal */
export const LeaseTypeId: PoolTypes.LeaseTypeId = Symbol.for("effect-reservoir/Pool/Lease") as PoolTypes.LeaseTypeId

// ---------------------------------------------------------------------------------------------------------------
// items and waiters
// ---------------------------------------------------------------------------------------------------------------

const IDLE = 0
const LENT = 1
const RETURNING = 2
const MAINTAINED = 3
const CLOSING = 4
const CLOSED = 5
const DETACHED = 6
type ItemState = 0 | 1 | 2 | 3 | 4 | 5 | 6

/**
 * A pooled connection and its record. The record fields are what listeners and policies see; the rest is the pool's.
 *
 * @internal
 */
export class Item<C> implements ConnectionRecord {
  lastUsedAt: number
  lastValidatedAt = 0
  uses = 0
  connection: C = undefined as C
  state: ItemState = IDLE
  /** Incremented at every lending; a lease is valid only while its token matches. */
  token = 0
  /** `true` from lending until the borrower returns it (stays true if the pool closes it underneath). */
  borrowed = false
  invalidated = false
  soft = false
  /** What a grant resumes the waiter with: an `Exit` is immutable, so one per connection serves every hand-off. */
  granted: Exit.Exit<Item<C>> | undefined = undefined
  private _properties: Map<string, unknown> | undefined = undefined
  constructor(
    readonly id: number,
    readonly pool: string,
    readonly createdAt: number,
    readonly generation: number,
    readonly labels: Readonly<Record<string, string>>,
    readonly scope: Scope.CloseableScope
  ) {
    this.lastUsedAt = createdAt
  }
  get properties(): Map<string, unknown> {
    return this._properties ??= new Map()
  }
  toJSON() {
    return {
      id: this.id,
      pool: this.pool,
      createdAt: this.createdAt,
      lastUsedAt: this.lastUsedAt,
      lastValidatedAt: this.lastValidatedAt,
      uses: this.uses,
      generation: this.generation,
      labels: this.labels
    }
  }
}

const WAITING = 0
const GRANTED = 1
const DONE = 2
/** `Pool.use` only: the borrower's function has started on the connection it was handed. */
const RUNNING = 3

interface ConnectTask<C> {
  waiter: Waiter<C> | undefined
}

/**
 * A parked checkout. Waiters form an intrusive doubly linked list, so leaving the queue is O(1) and an abandoned
 * waiter leaves nothing behind.
 */
class Waiter<C> {
  prev: Waiter<C> | undefined = undefined
  next: Waiter<C> | undefined = undefined
  state: 0 | 1 | 2 | 3 = WAITING
  resume: ((effect: Effect.Effect<Item<C>, any>) => void) | undefined = undefined
  /** The outcome decided before `resume` was registered (never in practice: hand-offs happen on later steps). */
  early: Effect.Effect<Item<C>, any> | undefined = undefined
  item: Item<C> | undefined = undefined
  task: ConnectTask<C> | undefined = undefined
  constructor(readonly enqueuedAt: number, readonly deadline: number) {}
}

/**
 * Runs policies' hooks in order, calling them now, at the checkout or return: while a hook answers `Effect.void`
 * (done, nothing to run) the next is called at once; from the first that answers anything else, the rest run after
 * it, each after the one before. `undefined` when every hook was done at once. A hook that throws instead of
 * answering fails with the defect, as it would inside a step.
 */
const chainHooks = <C, E, X, F>(
  policies: ReadonlyArray<Policy.Policy<C, E>>,
  call: (policy: Policy.Policy<C, E>, context: X) => Effect.Effect<void, F>,
  context: X
): Effect.Effect<void, F> | undefined => {
  for (let i = 0; i < policies.length; i++) {
    let effect: Effect.Effect<void, F>
    try {
      effect = call(policies[i]!, context)
    } catch (defect) {
      effect = Effect.die(defect)
    }
    if (effect === Effect.void) continue
    for (let j = i + 1; j < policies.length; j++) {
      const policy = policies[j]!
      effect = Effect.zipRight(effect, Effect.suspend(() => call(policy, context)))
    }
    return effect
  }
  return undefined
}

const checkoutHook = <C, E>(policy: Policy.Policy<C, E>, context: Policy.HookContext<C, E>) =>
  policy.onCheckout!(context)

const returnHook = <C, E>(policy: Policy.Policy<C, E>, context: Policy.ReturnContext<C, E>) => policy.onReturn!(context)

/**
 * What a checkout hook receives. A class, so every context has one shape: hooks read it on every checkout, and a
 * spread object literal per call made those reads slow.
 */
class HookContextImpl<C, E> implements Policy.HookContext<C, E> {
  readonly markValidated: () => void
  constructor(
    readonly connection: C,
    readonly record: Item<C>,
    readonly driver: Driver.Driver<C, E>,
    readonly now: number,
    clock: { now(): number }
  ) {
    this.markValidated = () => {
      record.lastValidatedAt = clock.now()
    }
  }
}

/** What a return hook receives: the hook context and how the borrower's work ended. */
class ReturnContextImpl<C, E> extends HookContextImpl<C, E> implements Policy.ReturnContext<C, E> {
  constructor(
    connection: C,
    record: Item<C>,
    driver: Driver.Driver<C, E>,
    now: number,
    clock: { now(): number },
    readonly exit: Exit.Exit<unknown, unknown>
  ) {
    super(connection, record, driver, now, clock)
  }
}

// ---------------------------------------------------------------------------------------------------------------
// options
// ---------------------------------------------------------------------------------------------------------------

const resolveDriver = <C, E>(options: PoolTypes.Options<C, E>): Driver.Driver<C, E> =>
  "driver" in options && options.driver !== undefined ?
    options.driver :
    driver.fromAcquire((options as { readonly acquire: Effect.Effect<C, E, Scope.Scope> }).acquire)

const asCloseReason = (reason: string): PoolEvent.CloseReason =>
  (closeReasons as ReadonlyArray<string>).includes(reason) ? reason as PoolEvent.CloseReason : "rejected"

// ---------------------------------------------------------------------------------------------------------------
// the pool
// ---------------------------------------------------------------------------------------------------------------

/** @internal */
export class PoolImpl<C, E> implements PoolTypes.Pool<C, E> {
  readonly [TypeId]: PoolTypes.TypeId = TypeId
  readonly name: string
  readonly config: config.PoolConfig
  readonly driver: Driver.Driver<C, E>
  /** Read once: most drivers have no `busy`, and their returns skip the question. */
  readonly hasBusy: boolean
  readonly max: number
  readonly maxWaiters: number
  readonly timeoutMillis: number
  readonly shutdownMillis: number
  readonly lifo: boolean

  // state
  readonly idle = new Deque<Item<C>>()
  head: Waiter<C> | undefined = undefined
  tail: Waiter<C> | undefined = undefined
  waiting = 0
  /** Waiters that have a connect in flight on their behalf. */
  assigned = 0
  open = 0
  opening = 0
  lent = 0
  generation = 0
  closed = false
  readonly byConnection = new Map<C, Item<C>>()
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
  consecutiveRefillFailures = 0
  refillBlocked = false

  // hooks
  readonly connectHooks: ReadonlyArray<Policy.Policy<C, E>>
  readonly checkoutHooks: ReadonlyArray<Policy.Policy<C, E>>
  readonly returnHooks: ReadonlyArray<Policy.Policy<C, E>>
  listeners: ReadonlyArray<PoolEvent.Listeners<C>> = []
  checkoutListeners = 0
  listening = false
  subscribers = 0
  readonly pubsub: PubSub.PubSub<PoolEvent.PoolEvent<C>>
  /** Whether a lent connection needs anything beyond putting it back (hooks, listeners, echo). */
  slowReturn: boolean
  slowCheckout: boolean
  readonly echo: false | "info" | "debug"

  // runtime
  readonly fibers = new Set<Fiber.RuntimeFiber<unknown, unknown>>()
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
    resolved: config.PoolConfig,
    readonly clock: Clock.Clock,
    tracer: Tracer.Tracer,
    runtime: Runtime.Runtime<never>,
    pubsub: PubSub.PubSub<PoolEvent.PoolEvent<C>>
  ) {
    this.config = resolved
    this.name = resolved.name
    this.driver = resolveDriver(options)
    this.hasBusy = this.driver.busy !== undefined
    this.max = config.maxOf(resolved)
    this.maxWaiters = resolved.maxWaiters === "unbounded" ? Infinity : resolved.maxWaiters
    this.timeoutMillis = Duration.toMillis(resolved.timeout)
    this.shutdownMillis = Duration.toMillis(resolved.shutdownTimeout)
    this.lifo = resolved.order === "lifo"
    const policies = options.policies ?? []
    this.connectHooks = policies.filter((p) => p.onConnect !== undefined)
    this.checkoutHooks = policies.filter((p) => p.onCheckout !== undefined)
    this.returnHooks = policies.filter((p) => p.onReturn !== undefined)
    this.echo = resolved.echo === true ? "info" : resolved.echo === false ? false : "debug"
    this.pubsub = pubsub
    this.metrics = metrics.make(this.name)
    this.traceWaits = tracer !== defaultTracer
    this.waitSpan = {
      kind: "client",
      captureStackTrace: false,
      attributes: { "db.client.connection.pool.name": this.name }
    }
    this.metrics.limits(resolved.size, this.max, resolved.min)
    // background fibers must be interruptible even though the pool is built under `uninterruptible`
    const run = Runtime.runFork(Runtime.enableRuntimeFlag(runtime, RuntimeFlags.Interruption))
    this.runFork = (effect) => run(Effect.annotateLogs(effect, "pool", this.name)) as any
    this.slowReturn = false
    this.slowCheckout = false
    this.refreshFlags()
  }

  refreshFlags(): void {
    this.checkoutListeners = this.listeners.filter((l) => l.checkout !== undefined).length
    this.listening = this.listeners.length > 0 || this.subscribers > 0
    this.slowCheckout = this.checkoutHooks.length > 0 || this.listening || this.echo === "debug"
    this.slowReturn = this.returnHooks.length > 0 || this.listening || this.echo === "debug"
  }

  pipe() {
    return pipeArguments(this, arguments)
  }

  now(): number {
    return this.clock.unsafeCurrentTimeMillis()
  }

  // -------------------------------------------------------------------------------------------------------------
  // background fibers
  // -------------------------------------------------------------------------------------------------------------

  fork(effect: Effect.Effect<void>): void {
    const fiber = this.runFork(effect)
    this.fibers.add(fiber)
    fiber.addObserver(() => this.fibers.delete(fiber))
  }

  // -------------------------------------------------------------------------------------------------------------
  // events
  // -------------------------------------------------------------------------------------------------------------

  /** Publishes an event to subscribers and runs the listeners for it; failures of listeners are logged. */
  emit(event: PoolEvent.PoolEvent<C>): Effect.Effect<void> {
    if (!this.listening) return Effect.void
    if (this.subscribers > 0) this.pubsub.unsafeOffer(event)
    const key = listenerKey[event._tag]
    let effect: Effect.Effect<void> | undefined
    for (const listener of this.listeners) {
      const handler = listener[key] as ((event: PoolEvent.PoolEvent<C>) => Effect.Effect<void, unknown>) | undefined
      if (handler === undefined) continue
      const run = Effect.catchAllCause(
        Effect.suspend(() => handler(event)),
        (cause) => Effect.logWarning(`listener for ${event._tag} failed`, cause)
      )
      effect = effect === undefined ? run : Effect.zipRight(effect, run)
    }
    return effect ?? Effect.void
  }

  log(level: "info" | "debug", message: string, record?: ConnectionRecord): Effect.Effect<void> {
    if (this.echo === false || (level === "debug" && this.echo !== "debug")) return Effect.void
    const log = level === "info" ? Effect.logInfo(message) : Effect.logDebug(message)
    return Effect.annotateLogs(
      log,
      record === undefined ? { pool: this.name } : { pool: this.name, connection: record.id }
    )
  }

  // -------------------------------------------------------------------------------------------------------------
  // statistics
  // -------------------------------------------------------------------------------------------------------------

  stats(): PoolStats {
    return {
      name: this.name,
      size: this.config.size,
      maxOverflow: this.max - this.config.size,
      min: this.config.min,
      open: this.open,
      opening: this.opening,
      idle: this.idle.length,
      inUse: this.lent,
      waiting: this.waiting,
      overflow: this.open + this.opening - this.config.size,
      generation: this.generation,
      opened: this.opened,
      closed: this.closedCount,
      closedBy: { ...this.closedBy },
      detached: this.detached,
      checkouts: this.checkouts,
      connectFailures: this.connectFailures,
      timeouts: this.timeouts,
      isClosed: this.closed
    }
  }

  status(): string {
    const overflow = this.open + this.opening - this.config.size
    return `Pool size: ${this.config.size}  Connections in pool: ${this.idle.length} ` +
      `Current Overflow: ${overflow} Current Checked out connections: ${this.lent}`
  }

  gauges(): void {
    this.metrics.gauges(this.idle.length, this.lent, this.waiting)
  }

  // -------------------------------------------------------------------------------------------------------------
  // waiter queue
  // -------------------------------------------------------------------------------------------------------------

  enqueue(waiter: Waiter<C>, front: boolean): void {
    if (this.head === undefined) {
      this.head = this.tail = waiter
    } else if (front) {
      waiter.next = this.head
      this.head.prev = waiter
      this.head = waiter
    } else {
      waiter.prev = this.tail
      this.tail!.next = waiter
      this.tail = waiter
    }
    this.waiting++
    if (this.reaperWake !== undefined && waiter.deadline !== Infinity) {
      const wake = this.reaperWake
      this.reaperWake = undefined
      wake(Effect.void)
    }
  }

  unlink(waiter: Waiter<C>): void {
    if (waiter.prev !== undefined) waiter.prev.next = waiter.next
    else this.head = waiter.next
    if (waiter.next !== undefined) waiter.next.prev = waiter.prev
    else this.tail = waiter.prev
    waiter.prev = waiter.next = undefined
    this.waiting--
    const task = waiter.task
    if (task !== undefined) {
      waiter.task = undefined
      task.waiter = undefined
      this.assigned--
      this.adopt(task)
    }
  }

  /** Gives a connect whose waiter left to the oldest waiter that has none, so its failure still reaches someone. */
  adopt(task: ConnectTask<C>): void {
    if (this.waiting === this.assigned) return
    for (let w = this.head; w !== undefined; w = w.next) {
      if (w.task === undefined) {
        w.task = task
        task.waiter = w
        this.assigned++
        return
      }
    }
  }

  /** Hands a connection to a waiter; the waiter's fiber resumes on its own later step. */
  grant(waiter: Waiter<C>, item: Item<C>, now: number): void {
    this.unlink(waiter)
    this.lend(item, now)
    waiter.state = GRANTED
    waiter.item = item
    this.metrics.waitTime(now - waiter.enqueuedAt)
    const effect = item.granted ??= Exit.succeed(item)
    if (waiter.resume !== undefined) waiter.resume(effect)
    else waiter.early = effect
  }

  /** Ends a waiter with a failure (timeout, connect error, shutdown). */
  reject(waiter: Waiter<C>, effect: Effect.Effect<never, unknown>): void {
    this.unlink(waiter)
    waiter.state = DONE
    if (waiter.resume !== undefined) waiter.resume(effect)
    else waiter.early = effect
  }

  lend(item: Item<C>, now: number): void {
    if (item.state === IDLE) this.lent++
    item.state = LENT
    item.borrowed = true
    item.token++
    item.uses++
    item.lastUsedAt = now
    this.checkouts++
  }

  // -------------------------------------------------------------------------------------------------------------
  // checkout
  // -------------------------------------------------------------------------------------------------------------

  /**
   * Checks out a connection and continues with `k` (`get`, `checkout`; `use` has a combined wait of its own, see
   * `useParked`): synchronously on the fast path, after `acquireSlow` otherwise. Only the wait is interruptible
   * (`restore`); everything else runs uninterruptibly, so a connection handed over at the moment of an interruption
   * or timeout is given back, never lost. It reads the pool's state when called, so call it when the checkout runs:
   * inside a mask's body or a `flatMap` callback, which the runtime calls at that moment.
   */
  checkoutThen<A, E2, R>(
    restore: <A1, E1, R1>(effect: Effect.Effect<A1, E1, R1>) => Effect.Effect<A1, E1, R1>,
    k: (item: Item<C>) => Effect.Effect<A, E2, R>
  ): Effect.Effect<A, E | E2 | PoolError, R> {
    const item = this.tryTake()
    return item !== undefined ? k(item) : Effect.flatMap(this.acquireSlow(restore, 0), k)
  }

  /**
   * The fast path, synchronous: an idle connection when nobody waits and nothing needs checking. Callers run it
   * inside their own step and fall back to `acquireSlow`.
   */
  tryTake(): Item<C> | undefined {
    if (this.closed || this.waiting !== 0 || this.slowCheckout || this.idle.length === 0) return undefined
    const item = this.takeIdle()
    if (item !== undefined) this.gauges()
    return item
  }

  acquireSlow(
    restore: <A, E1, R>(effect: Effect.Effect<A, E1, R>) => Effect.Effect<A, E1, R>,
    attempt: number
  ): Effect.Effect<Item<C>, E | PoolError> {
    if (this.closed) return Effect.fail(new PoolClosedError({ pool: this.name }))
    if (this.waiting === 0) {
      const item = this.takeIdle()
      if (item !== undefined) {
        this.gauges()
        return this.slowCheckout ? this.validate(item, restore, attempt) : Effect.succeed(item)
      }
    }
    return this.park(restore, attempt)
  }

  takeIdle(): Item<C> | undefined {
    for (;;) {
      const item = this.lifo ? this.idle.pop() : this.idle.shift()
      if (item === undefined) return undefined
      const reason = this.staleReason(item)
      if (reason !== undefined) {
        this.fork(this.closeItem(item, reason))
        continue
      }
      this.lend(item, this.now())
      return item
    }
  }

  staleReason(item: Item<C>): PoolEvent.CloseReason | undefined {
    if (item.invalidated || item.soft) return "invalidated"
    if (item.generation < this.generation) return "stale"
    return undefined
  }

  /** Queues a waiter (at the front for a retry after a rejected checkout), or refuses when `maxWaiters` are queued. */
  enqueueWaiter(attempt: number): Waiter<C> | PoolExhaustedError {
    if (this.waiting >= this.maxWaiters) {
      return new PoolExhaustedError({ pool: this.name, maxWaiters: this.maxWaiters, stats: this.stats() })
    }
    const now = this.now()
    const waiter = new Waiter<C>(now, now + this.timeoutMillis)
    this.enqueue(waiter, attempt > 0)
    this.pump()
    this.gauges()
    return waiter
  }

  /** The wait itself: resumed by `grant` or `reject`, inside a span when an exporting tracer is installed. */
  waitFor(waiter: Waiter<C>): Effect.Effect<Item<C>, E | PoolError> {
    const wait = Effect.async<Item<C>, E | PoolError>((resume) => {
      if (waiter.early !== undefined) return resume(waiter.early)
      waiter.resume = resume
    })
    return this.traceWaits ? Effect.withSpan(wait, "db.client.connection.wait", this.waitSpan) : wait
  }

  park(
    restore: <A, E1, R>(effect: Effect.Effect<A, E1, R>) => Effect.Effect<A, E1, R>,
    attempt: number
  ): Effect.Effect<Item<C>, E | PoolError> {
    const waiter = this.enqueueWaiter(attempt)
    if (!(waiter instanceof Waiter)) return Effect.fail(waiter)
    // The waiter is queued while uninterruptible and the clean-up is installed outside `restore`, so an interruption
    // can only land once the clean-up is in place; it then decides, in one place, whether to leave the queue or to
    // give back a connection that was handed over at the same moment.
    // Failure only: a grant passes straight through, without a success frame or an allocation.
    const waited = Effect.catchAllCause(
      restore(this.waitFor(waiter)),
      (cause) => Effect.zipRight(this.cancel(waiter), Effect.failCause(cause))
    )
    return this.slowCheckout ? Effect.flatMap(waited, (item) => this.validate(item, restore, attempt)) : waited
  }

  /**
   * `Pool.use` when it has to wait and no checkout check applies: the wait and the borrower's function share one
   * interruptible region and one clean-up, instead of a region and a clean-up each. The clean-up tells the cases
   * apart by the waiter's state: still queued or failed (leave the queue), handed a connection the function never
   * started on (give it back untouched), or running (return it, as after any use).
   */
  useParked<A, E2, R>(
    restore: <A1, E1, R1>(effect: Effect.Effect<A1, E1, R1>) => Effect.Effect<A1, E1, R1>,
    f: (connection: C) => Effect.Effect<A, E2, R>
  ): Effect.Effect<A, E | E2 | PoolError, R> {
    const waiter = this.enqueueWaiter(0)
    if (!(waiter instanceof Waiter)) return Effect.fail(waiter)
    let token = 0
    return Effect.matchCauseEffect(
      restore(Effect.flatMap(this.waitFor(waiter), (item) => {
        waiter.state = RUNNING
        token = item.token
        return f(item.connection)
      })),
      {
        onSuccess: (a) => {
          const item = waiter.item!
          waiter.item = undefined
          return this.returnAfterSuccess(item, token, a)
        },
        onFailure: (cause) => {
          if (waiter.state !== RUNNING) return Effect.zipRight(this.cancel(waiter), Effect.failCause(cause))
          const item = waiter.item!
          waiter.item = undefined
          return this.returnAfterFailure(item, token, cause)
        }
      }
    )
  }

  /** Runs when a waiting checkout is interrupted: leave the queue, or give back what was handed over meanwhile. */
  cancel(waiter: Waiter<C>): Effect.Effect<void> {
    if (waiter.state === WAITING) {
      waiter.state = DONE
      this.unlink(waiter)
      this.gauges()
      return Effect.void
    }
    if (waiter.state === GRANTED && waiter.item !== undefined) {
      const item = waiter.item
      waiter.item = undefined
      waiter.state = DONE
      this.checkouts--
      item.uses--
      item.borrowed = false
      return this.offer(item)
    }
    return Effect.void
  }

  /** Runs checkout policies and listeners; a rejection closes the connection and retries, a bounded number of times. */
  validate(
    item: Item<C>,
    restore: <A, E1, R>(effect: Effect.Effect<A, E1, R>) => Effect.Effect<A, E1, R>,
    attempt: number
  ): Effect.Effect<Item<C>, E | PoolError> {
    const heard = this.checkoutListeners > 0 || this.subscribers > 0 || this.echo === "debug"
    let checks = this.checkoutHooks.length === 0 ?
      undefined :
      chainHooks(this.checkoutHooks, checkoutHook, this.hookContext(item))
    // every hook passed at once (a cheap check such as `recycle` or `maxUses` answers `Effect.void`), nobody to tell
    if (checks === undefined && !heard) return Effect.succeed(item)
    const event: PoolEvent.Checkout<C> = {
      _tag: "Checkout",
      pool: this.name,
      record: item,
      connection: item.connection
    }
    if (this.checkoutListeners > 0) {
      for (const listener of this.listeners) {
        if (listener.checkout !== undefined) {
          const handler = listener.checkout
          const step = Effect.suspend(() => handler(event))
          checks = checks === undefined ? step : Effect.zipRight(checks, step)
        }
      }
    }
    return Effect.matchCauseEffect(checks ?? Effect.void, {
      onSuccess: () => {
        if (this.subscribers > 0) this.pubsub.unsafeOffer(event)
        return this.echo === "debug" ?
          Effect.as(this.log("debug", "checkout", item), item) :
          Effect.succeed(item)
      },
      onFailure: (cause) => {
        const rejection = Cause.failureOption(cause)
        const failure = rejection._tag === "Some" ? rejection.value : Cause.squash(cause)
        this.checkouts--
        return Effect.zipRight(
          this.closeRejected(item, cause),
          attempt + 1 >= this.config.maxCheckoutAttempts ?
            Effect.fail(new PoolCheckoutRejectedError({ pool: this.name, attempts: attempt + 1, cause: failure })) :
            Effect.suspend(() => this.acquireSlow(restore, attempt + 1))
        )
      }
    })
  }

  /**
   * Closes a connection a policy or listener refused, with the rejection's reason when it names a close reason; a
   * rejection that asks for it starts a new generation first.
   */
  closeRejected(item: Item<C>, cause: Cause.Cause<ConnectionRejected>): Effect.Effect<void> {
    const rejection = Cause.failureOption(cause)
    if (rejection._tag === "Some" && rejection.value.invalidateAll) this.bumpGeneration()
    return this.closeItem(item, rejection._tag === "Some" ? asCloseReason(rejection.value.reason) : "rejected")
  }

  hookContext(item: Item<C>): Policy.HookContext<C, E> {
    return new HookContextImpl(item.connection, item, this.driver, this.now(), this)
  }

  // -------------------------------------------------------------------------------------------------------------
  // return
  // -------------------------------------------------------------------------------------------------------------

  /** Returns a lent connection. A stale lease (already returned, or closed by shutdown) does nothing. */
  release(item: Item<C>, token: number, exit: Exit.Exit<unknown, unknown>): Effect.Effect<void> {
    if (item.token !== token || !item.borrowed) return Effect.void
    item.borrowed = false
    const now = this.now()
    this.metrics.useTime(now - item.lastUsedAt)
    // closed underneath the borrower (hard invalidate or forced shutdown): only the checkin is left to tell
    if (item.state !== LENT) return this.checkinOnly(item)
    if (this.hasBusy) {
      const busy = this.releaseIfBusy(item)
      if (busy !== undefined) return busy
    }
    if (!this.slowReturn) return this.offer(item, now)
    item.state = RETURNING
    return this.slowRelease(item, exit, now)
  }

  /**
   * Asks the driver once whether a returned connection is still busy (`Driver.busy`: its caller was interrupted
   * mid-statement); a busy one is closed now and never lent again. Kept out of `release`, which stays small.
   */
  releaseIfBusy(item: Item<C>): Effect.Effect<void> | undefined {
    const cause = this.driver.busy!(item.connection)
    return cause === undefined
      ? undefined
      : Effect.zipRight(this.invalidateItem(item, cause, false), this.checkinOnly(item))
  }

  checkinOnly(item: Item<C>): Effect.Effect<void> {
    return this.listening
      ? this.emit({ _tag: "Checkin", pool: this.name, record: item, connection: item.connection })
      : Effect.void
  }

  /**
   * Runs the borrower's work on a lent connection and returns it however the work ends. One `matchCauseEffect`
   * under the caller's mask: `onExit` would add a second mask and an `Exit` per cycle.
   */
  run<A, E2, R>(
    item: Item<C>,
    restore: <A1, E1, R1>(effect: Effect.Effect<A1, E1, R1>) => Effect.Effect<A1, E1, R1>,
    f: (connection: C) => Effect.Effect<A, E2, R>
  ): Effect.Effect<A, E2, R> {
    const token = item.token
    return Effect.matchCauseEffect(restore(f(item.connection)), {
      onSuccess: (a) => this.returnAfterSuccess(item, token, a),
      onFailure: (cause) => this.returnAfterFailure(item, token, cause)
    })
  }

  /** Returns a connection after the borrower's work succeeded with `a`, and succeeds with it. */
  returnAfterSuccess<A>(item: Item<C>, token: number, a: A): Effect.Effect<A> {
    const returned = this.release(item, token, this.slowReturn ? Exit.succeed(a) : Exit.void)
    return returned === Effect.void ? Effect.succeed(a) : Effect.as(returned, a)
  }

  /** Returns a connection after the borrower's work failed (or was interrupted), and fails the same way. */
  returnAfterFailure<E2>(item: Item<C>, token: number, cause: Cause.Cause<E2>): Effect.Effect<never, E2> {
    return Effect.zipRight(this.release(item, token, Exit.failCause(cause)), Effect.failCause(cause))
  }

  /** Ties a lent connection to a scope: it is returned when the scope closes. */
  attach(scope: Scope.Scope, item: Item<C>): Effect.Effect<C> {
    const token = item.token
    return Effect.as(Scope.addFinalizerExit(scope, (exit) => this.release(item, token, exit)), item.connection)
  }

  /**
   * A return that runs return policies, or that someone hears of (listeners, subscribers, debug echo). The reset
   * chain is as short as the pool's settings allow: with nobody listening there is no check-in or `Reset` event to
   * emit, and one policy is one step, so `resetOnReturn` costs what its driver call costs (no step at all when the
   * driver knows no transaction is open).
   */
  slowRelease(item: Item<C>, exit: Exit.Exit<unknown, unknown>, now: number): Effect.Effect<void> {
    const heard = this.listening || this.echo === "debug"
    const checkin = heard ?
      Effect.zipRight(
        this.log("debug", "checkin", item),
        this.emit({ _tag: "Checkin", pool: this.name, record: item, connection: item.connection })
      ) :
      undefined
    const putBack = () =>
      checkin === undefined ? this.offer(item) : Effect.zipRight(checkin, Effect.suspend(() => this.offer(item)))
    if (this.returnHooks.length === 0 || this.staleReason(item) !== undefined || this.closed) return putBack()
    const context = new ReturnContextImpl(item.connection, item, this.driver, now, this, exit)
    let reset: Effect.Effect<void, unknown> | undefined
    if (heard) {
      // each hook after the one before, and a `Reset` event after each reset that succeeded
      for (const policy of this.returnHooks) {
        const step = Effect.suspend(() => policy.onReturn!(context))
        reset = reset === undefined ? step : Effect.zipRight(reset, step)
        if (policy.resetMethod !== undefined) {
          const method = policy.resetMethod
          reset = Effect.zipRight(
            reset,
            this.emit({ _tag: "Reset", pool: this.name, record: item, connection: item.connection, method })
          )
        }
      }
    } else {
      reset = chainHooks(this.returnHooks, returnHook, context)
      // every hook was done at once (a reset with nothing to reset answers `Effect.void`)
      if (reset === undefined) return putBack()
    }
    return Effect.matchCauseEffect(reset!, {
      onSuccess: putBack,
      onFailure: (cause) => {
        const warn = Effect.logWarning("a return policy failed (reset or check); closing the connection", cause).pipe(
          Effect.annotateLogs({ pool: this.name, connection: item.id })
        )
        return Effect.zipRight(
          checkin === undefined ? warn : Effect.zipRight(warn, checkin),
          this.closeItem(item, "resetFailed")
        )
      }
    })
  }

  /**
   * Puts a clean connection back: to the oldest waiter, else idle, else (overflow, stale, closing) closed. The item
   * is either fresh from a connect, or lent / returning / maintained. `now` is passed by a caller that has just read
   * the clock (a plain return), so a hand-off reads it once.
   */
  offer(item: Item<C>, now?: number): Effect.Effect<void> {
    const reason = this.closed ? "shutdown" : this.staleReason(item)
    if (reason !== undefined) return this.closeItem(item, reason)
    const waiter = this.head
    if (waiter !== undefined) {
      this.grant(waiter, item, now ?? this.now())
      this.gauges()
      return Effect.void
    }
    // overflow: `size` are idle already; but never below `min`, or refill and overflow would chase each other
    if (this.idle.length >= this.config.size && this.open > this.config.min) {
      return this.closeItem(item, "overflow")
    }
    if (item.state === LENT || item.state === RETURNING || item.state === MAINTAINED) this.lent--
    item.state = IDLE
    this.idle.push(item)
    this.gauges()
    this.checkDrained()
    return Effect.void
  }

  // -------------------------------------------------------------------------------------------------------------
  // close
  // -------------------------------------------------------------------------------------------------------------

  /** Closes a connection exactly once; its slot is freed when the close completes. */
  closeItem(item: Item<C>, reason: PoolEvent.CloseReason): Effect.Effect<void> {
    if (item.state === CLOSING || item.state === CLOSED || item.state === DETACHED) return Effect.void
    if (item.state === IDLE) this.idle.remove(item)
    else if (item.state === LENT || item.state === RETURNING || item.state === MAINTAINED) this.lent--
    item.state = CLOSING
    this.byConnection.delete(item.connection)
    this.gauges()
    return Effect.uninterruptible(
      Effect.zipRight(
        Effect.catchAllCause(
          Scope.close(item.scope, Exit.void),
          (cause) => Effect.logWarning("closing a connection failed", cause)
        ),
        Effect.suspend(() => {
          item.state = CLOSED
          this.open--
          this.closedCount++
          this.closedBy[reason] = (this.closedBy[reason] ?? 0) + 1
          this.metrics.closed(reason)
          this.gauges()
          this.pump()
          this.checkDrained()
          return Effect.zipRight(
            this.log("info", `close (${reason})`, item),
            this.emit({ _tag: "Close", pool: this.name, record: item, connection: item.connection, reason })
          )
        })
      )
    )
  }

  // -------------------------------------------------------------------------------------------------------------
  // connect
  // -------------------------------------------------------------------------------------------------------------

  /** Starts connects for waiters that have none while there is room, then tops up to `min`. */
  pump(): void {
    if (this.closed) return
    while (this.waiting > this.assigned && this.open + this.opening < this.max) {
      let waiter = this.head
      while (waiter !== undefined && waiter.task !== undefined) waiter = waiter.next
      if (waiter === undefined) break
      this.startConnect(waiter)
    }
    while (!this.refillBlocked && this.open + this.opening < this.config.min) {
      this.startConnect(undefined)
    }
  }

  startConnect(waiter: Waiter<C> | undefined): void {
    this.opening++
    const task: ConnectTask<C> = { waiter }
    if (waiter !== undefined) {
      waiter.task = task
      this.assigned++
    }
    this.fork(this.connect(task))
  }

  connect(task: ConnectTask<C>): Effect.Effect<void> {
    return Effect.uninterruptibleMask((restore) =>
      Effect.flatMap(Scope.make(), (scope) => {
        const started = this.now()
        const item = new Item<C>(this.nextId++, this.name, started, this.generation, this.config.labels, scope)
        const context: Driver.ConnectContext = {
          record: item,
          poolName: this.name,
          invalidate: (cause) => this.unsafeInvalidate(item, cause, false)
        }
        let open: Effect.Effect<C, unknown> = Scope.extend(this.driver.connect(context), scope)
        if (this.connectHooks.length > 0) {
          open = Effect.tap(open, (connection) => {
            item.connection = connection
            const hookContext = this.hookContext(item)
            return Effect.forEach(this.connectHooks, (policy) => policy.onConnect!(hookContext), { discard: true })
          })
        }
        if (Duration.isFinite(this.config.connectTimeout)) {
          const millis = Duration.toMillis(this.config.connectTimeout)
          open = Effect.timeoutFail(open, {
            duration: this.config.connectTimeout,
            onTimeout: () =>
              new PoolTimeoutError({ pool: this.name, phase: "connect", timeoutMillis: millis, stats: this.stats() })
          })
        }
        const traced = Effect.withSpan(restore(open), "db.client.connection.create", {
          kind: "client",
          captureStackTrace: false,
          attributes: { "db.client.connection.pool.name": this.name, "db.system": this.driver.dialect }
        })
        return Effect.flatMap(Effect.exit(traced), (exit) => {
          this.metrics.createTime(this.now() - started)
          if (Exit.isFailure(exit)) {
            return Effect.zipRight(
              Effect.catchAllCause(Scope.close(scope, exit), () => Effect.void),
              Effect.suspend(() => this.connectFailed(task, item, exit.cause))
            )
          }
          item.connection = exit.value
          return this.connected(task, item)
        })
      })
    )
  }

  connected(task: ConnectTask<C>, item: Item<C>): Effect.Effect<void> {
    this.opening--
    this.open++
    this.opened++
    this.lastConnectFailure = undefined
    this.consecutiveRefillFailures = 0
    this.byConnection.set(item.connection, item)
    const origin = task.waiter
    if (origin !== undefined) {
      origin.task = undefined
      task.waiter = undefined
      this.assigned--
    }
    let events: Effect.Effect<void> = this.log("info", "connect", item)
    if (this.listening) {
      if (!this.firstConnectDone) {
        events = Effect.zipRight(
          events,
          this.emit({ _tag: "FirstConnect", pool: this.name, record: item, connection: item.connection })
        )
      }
      events = Effect.zipRight(
        events,
        this.emit({ _tag: "Connect", pool: this.name, record: item, connection: item.connection })
      )
    }
    this.firstConnectDone = true
    // the connection stays out of reach (counted as lent) until its events have run, then goes to the oldest waiter
    item.state = MAINTAINED
    this.lent++
    return Effect.zipRight(
      events,
      Effect.suspend(() => {
        const put = this.offer(item)
        this.pump()
        return put
      })
    )
  }

  connectFailed(task: ConnectTask<C>, item: Item<C>, cause: Cause.Cause<unknown>): Effect.Effect<void> {
    this.opening--
    const interrupted = Cause.isInterruptedOnly(cause)
    if (!interrupted) {
      this.connectFailures++
      this.lastConnectFailure = cause
      this.metrics.connectFailed()
    }
    const waiter = task.waiter
    if (waiter !== undefined) {
      // detached first: leaving the queue hands a waiter's task to another waiter, and this one has ended
      waiter.task = undefined
      task.waiter = undefined
      this.assigned--
      if (!interrupted) this.reject(waiter, Effect.failCause(cause))
    }
    if (waiter === undefined && !interrupted && !this.closed) this.backOffRefill()
    this.pump()
    this.gauges()
    this.checkDrained()
    if (interrupted) return Effect.void
    // a failure a waiter receives is that waiter's to report; one nobody receives (a refill) is logged
    const log = waiter !== undefined ?
      this.log("info", "connect failed") :
      Effect.logWarning("connect failed; refilling to min after a backoff", cause).pipe(
        Effect.annotateLogs({ pool: this.name })
      )
    return Effect.zipRight(log, this.emit({ _tag: "ConnectFailed", pool: this.name, record: item, cause }))
  }

  /** After a failed connect that no waiter asked for (refill to `min`), waits before refilling again. */
  backOffRefill(): void {
    this.consecutiveRefillFailures++
    this.refillBlocked = true
    const delay = Math.min(100 * 2 ** (this.consecutiveRefillFailures - 1), 30_000)
    this.fork(Effect.zipRight(
      Effect.sleep(delay),
      Effect.sync(() => {
        this.refillBlocked = false
        this.pump()
      })
    ))
  }

  // -------------------------------------------------------------------------------------------------------------
  // deadlines
  // -------------------------------------------------------------------------------------------------------------

  /**
   * One fiber ends the waiters whose deadline has passed. The queue is ordered by deadline (one timeout for the
   * whole pool), so it sleeps until the head's deadline, or until a waiter arrives in an empty queue.
   */
  reaper(): Effect.Effect<never> {
    const loop: Effect.Effect<void> = Effect.suspend(() => {
      const head = this.head
      if (head === undefined || head.deadline === Infinity) {
        return Effect.async<void>((resume) => {
          if (this.head !== undefined && this.head.deadline !== Infinity) return resume(Effect.void)
          this.reaperWake = resume
          return Effect.sync(() => {
            this.reaperWake = undefined
          })
        })
      }
      const delay = head.deadline - this.now()
      if (delay > 0) return Effect.sleep(delay)
      this.expire()
      return Effect.void
    })
    return Effect.forever(loop)
  }

  expire(): void {
    const now = this.now()
    while (this.head !== undefined && this.head.deadline <= now) {
      const waiter = this.head
      this.timeouts++
      this.metrics.timedOut()
      const error = new PoolTimeoutError({
        pool: this.name,
        phase: "wait",
        timeoutMillis: this.timeoutMillis,
        stats: this.stats(),
        ...(this.lastConnectFailure !== undefined ? { cause: Cause.squash(this.lastConnectFailure) } : {})
      })
      this.reject(waiter, Effect.fail(error))
      if (this.listening) {
        this.fork(
          this.emit({
            _tag: "CheckoutTimeout",
            pool: this.name,
            waitedMillis: now - waiter.enqueuedAt,
            stats: error.stats
          })
        )
      }
    }
    this.gauges()
  }

  // -------------------------------------------------------------------------------------------------------------
  // invalidation, detach, dispose
  // -------------------------------------------------------------------------------------------------------------

  /** Invalidation from outside any Effect (the driver's error event). */
  unsafeInvalidate(item: Item<C>, cause: unknown, soft: boolean): void {
    if (item.state === CLOSING || item.state === CLOSED || item.state === DETACHED) return
    if (item.invalidated) return
    this.fork(this.invalidateItem(item, cause, soft))
  }

  invalidateItem(item: Item<C>, cause: unknown, soft: boolean): Effect.Effect<void> {
    return Effect.suspend(() => {
      if (item.state === CLOSING || item.state === CLOSED || item.state === DETACHED) return Effect.void
      const event: PoolEvent.PoolEvent<C> = soft ?
        { _tag: "SoftInvalidate", pool: this.name, record: item, connection: item.connection, cause } :
        { _tag: "Invalidate", pool: this.name, record: item, connection: item.connection, cause }
      const announce = Effect.zipRight(
        this.log("info", soft ? "soft invalidate" : "invalidate", item),
        this.emit(event)
      )
      if (soft) {
        item.soft = true
        return item.state === IDLE ? Effect.zipRight(announce, this.closeItem(item, "invalidated")) : announce
      }
      item.invalidated = true
      // a hard invalidation closes the connection now, whoever holds it; a lent one's return then only checks in
      return item.state === IDLE || item.state === LENT ?
        Effect.zipRight(announce, this.closeItem(item, "invalidated")) :
        announce
    })
  }

  bumpGeneration(): void {
    this.generation++
    for (const item of this.idle.toArray()) this.fork(this.closeItem(item, "stale"))
    this.gauges()
  }

  dispose(): Effect.Effect<void> {
    return Effect.suspend(() => {
      const items = this.idle.toArray()
      return Effect.forEach(items, (item) => this.closeItem(item, "disposed"), { discard: true })
    })
  }

  detach(item: Item<C>): Effect.Effect<void, never, Scope.Scope> {
    return Effect.uninterruptible(Effect.flatMap(Effect.scope, (scope) =>
      Effect.suspend(() => {
        this.lent--
        this.open--
        this.detached++
        item.state = DETACHED
        item.borrowed = false
        this.byConnection.delete(item.connection)
        this.gauges()
        this.pump()
        this.checkDrained()
        const closeDetached = Effect.zipRight(
          Effect.catchAllCause(Scope.close(item.scope, Exit.void), (cause) =>
            Effect.logWarning("closing a detached connection failed", cause)),
          this.emit({ _tag: "CloseDetached", pool: this.name, record: item, connection: item.connection })
        )
        return Effect.zipRight(
          Scope.addFinalizer(scope, closeDetached),
          this.emit({ _tag: "Detach", pool: this.name, record: item, connection: item.connection })
        )
      })))
  }

  // -------------------------------------------------------------------------------------------------------------
  // maintenance (policies' background fibers)
  // -------------------------------------------------------------------------------------------------------------

  forEachIdle(f: (context: Policy.HookContext<C, E>) => Effect.Effect<void, ConnectionRejected>): Effect.Effect<void> {
    return Effect.suspend(() => {
      const items = this.idle.toArray()
      return Effect.forEach(items, (item) =>
        Effect.suspend(() => {
          if (item.state !== IDLE || this.closed) return Effect.void
          this.idle.remove(item)
          item.state = MAINTAINED
          this.lent++
          return Effect.matchCauseEffect(f(this.hookContext(item)), {
            onSuccess: () => this.offer(item),
            onFailure: (cause) => this.closeRejected(item, cause)
          })
        }), { discard: true })
    })
  }

  handle(): Policy.PoolHandle<C, E> {
    return {
      name: this.name,
      driver: this.driver,
      stats: Effect.sync(() => this.stats()),
      forEachIdle: (f) => Effect.uninterruptible(this.forEachIdle(f)),
      refill: Effect.sync(() => this.pump()),
      invalidateAll: Effect.sync(() => this.bumpGeneration())
    }
  }

  // -------------------------------------------------------------------------------------------------------------
  // shutdown
  // -------------------------------------------------------------------------------------------------------------

  checkDrained(): void {
    if (this.closed && this.lent === 0 && this.drainedWake !== undefined) {
      const wake = this.drainedWake
      this.drainedWake = undefined
      wake(Effect.void)
    }
  }

  /**
   * Graceful, then forceful: new checkouts fail, waiters fail at once, connects in flight are interrupted (and
   * closed), idle connections close, lent ones close when returned or when `shutdownTimeout` passes.
   */
  shutdown(): Effect.Effect<void> {
    return Effect.uninterruptible(Effect.suspend(() => {
      if (this.closed) return Effect.void
      this.closed = true
      const closedError = Effect.fail(new PoolClosedError({ pool: this.name }))
      while (this.head !== undefined) this.reject(this.head, closedError)
      this.gauges()
      const idle = this.idle.toArray()
      const drained = Effect.async<void>((resume) => {
        if (this.lent === 0) return resume(Effect.void)
        this.drainedWake = resume
        return Effect.sync(() => {
          this.drainedWake = undefined
        })
      })
      return Effect.all([
        Fiber.interruptAll(Array.from(this.fibers)),
        Effect.forEach(idle, (item) => this.closeItem(item, "shutdown"), { discard: true }),
        // the drain wait is the one interruptible part, so that the deadline can end it
        Effect.timeoutOption(Effect.interruptible(drained), this.shutdownMillis),
        Effect.suspend(() => {
          const stuck = Array.from(this.byConnection.values()).filter((item) => item.state !== CLOSED)
          return Effect.forEach(stuck, (item) => this.closeItem(item, "shutdown"), { discard: true })
        }),
        Effect.suspend(() => Fiber.interruptAll(Array.from(this.fibers))),
        this.log("info", "pool closed"),
        PubSub.shutdown(this.pubsub)
      ], { discard: true })
    }))
  }
}

// ---------------------------------------------------------------------------------------------------------------
// public operations
// ---------------------------------------------------------------------------------------------------------------

/** @internal */
export const isPool = (u: unknown): u is PoolTypes.Pool<unknown, unknown> => hasProperty(u, TypeId)

const impl = <C, E>(pool: PoolTypes.Pool<C, E>): PoolImpl<C, E> => pool as PoolImpl<C, E>

/** @internal */
export const make = <C, E>(
  options: PoolTypes.Options<C, E>
): Effect.Effect<PoolTypes.Pool<C, E>, PoolConfigError, Scope.Scope> =>
  Effect.uninterruptible(Effect.gen(function*() {
    const resolved = yield* Either.match(config.decode(options), {
      onLeft: Effect.fail,
      onRight: Effect.succeed
    })
    const scope = yield* Effect.scope
    const clock = yield* Effect.clock
    const tracer = yield* Effect.tracer
    const runtime = yield* Effect.runtime<never>()
    const pubsub = yield* PubSub.unbounded<PoolEvent.PoolEvent<C>>()
    const pool = new PoolImpl<C, E>(options, resolved, clock, tracer, runtime, pubsub)
    yield* Scope.addFinalizer(scope, pool.shutdown())
    pool.fork(pool.reaper())
    const handle = pool.handle()
    for (const policy of options.policies ?? []) {
      if (policy.background !== undefined) {
        const background = policy.background
        pool.fork(Effect.catchAllCause(
          Effect.suspend(() => background(handle)),
          (cause) =>
            Cause.isInterruptedOnly(cause) ? Effect.void : Effect.logError(`policy ${policy.name} stopped`, cause)
        ))
      }
    }
    pool.pump()
    return pool
  }))

/** @internal */
export const layer = <I, C, E>(
  tag: Context.Tag<I, PoolTypes.Pool<C, E>>,
  options: PoolTypes.Options<C, E>
): Layer.Layer<I, PoolConfigError> => Layer.scoped(tag, make(options))

/** @internal */
export const use: {
  <C, A, E2, R>(
    f: (connection: C) => Effect.Effect<A, E2, R>
  ): <E>(self: PoolTypes.Pool<C, E>) => Effect.Effect<A, E | E2 | PoolError, R>
  <C, E, A, E2, R>(
    self: PoolTypes.Pool<C, E>,
    f: (connection: C) => Effect.Effect<A, E2, R>
  ): Effect.Effect<A, E | E2 | PoolError, R>
} = dual(2, <C, E, A, E2, R>(
  self: PoolTypes.Pool<C, E>,
  f: (connection: C) => Effect.Effect<A, E2, R>
): Effect.Effect<A, E | E2 | PoolError, R> => {
  const pool = impl(self)
  // The mask calls its body when it runs (not when `use` is called), each time: the body reads the pool's state
  // directly, without an `Effect.suspend` step of its own.
  return Effect.uninterruptibleMask((restore) => {
    const item = pool.tryTake()
    if (item !== undefined) return pool.run(item, restore, f)
    // Past `tryTake`, an open pool with nothing to check on checkout can only wait (no idle connection is left, or
    // someone waits already): that wait takes the combined path. A closed pool or checkout checks take the general one.
    return pool.closed || pool.slowCheckout
      ? Effect.flatMap(pool.acquireSlow(restore, 0), (item) => pool.run(item, restore, f))
      : pool.useParked(restore, f)
  })
})

/** @internal */
export const get = <C, E>(self: PoolTypes.Pool<C, E>): Effect.Effect<C, E | PoolError, Scope.Scope> => {
  const pool = impl(self)
  return Effect.uninterruptibleMask((restore) =>
    Effect.flatMap(Effect.scope, (scope) => pool.checkoutThen(restore, (item) => pool.attach(scope, item)))
  )
}

class LeaseImpl<C> implements PoolTypes.Lease<C> {
  readonly [LeaseTypeId]: PoolTypes.LeaseTypeId = LeaseTypeId
  constructor(readonly pool: PoolImpl<C, any>, readonly item: Item<C>, readonly token: number) {}
  get connection(): C {
    return this.item.connection
  }
  get record(): ConnectionRecord {
    return this.item
  }
}

/** @internal */
export const checkout = <C, E>(self: PoolTypes.Pool<C, E>): Effect.Effect<PoolTypes.Lease<C>, E | PoolError> => {
  const pool = impl(self)
  return Effect.uninterruptibleMask((restore) =>
    pool.checkoutThen(restore, (item) => Effect.succeed(new LeaseImpl(pool, item, item.token)))
  )
}

/** @internal */
export const checkin: {
  <C>(lease: PoolTypes.Lease<C>): <E>(self: PoolTypes.Pool<C, E>) => Effect.Effect<void, PoolUsageError>
  <C, E>(self: PoolTypes.Pool<C, E>, lease: PoolTypes.Lease<C>): Effect.Effect<void, PoolUsageError>
} = dual(
  2,
  <C, E>(self: PoolTypes.Pool<C, E>, lease: PoolTypes.Lease<C>): Effect.Effect<void, PoolUsageError> =>
    Effect.uninterruptible(Effect.suspend(() => {
      const pool = impl(self)
      if (!(lease instanceof LeaseImpl) || lease.pool !== pool) {
        return Effect.fail(new PoolUsageError({ pool: pool.name, reason: "Foreign", operation: "checkin" }))
      }
      if (lease.item.token !== lease.token || !lease.item.borrowed) {
        return Effect.fail(new PoolUsageError({ pool: pool.name, reason: "ReturnedTwice", operation: "checkin" }))
      }
      return pool.release(lease.item, lease.token, Exit.void)
    }))
)

const lookup = <C, E>(
  pool: PoolImpl<C, E>,
  connection: C,
  operation: string
): Effect.Effect<Item<C>, PoolUsageError> => {
  const item = pool.byConnection.get(connection)
  return item === undefined ?
    Effect.fail(new PoolUsageError({ pool: pool.name, reason: "Foreign", operation })) :
    Effect.succeed(item)
}

/** @internal */
export const invalidate: {
  <C>(
    connection: C,
    options?: { readonly soft?: boolean | undefined; readonly cause?: unknown }
  ): <E>(self: PoolTypes.Pool<C, E>) => Effect.Effect<void, PoolUsageError>
  <C, E>(
    self: PoolTypes.Pool<C, E>,
    connection: C,
    options?: { readonly soft?: boolean | undefined; readonly cause?: unknown }
  ): Effect.Effect<void, PoolUsageError>
} = dual(
  (args) => isPool(args[0]),
  <C, E>(
    self: PoolTypes.Pool<C, E>,
    connection: C,
    options?: { readonly soft?: boolean | undefined; readonly cause?: unknown }
  ): Effect.Effect<void, PoolUsageError> => {
    const pool = impl(self)
    return Effect.uninterruptible(
      Effect.flatMap(
        Effect.suspend(() => lookup(pool, connection, "invalidate")),
        (item) => pool.invalidateItem(item, options?.cause, options?.soft === true)
      )
    )
  }
)

/** @internal */
export const invalidateAll = <C, E>(self: PoolTypes.Pool<C, E>): Effect.Effect<void> =>
  Effect.sync(() => impl(self).bumpGeneration())

/** @internal */
export const detach: {
  <C>(connection: C): <E>(self: PoolTypes.Pool<C, E>) => Effect.Effect<void, PoolUsageError, Scope.Scope>
  <C, E>(self: PoolTypes.Pool<C, E>, connection: C): Effect.Effect<void, PoolUsageError, Scope.Scope>
} = dual(2, <C, E>(self: PoolTypes.Pool<C, E>, connection: C): Effect.Effect<void, PoolUsageError, Scope.Scope> => {
  const pool = impl(self)
  return Effect.flatMap(
    Effect.suspend(() => lookup(pool, connection, "detach")),
    (item) =>
      item.state !== LENT || !item.borrowed ?
        Effect.fail(new PoolUsageError({ pool: pool.name, reason: "NotLent", operation: "detach" })) :
        pool.detach(item)
  )
})

/** @internal */
export const dispose = <C, E>(self: PoolTypes.Pool<C, E>): Effect.Effect<void> => impl(self).dispose()

/** @internal */
export const recreate = <C, E>(
  self: PoolTypes.Pool<C, E>
): Effect.Effect<PoolTypes.Pool<C, E>, PoolConfigError, Scope.Scope> => make(impl(self).options)

/** @internal */
export const status = <C, E>(self: PoolTypes.Pool<C, E>): Effect.Effect<string> =>
  Effect.sync(() => impl(self).status())

/** @internal */
export const stats = <C, E>(self: PoolTypes.Pool<C, E>): Effect.Effect<PoolStats> =>
  Effect.sync(() => impl(self).stats())

/** @internal */
export const configOf = <C, E>(self: PoolTypes.Pool<C, E>): config.PoolConfigEncoded => config.encode(impl(self).config)

/** @internal */
export const record = <C, E>(
  self: PoolTypes.Pool<C, E>,
  connection: C
): Effect.Effect<ConnectionRecord, PoolUsageError> => Effect.suspend(() => lookup(impl(self), connection, "record"))

/** @internal */
export const events = <C, E>(self: PoolTypes.Pool<C, E>): Stream.Stream<PoolEvent.PoolEvent<C>> => {
  const pool = impl(self)
  return Stream.unwrapScoped(
    Effect.map(
      Effect.acquireRelease(
        Effect.tap(PubSub.subscribe(pool.pubsub), () =>
          Effect.sync(() => {
            pool.subscribers++
            pool.refreshFlags()
          })),
        () =>
          Effect.sync(() => {
            pool.subscribers--
            pool.refreshFlags()
          })
      ),
      (queue) => Stream.fromQueue(queue)
    )
  )
}

/** @internal */
export const listen: {
  <C>(listeners: PoolEvent.Listeners<C>): <E>(self: PoolTypes.Pool<C, E>) => Effect.Effect<void, never, Scope.Scope>
  <C, E>(self: PoolTypes.Pool<C, E>, listeners: PoolEvent.Listeners<C>): Effect.Effect<void, never, Scope.Scope>
} = dual(2, <C, E>(self: PoolTypes.Pool<C, E>, listeners: PoolEvent.Listeners<C>) => {
  const pool = impl(self)
  return Effect.asVoid(Effect.acquireRelease(
    Effect.sync(() => {
      pool.listeners = [...pool.listeners, listeners]
      pool.refreshFlags()
    }),
    () =>
      Effect.sync(() => {
        pool.listeners = pool.listeners.filter((l) => l !== listeners)
        pool.refreshFlags()
      })
  ))
})

/** @internal */
export const transaction: {
  <C, A, E2, R>(
    f: (connection: C) => Effect.Effect<A, E2, R>
  ): <E>(self: PoolTypes.Pool<C, E>) => Effect.Effect<A, E | E2 | PoolError, R>
  <C, E, A, E2, R>(
    self: PoolTypes.Pool<C, E>,
    f: (connection: C) => Effect.Effect<A, E2, R>
  ): Effect.Effect<A, E | E2 | PoolError, R>
} = dual(2, <C, E, A, E2, R>(
  self: PoolTypes.Pool<C, E>,
  f: (connection: C) => Effect.Effect<A, E2, R>
): Effect.Effect<A, E | E2 | PoolError, R> => {
  const pool = impl(self)
  const d = pool.driver
  // ends whatever transaction is left open; a connection that cannot roll back is invalidated, never pooled
  const rollback = (connection: C) =>
    Effect.catchAllCause(d.rollback(connection), (cause) =>
      Effect.zipRight(
        Effect.logWarning("rollback failed; invalidating the connection", cause).pipe(
          Effect.annotateLogs({ pool: pool.name })
        ),
        Effect.ignore(invalidate(self, connection, { cause: Cause.squash(cause) }))
      ))
  return use(self, (connection) =>
    Effect.uninterruptibleMask((restore) =>
      Effect.zipRight(
        d.begin(connection),
        Effect.matchCauseEffect(restore(f(connection)), {
          onFailure: (cause) => Effect.zipRight(rollback(connection), Effect.failCause(cause)),
          onSuccess: (a) =>
            Effect.matchCauseEffect(d.commit(connection), {
              onFailure: (cause) => Effect.zipRight(rollback(connection), Effect.failCause(cause)),
              onSuccess: () => Effect.succeed(a)
            })
        })
      )
    ))
})
