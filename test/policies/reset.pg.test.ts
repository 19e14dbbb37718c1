/**
 * Reset on return and prepare on return against a real PostgreSQL 15 (a throwaway cluster, real clock): what the
 * server holds after a return, seen from another session through `pg_stat_activity` and the table itself.
 *
 * The last test is the ground a transaction-pinging pool (Spanner's `TransactionPingingPool`) stands on: idle
 * sessions hold an open transaction on the server, a borrower finds its transaction already begun, what it left
 * uncommitted is rolled back before the next transaction is begun, and nothing is left once the pool closes.
 */
import { assert, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"
import * as Pg from "../../src/Driver/Pg.js"
import * as Policy from "../../src/Policy.js"
import * as Pool from "../../src/Pool.js"
import { uniqueName } from "../Driver/conformance.js"
import { layer as postgresLayer, Postgres, type PostgresServer } from "../utils/postgres.js"

const TABLE = "reservoir_reset"
const INSERT = `INSERT INTO ${TABLE} (k) VALUES ($1)`

/** Whether the server has a transaction open on this connection's session, asked from another session. */
const inTransactionOnServer = (server: PostgresServer, connection: Pg.PgConnection) =>
  Effect.map(
    server.query("SELECT xact_start IS NOT NULL AS open FROM pg_stat_activity WHERE pid = $1", [
      connection.processId
    ]),
    (rows) => rows[0]?.["open"] === true
  )

const isCommitted = (server: PostgresServer, key: string) =>
  Effect.map(server.query(`SELECT 1 FROM ${TABLE} WHERE k = $1`, [key]), (rows) => rows.length === 1)

/** Records every statement the connection's client sends from now on (node-postgres's `query`). */
const spy = (connection: Pg.PgConnection): Array<string> => {
  const sent: Array<string> = []
  const client = Pg.unsafeClient(connection)
  const query = client.query.bind(client) as (...args: Array<unknown>) => unknown
  client.query = ((...args: Array<unknown>) => {
    sent.push(String(args[0]))
    return query(...args)
  }) as typeof client.query
  return sent
}

layer(postgresLayer, { excludeTestServices: true, timeout: "60 seconds" })(
  "reset and prepare (PostgreSQL 15)",
  (it) => {
    it.scoped("rollback: a transaction left open is not committed, and the next borrower is not in one", () =>
      Effect.gen(function*() {
        const server = yield* Postgres
        yield* server.query(`CREATE TABLE IF NOT EXISTS ${TABLE} (k text PRIMARY KEY)`)
        const driver = Pg.driver(server.options)
        const name = uniqueName("pg-reset-rollback")
        const pool = yield* Pool.make({
          driver,
          name,
          size: 1,
          maxOverflow: 0,
          policies: [Policy.resetOnReturn("rollback")]
        })
        const key = uniqueName("left-open")
        yield* Pool.use(pool, (c) => Effect.zipRight(driver.begin(c), driver.query(c, INSERT, [key])))
        assert.isFalse(yield* isCommitted(server, key))
        assert.strictEqual((yield* server.sessions(name)).idleInTransaction, 0)
        const [onServer, onClient] = yield* Pool.use(
          pool,
          (c) => Effect.all([inTransactionOnServer(server, c), Effect.sync(() => driver.inTransaction!(c))])
        )
        assert.deepStrictEqual([onServer, onClient], [false, false])
        assert.strictEqual((yield* Pool.stats(pool)).opened, 1, "the same session, reset")
      }))

    it.scoped("commit: a succeeded borrower's open transaction is committed, a failed one's rolled back", () =>
      Effect.gen(function*() {
        const server = yield* Postgres
        yield* server.query(`CREATE TABLE IF NOT EXISTS ${TABLE} (k text PRIMARY KEY)`)
        const driver = Pg.driver(server.options)
        const name = uniqueName("pg-reset-commit")
        const pool = yield* Pool.make({
          driver,
          name,
          size: 1,
          maxOverflow: 0,
          policies: [Policy.resetOnReturn("commit")]
        })
        const kept = uniqueName("kept")
        const dropped = uniqueName("dropped")
        yield* Pool.use(pool, (c) => Effect.zipRight(driver.begin(c), driver.query(c, INSERT, [kept])))
        yield* Effect.flip(
          Pool.use(pool, (c) =>
            Effect.zipRight(
              Effect.zipRight(driver.begin(c), driver.query(c, INSERT, [dropped])),
              Effect.fail("abort" as const)
            ))
        )
        assert.isTrue(yield* isCommitted(server, kept))
        assert.isFalse(yield* isCommitted(server, dropped))
        assert.strictEqual((yield* server.sessions(name)).idleInTransaction, 0)
        assert.strictEqual((yield* Pool.stats(pool)).closedBy.resetFailed, undefined)
      }))

    it.scoped("prepareOnReturn with BEGIN: idle sessions hold a transaction, a borrower finds one begun, none is left", () =>
      Effect.gen(function*() {
        const server = yield* Postgres
        yield* server.query(`CREATE TABLE IF NOT EXISTS ${TABLE} (k text PRIMARY KEY)`)
        const driver = Pg.driver(server.options)
        const name = uniqueName("pg-prepare")
        const scope = yield* Scope.make()
        const pool = yield* Pool.make({
          driver,
          name,
          size: 2,
          min: 2,
          maxOverflow: 0,
          // the order a transaction-pinging pool needs: the reset ends what the borrower left, then a new one begins
          policies: [
            Policy.resetOnReturn("rollback"),
            Policy.prepareOnReturn<Pg.PgConnection, Pg.PgError>((c) => driver.begin(c))
          ]
        }).pipe(Scope.extend(scope))

        // fresh sessions are prepared too (in `onConnect`): every idle one holds an open transaction
        yield* server.awaitSessions(name, (s) => s.total === 2 && s.idleInTransaction === 2)

        // both lent at once: each already has its transaction begun, on the server
        const leases = yield* Effect.all([Pool.checkout(pool), Pool.checkout(pool)])
        for (const lease of leases) assert.isTrue(yield* inTransactionOnServer(server, lease.connection))
        const sent = leases.map((lease) => spy(lease.connection))
        const uncommitted = uniqueName("uncommitted")
        yield* driver.query(leases[0]!.connection, INSERT, [uncommitted])
        for (const lease of leases) yield* Pool.checkin(pool, lease)
        yield* server.awaitSessions(name, (s) => s.total === 2 && s.idleInTransaction === 2)
        // on each return: the reset rolled back the transaction it was lent with, then the preparation began another
        assert.deepStrictEqual(sent, [[INSERT, "ROLLBACK", "BEGIN"], ["ROLLBACK", "BEGIN"]])
        assert.isFalse(yield* isCommitted(server, uncommitted), "what the borrower left open was rolled back")

        // a borrower that commits the transaction it was lent: committed, and nothing to roll back on return
        const committed = uniqueName("committed")
        const connection = yield* Pool.use(
          pool,
          (c) => Effect.as(Effect.zipRight(driver.query(c, INSERT, [committed]), driver.commit(c)), c)
        )
        assert.isTrue(yield* isCommitted(server, committed))
        yield* server.awaitSessions(name, (s) => s.total === 2 && s.idleInTransaction === 2)
        assert.isTrue(yield* inTransactionOnServer(server, connection), "a new transaction begun after the commit")
        const stats = yield* Pool.stats(pool)
        assert.deepStrictEqual([stats.opened, stats.closed], [2, 0])

        // the pool closes: no session of it is left, in a transaction or not
        yield* Scope.close(scope, Exit.void)
        yield* server.awaitSessions(name, (s) => s.total === 0)
      }))
  }
)
