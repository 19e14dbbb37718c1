/**
 * Bad input as property tests (issue 14): arbitrary option objects, field by field valid or one of many invalid
 * kinds (wrong types, negatives, NaN, ±Infinity, fractions, bad durations, contradictions across options, a bad
 * source, policies built with bad arguments or not policies at all), several at once, over the Memory driver. A pool
 * is built exactly when every field is valid; otherwise `Pool.make` fails with one `PoolConfigError` whose `problems`
 * hold one line per problem, naming the field (or the policy and its argument), and nothing about a valid field; a
 * pool that is built shows every value as given in `Pool.config` and `Pool.stats`: never a silent clamp. Then the same
 * for the SQLite `SqlClient`'s options (`:memory:` and a file), whose own names map to the pool's options.
 *
 * Default run: 300 + 150 + 120 cases, about 10 seconds; PROP_RUNS=<n> runs n cases in each property instead.
 */
import * as Reactivity from "@effect/experimental/Reactivity"
import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Exit, FastCheck as fc, Logger, Schedule } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as Memory from "../../src/Driver/Memory.js"
import * as Policy from "../../src/Policy.js"
import * as Pool from "../../src/Pool.js"
import { PoolConfigError } from "../../src/PoolError.js"
import * as SqlSqlite from "../../src/Sql/Sqlite.js"
import { uniqueName } from "../utils/pool.js"

const runs = (byDefault: number): number => Number(process.env.PROP_RUNS ?? byDefault)

/** What a pool's configuration shows for a value (`Pool.config`: durations in milliseconds or `"Infinity"`). */
type Shown = string | number | boolean | { readonly [k: string]: string }

/** One field of a generated options object: absent, or a value that is valid (shown as `shown`) or not. */
type Field =
  | { readonly _tag: "Absent" }
  | { readonly _tag: "Valid"; readonly value: unknown; readonly shown: Shown; readonly label: string }
  | { readonly _tag: "Invalid"; readonly value: unknown; readonly label: string }

const valid = (value: unknown, shown: Shown, label = String(value)): Field => ({ _tag: "Valid", value, shown, label })
const invalid = (value: unknown, label: string): Field => ({ _tag: "Invalid", value, label })
const absent: Field = { _tag: "Absent" }

/** A field: absent, valid or invalid, the invalid kinds common enough that several appear at once. */
const field = (valids: ReadonlyArray<Field>, invalids: ReadonlyArray<Field>): fc.Arbitrary<Field> =>
  fc.oneof(
    { weight: 4, arbitrary: fc.constant(absent) },
    { weight: 4, arbitrary: fc.constantFrom(...valids) },
    { weight: 2, arbitrary: fc.constantFrom(...invalids) }
  )

const counts = (min: number, max: number): ReadonlyArray<Field> =>
  Array.from({ length: max - min + 1 }, (_, i) => valid(min + i, min + i))

/** Invalid for every count: a negative, fractions, NaN, −Infinity, a numeric string, other types. */
const badCounts: ReadonlyArray<Field> = [
  invalid(-1, "-1"),
  invalid(-0.5, "-0.5"),
  invalid(1.5, "1.5"),
  invalid(NaN, "NaN"),
  invalid(-Infinity, "-Infinity"),
  invalid("3", "\"3\""),
  invalid(null, "null"),
  invalid(true, "true"),
  invalid({}, "{}"),
  invalid(2n, "2n")
]

const unbounded: ReadonlyArray<Field> = [
  valid("unbounded", "unbounded"),
  // documented: Infinity stands for "unbounded" in the counts that allow it
  valid(Infinity, "unbounded", "Infinity")
]

