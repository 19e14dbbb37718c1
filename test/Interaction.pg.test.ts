/**
 * Twisted's `adbapi.ConnectionPool` facade against a real PostgreSQL 15 (a throwaway cluster, real clock):
 * `runInteraction` commits and rolls back (seen from another session), `ConnectionLost` after `pg_terminate_backend`
 * of the connection in use and a retry that succeeds, a connection lost during `COMMIT`, and a server restart
 * (`pg_ctl stop -m fast`, start) under load: in-flight work fails with a typed error, no fiber hangs, every call
 * after the restart succeeds.
 */
import { assert, layer } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Pg from "../src/Driver/Pg.js"
import * as Interaction from "../src/Interaction.js"
import * as Pool from "../src/Pool.js"
import { isPoolError } from "../src/PoolError.js"
import { uniqueName } from "./Driver/conformance.js"
import { layer as postgresLayer, Postgres, type PostgresServer } from "./utils/postgres.js"

const TABLE = "reservoir_interaction"
const INSERT = `INSERT INTO ${TABLE} (k) VALUES ($1)`

const isThere = (server: PostgresServer, key: string) =>
  Effect.map(server.query(`SELECT 1 FROM ${TABLE} WHERE k = $1`, [key]), (rows) => rows.length === 1)

const makePool = (server: PostgresServer, prefix: string, options?: Interaction.Options<Pg.PgConnection, Pg.PgError>) =>
  Effect.gen(function*() {
    yield* server.query(`CREATE TABLE IF NOT EXISTS ${TABLE} (k text PRIMARY KEY)`)
    const name = uniqueName(prefix)
    const dbpool = yield* Interaction.make(Pg.driver(server.options), {
      name,
      cp_min: 1,
      cp_max: 3,
      cp_reconnect: true,
      timeout: "5 seconds",
      ...options
    })
    return { name, dbpool }
  })

/** A typed failure: one of the facade's, the pool's or the driver's errors, never a defect or a bare Error. */
const isTyped = (error: unknown): boolean =>
  error instanceof Interaction.ConnectionLost || error instanceof Interaction.CommitOutcomeUnknown ||
  error instanceof Pg.PgError || isPoolError(error)

