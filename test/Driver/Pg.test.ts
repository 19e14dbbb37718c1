import { assert, describe, layer } from "@effect/vitest"
import * as ConfigProvider from "effect/ConfigProvider"
import type * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as net from "node:net"
import pg from "pg"
import * as Pg from "../../src/Driver/Pg.js"
import * as Policy from "../../src/Policy.js"
import * as Pool from "../../src/Pool.js"
import { layer as postgresLayer, Postgres } from "../utils/postgres.js"
import { leaks, reaches } from "../utils/secrets.js"
import { conformanceTests, eventually, type Fixture, makeContext, uniqueName } from "./conformance.js"

const TABLE = "reservoir_conformance"

const fixture = Effect.gen(function*() {
  const server = yield* Postgres
  yield* server.query(`CREATE TABLE IF NOT EXISTS ${TABLE} (k text PRIMARY KEY)`)
  const driver = Pg.driver(server.options)
  const isOpen = (connection: Pg.PgConnection) =>
    Effect.map(
      server.query("SELECT 1 FROM pg_stat_activity WHERE pid = $1", [connection.processId]),
      (rows) => rows.length > 0
    )
  const self: Fixture<Pg.PgConnection, Pg.PgError> = {
    driver,
    isOpen,
    trackCloses: (connection) =>
      Effect.sync(() => {
        let closes = 0
        const client = Pg.unsafeClient(connection)
        const end = client.end.bind(client)
        client.end = (() => {
          closes++
          return end()
        }) as typeof client.end
        return Effect.sync(() => closes)
      }),
    kill: (connection) =>
      Effect.zipRight(
        server.terminateBackend(connection.processId),
        eventually(Effect.map(isOpen(connection), (open) => !open), "the backend exits")
      ),
    write: (connection, key) => Effect.asVoid(driver.query(connection, `INSERT INTO ${TABLE} (k) VALUES ($1)`, [key])),
    isCommitted: (key) =>
      Effect.map(server.query(`SELECT 1 FROM ${TABLE} WHERE k = $1`, [key]), (rows) => rows.length === 1),
    failOrdinarily: (connection) => driver.query(connection, "SELECT nope")
  }
  return self
})

/**
 * A TCP server that accepts connections and never answers: a connect to it hangs, like one to a host whose firewall
 * drops everything after the handshake. `accepted` counts the sockets it took; `sockets` holds those still open.
 * It never closes a socket itself (`allowHalfOpen`): when a client half-closes, it writes a byte back, three times
 * 50 ms apart (too few bytes for any PostgreSQL message). A client that only half-closed takes them in silently (the
 * socket stays open, half-open as under a real blackhole); one that destroyed its socket answers with a reset, the
 * next write fails, and the socket leaves `sockets` (its `close` event): only when the client really let go of it.
 */
const blackhole = Effect.acquireRelease(
  Effect.async<
    {
      readonly port: number
      readonly server: net.Server
      readonly sockets: Set<net.Socket>
      readonly accepted: () => number
    }
  >(
    (resume) => {
      const sockets = new Set<net.Socket>()
      let accepted = 0
      const server = net.createServer({ allowHalfOpen: true }, (socket) => {
        accepted++
        sockets.add(socket)
        socket.resume()
        socket.on("end", () => {
          let probes = 0
          const probe = () => {
            if (socket.destroyed || probes++ === 3) return
            socket.write(Buffer.from([0]))
            setTimeout(probe, 50)
          }
          probe()
        })
        socket.on("error", () => undefined)
        socket.on("close", () => sockets.delete(socket))
      })
      server.listen(0, "127.0.0.1", () => {
        const address = server.address()
        resume(
          Effect.succeed({
            port: typeof address === "object" && address !== null ? address.port : 0,
            server,
            sockets,
            accepted: () => accepted
          })
        )
      })
    }
  ),
  ({ server, sockets }) =>
    Effect.async<void>((resume) => {
      for (const socket of sockets) socket.destroy()
      server.close(() => resume(Effect.void))
    })
)

/**
 * A TCP proxy to the test server that can turn into a blackhole: after `blackhole()` it forwards nothing either way
 * and closes nothing, like a network path that died without a reset.
 */
