import * as Effect from "effect/Effect"
import * as FiberRef from "effect/FiberRef"
import * as Queue from "effect/Queue"
import type { ConnectionRecord } from "../ConnectionRecord.js"
import type { ConnectionRejected } from "../PoolError.js"
import type * as PoolEvent from "../PoolEvent.js"
import { listenerKey } from "../PoolEvent.js"
import { currentFiber } from "./core.js"

/**
 * One registration in the feed: a set of listeners (`Pool.listen`) or a subscriber's bounded buffer
 * (`Pool.events`). `seq` orders registrations: an event about a lending reaches only those that were registered
 * when the connection was lent, so nobody hears a `Checkin` whose `Checkout` it did not hear.
 *
 * @internal
 */
export interface Registration<C> {
  readonly seq: number
  readonly listeners: PoolEvent.Listeners<C> | undefined
  readonly queue: Queue.Queue<PoolEvent.PoolEvent<C>> | undefined
}

/**
 * Which feed's turn the running fiber holds: set while it delivers, and inherited by the fibers it forks (a
 * checkout's validation runs in a child fiber when it has a deadline), so that a listener checking out a connection
 * of the same pool delivers that checkout inside the turn it already holds.
 */
const holdingTurn = FiberRef.unsafeMake<object | undefined>(undefined)

/**
 * The pool's one ordered event feed. Every event is delivered when its step runs (never when the effect is
 * built), to every registration in registration order: a subscriber's buffer gets it at the same moment the
 * listeners are called, so both hear the same events in the same order. A subscriber whose buffer is full loses
 * the newest events, and `dropped` counts them.
 *
 * @internal
 */
export class Feed<C> {
  registrations: ReadonlyArray<Registration<C>> = []
  nextSeq = 1
  dropped = 0
  listening = false
  checkoutListeners = 0
  constructor(readonly pool: string, readonly onChange: () => void) {}

  register(listeners: PoolEvent.Listeners<C> | undefined, queue: Queue.Queue<PoolEvent.PoolEvent<C>> | undefined) {
    const registration: Registration<C> = { seq: this.nextSeq++, listeners, queue }
    this.registrations = [...this.registrations, registration]
    this.refresh()
    return registration
  }

  unregister(registration: Registration<C>): void {
    this.registrations = this.registrations.filter((r) => r !== registration)
    this.refresh()
  }

  private refresh(): void {
    this.listening = this.registrations.length > 0
    this.checkoutListeners = this.registrations.filter((r) => r.listeners?.checkout !== undefined).length
    this.onChange()
  }

  /**
   * The step that delivers `event`; `before` limits it to registrations older than that sequence (events about a
   * lending). Failures of listeners are logged.
   */
  emit(event: PoolEvent.PoolEvent<C>, before = Infinity): Effect.Effect<void> {
    if (!this.listening) return Effect.void
    // uninterruptible: whoever takes the turn delivers, or the turn would never be given up
    return Effect.uninterruptible(Effect.suspend(() => {
      this.pending.push(event, before)
      if (this.turn !== undefined) return Effect.void
      this.turn = currentFiber() ?? this
      return this.drain
    }))
  }

  /**
   * Events waiting to be delivered (event, sequence limit, event, ...), in the order they happened. Whoever holds
   * the turn delivers them one at a time, so every registration hears them in that order; a fiber whose event
   * happens while another delivers leaves it to that one and goes on at once (nothing in a lifecycle step waits
   * for another fiber's listeners).
   */
  private readonly pending: Array<unknown> = []
  /** The fiber delivering now. */
  private turn: object | undefined = undefined
  /** Checkouts waiting for the turn: their listeners' answer decides the checkout, so they deliver themselves. */
  private readonly checkoutsWaiting: Array<() => void> = []

  /** Delivers what is pending, then passes the turn to a waiting checkout, or gives it up. */
  private readonly drain: Effect.Effect<void> = Effect.uninterruptible(Effect.suspend(() => this.drainStep()))

  private drainStep(): Effect.Effect<void> {
    if (this.pending.length > 0) {
      const event = this.pending.shift() as PoolEvent.PoolEvent<C>
      const before = this.pending.shift() as number
      return Effect.zipRight(
        Effect.locally(this.deliver(event, before), holdingTurn, this),
        Effect.suspend(() => this.drainStep())
      )
    }
    const next = this.checkoutsWaiting.shift()
    if (next !== undefined) next()
    else this.turn = undefined
    return Effect.void
  }

  private deliver(event: PoolEvent.PoolEvent<C>, before: number): Effect.Effect<void> {
    const key = listenerKey[event._tag]
    let effect: Effect.Effect<void> | undefined
    for (const registration of this.registrations) {
      if (registration.seq >= before) continue
      if (registration.queue !== undefined) {
        this.push(registration.queue, event)
        continue
      }
      const handler = registration.listeners![key] as
        | ((event: PoolEvent.PoolEvent<C>) => Effect.Effect<void, unknown>)
        | undefined
      if (handler === undefined) continue
      const run = Effect.catchAllCause(
        Effect.suspend(() => handler(event)),
        (cause) => Effect.logWarning(`listener for ${event._tag} failed`, cause)
      )
      effect = effect === undefined ? run : Effect.zipRight(effect, run)
    }
    return effect ?? Effect.void
  }

