import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as ExecutionStrategy from "effect/ExecutionStrategy"
import * as Exit from "effect/Exit"
import { dual } from "effect/Function"
import * as Layer from "effect/Layer"
import { hasProperty } from "effect/Predicate"
import * as Queue from "effect/Queue"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type { ConnectionRecord } from "../ConnectionRecord.js"
import type { Row } from "../Driver.js"
import type * as Policy from "../Policy.js"
import type * as PoolTypes from "../Pool.js"
import { type PoolConfigError, type PoolError, type PoolStats, PoolUsageError } from "../PoolError.js"
import type * as PoolEvent from "../PoolEvent.js"
import { attach, isFull, release, run } from "./checkin.js"
import { acquireSlow, firstAttempt, type Restore, tryTake, tryTakeChecked, useParked } from "./checkout.js"
import * as config from "./config.js"
import { connectOne, pump } from "./connector.js"
import { currentFiber, PoolImpl, TypeId } from "./core.js"
import { defaultBufferSize, makeBuffer } from "./events.js"
import { runStatement, type Statement } from "./handoff.js"
import { type Item, LENT } from "./item.js"
import {
  bumpGeneration,
  detach as detachItem,
  dispose as disposeIdle,
  forEachIdle,
  holders,
  idleRecords,
  invalidateItem,
  reclaim,
  retire,
  shutdown
} from "./lifecycle.js"
import { defaults } from "./policies/defaults.js"
import { startReaper } from "./queue.js"

export { TypeId } from "./core.js"

/** @internal */
export const LeaseTypeId: PoolTypes.LeaseTypeId = Symbol.for("effect-reservoir/Pool/Lease") as PoolTypes.LeaseTypeId

/** @internal */
export const isPool = (u: unknown): u is PoolTypes.Pool<unknown, unknown> => hasProperty(u, TypeId)

const impl = <C, E>(pool: PoolTypes.Pool<C, E>): PoolImpl<C, E> => pool as PoolImpl<C, E>

/** What a policy instance and its background fiber get: the pool's operations they may use. */
const handleOf = <C, E>(pool: PoolImpl<C, E>): Policy.PoolHandle<C, E> => ({
  name: pool.name,
  driver: pool.driver,
  stats: Effect.sync(() => pool.stats()),
  forEachIdle: (f) => forEachIdle(pool, f),
  refill: Effect.sync(() => pump(pool)),
  invalidateAll: Effect.sync(() => bumpGeneration(pool)),
  holders: Effect.sync(() => holders(pool)),
  reclaim: (record) => reclaim(pool, record),
  idle: Effect.sync(() => idleRecords(pool)),
  retire: (record, reason) => retire(pool, record, reason),
  connect: connectOne(pool) as Effect.Effect<boolean, E | PoolError>,
  emit: (event) => pool.feed.emit(event as PoolEvent.PoolEvent<C>),
  now: Effect.sync(() => pool.now())
})

/**
 * The policies a pool runs: the ones its options list, else the defaults; a pool from a bare `acquire` pools a
 * resource that is not a database connection, and has none unless listed.
 */
const policiesOf = <C, E>(options: PoolTypes.Options<C, E>): ReadonlyArray<Policy.Policy<C, E, any>> =>
  options.policies ?? ("driver" in options && options.driver !== undefined ? defaults<C, E>() : [])

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
    const pool = new PoolImpl<C, E>(options, resolved, clock, tracer, runtime)
    // the policies' own scope is closed after the pool's shutdown (finalizers run in reverse order), so an
    // instance's state outlives the borrowers it serves
    const policyScope = yield* Scope.fork(scope, ExecutionStrategy.sequential)
    yield* Scope.addFinalizer(scope, shutdown(pool))
    startReaper(pool)
    const handle = handleOf(pool)
    const instances: Array<Policy.Instance<C, E, unknown>> = []
    const policies = policiesOf(options)
    for (const policy of policies) {
      const instance: Policy.Instance<C, E, unknown> = policy.instantiate === undefined ?
        policy :
        yield* Scope.extend(policy.instantiate(handle), policyScope)
      pool.byRecipe.set(policy, instance)
      instances.push(instance)
    }
    pool.install(instances)
    for (let i = 0; i < instances.length; i++) {
      const background = instances[i]!.background
      if (background === undefined) continue
      const name = policies[i]!.name
      pool.fork(Effect.catchAllCause(
        Effect.suspend(() => background(handle)),
        (cause) => Cause.isInterruptedOnly(cause) ? Effect.void : Effect.logError(`policy ${name} stopped`, cause)
      ))
    }
    pump(pool)
    return pool
  }))

