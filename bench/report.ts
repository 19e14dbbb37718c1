/**
 * The benchmark report: a hand-written SVG bar chart (ops/s per scenario, one bar per pool, log scale) and the
 * `docs/benchmarks.md` page around a run's tables.
 */

import * as fs from "node:fs"
import * as path from "node:path"
import { root } from "./paths.js"

/** The installed version of a package, for the report's header; `"?"` when it is not installed. */
export const versionOf = (pkg: string): string => {
  try {
    return (JSON.parse(fs.readFileSync(path.join(root, "node_modules", pkg, "package.json"), "utf8")) as {
      version: string
    }).version
  } catch {
    return "?"
  }
}

/** One (pool, scenario) result: medians across rounds, FIFO inversions the most seen in a round. */
export interface Row {
  readonly pool: string
  readonly n: number
  readonly m: number
  readonly hold: string
  readonly opsPerSec: number
  readonly cpuNsPerOp: number
  readonly p50WaitUs: number
  readonly p99WaitUs: number
  readonly maxWaitUs: number
  readonly fifoInversions: number
}

const colors = [
  "#1f6feb",
  "#6cb6ff",
  "#d1242f",
  "#ff8182",
  "#1a7f37",
  "#bf8700",
  "#8250df",
  "#57606a",
  "#8c959f",
  "#d0d7de",
  "#0f766e",
  "#e36209",
  "#f9c513",
  "#a40e26",
  "#0550ae",
  "#4ac26b",
  "#cf222e",
  "#6e7781",
  "#953800",
  "#dbab09"
]

const escape = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")

/** Two panels (hold none, hold one tick), a group per N/M scenario, a bar per pool, ops/s on a log axis. */
export const chart = (
  rows: ReadonlyArray<Row>,
  pools: ReadonlyArray<string>,
  scenarios: ReadonlyArray<{ readonly n: number; readonly m: number }>,
  holds: ReadonlyArray<string>
): string => {
  const bar = 9
  const gap = 18
  const groupWidth = pools.length * bar + gap
  const left = 70
  const panelHeight = 260
  const top = 40
  const panelGap = 70
  const width = left + scenarios.length * groupWidth + 20
  const legendHeight = Math.ceil(pools.length / 3) * 18 + 10
  const height = top + holds.length * (panelHeight + panelGap) + legendHeight
  const values = rows.map((r) => r.opsPerSec).filter((x) => x > 0)
  const lo = Math.floor(Math.log10(Math.max(1, Math.min(...values, 1e3))))
  const hi = Math.ceil(Math.log10(Math.max(...values, 1e4)))
  const parts: Array<string> = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" ` +
    `font-family="system-ui, sans-serif" font-size="11">`,
    `<rect width="100%" height="100%" fill="#ffffff"/>`,
    `<text x="${left}" y="20" font-size="14" font-weight="bold">Checkout + return cycles per second ` +
    `(log scale; higher is better)</text>`
  ]
  holds.forEach((hold, p) => {
    const y0 = top + p * (panelHeight + panelGap)
    const y = (v: number) => y0 + panelHeight - ((Math.log10(Math.max(v, 10 ** lo)) - lo) / (hi - lo)) * panelHeight
    parts.push(
      `<text x="${left}" y="${y0 - 8}" font-weight="bold">hold = ${hold === "none" ? "none" : "one event-loop tick"}` +
        `</text>`
    )
    for (let e = lo; e <= hi; e++) {
      const yy = y(10 ** e).toFixed(1)
      parts.push(
        `<line x1="${left}" x2="${width - 20}" y1="${yy}" y2="${yy}" stroke="#e5e7eb"/>`,
        `<text x="${left - 6}" y="${yy}" text-anchor="end" dominant-baseline="middle">1e${e}</text>`
      )
    }
    scenarios.forEach((s, g) => {
      const x0 = left + g * groupWidth + gap / 2
      pools.forEach((pool, i) => {
        const r = rows.find((x) => x.pool === pool && x.n === s.n && x.m === s.m && x.hold === hold)
        if (r === undefined || !(r.opsPerSec > 0)) return
        const yy = y(r.opsPerSec)
        parts.push(
          `<rect x="${x0 + i * bar}" y="${yy.toFixed(1)}" width="${bar - 1}" ` +
            `height="${(y0 + panelHeight - yy).toFixed(1)}" fill="${colors[i % colors.length]}">` +
            `<title>${escape(pool)} ${s.n}/${s.m} hold ${hold}: ${Math.round(r.opsPerSec)} ops/s</title></rect>`
        )
      })
      parts.push(
        `<text x="${x0 + (pools.length * bar) / 2}" y="${y0 + panelHeight + 16}" text-anchor="middle">` +
          `${s.n} / ${s.m}</text>`
      )
    })
    parts.push(
      `<line x1="${left}" x2="${width - 20}" y1="${y0 + panelHeight}" y2="${y0 + panelHeight}" stroke="#57606a"/>`
    )
  })
  const ly = top + holds.length * (panelHeight + panelGap) - 30
  pools.forEach((pool, i) => {
    const x = 12 + (i % 3) * 220
    const yy = ly + Math.floor(i / 3) * 18
    parts.push(
      `<rect x="${x}" y="${yy - 9}" width="10" height="10" fill="${colors[i % colors.length]}"/>`,
      `<text x="${x + 15}" y="${yy}">${escape(pool)}</text>`
    )
  })
  parts.push("</svg>")
  return parts.join("\n") + "\n"
}

