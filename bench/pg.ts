/**
 * The PostgreSQL benchmark: `npm run bench:pg --` or `npx tsx bench/bundle.ts bench/pg.ts [--quick] [--json] [--docs] [--rounds N] [--subjects a,b]
 * [--scenarios 64/8,256/8] [--queries "SELECT 1"]`.
 *
 * Starts a throwaway PostgreSQL 15 cluster (`test/utils/postgres.ts`) and compares, for `SELECT 1` and a primary-key
 * select on a table it creates, N callers over M connections (8/8, 64/8, 256/8): effect-reservoir with the `Pg`
 * driver, `pg.Pool`, Effect's own `Pool` over `pg.Client`s, and two no-pool ceilings (plain and wrapped in Effect).
 * A diagnostic subject runs our `Pg` driver on bare connections (no pool) to tell driver cost from pool cost. The `sql/`
 * subjects are `@effect/sql`'s `SqlClient` as a program uses it (statements written with the `sql` template): ours
 * (`effect-reservoir/Sql/Pg`) and `@effect/sql-pg`'s, on `SELECT 1` and a 10-row select (`--subjects sql/` runs both).
 *
 * Every subject runs all N callers. The ceilings have no pool: M `pg.Client`s, caller i bound to client i mod M for
 * the whole run, its queries serialised on that client in arrival order. At N = M that is one client per caller, the
 * issue's "direct pg.Client per caller"; at N > M it is N/M callers sharing one client serially, the best case a pool
 * could reach (no checkout, no hand-off, perfectly balanced static assignment).
 *
 * Per scenario and query, every subject's connections are opened once and kept open; many short rounds run the subjects
 * one after another in one process, rotated each round. A target is judged on the median of its per-round ratios (the
 * two subjects of a round measured seconds apart), which cancels the slow drift of a shared machine. Each
 * measurement has a deadline: a subject that hangs is reported (with the pool's stats when it is ours) and the process
 * exits, which stops the cluster (the harness's exit hook). SIGINT / SIGTERM exit the same way.
 */
import * as Reactivity from "@effect/experimental/Reactivity"
import * as EffectPgClient from "@effect/sql-pg/PgClient"
import type * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as EPool from "effect/Pool"
import * as Scope from "effect/Scope"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import pg from "pg"
import { type ConnectionRecord, standalone } from "../src/ConnectionRecord.js"
import * as Pg from "../src/Driver/Pg.js"
import * as Policy from "../src/Policy.js"
import * as RPool from "../src/Pool.js"
import * as SqlPg from "../src/Sql/Pg.js"
import * as Postgres from "../test/utils/postgres.js"
import { json, option, quick, writeDocs } from "./cli.js"
import { Handoff } from "./handoff.js"
import { resultsDir, root } from "./paths.js"
import { pgSectionMarkers, versionOf } from "./report.js"

const warmupMs = quick ? 150 : 100
const measureMs = Number(option("--measure") ?? (quick ? 400 : 500))
/**
 * Rounds: in each, every subject of a scenario runs once, seconds apart from the others, on connections kept open
 * across rounds. Many short rounds, each giving a ratio of two subjects measured moments apart, decide a target
 * better on a shared machine than a few long ones (noise there drifts over seconds to minutes).
 */
const rounds = Number(option("--rounds") ?? (quick ? 2 : 20))
/** Warm-up of every subject once, before the first measurement, so JIT tiers do not favour whoever runs last. */
const firstWarmupMs = quick ? 400 : 1000
/** A measurement that has not finished this long after its window closed is a hang. */
const hangMs = 20_000
const say = (line: string) => (json ? process.stderr : process.stdout).write(line + "\n")

process.once("SIGINT", () => process.exit(130))
process.once("SIGTERM", () => process.exit(143))

const allScenarios = [{ n: 8, m: 8 }, { n: 64, m: 8 }, { n: 256, m: 8 }]
/** `--scenarios 64/8,256/8` runs only those (for profiling one case); the default is all three. */
const chosenScenarios = option("--scenarios")?.split(",")
const scenarios = chosenScenarios === undefined
  ? allScenarios
  : allScenarios.filter((s) => chosenScenarios.includes(`${s.n}/${s.m}`))
/**
 * A query: its text and parameters for the subjects that take SQL text, and the same statement written with the `sql`
 * template for the `sql/` subjects (compiled per statement to the same text and parameters). `by` says which subjects
 * run it.
 */
interface Query {
  readonly name: string
  readonly sql: string
  readonly params: () => Array<unknown>
  readonly template: (sql: SqlClient.SqlClient, params: ReadonlyArray<unknown>) => Effect.Effect<unknown, unknown>
  readonly by: (subject: SubjectName) => boolean
}
const isSqlSubject = (subject: SubjectName) => subject.startsWith("sql/")
const allQueries: ReadonlyArray<Query> = [
  {
    name: "SELECT 1",
    sql: "SELECT 1",
    params: () => [],
    template: (sql) => sql`SELECT 1`,
    by: () => true
  },
  {
    name: "pk select",
    sql: "SELECT v FROM bench_kv WHERE id = $1",
    params: () => [1 + Math.floor(Math.random() * 1000)],
    template: (sql, [id]) => sql`SELECT v FROM bench_kv WHERE id = ${id}`,
    by: (subject) => !isSqlSubject(subject)
  },
  {
    // the `sql/` subjects' second query (issue 13), with the pool and pg.Pool beside them to show what the template
    // and the client around it cost over the raw path
    name: "10 rows",
    sql: "SELECT id, v FROM bench_kv WHERE id >= $1 AND id < $2",
    params: () => {
      const from = 1 + Math.floor(Math.random() * 991)
      return [from, from + 10]
    },
    template: (sql, [from, to]) => sql`SELECT id, v FROM bench_kv WHERE id >= ${from} AND id < ${to}`,
    by: (subject) => isSqlSubject(subject) || subject === "effect-reservoir+pg" || subject === "pg.Pool"
  }
]
/** `--queries "SELECT 1"` runs only that query (names separated by commas); the default is all three. */
const chosenQueries = option("--queries")?.split(",")
const queries = chosenQueries === undefined ? allQueries : allQueries.filter((q) => chosenQueries.includes(q.name))
type Scenario = { readonly n: number; readonly m: number }
/** A measurement: warm-up, then the window whose queries count. */
type Window = { readonly warmupMs: number; readonly measureMs: number }
const allSubjects = [
  "effect-reservoir+pg",
  "effect-reservoir+pg use",
  "pg.Pool",
  "effect/Pool+pg",
  "ceiling/pg.Client",
  "ceiling/effect+pg.Client",
  "ceiling/effect+pg.Client, masked",
  "floor/handoff-masked+pg.Client",
  "diag/Pg driver, no pool",
  "diag/effect-reservoir+pg, no reset",
  "sql/effect-reservoir",
  "sql/effect-sql-pg"
] as const
type SubjectName = typeof allSubjects[number]
const chosen = option("--subjects")?.split(",")
/** `--subjects` names subjects exactly, or by the start of their names when no subject has that exact name. */
const subjects = chosen === undefined ?
  [...allSubjects] :
  allSubjects.filter((s) =>
    chosen.some((c) => {
      const name = c.trim()
      return name === s || (name !== "" && s.startsWith(name) && !allSubjects.some((x) => x === name))
    })
  )
