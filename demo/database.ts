/**
 * Where the bank lives, and how faults reach it:
 *
 * - by default an embedded SQLite database (the `Sqlite` driver over better-sqlite3) in a temporary file, removed at
 *   the end;
 * - PostgreSQL at `DATABASE_URL` when it is set: the tables go in a schema of their own, dropped at the end;
 * - with `--pg`, a throwaway PostgreSQL 15 cluster started by the test harness (`test/utils/postgres.ts`), stopped
 *   and removed at the end. Without the server binaries it fails with the harness's install hint.
 */
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import type { Driver } from "../src/Driver.js"
import * as Pg from "../src/Driver/Pg.js"
import * as Sqlite from "../src/Driver/Sqlite.js"
import * as Pool from "../src/Pool.js"
import { make as startPostgres } from "../test/utils/postgres.js"
import { type Bank, pgStatements, sqliteStatements, type Statements } from "./bank.js"
import type { Injector } from "./faults.js"

/** A failure that ends the demo before it runs, with a message for the user. */
export class DemoError extends Data.TaggedError("DemoError")<{ readonly message: string }> {}

/** A database the bank can run on. */
export interface Backend<C, E> {
  /** `"SQLite"` or `"PostgreSQL"`. */
  readonly name: string
  /** Where, for the header and the report. */
  readonly where: string
  readonly driver: Driver<C, E>
  readonly statements: Statements
  /** The faults this database can be given, once the bank's pool exists. */
  readonly injector: (bank: Bank<C, E>) => Injector<C>
}

/** What runs on the backend: generic, since SQLite and PostgreSQL connections differ. */
export type Use<A> = <C, E>(backend: Backend<C, E>) => Effect.Effect<A, DemoError, Scope.Scope>

/**
 * How long the `--chaos` transaction holds SQLite's write lock: shorter than the driver's busy timeout (5 seconds),
 * longer than the pool's checkout timeout (2 seconds) for the writers queued behind it.
 */
export const LONG_TRANSACTION_MILLIS = 2_500

const sqlite = <A>(use: Use<A>) =>
  Effect.gen(function*() {
    const dir = yield* Effect.acquireRelease(
      Effect.promise(() => fs.mkdtemp(path.join(os.tmpdir(), "reservoir-demo-"))),
      (dir) => Effect.promise(() => fs.rm(dir, { recursive: true, force: true }))
    )
    const filename = path.join(dir, "bank.db")
    const driver = Sqlite.driver({ filename, pragmas: { synchronous: "NORMAL" } })
    const backend: Backend<Sqlite.SqliteConnection, Sqlite.SqliteError> = {
      name: "SQLite",
      where: `temporary file ${filename} (removed at the end)`,
      driver,
      statements: sqliteStatements,
      injector: (bank) => ({
        describeKill: (targets) =>
          `killing ${plural(targets.length, "connection")}: closing the SQLite handle of ` +
          targets.map((t) => `#${t.id} (${t.lent ? "lent" : "idle"})`).join(", "),
        kill: (targets) =>
          Effect.sync(() => {
            for (const target of targets) target.connection.database.close()
          }),
        chaosDescription: `a long transaction holds the SQLite write lock for ${LONG_TRANSACTION_MILLIS} ms: ` +
          "every other transfer queues behind it",
        chaos: Pool.transaction(bank.pool, (connection) =>
          driver.query(connection, "UPDATE accounts SET balance = balance WHERE id = 1").pipe(
            Effect.zipRight(Effect.sleep(LONG_TRANSACTION_MILLIS))
          )).pipe(Effect.as("the long transaction ended"))
      })
    }
    return yield* use(backend)
  })

const plural = (count: number, noun: string) => `${count} ${noun}${count === 1 ? "" : "s"}`

