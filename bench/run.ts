/**
 * The pool benchmarks: `npx tsx bench/run.ts [--quick] [--json] [--docs] [--rounds N] [--pools a,b]`.
 *
 * Every (pool, scenario) runs in a fresh process (`bench/worker.ts`, bundled once with esbuild so a process starts in
 * ~0.1 s), pools are interleaved round-robin within each scenario and the rotation shifts each round, so drift hits
 * all alike; the medians across rounds are reported. `--json` prints exactly one JSON object on stdout (the tables
 * then go to stderr); `--docs` also rewrites `docs/benchmarks.md` and `bench/benchmarks.svg`.
 */
import { execFile } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { bundle } from "./bundle.js"
import { json, option, quick, rounds, writeDocs } from "./cli.js"
import { benchDir as here, resultsDir, root } from "./paths.js"
import { chart, type Row, versionOf } from "./report.js"

const warmupMs = quick ? 100 : 300
const measureMs = quick ? 150 : 1000
const heapSizes = quick ? [10_000] : [10_000, 100_000]

/** Progress and tables go to stderr with `--json`, so stdout carries the one JSON object. */
const say = (line: string): void => {
  if (json) process.stderr.write(line + "\n")
  else process.stdout.write(line + "\n")
}

export const pools = [
  "effect-reservoir/use",
  "effect-reservoir/get",
  "effect-reservoir/use+policies",
  "effect/Pool",
  "effect/Pool-ttl",
  "generic-pool",
  "tarn",
  "pg-pool",
  "floor/await",
  "floor/acquireUseRelease",
  "floor/scoped",
  "floor/handoff",
  "floor/handoff-masked",
  "floor/scoped-handoff"
] as const
/** Heap per parked waiter: every pool, and a bare parked fiber in place of the floors that never park. */
const heapPools = [
  ...pools.filter((p) => !["floor/acquireUseRelease", "floor/scoped", "floor/semaphore"].includes(p)),
  "floor/fiber"
]
/**
 * `--quick` leaves out 10000/100: with all 10k borrowers running (the start gate in `bench/worker.ts`), a slow pool
 * completes a cycle per borrower only every few hundred ms, more than a quick window, so the window saw no cycle.
 */
const scenarios: ReadonlyArray<{ n: number; m: number }> = [
  { n: 1, m: 1 },
  { n: 10, m: 10 },
  { n: 100, m: 10 },
  { n: 1000, m: 10 },
  { n: 10000, m: 100 }
].filter((s) => !quick || s.n <= 1000)
const holds = ["none", "tick"] as const

/**
 * Run only when named with `--pools`: Effect's `Semaphore`, which barges (a fiber that gives its permit back takes it
 * again before the fibers it woke run), so it hardly parks under contention and is no floor for a fair pool.
 */
const optionalPools = ["floor/semaphore"] as const
const only = option("--pools")?.split(",")
const selected: ReadonlyArray<string> = only === undefined ?
  [...pools] :
  [...pools, ...optionalPools].filter((p) => only.includes(p))

// ---------------------------------------------------------------------------------------------------------------
// the worker, bundled once
// ---------------------------------------------------------------------------------------------------------------

const buildWorker = async (): Promise<{ command: string; args: Array<string> }> => {
  const out = path.join(resultsDir, ".build", "worker.cjs")
  try {
    await bundle(path.join(here, "worker.ts"), out, "cjs")
    return { command: process.execPath, args: ["--expose-gc", "--max-old-space-size=8192", out] }
  } catch (error) {
    say(`esbuild unavailable (${String(error)}); running the worker through tsx (slower start)`)
    return {
      command: process.execPath,
      args: ["--import", "tsx", "--expose-gc", "--max-old-space-size=8192", path.join(here, "worker.ts")]
    }
  }
}

const spawnJob = (worker: { command: string; args: Array<string> }, job: object, timeoutMs: number) =>
  new Promise<Record<string, unknown> | undefined>((resolve) => {
    execFile(
      worker.command,
      [...worker.args, JSON.stringify(job)],
      { cwd: root, timeout: timeoutMs, maxBuffer: 1 << 20 },
      (error, stdout, stderr) => {
        const line = stdout.trim().split("\n").pop() ?? ""
        try {
          resolve(JSON.parse(line) as Record<string, unknown>)
        } catch {
          say(`  ! ${JSON.stringify(job)} failed: ${error?.message ?? ""} ${stderr.slice(0, 400)}`)
          resolve(undefined)
        }
      }
    )
  })

