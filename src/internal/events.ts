import * as Effect from "effect/Effect"
import * as Queue from "effect/Queue"
import type { ConnectionRecord } from "../ConnectionRecord.js"
import type { ConnectionRejected } from "../PoolError.js"
import type * as PoolEvent from "../PoolEvent.js"
import { listenerKey } from "../PoolEvent.js"

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
    return Effect.suspend(() => this.deliver(event, before))
  }

  private deliver(event: PoolEvent.PoolEvent<C>, before: number): Effect.Effect<void> {
    const key = listenerKey[event._tag]
    let effect: Effect.Effect<void> | undefined
    for (const registration of this.registrations) {
      if (registration.seq >= before) continue
      if (registration.queue !== undefined) {
        if (!registration.queue.unsafeOffer(event)) this.dropped++
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

  /** Delivers an event that no listener handles to the subscribers' buffers, now. */
  offer(event: PoolEvent.PoolEvent<C>, before = Infinity): void {
    for (const registration of this.registrations) {
      if (registration.seq >= before) continue
      if (registration.queue !== undefined && !registration.queue.unsafeOffer(event)) this.dropped++
    }
  }

  /**
   * The checkout event's step: delivered like any other, but a `checkout` listener's failure is not logged: it is
   * the rejection of the connection, and the checkout's to handle. Listeners after the one that rejects are not
   * called (SQLAlchemy stops at the listener that raises); subscribers' buffers all get the event.
   */
  checkout(event: PoolEvent.Checkout<C>, before: number): Effect.Effect<void, unknown> {
    return Effect.suspend(() => {
      let effect: Effect.Effect<void, ConnectionRejected> | undefined
      for (const registration of this.registrations) {
        // registered after the lending (while a validation ran): it will not hear the checkin either
        if (registration.seq >= before) continue
        if (registration.queue !== undefined) {
          if (!registration.queue.unsafeOffer(event)) this.dropped++
          continue
        }
        const handler = registration.listeners!.checkout
        if (handler === undefined) continue
        const step = Effect.suspend(() => handler(event))
        effect = effect === undefined ? step : Effect.zipRight(effect, step)
      }
      return effect ?? Effect.void
    })
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