/**
 * The options with a driver named by its Tag replaced by the driver the context holds; other options unchanged.
 *
 * @internal
 */
export const resolveDriver = <C, E, R>(
  options: PoolTypes.Options<C, E> | PoolTypes.OptionsFromTag<C, E, R>
): Effect.Effect<PoolTypes.Options<C, E>, never, R> => {
  if ("driver" in options && Context.isTag(options.driver)) {
    const tag = options.driver as Context.Tag<R, PoolTypes.Pool<C, E>["driver"]>
    return Effect.map(tag, (driver) => ({ ...options, driver }) as PoolTypes.Options<C, E>)
  }
  return Effect.succeed(options as PoolTypes.Options<C, E>)
}

/** @internal */
export const makeFrom = <C, E, R>(
  options: PoolTypes.Options<C, E> | PoolTypes.OptionsFromTag<C, E, R>
): Effect.Effect<PoolTypes.Pool<C, E>, PoolConfigError, Scope.Scope | R> => Effect.flatMap(resolveDriver(options), make)

/** @internal */
export const layer = <I, C, E, R>(
  tag: Context.Tag<I, PoolTypes.Pool<C, E>>,
  options: PoolTypes.Options<C, E> | PoolTypes.OptionsFromTag<C, E, R>
): Layer.Layer<I, PoolConfigError, R> => Layer.scoped(tag, makeFrom(options))

const timeoutOf = <C, E>(pool: PoolImpl<C, E>, options: PoolTypes.CheckoutOptions | undefined): number =>
  options?.timeout === undefined ? pool.timeoutMillis : Duration.toMillis(Duration.decode(options.timeout))

/** Checks out through the general path: admission, queueing and validation, with this checkout's deadline. */
const acquire = <C, E>(pool: PoolImpl<C, E>, restore: Restore, timeoutMillis: number) =>
  acquireSlow(pool, firstAttempt(restore, pool.now(), timeoutMillis, pool.nextId))

/**
 * Checks out (the fast path when it applies, else the general one) and continues with `k`: `get` and `checkout`.
 * It reads the pool's state when called, so call it inside the mask's body.
 */
const checkoutThen = <C, E, A>(
  pool: PoolImpl<C, E>,
  restore: Restore,
  options: PoolTypes.CheckoutOptions | undefined,
  k: (item: Item<C>) => Effect.Effect<A>
): Effect.Effect<A, E | PoolError> => {
  const item = tryTake(pool)
  return item !== undefined ? k(item) : Effect.flatMap(acquire(pool, restore, timeoutOf(pool, options)), k)
}

/**
 * With `traceCheckouts: "stack"`, the caller's frame, captured now, while the caller's code is on the stack (V8
 * formats it only if it is read); `markCallSite` files it under the fiber that runs the checkout.
 */
const callSite = <C, E>(pool: PoolImpl<C, E>): Error | undefined =>
  pool.traceCheckouts === "stack" ? new Error("checked out here") : undefined

const markCallSite = <C, E>(pool: PoolImpl<C, E>, site: Error | undefined): void => {
  if (site === undefined) return
  const fiber = currentFiber()
  if (fiber !== undefined) pool.callSites.set(fiber, site)
}

