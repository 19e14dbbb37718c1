/**
 * `SessionPool` against a real PostgreSQL 15 (a throwaway cluster, real clock): a transaction-pinging pool's idle
 * sessions hold an open transaction on the server (`pg_stat_activity`) and none is left once it closes; a pinging
 * pool replaces a session terminated while idle before anyone borrows it; `put` refusals change nothing, on the
 * pool or the server; a server restart under load fails in-flight work typed, hangs no fiber, and every checkout
 * after it succeeds.
 */
import { assert, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Ref from "effect/Ref"
import * as Scope from "effect/Scope"
import type { Driver } from "../src/Driver.js"
import * as Pg from "../src/Driver/Pg.js"
import * as Pool from "../src/Pool.js"
import { isPoolError } from "../src/PoolError.js"
import * as SessionPool from "../src/SessionPool.js"
import { eventually, uniqueName } from "./Driver/conformance.js"
import { layer as postgresLayer, Postgres, type PostgresServer } from "./utils/postgres.js"

type PgDriver = Driver<Pg.PgConnection, Pg.PgError>

/**
 * The Pg driver with its sessions' deaths never reported to the pool (a session dropped by a firewall): what finds
 * a dead idle session is then the pinging pool, and nothing else.
 */
const unheard = (driver: PgDriver): PgDriver => ({
  ...driver,
  connect: (context) => driver.connect({ ...context, invalidate: () => undefined })
})

/** Whether the server has a transaction open on this session, asked from another session. */
const inTransactionOnServer = (server: PostgresServer, connection: Pg.PgConnection) =>
  Effect.map(
    server.query("SELECT xact_start IS NOT NULL AS open FROM pg_stat_activity WHERE pid = $1", [
      connection.processId
    ]),
    (rows) => rows[0]?.["open"] === true
  )

const counts = (pool: Pool.Pool<Pg.PgConnection, Pg.PgError>) =>
  Effect.map(Pool.stats(pool), (s) => ({ open: s.open, idle: s.idle, inUse: s.inUse, closed: s.closed }))

layer(postgresLayer, { excludeTestServices: true, timeout: "60 seconds" })("SessionPool (PostgreSQL 15)", (it) => {
  it.scoped("transactionPinging: idle sessions hold a transaction on the server, a lent one has it begun", () =>
    Effect.gen(function*() {
      const server = yield* Postgres
      const name = uniqueName("pg-txn-pinging")
      const scope = yield* Scope.make()
      const sessions = yield* SessionPool.make(
        SessionPool.transactionPinging({ name, size: 2, pingInterval: "1 minute", background: false }),
        Pg.driver(server.options)
      ).pipe(Scope.extend(scope))
      yield* server.awaitSessions(name, (s) => s.total === 2 && s.idleInTransaction === 2)

      const session = yield* sessions.get()
      assert.isTrue(yield* inTransactionOnServer(server, session.connection), "checked out with its transaction begun")
      yield* sessions.put(session)
      // the next transaction is pending until beginPendingTransactions
      yield* server.awaitSessions(name, (s) => s.total === 2 && s.idleInTransaction === 1)
      assert.strictEqual(yield* sessions.beginPendingTransactions, 1)
      yield* server.awaitSessions(name, (s) => s.total === 2 && s.idleInTransaction === 2)

      yield* Scope.close(scope, Exit.void)
      yield* server.awaitSessions(name, (s) => s.total === 0)
    }))

  it.scoped("pinging: a session terminated while idle is replaced before anyone borrows it", () =>
    Effect.gen(function*() {
      const server = yield* Postgres
      const name = uniqueName("pg-pinging")
      const sessions = yield* SessionPool.make(
        SessionPool.pinging({ name, size: 2, pingInterval: "300 millis" }),
        unheard(Pg.driver(server.options))
      )
      const before = yield* server.awaitSessions(name, (s) => s.total === 2)
      const [victim, survivor] = before.pids
      assert.isTrue(yield* server.terminateBackend(victim!))
      // the background ping (every pingInterval) finds it dead and opens a replacement, with no get at all
      const after = yield* server.awaitSessions(
        name,
        (s) => s.total === 2 && !s.pids.includes(victim!),
        "5 seconds"
      )
      assert.include(after.pids, survivor!, "the live session is kept")
      const stats = yield* Pool.stats(sessions.pool)
      assert.deepStrictEqual([stats.checkouts, stats.closedBy["rejected"]], [0, 1])
      const pid = yield* Effect.scoped(Effect.map(sessions.session(), (s) => s.connection.processId))
      assert.include(after.pids, pid)
    }))

  it.scoped("put of a foreign session and put into a full pool fail typed and change nothing", () =>
    Effect.gen(function*() {
      const server = yield* Postgres
      const driver = Pg.driver(server.options)
      const name = uniqueName("pg-put")
      const fixed = yield* SessionPool.make(SessionPool.fixed({ name, size: 2 }), driver)
      const other = yield* SessionPool.make(SessionPool.fixed({ name: uniqueName("pg-put-other"), size: 1 }), driver)
      yield* server.awaitSessions(name, (s) => s.total === 2)

      const mine = yield* fixed.get()
      const theirs = yield* other.get()
      const before = [yield* counts(fixed.pool), yield* counts(other.pool), yield* server.sessions(name)]
      const foreign = yield* Effect.flip(fixed.put(theirs))
      assert.deepStrictEqual([foreign._tag, foreign.reason], ["PoolFull", "Foreign"])
      assert.deepStrictEqual(
        [yield* counts(fixed.pool), yield* counts(other.pool), yield* server.sessions(name)],
        before,
        "counts before = after"
      )
      yield* other.put(theirs)

      // full: the fixed pool holds its two idle sessions, and the same session comes again
      yield* fixed.put(mine)
      const full = [yield* counts(fixed.pool), yield* server.sessions(name)]
      const twice = yield* Effect.flip(fixed.put(mine))
      assert.strictEqual(twice.reason, "ReturnedTwice")
      assert.deepStrictEqual([yield* counts(fixed.pool), yield* server.sessions(name)], full, "counts before = after")

      // full: a bursty pool at its target, an extra put with whenFull: "fail"; the caller keeps a working session
      const burstyName = uniqueName("pg-put-bursty")
      const bursty = yield* SessionPool.make(SessionPool.bursty({ name: burstyName, targetSize: 1 }), driver)
      const [first, extra] = yield* Effect.all([bursty.get(), bursty.get()])
      yield* bursty.put(first!)
      const burstyBefore = [yield* counts(bursty.pool), yield* server.sessions(burstyName)]
      const refused = yield* Effect.flip(bursty.put(extra!, { whenFull: "fail" }))
      assert.strictEqual(refused.reason, "Full")
      assert.deepStrictEqual(
        [yield* counts(bursty.pool), yield* server.sessions(burstyName)],
        burstyBefore,
        "counts before = after"
      )
      assert.deepStrictEqual(yield* driver.query(extra!.connection, "SELECT 1 AS one"), [{ one: 1 }])
      yield* bursty.put(extra!)
      yield* server.awaitSessions(burstyName, (s) => s.total === 1)
    }))

  it.scoped(
    "a server restart under load: in-flight work fails typed, no fiber hangs, every checkout after succeeds",
    () =>
      Effect.gen(function*() {
        const server = yield* Postgres
        const driver = Pg.driver(server.options)
        const pools = [
          yield* SessionPool.make(SessionPool.fixed({ name: uniqueName("pg-restart-fixed"), size: 3 }), driver),
          yield* SessionPool.make(SessionPool.bursty({ name: uniqueName("pg-restart-bursty"), targetSize: 2 }), driver),
          yield* SessionPool.make(
            SessionPool.transactionPinging({
              name: uniqueName("pg-restart-txn"),
              size: 3,
              pingInterval: "200 millis",
              defaultTimeout: "5 seconds"
            }),
            driver
          )
        ]
        const stop = yield* Ref.make(false)
        const failures = yield* Ref.make<ReadonlyArray<unknown>>([])
        const successes = yield* Ref.make(0)
        // each worker checks out and runs a short statement, by get/put and by the scoped session, until told to stop
        const worker = (sessions: SessionPool.SessionPool<Pg.PgConnection, Pg.PgError>, scoped: boolean) => {
          const once = scoped ?
            Effect.scoped(
              Effect.flatMap(sessions.session(), (s) => driver.query(s.connection, "SELECT pg_sleep(0.02)"))
            ) :
            Effect.flatMap(sessions.get(), (s) =>
              Effect.ensuring(
                driver.query(s.connection, "SELECT pg_sleep(0.02)"),
                Effect.ignore(sessions.put(s, { whenFull: "close" }))
              ))
          const counted = Effect.matchEffect(once, {
            onFailure: (error) => Ref.update(failures, (all) => [...all, error]),
            onSuccess: () => Ref.update(successes, (n) => n + 1)
          })
          const loop: Effect.Effect<void> = Effect.flatMap(
            Ref.get(stop),
            (done) => done ? Effect.void : Effect.zipRight(counted, loop)
          )
          return loop
        }
        const fibers = yield* Effect.forEach(
          pools.flatMap((sessions) => [worker(sessions, false), worker(sessions, true)]),
          (effect) => Effect.fork(effect)
        )
        yield* eventually(Effect.map(Ref.get(successes), (n) => n >= 12), "the load runs")
        yield* server.restart("fast")
        yield* Effect.sleep("300 millis")
        yield* Ref.set(stop, true)
        // no fiber hangs: every worker ends, bounded
        yield* Effect.timeoutFail(Fiber.joinAll(fibers), {
          duration: "15 seconds",
          onTimeout: () => new Error("a worker hangs after the restart")
        })
        const errors = yield* Ref.get(failures)
        assert.isAbove(errors.length, 0, "the restart failed work in flight")
        for (const error of errors) {
          assert.isTrue(
            error instanceof Pg.PgError || isPoolError(error) || error instanceof SessionPool.SessionPoolEmpty,
            `typed: ${String(error)}`
          )
        }
        // after the restart: every checkout succeeds, several at once per pool, by both facades
        for (const sessions of pools) {
          const rows = yield* Effect.forEach(
            [1, 2, 3],
            (i) =>
              i % 2 === 0 ?
                Effect.scoped(
                  Effect.flatMap(sessions.session(), (s) => driver.query(s.connection, "SELECT 1 AS one"))
                ) :
                Effect.flatMap(sessions.get(), (s) =>
                  Effect.zipLeft(
                    driver.query(s.connection, "SELECT 1 AS one"),
                    Effect.ignore(sessions.put(s, { whenFull: "close" }))
                  )),
            { concurrency: "unbounded" }
          )
          assert.deepStrictEqual(rows, [[{ one: 1 }], [{ one: 1 }], [{ one: 1 }]], sessions.name)
        }
      }),
    40_000
  )
})
