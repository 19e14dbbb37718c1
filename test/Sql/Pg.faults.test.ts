/**
 * The PostgreSQL `SqlClient`'s edges on a real server: a stream whose statement fails ends at once and keeps its
 * connection; a stream read past `statementTimeout` is stopped by the server as a statement timeout, not taken for a
 * lost connection; a transaction whose connection dies fails with the statement's error, not a defect from the
 * rollback, and the dead connection is never lent again.
 */
import * as Reactivity from "@effect/experimental/Reactivity"
import type { SqlError } from "@effect/sql/SqlError"
import { assert, layer } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Stream from "effect/Stream"
import * as Pg from "../../src/Driver/Pg.js"
import * as Pool from "../../src/Pool.js"
import * as SqlPg from "../../src/Sql/Pg.js"
import { uniqueName } from "../Driver/conformance.js"
import { layer as postgresLayer, Postgres } from "../utils/postgres.js"

const client = (options?: Partial<SqlPg.PgClientConfig>) =>
  Effect.flatMap(
    Postgres,
    (server) =>
      SqlPg.make({ ...server.options, applicationName: uniqueName("sql-faults"), maxConnections: 2, ...options })
  )

layer(postgresLayer, { excludeTestServices: true, timeout: "60 seconds" })("Sql/Pg faults (PostgreSQL 15)", (it) => {
  it.scoped("a stream whose statement fails ends at once, typed, and its connection serves the next statement", () =>
    Effect.gen(function*() {
      const sql = yield* Effect.provide(client(), Reactivity.layer)
      const started = Date.now()
      const error = yield* Effect.flip(Stream.runCollect(sql`SELECT * FROM no_such_table_at_all`.stream))
      assert.isBelow(Date.now() - started, 2000, "no wait for a close the server never acknowledges")
      assert.strictEqual((error.cause as { readonly code?: string }).code, "42P01")
      const before = yield* Pool.stats(sql.pool)
      assert.strictEqual((yield* sql`SELECT 1 AS n`)[0]!["n"], 1)
      const after = yield* Pool.stats(sql.pool)
      assert.strictEqual(after.closed, before.closed, "the connection was not thrown away")
    }))

  it.scoped("a stream read past statementTimeout is stopped by the server, typed, and keeps its connection", () =>
    Effect.gen(function*() {
      // PostgreSQL's statement_timeout runs until the portal is done, so it bounds a stream's whole life; the client
      // side (node-postgres's query_timeout, a second later) is disarmed for cursors, so the connection is not taken
      // for lost
      const sql = yield* Effect.provide(client({ statementTimeout: "300 millis" }), Reactivity.layer)
      const error = yield* Effect.flip(sql`SELECT g AS n FROM generate_series(1, 2000) g`.stream.pipe(
        Stream.tap(() => Effect.sleep("2 millis")),
        Stream.runCollect
      ))
      const cause = error.cause as { readonly reason?: string; readonly code?: string }
      assert.deepStrictEqual([cause.reason, cause.code], ["StatementTimeout", "57014"])
      assert.isFalse(SqlPg.isDisconnect(error))
      yield* Effect.sleep("1500 millis")
      assert.strictEqual((yield* sql`SELECT 3 AS n`)[0]!["n"], 3)
      assert.strictEqual((yield* Pool.stats(sql.pool)).closed, 0, "no connection was taken for lost")
    }))

  it.scoped("a transaction whose connection dies fails with the statement's error, and that connection is closed", () =>
    Effect.gen(function*() {
      const server = yield* Postgres
      const sql = yield* Effect.provide(client(), Reactivity.layer)
      const exit = yield* Effect.exit(sql.withTransaction(Effect.gen(function*() {
        const [{ pid }] = yield* sql<{ readonly pid: number }>`SELECT pg_backend_pid() AS pid`
        yield* server.terminateBackend(pid!)
        yield* sql`SELECT 1`
      })))
      assert.isTrue(Exit.isFailure(exit))
      if (Exit.isFailure(exit)) {
        assert.isFalse(Cause.isDie(exit.cause), "a failure, not a defect from the ROLLBACK")
        const failure = Cause.failureOption(exit.cause)
        assert.isTrue(failure._tag === "Some" && SqlPg.isDisconnect(failure.value), "recognisable as a disconnect")
      }
      assert.strictEqual((yield* sql`SELECT 2 AS n`)[0]!["n"], 2, "the next statement gets a live connection")
      const stats = yield* Pool.stats(sql.pool)
      assert.isAtLeast(stats.closed, 1, "the dead connection was closed, not lent again")
    }))

  it.scoped("a connection lost while COMMIT is in flight is CommitOutcomeUnknown, typed, not a defect", () =>
    Effect.gen(function*() {
      const server = yield* Postgres
      yield* server.query("CREATE TABLE IF NOT EXISTS sql_faults_commit (k text)")
      const sql = yield* Effect.provide(client({ maxConnections: 1 }), Reactivity.layer)
      let armed = false
      // the socket dies the moment COMMIT is handed to it: whether the server got it is unknown
      yield* Pool.listen(sql.pool, {
        connect: (event) =>
          Effect.sync(() => {
            const pgClient = Pg.unsafeClient(event.connection)
            const query = pgClient.query.bind(pgClient) as (...args: Array<unknown>) => unknown
            pgClient.query = ((...args: Array<unknown>) => {
              const result = query(...args)
              if (armed && args[0] === "COMMIT") {
                armed = false
                ;(pgClient as unknown as { connection: { stream: { destroy: () => void } } }).connection.stream
                  .destroy()
              }
              return result
            }) as typeof pgClient.query
          })
      })
      yield* sql`SELECT 1`
      const exit = yield* Effect.exit(sql.withTransaction(Effect.gen(function*() {
        yield* sql`INSERT INTO sql_faults_commit (k) VALUES ('lost')`
        armed = true
      })))
      assert.isTrue(Exit.isFailure(exit) && !Cause.isDie(exit.cause), "a failure, not a defect")
      if (Exit.isFailure(exit)) {
        const failure = Cause.failureOption(exit.cause)
        assert.isTrue(failure._tag === "Some")
        const cause = (failure as { readonly value: SqlError }).value.cause as Pg.PgError
        assert.deepStrictEqual([cause.reason, cause.operation], ["CommitOutcomeUnknown", "commit"])
      }
      assert.strictEqual((yield* sql`SELECT 1 AS n`)[0]!["n"], 1, "the pool serves on")
    }))

  it.scoped("a COMMIT that rolls back (the transaction was aborted) fails with CommitRolledBack, never succeeds", () =>
    Effect.gen(function*() {
      const server = yield* Postgres
      yield* server.query("CREATE TABLE IF NOT EXISTS sql_faults_aborted (k text PRIMARY KEY)")
      const sql = yield* Effect.provide(client(), Reactivity.layer)
      const error = yield* Effect.flip(sql.withTransaction(Effect.gen(function*() {
        yield* sql`INSERT INTO sql_faults_aborted (k) VALUES ('kept?')`
        // a failure the program catches: the transaction is aborted all the same
        yield* Effect.ignore(sql`SELECT * FROM no_such_table_at_all`)
      })))
      assert.strictEqual((error.cause as Pg.PgError).reason, "CommitRolledBack")
      const rows = yield* server.query("SELECT count(*)::int AS n FROM sql_faults_aborted")
      assert.strictEqual((rows[0] as { readonly n: number }).n, 0, "nothing was committed")
    }))
})