/**
 * Whether a subject runs a scenario's query: the diagnostics only where they need no queue of their own (one caller
 * per connection), and each subject only the queries that name it.
 */
const applies = (subject: SubjectName, n: number, m: number, query: Query) =>
  (!subject.startsWith("diag/") || n === m) && query.by(subject)

interface Result {
  readonly subject: string
  readonly query: string
  readonly n: number
  readonly m: number
  readonly qps: number
  readonly p50Us: number
  readonly p99Us: number
  readonly maxUs: number
  /** Client CPU (user + system of this process) per query, µs: the driver's and pool's cost, not the server's. */
  readonly cpuUsPerQuery: number
}

/**
 * A subject: `caller` is the caller's index (0..N-1), for the ceilings' static assignment. Exactly one of `once`
 * (promise subjects, N async loops) and `effect` (Effect subjects, N fibers) is set.
 */
interface Runner {
  readonly once?: (caller: number, sql: string, params: Array<unknown>) => Promise<unknown>
  readonly effect?: (caller: number, sql: string, params: Array<unknown>) => Effect.Effect<unknown, unknown>
  /** Something to show when the measurement hangs. */
  readonly state?: () => Promise<string>
  readonly close: () => Promise<void>
}

/**
 * One `pg.Client` serialised for the callers bound to it: a query runs at once when the client is free, else waits
 * its turn in arrival order (what `pg.Client` does internally, without its deprecated concurrent `query` path).
 */
class Lane {
  private busy = false
  private readonly waiting: Array<() => void> = []
  constructor(readonly client: pg.Client) {}
  private readonly next = () => {
    const resume = this.waiting.shift()
    if (resume === undefined) this.busy = false
    else resume()
  }
  query(sql: string, params: Array<unknown>): Promise<unknown> {
    if (!this.busy) {
      this.busy = true
      return this.run(sql, params)
    }
    return new Promise<void>((resume) => this.waiting.push(resume)).then(() => this.run(sql, params))
  }
  private run(sql: string, params: Array<unknown>): Promise<unknown> {
    const query = params.length === 0 ? this.client.query(sql) : this.client.query(sql, params)
    query.then(this.next, this.next)
    return query
  }
}

/**
 * N callers loop until the window closes. qps counts queries that completed inside the window; latency (request to
 * result) is recorded for every query that overlaps it (completed after it opened, started before it closed), so a
 * caller starved across the whole window still shows up in p99 / max with its full wait.
 */
const measure = async (
  runner: Runner,
  n: number,
  query: Query,
  window: Window
) => {
  const latencies: Array<number> = []
  const start = performance.now()
  const open = start + window.warmupMs
  const end = open + window.measureMs
  let count = 0
  let cpu0: NodeJS.CpuUsage | undefined
  let cpuCount0 = 0
  let cpu: NodeJS.CpuUsage | undefined
  let cpuCount = 0
  const record = (t0: number) => {
    const t1 = performance.now()
    if (cpu0 === undefined && t1 >= open) {
      cpu0 = process.cpuUsage()
      cpuCount0 = count
    }
    if (t1 >= open && t1 <= end) count++
    if (cpu === undefined && t1 > end) {
      cpu = process.cpuUsage(cpu0)
      cpuCount = count - cpuCount0
    }
    if (t1 >= open && t0 < end) latencies.push((t1 - t0) * 1000)
  }
  if (runner.once !== undefined) {
    const once = runner.once
    const loop = async (caller: number) => {
      while (performance.now() < end) {
        const t0 = performance.now()
        await once(caller, query.sql, query.params())
        record(t0)
      }
    }
    await Promise.all(Array.from({ length: n }, (_, i) => loop(i)))
  } else {
    const run = runner.effect!
    const loop = (caller: number): Effect.Effect<void, unknown> =>
      Effect.suspend(() => {
        if (performance.now() >= end) return Effect.void
        const t0 = performance.now()
        return Effect.zipRight(Effect.tap(run(caller, query.sql, query.params()), () => record(t0)), loop(caller))
      })
    await Effect.runPromise(Effect.forEach(Array.from({ length: n }, (_, i) => i), loop, {
      concurrency: "unbounded",
      discard: true
    }))
  }
  if (cpu === undefined) {
    cpu = process.cpuUsage(cpu0)
    cpuCount = count - cpuCount0
  }
  latencies.sort((a, b) => a - b)
  const q = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] ?? NaN
  return {
    qps: count / (window.measureMs / 1000),
    p50Us: q(0.5),
    p99Us: q(0.99),
    maxUs: latencies.at(-1) ?? NaN,
    cpuUsPerQuery: cpuCount > 0 ? (cpu.user + cpu.system) / cpuCount : NaN
  }
}

