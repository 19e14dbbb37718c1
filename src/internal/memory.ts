import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as FastCheck from "effect/FastCheck"
import * as Random from "effect/Random"
import type { Row } from "../Driver.js"
import type * as Memory from "../Driver/Memory.js"
import { MemoryError } from "../Driver/Memory.js"
import * as driver from "./driver.js"

class Connection implements Memory.MemoryConnection {
  alive = true
  closed = false
  inTransaction = false
  readonly settings = new Map<string, string>()
  readonly statements: Array<string> = []
  readonly log: Array<Memory.Statement> = []
  pending: Array<Memory.Statement> = []
  invalidate: ((cause: unknown) => void) | undefined = undefined
  constructor(readonly id: number, readonly applicationName: string) {}
}

const disconnected = (id: number) =>
  new MemoryError({ reason: "Disconnected", message: `connection ${id}: server closed the connection unexpectedly` })

/**
 * Why the statement's placeholders do not match its parameters, or `undefined` when they do: `$n` (numbered, may
 * repeat, every one of 1..max used) or `?` (one per parameter), not both.
 */
const placeholderProblem = (sql: string, params: ReadonlyArray<unknown>): string | undefined => {
  // placeholders inside quoted strings are text, as on a real server
  const text = sql.replace(/'(?:[^']|'')*'/g, "''")
  const numbered = [...text.matchAll(/\$(\d+)/g)].map((m) => Number(m[1]))
  const positional = (text.match(/\?/g) ?? []).length
  if (numbered.length > 0 && positional > 0) return "mixes $n and ? placeholders"
  if (positional > 0) {
    return positional === params.length
      ? undefined
      : `has ${positional} ? placeholder${positional === 1 ? "" : "s"} but was given ${params.length} parameter${
        params.length === 1 ? "" : "s"
      }`
  }
  const max = numbered.length === 0 ? 0 : Math.max(...numbered)
  if (max !== params.length) {
    return `requires ${max} parameter${max === 1 ? "" : "s"} but was given ${params.length}`
  }
  const used = new Set(numbered)
  for (let n = 1; n <= max; n++) if (!used.has(n)) return `does not use $${n}`
  return undefined
}

const SET = /^\s*SET\s+(?:SESSION\s+)?([\w.]+)\s*(?:=|TO)\s*'?([^']*)'?\s*$/i
const SHOW = /^\s*SHOW\s+([\w.]+)\s*$/i

