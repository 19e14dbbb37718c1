import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as ParseResult from "effect/ParseResult"
import * as Predicate from "effect/Predicate"
import * as Schema from "effect/Schema"
import { PoolConfigError } from "../PoolError.js"
import { isDriver } from "./driver.js"

const negativeDuration = "a duration of 0 or more"
const malformedDuration = "a duration (milliseconds, a Duration, or a string such as \"30 seconds\")"

/**
 * Reads a duration given in code (`Duration.DurationInput`: milliseconds, a `Duration`, a bigint of nanoseconds, a
 * `[seconds, nanos]` tuple, a string such as `"30 seconds"`) or in JSON (milliseconds, or such a string, or
 * `"Infinity"`). `Left` is what was expected: a negative or NaN input is refused, never clamped to 0 as
 * `Duration.decode` would.
 *
 * @internal
 */
export const readDuration = (input: unknown): Either.Either<Duration.Duration, string> => {
  if (typeof input === "number") {
    if (Number.isNaN(input)) return Either.left(malformedDuration)
    return input < 0 ? Either.left(negativeDuration) : Either.right(Duration.millis(input))
  }
  if (typeof input === "bigint") {
    return input < 0n ? Either.left(negativeDuration) : Either.right(Duration.nanos(input))
  }
  if (typeof input === "string") {
    const text = input.trim()
    if (/^\+?infinity$/i.test(text)) return Either.right(Duration.infinity)
    if (/^-?\d+(\.\d+)?$/.test(text)) return readDuration(Number(text))
    const decoded = Duration.decodeUnknown(text)
    if (decoded._tag === "None") return Either.left(malformedDuration)
    return Number(text.split(/\s/)[0]) < 0 ? Either.left(negativeDuration) : Either.right(decoded.value)
  }
  if (Array.isArray(input)) {
    if (input.length !== 2 || !input.every(Predicate.isNumber)) return Either.left(malformedDuration)
    if (input.some(Number.isNaN)) return Either.left(malformedDuration)
    if (input.some((n) => n < 0)) return Either.left(negativeDuration)
    return Either.right(Duration.decode(input as [number, number]))
  }
  if (Duration.isDuration(input)) {
    const millis = Either.try(() => Duration.toMillis(input))
    if (Either.isLeft(millis) || Number.isNaN(millis.right)) return Either.left(malformedDuration)
    return millis.right < 0 ? Either.left(negativeDuration) : Either.right(input)
  }
  return Either.left(malformedDuration)
}

/**
 * A duration as it appears in JSON or an environment variable: milliseconds as a number, or a string Effect's
 * `Duration.decode` understands (`"30 seconds"`, `"250 millis"`, `"Infinity"`). Negative and NaN durations are
 * refused. Encodes to milliseconds, or `"Infinity"`.
 *
 * @internal
 */
export const DurationFromInput = Schema.transformOrFail(
  Schema.Union(Schema.Number, Schema.String),
  Schema.DurationFromSelf,
  {
    strict: true,
    decode: (input, _, ast) =>
      Either.match(readDuration(input), {
        onLeft: (expected) =>
          ParseResult.fail(new ParseResult.Type(ast, input, `Expected ${expected}, got ${show(input)}`)),
        onRight: ParseResult.succeed
      }),
    encode: (duration) => ParseResult.succeed(Duration.isFinite(duration) ? Duration.toMillis(duration) : "Infinity")
  }
)

const Count = Schema.Int.pipe(Schema.nonNegative())
const Unbounded = Schema.Literal("unbounded")

/** Each serialisable option: its schema, its default, and what a problem line says was expected. */
const options = {
  name: { schema: Schema.String.pipe(Schema.minLength(1)), default: () => "reservoir", expected: "a non-empty string" },
  size: { schema: Count, default: () => 5, expected: "an integer of 0 or more" },
  maxOverflow: {
    schema: Schema.Union(Count, Unbounded),
    default: (): number | "unbounded" => 10,
    expected: "an integer of 0 or more, or \"unbounded\""
  },
  min: { schema: Count, default: () => 0, expected: "an integer of 0 or more" },
  timeout: { schema: DurationFromInput, default: () => Duration.seconds(30), expected: malformedDuration },
  connectTimeout: { schema: DurationFromInput, default: () => Duration.infinity, expected: malformedDuration },
  order: {
    schema: Schema.Literal("fifo", "lifo"),
    default: () => "fifo" as const,
    expected: "\"fifo\" or \"lifo\""
  },
  maxWaiters: {
    schema: Schema.Union(Count, Unbounded),
    default: (): number | "unbounded" => "unbounded",
    expected: "an integer of 0 or more, or \"unbounded\""
  },
  labels: {
    schema: Schema.Record({ key: Schema.String, value: Schema.String }),
    default: (): { readonly [x: string]: string } => ({}),
    expected: "an object of string values"
  },
  shutdownTimeout: { schema: DurationFromInput, default: () => Duration.seconds(30), expected: malformedDuration },
  echo: {
    schema: Schema.Union(Schema.Boolean, Schema.Literal("debug")),
    default: (): boolean | "debug" => false,
    expected: "true, false or \"debug\""
  },
  maxCheckoutAttempts: {
    schema: Schema.Int.pipe(Schema.greaterThanOrEqualTo(1)),
    default: () => 3,
    expected: "an integer of 1 or more"
  }
} as const

