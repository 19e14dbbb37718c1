/**
 * The pool benchmarks: `npx tsx bench/run.ts [--quick] [--json] [--docs] [--rounds N] [--pools a,b]
 * [--scenarios 100/10,1000/10] [--holds none,tick] [--baseline DIR]`.
 *
 * `--baseline DIR` (the `src/` of another checkout, or the checkout itself) adds `baseline/use`, `baseline/get` and
 * `baseline/use+policies`: that library's `Pool.use` / `Pool.get`, bundled into the same worker (`bench/bundle.ts`),
 * run in the same rounds, with a new ÷ baseline table per scenario. `--subjects` is another name for `--pools`.
 *
 * Every (pool, scenario) runs in a fresh process (`bench/worker.ts`, bundled once with esbuild so a process starts in
 * ~0.1 s), pools are interleaved round-robin within each scenario and the rotation shifts each round, so drift hits
 * all alike; the medians across rounds are reported. `--json` prints exactly one JSON object on stdout (the tables
 * then go to stderr); `--docs` also rewrites `docs/benchmarks.md` and `bench/benchmarks.svg`.
 */
import { execFile, execFileSync } from "node:child_process"
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
  "effect+generic-pool",
  "effect+tarn",
  "effect+pg-pool",
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
/** The promise pools called from fibers (`bench/worker.ts`, `fromFibers`): what an Effect user would pick instead. */
const effectPeers = ["effect+generic-pool", "effect+tarn", "effect+pg-pool"] as const
/** The baseline library's subjects (`--baseline DIR`), each beside its counterpart of this checkout. */
const baselinePairs = [
  ["effect-reservoir/use", "baseline/use"],
  ["effect-reservoir/get", "baseline/get"],
  ["effect-reservoir/use+policies", "baseline/use+policies"]
] as const

/**
 * `--baseline DIR`: the directory holding the baseline's `Pool.ts` and `Policy.ts`, given as that `src/` or as the
 * checkout around it.
 */
const baselineSrc = ((dir: string | undefined): string | undefined => {
  if (dir === undefined) return undefined
  const src = [dir, path.join(dir, "src")].map((d) => path.resolve(d)).find((d) =>
    fs.existsSync(path.join(d, "Pool.ts"))
  )
  if (src === undefined) throw new Error(`--baseline ${dir}: no Pool.ts in it or in its src/`)
  return src
})(option("--baseline"))

/** The baseline's commit, `git describe`-style (`-dirty` when its tree has changes), for the report's header. */
const baselineCommit = (src: string): string => {
  try {
    const git = (args: Array<string>) => execFileSync("git", ["-C", src, ...args], { encoding: "utf8" }).trim()
    return `${git(["rev-parse", "--short", "HEAD"])}${git(["status", "--porcelain", "--", "."]) === "" ? "" : "-dirty"}`
  } catch {
    return "not a git checkout"
  }
}

/**
 * `--quick` leaves out 10000/100: with all 10k borrowers running (the start gate in `bench/worker.ts`), a slow pool
 * completes a cycle per borrower only every few hundred ms, more than a quick window, so the window saw no cycle.
 * `--scenarios 100/10,1000/10` runs only those.
 */
const onlyScenarios = option("--scenarios")?.split(",")
const scenarios: ReadonlyArray<{ n: number; m: number }> = [
  { n: 1, m: 1 },
  { n: 10, m: 10 },
  { n: 100, m: 10 },
  { n: 1000, m: 10 },
  { n: 10000, m: 100 }
].filter((s) => onlyScenarios === undefined ? !quick || s.n <= 1000 : onlyScenarios.includes(`${s.n}/${s.m}`))
const onlyHolds = option("--holds")?.split(",")
const holds = (["none", "tick"] as const).filter((h) => onlyHolds === undefined || onlyHolds.includes(h))

/**
 * Run only when named with `--pools`: Effect's `Semaphore`, which barges (a fiber that gives its permit back takes it
 * again before the fibers it woke run), so it hardly parks under contention and is no floor for a fair pool. The
 * `baseline/*` subjects run by default with `--baseline`; named without it, they run this checkout's `src/` (an A/A
 * check: the ratio of the same code measured twice).
 */