/** Every way `DurationInput` (or its JSON form) gives a duration, and what `Pool.config` shows for it. */
const durations: ReadonlyArray<Field> = [
  valid(250, 250),
  valid(1.5, 1.5),
  valid(Infinity, "Infinity"),
  valid("30 seconds", 30_000, "\"30 seconds\""),
  valid("250 millis", 250, "\"250 millis\""),
  valid("Infinity", "Infinity", "\"Infinity\""),
  valid(" 1500 ", 1500, "\" 1500 \""),
  valid(Duration.seconds(2), 2000, "Duration.seconds(2)"),
  valid(Duration.infinity, "Infinity", "Duration.infinity"),
  valid(1_500_000_000n, 1500, "1500000000n"),
  valid([1, 500_000_000], 1500, "[1, 500000000]")
]
const zeroDuration = valid(0, 0)

const badDurations: ReadonlyArray<Field> = [
  invalid(-1, "-1"),
  invalid(-0.001, "-0.001"),
  invalid(NaN, "NaN"),
  invalid(-Infinity, "-Infinity"),
  invalid("soon", "\"soon\""),
  invalid("-5 seconds", "\"-5 seconds\""),
  invalid("-1", "\"-1\""),
  invalid("", "\"\""),
  invalid("NaN", "\"NaN\""),
  invalid(null, "null"),
  invalid(true, "true"),
  invalid({}, "{}"),
  invalid([1], "[1]"),
  invalid([1, NaN], "[1, NaN]"),
  invalid([-1, 0], "[-1, 0]"),
  invalid(-1n, "-1n")
]

/** The pool's options, each a field arbitrary. `name`'s valid values are made unique at run time. */
const fields = {
  name: field([valid("p", "p"), valid("pool one", "pool one")], [
    invalid("", "\"\""),
    invalid(42, "42"),
    invalid(null, "null"),
    invalid({ a: 1 }, "{ a: 1 }")
  ]),
  size: field(counts(0, 4), [...badCounts, invalid(Infinity, "Infinity")]),
  maxOverflow: field([...counts(0, 3), ...unbounded], [...badCounts, invalid("lots", "\"lots\"")]),
  min: field(counts(0, 3), [...badCounts, invalid(Infinity, "Infinity")]),
  timeout: field([...durations, zeroDuration], badDurations),
  connectTimeout: field([...durations, zeroDuration], badDurations),
  order: field([valid("fifo", "fifo"), valid("lifo", "lifo")], [
    invalid("FIFO", "\"FIFO\""),
    invalid("random", "\"random\""),
    invalid(1, "1"),
    invalid(null, "null")
  ]),
  maxWaiters: field([...counts(0, 3), valid(100, 100), ...unbounded], [...badCounts, invalid("many", "\"many\"")]),
  labels: field([valid({}, {}, "{}"), valid({ team: "a", tier: "b" }, { team: "a", tier: "b" }, "{ team, tier }")], [
    invalid({ team: 1 }, "{ team: 1 }"),
    invalid("team=a", "\"team=a\""),
    invalid(5, "5"),
    invalid(null, "null")
  ]),
  shutdownTimeout: field([...durations, zeroDuration], badDurations),
  echo: field([valid(true, true), valid(false, false), valid("debug", "debug")], [
    invalid("verbose", "\"verbose\""),
    invalid("true", "\"true\""),
    invalid(1, "1"),
    invalid(null, "null")
  ]),
  maxCheckoutAttempts: field(counts(1, 5), [...badCounts, invalid(0, "0"), invalid(Infinity, "Infinity")])
} as const

type Key = keyof typeof fields
const keys = Object.keys(fields) as ReadonlyArray<Key>

/** One expected problem line: its owner (the text before the first `:`, or `policies[i]`) and a word it mentions. */
interface Expected {
  readonly owner: string
  readonly mention: string
}

/** A policy entry: how to make it (called at run time, so a throwing constructor fails the case) and its problems. */
interface PolicyCase {
  readonly label: string
  readonly make: () => unknown
  /** The arguments named in its problem lines; empty for a valid policy. */
  readonly bad: ReadonlyArray<string>
}

const policyCase = (label: string, make: () => unknown, bad: ReadonlyArray<string> = []): PolicyCase => ({
  label,
  make,
  bad
})

