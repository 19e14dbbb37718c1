/**
 * The options check (`config.decode`, run by `Pool.make`): every invalid option, every contradiction between options
 * and every missing or malformed driver, acquire or policy is one line of one `PoolConfigError`; nothing is clamped,
 * nothing throws.
 */
import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Either, FastCheck as fc, Schema } from "effect"
import * as Memory from "../../src/Driver/Memory.js"
import * as config from "../../src/internal/config.js"
import * as Pool from "../../src/Pool.js"
import { PoolConfigError } from "../../src/PoolError.js"
import { uniqueName } from "../utils/pool.js"

const acquire = Effect.succeed({ id: 1 })

/** The problems `decode` lists for `options` (with a valid `acquire` unless the options say otherwise). */
const problemsOf = (options: Record<string, unknown>): ReadonlyArray<string> => {
  const input = "driver" in options || "acquire" in options ? options : { acquire, ...options }
  const result = config.decode(input)
  return Either.isLeft(result) ? result.left.problems : []
}

/** `Pool.make` with options TypeScript would refuse, as a JavaScript caller may pass them. */
const makeUnchecked = (options: Record<string, unknown>) =>
  Effect.scoped(Pool.make({ name: uniqueName("config"), ...options } as unknown as Pool.Options<unknown, unknown>))

/** The `PoolConfigError` `Pool.make` fails with; a pool built, a defect or a thrown error fails the test. */
const configErrorOf = (options: Record<string, unknown>) =>
  Effect.gen(function*() {
    const exit = yield* Effect.exit(makeUnchecked(options))
    assert.isTrue(exit._tag === "Failure", `Pool.make succeeded with ${Object.keys(options).join(", ")}`)
    const error = yield* Effect.flip(makeUnchecked(options))
    assert.instanceOf(error, PoolConfigError)
    return error
  })