const optionalPools = ["floor/semaphore", ...baselinePairs.map(([, b]) => b)] as const
const only = (option("--pools") ?? option("--subjects"))?.split(",")
/** The default set, each `baseline/*` subject right after its counterpart so the two run back to back. */
const defaults: ReadonlyArray<string> = pools.flatMap((p) => {
  const pair = baselinePairs.find(([mine]) => mine === p)
  return pair !== undefined && baselineSrc !== undefined ? [p, pair[1]] : [p]
})
const selected: ReadonlyArray<string> = only === undefined ?
  defaults :
  [...defaults, ...optionalPools.filter((p) => !defaults.includes(p))].filter((p) => only.includes(p))
{
  // floor/fiber: heap only
  const unknown = only?.filter((p) => !selected.includes(p) && p !== "floor/fiber") ?? []
  if (unknown.length > 0) {
    throw new Error(`unknown pools: ${unknown.join(", ")} (known: ${[...pools, ...optionalPools]})`)
  }
}
/** Heap per parked waiter: every pool, and a bare parked fiber in place of the floors that never park. */
const heapPools = [
  ...selected.filter((p) => !["floor/acquireUseRelease", "floor/scoped", "floor/semaphore"].includes(p)),
  "floor/fiber"
]

// ---------------------------------------------------------------------------------------------------------------
// the worker, bundled once
// ---------------------------------------------------------------------------------------------------------------