/** @internal */
export const use: {
  <C, A, E2, R>(
    f: (connection: C) => Effect.Effect<A, E2, R>,
    options?: PoolTypes.CheckoutOptions
  ): <E>(self: PoolTypes.Pool<C, E>) => Effect.Effect<A, E | E2 | PoolError, R>
  <C, E, A, E2, R>(
    self: PoolTypes.Pool<C, E>,
    f: (connection: C) => Effect.Effect<A, E2, R>,
    options?: PoolTypes.CheckoutOptions
  ): Effect.Effect<A, E | E2 | PoolError, R>
} = dual((args) => isPool(args[0]), <C, E, A, E2, R>(
  self: PoolTypes.Pool<C, E>,
  f: (connection: C) => Effect.Effect<A, E2, R>,
  options?: PoolTypes.CheckoutOptions
): Effect.Effect<A, E | E2 | PoolError, R> => {
  const lending = impl(self).lending
  return lending === undefined ? useCore(self, f, options) : lending.use(f, options)
})

/**
 * The core's own `use`, whatever the pool's kind: what a kind's lending (`core.ts`, `Lending`) builds on.
 *
 * @internal
 */
export const useCore = <C, E, A, E2, R>(
  self: PoolTypes.Pool<C, E>,
  f: (connection: C) => Effect.Effect<A, E2, R>,
  options?: PoolTypes.CheckoutOptions
): Effect.Effect<A, E | E2 | PoolError, R> => {
  const pool = impl(self)
  const site = callSite(pool)
  // The mask calls its body when it runs (not when `use` is called), each time: the body reads the pool's state
  // directly, without an `Effect.suspend` step of its own.
  return Effect.uninterruptibleMask((restore) => {
    markCallSite(pool, site)
    if (pool.slowCheckout) {
      const taken = tryTakeChecked(pool, restore, timeoutOf(pool, options))
      if (taken !== undefined) {
        return Effect.isEffect(taken) ?
          Effect.flatMap(taken, (item) => run(pool, item, restore, f)) :
          run(pool, taken, restore, f)
      }
    } else {
      const item = tryTake(pool)
      if (item !== undefined) return run(pool, item, restore, f)
    }
    const timeoutMillis = timeoutOf(pool, options)
    // Past the fast path, an open pool can only wait (no idle connection is left, or someone waits already): that
    // wait takes the combined path, which runs the checkout checks itself. A closed pool takes the general one.
    return pool.closed
      ? Effect.flatMap(acquire(pool, restore, timeoutMillis), (item) => run(pool, item, restore, f))
      : useParked(pool, restore, f, timeoutMillis)
  })
}

/** @internal */
export const query: {
  (
    sql: string,
    params?: ReadonlyArray<unknown>,
    options?: PoolTypes.CheckoutOptions
  ): <C, E>(self: PoolTypes.Pool<C, E>) => Effect.Effect<ReadonlyArray<Row>, E | PoolError>
  <C, E>(
    self: PoolTypes.Pool<C, E>,
    sql: string,
    params?: ReadonlyArray<unknown>,
    options?: PoolTypes.CheckoutOptions
  ): Effect.Effect<ReadonlyArray<Row>, E | PoolError>
} = dual((args) => isPool(args[0]), <C, E>(
  self: PoolTypes.Pool<C, E>,
  sql: string,
  params?: ReadonlyArray<unknown>,
  options?: PoolTypes.CheckoutOptions
): Effect.Effect<ReadonlyArray<Row>, E | PoolError> => {
  const driver = impl(self).driver
  const start = driver.start
  return statement(
    self,
    {
      start: start === undefined ? undefined : (connection, done) => start(connection, sql, params, done),
      effect: (connection) => driver.query(connection, sql, params)
    },
    options
  )
})

/**
 * Runs one statement on a connection of the pool (see `handoff.ts`): started at hand-off when it has to wait and
 * can be (`start`), else as `Pool.use(pool, statement.effect)`.
 *
 * @internal
 */
