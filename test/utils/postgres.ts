/**
 * A throwaway PostgreSQL 15 cluster for tests and benchmarks: `initdb` into a temporary directory, `pg_ctl start` on a
 * free loopback port (as the `postgres` OS user when running as root), and `pg_ctl stop` plus removal of the directory
 * when the layer's scope closes. Helpers stop / start / restart the server and look at or terminate the sessions of
 * an `application_name` mid-test.
 *
 * No vitest in here: `bench/` imports it too.
 */
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import { execFile, execFileSync } from "node:child_process"
import { rmSync } from "node:fs"
import * as fs from "node:fs/promises"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import pg from "pg"
import type * as Pg from "../../src/Driver/Pg.js"

/** Where Debian's `postgresql-15` package puts the server binaries. */
export const BIN_DIR = process.env["POSTGRES_BIN_DIR"] ?? "/usr/lib/postgresql/15/bin"

/** The `application_name` of the harness's own admin sessions (never counted by `sessions`). */
export const ADMIN_APPLICATION_NAME = "reservoir-test-harness"

/**
 * A failure of the harness itself (missing binaries, a command that failed, an admin query that failed).
 */
export class PostgresHarnessError extends Data.TaggedError("PostgresHarnessError")<{
  readonly message: string
  readonly cause?: unknown
}> {}

/** What `sessions` counts: backends whose `application_name` is the given one. */
export interface Sessions {
  readonly total: number
  readonly idleInTransaction: number
  readonly pids: ReadonlyArray<number>
}

/**
 * A login role that must authenticate with a password (the cluster trusts every other role): one per password
 * method, so each of node-postgres's password exchanges (cleartext, MD5, SCRAM) is exercised.
 */
export interface PasswordRole {
  readonly user: string
  readonly password: string
  readonly method: "password" | "md5" | "scram-sha-256"
}

/** The password roles every cluster has; the passwords hold characters a URL must escape. */
export const passwordRoles: ReadonlyArray<PasswordRole> = [
  { user: "reservoir_cleartext", password: "clear:Text/Pw@7d41-9b%x", method: "password" },
  { user: "reservoir_md5", password: "md5?Pw#3c8e-05f2 sp", method: "md5" },
  { user: "reservoir_scram", password: "scram&Pw=e9a0-6b37+q", method: "scram-sha-256" }
]

/** A running throwaway cluster. */
export interface PostgresServer {
  readonly host: string
  readonly port: number
  readonly user: string
  readonly database: string
  /** `postgres://postgres@127.0.0.1:PORT/postgres` (trust authentication: no password). */
  readonly url: string
  /** The cluster's data directory. */
  readonly dataDir: string
  /** Options for `Pg.driver` pointing at this server. */
  readonly options: Pg.PgOptions
  /** Roles that authenticate with a password (`passwordRoles`); all others are trusted. */
  readonly passwordRoles: ReadonlyArray<PasswordRole>
  /** Stops the server (`pg_ctl stop -m fast|immediate`); the data directory stays. */
  readonly stop: (mode?: "fast" | "immediate") => Effect.Effect<void, PostgresHarnessError>
  /** Starts the server again on the same port and waits until it accepts connections. */
  readonly start: () => Effect.Effect<void, PostgresHarnessError>
  /** `stop(mode)` then `start()`. */
  readonly restart: (mode?: "fast" | "immediate") => Effect.Effect<void, PostgresHarnessError>
  /** Runs one statement on a fresh admin session and returns its rows. */
  readonly query: (
    sql: string,
    params?: ReadonlyArray<unknown>
  ) => Effect.Effect<ReadonlyArray<Record<string, unknown>>, PostgresHarnessError>
  /** `pg_terminate_backend` on every session with this `application_name`; returns how many were terminated. */
  readonly terminateBackends: (applicationName: string) => Effect.Effect<number, PostgresHarnessError>
  /** `pg_terminate_backend(pid)`; `true` when there was such a backend. */
  readonly terminateBackend: (pid: number) => Effect.Effect<boolean, PostgresHarnessError>
  /** The sessions with this `application_name` (from `pg_stat_activity`). */
  readonly sessions: (applicationName: string) => Effect.Effect<Sessions, PostgresHarnessError>
  /**
   * Polls `sessions` (every 20 ms, real time) until `until` holds, and fails after `timeout` (default 5 seconds)
   * with the last count in the message. Backends leave `pg_stat_activity` a moment after their client goes.
   */
  readonly awaitSessions: (
    applicationName: string,
    until: (sessions: Sessions) => boolean,
    timeout?: Duration.DurationInput
  ) => Effect.Effect<Sessions, PostgresHarnessError>
}