const median = (values: ReadonlyArray<number>): number => {
  if (values.length === 0) return NaN
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
}

// ---------------------------------------------------------------------------------------------------------------
// formatting
// ---------------------------------------------------------------------------------------------------------------

const fmt = (x: number, digits = 0): string =>
  Number.isFinite(x) ? x.toLocaleString("en-US", { maximumFractionDigits: digits }) : "—"
const fmtUs = (x: number): string => (x >= 100 ? fmt(x, 0) : x >= 10 ? fmt(x, 1) : fmt(x, 2))

const detailTable = (rows: ReadonlyArray<Row>): string => {
  const lines = [
    "| N/M | hold | pool | ops/s | CPU ns/op | p50 wait µs | p99 wait µs | max wait µs | FIFO inversions |",
    "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"
  ]
  for (const r of rows) {
    lines.push(
      `| ${r.n}/${r.m} | ${r.hold} | ${r.pool} | ${fmt(r.opsPerSec)} | ${fmt(r.cpuNsPerOp)} | ${
        fmtUs(r.p50WaitUs)
      } | ` +
        `${fmtUs(r.p99WaitUs)} | ${fmtUs(r.maxWaitUs)} | ${fmt(r.fifoInversions)} |`
    )
  }
  return lines.join("\n")
}

const opsMatrix = (rows: ReadonlyArray<Row>, names: ReadonlyArray<string>): string => {
  const lines = [
    `| N/M, hold | ${names.join(" | ")} |`,
    `| --- | ${names.map(() => "---:").join(" | ")} |`
  ]
  for (const hold of holds) {
    for (const s of scenarios) {
      const cells = names.map((name) => {
        const r = rows.find((x) => x.pool === name && x.n === s.n && x.m === s.m && x.hold === hold)
        return r === undefined ? "—" : fmt(r.opsPerSec)
      })
      lines.push(`| ${s.n}/${s.m}, ${hold} | ${cells.join(" | ")} |`)
    }
  }
  return lines.join("\n")
}

interface HeapRow {
  readonly pool: string
  readonly waiters: number
  readonly bytesPerWaiter: number
}

const heapTable = (rows: ReadonlyArray<HeapRow>): string => {
  const lines = ["| pool | waiters | heap bytes per parked waiter |", "| --- | ---: | ---: |"]
  for (const r of rows) lines.push(`| ${r.pool} | ${fmt(r.waiters)} | ${fmt(r.bytesPerWaiter)} |`)
  return lines.join("\n")
}

// ---------------------------------------------------------------------------------------------------------------
// targets: ratios from this run only
// ---------------------------------------------------------------------------------------------------------------

interface Target {
  readonly name: string
  readonly pass: boolean | undefined
  readonly detail: string
  /** The same measure for Effect's own floors in this run: what no pool written in Effect 3 gets under. */
  readonly floor?: string
}

