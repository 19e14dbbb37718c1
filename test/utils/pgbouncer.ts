/**
 * A throwaway PgBouncer in front of the throwaway cluster (`Postgres`): writes `pgbouncer.ini`, a user list and an
 * hba file into a temporary directory, runs `pgbouncer` in the foreground on a free loopback port (as the `postgres`
 * OS user when running as root: PgBouncer refuses to run as root), waits until it serves a query, and stops it and
 * removes the directory when the scope closes. `restart` stops it and starts it again on the same port.
 *
 * Defaults: `pool_mode = transaction`, `default_pool_size = 4`, `auth_type = hba` (the cluster's password roles
 * authenticate with their method, every other user is trusted, as the cluster does), one `[databases]` entry per
 * database name (`*` forwards any name to the cluster), plus the aliases the caller names (each may have its own
 * `pool_size`, `pool_mode`, `connect_query`...).
 *
 * No vitest in here, as in `postgres.ts`.
 */
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import { rmSync } from "node:fs"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import pg from "pg"
import { freeLoopbackPort, Postgres } from "./postgres.js"

/** Where Debian's `pgbouncer` package puts the binary. */
export const BINARY = process.env["PGBOUNCER_BIN"] ?? "/usr/sbin/pgbouncer"

/** A failure of the harness itself (binary missing, a start that never served, a stop that hung). */
export class PgBouncerHarnessError extends Data.TaggedError("PgBouncerHarnessError")<{
  readonly message: string
  readonly cause?: unknown
}> {}

/** Options of the bouncer; every field is optional. */
export interface PgBouncerOptions {
  /** `pool_mode` (default `"transaction"`). */
  readonly poolMode?: "session" | "transaction" | "statement" | undefined
  /** `default_pool_size`: server connections per (database, user) (default 4). */
  readonly defaultPoolSize?: number | undefined
  /**
   * Extra `[databases]` entries: alias → extra settings appended to `host=... port=... dbname=postgres`
   * (e.g. `{ single: "pool_size=1" }`).
   */
  readonly databases?: Readonly<Record<string, string>> | undefined
  /** Extra `[pgbouncer]` settings, written as `key = value` after the defaults (later lines win). */
  readonly settings?: Readonly<Record<string, string | number>> | undefined
}

/** A running PgBouncer. */
export interface PgBouncer {
  readonly host: string
  /** Where clients connect: `Pg.driver({ ...server.options, port: bouncer.port })`. The same after a restart. */
  readonly port: number
  /** The directory with `pgbouncer.ini`, `userlist.txt`, `hba.conf` and `pgbouncer.log`. */
  readonly dir: string
  /** Stops PgBouncer (`SIGTERM`: immediate shutdown, every client socket closed) and waits until it exited. */
  readonly stop: Effect.Effect<void, PgBouncerHarnessError>
  /** Starts it again on the same port and waits until it serves a query. */
  readonly start: Effect.Effect<void, PgBouncerHarnessError>
  /** `stop` then `start`. */
  readonly restart: Effect.Effect<void, PgBouncerHarnessError>
  /** Runs one statement on PgBouncer's admin console (`SHOW POOLS`, `SHOW SERVERS`, ...) and returns its rows. */
  readonly admin: (command: string) => Effect.Effect<ReadonlyArray<Record<string, unknown>>, PgBouncerHarnessError>
  /** PgBouncer's log so far. */
  readonly log: Effect.Effect<string>
  /** What `SHOW VERSION` answered at start (`"PgBouncer 1.18.0"`). */
  readonly version: string
}

const fail = (message: string, cause?: unknown) =>
  new PgBouncerHarnessError(cause === undefined ? { message } : { message, cause })

/** The real clock, whatever the test's services say: the harness waits on a real process. */
const liveClock = Effect.runSync(Effect.clock)
const live = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> => Effect.withClock(effect, liveClock)

const running = new Set<{ readonly child: () => ChildProcess | undefined; readonly dir: string }>()
let exitHookInstalled = false