/** The cluster as a service. */
export class Postgres extends Context.Tag("effect-reservoir/test/Postgres")<Postgres, PostgresServer>() {}

/** The real clock, whatever the test's services say: the harness waits on a real server. */
const liveClock = Effect.runSync(Effect.clock)

const live = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> => Effect.withClock(effect, liveClock)

/** A cluster this process started and has not stopped yet. */
interface Cluster {
  readonly dataDir: string
  readonly dir: string
  readonly stopCommand: readonly [string, ReadonlyArray<string>]
}

const running = new Set<Cluster>()
let exitHookInstalled = false

/**
 * Remembers a cluster until its scope stops it. If the process exits first (a test run that hangs and is killed by
 * its own timeout, an event loop that empties with a scope still open), the exit hook stops the cluster and removes
 * its directory, so no server outlives the run.
 */
const register = (cluster: Cluster): void => {
  running.add(cluster)
  if (exitHookInstalled) return
  exitHookInstalled = true
  process.once("exit", () => {
    for (const { dir, stopCommand: [command, args] } of running) {
      try {
        execFileSync(command, [...args], { stdio: "ignore", timeout: 10_000 })
      } catch {
        // already stopped
      }
      try {
        rmSync(dir, { recursive: true, force: true })
      } catch {
        // nothing left to do at exit
      }
    }
  })
}

const fail = (message: string, cause?: unknown) =>
  new PostgresHarnessError(cause === undefined ? { message } : { message, cause })

interface Runner {
  readonly run: (command: string, args: ReadonlyArray<string>) => Effect.Effect<string, PostgresHarnessError>
  /** The command line `run` would use, for the synchronous clean-up at exit. */
  readonly command: (command: string, args: ReadonlyArray<string>) => readonly [string, ReadonlyArray<string>]
  readonly uid: number | undefined
  readonly gid: number | undefined
}

const exec = (file: string, args: ReadonlyArray<string>) =>
  Effect.async<string, PostgresHarnessError>((resume) => {
    const child = execFile(file, args, { timeout: 60_000 }, (error, stdout, stderr) => {
      if (error === null) resume(Effect.succeed(String(stdout)))
      else {
        resume(Effect.fail(fail(`${file} ${args.join(" ")} failed: ${String(stderr).trim() || error.message}`, error)))
      }
    })
    return Effect.sync(() => {
      child.kill("SIGKILL")
    })
  })

/** Runs commands as the `postgres` OS user when we are root (initdb and postgres refuse to run as root). */
const makeRunner: Effect.Effect<Runner, PostgresHarnessError> = Effect.gen(function*() {
  const isRoot = typeof process.getuid === "function" && process.getuid() === 0
  if (!isRoot) {
    return { run: exec, command: (command, args) => [command, args], uid: undefined, gid: undefined } satisfies Runner
  }
  const uid = Number((yield* exec("id", ["-u", "postgres"])).trim())
  const gid = Number((yield* exec("id", ["-g", "postgres"])).trim())
  return {
    run: (command: string, args: ReadonlyArray<string>) => exec("runuser", ["-u", "postgres", "--", command, ...args]),
    command: (command: string, args: ReadonlyArray<string>) =>
      ["runuser", ["-u", "postgres", "--", command, ...args]] as const,
    uid,
    gid
  }
}).pipe(
  Effect.mapError((error) =>
    fail(
      `running as root, but cannot run commands as the "postgres" OS user (${error.message}); ` +
        "install PostgreSQL with `apt-get install -y postgresql` (Debian), which creates that user"
    )
  )
)

const checkBinaries = Effect.tryPromise({
  try: () =>
    Promise.all(["initdb", "pg_ctl", "postgres"].map((name) => fs.access(path.join(BIN_DIR, name), fs.constants.X_OK))),
  catch: (cause) =>
    fail(
      `PostgreSQL 15 server binaries not found in ${BIN_DIR} (initdb, pg_ctl, postgres): ` +
        "install with `apt-get install -y postgresql` (Debian) or set POSTGRES_BIN_DIR",
      cause
    )
})

