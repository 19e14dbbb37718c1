import * as Cause from "effect/Cause"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import * as Schema from "effect/Schema"
import * as Scope from "effect/Scope"
import type * as PoolTypes from "../Pool.js"
import { type PoolConfigError, type PoolError, PoolUsageError, TypeId as PoolErrorTypeId } from "../PoolError.js"
import { currentFiber, type Lending, type PoolImpl } from "./core.js"
import { call } from "./hooks.js"
import { LENT } from "./item.js"
import { checkinCore, checkoutCore, getCore, invalidate, LeaseImpl, make, useCore } from "./pool.js"

/**
 * SQLAlchemy's other pool kinds over the one core: `NullPool`, `StaticPool`, `SingletonThreadPool` (per fiber) and
 * `AssertionPool`. The null pool is a core configuration (`size: 0`, unbounded overflow); the other three need a
 * lending the core's exclusive one cannot express, which each sets on its pool (`core.ts`, `Lending`) and builds on
 * the core's own checkout and return. Each kind's `recreate` makes the same kind again.
 */

/** @internal */
export type Kind = "null" | "static" | "perFiber" | "assertion"

const kinds = new WeakMap<object, Kind>()

/** @internal */
export const kindOf = <C, E>(self: PoolTypes.Pool<C, E>): Kind | "queue" => kinds.get(self) ?? "queue"

/** @internal */
export class PoolAssertionError extends Schema.TaggedError<PoolAssertionError>("effect-reservoir/PoolAssertionError")(
  "PoolAssertionError",
  {
    pool: Schema.String,
    /** The checkout that was refused: `"use"`, `"get"`, `"checkout"` (a `transaction` is a `use`). */
    operation: Schema.String,
    /** The fiber holding the connection (`#id`), when known. */
    holder: Schema.optional(Schema.String),
    /** Where the connection was checked out (a stack), with `storeTraceback` (the default). */
    checkedOutAt: Schema.optional(Schema.String)
  }
) {
  readonly [PoolErrorTypeId]: PoolErrorTypeId = PoolErrorTypeId
  override get message(): string {
    const holder = this.holder === undefined ? "" : ` (held by fiber ${this.holder})`
    const base = `Pool "${this.pool}": ${this.operation} while the connection is already checked out${holder}; ` +
      `an assertion pool allows one checkout at a time`
    return this.checkedOutAt === undefined ? base : `${base}; it was checked out at:\n${this.checkedOutAt}`
  }
}

type Options<C, E> = PoolTypes.Options<C, E>

/** The options a kind was given, with what it fixes laid over them (a spread keeps `driver` or `acquire`). */
const fixed = <C, E>(options: object, over: Partial<PoolTypes.BaseOptions>): Options<C, E> =>
  ({ ...options, ...over }) as Options<C, E>

const impl = <C, E>(pool: PoolTypes.Pool<C, E>): PoolImpl<C, E> => pool as PoolImpl<C, E>

/** Whether a lease still holds a live, current lending: not returned, invalidated, closed or of an old generation. */
const current = <C, E>(pool: PoolImpl<C, E>, lease: LeaseImpl<C>): boolean => {
  const item = lease.item
  return item.state === LENT && item.token === lease.token && item.borrowed && !item.invalidated && !item.soft &&
    item.record.generation >= pool.generation && !pool.closed
}

/** The first failure in a borrower's exit that the driver calls a disconnect. */
const disconnectOf = <C, E>(pool: PoolImpl<C, E>, exit: Exit.Exit<unknown, unknown>): unknown => {
  if (exit._tag === "Success") return undefined
  for (const error of Cause.failures(exit.cause)) {
    if (pool.driver.isDisconnect(error)) return error
  }
  return undefined
}

const fiberName = (fiber: Fiber.RuntimeFiber<unknown, unknown> | undefined): string | undefined =>
  fiber === undefined ? undefined : `#${fiber.id().id}`