const goodPolicies: ReadonlyArray<PolicyCase> = [
  policyCase("recycle(30 minutes)", () => Policy.recycle("30 minutes")),
  policyCase("recycle(1 minute, spread 0.5)", () => Policy.recycle("1 minute", { spread: 0.5 })),
  policyCase("recycle(Infinity)", () => Policy.recycle(Infinity)),
  policyCase("maxUses(1)", () => Policy.maxUses(1)),
  policyCase("maxUses(Infinity)", () => Policy.maxUses(Infinity)),
  policyCase("prePing()", () => Policy.prePing()),
  policyCase("prePing(skipWithin 0)", () => Policy.prePing({ skipWithin: 0, timeout: "1 second" })),
  policyCase("resetOnReturn(rollback)", () => Policy.resetOnReturn("rollback")),
  policyCase("idleTimeout(Infinity)", () => Policy.idleTimeout(Infinity)),
  policyCase("keepalive(spaced 1 minute)", () => Policy.keepalive(Schedule.spaced("1 minute"), { idleFor: 0 })),
  policyCase("connectRetry(100 millis)", () => Policy.connectRetry("100 millis")),
  policyCase("circuitBreaker(3)", () => Policy.circuitBreaker({ failures: 3, probe: "1 second" })),
  policyCase("leakDetection(10 seconds, stack)", () => Policy.leakDetection("10 seconds", { trace: "stack" }))
]

const badPolicies: ReadonlyArray<PolicyCase> = [
  policyCase("recycle(-1)", () => Policy.recycle(-1), ["maxAge"]),
  policyCase("recycle(0)", () => Policy.recycle(0), ["maxAge"]),
  policyCase("recycle(NaN, spread 2)", () => Policy.recycle(NaN, { spread: 2 }), ["maxAge", "spread"]),
  policyCase("recycle(1 minute, spread -0.1)", () => Policy.recycle("1 minute", { spread: -0.1 }), ["spread"]),
  policyCase("maxUses(1.5)", () => Policy.maxUses(1.5), ["maxUses"]),
  policyCase("maxUses(0)", () => Policy.maxUses(0), ["maxUses"]),
  policyCase("maxUses(NaN)", () => Policy.maxUses(NaN), ["maxUses"]),
  policyCase("maxUses(\"3\")", () => Policy.maxUses("3" as any), ["maxUses"]),
  policyCase("idleTimeout(0)", () => Policy.idleTimeout(0), ["timeout"]),
  policyCase("idleTimeout(soon)", () => Policy.idleTimeout("soon" as any), ["timeout"]),
  policyCase("keepalive(-1)", () => Policy.keepalive(-1), ["schedule"]),
  policyCase(
    "keepalive(1 minute, timeout 0, idleFor Infinity)",
    () => Policy.keepalive("1 minute", { timeout: 0, idleFor: Infinity }),
    ["timeout", "idleFor"]
  ),
  policyCase("prePing(timeout -1)", () => Policy.prePing({ timeout: -1 }), ["timeout"]),
  policyCase("prePing(skipWithin soon)", () => Policy.prePing({ skipWithin: "soon" as any }), ["skipWithin"]),
  policyCase("resetOnReturn(sometimes)", () => Policy.resetOnReturn("sometimes" as any), ["mode"]),
  policyCase("resetOnReturn(rollback, timeout NaN)", () => Policy.resetOnReturn("rollback", { timeout: NaN }), [
    "timeout"
  ]),
  policyCase("connectRetry(0)", () => Policy.connectRetry(0), ["schedule"]),
  policyCase(
    "circuitBreaker(failures 0, probe -5)",
    () => Policy.circuitBreaker({ failures: 0, probe: -5 }),
    ["failures", "probe"]
  ),
  policyCase("leakDetection(Infinity)", () => Policy.leakDetection(Infinity), ["threshold"]),
  policyCase(
    "leakDetection(5 seconds, trace full)",
    () => Policy.leakDetection("5 seconds", { trace: "full" as any }),
    [
      "trace"
    ]
  ),
  policyCase("prepareOnReturn(42)", () => Policy.prepareOnReturn(42 as any), ["prepare"]),
  // not policies at all
  policyCase("42", () => 42, ["Expected a policy"]),
  policyCase("{ name: 1 }", () => ({ name: 1 }), ["Expected a policy"]),
  policyCase("{ name, onCheckout: 5 }", () => ({ name: "mine", onCheckout: 5 }), ["onCheckout"]),
  policyCase("{ name, resetMethod: 3 }", () => ({ name: "mine", resetMethod: 3 }), ["resetMethod"])
]

