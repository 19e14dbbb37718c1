/**
 * The PostgreSQL benchmark: `npx tsx bench/pg.ts [--quick] [--json]`. Starts a throwaway PostgreSQL 15 cluster
 * (`test/utils/postgres.ts`) and compares, for `SELECT 1` and a primary-key select, N callers over M connections:
 * effect-reservoir with the `Pg` driver, `pg.Pool`, Effect's `Pool` over `pg.Client`s, and the ceilings (M callers
 * each on its own `pg.Client`, no pool: plain, and wrapped in Effect). Subjects run one after another in one
 * process, round-robin, rotated each round; medians across rounds.
 */
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as EPool from "effect/Pool"
import * as Scope from "effect/Scope"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import pg from "pg"
import * as Pg from "../src/Driver/Pg.js"
import * as RPool from "../src/Pool.js"
import * as Postgres from "../test/utils/postgres.js"

const here = path.dirname(fileURLToPath(import.meta.url))
const argv = process.argv.slice(2)
const quick = argv.includes("--quick")
const json = argv.includes("--json")
const rounds = quick ? 1 : 3
const warmupMs = quick ? 200 : 500
const measureMs = quick ? 1000 : 3000
const say = (line: string) => (json ? process.stderr : process.stdout).write(line + "\n")

const scenarios = [{ n: 8, m: 8 }, { n: 64, m: 8 }, { n: 256, m: 8 }]
const queries = [
  { name: "SELECT 1", sql: "SELECT 1", params: () => [] as Array<unknown> },
  {
    name: "pk select",
    sql: "SELECT v FROM bench_kv WHERE id = $1",
    params: () => [1 + Math.floor(Math.random() * 1000)] as Array<unknown>
  }
]
const subjects = [
  "effect-reservoir+pg",
  "pg.Pool",
  "effect/Pool+pg",
  "ceiling/pg.Client",
  "ceiling/effect+pg.Client"
] as const
type SubjectName = typeof subjects[number]

interface Result {
  readonly subject: string
  readonly query: string
  readonly n: number
  readonly m: number
  readonly qps: number
  readonly p50Us: number
  readonly p99Us: number
  readonly maxUs: number
}

/** N callers in a loop until the window closes; latencies are per query, request to result. */
interface Runner {
  /** For promise subjects. */
  readonly once?: (sql: string, params: Array<unknown>) => Promise<unknown>
  /** For Effect subjects. */
  readonly effect?: (sql: string, params: Array<unknown>) => Effect.Effect<unknown, unknown>
  /** How many callers it runs (the ceilings run one per connection). */
  readonly callers: (n: number, m: number) => number
  readonly close: () => Promise<void>
}

const measure = async (runner: Runner, n: number, m: number, query: typeof queries[number]) => {
  const callers = runner.callers(n, m)
  const latencies: Array<number> = []
  const start = performance.now()
  const open = start + warmupMs
  const end = open + measureMs
  let count = 0
  const record = (t0: number) => {
    const t1 = performance.now()
    if (t0 >= open && t1 <= end) {
      count++
      latencies.push((t1 - t0) * 1000)
    }
  }
  if (runner.once !== undefined) {
    const once = runner.once
    const loop = async () => {
      while (performance.now() < end) {
        const t0 = performance.now()
        await once(query.sql, query.params())
        record(t0)
      }
    }
    await Promise.all(Array.from({ length: callers }, loop))
  } else {
    const run = runner.effect!
    const loop: Effect.Effect<void, unknown> = Effect.suspend(() => {
      if (performance.now() >= end) return Effect.void
      const t0 = performance.now()
      return Effect.zipRight(Effect.tap(run(query.sql, query.params()), () => record(t0)), loop)
    })
    await Effect.runPromise(Effect.forEach(Array.from({ length: callers }), () => loop, {
      concurrency: "unbounded",
      discard: true
    }))
  }
  latencies.sort((a, b) => a - b)
  const q = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] ?? 0
  return { qps: count / (measureMs / 1000), p50Us: q(0.5), p99Us: q(0.99), maxUs: latencies.at(-1) ?? 0 }
}