const proxy = (target: { readonly host: string; readonly port: number }) =>
  Effect.acquireRelease(
    Effect.async<
      {
        readonly port: number
        readonly server: net.Server
        readonly sockets: Set<net.Socket>
        readonly blackhole: () => void
      }
    >((resume) => {
      let holed = false
      const sockets = new Set<net.Socket>()
      const server = net.createServer((downstream) => {
        const upstream = net.connect(target.port, target.host)
        for (const [from, to] of [[downstream, upstream], [upstream, downstream]] as const) {
          sockets.add(from)
          from.on("data", (chunk) => {
            if (!holed) to.write(chunk)
          })
          from.on("error", () => undefined)
          from.on("close", () => {
            sockets.delete(from)
            if (!holed) to.destroy()
          })
        }
      })
      server.listen(0, "127.0.0.1", () => {
        const address = server.address()
        resume(Effect.succeed({
          port: typeof address === "object" && address !== null ? address.port : 0,
          server,
          sockets,
          blackhole: () => {
            holed = true
          }
        }))
      })
    }),
    ({ server, sockets }) =>
      Effect.async<void>((resume) => {
        for (const socket of sockets) socket.destroy()
        server.close(() => resume(Effect.void))
      })
  )

/** Whether the backend `pid` is running a statement (`state = 'active'` in `pg_stat_activity`). */
const activeStatement = (server: Context.Tag.Service<typeof Postgres>, pid: number) =>
  Effect.map(
    server.query("SELECT query FROM pg_stat_activity WHERE pid = $1 AND state = 'active'", [pid]),
    (rows) => rows.length > 0
  )

/** The real time since `start`, in milliseconds. */
const since = (start: number): number => performance.now() - start