/**
 * Leases a kind hands out from `checkout`: views of the lending behind them (same connection, same record, so
 * `Pool.invalidate`, `record` and `detach` take them), returned through the kind's `checkin`.
 */
class Issued<C, T> {
  private readonly out = new Map<LeaseImpl<C>, T>()
  private readonly all = new WeakSet<LeaseImpl<C>>()
  issue(pool: PoolImpl<C, any>, lease: LeaseImpl<C>, lending: T): LeaseImpl<C> {
    const view = new LeaseImpl(pool, lease.item, lease.token)
    this.out.set(view, lending)
    this.all.add(view)
    return view
  }
  /** The lending behind a lease being returned, or why it is refused. */
  take(pool: PoolImpl<C, any>, lease: PoolTypes.Lease<C>): T | PoolUsageError {
    const lending = this.out.get(lease as LeaseImpl<C>)
    if (lending !== undefined) {
      this.out.delete(lease as LeaseImpl<C>)
      return lending
    }
    const reason = this.all.has(lease as LeaseImpl<C>) ? "ReturnedTwice" : "Foreign"
    return new PoolUsageError({ pool: pool.name, reason, operation: "checkin" })
  }
}

/** Sets a kind's lending on the pool it made and records the kind. */
const install = <C, E>(pool: PoolTypes.Pool<C, E>, kind: Kind, lending: Lending<C, E>): PoolTypes.Pool<C, E> => {
  impl(pool).lending = lending
  kinds.set(pool, kind)
  return pool
}

// --- null -----------------------------------------------------------------------------------------------------------

/**
 * SQLAlchemy's `NullPool`: nothing is kept, so a checkout opens a connection and its return closes it (the core
 * closes a returned connection as overflow when `size` connections, here none, are idle already).
 *
 * @internal
 */
export const makeNull = <C, E>(
  options: PoolTypes.NullOptions<C, E>
): Effect.Effect<PoolTypes.Pool<C, E>, PoolConfigError, Scope.Scope> =>
  Effect.map(
    make(fixed<C, E>(options, { size: 0, min: 0, maxOverflow: options.maxOverflow ?? "unbounded" })),
    (pool) =>
      install(pool, "null", {
        use: (f, o) => useCore(pool, f, o),
        get: (o) => getCore(pool, o),
        checkout: (o) => checkoutCore(pool, o),
        checkin: (lease, o) => checkinCore(pool, lease, o),
        recreate: () => makeNull(options)
      })
  )

// --- static ---------------------------------------------------------------------------------------------------------

/** One lending of the static pool's connection, shared by every borrower until the last one leaves. */
interface Shared<C> {
  readonly lease: LeaseImpl<C>
  users: number
}

/**
 * SQLAlchemy's `StaticPool`: exactly one connection, and every checkout gets it, concurrently and without
 * exclusion. The core pool has one slot; the kind checks the connection out when a first borrower arrives, hands
 * the same connection to everyone who arrives while it is out, and returns it (reset, checks) when the last one
 * leaves. A borrower whose work fails with a disconnect invalidates it: the next borrower gets a new one.
 *
 * @internal
 */