const connectClients = async (config: pg.ClientConfig, m: number): Promise<Array<pg.Client>> => {
  const clients: Array<pg.Client> = []
  try {
    for (let i = 0; i < m; i++) {
      const client = new pg.Client(config)
      client.on("error", () => undefined)
      clients.push(client)
      await client.connect()
    }
    return clients
  } catch (error) {
    await Promise.all(clients.map((c) => c.end().catch(() => undefined)))
    throw error
  }
}

const endAll = (clients: ReadonlyArray<pg.Client>): Promise<void> =>
  Promise.all(clients.map((c) => c.end().catch(() => undefined))).then(() => undefined)

const bareRecord = (id: number): ConnectionRecord => standalone("bench-pg-driver", id)

/**
 * An `@effect/sql` client as a subject: built by `make` in a scope of its own (Reactivity provided, as the clients'
 * layers do), its M connections open before the window, each statement the query written with the `sql` template.
 */
const sqlRunner = async <C extends SqlClient.SqlClient>(
  make: Effect.Effect<C, unknown, Scope.Scope | Reactivity.Reactivity>,
  query: Query,
  open: (client: C) => Promise<void>,
  state?: (client: C) => Promise<string>
): Promise<Runner> => {
  const scope = Effect.runSync(Scope.make())
  const close = () => Effect.runPromise(Scope.close(scope, Exit.void))
  try {
    const client = await Effect.runPromise(Scope.extend(Effect.provide(make, Reactivity.layer), scope))
    await open(client)
    return {
      effect: (_caller, _sql, params) => query.template(client, params),
      ...(state === undefined ? {} : { state: () => state(client) }),
      close
    }
  } catch (error) {
    await close()
    throw error
  }
}

const makeRunner = async (
  name: SubjectName,
  server: Postgres.PostgresServer,
  m: number,
  query: Query
): Promise<Runner> => {
  const clientConfig: pg.ClientConfig = {
    host: server.host,
    port: server.port,
    user: server.user,
    database: server.database,
    application_name: "bench-pg"
  }
  switch (name) {
    case "effect-reservoir+pg":
    case "effect-reservoir+pg use":
    case "diag/effect-reservoir+pg, no reset": {
      // the safe settings a database pool should run with: the defaults (fair FIFO waiter queue, interruption-safe
      // checkout, metrics) and reset on return by rollback (which costs no round trip while the session is idle);
      // the diagnostic leaves the reset out, to show what it costs
      const driver = Pg.driver({ ...server.options, applicationName: "bench-reservoir" })
      const scope = Effect.runSync(Scope.make())
      const policies = name === "diag/effect-reservoir+pg, no reset" ? [] : [Policy.resetOnReturn("rollback")]
      const pool = await Effect.runPromise(Scope.extend(
        RPool.make({ driver, size: m, maxOverflow: 0, min: m, name: "bench-pg", policies }),
        scope
      ))
      for (let i = 0; i < 500 && (await Effect.runPromise(RPool.stats(pool))).open < m; i++) {
        await new Promise((r) => setTimeout(r, 10))
      }
      return {
        // `Pool.query` (a waiting statement starts at hand-off: one wait), or `Pool.use` around the driver's query
        // (the caller wakes for the connection, then waits for the result)
        effect: name === "effect-reservoir+pg" ?
          (_caller, sql, params) => RPool.query(pool, sql, params) :
          (_caller, sql, params) => RPool.use(pool, (c) => driver.query(c, sql, params)),
        state: () => Effect.runPromise(RPool.status(pool)),
        close: () => Effect.runPromise(Scope.close(scope, Exit.void))
      }
    }
    case "pg.Pool": {
      const pool = new pg.Pool({ ...clientConfig, max: m, min: m })
      pool.on("error", () => undefined)
      await Promise.all(Array.from({ length: m }, () => pool.query("SELECT 1")))
      return {
        once: (_caller, sql, params) => params.length === 0 ? pool.query(sql) : pool.query(sql, params),
        state: async () => `total ${pool.totalCount}, idle ${pool.idleCount}, waiting ${pool.waitingCount}`,
        close: () => pool.end()
      }
    }
    case "effect/Pool+pg": {
      const scope = Effect.runSync(Scope.make())
      const acquire = Effect.acquireRelease(
        Effect.tryPromise(() => connectClients(clientConfig, 1).then((clients) => clients[0])),
        (client) => Effect.promise(() => client.end().catch(() => undefined))
      )
      const pool = await Effect.runPromise(Scope.extend(EPool.make({ acquire, size: m }), scope))
      // warm: every connection open before the window
      await Effect.runPromise(Effect.scoped(Effect.forEach(Array.from({ length: m }), () => EPool.get(pool), {
        concurrency: "unbounded",
        discard: true
      })))
      return {
        effect: (_caller, sql, params) =>
          Effect.scoped(
            Effect.flatMap(
              EPool.get(pool),
              (client) => Effect.tryPromise(() => params.length === 0 ? client.query(sql) : client.query(sql, params))
            )
          ),
        close: () => Effect.runPromise(Scope.close(scope, Exit.void))
      }
    }
    case "ceiling/pg.Client":
    case "ceiling/effect+pg.Client":
    case "ceiling/effect+pg.Client, masked": {
      const clients = await connectClients(clientConfig, m)
      const lanes = clients.map((client) => new Lane(client))
      const close = () => endAll(clients)
      if (name === "ceiling/pg.Client") {
        return { once: (caller, sql, params) => lanes[caller % m].query(sql, params), close }
      }
      if (name === "ceiling/effect+pg.Client") {
        return {
          effect: (caller, sql, params) => {
            const lane = lanes[caller % m]
            return Effect.tryPromise(() => lane.query(sql, params))
          },
          close
        }
      }
      // what interruption safety alone costs in Effect, as any pool must pay it: the statement runs under `restore`
      // inside an uninterruptible mask, with one clean-up for however it ends (a pool returns the connection there)
      return {
        effect: (caller, sql, params) =>
          Effect.uninterruptibleMask((restore) => {
            const lane = lanes[caller % m]
            return Effect.matchCauseEffect(restore(Effect.tryPromise(() => lane.query(sql, params))), {
              onSuccess: Effect.succeed,
              onFailure: Effect.failCause
            })
          }),
        close
      }
    }
    case "floor/handoff-masked+pg.Client": {
      // Effect's floor for a fair, interruption-safe pool over pg: M clients behind the FIFO hand-off of the in-memory
      // benchmark's floors (a returned client goes to the oldest parked caller), the statement under `restore` in an
      // uninterruptible mask, one clean-up that gives the client back. A free client is taken from a stack: a token
      // handed to a parked caller leaves one client on it, reserved for that caller until it resumes.
      const clients = await connectClients(clientConfig, m)
      const free = clients.map((client) => new Lane(client))
      const handoff = new Handoff(m)
      return {
        effect: (_caller, sql, params) =>
          Effect.uninterruptibleMask((restore) => {
            let lane: Lane | undefined
            const giveBack = Effect.suspend(() => {
              if (lane === undefined) return Effect.void
              free.push(lane)
              return handoff.give
            })
            return Effect.matchCauseEffect(
              restore(Effect.flatMap(handoff.take, () => {
                lane = free.pop()!
                return Effect.tryPromise(() => lane!.query(sql, params))
              })),
              {
                onSuccess: (a) => Effect.as(giveBack, a),
                onFailure: (cause) => Effect.zipRight(giveBack, Effect.failCause(cause))
              }
            )
          }),
        close: () => endAll(clients)
      }
    }
    case "sql/effect-reservoir": {
      // the options of `sql/effect-sql-pg` below, word for word (a program moves by changing the import); the rest
      // is the client's defaults, a driver pool's policies among them (recycle, prePing, resetOnReturn("rollback"))
      return sqlRunner(
        SqlPg.make({
          host: server.host,
          port: server.port,
          username: server.user,
          database: server.database,
          applicationName: "bench-sql-reservoir",
          maxConnections: m,
          minConnections: m
        }),
        query,
        // the pool opens its `min` connections in the background: wait until all M are open
        async (client) => {
          for (let i = 0; i < 500 && (await Effect.runPromise(RPool.stats(client.pool))).open < m; i++) {
            await new Promise((r) => setTimeout(r, 10))
          }
        },
        (client) => Effect.runPromise(RPool.status(client.pool))
      )
    }
    case "sql/effect-sql-pg": {
      // the same options as `sql/effect-reservoir` (`maxConnections`, `minConnections`)
      return sqlRunner(
        EffectPgClient.make({
          host: server.host,
          port: server.port,
          username: server.user,
          database: server.database,
          applicationName: "bench-effect-sql-pg",
          maxConnections: m,
          minConnections: m
        }),
        query,
        // pg.Pool opens a client per concurrent checkout while it is below its size: M statements at once open M
        (client) =>
          Effect.runPromise(
            Effect.forEach(Array.from({ length: m }), () => client`SELECT 1`, {
              concurrency: "unbounded",
              discard: true
            })
          )
      )
    }
    case "diag/Pg driver, no pool": {
      const driver = Pg.driver({ ...server.options, applicationName: "bench-pg-driver" })
      const scope = Effect.runSync(Scope.make())
      const connections = await Effect.runPromise(Scope.extend(
        Effect.forEach(
          Array.from({ length: m }, (_, i) => i),
          (i) => driver.connect({ record: bareRecord(i), poolName: "bench-pg-driver", invalidate: () => undefined })
        ),
        scope
      ))
      return {
        effect: (caller, sql, params) => driver.query(connections[caller % m], sql, params),
        close: () => Effect.runPromise(Scope.close(scope, Exit.void))
      }
    }
  }
}

