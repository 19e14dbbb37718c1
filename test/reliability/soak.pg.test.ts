/**
 * Chaos soak on a real PostgreSQL 15 (a throwaway cluster, real clock), behind the TCP fault proxy: bank transfers
 * from 40 fibers, 20 through `Pool.transaction` on a `Pg.driver` pool and 20 through the `SqlClient`
 * (`sql.withTransaction`), while a chaos fiber, every 1–3 s, terminates both pools' backends, resets the proxy, slows
 * it (50–200 ms per chunk for a while), kills one proxied connection, and once per run restarts the server
 * (`pg_ctl stop -m fast`, start).
 *
 * Each transfer moves an amount between two accounts and inserts its id into a ledger, in one transaction. At the end:
 * the total balance is exactly what it was, and every account's balance is what the ledger says (no statement ran
 * outside its transaction); every transfer reported as a success is in the ledger exactly once and every one reported
 * as a failure is not, except the ambiguous `CommitOutcomeUnknown`; every failure was typed (`PgError`, a pool error,
 * or a `SqlError` whose cause is one of these: a defect fails the test); no operation hung (each is bounded by `OP_BOUND`); once the load stops, the server's sessions of
 * each pool are its opened − closed, none `idle in transaction`; after the pools' scopes close, no session is left;
 * the heap after a forced GC is within 20 % of its value after warm-up (a shrink is no leak: only growth fails).
 *
 * Duration: `SOAK_SECONDS` of load (default 40, so that the test takes under a minute in CI); longer soaks with
 * `SOAK_SECONDS=600 npx vitest run test/reliability/soak.pg.test.ts`.
 */
import * as Reactivity from "@effect/experimental/Reactivity"
import { SqlError } from "@effect/sql/SqlError"
import { assert, layer } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Option from "effect/Option"
import * as Scope from "effect/Scope"
import * as Pg from "../../src/Driver/Pg.js"
import * as Pool from "../../src/Pool.js"
import { isPoolError } from "../../src/PoolError.js"
import * as SqlPg from "../../src/Sql/Pg.js"
import { uniqueName } from "../Driver/conformance.js"
import * as FaultProxy from "../utils/faultProxy.js"
import { gc } from "../utils/heap.js"
import { layer as postgresLayer, Postgres, type PostgresServer } from "../utils/postgres.js"

const envSeconds = Number(process.env["SOAK_SECONDS"] ?? "")
/** Seconds of load; the CI default keeps the whole test under a minute. */
const SOAK_SECONDS = Number.isFinite(envSeconds) && envSeconds > 0 ? envSeconds : 40
/** The heap is sampled after this much load (JIT, pools and caches warmed up). */
const WARMUP_SECONDS = Math.min(10, SOAK_SECONDS / 4)
/** An operation that takes longer has hung: a test failure. */
const OP_BOUND = Duration.seconds(20)
const FIBERS_PER_CLIENT = 20
const ACCOUNTS = 100
const INITIAL_BALANCE = 1000
const ACCOUNTS_TABLE = "soak_accounts"
const LEDGER_TABLE = "soak_ledger"
const STATEMENT_TIMEOUT = "5 seconds"
const POOL_OPTIONS = { size: 5, maxOverflow: 5, timeout: "10 seconds" } as const

const heapUsed = (): number => {
  gc!()
  gc!()
  return process.memoryUsage().heapUsed
}