export const statement = <C, E, A, E2>(
  self: PoolTypes.Pool<C, E>,
  statement: {
    readonly start: ((connection: C, done: (exit: Exit.Exit<A, E2>) => void) => () => void) | undefined
    readonly effect: (connection: C) => Effect.Effect<A, E2>
  },
  options?: PoolTypes.CheckoutOptions
): Effect.Effect<A, E | E2 | PoolError> => {
  const pool = impl(self)
  // a kind's lending, or a driver that cannot start a statement: `use`; so is a pool that traces its checkouts'
  // call sites (a debugging setting), whose trace is taken in the borrower's fiber
  if (pool.lending !== undefined || statement.start === undefined || pool.traceCheckouts !== undefined) {
    return use(self, statement.effect, options)
  }
  return runStatement(pool, statement as Statement<C, A, E2>, timeoutOf(pool, options))
}

/** @internal */
export const get = <C, E>(
  self: PoolTypes.Pool<C, E>,
  options?: PoolTypes.CheckoutOptions
): Effect.Effect<C, E | PoolError, Scope.Scope> => {
  const lending = impl(self).lending
  return lending === undefined ? getCore(self, options) : lending.get(options)
}

/** The core's own `get` (see `useCore`). @internal */
export const getCore = <C, E>(
  self: PoolTypes.Pool<C, E>,
  options?: PoolTypes.CheckoutOptions
): Effect.Effect<C, E | PoolError, Scope.Scope> => {
  const pool = impl(self)
  const site = callSite(pool)
  return Effect.uninterruptibleMask((restore) =>
    Effect.flatMap(Effect.scope, (scope) => {
      markCallSite(pool, site)
      return checkoutThen(pool, restore, options, (item) => attach(pool, scope, item))
    })
  )
}

/** @internal */
export class LeaseImpl<C> implements PoolTypes.Lease<C> {
  readonly [LeaseTypeId]: PoolTypes.LeaseTypeId = LeaseTypeId
  constructor(readonly pool: PoolImpl<C, any>, readonly item: Item<C>, readonly token: number) {}
  get connection(): C {
    return this.item.connection
  }
  get record(): ConnectionRecord {
    return this.item.record
  }
  toJSON() {
    return { _id: "Lease", record: this.item.record }
  }
}

/** @internal */
export const checkout = <C, E>(
  self: PoolTypes.Pool<C, E>,
  options?: PoolTypes.CheckoutOptions
): Effect.Effect<PoolTypes.Lease<C>, E | PoolError> => {
  const lending = impl(self).lending
  return lending === undefined ? checkoutCore(self, options) : lending.checkout(options)
}

/** The core's own `checkout` (see `useCore`). @internal */
export const checkoutCore = <C, E>(
  self: PoolTypes.Pool<C, E>,
  options?: PoolTypes.CheckoutOptions
): Effect.Effect<PoolTypes.Lease<C>, E | PoolError> => {
  const pool = impl(self)
  const site = callSite(pool)
  return Effect.uninterruptibleMask((restore) => {
    markCallSite(pool, site)
    return checkoutThen(pool, restore, options, (item) => Effect.succeed(new LeaseImpl(pool, item, item.token)))
  })
}

/** @internal */
export const checkin: {
  <C>(
    lease: PoolTypes.Lease<C>,
    options?: PoolTypes.CheckinOptions
  ): <E>(self: PoolTypes.Pool<C, E>) => Effect.Effect<void, PoolUsageError>
  <C, E>(
    self: PoolTypes.Pool<C, E>,
    lease: PoolTypes.Lease<C>,
    options?: PoolTypes.CheckinOptions
  ): Effect.Effect<void, PoolUsageError>
} = dual(
  (args) => isPool(args[0]),
  <C, E>(
    self: PoolTypes.Pool<C, E>,
    lease: PoolTypes.Lease<C>,
    options?: PoolTypes.CheckinOptions
  ): Effect.Effect<void, PoolUsageError> => {
    const lending = impl(self).lending
    return lending === undefined ? checkinCore(self, lease, options) : lending.checkin(lease, options)
  }
)