export const makeStatic = <C, E>(
  options: PoolTypes.StaticOptions<C, E>
): Effect.Effect<PoolTypes.Pool<C, E>, PoolConfigError, Scope.Scope> =>
  Effect.map(make(fixed<C, E>(options, { size: 1, maxOverflow: 0, min: 0 })), (pool) => {
    const core = impl(pool)
    let shared: Shared<C> | undefined
    /** A checkout of the connection in flight: later arrivals wait for it and share its outcome. */
    let opening: Deferred.Deferred<void, E | PoolError> | undefined

    const enter = (
      restore: <A, E1, R>(effect: Effect.Effect<A, E1, R>) => Effect.Effect<A, E1, R>,
      o: PoolTypes.CheckoutOptions | undefined
    ): Effect.Effect<Shared<C>, E | PoolError> =>
      Effect.suspend(() => {
        if (shared !== undefined && current(core, shared.lease)) {
          shared.users++
          return Effect.succeed(shared)
        }
        // a dead or stale lending keeps its borrowers; new ones get a new lending
        shared = undefined
        if (opening !== undefined) {
          return Effect.zipRight(restore(Deferred.await(opening)), enter(restore, o))
        }
        const started = Deferred.unsafeMake<void, E | PoolError>(FiberId.none)
        opening = started
        return Effect.onExit(restore(checkoutCore(core, o)), (exit) =>
          Effect.suspend(() => {
            opening = undefined
            if (Exit.isSuccess(exit)) {
              shared = { lease: exit.value as LeaseImpl<C>, users: 1 }
              return Deferred.succeed(started, undefined)
            }
            // an interrupted opener lets the others try for themselves; a failure is theirs too
            return Cause.isInterruptedOnly(exit.cause) ?
              Deferred.succeed(started, undefined) :
              Deferred.failCause(started, exit.cause as Cause.Cause<E | PoolError>)
          })).pipe(Effect.map(() => shared!))
      })

    const leave = (lending: Shared<C>, exit: Exit.Exit<unknown, unknown>): Effect.Effect<void> =>
      Effect.suspend(() => {
        lending.users--
        const lost = disconnectOf(core, exit)
        const invalidated = lost === undefined ?
          Effect.void :
          Effect.ignore(invalidate(core, lending.lease, { cause: lost }))
        if (lost !== undefined && shared === lending) shared = undefined
        if (lending.users > 0) return invalidated
        if (shared === lending) shared = undefined
        return Effect.zipRight(invalidated, Effect.ignore(checkinCore(core, lending.lease)))
      })

    const issued = new Issued<C, Shared<C>>()
    return install(pool, "static", {
      use: (f, o) =>
        Effect.uninterruptibleMask((restore) =>
          Effect.flatMap(
            enter(restore, o),
            (lending) => Effect.onExit(restore(call(f, lending.lease.connection)), (exit) => leave(lending, exit))
          )
        ),
      get: (o) =>
        Effect.uninterruptibleMask((restore) =>
          Effect.flatMap(
            Effect.scope,
            (scope) =>
              Effect.flatMap(enter(restore, o), (lending) =>
                Effect.as(
                  Scope.addFinalizerExit(scope, (exit) => leave(lending, exit)),
                  lending.lease.connection
                ))
          )
        ),
      checkout: (o) =>
        Effect.uninterruptibleMask((restore) =>
          Effect.map(enter(restore, o), (lending) => issued.issue(core, lending.lease, lending))
        ),
      checkin: (lease) =>
        Effect.uninterruptible(Effect.suspend(() => {
          const lending = issued.take(core, lease)
          return lending instanceof PoolUsageError ? Effect.fail(lending) : leave(lending, Exit.void)
        })),
      recreate: () => makeStatic(options)
    })
  })

// --- per fiber ------------------------------------------------------------------------------------------------------

/** A fiber's connection: the lending it keeps until it ends, and how many of its checkouts are open now. */
interface Held<C> {
  readonly fiber: Fiber.RuntimeFiber<unknown, unknown> | undefined
  readonly lease: LeaseImpl<C>
  depth: number
  ended: boolean
}

/**
 * SQLAlchemy's `SingletonThreadPool`, with fibers for threads: a fiber's first checkout checks a connection out of
 * the core and the fiber keeps it; every later checkout by that fiber, nested or not, gets the same connection.
 * When the fiber ends (a fiber observer), the connection goes back to the core, which closes it (the core has
 * `size: 0` and `maxOverflow: size`: at most `size` fibers hold one at once, others wait as at any checkout).
 * A connection that died (invalidated, a disconnect, a new generation) is replaced at the fiber's next outermost
 * checkout. When the pool closes, the connections of fibers not using theirs right now go back at once.
 *
 * @internal
 */