type Policies =
  | { readonly _tag: "Absent" }
  | { readonly _tag: "NotArray"; readonly value: unknown }
  | { readonly _tag: "List"; readonly items: ReadonlyArray<PolicyCase> }

const policies: fc.Arbitrary<Policies> = fc.oneof(
  { weight: 3, arbitrary: fc.constant({ _tag: "Absent" } as const) },
  {
    weight: 1,
    arbitrary: fc.constantFrom("all", 5, { name: "recycle" }).map((value) => ({ _tag: "NotArray", value }) as const)
  },
  {
    weight: 6,
    arbitrary: fc.array(
      fc.oneof({ weight: 3, arbitrary: fc.constantFrom(...goodPolicies) }, {
        weight: 1,
        arbitrary: fc.constantFrom(...badPolicies)
      }),
      { maxLength: 3 }
    ).map((items) => ({ _tag: "List", items }) as const)
  }
)

/** Where connections come from: a driver or a bare acquire, or a mistake with them. */
type Source = "driver" | "acquire" | "both" | "neither" | "badDriver" | "badAcquire" | "bothBad"
const source: fc.Arbitrary<Source> = fc.oneof(
  { weight: 12, arbitrary: fc.constantFrom<Source>("driver") },
  { weight: 2, arbitrary: fc.constantFrom<Source>("acquire") },
  { weight: 1, arbitrary: fc.constantFrom<Source>("both", "neither", "badDriver", "badAcquire", "bothBad") }
)

const sourceLines: Record<Source, ReadonlyArray<Expected>> = {
  driver: [],
  acquire: [],
  both: [{ owner: "options", mention: "not both" }],
  neither: [{ owner: "options", mention: "either driver or acquire" }],
  badDriver: [{ owner: "driver", mention: "Expected a Driver" }],
  badAcquire: [{ owner: "acquire", mention: "Expected an Effect" }],
  bothBad: [
    { owner: "options", mention: "not both" },
    { owner: "driver", mention: "Expected a Driver" },
    { owner: "acquire", mention: "Expected an Effect" }
  ]
}

interface Case {
  readonly fields: { readonly [K in Key]: Field }
  readonly policies: Policies
  readonly source: Source
}

const anyCase: fc.Arbitrary<Case> = fc.record({ fields: fc.record(fields), policies, source })

/** Only valid values (contradictions aside, which `expectedLines` still finds): the success side of the property. */
const validCase: fc.Arbitrary<Case> = fc.record({
  fields: fc.record(
    Object.fromEntries(keys.map((key) => [key, fields[key].filter((f) => f._tag !== "Invalid")])) as {
      readonly [K in Key]: fc.Arbitrary<Field>
    }
  ),
  policies: fc.array(fc.constantFrom(...goodPolicies), { maxLength: 3 }).map((items) =>
    ({ _tag: "List", items }) as const
  ),
  source: fc.constantFrom<Source>("driver", "acquire")
})

/** The number a valid count field stands for, or its default when absent (`undefined` when invalid). */
const countOf = (f: Field, byDefault: number): number | undefined =>
  f._tag === "Absent" ?
    byDefault :
    f._tag === "Invalid" ?
    undefined :
    f.shown === "unbounded" ?
    Infinity :
    (f.shown as number)

const isZero = (f: Field): boolean => f._tag === "Valid" && f.shown === 0

