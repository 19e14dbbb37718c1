/**
 * Secrets (issue 14, RELIABILITY.md: "everything a run produces contains no password, by any path"): a whole scenario
 * run against PostgreSQL for each password role of the harness (cleartext, MD5, SCRAM) and each way of giving the
 * password (a string field, a `Redacted` field, in a URL string, in a `Redacted` URL), once for a `Pool` over
 * `Pg.driver` and once for the `SqlClient` (`SqlPg.make`): queries, a transaction, a failing statement, a backend
 * terminated while lent, connect failures (the wrong password, and a port nobody listens on), with `echo: "debug"`
 * logs captured by a test `Logger` at every level, spans captured by a test `Tracer`, events from `Pool.events` and
 * from listeners, then `Pool.status`, `Pool.stats`, `Pool.config`, records, connections, the drivers, the pools, the
 * errors, the `SqlClient` object and its `config`. Each is scanned with `leaks` (every property path, `util.inspect`
 * with hidden fields, `String`, `JSON.stringify`) and each log line's text with `includes`, for the password and
 * its URL-encoded form. `test/Driver/Pg.test.ts` ("defect 11") checks the driver's own values; this adds the logs, the
 * spans, the status and the SqlClient, and runs the scenario through the pool's failure paths.
 *
 * Default run: about 10 seconds (24 scenarios).
 */
import * as Reactivity from "@effect/experimental/Reactivity"
import { assert, layer } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as HashMap from "effect/HashMap"
import * as Layer from "effect/Layer"
import * as List from "effect/List"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Tracer from "effect/Tracer"
import * as net from "node:net"
import * as Pg from "../../src/Driver/Pg.js"
import * as Pool from "../../src/Pool.js"
import * as SqlPg from "../../src/Sql/Pg.js"
import { eventually } from "../Driver/conformance.js"
import { uniqueName } from "../utils/pool.js"
import { layer as postgresLayer, type PasswordRole, Postgres, type PostgresServer } from "../utils/postgres.js"
import { leaks } from "../utils/secrets.js"

/** What a run produced: every log (its parts and its formatted lines) and every span (with its events). */
interface Capture {
  readonly logs: Array<{ readonly parts: unknown; readonly lines: ReadonlyArray<string> }>
  readonly spans: Array<unknown>
}

/** A logger that keeps every log: message, level, annotations, spans, cause, and its logfmt and structured forms. */
const capturingLogger = (capture: Capture) =>
  Logger.make((options) => {
    const lines = [Logger.logfmtLogger.log(options), JSON.stringify(Logger.structuredLogger.log(options))]
    capture.logs.push({
      parts: {
        message: options.message,
        level: options.logLevel.label,
        annotations: HashMap.toEntries(options.annotations),
        spans: List.toArray(options.spans),
        cause: options.cause,
        pretty: Cause.isEmpty(options.cause) ? "" : Cause.pretty(options.cause, { renderErrorCause: true })
      },
      lines
    })
  })

/** A tracer that keeps every span it makes, with its attributes, events, links and exit. */
const capturingTracer = (capture: Capture): Tracer.Tracer =>
  Tracer.make({
    span: (name, parent, context, links, startTime, kind) => {
      const attributes = new Map<string, unknown>()
      const events: Array<unknown> = []
      const allLinks = [...links]
      const span: Tracer.Span & { events: Array<unknown> } = {
        _tag: "Span",
        name,
        spanId: Math.random().toString(16).slice(2),
        traceId: parent._tag === "Some" ? parent.value.traceId : Math.random().toString(16).slice(2),
        parent,
        context,
        status: { _tag: "Started", startTime },
        attributes,
        links: allLinks,
        sampled: true,
        kind,
        events,
        end(endTime, exit) {
          ;(span as { status: Tracer.SpanStatus }).status = { _tag: "Ended", startTime, endTime, exit }
        },
        attribute(key, value) {
          attributes.set(key, value)
        },
        event(eventName, time, eventAttributes) {
          events.push({ name: eventName, time, attributes: eventAttributes })
        },
        addLinks(more) {
          allLinks.push(...more)
        }
      }
      capture.spans.push(span)
      return span
    },
    context: (f) => f()
  })

