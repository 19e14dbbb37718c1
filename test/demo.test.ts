/**
 * `npm start`, run for real: the demo as a subprocess (`node --import tsx demo/main.ts`), stdout a pipe (so plain
 * lines, no escape codes), with short durations. Its report is parsed and checked: the conservation check holds,
 * the numbers add up, faults were injected and commits followed them. One run on a throwaway PostgreSQL cluster with
 * `--chaos` (a server restart); `--help`, a bad flag, missing server binaries and SIGINT. docs/demo.md's sample
 * report has the shape of a real one, and the messages it quotes are the demo's.
 */
import { assert, describe, it } from "@effect/vitest"
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { ACCOUNTS, OPENING_BALANCE, Tally } from "../demo/bank.js"
import * as View from "../demo/view.js"
import type { PoolStats } from "../src/PoolError.js"

const root = path.resolve(import.meta.dirname, "..")

interface Run {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

/** Runs the demo with `args`; `interruptWhen` sends SIGINT once stdout satisfies it. */
const demo = (
  args: ReadonlyArray<string>,
  options: { readonly env?: Record<string, string>; readonly interruptWhen?: (stdout: string) => boolean } = {}
): Promise<Run> =>
  new Promise((resolve, reject) => {
    const env: Record<string, string | undefined> = { ...process.env, ...options.env }
    if (options.env?.["DATABASE_URL"] === undefined) delete env["DATABASE_URL"]
    const child = spawn(process.execPath, ["--import", "tsx", "demo/main.ts", ...args], {
      cwd: root,
      env,
      stdio: ["ignore", "pipe", "pipe"]
    })
    let stdout = ""
    let stderr = ""
    let interrupted = false
    const timer = setTimeout(() => child.kill("SIGKILL"), 50_000)
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      stdout += chunk
      if (!interrupted && options.interruptWhen?.(stdout) === true) {
        interrupted = true
        child.kill("SIGINT")
      }
    })
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk))
    child.on("error", reject)
    child.on("close", (code) => {
      clearTimeout(timer)
      resolve({ code, stdout, stderr })
    })
  })

/** A line of the report: `label` then its text. */
const line = (stdout: string, label: string): string => {
  const match = stdout.match(new RegExp(`^${label.replace(/\./g, "\\.")} +(.*)$`, "m"))
  assert.isNotNull(match, `the report has a "${label}" line:\n${stdout}`)
  return match![1]!
}

/** `Tag 12, Other 3 (why 3)` as counts. */
const counts = (text: string): Map<string, number> =>
  new Map(
    text === "none" ? [] : text.split(/, (?![^(]*\))/).map((part) => {
      const match = part.match(/^(.*?) (\d+)(?: \(.*\))?$/)
      assert.isNotNull(match, `a count: ${part}`)
      return [match![1]!, Number(match![2])] as const
    })
  )

interface Parsed {
  readonly attempted: number
  readonly committed: number
  readonly declined: number
  readonly failed: number
  readonly interrupted: number
  readonly retries: number
  readonly retriedTransfers: number
  readonly errors: Map<string, number>
  readonly faults: ReadonlyArray<{ readonly description: string; readonly commitsAfter: number }>
  readonly before: number
  readonly after: number
  readonly ledger: number
  readonly status: string
  readonly events: Map<string, number>
}

const TRANSFERS = /^(\d+) attempted: (\d+) committed, (\d+) declined, (\d+) failed, (\d+) interrupted$/
const CONSERVATION =
  /^holds: total (\d+) before, (\d+) after; (\d+) accounts, lowest balance (\d+); ledger (\d+) rows for (\d+) commits$/
const FAULT = /^ {2,}\d+\.\d s {2}(.*); (?:recovered in \d+ ms|no recovery seen), (\d+) commits after$/
const STATUS = /^Pool size: \d+ {2}Connections in pool: \d+ Current Overflow: -?\d+ Current Checked out connections: 0$/