/** The problem lines a case must produce: one per invalid field, contradiction, source mistake and bad argument. */
const expectedLines = (c: Case): ReadonlyArray<Expected> => {
  const lines: Array<Expected> = []
  for (const key of keys) if (c.fields[key]._tag === "Invalid") lines.push({ owner: key, mention: key })
  const size = countOf(c.fields.size, 5)
  const maxOverflow = countOf(c.fields.maxOverflow, 10)
  const min = countOf(c.fields.min, 0)
  const maxWaiters = countOf(c.fields.maxWaiters, Infinity)
  if (size !== undefined && maxOverflow !== undefined && size + maxOverflow < 1) {
    lines.push({ owner: "size + maxOverflow", mention: "at least one connection" })
  }
  if (min !== undefined && size !== undefined && min > size) lines.push({ owner: "min", mention: "at most size" })
  if (isZero(c.fields.timeout)) lines.push({ owner: "timeout", mention: "more than 0" })
  if (isZero(c.fields.connectTimeout)) lines.push({ owner: "connectTimeout", mention: "more than 0" })
  if (maxWaiters === 0 && min === 0) lines.push({ owner: "maxWaiters", mention: "when min is 0" })
  lines.push(...sourceLines[c.source])
  if (c.policies._tag === "NotArray") lines.push({ owner: "policies", mention: "Expected an array" })
  if (c.policies._tag === "List") {
    c.policies.items.forEach((item, i) => {
      for (const mention of item.bad) lines.push({ owner: `policies[${i}]`, mention })
    })
  }
  return lines
}

/** The owner of a problem line: `policies[i]` for a policy's lines, else the text before the first `:`. */
const ownerOf = (line: string): string => /^policies\[\d+\]/.exec(line)?.[0] ?? line.split(":")[0]

/**
 * Matches the lines given against the lines expected, one to one (each expected line takes a distinct given line of
 * its owner that mentions its word): `undefined` when they match, else what differs.
 */
const mismatch = (given: ReadonlyArray<string>, expected: ReadonlyArray<Expected>): string | undefined => {
  const left = [...given]
  const missing: Array<string> = []
  for (const e of expected) {
    const i = left.findIndex((line) => ownerOf(line) === e.owner && line.includes(e.mention))
    if (i === -1) missing.push(`${e.owner} (${e.mention})`)
    else left.splice(i, 1)
  }
  if (missing.length === 0 && left.length === 0) return undefined
  return `missing: ${JSON.stringify(missing)}; unexpected: ${JSON.stringify(left)}; all: ${JSON.stringify(given)}`
}

const quiet = Logger.replace(Logger.defaultLogger, Logger.none)

/** Builds the options object of a case over a fresh Memory database (valid names made unique). */
const optionsOf = (c: Case, db: Memory.MemoryDatabase): Record<string, unknown> => {
  const options: Record<string, unknown> = {}
  for (const key of keys) {
    const f = c.fields[key]
    if (f._tag === "Absent") continue
    options[key] = key === "name" && f._tag === "Valid" ? uniqueName(String(f.value)) : f.value
  }
  const acquire = Effect.acquireRelease(Effect.succeed({ resource: true }), () => Effect.void)
  switch (c.source) {
    case "driver":
      options.driver = db.driver
      break
    case "acquire":
      options.acquire = acquire
      break
    case "both":
      options.driver = db.driver
      options.acquire = acquire
      break
    case "neither":
      break
    case "badDriver":
      options.driver = { connect: 1 }
      break
    case "badAcquire":
      options.acquire = 42
      break
    case "bothBad":
      options.driver = "pg"
      options.acquire = 42
      break
  }
  if (c.policies._tag === "NotArray") options.policies = c.policies.value
  if (c.policies._tag === "List") options.policies = c.policies.items.map((item) => item.make())
  // unknown keys are ignored
  options.unknownOption = "ignored"
  return options
}

const tally = { built: 0, refused: 0, lines: 0, most: 0 }