/** If the process exits with a bouncer still running (a run killed by its timeout), kill it and remove its dir. */
const register = (entry: { readonly child: () => ChildProcess | undefined; readonly dir: string }) => {
  running.add(entry)
  if (exitHookInstalled) return
  exitHookInstalled = true
  process.once("exit", () => {
    for (const { child, dir } of running) {
      try {
        child()?.kill("SIGKILL")
      } catch {
        // already gone
      }
      try {
        rmSync(dir, { recursive: true, force: true })
      } catch {
        // nothing left to do at exit
      }
    }
  })
}

const checkBinary = Effect.tryPromise({
  try: () => fs.access(BINARY, fs.constants.X_OK),
  catch: (cause) =>
    fail(
      `PgBouncer not found at ${BINARY}: install it with \`apt-get install -y pgbouncer\` (Debian) ` +
        "or set PGBOUNCER_BIN",
      cause
    )
})

/** The `postgres` OS user's ids when we run as root (PgBouncer refuses root), else nothing. */
const osUser = Effect.try({
  try: () => {
    const isRoot = typeof process.getuid === "function" && process.getuid() === 0
    if (!isRoot) return undefined
    const uid = Number(execFileSync("id", ["-u", "postgres"], { encoding: "utf8" }).trim())
    const gid = Number(execFileSync("id", ["-g", "postgres"], { encoding: "utf8" }).trim())
    return { uid, gid }
  },
  catch: (cause) =>
    fail(
      "running as root, but there is no \"postgres\" OS user to run PgBouncer as (it refuses root): " +
        "install PostgreSQL with `apt-get install -y postgresql` (Debian), which creates that user",
      cause
    )
})

const freePort = Effect.tryPromise({ try: freeLoopbackPort, catch: (error) => fail("no free loopback port", error) })

/** One statement on a fresh client, closed afterwards. */
const clientQuery = (config: pg.ClientConfig, sql: string) =>
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
      catch: (cause) => fail(`cannot connect to PgBouncer: ${String(cause)}`, cause)
    }),
    (client) =>
      Effect.tryPromise({
        try: () => client.query(sql),
        catch: (cause) => fail(`PgBouncer query failed (${sql}): ${String(cause)}`, cause)
      }).pipe(Effect.map((result) => result.rows as ReadonlyArray<Record<string, unknown>>)),
    (client) => Effect.promise(() => client.end().catch(() => undefined))
  )

const quote = (value: string) => `"${value.replace(/"/g, "\"\"")}"`

/**
 * Starts a PgBouncer in front of the `Postgres` cluster in the current scope; closing the scope stops it and removes
 * its directory.
 */
