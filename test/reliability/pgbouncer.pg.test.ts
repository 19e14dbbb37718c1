/**
 * The Pg driver and the `SqlClient` behind PgBouncer in transaction pooling mode (a throwaway PgBouncer in front of
 * the throwaway PostgreSQL 15 cluster, real clock): what works (statements, parameters, transactions, interruption,
 * more borrowers than the bouncer has server connections, a PgBouncer restart under load) and what does not, each
 * shown as the behaviour it is (session state set outside a transaction, `LISTEN`, named prepared statements,
 * startup parameters), with what the pool does about it (`resetOnReturn`, `onConnect`).
 *
 * How the "not yours" cases are made deterministic: PgBouncer lends its most recently released server connection
 * first (LIFO, `server_round_robin = 0`), so a second client that begins a transaction right after the first
 * client's statement gets the server connection that statement ran on, and holds it; the first client's next
 * statement has to run on another one. Each test asserts that the backend pids line up that way before it asserts
 * anything else.
 *
 * Cancelling a statement in flight goes through PgBouncer too: PgBouncer finds the session by its client connection,
 * so the driver writes the cancel request and waits for it to be answered (libpq's way) before it closes the busy
 * session. (Sending it with an immediate FIN, or closing the session first, made PgBouncer 1.18.0 drop the request as
 * coming from a client that had left, and sometimes die: `FATAL ... disconnect_client(): bad client state: 0`,
 * pgbouncer/pgbouncer#801.)
 *
 * Budget: about 15 s in CI, the restart's load included (3 s of load after the restart).
 */
import * as Reactivity from "@effect/experimental/Reactivity"
import { SqlError } from "@effect/sql/SqlError"
import { assert, layer } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type pg from "pg"
import type { Driver } from "../../src/Driver.js"
import * as Pg from "../../src/Driver/Pg.js"
import * as Policy from "../../src/Policy.js"
import * as Pool from "../../src/Pool.js"
import { isPoolError } from "../../src/PoolError.js"
import * as SqlPg from "../../src/Sql/Pg.js"
import { uniqueName } from "../Driver/conformance.js"
import * as PgBouncer from "../utils/pgbouncer.js"
import { layer as postgresLayer, Postgres, type PostgresServer } from "../utils/postgres.js"

const TABLE = "reservoir_pgbouncer"
const INSERT = `INSERT INTO ${TABLE} (k) VALUES ($1)`
const DEFAULT_SEARCH_PATH = "\"$user\", public"
/** One statement that says which backend ran it and what it saw. */
const PROBE = "SELECT current_setting('search_path') AS sp, pg_backend_pid() AS pid"

const createTable = (server: PostgresServer) => server.query(`CREATE TABLE IF NOT EXISTS ${TABLE} (k text PRIMARY KEY)`)

const isCommitted = (server: PostgresServer, key: string) =>
  Effect.map(server.query(`SELECT 1 FROM ${TABLE} WHERE k = $1`, [key]), (rows) => rows.length === 1)

/** The driver's options pointing at the bouncer instead of the server. */
const through = (
  server: PostgresServer,
  bouncer: PgBouncer.PgBouncer,
  extra?: Partial<Pg.PgOptions>
): Pg.PgOptions => ({
  ...server.options,
  port: bouncer.port,
  ...extra
})

interface Probe {
  readonly sp: string
  readonly pid: number
}

const probe = (driver: Driver<Pg.PgConnection, Pg.PgError>, connection: Pg.PgConnection, sql: string = PROBE) =>
  Effect.map(
    driver.query(connection, sql),
    (rows): Probe => ({ sp: String(rows[0]!["sp"]), pid: Number(rows[0]!["pid"]) })
  )

/** A typed failure: the driver's, the pool's or the SqlClient's error, never a defect or a bare Error. */
const isTyped = (error: unknown): boolean =>
  error instanceof Pg.PgError || isPoolError(error) || error instanceof SqlError

const kindOf = (error: unknown): string => {
  if (error instanceof SqlError) return `SqlError(${kindOf(error.cause)})`
  if (error instanceof Pg.PgError) return `PgError.${error.reason}`
  if (isPoolError(error)) return String((error as { readonly _tag: string })._tag)
  return `untyped: ${String(error)}`
}

/** A `SHOW VERSION` answer (`"PgBouncer 1.18.0"`) as [major, minor]. */
const versionOf = (version: string): readonly [number, number] => {
  const match = /PgBouncer (\d+)\.(\d+)/.exec(version)
  return match === null ? [0, 0] : [Number(match[1]), Number(match[2])]
}

const waitUntil = (predicate: () => boolean, timeout: number) =>
  Effect.gen(function*() {
    const deadline = Date.now() + timeout
    while (!predicate() && Date.now() < deadline) yield* Effect.sleep("10 millis")
    return predicate()
  })

