/**
 * Manual checkout with leases and the misuses the pool refuses, then the ways to take connections out of service:
 * `invalidate` (hard and soft), `invalidateAll`, `detach` and `dispose`. Run it with `npx tsx examples/leases.ts`.
 */
import { Effect, Exit, Scope } from "effect"
import * as Memory from "../src/Driver/Memory.js"
import * as Pool from "../src/Pool.js"

export const program = Effect.gen(function*() {
  const db = yield* Memory.make()
  const pool = yield* Pool.make({ driver: db.driver, name: "leases", size: 2, maxOverflow: 2 })

  // checkout / checkin: the caller gives the lease back, exactly once
  const lease = yield* Pool.checkout(pool)
  yield* db.driver.query(lease.connection, "SELECT 1")
  const uses = lease.record.uses
  yield* Pool.checkin(pool, lease)
  const twice = yield* Effect.flip(Pool.checkin(pool, lease))

  const otherDb = yield* Memory.make()
  const other = yield* Pool.make({ driver: otherDb.driver, name: "leases-other" })
  const foreignLease = yield* Pool.checkout(other)
  const foreign = yield* Effect.flip(Pool.checkin(pool, foreignLease))
  yield* Pool.checkin(other, foreignLease)

  // hard invalidation closes the connection now, even while it is lent
  const hard = yield* Pool.use(pool, (connection) =>
    Effect.gen(function*() {
      yield* Pool.invalidate(pool, connection, { cause: "saw a protocol error" })
      return { id: connection.id, closedAtOnce: connection.closed }
    }))

  // soft invalidation lets the borrower finish; the connection is closed when returned
  const softened = yield* Pool.use(pool, (connection) =>
    Effect.gen(function*() {
      yield* Pool.invalidate(pool, connection, { soft: true })
      yield* db.driver.query(connection, "SELECT 1")
      return { connection, closedAtOnce: connection.closed }
    }))
  const soft = {
    id: softened.connection.id,
    closedAtOnce: softened.closedAtOnce,
    closedOnReturn: softened.connection.closed
  }

  // invalidateAll: a new generation; idle connections close now, lent ones when returned
  yield* Pool.use(pool, () => Effect.void)
  yield* Pool.invalidateAll(pool)
  const fresh = yield* Pool.use(pool, (connection) => Pool.record(pool, connection))

  // detach: the connection leaves the pool and belongs to the caller's scope
  const owner = yield* Scope.make()
  const detached = yield* Pool.use(
    pool,
    (connection) => Effect.as(Scope.extend(Pool.detach(pool, connection), owner), connection)
  )
  const openWhileOwned = !detached.closed
  yield* Scope.close(owner, Exit.void)

  // dispose: close every idle connection; the pool stays usable
  yield* Pool.use(pool, () => Effect.void)
  yield* Pool.dispose(pool)
  const afterDispose = yield* Pool.stats(pool)

  return {
    uses,
    twice: twice.reason,
    foreign: foreign.reason,
    hard,
    soft,
    freshGeneration: fresh.generation,
    detached: { openWhileOwned, closedWithOwner: detached.closed },
    closedBy: afterDispose.closedBy,
    open: afterDispose.open,
    detachedCount: afterDispose.detached
  }
}).pipe(Effect.scoped)

if (import.meta.url === `file://${process.argv[1]}`) {
  Effect.runPromise(program).then(console.log, (error) => {
    console.error(error)
    process.exit(1)
  })
}