/** The core's own `checkin` (see `useCore`). @internal */
export const checkinCore = <C, E>(
  self: PoolTypes.Pool<C, E>,
  lease: PoolTypes.Lease<C>,
  options?: PoolTypes.CheckinOptions
): Effect.Effect<void, PoolUsageError> =>
  Effect.uninterruptible(Effect.suspend(() => {
    const pool = impl(self)
    if (!(lease instanceof LeaseImpl) || lease.pool !== pool) {
      return Effect.fail(new PoolUsageError({ pool: pool.name, reason: "Foreign", operation: "checkin" }))
    }
    if (lease.item.token !== lease.token || !lease.item.borrowed) {
      return Effect.fail(new PoolUsageError({ pool: pool.name, reason: "ReturnedTwice", operation: "checkin" }))
    }
    if (options?.whenFull === "fail" && lease.item.state === LENT && isFull(pool, lease.item)) {
      return Effect.fail(new PoolUsageError({ pool: pool.name, reason: "Full", operation: "checkin" }))
    }
    return release(pool, lease.item, lease.token, Exit.void)
  }))

/**
 * The item behind a connection value, a lease or a record. Values may repeat (a bare `acquire` can yield equal
 * values), so a connection value is matched against the live items, preferring the one lent to the calling fiber,
 * then any lent one.
 */
const lookup = <C, E>(
  pool: PoolImpl<C, E>,
  target: C | PoolTypes.Lease<C> | ConnectionRecord,
  operation: string
): Effect.Effect<Item<C>, PoolUsageError> => {
  if (target instanceof LeaseImpl) {
    if (target.pool !== pool || !pool.items.has(target.item)) {
      return Effect.fail(new PoolUsageError({ pool: pool.name, reason: "Foreign", operation }))
    }
    // a lease names one lending: once returned, it no longer reaches the connection (lent again, maybe, to another)
    return target.token === target.item.token && target.item.borrowed ?
      Effect.succeed(target.item) :
      Effect.fail(new PoolUsageError({ pool: pool.name, reason: "ReturnedTwice", operation }))
  }
  const fiber = currentFiber()
  let found: Item<C> | undefined
  for (const item of pool.items) {
    if (item.connection !== target && item.record !== target) continue
    if (item.state === LENT && item.holder === fiber) return Effect.succeed(item)
    if (found === undefined || (item.state === LENT && found.state !== LENT)) found = item
  }
  return found === undefined ?
    Effect.fail(new PoolUsageError({ pool: pool.name, reason: "Foreign", operation })) :
    Effect.succeed(found)
}

/** @internal */
export const invalidate: {
  <C>(
    connection: C | PoolTypes.Lease<C>,
    options?: { readonly soft?: boolean | undefined; readonly cause?: unknown }
  ): <E>(self: PoolTypes.Pool<C, E>) => Effect.Effect<void, PoolUsageError>
  <C, E>(
    self: PoolTypes.Pool<C, E>,
    connection: C | PoolTypes.Lease<C>,
    options?: { readonly soft?: boolean | undefined; readonly cause?: unknown }
  ): Effect.Effect<void, PoolUsageError>
} = dual(
  (args) => isPool(args[0]),
  <C, E>(
    self: PoolTypes.Pool<C, E>,
    connection: C | PoolTypes.Lease<C>,
    options?: { readonly soft?: boolean | undefined; readonly cause?: unknown }
  ): Effect.Effect<void, PoolUsageError> => {
    const pool = impl(self)
    return Effect.uninterruptible(
      Effect.flatMap(
        Effect.suspend(() => lookup(pool, connection, "invalidate")),
        (item) => invalidateItem(pool, item, options?.cause, options?.soft === true)
      )
    )
  }
)

/** @internal */
export const invalidateAll = <C, E>(self: PoolTypes.Pool<C, E>): Effect.Effect<void> =>
  Effect.sync(() => bumpGeneration(impl(self)))