const withDeadline = <A>(label: string, ms: number, promise: Promise<A>, state?: () => Promise<string>) => {
  let timer: NodeJS.Timeout | undefined
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(async () => {
      const detail = state === undefined ? "" : await state().then((s) => ` (${s})`, () => "")
      reject(new Error(`${label} did not finish within ${ms} ms${detail}`))
    }, ms)
  })
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer))
}

const labelOf = (subject: SubjectName, s: Scenario, query: Query) => `${subject} ${s.n}/${s.m} ${query.name}`

/** The key of a subject's results, one per round, in `runs`. */
const runKey = (subject: string, query: string, n: number, m: number) => `${subject}|${query}|${n}|${m}`

/** Each step of a measurement under its deadline: set up (connections opened), measure a window, close. */
const setUp = (subject: SubjectName, server: Postgres.PostgresServer, s: Scenario, query: Query) =>
  withDeadline(`${labelOf(subject, s, query)}: setup`, hangMs, makeRunner(subject, server, s.m, query))

const measureOn = (runner: Runner, subject: SubjectName, s: Scenario, query: Query, window: Window) =>
  withDeadline(
    `${labelOf(subject, s, query)}: measurement`,
    window.warmupMs + window.measureMs + hangMs,
    measure(runner, s.n, query, window),
    runner.state
  )

const tearDown = (runner: Runner, subject: SubjectName, s: Scenario, query: Query) =>
  withDeadline(`${labelOf(subject, s, query)}: close`, hangMs, runner.close())

/** Sets up a subject, measures it once and closes it (the first warm-up). */
const runOnce = async (
  subject: SubjectName,
  server: Postgres.PostgresServer,
  s: Scenario,
  query: Query,
  window: Window
) => {
  const runner = await setUp(subject, server, s, query)
  try {
    return await measureOn(runner, subject, s, query, window)
  } finally {
    await tearDown(runner, subject, s, query)
  }
}

const median = (xs: ReadonlyArray<number>) => {
  const s = xs.filter((x) => !Number.isNaN(x)).sort((a, b) => a - b)
  return s.length === 0 ? NaN : s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2
}

const fmt = (x: number) => Number.isFinite(x) ? x.toLocaleString("en-US", { maximumFractionDigits: 0 }) : "—"