type Key = keyof typeof options

/**
 * The serialisable part of a pool's options. Every field is optional; defaults are applied on decode.
 *
 * @internal
 */
export const PoolConfig = Schema.Struct({
  name: Schema.optionalWith(options.name.schema, { default: options.name.default }),
  size: Schema.optionalWith(options.size.schema, { default: options.size.default }),
  maxOverflow: Schema.optionalWith(options.maxOverflow.schema, { default: options.maxOverflow.default }),
  min: Schema.optionalWith(options.min.schema, { default: options.min.default }),
  timeout: Schema.optionalWith(options.timeout.schema, { default: options.timeout.default }),
  connectTimeout: Schema.optionalWith(options.connectTimeout.schema, { default: options.connectTimeout.default }),
  order: Schema.optionalWith(options.order.schema, { default: options.order.default }),
  maxWaiters: Schema.optionalWith(options.maxWaiters.schema, { default: options.maxWaiters.default }),
  labels: Schema.optionalWith(options.labels.schema, { default: options.labels.default }),
  shutdownTimeout: Schema.optionalWith(options.shutdownTimeout.schema, { default: options.shutdownTimeout.default }),
  echo: Schema.optionalWith(options.echo.schema, { default: options.echo.default }),
  maxCheckoutAttempts: Schema.optionalWith(options.maxCheckoutAttempts.schema, {
    default: options.maxCheckoutAttempts.default
  })
})

/** @internal */
export type PoolConfig = typeof PoolConfig.Type
/** @internal */
export type PoolConfigEncoded = typeof PoolConfig.Encoded

const keys = Object.keys(options) as ReadonlyArray<Key>
const durationKeys: ReadonlySet<Key> = new Set(["timeout", "connectTimeout", "shutdownTimeout"])
const hooks = ["onConnect", "onCheckout", "onReturn", "background"] as const

/**
 * Reads one option as given in code or in JSON. `Left` is what was expected. `Infinity` stands for `"unbounded"`
 * in the counts that allow it, and durations go through `readDuration`.
 */
const readOption = (key: Key, value: unknown): Either.Either<unknown, string> => {
  if (durationKeys.has(key)) return readDuration(value)
  const input = (key === "maxOverflow" || key === "maxWaiters") && value === Infinity ? "unbounded" : value
  const decoded = Schema.decodeUnknownEither(options[key].schema as Schema.Schema<unknown, unknown>)(input)
  return Either.mapLeft(decoded, () => options[key].expected)
}

/**
 * Decodes and checks a pool's whole options object, collecting every problem into one `PoolConfigError`, one line
 * each: the serialisable options (a wrong type, a negative, NaN or fractional count, a bad duration), the checks
 * across options, exactly one of `driver` (a `Driver`) or `acquire` (an `Effect`), and `policies` (an array of
 * objects with a string `name` whose hooks are functions). Unknown keys are ignored. It never throws, whatever the
 * input: a JavaScript caller gets the same error as a TypeScript one.
 *
 * @internal
 */
export const decode = (input: unknown): Either.Either<PoolConfig, PoolConfigError> => {
  if (!Predicate.isRecord(input)) {
    return Either.left(
      new PoolConfigError({ pool: "reservoir", problems: [`options: Expected an object, got ${show(input)}`] })
    )
  }
  const problems: Array<string> = []
  const invalid = new Set<string>()
  const get = (key: string): unknown => {
    try {
      return input[key]
    } catch (error) {
      invalid.add(key)
      problems.push(`${key}: could not be read: ${error instanceof Error ? error.message : show(error)}`)
      return undefined
    }
  }
  const values: Record<string, unknown> = {}
  for (const key of keys) {
    const value = get(key)
    if (value === undefined) continue
    const read = readOption(key, value)
    if (Either.isRight(read)) {
      values[key] = read.right
    } else {
      invalid.add(key)
      problems.push(`${key}: Expected ${read.left}, got ${show(value)}`)
    }
  }
  const defaults = Object.fromEntries(keys.map((key) => [key, options[key].default()]))
  const config = { ...defaults, ...values } as PoolConfig
  problems.push(...crossCheck(config, invalid), ...checkSource(get), ...checkPolicies(get("policies")))
  return problems.length > 0
    ? Either.left(new PoolConfigError({ pool: invalid.has("name") ? "reservoir" : config.name, problems }))
    : Either.right(config)
}

/**
 * Checks across options. A check that involves an invalid option is skipped (its line would be about a value the
 * caller did not give); the others still run, so every problem is listed at once.
 */