const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MB`

/**
 * What became of each transfer, by id. A typed array outside the JavaScript heap, allocated before the warm-up
 * sample, so that the record of a long soak does not show as heap growth.
 */
const Outcome = {
  none: 0,
  inFlight: 1,
  ok: 2,
  /** Reported as a failure: must not be in the ledger. */
  failed: 3,
  /** `CommitOutcomeUnknown`: may or may not be in the ledger. */
  unknown: 4,
  untyped: 6,
  hung: 7
} as const
type Outcome = typeof Outcome[keyof typeof Outcome]

type Path = "pool" | "sql"

interface Figures {
  readonly ok: Record<Path, number>
  readonly failed: Record<Path, number>
  readonly unknown: Record<Path, number>
  readonly maxOpMillis: Record<Path, number>
  readonly recoveryMillis: Record<Path, number | undefined>
  readonly errors: Map<string, number>
  readonly untyped: Array<string>
  hung: number
  chaos: Map<string, number>
  chaosFailures: Array<string>
  restartDoneAt: number | undefined
}

const perPath = <A>(a: A): Record<Path, A> => ({ pool: a, sql: a })

/** The error a `Cause` fails with, when it is one plain failure (no defect, no interruption). */
const soleFailure = (cause: Cause.Cause<unknown>): Option.Option<unknown> =>
  Cause.isDie(cause) || Cause.isInterrupted(cause) ? Option.none() : Cause.failureOption(cause)

const describe = (error: unknown): string =>
  error instanceof Pg.PgError ?
    `PgError.${error.reason}/${error.operation}` :
    isPoolError(error) ?
    String((error as { readonly _tag: string })._tag).replace("effect-reservoir/", "") :
    String(error)

/** `Pool.transaction`'s failures: the driver's `PgError` or the pool's errors. */
const classifyPool = (cause: Cause.Cause<unknown>, figures: Figures): Outcome => {
  const failure = soleFailure(cause)
  if (Option.isSome(failure)) {
    const error = failure.value
    if (error instanceof Pg.PgError || isPoolError(error)) {
      count(figures.errors, `pool:${describe(error)}`)
      return error instanceof Pg.PgError && error.reason === "CommitOutcomeUnknown" ? Outcome.unknown : Outcome.failed
    }
  }
  if (figures.untyped.length < 5) figures.untyped.push(`pool: ${Cause.pretty(cause)}`)
  return Outcome.untyped
}

/**
 * The `SqlClient`'s failures: a `SqlError` whose cause is a `PgError` or a pool error; a connection lost while its
 * `COMMIT` was in flight is `CommitOutcomeUnknown` there too (the client turns `@effect/sql`'s `orDie` of a failed
 * COMMIT back into its error), the ambiguous case. Any defect is untyped and fails the test.
 */
const classifySql = (cause: Cause.Cause<unknown>, figures: Figures): Outcome => {
  const failure = soleFailure(cause)
  if (Option.isSome(failure) && failure.value instanceof SqlError) {
    const error = failure.value.cause
    if (error instanceof Pg.PgError || isPoolError(error)) {
      count(figures.errors, `sql:${describe(error)}`)
      return error instanceof Pg.PgError && error.reason === "CommitOutcomeUnknown" ? Outcome.unknown : Outcome.failed
    }
  }
  if (figures.untyped.length < 5) figures.untyped.push(`sql: ${Cause.pretty(cause)}`)
  return Outcome.untyped
}

const count = (map: Map<string, number>, key: string) => {
  map.set(key, (map.get(key) ?? 0) + 1)
}

const randomInt = (min: number, max: number) => min + Math.floor(Math.random() * (max - min + 1))

/** Two distinct accounts and an amount; the lower id is updated first, so that transfers never deadlock. */
const randomTransfer = () => {
  const from = randomInt(1, ACCOUNTS)
  let to = randomInt(1, ACCOUNTS - 1)
  if (to >= from) to += 1
  const amount = randomInt(1, 50)
  const steps: ReadonlyArray<readonly [id: number, delta: number]> = from < to ?
    [[from, -amount], [to, amount]] :
    [[to, amount], [from, -amount]]
  return { from, to, amount, steps }
}

const shuffled = <A>(items: ReadonlyArray<A>): Array<A> => {
  const out = [...items]
  for (let i = out.length - 1; i > 0; i--) {
    const j = randomInt(0, i)
    ;[out[i], out[j]] = [out[j]!, out[i]!]
  }
  return out
}

const setup = (server: PostgresServer) =>
  Effect.gen(function*() {
    yield* server.query(`DROP TABLE IF EXISTS ${ACCOUNTS_TABLE}, ${LEDGER_TABLE}`)
    yield* server.query(`CREATE TABLE ${ACCOUNTS_TABLE} (id int PRIMARY KEY, balance bigint NOT NULL)`)
    // no key on the ledger: a transfer committed twice must show as two rows
    yield* server.query(
      `CREATE TABLE ${LEDGER_TABLE} (id int NOT NULL, from_id int NOT NULL, to_id int NOT NULL, amount int NOT NULL)`
    )
    yield* server.query(
      `INSERT INTO ${ACCOUNTS_TABLE} (id, balance) SELECT g, ${INITIAL_BALANCE} FROM generate_series(1, ${ACCOUNTS}) g`
    )
  })

const UPDATE = `UPDATE ${ACCOUNTS_TABLE} SET balance = balance + $1 WHERE id = $2`
const INSERT = `INSERT INTO ${LEDGER_TABLE} (id, from_id, to_id, amount) VALUES ($1, $2, $3, $4)`

layer(postgresLayer, { excludeTestServices: true, timeout: "60 seconds" })(
  "chaos soak (PostgreSQL 15)",
  (it) => {
    it.scoped(
      "bank transfers under chaos keep the total, report every failure typed, never hang, and leave no session",
      () =>
        Effect.gen(function*() {
          assert.isDefined(gc, "global.gc is needed for the heap figures (v8 --expose-gc)")
          const server = yield* Postgres
          yield* setup(server)
          const proxy = yield* FaultProxy.make({ host: server.host, port: server.port })
          const poolName = uniqueName("soak-pool")
          const sqlName = uniqueName("soak-sql")

          // both clients live in a scope of their own, closed before the final session count
          const clients = yield* Scope.make()
          yield* Effect.addFinalizer(() => Scope.close(clients, Exit.void))
          const driver = Pg.driver({ ...server.options, port: proxy.port, statementTimeout: STATEMENT_TIMEOUT })
          const pool = yield* Scope.extend(Pool.make({ driver, name: poolName, ...POOL_OPTIONS }), clients)
          const sql = yield* Scope.extend(
            Effect.provide(
              SqlPg.make({
                ...server.options,
                port: proxy.port,
                statementTimeout: STATEMENT_TIMEOUT,
                pool: { name: sqlName, ...POOL_OPTIONS }
              }),
              Reactivity.layer
            ),
            clients
          )

          const capacity = Math.max(1 << 20, Math.ceil(SOAK_SECONDS * 5000))
          const outcomes = new Uint8Array(capacity)
          let nextId = 0
          let stop = false
          const figures: Figures = {
            ok: perPath(0),
            failed: perPath(0),
            unknown: perPath(0),
            maxOpMillis: perPath(0),
            recoveryMillis: perPath(undefined),
            errors: new Map(),
            untyped: [],
            hung: 0,
            chaos: new Map(),
            chaosFailures: [],
            restartDoneAt: undefined
          }

          const viaPool = (id: number) => {
            const { amount, from, steps, to } = randomTransfer()
            return Pool.transaction(pool, (c) =>
              Effect.gen(function*() {
                for (const [account, delta] of steps) yield* driver.query(c, UPDATE, [delta, account])
                yield* driver.query(c, INSERT, [id, from, to, amount])
              })).pipe(Effect.exit) as Effect.Effect<Exit.Exit<void, unknown>> as Effect.Effect<
                Exit.Exit<void, unknown>
              >
          }

          const viaSql = (id: number) => {
            const { amount, from, steps, to } = randomTransfer()
            return sql.withTransaction(Effect.gen(function*() {
              for (const [account, delta] of steps) {
                yield* sql`UPDATE ${sql(ACCOUNTS_TABLE)} SET balance = balance + ${delta} WHERE id = ${account}`
              }
              yield* sql`INSERT INTO ${sql(LEDGER_TABLE)} ${sql.insert({ id, from_id: from, to_id: to, amount })}`
            })).pipe(Effect.exit) as Effect.Effect<Exit.Exit<void, unknown>>
          }

          /** Runs one transfer with a fresh id and records what became of it. */
          const transfer = (path: Path) =>
            Effect.gen(function*() {
              const id = nextId++
              outcomes[id] = Outcome.inFlight
              const started = performance.now()
              const result = yield* Effect.timeoutOption(
                Effect.disconnect(path === "pool" ? viaPool(id) : viaSql(id)),
                OP_BOUND
              )
              const now = performance.now()
              figures.maxOpMillis[path] = Math.max(figures.maxOpMillis[path], now - started)
              if (Option.isNone(result)) {
                outcomes[id] = Outcome.hung
                figures.hung += 1
                return Outcome.hung
              }
              const exit = result.value
              if (Exit.isSuccess(exit)) {
                outcomes[id] = Outcome.ok
                figures.ok[path] += 1
                if (
                  figures.restartDoneAt !== undefined && figures.recoveryMillis[path] === undefined &&
                  started >= figures.restartDoneAt
                ) {
                  figures.recoveryMillis[path] = now - figures.restartDoneAt
                }
                return Outcome.ok
              }
              const outcome = path === "pool" ?
                classifyPool(exit.cause, figures) :
                classifySql(exit.cause, figures)
              outcomes[id] = outcome
              if (outcome === Outcome.failed) figures.failed[path] += 1
              else if (outcome === Outcome.unknown) figures.unknown[path] += 1
              return outcome
            })

          // a failed transfer is counted, not retried: its id must stay out of the ledger
          const worker = (path: Path) =>
            Effect.gen(function*() {
              while (!stop && nextId < capacity - 100) {
                const outcome = yield* transfer(path)
                if (outcome !== Outcome.ok) yield* Effect.sleep(Duration.millis(randomInt(5, 50)))
              }
            })

          const chaosAction = (name: string, action: Effect.Effect<unknown, unknown>) =>
            action.pipe(
              Effect.tap(() => Effect.sync(() => count(figures.chaos, name))),
              Effect.catchAllCause((cause) =>
                Effect.sync(() => {
                  figures.chaosFailures.push(`${name}: ${Cause.pretty(cause)}`)
                })
              )
            )

          const restartAt = performance.now() + Math.max(WARMUP_SECONDS, SOAK_SECONDS * 0.5) * 1000
          let restarted = false
          const round: Array<"terminate" | "reset" | "latency" | "killOne"> = []
          const chaos = Effect.gen(function*() {
            while (!stop) {
              yield* Effect.sleep(Duration.millis(randomInt(1000, 3000)))
              if (stop) break
              if (!restarted && performance.now() >= restartAt) {
                restarted = true
                yield* chaosAction("restart", server.restart("fast"))
                figures.restartDoneAt = performance.now()
                continue
              }
              // the four kinds in a shuffled round, so that every kind runs in a short soak too
              if (round.length === 0) round.push(...shuffled(["terminate", "reset", "latency", "killOne"] as const))
              switch (round.pop()!) {
                case "terminate":
                  yield* chaosAction(
                    "terminate",
                    Effect.zip(server.terminateBackends(poolName), server.terminateBackends(sqlName))
                  )
                  break
                case "reset":
                  yield* chaosAction("reset", proxy.reset)
                  break
                case "latency":
                  yield* chaosAction(
                    "latency",
                    proxy.set({ _tag: "Latency", millis: randomInt(50, 200) }).pipe(
                      Effect.zipRight(Effect.sleep(Duration.millis(randomInt(1000, 2000)))),
                      Effect.ensuring(proxy.set({ _tag: "Pass" }))
                    )
                  )
                  break
                case "killOne":
                  yield* chaosAction("killOne", proxy.killOne)
              }
            }
          })

          let heapBefore = 0
          const clock = Effect.gen(function*() {
            yield* Effect.sleep(Duration.seconds(WARMUP_SECONDS))
            heapBefore = heapUsed()
            yield* Effect.sleep(Duration.seconds(SOAK_SECONDS - WARMUP_SECONDS))
            stop = true
          })

          const load = Effect.gen(function*() {
            const fibers = [
              ...Array.from({ length: FIBERS_PER_CLIENT }, () => worker("pool")),
              ...Array.from({ length: FIBERS_PER_CLIENT }, () => worker("sql")),
              chaos,
              clock
            ]
            const running = yield* Effect.forEach(fibers, (fiber) => Effect.fork(fiber))
            // every worker ends within OP_BOUND of `stop` (its op is bounded), the chaos fiber within a few seconds
            const joined = yield* Effect.timeoutOption(
              Fiber.joinAll(running),
              Duration.sum(Duration.seconds(SOAK_SECONDS), Duration.sum(OP_BOUND, Duration.seconds(30)))
            )
            if (Option.isNone(joined)) {
              stop = true
              yield* Effect.forEach(running, (fiber) => Fiber.interruptFork(fiber))
              return false
            }
            return true
          })

          const started = performance.now()
          const allEnded = yield* Logger.withMinimumLogLevel(load, LogLevel.Error)
          const loadSeconds = (performance.now() - started) / 1000
          assert.isTrue(allEnded, "every fiber ended (none hung)")
          yield* proxy.set({ _tag: "Pass" })

          // quiescence: nothing lent, nobody waiting, and each pool's open connections are the server's sessions
          const poolsOf = [[pool, poolName], [sql.pool, sqlName]] as const
          for (const [p, name] of poolsOf) {
            const observe = Effect.all({ stats: Pool.stats(p), sessions: server.sessions(name) })
            const settledAt = performance.now() + 15_000
            let seen = yield* observe
            while (
              !(seen.stats.inUse === 0 && seen.stats.waiting === 0 && seen.stats.opening === 0 &&
                seen.stats.opened - seen.stats.closed === seen.sessions.total) && performance.now() < settledAt
            ) {
              yield* Effect.sleep(Duration.millis(50))
              seen = yield* observe
            }
            const { sessions, stats } = seen
            assert.isTrue(
              stats.inUse === 0 && stats.waiting === 0 && stats.opening === 0,
              `${name}: nothing lent or awaited once the load stops: ${JSON.stringify(stats)}`
            )
            assert.strictEqual(
              stats.opened - stats.closed,
              sessions.total,
              `${name}: opened - closed = the server's sessions (${JSON.stringify(stats)})`
            )
            assert.strictEqual(sessions.idleInTransaction, 0, `${name}: no session idle in transaction`)
            assert.isAtMost(sessions.total, stats.size + stats.maxOverflow, `${name}: within size + maxOverflow`)
          }

          const heapAfter = heapUsed()

          // the pools still serve once the chaos stops (a few attempts: an idle connection may have died last)
          for (const path of ["pool", "sql"] as const) {
            let outcome: Outcome = yield* transfer(path)
            for (let attempt = 1; attempt < 5 && outcome !== Outcome.ok; attempt++) outcome = yield* transfer(path)
            assert.strictEqual(outcome, Outcome.ok, `${path} serves after the chaos`)
          }

          // the money and the ledger
          const [{ total }] = (yield* server.query(
            `SELECT sum(balance)::bigint::text AS total FROM ${ACCOUNTS_TABLE}`
          )) as unknown as [{ total: string }]
          assert.strictEqual(Number(total), ACCOUNTS * INITIAL_BALANCE, "the total balance is what it was")
          const [{ n: inconsistent }] = (yield* server.query(
            `SELECT count(*)::int AS n FROM ${ACCOUNTS_TABLE} a WHERE a.balance <> ${INITIAL_BALANCE}
               + coalesce((SELECT sum(amount) FROM ${LEDGER_TABLE} l WHERE l.to_id = a.id), 0)
               - coalesce((SELECT sum(amount) FROM ${LEDGER_TABLE} l WHERE l.from_id = a.id), 0)`
          )) as unknown as [{ n: number }]
          assert.strictEqual(inconsistent, 0, "every account's balance is what the ledger says")
          const duplicates = yield* server.query(
            `SELECT id FROM ${LEDGER_TABLE} GROUP BY id HAVING count(*) > 1 LIMIT 10`
          )
          assert.deepStrictEqual(duplicates, [], "no transfer committed twice")

          const ledger = yield* server.query(`SELECT id FROM ${LEDGER_TABLE}`)
          let okInLedger = 0
          let unknownCommitted = 0
          const failedButCommitted: Array<number> = []
          const neverAttempted: Array<number> = []
          for (const row of ledger) {
            const id = Number(row["id"])
            const outcome = id < capacity ? outcomes[id] : Outcome.none
            if (outcome === Outcome.ok) okInLedger += 1
            else if (outcome === Outcome.unknown) unknownCommitted += 1
            else if (outcome === Outcome.failed) failedButCommitted.push(id)
            else neverAttempted.push(id)
          }
          let okTotal = 0
          for (let id = 0; id < nextId && id < capacity; id++) if (outcomes[id] === Outcome.ok) okTotal += 1
          assert.strictEqual(okInLedger, okTotal, "every transfer reported as a success is in the ledger")
          assert.deepStrictEqual(failedButCommitted.slice(0, 10), [], "no transfer reported as failed committed")
          assert.deepStrictEqual(neverAttempted.slice(0, 10), [], "the ledger holds only transfers that were run")

          // close both clients: every session goes
          yield* Scope.close(clients, Exit.void)
          for (const [p, name] of poolsOf) {
            yield* server.awaitSessions(name, (s) => s.total === 0, "10 seconds")
            const stats = yield* Pool.stats(p)
            assert.strictEqual(stats.opened, stats.closed, `${name}: every connection opened was closed`)
          }

          const actions = [...figures.chaos].map(([name, n]) => `${name} ${n}`).join(", ")
          const errors = [...figures.errors].sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k} ${n}`).join(", ")
          const path = (p: Path) =>
            `${p}: ok ${figures.ok[p]} failed ${figures.failed[p]} unknown ${figures.unknown[p]}` +
            `, max op ${figures.maxOpMillis[p].toFixed(0)} ms, first ok after restart ${
              figures.recoveryMillis[p]?.toFixed(0) ?? "-"
            } ms`
          console.log(
            `[reliability] soak: ${loadSeconds.toFixed(0)} s, 40 fibers; ${path("pool")}; ${path("sql")}; ` +
              `unknown committed ${unknownCommitted}/${figures.unknown.pool + figures.unknown.sql}; ` +
              `chaos: ${actions}; heap after warm-up ${mb(heapBefore)}, at the end ${mb(heapAfter)} ` +
              `(${((heapAfter / heapBefore - 1) * 100).toFixed(1)} %); errors: ${errors}`
          )

          assert.deepStrictEqual(figures.untyped, [], "every failure was typed")
          assert.strictEqual(figures.hung, 0, `no operation took longer than ${Duration.format(OP_BOUND)}`)
          assert.deepStrictEqual(figures.chaosFailures, [], "every chaos action ran")
          assert.isTrue(restarted, "the server was restarted once")
          for (const kind of ["terminate", "reset", "latency", "killOne", "restart"]) {
            assert.isAtLeast(figures.chaos.get(kind) ?? 0, 1, `chaos ran ${kind}`)
          }
          assert.isAbove(figures.ok.pool, 0, "transfers through Pool.transaction succeeded")
          assert.isAbove(figures.ok.sql, 0, "transfers through the SqlClient succeeded")
          assert.isAtMost(heapAfter, heapBefore * 1.2, "the heap after GC is within 20 % of its warm-up value")
        }),
      // the load, the bound on the last operations, the checks
      (SOAK_SECONDS + 90) * 1000
    )
  }
)