const buildWorker = async (): Promise<{ command: string; args: Array<string> }> => {
  const out = path.join(resultsDir, ".build", baselineSrc === undefined ? "worker.cjs" : "worker-baseline.cjs")
  try {
    await bundle(path.join(here, "worker.ts"), out, "cjs", baselineSrc)
    return { command: process.execPath, args: ["--expose-gc", "--max-old-space-size=8192", out] }
  } catch (error) {
    // tsx cannot swap `bench/baseline.ts` for another checkout's sources
    if (baselineSrc !== undefined) throw error
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

/** A scenario's label in the report, `100/10 none`. */
const label = (s: { readonly n: number; readonly m: number }, hold: string) => `${s.n}/${s.m} ${hold}`

/** `Pool.use` ÷ each Effect-called peer, per scenario (ops/s); `floor/handoff-masked` ÷ the peer beside it. */
const peerRatios = (rows: ReadonlyArray<Row>, peer: string, mine: string) =>
  holds.flatMap((hold) =>
    scenarios.flatMap((s) => {
      const a = rows.find((r) => r.pool === mine && r.n === s.n && r.m === s.m && r.hold === hold)
      const b = rows.find((r) => r.pool === peer && r.n === s.n && r.m === s.m && r.hold === hold)
      return a === undefined || b === undefined ? [] : [{ scenario: label(s, hold), x: a.opsPerSec / b.opsPerSec }]
    })
  )

const peerTable = (rows: ReadonlyArray<Row>): string => {
  const peers = effectPeers.filter((p) => rows.some((r) => r.pool === p))
  if (peers.length === 0 || !rows.some((r) => r.pool === "effect-reservoir/use")) return ""
  const columns = [
    ...peers.map((p) => ["effect-reservoir/use", p] as const),
    ...peers.map((p) => ["floor/handoff-masked", p] as const)
  ]
  const lines = [
    `| N/M, hold | ${columns.map(([a, b]) => `${a === "effect-reservoir/use" ? "use" : a} ÷ ${b}`).join(" | ")} |`,
    `| --- | ${columns.map(() => "---:").join(" | ")} |`
  ]
  const tables = columns.map(([a, b]) => new Map(peerRatios(rows, b, a).map((r) => [r.scenario, r.x])))
  for (const hold of holds) {
    for (const s of scenarios) {
      const cells = tables.map((t) => {
        const x = t.get(label(s, hold))
        return x === undefined ? "—" : `${x.toFixed(2)}×`
      })
      lines.push(`| ${s.n}/${s.m}, ${hold} | ${cells.join(" | ")} |`)
    }
  }
  return lines.join("\n")
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
  for (const peer of effectPeers) {
    const ratios = peerRatios(rows, peer, "effect-reservoir/use")
    const behind = ratios.filter((r) => r.x < 1)
    const floor = peerRatios(rows, peer, "floor/handoff-masked")
    const lowest = (rs: typeof ratios) => rs.reduce((lo, r) => r.x < lo.x ? r : lo, { scenario: "", x: Infinity })
    targets.push({
      name: `\`Pool.use\` ahead of ${peer} at every scenario (ops/s, use ÷ peer ≥ 1×)`,
      pass: ratios.length === 0 ? undefined : behind.length === 0,
      detail: ratios.length === 0 ? "not measured" : `ahead at ${ratios.length - behind.length} of ${ratios.length}; ` +
        (behind.length === 0
          ? `lowest ${lowest(ratios).x.toFixed(2)}× at ${lowest(ratios).scenario}`
          : `behind at ${behind.map((r) => `${r.scenario} ${r.x.toFixed(2)}×`).join(", ")}`),
      ...(floor.length === 0 ? {} : {
        floor: `floor/handoff-masked ahead at ${floor.filter((r) => r.x >= 1).length} of ${floor.length}, lowest ${
          lowest(floor).x.toFixed(2)
        }× at ${lowest(floor).scenario}`
      })
    })
  }
  for (const [peer, min] of [["generic-pool", 1], ["effect/Pool", 10], ["effect/Pool", 5]] as const) {
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
  for (const [min, aim] of [[0.85, ""], [1, " (aim)"]] as const) {
    const masked = find("floor/handoff-masked", 100, 10, "none")
    const x = over(use100, masked, "opsPerSec")
    push(
      `Pool.use 100/10 ops/s ≥ ${min}× floor/handoff-masked${aim}`,
      x,
      (x) => x >= min,
      x === undefined ? "" : `${fmt(use100!.opsPerSec)} / ${fmt(masked!.opsPerSec)} = ${x2(x)} (need ≥ ${min}×)`,
      floorLine([
        ["floor/handoff", over(find("floor/handoff", 100, 10, "none"), masked, "opsPerSec")]
      ])
    )
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
  const heapFloors: ReadonlyArray<readonly [string, ReadonlyArray<string>, number, string]> = [
    ["effect-reservoir/use", ["floor/handoff", "floor/handoff-masked"], 5120, "5 KB"],
    ["effect-reservoir/use", ["floor/handoff", "floor/handoff-masked"], 3584, "3.5 KB"],
    ["effect-reservoir/get", ["floor/scoped-handoff"], 5120, "5 KB"]
  ]
  for (const [pool, floorPools, limit, limitLabel] of heapFloors) {
    for (const h of heapRows.filter((r) => r.pool === pool)) {
      const floors = floorPools.flatMap((f) => {
        const floor = heapRows.find((r) => r.pool === f && r.waiters === h.waiters)
        return floor === undefined ? [] : [`${f} ${fmt(floor.bytesPerWaiter)} B`]
      })
      targets.push({
        name: `${pool} heap per parked waiter ≤ ${limitLabel} (${fmt(h.waiters)} waiters, fiber included)`,
        pass: h.bytesPerWaiter <= limit,
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
    const masked = find("floor/handoff-masked", n, m, "none")
    const x = over(withPolicies, plain, "cpuNsPerOp")
    const overFloor = over(withPolicies, masked, "cpuNsPerOp")
    const detail = x === undefined ?
      "not measured" :
      `${fmt(withPolicies!.cpuNsPerOp)} / ${fmt(plain!.cpuNsPerOp)} ns = ${x2(x)}${queuedIn(withPolicies)}` +
      (overFloor === undefined ? "" : `; vs floor/handoff-masked ${x2(overFloor)}`)
    if (n === 100) {
      // the policies issue's target: the default policies cost at most 1.3x none under contention
      push("Pool.use with the default policies ≤ 1.3× without, CPU/cycle at 100/10", x, (x) => x <= 1.3, detail)
    } else {
      targets.push({
        name: `Pool.use with the default policies vs without, CPU/cycle at ${n}/${m} (information)`,
        pass: undefined,
        detail
      })
    }
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

/**
 * New ÷ baseline per scenario, ops/s, for each pair both measured: the median of the per-round ratios (the two run
 * back to back in each round, so drift cancels), with their range when there was more than one round. Heap per parked
 * waiter as baseline ÷ new (above 1× the new one is lighter).
 */
const baselineTable = (
  byRound: (pool: string, n: number, m: number, hold: string) => ReadonlyMap<number, Row>,
  heapRows: ReadonlyArray<HeapRow>
): string => {
  const pairs = baselinePairs.filter(([mine, base]) => selected.includes(mine) && selected.includes(base))
  if (pairs.length === 0) return ""
  const ratio = (xs: ReadonlyArray<number>) =>
    xs.length === 0
      ? "—"
      : `${median(xs).toFixed(2)}×` +
        (xs.length > 1 ? ` (${Math.min(...xs).toFixed(2)}–${Math.max(...xs).toFixed(2)})` : "")
  const lines = [
    `| N/M, hold | ${pairs.map(([mine]) => `${mine.slice(mine.indexOf("/") + 1)} new ÷ baseline`).join(" | ")} |`,
    `| --- | ${pairs.map(() => "---:").join(" | ")} |`
  ]
  for (const hold of holds) {
    for (const s of scenarios) {
      const cells = pairs.map(([mine, base]) => {
        const a = byRound(mine, s.n, s.m, hold)
        const b = byRound(base, s.n, s.m, hold)
        return ratio([...a].flatMap(([round, r]) => {
          const other = b.get(round)
          return other === undefined ? [] : [r.opsPerSec / other.opsPerSec]
        }))
      })
      lines.push(`| ${s.n}/${s.m}, ${hold} | ${cells.join(" | ")} |`)
    }
  }
  for (const waiters of heapSizes) {
    const cells = pairs.map(([mine, base]) => {
      const a = heapRows.find((r) => r.pool === mine && r.waiters === waiters)
      const b = heapRows.find((r) => r.pool === base && r.waiters === waiters)
      return a === undefined || b === undefined
        ? "—"
        : `${(b.bytesPerWaiter / a.bytesPerWaiter).toFixed(2)}× (${fmt(a.bytesPerWaiter)} / ${fmt(b.bytesPerWaiter)} B)`
    })
    lines.push(`| heap, ${fmt(waiters)} parked: baseline ÷ new | ${cells.join(" | ")} |`)
  }
  return lines.join("\n")
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
  /** Per (pool, scenario): each round's result, by round. */
  const samples = new Map<string, Map<number, Row>>()
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
          samples.set(k, (samples.get(k) ?? new Map<number, Row>()).set(round, result))
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
        const runs = [...(samples.get(key(pool, s.n, s.m, hold))?.values() ?? [])]
        if (runs.length === 0) continue
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
    ...(baselineSrc === undefined ? {} : { baseline: { src: baselineSrc, commit: baselineCommit(baselineSrc) } }),
    elapsedSeconds: (Date.now() - started) / 1000
  }
  const output = {
    results: rows,
    heap: heapRows,
    targets,
    meta,
    /** Every round's own result, keyed `pool|n|m|hold`, then by round: for ratios paired within a round. */
    perRound: Object.fromEntries([...samples].map(([k, byRound]) => [k, Object.fromEntries(byRound)]))
  }
  const stamp = meta.date.replace(/[:.]/g, "-")
  const peers = peerTable(rows)
  const versus = baselineTable(
    (pool, n, m, hold) => samples.get(key(pool, n, m, hold)) ?? new Map<number, Row>(),
    heapRows
  )
  fs.writeFileSync(path.join(resultsDir, `${stamp}.json`), JSON.stringify(output, null, 2))
  const svg = chart(rows, selected, scenarios, holds)
  fs.writeFileSync(path.join(resultsDir, `${stamp}.svg`), svg)
  const markdown = [
    `## Run ${meta.date}${quick ? " (--quick)" : ""}`,
    "",
    `${meta.cpu}, ${meta.cores} cores, Node ${meta.node}, ${meta.platform}; ` +
    Object.entries(meta.versions).map(([k, v]) => `${k} ${v}`).join(", ") +
    `; ${rounds} round(s), warm-up ${warmupMs} ms, measured ${measureMs} ms per process, medians across rounds.` +
    (meta.baseline === undefined ? "" : ` Baseline: \`${meta.baseline.src}\` at ${meta.baseline.commit}.`),
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
    ...(peers === "" ? [] : ["### Pool.use ÷ the Effect-called peers (ops/s)", "", peers, ""]),
    ...(versus === "" ? [] : [
      "### New ÷ baseline (ops/s, median of per-round ratios, range in brackets)",
      "",
      versus,
      ""
    ]),
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