const main = Effect.gen(function*() {
  const startedAt = Date.now()
  const server = yield* Postgres.make
  yield* server.query("CREATE TABLE bench_kv (id int PRIMARY KEY, v text NOT NULL)")
  yield* server.query("INSERT INTO bench_kv SELECT i, md5(i::text) FROM generate_series(1, 1000) AS i")
  yield* server.query("ANALYZE bench_kv")
  const serverVersion = String((yield* server.query("SHOW server_version"))[0]?.["server_version"] ?? "?")
  say(`PostgreSQL ${serverVersion} at ${server.host}:${server.port}`)
  const loadBefore = os.loadavg()[0]
  return yield* Effect.promise(async () => {
    say(`warm-up: every subject at 8/8 SELECT 1 for ${firstWarmupMs} ms`)
    for (const subject of subjects) {
      // at the first scenario and query it runs (8/8 SELECT 1 unless --scenarios / --queries leave them out)
      const first = scenarios.flatMap((s) => queries.map((query) => ({ s, query })))
        .find(({ query, s }) => applies(subject, s.n, s.m, query))
      if (first === undefined) continue
      await runOnce(subject, server, first.s, first.query, { warmupMs: 0, measureMs: firstWarmupMs })
    }
    const runs = new Map<string, Array<Result>>()
    for (const s of scenarios) {
      for (const query of queries) {
        // every subject of the scenario set up once and kept open, so the rounds interleave them closely
        const live = subjects.filter((subject) => applies(subject, s.n, s.m, query))
        if (live.length === 0) continue
        const runners = new Map<SubjectName, Runner>()
        try {
          for (const subject of live) runners.set(subject, await setUp(subject, server, s, query))
          for (let round = 0; round < rounds; round++) {
            const order = live.map((_, i) => live[(i + round) % live.length])
            const line: Array<string> = []
            for (const subject of order) {
              const result = await measureOn(runners.get(subject)!, subject, s, query, { warmupMs, measureMs })
              line.push(`${subject} ${fmt(result.qps)} (${fmt(result.cpuUsPerQuery)} µs)`)
              const key = runKey(subject, query.name, s.n, s.m)
              const list = runs.get(key) ?? []
              runs.set(key, list)
              list.push({ subject, query: query.name, n: s.n, m: s.m, ...result })
            }
            say(
              `  ${s.n}/${s.m} ${query.name} round ${round + 1}/${rounds}, qps (client CPU per query): ${
                line.join(", ")
              }`
            )
          }
        } finally {
          for (const [subject, runner] of runners) await tearDown(runner, subject, s, query)
        }
      }
    }
    return {
      runs,
      meta: {
        date: new Date(startedAt).toISOString(),
        cpu: os.cpus()[0]?.model.trim() ?? "?",
        cores: os.cpus().length,
        node: process.version,
        platform: `${os.platform()} ${os.release()}`,
        loadavg: [loadBefore, os.loadavg()[0]],
        postgres: serverVersion,
        versions: {
          effect: versionOf("effect"),
          pg: versionOf("pg"),
          "pg-pool": versionOf("pg-pool"),
          "@effect/sql": versionOf("@effect/sql"),
          "@effect/sql-pg": versionOf("@effect/sql-pg")
        },
        rounds,
        warmupMs,
        measureMs,
        quick,
        elapsedSeconds: (Date.now() - startedAt) / 1000
      }
    }
  })
})

interface Target {
  readonly ok: boolean | undefined
  readonly line: string
}

/** A ratio of two subjects: the median of their per-round ratios, with the spread of those ratios. */
interface Paired {
  readonly median: number
  readonly min: number
  readonly max: number
  readonly rounds: number
}