/** The host, port and database of a connection string, without its user or password. */
const describeUrl = (url: string): string => {
  try {
    const parsed = new URL(url)
    return `${parsed.hostname}:${parsed.port === "" ? "5432" : parsed.port}${parsed.pathname}`
  } catch {
    return "DATABASE_URL"
  }
}

const postgres = <A>(
  url: string,
  where: string,
  restart: Effect.Effect<void, unknown> | undefined,
  use: Use<A>
) =>
  Effect.gen(function*() {
    const applicationName = `reservoir-demo-${process.pid}`
    const schema = `reservoir_demo_${process.pid}`
    const options: Pg.PgOptions = { url: Redacted.make(url), applicationName, connectTimeout: "2 seconds" }
    yield* Pg.check(options).pipe(
      Effect.mapError((error) => new DemoError({ message: `cannot reach PostgreSQL at ${where}: ${error.message}` }))
    )
    // a separate admin connection: it ends the bank's sessions and drops the schema at the end
    const admin = yield* Pool.make({
      driver: Pg.driver({ ...options, applicationName: `${applicationName}-admin` }),
      name: "demo-admin",
      size: 1,
      maxOverflow: 0,
      policies: []
    }).pipe(Effect.orDie)
    const adminQuery = (sql: string, params?: ReadonlyArray<unknown>) =>
      Pool.use(admin, (connection) => admin.driver.query(connection, sql, params))
    yield* Effect.addFinalizer(() => Effect.ignore(adminQuery(`DROP SCHEMA IF EXISTS ${schema} CASCADE`)))
    const driver = Pg.driver(options)
    const backend: Backend<Pg.PgConnection, Pg.PgError> = {
      name: "PostgreSQL",
      where,
      driver,
      statements: pgStatements(schema),
      injector: () => ({
        describeKill: (targets) =>
          `killing ${plural(targets.length, "connection")}: pg_terminate_backend of ` +
          targets.map((t) => `#${t.id} (pid ${t.connection.processId}, ${t.lent ? "lent" : "idle"})`).join(", "),
        kill: (targets) =>
          Effect.forEach(
            targets,
            (target) => adminQuery("SELECT pg_terminate_backend($1::int)", [target.connection.processId]),
            { discard: true }
          ),
        chaosDescription: restart === undefined
          ? "every session of the pool killed at once (pg_terminate_backend)"
          : "restarting the PostgreSQL server (pg_ctl stop -m fast, then start)",
        chaos: restart === undefined
          ? adminQuery(
            "SELECT count(pg_terminate_backend(pid)) AS killed FROM pg_stat_activity WHERE application_name = $1",
            [applicationName]
          ).pipe(Effect.map((rows) => `${Number(rows[0]?.["killed"])} sessions killed`))
          : Effect.timed(restart).pipe(
            Effect.map(([took]) => `the server is back up after ${(Duration.toMillis(took) / 1e3).toFixed(1)} s`)
          )
      })
    }
    return yield* use(backend)
  })

/** Opens the database the options ask for and runs `use` on it; everything is removed when the scope closes. */
export const open = <A>(
  options: { readonly pg: boolean; readonly databaseUrl: string | undefined; readonly say: (line: string) => void },
  use: Use<A>
): Effect.Effect<A, DemoError, Scope.Scope> =>
  Effect.gen(function*() {
    if (options.pg) {
      options.say("starting a throwaway PostgreSQL 15 cluster...")
      const server = yield* startPostgres.pipe(
        Effect.mapError((error) => new DemoError({ message: `--pg: ${error.message}` }))
      )
      return yield* postgres(
        server.url,
        `a throwaway PostgreSQL 15 cluster on ${server.host}:${server.port} (removed at the end)`,
        server.restart("fast"),
        use
      )
    }
    if (options.databaseUrl !== undefined && options.databaseUrl !== "") {
      return yield* postgres(options.databaseUrl, `DATABASE_URL (${describeUrl(options.databaseUrl)})`, undefined, use)
    }
    return yield* sqlite(use)
  })