/** A loopback port free now: one the system hands out for a listener closed at once (the harnesses' ports). */
export const freeLoopbackPort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = net.createServer()
    server.unref()
    server.on("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      const port = typeof address === "object" && address !== null ? address.port : 0
      server.close(() => resolve(port))
    })
  })

const freePort = Effect.tryPromise({ try: freeLoopbackPort, catch: (error) => fail("no free loopback port", error) })

const adminQuery = (config: pg.ClientConfig, sql: string, params?: ReadonlyArray<unknown>) =>
  Effect.acquireUseRelease(
    Effect.tryPromise({
      try: async () => {
        const client = new pg.Client(config)
        client.on("error", () => undefined)
        try {
          await client.connect()
        } catch (error) {
          await client.end().catch(() => undefined)
          throw error
        }
        return client
      },
      catch: (cause) => fail(`cannot connect to the test server: ${String(cause)}`, cause)
    }),
    (client) =>
      Effect.tryPromise({
        try: () => client.query(sql, params === undefined ? undefined : [...params]),
        catch: (cause) => fail(`admin query failed (${sql}): ${String(cause)}`, cause)
      }).pipe(Effect.map((result) => result.rows as ReadonlyArray<Record<string, unknown>>)),
    (client) => Effect.promise(() => client.end().catch(() => undefined))
  )

/**
 * Starts a throwaway cluster in the current scope; closing the scope stops it (`immediate`) and removes its directory.
 */