/** Parses the report and checks what every run's report must satisfy. */
const report = (run: Run): Parsed => {
  const { stdout } = run
  assert.notInclude(stdout, "\x1b", "no escape codes when stdout is not a terminal")
  const transfers = line(stdout, "transfers").match(TRANSFERS)
  assert.isNotNull(transfers, line(stdout, "transfers"))
  const [attempted, committed, declined, failed, interrupted] = transfers!.slice(1).map(Number) as [
    number,
    number,
    number,
    number,
    number
  ]
  const conservation = line(stdout, "conservation").match(CONSERVATION)
  assert.isNotNull(conservation, `the conservation check holds: ${line(stdout, "conservation")}`)
  const [before, after, accounts, lowest, ledger, commits] = conservation!.slice(1).map(Number)
  const retries = line(stdout, "retries").match(/^(\d+) retries on (\d+) transfers/)
  assert.isNotNull(retries)
  const faultCount = Number(line(stdout, "faults").match(/^(\d+) injected$/)![1])
  const faultLines = stdout.split("\n").filter((l) => FAULT.test(l))
  assert.strictEqual(faultLines.length, faultCount, "one line per fault")
  const status = line(stdout, "Pool.status")
  assert.match(status, STATUS)
  assert.strictEqual(line(stdout, "result"), "OK: every unit of money is accounted for")
  assert.strictEqual(accounts, ACCOUNTS)
  assert.isAtLeast(lowest!, 0)
  assert.strictEqual(commits, committed)
  return {
    attempted,
    committed,
    declined,
    failed,
    interrupted,
    retries: Number(retries![1]),
    retriedTransfers: Number(retries![2]),
    errors: counts(line(stdout, "errors")),
    faults: faultLines.map((l) => {
      const [, description, after] = l.match(FAULT)!
      return { description: description!, commitsAfter: Number(after) }
    }),
    before: before!,
    after: after!,
    ledger: ledger!,
    status,
    events: counts(line(stdout, "events"))
  }
}

/** The numbers of a report add up. */
const addsUp = (r: Parsed) => {
  // every transfer ends one way
  assert.strictEqual(r.committed + r.declined + r.failed + r.interrupted, r.attempted)
  // the money is all there, and every commit wrote its ledger row
  assert.strictEqual(r.before, ACCOUNTS * OPENING_BALANCE)
  assert.strictEqual(r.after, r.before)
  assert.strictEqual(r.ledger, r.committed)
  // every failed attempt was either retried or the end of a failed transfer
  const failedAttempts = [...r.errors.values()].reduce((a, b) => a + b, 0)
  if (r.interrupted === 0) assert.strictEqual(failedAttempts, r.retries + r.failed)
  assert.isAtMost(r.retriedTransfers, r.retries)
  // every lending came back, and each transfer that ended in the database had one
  assert.strictEqual(r.events.get("Checkout"), r.events.get("Checkin"))
  assert.isAtLeast(r.events.get("Checkout") ?? 0, r.committed + r.declined)
}

