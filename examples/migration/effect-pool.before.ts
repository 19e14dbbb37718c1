/**
 * The "before" side of docs/migration/effect-pool.md: Effect's own `Pool` (from `effect`) lending a plain resource,
 * a channel that is expensive to open. Each program is one pair of the page; `examples/migration/effect-pool.after.ts`
 * computes the same with effect-reservoir. Pairs 2 and 4 run under `TestClock`. Run it with
 * `npx tsx examples/migration/effect-pool.before.ts`.
 */
import { Effect, Fiber, Pool, TestClock, TestContext } from "effect"

/** The resource: a channel with an id that answers a message; `open` counts the channels open right now. */
export interface Channel {
  readonly id: number
  readonly send: (message: string) => string
}

export const makeChannels = () => {
  let next = 0
  let open = 0
  const acquire = Effect.acquireRelease(
    Effect.sync((): Channel => {
      const id = ++next
      open++
      return { id, send: (message) => message.toUpperCase() }
    }),
    () =>
      Effect.sync(() => {
        open--
      })
  )
  return { acquire, opened: () => next, open: () => open }
}

export const messages = ["a", "b", "c", "d", "e", "f"]

// --- pair 1: Pool.make, Pool.get in a scope ---

export const sendAll = Effect.gen(function*() {
  const channels = makeChannels()
  const pool = yield* Pool.make({ acquire: channels.acquire, size: 3 })
  const replies = yield* Effect.forEach(
    messages,
    (message) => Effect.scoped(Effect.map(Pool.get(pool), (channel) => channel.send(message))),
    { concurrency: "unbounded" }
  )
  return { replies, opened: channels.opened() }
}).pipe(Effect.scoped)

// --- pair 2: Pool.makeWithTTL: grow under load, shrink back when idle ---

export const growAndShrink = Effect.gen(function*() {
  const channels = makeChannels()
  const pool = yield* Pool.makeWithTTL({ acquire: channels.acquire, min: 1, max: 4, timeToLive: "1 minute" })
  // four borrowers at once hold a channel each for a second
  yield* Effect.forEach([1, 2, 3, 4], () => Effect.scoped(Effect.zipRight(Pool.get(pool), Effect.sleep("1 second"))), {
    concurrency: "unbounded"
  }).pipe(Effect.fork, Effect.tap(() => TestClock.adjust("1 second")), Effect.flatMap(Fiber.join))
  const atPeak = channels.open()
  yield* TestClock.adjust("2 minutes")
  return { atPeak, afterIdle: channels.open() }
}).pipe(Effect.scoped, Effect.provide(TestContext.TestContext))

// --- pair 3: Pool.invalidate ---

export const invalidate = Effect.gen(function*() {
  const channels = makeChannels()
  const pool = yield* Pool.make({ acquire: channels.acquire, size: 1 })
  const first = yield* Effect.scoped(Effect.tap(Pool.get(pool), (channel) => Pool.invalidate(pool, channel)))
  const second = yield* Effect.scoped(Pool.get(pool))
  return { replaced: second.id !== first.id }
}).pipe(Effect.scoped)

// --- pair 4: a borrower that must not wait forever ---

export const boundedWait = Effect.gen(function*() {
  const channels = makeChannels()
  const pool = yield* Pool.make({ acquire: channels.acquire, size: 1 })
  yield* Pool.get(pool) // held for the life of the scope
  // Pool.get has no timeout of its own: the caller bounds the wait
  const waiting = yield* Effect.fork(Effect.either(Effect.scoped(Pool.get(pool)).pipe(Effect.timeout("5 seconds"))))
  yield* TestClock.adjust("5 seconds")
  const result = yield* Fiber.join(waiting)
  return { timedOut: result._tag === "Left" }
}).pipe(Effect.scoped, Effect.provide(TestContext.TestContext))

if (import.meta.url === `file://${process.argv[1]}`) {
  Effect.runPromise(Effect.all({ sendAll, growAndShrink, invalidate, boundedWait })).then(
    (result) => console.log(JSON.stringify(result, null, 2)),
    (error) => {
      console.error(error)
      process.exit(1)
    }
  )
}