/** @internal */
export const detach: {
  <C>(connection: C | PoolTypes.Lease<C>): <E>(
    self: PoolTypes.Pool<C, E>
  ) => Effect.Effect<void, PoolUsageError, Scope.Scope>
  <C, E>(
    self: PoolTypes.Pool<C, E>,
    connection: C | PoolTypes.Lease<C>
  ): Effect.Effect<void, PoolUsageError, Scope.Scope>
} = dual(
  2,
  <C, E>(
    self: PoolTypes.Pool<C, E>,
    connection: C | PoolTypes.Lease<C>
  ): Effect.Effect<void, PoolUsageError, Scope.Scope> => {
    const pool = impl(self)
    return Effect.flatMap(
      Effect.suspend(() => lookup(pool, connection, "detach")),
      (item) =>
        item.state !== LENT || !item.borrowed ?
          Effect.fail(new PoolUsageError({ pool: pool.name, reason: "NotLent", operation: "detach" })) :
          detachItem(pool, item)
    )
  }
)

/** @internal */
export const dispose = <C, E>(self: PoolTypes.Pool<C, E>): Effect.Effect<void> => disposeIdle(impl(self))

/** @internal */
export const recreate = <C, E>(
  self: PoolTypes.Pool<C, E>
): Effect.Effect<PoolTypes.Pool<C, E>, PoolConfigError, Scope.Scope> => {
  const pool = impl(self)
  return pool.lending === undefined ? make(pool.options) : pool.lending.recreate()
}

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
  connection: C | PoolTypes.Lease<C>
): Effect.Effect<ConnectionRecord, PoolUsageError> =>
  Effect.map(Effect.suspend(() => lookup(impl(self), connection, "record")), (item) => item.record)

/** @internal */
export const policy = <C, E, Commands>(
  self: PoolTypes.Pool<C, E>,
  recipe: Policy.Policy<C, E, Commands>
): Effect.Effect<Commands, PoolUsageError> =>
  Effect.suspend(() => {
    const pool = impl(self)
    const instance = pool.byRecipe.get(recipe)
    return instance === undefined ?
      Effect.fail(new PoolUsageError({ pool: pool.name, reason: "NotInstalled", operation: `policy ${recipe.name}` })) :
      Effect.succeed(instance.commands as Commands)
  })

/** @internal */
export const events = <C, E>(
  self: PoolTypes.Pool<C, E>,
  options?: { readonly bufferSize?: number | undefined }
): Stream.Stream<PoolEvent.PoolEvent<C>> => {
  const pool = impl(self)
  return Stream.unwrapScoped(
    Effect.map(
      Effect.acquireRelease(
        Effect.flatMap(
          makeBuffer<C>(options?.bufferSize ?? defaultBufferSize),
          (queue) => Effect.sync(() => ({ queue, registration: pool.feed.register(undefined, queue) }))
        ),
        ({ queue, registration }) =>
          Effect.zipRight(Effect.sync(() => pool.feed.unregister(registration)), Queue.shutdown(queue))
      ),
      ({ queue }) => Stream.fromQueue(queue)
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
    Effect.sync(() => pool.feed.register(listeners, undefined)),
    (registration) => Effect.sync(() => pool.feed.unregister(registration))
  ))
})

/** @internal */
export const transaction: {
  <C, A, E2, R>(
    f: (connection: C) => Effect.Effect<A, E2, R>,
    options?: PoolTypes.CheckoutOptions
  ): <E>(self: PoolTypes.Pool<C, E>) => Effect.Effect<A, E | E2 | PoolError, R>
  <C, E, A, E2, R>(
    self: PoolTypes.Pool<C, E>,
    f: (connection: C) => Effect.Effect<A, E2, R>,
    options?: PoolTypes.CheckoutOptions
  ): Effect.Effect<A, E | E2 | PoolError, R>
} = dual((args) => isPool(args[0]), <C, E, A, E2, R>(
  self: PoolTypes.Pool<C, E>,
  f: (connection: C) => Effect.Effect<A, E2, R>,
  options?: PoolTypes.CheckoutOptions
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
        Effect.matchCauseEffect(restore(Effect.suspend(() => f(connection))), {
          onFailure: (cause) => Effect.zipRight(rollback(connection), Effect.failCause(cause)),
          onSuccess: (a) =>
            Effect.matchCauseEffect(d.commit(connection), {
              onFailure: (cause) => Effect.zipRight(rollback(connection), Effect.failCause(cause)),
              onSuccess: () => Effect.succeed(a)
            })
        })
      )
    ), options)
})