  /** Offers to a subscriber's buffer; a full buffer drops the event, and the drop is counted. */
  private push(queue: Queue.Queue<PoolEvent.PoolEvent<C>>, event: PoolEvent.PoolEvent<C>): void {
    if (!queue.unsafeOffer(event)) this.dropped++
  }

  /** Delivers an event that no listener handles to the subscribers' buffers, now. */
  offer(event: PoolEvent.PoolEvent<C>, before = Infinity): void {
    for (const registration of this.registrations) {
      if (registration.seq >= before) continue
      if (registration.queue !== undefined) this.push(registration.queue, event)
    }
  }

  /**
   * The checkout event's step: delivered like any other, but a `checkout` listener's failure is not logged: it is
   * the rejection of the connection, and the checkout's to handle. Listeners after the one that rejects are not
   * called (SQLAlchemy stops at the listener that raises); subscribers' buffers all get the event.
   */
  checkout(event: PoolEvent.Checkout<C>, before: number): Effect.Effect<void, unknown> {
    return Effect.flatMap(FiberRef.get(holdingTurn), (holding) =>
      // a listener checking out a connection delivers its checkout within the turn it runs in
      holding === this ? this.deliverCheckout(event, before) : this.checkoutInTurn(event, before))
  }

  private checkoutInTurn(event: PoolEvent.Checkout<C>, before: number): Effect.Effect<void, unknown> {
    return Effect.uninterruptibleMask((restore) => {
      const me: object = currentFiber() ?? this
      if (this.turn === undefined) {
        this.turn = me
        return Effect.ensuring(restore(this.deliverCheckout(event, before)), this.drain)
      }
      let granted = false
      let entry: (() => void) | undefined
      /** Takes this checkout out of the queue: it leaves without the turn. */
      const leave = () => {
        if (entry === undefined) return
        const index = this.checkoutsWaiting.indexOf(entry)
        if (index >= 0) this.checkoutsWaiting.splice(index, 1)
      }
      const wait = Effect.async<void>((resume) => {
        entry = () => {
          granted = true
          this.turn = me
          resume(Effect.void)
        }
        // the turn may have been given up since this checkout found it taken (the fiber can yield in between)
        if (this.turn === undefined) return entry()
        this.checkoutsWaiting.push(entry)
        return Effect.sync(leave)
      })
      return Effect.ensuring(
        restore(Effect.zipRight(wait, this.deliverCheckout(event, before))),
        // the canceler alone would not do: an interruption that lands between the async's registration and the
        // installation of its canceler (the fiber can yield there) skips it, and the entry left queued would later
        // hand the turn to a fiber that has ended, which would never give it up
        Effect.suspend(() => {
          if (granted) return this.drain
          leave()
          return Effect.void
        })
      )
    })
  }

  private deliverCheckout(event: PoolEvent.Checkout<C>, before: number): Effect.Effect<void, unknown> {
    return Effect.locally(Effect.suspend(() => this.checkoutSteps(event, before)), holdingTurn, this)
  }

  private checkoutSteps(event: PoolEvent.Checkout<C>, before: number): Effect.Effect<void, unknown> {
    // the subscribers' buffers get the event at the moment the first checkout listener is called, in the same step:
    // a deadline that cuts the listeners short then leaves the subscribers with what the listeners heard (all of
    // them, or nobody when it struck before the first call); a rejection does not take it back either
    let offered = false
    const offer = () => {
      if (offered) return
      offered = true
      for (const registration of this.registrations) {
        if (registration.seq < before && registration.queue !== undefined) this.push(registration.queue, event)
      }
    }
    let effect: Effect.Effect<void, ConnectionRejected> | undefined
    for (const registration of this.registrations) {
      // registered after the lending (while a validation ran): it will not hear the checkin either
      if (registration.seq >= before || registration.queue !== undefined) continue
      const handler = registration.listeners!.checkout
      if (handler === undefined) continue
      const step = Effect.suspend(() => {
        offer()
        return handler(event)
      })
      effect = effect === undefined ? step : Effect.zipRight(effect, step)
    }
    if (effect === undefined) return Effect.sync(offer)
    return effect
  }
}

/**
 * The default capacity of a subscriber's buffer.
 *
 * @internal
 */
export const defaultBufferSize = 4096

/**
 * SQLAlchemy's `echo_pool`: `info` for connect / close / invalidate, `debug` also for checkouts and checkins.
 *
 * @internal
 */
export const log = (
  echo: false | "info" | "debug",
  pool: string,
  level: "info" | "debug",
  message: string,
  record?: ConnectionRecord
): Effect.Effect<void> => {
  if (echo === false || (level === "debug" && echo !== "debug")) return Effect.void
  const effect = level === "info" ? Effect.logInfo(message) : Effect.logDebug(message)
  return Effect.annotateLogs(effect, record === undefined ? { pool } : { pool, connection: record.id })
}

/** @internal */
export const makeBuffer = <C>(capacity: number) => Queue.dropping<PoolEvent.PoolEvent<C>>(capacity)
