/**
 * The lifetime policies, each shown against the Memory database under `TestClock`: `recycle` (age from the connect,
 * spread, closed in the background and refilled), `maxUses` (closed at its last return), `lifetime` (a schedule of
 * uses and age) and `idleTimeout` (idle connections above `min` closed). Run it with
 * `npx tsx examples/policy-lifetime.ts`.
 */
import { Effect, Fiber, Random, Schedule, TestClock, TestContext } from "effect"
import * as Memory from "../src/Driver/Memory.js"
import * as Policy from "../src/Policy.js"
import * as Pool from "../src/Pool.js"

type Conn = Pool.Pool<Memory.MemoryConnection, Memory.MemoryError>
type Policies = Pool.Options<Memory.MemoryConnection, Memory.MemoryError>["policies"]

/** Which connection a checkout is lent. */
const lend = (pool: Conn) => Pool.use(pool, (c) => Effect.succeed(c.id))

/** Moves the test clock in one-second steps, so the pools' background fibers keep up with it. */
const advance = (seconds: number) =>
  Effect.gen(function*() {
    for (let i = 0; i < seconds; i++) {
      yield* TestClock.adjust("1 second")
      yield* Effect.repeatN(Effect.yieldNow(), 20)
    }
  })

/** `2362` seconds as `"39:22"`. */
const minutesSeconds = (seconds: number) => `${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, "0")}`

/** A pool of `size` connections over a fresh Memory database, with these policies and nothing else. */
const poolWith = (
  name: string,
  options: { size: number; min?: number },
  policies: Policies
) => Effect.flatMap(Memory.make(), (db) => Pool.make({ driver: db.driver, name, ...options, policies }))

/** `n` borrowers at once, each holding its connection for a second: opens `n` connections. */
const burst = (pool: Conn, n: number) =>
  Effect.gen(function*() {
    const borrowers = Effect.forEach(Array.from({ length: n }), () => Pool.use(pool, () => Effect.sleep("1 second")), {
      concurrency: "unbounded",
      discard: true
    })
    const fiber = yield* Effect.fork(borrowers)
    yield* advance(1)
    yield* Fiber.join(fiber)
  })

export const program = Effect.gen(function*() {
  // recycle: 4 connections opened together expire over the last 2.5 % of 40 minutes (one minute), one at a time,
  // closed in the background with no checkout asking, and min refilled
  const recycled = yield* poolWith("recycle", { size: 4, min: 4 }, [Policy.recycle("40 minutes")])
  yield* Effect.repeatN(Effect.yieldNow(), 20)
  yield* TestClock.adjust("38 minutes")
  const expiredAt: Array<string> = []
  for (let second = 0; second < 120; second++) {
    const before = (yield* Pool.stats(recycled)).closedBy.expired ?? 0
    yield* advance(1)
    const after = (yield* Pool.stats(recycled)).closedBy.expired ?? 0
    for (let i = before; i < after; i++) expiredAt.push(minutesSeconds(38 * 60 + second + 1))
  }
  const recycleStats = yield* Pool.stats(recycled)

  // maxUses: lent 2 times, closed as it comes back from the second
  const limited = yield* poolWith("max-uses", { size: 1 }, [Policy.maxUses(2)])
  const maxUses = yield* Effect.forEach([1, 2, 3, 4, 5], () => lend(limited))

  // lifetime: at most 3 lendings and at most 10 minutes from the first, whichever ends first
  const schedule = Schedule.intersect(Schedule.recurs(3), Schedule.recurUpTo("10 minutes"))
  const scheduled = yield* poolWith("lifetime", { size: 1 }, [Policy.lifetime(schedule)])
  const byUses = yield* Effect.forEach([1, 2, 3, 4], () => lend(scheduled))
  yield* TestClock.adjust("10 minutes")
  const byAge = yield* lend(scheduled)

  // idleTimeout: a burst opens 5 connections; a minute after it, the 3 above min are closed
  const elastic = yield* poolWith("idle-timeout", { size: 5, min: 2 }, [Policy.idleTimeout("1 minute")])
  yield* burst(elastic, 5)
  const afterBurst = (yield* Pool.stats(elastic)).open
  yield* advance(61)
  const idleStats = yield* Pool.stats(elastic)

  return {
    recycle: {
      expiredAt,
      open: recycleStats.open,
      opened: recycleStats.opened,
      closedBy: recycleStats.closedBy
    },
    maxUses: { ids: maxUses, closedBy: (yield* Pool.stats(limited)).closedBy },
    lifetime: { byUses, byAge, closedBy: (yield* Pool.stats(scheduled)).closedBy },
    idleTimeout: { afterBurst, afterAMinute: idleStats.open, closedBy: idleStats.closedBy }
  }
}).pipe(
  Effect.scoped,
  // recycle draws each pool's offset from Effect's `Random`: seeded here, so the output is the same on every run
  Effect.withRandom(Random.make("policy-lifetime")),
  Effect.provide(TestContext.TestContext)
)

if (import.meta.url === `file://${process.argv[1]}`) {
  Effect.runPromise(program).then((result) => console.dir(result, { depth: null }), (error) => {
    console.error(error)
    process.exit(1)
  })
}