describe("npm start: the demo", () => {
  it("on SQLite: transfers commit through killed connections, the money is conserved, the report adds up", async () => {
    const run = await demo(["--duration", "3"])
    assert.strictEqual(run.code, 0, run.stdout + run.stderr)
    const r = report(run)
    addsUp(r)
    assert.isAbove(r.committed, 0)
    // plain status lines, one a second, while it runs
    assert.match(
      run.stdout,
      /^\[ +\d+\.\d s +\d+%\] pool open \d+\/8 in use \d+ idle \d+ waiting \d+ \| \d+ transfers\/s \| p99 wait .* \| committed \d+ \| errors .* \| breaker closed$/m
    )
    assert.include(line(run.stdout, "database"), "SQLite, temporary file ")
    // faults: connections killed under the pool, then replaced, and commits after each
    assert.isAtLeast(r.faults.length, 1)
    for (const fault of r.faults) {
      assert.match(fault.description, /^killing \d connections?: closing the SQLite handle of #\d+/)
    }
    assert.isAbove(r.faults[r.faults.length - 1]!.commitsAfter, 0)
    assert.match(run.stdout, /^ +\d+\.\d s {2}recovered \d+ ms after the fault at \d+\.\d s$/m)
    assert.isAbove(r.errors.get("lost connection") ?? 0, 0)
    assert.isAbove(r.events.get("Invalidate") ?? 0, 0)
    // the temporary database is gone
    const file = line(run.stdout, "database").match(/temporary file (\S+)/)![1]!
    assert.isFalse(fs.existsSync(path.dirname(file)))
  })

  it("on a throwaway PostgreSQL with --chaos: the server restarts mid-run and the transfers carry on", async () => {
    const run = await demo(["--pg", "--chaos", "--duration", "5"])
    assert.strictEqual(run.code, 0, run.stdout + run.stderr)
    const r = report(run)
    addsUp(r)
    assert.include(line(run.stdout, "database"), "PostgreSQL, a throwaway PostgreSQL 15 cluster on 127.0.0.1:")
    const restart = r.faults.find((f) =>
      f.description === "restarting the PostgreSQL server (pg_ctl stop -m fast, then start)"
    )
    assert.isDefined(restart, run.stdout)
    assert.isAbove(restart!.commitsAfter, 0)
    assert.match(
      run.stdout,
      /^ +\d+\.\d s {2}fault: restarting the PostgreSQL server \(pg_ctl stop -m fast, then start\)$/m
    )
    assert.match(run.stdout, /^ +\d+\.\d s {2}the server is back up after \d+\.\d s$/m)
    // when the breaker opened (three failed connects in a row), it said so and closed again
    if (run.stdout.includes("breaker open")) {
      assert.match(
        run.stdout,
        /^ +\d+\.\d s {2}breaker open after 3 failed connects in a row: checkouts fail at once$/m
      )
      assert.match(run.stdout, /^ +\d+\.\d s {2}breaker closed: a connect succeeded$/m)
      assert.strictEqual(line(run.stdout, "breaker").split(";")[0], "closed")
    }
    assert.isTrue(
      r.faults.some((f) =>
        /^killing \d connections?: pg_terminate_backend of #\d+ \(pid \d+, (lent|idle)\)/.test(f.description)
      )
    )
    assert.isAbove(r.errors.get("lost connection") ?? 0, 0)
  })

  it("SIGINT ends the run early and still prints the report", async () => {
    const run = await demo(["--duration", "60"], { interruptWhen: (stdout) => /\] pool open/.test(stdout) })
    assert.strictEqual(run.code, 0, run.stdout + run.stderr)
    const r = report(run)
    addsUp(r)
    assert.match(line(run.stdout, "run"), /^\d+\.\d s, 16 workers, pool size 8 \(ended early: interrupted\)$/)
  })

  it("--help lists every flag", async () => {
    const run = await demo(["--help"])
    assert.strictEqual(run.code, 0, run.stderr)
    const help = run.stdout.replace(/\x1b\[[0-9;]*m/g, "")
    for (const flag of ["--duration float", "--concurrency integer", "--size integer", "--chaos", "--pg", "--help"]) {
      assert.include(help, flag)
    }
    assert.include(help, "$ demo [--duration float] [--concurrency integer] [--size integer] [--chaos] [--pg]")
  })

  it("a bad flag exits 2 and says what is wrong", async () => {
    const run = await demo(["--size", "0"])
    assert.strictEqual(run.code, 2)
    assert.include(run.stderr, "--size must be between 1 and 100, got 0")
    assert.notInclude(run.stdout, "report")
  })

  it("--pg without the server binaries exits 1 with the install hint", async () => {
    const run = await demo(["--pg", "--duration", "1"], { env: { POSTGRES_BIN_DIR: "/nonexistent" } })
    assert.strictEqual(run.code, 1)
    assert.include(
      run.stderr,
      "demo: --pg: PostgreSQL 15 server binaries not found in /nonexistent (initdb, pg_ctl, postgres): install with " +
        "`apt-get install -y postgresql` (Debian) or set POSTGRES_BIN_DIR"
    )
  })

  it("a report whose balances do not add up says so, and fails", () => {
    const tally = new Tally()
    tally.attempted = 3
    tally.committed = 3
    const totals = { accounts: ACCOUNTS, total: ACCOUNTS * OPENING_BALANCE, lowest: 0, ledger: 3 }
    const base: View.Report = {
      database: "SQLite",
      seconds: 1,
      concurrency: 1,
      size: 1,
      interrupted: false,
      tally,
      faults: [],
      before: totals,
      after: totals,
      status: "",
      events: new Map(),
      closes: new Map(),
      breaker: "closed",
      breakerChanges: new Map(),
      warnings: new Map()
    }
    assert.isTrue(View.holds(base))
    const broken = { ...base, after: { ...totals, total: totals.total - 5 } }
    assert.isFalse(View.holds(broken))
    const text = View.formatReport(broken)
    assert.include(text, "\nconservation  BROKEN: total 100000 before, 99995 after;")
    assert.include(text, "\nresult        FAILED: the conservation check does not hold")
    // a ledger that misses a commit, or a balance below zero, breaks it too
    assert.isFalse(View.holds({ ...base, after: { ...totals, ledger: 2 } }))
    assert.isFalse(View.holds({ ...base, after: { ...totals, lowest: -1 } }))
    assert.include(
      View.formatReport({ ...base, after: "connection refused" }),
      "BROKEN: the balances could not be read back"
    )
  })

  it("docs/demo.md: its sample report has the shape of a real one, and its messages are the demo's", async () => {
    const page = fs.readFileSync(path.join(root, "docs", "demo.md"), "utf8")
    const sample = page.match(/```text\n(── report[\s\S]*?)```/)
    assert.isNotNull(sample, "docs/demo.md has a sample report")
    const parsed = report({ code: 0, stdout: sample![1]!, stderr: "" })
    addsUp(parsed)
    // the live view and the status line it shows are what view.ts draws for those numbers
    const tally = new Tally()
    Object.assign(tally, { committed: 3946, declined: 210, failed: 0, retries: 4 })
    tally.errors.set("lost connection", 4)
    const snapshot: View.Snapshot = {
      elapsed: 6500,
      duration: 13000,
      stats: { size: 8, maxOverflow: 0, open: 8, inUse: 8, idle: 0, waiting: 8, opening: 0 } as PoolStats,
      throughput: 565,
      p99: 25.6,
      tally,
      breaker: "closed"
    }
    const frame = View.frame("effect-reservoir demo: bank transfers on SQLite, 16 workers, pool size 8", snapshot, [
      View.stampLine(6500, "fault: killing 2 connections: closing the SQLite handle of #2 (lent), #9 (lent)"),
      View.stampLine(6500, "recovered 14 ms after the fault at 6.5 s")
    ]).replace(/\x1b\[[0-9;]*m/g, "")
    assert.include(page, "```text\n" + frame + "\n```")
    assert.include(page, "```text\n" + View.statusLine({ ...snapshot, elapsed: 7000 }) + "\n```")
    // the messages it quotes
    const missing = await demo(["--pg"], { env: { POSTGRES_BIN_DIR: "/usr/lib/postgresql/15/bin-missing" } })
    assert.include(page, missing.stderr.trim().replace("/bin-missing", "/bin"))
    for (
      const message of [
        "--size must be between 1 and 100, got 0",
        "fault: restarting the PostgreSQL server (pg_ctl stop -m fast, then start)",
        "the server is back up after ",
        "breaker open after 3 failed connects in a row: checkouts fail at once",
        "OK: every unit of money is accounted for",
        "FAILED: the conservation check does not hold",
        "recovered 14 ms after the fault at 6.5 s",
        "(ended early: interrupted)"
      ]
    ) assert.include(page.replace(/\s+/g, " "), message)
  })
})