const checkTargets = (rows: ReadonlyArray<Row>, heapRows: ReadonlyArray<HeapRow>): Array<Target> => {
  const find = (pool: string, n: number, m: number, hold: string) =>
    rows.find((r) => r.pool === pool && r.n === n && r.m === m && r.hold === hold)
  const targets: Array<Target> = []
  const x2 = (x: number) => `${x.toFixed(2)}×`
  /** `a[key] / b[key]` for the named rows, or undefined when either was not measured. */
  const over = (a: Row | undefined, b: Row | undefined, key: "opsPerSec" | "cpuNsPerOp") =>
    a === undefined || b === undefined ? undefined : a[key] / b[key]
  const floorLine = (parts: ReadonlyArray<[string, number | undefined]>) => {
    const known = parts.filter(([, x]) => x !== undefined).map(([label, x]) => `${label} ${x2(x!)}`)
    return known.length === 0 ? undefined : known.join("; ")
  }
  const push = (name: string, x: number | undefined, pass: (x: number) => boolean, detail: string, floor?: string) =>
    targets.push(
      x === undefined
        ? { name, pass: undefined, detail: "not measured" }
        : { name, pass: pass(x), detail, ...(floor === undefined ? {} : { floor }) }
    )

  const use100 = find("effect-reservoir/use", 100, 10, "none")
  for (const [peer, min] of [["generic-pool", 1], ["effect/Pool", 10]] as const) {
    const other = find(peer, 100, 10, "none")
    const x = over(use100, other, "opsPerSec")
    push(
      `Pool.use 100/10 ops/s ≥ ${min}× ${peer}`,
      x,
      (x) => x >= min,
      x === undefined ? "" : `${fmt(use100!.opsPerSec)} / ${fmt(other!.opsPerSec)} = ${x2(x)} (need ≥ ${min}×)`,
      floorLine([
        ["floor/handoff", over(find("floor/handoff", 100, 10, "none"), other, "opsPerSec")],
        ["floor/handoff-masked", over(find("floor/handoff-masked", 100, 10, "none"), other, "opsPerSec")],
        ["floor/acquireUseRelease", over(find("floor/acquireUseRelease", 100, 10, "none"), other, "opsPerSec")]
      ])
    )
  }
  {
    const masked = find("floor/handoff-masked", 100, 10, "none")
    const x = over(use100, masked, "opsPerSec")
    targets.push({
      name: "Pool.use 100/10 ops/s vs the interruption-safe fair floor (information, not an issue target)",
      pass: undefined,
      detail: x === undefined ? "not measured" : `${fmt(use100!.opsPerSec)} / ${fmt(masked!.opsPerSec)} = ${x2(x)}`
    })
  }
  /**
   * Whether the borrowers queued (a convoy: every cycle parks) or barely waited, which decides the cost per cycle and
   * what a median wait means: with no queue the median is a microsecond or two and any one wait dwarfs it.
   */
  const queuedIn = (r: Row | undefined) => r === undefined ? "" : r.p50WaitUs > 100 ? " (queued)" : " (no queue)"
  for (const hold of holds) {
    const ratioOf = (pool: string) => over(find(pool, 10000, 100, hold), find(pool, 10, 10, hold), "cpuNsPerOp")
    const queued = (pool: string) => queuedIn(find(pool, 10000, 100, hold))
    const big = find("effect-reservoir/use", 10000, 100, hold)
    const small = find("effect-reservoir/use", 10, 10, hold)
    const x = ratioOf("effect-reservoir/use")
    push(
      `Pool.use CPU/cycle at 10000/100 ≤ 2× at 10/10 (hold ${hold})`,
      x,
      (x) => x <= 2,
      x === undefined
        ? ""
        : `${fmt(big!.cpuNsPerOp)} / ${fmt(small!.cpuNsPerOp)} ns = ${x2(x)}${queued("effect-reservoir/use")}`,
      floorLine(
        ["floor/handoff", "floor/handoff-masked", "floor/acquireUseRelease"].map((
          pool
        ) => [`${pool}${queued(pool)}`, ratioOf(pool)])
      )
    )
  }
  const heapFloors: ReadonlyArray<readonly [string, ReadonlyArray<string>]> = [
    ["effect-reservoir/use", ["floor/handoff", "floor/handoff-masked"]],
    ["effect-reservoir/get", ["floor/scoped-handoff"]]
  ]
  for (const [pool, floorPools] of heapFloors) {
    for (const h of heapRows.filter((r) => r.pool === pool)) {
      const floors = floorPools.flatMap((f) => {
        const floor = heapRows.find((r) => r.pool === f && r.waiters === h.waiters)
        return floor === undefined ? [] : [`${f} ${fmt(floor.bytesPerWaiter)} B`]
      })
      targets.push({
        name: `${pool} heap per parked waiter ≤ 5 KB (${fmt(h.waiters)} waiters, fiber included)`,
        pass: h.bytesPerWaiter <= 5120,
        detail: `${fmt(h.bytesPerWaiter)} B`,
        ...(floors.length === 0 ? {} : { floor: floors.join("; ") })
      })
    }
  }
  for (const pool of ["effect-reservoir/use", "effect-reservoir/get"]) {
    const mine = rows.filter((r) => r.pool === pool)
    const total = mine.reduce((s, r) => s + r.fifoInversions, 0)
    const worst = mine.filter((r) => r.fifoInversions > 0).map((r) => `${r.n}/${r.m} ${r.hold}: ${r.fifoInversions}`)
    targets.push({
      name: `${pool}: zero FIFO inversions (every scenario)`,
      pass: mine.length === 0 ? undefined : total === 0,
      detail: total === 0 ? `0 in ${mine.length} scenarios` : worst.join(", ")
    })
    for (const hold of holds) {
      const spread = (row: Row | undefined) => row === undefined ? undefined : row.maxWaitUs / row.p50WaitUs
      const r = find(pool, 100, 10, hold)
      const x = spread(r)
      push(
        `${pool}: max wait ≤ 20× median at 100/10 (hold ${hold})`,
        x,
        (x) => x <= 20,
        x === undefined ? "" : `${fmtUs(r!.maxWaitUs)} / ${fmtUs(r!.p50WaitUs)} µs = ${x.toFixed(1)}×${queuedIn(r)}`,
        floorLine(
          (pool === "effect-reservoir/use" ? ["floor/handoff", "floor/handoff-masked"] : ["floor/scoped-handoff"]).map(
            (floor) => {
              const f = find(floor, 100, 10, hold)
              return [`${floor}${queuedIn(f)}`, spread(f)]
            }
          )
        )
      )
    }
  }
  for (const [n, m] of [[1, 1], [100, 10]] as const) {
    const plain = find("effect-reservoir/use", n, m, "none")
    const withPolicies = find("effect-reservoir/use+policies", n, m, "none")
    const x = over(withPolicies, plain, "cpuNsPerOp")
    targets.push({
      name: `Pool.use with recycle, maxUses and resetOnReturn vs without, CPU/cycle at ${n}/${m} (information)`,
      pass: undefined,
      detail: x === undefined ?
        "not measured" :
        `${fmt(withPolicies!.cpuNsPerOp)} / ${fmt(plain!.cpuNsPerOp)} ns = ${x2(x)}${queuedIn(withPolicies)}`
    })
  }
  {
    const get = find("effect-reservoir/get", 1, 1, "none")
    const scoped = find("floor/scoped", 1, 1, "none")
    const scopedHandoff = find("floor/scoped-handoff", 1, 1, "none")
    const x = over(get, scoped, "cpuNsPerOp")
    push(
      "Pool.get ≤ 1.1× floor/scoped (CPU/cycle, 1/1)",
      x,
      (x) => x <= 1.1,
      x === undefined ? "" : `${fmt(get!.cpuNsPerOp)} / ${fmt(scoped!.cpuNsPerOp)} ns = ${x2(x)}`,
      floorLine([
        ["floor/scoped-handoff vs floor/scoped", over(scopedHandoff, scoped, "cpuNsPerOp")],
        ["Pool.get vs floor/scoped-handoff", over(get, scopedHandoff, "cpuNsPerOp")]
      ])
    )
  }
  return targets
}

