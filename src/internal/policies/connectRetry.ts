import type * as Cause from "effect/Cause"
import type * as Duration from "effect/Duration"
import type * as Schedule from "effect/Schedule"
import type * as Policy from "../../Policy.js"
import { defaultConnectBackoff } from "../core.js"
import * as check from "./check.js"
import { toSchedule } from "./upkeep.js"

/** @internal */
export const connectRetry = <C = never, E = never>(
  schedule?: Schedule.Schedule<unknown, Cause.Cause<unknown>> | Duration.DurationInput
): Policy.Policy<C, E> => {
  const problems = check.problemsOf(schedule === undefined ? undefined : check.schedule("schedule", schedule))
  if (problems.length > 0) return check.invalid("connectRetry", problems)
  return {
    name: "connectRetry",
    connectBackoff: schedule === undefined ? defaultConnectBackoff : toSchedule(schedule)
  }
}