const crossCheck = (config: PoolConfig, invalid: ReadonlySet<string>): Array<string> => {
  const valid = (...keys: Array<Key>) => keys.every((key) => !invalid.has(key))
  const problems: Array<string> = []
  if (valid("size", "maxOverflow") && maxOf(config) < 1) {
    problems.push("size + maxOverflow: must allow at least one connection, got 0")
  }
  if (valid("min", "size") && config.min > config.size) {
    problems.push(`min: Expected at most size (${config.size}), got ${config.min}`)
  }
  if (valid("timeout") && Duration.toMillis(config.timeout) === 0) {
    problems.push("timeout: must be more than 0 (use \"Infinity\" to wait without limit)")
  }
  if (valid("connectTimeout") && Duration.toMillis(config.connectTimeout) === 0) {
    problems.push("connectTimeout: must be more than 0")
  }
  if (valid("maxWaiters", "min") && config.maxWaiters === 0 && config.min === 0) {
    problems.push(
      "maxWaiters: Expected 1 or more when min is 0 (with no waiters only idle connections are lent), got 0"
    )
  }
  return problems
}

/** Exactly one of `driver` (a `Driver`) and `acquire` (an `Effect`); `undefined` counts as not given. */
const checkSource = (get: (key: string) => unknown): Array<string> => {
  const driver = get("driver")
  const acquire = get("acquire")
  const problems: Array<string> = []
  if (driver === undefined && acquire === undefined) problems.push("options: give either driver or acquire")
  if (driver !== undefined && acquire !== undefined) problems.push("options: give either driver or acquire, not both")
  if (driver !== undefined && !(isDriver(driver) && typeof driver.connect === "function")) {
    problems.push(`driver: Expected a Driver (from Driver.make or a driver module), got ${show(driver)}`)
  } else if (driver !== undefined) {
    // a driver made with bad options (a negative timeout, a duration it cannot read) says so, as a policy does
    for (const problem of (driver as { readonly problems?: ReadonlyArray<string> }).problems ?? []) {
      problems.push(`driver (${(driver as { readonly dialect: string }).dialect}): ${problem}`)
    }
  }
  if (acquire !== undefined && !Effect.isEffect(acquire)) {
    problems.push(`acquire: Expected an Effect that opens a connection in a Scope, got ${show(acquire)}`)
  }
  return problems
}

/** `policies`: an array of objects with a string `name`, whose `resetMethod` is a string and hooks are functions. */
const checkPolicies = (policies: unknown): Array<string> => {
  if (policies === undefined) return []
  if (!Array.isArray(policies)) return [`policies: Expected an array of policies, got ${show(policies)}`]
  const problems: Array<string> = []
  for (let i = 0; i < policies.length; i++) {
    const policy: unknown = policies[i]
    if (!Predicate.isRecord(policy) || typeof policy.name !== "string") {
      problems.push(`policies[${i}]: Expected a policy (an object with a string name), got ${show(policy)}`)
      continue
    }
    if (policy.resetMethod !== undefined && typeof policy.resetMethod !== "string") {
      problems.push(`policies[${i}].resetMethod: Expected a string, got ${show(policy.resetMethod)}`)
    }
    for (const hook of hooks) {
      if (policy[hook] !== undefined && typeof policy[hook] !== "function") {
        problems.push(`policies[${i}].${hook}: Expected a function, got ${show(policy[hook])}`)
      }
    }
    // what a built-in policy found wrong with the arguments it was made with
    if (Array.isArray(policy.problems)) {
      for (const problem of policy.problems) problems.push(`policies[${i}] ${policy.name}: ${String(problem)}`)
    }
  }
  return problems
}

/** A given value as a problem line quotes it: strings in quotes, objects and arrays shallowly, never throwing. @internal */
export const show = (value: unknown, depth = 0): string => {
  try {
    switch (typeof value) {
      case "string":
        return JSON.stringify(value.length > 60 ? `${value.slice(0, 60)}…` : value)
      case "number":
        return Object.is(value, -0) ? "-0" : String(value)
      case "bigint":
        return `${value}n`
      case "function":
        return "a function"
      case "symbol":
        return value.toString()
      case "object": {
        if (value === null) return "null"
        if (Duration.isDuration(value)) return `Duration(${Duration.format(value)})`
        if (Effect.isEffect(value)) return "an Effect"
        if (depth > 1) return Array.isArray(value) ? "[…]" : "{…}"
        if (Array.isArray(value)) {
          const items = value.slice(0, 5).map((item) => show(item, depth + 1))
          return `[${items.join(", ")}${value.length > 5 ? ", …" : ""}]`
        }
        const entries = Object.entries(value)
        if (entries.length === 0) return "{}"
        const shown = entries.slice(0, 5).map(([key, item]) =>
          `${/^[A-Za-z_$][\w$]*$/.test(key) ? key : JSON.stringify(key)}: ${show(item, depth + 1)}`
        )
        return `{ ${shown.join(", ")}${entries.length > 5 ? ", …" : ""} }`
      }
      default:
        return String(value)
    }
  } catch {
    return "a value that cannot be shown"
  }
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