const targetLines = (targets: ReadonlyArray<Target>): string =>
  targets.map((t) =>
    `- ${t.pass === undefined ? "N/A " : t.pass ? "PASS" : "MISS"} ${t.name}: ${t.detail}` +
    (t.floor === undefined ? "" : `\n  - Effect's floor, same measure: ${t.floor}`)
  ).join("\n")

// ---------------------------------------------------------------------------------------------------------------
// main
// ---------------------------------------------------------------------------------------------------------------

const main = async () => {
  const started = Date.now()
  fs.mkdirSync(resultsDir, { recursive: true })
  const worker = await buildWorker()
  const samples = new Map<string, Array<Row>>()
  const key = (pool: string, n: number, m: number, hold: string) => `${pool}|${n}|${m}|${hold}`
  const jobTimeout = warmupMs + measureMs + 30_000
  for (let round = 0; round < rounds; round++) {
    for (const hold of holds) {
      for (const s of scenarios) {
        const order = selected.map((_, i) => selected[(i + round) % selected.length])
        for (const pool of order) {
          // the worker opens the window only once all N borrowers are running, after the warm-up
          const job = { mode: "throughput", pool, n: s.n, m: s.m, hold, warmupMs, measureMs }
          const result = await spawnJob(worker, job, jobTimeout) as unknown as Row | undefined
          if (result === undefined) continue
          if (!(result.opsPerSec > 0)) {
            say(`  ! ${pool} ${s.n}/${s.m} hold ${hold}: no cycle completed in the window; left out`)
            continue
          }
          const k = key(pool, s.n, s.m, hold)
          samples.set(k, [...(samples.get(k) ?? []), result])
        }
        say(
          `round ${round + 1}/${rounds} ${s.n}/${s.m} hold ${hold} done (${
            ((Date.now() - started) / 1000).toFixed(1)
          } s)`
        )
      }
    }
  }
  const rows: Array<Row> = []
  for (const hold of holds) {
    for (const s of scenarios) {
      for (const pool of selected) {
        const runs = samples.get(key(pool, s.n, s.m, hold))
        if (runs === undefined || runs.length === 0) continue
        const pick = (f: (r: Row) => number) => median(runs.map(f))
        rows.push({
          pool,
          n: s.n,
          m: s.m,
          hold,
          opsPerSec: pick((r) => r.opsPerSec),
          cpuNsPerOp: pick((r) => r.cpuNsPerOp),
          p50WaitUs: pick((r) => r.p50WaitUs),
          p99WaitUs: pick((r) => r.p99WaitUs),
          maxWaitUs: pick((r) => r.maxWaitUs),
          fifoInversions: Math.max(...runs.map((r) => r.fifoInversions))
        })
      }
    }
  }
  const heapRows: Array<HeapRow> = []
  const heapSelected = heapPools.filter((p) => only === undefined || only.includes(p))
  for (const waiters of heapSizes) {
    for (const pool of heapSelected) {
      const result = await spawnJob(worker, { mode: "heap", pool, waiters }, 120_000)
      if (result !== undefined) heapRows.push({ pool, waiters, bytesPerWaiter: result.bytesPerWaiter as number })
    }
    say(`heap ${fmt(waiters)} waiters done (${((Date.now() - started) / 1000).toFixed(1)} s)`)
  }

  const targets = checkTargets(rows, heapRows)
  const meta = {
    date: new Date().toISOString(),
    quick,
    rounds,
    warmupMs,
    measureMs,
    cpu: os.cpus()[0]?.model ?? "?",
    cores: os.cpus().length,
    node: process.version,
    platform: `${os.platform()} ${os.release()}`,
    versions: Object.fromEntries(
      ["effect", "generic-pool", "tarn", "pg-pool", "pg"].map((p) => [p, versionOf(p)])
    ),
    elapsedSeconds: (Date.now() - started) / 1000
  }
  const output = { results: rows, heap: heapRows, targets, meta }
  const stamp = meta.date.replace(/[:.]/g, "-")
  fs.writeFileSync(path.join(resultsDir, `${stamp}.json`), JSON.stringify(output, null, 2))
  const svg = chart(rows, selected, scenarios, holds)
  fs.writeFileSync(path.join(resultsDir, `${stamp}.svg`), svg)
  const markdown = [
    `## Run ${meta.date}${quick ? " (--quick)" : ""}`,
    "",
    `${meta.cpu}, ${meta.cores} cores, Node ${meta.node}, ${meta.platform}; ` +
    Object.entries(meta.versions).map(([k, v]) => `${k} ${v}`).join(", ") +
    `; ${rounds} round(s), warm-up ${warmupMs} ms, measured ${measureMs} ms per process, medians across rounds.`,
    "",
    "### ops/s",
    "",
    opsMatrix(rows, selected),
    "",
    "### Detail",
    "",
    detailTable(rows),
    "",
    "### Heap per parked waiter (pool of 1, held by one borrower)",
    "",
    heapTable(heapRows),
    "",
    "### Targets",
    "",
    targetLines(targets),
    ""
  ].join("\n")
  fs.writeFileSync(path.join(resultsDir, `${stamp}.md`), markdown)
  say("")
  say(markdown)
  say(`results: bench/results/${stamp}.{json,md,svg} (${meta.elapsedSeconds.toFixed(1)} s)`)
  if (writeDocs) {
    const { docs, pgSectionOf } = await import("./report.js")
    const page = path.join(root, "docs", "benchmarks.md")
    const pgSection = fs.existsSync(page) ? pgSectionOf(fs.readFileSync(page, "utf8")) : undefined
    fs.writeFileSync(path.join(here, "benchmarks.svg"), svg)
    fs.writeFileSync(page, docs(markdown, meta, pgSection))
    say("wrote docs/benchmarks.md and bench/benchmarks.svg")
  }
  if (json) process.stdout.write(JSON.stringify(output) + "\n")
}

main().catch((error) => {
  console.error(error)
  process.exit(1)
})