describe("config", () => {
  describe("defects", () => {
    it.effect("defect 14: rejects min above size even when maxOverflow leaves room for it", () =>
      Effect.gen(function*() {
        const db = yield* Memory.make()
        const error = yield* configErrorOf({ driver: db.driver, size: 2, min: 3 })
        assert.deepStrictEqual(error.problems, ["min: Expected at most size (2), got 3"])
        assert.deepStrictEqual(problemsOf({ size: 1, maxOverflow: 1, min: 3 }), [
          "min: Expected at most size (1), got 3"
        ])
        assert.deepStrictEqual(problemsOf({ size: 2, min: 2 }), [])
      }))

    it.effect("defect 14: lists min above size with the other problems in one error", () =>
      Effect.gen(function*() {
        const db = yield* Memory.make()
        const error = yield* configErrorOf({ driver: db.driver, size: 2, min: 3, shutdownTimeout: "-5 seconds" })
        assert.deepStrictEqual(error.problems, [
          "shutdownTimeout: Expected a duration of 0 or more, got \"-5 seconds\"",
          "min: Expected at most size (2), got 3"
        ])
      }))

    it.effect("defect 18: rejects negative and NaN durations in every duration option instead of clamping them to 0", () =>
      Effect.sync(() => {
        const negative: ReadonlyArray<unknown> = [-1, -Infinity, "-5 seconds", "-1", [-1, 0], [0, -5], -5n]
        const malformed: ReadonlyArray<unknown> = [NaN, "NaN millis", "5 parsecs", "NaN", [NaN, 0], [1], "", {}]
        for (const key of ["timeout", "connectTimeout", "shutdownTimeout"]) {
          for (const value of negative) {
            const problems = problemsOf({ [key]: value })
            assert.strictEqual(problems.length, 1, `${key}: ${String(value)} gave ${problems.join(" | ")}`)
            assert.match(problems[0]!, new RegExp(`^${key}: Expected a duration of 0 or more, got `))
          }
          for (const value of malformed) {
            const problems = problemsOf({ [key]: value })
            assert.strictEqual(problems.length, 1, `${key}: ${String(value)} gave ${problems.join(" | ")}`)
            assert.match(problems[0]!, new RegExp(`^${key}: Expected a duration \\(milliseconds`))
          }
        }
        assert.deepStrictEqual(problemsOf({ shutdownTimeout: NaN }), [
          "shutdownTimeout: Expected a duration (milliseconds, a Duration, or a string such as \"30 seconds\"), got NaN"
        ])
        assert.deepStrictEqual(problemsOf({ shutdownTimeout: "-5 seconds" }), [
          "shutdownTimeout: Expected a duration of 0 or more, got \"-5 seconds\""
        ])
        assert.deepStrictEqual(problemsOf({ timeout: [-1, 0] }), [
          "timeout: Expected a duration of 0 or more, got [-1, 0]"
        ])
        assert.deepStrictEqual(problemsOf({ connectTimeout: -5n }), [
          "connectTimeout: Expected a duration of 0 or more, got -5n"
        ])
        for (
          const value of [0, "0 seconds", Duration.zero, 0n, [0, 0], "Infinity", Infinity, Duration.seconds(1), 5n]
        ) {
          assert.deepStrictEqual(problemsOf({ shutdownTimeout: value }), [], String(value))
        }
      }))

    it.effect("defect 18: the PoolConfig Schema refuses negative and NaN durations too", () =>
      Effect.sync(() => {
        for (const value of [NaN, -1, "-5 seconds", "NaN millis"]) {
          assert.isTrue(
            Either.isLeft(Schema.decodeUnknownEither(Pool.PoolConfig)({ shutdownTimeout: value })),
            String(value)
          )
        }
      }))

    it.effect("defect 18: fails Pool.make with PoolConfigError when neither driver nor acquire is given, or both", () =>
      Effect.gen(function*() {
        const db = yield* Memory.make()
        const neither = yield* configErrorOf({ size: 1 })
        assert.deepStrictEqual(neither.problems, ["options: give either driver or acquire"])
        const both = yield* configErrorOf({ driver: db.driver, acquire })
        assert.deepStrictEqual(both.problems, ["options: give either driver or acquire, not both"])
      }))

    it.effect("defect 18: fails Pool.make with PoolConfigError for a driver that is not a Driver", () =>
      Effect.gen(function*() {
        const pg = yield* configErrorOf({ driver: "pg" })
        assert.deepStrictEqual(pg.problems, [
          "driver: Expected a Driver (from Driver.make or a driver module), got \"pg\""
        ])
        const db = yield* Memory.make()
        const plain = yield* configErrorOf({ driver: { connect: "no" } })
        assert.deepStrictEqual(plain.problems, [
          "driver: Expected a Driver (from Driver.make or a driver module), got { connect: \"no\" }"
        ])
        const spread = yield* configErrorOf({ driver: { ...db.driver, connect: undefined } })
        assert.strictEqual(spread.problems.length, 1)
        assert.match(spread.problems[0]!, /^driver: Expected a Driver/)
      }))

    it.effect("defect 18: fails Pool.make with PoolConfigError for an acquire that is not an Effect", () =>
      Effect.gen(function*() {
        const error = yield* configErrorOf({ acquire: 42 })
        assert.deepStrictEqual(error.problems, [
          "acquire: Expected an Effect that opens a connection in a Scope, got 42"
        ])
        const promise = yield* configErrorOf({ acquire: () => Promise.resolve(1) })
        assert.deepStrictEqual(promise.problems, [
          "acquire: Expected an Effect that opens a connection in a Scope, got a function"
        ])
      }))

    it.effect("defect 18: fails Pool.make with PoolConfigError, not a TypeError, for policies that are not policies", () =>
      Effect.gen(function*() {
        const db = yield* Memory.make()
        const nope = yield* configErrorOf({ driver: db.driver, policies: "nope" })
        assert.deepStrictEqual(nope.problems, ["policies: Expected an array of policies, got \"nope\""])
        const items = yield* configErrorOf({
          driver: db.driver,
          policies: [
            42,
            { name: 1 },
            null,
            { name: "hooks", onCheckout: "yes", onReturn: () => Effect.void, background: 1, resetMethod: 2 },
            () => Effect.void
          ]
        })
        assert.deepStrictEqual(items.problems, [
          "policies[0]: Expected a policy (an object with a string name), got 42",
          "policies[1]: Expected a policy (an object with a string name), got { name: 1 }",
          "policies[2]: Expected a policy (an object with a string name), got null",
          "policies[3].resetMethod: Expected a string, got 2",
          "policies[3].onCheckout: Expected a function, got \"yes\"",
          "policies[3].background: Expected a function, got 1",
          "policies[4]: Expected a policy (an object with a string name), got a function"
        ])
      }))

    it.effect("defect 18: lists every bad count, name and literal on one line of its own, clamping none", () =>
      Effect.sync(() => {
        const cases: ReadonlyArray<readonly [Record<string, unknown>, string]> = [
          [{ size: 2.5 }, "size: Expected an integer of 0 or more, got 2.5"],
          [{ size: -1 }, "size: Expected an integer of 0 or more, got -1"],
          [{ size: NaN }, "size: Expected an integer of 0 or more, got NaN"],
          [{ size: Infinity }, "size: Expected an integer of 0 or more, got Infinity"],
          [{ size: "5" }, "size: Expected an integer of 0 or more, got \"5\""],
          [{ maxOverflow: -1 }, "maxOverflow: Expected an integer of 0 or more, or \"unbounded\", got -1"],
          [{ maxWaiters: 1.5 }, "maxWaiters: Expected an integer of 0 or more, or \"unbounded\", got 1.5"],
          [{ min: -Infinity }, "min: Expected an integer of 0 or more, got -Infinity"],
          [{ maxCheckoutAttempts: 0 }, "maxCheckoutAttempts: Expected an integer of 1 or more, got 0"],
          [{ name: "" }, "name: Expected a non-empty string, got \"\""],
          [{ name: 5 }, "name: Expected a non-empty string, got 5"],
          [{ order: "random" }, "order: Expected \"fifo\" or \"lifo\", got \"random\""],
          [{ labels: { a: 1 } }, "labels: Expected an object of string values, got { a: 1 }"],
          [{ labels: ["a"] }, "labels: Expected an object of string values, got [\"a\"]"],
          [{ echo: "loud" }, "echo: Expected true, false or \"debug\", got \"loud\""]
        ]
        for (const [options, line] of cases) {
          assert.deepStrictEqual(problemsOf(options), [line])
        }
      }))

    it.effect("defect 18: refuses maxWaiters 0 with min 0, a pool that could never lend a connection", () =>
      Effect.gen(function*() {
        assert.deepStrictEqual(problemsOf({ maxWaiters: 0 }), [
          "maxWaiters: Expected 1 or more when min is 0 (with no waiters only idle connections are lent), got 0"
        ])
        assert.deepStrictEqual(problemsOf({ maxWaiters: 0, min: 1 }), [])
        const db = yield* Memory.make()
        const pool = yield* Pool.make({ driver: db.driver, name: uniqueName("no-waiters"), maxWaiters: 0, min: 1 })
        yield* Effect.repeatN(Effect.yieldNow(), 50)
        assert.strictEqual(yield* Pool.use(pool, () => Effect.succeed("lent")), "lent")
      }).pipe(Effect.scoped))

    it.effect("defect 18: a JavaScript caller gets every problem, one line each, in one PoolConfigError", () =>
      Effect.gen(function*() {
        const error = yield* configErrorOf({
          driver: "pg",
          acquire: 42,
          policies: "nope",
          size: 2,
          min: 3,
          maxOverflow: NaN,
          timeout: 0,
          shutdownTimeout: "-5 seconds",
          labels: { a: 1 },
          unknownFutureOption: { anything: true }
        })
        assert.deepStrictEqual(error.problems, [
          "maxOverflow: Expected an integer of 0 or more, or \"unbounded\", got NaN",
          "labels: Expected an object of string values, got { a: 1 }",
          "shutdownTimeout: Expected a duration of 0 or more, got \"-5 seconds\"",
          "min: Expected at most size (2), got 3",
          "timeout: must be more than 0 (use \"Infinity\" to wait without limit)",
          "options: give either driver or acquire, not both",
          "driver: Expected a Driver (from Driver.make or a driver module), got \"pg\"",
          "acquire: Expected an Effect that opens a connection in a Scope, got 42",
          "policies: Expected an array of policies, got \"nope\""
        ])
        assert.notInclude(error.message, "unknownFutureOption")
      }))

    it.effect("defect 18: never throws, for options that are not an object or whose getters throw", () =>
      Effect.sync(() => {
        assert.deepStrictEqual(problemsOf({ size: Symbol("s") }), [
          "size: Expected an integer of 0 or more, got Symbol(s)"
        ])
        for (
          const [input, shown] of [[null, "null"], [undefined, "undefined"], ["pg", "\"pg\""], [[], "[]"]] as const
        ) {
          const result = config.decode(input)
          assert.isTrue(Either.isLeft(result))
          assert.deepStrictEqual(Either.isLeft(result) && result.left.problems, [
            `options: Expected an object, got ${shown}`
          ])
        }
        const hostile = Object.defineProperty({ acquire }, "size", {
          enumerable: true,
          get: () => {
            throw new Error("no size today")
          }
        })
        const result = config.decode(hostile)
        assert.deepStrictEqual(Either.isLeft(result) && result.left.problems, [
          "size: could not be read: no size today"
        ])
      }))
  })

  describe("decode", () => {
    it.effect("ignores keys it does not know, and reads options inherited from a prototype", () =>
      Effect.sync(() => {
        assert.deepStrictEqual(problemsOf({ futureOption: -1, poolSize: "big" }), [])
        const inherited = config.decode(Object.create({ acquire, size: 3 }))
        assert.isTrue(Either.isRight(inherited) && inherited.right.size === 3)
      }))

    it.effect("accepts the documented forms of every option", () =>
      Effect.sync(() => {
        const result = config.decode({
          acquire,
          name: "ok",
          size: 0,
          maxOverflow: Infinity,
          min: 0,
          timeout: "Infinity",
          connectTimeout: Duration.seconds(2),
          order: "lifo",
          maxWaiters: "unbounded",
          labels: { role: "primary" },
          shutdownTimeout: [1, 500_000_000],
          echo: "debug",
          maxCheckoutAttempts: 1,
          policies: [{ name: "noop", onCheckout: () => Effect.void, onReturn: undefined }]
        })
        assert.isTrue(Either.isRight(result), Either.isLeft(result) ? result.left.message : "")
        assert.deepStrictEqual(Either.isRight(result) && config.encode(result.right), {
          name: "ok",
          size: 0,
          maxOverflow: "unbounded",
          min: 0,
          timeout: "Infinity",
          connectTimeout: 2000,
          order: "lifo",
          maxWaiters: "unbounded",
          labels: { role: "primary" },
          shutdownTimeout: 1500,
          echo: "debug",
          maxCheckoutAttempts: 1
        })
      }))
  })

  describe("property", () => {
    /** One option: left out, a valid value, or an invalid one; `zero` marks a valid duration of 0. */
    type Field = { readonly key: string; readonly value: unknown; readonly invalid: boolean; readonly zero?: boolean }
    const field = (
      key: string,
      valid: fc.Arbitrary<unknown>,
      invalid: fc.Arbitrary<unknown>
    ): fc.Arbitrary<Field | undefined> =>
      fc.oneof(
        fc.constant(undefined),
        valid.map((value) => ({ key, value, invalid: false })),
        invalid.map((value) => ({ key, value, invalid: true }))
      )
    const wrongType = fc.oneof(
      fc.constant(null),
      fc.boolean(),
      fc.string().filter((s) => s !== "unbounded" && s !== "fifo" && s !== "lifo" && s !== "debug"),
      fc.constant({}),
      fc.constant([1]),
      fc.constant(() => 1)
    )
    const badNumber = fc.oneof(
      fc.constantFrom(NaN, Infinity, -Infinity, -1, 0.5, 2.5, -0.5, Number.MAX_VALUE),
      fc.integer({ min: -1000, max: -1 })
    )
    const count = (key: string, max: number) => field(key, fc.integer({ min: 0, max }), fc.oneof(badNumber, wrongType))
    const unboundedCount = (key: string, max: number) =>
      field(
        key,
        fc.oneof(fc.integer({ min: 0, max }), fc.constantFrom("unbounded", Infinity)),
        fc.oneof(badNumber.filter((n) => n !== Infinity), wrongType)
      )
    const validDuration = fc.oneof(
      fc.integer({ min: 0, max: 60_000 }).map((ms) => ({ value: ms, zero: ms === 0 })),
      fc.integer({ min: 0, max: 60 }).map((s) => ({ value: `${s} seconds`, zero: s === 0 })),
      fc.integer({ min: 0, max: 60 }).map((s) => ({ value: Duration.seconds(s), zero: s === 0 })),
      fc.integer({ min: 0, max: 10 }).map((s) => ({ value: [s, 0] as const, zero: s === 0 })),
      fc.bigInt({ min: 0n, max: 10n ** 12n }).map((n) => ({ value: n, zero: n === 0n })),
      fc.constantFrom({ value: "Infinity", zero: false }, { value: Infinity, zero: false })
    )
    const badDuration = fc.oneof(
      badNumber.filter((n) => n !== Infinity && !(n > 0)),
      fc.integer({ min: 1, max: 60 }).map((s) => `-${s} seconds`),
      fc.constantFrom("NaN millis", "5 parsecs", "soon", "", "-Infinity", "1e3 millis"),
      fc.constantFrom([-1, 0], [0, -1], [NaN, 0], [1, NaN], [-Infinity, 0], [1]),
      fc.bigInt({ min: -(10n ** 12n), max: -1n }),
      fc.constant(null),
      fc.constant({}),
      fc.boolean()
    )
    const duration = (key: string): fc.Arbitrary<Field | undefined> =>
      fc.oneof(
        fc.constant(undefined),
        validDuration.map(({ value, zero }) => ({ key, value, invalid: false, zero })),
        badDuration.map((value) => ({ key, value, invalid: true }))
      )
    const fields = fc.tuple(
      field(
        "name",
        fc.string({ minLength: 1 }),
        fc.oneof(fc.constant(""), badNumber, wrongType.filter((v) => typeof v !== "string"))
      ),
      count("size", 4),
      unboundedCount("maxOverflow", 4),
      count("min", 6),
      duration("timeout"),
      duration("connectTimeout"),
      field(
        "order",
        fc.constantFrom("fifo", "lifo"),
        fc.oneof(fc.constantFrom("random", "FIFO", ""), badNumber, wrongType)
      ),
      unboundedCount("maxWaiters", 3),
      field(
        "labels",
        fc.dictionary(fc.string(), fc.string()),
        fc.oneof(fc.constant({ a: 1 }), fc.constant(null), fc.constant(["x"]), fc.constant("role=primary"))
      ),
      duration("shutdownTimeout"),
      field(
        "echo",
        fc.constantFrom(true, false, "debug"),
        fc.oneof(fc.constantFrom("loud", "info", 1, 0, null), fc.constant({}))
      ),
      field("maxCheckoutAttempts", fc.integer({ min: 1, max: 5 }), fc.oneof(fc.constant(0), badNumber, wrongType))
    )
    /** How connections are opened, with the problem lines it must produce (by the name each line starts with). */
    const source = fc.constantFrom(
      { options: { acquire }, named: [] },
      { options: { driver: "memory" }, named: [] },
      { options: {}, named: ["options"] },
      { options: { acquire, driver: "memory" }, named: ["options"] },
      { options: { driver: "pg" }, named: ["driver"] },
      { options: { acquire: 42 }, named: ["acquire"] },
      { options: { driver: null, acquire: 42 }, named: ["options", "driver", "acquire"] }
    )
    const policies = fc.constantFrom(
      { options: {}, named: [] },
      { options: { policies: [] }, named: [] },
      { options: { policies: [{ name: "p", onCheckout: () => Effect.void }] }, named: [] },
      { options: { policies: "nope" }, named: ["policies"] },
      { options: { policies: [{ name: "p" }, 42] }, named: ["policies[1]"] },
      { options: { policies: [{ name: "p", onReturn: "no" }] }, named: ["policies[0].onReturn"] }
    )

    /** The checks across options, restated: each names the option a line must start with. */
    const contradictions = (given: ReadonlyArray<Field>): Array<string> => {
      const invalid = new Set(given.filter((f) => f.invalid).map((f) => f.key))
      const value = (key: string, fallback: unknown) => given.find((f) => f.key === key)?.value ?? fallback
      const zero = (key: string) => given.find((f) => f.key === key)?.zero === true
      const ok = (...keys: Array<string>) => keys.every((key) => !invalid.has(key))
      const size = value("size", 5) as number
      const overflow = value("maxOverflow", 10)
      const max = size + (overflow === "unbounded" ? Infinity : overflow as number)
      const min = value("min", 0) as number
      const named: Array<string> = []
      if (ok("size", "maxOverflow") && max < 1) named.push("size + maxOverflow")
      if (ok("min", "size") && min > size) named.push("min")
      if (ok("timeout") && zero("timeout")) named.push("timeout")
      if (ok("connectTimeout") && zero("connectTimeout")) named.push("connectTimeout")
      if (ok("maxWaiters", "min") && value("maxWaiters", "unbounded") === 0 && min === 0) named.push("maxWaiters")
      return named
    }

    it.effect.prop(
      "decodes, or names every invalid option and contradiction once in one PoolConfigError, and never throws",
      [fields, source, policies],
      ([sample, from, policy]) =>
        Effect.gen(function*() {
          const db = yield* Memory.make()
          const given = sample.filter((f): f is Field => f !== undefined)
          const options: Record<string, unknown> = {
            ...Object.fromEntries(given.map((f) => [f.key, f.value])),
            ...(from.options.driver === "memory" ? { ...from.options, driver: db.driver } : from.options),
            ...policy.options,
            someFutureOption: -1
          }
          const expected = [
            ...given.filter((f) => f.invalid).map((f) => f.key),
            ...contradictions(given),
            ...from.named,
            ...policy.named
          ].sort()
          let result: Either.Either<config.PoolConfig, PoolConfigError>
          try {
            result = config.decode(options)
          } catch (error) {
            return assert.fail(`decode threw ${String(error)}`)
          }
          if (expected.length === 0) {
            assert.isTrue(Either.isRight(result), Either.isLeft(result) ? result.left.message : "")
            return
          }
          assert.isTrue(Either.isLeft(result), `decoded although ${expected.join(", ")} should be named`)
          if (Either.isRight(result)) return
          assert.instanceOf(result.left, PoolConfigError)
          const problems = result.left.problems
          for (const line of problems) assert.notInclude(line, "\n")
          const named = problems.map((line) => line.slice(0, line.indexOf(": "))).sort()
          assert.deepStrictEqual(named, expected, problems.join("\n"))
        }),
      { fastCheck: { numRuns: 300 } }
    )

    it.effect.prop(
      "never throws on anything at all",
      [fc.anything({ withBigInt: true, withBoxedValues: true, withMap: true, withNullPrototype: true }), fc.anything()],
      ([input, value]) =>
        Effect.sync(() => {
          for (const candidate of [input, { acquire, size: value }, { acquire, timeout: value, policies: value }]) {
            let result: unknown
            try {
              result = config.decode(candidate)
            } catch (error) {
              assert.fail(`decode threw ${String(error)}`)
            }
            assert.isTrue(Either.isEither(result))
          }
        }),
      { fastCheck: { numRuns: 300 } }
    )
  })
})