/** The property for one case: built iff no problem is expected; refused with exactly the expected lines; no clamp. */
const check = (c: Case) =>
  Effect.gen(function*() {
    const db = yield* Memory.make()
    const options = optionsOf(c, db)
    const expected = expectedLines(c)
    const exit = yield* Effect.exit(Effect.scoped(Effect.gen(function*() {
      const pool = yield* Pool.make(options as unknown as Pool.Options<unknown, unknown>)
      return { config: Pool.config(pool), stats: yield* Pool.stats(pool), name: pool.name }
    })))
    if (expected.length > 0) {
      tally.refused++
      assert.isTrue(Exit.isFailure(exit), `built although ${JSON.stringify(expected)}`)
      if (Exit.isSuccess(exit)) return
      // one typed failure, not a defect, not two errors
      assert.strictEqual(exit.cause._tag, "Fail", `not one typed failure: ${String(exit.cause)}`)
      const error = (exit.cause as { readonly error: unknown }).error
      assert.instanceOf(error, PoolConfigError)
      const problems = (error as PoolConfigError).problems
      tally.lines += problems.length
      tally.most = Math.max(tally.most, problems.length)
      const differs = mismatch(problems, expected)
      assert.isUndefined(differs, differs)
      // the message lists every line
      for (const line of problems) assert.include((error as PoolConfigError).message, line)
      return
    }
    tally.built++
    assert.isTrue(Exit.isSuccess(exit), `refused a valid object: ${Exit.isFailure(exit) ? String(exit.cause) : ""}`)
    if (Exit.isFailure(exit)) return
    const { config, name, stats } = exit.value
    for (const key of keys) {
      const f = c.fields[key]
      if (f._tag !== "Valid") continue
      const shown = key === "name" ? name : f.shown
      assert.deepStrictEqual((config as Record<string, unknown>)[key], shown, `${key}: ${f.label} is shown changed`)
    }
    // the counters the pool works with are the values given
    assert.strictEqual(stats.size, countOf(c.fields.size, 5))
    assert.strictEqual(stats.maxOverflow, countOf(c.fields.maxOverflow, 10))
    assert.strictEqual(stats.min, countOf(c.fields.min, 0))
  }).pipe(Effect.provide(quiet))

describe("reliability: bad options", () => {
  it.effect.prop(
    "an arbitrary options object builds a pool iff every field is valid, else one PoolConfigError naming each problem",
    [anyCase],
    ([c]) => check(c),
    { fastCheck: { numRuns: runs(300) } }
  )

  it.effect.prop(
    "a valid options object builds a pool showing every value as given (no clamp), contradictions aside",
    [validCase],
    ([c]) => check(c),
    { fastCheck: { numRuns: runs(150) } }
  )

  it.effect("the runs above built pools and refused others, several problems at once", () =>
    Effect.sync(() => {
      console.log(
        `[reliability] options: ${tally.built} built, ${tally.refused} refused, ` +
          `${tally.lines} problem lines (at most ${tally.most} in one error)`
      )
      assert.isAbove(tally.built, 0)
      assert.isAbove(tally.refused, 0)
      assert.isAbove(tally.most, 2)
    }))
})

// ---------------------------------------------------------------------------------------------------------------------
// The SQLite SqlClient's options

/** A `SqlSqlite.make` case: the client's own names, and some of the pool's under `pool`. */
interface SqlCase {
  readonly memory: boolean
  readonly maxConnections: Field
  readonly minConnections: Field
  readonly connectionTTL: Field
  readonly idleTimeout: Field
  readonly poolSize: Field
  readonly poolMin: Field
  readonly poolTimeout: Field
}

const sqlField = (valids: ReadonlyArray<Field>, invalids: ReadonlyArray<Field>): fc.Arbitrary<Field> =>
  fc.oneof(
    { weight: 5, arbitrary: fc.constant(absent) },
    { weight: 3, arbitrary: fc.constantFrom(...valids) },
    { weight: 2, arbitrary: fc.constantFrom(...invalids) }
  )