/** A port on 127.0.0.1 that nobody listens on (taken, then released). */
const closedPort: Effect.Effect<number> = Effect.async<number>((resume) => {
  const server = net.createServer()
  server.listen(0, "127.0.0.1", () => {
    const port = (server.address() as net.AddressInfo).port
    server.close(() => resume(Effect.succeed(port)))
  })
})

/** The ways of giving a password: fields (string or `Redacted`) or a URL (string or `Redacted`). */
type Way = "field string" | "field Redacted" | "URL string" | "URL Redacted"
const ways: ReadonlyArray<Way> = ["field string", "field Redacted", "URL string", "URL Redacted"]

interface Where {
  readonly host: string
  readonly port: number
  readonly database: string
}

const pgOptions = (way: Way, role: PasswordRole, password: string, where: Where): Pg.PgOptions => {
  const url = `postgres://${role.user}:${encodeURIComponent(password)}@${where.host}:${where.port}/${where.database}`
  switch (way) {
    case "field string":
      return { ...where, user: role.user, password }
    case "field Redacted":
      return { ...where, user: role.user, password: Redacted.make(password) }
    case "URL string":
      return { url }
    case "URL Redacted":
      return { url: Redacted.make(url) }
  }
}

/** The SqlClient's options: `@effect/sql-pg`'s `username` for the fields. */
const sqlOptions = (way: Way, role: PasswordRole, password: string, where: Where): SqlPg.PgClientConfig => {
  const options = pgOptions(way, role, password, where)
  if (way === "URL string" || way === "URL Redacted") return options
  const { user, ...rest } = options
  return { ...rest, username: user }
}

/** Every listener of the pool and its event stream, pushing into `events`. */
const listenAll = (pool: Pool.Pool<Pg.PgConnection, Pg.PgError>, events: Array<unknown>) => {
  const push = (event: unknown) =>
    Effect.sync(() => {
      events.push(event)
    })
  return Effect.zipRight(
    Pool.listen(pool, {
      connect: push,
      firstConnect: push,
      connectFailed: push,
      checkout: push,
      checkin: push,
      reset: push,
      invalidate: push,
      softInvalidate: push,
      close: push,
      detach: push,
      closeDetached: push,
      checkoutTimeout: push
    }),
    Effect.forkScoped(Stream.runForEach(Pool.events(pool), push))
  )
}

/** The exit's error or defect, whichever it has (the value scanned). */
const errorOf = (exit: Exit.Exit<unknown, unknown>): unknown =>
  Exit.isFailure(exit) ?
    Option.getOrElse(Cause.failureOption(exit.cause), () => Cause.squash(exit.cause)) :
    undefined

/**
 * The scenario for one pool: a query, a transaction, `Pool.query`, a statement that fails, a backend terminated
 * while lent, a connection and its record, then the pool's status, stats and config. Answers what it produced.
 */
const poolScenario = (server: PostgresServer, pool: Pool.Pool<Pg.PgConnection, Pg.PgError>, user: string) =>
  Effect.gen(function*() {
    const driver = pool.driver
    const [row] = yield* Pool.use(pool, (c) => driver.query(c, "SELECT current_user AS u"))
    assert.strictEqual(row!["u"], user)
    yield* Pool.transaction(pool, (c) => driver.query(c, "SELECT 1 AS one"))
    yield* Pool.query(pool, "SELECT $1::text AS t", ["x"])
    const failedStatement = yield* Effect.exit(Pool.query(pool, "SELECT no_such_column"))
    assert.isTrue(Exit.isFailure(failedStatement))
    const disconnect = yield* Effect.exit(Pool.use(pool, (c) =>
      Effect.zipRight(
        Effect.orDie(server.terminateBackend(c.processId)),
        Effect.zipRight(Effect.sleep("50 millis"), driver.query(c, "SELECT 1"))
      )))
    assert.isTrue(Exit.isFailure(disconnect))
    const connection = yield* Pool.use(pool, (c) => Effect.succeed(c))
    const record = yield* Pool.record(pool, connection)
    return {
      connection,
      record,
      errors: [errorOf(failedStatement), errorOf(disconnect), failedStatement, disconnect],
      status: yield* Pool.status(pool),
      stats: yield* Pool.stats(pool),
      config: Pool.config(pool),
      pool,
      driver
    }
  })

