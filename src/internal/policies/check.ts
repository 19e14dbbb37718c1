import * as Duration from "effect/Duration"
import * as Either from "effect/Either"
import * as Schedule from "effect/Schedule"
import type * as Policy from "../../Policy.js"
import { readDuration, show } from "../config.js"

/**
 * The checks of a built-in policy's arguments. A policy made with bad arguments carries its `problems` and no
 * hooks; a pool made with it fails with one `PoolConfigError` listing them with the pool's own problems, so a bad
 * argument is never clamped or read as something else, and never throws where the policy is built.
 */

/** A duration of 0 or more (`positive`: more than 0); `Infinity` is allowed where `infinite` says so. */
export const duration = (
  option: string,
  input: unknown,
  rules: { readonly positive?: boolean; readonly infinite?: boolean } = {}
): string | undefined => {
  const read = readDuration(input)
  if (Either.isLeft(read)) return `${option}: Expected ${read.left}, got ${show(input)}`
  const value = read.right
  if (!Duration.isFinite(value)) {
    return rules.infinite === false
      ? `${option}: Expected a finite duration, got Infinity`
      : undefined
  }
  if (rules.positive === true && Duration.toMillis(value) <= 0) {
    return `${option}: Expected a duration of more than 0${
      rules.infinite === true ? " (Infinity for none)" : ""
    }, got ${show(input)}`
  }
  return undefined
}

/** An integer of `min` or more, or `Infinity` where `infinite`. */
export const count = (
  option: string,
  input: unknown,
  min: number,
  infinite: boolean
): string | undefined => {
  if (infinite && input === Infinity) return undefined
  return typeof input === "number" && Number.isInteger(input) && input >= min ?
    undefined :
    `${option}: Expected an integer of ${min} or more${infinite ? " (or Infinity)" : ""}, got ${show(input)}`
}

/** A number between 0 and `max`, both included. */
export const fraction = (option: string, input: unknown, max: number): string | undefined =>
  typeof input === "number" && input >= 0 && input <= max ?
    undefined :
    `${option}: Expected a number from 0 to ${max}, got ${show(input)}`

/** A `Schedule`, or a duration of more than 0 (sugar for `Schedule.spaced`). */
export const schedule = (option: string, input: unknown): string | undefined =>
  Schedule.isSchedule(input) ? undefined : duration(option, input, { positive: true, infinite: false }) === undefined ?
    undefined :
    `${option}: Expected a Schedule or a duration of more than 0, got ${show(input)}`

/** The problems found, without the `undefined`s. */
export const problemsOf = (...found: ReadonlyArray<string | undefined>): ReadonlyArray<string> =>
  found.filter((problem): problem is string => problem !== undefined)

/** A policy made with bad arguments: its name and its problems, no hooks. */
export const invalid = <C, E, Commands = void>(
  name: string,
  problems: ReadonlyArray<string>
): Policy.Policy<C, E, Commands> => ({ name, problems })