const sqlCase: fc.Arbitrary<SqlCase> = fc.record({
  memory: fc.boolean(),
  maxConnections: sqlField(counts(1, 4), badCounts),
  minConnections: sqlField(counts(0, 2), badCounts),
  connectionTTL: sqlField([valid("10 minutes", 600_000), valid(Infinity, "Infinity")], [
    ...badDurations,
    invalid(0, "0")
  ]),
  idleTimeout: sqlField([valid("1 minute", 60_000)], [...badDurations, invalid(0, "0")]),
  poolSize: sqlField(counts(1, 3), badCounts),
  poolMin: sqlField(counts(0, 1), badCounts),
  poolTimeout: sqlField(durations, badDurations)
})

const given = (f: Field): boolean => f._tag !== "Absent"
const valueOf = (f: Field): unknown => f._tag === "Absent" ? undefined : f.value

/**
 * The lines the client's own checks give (contradictions between its names and the pool's, and what a `:memory:`
 * database cannot have): every one at once, before the pool's own checks run.
 */
const clientLines = (c: SqlCase): ReadonlyArray<Expected> => {
  const lines: Array<Expected> = []
  if (given(c.maxConnections) && given(c.poolSize)) lines.push({ owner: "maxConnections", mention: "either" })
  if (given(c.minConnections) && given(c.poolMin)) lines.push({ owner: "minConnections", mention: "either" })
  if (c.memory) {
    // named as given: the client's name when the caller used it (a null is given, and refused)
    const size = given(c.maxConnections) ? valueOf(c.maxConnections) : valueOf(c.poolSize)
    const sizeOwner = given(c.maxConnections) ? "maxConnections" : "size"
    if (size !== undefined && size !== 1) lines.push({ owner: sizeOwner, mention: "must be 1" })
    const min = given(c.minConnections) ? valueOf(c.minConnections) : valueOf(c.poolMin)
    const minOwner = given(c.minConnections) ? "minConnections" : "min"
    if (min !== undefined && min !== 1) lines.push({ owner: minOwner, mention: "must be 1" })
    if (given(c.connectionTTL)) lines.push({ owner: "connectionTTL", mention: "database" })
    if (given(c.idleTimeout)) lines.push({ owner: "idleTimeout", mention: "database" })
  }
  return lines
}

/**
 * The pool's lines, listed with the client's in the same error. A line names the option as the caller gave it:
 * `maxConnections` / `minConnections` when those were given (the pool's `size` / `min` otherwise), `connectionTTL`
 * and `idleTimeout` under their own names (not as the policies they become).
 */
const poolLines = (c: SqlCase): ReadonlyArray<Expected> => {
  const lines: Array<Expected> = []
  const sizeField = given(c.maxConnections) ? c.maxConnections : c.poolSize
  const minField = given(c.minConnections) ? c.minConnections : c.poolMin
  const sizeOwner = given(c.maxConnections) ? "maxConnections" : "size"
  const minOwner = given(c.minConnections) ? "minConnections" : "min"
  if (!c.memory) {
    if (sizeField._tag === "Invalid") lines.push({ owner: sizeOwner, mention: sizeOwner })
    if (minField._tag === "Invalid") lines.push({ owner: minOwner, mention: minOwner })
    const size = sizeField._tag === "Absent" ? 5 : sizeField._tag === "Valid" ? (sizeField.shown as number) : undefined
    const min = minField._tag === "Absent" ? 0 : minField._tag === "Valid" ? (minField.shown as number) : undefined
    if (size !== undefined && min !== undefined && min > size) lines.push({ owner: minOwner, mention: "at most size" })
    if (c.connectionTTL._tag === "Invalid") lines.push({ owner: "connectionTTL", mention: "connectionTTL" })
    if (c.idleTimeout._tag === "Invalid") lines.push({ owner: "idleTimeout", mention: "idleTimeout" })
  }
  if (c.poolTimeout._tag === "Invalid") lines.push({ owner: "timeout", mention: "timeout" })
  return lines
}