layer(postgresLayer, { excludeTestServices: true, timeout: "60 seconds" })(
  "PgBouncer in transaction mode (PostgreSQL 15)",
  (it) => {
    // ---------------------------------------------------------------------------------------------------------------
    // what works

    it.scoped("the Pg driver: statements with parameters, commit, rollback, and an interruption that rolls back", () =>
      Effect.gen(function*() {
        const server = yield* Postgres
        yield* createTable(server)
        const bouncer = yield* PgBouncer.make({ defaultPoolSize: 2 })
        const driver = Pg.driver(through(server, bouncer))
        const name = uniqueName("pgb-driver")
        const pool = yield* Pool.make({ driver, name, size: 3, maxOverflow: 0, timeout: "10 seconds" })

        const rows = yield* Pool.query(pool, "SELECT $1::int + $2::int AS n, $3::text AS t", [40, 2, "through"])
        assert.deepStrictEqual(rows, [{ n: 42, t: "through" }])

        const committed = uniqueName("committed")
        yield* Pool.transaction(pool, (c) => driver.query(c, INSERT, [committed]))
        assert.isTrue(yield* isCommitted(server, committed))

        const failed = uniqueName("failed")
        const error = yield* Effect.flip(
          Pool.transaction(
            pool,
            (c) => Effect.zipRight(driver.query(c, INSERT, [failed]), Effect.fail("boom" as const))
          )
        )
        assert.strictEqual(error, "boom")
        assert.isFalse(yield* isCommitted(server, failed))

        // interrupted between statements (no statement in flight, so no cancel request)
        const interrupted = uniqueName("interrupted")
        const started = yield* Effect.makeLatch(false)
        const fiber = yield* Effect.fork(Pool.transaction(pool, (c) =>
          Effect.zipRight(
            Effect.zipRight(driver.query(c, INSERT, [interrupted]), started.open),
            Effect.never
          )))
        yield* started.await
        yield* Fiber.interrupt(fiber)
        assert.isFalse(yield* isCommitted(server, interrupted))
        // PgBouncer sets each server connection's application_name to its client's when it links them
        yield* server.awaitSessions(name, (s) => s.idleInTransaction === 0)
        assert.deepStrictEqual(yield* Pool.query(pool, "SELECT 1 AS n"), [{ n: 1 }], "the pool still serves")
      }))

    it.scoped("an interrupted statement is cancelled through PgBouncer, which forwards the cancel request and lives on", () =>
      Effect.gen(function*() {
        const server = yield* Postgres
        const bouncer = yield* PgBouncer.make({ defaultPoolSize: 2 })
        const name = uniqueName("pgb-cancel")
        const pool = yield* Pool.make({ driver: Pg.driver(through(server, bouncer)), name, size: 2, maxOverflow: 0 })
        const sleeping = () =>
          Effect.map(
            server.query(
              "SELECT count(*)::int AS n FROM pg_stat_activity WHERE state = 'active' AND query LIKE 'SELECT pg_sleep(3%'"
            ),
            (rows) => (rows[0] as { readonly n: number }).n
          )
        for (let i = 0; i < 3; i++) {
          const fiber = yield* Effect.fork(Pool.query(pool, "SELECT pg_sleep(30)"))
          yield* Effect.sleep("300 millis")
          assert.strictEqual(yield* sleeping(), 1, "running on the server")
          yield* Fiber.interrupt(fiber)
          yield* Effect.sleep("500 millis")
          assert.strictEqual(yield* sleeping(), 0, `cancel ${i + 1}: the server stopped it`)
        }
        assert.deepStrictEqual(yield* Pool.query(pool, "SELECT 1 AS n"), [{ n: 1 }], "PgBouncer and the pool serve on")
      }))

    it.scoped("the SqlClient: statements with parameters, withTransaction commits, rolls back, and on interruption", () =>
      Effect.gen(function*() {
        const server = yield* Postgres
        yield* createTable(server)
        const bouncer = yield* PgBouncer.make({ defaultPoolSize: 2 })
        const sql = yield* Effect.provide(
          SqlPg.make({ ...through(server, bouncer), applicationName: uniqueName("pgb-sql"), maxConnections: 3 }),
          Reactivity.layer
        )
        const rows = yield* sql<
          { readonly n: number; readonly t: string }
        >`SELECT ${40}::int + ${2}::int AS n, ${"x"}::text AS t`
        assert.deepStrictEqual(rows.map((row) => [row.n, row.t]), [[42, "x"]])

        const committed = uniqueName("sql-committed")
        yield* sql.withTransaction(sql`INSERT INTO ${sql(TABLE)} ${sql.insert({ k: committed })}`)
        assert.isTrue(yield* isCommitted(server, committed))

        const failed = uniqueName("sql-failed")
        yield* Effect.flip(sql.withTransaction(
          Effect.zipRight(sql`INSERT INTO ${sql(TABLE)} ${sql.insert({ k: failed })}`, Effect.fail("boom" as const))
        ))
        assert.isFalse(yield* isCommitted(server, failed))

        const interrupted = uniqueName("sql-interrupted")
        const started = yield* Effect.makeLatch(false)
        const fiber = yield* Effect.fork(sql.withTransaction(Effect.gen(function*() {
          yield* sql`INSERT INTO ${sql(TABLE)} ${sql.insert({ k: interrupted })}`
          yield* started.open
          yield* Effect.never
        })))
        yield* started.await
        yield* Fiber.interrupt(fiber)
        assert.isFalse(yield* isCommitted(server, interrupted))
        const [{ n }] = yield* sql<{ readonly n: number }>`SELECT 7 AS n`
        assert.strictEqual(n, 7, "the client still serves")
      }))

    it.scoped("more borrowers than server connections: 48 fibers over 16 client connections share 2 server backends", () =>
      Effect.gen(function*() {
        const server = yield* Postgres
        yield* createTable(server)
        const bouncer = yield* PgBouncer.make({ defaultPoolSize: 2 })
        const driver = Pg.driver(through(server, bouncer))
        const pool = yield* Pool.make({
          driver,
          name: uniqueName("pgb-many"),
          size: 16,
          maxOverflow: 0,
          timeout: "20 seconds"
        })
        const sql = yield* Effect.provide(
          SqlPg.make({ ...through(server, bouncer), applicationName: uniqueName("pgb-many-sql"), maxConnections: 16 }),
          Reactivity.layer
        )
        const backends = new Set<number>()
        const keys: Array<string> = []
        const started = Date.now()
        yield* Effect.forEach(
          Array.from({ length: 48 }, (_, i) => i),
          (i) =>
            Effect.forEach(Array.from({ length: 5 }, (_, j) => j), (j): Effect.Effect<void, unknown> => {
              const key = uniqueName(`many-${i}-${j}`)
              keys.push(key)
              return i % 2 === 0 ?
                Pool.transaction(pool, (c) =>
                  Effect.gen(function*() {
                    yield* driver.query(c, INSERT, [key])
                    const rows = yield* driver.query(c, "SELECT pg_backend_pid() AS pid, $1::int AS i", [i])
                    backends.add(Number(rows[0]!["pid"]))
                  })) :
                sql.withTransaction(Effect.gen(function*() {
                  yield* sql`INSERT INTO ${sql(TABLE)} ${sql.insert({ k: key })}`
                  const [row] = yield* sql<{ readonly pid: number }>`SELECT pg_backend_pid() AS pid, ${i}::int AS i`
                  backends.add(row!.pid)
                }))
            }, { discard: true }),
          { concurrency: "unbounded", discard: true }
        )
        const elapsed = Date.now() - started
        const committed = yield* server.query(`SELECT count(*)::int AS n FROM ${TABLE} WHERE k = ANY($1)`, [keys])
        assert.strictEqual(committed[0]!["n"], 240, "every transaction committed")
        assert.isAtMost(backends.size, 2, "PgBouncer never opened more than default_pool_size server connections")
        const statsRows = yield* bouncer.admin("SHOW STATS")
        const main = statsRows.find((row) => row["database"] === "postgres")!
        const stats = yield* Pool.stats(pool)
        console.log(
          `[reliability] pgbouncer concurrency: 240 transactions from 48 fibers, ${stats.opened}+${
            (yield* Pool.stats(sql.pool)).opened
          } client connections, ${backends.size} server backends (default_pool_size 2), ${elapsed} ms; PgBouncer ` +
            `counted ${main["total_xact_count"]} transactions, clients waited ${
              Math.round(Number(main["total_wait_time"]) / 1000)
            } ms in all for a server connection`
        )
      }))

    it.scoped(
      "a PgBouncer restart under load: typed failures, no hang, every call after it succeeds",
      () =>
        Effect.gen(function*() {
          const server = yield* Postgres
          yield* createTable(server)
          const bouncer = yield* PgBouncer.make({ defaultPoolSize: 4 })
          const options = through(server, bouncer, { connectTimeout: "2 seconds" })
          const driver = Pg.driver(options)
          const pool = yield* Pool.make({
            driver,
            name: uniqueName("pgb-restart"),
            size: 6,
            maxOverflow: 0,
            timeout: "5 seconds"
          })
          const sql = yield* Effect.provide(
            SqlPg.make({
              ...options,
              applicationName: uniqueName("pgb-restart-sql"),
              maxConnections: 6,
              pool: { timeout: "5 seconds" }
            }),
            Reactivity.layer
          )
          interface Outcome {
            readonly start: number
            readonly end: number
            readonly error?: unknown
            readonly committed?: string
          }
          const outcomes: Array<Outcome> = []
          let stop = false
          const hangBound = "15 seconds"
          const worker = (i: number) =>
            Effect.gen(function*() {
              while (!stop) {
                const key = uniqueName(`restart-${i}`)
                const call: Effect.Effect<unknown, unknown> = i % 4 === 0 ?
                  Pool.transaction(
                    pool,
                    (c) => Effect.zipRight(driver.query(c, INSERT, [key]), driver.query(c, "SELECT pg_sleep(0.01)"))
                  ) :
                  i % 4 === 1 ?
                  Pool.query(pool, "SELECT pg_sleep(0.01), $1::text AS k", [key]) :
                  i % 4 === 2 ?
                  sql`SELECT pg_sleep(0.01), ${key}::text AS k` :
                  sql.withTransaction(
                    Effect.zipRight(
                      sql`INSERT INTO ${sql(TABLE)} ${sql.insert({ k: key })}`,
                      sql`SELECT pg_sleep(0.01)`
                    )
                  )
                const start = Date.now()
                const exit = yield* Effect.exit(Effect.timeoutFail(call, {
                  duration: hangBound,
                  onTimeout: () => "hang" as const
                }))
                const end = Date.now()
                const transactional = i % 4 === 0 || i % 4 === 3
                if (Exit.isSuccess(exit)) {
                  outcomes.push(transactional ? { start, end, committed: key } : { start, end })
                } else {
                  outcomes.push({
                    start,
                    end,
                    error: Cause.isFailType(exit.cause) ? exit.cause.error : Cause.squash(exit.cause)
                  })
                  yield* Effect.sleep("10 millis")
                }
              }
            })
          const fibers = yield* Effect.forEach(Array.from({ length: 12 }, (_, i) => i), (i) => Effect.fork(worker(i)))
          yield* Effect.sleep("500 millis")
          const restartStarted = Date.now()
          yield* bouncer.restart
          const back = Date.now()
          yield* Effect.sleep("3 seconds")
          stop = true
          yield* Fiber.joinAll(fibers)

          const failures = outcomes.filter((o) => o.error !== undefined)
          const hangs = failures.filter((o) => o.error === "hang")
          assert.strictEqual(hangs.length, 0, "no call ran into the hang bound")
          const untyped = failures.filter((o) => !isTyped(o.error))
          assert.deepStrictEqual(untyped.map((o) => String(o.error)), [], "every failure is typed")
          // the first success to end once PgBouncer was back, whenever the call started
          const successEnds = outcomes.filter((o) => o.error === undefined && o.end >= back).map((o) => o.end)
          assert.isAbove(successEnds.length, 0, "calls succeed after the restart")
          const settled = back + 2_000
          const lateFailures = outcomes.filter((o) => o.error !== undefined && o.start >= settled)
          assert.deepStrictEqual(
            lateFailures.map((o) => kindOf(o.error)),
            [],
            "every call 2 s after the restart succeeds"
          )
          assert.isAbove(outcomes.filter((o) => o.start >= settled).length, 12, "and there were calls then")
          const keys = outcomes.flatMap((o) => o.committed === undefined ? [] : [o.committed])
          const found = yield* server.query(`SELECT count(*)::int AS n FROM ${TABLE} WHERE k = ANY($1)`, [keys])
          assert.strictEqual(found[0]!["n"], keys.length, "every reported commit is there")
          const byKind = new Map<string, number>()
          for (const o of failures) byKind.set(kindOf(o.error), (byKind.get(kindOf(o.error)) ?? 0) + 1)
          const kinds = [...byKind].map(([kind, n]) => `${kind} ×${n}`).join(", ") || "none"
          const failedAfter = failures.filter((o) => o.end > back).length
          const maxCall = Math.max(...outcomes.map((o) => o.end - o.start))
          console.log(
            `[reliability] pgbouncer restart: ${outcomes.length} calls from 12 fibers, ${failures.length} failed ` +
              `(${kinds}), 0 hangs, 0 untyped; stop + start took ${back - restartStarted} ms; first success ` +
              `${Math.min(...successEnds) - back} ms after PgBouncer was back; ${failedAfter} failures ended after ` +
              `that; max call ${maxCall} ms; ${keys.length} reported commits all present; ${bouncer.version}`
          )
        }),
      { timeout: 60_000 }
    )

    it.scoped("SET LOCAL inside a transaction holds for the transaction, on one backend, and ends with it", () =>
      Effect.gen(function*() {
        const server = yield* Postgres
        const bouncer = yield* PgBouncer.make({ defaultPoolSize: 2 })
        const driver = Pg.driver(through(server, bouncer))
        const pool = yield* Pool.make({ driver, name: uniqueName("pgb-local"), size: 1, maxOverflow: 0 })
        const [first, second] = yield* Pool.transaction(pool, (c) =>
          Effect.gen(function*() {
            yield* driver.query(c, "SET LOCAL search_path TO reservoir_local, public")
            return [yield* probe(driver, c), yield* probe(driver, c)] as const
          }))
        assert.deepStrictEqual(first, second, "one backend for the whole transaction")
        assert.strictEqual(first.sp, "reservoir_local, public")
        assert.strictEqual((yield* Pool.use(pool, (c) => probe(driver, c))).sp, DEFAULT_SEARCH_PATH, "gone at COMMIT")
      }))

    it.scoped("application_name and TimeZone follow the client: PgBouncer tracks them and sets them on each link", () =>
      Effect.gen(function*() {
        const server = yield* Postgres
        // one server connection for every client of this alias: whatever is not tracked would leak between them
        const bouncer = yield* PgBouncer.make({ databases: { single: "pool_size=1" } })
        const driver = (applicationName: string) =>
          Pg.driver(through(server, bouncer, { database: "single", applicationName }))
        const names = [uniqueName("pgb-app-a"), uniqueName("pgb-app-b")] as const
        const [da, db] = names.map(driver)
        const a = yield* Pool.make({ driver: da!, name: names[0], size: 1, maxOverflow: 0 })
        const b = yield* Pool.make({ driver: db!, name: names[1], size: 1, maxOverflow: 0 })
        const TZ = "SELECT current_setting('application_name') AS an, current_setting('TimeZone') AS tz, " +
          "pg_backend_pid() AS pid"
        const seen = (pool: Pool.Pool<Pg.PgConnection, Pg.PgError>) =>
          Effect.map(Pool.query(pool, TZ), (rows) => rows[0]!)
        const defaultTz = (yield* seen(b))["tz"]
        yield* Pool.use(a, (c) => da!.query(c, "SET TimeZone TO 'Asia/Tokyo'"))
        const [fromA, fromB] = [yield* seen(a), yield* seen(b)]
        assert.strictEqual(fromA["pid"], fromB["pid"], "one server connection")
        assert.deepStrictEqual([fromA["an"], fromA["tz"]], [names[0], "Asia/Tokyo"], "a's own settings")
        assert.deepStrictEqual([fromB["an"], fromB["tz"]], [names[1], defaultTz], "b's own settings, none of a's")
      }))

    // ---------------------------------------------------------------------------------------------------------------
    // what does not work in transaction mode

    it.scoped("a SET outside a transaction stays on a server connection: the next statement may miss it, another client sees it", () =>
      Effect.gen(function*() {
        const server = yield* Postgres
        const bouncer = yield* PgBouncer.make({ defaultPoolSize: 2 })
        const driver = Pg.driver(through(server, bouncer))
        const a = yield* Pool.make({ driver, name: uniqueName("pgb-set-a"), size: 1, maxOverflow: 0 })
        const b = yield* Pool.make({ driver, name: uniqueName("pgb-set-b"), size: 1, maxOverflow: 0 })
        yield* Pool.use(a, (ca) =>
          Effect.gen(function*() {
            // `SET search_path ...` with the pid of the backend it ran on
            const set = yield* probe(
              driver,
              ca,
              "SELECT set_config('search_path', 'reservoir_leaked, public', false) AS sp, pg_backend_pid() AS pid"
            )
            yield* Pool.use(b, (cb) =>
              Effect.gen(function*() {
                yield* driver.begin(cb)
                const other = yield* probe(driver, cb)
                const next = yield* probe(driver, ca)
                assert.strictEqual(
                  other.pid,
                  set.pid,
                  "b's transaction got the server connection a's SET ran on (LIFO)"
                )
                assert.strictEqual(other.sp, "reservoir_leaked, public", "b sees a's setting")
                assert.notStrictEqual(next.pid, set.pid, "a's next statement ran on another backend")
                assert.strictEqual(next.sp, DEFAULT_SEARCH_PATH, "and does not see its own setting")
                yield* driver.rollback(cb)
              }))
          }))
      }))

    it.scoped("LISTEN: a notification for an idle server connection is dropped, one for a linked one goes to the wrong client", () =>
      Effect.gen(function*() {
        const server = yield* Postgres
        const bouncer = yield* PgBouncer.make({ defaultPoolSize: 2 })
        const driver = Pg.driver(through(server, bouncer))

        // the SqlClient's listen holds its client connection for the stream's life, but not a server connection
        const channel = "reservoir_pgb_idle"
        const viaBouncer = yield* Effect.provide(
          SqlPg.make({ ...through(server, bouncer), applicationName: uniqueName("pgb-listen"), maxConnections: 2 }),
          Reactivity.layer
        )
        const direct = yield* Effect.provide(
          SqlPg.make({ ...server.options, applicationName: uniqueName("pgb-listen-direct"), maxConnections: 2 }),
          Reactivity.layer
        )
        const received = { bouncer: [] as Array<string>, direct: [] as Array<string> }
        yield* Effect.forkScoped(
          Stream.runForEach(viaBouncer.listen(channel), (p) => Effect.sync(() => received.bouncer.push(p)))
        )
        yield* Effect.forkScoped(
          Stream.runForEach(direct.listen(channel), (p) => Effect.sync(() => received.direct.push(p)))
        )
        yield* Effect.sleep("300 millis")
        yield* server.query(`SELECT pg_notify('${channel}', 'hello')`)
        assert.isTrue(yield* waitUntil(() => received.direct.length === 1, 5_000), "a direct connection gets it")
        yield* Effect.sleep("300 millis")
        assert.deepStrictEqual(received.bouncer, [], "through PgBouncer it never arrives")
        const log = yield* bouncer.log
        assert.include(log, "when not linked", "PgBouncer got it on an idle server connection and closed that one")

        // a listener's server connection lent to another client: that client gets the notification
        const listener = yield* Pool.make({ driver, name: uniqueName("pgb-listener"), size: 1, maxOverflow: 0 })
        const bystander = yield* Pool.make({ driver, name: uniqueName("pgb-bystander"), size: 1, maxOverflow: 0 })
        const heard = { listener: [] as Array<string>, bystander: [] as Array<string> }
        const listened = yield* Pool.use(listener, (c) =>
          Effect.gen(function*() {
            Pg.unsafeClient(c).on("notification", (n: pg.Notification) => heard.listener.push(n.payload ?? ""))
            yield* driver.query(c, "LISTEN reservoir_pgb_linked")
            return yield* probe(driver, c)
          }))
        yield* Pool.use(bystander, (c) =>
          Effect.gen(function*() {
            Pg.unsafeClient(c).on("notification", (n: pg.Notification) => heard.bystander.push(n.payload ?? ""))
            yield* driver.begin(c)
            const got = yield* probe(driver, c)
            assert.strictEqual(got.pid, listened.pid, "the bystander's transaction holds the listener's backend (LIFO)")
            yield* server.query("SELECT pg_notify('reservoir_pgb_linked', 'misdelivered')")
            // the server delivers it when the backend leaves the transaction, still linked to the bystander
            yield* driver.rollback(c)
            assert.isTrue(yield* waitUntil(() => heard.bystander.length === 1, 5_000), "the bystander gets it")
          }))
        assert.deepStrictEqual(heard, { listener: [], bystander: ["misdelivered"] })
      }))

    it.scoped("named prepared statements: the second run finds no statement unless PgBouncer tracks them (1.21+)", () =>
      Effect.gen(function*() {
        const server = yield* Postgres
        const plain = yield* PgBouncer.make({ defaultPoolSize: 2 })
        const [major, minor] = versionOf(plain.version)
        // 1.21 added max_prepared_statements (protocol-level prepared statements tracked per client); turned on here
        const tracks = major > 1 || (major === 1 && minor >= 21)
        const bouncer = tracks ?
          yield* PgBouncer.make({ defaultPoolSize: 2, settings: { max_prepared_statements: 100 } }) :
          plain
        const driver = Pg.driver(through(server, bouncer))
        const a = yield* Pool.make({ driver, name: uniqueName("pgb-named-a"), size: 1, maxOverflow: 0 })
        const b = yield* Pool.make({ driver, name: uniqueName("pgb-named-b"), size: 1, maxOverflow: 0 })
        // the driver's own statements are unnamed (parsed afresh each time): parameters work on any backend
        const statement = (n: number) => ({
          name: "reservoir_named",
          text: "SELECT $1::int AS n, pg_backend_pid() AS pid, current_setting('search_path') AS sp",
          values: [n]
        })
        yield* Pool.use(a, (ca) =>
          Effect.gen(function*() {
            const client = Pg.unsafeClient(ca)
            const run = (n: number) =>
              Effect.tryPromise(() => client.query(statement(n))).pipe(
                Effect.map((r) => r.rows[0] as Record<string, unknown>)
              )
            const first = yield* run(1)
            yield* Pool.use(b, (cb) =>
              Effect.gen(function*() {
                yield* driver.begin(cb)
                const held = yield* probe(driver, cb)
                assert.strictEqual(held.pid, Number(first["pid"]), "b holds the backend the statement was prepared on")
                const second = yield* Effect.either(run(2))
                if (tracks) {
                  assert.isTrue(second._tag === "Right", `${bouncer.version} prepares it on the other backend too`)
                } else {
                  assert.isTrue(second._tag === "Left", `${bouncer.version} does not track prepared statements`)
                  if (second._tag === "Left") {
                    const cause = (second.left as { readonly error?: unknown }).error as { readonly code?: string }
                    assert.strictEqual(cause.code, "26000", "prepared statement \"reservoir_named\" does not exist")
                  }
                }
                yield* driver.rollback(cb)
              }))
          }))
        console.log(`[reliability] pgbouncer prepared statements: ${bouncer.version}, tracked: ${tracks}`)
      }))

    it.scoped("statementTimeout: PgBouncer refuses the statement_timeout startup parameter, or ignores it when told to", () =>
      Effect.gen(function*() {
        const server = yield* Postgres
        const refusing = yield* PgBouncer.make({
          databases: { timeouts: "connect_query='SET statement_timeout = 300'" }
        })
        const error = yield* Effect.flip(
          Pg.check(through(server, refusing, { statementTimeout: "300 millis", connectTimeout: "2 seconds" }))
        )
        assert.strictEqual(error.reason, "ConnectFailed")
        assert.include(error.message, "unsupported startup parameter")

        // ignore_startup_parameters lets the connect through, but the server never hears of the timeout: only the
        // client side (query_timeout, one second later) stops the statement, and counts the connection as lost
        const ignoring = yield* PgBouncer.make({ settings: { ignore_startup_parameters: "statement_timeout" } })
        const driver = Pg.driver(through(server, ignoring, { statementTimeout: "300 millis" }))
        const pool = yield* Pool.make({ driver, name: uniqueName("pgb-timeout"), size: 1, maxOverflow: 0 })
        const shown = yield* Pool.query(pool, "SELECT current_setting('statement_timeout') AS st")
        assert.strictEqual(shown[0]!["st"], "0", "the server's statement_timeout is unset")
        const slow = yield* Effect.flip(Pool.query(pool, "SELECT pg_sleep(3)"))
        assert.isTrue(slow instanceof Pg.PgError && slow.reason === "Timeout", `got ${kindOf(slow)}`)
        assert.isTrue(Pg.isDisconnect(slow), "a client-side timeout counts as a lost connection")

        // what works instead: the setting on the server side, here PgBouncer's connect_query for an alias (or
        // ALTER ROLE / ALTER DATABASE ... SET statement_timeout, or SET LOCAL per transaction)
        const byAlias = Pg.driver(through(server, refusing, { database: "timeouts" }))
        const aliasPool = yield* Pool.make({ driver: byAlias, name: uniqueName("pgb-alias"), size: 1, maxOverflow: 0 })
        const stopped = yield* Effect.flip(Pool.query(aliasPool, "SELECT pg_sleep(3)"))
        assert.isTrue(
          stopped instanceof Pg.PgError && stopped.reason === "StatementTimeout",
          `the server stops it: ${kindOf(stopped)}`
        )
        assert.deepStrictEqual(yield* Pool.query(aliasPool, "SELECT 1 AS n"), [{ n: 1 }], "and the connection is kept")
      }))

    // ---------------------------------------------------------------------------------------------------------------
    // what the pool does about it

    it.scoped("resetOnReturn(\"rollback\") frees the server connection a borrower left in a transaction; \"none\" holds it for everyone", () =>
      Effect.gen(function*() {
        const server = yield* Postgres
        yield* createTable(server)
        const bouncer = yield* PgBouncer.make({ databases: { single: "pool_size=1" } })
        const driver = Pg.driver(through(server, bouncer, { database: "single" }))
        const other = yield* Pool.make({ driver, name: uniqueName("pgb-other"), size: 1, maxOverflow: 0 })

        // the default policies: the transaction left open is rolled back on return, and PgBouncer unlinks
        const resetting = yield* Pool.make({ driver, name: uniqueName("pgb-reset"), size: 1, maxOverflow: 0 })
        const rolledBack = uniqueName("rolled-back")
        yield* Pool.use(resetting, (c) => Effect.zipRight(driver.begin(c), driver.query(c, INSERT, [rolledBack])))
        assert.deepStrictEqual(yield* Pool.query(other, "SELECT 1 AS n", [], { timeout: "5 seconds" }), [{ n: 1 }])
        assert.isFalse(yield* isCommitted(server, rolledBack))

        // no reset: the open transaction pins the only server connection until its client goes away
        const scope = yield* Scope.make()
        const trusting = yield* Pool.make({
          driver,
          name: uniqueName("pgb-noreset"),
          size: 1,
          maxOverflow: 0,
          policies: [Policy.resetOnReturn("none")]
        }).pipe(Scope.extend(scope))
        const leftOpen = uniqueName("left-open")
        yield* Pool.use(trusting, (c) => Effect.zipRight(driver.begin(c), driver.query(c, INSERT, [leftOpen])))
        // not interrupted: it waits
        const waiting = yield* Effect.fork(Pool.query(other, "SELECT 2 AS n", [], { timeout: "30 seconds" }))
        yield* Effect.sleep("1 second")
        assert.isTrue(Option.isNone(yield* Fiber.poll(waiting)), "another client's statement waits in PgBouncer")
        const pinned = yield* bouncer.admin("SHOW POOLS")
        const single = pinned.find((row) => row["database"] === "single")!
        assert.deepStrictEqual([single["sv_active"], single["cl_waiting"]], [1, 1], "one server connection, pinned")
        yield* Scope.close(scope, Exit.void)
        assert.deepStrictEqual(yield* Fiber.join(waiting), [{ n: 2 }], "served once the pinning client went away")
        assert.isFalse(yield* isCommitted(server, leftOpen), "closing the client rolled it back")
      }))

    it.scoped("a custom DISCARD ALL reset runs on whichever server connection PgBouncer picks, not where the SET went", () =>
      Effect.gen(function*() {
        const server = yield* Postgres
        const bouncer = yield* PgBouncer.make({ defaultPoolSize: 2 })
        const driver = Pg.driver(through(server, bouncer))
        let resets = 0
        const a = yield* Pool.make({
          driver,
          name: uniqueName("pgb-discard"),
          size: 1,
          maxOverflow: 0,
          policies: [
            Policy.resetOnReturn<Pg.PgConnection, Pg.PgError>((context) =>
              Effect.zipRight(
                Effect.sync(() => resets++),
                Effect.asVoid(context.driver.query(context.connection, "DISCARD ALL"))
              )
            )
          ]
        })
        const b = yield* Pool.make({ driver, name: uniqueName("pgb-discard-b"), size: 1, maxOverflow: 0 })
        const lease = yield* Pool.checkout(b)
        const set = yield* Pool.use(a, (ca) =>
          Effect.gen(function*() {
            const set = yield* probe(
              driver,
              ca,
              "SELECT set_config('search_path', 'reservoir_discarded, public', false) AS sp, pg_backend_pid() AS pid"
            )
            yield* driver.begin(lease.connection)
            return set
          }))
        // a has returned: its DISCARD ALL ran while b's transaction held the backend with a's setting
        assert.strictEqual(resets, 1)
        const seen = yield* probe(driver, lease.connection)
        assert.strictEqual(seen.pid, set.pid, "b holds the backend a's SET ran on (LIFO)")
        assert.strictEqual(seen.sp, "reservoir_discarded, public", "a's setting survived a's DISCARD ALL")
        yield* driver.rollback(lease.connection)
        yield* Pool.checkin(b, lease)
      }))

    it.scoped("onConnect session settings land on one server connection: the client's next statements may not see them", () =>
      Effect.gen(function*() {
        const server = yield* Postgres
        const bouncer = yield* PgBouncer.make({ defaultPoolSize: 2 })
        const driver = Pg.driver(through(server, bouncer))
        const a = yield* Pool.make({
          driver,
          name: uniqueName("pgb-onconnect"),
          size: 1,
          maxOverflow: 0,
          policies: [
            ...Policy.defaults<Pg.PgConnection, Pg.PgError>(),
            Policy.onConnect<Pg.PgConnection, Pg.PgError>((c) =>
              Effect.asVoid(driver.query(c, "SET search_path TO reservoir_onconnect, public"))
            )
          ]
        })
        const b = yield* Pool.make({ driver, name: uniqueName("pgb-onconnect-b"), size: 1, maxOverflow: 0 })
        yield* Pool.use(a, (ca) =>
          Effect.gen(function*() {
            // the SET of onConnect was a's last statement: b's transaction gets that backend (LIFO)
            yield* Pool.use(b, (cb) =>
              Effect.gen(function*() {
                yield* driver.begin(cb)
                const other = yield* probe(driver, cb)
                const own = yield* probe(driver, ca)
                assert.strictEqual(other.sp, "reservoir_onconnect, public", "b sees a's onConnect setting")
                assert.notStrictEqual(own.pid, other.pid)
                assert.strictEqual(own.sp, DEFAULT_SEARCH_PATH, "a does not")
                yield* driver.rollback(cb)
              }))
          }))
      }))
  }
)
