/**
 * What the demo shows. On a terminal, a live view redrawn in place with log-update about seven times a second: a
 * progress bar, the pool (open, in use, idle, waiting), throughput, the p99 checkout wait, errors by kind, the
 * circuit breaker's state and the latest log lines. When stdout is not a terminal, plain lines: every log line as it
 * happens and one status line a second, without escape codes. Then the report, the same either way.
 */
import { createLogUpdate } from "log-update"
import type { BreakerState } from "../src/Policy.js"
import type { PoolStats } from "../src/PoolError.js"
import type { Tally, Totals } from "./bank.js"
import type { Fault } from "./faults.js"

/** What one redraw shows. */
export interface Snapshot {
  /** Milliseconds since the workload started, and how long it runs. */
  readonly elapsed: number
  readonly duration: number
  readonly stats: PoolStats
  /** Commits per second over the last second. */
  readonly throughput: number
  /** The p99 of checkout waits over the last second, in milliseconds (`undefined`: no checkout). */
  readonly p99: number | undefined
  readonly tally: Tally
  readonly breaker: BreakerState
}

/** The live view, or plain lines. */
export interface View {
  /** Milliseconds between two `update`s. */
  readonly interval: number
  readonly log: (line: string) => void
  readonly update: (snapshot: Snapshot) => void
  /** Draws the last frame (and leaves it on screen), before the report is printed. */
  readonly finish: (snapshot: Snapshot) => void
}

const plural = (count: number, noun: string) => `${count} ${noun}${count === 1 ? "" : "s"}`

const seconds = (millis: number): string => `${(millis / 1000).toFixed(1)} s`

const formatWait = (p99: number | undefined): string =>
  p99 === undefined ? "-" : p99 === 0 ? "0 ms" : p99 < 1 ? `${p99.toFixed(2)} ms` : `${p99.toPrecision(3)} ms`

/** `lost connection 3, busy 1`, or `none`. */
export const formatErrors = (errors: ReadonlyMap<string, number>): string =>
  errors.size === 0 ? "none" : [...errors].map(([kind, count]) => `${kind} ${count}`).join(", ")

const poolLine = (stats: PoolStats): string =>
  `open ${stats.open}/${stats.size + stats.maxOverflow}  in use ${stats.inUse}  idle ${stats.idle}  ` +
  `waiting ${stats.waiting}  opening ${stats.opening}`

/** The plain status line, e.g. `[ 3.0 s  21%] pool open 8/8 in use 8 ... | 2345 transfers/s | ...`. */
export const statusLine = (s: Snapshot): string => {
  const percent = Math.min(100, Math.floor((s.elapsed / s.duration) * 100))
  return `[${seconds(s.elapsed).padStart(6)} ${String(percent).padStart(3)}%] ` +
    `pool open ${s.stats.open}/${s.stats.size + s.stats.maxOverflow} in use ${s.stats.inUse} idle ${s.stats.idle} ` +
    `waiting ${s.stats.waiting} | ${Math.round(s.throughput)} transfers/s | p99 wait ${formatWait(s.p99)} | ` +
    `committed ${s.tally.committed} | errors ${formatErrors(s.tally.errors)} | breaker ${s.breaker}`
}

const ansi = (code: string) => (text: string) => `\x1b[${code}m${text}\x1b[0m`
const bold = ansi("1")
const dim = ansi("2")
const red = ansi("31")
const green = ansi("32")
const yellow = ansi("33")

const breakerColour = (state: BreakerState) => state === "closed" ? green : state === "open" ? red : yellow

const BAR_WIDTH = 40

/** The live view's frame: the header, the progress bar, the numbers, then the latest log lines. */
export const frame = (header: string, s: Snapshot, lines: ReadonlyArray<string>): string => {
  const ratio = Math.min(1, s.elapsed / s.duration)
  const filled = Math.round(ratio * BAR_WIDTH)
  const bar = green("█".repeat(filled)) + dim("░".repeat(BAR_WIDTH - filled))
  const t = s.tally
  const errors = t.errors.size === 0 ? dim("none") : red(formatErrors(t.errors))
  return [
    bold(header),
    `${bar} ${String(Math.floor(ratio * 100)).padStart(3)}%  ${seconds(s.elapsed)} of ${seconds(s.duration)}`,
    "",
    `  pool        ${poolLine(s.stats)}`,
    `  transfers   ${bold(String(Math.round(s.throughput)))}/s   committed ${t.committed}  declined ${t.declined}  ` +
    `failed ${t.failed}  retries ${t.retries}`,
    `  p99 wait    ${formatWait(s.p99)} ${dim("(checkouts in the last second)")}`,
    `  errors      ${errors}`,
    `  breaker     ${breakerColour(s.breaker)(s.breaker)}`,
    "",
    ...lines.map((line) => `  ${line}`)
  ].join("\n")
}

/** A log line with the time since the start: `    6.5 s  fault: ...`. */
export const stampLine = (elapsed: number, line: string): string => `${seconds(elapsed).padStart(7)}  ${line}`

/** How many log lines the live view keeps under the numbers. */
const VISIBLE_LINES = 8