/** The `docs/benchmarks.md` page: method and configuration, the chart, then the run's tables and targets. */
export const docs = (runMarkdown: string, meta: {
  readonly cpu: string
  readonly cores: number
  readonly node: string
  readonly platform: string
  readonly versions: Readonly<Record<string, string>>
  readonly quick: boolean
}, pgSection?: string): string =>
  `# Benchmarks

Run them with \`npm run bench\` (add \`-- --quick\` for a quick run without 10000/100, \`-- --json\` for one JSON object
on stdout, \`-- --docs\` to regenerate this page, \`-- --baseline DIR\` to run another checkout's \`src/\` beside this one,
\`-- --pools a,b\`, \`-- --scenarios 100/10,1000/10\` and \`-- --holds none\` to run fewer) and \`npm run bench:pg\` for the
PostgreSQL comparison. Raw results of every run go to \`bench/results/\` (git-ignored) as JSON, markdown and SVG.

![ops/s per scenario, one bar per pool](../bench/benchmarks.svg)

## Machine and versions

${meta.cpu}, ${meta.cores} cores (a shared, noisy machine), Node ${meta.node}, ${meta.platform}.
${Object.entries(meta.versions).map(([k, v]) => `${k} ${v}`).join(", ")}; effect-reservoir from this repository
(\`src/\`, bundled with esbuild, no minification).

## Method

- **Resource**: a no-op (\`{}\`), created at once. Every pool is sized M, warmed to M open resources before measuring,
  and never grows or shrinks during the run: effect-reservoir \`Pool.make({ acquire: Effect.acquireRelease(...),
  size: M, maxOverflow: 0, min: M, timeout: Infinity })\`; Effect's \`Pool.make({ size: M })\` and
  \`Pool.makeWithTTL({ min: M, max: M, timeToLive: "1 minute" })\`; generic-pool \`{ min: M, max: M }\`; tarn
  \`{ min: M, max: M }\` (its default 30 s acquire timeout stays on); pg-pool \`{ min: M, max: M }\` with a fake
  \`Client\` (connect / end / query / on / once / removeListener do nothing). The \`effect+\` subjects use the same
  three pools, configured the same way.
- **Safe defaults stay on** for effect-reservoir: the fair FIFO waiter queue (no barging), interruption-safe checkout,
  metrics (gauges and histograms are updated on every checkout and return), no policies, nobody listening.
  \`effect-reservoir/use+policies\` is the same \`Pool.use\` with the policies a database pool runs with:
  \`[Policy.recycle("30 minutes"), Policy.maxUses(1e9), Policy.resetOnReturn("rollback")]\` (on a no-op resource the
  reset has nothing to reset, as after autocommit work on PostgreSQL or SQLite), to show what running them costs.
- **Borrowers**: N loops of \`request → checkout → hold → return\`. Effect pools and the Effect floors run as **one**
  \`Effect.runPromise\` of \`Effect.forEach(N loops, { concurrency: "unbounded" })\` (N fibers on the default runtime and
  scheduler), and so do the promise pools called from Effect (\`effect+…\`); promise pools and \`floor/await\` run N
  \`async\` loops under one \`Promise.all\`. Each is what a user of that library would write. A **start gate** holds every
  borrower until all N are running, and the warm-up starts when it opens: without it, a borrower that never parks
  (hold \`none\` with a free resource) runs on alone and Effect never gets back to the \`forEach\` that starts the others
  (one fiber of ten was running after 3 s). With all N running, fibers of a barging pool (Effect's Pool, its
  Semaphore) still run many cycles per turn, each finding a resource free; a fair pool forms a queue (a convoy) and
  every cycle parks: that is the price of FIFO. Whether a convoy forms under hold \`none\` is a matter of phase: it
  starts when the fibers holding all M resources were each stopped by Effect's 2048-operation budget in the middle of
  a cycle, and where the budget ends inside a cycle depends on how many operations a cycle takes. Measured on
  \`floor/handoff-masked\` at 1000/10, padding its cycle with 0–5 extra \`Effect.void\` steps gave no convoy at 0, 1, 3
  and 4 (p50 wait under 2 µs, 320k–520k ops/s) and a convoy at 2 and 5 (p50 wait 5.7–7.3 ms, 146k–164k ops/s). So at
  1000/10 and 10000/100 under hold \`none\`, compare a pool with the floor that convoys the same way (\`p50 wait\` tells
  which).
- **Checkout forms**: \`effect-reservoir/use\` is \`Pool.use(pool, f)\`; \`effect-reservoir/get\` is
  \`Effect.scoped(Effect.flatMap(Pool.get(pool), f))\`; Effect's Pool is \`Effect.scoped(Effect.flatMap(Pool.get(pool),
  f))\`; promise pools \`await acquire()\` then \`release()\`. \`effect+generic-pool\`, \`effect+tarn\` and \`effect+pg-pool\`
  are those pools called from fibers, as an Effect program would call them, and what an Effect user would pick
  instead of this pool: \`Effect.acquireUseRelease(Effect.promise(() => pool.acquire()), f, (r) => Effect.sync(() =>
  pool.release(r)))\` with each library's own API (generic-pool \`acquire()\` / \`release(r)\`, tarn
  \`acquire().promise\` / \`release(r)\`, pg-pool \`connect()\` / \`client.release()\`). Each release takes effect at
  once (generic-pool's returns a promise already settled, which neither of its forms awaits), so \`Effect.sync\` is
  the least a caller adds. The promise-caller subjects (\`generic-pool\`, \`tarn\`, \`pg-pool\`) stay as the reference:
  each library without Effect around it.
- **Before and after** (\`--baseline DIR\`): \`DIR\` is the \`src/\` of another checkout (or the checkout around it),
  e.g. \`git worktree add /work/before <commit>\` with this checkout's \`node_modules\` symlinked into it. Its \`Pool.ts\`
  and \`Policy.ts\` are bundled into the same worker as ours, sharing one copy of Effect (\`bench/baseline.ts\`,
  \`bench/bundle.ts\`), and run as \`baseline/use\`, \`baseline/get\` and \`baseline/use+policies\`, each right after its
  counterpart in every round. The report adds new ÷ baseline per scenario: the median of the per-round ratios of
  ops/s, with their range, and the heap per parked waiter of both. Named in \`--pools\` without \`--baseline\`, the
  \`baseline/\` subjects run this checkout's own code: an A/A run that shows how far the same code moves.
- **Hold**: \`none\` returns at once; \`tick\` holds the resource across one event-loop turn through the macrotask
  queue, the same way for everyone: \`Effect.async\` resumed by \`setImmediate\`, or a Promise resolved by
  \`setImmediate\`.
- **Floors** carry the same bookkeeping as the pools, so they show the harness's own cost too. Without a pool
  (N loops, M ignored): \`floor/await\` awaits an already-resolved promise; \`floor/acquireUseRelease\` is
  \`Effect.acquireUseRelease(Effect.void, f, () => Effect.void)\`; \`floor/scoped\` is \`Effect.scoped(f())\`.
  With M permits: \`floor/semaphore\` (only with \`--pools floor/semaphore\`) is Effect's \`Semaphore.withPermits(1)\`, which barges (a fiber that gives a
  permit back takes it again before the fibers it woke run), so under hold \`none\` it hardly ever parks and is no
  contended floor. The contended floors are a fair hand-off, the least a FIFO pool can do in Effect: M tokens and a
  queue of parked fibers, a returned token going to the oldest (\`bench/handoff.ts\`, shared with \`bench:pg\`), so under
  contention every cycle parks and resumes a fiber. \`floor/handoff\` is just that (no timeouts, no interruption
  safety, no metrics); \`floor/handoff-masked\` adds what interruption safety costs in Effect
  (\`uninterruptibleMask\`, \`restore\` around wait and work, one clean-up); \`floor/scoped-handoff\` is the hand-off
  inside \`Effect.scoped\` with the return as the scope's one finalizer, the least a scoped checkout costs.
- **Isolation and drift**: every (pool, scenario) runs in a fresh Node process; within a scenario the pools run
  one after another round-robin and the starting pool rotates each round; the table shows the median of the rounds.
- **Metrics**: ops/s is cycles granted inside the measured window (after a warm-up) divided by its wall time. CPU
  ns/op is \`process.cpuUsage()\` (user + system) over the window divided by those cycles (the harness's own bookkeeping
  included, the same for all). Wait is from entering the pool (see below) to the moment the borrower runs with the
  resource, with \`process.hrtime.bigint()\`, kept in a preallocated \`Float64Array\` (reservoir-sampled past 2^20
  samples). Max is exact and also counts the oldest request still waiting when the window closes: a borrower a
  pool starves for the whole window is never granted, and would otherwise be missing from it.
- **FIFO inversions**: each request takes a global sequence number, and its start time for the wait, at the moment it
  enters the pool: in the same synchronous step that hands the checkout to the pool (inside an \`Effect.suspend\` whose
  result is \`Pool.use\` / \`Pool.get\`, after \`Effect.scoped\` has opened its scope; for promise pools the line before
  \`acquire()\`, inside the \`Effect.promise\` thunk for the \`effect+\` subjects). The definition is the same for every
  pool; taking the number earlier (before \`Effect.scoped\`) let fiber preemption between numbering and reaching the
  pool reorder arrivals that the pool never saw in that order. A grant is an inversion when an earlier request is
  still waiting at that moment (the grant overtook it). Reported is the most seen in any round.
- **Heap per parked waiter**: a pool of one, held by one borrower; after \`global.gc()\` (\`--expose-gc\`),
  \`heapUsed\` before and after parking W waiters (10k and 100k), divided by W. A waiter is the whole borrower: the
  fiber of \`Effect.runFork(checkout)\`, or the \`async\` function and its promise. \`floor/fiber\` is a bare fiber
  parked in \`Effect.async\`; \`floor/await\` a bare \`async\` function awaiting a pending promise;
  \`floor/handoff\`, \`floor/handoff-masked\` and \`floor/scoped-handoff\` are fibers parked in those floors: the
  masked one is what a parked waiter weighs once Effect's interruption safety is around the wait.
- **Targets** are ratios from the same run, never wall-clock thresholds. Under each one, "Effect's floor, same
  measure" computes the same ratio for the floors above, from the same run: where a floor misses a target too, the
  target is below what Effect 3 itself can do, and the line shows how far.

${runMarkdown.replace(/^## /m, "## Latest ").replace(/^### /gm, "### ")}
${pgSection === undefined ? "" : `\n${pgSection.trim()}\n`}`

/** The markers around the PostgreSQL section that \`bench/pg.ts --docs\` writes into \`docs/benchmarks.md\`. */
export const pgSectionMarkers = { start: "<!-- bench:pg:start -->", end: "<!-- bench:pg:end -->" } as const

/** The PostgreSQL section of an existing page, markers included, so regenerating the page keeps it. */
export const pgSectionOf = (page: string): string | undefined => {
  const i = page.indexOf(pgSectionMarkers.start)
  const j = page.indexOf(pgSectionMarkers.end)
  return i >= 0 && j > i ? page.slice(i, j + pgSectionMarkers.end.length) : undefined
}