export const makePerFiber = <C, E>(
  options: PoolTypes.PerFiberOptions<C, E>
): Effect.Effect<PoolTypes.Pool<C, E>, PoolConfigError, Scope.Scope> =>
  Effect.gen(function*() {
    const size = options.size ?? 5
    const pool = yield* make(fixed<C, E>(options, { size: 0, maxOverflow: size, min: 0 }))
    const core = impl(pool)
    const byFiber = new Map<Fiber.RuntimeFiber<unknown, unknown> | undefined, Held<C>>()
    const observed = new WeakSet<Fiber.RuntimeFiber<unknown, unknown>>()

    const giveBack = (held: Held<C>): Effect.Effect<void> => {
      if (byFiber.get(held.fiber) === held) byFiber.delete(held.fiber)
      return Effect.ignore(checkinCore(core, held.lease))
    }

    const ended = (fiber: Fiber.RuntimeFiber<unknown, unknown>) => {
      const held = byFiber.get(fiber)
      if (held === undefined) return
      held.ended = true
      if (held.depth === 0) core.fork(giveBack(held))
    }

    const enter = (
      restore: <A, E1, R>(effect: Effect.Effect<A, E1, R>) => Effect.Effect<A, E1, R>,
      o: PoolTypes.CheckoutOptions | undefined
    ): Effect.Effect<Held<C>, E | PoolError> =>
      Effect.suspend(() => {
        const fiber = currentFiber()
        const held = byFiber.get(fiber)
        if (held !== undefined) {
          // nested checkouts get the same connection, whatever became of it
          if (held.depth > 0 || current(core, held.lease)) {
            held.depth++
            return Effect.succeed(held)
          }
          return Effect.zipRight(giveBack(held), enter(restore, o))
        }
        return Effect.map(restore(checkoutCore(core, o)), (lease) => {
          const fresh: Held<C> = { fiber, lease: lease as LeaseImpl<C>, depth: 1, ended: false }
          byFiber.set(fiber, fresh)
          if (fiber !== undefined && !observed.has(fiber)) {
            observed.add(fiber)
            fiber.addObserver(() => ended(fiber))
          }
          return fresh
        })
      })

    const leave = (held: Held<C>, exit: Exit.Exit<unknown, unknown>): Effect.Effect<void> =>
      Effect.suspend(() => {
        held.depth--
        const lost = disconnectOf(core, exit)
        const invalidated = lost === undefined ?
          Effect.void :
          Effect.ignore(invalidate(core, held.lease, { cause: lost }))
        if (held.depth > 0) return invalidated
        // the outermost checkout is done: a dead connection, or one whose fiber has ended, goes back now
        return held.ended || lost !== undefined || core.closed || !current(core, held.lease) ?
          Effect.zipRight(invalidated, giveBack(held)) :
          invalidated
      })

    // before the core's shutdown (finalizers run in reverse order): the fibers' idle connections go back now
    yield* Effect.addFinalizer(() =>
      Effect.suspend(() =>
        Effect.forEach(Array.from(byFiber.values()).filter((held) => held.depth === 0), giveBack, { discard: true })
      )
    )

    const issued = new Issued<C, Held<C>>()
    return install(pool, "perFiber", {
      use: (f, o) =>
        Effect.uninterruptibleMask((restore) =>
          Effect.flatMap(enter(restore, o), (held) =>
            Effect.onExit(restore(call(f, held.lease.connection)), (exit) => leave(held, exit)))
        ),
      get: (o) =>
        Effect.uninterruptibleMask((restore) =>
          Effect.flatMap(Effect.scope, (scope) =>
            Effect.flatMap(enter(restore, o), (held) =>
              Effect.as(
                Scope.addFinalizerExit(scope, (exit) =>
                  leave(held, exit)),
                held.lease.connection
              )))
        ),
      checkout: (o) =>
        Effect.uninterruptibleMask((restore) =>
          Effect.map(enter(restore, o), (held) => issued.issue(core, held.lease, held))
        ),
      checkin: (lease) =>
        Effect.uninterruptible(Effect.suspend(() => {
          const held = issued.take(core, lease)
          return held instanceof PoolUsageError ? Effect.fail(held) : leave(held, Exit.void)
        })),
      recreate: () => makePerFiber(options)
    })
  })