export const make = (
  options: PgBouncerOptions = {}
): Effect.Effect<PgBouncer, PgBouncerHarnessError, Postgres | Scope.Scope> =>
  Effect.gen(function*() {
    const server = yield* Postgres
    yield* checkBinary
    const user = yield* osUser
    const dir = yield* Effect.acquireRelease(
      Effect.tryPromise({
        try: () => fs.mkdtemp(path.join(os.tmpdir(), "reservoir-pgbouncer-")),
        catch: (cause) => fail("cannot create a temporary directory", cause)
      }),
      (dir) => Effect.promise(() => fs.rm(dir, { recursive: true, force: true }).catch(() => undefined))
    )
    const host = "127.0.0.1"
    const port = yield* freePort
    const ini = path.join(dir, "pgbouncer.ini")
    const logFile = path.join(dir, "pgbouncer.log")
    const target = `host=${server.host} port=${server.port}`
    const databases = [
      ...Object.entries(options.databases ?? {}).map(([alias, extra]) =>
        `${alias} = ${target} dbname=${server.database} ${extra}`
      ),
      `* = ${target}`
    ]
    const settings: Record<string, string | number> = {
      listen_addr: host,
      listen_port: port,
      unix_socket_dir: "",
      pool_mode: options.poolMode ?? "transaction",
      default_pool_size: options.defaultPoolSize ?? 4,
      max_client_conn: 1000,
      auth_type: "hba",
      auth_hba_file: path.join(dir, "hba.conf"),
      auth_file: path.join(dir, "userlist.txt"),
      admin_users: server.user,
      logfile: logFile,
      pidfile: path.join(dir, "pgbouncer.pid"),
      server_login_retry: 0,
      ...options.settings
    }
    const files: ReadonlyArray<readonly [string, string]> = [
      [
        ini,
        `[databases]\n${databases.join("\n")}\n\n[pgbouncer]\n` +
        Object.entries(settings).map(([key, value]) => `${key} = ${value}`).join("\n") + "\n"
      ],
      // trust needs the user listed too; the password roles' plain passwords let PgBouncer log in to the server
      [
        path.join(dir, "userlist.txt"),
        [
          `${quote(server.user)} ""`,
          ...server.passwordRoles.map((role) => `${quote(role.user)} ${quote(role.password)}`)
        ].join("\n") + "\n"
      ],
      [
        path.join(dir, "hba.conf"),
        server.passwordRoles.map((role) => `host all ${role.user} 127.0.0.1/32 ${role.method}\n`).join("") +
        "host all all 127.0.0.1/32 trust\n"
      ]
    ]
    yield* Effect.tryPromise({
      try: async () => {
        for (const [file, text] of files) await fs.writeFile(file, text, { mode: 0o600 })
        if (user !== undefined) {
          for (const file of [dir, ...files.map(([file]) => file)]) await fs.chown(file, user.uid, user.gid)
        }
      },
      catch: (cause) => fail(`cannot write the PgBouncer files in ${dir}`, cause)
    })

    let child: ChildProcess | undefined
    let exited: Promise<void> = Promise.resolve()
    let output = ""

    const log = Effect.promise(() => fs.readFile(logFile, "utf8").catch(() => output))

    const spawnOnce = Effect.try({
      try: () => {
        const process_ = spawn(BINARY, [ini], {
          cwd: dir,
          stdio: ["ignore", "pipe", "pipe"],
          ...(user === undefined ? {} : { uid: user.uid, gid: user.gid })
        })
        process_.stdout?.on("data", (chunk) => (output += String(chunk)))
        process_.stderr?.on("data", (chunk) => (output += String(chunk)))
        exited = new Promise<void>((resolve) => {
          process_.once("exit", () => resolve())
          process_.once("error", () => resolve())
        })
        child = process_
      },
      catch: (cause) => fail(`cannot spawn ${BINARY}`, cause)
    })

    const admin = (command: string) =>
      live(
        clientQuery({ host, port, user: server.user, database: "pgbouncer", connectionTimeoutMillis: 2_000 }, command)
      )

    const ready = live(
      clientQuery(
        { host, port, user: server.user, database: server.database, connectionTimeoutMillis: 2_000 },
        "SELECT 1"
      )
        .pipe(
          Effect.retry(
            Schedule.spaced(Duration.millis(20)).pipe(
              Schedule.upTo(Duration.seconds(15)),
              Schedule.whileInput(() => child !== undefined && child.exitCode === null && child.signalCode === null)
            )
          ),
          Effect.asVoid
        )
    )

    const stop = live(Effect.suspend(() => {
      const current = child
      if (current === undefined) return Effect.void
      return Effect.tryPromise({
        try: async () => {
          if (current.exitCode === null && current.signalCode === null) current.kill("SIGTERM")
          const done = await Promise.race([exited.then(() => true), new Promise((r) => setTimeout(r, 5_000, false))])
          if (!done) {
            current.kill("SIGKILL")
            await exited
          }
          child = undefined
        },
        catch: (cause) => fail("cannot stop PgBouncer", cause)
      })
    }))

    const start = live(Effect.suspend(() =>
      child !== undefined ?
        Effect.fail(fail("PgBouncer is already running")) :
        spawnOnce.pipe(
          Effect.zipRight(ready),
          Effect.catchAll((error) =>
            Effect.flatMap(
              log,
              (text) =>
                Effect.zipRight(
                  Effect.ignore(stop),
                  Effect.fail(fail(`PgBouncer did not start: ${error.message}\n--- pgbouncer log ---\n${text}`, error))
                )
            )
          )
        )
    ))

    const entry = { child: () => child, dir }
    yield* Effect.acquireRelease(
      Effect.sync(() => register(entry)),
      () => Effect.zipRight(Effect.ignore(stop), Effect.sync(() => running.delete(entry)))
    )
    yield* start
    const version = String((yield* admin("SHOW VERSION"))[0]?.["version"] ?? "unknown")
    const bouncer: PgBouncer = {
      host,
      port,
      dir,
      stop,
      start,
      restart: Effect.zipRight(stop, start),
      admin,
      log,
      version
    }
    return bouncer
  }).pipe(live)