const checkTargets = (
  results: ReadonlyArray<Result>,
  runs: ReadonlyMap<string, ReadonlyArray<Result>>
): Array<Target> => {
  const find = (subject: string, query: string, n: number) =>
    results.find((r) => r.subject === subject && r.query === query && r.n === n)
  const roundsOf = (r: Result) => runs.get(runKey(r.subject, r.query, r.n, r.m)) ?? []
  /**
   * `a` over `b` as a target judges it: within each round (the two subjects measured seconds apart on the same
   * connections and server), then the median across rounds. Slow drift of a shared machine moves both sides of a
   * round alike and cancels; the per-round spread shows what is left.
   */
  const paired = (a: Result, b: Result): Paired => {
    const bs = roundsOf(b)
    const xs = roundsOf(a).map((r, i) => r.qps / (bs[i]?.qps ?? NaN)).filter(Number.isFinite)
    return { median: median(xs), min: Math.min(...xs), max: Math.max(...xs), rounds: xs.length }
  }
  /** The same for p99 latency, `a`'s over `b`'s: below 1 is a shorter wait. */
  const pairedP99 = (a: Result, b: Result): Paired => {
    const bs = roundsOf(b)
    const xs = roundsOf(a).map((r, i) => r.p99Us / (bs[i]?.p99Us ?? NaN)).filter(Number.isFinite)
    return { median: median(xs), min: Math.min(...xs), max: Math.max(...xs), rounds: xs.length }
  }
  const show = (p: Paired) =>
    `${p.median.toFixed(2)}×` +
    (p.rounds < 2 ? "" : ` (median of ${p.rounds} rounds, per round ${p.min.toFixed(2)}–${p.max.toFixed(2)}×)`)
  const targets: Array<Target> = []
  for (const s of scenarios) {
    const ours = find("effect-reservoir+pg", "SELECT 1", s.n)
    if (ours === undefined) continue
    const ceiling = find("ceiling/effect+pg.Client", "SELECT 1", s.n)
    const masked = find("ceiling/effect+pg.Client, masked", "SELECT 1", s.n)
    const fair = find("floor/handoff-masked+pg.Client", "SELECT 1", s.n)
    const theirs = find("effect/Pool+pg", "SELECT 1", s.n)
    const pgPool = find("pg.Pool", "SELECT 1", s.n)
    const need = s.n === s.m ? 0.95 : 0.9
    const at = `${s.n}/${s.m} SELECT 1`
    if (ceiling !== undefined) {
      const a = paired(ours, ceiling)
      targets.push({
        ok: a.median >= need,
        line: `${at} ≥ ${need}× the Effect direct-client ceiling: ${show(a)}; medians ${fmt(ours.qps)} / ${
          fmt(ceiling.qps)
        } qps`
      })
      if (masked !== undefined) {
        targets.push({
          ok: undefined,
          line: `${at}, Effect's floor for the same measure: the ceiling with only interruption safety added reaches ` +
            `${show(paired(masked, ceiling))} of the ceiling; we reach ${show(paired(ours, masked))} of it`
        })
      }
      if (fair !== undefined) {
        targets.push({
          ok: undefined,
          line: `${at}, Effect's floor for a fair pool: the FIFO hand-off with interruption safety over the same ` +
            `clients reaches ${show(paired(fair, ceiling))} of the ceiling; we reach ${show(paired(ours, fair))} of it`
        })
      }
    }
    if (theirs !== undefined) {
      const b = paired(ours, theirs)
      targets.push({
        ok: b.median >= 1.5,
        line: `${at} ≥ 1.5× effect/Pool: ${show(b)}; medians ${fmt(ours.qps)} / ${fmt(theirs.qps)} qps` +
          (fair === undefined ? "" : `; Effect's fair floor reaches ${show(paired(fair, theirs))} of effect/Pool`)
      })
    }
    if (pgPool !== undefined) {
      // issue 13: the pool's Pg path (`Pool.query`, one wait per statement) at least raw pg.Pool's throughput
      const c = paired(ours, pgPool)
      targets.push({
        ok: c.median >= 1,
        line: `${at} Pool.query ≥ 1.0× pg.Pool: ${show(c)}; medians ${fmt(ours.qps)} / ${fmt(pgPool.qps)} qps, ` +
          `client CPU ${fmt(ours.cpuUsPerQuery)} / ${fmt(pgPool.cpuUsPerQuery)} µs per query`
      })
      if (ceiling !== undefined) {
        // what Effect itself reaches over pg.Pool with no pool at all: each caller bound to its own client
        targets.push({
          ok: undefined,
          line: `${at}, Effect's floor for this target: the Effect direct-client ceiling (no pool, no wait) reaches ` +
            `${show(paired(ceiling, pgPool))} of pg.Pool` +
            (fair === undefined ? "" : `, Effect's fair-pool floor ${show(paired(fair, pgPool))}`) +
            `; Pool.query reaches ${show(paired(ours, ceiling))} of the ceiling`
        })
      }
      const use = find("effect-reservoir+pg use", "SELECT 1", s.n)
      if (use !== undefined) {
        targets.push({
          ok: undefined,
          line: `${at} Pool.use + query (two waits) vs pg.Pool: ${show(paired(use, pgPool))}; Pool.query over ` +
            `Pool.use: ${show(paired(ours, use))}; client CPU ${fmt(use.cpuUsPerQuery)} µs per query`
        })
      }
    }
  }
  // issue 13: our `SqlClient` against @effect/sql-pg's, both through the `sql` template, on every query they run
  for (const s of scenarios) {
    for (const query of queries) {
      const ours = find("sql/effect-reservoir", query.name, s.n)
      const theirs = find("sql/effect-sql-pg", query.name, s.n)
      const at = `${s.n}/${s.m} ${query.name}`
      if (ours !== undefined && theirs !== undefined) {
        const r = paired(ours, theirs)
        targets.push({
          ok: r.median >= 1,
          line: `${at} sql/effect-reservoir vs sql/effect-sql-pg ≥ 1.0×: ${show(r)}; medians ${fmt(ours.qps)} / ${
            fmt(theirs.qps)
          } qps, client CPU ${fmt(ours.cpuUsPerQuery)} / ${fmt(theirs.cpuUsPerQuery)} µs per query`
        })
        if (s.n === 256) {
          const w = pairedP99(ours, theirs)
          targets.push({
            ok: w.median <= 1,
            line: `${at} p99 wait, sql/effect-reservoir no worse than sql/effect-sql-pg (ours over theirs ≤ 1.0×): ${
              show(w)
            }; medians ${fmt(ours.p99Us)} / ${fmt(theirs.p99Us)} µs, max ${fmt(ours.maxUs)} / ${fmt(theirs.maxUs)} µs`
          })
        }
      }
      // what the `sql` template and the client around it cost over each client's own raw path
      const raw = find("effect-reservoir+pg", query.name, s.n)
      const pgPool = find("pg.Pool", query.name, s.n)
      const over = (a: Result | undefined, b: Result | undefined, what: string) => {
        if (a !== undefined && b !== undefined) {
          targets.push({ ok: undefined, line: `${at} ${what}: ${show(paired(a, b))}` })
        }
      }
      over(ours, raw, "sql/effect-reservoir over effect-reservoir+pg (the template and client over the raw pool)")
      over(theirs, pgPool, "sql/effect-sql-pg over pg.Pool (the template and client over the raw pool)")
    }
  }
  return targets
}

const pgSectionStart = pgSectionMarkers.start
const pgSectionEnd = pgSectionMarkers.end

/** Replaces (or appends) the PostgreSQL section of `docs/benchmarks.md`, leaving the rest of the page alone. */
const updateDocs = (section: string) => {
  const file = path.join(root, "docs", "benchmarks.md")
  const page = fs.existsSync(file) ? fs.readFileSync(file, "utf8") : "# Benchmarks\n"
  const block = `${pgSectionStart}\n${section.trim()}\n${pgSectionEnd}`
  const i = page.indexOf(pgSectionStart)
  const j = page.indexOf(pgSectionEnd)
  const next = i >= 0 && j > i ?
    page.slice(0, i) + block + page.slice(j + pgSectionEnd.length) :
    page.trimEnd() + "\n\n" + block + "\n"
  fs.writeFileSync(file, next)
}

