import * as Duration from "effect/Duration"
import * as Either from "effect/Either"
import * as ParseResult from "effect/ParseResult"
import * as Predicate from "effect/Predicate"
import * as Schema from "effect/Schema"
import { PoolConfigError } from "../PoolError.js"

/**
 * A duration as it appears in JSON or an environment variable: milliseconds as a number, or a string Effect's
 * `Duration.decode` understands (`"30 seconds"`, `"250 millis"`, `"Infinity"`). Encodes to milliseconds, or
 * `"Infinity"`.
 *
 * @internal
 */
export const DurationFromInput = Schema.transformOrFail(
  Schema.Union(Schema.Number, Schema.String),
  Schema.DurationFromSelf,
  {
    strict: true,
    decode: (input, _, ast) => {
      if (input === Infinity || (typeof input === "string" && /^\s*infinity\s*$/i.test(input))) {
        return ParseResult.succeed(Duration.infinity)
      }
      const value = typeof input === "string" && /^\s*-?\d+(\.\d+)?\s*$/.test(input) ? Number(input) : input
      if (typeof value === "number" && value < 0) {
        return ParseResult.fail(new ParseResult.Type(ast, input, `Expected a duration of 0 or more, got ${input}`))
      }
      const decoded = Duration.decodeUnknown(value)
      return decoded._tag === "Some" ?
        ParseResult.succeed(decoded.value) :
        ParseResult.fail(
          new ParseResult.Type(ast, input, `Expected a duration (milliseconds, or e.g. "30 seconds"), got ${input}`)
        )
    },
    encode: (duration) => ParseResult.succeed(Duration.isFinite(duration) ? Duration.toMillis(duration) : "Infinity")
  }
)

const Count = Schema.Int.pipe(Schema.nonNegative())
const Unbounded = Schema.Literal("unbounded")

/**
 * The serialisable part of a pool's options. Every field is optional; defaults are applied on decode.
 *
 * @internal
 */
export const PoolConfig = Schema.Struct({
  name: Schema.optionalWith(Schema.String.pipe(Schema.minLength(1)), { default: () => "reservoir" }),
  size: Schema.optionalWith(Count, { default: () => 5 }),
  maxOverflow: Schema.optionalWith(Schema.Union(Count, Unbounded), { default: () => 10 }),
  min: Schema.optionalWith(Count, { default: () => 0 }),
  timeout: Schema.optionalWith(DurationFromInput, { default: () => Duration.seconds(30) }),
  connectTimeout: Schema.optionalWith(DurationFromInput, { default: () => Duration.infinity }),
  order: Schema.optionalWith(Schema.Literal("fifo", "lifo"), { default: () => "fifo" as const }),
  maxWaiters: Schema.optionalWith(Schema.Union(Count, Unbounded), { default: () => "unbounded" as const }),
  labels: Schema.optionalWith(Schema.Record({ key: Schema.String, value: Schema.String }), { default: () => ({}) }),
  shutdownTimeout: Schema.optionalWith(DurationFromInput, { default: () => Duration.seconds(30) }),
  echo: Schema.optionalWith(Schema.Union(Schema.Boolean, Schema.Literal("debug")), { default: () => false }),
  maxCheckoutAttempts: Schema.optionalWith(Schema.Int.pipe(Schema.greaterThanOrEqualTo(1)), { default: () => 3 })
})

/** @internal */
export type PoolConfig = typeof PoolConfig.Type
/** @internal */
export type PoolConfigEncoded = typeof PoolConfig.Encoded

const durationKeys = ["timeout", "connectTimeout", "shutdownTimeout"] as const
const keys = new Set(Object.keys(PoolConfig.fields))

/**
 * Brings `Duration.DurationInput` values (Duration objects, bigints, tuples) and `Infinity` counts to the encoded
 * form the schema reads, so that options given in code and options read from JSON go through the same checks.
 */
const normalize = (input: Record<string, unknown>): Record<string, unknown> => {
  const out: Record<string, unknown> = {}
  for (const key of Object.keys(input)) {
    if (!keys.has(key)) continue
    const value = input[key]
    if (value === undefined) continue
    out[key] = value
  }
  for (const key of durationKeys) {
    const value = out[key]
    if (value === undefined || typeof value === "number" || typeof value === "string") continue
    const decoded = Duration.decodeUnknown(value)
    if (decoded._tag === "Some") {
      out[key] = Duration.isFinite(decoded.value) ? Duration.toMillis(decoded.value) : "Infinity"
    }
  }
  for (const key of ["maxOverflow", "maxWaiters"] as const) {
    if (out[key] === Infinity) out[key] = "unbounded"
  }
  return out
}