/** A live view on a terminal (`tty`), plain lines otherwise; log lines are stamped with `elapsed()`. */
export const make = (options: {
  readonly tty: boolean
  readonly header: string
  readonly elapsed: () => number
}): View => {
  const stamp = (line: string) => stampLine(options.elapsed(), line)
  if (!options.tty) {
    return {
      interval: 1000,
      log: (line) => console.log(stamp(line)),
      update: (snapshot) => console.log(statusLine(snapshot)),
      finish: (snapshot) => console.log(statusLine(snapshot))
    }
  }
  // stdout as log-update sees it, with a size when the terminal reports none (0 rows would show nothing)
  const terminal = {
    write: (chunk: string) => process.stdout.write(chunk),
    get rows() {
      return process.stdout.rows || 24
    },
    get columns() {
      return process.stdout.columns || 100
    }
  }
  const logUpdate = createLogUpdate(terminal as unknown as NodeJS.WritableStream)
  const lines: Array<string> = []
  let last: Snapshot | undefined
  let finished = false
  const draw = (snapshot: Snapshot) => logUpdate(frame(options.header, snapshot, lines.slice(-VISIBLE_LINES)))
  return {
    interval: 150,
    log: (line) => {
      if (finished) return console.log(stamp(line))
      lines.push(stamp(line))
      if (last !== undefined) draw(last)
    },
    update: (snapshot) => {
      last = snapshot
      draw(snapshot)
    },
    finish: (snapshot) => {
      draw(snapshot)
      logUpdate.done()
      finished = true
    }
  }
}

/** Everything the report says. */
export interface Report {
  readonly database: string
  readonly seconds: number
  readonly concurrency: number
  readonly size: number
  readonly interrupted: boolean
  readonly tally: Tally
  readonly faults: ReadonlyArray<Fault>
  readonly before: Totals
  /** The totals read back after the run, or why they could not be. */
  readonly after: Totals | string
  readonly status: string
  readonly events: ReadonlyMap<string, number>
  readonly closes: ReadonlyMap<string, number>
  readonly breaker: BreakerState
  readonly breakerChanges: ReadonlyMap<string, number>
  /** The pool's log lines (warnings), counted. */
  readonly warnings: ReadonlyMap<string, number>
}

/** Whether every unit of money is accounted for: the conservation check. */
export const holds = (report: Report): boolean => {
  const after = report.after
  if (typeof after === "string") return false
  const ledgerOk = after.ledger >= report.tally.committed &&
    after.ledger <= report.tally.committed + report.tally.interrupted
  return after.total === report.before.total && after.accounts === report.before.accounts && after.lowest >= 0 &&
    ledgerOk
}

const counts = (map: ReadonlyMap<string, number>): string =>
  map.size === 0 ? "none" : [...map].map(([key, count]) => `${key} ${count}`).join(", ")

/** The report, as plain text (no escape codes, so it reads the same in a log). */
export const formatReport = (report: Report): string => {
  const t = report.tally
  const after = report.after
  const ok = holds(report)
  const conservation = typeof after === "string"
    ? `BROKEN: the balances could not be read back (${after})`
    : `${ok ? "holds" : "BROKEN"}: total ${report.before.total} before, ${after.total} after; ` +
      `${after.accounts} accounts, lowest balance ${after.lowest}; ` +
      `ledger ${after.ledger} rows for ${t.committed} commits`
  const events = [...report.events].map(([tag, count]) =>
    tag === "Close" && report.closes.size > 0 ? `${tag} ${count} (${counts(report.closes)})` : `${tag} ${count}`
  ).join(", ")
  return [
    "",
    "── report " + "─".repeat(70),
    `database      ${report.database}`,
    `run           ${report.seconds.toFixed(1)} s, ${report.concurrency} workers, pool size ${report.size}` +
    (report.interrupted ? " (ended early: interrupted)" : ""),
    `transfers     ${t.attempted} attempted: ${t.committed} committed, ${t.declined} declined, ${t.failed} failed, ` +
    `${t.interrupted} interrupted`,
    `retries       ${t.retries} retries on ${t.retriedTransfers} transfers` +
    (t.alreadyCommitted > 0 ? ` (${t.alreadyCommitted} found their earlier COMMIT had gone through)` : ""),
    `errors        ${formatErrors(t.errors)}`,
    `faults        ${report.faults.length} injected`,
    ...report.faults.map((fault) =>
      `  ${seconds(fault.at).padStart(7)}  ${fault.description}; ` +
      (fault.recoveredAfter === undefined
        ? `no recovery seen, ${t.committed - fault.committedAt} commits after`
        : `recovered in ${Math.round(fault.recoveredAfter)} ms, ${t.committed - fault.committedAt} commits after`)
    ),
    `conservation  ${conservation}`,
    `Pool.status   ${report.status}`,
    `events        ${events}`,
    `breaker       ${report.breaker}; changes: ${counts(report.breakerChanges)}`,
    `pool logs     ${
      report.warnings.size === 0
        ? "none"
        : `${plural([...report.warnings.values()].reduce((a, b) => a + b, 0), "line")}:`
    }`,
    ...[...report.warnings].map(([text, count]) => `  ${count} x ${text}`),
    `result        ${ok ? "OK: every unit of money is accounted for" : "FAILED: the conservation check does not hold"}`
  ].join("\n")
}