const makeRunner = async (name: SubjectName, server: Postgres.PostgresServer, m: number): Promise<Runner> => {
  const clientConfig = { host: server.host, port: server.port, user: server.user, database: server.database }
  const all = (n: number) => n
  switch (name) {
    case "effect-reservoir+pg": {
      const driver = Pg.driver({ ...server.options, applicationName: "bench-reservoir" })
      const scope = Effect.runSync(Scope.make())
      const pool = await Effect.runPromise(Scope.extend(
        RPool.make({ driver, size: m, maxOverflow: 0, min: m, name: "bench-pg" }),
        scope
      ))
      for (let i = 0; i < 500 && (await Effect.runPromise(RPool.stats(pool))).open < m; i++) {
        await new Promise((r) => setTimeout(r, 10))
      }
      return {
        effect: (sql, params) => RPool.use(pool, (c) => driver.query(c, sql, params)),
        callers: all,
        close: () => Effect.runPromise(Scope.close(scope, Exit.void))
      }
    }
    case "pg.Pool": {
      const pool = new pg.Pool({ ...clientConfig, max: m, min: m })
      await Promise.all(Array.from({ length: m }, () => pool.query("SELECT 1")))
      return { once: (sql, params) => pool.query(sql, params), callers: all, close: () => pool.end() }
    }
    case "effect/Pool+pg": {
      const scope = Effect.runSync(Scope.make())
      const acquire = Effect.acquireRelease(
        Effect.tryPromise(async () => {
          const client = new pg.Client(clientConfig)
          await client.connect()
          return client
        }),
        (client) => Effect.promise(() => client.end())
      )
      const pool = await Effect.runPromise(Scope.extend(EPool.make({ acquire, size: m }), scope))
      return {
        effect: (sql, params) =>
          Effect.scoped(
            Effect.flatMap(EPool.get(pool), (client) => Effect.tryPromise(() => client.query(sql, params)))
          ),
        callers: all,
        close: () => Effect.runPromise(Scope.close(scope, Exit.void))
      }
    }
    case "ceiling/pg.Client":
    case "ceiling/effect+pg.Client": {
      const clients = await Promise.all(Array.from({ length: m }, async () => {
        const client = new pg.Client(clientConfig)
        await client.connect()
        return client
      }))
      let next = 0
      // every caller takes its own client: one caller per connection
      const take = () => clients[next++ % clients.length]
      const close = () => Promise.all(clients.map((c) => c.end())).then(() => {})
      if (name === "ceiling/pg.Client") {
        const owned = new Map<number, pg.Client>()
        let callerId = 0
        return {
          once: (sql, params) => {
            const id = callerId++ % m
            let client = owned.get(id)
            if (client === undefined) owned.set(id, client = take())
            return client.query(sql, params)
          },
          callers: (_n, mm) => mm,
          close
        }
      }
      let callerId = 0
      return {
        effect: (sql, params) => {
          const client = clients[callerId++ % m]
          return Effect.tryPromise(() => client.query(sql, params))
        },
        callers: (_n, mm) => mm,
        close
      }
    }
  }
}

const median = (xs: ReadonlyArray<number>) => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length === 0 ? NaN : s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2
}