/**
 * Decodes and checks options, collecting every problem into one `PoolConfigError`.
 *
 * @internal
 */
export const decode = (input: unknown): Either.Either<PoolConfig, PoolConfigError> => {
  const name = Predicate.isRecord(input) && typeof input.name === "string" && input.name.length > 0 ?
    input.name :
    "reservoir"
  if (!Predicate.isRecord(input)) {
    return Either.left(new PoolConfigError({ pool: name, problems: ["options: Expected an object"] }))
  }
  const normalized = normalize(input)
  const decoded = Schema.decodeUnknownEither(PoolConfig, { errors: "all", onExcessProperty: "ignore" })(normalized)
  if (Either.isRight(decoded)) {
    const problems = crossCheck(decoded.right)
    return problems.length > 0
      ? Either.left(new PoolConfigError({ pool: name, problems }))
      : Either.right(decoded.right)
  }
  // the fields that are fine on their own still take part in the checks across fields, so every problem is listed
  const partial: Record<string, unknown> = {}
  for (const key of Object.keys(normalized)) {
    const one = Schema.decodeUnknownEither(PoolConfig.pipe(Schema.pick(key as keyof PoolConfigEncoded)))(
      { [key]: normalized[key] }
    )
    if (Either.isRight(one)) partial[key] = (one.right as Record<string, unknown>)[key]
  }
  const defaults = Schema.decodeUnknownSync(PoolConfig)({})
  const problems = [
    ...describe(decoded.left),
    ...crossCheck({ ...defaults, ...partial } as PoolConfig, new Set(Object.keys(partial)))
  ]
  return Either.left(new PoolConfigError({ pool: name, problems }))
}

/** Checks across fields; with `given`, only those involving at least one field the caller gave and that decoded. */
const crossCheck = (config: PoolConfig, given?: ReadonlySet<string>): Array<string> => {
  const involves = (...keys: Array<string>) => given === undefined || keys.some((k) => given.has(k))
  const problems: Array<string> = []
  const max = maxOf(config)
  if (max < 1 && involves("size", "maxOverflow")) {
    problems.push("size + maxOverflow: must allow at least one connection, got 0")
  }
  if (config.min > max && involves("min", "size", "maxOverflow")) {
    problems.push(`min: ${config.min} is more than size + maxOverflow (${max})`)
  }
  if (Duration.toMillis(config.timeout) === 0 && involves("timeout")) {
    problems.push("timeout: must be more than 0 (use \"Infinity\" to wait without limit)")
  }
  if (Duration.toMillis(config.connectTimeout) === 0 && involves("connectTimeout")) {
    problems.push("connectTimeout: must be more than 0")
  }
  return problems
}

/**
 * One line per option: the alternatives of a union are folded into one "Expected A or B" and the "Expected
 * undefined" branch of every optional field is dropped.
 */
const describe = (error: ParseResult.ParseError): Array<string> => {
  const byPath = new Map<string, { expected: Array<string>; actual: string | undefined; other: Array<string> }>()
  for (const issue of ParseResult.ArrayFormatter.formatErrorSync(error)) {
    const path = issue.path.length > 0 ? issue.path.join(".") : "options"
    const entry = byPath.get(path) ?? { expected: [], actual: undefined, other: [] }
    byPath.set(path, entry)
    const match = /^Expected (.*), actual (.*)$/s.exec(issue.message)
    if (match === null) entry.other.push(issue.message)
    else if (match[1] !== "undefined") {
      entry.expected.push(match[1]!)
      entry.actual = match[2]!
    }
  }
  const lines: Array<string> = []
  for (const [path, entry] of byPath) {
    const parts = [...entry.other]
    if (entry.expected.length > 0) parts.push(`Expected ${entry.expected.join(" or ")}, actual ${entry.actual}`)
    lines.push(`${path}: ${parts.join("; ")}`)
  }
  return lines
}

/**
 * The configuration in its JSON form (what `Pool.config` returns and `Pool.recreate` rebuilds from).
 *
 * @internal
 */
export const encode = (config: PoolConfig): PoolConfigEncoded => Schema.encodeSync(PoolConfig)(config)

/** @internal */
export const maxOf = (config: PoolConfig): number =>
  config.size + (config.maxOverflow === "unbounded" ? Infinity : config.maxOverflow)