/** Every case: the client's checks and the pool's are listed together, in one error. */
const sqlCases = sqlCase

const sqlTally = { built: 0, refused: 0 }

describe("reliability: bad SqlClient options (SQLite)", () => {
  it.scoped.prop(
    "SqlSqlite.make builds a client iff every option is valid and consistent, else one PoolConfigError naming each",
    [sqlCases],
    ([c]) =>
      Effect.gen(function*() {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), "reliability-options-"))
        yield* Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true })))
        const config: Record<string, unknown> = {
          filename: c.memory ? ":memory:" : path.join(dir, "db.sqlite")
        }
        const own: Record<string, unknown> = { name: uniqueName("sql-options") }
        if (given(c.maxConnections)) config.maxConnections = (c.maxConnections as { value: unknown }).value
        if (given(c.minConnections)) config.minConnections = (c.minConnections as { value: unknown }).value
        if (given(c.connectionTTL)) config.connectionTTL = (c.connectionTTL as { value: unknown }).value
        if (given(c.idleTimeout)) config.idleTimeout = (c.idleTimeout as { value: unknown }).value
        if (given(c.poolSize)) own.size = (c.poolSize as { value: unknown }).value
        if (given(c.poolMin)) own.min = (c.poolMin as { value: unknown }).value
        if (given(c.poolTimeout)) own.timeout = (c.poolTimeout as { value: unknown }).value
        config.pool = own
        // every problem at once: the client's and the pool's in one error
        const expected = [...clientLines(c), ...poolLines(c)]
        const exit = yield* Effect.exit(
          Effect.scoped(Effect.gen(function*() {
            const sql = yield* SqlSqlite.make(config as unknown as SqlSqlite.SqliteClientConfig)
            return Pool.config(sql.pool)
          })).pipe(Effect.provide(Reactivity.layer))
        )
        if (expected.length > 0) {
          sqlTally.refused++
          assert.isTrue(Exit.isFailure(exit), `built although ${JSON.stringify(expected)}`)
          if (Exit.isSuccess(exit)) return
          assert.strictEqual(exit.cause._tag, "Fail", `not one typed failure: ${String(exit.cause)}`)
          const error = (exit.cause as { readonly error: unknown }).error
          assert.instanceOf(error, PoolConfigError, String(error))
          const problems = (error as PoolConfigError).problems
          // a policy line's index depends on the defaults added before it: compared by policy and argument
          const differs = mismatch(
            problems.map((line) => line.replace(/^policies\[\d+\]/, "policies[0]")),
            expected
          )
          assert.isUndefined(differs, differs)
          return
        }
        sqlTally.built++
        assert.isTrue(Exit.isSuccess(exit), `refused: ${Exit.isFailure(exit) ? String(exit.cause) : ""}`)
        if (Exit.isFailure(exit)) return
        const shown = exit.value
        const size = c.memory ? 1 : given(c.maxConnections) ?
          (c.maxConnections as { shown: number }).shown :
          given(c.poolSize) ?
          (c.poolSize as { shown: number }).shown :
          5
        assert.strictEqual(shown.size, size)
        if (c.memory || given(c.maxConnections)) assert.strictEqual(shown.maxOverflow, 0)
        const min = c.memory ? 1 : given(c.minConnections) ?
          (c.minConnections as { shown: number }).shown :
          given(c.poolMin) ?
          (c.poolMin as { shown: number }).shown :
          0
        assert.strictEqual(shown.min, min)
        if (c.poolTimeout._tag === "Valid") assert.strictEqual(shown.timeout, c.poolTimeout.shown)
      }),
    { fastCheck: { numRuns: runs(120) } }
  )

  it.effect("the runs above built clients and refused others", () =>
    Effect.sync(() => {
      console.log(`[reliability] sql options: ${sqlTally.built} built, ${sqlTally.refused} refused`)
      assert.isAbove(sqlTally.built, 0)
      assert.isAbove(sqlTally.refused, 0)
    }))
})
