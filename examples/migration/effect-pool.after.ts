/**
 * The "after" side of docs/migration/effect-pool.md: the same four pairs as `effect-pool.before.ts`, on
 * effect-reservoir's pool of the same scoped `acquire`. Pairs 2 and 4 run under `TestClock`. Run it with
 * `npx tsx examples/migration/effect-pool.after.ts`.
 */
import { Effect, Fiber, TestClock, TestContext } from "effect"
import * as Policy from "../../src/Policy.js"
import * as Pool from "../../src/Pool.js"
import { makeChannels, messages } from "./effect-pool.before.js"

// --- pair 1: Pool.make, Pool.use ---

export const sendAll = Effect.gen(function*() {
  const channels = makeChannels()
  // Effect's Pool.make({ acquire, size: 3 }): 3 items, opened at start, never more
  const pool = yield* Pool.make({ acquire: channels.acquire, name: "channels", size: 3, min: 3, maxOverflow: 0 })
  const replies = yield* Effect.forEach(
    messages,
    (message) => Pool.use(pool, (channel) => Effect.sync(() => channel.send(message))),
    { concurrency: "unbounded" }
  )
  return { replies, opened: channels.opened() }
}).pipe(Effect.scoped)

// --- pair 2: grow under load, shrink back when idle ---

export const growAndShrink = Effect.gen(function*() {
  const channels = makeChannels()
  // makeWithTTL({ min: 1, max: 4, timeToLive: "1 minute" }): up to 4, back to 1 after a minute idle
  const pool = yield* Pool.make({
    acquire: channels.acquire,
    name: "channels",
    size: 4,
    min: 1,
    maxOverflow: 0,
    policies: [Policy.idleTimeout("1 minute")]
  })
  yield* Effect.forEach([1, 2, 3, 4], () => Pool.use(pool, () => Effect.sleep("1 second")), {
    concurrency: "unbounded"
  }).pipe(Effect.fork, Effect.tap(() => TestClock.adjust("1 second")), Effect.flatMap(Fiber.join))
  const atPeak = channels.open()
  yield* TestClock.adjust("2 minutes")
  return { atPeak, afterIdle: channels.open() }
}).pipe(Effect.scoped, Effect.provide(TestContext.TestContext))

// --- pair 3: Pool.invalidate ---

export const invalidate = Effect.gen(function*() {
  const channels = makeChannels()
  const pool = yield* Pool.make({ acquire: channels.acquire, name: "channels", size: 1, maxOverflow: 0 })
  const first = yield* Pool.use(pool, (channel) => Effect.as(Pool.invalidate(pool, channel), channel))
  const second = yield* Pool.use(pool, (channel) => Effect.succeed(channel))
  return { replaced: second.id !== first.id }
}).pipe(Effect.scoped)

// --- pair 4: a borrower that must not wait forever ---

export const boundedWait = Effect.gen(function*() {
  const channels = makeChannels()
  const pool = yield* Pool.make({ acquire: channels.acquire, name: "channels", size: 1, maxOverflow: 0 })
  yield* Pool.get(pool) // held for the life of the scope
  // the pool's timeout (30 seconds by default), or one of the call's own
  const waiting = yield* Effect.fork(Effect.either(Pool.use(pool, () => Effect.void, { timeout: "5 seconds" })))
  yield* TestClock.adjust("5 seconds")
  const result = yield* Fiber.join(waiting)
  return { timedOut: result._tag === "Left", error: result._tag === "Left" ? result.left.message : "" }
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
