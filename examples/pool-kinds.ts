/**
 * SQLAlchemy's other pool kinds: a null pool (a connection per checkout), a static pool (one connection shared by
 * every checkout), a per-fiber pool (SingletonThreadPool: a fiber's checkouts get its one connection) and an
 * assertion pool (a second checkout at once fails); `recreate` keeps the kind. Run it with
 * `npx tsx examples/pool-kinds.ts`.
 */
import { Effect, Fiber } from "effect"
import * as Memory from "../src/Driver/Memory.js"
import * as Pool from "../src/Pool.js"

export const program = Effect.gen(function*() {
  const db = yield* Memory.make()
  const id = (connection: Memory.MemoryConnection) => Effect.succeed(connection.id)

  // null: every checkout opens a connection, and its return closes it
  const nullPool = yield* Pool.makeNull({ driver: db.driver, name: "null" })
  const nullIds = [yield* Pool.use(nullPool, id), yield* Pool.use(nullPool, id)]
  const nullOpen = (yield* Pool.stats(nullPool)).open

  // static: one connection, lent to everyone at once
  const staticPool = yield* Pool.makeStatic({ driver: db.driver, name: "static" })
  const staticIds = yield* Effect.all([Pool.use(staticPool, id), Pool.use(staticPool, id)], {
    concurrency: "unbounded"
  })

  // per fiber: the same fiber gets the same connection back, nested or not; another fiber gets its own,
  // closed when that fiber ends
  const perFiber = yield* Pool.makePerFiber({ driver: db.driver, name: "per-fiber", size: 5 })
  const mine = yield* Pool.use(perFiber, (outer) => Effect.map(Pool.use(perFiber, id), (inner) => [outer.id, inner]))
  const theirs = yield* Fiber.join(yield* Effect.fork(Pool.use(perFiber, id)))

  // assertion: a second checkout while the connection is out fails at once, saying where it was checked out
  const assertion = yield* Pool.makeAssertion({ driver: db.driver, name: "assertion" })
  const second = yield* Effect.flip(Pool.use(assertion, () => Pool.use(assertion, id)))

  // recreate: the same kind, with the same options
  const again = yield* Pool.recreate(staticPool)

  return {
    nullIds,
    nullOpen,
    staticIds,
    perFiber: { mine, theirs },
    assertion: second._tag,
    recreated: Pool.kind(again),
    status: yield* Pool.status(perFiber)
  }
}).pipe(Effect.scoped)

if (import.meta.url === `file://${process.argv[1]}`) {
  Effect.runPromise(program).then(console.log, (error) => {
    console.error(error)
    process.exit(1)
  })
}