layer(postgresLayer, { excludeTestServices: true, timeout: "120 seconds" })(
  "reliability: secrets (PostgreSQL 15)",
  (it) => {
    it.scoped(
      "nothing a run produces (events, logs, spans, errors, status, stats, records, connections, clients) reaches the password",
      () =>
        Effect.gen(function*() {
          const server = yield* Postgres
          const where: Where = { host: server.host, port: server.port, database: server.database }
          const nowhere: Where = { ...where, port: yield* closedPort }
          const figures = { scenarios: 0, logs: 0, spans: 0, events: 0, scanned: 0 }
          // the scan finds a password where one is: in the options given as strings
          for (const role of server.passwordRoles) {
            assert.isNotEmpty(leaks(pgOptions("field string", role, role.password, where), role.password))
            assert.isNotEmpty(
              leaks(pgOptions("URL string", role, role.password, where), encodeURIComponent(role.password))
            )
          }

          for (const role of server.passwordRoles) {
            for (const way of ways) {
              for (const client of ["Pool over Pg.driver", "SqlClient (SqlPg.make)"] as const) {
                const label = `${client}, ${role.method} password as ${way}`
                const wrong = `wrong-${role.password}-4e1b`
                const secrets = [role.password, encodeURIComponent(role.password), wrong, encodeURIComponent(wrong)]
                const capture: Capture = { logs: [], spans: [] }
                const produced: Array<readonly [string, unknown]> = []
                const events: Array<unknown> = []
                const scope = yield* Scope.make()
                // the harness (which knows every password) is kept out of the context the pools capture
                const run = <A, E>(effect: Effect.Effect<A, E, Scope.Scope | Reactivity.Reactivity>) =>
                  effect.pipe(
                    Scope.extend(scope),
                    Effect.withTracer(capturingTracer(capture)),
                    Effect.provide(Layer.mergeAll(
                      Logger.replace(Logger.defaultLogger, capturingLogger(capture)),
                      Logger.minimumLogLevel(LogLevel.All),
                      Reactivity.layer
                    )),
                    Effect.withSpan(`secrets ${label}`),
                    Effect.mapInputContext((context: Context.Context<Postgres>) =>
                      Context.omit(Postgres)(context) as Context.Context<never>
                    )
                  )

                if (client === "Pool over Pg.driver") {
                  yield* run(Effect.gen(function*() {
                    const pool = yield* Pool.make({
                      driver: Pg.driver(pgOptions(way, role, role.password, where)),
                      name: uniqueName("secrets-pool"),
                      size: 2,
                      echo: "debug"
                    })
                    yield* listenAll(pool, events)
                    produced.push(["the scenario", yield* poolScenario(server, pool, role.user)])
                    // connect failures: the wrong password, and a server that is not there
                    for (
                      const [what, options] of [
                        ["wrong password", pgOptions(way, role, wrong, where)],
                        ["refused connect", pgOptions(way, role, role.password, nowhere)]
                      ] as const
                    ) {
                      const driver = Pg.driver(options)
                      const failing = yield* Pool.make({
                        driver,
                        name: uniqueName("secrets-refused"),
                        size: 1,
                        echo: "debug",
                        timeout: "5 seconds"
                      })
                      yield* listenAll(failing, events)
                      const exit = yield* Effect.exit(Pool.use(failing, () => Effect.void))
                      assert.isTrue(Exit.isFailure(exit), `${label}: ${what} connected`)
                      produced.push([
                        what,
                        {
                          error: errorOf(exit),
                          exit,
                          status: yield* Pool.status(failing),
                          stats: yield* Pool.stats(failing),
                          config: Pool.config(failing),
                          pool: failing,
                          driver
                        }
                      ])
                    }
                  }))
                } else {
                  yield* run(Effect.gen(function*() {
                    const sql = yield* SqlPg.make({
                      ...sqlOptions(way, role, role.password, where),
                      pool: { name: uniqueName("secrets-sql"), size: 2, echo: "debug" }
                    })
                    yield* listenAll(sql.pool, events)
                    const rows = yield* sql<{ u: string }>`SELECT current_user AS u`
                    assert.strictEqual(rows[0]!.u, role.user)
                    yield* sql.withTransaction(sql`SELECT 1 AS one`)
                    const failedStatement = yield* Effect.exit(sql`SELECT no_such_column`)
                    assert.isTrue(Exit.isFailure(failedStatement))
                    produced.push(["the client", sql], ["its config", sql.config], ["the failed statement", {
                      error: errorOf(failedStatement),
                      exit: failedStatement
                    }])
                    produced.push(["its pool's scenario", yield* poolScenario(server, sql.pool, role.user)])
                    for (
                      const [what, options] of [
                        ["wrong password", sqlOptions(way, role, wrong, where)],
                        ["refused connect", sqlOptions(way, role, role.password, nowhere)]
                      ] as const
                    ) {
                      const exit = yield* Effect.exit(SqlPg.make({
                        ...options,
                        pool: { name: uniqueName("secrets-sql-refused"), size: 1, echo: "debug", timeout: "5 seconds" }
                      }))
                      assert.isTrue(Exit.isFailure(exit), `${label}: ${what} connected`)
                      produced.push([what, { error: errorOf(exit), exit }])
                    }
                  }))
                }
                // the pools close: their close logs, events and spans are part of what the run produced
                yield* run(Effect.void)
                yield* Scope.close(scope, Exit.void)
                yield* eventually(
                  Effect.sync(() => events.some((e) => (e as { _tag: string })._tag === "Close")),
                  `${label}: the close events`
                )

                assert.isTrue(capture.logs.length > 0, `${label}: echo "debug" logged nothing`)
                assert.isTrue(
                  capture.logs.some(({ lines }) => lines.some((line) => line.includes("checkout"))),
                  `${label}: no checkout was logged at debug`
                )
                assert.isTrue(capture.spans.length > 0, `${label}: no span was made`)
                // the SqlClient's failed builds keep their pools to themselves: their logs and spans are scanned
                if (client === "Pool over Pg.driver") {
                  assert.isTrue(events.some((e) => (e as { _tag: string })._tag === "ConnectFailed"), label)
                }
                // the pool's failed connects were logged (their errors are in the spans' exits and the errors scanned);
                // a SqlClient's build checks the server with a connect of its own, outside the pool, before any log
                if (client === "Pool over Pg.driver") {
                  assert.isTrue(
                    capture.logs.some(({ lines }) => lines.some((line) => line.includes("connect failed"))),
                    `${label}: the failed connects were not logged`
                  )
                }
                assert.isTrue(
                  capture.spans.some((span) => (span as Tracer.Span).status._tag === "Ended"),
                  `${label}: no span ended`
                )
                produced.push(["the events", events], ["the logs", capture.logs], ["the spans", capture.spans])
                for (const [what, value] of produced) {
                  for (const secret of secrets) {
                    assert.deepStrictEqual(
                      leaks(value, secret),
                      [],
                      `${label}: ${what} reach ${JSON.stringify(secret)}`
                    )
                    figures.scanned++
                  }
                }
                for (const { lines } of capture.logs) {
                  for (const line of lines) {
                    for (const secret of secrets) assert.notInclude(line, secret, `${label}: a log line`)
                  }
                }
                figures.scenarios++
                figures.logs += capture.logs.length
                figures.spans += capture.spans.length
                figures.events += events.length
              }
            }
          }
          console.log(
            `[reliability] secrets: ${figures.scenarios} scenarios (3 password methods × 4 ways × Pool and SqlClient), ` +
              `${figures.logs} logs, ${figures.spans} spans, ${figures.events} events, ${figures.scanned} scans: ` +
              `no password found`
          )
        }),
      120_000
    )
  }
)