layer(postgresLayer, { excludeTestServices: true, timeout: "60 seconds" })("Interaction (PostgreSQL 15)", (it) => {
  it.scoped("runInteraction commits on success, rolls back on failure and on interruption", () =>
    Effect.gen(function*() {
      const server = yield* Postgres
      const { dbpool } = yield* makePool(server, "tw-commit")
      const committed = uniqueName("committed")
      const failed = uniqueName("failed")
      const interrupted = uniqueName("interrupted")
      yield* dbpool.runInteraction((txn) => txn.execute(INSERT, [committed]))
      assert.isTrue(yield* isThere(server, committed), "the row is there")
      const error = yield* Effect.flip(
        dbpool.runInteraction((txn) => Effect.zipRight(txn.execute(INSERT, [failed]), Effect.fail("boom" as const)))
      )
      assert.strictEqual(error, "boom")
      assert.isFalse(yield* isThere(server, failed))
      const started = yield* Effect.makeLatch(false)
      const fiber = yield* Effect.fork(dbpool.runInteraction((txn) =>
        Effect.zipRight(
          Effect.zipRight(txn.execute(INSERT, [interrupted]), started.open),
          txn.execute("SELECT pg_sleep(30)")
        )
      ))
      yield* started.await
      yield* Fiber.interrupt(fiber)
      assert.isFalse(yield* isThere(server, interrupted))
      assert.deepStrictEqual(
        yield* dbpool.runQuery(`SELECT count(*)::int AS n FROM ${TABLE} WHERE k = $1`, [committed]),
        [
          { n: 1 }
        ]
      )
    }))

  it.scoped("pg_terminate_backend of the connection in use: ConnectionLost, the row not there, a retry succeeds", () =>
    Effect.gen(function*() {
      const server = yield* Postgres
      const { dbpool } = yield* makePool(server, "tw-lost")
      const key = uniqueName("lost")
      const work = (terminate: boolean) =>
        dbpool.runInteraction((txn) =>
          Effect.gen(function*() {
            yield* txn.execute(INSERT, [key])
            if (terminate) assert.isTrue(yield* server.terminateBackend(txn.connection.processId))
            return yield* txn.execute("SELECT 1 AS one")
          })
        )
      const error = yield* Effect.flip(work(true))
      assert.ok(error instanceof Interaction.ConnectionLost, String(error))
      const lost = error as Interaction.ConnectionLost
      assert.deepStrictEqual([lost.phase, lost.retryable], ["work", true])
      assert.ok(lost.cause instanceof Pg.PgError)
      assert.isFalse(yield* isThere(server, key))
      assert.strictEqual((yield* Pool.stats(dbpool.pool)).closedBy["invalidated"], 1)
      assert.deepStrictEqual(yield* work(false), [{ one: 1 }], "the retry succeeds")
      assert.isTrue(yield* isThere(server, key))
    }))

  it.scoped("a connection lost while COMMIT is in flight fails with CommitOutcomeUnknown", () =>
    Effect.gen(function*() {
      const server = yield* Postgres
      const { dbpool } = yield* makePool(server, "tw-commit-lost")
      const key = uniqueName("unknown")
      let lostPid = -1
      const error = yield* Effect.flip(dbpool.runInteraction((txn) =>
        Effect.map(txn.execute(INSERT, [key]), () => {
          lostPid = txn.connection.processId
          // the socket goes down right after COMMIT is handed to node-postgres: its outcome is not known here
          const client = Pg.unsafeClient(txn.connection)
          const query = client.query.bind(client) as (...args: Array<unknown>) => unknown
          client.query = ((...args: Array<unknown>) => {
            const result = query(...args)
            if (args[0] === "COMMIT") {
              ;(client as unknown as { connection: { stream: { destroy: () => void } } }).connection.stream.destroy()
            }
            return result
          }) as typeof client.query
        })
      ))
      assert.ok(error instanceof Interaction.CommitOutcomeUnknown, String(error))
      assert.isFalse((error as Interaction.CommitOutcomeUnknown).retryable)
      assert.strictEqual(
        ((error as Interaction.CommitOutcomeUnknown).cause as Pg.PgError).reason,
        "CommitOutcomeUnknown"
      )
      // invalidated: never lent again (its close runs in the background, bounded by the driver's closeTimeout)
      const pids = yield* Effect.forEach(
        [0, 1, 2],
        () => dbpool.runWithConnection((c) => Effect.succeed(c.processId)),
        { concurrency: "unbounded" }
      )
      assert.notInclude(pids, lostPid)
    }))

  it.scoped("a server restart under load: typed failures, no fiber hangs, every call after the restart succeeds", () =>
    Effect.gen(function*() {
      const server = yield* Postgres
      const { dbpool } = yield* makePool(server, "tw-restart", { cp_min: 3, cp_max: 3 })
      yield* dbpool.start
      const failures: Array<unknown> = []
      let stop = false
      const worker = (i: number) =>
        Effect.gen(function*() {
          let n = 0
          while (!stop) {
            const call = i % 3 === 0 ?
              dbpool.runInteraction((txn) =>
                Effect.zipRight(txn.execute(INSERT, [uniqueName(`w${i}`)]), txn.execute("SELECT pg_sleep(0.02)"))
              ) :
              i % 3 === 1 ?
              dbpool.runQuery("SELECT pg_sleep(0.02)") :
              dbpool.runWithConnection((c) => dbpool.driver.query(c, "SELECT pg_sleep(0.02)"))
            const exit = yield* Effect.exit(call)
            if (Exit.isFailure(exit)) {
              failures.push(Cause.isFailType(exit.cause) ? exit.cause.error : Cause.squash(exit.cause))
              yield* Effect.sleep("20 millis")
            }
            n++
          }
          return n
        })
      const fibers = yield* Effect.forEach(Array.from({ length: 6 }, (_, i) => i), (i) => Effect.fork(worker(i)))
      yield* Effect.sleep("150 millis")
      yield* server.stop("fast")
      yield* Effect.sleep("200 millis")
      yield* server.start()
      yield* Effect.sleep("300 millis")
      stop = true
      // no fiber hangs: every worker ends within a bound
      const counts = yield* Effect.timeoutFail(Effect.forEach(fibers, Fiber.join), {
        duration: Duration.seconds(10),
        onTimeout: () => new Error("a worker hung")
      })
      assert.ok(counts.every((n) => n > 0))
      assert.ok(failures.length > 0, "the restart was seen")
      for (const failure of failures) assert.ok(isTyped(failure), `typed: ${String(failure)}`)
      // every checkout after the restart succeeds
      const after = yield* Effect.forEach(
        Array.from({ length: 6 }, (_, i) => i),
        (i) =>
          i % 2 === 0 ?
            dbpool.runQuery("SELECT 1 AS one") :
            dbpool.runInteraction((txn) => txn.execute("SELECT 1 AS one")),
        { concurrency: "unbounded" }
      )
      assert.deepStrictEqual(after, Array.from({ length: 6 }, () => [{ one: 1 }]))
    }))
})