export const make: Effect.Effect<PostgresServer, PostgresHarnessError, Scope.Scope> = Effect.gen(function*() {
  yield* checkBinaries
  const runner = yield* makeRunner
  const dir = yield* Effect.acquireRelease(
    Effect.tryPromise({
      try: () => fs.mkdtemp(path.join(os.tmpdir(), "reservoir-pg-")),
      catch: (cause) => fail("cannot create a temporary directory", cause)
    }),
    (dir) => Effect.promise(() => fs.rm(dir, { recursive: true, force: true }).catch(() => undefined))
  )
  if (runner.uid !== undefined && runner.gid !== undefined) {
    const { gid, uid } = runner
    yield* Effect.tryPromise({
      try: () => fs.chown(dir, uid, gid),
      catch: (cause) => fail(`cannot chown ${dir} to postgres`, cause)
    })
  }
  const dataDir = path.join(dir, "data")
  const logFile = path.join(dir, "server.log")
  const bin = (name: string) => path.join(BIN_DIR, name)
  yield* runner.run(bin("initdb"), [
    "-D",
    dataDir,
    "--auth=trust",
    "-U",
    "postgres",
    "--no-sync",
    "-E",
    "UTF8",
    "--locale=C",
    "--no-instructions"
  ])
  // pg_hba.conf is read top-down, first match wins: the password roles go before initdb's trust lines
  const hbaFile = path.join(dataDir, "pg_hba.conf")
  yield* Effect.tryPromise({
    try: async () => {
      const hba = await fs.readFile(hbaFile, "utf8")
      const lines = passwordRoles.map(({ method, user }) => `host all ${user} 127.0.0.1/32 ${method}\n`).join("")
      await fs.writeFile(hbaFile, lines + hba)
    },
    catch: (cause) => fail(`cannot write ${hbaFile}`, cause)
  })

  const host = "127.0.0.1"
  let port = 0
  const config = (): pg.ClientConfig => ({
    host,
    port,
    user: "postgres",
    database: "postgres",
    application_name: ADMIN_APPLICATION_NAME,
    connectionTimeoutMillis: 5_000
  })

  const query = (sql: string, params?: ReadonlyArray<unknown>) =>
    live(Effect.suspend(() => adminQuery(config(), sql, params)))

  const ready = query("SELECT 1").pipe(
    Effect.retry(Schedule.spaced(Duration.millis(25)).pipe(Schedule.upTo(Duration.seconds(20)))),
    Effect.asVoid
  )

  const pgCtlStart = () =>
    runner.run(bin("pg_ctl"), [
      "-D",
      dataDir,
      "-l",
      logFile,
      "-w",
      "-t",
      "30",
      "-o",
      `-F -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c listen_addresses=${host} -p ${port} ` +
      `-k ${dir} -c max_connections=200`,
      "start"
    ])

  const serverLog = Effect.promise(() => fs.readFile(logFile, "utf8").catch(() => ""))

  const start = () =>
    live(pgCtlStart()).pipe(
      Effect.zipRight(ready),
      Effect.catchAll((error) =>
        Effect.flatMap(serverLog, (log) => Effect.fail(fail(`${error.message}\n--- server log ---\n${log}`, error)))
      )
    )

  const stop = (mode: "fast" | "immediate" = "fast") =>
    Effect.asVoid(runner.run(bin("pg_ctl"), ["-D", dataDir, "-m", mode, "-w", "-t", "30", "stop"]))

  // the finalizers come first: a start that fails half-way (server up, never ready) still stops the server
  const cluster: Cluster = {
    dataDir,
    dir,
    stopCommand: runner.command(bin("pg_ctl"), ["-D", dataDir, "-m", "immediate", "stop"])
  }
  yield* Effect.acquireRelease(
    Effect.sync(() => register(cluster)),
    () => Effect.zipRight(Effect.ignore(live(stop("immediate"))), Effect.sync(() => running.delete(cluster)))
  )
  // a port taken between the probe and the start: try a few others
  yield* Effect.suspend(() =>
    Effect.flatMap(freePort, (free) => {
      port = free
      return start()
    })
  ).pipe(Effect.retry({ times: 2 }))
  // SCRAM is the default; the MD5 role's password is stored as an MD5 hash so that the server asks for MD5
  for (const { method, password, user } of passwordRoles) {
    const literal = `'${password.replace(/'/g, "''")}'`
    yield* query(
      `SET password_encryption = '${method === "md5" ? "md5" : "scram-sha-256"}'; ` +
        `CREATE ROLE ${user} LOGIN PASSWORD ${literal}`
    )
  }

  const sessions = (applicationName: string) =>
    Effect.map(
      query(
        "SELECT pid, state FROM pg_stat_activity WHERE application_name = $1 AND backend_type = 'client backend'",
        [applicationName]
      ),
      (rows): Sessions => ({
        total: rows.length,
        idleInTransaction: rows.filter((row) => row["state"] === "idle in transaction").length,
        pids: rows.map((row) => Number(row["pid"]))
      })
    )

  const server: PostgresServer = {
    host,
    port,
    user: "postgres",
    database: "postgres",
    url: `postgres://postgres@${host}:${port}/postgres`,
    dataDir,
    options: { host, port, user: "postgres", database: "postgres", connectTimeout: "5 seconds" },
    passwordRoles,
    stop,
    start,
    restart: (mode) => Effect.zipRight(stop(mode), start()),
    query,
    terminateBackends: (applicationName) =>
      Effect.map(
        query(
          "SELECT pg_terminate_backend(pid) AS terminated FROM pg_stat_activity " +
            "WHERE application_name = $1 AND pid <> pg_backend_pid()",
          [applicationName]
        ),
        (rows) => rows.filter((row) => row["terminated"] === true).length
      ),
    terminateBackend: (pid) =>
      Effect.map(
        query("SELECT pg_terminate_backend($1::int) AS terminated", [pid]),
        (rows) => rows[0]?.["terminated"] === true
      ),
    sessions,
    awaitSessions: (applicationName, until, timeout = "5 seconds") => {
      let last: Sessions | undefined
      const poll: Effect.Effect<Sessions, PostgresHarnessError> = Effect.flatMap(sessions(applicationName), (s) => {
        last = s
        return until(s) ? Effect.succeed(s) : Effect.zipRight(Effect.sleep(Duration.millis(20)), poll)
      })
      return poll.pipe(
        Effect.timeoutFail({
          duration: timeout,
          onTimeout: () =>
            fail(
              `sessions of "${applicationName}" did not reach the expected state within ` +
                `${Duration.format(Duration.decode(timeout))}; last: ${JSON.stringify(last)}`
            )
        }),
        live
      )
    }
  }
  return server
}).pipe(live)

/** A layer of a throwaway cluster, shared by the tests that use it and stopped when they are done. */
export const layer: Layer.Layer<Postgres, PostgresHarnessError> = Layer.scoped(Postgres, make)