layer(postgresLayer, { excludeTestServices: true, timeout: "60 seconds" })("Pg driver (PostgreSQL 15)", (it) => {
  describe("conformance", () => {
    conformanceTests(it, { fixture, notifiesOnKill: true, knowsTransactions: true })
  })

  it.scoped("sets application_name to the pool's name and binds parameters", () =>
    Effect.gen(function*() {
      const server = yield* Postgres
      const driver = Pg.driver(server.options)
      const name = uniqueName("pg-appname")
      const pool = yield* Pool.make({ driver, name, size: 1 })
      const rows = yield* Pool.use(pool, (connection) =>
        driver.query(
          connection,
          "SELECT current_setting('application_name') AS app, $1::int + 1 AS n, $2::text AS t",
          [41, "x"]
        ))
      assert.deepStrictEqual(rows, [{ app: name, n: 42, t: "x" }])
      const custom = Pg.driver({ ...server.options, applicationName: "custom-app" })
      const connection = yield* custom.connect(makeContext(name))
      assert.strictEqual(connection.applicationName, "custom-app")
      const [row] = yield* custom.query(connection, "SELECT current_setting('application_name') AS app")
      assert.strictEqual(row!["app"], "custom-app")
    }))

  it.scoped(
    "never lets the server see more than size + maxOverflow sessions, and none after the pool closes",
    () =>
      Effect.gen(function*() {
        const server = yield* Postgres
        const name = uniqueName("pg-bound")
        const scope = yield* Scope.make()
        const pool = yield* Scope.extend(
          Pool.make({ driver: Pg.driver(server.options), name, size: 2, maxOverflow: 2, timeout: "10 seconds" }),
          scope
        )
        let peak = 0
        const sampler = yield* server.sessions(name).pipe(
          Effect.tap((s) => {
            peak = Math.max(peak, s.total)
          }),
          Effect.zipRight(Effect.sleep("3 millis")),
          Effect.forever,
          Effect.fork
        )
        yield* Effect.forEach(
          Array.from({ length: 40 }, (_, i) => i),
          (i) =>
            Pool.use(
              pool,
              (connection) => pool.driver.query(connection, "SELECT pg_sleep($1::float8 / 1000.0)", [5 + (i % 4) * 5])
            ),
          { concurrency: "unbounded", discard: true }
        )
        yield* Fiber.interrupt(sampler)
        const stats = yield* Pool.stats(pool)
        const atRest = yield* server.sessions(name)
        assert.isAtMost(peak, 4, `peak sessions ${peak}`)
        assert.isAtLeast(peak, 2, "the load did open several sessions")
        assert.strictEqual(atRest.total, stats.opened - stats.closed, "opened - closed == server sessions")
        assert.strictEqual(atRest.idleInTransaction, 0)
        assert.strictEqual(stats.waiting, 0)
        yield* Scope.close(scope, Exit.void)
        yield* server.awaitSessions(name, (s) => s.total === 0)
        const closed = yield* Pool.stats(pool)
        assert.strictEqual(closed.opened, closed.closed)
      }),
    30_000
  )

  it.scoped("closes the server session of an invalidated connection", () =>
    Effect.gen(function*() {
      const server = yield* Postgres
      const name = uniqueName("pg-invalidate")
      const pool = yield* Pool.make({ driver: Pg.driver(server.options), name, size: 2 })
      const connection = yield* Pool.use(pool, Effect.succeed)
      assert.deepStrictEqual((yield* server.sessions(name)).pids, [connection.processId])
      yield* Pool.invalidate(pool, connection)
      yield* server.awaitSessions(name, (s) => s.total === 0)

      // soft: the lent connection keeps working and its session closes when it is returned
      const soft = yield* Pool.use(pool, (lent) =>
        Effect.gen(function*() {
          yield* Pool.invalidate(pool, lent, { soft: true })
          yield* pool.driver.query(lent, "SELECT 1")
          assert.strictEqual((yield* server.sessions(name)).total, 1)
          return lent
        }))
      yield* server.awaitSessions(name, (s) => !s.pids.includes(soft.processId))
      assert.strictEqual((yield* Pool.stats(pool)).closedBy["invalidated"], 2)
    }))

  it.scoped("closes idle sessions on invalidateAll, and lent ones when they are returned", () =>
    Effect.gen(function*() {
      const server = yield* Postgres
      const name = uniqueName("pg-invalidate-all")
      const pool = yield* Pool.make({ driver: Pg.driver(server.options), name, size: 3 })
      const gate = yield* Deferred.make<void>()
      const held = yield* Effect.fork(Pool.use(pool, () => Deferred.await(gate)))
      yield* Effect.forEach([1, 2], () => Pool.get(pool), { concurrency: "unbounded" }).pipe(Effect.scoped)
      yield* server.awaitSessions(name, (s) => s.total === 3)
      yield* Pool.invalidateAll(pool)
      yield* server.awaitSessions(name, (s) => s.total === 1)
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(held)
      yield* server.awaitSessions(name, (s) => s.total === 0)
      const fresh = yield* Pool.use(pool, (connection) => Effect.succeed(connection.processId))
      assert.deepStrictEqual((yield* server.sessions(name)).pids, [fresh])
    }))

  it.scoped("notices the terminated backend of an idle connection through its error event", () =>
    Effect.gen(function*() {
      const server = yield* Postgres
      const name = uniqueName("pg-terminate")
      const pool = yield* Pool.make({ driver: Pg.driver(server.options), name, size: 1 })
      const first = yield* Pool.use(pool, (connection) => Effect.succeed(connection.processId))
      assert.strictEqual(yield* server.terminateBackends(name), 1)
      yield* eventually(
        Effect.map(Pool.stats(pool), (stats) => stats.closedBy["invalidated"] === 1),
        "the pool closes the connection as invalidated"
      )
      const stats = yield* Pool.stats(pool)
      assert.strictEqual(stats.checkouts, 1, "no checkout was needed to notice it")
      assert.strictEqual(stats.open, 0)
      const second = yield* Pool.use(pool, (connection) => Effect.succeed(connection.processId))
      assert.notStrictEqual(second, first)
    }))

  it.scoped("fails a statement on a terminated lent connection with a disconnect, and closes it on return", () =>
    Effect.gen(function*() {
      const server = yield* Postgres
      const name = uniqueName("pg-terminate-lent")
      const pool = yield* Pool.make({ driver: Pg.driver(server.options), name, size: 1 })
      const error = yield* Effect.flip(Pool.use(pool, (connection) =>
        Effect.zipRight(
          server.terminateBackend(connection.processId),
          pool.driver.query(connection, "SELECT pg_sleep(0.05)")
        )))
      assert.isTrue(Pg.isDisconnect(error), String(error))
      yield* eventually(
        Effect.map(Pool.stats(pool), (stats) => stats.open === 0 && stats.closed === 1),
        "the connection is closed"
      )
      yield* Pool.use(pool, (connection) => pool.driver.ping(connection))
    }))

  it.scoped("invalidates a connection whose statement was interrupted in flight", () =>
    Effect.gen(function*() {
      const server = yield* Postgres
      const name = uniqueName("pg-interrupt-query")
      const pool = yield* Pool.make({ driver: Pg.driver(server.options), name, size: 1 })
      const timedOut = yield* Pool.use(pool, (c) => pool.driver.query(c, "SELECT pg_sleep(0.4)")).pipe(
        Effect.timeout("50 millis"),
        Effect.option
      )
      assert.isTrue(timedOut._tag === "None")
      yield* eventually(
        Effect.map(Pool.stats(pool), (stats) => stats.closedBy["invalidated"] === 1),
        "the busy connection is invalidated"
      )
      assert.deepStrictEqual(yield* Pool.use(pool, (c) => pool.driver.query(c, "SELECT 3 AS n")), [{ n: 3 }])
      // the cancel request stopped the statement, so the closed session is gone at once
      yield* server.awaitSessions(name, (s) => s.total === 1, "1 second")
    }))

  it.scoped("commits and rolls back transactions on the server, leaving nothing idle in transaction", () =>
    Effect.gen(function*() {
      const server = yield* Postgres
      yield* server.query(`CREATE TABLE IF NOT EXISTS ${TABLE} (k text PRIMARY KEY)`)
      const name = uniqueName("pg-transaction")
      const pool = yield* Pool.make({ driver: Pg.driver(server.options), name, size: 2 })
      const kept = uniqueName("kept")
      const dropped = uniqueName("dropped")
      yield* Pool.transaction(pool, (c) => pool.driver.query(c, `INSERT INTO ${TABLE} (k) VALUES ($1)`, [kept]))
      yield* Effect.flip(
        Pool.transaction(pool, (c) =>
          Effect.zipRight(
            pool.driver.query(c, `INSERT INTO ${TABLE} (k) VALUES ($1)`, [dropped]),
            Effect.fail("abort" as const)
          ))
      )
      const rows = yield* server.query(`SELECT k FROM ${TABLE} WHERE k = ANY($1)`, [[kept, dropped]])
      assert.deepStrictEqual(rows, [{ k: kept }])
      assert.strictEqual((yield* server.sessions(name)).idleInTransaction, 0)
    }))

  it.scoped("fails a COMMIT that rolled back an aborted transaction", () =>
    Effect.gen(function*() {
      const server = yield* Postgres
      const driver = Pg.driver(server.options)
      const connection = yield* driver.connect(makeContext(uniqueName("pg-aborted")))
      yield* driver.begin(connection)
      yield* Effect.flip(driver.query(connection, "SELECT nope"))
      const error = yield* Effect.flip(driver.commit(connection))
      assert.strictEqual(error.reason, "CommitRolledBack")
      assert.isFalse(driver.isDisconnect(error))
    }))

  it.scoped("resets on return with a ROLLBACK only when the session may hold a transaction", () =>
    Effect.gen(function*() {
      const server = yield* Postgres
      yield* server.query(`CREATE TABLE IF NOT EXISTS ${TABLE} (k text PRIMARY KEY)`)
      const name = uniqueName("pg-reset")
      const driver = Pg.driver(server.options)
      const pool = yield* Pool.make({
        driver,
        name,
        size: 1,
        maxOverflow: 0,
        policies: [Policy.resetOnReturn("rollback")]
      })
      // what the one connection sends to the server, from here on
      const sent: Array<string> = []
      yield* Pool.use(pool, (c) =>
        Effect.sync(() => {
          const client = Pg.unsafeClient(c)
          const query = client.query.bind(client) as (...args: Array<unknown>) => unknown
          client.query = ((...args: Array<unknown>) => {
            sent.push(String(args[0]))
            return query(...args)
          }) as typeof client.query
        }))
      const insert = `INSERT INTO ${TABLE} (k) VALUES ($1)`
      // autocommit work leaves the session idle: the reset has nothing to do and sends nothing
      yield* Pool.use(pool, (c) => driver.query(c, "SELECT 1"))
      assert.deepStrictEqual(sent, ["SELECT 1"])
      // a transaction left open is rolled back on return
      const leftOpen = uniqueName("left-open")
      yield* Pool.use(pool, (c) => Effect.zipRight(driver.begin(c), driver.query(c, insert, [leftOpen])))
      assert.deepStrictEqual(sent.slice(1), ["BEGIN", insert, "ROLLBACK"])
      // and so is one aborted by a failed statement
      yield* Pool.use(pool, (c) => Effect.zipRight(driver.begin(c), Effect.ignore(driver.query(c, "SELECT nope"))))
      assert.deepStrictEqual(sent.slice(4), ["BEGIN", "SELECT nope", "ROLLBACK"])
      // nothing was committed, no session idles in a transaction, and the connection is still lent out clean
      assert.deepStrictEqual(yield* server.query(`SELECT k FROM ${TABLE} WHERE k = $1`, [leftOpen]), [])
      assert.strictEqual((yield* server.sessions(name)).idleInTransaction, 0)
      assert.deepStrictEqual(yield* Pool.use(pool, (c) => driver.query(c, "SELECT 2 AS two")), [{ two: 2 }])
      assert.strictEqual((yield* Pool.stats(pool)).opened, 1)
    }))

  it.scoped("ends a client whose connect was interrupted at any moment", () =>
    Effect.gen(function*() {
      const server = yield* Postgres
      const driver = Pg.driver(server.options)
      const name = uniqueName("pg-interrupted")
      for (let delay = 0; delay < 12; delay++) {
        const scope = yield* Scope.make()
        const fiber = yield* Effect.fork(Scope.extend(driver.connect(makeContext(name)), scope))
        yield* Effect.sleep(delay < 6 ? 0 : delay - 5)
        yield* Fiber.interrupt(fiber)
        yield* Scope.close(scope, Exit.void)
      }
      yield* server.awaitSessions(name, (s) => s.total === 0)
    }), 30_000)

  it.scoped("times a hanging connect out with a typed error", () =>
    Effect.gen(function*() {
      const { port } = yield* blackhole
      const error = yield* Effect.flip(
        Layer.build(Pg.layer({ host: "127.0.0.1", port, user: "postgres", connectTimeout: "200 millis" }))
      )
      assert.strictEqual(error._tag, "PgError")
      assert.strictEqual(error.reason, "Timeout")
    }))

  it.scoped("fails the layer at build when the server refuses, without the password in the error", () =>
    Effect.gen(function*() {
      const server = yield* Postgres
      const refused = yield* Effect.flip(Layer.build(Pg.layer({ ...server.options, port: 1 })))
      assert.strictEqual(refused.reason, "ConnectFailed")
      assert.isTrue(Pg.isDisconnect(refused))
      const secret = "hunter2-very-secret"
      const url = `postgres://postgres:${secret}@${server.host}:${server.port}/no_such_database`
      const error = yield* Effect.flip(Layer.build(Pg.layer({ url: Redacted.make(url) })))
      assert.strictEqual(error.code, "3D000")
      assert.notInclude(error.message, secret)
      assert.notInclude(JSON.stringify(error), secret)
      assert.notInclude(String(error), secret)
    }))

  it.scoped("builds the layer from DATABASE_URL under the caller's tag", () =>
    Effect.gen(function*() {
      const server = yield* Postgres
      const context = yield* Layer.build(Pg.layerConfig()).pipe(
        Effect.withConfigProvider(ConfigProvider.fromMap(new Map([["DATABASE_URL", server.url]])))
      )
      const driver = yield* Effect.provide(Pg.PgDriver, Layer.succeedContext(context))
      const pool = yield* Pool.make({ driver, name: uniqueName("pg-config"), size: 1 })
      assert.deepStrictEqual(yield* Pool.use(pool, (c) => driver.query(c, "SELECT 2 AS two")), [{ two: 2 }])
      const missing = yield* Effect.flip(
        Layer.build(Pg.layerConfig()).pipe(Effect.withConfigProvider(ConfigProvider.fromMap(new Map())))
      )
      assert.strictEqual(missing._tag, "ConfigError")
    }))

  it.scoped("survives a server restart: idle connections are invalidated, new ones work", () =>
    Effect.gen(function*() {
      const server = yield* Postgres
      const name = uniqueName("pg-restart")
      const pool = yield* Pool.make({ driver: Pg.driver(server.options), name, size: 2 })
      yield* Effect.forEach([1, 2], () => Pool.get(pool), { concurrency: "unbounded" }).pipe(Effect.scoped)
      yield* server.restart("fast")
      yield* eventually(
        Effect.map(Pool.stats(pool), (stats) => stats.open === 0 && stats.closedBy["invalidated"] === 2),
        "both idle connections are invalidated"
      )
      const rows = yield* Pool.use(pool, (c) => pool.driver.query(c, "SELECT 1 AS one"))
      assert.deepStrictEqual(rows, [{ one: 1 }])
    }), 30_000)
  describe("secrets", () => {
    it.scoped(
      "defect 11: no connection, event, record, error or driver reaches the password",
      () =>
        Effect.gen(function*() {
          const server = yield* Postgres
          // the helper does find a password where node-postgres keeps one, non-enumerable as it is
          const probe = new pg.Client({ password: "probe-secret-31c7" })
          assert.isDefined(reaches(probe, "probe-secret-31c7"))
          assert.isDefined(reaches({
            m: new Map([["k", {
              get hidden() {
                return "x-probe-secret-31c7"
              }
            }]])
          }, "probe-secret-31c7"))
          const { database, host, port } = server
          const clean = (label: string, value: unknown, secrets: ReadonlyArray<string>) => {
            for (const secret of secrets) assert.deepStrictEqual(leaks(value, secret), [], `${label}: ${secret}`)
          }
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
          for (const role of server.passwordRoles) {
            const url = (password: string) =>
              `postgres://${role.user}:${encodeURIComponent(password)}@${host}:${port}/${database}`
            const variants: ReadonlyArray<readonly [string, (password: string) => Pg.PgOptions]> = [
              [
                "Redacted",
                (password) => ({ host, port, database, user: role.user, password: Redacted.make(password) })
              ],
              ["a string", (password) => ({ host, port, database, user: role.user, password })],
              ["in a url string", (password) => ({ url: url(password) })],
              ["in a Redacted url", (password) => ({ url: Redacted.make(url(password)) })]
            ]
            for (const [how, options] of variants) {
              const label = `${role.method} password ${how}`
              const secrets = [role.password, encodeURIComponent(role.password)]
              const name = uniqueName("pg-secret")
              const driver = Pg.driver(options(role.password))
              const pool = yield* Pool.make({ driver, name, size: 1 })
              const events: Array<unknown> = []
              yield* listenAll(pool, events)
              const connection = yield* Pool.use(pool, (c) =>
                Effect.gen(function*() {
                  const [row] = yield* driver.query(c, "SELECT current_user AS u")
                  assert.strictEqual(row!["u"], role.user, label)
                  clean(`${label}, a lent connection`, c, secrets)
                  clean(`${label}, its node-postgres client`, Pg.unsafeClient(c), secrets)
                  return c
                }))
              const record = yield* Pool.record(pool, connection)
              yield* Pool.invalidate(pool, connection)
              yield* eventually(
                Effect.sync(() => events.some((e) => (e as { _tag: string })._tag === "Close")),
                "the close event"
              )
              clean(`${label}, the connection`, connection, secrets)
              clean(`${label}, its record`, record, secrets)
              clean(`${label}, the events`, events, secrets)
              clean(`${label}, the driver`, driver, secrets)
              clean(`${label}, the pool's driver`, pool.driver, secrets)

              // a wrong password, given the same way: the connect fails, and nothing it leaves reaches that password
              const wrong = `wrong-${role.password}-4e1b`
              const wrongSecrets = [wrong, encodeURIComponent(wrong)]
              const refused = Pg.driver(options(wrong))
              const direct = yield* Effect.flip(Effect.scoped(refused.connect(makeContext(name))))
              assert.strictEqual(direct.reason, "ConnectFailed", `${label}: ${direct.message}`)
              assert.strictEqual(direct.code, "28P01", `${label}: ${direct.message}`)
              const checked = yield* Effect.flip(Pg.check(options(wrong)))
              const failedPool = yield* Pool.make({ driver: refused, name: uniqueName("pg-secret-refused"), size: 1 })
              const failedEvents: Array<unknown> = []
              yield* listenAll(failedPool, failedEvents)
              const viaPool = yield* Effect.flip(Pool.use(failedPool, () => Effect.void))
              yield* eventually(
                Effect.sync(() => failedEvents.some((e) => (e as { _tag: string })._tag === "ConnectFailed")),
                "the connect-failed event"
              )
              clean(`${label}, a failed connect's error`, direct, wrongSecrets)
              clean(`${label}, a failed check's error`, checked, wrongSecrets)
              clean(`${label}, a pool's connect failure`, viaPool, wrongSecrets)
              clean(`${label}, a pool's connect-failed events`, failedEvents, wrongSecrets)
              clean(`${label}, the refused driver`, refused, wrongSecrets)
            }
          }
        }),
      60_000
    )
  })

  describe("cancel on interruption", () => {
    it.scoped("defect 12: an interrupted statement stops on the server within a second", () =>
      Effect.gen(function*() {
        const server = yield* Postgres
        const driver = Pg.driver(server.options)
        const connection = yield* driver.connect(makeContext(uniqueName("pg-cancel")))
        const pid = connection.processId
        // interrupted by Fiber.interrupt, then by Effect.timeout
        const fiber = yield* Effect.fork(driver.query(connection, "SELECT pg_sleep(30)"))
        yield* eventually(activeStatement(server, pid), "the statement runs")
        const interrupted = performance.now()
        yield* Fiber.interrupt(fiber)
        yield* eventually(Effect.map(activeStatement(server, pid), (active) => !active), "the server stops it", 1_500)
        const stopped = since(interrupted)
        const timedOut = yield* Effect.option(
          Effect.timeout(driver.query(connection, "SELECT pg_sleep(30)"), "300 millis")
        )
        assert.isTrue(timedOut._tag === "None")
        const afterTimeout = performance.now()
        yield* eventually(Effect.map(activeStatement(server, pid), (active) => !active), "the server stops it", 1_500)
        const stoppedAfterTimeout = since(afterTimeout)
        // the session is idle and usable, and the cancel request did not reach this next statement
        assert.deepStrictEqual(yield* driver.query(connection, "SELECT 7 AS n"), [{ n: 7 }])
        assert.isUndefined(driver.busy!(connection))
        yield* Effect.logInfo(
          `server stopped the statement ${stopped.toFixed(0)} ms after Fiber.interrupt, ` +
            `${stoppedAfterTimeout.toFixed(0)} ms after the timeout`
        )
      }))

    it.scoped("defect 12: an interrupted Pool.transaction rolls back at once and leaves nothing running", () =>
      Effect.gen(function*() {
        const server = yield* Postgres
        yield* server.query(`CREATE TABLE IF NOT EXISTS ${TABLE} (k text PRIMARY KEY)`)
        const name = uniqueName("pg-cancel-tx")
        const driver = Pg.driver(server.options)
        const pool = yield* Pool.make({ driver, name, size: 1, maxOverflow: 0 })
        const key = uniqueName("cancelled-tx")
        let pid = 0
        const start = performance.now()
        const outcome = yield* Pool.transaction(pool, (c) =>
          Effect.gen(function*() {
            pid = c.processId
            yield* driver.query(c, `INSERT INTO ${TABLE} (k) VALUES ($1)`, [key])
            yield* driver.query(c, "SELECT pg_sleep(30)")
          })).pipe(Effect.timeout("300 millis"), Effect.option)
        const elapsed = since(start)
        assert.isTrue(outcome._tag === "None")
        // Effect.timeout waits for the interrupted transaction, its ROLLBACK included
        assert.isBelow(elapsed, 1_500, `the interrupted transaction took ${elapsed.toFixed(0)} ms`)
        yield* eventually(Effect.map(activeStatement(server, pid), (active) => !active), "nothing runs", 1_500)
        assert.strictEqual((yield* server.sessions(name)).idleInTransaction, 0)
        assert.deepStrictEqual(yield* server.query(`SELECT k FROM ${TABLE} WHERE k = $1`, [key]), [])
        // the session ended its cancelled statement and its transaction: it is lent again
        assert.deepStrictEqual(yield* Pool.use(pool, (c) => driver.query(c, "SELECT 8 AS n")), [{ n: 8 }])
        const stats = yield* Pool.stats(pool)
        assert.strictEqual(stats.opened, 1, JSON.stringify(stats.closedBy))
        yield* Effect.logInfo(`interrupted transaction done ${elapsed.toFixed(0)} ms after it started (300 ms timeout)`)
      }))

    it.scoped(
      "defect 12: a cancel request never reaches the next statement on the connection",
      () =>
        Effect.gen(function*() {
          const server = yield* Postgres
          const name = uniqueName("pg-cancel-race")
          const driver = Pg.driver(server.options)
          const connection = yield* driver.connect(makeContext(name))
          const pool = yield* Pool.make({ driver, name: uniqueName("pg-cancel-race-pool"), size: 1, maxOverflow: 0 })
          // statements that end on their own around the moment they are interrupted, each followed at once by another
          for (let i = 0; i < 30; i++) {
            const timeout = 8 + (i % 10)
            yield* Effect.option(Effect.timeout(driver.query(connection, "SELECT pg_sleep(0.012)"), timeout))
            assert.deepStrictEqual(yield* driver.query(connection, "SELECT pg_sleep(0.02), 1 AS n"), [{
              pg_sleep: "",
              n: 1
            }])
            yield* Effect.option(
              Effect.timeout(Pool.use(pool, (c) => driver.query(c, "SELECT pg_sleep(0.012)")), timeout)
            )
            assert.deepStrictEqual(
              yield* Pool.use(pool, (c) => driver.query(c, "SELECT pg_sleep(0.02), 2 AS n")),
              [{ pg_sleep: "", n: 2 }]
            )
          }
        }),
      30_000
    )
  })

  it.scoped("defect 19: an interrupted or timed-out connect closes its socket at once", () =>
    Effect.gen(function*() {
      const hole = yield* blackhole
      const name = uniqueName("pg-halfopen")
      const driver = Pg.driver({ host: "127.0.0.1", port: hole.port, user: "postgres" })
      const timed = Pg.driver({ host: "127.0.0.1", port: hole.port, user: "postgres", connectTimeout: "100 millis" })
      for (let i = 0; i < 3; i++) {
        yield* Effect.option(Effect.timeout(Effect.scoped(driver.connect(makeContext(name))), "100 millis"))
        const fiber = yield* Effect.fork(Effect.scoped(driver.connect(makeContext(name))))
        yield* eventually(Effect.sync(() => hole.accepted() === 3 * i + 2), "the server accepts the connect")
        yield* Fiber.interrupt(fiber)
        const error = yield* Effect.flip(Effect.scoped(timed.connect(makeContext(name))))
        assert.strictEqual(error.reason, "Timeout")
      }
      assert.strictEqual(hole.accepted(), 9)
      yield* eventually(
        Effect.sync(() => hole.sockets.size === 0),
        `every abandoned connect is closed (${hole.sockets.size} still open)`,
        1_000
      )
    }))

  describe("statement timeout", () => {
    it.scoped("defect 20: statementTimeout stops a long statement on the server and keeps the connection", () =>
      Effect.gen(function*() {
        const server = yield* Postgres
        const name = uniqueName("pg-statement-timeout")
        const driver = Pg.driver({ ...server.options, statementTimeout: "200 millis" })
        const pool = yield* Pool.make({ driver, name, size: 1, maxOverflow: 0 })
        const start = performance.now()
        const error = yield* Effect.flip(Pool.use(pool, (c) => driver.query(c, "SELECT pg_sleep(5)")))
        const elapsed = since(start)
        assert.strictEqual(error._tag, "PgError")
        const pgError = error as Pg.PgError
        assert.strictEqual(pgError.reason, "StatementTimeout", pgError.message)
        assert.strictEqual(pgError.code, "57014")
        assert.isFalse(driver.isDisconnect(pgError))
        assert.isBelow(elapsed, 1_000, `failed after ${elapsed.toFixed(0)} ms`)
        // the connection was fine: it is lent again, and shorter statements still run
        assert.deepStrictEqual(yield* Pool.use(pool, (c) => driver.query(c, "SELECT pg_sleep(0.05), 3 AS n")), [
          { pg_sleep: "", n: 3 }
        ])
        const stats = yield* Pool.stats(pool)
        assert.strictEqual(stats.opened, 1)
        assert.strictEqual(stats.closed, 0)
        yield* Effect.logInfo(`statement timeout of 200 ms failed pg_sleep(5) after ${elapsed.toFixed(0)} ms`)
      }))

    it.scoped("defect 20: statementTimeout fails a statement on a dead network path and invalidates it", () =>
      Effect.gen(function*() {
        const server = yield* Postgres
        const path = yield* proxy(server)
        const name = uniqueName("pg-query-timeout")
        const driver = Pg.driver({ ...server.options, port: path.port, statementTimeout: "200 millis" })
        const pool = yield* Pool.make({ driver, name, size: 1, maxOverflow: 0 })
        assert.deepStrictEqual(yield* Pool.use(pool, (c) => driver.query(c, "SELECT 1 AS n")), [{ n: 1 }])
        path.blackhole()
        const start = performance.now()
        const error = yield* Effect.flip(Pool.use(pool, (c) => driver.query(c, "SELECT 2 AS n")))
        const elapsed = since(start)
        const pgError = error as Pg.PgError
        assert.strictEqual(pgError.reason, "Timeout", pgError.message)
        assert.strictEqual(pgError.operation, "query")
        assert.isTrue(driver.isDisconnect(pgError))
        assert.isBelow(elapsed, 2_500, `failed after ${elapsed.toFixed(0)} ms`)
        yield* eventually(
          Effect.map(Pool.stats(pool), (stats) => stats.closedBy["invalidated"] === 1),
          "the connection is invalidated"
        )
        yield* Effect.logInfo(`client-side timeout failed a blackholed statement after ${elapsed.toFixed(0)} ms`)
      }))
  })
})