/** The PostgreSQL section of `docs/benchmarks.md`: method, then the run. */
const pgDocs = (runMarkdown: string) =>
  `## PostgreSQL (\`npm run bench:pg\`)

Real round trips to a throwaway PostgreSQL 15 cluster started by the test harness (\`test/utils/postgres.ts\`:
\`initdb\` into a temporary directory, \`fsync=off\`, loopback TCP, stopped and removed when the run ends, also when it
fails or is interrupted). \`--quick\` takes about a minute (2 rounds of 0.4 s per subject); the default, 20 rounds of
0.5 s (after 0.1 s of warm-up each: connections stay open and the code is warm), about 10 minutes.

- **Queries**: \`SELECT 1\`, and \`SELECT v FROM bench_kv WHERE id = $1\` on a 1,000-row table with a primary key,
  random id per query (parameterised, so it goes through the extended protocol); and \`SELECT id, v FROM bench_kv
  WHERE id >= $1 AND id < $2\`, 10 rows from a random start, run by the \`sql/\` subjects (which do not run the
  one-row select), \`effect-reservoir+pg\` and \`pg.Pool\`.
- **Subjects**, each with M connections opened before the window:
  - \`effect-reservoir+pg\`: \`Pool.use(pool, (c) => driver.query(c, sql, params))\` with the \`Pg\` driver,
    \`Pool.make({ driver, size: M, maxOverflow: 0, min: M, policies: [Policy.resetOnReturn("rollback")] })\`: the
    settings a database pool should run with. Defaults on: the fair FIFO waiter queue, interruption-safe checkout
    (and the driver's check for a statement still in flight on every return), metrics; and reset on return by
    rollback, which sends no \`ROLLBACK\` while the server reports the session idle (both queries run in
    autocommit), but runs the policy on every return.
  - \`pg.Pool\`: \`new pg.Pool({ max: M, min: M })\`, \`pool.query(sql, params)\`.
  - \`effect/Pool+pg\`: Effect's \`Pool.make({ acquire, size: M })\` over \`pg.Client\`s,
    \`Effect.scoped(Effect.flatMap(Pool.get(pool), (c) => Effect.tryPromise(() => c.query(sql, params))))\`.
  - \`ceiling/pg.Client\` and \`ceiling/effect+pg.Client\`: **no pool**. M \`pg.Client\`s; caller i is bound to client
    i mod M for the whole run and its queries are serialised on that client in arrival order. At 8/8 that is exactly
    one direct client per caller. At 64/8 and 256/8 a client per caller would need N connections, which is not the
    comparison the targets mean; so the ceiling is M clients each shared serially by N/M callers: the best case a
    pool of M could reach (no checkout, no hand-off, a perfectly balanced static assignment). The Effect ceiling is
    the same with each query wrapped in \`Effect.tryPromise\` and the callers as fibers.
  - \`ceiling/effect+pg.Client, masked\`: the Effect ceiling with only what interruption safety costs in Effect
    added, as any Effect pool pays it: the statement runs under \`restore\` inside \`Effect.uninterruptibleMask\`,
    with one \`matchCauseEffect\` clean-up. The floor beside the targets.
  - \`floor/handoff-masked+pg.Client\`: Effect's floor for a *fair* pool over the same clients: the FIFO hand-off of
    the in-memory floors (\`bench/handoff.ts\`: a returned client goes to the oldest parked caller, no barging) with
    the same interruption safety, and nothing else (no timeouts, no metrics, no checks). Where callers outnumber
    connections, a fair pool's caller parks twice per query: once for a connection, once for the result; the
    ceilings' callers park once, since they queue inside the client. This floor shows what that costs in Effect.
  - \`diag/Pg driver, no pool\` (8/8 only): our \`Pg\` driver's \`query\` on M bare driver connections, one per
    caller, no pool. Diagnostic: it separates the driver's cost from the pool's.
  - \`diag/effect-reservoir+pg, no reset\` (8/8 only): \`effect-reservoir+pg\` without the reset policy, to show what
    running a return policy costs.
  - \`sql/effect-reservoir\` and \`sql/effect-sql-pg\`: \`@effect/sql\`'s \`SqlClient\` as a program uses it,
    each statement written with the \`sql\` template (\`\` sql\`SELECT 1\` \`\`,
    \`\` sql\`SELECT id, v FROM bench_kv WHERE id >= \${from} AND id < \${to}\` \`\`) and run outside a
    transaction, so that every statement checks a connection out of the pool and compiles, spans and runs as
    \`@effect/sql\` does. Ours is \`make\` of \`effect-reservoir/Sql/Pg\`, theirs \`PgClient.make\` of
    \`@effect/sql-pg\` (pg.Pool underneath), both from the same options (\`maxConnections: M, minConnections: M\`,
    the rest left at each client's defaults), with \`Reactivity\` provided as their layers do.
- **Compiled, as a user runs it**: \`npm run bench:pg\` bundles \`bench/pg.ts\` with esbuild (\`bench/bundle.ts\`) and runs
  the bundle; every subject, ours and the others, runs from it. Run through \`tsx\` instead, our side measured 36–44
  µs of client CPU per query at 64/8 against 30–32 bundled (tsx keeps function names by wrapping closures in a
  \`__name\` call as they are created, among other costs no user pays), while the ceilings hardly moved.
- **Callers**: N loops of \`query → await result\`, as one \`Effect.forEach\` of N fibers (Effect subjects) or N
  \`async\` loops (promise subjects).
- **Metrics**: qps counts queries completed inside the window. Latency is request to result for every query that
  overlaps the window (finished after it opened, started before it closed), so a caller starved across the whole
  window still counts in p99 and max with its full wait. Client CPU is this process's user + system CPU over the
  window per query (the server's CPU is not in it; on a 2-core machine it competes with the client for the same
  cores, which is why client CPU moves qps).
- **Where the client CPU goes** (\`node --cpu-prof\` on the bundle, read with \`npx tsx bench/cpuprofile.ts\`, whose
  header has the commands; one 8 s window per subject, SELECT 1 at 8/8, measured 2026-12-01): the client is idle
  30–35% of the time (it waits on the server, which shares the 2 cores), and the socket write (\`writeBuffer\`, in
  which the kernel does the loopback TCP work of both ends) takes about 21 µs per query for every subject. All the
  rest, per query: 14.6 µs for the Effect ceiling, 12.2 µs for our bare \`Pg\` driver (it runs statements through
  node-postgres's callback form, with no promise per statement), 14.9 µs for effect-reservoir. So the pool costs about
  2.7 µs per query over its driver, and pool and driver together cost about what
  \`Effect.tryPromise\` over \`client.query\` does (0.3 µs more).
  At 64/8 and 256/8 a fair pool's caller parks twice per query (for a connection, then for the result); the static
  assignment of the ceilings parks once. The \`floor/handoff-masked+pg.Client\` subject measures what that costs in
  Effect with nothing else added.
- **Order and drift**: every subject is warmed up once before the first measurement. Then, per scenario and query,
  every subject's connections are opened once and kept open, and the rounds run the subjects one after another,
  rotated each round, in one process. The machine's noise moves on a scale of seconds (the same subject's client CPU
  per query moved from 50 to 124 µs between neighbouring windows while this was written), so many short rounds beat a
  few long ones: each round gives a ratio of two subjects measured seconds apart.
- **Targets** (pool, SELECT 1): ≥ 0.95× the Effect ceiling at 8/8, ≥ 0.9× at 64/8 and 256/8; ≥ 1.5× Effect's Pool;
  pg.Pool is the aim, reported, not a target. A target is judged on the **median of its per-round ratios** (the
  two subjects of a ratio measured in the same round), shown with the range of those ratios; the table shows each
  subject's median across rounds. Even so, a round's ratio moves by ±20% or more here, and the median of 12 rounds
  moved by ±5% between runs (8/8 ours over the ceiling: 0.90×, 0.92×, then 1.01× over 24 rounds), hence 20 rounds;
  read a target within a few per cent of its threshold as undecided by one run.
- **Targets** (\`sql/\` subjects, issue 13): \`sql/effect-reservoir\` ≥ 1.0× \`sql/effect-sql-pg\` on
  \`SELECT 1\` and the 10-row select at 8/8, 64/8 and 256/8, and at 256/8 a p99 latency (request to result, so the
  wait for a connection is in it) no longer than theirs: the median of the per-round ratios of p99, ours over theirs,
  ≤ 1.0×. Beside them (info) each client over its own raw path (\`effect-reservoir+pg\`, \`pg.Pool\`): what the
  template and the client around it cost.

${
    runMarkdown.replace(/^## PostgreSQL run/m, "### Latest PostgreSQL run").replace(
      /^### PostgreSQL targets/m,
      "#### Targets"
    )
  }`

