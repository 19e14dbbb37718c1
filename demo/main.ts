/**
 * `npm start`: the demo's command line (`@effect/cli`), run with `NodeRuntime.runMain`, which interrupts the program
 * on SIGINT / SIGTERM (the report is printed all the same). The exit code is 0 when the conservation check holds, 1
 * when it does not, when the database cannot be reached, or on a crash, and 2 for a bad flag.
 *
 *     npm start                                   # SQLite, about 15 s
 *     npm start -- --duration 5 --concurrency 32 --size 4
 *     npm start -- --pg --chaos                   # a throwaway PostgreSQL cluster, restarted mid-run
 *     DATABASE_URL=postgres://... npm start       # your PostgreSQL
 */
import * as Command from "@effect/cli/Command"
import * as HelpDoc from "@effect/cli/HelpDoc"
import * as Options from "@effect/cli/Options"
import * as ValidationError from "@effect/cli/ValidationError"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as Cause from "effect/Cause"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import { readFileSync } from "node:fs"
import type { DemoError } from "./database.js"
import { type Outcome, run } from "./run.js"

const check = <A extends number>(flag: string, valid: (value: A) => boolean, expected: string) => (value: A) =>
  valid(value)
    ? Effect.succeed(value)
    : Effect.fail(ValidationError.invalidValue(HelpDoc.p(`--${flag} must be ${expected}, got ${value}`)))

const duration = Options.float("duration").pipe(
  Options.withDescription("How long the transfers run, in seconds (default 13: the whole demo takes about 15 s)."),
  Options.withDefault(13),
  Options.mapEffect(check("duration", (n) => n > 0 && n <= 3600, "more than 0 and at most 3600 seconds"))
)

const concurrency = Options.integer("concurrency").pipe(
  Options.withDescription("How many workers run transfers at once (default 16)."),
  Options.withDefault(16),
  Options.mapEffect(check("concurrency", (n) => n >= 1 && n <= 1000, "between 1 and 1000"))
)

const size = Options.integer("size").pipe(
  Options.withDescription("The pool's size: connections open at most, no overflow (default 8)."),
  Options.withDefault(8),
  Options.mapEffect(check("size", (n) => n >= 1 && n <= 100, "between 1 and 100"))
)

const chaos = Options.boolean("chaos").pipe(
  Options.withDescription(
    "One bigger fault mid-run: with --pg the server restarts; with DATABASE_URL every session of the pool is " +
      "killed at once; on SQLite a long transaction holds the write lock for 2.5 s."
  )
)

const pg = Options.boolean("pg").pipe(
  Options.withDescription(
    "Start a throwaway PostgreSQL 15 cluster (needs the server binaries) instead of SQLite; without it, " +
      "DATABASE_URL (when set) selects your PostgreSQL."
  )
)

/** The exit code the run decides (through the report); `undefined` until it has. */
const outcome: Outcome = { code: undefined }

const demo = Command.make(
  "demo",
  { duration, concurrency, size, chaos, pg },
  (options) =>
    run(options, outcome).pipe(
      Effect.catchTag("DemoError", (error: DemoError) =>
        Effect.zipRight(
          Console.error(`demo: ${error.message}`),
          Effect.sync(() => {
            outcome.code = 1
          })
        ))
    )
).pipe(
  Command.withDescription(
    "Bank transfers between accounts through an effect-reservoir pool, each one a transaction, with connections " +
      "killed on the way: a live view while it runs, then a report with the conservation check (the total " +
      "balance is unchanged). Exits 0 only when that check holds."
  )
)

const version = (JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string })
  .version

const cli = Command.run(demo, { name: "effect-reservoir demo", version })

cli(process.argv).pipe(
  // a bad flag: @effect/cli has printed what is wrong; exit 2, as command-line tools do
  Effect.catchIf(ValidationError.isValidationError, () =>
    Effect.sync(() => {
      outcome.code = 2
    })),
  Effect.provide(NodeContext.layer),
  NodeRuntime.runMain({
    disablePrettyLogger: true,
    teardown: (exit, onExit) => {
      // a crash is 1; otherwise what the report decided (0 for --help, which decides nothing)
      if (Exit.isFailure(exit) && !Cause.isInterruptedOnly(exit.cause)) return onExit(1)
      onExit(outcome.code ?? (Exit.isFailure(exit) ? 130 : 0))
    }
  })
)