const main = Effect.gen(function*() {
  const server = yield* Postgres.make
  yield* server.query("CREATE TABLE bench_kv (id int PRIMARY KEY, v text NOT NULL)")
  yield* server.query("INSERT INTO bench_kv SELECT i, md5(i::text) FROM generate_series(1, 1000) AS i")
  say(`PostgreSQL at ${server.host}:${server.port}`)
  const runs = new Map<string, Array<Result>>()
  for (let round = 0; round < rounds; round++) {
    for (const s of scenarios) {
      for (const query of queries) {
        const order = subjects.map((_, i) => subjects[(i + round) % subjects.length])
        for (const subject of order) {
          say(`  ${subject} ${s.n}/${s.m} ${query.name}`)
          const result = yield* Effect.promise(async () => {
            const runner = await makeRunner(subject, server, s.m)
            try {
              return await measure(runner, s.n, s.m, query)
            } finally {
              await runner.close()
            }
          })
          const key = `${subject}|${query.name}|${s.n}|${s.m}`
          runs.set(key, [...(runs.get(key) ?? []), { subject, query: query.name, n: s.n, m: s.m, ...result }])
        }
        say(`round ${round + 1}/${rounds} ${s.n}/${s.m} ${query.name} done`)
      }
    }
  }
  return runs
})

const fmt = (x: number) => Number.isFinite(x) ? x.toLocaleString("en-US", { maximumFractionDigits: 0 }) : "—"

Effect.runPromise(Effect.scoped(main)).then((runs) => {
  const results: Array<Result> = []
  for (const list of runs.values()) {
    const med = (f: (r: Result) => number) => median(list.map(f))
    results.push({
      ...list[0],
      qps: med((r) => r.qps),
      p50Us: med((r) => r.p50Us),
      p99Us: med((r) => r.p99Us),
      maxUs: med((r) => r.maxUs)
    })
  }
  const find = (subject: string, query: string, n: number) =>
    results.find((r) => r.subject === subject && r.query === query && r.n === n)
  const lines = [
    "| N/M | query | subject | qps | p50 µs | p99 µs | max µs |",
    "| --- | --- | --- | ---: | ---: | ---: | ---: |",
    ...results.map((r) =>
      `| ${r.n}/${r.m} | ${r.query} | ${r.subject} | ${fmt(r.qps)} | ${fmt(r.p50Us)} | ${fmt(r.p99Us)} | ${
        fmt(r.maxUs)
      } |`
    )
  ]
  const targets: Array<string> = []
  for (const s of scenarios) {
    const ours = find("effect-reservoir+pg", "SELECT 1", s.n)
    const ceiling = find("ceiling/effect+pg.Client", "SELECT 1", s.n)
    const theirs = find("effect/Pool+pg", "SELECT 1", s.n)
    const pgPool = find("pg.Pool", "SELECT 1", s.n)
    if (ours === undefined || ceiling === undefined || theirs === undefined || pgPool === undefined) continue
    const need = s.n === s.m ? 0.95 : 0.9
    const a = ours.qps / ceiling.qps
    const b = ours.qps / theirs.qps
    targets.push(
      `- ${a >= need ? "PASS" : "MISS"} ${s.n}/${s.m} SELECT 1 ≥ ${need}× Effect direct-client ceiling: ` +
        `${fmt(ours.qps)} / ${fmt(ceiling.qps)} = ${a.toFixed(2)}×`,
      `- ${b >= 1.5 ? "PASS" : "MISS"} ${s.n}/${s.m} SELECT 1 ≥ 1.5× effect/Pool: ${fmt(ours.qps)} / ${
        fmt(theirs.qps)
      } = ${b.toFixed(2)}×`,
      `- info ${s.n}/${s.m} SELECT 1 vs pg.Pool: ${(ours.qps / pgPool.qps).toFixed(2)}×`
    )
  }
  const markdown = lines.join("\n") + "\n\n### Targets\n\n" + targets.join("\n") + "\n"
  say(markdown)
  const dir = path.join(here, "results")
  fs.mkdirSync(dir, { recursive: true })
  const stamp = new Date().toISOString().replace(/[:.]/g, "-")
  fs.writeFileSync(path.join(dir, `pg-${stamp}.json`), JSON.stringify({ results, targets }, null, 2))
  fs.writeFileSync(path.join(dir, `pg-${stamp}.md`), markdown)
  if (json) process.stdout.write(JSON.stringify({ results, targets }) + "\n")
}).catch((error) => {
  console.error(error)
  process.exit(1)
})