Effect.runPromise(Effect.scoped(main)).then(({ meta, runs }) => {
  const results: Array<Result> = []
  for (const list of runs.values()) {
    const med = (f: (r: Result) => number) => median(list.map(f))
    results.push({
      ...list[0],
      qps: med((r) => r.qps),
      p50Us: med((r) => r.p50Us),
      p99Us: med((r) => r.p99Us),
      maxUs: med((r) => r.maxUs),
      cpuUsPerQuery: med((r) => r.cpuUsPerQuery)
    })
  }
  const order = (r: Result) =>
    scenarios.findIndex((s) => s.n === r.n) * 100 + queries.findIndex((q) => q.name === r.query) * 10 +
    allSubjects.indexOf(r.subject as SubjectName)
  results.sort((a, b) => order(a) - order(b))
  const targets = checkTargets(results, runs)
  const table = [
    "| N/M | query | subject | qps | p50 µs | p99 µs | max µs | client CPU µs/query |",
    "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ...results.map((r) =>
      `| ${r.n}/${r.m} | ${r.query} | ${r.subject} | ${fmt(r.qps)} | ${fmt(r.p50Us)} | ${fmt(r.p99Us)} | ${
        fmt(r.maxUs)
      } | ${fmt(r.cpuUsPerQuery)} |`
    )
  ].join("\n")
  const targetLines = targets.map((t) => `- ${t.ok === true ? "PASS" : t.ok === false ? "MISS" : "info"} ${t.line}`)
  const machine = `${meta.cpu}, ${meta.cores} cores (shared, noisy; load average ${
    meta.loadavg.map((l) => l.toFixed(1)).join(" → ")
  } during the run), Node ${meta.node}, ${meta.platform}; PostgreSQL ${meta.postgres} on the same machine over ` +
    `loopback TCP (fsync off); ${
      Object.entries(meta.versions).map(([k, v]) => `${k} ${v}`).join(", ")
    }; ` +
    `${meta.rounds} round(s), warm-up ${meta.warmupMs} ms, measured ${meta.measureMs} ms per subject${
      meta.quick ? " (--quick)" : ""
    }, medians across rounds.`
  const markdown = [
    `## PostgreSQL run ${meta.date}`,
    "",
    machine,
    "",
    table,
    "",
    "### PostgreSQL targets",
    "",
    ...targetLines,
    ""
  ].join("\n")
  say("")
  say(markdown)
  const dir = resultsDir
  fs.mkdirSync(dir, { recursive: true })
  const stamp = meta.date.replace(/[:.]/g, "-")
  const output = { meta, results, targets: targetLines }
  fs.writeFileSync(path.join(dir, `pg-${stamp}.json`), JSON.stringify(output, null, 2))
  fs.writeFileSync(path.join(dir, `pg-${stamp}.md`), markdown)
  say(`results: bench/results/pg-${stamp}.{json,md} (${meta.elapsedSeconds.toFixed(1)} s)`)
  if (writeDocs) {
    updateDocs(pgDocs(markdown))
    say("wrote the PostgreSQL section of docs/benchmarks.md")
  }
  if (json) process.stdout.write(JSON.stringify(output) + "\n")
  // the cluster is stopped by now (its scope closed); exit even if a client left a handle open
  process.exit(0)
}).catch((error) => {
  console.error(error)
  // the harness's exit hook stops the cluster and removes its directory
  process.exit(1)
})