// --- assertion ------------------------------------------------------------------------------------------------------

interface Out {
  readonly fiber: Fiber.RuntimeFiber<unknown, unknown> | undefined
  readonly site: Error | undefined
  lease: PoolTypes.Lease<unknown> | undefined
}

/**
 * SQLAlchemy's `AssertionPool`: one connection, and a checkout while it is out fails at once with
 * `PoolAssertionError`, naming the holder and (with `storeTraceback`, the default) where it was checked out. It
 * finds code that uses more connections at once than it should.
 *
 * @internal
 */
export const makeAssertion = <C, E>(
  options: PoolTypes.AssertionOptions<C, E>
): Effect.Effect<PoolTypes.Pool<C, E | PoolAssertionError>, PoolConfigError, Scope.Scope> =>
  Effect.map(make(fixed<C, E>(options, { size: 1, maxOverflow: 0, min: 0 })), (made) => {
    const pool = made as PoolTypes.Pool<C, E | PoolAssertionError>
    const core = impl(pool)
    const storeTraceback = options.storeTraceback ?? true
    let out: Out | undefined

    /** Takes the one checkout, or answers why not; `site` is captured in the caller's own call. */
    const claim = (operation: string, site: Error | undefined): PoolAssertionError | Out => {
      if (out !== undefined) {
        return new PoolAssertionError({
          pool: core.name,
          operation,
          holder: fiberName(out.fiber),
          checkedOutAt: out.site?.stack?.split("\n").slice(1).join("\n")
        })
      }
      out = { fiber: currentFiber(), site, lease: undefined }
      return out
    }
    const release = (mine: Out) =>
      Effect.sync(() => {
        if (out === mine) out = undefined
      })
    const siteOf = () => storeTraceback ? new Error("checked out here") : undefined

    return install(pool, "assertion", {
      use: (f, o) => {
        const site = siteOf()
        return Effect.uninterruptibleMask((restore) =>
          Effect.suspend(() => {
            const mine = claim("use", site)
            return mine instanceof PoolAssertionError ?
              Effect.fail(mine) :
              Effect.ensuring(restore(useCore(pool, f, o)), release(mine))
          })
        )
      },
      get: (o) => {
        const site = siteOf()
        return Effect.uninterruptibleMask((restore) =>
          Effect.flatMap(Effect.scope, (scope) =>
            Effect.suspend(() => {
              const mine = claim("get", site)
              if (mine instanceof PoolAssertionError) return Effect.fail(mine)
              // added first, so it runs after the core's return: the slot is free once the connection is back
              return Effect.zipRight(
                Scope.addFinalizer(scope, release(mine)),
                Effect.onError(restore(getCore(pool, o)), () => release(mine))
              )
            }))
        )
      },
      checkout: (o) => {
        const site = siteOf()
        return Effect.uninterruptibleMask((restore) =>
          Effect.suspend(() => {
            const mine = claim("checkout", site)
            if (mine instanceof PoolAssertionError) return Effect.fail(mine)
            return Effect.onExit(restore(checkoutCore(pool, o)), (exit) => {
              if (Exit.isSuccess(exit)) {
                mine.lease = exit.value as PoolTypes.Lease<unknown>
                return Effect.void
              }
              return release(mine)
            })
          })
        )
      },
      checkin: (lease, o) =>
        Effect.zipRight(
          checkinCore(pool, lease, o),
          Effect.suspend(() => out !== undefined && out.lease === lease ? release(out) : Effect.void)
        ),
      recreate: () => makeAssertion(options)
    })
  })