/** @internal */
export const make = (options?: Memory.MemoryOptions): Effect.Effect<Memory.MemoryDatabase> =>
  Effect.sync(() => {
    let nextId = 1
    let connectLatency = Duration.toMillis(Duration.decode(options?.connectLatency ?? 0))
    let queryLatency = Duration.toMillis(Duration.decode(options?.queryLatency ?? 0))
    let failureRate = 0
    let refuseUntil = 0
    let isDown = false
    let failQueries = 0
    let slowMillis = 0
    const connectGates: Array<Memory.Gate> = []
    const queryGates: Array<Memory.QueryGate> = []
    const open = new Map<number, Connection>()
    const committed: Array<Memory.Statement> = []
    const respond = options?.respond
    const counters = { connectAttempts: 0, refused: 0, opened: 0, closed: 0, closedTwice: 0, queries: 0 }

    const refuse = (message: string) =>
      Effect.sync(() => {
        counters.refused++
      }).pipe(Effect.zipRight(Effect.fail(new MemoryError({ reason: "ConnectRefused", message }))))

    const latency = (millis: number) => millis > 0 ? Effect.sleep(millis) : Effect.void

    const connect = (context: import("../Driver.js").ConnectContext) =>
      Effect.gen(function*() {
        counters.connectAttempts++
        const now = yield* Effect.clockWith((clock) => clock.currentTimeMillis)
        if (isDown || now < refuseUntil) return yield* refuse("connection refused: the server is down")
        const gate = connectGates.shift() ?? "ok"
        if (gate === "never") return yield* Effect.never
        yield* latency(gate === "slow" ? Math.max(slowMillis, connectLatency) : connectLatency)
        if (gate === "fail") {
          return yield* Effect.fail(
            new MemoryError({ reason: "ConnectFailed", message: "connect failed (fault plan)" })
          )
        }
        if (failureRate > 0 && (yield* Random.next) < failureRate) {
          return yield* Effect.fail(
            new MemoryError({ reason: "ConnectFailed", message: "connect failed (failure rate)" })
          )
        }
        return yield* Effect.acquireRelease(
          Effect.sync(() => {
            const connection = new Connection(nextId++, context.poolName)
            connection.invalidate = context.invalidate
            open.set(connection.id, connection)
            counters.opened++
            return connection
          }),
          (connection) =>
            Effect.sync(() => {
              if (connection.closed) {
                counters.closedTwice++
                return
              }
              connection.closed = true
              connection.alive = false
              open.delete(connection.id)
              counters.closed++
            })
        )
      })

    const run = (
      connection: Connection,
      sql: string,
      params: ReadonlyArray<unknown>
    ): Effect.Effect<ReadonlyArray<Row>, MemoryError> =>
      Effect.suspend((): Effect.Effect<ReadonlyArray<Row>, MemoryError> => {
        counters.queries++
        if (!connection.alive) return Effect.fail(disconnected(connection.id))
        const gate = queryGates.shift() ?? "ok"
        if (gate === "disconnect") {
          connection.alive = false
          return Effect.fail(disconnected(connection.id))
        }
        if (gate === "fail" || failQueries > 0) {
          if (gate !== "fail") failQueries--
          return Effect.fail(new MemoryError({ reason: "QueryFailed", message: `statement failed: ${sql}` }))
        }
        const problem = placeholderProblem(sql, params)
        if (problem !== undefined) {
          return Effect.fail(new MemoryError({ reason: "QueryFailed", message: `statement ${problem}: ${sql}` }))
        }
        const entry: Memory.Statement = { sql, params, connection: connection.id }
        connection.statements.push(sql)
        connection.log.push(entry)
        const statement = sql.trim().toUpperCase()
        if (statement === "BEGIN" || statement === "START TRANSACTION") {
          connection.inTransaction = true
          connection.pending = []
          return Effect.succeed([])
        }
        if (statement === "COMMIT") {
          connection.inTransaction = false
          committed.push(...connection.pending)
          connection.pending = []
          return Effect.succeed([])
        }
        if (statement === "ROLLBACK") {
          connection.inTransaction = false
          connection.pending = []
          return Effect.succeed([])
        }
        const set = SET.exec(sql)
        if (set !== null) {
          connection.settings.set(set[1]!.toLowerCase(), set[2]!)
          return Effect.succeed([])
        }
        const show = SHOW.exec(sql)
        if (show !== null) {
          const name = show[1]!.toLowerCase()
          return Effect.succeed([{ [name]: connection.settings.get(name) ?? "" }])
        }
        const answered = respond === undefined ? undefined : respond(entry)
        const rows = answered ?? (/^SELECT\s+1\s*;?$/.test(statement) ? [{ "?column?": 1 }] : [])
        if (answered === undefined && rows.length > 0) return Effect.succeed(rows)
        if (connection.inTransaction) connection.pending.push(entry)
        else committed.push(entry)
        return Effect.succeed(rows)
      })

    const query = (connection: Memory.MemoryConnection, sql: string, params?: ReadonlyArray<unknown>) => {
      const c = connection as Connection
      const bound = params ?? []
      return queryLatency > 0 ? Effect.zipRight(Effect.sleep(queryLatency), run(c, sql, bound)) : run(c, sql, bound)
    }

    const kill = (connection: Connection, notify: boolean) => {
      if (!connection.alive) return
      connection.alive = false
      if (notify && connection.invalidate !== undefined) connection.invalidate(disconnected(connection.id))
    }

    const db: Memory.MemoryDatabase = {
      driver: driver.make<Memory.MemoryConnection, MemoryError>({
        dialect: "memory",
        connect,
        query,
        isDisconnect: (error) =>
          error instanceof MemoryError && (error.reason === "Disconnected" || error.reason === "ConnectRefused")
      }),
      stats: Effect.sync(() => {
        let inTransaction = 0
        for (const c of open.values()) if (c.inTransaction) inTransaction++
        return { ...counters, open: open.size, inTransaction }
      }),
      connections: Effect.sync(() => Array.from(open.values())),
      committed: Effect.sync(() => committed.map((statement) => statement.sql)),
      committedStatements: Effect.sync(() => committed.slice()),
      failNextConnects: (n) =>
        Effect.sync(() => connectGates.push(...Array.from({ length: n }, () => "fail" as const))),
      hangNextConnects: (n) =>
        Effect.sync(() => connectGates.push(...Array.from({ length: n }, () => "never" as const))),
      setConnectFailureRate: (p) =>
        Effect.sync(() => {
          failureRate = p
        }),
      setLatency: (l) =>
        Effect.sync(() => {
          if (l.connect !== undefined) connectLatency = Duration.toMillis(Duration.decode(l.connect))
          if (l.query !== undefined) queryLatency = Duration.toMillis(Duration.decode(l.query))
        }),
      failNextQueries: (n) =>
        Effect.sync(() => {
          failQueries += n
        }),
      kill: (connection, killOptions) =>
        Effect.sync(() => {
          const c = typeof connection === "number" ? open.get(connection) : connection as Connection
          if (c !== undefined) kill(c, killOptions?.notify ?? true)
        }),
      restart: (downFor, restartOptions) =>
        Effect.clockWith((clock) =>
          Effect.map(clock.currentTimeMillis, (now) => {
            refuseUntil = now + Duration.toMillis(Duration.decode(downFor))
            for (const c of Array.from(open.values())) kill(c, restartOptions?.notify ?? true)
          })
        ),
      down: Effect.sync(() => {
        isDown = true
      }),
      up: Effect.sync(() => {
        isDown = false
        refuseUntil = 0
      }),
      applyPlan: (plan) =>
        Effect.sync(() => {
          connectGates.push(...plan.connects)
          queryGates.push(...plan.queries)
          slowMillis = plan.slowMillis
        })
    }
    return db
  })

/** @internal */
export const arbitraries = {
  gate: FastCheck.constantFrom<Memory.Gate>("ok", "fail", "slow", "never"),
  queryGate: FastCheck.constantFrom<Memory.QueryGate>("ok", "fail", "disconnect"),
  faultPlan: (options?: {
    readonly maxConnects?: number | undefined
    readonly maxQueries?: number | undefined
    readonly maxSlowMillis?: number | undefined
  }): FastCheck.Arbitrary<Memory.FaultPlan> =>
    FastCheck.record({
      connects: FastCheck.array(FastCheck.constantFrom<Memory.Gate>("ok", "fail", "slow", "never"), {
        maxLength: options?.maxConnects ?? 10
      }),
      queries: FastCheck.array(FastCheck.constantFrom<Memory.QueryGate>("ok", "fail", "disconnect"), {
        maxLength: options?.maxQueries ?? 10
      }),
      slowMillis: FastCheck.integer({ min: 1, max: options?.maxSlowMillis ?? 1000 })
    })
}
