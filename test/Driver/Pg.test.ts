import { assert, describe, layer } from "@effect/vitest"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Scope from "effect/Scope"
import * as net from "node:net"
import * as Pg from "../../src/Driver/Pg.js"
import * as Policy from "../../src/Policy.js"
import * as Pool from "../../src/Pool.js"
import { layer as postgresLayer, Postgres } from "../utils/postgres.js"
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
        const client = connection.client
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

/** A TCP server that accepts connections and never answers: a connect to it hangs. */
const blackhole = Effect.acquireRelease(
  Effect.async<{ readonly port: number; readonly server: net.Server; readonly sockets: Set<net.Socket> }>(
    (resume) => {
      const sockets = new Set<net.Socket>()
      const server = net.createServer((socket) => {
        sockets.add(socket)
        socket.on("error", () => undefined)
        socket.on("close", () => sockets.delete(socket))
      })
      server.listen(0, "127.0.0.1", () => {
        const address = server.address()
        resume(
          Effect.succeed({ port: typeof address === "object" && address !== null ? address.port : 0, server, sockets })
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
      // the server only notices the closed socket once the statement ends (no cancel request is sent)
      yield* server.awaitSessions(name, (s) => s.total === 1)
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
          const query = c.client.query.bind(c.client) as (...args: Array<unknown>) => unknown
          c.client.query = ((...args: Array<unknown>) => {
            sent.push(String(args[0]))
            return query(...args)
          }) as typeof c.client.query
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
})
